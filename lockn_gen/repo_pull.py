"""Whole Hugging Face repositories into the models folder (`lockn-gen models pull heartmula-3b`).

Most of the pack's files are catalog entries, one file each. HeartMuLa's are three whole repositories laid out as
heartlib's README downloads them (`hf download REPO --local-dir DIR`, lockn_gen/heartmula.py). This lists each
repository's files on the hub (its tree API: paths and sizes) and downloads every one through lockn_gen.hub's own
machinery: resumed where an interrupted download stopped, verified (the listed size, the sha256 of the hub's LFS
etag) before it takes its final name, never a half-written file under the real name. Plain module: nothing from ComfyUI.
"""
from __future__ import annotations

import os
from pathlib import Path

from . import heartmula as hm
from . import hub
from .catalog import FileEntry

# what `models pull` takes as a whole set -> (repository, folder under the models folder), in download order
SETS = {pid: hm.PULL_TARGETS for pid in hm.PULL_IDS}
SKIP = (".gitattributes",)           # git's own bookkeeping: of no use in a models folder


def repo_entries(repo: str, folder: str, revision: str = "main", token: str | bool | None = None) -> list[FileEntry]:
    """The files of `repo` at `revision` as entries bound for <models>/<folder>/<their path in the repo>.
    HubError (network=True) when the hub cannot be reached or does not list the repository."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.hf_api import RepoFile
    endpoint = hub.hub_endpoint()
    try:
        items = list(HfApi(endpoint=endpoint).list_repo_tree(repo, recursive=True, revision=revision, token=token))
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        raise hub.HubError(f"{repo}: the hub ({endpoint}) did not list its files (HTTP {status}: "
                           f"{str(e).splitlines()[0]}). Check the name, HF_TOKEN for a gated repository, or HF_ENDPOINT.",
                           network=status is None) from None
    except OSError as e:
        raise hub.HubError(f"{repo}: the hub ({endpoint}) cannot be reached ({e}). Check the network or HF_ENDPOINT; "
                           f"run the command again to go on where it stopped.", network=True) from None
    out = []
    for it in items:
        if not isinstance(it, RepoFile) or it.path in SKIP:          # (folders are listed too)
            continue
        sub, _, name = it.path.rpartition("/")
        out.append(FileEntry(
            name=name, family="heartmula", kind="repo_file", repo=repo, path=it.path,
            folder="/".join(x for x in (folder, sub) if x), size=int(it.size),
            format=os.path.splitext(name)[1].lstrip(".") or "file", quant="",
            size_exact=True, confirmed=True, revision=revision,       # sha256: the hub's LFS etag, when fetched
            source=f"{repo} (the hub's file list)"))
    return out


def pull_set(set_id: str, models_dir: os.PathLike | str, *, verify: bool = False, retries: int = 5,
             retry_wait: float = 1.0, progress: bool = True, token: str | bool | None = None) -> list[hub.PullResult]:
    """Download every file of a set's repositories (SETS); one PullResult per file, or one failed result for a
    repository the hub would not list (the rest of the set is then skipped)."""
    results: list[hub.PullResult] = []
    targets = SETS[set_id]
    for i, (repo, folder) in enumerate(targets):
        where = str(Path(models_dir) / folder)
        if not Path(models_dir).is_dir():
            return results + [hub.PullResult(repo, "failed", where, f"The models folder {models_dir} does not exist: "
                                             f"pass --models-dir, or set COMFYUI_PATH to your ComfyUI folder. Nothing "
                                             f"was written.")]
        try:
            entries = repo_entries(repo, folder, token=token)
        except hub.HubError as e:
            results.append(hub.PullResult(repo, "failed", where, str(e)))
            results += [hub.PullResult(r, "skipped", str(Path(models_dir) / f), f"{r}: skipped (after {repo})")
                        for r, f in targets[i + 1:]]
            break
        results += hub.pull_entries(entries, models_dir, verify=verify, retries=retries, retry_wait=retry_wait,
                                    progress=progress, token=token)
        if any(r.status == "skipped" for r in results):
            break
    return results
