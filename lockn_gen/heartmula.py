"""HeartMuLa (issue 24): songs from lyrics and tags, the plan's second music model. Plain module: nothing from ComfyUI.

ComfyUI does not load HeartMuLa, and its library (heartlib, github.com/HeartMuLa/heartlib) is not on PyPI and pins
packages that would move ComfyUI's own (numpy 2.0.2, transformers 4.57.0). So it runs in a Python of its own (made by
`LOCKN_SETUP_HEARTMULA=1 bash scripts/setup.sh`), in a worker process (lockn_gen/heartmula_worker.py) that keeps the
model loaded between runs; the residency registry counts it and `/free` or an eviction ends it, as for the
stable-diffusion.cpp engine.

Its files are three whole Hugging Face repositories laid out as heartlib's README says, under ComfyUI's
models/HeartMuLa (the folder the ComfyUI HeartMuLa packs use too):

    models/HeartMuLa/tokenizer.json, gen_config.json     HeartMuLa/HeartMuLaGen
    models/HeartMuLa/HeartMuLa-oss-3B/                   HeartMuLa/HeartMuLa-oss-3B-happy-new-year (README's pick)
    models/HeartMuLa/HeartCodec-oss/                     HeartMuLa/HeartCodec-oss-20260123

Another model folder beside them (HeartMuLa-RL-oss-3B-20260123, say) is offered too: any folder whose config.json
says model_type heartmula.

`check()` reads every piece before anything is loaded: a missing one is named with where it was looked for and the
command that downloads it; a broken one (an interrupted download, a foreign file) is named with what is wrong.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass

from . import fileinfo
from .preflight import LockNError
from .workers import Interrupted, Worker

__all__ = ["Engine", "Interrupted", "Layout", "check", "download_commands", "installed", "worker_python"]

HEARTLIB_COMMIT = "3981c52f2cab175c6cef67e4061e92988db1bdf4"       # the heartlib the set-up installs (2026-03-05)
FOLDER = "HeartMuLa"                          # under ComfyUI's models folder
FOLDER_KEY = "heartmula"                      # its name in ComfyUI's folder_paths (extra_model_paths.yaml: heartmula)
CODEC = "HeartCodec-oss"
MODELS = ("HeartMuLa-oss-3B",)
# the folder -> the repository heartlib's README (at HEARTLIB_COMMIT) downloads into it: its recommended versions
REPOS = {"": "HeartMuLa/HeartMuLaGen", "HeartMuLa-oss-3B": "HeartMuLa/HeartMuLa-oss-3B-happy-new-year",
         CODEC: "HeartMuLa/HeartCodec-oss-20260123"}
# `lockn-gen models pull heartmula-3b` (lockn_gen/repo_pull.py): each repository into its folder under models/
PULL_IDS = ("heartmula-3b", "heartmula")
PULL_TARGETS = tuple((REPOS[k], "/".join(x for x in (FOLDER, k) if x)) for k in ("", MODELS[0], CODEC))
SAMPLE_RATE = 48000                           # HeartCodec's output: 48 kHz stereo
FRAME_SECONDS = 0.08                          # one generated frame of 8 codebooks (12.5 Hz)
DTYPES = ("auto", "bfloat16", "float16", "float32")
# Parameters, counted from heartlib's own configurations at HEARTLIB_COMMIT (its classes built on the meta device:
# HeartMuLaConfig() = llama-3B backbone + llama-300M decoder, HeartCodecConfig()); the published weights are float32
# (3.94e9 x 4 B = 15.75 GB, the byte count of a public conversion of HeartMuLa-oss-3B: 15,752,483,328). Sizes on
# the hub are not confirmed. On a GPU LockN's worker holds both at once (heartlib's lazy_load off): the model in
# bfloat16, the codec in float32, as heartlib runs them.
PARAMS = {"HeartMuLa-oss-3B": 3_938_113_536, CODEC: 1_655_308_877}
GPU_BYTES = PARAMS["HeartMuLa-oss-3B"] * 2 + PARAMS[CODEC] * 4
WORKING_BYTES = 1_500_000_000                 # ESTIMATE: KV cache of a 4-minute song with CFG, codec activations
REAL_TIME_FACTOR = 1.0                        # heartlib's README: about real time on a GPU (not measured here)

INSTALL = ("HeartMuLa runs in a Python environment of its own (heartlib would change ComfyUI's numpy and transformers), "
           "and {python} has no working heartlib. Make it with the pack's set-up: LOCKN_SETUP_HEARTMULA=1 bash "
           "scripts/setup.sh (installs heartlib {commit} from github.com/HeartMuLa/heartlib into {venv}; several GB, "
           "once), or point LOCKN_HEARTMULA_PYTHON at a Python that has heartlib.")


NO_HEARTLIB = "heartlib does not import"       # the worker's first answer in a Python without it


def venv() -> str:
    return os.environ.get("LOCKN_HEARTMULA_VENV") or os.path.join(os.path.expanduser("~"), ".local", "share",
                                                                    "lockn-gen", "heartmula-venv")


def worker_python() -> str:
    """The Python that runs the worker: LOCKN_HEARTMULA_PYTHON, else the set-up's environment."""
    return os.environ.get("LOCKN_HEARTMULA_PYTHON") or os.path.join(venv(), "bin", "python")


