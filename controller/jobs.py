"""Process-backed runners and gates for the orchestrator (`controller.contracts` protocols).

Everything here runs the heavy work in a *child OS process* and only polls it, because the live
node must never import torch, never hold the GIL for seconds, and must survive a child that
crashes or hangs (each child gets its own session, so a timeout kills its whole process group).

Runners (AdaptationRunner): a runner writes the job directory in the one job contract
(`sim.job_contract`: job.json with `AdaptJob`'s fields, telemetry.npz, seeds/), then starts a
sandbox on it.

- `SandboxRunner`: the sandbox launcher (`sim.sandbox_launch`), which applies the sandbox's own
  memory / CPU / wall limits (`sim.sandbox.run_sandbox`) and writes ``outcome.json``. The sandbox
  dispatches on the champion's kind (SR-GHN: system identification + evolution; policy: CMA-ES).
- `SubprocessRunner`: any command line with ``{job_dir}`` (``adapt.sandbox_command``), same contract.

Gates: `ProcessGate` runs `safety.gate.gate_registry` in `adapters.gate_job`; `FunctionGate`
wraps a function (tests, simple policies such as "no suite configured: hold").
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from controller.contracts import (INCONCLUSIVE, AdaptationJob, AdaptationResult, GateOutcome, GateRequest,
                                  JobError)
from sim.atomicio import atomic_write_json


def _repo_root() -> str:
    return str(Path(__file__).resolve().parents[1])


def _child_env() -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    env.setdefault("MUJOCO_GL", "disable")
    env["PYTHONPATH"] = _repo_root() + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("ROS_DOMAIN_ID", None)   # children never talk DDS
    return env


class _Child:
    """One child OS process in its own session, with a wall-clock limit enforced by `poll`."""

    def __init__(self, argv: list[str], cwd: Path, log: Path, timeout_s: float) -> None:
        self.started = time.monotonic()
        self.timeout_s = timeout_s
        self.log = log
        with open(log, "wb") as fh:
            self.proc = subprocess.Popen(argv, cwd=str(cwd), stdout=fh, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=_child_env(), start_new_session=True)

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def poll(self) -> tuple[str, int | None]:
        """('running' | 'timeout' | 'exited', returncode)."""
        rc = self.proc.poll()
        if rc is None:
            if time.monotonic() - self.started > self.timeout_s:
                self.kill()
                return "timeout", self.proc.returncode
            return "running", None
        return "exited", rc

    def tail(self, n: int = 600) -> str:
        try:
            return self.log.read_bytes()[-n:].decode(errors="replace").strip()
        except OSError:
            return ""


class _ChildOwner:
    """A runner or gate that drives at most one `_Child` and only ever polls it."""

    _child: _Child | None = None

    def _busy(self) -> bool:
        return self._child is not None and self._child.proc.poll() is None

    def _take_finished(self) -> tuple[_Child, str, int | None] | None:
        """(child, 'exited' | 'timeout', returncode) once the child has ended, else None; the
        owner forgets an ended child."""
        child = self._child
        if child is None:
            return None
        state, rc = child.poll()
        if state == "running":
            return None
        self._child = None
        return child, state, rc

    def _kill(self) -> bool:
        """Kill the child's process group; False when there was none."""
        if self._child is None:
            return False
        self._child.kill()
        self._child = None
        return True


# ---------------------------------------------------------------------- job directory formats

