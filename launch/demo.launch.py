"""The demo: a simulated MuJoCo cartpole and the driftgate controller driving it.

    ros2 launch driftgate demo.launch.py [params_file:=FILE]

Both nodes read launch/demo.yaml. The controller's `autostart: true` there makes it configure and
activate itself (no lifecycle events are emitted here, so the two never race). Inject a drift with
`ros2 param set /driftgate_sim_robot drift '<DriftSpec JSON>'` and watch `/driftgate_controller/events`
and `/diagnostics`. The same demo runs in a plain venv with `driftgate node demo`.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    params_file = LaunchConfiguration("params_file")
    return LaunchDescription([
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("driftgate"), "launch", "demo.yaml"]),
            description="ROS 2 parameter file with driftgate_sim_robot and driftgate_controller sections"),
        Node(
            package="driftgate",
            executable="driftgate_sim_robot",
            name="driftgate_sim_robot",
            parameters=[params_file],
            output="screen",
            emulate_tty=True,
        ),
        LifecycleNode(
            package="driftgate",
            executable="driftgate_controller",
            name="driftgate_controller",
            namespace="",
            parameters=[params_file],
            output="screen",
            emulate_tty=True,
        ),
    ])
