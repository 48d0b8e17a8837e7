"""Workflow files: load them (the editor's UI format or the API format), convert UI to API against a
server's ``/object_info``, apply ``--set TITLE.INPUT=VALUE`` and validate, all before anything is queued.

This module is the public face; the work is done in
``workflow_schema`` (shared types and /object_info input-spec helpers), ``workflow_convert`` (UI -> API),
``workflow_sets`` (``--set`` and per-job seeds) and ``workflow_validate`` (checks against /object_info).
Their public names are re-exported here, so ``from lockn_gen import workflow as W; W.apply_sets(...)``
is all a caller needs. Nothing here talks to a server: ``object_info`` is a dict (``GET /object_info``).
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

# every public name of the four modules, plus _default and _is_widget, which workflow_ui imports from here
from .workflow_convert import BYPASSED, MUTED, NOTE_TYPES, SUBGRAPH_IN, VIRTUAL_TYPES, _UIConverter
from .workflow_schema import (CONTROL_VALUES, NOT_SAVED_WIDGETS, WIDGET_TYPES, Upload, Workflow, WorkflowError,
                              _default, _is_widget, class_inputs, combo_options, has_control, input_spec, is_hidden,
                              is_link, map_widget_values, node_label, ordered_inputs, shown_input, spec_opts, spec_type)
from .workflow_sets import UPLOAD_FLAGS, apply_sets, coerce, parse_set, vary_seeds
from .workflow_validate import KNOWN_PACKS, pack_hint, validate

__all__ = [
    "BYPASSED", "CONTROL_VALUES", "KNOWN_PACKS", "MUTED", "NOTE_TYPES", "NOT_SAVED_WIDGETS", "SUBGRAPH_IN",
    "UPLOAD_FLAGS", "VIRTUAL_TYPES", "WIDGET_TYPES", "Upload", "Workflow", "WorkflowError", "apply_sets",
    "class_inputs", "coerce", "combo_options", "detect_format", "has_control", "input_spec", "is_hidden", "is_link",
    "load", "check_structure", "MAX_WORKFLOW_BYTES",
    "map_widget_values", "node_label", "ordered_inputs", "pack_hint", "parse_set", "shown_input", "spec_opts",
    "spec_type", "to_api", "validate", "vary_seeds",
]


# ---- loading -------------------------------------------------------------------------------------
def detect_format(data: Any) -> str:
    """``"ui"`` (the editor's graph), ``"api"`` (``{id: {class_type, inputs}}``), else WorkflowError."""
    if isinstance(data, dict) and isinstance(data.get("nodes"), list):
        return "ui"
    if isinstance(data, dict) and data and all(isinstance(v, dict) and "class_type" in v for v in data.values()):
        return "api"
    raise WorkflowError("not a ComfyUI workflow: expected the editor's format (with \"nodes\" and \"links\") "
                        "or the API format ({\"id\": {\"class_type\": ..., \"inputs\": {...}}}); save it from the "
                        "editor with Workflow > Export (or Export (API))")


# a workflow file bigger than this is refused before it is read (the largest official template is ~0.2 MB)
MAX_WORKFLOW_BYTES = 20 * 1000 * 1000
_RESAVE = "export it again from the editor (Workflow > Export, or Export (API))"


def _read(path: Path) -> Any:
    """The JSON of a workflow file; WorkflowError naming the file, what is wrong and what to do."""
    try:
        st = path.stat()
    except FileNotFoundError:
        where = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
        raise WorkflowError(f"workflow file not found: {path}{where}; check the path") from None
    except OSError as e:
        raise WorkflowError(f"cannot read workflow {path}: {e.strerror or e}; check the path and its permissions") from None
    if path.is_dir():
        raise WorkflowError(f"cannot read workflow {path}: it is a directory, not a workflow file; give the path "
                            f"of a .json file (e.g. {path / 'workflow.json'})")
    if st.st_size == 0:
        raise WorkflowError(f"cannot read workflow {path}: the file is empty (0 bytes); {_RESAVE}")
    if st.st_size > MAX_WORKFLOW_BYTES:
        raise WorkflowError(f"cannot read workflow {path}: the file is {st.st_size / 1e6:.1f} MB, more than a "
                            f"workflow file can be ({MAX_WORKFLOW_BYTES / 1e6:.0f} MB at most); check that this is the "
                            f"workflow you meant, or {_RESAVE}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise WorkflowError(f"cannot read workflow {path}: {e.strerror or e}; check the path and its permissions") from None
    except UnicodeDecodeError as e:
        raise WorkflowError(f"cannot read workflow {path}: it is not UTF-8 text (byte {e.start}), so not a JSON "
                            f"workflow; {_RESAVE}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise WorkflowError(f"cannot read workflow {path}: not valid JSON at line {e.lineno}, column {e.colno} "
                            f"({e.msg}); fix the file there, or {_RESAVE}") from None
    except RecursionError:
        raise WorkflowError(f"cannot read workflow {path}: its JSON is nested too deeply to be a workflow; "
                            f"{_RESAVE}") from None


def check_structure(fmt: str, data: dict) -> None:
    """Refuse what the converter and the checks cannot make sense of (a node that is not an object, a
    malformed link), in plain words, instead of failing somewhere inside with a traceback."""
    problems = []
    if fmt == "api":
        for nid, node in data.items():
            if not isinstance(node.get("class_type"), str) or not node["class_type"]:
                problems.append(f"node {nid}: 'class_type' must be the node type's name (a string), "
                                f"not {node.get('class_type')!r}")
            if not isinstance(node.get("inputs", {}), dict):
                problems.append(f"node {nid} ({node.get('class_type')}): 'inputs' must be an object "
                                f"({{\"name\": value or [node id, output]}}), not {type(node.get('inputs')).__name__}")
        if problems:
            raise WorkflowError([p + "; fix the file or export it again from the editor (Export (API))"
                                 for p in problems])
        return
    graphs = [("the workflow", data)]
    subgraphs = (data.get("definitions") or {}).get("subgraphs") if isinstance(data.get("definitions"), dict) else None
    if subgraphs is not None and not isinstance(subgraphs, list):
        problems.append("the workflow: 'definitions.subgraphs' must be a list")
        subgraphs = []
    for sg in subgraphs or []:
        if not isinstance(sg, dict):
            problems.append(f"the workflow: a subgraph definition is a {type(sg).__name__}, not an object")
            continue
        graphs.append((f"subgraph '{sg.get('name') or sg.get('id')}'", sg))
    for where, g in graphs:
        nodes = g.get("nodes") or []
        if not isinstance(nodes, list):
            problems.append(f"{where}: 'nodes' must be a list")
            nodes = []
        for i, n in enumerate(nodes):
            if not isinstance(n, dict):
                problems.append(f"{where}: nodes[{i}] is {json.dumps(n, default=str)[:40]}, not a node object")
                continue
            label = f"{where}: node {n.get('id', f'#{i}')}"
            if n.get("id") is None or not isinstance(n.get("type"), str):
                problems.append(f"{label}: a node needs an 'id' and a 'type' (its node type's name)")
            for key in ("inputs", "outputs"):
                v = n.get(key)
                if v is not None and (not isinstance(v, list) or not all(isinstance(x, dict) for x in v)):
                    problems.append(f"{label}: '{key}' must be a list of objects")
            wv = n.get("widgets_values")
            if wv is not None and not isinstance(wv, (list, dict)):
                problems.append(f"{label}: 'widgets_values' must be a list, not {type(wv).__name__}")
        links = g.get("links") or []
        if not isinstance(links, list):
            problems.append(f"{where}: 'links' must be a list")
            links = []
        for i, link in enumerate(links):
            if link is None:
                continue
            if isinstance(link, list) and len(link) >= 5:
                parts = link[:5]
            elif isinstance(link, dict):
                parts = [link.get(k) for k in ("id", "origin_id", "origin_slot", "target_id", "target_slot")]
            else:
                problems.append(f"{where}: links[{i}] is {json.dumps(link, default=str)[:40]}, not a link "
                                f"([id, from node, from slot, to node, to slot, type])")
                continue
            slots_ok = all(s is None or (isinstance(s, int) and not isinstance(s, bool))
                           or (isinstance(s, str) and s.isdigit()) for s in (parts[2], parts[4]))
            if not slots_ok or not all(isinstance(x, (int, str)) and not isinstance(x, bool) for x in (parts[1], parts[3])):
                problems.append(f"{where}: link {parts[0]} is malformed ({str(link)[:60]}): node ids and slot "
                                f"numbers expected")
    if problems:
        raise WorkflowError([p + "; open the file in the editor and save it again, or fix it by hand"
                             for p in problems[:20]]
                            + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else []))


def load(source: str | os.PathLike | dict) -> tuple[str, dict]:
    """(format, data) of a workflow file or an already loaded dict. ``{"prompt": {...}}`` is unwrapped."""
    if isinstance(source, dict):
        data = source
    else:
        path = Path(source)
        data = _read(path)
    if isinstance(data, dict) and isinstance(data.get("prompt"), dict) and "nodes" not in data:
        data = data["prompt"]
    try:
        fmt = detect_format(data)
        check_structure(fmt, data)
    except WorkflowError as e:
        if isinstance(source, dict):
            raise
        raise WorkflowError([f"{source}: {m}" for m in e.errors]) from None
    return fmt, data


def to_api(source: str | os.PathLike | dict, object_info: dict) -> Workflow:
    """Load a workflow (file or dict, either format) and return it as a :class:`Workflow` (API prompt)."""
    fmt, data = load(source)
    name = None if isinstance(source, dict) else str(source)
    if fmt == "api":
        return Workflow(prompt=copy.deepcopy(data), format="api", source=name)
    wf = _UIConverter(data, object_info).convert()
    wf.source = name
    return wf
