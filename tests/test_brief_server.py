"""The Brief and Motion Prompt nodes in a real ComfyUI server (tiny models, CPU).

Resident backend: the tiny text encoders of each family that ComfyUI can generate with (LTX-2's
Gemma 3, Flux.2 klein's Qwen3), through LockN's loaders; random weights write junk, so these test
the generation loop, the parsing and the repair. Server backend: llama.cpp's OpenAI-compatible
server (llama-cpp-python) on loopback serving a tiny random-weight Qwen3 GGUF, grammar-constrained
to our JSON schema, so the happy path runs for real; and small fake servers for the faults (slow,
junk). The chain test runs `lockn-gen run chain_quality.json --set Brief.text=...`.
"""
from __future__ import annotations

import http.server
import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from lockn_gen import brief as B
from lockn_gen import cli
from lockn_gen.demo_sets import TINY
from lockn_testing import graphs
from lockn_testing.harness.server import PromptError

pytestmark = pytest.mark.comfy
WF = Path(__file__).resolve().parents[1] / "workflows"
TEXT = "a lighthouse keeper's cat at dawn, lo-fi, calm"


def brief_graph(text=TEXT, backend="resident", fallback="error", seed=0, loader=None, source="the brief",
                server_url="", timeout_s=60.0, max_tokens=12, motion=None, model=""):
    """Brief (+ Motion Prompt on the start image) with its reports previewed. `loader`: (family, preset)
    whose CLIP output feeds the Brief."""
    g = {"10": {"class_type": "LockNBrief", "_meta": {"title": "Brief"}, "inputs": {
        "text": text, "source": source, "backend": backend, "fallback": fallback, "seed": seed,
        "image_prompt": "my own picture", "tags": "my own tags", "lyrics": "[verse]\nmine", "bpm": 101,
        "keyscale": "D minor", "timesignature": "3", "language": "de", "server_url": server_url, "model": model,
        "timeout_s": timeout_s, "max_tokens": max_tokens}},
         "11": {"class_type": "PreviewAny", "inputs": {"source": ["10", 8]}}}
    if loader:
        fam, preset = loader
        g["1"] = graphs.lockn_loader(fam, preset)
        g["10"]["inputs"]["clip"] = ["1", {"ltx2": 1, "flux2": 1, "ace15": 1}[fam]]
    if motion:
        g["20"] = {"class_type": "LoadImage", "inputs": {"image": "start.png"}}
        g["21"] = {"class_type": "LockNMotionPrompt", "inputs": {"brief": ["10", 7], "image": ["20", 0],
                                                                  "style": motion, "own_prompt": "my own motion"}}
        g["22"] = {"class_type": "PreviewAny", "inputs": {"source": ["21", 1]}}
    return g


def report(res, node="11") -> str:
    return res.outputs[node]["text"][0]


def fields(rep: str) -> dict:
    """The fields a report lists."""
    out = {}
    for line in rep.splitlines():
        for k in ("image_prompt", "motion_prompt", "tags", "lyrics"):
            if line.startswith(k + ": "):
                out[k] = line[len(k) + 2:]
        if line.startswith("bpm "):
            parts = [p.strip() for p in line.split("|")]
            out["bpm"] = int(parts[0].split()[1])
            out["keyscale"] = parts[1][4:]
            out["timesignature"] = parts[2][5:]
            out["language"] = parts[3][9:]
    return out


def still_serving(srv):
    """ComfyUI still runs prompts after a failure."""
    res = srv.run(brief_graph(text=f"still serving {time.time()}", backend="rules"))
    assert report(res).startswith("written by: rules")


# ---- resident ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("loader,style,encoder", [(("ltx2", "ltx2-19b-distilled-fp8"), "ltx2", "gemma_3_12B"),
                                                  (("flux2", "flux2-klein-4b"), "wan22", "qwen_3_4b")])
def test_resident_encoder_writes_and_the_repair_keeps_the_chain_valid(comfy_server, loader, style, encoder):
    res = comfy_server.run(brief_graph(loader=loader, motion=style, seed=0), timeout=600)
    rep, mot = report(res), report(res, "22")
    assert rep.startswith("written by: resident text encoder") and encoder in rep.splitlines()[0], rep
    assert "tokens)" in rep.splitlines()[0] and "the model's reply (" in rep
    f = fields(rep)
    assert B.BPM_MIN <= f["bpm"] <= B.BPM_MAX and f["keyscale"] in B.KEYSCALES
    assert f["timesignature"] in B.TIMESIGNATURES and f["language"] in B.LANGUAGES and f["image_prompt"]
    # random weights do not write our JSON: every field came from the brief, and the report says so
    assert "not a JSON object" in rep and "lighthouse keeper's cat at dawn" in f["image_prompt"]
    assert mot.startswith("written by: resident text encoder") and fields(mot)["motion_prompt"]
    # deterministic for a seed: seed 1 writes something else, seed 0 again writes the same reply
    other = comfy_server.run(brief_graph(loader=loader, seed=1), timeout=600)
    again = comfy_server.run(brief_graph(loader=loader, seed=0), timeout=600)
    reply = [ln for ln in rep.splitlines() if ln.startswith("the model's reply")]
    assert "10" in again.executed and [ln for ln in report(again).splitlines() if ln.startswith("the model's reply")] == reply
    assert [ln for ln in report(other).splitlines() if ln.startswith("the model's reply")] != reply


