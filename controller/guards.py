"""Guards: the limits that end a challenger's authority in the tick itself.

Why in the tick: a hand-back must not wait for the orchestrator. On any violation while a
challenger has authority (non-finite or failing challenger, action divergence above the limit, a
joint outside its bounds, the incumbent's commands going stale) the tick hands authority back in the
*same* tick and records a `GuardTrip`; the orchestrator later turns it into a state transition and an
audit row. A trip is tied to the authority's generation, so it never leaks into the next candidate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np


@dataclass(frozen=True)
class GuardConfig:
    """Limits that end a challenger's authority at once (see module docstring)."""

    max_divergence: float = 0.5                       # |a_challenger - a_base|_inf
    joint_bounds: tuple[tuple[int, float, float], ...] = ()   # (joint index, low, high) on positions
    incumbent_timeout_s: float = 0.2                  # node canary: incumbent commands must be fresh

    @classmethod
    def from_names(cls, joint_names: Sequence[str], bounds: dict[str, Sequence[float]] | None = None,
                   **kw: Any) -> "GuardConfig":
        out = []
        for name, lohi in (bounds or {}).items():
            if name not in joint_names:
                raise ValueError(f"guard bound for unknown joint {name!r}; joints: {list(joint_names)}")
            lo, hi = (float(x) for x in lohi)
            if not lo < hi:
                raise ValueError(f"guard bound for {name!r}: low {lo} must be < high {hi}")
            out.append((list(joint_names).index(name), lo, hi))
        return cls(joint_bounds=tuple(out), **kw)


@dataclass(frozen=True)
class GuardTrip:
    """A challenger lost its authority in the tick."""

    t: float
    generation: int
    reason: str
    detail: str
    challenger: str | None

    def to_dict(self) -> dict:
        return {"t": self.t, "generation": self.generation, "reason": self.reason,
                "detail": self.detail, "challenger": self.challenger}


def joint_margin(guard: GuardConfig, positions: np.ndarray, joint_names: Sequence[str]) -> tuple[float, str | None]:
    """Smallest distance of a guarded joint to its bounds (negative: outside), and that joint's name."""
    worst, which = math.inf, None
    for i, lo, hi in guard.joint_bounds:
        m = min(positions[i] - lo, hi - positions[i])
        if m < worst:
            worst, which = m, joint_names[i]
    return worst, which


def challenger_violation(guard: GuardConfig, base: np.ndarray, challenger: np.ndarray, margin: float,
                         margin_joint: str | None, names: tuple[str, str], *, check_divergence: bool = True,
                         check_bounds: bool = True) -> tuple[str, str] | None:
    """(reason, detail) of the first guard a challenger with a share of the command breaks, or None.

    `names` = (challenger, base) for the message. A rescue canary skips the divergence guard, and the
    joint-bound guard during its grace period (`Canary`)."""
    div = float(np.max(np.abs(challenger - base)))
    if check_divergence and div > guard.max_divergence:
        return "divergence", f"|a_{names[0]} - a_{names[1]}| = {div:.3g} > {guard.max_divergence:g}"
    if check_bounds and margin < 0.0:
        return "joint_bounds", f"joint {margin_joint} outside its bounds by {-margin:.3g}"
    return None
