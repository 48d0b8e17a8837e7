"""Several ComfyUI servers: jobs sent where their models already are, through ComfyUI-Distributed.

`lockn-gen run --master URL` submits through a ComfyUI-Distributed master (github.com/robertvoy/ComfyUI-Distributed,
installed in the master's custom_nodes; its workers are the ones its own config lists: GET /distributed/config).
For each job the fleet reads every candidate's GET /lockn/residency, its queue and recent /history, and asks
its POST /lockn/preflight which files the job needs and which it lacks; lockn_gen.pool picks the candidate
where the job's models cost least to bring in. A job for a worker goes through POST /distributed/queue with
`enabled_worker_ids` = [that worker] and the master as a delegate: the job's outputs are routed through
ComfyUI-Distributed's DistributedCollector (added here in front of each output node), so the worker runs the
models and the master gathers the frames and sound and writes the files; a job for the master itself is
queued there as a plain prompt. Copies of one picture workflow (`--jobs N`) placed on different workers at the
same time go as one collector prompt over those workers (a "round"), seeds spread by DistributedSeed as
ComfyUI-Distributed does, and the master returns every image (a video or sound job goes alone: the collector
would join the workers' frames into one clip).

ComfyUI-Distributed's collector, when a worker dies or fails, waits its heartbeat timeout and then returns what
it has (a delegate master: nothing), and the master's prompt ends as a success. So the fleet follows the
worker's own prompt too (found on the worker by the collector's job id): a worker that fails or vanishes
cancels the master's prompt, and the job is sent once more to the next best server, or fails with a message
naming the worker. Outputs are downloaded only from a prompt whose every worker finished.

`lockn-gen run --server A --server B` (no master) uses the same choice and queues on the chosen server directly:
a thin front for servers without ComfyUI-Distributed (one box with two ComfyUIs, no extra pack), with no
dispatch rule of its own. Nothing imports ComfyUI; nothing of ComfyUI-Distributed is copied: only its routes
and node class names are used.
"""
from __future__ import annotations

import copy
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import pool
from .client import Client, ClientError, JobResult, PromptRefused, ServerGone, format_execution_error
from .workflow import WorkflowError

DISTRIBUTED_REPO = "https://github.com/robertvoy/ComfyUI-Distributed"
DISTRIBUTED_COMMIT = "a91f9fb081eb5fc27db429a7c3f35d2ef7ce4a50"
INSTALL = (f"cd $COMFYUI_PATH/custom_nodes && git clone {DISTRIBUTED_REPO} && "
           f"git -C ComfyUI-Distributed checkout {DISTRIBUTED_COMMIT[:12]}")
COLLECTOR, SEED = "DistributedCollector", "DistributedSeed"
IMAGE_SINKS = {"SaveImage": "images", "SaveAnimatedWEBP": "images", "SaveAnimatedPNG": "images"}
AUDIO_SINKS = {"SaveAudio": "audio", "SaveAudioMP3": "audio", "SaveAudioOpus": "audio"}
PREVIEWS = {"PreviewImage", "PreviewAudio"}
SEED_MAX = 1125899906842624          # DistributedSeed's widget range
FIND_S = 20.0                        # how long the worker's copy of a prompt may take to show up


class WorkerLost(ClientError):
    """The worker that ran a job failed or vanished; the job may go elsewhere."""

    def __init__(self, message: str, worker: str, gone: bool = True):
        super().__init__(message)
        self.worker = worker
        self.gone = gone                   # it does not answer (else: it answered with a failure)


