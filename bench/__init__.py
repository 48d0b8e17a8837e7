"""LockN Gen's benchmarks (run on purpose; results in bench/RESULTS.md)."""
from __future__ import annotations

import os
import platform
from pathlib import Path


def drop_from_page_cache(*paths) -> int:
    """Drop these files (folders: every file under them, links followed) from the page cache with
    posix_fadvise DONTNEED, as when other processes' memory (the LLMs) pushes them out: the next read
    comes from the disk. Pages a process has mapped and uses stay. Returns the bytes asked for."""
    total = 0
    for p in map(Path, paths):
        files = [p] if p.is_file() else [Path(d) / f for d, _, fs in os.walk(p, followlinks=True) for f in fs]
        for f in files:
            fd = os.open(f, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                total += os.fstat(fd).st_size
            finally:
                os.close(fd)
    return total


def give_start_image(srv) -> None:
    """Put the benchmarks' start picture (made once, 48x40 random RGB) into a server's input folder as
    start.png, where the image-to-video graphs look for it."""
    import shutil
    img = Path(__file__).resolve().parent / "out" / "start.png"
    if not img.exists():
        import numpy as np
        from PIL import Image
        img.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((np.random.RandomState(0).rand(48, 40, 3) * 255).astype("uint8")).save(img)
    shutil.copy(img, srv.base / "input" / "start.png")


def machine() -> dict:
    """The machine a benchmark ran on, for its JSON: CPU model and cores, Python, torch, GPU."""
    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "python": platform.python_version()}
    try:
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        import torch
        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info
