"""--set values that shrink the shipped workflows to what a CPU runs in seconds on the tiny models
(the demo and the tests use them; real models keep the template settings).

They name the nodes by their own titles, which the API files and the UI files share: in a UI file those
nodes sit inside the stage subgraphs, and flattening keeps their titles. The same settings on a stage's
face read "Image.width=128", "Video.length=17" (tests/test_workflow_subgraphs.py maps one to the other)."""

FLUX = ["Image width.value=128", "Image height.value=128", "Image steps.steps=3"]
WAN = ["Length (frames).value=17", "Video size.width=96", "Video size.height=96", "Video steps.value=4",
       "Video high-noise steps.value=2"]
LTX = ["Length (frames).value=25", "Video size.width=96", "Video size.height=96",
       "Video sigmas.sigmas=1.0, 0.9, 0.5, 0.0"]
ACE = ["Music seed and steps.steps=4"]
BRIEF = ["Brief.max_tokens=12"]    # the fast chain's Brief writes with LTX-2's tiny Gemma: a few tokens

TINY = {
    "flux2_text_to_image": FLUX,
    "wan22_image_to_video": WAN,
    "ltx2_image_to_video": LTX,
    "ace15_text_to_music": ACE + ["Duration (s).value=2.0"],
    "chain_quality": FLUX + WAN + ACE + BRIEF,
    "chain_fast": FLUX + LTX + ACE + BRIEF,
}
# the other families' workflows (issue 24) and the chains' alternatives on their stages
def _img(t):
    return [f"{t} size.width=64", f"{t} size.height=64", f"{t} seed and steps.steps=2"]


def _vid(t, frames, steps_title):
    return [f"{t} length (frames).value={frames}", f"{t} size.width=64", f"{t} size.height=64", f"{steps_title}.steps=2"]


ALT = {"flux1": ["Flux.1 seed and steps.steps=2"], "sd35": ["SD3.5 seed and steps.steps=2"],
       "hunyuan15": ["HunyuanVideo 1.5 size.width=64", "HunyuanVideo 1.5 size.height=64", "HunyuanVideo 1.5 steps.steps=2"],
       "ltxv": ["LTX-Video size.width=64", "LTX-Video size.height=64", "LTX-Video steps.steps=2"],
       "stable_audio": ["Stable Audio seed and steps.steps=2"]}
TINY.update({
    "flux1_text_to_image": _img("Flux.1"),
    "sd35_text_to_image": _img("SD3.5"),
    "sdxl_text_to_image": _img("SDXL"),
    "ltxv_image_to_video": _vid("LTX-Video", 9, "LTX-Video steps"),
    "wan21_image_to_video": _vid("Wan2.1", 5, "Wan2.1 seed and steps"),
    "hunyuan15_image_to_video": _vid("HunyuanVideo 1.5", 5, "HunyuanVideo 1.5 steps"),
    "skyreels_image_to_video": _vid("SkyReels", 5, "SkyReels seed and steps"),
    "wan21_text_to_video": _vid("Wan2.1 T2V", 5, "Wan2.1 T2V seed and steps"),
    "stable_audio_text_to_music": ["Duration (s).value=2.0", "Stable Audio seed and steps.steps=2"],
    "heartmula_text_to_music": ["Duration (s).value=2.0", "HeartMuLa song.codec_steps=2"],   # codec: 10 steps -> 2
})
# the training workflows: a few steps at a small rank on the example datasets
TRAIN = ["Train LoRA.steps=2", "Train LoRA.rank=4"]
TINY.update({"train_flux2_lora": TRAIN, "train_wan22_lora": TRAIN,
             "train_ace15_lora": TRAIN + ["Training audio.seconds=2.0"]})
# the apps (workflows/NAME.app.json, lockn_gen.chains.APPS) hold their chain's graph: the same settings
TINY.update({"chain_quality.app": TINY["chain_quality"], "chain_fast.app": TINY["chain_fast"]})
# a chain's other models on its stages (chosen with "Image model.model=flux1" etc.) run as small as its own
TINY["chain_quality"] = TINY["chain_quality"] + ALT["flux1"] + ALT["sd35"] + ALT["hunyuan15"] + ALT["stable_audio"]
TINY["chain_fast"] = TINY["chain_fast"] + ALT["flux1"] + ALT["sd35"] + ALT["ltxv"] + ALT["stable_audio"]
TINY.update({"chain_quality.app": TINY["chain_quality"], "chain_fast.app": TINY["chain_fast"]})
