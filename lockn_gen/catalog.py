"""The model catalog: real files (repo, name, folder, size, quant) and the presets built from them.

Plain Python (no ComfyUI import). The data lives in ``catalog.toml`` beside this module; users add
or override files and presets in TOML files of the same shape (``LOCKN_GEN_CATALOG``, a list of
paths separated by the OS path separator, or ``user_catalog_paths`` given by the caller).
"""
from __future__ import annotations

import functools
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

BUILTIN_PATH = Path(__file__).with_name("catalog.toml")
HF_ENDPOINT_DEFAULT = "https://huggingface.co"
FORMATS = ("safetensors", "gguf")
# What runs a preset: ComfyUI's own models (with ComfyUI-GGUF), or stable-diffusion.cpp (the LockN sd.cpp image node,
# issue 27), which takes the Flux.2 diffusion model and VAE files ComfyUI uses but its text encoders as llama.cpp GGUFs.
ENGINES = ("comfy", "sdcpp")
TASKS = ("", "text_to_video")   # a family's task besides its mode's usual (Family.task)
# ComfyUI model folders a catalog file may name.
FOLDERS = ("diffusion_models", "unet", "checkpoints", "text_encoders", "clip", "vae",
           "latent_upscale_models", "loras", "upscale_models", "clip_vision")


# Models the plan compares that the catalog does not offer as presets (issue 24), with why (and, for HeartMuLa, the
# node that runs it and its files): a request for one (a preset id or a family that names it) is answered with this
# instead of "unknown".
NOT_OFFERED = {
    "heartmula": (
        "HeartMuLa (HeartMuLa-oss-3B + HeartCodec) is not a catalog preset: ComfyUI does not load it, and its library "
        "heartlib (not on PyPI) would change ComfyUI's own packages (numpy 2.4.6 -> 2.0.2, transformers 5.14.1 -> 4.57.0), "
        "so the HeartMuLa Music (LockN) node runs it in a Python of its own: make that with LOCKN_SETUP_HEARTMULA=1 "
        "bash scripts/setup.sh (heartlib 3981c52f from github.com/HeartMuLa/heartlib). Its files are three whole "
        "Hugging Face repositories: `lockn-gen models pull heartmula-3b` downloads them (resumable, verified) into "
        "ComfyUI's models/HeartMuLa as heartlib's README lays them out, as do "
        "hf download HeartMuLa/HeartMuLaGen --local-dir models/HeartMuLa && "
        "hf download HeartMuLa/HeartMuLa-oss-3B-happy-new-year --local-dir models/HeartMuLa/HeartMuLa-oss-3B && "
        "hf download HeartMuLa/HeartCodec-oss-20260123 --local-dir models/HeartMuLa/HeartCodec-oss"),
    "cogvideox": (
        "CogVideoX-5B I2V is not offered: ComfyUI core has the architecture but loads only its own key layout, the "
        "public I2V files are in diffusers' layout (made for a wrapper node pack), and core has no CogVideoX "
        "image-to-video node. Use LTX-Video or Wan2.1 for a small image-to-video model."),
}


def not_offered(name: str) -> str | None:
    """Why a model the plan names is not offered, when `name` (a preset id or family) asks for one."""
    low = name.lower().replace("-", "").replace("_", "")
    return next((why for key, why in NOT_OFFERED.items() if key in low), None)


class CatalogError(ValueError):
    """A catalog file is malformed; the message names the file, the entry and the fix."""


