"""LoRA training nodes: a dataset from a folder, and ComfyUI core's trainer on the base a LockN loader holds.

- Training Data (LockN): the pictures (or audio) of a folder under ComfyUI's input folder with their captions,
  checked before anything is loaded (lockn_gen.training.scan): a missing or empty folder, a file without a
  caption, pictures of several sizes without bucketing. Pictures go on to core's Make Training Dataset; audio
  is encoded here with core's own nodes (VAE Encode Audio, ACE-Step 1.5's text encoder).
- Train LoRA (LockN): core's TrainLoraNode on the resident base (nodes/comfy_seam.train_lora: no second copy,
  nothing read), after the budgets made room for what training adds (lockn_gen.training.estimate) or refused
  it with the figures and the fix. The LoRA is written under models/loras/lockn/ with its metadata, complete
  or not at all (a temporary name, renamed when whole), and is in the LoRA lists at once.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time

import folder_paths
from comfy_api.latest import io

from ..lockn_gen import catalog as catalog_mod
from ..lockn_gen import residency as policy
from ..lockn_gen import training as T
from ..lockn_gen import training_media as tm
from ..lockn_gen.preflight import LockNError
from . import comfy_models as cm
from . import comfy_seam as seam
from .residency import REGISTRY

CATEGORY = "LockN Gen/training"
EVENT = "lockn.training"
log = logging.getLogger("lockn_gen.training")
EXPERT_ROLES = ("high_noise", "low_noise")
HASH_LIMIT = 4 << 30            # bases up to 4 GiB are hashed for the metadata; larger ones by catalog or size


def _input_folders() -> list[str]:
    base = folder_paths.get_input_directory()
    try:
        return sorted(d for d in os.listdir(base) if os.path.isdir(os.path.join(base, d)) and not d.startswith("."))
    except OSError:
        return []


def _folder_path(folder: str) -> str:
    base = os.path.abspath(folder_paths.get_input_directory())
    path = os.path.abspath(os.path.join(base, folder))
    if os.path.commonpath([base, path]) != base:
        raise LockNError(f"training data folder {folder!r} is outside ComfyUI's input folder ({base}); put it there")
    return path


class LockNTrainingData(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LockNTrainingData", display_name="Training Data (LockN)", category=CATEGORY,
            description="The pictures (or, for a video family, the clips) of a folder in ComfyUI's input folder, with "
                        "their captions, for LoRA training (to core's Make Training Dataset). Checked before anything "
                        "loads: a missing or empty folder, a file without its caption, sizes that differ without "
                        "bucketing, a clip shorter than the frames asked for.",
            inputs=[io.Combo.Input("folder", options=_input_folders(),
                                   tooltip="A folder under ComfyUI's input folder with the pictures to learn from."),
                    io.Combo.Input("captions", options=list(T.CAPTION_MODES), default=T.CAPTIONS_PER_FILE,
                                   tooltip="Where captions come from: a .txt of the same name beside each picture (each "
                                           "must have one), or the one caption below for all."),
                    io.String.Input("caption", default="", multiline=True,
                                    tooltip="The caption for every picture when captions is 'one caption for all' "
                                            "(the words that will call the style up)."),
                    io.Boolean.Input("bucket_by_size", default=False,
                                     tooltip="Allow pictures of several sizes: each size trains in its own batches "
                                             "(core's Resolution Bucket). Off: all pictures must have one size."),
                    io.Int.Input("frames", default=33, min=1, max=241, step=4, advanced=True,
                                 tooltip="Clips (.mp4 .webm .mov .mkv; video families): the first frames of each clip "
                                         "(4n+1, as Wan's VAE takes them). Every clip must have at least this many.")],
            outputs=[io.Image.Output("images", display_name="images", is_output_list=True),
                     io.String.Output("texts", display_name="texts", is_output_list=True)])

    @classmethod
    def execute(cls, folder, captions=T.CAPTIONS_PER_FILE, caption="", bucket_by_size=False, frames=33) -> io.NodeOutput:
        try:
            ds = T.scan(_folder_path(folder), "visual", captions, caption, shown=folder)
            if ds.media == "video":
                sizes = {os.path.basename(f): tm.clip_size(f, int(frames)) for f in ds.files}
            else:
                sizes = tm.image_sizes(ds.files)
            T.check_sizes(sizes, bool(bucket_by_size), folder)
        except T.TrainingProblem as e:
            raise LockNError(str(e)) from None
        log.info("LockN training data: %d %s from %s", len(ds), "clips" if ds.media == "video" else "pictures", ds.folder)
        if ds.media == "video":
            return io.NodeOutput([tm.load_clip(f, int(frames)) for f in ds.files], ds.captions)
        return io.NodeOutput(tm.load_images(ds.files), ds.captions)


class LockNTrainingAudio(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LockNTrainingAudio", display_name="Training Audio (LockN)", category=CATEGORY,
            description="The audio files of a folder in ComfyUI's input folder with their captions (ACE-Step 1.5 tags), "
                        "encoded for LoRA training with ComfyUI's own nodes: the audio VAE and ACE-Step 1.5's text "
                        "encoder. Checked before anything is encoded: a missing or empty folder, a file without its caption.",
            inputs=[io.Combo.Input("folder", options=_input_folders(),
                                   tooltip="A folder under ComfyUI's input folder with the audio to learn from."),
                    io.Vae.Input("vae", tooltip="The ACE-Step 1.5 audio VAE, from the LockN loader."),
                    io.Clip.Input("clip", tooltip="The ACE-Step 1.5 text encoder, from the LockN loader."),
                    io.Combo.Input("captions", options=list(T.CAPTION_MODES), default=T.CAPTIONS_PER_FILE,
                                   tooltip="Where captions (tags) come from: a .txt beside each file, or the one below."),
                    io.String.Input("caption", default="", multiline=True, tooltip="The tags for every file (one caption for all)."),
                    io.Float.Input("seconds", default=30.0, min=0.0, max=600.0, step=0.5,
                                   tooltip="Train on the first seconds of each file (0: all of it)."),
                    io.Int.Input("bpm", default=120, min=10, max=300, tooltip="The tempo the conditioning states.")],
            outputs=[io.Latent.Output("latents", display_name="latents", is_output_list=True),
                     io.Conditioning.Output("conditioning", display_name="conditioning", is_output_list=True)])

    @classmethod
    def execute(cls, folder, vae, clip, captions=T.CAPTIONS_PER_FILE, caption="", seconds=30.0, bpm=120) -> io.NodeOutput:
        try:
            ds = T.scan(_folder_path(folder), "audio", captions, caption, shown=folder)
        except T.TrainingProblem as e:
            raise LockNError(str(e)) from None
        import torch
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)                # the audio VAE samples its latent: the same files, the same dataset
            pairs = [_encode_audio(f, text, float(seconds), int(bpm), vae, clip) for f, text in zip(ds.files, ds.captions)]
        log.info("LockN training audio: %d files from %s", len(ds), ds.folder)
        return io.NodeOutput([p[0] for p in pairs], [p[1] for p in pairs])


def _encode_audio(path, text, seconds, bpm, vae, clip):
    """(latent, conditioning) of one audio file and its tags, with core's nodes."""
    wave, rate = tm.load_audio(path, seconds)
    latent = seam.run_core_node("VAEEncodeAudio", "ACE-Step training data", audio={"waveform": wave, "sample_rate": rate},
                                vae=vae)[0]
    cond = seam.run_core_node(
        "TextEncodeAceStepAudio1.5", "ACE-Step training data", clip=clip, tags=text, lyrics="[Instrumental]", seed=0,
        bpm=bpm, duration=float(wave.shape[-1] / rate), timesignature="4", language="en", keyscale="C major",
        generate_audio_codes=False, cfg_scale=2.0, temperature=0.85, top_p=0.9, top_k=0, min_p=0.0)[0]
    return latent, cond