# ---- the collector: a job's outputs written on the master ----------------------------------------------
def with_collectors(prompt: dict, object_info: dict) -> dict:
    """A copy of an API prompt whose outputs pass through a DistributedCollector: in front of every image
    saver (images), sound saver (audio, with a one-pixel image for the collector's required input) and every
    CreateVideo feeding a SaveVideo (frames and sound). Previews are left out (ComfyUI-Distributed prunes
    them from the worker's copy). An output node the collector cannot carry is a WorkflowError."""
    out = copy.deepcopy(prompt)
    n = 0

    def collector(images, audio=None) -> str:
        nonlocal n
        n += 1
        cid = f"lockn.collect.{n}"
        out[cid] = {"class_type": COLLECTOR, "inputs": {"images": images, "load_balance": False,
                                                        **({"audio": audio} if audio is not None else {})},
                    "_meta": {"title": "Distributed Collector (lockn-gen)"}}
        return cid

    done, problems = set(), []
    for nid, node in prompt.items():
        cls = node.get("class_type")
        info = object_info.get(cls) or {}
        if not info.get("output_node") or cls in PREVIEWS:
            continue
        inputs = out[nid]["inputs"]
        if cls in IMAGE_SINKS and isinstance(inputs.get("images"), list):
            inputs["images"] = [collector(inputs["images"]), 0]
        elif cls in AUDIO_SINKS and isinstance(inputs.get("audio"), list):
            n_img = f"lockn.collect.pixel.{n + 1}"
            out[n_img] = {"class_type": "EmptyImage", "inputs": {"width": 1, "height": 1, "batch_size": 1, "color": 0}}
            inputs["audio"] = [collector([n_img, 0], inputs["audio"]), 1]
        elif cls == "SaveVideo" and isinstance(inputs.get("video"), list) and \
                (prompt.get(str(inputs["video"][0])) or {}).get("class_type") == "CreateVideo":
            vid = str(inputs["video"][0])
            if vid in done:
                continue
            done.add(vid)
            cv = out[vid]["inputs"]
            cid = collector(cv.get("images"), cv.get("audio") if isinstance(cv.get("audio"), list) else None)
            cv["images"] = [cid, 0]
            if isinstance(cv.get("audio"), list):
                cv["audio"] = [cid, 1]
            problems += _inline_constants(out, vid, ("images", "audio"))
        else:
            problems.append(f"node {nid} ({cls}) is an output ComfyUI-Distributed's collector cannot carry "
                            "(it gathers images and sound: SaveImage, SaveAudio*, SaveVideo of a CreateVideo); "
                            "run this workflow with --server URL instead of --master")
    if problems:
        raise WorkflowError(problems)
    if n == 0:
        raise WorkflowError(["the workflow saves nothing the collector can carry (no SaveImage, SaveAudio* or "
                             "SaveVideo): there would be nothing to bring back from a worker"])
    return out


def _inline_constants(prompt: dict, nid: str, collected: tuple) -> list[str]:
    """The master runs only what follows a collector (ComfyUI-Distributed drops every other link into it):
    a node there whose input comes from a constant (a Primitive* node's value, e.g. the workflow's fps) gets the
    value itself; any other link is a problem to report."""
    problems = []
    node = prompt[nid]
    for name, v in list(node["inputs"].items()):
        if name in collected or not isinstance(v, list):
            continue
        src = prompt.get(str(v[0])) or {}
        value = (src.get("inputs") or {}).get("value")
        if str(src.get("class_type", "")).startswith("Primitive") and value is not None and not isinstance(value, list):
            node["inputs"][name] = value
        else:
            problems.append(f"node {nid} ({node.get('class_type')}) takes '{name}' from node {v[0]} "
                            f"({src.get('class_type')}), which runs on the worker: ComfyUI-Distributed's master "
                            f"cannot see it; give '{name}' a value, or run this workflow with --server URL")
    return problems


def seed_inputs(base: dict, moved: dict) -> list[tuple[str, str]]:
    """The (node, input) pairs that differ between copy 0 and copy 1 of a batch: the seeds vary_seeds moves."""
    return [(nid, k) for nid, node in base.items() for k, v in (node.get("inputs") or {}).items()
            if moved.get(nid, {}).get("inputs", {}).get(k) != v]


def with_distributed_seeds(prompt: dict, seeds: list[tuple[str, str]], offset: int) -> dict | None:
    """The prompt with each seed input fed by a DistributedSeed of (its value + offset - 1): worker i of the
    round then samples seed + offset + i (DistributedSeed adds i + 1), the seed copy `offset + i` of a plain
    batch would have. None when a seed falls outside DistributedSeed's range (the copies then go one by one)."""
    out = copy.deepcopy(prompt)
    for i, (nid, name) in enumerate(seeds):
        value = out[nid]["inputs"][name] + offset - 1
        if not isinstance(value, int) or not 0 <= value <= SEED_MAX - 64:
            return None
        sid = f"lockn.seed.{i + 1}"
        out[sid] = {"class_type": SEED, "inputs": {"seed": value}, "_meta": {"title": "Distributed Seed (lockn-gen)"}}
        out[nid]["inputs"][name] = [sid, 0]
    return out