def check_relative_name(name: str, what: str = "file name", where: str = "the model folder") -> str:
    """Refuse a model file name that could leave the model folders (``..``, absolute, drive, NUL).

    Returns the name unchanged when it is safe. Forward slashes (sub-folders inside a model
    folder) are allowed, as ComfyUI lists them that way.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{what} is empty")
    if "\x00" in name:
        raise ValueError(f"{what} {name!r} contains a NUL byte")
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        raise ValueError(f"{what} {name!r} is an absolute path; give a name relative to {where}")
    if any(part == ".." for part in PurePosixPath(norm).parts):
        raise ValueError(f"{what} {name!r} leaves {where} ('..' is not allowed)")
    return name


@dataclass(frozen=True)
class FileEntry:
    name: str                 # file name in the ComfyUI model folder
    family: str
    kind: str                 # role the file plays (diffusion_model, text_encoder, vae, ...)
    repo: str                 # Hugging Face repo id; "" when no public source is known
    path: str                 # path inside the repo
    folder: str               # ComfyUI model folder
    size: int                 # bytes (see size_exact)
    format: str               # safetensors | gguf
    quant: str
    license: str = ""
    sha256: str = ""
    size_exact: bool = False
    confirmed: bool = True
    note: str = ""
    revision: str = "main"
    expert: str = ""          # a Wan2.2 A14B LoRA's expert: high_noise | low_noise ("" for both or n/a)
    source: str = "builtin"   # which catalog file defined it

    def url(self, endpoint: str | None = None) -> str:
        """Direct download URL (a `resolve` URL, never a `blob` page)."""
        if not self.repo:
            return ""
        base = (endpoint or os.environ.get("HF_ENDPOINT") or HF_ENDPOINT_DEFAULT).rstrip("/")
        return f"{base}/{self.repo}/resolve/{self.revision}/{self.path}"

    def size_gb(self) -> float:
        return self.size / 1e9

    def editor_model_entry(self) -> dict:
        """An entry for a workflow node's ``properties.models`` (ComfyUI frontend's missing-models dialog)."""
        entry = {"name": self.name, "url": self.url(HF_ENDPOINT_DEFAULT), "directory": self.folder}
        if self.sha256:
            entry.update(hash=self.sha256, hash_type="SHA256")
        return entry


@dataclass(frozen=True)
class Family:
    id: str
    display_name: str
    mode: str                 # image | video | music
    roles: tuple[str, ...]
    defaults: dict = field(default_factory=dict)
    template: str = ""
    node: str = ""            # the loader node's id
    inputs: tuple[str, ...] = ()   # the loader node's per-role override inputs, in order
    clip_type: str = ""       # ComfyUI's CLIPLoader type for its text encoder
    # The families added after the first four (issue 24) describe their loader in data, read by one generic loader:
    text_encoders: tuple[str, ...] = ()   # roles loaded together as the CLIP, in the (Dual/Triple)CLIPLoader's order
    outputs: tuple[str, ...] = ()         # the loader node's outputs: model, clip, vae, clip_vision, sr_model
    checkpoint_clip: bool = False         # its checkpoint file carries the text encoders (CheckpointLoaderSimple's CLIP)
    status: str = ""                      # what works on which ComfyUI version, for the README's table
    description: str = ""                 # the loader node's description (the editor's node info)
    default_preset: str = ""              # the loader node's preset when it is added
    # what its workflow starts from when that is not its mode's usual (image and music: a prompt; video: a start
    # image): "text_to_video" (Wan2.1 T2V). No chain stage takes such a family: the planner ranks it apart.
    task: str = ""


@dataclass(frozen=True)
class Preset:
    id: str
    family: str
    label: str
    components: dict          # role -> file name (required)
    optional: dict = field(default_factory=dict)   # role -> file name (used when present)
    defaults: dict = field(default_factory=dict)
    quality: int = 0
    engine: str = "comfy"     # comfy | sdcpp (ENGINES)
    source: str = "builtin"
    standalone: bool = True   # False: a pass of another preset's workflow (HunyuanVideo 1.5's 1080p super-resolution),
                              # which the planner does not offer on its own

    def settings(self, catalog: "Catalog") -> dict:
        """The family's template settings with this preset's overrides."""
        return {**catalog.families[self.family].defaults, **self.defaults}


@dataclass(frozen=True)
class LoraPreset:
    """LoRA files that go together (a Wan2.2 A14B pair: one per expert), pulled by id like a preset."""
    id: str
    family: str
    label: str
    files: dict               # slot (model | high_noise | low_noise) -> file name
    source: str = "builtin"


class Catalog:
    def __init__(self, families: dict[str, Family], files: dict[str, FileEntry], presets: dict[str, Preset],
                 loras: dict[str, LoraPreset] | None = None):
        self.families = families
        self.files = files
        self.presets = presets
        self.loras = loras or {}

    # ---- queries -------------------------------------------------------------------------
    def preset(self, preset_id: str) -> Preset:
        try:
            return self.presets[preset_id]
        except KeyError:
            why = not_offered(preset_id)
            if why:
                raise KeyError(why) from None
            known = ", ".join(sorted(self.presets))
            raise KeyError(f"unknown preset {preset_id!r}; known presets: {known}") from None

    def presets_for(self, family: str, engine: str = "comfy") -> list[Preset]:
        """The family's presets for one engine (ComfyUI's loaders by default)."""
        return sorted((p for p in self.presets.values() if p.family == family and p.engine == engine),
                      key=lambda p: p.id)

    def file(self, name: str) -> FileEntry | None:
        return self.files.get(name) or self.files.get(PurePosixPath(name.replace("\\", "/")).name)

    def lora_files(self, lora_id: str) -> dict[str, FileEntry]:
        """slot -> FileEntry of a LoRA preset."""
        lp = self.loras[lora_id]
        return {slot: self.files[name] for slot, name in lp.files.items() if name in self.files}

    def preset_files(self, preset_id: str, include_optional: bool = False) -> dict[str, FileEntry]:
        """role -> FileEntry for a preset (optional roles too when asked). A file the catalog does not
        describe (a user's own) is left out: it has no size or source to report."""
        p = self.preset(preset_id)
        roles = dict(p.components)
        if include_optional:
            roles.update(p.optional)
        return {role: self.files[name] for role, name in roles.items() if name in self.files}

    def preset_bytes(self, preset_id: str) -> int:
        """Bytes of the preset's distinct required files (a file used for two roles counts once)."""
        return sum(f.size for f in {f.name: f for f in self.preset_files(preset_id).values()}.values())

    def editor_models(self, preset_id: str, include_optional: bool = False) -> list[dict]:
        seen, out = set(), []
        for f in self.preset_files(preset_id, include_optional).values():
            if f.name not in seen and f.repo:
                seen.add(f.name)
                out.append(f.editor_model_entry())
        return out


# ---- loading -----------------------------------------------------------------------------------
def _table(value, where: str, example: str) -> dict:
    """``value`` when it is a TOML table, else CatalogError saying what was expected."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CatalogError(f"{where} must be a table ({example}), not {value!r}; fix the file or remove it")
    return value


def _check_types(where: str, entry: dict, strings=(), ints=(), tables=()) -> None:
    for key in strings:
        if key in entry and not isinstance(entry[key], str):
            raise CatalogError(f"{where}: {key} must be a string in quotes, e.g. {key} = \"...\", not {entry[key]!r}")
    for key in ints:
        v = entry.get(key)
        if key in entry and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            example = "9_430_000_000" if key == "size" else "2"
            raise CatalogError(f"{where}: {key} must be a whole number of at least 0 (no quotes, e.g. "
                               f"{key} = {example}), not {v!r}")
    for key in tables:
        if key in entry:
            example = "defaults = { steps = 20 }" if key == "defaults" else f"{key} = {{ vae = \"file name\" }}"
            table = _table(entry[key], f"{where}: {key}", example)
            bad = [k for k, v in table.items() if not isinstance(v, str)] if key != "defaults" else []
            if bad:
                raise CatalogError(f"{where}: {key}.{bad[0]} must be a file name in quotes, not {table[bad[0]]!r}")


def _parse(doc: dict, source: str, families: dict, files: dict, presets: dict, loras: dict) -> None:
    for section in ("families", "files", "presets", "loras"):
        for key, entry in _table(doc.get(section), f"{source}: [{section}]",
                                 f"[{section}.\"id\"] headers with key = value lines under them").items():
            _table(entry, f"{source}: {section[:-1]} {key!r}", f"[{section}.\"{key}\"] with key = value lines")
    for fid, f in (doc.get("families") or {}).items():
        try:
            families[fid] = Family(id=fid, display_name=f["display_name"], mode=f["mode"],
                                   roles=tuple(f["roles"]), defaults=dict(f.get("defaults", {})),
                                   template=f.get("template", ""), node=f.get("node", ""),
                                   inputs=tuple(f.get("inputs", ())), clip_type=f.get("clip_type", ""),
                                   text_encoders=tuple(f.get("text_encoders", ())), outputs=tuple(f.get("outputs", ())),
                                   checkpoint_clip=bool(f.get("checkpoint_clip", False)), status=f.get("status", ""),
                                   description=f.get("description", ""), default_preset=f.get("default_preset", ""),
                                   task=f.get("task", ""))
        except KeyError as e:
            raise CatalogError(f"{source}: family {fid!r} lacks {e.args[0]!r}") from None
        if families[fid].task not in TASKS:
            raise CatalogError(f"{source}: family {fid!r}: task {families[fid].task!r} is not one of "
                               f"{', '.join(repr(t) for t in TASKS)} (leave it out for its mode's usual)")
    for name, f in (doc.get("files") or {}).items():
        where = f"{source}: file {name!r}"
        try:
            check_relative_name(name)
        except ValueError as e:
            raise CatalogError(f"{where}: {e}") from None
        missing = [k for k in ("family", "kind", "folder", "size", "format", "quant") if k not in f]
        if missing:
            raise CatalogError(f"{where} lacks {', '.join(missing)}; every file needs family, kind, folder, size, format, quant")
        _check_types(where, f, strings=("family", "kind", "folder", "format", "repo", "path", "sha256", "revision"),
                     ints=("size",))
        if f["format"] not in FORMATS:
            raise CatalogError(f"{where}: format {f['format']!r} is not one of {FORMATS}")
        if f["folder"] not in FOLDERS:
            raise CatalogError(f"{where}: folder {f['folder']!r} is not a ComfyUI model folder ({', '.join(FOLDERS)})")
        sha = str(f.get("sha256", "")).lower()
        if sha and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
            raise CatalogError(f"{where}: sha256 {sha!r} is not 64 hex digits")
        expert = f.get("expert", "")
        if expert not in ("", "high_noise", "low_noise"):
            raise CatalogError(f"{where}: expert {expert!r} is not high_noise or low_noise")
        if f.get("path"):
            try:
                check_relative_name(f["path"], "repo path")
            except ValueError as e:
                raise CatalogError(f"{where}: {e}") from None
        files[name] = FileEntry(
            name=name, family=f["family"], kind=f["kind"], repo=f.get("repo", ""), path=f.get("path", "") or name,
            folder=f["folder"], size=int(f["size"]), format=f["format"], quant=str(f["quant"]),
            license=f.get("license", ""), sha256=sha, size_exact=bool(f.get("size_exact", False)),
            confirmed=bool(f.get("confirmed", True)), note=f.get("note", ""),
            revision=f.get("revision", "main"), expert=expert, source=source)
    for pid, p in (doc.get("presets") or {}).items():
        where = f"{source}: preset {pid!r}"
        if "family" not in p or "components" not in p:
            raise CatalogError(f"{where} needs 'family' and 'components'")
        _check_types(where, p, strings=("family", "label", "engine"), ints=("quality",),
                     tables=("components", "optional", "defaults"))
        engine = p.get("engine", "comfy")
        if engine not in ENGINES:
            raise CatalogError(f"{where}: engine {engine!r} is not one of {', '.join(ENGINES)} (leave it out for ComfyUI's "
                               f"own loaders)")
        presets[pid] = Preset(id=pid, family=p["family"], label=p.get("label", pid),
                              components=dict(p["components"]), optional=dict(p.get("optional", {})),
                              defaults=dict(p.get("defaults", {})), quality=int(p.get("quality", 0)), engine=engine,
                              source=source, standalone=bool(p.get("standalone", True)))
    for lid, p in (doc.get("loras") or {}).items():
        where = f"{source}: LoRA preset {lid!r}"
        if "family" not in p or not isinstance(p.get("files"), dict) or not p["files"]:
            raise CatalogError(f"{where} needs 'family' and 'files' (slot = file name: model, or high_noise and low_noise)")
        bad = [s for s in p["files"] if s not in ("model", "high_noise", "low_noise")]
        if bad:
            raise CatalogError(f"{where}: slot {bad[0]!r} is not model, high_noise or low_noise")
        loras[lid] = LoraPreset(id=lid, family=p["family"], label=p.get("label", lid), files=dict(p["files"]),
                                source=source)


def _validate(families: dict, files: dict, presets: dict, loras: dict) -> None:
    for f in files.values():
        if f.family not in families:
            raise CatalogError(f"{f.source}: file {f.name!r} names unknown family {f.family!r} (known: {', '.join(families)})")
    for p in presets.values():
        where = f"{p.source}: preset {p.id!r}"
        fam = families.get(p.family)
        if fam is None:
            raise CatalogError(f"{where} names unknown family {p.family!r} (known: {', '.join(families)})")
        for role, name in {**p.components, **p.optional}.items():
            if role not in fam.roles:
                raise CatalogError(f"{where}: role {role!r} is not a {fam.display_name} role ({', '.join(fam.roles)})")
            try:
                check_relative_name(name, f"the {role} file name")
            except ValueError as e:
                raise CatalogError(f"{where}: {e}; model files must be inside ComfyUI's model folders") from None
            # a name no [files] entry describes is the user's own file: it loads, but has no download source
    for lp in loras.values():
        where = f"{lp.source}: LoRA preset {lp.id!r}"
        if lp.family not in families:
            raise CatalogError(f"{where} names unknown family {lp.family!r} (known: {', '.join(families)})")
        for slot, name in lp.files.items():
            f = files.get(name)
            if f is None or f.kind != "lora":
                raise CatalogError(f"{where}: {name!r} is not a LoRA file of the catalog (add a [files] entry with kind = \"lora\")")
            if f.family != lp.family or (slot != "model" and f.expert and f.expert != slot):
                raise CatalogError(f"{where}: {name!r} is a {f.family} {f.expert or ''} LoRA, given as {lp.family} {slot}")


def user_catalog_paths() -> list[Path]:
    raw = os.environ.get("LOCKN_GEN_CATALOG", "")
    return [Path(p) for p in raw.split(os.pathsep) if p.strip()]


@functools.lru_cache(maxsize=1)
def builtin() -> Catalog:
    """The pack's own catalog (no user files): the one source of the families' facts."""
    return load(include_env=False)


def load(extra_paths: list[os.PathLike | str] | None = None, include_env: bool = True) -> Catalog:
    """The built-in catalog, then each extra TOML file in order (later entries override by id)."""
    families: dict[str, Family] = {}
    files: dict[str, FileEntry] = {}
    presets: dict[str, Preset] = {}
    loras: dict[str, LoraPreset] = {}
    with open(BUILTIN_PATH, "rb") as fh:
        _parse(tomllib.load(fh), "builtin", families, files, presets, loras)
    paths = list(extra_paths or [])
    if include_env:
        paths += user_catalog_paths()
    for path in paths:
        path = Path(path)
        if not path.is_file():
            continue
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except tomllib.TOMLDecodeError as e:
            raise CatalogError(f"{path}: not valid TOML ({e}); fix the file or remove it") from None
        except UnicodeDecodeError as e:
            raise CatalogError(f"{path}: not valid TOML (not UTF-8 text: byte {e.start}); save it as UTF-8 "
                               f"or remove it") from None
        _parse(doc, str(path), families, files, presets, loras)
    _validate(families, files, presets, loras)
    return Catalog(families, files, presets, loras)
