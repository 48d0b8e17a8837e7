"""Workflow files: load them (the editor's UI format or the API format), convert UI to API against a
server's ``/object_info``, apply ``--set TITLE.INPUT=VALUE`` and validate, all before anything is queued.

The UI -> API conversion follows ComfyUI's frontend (``graphToPrompt`` and ``ExecutableNodeDTO`` in
ComfyUI_frontend 1.43) rather than copying it:

* ``widgets_values`` are mapped onto the class's widget inputs in ``input_order`` (required, then
  optional). INT inputs with ``control_after_generate`` (or named seed/noise_seed) are followed by the
  control value ("randomize", ...), COMBO ones by the control value and a filter string; those are
  skipped. Dynamic combos (``COMFY_DYNAMICCOMBO_V3``) are followed by the widgets of the chosen option.
* muted nodes (mode 2) are dropped and whatever they fed loses that input; bypassed nodes (mode 4)
  pass an input of the matching type through to their consumers.
* virtual nodes: ``Reroute`` passes its input on, ``PrimitiveNode`` writes its value into its targets,
  ``Note``/``MarkdownNote`` are dropped, KJNodes' ``SetNode``/``GetNode`` are resolved by name.
  ``PrimitiveInt/Float/String/Boolean`` are real server nodes and stay (as the frontend keeps them),
  so ``--set "Int (Steps).value=8"`` still finds them.
* a node whose type is a subgraph id (``definitions.subgraphs``) is expanded inline: its inner nodes get
  ids ``"<outer>:<inner>"``, its inputs and outputs are wired through, and the values of its promoted
  widgets (legacy ``widgets_values``/``proxyWidgets`` entries) are written into the inner inputs.

Nothing here talks to a server: ``object_info`` is a dict (the JSON of ``GET /object_info``).
"""
from __future__ import annotations

import copy
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

MUTED, BYPASSED = 2, 4
SUBGRAPH_IN = "-10"                 # origin id of links from a subgraph's inputs (its outputs' target is -20)
WIDGET_TYPES = {"INT", "FLOAT", "BOOLEAN", "STRING", "COMBO", "MARKDOWN", "IMAGEUPLOAD", "COLOR", "IMAGECOMPARE",
                "BOUNDING_BOX", "CHART", "GALLERIA", "PAINTER", "TEXTAREA", "CURVE", "COMFY_DYNAMICCOMBO_V3"}
NOT_SAVED_WIDGETS = {"IMAGECOMPARE": ["", ""]}   # widgets sent in the prompt but never saved in widgets_values
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize", "increment-wrap"}
NOTE_TYPES = {"Note", "MarkdownNote"}
VIRTUAL_TYPES = NOTE_TYPES | {"Reroute", "PrimitiveNode", "SetNode", "GetNode"}
UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload", "animated_image_upload")

# where a node type that the server lacks usually comes from: (prefix of the class name, pack)
KNOWN_PACKS = [
    ("UnetLoaderGGUF", "ComfyUI-GGUF (city96)"), ("CLIPLoaderGGUF", "ComfyUI-GGUF (city96)"),
    ("DualCLIPLoaderGGUF", "ComfyUI-GGUF (city96)"), ("TripleCLIPLoaderGGUF", "ComfyUI-GGUF (city96)"),
    ("LockN", "LockN Gen (this pack)"), ("VHS_", "ComfyUI-VideoHelperSuite"), ("WanVideo", "ComfyUI-WanVideoWrapper"),
    ("LTXV", "ComfyUI-LTXVideo"), ("easy ", "ComfyUI-Easy-Use"), ("SetNode", "ComfyUI-KJNodes"),
    ("GetNode", "ComfyUI-KJNodes"), ("DisTorch", "ComfyUI-MultiGPU"), ("TeaCache", "ComfyUI-TeaCache"),
]


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
    """The inputs a dynamic combo adds for its chosen value (names without the prefix)."""
    for o in spec_opts(spec).get("options", []):
        if o.get("key") == value:
            return ordered_inputs(o.get("inputs") or {})
    return []


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


# ---- UI -> API -----------------------------------------------------------------------------------
@dataclass
class _Graph:
    id: str
    name: str
    nodes: dict
    links: dict
    inputs: list
    outputs: list


