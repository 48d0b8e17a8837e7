"""lockn_gen.brief without ComfyUI: the rules, the repair of model output, the server client's errors."""
from __future__ import annotations

import http.server
import json
import socket
import threading
import time

import pytest

from lockn_gen import brief as B


def test_rules_split_the_brief_into_picture_and_music():
    f = B.rules("a lighthouse keeper's cat at dawn, lo-fi, calm")
    assert "lighthouse keeper's cat at dawn" in f["image_prompt"]
    assert "lo-fi" not in f["image_prompt"] and "calm" not in f["image_prompt"].split(",")[0]
    assert "lo-fi" in f["tags"].lower() and "calm" in f["tags"]
    assert f["lyrics"] == B.INSTRUMENTAL
    assert B.BPM_MIN <= f["bpm"] <= B.BPM_MAX and f["bpm"] < 100      # calm, lo-fi: slow
    assert f["keyscale"] in B.KEYSCALES and f["timesignature"] == "4" and f["language"] == "en"


def test_rules_honour_explicit_music_words():
    f = B.rules("rainy neon street, synthwave at 104 bpm in F sharp minor, 6/8")
    assert (f["bpm"], f["keyscale"], f["timesignature"]) == (104, "F# minor", "6")
    assert B.rules("a ballroom, a slow waltz")["timesignature"] == "3"
    sung = B.rules('a kid on a swing, a folk song where she sings "up we go, up we go"')
    assert sung["lyrics"].startswith("[verse]") and "up we go" in sung["lyrics"]


@pytest.mark.parametrize("value,want", [("Am", "A minor"), ("a min", "A minor"), ("F sharp minor", "F# minor"),
                                        ("Bb major", "Bb major"), ("C", "C major"), ("E minor", "E minor"),
                                        ("H major", None), (7, None), ("", None)])
def test_normalize_key(value, want):
    assert B.normalize_key(value) == want


@pytest.mark.parametrize("value,want", [(120, 120), ("120 bpm", 120), (95.6, 96), ("fast", None), (900, None),
                                        (True, None), (None, None)])
def test_normalize_bpm(value, want):
    assert B.normalize_bpm(value) == want


def test_repair_keeps_good_fields_and_replaces_bad_ones_from_the_brief():
    text = "a lighthouse keeper's cat at dawn, lo-fi, calm"
    raw = {"image_prompt": "  A cat on a sill at dawn  ", "tags": "", "lyrics": "instrumental", "bpm": "900",
           "keyscale": "Am", "timesignature": "3/4", "language": "xx"}
    f, notes = B.repair(raw, text)
    derived = B.rules(text)
    assert f["image_prompt"] == "A cat on a sill at dawn"
    assert f["tags"] == derived["tags"] and f["bpm"] == derived["bpm"]
    assert (f["lyrics"], f["keyscale"], f["timesignature"], f["language"]) == (B.INSTRUMENTAL, "A minor", "3", "en")
    joined = "\n".join(notes)
    for word in ("tags: empty; replaced", "bpm: \"900\"", "keyscale: \"Am\" read as 'A minor'", "language"):
        assert word in joined, joined


def test_repair_takes_an_unknown_language_from_the_brief():
    """A model's language that ACE-Step does not know is replaced by the rules' one, not by 'en'."""
    text = "une femme chante « reste avec moi » dans une rue la nuit, accordéon"
    f, notes = B.repair({"language": "français", "lyrics": "[verse]\nreste avec moi"}, text)
    assert f["language"] == B.rules(text)["language"] == "fr"
    assert any(n.startswith("language:") and "'fr' from the brief" in n for n in notes), notes


@pytest.mark.parametrize("text,fallback,want", [
    ("a lighthouse keeper's cat at dawn", "en", "en"), ("ein Hund am Strand und der Wind", "en", "de"),
    ("un phare sous la pluie", "en", "fr"), ("una playa al amanecer con la luna", "en", "es"),
    ("雨の夜の東京", "en", "ja"), ("雨夜的上海街头", "en", "zh"), ("春夏秋冬", "ja", "ja"),
    ("lo-fi, 90 bpm", "de", "de"), ("lo-fi, 90 bpm", "ja", "en"), ("la la la, the night is long", "en", "en")])
