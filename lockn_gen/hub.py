"""`lockn-gen models`: list, check and download (pull) the catalog's model files.

Downloads go through ``huggingface_hub`` (its HTTP session, auth headers with ``HF_TOKEN``, metadata
``HEAD`` and error classes; ``HF_ENDPOINT`` is honoured) and are:

* resumable: the bytes land in ``<folder>/.lockn-download/<name>.part`` (a hidden folder inside the
  target folder, so the final ``os.replace`` is atomic on the same filesystem) and a later run continues
  from there with an HTTP ``Range`` request, as long as the hub still serves the same file (same etag
  and size, kept in ``<name>.part.json``);
* verified before the file gets its final name: its size (exact when the catalog says so, else the
  size the hub reports) and its SHA-256 (the catalog's when known, else the hub's LFS etag, which is
  the sha256 of the content; a plain git file is checked against its git blob id). A file that fails
  is deleted, never moved into place.

Why not ``hf_hub_download``: in huggingface_hub 1.x it downloads to a per-process temporary file that
it deletes on failure (no resume across runs), checks only the size, and keeps its own cache/metadata
folders. Xet storage is not used: files come over plain HTTP (the hub redirects ``resolve`` URLs of
Xet files to a bridge that supports ``Range``), which is what makes the resume possible.

Plain functions (``resolve_files``, ``pull_files``, ``check_files``, ``download_command``) work from
Python; ``add_arguments``/``main`` are the thin CLI. Nothing here imports ComfyUI, and
``huggingface_hub`` is imported only when something is downloaded.
"""
from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from . import catalog as catalog_mod
from .catalog import Catalog, CatalogError, FileEntry, check_relative_name

COMFYUI_PATH_DEFAULT = "~/comfy/ComfyUI"
STAGING_DIR = ".lockn-download"       # hidden folder inside each target folder
SIZE_WARN_FRACTION = 0.05             # warn when the hub's size differs from an approximate catalog size by more
CHUNK = 1024 * 1024
REPO_ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = REPO_ROOT / "lockn-gen"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")

OK_STATUSES = ("downloaded", "present")


# ---- paths -------------------------------------------------------------------------------------
def default_models_dir() -> Path:
    """``$COMFYUI_PATH/models`` (``COMFYUI_PATH`` defaults to ``~/comfy/ComfyUI``)."""
    return Path(os.environ.get("COMFYUI_PATH") or COMFYUI_PATH_DEFAULT).expanduser() / "models"


def target_path(entry: FileEntry, models_dir: os.PathLike | str) -> Path:
    """Where a catalog file lives: ``<models_dir>/<folder>/<name>``."""
    check_relative_name(entry.name)
    return Path(models_dir) / entry.folder / entry.name


def staging_paths(entry: FileEntry, models_dir: os.PathLike | str) -> tuple[Path, Path]:
    """(partial file, its JSON sidecar) in the hidden staging folder beside the target."""
    target = target_path(entry, models_dir)
    stage = target.parent / STAGING_DIR
    return stage / (target.name + ".part"), stage / (target.name + ".part.json")


