"""Bad input on every surface, one table row per case (issue 16): workflow files given to the client,
`--set` values, LockN's HTTP routes, catalog files, and broken model files given to the loaders.

Each row names the words the error must contain: the thing (file, value, id, widget) and the fix.
Each test also checks that nothing happened: no prompt queued, no output written, the residency
registry unchanged, no model loaded, and the server still serving. A new case is one line in a table.

The workflow-file and catalog tables run without a server; the rest use the session `comfy_server`
(its extra model folder `bad_models` holds the broken files, see conftest.py).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lockn_gen import catalog, cli
from lockn_gen import workflow as W
from lockn_gen.client import prepare
from lockn_testing import graphs
from lockn_testing.harness.server import PromptError

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
OBJECT_INFO = json.loads((FIXTURES / "object_info.json").read_text())
FIX = "export it again from the editor"        # the fix of a file that is no workflow
MB = 1_000_000


# ---- 1. workflow files ------------------------------------------------------------------------------
def text(name, s):
    return lambda d: _put(d / name, s.encode())


def raw(name, b):
    return lambda d: _put(d / name, b)


def js(name, obj):
    return lambda d: _put(d / name, json.dumps(obj).encode())


def sparse(name, size):            # a file of `size` bytes that takes no disk space
    def make(d):
        with open(d / name, "wb") as f:
            f.write(b'{"nodes": [')
            f.truncate(size)
        return d / name
    return make


def folder(name):
    return lambda d: (d / name).mkdir() or d / name


def absent(name):
    return lambda d: d / name


def _put(path, data):
    path.write_bytes(data)
    return path


SAVE = {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "bad/x"}}
VAE = {"class_type": "VAELoader", "inputs": {"vae_name": "flux2-vae.safetensors"}}


def ui_save(link, links=(), extra=()):
    """An editor-format file: a SaveImage whose images input has link `link`."""
    return {"nodes": [{"id": 6, "type": "SaveImage", "mode": 0, "inputs": [{"name": "images", "type": "IMAGE", "link": link}],
                       "outputs": [], "widgets_values": ["bad/x"]}, *extra], "links": list(links), "version": 0.4}


REROUTE_LOOP = ui_save(3, [[1, 1, 0, 2, 0, "*"], [2, 2, 0, 1, 0, "*"], [3, 2, 0, 6, 0, "IMAGE"]], [
    {"id": 1, "type": "Reroute", "inputs": [{"name": "", "type": "*", "link": 2}], "outputs": [{"name": "", "type": "*", "links": [1]}]},
    {"id": 2, "type": "Reroute", "inputs": [{"name": "", "type": "*", "link": 1}], "outputs": [{"name": "", "type": "*", "links": [2, 3]}]}])
SELF_SUBGRAPH = {"nodes": [{"id": 1, "type": "sg-1", "inputs": [], "outputs": []}], "links": [], "definitions": {"subgraphs": [
    {"id": "sg-1", "name": "Loop", "inputs": [], "outputs": [], "links": [], "nodes": [{"id": 2, "type": "sg-1", "inputs": [], "outputs": []}]}]}}
API_CYCLE = {"1": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["2", 0], "guidance": 3.0}},
             "2": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["1", 0], "guidance": 3.0}},
             "3": {"class_type": "VAEDecode", "inputs": {"samples": ["1", 0], "vae": ["4", 0]}}, "4": VAE,
             "5": {**SAVE, "inputs": {**SAVE["inputs"], "images": ["3", 0]}}}

# (id, make the file in a folder, words the error must contain)
WORKFLOW_FILES = [
    ("malformed-json", text("flow.json", '{"nodes": [1, 2,'), ["flow.json", "not valid JSON at line 1, column 17", FIX]),
    ("truncated-json", text("cut.json", '{"1": {"class_type": "SaveImage",\n "inputs": {'), ["cut.json", "not valid JSON at line 2", FIX]),
    ("empty-file", text("empty.json", ""), ["empty.json", "the file is empty (0 bytes)", FIX]),
    ("blank-file", text("blank.json", " \n\n "), ["blank.json", "not valid JSON at line 3", FIX]),
    ("not-utf8", raw("latin1.json", b'{"1": {"class_type": "caf\xe9"}}'), ["latin1.json", "not UTF-8 text", FIX]),
    ("a-list", js("list.json", [1, 2, 3]), ["list.json: not a ComfyUI workflow", "Workflow > Export"]),
    ("a-string", js("str.json", "KSampler"), ["str.json: not a ComfyUI workflow", "Workflow > Export"]),
    ("settings-not-workflow", js("settings.json", {"Comfy.Theme": "dark"}), ["settings.json: not a ComfyUI workflow", "Export (API)"]),
    ("empty-object", js("none.json", {}), ["none.json: not a ComfyUI workflow", "Workflow > Export"]),
    ("a-directory", folder("flows.json"), ["flows.json", "is a directory, not a workflow file", "give the path of a .json file"]),
    ("missing-file", absent("nope.json"), ["workflow file not found", "nope.json", "check the path"]),
    ("50-MB-file", sparse("huge.json", 50 * MB), ["huge.json", "the file is 50.0 MB", "20 MB at most", FIX]),
    ("unknown-node-api", js("unknown.json", {"1": {"class_type": "NoSuchNode", "inputs": {}}, "2": SAVE}),
     ["node 1 (NoSuchNode)", "does not know the node type 'NoSuchNode'", "custom node pack"]),
    ("unknown-node-ui-pack", js("florence.json", ui_save(None, extra=[{"id": 1, "type": "Florence2Run", "inputs": [], "outputs": [],
                                                                         "properties": {"cnr_id": "comfyui-florence2"}}])),
     ["Florence2Run", "install the custom node pack comfyui-florence2 on the server and restart it"]),
    ("unknown-node-known-prefix", js("vhs.json", {"1": {"class_type": "VHS_VideoCombine", "inputs": {}}, "2": SAVE}),
     ["'VHS_VideoCombine'", "install the custom node pack ComfyUI-VideoHelperSuite"]),
    ("api-link-to-missing-node", js("dangling.json", {"2": {**SAVE, "inputs": {**SAVE["inputs"], "images": ["77", 0]}}}),
     ["input 'images' is connected to node 77, which is not in the workflow", "connect it to one of the workflow's nodes"]),
    ("api-link-to-missing-output", js("slot.json", {"4": VAE, "3": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 3], "vae": ["4", 0]}}}),
     ["input 'samples' is connected to output 3 of node 4 (VAELoader), which has 1 output", "connect it to output 0"]),
    ("ui-link-to-missing-node", js("ui_dangling.json", ui_save(5, [[5, 99, 0, 6, 0, "IMAGE"]])),
     ["input 'images' is linked to node 99 (link 5)", "reconnect the input in the editor"]),
    ("ui-link-id-missing", js("ui_nolink.json", ui_save(5)), ["link 5, which is not in the workflow's list of links", "reconnect the input"]),
    ("api-cycle", js("cycle.json", API_CYCLE), ["the links go in a circle: node 2 (FluxGuidance) -> node 1 (FluxGuidance) -> node 2", "remove one of these links"]),
    ("ui-reroute-cycle", js("loop.json", REROUTE_LOOP), ["circular link", "remove one of them in the editor"]),
    ("ui-subgraph-in-itself", js("selfsub.json", SELF_SUBGRAPH), ["subgraph 'Loop' contains itself", "remove that inner instance"]),
    ("ui-nodes-not-objects", js("junk_nodes.json", {"nodes": [5, "x"], "links": []}), ["nodes[0] is 5, not a node object", "save it again"]),
    ("ui-malformed-link", js("junk_link.json", ui_save(5, [[5, "a", "b", 6, "z"]])), ["link 5 is malformed", "save it again"]),
    ("api-inputs-not-object", js("junk_inputs.json", {"1": {"class_type": "SaveImage", "inputs": [1, 2]}}),
     ["node 1 (SaveImage): 'inputs' must be an object", "Export (API)"]),
    ("legacy-group-node", js("group.json", {"nodes": [{"id": 1, "type": "workflow>My group", "inputs": [], "outputs": []}], "links": []}),
     ["legacy group nodes", "convert them to subgraphs"]),
    ("no-output-node", js("nosave.json", {"4": VAE}), ["the workflow has no output node", "Save Image"]),
]


@pytest.mark.parametrize("make,words", [r[1:] for r in WORKFLOW_FILES], ids=[r[0] for r in WORKFLOW_FILES])
def test_bad_workflow_file_is_refused_before_anything(tmp_path, make, words):
    path = make(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    t0 = time.perf_counter()
    with pytest.raises(W.WorkflowError) as e:
        prepare([path], [], OBJECT_INFO)
    assert time.perf_counter() - t0 < 2.0                           # the 50 MB file too: refused, not parsed
    msg = str(e.value)
    for w in words:
        assert w in msg, msg
    assert "Traceback" not in msg and len(msg) < 2000
    assert sorted(p.name for p in tmp_path.iterdir()) == before    # nothing written


# ---- 4. catalog files (LOCKN_GEN_CATALOG) -----------------------------------------------------------
F = '[files."x.safetensors"]\nfamily = "flux2"\nkind = "vae"\nfolder = "vae"\nformat = "safetensors"\nquant = "bf16"\n'
P = '[presets.mine]\nfamily = "flux2"\n'
GOOD = 'diffusion_model = "flux2-dev-Q8_0.gguf", text_encoder = "mistral_3_small_flux2_fp8.safetensors"'

# (id, the TOML text, words the error must contain besides the file's path)
CATALOGS = [
    ("toml-syntax", 'a = 1\n[presets.mine\nfamily = "flux2"\n', ["not valid TOML", "at line 2", "fix the file or remove it"]),
    ("duplicate-preset-id", P + 'components = {}\n' + P + 'components = {}\n', ["Cannot declare", "twice", "at line 4", "fix the file"]),
    ("duplicate-key", P + 'family = "wan22"\ncomponents = {}\n', ["Cannot overwrite a value", "at line 3", "fix the file"]),
    ("not-utf8", '[presets.caf\xe9]\n'.encode("latin-1"), ["not UTF-8 text", "save it as UTF-8"]),
    ("size-a-string", F + 'size = "9 GB"\n', ["file 'x.safetensors': size must be a whole number", "size = 9_430_000_000", "'9 GB'"]),
    ("size-negative", F + 'size = -5\n', ["size must be a whole number of at least 0", "-5"]),
    ("size-a-float", F + 'size = 1.5\n', ["size must be a whole number", "1.5"]),
    ("quality-a-string", P + 'quality = "high"\ncomponents = { vae = "flux2-vae.safetensors" }\n', ["preset 'mine': quality must be a whole number", "quality = 2"]),
    ("family-not-a-string", '[presets.mine]\nfamily = 2\ncomponents = {}\n', ["preset 'mine': family must be a string in quotes", 'family = "..."']),
    ("components-not-a-table", P + 'components = "flux2-vae.safetensors"\n', ["components must be a table", 'components = { vae = "file name" }']),
    ("component-not-a-name", P + 'components = { vae = 5 }\n', ["components.vae must be a file name in quotes", "not 5"]),
    ("files-not-a-table", 'files = 5\n', ["[files] must be a table", '[files."id"] headers']),
    ("file-entry-not-a-table", '[files]\n"x.safetensors" = 5\n', ["file 'x.safetensors' must be a table", '[files."x.safetensors"]']),
    ("file-lacks-fields", '[files."x.safetensors"]\nfamily = "flux2"\n', ["lacks kind, folder, size, format, quant", "every file needs"]),
    ("absolute-path", P + 'components = { vae = "/etc/passwd", ' + GOOD + ' }\n', ["'/etc/passwd' is an absolute path", "inside ComfyUI's model folders"]),
    ("dotdot-path", P + 'components = { vae = "../../secrets.safetensors", ' + GOOD + ' }\n', ["leaves the model folder", "inside ComfyUI's model folders"]),
    ("dotdot-file-name", '[files."../x.safetensors"]\nfamily = "flux2"\n', ["'../x.safetensors' leaves the model folder", "'..' is not allowed"]),
    ("dotdot-repo-path", F + 'size = 1\npath = "../../x.safetensors"\n', ["repo path '../../x.safetensors' leaves the model folder"]),
    ("unknown-family-preset", '[presets.mine]\nfamily = "sd15"\ncomponents = {}\n', ["preset 'mine' names unknown family 'sd15'", "known: flux2, wan22, ltx2, ace15, flux1, sd35, sdxl"]),
    ("unknown-family-file", F.replace('"flux2"', '"sd15"') + 'size = 1\n', ["file 'x.safetensors' names unknown family 'sd15'", "known: flux2"]),
    ("role-of-another-family", '[presets.mine]\nfamily = "wan22"\ncomponents = { lm = "a.safetensors" }\n', ["role 'lm' is not a Wan2.2 role", "high_noise, low_noise"]),
    ("unknown-folder", F.replace('"vae"\nformat', '"models"\nformat') + 'size = 1\n', ["folder 'models' is not a ComfyUI model folder", "diffusion_models"]),
    ("unknown-format", F.replace('"safetensors"\nquant', '"ckpt"\nquant') + 'size = 1\n', ["format 'ckpt' is not one of", "'gguf'"]),
    ("bad-sha256", F + 'size = 1\nsha256 = "abc"\n', ["sha256 'abc' is not 64 hex digits"]),
    ("lora-preset-of-no-lora", '[loras.mine]\nfamily = "flux2"\nfiles = { model = "flux2-vae.safetensors" }\n',
     ["'flux2-vae.safetensors' is not a LoRA file of the catalog", 'add a [files] entry with kind = "lora"']),
]


@pytest.mark.parametrize("content,words", [r[1:] for r in CATALOGS], ids=[r[0] for r in CATALOGS])
def test_bad_user_catalog_names_the_file_the_entry_and_the_fix(tmp_path, monkeypatch, content, words):
    path = tmp_path / "my_catalog.toml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    monkeypatch.setenv("LOCKN_GEN_CATALOG", str(path))              # as users give it
    with pytest.raises(catalog.CatalogError) as e:
        catalog.load()
    msg = str(e.value)
    assert msg.startswith(str(path)), msg
    for w in words:
        assert w in msg, msg
    assert [p.name for p in tmp_path.iterdir()] == ["my_catalog.toml"]


# ---- the server-side tables -------------------------------------------------------------------------
SERVER_CATALOG = """# written by tests/test_bad_input.py while it runs
[presets."bad-input-directory"]
family = "flux2"
components = { diffusion_model = "flux2_dev_a_directory.safetensors", text_encoder = "mistral_3_small_flux2_fp8.safetensors", vae = "flux2-vae.safetensors" }

