"""Which bases ComfyUI core's LoRA trainer can train, on the installed ComfyUI (issue 25's first question).

For each base of the tiny real-architecture set, in a process of its own, this runs core's `TrainLoraNode`
the way ComfyUI's executor runs a node (under torch.inference_mode), on a dataset made here (4 random
pictures, or one short clip, or two seconds of noise as audio, one caption), and records:

- whether it trains, or the error that stops it (the last line of ComfyUI's exception);
- the base files read from disk while training (ComfyUI 0.33's trainer deep-copies the model through the
  loader's `cached_patcher_init`: it reads the diffusion model's file again, and refuses a model whose loader
  did not set one, ComfyUI-GGUF's among them);
- whether the base's weights are unchanged afterwards (the first tensors of its state dict, bit for bit);
- the loss per step (random timesteps: a noisy curve, not a measure of learning) and the time.

    COMFYUI_PATH=~/comfy33/ComfyUI ~/comfy33/ComfyUI/.venv/bin/python -m bench.probe_training [--steps 6]
        [--bases klein,devgguf,...] [--out bench/results/DATE_probe_training_VERSION.json]

Random weights say nothing of quality; only whether the path runs and what it costs in reads.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# base -> (family, loaders, how the dataset is made)
BASES = {
    "flux2-klein-bf16": ("flux2", {"unet": ("UNETLoader", "flux-2-klein-4b.safetensors"),
                                   "clip": ("qwen_3_4b.safetensors", "flux2"), "vae": "flux2-vae.safetensors"}, "images"),
    "flux2-klein-fp8": ("flux2", {"unet": ("UNETLoader", "flux-2-klein-4b-fp8.safetensors"),
                                  "clip": ("qwen_3_4b.safetensors", "flux2"), "vae": "flux2-vae.safetensors"}, "images"),
    "flux2-dev-fp8": ("flux2", {"unet": ("UNETLoader", "flux2_dev_fp8mixed.safetensors"),
                                "clip": ("mistral_3_small_flux2_fp8.safetensors", "flux2"), "vae": "flux2-vae.safetensors"}, "images"),
    "flux2-dev-gguf-q4_k_m": ("flux2", {"unet": ("UnetLoaderGGUF", "flux2-dev-Q4_K_M.gguf"),
                                        "clip": ("mistral_3_small_flux2_fp8.safetensors", "flux2"), "vae": "flux2-vae.safetensors"}, "images"),
    "wan22-ti2v-5b-fp16": ("wan22", {"unet": ("UNETLoader", "wan2.2_ti2v_5B_fp16.safetensors"),
                                     "clip": ("umt5_xxl_fp8_e4m3fn_scaled.safetensors", "wan"), "vae": "wan2.2_vae.safetensors"}, "clip"),
    "wan22-i2v-a14b-high-fp8": ("wan22", {"unet": ("UNETLoader", "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors"),
                                          "clip": ("umt5_xxl_fp8_e4m3fn_scaled.safetensors", "wan"), "vae": "wan_2.1_vae.safetensors"}, "i2v"),
    "wan22-i2v-a14b-high-gguf-q4_k_m": ("wan22", {"unet": ("UnetLoaderGGUF", "Wan2.2-I2V-A14B-HighNoise-Q4_K_M.gguf"),
                                                  "clip": ("umt5_xxl_fp8_e4m3fn_scaled.safetensors", "wan"), "vae": "wan_2.1_vae.safetensors"}, "i2v"),
    "ace15-turbo": ("ace15", {"unet": ("UNETLoader", "acestep_v1.5_turbo.safetensors"),
                              "clip2": ("qwen_0.6b_ace15.safetensors", "qwen_1.7b_ace15.safetensors", "ace"),
                              "vae": "ace_1.5_vae.safetensors"}, "audio"),
}


def probe_one(name: str, steps: int) -> dict:
    """In this process: boot ComfyUI on the tiny set, train `steps` steps on base `name`, report."""
    import numpy as np
    from lockn_testing import tiny
    from lockn_testing.harness.inprocess import InProcessComfy
    family, spec, data = BASES[name]
    scratch = tempfile.mkdtemp(prefix="lockn-probe-train-")
    os.makedirs(f"{scratch}/input", exist_ok=True)
    InProcessComfy(str(tiny.ensure(quiet=True)), scratch)
    import comfy.utils
    import nodes
    import torch
    N = nodes.NODE_CLASS_MAPPINGS
    reads: list[str] = []
    original = comfy.utils.load_torch_file

    def counting(path, *a, **k):
        reads.append(os.path.basename(str(path)))
        return original(path, *a, **k)
    comfy.utils.load_torch_file = counting
    gguf_reads: list[str] = []
    holders = [m for n, m in list(sys.modules.items()) if "GGUF" in n and hasattr(m, "gguf_sd_loader")]
    if holders:                             # ComfyUI-GGUF reads its files with its own reader (bound by name in nodes.py)
        gguf_original = holders[0].gguf_sd_loader

        def gguf_counting(path, *a, **k):
            gguf_reads.append(os.path.basename(str(path)))
            return gguf_original(path, *a, **k)
        for m in holders:
            m.gguf_sd_loader = gguf_counting

    def call(cls_name, **kw):
        node = N[cls_name]
        if hasattr(node, "FUNCTION"):
            obj = node()
            return getattr(obj, node.FUNCTION)(**kw)
        out = node.execute(**kw)
        return out.args if hasattr(out, "args") else out

    out: dict = {"base": name, "family": family, "steps": steps}
    with torch.inference_mode():            # as ComfyUI's executor runs every node
        kind, unet = spec["unet"]
        model = call(kind, unet_name=unet, **({"weight_dtype": "default"} if kind == "UNETLoader" else {}))[0]
        if "clip" in spec:
            clip = call("CLIPLoader", clip_name=spec["clip"][0], type=spec["clip"][1], device="default")[0]
        else:
            c1, c2, t = spec["clip2"]
            clip = call("DualCLIPLoader", clip_name1=c1, clip_name2=c2, type=t, device="default")[0]
        vae = call("VAELoader", vae_name=spec["vae"])[0]
        rng = np.random.default_rng(0)
        if data == "images":
            pixels = torch.from_numpy(rng.random((4, 64, 64, 3), dtype=np.float32))
            latents = call("VAEEncode", pixels=pixels, vae=vae)[0]
            positive = call("CLIPTextEncode", clip=clip, text="lockn style")[0]
        elif data == "clip":
            pixels = torch.from_numpy(rng.random((5, 32, 32, 3), dtype=np.float32))
            latents = call("VAEEncode", pixels=pixels, vae=vae)[0]
            positive = call("CLIPTextEncode", clip=clip, text="lockn style")[0]
        elif data == "i2v":
            pixels = torch.from_numpy(rng.random((5, 32, 32, 3), dtype=np.float32))
            latents = call("VAEEncode", pixels=pixels, vae=vae)[0]
            text = call("CLIPTextEncode", clip=clip, text="lockn style")[0]
            positive = call("WanImageToVideo", positive=text, negative=text, vae=vae, width=32, height=32, length=5,
                            batch_size=1, start_image=pixels[:1])[0]
        else:
            audio = {"waveform": torch.from_numpy(rng.standard_normal((1, 2, 96000), dtype=np.float32)) * 0.1,
                     "sample_rate": 48000}
            latents = call("VAEEncodeAudio", audio=audio, vae=vae)[0]
            positive = call("TextEncodeAceStepAudio1.5", clip=clip, tags="lofi", lyrics="[Instrumental]", seed=0,
                            bpm=90, duration=2.0, timesignature="4", language="en", keyscale="C major",
                            generate_audio_codes=False, cfg_scale=2.0, temperature=0.85, top_p=0.9, top_k=0, min_p=0.0)[0]
        out["latent_shape"] = list(latents["samples"].shape)
        out["files_read_at_load"] = reads + gguf_reads        # the watch works: the base's file is among them
        before = {k: v.detach().clone() for k, v in list(model.model.state_dict().items())[:4]}
        reads.clear()
        gguf_reads.clear()
        t0 = time.time()
        try:
            lora, loss, total = call(
                "TrainLoraNode", model=[model], latents=[latents], positive=[positive], batch_size=[1],
                grad_accumulation_steps=[1], steps=[steps], learning_rate=[0.003], rank=[4], optimizer=["AdamW"],
                loss_function=["MSE"], seed=[0], training_dtype=["fp32"], lora_dtype=["fp32"], quantized_backward=[False],
                algorithm=["LoRA"], gradient_checkpointing=[True], checkpoint_depth=[1], offloading=[False],
                existing_lora=["[None]"], bucket_mode=[False], bypass_mode=[False])
            out.update(trains=True, lora_tensors=len(lora), loss=[round(float(x), 4) for x in loss["loss"]])
        except Exception as e:              # the finding: what stops it
            out.update(trains=False, error=f"{type(e).__name__}: {str(e).splitlines()[0][:300]}")
        out["seconds"] = round(time.time() - t0, 2)
        out["files_read_while_training"] = reads + gguf_reads
        out["base_unchanged"] = all(torch.equal(before[k], v) for k, v in list(model.model.state_dict().items())[:4])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--bases", default=",".join(BASES))
    ap.add_argument("--out")
    ap.add_argument("--one", help=argparse.SUPPRESS)      # the child process: one base, JSON on the last line
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(probe_one(args.one, args.steps)))
        return 0
    from bench import machine
    from lockn_testing.harness import comfyui_path
    rows = []
    for name in args.bases.split(","):
        res = subprocess.run([sys.executable, "-m", "bench.probe_training", "--one", name, "--steps", str(args.steps)],
                             cwd=REPO, capture_output=True, text=True, timeout=900)
        try:
            row = json.loads(res.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            row = {"base": name, "trains": False, "error": "probe crashed: " + (res.stderr.strip().splitlines() or ["?"])[-1]}
        rows.append(row)
        print(f"{name:34} {'trains' if row.get('trains') else 'FAILS ':6} read while training: "
              f"{row.get('files_read_while_training')}  base unchanged: {row.get('base_unchanged')}  "
              f"{row.get('error', '')}", flush=True)
    version = (comfyui_path() / "comfyui_version.py").read_text().split('"')[1]
    result = {"comfyui": version, "date": time.strftime("%Y-%m-%d"), "machine": machine(), "rows": rows}
    out = Path(args.out or REPO / "bench" / "results" / f"{time.strftime('%Y-%m-%d')}_probe_training_{version}.json")
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