def collector_job_ids(prompt: dict) -> set[str]:
    return {str((n.get("inputs") or {}).get("multi_job_id")) for n in prompt.values()
            if isinstance(n, dict) and n.get("class_type") == COLLECTOR and (n.get("inputs") or {}).get("multi_job_id")}


# ---- reading the servers ------------------------------------------------------------------------------
def durations(history: dict) -> list[float]:
    """Seconds each finished prompt of a /history answer took (execution_start to its end)."""
    out = []
    for entry in (history or {}).values():
        stamps = {name: (data or {}).get("timestamp") for name, data in (entry.get("status") or {}).get("messages") or []}
        end = stamps.get("execution_success", stamps.get("execution_error"))
        if stamps.get("execution_start") is not None and end is not None:
            out.append(max(0.0, (end - stamps["execution_start"]) / 1000))
    return out


def read_member(client: Client, mid: str, name: str = "") -> pool.Member:
    try:
        status, rep = client._request("GET", "/lockn/residency", timeout=15)
    except ClientError as e:
        return pool.member_from_reports(mid, client.url, None, name=name, down=f"does not answer ({e})")
    if status == 404:
        return pool.member_from_reports(mid, client.url, None, name=name,
                                        down="has no LockN Gen (GET /lockn/residency: 404); install the pack there")
    if status != 200 or not isinstance(rep, dict):
        return pool.member_from_reports(mid, client.url, None, name=name, down=f"GET /lockn/residency answered {status}")
    try:
        queue = client.queue_size()
        hist = client.get_json("/history?max_items=20", timeout=15)
    except ClientError as e:
        return pool.member_from_reports(mid, client.url, None, name=name, down=f"does not answer ({e})")
    return pool.member_from_reports(mid, client.url, rep, queue, durations(hist), name=name)


def _why(gone: ServerGone, c: Client) -> str:
    """ServerGone's account of what happened, less its advice to run the command again (the job goes on)."""
    return str(gone).split(". It crashed", 1)[0].replace(f"the ComfyUI server at {c.url} ", "it ")


def worker_url(w: dict) -> str:
    host = str(w.get("host") or "127.0.0.1").strip()
    if host.startswith(("http://", "https://")):
        return host.rstrip("/")
    port = int(w.get("port") or 8188)
    scheme = "https" if port == 443 or w.get("type") == "cloud" else "http"
    return f"{scheme}://{host}:{port}"


def rates() -> dict:
    """The pool's transfer rates: LOCKN_POOL_DISK_GBPS and LOCKN_POOL_RAM_GBPS (GB/s, your machine's own
    figures) when set, else lockn_gen.pool's defaults."""
    out = {}
    for key, env in (("disk_bps", "LOCKN_POOL_DISK_GBPS"), ("ram_bps", "LOCKN_POOL_RAM_GBPS")):
        raw = os.environ.get(env)
        if raw:
            try:
                value = float(raw)
                if value <= 0:
                    raise ValueError
            except ValueError:
                raise ClientError(f"{env}={raw!r}: give a transfer rate in GB/s greater than 0, e.g. {env}=2.5") from None
            out[key] = value * pool.GB
    return out


@dataclass
class Placed:
    """Jobs queued together: one job, or a round of copies over several workers (one collector prompt)."""
    jobs: list
    members: list                      # pool.Member(s) that run it
    client: Client | None = None       # where the outputs are written (the master, or the server itself)
    prompt: dict | None = None         # what was queued there
    prompt_id: str | None = None
    worker_pids: dict = field(default_factory=dict)     # member id -> its prompt id on that worker
    on_workers: bool = False           # queued through the master onto its workers
    lost: str | None = None            # queueing it failed on its worker: it goes the retry's way
    tried: tuple = ()


