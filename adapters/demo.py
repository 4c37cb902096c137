"""`driftgate demo`: the whole story on a simulated robot, over real ROS 2 on loopback, in one command.

    driftgate_sim_robot ──/joint_states, ~/reward──► driftgate_controller ──commands──► robot
          ▲  ~/inject_drift (once the drift monitor is armed)      │ ~/events, /diagnostics
          │                                                        ▼
    driftgate_demo: BagRecorder (MCAP) + DecisionRecorder (decisions.jsonl) + this driver

Any robot with a profile (``--robot NAME|PROFILE``, `adapters.robot_option`): its profile gives the
default drift (``drift.default``), champion, regression suite, drift-monitor calibration, joint names,
control rate and guard bounds; ``launch/robots/demo/NAME.yaml`` next to it its own sandbox budgets.
launch/demo.yaml names no robot part. A configuration the controller would refuse is refused before
any node starts (`check_configuration`); a node that still cannot configure ends the run at once
(one line, exit 2, no run directory); SIGINT before the story ended exits 130 after the report.

One process, three nodes (`adapters.cli_node.run_nodes`, a private rclpy context, DDS on
localhost, a per-run ROS_DOMAIN_ID). The driver thread watches the controller and:

1. lets the nominal champion drive until the drift monitor is armed (its warm-up,
   ``launch/drift_monitor.yaml``: 60 s of accepted telemetry) and a few seconds more, so that
   "before the drift" has a baseline and the detector statistics have a nominal stretch;
2. injects the drift on the robot (``~/inject_drift``; ``--drift-at-s`` to choose when);
3. lets detection -> post-alarm recording -> sandboxed adaptation -> gate -> shadow -> canary ->
   promotion -> watch run on their own (the controller node does all of it; the demo only watches);
4. stops when the watch period ends, a rollback completes, ``attempts`` adaptation attempts ended
   without a promotion (the champion was held each time), or ``--max-s`` passes;
5. closes the bag and the decisions file and renders the report (`adapters.report.render_report`):
   ``report.json``, ``timeline.png``, ``summary.md``.

The robot resets itself when it falls (``reset_on_fall`` in launch/demo.yaml; counted and reported):
a balance controller cannot bring a fallen pole back up, and a real robot would be caught and set
upright by an operator.

Run directory (default ``runs/demo``): ``registry/`` (a fresh registry bootstrapped with the shipped
champion; sandbox and gate jobs under ``registry/jobs``; the gate's working suite
``registry/gate_suite.yaml``, to which a promotion appends an archive scenario),
``regression_suite.yaml`` (a copy of the suite the run started from; the repository's file is never
written to), ``bag/`` (rosbag2 MCAP), ``decisions.jsonl``, ``report.json``, ``timeline.png``,
``summary.md``, ``demo.json`` (what ran, with which settings, how long). A previous demo run there is
replaced; any other non-empty directory is refused.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from adapters.demo_display import orchestrator_history, render, snapshot
from adapters.demo_node import SIM_ROBOT, DemoState, make_demo_node, quiet_logs
from adapters.demo_profile import (controller_values, demo_overlay, fall_pause_s, overlay_values,  # noqa: F401
                                   profile_asset, profile_guard_bounds, repo_file as _repo_file, sim_robot_values)
from sim.plant_names import DEFAULT_PLANT

MARKER = ".driftgate-demo"
INTERRUPTED = "stopped from outside (SIGINT/SIGTERM)"
CONTROLLER = "driftgate_controller"
REPORT_KEYS = ("plant", "drift", "detected_after_s", "time_to_adapt_s", "return_before_drift",
               "return_after_drift_before_adapt", "return_after_adapt", "verdicts", "champion_lineage",
               "rollbacks")


class DemoError(ValueError):
    """Bad demo input (unknown plant, bad drift, missing champion or suite, a directory in the way);
    `code`: the exit status (2 bad input, 1 a runtime failure such as a node that cannot start)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class DemoOptions:
    """What `run_demo` runs. `controller` / `sim` are extra ROS parameters for the two nodes (on top
    of the parameter file and what the demo sets itself)."""

    plant: str = DEFAULT_PLANT               # the robot: a built-in name, a shipped profile's name or a profile path
    drift: dict | None = None                 # None: the profile's drift.default
    seed: int = 0
    out: Path = Path("runs/demo")
    drift_at_s: float | None = None           # None: `settle_s` after the drift monitor is armed
    max_s: float | None = None                # None: the robot's whole story (`default_max_s`)
    params: Path | None = None                # None: launch/demo.yaml
    champion: Path | None = None              # None: the profile's assets.champion
    suite: Path | None = None                 # None: the parameter file's gate.suite, else the profile's assets.suite
    controller: dict = field(default_factory=dict)
    sim: dict = field(default_factory=dict)
    settle_s: float = 10.0                    # armed, nominal, before the default injection
    arm_timeout_s: float = 150.0              # inject anyway (and say so) if never armed by then
    attempts: int = 2                         # stop after this many adaptation attempts without promotion
    tail_s: float = 2.0                       # keep recording this long after the story ended
    domain_id: int | None = None              # None: ROS_DOMAIN_ID, else a per-process one
    namespace: str = ""                       # the three nodes' namespace (their relative topics move with it)

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("out", "params", "champion", "suite"):
            d[k] = None if d[k] is None else str(d[k])
        return d


