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
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Callable

import numpy as np

from controller.contracts import (FAIL, INCONCLUSIVE, PASS, AdaptationJob, AdaptationResult, AdaptationRunner,
                                  Gate, GateOutcome, GateRequest)
from controller.runtime import Canary, CompiledPolicy, ControllerRuntime


class Phase(str, Enum):
    IDLE = "idle"              # no champion: the runtime holds the safe command
    WATCHING = "watching"      # the champion drives; the drift monitor watches
    ADAPTING = "adapting"      # a sandbox job runs in its own process
    GATING = "gating"          # the gate judges the candidate (its own process)
    SHADOW = "shadow"          # the candidate computes actions on live states, no authority
    CANARY = "canary"          # the candidate has a bounded, stepped share of the command
    PROMOTED = "promoted"      # transient: registry promoted, runtime swapped
    WATCH = "watch"            # post-promotion watch period
    ROLLBACK = "rollback"      # transient: authority handed back to the stable ancestor


_P = Phase
TRANSITIONS: frozenset[tuple[Phase, Phase]] = frozenset({
    (_P.IDLE, _P.WATCHING), (_P.WATCHING, _P.IDLE),
    (_P.WATCHING, _P.ADAPTING), (_P.ADAPTING, _P.WATCHING), (_P.ADAPTING, _P.GATING),
    (_P.GATING, _P.WATCHING), (_P.GATING, _P.SHADOW),
    (_P.SHADOW, _P.WATCHING), (_P.SHADOW, _P.CANARY), (_P.SHADOW, _P.PROMOTED),
    (_P.CANARY, _P.WATCHING), (_P.CANARY, _P.PROMOTED),
    (_P.PROMOTED, _P.WATCH), (_P.WATCH, _P.WATCHING), (_P.WATCH, _P.ROLLBACK),
    (_P.ROLLBACK, _P.WATCHING),
    # operator rollback (the ~/rollback service) from any state with a champion
    (_P.WATCHING, _P.ROLLBACK), (_P.ADAPTING, _P.ROLLBACK), (_P.GATING, _P.ROLLBACK),
    (_P.SHADOW, _P.ROLLBACK), (_P.CANARY, _P.ROLLBACK),
})


class OrchestratorError(RuntimeError):
    """An illegal transition (a bug) or an operator request that cannot be honoured."""


# ---------------------------------------------------------------------- contracts (controller/contracts.py)

@dataclass(frozen=True)
class OrchestratorConfig:
    """Budgets and thresholds of the lifecycle (the ``orchestrator`` and ``adapt`` sections of
    `controller.settings.Settings`, same names; built by `controller.pipeline`)."""

    plant: str
    job_root: Path
    adapt: bool = True                       # False: drift events are reported, no job starts
    seed: int = 0
    job: dict = field(default_factory=dict)  # job.json fields (sim.job_contract.AdaptJob names), e.g. budget_s,
                                             # max_generations, drift (`Settings.job_fields`)
    retry_backoff_s: float = 30.0            # after a failed / held adaptation, ignore alarms this long
    archive_suite: Path | None = None        # regression suite that gets an `archive` scenario for every
                                             # promoted regime (later candidates must not regress there)
    post_alarm_s: float = 3.0                # keep recording this long after an alarm before the job
                                             # starts: at the alarm the window is almost all pre-drift
    shadow_s: float = 10.0
    shadow_min_samples: int = 100
    shadow_timeout_s: float = 60.0           # not enough paired samples by then: hold
    shadow_max_divergence: float = 0.5
    shadow_max_saturation: float = 0.5
    # A champion that drives the live robot outside the guard bounds on at least this fraction of
    # the shadow ticks is failing (a motor wired backwards: the robot falls over and over). Staying
    # close to it is no safety property, so the pairwise limits are not applied and the canary is a
    # rescue: full authority for the whole canary time, no divergence guard, joint-bound guard
    # after `rescue_grace_s`. The gate's verdict is the evidence that remains. False: hold instead.
    rescue_failing_champion: bool = True
    rescue_outside_fraction: float = 0.05
    rescue_grace_s: float = 1.0
    canary_weights: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
    canary_step_s: float = 5.0
    canary_slice_s: float = 1.0
    canary_duty: float = 1.0
    watch_s: float = 30.0
    watch_min_samples: int = 100
    watch_tolerance: float = 0.1             # degraded: live mean reward < predicted - tolerance
    refresh_s: float = 1.0                   # registry poll for external champion changes

    def __post_init__(self) -> None:
        object.__setattr__(self, "job_root", Path(self.job_root))
        object.__setattr__(self, "canary_weights", tuple(float(w) for w in self.canary_weights))
        if not self.canary_weights or not all(0.0 < w <= 1.0 for w in self.canary_weights):
            raise ValueError(f"canary_weights must be in (0, 1], got {self.canary_weights}")
        if not 0.0 < self.canary_duty <= 1.0 or self.canary_slice_s <= 0:
            raise ValueError("canary_duty must be in (0, 1] and canary_slice_s > 0")
        for name in ("shadow_s", "shadow_timeout_s", "canary_step_s", "watch_s", "retry_backoff_s", "post_alarm_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0")


