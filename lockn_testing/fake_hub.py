"""A local fake of the Hugging Face Hub's download protocol, for tests (127.0.0.1 only, no internet).

It speaks what ``huggingface_hub`` needs to download a file (``hf_hub_download``, ``get_hf_file_metadata``
and ``lockn_gen.hub``):

* ``HEAD`` and ``GET`` on ``/{repo_id}/resolve/{revision}/{path}``, answering with ``X-Repo-Commit``,
  ``ETag`` and, for LFS files, ``X-Linked-Etag`` (the sha256 of the content) and ``X-Linked-Size``,
  like the real hub. ``revision`` may be the branch (``main``) or the repo's commit hash.
* LFS files are redirected (``302``, absolute ``Location``) to ``/_lfs/{sha256}/{repo}/{path}``, the
  fake "CDN", the way the real hub redirects to its storage. The real CDN lives on another host, which
  ``huggingface_hub`` does not follow for ``HEAD``; here it is the same host, which it does follow, so
  the CDN answers carry the hub headers too (metadata reads the same either way).
* ``GET /api/models/{repo_id}/tree/{revision}`` (what ``list_repo_tree`` asks): the repo's files, sizes, LFS sha256.
* ``Range: bytes=N-`` / ``bytes=N-M`` answered with ``206`` and ``Content-Range``; ``416`` past the end.
* errors the way the hub shapes them: ``404`` with ``X-Error-Code: RepoNotFound`` / ``RevisionNotFound``
  / ``EntryNotFound``, ``401``/``403`` (optionally ``X-Error-Code: GatedRepo``).

Fault injection, per file (see :meth:`FakeHub.add`): cut the connection after N bytes of the file (a
number of times), serve corrupted bytes of the right size, ignore Range, answer a fixed status, require
a token, serve the body slowly (``rate`` bytes per second, per file or for the whole hub with
``FakeHub(rate=...)``, so that a test can kill a download mid-body without big files). Every request is recorded (method, path, Range header, status, body bytes sent, whether an
Authorization header came) so tests can assert that a download resumed.

Usage::

    with FakeHub() as hub:
        hub.add("org/repo", "split_files/vae/x.safetensors", data)
        os.environ["HF_ENDPOINT"] = hub.endpoint
        ...
        assert any(r.range == f"bytes={n}-" for r in hub.requests)
"""
from __future__ import annotations

import hashlib
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote, urlsplit

CHUNK = 64 * 1024


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob: the ETag the hub gives files stored in git (not LFS)."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


