"""`lockn-gen run`: submit workflows to one or more ComfyUI servers, follow them, download the outputs.

Library use::

    from lockn_gen.client import Client, run_workflow
    c = Client("http://127.0.0.1:8188")
    pid = c.submit(api_prompt)                      # POST /prompt (the websocket is opened first)
    res = c.follow(pid, on_progress=print)          # Result(outputs, executed, cached, error, ...)
    files = c.download_outputs(res, "out")          # GET /view for every output file

    jobs = run_workflow("flow.json", sets=["KSampler.steps=8"], servers=[url1, url2], out_dir="out", jobs=4)

Everything that can be checked is checked before anything is queued: the workflow is converted
(UI -> API) with the server's /object_info, ``--set`` values are coerced to the inputs' types and held to
their ranges (a stage's face to the range of the inputs it feeds), and the prompt is validated
(lockn_gen.workflow). ``--print-api`` needs no server: it converts with a saved /object_info
(``--object-info FILE``), a ``--server``'s, or the pinned node list of the shipped workflows. HTTP goes through urllib, the progress websocket through
websocket-client, and the progress bars through tqdm when it is installed. Nothing imports ComfyUI.
"""
from __future__ import annotations

import argparse
import http.client
import itertools
import json
import mimetypes
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from . import workflow as wfmod
from .workflow import WorkflowError

DEFAULT_SERVER = "http://127.0.0.1:8188"
EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130


class ClientError(RuntimeError):
    """A server could not be reached or answered something unexpected (plain-words message)."""


class ServerGone(ClientError):
    """The server stopped answering (or forgot the prompt) while a prompt of ours was queued or running."""


