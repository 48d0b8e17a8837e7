"""Fault injection for I/O (issue 16): a model download SIGKILLed at random points, a disk that fills
during a download, a ComfyUI server SIGKILLed in the middle of a chain, and an output download whose
body is cut short.

The downloads run against the local fake hub (lockn_testing.fake_hub, 127.0.0.1 only), described by
a user catalog this module writes, into a temp models folder; the pulls run as real subprocesses
(``python -m lockn_gen models pull``) except where a write call is patched in-process. The chain runs
on a dedicated real ComfyUI server (tiny models), since the test kills it.
"""
from __future__ import annotations

import errno
import hashlib
import http.server
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lockn_gen import hub
from lockn_gen.cli import main as cli_main
from lockn_gen.client import Client, ClientError, Result
from lockn_testing.fake_hub import FakeHub

ROOT = Path(__file__).resolve().parent.parent
REPO_ID = "lockn-test/faults"
BIG = random.Random(1601).randbytes(1_200_007)     # big enough to kill mid-body at the throttled rate
SMALL = random.Random(1602).randbytes(30_000)
BIG_PATH = "transformer/fault-dit.gguf"
RATE = 600_000                                       # bytes/s for BIG in the kill test: ~2 s for the body


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


CATALOG = f"""
[files."fault-dit.gguf"]
family = "flux2"
kind = "diffusion_model"
repo = "{REPO_ID}"
path = "{BIG_PATH}"
folder = "diffusion_models"
size = {len(BIG)}
size_exact = true
sha256 = "{sha(BIG)}"
format = "gguf"
quant = "Q8_0"

[files."fault-te.safetensors"]
family = "flux2"
kind = "text_encoder"
repo = "{REPO_ID}"
path = "split_files/text_encoders/fault-te.safetensors"
folder = "text_encoders"
size = {len(SMALL)}
size_exact = true
sha256 = "{sha(SMALL)}"
format = "safetensors"
quant = "bf16"

[presets."fault-flux"]
family = "flux2"
label = "Fault-injection test preset"
components = {{ diffusion_model = "fault-dit.gguf", text_encoder = "fault-te.safetensors" }}
"""


@pytest.fixture
def env(tmp_path, monkeypatch):
    """The fake hub with the preset's two files, the user catalog, an empty models folder."""
    fake = FakeHub()
    fake.add(REPO_ID, BIG_PATH, BIG)
    fake.add(REPO_ID, "split_files/text_encoders/fault-te.safetensors", SMALL)
    fake.start()
    cat = tmp_path / "faults_catalog.toml"
    cat.write_text(CATALOG)
    models = tmp_path / "models"
    models.mkdir()
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "LOCKN_GEN_CATALOG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", fake.endpoint)
    target = models / "diffusion_models" / "fault-dit.gguf"
    part, sidecar = hub.staging_paths(hub.catalog_mod.load([cat], include_env=False).file("fault-dit.gguf"), models)
    yield type("Env", (), {"hub": fake, "cat": cat, "models": models, "target": target, "part": part,
                           "sidecar": sidecar, "te": models / "text_encoders" / "fault-te.safetensors"})
    fake.stop()


def pull_argv(env) -> list[str]:
    return ["models", "pull", "fault-flux", "--catalog", str(env.cat), "--models-dir", str(env.models), "--no-progress"]


def sub_env(env) -> dict:
    e = {k: v for k, v in os.environ.items()
         if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "LOCKN_GEN_CATALOG")}
    # PYTHONDONTWRITEBYTECODE: under RLIMIT_FSIZE only the download should meet the limit
    e.update(HF_ENDPOINT=env.hub.endpoint, PYTHONDONTWRITEBYTECODE="1")
    return e


