"""A floating base over real DDS: the control thread takes the IMU / odometry in its own wait set, ahead
of the joint states of each wake-up, so a tick sees the base of its own step (the gymnasium ant)."""
import os
import time

import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
from waiting import wait_for  # noqa: E402
from sensor_msgs.msg import Imu, JointState  # noqa: E402


NS = f"/dgb{os.getpid()}"
pytestmark = pytest.mark.ros


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
