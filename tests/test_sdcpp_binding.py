"""stable-diffusion.cpp's binding, the optional second image engine (issue 27, first part): the set-up option builds
it for this machine once and installs it (scripts/test.sh asks for it). A file sd.cpp cannot load kills the process
that calls it (the last test shows it), which is why the engine lives outside ComfyUI's process (its pictures from
the tiny klein files: tests/test_sdcpp_server.py)."""
from __future__ import annotations

import glob
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VERSION = "0.4.7"

SCRIPT = textwrap.dedent('''
    import sys
    from lockn_testing.comfy_boot import boot
    boot(models_root=None, argv=("--cpu",))
    import numpy as np
    from lockn_testing import tiny
    from lockn_testing.tiny import sdcpp as tiny_sdcpp
    from lockn_testing.tiny import flux2 as tiny_flux2
    models = tiny.ensure(quiet=True)
    te = str(models / "text_encoders" / (tiny_sdcpp.KLEIN_TE_SDCPP if sys.argv[1] == "sdcpp-layout" else tiny_flux2.KLEIN_TE))
    from stable_diffusion_cpp import StableDiffusion
    sd = StableDiffusion(diffusion_model_path=str(models / "diffusion_models" / tiny_flux2.KLEIN_DIT),
                         llm_path=te, vae_path=str(models / "vae" / tiny_flux2.VAE), n_threads=1, verbose=False)
    print("LOADED", flush=True)
    [im] = sd.generate_image(prompt="a red fox in the snow", width=64, height=64, sample_steps=2, cfg_scale=1.0, seed=7)
    a = np.asarray(im)
    print("IMAGE", a.shape[1], a.shape[0], a.shape[2], float(a.std()), flush=True)
''')


def _run(kind: str, te_path: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", SCRIPT, kind, te_path], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


def test_the_set_up_option_built_the_binding_for_this_machine_and_keeps_the_wheel():
    from importlib import metadata
    try:
        got = metadata.version("stable-diffusion-cpp-python")
    except metadata.PackageNotFoundError:
        pytest.fail(f"stable-diffusion.cpp's binding is not installed in {sys.executable}: "
                    f"LOCKN_SETUP_SDCPP=1 bash scripts/setup.sh (scripts/test.sh does it)")
    assert got == VERSION
    import stable_diffusion_cpp
    assert callable(stable_diffusion_cpp.StableDiffusion)
    cache = os.environ.get("LOCKN_WHEEL_CACHE", os.path.expanduser("~/.cache/lockn-gen/wheels"))
    assert glob.glob(os.path.join(cache, f"sdcpp-{VERSION}-*", f"stable_diffusion_cpp_python-{VERSION}-*.whl")), \
        "the built wheel is kept, so a second set-up does not rebuild it"


def test_a_text_encoder_sdcpp_cannot_load_kills_the_process_that_calls_it():
    """The pack's tiny Qwen3 (one attention head) does not fit sd.cpp's fixed head layout. sd.cpp logs the tensor,
    the binding returns as if loaded, and generating dereferences a null result: the process dies. An engine
    inside ComfyUI's process would take the server down with it."""
    res = _run("comfyui-tiny")
    assert "LOADED" in res.stdout                        # no exception at load
    assert res.returncode != 0 and "IMAGE" not in res.stdout
    assert "k_proj.weight" in res.stderr or res.returncode < 0, res.stderr[-2000:]
