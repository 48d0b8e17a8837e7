"""The shared ground of the workflow modules: the types they pass around (WorkflowError, Workflow,
Upload) and what a server's ``/object_info`` says about a node class's inputs: their order and specs,
which ones are widgets and how a UI node's ``widgets_values`` map onto them, defaults, and whether two
socket types connect. Every other ``workflow_*`` module builds on this one; it imports none of them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WIDGET_TYPES = {"INT", "FLOAT", "BOOLEAN", "STRING", "COMBO", "MARKDOWN", "IMAGEUPLOAD", "COLOR", "IMAGECOMPARE",
                "BOUNDING_BOX", "CHART", "GALLERIA", "PAINTER", "TEXTAREA", "CURVE", "COMFY_DYNAMICCOMBO_V3"}
NOT_SAVED_WIDGETS = {"IMAGECOMPARE": ["", ""]}   # widgets sent in the prompt but never saved in widgets_values
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize", "increment-wrap"}


# ---- the types every workflow module passes around -----------------------------------------------
class WorkflowError(ValueError):
    """One or more problems, each a plain sentence (``.errors``)."""

    def __init__(self, errors: list[str] | str):
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))


@dataclass
class Workflow:
    """An API prompt plus what the UI file knew that the API format forgets.

    ``groups``: nodes of the UI file that are not in the prompt but whose settings reach inputs in it,
    subgraph instances and PrimitiveNodes: ``{id: {"title", "kind": "subgraph" | "primitive", "inputs":
    {name or label: [(node id, input), ...]}}}``, so that ``--set "Image to Video (Wan2.2).prompt=..."``
    or ``--set "Seed.value=7"`` reaches the inputs they feed.
    ``controls``: ``{(node id, input): "randomize" | "fixed" | ...}``, the control_after_generate modes.
    """
    prompt: dict
    format: str = "api"
    groups: dict = field(default_factory=dict)
    controls: dict = field(default_factory=dict)
    source: str | None = None


@dataclass
class Upload:
    """A ``--set`` value that is a local file for an upload-capable input: send it to the server first."""
    node_id: str
    input: str
    path: Path


# ---- input specs (the /object_info entries) ------------------------------------------------------
def spec_type(spec) -> str:
    """An input's type: "COMBO" for a list of choices, else the type name (``widgetType`` wins)."""
    if not isinstance(spec, (list, tuple)) or not spec:
        return "*"
    t = spec[0]
    if isinstance(t, list):
        return "COMBO"
    return spec_opts(spec).get("widgetType") or t


def spec_opts(spec) -> dict:
    return spec[1] if isinstance(spec, (list, tuple)) and len(spec) > 1 and isinstance(spec[1], dict) else {}


def combo_options(spec) -> list:
    t = spec[0]
    if isinstance(t, list):
        return t
    opts = spec_opts(spec)
    if t == "COMFY_DYNAMICCOMBO_V3":
        return [o.get("key") for o in opts.get("options", [])]
    return list(opts.get("options", []))


def ordered_inputs(section_holder: dict, order: dict | None = None) -> list[tuple[str, Any, bool]]:
    """[(name, spec, optional)] in the frontend's order: ``input_order`` required, then optional,
    then anything not listed. Hidden inputs are left out."""
    inputs = section_holder or {}
    out, seen = [], set()
    for section, optional in (("required", False), ("optional", True)):
        specs = inputs.get(section) or {}
        names = (order or {}).get(section) or list(specs)
        for n in list(names) + [n for n in specs if n not in names]:
            if n in specs and n not in seen:
                seen.add(n)
                out.append((n, specs[n], optional))
    return out


def class_inputs(info: dict) -> list[tuple[str, Any, bool]]:
    return ordered_inputs(info.get("input") or {}, info.get("input_order"))


