"""API-format prompt -> the graph editor's (UI) workflow format, given the server's /object_info.

The inverse of workflow.to_api for the graphs LockN Gen ships: every node with its sockets, widget
values in the editor's order (linked widgets keep a value too; seeds get their control value),
links, titles, `properties.models` for the missing-models dialog, and for each PrimitiveInt and
PrimitiveFloat the range of the inputs its value feeds as ``properties`` min, max and step (below). A dynamic combo's value is followed
by the widgets of its chosen option (``"format.codec"``; where the prompt has only a hidden input of
that name, as 0.33's SaveVideo ``codec`` in an older API prompt, its value), in the order
``workflow.to_api`` reads them back.

Layout. Without stages every node sits on the top level. With ``stages`` (node id -> stage title, as
lockn_gen.chains gives them) the file reads like ComfyUI's official templates:

* the top level holds the nodes of no stage (Start image, Brief, Save ...), ONE subgraph instance per
  stage (its ``type`` is the id of a ``definitions.subgraphs`` entry, its title the stage's) and the
  Markdown notes, in a column on the left;
* a link that crosses a stage's boundary goes through the subgraph's inputs and outputs: one output per
  inner source, one input per outside source (fanned out inside);
* the widgets a user changes (``faces``: (node id, input) -> name) are promoted to the stage's face the
  way the editor writes them: a subgraph input of that name linked to the inner widget's input, an input
  with ``widget`` on the instance, and a ``properties.proxyWidgets`` entry [inner id, widget]. The values
  stay in the inner nodes' widgets_values. ``faces`` also names a socket (an input fed from outside) or a
  subgraph output ((node id, output index) -> name);
* a face that a PrimitiveInt or PrimitiveFloat stands for ("Image width", "Length (frames)") would take
  the Primitive's own range, any 64-bit number: the editor builds a promoted widget from the inner widget
  it is linked to (frontend 1.43 and 1.49: the first inner widget the subgraph input feeds, its type,
  value and options). So the Primitive carries the range of the inputs it feeds, through the turbo
  switches and into other stages (``workflow_schema.value_range``: min and max intersected, the steps'
  common multiple), in its ``properties`` min, max and step, which is where the editor's Int and Float
  widgets read their range (the frontend's Comfy.CustomWidgets extension, both versions; the node's
  properties panel shows and changes them). The face then shows and keeps that range, and the file stays
  what it was otherwise: same nodes, titles, links and prompt;
* node ids are the prompt's, on every level (unique in the file, as the editor keeps them); instances and
  notes take the next ones. Flattening the file (workflow.to_api, or the editor when it queues) gives
  the prompt back, inner ids as "<instance>:<inner>";
* placement, on each level: columns left to right, each node as late as its consumers allow (a value
  sits just before the node that uses it), the nodes of a column stacked with gaps for their title bars;
  sizes follow the editor's own measure (slot rows, widgets) with room for prompts. So links run left to
  right and nothing overlaps. A subgraph's input node sits left of its first column, its output node
  right of its last. The notes lie side by side in a band under the top level's nodes.
"""
from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, field

from .workflow import _default, _is_widget, class_inputs, has_control, input_spec, is_hidden, is_link, spec_opts, spec_type
from .workflow_schema import RANGED_PRIMITIVES, _dynamic_sub_inputs, _links_to, value_range

# LiteGraph's measures (LGraphNode.computeSize): a slot row 20, a widget 24; the title bar (30) sits above pos.
# A prompt's text box gets more room than the editor's minimum (54).
TITLE_H, SLOT_H, WIDGET_H, TEXT_H = 30, 20, 24, 90
COL_GAP, ROW_GAP = 60, 30                 # ROW_GAP: from a node's bottom to the next one's title bar
NODE_W, TEXT_NODE_W, IO_W = 300, 400, 180
MIN_SIZE = {"LoadImage": (320, 360), "SaveImage": (400, 400), "SaveVideo": (400, 400)}
SUBGRAPH_IN, SUBGRAPH_OUT = -10, -20
NOTE_COLORS = {"color": "#432", "bgcolor": "#000"}


