"""Simulated time for the child processes of offline replay: a sandbox job or a gate runs for real,
its answer is released a stated number of *simulated* seconds after it started (`SimTimed`), and
what differs between two runs of the same replay (temporary paths, wall-clock job names) is
removed from the decisions (`Sanitizer`)."""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Callable

_JOB_ID = re.compile(r"\b\d{8}-\d{6}-\d+-(\d+)\b")
_GATE_DIR = re.compile(r"gate-\d{8}-\d{6}-\d+-(\d+)")


class Sanitizer:
    """Removes what differs between two runs of the same replay: temporary paths, job and gate
    directory names (which carry wall-clock times and process ids)."""

    def __init__(self, work: Path) -> None:
        self.work = str(work)
        self.real = str(work.resolve())

    def __call__(self, x: Any) -> Any:
        if isinstance(x, dict):
            return {k: self(v) for k, v in x.items()}
        if isinstance(x, list):
            return [self(v) for v in x]
        if isinstance(x, str):
            x = x.replace(self.real, "<work>").replace(self.work, "<work>")
            x = _GATE_DIR.sub(r"gate-\1", x)
            return _JOB_ID.sub(r"job-\1", x)
        return x


class SimTimed:
    """A runner or gate whose answer the replay holds back until `latency_s` simulated seconds
    after `start`. The first poll blocks (in real time, the simulated clock standing still) until
    the wrapped process answered: the answer and the time it is released at are then independent
    of this machine's speed."""

    def __init__(self, inner, latency_s: float, clock: Callable[[], float],
                 on_answer: Callable[[Any, Any], None], wait: Callable[[str], None] | None = None,
                 what: str = "job") -> None:
        self.inner, self.latency_s, self.clock = inner, float(latency_s), clock
        self.on_answer, self.wait, self.what = on_answer, wait, what
        self._started: float | None = None
        self._req: Any = None
        self._answer: Any = None
        self.wall_s = 0.0
        self.n = 0

    @property
    def status(self) -> str:
        return getattr(self.inner, "status", "")

    def start(self, request) -> None:
        self.inner.start(request)
        self._started = self.clock()
        self._req = request
        self._answer = None
        self.n += 1

    def poll(self):
        if self._started is None:
            return None
        if self._answer is None:
            t0 = time.monotonic()
            while True:
                ans = self.inner.poll()
                if ans is not None:
                    break
                if self.wait is not None:
                    self.wait(f"{self.what} {self.n} running ({time.monotonic() - t0:.0f} s)")
                time.sleep(0.05)
            self.wall_s += time.monotonic() - t0
            self._answer = ans
        if self.clock() < self._started + self.latency_s - 1e-9:
            return None
        ans, req = self._answer, self._req
        self._started, self._answer, self._req = None, None, None
        self.on_answer(req, ans)
        return ans

    def cancel(self) -> None:
        self.inner.cancel()
        self._started, self._answer, self._req = None, None, None

    @property
    def busy(self) -> bool:
        return self._started is not None


