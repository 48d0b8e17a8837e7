"""The one place where LockN Gen touches ComfyUI's and ComfyUI-GGUF's internals.

Everything else in nodes/ uses `comfy_api.latest`, `folder_paths`, the documented route API and this
module. Each internal below is looked up when it is used; when one is missing or changed, the feature
that needs it degrades as the last column says, the log says so once in plain words, and the warning
shows in GET /lockn/residency and the LockN sidebar tab (`warnings()`). No prompt fails over it.

| internal (what for)                                    | 0.20.1             | 0.33.0             | when missing            |
|--------------------------------------------------------|--------------------|--------------------|-------------------------|
| comfy.model_management.current_loaded_models (tiers)   | LoadedModel list   | same               | every model reads "ram" |
|   (LoadedModel.model, its _parent_model while a loaded |                    |                    |                         |
|   clone dies; ModelPatcher.loaded_size)                |                    |                    |                         |
| model_management.free_memory(keep_loaded=...) (GPU->RAM)| yes               | same               | no GPU->RAM eviction    |
| get_torch_device/get_free_memory/get_total_memory,     | yes                | same               | no automatic GPU budget;|
|   (and the device type: CPU/MPS memory is system RAM)  |                    |                    | tiers budgeted apart    |
|   extra_reserved_memory, minimum_inference_memory      |                    |                    |                         |
| TOTAL_PINNED_MEMORY + pinned weights (report only)     | module._pin,       | model.dynamic_pins | host_pinned_bytes 0     |
|                                                        | ModelPatcher.pinned| + .pinned          |                         |
| ModelPatcher.model's parameters and buffers (where a   | yes                | same               | whole models count      |
|   model's weights lie: mapped from its file or private)|                    |                    |   against the RAM budget|
| ComfyUI-GGUF's diffusion-model load (estimate before a | as gguf_load_split | same               | (knowledge, not a look- |
|   load): weights stay views into the file's read-only  |   says             |                    |  up: the estimate is off|
|   map, except the tensors it copies or dequantizes     |                    |                    |  until the load is      |
|                                                        |                    |                    |  measured)              |
| comfy_execution.utils.get_executing_context (prompt id)| yes                | same               | settles only when idle  |
| comfy_execution.cache_provider register/unregister     | yes                | same               | settles only when idle  |
|   (prompt start/end hook, registered only when needed) |                    |                    |                         |
| PromptServer.instance: prompt_queue (mutex, queue,     | yes                | same               | no queue look-ahead; no |
|   currently_running, get_flags/set_flag), loop,        |                    |                    | output-cache release    |
|   send_sync, add_on_prompt_handler, app.middlewares    |                    |                    | after a drop; no event  |
| POST /free and /api/free (ComfyUI's route; watched)    | both prefixes      | both prefixes      | /free not watched       |
| nodes.NODE_CLASS_MAPPINGS (ComfyUI's and GGUF loaders) | node contract      | same               | the loader's own error  |
| LatentUpscaleModelLoader.execute (LTX-2 x2 upscaler)   | returns the model  | returns a Model-   | the turbo path's loader |
|                                                        |                    |  Patcher           | says ComfyUI lacks it   |
| ComfyUI-GGUF loader.IMG_ARCH_LIST (ACE-Step GGUF)      | set                | same               | ACE-Step GGUF refused   |
| ComfyUI-GGUF folder names unet_gguf, clip_gguf (combos)| registered         | same               | no .gguf in the combos  |
| comfy.lora.model_lora_keys_unet, load_lora; comfy.     | yes (no bare keys  | yes                | LoRA nodes refuse with  |
|   lora_convert.convert_lora; ModelPatcher.clone,       |  for LTX-2: added  |                    | the reason (nothing is  |
|   add_patches, patches_uuid (LoRAs)                    |  here)             |                    | patched half-way)       |
| EasyCache node (comfy_extras/nodes_easycache.py) and   | yes                | same               | the step cache node     |
|   its holder's total_steps_skipped; patcher_extension  |                    |                    |   refuses with the      |
|   WrappersMP.OUTER_SAMPLE, ModelPatcher.add_wrapper_   |                    |                    |   reason (nothing runs  |
|   with_key; a guider's conds/cfg; executing node id    |                    |                    |   uncached silently)    |
| CLIP.generate / decode, tokenize(llama_template=...,   | Gemma 3, Qwen3 4B/8B| same (+ Qwen3-VL, | Brief: "cannot write"   |
|   image=...), cond_stage_model children .transformer   | (not Mistral, not  |  Gemma 4)          | (fallback as the node   |
|   .generate (text generation with a loaded encoder)    |  ACE-Step's Qwen3) |                    |  says; shown in report) |
"""
from __future__ import annotations

import contextlib
import logging
import sys
import threading
from dataclasses import dataclass

log = logging.getLogger("lockn_gen.comfy")
_warned: dict[str, str] = {}


def _degraded(feature: str, effect: str, exc: BaseException | None = None) -> None:
    """Say once, in plain words, that a ComfyUI internal is missing and what LockN does without it."""
    if feature in _warned:
        return
    why = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
    text = f"ComfyUI {comfyui_version()}: {feature} is missing or changed{why}; {effect}"
    _warned[feature] = text
    log.warning("LockN Gen: %s", text)


def warnings() -> list[str]:
    return list(_warned.values())


def comfyui_version() -> str:
    mod = sys.modules.get("comfyui_version")
    if mod is None:
        try:
            import comfyui_version as mod
        except ImportError:
            return "(unknown version)"
    return str(getattr(mod, "__version__", "(unknown version)"))


def _mm():
    import comfy.model_management as mm
    return mm