# ---- one node, its links still to be made ---------------------------------------------------------------
@dataclass
class _Node:
    ui: dict                                    # the editor's node
    wires: list = field(default_factory=list)   # (input index, input name, [source id, slot])
    promoted: dict = field(default_factory=dict)  # input name -> input index, for the widgets on a face
    heights: list = field(default_factory=list)   # one per widget row


def _ui_node(nid: str, node: dict, object_info: dict, promote: set[str]) -> _Node:
    info = object_info[node["class_type"]]
    out = _Node(ui={})
    inputs, widgets = [], []
    specs = class_inputs(info)
    names = {n for n, _, _ in specs}
    flat = {n: sp for n, sp, _ in specs}

    def add(iname, spec, optional, value):
        """One input's widget value and/or socket; a dynamic combo's chosen option follows it."""
        t = spec_type(spec)
        widget = _is_widget(spec)
        shown = _default(spec) if (value is None or is_link(value)) else value
        if widget:
            widgets.append(shown)
            out.heights.append(_widget_height(spec))
            if has_control(iname.rsplit(".", 1)[-1], spec):
                widgets.append("fixed")
                out.heights.append(WIDGET_H)
        promoted = widget and iname in promote and not is_link(value)
        if is_link(value) or not widget or promoted:
            entry = {"localized_name": iname, "name": iname, "type": t, "link": None}
            if "." in iname:
                entry = {"label": iname.rsplit(".", 1)[1], **entry}
            if widget:
                entry["widget"] = {"name": iname}
            if optional:
                entry["shape"] = 7
            if is_link(value):
                out.wires.append((len(inputs), iname, value))
            if promoted:
                out.promoted[iname] = len(inputs)
            inputs.append(entry)
        if t == "COMFY_DYNAMICCOMBO_V3":               # the editor shows the chosen option's widgets next
            for sub, sub_spec, sub_optional in _dynamic_sub_inputs(spec, shown):
                key = f"{iname}.{sub}"
                v = node["inputs"].get(key)
                if v is None and sub in flat and is_hidden(flat[sub]):
                    v = node["inputs"].get(sub)   # an API prompt's hidden "codec" is the "format.codec" shown
                add(key, sub_spec, sub_optional, v)

    for iname, spec, optional in specs:
        value = node["inputs"].get(iname)
        if spec_type(spec) == "COMFY_AUTOGROW_V3":      # e.g. Math Expression's values.a, values.b
            for key in sorted(k for k in node["inputs"] if k.startswith(iname + ".")):
                v = node["inputs"][key]
                sub = input_spec(info, key, node["inputs"]) or ["*"]
                if is_link(v):
                    out.wires.append((len(inputs), key, v))
                inputs.append({"label": key.split(".", 1)[1], "localized_name": key, "name": key,
                               "type": spec_type(sub), "link": None})
            continue
        add(iname, spec, optional, value)
    unknown = [k for k in node["inputs"] if k not in names and "." not in k]
    if unknown:
        raise ValueError(f"node {nid} ({node['class_type']}): inputs the server does not list: {unknown}")
    out_names = info.get("output_name") or info["output"]
    out.ui = {"id": int(nid), "type": node["class_type"], "pos": [0, 0], "size": [NODE_W, 0], "flags": {},
              "order": 0, "mode": 0, "inputs": inputs,
              "outputs": [{"localized_name": out_names[s], "name": out_names[s], "type": t, "links": [], "slot_index": s}
                          for s, t in enumerate(info["output"])],
              "properties": {"Node name for S&R": node["class_type"]}, "widgets_values": widgets}
    title = (node.get("_meta") or {}).get("title")
    if title:
        out.ui["title"] = title
    _fit_size(out.ui, out.heights)
    return out


