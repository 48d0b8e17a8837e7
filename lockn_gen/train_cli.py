"""`lockn-gen train`: train a LoRA on a ComfyUI server with the shipped training workflow, through its API.

    lockn-gen train --family flux2 --data lockn_train_pictures --name my-style [--steps 500] [--rank 16] [--lr 1e-4]
    lockn-gen train --family ace15 --data ~/music/my-band --name my-band          # a local folder: uploaded first

The workflow is the shipped one (workflows/train_FAMILY_lora.json, generated from lockn_gen.training_workflows),
with its settings changed by title as `lockn-gen run --set` does. --data names a folder in the server's input
folder; a local folder is uploaded first into input/<its name>/ (its media files and .txt captions). Progress
shows each training step with its loss; at the end the saved LoRA's name (what the LoRA nodes list) and its
path on the server. Ctrl-C interrupts the run on the server: ComfyUI's trainer saves only at its end, so an
interrupted run leaves no LoRA (and never a partial file under the name).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import training as T
from .client import (DEFAULT_SERVER, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, Client, ClientError,
                     WorkflowError, run_workflow)

WORKFLOW = {"flux2": "train_flux2_lora", "wan22": "train_wan22_lora", "ace15": "train_ace15_lora"}
DATA_NODE = {"flux2": "Training pictures", "wan22": "Training pictures", "ace15": "Training audio"}
TRAIN_NODE, BASE_NODE = "Train LoRA", "Base model"


def sets_for(args) -> list[str]:
    """The --set lines that turn the shipped workflow into this run."""
    data = DATA_NODE[args.family]
    out = [f"{data}.folder={args.data_folder}", f"{TRAIN_NODE}.lora_name={args.name}"]
    for key, value in (("steps", args.steps), ("rank", args.rank), ("learning_rate", args.lr), ("seed", args.seed)):
        if value is not None:
            out.append(f"{TRAIN_NODE}.{key}={value}")
    if args.overwrite:
        out.append(f"{TRAIN_NODE}.overwrite=true")
    if args.caption is not None:
        out += [f"{data}.captions={T.CAPTION_FOR_ALL}", f"{data}.caption={args.caption}"]
    if args.preset:
        out.append(f"{BASE_NODE}.preset={args.preset}")
    return out + list(args.sets)


def upload_folder(client: Client, folder: Path, family: str, say) -> str:
    """A local dataset folder's media and caption files, uploaded into the server's input/<folder name>/."""
    media = T.media_extensions(T.FAMILIES[family][1] if family != "wan22" else "image")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (*media, T.CAPTION_EXTENSION))
    if not any(p.suffix.lower() in media for p in files):
        raise WorkflowError([f"--data {folder}: no {' '.join(media)} files in this folder"])
    for p in files:
        client.upload(p, subfolder=folder.name)
    say(f"uploaded {len(files)} files of {folder} into the server's input/{folder.name}/")
    return folder.name


def add_arguments(p: argparse.ArgumentParser):
    p.add_argument("--family", required=True, choices=sorted(WORKFLOW), help="which base family to train")
    p.add_argument("--data", required=True, metavar="FOLDER",
                   help="the dataset: a folder in the server's input folder, or a local folder (uploaded first). Each "
                        "file needs its caption in a .txt of the same name, unless --caption gives one for all")
    p.add_argument("--name", required=True, help="the LoRA's name: saved as models/loras/lockn/NAME.safetensors")
    p.add_argument("--steps", type=int, help="training steps (the workflow's: 500)")
    p.add_argument("--rank", type=int, help="LoRA rank (16)")
    p.add_argument("--lr", type=float, help="learning rate (1e-4)")
    p.add_argument("--seed", type=int, help="the timesteps' and noise's seed (0)")
    p.add_argument("--caption", help="one caption for every file (instead of a .txt beside each)")
    p.add_argument("--preset", help="the base's LockN preset (default: the workflow's, e.g. flux2-klein-4b)")
    p.add_argument("--overwrite", action="store_true", help="replace a LoRA of the same name")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="TITLE.INPUT=VALUE",
                   help="any other setting of the workflow, as lockn-gen run --set")
    p.add_argument("--server", default=DEFAULT_SERVER, metavar="URL", help=f"the ComfyUI server (default {DEFAULT_SERVER})")
    p.add_argument("--timeout", type=float, metavar="S", help="give up on (and cancel) the run after S seconds")


def main(args: argparse.Namespace) -> int:
    from . import chains
    say = lambda s: print(s, file=sys.stderr, flush=True)       # noqa: E731
    local = Path(args.data).expanduser()
    try:
        T.lora_file_name(args.name)
    except T.TrainingProblem as e:
        say(f"error: {e}")
        return EXIT_INVALID
    state = {"every": 1, "saved": None}

    def on_progress(_label, p):
        if p.kind != "train":
            return
        if p.path:
            state["saved"] = p.path
            return
        state["every"] = max(1, p.max // 50)
        if p.value == 1 or p.value == p.max or p.value % state["every"] == 0:
            loss = f"  loss {p.loss:.4f}" if p.loss is not None else ""
            print(f"step {p.value}/{p.max}{loss}", flush=True)
    try:
        if local.is_dir():
            client = Client(args.server)
            try:
                args.data_folder = upload_folder(client, local, args.family, say)
            finally:
                client.close()
        else:
            args.data_folder = args.data
        # the workflow saves no output file (the LoRA goes to models/loras; the loss plot is a preview)
        results = run_workflow(chains.prompt(WORKFLOW[args.family]), sets_for(args), [args.server], "out",
                               timeout=args.timeout, on_progress=on_progress, progress="off", log=say)
    except WorkflowError as e:
        say("error: nothing was queued:")
        for m in e.errors:
            say(f"  - {m}")
        return EXIT_INVALID
    except ClientError as e:
        say(f"error: {e}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        say("interrupted: the training was stopped on the server; ComfyUI's trainer saves only at its end, so no "
            "LoRA was written (nothing under the name)")
        return EXIT_INTERRUPTED
    r = results[0]
    if not r.ok:
        print(f"training FAILED on {r.server}: {r.error}")
        return EXIT_FAILED
    rel = T.lora_file_name(args.name)
    print(f"LoRA: {rel} (in the LoRA nodes' lists)" + (f"\n  on the server: {state['saved']}" if state["saved"] else ""))
    return EXIT_OK
