"""The ComfyUI layer of LockN Gen: thin V3 nodes, HTTP routes and the bridge to ComfyUI's loaders and
model management. Domain logic lives in the plain-Python package `lockn_gen` beside this folder."""
import logging

from comfy_api.latest import ComfyExtension, io

from .loaders import LOADER_NODES
from .media import MEDIA_NODES
from .residency import REGISTRY, lifecycle_provider
from .residency_nodes import RESIDENCY_NODES

log = logging.getLogger("lockn_gen")


class LockNGenExtension(ComfyExtension):
    async def on_load(self) -> None:
        REGISTRY.hook = lifecycle_provider()     # registered with ComfyUI only while needed (Registry.arm)
        try:
            from server import PromptServer
            server = getattr(PromptServer, "instance", None)
        except ImportError:
            server = None
        if server is not None:          # in-process (no server) there are no routes to register
            from . import routes
            routes.register(server)

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [*LOADER_NODES, *RESIDENCY_NODES, *MEDIA_NODES]


async def comfy_entrypoint() -> ComfyExtension:
    return LockNGenExtension()
