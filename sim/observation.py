"""Joint states -> the policy's observation, measured on the live robot (the plant's closed form when it
has one, `Plant.analytic_observation`, forward kinematics of its model otherwise), and the
joint/actuator facts of a simulated plant used as defaults."""
from __future__ import annotations

import math
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


# What each base sensor contributes to a profile robot's observation, in order (sim.profile.terms):
BASE_SENSORS = {"imu": 7,         # orientation w x y z (world frame), angular velocity x y z (its own frame)
                "odometry": 6}    # position x y z, linear velocity x y z (both world frame)
# ... and after them the task signals (`observe.extra`: a moving target), len(extra.names) values on the
# profile's extra topic (std_msgs/Float64MultiArray); handled as one more input the tick must hold fresh
TASK = "task"


def live_profile(plant):
    """The robot profile that describes `plant`'s live observation: its own (a `ProfilePlant`), or for a
    built-in plant its shipped profile when that observes task signals (``observe.extra``, which no
    joint state carries) with the built-in's very channels (the reacher); None otherwise."""
    profile = getattr(plant, "profile", None)
    if profile is not None:
        return profile
    key = (getattr(plant, "name", ""), tuple(getattr(plant, "obs_names", ())))
    if key not in _LIVE_PROFILES:        # compiled once per process: the simulated robot asks every tick
        from sim.profile import builtin_profiles, load_profile, observation_names
        path = builtin_profiles().get(key[0])
        profile = None if path is None else load_profile(path)
        if profile is not None and (profile.doc.observe.extra is None or
                                    tuple(observation_names(profile.doc, profile.angle_modes)) != key[1]):
            profile = None
        _LIVE_PROFILES[key] = profile
    return _LIVE_PROFILES[key]


_LIVE_PROFILES: dict = {}


class ProfileObservation:
    """A robot profile's observation as the live robot measures it: joint positions (continuous joints
    encoded as the profile's ``angle`` says, `sim.profile.angles`) and velocities (JointState), then the IMU (sensor_msgs/Imu) and odometry (nav_msgs/Odometry) when the profile
    lists them, in the simulation's layout (`sim.profile.objective.observe_function`). Nothing is
    computed from a model, so a floating base works: its pose and twist are measured, not derived
    from joint angles. `base_sensors` names the extra inputs the runtime must hold fresh, in order;
    `base_topics` their topics from the profile."""

    def __init__(self, plant) -> None:
        """`plant`: a `ProfilePlant` (or a profile's path / name)."""
        if not hasattr(plant, "profile"):
            from sim.plants import make_plant
            plant = make_plant(str(plant))
        observe = plant.profile.doc.observe
        self.obs_names = tuple(plant.obs_names)
        self.obs_dim = len(self.obs_names)
        self.n_joints = len(plant.joint_names)
        from sim.profile.angles import position_width
        self.angle_modes = tuple(plant.profile.angle_modes) or ("raw",) * self.n_joints
        self._encode = any(m != "raw" for m in self.angle_modes)
        self.base_sensors = tuple(k for k in BASE_SENSORS if getattr(observe, k) is not None)
        self.base_topics = {k: getattr(observe, k).topic for k in self.base_sensors}
        self.base_widths = {k: BASE_SENSORS[k] for k in self.base_sensors}
        if observe.extra is not None:      # task signals: their own topic, after the base sensors
            self.base_sensors += (TASK,)
            self.base_topics[TASK] = observe.extra.topic
            self.base_widths[TASK] = len(observe.extra.names)
        want = position_width(self.angle_modes) + self.n_joints + sum(self.base_widths.values())
        if want != self.obs_dim:
            raise ValueError(f"profile {plant.name!r}: observation of {self.obs_dim} channels, joint states and "
                             f"{list(self.base_sensors)} give {want}")

    def __call__(self, positions: np.ndarray, velocities: np.ndarray, *base: np.ndarray) -> np.ndarray:
        if len(base) != len(self.base_sensors):
            raise ValueError(f"observation needs {list(self.base_sensors)}, got {len(base)} base input(s)")
        if self._encode:   # continuous joints as the simulation encodes them (sim.profile.angles)
            from sim.profile.angles import encode_positions
            positions = encode_positions(np.asarray(positions, dtype=np.float64)[None], self.angle_modes)[0]
        return np.concatenate([positions, velocities, *base])


def odometry_values(position, orientation_wxyz, linear_velocity_child) -> np.ndarray:
    """nav_msgs/Odometry -> the odometry channels (position, linear velocity in the world frame).
    REP 105: the twist is expressed in the child (body) frame, so it is rotated by the pose's
    orientation."""
    w, x, y, z = (float(c) for c in orientation_wxyz)
    n = math.sqrt(w * w + x * x + y * y + z * z)
    if not n > 0:
        raise ValueError("odometry orientation is not a rotation (zero quaternion)")
    w, x, y, z = w / n, x / n, y / n, z / n
    R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                  [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                  [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])
    return np.concatenate([np.asarray(position, dtype=np.float64), R @ np.asarray(linear_velocity_child, dtype=np.float64)])


def base_readings(plant) -> dict[str, dict[str, np.ndarray]]:
    """What a profile robot's base sensors read in its current state, in message terms: the IMU's
    orientation (w x y z) and angular velocity (its own frame), as the plant observes them; odometry's
    pose of the floating base and its twist in the child (body) frame (REP 105). The simulated robot
    node publishes these; `odometry_values` turns the odometry back into observation channels."""
    profile = live_profile(plant)
    out: dict[str, dict[str, np.ndarray]] = {}
    if profile is None:
        return out
    from sim.profile.angles import position_width
    n = len(plant.joint_names)
    at = position_width(profile.angle_modes or ("raw",) * n) + n     # the IMU's first channel
    if profile.imu is not None:
        obs = np.asarray(plant.observe(), dtype=np.float64)
        out["imu"] = {"orientation": obs[at:at + 4], "angular_velocity": obs[at + 4:at + 7]}
    if profile.odometry is not None:
        body, free_dof = profile.odometry
        data = plant.data
        R = np.asarray(data.xmat[body], dtype=np.float64).reshape(3, 3)
        out["odometry"] = {"position": np.array(data.xpos[body], dtype=np.float64),
                           "orientation": np.array(data.xquat[body], dtype=np.float64),
                           "linear_velocity": R.T @ np.asarray(data.qvel[free_dof:free_dof + 3], dtype=np.float64),
                           "angular_velocity": np.array(data.qvel[free_dof + 3:free_dof + 6], dtype=np.float64)}
    if profile.doc.observe.extra is not None:     # the task signals close the observation
        k = len(profile.doc.observe.extra.names)
        # the exact signals (no sensor noise draw: the plant's generator stream stays the episode's)
        out[TASK] = {"values": np.asarray(plant._observe(), dtype=np.float64)[-k:]}
    return out


def make_observation_map(plant_name: str) -> ObservationMap:
    """The observation map for a plant: its closed form when it has one (`Plant.analytic_observation`),
    the measured channels for a robot profile (`ProfileObservation`: joint states, base sensors, task
    signals) and for a built-in whose shipped profile observes task signals (`live_profile`),
    forward kinematics of its model otherwise."""
    from sim.plants import is_profile, make_plant, plant_class
    if is_profile(plant_name):
        return ProfileObservation(make_plant(plant_name))
    analytic = plant_class(plant_name).analytic_observation()
    if analytic is None:     # a built-in observing task signals: measured as its shipped profile says
        profile = live_profile(make_plant(plant_name))
        if profile is not None:
            return ProfileObservation(make_plant(str(profile.path)))
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
