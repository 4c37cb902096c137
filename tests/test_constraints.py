"""The gate's hard limits are the robot's data: the built-ins keep exactly their limits, a robot known
only by its profile gets its own from the profile's safety block, and a fall is a violation where
the profile names fall conditions."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from safety.constraints import JOINT_TOL, Limits, check_rollout, default_limits, limits_for
from safety.suite import parse_suite
from sim.plant_task import rollout
from sim.plants import make_plant
from sim.policy import PolicySpec

ROBOTS = Path(__file__).resolve().parents[1] / "launch" / "robots"
DEG = math.pi / 180.0

# the table safety/constraints.py held before the limits moved to the plants (copied, not imported)
_LEGS = {f"{side}_{j}": r for side in ("right", "left")
         for j, r in (("hip", (-20 * DEG, 100 * DEG)), ("knee", (-150 * DEG, 0.0)), ("ankle", (-45 * DEG, 45 * DEG)))}
BEFORE = {
    "cartpole": (("slider", -1.8, 1.8), ("hinge_1", -math.pi / 2, math.pi / 2)),
    "walker": (("rootz", -0.5, None), ("rooty", -1.0, 1.0))
    + tuple((j, lo - JOINT_TOL, hi + JOINT_TOL) for j, (lo, hi) in _LEGS.items()),
    "reacher": (("wrist", -160 * DEG - 0.25, 160 * DEG + 0.25),),   # WRIST_TOL: pressed into its soft stop by tracking
}


@pytest.mark.parametrize("robot", sorted(BEFORE))
def test_builtin_robots_keep_exactly_their_limits(robot):
    limits = limits_for(robot)
    assert limits.state == BEFORE[robot]
    assert limits.falls is False and limits.max_saturation == 0.5 and limits.max_jerk == 1.0
    assert "falls" not in limits.to_dict()           # the reports of the built-ins read as before


@pytest.mark.parametrize("robot", sorted(BEFORE))
def test_builtin_verdicts_are_unchanged(robot):
    """Random excursions around each limit get the same violations from the old table and the new one."""
    plant = make_plant(robot)
    names = plant.joint_names
    rng = np.random.default_rng(0)
    old = Limits(state=BEFORE[robot])
    for _ in range(50):
        q = rng.normal(0.0, 1.5, size=(20, len(names)))
        a = rng.uniform(-1, 1, size=(19, plant.act_dim))
        got = check_rollout(limits_for(robot), names, q, a, True, 0.1, 0.1, fell=bool(rng.integers(2)))
        want = check_rollout(old, names, q, a, True, 0.1, 0.1)
        assert got == want


def test_profile_robot_gets_limits_from_its_profile():
    """pusher.yaml (joint_bounds: from_model, no fall): every observed joint within its model range
    plus the soft-limit margin, and nothing else."""
    robot = str(ROBOTS / "pusher.yaml")
    plant = make_plant(robot)
    model = plant.model
    limits = limits_for(robot)
    assert [j for j, _, _ in limits.state] == plant.joint_names
    for joint, lo, hi in limits.state:
        r_lo, r_hi = model.jnt_range[model.joint(joint).id]
        assert (lo, hi) == (r_lo - JOINT_TOL, r_hi + JOINT_TOL)
    assert limits.falls is False


def test_explicit_bounds_are_exact_and_fall_conditions_count():
    """cartpole.yaml writes its bounds (no margin) and names a fall; ant.yaml's model ranges are
    widened to hold its start distribution (the start pose +- 5 qpos_noise), never narrowed."""
    cart = limits_for(str(ROBOTS / "cartpole.yaml"))
    assert cart.state == (("slider", -1.8, 1.8), ("hinge_1", -1.5708, 1.5708)) and cart.falls
    ant = make_plant(str(ROBOTS / "ant.yaml"))
    limits = default_limits(ant)
    assert limits.falls and [j for j, _, _ in limits.state] == ant.joint_names
    bounds = {j: (lo, hi) for j, lo, hi in limits.state}
    lo, hi = bounds["ankle_1"]
    init = ant.profile.doc.initial_state
    start = init.qpos.get("ankle_1", 0.0)
    assert lo == pytest.approx(min(30 * DEG - JOINT_TOL, start - 5 * init.qpos_noise))
    assert hi == pytest.approx(max(70 * DEG + JOINT_TOL, start + 5 * init.qpos_noise))
    for seed in range(50):                              # no start of the distribution breaks a limit
        ant.reset(seed)
        q = ant.joint_positions()
        assert all(lo <= q[i] <= hi for i, (_, lo, hi) in enumerate(limits.state))


def _zero_policy(plant) -> tuple[PolicySpec, np.ndarray]:
    spec = PolicySpec(obs_dim=plant.obs_dim, act_dim=plant.act_dim, hidden=(4,), discrete=False)
    return spec, np.zeros(sum(int(np.prod(shape)) for _, shape in spec.tensors), dtype=np.float32)


def test_a_fall_is_a_violation_of_a_profile_robot():
    """The pole of cartpole.yaml falls without control (fall: pole_1 tilted past 90 deg) and the
    rollout says so; a fall counts only when the limits say falls are violations."""
    robot = str(ROBOTS / "cartpole.yaml")
    spec, w = _zero_policy(make_plant(robot))
    ro = rollout(robot, spec, w, seed=0, horizon=400)
    assert ro.fell
    limits = limits_for(robot, {"state": {"hinge_1": None}})
    kinds = [v.kind for v in check_rollout(limits, make_plant(robot).joint_names, ro.qpos, ro.actions, ro.finite,
                                           ro.saturation, ro.jerk, fell=ro.fell)]
    assert kinds == ["fall"]
    assert check_rollout(Limits(), [], ro.qpos[:, :0], ro.actions, True, 0.0, 0.0, fell=True) == []


def test_a_balanced_profile_robot_does_not_fall():
    """The nominal LQR, written for the profile's own observation (joint positions, then velocities),
    keeps the pole of cartpole.yaml up: no fall, no violation."""
    from controller.bootstrap import feedback_policy_genome
    robot = str(ROBOTS / "cartpole.yaml")
    plant = make_plant(robot)
    fb = make_plant("cartpole").nominal_feedback()          # on (cart, angle, cart velocity, angular velocity)
    g = feedback_policy_genome(fb.K, (0, 1, 2, 3), plant.obs_dim)
    ro = rollout(robot, g.policy_spec, g.vector, seed=0, horizon=400)
    assert ro.finite and not ro.fell
    assert check_rollout(limits_for(robot), plant.joint_names, ro.qpos, ro.actions, ro.finite, ro.saturation,
                         ro.jerk, fell=ro.fell) == []


def test_a_suite_for_a_profile_robot_carries_its_limits(tmp_path):
    robot = str(ROBOTS / "ant.yaml")
    suite = parse_suite({"version": 1, "name": "ant-test", "plant": robot,
                         "scenarios": [{"name": "heavy", "tag": "target", "drift": {"mass_scale": {"torso": 2.0}},
                                        "seeds": 5},
                                       {"name": "nominal", "tag": "nominal", "drift": {}, "seeds": 5}]})
    for scenario in suite.scenarios:
        assert scenario.limits == default_limits(make_plant(robot))
        assert scenario.limits.falls and len(scenario.limits.state) == 8
