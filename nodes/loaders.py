"""One loader node per family: a preset in, everything the family's graph needs out.

Before anything is loaded the node resolves every file of the preset (with the user's overrides),
reports all missing ones in one message with the download command, and reads each file's header to
refuse a truncated or corrupt file, or a file of another family or role. Loading then goes through
the residency registry's seam (nodes/residency.load), component by component.
"""
from __future__ import annotations

import functools
import logging
import os

from comfy_api.latest import io

from ..lockn_gen import catalog as catalog_mod
from ..lockn_gen import fileinfo
from ..lockn_gen.hub import download_command
from ..lockn_gen.preflight import PRESET_CHOICE, LockNError, missing_message, resolve
from . import comfy_models as cm
from . import comfy_seam as seam
from .residency import REGISTRY, load

log = logging.getLogger("lockn_gen.loaders")
CATEGORY = "LockN Gen/loaders"
WEIGHT_DTYPES = ["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"]


def get_catalog() -> catalog_mod.Catalog:
    """The built-in catalog plus the user's (LOCKN_GEN_CATALOG, and <ComfyUI user dir>/lockn-gen/catalog.toml)."""
    import folder_paths
    user = os.path.join(folder_paths.get_user_directory(), "lockn-gen", "catalog.toml")
    return _catalog(user, os.environ.get("LOCKN_GEN_CATALOG", ""), _mtime(user))


def schema_catalog() -> catalog_mod.Catalog:
    """The catalog for node schemas (the choices in the editor). A broken user catalog must not take the
    pack's nodes out of /object_info: the built-in one stands in, the log says why, and the error itself
    comes back when a node that reads the catalog runs (get_catalog raises it there)."""
    try:
        return get_catalog()
    except catalog_mod.CatalogError as e:
        log.error("LockN Gen: the user catalog is not usable, so the node menus show the built-in catalog "
                  "only (a LockN node that reads the catalog will stop with this message): %s", e)
        return catalog_mod.builtin()


def _mtime(p):
    try:
        return os.stat(p).st_mtime_ns
    except OSError:
        return 0


@functools.lru_cache(maxsize=4)
def _catalog(user_path, env, mtime):
    return catalog_mod.load([user_path])


def resolve_preset(family: str, preset: str, overrides: dict, engine: str = "comfy"):
    cat = get_catalog()
    try:
        return cat, resolve(cat, family, preset, overrides, cm.find_file, cm.folder_dirs, engine=engine)
    except KeyError as e:
        raise LockNError(str(e.args[0])) from None


def models_root(folder: str) -> str | None:
    """The models root that holds ComfyUI's first directory of a model folder (for the download command)."""
    dirs = cm.folder_dirs(folder)
    if dirs and os.path.basename(os.path.normpath(dirs[0])) == folder:
        return os.path.dirname(os.path.normpath(dirs[0]))
    return None


def _models_dir_hint(res) -> str | None:
    """The models root of the first missing file's folder."""
    return next((r for r in (models_root(c.folder) for c in res.missing) if r), None)


def preflight(family: str, preset: str, overrides: dict, engine: str = "comfy"):
    """Resolve and check every file before loading any: all missing files in one error, then the
    header of each present file (truncation, corruption, wrong family or role). stable-diffusion.cpp
    (`engine` "sdcpp") reads GGUF files itself: ComfyUI-GGUF is not asked for."""
    cat, res = resolve_preset(family, preset, overrides, engine)
    if res.missing:
        root = _models_dir_hint(res)
        msg = missing_message(res, cat.families[family].display_name,
                              lambda names: download_command(names, models_dir=root))
        odd = _not_a_file(res)
        raise LockNError(f"{odd}\n{msg}" if odd else msg)
    if engine == "comfy" and any(c.format == "gguf" for c in res.components if c.path) and not seam.gguf_available():
        raise LockNError(cm.GGUF_INSTALL)
    for c in res.components:
        if c.path:
            try:
                _check_file(c.path, family, c.role, _mtime(c.path), os.path.getsize(c.path))
            except _BrokenFile as e:
                if c.entry is None or not c.entry.repo:
                    raise
                cmd = download_command([c.name], models_dir=models_root(c.folder))
                raise LockNError(f"{e}\nDownload it again with:\n  {cmd}") from None
    return cat, res


def _not_a_file(res) -> str | None:
    """A missing file whose name is taken by a directory or a broken symbolic link: say so (the plain
    'missing' would send the user looking for a file that seems to be there)."""
    for c in res.missing:
        for d in cm.folder_dirs(c.folder):
            p = os.path.join(d, *c.name.replace("\\", "/").split("/"))
            if os.path.lexists(p):
                try:
                    fileinfo.read_header(p)
                except fileinfo.FileProblem as e:
                    return str(e)
    return None


