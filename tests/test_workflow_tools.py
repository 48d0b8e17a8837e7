"""lockn_gen.workflow without a server: UI -> API conversion, --set, validate().

`fixtures/object_info.json` is a trimmed capture of GET /object_info from the test server (ComfyUI
0.20.1 with the tiny model set, so the model choices are the tiny files' real names).
`fixtures/object_info_033.json` is the same from ComfyUI 0.33.0 (the test server's set-up: tiny models,
lockn_start.png in input/, fixtures/user_catalog.toml), trimmed to those node classes plus every class
the shipped workflows use. 0.33's SaveVideo has a dynamic combo `format` (COMFY_DYNAMICCOMBO_V3) whose
options carry a nested dynamic combo `codec`, plus a hidden top-level `codec` for older API prompts.
`lockn_gen/pinned_object_info.json` is the pin the shipped UI files are generated against (0.20.1).
`fixtures/flux2_t2i.ui.json` is a hand-written editor-format version of graphs.flux2_t2i() that uses a
subgraph, a PrimitiveNode, a Reroute, a bypassed node, a muted node and a note.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from lockn_gen import chains
from lockn_gen import workflow as W
from lockn_gen.workflow_ui import api_to_ui
from lockn_testing import graphs

FIXTURES = Path(__file__).parent / "fixtures"
OBJECT_INFO = json.loads((FIXTURES / "object_info.json").read_text())
OBJECT_INFO_033 = json.loads((FIXTURES / "object_info_033.json").read_text())
UI_FLUX = FIXTURES / "flux2_t2i.ui.json"
# the packages that hold the official template JSONs: 0.20.1's venv has them in the media packages,
# 0.33's in comfyui_workflow_templates_json
TEMPLATE_PACKAGES = ("comfyui_workflow_templates_media_video", "comfyui_workflow_templates_json")


def _template(name: str) -> Path | None:
    """An official template file from the venv of the ComfyUI at COMFYUI_PATH, wherever it keeps it."""
    from lockn_testing.harness import comfyui_path
    for site in sorted((comfyui_path() / ".venv" / "lib").glob("python3*/site-packages")):
        for pkg in TEMPLATE_PACKAGES:
            if (site / pkg / "templates" / name).is_file():
                return site / pkg / "templates" / name
    return None


# ---- small editor-format graphs built in the tests ------------------------------------------------
def ui_node(id, type, inputs=(), outputs=(), widgets=None, mode=0, title=None, props=None):
    n = {"id": id, "type": type, "mode": mode, "inputs": list(inputs), "outputs": list(outputs), "properties": props or {}}
    if widgets is not None:
        n["widgets_values"] = widgets
    if title:
        n["title"] = title
    return n


def inp(name, type, link=None, widget=False):
    d = {"name": name, "type": type, "link": link}
    if widget:
        d["widget"] = {"name": name}
    return d


def out(name, type, links):
    return {"name": name, "type": type, "links": links}


def ui(nodes, links, subgraphs=()):
    return {"nodes": nodes, "links": links, "definitions": {"subgraphs": list(subgraphs)}, "version": 0.4}


def ksampler_graph(mode_of_shift=0, shift_links=True):
    """UNETLoader -> ModelSamplingAuraFlow (mode given) -> KSampler -> VAEDecode -> SaveImage."""
    return ui([
        ui_node(1, "UNETLoader", outputs=[out("MODEL", "MODEL", [1])], widgets=["flux2_dev_fp8mixed.safetensors", "default"]),
        ui_node(2, "ModelSamplingAuraFlow", [inp("model", "MODEL", 1)], [out("MODEL", "MODEL", [2])], [3.0], mode=mode_of_shift),
        ui_node(3, "KSampler", [inp("model", "MODEL", 2), inp("positive", "CONDITIONING"), inp("negative", "CONDITIONING"),
                                inp("latent_image", "LATENT")], [out("LATENT", "LATENT", [3])],
                [42, "increment", 12, 6.5, "euler", "karras", 0.75]),
        ui_node(4, "VAELoader", outputs=[out("VAE", "VAE", [4])], widgets=["flux2-vae.safetensors"]),
        ui_node(5, "VAEDecode", [inp("samples", "LATENT", 3), inp("vae", "VAE", 4)], [out("IMAGE", "IMAGE", [5])]),
        ui_node(6, "SaveImage", [inp("images", "IMAGE", 5)], widgets=["out"]),
    ], [[1, 1, 0, 2, 0, "MODEL"], [2, 2, 0, 3, 0, "MODEL"], [3, 3, 0, 5, 0, "LATENT"], [4, 4, 0, 5, 1, "VAE"],
        [5, 5, 0, 6, 0, "IMAGE"]])


# ---- format detection ------------------------------------------------------------------------------
def test_detects_both_formats_and_refuses_other_json(tmp_path):
    assert W.detect_format(json.loads(UI_FLUX.read_text())) == "ui"
    assert W.detect_format(graphs.flux2_t2i()) == "api"
    assert W.load({"prompt": graphs.flux2_t2i()})[0] == "api"           # the /prompt body is unwrapped
    with pytest.raises(W.WorkflowError, match="not a ComfyUI workflow"):
        W.detect_format({"hello": 1})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(W.WorkflowError, match="cannot read workflow"):
        W.load(bad)
    with pytest.raises(W.WorkflowError, match="not found"):
        W.load(tmp_path / "missing.json")


def test_api_prompt_passes_through_as_a_copy():
    g = graphs.flux2_t2i()
    wf = W.to_api(g, OBJECT_INFO)
    assert wf.format == "api" and wf.prompt == g and wf.prompt is not g


# ---- widgets_values ----------------------------------------------------------------------------------
def test_widget_values_skip_control_after_generate():
    values, controls = W.map_widget_values(OBJECT_INFO["KSampler"], [42, "increment", 12, 6.5, "euler", "karras", 0.75])
    assert values == {"seed": 42, "steps": 12, "cfg": 6.5, "sampler_name": "euler", "scheduler": "karras", "denoise": 0.75}
    assert controls == {"seed": "increment"}
    # noise_seed of KSamplerAdvanced sits in the middle of the list
    values, _ = W.map_widget_values(OBJECT_INFO["KSamplerAdvanced"],
                                    ["enable", 7, "randomize", 4, 1, "euler", "simple", 0, 2, "enable"])
    assert values["noise_seed"] == 7 and values["steps"] == 4 and values["end_at_step"] == 2
    assert values["return_with_leftover_noise"] == "enable"
    # PrimitiveInt declares control_after_generate="fixed" in its spec
    assert W.map_widget_values(OBJECT_INFO["PrimitiveInt"], [20, "fixed"]) == ({"value": 20}, {"value": "fixed"})


def test_widget_values_defaults_extras_and_dict_form():
    # an upload button value after the combo is ignored; a missing trailing widget gets its default
    assert W.map_widget_values(OBJECT_INFO["LoadImage"], ["x.png", "image"])[0] == {"image": "x.png"}
    assert W.map_widget_values(OBJECT_INFO["EmptyFlux2LatentImage"], [64, 32])[0] == {"width": 64, "height": 32, "batch_size": 1}
    assert W.map_widget_values(OBJECT_INFO["SaveImage"], {"filename_prefix": "p", "junk": 1})[0] == {"filename_prefix": "p"}


def test_dynamic_combo_widgets_follow_the_chosen_option():
    values, _ = W.map_widget_values(OBJECT_INFO["ResizeImageMaskNode"], ["scale dimensions", 320, 240, "disabled", "area"])
    assert values == {"resize_type": "scale dimensions", "resize_type.width": 320, "resize_type.height": 240,
                      "resize_type.crop": "disabled", "scale_method": "area"}
    values, _ = W.map_widget_values(OBJECT_INFO["ResizeImageMaskNode"], ["scale by multiplier", 2.0, "lanczos"])
    assert values == {"resize_type": "scale by multiplier", "resize_type.multiplier": 2.0, "scale_method": "lanczos"}
    assert W.input_spec(OBJECT_INFO["ResizeImageMaskNode"], "resize_type.multiplier")[0] == "FLOAT"


# ---- 0.33's SaveVideo: a dynamic combo with a nested one, and a hidden input for older prompts ----
def save_video(**inputs):
    return {"1": {"class_type": "LoadImage", "inputs": {"image": "lockn_start.png"}},
            "2": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 16.0}},
            "3": {"class_type": "SaveVideo", "_meta": {"title": "Save MP4"},
                  "inputs": {"video": ["2", 0], "filename_prefix": "LockN/x", **inputs}}}


def test_033_save_video_spec_shape():
    spec = OBJECT_INFO_033["SaveVideo"]["input"]
    assert W.spec_type(spec["required"]["format"]) == "COMFY_DYNAMICCOMBO_V3"
    assert W.combo_options(spec["required"]["format"]) == ["auto", "mp4", "mkv", "webm"]
    assert W.is_hidden(spec["optional"]["codec"]) and W.combo_options(spec["optional"]["codec"]) == ["auto", "h264", "av1"]
    assert W.input_spec(OBJECT_INFO_033["SaveVideo"], "format.codec", {"format": "webm"})[1]["options"][1]["key"] == "av1"
    assert W.input_spec(OBJECT_INFO_033["SaveVideo"], "format.codec.encoding.crf", {})[0] == "FLOAT"


def test_validate_dynamic_combos_the_way_comfyui_does():
    """ComfyUI expands a dynamic combo only when it is in the prompt: the API form of the shipped files
    (flat format + the hidden top-level codec) and the editor's form (format.codec) both pass, on 0.33 as
    on 0.20.1 (plain combos there); what the server would refuse or fail on is still reported."""
    def on_020(prompt):                                  # (the 0.20.1 capture has no input images)
        return [e for e in W.validate(prompt, OBJECT_INFO) if not e.startswith("node 1 (LoadImage)")]

    flat = save_video(format="mp4", codec="h264")
    assert W.validate(flat, OBJECT_INFO_033) == [] and on_020(flat) == []
    editor = save_video(**{"format": "mp4", "format.codec": "h264", "format.codec.encoding": "auto", "codec": "auto"})
    assert W.validate(editor, OBJECT_INFO_033) == []
    assert W.validate(save_video(format="webm"), OBJECT_INFO_033) == []       # nested codec absent: not missing
    assert on_020(save_video(format="mp4")) == [                             # 0.20.1: codec is a plain required combo
        "node 3 \"Save MP4\" (SaveVideo): required input 'codec' (COMBO) is missing"]
    (msg,) = W.validate(save_video(codec="h264"), OBJECT_INFO_033)           # a top-level one is still required
    assert msg == "node 3 \"Save MP4\" (SaveVideo): required input 'format' (COMFY_DYNAMICCOMBO_V3) is missing"
    (msg,) = W.validate(save_video(**{"format": "webm", "format.codec": "h264"}), OBJECT_INFO_033)
    assert "input 'format.codec': 'h264' is not available on the server; choices: 'auto', 'av1'" in msg
    (msg,) = W.validate(save_video(format="mov", codec="h264"), OBJECT_INFO_033)
    assert "input 'format': 'mov' is not available on the server; choices: 'auto', 'mp4', 'mkv', 'webm'" in msg
    errors = W.validate(save_video(**{"format": "mp4", "format.codec": "h264", "format.codec.encoding": "re-encode",
                                      "format.codec.encoding.crf": 99.0}), OBJECT_INFO_033)
    assert errors == ["node 3 \"Save MP4\" (SaveVideo): input 'format.codec.encoding.crf' is 99.0, outside the allowed "
                      "range between 0.0 and 51.0",
                      "node 3 \"Save MP4\" (SaveVideo): required input 'format.codec.encoding.color_space' (COMBO) is missing"]
    # an option's required input counts under the optional top-level codec too, once that is chosen
    assert any("'codec.encoding.crf' (FLOAT) is missing" in e for e in W.validate(
        save_video(**{"format": "auto", "codec": "av1", "codec.encoding": "re-encode", "codec.encoding.color_space": "auto"}),
        OBJECT_INFO_033))


def test_033_save_video_widgets_and_set():
    """The editor's widgets_values (as 0.20.1 saved them, and the official templates still do) read the
    way each version's editor reads them; --set codec reaches the codec the editor shows."""
    assert W.map_widget_values(OBJECT_INFO["SaveVideo"], ["LockN/x", "mp4", "h264"])[0] == \
        {"filename_prefix": "LockN/x", "format": "mp4", "codec": "h264"}
    assert W.map_widget_values(OBJECT_INFO_033["SaveVideo"], ["LockN/x", "mp4", "h264"])[0] == \
        {"filename_prefix": "LockN/x", "format": "mp4", "format.codec": "h264", "format.codec.encoding": "auto", "codec": "auto"}
    assert W.map_widget_values(OBJECT_INFO_033["SaveVideo"], ["p", "webm", "av1", "re-encode", 30.0, "HDR", "auto"])[0] == \
        {"filename_prefix": "p", "format": "webm", "format.codec": "av1", "format.codec.encoding": "re-encode",
         "format.codec.encoding.crf": 30.0, "format.codec.encoding.color_space": "HDR", "codec": "auto"}
    flat = save_video(format="mp4", codec="h264")
    W.apply_sets(flat, ["Save MP4.codec=av1"], OBJECT_INFO_033)               # the API form: the hidden codec
    assert flat["3"]["inputs"] == {"video": ["2", 0], "filename_prefix": "LockN/x", "format": "mp4", "codec": "av1"}
    editor = save_video(**W.map_widget_values(OBJECT_INFO_033["SaveVideo"], ["LockN/x", "mp4", "h264"])[0])
    W.apply_sets(editor, ["Save MP4.codec=av1", "Save MP4.format.codec.encoding=re-encode"], OBJECT_INFO_033)
    assert editor["3"]["inputs"]["format.codec"] == "av1" and editor["3"]["inputs"]["codec"] == "auto"
    assert editor["3"]["inputs"]["format.codec.encoding"] == "re-encode"
    with pytest.raises(W.WorkflowError, match=r"'vp9' is not available on the server; choices: 'auto', 'h264', 'av1'"):
        W.apply_sets(editor, ["Save MP4.format.codec=vp9"], OBJECT_INFO_033)
    W.apply_sets(flat, ["Save MP4.format.codec=h264"], OBJECT_INFO_033)       # the dotted name works on the API form
    assert flat["3"]["inputs"]["format.codec"] == "h264" and W.validate(flat, OBJECT_INFO_033) == []


