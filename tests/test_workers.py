"""The worker-process plumbing (lockn_gen/workers.py) that the sd.cpp engine and HeartMuLa share: plain logic, a real
subprocess, no ComfyUI."""
from __future__ import annotations

import sys
import time

import pytest

from lockn_gen.workers import Interrupted, Worker


class Burst(Worker):
    module = "lockn_testing.burst_worker"
    what_it_is = "the burst worker"


def test_events_that_arrive_together_are_each_read_at_once():
    """A worker's events can reach the pipe in one piece (a slow reader, a busy machine): every one is handled and
    the answer returned at once. A buffered readline after select() took them all and then waited on the empty pipe
    for an answer it already held: a HeartMuLa song that hung until its timeout at the end of a loaded suite."""
    w = Burst(sys.executable)
    w.spawn()
    try:
        for n in range(3):                                       # the same worker, command after command
            steps, deadline = [], time.time() + 10
            ev = w.run({"steps": 3, "n": n}, "done", should_stop=lambda: time.time() > deadline,
                       on_step=lambda s, t: steps.append((s, t)))
            assert ev == {"event": "done", "n": n} and steps == [(1, 3), (2, 3), (3, 3)]
            assert w.said[-1] == "nearly there"
        # its last answer is read even when the worker ends right after writing it
        assert w.run({"steps": 1, "n": 9, "then": "exit"}, "done", should_stop=lambda: time.time() > deadline)["n"] == 9
        with pytest.raises(Exception, match="exit code 0"):       # and then its end is said, not waited on
            w.run({"steps": 1, "n": 10}, "done", should_stop=lambda: time.time() > deadline)
    except Interrupted:
        pytest.fail("the answer was in the pipe, the engine waited for it until the deadline")
    finally:
        w.close()
