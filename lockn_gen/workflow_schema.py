"""The shared ground of the workflow modules: the types they pass around (WorkflowError, Workflow,
Upload) and what a server's ``/object_info`` says about a node class's inputs: their order and specs,
which ones are widgets and how a UI node's ``widgets_values`` map onto them, defaults, and whether two
socket types connect. Every other ``workflow_*`` module builds on this one; it imports none of them.

It also knows the range a number may take (``value_range``): an input's own min, max and step, and for a
PrimitiveInt or PrimitiveFloat the ranges of the inputs its value reaches as well (through switches), since
its own ``value`` takes any 64-bit number while the server checks only a value typed into an input, never
one that arrives over a link.
"""
from __future__ import annotations

import difflib
import math
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
    ``ranges``: ``{(node id, "value"): {"min", "max", "step"}}``, the range a UI file gives a PrimitiveInt or
    PrimitiveFloat in its properties (what the editor's widget, and a stage's face promoted from it, keep to).
    """
    prompt: dict
    format: str = "api"
    groups: dict = field(default_factory=dict)
    controls: dict = field(default_factory=dict)
    source: str | None = None
    ranges: dict = field(default_factory=dict)


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


def _range_text(opts: dict, int_step: bool = False) -> str:
    """" between 16 and 16384" (with ``int_step``: " ... in steps of 16" when the step is more than 1)."""
    lo, hi = opts.get("min"), opts.get("max")
    step = opts.get("step")
    steps = f" in steps of {step}" if int_step and isinstance(step, int) and step > 1 else ""
    if lo is not None and hi is not None:
        return f" between {lo} and {hi}{steps}"
    if lo is not None:
        return f" of at least {lo}{steps}"
    if hi is not None:
        return f" of at most {hi}{steps}"
    return steps


def _choices_text(choices: list, limit: int = 12) -> str:
    if not choices:
        return "the server offers no choices for it (no such files installed?)"
    shown = ", ".join(repr(c) for c in choices[:limit])
    more = f" ... ({len(choices) - limit} more)" if len(choices) > limit else ""
    return f"choices: {shown}{more}"


def did_you_mean(word: str, choices) -> str:
    """"; did you mean 'X'?" for the choice closest to ``word`` (letters in order, case aside), or "" when
    none is close. One helper for every "not found" message that lists what there is."""
    pool = {}
    for c in choices:
        if isinstance(c, str) and c and c.lower() != str(word).lower():
            pool.setdefault(c.lower(), c)
    best = difflib.get_close_matches(str(word).lower(), list(pool), n=1, cutoff=0.6)
    return f"; did you mean '{pool[best[0]]}'?" if best else ""


# ---- the range a number may take -----------------------------------------------------------------------
RANGED_PRIMITIVES = ("PrimitiveInt", "PrimitiveFloat")   # the editor reads their properties min, max, step
PASS_THROUGH = "COMFY_MATCHTYPE_V3"                        # an input whose value leaves by the same-typed outputs


@dataclass
class ValueRange:
    """What an INT or FLOAT may be: ``min``, ``max``, ``step`` (INT: the common multiple of the steps;
    FLOAT: the largest, the editor's increment), ``grids`` (INT: (anchor, step) that a value must sit on,
    anchor + k * step, one per input with a step above 1) and ``sources``, the inputs a Primitive's value
    reaches that narrowed it ("EmptyFlux2LatentImage 'width'"), or the file's own range."""
    kind: str
    min: Any = None
    max: Any = None
    step: Any = None
    grids: list = field(default_factory=list)
    sources: list = field(default_factory=list)

    def narrow(self, opts: dict, source: str | None = None) -> None:
        lo, hi, step = opts.get("min"), opts.get("max"), opts.get("step")
        changed = False
        if isinstance(lo, (int, float)) and not isinstance(lo, bool) and (self.min is None or lo > self.min):
            self.min, changed = lo, True
        if isinstance(hi, (int, float)) and not isinstance(hi, bool) and (self.max is None or hi < self.max):
            self.max, changed = hi, True
        if isinstance(step, (int, float)) and not isinstance(step, bool) and step > 0:
            if self.kind == "INT" and float(step).is_integer():
                step = int(step)
                if step > 1:
                    default = opts.get("default")
                    anchor = lo if isinstance(lo, int) and not (isinstance(default, int) and (default - lo) % step) \
                        else default if isinstance(default, int) else 0
                    if (anchor, step) not in self.grids:
                        self.grids.append((anchor, step))
                    new = step if not self.step else self.step * step // math.gcd(self.step, step)
                    changed = changed or new != self.step
                    self.step = new
            elif self.kind == "FLOAT" and (self.step is None or step > self.step):
                self.step, changed = float(step), True
        if changed and source and source not in self.sources:
            self.sources.append(source)

    def text(self) -> str:
        """" between 1 and 16384 in steps of 4"."""
        return _range_text({"min": self.min, "max": self.max, "step": self.step}, int_step=self.kind == "INT")

    def problem(self, value) -> str | None:
        """Why ``value`` is not allowed ("got 50: the nearest are 49 and 53"), or None."""
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            return f"got {value}"
        for anchor, step in self.grids if self.kind == "INT" else ():
            if (value - anchor) % step:
                below = value - (value - anchor) % step
                near = [v for v in (below, below + step) if (self.min is None or v >= self.min)
                        and (self.max is None or v <= self.max)]
                return f"got {value}" + (f": the nearest are {' and '.join(map(str, near))}" if near else "")
        return None

    def properties(self) -> dict:
        """The range as the editor's PrimitiveInt / PrimitiveFloat widget reads it from the node's
        properties (ComfyUI frontend 1.43 and 1.49, the Comfy.CustomWidgets extension)."""
        cast = int if self.kind == "INT" else float
        out = {k: cast(v) for k, v in (("min", self.min), ("max", self.max)) if v is not None}
        out["step"] = cast(self.step) if self.step else cast(1) if self.kind == "INT" else None
        return {k: v for k, v in out.items() if v is not None}