def window_to_telemetry(plant: str, window, control_dt: float) -> dict | None:
    """A DriftEvent window as sim.sysid telemetry arrays: qpos/qvel (ticks + 1 rows, from the
    observation through the plant's state codec), the actions sent after each of the first `ticks`
    states, and ``breaks``: the ticks after which a new contiguous segment begins (a gap in the
    stream, e.g. a robot that fell and was reset), which no replay window may cross. Every segment
    is kept: a robot that keeps falling after a drift gives several short stretches, each too short
    for identification alone (keeping only the last one left a few dozen ticks and a wrong
    estimate). None if fewer than 2 ticks."""
    from sim.nominal_model import codec_for
    seg = np.asarray(window.segment)
    if seg.size < 2:
        return None
    codec = codec_for(plant)
    q, v = zip(*(codec.from_obs(np.asarray(o, dtype=np.float64)) for o in np.asarray(window.obs)))
    breaks = np.flatnonzero(seg[1:] != seg[:-1]).astype(np.int64)
    out = {"qpos": codec.unwrap_turns(np.asarray(q, dtype=np.float64), breaks),
           "qvel": np.asarray(v, dtype=np.float64),
           "actions": np.asarray(window.action, dtype=np.float64)[:-1],
           "control_dt": np.float64(control_dt)}
    if breaks.size:
        out["breaks"] = breaks
    return out


def write_sandbox_job(job: AdaptationJob, requester: str = "") -> None:
    """The job directory in the one job contract (`sim.job_contract.write_job`): job.json holds
    `AdaptJob`'s fields (the orchestrator's ``job`` settings under the same names), telemetry.npz
    the alarm's window in `sim.sysid.Telemetry` format. `requester` (the node's name) and the job
    id travel in job.json: on a shared Ray cluster they label the job and its tasks."""
    from safety.command_limits import gate_command_limits
    from sim.job_contract import AdaptJob, write_job
    from sim.plants import make_plant
    tel = None
    if job.window is not None:
        tel = window_to_telemetry(job.robot, job.window, make_plant(job.robot).control_dt)
    spec = AdaptJob(**{**job.budgets, "robot": job.robot, "drift": job.drift, "seed": int(job.seed),
                       "requester": str(requester), "job_id": str(job.job_id),
                       "gate_limits": gate_command_limits(job.robot)})
    write_job(job.job_dir, spec, list(job.seeds), tel)


def job_wall_s(job: AdaptationJob) -> float:
    """The sandbox's wall-clock kill switch: the evolution's budget plus system identification's
    (at least 30 s). Counts (generations, evaluations) should bind first."""
    from sim.job_contract import AdaptJob
    b = job.budgets
    return float(b.get("budget_s", AdaptJob.budget_s)) + max(30.0, float(b.get("sysid_budget_s",
                                                                              AdaptJob.sysid_budget_s)))


# ---------------------------------------------------------------------- runners

