"""The ComfyUI layer of LockN Gen: thin V3 nodes, HTTP routes and the bridge to ComfyUI's loaders and
model management. Domain logic lives in the plain-Python package `lockn_gen` beside this folder."""
from comfy_api.latest import ComfyExtension, io


class LockNGenExtension(ComfyExtension):
    async def on_load(self) -> None:
        pass

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return []


async def comfy_entrypoint() -> ComfyExtension:
    return LockNGenExtension()
