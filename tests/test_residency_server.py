"""Residency in a real ComfyUI server (default classic cache) on the tiny models.

Byte sizes are injected (LOCKN_RESIDENCY_SIZES, the real files' sizes from the catalog): on a CPU-only
machine "GPU" is the compute device ComfyUI loads models onto, and the budgets are checked against
those sizes."""
from __future__ import annotations

import json
import threading
import time

import pytest

from lockn_gen import catalog as catalog_mod
from lockn_testing import graphs
from lockn_testing.harness.server import PromptError, serving

pytestmark = pytest.mark.comfy
GB = 1_000_000_000
PRESETS = {"image": ("flux2", "flux2-dev-q4_k_m"), "video": ("wan22", "wan22-i2v-a14b-q4_k_m"), "music": ("ace15", "ace15-turbo")}


def _sizes() -> dict:
    cat = catalog_mod.load(include_env=False)
    return {name: f.size for name, f in cat.files.items()}


@pytest.fixture(scope="module")
def res_server(tiny_models, start_image):
    with serving(tiny_models, {"start.png": start_image}, env={"LOCKN_RESIDENCY_SIZES": json.dumps(_sizes())}) as srv:
        yield srv


def workflow(mode: str, residency: dict | None = None, **kw) -> dict:
    """Workflow A (image), B (video) or C (music) with LockN's loader; optionally a Residency node
    between the loader and the rest of the graph (budgets, pin)."""
    family, preset = PRESETS[mode]
    make = {"image": graphs.flux2_t2i, "video": graphs.wan22_i2v, "music": graphs.ace15_t2m}[mode]
    extra = {"seconds": 1.0, "steps": 2, "top_p": 1.0} if mode == "music" else {}
    g = make(loader="lockn", preset=preset, **{"prefix": f"res/{mode}", **extra, **kw})
    if residency is None:
        return g
    return graphs.with_residency(g, residency.get("gpu", 0.0), residency.get("ram", 0.0), residency.get("pin", False))


def report(srv) -> dict:
    return srv.get("/lockn/residency")


def settled(srv, seconds: float = 20) -> dict:
    """The report once the last prompt has ended and the registry has settled it. A report settles first when
    no prompt runs, but ComfyUI takes a prompt off its queue a moment after it tells the websocket that the
    prompt ended, and a report in between still sees it running."""
    deadline = time.time() + seconds
    while True:
        rep = report(srv)
        if not rep["prompt_running"] and not rep["pending_evictions"]:
            return rep
        assert time.time() < deadline, ("the registry did not settle", rep["prompt_running"], rep["pending_evictions"])
        time.sleep(0.05)


def entries(srv, family=None) -> list[dict]:
    return [e for e in report(srv)["entries"] if family is None or e["family"] == family]


def loader_id(g) -> str:
    return next(k for k, n in g.items() if n["class_type"].startswith("LockN") and "Loader" in n["class_type"])


def residency_log(srv, last: int = 14) -> list[str]:
    """The server log's last LockN residency lines and model loads (what a failed budget check needs)."""
    lines = srv.log_path.read_text(errors="replace").splitlines()
    return [x for x in lines if "LockN" in x or "Requested to load" in x or "got prompt" in x][-last:]


def first_sampler(g) -> str:
    """The Wan graph's high-noise sampler: the one that starts at step 0."""
    return next(k for k, n in g.items() if n["class_type"] == "KSamplerAdvanced" and n["inputs"]["start_at_step"] == 0)


def wait_until(cond, seconds: float = 20, step: float = 0.05) -> bool:
    """Poll `cond` until it holds or the time is up; the last answer."""
    deadline = time.time() + seconds
    while not cond() and time.time() < deadline:
        time.sleep(step)
    return bool(cond())


ROOMY = {"gpu": 500.0, "ram": 500.0}        # budgets that hold all three stacks (at their real sizes)


