"""What a robot's profile gives the demo's two nodes: champion, regression suite, drift-monitor
calibration, control rate, guard bounds, the pause after a fall, and the robot's own demo overlay
(``launch/robots/demo/NAME.yaml``). No ROS and no CLI imports: `driftgate demo` (adapters.demo),
`driftgate node demo` (adapters.cli_node) and launch/demo.launch.py share it."""
from __future__ import annotations

import math
import os
from pathlib import Path

import yaml

from sim.plant_names import DEFAULT_PLANT

SIM_ROBOT_NODE = "driftgate_sim_robot"
CONTROLLER_NODE = "driftgate_controller"


def repo_file(rel: str) -> Path:
    """A file shipped with driftgate: from the working directory if it is there (a clone), else the
    installed copy (`controller.shipped`: colcon share, wheel package data or the checkout)."""
    from controller.shipped import resolve
    return resolve(rel)


def overlay_values(path: Path | None, node: str) -> dict:
    """The flattened ``ros__parameters`` of `node` in a demo overlay (or {})."""
    if path is None:
        return {}
    from controller.settings import flatten
    doc = yaml.safe_load(Path(path).read_text()) or {}
    sec = (doc.get(node) or {}).get("ros__parameters") or {}
    if not isinstance(sec, dict):
        raise ValueError(f"{path}: section {node!r} must hold a ros__parameters mapping")
    return flatten(sec)


def profile_asset(profile, which: str) -> Path | None:
    """The profile's asset (`assets.champion` / `suite` / `calibration`); where it is not next to the
    profile (an installed package keeps launch/ and the champions apart), the shipped file of the same
    repository-relative name (`controller.shipped`)."""
    p = profile.asset_path(which)
    if p is None or p.exists() or profile.path is None:
        return p
    rel = os.path.normpath(Path("launch/robots") / getattr(profile.doc.assets, which)).replace(os.sep, "/")
    rel = "champions/" + rel[len("sim/assets/champions/"):] if rel.startswith("sim/assets/champions/") else rel
    q = repo_file(rel)
    return q if q.exists() else p


def demo_overlay(profile) -> Path | None:
    """The robot's own demo parameters (``demo/<profile stem>.yaml`` next to its profile: sandbox
    budgets, guard bounds that differ from the profile's), or None. They go on top of the parameter
    file, so launch/demo.yaml itself carries nothing robot-specific."""
    if profile.path is None:
        return None
    p = Path(profile.path).parent / "demo" / f"{Path(profile.path).stem}.yaml"
    return p if p.is_file() else None


def profile_guard_bounds(profile, joint_names: list[str]) -> dict[str, list[float]]:
    """Guard bounds from the profile's ``safety.joint_bounds`` (finite ones, joints the robot
    publishes). Bounds taken from the model's joint ranges get `JOINT_TOL` of slack: MuJoCo joint
    limits are soft, and a leg pressed against its stop must not end a canary."""
    from safety.constraints import JOINT_TOL
    slack = JOINT_TOL if profile.doc.safety.joint_bounds == "from_model" else 0.0
    return {name: [lo - slack, hi + slack] for name, (lo, hi) in profile.joint_bounds.items()
            if name in joint_names and math.isfinite(lo) and math.isfinite(hi)}


def fall_pause_s(control_dt: float) -> float:
    """The simulated robot's pause after a fall: 0.05 s, and at least 4 control periods, so that the
    gap exceeds the drift monitor's gap_factor (2.5 periods): the reset then starts a new telemetry
    segment instead of reading as a drift (at the walker's 40 Hz, 0.05 s is only 2 periods)."""
    return round(max(0.05, 4.0 * float(control_dt)), 6)


def sim_robot_values(profile, plant: str, sim_p: dict) -> dict:
    """The simulated robot's parameters for this robot: `sim_p`, the robot, its fall pause; no reset on
    a fall for a robot without hard state limits to catch it at."""
    values = {**sim_p, "robot": plant}
    values.setdefault("fall_pause_s", fall_pause_s(profile.control_dt))
    if values.get("reset_on_fall") and not values.get("fall_bounds"):
        from safety.constraints import default_limits
        if not default_limits(plant).state:
            values["reset_on_fall"] = False
    return values


def controller_values(profile, plant: str, ctl_p: dict) -> dict:
    """The controller's parameters for this robot: `ctl_p`, then what the profile says (calibration,
    control rate, guard bounds) where `ctl_p` leaves it open."""
    import json

    from sim.observation import plant_info
    values = {**ctl_p, "robot": plant}
    cal = profile_asset(profile, "calibration")
    if not values.get("monitor.config") and cal is not None:
        values["monitor.config"] = str(cal)
    values.setdefault("runtime.rate_hz", round(1.0 / profile.control_dt, 6))
    if "guard.joint_bounds" not in values:
        bounds = profile_guard_bounds(profile, plant_info(plant)["joint_names"])
        values["guard.joint_bounds"] = json.dumps(bounds) if bounds else ""
    return values


def node_values(robot: str | None, sim_p: dict, ctl_p: dict) -> tuple[dict, dict]:
    """(simulated robot, controller) parameters of `driftgate node demo`: the parameter file's values
    (`sim_p`, `ctl_p`), the robot's overlay, its profile's values, champion and suite. `robot` None:
    the file's. ValueError('--robot: ...') for a robot that names nothing."""
    from adapters.robot_option import resolve_robot, robot_profile
    plant = resolve_robot(robot or ctl_p.get("robot") or DEFAULT_PLANT)
    profile = robot_profile(plant)
    overlay = demo_overlay(profile)
    sim = sim_robot_values(profile, plant, {**sim_p, **overlay_values(overlay, SIM_ROBOT_NODE)})
    ctl = controller_values(profile, plant, {**ctl_p, **overlay_values(overlay, CONTROLLER_NODE)})
    champion, suite = profile_asset(profile, "champion"), profile_asset(profile, "suite")
    if not ctl.get("orchestrator.bootstrap_champion") and champion is not None:
        ctl["orchestrator.bootstrap_champion"] = str(champion)
    if not ctl.get("gate.suite") and suite is not None:
        ctl["gate.suite"] = str(suite)
    return sim, ctl