class Fleet:
    """The servers a batch can use: the master of ComfyUI-Distributed and its enabled workers (`master`), or
    a plain list of servers. Chooses with lockn_gen.pool, queues, follows, retries once, downloads."""

    def __init__(self, servers=(), master: str | None = None, log=None):
        self.log = log or (lambda s: None)
        self.master = Client(master) if master else None
        self.clients: dict[str, Client] = {}
        self.names: dict[str, str] = {}
        self.lock = threading.Lock()
        if self.master:
            cfg = self._config()
            workers = [w for w in cfg.get("workers") or [] if w.get("enabled") and str(w.get("id") or "").strip()]
            self.clients["master"] = self.master
            self.names["master"] = "master"
            for w in workers:
                self.clients[str(w["id"])] = Client(worker_url(w))
                self.names[str(w["id"])] = str(w.get("name") or w["id"])
            if not workers:
                self.log(f"warning: the ComfyUI-Distributed master at {self.master.url} lists no enabled worker; "
                         "every job runs on the master (add workers in its Distributed panel or with "
                         "POST /distributed/config/update_worker)")
        else:
            for url in dict.fromkeys(servers):
                c = Client(url)
                self.clients[c.url] = c
                self.names[c.url] = c.url
        with ThreadPoolExecutor(max_workers=8) as ex:
            self.pool = pool.Pool(list(ex.map(self._read, self.clients)), **rates())

    def _config(self) -> dict:
        status, cfg = self.master._request("GET", "/distributed/config", timeout=30)
        if status == 404:
            raise ClientError(f"the server at {self.master.url} has no ComfyUI-Distributed (GET /distributed/config "
                              f"answered 404). Install it in that ComfyUI: {INSTALL}; then restart it, or use "
                              f"--server URL (one per server) without a master")
        if status != 200 or not isinstance(cfg, dict):
            raise ClientError(f"{self.master.url}/distributed/config answered {status}: {str(cfg)[:300]}")
        return cfg

    def _read(self, mid: str) -> pool.Member:
        return read_member(self.clients[mid], mid, self.names[mid])

    def is_worker(self, m: pool.Member) -> bool:
        return self.master is not None and m.id != "master"

    def up(self) -> list[pool.Member]:
        return [m for m in self.pool.members if not m.down]

    def needs(self, prompt: dict) -> pool.Needs:
        """What the job needs on each member: every member's POST /lockn/preflight, asked at once."""
        def ask(m):
            try:
                status, rep = self.clients[m.id]._request("POST", "/lockn/preflight", {"prompt": prompt}, timeout=60)
            except ClientError as e:
                status, rep = None, str(e)
            if status != 200 or not isinstance(rep, dict):
                rep = {"missing": [f"(its preflight answered {status}: {str(rep)[:200]})"], "nodes": []}
            return m.id, rep
        with ThreadPoolExecutor(max_workers=8) as ex:
            return pool.needs_from_preflight(dict(ex.map(ask, self.up())))

    # ---- queueing -------------------------------------------------------------------------------------
    def queue(self, placed: Placed, object_info: dict) -> None:
        """Queue `placed` on its member(s); raises PromptRefused / ClientError."""
        job = placed.jobs[0]
        members = placed.members
        if not self.is_worker(members[0]):
            c = self.clients[members[0].id]
            prompt = copy.deepcopy(job.prompt)
            for up in job.uploads:
                prompt[up.node_id]["inputs"][up.input] = c.upload(up.path)
            placed.client, placed.prompt, placed.prompt_id = c, prompt, c.submit(prompt)
            return
        prompt = copy.deepcopy(placed.prompt or job.prompt)
        for up in job.uploads:              # into the master's input folder: ComfyUI-Distributed copies what a
            prompt[up.node_id]["inputs"][up.input] = self.master.upload(up.path)   # remote worker lacks
        prompt = with_collectors(prompt, object_info)
        self.master.connect()
        status, answer = self.master.post_json("/distributed/queue", {
            "prompt": prompt, "client_id": self.master.client_id,
            "enabled_worker_ids": [m.id for m in members], "delegate_master": True})
        if status != 200 or not isinstance(answer, dict) or not answer.get("prompt_id"):
            errors = (answer or {}).get("node_errors") if isinstance(answer, dict) else None
            raise PromptRefused([f"POST /distributed/queue on {self.master.url} answered {status}: "
                                 f"{str(errors or answer)[:500]}"])
        if answer.get("node_errors"):
            raise PromptRefused([f"the master refused the prompt: {answer['node_errors']}"])
        pid = str(answer["prompt_id"])
        self.master._prompts[pid] = prompt
        placed.client, placed.prompt, placed.prompt_id = self.master, prompt, pid
        if int(answer.get("worker_count") or 0) != len(members):
            self.master.cancel(pid)
            raise WorkerLost(f"ComfyUI-Distributed sent the job to {answer.get('worker_count')} of "
                             f"{len(members)} worker(s) ({', '.join(m.label for m in members)}): a worker did not "
                             f"answer its probe", members[0].id)
        placed.on_workers = True             # their copies are found when the job is followed (queueing stays quick)

    def find_worker_copies(self, placed: Placed) -> None:
        """Each worker's prompt id for a job queued through the master, by the collector's job id that the master
        gave its own copy."""
        sent = self.master.history(placed.prompt_id) or {}
        master_prompt = (sent.get("prompt") or [None, None, None])[2] if sent else None
        job_ids = collector_job_ids(master_prompt or self._queued_prompt(self.master, placed.prompt_id))
        for m in placed.members:
            placed.worker_pids[m.id] = self._find(self.clients[m.id], job_ids, m)

    @staticmethod
    def _queued_prompt(c: Client, pid: str) -> dict:
        q = c.get_json("/queue") or {}
        for item in (q.get("queue_running") or []) + (q.get("queue_pending") or []):
            if len(item) > 2 and str(item[1]) == pid:
                return item[2]
        return {}

    def _find(self, c: Client, job_ids: set, m: pool.Member) -> str:
        """The id of the worker's copy of a collector prompt (its collector carries the master's job id)."""
        deadline = time.monotonic() + FIND_S
        tries = 0
        while time.monotonic() < deadline:
            tries += 1
            try:                       # queued or running; else finished: the latest history, then all of it
                q = c.get_json("/queue") or {}
                items = [(str(i[1]), i[2]) for i in (q.get("queue_running") or []) + (q.get("queue_pending") or [])
                         if len(i) > 2]
                if not any(collector_job_ids(p) & job_ids for _, p in items):
                    hist = c.get_json("/history?max_items=64" if tries % 5 != 2 else "/history") or {}
                    items += [(pid, (e.get("prompt") or [None] * 3)[2] or {}) for pid, e in hist.items()]
            except ClientError as e:
                raise WorkerLost(f"worker {m.label} stopped answering when its copy of the job was looked for ({e})",
                                 m.id) from None
            for pid, p in items:
                if collector_job_ids(p) & job_ids:
                    return pid
            time.sleep(0.2)
        raise WorkerLost(f"worker {m.label} did not show the job ComfyUI-Distributed sent it within {FIND_S:.0f} s", m.id)

    # ---- following ------------------------------------------------------------------------------------
    def follow(self, placed: Placed, report, timeout, stop, out_dir) -> list[JobResult]:
        """Follow a placed job to its end; outputs downloaded only when every part of it finished."""
        server = ", ".join(m.label for m in placed.members)
        results = [JobResult(j.label, server, placed.prompt_id) for j in placed.jobs]
        try:
            if placed.on_workers and not placed.worker_pids:
                self.find_worker_copies(placed)
            for mid, wpid in placed.worker_pids.items():       # the work happens there: follow it first
                w = self.clients[mid]
                try:                           # its messages (ComfyUI sends a prompt without a client id to every
                    w.connect()                # socket) spare polling a busy worker twice a second
                except ClientError:
                    pass
                m = next(x for x in placed.members if x.id == mid)
                try:
                    wres = w.follow(wpid, report, timeout, stop)
                except ServerGone as e:
                    raise WorkerLost(f"worker {m.label} vanished while running the job ({_why(e, w)})", mid) from None
                if wres.error:
                    raise WorkerLost(f"worker {m.label} failed the job: "
                                     f"{format_execution_error(wres.error, placed.prompt)}", mid, gone=False)
                if wres.interrupted:
                    raise WorkerLost(f"worker {m.label} was interrupted while running the job", mid, gone=False)
            try:
                res = placed.client.follow(placed.prompt_id, None if placed.on_workers else report, timeout, stop)
            except ServerGone as e:
                if placed.on_workers or placed.client is self.master or len(self.up()) < 2:
                    raise                              # the master itself, or the only server: nowhere else
                raise WorkerLost(f"server {server} vanished while running the job ({_why(e, placed.client)})",
                                 placed.members[0].id) from None
            for r in results:
                r.result = res
            if res.error:
                raise ClientError(format_execution_error(res.error, placed.prompt))
            if res.interrupted:
                raise ClientError("interrupted")
            files = placed.client.download_outputs(res, out_dir)
        except WorkerLost:
            raise
        except TimeoutError as e:
            msg = f"{e}; {placed.client.cancel(placed.prompt_id)}"
            for r in results:
                r.error = msg
            return results
        except ClientError as e:
            for r in results:
                r.error = str(e)
            return results
        if len(placed.jobs) == 1:
            results[0].files = files
        else:                                     # a round: the master wrote each worker's images in order
            k = len(placed.jobs)
            per = len(files) // k if files and len(files) % k == 0 else 0
            if not per:
                msg = (f"the master wrote {len(files)} file(s) for a round of {k} copies on {server}; not a whole "
                       f"share per copy, so nothing is attributed: the files are in {out_dir}")
                for r in results:
                    r.error = msg
                return results
            for i, r in enumerate(results):
                r.files = files[i * per:(i + 1) * per]
        return results

    def cancel_worker_part(self, placed: Placed) -> str:
        """Cancel a placed job on the master (or its server) and on its workers; what was done there."""
        done = "not queued"
        if placed.client is not None and placed.prompt_id:
            done = placed.client.cancel(placed.prompt_id)
        for mid, wpid in placed.worker_pids.items():
            try:
                self.clients[mid].cancel(wpid)
            except ClientError:
                pass
        return done

    def cancel_all(self, placed: list) -> list[tuple[str, str, str]]:
        """Cancel what is still queued of `placed`: per server at once (waiting prompts deleted before the running
        one is interrupted, so none starts meanwhile), then their workers' copies. [(labels, what, url)]."""
        out = []
        live = [p for p in placed if p.client is not None and p.prompt_id and not all(j.done for j in p.jobs)]
        for c in dict.fromkeys(p.client for p in live):
            mine = [p for p in live if p.client is c]
            done = c.cancel_many([p.prompt_id for p in mine])
            out += [(", ".join(j.label for j in p.jobs), done[p.prompt_id], c.url) for p in mine]
        for p in live:
            for mid, wpid in p.worker_pids.items():
                try:
                    self.clients[mid].cancel(wpid)
                except (ClientError, KeyError):
                    pass
        return out

    def mark_down(self, mid: str, why: str) -> None:
        with self.lock:
            for m in self.pool.members:
                if m.id == mid:
                    m.down = why

    def close(self):
        for c in self.clients.values():
            c.close()


