"""Observation, objective and fall conditions of a robot profile, as batched numpy functions.

Every function here has the signature ``f(model, frames, constants)`` and reads *frames*: (B, ...)
stacks of MjData arrays by field name (``frames.qpos``, ``frames.xmat``...; a `sim.plants.base.DataBatch`
is one, `OneRow` makes one from a single MjData without copying) plus ``constants``, the (B, k)
numbers an initial-state entry point drew for each episode. The single-plant path calls the very
same function on a one-row frame: there is one implementation, and batched evaluation is bit for
bit the one-plant path because every operation is element-wise in a fixed order (no reductions over
the batch, no matrix products whose blocking depends on B).

An entry point (``objective.entry_point``, ``observe.extra.entry_point``) has that signature too, and
says which MjData fields it reads with the `reads` decorator (default: qpos, qvel, xpos, xmat, ctrl,
time): only those are gathered per tick.
"""
from __future__ import annotations

import math
from typing import Callable

import mujoco
import numpy as np

from sim.plants.rewards import XMAT, ZZ, tolerance
from sim.profile.angles import encode_positions

Fn = Callable[[mujoco.MjModel, object, np.ndarray], np.ndarray]
DEFAULT_FIELDS = ("qpos", "qvel", "xpos", "xmat", "ctrl", "time")


def reads(*fields: str):
    """Declare the MjData fields an entry point reads (they are gathered for it each tick)."""
    def mark(fn):
        fn.fields = tuple(fields)
        return fn
    return mark


def fields_of(fn) -> tuple[str, ...]:
    return tuple(getattr(fn, "fields", DEFAULT_FIELDS))


class OneRow:
    """One MjData seen as a batch of one: ``frames.qpos`` is ``data.qpos[None]`` (a view)."""

    size = 1

    def __init__(self, data: mujoco.MjData, fields) -> None:
        for name in fields:
            if name != "time":
                setattr(self, name, getattr(data, name)[None])
        self._data = data

    @property
    def time(self) -> np.ndarray:
        return np.array([self._data.time])


# -- observation ---------------------------------------------------------------------------------

def _angular_velocity_terms(model: mujoco.MjModel, body: int):
    """The joints between the world and `body` that rotate it: (hinges as (joint, dof)), (free/ball
    as (body, first rotational dof)). Their sum is the body's angular velocity in the world frame."""
    hinges, balls = [], []
    b = body
    while b > 0:
        for j in range(model.body_jntadr[b], model.body_jntadr[b] + model.body_jntnum[b]):
            kind, dof = int(model.jnt_type[j]), int(model.jnt_dofadr[j])
            if kind == mujoco.mjtJoint.mjJNT_HINGE:
                hinges.append((j, dof))
            elif kind == mujoco.mjtJoint.mjJNT_BALL:
                balls.append((b, dof))
            elif kind == mujoco.mjtJoint.mjJNT_FREE:
                balls.append((b, dof + 3))
        b = int(model.body_parentid[b])
    return hinges, balls


def imu_observer(model: mujoco.MjModel, body: int, site: int | None) -> tuple[tuple[str, ...], Fn]:
    """sensor_msgs/Imu of a body (or a site on it): orientation quaternion (w, x, y, z) in the world
    frame, angular velocity in its own frame. Computed from the kinematics (xaxis, xmat, xquat) and
    qvel, so it reads only what `mj_kinematics` leaves fresh after a step."""
    hinges, balls = _angular_velocity_terms(model, body)
    frame_field = "site_xmat" if site is not None else "xmat"
    frame_id = site if site is not None else body
    site_quat = model.site_quat[site].copy() if site is not None else None
    fields = ("qvel", "xaxis", "xmat", "xquat") + (("site_xmat",) if site is not None else ())

    def observe(model, f, constants):
        q = f.xquat[:, body]
        if site_quat is not None:   # q_site = q_body * q_site_in_body (fixed in the model)
            w0, x0, y0, z0 = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
            w1, x1, y1, z1 = site_quat
            q = np.stack([w0 * w1 - x0 * x1 - y0 * y1 - z0 * z1, w0 * x1 + x0 * w1 + y0 * z1 - z0 * y1,
                          w0 * y1 - x0 * z1 + y0 * w1 + z0 * x1, w0 * z1 + x0 * y1 - y0 * x1 + z0 * w1], axis=1)
        w = [np.zeros(f.qvel.shape[0]) for _ in range(3)]
        for j, dof in hinges:
            for k in range(3):
                w[k] = w[k] + f.xaxis[:, j, k] * f.qvel[:, dof]
        for b, dof in balls:   # free/ball rotational velocity is in the joint body's own frame
            R, v = f.xmat[:, b], f.qvel[:, dof:dof + 3]
            for k in range(3):
                w[k] = w[k] + R[:, 3 * k] * v[:, 0] + R[:, 3 * k + 1] * v[:, 1] + R[:, 3 * k + 2] * v[:, 2]
        R = getattr(f, frame_field)[:, frame_id]
        local = [R[:, k] * w[0] + R[:, 3 + k] * w[1] + R[:, 6 + k] * w[2] for k in range(3)]
        return np.concatenate([q, np.stack(local, axis=1)], axis=1)

    observe.fields = fields
    names = tuple(f"imu.orientation.{c}" for c in "wxyz") + tuple(f"imu.angular_velocity.{c}" for c in "xyz")
    return names, observe


