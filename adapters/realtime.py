"""Real-time scheduling for the control path: SCHED_FIFO for the threads that carry a joint state
to its command, the normal scheduler for everything they start.

Why: on a small machine the kernel's fair scheduler lets a busy neighbour (the sandbox job, even
at nice 10) delay the node's wake-ups by milliseconds. With the sandbox saturating the other core
of a 2-core machine the node's in->out p99 was 3.0 ms under SCHED_OTHER and 0.77 ms under
SCHED_FIFO 50 (`benchmarks/node_latency.py`). ros2_control's controller manager does the same
(its update thread asks for SCHED_FIFO, ``thread_priority`` 50).

`enter_realtime` is called by the thread that spins the executor, once the nodes exist: every
thread of the process (Fast DDS's receive and event threads, the executor, the waiting main
thread) gets SCHED_FIFO ``priority``. The calling thread also gets SCHED_RESET_ON_FORK, so that
what it starts later (sandbox and gate processes, helper threads) runs under the normal
scheduler: a CPU-bound child at FIFO priority would starve the control loop it is meant to help.

Refused (no CAP_SYS_NICE and ``ulimit -r`` below the priority, as in most containers): nothing
changes, and the returned `Scheduling` says why; the node reports it on /diagnostics and runs on.

Parameters
----------
priority
    SCHED_FIFO priority 1..99; 0 leaves the scheduling alone.

Example
-------
>>> enter_realtime(0).granted, enter_realtime(0).requested
(False, 0)
>>> current_scheduling().policy in POLICY_NAMES.values()
True
>>> enter_realtime(100)
Traceback (most recent call last):
ValueError: realtime priority must be 0 (off) or 1..99 (SCHED_FIFO), got 100

References
----------
sched(7): SCHED_FIFO, SCHED_RESET_ON_FORK. ros2_control controller manager, "thread_priority" and
realtime_tools ``configure_sched_fifo``.
"""
from __future__ import annotations

import os
import threading
from dataclasses import asdict, dataclass

POLICY_NAMES = {getattr(os, n): n for n in ("SCHED_OTHER", "SCHED_BATCH", "SCHED_IDLE", "SCHED_FIFO", "SCHED_RR")
                if hasattr(os, n)}
_RESET = getattr(os, "SCHED_RESET_ON_FORK", 0)


@dataclass(frozen=True)
class Scheduling:
    """How a thread is scheduled, and what was asked for."""
    policy: str                  # SCHED_OTHER, SCHED_FIFO, ...
    priority: int                # the real-time priority (0 for the normal policies)
    requested: int = 0           # the realtime_priority asked for (0: none)
    granted: bool = False        # the request was applied to every thread of the process
    threads: int = 0             # threads switched to SCHED_FIFO
    error: str = ""              # why a request was refused

    def describe(self) -> str:
        return self.policy + (f" {self.priority}" if self.priority else "")

    def to_dict(self) -> dict:
        return asdict(self)


def current_scheduling(tid: int = 0) -> Scheduling:
    """The policy of thread `tid` (a native thread id; 0: the calling thread)."""
    if not hasattr(os, "sched_getscheduler"):
        return Scheduling("unknown", 0)
    policy = os.sched_getscheduler(tid) & ~_RESET
    return Scheduling(POLICY_NAMES.get(policy, str(policy)), os.sched_getparam(tid).sched_priority)


def enter_thread_realtime(priority: int) -> Scheduling:
    """SCHED_FIFO `priority` with reset-on-fork for the calling thread alone (a control thread
    started after `enter_realtime`: threads are clones, so it was born under the normal scheduler)."""
    if not (isinstance(priority, int) and 0 <= priority <= 99):
        raise ValueError(f"realtime priority must be 0 (off) or 1..99 (SCHED_FIFO), got {priority}")
    now = current_scheduling()
    if priority == 0:
        return now
    if not (hasattr(os, "sched_setscheduler") and _RESET):
        return Scheduling(now.policy, now.priority, priority, error="SCHED_FIFO is not available on this OS")
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO | _RESET, os.sched_param(priority))
    except OSError as e:
        return Scheduling(now.policy, now.priority, priority,
                          error=f"SCHED_FIFO {priority} refused ({e.strerror}): needs CAP_SYS_NICE or an rtprio "
                                f"limit >= {priority} (ulimit -r, /etc/security/limits.conf)")
    return Scheduling("SCHED_FIFO", priority, priority, granted=True, threads=1)


def enter_realtime(priority: int) -> Scheduling:
    """SCHED_FIFO `priority` for every thread of this process, reset-on-fork for the caller."""
    mine = enter_thread_realtime(priority)
    if not mine.granted:
        return mine
    me, changed, failed = threading.get_native_id(), 1, []
    for tid in _thread_ids():
        if tid == me:
            continue
        try:
            os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(priority))
            changed += 1
        except ProcessLookupError:          # the thread ended meanwhile
            pass
        except OSError as e:
            failed.append(f"{tid}: {e.strerror}")
    got = current_scheduling()
    return Scheduling(got.policy, got.priority, priority, granted=not failed, threads=changed,
                      error=f"threads left as they were: {', '.join(failed)}" if failed else "")


def _thread_ids() -> list[int]:
    try:
        return sorted(int(t) for t in os.listdir("/proc/self/task"))
    except OSError:
        return [threading.get_native_id()]
