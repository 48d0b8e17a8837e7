"""API-format prompt -> the graph editor's (UI) workflow format, given the server's /object_info.

The inverse of workflow.to_api for the graphs LockN Gen ships: every node with its sockets, widget
values in the editor's order (linked widgets keep a value too; seeds get their control value),
links, titles, `properties.models` for the missing-models dialog, and a simple left-to-right
layout by dependency depth. A dynamic combo's value is followed by the widgets of its chosen option
(``"format.codec"``; where the prompt has only a hidden input of that name, as 0.33's SaveVideo
``codec`` in an older API prompt, its value), in the order ``workflow.to_api`` reads them back.
"""
from __future__ import annotations

import uuid

from .workflow import _default, _is_widget, class_inputs, has_control, input_spec, is_hidden, is_link, spec_type
from .workflow_schema import _dynamic_sub_inputs

COL_W, ROW_GAP, NODE_W = 420, 40, 360


def _depths(prompt: dict) -> dict[str, int]:
    depth: dict[str, int] = {}

    def d(nid, seen=()):
        if nid in depth:
            return depth[nid]
        if nid in seen:
            return 0
        ups = [v[0] for v in prompt[nid]["inputs"].values() if is_link(v) and v[0] in prompt]
        depth[nid] = 1 + max((d(u, seen + (nid,)) for u in ups), default=-1)
        return depth[nid]

    for nid in prompt:
        d(nid)
    return depth


def api_to_ui(prompt: dict, object_info: dict, models: dict | None = None, name: str = "") -> dict:
    depth = _depths(prompt)
    order = sorted(prompt, key=lambda n: (depth[n], int(n) if n.isdigit() else n))
    links, nodes = [], []
    out_links: dict[tuple[str, int], list[int]] = {}
    rows: dict[int, float] = {}

    def link(value, nid, slot) -> int:
        """Record a link from output value=[node, index] to input `slot` of node `nid`; its id."""
        lid = len(links) + 1
        src, index = value
        links.append([lid, int(src), index, int(nid), slot, object_info[prompt[src]["class_type"]]["output"][index]])
        out_links.setdefault((src, index), []).append(lid)
        return lid

    for i, nid in enumerate(order):
        node = prompt[nid]
        info = object_info[node["class_type"]]
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
                if has_control(iname.rsplit(".", 1)[-1], spec):
                    widgets.append("fixed")
            if is_link(value) or not widget:
                entry = {"localized_name": iname, "name": iname, "type": t, "link": None}
                if "." in iname:
                    entry = {"label": iname.rsplit(".", 1)[1], **entry}
                if widget:
                    entry["widget"] = {"name": iname}
                if optional:
                    entry["shape"] = 7
                if is_link(value):
                    entry["link"] = link(value, nid, len(inputs))
                inputs.append(entry)
            if t == "COMFY_DYNAMICCOMBO_V3":           # the editor shows the chosen option's widgets next
                for sub, sub_spec, sub_optional in _dynamic_sub_inputs(spec, shown):
                    key = f"{iname}.{sub}"
                    v = node["inputs"].get(key)
                    if v is None and sub in flat and is_hidden(flat[sub]):
                        v = node["inputs"].get(sub)   # an API prompt's hidden "codec" is the "format.codec" shown
                    add(key, sub_spec, sub_optional, v)

        for iname, spec, optional in specs:
            value = node["inputs"].get(iname)
            t = spec_type(spec)
            if t == "COMFY_AUTOGROW_V3":               # e.g. Math Expression's values.a, values.b
                for key in sorted(k for k in node["inputs"] if k.startswith(iname + ".")):
                    v = node["inputs"][key]
                    sub = input_spec(info, key, node["inputs"]) or ["*"]
                    entry = {"label": key.split(".", 1)[1], "localized_name": key, "name": key, "type": spec_type(sub),
                             "link": link(v, nid, len(inputs)) if is_link(v) else None}
                    inputs.append(entry)
                continue
            add(iname, spec, optional, value)
        unknown = [k for k in node["inputs"] if k not in names and "." not in k]
        if unknown:
            raise ValueError(f"node {nid} ({node['class_type']}) has inputs the server does not list: {unknown}")
        col = depth[nid]
        y = rows.get(col, 0.0)
        height = 60 + 28 * (len(inputs) + len(widgets))
        rows[col] = y + height + ROW_GAP
        n = {"id": int(nid), "type": node["class_type"], "pos": [col * COL_W, y], "size": [NODE_W, height],
             "flags": {}, "order": i, "mode": 0, "inputs": inputs, "outputs": [],
             "properties": {"Node name for S&R": node["class_type"]}, "widgets_values": widgets}
        title = (node.get("_meta") or {}).get("title")
        if title:
            n["title"] = title
        if models and nid in models and models[nid]:
            n["properties"]["models"] = models[nid]
        nodes.append(n)
    for n in nodes:
        info = object_info[n["type"]]
        names = info.get("output_name") or info["output"]
        n["outputs"] = [{"localized_name": names[s], "name": names[s], "type": t,
                         "links": out_links.get((str(n["id"]), s), []), "slot_index": s}
                        for s, t in enumerate(info["output"])]
    return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"lockn-gen/{name}")), "revision": 0,
            "last_node_id": max(int(k) for k in prompt), "last_link_id": len(links),
            "nodes": nodes, "links": links, "groups": [], "config": {},
            "extra": {"ds": {"scale": 0.6, "offset": [40, 40]}, "lockn_gen": {"workflow": name}}, "version": 0.4}
