"""The process that holds a stable-diffusion.cpp context (issue 27): `python -m lockn_gen.sdcpp_worker FD`.

Commands arrive on stdin as JSON lines; events leave as JSON lines on file descriptor FD (not stdout: the binding
points the process's stdout and stderr at /dev/null while it generates). sd.cpp's own log lines go to stderr, which
the engine keeps for its messages. A separate process because sd.cpp cannot be stopped between steps from the
outside and a file it cannot load ends in a crash of the process that calls it (tests/test_sdcpp_binding.py); the
engine (lockn_gen/sdcpp_engine.py) kills this process to interrupt, and names the files when it dies.

    {"op": "load", "files": {"diffusion_model": P, "llm": P, "vae": P}, "threads": N}
        -> {"event": "loaded", "seconds": S, "device": "cpu" | "cuda0" | ...} | {"event": "error", "message": M}
    {"op": "generate", "prompt": T, "width": W, "height": H, "steps": N, "guidance": G, "cfg": C, "seed": S,
     "sampler": "euler", "batch": B, "out": DIR}
        -> {"event": "step", "step": i, "steps": n} ... {"event": "images", "paths": [...], "seconds": S}
           | {"event": "error", "message": M}
    and at any time {"event": "log", "level": 3, "text": L}: sd.cpp's error lines, as they happen
"""
from __future__ import annotations

import ctypes
import json
import os
import sys
import time

from .workers import event_channel


def _device(sdcpp) -> str:
    """Where the build computes: the name of its first GPU or accelerator backend (ggml's device registry), else "cpu"."""
    try:
        lib = sdcpp.stable_diffusion_cpp._lib
        lib.ggml_backend_dev_count.restype = ctypes.c_size_t
        lib.ggml_backend_dev_get.restype, lib.ggml_backend_dev_get.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
        lib.ggml_backend_dev_name.restype, lib.ggml_backend_dev_name.argtypes = ctypes.c_char_p, [ctypes.c_void_p]
        lib.ggml_backend_dev_type.restype, lib.ggml_backend_dev_type.argtypes = ctypes.c_int, [ctypes.c_void_p]
        for i in range(lib.ggml_backend_dev_count()):
            dev = lib.ggml_backend_dev_get(i)
            if lib.ggml_backend_dev_type(dev) != 0:          # 0: GGML_BACKEND_DEVICE_TYPE_CPU
                return lib.ggml_backend_dev_name(dev).decode().lower()
    except (AttributeError, OSError):
        return "unknown"
    return "cpu"


def main(fd: int) -> int:
    send = event_channel(fd)

    try:
        import numpy as np
        import stable_diffusion_cpp as sdcpp
        from stable_diffusion_cpp import StableDiffusion
    except ImportError as e:
        send(event="error", message=f"stable-diffusion.cpp's binding does not import ({e})")
        return 2
    errors: list[str] = []

    @sdcpp.sd_log_callback
    def on_log(level, text, _data):            # level 3: SD_LOG_ERROR; kept to tell a failed load from a good one
        line = text.decode("utf-8", errors="replace").rstrip()
        sys.stderr.write(line + "\n")
        if level >= 3:
            errors.append(line)
            send(event="log", level=int(level), text=line)     # at once: a failed load may end in a crash
    sdcpp.sd_set_log_callback(on_log, ctypes.c_void_p(0))    # instead of the binding's own (set at its import)
    sd = None
    for raw in sys.stdin:
        cmd = json.loads(raw)
        if cmd["op"] == "load":
            files = cmd["files"]
            t0 = time.perf_counter()
            try:
                sd = StableDiffusion(diffusion_model_path=files["diffusion_model"], llm_path=files["llm"],
                                     vae_path=files["vae"], n_threads=int(cmd.get("threads") or -1), verbose=False)
            except (ValueError, OSError) as e:
                send(event="error", message=str(e))
                continue
            failed = [e for e in errors if "failed" in e]
            if failed:
                sd = None
                send(event="error", message="; ".join(failed[-3:]))
                continue
            send(event="loaded", seconds=round(time.perf_counter() - t0, 3), device=_device(sdcpp))
        elif cmd["op"] == "generate":
            if sd is None:
                send(event="error", message="nothing loaded")
                continue
            t0 = time.perf_counter()
            del errors[:]
            images = sd.generate_image(
                prompt=cmd["prompt"], width=int(cmd["width"]), height=int(cmd["height"]),
                sample_steps=int(cmd["steps"]), cfg_scale=float(cmd.get("cfg", 1.0)),
                guidance=float(cmd.get("guidance", 3.5)), seed=int(cmd["seed"]),
                sample_method=cmd.get("sampler", "euler"), batch_count=int(cmd.get("batch", 1)),
                progress_callback=lambda step, steps, _t: send(event="step", step=int(step), steps=int(steps)))
            if not images or errors:
                send(event="error", message="; ".join(errors[-3:]) or "sd.cpp returned no image")
                continue
            paths = []
            for i, im in enumerate(images):
                path = os.path.join(cmd["out"], f"sdcpp-{os.getpid()}-{i}.npy")
                np.save(path, np.asarray(im.convert("RGB"), dtype=np.uint8))
                paths.append(path)
            send(event="images", paths=paths, seconds=round(time.perf_counter() - t0, 3))
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
