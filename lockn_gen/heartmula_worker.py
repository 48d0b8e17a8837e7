"""The process that holds a HeartMuLa model (issue 24): `python -m lockn_gen.heartmula_worker FD`, run by HeartMuLa's own
Python (lockn_gen/heartmula.py), never ComfyUI's. Commands arrive on stdin as JSON lines; events leave as JSON lines on
file descriptor FD. heartlib's own printing goes to stderr, which the engine keeps for its messages.

    {"op": "load", "model": DIR, "codec": DIR, "tokenizer": P, "gen_config": P, "dtype": "auto" | "bfloat16" | ...}
        -> {"event": "loaded", "seconds": S, "device": "cpu" | "cuda:0", "gpu_bytes": N} | {"event": "error", ...}
    {"op": "generate", "tags": T, "lyrics": L, "seconds": S, "seed": N, "cfg": C, "temperature": T, "topk": K,
     "codec_steps": N, "out": DIR}
        -> {"event": "step", "step": i, "steps": n} ... {"event": "audio", "path": P.npy, "sample_rate": 48000,
           "frames": F, "seconds": S} | {"event": "error", "message": M}

It drives heartlib's HeartMuLaGenPipeline as heartlib's example does (preprocess, the frame loop, HeartCodec's
detokenize), with the codec's steps from the node. LOCKN_HEARTMULA_PRELOAD names a module imported first (the tests'
tiny model sizes: lockn_testing/tiny/heartmula.py registers them in heartlib's table of model sizes).
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import time

from .workers import event_channel


def main(fd: int) -> int:
    send = event_channel(fd)

    try:
        import numpy as np
        import torch
        from tokenizers import Tokenizer
        from heartlib.pipelines import music_generation as mg
    except ImportError as e:
        send(event="error", message=f"heartlib does not import in {sys.executable} ({e})")   # heartmula.NO_HEARTLIB
        return 2
    preload = os.environ.get("LOCKN_HEARTMULA_PRELOAD")
    if preload:
        getattr(importlib.import_module(preload), "register", lambda: None)()
    pipe = None
    for raw in sys.stdin:
        cmd = json.loads(raw)
        if cmd["op"] == "load":
            t0 = time.perf_counter()
            dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
            named = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
            # heartlib's example: the model in bfloat16, the codec in float32; on a CPU both in float32
            mula_dtype = named.get(cmd.get("dtype"), torch.bfloat16 if dev.type == "cuda" else torch.float32)
            try:
                pipe = mg.HeartMuLaGenPipeline(
                    heartmula_path=cmd["model"], heartcodec_path=cmd["codec"], heartmula_device=dev,
                    heartcodec_device=dev, heartmula_dtype=mula_dtype, heartcodec_dtype=torch.float32,
                    lazy_load=False, muq_mulan=None, text_tokenizer=Tokenizer.from_file(cmd["tokenizer"]),
                    config=mg.HeartMuLaGenConfig.from_file(cmd["gen_config"]))
            except Exception as e:           # noqa: BLE001  (any failure to load is reported, the worker stays)
                pipe = None
                send(event="error", message=f"{type(e).__name__}: {e}")
                continue
            gpu = torch.cuda.memory_allocated(dev) if dev.type == "cuda" else 0
            send(event="loaded", seconds=round(time.perf_counter() - t0, 3), device=str(dev), gpu_bytes=int(gpu))
        elif cmd["op"] == "generate":
            if pipe is None:
                send(event="error", message="nothing loaded")
                continue
            t0 = time.perf_counter()
            ms = max(80, int(round(float(cmd["seconds"]) * 1000)))
            total = ms // 80 + 2                  # the prompt's frame, the loop's frames, the codec

            def progress(it, **_kw):
                for i, x in enumerate(it):
                    send(event="step", step=i + 1, steps=total)
                    yield x
            mg.tqdm = progress                    # heartlib's frame loop reports through tqdm
            torch.manual_seed(int(cmd["seed"]))
            try:
                with torch.no_grad():
                    inputs = pipe.preprocess({"tags": cmd["tags"], "lyrics": cmd["lyrics"]}, cfg_scale=float(cmd["cfg"]))
                    frames = pipe._forward(inputs, max_audio_length_ms=ms, temperature=float(cmd["temperature"]),
                                           topk=int(cmd["topk"]), cfg_scale=float(cmd["cfg"]))["frames"]
                    wav = pipe.codec.detokenize(frames.to(pipe.codec_device), num_steps=int(cmd["codec_steps"]),
                                                disable_progress=True)
            except Exception as e:           # noqa: BLE001
                send(event="error", message=f"{type(e).__name__}: {e}")
                continue
            send(event="step", step=total, steps=total)
            path = os.path.join(cmd["out"], f"heartmula-{os.getpid()}.npy")
            np.save(path, wav.to(torch.float32).cpu().numpy())
            send(event="audio", path=path, sample_rate=int(pipe.codec.config.sample_rate), frames=int(frames.shape[-1]),
                 seconds=round(time.perf_counter() - t0, 3))
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
