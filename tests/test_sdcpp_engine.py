"""The stable-diffusion.cpp engine (lockn_gen/sdcpp_engine.py, issue 27): a worker process per loaded set of files,
driven with the pack's tiny Flux.2 klein diffusion model and VAE and a Qwen3 at sd.cpp's head layout
(lockn_testing/tiny/sdcpp.py). Pictures, progress, a kept context, interrupt, and bad input that never takes the
caller down."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lockn_gen.preflight import LockNError
from lockn_gen.sdcpp_engine import Engine, Files, Interrupted, check_size

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    """(sd.cpp-ready Files, the pack's own tiny Qwen3 that sd.cpp cannot load)."""
    out = tmp_path_factory.mktemp("sdcpp")
    te = out / "qwen_3_4b.safetensors"
    script = ("import sys\nfrom lockn_testing.comfy_boot import boot\nboot(models_root=None, argv=('--cpu',))\n"
              "from lockn_testing.tiny import sdcpp\nsdcpp.write_klein_te(sys.argv[1])\n"
              "from lockn_testing import tiny\nfrom lockn_testing.tiny import flux2\nm = tiny.ensure(quiet=True)\n"
              "print(m / 'diffusion_models' / flux2.KLEIN_DIT, m / 'vae' / flux2.VAE, m / 'text_encoders' / flux2.KLEIN_TE)\n")
    res = subprocess.run([sys.executable, "-c", script, str(te)], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    dit, vae, comfy_te = res.stdout.strip().splitlines()[-1].split()
    return Files(dit, str(te), vae), comfy_te


def test_pictures_progress_and_a_kept_context(tiny_files):
    files, _ = tiny_files
    eng = Engine(files, threads=1)
    try:
        steps = []
        [a] = eng.generate("a red fox in the snow", 80, 64, steps=3, seed=5, on_step=lambda i, n: steps.append((i, n)))
        assert a.shape == (64, 80, 3) and a.dtype.name == "uint8" and a.std() > 1.0
        assert [s for s in steps if s[1] == 3][-1] == (3, 3)        # each sampling step reported, to the last
        pid, loaded = eng.proc.pid, eng.load_seconds
        assert eng.rss() > 50 * 2**20                                # the context's memory: the worker's RSS
        [b] = eng.generate("a red fox in the snow", 80, 64, steps=3, seed=5)
        assert eng.proc.pid == pid and eng.load_seconds == loaded   # the same context: nothing loaded again
        # same seed, same picture (up to a step of rounding: no reload in between, but never rely on bits)
        assert abs(a.astype(int) - b.astype(int)).max() <= 2
    finally:
        eng.close()
    assert eng.rss() == 0 and not eng.alive()


def test_interrupt_kills_the_worker_between_steps_and_the_next_run_loads_again(tiny_files):
    files, _ = tiny_files
    eng = Engine(files, threads=1)
    try:
        eng.start()
        pid = eng.proc.pid
        seen = []
        with pytest.raises(Interrupted):
            eng.generate("a fox", 64, 64, steps=50, seed=1, on_step=lambda i, n: seen.append(i),
                         should_stop=lambda: len(seen) >= 1)
        assert not eng.alive() and len(seen) < 50
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        [a] = eng.generate("a fox", 64, 64, steps=1, seed=1)
        assert a.shape == (64, 64, 3) and eng.proc.pid != pid
    finally:
        eng.close()


def test_a_file_sdcpp_cannot_load_is_an_error_naming_it_and_the_caller_lives(tiny_files):
    files, comfy_tiny_qwen = tiny_files
    eng = Engine(Files(files.diffusion_model, comfy_tiny_qwen, files.vae), threads=1)
    with pytest.raises(LockNError) as e:
        eng.start()
    msg = str(e.value)
    assert "could not load" in msg and os.path.basename(comfy_tiny_qwen) in msg and "k_proj" in msg
    assert not eng.alive()


def test_a_corrupt_file_is_an_error_and_the_caller_lives(tiny_files, tmp_path):
    files, _ = tiny_files
    bad = tmp_path / "flux-2-klein-4b.safetensors"
    bad.write_bytes(Path(files.diffusion_model).read_bytes()[:4096])        # cut short, as a broken download
    with pytest.raises(LockNError) as e:
        Engine(Files(str(bad), files.llm, files.vae), threads=1).start()
    assert "flux-2-klein-4b.safetensors" in str(e.value)


def test_bad_sizes_missing_files_and_a_missing_binding_are_refused_with_the_fix(tiny_files, tmp_path):
    files, _ = tiny_files
    with pytest.raises(LockNError, match=r"width 100 .* multiple of 16 .*\(e\.g\. 96\)"):
        check_size(100, 64)
    with pytest.raises(LockNError, match="height 32"):
        check_size(64, 32)
    gone = Files(str(tmp_path / "flux2-dev-Q4_K_M.gguf"), files.llm, files.vae)
    with pytest.raises(LockNError, match=r"flux2-dev-Q4_K_M\.gguf is missing; pull it with: lockn-gen models pull --file"):
        Engine(gone).start()
    plain = shutil.which("python3")
    if plain and subprocess.run([plain, "-c", "import stable_diffusion_cpp"], capture_output=True).returncode != 0:
        with pytest.raises(LockNError, match="LOCKN_SETUP_SDCPP=1 bash scripts/setup.sh"):
            Engine(files, python=plain).start()
