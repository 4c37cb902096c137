"""Joint states -> the policy's observation, measured on the live robot (the plant's closed form when it
has one, `Plant.analytic_observation`, forward kinematics of its model otherwise), and the
joint/actuator facts of a simulated plant used as defaults."""
from __future__ import annotations

from typing import Protocol

import numpy as np


BASE_CHANNELS = ("imu", "odom")   # observation name prefixes of sensor_msgs/Imu and nav_msgs/Odometry


class ObservationMap(Protocol):
    """Joint positions/velocities (in the plant's joint order) -> the policy's observation."""

    obs_dim: int
    obs_names: tuple[str, ...]

    def __call__(self, positions: np.ndarray, velocities: np.ndarray) -> np.ndarray: ...


class KinematicObservation:
    """Any plant whose observed joints are hinges/slides: put the measured configuration into a
    private MuJoCo model, run forward kinematics (`mj_forward`, no dynamics step) and read the plant's
    own observation function. Costs one `mj_forward` (tens of microseconds for the walker).

    A base the joint states do not carry (a profile's ``observe.imu`` / ``observe.odometry``: a
    floating or planar base) is measured on topics of its own: `measure` takes the latest IMU or
    odometry values and they replace those channels of every observation from then on (the node
    subscribes to `base_topics`). Why: forward kinematics of the joint states alone leaves the base
    where the model starts it, so a legged robot's policy (and the drift monitor) would see a torso
    that never moves.

    Limitation: other observations that are not functions of the joint states (a moving target,
    joints the robot does not publish) cannot be measured this way; they read the plant's internal
    state at t=0.
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
        # channel ("imu" / "odom") -> its columns in the observation, in the profile's order
        self.base_channels = {ch: np.array([i for i, n in enumerate(self.obs_names) if n.startswith(ch + ".")])
                              for ch in BASE_CHANNELS}
        self.base_channels = {ch: cols for ch, cols in self.base_channels.items() if cols.size}
        self._measured: dict[str, np.ndarray] = {}
        self.base_counts = {"measured": 0, "refused": 0}

    def base_topics(self) -> dict[str, str]:
        """channel -> the topic the robot publishes it on (the profile's observe.imu / observe.odometry)."""
        return base_topics(self.plant)

    def measure(self, channel: str, values) -> bool:
        """The latest `channel` reading (IMU: orientation w x y z, angular velocity x y z in its own
        frame; odometry: position x y z, linear velocity x y z in the world frame). Refused (False,
        counted, the previous reading kept) when the channel is unknown, the size is wrong or a value
        is not finite: bad input never reaches the policy. One reference swap: safe beside the tick."""
        cols = self.base_channels.get(channel)
        try:
            v = np.array(values, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            v = None
        if cols is None or v is None or v.shape != cols.shape or not np.isfinite(v).all():
            self.base_counts["refused"] += 1
            return False
        self._measured[channel] = v
        self.base_counts["measured"] += 1
        return True

    def __call__(self, positions: np.ndarray, velocities: np.ndarray) -> np.ndarray:
        self._q[self._qadr] = positions
        self._v[self._vadr] = velocities
        self.plant.set_qpos_qvel(self._q, self._v)
        obs = np.asarray(self.plant._observe(), dtype=np.float64)
        for channel, values in list(self._measured.items()):
            obs[self.base_channels[channel]] = values
        return obs


def base_topics(plant) -> dict[str, str]:
    """channel ("imu" / "odom") -> the topic a robot publishes its base on: a profile plant's
    observe.imu / observe.odometry (built-in plants observe no base: {})."""
    observe = getattr(getattr(getattr(plant, "profile", None), "doc", None), "observe", None)
    topics = {"imu": getattr(getattr(observe, "imu", None), "topic", None),
              "odom": getattr(getattr(observe, "odometry", None), "topic", None)}
    return {ch: t for ch, t in topics.items() if t}


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