@dataclass
class FakeFile:
    repo: str
    path: str
    data: bytes
    lfs: bool = True                  # LFS file (X-Linked-Etag = sha256) or plain git file (ETag = git sha1)
    cut_after: int | None = None      # close the connection once the file offset reaches this many bytes ...
    cut_times: int = 1                # ... on this many GETs (then served whole)
    corrupt: bool = False             # serve bytes of the right size, but not the advertised content
    status: int | None = None         # answer every request for this file with this HTTP status
    gated: bool = False               # with status 401/403: say X-Error-Code: GatedRepo, like the hub
    token: str | None = None          # require "Authorization: Bearer <token>" (401 without, 403 wrong)
    ignore_range: bool = False        # answer Range requests with 200 and the whole file
    advertised_sha256: str | None = None  # override X-Linked-Etag (default: the real sha256)
    rate: int | None = None           # serve the body at about this many bytes per second (None: the hub's rate)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def etag(self) -> str:
        if self.lfs:
            return self.advertised_sha256 or self.sha256
        return git_blob_sha1(self.data)

    def body(self) -> bytes:
        if not self.corrupt:
            return self.data
        flipped = bytearray(self.data)
        for i in range(0, len(flipped), max(1, len(flipped) // 7)):
            flipped[i] ^= 0xFF
        return bytes(flipped)


@dataclass
class Request:
    method: str
    path: str                        # URL path, unquoted
    range: str | None                # the Range header, if any
    authorization: bool              # whether an Authorization header came
    status: int = 0
    bytes_sent: int = 0              # body bytes written (0 for HEAD)


@dataclass
class _Repo:
    commit: str
    revision: str = "main"
    files: dict[str, FakeFile] = field(default_factory=dict)


class FakeHub:
    """The fake hub server. ``start()``/``stop()`` or use it as a context manager."""

    def __init__(self, rate: int | None = None) -> None:
        """``rate``: serve every file body at about this many bytes per second (a file's own ``rate`` wins);
        None serves as fast as the socket takes it."""
        self.rate = rate
        self.repos: dict[str, _Repo] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- setup -------------------------------------------------------------------------
    def add(self, repo: str, path: str, data: bytes, *, revision: str = "main", **faults) -> FakeFile:
        """Serve ``data`` as ``path`` of model repo ``repo``; ``faults`` are :class:`FakeFile` fields."""
        r = self.repos.get(repo)
        if r is None:
            r = self.repos[repo] = _Repo(commit=hashlib.sha1(repo.encode()).hexdigest(), revision=revision)
        f = FakeFile(repo=repo, path=path, data=data, **faults)
        r.files[path] = f
        return f

    def file(self, repo: str, path: str) -> FakeFile:
        return self.repos[repo].files[path]

    @property
    def port(self) -> int:
        assert self._server is not None, "FakeHub is not started"
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeHub":
        hub = self

        class Handler(_Handler):
            fake_hub = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="fake-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- inspection ----------------------------------------------------------------------
    def _record(self, req: Request) -> None:
        with self._lock:
            self.requests.append(req)

    def requests_for(self, path: str, method: str | None = None) -> list[Request]:
        """Recorded requests whose path ends with ``path`` (resolve and CDN URLs alike)."""
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/" + path.lstrip("/"))
                    and (method is None or r.method == method)]

    def downloads(self, path: str) -> list[Request]:
        """GETs of ``path`` that sent file bytes (200/206), direct or via the CDN redirect."""
        return [r for r in self.requests_for(path, "GET") if r.status in (200, 206)]

    def bytes_served(self, path: str) -> int:
        return sum(r.bytes_sent for r in self.requests_for(path))

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()


def free_port() -> int:
    """A port nothing listens on (bound and released at once): for "server unreachable" tests."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Handler(BaseHTTPRequestHandler):
    fake_hub: FakeHub
    protocol_version = "HTTP/1.1"
    server_version = "FakeHub/1.0"

    def log_message(self, format, *args):  # noqa: A002 - keep test output clean
        pass

    def handle(self):
        # A client that goes away (killed, or closing with bytes unread) resets the connection: for a
        # server that is the client's business, not an error worth a traceback on stderr.
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True

    def do_HEAD(self):
        self._handle(head=True)

    def do_GET(self):
        self._handle(head=False)

    # ---- routing ---------------------------------------------------------------------------
    def _handle(self, head: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        req = Request(method=self.command, path=path, range=self.headers.get("Range"),
                      authorization=self.headers.get("Authorization") is not None)
        self.fake_hub._record(req)
        try:
            if path.startswith("/_lfs/"):
                self._cdn(path, head, req)
            elif "/resolve/" in path:
                self._resolve(path, head, req)
            elif path.startswith("/api/models/") and "/tree/" in path:
                self._tree(path, req)
            else:
                self._error(req, 404, "", "Not a route of the fake hub")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _resolve(self, path: str, head: bool, req: Request) -> None:
        repo_id, _, rest = path.lstrip("/").partition("/resolve/")
        repo = self.fake_hub.repos.get(repo_id)
        if repo is None:
            return self._error(req, 404, "RepoNotFound", f"Repository {repo_id} not found")
        revision, _, fpath = rest.partition("/")
        if revision not in (repo.revision, repo.commit):
            return self._error(req, 404, "RevisionNotFound", f"Invalid rev id: {revision}", repo.commit)
        f = repo.files.get(fpath)
        if f is None:
            return self._error(req, 404, "EntryNotFound", f"{fpath} does not exist on {revision}", repo.commit)
        if self._refused(f, req, repo.commit):
            return
        if f.lfs:
            location = f"http://127.0.0.1:{self.server.server_address[1]}/_lfs/{f.sha256}/{quote(repo_id)}/{quote(fpath)}"
            self.send_response(302)
            req.status = 302
            self._hub_headers(f, repo.commit)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._serve(f, head, req, repo.commit)

    def _tree(self, path: str, req: Request) -> None:
        """The tree API (``list_repo_tree``, recursive): every file with its size, and its LFS sha256 where it is
        an LFS file, as the hub lists them (folders are left out: callers skip them anyway)."""
        import json
        repo_id, _, revision = path[len("/api/models/"):].partition("/tree/")
        repo = self.fake_hub.repos.get(repo_id)
        if repo is None:
            return self._error(req, 404, "RepoNotFound", f"Repository {repo_id} not found")
        if revision.strip("/") not in (repo.revision, repo.commit):
            return self._error(req, 404, "RevisionNotFound", f"Invalid rev id: {revision}", repo.commit)
        items = [{"type": "file", "oid": git_blob_sha1(f.data), "size": len(f.data), "path": p,
                  **({"lfs": {"oid": f.sha256, "size": len(f.data), "pointerSize": 134}} if f.lfs else {})}
                 for p, f in sorted(repo.files.items())]
        body = json.dumps(items).encode()
        self.send_response(200)
        req.status = 200
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _cdn(self, path: str, head: bool, req: Request) -> None:
        try:
            _, _, _sha, rest = path.split("/", 3)
        except ValueError:
            return self._error(req, 404, "", "bad CDN path")
        for repo_id, repo in self.fake_hub.repos.items():
            if rest.startswith(repo_id + "/") and rest[len(repo_id) + 1:] in repo.files:
                return self._serve(repo.files[rest[len(repo_id) + 1:]], head, req, repo.commit)
        self._error(req, 404, "", "no such object")

    def _refused(self, f: FakeFile, req: Request, commit: str) -> bool:
        if f.status is not None:
            code = "GatedRepo" if f.gated else ("EntryNotFound" if f.status == 404 else "")
            msg = {401: "Access to this repo is restricted; you must be authenticated",
                   403: "Access to this repo is restricted; accept the conditions on its page",
                   404: "Entry not found"}.get(f.status, "fake hub error")
            self._error(req, f.status, code, msg, commit)
            return True
        if f.token is not None:
            auth = self.headers.get("Authorization")
            if auth is None:
                self._error(req, 401, "GatedRepo" if f.gated else "", "Authentication required", commit)
                return True
            if auth != f"Bearer {f.token}":
                self._error(req, 403, "GatedRepo" if f.gated else "", "Invalid token for this repo", commit)
                return True
        return False

    # ---- responses -------------------------------------------------------------------------
    def _hub_headers(self, f: FakeFile, commit: str) -> None:
        self.send_header("X-Repo-Commit", commit)
        if f.lfs:
            self.send_header("ETag", f'"{git_blob_sha1(f.data)}"')   # the pointer's id, as the hub does
            self.send_header("X-Linked-Etag", f'"{f.etag}"')
            self.send_header("X-Linked-Size", str(len(f.data)))
        else:
            self.send_header("ETag", f'"{f.etag}"')
        self.send_header("Accept-Ranges", "bytes")

    def _error(self, req: Request, status: int, code: str, message: str, commit: str | None = None) -> None:
        body = ('{"error": "%s"}' % message.replace('"', "'")).encode()
        self.send_response(status)
        req.status = status
        if commit:
            self.send_header("X-Repo-Commit", commit)
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _serve(self, f: FakeFile, head: bool, req: Request, commit: str) -> None:
        data = f.body()
        total = len(data)
        start, end = 0, total - 1
        rng = self.headers.get("Range")
        partial = False
        if rng and not f.ignore_range:
            try:
                unit, _, spec = rng.partition("=")
                a, _, b = spec.partition("-")
                if unit.strip() != "bytes" or "," in spec:
                    raise ValueError(rng)
                start = int(a)
                end = min(int(b), total - 1) if b.strip() else total - 1
            except ValueError:
                return self._error(req, 400, "", f"bad Range header {rng!r}")
            if start >= total or start > end:
                self.send_response(416)
                req.status = 416
                self.send_header("Content-Range", f"bytes */{total}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            partial = True
        self.send_response(206 if partial else 200)
        req.status = 206 if partial else 200
        self._hub_headers(f, commit)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        if partial:
            self.send_header("Content-Range", f"bytes {start}-{end}/{total}")
        self.end_headers()
        if head:
            return
        stop = end + 1
        cut = False
        with self.fake_hub._lock:
            if f.cut_after is not None and f.cut_times > 0 and start < f.cut_after < stop:
                f.cut_times -= 1
                stop, cut = f.cut_after, True
        rate = f.rate if f.rate is not None else self.fake_hub.rate
        chunk = CHUNK if not rate else max(1024, min(CHUNK, rate // 50))   # ~50 writes a second when throttled
        t0 = time.monotonic()
        pos = start
        while pos < stop:
            n = min(chunk, stop - pos)
            self.wfile.write(data[pos:pos + n])
            if rate:
                self.wfile.flush()
            pos += n
            req.bytes_sent += n
            if rate:
                ahead = (pos - start) / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        self.wfile.flush()
        if cut:
            # Drop the connection mid-body: the client sees fewer bytes than Content-Length.
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
