"""LoRA training on the resident base, per family, in a real ComfyUI server (issue 25).

For Flux.2 (dev GGUF: the base core's trainer alone cannot train on 0.33), Wan2.2 A14B (one expert) and ACE-Step 1.5
(which core alone cannot train on 0.20.1): a dataset the test writes, core's trainer through Train LoRA (LockN), the
LoRA saved under models/loras/lockn with its metadata, then used at once through the LockN LoRA node:

- the loss falls: the same seed draws the same timesteps, noise and batches, so a run with the learning rate at its
  floor (1e-7: the base's own loss along the same draws) is the control, and the trained run's loss over the second
  half of the steps must be lower by a margin;
- the saved file loads with no "lora key not loaded", strength 1 changes the output, strength 0 gives the base's,
  and the base's output after training is the one before it (the base is unchanged);
- the base is read from disk once through training and use, and the LoRA is in the LoRA node's list at once;
- the LoRA node refuses the file on another family or the other Wan2.2 expert, by its metadata.

Then bad input, each refused before training with the fix, nothing written under the final name.
"""
from __future__ import annotations

import json
import threading
import time
import wave

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from lockn_gen import catalog
from lockn_testing import graphs
from lockn_testing.harness.server import PromptError
from lockn_testing.media import assert_different_media, assert_same_media

pytestmark = pytest.mark.comfy

CAPTION_FILES = "a .txt beside each file"
BASE_ROLES = ("diffusion_model", "high_noise", "low_noise")
# family -> (preset, loader output of the model trained, its expert, the graph that uses it, the node that saves,
#            learning rate, steps)
CASES = {
    "flux2": ("flux2-dev-q4_k_m", 0, "", lambda p: graphs.flux2_t2i(loader="lockn", preset="flux2-dev-q4_k_m", width=32,
                                                                     height=32, steps=2, prefix=p), "9", 3e-3, 24),
    "wan22": ("wan22-i2v-a14b-q4_k_m", 0, "high_noise",
              lambda p: graphs.wan22_i2v(loader="lockn", preset="wan22-i2v-a14b-q4_k_m", length=5, steps=2, split=1,
                                         prefix=p), "108", 3e-3, 24),
    "ace15": ("ace15-turbo", 0, "", lambda p: graphs.ace15_t2m(loader="lockn", preset="ace15-turbo", seconds=1.0, steps=2,
                                                              top_p=1.0, prefix=p), "107", 3e-2, 24),
}
PRIORITIES = {"pin": False, "image_priority": 1, "video_priority": 1, "music_priority": 1}
MARGIN = 0.97               # the trained run's second-half loss is at most 97% of the control's (seen: 92-93%)