def test_api_to_ui_writes_a_dynamic_combo_the_way_the_editor_reads_it():
    prompt = save_video(format="mp4", codec="h264")
    node = api_to_ui(prompt, OBJECT_INFO_033)["nodes"][-1]
    assert node["type"] == "SaveVideo"
    # format, its option's codec (the API prompt's hidden codec), that codec's optional encoding, the hidden codec, its encoding
    assert node["widgets_values"] == ["LockN/x", "mp4", "h264", "auto", "h264", "auto"]
    back = W.to_api(api_to_ui(prompt, OBJECT_INFO_033), OBJECT_INFO_033).prompt["3"]["inputs"]
    assert back["format"] == "mp4" and back["format.codec"] == "h264" and W.validate({**prompt, "3": {
        "class_type": "SaveVideo", "inputs": back}}, OBJECT_INFO_033) == []
    assert api_to_ui(prompt, OBJECT_INFO)["nodes"][-1]["widgets_values"] == ["LockN/x", "mp4", "h264"]


@pytest.mark.parametrize("name", chains.UI_NAMES)
def test_shipped_workflows_validate_on_both_versions_captures(name):
    """Without a server: the API file validates against 0.20.1's and 0.33's /object_info, and the UI
    file (generated against the pin; an app's too, whose API file is its chain's) converts on either into
    a prompt that validates there."""
    wf_dir = Path(__file__).resolve().parents[1] / "workflows"
    api = json.loads((wf_dir / "api" / f"{chains.chain_of(name)}.json").read_text())
    ui = json.loads((wf_dir / f"{name}.json").read_text())
    for info in (chains.pinned_object_info(), OBJECT_INFO_033):
        assert W.validate(api, info) == []
        assert W.validate(W.to_api(ui, info).prompt, info) == []


