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
    "load", "map_widget_values", "node_label", "ordered_inputs", "pack_hint", "parse_set", "shown_input", "spec_opts",
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
                        "or the API format ({\"id\": {\"class_type\": ..., \"inputs\": {...}}})")


def load(source: str | os.PathLike | dict) -> tuple[str, dict]:
    """(format, data) of a workflow file or an already loaded dict. ``{"prompt": {...}}`` is unwrapped."""
    if isinstance(source, dict):
        data = source
    else:
        path = Path(source)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise WorkflowError(f"workflow file not found: {path}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise WorkflowError(f"cannot read workflow {path}: {e}") from None
    if isinstance(data, dict) and isinstance(data.get("prompt"), dict) and "nodes" not in data:
        data = data["prompt"]
    return detect_format(data), data


def to_api(source: str | os.PathLike | dict, object_info: dict) -> Workflow:
    """Load a workflow (file or dict, either format) and return it as a :class:`Workflow` (API prompt)."""
    fmt, data = load(source)
    name = None if isinstance(source, dict) else str(source)
    if fmt == "api":
        return Workflow(prompt=copy.deepcopy(data), format="api", source=name)
    wf = _UIConverter(data, object_info).convert()
    wf.source = name
    return wf
