"""``--set TITLE.INPUT=VALUE``: find the input a setting names (by title, node id, class name, or a
subgraph's or PrimitiveNode's exposed input), coerce the value to the input's type, and apply it; plus
``vary_seeds``, which moves the seeds of each job of a batch.

A number is held to its range (``workflow_schema.value_range``): the input's own min and max, and a whole
number to its step (anchor + k * step: a Wan2.2 length of 50 would make 49 frames, a Flux.2 width of 1000 a
992-pixel image). A PrimitiveInt's or PrimitiveFloat's value, which is what a stage's face like "Video.length"
sets, takes the ranges of the inputs it feeds as well (and the one a UI file gives it), so a typo cannot send
a 64-bit width on to a latent. A title or input that is not there names the closest one first.
"""
from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any, Iterable

from . import step_cache
from .workflow_schema import (Upload, ValueRange, Workflow, WorkflowError, _choices_text, _links_to, class_inputs,
                              combo_options, did_you_mean, has_control, input_spec, node_label, shown_input,
                              spec_opts, spec_type, value_range)

UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload", "animated_image_upload")


# ---- --set ---------------------------------------------------------------------------------------
def parse_set(text: str) -> tuple[str, str]:
    """``"TITLE.INPUT=VALUE"`` -> ("TITLE.INPUT", "VALUE")."""
    key, eq, value = text.partition("=")
    if not eq or "." not in key or not key.strip():
        raise WorkflowError(f"--set {text!r}: expected TITLE.INPUT=VALUE, e.g. --set \"KSampler.steps=20\"")
    return key.strip(), value


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
    links = _links_to(wf.prompt)
    for key, raw in items:
        try:
            targets = _resolve_set_key(wf, key, object_info)
            for nid, inp in targets:
                node = wf.prompt[nid]
                spec = input_spec(object_info[node["class_type"]], inp, node.get("inputs"))
                rng = value_range(wf.prompt, object_info, nid, inp, wf.ranges.get((nid, inp)), links)
                value, upload = coerce(raw, spec, f"{node_label(nid, node)} input '{inp}'", rng)
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
            else:                                   # a hidden input: the one the editor shows, if set
                resolved.append((nid, shown_input(info, input_part, node.get("inputs") or {})))
        if resolved:
            plain = [r for r in resolved if r[0] in wf.prompt and (r[0], None) in targets]
            if len(plain) > 1:
                ids = ", ".join(n for n, _ in plain)
                raise WorkflowError(f"'{node_part}' names {len(plain)} nodes ({ids}); use the node id instead, "
                                    f"e.g. --set \"{plain[0][0]}.{input_part}=...\"")
            return resolved
    if found_node is None:
        title = key.rsplit('.', 1)[0]
        groups = sorted(f"{g['title']} ({g.get('kind', 'subgraph')})" for g in wf.groups.values())
        near = did_you_mean(title, _titles(wf.prompt) + [g["title"] for g in wf.groups.values()])
        return _raise(f"no node is titled '{title}'{near or '.'} Titles in this workflow: "
                      + "; ".join(_titles(wf.prompt) + groups))
    node_part, targets, input_part = found_node
    nid, kind = targets[0]
    if kind == "group":
        names = sorted(wf.groups[nid]["inputs"])
        kind = wf.groups[nid].get("kind", "subgraph")
        return _raise(f"{kind} '{node_part}' has no input '{input_part}'{did_you_mean(input_part, names) or '.'} "
                      f"Its inputs: {', '.join(names) or 'none'}{step_cache.no_switch_here(input_part)}")
    node = wf.prompt[nid]
    info = object_info[node["class_type"]]
    names = [n for n, _, _ in class_inputs(info)]
    return _raise(f"{node_label(nid, node)} has no input '{input_part}'{did_you_mean(input_part, names) or '.'} "
                  f"Its inputs: {', '.join(names)}")


def _raise(msg):
    raise WorkflowError(msg)


def coerce(raw, spec, where: str = "input", rng: ValueRange | None = None) -> tuple[Any, Path | None]:
    """(value of the input's type, local file to upload or None). Strings from the command line are
    parsed; Python values are checked. A number is held to ``rng`` (``workflow_schema.value_range``: for a
    Primitive's value the ranges of what it feeds too), else to the input's own range. Raises
    WorkflowError in plain words."""
    t, opts = spec_type(spec), spec_opts(spec)
    if rng is None and t in ("INT", "FLOAT"):
        rng = ValueRange(t)
        rng.narrow(opts)
    if t == "INT":
        try:
            if isinstance(raw, bool):
                raise ValueError
            if isinstance(raw, str) and raw.strip().lstrip("+-").isdigit():
                value = int(raw.strip())                 # exactly, however long (float() would round it)
            else:
                f = float(raw) if not isinstance(raw, int) else raw
                if isinstance(f, float) and (not math.isfinite(f) or f != int(f)):
                    raise ValueError
                value = int(f)
        except (TypeError, ValueError):
            raise WorkflowError(f"{where} expects a whole number{rng.text()}, got {raw!r}") from None
        _check_range(value, rng, where, "a whole number")
        return value, None
    if t == "FLOAT":
        try:
            if isinstance(raw, bool):
                raise ValueError
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError
        except (TypeError, ValueError):
            raise WorkflowError(f"{where} expects a number{rng.text()}, got {raw!r}") from None
        _check_range(value, rng, where, "a number")
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


def _check_range(value, rng: ValueRange, where: str, kind: str):
    """The range (and a whole number's step); a Primitive's range names the inputs it comes from."""
    why = rng.problem(value)
    if why:
        fed = f", the range of what it feeds ({', '.join(rng.sources)})" if rng.sources else ""
        raise WorkflowError(f"{where} expects {kind}{rng.text()}{fed}, {why}")


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