def test_switching_workflows_does_not_reload_from_disk(res_server):
    a, b, c = workflow("image", ROOMY), workflow("video", ROOMY), workflow("music", ROOMY)
    r1 = res_server.run(a)
    loads_after_a = {e["name"]: e["loads_from_disk"] for e in entries(res_server, "flux2")}
    assert len(loads_after_a) == 3 and set(loads_after_a.values()) == {1}
    assert any(m["type"] == "lockn.residency" for m in r1.messages)          # the websocket event
    res_server.run(b)
    res_server.run(c)
    r2 = res_server.run(a)
    # ComfyUI's classic cache forgot A (the loader really ran again) ...
    assert loader_id(a) in r2.executed and loader_id(a) not in r2.cached
    # ... yet nothing of A was read from disk again: the registry served the same objects
    again = {e["name"]: e for e in entries(res_server, "flux2")}
    assert {n: e["loads_from_disk"] for n, e in again.items()} == loads_after_a
    assert all(e["hits"] >= 1 for e in again.values())
    assert {e["family"] for e in entries(res_server)} == {"flux2", "wan22", "ace15"}
    # and an identical re-run is served by ComfyUI's own cache, as usual
    r3 = res_server.run(a)
    assert loader_id(a) in r3.cached and "13" not in r3.executed


def test_stated_sizes_count_whole_and_the_report_shows_the_mapped_part_apart(res_server):
    """Sizes stated for the tests (LOCKN_RESIDENCY_SIZES: a discrete GPU simulated on the CPU) count whole:
    nothing of them is taken as mapped, so the budget tests here see the sizes they state. The report has
    each entry's mapped_bytes next to bytes, and the totals say what the RAM budget counts."""
    res_server.run(workflow("image", ROOMY, prefix="res/stated"))
    rep = report(res_server)
    flux = {e["name"]: e for e in rep["entries"] if e["family"] == "flux2"}
    sizes = _sizes()
    assert flux and all(e["bytes"] == sizes[n] and e["mapped_bytes"] == 0 for n, e in flux.items()), flux
    t = rep["totals"]
    assert t["mapped_bytes"] == t["gpu_mapped_bytes"] + t["ram_mapped_bytes"] == 0
    assert t["ram_budget_counts_gpu"] is False and t["ram_budget_used_bytes"] == t["ram_bytes"]


def test_evicted_models_memory_is_released_and_they_reload(res_server):
    a = workflow("image", ROOMY)
    res_server.run(workflow("music", ROOMY, prefix="res/before-evict"))
    res_server.run(a)
    before = {e["name"]: e["loads_from_disk"] for e in entries(res_server, "flux2")}
    others = {e["id"]: (e["tier"], e["loads_from_disk"]) for e in entries(res_server) if e["family"] != "flux2"}
    assert any(t == "gpu" for t, _ in others.values()), others
    status, body = res_server.post("/lockn/residency/evict", {"family": "flux2"})
    assert status == 200 and len(body["evicted"]) == 3
    assert {e["tier"] for e in entries(res_server, "flux2")} == {"dropped"}
    # ComfyUI's output cache held A's loader outputs, so the weights were still in memory: LockN asked
    # ComfyUI to clear that cache (nothing unloaded), and the weights are gone
    wait_until(lambda: not any(e["held_after_drop"] for e in entries(res_server)))
    assert not any(e["held_after_drop"] for e in entries(res_server)), entries(res_server, "flux2")
    assert report(res_server)["totals"]["held_after_drop_bytes"] == 0
    assert {e["id"]: (e["tier"], e["loads_from_disk"]) for e in entries(res_server) if e["family"] != "flux2"} == others
    r = res_server.run(a)                       # same graph: without eviction it would be fully cached
    assert loader_id(a) in r.executed and "13" in r.executed
    after = {e["name"]: e["loads_from_disk"] for e in entries(res_server, "flux2")}
    assert after == {n: v + 1 for n, v in before.items()}


def test_routes_validate_and_change_nothing_on_bad_requests(res_server):
    res_server.run(workflow("music", ROOMY))
    snapshot = [(e["id"], e["tier"], e["pinned"]) for e in entries(res_server)]
    for body in (b"{not json", {"id": "no-such-id"}, {"family": "sd15"}, {}, {"family": "all", "to": "disk"},
                 {"id": 5}, [1, 2]):
        status, resp = res_server.request("POST", "/lockn/residency/evict", body if isinstance(body, bytes) else json.dumps(body).encode())
        assert status == 400 and resp["error"], body
    for body in (b"", {"id": "no-such-id"}, {"pinned": True}, {"id": entries(res_server)[0]["id"], "pinned": "yes"}):
        status, resp = res_server.request("POST", "/lockn/residency/pin", body if isinstance(body, bytes) else json.dumps(body).encode())
        assert status == 400, body
    assert [(e["id"], e["tier"], e["pinned"]) for e in entries(res_server)] == snapshot
    # a good pin request works and shows in the report
    eid = entries(res_server, "ace15")[0]["id"]
    status, body = res_server.post("/lockn/residency/pin", {"id": eid, "pinned": True})
    assert status == 200 and next(e for e in entries(res_server) if e["id"] == eid)["pinned"] is True
    res_server.post("/lockn/residency/pin", {"id": eid, "pinned": False})