# ---- UI -> API: the hand-written flux2 graph equals the API template graph ---------------------------
def test_ui_flux_graph_converts_to_the_api_template_graph():
    wf = W.to_api(UI_FLUX, OBJECT_INFO)
    inner = {"6": "60:6", "26": "60:26"}                 # the subgraph's nodes get "<instance>:<inner>" ids
    expected = {}
    for nid, node in graphs.flux2_t2i().items():
        ins = {k: [inner.get(v[0], v[0]), v[1]] if W.is_link(v) else v for k, v in node["inputs"].items()}
        expected[inner.get(nid, nid)] = {"class_type": node["class_type"], "inputs": ins}
    got = {nid: {"class_type": n["class_type"], "inputs": n["inputs"]} for nid, n in wf.prompt.items()}
    assert got == expected
    # what that equality covers, spelled out:
    assert wf.prompt["25"]["inputs"]["noise_seed"] == 1027111520328378     # PrimitiveNode's value beats the widget's 0
    assert wf.prompt["22"]["inputs"]["model"] == ["12", 0]                 # bypassed ModelSamplingAuraFlow passed through
    assert wf.prompt["8"]["inputs"]["vae"] == ["10", 0]                    # through the Reroute
    assert "90" not in wf.prompt and "70" not in wf.prompt                 # muted and bypassed nodes are gone
    assert not {"50", "80", "91", "60"} & set(wf.prompt)                   # reroute, primitive, note, subgraph node
    assert wf.prompt["22"]["inputs"]["conditioning"] == ["60:26", 0]       # subgraph output wired through
    assert wf.prompt["60:6"]["inputs"]["clip"] == ["38", 0]                # subgraph input wired through
    assert wf.prompt["60:6"]["_meta"]["title"] == "Positive Prompt"        # titles kept
    assert wf.prompt["12"]["_meta"]["title"] == "Load Diffusion Model"     # untitled: the display name
    assert W.validate(wf.prompt, OBJECT_INFO) == []


