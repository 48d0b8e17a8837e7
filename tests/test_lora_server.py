"""LoRAs on resident models, per family, on GGUF and safetensors bases, in a real ComfyUI server.

Prompts with different LoRAs and strengths on one base: the base is read from disk once and stays in
its tier, the outputs differ as the strengths say (strength 0 = no LoRA), ComfyUI logs no
"lora key not loaded", and the residency report shows which LoRA the loaded weights carry. Then the
wrong LoRAs: each refused by name before sampling, and the server keeps serving.
"""
from __future__ import annotations

import pytest

from lockn_gen import catalog
from lockn_testing import graphs
from lockn_testing.harness.server import PromptError
from lockn_testing.media import assert_different_media, assert_same_media
from lockn_testing.tiny import loras as tiny_loras

pytestmark = pytest.mark.comfy

STYLE = tiny_loras.STYLE.format
# family -> (graph of the family with a LockN loader, the node that saves, the catalog LoRA as slots)
CASES = {
    "flux2": (lambda preset, p: graphs.flux2_t2i(loader="lockn", preset=preset, width=32, height=32, steps=2, prefix=p),
              "9", {"loras": [(tiny_loras.FLUX_TURBO, 1.0)]}),
    "wan22": (lambda preset, p: graphs.wan22_i2v(loader="lockn", preset=preset, length=5, steps=2, split=1, prefix=p),
              "108", {"high": [(tiny_loras.WAN_HIGH, 1.0)], "low": [(tiny_loras.WAN_LOW, 1.0)]}),
    "ltx2": (lambda preset, p: graphs.ltx2_av(loader="lockn", preset=preset, length=9, steps=2, prefix=p),
             "75", {"loras": [(tiny_loras.LTX_DISTILLED, 1.0)]}),
    "ace15": (lambda preset, p: graphs.ace15_t2m(loader="lockn", preset=preset, seconds=1.0, steps=2, top_p=1.0, prefix=p),
              "107", {"loras": [(tiny_loras.ACE, 1.0)]}),
}
BASE_ROLES = ("diffusion_model", "high_noise", "low_noise", "checkpoint")


def _scaled(slots: dict, strength: float) -> dict:
    return {k: [(name, strength) for name, _ in v] for k, v in slots.items()}


def _style(family: str) -> dict:
    return {"high": [(STYLE(family=family), 1.0)]} if family == "wan22" else {"loras": [(STYLE(family=family), 1.0)]}


def _bases(srv, family: str, preset: str) -> dict:
    """The preset's diffusion model entries in the residency report: id -> entry."""
    files = {f for role, f in catalog.builtin().presets[preset].components.items() if role in BASE_ROLES}
    rep = srv.get("/lockn/residency")
    return {e["id"]: e for e in rep["entries"] if e["family"] == family and e["role"] in BASE_ROLES and set(e["files"]) & files}


def _lora_entry(srv, name: str) -> dict:
    return next(e for e in srv.get("/lockn/residency")["entries"] if e["role"] == "lora" and e["name"] == name)


class _Log:
    def __init__(self, srv):
        self.srv, self.start = srv, srv.log_path.stat().st_size

    def text(self) -> str:
        with open(self.srv.log_path, "rb") as f:
            f.seek(self.start)
            return f.read().decode(errors="replace")


def _run(srv, family, preset, slots, tag):
    """The saved output's path. Outputs are compared by decoded content (lockn_testing.media): "the same" is
    a mean difference within 1 level of 255 per pixel (video, images) and 1e-5 per audio sample, which the
    H.264 encoder's run-to-run noise stays under (seen: up to 0.2 levels) and each LoRA and strength here is far
    above (seen: 7.8 to 20 levels; LTX-2's soundtrack 8e-4, ACE-Step's 0.06 to 0.09)."""
    make, save, _ = CASES[family]
    g = graphs.with_lora(make(preset, f"lora/{preset}-{tag}"), family, **slots)
    res = srv.run(g)
    return srv.output_files(res, save)[0]