@dataclass
class DemoResult:
    out: Path
    report: dict
    stop_reason: str
    wall_s: float
    timeline: dict
    interrupted: bool = False        # stopped by SIGINT/SIGTERM before the story ended (the CLI exits 130)


# ---------------------------------------------------------------------- input checks

def default_max_s(ctl: dict, warmup_s: float, settle_s: float) -> float:
    """Long enough for the whole story of this robot: warm-up, settle, sysid + sandbox budget, the
    gate, shadow, canary steps, watch, with slack for a loaded machine."""
    budget = float(ctl.get("adapt.budget_s") or 120.0) + float(ctl.get("adapt.sysid_budget_s") or 20.0)
    canary = float(ctl.get("orchestrator.canary_step_s") or 3.0) * len(ctl.get("orchestrator.canary_weights") or [1])
    story = float(ctl.get("orchestrator.shadow_s") or 5.0) + canary + float(ctl.get("orchestrator.watch_s") or 30.0)
    return round(warmup_s + settle_s + 1.5 * budget + story + 60.0)


def prepare(opts: DemoOptions, need_drift: bool = True) -> dict:
    """Validate everything before any file is written; returns the resolved settings.
    Raises DemoError with a one-line reason. Everything robot-specific comes from the robot's
    profile: default drift, champion, regression suite, drift-monitor calibration, joint names,
    guard bounds, control rate (and its demo overlay, `demo_overlay`)."""
    import yaml

    from adapters.cli_node import load_node_params
    from adapters.robot_option import resolve_robot, robot_label, robot_profile
    from sim.drift_spec import DriftSpec
    from sim.plants import make_plant
    from sim.profile import ProfileError

    try:
        plant = resolve_robot(opts.plant)
        profile = robot_profile(plant)
    except (ValueError, ProfileError, OSError) as e:
        raise DemoError(str(e) if str(e).startswith("--robot") else f"--robot: {e}") from None
    label = robot_label(plant)
    drift = opts.drift if opts.drift is not None else profile.default_drift
    if drift is None and not need_drift:
        drift = {"actuator_gain": {}}
    elif drift is None:
        raise DemoError(f"no default drift for robot {label!r} (its profile has no drift.default); "
                        "give one with --drift JSON")
    try:
        spec = DriftSpec.parse(drift)
        make_plant(plant).apply_drift(spec)          # names checked against the model
    except (ValueError, TypeError, KeyError) as e:
        raise DemoError(f"--drift: {e}") from None
    if spec.is_nominal and need_drift:
        raise DemoError("--drift: the drift is empty (nothing would change on the robot)")
    for name in ("settle_s", "tail_s") + (("max_s",) if opts.max_s is not None else ()):
        v = getattr(opts, name)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise DemoError(f"--{name.replace('_', '-')}: must be a finite number >= 0, got {v!r}")
    if opts.attempts < 1:
        raise DemoError(f"attempts must be >= 1, got {opts.attempts}")
    params = Path(opts.params) if opts.params is not None else _repo_file("launch/demo.yaml")
    overlay = demo_overlay(profile)
    try:
        sim_p = load_node_params(params, SIM_ROBOT, opts.namespace)
        ctl_p = load_node_params(params, CONTROLLER, opts.namespace)
        sim_p.update(overlay_values(overlay, SIM_ROBOT))
        ctl_p.update(overlay_values(overlay, CONTROLLER))
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise DemoError(f"parameter file {params}: {e}") from None
    champion = Path(opts.champion) if opts.champion is not None else profile_asset(profile, "champion")
    if champion is None or not champion.is_file():
        raise DemoError(f"no champion for robot {label!r} at {champion or '(profile names no assets.champion)'}; "
                        f"evolve one with `driftgate train-nominal --robot {opts.plant}` or pass --champion FILE")
    try:
        from sim.genome import load_genome
        from sim.plant_task import plant_policy_spec
        g = load_genome(champion)
        want = plant_policy_spec(plant)
        if g.policy_spec.obs_dim != want.obs_dim or g.policy_spec.act_dim != want.act_dim:
            raise DemoError(f"champion {champion} does not drive robot {label!r} ({g.policy_spec})")
    except DemoError:
        raise
    except Exception as e:
        raise DemoError(f"champion {champion}: {e}") from None
    suite = Path(opts.suite) if opts.suite is not None else \
        (_repo_file(str(ctl_p["gate.suite"])) if ctl_p.get("gate.suite") else profile_asset(profile, "suite"))
    if suite is None:
        raise DemoError(f"no regression suite for robot {label!r} (its profile names no assets.suite); "
                        f"write one with `driftgate suite init --robot {opts.plant}` or pass --suite FILE")
    try:
        from safety.suite import load_suite
        s = load_suite(suite)
    except Exception as e:
        raise DemoError(f"regression suite {suite}: {e}") from None
    if robot_label(getattr(s, "plant", plant)) != label:
        raise DemoError(f"regression suite {suite} is for robot {s.plant!r}, not {label!r}; pass --suite FILE")
    ctl_values = robot_controller_values(profile, plant, ctl_p, opts)
    sim_values = sim_robot_values(profile, plant, {**sim_p, "seed": int(opts.seed),   # JSON text given as YAML
                                                   **{k: json.dumps(v) if isinstance(v, dict) else v
                                                      for k, v in opts.sim.items()}})
    check_configuration(ctl_values, sim_values, plant)
    warmup = _warmup_s(ctl_values.get("monitor.config"))
    max_s = float(opts.max_s) if opts.max_s is not None else default_max_s(ctl_values, warmup, opts.settle_s)
    if opts.drift_at_s is not None and not (math.isfinite(opts.drift_at_s) and 0 <= opts.drift_at_s < max_s):
        raise DemoError(f"--drift-at-s must be in [0, --max-s), got {opts.drift_at_s}")
    return {"plant": plant, "label": label, "drift": spec.as_dict(), "params": params, "overlay": overlay,
            "champion": champion.resolve(), "suite": Path(suite).resolve(), "sim_params": sim_p,
            "controller_params": ctl_p, "controller_values": ctl_values, "sim_values": sim_values,
            "max_s": max_s}


