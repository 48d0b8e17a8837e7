"""The plain training logic (lockn_gen/training.py), case by case, without ComfyUI: the dataset's checks, the saved
file's name and metadata, which LoRA a node may take, what core's trainer can train on which ComfyUI, and the memory
estimate with what would make a run smaller. The same rules run inside ComfyUI in tests/test_training_server.py."""
from __future__ import annotations

import json
import re

import pytest

from lockn_gen import training as T


def touch(path, text=None):
    path.write_bytes(b"not really a picture")
    if text is not None:
        path.with_suffix(".txt").write_text(text)


# ---- scan -------------------------------------------------------------------------------------------------
def test_scan_refuses_a_missing_folder_naming_it_and_the_fix(tmp_path):
    with pytest.raises(T.TrainingProblem) as e:
        T.scan(str(tmp_path / "nowhere"), "image", shown="nowhere")
    msg = str(e.value)
    assert "'nowhere'" in msg and "not found" in msg and str(tmp_path / "nowhere") in msg
    assert "input folder" in msg and ".txt" in msg


def test_scan_refuses_a_folder_without_media(tmp_path):
    (tmp_path / "notes.txt").write_text("a caption without a picture")
    (tmp_path / "sub").mkdir()
    touch(tmp_path / "sub" / "hidden.png", "in a subfolder: not taken")
    with pytest.raises(T.TrainingProblem, match=r"has no picture files \(.png"):
        T.scan(str(tmp_path), "image", shown="style")
    touch(tmp_path / "a.png", "a picture")                 # a picture is not audio
    with pytest.raises(T.TrainingProblem, match=r"has no audio files \(.wav"):
        T.scan(str(tmp_path), "audio")


def test_scan_names_the_files_without_captions_with_the_count_and_the_fix(tmp_path):
    touch(tmp_path / "a.png", "a caption")
    touch(tmp_path / "b.png")                              # no .txt
    touch(tmp_path / "c.jpg", "   \n")                     # an empty caption is none
    with pytest.raises(T.TrainingProblem) as e:
        T.scan(str(tmp_path), "image", T.CAPTIONS_PER_FILE, shown="style")
    msg = str(e.value)
    assert "'style'" in msg and "2 of 3 files have no caption" in msg
    assert "b.png" in msg and "c.jpg" in msg and "a.png" not in msg
    assert "b.txt" in msg and repr(T.CAPTION_FOR_ALL) in msg       # the fix: the file to write, or one caption


def test_scan_lists_six_missing_captions_and_counts_the_rest(tmp_path):
    for i in range(9):
        touch(tmp_path / f"p{i}.png")
    with pytest.raises(T.TrainingProblem) as e:
        T.scan(str(tmp_path), "image")
    msg = str(e.value)
    assert "9 of 9" in msg and "p5.png" in msg and "p6.png" not in msg and "and 3 more" in msg


def test_one_caption_for_all_needs_a_caption_and_gives_it_to_every_file(tmp_path):
    touch(tmp_path / "b.png")
    touch(tmp_path / "a.png")
    with pytest.raises(T.TrainingProblem, match="caption is empty"):
        T.scan(str(tmp_path), "image", T.CAPTION_FOR_ALL, caption="  \n ")
    ds = T.scan(str(tmp_path), "image", T.CAPTION_FOR_ALL, caption="  lockn style \n")
    assert ds.captions == ["lockn style", "lockn style"]
    assert [p.rsplit("/", 1)[1] for p in ds.files] == ["a.png", "b.png"]


def test_scan_refuses_an_unknown_caption_mode(tmp_path):
    touch(tmp_path / "a.png", "x")
    with pytest.raises(T.TrainingProblem, match="captions 'from the moon'"):
        T.scan(str(tmp_path), "image", "from the moon")