_INSTALLED: dict[str, bool] = {}


def installed(python: str) -> bool:
    """Whether `python` imports heartlib and torchtune (asked once per Python and process)."""
    if python not in _INSTALLED:
        ok = os.path.isfile(python) and subprocess.run([python, "-c", "import heartlib, torchtune"],
                                                       capture_output=True).returncode == 0
        if not ok:
            return False                        # asked again next time: the set-up may be running now
        _INSTALLED[python] = True
    return True


def install_message(python: str) -> str:
    return INSTALL.format(python=python, commit=HEARTLIB_COMMIT[:8], venv=venv())


def download_commands(root: str, model: str = MODELS[0]) -> list[str]:
    """heartlib's README commands for the three repositories, into `root` (models/HeartMuLa)."""
    out = [f"hf download HeartMuLa/HeartMuLaGen --local-dir {root}"]
    for sub in (model, CODEC):
        out.append(f"hf download {REPOS.get(sub, 'HeartMuLa/' + sub)} --local-dir {os.path.join(root, sub)}")
    return out


@dataclass(frozen=True)
class Layout:
    root: str
    model: str                    # the HeartMuLa model's folder (config.json + safetensors)
    codec: str                    # HeartCodec's folder
    tokenizer: str
    gen_config: str
    weights: tuple = ()           # the model's and the codec's safetensors files (what the worker reads)

    def names(self) -> str:
        return f"{os.path.basename(self.model)} + {CODEC} in {self.root}"

    def files(self) -> tuple[str, ...]:
        return (self.model, self.codec, self.tokenizer, self.gen_config)


def models_in(root: str) -> list[str]:
    """The HeartMuLa model folders under `root` (a config.json of model_type heartmula), by name."""
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    return [n for n in names if _model_type(os.path.join(root, n, "config.json")) == "heartmula"]


