"""HeartMuLa (issue 24) in a real ComfyUI server: the LockN HeartMuLa node drives heartlib's real architectures (tiny,
random weights: lockn_testing/tiny/heartmula.py) in a worker process in HeartMuLa's own Python.

- A song of the asked length reaches Save Audio as 48 kHz stereo; the node's progress goes to the last step; the model
  is a registry entry (family heartmula, music, the worker's bytes), loaded once for two runs (the second, another
  seed, is another song), and the shipped workflow (workflows/heartmula_text_to_music.json, through the client) runs
  on the same worker to an MP3, and so does the quality chain with HeartMuLa on its Music stage (an MP4 with its
  song); `/free` ends the worker and drops the entry.
- Bad input is a clear error before anything loads, and the server keeps serving: an interrupted download (the file,
  "truncated", and the download command) and weights never downloaded (the file missing, where it looked).
- Without heartlib in the worker's Python the engine says how to make the environment.
"""
from __future__ import annotations

import sys
import time

from pathlib import Path

import pytest

from lockn_gen import client
from lockn_gen.demo_sets import TINY
from lockn_testing import graphs
from lockn_testing.harness.server import PromptError
from lockn_testing.media import probe_media

pytestmark = pytest.mark.comfy
WF = Path(__file__).resolve().parents[1] / "workflows"


@pytest.fixture(scope="module")
def server(comfy_server, tiny_models):
    """The shared session server (its worker preloads the tiny HeartMuLa sizes). These tests had a server of their own
    for a while (914bb4d): a song hung until its timeout at the end of loaded suites, here too; the cause was the
    workers' buffered events pipe (lockn_gen/workers.py, tests/test_workers.py), not the sharing."""
    if not (tiny_models / "HeartMuLa").is_dir():
        from lockn_gen import heartmula
        pytest.fail(f"no tiny HeartMuLa set: {heartmula.worker_python()} has no heartlib; make HeartMuLa's environment "
                    f"with LOCKN_SETUP_HEARTMULA=1 bash scripts/setup.sh (scripts/test.sh does)")
    return comfy_server


def _entries(srv) -> list[dict]:
    return [e for e in srv.get("/lockn/residency")["entries"] if e["role"] == "heartmula"]


def _workers(srv) -> list[int]:
    return srv.children(b"lockn_gen.heartmula_worker")


def _song(srv, res):
    (path,) = srv.output_files(res, "2")
    return probe_media(path)["audio"], path.read_bytes()