def test_scan_happy_path_is_sorted_with_captions_in_step(tmp_path):
    for name, text in (("c.webp", "third"), ("a.png", "first"), ("b.JPG", "second\n")):
        touch(tmp_path / name, text)
    (tmp_path / "readme.md").write_text("not media")
    (tmp_path / "sub").mkdir()
    touch(tmp_path / "sub" / "0.png", "not taken: a subfolder")
    ds = T.scan(str(tmp_path), "image")
    assert [p.rsplit("/", 1)[1] for p in ds.files] == ["a.png", "b.JPG", "c.webp"]
    assert ds.captions == ["first", "second", "third"]
    assert len(ds) == 3 and ds.media == "image" and ds.folder == str(tmp_path)
    assert all(p.startswith(str(tmp_path)) for p in ds.files)


def test_visual_scan_takes_pictures_or_clips_but_not_both(tmp_path):
    touch(tmp_path / "a.mp4", "a clip")
    touch(tmp_path / "b.webm", "another")
    ds = T.scan(str(tmp_path), "visual")
    assert ds.media == "video" and len(ds) == 2
    touch(tmp_path / "c.png", "a picture")
    with pytest.raises(T.TrainingProblem, match="mixes 1 pictures and 2 clips"):
        T.scan(str(tmp_path), "visual", shown="style")
    assert T.scan(str(tmp_path), "image").media == "image"        # "image" takes the picture and leaves the clips


def test_scan_takes_audio_files(tmp_path):
    touch(tmp_path / "b.flac", "lofi")
    touch(tmp_path / "a.wav", "jazz")
    touch(tmp_path / "c.png", "a picture: not audio")
    ds = T.scan(str(tmp_path), "audio")
    assert [p.rsplit("/", 1)[1] for p in ds.files] == ["a.wav", "b.flac"] and ds.captions == ["jazz", "lofi"]


# ---- check_sizes ------------------------------------------------------------------------------------------
def test_pictures_of_several_sizes_are_refused_naming_sizes_and_bucketing():
    sizes = {"a.png": (64, 64), "b.png": (32, 48), "c.png": (64, 64)}
    with pytest.raises(T.TrainingProblem) as e:
        T.check_sizes(sizes, bucket=False, shown="style")
    msg = str(e.value)
    assert "'style'" in msg and "2 sizes" in msg
    assert "32x48 (b.png)" in msg and "64x64 (a.png)" in msg
    assert "'bucket by size'" in msg


def test_several_sizes_pass_with_bucketing_and_one_size_always():
    T.check_sizes({"a.png": (64, 64), "b.png": (32, 48)}, bucket=True, shown="style")
    T.check_sizes({"a.png": (64, 64), "b.png": (64, 64)}, bucket=False, shown="style")
    T.check_sizes({}, bucket=False, shown="style")


# ---- the saved file's name --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../x", "a/b", "a\\b", "", "   ", ".hidden", "x..y", "bad:name", "x" * 97,
                                  ".safetensors"])
def test_unsafe_lora_names_are_refused(name):
    with pytest.raises(T.TrainingProblem, match=r"models/loras/lockn/<name>\.safetensors"):
        T.lora_file_name(name)


@pytest.mark.parametrize("name,rel", [("my style", "lockn/my style.safetensors"),
                                      ("my-style.safetensors", "lockn/my-style.safetensors"),
                                      ("Style_2.SAFETENSORS", "lockn/Style_2.safetensors"),
                                      ("  v1.2 ", "lockn/v1.2.safetensors")])
def test_lora_file_name(name, rel):
    assert T.lora_file_name(name) == rel


def test_an_existing_lora_is_kept_unless_overwrite(tmp_path):
    path = tmp_path / "style.safetensors"
    T.check_target(str(path), "lockn/style.safetensors", overwrite=False)      # nothing there yet
    path.write_bytes(b"x")
    with pytest.raises(T.TrainingProblem) as e:
        T.check_target(str(path), "lockn/style.safetensors", overwrite=False)
    assert "lockn/style.safetensors already exists" in str(e.value) and "'overwrite'" in str(e.value)
    T.check_target(str(path), "lockn/style.safetensors", overwrite=True)


