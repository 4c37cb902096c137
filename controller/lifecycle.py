"""The adaptation lifecycle's vocabulary: its phases, the legal transitions, its configuration
(`OrchestratorConfig`: the ``orchestrator`` and ``adapt`` sections of `controller.settings`) and
the small helpers the orchestrator and the gate process share."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np


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


@dataclass(frozen=True)
class OrchestratorConfig:
    """Budgets and thresholds of the lifecycle (the ``orchestrator`` and ``adapt`` sections of
    `controller.settings.Settings`, same names; built by `controller.pipeline`)."""

    robot: str
    job_root: Path
    adapt_enabled: bool = True               # False: drift events are reported, no job starts
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
    # the shadow ticks is failing (a motor wired backwards: the robot falls over and over), and so is
    # one whose own commands saturate on more than `shadow_max_saturation` of them. Staying
    # close to it is no safety property, so the pairwise limits are not applied and the canary is a
    # rescue: full authority for the whole canary time, no divergence guard, joint-bound guard
    # after `rescue_grace_s`. The gate's verdict is the evidence that remains. False: hold instead.
    rescue_failing_champion: bool = True
    rescue_outside_fraction: float = 0.05
    # ... and one that the gate measured on the drifted target at less than this fraction of the
    # candidate's reward (a motor wired backwards inside the joint bounds: the reacher's champion at 1 %
    # of its reward never leaves them, so the live checks cannot see it fail). 0: live evidence only.
    rescue_gate_fraction: float = 0.5
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


def predicted_reward(report: dict | None, who: str = "candidate") -> float | None:
    """Mean per-tick reward the gate measured for the candidate (or `who="incumbent"`: the champion)
    on its target scenarios."""
    if not report:
        return None
    vals = [s.get(who) for s in report.get("scenarios") or []
            if s.get("tag") == "target" and s.get("metric") == "mean_reward"
            and isinstance(s.get(who), (int, float))]
    return float(np.mean(vals)) if vals else None


    if isinstance(x, Enum):
        return x.value
    if x is None or isinstance(x, (str, int, bool)):
        return x
    return str(x)


__all__ = ["OrchestratorConfig", "OrchestratorError", "Phase", "TRANSITIONS", "predicted_reward"]