# ---- progress -------------------------------------------------------------------------------------------------
class _ApiProgress:
    """comfy_api's set_progress, where comfy.utils.ProgressBar is missing (the editor's bar only: no "progress"
    websocket message for the LockN client)."""

    def __init__(self, total):
        from comfy_api.latest import ComfyAPISync
        self.total, self.api = total, ComfyAPISync()

    def update_absolute(self, value, total=None):
        self.api.execution.set_progress(min(value, total or self.total), total or self.total)


def progress_bar(total: int):
    """ComfyUI's own progress bar for the running node (what its samplers use: the editor's bar and the "progress"
    websocket message the LockN client shows)."""
    try:
        from comfy.utils import ProgressBar
    except ImportError as e:
        _degraded("comfy.utils.ProgressBar", "LockN's long nodes show progress in the editor only", e)
        return _ApiProgress(total)
    return ProgressBar(total)


# ---- the user's Cancel ---------------------------------------------------------------------------------------
def interrupted() -> bool:
    """Whether the user cancelled the running prompt (ComfyUI's interrupt flag, which its samplers poll)."""
    try:
        return bool(_mm().processing_interrupted())
    except (ImportError, AttributeError) as e:
        _degraded("comfy.model_management.processing_interrupted",
                  "Cancel does not stop a stable-diffusion.cpp run between steps (it ends when the run does)", e)
        return False


def raise_interrupted() -> None:
    """End the node the way ComfyUI's own nodes end on Cancel (its InterruptProcessingException: the prompt is
    reported interrupted, not failed)."""
    mm = _mm()
    mm.throw_exception_if_processing_interrupted()
    raise mm.InterruptProcessingException()


# ---- loaded models and their tiers --------------------------------------------------------------------
@dataclass
class Loaded:
    """One model ComfyUI holds on its compute device: the patcher it loaded (a clone of ours after a
    LoRA or ModelSamplingSD3, say), the module behind it, and ComfyUI's own record."""
    patcher: object
    device: object
    loaded_bytes: int
    record: object


def _loaded_patcher(lm):
    """The ModelPatcher a LoadedModel record stands for. ComfyUI holds it weakly: when a clone it loaded dies
    (the output cache let go of it: POST /free, or the cache clear the registry asks for after a drop, then
    the worker's gc.collect() right after the prompt), the reference reads None until ComfyUI's finalizer
    switches the record to the clone's parent (LoadedModel._switch_parent), and the weights stay loaded
    throughout. A look from another thread in between (the idle watcher's settle, just then) read the model
    as gone: seen on 0.33 under load, a Wan2.2 expert read as in RAM at the settle and the GPU budget was
    left exceeded. Read the parent then, as ComfyUI is about to."""
    patcher = lm.model
    if patcher is None:
        parent = getattr(lm, "_parent_model", None)
        patcher = parent() if callable(parent) else None
    return patcher


def loaded_models() -> list[Loaded]:
    try:
        out = []
        for lm in list(_mm().current_loaded_models):
            patcher = _loaded_patcher(lm)
            if patcher is not None:
                out.append(Loaded(patcher, lm.device, int(patcher.loaded_size()), lm))
        return out
    except (ImportError, AttributeError, TypeError) as e:
        _degraded("comfy.model_management.current_loaded_models", "every model reads as in RAM", e)
        return []


def inner_model(patcher):
    """The torch module a ModelPatcher wraps: clones share it (ModelPatcher.is_clone compares it)."""
    return getattr(patcher, "model", None)


def offload(loaded: list[Loaded]) -> None:
    """Move these models GPU -> RAM, keeping every other loaded model where it is."""
    if not loaded:
        return
    try:
        mm = _mm()
        for item in loaded:
            keep = [lm for lm in mm.current_loaded_models if lm is not item.record]
            mm.free_memory(1e30, item.device, keep_loaded=keep)
    except (ImportError, AttributeError, TypeError) as e:
        _degraded("comfy.model_management.free_memory(keep_loaded=...)",
                  "LockN cannot move one model off the GPU (eviction to RAM does nothing)", e)


def default_gpu_budget(held_on_gpu: int) -> int | None:
    """What ComfyUI sees free on the compute device plus what LockN's models hold there, minus
    ComfyUI's reserve and minimum inference memory. None when it cannot be read."""
    try:
        mm = _mm()
        free = mm.get_free_memory(mm.get_torch_device())
        return int(max(0, free + held_on_gpu - mm.extra_reserved_memory() - mm.minimum_inference_memory()))
    except (ImportError, AttributeError, TypeError) as e:
        _degraded("comfy.model_management memory readings", "no automatic GPU budget (set one on the Residency node)", e)
        return None


def compute_memory_is_ram() -> bool:
    """ComfyUI computes in system RAM (--cpu, or Apple's unified memory): its "GPU" tier is RAM too."""
    try:
        return _mm().get_torch_device().type in ("cpu", "mps")
    except (ImportError, AttributeError, TypeError) as e:
        _degraded("comfy.model_management.get_torch_device", "the GPU and RAM tiers are budgeted as separate memory", e)
        return False


def gpu_memory() -> tuple[int, int] | None:
    """(total, free) bytes of the compute device, or None."""
    try:
        mm = _mm()
        dev = mm.get_torch_device()
        return int(mm.get_total_memory(dev)), int(mm.get_free_memory(dev))
    except (ImportError, AttributeError, TypeError) as e:
        _degraded("comfy.model_management memory readings", "no automatic GPU budget (set one on the Residency node)", e)
        return None


# ---- page-locked (pinned) host memory: a reading for the report ----------------------------------------
def pinned_total() -> int:
    try:
        return int(getattr(_mm(), "TOTAL_PINNED_MEMORY", 0) or 0)
    except ImportError:
        return 0


