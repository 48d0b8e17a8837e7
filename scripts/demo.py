"""The LockN Gen demo: the quality chain (Flux.2 image -> Wan2.2 video -> ACE-Step music, one MP4) on
the tiny default models, through a real ComfyUI server and the lockn-gen client.

    bash scripts/demo.sh            (runs the set-up first, then this with ComfyUI's Python)

Generates the tiny models if missing, starts ComfyUI headless on a free loopback port with the pack,
submits workflows/chain_quality.json, writes the MP4 into ./out/demo/, prints its path, and stops the
server (also on Ctrl-C or an error). The tiny models have random weights: the MP4 is noise with a
noise soundtrack. It proves the wiring; real models give real output.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    t0 = time.time()
    from lockn_gen import client
    from lockn_gen.demo_sets import TINY
    from lockn_testing import tiny
    from lockn_testing.harness.server import ComfyServer
    from lockn_testing.media import probe_media

    out = Path(os.environ.get("LOCKN_DEMO_OUT", REPO / "out" / "demo")).resolve()
    print("[1/4] tiny models (random weights, real architectures, real file names) ...", flush=True)
    models = tiny.ensure()
    print(f"      {models}", flush=True)
    print("[2/4] starting ComfyUI headless with LockN Gen ...", flush=True)
    server = ComfyServer(models)
    try:
        server.start()
        print(f"      {server.url} (log: {server.log_path})", flush=True)
        print("[3/4] running workflows/chain_quality.json: Flux.2 -> Wan2.2 -> ACE-Step -> one MP4 ...", flush=True)
        (res,) = client.run_workflow(str(REPO / "workflows" / "chain_quality.json"), TINY["chain_quality"],
                                     [server.url], out_dir=out, timeout=900,
                                     progress="bars" if sys.stderr.isatty() else "lines",
                                     log=lambda s: print("      " + s, flush=True))
        if not res.ok:
            out.mkdir(parents=True, exist_ok=True)
            shutil.copy(server.log_path, out / "comfyui.log")
            print(f"\nThe chain failed: {res.error}\nServer log: {out / 'comfyui.log'}", file=sys.stderr)
            return 1
        mp4 = next(Path(f) for f in res.files if str(f).endswith(".mp4"))
        info = probe_media(mp4)
        v, a = info["video"], info["audio"]
        print("[4/4] done in %.0f s" % (time.time() - t0), flush=True)
        print(f"\nMP4: {mp4}")
        print(f"     video: {v['frames']} frames at {v['fps']:g} fps ({v['width']}x{v['height']}); "
              f"audio: {a['duration']:.2f} s at {a['sample_rate']} Hz, {a['channels']} channels")
        print("\nThe tiny models have random weights, so this is noise: it proves the wiring, not the art.\n"
              "For real output, download the real files into your ComfyUI and open the same workflow there:\n"
              f"  {sys.executable} {REPO / 'lockn-gen'} models pull flux2-dev-q5_k_m wan22-i2v-a14b-q4_k_m ace15-turbo\n"
              f"  then load {REPO / 'workflows' / 'chain_quality.json'} in the editor (or: lockn-gen run ... --server URL).")
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the server", file=sys.stderr)
        return 130
    finally:
        server.stop()
        shutil.rmtree(server.base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