# ---- metadata ---------------------------------------------------------------------------------------------
def test_metadata_round_trip():
    losses = [0.5, 0.4, 0.3, 0.25]
    meta = T.metadata("wan22", "high_noise", "base.gguf", "sha256:ab", 16, 4, 3, 1e-4, "LoRA", "0.33.0", losses)
    assert all(k.startswith("lockn.") and isinstance(v, str) for k, v in meta.items())
    back = T.read_metadata({**meta, "ss_network_dim": "16", "modelspec.title": "not LockN's"})
    assert back["family"] == "wan22" and back["expert"] == "high_noise" and back["base_file"] == "base.gguf"
    assert (back["base_hash"], back["rank"], back["steps"], back["dataset_size"]) == ("sha256:ab", "16", "4", "3")
    assert back["learning_rate"] == "0.0001" and back["algorithm"] == "LoRA" and back["comfyui"] == "0.33.0"
    assert (back["loss_first"], back["loss_last"]) == ("0.5", "0.25") and json.loads(back["losses"]) == losses
    assert not any(k.startswith(("ss_", "modelspec")) for k in back)
    no_loss = T.read_metadata(T.metadata("flux2", None, "b", "", 4, 1, 1, 1e-4, "LoRA", "0.20.1"))
    assert no_loss["expert"] == "" and "losses" not in no_loss and "loss_first" not in no_loss
    assert T.read_metadata({}) == {} and T.read_metadata(None) == {}


def test_loss_curve_keeps_short_runs_and_averages_long_ones():
    assert T.loss_curve([1, 2, 3]) == [1.0, 2.0, 3.0]
    long = list(range(1000))                                # 1000 steps -> 200 means of 5
    curve = T.loss_curve(long)
    assert len(curve) == T.LOSS_POINTS == 200
    assert curve[0] == 2.0 and curve[-1] == 997.0
    assert T.loss_curve(list(range(10)), points=4) == [0.5, 3.0, 5.5, 8.0]   # uneven runs: 2, 3, 2, 3 steps
    meta = T.metadata("flux2", None, "b", "", 4, 1000, 1, 1e-4, "LoRA", "0.33.0", long)
    assert len(json.loads(meta["lockn.losses"])) == 200 and meta["lockn.loss_last"] == "999"


# ---- check_lora_use ---------------------------------------------------------------------------------------
def lockn_meta(family, expert=None):
    return T.metadata(family, expert, f"{family}-base.safetensors", "", 4, 10, 2, 1e-4, "LoRA", "0.33.0")


def test_a_lora_trained_on_another_family_is_refused_naming_both():
    with pytest.raises(T.TrainingProblem) as e:
        T.check_lora_use(lockn_meta("wan22", "high_noise"), "lockn/w.safetensors", "flux2", "Flux.2", None)
    msg = str(e.value)
    assert "lockn/w.safetensors" in msg and "Wan2.2" in msg and "Flux.2" in msg and "wan22-base.safetensors" in msg


def test_a_lora_trained_on_the_other_wan_expert_is_refused():
    with pytest.raises(T.TrainingProblem) as e:
        T.check_lora_use(lockn_meta("wan22", "high_noise"), "lockn/w.safetensors", "wan22", "Wan2.2", "low_noise")
    msg = str(e.value)
    assert "high-noise expert" in msg and "low-noise expert" in msg and "high_lora" in msg
    T.check_lora_use(lockn_meta("wan22", "high_noise"), "w", "wan22", "Wan2.2", "high_noise")
    T.check_lora_use(lockn_meta("wan22", ""), "w", "wan22", "Wan2.2", "low_noise")   # TI2V 5B: no expert


def test_loras_without_lockn_metadata_pass():
    T.check_lora_use({}, "other.safetensors", "flux2", "Flux.2", None)
    T.check_lora_use(None, "other.safetensors", "wan22", "Wan2.2", "high_noise")
    T.check_lora_use({"ss_base_model_version": "wan"}, "kohya.safetensors", "flux2", "Flux.2", None)
    T.check_lora_use(lockn_meta("flux2"), "mine.safetensors", "flux2", "Flux.2", None)