def _widget_height(spec) -> int:
    return TEXT_H if spec_opts(spec).get("multiline") else WIDGET_H


def _fit_size(ui: dict, widget_heights: list) -> None:
    """The size the editor computes (slots, then widgets), or more: it never has to grow the node."""
    sockets = sum(1 for i in ui["inputs"] if "widget" not in i)
    h = SLOT_H * max(sockets, len(ui["outputs"])) + 6 + sum(widget_heights) + (12 if widget_heights else 4)
    w = TEXT_NODE_W if TEXT_H in widget_heights else NODE_W
    min_w, min_h = MIN_SIZE.get(ui["type"], (w, 0))
    ui["size"] = [max(w, min_w), max(h, min_h)]


# ---- one level of the file: the top level or a stage's subgraph -------------------------------------------
@dataclass
class _Level:
    stage: str | None
    nodes: list = field(default_factory=list)     # the editor's nodes on this level
    links: list = field(default_factory=list)     # (id, origin, origin slot, target, target slot, type)
    inputs: list = field(default_factory=list)    # a subgraph's inputs and outputs
    outputs: list = field(default_factory=list)
    keys: dict = field(default_factory=dict)      # ("in"/"out", source or face) -> slot index


class _Builder:
    def __init__(self, prompt, object_info, stages, stage_names, faces, name):
        self.prompt, self.oi, self.stages, self.faces, self.name = prompt, object_info, stages, faces, name
        self.stage_names = stage_names
        promote = {}
        for (nid, key), _ in faces.items():
            if isinstance(key, str) and nid in stages:
                promote.setdefault(nid, set()).add(key)
        self.built = {nid: _ui_node(nid, n, object_info, promote.get(nid, set())) for nid, n in prompt.items()}
        links = _links_to(prompt)
        for nid, n in prompt.items():                 # a Primitive's range: what the inputs it feeds take
            r = value_range(prompt, object_info, nid, "value", links=links) if n["class_type"] in RANGED_PRIMITIVES else None
            if r is not None and r.sources:
                self.built[nid].ui["properties"].update(r.properties())
        order = list(dict.fromkeys(stages[n] for n in sorted(prompt, key=_num) if n in stages))
        self.levels = {None: _Level(None), **{s: _Level(s) for s in order}}
        top = max(int(n) for n in prompt if n.isdigit())
        self.inst = {s: self._instance(s, top + i + 1) for i, s in enumerate(order)}
        for nid in sorted(prompt, key=_num):
            self.levels[stages.get(nid)].nodes.append(self.built[nid].ui)
        self.next_link = 1
        self.next_id = top + len(order) + 1

    # -- links
    def _link(self, level: _Level, origin, slot, target, tslot, ltype) -> int:
        lid = self.next_link
        self.next_link += 1
        level.links.append((lid, origin, slot, target, tslot, ltype))
        return lid

    def _instance(self, stage: str, iid: int) -> dict:
        return {"id": iid, "type": str(uuid.uuid5(uuid.NAMESPACE_URL, f"lockn-gen/{self.name}/{stage}")),
                "pos": [0, 0], "size": [NODE_W, 0], "flags": {}, "order": 0, "mode": 0, "inputs": [],
                "outputs": [], "title": stage, "properties": {"proxyWidgets": []}, "widgets_values": []}

    def _slot(self, level: _Level, side: str, name: str, ltype: str) -> dict:
        used = {s["name"] for s in (level.inputs if side == "in" else level.outputs)}
        unique, k = name, 0
        while unique in used:
            k += 1
            unique = f"{name}_{k}"
        slot = {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"lockn-gen/{self.name}/{level.stage}/{side}/{unique}")),
                "name": unique, "type": ltype, "linkIds": [], "localized_name": unique}
        (level.inputs if side == "in" else level.outputs).append(slot)
        return slot

    def _stage_output(self, stage: str, src: str, slot: int, ltype: str) -> int:
        level, key = self.levels[stage], ("out", src, slot)
        if key not in level.keys:
            info = self.oi[self.prompt[src]["class_type"]]
            name = self.faces.get((src, slot)) or (info.get("output_name") or info["output"])[slot]
            sg = self._slot(level, "out", name, ltype)
            level.keys[key] = len(level.outputs) - 1
            sg["linkIds"].append(self._link(level, int(src), slot, SUBGRAPH_OUT, level.keys[key], ltype))
            self.inst[stage]["outputs"].append({"localized_name": sg["name"], "name": sg["name"], "type": ltype,
                                                "links": []})
        return level.keys[key]

    def _stage_input(self, stage: str, key: tuple, name: str, ltype: str, widget: bool = False) -> dict:
        level = self.levels[stage]
        if key not in level.keys:
            sg = self._slot(level, "in", name, ltype)
            level.keys[key] = len(level.inputs) - 1
            entry = {"localized_name": sg["name"], "name": sg["name"], "type": ltype, "link": None}
            if widget:
                entry["widget"] = {"name": sg["name"]}
            else:                                   # fed from outside: one link on the top level
                origin, slot = key[1], key[2]
                entry["link"] = self._link(self.levels[None], origin, slot, self.inst[stage]["id"],
                                           level.keys[key], ltype)
            self.inst[stage]["inputs"].append(entry)
        return level.inputs[level.keys[key]]

    def connect(self, src: str, slot: int, dst: str, idx: int, iname: str):
        ltype = self.oi[self.prompt[src]["class_type"]]["output"][slot]
        s_st, d_st = self.stages.get(src), self.stages.get(dst)
        origin, oslot = int(src), slot
        if s_st != d_st and s_st is not None:
            oslot, origin = self._stage_output(s_st, src, slot, ltype), self.inst[s_st]["id"]
        if s_st != d_st and d_st is not None:
            sg = self._stage_input(d_st, ("in", origin, oslot), self.faces.get((dst, iname), iname), ltype)
            origin, oslot = SUBGRAPH_IN, self.levels[d_st].inputs.index(sg)
        level = self.levels[d_st]
        lid = self._link(level, origin, oslot, int(dst), idx, ltype)
        if origin == SUBGRAPH_IN:
            level.inputs[oslot]["linkIds"].append(lid)
        self.built[dst].ui["inputs"][idx]["link"] = lid

    def promote(self, nid: str, key: str, name: str):
        b, stage = self.built[nid], self.stages[nid]
        entry = b.ui["inputs"][b.promoted[key]]
        sg = self._stage_input(stage, ("face", nid, key), name, entry["type"], widget=True)
        level = self.levels[stage]
        lid = self._link(level, SUBGRAPH_IN, level.inputs.index(sg), int(nid), b.promoted[key], entry["type"])
        sg["linkIds"].append(lid)
        entry["link"] = lid
        self.inst[stage]["properties"]["proxyWidgets"].append([nid, key])

    def wire_all(self):
        wires = [(dst, idx, iname, v) for dst in sorted(self.prompt, key=_num) for idx, iname, v in self.built[dst].wires]
        leaving = {tuple(v) for dst, _, _, v in wires if self.stages.get(v[0]) not in (None, self.stages.get(dst))}
        for (nid, key), _ in self.faces.items():          # a stage's named outputs first, in the order named
            if (nid, key) in leaving:
                ltype = self.oi[self.prompt[nid]["class_type"]]["output"][key]
                self._stage_output(self.stages[nid], nid, key, ltype)
        named = [w for w in wires if (w[0], w[2]) in self.faces]      # a socket named on the face first
        for dst, idx, iname, (src, slot) in named + [w for w in wires if w not in named]:
            self.connect(src, slot, dst, idx, iname)
        for (nid, key), name in self.faces.items():
            if isinstance(key, str) and key in self.built[nid].promoted:
                self.promote(nid, key, name)

    # -- the file
    def result(self, models, notes) -> dict:
        self.wire_all()
        for nid, m in (models or {}).items():
            if m:
                self.built[nid].ui["properties"]["models"] = m
        root = self.levels[None]
        subgraphs = []
        for stage, inst in self.inst.items():
            level = self.levels[stage]
            _size_instance(inst, self.built, level, self.prompt, self.oi)
            root.nodes.append(inst)
            subgraphs.append(self._definition(level, inst))
        _finish_outputs(root)
        _place(root.nodes, root.links)
        note_nodes = self._notes(notes, below=max((n["pos"][1] + n["size"][1] for n in root.nodes), default=0))
        all_ids = [n["id"] for lv in self.levels.values() for n in lv.nodes] + [n["id"] for n in note_nodes]
        ui = {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"lockn-gen/{self.name}")), "revision": 0,
              "last_node_id": max(all_ids), "last_link_id": self.next_link - 1,
              "nodes": root.nodes + note_nodes, "links": [list(x) for x in root.links], "groups": []}
        if subgraphs:
            ui["definitions"] = {"subgraphs": subgraphs}
        ui.update({"config": {}, "extra": {"ds": {"scale": 0.6, "offset": [40, 40]}, "lockn_gen": {"workflow": self.name}},
                   "version": 0.4})
        return ui

    def _definition(self, level: _Level, inst: dict) -> dict:
        _finish_outputs(level)
        right = _place(level.nodes, level.links)
        in_h, out_h = 48 + 20 * len(level.inputs), 48 + 20 * len(level.outputs)
        in_box = [-(IO_W + COL_GAP), 0, IO_W, in_h]
        out_box = [right + COL_GAP, 0, 140, out_h]
        for i, s in enumerate(level.inputs):
            s["pos"] = [in_box[0] + IO_W - 24, 24 + 20 * i]
        for i, s in enumerate(level.outputs):
            s["pos"] = [out_box[0] + 24, 24 + 20 * i]
        last_id = max([n["id"] for n in level.nodes] + [inst["id"]])
        return {"id": inst["type"], "version": 1,
                "state": {"lastGroupId": 0, "lastNodeId": last_id, "lastLinkId": self.next_link - 1, "lastRerouteId": 0},
                "revision": 0, "config": {}, "name": self.stage_names.get(level.stage, level.stage),
                "inputNode": {"id": SUBGRAPH_IN, "bounding": in_box},
                "outputNode": {"id": SUBGRAPH_OUT, "bounding": out_box},
                "inputs": level.inputs, "outputs": level.outputs, "widgets": [], "nodes": level.nodes, "groups": [],
                "links": [dict(zip(("id", "origin_id", "origin_slot", "target_id", "target_slot", "type"), x))
                          for x in level.links], "extra": {}}

    def _notes(self, notes, below: float) -> list[dict]:
        """The notes side by side in a band under the stages, the first at the left."""
        out, x = [], 0.0
        for title, text in notes or ():
            out.append({"id": self.next_id, "type": "MarkdownNote", "pos": [x, below + ROW_GAP + TITLE_H],
                        "size": _note_size(text), "flags": {}, "order": 0, "mode": 0, "inputs": [], "outputs": [],
                        "title": title, "properties": {}, "widgets_values": [text], **NOTE_COLORS})
            self.next_id += 1
            x += out[-1]["size"][0] + COL_GAP
        return out


