"""The adaptation lifecycle as an explicit state machine, driven from outside the control tick.

    IDLE ──champion──► WATCHING ──DriftEvent──► ADAPTING ──result──► GATING ──PASS──► SHADOW
      ▲                  ▲  ▲  ▲                   │ fail/hang          │ FAIL: reject   │ pairwise
      │                  │  │  └───────────────────┘ (backoff)          │ INCONCLUSIVE:  │ comparison
      │                  │  └──────────────────────────────────────────┘  hold          ▼
      │                  │          ◄── guard trip: abort, reject ──────────────────── CANARY (stepped weight)
      │                  │                                                               │ all steps clean
      │                  ├── clean watch: mark_stable ◄── WATCH ◄── PROMOTED ◄──────────┘ (swap between ticks)
      │                  └── ROLLBACK ◄── degradation ────┘
    (no champion)

Why a state machine in the style of ros2_control's lifecycle: every authority change must be a named
transition with a reason, so that an operator (and the audit log) can always say why the robot runs
the controller it runs. `TRANSITIONS` lists every legal edge; anything else is a bug and raises.

Where the work happens, and why:

- The **control tick** (`controller.runtime`) only reads one immutable authority slot. This module
  swaps slots between ticks (`ControllerRuntime.install`), so promotion and rollback take effect at
  the next tick. Guards that must act within a tick (canary hand-back) live in the runtime; this
  module turns a trip into a transition and an audit row at its next `step`.
- **Adaptation** runs in a separate OS process behind `AdaptationRunner` (start / poll / cancel); the
  **gate** likewise behind `Gate`. Both are polled, never waited on, so a hung sandbox or gate
  cannot stall anything; the runner enforces the wall-clock budget and a crash is a reported failure.
- **Registry writes** (add, gate report, shadow, canary, promote, reject, mark_stable, rollback) go
  through `safety.registry.Registry` methods, each one transaction + one audit row. Transitions that
  concern no genome (a drift alarm starting a job, a sandbox failure) have no registry method to
  write through; they are published as events and kept in `history`, and the drift event and job
  summary ride along in the evidence of the candidate's `add` row.

`step(now)` is deterministic given the clock value, the runtime's statistics and the runner's and
gate's answers, so tests drive it with a fake clock and explicit calls, without ROS.
"""
from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

from controller.contracts import (FAIL, INCONCLUSIVE, PASS, AdaptationJob, AdaptationResult, AdaptationRunner,
                                  Gate, GateOutcome, GateRequest)
from controller.lifecycle import TRANSITIONS, OrchestratorConfig, OrchestratorError, Phase, predicted_reward  # noqa: F401
from controller.rollout import LiveRollout
from controller.runtime import CompiledPolicy, ControllerRuntime
from sim.atomicio import json_safe


# ---------------------------------------------------------------------- the state machine

