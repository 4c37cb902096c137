"""A day-one incumbent for an arm: joint PD control about the nominal pose with gravity compensation.

Why here: a user who brings an arm already drives it with something like this (every industrial
arm controller has a PD loop and a gravity model). `driftgate champion distill` turns a recording of
it into the first SR-GHN champion; the payload drift then breaks exactly what it assumes (its
gravity model is the nominal one: a heavier hand sags by extra torque / Kp).

    u_i = clip((Kp_i (q*_i - q_i) - Kd_i qdot_i) + g_i(q) / gear_i, ctrlrange)

Gains are in command units per rad (per rad/s), so they scale with the motor. g(q) is MuJoCo's bias
force of the *nominal* model at q with zero velocity (gravity alone), unobserved joints at their
nominal position. Commands for actuators that drive no observed joint (a gripper) hold `safe`.

`excitation` adds white Gaussian noise (std, command units, seeded) to the commands it sends: the
probing signal of an identification experiment, which spreads the recorded states around the pose.
White noise is independent of the current state, so a regression of the recorded commands on the
recorded states still recovers the controller itself (the noise averages out).
"""
from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np


@dataclass
class GravityPD:
    """The controller: obs (joint positions then velocities, profile order) -> commands."""

    plant: object                  # a ProfilePlant (its nominal model is copied, never edited)
    kp: np.ndarray                 # per observed joint, command units / rad
    kd: np.ndarray                 # per observed joint, command units / (rad/s)
    excitation: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        from sim.profile.objective import nominal_qpos
        profile = self.plant.profile
        self._model = profile.model            # nominal: ProfilePlant edits a deep copy
        self._data = mujoco.MjData(self._model)
        self._qpos0 = nominal_qpos(profile)
        self._qadr = np.asarray(profile.qpos_adr, dtype=int)
        self._dadr = np.asarray(profile.dof_adr, dtype=int)
        self.target = self._qpos0[self._qadr].copy()
        n = len(self._qadr)
        # continuous joints encoded in the observation (sim.profile.angles): decoded, errors wrapped
        from sim.profile.angles import position_width
        self._modes = tuple(profile.angle_modes) or ("raw",) * n
        self._width = position_width(self._modes)
        self._turns = np.array([m != "raw" for m in self._modes])
        self.kp = np.broadcast_to(np.asarray(self.kp, dtype=np.float64), (n,)).copy()
        self.kd = np.broadcast_to(np.asarray(self.kd, dtype=np.float64), (n,)).copy()
        # command index driving observed joint i, and its gear (joint transmissions only)
        m = self._model
        self._cmd_of_joint = np.full(n, -1)
        self._gear = np.ones(n)
        for c, a in enumerate(profile.actuators):
            if int(m.actuator_trntype[a]) != int(mujoco.mjtTrn.mjTRN_JOINT):
                continue
            j = int(m.actuator_trnid[a, 0])
            if j in profile.joints:
                i = profile.joints.index(j)
                self._cmd_of_joint[i], self._gear[i] = c, float(m.actuator_gear[a, 0])
        if (self._cmd_of_joint < 0).any():
            missing = [profile.ros_joints[i] for i in np.flatnonzero(self._cmd_of_joint < 0)]
            raise ValueError(f"{profile.name}: no joint actuator drives {missing}: not a joint-torque arm")
        self._low, self._high = self.plant.act_low, self.plant.act_high
        self._safe = self.plant.safe_command
        self.reset()

    def reset(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def gravity(self, q: np.ndarray) -> np.ndarray:
        """Joint torques that hold the nominal model still at q (observed joints, profile order)."""
        d = self._data
        d.qpos[:] = self._qpos0
        d.qpos[self._qadr] = q
        d.qvel[:] = 0.0
        mujoco.mj_forward(self._model, d)
        return d.qfrc_bias[self._dadr].copy()

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        n = len(self._qadr)
        w = self._width
        q, v = np.asarray(obs[:w], dtype=np.float64), np.asarray(obs[w:w + n], dtype=np.float64)
        error = self.target - q
        if self._turns.any():
            from sim.profile.angles import decode_positions
            q = decode_positions(q, self._modes)
            error = self.target - q
            error[self._turns] = np.mod(error[self._turns] + np.pi, 2 * np.pi) - np.pi
        u = self._safe.copy()
        u[self._cmd_of_joint] = self.kp * error - self.kd * v + self.gravity(q) / self._gear
        if self.excitation:
            u[self._cmd_of_joint] += self.excitation * self._rng.standard_normal(n)
        return np.clip(u, self._low, self._high)


def gravity_pd(plant, kp, kd, excitation: float = 0.0, seed: int = 0) -> GravityPD:
    """`GravityPD` for `plant` (a ProfilePlant or a profile path)."""
    if isinstance(plant, str):
        from sim.plants import make_plant
        plant = make_plant(plant)
    return GravityPD(plant, np.asarray(kp, dtype=np.float64), np.asarray(kd, dtype=np.float64), excitation, seed)


__all__ = ["GravityPD", "gravity_pd"]