def _num(nid: str):
    return (0, int(nid)) if nid.isdigit() else (1, nid)


def _size_instance(inst: dict, built: dict, level: _Level, prompt: dict, object_info: dict) -> None:
    """The stage's face: a widget for each input that feeds an inner widget (a promoted one, or a socket
    into a widget, which the editor shows as a widget too), a slot row for the other sockets."""
    targets = {lid: (str(t), ts) for lid, o, _, t, ts, _ in level.links if o == SUBGRAPH_IN}
    heights, sockets = [], 0
    for slot in level.inputs:
        nid, ts = targets[slot["linkIds"][0]]
        entry = built[nid].ui["inputs"][ts]
        if "widget" in entry:
            spec = input_spec(object_info[prompt[nid]["class_type"]], entry["name"], prompt[nid]["inputs"])
            heights.append(_widget_height(spec))
        else:
            sockets += 1
    inst["size"] = [TEXT_NODE_W if TEXT_H in heights else NODE_W,
                    SLOT_H * max(sockets, len(inst["outputs"])) + 6 + sum(heights) + 12]


def _finish_outputs(level: _Level) -> None:
    """Each node's outputs list the ids of the links that leave them on this level."""
    by_id = {n["id"]: n for n in level.nodes}
    for lid, origin, slot, *_ in level.links:
        if origin in by_id:
            by_id[origin]["outputs"][slot]["links"].append(lid)


