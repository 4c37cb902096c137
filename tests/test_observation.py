"""The live observation map is a property of the plant (its closed form when it has one, forward
kinematics of its model otherwise), never a branch on a robot's name."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sim import plants
from sim.observation import KinematicObservation, make_observation_map
from sim.plants import Walker, make_plant

ROBOTS = Path(__file__).resolve().parents[1] / "launch" / "robots"


def _states(plant, n: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    for k in range(n):
        plant.reset(k)
        q = plant.data.qpos.copy()
        q[plant.joint_qpos_adr] += rng.normal(0, 0.2, len(plant.joint_qpos_adr))
        v = rng.normal(0, 0.5, plant.model.nv)
        plant.set_qpos_qvel(q, v)
        yield plant.joint_positions(), plant.joint_velocities()


def test_analytic_map_of_the_cartpole_is_its_observation():
    plant = make_plant("cartpole")
    obs_map = make_observation_map("cartpole")
    assert not isinstance(obs_map, KinematicObservation) and obs_map.obs_names == plant.obs_names
    for q, v in _states(plant):
        assert np.allclose(obs_map(q, v), plant._observe(), atol=1e-12)


def test_a_plant_without_a_closed_form_is_measured_by_kinematics():
    plant = make_plant("walker")
    obs_map = make_observation_map("walker")
    assert isinstance(obs_map, KinematicObservation) and obs_map.obs_dim == plant.obs_dim
    for q, v in _states(plant):
        assert len(q) == len(plant.joint_names)
        assert np.array_equal(obs_map(q, v), plant._observe())


def test_a_profile_robot_is_observed_as_measured():
    """A profile's observation is measured channels (joint states, + IMU / odometry): no model."""
    from sim.observation import ProfileObservation
    robot = str(ROBOTS / "pusher.yaml")
    plant = make_plant(robot)
    obs_map = make_observation_map(robot)
    assert isinstance(obs_map, ProfileObservation) and obs_map.obs_dim == plant.obs_dim
    assert obs_map.base_sensors == ()
    for q, v in _states(plant):
        assert np.array_equal(obs_map(q, v), plant._observe())


def test_the_choice_is_the_plants_not_the_name(monkeypatch):
    """A robot under a new name whose plant offers a closed form gets it; nothing looks at names."""
    sentinel = object()

    class Closed(Walker):
        @classmethod
        def analytic_observation(cls):
            return sentinel

    monkeypatch.setitem(plants.PLANTS, "some_new_robot", Closed)
    assert make_observation_map("some_new_robot") is sentinel
