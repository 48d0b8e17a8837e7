"""A real OpenAI-compatible LLM server on loopback, for tests: llama-cpp-python's server serving a
tiny random-weight Qwen3 GGUF that :func:`write_tiny_qwen3_gguf` writes.

Plain module (numpy + gguf-py only, nothing from ComfyUI). The server runs in the Python given to
:class:`LlamaServer` (default ``sys.executable``), which needs ``llama-cpp-python[server]``;
:func:`available` says whether it has it.

Verified with llama-cpp-python 0.3.36 (CPU build, ComfyUI's venv, 2 cores):

* The model: ``general.architecture = "qwen3"``, 64 wide, 2 blocks, 4 heads / 2 KV heads of 16,
  FFN 128, context 4096, F32 weights N(0, 0.02) from a seeded RNG, norms 1.0, untied
  ``output.weight``. 439,584 bytes; same seed, same bytes. The server starts in ~1.5 s and a
  ~200-token schema-constrained reply takes ~0.1-0.2 s.
* Logits are near-uniform, but a constant feature in the residual stream gives the output matrix a
  per-token bias that rules out every byte outside printable ASCII (see the code): replies are
  printable ASCII, one token per character at most.
* The tokenizer: ``gpt2`` byte-level BPE, pre ``qwen2``: the 256 GPT-2 byte tokens in GPT-2
  order, a few merges (:data:`MERGES`), then ``<|endoftext|>`` (bos, pad) ``<|im_start|>``
  ``<|im_end|>`` (eos), all three CONTROL; no BOS added. At least one merge is needed: without
  the merges key llama.cpp fails ("cannot find tokenizer merges in model file"), gguf-py's
  ``add_token_merges([])`` writes no key and an explicit empty array is refused by gguf-py.
* The chat template: ChatML (:data:`CHAT_TEMPLATE`). The server gets ``--chat_format
  chat_template.default``, which renders the GGUF's Jinja template (checked: prompt_tokens equals
  the token count of the rendered template). Without that flag 0.3.36 also uses the GGUF template,
  except that a template byte-equal to its own ``CHATML_CHAT_TEMPLATE`` (ours is not) is swapped
  for its built-in "chatml" formatter. ``<|im_end|>`` ends the reply (finish_reason "stop").
* ``response_format = {"type": "json_object", "schema": {...}}`` is compiled to a grammar by
  llama-cpp-python's own JSON-schema -> GBNF converter: required properties,
  ``additionalProperties: false``, enums and string ``maxLength`` are enforced (but a maxLength of
  ~1500 unrolls into a grammar its parser refuses, and the server process dies); integer
  ``minimum`` / ``maximum`` are ignored (any integer, up to 16 digits), and string characters
  may be raw control characters (its ``char`` rule is ``[^"\\]``; hence the bias above). A schema
  the converter cannot handle falls back silently to plain JSON. OpenAI's
  ``{"type": "json_schema", "json_schema": {...}}`` is not accepted: HTTP 500 with a validation
  error (the request model allows only ``"text"`` and ``"json_object"``).
* A per-request ``seed`` is honoured (``Llama.set_seed``): same request and seed, same reply;
  another seed, another reply.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

__all__ = ["CHAT_TEMPLATE", "MERGES", "SPECIAL_TOKENS", "LlamaServer", "available", "byte_tokens",
           "write_tiny_qwen3_gguf"]

# Minimal ChatML (Qwen's turn format). Deliberately not byte-equal to llama-cpp-python's
# CHATML_CHAT_TEMPLATE (that one would be swapped for its built-in "chatml" formatter).
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

# A handful of common GPT-2 merges (the merged tokens are in the vocab too).
MERGES = ("Ġ t", "Ġ a", "h e", "i n", "r e", "o n", "e r", "a n")
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

# Tiny Qwen3 hyper-parameters.
N_EMBD, N_LAYER, N_HEAD, N_HEAD_KV, HEAD_DIM, N_FF, N_CTX = 64, 2, 4, 2, 16, 128, 4096
ROPE_FREQ_BASE, RMS_EPS, INIT_STD = 1e6, 1e-6, 0.02


def _byte_table() -> list[tuple[int, str]]:
    """GPT-2's ``bytes_to_unicode`` as (byte, token text) pairs, in GPT-2 vocab order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [(b, chr(c)) for b, c in zip(bs, cs)]


