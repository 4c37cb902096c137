"""`driftgate demo` (adapters/demo.py): the whole story over real ROS 2 on loopback, shortened.

The end-to-end test runs the real nodes (simulated robot + controller + recorders in one process,
own domain id), the real sandbox (system identification + SR-GHN evolution, small budget) and the
real gate, with a short drift-monitor warm-up, and checks the report: every required key, the drift
detected, an adaptation result from the sandbox, a gate verdict, the recording on disk. Whether the
candidate is promoted depends on what the sandbox finds; the test does not require it.

The fast tests check what the demo relies on: the simulated robot's reset on a fall (counted, a
gap in the joint-state stream), and that bad input leaves nothing behind.
"""
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

from adapters.demo import REPORT_KEYS, DemoError, DemoOptions, prepare_out_dir, run_demo  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.ros
DRIFT = {"mass_scale": {"pole_1": 3.0}, "actuator_gain": {"slide": -1.0}}


def _domain(offset: int) -> int:
    return (int(os.environ.get("ROS_DOMAIN_ID", "100")) + 31 * offset + os.getpid()) % 100 + 100


def test_sim_robot_resets_when_it_falls_and_counts_it():
    """reset_on_fall: the reversed motor drops the pole past horizontal; the robot is set upright
    (a new episode), the fall is counted and announced, and nothing is published for fall_pause_s."""
    from rclpy.parameter import Parameter

    from adapters.ros.sim_robot_node import SimRobotNode
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=_domain(1))
    try:
        node = SimRobotNode("sim_fall_test", context=ctx, namespace=f"/dgd{os.getpid()}", parameter_overrides=[
            Parameter("autostep", value=False), Parameter("reset_on_fall", value=True),
            Parameter("fall_pause_s", value=0.05)])
        try:
            assert [b[1] for b in node.fall_bounds] == ["slider", "hinge_1"]   # the gate's hard state limits
            node.apply_drift(DRIFT)
            node._command = np.array([1.0])            # full push: with the motor reversed, over it goes
            for _ in range(400):
                node._command_time = time.monotonic()
                node.step_once()
                if node.counters["falls"]:
                    break
            assert node.counters["falls"] == 1 and node._episode == 1
            q = node.plant.joint_positions()
            assert abs(q[1]) < 0.05 and abs(q[0]) < 0.15                    # upright again, near the middle
            assert node.plant.drift.as_dict() == DRIFT                         # the robot is still drifted
        finally:
            node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)


def test_bad_input_leaves_nothing_behind(tmp_path):
    out = tmp_path / "demo"
    for opts in (DemoOptions(plant="no_such_plant", out=out),
                 DemoOptions(drift={"mass_scale": {"no_such_body": 2.0}}, out=out),
                 DemoOptions(drift={}, out=out),
                 DemoOptions(champion=tmp_path / "missing.safetensors", out=out),
                 DemoOptions(drift_at_s=500.0, max_s=100.0, out=out)):
        with pytest.raises(DemoError):
            run_demo(opts, live=False)
        assert not out.exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("not a demo run")
    with pytest.raises(DemoError, match="not empty"):
        prepare_out_dir(other)
    assert (other / "keep.txt").read_text() == "not a demo run"