@dataclass
class _Inst:
    node: dict
    graph: _Graph
    path: tuple
    parent: "_Inst | None"
    sub: _Graph | None = None
    legacy: dict = field(default_factory=dict)      # subgraph input name -> promoted widget value
    overrides: dict = field(default_factory=dict)   # (inner id, widget) -> value

    @property
    def local_id(self) -> str:
        return str(self.node.get("id"))

    @property
    def exec_id(self) -> str:
        return ":".join(self.path + (self.local_id,))

    @property
    def mode(self) -> int:
        return self.node.get("mode") or 0

    @property
    def inputs(self) -> list:
        return self.node.get("inputs") or []


def _link_table(links) -> dict:
    table = {}
    for link in links or []:
        if isinstance(link, list) and len(link) >= 5:
            lid, o, os_, t, ts = link[:5]
            ty = link[5] if len(link) > 5 else None
        elif isinstance(link, dict):
            lid, o, os_, t, ts, ty = (link.get(k) for k in ("id", "origin_id", "origin_slot", "target_id",
                                                            "target_slot", "type"))
        else:
            continue
        table[lid] = (str(o), int(os_ or 0), str(t), int(ts or 0), ty)
    return table


def _graph(d: dict, gid="root") -> _Graph:
    return _Graph(id=str(d.get("id", gid)), name=str(d.get("name") or ""),
                  nodes={str(n.get("id")): n for n in d.get("nodes") or []}, links=_link_table(d.get("links")),
                  inputs=list(d.get("inputs") or []), outputs=list(d.get("outputs") or []))


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


