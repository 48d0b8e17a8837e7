"""ComfyUI imported once into this process (CPU), graphs run through validate_prompt + PromptExecutor.

Custom nodes (the test patches, ComfyUI-GGUF, this pack) are loaded with ComfyUI's own
`nodes.load_custom_node`, after the model folders are registered, as the server does at start-up.
"""
from __future__ import annotations

import asyncio
import os
import uuid

from lockn_testing.harness import PATCHES_DIR, REPO, gguf_node_dir, test_threads


class RecordingServer:
    """What PromptExecutor needs from server.PromptServer; records the events it sends."""
    client_id = None
    last_node_id = None
    last_prompt_id = None

    def __init__(self):
        self.events: list[tuple[str, dict]] = []

    def send_sync(self, event, data, sid=None):
        self.events.append((event, data))

    def queue_updated(self):
        pass


class ExecutionFailed(RuntimeError):
    def __init__(self, message, events):
        super().__init__(message)
        self.events = events


class InProcessComfy:
    def __init__(self, models_root: str, scratch: str, load_pack: bool = True, load_gguf: bool = True,
                 cpu: bool | None = None):
        import torch
        torch.set_num_threads(test_threads() or min(2, os.cpu_count() or 1))
        from lockn_testing.comfy_boot import boot
        if cpu is None:
            cpu = os.environ.get("LOCKN_COMFY_GPU") != "1"
        self.folder_paths = boot(models_root=str(models_root), argv=("--cpu",) if cpu else (), scratch=str(scratch))
        import nodes
        self.nodes = nodes
        asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
        for path, wanted in ((PATCHES_DIR, True), (gguf_node_dir(), load_gguf), (REPO, load_pack)):
            if wanted:
                ok = asyncio.run(nodes.load_custom_node(str(path), module_parent="custom_nodes"))
                if not ok:
                    raise RuntimeError(f"ComfyUI could not load the custom node folder {path}")
        import execution
        self.execution = execution
        self.server = RecordingServer()
        # "ram_inactive": read by ComfyUI 0.33+ (RAM-pressure cache headroom), ignored by 0.20.1
        self.executor = execution.PromptExecutor(self.server, cache_type=execution.CacheType.CLASSIC,
                                                 cache_args={"lru": 0, "ram": 0, "ram_inactive": 0})

    def validate(self, prompt: dict):
        return asyncio.run(self.execution.validate_prompt(str(uuid.uuid4()), prompt, None))

    def run(self, prompt: dict, extra_data: dict | None = None) -> dict:
        """Validate and execute; returns {"outputs": history outputs, "executed": [...], "cached": [...]}."""
        valid = self.validate(prompt)
        if not valid[0]:
            raise ExecutionFailed(f"validation failed: {valid[1]} {valid[3]}", [])
        pid = str(uuid.uuid4())
        self.server.events.clear()
        self.executor.execute(prompt, pid, {"client_id": "inprocess", **(extra_data or {})}, valid[2])
        events = list(self.server.events)
        if not self.executor.success:
            errs = [d for e, d in self.executor.status_messages if e == "execution_error"]
            raise ExecutionFailed(f"execution failed: {errs}", events)
        cached = [n for e, d in events if e == "execution_cached" for n in d.get("nodes", [])]
        executed = [d["node"] for e, d in events if e == "executing" and d.get("node") is not None]
        return {"outputs": self.executor.history_result.get("outputs", {}), "executed": executed,
                "cached": cached, "events": events}
