"""Validation of an API prompt against a server's ``/object_info``: the problems that would make the
server refuse or fail it, each as a plain sentence, found before anything is queued.
"""
from __future__ import annotations

from typing import Any

from .workflow_schema import (RANGED_PRIMITIVES, _choices_text, _dynamic_sub_inputs, _links_to, _range_text,
                              class_inputs, combo_options, connects, input_spec, is_link, node_label, spec_opts,
                              spec_type, value_range)

# where a node type that the server lacks usually comes from: (prefix of the class name, pack)
KNOWN_PACKS = [
    ("UnetLoaderGGUF", "ComfyUI-GGUF (city96)"), ("CLIPLoaderGGUF", "ComfyUI-GGUF (city96)"),
    ("DualCLIPLoaderGGUF", "ComfyUI-GGUF (city96)"), ("TripleCLIPLoaderGGUF", "ComfyUI-GGUF (city96)"),
    ("LockN", "LockN Gen (this pack)"), ("VHS_", "ComfyUI-VideoHelperSuite"), ("WanVideo", "ComfyUI-WanVideoWrapper"),
    ("LTXV", "ComfyUI-LTXVideo"), ("easy ", "ComfyUI-Easy-Use"), ("SetNode", "ComfyUI-KJNodes"),
    ("GetNode", "ComfyUI-KJNodes"), ("DisTorch", "ComfyUI-MultiGPU"), ("TeaCache", "ComfyUI-TeaCache"),
]


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
    """ComfyUI's expansion (see workflow_schema._dynamic_sub_inputs): a dynamic combo in the prompt brings
    its chosen option's inputs; one inside an option ("format.codec" of 0.33's SaveVideo) that is absent
    brings nothing and is not missing, as the server sees it: the node gets the option without it. A
    top-level one that is absent stays listed, so that a required one is reported: the server would
    accept the prompt but call the node without that argument."""
    out = []
    for name, spec, optional in specs:
        full = prefix + name
        dynamic = spec_type(spec) == "COMFY_DYNAMICCOMBO_V3"
        if dynamic and prefix and full not in inputs:
            continue
        out.append((full, spec, optional))
        if dynamic and full in inputs:
            # the option's own sections decide (as in ComfyUI), also under an optional combo
            out.extend(_expand_dynamic(_dynamic_sub_inputs(spec, inputs.get(full)), inputs, full + "."))
    return out


def validate(prompt: dict, object_info: dict) -> list[str]:
    """Problems that would make the server refuse or fail the prompt, as plain sentences: unknown node
    types (and which pack may be missing), missing required inputs, links to missing nodes or outputs,
    values outside min/max (a PrimitiveInt's or PrimitiveFloat's value also outside the ranges of the inputs
    it feeds, which the server does not check on a linked value), and choices (e.g. model files) the server
    does not have."""
    if not isinstance(prompt, dict) or not prompt:
        return ["the workflow has no nodes"]
    errors, has_output, unknown = [], False, False
    links = None
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
                found = _check_value(label, name, spec, v)
                if not found and ct in RANGED_PRIMITIVES and name == "value" and isinstance(v, (int, float)) \
                        and not isinstance(v, bool):
                    links = links if links is not None else _links_to(prompt)
                    r = value_range(prompt, object_info, nid, name, links=links)
                    if r is not None and r.sources and (r.min is not None and v < r.min or r.max is not None and v > r.max):
                        found = [f"{label}: input 'value' is {v}, outside what the inputs it feeds take{r.text()} "
                                 f"({', '.join(r.sources)})"]
                errors.extend(found)
        known = {n for n, _, _ in expanded}
        for name, v in inputs.items():              # autogrow entries ("values.a")
            spec = input_spec(info, name, inputs) if name not in known and is_link(v) else None
            if spec is not None:
                errors.extend(_check_link(label, name, spec, v, prompt, object_info))
    cycle = find_cycle(prompt)
    if cycle:
        path = " -> ".join(node_label(n, prompt[n]) for n in cycle + cycle[:1])
        errors.append(f"the links go in a circle: {path}; ComfyUI cannot run a node before the nodes it needs, "
                      f"so remove one of these links")
    if not has_output and not unknown:
        errors.append("the workflow has no output node (such as Save Image, Save Video, Save Audio or Preview "
                      "Image), so the server would run nothing")
    return errors


def find_cycle(prompt: dict) -> list[str]:
    """Node ids that feed each other in a circle (the first circle found), or []."""
    deps = {nid: [v[0] for v in (node.get("inputs") or {}).values() if is_link(v) and v[0] in prompt]
            for nid, node in prompt.items() if isinstance(node, dict) and isinstance(node.get("inputs") or {}, dict)}
    state, stack = {}, []

    def visit(start):
        todo = [(start, iter(deps.get(start, ())))]
        state[start], stack[:] = 1, [start]
        while todo:
            nid, it = todo[-1]
            nxt = next(it, None)
            if nxt is None:
                state[nid] = 2
                todo.pop()
                stack.pop()
            elif state.get(nxt) == 1:
                return stack[stack.index(nxt):]
            elif nxt not in state:
                state[nxt] = 1
                stack.append(nxt)
                todo.append((nxt, iter(deps.get(nxt, ()))))
        return []

    for nid in deps:
        if nid not in state:
            found = visit(nid)
            if found:
                return list(reversed(found))
    return []


def _check_link(label, name, spec, v, prompt, object_info) -> list[str]:
    src_id, slot = v
    src = prompt.get(src_id)
    if src is None:
        return [f"{label}: input '{name}' is connected to node {src_id}, which is not in the workflow; connect it "
                f"to one of the workflow's nodes (or add node {src_id})"]
    src_info = object_info.get(src.get("class_type"))
    if src_info is None:
        return []                                   # reported as an unknown type already
    outputs = src_info.get("output") or []
    if slot < 0 or slot >= len(outputs):
        fix = ("connect it to output 0" if len(outputs) == 1 else f"connect it to one of outputs 0 to {len(outputs) - 1}"
               if outputs else "connect it to another node")
        return [f"{label}: input '{name}' is connected to output {slot} of {node_label(src_id, src)}, "
                f"which has {len(outputs)} output{'s' if len(outputs) != 1 else ''}; {fix}"]
    out_t = "COMBO" if isinstance(outputs[slot], list) else outputs[slot]
    in_t = "COMBO" if isinstance(spec[0], list) else spec[0]            # the socket type, not the widget
    if connects(out_t, in_t):
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
