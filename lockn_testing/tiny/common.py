"""Shared pieces of the tiny-model factory: seeded init, atomic saving, the marker, tokenizer blobs."""
from __future__ import annotations

import base64
import io
import json
import math
import os

import torch

from lockn_testing.comfy_patches import MARKER_KEY

FACTORY = "lockn-gen-tiny"


def init_state(module: torch.nn.Module, seed: int, std_scale: float = 1.0) -> torch.nn.Module:
    """Deterministic random init. ComfyUI builds modules with comfy.ops.disable_weight_init, which
    leaves weights uninitialised: matrices N(0, 1/fan_in), biases 0, norm scales 1, other vectors small."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict(keep_vars=True).items():
            if not torch.is_floating_point(t):
                continue
            low = name.lower()
            leaf = low.rsplit(".", 1)[-1]
            if "std-of-means" in low:
                t.fill_(1.0)
            elif "mean-of-means" in low or leaf in ("running_mean",):
                t.zero_()
            elif leaf == "running_var":
                t.fill_(1.0)
            elif t.ndim >= 2:
                fan_in = max(1, math.prod(t.shape[1:]))
                t.copy_(torch.randn(t.shape, generator=g) * (std_scale / math.sqrt(fan_in)))
            elif leaf == "bias":
                t.zero_()
            elif leaf in ("weight", "alpha", "beta", "gamma", "scale") or "norm" in low or "original0" in leaf:
                t.fill_(1.0)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.02)
    return module


def assert_detected(sd: dict, cfg: dict, what: str, prefix: str = "") -> dict:
    """ComfyUI's model detection reads back exactly the config a tiny model was built from; returns what it read."""
    import comfy.model_detection
    det = comfy.model_detection.detect_unet_config(sd, prefix)
    for k, v in cfg.items():
        assert det.get(k) == v, f"ComfyUI detects {k}={det.get(k)!r} from the tiny {what}, built with {v!r}"
    return det


def bytes_tensor(b: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(b), dtype=torch.uint8).clone()


def marker(family: str, role: str, patch: dict | None = None) -> torch.Tensor:
    """The tensor that tells the test patches (lockn_testing.comfy_patches) which sizes a tiny file has."""
    doc = {"factory": FACTORY, "family": family, "role": role, "patch": patch or {}}
    return bytes_tensor(json.dumps(doc, sort_keys=True).encode())


def with_marker(sd: dict, family: str, role: str, patch: dict | None = None) -> dict:
    return {**sd, MARKER_KEY: marker(family, role, patch)}


def save_safetensors(sd: dict, path: str, dtype: torch.dtype | None = None, metadata: dict | None = None,
                     keep_fp32: tuple[str, ...] = ()) -> str:
    """Save atomically (temporary name, then rename). Float tensors are cast to `dtype` unless their
    name contains one of `keep_fp32`; integer tensors (markers, tokenizer blobs) are kept as they are."""
    from safetensors.torch import save_file

    out = {}
    for k, v in sd.items():
        v = v.detach().contiguous().cpu()
        if dtype is not None and torch.is_floating_point(v) and not any(s in k for s in keep_fp32):
            v = v.to(dtype)
        out[k] = v.contiguous()
    md = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in (metadata or {}).items()} or None
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".partial"
    save_file(out, tmp, metadata=md)
    os.replace(tmp, path)
    return path


def link_or_copy(src: str, dst: str) -> str:
    """A second real file name with the same tiny content (e.g. fp8 and fp4 text encoder names)."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if os.path.exists(dst):
        os.remove(dst)
    try:
        os.link(src, dst)
    except OSError:
        import shutil
        shutil.copyfile(src, dst)
    return dst


# ---- tokenizers -----------------------------------------------------------------------------------------
MISTRAL_SPECIALS = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
                    "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CALLS]", "[IMG]", "<pad>", "[IMG_BREAK]",
                    "[IMG_END]", "[PREFIX]", "[MIDDLE]", "[SUFFIX]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]",
                    "[TOOL_CONTENT]"]
TEKKEN_PATTERN = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|"
                  r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|"
                  r"\s*[\r\n]+|\s+(?!\S)|\s+")


def tekken_json(merges=("th", "he", "in", "er", "an", " a", " t", "the", " the")) -> tuple[bytes, int]:
    """A Tekken vocabulary (what ComfyUI's Flux.2 tokenizer reads from the `tekken_model` key): the 20
    Mistral control tokens, 256 byte tokens and a few merges. Returns (json bytes, vocab size)."""
    vocab = [bytes([i]) for i in range(256)] + [m.encode() for m in merges]
    n = len(vocab) + len(MISTRAL_SPECIALS)
    data = {"config": {"pattern": TEKKEN_PATTERN, "num_vocab_tokens": n, "default_vocab_size": n,
                       "default_num_special_tokens": len(MISTRAL_SPECIALS), "version": "v7"},
            "vocab": [{"rank": i, "token_bytes": base64.b64encode(t).decode(), "token_str": t.decode("latin-1")}
                      for i, t in enumerate(vocab)],
            "special_tokens": [{"rank": i, "token_str": s, "is_control": True} for i, s in enumerate(MISTRAL_SPECIALS)]}
    return json.dumps(data).encode(), n


_CORPUS = ["a photo of a cat sitting on a table", "the quick brown fox jumps over the lazy dog",
           "high fashion, vintage couture, street photography, neo brutalist architecture, pastel paints",
           "The white dragon warrior stands still, eyes full of determination and strength.",
           "The camera slowly moves closer or circles around the warrior, highlighting the heroic spirit.",
           "a cat dog walks runs in the rain city street night day camera pans slowly woman man sings song music"]


def sentencepiece_model(vocab_size: int, model_type: str = "unigram", **ids) -> bytes:
    """Train a tiny SentencePiece model in memory (byte fallback, so any text tokenizes)."""
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(_CORPUS * 60), model_writer=buf, vocab_size=vocab_size,
                                   model_type=model_type, byte_fallback=True, hard_vocab_limit=False,
                                   minloglevel=2, num_threads=1, character_coverage=1.0, **ids)
    return buf.getvalue()
