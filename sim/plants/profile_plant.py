"""`ProfilePlant`: any robot described by a robot profile (`sim.profile`), behind the Plant interface.

Nothing here knows a robot: the observation, the reward, the fall conditions and the initial state
all come from the profile (see `sim.profile.objective`). Actions are in the profile's command order
(``command.actuators``: what the forward command controller's Float64MultiArray carries), clipped to
the actuators' ctrlrange; the plant maps them onto MuJoCo's actuator order.

One implementation serves both paths: `_observe`/`reward` run the batched functions on a one-row
view of the plant's MjData (`sim.profile.terms.OneRow`), `observe_batch`/`reward_batch` on the
stacked `DataBatch`, so batched evaluation is the one-plant path bit for bit (tests/test_profile_plant.py).

Falls are conditions on bodies (height, tilt), which the observation need not contain: the plant
evaluates them with every observation it makes and `fallen_batch(obs)` returns those of the latest
observation of as many rows (one for `Plant.act`, B for `PlantBatch.act`), which is how
`PlantTask` calls it.
"""
from __future__ import annotations

import copy
from pathlib import Path

import mujoco
import numpy as np

from sim.drift_spec import DriftSpec
from sim.plants.base import DataBatch, Plant
from sim.plants.limits import HardLimits, joint_range_limits
from sim.profile import RobotProfile, find_profile, load_profile, observation_names
from sim.profile.objective import fall_function, nominal_qpos, observe_function, reward_function
from sim.profile.resolve import SLIDE_HINGE
from sim.profile.terms import OneRow, fields_of