class SubprocessRunner(_ChildOwner):
    """AdaptationRunner: `writer(job)` fills the job directory, then `command` (``{job_dir}``
    substituted) runs in a child process. The answer is read from ``result.json`` (``status`` ok)
    and the candidate file it names (``candidate_file``) or the ``*.safetensors`` next to it. The
    wall-clock limit is `job_wall_s` + `grace_s` (or `timeout_s`)."""

    def __init__(self, command: list[str] | None = None, *, writer: Callable[[AdaptationJob], None] | None = None,
                 timeout_s: float | None = None, grace_s: float = 15.0) -> None:
        self.command = list(command) if command else [sys.executable, "-m", "sim.sandbox_launch", "{job_dir}"]
        self.writer = writer or write_sandbox_job
        self.timeout_s, self.grace_s = timeout_s, grace_s
        self._child: _Child | None = None
        self._job: AdaptationJob | None = None
        self._status = "idle"

    @property
    def status(self) -> str:
        return self._status

    def start(self, job: AdaptationJob) -> None:
        if self._busy():
            raise JobError("a sandbox job is already running")
        self.writer(job)
        timeout = self.timeout_s if self.timeout_s is not None else job_wall_s(job) + self.grace_s
        # absolute: the child runs *in* the job directory, so a relative job_root (a registry_path
        # such as runs/demo/registry) would otherwise name a directory below itself
        job_dir = Path(job.job_dir).resolve()
        argv = [a.replace("{job_dir}", str(job_dir)) for a in self.command]
        self._job = job
        self._child = _Child(argv, job_dir, job_dir / "runner.log", timeout)
        self._status = "running"

    def poll(self) -> AdaptationResult | None:
        job, finished = self._job, self._take_finished()
        if finished is None:
            return None
        child, state, rc = finished
        wall = time.monotonic() - child.started
        if state == "timeout":
            self._status = "failed: timeout"
            return AdaptationResult(False, error=f"sandbox exceeded its wall-clock limit "
                                    f"({child.timeout_s:.0f} s) and was killed", wall_s=wall)
        outcome = self._outcome(job)
        if outcome is not None and outcome.get("status") != "ok":
            self._status = f"failed: {outcome.get('status')}"
            return AdaptationResult(False, error=f"sandbox {outcome.get('status')}: {outcome.get('reason')}",
                                    result=outcome, wall_s=wall)
        if rc != 0:
            self._status = f"failed: exit {rc}"
            return AdaptationResult(False, error=f"sandbox exited with code {rc}: {child.tail()}", wall_s=wall)
        return self._read(job, wall)

    @staticmethod
    def _outcome(job: AdaptationJob) -> dict | None:
        try:
            out = json.loads((job.job_dir / "outcome.json").read_text())
            return out if isinstance(out, dict) else {"status": "failed", "reason": "outcome.json is not an object"}
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            return {"status": "failed", "reason": f"unreadable outcome.json: {e}"}

    def _read(self, job: AdaptationJob, wall: float) -> AdaptationResult:
        path = job.job_dir / "result.json"
        try:
            result = json.loads(path.read_text())
            if not isinstance(result, dict):
                raise ValueError("result.json is not an object")
        except (OSError, ValueError) as e:
            self._status = "failed: no result"
            return AdaptationResult(False, error=f"sandbox wrote no readable result.json: {e}", wall_s=wall)
        status = str(result.get("status", "ok"))
        if status != "ok":
            self._status = f"failed: {status}"
            return AdaptationResult(False, error=str(result.get("error") or status), result=result, wall_s=wall)
        files = []
        for key in ("candidate_file", "candidates"):
            v = result.get(key)
            for f in ([v] if isinstance(v, str) else v if isinstance(v, list) else []):
                p = (job.job_dir / str(f)).resolve()
                if p.is_file() and job.job_dir.resolve() in p.parents:
                    files.append(p)
        if not files:
            files = sorted(job.job_dir.glob("*.safetensors"))
        est = result.get("drift_estimate")
        if est is None and isinstance(result.get("sysid"), dict):
            est = result["sysid"].get("estimate")
        if est is None:
            est = result.get("drift")
        self._status = "done" if files else "failed: no candidate"
        return AdaptationResult(bool(files), tuple(files), est if isinstance(est, dict) else None,
                                None if files else "sandbox returned no candidate file", result, wall)

    def cancel(self) -> None:
        if self._kill():
            self._status = "cancelled"


class SandboxRunner(SubprocessRunner):
    """The sandbox launcher (`sim.sandbox_launch`) behind the AdaptationRunner protocol. `cpu_s` and
    `memory_mb` are the sandbox's rlimits (``adapt.cpu_s``, ``adapt.memory_mb``); its wall limit is
    `job_wall_s`. `requester` (the node's name) labels the job in job.json.

    A job with ``backend: ray`` and no ``ray_address`` gets a Ray head that the sandbox's parent
    starts on this machine (plus `ray_start_s` on the wall limit). Cancelling kills the launcher's
    process group; the sandbox child and a head started for the job die with it."""

    def __init__(self, *, cpu_s: float = 1200.0, memory_mb: int = 8192, grace_s: float = 30.0, requester: str = "",
                 ray_start_s: float = 120.0) -> None:
        self.cpu_s, self.memory_mb = cpu_s, memory_mb
        self.requester, self.ray_start_s = str(requester), float(ray_start_s)
        super().__init__([sys.executable, "-m", "sim.sandbox_launch", "{job_dir}"],
                         writer=lambda job: write_sandbox_job(job, self.requester), grace_s=grace_s)

    def start(self, job: AdaptationJob) -> None:
        wall = job_wall_s(job)
        b = job.budgets
        head = self.ray_start_s if b.get("backend") == "ray" and not b.get("ray_address") else 0.0
        self.command = [sys.executable, "-m", "sim.sandbox_launch", "{job_dir}", "--wall-s", str(wall),
                        "--cpu-s", str(self.cpu_s), "--memory-mb", str(int(self.memory_mb))]
        self.timeout_s = wall + head + self.grace_s
        super().start(job)


