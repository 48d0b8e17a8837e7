"""The latent upscale model loader of the LTX-2 turbo path (its x2 spatial upscaler).

ComfyUI checks every node of a prompt before it runs, also the nodes behind a switch that is off, and its
own Load Latent Upscale Model lists only installed files: a workflow whose turbo path names the upscaler
would be refused for everyone who has not downloaded it, turbo on or off. This node always lists the
catalog's upscalers (as the LoRA nodes list the catalog's LoRAs), so the workflow queues; only a run that
takes the turbo path needs the file, and then a missing one is named with where we looked and the
download command. The loading itself is ComfyUI's own loader's (through the seam)."""
from __future__ import annotations

from comfy_api.latest import io

from ..lockn_gen.hub import download_command
from ..lockn_gen.preflight import LockNError
from . import comfy_models as cm
from . import comfy_seam as seam
from .loaders import CATEGORY, get_catalog, models_root, schema_catalog

FOLDER = "latent_upscale_models"


def _names() -> list[str]:
    cat = [f.name for f in schema_catalog().files.values() if f.folder == FOLDER]
    return sorted(set(cat) | set(cm.list_files(FOLDER)))


class LockNLatentUpscaleModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LockNLatentUpscaleModelLoader", display_name="Latent Upscale Model (LockN)", category=CATEGORY,
            description="Loads a latent upscale model (LTX-2's x2 spatial upscaler) with ComfyUI's own loader. Its "
                        "list always has the LockN catalog's upscalers, so a workflow whose turbo path uses one "
                        "queues before the file is downloaded; a run that needs a missing file says how to get it.",
            inputs=[io.Combo.Input("model_name", options=_names(),
                                   tooltip="A file in models/latent_upscale_models (LockN catalog upscalers are "
                                           "listed even before they are downloaded).")],
            outputs=[io.LatentUpscaleModel.Output()])

    @classmethod
    def fingerprint_inputs(cls, model_name):
        return cm.find_file(FOLDER, model_name) or f"missing:{model_name}"     # a file that appears re-runs

    @classmethod
    def execute(cls, model_name) -> io.NodeOutput:
        path = cm.find_file(FOLDER, model_name)
        if path is None:
            where = ", ".join(cm.folder_dirs(FOLDER)) or f"(no {FOLDER} folder is configured)"
            entry = get_catalog().files.get(model_name)
            fix = (f"Download it ({entry.size / 1e9:.2f} GB, {entry.repo}): "
                   f"{download_command([model_name], models_dir=models_root(FOLDER))}" if entry is not None and entry.repo
                   else f"Put the file into ComfyUI's models/{FOLDER} folder, or choose another.")
            raise LockNError(f"Latent upscale model {model_name} not found in {where}. {fix}")
        try:
            model = seam.load_latent_upscale_model(cm.relative_name(FOLDER, path))
        except seam.Missing as e:
            raise LockNError(str(e)) from None
        return io.NodeOutput(model)


UPSCALE_NODES = [LockNLatentUpscaleModelLoader]
