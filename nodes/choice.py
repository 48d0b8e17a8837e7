"""Which model a chain's stage runs: a choice node per mode and a lazy pick (issue 24).

`Image Model (LockN)`, `Video Model (LockN)` and `Music Model (LockN)` hold the choice (a family id of
lockn_gen/family_workflows.STAGE_CHOICES); `Pick Images / Audio by Model (LockN)` pass on the input of the chosen
family and are lazy like core's Switch: the other families' branches are never run, so their files are never read.
"""
from __future__ import annotations

from comfy_api.latest import io

from ..lockn_gen import catalog as catalog_mod
from ..lockn_gen.family_workflows import MODE_CHOICES, MODE_OF_CHOICE, NOT_CATALOG, STAGE_CHOICES
from ..lockn_gen.preflight import LockNError

CATEGORY = "LockN Gen/chains"
FAMILIES = tuple(dict.fromkeys(f for fams in STAGE_CHOICES.values() for f in fams))


def _name(family: str) -> str:
    fam = catalog_mod.builtin().families.get(family)
    return fam.display_name if fam else NOT_CATALOG.get(family, family)


class _ModelChoice(io.ComfyNode):
    NODE_ID = ""

    @classmethod
    def define_schema(cls):
        mode = MODE_OF_CHOICE[cls.NODE_ID]
        options = list(MODE_CHOICES[mode])
        names = ", ".join(f"{f} = {_name(f)}" for f in options)
        return io.Schema(
            node_id=cls.NODE_ID, display_name=f"{mode.capitalize()} Model (LockN)", category=CATEGORY,
            description=f"Which model the chain's {mode} stage runs ({names}). Only the chosen model's branch runs.",
            inputs=[io.Combo.Input("model", options=options, default=options[0],
                                   tooltip=f"The {mode} model: {names}. A chain offers some of them on each stage; "
                                           f"the run says which when the chosen one has no branch there.")],
            outputs=[io.String.Output("model", display_name="model")])

    @classmethod
    def execute(cls, model) -> io.NodeOutput:
        return io.NodeOutput(model)


class LockNImageModel(_ModelChoice):
    NODE_ID = "LockNImageModel"


class LockNVideoModel(_ModelChoice):
    NODE_ID = "LockNVideoModel"


class LockNMusicModel(_ModelChoice):
    NODE_ID = "LockNMusicModel"


class _Pick(io.ComfyNode):
    """The chosen family's input, evaluated lazily (nothing else upstream runs). Typed (IMAGE, AUDIO): a chain's
    stage hands its output to the next stage across the subgraph's border, where the editor needs a real type."""
    NODE_ID = KIND = ""
    TYPE = None

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=cls.NODE_ID, display_name=f"Pick {cls.KIND} by Model (LockN)", category=CATEGORY,
            description=f"Passes on the {cls.KIND.lower()} of the model chosen upstream (an Image/Video/Music Model node). "
                        "Lazy: the branches of the other models never run.",
            inputs=[io.String.Input("model", force_input=True, tooltip="The chosen model (from an Image/Video/Music Model node).")]
            + [cls.TYPE.Input(f, lazy=True, optional=True, display_name=_name(f)) for f in FAMILIES],
            outputs=[cls.TYPE.Output(display_name=cls.KIND.upper())])

    @classmethod
    def check_lazy_status(cls, model, **branches):
        if model in branches and branches[model] is None:
            return [model]
        return []

    @classmethod
    def execute(cls, model, **branches) -> io.NodeOutput:
        if model in branches:
            return io.NodeOutput(branches[model])
        here = ", ".join(f"{f} ({_name(f)})" for f in FAMILIES if f in branches) or "none"
        raise LockNError(f"This stage has no {_name(model)} branch (model = {model!r}); it runs: {here}. Choose one of "
                         f"those in the stage's model node, or open the family's own workflow (workflows/).")


class LockNPickImage(_Pick):
    NODE_ID, KIND, TYPE = "LockNPickImage", "Images", io.Image


class LockNPickAudio(_Pick):
    NODE_ID, KIND, TYPE = "LockNPickAudio", "Audio", io.Audio


CHOICE_NODES = [LockNImageModel, LockNVideoModel, LockNMusicModel, LockNPickImage, LockNPickAudio]
