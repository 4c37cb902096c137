"""A floating base over real DDS: the simulated robot publishes a profile's IMU and odometry
(sensor_msgs/Imu, nav_msgs/Odometry) with the values of the plant's own observation channels, and
the controller's subscriptions hand them to its observation map, so what the policy sees live is
what it was trained on (the gymnasium ant's torso pose and velocity)."""
import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Imu, JointState  # noqa: E402

from adapters.ros import base_state  # noqa: E402
from adapters.ros import sim_robot_node as sn  # noqa: E402
from adapters.ros.node_entities import base_subscriptions  # noqa: E402
from sim.observation import make_observation_map  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ANT = str(ROOT / "launch" / "robots" / "ant.yaml")
NS = f"/dgb{os.getpid()}"
pytestmark = pytest.mark.ros


def wait_for(cond, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_sim_robot_publishes_the_base_and_the_controller_side_measures_it():
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=(int(os.environ.get("ROS_DOMAIN_ID", "100")) + 41) % 100 + 100)
    executor = SingleThreadedExecutor(context=ctx)
    sim = sn.SimRobotNode(namespace=NS, context=ctx, parameter_overrides=[
        Parameter("robot", value=ANT), Parameter("autostep", value=False), Parameter("seed", value=3)])
    probe = rclpy.create_node("probe", namespace=NS, context=ctx)
    obs_map = make_observation_map(ANT)
    got = {"imu": [], "odom": [], "js": []}
    probe.create_subscription(Imu, f"{NS}/imu", got["imu"].append, 50)
    probe.create_subscription(Odometry, f"{NS}/odom", got["odom"].append, 50)
    probe.create_subscription(JointState, f"{NS}/joint_states", got["js"].append, 50)
    # the controller node's own subscriptions, on the probe node (the runtime is only its obs map)
    made = []
    fake = SimpleNamespace(runtime=SimpleNamespace(obs_map=obs_map), get_logger=probe.get_logger)
    topics = base_subscriptions(fake, lambda t, topic, cb: made.append(
        probe.create_subscription(t, topic, cb, 50)))
    assert topics == {"imu": "imu", "odom": "odom"}
    for n in (sim, probe):
        executor.add_node(n)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        wait_for(lambda: probe.count_publishers(f"{NS}/odom") and sim.count_subscribers(f"{NS}/odom") >= 2,
                 what="odometry matched")
        rng = np.random.default_rng(0)
        for _ in range(30):
            sim._command = rng.uniform(-0.4, 0.4, 8)      # as a command message would set it
            sim._command_time = sim.clock()
            sim.step_once()
        wait_for(lambda: len(got["js"]) >= 30 and len(got["imu"]) >= 30 and len(got["odom"]) >= 30
                 and obs_map.base_counts["measured"] >= 60, what="30 joint states, IMU and odometry messages")
        truth = sim.plant.observe()
        cols = base_state.base_columns(sim.plant.obs_names)
        assert np.allclose(base_state.imu_values(got["imu"][-1]), truth[cols["imu"]], atol=1e-12)
        assert np.allclose(base_state.odometry_values(got["odom"][-1]), truth[cols["odom"]], atol=1e-12)
        assert got["odom"][-1].child_frame_id == got["odom"][-1].header.frame_id   # twist in the world frame
        assert truth[cols["odom"]][2] < 0.7            # the torso moved from where the model starts it (0.75)
        js = got["js"][-1]
        seen = obs_map(np.array(js.position), np.array(js.velocity))
        assert np.allclose(seen, truth, atol=1e-12)     # the controller sees what the plant observes
        # effort: the command applied to each published joint (command order is the profile's, MuJoCo's
        # actuator order and joint ids differ: the free joint is joint 0, leg 4's motors come first)
        assert np.allclose(js.effort, sim._applied)
        # each base message goes out before its joint state (same stamp): a tick on it has the base
        assert got["imu"][-1].header.stamp == js.header.stamp
    finally:
        executor.shutdown(timeout_sec=5)
        thread.join(timeout=5)
        for n in (sim, probe):
            n.destroy_node()
        rclpy.try_shutdown(context=ctx)



def test_the_control_loop_takes_the_base_before_the_joint_state_of_its_wake_up():
    """With a control thread the base is taken in its wait set, ahead of the joint states: no executor
    spins here, so only the control loop can deliver it, and each tick sees its own step's base."""
    from rclpy.qos import qos_profile_sensor_data

    from adapters.ros.control_loop import ControlLoop
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=(int(os.environ.get("ROS_DOMAIN_ID", "100")) + 42) % 100 + 100)
    node = rclpy.create_node("loop", namespace=NS, context=ctx)
    seen, order = {"imu": None}, []

    def on_imu(msg):
        seen["imu"] = msg.header.stamp.sec
        order.append(("imu", msg.header.stamp.sec))

    def on_js(msg, info):
        order.append(("js", msg.header.stamp.sec, seen["imu"]))

    loop = ControlLoop(node, JointState, "joint_states", qos_profile_sensor_data, on_js, period_s=0.05,
                       on_deadline=lambda: None, extra=[(Imu, "imu", qos_profile_sensor_data, on_imu)]).start()
    imu_pub = node.create_publisher(Imu, "imu", 10)
    js_pub = node.create_publisher(JointState, "joint_states", 10)
    try:
        wait_for(lambda: imu_pub.get_subscription_count() and js_pub.get_subscription_count(), what="matched")
        for k in range(1, 11):
            imu, js = Imu(), JointState()
            imu.header.stamp.sec = js.header.stamp.sec = k
            imu_pub.publish(imu)
            time.sleep(0.005)
            js_pub.publish(js)
            wait_for(lambda: any(o[0] == "js" and o[1] == k for o in order), what=f"joint state {k}")
        ticks = [o for o in order if o[0] == "js"]
        assert [t[1] for t in ticks] == list(range(1, 11))
        assert all(t[2] == t[1] for t in ticks)          # every tick had its own step's base
        assert loop.counters["callback_errors"] == 0
    finally:
        loop.stop()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
