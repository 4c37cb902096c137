"""A robot's hard limits: what it must never do, whatever its return (the gate's hard constraints).
Data of the robot, not of the gate: each plant states its own (`Plant.hard_limits`), a profile robot
from its profile's safety block."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import mujoco

JOINT_TOL = 0.15  # rad: MuJoCo joint limits are soft; the nominal reacher overshoots its wrist range by ~0.09
SLIDE_TOL = 0.05  # of a slide joint's range width: the same softness, in metres
StateLimit = tuple[str, "float | None", "float | None"]   # (joint name, low, high); None: that side is open


@dataclass(frozen=True)
class HardLimits:
    """What the robot must never do, whatever its return (the safety gate's hard constraints).

    `state`: (joint, low, high) on `Plant.joint_positions()` by `Plant.joint_names`; `falls`: a fall
    (`Plant.fallen_batch`: body height / tilt conditions, which joint positions cannot express) is a
    violation too. Data of the robot, not of the gate: each plant states its own."""

    state: tuple[StateLimit, ...] = ()
    falls: bool = False


def joint_range_limits(model: mujoco.MjModel, names: Sequence[str], joints: Sequence[int],
                       tol: float = JOINT_TOL, slide_tol: float = SLIDE_TOL) -> tuple[StateLimit, ...]:
    """(name, low - tol, high + tol) of every *limited* joint among `joints` (MuJoCo ids, named
    `names`): MuJoCo's limits are soft, so the model's own range plus a margin is a hard limit."""
    out = []
    for name, j in zip(names, joints):
        if not model.jnt_limited[j]:
            continue
        lo, hi = (float(x) for x in model.jnt_range[j])
        margin = slide_tol * (hi - lo) if int(model.jnt_type[j]) == int(mujoco.mjtJoint.mjJNT_SLIDE) else tol
        out.append((name, lo - margin, hi + margin))
    return tuple(out)