[files."flux2_dev_zero_bytes.safetensors"]
family = "flux2"
kind = "diffusion_model"
repo = "lockn-test/broken-flux2"
folder = "diffusion_models"
size = 1000
format = "safetensors"
quant = "bf16"
"""


@pytest.fixture(scope="module")
def server(comfy_server):
    """The session server with a user catalog (its user folder) for the rows that need a preset, one good
    prompt run first (so the registry has entries to refuse changes to); cleaned up afterwards."""
    user_catalog = comfy_server.base / "user" / "lockn-gen" / "catalog.toml"
    user_catalog.parent.mkdir(parents=True, exist_ok=True)
    user_catalog.write_text(SERVER_CATALOG)
    comfy_server.run(load_and_save("bad/first"))
    yield comfy_server
    user_catalog.unlink()
    comfy_server.post("/free", {"unload_models": True, "free_memory": True})
    time.sleep(1.0)                                 # the server applies the flags when its queue wakes up


def load_and_save(prefix: str) -> dict:
    """A cheap real prompt: a LockN loader (its report as the output) and a small image saved."""
    return {"12": graphs.lockn_loader("flux2", "flux2-dev-q8_0"), "R": {"class_type": "LockNResidencyReport", "inputs": {"trigger": ["12", 0]}},
            "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}}}


def registry(srv) -> list:
    return sorted((e["id"], e["tier"], e["pinned"], e["loads_from_disk"]) for e in srv.get("/lockn/residency")["entries"])


def state(srv) -> tuple:
    """What a refused request must leave as it was: history, queue, output files, the registry."""
    q = srv.get("/queue")
    outputs = sorted(str(p.relative_to(srv.base)) for p in (srv.base / "output").rglob("*") if p.is_file())
    return sorted(srv.get("/history")), len(q["queue_running"]), len(q["queue_pending"]), outputs, registry(srv)


def still_serving(srv):
    assert srv.get("/system_stats")["system"]
    assert srv.get("/object_info/SaveImage")


# ---- 1 + 2. the CLI against the server: the same files, and bad --set values ------------------------
# the rows also run through `lockn-gen run` against the server (each run fetches /object_info, ~1 s on
# this box, so a sample: the file-level refusals, and one of each kind of graph problem)
CLI_ROWS = {"malformed-json", "empty-file", "a-directory", "missing-file", "50-MB-file", "settings-not-workflow",
            "unknown-node-api", "ui-link-to-missing-node", "api-cycle", "ui-nodes-not-objects"}


@pytest.mark.comfy
@pytest.mark.parametrize("make,words", [r[1:] for r in WORKFLOW_FILES if r[0] in CLI_ROWS],
                         ids=[r[0] for r in WORKFLOW_FILES if r[0] in CLI_ROWS])
def test_cli_refuses_bad_workflow_file_and_queues_nothing(server, tmp_path, capsys, make, words):
    path = make(tmp_path)
    before = state(server)
    rc = cli.main(["run", str(path), "--server", server.url, "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "nothing was queued" in err, err
    for w in words:
        assert w in err, err
    assert "Traceback" not in err
    assert state(server) == before and not (tmp_path / "out").exists()


def titled(**titles):
    g = graphs.flux2_t2i(prefix="bad/set")
    for nid, title in titles.items():
        g[nid.lstrip("n")]["_meta"] = {"title": title}
    return g


# (id, --set value, the graph's node titles, words the error must contain)
SETS = [
    ("wrong-type", "Flux2Scheduler.steps=fast", {}, ["node 48 (Flux2Scheduler) input 'steps' expects a whole number between 1 and 4096", "'fast'"]),
    ("not-whole", "Flux2Scheduler.steps=2.5", {}, ["expects a whole number between 1 and 4096", "'2.5'"]),
    ("empty-value", "Flux2Scheduler.steps=", {}, ["expects a whole number between 1 and 4096", "got ''"]),
    ("out-of-range-low", "Flux2Scheduler.steps=0", {}, ["input 'steps' expects a whole number between 1 and 4096", "got 0"]),
    ("out-of-range-high", "EmptyFlux2LatentImage.width=99999", {}, ["input 'width' expects a whole number between 16 and 16384", "got 99999"]),
    ("not-a-number", "FluxGuidance.guidance=nan", {}, ["input 'guidance' expects a number between 0.0 and 100.0", "'nan'"]),
    ("unknown-title", "Nope.steps=3", {}, ["no node is titled 'Nope'", "Titles in this workflow", "Flux2Scheduler"]),
    ("unknown-widget", "Flux2Scheduler.stepz=3", {}, ["node 48 (Flux2Scheduler) has no input 'stepz'", "Its inputs: steps, width, height"]),
    ("no-equals", "Flux2Scheduler.steps", {}, ["--set 'Flux2Scheduler.steps': expected TITLE.INPUT=VALUE", 'e.g. --set "KSampler.steps=20"']),
    ("no-dot", "steps=3", {}, ["--set 'steps=3': expected TITLE.INPUT=VALUE"]),
    ("unknown-choice", "KSamplerSelect.sampler_name=eulerx", {}, ["'eulerx' is not available on the server", "'euler'"]),
    ("missing-model-file", "UNETLoader.unet_name=flux2_dev_bf16.safetensors", {}, ["'flux2_dev_bf16.safetensors' is not available", "flux2_dev_fp8mixed.safetensors"]),
    ("a-link-input", "VAEDecode.vae=3", {}, ["input 'vae' takes a connection from another node (VAE), not a value"]),
    ("ambiguous-title", "Size.width=48", {"n47": "Size", "n48": "Size"}, ["'Size' names 2 nodes (47, 48)", 'use the node id instead, e.g. --set "47.width=..."']),
]


@pytest.mark.comfy
@pytest.mark.parametrize("setting,titles,words", [r[1:] for r in SETS], ids=[r[0] for r in SETS])
def test_cli_refuses_bad_set_and_queues_nothing(server, tmp_path, capsys, setting, titles, words):
    wf = js("flux2.json", titled(**titles))(tmp_path)
    before = state(server)
    rc = cli.main(["run", str(wf), "--server", server.url, "--out", str(tmp_path / "out"), "--no-progress",
                   "--set", "Flux2Scheduler.steps=2", "--set", setting])
    err = capsys.readouterr().err
    assert rc == 2 and "nothing was queued" in err, err
    for w in words:
        assert w in err, err
    assert state(server) == before and not (tmp_path / "out").exists()


@pytest.mark.comfy
def test_cli_subprocess_refuses_a_50_mb_file_quickly(server, tmp_path):
    path = sparse("huge.json", 50 * MB)(tmp_path)
    before = state(server)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(REPO / "lockn-gen"), "run", str(path), "--server", server.url,
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and time.perf_counter() - t0 < 20
    assert "huge.json" in proc.stderr and "50.0 MB" in proc.stderr and "20 MB at most" in proc.stderr
    assert "Traceback" not in proc.stderr and state(server) == before


# ---- 3. LockN's routes ----------------------------------------------------------------------------
EVICT, PIN, PRE = "/lockn/residency/evict", "/lockn/residency/pin", "/lockn/preflight"
ANY_ID = "<an id of the registry>"       # replaced by a real entry's id
BIG = {"id": "x" * (2 * MB)}             # 2 MB of JSON
UNET = {"1": {"class_type": "UNETLoader", "inputs": {"unet_name": "../../etc/passwd", "weight_dtype": "default"}}}
LOADER = {"12": graphs.lockn_loader("flux2", "no-such-preset")}

# (id, method, path, body (bytes as sent, else JSON), status, words the error must contain)
ROUTES = [
    ("evict-malformed-json", "POST", EVICT, b"{not json", 400, ["not valid JSON", "takes a JSON object, e.g. {\"id\""]),
    ("evict-empty-body", "POST", EVICT, b"", 400, ["not valid JSON", "POST /lockn/residency/evict takes a JSON object"]),
    ("evict-list", "POST", EVICT, [1, 2], 400, ["must be a JSON object, not a list", "{\"family\": \"flux2\"}"]),
    ("evict-string", "POST", EVICT, "flux2", 400, ["must be a JSON object, not a str", "{\"family\": \"flux2\"}"]),
    ("evict-id-number", "POST", EVICT, {"id": 5}, 400, ["'id' must be a string or a list of strings", "GET /lockn/residency"]),
    ("evict-unknown-id", "POST", EVICT, {"id": "no-such-id"}, 400, ["unknown residency id(s): 'no-such-id'", "GET /lockn/residency lists them"]),
    ("evict-unknown-family", "POST", EVICT, {"family": "sd15"}, 400, ["unknown family 'sd15'", "use all, flux2, wan22, ltx2, ace15, flux1"]),
    ("evict-family-number", "POST", EVICT, {"family": 5}, 400, ["unknown family 5", "use all, flux2"]),
    ("evict-unknown-to", "POST", EVICT, {"id": ANY_ID, "to": "disk"}, 400, ["'to' must be 'dropped' or 'ram', not 'disk'"]),
    ("evict-name-number", "POST", EVICT, {"name": 5}, 400, ["'name' must be a string", "e.g. \"flux2-vae\""]),
    ("evict-include-pinned-text", "POST", EVICT, {"family": "all", "include_pinned": "yes"}, 400, ["'include_pinned' must be true or false, not 'yes'"]),
    ("evict-nothing-named", "POST", EVICT, {}, 400, ["say what to evict: 'id', 'family' or 'name'"]),
    ("evict-unknown-field", "POST", EVICT, {"famly": "flux2"}, 400, ["unknown field 'famly'", "takes: id, family, name, to, include_pinned"]),
    ("evict-2-MB", "POST", EVICT, BIG, 413, ["the request body is 2.0 MB, more than 1 MB", "send only what it needs"]),
    ("pin-malformed-json", "POST", PIN, b"[1,", 400, ["not valid JSON", "{\"id\": \"<id from GET /lockn/residency>\", \"pinned\": true}"]),
    ("pin-no-id", "POST", PIN, {"pinned": True}, 400, ["'id' is required", "GET /lockn/residency lists"]),
    ("pin-unknown-id", "POST", PIN, {"id": ["no-such-id"], "pinned": True}, 400, ["unknown residency id(s): 'no-such-id'", "GET /lockn/residency lists them"]),
    ("pin-pinned-text", "POST", PIN, {"id": ANY_ID, "pinned": "yes"}, 400, ["'pinned' must be true or false, not 'yes'"]),
    ("pin-unknown-field", "POST", PIN, {"id": ANY_ID, "pin": True}, 400, ["unknown field 'pin'", "takes: id, pinned"]),
    ("pin-2-MB", "POST", PIN, BIG, 413, ["2.0 MB, more than 1 MB", "POST /lockn/residency/pin does not take"]),
    ("preflight-malformed-json", "POST", PRE, b'{"1": ', 400, ["not valid JSON", "a workflow (API or UI format)"]),
    ("preflight-list", "POST", PRE, [{"class_type": "UNETLoader"}], 400, ["must be a JSON object, not a list", "a workflow (API or UI format)"]),
    ("preflight-not-a-workflow", "POST", PRE, {"hello": 1}, 400, ["not a ComfyUI workflow", "Workflow > Export"]),
    ("preflight-junk-nodes", "POST", PRE, {"nodes": [5]}, 400, ["nodes[0] is 5, not a node object", "save it again"]),
    ("preflight-unknown-preset", "POST", PRE, LOADER, 400, ["unknown preset 'no-such-preset'", "known presets: ", "flux2-dev-q8_0"]),
    ("preflight-path-escape", "POST", PRE, UNET, 400, ["'../../etc/passwd' leaves the model folder", "'..' is not allowed"]),
    ("preflight-25-MB", "POST", PRE, {"x": "y" * (25 * MB)}, 413, ["25.0 MB, more than 20 MB", "POST /lockn/preflight does not take"]),
    ("preflight-get-nothing", "GET", PRE, None, 400, ["give ?preset=ID (repeatable) or ?workflow=FILE, or POST a workflow"]),
    ("preflight-get-unknown-preset", "GET", PRE + "?preset=sdxl-turbo", None, 400, ["unknown preset 'sdxl-turbo'", "known presets: ", "ace15-turbo"]),
    ("preflight-get-unknown-workflow", "GET", PRE + "?workflow=nope.json", None, 400, ["no workflow 'nope.json'", "give one of: ", "chain_fast.json"]),
    ("preflight-get-path-escape", "GET", PRE + "?workflow=../../etc/passwd", None, 400, ["leaves the pack's workflows folder", "'..' is not allowed"]),
]


@pytest.mark.comfy
@pytest.mark.parametrize("method,path,body,status,words", [r[1:] for r in ROUTES], ids=[r[0] for r in ROUTES])
def test_route_refuses_bad_request_and_changes_nothing(server, method, path, body, status, words):
    before = state(server)
    assert before[-1], "the registry should hold the first prompt's models"
    if isinstance(body, dict) and body.get("id") == ANY_ID:
        body = {**body, "id": before[-1][0][0]}
    data = None if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    got, resp = server.request(method, path, data)
    assert got == status, (got, resp)
    assert isinstance(resp, dict) and isinstance(resp.get("error"), str), resp
    for w in words:
        assert w in resp["error"], resp["error"]
    assert len(resp["error"]) < 2000                                # a huge body is not echoed back
    assert state(server) == before
    still_serving(server)


# ---- 5. broken model files given to the loaders -----------------------------------------------------
PULL = "lockn-gen models pull"
WRONG_KIND = "Choose a Flux.2 diffusion model file instead"


def flux(**overrides):
    return graphs.flux2_t2i(loader="lockn", preset="flux2-dev-q8_0", overrides=overrides, prefix="bad/model")


# (id, the prompt, words the loader's error must contain: the file's name, what is wrong, the fix)
MODEL_FILES = [
    ("zero-bytes-safetensors", flux(diffusion_model="flux2_dev_zero_bytes.safetensors"),
     ["flux2_dev_zero_bytes.safetensors: is empty (0 bytes)", "download it again", "Download it again with:",
      "--file flux2_dev_zero_bytes.safetensors"]),
    ("zero-bytes-gguf", flux(diffusion_model="flux2-dev-zero-bytes.gguf"), ["flux2-dev-zero-bytes.gguf: is empty (0 bytes)", PULL]),
    ("truncated-safetensors", flux(diffusion_model="flux2_dev_interrupted.safetensors"),
     ["flux2_dev_interrupted.safetensors: is truncated: its header describes", "an interrupted download?", PULL]),
    ("truncated-gguf", flux(diffusion_model="flux2-dev-Q8_0-interrupted.gguf"),
     ["flux2-dev-Q8_0-interrupted.gguf: is truncated: its header describes", PULL, "move it out of ComfyUI's model folders"]),
    ("gguf-cut-in-header", flux(diffusion_model="flux2-dev-cut-in-header.gguf"),
     ["flux2-dev-cut-in-header.gguf: is truncated inside its GGUF header", PULL]),
    ("corrupt-safetensors-header", flux(diffusion_model="flux2_dev_corrupt.safetensors"),
     ["flux2_dev_corrupt.safetensors: has a corrupt safetensors header", PULL]),
    ("gguf-bad-magic", flux(diffusion_model="flux2-dev-bad-magic.gguf"),
     ["flux2-dev-bad-magic.gguf: is named .gguf but does not start with the GGUF magic bytes", PULL]),
    ("gguf-absurd-tensor-count", flux(diffusion_model="flux2-dev-absurd-count.gguf"),
     ["flux2-dev-absurd-count.gguf: has a corrupt GGUF header", "1099511627776 tensors", PULL]),
    ("wrong-family-gguf", flux(diffusion_model="Wan2.2-I2V-A14B-HighNoise-Q4_K_M.gguf"),
     ["Wan2.2-I2V-A14B-HighNoise-Q4_K_M.gguf is a Wan image-to-video (A14B expert) diffusion model", "of a Flux.2 model", WRONG_KIND]),
    ("wrong-family-safetensors", graphs.wan22_i2v(loader="lockn", overrides={"high_noise": "flux2_dev_fp8mixed.safetensors"}),
     ["flux2_dev_fp8mixed.safetensors is a Flux.2 diffusion model", "high noise of a Wan2.2 model", "Choose a Wan2.2 high noise file"]),
    ("vae-as-diffusion-model", flux(diffusion_model="flux2-vae-in-the-wrong-folder.safetensors"),
     ["flux2-vae-in-the-wrong-folder.safetensors is a Flux.2 VAE", "given as the diffusion model", WRONG_KIND]),
    ("diffusion-model-as-vae", flux(vae="flux2-dit-as-vae.safetensors"),
     ["flux2-dit-as-vae.safetensors is a Flux.2 diffusion model", "given as the vae", "Choose a Flux.2 vae file instead"]),
    ("broken-symlink", flux(diffusion_model="flux2_dev_broken_link.safetensors"),
     ["flux2_dev_broken_link.safetensors: is a symbolic link to", "which does not exist", "Point the link at the model file", PULL]),
    ("directory-with-a-model-name", graphs.flux2_t2i(loader="lockn", preset="bad-input-directory", prefix="bad/model"),
     ["flux2_dev_a_directory.safetensors: is a directory, not a model file", "Move the model file itself there", PULL]),
    ("missing-files-of-a-preset", graphs.flux2_t2i(loader="lockn", preset="my-flux2-klein-9b", prefix="bad/model"),
     ["flux-2-klein-9b-fp8.safetensors", "missing 2 of its 3 files", PULL, "--file qwen_3_8b.safetensors"]),
]


@pytest.mark.comfy
@pytest.mark.parametrize("prompt,words", [r[1:] for r in MODEL_FILES], ids=[r[0] for r in MODEL_FILES])
def test_broken_model_file_fails_before_anything_loads(server, prompt, words):
    before = state(server)
    with pytest.raises(PromptError) as e:
        server.run(prompt, timeout=120)
    err = e.value.detail
    msg = err["exception_message"]
    assert err["node_type"].startswith("LockN"), err
    for w in words:
        assert w in msg, msg
    assert "Traceback" not in msg
    after = state(server)
    assert after[1:] == before[1:]              # nothing queued or written, nothing loaded (the failed prompt is in history)
    still_serving(server)


@pytest.mark.comfy
def test_the_server_runs_the_next_prompt_after_all_that(server):
    res = server.run(load_and_save("bad/after"))
    assert "R" in res.executed and not res.error              # the loader's report and the image saver ran
    (png,) = server.output_files(res, "2")
    assert png.is_file() and png.name.startswith("after_")


@pytest.mark.comfy
def test_a_broken_user_catalog_keeps_the_nodes_and_says_what_to_fix(server):
    """A user catalog in ComfyUI's user folder that does not parse: the LockN nodes stay in /object_info
    (the menus show the built-in presets), a LockN loader that runs stops with the file, the line and the
    fix, GET /lockn/catalog says the same, and with the file fixed everything works again."""
    user_catalog = server.base / "user" / "lockn-gen" / "catalog.toml"
    good = user_catalog.read_text()
    user_catalog.write_text(good + "\n[presets.broken\nfamily = 'flux2'\n")
    try:
        info = server.get("/object_info")
        assert {"LockNFlux2Loader", "LockNFlux2LoRA", "LockNPresetPlanner"} <= set(info)
        presets = info["LockNFlux2Loader"]["input"]["required"]["preset"]
        assert "flux2-dev-q8_0" in (presets[1]["options"] if isinstance(presets[1], dict) and "options" in presets[1] else presets[0])
        with pytest.raises(PromptError) as e:
            server.run(load_and_save("bad/broken-catalog"), timeout=120)
        msg = e.value.detail["exception_message"]
        for w in (str(user_catalog), "not valid TOML", "line", "fix the file or remove it"):
            assert w in msg, msg
        status, body = server.request("GET", "/lockn/catalog")
        assert status == 500 and str(user_catalog) in body["error"] and "fix the file or remove it" in body["error"]
    finally:
        user_catalog.write_text(good)
    assert server.request("GET", "/lockn/catalog")[0] == 200
    assert server.run(load_and_save("bad/catalog-fixed")).outputs


@pytest.mark.parametrize("item,where", [
    ({"filename": "a.mp4", "subfolder": "LockN"}, "LockN/a.mp4"),
    ({"filename": "evil.bat", "subfolder": "\\Users\\me\\AppData\\Roaming\\Microsoft\\Windows\\Start Menu\\Programs\\Startup"}, "evil.bat"),
    ({"filename": "x", "subfolder": "/etc"}, "x"),
    ({"filename": "x.png", "subfolder": "C:tmp"}, "x.png"),
    ({"filename": "../../x", "subfolder": "a/../../b"}, "x"),
    ({"filename": "a\\..\\b.png", "subfolder": ""}, "b.png"),
])
def test_a_servers_output_names_never_lead_outside_the_output_folder(tmp_path, item, where):
    """A hostile or broken server names the outputs the client downloads: they land inside --out."""
    from lockn_gen.client import safe_output_path
    assert safe_output_path(tmp_path / "out", item) == tmp_path / "out" / where


@pytest.mark.parametrize("name", [".", "..", "", "C:x"])
def test_an_output_without_a_usable_name_is_refused(tmp_path, name):
    from lockn_gen.client import ClientError, safe_output_path
    with pytest.raises(ClientError, match="no file name; nothing was saved"):
        safe_output_path(tmp_path / "out", {"filename": name, "subfolder": ""})