class _BrokenFile(LockNError):
    """The file is truncated, corrupt or not a model file at all (as opposed to a model of another kind)."""


@functools.lru_cache(maxsize=256)
def _check_file(path, family, role, mtime, size):
    try:
        info = fileinfo.read_header(path)
    except fileinfo.FileProblem as e:
        raise _BrokenFile(str(e)) from None
    try:
        fam = catalog_mod.builtin().families[family]
        role = "text_encoder" if role in fam.text_encoders else "diffusion_model" if role == "sr_model" else role
        fileinfo.check_identity(info, family, role, fam.display_name)
    except fileinfo.FileProblem as e:
        raise LockNError(str(e)) from None
    return True


# ---- components -> load specs ---------------------------------------------------------------------
def _spec(kind, family, role, comps, **options):
    return cm.LoadSpec(kind=kind, family=family, role=role, files=tuple((c.folder, c.path) for c in comps),
                       options=tuple(sorted(options.items())), mode=catalog_mod.builtin().families[family].mode)


def build_specs(family: str, res, weight_dtype: str = "default") -> dict[str, cm.LoadSpec]:
    """role of output -> LoadSpec, following how the official templates load each family."""
    c = {x.role: x for x in res.components if x.path}
    dm_opts = lambda comp: {"weight_dtype": weight_dtype} if comp.format == "safetensors" else {}
    specs = {}
    fam = catalog_mod.builtin().families[family]
    if fam.outputs:
        return _generic_specs(fam, c, dm_opts)
    if family in ("flux2", "ace15"):
        specs["model"] = _spec("diffusion_model", family, "diffusion_model", [c["diffusion_model"]], **dm_opts(c["diffusion_model"]))
        tes = [c["text_encoder"]] + ([c["lm"]] if "lm" in c else [])
        specs["clip"] = _spec("text_encoder", family, "text_encoder", tes, clip_type=catalog_mod.builtin().families[family].clip_type, device="default")
        specs["vae"] = _spec("vae", family, "vae", [c["vae"]])
    elif family == "wan22":
        if "high_noise" in c or "low_noise" in c:
            if not ("high_noise" in c and "low_noise" in c):
                raise LockNError("Wan2.2 A14B needs both experts: a high-noise and a low-noise diffusion model")
            specs["high"] = _spec("diffusion_model", family, "high_noise", [c["high_noise"]], **dm_opts(c["high_noise"]))
            specs["low"] = _spec("diffusion_model", family, "low_noise", [c["low_noise"]], **dm_opts(c["low_noise"]))
        else:
            specs["high"] = specs["low"] = _spec("diffusion_model", family, "diffusion_model", [c["diffusion_model"]],
                                                 **dm_opts(c["diffusion_model"]))
        specs["clip"] = _spec("text_encoder", family, "text_encoder", [c["text_encoder"]], clip_type=catalog_mod.builtin().families[family].clip_type, device="default")
        specs["vae"] = _spec("vae", family, "vae", [c["vae"]])
    elif family == "ltx2":
        ckpt = c.get("checkpoint")
        if "diffusion_model" in c:
            specs["model"] = _spec("diffusion_model", family, "diffusion_model", [c["diffusion_model"]], **dm_opts(c["diffusion_model"]))
            if "vae" not in c and not ckpt:
                raise LockNError("an LTX-2 diffusion model on its own needs a video VAE file (the 'vae' input)")
        elif ckpt:
            specs["checkpoint"] = _spec("checkpoint", family, "checkpoint", [ckpt])
        else:
            raise LockNError("an LTX-2 preset needs a checkpoint or a diffusion model")
        if "vae" in c:
            specs["vae"] = _spec("vae", family, "vae", [c["vae"]])
        audio = c.get("audio_vae") or ckpt
        if audio is None:
            raise LockNError("LTX-2 needs its audio VAE: an 'audio_vae' file or a checkpoint that contains one")
        specs["audio_vae"] = _spec("audio_vae", family, "audio_vae", [audio])
        if "text_projection" in c:
            specs["clip"] = _spec("text_encoder", family, "text_encoder", [c["text_encoder"], c["text_projection"]],
                                  clip_type=catalog_mod.builtin().families[family].clip_type, device="default")
        elif ckpt:
            specs["clip"] = _spec("text_encoder", family, "text_encoder", [c["text_encoder"], ckpt],
                                  clip_type=catalog_mod.builtin().families[family].clip_type, device="default", ltx_checkpoint_te=True)
        else:
            raise LockNError("the LTX-2 text encoder needs its text projection: a 'text_projection' file or a checkpoint")
    return specs


