"""Joint states -> the policy's observation, measured on the live robot (analytic for the cartpole,
forward kinematics otherwise), and the joint/actuator facts of a simulated plant used as defaults."""
from __future__ import annotations

import math
from typing import Protocol

import numpy as np


class ObservationMap(Protocol):
    """Joint positions/velocities (in the plant's joint order) -> the policy's observation."""

    obs_dim: int
    obs_names: tuple[str, ...]

    def __call__(self, positions: np.ndarray, velocities: np.ndarray) -> np.ndarray: ...


class CartpoleObservation:
    """dm_control cartpole: (cart, cos pole, sin pole, cart velocity, pole angular velocity)."""

    obs_names = ("cart_position", "pole_cos", "pole_sin", "cart_velocity", "pole_angular_velocity")
    obs_dim = 5

    def __call__(self, positions: np.ndarray, velocities: np.ndarray) -> np.ndarray:
        return np.array([positions[0], math.cos(positions[1]), math.sin(positions[1]),
                         velocities[0], velocities[1]])


class KinematicObservation:
    """Any plant whose joints are all hinges/slides: put the measured configuration into a private
    MuJoCo model, run forward kinematics (`mj_forward`, no dynamics step) and read the plant's own
    observation function. Costs one `mj_forward` (tens of microseconds for the walker).

    Limitation: observations that are not functions of the joint state (the reacher's moving
    target, `to_target`) cannot be measured this way; they read the plant's internal state at t=0.
    """

    def __init__(self, plant_name: str) -> None:
        from sim.plants import make_plant  # mujoco/dm_control, never torch
        self.plant = make_plant(plant_name)
        model = self.plant.model
        if model.nq != model.njnt or model.nv != model.njnt:
            raise ValueError(f"plant {plant_name!r}: kinematic observation needs one dof per joint")
        self.obs_names = tuple(self.plant.obs_names)
        self.obs_dim = len(self.obs_names)
        self._qadr = np.array([model.jnt_qposadr[i] for i in range(model.njnt)])
        self._vadr = np.array([model.jnt_dofadr[i] for i in range(model.njnt)])
        self._q = np.zeros(model.nq)
        self._v = np.zeros(model.nv)

    def __call__(self, positions: np.ndarray, velocities: np.ndarray) -> np.ndarray:
        self._q[self._qadr] = positions
        self._v[self._vadr] = velocities
        self.plant.set_qpos_qvel(self._q, self._v)
        return np.asarray(self.plant._observe(), dtype=np.float64)


def make_observation_map(plant_name: str) -> ObservationMap:
    """The observation map for a plant (analytic for the cartpole, kinematic otherwise)."""
    if plant_name == "cartpole":
        return CartpoleObservation()
    return KinematicObservation(plant_name)


def plant_info(plant_name: str) -> dict:
    """Joint names, action size/limits and control period of a plant (for defaults)."""
    from sim.plants import make_plant
    p = make_plant(plant_name)
    return {"joint_names": list(p.joint_names), "act_dim": p.act_dim, "act_low": p.act_low.tolist(),
            "act_high": p.act_high.tolist(), "control_dt": p.control_dt, "obs_names": list(p.obs_names),
            "actuator_names": list(p.actuator_names)}
