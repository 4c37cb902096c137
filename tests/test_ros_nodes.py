"""The ROS 2 nodes over real DDS on loopback: the simulated robot and the driftgate controller in one
process (SingleThreadedExecutor as `run_nodes` uses, private Context, own domain id and topic namespace)."""
import ast
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from waiting import wait_for  # noqa: E402  (tests/waiting.py)
import yaml

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64, Float64MultiArray, String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from adapters.cli_node import load_node_params, to_overrides  # noqa: E402
from adapters.ros import controller_node as cn  # noqa: E402
from adapters.ros import sim_robot_node as sn  # noqa: E402
from controller.bootstrap import bootstrap_registry, lqr_policy_genome  # noqa: E402
from safety.registry import Registry  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NS = f"/dgt{os.getpid()}"
pytestmark = pytest.mark.ros


def domain(offset: int) -> int:
    return (int(os.environ.get("ROS_DOMAIN_ID", "100")) + 17 * offset) % 100 + 100




class Session:
    """A private context, an executor spinning in a thread, and a helper node for the test side."""

    def __init__(self, domain_id):
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=domain_id)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.nodes = []
        self.probe = self.add(rclpy.create_node("probe", namespace=NS, context=self.ctx))
        self._thread = None

    def add(self, node):
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def start(self):
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def collect(self, msg_type, topic, qos=10):
        box = []
        self.probe.create_subscription(msg_type, topic, box.append, qos)
        return box

    def call(self, srv_type, name, timeout=20.0):
        client = self.probe.create_client(srv_type, name)
        wait_for(client.service_is_ready, timeout, f"service {name}")
        fut = client.call_async(srv_type.Request())
        wait_for(fut.done, timeout, f"answer from {name}")
        return fut.result()

    def close(self):
        self.executor.shutdown(timeout_sec=5)
        if self._thread is not None:
            self._thread.join(timeout=5)
        for n in reversed(self.nodes):
            if hasattr(n, "_teardown"):
                n._teardown()
            n.destroy_node()
        rclpy.try_shutdown(context=self.ctx)


@pytest.fixture
def session(request):
    s = Session(domain(request.node.name.__hash__() % 5))
    yield s
    s.close()


def topics(tag):
    """Relative names, as the shipped YAML's: the nodes (in namespace NS) resolve them to NS/tag/..."""
    return {"joint_states_topic": f"{tag}/joint_states", "commands_topic": f"{tag}/commands"}


def ctl_topics(tag):
    """The same topics as the controller's parameters (section ros)."""
    return {f"ros__{k}": v for k, v in topics(tag).items()}


def resolved(tag):
    return {"joint_states_topic": f"{NS}/{tag}/joint_states", "commands_topic": f"{NS}/{tag}/commands"}


def P(**kw):
    return [Parameter(k.replace("__", "."), value=v) for k, v in kw.items()]   # runtime__mode: runtime.mode


# ---------------------------------------------------------------------- static checks


