"""What crosses between the orchestrator and the processes it drives: sandbox jobs and gate verdicts.

Small on purpose: the orchestrator (`controller.orchestrator`) depends only on these, and the
process-backed implementations (`controller.jobs`: the sandbox launcher `sim.sandbox_launch`, the
`safety.gate` child) plug in behind the two protocols. Both are polled, never waited on, so a hung
child can never stall the state machine.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"


class JobError(RuntimeError):
    """A runner or gate was used wrongly (e.g. started twice)."""


@dataclass(frozen=True)
class AdaptationJob:
    """One sandbox job, as the orchestrator hands it to a runner. `job_dir` exists and is empty: the
    runner writes it in its sandbox's format (`controller.jobs`), so the orchestrator does not
    depend on one sandbox's file layout."""

    job_id: str
    job_dir: Path
    robot: str                            # a built-in name or a robot profile path (settings' robot)
    seed: int
    budgets: dict                         # job.json fields by AdaptJob's names: budget_s, max_generations, ...
    seeds: tuple = ()                     # Genomes: the champion first, then its stable fallback
    window: Any = None                    # controller.drift.TelemetryWindow of the alarm, or None
    drift_event: dict | None = None       # JSON summary of the DriftEvent
    drift: dict | None = None             # adapt.drift: a DriftSpec for jobs without telemetry / the policy
                                          # sandbox's target (job.json's drift)

    @property
    def seed_ids(self) -> tuple[str, ...]:
        return tuple(g.id for g in self.seeds)


@dataclass(frozen=True)
class AdaptationResult:
    """What a finished job answered (through its directory only)."""

    ok: bool
    candidates: tuple[Path, ...] = ()
    drift_estimate: dict | None = None
    error: str | None = None
    result: dict = field(default_factory=dict)
    wall_s: float = 0.0


class AdaptationRunner(Protocol):
    """Runs at most one job at a time in another process. `poll` never blocks; it enforces the
    job's wall-clock budget (kill on expiry) and reports a crash as `ok=False`."""

    def start(self, job: AdaptationJob) -> None: ...
    def poll(self) -> AdaptationResult | None: ...
    def cancel(self) -> None: ...
    @property
    def status(self) -> str: ...


@dataclass(frozen=True)
class GateRequest:
    candidate_id: str
    target_drift: dict | None = None     # the drift estimate the candidate was evolved for


@dataclass(frozen=True)
class GateOutcome:
    """The gate's answer. `report_id` is set when the gate attached its report to the registry
    itself; otherwise the orchestrator attaches `report` (or a minimal one) before acting on it."""

    verdict: str
    reasons: tuple[str, ...] = ()
    report: dict | None = None
    report_id: int | None = None
    predicted_reward: float | None = None    # per-tick reward the gate measured on the target
    incumbent_reward: float | None = None    # ... and the champion's, on the same target episodes

    def __post_init__(self) -> None:
        if self.verdict not in (PASS, FAIL, INCONCLUSIVE):
            raise ValueError(f"gate verdict must be PASS, FAIL or INCONCLUSIVE, got {self.verdict!r}")


class Gate(Protocol):
    """Judges one registered candidate at a time; `poll` never blocks."""

    def start(self, request: GateRequest) -> None: ...
    def poll(self) -> GateOutcome | None: ...
    def cancel(self) -> None: ...


