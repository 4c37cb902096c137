"""`draft_profile`: a commented robot-profile draft from an MJCF or URDF model (`driftgate robot init`).

The draft lists everything the model has by name (joints with their ranges, actuators with their
ctrlrange and target, bodies, sites, sensors) and picks defaults a user can run `robot check` on at
once: every hinge/slide joint observed under its MuJoCo name, every actuator commanded in model
order, a control rate that divides the timestep, the IMU/odometry of a floating base, a drift block
with default bounds and the model-reference objective. It is text, not a dump of the schema's
defaults, because a person edits it next.
"""
from __future__ import annotations

import datetime
import json
import os
import re
import textwrap
from pathlib import Path

import mujoco

from sim.profile import model_names as mn
from sim.profile.angles import continuous
from sim.profile.schema import UrdfActuator

MAX_RATE_HZ = 100.0
HINGE_SLIDE = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))


def q(s: str) -> str:
    """A YAML scalar for any name (JSON strings are YAML)."""
    return json.dumps(s)


def model_ref(model_path: Path, profile_dir: Path) -> str:
    """``PACKAGE:PATH`` for a file inside an installed package, else a path relative to the profile."""
    model_path = model_path.resolve()
    for parent in model_path.parents:
        if parent.parent.name in ("site-packages", "dist-packages"):
            return f"{parent.name}:{model_path.relative_to(parent).as_posix()}"
    return Path(os.path.relpath(model_path, profile_dir.resolve())).as_posix()


def pick_rate(timestep: float) -> tuple[float, int]:
    """The fastest rate <= 100 Hz that is 1/timestep over a whole number of sub-steps."""
    k = 1
    while 1.0 / (k * timestep) > MAX_RATE_HZ * (1 + 1e-9):
        k += 1
    return float(f"{1.0 / (k * timestep):.12g}"), k


def urdf_actuators(model: mujoco.MjModel) -> list[UrdfActuator]:
    """Actuators for a URDF that has none: one motor per named hinge/slide joint, ctrlrange from the
    URDF effort limit where it has one, else [-1, 1]."""
    out = []
    for j in range(model.njnt):
        if int(model.jnt_type[j]) not in HINGE_SLIDE or not model.joint(j).name:
            continue
        lo, hi = model.jnt_actfrcrange[j] if model.jnt_actfrclimited[j] else (-1.0, 1.0)
        out.append(UrdfActuator(joint=model.joint(j).name, ctrlrange=(float(lo), float(hi)) if lo < hi else (-1.0, 1.0)))
    return out


def render_urdf_actuators(decls: list[UrdfActuator]) -> list[str]:
    lines = ["  # The URDF declares no actuators: one motor per non-fixed joint, drafted from its effort limits.",
             "  # kind: motor | position (kp) | velocity (kv); gear scales ctrl to force/torque.",
             "  actuators:"]
    return lines + [f"    - {{joint: {q(a.joint)}, kind: {a.kind}, gear: {a.gear:g}, "
                    f"ctrlrange: [{a.ctrlrange[0]:g}, {a.ctrlrange[1]:g}]}}" for a in decls]


