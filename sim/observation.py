"""Joint states -> the policy's observation, measured on the live robot (the plant's closed form when it
has one, `Plant.analytic_observation`, forward kinematics of its model otherwise), and the
joint/actuator facts of a simulated plant used as defaults."""
from __future__ import annotations

from typing import Protocol

import numpy as np


class ObservationMap(Protocol):
    """Joint positions/velocities (in the plant's joint order) -> the policy's observation."""

    obs_dim: int
    obs_names: tuple[str, ...]

    def __call__(self, positions: np.ndarray, velocities: np.ndarray) -> np.ndarray: ...


class KinematicObservation:
    """Any plant whose observed joints are hinges/slides: put the measured configuration into a
    private MuJoCo model, run forward kinematics (`mj_forward`, no dynamics step) and read the plant's
    own observation function. Costs one `mj_forward` (tens of microseconds for the walker).

    Limitation: observations that are not functions of the joint states (a moving target, a
    floating base's pose, joints the robot does not publish) cannot be measured this way; they read
    the plant's internal state at t=0.
    """

    def __init__(self, plant_name: str) -> None:
        import mujoco

        from sim.plants import make_plant  # mujoco/dm_control, never torch
        self.plant = make_plant(plant_name)
        model = self.plant.model
        self._qadr = np.asarray(self.plant.joint_qpos_adr, dtype=int)
        self._vadr = np.asarray(self.plant.joint_dof_adr, dtype=int)
        one_dof = {int(model.jnt_qposadr[j]) for j in range(model.njnt)
                   if int(model.jnt_type[j]) in (mujoco.mjtJoint.mjJNT_SLIDE, mujoco.mjtJoint.mjJNT_HINGE)}
        if not set(self._qadr.tolist()) <= one_dof:
            raise ValueError(f"plant {plant_name!r}: kinematic observation needs one dof per joint")
        self.obs_names = tuple(self.plant.obs_names)
        self.obs_dim = len(self.obs_names)
        self._q = self.plant.data.qpos.copy()
        self._v = np.zeros(model.nv)

    def __call__(self, positions: np.ndarray, velocities: np.ndarray) -> np.ndarray:
        self._q[self._qadr] = positions
        self._v[self._vadr] = velocities
        self.plant.set_qpos_qvel(self._q, self._v)
        return np.asarray(self.plant._observe(), dtype=np.float64)


def make_observation_map(plant_name: str) -> ObservationMap:
    """The observation map for a plant: its closed form when it has one (`Plant.analytic_observation`),
    forward kinematics of its model otherwise."""
    from sim.plants import plant_class
    analytic = plant_class(plant_name).analytic_observation()
    return analytic if analytic is not None else KinematicObservation(plant_name)


def __getattr__(name: str):
    """`CartpoleObservation` moved to its plant (sim.plants.cartpole); imported lazily (dm_control)."""
    if name == "CartpoleObservation":
        from sim.plants.cartpole import CartpoleObservation
        return CartpoleObservation
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def plant_info(plant_name: str) -> dict:
    """Joint names, action size/limits and control period of a plant (for defaults)."""
    from sim.plants import make_plant
    p = make_plant(plant_name)
    return {"joint_names": list(p.joint_names), "act_dim": p.act_dim, "act_low": p.act_low.tolist(),
            "act_high": p.act_high.tolist(), "control_dt": p.control_dt, "obs_names": list(p.obs_names),
            "actuator_names": list(p.actuator_names)}
