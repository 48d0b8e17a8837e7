"""Run LockN Gen inside real ComfyUI: in-process (validate_prompt + PromptExecutor) or as a server."""
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PATCHES_DIR = REPO / "lockn_testing" / "comfy_patches"


def comfyui_path() -> Path:
    return Path(os.path.expanduser(os.environ.get("COMFYUI_PATH", "~/comfy/ComfyUI"))).resolve()


def gguf_node_dir() -> Path:
    return comfyui_path() / "custom_nodes" / "ComfyUI-GGUF"