def test_muted_node_drops_what_it_fed():
    g = ksampler_graph(mode_of_shift=W.MUTED)
    prompt = W.to_api(g, OBJECT_INFO).prompt
    assert "2" not in prompt and "model" not in prompt["3"]["inputs"]
    assert any("required input 'model'" in e for e in W.validate(prompt, OBJECT_INFO))


def test_bypass_picks_the_input_of_matching_type():
    g = ui([
        ui_node(1, "VAELoader", outputs=[out("VAE", "VAE", [1])], widgets=["flux2-vae.safetensors"]),
        ui_node(2, "EmptyFlux2LatentImage", outputs=[out("LATENT", "LATENT", [2])], widgets=[64, 64, 1]),
        # VAEDecode bypassed: its IMAGE output has no IMAGE input to take, so the consumer loses it;
        # a bypassed LATENT->LATENT node passes its LATENT input (slot 1 here, not slot 0)
        ui_node(3, "Fake", [inp("vae", "VAE", 1), inp("samples", "LATENT", 2)], [out("LATENT", "LATENT", [3])], mode=W.BYPASSED),
        ui_node(4, "VAEDecode", [inp("samples", "LATENT", 3), inp("vae", "VAE", 4)], [out("IMAGE", "IMAGE", [5])]),
        ui_node(5, "VAELoader", outputs=[out("VAE", "VAE", [4])], widgets=["flux2-vae.safetensors"]),
        ui_node(6, "SaveImage", [inp("images", "IMAGE", 5)], widgets=["x"]),
    ], [[1, 1, 0, 3, 0, "VAE"], [2, 2, 0, 3, 1, "LATENT"], [3, 3, 0, 4, 0, "LATENT"], [4, 5, 0, 4, 1, "VAE"],
        [5, 4, 0, 6, 0, "IMAGE"]])
    prompt = W.to_api(g, OBJECT_INFO).prompt
    assert prompt["4"]["inputs"]["samples"] == ["2", 0]
    assert "3" not in prompt


