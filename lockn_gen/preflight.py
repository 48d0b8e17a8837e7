"""What a preset (with per-role overrides) needs, where each file is, and what is missing.

Plain Python: the caller passes how to find a file in a model folder and which directories a folder
searches (inside ComfyUI: folder_paths). Used by the loader nodes before they load anything and by
the preflight route, so a missing model is reported as one message listing everything missing.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

from .catalog import Catalog, FileEntry, check_relative_name

PRESET_CHOICE = "(preset)"      # an override input left at its default: use the preset's file


class LockNError(Exception):
    """An error whose message is meant for the user as is (names the file, the value and the fix)."""


def size_on_disk(path: str | None) -> int | None:
    """A file's size, None when there is no file (what the pool weighs a read by)."""
    try:
        return os.path.getsize(path) if path else None
    except OSError:
        return None


@dataclass
class Component:
    role: str
    name: str                       # file name relative to the model folder
    folder: str
    entry: FileEntry | None         # catalog description (None for a file the catalog does not know)
    path: str | None = None         # resolved full path, None when missing
    overridden: bool = False
    optional: bool = False

    @property
    def format(self) -> str:
        return "gguf" if self.name.lower().endswith(".gguf") else "safetensors"

    def to_dict(self) -> dict:
        e = self.entry
        return {"role": self.role, "name": self.name, "folder": self.folder, "present": self.path is not None,
                "path": self.path, "bytes_on_disk": size_on_disk(self.path), "overridden": self.overridden, "optional": self.optional,
                "size": e.size if e else None, "repo": e.repo if e else None, "url": e.url() if e else None,
                "sha256": (e.sha256 or None) if e else None, "quant": e.quant if e else None}


@dataclass
class Resolution:
    family: str
    preset: str
    components: list[Component] = field(default_factory=list)
    searched: dict[str, list[str]] = field(default_factory=dict)     # folder -> directories searched

    @property
    def missing(self) -> list[Component]:
        return [c for c in self.components if c.path is None and not c.optional]

    def component(self, role: str) -> Component | None:
        return next((c for c in self.components if c.role == role), None)

    def to_dict(self, download_command: Callable[[list[str]], str] | None = None) -> dict:
        missing = self.missing
        return {"family": self.family, "preset": self.preset, "ok": not missing,
                "components": [c.to_dict() for c in self.components],
                "missing": [c.name for c in missing], "searched": self.searched,
                "download_command": download_command([c.name for c in missing]) if (missing and download_command) else None}


def folder_for(catalog: Catalog, role: str, name: str, family: str) -> str:
    """The ComfyUI folder a role's file lives in (the catalog's, or the role's usual one)."""
    entry = catalog.file(name)
    if entry is not None:
        return entry.folder
    return {"checkpoint": "checkpoints", "text_encoder": "text_encoders", "lm": "text_encoders",
            "text_projection": "text_encoders", "vae": "vae", "audio_vae": "checkpoints",
            "upscaler": "latent_upscale_models"}.get(role, "diffusion_models")


ENGINE_NAMES = {"comfy": "ComfyUI's own loaders", "sdcpp": "stable-diffusion.cpp"}
ENGINE_NODES = {"comfy": "Flux.2 Loader (LockN)", "sdcpp": "Flux.2 Image, stable-diffusion.cpp (LockN)"}


def resolve(catalog: Catalog, family: str, preset_id: str, overrides: dict[str, str] | None,
            find: Callable[[str, str], str | None], searched: Callable[[str], list[str]],
            include_optional: bool = False, engine: str = "comfy") -> Resolution:
    """Components of `preset_id` with `overrides` (role -> file name, PRESET_CHOICE or "" = keep), for the
    engine that will run them (ComfyUI's loaders, or stable-diffusion.cpp)."""
    preset = catalog.preset(preset_id)
    if preset.family != family:
        raise LockNError(f"preset {preset_id!r} is a {catalog.families[preset.family].display_name} preset, "
                         f"not {catalog.families[family].display_name}; choose one of: "
                         f"{', '.join(p.id for p in catalog.presets_for(family, engine))}")
    if preset.engine != engine:
        node = ENGINE_NODES.get(preset.engine, preset.engine)
        raise LockNError(f"preset {preset_id!r} is for {ENGINE_NAMES.get(preset.engine, preset.engine)} (use it in the "
                         f"{node} node); this node runs {ENGINE_NAMES.get(engine, engine)}: choose one of "
                         f"{', '.join(p.id for p in catalog.presets_for(family, engine))}")
    roles = dict(preset.components)
    optional = dict(preset.optional) if include_optional else {}
    over = {r: v for r, v in (overrides or {}).items() if v and v != PRESET_CHOICE}
    fam_roles = catalog.families[family].roles
    for role in over:
        if role not in fam_roles:
            raise LockNError(f"{role!r} is not a {catalog.families[family].display_name} role ({', '.join(fam_roles)})")
    res = Resolution(family=family, preset=preset_id)
    for role, name in {**roles, **over, **{r: n for r, n in optional.items() if r not in over}}.items():
        try:
            check_relative_name(name, f"the {role.replace('_', ' ')} file name")
        except ValueError as e:
            raise LockNError(f"{e}; model files must be inside ComfyUI's model folders") from None
        folder = folder_for(catalog, role, name, family)
        comp = Component(role=role, name=name, folder=folder, entry=catalog.file(name), overridden=role in over,
                         optional=role in optional and role not in roles and role not in over)
        comp.path = find(folder, name)
        res.components.append(comp)
        res.searched.setdefault(folder, list(searched(folder)))
    return res


def missing_message(res: Resolution, display_name: str, download_command: Callable[[list[str]], str] | None) -> str:
    """One message naming every missing file: where we looked, its size, and how to get it."""
    missing = res.missing
    lines = [f"{display_name} preset {res.preset!r} is missing {len(missing)} of its {len(res.components)} files:"]
    for c in missing:
        e = c.entry
        size = f"{e.size / 1e9:.2f} GB" if e and e.size >= 1e8 else (f"{e.size / 1e6:.1f} MB" if e else "size unknown")
        src = (f"from https://huggingface.co/{e.repo} ({e.path})" if e and e.repo else
               (e.note if e and e.note else "not in the LockN Gen catalog"))
        where = ", ".join(res.searched.get(c.folder, [])) or f"(no {c.folder} folder configured)"
        lines.append(f"  - {c.role.replace('_', ' ')}: {c.name} [{size}] {src}; looked in: {where}")
    names = [c.name for c in missing if c.entry and c.entry.repo]
    if names and download_command:
        lines.append(f"Download {'them' if len(names) > 1 else 'it'} with:\n  {download_command(names)}")
    no_source = [c.name for c in missing if not (c.entry and c.entry.repo)]
    if no_source:
        lines.append(f"No download source known for: {', '.join(no_source)}; place the file(s) in the folder(s) above.")
    lines.append("Or pick another preset, or choose files you have with the loader's override inputs.")
    return "\n".join(lines)

