"""Tiny HeartMuLa set (issue 24) with heartlib's real architectures: HeartMuLa (torchtune Llama 3.2 backbone and
decoder, text/audio embeddings, codebook heads, MuQ projection) and HeartCodec (flow-matching decoder + scalar codec),
random weights, written by their own save_pretrained in the layout heartlib reads (models/HeartMuLa: tokenizer.json,
gen_config.json, HeartMuLa-oss-3B/, HeartCodec-oss/). A byte-level tokenizer stands in for HeartMuLa's Llama 3 one.

Runs in HeartMuLa's own Python (heartlib is not in ComfyUI's): `python -m lockn_testing.tiny.heartmula --out MODELS`.
heartlib builds the backbone from a table of named sizes (llama-3B, llama-300M, ...); `register()` adds the tiny ones,
and the worker imports this module first in the tests (LOCKN_HEARTMULA_PRELOAD=lockn_testing.tiny.heartmula).

Sizes heartlib's pipeline fixes: 8 codebooks (9 parallel tokens), a MuQ embedding of 512; HeartCodec's decoder works
on 256 latent channels (out_channels 256, in_channels 2 x 256 + dim) in windows of 29.76 s.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

BACKBONE, DECODER = "lockn-tiny-backbone", "lockn-tiny-decoder"
TEXT_VOCAB, AUDIO_VOCAB = 264, 64
BOS, EOS = 256, 257
MODEL_DIR = "HeartMuLa-oss-3B"


def _llama(layers: int):
    from torchtune.models import llama3_2
    return llama3_2.llama3_2(vocab_size=TEXT_VOCAB, num_layers=layers, num_heads=2, num_kv_heads=1, embed_dim=64,
                             max_seq_len=2048, intermediate_dim=128, attn_dropout=0.0, norm_eps=1e-5,
                             rope_base=500_000, scale_factor=32)


def register() -> None:
    from heartlib.heartmula import modeling_heartmula as mm
    mm.FLAVORS.setdefault(BACKBONE, lambda: _llama(2))
    mm.FLAVORS.setdefault(DECODER, lambda: _llama(1))


def _tokenizer(path: str) -> None:
    """Byte-level BPE without merges: every UTF-8 byte a token (ids 0-255), then <|bos|> and <|eos|>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    vocab.update({"<|bos|>": BOS, "<|eos|>": EOS})
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.save(path)


def build(out: str, seed: int = 0) -> dict:
    import torch
    from heartlib.heartcodec.configuration_heartcodec import HeartCodecConfig
    from heartlib.heartcodec.modeling_heartcodec import HeartCodec
    from heartlib.heartmula.configuration_heartmula import HeartMuLaConfig
    from heartlib.heartmula.modeling_heartmula import HeartMuLa
    register()
    root = os.path.join(out, "HeartMuLa")
    os.makedirs(root, exist_ok=True)
    torch.manual_seed(seed)
    mula = HeartMuLa(HeartMuLaConfig(backbone_flavor=BACKBONE, decoder_flavor=DECODER, text_vocab_size=TEXT_VOCAB,
                                     audio_vocab_size=AUDIO_VOCAB, audio_num_codebooks=8, muq_dim=512))
    with torch.no_grad():                      # post_init leaves the codebook heads' tensor as allocated
        mula.audio_head.normal_(0.0, 0.02)
    mula.save_pretrained(os.path.join(root, MODEL_DIR), safe_serialization=True)
    codec = HeartCodec(HeartCodecConfig(dim=32, codebook_size=AUDIO_VOCAB, codebook_dim=8, num_quantizers=8,
                                        attention_head_dim=16, num_attention_heads=2, num_layers=1, num_layers_2=1,
                                        in_channels=2 * 256 + 32, out_channels=256, init_channel=8,
                                        latent_hidden_dim=128))
    codec.save_pretrained(os.path.join(root, "HeartCodec-oss"), safe_serialization=True)
    _tokenizer(os.path.join(root, "tokenizer.json"))
    with open(os.path.join(root, "gen_config.json"), "w") as f:
        json.dump({"text_bos_id": BOS, "text_eos_id": EOS, "audio_eos_id": AUDIO_VOCAB, "empty_id": 0}, f)
    return {os.path.relpath(os.path.join(d, n), out): os.path.getsize(os.path.join(d, n))
            for d, _, names in os.walk(root) for n in names}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    files = build(ap.parse_args().out)
    print(f"heartmula: {len(files)} files, {sum(files.values()) / 2**20:.1f} MB", file=sys.stderr)