def odometry_observer(body: int, free_dof: int) -> tuple[tuple[str, ...], Fn]:
    """nav_msgs/Odometry of a floating base: position and linear velocity, both in the world frame
    (a free joint's translational velocity is a world-frame vector)."""
    def observe(model, f, constants):
        return np.concatenate([f.xpos[:, body], f.qvel[:, free_dof:free_dof + 3]], axis=1)

    observe.fields = ("xpos", "qvel")
    names = tuple(f"odom.position.{c}" for c in "xyz") + tuple(f"odom.linear_velocity.{c}" for c in "xyz")
    return names, observe


def _columns(adr: np.ndarray):
    """A slice where the addresses are consecutive (a view, no gather), else the index array."""
    adr = np.asarray(adr, dtype=int)
    if len(adr) and np.array_equal(adr, np.arange(adr[0], adr[0] + len(adr))):
        return slice(int(adr[0]), int(adr[0]) + len(adr))
    return adr


def joint_observer(qpos_adr: np.ndarray, dof_adr: np.ndarray, angle_modes=()) -> Fn:
    """Joint positions (continuous joints encoded by `angle_modes`, `sim.profile.angles`), then
    joint velocities."""
    qpos_cols, dof_cols = _columns(qpos_adr), _columns(dof_adr)
    modes = tuple(angle_modes)
    if any(m != "raw" for m in modes):
        def observe(model, f, constants):
            return np.concatenate([encode_positions(f.qpos[:, qpos_cols], modes), f.qvel[:, dof_cols]], axis=1)
        observe.fields = ("qpos", "qvel")
        return observe

    def observe(model, f, constants):
        return np.concatenate([f.qpos[:, qpos_cols], f.qvel[:, dof_cols]], axis=1)

    observe.fields = ("qpos", "qvel")
    return observe


# -- objective -----------------------------------------------------------------------------------

def quantity(kind: str, index: int) -> tuple[tuple[str, ...], Callable]:
    """A named model quantity (see schema.QUANTITIES) as (fields, frames -> (B,))."""
    if kind in ("body_height", "body_x", "body_y"):
        axis = {"body_x": 0, "body_y": 1, "body_height": 2}[kind]
        return ("xpos",), lambda f: f.xpos[:, index, axis]
    if kind == "body_upright":
        return ("xmat",), lambda f: f.xmat[:, index, ZZ]
    if kind == "joint_position":
        return ("qpos",), lambda f: f.qpos[:, index]
    if kind == "joint_velocity":
        return ("qvel",), lambda f: f.qvel[:, index]
    if kind == "control":
        return ("ctrl",), lambda f: f.ctrl[:, index]
    raise ValueError(f"unknown quantity {kind!r}")


def tolerance_term(value, bounds, margin, sigmoid, value_at_margin):
    bounds = (float(bounds[0]), float(bounds[1]))

    def term(f):
        return tolerance(value(f), bounds, margin, sigmoid, value_at_margin, per_scalar=False)
    return term


def upright_term(body: int):
    return lambda f: (1 + f.xmat[:, body, ZZ]) / 2


def effort_term(actuators: list[int], limits: np.ndarray):
    def term(f):
        total = np.zeros(f.ctrl.shape[0])
        for a, limit in zip(actuators, limits):
            total = total + tolerance(f.ctrl[:, a] / limit, margin=1.0, sigmoid="quadratic", value_at_margin=0.0,
                                      per_scalar=False)
        return total / len(actuators)
    return term


def combine(terms: list[Callable], weights: list[float], how: str, fields) -> Fn:
    """A reward from terms in [0, 1]: weighted mean (in [0, 1]) or product of term ** weight."""
    total_weight = float(sum(weights))

    def reward(model, f, constants):
        if how == "product":
            out = np.ones(f.qvel.shape[0] if hasattr(f, "qvel") else f.ctrl.shape[0])
            for term, w in zip(terms, weights):
                value = term(f)
                out = out * (value if w == 1.0 else value ** w)
            return out
        out = None
        for term, w in zip(terms, weights):
            value = w * term(f)
            out = value if out is None else out + value
        return out / total_weight

    reward.fields = tuple(sorted(set(fields) | {"qvel"}))
    return reward


def falls(conditions: list[tuple[int, float | None, float | None]]) -> Fn:
    """(B,) bool: any (body, min_height, max_tilt_deg) condition met."""
    cos_limits = [(b, h, None if t is None else math.cos(math.radians(t))) for b, h, t in conditions]

    def fallen(model, f, constants):
        out = np.zeros(f.xpos.shape[0], dtype=bool)
        for body, height, cos_tilt in cos_limits:
            if height is not None:
                out |= f.xpos[:, body, 2] < height
            if cos_tilt is not None:
                out |= f.xmat[:, body, ZZ] < cos_tilt
        return out

    fallen.fields = ("xpos", "xmat")
    return fallen


__all__ = ["DEFAULT_FIELDS", "OneRow", "XMAT", "combine", "effort_term", "falls", "fields_of", "imu_observer",
           "joint_observer", "odometry_observer", "quantity", "reads", "tolerance_term", "upright_term"]
