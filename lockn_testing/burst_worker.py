"""A worker for tests/test_workers.py: answers each command with several events in ONE write, as a busy worker's
events pile up in the pipe while the engine is slow to read them (lockn_gen/workers.py)."""
from __future__ import annotations

import json
import os
import sys


def main(fd: int) -> int:
    for raw in sys.stdin:
        cmd = json.loads(raw)
        events = [{"event": "step", "step": i + 1, "steps": cmd["steps"]} for i in range(cmd["steps"])]
        events += [{"event": "log", "text": "nearly there"}, {"event": "done", "n": cmd["n"]}]
        os.write(fd, "".join(json.dumps(e) + "\n" for e in events).encode())
        if cmd.get("then") == "exit":
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
