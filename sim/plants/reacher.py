"""Reacher: dm_control's two-link planar arm behind the Plant interface.

Model and accessors are dm_control's (suite `reacher.easy`); one control tick is one 20 ms step, as
in the suite. The difference: the target moves on a circle (radius and phase drawn at reset), so
the arm never comes to rest. A resting arm says nothing about its masses or motors; a tracking arm
keeps every joint accelerating, which is what system identification needs. The target is a pure
function of simulation time and the episode's draw, computed here rather than written into the
model, so the MjModel is only ever changed by a DriftSpec.

The nominal controller is Jacobian-transpose PD in task space (plus joint damping) using the
observation only: joint angles give the Jacobian of the two-link arm, `to_target` is the error.

The observation is the shipped profile's (launch/robots/reacher.yaml, ``angle: sincos``), channel for
channel: the shoulder turns freely (no range) and tracking winds it many turns (-5 to -13.5 rad in 300
ticks), so it is observed as (sin, cos) (`sim.profile.angles`), then the wrist angle, both joint
velocities and the finger-to-target vector. On the raw angle a distilled MLP kept 18 of the
controller's 279 per episode: it cannot represent the periodic Jacobian, nor angles it never saw.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
from dm_control.suite import reacher as suite_reacher
from dm_control.utils import rewards

from sim.plants.base import DataBatch, Plant
from sim.plants.limits import HardLimits
from sim.plants.rewards import X, Y, tolerance
from sim.profile.angles import encode_positions

ANGLES = ("sincos", "raw")   # shoulder (continuous), wrist (limited): the profile's `angle: sincos`

LINKS = (0.12, 0.12)    # shoulder -> wrist, wrist -> finger (MJCF body offsets)
TARGET_SIZE = 0.05      # the suite's "easy" target
# the safety gate's hard limits (safety/constraints.py): the wrist within its MJCF range (+-160 deg)
# plus WRIST_TOL, the shoulder unlimited. MuJoCo's limits are soft and a tracking arm presses its wrist
# into the stop whenever the target passes out of reach: the plant's own controller reached 2.945 rad
# (0.152 past the range, more than the generic JOINT_TOL) on 1 of 20 held-out nominal episodes, and
# the first reacher demo's gate refused correct candidates for 2.96 under its stress / offset probes
WRIST_TOL = 0.25
HARD_LIMITS = HardLimits(state=(("wrist", -160 * (np.pi / 180.0) - WRIST_TOL, 160 * (np.pi / 180.0) + WRIST_TOL),))


def finger_jacobian(q: np.ndarray, links=LINKS) -> np.ndarray:
    """d(finger xy)/d(shoulder, wrist) of a planar two-link arm."""
    l1, l2 = links
    s1, c1 = np.sin(q[0]), np.cos(q[0])
    s12, c12 = np.sin(q[0] + q[1]), np.cos(q[0] + q[1])
    return np.array([[-l1 * s1 - l2 * s12, -l2 * s12],
                     [l1 * c1 + l2 * c12, l2 * c12]])


@dataclass
class ReacherJT:
    """tau = J(q)^T kp e - kd qdot, sent as ctrl = tau / gear (clipped to the motor range)."""

    gear: np.ndarray
    kp: float = 20.0
    kd: float = 0.005

    def reset(self) -> None:
        pass

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        q = np.array([np.arctan2(obs[0], obs[1]), obs[2]])   # (sin, cos) of the shoulder, the wrist
        qdot, err = obs[3:5], obs[5:7]
        tau = finger_jacobian(q).T @ (self.kp * err) - self.kd * qdot
        return np.clip(tau / self.gear, -1.0, 1.0)


class Reacher(Plant):
    """dm_control two-link reacher with a target circling the shoulder."""

    name = "reacher"
    obs_names = ("shoulder.position.sin", "shoulder.position.cos", "wrist.position",
                 "shoulder.velocity", "wrist.velocity", "to_target_x", "to_target_y")
    n_sub_steps = 1
    target_period = 4.0

    def _make_physics(self):
        self.target_radius, self.target_phase = 0.15, 0.0
        return suite_reacher.Physics.from_xml_string(*suite_reacher.get_model_and_assets())

    def _initialize_episode(self, rng: np.random.Generator) -> None:
        """Random arm pose (as the suite), random target circle."""
        self.physics.named.data.qpos["shoulder"] = rng.uniform(-np.pi, np.pi)
        self.physics.named.data.qpos["wrist"] = rng.uniform(-2.5, 2.5)
        self.target_radius = rng.uniform(0.05, 0.20)
        self.target_phase = rng.uniform(0, 2 * np.pi)

    def target(self, t: float | None = None) -> np.ndarray:
        t = self.time if t is None else t
        a = self.target_phase + 2 * np.pi * t / self.target_period
        return self.target_radius * np.array([np.sin(a), np.cos(a)])

    def finger_to_target(self) -> np.ndarray:
        return self.target() - self.physics.named.data.geom_xpos["finger", :2]

    def _observe(self) -> np.ndarray:
        return np.concatenate([encode_positions(self.physics.position()[None], ANGLES)[0],
                               self.physics.velocity(), self.finger_to_target()])

    def reward(self) -> float:
        radii = TARGET_SIZE + float(self.physics.named.model.geom_size["finger", 0])
        return float(rewards.tolerance(np.linalg.norm(self.finger_to_target()), (0, radii)))

    # batched twins of `_observe` and `reward` (same operations in the same order)
    batch_fields = ("time", "qpos", "qvel", "geom_xpos")

    def episode_constants(self) -> np.ndarray:
        return np.array([self.target_radius, self.target_phase])

    def _finger_id(self) -> int:
        if not hasattr(self, "_batch_finger"):
            self._batch_finger = self.model.geom("finger").id
        return self._batch_finger

    def _finger_to_target_batch(self, batch: DataBatch, constants: np.ndarray) -> np.ndarray:
        radius, phase = constants[:, 0], constants[:, 1]
        a = phase + 2 * np.pi * batch.time / self.target_period
        target = radius[:, None] * np.stack([np.sin(a), np.cos(a)], axis=1)
        return target - batch.geom_xpos[:, self._finger_id(), X:Y + 1]

    def observe_batch(self, batch: DataBatch, constants: np.ndarray) -> np.ndarray:
        return np.concatenate([encode_positions(batch.qpos, ANGLES), batch.qvel,
                               self._finger_to_target_batch(batch, constants)], axis=1)

    def reward_batch(self, batch: DataBatch, constants: np.ndarray) -> np.ndarray:
        radii = TARGET_SIZE + float(self.model.geom_size[self._finger_id(), 0])
        to_target = self._finger_to_target_batch(batch, constants)
        distance = np.sqrt(to_target[:, 0] * to_target[:, 0] + to_target[:, 1] * to_target[:, 1])
        # `reward` takes np.linalg.norm of each vector (a BLAS dot, whose rounding may differ from the
        # line above by an ulp); the reward is an in/out indicator, so only distances within a hair of
        # the boundary can tell the two apart: those are recomputed exactly as `reward` does.
        for i in np.flatnonzero(np.abs(distance - radii) <= 1e-9 * radii):
            distance[i] = np.linalg.norm(to_target[i])
        return tolerance(distance, (0, radii), per_scalar=True)

    def hard_limits(self) -> HardLimits:
        return HARD_LIMITS

    moves_target = True

    def move_target(self, phase: float) -> None:
        """Jump the circling target ahead by `phase` rad (a gate's target_jump probe)."""
        self.target_phase += phase

    def nominal_controller(self, kp: float = 20.0, kd: float = 0.005) -> ReacherJT:
        gear = np.array([0.05, 0.05])  # the suite's nominal motor gear
        return ReacherJT(gear=gear, kp=kp, kd=kd)


# -- entry points of the shipped reacher profile (launch/robots/reacher.yaml): the hand-coded plant's
# circling target, its draws and its reward, the episode's (radius, phase) as episode constants

_FINGER: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # model -> finger geom id


def _finger(model) -> int:
    finger = _FINGER.get(model)
    if finger is None:
        finger = _FINGER[model] = model.geom("finger").id
    return finger


def initialize(model, data, rng: np.random.Generator) -> np.ndarray:
    """Random arm pose and target circle, the same draws in the same order as `Reacher`."""
    data.qpos[model.joint("shoulder").qposadr[0]] = rng.uniform(-np.pi, np.pi)
    data.qpos[model.joint("wrist").qposadr[0]] = rng.uniform(-2.5, 2.5)
    return np.array([rng.uniform(0.05, 0.20), rng.uniform(0, 2 * np.pi)])


def _to_target(model, frames, constants) -> np.ndarray:
    radius, phase = constants[:, 0], constants[:, 1]
    a = phase + 2 * np.pi * frames.time / Reacher.target_period
    target = radius[:, None] * np.stack([np.sin(a), np.cos(a)], axis=1)
    return target - frames.geom_xpos[:, _finger(model), X:Y + 1]


def to_target(model, frames, constants) -> np.ndarray:
    """Extra observation: finger-to-target vector (x, y)."""
    return _to_target(model, frames, constants)


def reward(model, frames, constants) -> np.ndarray:
    """The suite's reach reward (finger within the target), as `Reacher.reward_batch`."""
    finger = _finger(model)
    radii = TARGET_SIZE + float(model.geom_size[finger, 0])
    d = _to_target(model, frames, constants)
    distance = np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1])
    for i in np.flatnonzero(np.abs(distance - radii) <= 1e-9 * radii):
        distance[i] = np.linalg.norm(d[i])
    return tolerance(distance, (0, radii), per_scalar=True)


to_target.fields = reward.fields = ("time", "geom_xpos")
