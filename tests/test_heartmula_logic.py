"""HeartMuLa's files (lockn_gen/heartmula.py, issue 24), checked before anything loads: plain logic, no ComfyUI.
A set laid out as heartlib's README downloads it passes; each missing or broken piece is named with where it was looked
for and the commands that download the set."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from safetensors.numpy import save_file

from lockn_gen import heartmula as hm
from lockn_gen.preflight import LockNError


def _model(folder, model_type, shards=1):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({"model_type": model_type}, f)
    if shards == 1:
        save_file({"w": np.zeros((4, 4), np.float32)}, os.path.join(folder, "model.safetensors"))
        return
    names = [f"model-{i + 1:05d}-of-{shards:05d}.safetensors" for i in range(shards)]
    for i, n in enumerate(names):
        save_file({f"w{i}": np.zeros((4, 4), np.float32)}, os.path.join(folder, n))
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"weight_map": {f"w{i}": n for i, n in enumerate(names)}}, f)


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "HeartMuLa"
    _model(str(r / "HeartMuLa-oss-3B"), "heartmula", shards=2)
    _model(str(r / "HeartCodec-oss"), "heartcodec")
    (r / "tokenizer.json").write_text(json.dumps({"model": {}}))
    (r / "gen_config.json").write_text(json.dumps({"text_bos_id": 1, "text_eos_id": 2, "audio_eos_id": 3, "empty_id": 0}))
    return r


def test_a_whole_set_passes_and_lists_its_weights(root):
    lay = hm.check(str(root))
    assert [os.path.basename(w) for w in lay.weights] == ["model-00001-of-00002.safetensors",
                                                          "model-00002-of-00002.safetensors", "model.safetensors"]
    assert lay.model == str(root / "HeartMuLa-oss-3B") and hm.models_in(str(root)) == ["HeartMuLa-oss-3B"]


def _refused(root, model="HeartMuLa-oss-3B") -> str:
    with pytest.raises(LockNError) as e:
        hm.check(str(root), model)
    msg = str(e.value)
    assert f"Looked in {root}" in msg and "hf download HeartMuLa/HeartMuLaGen --local-dir" in msg, msg
    return msg


def test_no_folder_at_all_names_every_piece_and_the_downloads(tmp_path):
    msg = _refused(tmp_path / "HeartMuLa")
    for piece in ("tokenizer.json", "gen_config.json", "HeartMuLa-oss-3B", "HeartCodec-oss"):
        assert piece in msg
    assert "HeartMuLa/HeartMuLa-oss-3B-happy-new-year" in msg and "HeartMuLa/HeartCodec-oss-20260123" in msg
    assert f"lockn-gen models pull heartmula-3b --models-dir {tmp_path} (resumable, verified)" in msg


def test_a_missing_shard_a_cut_file_and_foreign_pieces_are_named(root):
    os.remove(root / "HeartMuLa-oss-3B" / "model-00002-of-00002.safetensors")
    assert "missing: " + str(root / "HeartMuLa-oss-3B" / "model-00002-of-00002.safetensors") in _refused(root)
    codec = root / "HeartCodec-oss" / "model.safetensors"
    codec.write_bytes(codec.read_bytes()[:-20])
    assert "truncated" in _refused(root) and "HeartCodec-oss" in _refused(root)
    (root / "gen_config.json").write_text("{cut")
    assert "gen_config.json: not readable JSON" in _refused(root)
    _model(str(root / "NotHeartMuLa"), "llama")
    assert "model_type 'llama', not 'heartmula'" in _refused(root, "NotHeartMuLa")
    assert hm.models_in(str(root)) == ["HeartMuLa-oss-3B"]                   # only HeartMuLa models are offered


def test_the_worker_python_and_the_install_message(monkeypatch, tmp_path):
    monkeypatch.setenv("LOCKN_HEARTMULA_VENV", str(tmp_path / "venv"))
    monkeypatch.delenv("LOCKN_HEARTMULA_PYTHON", raising=False)
    assert hm.worker_python() == str(tmp_path / "venv" / "bin" / "python")
    assert not hm.installed(hm.worker_python())
    msg = hm.install_message(hm.worker_python())
    assert "LOCKN_SETUP_HEARTMULA=1 bash scripts/setup.sh" in msg and str(tmp_path / "venv") in msg
    monkeypatch.setenv("LOCKN_HEARTMULA_PYTHON", "/opt/hm/bin/python")
    assert hm.worker_python() == "/opt/hm/bin/python"


def test_a_set_that_passed_is_not_read_again_until_a_file_changes(root, monkeypatch):
    """ComfyUI asks for the node's fingerprint on every prompt: an unchanged set is not parsed again, but a file
    cut or replaced since is (by size and mtime), and refused."""
    reads = []
    real = hm.fileinfo.read_safetensors_header
    monkeypatch.setattr(hm.fileinfo, "read_safetensors_header", lambda p: reads.append(p) or real(p))
    first = hm.check(str(root))
    assert len(reads) == 3
    assert hm.check(str(root)) == first and len(reads) == 3                    # nothing read the second time
    shard = root / "HeartMuLa-oss-3B" / "model-00002-of-00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:20])                                 # cut, as a failed download leaves it
    msg = _refused(root)
    assert "model-00002-of-00002.safetensors" in msg and len(reads) == 6
