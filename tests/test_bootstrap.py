"""A first champion for any robot: from the robot's own nominal controller when it is linear state
feedback (the plant says so, `Plant.nominal_feedback`), else from a champion file; bootstrap itself
knows no robot."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from controller.bootstrap import bootstrap_registry, feedback_policy_genome, lqr_policy_genome, nominal_policy_genome
from safety.registry import Registry
from sim.genome import Genome
from sim.plants import make_plant
from sim.policy import PolicySpec, policy_act

ROBOTS = Path(__file__).resolve().parents[1] / "launch" / "robots"


def _old_lqr_genome(eps: float = 0.05, sign: float = 1.0) -> Genome:
    """What controller/bootstrap.py computed before the nominal controller moved to the plant (copied)."""
    K = np.asarray(make_plant("cartpole").nominal_controller().K, dtype=np.float64).reshape(-1)
    spec = PolicySpec(obs_dim=5, act_dim=1, hidden=(4,), discrete=False, act_low=-1.0, act_high=1.0)
    W1 = np.zeros((4, 5))
    for row, col in enumerate((0, 2, 3, 4)):
        W1[row, col] = eps
    W2 = (-sign * K / eps).reshape(1, 4)
    vec = np.concatenate([W1.ravel(), np.zeros(4), W2.ravel(), np.zeros(1)]).astype(np.float32)
    return Genome(vector=vec, policy_spec=spec, kind="policy",
                  fitness={"source": "nominal LQR", "eps": eps, "sign": sign})


@pytest.mark.parametrize("kw", [{}, {"eps": 0.06}, {"sign": -1.0}, {"eps": 0.07, "sign": -1.0}])
def test_default_robot_genome_is_bit_identical_to_before(kw):
    new, old = lqr_policy_genome(**kw), _old_lqr_genome(**kw)
    assert new.vector.tobytes() == old.vector.tobytes()
    assert new.policy_spec == old.policy_spec and new.fitness == old.fitness and new.id == old.id
    assert nominal_policy_genome("cartpole", **kw).id == old.id


def test_feedback_genome_acts_as_the_linear_controller():
    K = np.array([[1.0, -2.0, 0.5], [0.3, 0.0, -1.0]])
    g = feedback_policy_genome(K, (0, 2, 3), obs_dim=4, eps=0.01)
    rng = np.random.default_rng(0)
    for _ in range(20):
        obs = rng.normal(0.0, 0.05, size=4)
        want = np.clip(-K @ obs[[0, 2, 3]], -1.0, 1.0)
        got = policy_act(g.policy_spec, g.vector[None].astype(np.float32), obs[None])[0]
        assert np.allclose(got, want, atol=1e-3)


@pytest.mark.parametrize("robot", ["walker", "reacher", str(ROBOTS / "pusher.yaml")])
def test_a_robot_without_a_linear_nominal_controller_is_refused_by_name(robot):
    with pytest.raises(ValueError, match="no linear nominal controller.*champion"):
        nominal_policy_genome(robot)


def test_any_robot_bootstraps_from_a_champion_genome(tmp_path):
    robot = str(ROBOTS / "ant.yaml")
    plant = make_plant(robot)
    spec = PolicySpec(obs_dim=plant.obs_dim, act_dim=plant.act_dim, hidden=(8,), discrete=False)
    vec = np.random.default_rng(1).normal(0, 0.1, spec.num_params).astype(np.float32)
    g = Genome(vector=vec, policy_spec=spec, kind="policy")
    gid = bootstrap_registry(tmp_path / "reg", g, plant=robot)
    assert gid == g.id
    with Registry(tmp_path / "reg") as reg:
        assert reg.champion_id() == g.id
    assert bootstrap_registry(tmp_path / "reg", plant=robot) == g.id      # a champion is kept
    with pytest.raises(ValueError, match="ant"):
        bootstrap_registry(tmp_path / "other", plant=robot)              # no champion, no linear controller
