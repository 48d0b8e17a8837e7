"""HTTP routes of LockN Gen, registered on ComfyUI's server at start-up.

GET  /lockn/residency           what is resident: entries, tiers, budgets, totals (JSON)
POST /lockn/residency/evict     {"id": ID | [IDs], "family": F, "name": TEXT, "to": "dropped" | "ram", "include_pinned": bool}
POST /lockn/residency/pin       {"id": ID | [IDs], "pinned": true | false}
GET  /lockn/preflight?preset=P[&preset=...][&workflow=FILE]
POST /lockn/preflight           a workflow (API or UI format) as the body
     -> what each preset or loader node of a workflow is missing, with the download command
GET  /lockn/catalog             families and presets with their files (JSON)
ComfyUI serves each under /api too (/api/lockn/residency, ...), as it does its own routes.

Bad requests (malformed JSON, a body that is no object, unknown fields, wrong types, unknown ids,
unknown families, file names that leave the model folders) get 400 with {"error": message naming the
field and the fix} and change nothing; a body over 1 MB (20 MB for a workflow) gets 413.
"""
from __future__ import annotations

import json
import logging
import os

from aiohttp import web

from ..lockn_gen import catalog as catalog_mod
from ..lockn_gen import workflow as workflow_mod
from ..lockn_gen.catalog import check_relative_name
from ..lockn_gen.hub import download_command
from ..lockn_gen.preflight import LockNError, size_on_disk
from . import comfy_models as cm
from . import comfy_seam as seam
from .loaders import LOADER_NODES, get_catalog, resolve_preset
from .residency import REGISTRY

log = logging.getLogger("lockn_gen.routes")
WORKFLOWS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "workflows")
# core and ComfyUI-GGUF loaders: input -> model folder
CORE_LOADERS = {"UNETLoader": {"unet_name": "diffusion_models"}, "UnetLoaderGGUF": {"unet_name": "diffusion_models"},
                "CLIPLoader": {"clip_name": "text_encoders"}, "CLIPLoaderGGUF": {"clip_name": "text_encoders"},
                "DualCLIPLoader": {"clip_name1": "text_encoders", "clip_name2": "text_encoders"},
                "VAELoader": {"vae_name": "vae"}, "CheckpointLoaderSimple": {"ckpt_name": "checkpoints"},
                "LTXVAudioVAELoader": {"ckpt_name": "checkpoints"},
                "LTXAVTextEncoderLoader": {"text_encoder": "text_encoders", "ckpt_name": "checkpoints"}}


# the most a request body may hold: the residency routes take a few ids, preflight takes a workflow
MAX_BODY = 1_000_000
MAX_WORKFLOW_BODY = 20_000_000
EVICT_FIELDS = ("id", "family", "name", "to", "include_pinned")
PIN_FIELDS = ("id", "pinned")


class _TooLarge(LockNError):
    """The request body is over the route's limit (answered with 413)."""


def _bad(message: str, status: int = 400):
    return web.json_response({"error": message}, status=status)


def _short(value, n: int = 60) -> str:
    """repr of a value from a request, clipped, so an error never echoes a huge body back."""
    r = repr(value)
    return r if len(r) <= n else r[: n - 5] + "...'" + f" ({len(r)} characters)"


