"""stable-diffusion.cpp as an engine the pack drives (issue 27): one worker process (lockn_gen/sdcpp_worker.py) per
loaded set of files. Plain module: nothing from ComfyUI.

Why a process: sd.cpp has no way to stop a generation between steps from the outside, and a file it cannot load
ends in a crash of the process that calls it. Here an interrupt kills the worker (the context goes with it; the
next run loads again), and a worker that dies is a clear error naming the files, never a dead ComfyUI. What the
context holds is the worker's resident memory (`rss`), which is what the registry counts.
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from .preflight import LockNError

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


class Interrupted(Exception):
    """The run was stopped; the worker and its context are gone."""


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


class Engine:
    def __init__(self, files: Files, threads: int = 0, python: str | None = None):
        self.files, self.threads, self.python = files, threads, python or worker_python()
        self.proc: subprocess.Popen | None = None
        self._events = None
        self._log = None
        self.load_seconds = 0.0
        self.device = ""                                # where the build computes ("cpu", "cuda0", ...), once loaded
        self.said: list[str] = []                       # sd.cpp's error lines from the worker, newest last

    # ---- the worker ------------------------------------------------------------------------------------
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> float:
        """Start the worker and load the files; the seconds the load took."""
        for p in (self.files.diffusion_model, self.files.llm, self.files.vae):
            if not os.path.isfile(p):
                raise LockNError(f"stable-diffusion.cpp: {p} is missing; pull it with: lockn-gen models pull --file "
                                 f"{os.path.basename(p)}")
        if not installed(self.python):
            raise LockNError(INSTALL.format(python=self.python))
        r, w = os.pipe()
        self.said = []
        self._log = tempfile.TemporaryFile(mode="w+", prefix="lockn-sdcpp-")
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = {**os.environ, "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen([self.python, "-m", "lockn_gen.sdcpp_worker", str(w)], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=self._log, pass_fds=(w,), cwd=repo, env=env,
                                     text=True)
        os.close(w)
        self._events = os.fdopen(r, "r")
        self._send(op="load", files=self.files.__dict__, threads=self.threads)
        ev = self._next(None, None, what="loading")
        if ev["event"] != "loaded":
            self.close()
            raise LockNError(f"stable-diffusion.cpp could not load {self.files.names()}: {ev.get('message')}. "
                             f"It takes Flux.2 dev and klein GGUF/safetensors files with their own text encoder and VAE; "
                             f"check that these are the files the preset names (a different model family or a "
                             f"damaged file fails so)")
        self.load_seconds = float(ev.get("seconds", 0.0))
        self.device = str(ev.get("device") or "unknown")
        return self.load_seconds

    def rss(self) -> int:
        """The worker's resident memory in bytes (0 when it is not running)."""
        if not self.alive():
            return 0
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    # ---- what the residency registry reads (nodes/residency.py: an object ComfyUI does not manage) ----------
    def lockn_resident(self) -> dict:
        """{"bytes": the worker's RSS, "device": where it computes, "alive": whether the context is still there}.
        A worker killed by an interrupt, or dead, holds nothing."""
        alive = self.alive()
        return {"bytes": self.rss() if alive else 0, "device": self.device if alive else "", "alive": alive}

    def lockn_release(self) -> None:
        self.close()

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.proc.kill()
                except OSError:
                    pass
            self.proc.wait()
        for f in (self._events, self._log):
            if f is not None:
                f.close()
        self.proc, self._events, self._log = None, None, None

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
            self._send(op="generate", prompt=prompt, width=width, height=height, steps=steps, seed=seed,
                       guidance=guidance, cfg=cfg, sampler=sampler, batch=batch, out=out)
            try:
                while True:
                    ev = self._next(should_stop, on_step, what="generating")
                    if ev["event"] == "images":
                        return [np.load(p) for p in ev["paths"]]
                    if ev["event"] == "error":
                        raise LockNError(f"stable-diffusion.cpp could not generate with {self.files.names()}: "
                                         f"{ev.get('message')}")
            except (LockNError, Interrupted):
                raise                           # the worker is gone, or idle after its error
            except BaseException:
                # the caller gave up mid-run (ComfyUI's progress hook raises its interrupt inside on_step): a run
                # left behind would go on computing and its events would answer the next command
                self.close()
                raise

    # ---- plumbing ------------------------------------------------------------------------------------------
    def _send(self, **cmd) -> None:
        try:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass                                        # _next reports the dead worker with its log

    def _next(self, should_stop, on_step, what: str) -> dict:
        while True:
            if should_stop is not None and should_stop():
                self.close()
                raise Interrupted(f"stable-diffusion.cpp stopped while {what}")
            ready, _, _ = select.select([self._events], [], [], 0.1)
            if ready:
                line = self._events.readline()
                if line:
                    ev = json.loads(line)
                    if ev["event"] == "log":
                        self.said.append(ev["text"])
                        continue
                    if ev["event"] == "step":
                        if on_step is not None:
                            on_step(ev["step"], ev["steps"])
                        continue
                    return ev
            if self.proc.poll() is not None:
                time.sleep(0.05)
                rc, tail = self.proc.returncode, " | ".join(self.said[-3:]) or self._tail()
                self.close()
                how = f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit code {rc}"
                if what == "loading":
                    raise LockNError(f"stable-diffusion.cpp could not load {self.files.names()}: its worker died ({how}); "
                                     f"sd.cpp said: {tail or '(nothing)'}. It takes Flux.2 dev and klein files with "
                                     f"their own text encoder and VAE at the real layouts; a different model family or a "
                                     f"damaged file fails so. ComfyUI keeps running.")
                raise LockNError(f"stable-diffusion.cpp's worker died ({how}) while {what} with {self.files.names()}; "
                                 f"ComfyUI keeps running. sd.cpp said: {tail or '(nothing)'}")

    def _tail(self, lines: int = 6) -> str:
        try:
            self._log.seek(0)
            return " | ".join(self._log.read().strip().splitlines()[-lines:])
        except (OSError, ValueError, AttributeError):
            return ""
