"""A champion distilled from a live recording: the simulated robot driven by another controller (the
plant's nominal LQR about a fixed setpoint, a pure state feedback, in a node of its own) with the
driftgate controller node beside it in shadow mode, all recorded over real DDS by `BagRecorder`
(what `driftgate demo` records with), then `driftgate champion distill` on that bag, compared with
the reward the incumbent earned in the recording (`--incumbent recorded`)."""
import json
import os
import threading
import time

import numpy as np
import pytest
from waiting import wait_for  # noqa: E402  (tests/waiting.py)

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray, String  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from adapters.cli import app  # noqa: E402
from adapters.bag_recorder import BagRecorder  # noqa: E402
from adapters.ros import controller_node as cn  # noqa: E402
from adapters.ros import sim_robot_node as sn  # noqa: E402
from controller.bootstrap import bootstrap_registry  # noqa: E402
from sim.observation import make_observation_map  # noqa: E402
from sim.plants import make_plant  # noqa: E402

NS = f"/dgd{os.getpid()}"
pytestmark = pytest.mark.ros
TICKS = 2500




def test_distill_from_a_shadow_mode_recording(tmp_path):
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=(int(os.environ.get("ROS_DOMAIN_ID", "100")) + 41) % 100 + 100)
    ex = SingleThreadedExecutor(context=ctx)
    nodes = []
    js, cmd = f"{NS}/robot/joint_states", f"{NS}/robot/commands"
    try:
        # the incumbent: the plant's nominal LQR answering every joint state on the robot's command topic
        inc = rclpy.create_node("incumbent", namespace=NS, context=ctx)
        lqr, obs_map = make_plant("cartpole").nominal_controller(amplitude=0.0), make_observation_map("cartpole")
        lqr.reset()
        pub = inc.create_publisher(Float64MultiArray, cmd, 10)

        def answer(m: JointState) -> None:
            u = lqr(obs_map(np.asarray(m.position), np.asarray(m.velocity)))
            pub.publish(Float64MultiArray(data=[float(x) for x in np.atleast_1d(u)]))
        inc.create_subscription(JointState, js, answer, 10)
        # driftgate's controller node in shadow mode beside it: listens, publishes no command
        root = tmp_path / "registry"
        bootstrap_registry(root)
        ctl = cn.ControllerNode(namespace=NS, context=ctx, parameter_overrides=[
            Parameter("orchestrator.registry_path", value=str(root)), Parameter("runtime.mode", value="shadow"),
            Parameter("ros.incumbent_topic", value=cmd), Parameter("ros.joint_states_topic", value=js),
            Parameter("ros.commands_topic", value=f"{NS}/driftgate_controller/commands"), Parameter("adapt.enabled", value=False)])
        assert ctl.trigger_configure() == cn.TransitionCallbackReturn.SUCCESS
        assert ctl.trigger_activate() == cn.TransitionCallbackReturn.SUCCESS
        probe = rclpy.create_node("recorder", namespace=NS, context=ctx)
        comparisons = []
        probe.create_subscription(String, f"{NS}/driftgate_controller/comparison", comparisons.append, 10)
        bag = BagRecorder(probe, tmp_path / "bag", plant="cartpole", joint_names=["slider", "hinge_1"],
                          control_dt=0.01, roles=["joint_states", "commands", "reward"],
                          topics={"joint_states": js, "commands": cmd,
                                  "reward": f"{NS}/driftgate_sim_robot/reward"},
                          extra={f"{NS}/driftgate_controller/shadow_commands": "std_msgs/msg/Float64MultiArray"})
        robot = sn.SimRobotNode(namespace=NS, context=ctx, parameter_overrides=[
            Parameter("seed", value=5), Parameter("joint_states_topic", value=js),
            Parameter("commands_topic", value=cmd), Parameter("lockstep", value=True),
            Parameter("sensor_noise_std", value=0.01)])
        nodes = [inc, ctl, probe, robot]
        for n in nodes:
            ex.add_node(n)
        spin = threading.Thread(target=ex.spin, daemon=True)
        spin.start()
        wait_for(lambda: bag.counts.get(cmd, 0) >= TICKS, 240, f"{TICKS} recorded commands")
        path = bag.close()
        assert ctl.commands_published == 0                   # shadow: the incumbent alone drove the robot
        wait_for(lambda: any((json.loads(c.data)["incumbent_vs_champion"]["n"] or 0) > 0 for c in comparisons), 20,
                 "the shadow comparison")
    finally:
        ex.shutdown(timeout_sec=5)
        for n in reversed(nodes):
            if hasattr(n, "_teardown"):
                n._teardown()
            n.destroy_node()
        rclpy.try_shutdown(context=ctx)

    out = tmp_path / "champion.safetensors"
    res = CliRunner().invoke(app, ["champion", "distill", str(path), "--robot", "cartpole", "--out", str(out),
                                        "--incumbent", "recorded"])
    assert res.exit_code == 0, res.output
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["source"]["command_topic"] == cmd and report["ticks"] >= 0.9 * TICKS
    assert report["closed_loop"]["incumbent"]["how"].startswith("recorded reward")
    assert report["closed_loop"]["ratio"] >= 0.9, report["closed_loop"]
    # DDS delivery under load mispairs a few ticks; the fit still explains the commands
    assert report["fit_error"]["relative"][0] < 0.1, report["fit_error"]