class _UIConverter:
    def __init__(self, data: dict, object_info: dict):
        self.data = data
        self.oi = object_info or {}
        self.subgraphs = {str(s.get("id")): _graph(s) for s in (data.get("definitions") or {}).get("subgraphs") or []}
        self.insts: dict[str, _Inst] = {}
        self.order: list[_Inst] = []
        self.groups: dict = {}
        self.controls: dict = {}

    def convert(self) -> Workflow:
        if any(str(n.get("type", "")).startswith(("workflow>", "workflow/")) for n in self.data.get("nodes") or []):
            raise WorkflowError("this workflow uses legacy group nodes (\"workflow>...\"): open it in the editor, "
                                "convert them to subgraphs, save, and try again")
        self._expand(_graph(self.data), (), None, set())
        prompt = {}
        for inst in self.order:
            node = self._emit(inst)
            if node is not None:
                prompt[inst.exec_id] = node
        for node in prompt.values():                       # links to nodes that are not emitted: drop them
            for k, v in list(node["inputs"].items()):
                if is_link(v) and v[0] not in prompt:
                    del node["inputs"][k]
        self.controls = {k: v for k, v in self.controls.items() if k[0] in prompt}
        for gid, group in self.groups.items():
            if group["kind"] == "subgraph":
                self._proxy_aliases(self.insts[gid], prompt)
        return Workflow(prompt=prompt, format="ui", groups=self.groups, controls=self.controls)

    # -- expansion of subgraph instances
    def _expand(self, graph: _Graph, path: tuple, parent: _Inst | None, stack: set):
        for node in graph.nodes.values():
            inst = _Inst(node=node, graph=graph, path=path, parent=parent)
            self.insts[inst.exec_id] = inst
            self.order.append(inst)
            sub = self.subgraphs.get(str(node.get("type")))
            if sub is None or inst.mode in (MUTED, BYPASSED):
                if sub is not None:
                    inst.sub = sub
                continue
            if sub.id in stack:
                raise WorkflowError(f"subgraph '{sub.name or sub.id}' contains itself")
            inst.sub = sub
            self._promoted_values(inst)
            self.groups[inst.exec_id] = {"title": node.get("title") or sub.name or sub.id, "kind": "subgraph",
                                         "inputs": {}}
            self._expand(sub, path + (inst.local_id,), inst, stack | {sub.id})

    def _primitive_alias(self, prim: _Inst, target: tuple):
        """A PrimitiveNode is gone from the prompt; "--set TITLE.value=..." reaches the inputs it fed."""
        group = self.groups.setdefault(prim.exec_id, {"title": prim.node.get("title") or "Primitive",
                                                      "kind": "primitive", "inputs": {}})
        for name in {"value", *((o.get("widget") or {}).get("name") for o in prim.node.get("outputs") or [])} - {None}:
            if target not in group["inputs"].setdefault(name, []):
                group["inputs"][name].append(target)

    def _proxy_aliases(self, inst: _Inst, prompt: dict):
        """Widgets promoted onto the subgraph node (proxyWidgets [inner id, widget]) are settable by the
        widget's name when that name is unique on the node."""
        proxies = [e for e in (inst.node.get("properties") or {}).get("proxyWidgets") or []
                   if isinstance(e, list) and len(e) >= 2 and str(e[0]) != "-1" and not str(e[1]).startswith("$$")
                   and e[1] != "control_after_generate"]
        names = [e[1] for e in proxies]
        aliases = self.groups[inst.exec_id]["inputs"]
        for nid, wname in (e[:2] for e in proxies):
            target = f"{inst.exec_id}:{nid}"
            if names.count(wname) == 1 and wname not in aliases and target in prompt:
                aliases[wname] = [(target, wname)]

    def _promoted_values(self, inst: _Inst):
        """Values saved on the subgraph node itself: legacy widgets_values (by proxyWidgets entry, or by
        the subgraph inputs that feed widgets). Modern files keep them in the inner nodes instead."""
        values = inst.node.get("widgets_values")
        if not isinstance(values, list) or not values:
            return
        proxies = [e for e in (inst.node.get("properties") or {}).get("proxyWidgets") or []
                   if isinstance(e, list) and len(e) >= 2 and not str(e[1]).startswith("$$")]
        if proxies:
            legacy = [e for e in proxies if str(e[0]) == "-1"]
            pairs = zip(proxies if len(values) == len(proxies) else legacy, values)
            for entry, v in pairs:
                if v is None or entry[1] == "control_after_generate":
                    continue
                if str(entry[0]) == "-1":
                    inst.legacy[entry[1]] = v
                else:
                    inst.overrides[(str(entry[0]), entry[1])] = v
            return
        fed = []
        for slot in inst.sub.inputs:
            for lid in slot.get("linkIds") or []:
                link = inst.sub.links.get(lid)
                target = inst.sub.nodes.get(link[2]) if link else None
                if target and any(i.get("widget") for i in (target.get("inputs") or [])[link[3]:link[3] + 1]):
                    fed.append(slot.get("name"))
                    break
        inst.legacy.update(dict(zip(fed, values)))

    # -- link resolution (ExecutableNodeDTO.resolveInput / resolveOutput)
    def resolve_input(self, inst: _Inst, inp: dict, target=None, visited=None):
        """None (nothing connected), ("link", node id, slot) or ("value", v)."""
        visited = visited if visited is not None else set()
        key = (inst.exec_id, "I", inp.get("name"))
        if key in visited:
            raise WorkflowError(f"node {inst.exec_id}: circular link at input '{inp.get('name')}'")
        visited.add(key)
        link = inst.graph.links.get(inp.get("link")) if inp.get("link") is not None else None
        if link is None:
            return None
        origin, origin_slot = link[0], link[1]
        if origin == SUBGRAPH_IN:
            return self._from_subgraph_input(inst.parent, origin_slot, target, visited)
        src = self.insts.get(":".join(inst.path + (origin,)))
        if src is None:
            return None
        return self.resolve_output(src, origin_slot, inp.get("type"), visited)

    def _from_subgraph_input(self, owner: _Inst | None, slot: int, target, visited):
        if owner is None or owner.sub is None or slot >= len(owner.sub.inputs):
            return None
        sg_in = owner.sub.inputs[slot]
        name = sg_in.get("name")
        outer = next((i for i in owner.inputs if i.get("name") == name), None)
        if target is not None and owner.exec_id in self.groups:
            aliases = self.groups[owner.exec_id]["inputs"]
            for alias in {name, sg_in.get("label"), (outer or {}).get("label")} - {None, ""}:
                if target not in aliases.setdefault(alias, []):
                    aliases[alias].append(target)
        if outer is not None and outer.get("link") is not None:
            return self.resolve_input(owner, outer, target, visited)
        if name in owner.legacy:
            return ("value", owner.legacy[name])
        found, value = self._promoted_value(owner, slot, set())
        return ("value", value) if found else None

    def _promoted_value(self, owner: _Inst, slot: int, seen: set) -> tuple[bool, Any]:
        """The value of the widget that a subgraph input promotes: the first inner widget it feeds
        (the frontend gives every consumer of the input that value)."""
        if (owner.exec_id, slot) in seen or slot >= len(owner.sub.inputs):
            return False, None
        seen.add((owner.exec_id, slot))
        for lid in owner.sub.inputs[slot].get("linkIds") or []:
            link = owner.sub.links.get(lid)
            tnode = owner.sub.nodes.get(link[2]) if link else None
            inp = ((tnode or {}).get("inputs") or [])[link[3]:link[3] + 1] if tnode else []
            if not inp or not inp[0].get("widget"):
                continue
            wname = inp[0]["widget"].get("name") or inp[0].get("name")
            inner = self.insts.get(f"{owner.exec_id}:{tnode.get('id')}")
            if inner is not None and inner.sub is not None:     # a nested subgraph's promoted widget
                if wname in inner.legacy:
                    return True, inner.legacy[wname]
                idx = next((i for i, s in enumerate(inner.sub.inputs) if s.get("name") == wname), None)
                if idx is not None:
                    found, value = self._promoted_value(inner, idx, seen)
                    if found:
                        return found, value
                continue
            if (str(tnode.get("id")), wname) in owner.overrides:
                return True, owner.overrides[(str(tnode.get("id")), wname)]
            info = self.oi.get(str(tnode.get("type")))
            if info:
                values, _ = map_widget_values(info, tnode.get("widgets_values"))
                if wname in values:
                    return True, values[wname]
        return False, None

    def resolve_output(self, inst: _Inst, slot: int, want_type, visited):
        key = (inst.exec_id, "O", slot)
        if key in visited:
            raise WorkflowError(f"node {inst.exec_id}: circular link at output {slot}")
        visited.add(key)
        if inst.mode == MUTED:
            return None
        if inst.mode == BYPASSED:
            idx = self._bypass_index(inst, slot, want_type)
            return None if idx < 0 else self.resolve_input(inst, inst.inputs[idx], None, visited)
        if inst.sub is not None:
            return self._subgraph_output(inst, slot, want_type, visited)
        t = inst.node.get("type")
        if t == "Reroute":
            return self.resolve_input(inst, inst.inputs[0], None, visited) if inst.inputs else None
        if t == "PrimitiveNode":
            values = inst.node.get("widgets_values") or []
            control = values[1] if len(values) > 1 and values[1] in CONTROL_VALUES else None
            return ("value", values[0], control, inst) if values else None
        if t == "GetNode":
            name = (inst.node.get("widgets_values") or [None])[0]
            for other in inst.graph.nodes.values():
                if other.get("type") == "SetNode" and (other.get("widgets_values") or [None])[0] == name:
                    setter = self.insts[":".join(inst.path + (str(other.get("id")),))]
                    return self.resolve_input(setter, setter.inputs[0], None, visited) if setter.inputs else None
            return None
        if t in VIRTUAL_TYPES:
            return None
        return ("link", inst.exec_id, slot)

    def _subgraph_output(self, inst: _Inst, slot: int, want_type, visited):
        if slot >= len(inst.sub.outputs):
            return None
        for lid in inst.sub.outputs[slot].get("linkIds") or []:
            link = inst.sub.links.get(lid)
            if link is None:
                continue
            if link[0] == SUBGRAPH_IN:                  # an input wired straight to an output
                return self._from_subgraph_input(inst, link[1], None, visited)
            inner = self.insts.get(f"{inst.exec_id}:{link[0]}")
            return self.resolve_output(inner, link[1], want_type, visited) if inner else None
        return None

    @staticmethod
    def _bypass_index(inst: _Inst, slot: int, want_type) -> int:
        inputs = inst.inputs
        outputs = inst.node.get("outputs") or []
        out_type = outputs[slot].get("type") if slot < len(outputs) else None
        if not inputs:
            return -1
        if want_type in (None, "", "*"):
            return slot if len(inputs) > slot else 0
        if slot < len(inputs) and _types_ok(inputs[slot].get("type"), out_type) \
                and _types_ok(inputs[slot].get("type"), want_type):
            return slot
        for i, x in enumerate(inputs):
            if x.get("type") == want_type:
                return i
        for i, x in enumerate(inputs):
            if _types_ok(x.get("type"), out_type) and _types_ok(x.get("type"), want_type):
                return i
        return -1

    # -- one API node
    def _emit(self, inst: _Inst) -> dict | None:
        t = str(inst.node.get("type"))
        if inst.mode in (MUTED, BYPASSED) or inst.sub is not None or t in VIRTUAL_TYPES:
            return None
        info = self.oi.get(t)
        inputs: dict = {}
        if info:
            values, controls = map_widget_values(info, inst.node.get("widgets_values"))
            if inst.parent is not None:
                for (nid, wname), v in inst.parent.overrides.items():
                    if nid == inst.local_id:
                        values[wname] = v
            for name, v in values.items():
                inputs[name] = {"__value__": v} if isinstance(v, list) else v
            for name, mode in controls.items():
                self.controls[(inst.exec_id, name)] = mode
        for inp in inst.inputs:
            name = inp.get("name")
            resolved = self.resolve_input(inst, inp, target=(inst.exec_id, name))
            if resolved is None:
                continue
            if resolved[0] == "value":
                v = resolved[1]
                inputs[name] = {"__value__": v} if isinstance(v, list) else v
                if len(resolved) > 2:                          # from a PrimitiveNode: its control mode, its title
                    if resolved[2]:
                        self.controls[(inst.exec_id, name)] = resolved[2]
                    self._primitive_alias(resolved[3], (inst.exec_id, name))
            else:
                inputs[name] = [resolved[1], int(resolved[2])]
        title = inst.node.get("title") or (info or {}).get("display_name") or t
        meta = {"title": title}
        props = inst.node.get("properties") or {}
        pack = props.get("cnr_id") or props.get("aux_id")
        if pack and pack != "comfy-core" and not info:
            meta["pack"] = pack
        return {"inputs": inputs, "class_type": t, "_meta": meta}


