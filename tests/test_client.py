"""`lockn-gen run` and lockn_gen.client against real ComfyUI servers (tiny models, CPU): bad --set values
are refused before anything is queued, a node that fails at run time is named, outputs are downloaded,
a batch is spread over two servers, the command runs as a subprocess, and Ctrl-C cancels the batch."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lockn_gen import cli
from lockn_gen.client import Client, run_workflow
from lockn_testing import graphs

pytestmark = pytest.mark.comfy

REPO = Path(__file__).resolve().parents[1]
UI_FLUX = Path(__file__).parent / "fixtures" / "flux2_t2i.ui.json"


@pytest.fixture(scope="module")
def second_server(tiny_models):
    from lockn_testing.harness.server import ComfyServer
    srv = ComfyServer(tiny_models)
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(srv.base, ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def leave_the_shared_server_clean(comfy_server):
    """Other modules assert which nodes ran on the session server: drop its cache and models after us."""
    yield
    comfy_server.post("/free", {"unload_models": True, "free_memory": True})
    time.sleep(1.0)                                 # the server applies the flags when its queue wakes up


def api_file(tmp_path: Path, prompt: dict, name: str = "flux2.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(prompt))
    return p


def server_state(srv) -> tuple:
    q = srv.get("/queue")
    return sorted(srv.get("/history")), len(q["queue_running"]), len(q["queue_pending"])


def run_cli(*argv) -> int:
    return cli.main(["run", *map(str, argv), "--no-progress"])


@pytest.mark.parametrize("setting,words", [
    ("Nope.steps=3", ["no node is titled 'Nope'", "Flux2Scheduler"]),
    ("Flux2Scheduler.stepz=3", ["node 48 (Flux2Scheduler) has no input 'stepz'", "steps, width, height"]),
    ("Flux2Scheduler.steps=fast", ["expects a whole number between 1 and 4096", "'fast'"]),
    ("UNETLoader.unet_name=flux2_dev_bf16.safetensors", ["'flux2_dev_bf16.safetensors' is not available on the server",
                                                         "flux2_dev_fp8mixed.safetensors"]),
])
def test_bad_set_is_refused_before_anything_is_queued(comfy_server, tmp_path, capsys, setting, words):
    wf = api_file(tmp_path, graphs.flux2_t2i(prefix="t/client_refused"))
    before = server_state(comfy_server)
    rc = run_cli(wf, "--server", comfy_server.url, "--out", tmp_path / "out", "--set", setting)
    err = capsys.readouterr().err
    assert rc == 2
    assert "nothing was queued" in err
    for w in words:
        assert w in err
    assert server_state(comfy_server) == before
    assert not (tmp_path / "out").exists()


def test_execution_error_names_the_node_and_exits_1(comfy_server, tmp_path, capsys):
    g = graphs.flux2_t2i(prefix="t/client_error")
    g["10"]["inputs"]["vae_name"] = "wan_2.1_vae.safetensors"      # a Wan VAE cannot decode a Flux.2 latent
    g["8"]["_meta"] = {"title": "Decode"}
    rc = run_cli(api_file(tmp_path, g), "--server", comfy_server.url, "--out", tmp_path / "out")
    out = capsys.readouterr().out
    assert rc == 1
    assert 'FAILED on ' + comfy_server.url in out
    assert 'node 8 "Decode" (VAEDecode) failed: ' in out
    # the server's own exception message is passed on
    hist = comfy_server.get("/history")
    errors = [d for h in hist.values() for name, d in h["status"]["messages"] if name == "execution_error"]
    assert errors and errors[-1]["node_id"] == "8"
    assert errors[-1]["exception_message"].strip().splitlines()[0] in out
    assert not (tmp_path / "out").exists()


def test_ui_workflow_runs_and_its_outputs_are_downloaded(comfy_server, tmp_path):
    from PIL import Image
    events = []
    results = run_workflow(UI_FLUX, sets=["Prompt.prompt=a red fox", "Empty Flux 2 Latent.width=48",
                                          "Flux2Scheduler.width=48", "Save Image.filename_prefix=t/client_ui"],
                           servers=[comfy_server.url], out_dir=tmp_path / "out",
                           on_progress=lambda label, p: events.append(p))
    (r,) = results
    assert r.ok and r.server == comfy_server.url
    (png,) = r.files
    assert png.parent == tmp_path / "out" / "t" and png.name.startswith("client_ui_")
    with Image.open(png) as im:
        assert im.size == (48, 64)
    (item,) = Client.output_items(r.result)
    assert png.read_bytes() == comfy_server.output_path(item).read_bytes()
    # the converted prompt reached the server with the settings applied
    sent = comfy_server.get(f"/history/{r.prompt_id}")[r.prompt_id]["prompt"][2]
    assert sent["60:6"]["inputs"]["text"] == "a red fox" and sent["47"]["inputs"]["width"] == 48
    assert sent["25"]["inputs"]["noise_seed"] == 1027111520328378
    # progress: nodes with their titles, sampler steps with value/max
    ran = {(p.node, p.title) for p in events if p.kind == "node"}
    assert ("60:6", "Positive Prompt") in ran and ("13", "SamplerCustomAdvanced") in ran
    steps = [p for p in events if p.kind == "step" and p.node == "13"]
    assert steps and steps[-1].value == steps[-1].max == 4
    assert events[-1].kind == "done"


def test_two_servers_share_a_batch(comfy_server, second_server, tmp_path):
    wf = api_file(tmp_path, graphs.flux2_t2i(width=32, height=32, steps=2, prefix="t/client_batch"))
    results = run_workflow(wf, servers=[comfy_server.url, second_server.url], out_dir=tmp_path / "out", jobs=4)
    assert [r.label for r in results] == ["flux2#1", "flux2#2", "flux2#3", "flux2#4"]
    assert all(r.ok for r in results), [r.error for r in results]
    by_server = {srv.url: [r for r in results if r.server == srv.url] for srv in (comfy_server, second_server)}
    assert all(len(rs) == 2 for rs in by_server.values())
    for srv in (comfy_server, second_server):                    # each server really ran its share
        hist = srv.get("/history")
        assert all(r.prompt_id in hist for r in by_server[srv.url])
    files = [f for r in results for f in r.files]
    assert len(files) == 4 and len(set(files)) == 4 and all(f.is_file() and f.stat().st_size > 0 for f in files)
    seeds = {comfy_server.get("/history").get(r.prompt_id, second_server.get("/history").get(r.prompt_id))
             ["prompt"][2]["25"]["inputs"]["noise_seed"] for r in results}
    assert len(seeds) == 4                                       # copies get their own seeds


def test_cli_as_a_subprocess(comfy_server, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(REPO / "lockn-gen"), "run", str(UI_FLUX), "--server", comfy_server.url,
                           "--out", str(out), "--set", "Save Image.filename_prefix=cli/run", "--set",
                           "Flux2Scheduler.steps=2"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"flux2_t2i.ui: done on {comfy_server.url}, 1 file(s)" in proc.stdout
    paths = [Path(line.strip()) for line in proc.stdout.splitlines() if line.startswith("  ")]
    assert len(paths) == 1 and paths[0].is_file() and paths[0].parent == out / "cli"
    assert "running node 13 SamplerCustomAdvanced" in proc.stderr      # progress lines when stderr is no terminal


def test_ctrl_c_interrupts_the_running_job_and_deletes_the_queued_one(comfy_server, tmp_path):
    g = graphs.flux2_t2i(width=64, height=64, steps=4096, prefix="t/client_long")
    proc = subprocess.Popen([sys.executable, str(REPO / "lockn-gen"), "run", str(api_file(tmp_path, g)), "--jobs", "2",
                             "--server", comfy_server.url, "--out", str(tmp_path / "out"), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # Ctrl-C as in a terminal: a test run started in the background of a shell without
                            # job control inherits SIGINT ignored, and Python then leaves it ignored
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            q = comfy_server.get("/queue")
            if q["queue_running"] and q["queue_pending"]:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the two jobs never showed up in the server's queue")
        running, pending = q["queue_running"][0][1], q["queue_pending"][0][1]
        time.sleep(1.0)                                               # let the sampler get going
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "deleted from the queue" in stderr
    deadline = time.time() + 30
    while time.time() < deadline and (comfy_server.get("/queue")["queue_running"] or running not in comfy_server.get("/history")):
        time.sleep(0.2)
    hist = comfy_server.get("/history")
    assert [name for name, _ in hist[running]["status"]["messages"]][-1] == "execution_interrupted"
    assert pending not in hist and not comfy_server.get("/queue")["queue_pending"]
    assert not (tmp_path / "out").exists()


def test_set_a_local_file_uploads_it_first(comfy_server, start_image, tmp_path):
    local = tmp_path / "my_start_frame.png"
    shutil.copy(start_image, local)
    g = {"1": {"class_type": "LoadImage", "inputs": {"image": "start.png"}},
         "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "t/client_upload"}}}
    (r,) = run_workflow(g, sets=[f"LoadImage.image={local}"], servers=[comfy_server.url], out_dir=tmp_path / "out")
    assert r.ok, r.error
    assert (comfy_server.base / "input" / "my_start_frame.png").read_bytes() == local.read_bytes()
    sent = comfy_server.get(f"/history/{r.prompt_id}")[r.prompt_id]["prompt"][2]
    assert sent["1"]["inputs"]["image"] == "my_start_frame.png"
    assert len(r.files) == 1 and r.files[0].is_file()


def test_timeout_cancels_the_job(comfy_server, tmp_path):
    g = graphs.flux2_t2i(steps=4096, prefix="t/client_timeout")
    (r,) = run_workflow(g, servers=[comfy_server.url], out_dir=tmp_path / "out", timeout=1.5)
    assert not r.ok and "did not finish within 1.5 s; interrupted" in r.error
    deadline = time.time() + 30
    while time.time() < deadline and comfy_server.get("/queue")["queue_running"]:
        time.sleep(0.2)
    assert not comfy_server.get("/queue")["queue_running"]
    assert [n for n, _ in comfy_server.get(f"/history/{r.prompt_id}")[r.prompt_id]["status"]["messages"]][-1] \
        == "execution_interrupted"