def test_subgraph_legacy_values_and_nested_ids():
    """A subgraph node that stores its promoted widget values itself (older frontends), used twice, one
    instance inside another subgraph: ids nest, each instance keeps its own value."""
    inner = {"id": "inner-sg", "name": "Encode", "inputs": [{"name": "text", "type": "STRING", "linkIds": [11]},
                                                            {"name": "clip", "type": "CLIP", "linkIds": [12]}],
             "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "linkIds": [13]}],
             "nodes": [ui_node(7, "CLIPTextEncode", [inp("clip", "CLIP", 12), inp("text", "STRING", 11, True)],
                               [out("CONDITIONING", "CONDITIONING", [13])], ["inner default"])],
             "links": [{"id": 11, "origin_id": -10, "origin_slot": 0, "target_id": 7, "target_slot": 1, "type": "STRING"},
                       {"id": 12, "origin_id": -10, "origin_slot": 1, "target_id": 7, "target_slot": 0, "type": "CLIP"},
                       {"id": 13, "origin_id": 7, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "CONDITIONING"}]}
    outer = {"id": "outer-sg", "name": "Wrapper", "inputs": [{"name": "clip", "type": "CLIP", "linkIds": [21]}],
             "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "linkIds": [22]}],
             "nodes": [ui_node(4, "inner-sg", [inp("text", "STRING", None, True), inp("clip", "CLIP", 21)],
                               [out("CONDITIONING", "CONDITIONING", [22])], ["nested value"])],
             "links": [{"id": 21, "origin_id": -10, "origin_slot": 0, "target_id": 4, "target_slot": 1, "type": "CLIP"},
                       {"id": 22, "origin_id": 4, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "CONDITIONING"}]}
    g = ui([
        ui_node(1, "CLIPLoader", outputs=[out("CLIP", "CLIP", [1, 2])], widgets=["mistral_3_small_flux2_fp8.safetensors", "flux2", "default"]),
        ui_node(2, "inner-sg", [inp("text", "STRING", None, True), inp("clip", "CLIP", 1)],
                [out("CONDITIONING", "CONDITIONING", [3])], ["first instance"], title="Encode A"),
        ui_node(3, "outer-sg", [inp("clip", "CLIP", 2)], [out("CONDITIONING", "CONDITIONING", [4])]),
        ui_node(5, "FluxGuidance", [inp("conditioning", "CONDITIONING", 3)], [out("CONDITIONING", "CONDITIONING", [])], [3.0]),
        ui_node(6, "FluxGuidance", [inp("conditioning", "CONDITIONING", 4)], [out("CONDITIONING", "CONDITIONING", [])], [3.0]),
    ], [[1, 1, 0, 2, 1, "CLIP"], [2, 1, 0, 3, 0, "CLIP"], [3, 2, 0, 5, 0, "CONDITIONING"], [4, 3, 0, 6, 0, "CONDITIONING"]],
        [inner, outer])
    wf = W.to_api(g, OBJECT_INFO)
    assert wf.prompt["2:7"]["inputs"] == {"text": "first instance", "clip": ["1", 0]}
    assert wf.prompt["3:4:7"]["inputs"] == {"text": "nested value", "clip": ["1", 0]}
    assert wf.prompt["5"]["inputs"]["conditioning"] == ["2:7", 0]
    assert wf.prompt["6"]["inputs"]["conditioning"] == ["3:4:7", 0]
    # the subgraph's exposed input is settable by the instance title
    W.apply_sets(wf, ["Encode A.text=changed"], OBJECT_INFO)
    assert wf.prompt["2:7"]["inputs"]["text"] == "changed" and wf.prompt["3:4:7"]["inputs"]["text"] == "nested value"


