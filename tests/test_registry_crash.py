"""Crash safety: SIGKILL a process in the middle of promote/rollback, many times, at random points.

After every kill the registry must open, `verify()` must pass (audit chain, genome files, log vs
index), and the champion must be exactly the one before or the one after the operation that was in
flight: never none, never a third one, never a file that fails its hash.

How: this file doubles as a helper script. Run as `python tests/test_registry_crash.py`, it is a
"zygote" that imports everything once and then, per trial, forks a worker that loops over random
registry operations on a real registry directory. Before each operation the worker writes
`B <champion before> <champion after>` to the pipe, after the commit `D`. The test kills the worker
with SIGKILL a random 0-30 ms after it is ready (some trials: while it is still opening the
database), then checks the registry from its own process. Forking from a warm zygote keeps a
trial at a few ms instead of a fresh interpreter's ~150 ms, so >= 100 trials fit well inside 40 s.
"""
from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from safety.registry import Registry
from sim.genome import Genome
from sim.policy import PolicySpec

SPEC = PolicySpec(obs_dim=6, act_dim=2, hidden=(32,))
TRIALS = 120
TRIALS_PER_REGISTRY = 30
WORKER_MAX_S = 10.0

# (operation, weight) for the worker's random loop
OPS = (("promote", 0.30), ("gated", 0.10), ("stable", 0.20), ("rollback", 0.25),
       ("rollback_named", 0.05), ("reject", 0.10))


def _say(line: str) -> None:
    """One write(2) per line: atomic on a pipe, and already in the kernel if we die right after."""
    os.write(1, (line + "\n").encode())


def _genome(rng: np.random.Generator, parent: str | None) -> Genome:
    vec = rng.standard_normal(SPEC.num_params).astype(np.float32)
    return Genome(vector=vec, policy_spec=SPEC, kind="policy", parent_id=parent)