@pytest.mark.slow
def test_demo_runs_the_story_end_to_end(tmp_path):
    """A shortened `driftgate demo`: 8 s warm-up, drift 2 s after the monitor is armed, a 20 s
    sandbox budget, short shadow/canary/watch; stops after the first adaptation attempt's outcome,
    which must be the whole story: detected, adapted, gated, shadow, canary, promoted, recovered.
    In a namespace (`driftgate demo --namespace`): every node and topic of the story moves with it."""
    monitor = yaml.safe_load((ROOT / "launch" / "drift_monitor.yaml").read_text())
    monitor["drift_monitor"]["ros__parameters"]["warmup_s"] = 8.0
    cfg = tmp_path / "drift_monitor.yaml"
    cfg.write_text(yaml.safe_dump(monitor))
    out = tmp_path / "demo"
    suite_before = (ROOT / "launch" / "regression_suite.yaml").read_text()
    ticks = []
    result = run_demo(DemoOptions(
        out=out, seed=0, max_s=300.0, settle_s=2.0, attempts=1, tail_s=1.0, domain_id=_domain(2), namespace="robot_a",
        controller={"monitor.config": str(cfg), "adapt.budget_s": 20.0, "adapt.sysid_budget_s": 6.0,
                    "adapt.workers": 1, "orchestrator.shadow_s": 2.0, "orchestrator.shadow_min_samples": 50,
                    "orchestrator.canary_weights": [0.5, 1.0], "orchestrator.canary_step_s": 1.0,
                    "orchestrator.watch_s": 5.0, "orchestrator.watch_min_samples": 50}),
        live=False, on_tick=ticks.append)
    rep = json.loads((out / "report.json").read_text())
    for k in REPORT_KEYS:
        assert k in rep, k
    assert rep == json.loads(json.dumps(result.report))
    assert rep["plant"] == "cartpole" and rep["drift"] == DRIFT
    assert rep["detected_after_s"] is not None and 0.0 <= rep["detected_after_s"] < 5.0
    assert rep["false_alarms_before_drift"] == 0
    # the story went past detection: the sandbox answered (identification + evolution) ...
    ads = rep["adaptations"]
    assert ads and ads[0]["ok"], ads
    est = ads[0]["drift_estimate"]
    assert est["actuator_gain"]["slide"] < 0             # the reversed motor was identified from live telemetry
    # (the pole mass is not asserted here: with the LQR champion the pole falls within a fraction of a
    # second of the drift and the 6 s sysid budget of this shortened run can miss it; see issue 7 note)
    assert est["mass_scale"]["pole_1"] > 0
    assert ads[0]["return_after"] >= ads[0]["return_before"]
    # ... the gate passed the candidate, the rescue canary handed it authority, it was promoted ...
    assert [v["verdict"] for v in rep["verdicts"]] == ["PASS"], rep["verdicts"]
    assert len(rep["promotions"]) == 1 and rep["rollbacks"] == []
    # drift -> promotion went through the 2 s shadow and the two 1 s canary steps (no wall-clock upper
    # bound here: on a loaded 2-core machine the sandbox's start-up alone can take tens of seconds;
    # the run stops after the first attempt's outcome, max_s is only a safety cap)
    assert rep["time_to_adapt_s"] is not None and rep["time_to_adapt_s"] >= 2.0 + 2 * 1.0
    # ... and the live robot recovered (reward per tick, 1.0 = upright, centred, still)
    assert rep["return_after_drift_before_adapt"] < 0.8 < 0.95 < rep["return_after_adapt"]
    assert rep["falls"]["after_adapt"]["n"] == 0, rep["falls"]
    from sim.adapt_job import nominal_champion
    assert rep["champion_lineage"][0] == nominal_champion("cartpole").id      # the shipped champion started
    assert len(rep["champion_lineage"]) == 1 + len(rep["promotions"]) + len(rep["rollbacks"])
    # the shipped champion balances the nominal robot: no fall before the drift; the drift makes it fall
    falls = rep["falls"]
    assert falls["before_drift"]["n"] == 0 and falls["before_drift"]["seconds"] > 0, falls
    assert falls["after_drift_before_adapt"]["n"] >= 1, falls
    assert sum(falls[w]["n"] for w in ("before_drift", "after_drift_before_adapt", "after_adapt")) == falls["total"]
    assert result.stop_reason and "max-s" not in result.stop_reason, result.stop_reason
    # the recording and the rest of the run directory
    assert (out / "bag" / "metadata.yaml").exists() and list((out / "bag").glob("*.mcap"))
    from rosbags.highlevel import AnyReader
    with AnyReader([out / "bag"]) as reader:
        topics = {c.topic for c in reader.connections}
        assert {"/robot_a/joint_states", "/robot_a/forward_effort_controller/commands",
                "/robot_a/driftgate_controller/events", "/robot_a/driftgate_sim_robot/drift_active"} <= topics
    for name in ("decisions.jsonl", "summary.md", "timeline.png", "demo.json", "regression_suite.yaml"):
        assert (out / name).exists(), name
    assert (ROOT / "launch" / "regression_suite.yaml").read_text() == suite_before   # the run's copy changes
    assert ticks and {"phase", "monitor"} <= set(ticks[-1])      # the live display had data to show


# ---------------------------------------------------------------------- any robot (issues 14/15)

CARTPOLE_PARTS = ("cartpole", "slider", "hinge_1", "pole_1", "slide")