def pinned_bytes(patchers) -> int:
    """Bytes of these models' weights that ComfyUI holds page-locked in system RAM."""
    try:
        import comfy.model_patcher as mp
    except ImportError:
        return 0
    total = 0
    for p in patchers:
        try:
            model = p.model
            pins = getattr(model, "dynamic_pins", None)          # 0.33 dynamic VRAM: per device, per subset
            if isinstance(pins, dict):
                for per_device in pins.values():
                    for state in per_device.values():         # subsets: (hostbuf, stack, split, pinned_size, ...)
                        if isinstance(state, tuple):          # beside flags such as "active"
                            total += int(state[3][0])
            else:                                                 # 0.20.1 dynamic VRAM: module._pin
                for m in model.modules():
                    pin = m.__dict__.get("_pin")                  # __dict__: skips nn.Module's slow miss
                    if pin is not None:
                        total += pin.numel() * pin.element_size()
            for key in list(getattr(p, "pinned", ()) or ()):      # classic loading: keys pinned on offload
                total += mp.get_key_weight(model, key)[0].nbytes
        except Exception as e:                                    # a reading, never a reason to fail a report
            _degraded("ComfyUI's pinned-memory records", "host_pinned_bytes reads 0", e)
    return total


# ---- where a model's weights lie: mapped from its file, or private ----------------------------------------
def weight_ranges(patchers) -> list[tuple[int, int]] | None:
    """The [start, end) address ranges of the CPU tensors behind these patchers (each one's module:
    parameters and buffers; ComfyUI-GGUF's GGMLTensor holds its quantized bytes as its own data). None
    when they cannot be read (then the whole model counts as private memory)."""
    out = []
    try:
        for p in patchers:
            model = inner_model(p)
            if model is None:
                continue
            seen = set()
            for t in (*model.parameters(), *model.buffers()):
                if id(t) in seen or t.device.type != "cpu":
                    continue
                seen.add(id(t))
                n = t.numel() * t.element_size()
                if n:
                    start = t.data_ptr()
                    out.append((start, start + n))
    except Exception as e:                                   # a reading, never a reason to fail a load
        _degraded("ModelPatcher.model's parameters and buffers",
                  "LockN counts whole models against the RAM budget (mapped GGUF files included)", e)
        return None
    return out


_FLOAT_TYPES = ("F32", "F16")          # what ComfyUI-GGUF hands to torch as is (dequant.TORCH_COMPATIBLE_QTYPES)


def gguf_load_split(path: str) -> tuple[int, int]:
    """(bytes, mapped bytes) that loading this GGUF diffusion model through ComfyUI-GGUF will hold, from its
    header, before anything is read. Measured on the tiny set (flux2 Q4_K_M, Wan2.2 Q4_K_M/Q8_0, ACE-Step
    Q8_0) against what the loaded model's tensors point at:
    - quantized weights (every type but F32 and F16, BF16 included) and 2-D F32/F16 weights (Linear layers)
      stay views into the file's read-only map: mapped;
    - 1-D F32/F16 tensors (norms, biases) and those of 3 dimensions or more (convolutions) are copied into
      the model's own parameters, 1-D BF16 ones dequantized to F32: private;
    - ComfyUI-GGUF's model size (what ComfyUI and the registry count) adds the largest quantized weight
      dequantized to F16, for the dequantization at compute time: private.
    A tensor the rule counts as mapped and the loader copies makes the estimate low until the load is
    measured; the registry's reading after the load is what counts from then on."""
    from ..lockn_gen import fileinfo
    info = fileinfo.read_gguf_header(path)
    type_ids = {name: tid for tid, name in fileinfo._GGML_NAMES.items()}
    mapped = private = largest = 0
    for t in info.tensors.values():
        tid = type_ids.get(t.dtype)
        if tid is None and t.dtype.startswith("type"):
            tid = int(t.dtype[4:])
        block, per_block = fileinfo._GGML_TYPES.get(tid, (1, 0))
        numel = 1
        for d in t.shape:
            numel *= int(d)
        nbytes = numel // block * per_block
        quantized = t.dtype not in _FLOAT_TYPES
        if quantized and len(t.shape) <= 1 and t.dtype == "BF16":
            private += numel * 4
        elif quantized or len(t.shape) == 2:
            mapped += nbytes
            if quantized:
                largest = max(largest, numel)
        else:
            private += nbytes
    return mapped + private + largest * 2, mapped


# ---- the prompt in progress -------------------------------------------------------------------------
def executing_prompt_id() -> str | None:
    """The prompt whose node ComfyUI executes (or fingerprints) in this thread; None outside one."""
    try:
        from comfy_execution.utils import get_executing_context
    except ImportError as e:
        _degraded("comfy_execution.utils.get_executing_context",
                  "LockN settles after a prompt only when the queue is idle", e)
        return None
    ctx = get_executing_context()
    return getattr(ctx, "prompt_id", None) if ctx is not None else None


def executing_node_id() -> str | None:
    """The node ComfyUI executes in this thread; None outside one."""
    try:
        from comfy_execution.utils import get_executing_context
    except ImportError:
        return None
    ctx = get_executing_context()
    nid = getattr(ctx, "node_id", None) if ctx is not None else None
    return None if nid is None else str(nid)


def register_prompt_hook(provider) -> bool:
    try:
        from comfy_execution.cache_provider import register_cache_provider
    except ImportError as e:
        _degraded("comfy_execution.cache_provider", "LockN settles after a prompt only when the queue is idle", e)
        return False
    register_cache_provider(provider)
    return True


def unregister_prompt_hook(provider) -> None:
    try:
        from comfy_execution.cache_provider import unregister_cache_provider
    except ImportError:
        return
    unregister_cache_provider(provider)