def _generic_specs(fam, c: dict, dm_opts) -> dict:
    """The families described in data (catalog `outputs`, `text_encoders`, `checkpoint_clip`), loaded as their
    official templates load them: a diffusion model (UNETLoader / UnetLoaderGGUF) or a checkpoint
    (CheckpointLoaderSimple: its model and VAE, and its text encoders where the family's checkpoint carries
    them and the preset gives none), the text encoders in one CLIPLoader / DualCLIPLoader / TripleCLIPLoader
    call of the family's type, a VAE (VAELoader), a CLIP vision model (CLIPVisionLoader) and, where the family
    has one, a second diffusion model (sr_model: a super-resolution pass)."""
    f, specs = fam.id, {}
    tes = [c[r] for r in fam.text_encoders if r in c]
    if "diffusion_model" in c:
        specs["model"] = _spec("diffusion_model", f, "diffusion_model", [c["diffusion_model"]], **dm_opts(c["diffusion_model"]))
    elif "checkpoint" in c:
        specs["checkpoint"] = _spec("checkpoint", f, "checkpoint", [c["checkpoint"]],
                                    **({"clip": True} if fam.checkpoint_clip and not tes and "clip" in fam.outputs else {}))
    else:
        raise LockNError(f"a {fam.display_name} preset needs a diffusion model or a checkpoint")
    if tes:
        specs["clip"] = _spec("text_encoder", f, "text_encoder", tes, clip_type=fam.clip_type, device="default")
    elif "clip" in fam.outputs and not (fam.checkpoint_clip and "checkpoint" in c):
        raise LockNError(f"{fam.display_name} needs its text encoder files ({', '.join(fam.text_encoders)})")
    if "vae" in c:
        specs["vae"] = _spec("vae", f, "vae", [c["vae"]])
    elif "vae" in fam.outputs and "checkpoint" not in c:
        raise LockNError(f"{fam.display_name} needs its VAE file (the 'vae' input)")
    if "clip_vision" in c:
        specs["clip_vision"] = _spec("clip_vision", f, "clip_vision", [c["clip_vision"]])
    elif "clip_vision" in fam.outputs:
        raise LockNError(f"{fam.display_name} needs its CLIP vision file (the 'clip_vision' input)")
    if "sr_model" in c:
        specs["sr_model"] = _spec("diffusion_model", f, "sr_model", [c["sr_model"]], **dm_opts(c["sr_model"]))
    return specs


def _load(spec):
    try:
        return load(spec, lambda: cm.load_from_disk(spec))
    except LockNError:
        raise
    except Exception as e:   # a loader deep in ComfyUI failed: say which file, keep the cause chained
        raise LockNError(f"ComfyUI could not load {spec.display_name} as the {spec.role.replace('_', ' ')} "
                         f"of a {spec.family} model: {type(e).__name__}: {e}") from e


def load_family(family: str, preset: str, overrides: dict, weight_dtype: str = "default") -> dict:
    _, res = preflight(family, preset, overrides)
    specs = build_specs(family, res, weight_dtype)
    REGISTRY.will_use(specs.values())
    out = {}
    for role, spec in specs.items():
        if role == "checkpoint":
            loaded = _load(spec)
            out["model"], ckpt_vae = loaded[0], loaded[-1]
            if len(loaded) == 3:
                out["clip"] = loaded[1]
            out.setdefault("vae", ckpt_vae)
        else:
            out[role] = _load(spec)
    return out


def fingerprint(family: str, preset: str, overrides: dict, weight_dtype: str = "default") -> str:
    """What ComfyUI's cache compares: the files' identity and the registry's drop counters, so an
    evicted model's cached outputs are not served again (and a changed file is reloaded). It changes
    nothing: it only notes, for the registry, which entries the coming prompt uses."""
    try:
        _, res = resolve_preset(family, preset, overrides)
        if res.missing:
            return "missing:" + ",".join(c.name for c in res.missing)
        ids = REGISTRY.ids(build_specs(family, res, weight_dtype).values())
        REGISTRY.note((i for i in ids if i), catalog_mod.builtin().families[family].mode)
        return "|".join(REGISTRY.token(i) for i in ids)
    except Exception as e:          # errors surface when the node runs
        return f"error:{e}"