def final_files(root: Path) -> list[Path]:
    """Files under final names (everything outside the hidden staging folders)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and hub.STAGING_DIR not in p.parts)


def wait_bytes_sent(req, expected: int, timeout: float = 3.0) -> int:
    """The fake hub counts a chunk once its write returned: give its thread a moment after the client is done."""
    deadline = time.monotonic() + timeout
    while req.bytes_sent != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return req.bytes_sent


# ---- 1. a pull SIGKILLed at random points --------------------------------------------------------
def test_pull_killed_at_random_points_keeps_the_partial_and_resumes(env):
    """SIGKILL `lockn-gen models pull` three times in a row while the body streams (seeded random
    points), then let a fourth run finish: every run continues from the bytes already on disk, nothing
    ever appears under the final name before it is verified, and the last run fetches only the rest."""
    env.hub.file(REPO_ID, BIG_PATH).rate = RATE
    rng = random.Random(16)
    n = len(BIG)
    argv = [sys.executable, "-m", "lockn_gen", *pull_argv(env)]
    have = 0
    for k in range(3):
        kill_at = have + int(rng.uniform(0.15, 0.6) * (n - have))
        gets_before = len(env.hub.downloads(BIG_PATH))
        proc = subprocess.Popen(argv, cwd=ROOT, env=sub_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    size = env.part.stat().st_size
                except FileNotFoundError:
                    size = 0
                if size >= kill_at:
                    break
                if proc.poll() is not None:
                    out, err = proc.communicate()
                    pytest.fail(f"kill {k + 1}: the pull ended (rc {proc.returncode}) before byte {kill_at} "
                                f"(partial at {size}):\n{out.decode()}\n{err.decode()}")
                assert time.monotonic() < deadline, f"kill {k + 1}: the partial file never reached {kill_at} bytes"
                time.sleep(0.002)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        assert not env.target.exists(), f"kill {k + 1}: a file appeared under the final name"
        assert final_files(env.models) == []
        size = env.part.stat().st_size
        assert kill_at <= size < n, f"kill {k + 1}: the partial file was not kept ({size} bytes)"
        assert env.sidecar.is_file()                        # what the resume checks the hub's file against
        (get,) = env.hub.downloads(BIG_PATH)[gets_before:]
        assert get.range == (f"bytes={have}-" if have else None), f"run {k + 1} did not resume from {have}"
        have = size

    env.hub.file(REPO_ID, BIG_PATH).rate = None
    gets_before = len(env.hub.downloads(BIG_PATH))
    proc = subprocess.run(argv, cwd=ROOT, env=sub_env(env), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"resuming fault-dit.gguf from {hub.fmt_size(have)}" in proc.stdout
    (get,) = env.hub.downloads(BIG_PATH)[gets_before:]
    assert (get.range, get.status) == (f"bytes={have}-", 206)
    assert wait_bytes_sent(get, n - have) == n - have        # only the missing tail was served
    assert sha(env.target.read_bytes()) == sha(BIG)
    assert f"sha256 {sha(BIG)} verified against the catalog" in proc.stdout
    assert env.te.read_bytes() == SMALL
    assert not env.part.exists() and not env.sidecar.exists()
    assert not [p for p in env.models.rglob("*") if hub.STAGING_DIR in p.parts]


# ---- 2. a disk that fills during a download ------------------------------------------------------
def _no_room_checks(env, err: str, have: int, *, errno_word: str, fix: str):
    """The message names the file, the folder, the bytes missing and free, the fix; the partial is kept."""
    assert "Traceback" not in err
    assert errno_word in err
    assert "fault-dit.gguf: " in err and str(env.part) in err and str(env.target) in err
    assert f"stopped at {have} bytes" in err
    assert f"({len(BIG) - have} bytes) of the {hub.fmt_size(len(BIG))} are still missing" in err
    assert "free on that disk now" in err
    assert fix in err
    assert "Nothing was written under the final name" in err
    assert f"run the same `lockn-gen models pull` again: it resumes from byte {have}" in err
    assert not env.target.exists()
    assert env.part.stat().st_size == have and env.sidecar.is_file()


def _resume_completes(env, have: int) -> None:
    gets_before = len(env.hub.downloads(BIG_PATH))
    proc = subprocess.run([sys.executable, "-m", "lockn_gen", *pull_argv(env)], cwd=ROOT, env=sub_env(env),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"resuming fault-dit.gguf from {hub.fmt_size(have)}" in proc.stdout
    (get,) = env.hub.downloads(BIG_PATH)[gets_before:]
    assert (get.range, get.status) == (f"bytes={have}-", 206)
    assert sha(env.target.read_bytes()) == sha(BIG)
    assert env.te.read_bytes() == SMALL
    assert not env.part.exists()


def test_file_size_limit_mid_download_rlimit_fsize(env):
    """How the full disk is simulated: the pull runs as a subprocess under RLIMIT_FSIZE (set in
    preexec_fn, with SIGXFSZ ignored), so the kernel itself refuses the write past the limit: the
    write that crosses it is short and the next one fails with EFBIG, exactly as on a filesystem whose
    maximum file size (FAT32) is reached. A real ENOSPC needs a full filesystem (root and a mount);
    the next test injects that errno into hub.py's write call instead."""
    limit = 400_000

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run([sys.executable, "-m", "lockn_gen", *pull_argv(env)], cwd=ROOT, env=sub_env(env),
                          capture_output=True, text=True, timeout=60, preexec_fn=limited)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    _no_room_checks(env, proc.stderr, limit, errno_word="File too large",
                    fix="lift the limit (`ulimit -f unlimited`)")
    assert "[failed] fault-dit.gguf" in proc.stderr and "1 failed" in proc.stdout
    _resume_completes(env, limit)


