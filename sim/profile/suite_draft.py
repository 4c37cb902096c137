"""A regression suite for a robot, drafted from its profile (`driftgate suite init --robot P`).

What the profile knows becomes scenarios the gate can judge on (safety/suite.py is the format):
- `target`: the profile's default drift (`drift.default`), the one the shipped champion fails on;
  the orchestrator replaces it with the system-identification estimate at each adaptation;
- `stress`: the target with every drifted quantity drawn per seed in +-20 % of the target's value
  (`relative: true`: the target is the sysid estimate at gate time, so the spread follows it; the
  profile's drift bounds are only the injector's, not applied here) and up to 0.01 sensor noise: a
  candidate must hold up around the estimate;
- `nominal` (only with nominal=True): the undrifted robot as a paired non-inferiority check against
  the incumbent. Off by default: the default drift is persistent (a worn motor, a new payload), so
  after it the undrifted robot is a regime the robot has left, and a candidate adapted to the drift
  (half-strength motors, say) cannot also be no worse than the old champion on full-strength ones:
  such a scenario fails every adaptation. If the old regime comes back, the detector sees a drift
  again and the next adaptation starts from the old champion (kept in the registry as an ancestor).
  Turn it on for drifts that come and go (a payload picked up and put down) where one policy can
  serve both;
- `initial-offset`: a probe that starts the robot with its first observed joint displaced, from
  the profile's initial-state distribution;
- hard constraints: the profile's explicit joint bounds (none when it takes them from the model:
  a joint range is the physics' own limit, touching it is not a violation).
"""
from __future__ import annotations

from sim.drift_spec import DriftSpec

STRESS_SPREAD = 0.2


def _stress_bounds(default: dict) -> dict:
    """Relative bounds [0.8, 1.2] on every drifted scale and gain (factors of the target's value)."""
    bounds: dict = {}
    for table in ("mass_scale", "actuator_gain", "damping_scale", "friction_scale"):
        for name in sorted(default.get(table) or {}):
            bounds.setdefault(table, {})[name] = [round(1 - STRESS_SPREAD, 6), round(1 + STRESS_SPREAD, 6)]
    bounds["obs_noise"] = [0.0, 0.01]
    return bounds


def draft_suite(plant: str, profile, nominal: bool = False, horizon: int = 300, seeds: int = 10) -> dict:
    """The suite document (a mapping, dumped to YAML by the caller) for `plant` described by `profile`."""
    default = DriftSpec.parse(profile.default_drift or {}).as_dict()
    name = profile.name
    scenarios = [{"name": "target", "tag": "target", "drift": default, "margin": 0.05,
                  "note": "the profile's default drift; the orchestrator replaces it with the sysid estimate"}]
    if default:
        scenarios.append({"name": "stress", "tag": "stress", "drift": "target",
                          "stress": {"seed": 7, "relative": True, "bounds": _stress_bounds(default)},
                          "min_metric": 0.6,
                          "note": "the sysid estimate is uncertain; a candidate must hold up within 20 % of it"})
    if nominal:
        scenarios.append({"name": "nominal", "tag": "nominal", "drift": {},
                          "note": "the undrifted robot must not get worse (a drift that comes and goes)"})
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