def test_official_wan22_i2v_template_with_a_subgraph():
    template = _template("video_wan2_2_14B_i2v.json")
    if template is None:
        pytest.skip(f"video_wan2_2_14B_i2v.json is in none of {TEMPLATE_PACKAGES} in ComfyUI's venv")
    wf = W.to_api(template, OBJECT_INFO)
    p = wf.prompt
    assert p["108"]["class_type"] == "SaveVideo"
    assert p["108"]["inputs"] == {"filename_prefix": "video/Wan2.2_i2v", "format": "auto", "codec": "auto",
                                  "video": ["129:94", 0]}                       # subgraph output -> inner CreateVideo
    assert p["97"]["inputs"] == {"image": "video_wan2_2_14B_i2v_input_image.jpg"}
    i2v = p["129:98"]["inputs"]
    assert (i2v["width"], i2v["height"], i2v["batch_size"]) == (640, 640, 1)
    assert i2v["start_image"] == ["97", 0]                                      # outer link into the subgraph
    assert i2v["length"] == ["129:163", 1]                                      # ComfyMathExpression's INT output
    high = p["129:86"]["inputs"]
    assert high["noise_seed"] == 264244520398999 and high["add_noise"] == "enable"   # "randomize" skipped
    assert high["steps"] == ["129:119", 0] and high["model"] == ["129:104", 0]
    assert p["129:85"]["inputs"]["noise_seed"] == 0 and p["129:85"]["inputs"]["return_with_leftover_noise"] == "disable"
    assert p["129:95"]["inputs"]["unet_name"] == "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors"
    assert p["129:163"]["inputs"] == {"expression": "floor (a * b + 1)", "values.a": ["129:161", 0], "values.b": ["129:162", 0]}
    assert p["129:128"]["inputs"] == {"value": 20} and p["129:131"]["inputs"] == {"value": False}
    assert p["129:93"]["_meta"]["title"] == "CLIP Text Encode (Positive Prompt)"
    assert not {"105", "66", "130", "129"} & set(p)                            # notes and the subgraph node
    assert len(p) == 32                                                         # 2 outside, 30 inside
    # the subgraph's labelled inputs reach the inner nodes
    W.apply_sets(wf, ["Image to Video (Wan2.2).prompt=a dragon flies", "Image to Video (Wan2.2).duration=2"], OBJECT_INFO)
    assert p["129:93"]["inputs"]["text"] == "a dragon flies" and p["129:161"]["inputs"]["value"] == 2.0
    # seeds: only the randomize one moves in batch copies
    copy1 = W.vary_seeds(wf, OBJECT_INFO, 1)
    assert copy1["129:86"]["inputs"]["noise_seed"] == 264244520398999 + 1
    assert copy1["129:85"]["inputs"]["noise_seed"] == 0 and copy1["129:128"]["inputs"]["value"] == 20
    # against the tiny server's object_info: the LoRAs and the sample image are not there
    errors = W.validate(p, OBJECT_INFO)
    assert len(errors) == 3
    assert any("node 97" in e and "video_wan2_2_14B_i2v_input_image.jpg" in e for e in errors)
    assert sum("wan2.2_i2v_lightx2v_4steps_lora" in e and "not available" in e for e in errors) == 2


# ---- --set -----------------------------------------------------------------------------------------
@pytest.fixture
def flux():
    return W.to_api(UI_FLUX, OBJECT_INFO)


