"""The gate report: every number that drove a verdict (`safety.gate`), as plain JSON (`to_dict`),
attached to the registry and hashed into its audit log."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from sim.atomicio import json_safe

REPORT_FORMAT = "driftgate-gate-report"
REPORT_VERSION = 1


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class StaticResult:
    passed: bool
    checks: list[Check]

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


@dataclass
class HurdleResult:
    ran: bool
    passed: bool
    scenario: str | None = None
    horizon: int = 0
    margin: float = 0.0
    rows: list[dict] = field(default_factory=list)
    mean_diff: float | None = None
    reason: str | None = None


@dataclass
class ScenarioResult:
    """One scenario's verdict and the numbers behind it. `candidate` / `incumbent` are the means of
    the metric over seeds; `per_seed` holds every paired value; `status` is pass/fail/inconclusive."""

    name: str
    tag: str
    metric: str
    horizon: int
    n: int
    candidate: float | None
    incumbent: float | None
    diff_mean: float | None
    diff_ci: list[float] | None
    candidate_ci: list[float] | None
    wilcoxon_p: float | None
    ci_level: float
    rule: dict
    status: str
    passed: bool
    reasons: list[str]
    violations: list[dict]
    incumbent_violations: list[dict]
    per_seed: list[dict]
    drift: dict
    drift_hash: str


@dataclass
class GateReport:
    """The whole evidence for one verdict; `to_dict()` is the JSON contract (see `safety.gate`)."""

    verdict: str
    reasons: list[str]
    stage: str                  # last stage that ran: static | hurdle | suite
    candidate: dict
    incumbent: dict | None
    suite: dict
    config: dict
    static: dict
    hurdle: dict
    scenarios: list[ScenarioResult]
    violations: list[dict]
    timings: dict
    rollouts: int
    notes: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    format: str = REPORT_FORMAT
    version: int = REPORT_VERSION

    def to_dict(self) -> dict:
        return json_safe(asdict(self))   # the registry refuses NaN: non-finite -> None