def hub_endpoint() -> str:
    """The hub to download from: ``HF_ENDPOINT`` (read now, not at import), else huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or catalog_mod.HF_ENDPOINT_DEFAULT).rstrip("/")


# ---- the command that downloads files (printed by the loader nodes) ----------------------------------
def download_command(file_names: list[str], models_dir: os.PathLike | str | None = None,
                     catalog_paths: Iterable[os.PathLike | str] | None = None) -> str:
    """The shell command that downloads ``file_names`` (catalog file names) with this checkout's launcher.

    User catalogs named in ``LOCKN_GEN_CATALOG`` (and ``catalog_paths``) are passed with ``--catalog``
    so the command also works from a shell that lacks the variable.
    """
    if LAUNCHER.is_file():
        argv = [sys.executable, str(LAUNCHER)]
    else:  # installed as a package without the launcher
        argv = [sys.executable, "-m", "lockn_gen"]
    argv += ["models", "pull"]
    cats = [str(p) for p in (catalog_paths or [])]
    cats += [str(p) for p in catalog_mod.user_catalog_paths() if str(p) not in cats]
    for c in cats:
        argv += ["--catalog", str(Path(c).expanduser().resolve())]
    if models_dir is not None:
        argv += ["--models-dir", str(Path(models_dir).expanduser().resolve())]
    for name in file_names:
        argv += ["--file", name]
    if os.name == "nt":
        return subprocess.list2cmdline(argv)
    return shlex.join(argv)


# ---- formatting ----------------------------------------------------------------------------------
def fmt_size(n: int | None) -> str:
    if n is None:
        return "? bytes"
    if n >= 1e9:
        return f"{n / 1e9:.2f} GB"
    if n >= 1e6:
        return f"{n / 1e6:.1f} MB"
    if n >= 1e3:
        return f"{n / 1e3:.1f} kB"
    return f"{n} bytes"


def _info(msg: str) -> None:
    print(msg, file=sys.stdout, flush=True)


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---- selecting files --------------------------------------------------------------------------------
def resolve_files(catalog: Catalog, presets: Iterable[str] = (), files: Iterable[str] = (),
                  include_optional: bool = False) -> list[FileEntry]:
    """Catalog entries for presets and file names, each once, in order. KeyError names the unknown one."""
    out: dict[str, FileEntry] = {}
    for pid in presets:
        found = catalog.lora_files(pid) if pid in catalog.loras else catalog.preset_files(pid, include_optional)
        for f in found.values():
            out.setdefault(f.name, f)
    for name in files:
        f = catalog.file(name)
        if f is None:
            raise KeyError(f"unknown model file {name!r}: no catalog entry describes it "
                           f"(add a [files.\"{name}\"] entry to a user catalog, see --catalog)")
        out.setdefault(f.name, f)
    return list(out.values())


# ---- results -------------------------------------------------------------------------------------
@dataclass
class PullResult:
    name: str
    status: str            # downloaded | present | failed | no-source | skipped
    path: str
    message: str = ""
    sha256: str = ""       # the verified/computed sha256, when hashed
    hash_source: str = ""  # "catalog" | "hub LFS etag" | "git blob id" | ""
    bytes_downloaded: int = 0
    resumed_from: int = 0

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES


@dataclass
class FileStatus:
    entry: FileEntry
    path: Path
    status: str            # present | missing | wrong-size | no-source | corrupt | unverified
    size: int | None = None
    warnings: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "present"


class HubError(Exception):
    """A download failed; the message is one paragraph for the user. ``network`` = hub unreachable."""

    def __init__(self, message: str, network: bool = False):
        super().__init__(message)
        self.network = network


class _Interrupted(Exception):
    """The connection dropped mid-body (or ended short); the partial file is kept."""


# ---- hashing -----------------------------------------------------------------------------------------
class _Hasher:
    """sha256 of the content, and the git blob id when the expected size is known (plain git files)."""

    def __init__(self, git_size: int | None = None):
        self.git_size = git_size
        self.reset()

    def reset(self) -> None:
        self.sha256 = hashlib.sha256()
        self.git = None if self.git_size is None else hashlib.sha1(b"blob %d\x00" % self.git_size)

    def update(self, data: bytes) -> None:
        self.sha256.update(data)
        if self.git is not None:
            self.git.update(data)

    def feed_file(self, path: Path, limit: int | None = None, desc: str = "", progress: bool = True) -> None:
        total = path.stat().st_size if limit is None else limit
        bar = _bar(total, 0, desc, progress) if desc else None
        left = total
        with open(path, "rb") as fh:
            while left > 0:
                block = fh.read(min(CHUNK * 8, left))
                if not block:
                    break
                self.update(block)
                left -= len(block)
                if bar is not None:
                    bar.update(len(block))
        if bar is not None:
            bar.close()


def sha256_file(path: os.PathLike | str, progress: bool = False) -> str:
    h = _Hasher()
    h.feed_file(Path(path), desc=f"sha256 {Path(path).name}" if progress else "", progress=progress)
    return h.sha256.hexdigest()


def _bar(total: int | None, initial: int, desc: str, progress: bool):
    from huggingface_hub.utils import tqdm  # honours HF_HUB_DISABLE_PROGRESS_BARS

    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                disable=not progress, file=sys.stderr, dynamic_ncols=True, name="lockn_gen.download")


# ---- hub metadata and errors -----------------------------------------------------------------------
@dataclass
class _Remote:
    url: str               # resolve URL at the catalog revision
    pinned_url: str        # resolve URL at the commit the HEAD reported (what we GET)
    commit: str | None
    etag: str | None
    size: int | None


def _explain(exc: BaseException, entry: FileEntry, url: str, endpoint: str) -> HubError:
    """One paragraph: what failed, that nothing was written under the final name, and the fix."""
    import httpx
    from huggingface_hub import errors as hf_errors

    nothing = "Nothing was written under the file's final name."
    token_set = bool(os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"))
    page = f"{endpoint}/{entry.repo}"
    where = f"catalog entry {entry.name!r} (from {entry.source})"
    if isinstance(exc, hf_errors.OfflineModeIsEnabled):
        return HubError(f"Cannot download {entry.name}: HF_HUB_OFFLINE is set, so {url} was not contacted. "
                        f"{nothing} Unset HF_HUB_OFFLINE to download.", network=True)
    if isinstance(exc, (httpx.TransportError, ConnectionError, TimeoutError)) and not isinstance(exc, hf_errors.HfHubHTTPError):
        return HubError(
            f"Cannot reach the model hub at {endpoint} to download {entry.name} ({url}): "
            f"{type(exc).__name__}: {exc or 'no answer'}. {nothing} "
            f"Check the network connection (and proxy settings); if you use a mirror, check that HF_ENDPOINT "
            f"(now {os.environ.get('HF_ENDPOINT') or 'unset, so huggingface.co'}) points at a running Hugging Face-compatible "
            f"server; gated repos also need HF_TOKEN set to a token whose account accepted the model's licence.",
            network=True)
    if isinstance(exc, hf_errors.HfHubHTTPError) and exc.response is not None:
        status = exc.response.status_code
        if isinstance(exc, hf_errors.GatedRepoError) or status in (401, 403):
            if isinstance(exc, hf_errors.GatedRepoError) or status == 403:
                fix = (f"the repo {entry.repo} is gated or restricted: open {page}, log in and accept its licence/conditions, "
                       f"then set HF_TOKEN to a read token of that account"
                       + (" (HF_TOKEN is set, but the hub refused it for this repo)" if token_set else " (HF_TOKEN is not set)"))
            else:
                fix = ("the hub wants a valid token: set HF_TOKEN to a Hugging Face read token"
                       + (" (the one set was refused; create a new one)" if token_set else " (HF_TOKEN is not set)")
                       + f"; if the repo is gated, accept its licence at {page}; if it does not exist, the {where} is wrong")
            return HubError(f"Cannot download {entry.name}: HTTP {status} from {url}. {nothing} To fix: {fix}.")
        if status == 404 or isinstance(exc, (hf_errors.RepositoryNotFoundError, hf_errors.RevisionNotFoundError,
                                               hf_errors.RemoteEntryNotFoundError)):
            if isinstance(exc, hf_errors.RevisionNotFoundError):
                what = f"revision {entry.revision!r} does not exist in {entry.repo}"
            elif isinstance(exc, hf_errors.RemoteEntryNotFoundError):
                what = f"{entry.path!r} is not in {entry.repo} at revision {entry.revision!r}"
            else:
                what = f"the repo {entry.repo!r} was not found (or is private and needs HF_TOKEN)"
            return HubError(f"Cannot download {entry.name}: HTTP {status} from {url}: {what}. {nothing} "
                            f"The {where} is probably wrong (repo, path or revision): fix it, or override it in a "
                            f"user catalog (--catalog / LOCKN_GEN_CATALOG).")
        if status >= 500 or status == 429:
            return HubError(f"Cannot download {entry.name}: the hub answered HTTP {status} for {url}. {nothing} "
                            f"The hub is busy or down; try again later.")
        return HubError(f"Cannot download {entry.name}: HTTP {status} from {url}. {nothing} "
                        f"Check the {where} and HF_ENDPOINT/HF_TOKEN.")
    if isinstance(exc, hf_errors.FileMetadataError):
        return HubError(f"Cannot download {entry.name}: {url} answered without the hub's file metadata ({exc}). "
                        f"{nothing} Check that HF_ENDPOINT points at a Hugging Face-compatible server.")
    return HubError(f"Cannot download {entry.name} from {url}: {type(exc).__name__}: {exc}. {nothing}")


def _remote(entry: FileEntry, endpoint: str, headers: dict, timeout: float) -> _Remote:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(entry.repo, entry.path, revision=entry.revision, endpoint=endpoint)
    try:
        meta = get_hf_file_metadata(url, timeout=timeout, headers=headers, endpoint=endpoint)
    except Exception as e:  # noqa: BLE001 - every failure becomes one clear message
        raise _explain(e, entry, url, endpoint) from None
    etag = (meta.etag or "").lower() or None
    pinned = url
    if meta.commit_hash:
        pinned = hf_hub_url(entry.repo, entry.path, revision=meta.commit_hash, endpoint=endpoint)
    return _Remote(url=url, pinned_url=pinned, commit=meta.commit_hash, etag=etag, size=meta.size)


def _expected_hash(entry: FileEntry, remote: _Remote | None) -> tuple[str, str, str]:
    """(kind, value, source): kind is 'sha256', 'git' or ''."""
    if entry.sha256:
        return "sha256", entry.sha256, "catalog"
    if remote is not None and remote.etag and _HEX64.match(remote.etag):
        return "sha256", remote.etag, "hub LFS etag"
    if remote is not None and remote.etag and _HEX40.match(remote.etag):
        return "git", remote.etag, "git blob id (hub ETag)"
    return "", "", ""


# ---- downloading one file ---------------------------------------------------------------------------
def _lock(path: Path):
    """An exclusive lock so two pulls never append to the same partial file (POSIX; no-op elsewhere)."""
    fh = open(path, "a+")
    try:
        import fcntl
    except ImportError:
        return fh
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise HubError(f"Another lockn-gen is downloading into {path.parent} right now ({path.name} is locked); "
                       f"wait for it to finish.") from None
    return fh


def _cleanup_stage(*paths: Path) -> None:
    for p in paths:
        try:
            p.unlink()
        except FileNotFoundError:
            pass
    if paths:
        try:
            paths[0].parent.rmdir()  # only when empty
        except OSError:
            pass


def _write(fh, data: bytes) -> None:
    """Write all of ``data`` to the unbuffered file ``fh``. A raw write may be short (near a full disk
    or a file-size limit); the next one then raises the OSError (ENOSPC, EDQUOT, EFBIG)."""
    view = memoryview(data)
    while view:
        n = fh.write(view)
        view = view[n:]


_NO_ROOM = {errno.ENOSPC: "the disk is full", errno.EFBIG: "the file is too large for its folder"}
if hasattr(errno, "EDQUOT"):
    _NO_ROOM[errno.EDQUOT] = "the disk quota is used up"


def _no_room_message(entry: FileEntry, part: Path, target: Path, expected_size: int | None, err: OSError) -> str:
    """What to say when writing the partial file failed for lack of room (full disk, quota, size limit)."""
    folder = target.parent
    try:
        have = part.stat().st_size
    except OSError:
        have = 0
    try:
        free = shutil.disk_usage(part.parent).free
    except OSError:
        free = None
    missing = None if expected_size is None else max(expected_size - have, 0)
    need = (f"{fmt_size(missing)} ({missing} bytes) of the {fmt_size(expected_size)} are still missing"
            if missing is not None else "the rest of the file is still missing (its size is unknown)")
    free_s = f"{fmt_size(free)} ({free} bytes) free on that disk now" if free is not None else "free space unknown"
    if err.errno == errno.EFBIG:
        fix = (f"The filesystem of {folder} does not take files this large (FAT32 stops at 4 GB), or this "
               f"process has a file-size limit (`ulimit -f`): put the models folder on another filesystem "
               f"(--models-dir) or lift the limit (`ulimit -f unlimited`)")
    else:
        fix = (f"Free at least {fmt_size(missing) if missing is not None else 'the missing bytes'} on the disk of "
               f"{folder}" + (" (or raise your disk quota)" if err.errno != errno.ENOSPC else ""))
    kept = (f"the {have} bytes received so far are kept in {part}" if have else
            f"nothing of it could be written yet ({part} is empty)")
    again = (f"run the same `lockn-gen models pull` again: it resumes from byte {have}" if have else
             "run the same `lockn-gen models pull` again")
    return (f"{entry.name}: {_NO_ROOM.get(err.errno, 'no room')} ({os.strerror(err.errno)}): writing {part} "
            f"stopped at {have} bytes; {need}; {free_s}. Nothing was written under the final name {target}; "
            f"{kept}. {fix}, then {again}.")


def _stream(remote: _Remote, entry: FileEntry, part: Path, hasher: _Hasher, expected_size: int | None,
            headers: dict, timeout: float, retries: int, retry_wait: float, progress: bool) -> int:
    """Append the missing bytes to ``part`` (resuming from its size). Returns the bytes fetched."""
    import httpx
    from huggingface_hub.utils import get_session, hf_raise_for_status

    session = get_session()
    fetched = 0
    failures = 0
    bar = _bar(expected_size, part.stat().st_size, entry.name, progress)
    try:
        # Unbuffered: every received byte is in the file at once, so a killed process loses nothing it
        # got, and a full disk fails the write of the chunk at hand (not a later flush in close()).
        with open(part, "ab", buffering=0) as fh:
            while True:
                offset = fh.tell()
                if expected_size is not None and offset >= expected_size:
                    return fetched
                req_headers = {**headers, "Accept-Encoding": "identity"}
                if offset:
                    req_headers["Range"] = f"bytes={offset}-"
                got = 0
                try:
                    with session.stream("GET", remote.pinned_url, headers=req_headers, timeout=timeout,
                                        follow_redirects=True) as resp:
                        if resp.status_code >= 400:
                            resp.read()
                            hf_raise_for_status(resp)
                        if offset and resp.status_code == 200:
                            # The server ignored the Range: start over rather than append the head twice.
                            _info(f"  {entry.name}: the server ignored the resume request; starting over from 0")
                            fh.seek(0)
                            fh.truncate()
                            hasher.reset()
                            bar.reset(total=expected_size)
                            offset = 0
                        elif offset and resp.status_code == 206:
                            cr = resp.headers.get("Content-Range", "")
                            m = re.match(r"bytes (\d+)-", cr)
                            if not m or int(m.group(1)) != offset:
                                raise HubError(f"Cannot resume {entry.name}: the server answered Range bytes={offset}- "
                                               f"with Content-Range {cr!r}. The partial file was deleted and nothing "
                                               f"was written under the final name; run the pull again.")
                        # No chunk_size: httpx would hold back up to a chunk of received bytes and lose
                        # them when the connection drops; take each read as it comes.
                        for chunk in resp.iter_bytes():
                            if expected_size is not None and offset + got + len(chunk) > expected_size:
                                raise HubError(f"{entry.name}: the server sent more than the expected "
                                               f"{expected_size} bytes; the staged file is deleted.")
                            _write(fh, chunk)
                            hasher.update(chunk)
                            got += len(chunk)
                            bar.update(len(chunk))
                    fetched += got
                    if expected_size is not None and fh.tell() < expected_size:
                        raise _Interrupted(f"the transfer ended at {fh.tell()} of {expected_size} bytes")
                    return fetched
                except (httpx.TransportError, _Interrupted) as e:
                    fetched += got
                    # `retries` counts reconnects in a row that brought no new byte.
                    failures = 1 if got else failures + 1
                    if failures > retries:
                        raise _Interrupted(f"{type(e).__name__}: {e}") from None
                    wait = min(retry_wait * (2 ** max(failures - 1, 0)), 30.0)
                    _info(f"  {entry.name}: connection lost at {fh.tell()} bytes ({type(e).__name__}); "
                          f"resuming in {wait:.0f} s")
                    time.sleep(wait)
    finally:
        bar.close()


def pull_file(entry: FileEntry, models_dir: os.PathLike | str, *, verify: bool = False, retries: int = 5,
              retry_wait: float = 1.0, progress: bool = True, token: str | bool | None = None,
              timeout: float | None = None) -> PullResult:
    """Download one catalog file into ``<models_dir>/<folder>/<name>``, verified. Raises HubError only for
    an unreachable hub (``network=True``) so the caller can stop; every other failure is a PullResult."""
    target = target_path(entry, models_dir)
    res = PullResult(name=entry.name, status="failed", path=str(target))
    if not entry.repo:
        res.status = "no-source"
        res.message = (f"{entry.name} has no public download source in the catalog ({entry.source}). "
                       + (entry.note or "Obtain the file yourself")
                       + f" Place it at {target}.")
        return res
    if target.exists():
        st = check_file(entry, models_dir, verify=verify, progress=progress, token=token)
        for w in st.warnings:
            _err(w)
        if st.status == "present":
            res.status = "present"
            res.message = (f"{entry.name}: already present ({fmt_size(st.size)}, "
                           + ("sha256 verified" if verify else "size checked; --verify re-hashes it") + ")")
        else:
            res.message = st.message
        return res

    endpoint = hub_endpoint()
    from huggingface_hub import constants
    from huggingface_hub.utils import build_hf_headers

    timeout = timeout if timeout is not None else float(constants.HF_HUB_DOWNLOAD_TIMEOUT)
    headers = build_hf_headers(token=token)
    try:
        remote = _remote(entry, endpoint, headers, timeout=float(constants.HF_HUB_ETAG_TIMEOUT))
    except HubError as e:
        if e.network:
            raise
        res.message = str(e)
        return res

    # -- expected size
    warnings = []
    if entry.size_exact:
        expected_size = entry.size
        if remote.size is not None and remote.size != entry.size:
            res.message = (f"{entry.name}: the hub serves {remote.size} bytes but the catalog ({entry.source}) says "
                           f"exactly {entry.size}. Nothing was downloaded. The catalog entry is out of date, or the "
                           f"file changed on the hub: pin `revision` or fix `size`/`sha256` in the catalog.")
            return res
    else:
        expected_size = remote.size
        if remote.size is not None and entry.size and abs(remote.size - entry.size) > SIZE_WARN_FRACTION * entry.size:
            warnings.append(f"warning: {entry.name}: the hub reports {fmt_size(remote.size)} ({remote.size} bytes), "
                            f"the catalog's approximate figure is {fmt_size(entry.size)}; using the hub's size")
    for w in warnings:
        _err(w)

    # -- expected hash
    kind, expected_hash, hash_source = _expected_hash(entry, remote)
    if entry.sha256 and remote.etag and _HEX64.match(remote.etag) and remote.etag != entry.sha256:
        res.message = (f"{entry.name}: the hub's file has sha256 {remote.etag} (LFS etag) but the catalog "
                       f"({entry.source}) expects {entry.sha256}. Nothing was downloaded. The file changed on the hub "
                       f"or the catalog entry is wrong: pin `revision` or fix `sha256` in the catalog.")
        return res
    if kind == "git" and expected_size is None:
        kind = ""
    if not kind:
        _err(f"warning: {entry.name}: no checksum is known (the catalog has no sha256 and the hub's etag "
             f"{remote.etag!r} is not a sha256); only the size will be checked")

    # -- staging
    part, sidecar = staging_paths(entry, models_dir)
    state = {"repo": entry.repo, "path": entry.path, "revision": entry.revision, "commit": remote.commit,
             "etag": remote.etag, "size": expected_size}
    lockfile = part.parent / (target.name + ".lock")
    try:
        part.parent.mkdir(parents=True, exist_ok=True)
        lock = _lock(lockfile)
    except HubError as e:
        res.message = str(e)
        return res
    except OSError as e:
        if e.errno not in _NO_ROOM:
            raise
        res.message = _no_room_message(entry, part, target, expected_size, e)
        return res
    try:
        offset = 0
        if part.exists():
            try:
                old = json.loads(sidecar.read_text())
            except (OSError, ValueError):
                old = None
            offset = part.stat().st_size
            same = (old is not None and old.get("etag") == remote.etag and old.get("size") == expected_size
                    and expected_size is not None and offset <= expected_size)
            if not same:
                _info(f"  {entry.name}: discarding a partial download of another version of the file ({offset} bytes)")
                part.unlink()
                offset = 0
        if offset == 0:
            part.write_bytes(b"")
        sidecar.write_text(json.dumps(state, indent=1))
        free = shutil.disk_usage(part.parent).free
        if expected_size is not None and expected_size - offset > free:
            res.message = (f"{entry.name}: not enough disk space in {part.parent} ({fmt_size(free)} free, "
                           f"{fmt_size(expected_size - offset)} needed). Nothing was written under the final name. "
                           f"Free at least {fmt_size(expected_size - offset - free)} on that disk (or pass "
                           f"--models-dir on another one) and run the same `lockn-gen models pull` again"
                           + (f"; it resumes from the {fmt_size(offset)} kept in {part}." if offset else "."))
            return res

        hasher = _Hasher(expected_size if kind == "git" else None)
        if offset:
            _info(f"resuming {entry.name} from {fmt_size(offset)} of {fmt_size(expected_size)} ({remote.url})")
            hasher.feed_file(part, limit=offset, desc=f"re-hashing partial {entry.name}" if offset > 256 * CHUNK else "",
                             progress=progress)
        else:
            _info(f"downloading {entry.name} ({fmt_size(expected_size)}) from {remote.url}")
        res.resumed_from = offset

        try:
            res.bytes_downloaded = _stream(remote, entry, part, hasher, expected_size, headers, timeout,
                                           retries, retry_wait, progress)
        except _Interrupted as e:
            have = part.stat().st_size
            res.message = (f"{entry.name}: the download was interrupted ({e}). Nothing was written under the final "
                           f"name; the {fmt_size(have)} received so far are kept in {part} and the next "
                           f"`lockn-gen models pull` continues from there.")
            return res
        except HubError as e:
            _cleanup_stage(part, sidecar)
            res.message = str(e)
            return res
        except KeyboardInterrupt:
            _err(f"\ninterrupted: {entry.name} is not complete; the partial file {part} is kept and the next pull "
                 f"resumes it")
            raise
        except Exception as e:  # noqa: BLE001 - HTTP errors mid-download (e.g. 403 from the CDN)
            if isinstance(e, OSError) and e.errno in _NO_ROOM:   # full disk, quota, file-size limit
                res.message = _no_room_message(entry, part, target, expected_size, e)
                return res
            err = _explain(e, entry, remote.url, endpoint)
            res.message = str(err) + f" (A partial download, if any, is kept in {part}.)"
            if err.network:
                raise HubError(res.message, network=True) from None
            return res

        # -- verify
        size = part.stat().st_size
        if expected_size is not None and size != expected_size:
            _cleanup_stage(part, sidecar)
            res.message = (f"{entry.name}: REJECTED, size {size} bytes, expected {expected_size}; the staged file was "
                           f"deleted and nothing was written under the final name. Run the pull again.")
            return res
        actual = hasher.sha256.hexdigest()
        res.sha256 = actual
        if kind == "sha256" and actual != expected_hash:
            _cleanup_stage(part, sidecar)
            res.message = (f"{entry.name}: REJECTED, sha256 mismatch: expected {expected_hash} ({hash_source}), "
                           f"got {actual}. The staged file was deleted and nothing was written under the final name. "
                           f"Run the pull again; if it repeats, the catalog entry or the mirror (HF_ENDPOINT) is wrong.")
            return res
        if kind == "git" and hasher.git.hexdigest() != expected_hash:
            _cleanup_stage(part, sidecar)
            res.message = (f"{entry.name}: REJECTED, git blob id mismatch: expected {expected_hash} ({hash_source}), "
                           f"got {hasher.git.hexdigest()}. The staged file was deleted; nothing was written under the "
                           f"final name.")
            return res
        with open(part, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(part, target)
        _cleanup_stage(sidecar)
        res.status = "downloaded"
        res.hash_source = hash_source
        how = {"sha256": f"sha256 {actual} verified against the {hash_source}",
               "git": f"verified against the {hash_source}; sha256 {actual}"}.get(kind, f"size only; sha256 {actual}")
        res.message = f"{entry.name}: {fmt_size(size)} -> {target} ({how})"
        return res
    except OSError as e:
        if e.errno not in _NO_ROOM:   # staging files or the final fsync on a full disk
            raise
        res.message = _no_room_message(entry, part, target, expected_size, e)
        return res
    finally:
        lock.close()
        _cleanup_stage(lockfile)  # removes the staging folder too once it is empty


# ---- many files -------------------------------------------------------------------------------
def pull_files(catalog: Catalog, names: Iterable[str], models_dir: os.PathLike | str | None = None, *,
               verify: bool = False, retries: int = 5, retry_wait: float = 1.0, progress: bool = True,
               token: str | bool | None = None, timeout: float | None = None) -> list[PullResult]:
    """Download the catalog files ``names`` (skipping complete ones). One result per file, in order.

    Stops at the first "hub unreachable" failure (the rest are marked ``skipped``).
    """
    return pull_entries(resolve_files(catalog, files=names), models_dir, verify=verify, retries=retries,
                        retry_wait=retry_wait, progress=progress, token=token, timeout=timeout)


def pull_entries(entries: list[FileEntry], models_dir: os.PathLike | str | None = None, *, verify: bool = False,
                 retries: int = 5, retry_wait: float = 1.0, progress: bool = True, token: str | bool | None = None,
                 timeout: float | None = None) -> list[PullResult]:
    """pull_files for entries that need not be in a catalog (the files of a whole repository: repo_pull)."""
    models_dir = Path(models_dir) if models_dir is not None else default_models_dir()
    results: list[PullResult] = []
    for i, entry in enumerate(entries):
        if not models_dir.is_dir():
            results.append(PullResult(entry.name, "failed", str(target_path(entry, models_dir)),
                                      f"The models folder {models_dir} does not exist: pass --models-dir, or set "
                                      f"COMFYUI_PATH to your ComfyUI folder. Nothing was written."))
            continue
        try:
            results.append(pull_file(entry, models_dir, verify=verify, retries=retries, retry_wait=retry_wait,
                                     progress=progress, token=token, timeout=timeout))
        except HubError as e:
            results.append(PullResult(entry.name, "failed", str(target_path(entry, models_dir)), str(e)))
            for rest in entries[i + 1:]:
                results.append(PullResult(rest.name, "skipped", str(target_path(rest, models_dir)),
                                          f"{rest.name}: skipped (the hub is unreachable)"))
            break
    return results


def check_file(entry: FileEntry, models_dir: os.PathLike | str, *, verify: bool = False, progress: bool = False,
               token: str | bool | None = None) -> FileStatus:
    """Is the file there with the right size (and, with ``verify``, the right sha256)?"""
    path = target_path(entry, models_dir)
    st = FileStatus(entry=entry, path=path, status="missing")
    if not path.is_file():
        if not entry.repo:
            st.status = "no-source"
            st.message = f"{entry.name}: missing, and no public source is known. {entry.note}".strip()
        else:
            st.message = f"{entry.name}: missing ({path})"
        return st
    st.size = path.stat().st_size
    if entry.size_exact and st.size != entry.size:
        st.status = "wrong-size"
        st.message = (f"{entry.name}: {path} is {st.size} bytes, the catalog says exactly {entry.size}. It is truncated "
                      f"or another version: move it away and pull again.")
        return st
    if not entry.size_exact and entry.size and abs(st.size - entry.size) > SIZE_WARN_FRACTION * entry.size:
        st.warnings.append(f"warning: {entry.name}: {fmt_size(st.size)} on disk, the catalog's approximate figure is "
                           f"{fmt_size(entry.size)} (use --verify to check it against the hub)")
    st.status = "present"
    if verify:
        remote = None
        if not entry.sha256 and entry.repo:
            from huggingface_hub import constants
            from huggingface_hub.utils import build_hf_headers
            try:
                remote = _remote(entry, hub_endpoint(), build_hf_headers(token=token),
                                 timeout=float(constants.HF_HUB_ETAG_TIMEOUT))
            except HubError as e:
                st.status = "unverified"
                st.message = f"{entry.name}: cannot verify (the catalog has no sha256 and the hub lookup failed): {e}"
                return st
            if remote.size is not None and remote.size != st.size:
                st.status = "wrong-size"
                st.message = f"{entry.name}: {path} is {st.size} bytes, the hub serves {remote.size}: move it away and pull again."
                return st
        kind, expected, source = _expected_hash(entry, remote)
        if not kind:
            st.status = "unverified"
            st.message = f"{entry.name}: no sha256 is known for it (catalog or hub); only its size was checked"
            return st
        h = _Hasher(st.size if kind == "git" else None)
        h.feed_file(path, desc=f"sha256 {entry.name}", progress=progress)
        actual = h.sha256.hexdigest() if kind == "sha256" else h.git.hexdigest()
        if actual != expected:
            st.status = "corrupt"
            st.message = (f"{entry.name}: {path} does not match: expected {expected} ({source}), got {actual}. "
                          f"Delete it and pull again.")
    return st


def check_files(catalog: Catalog, names: Iterable[str], models_dir: os.PathLike | str | None = None, *,
                verify: bool = False, progress: bool = False) -> list[FileStatus]:
    models_dir = Path(models_dir) if models_dir is not None else default_models_dir()
    return [check_file(e, models_dir, verify=verify, progress=progress) for e in resolve_files(catalog, files=names)]


# ---- CLI -----------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--models-dir", metavar="DIR",
                        help="ComfyUI models folder (default: $COMFYUI_PATH/models, COMFYUI_PATH defaults to ~/comfy/ComfyUI)")
    common.add_argument("--catalog", metavar="FILE", action="append", default=[],
                        help="a user catalog TOML to add (repeatable; LOCKN_GEN_CATALOG is read too)")
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION")
    sub.required = True
    p = sub.add_parser("list", parents=[common], help="presets with their total size and which files are present",
                       description="Presets with their total size and, per file, whether it is in the models folder.")
    p.add_argument("--family", help="only this family (flux2, wan22, ltx2, ace15, ...)")
    p = sub.add_parser("check", parents=[common], help="which files of the presets are present/missing/wrong-size (exit 1 if any is missing)",
                       description="Check the files of presets (all presets when none is named). Exit 1 if any is missing or wrong.")
    p.add_argument("presets", nargs="*", metavar="PRESET")
    p.add_argument("--file", dest="files", action="append", default=[], metavar="NAME", help="check this catalog file too")
    p.add_argument("--include-optional", action="store_true", help="also check the presets' optional files")
    p.add_argument("--verify", action="store_true", help="re-hash present files (sha256 from the catalog, else the hub)")
    p = sub.add_parser("pull", parents=[common], help="download the files of presets (resumable, verified)",
                       description="Download the files of presets and/or single files into the models folder. "
                                   "Downloads resume where an interrupted one stopped and are verified (size, sha256) "
                                   "before they get their final name. HF_TOKEN is used for gated repos; HF_ENDPOINT "
                                   "selects a mirror.")
    p.add_argument("presets", nargs="*", metavar="PRESET")
    p.add_argument("--file", dest="files", action="append", default=[], metavar="NAME", help="a catalog file to download (repeatable)")
    p.add_argument("--include-optional", action="store_true", help="also download the presets' optional files")
    p.add_argument("--verify", action="store_true", help="re-hash files that are already present")
    p.add_argument("--retries", type=int, default=5, help="reconnects after a dropped connection, within one run (default 5)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    try:
        cat = catalog_mod.load(extra_paths=args.catalog)
    except CatalogError as e:
        _err(f"error: {e}")
        return 2
    models_dir = Path(args.models_dir).expanduser() if args.models_dir else default_models_dir()
    try:
        if args.models_command == "list":
            return _cmd_list(cat, models_dir, args.family)
        if args.models_command == "check":
            return _cmd_check(cat, models_dir, args)
        return _cmd_pull(cat, models_dir, args)
    except KeyError as e:
        _err(f"error: {e.args[0] if e.args else e}")
        return 2


def _cmd_list(cat: Catalog, models_dir: Path, family: str | None) -> int:
    if family and family not in cat.families:
        _err(f"error: {catalog_mod.not_offered(family) or f'unknown family {family!r}'}; known: {', '.join(cat.families)}")
        return 2
    _info(f"models folder: {models_dir}" + ("" if models_dir.is_dir() else "  (does not exist)"))
    for fam in cat.families.values():
        if family and fam.id != family:
            continue
        presets = cat.presets_for(fam.id)
        if not presets:
            continue
        _info(f"\n{fam.display_name} ({fam.id}, {fam.mode})")
        for p in presets:
            files = cat.preset_files(p.id, include_optional=True)
            required = set(p.components.values())
            present = sum(1 for n in required if target_path(cat.files[n], models_dir).is_file())
            _info(f"  {p.id:<28} {fmt_size(cat.preset_bytes(p.id)):>9}  {present}/{len(required)} files present  {p.label}")
            seen = set()
            for role, f in files.items():
                if f.name in seen:
                    continue
                seen.add(f.name)
                there = target_path(f, models_dir).is_file()
                mark = "present" if there else ("missing, no public source" if not f.repo else "missing")
                opt = " (optional)" if f.name not in required else ""
                _info(f"      [{mark}] {role:<16} {f.folder}/{f.name}  {fmt_size(f.size)}{opt}")
        for lp in sorted((x for x in cat.loras.values() if x.family == fam.id), key=lambda x: x.id):
            files = cat.lora_files(lp.id)
            present = sum(1 for f in files.values() if target_path(f, models_dir).is_file())
            size = sum(f.size for f in files.values())
            _info(f"  {lp.id:<28} {fmt_size(size):>9}  {present}/{len(files)} files present  LoRA: {lp.label}")
            for slot, f in files.items():
                mark = "present" if target_path(f, models_dir).is_file() else ("missing, no public source" if not f.repo else "missing")
                _info(f"      [{mark}] {slot:<16} {f.folder}/{f.name}  {fmt_size(f.size)}")
    return 0


def _cmd_check(cat: Catalog, models_dir: Path, args) -> int:
    presets = args.presets or ([] if args.files else sorted(cat.presets) + sorted(cat.loras))
    names = [f.name for f in resolve_files(cat, presets, args.files, args.include_optional)]
    _info(f"models folder: {models_dir}")
    statuses = check_files(cat, names, models_dir, verify=args.verify, progress=args.verify)
    for st in statuses:
        line = f"  [{st.status}] {st.entry.folder}/{st.entry.name}  {fmt_size(st.size if st.size is not None else st.entry.size)}"
        _info(line)
        if st.message and st.status != "missing":
            _info(f"      {st.message}")
        for w in st.warnings:
            _info(f"      {w}")
    bad = [s for s in statuses if not s.ok]
    if presets:
        for pid in presets:
            missing = [f.name for f in cat.preset_files(pid, args.include_optional).values()
                       if any(s.entry.name == f.name and not s.ok for s in statuses)]
            _info(f"{pid}: {'complete' if not missing else 'missing ' + ', '.join(dict.fromkeys(missing))}")
    if bad:
        pullable = [s.entry.name for s in bad if s.entry.repo and s.status == "missing"]
        if pullable:
            _info(f"to download the missing files: "
                  f"{download_command(pullable, models_dir if args.models_dir else None, args.catalog)}")
        return 1
    return 0


def _cmd_pull(cat: Catalog, models_dir: Path, args) -> int:
    if not args.presets and not args.files:
        _err("error: name at least one preset or --file NAME (see `lockn-gen models list`)")
        return 2
    from . import repo_pull
    sets = [p for p in args.presets if p.lower() in repo_pull.SETS]        # whole repositories (HeartMuLa)
    names = [f.name for f in resolve_files(cat, [p for p in args.presets if p not in sets], args.files,
                                           args.include_optional)]
    _info(f"models folder: {models_dir}")
    results = pull_files(cat, names, models_dir, verify=args.verify, retries=max(0, args.retries),
                         progress=not args.no_progress)
    for name in dict.fromkeys(p.lower() for p in sets):
        results += repo_pull.pull_set(name, models_dir, verify=args.verify, retries=max(0, args.retries),
                                      progress=not args.no_progress)
    for r in results:
        if r.ok:
            _info(f"[{r.status}] {r.message}")
        else:
            _err(f"[{r.status}] {r.message}")
    counts = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    _info("summary: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return 0 if all(r.ok for r in results) else 1
