"""One brief -> every prompt of the chain: the fields, the instructions to a model, the repair of what a
model answers, the rules that stand in when there is no model (lockn_gen/brief_rules.py), and the client of an OpenAI-compatible
chat server. Plain Python: nothing here imports ComfyUI (nodes/brief.py is the ComfyUI layer).

The contract, whichever backend writes:
* `write_brief(text, ...)` returns a `Written`: the image prompt, the music tags, lyrics (or
  "[Instrumental]"), bpm, key and time signature, each within what ACE-Step 1.5's encoder node
  accepts (TextEncodeAceStepAudio1.5: bpm 10-300, its 34 keys, time signatures 2/3/4/6, its languages),
  plus a report that says which backend wrote it and every field that was repaired or replaced.
* A field the model got wrong is repaired when the intent is clear ("120 bpm" -> 120, "Am" -> "A minor",
  "3/4" -> "3") and replaced otherwise, by the value the rules derive from the brief itself. So junk
  output, a truncated reply or an empty one never breaks the chain; it shows in the report.
* Deterministic for a seed: the rules are pure, the models are asked with the seed.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from .brief_rules import (  # noqa: F401  (the rules' names, re-exported: lockn_gen.brief is the Brief's API)
    BPM_MAX, BPM_MIN, DEFAULT_SCENE, DEFAULT_TAGS, INSTRUMENTAL, KEYSCALES,
    LANGUAGES, LIMITS, ROOTS, RULE_LANGUAGES, SCENES, TIMESIGNATURES,
    detect_language, motion_rules, normalize_bpm, normalize_key, normalize_timesignature, rules,
)

MAX_BRIEF_CHARS = 2000              # what a model is shown; the rest is cut, and the report says so
STYLES = ["wan22", "ltx2"]          # the I2V prompt styles of the video families

ENV_URL, ENV_MODEL, ENV_KEY = "LOCKN_BRIEF_URL", "LOCKN_BRIEF_MODEL", "LOCKN_BRIEF_API_KEY"


class BriefError(ValueError):
    """Bad input the user has to fix (an empty brief)."""


class BackendUnavailable(RuntimeError):
    """The chosen backend could not answer (server down or slow, no text encoder that can write)."""


# ---- the schema a model is asked to fill ------------------------------------------------------------------
def brief_schema() -> dict:
    """No maxLength on the strings: llama.cpp unrolls it into its grammar, and at a few hundred its
    parser gives up (llama-cpp-python 0.3.36's server then dies). Lengths are cut in repair()."""
    return {
        "type": "object",
        "properties": {
            "image_prompt": {"type": "string", "minLength": 1},
            "tags": {"type": "string", "minLength": 1},
            "lyrics": {"type": "string", "minLength": 1},
            # an enum, not minimum/maximum: llama.cpp's grammar (llama-cpp-python 0.3.36) ignores integer bounds
            "bpm": {"type": "integer", "enum": list(range(BPM_MIN, BPM_MAX + 1))},
            "keyscale": {"type": "string", "enum": KEYSCALES},
            "timesignature": {"type": "string", "enum": TIMESIGNATURES},
            "language": {"type": "string", "enum": LANGUAGES},
        },
        "required": ["image_prompt", "tags", "lyrics", "bpm", "keyscale", "timesignature", "language"],
        "additionalProperties": False,
    }


def motion_schema() -> dict:
    return {"type": "object", "properties": {"motion_prompt": {"type": "string", "minLength": 1}},
            "required": ["motion_prompt"], "additionalProperties": False}


BRIEF_SYSTEM = (
    "You turn a one-line creative brief into the prompts of an image -> video -> music pipeline. "
    "Answer with one JSON object and nothing else, with these keys:\n"
    "- image_prompt: one paragraph for a text-to-image model (Flux.2): subject, setting, light, composition, "
    "medium or photographic style, in concrete visual words. No music words.\n"
    "- tags: comma-separated music tags for ACE-Step: genre, instruments, mood, tempo feel, production.\n"
    "- lyrics: \"[Instrumental]\" unless the brief asks for singing or words; otherwise short lyrics with "
    "[verse] and [chorus] section tags.\n"
    f"- bpm: an integer from {BPM_MIN} to {BPM_MAX} that fits the mood.\n"
    "- keyscale: a key such as \"A minor\" or \"F# major\".\n"
    "- timesignature: \"4\" for 4/4, \"3\" for 3/4, \"6\" for 6/8, \"2\" for 2/4.\n"
    "- language: the lyrics' language as an ISO code such as \"en\".")

MOTION_SYSTEM = {
    "wan22": (
        "You write the prompt of an image-to-video model (Wan2.2) that animates the given first frame. "
        "Describe only what moves and how, in one or two plain sentences: the subject's action, secondary motion "
        "(hair, water, light, leaves), and the camera (static, slow push-in, pan) if it moves. Do not describe "
        "again what the picture already shows. Answer with JSON: {\"motion_prompt\": \"...\"}."),
    "ltx2": (
        "You write the prompt of an image-to-video model with sound (LTX-2) that starts from the given frame. "
        "One paragraph, present tense, in the order things happen: what moves and how, the camera only if the "
        "brief asks for it, and the sounds of the scene as they happen (ambience, effects; speech only if the "
        "brief asks). Plain, restrained words. Answer with JSON: {\"motion_prompt\": \"...\"}."),
}


def brief_user(text: str) -> str:
    return f"Brief: {text}"


def motion_user(text: str, image_prompt: str = "") -> str:
    seen = f"\nThe first frame was made from this prompt: {image_prompt}" if image_prompt else ""
    return f"Brief: {text}{seen}\nWrite the motion for the picture."


# ---- parsing and repair ----------------------------------------------------------------------------------
def extract_json(reply: str):
    """The first JSON object in a model's reply (code fences and chatter around it allowed), or None."""
    if not isinstance(reply, str):
        return None
    s = reply.strip()
    s = re.sub(r"^```(?:json)?\s*|\s*```$", "", s)
    try:
        v = json.loads(s, strict=False)          # strict=False: raw control characters inside strings
        return v if isinstance(v, dict) else None
    except ValueError:
        pass
    start = s.find("{")
    while start != -1:
        depth, in_str, esc = 0, False, False
        for i in range(start, len(s)):
            ch = s[i]
            if in_str:
                if esc:
                    esc = False
                elif ch == "\\":
                    esc = True
                elif ch == '"':
                    in_str = False
            elif ch == '"':
                in_str = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    try:
                        v = json.loads(s[start:i + 1], strict=False)
                        if isinstance(v, dict):
                            return v
                    except ValueError:
                        pass
                    break
        start = s.find("{", start + 1)
    return None


def _clean_text(value, limit: int) -> tuple[str | None, str]:
    """(text, note): None when unusable."""
    if not isinstance(value, str):
        return None, "missing" if value is None else f"not text ({type(value).__name__})"
    v = value.strip()
    if not v:
        return None, "empty"
    if len(v) > limit:
        return v[:limit].rstrip(), f"cut to {limit} characters"
    return v, ""


def repair(raw, text: str) -> tuple[dict, list[str]]:
    """Field by field: keep, repair or replace a model's answer. Returns (fields, notes)."""
    derived = rules(text)
    notes: list[str] = []
    if not isinstance(raw, dict):
        return derived, ["the model's reply was not a JSON object: every field derived from the brief"]
    out = {}
    for k in ("image_prompt", "tags"):
        v, why = _clean_text(raw.get(k), LIMITS[k])
        if v is None:
            out[k] = derived[k]
            notes.append(f"{k}: {why}; replaced from the brief")
        else:
            out[k] = v
            if why:
                notes.append(f"{k}: {why}")
    v, why = _clean_text(raw.get("lyrics"), LIMITS["lyrics"])
    if v is None:
        out["lyrics"] = derived["lyrics"]
        notes.append(f"lyrics: {why}; replaced from the brief ({derived['lyrics'][:20]})")
    else:
        out["lyrics"] = INSTRUMENTAL if v.strip("[] ").lower() in ("instrumental", "none", "no lyrics") else v
    fixes = (("bpm", normalize_bpm, f"not a whole number from {BPM_MIN} to {BPM_MAX}"),
             ("keyscale", normalize_key, "not a key ACE-Step knows"),
             ("timesignature", normalize_timesignature, "not 2, 3, 4 or 6"))
    for k, norm, why in fixes:
        got = raw.get(k)
        fixed = norm(got)
        if fixed is None:
            out[k] = derived[k]
            notes.append(f"{k}: {json.dumps(got)[:40]} is {why}; replaced by {derived[k]!r} from the brief")
        else:
            out[k] = fixed
            if fixed != got:
                notes.append(f"{k}: {json.dumps(got)[:40]} read as {fixed!r}")
    lang = raw.get("language")
    if isinstance(lang, str) and lang.strip().lower() in LANGUAGES:
        out["language"] = lang.strip().lower()
    else:
        out["language"] = derived["language"]
        if lang is not None:
            notes.append(f"language: {json.dumps(lang)[:20]} unknown; {derived['language']!r} from the brief")
    return out, notes


def repair_motion(raw, text: str, style: str) -> tuple[str, list[str]]:
    if isinstance(raw, dict):
        v, why = _clean_text(raw.get("motion_prompt"), LIMITS["motion_prompt"])
        if v is not None:
            return v, ([f"motion_prompt: {why}"] if why else [])
        return motion_rules(text, style), [f"motion_prompt: {why}; replaced from the brief"]
    return motion_rules(text, style), ["the model's reply was not a JSON object: motion derived from the brief"]


def prepare(text) -> tuple[str, list[str]]:
    """The brief a model is shown; BriefError when there is none."""
    if not isinstance(text, str) or not text.strip():
        raise BriefError("The brief is empty. Write one line (e.g. \"a lighthouse keeper's cat at dawn, lo-fi, calm\") "
                         "in the Brief node's text, or set its source to 'my prompts' to use your own prompts.")
    t = text.strip()
    if len(t) > MAX_BRIEF_CHARS:
        return t[:MAX_BRIEF_CHARS], [f"the brief has {len(t):,} characters; the model was shown the first "
                                     f"{MAX_BRIEF_CHARS:,}"]
    return t, []


# ---- the OpenAI-compatible chat server ----------------------------------------------------------------------
@dataclass
class ServerSettings:
    url: str = ""
    model: str = ""
    api_key: str = ""
    timeout: float = 60.0

    @classmethod
    def resolve(cls, url: str = "", model: str = "", timeout: float = 60.0, env=None) -> "ServerSettings":
        env = os.environ if env is None else env
        env_url = env.get(ENV_URL, "").strip()
        chosen = (url or "").strip() or env_url
        # the key goes only to the server the environment names: a shared workflow whose server_url points
        # elsewhere must not receive it
        key = env.get(ENV_KEY, "").strip() if env_url and chat_endpoint(chosen) == chat_endpoint(env_url) else ""
        return cls(url=chosen, model=(model or env.get(ENV_MODEL, "")).strip(), api_key=key, timeout=float(timeout))


def chat_endpoint(url: str) -> str:
    """'http://host:8080', '.../v1' or '.../v1/chat/completions' -> '.../v1/chat/completions'."""
    u = url.strip().rstrip("/")
    if u.endswith("/chat/completions"):
        return u
    if not u.endswith("/v1"):
        u += "/v1"
    return u + "/chat/completions"


def png_bytes(rgb) -> bytes:
    """An 8-bit RGB PNG of an (H, W, 3) uint8 array-like, with the standard library only."""
    import struct
    import zlib
    h, w = len(rgb), len(rgb[0])
    raw = b"".join(b"\x00" + bytes(bytearray(row.tobytes() if hasattr(row, "tobytes") else bytes(row))) for row in rgb)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def image_data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@dataclass
class Reply:
    content: str
    model: str = ""
    notes: list = field(default_factory=list)


_FORMATS: dict[str, str] = {}      # endpoint -> the response_format form it took ("json_schema" | "json_object")
_NO_IMAGES: set[str] = set()        # endpoints whose model refused an image (a text-only model)


def _response_format(form: str, schema: dict) -> dict:
    if form == "json_object":     # llama-cpp-python's form (its server refuses OpenAI's json_schema with HTTP 500)
        return {"type": "json_object", "schema": schema}
    return {"type": "json_schema", "json_schema": {"name": "lockn_brief", "schema": schema, "strict": True}}


def chat(settings: ServerSettings, system: str, user: str, schema: dict, seed: int, max_tokens: int,
         image_png: bytes | None = None, temperature: float = 0.7, opener=urllib.request.urlopen) -> Reply:
    """JSON-schema constrained chat. OpenAI's `json_schema` form first; a server that refuses it (an HTTP
    error, as llama-cpp-python's server answers) is asked in the `json_object` + schema form, and one that
    refuses the image (a text-only model) is asked without it. The forms that worked are remembered per
    endpoint, so later calls make one request. Nothing is retried after a timeout or a refused
    connection, so a dead or slow server never holds the queue. BackendUnavailable names the URL."""
    if not settings.url:
        raise BackendUnavailable(f"no LLM server is set: give the node a server_url, or set {ENV_URL} "
                                 "(e.g. http://127.0.0.1:8080/v1) in ComfyUI's environment")
    endpoint = chat_endpoint(settings.url)
    known = _FORMATS.get(endpoint)
    forms = [known] if known else ["json_schema", "json_object"]
    notes = []
    images = [image_png] if image_png is None else [None] if endpoint in _NO_IMAGES else [image_png, None]
    if image_png is not None and endpoint in _NO_IMAGES:
        notes.append("this server did not take an image before: the motion is written from the brief alone")
    attempts = [(form, img) for img in images for form in forms]
    refused = []
    for form, img in attempts:
        try:
            data = _post(settings, endpoint, system, user, schema, seed, max_tokens, img, temperature,
                         _response_format(form, schema), opener)
        except _Refused as e:
            refused.append(f"{form}{' with the image' if img is not None else ''}: HTTP {e.code} {e.detail[:160]}")
            continue
        _FORMATS[endpoint] = form
        if form != forms[0]:
            notes.append(f"the server refused response_format {forms[0]}; asked with {form}")
        if image_png is not None and img is None and endpoint not in _NO_IMAGES:
            _NO_IMAGES.add(endpoint)
            notes.append(f"the server's model did not take the image ({refused[-1]}): the motion is written from "
                         "the brief alone")
        break
    else:
        raise BackendUnavailable(f"the LLM server at {endpoint} refused the request: " + "; ".join(refused))
    try:
        msg = data["choices"][0]["message"]
        text = msg.get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        raise BackendUnavailable(f"the LLM server at {endpoint} answered without choices[0].message: "
                                 f"{json.dumps(data)[:200]}")
    return Reply(content=text if isinstance(text, str) else json.dumps(text), model=str(data.get("model", "")),
                 notes=notes)


class _Refused(Exception):
    def __init__(self, code, detail):
        super().__init__(code)
        self.code, self.detail = code, detail


def _post(settings, endpoint, system, user, schema, seed, max_tokens, image_png, temperature, response_format, opener):
    content = user if image_png is None else [
        {"type": "text", "text": user}, {"type": "image_url", "image_url": {"url": image_data_url(image_png)}}]
    body = {"model": settings.model or "default", "messages": [{"role": "system", "content": system},
                                                                {"role": "user", "content": content}],
            "temperature": temperature, "seed": int(seed) % (2 ** 31), "max_tokens": int(max_tokens), "stream": False,
            "response_format": response_format}
    headers = {"Content-Type": "application/json"}
    if settings.api_key:
        headers["Authorization"] = f"Bearer {settings.api_key}"
    req = urllib.request.Request(endpoint, data=json.dumps(body).encode(), headers=headers, method="POST")
    late = (f"the LLM server at {endpoint} did not answer within {settings.timeout:g} s "
            "(raise timeout_s on the node, or use a smaller model)")
    try:
        with opener(req, timeout=settings.timeout) as r:
            return json.loads(r.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as e:
        detail = e.read()[:300].decode("utf-8", "replace") if hasattr(e, "read") else ""
        raise _Refused(e.code, " ".join(detail.split()) or str(e.reason)) from e
    except (socket.timeout, TimeoutError) as e:
        raise BackendUnavailable(late) from e
    except urllib.error.URLError as e:
        if isinstance(e.reason, (socket.timeout, TimeoutError)):
            raise BackendUnavailable(late) from e
        raise BackendUnavailable(f"the LLM server at {endpoint} is not reachable ({e.reason}); start it, or fix "
                                 f"server_url / {ENV_URL}") from e
    except (ValueError, OSError) as e:
        raise BackendUnavailable(f"the LLM server at {endpoint} sent no usable answer ({type(e).__name__}: {e})") from e


# ---- the node-independent result ----------------------------------------------------------------------------
@dataclass
class Written:
    fields: dict
    backend: str
    notes: list
    reply: str | None = None      # what the model answered, when one did

    def report(self) -> str:
        f = self.fields
        lines = [f"written by: {self.backend}"]
        for k in ("image_prompt", "motion_prompt", "tags", "lyrics"):
            if k in f:
                v = " ".join(str(f[k]).split())
                lines.append(f"{k}: {v[:300]}{'...' if len(v) > 300 else ''}")
        if "bpm" in f:
            lines.append(f"bpm {f['bpm']} | key {f['keyscale']} | time {f['timesignature']} | language {f['language']}")
        if self.reply is not None:
            r = " ".join(self.reply.split())
            lines.append(f"the model's reply ({len(self.reply)} characters): {r[:160]}{'...' if len(r) > 160 else ''}")
        lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines)


def seed_for(text: str, seed: int) -> int:
    """A stable per-brief seed, so a chain re-run with the same brief and seed asks the same question."""
    h = hashlib.sha256(f"{seed}\0{text}".encode()).digest()
    return int.from_bytes(h[:4], "big") & 0x7FFFFFFF