def test_node_modules_never_import_torch():
    code = ("import sys; import adapters.ros.controller_node, adapters.ros.sim_robot_node, adapters.cli_node, "
            "controller.runtime, controller.orchestrator, controller.jobs, controller.contracts; "
            "bad = [m for m in ('torch',) if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_launch_files_parse_and_yaml_keys_are_declared_parameters():
    for name in ("driftgate.launch.py", "demo.launch.py"):
        tree = ast.parse((ROOT / "launch" / name).read_text())
        assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    for name, nodes in (("driftgate.yaml", {"driftgate_controller": cn.PARAMETERS}),
                        ("demo.yaml", {"driftgate_controller": cn.PARAMETERS,
                                       "driftgate_sim_robot": sn.PARAMETERS})):
        doc = yaml.safe_load((ROOT / "launch" / name).read_text())
        assert set(doc) == set(nodes)
        for node, declared in nodes.items():
            values = load_node_params(ROOT / "launch" / name, node)
            assert values and set(values) <= set(declared)
            to_overrides(values, declared)     # types fit (raises on unknown names)
            for k, v in values.items():        # ROS parameters are strictly typed
                default = declared[k][0]
                if isinstance(default, (bool, str, float, int)) and not isinstance(default, Parameter.Type):
                    assert type(v) is type(default), (name, k, v)


def test_cli_params_loading_rules(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("/**:\n  ros__parameters: {rate_hz: 50}\n"
                 "driftgate_controller:\n  ros__parameters: {mode: shadow, nested: {a: 1}}\n"
                 "/ns/driftgate_controller:\n  ros__parameters: {mode: canary}\n")
    assert load_node_params(f, "driftgate_controller") == {"rate_hz": 50, "mode": "shadow", "nested.a": 1}
    assert load_node_params(f, "driftgate_controller", "ns")["mode"] == "canary"
    ov = to_overrides({"runtime.rate_hz": 50, "orchestrator.canary_weights": [1, 0.5], "runtime.joint_names": []},
                      cn.PARAMETERS)
    assert [(p.name, p.value) for p in ov] == [("runtime.rate_hz", 50.0), ("orchestrator.canary_weights", [1.0, 0.5])]
    with pytest.raises(ValueError, match="unknown parameter"):
        to_overrides({"runtime.rate": 1}, cn.PARAMETERS)
    with pytest.raises(ValueError, match="'rate_hz' was renamed: use runtime.rate_hz"):
        to_overrides({"rate_hz": 1}, cn.PARAMETERS)


# ---------------------------------------------------------------------- the simulated robot


def test_sim_robot_applies_commands_and_drift_changes_its_dynamics(session):
    sim = session.add(sn.SimRobotNode(namespace=NS, context=session.ctx, parameter_overrides=P(
        autostep=False, command_timeout_s=30.0, **topics("sim"))))
    t = resolved("sim")
    states = session.collect(JointState, t["joint_states_topic"], 100)
    rewards = session.collect(Float64, f"{NS}/driftgate_sim_robot/reward", 100)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    drifts = session.collect(String, f"{NS}/driftgate_sim_robot/drift_active", latched)
    cmd_pub = session.probe.create_publisher(Float64MultiArray, t["commands_topic"], 10)
    inject = session.probe.create_publisher(String, f"{NS}/driftgate_sim_robot/inject_drift", 10)
    session.start()

    def push_and_measure():
        """Send +0.5, step 20 ticks from rest, return the cart velocity."""
        n = sim.counters["commands"]
        wait_for(lambda: (cmd_pub.publish(Float64MultiArray(data=[0.5])) or True) and sim.counters["commands"] > n,
                 20, "a command at the sim robot")
        time.sleep(0.1)
        sim.plant.reset(0)
        for _ in range(20):
            sim.step_once()
        return float(sim.plant.joint_velocities()[0])

    v_nominal = push_and_measure()
    assert v_nominal > 0.05
    res = sim.set_parameters([Parameter("drift", value='{"actuator_gain": {"slide": -1.0}}')])[0]
    assert res.successful
    assert push_and_measure() < -0.5 * v_nominal      # the motor is wired backwards now
    bad = sim.set_parameters([Parameter("drift", value='{"actuator_gain": {"no_such_motor": 2.0}}')])[0]
    assert not bad.successful and "no_such_motor" in bad.reason
    assert sim.plant.drift.as_dict() == {"actuator_gain": {"slide": -1.0}}  # unchanged by the bad spec
    inject.publish(String(data='{"mass_scale": {"pole_1": 3.0}}'))
    wait_for(lambda: sim.plant.drift.as_dict() == {"mass_scale": {"pole_1": 3.0}}, 20, "drift via topic")
    wait_for(lambda: drifts and json.loads(drifts[-1].data)["drift"] == {"mass_scale": {"pole_1": 3.0}}, 20,
             "~/drift_active")
    assert push_and_measure() > 0.05
    wait_for(lambda: len(states) >= 30 and rewards, 20, f"joint states and rewards ({len(states)}, {len(rewards)})")
    stamps = [s.header.stamp.sec + 1e-9 * s.header.stamp.nanosec for s in states]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    assert list(states[-1].name) == ["slider", "hinge_1"] and len(states[-1].velocity) == 2
    assert session.call(Trigger, f"{NS}/driftgate_sim_robot/reset").success


# ---------------------------------------------------------------------- controller + robot


def test_controller_drives_the_sim_robot_and_serves_its_interfaces(session, tmp_path):
    """Closed loop over DDS: balance, bad input counted, diagnostics, services (rollback within a
    tick), events, then shadow mode: no commands, shadow commands and a paired comparison."""
    root = tmp_path / "registry"
    base = bootstrap_registry(root)
    with Registry(root, actor="test") as reg:
        child = reg.add(lqr_policy_genome(eps=0.06), parent_id=base)
        reg.promote(child, force=True, reason="test: a champion with a stable ancestor")
    t = resolved("loop")
    inc_topic = f"{NS}/loop/incumbent"
    ctl = session.add(cn.ControllerNode(namespace=NS, context=session.ctx, parameter_overrides=P(
        orchestrator__registry_path=str(root), ros__incumbent_topic="loop/incumbent", ros__reward_topic="driftgate_sim_robot/reward",
        runtime__stale_timeout_s=0.5, ros__diagnostics_rate_hz=4.0, adapt__enabled=False, **ctl_topics("loop"))))
    events = session.collect(String, f"{NS}/driftgate_controller/events",
                             QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE,
                                        durability=DurabilityPolicy.TRANSIENT_LOCAL))
    diags = session.collect(DiagnosticArray, "/diagnostics")
    shadow = session.collect(Float64MultiArray, f"{NS}/driftgate_controller/shadow_commands")
    comparisons = session.collect(String, f"{NS}/driftgate_controller/comparison")
    states = session.collect(JointState, t["joint_states_topic"])
    assert ctl.trigger_configure() == cn.TransitionCallbackReturn.SUCCESS and ctl.lifecycle == "inactive"
    assert ctl.trigger_activate() == cn.TransitionCallbackReturn.SUCCESS and ctl.lifecycle == "active"
    assert ctl.runtime.slot.champion.genome_id == child
    sim = session.add(sn.SimRobotNode(namespace=NS, context=session.ctx,
                                      parameter_overrides=P(seed=3, **topics("loop"))))
    session.start()

    # 1. the controller keeps the pole up
    wait_for(lambda: sim.counters["steps"] >= 300 and sim.counters["commands"] >= 200, 60, "300 sim steps")
    angles = [abs(s.position[1]) for s in list(states)[5:]]
    assert max(angles) < 0.3, max(angles)
    assert sim.plant.pole_upright()

    # 2. bad input on the joint states topic is refused and counted, control goes on
    bad = session.probe.create_publisher(JointState, t["joint_states_topic"], 10)
    for pos in ([math.nan, 0.0], [0.0]):
        m = JointState(name=["slider", "hinge_1"], position=pos, velocity=[0.0, 0.0])
        m.header.stamp = session.probe.get_clock().now().to_msg()
        bad.publish(m)
    wait_for(lambda: ctl.runtime.refused["non_finite"] >= 1 and ctl.runtime.refused["wrong_length"] >= 1, 20,
             "refusals")

    def control_status():
        for arr in reversed(list(diags)):
            for st in arr.status:
                if st.name == f"{NS}/driftgate_controller: control":
                    return st, {kv.key: kv.value for kv in st.values}
        return None, {}

    wait_for(lambda: int(control_status()[1].get("refused_non_finite", 0)) >= 1, 20, "counters on /diagnostics")
    st, values = control_status()
    assert values["mode"] == "active" and values["champion_id"] == child and values["lifecycle"] == "active"
    assert "detector_state" in values and "sandbox" in values and "refused_wrong_length" in values

    # 3. services: status, promote (nothing to promote), rollback (to the stable ancestor, effective now)
    status = json.loads(session.call(Trigger, f"{NS}/driftgate_controller/status").message)
    assert status["champion"] == child and status["orchestrator"]["fallback"] == base
    promote = session.call(Trigger, f"{NS}/driftgate_controller/promote")
    assert not promote.success and "nothing to promote" in promote.message
    rollback = session.call(Trigger, f"{NS}/driftgate_controller/rollback")
    assert rollback.success, rollback.message
    assert ctl.runtime.slot.champion.genome_id == base            # swapped before the answer came back
    with Registry(root) as reg:
        assert reg.champion_id() == base and reg.show(child).status == "rejected"
    wait_for(lambda: any(json.loads(e.data).get("to") == "rollback" for e in events), 20, "rollback event")
    n = sim.counters["steps"]
    wait_for(lambda: sim.counters["steps"] >= n + 100, 30, "100 more steps")
    assert sim.plant.pole_upright()

    # 4. shadow mode at run time: no commands, the champion's actions on ~/shadow_commands
    assert not ctl.set_parameters([Parameter("runtime.mode", value="bogus")])[0].successful
    assert ctl.set_parameters([Parameter("runtime.mode", value="shadow")])[0].successful
    inc = session.probe.create_publisher(Float64MultiArray, inc_topic, 10)
    time.sleep(0.3)                                                # commands already in flight
    published, received = ctl.commands_published, sim.counters["commands"]
    t_end = time.monotonic() + 1.5
    while time.monotonic() < t_end:
        inc.publish(Float64MultiArray(data=[0.0]))
        time.sleep(0.02)
    # at most the one tick that was already running when the mode changed (a loaded machine); the
    # robot may still drain commands queued in DDS before the switch, but never more than were sent
    got = sim.counters["commands"]           # read before the count it is compared with
    assert ctl.commands_published - published <= 1
    assert received <= got <= ctl.commands_published + 1     # +1: published, not yet counted
    wait_for(lambda: len(shadow) >= 20, 20, "shadow commands")
    wait_for(lambda: any((json.loads(c.data)["incumbent_vs_champion"]["n"] or 0) > 0 for c in comparisons), 20,
             "paired comparison")
    wait_for(lambda: control_status()[1].get("mode") == "shadow", 20, "mode on /diagnostics")
    assert any(json.loads(e.data).get("event") == "mode" for e in events)

    # 5. the robot goes silent: back in active mode the controller holds the safe command, ERROR
    commands = session.collect(Float64MultiArray, t["commands_topic"])
    assert ctl.set_parameters([Parameter("runtime.mode", value="active")])[0].successful
    session.executor.remove_node(sim)           # its timer no longer runs: /joint_states goes quiet
    wait_for(lambda: control_status()[0] is not None and control_status()[0].level == b"\x02"
             and "stale" in control_status()[0].message, 20,
             f"ERROR on /diagnostics ({control_status()[0]}, {ctl.runtime.last_output})")
    wait_for(lambda: commands and list(commands[-1].data) == [0.0], 20, "the safe command")
    assert ctl.trigger_deactivate() == cn.TransitionCallbackReturn.SUCCESS


def test_cli_node_starts_from_yaml_and_stops_cleanly_on_sigterm(tmp_path):
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain(7)))
    cmd = [sys.executable, "-c", "from adapters.cli_node import main; main()", "controller",
           "--params", str(ROOT / "launch" / "driftgate.yaml"), "--namespace", NS.strip("/"),
           "--set", f"orchestrator.registry_path={tmp_path / 'reg'}", "--set", "orchestrator.bootstrap_champion=lqr",
           "--set", "monitor.config=none", "--set", "ros.commands_topic=cli/commands"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline and proc.poll() is None:
            lines.append(proc.stdout.readline())
            if "active, mode active" in lines[-1]:
                break
        assert proc.poll() is None, "".join(lines)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(lines) + out
    assert any("configured: robot cartpole, champion" in ln for ln in lines)
    # driftgate.yaml asks for realtime_priority 50: granted, or refused with the reason (machine-dependent)
    assert any("control path on SCHED_FIFO 50" in ln or ("realtime_priority 50:" in ln and "refused" in ln)
               for ln in lines), "".join(lines)
    # control_thread: true in driftgate.yaml: the tick runs on the control loop's thread
    assert any("control loop thread on SCHED_" in ln and "/joint_states, deadline every 10 ms" in ln
               for ln in lines + out.splitlines()), "".join(lines) + out
    with Registry(tmp_path / "reg") as reg:
        assert reg.champion_id() is not None and reg.verify().ok


FAKE_SANDBOX = """
import json, sys
from pathlib import Path
from controller.bootstrap import lqr_policy_genome
from sim.genome import save_genome
d = Path(sys.argv[1])
job = json.loads((d / "job.json").read_text())
parent = job["seed_genomes"][0]["id"]
save_genome(lqr_policy_genome(eps=0.06).with_lineage(parent_id=parent), d / "candidate.safetensors")
(d / "result.json").write_text(json.dumps({"status": "ok", "candidate_file": "candidate.safetensors"}))
"""


def test_controller_node_runs_a_sandbox_job_on_a_drift_event(session, tmp_path):
    """The node's orchestrator timer (not the tick) starts the job in a child process, registers the
    candidate and, with no gate suite configured, holds (INCONCLUSIVE): the champion stays."""
    script = tmp_path / "sandbox.py"
    script.write_text(FAKE_SANDBOX)
    root = tmp_path / "registry"
    base = bootstrap_registry(root)
    ctl = session.add(cn.ControllerNode(namespace=NS, context=session.ctx, parameter_overrides=P(
        orchestrator__registry_path=str(root), ros__autostart=True, monitor__config="none", orchestrator__step_s=0.05,
        adapt__sandbox_command=f"{sys.executable} {script} {{job_dir}}", **ctl_topics("adapt"))))
    events = session.collect(String, f"{NS}/driftgate_controller/events",
                             QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE,
                                        durability=DurabilityPolicy.TRANSIENT_LOCAL))
    session.start()
    wait_for(lambda: ctl.lifecycle == "active" and ctl.orchestrator.phase.value == "watching", 30, "watching")
    ctl.runtime.drift_events.append({"t": 1.0, "detectors": ["ph:one_step"]})   # what the monitor raises

    def transitions():
        return [(e["from"], e["to"]) for e in map(lambda m: json.loads(m.data), events) if e["event"] == "transition"]

    wait_for(lambda: ("gating", "watching") in transitions(), 60, f"the job and the gate ({transitions()})")
    assert transitions()[-3:] == [("watching", "adapting"), ("adapting", "gating"), ("gating", "watching")]
    with Registry(root) as reg:
        cands = reg.list("candidate")
        assert len(cands) == 1 and cands[0].parent_id == base and reg.champion_id() == base
        assert reg.gate_reports(cands[0].id)[0].verdict == "INCONCLUSIVE"
    assert ctl.runtime.slot.champion.genome_id == base and ctl.orchestrator.counters["gate_hold"] == 1
