"""The nodes behave like ROS 2 packages (issue 16, items 3, 5, 6), over real DDS on loopback:

- relative topic names: two simulated robots and two controllers in two namespaces with the
  default (relative) topics, a drift injected into one robot only: only its controller alarms;
  the launch files take namespace / robot / params_file; `driftgate node --ros-args` remaps;
- sim time: with ``use_sim_time`` the tick, the stale-input timeout and the orchestrator follow
  ``/clock`` (frozen, stepped, and at 10x speed);
- a ros2_control incumbent observed through ``JointState.effort`` (``incumbent_source``).
"""
import ast
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from waiting import wait_for  # noqa: E402  (tests/waiting.py)
import yaml

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray, String  # noqa: E402
from test_ros_nodes import NS, P, Session, domain  # noqa: E402

from adapters.cli_node import _values, load_node_params, to_overrides  # noqa: E402
from adapters.ros import controller_node as cn  # noqa: E402
from adapters.ros import sim_robot_node as sn  # noqa: E402
from adapters.ros.incumbent import EffortIncumbent, actuated_joints  # noqa: E402
from adapters.ros.ros_args import RosArgs  # noqa: E402
from controller.bootstrap import bootstrap_registry, lqr_policy_genome  # noqa: E402
from controller.compiled_policy import CompiledPolicy  # noqa: E402
from sim.observation import CartpoleObservation  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.ros
LATCHED = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
OFFSETS = {"test_two_robots_in_two_namespaces_only_the_drifted_one_alarms": 41,
           "test_use_sim_time_ticks_and_times_out_on_the_clock_topic[executor]": 42,
           "test_use_sim_time_ticks_and_times_out_on_the_clock_topic[thread]": 43,
           "test_effort_incumbent_is_read_from_joint_states_and_canary_is_refused": 44,
           "test_shadow_against_a_ros2_control_style_incumbent_on_the_sim_robot": 45,
           "test_sim_robot_command_timeout_follows_the_clock_topic": 47}




@pytest.fixture
def session(request):
    s = Session(domain(OFFSETS.get(request.node.name, 46)))
    yield s
    s.close()


# ---------------------------------------------------------------------- names, launch, CLI (no DDS)


def test_topic_defaults_are_relative_and_launch_files_take_namespace_robot_params_file():
    for declared in (cn.PARAMETERS, sn.PARAMETERS):
        for name, (default, *_rest) in declared.items():
            if name.endswith("_topic") and default:
                assert not default.startswith("/"), (name, default)
    for f in ("driftgate.yaml", "demo.yaml"):
        for node in ("driftgate_controller", "driftgate_sim_robot"):
            for k, v in load_node_params(ROOT / "launch" / f, node).items():
                if k.endswith("_topic") and v:
                    assert not v.startswith("/"), (f, node, k, v)
    for f in ("driftgate.launch.py", "demo.launch.py"):
        tree = ast.parse((ROOT / "launch" / f).read_text())
        declared = {c.args[0].value for c in ast.walk(tree) if isinstance(c, ast.Call)
                    and getattr(c.func, "id", "") == "DeclareLaunchArgument"}
        assert {"namespace", "robot", "params_file", "use_sim_time"} <= declared, (f, declared)
        used = {c.args[0].value for c in ast.walk(tree) if isinstance(c, ast.Call)
                and getattr(c.func, "id", "") == "LaunchConfiguration"}
        assert declared <= used, (f, declared - used)       # every argument reaches the nodes