class PromptRefused(ClientError):
    """The server refused the prompt (its own validation); ``errors`` are plain sentences."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("\n".join(errors))


@dataclass
class Progress:
    """One thing that happened to a prompt: kind is "node" (started), "cached", "step" (sampler step
    value/max), "cache" (a sampler with the step cache ended: skipped value of max steps), "train" (a LoRA
    training step value/max with its loss; at the end ``path``, the saved LoRA), "error" or "done"."""
    prompt_id: str
    kind: str
    node: str | None = None
    title: str | None = None
    class_type: str | None = None
    value: int = 0
    max: int = 0
    loss: float | None = None
    path: str | None = None


@dataclass
class Result:
    prompt_id: str
    outputs: dict = field(default_factory=dict)      # history outputs: {node id: {"images": [...], ...}}
    executed: list = field(default_factory=list)
    cached: list = field(default_factory=list)
    error: dict | None = None                        # the execution_error message
    interrupted: bool = False
    status: dict = field(default_factory=dict)
    step_cache: list = field(default_factory=list)   # lockn.step_cache events: what each cached sampler skipped
    training: list = field(default_factory=list)     # lockn.training events: each step's loss, then the saved LoRA

    @property
    def ok(self) -> bool:
        return self.error is None and not self.interrupted


@dataclass
class JobResult:
    label: str
    server: str
    prompt_id: str | None = None
    files: list = field(default_factory=list)
    error: str | None = None
    result: Result | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def normalize_url(url: str) -> str:
    url = url.strip().rstrip("/")
    return url if "://" in url else "http://" + url


def format_execution_error(err: dict, prompt: dict | None = None) -> str:
    """'node 8 "VAE Decode" (VAEDecode) failed: RuntimeError: ...' from an execution_error message."""
    nid = str(err.get("node_id"))
    node = (prompt or {}).get(nid) or {"class_type": err.get("node_type", "?")}
    node.setdefault("class_type", err.get("node_type", "?"))
    etype = err.get("exception_type") or "error"
    msg = (err.get("exception_message") or "").strip()
    return f"{wfmod.node_label(nid, node)} failed: {etype}: {msg}"


def format_refusal(body, prompt: dict | None = None) -> list[str]:
    """Plain sentences from a 400 answer of POST /prompt ({"error": ..., "node_errors": ...})."""
    if not isinstance(body, dict):
        return [f"the server refused the prompt: {body}"]
    out = []
    for nid, ne in (body.get("node_errors") or {}).items():
        node = dict((prompt or {}).get(nid) or {"class_type": ne.get("class_type", "?")})
        for e in ne.get("errors") or []:
            details = f": {e['details']}" if e.get("details") else ""
            out.append(f"{wfmod.node_label(nid, node)}: {e.get('message', 'error')}{details}")
    err = body.get("error") or {}
    if not out:
        msg = err.get("message") if isinstance(err, dict) else str(err)
        details = f": {err.get('details')}" if isinstance(err, dict) and err.get("details") else ""
        out.append(f"the server refused the prompt: {msg}{details}")
    return out


class Client:
    """One ComfyUI server. Opens its websocket (with this client's id) before the first submit, so no
    progress message of our prompts is missed."""

    def __init__(self, url: str = DEFAULT_SERVER, client_id: str | None = None, http_timeout: float = 60.0,
                 gone_after: float = 10.0):
        self.url = normalize_url(url)
        self.client_id = client_id or uuid.uuid4().hex
        self.http_timeout = http_timeout
        self.gone_after = gone_after                  # follow(): give up after this long without an answer
        self._ws = None
        self._object_info: dict | None = None
        self._prompts: dict[str, dict] = {}           # prompt id -> the prompt we sent (titles for messages)
        self._early: dict[str, list] = {}             # messages of prompts not being followed yet

    # ---- HTTP ------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body=None, headers=None, raw: bool = False,
                 timeout: float | None = None):
        data = body
        hdrs = dict(headers or {})
        if body is not None and not isinstance(body, bytes):
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.http_timeout) as r:
                payload, status = r.read(), r.status
        except urllib.error.HTTPError as e:
            try:
                payload, status = e.read(), e.code
            except (OSError, http.client.HTTPException):
                payload, status = b"", e.code
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            # HTTPException: the answer broke off (IncompleteRead, a connection closed mid-headers)
            reason = getattr(e, "reason", None) or f"{type(e).__name__}: {e}"
            raise ClientError(f"cannot reach the ComfyUI server at {self.url} ({reason})") from None
        if raw:
            return status, payload
        try:
            return status, (json.loads(payload) if payload else None)
        except ValueError:
            return status, payload.decode(errors="replace")

    def get_json(self, path: str, timeout: float | None = None):
        status, body = self._request("GET", path, timeout=timeout)
        if status >= 400:
            raise ClientError(f"{self.url}{path} answered {status}: {str(body)[:500]}")
        return body

    def post_json(self, path: str, body: dict):
        return self._request("POST", path, body)

    def object_info(self, refresh: bool = False) -> dict:
        if self._object_info is None or refresh:
            self._object_info = self.get_json("/object_info")
        return self._object_info

    def queue(self) -> tuple[list[str], list[str]]:
        """(running prompt ids, pending prompt ids)."""
        q = self.get_json("/queue") or {}
        ids = lambda items: [str(i[1]) for i in items or [] if isinstance(i, (list, tuple)) and len(i) > 1]
        return ids(q.get("queue_running")), ids(q.get("queue_pending"))

    def queue_size(self) -> int:
        running, pending = self.queue()
        return len(running) + len(pending)

    def history(self, prompt_id: str) -> dict | None:
        return (self.get_json(f"/history/{urllib.parse.quote(prompt_id)}") or {}).get(prompt_id)

    def upload(self, path: str | Path, subfolder: str | None = None) -> str:
        """Upload a local file into the server's input folder (POST /upload/image, which takes any media), into
        `subfolder` of it if given (replacing a file of that name there); returns the name to put in the input
        (``subfolder/name`` when there is a subfolder)."""
        path = Path(path)
        boundary = uuid.uuid4().hex
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        fields = {"type": "input", **({"subfolder": subfolder, "overwrite": "true"} if subfolder else {})}
        parts = [
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: {ctype}\r\n\r\n".encode() + path.read_bytes() + b"\r\n",
            *(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
              for k, v in fields.items()),
            f"--{boundary}--\r\n".encode(),
        ]
        status, body = self._request("POST", "/upload/image", b"".join(parts),
                                     {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        if status != 200 or not isinstance(body, dict):
            raise ClientError(f"uploading {path} to {self.url} failed ({status}): {body}")
        return f"{body['subfolder']}/{body['name']}" if body.get("subfolder") else body["name"]

    # ---- websocket -------------------------------------------------------------------------------
    def connect(self):
        if self._ws is not None:
            return
        import websocket  # websocket-client
        scheme = "wss" if self.url.startswith("https") else "ws"
        ws_url = f"{scheme}://{self.url.split('://', 1)[1]}/ws?clientId={self.client_id}"
        try:
            self._ws = websocket.create_connection(ws_url, timeout=self.http_timeout)
        except (OSError, websocket.WebSocketException) as e:
            raise ClientError(f"cannot open the websocket of {self.url} ({e})") from None

    def close(self):
        if self._ws is not None:
            try:
                self._ws.close()
            finally:
                self._ws = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- prompts ---------------------------------------------------------------------------------
    def submit(self, prompt: dict, extra_data: dict | None = None) -> str:
        """Queue an API prompt; returns its prompt id. Raises PromptRefused with the server's reasons."""
        self.connect()
        body = {"prompt": prompt, "client_id": self.client_id}
        if extra_data:
            body["extra_data"] = extra_data
        status, answer = self.post_json("/prompt", body)
        if status != 200 or not isinstance(answer, dict) or "prompt_id" not in answer:
            raise PromptRefused(format_refusal(answer, prompt))
        pid = str(answer["prompt_id"])
        self._prompts[pid] = prompt
        return pid

    def cancel(self, prompt_id: str) -> str:
        """Interrupt the prompt if it runs, delete it if it waits. Returns what was done."""
        return self.cancel_many([prompt_id])[prompt_id]

    def cancel_many(self, prompt_ids: list[str]) -> dict[str, str]:
        """Cancel several prompts: the waiting ones are deleted first (so that none of them starts when
        the running one stops), then the running one is interrupted. {prompt id: what was done}."""
        done = {pid: "already finished" for pid in prompt_ids}
        try:
            for _ in range(3):                       # a prompt may move from pending to running meanwhile
                running, pending = self.queue()
                waiting = [pid for pid in prompt_ids if pid in pending]
                if waiting:
                    self.post_json("/queue", {"delete": waiting})
                    done.update({pid: "deleted from the queue" for pid in waiting})
                for pid in [pid for pid in prompt_ids if pid in running]:
                    self.post_json("/interrupt", {"prompt_id": pid})
                    done[pid] = "interrupted"
                if not waiting:
                    break
        except ClientError:
            done.update({pid: "server unreachable" for pid, what in done.items() if what == "already finished"})
        return done

    def _node_info(self, prompt_id: str, node: str | None) -> tuple[str | None, str | None]:
        n = (self._prompts.get(prompt_id) or {}).get(str(node)) or {}
        return (n.get("_meta") or {}).get("title"), n.get("class_type")

    def follow(self, prompt_id: str, on_progress: Callable[[Progress], None] | None = None,
               timeout: float | None = None, stop: threading.Event | None = None) -> Result:
        """Follow a submitted prompt until the server is done with it; returns its Result (outputs from
        /history). Messages of other prompts of this client are kept for their own follow()."""
        emit = on_progress or (lambda p: None)
        try:
            return self._follow(prompt_id, emit, timeout, stop)
        finally:
            emit(Progress(prompt_id, "done"))

    def _follow(self, prompt_id: str, emit, timeout, stop) -> Result:
        res = Result(prompt_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        last_poll = time.monotonic() - 60              # ask once at once: a prompt that finished before we look
        down_since: float | None = None               # when the server stopped answering
        ws_dropped = False                            # the websocket broke: the server may have died/restarted
        pending = self._early.pop(prompt_id, [])
        if self._ws is not None:
            self._ws.settimeout(1.0)
        while True:
            if stop is not None and stop.is_set():
                res.interrupted = True
                return res
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout:g} s")
            had_ws = self._ws is not None
            msg = pending.pop(0) if pending else self._recv()
            if had_ws and self._ws is None:
                ws_dropped = True
            if msg is None:                            # quiet or no websocket: ask the server now and then
                if time.monotonic() - last_poll > (2.0 if self._ws is not None else 0.5):
                    last_poll = time.monotonic()
                    state, why = self._poll(prompt_id, check_queue=ws_dropped or self._ws is None)
                    if state == "done":
                        break
                    if state == "down":
                        down_since = down_since if down_since is not None else last_poll
                        if time.monotonic() - down_since >= self.gone_after:
                            raise ServerGone(
                                f"the ComfyUI server at {self.url} stopped answering while prompt {prompt_id} was "
                                f"queued or running (no answer for {time.monotonic() - down_since:.0f} s: {why}). "
                                f"It crashed, was stopped or is unreachable; the job's outputs were not downloaded "
                                f"and nothing was written. Check the server (its console or log), start it again "
                                f"and run the same command again.")
                        continue
                    down_since = None
                    if state == "lost":
                        raise ServerGone(
                            f"the ComfyUI server at {self.url} no longer knows prompt {prompt_id}: it is neither "
                            f"queued, running nor in the history, so the server was restarted (or its queue and "
                            f"history were cleared) while the job ran. The job's outputs are lost and nothing was "
                            f"written; run the same command again.")
                    if self._ws is None and ws_dropped:
                        self._reconnect()
                elif self._ws is None:
                    time.sleep(0.2)
                continue
            t, d = msg.get("type"), msg.get("data") or {}
            pid = d.get("prompt_id")
            if pid is not None and str(pid) != prompt_id:
                self._early.setdefault(str(pid), []).append(msg)
                continue
            if pid is None and t not in ("progress",):
                continue
            if t == "executing":
                node = d.get("node")
                if node is None:
                    break
                res.executed.append(str(node))
                emit(Progress(prompt_id, "node", str(node), *self._node_info(prompt_id, node)))
            elif t == "execution_cached":
                for node in d.get("nodes") or []:
                    res.cached.append(str(node))
                    emit(Progress(prompt_id, "cached", str(node), *self._node_info(prompt_id, node)))
            elif t == "progress":
                node = d.get("node")
                emit(Progress(prompt_id, "step", str(node), *self._node_info(prompt_id, node),
                              value=int(d.get("value") or 0), max=int(d.get("max") or 0)))
            elif t == "lockn.training":
                node = d.get("node")
                res.training.append(d)
                emit(Progress(prompt_id, "train", str(node), *self._node_info(prompt_id, node),
                              value=int(d.get("step") or d.get("steps") or 0), max=int(d.get("steps") or 0),
                              loss=d.get("loss"), path=d.get("path")))
            elif t == "lockn.step_cache":
                node = d.get("node")
                res.step_cache.append(d)
                emit(Progress(prompt_id, "cache", str(node), *self._node_info(prompt_id, node),
                              value=int(d.get("skipped") or 0), max=int(d.get("steps") or 0)))
            elif t == "execution_error":
                res.error = d
                emit(Progress(prompt_id, "error", str(d.get("node_id")), *self._node_info(prompt_id, d.get("node_id"))))
            elif t == "execution_interrupted":
                res.interrupted = True
        hist = self.history(prompt_id) or {}
        res.outputs = hist.get("outputs") or {}
        res.status = hist.get("status") or {}
        if res.error is None and not res.interrupted:   # messages missed: the history has the story
            for name, data in res.status.get("messages") or []:
                if name == "execution_error":
                    res.error = data
                elif name == "execution_interrupted":
                    res.interrupted = True
        return res

    def _recv(self) -> dict | None:
        if self._ws is None:
            return None
        import websocket
        try:
            raw = self._ws.recv()
        except websocket.WebSocketTimeoutException:
            return None
        except (websocket.WebSocketException, OSError):
            self.close()                               # fall back to polling /history
            return None
        if not isinstance(raw, str):
            return None                                # binary previews
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def _poll(self, prompt_id: str, check_queue: bool) -> tuple[str, str]:
        """Ask the server about a prompt: ("done" | "waiting" | "lost" | "down", why). With ``check_queue``
        a prompt that is neither queued/running nor in the history is "lost" (the queue is asked first:
        ComfyUI moves a prompt from the queue to the history under one lock, so it is always in one)."""
        wait = min(self.http_timeout, max(self.gone_after, 1.0))
        try:
            if check_queue:
                q = self.get_json("/queue", timeout=wait)
                q = q if isinstance(q, dict) else {}
                ids = {str(i[1]) for key in ("queue_running", "queue_pending") for i in q.get(key) or []
                       if isinstance(i, (list, tuple)) and len(i) > 1}
                if prompt_id in ids:
                    return "waiting", ""
            hist = self.get_json(f"/history/{urllib.parse.quote(prompt_id)}", timeout=wait) or {}
        except ClientError as e:
            return "down", str(e)
        if isinstance(hist, dict) and hist.get(prompt_id):                       # the server writes the history entry when done
            return "done", ""
        return ("lost" if check_queue else "waiting"), ""

    def _reconnect(self) -> None:
        """Open the websocket again after it broke (same client id, so the server sends our messages)."""
        try:
            self.connect()
        except ClientError:
            return
        self._ws.settimeout(1.0)

    def run(self, prompt: dict, on_progress=None, timeout: float | None = None) -> Result:
        return self.follow(self.submit(prompt), on_progress, timeout)

    # ---- outputs ---------------------------------------------------------------------------------
    @staticmethod
    def output_items(result: Result) -> list[dict]:
        """Every {filename, subfolder, type} of the files the workflow saved (images, videos, audio, ...);
        previews (type "temp", e.g. the Image candidates of a batch) stay on the server."""
        items = []
        for out in (result.outputs or {}).values():
            for value in (out or {}).values():
                for item in value if isinstance(value, list) else []:
                    if isinstance(item, dict) and item.get("filename") and item.get("type", "output") != "temp":
                        items.append(item)
        return items

    def download_outputs(self, result: Result, out_dir: str | Path = "out") -> list[Path]:
        """Download every output file into out_dir (keeping the server's subfolder); a name that exists
        already gets a numbered suffix instead of being overwritten. Each file is written to a hidden
        temporary name and gets its final name only once it is complete (ClientError otherwise)."""
        out_dir = Path(out_dir)
        paths = []
        for item in self.output_items(result):
            query = urllib.parse.urlencode({"filename": item["filename"], "subfolder": item.get("subfolder", ""),
                                            "type": item.get("type", "output")})
            paths.append(self._download(f"/view?{query}", safe_output_path(out_dir, item)))
        return paths

    def _download(self, path: str, dest: Path) -> Path:
        """GET ``path`` into ``.<name>.<random>.part`` beside ``dest``; only a complete body (as long as
        its Content-Length; a cut chunked body raises) is renamed to ``dest`` (or dest-1, ... when taken).
        On any failure the temporary file is removed and nothing exists under a final name."""
        url = self.url + path
        what = f"downloading {dest.name} from {url}"
        try:
            resp = urllib.request.urlopen(urllib.request.Request(url), timeout=self.http_timeout)
        except urllib.error.HTTPError as e:
            e.close()
            raise ClientError(f"{what} failed (HTTP {e.code}); nothing was saved as {dest}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", None) or f"{type(e).__name__}: {e}"
            raise ClientError(f"{what} failed: the ComfyUI server at {self.url} did not answer ({reason}); "
                              f"nothing was saved as {dest}. Run the same command again once the server is up.") from None
        got, length = 0, None
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with resp:
                cl = (resp.headers.get("Content-Length") or "").strip()
                length = int(cl) if cl.isdigit() else None
                dest.parent.mkdir(parents=True, exist_ok=True)
                with open(tmp, "xb") as fh:
                    while True:
                        try:
                            block = resp.read(1 << 20)
                        except (OSError, http.client.HTTPException) as e:
                            raise _BrokenOff(f"{type(e).__name__}: {e}") from None
                        if not block:
                            break
                        fh.write(block)
                        got += len(block)
            if length is not None and got != length:
                raise _BrokenOff(f"the server closed the connection after {got} of {length} bytes")
            return _place_new(tmp, dest)
        except _BrokenOff as e:
            total = f"{length} bytes" if length is not None else "an unknown size"
            raise ClientError(f"{what} broke off after {got} bytes of {total} ({e}); the incomplete file was "
                              f"deleted and nothing was saved as {dest}. The ComfyUI server at {self.url} may have "
                              f"stopped: check it and run the same command again.") from None
        except OSError as e:                           # writing here failed (full disk, permissions)
            raise ClientError(f"{what}: writing {tmp} failed ({e}); nothing was saved as {dest}. Free space "
                              f"in (or fix the permissions of) {dest.parent}, or pass another --out.") from None
        finally:
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass


class _BrokenOff(Exception):
    """An output download ended before its body was complete."""


def safe_output_path(out_dir: Path, item: dict) -> Path:
    """Where an output the server names ({filename, subfolder}) goes: always inside out_dir, whatever the
    server sends. A subfolder that is absolute, has a drive or a root (Windows: "\\x", "C:x") or climbs
    ("..") is dropped; a file name is reduced to its last part, and one with no usable name refused."""
    out = Path(out_dir)
    raw_sub = str(item.get("subfolder") or "").replace("\\", "/")
    parts = [p for p in raw_sub.split("/") if p not in ("", ".")]
    if raw_sub.startswith("/") or ".." in parts or any(":" in p for p in parts):
        parts = []
    name = str(item.get("filename") or "").replace("\\", "/").rsplit("/", 1)[-1]
    if name in ("", ".", "..") or ":" in name:
        raise ClientError(f"the server named an output {item.get('filename')!r}, which is no file name; nothing was saved")
    dest = out.joinpath(*parts, name)
    root = os.path.abspath(out)
    if os.path.commonpath([root, os.path.abspath(dest)]) != root:      # belt and braces
        raise ClientError(f"the server's output name {item!r} leads outside {out}; nothing was saved")
    return dest


def _place_new(tmp: Path, path: Path) -> Path:
    """Give the complete file ``tmp`` its final name: path, or path-1, path-2, ... when that exists. Never
    overwrites (a hard link fails on an existing name: safe across threads and processes)."""
    for i in itertools.count():
        candidate = path if i == 0 else path.with_name(f"{path.stem}-{i}{path.suffix}")
        try:
            os.link(tmp, candidate)
        except FileExistsError:
            continue
        except OSError:                                # no hard links here: reserve the name, rename over it
            try:
                os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue
            os.replace(tmp, candidate)
        return candidate


# ---- batches over several servers ----------------------------------------------------------------
@dataclass
class _Job:
    label: str
    prompt: dict
    uploads: list
    client: Client | None = None
    prompt_id: str | None = None
    done: bool = False
    source: str = ""                  # which workflow it is a copy of (copies need the same files)


def prepare(sources: Iterable, sets: Iterable[str] | dict = (), object_info: dict | None = None,
            jobs: int = 1, same_seed: bool = False) -> list[_Job]:
    """Convert, apply the settings and validate every workflow; one job per copy. Raises WorkflowError
    with every problem found (nothing is queued then)."""
    sources = list(sources)
    sets = dict(sets) if isinstance(sets, dict) else list(sets)
    errors, out = [], []
    for src in sources:
        name = Path(src).stem if not isinstance(src, dict) else "workflow"
        prefix = f"{src}: " if len(sources) > 1 and not isinstance(src, dict) else ""
        try:
            wf = wfmod.to_api(src, object_info)
            uploads = wfmod.apply_sets(wf, sets, object_info)
            problems = _problems(wf.prompt, object_info, uploads)
            if problems:
                raise WorkflowError(problems)
        except WorkflowError as e:
            errors.extend(prefix + m for m in e.errors)
            continue
        for k in range(max(1, jobs)):
            prompt = wfmod.vary_seeds(wf, object_info, 0 if same_seed else k)
            label = name if jobs <= 1 else f"{name}#{k + 1}"
            out.append(_Job(label, prompt, uploads, source=f"{len(out) - k}:{name}"))
    if errors:
        raise WorkflowError(errors)
    return out


def _problems(prompt: dict, object_info: dict, uploads: list) -> list[str]:
    """validate(), less the complaints about inputs that a --set upload will fill."""
    fills = [f"{wfmod.node_label(u.node_id, prompt[u.node_id])}: input '{u.input}'" for u in uploads]
    return [p for p in wfmod.validate(prompt, object_info) if not any(p.startswith(f) for f in fills)]


class _Bars:
    """Progress on stderr: tqdm bars (one per job for its nodes, one for the sampler steps of the node
    that runs) when ``mode == "bars"``, one line per node when ``mode == "lines"``, nothing when "off"."""

    def __init__(self, mode: str = "off"):
        self.mode = mode
        self.tqdm = None
        if mode == "bars":
            try:
                from tqdm import tqdm
                self.tqdm = tqdm
            except ImportError:
                self.mode = "lines"
        self.lock = threading.Lock()
        self.next_pos = 0

    @staticmethod
    def _name(p: Progress) -> str:
        return f"{p.title} ({p.class_type})" if p.title and p.title != p.class_type else (p.class_type or str(p.node))

    def for_job(self, job: _Job):
        if self.mode == "lines":
            def on_line(p: Progress):
                if p.kind in ("node", "error"):
                    word = "running" if p.kind == "node" else "failed in"
                    print(f"{job.label}: {word} node {p.node} {self._name(p)}", file=sys.stderr, flush=True)
                elif p.kind == "cache":
                    print(f"{job.label}: node {p.node} {self._name(p)}: step cache skipped {p.value}/{p.max} steps",
                          file=sys.stderr, flush=True)
            return on_line
        if self.tqdm is None:
            return None
        with self.lock:
            pos, self.next_pos = self.next_pos, self.next_pos + 2
        server = job.client.url.split("://", 1)[1]
        nodes = self.tqdm(total=len(job.prompt), desc=f"{job.label} @ {server}", unit="node", position=pos,
                          leave=True, dynamic_ncols=True)
        steps = self.tqdm(total=0, desc="  steps", unit="step", position=pos + 1, leave=False, dynamic_ncols=True)

        def on_progress(p: Progress):
            if p.kind in ("node", "cached"):
                nodes.update(1)
                nodes.set_postfix_str(f"{'cached ' if p.kind == 'cached' else ''}{p.node} {self._name(p)}")
            elif p.kind == "step":
                if steps.total != p.max:
                    steps.reset(total=p.max)
                steps.n = p.value
                steps.set_description(f"  {self._name(p)}")
                steps.refresh()
            elif p.kind == "cache":
                nodes.set_postfix_str(f"{p.node} {self._name(p)}: step cache skipped {p.value}/{p.max}")
            elif p.kind == "done":
                steps.close()
                nodes.close()
        return on_progress


def run_workflow(sources, sets: Iterable[str] | dict = (), servers: Iterable[str] = (DEFAULT_SERVER,),
                 out_dir: str | Path = "out", jobs: int = 1, timeout: float | None = None,
                 on_progress: Callable[[str, Progress], None] | None = None, progress: str = "off",
                 same_seed: bool = False, log: Callable[[str], None] | None = None,
                 master: str | None = None) -> list[JobResult]:
    """Run one or more workflows (paths or dicts; UI or API format), ``jobs`` copies of each (seeds of
    copies k>0 moved by k unless ``same_seed``); download the outputs into ``out_dir``. Each job goes where
    its models cost least to bring in (lockn_gen.pool): over the workers of a ComfyUI-Distributed ``master``
    and the master itself, or over ``servers`` (lockn_gen.distributed). Raises WorkflowError (nothing
    queued) when a workflow or a --set is wrong, ClientError when no server answers, KeyboardInterrupt after
    cancelling this batch's prompts on Ctrl-C."""
    from . import distributed
    log = log or (lambda s: None)
    sources = [sources] if isinstance(sources, (str, Path, dict)) else list(sources)
    fleet = distributed.Fleet(servers or [DEFAULT_SERVER], master=master, log=log)
    try:
        up = fleet.up()
        for m in fleet.pool.members:
            if m.down:
                log(f"warning: {m.label} {m.down}; not using it")
        if not up:
            raise ClientError("no server can take jobs: " + "; ".join(f"{m.label} {m.down}" for m in fleet.pool.members))
        object_info = fleet.clients[up[0].id].object_info()
        batch = prepare(sources, sets, object_info, jobs, same_seed)
        for m in up[1:]:                              # every server must be able to run the prompts
            oi = fleet.clients[m.id].object_info()
            problems = [f"{m.url}: {p}" for job in batch for p in _problems(job.prompt, oi, job.uploads)]
            if problems:
                raise WorkflowError(sorted(set(problems)))
        if fleet.master is not None:
            moi = fleet.master.object_info()
            if distributed.COLLECTOR not in moi:
                raise ClientError(f"the master {fleet.master.url} does not know {distributed.COLLECTOR}: "
                                  f"ComfyUI-Distributed is not loaded there ({distributed.INSTALL})")
            for job in batch:                         # every output can come back through the collector
                distributed.with_collectors(job.prompt, moi)
            object_info = moi
        bars = _Bars(progress)
        stop = threading.Event()
        queued: list = []
        try:
            results = distributed.run_batch(fleet, batch, object_info, out_dir, timeout, bars, on_progress,
                                            stop, log, queued)
        except KeyboardInterrupt:
            stop.set()
            for labels, what, url in fleet.cancel_all(queued):
                log(f"{labels}: {what} on {url}")
            raise
        if batch and len(results) == len(batch) and all(getattr(r, "refused", False)
                                                         for r in results.values()):
            raise WorkflowError([f"{r.label}: {r.error}" for r in results.values()])
        return [results[id(j)] for j in batch if id(j) in results]
    finally:
        fleet.close()


# ---- command line --------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser):
    p.add_argument("workflows", nargs="+", metavar="WORKFLOW",
                   help="workflow file(s): the editor's format (Save / Export) or the API format")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="TITLE.INPUT=VALUE",
                   help="change an input before queueing; TITLE is a node title, node id, class name or "
                        "subgraph title (repeatable), e.g. --set \"KSampler.steps=20\"")
    p.add_argument("--server", dest="servers", action="append", default=[], metavar="URL",
                   help=f"ComfyUI server (repeatable: each job goes where its models cost least to bring in: on "
                        f"the GPU, in RAM, on disk, plus the queue's wait); default {DEFAULT_SERVER}")
    p.add_argument("--master", metavar="URL",
                   help="a ComfyUI-Distributed master: jobs go to its enabled workers (or the master) where their "
                        "models cost least to bring in, and come back through its collector")
    p.add_argument("--out", default="out", metavar="DIR", help="where to download the outputs (default ./out)")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="give up on (and cancel) a job that takes longer than S seconds")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="run N copies of each workflow; copy k moves the seeds by k (see --same-seed)")
    p.add_argument("--same-seed", action="store_true", help="keep the seeds of every copy unchanged")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--print-api", action="store_true",
                   help="print the API prompt (after conversion and --set) and exit without queueing; needs no "
                        "server: it converts with --object-info FILE, else with --server URL's node list, else "
                        "with the pinned node list of the shipped workflows (stderr says which)")
    p.add_argument("--object-info", metavar="FILE",
                   help="with --print-api: a saved GET /object_info of your ComfyUI (curl URL/object_info > FILE) "
                        "to convert and check against, offline")


