"""LockN Gen: a ComfyUI custom-node pack (image -> video -> music on one GPU workstation).

ComfyUI imports this folder as a custom node: `comfy_entrypoint` returns the V3 extension with all
nodes, and `WEB_DIRECTORY` serves the editor extension (the residency sidebar tab).
"""
import importlib.util

WEB_DIRECTORY = "./web"

# Inside ComfyUI comfy_api is always importable. Outside it (pytest collects this folder as a
# package, tools import lockn_gen) there is nothing to register.
if importlib.util.find_spec("comfy_api") is not None:
    from .nodes import comfy_entrypoint  # noqa: F401

    __all__ = ["comfy_entrypoint", "WEB_DIRECTORY"]