# ---- --set ---------------------------------------------------------------------------------------
def parse_set(text: str) -> tuple[str, str]:
    """``"TITLE.INPUT=VALUE"`` -> ("TITLE.INPUT", "VALUE")."""
    key, eq, value = text.partition("=")
    if not eq or "." not in key or not key.strip():
        raise WorkflowError(f"--set {text!r}: expected TITLE.INPUT=VALUE, e.g. --set \"KSampler.steps=20\"")
    return key.strip(), value


def node_label(node_id: str, node: dict) -> str:
    title = (node.get("_meta") or {}).get("title")
    ct = node.get("class_type", "?")
    return f"node {node_id} \"{title}\" ({ct})" if title and title != ct else f"node {node_id} ({ct})"


def _titles(prompt: dict) -> list[str]:
    return sorted({(n.get("_meta") or {}).get("title") or n.get("class_type", "?") for n in prompt.values()})


def _find_targets(wf: Workflow, node_part: str) -> list[tuple[str, str | None]] | None:
    """Nodes that ``node_part`` names: [(node id, None)] or, for a subgraph instance, [(instance id, "group")]."""
    prompt = wf.prompt
    if node_part in prompt:
        return [(node_part, None)]
    if node_part in wf.groups:
        return [(node_part, "group")]
    for key in ("title", "title_ci", "class"):
        hits = []
        for nid, node in prompt.items():
            title = (node.get("_meta") or {}).get("title")
            if key == "title" and title == node_part:
                hits.append((nid, None))
            elif key == "title_ci" and title and title.lower() == node_part.lower():
                hits.append((nid, None))
            elif key == "class" and node.get("class_type") == node_part:
                hits.append((nid, None))
        if key != "class":
            for gid, g in wf.groups.items():
                if (key == "title" and g["title"] == node_part) or \
                        (key == "title_ci" and g["title"].lower() == node_part.lower()):
                    hits.append((gid, "group"))
        if hits:
            return hits
    return None


