"""Shared fixtures: the tiny model set, a real ComfyUI server, ComfyUI in-process.

Integration tests carry the `comfy` marker. With LOCKN_REQUIRE_COMFY=1 (set by .ci/run) a skipped
`comfy` test fails the run instead: CI must run them, not skip them.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# one torch thread per test ComfyUI (in-process and servers): see lockn_testing.harness.test_threads. Set before
# anything imports torch.
os.environ.setdefault("LOCKN_TEST_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", os.environ["LOCKN_TEST_THREADS"])
os.environ.setdefault("MKL_NUM_THREADS", os.environ["LOCKN_TEST_THREADS"])
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from lockn_testing.harness import comfyui_path  # noqa: E402


def comfy_available() -> str | None:
    """None when ComfyUI (with its venv and ComfyUI-GGUF) is usable, else what is missing."""
    root = comfyui_path()
    if not (root / "main.py").is_file():
        return f"no ComfyUI at {root} (COMFYUI_PATH)"
    if not (root / "custom_nodes" / "ComfyUI-GGUF" / "nodes.py").is_file():
        return f"no ComfyUI-GGUF in {root / 'custom_nodes'}"
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and os.environ.get("LOCKN_REQUIRE_COMFY") == "1" and item.get_closest_marker("comfy"):
        rep.outcome = "failed"
        rep.longrepr = f"ComfyUI integration test skipped, which CI does not allow: {rep.longrepr}"


# ---- the suite's time budget (.ci/run sets LOCKN_SUITE_BUDGET_S) -----------------------------------------------
_STARTED = time.monotonic()


def pytest_sessionfinish(session, exitstatus):
    """With LOCKN_SUITE_BUDGET_S set, a run that took longer fails, naming the budget: a new capability pays
    for its tests by sharing servers and runs, and CI keeps every version's suite within its share of the
    25 minutes. Only the controller decides (xdist workers each see a part)."""
    budget = os.environ.get("LOCKN_SUITE_BUDGET_S")
    if not budget or hasattr(session.config, "workerinput"):
        return
    took = time.monotonic() - _STARTED
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    line = f"LockN suite budget: {took:.0f} s of {float(budget):.0f} s"
    if took > float(budget):
        line += (" -- OVER BUDGET: make the new tests share servers and runs (tests/conftest.py), or move "
                 "minutes-long checks to the once-per-CI soak (.ci/run)")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if tr is not None:
        tr.write_line(line, red=took > float(budget), bold=True)


# ---- scheduling: the longest test files first ------------------------------------------------------------------
# scripts/test.sh runs files in parallel workers (xdist --dist loadfile), which take files in collection order:
# the files that take longest start first, so no worker is left with a long one at the end. Only the order
# changes; measured per file with `bash scripts/test.sh --durations=0` (2026-12-06, 2 workers).
LONGEST_FIRST = ("test_memory_flat.py", "test_lora_server.py", "test_faults_server.py", "test_web_workflows.py",
                 "test_residency_server.py", "test_loaders_server.py", "test_faults_io.py",
                 "test_brief_server.py", "test_step_cache.py", "test_workflows.py", "test_turbo.py", "test_bad_input.py")


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda it: rank.get(it.path.name, len(rank)))     # stable: a file's own order is kept


def _require_comfy():
    missing = comfy_available()
    if missing:
        pytest.skip(missing)


@pytest.fixture(scope="session")
def tiny_models() -> Path:
    """The tiny real-architecture model set (generated once, cached)."""
    _require_comfy()
    from lockn_testing import tiny
    return tiny.ensure(python=str(comfyui_path() / ".venv" / "bin" / "python"))


@pytest.fixture(scope="session")
def start_image() -> Path:
    """A small RGB picture to start image-to-video graphs from."""
    import numpy as np
    from PIL import Image
    d = Path(tempfile.mkdtemp(prefix="lockn-img-"))
    p = d / "start.png"
    Image.fromarray((np.random.RandomState(0).rand(48, 40, 3) * 255).astype("uint8")).save(p)
    yield p
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def bad_models(tiny_models, tmp_path_factory) -> Path:
    """An extra model folder of broken or misplaced files, made from the tiny set."""
    root = tmp_path_factory.mktemp("bad-models")
    dm, vae = root / "diffusion_models", root / "vae"
    dm.mkdir()
    vae.mkdir()
    gguf = (tiny_models / "diffusion_models" / "flux2-dev-Q8_0.gguf").read_bytes()
    st = (tiny_models / "diffusion_models" / "flux2_dev_fp8mixed.safetensors").read_bytes()
    (dm / "flux2-dev-Q8_0-interrupted.gguf").write_bytes(gguf[: len(gguf) * 6 // 10])
    (dm / "flux2_dev_interrupted.safetensors").write_bytes(st[: len(st) // 2])
    (dm / "flux2_dev_corrupt.safetensors").write_bytes(b"\x40\x00\x00\x00\x00\x00\x00\x00" + b"{not json at all" + b"\x00" * 200)
    shutil.copy(tiny_models / "vae" / "flux2-vae.safetensors", dm / "flux2-vae-in-the-wrong-folder.safetensors")
    shutil.copy(tiny_models / "diffusion_models" / "flux2_dev_fp8mixed.safetensors", vae / "flux2-dit-as-vae.safetensors")
    loras = root / "loras"
    loras.mkdir()
    lora = (tiny_models / "loras" / "Flux2TurboComfyv2.safetensors").read_bytes()
    (loras / "flux2_lora_interrupted.safetensors").write_bytes(lora[: len(lora) // 2])
    shutil.copy(tiny_models / "vae" / "flux2-vae.safetensors", loras / "flux2-vae-as-lora.safetensors")
    _unknown_lora(loras / "lora_for_some_other_model.safetensors")
    # more broken files (tests/test_bad_input.py): empty, a GGUF cut inside its header, bad magic, an
    # absurd tensor count, a directory and a broken symbolic link with model names
    (dm / "flux2_dev_zero_bytes.safetensors").write_bytes(b"")
    (dm / "flux2-dev-zero-bytes.gguf").write_bytes(b"")
    (dm / "flux2-dev-cut-in-header.gguf").write_bytes(gguf[:200])
    (dm / "flux2-dev-bad-magic.gguf").write_bytes(b"GGML" + gguf[4:4096])
    (dm / "flux2-dev-absurd-count.gguf").write_bytes(b"GGUF" + (3).to_bytes(4, "little") + (1 << 40).to_bytes(8, "little")
                                                     + (0).to_bytes(8, "little") + b"\x00" * 64)
    (dm / "flux2_dev_a_directory.safetensors").mkdir()
    (dm / "flux2_dev_broken_link.safetensors").symlink_to(root / "gone" / "flux2_dev_fp8mixed.safetensors")
    _broken_family_files(tiny_models, root)
    _broken_heartmula(tiny_models, root)
    return root


def _broken_heartmula(tiny_models, root):
    """HeartMuLa model folders beside a whole codec and tokenizer (tests/test_heartmula_server.py): one whose weights
    are an interrupted download, one whose weights were never downloaded. Nothing without the tiny HeartMuLa set."""
    src = tiny_models / "HeartMuLa"
    if not src.is_dir():
        return
    dst = root / "HeartMuLa"
    shutil.copytree(src / "HeartCodec-oss", dst / "HeartCodec-oss")
    for name in ("tokenizer.json", "gen_config.json"):
        shutil.copy(src / name, dst / name)
    for what in ("interrupted", "not-downloaded"):
        d = dst / f"HeartMuLa-oss-3B-{what}"
        d.mkdir()
        shutil.copy(src / "HeartMuLa-oss-3B" / "config.json", d / "config.json")
        if what == "interrupted":
            data = (src / "HeartMuLa-oss-3B" / "model.safetensors").read_bytes()
            (d / "model.safetensors").write_bytes(data[: len(data) // 2])


# the families of issue 24: each gets a preset whose main file is an interrupted download ("broken-FAMILY") and
# one whose main file was never downloaded ("missing-FAMILY"), in a catalog beside the broken files (the session
# server reads it: LOCKN_GEN_CATALOG)
NEW_FAMILIES = ("flux1", "sd35", "sdxl", "ltxv", "wan21", "wan21_t2v", "hunyuan15", "skyreels", "stable_audio")


def _broken_family_files(tiny_models, root):
    from lockn_gen import catalog as catalog_mod
    cat = catalog_mod.builtin()
    lines = []
    for fam in NEW_FAMILIES:
        preset = cat.presets[cat.families[fam].default_preset]
        role = "diffusion_model" if "diffusion_model" in preset.components else "checkpoint"
        entry = cat.files[preset.components[role]]
        stem, ext = entry.name.rsplit(".", 1)
        src = tiny_models / entry.folder / entry.name
        (root / entry.folder).mkdir(exist_ok=True)
        data = src.read_bytes()
        for what, name in (("broken", f"{stem}-interrupted.{ext}"), ("missing", f"{stem}-not-downloaded.{ext}")):
            if what == "broken":
                (root / entry.folder / name).write_bytes(data[: len(data) // 2])
            lines += [f'[files."{name}"]', f'family = "{fam}"', f'kind = "{entry.kind}"', f'repo = "{entry.repo}"',
                      f'path = "{entry.path}"', f'folder = "{entry.folder}"', f"size = {entry.size}",
                      f'format = "{entry.format}"', f'quant = "{entry.quant}"', "confirmed = false", "",
                      f'[presets."{what}-{fam}"]', f'family = "{fam}"', f'label = "{what} {fam} (tests)"',
                      "components = { " + ", ".join(f'{r} = "{name if r == role else n}"'
                                                    for r, n in preset.components.items()) + " }", ""]
    (root / "catalog.toml").write_text("\n".join(lines))


def _unknown_lora(path):
    """A LoRA whose module names belong to no model LockN knows (nor to the one it is given to)."""
    import torch
    from safetensors.torch import save_file
    save_file({f"diffusion_model.mystery_blocks.{i}.proj.lora_{ab}.weight": torch.zeros(4, 4)
               for i in range(2) for ab in ("A", "B")}, str(path))


@pytest.fixture(scope="session")
def comfy_server(tiny_models, bad_models, start_image):
    """One real ComfyUI server (main.py --cpu) with the pack, ComfyUI-GGUF and the test patches
    (plus the broken files of `bad_models` as an extra model folder, and a user catalog with a preset
    whose files are not in the tiny set)."""
    from lockn_testing.harness.server import serving
    env = {"LOCKN_GEN_CATALOG": os.pathsep.join([str(Path(__file__).parent / "fixtures" / "user_catalog.toml"),
                                                 str(bad_models / "catalog.toml")]),
           "LOCKN_HEARTMULA_PRELOAD": "lockn_testing.tiny.heartmula"}      # the tiny HeartMuLa sizes, in its worker
    with serving(tiny_models, {"start.png": start_image}, extra_model_dirs=(str(bad_models),), env=env) as srv:
        yield srv


@pytest.fixture(scope="session")
def comfy_inproc(tiny_models, start_image, tmp_path_factory):
    """ComfyUI imported into the test process (CPU), with the pack, ComfyUI-GGUF and the test patches."""
    from lockn_testing.harness.inprocess import InProcessComfy
    scratch = tmp_path_factory.mktemp("comfy-inproc")
    (scratch / "input").mkdir(exist_ok=True)
    shutil.copy(start_image, scratch / "input" / "start.png")
    return InProcessComfy(str(tiny_models), str(scratch))


# ---- the editor in headless Chromium (tests/test_web_workflows.py; lockn_testing/harness/browser.py) -----
# One module holds every browser test (each module that asks for these builds its own server and browser, 15 to
# 20 s: under `--dist loadfile` even a session fixture would be built once per worker that runs such a file).
@pytest.fixture(scope="module")
def srv(tiny_models):
    """A ComfyUI server of the browser test module's own (so the residency state and the history are
    only that module's: its docstring says in which order its tests use them), with the editor settings
    that keep first-run dialogs and tours away."""
    from lockn_testing.harness.browser import editor_server
    with editor_server(tiny_models) as server:
        yield server


@pytest.fixture(scope="module")
def editor(srv):
    """The editor of `srv` in headless Chromium, opened and ready (a lockn_testing.harness.browser.Page:
    ``.page`` is the Playwright page)."""
    pw_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from lockn_testing.harness.browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, Page
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (LOCKN_CHROMIUM)")
    with pw_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield Page(browser.new_page(viewport=VIEWPORT), srv).open()
        finally:
            browser.close()