def _base_hash(path: str) -> str:
    name, size = os.path.basename(path), os.path.getsize(path)
    entry = catalog_mod.builtin().file(name)
    if entry is not None and entry.sha256 and entry.size == size:
        return f"sha256:{entry.sha256}"
    if size > HASH_LIMIT:
        return f"size:{size}"
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return f"sha256:{h.hexdigest()}"


def _save(lora: dict, path: str, meta: dict) -> None:
    """All of it under `path`, or nothing: written beside it under a temporary name, then renamed."""
    from safetensors.torch import save_file
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.partial"
    try:
        save_file({k: v.contiguous() for k, v in lora.items()}, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _latent_sizes(latents) -> set:
    return {tuple(l["samples"].shape[2:]) for l in latents}


class LockNTrainLoRA(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LockNTrainLoRA", display_name="Train LoRA (LockN)", category=CATEGORY, is_output_node=True,
            is_input_list=True,
            description="Trains a LoRA with ComfyUI's own trainer on the model a LockN loader holds: the base is not "
                        "read again nor copied, and is unchanged afterwards. Before it starts, the budgets make room for "
                        "what training adds (adapters, gradients, optimizer state, activations) or the run is refused "
                        "with the figures and what to change. The LoRA is saved as models/loras/lockn/<name>.safetensors "
                        "with its family, expert and base in the file, and is in the LoRA nodes' lists at once.",
            inputs=[io.Model.Input("model", tooltip="The base, from a LockN loader (for Wan2.2 A14B: one expert)."),
                    io.Latent.Input("latents", tooltip="The dataset's latents (Make Training Dataset, or Training Audio)."),
                    io.Conditioning.Input("conditioning", tooltip="The dataset's captions, encoded (one per latent, or one for all)."),
                    io.String.Input("lora_name", default="my-style",
                                    tooltip="Saved as models/loras/lockn/<name>.safetensors."),
                    io.Int.Input("steps", default=200, min=1, max=100000, tooltip="Optimizer steps."),
                    io.Int.Input("rank", default=16, min=1, max=256, tooltip="LoRA rank: higher learns more and weighs more."),
                    io.Float.Input("learning_rate", default=1e-4, min=1e-7, max=1.0, step=1e-5,
                                   tooltip="The optimizer's learning rate (1e-4 is usual for a style LoRA)."),
                    io.Int.Input("batch_size", default=1, min=1, max=64, tooltip="Samples per step."),
                    io.Boolean.Input("gradient_checkpointing", default=True,
                                     tooltip="Recompute each block in the backward pass: much less memory, about a third slower."),
                    io.Boolean.Input("overwrite", default=False, tooltip="Replace a LoRA of the same name (off: refuse)."),
                    io.Int.Input("seed", default=0, min=0, max=2**31 - 1, control_after_generate=False,
                                 tooltip="The noise and timesteps' seed: the same seed and data give the same LoRA."),
                    io.Combo.Input("optimizer", options=list(T.OPTIMIZERS), default="AdamW", advanced=True,
                                   tooltip="Core's optimizers."),
                    io.Combo.Input("training_dtype", options=["bf16", "fp32"], default="bf16", advanced=True,
                                   tooltip="The dtype the model computes in while training."),
                    io.Combo.Input("lora_dtype", options=["bf16", "fp32"], default="bf16", advanced=True,
                                   tooltip="The dtype of the trained LoRA's weights.")],
            outputs=[io.String.Output("lora", display_name="lora",
                                      tooltip="The saved LoRA's name in the LoRA lists (lockn/<name>.safetensors)."),
                     io.Custom("LOSS_MAP").Output("loss", display_name="loss", tooltip="The loss per step (core's Plot Loss Graph).")])

    @classmethod
    def fingerprint_inputs(cls, **kwargs):
        return time.time()              # training writes a file: never taken from the cache

    @classmethod
    def execute(cls, model, latents, conditioning, lora_name, steps, rank, learning_rate, batch_size,
                gradient_checkpointing, overwrite, seed, optimizer=("AdamW",), training_dtype=("bf16",),
                lora_dtype=("bf16",)) -> io.NodeOutput:
        first = lambda v: v[0] if isinstance(v, list) else v      # noqa: E731  (inputs come as lists)
        model, name, steps, rank = first(model), first(lora_name), int(first(steps)), int(first(rank))
        lr, batch, ckpt = float(first(learning_rate)), int(first(batch_size)), bool(first(gradient_checkpointing))
        overwrite, seed, optimizer = bool(first(overwrite)), int(first(seed)), first(optimizer)
        training_dtype, lora_dtype = first(training_dtype), first(lora_dtype)
        if model is None:
            raise LockNError("Train LoRA: no model; connect the MODEL of a LockN loader")
        recs = REGISTRY.object_records([model])
        if not recs:
            raise LockNError("Train LoRA: this model did not come from a LockN loader, so LockN cannot train on it where it "
                             "is resident nor record its base. Connect the MODEL output of a LockN loader.")
        entry, path_of_base = recs[0].entry, recs[0].paths[0] if recs[0].paths else ""
        family, expert = entry.family, (entry.role if entry.role in EXPERT_ROLES else None)
        version = seam.comfyui_version()
        latents = [l for l in latents if l is not None]
        if not latents:
            raise LockNError("Train LoRA: the dataset is empty; connect Make Training Dataset's latents")
        try:
            T.check_family(family, version, len({tuple(l["samples"].shape) for l in latents
                                                  if l["samples"].dim() == 5 and l["samples"].shape[2] > 1}), ckpt)
            rel = T.lora_file_name(name)
        except T.TrainingProblem as e:
            raise LockNError(f"Train LoRA: {e}") from None
        target = os.path.join(cm.folder_dirs("loras")[0], *rel.split("/"))
        try:
            T.check_target(target, rel, overwrite)
        except T.TrainingProblem as e:
            raise LockNError(f"Train LoRA: {e}") from None
        if len(conditioning) not in (1, len(latents)):
            raise LockNError(f"Train LoRA: {len(latents)} latents and {len(conditioning)} captions; give one caption per "
                             f"latent or one for all")
        biggest = max((l["samples"] for l in latents), key=lambda s: s[0].numel())
        dataset_size = len(latents)
        bucket = len(_latent_sizes(latents)) > 1
        if bucket:
            conds = conditioning if len(conditioning) == len(latents) else conditioning * len(latents)
            latents, conditioning = seam.bucket_by_size(latents, conds)

        linears, hidden, blocks, widest = seam.model_shape(model)
        depth = seam.checkpoint_depth(model)          # the blocks one at a time (core's default 1: the whole model)
        weights, unit_weights = seam.checkpoint_weights(model, depth)
        shape = T.ModelShape(tuple(linears), hidden, blocks, widest, weights, unit_weights)
        settings = T.Settings(rank=rank, batch=batch, optimizer=optimizer, checkpointing=ckpt,
                              lora_bytes=2 if lora_dtype == "bf16" else 4, compute_bytes=2 if training_dtype == "bf16" else 4)
        cost = T.estimate(shape, T.tokens_of(family, tuple(biggest.shape), seam.text_tokens(conditioning[0])), settings,
                          family)
        REGISTRY.uses_objects([model])
        try:
            REGISTRY.reserve_compute(cost.total, f"LoRA training on {entry.name}: {cost.line()}",
                                     policy.Compute("Training did not start.", T.fixes(cost)))
        except LockNError as e:
            raise LockNError(f"Train LoRA: {e}") from None
        log.info("LockN training %s on %s (%s): %d steps, rank %d; adds %s", rel, entry.name, family, steps, rank, cost.line())

        pid, node = seam.executing_prompt_id(), seam.executing_node_id()
        state = {"step": 0, "t0": time.perf_counter()}

        def on_loss(value: float):
            state["step"] += 1
            if seam.server() is not None:
                seam.send_event(EVENT, {"prompt_id": pid, "node": node, "lora": rel, "step": state["step"],
                                        "steps": steps, "loss": value})
        started = time.perf_counter()
        try:
            lora, loss_map, total_steps = seam.train_lora(
                model, latents, conditioning, on_loss=on_loss, batch_size=batch, steps=steps,
                grad_accumulation_steps=1, learning_rate=lr, rank=rank, optimizer=optimizer, loss_function="MSE",
                seed=seed, training_dtype=training_dtype, lora_dtype=lora_dtype, quantized_backward=False,
                algorithm="LoRA", gradient_checkpointing=ckpt, checkpoint_depth=depth, offloading=False,
                existing_lora="[None]", bucket_mode=bucket, bypass_mode=False)
        except seam.Missing as e:
            raise LockNError(f"Train LoRA: {e}") from None
        seconds = time.perf_counter() - started
        losses = [float(x) for x in loss_map.get("loss", [])]
        meta = T.metadata(family, expert, os.path.basename(path_of_base), _base_hash(path_of_base) if path_of_base else "",
                          rank, int(total_steps), dataset_size, lr, "LoRA", version, losses)
        _save(lora, target, meta)
        log.info("LockN training saved %s (%d tensors) after %d steps in %.1f s; loss %s -> %s", target, len(lora), steps,
                 seconds, f"{losses[0]:.4g}" if losses else "?", f"{losses[-1]:.4g}" if losses else "?")
        if seam.server() is not None:
            seam.send_event(EVENT, {"prompt_id": pid, "node": node, "lora": rel, "path": target, "done": True,
                                    "steps": steps, "seconds": round(seconds, 2), "loss": losses[-1] if losses else None})
        return io.NodeOutput(rel, loss_map)


TRAINING_NODES = [LockNTrainingData, LockNTrainingAudio, LockNTrainLoRA]
