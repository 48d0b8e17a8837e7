"""Run LockN Gen inside real ComfyUI: in-process (validate_prompt + PromptExecutor) or as a server."""
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PATCHES_DIR = REPO / "lockn_testing" / "comfy_patches"


def comfyui_path() -> Path:
    return Path(os.path.expanduser(os.environ.get("COMFYUI_PATH", "~/comfy/ComfyUI"))).resolve()


def gguf_node_dir() -> Path:
    return comfyui_path() / "custom_nodes" / "ComfyUI-GGUF"


def distributed_node_dir() -> Path:
    """ComfyUI-Distributed (robertvoy/ComfyUI-Distributed @ a91f9fb0) as the set-up brings it: in the
    ComfyUI's custom_nodes, or LOCKN_DISTRIBUTED_PATH."""
    return Path(os.path.expanduser(os.environ.get("LOCKN_DISTRIBUTED_PATH")
                                   or comfyui_path() / "custom_nodes" / "ComfyUI-Distributed")).resolve()


def test_threads() -> int | None:
    """CPU threads for the torch of a test's ComfyUI (LOCKN_TEST_THREADS; scripts/test.sh and tests/conftest.py
    set 1), None when unset (the benches keep torch's default).

    Why one: torch's CPU kernels run an OpenMP team that spins while it waits, and two processes that each
    run a team as wide as the machine starve each other. Seen here (2-core box, 2026-12-06): the tiny quality
    and fast chains, 3 runs each, took 21-24 s in all on a server with one thread whether or not another
    test server ran beside it, and 92-116 s with torch's default of 2 threads beside another server (a
    single sampling step up to 2 s); the 50-chain memory test took 26 min instead of 2. The tiny models gain
    nothing from a second thread, and the suite runs its test files in parallel worker processes."""
    v = os.environ.get("LOCKN_TEST_THREADS")
    return max(1, int(v)) if v else None
