"""LoRA nodes, one per family: a loader's MODEL in, the same model with up to three LoRAs out.

A LoRA is a set of patches on a clone of the base's ModelPatcher (as ComfyUI's LoraLoaderModelOnly
does it): the base is never read from disk again and never leaves its tier; ComfyUI swaps the patches
on the weights where they are. The LoRA files are residency entries of their own (read once, kept in
RAM within the budget, reported with the bases that carry them). Before anything is loaded every slot
is checked: a missing file (with where we looked and the download command), a file that is not a
LoRA or is truncated, a catalog LoRA of another family or of the other Wan2.2 expert. After a LoRA is
read, a file none of whose keys fits the model is refused with a guess of which model it is for.
"""
from __future__ import annotations

from comfy_api.latest import io

from ..lockn_gen import catalog as catalog_mod
from ..lockn_gen import fileinfo
from ..lockn_gen import loras as L
from ..lockn_gen import training as T
from ..lockn_gen.hub import download_command
from ..lockn_gen.preflight import LockNError
from . import comfy_models as cm
from . import comfy_seam as seam
from .loaders import get_catalog, models_root, schema_catalog
from .residency import REGISTRY

CATEGORY = "LockN Gen/lora"
SLOTS = 3
FOLDER = "loras"


def _lora_names() -> list[str]:
    return cm.list_files(FOLDER, L.LORA_EXTENSIONS)


def _resolve(cat, family: str, slots: list[tuple[str, str | None, str, float]]):
    """[(input name, expert, file name, strength)] -> [(input, expert, name, path, strength, catalog entry)],
    after every check that needs no loading: all missing files in one message, then each file's header
    and the catalog's family and expert."""
    fam = catalog_mod.builtin().families[family]
    found, missing = [], []
    for slot, expert, name, strength in slots:
        try:
            entry = L.check_choice(cat, name, family, expert)
        except L.LoraProblem as e:
            raise LockNError(f"{slot}: {e}") from None
        path = cm.find_file(FOLDER, name)
        if path is None:
            missing.append((slot, name, entry))
        else:
            found.append((slot, expert, name, path, strength, entry))
    if missing:
        where = ", ".join(cm.folder_dirs(FOLDER)) or "(no loras folder is configured)"
        lines = [f"  {slot}: {name}" + (f" ({e.size / 1e9:.2f} GB, {e.repo})" if e else " (not in the LockN catalog)")
                 for slot, name, e in missing]
        pull = [e.name for _, _, e in missing if e is not None and e.repo]
        fix = (f"Download: {download_command(pull, models_dir=models_root(FOLDER))}" if pull else
               "Put the file into ComfyUI's models/loras folder, or choose another LoRA.")
        raise LockNError(f"{fam.display_name} LoRA: {len(missing)} LoRA file(s) not found in {where}:\n"
                         + "\n".join(lines) + f"\n{fix}")
    for slot, expert, name, path, _, _ in found:
        try:
            info = fileinfo.read_header(path)
        except fileinfo.FileProblem as e:
            raise LockNError(f"{slot}: {e}") from None
        ident = fileinfo.identify(info)
        if ident.role and ident.role != "lora":
            raise LockNError(f"{slot}: {name} is {ident.detail}, not a LoRA. Choose a LoRA file (models/loras).")
        try:                                    # a LoRA LockN trained says its family and expert in its metadata
            T.check_lora_use(info.metadata, name, family, fam.display_name, expert)
        except T.TrainingProblem as e:
            raise LockNError(f"{slot}: {e}") from None
        guess, guess_name = L.guess_family(info.tensors)
        if guess and guess != family:
            raise LockNError(f"{slot}: {name} looks like a LoRA for {guess_name} (from its key names), and this node "
                             f"patches a {fam.display_name} model. Choose a {fam.display_name} LoRA.")
    return found


def _read(path: str) -> dict:
    """A LoRA file's tensors (safetensors only: nothing is unpickled), in ComfyUI's key layout."""
    from safetensors.torch import load_file
    return seam.convert_lora(load_file(path))


def _spec(family: str, path: str) -> cm.LoadSpec:
    return cm.LoadSpec(kind="lora", family=family, role="lora", files=((FOLDER, path),),
                       mode=catalog_mod.builtin().families[family].mode)


def apply(family: str, model, items) -> object:
    """`model` with these LoRAs [(slot, expert, name, path, strength, entry)] applied in order."""
    if model is None:
        raise LockNError("no model: connect the loader's MODEL output")
    fam_name = catalog_mod.builtin().families[family].display_name
    items = [it for it in items if it[4] != 0]      # strength 0: nothing to patch (as ComfyUI's LoraLoader)
    if not items:
        return model
    specs = [_spec(family, it[3]) for it in items]
    REGISTRY.will_use(specs)
    try:
        key_map = seam.lora_key_map(model)
    except seam.LoraUnsupported as e:
        raise LockNError(f"{fam_name} LoRA: {e}") from None
    shapes, loaded, targets = None, [], set()
    for (slot, _, name, path, strength, _), spec in zip(items, specs):
        sd = REGISTRY.load(spec, lambda p=path: _read(p))
        f = L.fit(sd.keys(), key_map)
        if f.none_fit:
            raise LockNError(f"{slot}: {L.no_fit_message(name, fam_name, f, sd.keys())}")
        shapes = shapes if shapes is not None else seam.weight_shapes(model)
        bad = L.shape_mismatches({k: tuple(v.shape) for k, v in sd.items()}, key_map, shapes)
        if bad:
            raise LockNError(f"{slot}: {name} is a LoRA for another size of {fam_name} model: {len(bad)} of its "
                             f"matrices do not fit (e.g. {bad[0]}). Choose a LoRA made for this model.")
        loaded.append((name, strength, sd, spec))
        targets |= f.targets
    # ComfyUI keeps the original of every weight the LoRAs patch (in RAM) while the patches are on
    REGISTRY.reserve_ram(seam.lora_backup_bytes(model, targets), f"backups of the weights the LoRAs of {fam_name} patch")
    out, applied = model, []
    for name, strength, sd, spec in loaded:
        out, n = seam.add_lora(out, sd, key_map, strength)
        applied.append((REGISTRY.ids([spec])[0], name, float(strength), n))
    REGISTRY.note_loras(out, model, applied)
    return out


