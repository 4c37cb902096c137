"""End to end over real DDS (loopback, own domain id per test): the simulated robot node and the
driftgate controller node, with the sandbox job and the real gate in child processes.

- a bad candidate is rejected and the champion never changes: the motor gets wired backwards on
  the robot -> the drift monitor alarms -> sandbox job (returns the unadapted nominal controller)
  -> the real gate FAILs it (it saturates on the reversed motor) -> rejected; the champion, however
  poorly it copes, keeps authority throughout and commands never stop;
- a post-promotion degradation rolls back: the sandbox misidentifies the drift (reports a reversed
  motor), the real gate PASSes the matching controller on that wrong estimate, an operator promotes
  it from shadow (`~/promote`, skipping the canary that would have caught it), the live reward falls
  below the gate's prediction during the watch period -> automatic rollback to the stable ancestor,
  in the registry's audit log and on `~/events`.

The happy path (drift -> adapted -> promoted -> recovered) is the demo's test (tests/test_demo.py).
Budgets are tiny (short warm-up, shadow, watch) so the whole file runs in well under a minute.
"""
import json
import sys
import textwrap
import time

import pytest
from waiting import wait_for  # noqa: E402  (tests/waiting.py)
import yaml

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import Float64MultiArray, String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from test_ros_nodes import NS, P, Session, domain  # noqa: E402

from adapters.ros import controller_node as cn  # noqa: E402
from adapters.ros import sim_robot_node as sn  # noqa: E402
from controller.bootstrap import bootstrap_registry  # noqa: E402
from safety.registry import Registry  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]
LATCHED = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)

# A sandbox stand-in (the job contract of sim.job_contract): answers with a fixed controller (argv[3]: "nominal" =
# the LQR again, i.e. nothing learnt; "inverted" = the LQR for a reversed motor) and, optionally, a
# drift estimate (argv[2]), as a sandbox with a wrong system identification would.
SANDBOX = """
import json, os, sys
os.nice(10)                                  # below the live node, as the real sandboxes do
from pathlib import Path
from controller.bootstrap import lqr_policy_genome
from sim.genome import save_genome
d = Path(sys.argv[1])
job = json.loads((d / "job.json").read_text())
parent = job["seed_genomes"][0]["id"]
genome = lqr_policy_genome(eps=0.07) if sys.argv[3] == "nominal" else lqr_policy_genome(sign=-1.0)
save_genome(genome.with_lineage(parent_id=parent), d / "candidate.safetensors")
result = {"status": "ok", "candidate_file": "candidate.safetensors", "parent_id": parent}
estimate = json.loads(sys.argv[2])
if estimate:
    result["drift_estimate"] = estimate
(d / "result.json").write_text(json.dumps(result))
"""

# The gate's regression suite: the target scenario only (its drift is replaced by the estimate).
SUITE = """
version: 1
name: e2e
plant: cartpole
defaults: {horizon: 100, seeds: 5, metric: mean_reward}
gate:
  min_seeds: 5
  resamples: 300
  hurdle: {seeds: 2, horizon: 50, margin: 0.1}
scenarios:
  - {name: target, tag: target, drift: {}, margin: 0.05}
"""


@pytest.fixture
def session(request):
    offsets = {"test_bad_candidate_is_rejected_and_the_champion_never_changes": 31,
               "test_degradation_after_promotion_rolls_back_to_the_stable_ancestor": 32}
    s = Session(domain(offsets.get(request.node.name, 33)))
    yield s
    s.close()


def rig(session, tmp_path, tag, estimate, candidate, sim_params=None, **params):
    """Registry with the bootstrap LQR (stable), sandbox script, suite; controller + robot nodes."""
    root = tmp_path / "registry"
    base = bootstrap_registry(root)
    script = tmp_path / "sandbox.py"
    script.write_text(SANDBOX)
    suite = tmp_path / "suite.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    topics = {"joint_states_topic": f"{tag}/joint_states", "commands_topic": f"{tag}/commands"}   # in NS
    ctl_topics = {f"ros__{k}": v for k, v in topics.items()}
    # as launch/demo.yaml: one tick per joint state (each state paired with the command that moved it,
    # whatever the CPU load) and encoder noise on the robot (a noise-free one is unrealistically quiet)
    ctl_params = dict(orchestrator__registry_path=str(root), ros__autostart=True, orchestrator__step_s=0.1,
                      runtime__trigger="joint_states", ros__reward_topic="driftgate_sim_robot/reward",
                      runtime__stale_timeout_s=0.5,
                      adapt__sandbox_command=f"{sys.executable} {script} {{job_dir}} '{json.dumps(estimate)}' {candidate}",
                      gate__suite=str(suite), gate__timeout_s=120.0, adapt__budget_s=60.0,
                      orchestrator__post_alarm_s=0.5, orchestrator__retry_backoff_s=120.0, **ctl_topics)
    ctl_params.update(params)
    ctl = session.add(cn.ControllerNode(namespace=NS, context=session.ctx, parameter_overrides=P(**ctl_params)))
    sim = session.add(sn.SimRobotNode(namespace=NS, context=session.ctx, parameter_overrides=P(
        seed=5, sensor_noise_std=0.01, **(sim_params or {}), **topics)))
    events = session.collect(String, f"{NS}/driftgate_controller/events", LATCHED)
    return root, base, ctl, sim, events