def test_set_by_title_id_class_subgraph_and_primitive(flux):
    W.apply_sets(flux, ["Load Diffusion Model.weight_dtype=fp8_e4m3fn", "48.steps=8", "FluxGuidance.guidance=2.5",
                        "Prompt.prompt=a red fox", "Seed.value=99", "Save Image.filename_prefix=out/x",
                        "positive prompt.text=case-insensitive title"], OBJECT_INFO)
    p = flux.prompt
    assert p["12"]["inputs"]["weight_dtype"] == "fp8_e4m3fn"
    assert p["48"]["inputs"]["steps"] == 8 and isinstance(p["48"]["inputs"]["steps"], int)
    assert p["60:26"]["inputs"]["guidance"] == 2.5
    assert p["60:6"]["inputs"]["text"] == "case-insensitive title"
    assert p["25"]["inputs"]["noise_seed"] == 99
    assert p["9"]["inputs"]["filename_prefix"] == "out/x"


def test_set_title_with_dots_and_dynamic_input():
    g = graphs.flux2_t2i()
    g["10"]["_meta"] = {"title": "VAE v2.1.x"}
    W.apply_sets(g, ["VAE v2.1.x.vae_name=wan_2.1_vae.safetensors"], OBJECT_INFO)
    assert g["10"]["inputs"]["vae_name"] == "wan_2.1_vae.safetensors"
    r = {"1": {"class_type": "ResizeImageMaskNode", "inputs": {"resize_type": "scale by multiplier", "resize_type.multiplier": 1.0}}}
    W.apply_sets(r, ["1.resize_type.multiplier=2"], OBJECT_INFO)
    assert r["1"]["inputs"]["resize_type.multiplier"] == 2.0


@pytest.mark.parametrize("setting,words", [
    ("Nope.steps=3", ["no node is titled 'Nope'", "Flux2Scheduler", "Prompt (subgraph)", "Seed (primitive)"]),
    ("Flux2Scheduler.stepz=3", ["has no input 'stepz'", "Its inputs: steps, width, height"]),
    ("Flux2Scheduler.steps=abc", ["expects a whole number between 1 and 4096", "'abc'"]),
    ("Flux2Scheduler.steps=2.5", ["expects a whole number"]),
    ("Flux2Scheduler.steps=0", ["expects a whole number between 1 and 4096", "got 0"]),
    ("FluxGuidance.guidance=lots", ["expects a number between 0.0 and 100.0"]),
    ("Load Diffusion Model.unet_name=flux2-dev-Q9.gguf", ["'flux2-dev-Q9.gguf' is not available on the server",
                                                           "flux2_dev_fp8mixed.safetensors"]),
    ("KSamplerSelect.sampler_name=eulerx", ["not available", "'euler'", "more)"]),
    ("VAE Decode.vae=3", ["takes a connection from another node (VAE)"]),
    ("Prompt.nothing=1", ["subgraph 'Prompt' has no input 'nothing'", "prompt"]),
    ("just-text", ["expected TITLE.INPUT=VALUE"]),
])
def test_bad_set_is_refused_in_plain_words(flux, setting, words):
    before = copy.deepcopy(flux.prompt)
    with pytest.raises(W.WorkflowError) as e:
        W.apply_sets(flux, [setting, "Flux2Scheduler.steps=9"], OBJECT_INFO)
    for w in words:
        assert w in str(e.value)
    assert flux.prompt == before                       # nothing applied, not even the good setting


def test_set_ambiguous_title_asks_for_the_id():
    g = graphs.wan22_i2v()
    with pytest.raises(W.WorkflowError, match=r"names 2 nodes \(86, 85\); use the node id"):
        W.apply_sets(g, ["KSamplerAdvanced.steps=6"], OBJECT_INFO)
    W.apply_sets(g, ["86.steps=6"], OBJECT_INFO)
    assert g["86"]["inputs"]["steps"] == 6 and g["85"]["inputs"]["steps"] == 4


def test_coerce_booleans_and_python_values():
    spec = OBJECT_INFO["PrimitiveBoolean"]["input"]["required"]["value"]
    assert W.coerce("yes", spec)[0] is True and W.coerce("False", spec)[0] is False
    with pytest.raises(W.WorkflowError, match="true or false"):
        W.coerce("maybe", spec)
    steps = OBJECT_INFO["Flux2Scheduler"]["input"]["required"]["steps"]
    assert W.coerce(12, steps) == (12, None)
    with pytest.raises(W.WorkflowError):
        W.coerce(True, steps)