def _dynamic_sub_inputs(spec, value) -> list[tuple[str, Any, bool]]:
    """The inputs a dynamic combo adds for its chosen value (names without the prefix).

    How ComfyUI (0.20.1 and 0.33, ``DynamicCombo._expand_schema_for_dynamic`` in comfy_api/latest/_io.py)
    reads a dynamic combo ``c`` in a prompt: only when ``c`` is in the node's inputs and its value is one
    of the options' keys do the chosen option's inputs exist, sent as flat dotted keys ``"c.x"`` (nested
    combos: ``"c.x.y"``); the node then gets ``c={"c": value, "x": ...}``. A dynamic combo that is absent
    brings nothing, not even a "required input missing". The editor puts the option's widgets right after
    the combo's (required, then optional) and saves their values in that order."""
    for o in spec_opts(spec).get("options", []):
        if o.get("key") == value:
            return ordered_inputs(o.get("inputs") or {})
    return []


def is_hidden(spec) -> bool:
    """An input the server accepts but the editor hides (0.33's SaveVideo ``codec``: kept for API prompts
    written before ``format`` became a dynamic combo with its own ``format.codec``)."""
    return bool(spec_opts(spec).get("hidden"))


def shown_input(info: dict, name: str, inputs: dict) -> str:
    """The input the editor shows for ``name``: for a hidden top-level input that a chosen dynamic combo
    option repeats (``codec`` -> ``"format.codec"``, which the node prefers), the dotted one when it is in
    ``inputs``; else ``name``. What ``--set NODE.codec=...`` changes."""
    flat = {n: s for n, s, _ in class_inputs(info)}
    if name not in flat or not is_hidden(flat[name]):
        return name
    shown = [k for k in inputs if k.endswith("." + name) and k.split(".", 1)[0] in flat
             and spec_type(flat[k.split(".", 1)[0]]) == "COMFY_DYNAMICCOMBO_V3" and input_spec(info, k, inputs)]
    return shown[0] if len(shown) == 1 else name


def input_spec(info: dict, name: str, inputs: dict | None = None):
    """The spec of input ``name`` of a class, following dynamic names: ``"resize_type.width"`` (the
    option chosen in ``inputs["resize_type"]``) and ``"values.a"`` (an autogrow entry). None if unknown."""
    flat = {n: s for n, s, _ in class_inputs(info)}
    if name in flat:
        return flat[name]
    head, _, rest = name.partition(".")
    spec = flat.get(head)
    if spec is None or not rest:
        return None
    t = spec_type(spec)
    if t == "COMFY_DYNAMICCOMBO_V3":                 # only the inputs of the chosen option exist
        chosen = (inputs or {}).get(head)
        sub_inputs = {k.partition(".")[2]: v for k, v in (inputs or {}).items() if k.startswith(head + ".")}
        for key in [chosen] if chosen is not None else combo_options(spec):
            sub_info = {"input": {"required": {n: s for n, s, _ in _dynamic_sub_inputs(spec, key)}}}
            found = input_spec(sub_info, rest, sub_inputs)
            if found is not None:
                return found
        return None
    if t == "COMFY_AUTOGROW_V3":
        tmpl = spec_opts(spec).get("template", {}).get("input", {})
        specs = [s for sec in ("required", "optional") for s in (tmpl.get(sec) or {}).values()]
        return specs[0] if specs else None
    return None


def has_control(name: str, spec) -> bool:
    """Whether the editor puts a control_after_generate widget after this input's widget."""
    t, opts = spec_type(spec), spec_opts(spec)
    if t == "INT":
        flag = opts.get("control_after_generate")
        return bool(flag) if flag is not None else name in ("seed", "noise_seed")
    return t in ("FLOAT", "COMBO") and bool(opts.get("control_after_generate"))


def _default(spec):
    t, opts = spec_type(spec), spec_opts(spec)
    if "default" in opts:
        return opts["default"]
    if t == "COMBO" or t == "COMFY_DYNAMICCOMBO_V3":
        opts_list = combo_options(spec)
        return opts_list[0] if opts_list else None
    return {"INT": max(opts.get("min", 0), 0), "FLOAT": 0.0, "BOOLEAN": False, "STRING": ""}.get(t)


def is_link(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], int) \
        and not isinstance(v[1], bool)


