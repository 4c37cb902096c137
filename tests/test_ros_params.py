"""Start-up parameters are checked exactly like run-time changes (one test per rule class: enum,
range, path, JSON), an unsafe safe command fails configure, `driftgate node` ends with one line
and a non-zero exit when configure fails, and a joint-state flood cannot hold the control loop."""
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402

from adapters.ros import controller_node as cn  # noqa: E402
from adapters.ros.control_loop import ControlLoop  # noqa: E402
from controller.bootstrap import bootstrap_registry  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NS = f"/dgp{os.getpid()}"
pytestmark = pytest.mark.ros
FAILURE = cn.TransitionCallbackReturn.FAILURE
SUCCESS = cn.TransitionCallbackReturn.SUCCESS


def domain(offset: int) -> int:
    return (int(os.environ.get("ROS_DOMAIN_ID", "100")) + 29 * offset + 7) % 100 + 100


@pytest.fixture
def ctx(request):
    c = rclpy.Context()
    rclpy.init(context=c, domain_id=domain(abs(hash(request.node.name)) % 5))
    yield c
    rclpy.try_shutdown(context=c)


@pytest.fixture
def registry(tmp_path):
    root = tmp_path / "registry"
    bootstrap_registry(root)
    return root


def node(ctx, registry, **kw):
    base = {"orchestrator.registry_path": str(registry), "monitor.config": "none", "adapt.enabled": False,
            "ros.joint_states_topic": f"{NS}/joint_states", "ros.commands_topic": f"{NS}/commands"}
    base.update({k.replace("__", "."): v for k, v in kw.items()})      # runtime__mode: runtime.mode
    return cn.ControllerNode(namespace=NS, context=ctx,
                             parameter_overrides=[Parameter(k, value=v) for k, v in base.items()])


def configure_fails(n, *needles):
    try:
        assert n.trigger_configure() == FAILURE and n.lifecycle == "unconfigured" and n.runtime is None
        why = n.configure_error
        assert why.startswith("configure failed: ") and "\n" not in why
        for needle in needles:
            assert needle in why, why
        return why
    finally:
        n._teardown()
        n.destroy_node()


def test_enum_start_up_values_are_refused_like_run_time_values(ctx, registry):
    for value in ("Active", "bogus", ""):
        configure_fails(node(ctx, registry, runtime__mode=value), "parameter runtime.mode", repr(value), "active | shadow | canary")
    configure_fails(node(ctx, registry, runtime__trigger="bogus"), "parameter runtime.trigger", "timer | joint_states")
    n = node(ctx, registry)
    try:
        assert n.trigger_configure() == SUCCESS
        res = n.set_parameters([Parameter("runtime.mode", value="bogus")])[0]
        assert not res.successful and "parameter runtime.mode" in res.reason and "active | shadow | canary" in res.reason
        assert n.p("runtime.mode") == "active"
    finally:
        n._teardown()
        n.destroy_node()


def test_range_start_up_values_are_refused_like_run_time_values(ctx, registry):
    for name, value, allowed in (("runtime.rate_hz", -5.0, "> 0"), ("runtime.rate_hz", math.nan, "> 0"),
                                 ("runtime.rate_hz", "fast", "> 0"), ("runtime.stale_timeout_s", 0.0, "> 0"),
                                 ("ros.realtime_priority", 500, "<= 99"), ("runtime.canary_weight", 5.0, "<= 1")):
        configure_fails(node(ctx, registry, **{name: value}), f"parameter {name}", allowed)
    n = node(ctx, registry)
    try:
        assert n.trigger_configure() == SUCCESS
        for name, value in (("runtime.canary_period_s", math.inf), ("runtime.canary_weight", 5.0), ("runtime.canary_window_s", -1.0)):
            res = n.set_parameters([Parameter(name, value=value)])[0]
            # the descriptor's range (rclpy's words, "Min: 0.0, Max: 1.0") or the callback's
            assert not res.successful and name in res.reason, (name, res.reason)
    finally:
        n._teardown()
        n.destroy_node()


def test_path_start_up_values_are_refused(ctx, registry, tmp_path):
    configure_fails(node(ctx, registry, orchestrator__registry_path="/etc"), "parameter orchestrator.registry_path", "system directory")
    configure_fails(node(ctx, registry, orchestrator__registry_path=""), "parameter orchestrator.registry_path", "is not set")
    configure_fails(node(ctx, registry, gate__suite=str(tmp_path / "missing.yaml")), "parameter gate.suite",
                    "does not exist")
    configure_fails(node(ctx, registry, orchestrator__bootstrap_champion="/dev/zero"), "parameter orchestrator.bootstrap_champion",
                    "regular file")
    bad = tmp_path / "monitor.yaml"
    bad.write_text("detectors: [\n")
    configure_fails(node(ctx, registry, monitor__config=str(bad)), "parameter monitor.config", "YAML")


