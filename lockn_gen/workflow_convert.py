"""UI -> API conversion: turn a workflow saved by the editor into the prompt that ``POST /prompt`` takes,
against a server's ``/object_info``.

The conversion follows ComfyUI's frontend (``graphToPrompt`` and ``ExecutableNodeDTO`` in
ComfyUI_frontend 1.43) rather than copying it:

* ``widgets_values`` are mapped onto the class's widget inputs in ``input_order`` (required, then
  optional), by ``workflow_schema.map_widget_values``. INT inputs with ``control_after_generate`` (or
  named seed/noise_seed) are followed by the control value ("randomize", ...), COMBO ones by the
  control value and a filter string; those are skipped. Dynamic combos (``COMFY_DYNAMICCOMBO_V3``)
  are followed by the widgets of the chosen option.
* muted nodes (mode 2) are dropped and whatever they fed loses that input; bypassed nodes (mode 4)
  pass an input of the matching type through to their consumers.
* virtual nodes: ``Reroute`` passes its input on, ``PrimitiveNode`` writes its value into its targets,
  ``Note``/``MarkdownNote`` are dropped, KJNodes' ``SetNode``/``GetNode`` are resolved by name.
  ``PrimitiveInt/Float/String/Boolean`` are real server nodes and stay (as the frontend keeps them),
  so ``--set "Int (Steps).value=8"`` still finds them. The range a PrimitiveInt or PrimitiveFloat has in
  its ``properties`` (min, max, step: the editor's widget keeps to it) goes to ``Workflow.ranges``, so
  that ``--set`` keeps to it too.
* a node whose type is a subgraph id (``definitions.subgraphs``) is expanded inline: its inner nodes get
  ids ``"<outer>:<inner>"``, its inputs and outputs are wired through, and the values of its promoted
  widgets (legacy ``widgets_values``/``proxyWidgets`` entries) are written into the inner inputs.

Nothing here talks to a server: ``object_info`` is a dict (the JSON of ``GET /object_info``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .workflow_schema import (CONTROL_VALUES, RANGED_PRIMITIVES, Workflow, WorkflowError, _types_ok, is_link,
                              map_widget_values)

MUTED, BYPASSED = 2, 4
SUBGRAPH_IN = "-10"                 # origin id of links from a subgraph's inputs (its outputs' target is -20)
NOTE_TYPES = {"Note", "MarkdownNote"}
VIRTUAL_TYPES = NOTE_TYPES | {"Reroute", "PrimitiveNode", "SetNode", "GetNode"}


# ---- the UI graph: nodes and links of a (sub)graph, one node instance ----------------------------
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


# ---- the converter: expand subgraphs, resolve links, emit API nodes ------------------------------
class _UIConverter:
    """Converts one UI file; ``convert()`` returns the :class:`Workflow`."""

    def __init__(self, data: dict, object_info: dict):
        self.data = data
        self.oi = object_info or {}
        self.subgraphs = {str(s.get("id")): _graph(s) for s in (data.get("definitions") or {}).get("subgraphs") or []}
        self.insts: dict[str, _Inst] = {}
        self.order: list[_Inst] = []
        self.groups: dict = {}
        self.controls: dict = {}
        self.ranges: dict = {}            # (exec id, "value") -> a Primitive's range from its properties
        self.dangling: list = []          # (exec id, input name, what the link points at) of broken links

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
        self._refuse_dangling(prompt)
        for gid, group in self.groups.items():
            if group["kind"] == "subgraph":
                self._proxy_aliases(self.insts[gid], prompt)
        self.ranges = {k: v for k, v in self.ranges.items() if k[0] in prompt}
        return Workflow(prompt=prompt, format="ui", groups=self.groups, controls=self.controls, ranges=self.ranges)

    def _refuse_dangling(self, prompt: dict):
        """A required input whose link points at a node (or a link) the file does not have: the editor
        shows it unconnected and the server would refuse the prompt; say which link is broken."""
        errors = []
        for exec_id, name, what in dict.fromkeys(self.dangling):
            node = prompt.get(exec_id)
            info = self.oi.get(node["class_type"]) if node else None
            required = ((info or {}).get("input") or {}).get("required") or {}
            if node is not None and name in required and name not in node["inputs"]:
                errors.append(f"node {exec_id} ({node['class_type']}): input '{name}' is linked to {what}; "
                              "reconnect the input in the editor and save the workflow again")
        if errors:
            raise WorkflowError(errors)

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
                raise WorkflowError(f"subgraph '{sub.name or sub.id}' contains itself; remove that inner instance "
                                    f"of it in the editor and save the workflow again")
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
            raise WorkflowError(f"node {inst.exec_id}: circular link at input '{inp.get('name')}': the links loop back "
                                f"on themselves (through Reroutes or bypassed nodes); remove one of them in the editor")
        visited.add(key)
        link = inst.graph.links.get(inp.get("link")) if inp.get("link") is not None else None
        if link is None:
            if inp.get("link") is not None:
                self.dangling.append((inst.exec_id, inp.get("name"),
                                      f"link {inp.get('link')}, which is not in the workflow's list of links"))
            return None
        origin, origin_slot = link[0], link[1]
        if origin == SUBGRAPH_IN:
            return self._from_subgraph_input(inst.parent, origin_slot, target, visited)
        src = self.insts.get(":".join(inst.path + (origin,)))
        if src is None:
            self.dangling.append((inst.exec_id, inp.get("name"),
                                  f"node {origin} (link {inp.get('link')}), which is not in the workflow"))
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
            raise WorkflowError(f"node {inst.exec_id}: circular link at output {slot}: the links loop back on "
                                f"themselves (through Reroutes or bypassed nodes); remove one of them in the editor")
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
        if t in RANGED_PRIMITIVES and isinstance(props, dict):
            declared = {k: props[k] for k in ("min", "max", "step")
                        if isinstance(props.get(k), (int, float)) and not isinstance(props.get(k), bool)}
            if declared:
                self.ranges[(inst.exec_id, "value")] = declared
        pack = props.get("cnr_id") or props.get("aux_id")
        if pack and pack != "comfy-core" and not info:
            meta["pack"] = pack
        return {"inputs": inputs, "class_type": t, "_meta": meta}
