"""LockN Gen's benchmarks (run on purpose; results in bench/RESULTS.md)."""
from __future__ import annotations

import os
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