# ---- check_family -----------------------------------------------------------------------------------------
def test_ltx2_is_refused_with_why_and_what_it_would_need():
    for version in ("0.20.1", "0.33.0"):
        with pytest.raises(T.TrainingProblem) as e:
            T.check_family("ltx2", version)
        msg = str(e.value)
        assert "LTX-2" in msg and "audio" in msg and "would need" in msg


def test_clips_of_several_sizes_need_a_comfyui_after_0_20_1():
    with pytest.raises(T.TrainingProblem) as e:
        T.check_family("wan22", "0.20.1", video_shapes=2)
    msg = str(e.value)
    assert "Wan2.2 on ComfyUI 0.20.1" in msg and "several sizes" in msg and "update ComfyUI" in msg
    T.check_family("wan22", "0.20.1", video_shapes=1)        # clips of one size and length train on 0.20.1
    T.check_family("wan22", "0.20.1")                        # pictures: no clips
    T.check_family("wan22", "0.33.0", video_shapes=5)
    T.check_family("flux2", "0.20.1")
    T.check_family("ace15", "0.20.1")


def test_an_unknown_family_is_refused_naming_what_trains():
    with pytest.raises(T.TrainingProblem) as e:
        T.check_family("sd15", "0.33.0")
    msg = str(e.value)
    assert "'sd15'" in msg and all(name in msg for name in ("Flux.2", "Wan2.2", "ACE-Step 1.5"))


def test_version_tuple():
    assert T.version_tuple("0.20.1") == (0, 20, 1) and T.version_tuple("v0.33.0-rc2") == (0, 33, 0)
    assert T.version_tuple("") == (0,)


# ---- estimate and fixes -----------------------------------------------------------------------------------
SHAPE = T.ModelShape(linears=((3072, 1024), (1024, 3072), (1024, 1024)) * 8, hidden=1024, blocks=8,
                     block_outputs=3072 + 1024 + 1024)


def test_gradient_checkpointing_lowers_activations_only():
    on = T.estimate(SHAPE, 4096, T.Settings(checkpointing=True))
    off = T.estimate(SHAPE, 4096, T.Settings(checkpointing=False))
    assert on.activations < off.activations and on.total < off.total
    assert (on.adapters, on.gradients, on.optimizer) == (off.adapters, off.gradients, off.optimizer)
    per_block = 4096 * SHAPE.block_outputs * T.ACTIVATION_FACTOR * 2
    assert off.activations == per_block * SHAPE.blocks
    assert on.activations == 4096 * SHAPE.hidden * 2 * SHAPE.blocks + per_block
    batch2 = T.estimate(SHAPE, 4096, T.Settings(checkpointing=False, batch=2))
    assert batch2.activations == 2 * off.activations


def test_rank_doubles_adapter_parameters():
    r8 = T.estimate(SHAPE, 256, T.Settings(rank=8))
    r16 = T.estimate(SHAPE, 256, T.Settings(rank=16))
    assert r16.adapter_params == 2 * r8.adapter_params == 16 * sum(o + i for o, i in SHAPE.linears)
    assert r16.adapters == 4 * r16.adapter_params == r16.gradients        # fp32 adapters and their gradients
    assert T.estimate(SHAPE, 256, T.Settings(rank=16, lora_bytes=2)).adapters == 2 * r16.adapter_params


def test_optimizer_state():
    adamw = T.estimate(SHAPE, 256, T.Settings(optimizer="AdamW"))
    assert adamw.optimizer == 2 * adamw.adapter_params * 4
    assert T.estimate(SHAPE, 256, T.Settings(optimizer="SGD")).optimizer == 0
    assert T.estimate(SHAPE, 256, T.Settings(optimizer="RMSprop")).optimizer == adamw.adapter_params * 4