def apply_sets(wf: Workflow | dict, sets: Iterable[str] | dict, object_info: dict) -> list[Upload]:
    """Apply ``TITLE.INPUT=VALUE`` settings to the prompt (in place), coercing each value to the input's
    type. TITLE may also be a node id, a class name (when unique) or a subgraph's title with one of its
    exposed inputs. Raises WorkflowError listing every problem; nothing is changed then. Returns the
    local files that must be uploaded (a path given for an image/video/audio input)."""
    if isinstance(wf, dict):
        wf = Workflow(prompt=wf)
    items = list(sets.items()) if isinstance(sets, dict) else [parse_set(s) for s in sets]
    errors, changes, uploads = [], [], []
    for key, raw in items:
        try:
            targets = _resolve_set_key(wf, key, object_info)
            for nid, inp in targets:
                node = wf.prompt[nid]
                spec = input_spec(object_info[node["class_type"]], inp, node.get("inputs"))
                value, upload = coerce(raw, spec, f"{node_label(nid, node)} input '{inp}'")
                changes.append((nid, inp, value))
                if upload:
                    uploads.append(Upload(nid, inp, upload))
        except WorkflowError as e:
            errors.extend(f"--set {key}={raw}: {m}" for m in e.errors)
    if errors:
        raise WorkflowError(errors)
    for nid, inp, value in changes:
        wf.prompt[nid].setdefault("inputs", {})[inp] = value
    return uploads


