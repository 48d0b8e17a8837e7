"""Read a model file's header (safetensors or GGUF) without reading its weights, check it is whole,
and say what it is (family and role) from its tensor names, shapes and metadata.

Plain Python (struct + json): used by the loader nodes before anything is loaded, so a truncated
download, a corrupt file or a file of the wrong family gets a clear message instead of a traceback
from deep inside a loader.
"""
from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field

# ---- safetensors ------------------------------------------------------------------------------------
_ST_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                   "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8, "F8_E8M0": 1, "F4": 0.5,
                   "F6_E2M3": 0.75, "F6_E3M2": 0.75}
_MAX_HEADER = 100 * 1024 * 1024

# ---- GGUF ---------------------------------------------------------------------------------------------
# ggml type id -> (block size, bytes per block)
_GGML_TYPES = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36),
               10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
               16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110),
               22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8),
               29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66), 39: (32, 17)}
_GGML_NAMES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K",
               11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 24: "I8", 25: "I16", 26: "I32",
               27: "I64", 28: "F64", 30: "BF16"}
_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


class FileProblem(ValueError):
    """The file is not a usable model file; the message names the file, what is wrong and the fix."""


@dataclass
class TensorInfo:
    shape: tuple
    dtype: str


@dataclass
class FileInfo:
    path: str
    format: str                       # safetensors | gguf
    size: int
    tensors: dict[str, TensorInfo]
    metadata: dict = field(default_factory=dict)   # safetensors __metadata__ / GGUF key-values (scalars, strings)

    @property
    def arch(self) -> str:
        return str(self.metadata.get("general.architecture", ""))


def _problem(path, what, fix):
    if fix is _REDOWNLOAD:
        fix = (f"Delete it and download it again (lockn-gen models pull PRESET, or lockn-gen models pull --file "
               f"{os.path.basename(path)}), or move it out of ComfyUI's model folders and pick another file.")
    return FileProblem(f"{os.path.basename(path)}: {what} ({path}). {fix}")


_REDOWNLOAD = object()          # the fix for a broken download: delete it and pull it again (with the file's name)


def read_safetensors_header(path: str) -> FileInfo:
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise _problem(path, f"is {size} bytes, too short to be a safetensors file", _REDOWNLOAD)
        (n,) = struct.unpack("<Q", head)
        if n <= 1 or n > _MAX_HEADER or 8 + n > size:
            raise _problem(path, f"has no valid safetensors header (header length {n}, file {size} bytes): "
                                 "truncated or not a safetensors file", _REDOWNLOAD)
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (UnicodeDecodeError, ValueError) as e:
        raise _problem(path, f"has a corrupt safetensors header ({e})", _REDOWNLOAD) from None
    meta = header.pop("__metadata__", None) or {}
    tensors, end = {}, 0
    for name, t in header.items():
        try:
            start, stop = t["data_offsets"]
            tensors[name] = TensorInfo(tuple(t["shape"]), t["dtype"])
        except (KeyError, TypeError, ValueError):
            raise _problem(path, f"has a corrupt entry for tensor {name!r} in its header", _REDOWNLOAD) from None
        end = max(end, stop)
    if 8 + n + end > size:
        raise _problem(path, f"is truncated: its header describes {8 + n + end} bytes, the file has {size} "
                             f"({size / max(1, 8 + n + end):.0%}); an interrupted download?", _REDOWNLOAD)
    return FileInfo(path, "safetensors", size, tensors, dict(meta))


def _gguf_read(f, fmt):
    n = struct.calcsize(fmt)
    b = f.read(n)
    if len(b) < n:
        raise EOFError
    return struct.unpack(fmt, b)[0]


def _gguf_string(f):
    n = _gguf_read(f, "<Q")
    if n > 1 << 30:
        raise ValueError(f"string length {n}")
    b = f.read(n)
    if len(b) < n:
        raise EOFError
    return b.decode("utf-8", errors="replace")