def test_full_disk_mid_download_enospc(env, monkeypatch, capsys):
    """How the full disk is simulated: hub._write (the one call through which every downloaded byte
    reaches the partial file) is patched in-process to take 300,000 bytes in all and then fail like a
    full disk does: a short write of what still fits, then OSError(ENOSPC). The files after the first
    find the disk full too. Then the patch is lifted ("space freed") and the same pull runs again."""
    real_write = hub._write
    room = {"left": 300_000}

    def full_disk(fh, data):
        take = min(room["left"], len(data))
        if take:
            real_write(fh, bytes(data[:take]))
            room["left"] -= take
        if take < len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(hub, "_write", full_disk)
    assert cli_main(pull_argv(env)) == 1
    out, err = capsys.readouterr()
    _no_room_checks(env, err, 300_000, errno_word="the disk is full (No space left on device)",
                    fix=f"Free at least {hub.fmt_size(len(BIG) - 300_000)} on the disk of {env.target.parent}")
    assert "fault-te.safetensors: the disk is full" in err     # the next file meets the full disk too
    assert final_files(env.models) == []
    monkeypatch.setattr(hub, "_write", real_write)
    _resume_completes(env, 300_000)


# ---- 3. ComfyUI SIGKILLed during a chain, then started again -------------------------------------
def _chain_cmd(url: str, out: Path) -> list[str]:
    """`lockn-gen run workflows/chain_quality.json` on the tiny models (the demo's sizes, fewer image and
    music steps: the server is killed while the chain runs anyway, and the rerun should be quick)."""
    from lockn_gen.demo_sets import TINY
    cmd = [sys.executable, str(ROOT / "lockn-gen"), "run", str(ROOT / "workflows" / "chain_quality.json"),
           "--server", url, "--out", str(out)]
    for s in TINY["chain_quality"] + ["Image steps.steps=2", "Music seed and steps.steps=2"]:
        cmd += ["--set", s]
    return cmd