def node_parameters(robot: str | None, params: str | Path | None = None, namespace: str = "") -> tuple[dict, dict]:
    """(simulated robot, controller) parameters for a robot as `driftgate demo` starts them (the
    launch file's and `driftgate node demo`'s robot-specific part): the parameter file's, the
    robot's demo overlay, then its profile's champion, suite, calibration, control rate and guard
    bounds. `robot` None: the parameter file's. Raises DemoError."""
    from adapters.cli_node import load_node_params
    if robot is None:
        try:
            robot = str(load_node_params(params or _repo_file("launch/demo.yaml"), CONTROLLER, namespace)
                        .get("robot") or DEFAULT_PLANT)
        except (OSError, ValueError) as e:
            raise DemoError(f"parameter file {params}: {e}") from None
    res = prepare(DemoOptions(plant=robot, params=Path(params) if params else None, namespace=namespace),
                  need_drift=False)
    ctl = {**res["controller_values"], "orchestrator.bootstrap_champion": str(res["champion"]),
           "gate.suite": str(res["suite"])}
    return {**res["sim_values"], "seed": res["sim_params"].get("seed", 0)}, ctl


def robot_controller_values(profile, plant: str, ctl_p: dict, opts: DemoOptions) -> dict:
    """The controller's parameters for this robot (`demo_profile.controller_values`), then --set."""
    return {**controller_values(profile, plant, ctl_p), **controller_sets(opts)}


