"""A profile's objective, observation and fall conditions as batched functions (`sim.profile.terms`).

model_reference (the default objective) scores how closely the robot reproduces a reference of the
tracked channels: by default (``reference: nominal_closed_loop``) what the champion does on the
NOMINAL model from the episode's own initial state (`sim.profile.reference`), so on a drifted model
the fitness asks "behave as you did before the drift" and a robot with no hand-written reward still
has one. Without a champion (making the first one) and with ``reference: initial_pose`` the reference
is the profile's nominal configuration (keyframe / qpos0 / initial_state.qpos) with zero velocity and
an upright base: "hold the pose you started in". Each channel scores tolerance(error / scale, margin 1)
with the scale a quarter of the joint range (0.5 rad or m when unlimited) for positions and 2 per
second for velocities; the reward is their mean.
"""
from __future__ import annotations

import mujoco
import numpy as np

from sim.profile import terms as T
from sim.profile.resolve import RobotProfile, _Resolver
from sim.profile.schema import QUANTITY


def nominal_qpos(profile: RobotProfile) -> np.ndarray:
    """qpos the initial-state distribution is centred on (before noise)."""
    model = profile.model
    qpos = (model.key_qpos[profile.keyframe] if profile.keyframe is not None else model.qpos0).copy()
    for name, value in profile.doc.initial_state.qpos.items():
        qpos[model.jnt_qposadr[model.joint(name).id]] = value
    return qpos


def _ctrl_limits(model: mujoco.MjModel, actuators) -> np.ndarray:
    lo, hi = model.actuator_ctrlrange[actuators, 0], model.actuator_ctrlrange[actuators, 1]
    limits = np.maximum(np.abs(lo), np.abs(hi))
    return np.where(model.actuator_ctrllimited[actuators].astype(bool) & (limits > 0), limits, 1.0)


def reward_function(profile: RobotProfile, reference=None, which: str = "objective") -> T.Fn:
    """The profile's reward (B,) from (model, frames, episode constants). `reference`: a
    `sim.profile.reference.ClosedLoopReference` for ``model_reference`` (the episode's reference
    trajectory then rides at the end of its constants, see `ProfilePlant`); None: the nominal pose.
    `which`: ``objective`` (the gate's metric) or ``adapt_objective`` (see `adapt_reward_function`)."""
    obj, model = getattr(profile.doc, which), profile.model
    if obj.kind == "model_reference" and reference is not None:
        return _closed_loop_reward(profile, reference)
    if obj.kind == "entry_point":
        return profile.entry_points[which]
    resolver = _Resolver(profile.doc, profile.name, profile.path.parent if profile.path else None)
    resolver.model = model
    terms, weights, fields = [], [], {"qvel"}
    if obj.kind == "terms":
        for k, term in enumerate(obj.terms):
            field = f"{which}.terms[{k}]"
            if term.tolerance:
                kind, name = QUANTITY.match(term.tolerance).groups()
                f, value = T.quantity(kind, resolver.quantity_index(field, kind, name))
                terms.append(T.tolerance_term(value, term.bounds, term.margin, term.sigmoid, term.value_at_margin))
            elif term.upright:
                f = ("xmat",)
                terms.append(T.upright_term(model.body(term.upright).id))
            else:
                acts = (list(range(model.nu)) if term.effort == "all"
                        else [resolver.actuator(field, a) for a in term.effort])
                f = ("ctrl",)
                terms.append(T.effort_term(acts, _ctrl_limits(model, acts)))
            weights.append(term.weight)
            fields.update(f)
        return T.combine(terms, weights, obj.combine, fields)
    # model_reference: track the nominal configuration (see the module docstring)
    ref = nominal_qpos(profile)
    for channel in obj.track:
        if channel == "joint_positions":
            fields.add("qpos")
            for j, adr in zip(profile.joints, profile.qpos_adr):
                lo, hi = model.jnt_range[j]
                scale = (hi - lo) / 4 if model.jnt_limited[j] and hi > lo else 0.5
                terms.append(T.tolerance_term(_error("qpos", int(adr), float(ref[adr]), float(scale)),
                                              (0.0, 0.0), 1.0, "gaussian", 0.1))
        elif channel == "joint_velocities":
            for adr in profile.dof_adr:
                terms.append(T.tolerance_term(_error("qvel", int(adr), 0.0, 2.0), (0.0, 0.0), 1.0, "gaussian", 0.1))
        else:  # base_orientation: the IMU body upright
            fields.add("xmat")
            terms.append(T.upright_term(profile.imu[0]))
    weights = [1.0] * len(terms)
    return T.combine(terms, weights, "weighted_mean", fields)


