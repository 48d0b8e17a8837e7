"""The loopback OpenAI-compatible LLM server (lockn_testing.llm_server): llama-cpp-python's server
serving a tiny random-weight Qwen3 GGUF, with schema-constrained chat completions.

Skipped when llama-cpp-python[server] is not installed in this Python; with LOCKN_REQUIRE_COMFY=1
(CI) that fails instead.
"""
from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request

import pytest

from lockn_testing.llm_server import LlamaServer, available

SCHEMA = {
    "type": "object",
    "properties": {
        "image_prompt": {"type": "string", "maxLength": 80},
        "tags": {"type": "string", "maxLength": 60},
        "bpm": {"type": "integer", "minimum": 30, "maximum": 300},
        "keyscale": {"type": "string", "enum": ["C major", "A minor", "E minor"]},
        "timesignature": {"type": "string", "enum": ["2", "3", "4", "6"]},
    },
    "required": ["image_prompt", "tags", "bpm", "keyscale", "timesignature"],
    "additionalProperties": False,
}
MESSAGES = [
    {"role": "system", "content": "You write a creative brief as JSON."},
    {"role": "user", "content": "A rainy neon city at night, slow synth music."},
]
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
OPENAI_FORMAT = {"type": "json_schema", "json_schema": {"name": "brief", "schema": SCHEMA, "strict": True}}
# The form llama-cpp-python 0.3.36 turns into a grammar.
LLAMA_CPP_FORMAT = {"type": "json_object", "schema": SCHEMA}


def _post(url: str, body: dict, timeout: float = 120) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with _OPENER.open(req, timeout=timeout) as r:
        return json.load(r)


def _get(url: str) -> dict:
    with _OPENER.open(url, timeout=10) as r:
        return json.load(r)


def _brief(server, response_format, seed=7) -> str:
    body = {"model": server.model, "messages": MESSAGES, "response_format": response_format,
            "max_tokens": 400, "temperature": 0.7, "seed": seed}
    reply = _post(server.url + "/chat/completions", body)
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "stop", reply
    return choice["message"]["content"]


def _check_brief(obj, *, bounds: bool) -> None:
    assert isinstance(obj, dict) and set(obj) == set(SCHEMA["required"]), obj
    props = SCHEMA["properties"]
    for key in ("image_prompt", "tags"):
        assert isinstance(obj[key], str) and len(obj[key]) <= props[key]["maxLength"], (key, obj[key])
    for key in ("keyscale", "timesignature"):
        assert obj[key] in props[key]["enum"], (key, obj[key])
    assert isinstance(obj["bpm"], int) and not isinstance(obj["bpm"], bool), obj["bpm"]
    if bounds:
        assert props["bpm"]["minimum"] <= obj["bpm"] <= props["bpm"]["maximum"], obj["bpm"]


@pytest.fixture(scope="module")
def llm():
    missing = available(sys.executable)
    if missing:
        if os.environ.get("LOCKN_REQUIRE_COMFY") == "1":
            pytest.fail(f"LOCKN_REQUIRE_COMFY=1 and the LLM server cannot run: {missing}")
        pytest.skip(missing)
    with LlamaServer() as server:
        yield server


def test_models_lists_the_served_model(llm):
    assert llm.url.startswith("http://127.0.0.1:") and llm.url.endswith("/v1")
    ids = [m["id"] for m in _get(llm.url + "/models")["data"]]
    assert ids == [llm.model]
    assert llm.start_seconds < 60


def test_schema_constrained_brief(llm):
    t0 = time.monotonic()
    content = _brief(llm, LLAMA_CPP_FORMAT)
    elapsed = time.monotonic() - t0
    _check_brief(json.loads(content), bounds=False)
    assert elapsed < 60, elapsed


@pytest.mark.xfail(reason="llama-cpp-python 0.3.36's JSON-schema -> GBNF converter ignores integer "
                          "minimum/maximum; a random-weight model then writes any integer",
                   raises=AssertionError, strict=False)
def test_schema_integer_bounds(llm):
    _check_brief(json.loads(_brief(llm, LLAMA_CPP_FORMAT)), bounds=True)


def test_openai_json_schema_form_is_refused(llm):
    """llama-cpp-python 0.3.36 refuses OpenAI's response_format form (HTTP 500 carrying a request
    validation error: type must be 'text' or 'json_object'), so a client of this server must send
    {"type": "json_object", "schema": ...}. Fails when an upgrade starts accepting it: then test
    that it constrains the output."""
    with pytest.raises(urllib.error.HTTPError) as err:
        _brief(llm, OPENAI_FORMAT)
    assert err.value.code >= 400
    assert "json_object" in err.value.read().decode(errors="replace")


def test_same_seed_same_reply(llm):
    a = _brief(llm, LLAMA_CPP_FORMAT, seed=7)
    b = _brief(llm, LLAMA_CPP_FORMAT, seed=7)
    assert a == b
    assert _brief(llm, LLAMA_CPP_FORMAT, seed=8) != a