def print_api_node_list(path: str | None, servers: list[str]) -> tuple[dict, str]:
    """(/object_info, what it is) for --print-api: a saved /object_info file, else the first --server's,
    else the pinned node list the shipped workflows are generated against (lockn_gen/pinned_object_info.json:
    ComfyUI 0.20.1 with LockN Gen, the node classes of the shipped workflows), so no server is needed.
    WorkflowError for a file that is not an /object_info, ClientError for a server that does not answer."""
    if path:
        p = Path(path).expanduser()
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise WorkflowError(f"--object-info {path}: no such file; save one with "
                                f"curl {DEFAULT_SERVER}/object_info > {p.name}") from None
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise WorkflowError(f"--object-info {path}: cannot read it as JSON ({e})") from None
        if not isinstance(data, dict) or not data or not all(isinstance(v, dict) and "input" in v for v in data.values()):
            raise WorkflowError(f"--object-info {path}: not a saved /object_info (a JSON object of node classes, "
                                "each with its \"input\")")
        return data, f"the node list in {path} (a saved /object_info)"
    if servers:
        c = Client(servers[0])
        return c.object_info(), f"the node list of {c.url} (its /object_info)"
    from . import chains
    return chains.pinned_object_info(), (f"the pinned node list ({chains.PINNED_OBJECT_INFO.name}: ComfyUI "
                                         f"{chains.PIN_COMFYUI} with LockN Gen, the shipped workflows' node classes)")