def test_set_a_local_file_on_an_upload_input_asks_for_an_upload(tmp_path):
    img = tmp_path / "me.png"
    img.write_bytes(b"\x89PNG")
    g = {"1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}}}
    uploads = W.apply_sets(g, [f"LoadImage.image={img}"], OBJECT_INFO)
    assert uploads == [W.Upload("1", "image", img.resolve())] and g["1"]["inputs"]["image"] == "me.png"
    with pytest.raises(W.WorkflowError, match="or a path to a local file to upload"):
        W.apply_sets(g, [f"LoadImage.image={tmp_path / 'none.png'}"], OBJECT_INFO)


# ---- validate ------------------------------------------------------------------------------------
def test_validate_reports_each_kind_of_problem():
    g = graphs.flux2_t2i(loader="gguf")                       # UnetLoaderGGUF: not in this object_info
    g["9"]["_meta"] = {"title": "Keep"}
    g["47"]["inputs"]["width"] = 99999                        # above max
    g["48"]["inputs"]["steps"] = "many"                       # not a number
    g["10"]["inputs"]["vae_name"] = "nope.safetensors"        # not on the server
    del g["38"]["inputs"]["type"]                             # required input missing
    g["8"]["inputs"]["vae"] = ["77", 0]                       # no such node
    g["13"]["inputs"]["sampler"] = ["16", 3]                  # KSamplerSelect has one output
    g["26"]["inputs"]["conditioning"] = ["10", 0]             # a VAE where CONDITIONING is expected
    errors = W.validate(g, OBJECT_INFO)
    text = "\n".join(errors)
    assert "node 12 (UnetLoaderGGUF): the server does not know the node type 'UnetLoaderGGUF'" in text
    assert "ComfyUI-GGUF" in text
    assert "node 47 (EmptyFlux2LatentImage): input 'width' is 99999, outside the allowed range between 16 and 16384" in text
    assert "input 'steps' expects a whole number, got 'many'" in text
    assert "'nope.safetensors' is not available on the server; choices: 'LTX2_video_vae_bf16.safetensors'" in text
    assert "node 38 (CLIPLoader): required input 'type' (COMBO) is missing" in text
    assert "input 'vae' is connected to node 77, which is not in the workflow" in text
    assert "input 'sampler' is connected to output 3 of node 16 (KSamplerSelect), which has 1 output" in text
    assert "input 'conditioning' expects CONDITIONING but is connected to output 0 of node 10 (VAELoader), which gives VAE" in text
    assert len(errors) == 8
    assert W.validate(graphs.flux2_t2i(), OBJECT_INFO) == []


def test_validate_needs_an_output_node_and_uses_the_ui_pack_name():
    g = graphs.flux2_t2i()
    del g["9"]
    assert any("no output node" in e for e in W.validate(g, OBJECT_INFO))
    unknown = {"1": {"class_type": "Florence2Run", "inputs": {}, "_meta": {"title": "Caption", "pack": "comfyui-florence2"}}}
    (msg,) = W.validate(unknown, OBJECT_INFO)
    assert msg.startswith('node 1 "Caption" (Florence2Run)') and "comfyui-florence2" in msg
    assert W.validate({}, OBJECT_INFO) == ["the workflow has no nodes"]


def test_ui_conversion_keeps_the_pack_of_unknown_nodes():
    g = ui([ui_node(1, "VHS_VideoCombine", props={"cnr_id": "comfyui-videohelpersuite"}, widgets={"frame_rate": 8})], [])
    wf = W.to_api(g, OBJECT_INFO)
    assert wf.prompt["1"]["_meta"]["pack"] == "comfyui-videohelpersuite"
    assert "comfyui-videohelpersuite" in W.validate(wf.prompt, OBJECT_INFO)[0]


# ---- batches -------------------------------------------------------------------------------------
def test_vary_seeds_moves_randomize_and_increment_seeds_only():
    wf = W.to_api(ksampler_graph(), OBJECT_INFO)              # KSampler seed 42, control "increment"
    assert W.vary_seeds(wf, OBJECT_INFO, 0)["3"]["inputs"]["seed"] == 42
    assert W.vary_seeds(wf, OBJECT_INFO, 3)["3"]["inputs"]["seed"] == 45
    assert wf.prompt["3"]["inputs"]["seed"] == 42             # the original is untouched
    ui_flux = W.to_api(UI_FLUX, OBJECT_INFO)                  # the PrimitiveNode's control is "fixed"
    assert W.vary_seeds(ui_flux, OBJECT_INFO, 2)["25"]["inputs"]["noise_seed"] == 1027111520328378
    api = graphs.flux2_t2i(seed=2 ** 64 - 1)                  # API prompts: control_after_generate inputs move, wrapping
    assert W.vary_seeds(api, OBJECT_INFO, 1)["25"]["inputs"]["noise_seed"] == 0