def adapt_reward_function(profile: RobotProfile) -> T.Fn | None:
    """The reward an adaptation job's evolution climbs (``adapt_objective``), None when the profile has
    none (the job evolves on ``objective``). Same signature and batching as `reward_function`, so a
    batched evaluation stays bit for bit the one-plant path."""
    if profile.doc.adapt_objective is None:
        return None
    return reward_function(profile, which="adapt_objective")


def _closed_loop_reward(profile: RobotProfile, reference) -> T.Fn:
    """Track the nominal closed loop: at control tick k (from the episode's time) each tracked channel
    scores tolerance((x - x_ref[k]) / scale), with the scales of the pose objective below; the reward
    is their mean. x_ref: the last (ticks + 1) x width constants of the episode."""
    model, obj = profile.model, profile.doc.objective
    scales = []
    for channel in ("joint_positions", "joint_velocities"):
        if channel not in obj.track:
            continue
        if channel == "joint_positions":
            for j in profile.joints:
                lo, hi = model.jnt_range[j]
                scales.append((hi - lo) / 4 if model.jnt_limited[j] and hi > lo else 0.5)
        else:
            scales += [2.0] * len(profile.dof_adr)
    scale = np.asarray(scales, dtype=np.float64)
    cols = reference.cols
    steps, width = reference.ticks + 1, reference.width
    dt = float(model.opt.timestep) * profile.n_sub_steps
    orientation = T.upright_term(profile.imu[0]) if "base_orientation" in obj.track and profile.imu else None

    def reward(model, f, constants):
        k = np.clip(np.rint(np.asarray(f.time, dtype=np.float64) / dt).astype(np.intp), 0, steps - 1)
        ref = np.asarray(constants)[:, -steps * width:].reshape(-1, steps, width)
        ref_k = ref[np.arange(ref.shape[0]), k]
        x = np.concatenate([getattr(f, field)[:, idx] for field, idx in cols], axis=1)
        scores = T.tolerance((x - ref_k) / scale, (0.0, 0.0), 1.0, "gaussian", 0.1, per_scalar=False)
        total = scores.sum(axis=1)
        n = width
        if orientation is not None:
            total, n = total + orientation(f), n + 1
        return total / n

    reward.fields = tuple(sorted({"qpos", "qvel", "time"} | ({"xmat"} if orientation is not None else set())))
    return reward


def _error(field: str, index: int, ref: float, scale: float):
    return lambda f: (getattr(f, field)[:, index] - ref) / scale


def observe_function(profile: RobotProfile) -> T.Fn:
    """The observation: joint positions, joint velocities (profile order), then IMU, odometry, extra."""
    parts = [T.joint_observer(profile.qpos_adr, profile.dof_adr, profile.angle_modes)]
    if profile.imu is not None:
        parts.append(T.imu_observer(profile.model, *profile.imu)[1])
    if profile.odometry is not None:
        parts.append(T.odometry_observer(*profile.odometry)[1])
    if "extra" in profile.entry_points:
        parts.append(profile.entry_points["extra"])
    fields = sorted({f for p in parts for f in T.fields_of(p)})
    width = len(profile.doc.observe.extra.names) if profile.doc.observe.extra else 0

    def observe(model, f, constants):
        out = [p(model, f, constants) for p in parts]
        if width and out[-1].shape[1:] != (width,):
            raise ValueError(f"{profile.name}: observe.extra.entry_point returned shape {out[-1].shape}, "
                             f"expected (B, {width})")
        return np.concatenate(out, axis=1) if len(out) > 1 else out[0]

    observe.fields = tuple(fields)
    return observe


def fall_function(profile: RobotProfile) -> T.Fn:
    return T.falls(list(profile.falls))