def controller_sets(opts: DemoOptions) -> dict:
    """--set values; a mapping-valued setting given as YAML (``guard.joint_bounds={...}``) as its JSON text."""
    from controller.settings import is_mapping_leaf
    return {k: (json.dumps(v) if isinstance(v, dict) and is_mapping_leaf(k) else v) for k, v in opts.controller.items()}


def check_configuration(ctl_values: dict, sim_values: dict, plant: str) -> None:
    """What the controller's configure would refuse, refused now (one line), before any node or file
    exists: parameter types and ranges, the settings tree, joint names and guard bounds."""
    from adapters.cli_node import to_overrides
    from adapters.ros import controller_node as cn
    from adapters.ros import sim_robot_node as sn
    from controller.params import check_value
    from controller.pipeline import robot_joints, runtime_config
    from controller.settings import SettingsError, from_parameters
    try:
        for name, value in ctl_values.items():      # the controller's own check, word for word
            why = check_value(name, value)
            if why is not None:
                raise ValueError(why)
        to_overrides(sim_values, sn.PARAMETERS)
        to_overrides(ctl_values, cn.PARAMETERS)
        settings = from_parameters(ctl_values)
        info, joints = robot_joints(settings)
        runtime_config(settings, info, joints)
    except (ValueError, TypeError, SettingsError) as e:
        raise DemoError(" ".join(f"configure failed: {e}".split())) from None


def _warmup_s(config: str | None) -> float:
    try:
        from controller.drift import load_config
        return float(load_config(config or None).warmup_s)
    except Exception:
        return 60.0


def prepare_out_dir(out: Path) -> None:
    """A fresh run directory: created if missing, a previous demo run (marker file) replaced,
    anything else that is not empty refused."""
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise DemoError(f"--out {out} exists and is not a directory")
        if any(out.iterdir()):
            if not (out / MARKER).exists():
                raise DemoError(f"--out {out} is not empty and was not written by `driftgate demo`; "
                                "choose another directory (nothing was changed)")
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by `driftgate demo`; the next demo run with this --out replaces "
                              "this directory\n")


def ros_environment(domain_id: int | None) -> int:
    """Loopback-only discovery and a per-run domain id (unless the caller chose them)."""
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    if domain_id is None:
        env = os.environ.get("ROS_DOMAIN_ID", "").strip()
        domain_id = int(env) if env.isdigit() else os.getpid() % 100 + 100
    os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    return domain_id


# ---------------------------------------------------------------------- the driver

def _story_progress(orch, st: DemoState, opts: DemoOptions) -> tuple[bool, str]:
    """(done, why) from the orchestrator's transitions since the drift."""
    since = st.injected_wall or 0.0
    hist = [h for h in orchestrator_history(orch) if (h.get("time") or 0.0) >= since]
    counters = dict(orch.counters)
    trs = [(h.get("from"), h.get("to"), h.get("reason") or "") for h in hist if h.get("event") == "transition"]
    if any(frm == "watch" and to == "watching" for frm, to, _ in trs):
        why = next(r for frm, to, r in reversed(trs) if frm == "watch" and to == "watching")
        return True, f"watch period ended: {why}"
    if counters.get("rollbacks", 0) and orch.phase.value == "watching":
        return True, "rollback completed"
    if counters.get("promotions", 0):
        return False, ""
    ended = sum(1 for frm, to, _ in trs if to == "watching" and frm in ("adapting", "gating", "shadow", "canary"))
    if ended >= opts.attempts:
        return True, f"{ended} adaptation attempt(s) ended without a promotion: the champion was held"
    return False, ""


def _phase_story(phase: str) -> str:
    return {"idle": "no champion", "watching": "the champion drives; the drift monitor watches",
            "adapting": "drift detected: the sandbox identifies the robot and evolves a candidate",
            "gating": "the gate judges the candidate against the champion (regression suite)",
            "shadow": "the candidate computes actions on live states, without authority",
            "canary": "the candidate gets a stepped share of the command",
            "promoted": "promoted", "watch": "watching live performance after the promotion",
            "rollback": "rolled back"}.get(phase, phase)