def test_json_start_up_values_are_refused(ctx, registry):
    configure_fails(node(ctx, registry, guard__joint_bounds="{slider: 1"), "parameter guard.joint_bounds",
                    "not valid JSON")
    configure_fails(node(ctx, registry, guard__joint_bounds='{"no_such_joint": [-1.0, 1.0]}'),
                    "parameter guard.joint_bounds", "no_such_joint")
    configure_fails(node(ctx, registry, adapt__drift='{"gravity": 1e9}'), "parameter adapt.drift", "plausible")


def test_joint_names_and_safe_command_are_checked_at_configure(ctx, registry):
    configure_fails(node(ctx, registry, runtime__joint_names=["a", "a"]), "parameter runtime.joint_names", "duplicates")
    configure_fails(node(ctx, registry, runtime__joint_names=["a", "b", "c"]), "parameter runtime.joint_names", "2 joints")
    configure_fails(node(ctx, registry, runtime__safe_command=[math.nan]), "parameter runtime.safe_command", "finite")
    configure_fails(node(ctx, registry, runtime__safe_command=[5.0]), "parameter runtime.safe_command", "actuator bounds")
    configure_fails(node(ctx, registry, runtime__safe_command=[0.0, 0.0]), "parameter runtime.safe_command", "1 actuators")
    n = node(ctx, registry, runtime__safe_command=[0.5])
    try:
        assert n.trigger_configure() == SUCCESS and n.trigger_activate() == SUCCESS
        out = n.runtime.tick()                  # no joint state has come: the configured safe command
        assert out.status == "waiting" and out.command.tolist() == [0.5]
    finally:
        n._teardown()
        n.destroy_node()


def test_a_mistyped_key_fails_configure_with_did_you_mean(ctx, registry):
    configure_fails(node(ctx, registry, runtime__stale_timeout=0.2), "unknown parameter 'runtime.stale_timeout'",
                    "did you mean runtime.stale_timeout_s")


def test_an_old_flat_name_fails_configure_naming_the_new_one(ctx, registry):
    configure_fails(node(ctx, registry, rate_hz=50.0), "parameter 'rate_hz' was renamed: use runtime.rate_hz")
    configure_fails(node(ctx, registry, adapt_generations=5), "use adapt.max_generations")


# ---------------------------------------------------------------------- the CLI ends with one line


