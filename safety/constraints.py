"""Hard constraints: limits a candidate must never cross, whatever its return.

Why separate from the statistics: a return can be traded off, a crash into the cart's end stop
cannot. The gate's last stage checks every candidate rollout against these limits and one
violation anywhere is a FAIL, however good the averages look (the Simplex rule: the safety
controller's envelope is not negotiable). The incumbent's rollouts are checked too, but only for the
record: the incumbent usually *does* break them on the drifted target, which is why we are gating.

Checked per rollout:

* ``finite``          the episode stayed finite (no NaN/inf observation or reward);
* ``state_limits``    joint positions (``Rollout.qpos``, the plant's joint order) within the robot's bounds;
* ``falls``           the robot did not fall (its fall conditions: body height / tilt), when its limits say so;
* ``max_saturation``  fraction of action components pinned at +-1 (a bang-bang policy wears the
                      motor and leaves no authority to reject a disturbance);
* ``max_jerk``        RMS second difference of the actions per tick (chattering).

The state limits and the fall rule are the robot's own data (`default_limits`): the plant's
`hard_limits()` (`sim.plants.limits.HardLimits`): a hand-coded plant states its table next to its
model, a profile robot gets them from its profile's ``safety`` block (``joint_bounds`` as written,
else the model's joint ranges plus a soft-limit margin, and ``fall`` conditions). Nothing here
knows a robot.

Saturation 0.5 and jerk 1.0 (actions live in [-1, 1]) leave a wide berth to every nominal controller
measured (a balancing LQR: 0 / 0.0003; a squatting biped: 0 / 0.002; a Jacobian-transpose arm:
<= 0.16 / <= 0.12) and catch a bang-bang policy (the LQR x100: 0.97 / ~4). A suite may override
any of them per scenario.
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class Limits:
    """Hard limits for one scenario. `state` maps joint name -> (low, high); None = unbounded side."""

    state: tuple[tuple[str, float | None, float | None], ...] = ()
    max_saturation: float = 0.5
    max_jerk: float = 1.0
    falls: bool = False       # a fall (the plant's fall conditions) is a violation

    def to_dict(self) -> dict:
        out = {"state": {j: [lo, hi] for j, lo, hi in self.state},
               "max_saturation": self.max_saturation, "max_jerk": self.max_jerk}
        if self.falls:
            out["falls"] = True
        return out


@dataclass(frozen=True)
class Violation:
    """One hard-constraint violation of one rollout: what, where, how much, against which limit."""

    kind: str                 # "non_finite" | "state_limit" | "fall" | "saturation" | "jerk"
    value: float | None
    limit: float | None
    joint: str | None = None
    scenario: str | None = None
    seed: int | None = None
    stage: str | None = None  # "hurdle" | "suite"

    def describe(self) -> str:
        where = f"{self.scenario} seed {self.seed}" if self.scenario is not None else "rollout"
        if self.kind == "non_finite":
            return f"{where}: the episode went non-finite (NaN/inf state or reward)"
        if self.kind == "fall":
            return f"{where}: the robot fell (its fall conditions held)"
        if self.kind == "state_limit":
            return f"{where}: joint {self.joint} reached {self.value:.3g}, limit {self.limit:.3g}"
        value = "non-finite" if self.value is None else f"{self.value:.3g}"
        return f"{where}: {self.kind} {value} > limit {self.limit:.3g}"

    def to_dict(self) -> dict:
        return asdict(self)


def default_limits(plant: Any) -> Limits:
    """The robot's own hard limits: `plant` is a plant instance or what `make_plant` takes (a built-in
    name or a robot profile), whose `hard_limits()` says them."""
    if isinstance(plant, str):
        return _limits_of(plant)
    hard = plant.hard_limits()
    return Limits(state=tuple(hard.state), falls=bool(hard.falls))


@functools.lru_cache(maxsize=32)
def _limits_of(plant: str) -> Limits:
    from sim.plants import make_plant  # mujoco: only when a robot is named
    return default_limits(make_plant(plant))


def limits_for(plant: str, overrides: Mapping[str, Any] | None = None) -> Limits:
    """The robot's limits (`default_limits`) with a suite's `constraints:` overrides applied.

    `overrides` may set ``max_saturation``, ``max_jerk`` and ``state`` (joint -> [low, high], a
    null side is unbounded; a joint mapped to null drops its default limit). Values are validated
    by the suite loader; this function trusts them.
    """
    base = default_limits(plant)
    if not overrides:
        return base
    out = base
    if "max_saturation" in overrides:
        out = replace(out, max_saturation=float(overrides["max_saturation"]))
    if "max_jerk" in overrides:
        out = replace(out, max_jerk=float(overrides["max_jerk"]))
    if "state" in overrides:
        state = {j: (lo, hi) for j, lo, hi in out.state}
        for joint, bounds in overrides["state"].items():
            if bounds is None:
                state.pop(joint, None)
            else:
                state[joint] = (None if bounds[0] is None else float(bounds[0]),
                                None if bounds[1] is None else float(bounds[1]))
        out = replace(out, state=tuple((j, lo, hi) for j, (lo, hi) in state.items()))
    return out


def check_rollout(limits: Limits, joint_names: Sequence[str], qpos: np.ndarray, actions: np.ndarray,
                  finite: bool, saturation: float, jerk: float, fell: bool = False) -> list[Violation]:
    """Every violation of `limits` in one rollout (empty list: clean). Pure: arrays in, list out.

    For a state limit the reported value is the worst excursion (the extreme beyond the bound).
    """
    out: list[Violation] = []
    if not finite:
        out.append(Violation("non_finite", None, None))
    q = np.asarray(qpos, dtype=np.float64)
    for joint, lo, hi in limits.state:
        if joint not in joint_names:
            raise ValueError(f"state limit on unknown joint {joint!r}; joints: {list(joint_names)}")
        col = q[:, list(joint_names).index(joint)]
        col = col[np.isfinite(col)]
        if col.size == 0:
            continue
        if lo is not None and col.min() < lo:
            out.append(Violation("state_limit", float(col.min()), float(lo), joint=joint))
        if hi is not None and col.max() > hi:
            out.append(Violation("state_limit", float(col.max()), float(hi), joint=joint))
    if limits.falls and fell:
        out.append(Violation("fall", None, None))
    if not (saturation <= limits.max_saturation):
        out.append(Violation("saturation", float(saturation), limits.max_saturation))
    if not (jerk <= limits.max_jerk):
        out.append(Violation("jerk", float(jerk) if math.isfinite(jerk) else None, limits.max_jerk))
    return out


def __getattr__(name: str):
    """`JOINT_TOL` lives with the plants (sim.plants.base); imported lazily (MuJoCo / dm_control)."""
    if name == "JOINT_TOL":
        from sim.plants.limits import JOINT_TOL
        return JOINT_TOL
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["JOINT_TOL", "Limits", "Violation", "check_rollout", "default_limits", "limits_for"]