def _gguf_value(f, vtype, keep=True):
    if vtype in _GGUF_SCALARS:
        return _gguf_read(f, _GGUF_SCALARS[vtype])
    if vtype == 8:
        return _gguf_string(f)
    if vtype == 9:
        itype, count = _gguf_read(f, "<I"), _gguf_read(f, "<Q")
        if itype in _GGUF_SCALARS:                      # skip numeric arrays in one read
            n = struct.calcsize(_GGUF_SCALARS[itype]) * count
            if len(f.read(n)) < n:
                raise EOFError
            return None
        items = [_gguf_value(f, itype, keep) for _ in range(count)]
        return items if keep and count <= 64 else None
    raise ValueError(f"unknown GGUF value type {vtype}")


def read_gguf_header(path: str) -> FileInfo:
    size = os.path.getsize(path)
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"GGUF":
                raise _problem(path, "is not a GGUF file (wrong magic bytes)", _REDOWNLOAD)
            version = _gguf_read(f, "<I")
            if version not in (2, 3):
                raise _problem(path, f"has GGUF version {version}; ComfyUI-GGUF reads versions 2 and 3", _REDOWNLOAD)
            n_tensors, n_kv = _gguf_read(f, "<Q"), _gguf_read(f, "<Q")
            if n_tensors > 1_000_000 or n_kv > 1_000_000:
                raise ValueError(f"it claims {n_tensors} tensors and {n_kv} metadata keys, far more than any model has")
            meta = {}
            for _ in range(n_kv):
                key = _gguf_string(f)
                val = _gguf_value(f, _gguf_read(f, "<I"))
                if val is not None:
                    meta[key] = val
            infos = []
            for _ in range(n_tensors):
                name = _gguf_string(f)
                nd = _gguf_read(f, "<I")
                dims = tuple(_gguf_read(f, "<Q") for _ in range(nd))
                ttype, offset = _gguf_read(f, "<I"), _gguf_read(f, "<Q")
                infos.append((name, dims, ttype, offset))
            align = int(meta.get("general.alignment", 32))
            data_start = -(-f.tell() // align) * align
    except EOFError:
        raise _problem(path, f"is truncated inside its GGUF header (file {size} bytes)", _REDOWNLOAD) from None
    except (ValueError, UnicodeDecodeError, struct.error) as e:
        raise _problem(path, f"has a corrupt GGUF header ({e})", _REDOWNLOAD) from None
    tensors, end = {}, data_start
    for name, dims, ttype, offset in infos:
        block, nbytes = _GGML_TYPES.get(ttype, (None, None))
        shape = tuple(reversed(dims))                   # GGUF stores dims fastest-first
        tensors[name] = TensorInfo(shape, _GGML_NAMES.get(ttype, f"type{ttype}"))
        if block:
            count = 1
            for d in dims:
                count *= d
            end = max(end, data_start + offset + count // block * nbytes)
    if end > size:
        raise _problem(path, f"is truncated: its header describes {end} bytes, the file has {size} "
                             f"({size / end:.0%}); an interrupted download?", _REDOWNLOAD)
    return FileInfo(path, "gguf", size, tensors, meta)


def read_header(path: str) -> FileInfo:
    if os.path.isdir(path):
        raise _problem(path, "is a directory, not a model file", "Move the model file itself there (or rename the "
                       "directory), or download it again with lockn-gen models pull.")
    if os.path.islink(path) and not os.path.exists(path):
        raise _problem(path, f"is a symbolic link to {os.readlink(path)}, which does not exist",
                       "Point the link at the model file, or delete it and download the file again with "
                       "lockn-gen models pull.")
    if not os.path.isfile(path):
        raise FileProblem(f"{os.path.basename(path)}: no such file ({path})")
    if os.path.getsize(path) == 0:
        raise _problem(path, "is empty (0 bytes): an interrupted download or a failed copy", _REDOWNLOAD)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"GGUF":
        return read_gguf_header(path)
    if path.lower().endswith(".gguf"):
        raise _problem(path, "is named .gguf but does not start with the GGUF magic bytes", _REDOWNLOAD)
    return read_safetensors_header(path)


# ---- what is it? ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Identity:
    family: str          # a catalog family (flux2, flux1, wan22, wan21, ltx2, ltxv, ace15, hunyuan15, ...) | "" (unknown)
    role: str            # diffusion_model | checkpoint | text_encoder | lm | vae | audio_vae | text_projection | upscaler | lora | ""
    detail: str          # a readable description
    also: tuple = ()     # other families that use this kind of file as it is (a shared text encoder or VAE)

    def __str__(self):
        return self.detail


UNKNOWN = Identity("", "", "a file LockN Gen does not recognise")
# families whose text encoders include a T5 (t5xxl, t5-base, umt5, byT5): one kind of file to the header check
T5_FAMILIES = ("wan21", "wan21_t2v", "flux1", "sd35", "ltxv", "stable_audio", "hunyuan15")
_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "model.")


def _strip(keys):
    out = set()
    for k in keys:
        for p in _PREFIXES[:2]:
            if k.startswith(p):
                k = k[len(p):]
                break
        out.add(k)
    return out


def identify(info: FileInfo) -> Identity:
    keys = set(info.tensors)
    k = _strip(keys)
    arch = info.arch.lower()
    if any(".lora_A." in x or ".lora_down." in x or ".lora_up." in x for x in list(keys)[:2000]):
        return Identity("", "lora", "a LoRA (load it with a LoRA loader, not as a model)")
    # LTX-2 (audio + video); a checkpoint carries the VAEs too
    if "audio_adaln_single.linear.weight" in k or any(x.startswith("audio_adaln_single.") for x in k):
        if any(x.startswith("vae.") for x in keys):
            return Identity("ltx2", "checkpoint", "an LTX-2 checkpoint (audio+video model with its VAEs)")
        return Identity("ltx2", "diffusion_model", "an LTX-2 audio+video diffusion model")
    if arch == "ltxv" or "adaln_single.linear.weight" in k or "scale_shift_table" in k and "patchify_proj.weight" in k:
        if any(x.startswith("vae.") for x in keys):
            return Identity("ltxv", "checkpoint", "an LTX-Video checkpoint (not LTX-2: no audio stream)")
        return Identity("ltxv", "diffusion_model", "an LTX-Video diffusion model (not LTX-2: no audio stream)")
    if any(x.startswith("audio_vae.") for x in keys):
        return Identity("ltx2", "audio_vae", "an LTX-2 audio VAE")
    if any(x.startswith("text_embedding_projection.") for x in keys) and len(k) < 16:
        return Identity("ltx2", "text_projection", "an LTX-2 text projection (embeddings connector)")
    if any(x.startswith(("txt_in.individual_token_refiner.", "txt_in.t_embedder.")) for x in k) or arch == "hyvid":
        if any(x.startswith(("byt5_in.", "cond_type_embedding")) for x in k):
            return Identity("hunyuan15", "diffusion_model", "a HunyuanVideo 1.5 diffusion model")
        return Identity("skyreels", "diffusion_model", "a HunyuanVideo (1.0 / SkyReels V1) diffusion model")
    if "double_blocks.0.img_attn.qkv.weight" in k:
        if "double_stream_modulation_img.lin.weight" in k:
            return Identity("flux2", "diffusion_model", "a Flux.2 diffusion model")
        return Identity("flux1", "diffusion_model", "a Flux.1 diffusion model (Flux.2 is a different architecture)")
    if "patch_embedding.weight" in k and "blocks.0.self_attn.q.weight" in k:
        in_dim = info.tensors.get("patch_embedding.weight") or info.tensors.get("model.diffusion_model.patch_embedding.weight")
        cin = in_dim.shape[1] if in_dim and len(in_dim.shape) > 1 else None
        if info.format == "gguf" and in_dim:
            cin = in_dim.shape[-4] if len(in_dim.shape) == 5 else cin
        if any(x.startswith("img_emb.") for x in k):
            return Identity("wan21", "diffusion_model", "a Wan2.1 image-to-video diffusion model (with CLIP vision input)")
        kind = {36: "image-to-video (A14B expert)", 16: "text-to-video", 48: "TI2V 5B"}.get(cin, "video")
        return Identity("wan22", "diffusion_model", f"a Wan {kind} diffusion model",
                        also=("wan21_t2v",) if cin == 16 else ())
    if "decoder.layers.0.self_attn.q_proj.weight" in k and "decoder.condition_embedder.weight" in k or arch == "ace":
        return Identity("ace15", "diffusion_model", "an ACE-Step 1.5 diffusion model")
    # VAEs
    if "decoder.head.0.gamma" in keys or "decoder.head.0.gamma" in k:
        return Identity("wan22", "vae", "a Wan VAE", also=("wan21", "wan21_t2v"))
    if "bn.running_mean" in keys and "decoder.conv_in.weight" in keys:
        return Identity("flux2", "vae", "a Flux.2 VAE")
    conv_in = info.tensors.get("decoder.conv_in.weight")
    if conv_in is not None and len(conv_in.shape) == 5:       # 3-D convolutions: a video VAE (HunyuanVideo's, ...)
        return Identity("", "vae", "a video VAE")
    if "decoder.conv_in.weight" in keys and "decoder.up.0.block.0.conv1.weight" in keys:
        return Identity("flux1", "vae", "an image VAE of the SD/Flux.1 kind (Flux.2 needs flux2-vae)", also=("sd35", "sdxl"))
    if any(x.startswith("decoder.layers.") and ("weight_v" in x or "parametrizations" in x) for x in keys):
        return Identity("ace15", "vae", "an ACE-Step audio VAE (Oobleck)")
    if "decoder.conv_in.conv.weight" in keys and "decoder.last_scale_shift_table" in keys:
        return Identity("ltx2", "vae", "an LTX video VAE")
    if "post_upsample_res_blocks.0.conv2.bias" in keys or "initial_conv.weight" in keys and "final_conv.weight" in keys:
        return Identity("ltx2", "upscaler", "an LTX latent upscaler")
    # text encoders
    if "encoder.block.0.layer.0.SelfAttention.q.weight" in keys or arch in ("t5", "t5encoder"):
        return Identity("wan22", "text_encoder", "a umt5/T5 text encoder", also=T5_FAMILIES)
    if "model.layers.0.post_feedforward_layernorm.weight" in keys or arch == "gemma3":
        return Identity("ltx2", "text_encoder", "a Gemma 3 text encoder")
    if "model.layers.0.self_attn.q_norm.weight" in keys or arch == "qwen3":
        emb = info.tensors.get("model.embed_tokens.weight")
        rows = emb.shape[0] if emb else 0
        if rows == 151669:
            return Identity("ace15", "text_encoder", "the ACE-Step 1.5 Qwen3 0.6B text encoder")
        if rows == 217204:
            return Identity("ace15", "lm", "an ACE-Step 1.5 Qwen3 LM (audio-code planner)")
        return Identity("flux2", "text_encoder", "a Qwen3 text encoder (Flux.2 klein)")
    if "model.layers.0.self_attn.q_proj.weight" in keys or arch == "llama":
        if "tekken_model" in keys or arch == "llama":
            return Identity("flux2", "text_encoder", "a Mistral text encoder (Flux.2 dev)")
        return Identity("", "text_encoder", "a Llama-family text encoder")
    return UNKNOWN


# roles that may stand in for one another when checking a file given to a role
_ROLE_EQUIV = {"high_noise": "diffusion_model", "low_noise": "diffusion_model"}


def check_identity(info: FileInfo, family: str, role: str, family_name: str | None = None) -> Identity:
    """Raise FileProblem when the file is recognisably something other than `family`/`role`
    (`family_name`: the family's display name, for the message)."""
    ident = identify(info)
    want_role = _ROLE_EQUIV.get(role, role)
    if not ident.family and not ident.role:
        return ident                                     # unknown files are let through
    fam_ok = not ident.family or ident.family == family or family in ident.also
    role_ok = not ident.role or ident.role == want_role or (want_role == "text_encoder" and ident.role == "lm")
    if fam_ok and role_ok:
        return ident
    name, family_name = os.path.basename(info.path), family_name or family
    raise FileProblem(f"{name} is {ident.detail} (found from its {info.format} header), but it was given as the "
                      f"{role.replace('_', ' ')} of a {family_name} model. Choose a "
                      f"{family_name} {role.replace('_', ' ')} file instead.")