def fingerprint(family: str, slots) -> str:
    """The chosen files' identity and the registry's drop counters (a replaced or evicted file re-runs).
    Like the loaders' fingerprints it changes nothing: it notes the LoRA entries the coming prompt uses."""
    parts, ids = [], []
    for _, _, name, strength in slots:
        path = cm.find_file(FOLDER, name)
        rid = REGISTRY.ids([_spec(family, path)])[0] if path else None
        ids.append(rid)
        parts.append(f"{REGISTRY.token(rid)}@{strength}" if rid else f"missing:{name}")
    REGISTRY.note((i for i in ids if i), catalog_mod.builtin().families[family].mode)
    return "|".join(parts)


# ---- the nodes --------------------------------------------------------------------------------------------
def _slot_inputs(family: str, prefix: str, what: str) -> list:
    names = L.choices(schema_catalog(), family, _lora_names())
    out = []
    for i in range(1, SLOTS + 1):
        out += [io.Combo.Input(f"{prefix}lora_{i}", options=names, default=L.NONE,
                               tooltip=f"A LoRA for {what} (LockN catalog LoRAs, and every file in models/loras). "
                                       f"A catalog LoRA not yet downloaded says how to get it."),
                io.Float.Input(f"{prefix}strength_{i}", default=1.0, min=-10.0, max=10.0, step=0.01,
                               tooltip="How strongly the LoRA applies: 0 = off, 1 = as trained.")]
    return out


class _FamilyLoRA(io.ComfyNode):
    FAMILY = ""
    MODELS: tuple = (("model", None, "MODEL"),)     # (input, expert, output display name)

    @classmethod
    def define_schema(cls):
        fam = catalog_mod.builtin().families[cls.FAMILY]
        inputs, outputs = [], []
        for name, expert, shown in cls.MODELS:
            what = f"the {L.EXPERTS[expert]} expert" if expert else f"the {fam.display_name} model"
            inputs.append(io.Model.Input(name, tooltip=f"{what.capitalize()}, from the {fam.display_name} loader."))
            outputs.append(io.Model.Output(f"{name}_out", display_name=shown))
        for name, expert, _ in cls.MODELS:
            prefix = f"{expert.split('_')[0]}_" if expert else ""
            inputs += _slot_inputs(cls.FAMILY, prefix, f"the {L.EXPERTS[expert]} expert" if expert else fam.display_name)
        return io.Schema(
            node_id=f"LockN{fam.node[len('LockN'):-len('Loader')]}LoRA", display_name=f"{fam.display_name} LoRA (LockN)",
            category=CATEGORY, description=" ".join((cls.__doc__ or "").split()), inputs=inputs, outputs=outputs)

    @classmethod
    def _slots(cls, kwargs) -> dict:
        """model input -> [(slot, expert, name, strength)] of the slots in use."""
        out = {}
        for name, expert, _ in cls.MODELS:
            prefix = f"{expert.split('_')[0]}_" if expert else ""
            out[name] = [(f"{prefix}lora_{i}", expert, kwargs.get(f"{prefix}lora_{i}", L.NONE),
                          float(kwargs.get(f"{prefix}strength_{i}", 1.0)))
                         for i in range(1, SLOTS + 1) if kwargs.get(f"{prefix}lora_{i}", L.NONE) not in (L.NONE, "", None)]
        return out

    @classmethod
    def fingerprint_inputs(cls, **kwargs):
        return "|".join(fingerprint(cls.FAMILY, slots) for slots in cls._slots(kwargs).values())

    @classmethod
    def execute(cls, **kwargs):
        cat = get_catalog()
        plan = {name: _resolve(cat, cls.FAMILY, slots) for name, slots in cls._slots(kwargs).items()}
        return io.NodeOutput(*(apply(cls.FAMILY, kwargs.get(name), plan[name]) for name, _, _ in cls.MODELS))


class LockNFlux2LoRA(_FamilyLoRA):
    """Applies up to three LoRAs (the Flux.2 Turbo LoRA, styles) to a Flux.2 model from the LockN loader. The base
    stays loaded where it is: changing a LoRA or its strength never reads the model from disk again."""
    FAMILY = "flux2"


class LockNWan22LoRA(_FamilyLoRA):
    """Applies LoRAs to the two Wan2.2 A14B experts: up to three per expert (lightx2v's 4-step pair: its high-noise
    file on the high expert, its low-noise file on the low). The experts stay loaded where they are."""
    FAMILY = "wan22"
    MODELS = (("high_noise_model", "high_noise", "high noise MODEL"), ("low_noise_model", "low_noise", "low noise MODEL"))


class LockNLTX2LoRA(_FamilyLoRA):
    """Applies up to three LoRAs (the distilled LoRA, camera control) to an LTX-2 model from the LockN loader. The
    base stays loaded where it is."""
    FAMILY = "ltx2"


class LockNAceStep15LoRA(_FamilyLoRA):
    """Applies up to three LoRAs to an ACE-Step 1.5 DiT from the LockN loader. The base stays loaded where it is."""
    FAMILY = "ace15"


LORA_NODES = [LockNFlux2LoRA, LockNWan22LoRA, LockNLTX2LoRA, LockNAceStep15LoRA]