def test_cost_line_names_the_figures():
    cost = T.estimate(SHAPE, 4096, T.Settings(rank=16, checkpointing=False))
    line = cost.line()
    assert line.startswith(f"{cost.total / T.GB:.2f} GB") and "rank 16" in line and "AdamW" in line
    assert "without gradient checkpointing" in line and "4096 tokens" in line
    assert cost.total == cost.adapters + cost.gradients + cost.optimizer + cost.activations


def gb(text):
    return float(re.search(r"\(([\d.]+) GB\)", text).group(1))


def test_fixes_name_only_what_applies():
    small = T.estimate(SHAPE, 4096, T.Settings(rank=4, batch=1, checkpointing=True))
    out = T.fixes(small)
    assert out and any("half the resolution" in f for f in out) and any("smaller base" in f for f in out)
    assert not any("checkpointing" in f or f.startswith("batch") or f.startswith("rank") for f in out)


def test_fixes_name_checkpointing_batch_and_rank_with_smaller_figures():
    big = T.estimate(SHAPE, 65536, T.Settings(rank=32, batch=4, checkpointing=False))
    out = T.fixes(big)
    ckpt = next(f for f in out if "turn gradient checkpointing on" in f)
    batch = next(f for f in out if f.startswith("batch 1"))
    rank = next(f for f in out if f.startswith("rank 16"))
    half = next(f for f in out if "half the resolution" in f)
    total = big.total / T.GB
    assert all(gb(f) < total for f in (ckpt, batch, rank, half))
    assert gb(ckpt) == round(T.estimate(SHAPE, 65536, T.Settings(rank=32, batch=4, checkpointing=True)).total / T.GB, 2)
    assert next(f for f in T.fixes(T.estimate(SHAPE, 16, T.Settings(rank=6)))).startswith("rank 4")


def test_tokens_of():
    assert T.tokens_of("flux2", (1, 128, 64, 64), text_tokens=512) == 4096 + 512      # joint attention
    assert T.tokens_of("wan22", (1, 48, 9, 30, 52), text_tokens=512) == 9 * 30 * 52 // 4
    assert T.tokens_of("ace15", (1, 64, 750)) == 375


def test_flux2_without_checkpointing_is_refused_with_the_reason_and_not_offered_as_a_fix():
    T.check_family("wan22", "0.33.0", checkpointing=False)                  # the others train without it
    with pytest.raises(T.TrainingProblem, match="only with gradient checkpointing on") as e:
        T.check_family("flux2", "0.20.1", checkpointing=False)
    assert "in place" in str(e.value)
    shape = T.ModelShape(((64, 64),) * 4, 64, 4, 512)
    s = T.Settings(rank=16, checkpointing=False)
    assert not any("checkpointing" in f for f in T.fixes(T.estimate(shape, 256, s, "flux2")))
    assert any("checkpointing on" in f for f in T.fixes(T.estimate(shape, 256, s, "wan22")))


def test_adapted_weights_kept_for_backward_count_all_without_checkpointing_and_one_unit_with_it():
    """Core's LoRA makes W + BA at each forward and autograd keeps it (and backward its gradient): without
    checkpointing every adapted weight at once, with the blocks checkpointed the largest unit's (measured on
    ACE-Step 1.5 at full size: +9.0 GB against about +2 GB)."""
    shape = T.ModelShape(SHAPE.linears, SHAPE.hidden, SHAPE.blocks, SHAPE.block_outputs,
                         weights=sum(o * i for o, i in SHAPE.linears), unit_weights=7 * 1024 * 1024)
    off = T.estimate(shape, 256, T.Settings(checkpointing=False, compute_bytes=2))
    on = T.estimate(shape, 256, T.Settings(checkpointing=True, compute_bytes=2))
    assert off.weights == shape.weights * T.WEIGHT_COPIES * 2
    assert on.weights == shape.unit_weights * T.WEIGHT_COPIES * 2
    assert off.total - off.weights == off.adapters + off.gradients + off.optimizer + off.activations
    assert "adapted weights kept for backward" in off.line()
    assert T.estimate(shape, 256, T.Settings(checkpointing=False, compute_bytes=4)).weights == 2 * off.weights
