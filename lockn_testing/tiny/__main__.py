"""python -m lockn_testing.tiny [--out DIR] [--family F ...]: generate the tiny model set.

Without --out it fills (or reuses) the cache and prints the models folder.
"""
import argparse
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", help="write the files here (no caching)")
    ap.add_argument("--family", action="append", help="only these families (flux2, wan22, ltx2, ace15)")
    a = ap.parse_args()
    from lockn_testing import tiny
    if not a.out:
        print(tiny.ensure())
        return 0
    t0 = time.time()
    from lockn_testing.comfy_boot import boot
    import torch
    torch.set_num_threads(min(4, os.cpu_count() or 1))
    boot(models_root=None, argv=("--cpu",))
    import lockn_testing.comfy_patches  # noqa: F401  (the generators build patched classes at tiny sizes)
    written = tiny.generate(a.out, families=tuple(a.family or tiny.FAMILIES))
    total = sum(os.path.getsize(p) for p in set(written.values()))
    print(f"{len(written)} files, {total / 1e6:.1f} MB, in {time.time() - t0:.1f}s", flush=True)
    return 0


sys.exit(main())