def run_cli(*args, tmp_path, timeout=120):
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain(9)))
    cmd = [sys.executable, "-c", "from adapters.cli import main; main()", "node", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("sets, needle", [
    (["runtime.mode=bogus"], "configure failed: parameter runtime.mode: 'bogus' is not allowed; allowed: one of active | shadow"),
    (["runtime.rate_hz=fast"], "configure failed: parameter runtime.rate_hz: 'fast' is not a number"),
    (["ros.realtime_priority=500"], "configure failed: parameter ros.realtime_priority: 500 is out of range"),
    (["orchestrator.registry_path=/etc"], "configure failed: parameter orchestrator.registry_path: '/etc' is a system directory"),
    (["runtime.rate_hx=50.0"], "unknown parameter 'runtime.rate_hx'; did you mean runtime.rate_hz?")])
def test_cli_node_exits_2_with_one_line_when_configure_fails(tmp_path, sets, needle):
    args = ["controller", "--params", str(ROOT / "launch" / "driftgate.yaml"), "--namespace", NS.strip("/"),
            "--set", f"orchestrator.registry_path={tmp_path / 'reg'}", "--set", "orchestrator.bootstrap_champion=lqr",
            "--set", "monitor.config=none", "--set", "ros.realtime_priority=0"]
    for s in sets:
        args += ["--set", s]
    r = run_cli(*args, tmp_path=tmp_path)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 2, r.stdout + r.stderr
    assert last.startswith("error: ") and needle in last, r.stderr
    assert "Traceback" not in r.stdout + r.stderr


def test_cli_node_demo_exits_2_when_the_controller_cannot_configure(tmp_path):
    r = run_cli("demo", "--params", str(ROOT / "launch" / "demo.yaml"), "--set", "runtime.mode=bogus",
                "--set", f"orchestrator.registry_path={tmp_path / 'reg'}", tmp_path=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: configure failed: parameter runtime.mode") and "Traceback" not in r.stderr


def test_ros2_run_entry_point_exits_2_with_one_line_when_configure_fails(tmp_path):
    """The `ros2 run driftgate driftgate_controller` entry point ends like `driftgate node` does."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain(9)))
    cmd = [sys.executable, "-c", "from adapters.ros.controller_node import main; main()", "--ros-args",
           "-r", f"__ns:={NS}", "-p", "ros.autostart:=true", "-p", "runtime.mode:=bogus",
           "-p", "ros.realtime_priority:=0", "-p", f"orchestrator.registry_path:={tmp_path / 'reg'}"]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: configure failed: parameter runtime.mode") and "Traceback" not in r.stderr
    # the old flat names (a launch file from before the settings tree): the rename, at once
    old = [*cmd[:6], "-p", "autostart:=true", "-p", "mode:=active", "-p", f"registry_path:={tmp_path / 'reg'}"]
    r = subprocess.run(old, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "was renamed: use " in r.stderr.strip().splitlines()[-1]


# ---------------------------------------------------------------------- a joint-state flood


def test_a_joint_state_flood_cannot_hold_the_control_loop(ctx):
    """A slow message handler and a publisher as fast as it can go: at most max_messages are handed
    on per period, the rest are dropped and counted, and the periodic work keeps coming."""
    n = rclpy.create_node("flood_probe", namespace=NS, context=ctx)
    topic = f"{NS}/flood/joint_states"
    pub = n.create_publisher(JointState, topic, qos_profile_sensor_data)
    per_period, since = [], [0]

    def on_message(msg, info):
        since[0] += 1
        time.sleep(0.002)                 # a handler slower than the flood's spacing

    def on_deadline():
        per_period.append(since[0])
        since[0] = 0

    loop = ControlLoop(n, JointState, topic, qos_profile_sensor_data, on_message, period_s=0.02,
                       on_deadline=on_deadline, max_messages=3, gil_switch_s=0).start()
    stop = threading.Event()

    def flood():
        msg = JointState(name=["a", "b"], position=[0.0, 0.0], velocity=[0.0, 0.0])
        while not stop.is_set():
            pub.publish(msg)
    th = threading.Thread(target=flood, daemon=True)
    th.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (len(per_period) < 30 or loop.counters["dropped"] < 50):
            time.sleep(0.05)
    finally:
        stop.set()
        th.join(timeout=5)
        loop.stop()
        n.destroy_node()
    assert len(per_period) >= 30 and loop.counters["dropped"] >= 50, (len(per_period), loop.counters)
    assert max(per_period) <= 3, per_period
    assert loop.counters["messages"] + loop.counters["dropped"] >= sum(per_period)


def test_positions_only_joint_states_get_an_error_naming_the_choice(ctx, registry):
    """velocity_source measured: refused from the first message, ERROR on /diagnostics saying what to set;
    differentiate: control resumes with estimated velocities."""
    for source, accepted in (("measured", False), ("differentiate", True)):
        n = node(ctx, registry, runtime__velocity_source=source)
        try:
            assert n.trigger_configure() == SUCCESS and n.trigger_activate() == SUCCESS
            sent = []
            n._diag_pub.publish = sent.append                 # what /diagnostics would carry
            for k in range(3):
                msg = JointState(name=["slider", "hinge_1"], position=[0.0, 0.01 * k], velocity=[])
                msg.header.stamp.sec, msg.header.stamp.nanosec = 100, 10_000_000 * (k + 1)
                n._on_joint_state(msg, {})
            n._on_tick()
            n._on_diagnostics()
            control = sent[-1].status[0]
            if accepted:
                assert n.runtime.accepted == 2 and n.runtime.last_output.status == "ok"
            else:
                assert n.runtime.accepted == 0 and n.runtime.refused["no_velocity"] == 3
                assert control.level == b"\x02" and "velocity_source: differentiate" in control.message
        finally:
            n._teardown()
            n.destroy_node()


def test_driftgate_demo_exits_2_with_one_line_when_the_controller_cannot_configure(tmp_path):
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain(11)))
    r = subprocess.run([sys.executable, "-c", "from adapters.cli import main; main()", "demo", "-q",
                        "--out", str(tmp_path / "demo"), "--set", "runtime.mode=bogus"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip().splitlines()[-1] == ("error: configure failed: parameter runtime.mode: 'bogus' is not allowed; "
                                                 "allowed: one of active | shadow | canary")
    assert "Traceback" not in r.stdout + r.stderr


def test_the_node_parameters_are_the_settings_tree(ctx, registry):
    """The controller node's parameters are the tree's dotted flattening (replay's section aside),
    with the tree's descriptions in their descriptors (`ros2 param describe`)."""
    from controller import settings as tree
    names = [name for name, _, _ in tree.leaves(exclude=("replay",))]
    assert list(cn.PARAMETERS) == names
    n = node(ctx, registry)
    try:
        for d, name in zip(n.describe_parameters(names), names):
            f = tree.field_info(name)
            assert d.name == name and d.description == f.description and d.read_only == (not tree.is_mutable(f))
        assert n.settings() == tree.from_parameters({k: n.p(k) for k in names})
    finally:
        n.destroy_node()
