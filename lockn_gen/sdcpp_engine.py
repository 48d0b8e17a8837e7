"""stable-diffusion.cpp as an engine the pack drives (issue 27): one worker process (lockn_gen/sdcpp_worker.py) per
loaded set of files. Plain module: nothing from ComfyUI.

Why a process: sd.cpp has no way to stop a generation between steps from the outside, and a file it cannot load
ends in a crash of the process that calls it. Here an interrupt kills the worker (the context goes with it; the
next run loads again), and a worker that dies is a clear error naming the files, never a dead ComfyUI. What the
context holds is the worker's resident memory (`rss`), which is what the registry counts.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from .preflight import LockNError
from .workers import Interrupted, Worker

__all__ = ["Engine", "Files", "Interrupted", "INSTALL", "SAMPLERS", "check_size", "installed", "settings",
           "worker_python"]

INSTALL = ("stable-diffusion.cpp's Python binding is not installed in {python} (the Python that runs it: ComfyUI's own, "
           "or LOCKN_SDCPP_PYTHON). Install it "
           "with the pack's set-up: LOCKN_SETUP_SDCPP=1 bash scripts/setup.sh (CPU; it builds once, about 2 minutes); "
           "for a GPU build add CMAKE_ARGS=\"-DSD_CUDA=ON\" (CUDA toolkit needed), \"-DSD_VULKAN=ON\" or "
           "\"-DSD_METAL=ON\".")


# sd.cpp's samplers offered in the node (its SAMPLE_METHOD_MAP names; the official Flux.2 templates use euler)
SAMPLERS = ("euler", "euler_a", "heun", "dpm2", "dpm++2m", "ipndm", "res_multistep", "lcm")


def settings(preset_settings: dict, steps: int = 0, guidance: float = 0.0) -> dict:
    """The run's steps and guidance: the node's, or the preset's (the family's template settings with the preset's
    overrides: klein 4 steps, dev 20 and guidance 4.0) where the node says 0."""
    return {"steps": int(steps) if steps and steps > 0 else int(preset_settings.get("steps", 20)),
            "guidance": float(guidance) if guidance and guidance > 0 else float(preset_settings.get("guidance", 3.5))}


@dataclass(frozen=True)
class Files:
    diffusion_model: str
    llm: str
    vae: str

    def names(self) -> str:
        return ", ".join(os.path.basename(p) for p in (self.diffusion_model, self.llm, self.vae))


def worker_python() -> str:
    """The Python that runs the worker: ComfyUI's own, or LOCKN_SDCPP_PYTHON (a venv with another build of the
    binding, a CUDA one say, without touching ComfyUI's)."""
    return os.environ.get("LOCKN_SDCPP_PYTHON") or sys.executable


def installed(python: str = sys.executable) -> bool:
    if python == sys.executable:
        import importlib.util
        return importlib.util.find_spec("stable_diffusion_cpp") is not None
    return subprocess.run([python, "-c", "import stable_diffusion_cpp"], capture_output=True).returncode == 0


def check_size(width: int, height: int) -> None:
    """Flux.2's latent is 1/16 of the picture in each direction (VAE 1/8, 2x2 patches)."""
    for name, v in (("width", width), ("height", height)):
        if v < 64 or v > 4096 or v % 16:
            raise LockNError(f"stable-diffusion.cpp: {name} {v} is not a size it takes for Flux.2: use a multiple of 16 "
                             f"from 64 to 4096 (e.g. {max(64, min(4096, round(v / 16) * 16))})")


class Engine(Worker):
    """sd.cpp's context for one set of files, in its worker (lockn_gen/sdcpp_worker.py)."""

    module = "lockn_gen.sdcpp_worker"
    what_it_is = "stable-diffusion.cpp"

    def __init__(self, files: Files, threads: int = 0, python: str | None = None):
        super().__init__(python or worker_python())
        self.files, self.threads = files, threads
        self.load_seconds = 0.0

    def start(self) -> float:
        """Start the worker and load the files; the seconds the load took."""
        for p in (self.files.diffusion_model, self.files.llm, self.files.vae):
            if not os.path.isfile(p):
                raise LockNError(f"stable-diffusion.cpp: {p} is missing; pull it with: lockn-gen models pull --file "
                                 f"{os.path.basename(p)}")
        if not installed(self.python):
            raise LockNError(INSTALL.format(python=self.python))
        self.spawn()
        try:
            ev = self.run({"op": "load", "files": self.files.__dict__, "threads": self.threads}, "loaded",
                          what="loading")
        except LockNError:
            self.close()
            raise
        self.load_seconds = float(ev.get("seconds", 0.0))
        self.device = str(ev.get("device") or "unknown")
        return self.load_seconds

    # ---- a generation ------------------------------------------------------------------------------------
    def generate(self, prompt: str, width: int, height: int, steps: int, seed: int, guidance: float = 3.5,
                 cfg: float = 1.0, sampler: str = "euler", batch: int = 1, on_step=None, should_stop=None) -> list:
        """Pictures as uint8 arrays [H, W, 3]. `on_step(step, steps)` after each step; `should_stop()` polled: when it
        says so the worker is killed and Interrupted raised."""
        import numpy as np
        check_size(width, height)
        if not self.alive():
            self.start()
        with tempfile.TemporaryDirectory(prefix="lockn-sdcpp-") as out:
            ev = self.run({"op": "generate", "prompt": prompt, "width": width, "height": height, "steps": steps,
                           "seed": seed, "guidance": guidance, "cfg": cfg, "sampler": sampler, "batch": batch,
                           "out": out}, "images", should_stop=should_stop, on_step=on_step, what="generating")
            return [np.load(p) for p in ev["paths"]]

    # ---- how it fails --------------------------------------------------------------------------------------
    def failed(self, message: str, what: str) -> LockNError:
        if what == "loading":
            return LockNError(f"stable-diffusion.cpp could not load {self.files.names()}: {message}. "
                              f"It takes Flux.2 dev and klein GGUF/safetensors files with their own text encoder and VAE; "
                              f"check that these are the files the preset names (a different model family or a "
                              f"damaged file fails so)")
        return LockNError(f"stable-diffusion.cpp could not generate with {self.files.names()}: {message}")

    def died(self, how: str, tail: str, what: str) -> LockNError:
        if what == "loading":
            return LockNError(f"stable-diffusion.cpp could not load {self.files.names()}: its worker died ({how}); "
                              f"sd.cpp said: {tail}. It takes Flux.2 dev and klein files with "
                              f"their own text encoder and VAE at the real layouts; a different model family or a "
                              f"damaged file fails so. ComfyUI keeps running.")
        return LockNError(f"stable-diffusion.cpp's worker died ({how}) while {what} with {self.files.names()}; "
                          f"ComfyUI keeps running. sd.cpp said: {tail}")