# ---- the nodes ----------------------------------------------------------------------------------------
def _preset_input(family: str, default: str, tooltip: str):
    ids = [p.id for p in schema_catalog().presets_for(family)]
    return io.Combo.Input("preset", options=ids, default=default if default in ids else (ids[0] if ids else None),
                          tooltip=tooltip)


def _override(role: str, folder: str, tooltip: str):
    return io.Combo.Input(role, options=[PRESET_CHOICE] + cm.list_files(folder), default=PRESET_CHOICE,
                          tooltip=tooltip + " Leave at (preset) to use the preset's file.", advanced=True)


def _dtype_input():
    return io.Combo.Input("weight_dtype", options=WEIGHT_DTYPES, default="default", advanced=True,
                          tooltip="Weight dtype for safetensors diffusion models (as ComfyUI's Load Diffusion Model). "
                                  "GGUF files keep their quantization.")


class _FamilyLoader(io.ComfyNode):
    """One family's loader: a preset, an override per role, outputs in the family's graph order. The
    node id, display name and override inputs come from the catalog's family; subclasses state the
    family, the description, each override's folder and tooltip, and the outputs."""
    FAMILY = DESCRIPTION = PRESET_DEFAULT = ""
    ROLES: dict = {}               # override input (role) -> (model folder, tooltip)
    OUTPUTS: tuple = ()            # (key in load_family's result, output factory)

    @classmethod
    def _family(cls):
        return catalog_mod.builtin().families[cls.FAMILY]

    @classmethod
    def define_schema(cls):
        fam = cls._family()
        return io.Schema(
            node_id=fam.node, display_name=f"{fam.display_name} Loader (LockN)", category=CATEGORY,
            description=cls.DESCRIPTION,
            inputs=[_preset_input(cls.FAMILY, cls.PRESET_DEFAULT, f"Which {fam.display_name} files to load (from the LockN catalog).")]
            + [_override(role, *cls.ROLES[role]) for role in fam.inputs] + [_dtype_input()],
            outputs=[make() for _, make in cls.OUTPUTS])

    @classmethod
    def _overrides(cls, kwargs) -> dict:
        return {role: kwargs.get(role, PRESET_CHOICE) for role in cls._family().inputs}

    @classmethod
    def fingerprint_inputs(cls, preset, weight_dtype="default", **overrides):
        return fingerprint(cls.FAMILY, preset, cls._overrides(overrides), weight_dtype)

    @classmethod
    def execute(cls, preset, weight_dtype="default", **overrides):
        out = load_family(cls.FAMILY, preset, cls._overrides(overrides), weight_dtype)
        return io.NodeOutput(*(out[key] for key, _ in cls.OUTPUTS))

class LockNFlux2Loader(_FamilyLoader):
    FAMILY, PRESET_DEFAULT = "flux2", "flux2-dev-q5_k_m"
    DESCRIPTION = ("Loads a Flux.2 preset: diffusion model (GGUF or safetensors), Mistral/Qwen text encoder and the "
                   "Flux.2 VAE. Missing files are listed with the command that downloads them.")
    ROLES = {"diffusion_model": ("diffusion_models", "Use this diffusion model instead."),
             "text_encoder": ("text_encoders", "Use this text encoder instead."),
             "vae": ("vae", "Use this VAE instead.")}
    OUTPUTS = (("model", lambda: io.Model.Output(display_name="MODEL")), ("clip", lambda: io.Clip.Output(display_name="CLIP")),
               ("vae", lambda: io.Vae.Output(display_name="VAE")))


class LockNWan22Loader(_FamilyLoader):
    FAMILY, PRESET_DEFAULT = "wan22", "wan22-i2v-a14b-q4_k_m"
    DESCRIPTION = ("Loads a Wan2.2 preset: the high-noise and low-noise experts of I2V A14B (GGUF or fp8), umt5 and "
                   "the Wan VAE. A single-model preset (TI2V 5B) returns the same model on both outputs.")
    ROLES = {"high_noise": ("diffusion_models", "Use this high-noise expert instead."),
             "low_noise": ("diffusion_models", "Use this low-noise expert instead."),
             "text_encoder": ("text_encoders", "Use this umt5 text encoder instead."),
             "vae": ("vae", "Use this VAE instead.")}
    OUTPUTS = (("high", lambda: io.Model.Output("high_noise_model", display_name="high noise MODEL")),
               ("low", lambda: io.Model.Output("low_noise_model", display_name="low noise MODEL")),
               ("clip", lambda: io.Clip.Output(display_name="CLIP")), ("vae", lambda: io.Vae.Output(display_name="VAE")))