def main(args: argparse.Namespace) -> int:
    servers = args.servers or [DEFAULT_SERVER]
    say = lambda s: print(s, file=sys.stderr, flush=True)
    progress = "off" if args.no_progress else ("bars" if sys.stderr.isatty() else "lines")
    if args.jobs < 1:
        say("error: --jobs must be at least 1")
        return EXIT_INVALID
    if args.object_info and not args.print_api:
        say("error: --object-info goes with --print-api (a run checks against the server it queues on)")
        return EXIT_INVALID
    hint = None
    try:
        if args.print_api:
            object_info, source = print_api_node_list(args.object_info, args.servers)
            say(f"lockn-gen: converting with {source}")
            if not args.object_info and not args.servers:
                hint = (f"(checked against {source}, not against your ComfyUI: give --server URL, or --object-info "
                        "FILE with its saved /object_info)")
            for job in prepare(args.workflows, args.sets, object_info, args.jobs, args.same_seed):
                print(json.dumps(job.prompt, indent=2, ensure_ascii=False))
            return EXIT_OK
        if args.master and args.servers:
            say("error: give either --master URL (a ComfyUI-Distributed master and its workers) or --server URL ...")
            return EXIT_INVALID
        results = run_workflow(args.workflows, args.sets, servers, args.out, args.jobs, args.timeout,
                               progress=progress, same_seed=args.same_seed, log=say, master=args.master)
    except WorkflowError as e:
        say("error: nothing was queued:")
        for m in e.errors:
            say(f"  - {m}")
        if hint and any("does not know the node type" in m or "is not available on the server" in m for m in e.errors):
            say(hint)
        return EXIT_INVALID
    except ClientError as e:
        say(f"error: {e}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        say("interrupted: this batch's prompts were cancelled")
        return EXIT_INTERRUPTED
    failed = 0
    for r in results:
        if r.ok:
            print(f"{r.label}: done on {r.server}, {len(r.files)} file(s)")
            for f in r.files:
                print(f"  {f}")
        else:
            failed += 1
            print(f"{r.label}: FAILED on {r.server}: {r.error}")
    return EXIT_OK if failed == 0 and results else EXIT_FAILED