def _resolve_set_key(wf: Workflow, key: str, object_info: dict) -> list[tuple[str, str]]:
    """[(node id, input)] for "TITLE.INPUT"; tries every '.' as the split (titles and inputs may have dots)."""
    found_node = None
    for i in [i for i, ch in enumerate(key) if ch == "."]:
        node_part, input_part = key[:i], key[i + 1:]
        targets = _find_targets(wf, node_part)
        if not targets:
            continue
        found_node = (node_part, targets, input_part)
        resolved, missing = [], []
        for nid, kind in targets:
            if kind == "group":
                inner = wf.groups[nid]["inputs"].get(input_part)
                if inner:
                    resolved.extend(inner)
                else:
                    missing.append((nid, kind))
                continue
            node = wf.prompt[nid]
            info = object_info.get(node.get("class_type"))
            if info is None:
                raise WorkflowError(f"{node_label(nid, node)}: the server has no node type '{node.get('class_type')}'")
            if input_spec(info, input_part, node.get("inputs")) is None:
                missing.append((nid, kind))
            else:
                resolved.append((nid, input_part))
        if resolved:
            plain = [r for r in resolved if r[0] in wf.prompt and (r[0], None) in targets]
            if len(plain) > 1:
                ids = ", ".join(n for n, _ in plain)
                raise WorkflowError(f"'{node_part}' names {len(plain)} nodes ({ids}); use the node id instead, "
                                    f"e.g. --set \"{plain[0][0]}.{input_part}=...\"")
            return resolved
    if found_node is None:
        groups = sorted(f"{g['title']} ({g.get('kind', 'subgraph')})" for g in wf.groups.values())
        return _raise(f"no node is titled '{key.rsplit('.', 1)[0]}'. Titles in this workflow: "
                      + "; ".join(_titles(wf.prompt) + groups))
    node_part, targets, input_part = found_node
    nid, kind = targets[0]
    if kind == "group":
        names = sorted(wf.groups[nid]["inputs"])
        kind = wf.groups[nid].get("kind", "subgraph")
        return _raise(f"{kind} '{node_part}' has no input '{input_part}'. Its inputs: {', '.join(names) or 'none'}")
    node = wf.prompt[nid]
    info = object_info[node["class_type"]]
    names = [n for n, _, _ in class_inputs(info)]
    return _raise(f"{node_label(nid, node)} has no input '{input_part}'. Its inputs: {', '.join(names)}")


def _raise(msg):
    raise WorkflowError(msg)


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