async def _json_body(request, example: str, limit: int = MAX_BODY):
    """The JSON object of a request body; LockNError (or _TooLarge) naming what is wrong and what to send."""
    what = f"{request.method} {request.path}"
    too_big = (f"the request body is more than {limit / 1e6:g} MB, which {what} does not take; send "
               f"only what it needs, e.g. {example}")
    if request.content_length is not None and request.content_length > limit:
        raise _TooLarge(too_big.replace("more than", f"{request.content_length / 1e6:.1f} MB, more than"))
    raw = bytearray()
    while len(raw) <= limit:
        chunk = await request.content.read(65536)
        if not chunk:
            break
        raw += chunk
    if len(raw) > limit:
        raise _TooLarge(too_big)
    try:
        body = json.loads(bytes(raw).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise LockNError(f"the request body is not valid JSON; {what} takes a JSON object, e.g. {example}") from None
    if not isinstance(body, dict):
        raise LockNError(f"the request body must be a JSON object, not a {type(body).__name__}; {what} takes "
                         f"e.g. {example}")
    return body


def _known_fields(body: dict, fields: tuple, what: str) -> None:
    unknown = [k for k in body if k not in fields]
    if unknown:
        raise LockNError(f"unknown field {_short(unknown[0])} in the request body; {what} takes: {', '.join(fields)}")


def _ids(body) -> list[str]:
    raw = body.get("id")
    if raw is None:
        return []
    ids = raw if isinstance(raw, list) else [raw]
    if not all(isinstance(i, str) for i in ids):
        raise LockNError("'id' must be a string or a list of strings (the ids GET /lockn/residency lists), "
                         f"not {_short(raw)}")
    unknown = [i for i in ids if i not in REGISTRY.records]
    if unknown:
        shown = ", ".join(_short(i) for i in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise LockNError(f"unknown residency id(s): {shown}; GET /lockn/residency lists them")
    return ids


# ---- preflight -----------------------------------------------------------------------------------
def _loader_inputs(node: dict, schema_inputs: list[str]) -> dict:
    """Inputs of a loader node in API ({inputs}) or UI ({widgets_values}) format."""
    if "inputs" in node and isinstance(node["inputs"], dict) and "class_type" in node:
        return node["inputs"]
    values = node.get("widgets_values") or []
    return dict(zip(schema_inputs, values)) if isinstance(values, list) else dict(values)


def workflow_preflight(workflow: dict) -> dict:
    """What the loader nodes of a workflow (API or UI format) are missing."""
    if "nodes" in workflow and isinstance(workflow["nodes"], list):
        nodes = [(str(n.get("id")), n.get("type"), n) for n in workflow["nodes"]]
        for sg in (workflow.get("definitions") or {}).get("subgraphs", []):
            nodes += [(f"{sg.get('id')}:{n.get('id')}", n.get("type"), n) for n in sg.get("nodes", [])]
    else:
        nodes = [(nid, n.get("class_type"), n) for nid, n in workflow.items() if isinstance(n, dict)]
    schema = {cls.GET_SCHEMA().node_id: [i.id for i in cls.GET_SCHEMA().inputs] for cls in LOADER_NODES}
    family_of_node = {f.node: f.id for f in catalog_mod.builtin().families.values()}
    results, missing = [], []
    for nid, ctype, node in nodes:
        if ctype in family_of_node:
            inputs = _loader_inputs(node, schema[ctype])
            overrides = {k: v for k, v in inputs.items() if k not in ("preset", "weight_dtype") and isinstance(v, str)}
            _, res = resolve_preset(family_of_node[ctype], inputs.get("preset"), overrides)
            d = res.to_dict(download_command)
            d["node"] = nid
            results.append(d)
            missing += d["missing"]
        elif ctype in CORE_LOADERS and "inputs" in node:
            for inp, folder in CORE_LOADERS[ctype].items():
                name = node["inputs"].get(inp)
                if isinstance(name, str):
                    check_relative_name(name)
                    path = cm.find_file(folder, name)
                    if path is None:
                        missing.append(name)
                        results.append({"node": nid, "class_type": ctype, "missing": [name], "folder": folder,
                                        "searched": cm.folder_dirs(folder)})
                    else:                          # what the job reads (lockn_gen.pool weighs it per server)
                        results.append({"node": nid, "class_type": ctype, "missing": [], "components": [
                            {"role": inp, "name": name, "folder": folder, "present": True, "path": path,
                             "bytes_on_disk": size_on_disk(path)}]})
    cat = get_catalog()
    known = [m for m in dict.fromkeys(missing) if cat.file(m) is not None and cat.file(m).repo]
    return {"ok": not missing, "missing": list(dict.fromkeys(missing)), "nodes": results,
            "download_command": download_command(known) if known else None}


def register(server) -> None:
    routes = server.routes

    @routes.get("/lockn/residency")
    async def get_residency(request):
        return web.json_response(REGISTRY.report())

    @routes.post("/lockn/residency/evict")
    async def post_evict(request):
        try:
            body = await _json_body(request, '{"id": "<id from GET /lockn/residency>", "to": "ram"} or {"family": "flux2"}')
            _known_fields(body, EVICT_FIELDS, "POST /lockn/residency/evict")
            ids = _ids(body)
            family, name = body.get("family"), body.get("name")
            to = body.get("to", "dropped")
            if to not in ("dropped", "ram"):
                raise LockNError(f"'to' must be 'dropped' or 'ram', not {_short(to)}")
            families = ["all", *catalog_mod.builtin().families]
            if family is not None and family not in families:
                raise LockNError(f"unknown family {_short(family)}; use {', '.join(families)}")
            if name is not None and not isinstance(name, str):
                raise LockNError(f"'name' must be a string (part of a file name, e.g. \"flux2-vae\"), not {_short(name)}")
            include_pinned = body.get("include_pinned", bool(ids))
            if not isinstance(include_pinned, bool):
                raise LockNError(f"'include_pinned' must be true or false, not {_short(include_pinned)}")
            if not ids and family is None and not name:
                raise LockNError("say what to evict: 'id', 'family' or 'name'")
            recs = [REGISTRY.records[i] for i in ids] if ids else REGISTRY.find(family=family, name=name)
            if not include_pinned:
                recs = [r for r in recs if not r.entry.pinned]
        except _TooLarge as e:
            return _bad(str(e), 413)
        except LockNError as e:
            return _bad(str(e))
        done = REGISTRY.evict(recs, to=to)
        deferred = any(set(done) & set(ids) for ids, _ in REGISTRY.pending)
        return web.json_response({"evicted": done, "to": to, "deferred": deferred,
                                  "residency": REGISTRY.report()})

    @routes.post("/lockn/residency/pin")
    async def post_pin(request):
        try:
            body = await _json_body(request, '{"id": "<id from GET /lockn/residency>", "pinned": true}')
            _known_fields(body, PIN_FIELDS, "POST /lockn/residency/pin")
            ids = _ids(body)
            if not ids:
                raise LockNError("'id' is required: the id (or a list of ids) of entries GET /lockn/residency lists")
            pinned = body.get("pinned", True)
            if not isinstance(pinned, bool):
                raise LockNError(f"'pinned' must be true or false, not {_short(pinned)}")
        except _TooLarge as e:
            return _bad(str(e), 413)
        except LockNError as e:
            return _bad(str(e))
        REGISTRY.pin([REGISTRY.records[i] for i in ids], pinned)
        return web.json_response({"pinned" if pinned else "unpinned": ids, "residency": REGISTRY.report()})

    @routes.get("/lockn/preflight")
    async def get_preflight(request):
        try:
            cat = get_catalog()
            out = {"presets": [], "workflows": []}
            for pid in request.query.getall("preset", []):
                if pid not in cat.presets:
                    raise LockNError(f"unknown preset {_short(pid)}; known presets: {', '.join(sorted(cat.presets))}")
                _, res = resolve_preset(cat.presets[pid].family, pid, {})
                out["presets"].append(res.to_dict(download_command))
            for wf in request.query.getall("workflow", []):
                check_relative_name(wf, "workflow file name", f"the pack's workflows folder {WORKFLOWS_DIR}")
                path = os.path.join(WORKFLOWS_DIR, wf)
                if not os.path.isfile(path):
                    shipped = sorted(f for f in os.listdir(WORKFLOWS_DIR) if f.endswith(".json"))
                    raise LockNError(f"no workflow {_short(wf)} in {WORKFLOWS_DIR}; give one of: {', '.join(shipped)}")
                with open(path, encoding="utf-8") as f:
                    out["workflows"].append({"workflow": wf, **workflow_preflight(json.load(f))})
            if not out["presets"] and not out["workflows"]:
                raise LockNError("give ?preset=ID (repeatable) or ?workflow=FILE, or POST a workflow")
            out["ok"] = all(p["ok"] for p in out["presets"]) and all(w["ok"] for w in out["workflows"])
        except (LockNError, ValueError) as e:
            return _bad(str(e))
        return web.json_response(out)

    @routes.post("/lockn/preflight")
    async def post_preflight(request):
        try:
            body = await _json_body(request, "a workflow (API or UI format), or {\"prompt\": {...}}",
                                    MAX_WORKFLOW_BODY)
            wf = body.get("prompt", body) if isinstance(body.get("prompt"), dict) else body
            try:
                workflow_mod.check_structure(workflow_mod.detect_format(wf), wf)
            except workflow_mod.WorkflowError as e:
                raise LockNError("the request body is not a workflow LockN can check: " + "; ".join(e.errors)) from None
            return web.json_response(workflow_preflight(wf))
        except _TooLarge as e:
            return _bad(str(e), 413)
        except (LockNError, ValueError) as e:
            return _bad(str(e))

    @routes.get("/lockn/catalog")
    async def get_catalog_route(request):
        try:
            cat = get_catalog()
        except catalog_mod.CatalogError as e:
            return _bad(str(e), 500)
        return web.json_response({
            "families": {f.id: {"display_name": f.display_name, "mode": f.mode, "roles": list(f.roles),
                                "defaults": f.defaults} for f in cat.families.values()},
            "presets": {p.id: {"family": p.family, "label": p.label, "quality": p.quality, "components": p.components,
                               "optional": p.optional, "settings": p.settings(cat), "bytes": cat.preset_bytes(p.id)}
                        for p in cat.presets.values()}})

    @web.middleware
    async def free_watch(request, handler):
        """POST /free (or /api/free, the editor's button) with free_memory: ComfyUI resets its cache and
        unloads everything; the registry lets go of its references too, so the memory really is freed
        (pinned models included)."""
        if request.method == "POST" and seam.is_free_request(request.path):
            try:
                body = await request.json()
            except Exception:
                body = {}
            if isinstance(body, dict) and body.get("free_memory"):
                REGISTRY.drop_all("POST /free with free_memory")
        return await handler(request)

    # a prompt without LockN loaders queued behind one with them: hear the end of the latter first
    seam.add_on_prompt_handler(REGISTRY.prompt_queued)
    seam.add_middleware(free_watch)