def draft_profile(model: mujoco.MjModel, model_path: Path, out: Path, kind: str = "mjcf",
                  urdf_actuators: list[str] | None = None) -> str:
    """The YAML text of a draft profile for `model` (compiled from `model_path`), to be written at `out`."""
    name = re.sub(r"[^\w.-]", "_", model_path.stem) or "robot"
    name = name if name[0].isalnum() else f"robot{name}"
    dt = float(model.opt.timestep)
    rate, k = pick_rate(dt)
    hinge_slide = [j for j in range(model.njnt) if model.joint(j).name and
                   int(model.jnt_type[j]) in HINGE_SLIDE]
    others = [j for j in range(model.njnt) if j not in hinge_slide]
    free_bodies = [int(model.jnt_bodyid[j]) for j in range(model.njnt) if int(model.jnt_type[j]) == int(mujoco.mjtJoint.mjJNT_FREE)]
    if not hinge_slide:
        raise ValueError(f"{model_path.name} has no named hinge or slide joint: nothing for a JointState to carry")
    if model.nu == 0 and not urdf_actuators:
        raise ValueError(f"{model_path.name} has no actuators: nothing to command")
    labels = [mn.actuator_label(model, i) for i in range(model.nu)]
    refs = mn.actuator_refs(model)
    bad = [lab for lab in labels if lab not in refs]
    if bad:
        raise ValueError(f"{model_path.name}: actuators {bad} have no name and share their target with another "
                         "actuator; name them in the model")
    L = [f"# driftgate robot profile, drafted by `driftgate robot init` from {model_path.name}",
         f"# on {datetime.date.today().isoformat()}. Edit it, then run `driftgate robot check {out.name}`.",
         "# Names are the model's own; unnamed actuators are named by their target (joint:NAME).",
         "version: 1", f"name: {q(name)}"]
    ref = model_ref(model_path, out.parent)
    if kind == "urdf":
        L += ["model:", f"  urdf: {q(ref)}", *(urdf_actuators or [])]
    else:
        L += [f"model: {{mjcf: {q(ref)}}}"]
    L += [f"control: {{rate_hz: {rate:.12g}}}   # model timestep {dt:g} s ({1 / dt:.6g} Hz) / {k} sub-step{'s' if k > 1 else ''}",
          "", "observe:", "  joint_states:                     # sensor_msgs/JointState name -> MuJoCo joint",
          "    topic: joint_states", "    joints:"]
    for j in hinge_slide:
        jn = model.joint(j).name
        rng = (f"range [{model.jnt_range[j, 0]:.4g}, {model.jnt_range[j, 1]:.4g}]" if model.jnt_limited[j]
               else "unlimited")
        L.append(f"      {q(jn)}: {q(jn)}   # {mn.JOINT_KIND[int(model.jnt_type[j])]}, {rng}")
    for j in others:
        L.append(f"      # {model.joint(j).name or f'joint #{j}'}: a {mn.JOINT_KIND[int(model.jnt_type[j])]} joint "
                 "(JointState carries hinge/slide joints; a floating base goes through imu / odometry)")
    L.append("    velocity: measured               # or: differentiate (drivers publishing positions only)")
    turning = [model.joint(j).name for j in hinge_slide if continuous(model, j)]
    if turning:   # a freely turning joint winds up whole turns: a policy sees (sin, cos) of it instead
        L.append(f"    angle: sincos                    # continuous (unlimited hinge): {', '.join(turning)}; "
                 "or wrap | raw")
    if free_bodies:
        base = q(model.body(free_bodies[0]).name)
        L += [f"  imu: {{topic: imu, body: {base}}}    # orientation + angular velocity of the floating base",
              f"  odometry: {{topic: odom, body: {base}}}"]
    else:
        first = next((model.body(b).name for b in range(1, model.nbody) if model.body(b).name), "BODY")
        L += [f"  # imu: {{topic: imu, body: {q(first)}}}   # when the robot has an IMU"]
    L += ["", "command:                           # std_msgs/Float64MultiArray index -> actuator",
          "  topic: forward_effort_controller/commands", "  interface: effort                 # effort | velocity | position",
          "  actuators:"]
    safe = []
    for i, lab in enumerate(labels):
        lo, hi = model.actuator_ctrlrange[i]
        limited = bool(model.actuator_ctrllimited[i])
        target = mn.actuator_target(model, i)
        L.append(f"    - {q(lab)}   # ctrlrange " + (f"[{lo:g}, {hi:g}]" if limited else "unlimited")
                 + f", gear {model.actuator_gear[i, 0]:g}" + (f", drives {target}" if target and target != lab else ""))
        safe.append((lo + hi) / 2 if limited and (lo > 0 or hi < 0) else 0.0)
    L += [f"  safe: [{', '.join(f'{x:g}' for x in safe)}]   # held when driftgate must stop; inside ctrlrange", "",
          "safety:", "  joint_bounds: from_model         # or {ROS_NAME: [lower, upper], ...}"]
    fall_body = model.body(free_bodies[0]).name if free_bodies else None
    L.append(f"  # fall: {{body: {q(fall_body or 'BODY')}, min_height: 0.3, max_tilt_deg: 60}}")
    L += ["initial_state: {qpos_noise: 0.01, qvel_noise: 0.01}   # Gaussian std around the nominal pose"]
    if model.nkey:
        keys = [model.key(i).name for i in range(model.nkey) if model.key(i).name]
        if keys:
            L.append(f"# initial_state: {{keyframe: {q(keys[0])}}}   # keyframes: {', '.join(keys)}")
    track = "[joint_positions, base_orientation]" if free_bodies else "[joint_positions]"
    L += ["", "objective:", "  kind: model_reference            # behave as the nominal robot did (the default)",
          f"  track: {track}", "  # or a task reward, dm_control.utils.rewards.tolerance semantics:",
          "  # kind: terms", "  # terms:", "  #   - {tolerance: body_height(BODY), bounds: [1.0, .inf], margin: 0.5, weight: 2}",
          "  #   - {upright: BODY}", "  #   - {effort: all, weight: 0.2}", "  # or: {kind: entry_point, entry_point: "
          "\"my_robot.rewards:task\"}", "", "drift:                             # what system identification may estimate",
          "  mass_scale: {all: [0.5, 2.0]}", "  actuator_gain: {all: [-1.5, 1.5]}   # negative: a motor wired backwards",
          "  damping_scale: {all: [0.2, 5.0]}", "  friction_scale: {all: [0.5, 2.0]}", "  action_delay_ticks: [0, 3]",
          "", "assets:                            # relative to this file, created when missing",
          f"  champion: champions/{name}.safetensors", f"  suite: suites/{name}.yaml",
          f"  calibration: calibration/{name}.yaml", ""]
    L += _inventory(model)
    return "\n".join(L) + "\n"


def _inventory(model: mujoco.MjModel) -> list[str]:
    """Comment lines naming every body, site and sensor (what fall conditions, the IMU and objective
    terms may refer to)."""
    out = ["# What the model has, by name:"]
    sensors = [f"{model.sensor(i).name} ({mujoco.mjtSensor(int(model.sensor_type[i])).name.removeprefix('mjSENS_').lower()})"
               for i in range(model.nsensor) if model.sensor(i).name]
    for label, names in (("bodies", [n for n in mn.names(model, "body") if n != "world"]),
                         ("sites", mn.names(model, "site")), ("sensors", sensors)):
        lines = textwrap.wrap(", ".join(names), 96) or ["(none named)"]
        out.append(f"#   {label}: {lines[0]}")
        out += [f"#     {line}" for line in lines[1:]]
    return out