# ---- the server: queue, loop, events, handlers --------------------------------------------------------
def server():
    """ComfyUI's PromptServer, or None in-process (no server)."""
    try:
        from server import PromptServer
    except ImportError:
        return None
    return getattr(PromptServer, "instance", None)


def _prompt_queue():
    s = server()
    q = getattr(s, "prompt_queue", None) if s is not None else None
    if s is not None and q is None:
        _degraded("PromptServer.prompt_queue", "LockN cannot see the queue (settles at its next prompt)")
    return q


class QueueView:
    """ComfyUI's prompt queue, read while its mutex is held (no prompt starts meanwhile)."""

    def __init__(self, q):
        self._q = q

    def running_prompts(self) -> list[dict]:
        return [item[2] for item in self._q.currently_running.values()]

    def running_prompt(self, prompt_id) -> dict | None:
        return next((item[2] for item in self._q.currently_running.values() if item[1] == prompt_id), None)

    def next_prompt(self) -> dict | None:
        return self._q.queue[0][2] if self._q.queue else None       # a heap: [0] runs next

    def waiting(self) -> int:
        return len(self._q.queue)

    def request_output_cache_clear(self) -> None:
        """What POST /free {"free_memory": true, "unload_models": false} asks: after the current prompt
        the worker resets the executor's output cache, unloading no model."""
        if "unload_models" not in self._q.get_flags(reset=False):
            self._q.set_flag("unload_models", False)
        self._q.set_flag("free_memory", True)


@contextlib.contextmanager
def locked_queue():
    """Yields a QueueView with ComfyUI's queue mutex held, or None without a server or queue."""
    q = _prompt_queue()
    if q is None:
        yield None
        return
    try:
        mutex, _, _ = q.mutex, q.queue, q.currently_running
    except AttributeError as e:
        _degraded("PromptQueue (mutex, queue, currently_running)", "LockN cannot see the queue", e)
        yield None
        return
    with mutex:
        yield QueueView(q)


def prompt_running() -> bool:
    q = _prompt_queue()
    return bool(q is not None and getattr(q, "currently_running", None))


def event_loop():
    return getattr(server(), "loop", None)


def send_event(event: str, data: dict) -> None:
    s = server()
    if s is not None:
        s.send_sync(event, data)


def add_on_prompt_handler(handler) -> bool:
    s = server()
    try:
        s.add_on_prompt_handler(handler)
        return True
    except AttributeError as e:
        _degraded("PromptServer.add_on_prompt_handler",
                  "a prompt without LockN loaders may start before the budgets of the LockN prompt before it apply", e)
        return False


def add_middleware(middleware) -> bool:
    try:
        server().app.middlewares.append(middleware)
        return True
    except (AttributeError, RuntimeError) as e:     # RuntimeError: the app is already frozen
        _degraded("PromptServer.app.middlewares", "POST /free is not watched: models freed there stay in "
                  "LockN's RAM tier until evicted", e)
        return False


def is_free_request(path: str) -> bool:
    """ComfyUI serves every route under /api too; the editor's free button posts to /api/free."""
    return path in ("/free", "/api/free")


# ---- ComfyUI's loader nodes and ComfyUI-GGUF ------------------------------------------------------------
def node_class(name: str):
    try:
        import nodes
    except ImportError:
        return None
    return nodes.NODE_CLASS_MAPPINGS.get(name)


_GGUF_FOLDERS = {"diffusion_models": "unet_gguf", "text_encoders": "clip_gguf"}


def gguf_folder(folder: str) -> str | None:
    """The folder name under which ComfyUI-GGUF lists the .gguf files of a model folder."""
    return _GGUF_FOLDERS.get(folder) if gguf_available() else None


def gguf_available() -> bool:
    return node_class("UnetLoaderGGUF") is not None


@contextlib.contextmanager
def gguf_arch_allowed(arch: str):
    """Let ComfyUI-GGUF read a diffusion-model GGUF whose architecture it does not list (ACE-Step 1.5)
    for the duration of one load."""
    allowed = None
    cls = node_class("UnetLoaderGGUF")
    if cls is not None:
        pkg = getattr(sys.modules.get(cls.__module__), "__package__", None)   # a folder path, not importable
        allowed = getattr(sys.modules.get(f"{pkg}.loader"), "IMG_ARCH_LIST", None)
        if not isinstance(allowed, set):
            _degraded("ComfyUI-GGUF's loader.IMG_ARCH_LIST", "GGUF files of architectures it does not list "
                      "(ACE-Step 1.5) cannot load")
            allowed = None
    added = arch if (allowed is not None and arch and arch not in allowed) else None
    if added:
        allowed.add(added)
    try:
        yield
    finally:
        if added:
            allowed.discard(added)


# ---- LoRAs: patches on a clone of the base's ModelPatcher --------------------------------------------
class LoraUnsupported(RuntimeError):
    pass


def _lora_api():
    try:
        import comfy.lora
        import comfy.lora_convert
        return comfy.lora, comfy.lora_convert
    except ImportError as e:
        _degraded("comfy.lora / comfy.lora_convert", "LoRA nodes cannot apply LoRAs", e)
        raise LoraUnsupported(f"this ComfyUI ({comfyui_version()}) has no comfy.lora: {e}") from e


def convert_lora(sd: dict) -> dict:
    """ComfyUI's own conversion of other trainers' key layouts (what LoraLoader does first)."""
    _, convert = _lora_api()
    return convert.convert_lora(sd)