def test_residency_survives_an_interrupted_prompt(res_server):
    res_server.run(workflow("video", ROOMY))
    before = {e["name"]: e["loads_from_disk"] for e in entries(res_server, "wan22")}
    slow = workflow("video", ROOMY, steps=400, split=200, prefix="res/slow")
    sampler, fired = first_sampler(slow), threading.Event()

    def interrupt_at_first_step(m):         # mid-sampling: the loaders have run, the experts are in use
        if not fired.is_set() and m.get("type") == "progress" and str(m["data"].get("node")) == sampler:
            fired.set()
            res_server.post("/interrupt", {})
    t0 = time.time()
    res = res_server.run(slow, on_message=interrupt_at_first_step)
    assert fired.is_set() and res.interrupted and time.time() - t0 < 60
    rep = entries(res_server, "wan22")
    assert {e["name"]: e["loads_from_disk"] for e in rep} == before and all(e["tier"] != "dropped" for e in rep)
    res_server.run(workflow("video", ROOMY, prefix="res/after-interrupt"))
    assert {e["name"]: e["loads_from_disk"] for e in entries(res_server, "wan22")} == before


def test_budgets_lru_and_pins(res_server):
    """Budgets too small for all three workflows: least recently used unpinned models go first (GPU to
    RAM, RAM to dropped), the pinned video experts stay, evicted models reload, budgets hold."""
    res_server.post("/free", {"unload_models": True, "free_memory": True})     # start from an empty registry
    wait_until(lambda: all(e["tier"] == "dropped" for e in entries(res_server)))
    budget = {"gpu": 30.0, "ram": 32.0}
    flows = {"A": workflow("image", budget), "B": workflow("video", {**budget, "pin": True}), "C": workflow("music", budget)}
    seen_dropped, b_ran = set(), False
    for step in ("A", "B", "C", "A", "C"):
        res_server.run(flows[step])
        # settled, and the budgets held at the first look. (Step B's settle comes as ComfyUI's worker lets go of
        # its output cache, which the drop of flux2-dev asked for, and collects garbage: the experts' clones die
        # meanwhile, and a look then read an expert as in RAM, under load, until the seam read the parent.)
        rep = settled(res_server)
        assert rep["budgets"]["gpu_bytes"] == 30 * GB and rep["budgets"]["ram_bytes"] == 32 * GB
        assert rep["totals"]["gpu_bytes"] <= 30 * GB, "\n".join([step, str(rep["totals"]), *residency_log(res_server)])
        assert rep["totals"]["ram_bytes"] <= 32 * GB, "\n".join([step, str(rep["totals"]), *residency_log(res_server)])
        b_ran |= step == "B"
        wan = [e for e in rep["entries"] if e["family"] == "wan22"]
        if b_ran:
            assert len(wan) == 4 and all(e["pinned"] and e["tier"] != "dropped" for e in wan)     # pins stay
        seen_dropped |= {e["name"] for e in rep["entries"] if e["tier"] == "dropped"}
        print(step, rep["totals"], [(e["name"][:18], e["tier"], e["loads_from_disk"]) for e in rep["entries"]])
    # the image models were the least recently used when music and video needed room
    assert {"flux2-dev-Q4_K_M.gguf", "mistral_3_small_flux2_fp4_mixed.safetensors"} & seen_dropped
    flux = {e["name"]: e for e in entries(res_server, "flux2")}
    assert max(e["loads_from_disk"] for e in flux.values()) >= 2      # evicted models were reloaded, correctly
    # unpin, so later tests are not constrained
    ids = [e["id"] for e in entries(res_server, "wan22")]
    res_server.post("/lockn/residency/pin", {"id": ids, "pinned": False})