def test_detect_language(text, fallback, want):
    assert B.detect_language(text, fallback) == want


def test_junk_and_truncated_replies_fall_back_to_the_brief():
    text = "storm over a wheat field, epic orchestral"
    for reply in ("mpsmpsmps", '{"image_prompt": "a storm', "", "[1, 2]"):
        f, notes = B.repair(B.extract_json(reply), text)
        assert f == B.rules(text) and "not a JSON object" in notes[0]
    assert B.extract_json('Sure! ```json\n{"a": {"b": "}"}}\n``` done') == {"a": {"b": "}"}}


def test_prepare_refuses_an_empty_brief_and_cuts_a_huge_one():
    for empty in ("", "   \n", None):
        with pytest.raises(B.BriefError, match="The brief is empty"):
            B.prepare(empty)
    shown, notes = B.prepare("x" * 20000)
    assert len(shown) == B.MAX_BRIEF_CHARS == 2000 and "20,000 characters" in notes[0]
    f = B.rules("a cat, " * 3000)          # the rules take any length and stay within the limits
    assert len(f["image_prompt"]) <= B.LIMITS["image_prompt"] and len(f["tags"]) <= B.LIMITS["tags"]


def test_chat_endpoint_and_settings_from_the_environment():
    assert B.chat_endpoint("http://h:8080") == "http://h:8080/v1/chat/completions"
    assert B.chat_endpoint("http://h:8080/v1/") == "http://h:8080/v1/chat/completions"
    assert B.chat_endpoint("http://h/v1/chat/completions") == "http://h/v1/chat/completions"
    s = B.ServerSettings.resolve("", "", 5, env={B.ENV_URL: "http://x:1/v1", B.ENV_MODEL: "m", B.ENV_KEY: "k"})
    assert (s.url, s.model, s.api_key, s.timeout) == ("http://x:1/v1", "m", "k", 5.0)
    assert B.ServerSettings.resolve("http://node", "", 5, env={B.ENV_URL: "http://env"}).url == "http://node"
    # the key is sent only to the server the environment names, never to a workflow's own server_url
    env = {B.ENV_URL: "http://127.0.0.1:8080/v1", B.ENV_KEY: "secret"}
    assert B.ServerSettings.resolve("http://evil.example/v1", "", 5, env=env).api_key == ""
    assert B.ServerSettings.resolve("http://127.0.0.1:8080", "", 5, env=env).api_key == "secret"
    assert B.ServerSettings.resolve("", "", 5, env={B.ENV_KEY: "secret"}).api_key == ""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_chat_errors_name_the_url(tmp_path):
    with pytest.raises(B.BackendUnavailable, match="no LLM server is set"):
        B.chat(B.ServerSettings(), "s", "u", {}, 0, 10)
    port = _free_port()
    with pytest.raises(B.BackendUnavailable, match=rf"127.0.0.1:{port}/v1/chat/completions is not reachable"):
        B.chat(B.ServerSettings(url=f"http://127.0.0.1:{port}", timeout=5), "s", "u", {}, 0, 10)


class _Slow(http.server.BaseHTTPRequestHandler):
    delay, status, body, seen = 0.0, 200, b"{}", []

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        type(self).seen.append(json.loads(self.rfile.read(n)))
        time.sleep(self.delay)
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *a):
        pass


@pytest.fixture
def fake_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    _Slow.seen = []
    yield srv
    srv.shutdown()