class ProfilePlant(Plant):
    """A plant built from a robot profile (a RobotProfile, a profile path or a shipped name)."""

    def __init__(self, profile: RobotProfile | str | Path, seed: int = 0,
                 drift: DriftSpec | dict | str | None = None) -> None:
        if not isinstance(profile, RobotProfile):
            profile = load_profile(find_profile(profile))
        self.profile = profile
        self.name = profile.name
        self.n_sub_steps = profile.n_sub_steps
        self.obs_names = tuple(observation_names(profile.doc, profile.angle_modes))
        model = profile.model
        self._command = np.array(profile.actuators)
        identity = np.array_equal(self._command, np.arange(model.nu))
        self.ctrl_order = None if identity else np.argsort(self._command)
        limited = model.actuator_ctrllimited[self._command].astype(bool)
        self._act_low = np.where(limited, model.actuator_ctrlrange[self._command, 0], -np.inf)
        self._act_high = np.where(limited, model.actuator_ctrlrange[self._command, 1], np.inf)
        self._observe_fn = observe_function(profile)
        obj = profile.doc.objective
        self._reference = None          # the nominal closed loop the default objective tracks
        if obj.kind == "model_reference" and obj.reference == "nominal_closed_loop":
            from sim.profile.reference import closed_loop_reference
            self._reference = closed_loop_reference(profile, obj.reference_ticks, tuple(obj.track))
        self._reward_fn = reward_function(profile, self._reference)
        self._fall_fn = fall_function(profile) if profile.falls else None
        self._init_fn = profile.entry_points.get("initial_state")
        fields = set(fields_of(self._observe_fn)) | set(fields_of(self._reward_fn))
        if self._fall_fn is not None:
            fields |= set(fields_of(self._fall_fn))
        self.batch_fields = tuple(sorted(fields))
        self._qpos0 = nominal_qpos(profile)
        self._noisy_qpos = np.array([model.jnt_qposadr[j] for j in range(model.njnt)
                                     if mujoco.mjtJoint(int(model.jnt_type[j])) in SLIDE_HINGE], dtype=int)
        self._constants = np.zeros(0)
        self._row: OneRow | None = None
        self._fallen_last = np.zeros(0, dtype=bool)
        super().__init__(seed=seed, drift=drift)

    def _make_physics(self):
        from dm_control import mujoco as dm_mujoco
        from dm_control.mujoco import wrapper
        return dm_mujoco.Physics.from_model(wrapper.MjModel(copy.deepcopy(self.profile.model)))

    # -- sizes -------------------------------------------------------------------------------------
    @property
    def act_low(self) -> np.ndarray:
        return self._act_low.copy()

    @property
    def act_high(self) -> np.ndarray:
        return self._act_high.copy()

    @property
    def actuator_names(self) -> list[str]:
        """The profile's command names, in command order."""
        return list(self.profile.doc.command.actuators)

    @property
    def joint_names(self) -> list[str]:
        """The ROS JointState names of the observed joints, in profile order."""
        return list(self.profile.ros_joints)

    def _command_actuators(self) -> list[int]:
        return [int(a) for a in self.profile.actuators]

    def _observed_joint_ids(self) -> list[int]:
        return [int(j) for j in self.profile.joints]

    @property
    def joint_qpos_adr(self) -> np.ndarray:
        return np.asarray(self.profile.qpos_adr, dtype=int)

    @property
    def joint_dof_adr(self) -> np.ndarray:
        return np.asarray(self.profile.dof_adr, dtype=int)

    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self.profile.qpos_adr].copy()

    def joint_velocities(self) -> np.ndarray:
        return self.data.qvel[self.profile.dof_adr].copy()

    def measured_state(self) -> np.ndarray:
        """(nq + nv,) bool: the part of MuJoCo's state the robot's sensors measure: the observed
        joints, and every joint of the IMU / odometry body (the base they report on). The rest (a
        gripper, loose props in the scene) is simulated but never measured: system identification
        does not score its prediction (`sim.sysid_replay.Replay`)."""
        model, profile = self.model, self.profile
        mask = np.zeros(model.nq + model.nv, dtype=bool)
        mask[np.asarray(profile.qpos_adr, dtype=int)] = True
        mask[model.nq + np.asarray(profile.dof_adr, dtype=int)] = True
        bases = [b for b in ((profile.imu or (None,))[0], (profile.odometry or (None,))[0]) if b is not None]
        for body in bases:
            for j in range(model.body_jntadr[body], model.body_jntadr[body] + model.body_jntnum[body]):
                kind = mujoco.mjtJoint(int(model.jnt_type[j]))
                nq = {mujoco.mjtJoint.mjJNT_FREE: 7, mujoco.mjtJoint.mjJNT_BALL: 4}.get(kind, 1)
                nv = {mujoco.mjtJoint.mjJNT_FREE: 6, mujoco.mjtJoint.mjJNT_BALL: 3}.get(kind, 1)
                q, v = int(model.jnt_qposadr[j]), int(model.jnt_dofadr[j])
                mask[q:q + nq] = True
                mask[model.nq + v:model.nq + v + nv] = True
        return mask

    @property
    def safe_command(self) -> np.ndarray:
        return self.profile.safe_command.copy()

    # -- episode -----------------------------------------------------------------------------------
    def _initialize_episode(self, rng: np.random.Generator) -> None:
        model, data = self.model, self.data
        if self._init_fn is not None:
            constants = self._init_fn(model, data, rng)
            self._constants = np.zeros(0) if constants is None else np.asarray(constants, dtype=np.float64).ravel()
        else:
            init = self.profile.doc.initial_state
            if self.profile.keyframe is not None:
                mujoco.mj_resetDataKeyframe(model, data, self.profile.keyframe)
            data.qpos[:] = self._qpos0
            if init.qpos_noise:
                data.qpos[self._noisy_qpos] += init.qpos_noise * rng.standard_normal(len(self._noisy_qpos))
            if init.qvel_noise:
                data.qvel[:] += init.qvel_noise * rng.standard_normal(model.nv)
            self._constants = np.zeros(0)
        if self._reference is not None:    # the episode's reference rides at the end of its constants
            ref = self._reference.trajectory(data.qpos, data.qvel)
            self._constants = np.concatenate([self._constants, ref.ravel()])

    def episode_constants(self) -> np.ndarray:
        return self._constants.copy()

    def _one_row(self) -> OneRow:
        if self._row is None:
            self._row = OneRow(self.data, self.batch_fields)
        return self._row

    def _observe(self) -> np.ndarray:
        row, constants = self._one_row(), self._constants[None]
        if self._fall_fn is not None:
            self._fallen_last = self._fall_fn(self.model, row, constants)
        return self._observe_fn(self.model, row, constants)[0]

    def reward(self) -> float:
        return float(self._reward_fn(self.model, self._one_row(), self._constants[None])[0])

    def observe_batch(self, batch: DataBatch, constants: np.ndarray) -> np.ndarray:
        if self._fall_fn is not None:
            self._fallen_last = self._fall_fn(self.model, batch, constants)
        return self._observe_fn(self.model, batch, constants)

    def reward_batch(self, batch: DataBatch, constants: np.ndarray) -> np.ndarray:
        return self._reward_fn(self.model, batch, constants)

    def fallen_batch(self, obs: np.ndarray) -> np.ndarray:
        """The fall conditions at the latest observation with as many rows as `obs` (see module doc)."""
        if self._fall_fn is None or len(self._fallen_last) != len(obs):
            return np.zeros(len(obs), dtype=bool)
        return self._fallen_last.copy()

    def fallen(self) -> bool:
        """The fall conditions on the plant's current state."""
        if self._fall_fn is None:
            return False
        return bool(self._fall_fn(self.model, self._one_row(), self._constants[None])[0])

    def hard_limits(self) -> HardLimits:
        """From the profile's safety block: joint bounds given in ``safety.joint_bounds`` as written;
        the others from the model's joint range plus the soft-limit margin (`joint_range_limits`),
        widened to hold the start distribution (the nominal pose +- 5 ``qpos_noise``; where an episode
        starts is not the candidate's doing): a model whose start pose lies outside a joint's range
        (gymnasium's ant starts its ankles at 0, outside 30..70 deg) would otherwise fail every
        episode at t=0. A fall (``safety.fall``) is a violation when the profile names fall conditions."""
        given = self.profile.doc.safety.joint_bounds
        given = given if isinstance(given, dict) else {}
        init = self.profile.doc.initial_state
        spread = 5.0 * init.qpos_noise
        state = []
        for ros, (name, lo, hi), adr in zip(self.profile.ros_joints, self._model_limits(), self.profile.qpos_adr):
            if ros in given:
                lo, hi = (float(x) for x in given[ros])
            elif lo is None:
                continue
            else:
                start = float(self._qpos0[adr])
                lo, hi = min(lo, start - spread), max(hi, start + spread)
            state.append((ros, lo, hi))
        return HardLimits(state=tuple(state), falls=bool(self.profile.falls))

    def _model_limits(self) -> list[tuple[str, float | None, float | None]]:
        """(name, low, high) of each observed joint: its range plus margin, None for an unlimited one."""
        limited = {n: (lo, hi) for n, lo, hi in joint_range_limits(self.model, self.profile.ros_joints,
                                                                   self.profile.joints)}
        return [(ros, *limited.get(ros, (None, None))) for ros in self.profile.ros_joints]

    def nominal_controller(self):
        """The safe command, held: a profile names no controller (the champion is the controller)."""
        safe = self.safe_command
        return lambda obs: safe.copy()