def byte_tokens() -> list[str]:
    """The 256 GPT-2 byte tokens (``bytes_to_unicode``), in GPT-2 vocab order."""
    return [t for _, t in _byte_table()]


def _unprintable_byte_tokens() -> list[str]:
    """The byte tokens of every byte outside printable ASCII (0x20-0x7E)."""
    return [t for b, t in _byte_table() if not 0x20 <= b <= 0x7E]


def _vocab() -> tuple[list[str], list[int]]:
    import gguf
    tokens = byte_tokens() + [m.replace(" ", "") for m in MERGES] + list(SPECIAL_TOKENS)
    types = [gguf.TokenType.NORMAL] * (len(tokens) - len(SPECIAL_TOKENS)) + \
        [gguf.TokenType.CONTROL] * len(SPECIAL_TOKENS)
    assert len(set(tokens)) == len(tokens)
    return tokens, [int(t) for t in types]


def write_tiny_qwen3_gguf(path, seed: int = 0) -> Path:
    """Write a random-weight tiny Qwen3 GGUF (with tokenizer and chat template) to ``path``.

    Deterministic for ``seed``. Returns the path.
    """
    import gguf
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tokens, types = _vocab()
    n_vocab = len(tokens)
    rng = np.random.default_rng(seed)

    def rand(*shape):  # numpy order = (out, in), the reverse of ggml's ne
        return (rng.standard_normal(shape, dtype=np.float32) * INIT_STD).astype(np.float32)

    def ones(n):
        return np.ones(n, dtype=np.float32)

    q_dim, kv_dim = N_HEAD * HEAD_DIM, N_HEAD_KV * HEAD_DIM
    # Every token embedding carries a constant 1.0 in dim 0; the tiny layers barely change it, so
    # after the final RMS norm dim 0 is ~+8 whatever the input. Column 0 of the (untied) output
    # matrix is then a per-token logit bias: -3 (~ -24 logits) for the bytes outside printable
    # ASCII. So replies are printable ASCII: no raw control characters (llama-cpp-python's JSON
    # grammar lets them into strings, strict json.loads rejects them) and one token per character
    # at most (replies fit max_tokens).
    embd = rand(n_vocab, N_EMBD)
    embd[:, 0] = 1.0
    output = rand(n_vocab, N_EMBD)
    output[[tokens.index(t) for t in _unprintable_byte_tokens()], 0] = -3.0
    tensors = {"token_embd.weight": embd, "output_norm.weight": ones(N_EMBD), "output.weight": output}
    for i in range(N_LAYER):
        b = f"blk.{i}."
        tensors.update({
            b + "attn_norm.weight": ones(N_EMBD),
            b + "attn_q.weight": rand(q_dim, N_EMBD),
            b + "attn_k.weight": rand(kv_dim, N_EMBD),
            b + "attn_v.weight": rand(kv_dim, N_EMBD),
            b + "attn_output.weight": rand(N_EMBD, q_dim),
            b + "attn_q_norm.weight": ones(HEAD_DIM),
            b + "attn_k_norm.weight": ones(HEAD_DIM),
            b + "ffn_norm.weight": ones(N_EMBD),
            b + "ffn_gate.weight": rand(N_FF, N_EMBD),
            b + "ffn_up.weight": rand(N_FF, N_EMBD),
            b + "ffn_down.weight": rand(N_EMBD, N_FF),
        })

    w = gguf.GGUFWriter(path=None, arch="qwen3")
    w.add_name("lockn-tiny-qwen3")
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_context_length(N_CTX)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_key_length(HEAD_DIM)
    w.add_value_length(HEAD_DIM)
    w.add_rope_freq_base(ROPE_FREQ_BASE)
    w.add_layer_norm_rms_eps(RMS_EPS)

    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(list(MERGES))
    w.add_bos_token_id(tokens.index("<|endoftext|>"))
    w.add_eos_token_id(tokens.index("<|im_end|>"))
    w.add_pad_token_id(tokens.index("<|endoftext|>"))
    w.add_add_bos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)

    for name, arr in tensors.items():
        w.add_tensor(name, arr)
    tmp = path.with_name(path.name + ".part")
    w.write_header_to_file(path=tmp)
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, path)
    return path