@pytest.mark.parametrize("loader,cls", [(("flux2", "flux2-dev-q4_k_m"), "Flux2TEModel"),
                                        (("ace15", "ace15-turbo"), "ACE15TEModel")])
def test_encoders_that_cannot_write_stop_or_fall_back_as_the_node_says(comfy_server, loader, cls):
    with pytest.raises(PromptError) as e:
        comfy_server.run(brief_graph(loader=loader), timeout=600)
    msg = str(e.value)
    for words in (f"({cls}) cannot generate text in ComfyUI", "Gemma 3", "klein", "set the node's fallback to 'rules'"):
        assert words in msg, msg
    res = comfy_server.run(brief_graph(loader=loader, fallback="rules"), timeout=600)
    rep = report(res)
    assert rep.startswith("written by: rules (no model)") and "resident could not answer" in rep
    assert fields(rep) == B.rules(TEXT)                    # exactly the rules' fields
    still_serving(comfy_server)


def test_resident_without_a_clip_uses_an_encoder_lockn_holds(comfy_server):
    g = brief_graph(loader=("ltx2", "ltx2-19b-distilled-fp8"))
    comfy_server.run(g, timeout=600)                       # the LTX-2 stack is loaded and held
    res = comfy_server.run(brief_graph(text=TEXT + " again"), timeout=600)
    assert "gemma_3_12B" in report(res).splitlines()[0], report(res)


# ---- bad input -----------------------------------------------------------------------------------------------
def test_empty_brief_is_refused_and_my_prompts_pass_through(comfy_server):
    for empty in ("", "   \n  "):
        with pytest.raises(PromptError, match="The brief is empty.*source to 'my prompts'"):
            comfy_server.run(brief_graph(text=empty, backend="rules"))
    res = comfy_server.run(brief_graph(text="", source="my prompts", motion="wan22"))
    f = fields(report(res))
    assert f == {"image_prompt": "my own picture", "tags": "my own tags", "lyrics": "[verse] mine", "bpm": 101,
                 "keyscale": "D minor", "timesignature": "3", "language": "de"}
    assert fields(report(res, "22")) == {"motion_prompt": "my own motion"}
    still_serving(comfy_server)


def test_a_20000_character_brief_is_cut_for_the_model(comfy_server):
    text = ("a harbour at night, rain on the cobbles, a slow jazz trio, " * 400)[:20000]
    res = comfy_server.run(brief_graph(text=text, loader=("ltx2", "ltx2-19b-distilled-fp8"), max_tokens=8), timeout=600)
    rep = report(res)
    assert "the brief has 20,000 characters; the model was shown the first 2,000" in rep
    f = fields(rep)
    assert len(f["image_prompt"]) <= 303 and f["bpm"] in range(B.BPM_MIN, B.BPM_MAX + 1)


# ---- server backend: fakes for the faults --------------------------------------------------------------------
class _Fake(http.server.BaseHTTPRequestHandler):
    delay, content = 0.0, ""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(type(self).delay)
        body = json.dumps({"model": "fake", "choices": [{"message": {"role": "assistant",
                                                                     "content": type(self).content}}]}).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass

    def log_message(self, *a):
        pass


@pytest.fixture
def fake_llm():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Fake)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()