@pytest.mark.comfy
def test_comfyui_killed_mid_chain_then_restarted(tiny_models, tmp_path):
    """SIGKILL the server while the chain runs (its Flux.2 sampler): the client says plainly that the
    server stopped answering and exits 1 within 30 s, without a traceback and without any file under
    out/. A new server then runs the same command to a complete MP4 (17 frames at 16 fps, with music).
    On the way, the pack's example start image (tests/test_start_image.py): the first, fresh server got it in
    its input folder at start-up, and the second, started on a folder holding a user's file of that name,
    left that file as it was."""
    from lockn_gen import start_image
    from lockn_testing.harness.server import ComfyServer, serving
    from lockn_testing.media import probe_media

    out = tmp_path / "out"
    srv2 = ComfyServer(tiny_models)                  # the "restarted" one, started while the client waits
    # its input folder already holds a user's picture named like the pack's example start image: the pack's
    # start-up copy must leave it as it is (the fresh one, srv, gets the pack's picture)
    mine = srv2.base / "input" / start_image.NAME
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"mine")
    starting = threading.Thread(target=srv2.start, daemon=True)
    try:
        with serving(tiny_models) as srv:
            assert (srv.base / "input" / start_image.NAME).read_bytes() == start_image.PATH.read_bytes()
            proc = subprocess.Popen(_chain_cmd(srv.url, out), cwd=ROOT, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            lines: list[str] = []
            reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
            reader.start()
            try:
                deadline = time.monotonic() + 120
                while not any("SamplerCustomAdvanced" in ln for ln in lines):     # the chain's first sampler
                    assert proc.poll() is None, f"the client ended early:\n{''.join(lines)}"
                    assert time.monotonic() < deadline, f"the chain never reached its sampler:\n{''.join(lines)}"
                    time.sleep(0.05)
                running = srv.get("/queue")["queue_running"]
                assert running, "the job is not running on the server"
                srv.kill()
                killed_at = time.monotonic()
                assert srv.proc.poll() is not None           # the server process is really gone
                starting.start()
                proc.wait(timeout=60)
                took = time.monotonic() - killed_at
            finally:
                if proc.poll() is None:
                    proc.kill()
            reader.join(timeout=10)
            stdout, stderr = proc.stdout.read(), "".join(lines)
        assert proc.returncode == 1, stdout + stderr
        assert took < 30, f"the client needed {took:.0f} s to notice the dead server"
        assert f"chain_quality: FAILED on {srv.url}: the ComfyUI server at {srv.url} stopped answering" in stdout
        assert f"prompt {running[0][1]}" in stdout and "run the same command again" in stdout
        assert "Traceback" not in stdout + stderr
        assert not out.exists() or [p for p in out.rglob("*") if p.is_file()] == []

        starting.join(timeout=180)
        assert srv2.proc is not None and srv2.proc.poll() is None, f"the new server did not start:\n{srv2.log_tail()}"
        assert mine.read_bytes() == b"mine", "the pack's start-up copy replaced a user's file"
        proc = subprocess.run(_chain_cmd(srv2.url, out), cwd=ROOT, capture_output=True, text=True, timeout=300)
    finally:
        if starting.is_alive():
            starting.join(timeout=180)
        srv2.stop()
        shutil.rmtree(srv2.base, ignore_errors=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"chain_quality: done on {srv2.url}, 1 file(s)" in proc.stdout
    (mp4,) = [Path(ln.strip()) for ln in proc.stdout.splitlines() if ln.startswith("  ")]
    assert [p for p in out.rglob("*") if p.is_file()] == [mp4]          # no temporary file left behind
    info = probe_media(mp4)
    assert info["n_video_streams"] == 1 and info["n_audio_streams"] == 1
    assert info["video"]["frames"] == 17 and info["video"]["fps"] == pytest.approx(16.0)
    assert info["audio"]["duration"] == pytest.approx(17 / 16, abs=1 / 16)


# ---- 4. an output download cut short -------------------------------------------------------------
BODY = random.Random(1603).randbytes(100_000)


class _CutServer(http.server.BaseHTTPRequestHandler):
    """/view answers with BODY: whole, cut after 40,000 bytes of a 100,000-byte Content-Length, or
    chunked and cut inside a chunk (the mode comes from the test)."""
    protocol_version = "HTTP/1.1"
    mode = "whole"

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        if self.mode == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"%x\r\n" % len(BODY) + BODY[:40_000])
        else:
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY if self.mode == "whole" else BODY[:40_000])
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def cut_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_CutServer,), {}))
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _result() -> Result:
    return Result("p1", outputs={"9": {"images": [{"filename": "clip_00001_.mp4", "subfolder": "LockN",
                                                    "type": "output"}]}})