def decoded(events):
    return [json.loads(m.data) for m in list(events)]


def transitions(events):
    return [(e["from"], e["to"], e["reason"]) for e in decoded(events) if e["event"] == "transition"]


def test_bad_candidate_is_rejected_and_the_champion_never_changes(session, tmp_path):
    monitor = tmp_path / "monitor.yaml"                  # the shipped detectors, a 3 s warm-up
    monitor.write_text(yaml.safe_dump({"drift_monitor": {"ros__parameters": {
        "warmup_s": 3.0, "min_warmup_samples": 10, "debounce_s": 5.0}}}))
    # the motor wired backwards: blatant in the residuals, so the alarm does not depend on how loaded
    # the machine is (subtle drifts, a heavier pole, a weaker motor, are the drift benchmark's
    # business). The champion cannot balance this robot; the robot is caught and restarted upright
    # after each fall (reset_on_fall, as in the demo). The gate judges on the same drift (drift_hint).
    drift = {"actuator_gain": {"slide": -1.0}}
    root, base, ctl, sim, events = rig(session, tmp_path, "reject", {}, "nominal",
                                       sim_params={"reset_on_fall": True}, monitor__config=str(monitor),
                                       adapt__drift=json.dumps(drift))
    champions = []                                       # (arrival, runtime's champion) at every command
    session.probe.create_subscription(
        Float64MultiArray, f"{NS}/reject/commands",
        lambda m: champions.append((time.monotonic(), ctl.runtime.slot.champion.genome_id)), 100)
    inject = session.probe.create_publisher(String, f"{NS}/driftgate_sim_robot/inject_drift", 10)
    session.start()
    wait_for(lambda: ctl.lifecycle == "active" and ctl.monitor is not None and ctl.monitor.state == "monitoring"
             and sim.counters["steps"] >= 300, 90, lambda: f"a warmed-up drift monitor ({ctl.status()})")
    assert ctl.orchestrator.phase.value == "watching" and ctl.orchestrator.counters["drift_events"] == 0
    steps, timeouts = sim.counters["steps"], sim.counters["timeouts"]
    t_inject = time.monotonic()
    inject.publish(String(data=json.dumps(drift)))       # drift on the robot, over DDS
    wait_for(lambda: sim.plant.drift.as_dict() == drift, 20, "the drift at the robot")
    wait_for(lambda: ("gating", "watching", "gate FAIL") in transitions(events), 90,
             lambda: f"alarm -> job -> gate FAIL ({transitions(events)}, {ctl.orchestrator.status()}, "
                     f"{ctl.monitor.diagnostics()})")
    n_after, t_done = sim.counters["steps"], time.monotonic()

    # the story on ~/events: drift alarm, sandbox job, gate, rejection; never shadow/canary/promotion
    evs = decoded(events)
    assert any(e["event"] == "drift" for e in evs)
    assert [t[:2] for t in transitions(events)] == [("idle", "watching"), ("watching", "adapting"),
                                                   ("adapting", "gating"), ("gating", "watching")], transitions(events)
    with Registry(root) as reg:
        assert reg.champion_id() == base
        rejected = reg.list("rejected")
        assert len(rejected) == 1 and rejected[0].parent_id == base
        cid = rejected[0].id
        report = reg.gate_reports(cid)[-1]
        assert report.verdict == "FAIL", report
        assert [r.action for r in reg.history(cid)] == ["add", "gate_report", "set_status"]
        assert all(r.action != "promote" for r in reg.history() if r.genome_id != base)
        add = reg.history(cid)[0].evidence_obj["evidence"]
        assert add["drift_event"]["detectors"]           # the alarm that started the job rides along
        assert reg.verify().ok
    # the champion drove throughout and commands never stopped (no command watchdog at the robot)
    assert ctl.runtime.slot.champion.genome_id == base and ctl.runtime.slot.candidate is None
    assert champions and {c for _, c in champions} == {base}
    assert ctl.runtime.candidate_comparison().n == 0   # the candidate never computed a live action
    # commands kept coming while the job and the gate ran. Not asserted: zero command timeouts at
    # the robot (no command for 0.2 s): robot, controller and probe share one Python process here,
    # which a loaded 2-core machine can deschedule that long (the node's own latency is measured by
    # benchmarks/node_latency.py).
    during = [t for t, _ in champions if t_inject <= t <= t_done]
    gaps = [b - a for a, b in zip(during, during[1:])]
    assert len(during) >= 100 and max(gaps) < 2.0, (len(during), max(gaps), t_done - t_inject,
                                                   sim.counters["timeouts"] - timeouts)
    assert n_after - steps >= 100
    wait_for(lambda: sim.counters["steps"] >= n_after + 50, 20, "commands keep flowing")
    assert ctl.orchestrator.counters["gate_fail"] == 1 and ctl.orchestrator.counters["promotions"] == 0