def _model_type(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def _weights(folder: str) -> list[str]:
    """The safetensors files a Hugging Face model folder holds: model.safetensors, or the shards its index names."""
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.isfile(index):
        try:
            with open(index, encoding="utf-8") as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{index} is not a readable safetensors index ({e})") from None
        return [os.path.join(folder, s) for s in shards]
    return [os.path.join(folder, "model.safetensors")]


def _signature(root: str, model: str) -> tuple:
    """What a set's check depends on, by stat only: name, size and mtime of the files at the top of `root` and in
    the model's and the codec's folders (a replaced, grown or cut file changes it)."""
    sig = []
    for d in (root, os.path.join(root, model), os.path.join(root, CODEC)):
        try:
            with os.scandir(d) as it:
                sig += sorted((e.path, st.st_size, st.st_mtime_ns) for e in it if e.is_file()
                              for st in (e.stat(),))
        except OSError:
            sig.append((d, None))
    return tuple(sig)


_CHECKED: dict = {}       # (root, model) -> (signature, Layout) of the last set that passed


def check(root: str, model: str = MODELS[0]) -> Layout:
    """Every piece of one HeartMuLa set, read before anything is loaded; a LockNError names each missing or broken
    piece, where it was looked for and how to get it. A set that passed is not read again while its files are
    unchanged (ComfyUI asks for the node's fingerprint on every prompt; tokenizer.json alone is 9 MB of JSON)."""
    sig = _signature(root, model)
    hit = _CHECKED.get((root, model))
    if hit and hit[0] == sig:
        return hit[1]
    lay = _check(root, model)
    _CHECKED[(root, model)] = (sig, lay)
    return lay


def _check(root: str, model: str) -> Layout:
    lay = Layout(root, os.path.join(root, model), os.path.join(root, CODEC), os.path.join(root, "tokenizer.json"),
                 os.path.join(root, "gen_config.json"))
    missing, broken, weights = [], [], []
    for path in (lay.tokenizer, lay.gen_config):
        if not os.path.isfile(path):
            missing.append(path)
            continue
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            if os.path.basename(path) == "gen_config.json" and not {"text_bos_id", "audio_eos_id"} <= set(data):
                broken.append(f"{path}: not HeartMuLa's gen_config.json (no text_bos_id / audio_eos_id)")
        except (OSError, ValueError) as e:
            broken.append(f"{path}: not readable JSON ({e}); an interrupted download?")
    for folder, kind in ((lay.model, "heartmula"), (lay.codec, "heartcodec")):
        cfg = os.path.join(folder, "config.json")
        if not os.path.isfile(cfg):
            missing.append(folder + os.sep)
            continue
        found = _model_type(cfg)
        if found != kind:
            broken.append(f"{cfg}: model_type {found!r}, not {kind!r}: this folder holds another model")
            continue
        try:
            files = _weights(folder)
        except ValueError as e:
            broken.append(str(e))
            continue
        for w in files:
            if not os.path.isfile(w):
                missing.append(w)
                continue
            try:
                fileinfo.read_safetensors_header(w)
                weights.append(w)
            except fileinfo.FileProblem as e:
                broken.append(str(e).split(" Delete it")[0])
    if missing or broken:
        what = []
        if missing:
            what.append("missing: " + ", ".join(missing))
        if broken:
            what.append("broken: " + "; ".join(broken))
        raise LockNError(f"HeartMuLa ({model}): {'. '.join(what)}. Looked in {root} (ComfyUI's models/{FOLDER}). "
                         f"Download the set (delete a broken file first) with: "
                         + (f"lockn-gen models pull heartmula-3b --models-dir {os.path.dirname(os.path.abspath(root))} "
                            f"(resumable, verified), or: " if model == MODELS[0] else "")
                         + " && ".join(download_commands(root, model)))
    return Layout(**{**lay.__dict__, "weights": tuple(weights)})


def seconds_of(frames: int) -> float:
    return frames * FRAME_SECONDS


class Engine(Worker):
    """One HeartMuLa set (model + codec + tokenizer) loaded in its worker."""

    module = "lockn_gen.heartmula_worker"
    what_it_is = "HeartMuLa"

    def __init__(self, layout: Layout, dtype: str = "auto", python: str | None = None):
        super().__init__(python or worker_python())
        self.layout, self.dtype = layout, dtype
        self.load_seconds = 0.0

    def start(self) -> float:
        # heartlib's import is the worker's own first step (8 s of torch and transformers): a Python without it
        # answers so at once, and is told apart in `failed` (no second import here just to ask)
        if not os.path.isfile(self.python):
            raise LockNError(install_message(self.python))
        self.spawn()
        try:
            ev = self.run({"op": "load", "model": self.layout.model, "codec": self.layout.codec,
                           "tokenizer": self.layout.tokenizer, "gen_config": self.layout.gen_config,
                           "dtype": self.dtype}, "loaded", what="loading")
        except LockNError:
            self.close()
            raise
        self.load_seconds = float(ev.get("seconds", 0.0))
        self.device = str(ev.get("device") or "unknown")
        self.gpu_bytes = int(ev.get("gpu_bytes") or 0)
        return self.load_seconds

    def generate(self, tags: str, lyrics: str, seconds: float, seed: int, cfg: float = 1.5, temperature: float = 1.0,
                 topk: int = 50, codec_steps: int = 10, on_step=None, should_stop=None):
        """(waveform float32 [channels, samples], sample rate). `on_step(step, steps)`: one step per generated frame
        and one for the codec; `should_stop()` polled (the worker is killed and Interrupted raised)."""
        import numpy as np
        if not self.alive():
            self.start()
        with tempfile.TemporaryDirectory(prefix="lockn-heartmula-") as out:
            ev = self.run({"op": "generate", "tags": tags, "lyrics": lyrics, "seconds": float(seconds), "seed": int(seed),
                           "cfg": float(cfg), "temperature": float(temperature), "topk": int(topk),
                           "codec_steps": int(codec_steps), "out": out}, "audio", should_stop=should_stop,
                          on_step=on_step, what="generating")
            return np.load(ev["path"]), int(ev["sample_rate"])

    def failed(self, message: str, what: str) -> LockNError:
        if message.startswith(NO_HEARTLIB):
            return LockNError(install_message(self.python) + f" ({message})")
        if what == "loading":
            return LockNError(f"HeartMuLa could not load {self.layout.names()}: {message}. Check that the folders hold "
                              f"the files of {', '.join(REPOS.values())} (heartlib {HEARTLIB_COMMIT[:8]} reads them)")
        return LockNError(f"HeartMuLa could not generate with {self.layout.names()}: {message}")

    def died(self, how: str, tail: str, what: str) -> LockNError:
        return LockNError(f"HeartMuLa's worker died ({how}) while {what} with {self.layout.names()}; ComfyUI keeps "
                          f"running. It said: {tail}")