def numpy_decode(genome: Any) -> tuple[Any, np.ndarray]:
    """FallbackCache decoder for the live side: SR-GHN genomes through the numpy head (no torch)."""
    from sim.srghn_decode import genome_policy_weights
    return genome.policy_spec, genome_policy_weights(genome)


def predicted_reward(report: dict | None) -> float | None:
    """Mean per-tick reward the gate measured for the candidate on its target scenarios."""
    if not report:
        return None
    vals = [s.get("candidate") for s in report.get("scenarios") or []
            if s.get("tag") == "target" and s.get("metric") == "mean_reward"
            and isinstance(s.get("candidate"), (int, float))]
    return float(np.mean(vals)) if vals else None


# ---------------------------------------------------------------------- the state machine

class Orchestrator:
    """See the module docstring. Thread-safe: `step`, `promote_now`, `rollback_now` and `status`
    serialise on one lock (the control tick never takes it)."""

    def __init__(self, config: OrchestratorConfig, registry: Any, runtime: ControllerRuntime,
                 runner: AdaptationRunner | None, gate: Gate | None, *, monitor: Any | None = None,
                 emit: Callable[[dict], None] | None = None, decode: Callable | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from safety.registry import FallbackCache
        self.config = config
        self.registry = registry
        self.runtime = runtime
        self.runner = runner
        self.gate = gate
        self.monitor = monitor
        self.emit = emit or (lambda ev: None)
        self.clock = clock
        self.cache = FallbackCache(decode=decode or numpy_decode)
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
                                          "evidence": _jsonable(evidence)})
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
            self._event("drift", drift=_jsonable(summary))
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
        if not (self.config.adapt and self.authority_ok and self.runner is not None):
            why = "adaptation disabled" if not self.config.adapt else \
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
        return AdaptationJob(job_id=job_id, job_dir=job_dir, plant=self.config.plant,
                             seed=self.config.seed + self._job_counter, budgets={k: v for k, v in self.config.job.items() if k != "drift"},
                             seeds=tuple(seeds), window=window if window is not None and len(window) else None,
                             drift_event=_jsonable(summary), drift_hint=self.config.job.get("drift"))

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
            self.gate.start(GateRequest(cid, res.drift_estimate or (job.drift_hint if job else None)))
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
            cid = self.registry.add(path, reason="sandbox adaptation result", evidence=_jsonable(evidence))
        except RegistryError as e:
            if "parent" not in str(e) or self.champion_id is None:
                raise
            cid = self.registry.add(path, parent_id=self.champion_id, reason="sandbox adaptation result "
                                    "(parent set to the champion)", evidence=_jsonable(evidence))
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
                self.registry.attach_gate_report(cid, _jsonable(report))
        except Exception as e:
            self.report_error("attach gate report", e)
            out = GateOutcome(INCONCLUSIVE, (f"report could not be recorded: {e}",))
        if out.verdict == PASS:
            try:
                cand = self._load_policy(cid)
                self.runtime._check_policy(cand)
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

    def _load_policy(self, gid: str) -> CompiledPolicy:
        genome = self.registry.get(gid)
        spec, weights = self.cache._decode(genome)
        return CompiledPolicy(gid, spec, weights)

    def _drop_candidate(self, now: float, reason: str, *, reject: bool, to: Phase = Phase.WATCHING,
                        **evidence: Any) -> None:
        """Withdraw the candidate from the runtime (between ticks), reject it if it failed, go on."""
        cid = self._candidate_id
        if self.runtime.slot.candidate is not None or self.runtime.slot.canary is not None:
            self.runtime.install(candidate=None, canary=None)
        if reject and cid is not None:
            try:
                self.registry.reject(cid, reason=reason, evidence=_jsonable(evidence))
            except Exception as e:
                self.report_error("reject candidate", e)
        self._backoff_until = now + self.config.retry_backoff_s
        self._to(to, now, reason, **evidence)
        self._candidate_id = None
        self._candidate = None

    def _step_shadow(self, now: float) -> None:
        cfg = self.config
        cmp = self.runtime.candidate_comparison()
        elapsed = now - self._entered
        if elapsed >= cfg.shadow_s and cmp.n >= cfg.shadow_min_samples:
            stats = cmp.to_dict()
            self._shadow_stats = stats
            problems = []
            if cmp.errors:
                problems.append(f"{cmp.errors} non-finite candidate actions")
            failing = (stats["outside_bounds"] or 0.0) >= cfg.rescue_outside_fraction
            self._rescue = failing and cfg.rescue_failing_champion
            stats["champion_failing"] = failing
            if self._rescue:
                pass          # pairwise limits against a failing champion mean nothing (see config)
            elif stats["divergence_mean"] > cfg.shadow_max_divergence:
                problems.append(f"mean action divergence {stats['divergence_mean']:.3g} > "
                                f"{cfg.shadow_max_divergence:g}")
            if not self._rescue and stats["saturation_challenger"] > cfg.shadow_max_saturation:
                problems.append(f"candidate saturated on {100 * stats['saturation_challenger']:.0f}% of ticks "
                                f"> {100 * cfg.shadow_max_saturation:.0f}%")
            if problems:
                self.counters["shadow_fail"] += 1
                self._drop_candidate(now, "shadow comparison failed", reject=True, problems=problems, shadow=stats)
                return
            if not self.authority_ok:
                if elapsed >= cfg.shadow_timeout_s:
                    self.counters["shadow_hold"] += 1
                    self._drop_candidate(now, "shadow passed but the node has no authority: holding",
                                         reject=False, shadow=stats)
                return
            try:
                self.registry.set_status(self._candidate_id, "canary", reason="shadow comparison passed",
                                         evidence=_jsonable({"shadow": stats}))
            except Exception as e:
                self.report_error("enter canary", e)
                self._drop_candidate(now, "could not start canary", reject=False)
                return
            self._canary_step = 0
            self._canary_weights = (1.0,) if self._rescue else cfg.canary_weights
            self._install_canary(now)
            self._to(Phase.CANARY, now, "shadow: the champion is failing on the live robot, rescue canary "
                     "(full authority, joint-bound guard)" if self._rescue else "shadow comparison passed",
                     shadow=stats, weight=self._canary_weights[0], rescue=self._rescue)
        elif elapsed >= cfg.shadow_timeout_s:
            self.counters["shadow_hold"] += 1
            self._drop_candidate(now, "not enough paired shadow samples: holding", reject=False,
                                 samples=cmp.n)

    def _install_canary(self, now: float) -> None:
        cfg = self.config
        self._step_started = now
        self.runtime.install(canary=Canary(self._canary_weights[self._canary_step], start=now,
                                           slice_s=cfg.canary_slice_s, duty=1.0 if self._rescue else cfg.canary_duty,
                                           rescue=self._rescue, grace_s=cfg.rescue_grace_s))

    def _step_canary(self, now: float) -> None:
        cfg = self.config
        rt = self.runtime
        if rt.tripped:
            trip = rt.last_trip.to_dict() if rt.last_trip else {}
            self.counters["canary_aborts"] += 1
            self._drop_candidate(now, f"canary guard violation ({trip.get('reason')}): authority handed "
                                 "back to the champion", reject=True, trip=trip,
                                 weight=self._canary_weights[self._canary_step])
            return
        if not self.authority_ok:
            self._drop_candidate(now, "node lost authority during canary: holding", reject=False)
            return
        # a rescue canary has one step, as long as all the stepped ones together
        step_s = cfg.canary_step_s * (len(cfg.canary_weights) if self._rescue else 1)
        if now - self._step_started < step_s:
            return
        if self._canary_step + 1 < len(self._canary_weights):
            self._canary_step += 1
            self._install_canary(now)
            self._event("canary_step", weight=self._canary_weights[self._canary_step], step=self._canary_step)
            return
        self._promote(now, "canary completed without a guard violation",
                      canary={"weights": list(self._canary_weights), "step_s": cfg.canary_step_s,
                              "rescue": self._rescue,
                              "comparison": rt.candidate_comparison().to_dict()})

    def _promote(self, now: float, reason: str, **evidence: Any) -> None:
        cid, cand = self._candidate_id, self._candidate
        old = self.champion_id
        try:
            self.registry.promote(cid, reason=reason, evidence=_jsonable(evidence))
        except Exception as e:
            self.report_error("promote", e)
            self._drop_candidate(now, f"registry refused the promotion: {e}", reject=False)
            return
        self.runtime.install(champion=cand, candidate=None, canary=None)   # the swap between two ticks
        self.counters["promotions"] += 1
        try:
            self.cache.refresh(self.registry)
        except Exception as e:
            self.report_error("registry refresh after promotion", e)
        self._notify_monitor()
        self._archive_regime(cid)
        self._to(Phase.PROMOTED, now, reason, replaced=old, **evidence)
        self._candidate_id, self._candidate = None, None
        pred = self._gate_outcome.predicted_reward if self._gate_outcome else None
        self.runtime.take_rewards(now)
        self._watch = {"genome": cid, "predicted_reward": pred, "replaced": old}
        self._to(Phase.WATCH, now, "watching live performance after promotion", predicted_reward=pred)

    def _archive_regime(self, genome_id: str) -> None:
        """Append the regime the new champion was promoted for (the sysid estimate) to the suite's
        archive, so no later candidate may regress on it. Outside the tick; failures are reported."""
        drift = self._job_result.drift_estimate if self._job_result is not None else None
        if self.config.archive_suite is None or not drift:
            return
        try:
            from safety.suite import append_archive
            scenario = append_archive(self.config.archive_suite, drift, genome_id=genome_id,
                                      note="appended by the orchestrator after promotion")
            self._event("archive_appended", scenario=scenario.name, suite=str(self.config.archive_suite))
        except Exception as e:
            self.report_error("archive the promoted regime", e)

    def _notify_monitor(self) -> None:
        if self.monitor is not None:
            try:
                self.monitor.notify_adapted()
            except Exception as e:
                self.report_error("drift monitor notify_adapted", e)

    def _step_watch(self, now: float) -> None:
        cfg = self.config
        if self.champion_id != (self._watch or {}).get("genome"):
            self._to(Phase.WATCHING, now, "champion changed during the watch period")
            return
        if now - self._entered < cfg.watch_s:
            return
        rewards = self.runtime.take_rewards(now)
        pred = self._watch.get("predicted_reward")
        live = rewards.mean
        evidence = {"live_reward": live, "samples": rewards.n, "predicted_reward": pred,
                    "tolerance": cfg.watch_tolerance, "watch_s": cfg.watch_s}
        if live is not None and rewards.n >= cfg.watch_min_samples and pred is not None \
                and live < pred - cfg.watch_tolerance:
            self._rollback(now, f"live reward {live:.3f} below the gate's prediction {pred:.3f} - "
                           f"{cfg.watch_tolerance:g}", evidence)
            return
        if live is None or rewards.n < cfg.watch_min_samples or pred is None:
            self._to(Phase.WATCHING, now, "watch period inconclusive (no performance data or no "
                     "prediction): champion kept, not marked stable", **evidence)
            return
        try:
            self.registry.mark_stable(self._watch["genome"], reason="clean watch period",
                                      evidence=_jsonable(evidence))
            self.counters["stable"] += 1
        except Exception as e:
            self.report_error("mark_stable", e)
        try:
            self.cache.refresh(self.registry)
        except Exception as e:
            self.report_error("registry refresh", e)
        self._to(Phase.WATCHING, now, "watch period clean: champion marked stable", **evidence)

    def _rollback(self, now: float, reason: str, evidence: dict) -> tuple[bool, str]:
        """Swap to the cached stable ancestor first (effective next tick), then record it."""
        fb = self.cache.fallback
        if fb is None:
            try:
                self.cache.refresh(self.registry)
            except Exception:
                pass
            fb = self.cache.fallback
        if fb is None:
            msg = f"no stable ancestor of champion {self.champion_id} to roll back to"
            self.report_error("rollback", msg)
            if self.phase is Phase.WATCH:
                self._to(Phase.WATCHING, now, f"degradation but {msg}: champion kept", **evidence)
            return False, msg
        replaced = self.champion_id
        try:
            target = CompiledPolicy.from_snapshot(fb)
            self.runtime.install(champion=target, candidate=None, canary=None)
        except ValueError as e:
            self.report_error("rollback install", e)
            return False, str(e)
        try:
            self.registry.rollback(to=fb.genome_id, reason=reason, evidence=_jsonable(evidence))
        except Exception as e:   # the stable genome already drives; the registry disagrees: say so loudly
            self.report_error("registry rollback (runtime already on the stable ancestor)", e)
        try:
            self.cache.refresh(self.registry)
        except Exception as e:
            self.report_error("registry refresh after rollback", e)
        self.counters["rollbacks"] += 1
        self._notify_monitor()
        self._candidate_id, self._candidate, self._watch = None, None, None
        self._to(Phase.ROLLBACK, now, reason, to=fb.genome_id, replaced=replaced, **evidence)
        self._to(Phase.WATCHING, now, "authority back on the stable ancestor", champion=fb.genome_id)
        return True, f"rolled back to {fb.genome_id}"

    def set_authority(self, ok: bool) -> None:
        """The node gained or lost authority (lifecycle / mode). Losing it during the canary withdraws
        the candidate at once (held, not rejected: it did nothing wrong)."""
        with self._lock:
            self.authority_ok = bool(ok)
            if not ok and self.phase is Phase.CANARY:
                self._drop_candidate(self.clock(), "node lost authority during canary: holding", reject=False)

    # -- operator requests (services) -------------------------------------------------------------
    def promote_now(self, reason: str = "operator request") -> tuple[bool, str]:
        """Promote the candidate in SHADOW or CANARY now (the registry still requires its gate PASS)."""
        with self._lock:
            now = self.clock()
            if self.phase not in (Phase.SHADOW, Phase.CANARY) or self._candidate_id is None:
                return False, f"nothing to promote (phase {self.phase.value})"
            cid = self._candidate_id
            if self.phase is Phase.SHADOW:
                try:
                    self.registry.set_status(cid, "canary", reason=f"{reason}: skipping canary")
                except Exception as e:
                    return False, f"cannot promote {cid}: {e}"
            self._promote(now, reason, operator=True)
            ok = self.champion_id == cid
            return ok, f"promoted {cid}" if ok else f"promotion of {cid} refused: {self.last_error}"

    def rollback_now(self, reason: str = "operator request") -> tuple[bool, str]:
        """Withdraw any candidate / job and hand authority to the champion's stable ancestor.
        Nothing is cancelled when there is no ancestor to roll back to."""
        with self._lock:
            now = self.clock()
            if self.champion_id is None or self.phase is Phase.IDLE:
                return False, "no champion in force"
            if self.cache.fallback is None:
                try:
                    self.cache.refresh(self.registry)
                except Exception:
                    pass
            if self.cache.fallback is None:
                return False, f"no stable ancestor of champion {self.champion_id} to roll back to"
            if self.phase is Phase.ADAPTING and self.runner is not None:
                self.runner.cancel()
            if self.phase is Phase.GATING and self.gate is not None:
                self.gate.cancel()
            if self.phase in (Phase.SHADOW, Phase.CANARY):
                self.runtime.install(candidate=None, canary=None)   # held, not rejected
            self._candidate_id, self._candidate = None, None
            return self._rollback(now, reason, {"operator": True, "phase": self.phase.value})

    def status(self) -> dict:
        with self._lock:
            slot = self.runtime.slot
            return {"phase": self.phase.value, "champion": self.champion_id, "candidate": self._candidate_id,
                    "fallback": self.cache.fallback.genome_id if self.cache.fallback else None,
                    "authority_ok": self.authority_ok,
                    "canary_weight": slot.canary.weight if slot.canary else None,
                    "tripped": self.runtime.tripped,
                    "sandbox": self.runner.status if self.runner is not None else "none",
                    "job": self._job.job_id if self._job else None,
                    "in_phase_s": self.clock() - self._entered, "counters": dict(self.counters),
                    "last_error": self.last_error,
                    "shadow": self.runtime.candidate_comparison().to_dict() if slot.candidate else None,
                    "last_transition": self.history[-1] if self.history else None}


def _jsonable(x: Any) -> Any:
    """Plain JSON (no NaN/inf, no numpy) for the registry's canonical JSON and the events topic."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, Enum):
        return x.value
    if x is None or isinstance(x, (str, int, bool)):
        return x
    return str(x)


__all__ = ["AdaptationJob", "AdaptationResult", "AdaptationRunner", "FAIL", "Gate", "GateOutcome", "GateRequest",
           "INCONCLUSIVE", "Orchestrator", "OrchestratorConfig", "OrchestratorError", "PASS", "Phase",
           "TRANSITIONS", "numpy_decode", "predicted_reward"]