def describe_plan(label: str, choice: pool.Choice) -> str:
    return f"{label} -> {choice.costs[0].describe()}"


# ---- a batch ------------------------------------------------------------------------------------------
def pictures_only(prompt: dict) -> bool:
    """Whether the prompt saves pictures only: the collector stacks the workers' images into one batch, which
    is each copy's pictures for a SaveImage, but one longer clip for a CreateVideo and one longer sound."""
    classes = {n.get("class_type") for n in prompt.values() if isinstance(n, dict)}
    return bool(classes & set(IMAGE_SINKS)) and not classes & ({"SaveVideo", "CreateVideo"} | set(AUDIO_SINKS))


def _rounds(fleet: Fleet, batch: list, plan: list) -> list[Placed]:
    """Placed jobs in queue order: copies of one picture workflow planned onto different workers one after
    another go as one collector round (when their seeds are copy k, k+1, ... of one prompt), the rest (and every
    video or sound job) one by one."""
    out: list[Placed] = []
    i = 0
    while i < len(batch):
        job, ch = batch[i], plan[i]
        group = [i]
        if fleet.master is not None and ch.member is not None and fleet.is_worker(ch.member):
            j = i + 1
            while (j < len(batch) and batch[j].source == job.source and plan[j].member is not None
                   and fleet.is_worker(plan[j].member) and plan[j].member.id not in {plan[g].member.id for g in group}):
                group.append(j)
                j += 1
        if len(group) > 1 and pictures_only(job.prompt):
            base = batch[group[0]].prompt
            seeds = seed_inputs(base, batch[group[1]].prompt)
            ok = all(batch[g].prompt[nid]["inputs"][name] == base[nid]["inputs"][name] + k
                     for k, g in enumerate(group) for nid, name in seeds)
            ok = ok and all(seed_inputs(base, batch[g].prompt) == seeds for g in group[1:])
            prompt = with_distributed_seeds(base, seeds, 0) if ok else None
            if prompt is not None:
                out.append(Placed([batch[g] for g in group], [plan[g].member for g in group], prompt=prompt))
                i = group[-1] + 1
                continue
        out.append(Placed([job], [ch.member] if ch.member else []))
        i += 1
    return out