def test_free_unloads_everything_pinned_included_and_registry_stays_consistent(res_server):
    res_server.post("/lockn/residency/pin", {"id": [e["id"] for e in entries(res_server)][:1], "pinned": False})
    res_server.run(workflow("music", ROOMY))
    eid = entries(res_server, "ace15")[0]["id"]
    res_server.post("/lockn/residency/pin", {"id": eid, "pinned": True})
    assert any(e["tier"] == "gpu" for e in entries(res_server, "ace15"))
    loads = {e["id"]: e["loads_from_disk"] for e in entries(res_server)}
    status, _ = res_server.post("/free", {"unload_models": True})
    assert status == 200
    wait_until(lambda: all(e["tier"] != "gpu" for e in entries(res_server)))
    rep = entries(res_server)
    assert all(e["tier"] != "gpu" for e in rep)                        # everything left the compute device
    assert next(e for e in rep if e["id"] == eid)["pinned"] is True  # pinned ones too, and still marked pinned
    assert {e["id"]: e["loads_from_disk"] for e in rep} == loads     # same entries, nothing re-read
    res_server.run(workflow("music", ROOMY, prefix="res/after-free"))        # still served from RAM
    assert {e["id"]: e["loads_from_disk"] for e in entries(res_server, "ace15")} == {i: v for i, v in loads.items()
                                                                                   if i in {e["id"] for e in entries(res_server, "ace15")}}
    # free_memory: ComfyUI resets its cache, LockN lets go of everything; the next run reloads cleanly
    res_server.post("/free", {"unload_models": True, "free_memory": True})
    assert all(e["tier"] == "dropped" for e in entries(res_server))
    res_server.run(workflow("music", ROOMY, prefix="res/after-free-memory"))
    assert all(e["loads_from_disk"] == loads[e["id"]] + 1 for e in entries(res_server, "ace15"))


def test_lockn_routes_and_the_free_watch_work_under_the_api_prefix(res_server):
    """ComfyUI serves every route under /api too, and the editor uses that prefix (its free button posts
    /api/free): LockN's routes answer there, and /api/free with free_memory releases LockN's models."""
    res_server.run(workflow("music", ROOMY, prefix="res/api-prefix"))
    assert res_server.get("/api/lockn/residency")["entries"] == res_server.get("/lockn/residency")["entries"]
    # every ComfyUI internal LockN relies on is there in this version (else: a "ComfyUI x.y: ..." warning)
    assert not [w for w in report(res_server)["warnings"] if w.startswith("ComfyUI ")]
    assert any(e["tier"] != "dropped" for e in entries(res_server, "ace15"))
    status, _ = res_server.post("/api/free", {"unload_models": True, "free_memory": True})
    assert status == 200
    assert all(e["tier"] == "dropped" for e in entries(res_server))


def messages_until(ws, done, seconds: float) -> list[dict]:
    """JSON messages from a websocket (opened with a short timeout) until done(messages) or the time is up."""
    import websocket
    msgs, deadline = [], time.time() + seconds
    while time.time() < deadline and not (msgs and done(msgs)):
        try:
            msg = ws.recv()
        except websocket.WebSocketTimeoutException:
            continue
        if isinstance(msg, str):
            msgs.append(json.loads(msg))
    return msgs


def settled_event(m: dict) -> bool:
    return m["type"] == "lockn.residency" and not m["data"]["prompt_running"]


def test_after_a_prompt_its_budgets_apply_with_nobody_asking(res_server):
    """The registry hears no prompt end from ComfyUI (its one hook for that makes every prompt slower):
    once the queue is idle, its watcher settles the last prompt by itself. Here a GPU budget below the
    image models' size sends them to RAM after the prompt, and the websocket says so, while no HTTP
    request reaches the server."""
    import websocket
    ws = websocket.create_connection(f"ws://127.0.0.1:{res_server.port}/ws?clientId=watcher", timeout=1)
    try:
        res_server.run(workflow("image", {"gpu": 1.0, "ram": 500.0}, prefix="res/watcher"))
        msgs = messages_until(ws, lambda ms: settled_event(ms[-1]), 20)
    finally:
        ws.close()
    assert msgs and settled_event(msgs[-1]), "no settled residency event after the prompt"
    settled = msgs[-1]["data"]
    tiers = {e["role"]: e["tier"] for e in settled["entries"] if e["family"] == "flux2"}
    assert tiers["diffusion_model"] == "ram" and tiers["text_encoder"] == "ram", tiers
    assert settled["totals"]["gpu_bytes"] <= GB