def _all_different(**outputs):
    names = list(outputs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert_different_media(outputs[a], outputs[b], f"{a} and {b}")


@pytest.mark.parametrize("family,preset", [
    ("flux2", "flux2-dev-fp8mixed"), ("wan22", "wan22-i2v-a14b-fp8"), ("ltx2", "ltx2-19b-distilled-fp8"), ("ace15", "ace15-turbo")])
def test_lora_switches_keep_the_base_resident(comfy_server, family, preset):
    srv, log = comfy_server, _Log(comfy_server)
    catalog_lora = CASES[family][2]
    plain = _run(srv, family, preset, {}, "none")
    bases = _bases(srv, family, preset)
    assert bases and all(e["tier"] != "dropped" for e in bases.values())

    with_a = _run(srv, family, preset, catalog_lora, "a1")
    rep = _bases(srv, family, preset)
    names = {x["name"] for e in rep.values() for x in e["loras"]}
    assert {n for slot in catalog_lora.values() for n, _ in slot} <= names, rep     # the report says what is applied
    lora = _lora_entry(srv, next(iter(catalog_lora.values()))[0][0])
    assert lora["tier"] == "ram" and lora["bytes"] > 0 and lora["loads_from_disk"] == 1 and lora["applied_to"]

    with_b = _run(srv, family, preset, _style(family), "b1")
    half_a = _run(srv, family, preset, _scaled(catalog_lora, 0.5), "a05")
    zero_a = _run(srv, family, preset, _scaled(catalog_lora, 0.0), "a0")

    _all_different(plain=plain, with_a=with_a, with_b=with_b, half_a=half_a)   # each LoRA and strength changes the output
    assert_same_media(zero_a, plain, "strength 0 and no LoRA")                 # the base as it was (patches removed)
    after = _bases(srv, family, preset)
    for name, e in bases.items():                           # the base was never read again nor moved
        assert after[name]["loads_from_disk"] == e["loads_from_disk"], name
        assert after[name]["tier"] == e["tier"], name
        assert after[name]["loras"] == []                  # strength 0 ran the base itself
    assert _lora_entry(srv, lora["name"])["loads_from_disk"] == 1          # the LoRA was read once too
    text = log.text()
    assert "lora key not loaded" not in text and "NOT LOADED" not in text and "ERROR lora" not in text


@pytest.mark.parametrize("family,preset", [
    ("flux2", "flux2-dev-q4_k_m"), ("wan22", "wan22-i2v-a14b-q4_k_m"), ("ltx2", "ltx2-19b-dev-q4_k_m"), ("ace15", "ace15-turbo-q8_0")])
def test_lora_on_gguf_bases(comfy_server, family, preset):
    srv, log = comfy_server, _Log(comfy_server)
    catalog_lora = CASES[family][2]
    plain = _run(srv, family, preset, {}, "none")
    loads = {n: e["loads_from_disk"] for n, e in _bases(srv, family, preset).items()}
    with_a = _run(srv, family, preset, catalog_lora, "a1")
    zero_a = _run(srv, family, preset, _scaled(catalog_lora, 0.0), "a0")
    assert_different_media(with_a, plain, "the LoRA and no LoRA")
    assert_same_media(zero_a, plain, "strength 0 and no LoRA")
    assert {n: e["loads_from_disk"] for n, e in _bases(srv, family, preset).items()} == loads
    text = log.text()
    assert "lora key not loaded" not in text and "NOT LOADED" not in text and "ERROR lora" not in text


# ---- wrong LoRAs: refused by name before sampling, and the server keeps serving ---------------------------
def _refused(srv, family, preset, slots) -> dict:
    make, _, _ = CASES[family]
    with pytest.raises(PromptError) as exc:
        srv.run(graphs.with_lora(make(preset, "lora/refused"), family, **slots))
    err = exc.value.detail
    assert err["node_type"] == graphs.LORA_NODES[family], err          # stopped at the LoRA node: nothing sampled
    return err


@pytest.mark.parametrize("family,preset,slots,expect", [
    # a catalog LoRA of another family
    ("flux2", "flux2-dev-fp8mixed", {"loras": [(tiny_loras.WAN_HIGH, 1.0)]}, ["is a Wan2.2 LoRA", "Flux.2"]),
    # the user's own LoRA of another family: told by its key names
    ("flux2", "flux2-dev-fp8mixed", {"loras": [(STYLE(family="wan22"), 1.0)]}, ["looks like a LoRA for Wan", "Flux.2"]),
    ("ltx2", "ltx2-19b-distilled-fp8", {"loras": [(STYLE(family="ace15"), 1.0)]}, ["looks like a LoRA for ACE-Step 1.5"]),
    # a Wan2.2 pair's half given to the other expert
    ("wan22", "wan22-i2v-a14b-fp8", {"high": [(tiny_loras.WAN_LOW, 1.0)]},
     ["high_lora_1", "low-noise expert's half", "given to the high-noise expert"]),
    # a catalog LoRA not downloaded: which file, where we looked, how to get it
    ("ltx2", "ltx2-19b-distilled-fp8", {"loras": [("ltx-2-19b-lora-camera-control-jib-up.safetensors", 1.0)]},
     ["not found in", "loras", "lockn-gen models pull", "--file ltx-2-19b-lora-camera-control-jib-up.safetensors"]),
    # broken files
    ("flux2", "flux2-dev-fp8mixed", {"loras": [("flux2_lora_interrupted.safetensors", 1.0)]}, ["flux2_lora_interrupted.safetensors"]),
    ("flux2", "flux2-dev-fp8mixed", {"loras": [("flux2-vae-as-lora.safetensors", 1.0)]}, ["a Flux.2 VAE, not a LoRA"]),
    ("ace15", "ace15-turbo", {"loras": [("lora_for_some_other_model.safetensors", 1.0)]},
     ["none of its 4 tensors fits this ACE-Step 1.5 model", "lora_for_some_other_model.safetensors"]),
], ids=["catalog-family", "user-family", "user-family-ace", "wrong-expert", "missing", "truncated", "not-a-lora", "no-key-fits"])
def test_wrong_loras_are_refused_by_name(comfy_server, family, preset, slots, expect):
    msg = _refused(comfy_server, family, preset, slots)["exception_message"]
    for part in expect:
        assert part in msg, msg
    assert comfy_server.get("/system_stats")                          # still serving


def test_server_runs_after_a_refused_lora(comfy_server):
    _refused(comfy_server, "flux2", "flux2-dev-fp8mixed", {"loras": [(tiny_loras.WAN_HIGH, 1.0)]})
    assert _run(comfy_server, "flux2", "flux2-dev-fp8mixed", {"loras": [(tiny_loras.FLUX_TURBO, 1.0)]}, "after")