class Orchestrator(LiveRollout):
    """See the module docstring. Thread-safe: `step`, `promote_now`, `rollback_now` and `status`
    serialise on one lock (the control tick never takes it)."""

    def __init__(self, config: OrchestratorConfig, registry: Any, runtime: ControllerRuntime,
                 runner: AdaptationRunner | None, gate: Gate | None, *, monitor: Any | None = None,
                 emit: Callable[[dict], None] | None = None, decode: Callable | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from safety.policy_cache import FallbackCache
        self.config = config
        self.registry = registry
        self.runtime = runtime
        self.runner = runner
        self.gate = gate
        self.monitor = monitor
        self.emit = emit or (lambda ev: None)
        self.clock = clock
        self.cache = FallbackCache(decode=decode)   # default: the gate's decoder
        self.phase = Phase.IDLE
        self.authority_ok = True           # the node: lifecycle active and mode == active
        self.history: deque[dict] = deque(maxlen=200)
        self.counters = {"drift_events": 0, "drift_ignored": 0, "jobs": 0, "job_failures": 0,
                         "gate_pass": 0, "gate_fail": 0, "gate_hold": 0, "shadow_fail": 0, "shadow_hold": 0,
                         "canary_aborts": 0, "promotions": 0, "rollbacks": 0, "stable": 0, "errors": 0}
        self.last_error: str | None = None
        self._lock = threading.RLock()
        self._entered = clock()
        self._pending_drift: Any = None
        self._pending_since = 0.0
        self._backoff_until = -math.inf
        self._last_refresh = -math.inf
        self._job: AdaptationJob | None = None
        self._job_result: AdaptationResult | None = None
        self._candidate_id: str | None = None
        self._candidate: CompiledPolicy | None = None
        self._gate_outcome: GateOutcome | None = None
        self._canary_step = 0
        self._canary_weights: tuple[float, ...] = self.config.canary_weights
        self._rescue = False
        self._step_started = 0.0
        self._shadow_stats: dict | None = None
        self._watch: dict | None = None
        self._job_counter = 0

    # -- bookkeeping -------------------------------------------------------------------------------
    @property
    def champion_id(self) -> str | None:
        c = self.runtime.slot.champion
        return None if c is None else c.genome_id

    @property
    def candidate_id(self) -> str | None:
        return self._candidate_id

    def _event(self, kind: str, **kw: Any) -> dict:
        ev = {"event": kind, "time": time.time(), "phase": self.phase.value,
              "champion": self.champion_id, "candidate": self._candidate_id, **kw}
        try:
            self.emit(ev)
        except Exception:   # a publisher must never break the state machine
            pass
        return ev

    def _to(self, new: Phase, now: float, reason: str, **evidence: Any) -> None:
        old = self.phase
        if (old, new) not in TRANSITIONS:
            raise OrchestratorError(f"illegal transition {old.value} -> {new.value} ({reason})")
        self.phase = new
        self._entered = now
        ev = self._event("transition", **{"from": old.value, "to": new.value, "reason": reason,
                                          "evidence": json_safe(evidence)})
        self.history.append(ev)

    def report_error(self, what: str, exc: BaseException | str) -> None:
        """Count and publish an error that did not stop the lifecycle (the champion stays in force)."""
        self.counters["errors"] += 1
        self.last_error = f"{what}: {exc}"
        self._event("error", what=what, error=str(exc))

    # -- champion management -------------------------------------------------------------------------
    def refresh_champion(self) -> bool:
        """Reload champion/fallback from the registry (outside the tick); install a changed champion."""
        try:
            self.cache.refresh(self.registry)
        except Exception as e:   # corrupt new champion: the previous pair stays in force
            self.report_error("registry refresh", e)
            return False
        snap = self.cache.champion
        if snap is None:
            return False
        if snap.genome_id != self.champion_id:
            try:
                self.runtime.install(champion=CompiledPolicy.from_snapshot(snap))
            except ValueError as e:
                self.report_error("install champion", e)
                return False
            self._event("champion_loaded", genome=snap.genome_id)
            return True
        return False

    # -- the step ------------------------------------------------------------------------------------
    def step(self, now: float | None = None) -> Phase:
        """Advance the state machine once (called by a timer at a few Hz). Never raises for runtime
        failures of the runner, gate or registry: they are counted, published and handled."""
        with self._lock:
            now = self.clock() if now is None else float(now)
            self._drain_drift(now)
            handler = getattr(self, f"_step_{self.phase.value}")
            handler(now)
            return self.phase

    def _drain_drift(self, now: float) -> None:
        q = self.runtime.drift_events
        while q:
            try:
                ev = q.popleft()
            except IndexError:
                break
            self.counters["drift_events"] += 1
            summary = ev.to_dict() if hasattr(ev, "to_dict") else dict(ev)
            self._event("drift", drift=json_safe(summary))
            if self.phase is Phase.WATCHING and now >= self._backoff_until:
                if self._pending_drift is None:
                    self._pending_since = now
                self._pending_drift = ev
            else:
                self.counters["drift_ignored"] += 1

    def _step_idle(self, now: float) -> None:
        if now - self._last_refresh >= self.config.refresh_s:
            self._last_refresh = now
            self.refresh_champion()
        if self.champion_id is not None:
            self._to(Phase.WATCHING, now, "champion in force", champion=self.champion_id)

    def _step_watching(self, now: float) -> None:
        if now - self._last_refresh >= self.config.refresh_s:
            self._last_refresh = now
            self.refresh_champion()
        if self.champion_id is None:
            self._to(Phase.IDLE, now, "no champion")
            return
        ev = self._pending_drift
        if ev is None:
            return
        if now - self._pending_since < self.config.post_alarm_s:
            return                                   # still recording the drifted robot
        if not (self.config.adapt_enabled and self.authority_ok and self.runner is not None):
            why = "adaptation disabled" if not self.config.adapt_enabled else \
                "no authority (mode is not active)" if not self.authority_ok else "no sandbox runner"
            self._pending_drift = None
            self.counters["drift_ignored"] += 1
            self._event("adaptation_held", reason=why)
            return
        self._pending_drift = None
        try:
            job = self._make_job(ev)
            self.runner.start(job)
        except Exception as e:
            self.report_error("start sandbox job", e)
            self._backoff_until = now + self.config.retry_backoff_s
            return
        self._job = job
        self.counters["jobs"] += 1
        self._to(Phase.ADAPTING, now, "drift detected: sandbox job started", job=job.job_id,
                 job_dir=str(job.job_dir), drift=job.drift_event)

    def _make_job(self, ev: Any) -> AdaptationJob:
        """A fresh job directory and what goes into it (the runner writes the files)."""
        self._job_counter += 1
        job_id = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}-{self._job_counter}"
        job_dir = self.config.job_root / job_id
        job_dir.mkdir(parents=True, exist_ok=False)
        seeds, ids = [], []
        fallback = self.cache.fallback.genome_id if self.cache.fallback is not None else None
        for gid in (self.champion_id, fallback):
            if gid is not None and gid not in ids:
                seeds.append(self.registry.get(gid))     # verified against the registry index
                ids.append(gid)
        window = self._post_alarm_window(ev)
        summary = ev.to_dict() if hasattr(ev, "to_dict") else (dict(ev) if isinstance(ev, dict) else None)
        return AdaptationJob(job_id=job_id, job_dir=job_dir, robot=self.config.robot,
                             seed=self.config.seed + self._job_counter,
                             budgets={k: v for k, v in self.config.job.items() if k != "drift"},
                             seeds=tuple(seeds), window=window if window is not None and len(window) else None,
                             drift_event=json_safe(summary), drift=self.config.job.get("drift"))

    def _post_alarm_window(self, ev: Any):
        """The telemetry since the change began (the estimated onset, else the alarm), taken from the
        monitor's ring now that `post_alarm_s` of drifted data has accumulated; the event's own
        window (mostly pre-drift) when the monitor cannot give one."""
        window = getattr(ev, "window", None)
        recent = getattr(self.monitor, "recent_window", None)
        start = getattr(ev, "onset_t", None)
        start = getattr(ev, "t", None) if start is None else start
        if recent is None or start is None:
            return window
        try:
            fresh = recent()                  # copied between two ticks (the monitor's lock)
            keep = fresh.t >= float(start) - 0.05
            if int(keep.sum()) < 30:
                return window
            return type(fresh)(*(getattr(fresh, f)[keep] for f in ("t", "obs", "action", "reward", "segment")))
        except Exception as e:   # never let a telemetry copy stop adaptation
            self.report_error("post-alarm telemetry window", e)
            return window

    def _step_adapting(self, now: float) -> None:
        try:
            res = self.runner.poll()
        except Exception as e:
            res = AdaptationResult(ok=False, error=f"runner poll failed: {e}")
        if res is None:
            return
        self._job_result = res
        job = self._job
        if not res.ok or not res.candidates:
            self.counters["job_failures"] += 1
            self._backoff_until = now + self.config.retry_backoff_s
            self._to(Phase.WATCHING, now, "sandbox job failed: champion stays",
                     job=job.job_id if job else None, error=res.error or "no candidate")
            return
        if self.champion_id is not None and (res.result or {}).get("candidate_id") == self.champion_id:
            # the evolution stopped at once because the champion already met the target on the robot
            # the sandbox identified: nothing new to judge (registering it would fail: a genome cannot
            # be its own parent). Not a failure of the job; back to watching after the backoff.
            self._backoff_until = now + self.config.retry_backoff_s
            self._to(Phase.WATCHING, now, "sandbox returned the champion unchanged (it already meets the "
                     "target on the identified robot): nothing to gate", job=job.job_id if job else None,
                     drift_estimate=res.drift_estimate)
            return
        try:
            cid = self._register(res.candidates[0], job, res)
        except Exception as e:
            self.counters["job_failures"] += 1
            self._backoff_until = now + self.config.retry_backoff_s
            self.report_error("register candidate", e)
            self._to(Phase.WATCHING, now, "candidate could not be registered: champion stays", error=str(e))
            return
        if cid is None:
            self._backoff_until = now + self.config.retry_backoff_s
            self._to(Phase.WATCHING, now, "sandbox returned a genome that was judged before")
            return
        self._candidate_id = cid
        try:
            if self.gate is None:
                raise OrchestratorError("no gate configured")
            self.gate.start(GateRequest(cid, res.drift_estimate or (job.drift if job else None)))
        except Exception as e:
            self.report_error("start gate", e)
            self._backoff_until = now + self.config.retry_backoff_s
            self._candidate_id = None
            self._to(Phase.WATCHING, now, "gate could not start: holding", error=str(e))
            return
        self._to(Phase.GATING, now, "candidate registered, gate started", job=job.job_id if job else None)

    def _register(self, path: Path, job: AdaptationJob | None, res: AdaptationResult) -> str | None:
        from safety.registry import RegistryError
        evidence = {"job": job.job_id if job else None, "drift_event": job.drift_event if job else None,
                    "drift_estimate": res.drift_estimate, "wall_s": res.wall_s,
                    "result": {k: v for k, v in res.result.items() if k in (
                        "status", "return_before", "return_after", "nominal_return", "sysid", "parent_id")}}
        try:
            cid = self.registry.add(path, reason="sandbox adaptation result", evidence=json_safe(evidence))
        except RegistryError as e:
            if "parent" not in str(e) or self.champion_id is None:
                raise
            cid = self.registry.add(path, parent_id=self.champion_id, reason="sandbox adaptation result "
                                    "(parent set to the champion)", evidence=json_safe(evidence))
        if self.registry.show(cid).status != "candidate":
            return None
        return cid

    def _step_gating(self, now: float) -> None:
        try:
            out = self.gate.poll()
        except Exception as e:
            out = GateOutcome(INCONCLUSIVE, (f"gate poll failed: {e}",))
        if out is None:
            return
        self._gate_outcome = out
        cid = self._candidate_id
        try:
            if out.report_id is None:
                report = dict(out.report) if out.report else {}
                report.setdefault("verdict", out.verdict)
                report.setdefault("reasons", list(out.reasons))
                report.setdefault("gate", type(self.gate).__name__)
                self.registry.attach_gate_report(cid, json_safe(report))
        except Exception as e:
            self.report_error("attach gate report", e)
            out = GateOutcome(INCONCLUSIVE, (f"report could not be recorded: {e}",))
        if out.verdict == PASS:
            try:
                cand = self._load_policy(cid)
                self.runtime.check_policy(cand)
            except Exception as e:
                self.report_error("load candidate policy", e)
                self._drop_candidate(now, f"candidate policy unusable on this robot: {e}", reject=True)
                return
            try:
                self.registry.set_status(cid, "shadow", reason="gate PASS",
                                         evidence={"reasons": list(out.reasons)})
                self.runtime.install(candidate=cand, canary=None)
            except Exception as e:
                self.report_error("enter shadow", e)
                self._drop_candidate(now, "could not start shadow", reject=False)
                return
            self.counters["gate_pass"] += 1
            self._candidate = cand
            self.runtime.reset_candidate_comparison(now)
            self._to(Phase.SHADOW, now, "gate PASS", reasons=list(out.reasons),
                     predicted_reward=out.predicted_reward)
        elif out.verdict == FAIL:
            self.counters["gate_fail"] += 1
            self._drop_candidate(now, "gate FAIL", reject=True, reasons=list(out.reasons))
        else:
            self.counters["gate_hold"] += 1
            self._drop_candidate(now, "gate INCONCLUSIVE: holding the champion", reject=False,
                                 reasons=list(out.reasons))


__all__ = ["AdaptationJob", "AdaptationResult", "AdaptationRunner", "FAIL", "Gate", "GateOutcome", "GateRequest",
           "INCONCLUSIVE", "Orchestrator", "OrchestratorConfig", "OrchestratorError", "PASS", "Phase",
           "TRANSITIONS", "predicted_reward"]