@pytest.mark.parametrize("mode", ["short", "chunked"])
def test_output_download_cut_short_leaves_no_file(cut_server, tmp_path, mode):
    cut_server.RequestHandlerClass.mode = mode
    c = Client(f"http://127.0.0.1:{cut_server.server_address[1]}")
    dest = tmp_path / "out" / "LockN" / "clip_00001_.mp4"
    with pytest.raises(ClientError) as ei:
        c.download_outputs(_result(), tmp_path / "out")
    msg = str(ei.value)
    assert "downloading clip_00001_.mp4 from " + c.url + "/view?" in msg
    if mode == "short":
        assert "broke off after 40000 bytes of 100000 bytes (the server closed the connection" in msg
    else:                                   # http.client keeps the bytes of an unfinished chunk to itself
        assert "broke off after 0 bytes of an unknown size (IncompleteRead" in msg
    assert f"nothing was saved as {dest}" in msg and "run the same command again" in msg
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []      # no final file, no temporary one


def test_output_download_whole_gets_its_name_and_never_overwrites(cut_server, tmp_path):
    """The control for the test above: a complete body lands under the final name (and a name that is
    taken gets a numbered one; the existing file stays as it was)."""
    c = Client(f"http://127.0.0.1:{cut_server.server_address[1]}")
    (first,) = c.download_outputs(_result(), tmp_path / "out")
    assert first == tmp_path / "out" / "LockN" / "clip_00001_.mp4" and first.read_bytes() == BODY
    first.write_bytes(b"mine")
    (second,) = c.download_outputs(_result(), tmp_path / "out")
    assert second.name == "clip_00001_-1.mp4" and second.read_bytes() == BODY
    assert first.read_bytes() == b"mine"
    assert sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file()) == ["clip_00001_-1.mp4",
                                                                                    "clip_00001_.mp4"]


# ---- 5. following a prompt when the server goes away or forgets it -------------------------------
class _ForgetfulComfy(http.server.BaseHTTPRequestHandler):
    """A ComfyUI that was restarted behind the client's back: empty queue, empty history."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        body = b'{"queue_running": [], "queue_pending": []}' if self.path == "/queue" else b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_follow_says_when_a_restarted_server_forgot_the_prompt(tmp_path):
    """A server restarted at the same URL answers again but has neither queued nor finished the prompt:
    following it must stop with that explanation instead of polling /history forever."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ForgetfulComfy)
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    try:
        c = Client(f"http://127.0.0.1:{srv.server_address[1]}")
        t0 = time.monotonic()
        with pytest.raises(ClientError) as ei:
            c.follow("p-lost", timeout=30)
        assert time.monotonic() - t0 < 5
    finally:
        srv.shutdown()
        srv.server_close()
    msg = str(ei.value)
    assert f"the ComfyUI server at {c.url} no longer knows prompt p-lost" in msg
    assert "restarted" in msg and "run the same command again" in msg


def test_follow_gives_up_on_a_server_that_stopped_answering():
    from lockn_testing.fake_hub import free_port
    c = Client(f"http://127.0.0.1:{free_port()}", gone_after=1.5)
    t0 = time.monotonic()
    with pytest.raises(ClientError) as ei:
        c.follow("p-gone", timeout=30)
    assert 1.5 <= time.monotonic() - t0 < 5
    msg = str(ei.value)
    assert f"the ComfyUI server at {c.url} stopped answering while prompt p-gone was queued or running" in msg
    assert "Connection refused" in msg and "run the same command again" in msg
