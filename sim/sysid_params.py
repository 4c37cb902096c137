"""What system identification searches, and how its answer becomes a DriftSpec.

Parameter sets leave out what motion cannot tell apart: scaling every mass, every motor gain and
every damping by the same factor leaves the motion unchanged (only gravity and any mass held fixed
break the tie), so the cartpole set has the pole mass and the motor gain but not the cart mass.
Scales are searched in log space, actuator gains linearly over a range that includes negative
values (a reversed motor). `DEFAULT_HORIZON` / `DEFAULT_WINDOWS`: the replay's prediction horizon
and window count per robot (`sim.sysid_replay`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.drift_spec import DriftSpec, compose


@dataclass(frozen=True)
class Param:
    """One identified quantity: a DriftSpec table entry and its search range (natural units)."""

    field: str
    key: str
    lo: float
    hi: float

    @property
    def name(self) -> str:
        return f"{self.field}.{self.key}"

    @property
    def signed(self) -> bool:
        return self.lo < 0 < self.hi

    @property
    def log(self) -> bool:
        return not self.signed

    def to_search(self, x: float) -> float:
        return float(np.log(x)) if self.log else float(x)

    def from_search(self, u: float) -> float:
        if self.log:
            return float(np.exp(u))
        return float(u) if abs(u) >= 1e-3 else float(np.copysign(1e-3, u))  # gain 0 is invalid

    @property
    def search_bounds(self) -> tuple[float, float]:
        return self.to_search(self.lo), self.to_search(self.hi)


PARAMETER_SETS: dict[str, tuple[Param, ...]] = {
    "cartpole": (
        Param("mass_scale", "pole_1", 0.2, 5.0),
        Param("actuator_gain", "slide", -3.0, 3.0),
        Param("damping_scale", "slider", 0.1, 1e4),
    ),
    "walker": (
        Param("mass_scale", "torso", 0.3, 3.0),
        *(Param("actuator_gain", a, -3.0, 3.0) for a in
          ("right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle")),
        Param("friction_scale", "*", 0.1, 3.0),
        Param("damping_scale", "right_knee", 0.1, 20.0),
        Param("damping_scale", "left_knee", 0.1, 20.0),
    ),
    "reacher": (
        Param("mass_scale", "hand", 0.2, 5.0),
        Param("actuator_gain", "shoulder", -3.0, 3.0),
        Param("actuator_gain", "wrist", -3.0, 3.0),
        Param("damping_scale", "shoulder", 0.1, 20.0),
        Param("damping_scale", "wrist", 0.1, 20.0),
    ),
}
# prediction horizon (ticks) and number of windows per plant: about 0.15-0.4 s ahead, short enough
# that the open-loop replay of a closed-loop-stabilised robot does not diverge from start noise
DEFAULT_HORIZON = {"cartpole": 25, "walker": 16, "reacher": 15}
DEFAULT_WINDOWS = {"cartpole": 60, "walker": 24, "reacher": 60}


def spec_from_params(params: dict[str, float], known: DriftSpec | None = None) -> DriftSpec:
    """DriftSpec for {"mass_scale.pole_1": 3.0, ...} stacked on top of `known` drift."""
    tables: dict[str, dict[str, float]] = {}
    for name, x in params.items():
        fld, key = name.split(".", 1)
        tables.setdefault(fld, {})[key] = float(x)
    return compose(known, DriftSpec(**tables))


__all__ = ["DEFAULT_HORIZON", "DEFAULT_WINDOWS", "PARAMETER_SETS", "Param", "spec_from_params"]