def test_server_down_is_named_or_falls_back(comfy_server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(PromptError, match=rf"127.0.0.1:{port}/v1/chat/completions is not reachable"):
        comfy_server.run(brief_graph(backend="server", server_url=url))
    res = comfy_server.run(brief_graph(backend="server", server_url=url, fallback="rules"))
    assert "server could not answer" in report(res) and report(res).startswith("written by: rules")
    res = comfy_server.run(brief_graph(backend="server", server_url=url, fallback="resident",
                                       loader=("ltx2", "ltx2-19b-distilled-fp8")), timeout=600)
    assert report(res).startswith("written by: resident text encoder") and "not reachable" in report(res)
    still_serving(comfy_server)


def test_slow_server_times_out_once_and_the_queue_moves_on(comfy_server, fake_llm):
    _Fake.delay, _Fake.content = 8.0, "{}"
    t = time.monotonic()
    with pytest.raises(PromptError, match="did not answer within 1 s"):
        comfy_server.run(brief_graph(backend="server", server_url=fake_llm, timeout_s=1))
    assert time.monotonic() - t < 7.0                   # one request, no retry held the queue
    _Fake.delay = 0.0
    still_serving(comfy_server)


def test_junk_from_the_server_is_repaired_field_by_field(comfy_server, fake_llm):
    _Fake.delay = 0.0
    _Fake.content = ('Here you go: {"image_prompt": "a cat on a sill, dawn", "tags": "lofi, tape hiss", '
                     '"lyrics": "", "bpm": 999, "keyscale": "Am", "timesignature": "3/4", "language": "en"}')
    rep = report(comfy_server.run(brief_graph(backend="server", server_url=fake_llm, text=TEXT + " junk")))
    f = fields(rep)
    assert (f["image_prompt"], f["tags"], f["keyscale"], f["timesignature"]) == (
        "a cat on a sill, dawn", "lofi, tape hiss", "A minor", "3")
    assert f["bpm"] == B.rules(TEXT + " junk")["bpm"] and f["lyrics"] == B.INSTRUMENTAL
    for words in ("bpm: 999 is not a whole number", "lyrics: empty; replaced", "keyscale: \"Am\" read as 'A minor'"):
        assert words in rep, rep
    _Fake.content = "I cannot help with that."
    rep = report(comfy_server.run(brief_graph(backend="server", server_url=fake_llm, text=TEXT + " junk2")))
    assert "not a JSON object: every field derived from the brief" in rep


# ---- server backend: llama.cpp's server, for real ------------------------------------------------------------
@pytest.fixture(scope="module")
def llama():
    from lockn_testing import llm_server
    from lockn_testing.harness import comfyui_path
    py = str(comfyui_path() / ".venv" / "bin" / "python")
    why = llm_server.available(py)
    if why:
        if os.environ.get("LOCKN_REQUIRE_COMFY") == "1":
            pytest.fail(f"llama.cpp's server is needed here: {why} (LOCKN_SETUP_TEST=1 bash scripts/setup.sh installs it)")
        pytest.skip(why)
    srv = llm_server.LlamaServer(python=py, n_ctx=8192)
    srv.start()
    yield srv
    srv.close()


def test_llama_cpp_server_writes_every_field_within_the_schema(comfy_server, llama):
    g = brief_graph(backend="server", server_url=llama.url, model=llama.model, max_tokens=600, motion="wan22")
    res = comfy_server.run(g, timeout=600)
    rep = report(res)
    assert rep.startswith(f"written by: server {llama.url}/chat/completions"), rep
    reply = json.loads(rep.split("characters): ", 1)[1]) if "..." not in rep.split("characters): ", 1)[1] else None
    f = fields(rep)
    # grammar-constrained: nothing replaced, every field as the model wrote it, within ACE-Step's ranges
    assert not [ln for ln in rep.splitlines() if ln.startswith("- ") and "replaced" in ln], rep
    assert B.BPM_MIN <= f["bpm"] <= B.BPM_MAX and f["keyscale"] in B.KEYSCALES and f["timesignature"] in B.TIMESIGNATURES
    if reply is not None:
        assert (reply["bpm"], reply["keyscale"]) == (f["bpm"], f["keyscale"])
    mot = report(res, "22")
    assert mot.startswith(f"written by: server {llama.url}"), mot
    assert fields(mot)["motion_prompt"]


def test_a_20000_character_brief_reaches_the_server_cut(comfy_server, llama):
    text = ("a harbour at night, rain on the cobbles, a slow jazz trio, " * 400)[:20000]
    res = comfy_server.run(brief_graph(backend="server", server_url=llama.url, text=text, max_tokens=300), timeout=600)
    rep = report(res)
    assert rep.startswith("written by: server") and "shown the first 2,000" in rep, rep


def test_chain_runs_from_one_brief_set_on_the_command_line(tiny_models, start_image, llama, tmp_path):
    """`lockn-gen run chain_quality.json --set Brief.text=...`: the quality chain's Brief asks the server
    that LOCKN_BRIEF_URL names (here llama.cpp's), and writes an MP4."""
    from lockn_testing.harness.server import serving
    env = {B.ENV_URL: llama.url, B.ENV_MODEL: llama.model}
    with serving(tiny_models, {"start.png": start_image}, env=env) as srv:
        out = tmp_path / "out"
        rc = cli.main(["run", str(WF / "chain_quality.json"), "--server", srv.url, "--out", str(out), "--no-progress",
                       *sum((["--set", s] for s in TINY["chain_quality"]), []),
                       "--set", "Brief.text=a red fox in deep snow, jazz piano, 100 bpm", "--set", "Brief.max_tokens=600"])
        assert rc == 0, srv.log_tail()
        assert list(out.rglob("*.mp4"))
        hist = srv.get("/history")
        (entry,) = hist.values()
        prompt = entry["prompt"][2]
        bid = next(k for k, n in prompt.items() if n["class_type"] == "LockNBrief")
        rep = entry["outputs"][bid]["text"][0]
        assert rep.startswith(f"written by: server {llama.url}"), rep
        assert prompt[bid]["inputs"]["text"] == "a red fox in deep snow, jazz piano, 100 bpm"
