"""Import ComfyUI into a plain Python process the way main.py sets it up (CPU by default).

Used by the tiny-model factory and the in-process test harness. Rules learned the hard way
(../shared/TINY_MODELS.md): parse ComfyUI's args before anything imports comfy.model_management;
import ComfyUI's `utils` package before `nodes` (which puts ComfyUI/comfy first on sys.path); register
model folders before ComfyUI-GGUF is imported (it snapshots them).
"""
from __future__ import annotations

import os
import sys

COMFYUI_PATH = os.path.abspath(os.path.expanduser(os.environ.get("COMFYUI_PATH", "~/comfy/ComfyUI")))
MODEL_FOLDERS = ("checkpoints", "diffusion_models", "text_encoders", "vae", "loras", "latent_upscale_models", "clip_vision",
                 "upscale_models")


def boot(models_root: str | None = None, argv: tuple[str, ...] = ("--cpu",), scratch: str | None = None):
    """Import ComfyUI once; point its model folders at `models_root` (first in the search order) and
    its input/output/temp/user folders at `scratch`. Returns the folder_paths module."""
    if not os.path.isfile(os.path.join(COMFYUI_PATH, "main.py")):
        raise RuntimeError(f"No ComfyUI at {COMFYUI_PATH} (set COMFYUI_PATH); run scripts/setup.sh first")
    if COMFYUI_PATH not in sys.path:
        sys.path.insert(0, COMFYUI_PATH)
    if "comfy.cli_args" not in sys.modules:
        import comfy.options
        comfy.options.enable_args_parsing()
        saved = sys.argv
        sys.argv = ["main.py", *argv]
        try:
            import comfy.cli_args  # noqa: F401  (parses argv now)
        finally:
            sys.argv = saved
    import utils.extra_config  # noqa: F401  (ComfyUI's utils package, before nodes.py changes sys.path)
    import utils.install_util  # noqa: F401  (same reason)
    import folder_paths
    if models_root:
        for kind in MODEL_FOLDERS:
            d = os.path.join(models_root, kind)
            os.makedirs(d, exist_ok=True)
            folder_paths.add_model_folder_path(kind, d, is_default=True)
    if scratch:
        for setter, sub in ((folder_paths.set_input_directory, "input"), (folder_paths.set_output_directory, "output"),
                            (folder_paths.set_temp_directory, "temp"), (folder_paths.set_user_directory, "user")):
            os.makedirs(os.path.join(scratch, sub), exist_ok=True)
            setter(os.path.join(scratch, sub))
    return folder_paths