def lora_key_map(patcher) -> dict:
    """LoRA module name -> weight key of a diffusion model, as ComfyUI's LoraLoader builds it; plus each
    weight's bare name (`blocks.0.self_attn.q`), which ComfyUI 0.33 maps for LTX-2 and ACE-Step and 0.20.1
    does not (so the same LoRA file loads on both)."""
    lora, _ = _lora_api()
    try:
        key_map = lora.model_lora_keys_unet(patcher.model, {})
    except AttributeError as e:
        _degraded("comfy.lora.model_lora_keys_unet", "LoRA nodes cannot apply LoRAs", e)
        raise LoraUnsupported(str(e)) from e
    for k in list(key_map.values()):
        if isinstance(k, str) and k.startswith("diffusion_model.") and k.endswith(".weight"):
            key_map.setdefault(k[len("diffusion_model."):-len(".weight")], k)
    return key_map


def weight_shapes(patcher) -> dict:
    """Weight key -> shape of a model (GGUF weights report their dequantized shape)."""
    # named_parameters, not state_dict: state_dict's detached copies lose ComfyUI-GGUF's tensor_shape
    return {k: tuple(getattr(t, "tensor_shape", None) or t.shape) for k, t in patcher.model.named_parameters()}


def lora_backup_bytes(patcher, keys) -> int:
    """System RAM that ComfyUI will use for backups of these weights while a LoRA is patched into them:
    a classic ModelPatcher keeps each patched weight's original on its offload device (the CPU); dynamic
    VRAM (0.33) and ComfyUI-GGUF's quantized weights patch on the fly and keep none."""
    try:
        if getattr(patcher, "is_dynamic", lambda: False)():
            return 0
        params = dict(patcher.model.named_parameters())
    except Exception as e:                                   # an estimate: never a reason to fail
        _degraded("ModelPatcher.is_dynamic / the model's parameters", "LoRA patch backups are not budgeted", e)
        return 0
    total = 0
    for k in keys:
        t = params.get(k)
        tt = getattr(t, "tensor_type", None)                                 # GGUF tensors carry their type
        if t is not None and (tt is None or getattr(tt, "name", str(tt)) in ("F32", "F16", "BF16")):
            total += t.numel() * t.element_size()
    return total


def add_lora(patcher, sd: dict, key_map: dict, strength: float):
    """A clone of `patcher` with the LoRA's patches at `strength` (ComfyUI's load_lora_for_models for the
    model alone). ComfyUI logs "lora key not loaded" for each tensor that fits no weight."""
    lora, _ = _lora_api()
    patches = lora.load_lora(sd, key_map)
    clone = patcher.clone()
    applied = clone.add_patches(patches, strength)
    return clone, len(set(applied))


def patches_uuid(patcher):
    """What ComfyUI compares to know whether a model's weights carry a patcher's patches: a clone keeps
    it until its patches change (a ModelSamplingSD3 clone of a LoRA clone has the LoRA's)."""
    return getattr(patcher, "patches_uuid", None)


class CannotWrite(RuntimeError):
    """The text encoder cannot generate text in this ComfyUI (or the internal for it is missing)."""


def clip_can_generate(clip) -> bool:
    """Whether ComfyUI can generate text with this CLIP: its model must have generate() and a child
    text model whose transformer generates (Gemma 3 of LTX-2, Qwen3 of Flux.2 klein do; Flux.2-dev's
    Mistral and ACE-Step's Qwen3 do not in 0.20.1 or 0.33)."""
    csm = getattr(clip, "cond_stage_model", None)
    if csm is None or not callable(getattr(clip, "generate", None)) or not callable(getattr(csm, "generate", None)):
        return False
    try:
        children = list(csm.children())
    except Exception:   # noqa: BLE001 - not a torch module: unknown layout
        return False
    return any(callable(getattr(getattr(c, "transformer", None), "generate", None)) for c in children)


def clip_kind(clip) -> str:
    """The chat format its tokenizer expects: gemma | chatml | mistral."""
    names = " ".join(str(getattr(clip.tokenizer, a, "")) for a in ("clip_name", "clip")).lower()
    names += " " + type(clip.tokenizer).__name__.lower()
    if "gemma" in names or "ltxav" in names:
        return "gemma"
    if "mistral" in names or "flux2tokenizer" in names:
        return "mistral"
    return "chatml"


def clip_generate(clip, chat_text: str, image=None, max_tokens: int = 256, seed: int = 0,
                  temperature: float = 0.7) -> tuple[str, int]:
    """Generate text with a loaded text encoder, as ComfyUI's own TextGenerate node does: tokenize the
    already chat-formatted text (llama_template "{}" keeps the tokenizer from wrapping it again),
    sample with the seed, decode. Returns (text, tokens generated); CannotWrite when it can't."""
    if not clip_can_generate(clip):
        raise CannotWrite(f"ComfyUI {comfyui_version()} cannot generate text with this text encoder "
                          f"({type(getattr(clip, 'cond_stage_model', clip)).__name__})")
    kw = {"llama_template": "{}", "min_length": 1}
    if image is not None:
        kw["image"] = image
    try:
        tokens = clip.tokenize(chat_text, **kw)
        ids = clip.generate(tokens, do_sample=True, max_length=int(max_tokens), temperature=float(temperature),
                            top_k=64, top_p=0.95, min_p=0.05, repetition_penalty=1.05, seed=int(seed))
    except (AttributeError, TypeError) as e:
        _degraded("CLIP.generate / tokenize(llama_template=, image=)", "the Brief's resident backend cannot write", e)
        raise CannotWrite(f"ComfyUI {comfyui_version()}'s text generation failed ({type(e).__name__}: {e})") from e
    try:
        return clip.decode(ids), len(ids)
    except (IndexError, ValueError, KeyError, RuntimeError):
        # an id past the tokenizer's pieces (embedding rows are padded past the vocabulary): drop those ids
        good = []
        for i in ids:
            try:
                clip.decode([i])
                good.append(i)
            except (IndexError, ValueError, KeyError, RuntimeError):
                pass
        return clip.decode(good), len(ids)


