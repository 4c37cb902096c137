"""A real DDS round trip on loopback: rclpy from the ros-rclpy[fastrtps] wheels publishes a
sensor_msgs/JointState and a second node receives it."""
import os
import time

import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
from sensor_msgs.msg import JointState  # noqa: E402


def test_joint_state_round_trip_on_loopback():
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        pub_node = rclpy.create_node("driftgate_smoke_pub", context=context)
        sub_node = rclpy.create_node("driftgate_smoke_sub", context=context)
        received = []
        sub_node.create_subscription(JointState, "/driftgate_smoke/joint_states", received.append, 10)
        pub = pub_node.create_publisher(JointState, "/driftgate_smoke/joint_states", 10)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(pub_node)
        executor.add_node(sub_node)
        deadline = time.monotonic() + 20.0
        while not received and time.monotonic() < deadline:
            msg = JointState()
            msg.header.stamp = pub_node.get_clock().now().to_msg()
            msg.name = ["slider", "hinge_1"]
            msg.position = [0.25, -0.5]
            msg.velocity = [0.0, 1.5]
            pub.publish(msg)
            executor.spin_once(timeout_sec=0.05)
        assert received, "no JointState arrived over DDS within 20 s"
        got = received[0]
        assert list(got.name) == ["slider", "hinge_1"]
        assert list(got.position) == [0.25, -0.5] and list(got.velocity) == [0.0, 1.5]
        executor.shutdown()
        pub_node.destroy_node()
        sub_node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