def run_demo(opts: DemoOptions, *, console=None, live: bool = True,
             on_tick: Callable[[dict], None] | None = None) -> DemoResult:
    """Run the demo (see the module docstring). Raises DemoError for bad input before writing
    anything; a failure after the nodes started still closes the recordings and renders the report."""
    from rich.console import Console

    console = console or Console(stderr=True)
    res = prepare(opts)
    out = Path(opts.out)
    saved_env = {k: os.environ.get(k) for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")}
    domain_id = ros_environment(opts.domain_id)
    try:
        return _run(opts, res, out, domain_id, console, live, on_tick)
    finally:
        for k, v in saved_env.items():     # a caller's environment is left as it was (tests run several)
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run(opts: DemoOptions, res: dict, out: Path, domain_id: int, console, live: bool,
         on_tick: Callable[[dict], None] | None) -> DemoResult:
    from adapters.cli_node import NodeFailed, run_nodes, to_overrides
    from adapters.report import render_report
    from adapters.ros import controller_node as cn
    from adapters.ros import sim_robot_node as sn

    prepare_out_dir(out)
    registry = out / "registry"
    suite = out / "regression_suite.yaml"
    shutil.copyfile(res["suite"], suite)

    sim_values = dict(res["sim_values"])
    ctl_values = {**res["controller_values"], "orchestrator.registry_path": str(registry),
                  "orchestrator.bootstrap_champion": str(res["champion"]), "gate.suite": str(suite),
                  "orchestrator.job_root": "", "ros.autostart": True, **controller_sets(opts)}
    try:
        sim_over = to_overrides(sim_values, sn.PARAMETERS)
        ctl_over = to_overrides(ctl_values, cn.PARAMETERS)
    except ValueError as e:
        shutil.rmtree(out, ignore_errors=True)
        raise DemoError(str(e)) from None
    config = {"controller": ctl_values, "sim_robot": sim_values, "demo": opts.to_dict(),
              "reset_on_fall": bool(sim_values.get("reset_on_fall")), "drift": res["drift"],
              "champion": str(res["champion"]), "ros_domain_id": domain_id}

    st = DemoState()
    nodes: dict[str, Any] = {}
    stop = threading.Event()
    errors: list[str] = []

    def make_sim(ctx):
        nodes["sim"] = n = sn.SimRobotNode(SIM_ROBOT, context=ctx, namespace=opts.namespace,
                                           parameter_overrides=sim_over)
        quiet_logs(n)
        return n

    def make_ctl(ctx):
        nodes["ctl"] = n = cn.ControllerNode(CONTROLLER, context=ctx, namespace=opts.namespace,
                                             parameter_overrides=ctl_over)
        quiet_logs(n)
        return n

    def make_demo(ctx):
        nodes["demo"] = n = make_demo_node(ctx, out, res["plant"], config, opts.seed, registry, st, opts.namespace)

        def end_extra() -> dict:
            ctl = nodes.get("ctl")
            sim = nodes.get("sim")
            orch = getattr(ctl, "orchestrator", None)
            mon = getattr(ctl, "monitor", None)
            return {"counters": dict(orch.counters) if orch is not None else None,
                    "monitor": dict(mon.counters) if mon is not None else None,
                    "champion": orch.champion_id if orch is not None else None,
                    "robot": dict(sim.counters) if sim is not None else None, "stop_reason": st.stop_reason}
        n.end_extra = end_extra
        return n

    def driver() -> None:
        try:
            _drive(opts, res["max_s"], res["drift"], nodes, st, stop, console if live else None, on_tick)
        except Exception as e:   # never leave the nodes spinning forever
            errors.append(f"{type(e).__name__}: {e}")
            st.stop_reason = st.stop_reason or f"driver error: {e}"
            stop.set()

    th = threading.Thread(target=driver, name="driftgate-demo-driver", daemon=True)
    t_start = time.monotonic()
    th.start()
    try:
        run_nodes([make_sim, make_ctl, make_demo], domain_id=domain_id, stop=stop)
    except NodeFailed as e:          # the controller could not configure: no story to tell
        shutil.rmtree(out, ignore_errors=True)
        raise DemoError(" ".join(str(e).split()), code=e.code) from None
    except ValueError as e:          # a node refused its parameters in its constructor (e.g. fall_bounds)
        shutil.rmtree(out, ignore_errors=True)
        raise DemoError(" ".join(f"configure failed: {e}".split())) from None
    finally:
        stop.set()
        th.join(timeout=10)
    wall = time.monotonic() - t_start
    if errors:
        console.print(f"[bold red]demo driver failed:[/] {errors[0]}")
    timeline = {"armed_at_s": st.armed_at, "injected_at_s": st.injected_at, "done_at_s": st.done_at,
                "stop_reason": st.stop_reason, "inject_note": st.inject_note}
    extra = {"demo": {"wall_s": round(wall, 3), "out": str(out), "bag": str(out / "bag"),
                      "registry": str(registry), **{k: v for k, v in timeline.items()}}}
    report = render_report(out, extra=extra)
    (out / "demo.json").write_text(json.dumps({"options": opts.to_dict(), "resolved": {
        "drift": res["drift"], "champion": str(res["champion"]), "suite": str(res["suite"]),
        "params": str(res["params"])}, "ros_domain_id": domain_id, "wall_s": wall, **timeline},
        indent=1, default=str) + "\n")
    return DemoResult(out, report, st.stop_reason, wall, timeline,
                      interrupted=st.stop_reason == INTERRUPTED or (not st.stop_reason and not errors))


def _drive(opts: DemoOptions, max_s: float, drift: dict, nodes: dict, st: DemoState, stop: threading.Event, console,
           on_tick: Callable[[dict], None] | None) -> None:
    """The driver loop: inject the drift when due, follow the story, decide when to stop."""
    from contextlib import nullcontext
    while not stop.is_set() and not all(k in nodes for k in ("sim", "ctl", "demo")):
        if st.now() > 60.0:
            raise RuntimeError("the nodes did not start within 60 s")
        time.sleep(0.05)
    ctl, demo = nodes["ctl"], nodes["demo"]
    ctx = nullcontext()
    live = None
    if console is not None:
        from rich.live import Live
        live = Live(console=console, refresh_per_second=4, transient=False)
        ctx = live
    with ctx:
        while not stop.is_set():
            now = st.now()
            mon = getattr(ctl, "monitor", None)
            orch = getattr(ctl, "orchestrator", None)
            armed = mon is not None and mon.state == "monitoring"
            if st.armed_at is None and armed:
                st.armed_at = now
            if st.injected_at is None:
                due = None
                if opts.drift_at_s is not None:
                    due = opts.drift_at_s
                    if now >= due and not armed and mon is not None and now < opts.arm_timeout_s:
                        st.inject_note = f"held from {due:g} s until the drift monitor is armed"
                        due = None
                elif st.armed_at is not None:
                    due = st.armed_at + opts.settle_s
                elif now >= opts.arm_timeout_s:
                    due = now
                    st.inject_note = "the drift monitor was not armed: drift injected anyway"
                if due is not None and now >= due:
                    demo.inject(drift)
                    st.injected_at, st.injected_wall = now, time.time()
                    st.story = "drift injected: " + json.dumps(drift)
            elif orch is not None and st.done_at is None:
                st.story = _phase_story(orch.phase.value)
                done, why = _story_progress(orch, st, opts)
                if done:
                    st.done_at, st.stop_reason = now, why
                    st.story = f"done: {why}"
            if st.done_at is not None and now >= st.done_at + opts.tail_s:
                break
            if now >= max_s:
                st.stop_reason = st.stop_reason or f"--max-s {max_s:g} s reached"
                break
            if live is not None or on_tick is not None:
                snap = snapshot(ctl, st)
                snap["drift"] = drift
                snap["max_s"] = max_s
                if live is not None:
                    live.update(render(snap, opts))
                if on_tick is not None:
                    on_tick(snap)
            stop.wait(0.25)
    if not st.stop_reason:
        st.stop_reason = INTERRUPTED
    stop.set()


__all__ = ["INTERRUPTED", "DemoError", "DemoOptions", "DemoResult", "REPORT_KEYS", "prepare", "prepare_out_dir",
           "run_demo"]