class Missing(RuntimeError):
    """A ComfyUI internal a node needs right now is missing; the message says what and what to do."""


def load_latent_upscale_model(name: str):
    """ComfyUI's own Load Latent Upscale Model on a file of models/latent_upscale_models: what LTXVLatentUpsampler
    takes (the model in 0.20.1, a ModelPatcher around it in 0.33)."""
    cls = node_class("LatentUpscaleModelLoader")
    if cls is None or not callable(getattr(cls, "execute", None)):
        _degraded("nodes.NODE_CLASS_MAPPINGS['LatentUpscaleModelLoader']", "the LTX-2 turbo path cannot load its upscaler")
        raise Missing(f"ComfyUI {comfyui_version()} has no Load Latent Upscale Model node (LatentUpscaleModelLoader), "
                      f"which loads {name}: update ComfyUI, or run the LTX-2 stage with turbo off")
    out = cls.execute(model_name=name)
    return getattr(out, "result", out)[0]


def probe() -> list[str]:
    """Look up every internal once at start-up, so a missing one is reported before it is needed."""
    loaded_models()
    default_gpu_budget(0)
    pinned_total()
    try:
        import comfy_execution.cache_provider  # noqa: F401
        import comfy_execution.utils  # noqa: F401
    except ImportError as e:
        _degraded("comfy_execution (executing context, cache providers)",
                  "LockN settles after a prompt only when the queue is idle", e)
    s = server()
    if s is not None:
        for attr in ("prompt_queue", "loop", "send_sync", "add_on_prompt_handler"):
            if not hasattr(s, attr):
                _degraded(f"PromptServer.{attr}", "parts of residency (queue look-ahead, events) are off")
    return warnings()


# ---- step cache: core's EasyCache on a clone of the model, and what it skipped ------------------------------
def model_class_name(model) -> str | None:
    """The class of the ComfyUI model inside a ModelPatcher (comfy.model_base: Flux2, WAN21, LTXAV, ACEStep15)."""
    inner = getattr(model, "model", None)
    return type(inner).__name__ if inner is not None else None


def guider_conds(guider) -> int:
    """How many conditions a sampling run evaluates per step: positive, and negative unless cfg is 1 (ComfyUI
    then skips the negative)."""
    conds = getattr(guider, "conds", None) or {}
    n = len(conds) or 1
    cfg = getattr(guider, "cfg", 1.0)
    try:
        if n > 1 and abs(float(cfg) - 1.0) < 1e-9:
            n = 1
    except (TypeError, ValueError):
        pass
    return n


def add_step_cache(model, threshold: float, start_percent: float, end_percent: float, before, after):
    """A clone of `model` with ComfyUI's own EasyCache (the node's execute: its wrappers and state holder) and,
    inside EasyCache's outer-sample wrapper, one of ours that calls ``before(noise, guider, steps)`` at the run's
    first model call (the model is on its device then; nothing is computed yet) and ``after(skipped, steps)``
    after the run (also when it fails or is interrupted), while the run's own cache state still holds the
    count. The base `model` is untouched."""
    cls = node_class("EasyCache")
    try:
        import comfy.patcher_extension as pe
        outer = pe.WrappersMP.OUTER_SAMPLE
    except (ImportError, AttributeError) as e:
        cls, err = None, e
    else:
        err = None
    if cls is None or not callable(getattr(cls, "execute", None)):
        _degraded("the EasyCache node (comfy_extras/nodes_easycache.py) or WrappersMP.OUTER_SAMPLE",
                  "the LockN step cache refuses to run", err)
        raise Missing(f"ComfyUI {comfyui_version()} has no EasyCache node (core's step cache, which the LockN step "
                      f"cache runs): update ComfyUI, or turn 'cache steps' off")
    out = cls.execute(model=model, reuse_threshold=float(threshold), start_percent=float(start_percent),
                      end_percent=float(end_percent), verbose=False)
    clone = getattr(out, "result", out)[0]

    local = threading.local()                 # the sampling run of this thread, until its first model call

    def lockn_step_cache(executor, *args, **kwargs):
        guider, noise, sigmas = executor.class_obj, args[0], args[3]
        steps = max(0, len(sigmas) - 1)
        local.pending = (noise, guider, steps)
        try:
            return executor(*args, **kwargs)
        finally:
            local.pending = None
            holder = (getattr(guider, "model_options", None) or {}).get("transformer_options", {}).get("easycache")
            skipped = getattr(holder, "total_steps_skipped", None)
            if skipped is None:
                _degraded("EasyCache's state (total_steps_skipped)", "the step cache cannot say what it skipped")
            after(None if skipped is None else int(skipped), steps)

    def lockn_step_cache_first_call(executor, *args, **kwargs):
        # the first model call of a run: ComfyUI has loaded the model by now, so the budgets see it where it is
        pending, local.pending = getattr(local, "pending", None), None
        if pending is not None:
            before(*pending)
        return executor(*args, **kwargs)

    clone.add_wrapper_with_key(outer, "lockn_step_cache", lockn_step_cache)
    clone.add_wrapper_with_key(pe.WrappersMP.DIFFUSION_MODEL, "lockn_step_cache", lockn_step_cache_first_call)
    return clone