def _worker(root: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    names, weights = zip(*OPS)
    reg = Registry(root, actor=f"crash-worker-{seed}")
    _say("R")
    deadline = time.monotonic() + WORKER_MAX_S
    while time.monotonic() < deadline:
        champ = reg.champion_id()

        def step(after, fn, *args, **kw):
            _say(f"B {champ} {after}")
            out = fn(*args, **kw)
            _say("D")
            return out

        op = rng.choice(names, p=weights)
        if op == "promote":
            c = step(champ, reg.add, _genome(rng, champ))
            step(c, reg.promote, c, force=True, reason="crash test")
        elif op == "gated":
            c = step(champ, reg.add, _genome(rng, champ))
            step(champ, reg.set_status, c, "shadow")
            step(champ, reg.set_status, c, "canary")
            step(champ, reg.attach_gate_report, c, {"verdict": "PASS", "reasons": [], "scenarios": []})
            step(c, reg.promote, c, reason="gate passed")
        elif op == "stable":
            if not reg.show(champ).stable:
                step(champ, reg.mark_stable, champ, reason="watch period passed")
        elif op == "rollback":
            fb = reg.fallback_id()
            if fb is not None:
                assert step(fb, reg.rollback, reason="crash test") == fb
        elif op == "rollback_named":
            stables = [r.id for r in reg.list("stable")]
            if stables:
                target = stables[int(rng.integers(len(stables)))]
                step(target, reg.rollback, target, reason="crash test (named)")
        else:
            c = step(champ, reg.add, _genome(rng, champ))
            step(champ, reg.reject, c, reason="crash test")


def _zygote() -> None:
    """Per stdin line `go ROOT SEED`: fork a worker, report `P pid`, reap it, report `X pid status`."""
    for line in sys.stdin:
        _, root, seed = line.split()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _worker(Path(root), int(seed))
            except BaseException as e:  # a bug, not a kill: make the test fail loudly
                _say(f"E {type(e).__name__}: {e}".replace("\n", " "))
                code = 3
            os._exit(code)
        _say(f"P {pid}")
        _, status = os.waitpid(pid, 0)
        _say(f"X {pid} {status}")


# ---------------------------------------------------------------------------------------------- test

def _bootstrap(root: Path) -> str:
    with Registry.init(root, actor="test") as reg:
        gid = reg.add(_genome(np.random.default_rng(0), None))
        reg.promote(gid, force=True, reason="bootstrap")
        reg.mark_stable(gid, reason="bootstrap")
        return gid


class _Lines:
    """Read the zygote's stdout on a thread so every wait has a deadline."""

    def __init__(self, stream) -> None:
        self.q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for raw in stream:
            self.q.put(raw.decode().rstrip("\n"))
        self.q.put(None)

    def until(self, pred, timeout: float = 10.0) -> list[str]:
        """Lines up to and including the first one matching `pred`."""
        out, end = [], time.monotonic() + timeout
        while True:
            try:
                line = self.q.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no matching line within {timeout}s; lines so far: {out}") from None
            assert line is not None, f"zygote died; lines so far: {out}"
            out.append(line)
            if pred(line):
                return out


def _expected(lines: list[str], before: str) -> set[str]:
    """Champions allowed after the kill: the last committed one, plus the in-flight op's target."""
    current, pending = before, None
    for line in lines:
        if line.startswith("E "):
            raise AssertionError(f"worker failed before it was killed: {line}")
        if line.startswith("B "):
            _, a, b = line.split()
            assert a == current, f"worker saw champion {a}, expected {current}"
            pending = b
        elif line == "D":
            current, pending = pending, None
    return {current} if pending is None else {current, pending}


def test_sigkill_during_promote_and_rollback(tmp_path):
    rng = random.Random(1234)
    zygote = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              cwd=Path(__file__).resolve().parents[1], env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = _Lines(zygote.stdout)
    stats = {"mid_op": 0, "in_flight_committed": 0, "before_ready": 0, "ops": 0}
    t0 = time.monotonic()
    try:
        champion = None
        for trial in range(TRIALS):
            if trial % TRIALS_PER_REGISTRY == 0:
                root = tmp_path / f"reg{trial // TRIALS_PER_REGISTRY}"
                champion = _bootstrap(root)
            zygote.stdin.write(f"go {root} {trial + 1}\n".encode())
            zygote.stdin.flush()
            got = lines.until(lambda s: s.startswith("P "))
            pid = int(got[-1].split()[1])
            if rng.random() < 0.1:  # sometimes while it is still opening the database
                time.sleep(rng.uniform(0, 0.002))
                stats["before_ready"] += 1
            else:  # the worker's R may come before the zygote's P: both race to the pipe
                if "R" not in got:
                    got += lines.until(lambda s: s == "R" or s.startswith(("E ", "X ")))
                time.sleep(rng.uniform(0, 0.030))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # it already ended on its own: the status check below says why
            got += lines.until(lambda s: s.startswith(f"X {pid} "))
            status = int(got[-1].split()[2])
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, got[-8:]

            allowed = _expected(got, champion)
            last_committed = _expected_last(got, champion)
            marks = [s for s in got if s == "D" or s.startswith("B ")]
            stats["ops"] += marks.count("D")
            stats["mid_op"] += bool(marks) and marks[-1] != "D"
            with Registry(root) as reg:
                check = reg.verify()
                assert check.ok, f"trial {trial}: {check.problems}"
                now = reg.champion_id()
                assert now in allowed, f"trial {trial}: champion {now}, allowed {allowed}"
                assert reg.champion().id == now  # loads and verifies the file
                assert [r.id for r in reg.list("champion")] == [now]
            stats["in_flight_committed"] += now != last_committed
            champion = now
    finally:
        zygote.stdin.close()
        try:
            zygote.wait(timeout=10)
        except subprocess.TimeoutExpired:
            zygote.kill()
            zygote.wait()
    elapsed = time.monotonic() - t0
    print(f"{TRIALS} SIGKILL trials in {elapsed:.1f}s: {stats}")
    assert stats["mid_op"] >= 1, stats   # the kills did land inside operations


def _expected_last(lines: list[str], before: str) -> str:
    """The last committed champion in `lines` (ignoring an in-flight op)."""
    current, pending = before, None
    for line in lines:
        if line.startswith("B "):
            pending = line.split()[2]
        elif line == "D":
            current, pending = pending, None
    return current


if __name__ == "__main__":
    _zygote()
