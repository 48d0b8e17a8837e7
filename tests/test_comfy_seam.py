"""The runtime seam (nodes/comfy_seam.py): the only module of nodes/ that touches ComfyUI internals, and
what the registry promises through it on the installed ComfyUI, in-process: loader fingerprints change
nothing, a clone of an entry's patcher counts as the entry, a missing internal degrades visibly."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

NODES = Path(__file__).resolve().parents[1] / "nodes"
# what nodes/ may import besides its own modules, lockn_gen and the standard library
ALLOWED = {"comfy_api.latest", "folder_paths", "aiohttp", "torch", "numpy", "safetensors.torch"}


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            out.append(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__"):
            out.append("<dynamic import>")
    return out


def test_nothing_in_nodes_but_the_seam_imports_comfyui_internals():
    stdlib = set(sys.stdlib_module_names)
    bad = {}
    for path in sorted(NODES.glob("*.py")):
        if path.name == "comfy_seam.py":
            continue
        wrong = [m for m in _imports(path) if m.split(".")[0] not in stdlib and m not in ALLOWED
                 and not any(m.startswith(a + ".") for a in ALLOWED)]
        if wrong:
            bad[path.name] = wrong
    assert not bad, f"ComfyUI internals imported outside nodes/comfy_seam.py: {bad}"
    # and the seam itself is where they are
    seam = _imports(NODES / "comfy_seam.py")
    assert "comfy.model_management" in seam and "server" in seam


# ---- in-process, against the installed ComfyUI ----------------------------------------------------------
def _module(suffix):
    mods = [m for n, m in sys.modules.items() if n.endswith(suffix)]
    assert len(mods) == 1, [n for n in sys.modules if n.endswith(suffix)]
    return mods[0]


def _loader_kwargs(cls, preset):
    kw = {i.id: "(preset)" for i in cls.GET_SCHEMA().inputs}
    kw.update(preset=preset, weight_dtype="default")
    return kw


@pytest.mark.comfy
def test_a_loader_fingerprint_changes_nothing(comfy_inproc):
    """ComfyUI takes every fingerprint before a prompt's first node runs. The registry's settle after
    the last prompt (budgets, evictions, queue flags) happens later, never inside a fingerprint: the
    fingerprint only notes the entries the coming prompt uses."""
    from comfy_execution.utils import CurrentNodeContext
    from lockn_testing import graphs
    reg = _module("nodes.residency").REGISTRY
    try:
        comfy_inproc.run(graphs.flux2_t2i(loader="lockn", steps=1, width=32, height=32, prefix="seam/fp"))
        assert reg.prompt_running                       # its loader ran: not settled until something settles it
        used = set(reg.prompt_ids)                      # the entries of that prompt's preset (other tests in this
        assert used                                     # process may have loaded other Flux.2 files before)
        reg.set_budgets(gpu_gb=1e-6)                    # applies when that prompt is settled
        tiers = {r.entry.id: r.entry.tier for r in reg.records.values()}
        assert "gpu" in tiers.values()
        cls = comfy_inproc.nodes.NODE_CLASS_MAPPINGS["LockNFlux2Loader"]
        kw = _loader_kwargs(cls, "flux2-dev-q4_k_m")
        with CurrentNodeContext("a-new-prompt", "12"):
            fp = cls.fingerprint_inputs(**kw)
        assert fp.count(":") == 3 and not fp.startswith(("missing", "error"))
        assert {r.entry.id: r.entry.tier for r in reg.records.values()} == tiers     # nothing moved
        assert reg.prompt_running and reg.prompt_id != "a-new-prompt"
        assert reg.upcoming_id == "a-new-prompt" and reg.upcoming == used     # the same preset: the same entries
        reg.report()                                    # between prompts: settles, the budget applies
        assert {reg.records[i].entry.tier for i in used} == {"ram"}
        assert not reg.upcoming and not reg.prompt_running
    finally:
        reg.set_budgets(gpu_gb=0)


@pytest.mark.comfy
def test_a_clone_of_an_entrys_patcher_counts_as_the_entry(comfy_inproc):
    """A LoRA or a ModelSamplingSD3 node hands the sampler a clone of the loader's ModelPatcher, and
    ComfyUI loads that clone: the entry reads as on the device, and evicting it to RAM unloads the clone."""
    import comfy.model_management as mm
    reg = _module("nodes.residency").REGISTRY
    cls = comfy_inproc.nodes.NODE_CLASS_MAPPINGS["LockNAceStep15Loader"]
    model = cls.execute(**_loader_kwargs(cls, "ace15-turbo")).args[0]
    [rec] = [r for r in reg.find(family="ace15") if r.obj is model]
    reg.evict([rec], to="ram", defer_if_busy=False)
    assert reg.report() and rec.entry.tier == "ram"
    clone = model.clone()
    assert clone is not model and clone.is_clone(model)
    mm.load_models_gpu([clone])
    assert any(lm.model is clone for lm in mm.current_loaded_models)
    reg.report()
    assert rec.entry.tier == "gpu"                      # the clone on the device is this entry
    assert reg.object_records([clone]) == [rec]        # and a node passing the clone through names it
    reg.evict([rec], to="ram", defer_if_busy=False)
    assert not any(lm.model is clone and lm.model_loaded_memory() > 0 for lm in mm.current_loaded_models)
    assert rec.entry.tier == "ram"


@pytest.mark.comfy
def test_a_loaded_clone_that_dies_reads_as_on_the_device_until_comfyui_switches_to_its_parent(comfy_inproc):
    """ComfyUI holds the patcher it loaded weakly. When a loaded clone dies (the output cache let go of it,
    then the worker's gc.collect() right after the prompt, in its own thread), the reference reads None until
    ComfyUI's finalizer switches the record to the parent, while the weights stay loaded. A look in that moment
    (here: a weak-reference callback that runs just before ComfyUI's finalizer) sees the entry on the device,
    warns of nothing, and ComfyUI's switch then leaves it there. Without the seam reading the parent then, the
    entry read as in RAM: on 0.33 under load a settle read a Wan2.2 expert so and left the GPU budget exceeded."""
    import gc
    import weakref

    import comfy.model_management as mm
    seam = _module("nodes.comfy_seam")
    reg = _module("nodes.residency").REGISTRY
    cls = comfy_inproc.nodes.NODE_CLASS_MAPPINGS["LockNAceStep15Loader"]
    model = cls.execute(**_loader_kwargs(cls, "ace15-turbo")).args[0]
    [rec] = [r for r in reg.find(family="ace15") if r.obj is model]
    reg.evict([rec], to="ram", defer_if_busy=False)
    clone = model.clone()
    mm.load_models_gpu([clone])
    [record] = [lm for lm in mm.current_loaded_models if lm.model is clone]
    reg.report()
    assert rec.entry.tier == "gpu"
    seen = []

    def in_between(_ref):                     # registered last, so it runs before ComfyUI's finalizer
        with reg.lock:
            reg.refresh()
        seen.append((record.model, rec.entry.tier, [w for w in seam.warnings() if "current_loaded_models" in w]))

    probe = weakref.ref(clone, in_between)
    del clone
    gc.collect()
    assert probe() is None and len(seen) == 1, "the clone did not die"
    assert seen == [(None, "gpu", [])]        # the moment was real (ComfyUI's reference read None), the entry on the device
    assert record.model is model and record.model_loaded_memory() > 0   # and ComfyUI switched to the parent
    reg.report()
    assert rec.entry.tier == "gpu"
    reg.evict([rec], to="ram", defer_if_busy=False)
    assert rec.entry.tier == "ram"


@pytest.mark.comfy
def test_a_missing_internal_is_reported_not_raised(comfy_inproc, monkeypatch):
    """ComfyUI moves its internals: without model management's loaded-model list the report still
    answers, every model reads as in RAM, and the warning names what is missing once, in the report."""
    import comfy.model_management as mm
    seam = _module("nodes.comfy_seam")
    reg = _module("nodes.residency").REGISTRY
    cls = comfy_inproc.nodes.NODE_CLASS_MAPPINGS["LockNAceStep15Loader"]
    cls.execute(**_loader_kwargs(cls, "ace15-turbo"))
    monkeypatch.delattr(mm, "current_loaded_models")
    try:
        rep = reg.report()
        again = reg.report()
    finally:
        monkeypatch.undo()
        seam._warned.pop("comfy.model_management.current_loaded_models", None)
    [warning] = [w for w in rep["warnings"] if "current_loaded_models" in w]
    assert "every model reads as in RAM" in warning and seam.comfyui_version() in warning
    assert again["warnings"].count(warning) == 1
    assert {e["tier"] for e in rep["entries"]} <= {"ram", "dropped"}
    assert not [w for w in reg.report()["warnings"] if "current_loaded_models" in w]


@pytest.mark.comfy
def test_override_combos_come_from_comfyuis_cached_file_lists(comfy_inproc, monkeypatch):
    """The editor asks for every node's inputs often (object_info): the loaders' override combos are
    ComfyUI's cached file lists (GGUF files through ComfyUI-GGUF's folder names), not a walk of the
    model folders each time."""
    import os
    cls = comfy_inproc.nodes.NODE_CLASS_MAPPINGS["LockNFlux2Loader"]
    cls.define_schema()                                  # the first look fills ComfyUI's cache

    def walk(*a, **k):
        raise AssertionError("the model folders were walked again")
    monkeypatch.setattr(os, "walk", walk)
    combos = {i.id: i.options for i in cls.define_schema().inputs if i.id in ("diffusion_model", "vae")}
    assert {"flux2-dev-Q4_K_M.gguf", "flux2_dev_fp8mixed.safetensors"} <= set(combos["diffusion_model"])
    assert "flux2-vae.safetensors" in combos["vae"] and combos["vae"][0] == "(preset)"


@pytest.mark.comfy
@pytest.mark.parametrize("node,preset,depth,block", [
    ("LockNFlux2Loader", "flux2-klein-4b", 2, "DoubleStreamBlock"),
    ("LockNWan22Loader", "wan22-ti2v-5b", 2, "WanAttentionBlock"),
    ("LockNAceStep15Loader", "ace15-turbo", 3, "AceStepDiTLayer"),
])
def test_training_checkpoints_the_blocks_one_at_a_time(comfy_inproc, node, preset, depth, block):
    """Core's trainer checkpoints the modules at checkpoint_depth, and its default 1 is the whole model (no memory
    saved: ACE-Step 1.5 at full size +9.2 GB, as without checkpointing). The seam gives it the depth of the
    model's blocks, which core's own rule then finds one by one; the weights alive at once are one unit's."""
    seam = _module("nodes.comfy_seam")
    trainer = [m for n, m in sys.modules.items() if n.endswith("nodes_train") and hasattr(m, "find_modules_at_depth")]
    assert trainer, "comfy_extras/nodes_train.py is not loaded"
    cls = comfy_inproc.nodes.NODE_CLASS_MAPPINGS[node]
    model = cls.execute(**_loader_kwargs(cls, preset)).args[0]
    dm = model.model.diffusion_model
    assert trainer[0].find_modules_at_depth(dm, depth=1) == [dm]          # core's default: one unit
    got = seam.checkpoint_depth(model)
    assert got == depth
    units = trainer[0].find_modules_at_depth(dm, depth=got)
    blocks = [m for m in dm.modules() if type(m).__name__ == block]
    assert blocks and all(any(u is b for u in units) for b in blocks)
    total, alive = seam.checkpoint_weights(model, got)
    assert 0 < alive < total