def run_batch(fleet: Fleet, batch: list, object_info: dict, out_dir, timeout, bars, on_progress, stop,
              log, queued: list | None = None) -> dict:
    """Choose, queue and follow every job of `batch` (client._Job); {id(job): JobResult}. `queued` collects
    what was queued (the caller cancels it on Ctrl-C)."""
    results: dict = {}
    queued = queued if queued is not None else []
    needs_of: dict = {}
    first = {}
    for job in batch:                                  # copies of one workflow need the same files
        first.setdefault(job.source, job.prompt)
    with ThreadPoolExecutor(max_workers=4) as ex:
        needs_of.update(zip(first, ex.map(fleet.needs, first.values())))
    needs = [needs_of[j.source] for j in batch]
    plan = fleet.pool.plan(needs)
    for job, ch in zip(batch, plan):
        if ch.member is None:
            job.done = True
            results[id(job)] = JobResult(job.label, "", error=ch.refusal(job.label))
        else:
            log(describe_plan(job.label, ch))
    placed = [p for p in _rounds(fleet, batch, plan) if p.members]
    for p in placed:
        try:
            fleet.queue(p, object_info)
            queued.append(p)
            for j in p.jobs:
                j.client, j.prompt_id = p.client, p.prompt_id
                log(f"queued {j.label} on {', '.join(m.label for m in p.members)} (prompt {p.prompt_id})")
        except PromptRefused as e:
            for j in p.jobs:
                j.done = True
                results[id(j)] = JobResult(j.label, p.members[0].label, error="; ".join(e.errors))
                results[id(j)].refused = True
        except (WorkerLost, ClientError) as e:
            queued.append(p)
            p.lost = str(e)                            # followed by the retry path below

    def reporter(job):
        callbacks = [cb for cb in (bars.for_job(job), on_progress and (
            lambda pr, label=job.label: on_progress(label, pr))) if cb]
        return (lambda pr: [cb(pr) for cb in callbacks]) if callbacks else None

    def attempt(p: Placed) -> list[JobResult]:
        try:
            if p.lost is not None:
                raise WorkerLost(p.lost, p.members[0].id)
            return fleet.follow(p, reporter(p.jobs[0]), timeout, stop, out_dir)
        except WorkerLost as e:
            fleet.cancel_worker_part(p)
            if e.gone:
                fleet.mark_down(e.worker, "vanished during this batch")
            if p.tried or stop.is_set():
                return [JobResult(j.label, p.members[0].label, p.prompt_id,
                                  error=f"{e}; it was already sent once more, so it stops here" if p.tried else str(e))
                        for j in p.jobs]
            out = []
            for j in p.jobs:                           # once more, one by one, on the next best server
                ch = fleet.pool.choose(needs_of[j.source], exclude=(e.worker,))
                if ch.member is None:
                    out.append(JobResult(j.label, p.members[0].label, p.prompt_id,
                                         error=f"{e}; no other server can take it: {ch.why()}"))
                    continue
                log(f"{j.label}: {e}; sending it once more, to {ch.member.label}")
                again = Placed([j], [ch.member], tried=(e.worker,))
                try:
                    fleet.queue(again, object_info)
                    queued.append(again)
                    j.client, j.prompt_id = again.client, again.prompt_id
                    out += attempt(again)
                except (PromptRefused, ClientError) as e2:
                    out.append(JobResult(j.label, ch.member.label, error=f"{e}; sent once more to "
                                         f"{ch.member.label}, which failed too: {e2}"))
            return out

    def follow_all(key):
        for p in [q for q in queued if q.members[0].id == key]:
            for j, r in zip(p.jobs, attempt(p)):
                results[id(j)] = r
                j.done = True

    keys = list(dict.fromkeys(p.members[0].id for p in queued))
    threads = [threading.Thread(target=follow_all, args=(k,), daemon=True) for k in keys]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(timeout=0.2)
    return results
