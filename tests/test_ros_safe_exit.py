"""Safe on exit (issue 16, item 7): every orderly way out of authority leaves the safe command as
the last command the robot received from the node: deactivate and shutdown in process, SIGTERM
to `driftgate node controller` and SIGINT to the `ros2 run` entry point (`controller_node.main`)
as child processes, over real DDS on loopback. A node without authority (shadow) publishes
nothing on the way out: the robot is someone else's then."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from test_ros_nodes import NS, P, Session, domain, wait_for  # noqa: E402

from adapters.ros import controller_node as cn  # noqa: E402
from controller.bootstrap import bootstrap_registry  # noqa: E402
from controller.authority import Authority  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.ros
SAFE = [0.0]
OFFSETS = {"test_deactivate_and_shutdown_publish_the_safe_command_last": 51,
           "test_a_signal_to_the_node_process_publishes_the_safe_command_last[sigterm-cli]": 52,
           "test_a_signal_to_the_node_process_publishes_the_safe_command_last[sigint-ros2-run]": 53}


@pytest.fixture
def session(request):
    s = Session(domain(OFFSETS.get(request.node.name, 54)))
    yield s
    s.close()


class Robot:
    """The test's robot: streams tilted joint states (so the champion's command is never the safe
    one) and records every command it receives, in order."""

    def __init__(self, session, ns: str) -> None:
        self.commands: list[list[float]] = []
        self._lock = threading.Lock()
        session.probe.create_subscription(Float64MultiArray, f"{ns}/forward_effort_controller/commands",
                                          self._on_command, 100)
        self.pub = session.probe.create_publisher(JointState, f"{ns}/joint_states", 10)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._stream, daemon=True)

    def _on_command(self, msg) -> None:
        with self._lock:
            self.commands.append(list(msg.data))

    def _stream(self) -> None:
        while not self._stop.is_set():
            m = JointState(name=["slider", "hinge_1"], position=[0.05, 0.1], velocity=[0.0, 0.2])
            m.header.stamp = rclpy.clock.Clock().now().to_msg()
            self.pub.publish(m)
            time.sleep(0.01)

    def start(self) -> "Robot":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def snapshot(self) -> list[list[float]]:
        with self._lock:
            return list(self.commands)


def test_deactivate_and_shutdown_publish_the_safe_command_last(session, tmp_path):
    root = tmp_path / "registry"
    bootstrap_registry(root)
    ns = f"{NS}/exit_lc"
    ctl = session.add(cn.ControllerNode(namespace=ns, context=session.ctx, parameter_overrides=P(
        orchestrator__registry_path=str(root), runtime__trigger="joint_states", ros__control_thread=True, monitor__config="none", adapt__enabled=False,
        runtime__stale_timeout_s=1.0)))
    robot = Robot(session, ns)
    session.start()
    robot.start()
    try:
        assert ctl.trigger_configure() == cn.TransitionCallbackReturn.SUCCESS
        assert ctl.trigger_activate() == cn.TransitionCallbackReturn.SUCCESS
        wait_for(lambda: len(robot.snapshot()) >= 20, 20, "commands from the champion")
        assert robot.snapshot()[-1] != SAFE
        # deactivate while the control thread ticks on every joint state
        assert ctl.trigger_deactivate() == cn.TransitionCallbackReturn.SUCCESS
        wait_for(lambda: robot.snapshot()[-1] == SAFE, 10, "the safe command after deactivate")
        n = len(robot.snapshot())
        time.sleep(0.3)                                   # joint states keep coming: inactive publishes nothing
        assert len(robot.snapshot()) == n and ctl.safe_exits == 1
        assert ctl.trigger_cleanup() == cn.TransitionCallbackReturn.SUCCESS   # no authority left: nothing new
        assert ctl.safe_exits == 1
        # again, then shutdown straight from active
        assert ctl.trigger_configure() == cn.TransitionCallbackReturn.SUCCESS
        assert ctl.trigger_activate() == cn.TransitionCallbackReturn.SUCCESS
        wait_for(lambda: len(robot.snapshot()) >= n + 20 and robot.snapshot()[-1] != SAFE, 20, "commands again")
        assert ctl.trigger_shutdown() == cn.TransitionCallbackReturn.SUCCESS
        wait_for(lambda: robot.snapshot()[-1] == SAFE, 10, "the safe command after shutdown")
        n = len(robot.snapshot())
        time.sleep(0.3)
        assert len(robot.snapshot()) == n and ctl.safe_exits == 2
        # a shadow node has no authority: deactivating it publishes nothing (the incumbent drives)
        shadow = session.add(cn.ControllerNode("shadow", namespace=ns, context=session.ctx, parameter_overrides=P(
            orchestrator__registry_path=str(root), runtime__trigger="joint_states", runtime__mode="shadow", monitor__config="none", adapt__enabled=False)))
        # while it configures (subscriptions live, joint states arriving) it has no authority either:
        # what the runtime held when configure first applied lifecycle x mode
        during = []
        apply = shadow._apply_authority
        shadow._apply_authority = lambda changed=None: (during.append(shadow.runtime.slot.authority), apply(changed))
        assert shadow.trigger_configure() == cn.TransitionCallbackReturn.SUCCESS
        assert during[0] is Authority.NONE
        assert shadow.trigger_activate() == cn.TransitionCallbackReturn.SUCCESS
        wait_for(lambda: shadow.runtime.ticks["ok"] >= 10, 20, "shadow ticks")
        assert shadow.trigger_deactivate() == cn.TransitionCallbackReturn.SUCCESS
        time.sleep(0.3)
        assert len(robot.snapshot()) == n and shadow.safe_exits == 0 and shadow.commands_published == 0
    finally:
        robot.stop()


@pytest.mark.parametrize("sig,entry", [(signal.SIGTERM, "cli"), (signal.SIGINT, "ros2-run")],
                         ids=["sigterm-cli", "sigint-ros2-run"])
def test_a_signal_to_the_node_process_publishes_the_safe_command_last(session, request, tmp_path, sig, entry):
    """The controller process drives the test's robot (commands != safe), gets the signal while
    joint states keep streaming, exits 0, and the last command the robot received is the safe
    command. `cli`: `driftgate node controller --params launch/driftgate.yaml --ros-args -r
    __ns:=...` (control thread, realtime priority asked); `ros2-run`: the `driftgate_controller` entry point with ROS arguments
    only (as `ros2 run` / `ros2 launch` start it; ros2 launch stops nodes with SIGINT)."""
    ns = f"{NS}/exit_{entry.replace('-', '_')}"
    reg = tmp_path / "reg"
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain(OFFSETS[request.node.name])))     # the session's
    common = {"orchestrator.registry_path": str(reg), "orchestrator.bootstrap_champion": "lqr",
              "monitor.config": "none", "runtime.trigger": "joint_states", "runtime.stale_timeout_s": 1.0}
    if entry == "cli":
        cmd = [sys.executable, "-c", "from adapters.cli_node import main; main()", "controller",
               "--params", str(ROOT / "launch" / "driftgate.yaml")]
        for k, v in common.items():
            cmd += ["--set", f"{k}={v}"]
        cmd += ["--ros-args", "-r", f"__ns:={ns}"]              # the namespace as ros2 run takes it
    else:
        cmd = [sys.executable, "-c", "from adapters.ros.controller_node import main; main()", "--ros-args",
               "-r", f"__ns:={ns}", "-p", "ros.autostart:=true"]
        for k, v in common.items():
            cmd += ["-p", f"{k}:={v}"]
    robot = Robot(session, ns)
    session.start()
    robot.start()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = ""
    try:
        wait_for(lambda: proc.poll() is not None or len(robot.snapshot()) >= 30, 90, "commands from the process")
        assert proc.poll() is None
        assert robot.snapshot()[-1] != SAFE
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        time.sleep(0.3)                                   # anything still in flight
        got = robot.snapshot()
        assert got[-1] == SAFE, (got[-5:], out)
        assert got[-2] != SAFE                            # the champion drove until the signal
        assert "safe command [0.0] published" in out, out
    finally:
        robot.stop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