def coerce(raw, spec, where: str = "input") -> tuple[Any, Path | None]:
    """(value of the input's type, local file to upload or None). Strings from the command line are
    parsed; Python values are checked. Raises WorkflowError in plain words."""
    t, opts = spec_type(spec), spec_opts(spec)
    if t == "INT":
        try:
            if isinstance(raw, bool):
                raise ValueError
            f = float(raw) if not isinstance(raw, int) else raw
            if isinstance(f, float) and (not math.isfinite(f) or f != int(f)):
                raise ValueError
            value = int(f)
        except (TypeError, ValueError):
            raise WorkflowError(f"{where} expects a whole number{_range_text(opts)}, got {raw!r}") from None
        _check_range(value, opts, where, "a whole number")
        return value, None
    if t == "FLOAT":
        try:
            if isinstance(raw, bool):
                raise ValueError
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError
        except (TypeError, ValueError):
            raise WorkflowError(f"{where} expects a number{_range_text(opts)}, got {raw!r}") from None
        _check_range(value, opts, where, "a number")
        return value, None
    if t == "BOOLEAN":
        if isinstance(raw, bool):
            return raw, None
        s = str(raw).strip().lower()
        if s in ("true", "1", "yes", "on"):
            return True, None
        if s in ("false", "0", "no", "off"):
            return False, None
        raise WorkflowError(f"{where} expects true or false, got {raw!r}")
    if t in ("STRING", "MARKDOWN", "TEXTAREA", "COLOR"):
        return ("" if raw is None else str(raw) if not isinstance(raw, str) else raw), None
    if t in ("COMBO", "COMFY_DYNAMICCOMBO_V3"):
        choices = combo_options(spec)
        for c in choices:
            if c == raw or str(c) == str(raw):
                return c, None
        if any(opts.get(flag) for flag in UPLOAD_FLAGS) and isinstance(raw, (str, os.PathLike)) \
                and Path(raw).expanduser().is_file():
            return Path(raw).name, Path(raw).expanduser().resolve()
        hint = " (or a path to a local file to upload)" if any(opts.get(f) for f in UPLOAD_FLAGS) else ""
        raise WorkflowError(f"{where}: {raw!r} is not available on the server{hint}; {_choices_text(choices)}")
    if spec is None:
        raise WorkflowError(f"{where} is not an input of this node")
    raise WorkflowError(f"{where} takes a connection from another node ({t}), not a value")


def _check_range(value, opts, where, kind):
    lo, hi = opts.get("min"), opts.get("max")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise WorkflowError(f"{where} expects {kind}{_range_text(opts)}, got {value}")


# ---- validation ----------------------------------------------------------------------------------
def pack_hint(class_type: str, meta: dict | None = None) -> str:
    pack = (meta or {}).get("pack")
    if not pack:
        pack = next((p for prefix, p in KNOWN_PACKS if class_type.startswith(prefix)), None)
    if pack:
        return f"install the custom node pack {pack} on the server and restart it"
    return "a custom node pack is probably missing on the server (or the node was renamed)"


def _all_inputs(info: dict, inputs: dict) -> list[tuple[str, Any, bool]]:
    """The class's inputs with dynamic combos expanded for the chosen values ("a.b" names)."""
    return _expand_dynamic(class_inputs(info), inputs, "")


def _expand_dynamic(specs, inputs: dict, prefix: str) -> list[tuple[str, Any, bool]]:
    out = []
    for name, spec, optional in specs:
        full = prefix + name
        out.append((full, spec, optional))
        if spec_type(spec) == "COMFY_DYNAMICCOMBO_V3":
            sub = [(n, s, optional or o) for n, s, o in _dynamic_sub_inputs(spec, inputs.get(full))]
            out.extend(_expand_dynamic(sub, inputs, full + "."))
    return out


def validate(prompt: dict, object_info: dict) -> list[str]:
    """Problems that would make the server refuse or fail the prompt, as plain sentences: unknown node
    types (and which pack may be missing), missing required inputs, links to missing nodes or outputs,
    values outside min/max, and choices (e.g. model files) the server does not have."""
    if not isinstance(prompt, dict) or not prompt:
        return ["the workflow has no nodes"]
    errors, has_output, unknown = [], False, False
    for nid, node in prompt.items():
        if not isinstance(node, dict):
            errors.append(f"node {nid}: is not a node ({type(node).__name__})")
            continue
        label = node_label(nid, node)
        ct = node.get("class_type")
        if not ct:
            errors.append(f"{label}: has no class_type")
            continue
        info = object_info.get(ct)
        if info is None:
            unknown = True
            errors.append(f"{label}: the server does not know the node type '{ct}'; "
                          f"{pack_hint(ct, node.get('_meta'))}")
            continue
        has_output = has_output or bool(info.get("output_node"))
        inputs = node.get("inputs") or {}
        expanded = _all_inputs(info, inputs)
        for name, spec, optional in expanded:
            t = spec_type(spec)
            if name not in inputs:
                if not optional and t not in ("COMFY_AUTOGROW_V3",):
                    errors.append(f"{label}: required input '{name}' ({t}) is missing")
                continue
            v = inputs[name]
            if is_link(v):
                errors.extend(_check_link(label, name, spec, v, prompt, object_info))
            else:
                errors.extend(_check_value(label, name, spec, v))
        known = {n for n, _, _ in expanded}
        for name, v in inputs.items():              # autogrow entries ("values.a")
            spec = input_spec(info, name, inputs) if name not in known and is_link(v) else None
            if spec is not None:
                errors.extend(_check_link(label, name, spec, v, prompt, object_info))
    if not has_output and not unknown:
        errors.append("the workflow has no output node (such as Save Image, Save Video, Save Audio or Preview "
                      "Image), so the server would run nothing")
    return errors