def test_ros_args_choose_the_yaml_section_and_win_over_the_launcher(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("driftgate_controller:\n  ros__parameters: {runtime: {mode: shadow, rate_hz: 50.0}}\n"
                 "/robot_a/driftgate_controller:\n  ros__parameters: {runtime: {mode: canary}}\n"
                 "/robot_a/left:\n  ros__parameters: {runtime: {rate_hz: 20.0}}\n")
    ros = RosArgs.parse(["--ros-args", "-r", "__ns:=/robot_a", "-p", "runtime.rate_hz:=10.0"])
    v = _values(f, "driftgate_controller", "", ["runtime.canary_weight=0.5"], ros)
    assert v == {"runtime.mode": "canary", "runtime.canary_weight": 0.5}          # rate_hz left to rcl (-p)
    v = _values(f, "driftgate_controller", "", [], RosArgs.parse(["--ros-args", "-r", "__ns:=/robot_a",
                                                                 "-r", "__node:=left"]))
    assert v == {"runtime.rate_hz": 20.0}                          # the renamed node's section only
    ov = to_overrides(_values(f, "driftgate_controller", "", ["use_sim_time=true"], RosArgs()), cn.PARAMETERS)
    assert ("use_sim_time", True) in [(p.name, p.value) for p in ov]   # rclpy's own parameter is accepted
    for bad in (["--namespace-typo"], ["--ros-args", "-r"], ["--ros-args", "-r", "nonsense"],
                ["--ros-args", "-p", "x"]):
        with pytest.raises(ValueError):
            RosArgs.parse(bad)


def test_effort_incumbent_maps_actuated_joints_by_name():
    assert actuated_joints("cartpole") == (0,)                    # the motor drives the cart joint
    inc = EffortIncumbent(["cart", "pole"], actuated_joints("cartpole"))
    assert inc.command(["pole", "cart"], [0.0, 0.7]) == [0.7]     # by name, any order
    assert inc.command(["cart", "pole"], []) is None              # broadcaster without effort interfaces
    assert inc.command(["pole"], [0.1]) is None                   # the actuated joint is missing
    assert inc.missing == 2


# ---------------------------------------------------------------------- namespaces over DDS


def test_two_robots_in_two_namespaces_only_the_drifted_one_alarms(session, tmp_path):
    """Default (relative) topics everywhere: each controller finds its own robot through the
    namespace alone. The motor of robot_a is wired backwards; robot_a's controller alarms (on its
    own ~/events), robot_b's never does."""
    # the shipped detectors, a short warm-up, and one short open-loop horizon whose windows fill in
    # 0.5 s (the shipped 0.25 s windows need 2.5 s of gap-free telemetry per channel to arm, long on
    # a loaded machine running four nodes in one process)
    monitor = tmp_path / "monitor.yaml"
    monitor.write_text(yaml.safe_dump({"drift_monitor": {"ros__parameters": {
        "warmup_s": 2.0, "min_warmup_samples": 10, "debounce_s": 5.0,
        "nominal_model": {"horizons_s": [0.05], "every_s": 0.05}}}}))
    ctl, sim, events = {}, {}, {}
    for robot in ("robot_a", "robot_b"):
        ns = f"{NS}/{robot}"
        root = tmp_path / robot
        bootstrap_registry(root)
        sim[robot] = session.add(sn.SimRobotNode(namespace=ns, context=session.ctx, parameter_overrides=P(
            seed=7, sensor_noise_std=0.01, reset_on_fall=True)))
        ctl[robot] = session.add(cn.ControllerNode(namespace=ns, context=session.ctx, parameter_overrides=P(
            orchestrator__registry_path=str(root), ros__autostart=True, runtime__trigger="joint_states", adapt__enabled=False,
            monitor__config=str(monitor), orchestrator__step_s=0.2, ros__diagnostics_rate_hz=0.5)))
        events[robot] = session.collect(String, f"{ns}/driftgate_controller/events", LATCHED)
    inject = session.probe.create_publisher(String, f"{NS}/robot_a/driftgate_sim_robot/inject_drift", 10)
    session.start()
    wait_for(lambda: all(c.lifecycle == "active" and c.monitor is not None and c.monitor.state == "monitoring"
                         for c in ctl.values()), 90,
             lambda: f"two armed drift monitors ({[c.status().get('detector') for c in ctl.values()]})")
    for robot in ctl:                                    # each controller drives its own robot only
        assert sim[robot].counters["commands"] > 100 and ctl[robot].runtime.accepted > 100
        assert ctl[robot].orchestrator.counters["drift_events"] == 0
    drift = {"actuator_gain": {"slide": -1.0}}
    inject.publish(String(data=json.dumps(drift)))
    wait_for(lambda: sim["robot_a"].plant.drift.as_dict() == drift, 20, "the drift at robot_a")
    wait_for(lambda: ctl["robot_a"].orchestrator.counters["drift_events"] >= 1, 60,
             lambda: f"robot_a's alarm ({ctl['robot_a'].monitor.diagnostics()})")
    steps_b = sim["robot_b"].counters["steps"]
    wait_for(lambda: sim["robot_b"].counters["steps"] >= steps_b + 200, 30, "robot_b running on")
    assert sim["robot_b"].plant.drift.is_nominal
    assert ctl["robot_b"].orchestrator.counters["drift_events"] == 0 and ctl["robot_b"].monitor.counters["alarms"] == 0
    wait_for(lambda: any(json.loads(e.data)["event"] == "drift" for e in events["robot_a"]), 20, "robot_a's event")
    assert not any(json.loads(e.data)["event"] == "drift" for e in events["robot_b"])
    assert {json.loads(e.data)["node"] for e in events["robot_a"]} == {f"{NS}/robot_a/driftgate_controller"}


# ---------------------------------------------------------------------- sim time


class SimClock:
    """Publishes /clock from the test: frozen, stepped, or running at a speed factor."""

    def __init__(self, session, t0: float) -> None:
        self.pub = session.probe.create_publisher(Clock, "/clock", 10)
        self.t = t0
        self.publish()

    def publish(self) -> None:
        m = Clock()
        m.clock.sec, m.clock.nanosec = int(self.t), int(round((self.t % 1.0) * 1e9)) % 1_000_000_000
        self.pub.publish(m)

    def advance(self, seconds: float, step: float = 0.05, speed: float = 10.0) -> float:
        """Move sim time by `seconds` in `step`s, at `speed` x real time; returns the wall time taken."""
        t0 = time.monotonic()
        for _ in range(int(round(seconds / step))):
            self.t += step
            self.publish()
            time.sleep(step / speed)
        return time.monotonic() - t0


def joint_state(t: float) -> JointState:
    m = JointState(name=["slider", "hinge_1"], position=[0.0, 0.02], velocity=[0.0, 0.0])
    m.header.stamp.sec, m.header.stamp.nanosec = int(t), int(round((t % 1.0) * 1e9)) % 1_000_000_000
    return m


@pytest.mark.parametrize("control_thread", [False, True], ids=["executor", "thread"])
def test_use_sim_time_ticks_and_times_out_on_the_clock_topic(session, tmp_path, control_thread):
    """rate_hz 4 and stale_timeout_s 0.5, in sim seconds: a frozen /clock ticks nothing and never
    goes stale however long the wall clock runs; 0.3 sim-s after the last joint state the ticks
    are still fresh, 1 sim-s after it they hold the safe command; at 10x speed the node ticks 4
    times per sim second, i.e. 40 times per wall second."""
    root = tmp_path / "registry"
    bootstrap_registry(root)
    tag = f"simtime_{control_thread}"
    clock = SimClock(session, 1000.0)
    ctl = session.add(cn.ControllerNode(namespace=f"{NS}/{tag}", context=session.ctx, parameter_overrides=P(
        orchestrator__registry_path=str(root), ros__autostart=True, runtime__rate_hz=4.0, runtime__stale_timeout_s=0.5, runtime__safe_command=[0.25],
        monitor__config="none", adapt__enabled=False, ros__control_thread=control_thread, orchestrator__step_s=0.5,
        ros__diagnostics_rate_hz=1.0) + [Parameter("use_sim_time", value=True)]))
    pub = session.probe.create_publisher(JointState, f"{NS}/{tag}/joint_states", 10)
    session.start()
    wait_for(lambda: clock.publish() or ctl.get_clock().now().nanoseconds > 0, 20, "the node on /clock")
    wait_for(lambda: ctl.lifecycle == "active" and pub.get_subscription_count() > 0, 30, "active controller")
    assert ctl.clock.sim and abs(ctl.clock() - clock.t) < 1e-6
    assert ctl.set_parameters([Parameter("use_sim_time", value=False)])[0].successful is False

    # frozen: a fresh joint state, then 1.5 wall seconds without /clock moving -> no tick at all
    clock.advance(0.5)
    pub.publish(joint_state(clock.t))
    wait_for(lambda: ctl.runtime.accepted == 1, 10, "the joint state")
    t_state = clock.t
    ticks = ctl.runtime.ticks["ticks"]
    time.sleep(1.5)
    assert ctl.runtime.ticks["ticks"] == ticks and ctl.runtime.ticks["stale"] == 0
    # 0.3 sim-s later: ticks, fresh (a wall clock would have been stale for a second now)
    clock.advance(0.3)
    wait_for(lambda: ctl.runtime.ticks["ticks"] > ticks, 10, "a tick on sim time")
    assert ctl.runtime.last_output.status == "ok" and ctl.runtime.ticks["stale"] == 0
    # 1 sim-s after the state: stale, the safe command
    clock.advance(0.7)
    wait_for(lambda: ctl.runtime.ticks["stale"] >= 1, 10, "a stale tick")
    assert ctl.runtime.last_output.status == "stale" and clock.t - t_state >= 0.5
    assert list(ctl.runtime.last_output.command) == [0.25]
    # 10x speed: the tick rate follows sim seconds
    ticks = ctl.runtime.ticks["ticks"]
    wall = clock.advance(5.0, step=0.05, speed=10.0)
    time.sleep(0.2)
    n = ctl.runtime.ticks["ticks"] - ticks
    assert 0.75 * 4 * 5.0 <= n <= 4 * 5.0 + 1, (n, wall)            # 20 in 5 sim-s (wall: ~0.5 s)
    # the orchestrator (its timer and its durations) runs on sim seconds too
    assert ctl.orchestrator.clock() == pytest.approx(clock.t) and ctl.orchestrator.phase.value == "watching"


def test_sim_robot_command_timeout_follows_the_clock_topic(session):
    """The simulated robot with use_sim_time: its command timeout (0.2 s) is in sim seconds. A frozen
    /clock keeps a command in force however long the wall clock runs; 0.3 sim-s later it is zeros."""
    tag = f"{NS}/simrobot"
    clock = SimClock(session, 500.0)
    sim = session.add(sn.SimRobotNode(namespace=tag, context=session.ctx, parameter_overrides=P(
        autostep=False, command_timeout_s=0.2) + [Parameter("use_sim_time", value=True)]))
    cmd = session.probe.create_publisher(Float64MultiArray, f"{tag}/forward_effort_controller/commands", 10)
    session.start()
    wait_for(lambda: clock.publish() or sim.clock() >= 500.0, 20, "the robot on /clock")
    assert sim.clock.sim
    wait_for(lambda: (cmd.publish(Float64MultiArray(data=[0.5])) or True) and sim.counters["commands"] > 0, 20,
             "a command at the robot")
    time.sleep(0.5)                                       # wall time passes, sim time does not
    sim.step_once()
    assert sim.counters["timeouts"] == 0 and list(sim._applied) == [0.5]
    clock.advance(0.3)
    wait_for(lambda: sim.clock() >= 500.3 - 1e-6, 10, "sim time at the robot")
    sim.step_once()
    assert sim.counters["timeouts"] == 1 and list(sim._applied) == [0.0]


# ---------------------------------------------------------------------- the ros2_control incumbent


def test_effort_incumbent_is_read_from_joint_states_and_canary_is_refused(session, tmp_path):
    """incumbent_source joint_state_effort: no incumbent topic; in shadow mode the applied effort
    of the actuated joint is the incumbent's command, paired with the champion's action; canary
    (which would relay driftgate's own output) is refused at run time and at configure."""
    root = tmp_path / "registry"
    bootstrap_registry(root)
    tag = f"{NS}/effort"
    ctl = session.add(cn.ControllerNode(namespace=tag, context=session.ctx, parameter_overrides=P(
        orchestrator__registry_path=str(root), ros__autostart=True, runtime__trigger="joint_states", runtime__mode="shadow", monitor__config="none",
        adapt__enabled=False, ros__incumbent_source="joint_state_effort", guard__incumbent_timeout_s=5.0)))
    commands = session.collect(Float64MultiArray, f"{tag}/forward_effort_controller/commands", 100)
    pub = session.probe.create_publisher(JointState, f"{tag}/joint_states", 10)
    session.start()
    wait_for(lambda: ctl.lifecycle == "active" and pub.get_subscription_count() > 0, 30, "active controller")
    assert all("incumbent" not in s.topic_name for s in ctl.subscriptions)
    t0 = time.time()
    for k in range(30):
        m = joint_state(t0 + 0.01 * k)
        m.name, m.position, m.velocity = ["hinge_1", "slider"], [0.02, 0.001 * k], [0.0, 0.0]
        m.effort = [0.0, 0.37]                          # the incumbent applied 0.37 to the cart joint
        pub.publish(m)
        time.sleep(0.005)
    wait_for(lambda: ctl.runtime.accepted == 30, 10, "30 joint states")
    cmp = ctl.runtime.incumbent_comparison()
    assert cmp.n == 30 and not commands                 # shadow: compared, never published
    g = lqr_policy_genome()
    policy, obs = CompiledPolicy(g.id, g.policy_spec, g.vector), CartpoleObservation()
    expected = [abs(0.37 - policy.act(obs(np.array([0.001 * k, 0.02]), np.zeros(2)))[0]) for k in range(30)]
    assert math.isclose(cmp.to_dict()["divergence_mean"], sum(expected) / 30, rel_tol=1e-9)
    res = ctl.set_parameters([Parameter("runtime.mode", value="canary")])[0]
    assert not res.successful and "joint_state_effort" in res.reason
    assert ctl.p("runtime.mode") == "shadow"
    bad = session.add(cn.ControllerNode("bad", namespace=tag, context=session.ctx, parameter_overrides=P(
        orchestrator__registry_path=str(tmp_path / "r2"), runtime__mode="canary", ros__incumbent_source="joint_state_effort",
        monitor__config="none")))
    assert bad.trigger_configure() == cn.TransitionCallbackReturn.FAILURE and bad.runtime is None
    typo = session.add(cn.ControllerNode("typo", namespace=tag, context=session.ctx, parameter_overrides=P(
        orchestrator__registry_path=str(tmp_path / "r3"), ros__incumbent_source="effort", monitor__config="none")))
    assert typo.trigger_configure() == cn.TransitionCallbackReturn.FAILURE


def test_shadow_against_a_ros2_control_style_incumbent_on_the_sim_robot(session, tmp_path):
    """The simulated robot reports the applied command in JointState.effort (clipped to the motor's
    range, as a hardware interface applies it). An incumbent drives it (here another driftgate
    controller with the same LQR, publishing on the robot's command topic); the shadow controller
    next to it has no topic from the incumbent and still pairs each state with the incumbent's
    command: the same policy, one control period apart, so the divergence is small."""
    root = tmp_path / "registry"
    bootstrap_registry(root)
    tag = f"{NS}/r2c"
    sim = session.add(sn.SimRobotNode(namespace=tag, context=session.ctx, parameter_overrides=P(seed=2, rate_hz=50.0)))
    states = session.collect(JointState, f"{tag}/joint_states", 100)
    session.add(cn.ControllerNode("incumbent", namespace=tag, context=session.ctx, parameter_overrides=P(
        orchestrator__registry_path=str(root), ros__autostart=True, runtime__trigger="joint_states", monitor__config="none", adapt__enabled=False)))
    shadow = session.add(cn.ControllerNode(namespace=tag, context=session.ctx, parameter_overrides=P(
        orchestrator__registry_path=str(root), ros__autostart=True, runtime__trigger="joint_states", runtime__mode="shadow", monitor__config="none",
        adapt__enabled=False, ros__incumbent_source="joint_state_effort")))
    session.start()
    wait_for(lambda: shadow.runtime is not None and shadow.runtime.incumbent_comparison().n >= 100, 60,
             lambda: f"100 paired samples ({shadow.status().get('incumbent_comparison')})")
    assert sim.plant.pole_upright() and shadow.commands_published == 0
    d = shadow.runtime.incumbent_comparison().to_dict()
    assert d["divergence_mean"] < 0.05, d                 # not the zeros of a robot without effort
    efforts = [s.effort[0] for s in list(states)[5:]]
    assert max(abs(e) for e in efforts) > 0.0 and all(s.effort[1] == 0.0 for s in list(states))
    # the robot reports what it applied: out-of-range commands are clipped to the motor's range
    cmd = session.probe.create_publisher(Float64MultiArray, f"{tag}/forward_effort_controller/commands", 10)
    hi = float(sim.plant.act_high[0])
    wait_for(lambda: (cmd.publish(Float64MultiArray(data=[10.0 * hi])) or True)
             and any(s.effort[0] == hi for s in list(states)[-20:]), 20, "a clipped effort")