def test_chat_timeout_http_error_and_request_shape(fake_server):
    url = f"http://127.0.0.1:{fake_server.server_address[1]}/v1"
    _Slow.delay, _Slow.status = 3.0, 200
    t = time.monotonic()
    with pytest.raises(B.BackendUnavailable, match="did not answer within 1 s"):
        B.chat(B.ServerSettings(url=url, timeout=1), "s", "u", B.brief_schema(), 3, 10)
    assert time.monotonic() - t < 2.9           # one request, no retry
    _Slow.delay, _Slow.status, _Slow.body = 0.0, 503, b'{"error": "loading model"}'
    with pytest.raises(B.BackendUnavailable, match="refused the request: json_schema: HTTP 503.*loading model"):
        B.chat(B.ServerSettings(url=url, timeout=5), "s", "u", B.brief_schema(), 3, 10)
    _Slow.status = 200
    _Slow.body = json.dumps({"model": "m1", "choices": [{"message": {"content": '{"motion_prompt": "x"}'}}]}).encode()
    r = B.chat(B.ServerSettings(url=url, model="m1", api_key="k", timeout=5), "sys", "usr", B.motion_schema(), 3, 10,
               image_png=b"\x89PNG")
    assert r.content == '{"motion_prompt": "x"}' and r.model == "m1"
    req = _Slow.seen[-1]
    assert req["response_format"]["type"] == "json_schema" and req["seed"] == 3 and req["model"] == "m1"
    assert req["response_format"]["json_schema"]["schema"] == B.motion_schema()
    assert req["messages"][1]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_a_server_that_refuses_json_schema_is_asked_once_with_json_object(fake_server):
    """llama-cpp-python's server answers OpenAI's json_schema form with HTTP 500; the client asks once
    more in its json_object + schema form and remembers the form for that endpoint."""
    url = f"http://127.0.0.1:{fake_server.server_address[1]}/v1"

    class Picky(_Slow):
        def do_POST(self):
            n = int(self.headers.get("Content-Length", 0))
            req = json.loads(self.rfile.read(n))
            _Slow.seen.append(req)
            ok = req["response_format"]["type"] == "json_object"
            self.send_response(200 if ok else 500)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps({"choices": [{"message": {"content": "{}"}}]}).encode() if ok else b"no")
    fake_server.RequestHandlerClass = Picky
    B._FORMATS.clear()
    r = B.chat(B.ServerSettings(url=url, timeout=5), "s", "u", B.brief_schema(), 1, 10)
    assert [q["response_format"]["type"] for q in _Slow.seen] == ["json_schema", "json_object"]
    assert _Slow.seen[1]["response_format"]["schema"] == B.brief_schema() and "refused response_format" in r.notes[0]
    B.chat(B.ServerSettings(url=url, timeout=5), "s", "u", B.brief_schema(), 1, 10)
    assert [q["response_format"]["type"] for q in _Slow.seen[2:]] == ["json_object"]
    B._FORMATS.clear()


def test_a_text_only_model_that_refuses_the_image_is_asked_without_it(fake_server):
    url = f"http://127.0.0.1:{fake_server.server_address[1]}/v1"

    class TextOnly(_Slow):
        def do_POST(self):
            req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            _Slow.seen.append(req)
            ok = isinstance(req["messages"][1]["content"], str)
            self.send_response(200 if ok else 500)
            self.end_headers()
            self.wfile.write(json.dumps({"choices": [{"message": {"content": "{}"}}]}).encode() if ok else
                             b'{"error": "can only concatenate str (not list) to str"}')
    fake_server.RequestHandlerClass = TextOnly
    B._FORMATS.clear(), B._NO_IMAGES.clear()
    r = B.chat(B.ServerSettings(url=url, timeout=5), "s", "u", B.motion_schema(), 1, 10, image_png=b"png")
    assert [isinstance(q["messages"][1]["content"], str) for q in _Slow.seen] == [False, False, True]
    assert "did not take the image" in r.notes[-1] and "concatenate" in r.notes[-1]
    r = B.chat(B.ServerSettings(url=url, timeout=5), "s", "u", B.motion_schema(), 1, 10, image_png=b"png")
    assert len(_Slow.seen) == 4 and "did not take an image before" in r.notes[0]
    B._FORMATS.clear(), B._NO_IMAGES.clear()


def test_png_bytes_decode_to_the_same_pixels():
    import io

    import numpy as np
    from PIL import Image
    arr = (np.random.RandomState(0).rand(5, 7, 3) * 255).astype(np.uint8)
    back = np.asarray(Image.open(io.BytesIO(B.png_bytes(arr))).convert("RGB"))
    assert back.shape == (5, 7, 3) and (back == arr).all()
