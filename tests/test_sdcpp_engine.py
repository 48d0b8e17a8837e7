"""The stable-diffusion.cpp engine (lockn_gen/sdcpp_engine.py, issue 27) on its own: bad input never takes the caller
down. Pictures, progress, the kept context and Cancel are tested through the node in real ComfyUI
(tests/test_sdcpp_server.py), on the tiny set's klein files and its Qwen3 at sd.cpp's head layout
(lockn_testing/tiny/sdcpp.py)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from lockn_gen.preflight import LockNError
from lockn_gen.sdcpp_engine import Engine, Files, check_size

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_files(tiny_models):
    """(sd.cpp-ready Files from the tiny set, the pack's own tiny Qwen3 that sd.cpp cannot load)."""
    from lockn_testing.graphs import SDCPP_TE
    m = tiny_models
    return (Files(str(m / "diffusion_models" / "flux-2-klein-4b.safetensors"), str(m / "text_encoders" / SDCPP_TE),
                  str(m / "vae" / "flux2-vae.safetensors")), str(m / "text_encoders" / "qwen_3_4b.safetensors"))


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


class _Cancel(BaseException):
    """As ComfyUI's InterruptProcessingException: raised by its progress hook inside on_step."""


def test_a_caller_that_gives_up_inside_on_step_takes_the_run_with_it(tiny_files):
    files, _ = tiny_files
    eng = Engine(files, threads=1)

    def on_step(i, n):
        if n == 50 and i >= 1:
            raise _Cancel()
    try:
        eng.start()
        pid = eng.proc.pid
        with pytest.raises(_Cancel):
            eng.generate("a fox", 64, 64, steps=50, seed=1, on_step=on_step)
        assert not eng.alive()
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finally:
        eng.close()
