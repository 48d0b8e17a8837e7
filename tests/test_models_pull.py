"""`lockn-gen models list|check|pull` against the local fake hub (lockn_testing.fake_hub), 127.0.0.1 only.

Tiny files (a few kB to ~1 MB) described by a user catalog the test writes; HF_ENDPOINT points at the
fake hub; the models folder is a temp dir.
"""
from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lockn_gen import hub
from lockn_gen.cli import main as cli_main
from lockn_testing.fake_hub import FakeHub, free_port

ROOT = Path(__file__).resolve().parent.parent
REPO = "lockn-test/tiny-flux"
GATED_REPO = "lockn-test/gated"
TOKEN = "hf_test_token_123"


def _blob(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


DIT = _blob(1_000_003, 1)    # exact size + sha256 in the catalog
TE = _blob(40_000, 2)        # exact size + sha256 in the catalog
VAE = _blob(8_000, 3)        # approximate size, no sha256: verified against the hub's LFS etag
GATED = _blob(5_000, 4)


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


CATALOG = f"""
[files."tiny-dit.gguf"]
family = "flux2"
kind = "diffusion_model"
repo = "{REPO}"
path = "transformer/tiny-dit.gguf"
folder = "diffusion_models"
size = {len(DIT)}
size_exact = true
sha256 = "{sha(DIT)}"
format = "gguf"
quant = "Q8_0"

[files."tiny-te.safetensors"]
family = "flux2"
kind = "text_encoder"
repo = "{REPO}"
path = "split_files/text_encoders/tiny-te.safetensors"
folder = "text_encoders"
size = {len(TE)}
size_exact = true
sha256 = "{sha(TE)}"
format = "safetensors"
quant = "bf16"

[files."tiny-vae.safetensors"]
family = "flux2"
kind = "vae"
repo = "{REPO}"
path = "split_files/vae/tiny-vae.safetensors"
folder = "vae"
size = 8_100
format = "safetensors"
quant = "bf16"

[files."tiny-gone.safetensors"]
family = "flux2"
kind = "vae"
repo = "{REPO}"
path = "split_files/vae/not-on-the-hub.safetensors"
folder = "vae"
size = 1_000
format = "safetensors"
quant = "bf16"

[files."tiny-gated.safetensors"]
family = "flux2"
kind = "vae"
repo = "{GATED_REPO}"
path = "tiny-gated.safetensors"
folder = "vae"
size = {len(GATED)}
size_exact = true
format = "safetensors"
quant = "bf16"

[files."tiny-selfmade.gguf"]
family = "flux2"
kind = "diffusion_model"
repo = ""
folder = "diffusion_models"
size = 1_000
format = "gguf"
quant = "Q8_0"
note = "No public GGUF exists: convert it yourself with convert.py."

[presets."tiny-flux"]
family = "flux2"
label = "Tiny Flux test preset"
components = {{ diffusion_model = "tiny-dit.gguf", text_encoder = "tiny-te.safetensors", vae = "tiny-vae.safetensors" }}

[presets."tiny-selfmade"]
family = "flux2"
label = "Tiny preset with a file nobody publishes"
components = {{ diffusion_model = "tiny-selfmade.gguf", text_encoder = "tiny-te.safetensors", vae = "tiny-vae.safetensors" }}
"""


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Fake hub with the tiny files, the user catalog, a models dir, and a clean HF environment."""
    import importlib

    hf_tqdm = importlib.import_module("huggingface_hub.utils.tqdm")   # the module (the package exports the class)
    fake = FakeHub()
    fake.add(REPO, "transformer/tiny-dit.gguf", DIT)
    fake.add(REPO, "split_files/text_encoders/tiny-te.safetensors", TE)
    fake.add(REPO, "split_files/vae/tiny-vae.safetensors", VAE)
    fake.add(GATED_REPO, "tiny-gated.safetensors", GATED, token=TOKEN, gated=True)
    fake.start()
    cat = tmp_path / "user_catalog.toml"
    cat.write_text(CATALOG)
    models = tmp_path / "models"
    models.mkdir()
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "LOCKN_GEN_CATALOG",
                "HF_HUB_DISABLE_PROGRESS_BARS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", fake.endpoint)
    monkeypatch.setattr(hf_tqdm, "HF_HUB_DISABLE_PROGRESS_BARS", None)
    yield type("Env", (), {"hub": fake, "cat": cat, "models": models, "tmp": tmp_path})
    fake.stop()


def cli(env, *argv: str) -> int:
    return cli_main(["models", *argv, "--catalog", str(env.cat), "--models-dir", str(env.models)])


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def staged(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if hub.STAGING_DIR in p.parts]


def sub_env(**extra) -> dict:
    e = {k: v for k, v in os.environ.items()
         if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_DISABLE_PROGRESS_BARS")}
    e.update(extra)
    return e


# ---- pulls ------------------------------------------------------------------------------------
def test_pull_preset_lands_verified_then_skips(env, capsys):
    assert cli(env, "pull", "tiny-flux") == 0
    out, err = capsys.readouterr()
    m = env.models
    assert (m / "diffusion_models" / "tiny-dit.gguf").read_bytes() == DIT
    assert (m / "text_encoders" / "tiny-te.safetensors").read_bytes() == TE
    assert (m / "vae" / "tiny-vae.safetensors").read_bytes() == VAE
    assert not staged(m)
    # which checksum verified each file is said
    assert f"sha256 {sha(DIT)} verified against the catalog" in out
    assert f"sha256 {sha(VAE)} verified against the hub LFS etag" in out
    assert "tiny-dit.gguf" in err and "100%" in err          # progress bar
    gets = [r for r in env.hub.requests if r.method == "GET"]
    assert gets and all(r.range is None for r in gets)

    # Second pull: everything present, nothing fetched.
    env.hub.clear_requests()
    assert cli(env, "pull", "tiny-flux") == 0
    out, _ = capsys.readouterr()
    assert out.count("already present") == 3
    assert env.hub.requests == []

    # --verify re-hashes: a same-size file with other bytes is caught and left for the user.
    bad = bytearray(TE)
    bad[100] ^= 1
    (m / "text_encoders" / "tiny-te.safetensors").write_bytes(bytes(bad))
    assert cli(env, "pull", "tiny-flux") == 0                  # size check alone cannot see it
    assert cli(env, "pull", "tiny-flux", "--verify") == 1
    _, err = capsys.readouterr()
    assert "tiny-te.safetensors" in err and sha(TE) in err and sha(bytes(bad)) in err


def test_interrupted_pull_resumes_from_partial(env, capsys):
    cut = 400_000
    env.hub.file(REPO, "transformer/tiny-dit.gguf").cut_after = cut
    target = env.models / "diffusion_models" / "tiny-dit.gguf"
    part = target.parent / hub.STAGING_DIR / "tiny-dit.gguf.part"

    assert cli(env, "pull", "--file", "tiny-dit.gguf", "--retries", "0") == 1
    _, err = capsys.readouterr()
    assert "interrupted" in err and str(part) in err
    assert not target.exists()
    assert part.stat().st_size == cut

    assert cli(env, "pull", "--file", "tiny-dit.gguf") == 0
    out, _ = capsys.readouterr()
    assert "resuming tiny-dit.gguf" in out
    gets = env.hub.downloads("transformer/tiny-dit.gguf")
    assert [(r.range, r.status) for r in gets] == [(None, 200), (f"bytes={cut}-", 206)]
    assert target.read_bytes() == DIT
    assert not staged(env.models)
    assert env.hub.bytes_served("transformer/tiny-dit.gguf") < 1.5 * len(DIT)


def test_dropped_connection_reconnects_within_one_run(env, capsys):
    from lockn_gen import catalog

    env.hub.file(REPO, "transformer/tiny-dit.gguf").cut_after = 300_000
    cat = catalog.load([env.cat], include_env=False)
    (res,) = hub.pull_files(cat, ["tiny-dit.gguf"], env.models, retries=2, retry_wait=0.01, progress=False)
    assert res.status == "downloaded" and res.hash_source == "catalog"
    assert (env.models / "diffusion_models" / "tiny-dit.gguf").read_bytes() == DIT
    ranges = [r.range for r in env.hub.downloads("transformer/tiny-dit.gguf")]
    assert ranges == [None, "bytes=300000-"]
    assert "connection lost at 300000 bytes" in capsys.readouterr().out


def test_partial_of_another_version_is_discarded(env, capsys):
    path = "split_files/vae/tiny-vae.safetensors"
    env.hub.file(REPO, path).cut_after = 3_000
    assert cli(env, "pull", "--file", "tiny-vae.safetensors", "--retries", "0") == 1
    new = _blob(8_050, 99)                                     # the hub now serves another file
    env.hub.add(REPO, path, new)
    env.hub.clear_requests()
    assert cli(env, "pull", "--file", "tiny-vae.safetensors") == 0
    assert "discarding a partial download" in capsys.readouterr().out
    assert [r.range for r in env.hub.downloads(path)] == [None]
    assert (env.models / "vae" / "tiny-vae.safetensors").read_bytes() == new


@pytest.mark.parametrize("name,path,data,source", [
    ("tiny-te.safetensors", "split_files/text_encoders/tiny-te.safetensors", TE, "catalog"),
    ("tiny-vae.safetensors", "split_files/vae/tiny-vae.safetensors", VAE, "hub LFS etag"),
])
def test_corrupted_download_is_rejected(env, capsys, name, path, data, source):
    f = env.hub.file(REPO, path)
    f.corrupt = True
    assert cli(env, "pull", "--file", name) == 1
    _, err = capsys.readouterr()
    assert name in err and "REJECTED" in err
    assert f"expected {sha(data)} ({source})" in err and f"got {sha(f.body())}" in err
    assert "deleted" in err
    assert files_under(env.models) == []                       # no final file, no staged leftovers
    assert not staged(env.models)
    assert len(env.hub.downloads(path)) == 1


def test_no_server_fails_fast_and_writes_nothing(env):
    dead = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "lockn-gen"), "models", "pull", "tiny-flux",
         "--catalog", str(env.cat), "--models-dir", str(env.models)],
        capture_output=True, text=True, timeout=60, env=sub_env(HF_ENDPOINT=dead))
    assert time.monotonic() - t0 < 20
    assert proc.returncode != 0
    err = proc.stderr
    assert f"{dead}/{REPO}/resolve/main/transformer/tiny-dit.gguf" in err
    assert "Nothing was written" in err and "HF_ENDPOINT" in err and "HF_TOKEN" in err
    assert "Traceback" not in err and "Traceback" not in proc.stdout
    assert "skipped" in err                                    # did not hammer the dead hub per file
    assert list(env.models.rglob("*")) == []


def test_http_errors_explain_the_fix(env, capsys, monkeypatch):
    # 404: the catalog entry names a path the repo does not have.
    assert cli(env, "pull", "--file", "tiny-gone.safetensors") == 1
    _, err = capsys.readouterr()
    assert "HTTP 404" in err and "not-on-the-hub.safetensors" in err and "catalog entry" in err
    # 401 on a gated repo without a token: token + licence acceptance.
    assert cli(env, "pull", "--file", "tiny-gated.safetensors") == 1
    _, err = capsys.readouterr()
    assert "HTTP 401" in err and "HF_TOKEN" in err and "licence" in err
    assert files_under(env.models) == []
    # With HF_TOKEN the same pull works, and the token reached the hub.
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert cli(env, "pull", "--file", "tiny-gated.safetensors") == 0
    assert (env.models / "vae" / "tiny-gated.safetensors").read_bytes() == GATED
    hits = [r for r in env.hub.requests_for("tiny-gated.safetensors") if "/resolve/" in r.path]
    assert hits and all(r.authorization == (r.status != 401) for r in hits)


def test_file_without_public_source(env, capsys):
    assert cli(env, "pull", "tiny-selfmade") == 1
    out, err = capsys.readouterr()
    assert "tiny-selfmade.gguf has no public download source" in err
    assert "convert it yourself with convert.py" in err
    assert str(env.models / "diffusion_models" / "tiny-selfmade.gguf") in err
    # the files that do have a source are still pulled
    assert (env.models / "text_encoders" / "tiny-te.safetensors").read_bytes() == TE


def test_size_mismatch_with_exact_catalog_size_downloads_nothing(env, capsys):
    env.hub.add(REPO, "split_files/text_encoders/tiny-te.safetensors", TE + b"extra")
    assert cli(env, "pull", "--file", "tiny-te.safetensors") == 1
    _, err = capsys.readouterr()
    assert f"serves {len(TE) + 5} bytes" in err and f"exactly {len(TE)}" in err
    assert env.hub.requests_for("split_files/text_encoders/tiny-te.safetensors", "GET") == []  # HEAD only
    assert files_under(env.models) == []


def test_approximate_size_uses_the_hubs_and_warns_when_far_off(env, capsys):
    bigger = _blob(10_000, 5)                                  # catalog says about 8_100: 23% off
    env.hub.add(REPO, "split_files/vae/tiny-vae.safetensors", bigger)
    assert cli(env, "pull", "--file", "tiny-vae.safetensors", "--no-progress") == 0
    out, err = capsys.readouterr()
    assert "warning: tiny-vae.safetensors: the hub reports" in err and "10000 bytes" in err
    assert f"sha256 {sha(bigger)} verified against the hub LFS etag" in out
    assert (env.models / "vae" / "tiny-vae.safetensors").read_bytes() == bigger


# ---- check / list -------------------------------------------------------------------------------
def test_check_and_list(env, capsys):
    assert cli(env, "check", "tiny-flux") == 1
    out, _ = capsys.readouterr()
    assert "[missing] diffusion_models/tiny-dit.gguf" in out
    assert "tiny-flux: missing" in out and "models pull" in out

    assert cli(env, "list", "--family", "flux2") == 0
    out, _ = capsys.readouterr()
    assert "tiny-flux" in out and "[missing] diffusion_model" in out
    assert "tiny-selfmade" in out and "missing, no public source" in out
    assert hub.fmt_size(len(DIT) + len(TE) + 8_100) in out   # preset total from the catalog sizes

    assert cli(env, "pull", "tiny-flux", "--no-progress") == 0
    capsys.readouterr()
    assert cli(env, "check", "tiny-flux") == 0
    assert "tiny-flux: complete" in capsys.readouterr().out
    assert cli(env, "list") == 0
    assert "3/3 files present" in capsys.readouterr().out

    (env.models / "text_encoders" / "tiny-te.safetensors").write_bytes(TE[:-10])
    assert cli(env, "check", "tiny-flux") == 1
    assert "[wrong-size] text_encoders/tiny-te.safetensors" in capsys.readouterr().out


# ---- the command the loader nodes print --------------------------------------------------------
def test_download_command_downloads(env, monkeypatch):
    monkeypatch.setenv("LOCKN_GEN_CATALOG", str(env.cat))
    cmd = hub.download_command(["tiny-vae.safetensors", "tiny-te.safetensors"], models_dir=env.models)
    assert cmd.startswith(sys.executable) and str(ROOT / "lockn-gen") in cmd
    assert f"--models-dir {env.models}" in cmd and "--catalog" in cmd
    assert "--models-dir" not in hub.download_command(["tiny-vae.safetensors"])
    proc = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=60,
                          env=sub_env(HF_ENDPOINT=env.hub.endpoint, LOCKN_GEN_CATALOG=""))
    assert proc.returncode == 0, proc.stderr
    assert (env.models / "vae" / "tiny-vae.safetensors").read_bytes() == VAE
    assert (env.models / "text_encoders" / "tiny-te.safetensors").read_bytes() == TE
    assert "100%" in proc.stderr                               # progress bars in a real terminal-less run


# ---- the fake hub itself ------------------------------------------------------------------------
def test_fake_hub_serves_hf_hub_download(env):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError

    env.hub.add(REPO, "config.json", b'{"a": 1}', lfs=False)
    d = env.tmp / "dl"
    p = hf_hub_download(REPO, "split_files/vae/tiny-vae.safetensors", local_dir=d, endpoint=env.hub.endpoint)
    assert Path(p).read_bytes() == VAE
    p = hf_hub_download(REPO, "config.json", local_dir=d, endpoint=env.hub.endpoint)
    assert Path(p).read_bytes() == b'{"a": 1}'
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(REPO, "nope.bin", local_dir=d, endpoint=env.hub.endpoint)


# ---- whole repositories: HeartMuLa's set ----------------------------------------------------------------------
def _safetensors_bytes(tmp: Path, name: str, n: int) -> bytes:
    import numpy as np
    from safetensors.numpy import save_file
    save_file({name: np.arange(n, dtype=np.float32)}, str(tmp / "st"))
    return (tmp / "st").read_bytes()


def test_heartmula_set_is_pulled_whole_into_heartlibs_layout(env, capsys):
    """`models pull heartmula-3b` lists each of HeartMuLa's three repositories on the hub and downloads every file
    (resumed, sha256-verified) into models/HeartMuLa as heartlib's README lays them out: the node's own check then
    passes. A second pull reads nothing; a repository the hub does not list is named, and the rest is skipped."""
    import json
    from lockn_gen import heartmula as hm
    gen, mula, codec = (r for r, _ in hm.PULL_TARGETS)
    shards = [_safetensors_bytes(env.tmp, f"w{i}", 50_000 + i) for i in range(2)]
    names = [f"model-0000{i + 1}-of-00002.safetensors" for i in range(2)]
    env.hub.add(gen, "tokenizer.json", json.dumps({"model": {"vocab": list(range(3000))}}).encode())
    env.hub.add(gen, "gen_config.json", b'{"text_bos_id": 1, "text_eos_id": 2, "audio_eos_id": 3, "empty_id": 0}', lfs=False)
    env.hub.add(gen, ".gitattributes", b"*.json filter=lfs\n", lfs=False)
    env.hub.add(mula, "config.json", b'{"model_type": "heartmula"}', lfs=False)
    env.hub.add(mula, "model.safetensors.index.json",
                json.dumps({"weight_map": {"w0": names[0], "w1": names[1]}}).encode(), lfs=False)
    for n, data in zip(names, shards):
        env.hub.add(mula, n, data)
    env.hub.file(mula, names[1]).cut_after = 120_000            # dropped once mid-body: resumed in the same run
    env.hub.add(codec, "config.json", b'{"model_type": "heartcodec"}', lfs=False)
    env.hub.add(codec, "model.safetensors", _safetensors_bytes(env.tmp, "c", 30_000))

    assert cli(env, "pull", "heartmula-3b") == 0
    out, err = capsys.readouterr()
    root = env.models / "HeartMuLa"
    assert sorted(p.relative_to(root).as_posix() for p in files_under(root)) == [
        "HeartCodec-oss/config.json", "HeartCodec-oss/model.safetensors", "HeartMuLa-oss-3B/config.json",
        f"HeartMuLa-oss-3B/{names[0]}", f"HeartMuLa-oss-3B/{names[1]}", "HeartMuLa-oss-3B/model.safetensors.index.json",
        "gen_config.json", "tokenizer.json"]                       # not .gitattributes; nothing left in staging
    assert (root / "HeartMuLa-oss-3B" / names[1]).read_bytes() == shards[1]
    assert f"sha256 {sha(shards[1])} verified against the hub LFS etag" in out
    assert any(r.range == "bytes=120000-" for r in env.hub.requests)
    lay = hm.check(str(root))                                       # the node's own reading of the set passes
    assert [Path(w).name for w in lay.weights] == [*names, "model.safetensors"]

    env.hub.clear_requests()
    assert cli(env, "pull", "HeartMuLa") == 0                       # the family's name asks for the same set
    out, _ = capsys.readouterr()
    assert out.count("already present") == 8
    assert all("/tree/" in r.path for r in env.hub.requests)        # only the three listings

    del env.hub.repos[codec]
    assert cli(env, "pull", "heartmula-3b") == 1
    _, err = capsys.readouterr()
    assert f"{codec}: the hub ({env.hub.endpoint}) did not list its files (HTTP 404" in err
