"""The ComfyUI layer of LockN Gen: thin V3 nodes, HTTP routes and the bridge to ComfyUI's loaders and
model management. Domain logic lives in the plain-Python package `lockn_gen` beside this folder."""
from comfy_api.latest import ComfyExtension, io

from . import comfy_seam as seam
from .brief import BRIEF_NODES
from .choice import CHOICE_NODES
from .heartmula import HEARTMULA_NODES, register_folder
from .loaders import LOADER_NODES
from .loras import LORA_NODES
from .media import MEDIA_NODES, install_example_datasets, install_example_inputs
from .residency_nodes import RESIDENCY_NODES
from .sdcpp import SDCPP_NODES
from .step_cache import STEP_CACHE_NODES
from .training import TRAINING_NODES
from .upscale import UPSCALE_NODES


register_folder()                       # models/HeartMuLa, before the nodes list their choices


class LockNGenExtension(ComfyExtension):
    async def on_load(self) -> None:
        seam.probe()                    # a missing ComfyUI internal is said once, at start-up
        install_example_inputs()        # the I2V workflows' start image, if input/ has none of that name
        install_example_datasets()      # the training workflows' example folders, file by file
        server = seam.server()
        if server is not None:          # in-process (no server) there are no routes to register
            from . import routes
            routes.register(server)

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [*LOADER_NODES, *LORA_NODES, *RESIDENCY_NODES, *MEDIA_NODES, *BRIEF_NODES, *UPSCALE_NODES,
                *STEP_CACHE_NODES, *TRAINING_NODES, *SDCPP_NODES, *CHOICE_NODES, *HEARTMULA_NODES]


async def comfy_entrypoint() -> ComfyExtension:
    return LockNGenExtension()