def queue_and_listen(srv, client: str, flows: list[dict], seconds: float = 240,
                     each_once_running: bool = False) -> tuple[list[str], list[dict]]:
    """Queue the prompts back to back (or each once the one before runs its nodes) and collect the
    websocket's messages until the last has ended."""
    import websocket
    ws = websocket.create_connection(f"ws://127.0.0.1:{srv.port}/ws?clientId={client}", timeout=1)
    try:
        ids, msgs = [], []
        for g in flows:
            if each_once_running and ids:
                msgs += messages_until(ws, lambda ms: ms[-1]["type"] == "executing" and ms[-1]["data"].get("node")
                                       is not None and ms[-1]["data"].get("prompt_id") == ids[-1], seconds)
            status, body = srv.post("/prompt", {"prompt": g, "client_id": client})
            assert status == 200, body
            ids.append(body["prompt_id"])
        return ids, msgs + messages_until(ws, lambda ms: ms[-1]["type"] == "executing" and ms[-1]["data"].get("node")
                                          is None and ms[-1]["data"].get("prompt_id") == ids[-1], seconds)
    finally:
        ws.close()


def most_queued(msgs) -> int:
    """The most prompts the queue held at once (running and pending), from ComfyUI's status messages, which it
    sends on every change of the queue."""
    return max((m["data"]["status"]["exec_info"]["queue_remaining"] for m in msgs if m["type"] == "status"), default=0)


def settled_between(msgs, before_pid, after_pid) -> tuple:
    """Where the before-prompt succeeded, where the after-prompt's nodes begin (ComfyUI says which are
    cached just before: the hook's prompt_start comes between its execution_start and that), and the
    residency events after the former that show the 1 GB GPU budget applied."""
    def first_index(kind, pid):
        return next(i for i, m in enumerate(msgs) if m["type"] == kind and m["data"].get("prompt_id") == pid)
    end1, start2 = first_index("execution_success", before_pid), first_index("execution_cached", after_pid)
    return end1, start2, [i for i, m in enumerate(msgs) if m["type"] == "lockn.residency" and i > end1
                          and m["data"]["totals"]["gpu_bytes"] <= GB]


def test_a_prompt_without_lockn_loaders_queued_next_runs_after_the_settle(res_server):
    """The registry settles when a LockN prompt starts or the queue is idle. When a prompt without LockN
    loaders is submitted while a LockN prompt runs its nodes, the registry hears the LockN prompt's end
    instead (it looks at every submitted prompt), so the budgets apply before the other prompt runs: the
    settled residency event comes between the two prompts."""
    ids, msgs = queue_and_listen(res_server, "order", [
        workflow("video", {"gpu": 1.0, "ram": 500.0}, steps=40, split=20, prefix="res/order-lockn"),
        graphs.flux2_t2i(loader="core", steps=1, prefix="res/order-core")], each_once_running=True)
    # the premise: the second prompt came while the LockN prompt ran (had the LockN prompt ended first, the idle
    # watcher would have settled it, and this test would not see the look at submitted prompts)
    assert most_queued(msgs) == 2, "the LockN prompt ended before the next prompt was queued: its sampling is too short here"
    end1, start2, settled = settled_between(msgs, ids[0], ids[1])
    assert settled and settled[0] < start2, (end1, start2, settled)


def test_prompts_queued_behind_another_settle_between_a_lockn_prompt_and_the_next(res_server):
    """While a long prompt runs, a LockN prompt and then a prompt without LockN loaders are queued: when
    the LockN prompt starts, the registry sees what runs next and hears its end, so the budgets apply
    between the LockN prompt and the one after it."""
    ids, msgs = queue_and_listen(res_server, "behind", [
        graphs.wan22_i2v(loader="core", steps=60, split=30, prefix="res/behind-long"),
        workflow("image", {"gpu": 1.0, "ram": 500.0}, prefix="res/behind-lockn"),
        graphs.flux2_t2i(loader="core", steps=1, prefix="res/behind-core")])
    # the premise: both were queued while the long prompt ran, so the prompt after the LockN one was waiting when
    # the LockN prompt started
    assert most_queued(msgs) == 3, "the long prompt ended before the two behind it were queued: it is too short here"
    end1, start2, settled = settled_between(msgs, ids[1], ids[2])
    assert settled and settled[0] < start2, (end1, start2, settled)


