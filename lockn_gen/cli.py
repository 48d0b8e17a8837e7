"""`lockn-gen` command line: model downloads, the residency plan, and workflow submission.

Each sub-command lives in its own module with `add_arguments(parser)` and `main(args) -> int`;
this file only wires them up (imports are lazy so `lockn-gen --help` is instant).
"""
from __future__ import annotations

import argparse
import importlib
import sys

# sub-command -> (module, help)
COMMANDS = {
    "models": ("lockn_gen.hub", "list, check and download (pull) the catalog's model files"),
    "plan": ("lockn_gen.planner", "print what fits on the GPU, what swaps, and the presets to use"),
    "run": ("lockn_gen.client", "submit a workflow to ComfyUI servers, follow it, download outputs"),
    "train": ("lockn_gen.train_cli", "train a LoRA on a ComfyUI server with the shipped training workflow"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the chosen sub-command's module is imported (all of them for --help)."""
    parser = argparse.ArgumentParser(prog="lockn-gen", description="LockN Gen command line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if command == name:
            importlib.import_module(module).add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    mod = importlib.import_module(args._module)
    try:
        return int(mod.main(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
