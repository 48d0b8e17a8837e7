"""A model held by a worker process the pack drives (stable-diffusion.cpp, issue 27; HeartMuLa, issue 24). Plain
module: nothing from ComfyUI.

Commands go to the worker's stdin as JSON lines; events come back as JSON lines on a file descriptor of their own
(the worker's stdout may be taken over by the library it drives), its stderr is kept for the messages. The residency
registry counts what the worker holds (its resident memory, or what it says it put on a GPU), and releasing the entry
ends the process. An interrupt kills the worker (the model goes with it; the next run loads again), and a worker that
dies is a clear error naming the files, never a dead ComfyUI.
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import tempfile
import time

from .preflight import LockNError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def event_channel(fd: int):
    """The worker's side: `send(**event)` writes one JSON line to the engine's file descriptor `fd`, at once."""
    out = os.fdopen(fd, "w", buffering=1)

    def send(**event):
        out.write(json.dumps(event) + "\n")
        out.flush()
    return send


class Interrupted(Exception):
    """The run was stopped; the worker and what it held are gone."""


class Worker:
    """One worker process (`python -m <module> FD`). Subclasses say what it is (`what_it_is`, for messages) and how
    a death reads (`died`)."""

    module = ""
    what_it_is = "the worker"

    def __init__(self, python: str):
        self.python = python
        self.proc: subprocess.Popen | None = None
        self._events: int | None = None                # the read end of the events pipe (a raw descriptor)
        self._pending = b""                             # bytes read from it, not yet a whole line
        self._log = None
        self.device = ""                                # where it computes ("cpu", "cuda0", ...), once loaded
        self.gpu_bytes = 0                              # what it says it put on a GPU, once loaded
        self.said: list[str] = []                       # the worker's error lines, newest last

    # ---- the process --------------------------------------------------------------------------------------
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self, env: dict | None = None) -> None:
        r, w = os.pipe()
        self.said = []
        self._log = tempfile.TemporaryFile(mode="w+", prefix="lockn-worker-")
        env = {**os.environ, **(env or {}), "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen([self.python, "-m", self.module, str(w)], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=self._log, pass_fds=(w,), cwd=REPO, env=env,
                                     text=True)
        os.close(w)
        self._events, self._pending = r, b""

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
        """{"bytes": what the worker holds (its RSS, or its GPU bytes when larger), "device": where it computes,
        "alive": whether the model is still there}. A worker killed by an interrupt, or dead, holds nothing."""
        alive = self.alive()
        return {"bytes": max(self.rss(), self.gpu_bytes) if alive else 0, "device": self.device if alive else "",
                "alive": alive}

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
        if self._events is not None:
            os.close(self._events)
        if self._log is not None:
            self._log.close()
        self.proc, self._events, self._log, self._pending = None, None, None, b""

    # ---- plumbing ------------------------------------------------------------------------------------------
    def send(self, **cmd) -> None:
        try:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass                                        # next_event reports the dead worker with its log

    def _line(self, timeout: float) -> str | None:
        """The next whole line from the events pipe, waiting at most `timeout` s for more bytes; None when none came
        (or the worker closed the pipe). Read raw, never through a buffered file: a buffered readline takes every
        line the pipe holds, and select() then waits on an empty pipe while the answer sits in the buffer (the
        HeartMuLa run that hung at the end of a loaded suite, 2026-12-08)."""
        while b"\n" not in self._pending:
            ready, _, _ = select.select([self._events], [], [], timeout)
            if not ready:
                return None
            chunk = os.read(self._events, 1 << 16)
            if not chunk:                               # the worker closed its end: it is ending
                time.sleep(0.05)
                return None
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return line.decode("utf-8")

    def next_event(self, should_stop, on_step, what: str) -> dict:
        """The worker's next answer: log lines are kept (`said`), steps go to `on_step(step, steps)`; `should_stop()`
        is polled and, when it says so, the worker is killed and Interrupted raised."""
        while True:
            if should_stop is not None and should_stop():
                self.close()
                raise Interrupted(f"{self.what_it_is} stopped while {what}")
            line = self._line(0.1)
            if line is not None:
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
                rc, tail = self.proc.returncode, " | ".join(self.said[-3:]) or self.tail()
                self.close()
                how = f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit code {rc}"
                raise self.died(how, tail or "(nothing)", what)

    def run(self, cmd: dict, answer: str, should_stop=None, on_step=None, what: str = "working") -> dict:
        """Send a command and wait for its `answer` event; an "error" event is raised as the subclass words it
        (`failed`). A caller that gives up mid-run (ComfyUI's progress hook raises its interrupt inside `on_step`)
        kills the worker: a run left behind would go on computing and its events would answer the next command."""
        self.send(**cmd)
        try:
            while True:
                ev = self.next_event(should_stop, on_step, what)
                if ev["event"] == answer:
                    return ev
                if ev["event"] == "error":
                    raise self.failed(ev.get("message") or "(no message)", what)
        except (LockNError, Interrupted):
            raise                               # the worker is gone, or idle after its error
        except BaseException:
            self.close()
            raise

    def died(self, how: str, tail: str, what: str) -> LockNError:
        return LockNError(f"{self.what_it_is}'s worker died ({how}) while {what}; ComfyUI keeps running. It said: {tail}")

    def failed(self, message: str, what: str) -> LockNError:
        return LockNError(f"{self.what_it_is} failed while {what}: {message}")

    def tail(self, lines: int = 6) -> str:
        try:
            self._log.seek(0)
            return " | ".join(self._log.read().strip().splitlines()[-lines:])
        except (OSError, ValueError, AttributeError):
            return ""