class LockNLTX2Loader(_FamilyLoader):
    FAMILY, PRESET_DEFAULT = "ltx2", "ltx2-19b-distilled-fp8"
    DESCRIPTION = ("Loads an LTX-2 preset: the audio+video model (checkpoint or GGUF transformer), its video VAE, its "
                   "audio VAE and the Gemma 3 text encoder.")
    ROLES = {"checkpoint": ("checkpoints", "Use this LTX-2 checkpoint instead."),
             "diffusion_model": ("diffusion_models", "Use this LTX-2 transformer (e.g. GGUF) instead."),
             "vae": ("vae", "Use this video VAE instead."),
             "audio_vae": ("checkpoints", "Use this audio VAE (a file in checkpoints/) instead."),
             "text_encoder": ("text_encoders", "Use this Gemma 3 text encoder instead."),
             "text_projection": ("text_encoders", "Use this text projection (embeddings connector) instead.")}
    OUTPUTS = (("model", lambda: io.Model.Output(display_name="MODEL")), ("clip", lambda: io.Clip.Output(display_name="CLIP")),
               ("vae", lambda: io.Vae.Output("vae", display_name="VAE")),
               ("audio_vae", lambda: io.Vae.Output("audio_vae", display_name="audio VAE")))


class LockNAceStep15Loader(_FamilyLoader):
    FAMILY, PRESET_DEFAULT = "ace15", "ace15-turbo"
    DESCRIPTION = ("Loads an ACE-Step 1.5 preset: the DiT (safetensors, or GGUF which ComfyUI-GGUF does not list for "
                   "ACE), the Qwen3 0.6B text encoder with its LM planner, and the audio VAE.")
    ROLES = {"diffusion_model": ("diffusion_models", "Use this ACE-Step 1.5 DiT instead."),
             "text_encoder": ("text_encoders", "Use this Qwen3 0.6B text encoder instead."),
             "lm": ("text_encoders", "Use this Qwen3 LM (1.7B or 4B) instead."),
             "vae": ("vae", "Use this audio VAE instead.")}
    OUTPUTS = (("model", lambda: io.Model.Output(display_name="MODEL")), ("clip", lambda: io.Clip.Output(display_name="CLIP")),
               ("vae", lambda: io.Vae.Output(display_name="VAE")))


# ---- the families described in data (issue 24) -----------------------------------------------------------
OUTPUT_SOCKETS = {"model": lambda: io.Model.Output(display_name="MODEL"), "clip": lambda: io.Clip.Output(display_name="CLIP"),
                  "vae": lambda: io.Vae.Output(display_name="VAE"),
                  "clip_vision": lambda: io.ClipVision.Output(display_name="CLIP_VISION"),
                  "sr_model": lambda: io.Model.Output("sr_model", display_name="SR MODEL")}
ROLE_FOLDERS = {"diffusion_model": "diffusion_models", "sr_model": "diffusion_models", "checkpoint": "checkpoints",
                "vae": "vae", "clip_vision": "clip_vision"}      # every other role: a text encoder
ROLE_TOOLTIPS = {"diffusion_model": "Use this diffusion model instead.", "checkpoint": "Use this checkpoint instead.",
                 "vae": "Use this VAE instead.", "clip_vision": "Use this CLIP vision model instead.",
                 "sr_model": "Use this super-resolution model instead."}


def data_loader(family: str) -> type:
    """The loader node of a family the catalog describes in data: its id, display name, description, default
    preset, per-role override inputs and outputs all come from the catalog's [families.ID]."""
    fam = catalog_mod.builtin().families[family]
    roles = {r: (ROLE_FOLDERS.get(r, "text_encoders"), ROLE_TOOLTIPS.get(r, f"Use this {r.replace('_', ' ')} text encoder instead."))
             for r in fam.inputs}
    return type(fam.node, (_FamilyLoader,), {
        "FAMILY": family, "PRESET_DEFAULT": fam.default_preset, "ROLES": roles, "__doc__": fam.description,
        "DESCRIPTION": fam.description + " Missing files are listed with the command that downloads them.",
        "OUTPUTS": tuple((o, OUTPUT_SOCKETS[o]) for o in fam.outputs), "__module__": __name__})


DATA_LOADERS = [data_loader(f.id) for f in catalog_mod.builtin().families.values() if f.outputs]
LOADER_NODES = [LockNFlux2Loader, LockNWan22Loader, LockNLTX2Loader, LockNAceStep15Loader, *DATA_LOADERS]