def _links_to(prompt: dict) -> dict:
    """(source id, slot) -> [(node id, input name)] of every link in the prompt."""
    out: dict = {}
    for nid, node in prompt.items():
        for name, v in ((node or {}).get("inputs") or {}).items():
            if is_link(v):
                out.setdefault((v[0], v[1]), []).append((nid, name))
    return out


def _fed_inputs(prompt: dict, object_info: dict, nid: str, slot: int, links: dict, seen: set):
    """(node id, input, spec) of the INT and FLOAT inputs that output ``slot`` of ``nid`` reaches, through
    pass-through inputs (the switches' on_true / on_false) to their outputs."""
    for cid, name in links.get((nid, slot), ()):
        if (cid, name) in seen:
            continue
        seen.add((cid, name))
        node = prompt[cid]
        info = object_info.get(node.get("class_type"))
        spec = input_spec(info, name, node.get("inputs")) if info else None
        t = spec_type(spec) if spec is not None else None
        if t == PASS_THROUGH:
            for j, out_t in enumerate(info.get("output") or []):
                if out_t == PASS_THROUGH:
                    yield from _fed_inputs(prompt, object_info, cid, j, links, seen)
        elif t in ("INT", "FLOAT"):
            yield cid, name, spec


def value_range(prompt: dict, object_info: dict, nid: str, name: str, declared: dict | None = None,
                links: dict | None = None) -> ValueRange | None:
    """The range input ``name`` of node ``nid`` may take (None unless it is an INT or FLOAT): its own spec's,
    narrowed for a PrimitiveInt / PrimitiveFloat ``value`` by every INT or FLOAT input it reaches (the
    server takes a linked value as it comes, so these are what hold it to what the nodes can do) and by
    ``declared``, the range a UI file gives it (Workflow.ranges)."""
    node = prompt.get(nid) or {}
    info = object_info.get(node.get("class_type"))
    spec = input_spec(info, name, node.get("inputs")) if info else None
    t = spec_type(spec) if spec is not None else None
    if t not in ("INT", "FLOAT"):
        return None
    r = ValueRange(t)
    r.narrow(spec_opts(spec))
    if node.get("class_type") in RANGED_PRIMITIVES and name == "value":
        links = links if links is not None else _links_to(prompt)
        for cid, cname, cspec in _fed_inputs(prompt, object_info, nid, 0, links, set()):
            cnode = prompt[cid]
            r.narrow(spec_opts(cspec), f"{cnode.get('class_type')} '{cname}'")
        if declared:
            r.narrow(declared, "the file's own range")
    return r
