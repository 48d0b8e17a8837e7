"""Where model files are in ComfyUI's folders, and how each kind of component is read from disk.

Loading goes through ComfyUI's own loader nodes and ComfyUI-GGUF's, called through their node
contract (`nodes.NODE_CLASS_MAPPINGS[...]`), so the pack follows whatever those loaders do in the
installed versions. ComfyUI functions relied on: folder_paths.get_folder_paths / get_filename_list /
get_full_path, nodes.NODE_CLASS_MAPPINGS (UNETLoader, CLIPLoader, DualCLIPLoader, VAELoader,
CheckpointLoaderSimple, LTXVAudioVAELoader, LTXAVTextEncoderLoader, TripleCLIPLoader, CLIPVisionLoader, and
ComfyUI-GGUF's UnetLoaderGGUF, CLIPLoaderGGUF, DualCLIPLoaderGGUF), looked up through nodes/comfy_seam.py.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import folder_paths

from ..lockn_gen.preflight import LockNError
from . import comfy_seam as seam

MODEL_EXTENSIONS = (".safetensors", ".sft", ".gguf")
# ComfyUI-GGUF does not list ACE-Step 1.5; these GGUF architectures are loaded by allowing them for
# the duration of the call (the file's tensors are then detected by ComfyUI as usual).
EXTRA_GGUF_ARCHES = {"ace", "ace15", "acestep", "acestep15"}
GGUF_INSTALL = ("ComfyUI-GGUF is not installed, and this preset uses .gguf files. Install it into ComfyUI's "
                "custom_nodes: git clone https://github.com/city96/ComfyUI-GGUF (or with ComfyUI-Manager: "
                "'ComfyUI-GGUF' by city96), pip install -r ComfyUI-GGUF/requirements.txt, then restart ComfyUI. "
                "Or pick a safetensors preset.")


# ---- finding files --------------------------------------------------------------------------------
def folder_dirs(folder: str) -> list[str]:
    """The directories ComfyUI searches for a model folder (including extra_model_paths)."""
    names = [folder] + (["unet"] if folder == "diffusion_models" else []) + (["clip"] if folder == "text_encoders" else [])
    out = []
    for n in names:
        try:
            out += [d for d in folder_paths.get_folder_paths(n) if d not in out]
        except KeyError:
            continue
    return out


def list_files(folder: str, extensions: tuple[str, ...] = MODEL_EXTENSIONS) -> list[str]:
    """Model files (safetensors and GGUF) of a folder, as names relative to it: ComfyUI's cached file
    lists (refreshed when a folder changes), GGUF files through ComfyUI-GGUF's folder names."""
    names = set()
    for name in (folder, seam.gguf_folder(folder)):
        if name is None:
            continue
        try:
            names.update(folder_paths.get_filename_list(name))
        except KeyError:                        # a folder name nobody registered (no ComfyUI-GGUF)
            continue
    return sorted(n for n in names if n.lower().endswith(extensions))


def find_file(folder: str, name: str) -> str | None:
    """Full path of `name` in a model folder: the exact relative name first, then the same file
    name in a sub-folder (users often sort models into sub-folders). Never outside the folder."""
    rel = name.replace("\\", "/")
    for d in folder_dirs(folder):
        p = os.path.normpath(os.path.join(d, rel))
        if os.path.commonpath([os.path.abspath(d), os.path.abspath(p)]) == os.path.abspath(d) and os.path.isfile(p):
            return p
    if "/" not in rel:
        for listed in list_files(folder):
            if listed != rel and listed.rsplit("/", 1)[-1] == rel:     # (a listed name that is no file: a broken link)
                return find_file(folder, listed)
    return None


def relative_name(folder: str, path: str) -> str:
    """The name ComfyUI's loader nodes take for a file of a folder."""
    for d in folder_dirs(folder):
        d = os.path.abspath(d)
        if os.path.commonpath([d, os.path.abspath(path)]) == d:
            return os.path.relpath(path, d).replace(os.sep, "/")
    raise LockNError(f"{path} is not inside ComfyUI's {folder} folder(s): {', '.join(folder_dirs(folder))}")


# ---- what to load ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoadSpec:
    """One component to load: the unit the residency registry keeps (see nodes/residency.py)."""
    kind: str            # diffusion_model | checkpoint | text_encoder | vae | audio_vae | clip_vision
    family: str
    role: str
    files: tuple         # ((folder, full path), ...)
    options: tuple = ()  # ((key, value), ...) sorted
    mode: str = "image"  # the family's mode (catalog): image | video | music
    label: str = ""      # what the residency report calls it, where its file names would not say (HeartMuLa's shards)

    def option(self, key, default=None):
        return dict(self.options).get(key, default)

    @property
    def paths(self) -> list[str]:
        return [p for _, p in self.files]

    @property
    def display_name(self) -> str:
        return self.label or " + ".join(os.path.basename(p) for p in self.paths)

    def identity(self) -> tuple:
        """Same model = same files (resolved path, size, mtime) and the same load options."""
        out = []
        for _, p in self.files:
            st = os.stat(p)
            out.append((os.path.realpath(p), st.st_size, st.st_mtime_ns))
        return (self.kind, tuple(out), self.options)