# ---- LoRA training: core's TrainLoraNode on the resident base ------------------------------------------------
def _structural_copy(module, memo=None):
    """A copy of a module tree whose modules are new objects (their own train flag, forward, hooks and ComfyUI's
    weight_function lists) and whose parameters and buffers are the very tensors of `module` (call it outside
    inference mode)."""
    import copy
    memo = {} if memo is None else memo
    if id(module) in memo:
        return memo[id(module)]
    c = copy.copy(module)
    memo[id(module)] = c
    c._parameters = dict(module._parameters)
    # buffers (rotary tables, schedules: small) made under inference mode, as every load is, cannot be saved for
    # backward (ACE-Step 1.5's rotary embedding fails so): the copy gets ordinary copies of those
    c._buffers = {k: (b.clone() if b is not None and b.is_inference() else b) for k, b in module._buffers.items()}
    for k, v in module.__dict__.items():
        if k.startswith(("_forward", "_backward", "_state_dict", "_load_state_dict")) and isinstance(v, dict):
            c.__dict__[k] = v.__class__(v) if not hasattr(v, "default_factory") else copy.copy(v)
        elif k in ("weight_function", "bias_function") and isinstance(v, list):
            c.__dict__[k] = list(v)
    c._modules = {k: (None if m is None else _structural_copy(m, memo)) for k, m in module._modules.items()}
    return c


def _resident_copy_factory(base):
    """What ComfyUI 0.33's trainer calls to rebuild the base (``cached_patcher_init``; core's loaders read the file
    again, ComfyUI-GGUF's sets none): a structural copy of the resident model (_structural_copy) whose parameters
    and buffers are the resident tensors themselves. The trainer switches the copy to train mode, patches its
    blocks' forward for gradient checkpointing and adds its adapters to the copy's modules; the resident model's
    modules are not touched and no weight is read or copied."""

    def build(*_, disable_dynamic=True, **__):
        import torch
        with torch.inference_mode(False):
            clone = _structural_copy(base.model)

        class Fresh:
            @staticmethod
            def get_clone_model_override():
                return clone, ({}, {}, {}, set())     # a pristine patcher's backups: nothing patched yet
        return Fresh()
    return build