def test_reports_and_evictions_while_queued_prompts_run_never_block(res_server):
    """The registry's lock and ComfyUI's queue mutex are taken by the prompt worker, the server's event
    loop and the idle watcher: ask for reports and evictions many times a second while a queue of LockN
    and core prompts runs, and everything still finishes, in order, with nothing left waiting."""
    flows = [workflow(m, ROOMY, prefix=f"res/stress-{m}") for m in ("image", "music", "video", "image")]
    flows.insert(2, graphs.flux2_t2i(loader="core", steps=1, prefix="res/stress-core"))
    ids = []
    for g in flows:
        status, body = res_server.post("/prompt", {"prompt": g})
        assert status == 200, body
        ids.append(body["prompt_id"])
    stop, errors, asked = threading.Event(), [], [0]

    def hammer():
        while not stop.is_set():
            try:
                rep = res_server.get("/lockn/residency", timeout=30)
                if asked[0] % 4 == 0 and rep["entries"]:
                    e = rep["entries"][asked[0] % len(rep["entries"])]
                    to = ("ram", "dropped")[asked[0] // 4 % 2]
                    status, _ = res_server.post("/lockn/residency/evict", {"id": e["id"], "to": to}, timeout=30)
                    assert status == 200
            except Exception as ex:              # a timeout here would be a lock held too long
                errors.append(repr(ex))
            asked[0] += 1
            time.sleep(0.02)
    t = threading.Thread(target=hammer)
    t.start()
    try:
        # the queue runs in order: the last prompt's history entry comes last
        wait_until(lambda: ids[-1] in res_server.get(f"/history/{ids[-1]}", timeout=30), 240)
    finally:
        stop.set()
        t.join(60)
    hist = res_server.get("/history", timeout=30)
    assert not errors and asked[0] > 20, (errors[:3], asked[0])
    assert [hist[i]["status"]["status_str"] for i in ids] == ["success"] * len(ids)
    rep = report(res_server)
    assert rep["pending_evictions"] == 0 and not rep["prompt_running"] and not rep["hook_armed"]


@pytest.mark.parametrize("loader", ["lockn", "core"])
def test_an_eviction_asked_for_while_a_prompt_runs_waits_for_its_end(res_server, loader):
    """POST /lockn/residency/evict while a prompt runs: the answer says it waits, nothing changes under the
    running prompt, and the eviction is done when the prompt ends. Also while a prompt without LockN nodes
    runs: the registry's prompt hook is registered with ComfyUI only while it needs a prompt's end."""
    res_server.run(workflow("music", ROOMY, prefix="res/before-deferred"))
    [dit] = [e for e in entries(res_server, "ace15") if e["role"] == "diffusion_model"]
    assert dit["tier"] != "dropped" and not report(res_server)["hook_armed"]
    wan_before = {e["id"]: (e["tier"], e["loads_from_disk"]) for e in entries(res_server, "wan22")}
    # asked at the sampler's first step: the rest of the sampling (47 steps, 2-4 s here) is the margin for one
    # request's answer, which takes milliseconds
    slow = (workflow("video", ROOMY, steps=48, split=24, prefix="res/slow-lockn") if loader == "lockn"
            else graphs.wan22_i2v(loader="core", steps=48, split=24, prefix="res/slow-core"))
    sampler, sampling, done = first_sampler(slow), threading.Event(), []

    def on_message(m):
        if m.get("type") == "progress" and str(m["data"].get("node")) == sampler:
            sampling.set()
    runner = threading.Thread(target=lambda: done.append(res_server.run(slow, timeout=300, on_message=on_message)))
    runner.start()
    assert sampling.wait(120), "the slow prompt's sampler never reported progress"
    status, body = res_server.post("/lockn/residency/evict", {"id": dit["id"]})
    assert status == 200 and body["deferred"] is True, body
    assert body["residency"]["pending_evictions"] == 1 and body["residency"]["prompt_running"] is True
    assert next(e for e in body["residency"]["entries"] if e["id"] == dit["id"])["tier"] != "dropped"
    assert runner.is_alive()                        # the prompt was still running when the answer came
    runner.join(timeout=300)
    assert done and not done[0].interrupted
    rep = report(res_server)
    assert rep["pending_evictions"] == 0 and not rep["hook_armed"] and not rep["prompt_running"]
    assert next(e for e in rep["entries"] if e["id"] == dit["id"])["tier"] == "dropped"
    if loader == "core":                            # a prompt without LockN nodes leaves the Wan entries be
        assert {e["id"]: (e["tier"], e["loads_from_disk"]) for e in entries(res_server, "wan22")} == wan_before


def test_a_load_that_would_exceed_the_budgets_stops_with_a_message_and_evicts_nothing(res_server):
    """Pinned music models fill the budgets: the image stack's load stops before anything is read, with
    the budgets, the model and what to change; nothing resident changes, the server keeps serving, and with
    the pins gone the same workflow runs."""
    res_server.run(workflow("music", {"gpu": 5.0, "ram": 5.0, "pin": True}, prefix="res/pinned"))
    before = {e["name"]: (e["tier"], e["pinned"], e["loads_from_disk"]) for e in settled(res_server)["entries"]}
    ace = [n for n, (_, pinned, _) in before.items() if pinned]
    assert ace and all(n in {e["name"] for e in entries(res_server, "ace15")} for n in ace)
    image = workflow("image", prefix="res/refused")
    with pytest.raises(PromptError) as err:
        res_server.run(image)
    msg = err.value.args[0]
    for words in ("would exceed LockN's RAM and GPU budgets together", "RAM 5.00 GB", "GPU 5.00 GB",
                  "Nothing was loaded", "raise ram_budget_gb or gpu_budget_gb on the Residency (LockN) node", "unpin"):
        assert words in msg, (words, msg)
    assert any(n in msg for n in ("flux2-dev-Q4_K_M.gguf", "mistral_3_small_flux2_fp4_mixed.safetensors", "flux2-vae.safetensors"))
    assert any(n in msg.split("unpin", 1)[1] for n in ace), msg           # names the pinned models to unpin
    after = {e["name"]: (e["tier"], e["pinned"], e["loads_from_disk"]) for e in entries(res_server)}
    assert {n: v for n, v in after.items() if n in before} == before        # nothing evicted, nothing reread
    assert all(v[2] == 0 for n, v in after.items() if n not in before), after   # nothing of the image stack read
    # the fix the message gives: unpin (and roomier budgets); the same workflow then runs
    res_server.post("/lockn/residency/pin", {"id": [e["id"] for e in entries(res_server, "ace15")], "pinned": False})
    res_server.run(workflow("music", ROOMY, prefix="res/unpinned"))
    res = res_server.run(image)
    assert res.outputs


def test_the_step_cache_counts_against_the_gpu_budget(res_server):
    """The step cache's residuals sit on the compute device while a sampler runs, so they count against the GPU
    budget. With a GPU budget far below the image stack, the uncached run still runs (ComfyUI streams a model
    that does not fit), while the cached one stops at its sampler, before the first step, naming the step cache,
    the budget and the fix (its residuals have nowhere else to go); nothing is read again or moved. With room,
    the cached run reports what it reserved."""
    tight = {"gpu": 1.0, "ram": 500.0}
    res_server.run(workflow("image", tight, prefix="res/cache-off"))             # runs without the cache
    before = {e["id"]: (e["tier"], e["loads_from_disk"]) for e in entries(res_server, "flux2")}
    with pytest.raises(PromptError) as err:
        res_server.run(graphs.with_step_cache(workflow("image", tight, prefix="res/cache-on")))
    msg, detail = err.value.args[0], err.value.detail
    assert detail["node_type"] == "SamplerCustomAdvanced", detail                  # at the sampler's start
    for words in ("the step cache of", "would exceed LockN's GPU budget of 1.00 GB", "used by the running prompt",
                  "Nothing was sampled", "raise gpu_budget_gb", "turn 'cache steps' off"):
        assert words in msg, (words, msg)
    assert {e["id"]: (e["tier"], e["loads_from_disk"]) for e in entries(res_server, "flux2")} == before
    res = res_server.run(graphs.with_step_cache(workflow("image", ROOMY, prefix="res/cache-room")))
    assert res.outputs
    [run] = [r for r in report(res_server)["step_cache"]["runs"] if r["prompt_id"] == res.prompt_id]
    assert run["cache_bytes"] > 0 and run["steps"] == 4
