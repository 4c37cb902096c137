"""A profile's objective, observation and fall conditions as batched functions (`sim.profile.terms`).

model_reference (the default objective) scores how closely the robot reproduces a reference of the
tracked channels. The reference trajectory of the nominal closed loop (the champion on the nominal
model, issue 14's later stages) is not wired yet: until it is, the reference is the profile's nominal
initial configuration (keyframe / qpos0 / initial_state.qpos) with zero velocity and an upright base,
i.e. "hold the pose you started in". Each channel scores tolerance(error / scale, margin 1) with the
scale a quarter of the joint range (0.5 rad or m when unlimited) for positions and 2 per second for
velocities; the reward is their mean.
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


def reward_function(profile: RobotProfile) -> T.Fn:
    obj, model = profile.doc.objective, profile.model
    if obj.kind == "entry_point":
        return profile.entry_points["objective"]
    resolver = _Resolver(profile.doc, profile.name, profile.path.parent if profile.path else None)
    resolver.model = model
    terms, weights, fields = [], [], {"qvel"}
    if obj.kind == "terms":
        for k, term in enumerate(obj.terms):
            field = f"objective.terms[{k}]"
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


def _error(field: str, index: int, ref: float, scale: float):
    return lambda f: (getattr(f, field)[:, index] - ref) / scale


def observe_function(profile: RobotProfile) -> T.Fn:
    """The observation: joint positions, joint velocities (profile order), then IMU, odometry, extra."""
    parts = [T.joint_observer(profile.qpos_adr, profile.dof_adr)]
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
