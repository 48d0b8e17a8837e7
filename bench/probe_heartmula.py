"""Probe for issue 24's HeartMuLa item: can heartlib run here, at tiny size, with its real architecture? Run on
purpose, in a Python environment of heartlib's own (never ComfyUI's: see below), never in CI.

    python3.11 -m venv /tmp/hlvenv
    git -C <a clone of github.com/HeartMuLa/heartlib> archive HEAD | tar -x -C /tmp/heartlib   # or the clone itself
    /tmp/hlvenv/bin/pip install /tmp/heartlib
    /tmp/hlvenv/bin/python bench/probe_heartmula.py

What it does: registers a tiny torchtune llama3_2 flavor (1 layer, 64 wide) as HeartMuLa's backbone and decoder
(heartlib picks them from a table of named flavors: 3B, 300M, 7B, 400M), builds HeartMuLa with random weights and
generates one frame of 8 audio codebooks with classifier-free guidance (batch 2); builds a tiny HeartCodec and
decodes 100 random code frames through its flow-matching decoder (2 steps) and its SQ codec to a waveform.

Found on 2026-12-07 (AMD EPYC, 2 cores, CPU; heartlib 3981c52f of 2026-03-05, torch 2.10.0, torchtune 0.4.0,
torchao 0.9.0, transformers 4.57.0, numpy 2.0.2, Python 3.11):
- heartlib is not on PyPI (`pip download heartlib`: no distribution); its repository installs with pip, pulling
  ~55 packages (a 7.9 GB environment: torch's CUDA wheels). Into ComfyUI 0.33.0's environment it would move
  ComfyUI's own packages (`pip install --dry-run`): numpy 2.4.6 -> 2.0.2, transformers 5.14.1 -> 4.57.0 (a yanked
  release), huggingface_hub 1.33.0 -> 0.36.2, tokenizers, tqdm; so an environment of its own, driven by a worker
  process as the stable-diffusion.cpp node does (LOCKN_SDCPP_PYTHON), is the install path to build.
- Tiny HeartMuLa: 161,280 parameters, one frame (2, 8) in 0.01 s.
- Tiny HeartCodec: 3,447,533 parameters; its decoder hard-wires 256 latent channels (out_channels must be 256,
  latent_hidden_dim 128, in_channels = 2 x 256 + dim) and a window of 93 code frames (duration >= 7.44 s);
  100 frames -> a (2, 384000) waveform (8 s, 48 kHz stereo) in 0.84 s.
"""
from __future__ import annotations

import time

import torch


def main() -> int:
    from torchtune.models import llama3_2
    from heartlib.heartcodec.configuration_heartcodec import HeartCodecConfig
    from heartlib.heartcodec.modeling_heartcodec import HeartCodec
    from heartlib.heartmula import modeling_heartmula as mm
    from heartlib.heartmula.configuration_heartmula import HeartMuLaConfig

    def tiny():
        return llama3_2.llama3_2(vocab_size=256, num_layers=1, num_heads=2, num_kv_heads=1, embed_dim=64,
                                 max_seq_len=256, intermediate_dim=128, attn_dropout=0.0, norm_eps=1e-5,
                                 rope_base=500_000, scale_factor=32)

    mm.FLAVORS["tiny"] = tiny
    torch.manual_seed(0)
    mula = mm.HeartMuLa(HeartMuLaConfig(backbone_flavor="tiny", decoder_flavor="tiny", text_vocab_size=256,
                                        audio_vocab_size=64, audio_num_codebooks=8, muq_dim=16)).eval()
    mula.setup_caches(2)
    b, s = 2, 12
    tokens = torch.randint(0, 60, (b, s, 9))
    t0 = time.time()
    with torch.no_grad():
        frame = mula.generate_frame(tokens, torch.ones(b, s, 9, dtype=torch.bool),
                                    torch.arange(s).unsqueeze(0).repeat(b, 1), temperature=1.0, topk=20, cfg_scale=1.5)
    print(f"HeartMuLa: {sum(p.numel() for p in mula.parameters()):,} parameters, frame {tuple(frame.shape)} "
          f"in {time.time() - t0:.2f} s")
    codec = HeartCodec(HeartCodecConfig(dim=32, codebook_size=64, codebook_dim=8, num_quantizers=8,
                                        attention_head_dim=16, num_attention_heads=2, num_layers=1, num_layers_2=1,
                                        in_channels=544, out_channels=256, init_channel=8,
                                        latent_hidden_dim=128)).eval()
    t0 = time.time()
    wav = codec.detokenize(torch.randint(0, 64, (8, 100)), duration=8.0, num_steps=2, disable_progress=True)
    print(f"HeartCodec: {sum(p.numel() for p in codec.parameters()):,} parameters, waveform {tuple(wav.shape)} "
          f"in {time.time() - t0:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