# ---------------------------------------------------------------------- gates

class FunctionGate:
    """Gate that calls `fn(request) -> GateOutcome` synchronously on `start` (tests, simple gates)."""

    def __init__(self, fn: Callable[[GateRequest], GateOutcome]) -> None:
        self.fn = fn
        self._out: GateOutcome | None = None

    def start(self, request: GateRequest) -> None:
        try:
            self._out = self.fn(request)
        except Exception as e:
            self._out = GateOutcome(INCONCLUSIVE, (f"gate raised: {e}",))

    def poll(self) -> GateOutcome | None:
        out, self._out = self._out, None
        return out

    def cancel(self) -> None:
        self._out = None


class ProcessGate(_ChildOwner):
    """The real gate (`safety.gate.gate_registry`) in a child process (`adapters.gate_job`).

    Why a process: the gate runs hundreds of rollouts and, for SR-GHN genomes, decodes with torch;
    neither belongs in the live node. The child attaches its report to the registry itself. A gate
    that is missing (`safety.gate` not importable), crashes or runs past `timeout_s` answers
    INCONCLUSIVE: the champion is held.
    """

    def __init__(self, registry_root: str | os.PathLike, suite_path: str | os.PathLike, work_dir: str | os.PathLike,
                 *, timeout_s: float = 900.0, actor: str = "driftgate-gate") -> None:
        # absolute: the gate child runs in its own work directory (relative paths would break there)
        self.registry_root, self.suite_path = str(Path(registry_root).resolve()), str(Path(suite_path).resolve())
        self.work_dir = Path(work_dir).resolve()
        self.timeout_s, self.actor = timeout_s, actor
        self._child: _Child | None = None
        self._dir: Path | None = None
        self._n = 0

    def start(self, request: GateRequest) -> None:
        if self._busy():
            raise JobError("a gate run is already in progress")
        self._n += 1
        d = self.work_dir / f"gate-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{self._n}"
        d.mkdir(parents=True, exist_ok=False)
        atomic_write_json(d / "request.json", {"registry": self.registry_root, "suite": self.suite_path,
                                              "candidate_id": request.candidate_id,
                                              "target_drift": request.target_drift, "actor": self.actor})
        self._dir = d
        self._child = _Child([sys.executable, "-m", "adapters.gate_job", str(d)], d, d / "gate.log",
                             self.timeout_s)

    def poll(self) -> GateOutcome | None:
        d, finished = self._dir, self._take_finished()
        if finished is None:
            return None
        child, state, rc = finished
        if state == "timeout":
            return GateOutcome(INCONCLUSIVE, (f"gate exceeded {self.timeout_s:.0f} s and was killed: holding",))
        try:
            out = json.loads((d / "outcome.json").read_text())
            return GateOutcome(out["verdict"], tuple(out.get("reasons") or ()), None,
                               out.get("report_id"), out.get("predicted_reward"), out.get("incumbent_reward"))
        except (OSError, ValueError, KeyError, TypeError) as e:
            return GateOutcome(INCONCLUSIVE, (f"gate process exited {rc} without an outcome ({e}): "
                                              f"{child.tail()}",))

    def cancel(self) -> None:
        self._kill()
