"""`load_profile(path)`: read a robot profile, compile its model, check every name against it.

The result, `RobotProfile`, holds the validated document, the compiled nominal MjModel and every
name resolved to a model index (joint qpos/dof addresses, actuator ids in command order...), so the
plant and later stages never look a name up again. Any problem is a `ProfileError`: one line that
names the field by its path in the file and, for an unknown name, the names the model does have.
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import mujoco
import numpy as np
import yaml
from pydantic import ValidationError

from sim.profile import model_names as mn
from sim.profile.angles import continuous, joint_modes, position_names
from sim.profile.schema import QUANTITIES, QUANTITY, ProfileDoc, field_path

SLIDE_HINGE = (mujoco.mjtJoint.mjJNT_SLIDE, mujoco.mjtJoint.mjJNT_HINGE)


class ProfileError(ValueError):
    """A bad robot profile; the message is one line naming the field."""


@dataclass(frozen=True)
class RobotProfile:
    doc: ProfileDoc
    path: Path | None                  # the profile file (None: built from a mapping)
    model_path: Path
    model: mujoco.MjModel              # the compiled nominal model (copy it before editing)
    n_sub_steps: int
    ros_joints: tuple[str, ...]        # JointState names, in observation order
    joints: tuple[int, ...]            # their MuJoCo joint ids
    qpos_adr: np.ndarray
    dof_adr: np.ndarray
    actuators: tuple[int, ...]         # actuator id of command index i
    safe_command: np.ndarray
    joint_bounds: dict[str, tuple[float, float]]   # ROS joint name -> (lower, upper), inf when free
    falls: tuple[tuple[int, float | None, float | None], ...]   # (body, min_height, max_tilt_deg)
    imu: tuple[int, int | None] | None     # (body, site or None)
    odometry: tuple[int, int] | None       # (body, free joint's first dof)
    entry_points: Mapping[str, Callable]   # 'objective' / 'initial_state' / 'extra' -> callable
    keyframe: int | None
    # encoding of each observed joint's position ('raw' / 'wrap' / 'sincos', sim.profile.angles)
    angle_modes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.doc.name

    @property
    def control_dt(self) -> float:
        return float(self.model.opt.timestep) * self.n_sub_steps

    @property
    def default_drift(self) -> dict | None:
        """The drift the demo injects when none is given (profile `drift.default`), or None."""
        return None if self.doc.drift.default is None else dict(self.doc.drift.default)

    def asset_path(self, which: str) -> Path | None:
        rel = getattr(self.doc.assets, which)
        if rel is None:
            return None
        base = self.path.parent if self.path else Path.cwd()
        return (base / rel).resolve()


def _err(where: str, field: str, message: str) -> ProfileError:
    return ProfileError(f"{where}: {field}: {mn.one_line(message)}")


def load_profile(path: str | Path) -> RobotProfile:
    """Read, validate and resolve a profile YAML file (ProfileError on any problem)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ProfileError(f"{path}: cannot read the profile ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise ProfileError(f"{path}: not valid YAML ({mn.one_line(e)})") from None
    return profile_from_mapping(data, path)


def profile_from_mapping(data: Any, path: Path | None = None, base: Path | None = None) -> RobotProfile:
    where = str(path) if path else "profile"
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: a profile is a YAML mapping, got {type(data).__name__}")
    try:
        doc = ProfileDoc.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        msg = first["msg"].removeprefix("Value error, ")
        extra = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise ProfileError(f"{where}: {field_path(first['loc'])}: {mn.one_line(msg)}{extra}") from None
    base = base or (path.parent if path else Path.cwd())
    return _Resolver(doc, where, base).resolve(path)


def compile_model(doc: ProfileDoc, base: Path, where: str = "profile") -> tuple[Path, mujoco.MjModel]:
    """The profile's model: MJCF compiled as is, URDF through MuJoCo's URDF compiler plus the
    profile's actuator block."""
    field = "model.mjcf" if doc.model.mjcf else "model.urdf"
    try:
        model_path = mn.resolve_model_path(doc.model.mjcf or doc.model.urdf, base)
    except FileNotFoundError as e:
        raise _err(where, field, str(e)) from None
    try:
        spec = mujoco.MjSpec.from_file(str(model_path))
        if doc.model.mjcf:
            name_actuators_by_target(spec)
            return model_path, spec.compile()
        if doc.model.actuators:
            for k, a in enumerate(doc.model.actuators):
                add_actuator(spec, a, where, f"model.actuators[{k}]")
        elif not spec.actuators:
            raise _err(where, "model.actuators", f"the URDF {model_path.name} declares no actuators and the profile "
                       "has no actuator block; add one (one per driven joint: 'driftgate robot init --urdf' drafts it)")
        name_actuators_by_target(spec)
        return model_path, spec.compile()
    except ProfileError:
        raise
    except Exception as e:  # MuJoCo's compiler: a missing mesh, a bad XML, an unknown joint
        hint = " (a mesh or other asset file the model names is missing)" if "opening file" in str(e) else ""
        raise _err(where, field, f"{model_path}: {e}{hint}") from None


def name_actuators_by_target(spec) -> None:
    """Give each unnamed actuator the name the profile calls it by (``joint:NAME``...), where that
    target is its alone and no actuator already has the name. Why: everything downstream of the
    profile names actuators by the compiled model's names (a DriftSpec's ``actuator_gain``, system
    identification, the drift monitor); without this, ``drift.default`` of a model with unnamed
    actuators (gymnasium's) passed the profile check and then failed in the plant."""
    acts = list(spec.actuators)
    taken = {a.name for a in acts if a.name}
    refs = [f"{mn.TRN_PREFIX[a.trntype]}:{a.target}" if a.trntype in mn.TRN_PREFIX and a.target else ""
            for a in acts]
    for a, ref in zip(acts, refs):
        if not a.name and ref and refs.count(ref) == 1 and ref not in taken:
            a.name = ref
            taken.add(ref)


def add_actuator(spec, a, where: str, field: str) -> None:
    if spec.joint(a.joint) is None:
        known = [j.name for j in spec.joints if j.name]
        raise _err(where, f"{field}.joint", f"unknown joint {a.joint!r}; known: {mn.known(known)}")
    act = spec.add_actuator()
    act.name = a.name or ""
    act.trntype = mujoco.mjtTrn.mjTRN_JOINT
    act.target = a.joint
    if a.kind == "position":
        act.set_to_position(kp=a.kp)
    elif a.kind == "velocity":
        act.set_to_velocity(kv=a.kv)
    else:
        act.set_to_motor()
    act.gear[0] = a.gear
    act.ctrllimited = 1
    act.ctrlrange = list(a.ctrlrange)


def import_entry_point(ref: str) -> Callable:
    module, _, attr = ref.partition(":")
    fn = getattr(importlib.import_module(module), attr)
    if not callable(fn):
        raise TypeError(f"{ref} is not callable")
    return fn


class _Resolver:
    def __init__(self, doc: ProfileDoc, where: str, base: Path) -> None:
        self.doc, self.where, self.base = doc, where, base

    def name(self, field: str, obj: str, name: str, what: str = "") -> int:
        try:
            return mn.lookup(self.model, obj, name, what)
        except mn.NameError_ as e:
            raise _err(self.where, field, str(e)) from None

    def actuator(self, field: str, ref: str) -> int:
        try:
            return mn.lookup_actuator(self.model, ref)
        except mn.NameError_ as e:
            raise _err(self.where, field, str(e)) from None

    def resolve(self, path: Path | None) -> RobotProfile:
        doc, where = self.doc, self.where
        model_path, self.model = compile_model(doc, self.base, where)
        model = self.model
        if model.nu == 0:
            raise _err(where, "model", f"{model_path.name} has no actuators: nothing to command")
        n_sub = self._sub_steps()
        # joints (ROS name -> MuJoCo hinge/slide joint)
        js = doc.observe.joint_states
        joints, seen = [], {}
        for ros, mj in js.joints.items():
            field = f"observe.joint_states.joints.{ros}"
            j = self.name(field, "joint", mj)
            if mujoco.mjtJoint(int(model.jnt_type[j])) not in SLIDE_HINGE:
                raise _err(where, field, f"MuJoCo joint {mj!r} is a {mn.JOINT_KIND[int(model.jnt_type[j])]} joint; "
                           "JointState carries hinge and slide joints (observe a floating base with "
                           "observe.imu / observe.odometry)")
            if mj in seen:
                raise _err(where, field, f"MuJoCo joint {mj!r} is already mapped from {seen[mj]!r}")
            seen[mj] = ros
            joints.append(j)
        self.angle_modes = joint_modes(model, joints, js.angle)
        if js.angle != "raw" and not any(continuous(model, j) for j in joints):
            raise _err(where, "observe.joint_states.angle", f"{js.angle!r} encodes continuous joints (hinges "
                       "without a range) and every observed joint is limited or a slide; drop it (raw)")
        # command
        cmd = doc.command
        actuators = []
        for i, ref in enumerate(cmd.actuators):
            a = self.actuator(f"command.actuators[{i}]", ref)
            if a in actuators:
                raise _err(where, f"command.actuators[{i}]", f"{ref!r} is already command index {actuators.index(a)}")
            actuators.append(a)
        if len(actuators) != model.nu:
            missing = [mn.actuator_label(model, a) for a in range(model.nu) if a not in actuators]
            raise _err(where, "command.actuators", f"{len(actuators)} actuators listed, the model has {model.nu}; "
                       f"missing: {mn.known(missing)}")
        safe = self._safe(actuators)
        bounds = self._bounds(js.joints, joints)
        falls = tuple((self.name(f"safety.fall[{k}].body", "body", f.body), f.min_height, f.max_tilt_deg)
                      for k, f in enumerate(doc.safety.fall))
        imu = odom = None
        if doc.observe.imu:
            i = doc.observe.imu
            if i.site:
                site = self.name("observe.imu.site", "site", i.site)
                imu = (int(model.site_bodyid[site]), site)
            else:
                imu = (self.name("observe.imu.body", "body", i.body), None)
        if doc.observe.odometry:
            b = self.name("observe.odometry.body", "body", doc.observe.odometry.body)
            free = [j for j in range(model.body_jntadr[b], model.body_jntadr[b] + model.body_jntnum[b])
                    if int(model.jnt_type[j]) == int(mujoco.mjtJoint.mjJNT_FREE)]
            if not free:
                raise _err(where, "observe.odometry.body", f"body {doc.observe.odometry.body!r} has no free joint; "
                           "odometry describes a floating base")
            odom = (b, int(model.jnt_dofadr[free[0]]))
        keyframe = self._initial_state()
        entry = self._entry_points()
        self._objective(doc.objective, "objective")
        if doc.adapt_objective is not None:
            self._objective(doc.adapt_objective, "adapt_objective")
        self._drift(js.joints)
        return RobotProfile(doc=doc, path=path, model_path=model_path, model=model, n_sub_steps=n_sub,
                            ros_joints=tuple(js.joints), joints=tuple(joints),
                            qpos_adr=np.array([model.jnt_qposadr[j] for j in joints]),
                            dof_adr=np.array([model.jnt_dofadr[j] for j in joints]),
                            actuators=tuple(actuators), safe_command=safe, joint_bounds=bounds, falls=falls,
                            imu=imu, odometry=odom, entry_points=entry, keyframe=keyframe,
                            angle_modes=self.angle_modes)

    def _sub_steps(self) -> int:
        dt, rate = float(self.model.opt.timestep), self.doc.control.rate_hz
        n = 1.0 / (rate * dt)
        if round(n) < 1 or abs(n - round(n)) > 1e-6 * n:
            options = ", ".join(f"{1 / (k * dt):.6g}" for k in range(1, 7))
            raise _err(self.where, "control.rate_hz", f"{rate:g} Hz is not the model's {1 / dt:.6g} Hz (timestep "
                       f"{dt:g} s) divided by a whole number of sub-steps; e.g. {options} Hz")
        return int(round(n))

    def _safe(self, actuators: list[int]) -> np.ndarray:
        model, cmd = self.model, self.doc.command
        lo, hi = model.actuator_ctrlrange[actuators, 0], model.actuator_ctrlrange[actuators, 1]
        limited = model.actuator_ctrllimited[actuators].astype(bool)
        if cmd.safe is None:
            return np.where(limited & ((lo > 0) | (hi < 0)), (lo + hi) / 2, 0.0)
        if len(cmd.safe) != len(actuators):
            raise _err(self.where, "command.safe", f"{len(cmd.safe)} values for {len(actuators)} actuators")
        safe = np.array(cmd.safe, dtype=np.float64)
        for i, x in enumerate(safe):
            if limited[i] and not lo[i] <= x <= hi[i]:
                raise _err(self.where, f"command.safe[{i}]", f"{x:g} is outside the ctrlrange [{lo[i]:g}, {hi[i]:g}] of "
                           f"actuator {cmd.actuators[i]!r}")
        return safe

    def _bounds(self, ros_to_mj: Mapping[str, str], joints: list[int]) -> dict[str, tuple[float, float]]:
        model, jb = self.model, self.doc.safety.joint_bounds
        out = {}
        for ros, j in zip(ros_to_mj, joints):
            limited = bool(model.jnt_limited[j])
            out[ros] = (float(model.jnt_range[j, 0]), float(model.jnt_range[j, 1])) if limited else (-math.inf, math.inf)
        if isinstance(jb, dict):
            for ros, b in jb.items():
                if ros not in out:
                    raise _err(self.where, f"safety.joint_bounds.{ros}", f"unknown joint {ros!r}; known: "
                               f"{mn.known(out)} (the ROS names of observe.joint_states.joints)")
                out[ros] = (float(b[0]), float(b[1]))
        return out

    def _initial_state(self) -> int | None:
        init, model = self.doc.initial_state, self.model
        for name in init.qpos:
            j = self.name(f"initial_state.qpos.{name}", "joint", name)
            if mujoco.mjtJoint(int(model.jnt_type[j])) not in SLIDE_HINGE:
                raise _err(self.where, f"initial_state.qpos.{name}", f"{name!r} is a "
                           f"{mn.JOINT_KIND[int(model.jnt_type[j])]} joint; give hinge/slide joints or a keyframe")
        return self.name("initial_state.keyframe", "key", init.keyframe, "keyframe") if init.keyframe else None

    def _entry_points(self) -> dict[str, Callable]:
        adapt = self.doc.adapt_objective
        refs = {"objective": (self.doc.objective.entry_point, "objective.entry_point"),
                "adapt_objective": (adapt.entry_point if adapt else None, "adapt_objective.entry_point"),
                "initial_state": (self.doc.initial_state.entry_point, "initial_state.entry_point"),
                "extra": (self.doc.observe.extra.entry_point if self.doc.observe.extra else None,
                          "observe.extra.entry_point")}
        out = {}
        for key, (ref, field) in refs.items():
            if ref:
                try:
                    out[key] = import_entry_point(ref)
                except Exception as e:
                    raise _err(self.where, field, f"cannot load {ref!r} ({type(e).__name__}: {e})") from None
        return out

    def _objective(self, obj, where: str) -> None:
        """The names an objective (`objective` or `adapt_objective`, at field `where`) uses exist."""
        if obj.kind == "model_reference" and "base_orientation" in obj.track and not self.doc.observe.imu:
            raise _err(self.where, f"{where}.track", "base_orientation needs observe.imu (the base's body)")
        for k, term in enumerate(obj.terms):
            field = f"{where}.terms[{k}]"
            if term.tolerance:
                kind, name = QUANTITY.match(term.tolerance).groups()
                self.quantity_index(f"{field}.tolerance", kind, name)
            elif term.upright:
                self.name(f"{field}.upright", "body", term.upright)
            else:
                if isinstance(term.effort, list) and not term.effort:
                    raise _err(self.where, f"{field}.effort", "names no actuator (give 'all' or a list)")
                for i, ref in enumerate(term.effort if isinstance(term.effort, list) else []):
                    self.actuator(f"{field}.effort[{i}]", ref)

    def quantity_index(self, field: str, kind: str, name: str) -> int:
        obj = QUANTITIES[kind]
        if obj == "actuator":
            return self.actuator(field, name)
        i = self.name(field, obj, name)
        if kind == "joint_position":
            return int(self.model.jnt_qposadr[i])
        if kind == "joint_velocity":
            return int(self.model.jnt_dofadr[i])
        return i

    def _drift(self, ros_joints) -> None:
        d, model = self.doc.drift, self.model
        tables = {"mass_scale": "body", "damping_scale": "joint", "friction_scale": "geom"}
        for table, obj in tables.items():
            for key in getattr(d, table):
                if key != "all":
                    self.name(f"drift.{table}.{key}", obj, key)
        for key in d.actuator_gain:
            if key != "all":
                self.actuator(f"drift.actuator_gain.{key}", key)
        if d.default is not None:
            from sim.drift_spec import DriftSpec
            try:
                spec = DriftSpec.parse(d.default).as_dict()
            except (ValueError, TypeError) as e:
                raise _err(self.where, "drift.default", str(e)) from None
            for table, obj in tables.items():
                for key in spec.get(table, {}):
                    if key != "all":
                        self.name(f"drift.default.{table}.{key}", obj, key)
            for key in spec.get("actuator_gain", {}):
                if key != "all":
                    self.actuator(f"drift.default.actuator_gain.{key}", key)
        names = observation_names(self.doc, self.angle_modes)
        for key in d.obs_bias:
            if key != "all" and key not in names:
                raise _err(self.where, f"drift.obs_bias.{key}", f"unknown observation {key!r}; known: "
                           f"{mn.known(names)}")


def observation_names(doc: ProfileDoc, angle_modes=None) -> list[str]:
    """The plant's observation vector, by name: joint positions (a continuous joint's as
    ``NAME.position.sin`` / ``.cos`` under ``angle: sincos``, `sim.profile.angles`), joint velocities,
    then the IMU, odometry and extra channels the profile lists. `angle_modes`: the resolved
    encoding per joint (`RobotProfile.angle_modes`); None: every position raw."""
    ros = list(doc.observe.joint_states.joints)
    names = position_names(ros, angle_modes or ("raw",) * len(ros)) + [f"{r}.velocity" for r in ros]
    if doc.observe.imu:
        names += [f"imu.orientation.{c}" for c in "wxyz"] + [f"imu.angular_velocity.{c}" for c in "xyz"]
    if doc.observe.odometry:
        names += [f"odom.position.{c}" for c in "xyz"] + [f"odom.linear_velocity.{c}" for c in "xyz"]
    if doc.observe.extra:
        names += list(doc.observe.extra.names)
    return names