# ---- ComfyUI-GGUF through its node contract -----------------------------------------------------------
def _gguf_arch_allowed(arch: str):
    """ComfyUI-GGUF does not list ACE-Step 1.5: allow its architecture names for one load."""
    return seam.gguf_arch_allowed(arch if arch in EXTRA_GGUF_ARCHES else "")


def _require_gguf():
    if not seam.gguf_available():
        raise LockNError(GGUF_INSTALL)


# ---- reading from disk ---------------------------------------------------------------------------------
def _first(out):
    """A node's result as a tuple (V1 nodes return tuples, V3 nodes NodeOutput)."""
    if hasattr(out, "args"):
        return tuple(out.args)
    if isinstance(out, dict):
        return tuple(out.get("result", ()))
    return tuple(out)


def load_from_disk(spec: LoadSpec):
    """Read one component through ComfyUI's loaders. Returns the loaded object (MODEL patcher, CLIP,
    VAE, CLIP_VISION, or (MODEL, VAE) for a checkpoint: (MODEL, CLIP, VAE) when its option `clip` asks for
    the text encoders it carries)."""
    names = [relative_name(folder, path) for folder, path in spec.files]
    is_gguf = [p.lower().endswith(".gguf") for p in spec.paths]
    if any(is_gguf):
        _require_gguf()
    if spec.kind == "diffusion_model":
        if is_gguf[0]:
            from ..lockn_gen.fileinfo import read_gguf_header
            arch = read_gguf_header(spec.paths[0]).arch
            with _gguf_arch_allowed(arch):
                return _first(seam.node_class("UnetLoaderGGUF")().load_unet(unet_name=names[0]))[0]
        return _first(seam.node_class("UNETLoader")().load_unet(names[0], spec.option("weight_dtype", "default")))[0]
    if spec.kind == "checkpoint":
        model, clip, vae = _first(seam.node_class("CheckpointLoaderSimple")().load_checkpoint(names[0]))[:3]
        if spec.option("clip"):
            if clip is None:
                raise LockNError(f"{names[0]} holds no text encoders, and this preset gives none of its own: add "
                                 f"the family's text encoder files to the preset (or pick the file that includes them)")
            return (model, clip, vae)
        return (model, vae)
    if spec.kind == "clip_vision":
        return _first(seam.node_class("CLIPVisionLoader")().load_clip(names[0]))[0]
    if spec.kind == "vae":
        return _first(seam.node_class("VAELoader")().load_vae(names[0]))[0]
    if spec.kind == "audio_vae":
        return _first(seam.node_class("LTXVAudioVAELoader").execute(ckpt_name=names[0]))[0]
    if spec.kind == "text_encoder":
        ctype = spec.option("clip_type")
        device = spec.option("device", "default")
        if spec.option("ltx_checkpoint_te") and not any(is_gguf):
            return _first(seam.node_class("LTXAVTextEncoderLoader").execute(text_encoder=names[0], ckpt_name=names[1], device=device))[0]
        if len(names) == 1:
            if is_gguf[0]:
                return _first(seam.node_class("CLIPLoaderGGUF")().load_clip(clip_name=names[0], type=ctype))[0]
            return _first(seam.node_class("CLIPLoader")().load_clip(names[0], ctype, device))[0]
        if len(names) == 3:             # SD3 / SD3.5: clip_l, clip_g, t5xxl (the loader has no type: sd3)
            if any(is_gguf):
                return _first(seam.node_class("TripleCLIPLoaderGGUF")().load_clip(
                    clip_name1=names[0], clip_name2=names[1], clip_name3=names[2]))[0]
            return _first(seam.node_class("TripleCLIPLoader").execute(clip_name1=names[0], clip_name2=names[1],
                                                                      clip_name3=names[2]))[0]
        if any(is_gguf):
            return _first(seam.node_class("DualCLIPLoaderGGUF")().load_clip(clip_name1=names[0], clip_name2=names[1], type=ctype))[0]
        return _first(seam.node_class("DualCLIPLoader")().load_clip(names[0], names[1], ctype, device))[0]
    raise LockNError(f"unknown component kind {spec.kind!r}")