def available(python: str | None = None) -> str | None:
    """None when ``llama_cpp.server`` imports in ``python`` (default sys.executable), else why not."""
    python = python or sys.executable
    try:
        r = subprocess.run([python, "-c", "import llama_cpp, llama_cpp.server.app; print(llama_cpp.__version__)"],
                           capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot run {python}: {e}"
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["?"])[-1]
        return f"llama-cpp-python[server] not usable in {python}: {last}"
    return None


# Loopback requests must not go through an HTTP proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """``python -m llama_cpp.server`` on 127.0.0.1 serving ``model`` (a GGUF path; None: a tiny
    Qwen3 written to a temporary folder). A context manager; ``start()`` returns once
    ``GET /v1/models`` answers. ``url`` is the OpenAI base URL (``http://127.0.0.1:PORT/v1``),
    ``model`` the id /v1/models lists.
    """

    def __init__(self, model=None, *, python: str | None = None, port: int | None = None,
                 n_ctx: int = 4096, n_threads: int = 1, model_alias: str | None = None,
                 extra_args=(), timeout: float = 60.0, log_path=None):
        self.python = python or sys.executable
        self._tmp = None
        if model is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="lockn-llm-")
            model = write_tiny_qwen3_gguf(Path(self._tmp.name) / "tiny-qwen3.gguf")
        self.model_path = Path(model)
        self.port = port
        self.n_ctx, self.n_threads, self.model_alias = n_ctx, n_threads, model_alias
        self.extra_args, self.timeout = list(extra_args), timeout
        self.log_path = Path(log_path) if log_path else None
        self.proc: subprocess.Popen | None = None
        self.url = self.model = None
        self.start_seconds: float | None = None

    def command(self) -> list[str]:
        cmd = [self.python, "-m", "llama_cpp.server", "--model", str(self.model_path),
               "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx),
               "--n_threads", str(self.n_threads), "--n_threads_batch", str(self.n_threads),
               "--chat_format", "chat_template.default"]
        if self.model_alias:
            cmd += ["--model_alias", self.model_alias]
        return cmd + self.extra_args

    def start(self) -> "LlamaServer":
        if self.proc is not None:
            return self
        if self.port is None:
            self.port = _free_port()
        if self.log_path is None:
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="lockn-llm-")
            self.log_path = Path(self._tmp.name) / "llama-server.log"
        base = f"http://127.0.0.1:{self.port}/v1"
        t0 = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        deadline = t0 + self.timeout
        while True:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise RuntimeError(f"llama_cpp.server exited with {rc} before answering:\n{self.log_tail()}")
            try:
                with _OPENER.open(base + "/models", timeout=2) as r:
                    models = json.load(r)
                break
            except (urllib.error.URLError, OSError, ValueError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"llama_cpp.server did not answer within {self.timeout} s:\n"
                                       f"{self.log_tail()}")
                time.sleep(0.2)
        self.start_seconds = time.monotonic() - t0
        self.url = base
        self.model = models["data"][0]["id"]
        return self

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = Path(self.log_path).read_text(errors="replace").splitlines()
        except (OSError, TypeError):
            return ""
        return "\n".join(lines[-n:])

    def stop(self) -> None:
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)

    def close(self) -> None:
        """Stop the server and delete the temporary folder (generated model, default log)."""
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "LlamaServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