def _cli(*args, domain=0, **kw):
    import subprocess
    import sys
    env = dict(os.environ, ROS_DOMAIN_ID=str(_domain(domain)), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", "from adapters.cli import main; main()", "demo", "-q", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, **kw)


def test_demo_yaml_is_robot_neutral():
    """launch/demo.yaml names no part of any robot: what is robot-specific comes from the profile."""
    from adapters.cli_node import load_node_params
    from adapters.demo import CONTROLLER, SIM_ROBOT
    for node in (SIM_ROBOT, CONTROLLER):
        params = load_node_params(ROOT / "launch" / "demo.yaml", node)
        params.pop("robot")          # what `driftgate node demo` / the launch file run without --robot
        text = json.dumps(params)
        for part in CARTPOLE_PARTS:
            assert part not in text, (node, part)


def test_the_walker_demo_takes_everything_from_its_profile():
    """`driftgate demo --robot walker`: default drift, champion, suite, calibration, control rate and
    guard bounds are the walker profile's, and no cartpole value reaches either node."""
    from adapters.demo import prepare
    from sim.drift_spec import DriftSpec
    from sim.profile import find_profile, load_profile
    prof = load_profile(find_profile("walker"))
    res = prepare(DemoOptions(plant="walker"))
    assert res["drift"] == DriftSpec.parse(prof.default_drift).as_dict()
    assert res["champion"] == prof.asset_path("champion") and res["suite"] == prof.asset_path("suite")
    ctl, sim = res["controller_values"], res["sim_values"]
    assert ctl["robot"] == sim["robot"] == "walker"
    assert Path(ctl["monitor.config"]) == prof.asset_path("calibration")
    assert ctl["runtime.rate_hz"] == pytest.approx(1.0 / prof.control_dt)
    assert set(json.loads(ctl["guard.joint_bounds"])) == set(prof.ros_joints)
    # a reset after a fall is a telemetry gap the drift monitor sees (gap_factor 2.5 control periods),
    # not a jump in the residuals
    assert sim["fall_pause_s"] > 2.5 * prof.control_dt
    text = json.dumps({**ctl, **sim})
    for part in CARTPOLE_PARTS:
        assert part not in text, part
    # the cartpole keeps its own demo values (its overlay, launch/robots/demo/cartpole.yaml)
    cp_res = prepare(DemoOptions())
    cp = cp_res["controller_values"]
    assert json.loads(cp["guard.joint_bounds"]) == {"slider": [-1.6, 1.6], "hinge_1": [-0.8, 0.8]}
    assert cp["runtime.rate_hz"] == pytest.approx(100.0) and cp["adapt.budget_s"] == 60.0
    assert (cp["adapt.min_generations"], cp["adapt.seed_rate"]) == (5, 0.03)
    assert cp_res["sim_values"]["fall_pause_s"] == 0.05


def test_a_bad_set_value_fails_at_once_with_one_line(tmp_path):
    """A guard bound naming a cartpole joint on the walker: refused before any node starts."""
    out = tmp_path / "demo"
    r = _cli("--robot", "walker", "--out", str(out), "--set", 'guard.joint_bounds={"slider": [-1, 1]}', domain=4)
    assert r.returncode == 2, r.stdout + r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: configure failed: parameter guard.joint_bounds: guard bound for unknown joint "
                           "'slider'") and "right_hip" in last, last
    assert "Traceback" not in r.stderr and not out.exists()
    # what only the simulated robot's constructor checks: one line too, no run directory
    r = _cli("--out", str(out), "--sim-set", 'fall_bounds={"nope": [0, 1]}', domain=8)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip().splitlines()[-1] == ("error: configure failed: fall_bounds: unknown joint 'nope'; "
                                                 "joints: ['slider', 'hinge_1']")
    assert not out.exists()


def test_a_profile_naming_a_missing_champion_fails_at_once(tmp_path):
    doc = yaml.safe_load((ROOT / "launch" / "robots" / "walker.yaml").read_text())
    doc["assets"] = {"champion": "missing.safetensors"}
    profile = tmp_path / "my_walker.yaml"
    profile.write_text(yaml.safe_dump(doc))
    out = tmp_path / "demo"
    r = _cli("--plant", str(profile), "--out", str(out), domain=5)
    assert r.returncode == 2, r.stdout + r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no champion for robot 'my_walker'") and "missing.safetensors" in last, last
    assert not out.exists()


def test_a_configure_failure_in_the_node_ends_the_demo(tmp_path):
    """What only the controller's configure finds (a drift-monitor file that does not parse) ends the
    run with its one-line error and exit 2, and leaves no run directory."""
    bad = tmp_path / "monitor.yaml"
    bad.write_text("drift_monitor: [unclosed\n")
    out = tmp_path / "demo"
    r = _cli("--out", str(out), "--set", f"monitor.config={bad}", domain=6)
    assert r.returncode == 2, r.stdout + r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: configure failed: parameter monitor.config:") and "not valid YAML" in last, last
    assert not out.exists()


def test_sigint_before_the_story_ends_exits_130(tmp_path):
    """Ctrl-C of a running demo: the recordings are closed and the report written, the exit is 130."""
    import signal
    import subprocess
    import sys
    out = tmp_path / "demo"
    env = dict(os.environ, ROS_DOMAIN_ID=str(_domain(7)), OMP_NUM_THREADS="1")
    p = subprocess.Popen([sys.executable, "-c", "from adapters.cli import main; main()", "demo", "-q", "--out",
                          str(out)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (out / "decisions.jsonl").exists() and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2.0)                   # the nodes are up and recording
        assert p.poll() is None, p.communicate()
        p.send_signal(signal.SIGINT)
        stdout, stderr = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, stdout + stderr
    assert "interrupted" in stderr.strip().splitlines()[-1]
    assert (out / "report.json").exists() and (out / "demo.json").exists()
    assert json.loads((out / "demo.json").read_text())["stop_reason"].startswith("stopped from outside")