# ---- widgets_values -> named inputs --------------------------------------------------------------
def map_widget_values(info: dict, values) -> tuple[dict, dict]:
    """({input: value}, {input: control mode}) for a node's ``widgets_values`` (list or dict form)."""
    specs = class_inputs(info)
    if isinstance(values, dict):                      # e.g. VideoHelperSuite saves {name: value}
        names = {n for n, _, _ in specs}
        return {k: v for k, v in values.items() if k in names or "." in k}, {}
    values = list(values or [])
    plain = [n for n, s, _ in specs if _is_widget(s)]
    forced = [n for n, s, _ in specs if _is_widget(s, ignore_force=True)]
    skip = set()
    # workflows saved before frontend 1.16 kept a value for forceInput inputs too: drop those
    if len(forced) != len(plain) and len(values) == _slot_count(specs, True) != _slot_count(specs, False):
        skip = set(forced) - set(plain)
    out, controls = {}, {}
    _consume(specs, values, [0], out, controls, "", skip)
    return out, controls


def _is_widget(spec, ignore_force=False) -> bool:
    return spec_type(spec) in WIDGET_TYPES and (ignore_force or not spec_opts(spec).get("forceInput"))


def _slot_count(specs, with_forced: bool) -> int:
    n = 0
    for name, spec, _ in specs:
        if _is_widget(spec, ignore_force=with_forced) and spec_type(spec) not in NOT_SAVED_WIDGETS:
            n += 1 + ((2 if spec_type(spec) == "COMBO" else 1) if has_control(name, spec) else 0)
    return n


def _consume(specs, values, pos, out, controls, prefix, skip):
    for name, spec, optional in specs:
        full = prefix + name
        if not _is_widget(spec, ignore_force=full in skip):
            continue
        if spec_type(spec) in NOT_SAVED_WIDGETS:
            out[full] = list(NOT_SAVED_WIDGETS[spec_type(spec)])
            continue
        if pos[0] < len(values):
            value = values[pos[0]]
            pos[0] += 1
        else:
            value = _default(spec)
            if value is None:
                continue
        if full not in skip:
            out[full] = value
        if has_control(name, spec) and pos[0] < len(values) and values[pos[0]] in CONTROL_VALUES:
            controls[full] = values[pos[0]]
            pos[0] += 1
            if spec_type(spec) == "COMBO" and pos[0] < len(values) and isinstance(values[pos[0]], str):
                pos[0] += 1                           # the control's filter string
        if spec_type(spec) == "COMFY_DYNAMICCOMBO_V3":
            _consume(_dynamic_sub_inputs(spec, value), values, pos, out, controls, full + ".", skip)


# ---- connections and wording shared by conversion, --set and validation --------------------------
def _types_ok(a, b) -> bool:
    """LiteGraph.isValidConnection: '*'/'' match anything; "A,B" lists match on any member."""
    a = "" if a in (None, "*") else str(a)
    b = "" if b in (None, "*") else str(b)
    if not a or not b or a == b:
        return True
    a, b = a.lower(), b.lower()
    if "," not in a and "," not in b:
        return a == b
    return any(_types_ok(x, y) for x in a.split(",") for y in b.split(","))


def connects(out_type, in_type) -> bool:
    """Whether an output of ``out_type`` may feed an input socket of ``in_type`` (the socket type, "COMBO"
    for a list of choices): LiteGraph's rule, and V3's dynamic types (``COMFY_MATCHTYPE_V3``, ...) take
    and give whatever they are wired to."""
    out_type = "COMBO" if isinstance(out_type, list) else out_type
    return in_type == "COMBO" or str(out_type).startswith("COMFY_") or str(in_type).startswith("COMFY_") \
        or _types_ok(out_type, in_type)


def node_label(node_id: str, node: dict) -> str:
    title = (node.get("_meta") or {}).get("title")
    ct = node.get("class_type", "?")
    return f"node {node_id} \"{title}\" ({ct})" if title and title != ct else f"node {node_id} ({ct})"


def _range_text(opts: dict) -> str:
    lo, hi = opts.get("min"), opts.get("max")
    if lo is not None and hi is not None:
        return f" between {lo} and {hi}"
    if lo is not None:
        return f" of at least {lo}"
    if hi is not None:
        return f" of at most {hi}"
    return ""


def _choices_text(choices: list, limit: int = 12) -> str:
    if not choices:
        return "the server offers no choices for it (no such files installed?)"
    shown = ", ".join(repr(c) for c in choices[:limit])
    more = f" ... ({len(choices) - limit} more)" if len(choices) > limit else ""
    return f"choices: {shown}{more}"