def test_degradation_after_promotion_rolls_back_to_the_stable_ancestor(session, tmp_path):
    wrong = {"actuator_gain": {"slide": -1.0}}           # what the sandbox believes: a reversed motor
    root, base, ctl, sim, events = rig(session, tmp_path, "rollback", wrong, "inverted", monitor__config="none",
                                       orchestrator__shadow_s=60.0, orchestrator__shadow_timeout_s=120.0, orchestrator__watch_s=3.0,
                                       orchestrator__watch_min_samples=20, orchestrator__watch_tolerance=0.1)
    session.start()
    wait_for(lambda: ctl.lifecycle == "active" and ctl.orchestrator.phase.value == "watching"
             and sim.counters["steps"] >= 100, 60, "the champion balancing the robot")
    # the alarm (test (a) covers the monitor raising one; here it stands for a false alarm)
    ctl.runtime.drift_events.append({"t": time.time(), "detectors": ["ph:one_step"]})
    wait_for(lambda: ctl.orchestrator.phase.value == "shadow", 90,
             lambda: f"job -> gate PASS on the wrong estimate -> shadow ({transitions(events)}, "
                     f"{ctl.orchestrator.status()})")
    cid = ctl.orchestrator.candidate_id
    with Registry(root) as reg:
        report = reg.gate_reports(cid)[-1]
        assert report.verdict == "PASS" and reg.show(cid).status == "shadow"
    predicted = ctl.orchestrator._gate_outcome.predicted_reward
    assert predicted > 0.9

    answer = session.call(Trigger, f"{NS}/driftgate_controller/promote")   # operator: skip the canary
    assert answer.success, answer.message
    assert ctl.runtime.slot.champion.genome_id == cid                        # swapped before the answer
    wait_for(lambda: ("rollback", "watching") in [t[:2] for t in transitions(events)], 30,
             lambda: f"automatic rollback ({transitions(events)}, {ctl.orchestrator.status()})")

    assert ctl.runtime.slot.champion.genome_id == base and ctl.orchestrator.phase.value == "watching"
    evs = decoded(events)
    rb = [e for e in evs if e["event"] == "transition" and e["to"] == "rollback"][0]
    live = rb["evidence"]["live_reward"]
    assert live < predicted - 0.1 and rb["evidence"]["samples"] >= 20 and rb["evidence"]["to"] == base
    assert [t[:2] for t in transitions(events)] == [
        ("idle", "watching"), ("watching", "adapting"), ("adapting", "gating"), ("gating", "shadow"),
        ("shadow", "promoted"), ("promoted", "watch"), ("watch", "rollback"), ("rollback", "watching")], \
        transitions(events)
    with Registry(root) as reg:
        assert reg.champion_id() == base and reg.show(cid).status == "rejected"
        actions = [r.action for r in reg.history(cid)]
        assert actions == ["add", "gate_report", "set_status", "set_status", "promote"], actions
        row = reg.history()[-1]                          # one audited transaction: cid rejected, base champion
        assert (row.action, row.genome_id, row.to_status) == ("rollback", base, "champion")
        ev = row.evidence_obj
        assert cid in json.dumps(ev["replaced"]) and ev["evidence"]["live_reward"] == pytest.approx(live)
        assert reg.verify().ok
    # recovered: a new episode under the stable ancestor balances again
    assert session.call(Trigger, f"{NS}/driftgate_sim_robot/reset").success
    n = sim.counters["steps"]
    wait_for(lambda: sim.counters["steps"] >= n + 150, 30, "150 steps after the reset")
    assert sim.plant.pole_upright()