def _check_link(label, name, spec, v, prompt, object_info) -> list[str]:
    src_id, slot = v
    src = prompt.get(src_id)
    if src is None:
        return [f"{label}: input '{name}' is connected to node {src_id}, which is not in the workflow"]
    src_info = object_info.get(src.get("class_type"))
    if src_info is None:
        return []                                   # reported as an unknown type already
    outputs = src_info.get("output") or []
    if slot < 0 or slot >= len(outputs):
        return [f"{label}: input '{name}' is connected to output {slot} of {node_label(src_id, src)}, "
                f"which has {len(outputs)} output{'s' if len(outputs) != 1 else ''}"]
    out_t = "COMBO" if isinstance(outputs[slot], list) else outputs[slot]
    in_t = "COMBO" if isinstance(spec[0], list) else spec[0]            # the socket type, not the widget
    if in_t == "COMBO" or str(out_t).startswith("COMFY_") or str(in_t).startswith("COMFY_") or _types_ok(out_t, in_t):
        return []
    return [f"{label}: input '{name}' expects {in_t} but is connected to output {slot} of "
            f"{node_label(src_id, src)}, which gives {out_t}"]


def _check_value(label, name, spec, v) -> list[str]:
    t, opts = spec_type(spec), spec_opts(spec)
    where = f"{label}: input '{name}'"
    if isinstance(v, dict) and "__value__" in v:
        return []
    if t in ("INT", "FLOAT"):
        try:
            num = int(v) if t == "INT" else float(v)
        except (TypeError, ValueError):
            return [f"{where} expects {'a whole number' if t == 'INT' else 'a number'}, got {v!r}"]
        lo, hi = opts.get("min"), opts.get("max")
        if (lo is not None and num < lo) or (hi is not None and num > hi):
            return [f"{where} is {num}, outside the allowed range{_range_text(opts)}"]
        return []
    if t in ("COMBO", "COMFY_DYNAMICCOMBO_V3") and not opts.get("multiselect"):
        choices = combo_options(spec)
        if v not in choices and str(v) not in [str(c) for c in choices]:
            return [f"{where}: {v!r} is not available on the server; {_choices_text(choices)}"]
    return []


# ---- batches -------------------------------------------------------------------------------------
def vary_seeds(wf: Workflow | dict, object_info: dict, k: int) -> dict:
    """A copy of the prompt for the k-th job of a batch: every seed input whose control mode is
    randomize/increment (UI files remember it; for API prompts: inputs flagged control_after_generate
    without a "fixed" default) is moved by k (decrement: -k), wrapped into the input's range.
    k == 0 returns an unchanged copy."""
    if isinstance(wf, dict):
        wf = Workflow(prompt=wf)
    prompt = copy.deepcopy(wf.prompt)
    if k == 0:
        return prompt
    for nid, node in prompt.items():
        info = object_info.get(node.get("class_type"))
        if not info:
            continue
        for name, spec, _ in class_inputs(info):
            v = (node.get("inputs") or {}).get(name)
            if spec_type(spec) != "INT" or not isinstance(v, int) or isinstance(v, bool) or not has_control(name, spec):
                continue
            mode = wf.controls.get((nid, name))
            if mode is None:
                flag = spec_opts(spec).get("control_after_generate")
                mode = flag if isinstance(flag, str) else "randomize"
            if mode == "fixed":
                continue
            lo, hi = spec_opts(spec).get("min", 0), spec_opts(spec).get("max", 2 ** 64 - 1)
            new = v - k if mode == "decrement" else v + k
            node["inputs"][name] = lo + (new - lo) % (hi - lo + 1)
    return prompt