def _columns(ids: set, links: list) -> dict[int, int]:
    """Each node's column: as late as its consumers allow (a value sits just before where it is used),
    sinks at their longest path from a source. So every link runs to a later column."""
    ups: dict[int, set] = {i: set() for i in ids}
    downs: dict[int, set] = {i: set() for i in ids}
    for _, origin, _, target, *_ in links:
        if origin in ids and target in ids:
            ups[target].add(origin)
            downs[origin].add(target)
    asap: dict[int, int] = {}

    def longest(i):
        if i not in asap:
            asap[i] = 0                         # (a cycle cannot happen in a prompt; this only guards)
            asap[i] = 1 + max((longest(u) for u in ups[i]), default=-1)
        return asap[i]

    col = {}
    for i in sorted(ids, key=longest, reverse=True):
        col[i] = min((col[c] for c in downs[i]), default=asap[i] + 1) - 1
    return col


def _place(nodes: list[dict], links: list) -> float:
    """Columns left to right, each column's nodes stacked under their title bars. Returns the right edge."""
    col = _columns({n["id"] for n in nodes}, links)
    columns: dict[int, list] = {}
    for n in nodes:
        columns.setdefault(col[n["id"]], []).append(n)
    x, order = 0.0, 0
    for c in sorted(columns):
        y = float(TITLE_H)
        for n in columns[c]:
            n["pos"], n["order"] = [x, y], order
            order += 1
            y += n["size"][1] + ROW_GAP + TITLE_H
        x += max(n["size"][0] for n in columns[c]) + COL_GAP
    return x - COL_GAP


