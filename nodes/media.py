"""Media nodes of the chains. ComfyUI's own nodes do the rest (CreateVideo muxes one MP4 and trims audio
to the video; AudioMerge mixes and resamples; TrimAudioDuration trims): this node adds what they do
not guarantee, a soundtrack of exactly the clip's length, padded when the music is short, faded out."""
from __future__ import annotations

import logging
import os
import shutil

import torch
from comfy_api.latest import io

from ..lockn_gen import start_image
from ..lockn_gen import training_workflows
from ..lockn_gen.soundtrack import fit_to_clip

log = logging.getLogger("lockn_gen.media")


def install_example_inputs() -> str | None:
    """Put the I2V workflows' example start image (workflows/input/lockn_start.png) into ComfyUI's input
    folder when no file of that name is there, so their Load Image node is not red on first open. A
    file the user put there is never replaced. Returns the path written, or None."""
    import folder_paths
    dst = os.path.join(folder_paths.get_input_directory(), start_image.NAME)
    if os.path.exists(dst) or not start_image.PATH.is_file():
        return None
    try:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        tmp = dst + ".lockn-part"
        shutil.copyfile(start_image.PATH, tmp)
        os.replace(tmp, dst)
    except OSError as e:
        log.warning("LockN Gen: could not put the example start image into %s (%s); the I2V workflows' Load "
                    "Image node will ask for a picture", dst, e)
        return None
    log.info("LockN Gen: the example start image of the I2V workflows is now at %s", dst)
    return dst


def install_example_datasets() -> list[str]:
    """Put the training workflows' example datasets (workflows/input/lockn_train_*) into ComfyUI's input folder,
    each file only where none of that name is there (a user's own files are never replaced). Returns what it wrote."""
    import folder_paths
    written = []
    for name in training_workflows.EXAMPLE_FOLDERS:
        src, dst = training_workflows.EXAMPLES / name, os.path.join(folder_paths.get_input_directory(), name)
        if not src.is_dir():
            continue
        try:
            os.makedirs(dst, exist_ok=True)
            for f in sorted(src.iterdir()):
                target = os.path.join(dst, f.name)
                if f.is_file() and not os.path.exists(target):
                    shutil.copyfile(f, target + ".lockn-part")
                    os.replace(target + ".lockn-part", target)
                    written.append(target)
        except OSError as e:
            log.warning("LockN Gen: could not put the example training data into %s (%s)", dst, e)
    if written:
        log.info("LockN Gen: the training workflows' example datasets are in %s", folder_paths.get_input_directory())
    return written


class LockNFitAudioToVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LockNFitAudioToVideo", display_name="Fit Audio to Video (LockN)", category="LockN Gen/media",
            description="Makes the audio exactly as long as the video (frame count / fps): trims it, or pads it with "
                        "silence when it is short, then fades it out over the last seconds. Feed the result and the "
                        "same images and fps to Create Video.",
            inputs=[io.Audio.Input("audio"),
                    io.Image.Input("images", tooltip="The video's frames (only their count is used)."),
                    io.Float.Input("fps", default=16.0, min=1.0, max=240.0, step=0.01, tooltip="The video's frame rate."),
                    io.Float.Input("fade_out_seconds", default=1.5, min=0.0, max=60.0, step=0.1,
                                   tooltip="Fade to silence over the clip's last seconds (0 = no fade).")],
            outputs=[io.Audio.Output(), io.Float.Output("seconds", display_name="seconds")])

    @classmethod
    def execute(cls, audio, images, fps, fade_out_seconds):
        wave, sr = audio["waveform"], int(audio["sample_rate"])
        frames = int(images.shape[0])
        fitted = fit_to_clip(wave.detach().float().cpu().numpy(), sr, frames, fps, fade_out_seconds)
        out = {"waveform": torch.from_numpy(fitted).to(wave.dtype), "sample_rate": sr}
        return io.NodeOutput(out, frames / fps)


MEDIA_NODES = [LockNFitAudioToVideo]
