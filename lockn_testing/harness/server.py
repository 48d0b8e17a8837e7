"""A real ComfyUI server (main.py --cpu) in a subprocess on a free loopback port, isolated from the
user's install: its own base directory (models, custom_nodes, input, output, user, temp), with the
pack, ComfyUI-GGUF and the test patches linked into its custom_nodes. Stopped by process group,
also when a test fails (use it as a context manager or call stop())."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from lockn_testing.harness import PATCHES_DIR, REPO, comfyui_path, gguf_node_dir, test_threads


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    def __init__(self, models_root: str | os.PathLike, base_dir: str | os.PathLike | None = None,
                 extra_args: tuple[str, ...] = (), extra_model_dirs: tuple[str, ...] = (),
                 with_pack: bool = True, with_gguf: bool = True, python: str | None = None, env: dict | None = None,
                 cpu: bool | None = None):
        self.base = Path(base_dir or tempfile.mkdtemp(prefix="lockn-comfy-"))
        self.models_root = Path(models_root)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_args = tuple(extra_args)
        self.extra_model_dirs = tuple(extra_model_dirs)
        self.python = python or str(comfyui_path() / ".venv" / "bin" / "python")
        self.env = env or {}
        # CPU unless told otherwise (LOCKN_COMFY_GPU=1 runs the same tests on a GPU machine)
        self.cpu = cpu if cpu is not None else os.environ.get("LOCKN_COMFY_GPU") != "1"
        self.proc: subprocess.Popen | None = None
        self.log_path = self.base / "comfyui.log"
        nodes = {"lockn_test_patches": PATCHES_DIR}
        if with_gguf:
            nodes["ComfyUI-GGUF"] = gguf_node_dir()
        if with_pack:
            nodes["lockn-gen"] = REPO
        self.custom_nodes = nodes

    # ---- layout ---------------------------------------------------------------------------------
    def _prepare(self):
        for sub in ("custom_nodes", "input", "output", "temp", "user"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        models = self.base / "models"
        if not models.exists():
            models.symlink_to(self.models_root, target_is_directory=True)
        for name, target in self.custom_nodes.items():
            link = self.base / "custom_nodes" / name
            if not link.exists():
                link.symlink_to(target, target_is_directory=True)

    def _command(self) -> list[str]:
        cmd = [self.python, str(comfyui_path() / "main.py"), *(["--cpu"] if self.cpu else []), "--listen", "127.0.0.1",
               "--port", str(self.port), "--disable-auto-launch", "--base-directory", str(self.base)]
        if self.extra_model_dirs:
            cfg = self.base / "extra_model_paths.yaml"
            lines = []
            for i, d in enumerate(self.extra_model_dirs):
                lines.append(f"extra{i}:")
                lines.append(f"  base_path: {d}")
                for folder in ("checkpoints", "diffusion_models", "text_encoders", "vae", "latent_upscale_models", "loras",
                               "clip_vision", "upscale_models"):
                    lines.append(f"  {folder}: {folder}")
                lines.append("  heartmula: HeartMuLa")         # the pack's HeartMuLa folder (nodes/heartmula.py)
            cfg.write_text("\n".join(lines) + "\n")
            cmd += ["--extra-model-paths-config", str(cfg)]
        # LOCKN_COMFY_EXTRA_ARGS: arguments for every test server (e.g. --disable-dynamic-vram on a GPU box)
        return cmd + list(self.extra_args) + os.environ.get("LOCKN_COMFY_EXTRA_ARGS", "").split()

    def children(self, marker: bytes) -> list[int]:
        """Process ids of this server's children whose command line contains `marker` (its worker processes:
        b"lockn_gen.sdcpp_worker", b"lockn_gen.heartmula_worker")."""
        out = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read()
            except (OSError, IndexError, ValueError):
                continue
            if self.proc is not None and ppid == self.proc.pid and marker in cmd:
                out.append(int(pid))
        return out

    # ---- life cycle -----------------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> "ComfyServer":
        """Start the server; a port another process took between free_port() and the bind (parallel test
        workers) is replaced by a new one, up to three times."""
        for attempt in range(3):
            try:
                return self._start(timeout)
            except RuntimeError as e:
                if attempt == 2 or "address already in use" not in str(e).lower():
                    raise
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> "ComfyServer":
        self._prepare()
        threads = test_threads()
        pinned = {k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")} if threads else {}
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **pinned, **self.env}
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self._command(), cwd=str(comfyui_path()), stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode} during start-up; log:\n{self.log_tail()}")
            try:
                stats = self.get("/system_stats", timeout=2)
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.3)
                continue
            if str(self.base) in (stats.get("system") or {}).get("argv", []):
                return self
            time.sleep(0.3)          # another worker's server on this port: ours exits with "address in use"
        self.stop()
        raise RuntimeError(f"ComfyUI did not answer on {self.url} within {timeout:.0f}s; log:\n{self.log_tail()}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def kill(self, timeout: float = 30.0):
        """SIGKILL the server's process group, as a crash or the OOM killer would (no clean-up runs);
        returns once the process is gone. stop() after it is a no-op."""
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=timeout)
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def log_tail(self, n: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    # ---- HTTP -----------------------------------------------------------------------------------
    def request(self, method: str, path: str, body=None, timeout: float = 30):
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data is not None else {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            raw, status = e.read(), e.code
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def get(self, path, timeout: float = 30):
        status, body = self.request("GET", path, timeout=timeout)
        if status >= 400:
            raise urllib.error.HTTPError(self.url + path, status, str(body), None, None)
        return body

    def post(self, path, body, timeout: float = 30):
        return self.request("POST", path, body, timeout=timeout)

    def output_path(self, item: dict) -> Path:
        """Where a history output entry ({filename, subfolder, type}) lies on disk."""
        return self.base / item.get("type", "output") / item.get("subfolder", "") / item["filename"]

    # ---- running prompts over the websocket -----------------------------------------------------
    def run(self, prompt: dict, timeout: float = 300, client_id: str | None = None, on_message=None) -> "RunResult":
        """Queue a prompt and follow it over the websocket. Raises PromptError on a refused prompt
        or an execution error (with the server's message). `on_message(message)` sees every JSON message
        as it arrives (e.g. to act at a node's first progress step)."""
        import websocket  # websocket-client

        client_id = client_id or uuid.uuid4().hex
        ws = websocket.create_connection(f"ws://127.0.0.1:{self.port}/ws?clientId={client_id}", timeout=timeout)
        try:
            status, body = self.post("/prompt", {"prompt": prompt, "client_id": client_id})
            if status != 200:
                raise PromptError(f"prompt refused ({status}): {json.dumps(body)[:4000]}", body)
            pid = body["prompt_id"]
            res = RunResult(pid)
            deadline = time.time() + timeout
            while time.time() < deadline:
                msg = ws.recv()
                if not isinstance(msg, str):
                    continue                      # binary previews
                m = json.loads(msg)
                t, d = m.get("type"), m.get("data", {})
                m["received_at"] = time.perf_counter()
                res.messages.append(m)
                if on_message is not None:
                    on_message(m)
                if d.get("prompt_id") not in (None, pid):
                    continue
                if t == "executing" and d.get("node") is not None:
                    res.executed.append(d["node"])
                elif t == "execution_cached":
                    res.cached.extend(d.get("nodes", []))
                elif t == "execution_error":
                    res.error = d
                elif t == "execution_interrupted":
                    res.interrupted = True
                elif t == "executing" and d.get("node") is None and d.get("prompt_id") == pid:
                    break
            else:
                raise TimeoutError(f"prompt {pid} did not finish in {timeout}s; log:\n{self.log_tail()}")
        finally:
            ws.close()
        hist = self.get(f"/history/{pid}").get(pid, {})
        res.outputs = hist.get("outputs", {})
        res.status = hist.get("status", {})
        if res.error:
            raise PromptError(f"node {res.error.get('node_id')} ({res.error.get('node_type')}) failed: "
                              f"{res.error.get('exception_message')}", res.error, res)
        return res

    def output_files(self, res: "RunResult", node_id: str | None = None, previews: bool = False) -> list[Path]:
        """The files the prompt saved (of one node, if given); previews (type "temp") only if asked."""
        files = []
        for nid, out in res.outputs.items():
            if node_id is not None and nid != node_id:
                continue
            for key in ("images", "audio", "video", "gifs"):
                for item in out.get(key, []) or []:
                    if isinstance(item, dict) and "filename" in item and (previews or item.get("type") != "temp"):
                        files.append(self.output_path(item))
        return files


@contextlib.contextmanager
def serving(models_root, inputs: dict | None = None, **kw):
    """A started ComfyServer with `inputs` ({name in input/: source path}) copied in; stopped and its
    folder removed afterwards, also when the body fails."""
    srv = ComfyServer(models_root, **kw)
    try:
        srv.start()
        for name, src in (inputs or {}).items():
            shutil.copy(src, srv.base / "input" / name)
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(srv.base, ignore_errors=True)


class RunResult:
    def __init__(self, prompt_id):
        self.prompt_id = prompt_id
        self.executed: list[str] = []
        self.cached: list[str] = []
        self.messages: list[dict] = []
        self.outputs: dict = {}
        self.status: dict = {}
        self.error: dict | None = None
        self.interrupted = False

    def node_seconds(self) -> dict[str, float]:
        """Wall time per executed node, from the websocket's 'executing' messages."""
        marks = [(m["received_at"], m["data"].get("node")) for m in self.messages
                 if m.get("type") == "executing" and m.get("data", {}).get("prompt_id") == self.prompt_id]
        return {node: t1 - t0 for (t0, node), (t1, _) in zip(marks, marks[1:]) if node is not None}


class PromptError(RuntimeError):
    def __init__(self, message, detail=None, result=None):
        super().__init__(message)
        self.detail = detail
        self.result = result


if __name__ == "__main__":   # manual use: python -m lockn_testing.harness.server MODELS_ROOT
    with ComfyServer(sys.argv[1]) as s:
        print(s.url, s.base)
        input("press enter to stop")


def distributed_loopback(models_root, workers=("A", "B"), master_pack: bool = False) -> dict:
    """A ComfyUI-Distributed master and its workers on 127.0.0.1, started at once: {"master": ..., name: ...}.
    Each server has its own base directory and its own copy of ComfyUI-Distributed (its gpu_config.json lives in
    its folder); the workers have the pack, ComfyUI-GGUF and the models, the master (unless `master_pack`) only
    ComfyUI-Distributed; the workers are added to the master's config through its own route. RuntimeError
    (with the install line) when ComfyUI-Distributed is missing; on a failed start the started ones are stopped."""
    import shutil
    import threading
    from lockn_testing.harness import distributed_node_dir
    src = distributed_node_dir()
    if not (src / "__init__.py").is_file():
        raise RuntimeError(f"no ComfyUI-Distributed at {src}: scripts/setup.sh brings it (LOCKN_SETUP_DISTRIBUTED=1, "
                           "which scripts/test.sh sets), or point LOCKN_DISTRIBUTED_PATH at a checkout of a91f9fb0")
    servers = {}
    for name, pack in (("master", master_pack), *((w, True) for w in workers)):
        srv = ComfyServer(models_root, with_pack=pack, with_gguf=pack)
        own = srv.base / "ext" / "ComfyUI-Distributed"
        shutil.copytree(src, own, ignore=shutil.ignore_patterns("gpu_config.json", "__pycache__", "tests", "docs"))
        srv.custom_nodes["ComfyUI-Distributed"] = own
        servers[name] = srv
    errors = []

    def start(s):
        try:
            s.start()
        except Exception as e:  # noqa: BLE001 - raised below, after the others are stopped
            errors.append(e)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers.values()]
    [t.start() for t in threads]
    [t.join() for t in threads]
    try:
        if errors:
            raise errors[0]
        for name in workers:
            status, body = servers["master"].request("POST", "/distributed/config/update_worker", {
                "worker_id": name, "name": name, "host": "127.0.0.1", "port": servers[name].port, "cuda_device": 0,
                "enabled": True, "type": "remote"})
            if status != 200:
                raise RuntimeError(f"the master refused worker {name}: {status} {body}")
    except BaseException:
        for s in servers.values():
            s.stop()
            shutil.rmtree(s.base, ignore_errors=True)
        raise
    return servers