def _autograd_copy(x):
    """Conditioning made under inference mode (every node runs in it) as tensors autograd may save (0.20.1's
    trainer keeps ACE-Step 1.5's as they are and fails: "Inference tensors cannot be saved for backward")."""
    import torch
    if isinstance(x, torch.Tensor):
        return x.clone()
    if isinstance(x, dict):
        return {k: _autograd_copy(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_autograd_copy(v) for v in x]
    if isinstance(x, tuple):
        return tuple(_autograd_copy(v) for v in x)
    return x


def _weight_shape(m):
    """A module's 2-D weight as (out, in), or None; ComfyUI-GGUF's weights keep their logical shape as tensor_shape."""
    w = getattr(m, "weight", None)
    shape = tuple(getattr(w, "tensor_shape", None) or getattr(w, "shape", ())) if w is not None else ()
    return (int(shape[0]), int(shape[1])) if len(shape) == 2 else None


def model_shape(patcher) -> tuple[list, int, int, int]:
    """What the memory estimate needs from a base: [(out, in)] of the 2-D weights core's trainer adapts (modules
    with ComfyUI's weight_function), the blocks' width, the number of blocks and the widest block's linear outputs."""
    import torch.nn as nn
    dm = getattr(getattr(patcher, "model", None), "diffusion_model", None)
    if dm is None:
        return [], 0, 0, 0
    shape2 = _weight_shape
    linears = [shape2(m) for m in dm.modules() if hasattr(m, "weight_function") and shape2(m)]
    blocks, inside = [], set()                  # the items of the outermost ModuleLists, at any depth (ACE-Step
    for name, m in dm.named_modules():          # 1.5's sit under decoder.layers)
        if isinstance(m, nn.ModuleList) and not any(name.startswith(p + ".") for p in inside):
            inside.add(name)
            blocks += [b for b in m if any(shape2(x) for x in b.modules())]
    widest, hidden = 0, 0
    for b in blocks:
        shapes = [x for x in (shape2(m) for m in b.modules()) if x]
        if sum(o for o, _ in shapes) > widest:
            widest, hidden = sum(o for o, _ in shapes), shapes[0][1]
    return linears, hidden, len(blocks), widest


def checkpoint_weights(patcher, depth: int) -> tuple[int, int]:
    """(elements of all adapted 2-D weights, elements alive at once when core checkpoints at `depth`: the largest
    unit's plus those outside every unit)."""
    dm = getattr(getattr(patcher, "model", None), "diffusion_model", None)
    if dm is None:
        return 0, 0

    def elements(m):                            # an adapted weight's elements (core adapts weight_function modules)
        shape = _weight_shape(m) if hasattr(m, "weight_function") else None
        return shape[0] * shape[1] if shape else 0
    total = sum(elements(m) for m in dm.modules())
    units = _checkpoint_units(dm, depth)
    inside = {id(x) for u in units for x in u.modules()}
    loose = sum(elements(m) for m in dm.modules() if id(m) not in inside)
    largest = max((sum(elements(x) for x in u.modules()) for u in units), default=0)
    return total, loose + largest


def checkpoint_depth(patcher) -> int:
    """The depth, as core's trainer counts it (find_modules_at_depth: modules with a forward, ModuleList, Sequential
    and ModuleDict not counted, the diffusion model itself 1), of the model's repeated blocks (the items of its
    outermost ModuleList: Flux.2's and Wan2.2's blocks at 2, ACE-Step 1.5's decoder.layers at 3). Core's default,
    1, checkpoints the whole model as one unit, so every adapted weight and activation is alive at once while it is
    recomputed: no memory saved (measured, ACE-Step 1.5 at full size: +9.2 GB at depth 1, +9.0 GB without
    checkpointing, about +2 GB with its blocks checkpointed)."""
    import torch.nn as nn
    _CONTAINERS = (nn.ModuleList, nn.Sequential, nn.ModuleDict)
    dm = getattr(getattr(patcher, "model", None), "diffusion_model", None)
    if dm is None:
        return 1
    for name, m in dm.named_modules():          # depth first from the root: the first such list met is the outermost
        if name and isinstance(m, nn.ModuleList) and any(any(True for _ in b.parameters()) for b in m):
            depth, node = 1, dm
            for part in name.split("."):
                node = node._modules[part]
                depth += 0 if isinstance(node, _CONTAINERS) else 1
            return depth + 1                    # the list's items
    return 1


def _trainer_globals() -> dict:
    """The globals of core's Train LoRA module as ComfyUI loaded it (comfy_extras load under their own names)."""
    cls = node_class("TrainLoraNode")
    execute = getattr(cls, "execute", None)
    return getattr(getattr(execute, "__func__", execute), "__globals__", {}) if execute is not None else {}


def _checkpoint_units(dm, depth: int) -> list:
    """The modules core's trainer checkpoints at `depth`: its own find_modules_at_depth, or (when a ComfyUI lacks it)
    the same rule written out here, said in the log."""
    find = _trainer_globals().get("find_modules_at_depth")
    if callable(find):
        return find(dm, depth=depth)
    _degraded("comfy_extras/nodes_train.py's find_modules_at_depth", "the training estimate counts checkpoint units "
              "by LockN's copy of core's rule")
    import torch.nn as nn
    out = []

    def walk(m, d):
        if not isinstance(m, (nn.ModuleList, nn.Sequential, nn.ModuleDict)):
            d += 1
            if d == depth:
                out.append(m)
                return
        for c in m.children():
            walk(c, d)
    walk(dm, 0)
    return out


def text_tokens(conditioning) -> int:
    """The text tokens of a conditioning list ([[tensor, dict]]): the tensor's second dimension."""
    try:
        return int(conditioning[0][0].shape[1])
    except (IndexError, AttributeError, TypeError):
        return 0


def train_lora(model, latents: list, conditioning: list, on_loss=None, **settings):
    """ComfyUI core's TrainLoraNode on `model` (a LockN loader's, or a clone of one): (lora state dict, losses,
    steps). The trainer gets a patcher around a structural copy of the resident model (_structural_copy: the
    same weight tensors, modules of its own), whose ``cached_patcher_init`` builds another such copy (see
    _resident_copy_factory), the conditioning as autograd-safe copies, and, when `on_loss` is given, a loss
    function that also reports each step's loss (core's own, wrapped for the call). Core draws timesteps and
    batches from torch's global generator: it is seeded with the run's seed for the call (and restored after), so
    the same seed and data train the same LoRA. Core's progress bar reaches the editor, and ComfyUI's interrupt
    stops it between steps."""
    import torch
    cls = node_class("TrainLoraNode")
    if cls is None or not callable(getattr(cls, "execute", None)):
        _degraded("the TrainLoraNode node (comfy_extras/nodes_train.py)", "LockN training refuses to run")
        raise Missing(f"ComfyUI {comfyui_version()} has no Train LoRA node (TrainLoraNode), which LockN training runs: "
                      f"update ComfyUI")
    trainer_globals = _trainer_globals()
    make_loss = trainer_globals.get("_create_loss_function")
    with torch.inference_mode(False):
        # 0.20.1's trainer trains on a plain clone, 0.33's on what cached_patcher_init builds: both get the copy
        backups = model.get_clone_model_override()[1]
        copied = _structural_copy(model.model)
        train_in = model.clone(model_override=(copied, tuple(type(b)() for b in backups)))
        train_in.cached_patcher_init = (_resident_copy_factory(train_in), ())
        conditioning = _autograd_copy(conditioning)
        latents = _autograd_copy(latents)
    args = {k: [v] for k, v in settings.items()}
    patched = False
    if on_loss is not None and make_loss is not None:
        def reporting(name):
            fn = make_loss(name)

            def loss(*a, **k):
                out = fn(*a, **k)
                on_loss(float(out.detach()))
                return out
            return loss
        trainer_globals["_create_loss_function"] = reporting
        patched = True
    elif on_loss is not None:
        _degraded("comfy_extras/nodes_train.py's _create_loss_function", "training reports no loss per step (only at the end)")
    rng = torch.get_rng_state()
    torch.manual_seed(int(settings.get("seed", 0)))    # core draws timesteps and batches from torch's global RNG
    try:
        out = cls.execute(model=[train_in], latents=latents, positive=conditioning, **args)
    finally:
        torch.set_rng_state(rng)
        if patched:
            trainer_globals["_create_loss_function"] = make_loss
    lora, loss_map, steps = getattr(out, "result", out)
    return lora, loss_map, steps


def bucket_by_size(latents: list, conditioning: list):
    """Core's ResolutionBucket: latents of several sizes grouped so each batch has one size."""
    cls = node_class("ResolutionBucket")
    if cls is None or not callable(getattr(cls, "execute", None)):
        _degraded("the ResolutionBucket node", "LockN training cannot bucket pictures of several sizes")
        raise Missing(f"ComfyUI {comfyui_version()} has no Resolution Bucket node: resize the pictures to one size")
    out = cls.execute(latents=latents, conditioning=conditioning)
    return getattr(out, "result", out)


def run_core_node(name: str, what: str, **kwargs):
    """A core node's outputs (as its execute or FUNCTION returns them), or Missing naming what needs it."""
    cls = node_class(name)
    if cls is None:
        _degraded(f"nodes.NODE_CLASS_MAPPINGS[{name!r}]", f"{what} is refused")
        raise Missing(f"ComfyUI {comfyui_version()} has no {name} node, which {what} needs: update ComfyUI")
    if hasattr(cls, "FUNCTION"):
        return getattr(cls(), cls.FUNCTION)(**kwargs)
    out = cls.execute(**kwargs)
    return getattr(out, "result", out)