def _plain(line: str) -> str:
    """A markdown line as the note shows it (links by their text, no emphasis marks)."""
    return re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", line).replace("**", "").replace("`", "")


def _note_size(text: str) -> list[float]:
    """[width, height] that shows a note's markdown whole, as the editor renders it (about 6 px a
    character, 17 a text line, 22 a table row): as wide as its widest table row or command, within limits."""
    lines = text.splitlines()
    wide = max((len(_plain(x)) for x in lines if x.startswith(("|", "    "))), default=0)
    w = min(max(6 * wide + 60, 480), 760)
    h = 50.0
    for prev, x in zip([""] + lines, lines):
        if x.startswith("#"):
            h += 34
        elif x.startswith("|"):
            h += 0 if set(x) <= set("|-: ") else 22
        elif x.startswith("    "):
            h += 18 + (16 if not prev.startswith("    ") else 0)
        elif not x.strip():
            h += 8
        else:
            h += 17 * math.ceil(len(_plain(x)) * 6 / (w - 40))
    return [round(w), round(h)]


def api_to_ui(prompt: dict, object_info: dict, models: dict | None = None, name: str = "", stages: dict | None = None,
              stage_names: dict | None = None, faces: dict | None = None, notes=()) -> dict:
    """The UI workflow of ``prompt``: flat, or with one subgraph per stage (see the module docstring).
    ``models``: node id -> properties.models; ``notes``: (title, markdown) of the notes on the left."""
    b = _Builder(prompt, object_info, stages or {}, stage_names or {}, faces or {}, name)
    return b.result(models, notes)
