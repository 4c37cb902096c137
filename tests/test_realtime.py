"""adapters.realtime: SCHED_FIFO for the node's threads, never for what they start.

Each case runs in a child interpreter: switching the pytest process itself to SCHED_FIFO would
change how every later test is scheduled."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.realtime import current_scheduling, enter_realtime

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import json, os, subprocess, sys, threading
from adapters.realtime import current_scheduling, enter_realtime
if sys.argv[1] == "refuse":                 # no rtprio limit, no CAP_SYS_NICE
    import resource
    resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))
    if os.getuid() == 0:
        os.setgid(65534); os.setuid(65534)  # leaving uid 0 drops every capability
before = threading.Event(); done = threading.Event(); tids = {}
def worker():                               # a thread that exists before (as Fast DDS's do)
    tids["worker"] = threading.get_native_id(); before.set(); done.wait(30)
threading.Thread(target=worker, daemon=True).start(); before.wait(10)
out = {}
def executor():                             # the thread that calls enter_realtime and spins
    out["result"] = enter_realtime(7).to_dict()
    out["executor"] = current_scheduling().describe()
    out["worker"] = current_scheduling(tids["worker"]).describe()
    out["main"] = current_scheduling(threading.main_thread().native_id).describe()
    later = {}
    t = threading.Thread(target=lambda: later.update(s=current_scheduling().describe())); t.start(); t.join()
    out["thread_started_later"] = later["s"]
    if sys.argv[1] == "refuse":             # (as uid nobody this interpreter may not be runnable)
        return
    child = "from adapters.realtime import current_scheduling; print(current_scheduling().describe())"
    out["child_process"] = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                                          check=True).stdout.strip()
t = threading.Thread(target=executor); t.start(); t.join()
done.set()
print(json.dumps(out))
"""


def probe(kind: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", PROBE, kind], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def fifo_allowed() -> bool:
    r = subprocess.run([sys.executable, "-c", "import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(7))"],
                       capture_output=True)
    return r.returncode == 0


@pytest.mark.skipif(not fifo_allowed(), reason="this machine refuses SCHED_FIFO (no CAP_SYS_NICE, ulimit -r 0); "
                                               "the refusal is tested below")
def test_every_thread_goes_fifo_and_what_the_executor_starts_does_not():
    out = probe("grant")
    assert out["result"]["granted"] and out["result"]["requested"] == 7 and out["result"]["error"] == ""
    assert out["result"]["threads"] >= 3                       # executor, worker, main
    assert out["executor"] == out["worker"] == out["main"] == "SCHED_FIFO 7"
    # the sandbox and gate jobs are child processes of the executor thread: normal scheduler
    assert out["child_process"] == "SCHED_OTHER"
    assert out["thread_started_later"] == "SCHED_OTHER"


def test_a_refused_request_changes_nothing_and_says_why():
    out = probe("refuse")
    res = out["result"]
    assert not res["granted"] and res["requested"] == 7 and res["threads"] == 0
    assert "refused" in res["error"] and "CAP_SYS_NICE" in res["error"]
    assert out["executor"] == out["worker"] == out["main"] == out["thread_started_later"] == "SCHED_OTHER"


def test_priority_zero_is_a_no_op_and_out_of_range_is_an_error():
    assert enter_realtime(0) == current_scheduling()
    for bad in (-1, 100, 1.5, "50"):
        with pytest.raises(ValueError, match="0 \\(off\\) or 1..99"):
            enter_realtime(bad)