def write_pictures(folder, n=4, size=(32, 32), captions=True, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        w, h = size if not isinstance(size, list) else size[i % len(size)]
        Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(folder / f"pic{i}.png")
        if captions:
            (folder / f"pic{i}.txt").write_text("a lockn style picture")


def write_audio(folder, n=2, seconds=2.0, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        a = (rng.standard_normal((int(48000 * seconds), 2)) * 3000).astype(np.int16)
        with wave.open(str(folder / f"clip{i}.wav"), "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(48000)
            w.writeframes(a.tobytes())
        (folder / f"clip{i}.txt").write_text("lofi, lockn style")


def write_clips(folder, n=2, frames=9, size=32, seed=0, prefix="clip"):
    import av
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        with av.open(str(folder / f"{prefix}{i}.mp4"), "w") as c:
            s = c.add_stream("libx264", rate=16)
            s.width = s.height = size
            s.pix_fmt = "yuv420p"
            for _ in range(frames):
                img = (rng.random((size, size, 3)) * 255).astype(np.uint8)
                for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    c.mux(p)
            for p in s.encode(None):
                c.mux(p)
        (folder / f"{prefix}{i}.txt").write_text("a lockn style clip")


def train_graph(family, folder, name, lr, steps, overwrite=False, preset=None, frames=33, **extra) -> dict:
    preset, out = preset or CASES[family][0], CASES[family][1]
    loader = graphs.lockn_loader(family, preset)
    vae_out, clip_out = (3, 2) if family == "wan22" else (2, 1)
    if family == "ace15":
        g = {"1": loader, "2": {"class_type": "LockNTrainingAudio", "inputs": {
            "folder": folder, "vae": ["1", vae_out], "clip": ["1", clip_out], "captions": CAPTION_FILES, "caption": "",
            "seconds": 2.0, "bpm": 90}}}
        data = (["2", 0], ["2", 1])
    else:
        g = {"1": loader,
             "2": {"class_type": "LockNTrainingData", "inputs": {"folder": folder, "captions": CAPTION_FILES,
                                                                 "caption": "", "bucket_by_size": False,
                                                                 "frames": frames}},
             "3": {"class_type": "MakeTrainingDataset", "inputs": {"images": ["2", 0], "vae": ["1", vae_out],
                                                                    "clip": ["1", clip_out], "texts": ["2", 1]}}}
        data = (["3", 0], ["3", 1])
    g["T"] = {"class_type": "LockNTrainLoRA", "inputs": {
        "model": ["1", out], "latents": data[0], "conditioning": data[1], "lora_name": name, "steps": steps, "rank": 4,
        "learning_rate": lr, "batch_size": 1, "gradient_checkpointing": True, "overwrite": overwrite, "seed": 0,
        "optimizer": "AdamW", "training_dtype": "fp32", "lora_dtype": "fp32", **extra}}
    return g


def lora_path(srv, name):
    return srv.base / "models" / "loras" / "lockn" / f"{name}.safetensors"


@pytest.fixture
def trained(comfy_server):
    """Names of LoRAs a test trains: removed afterwards (the models folder is the shared tiny set)."""
    names = []
    yield names
    for n in names:
        for p in (lora_path(comfy_server, n).parent).glob(f"{n}.safetensors*"):
            p.unlink()


def meta(path) -> dict:
    with safe_open(str(path), "pt") as f:
        return f.metadata()


def bases(srv, family):
    files = {f for role, f in catalog.builtin().presets[CASES[family][0]].components.items() if role in BASE_ROLES}
    return {e["id"]: e for e in srv.get("/lockn/residency")["entries"]
            if e["family"] == family and e["role"] in BASE_ROLES and set(e["files"]) & files}


def use(srv, family, name, strength, tag):
    _, _, expert, make, save, _, _ = CASES[family]
    g = make(f"train/{family}-{tag}")
    if name:
        g = graphs.with_lora(g, family, **({"high": [(name, strength)]} if expert == "high_noise" else
                                           {"loras": [(name, strength)]}))
    return srv.output_files(srv.run(g), save)[0]


def second_half(losses):
    h = losses[len(losses) // 2:]
    return sum(h) / len(h)


@pytest.mark.parametrize("family", list(CASES))
def test_train_on_the_resident_base_and_use_the_lora_at_once(comfy_server, trained, family):
    srv = comfy_server
    preset, _, expert, _, _, lr, steps = CASES[family]
    folder = f"train-{family}"
    (write_audio if family == "ace15" else write_pictures)(srv.base / "input" / folder)
    log_start = srv.log_path.stat().st_size
    plain = use(srv, family, None, 0, "plain")
    loads = {i: e["loads_from_disk"] for i, e in bases(srv, family).items()}
    assert loads and all(v >= 1 for v in loads.values())

    control, name = f"test-{family}-control", f"test-{family}"
    trained += [control, name]
    srv.run(train_graph(family, folder, control, 1e-7, steps))
    events = []
    srv.run(train_graph(family, folder, name, lr, steps), on_message=lambda m: m.get("type") == "lockn.training" and events.append(m["data"]))

    path = lora_path(srv, name)
    m = meta(path)
    assert m["lockn.family"] == family and m["lockn.expert"] == expert and m["lockn.rank"] == "4"
    assert m["lockn.steps"] == str(steps) and m["lockn.dataset_size"] == ("2" if family == "ace15" else "4")
    assert m["lockn.base_file"] in {f for e in bases(srv, family).values() for f in e["files"]}
    assert m["lockn.base_hash"].startswith("sha256:")
    losses, losses0 = json.loads(m["lockn.losses"]), json.loads(meta(lora_path(srv, control))["lockn.losses"])
    assert len(losses) == steps and losses[0] == pytest.approx(losses0[0])        # the same draws from the same seed
    assert second_half(losses) < MARGIN * second_half(losses0), (losses, losses0)
    # progress: each step's loss over the websocket, then the saved file
    steps_seen = [e["step"] for e in events if "step" in e and not e.get("done")]
    assert steps_seen == list(range(1, steps + 1)), events
    assert events[-1].get("done") and events[-1]["path"].endswith(f"lockn/{name}.safetensors")

    lora = f"lockn/{name}.safetensors"
    options = srv.get(f"/object_info/{graphs.LORA_NODES[family]}")[graphs.LORA_NODES[family]]["input"]["required"]
    spec = options["high_lora_1" if expert else "lora_1"]
    assert lora in (spec[0] if isinstance(spec[0], list) else spec[1]["options"])   # in the list without a restart
    with_1 = use(srv, family, lora, 1.0, "one")
    with_0 = use(srv, family, lora, 0.0, "zero")
    after = use(srv, family, None, 0, "after")
    assert_different_media(with_1, plain, "strength 1 and the base")
    assert_same_media(with_0, plain, "strength 0 and the base")
    assert_same_media(after, plain, "the base after training and before it")
    assert {i: e["loads_from_disk"] for i, e in bases(srv, family).items()} == loads     # never read again
    with open(srv.log_path, "rb") as f:
        f.seek(log_start)
        text = f.read().decode(errors="replace")
    assert "lora key not loaded" not in text and "NOT LOADED" not in text
    assert "LockN training saved" in text


def test_the_lora_node_refuses_a_trained_lora_on_another_family_or_expert(comfy_server, trained):
    srv = comfy_server
    write_pictures(srv.base / "input" / "train-refuse")
    trained.append("test-wan-high")
    srv.run(train_graph("wan22", "train-refuse", "test-wan-high", 3e-3, 2))
    lora = "lockn/test-wan-high.safetensors"
    g = graphs.with_lora(CASES["wan22"][3]("train/refuse"), "wan22", low=[(lora, 1.0)])
    with pytest.raises(PromptError) as e:
        srv.run(g)
    msg = e.value.detail["exception_message"]
    assert "trained on the high-noise expert" in msg and "given to the low-noise expert" in msg, msg
    g = graphs.with_lora(CASES["flux2"][3]("train/refuse"), "flux2", loras=[(lora, 1.0)])
    with pytest.raises(PromptError) as e:
        srv.run(g)
    msg = e.value.detail["exception_message"]
    assert "was trained on Wan2.2" in msg and "Flux.2" in msg, msg


# ---- bad input: refused before training, with the fix; nothing under the final name -----------------------------
def _refused(srv, g, node_type) -> str:
    with pytest.raises(PromptError) as e:
        srv.run(g)
    d = e.value.detail
    if "exception_message" not in d:                    # refused at validation (ComfyUI's own check of a combo)
        return json.dumps(d)
    assert d["node_type"] == node_type, d
    return d["exception_message"]


def test_bad_training_input_is_refused_before_training(comfy_server, trained):
    srv = comfy_server
    inp = srv.base / "input"
    (inp / "train-empty").mkdir(exist_ok=True)
    (inp / "train-empty" / "notes.md").write_text("no pictures here")
    write_pictures(inp / "train-nocaps", captions=False)
    (inp / "train-nocaps" / "pic0.txt").write_text("only the first has one")
    write_pictures(inp / "train-sizes", size=[(32, 32), (48, 32)])
    write_pictures(inp / "train-ok")
    trained += ["test-exists", "test-big", "test-interrupted"]
    cases = [
        ("train-missing", {}, "LockNTrainingData", ["train-missing"]),
        ("train-empty", {}, "LockNTrainingData", ["train-empty", "has no picture or clip files", ".png", ".mp4",
                                                    "Put the pictures or clips to learn from there"]),
        ("train-nocaps", {}, "LockNTrainingData", ["3 of 4 files have no caption", "pic1.png", "pic1.txt",
                                                   "one caption for all"]),
        ("train-sizes", {}, "LockNTrainingData", ["pictures of 2 sizes", "32x32", "48x32", "bucket by size"]),
        ("train-ok", {"lora_name": "../escape"}, "LockNTrainLoRA", ["LoRA name '../escape'", "no folders"]),
        # ComfyUI's Flux blocks add residuals in place: without checkpointing autograd fails (core's node too)
        ("train-ok", {"gradient_checkpointing": False}, "LockNTrainLoRA",
         ["Flux.2 trains only with gradient checkpointing on", "in place", "Turn gradient_checkpointing on"]),
    ]
    for folder, extra, node, words in cases:
        g = train_graph("flux2", folder, "test-bad", 1e-3, 2)
        g["T"]["inputs"].update(extra)
        msg = _refused(srv, g, node)
        for w in words:
            assert w in msg, (folder, w, msg)
    assert not lora_path(srv, "test-bad").exists()

    # a name that exists: refused unless overwrite is on
    srv.run(train_graph("flux2", "train-ok", "test-exists", 1e-3, 2))
    before = lora_path(srv, "test-exists").read_bytes()
    msg = _refused(srv, train_graph("flux2", "train-ok", "test-exists", 1e-3, 3), "LockNTrainLoRA")
    assert "lockn/test-exists.safetensors already exists" in msg and "overwrite" in msg, msg
    assert lora_path(srv, "test-exists").read_bytes() == before
    srv.run(train_graph("flux2", "train-ok", "test-exists", 1e-3, 3, overwrite=True))
    assert meta(lora_path(srv, "test-exists"))["lockn.steps"] == "3"

    # a run past the budgets: the RAM budget (ComfyUI computes in RAM here) just above what the Flux.2 preset holds
    # (the prompt's own models; LockN would evict any other to make room)
    files = set(catalog.builtin().presets[CASES["flux2"][0]].components.values())
    held = sum(e["bytes"] - e.get("mapped_bytes", 0) for e in srv.get("/lockn/residency")["entries"]
               if e["tier"] != "dropped" and set(e["files"]) & files)
    g = train_graph("flux2", "train-ok", "test-big", 1e-3, 2, rank=128)
    g["R"] = {"class_type": "LockNResidency", "inputs": {**PRIORITIES, "gpu_budget_gb": 0.0,
                                                         "ram_budget_gb": (held + 4e6) / 1e9, "model": ["1", 0]}}
    g["T"]["inputs"]["model"] = ["R", 0]
    try:
        msg = _refused(srv, g, "LockNTrainLoRA")
    finally:
        srv.run({"R": {"class_type": "LockNResidency", "inputs": {**PRIORITIES, "gpu_budget_gb": 0.0, "ram_budget_gb": 0.0}},
                 "P": {"class_type": "LockNResidencyReport", "inputs": {"trigger": ["R", 5]}}})
    for w in ("LoRA training on flux2-dev-Q4_K_M.gguf", "rank 128", "Training did not start", "raise ram_budget_gb",
              "rank 64 (", "half the resolution (", "AdamW state"):
        assert w in msg, (w, msg)
    assert not lora_path(srv, "test-big").exists()
    assert srv.get("/system_stats")                          # still serving


def test_clips_train_wan22_where_core_can_and_are_refused_where_it_cannot(comfy_server, trained):
    """Clips of 9 frames (5 taken) for Wan2.2 TI2V 5B. Two of one size train on both versions. Two of different
    sizes (bucketed) train on 0.33; 0.20.1's trainer cannot (it repeats the first latent with 4-D sizes when the
    shapes differ, and a clip's latent is 5-D), so Train LoRA refuses before training, saying why and what to do.
    A clip shorter than the frames asked for is refused by name."""
    srv = comfy_server
    write_clips(srv.base / "input" / "train-clips")
    write_clips(srv.base / "input" / "train-clips-sizes", n=1)
    write_clips(srv.base / "input" / "train-clips-sizes", n=1, size=48, seed=1, prefix="big")
    trained += ["test-clips", "test-clips-sizes"]
    version = srv.get("/system_stats")["system"]["comfyui_version"]
    srv.run(train_graph("wan22", "train-clips", "test-clips", 3e-3, 3, preset="wan22-ti2v-5b", frames=5))
    m = meta(lora_path(srv, "test-clips"))
    assert m["lockn.dataset_size"] == "2" and m["lockn.base_file"] == "wan2.2_ti2v_5B_fp16.safetensors"
    g = train_graph("wan22", "train-clips-sizes", "test-clips-sizes", 3e-3, 3, preset="wan22-ti2v-5b", frames=5)
    g["2"]["inputs"]["bucket_by_size"] = True
    if version == "0.20.1":
        msg = _refused(srv, g, "LockNTrainLoRA")
        assert "clips of several sizes (bucketed) need the trainer of a ComfyUI after 0.20.1" in msg, msg
        assert not lora_path(srv, "test-clips-sizes").exists()
    else:
        srv.run(g)
        assert meta(lora_path(srv, "test-clips-sizes"))["lockn.dataset_size"] == "2"
    msg = _refused(srv, train_graph("wan22", "train-clips", "test-clips", 3e-3, 3, preset="wan22-ti2v-5b", frames=13),
                   "LockNTrainingData")
    assert "clip0.mp4 has 9 frames, fewer than frames=13" in msg and "9 fits it" in msg, msg


def test_an_interrupted_training_leaves_no_file(comfy_server, trained):
    srv = comfy_server
    write_pictures(srv.base / "input" / "train-int")
    trained.append("test-interrupted")
    asked = threading.Event()

    def on_message(m):
        if m.get("type") == "lockn.training" and m["data"].get("step") == 2 and not asked.is_set():
            asked.set()
            threading.Thread(target=srv.post, args=("/interrupt", {})).start()
    t0 = time.time()
    res = srv.run(train_graph("flux2", "train-int", "test-interrupted", 1e-3, 2000), on_message=on_message)
    assert asked.is_set() and res.interrupted and time.time() - t0 < 120
    folder = lora_path(srv, "test-interrupted").parent
    assert not [p.name for p in folder.glob("test-interrupted*")]


def test_lockn_gen_train_uploads_a_local_folder_and_reports_steps_and_the_lora(comfy_server, trained, tmp_path, capsys):
    """`lockn-gen train` runs the shipped Flux.2 training workflow (klein 4B, its default base) through the API:
    a local folder is uploaded into the server's input folder, each step's loss is printed, then the LoRA's name;
    a bad name or folder is refused before anything is queued."""
    from lockn_gen import cli
    srv = comfy_server
    data = tmp_path / "my-pictures"
    write_pictures(data, captions=False)
    trained.append("test-cli")
    base = ["train", "--family", "flux2", "--server", srv.url]
    rc = cli.main([*base, "--data", str(data), "--name", "test-cli", "--steps", "3", "--rank", "4",
                   "--caption", "a lockn style picture"])
    out, err = capsys.readouterr()
    assert rc == 0, (out, err)
    assert [ln.split()[1] for ln in out.splitlines() if ln.startswith("step ")] == ["1/3", "2/3", "3/3"], out
    assert all(" loss " in ln for ln in out.splitlines() if ln.startswith("step "))
    assert "LoRA: lockn/test-cli.safetensors" in out and "uploaded 4 files" in err
    m = meta(lora_path(srv, "test-cli"))
    assert m["lockn.steps"] == "3" and m["lockn.base_file"] == "flux-2-klein-4b.safetensors"
    assert (srv.base / "input" / "my-pictures" / "pic3.png").is_file()

    assert cli.main([*base, "--data", "my-pictures", "--name", "../x"]) == 2
    assert "no folders" in capsys.readouterr().err
    assert cli.main([*base, "--data", "no-such-folder", "--name", "x"]) == 2
    assert "no-such-folder" in capsys.readouterr().err
