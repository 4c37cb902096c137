"""Gate probes act on the robot through the plant's own hooks, for any robot that has them."""
from __future__ import annotations

import numpy as np
import pytest

from safety.episodes import probe_touch
from safety.scenarios import Probe
from sim.plant_task import rollout
from sim.plants import make_plant


def _jt_policy(plant):
    """A zero MLP policy of the plant's sizes (the arm coasts; only the target moves)."""
    from sim.policy import PolicySpec
    spec = PolicySpec(obs_dim=plant.obs_dim, act_dim=plant.act_dim, hidden=(4,), discrete=False)
    return spec, np.zeros(spec.num_params, dtype=np.float32)


def test_target_jump_moves_the_target_of_a_robot_that_has_one():
    plant = make_plant("reacher")
    assert plant.moves_target
    spec, w = _jt_policy(plant)
    at, phase = 5, 1.0
    plain = rollout("reacher", spec, w, 3, 20, plant=make_plant("reacher"))
    probed = rollout("reacher", spec, w, 3, 20, plant=make_plant("reacher"),
                     touch=probe_touch(Probe("target_jump", at=at, phase=phase), 0))
    assert np.array_equal(plain.qpos, probed.qpos)                 # the arm is not touched
    # the target (episode constant: radius, phase) moved by exactly `phase`
    a, b = make_plant("reacher"), make_plant("reacher")
    a.reset(3), b.reset(3)
    probe_touch(Probe("target_jump", at=0, phase=phase), 0)(b, 0)
    assert b.episode_constants()[1] - a.episode_constants()[1] == pytest.approx(phase)
    assert not np.allclose(a.observe(), b.observe())


@pytest.mark.parametrize("robot", ["cartpole", "walker"])
def test_a_robot_without_a_moving_target_refuses_a_jump(robot):
    plant = make_plant(robot)
    assert not plant.moves_target
    with pytest.raises(ValueError, match="no moving target"):
        probe_touch(Probe("target_jump", at=0, phase=1.0), 0)(plant, 0)