def test_songs_from_a_resident_model_and_free(server, tmp_path):
    srv = server
    res = srv.run(graphs.heartmula_song(seconds=2.0, seed=3), timeout=300)
    a, first = _song(srv, res)
    assert a["sample_rate"] == 48000 and a["channels"] == 2 and a["finite"] and a["peak"] > 0
    assert a["duration"] == pytest.approx(2.0, abs=0.05)
    prog = [(m["data"]["value"], m["data"]["max"]) for m in res.messages
            if m.get("type") == "progress" and str(m["data"].get("node")) == "1"]
    assert prog and prog[-1][0] == prog[-1][1] == 2.0 / 0.08 + 2                 # one step a frame, and the codec
    [e] = _entries(srv)
    assert e["family"] == "heartmula" and e["mode"] == "music" and e["loads_from_disk"] == 1
    assert e["name"] == "HeartMuLa-oss-3B + HeartCodec-oss"          # its folders, not its weight shards' names
    assert e["tier"] != "dropped" and e["bytes"] > 50 * 2**20 and e["device"] == "cpu"
    assert len(_workers(srv)) == 1
    # another seed: another song, from the same worker (nothing read again)
    res = srv.run(graphs.heartmula_song(seconds=2.0, seed=4), timeout=300)
    _, second = _song(srv, res)
    assert second != first
    [e] = _entries(srv)
    assert e["loads_from_disk"] == 1 and len(_workers(srv)) == 1
    # the shipped workflow, through the client (API form, its tiny settings): an MP3 of the asked length, same worker
    (run,) = client.run_workflow(str(WF / "api" / "heartmula_text_to_music.json"), TINY["heartmula_text_to_music"],
                                 [srv.url], out_dir=tmp_path, timeout=300)
    assert run.ok, f"{run.error}\n{srv.log_tail(3000)}"
    (mp3,) = [Path(f) for f in run.files]
    a = probe_media(mp3)["audio"]
    assert mp3.suffix == ".mp3" and a["sample_rate"] == 48000 and a["duration"] == pytest.approx(2.0, abs=0.1)
    assert a["finite"] and a["peak"] > 0
    [e] = _entries(srv)
    assert e["loads_from_disk"] == 1 and len(_workers(srv)) == 1
    # the quality chain with HeartMuLa on its Music stage (the Brief's tags and lyrics): its song is the MP4's sound,
    # as long as the clip, from the same worker; ACE-Step's music branch did not run
    (run,) = client.run_workflow(str(WF / "chain_quality.json"), [*TINY["chain_quality"], "Music model.model=heartmula"],
                                 [srv.url], out_dir=tmp_path / "chain", timeout=300)
    assert run.ok, f"{run.error}\n{srv.log_tail(3000)}"
    prompt = srv.get(f"/history/{run.prompt_id}")[run.prompt_id]["prompt"][2]
    ran = {prompt[n]["class_type"] for n in run.result.executed}
    assert "LockNHeartMuLa" in ran and not {"LockNAceStep15Loader", "TextEncodeAceStepAudio1.5", "EmptyLatentAudio"} & ran
    info = probe_media(run.files[0])
    frames, fps = int(dict(x.split("=", 1) for x in TINY["chain_quality"])["Length (frames).value"]), 16.0
    assert info["video"]["frames"] == frames and info["n_audio_streams"] == 1
    assert info["audio"]["duration"] == pytest.approx(frames / fps, abs=1 / fps) and info["audio"]["peak"] > 0
    [e] = _entries(srv)
    assert e["loads_from_disk"] == 1 and len(_workers(srv)) == 1
    # /free: the worker ends and the entry reads dropped; the next run loads again
    status, _ = srv.post("/free", {"free_memory": True, "unload_models": True})
    assert status == 200
    deadline = time.time() + 30
    while time.time() < deadline and (_workers(srv) or any(e["tier"] != "dropped" for e in _entries(srv))):
        time.sleep(0.2)
    assert not _workers(srv) and [e["tier"] for e in _entries(srv)] == ["dropped"]
    # (that the next run loads again is the shared worker plumbing's, lockn_gen/workers.py: test_sdcpp_server.py runs
    # it; a second HeartMuLa load here would cost CI another ~15 s of importing torch and heartlib)


@pytest.mark.parametrize("model,says", [
    ("HeartMuLa-oss-3B-interrupted", ("HeartMuLa-oss-3B-interrupted", "model.safetensors", "truncated")),
    ("HeartMuLa-oss-3B-not-downloaded", ("missing:", "HeartMuLa-oss-3B-not-downloaded/model.safetensors")),
])
def test_a_broken_or_missing_model_is_named_before_anything_loads(server, model, says):
    srv = server
    before = [e["loads_from_disk"] for e in _entries(srv)]
    with pytest.raises(PromptError) as e:
        srv.run(graphs.heartmula_song(model=model), timeout=120)
    msg = str(e.value)
    assert all(s in msg for s in says), msg
    assert "hf download HeartMuLa/HeartMuLaGen" in msg and "HeartMuLa/HeartCodec-oss-20260123" in msg
    assert [e["loads_from_disk"] for e in _entries(srv)] == before            # nothing was loaded
    assert srv.get("/system_stats")                                          # and the server serves on


def test_without_heartlib_the_engine_says_how_to_make_its_environment(tiny_models):
    from lockn_gen import heartmula
    from lockn_gen.preflight import LockNError
    if not (tiny_models / "HeartMuLa").is_dir():
        pytest.skip("no tiny HeartMuLa set")
    lay = heartmula.check(str(tiny_models / "HeartMuLa"))
    eng = heartmula.Engine(lay, python=sys.executable)               # ComfyUI's Python: no heartlib
    with pytest.raises(LockNError, match="LOCKN_SETUP_HEARTMULA=1 bash scripts/setup.sh"):
        eng.start()
    assert not eng.alive()
