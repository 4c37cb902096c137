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
