"""A regression suite for a robot, drafted from its profile (`driftgate suite init --robot P`).

What the profile knows becomes scenarios the gate can judge on (safety/suite.py is the format):
- `target`: the profile's default drift (`drift.default`), the one the shipped champion fails on;
  the orchestrator replaces it with the system-identification estimate at each adaptation;
- `stress`: the target with every drifted quantity drawn per seed in +-20 % of it (inside the
  profile's sysid bounds) and up to 0.01 sensor noise: a candidate must hold up around the estimate;
- `nominal`: the undrifted robot (omitted with nominal=False: drifts the old regime never comes back
  from, and drifts no memoryless policy can serve together with the nominal robot);
- `initial-offset`: a probe that starts the robot with its first observed joint displaced, from
  the profile's initial-state distribution;
- hard constraints: the profile's explicit joint bounds (none when it takes them from the model:
  a joint range is the physics' own limit, touching it is not a violation).
"""
from __future__ import annotations

from sim.drift_spec import DriftSpec

STRESS_SPREAD = 0.2


def _stress_bounds(default: dict, profile) -> dict:
    """[0.8 v, 1.2 v] around every drifted value (kept inside the profile's bounds, sign kept)."""
    limits = profile.doc.drift
    bounds: dict = {}
    for table in ("mass_scale", "actuator_gain", "damping_scale", "friction_scale"):
        for name, v in (default.get(table) or {}).items():
            lo, hi = sorted((v * (1 - STRESS_SPREAD), v * (1 + STRESS_SPREAD)))
            lim = getattr(limits, table, {}).get(name) or getattr(limits, table, {}).get("all")
            if lim is not None:
                lo, hi = max(lo, lim[0]), min(hi, lim[1])
                if lo > hi:
                    lo = hi = v
            if table == "actuator_gain" and lo <= 0 <= hi:
                continue                          # a gain range must not contain a dead motor
            bounds.setdefault(table, {})[name] = [round(lo, 6), round(hi, 6)]
    bounds["obs_noise"] = [0.0, 0.01]
    return bounds


def draft_suite(plant: str, profile, nominal: bool = True, horizon: int = 300, seeds: int = 10) -> dict:
    """The suite document (a mapping, dumped to YAML by the caller) for `plant` described by `profile`."""
    default = DriftSpec.parse(profile.default_drift or {}).as_dict()
    name = profile.name
    scenarios = [{"name": "target", "tag": "target", "drift": default, "margin": 0.05,
                  "note": "the profile's default drift; the orchestrator replaces it with the sysid estimate"}]
    if default:
        scenarios.append({"name": "stress", "tag": "stress", "drift": "target",
                          "stress": {"seed": 7, "bounds": _stress_bounds(default, profile)}, "min_metric": 0.6,
                          "note": "the sysid estimate is uncertain; a candidate must hold up around it"})
    if nominal:
        scenarios.append({"name": "nominal", "tag": "nominal", "drift": {},
                          "note": "the undrifted robot must not get worse"})
    joint = _first_joint(profile)
    if joint is not None:
        scenarios.append({"name": "initial-offset", "tag": "probe", "drift": "target",
                          "probe": {"kind": "initial_offset", "joints": {joint: 0.1}},
                          "note": f"starts with {joint} 0.1 off the initial state (sign alternating)"})
    constraints: dict = {"max_saturation": 0.5}
    if profile.doc.safety.joint_bounds != "from_model":
        state = {_model_joint(profile, j): [lo, hi] for j, (lo, hi) in profile.joint_bounds.items()
                 if abs(lo) != float("inf") and abs(hi) != float("inf")}
        if state:
            constraints["state"] = state
    return {"version": 1, "name": f"{name}-default", "plant": plant,
            "defaults": {"horizon": int(horizon), "seeds": int(seeds), "metric": "mean_reward"},
            "gate": {"min_seeds": 5, "margin": 0.02, "tolerance": 0.02, "ci_level": 0.95, "resamples": 2000,
                     "seed": 0, "hurdle": {"seeds": 3, "horizon": 100, "margin": 0.1},
                     "static": {"max_abs_weight": 1000, "max_params": 1000000}},
            "constraints": constraints, "scenarios": scenarios}


def _model_joint(profile, ros_name: str) -> str:
    """The MuJoCo joint name of a JointState name (suites name model joints)."""
    import mujoco
    i = profile.ros_joints.index(ros_name)
    return mujoco.mj_id2name(profile.model, mujoco.mjtObj.mjOBJ_JOINT, profile.joints[i])


def _first_joint(profile) -> str | None:
    """The first observed hinge or slide joint, by model name (what an initial-offset probe moves)."""
    import mujoco
    for j in profile.joints:
        if int(profile.model.jnt_type[j]) in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)):
            return mujoco.mj_id2name(profile.model, mujoco.mjtObj.mjOBJ_JOINT, j)
    return None
