"""The demo: a simulated MuJoCo robot (the cartpole unless `robot:=`) and the driftgate controller driving it.

    ros2 launch driftgate demo.launch.py [params_file:=FILE] [namespace:=NS] [robot:=PLANT]
                                         [use_sim_time:=true|false]

Both nodes read launch/demo.yaml (robot-neutral), then what the robot's profile gives them
(`adapters.demo.node_parameters`: champion, regression suite, drift-monitor calibration, control rate,
guard bounds, the robot's launch/robots/demo/NAME.yaml). The controller's `ros.autostart: true` there makes it configure and
activate itself (no lifecycle events are emitted here, so the two never race). Inject a drift with
`ros2 param set /driftgate_sim_robot drift '<DriftSpec JSON>'` and watch `/driftgate_controller/events`
and `/diagnostics`. The same demo runs in a plain venv with `driftgate node demo`.

Every topic of both nodes is relative, so `namespace:=robot_a` runs the pair under `/robot_a`
(`/robot_a/joint_states`, `/robot_a/driftgate_controller/events`, ...); two launches with two
namespaces are two independent robots on one graph. `robot` sets the robot of both nodes (empty:
the YAML's).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare


def nodes(context):
    params_file = LaunchConfiguration("params_file")
    namespace = LaunchConfiguration("namespace")
    extra = {"use_sim_time": LaunchConfiguration("use_sim_time").perform(context).lower() == "true"}
    robot = LaunchConfiguration("robot").perform(context)
    from adapters.demo import node_parameters
    sim_p, ctl_p = node_parameters(robot or None, params_file.perform(context), namespace.perform(context))
    return [
        Node(
            package="driftgate",
            executable="driftgate_sim_robot",
            name="driftgate_sim_robot",
            namespace=namespace,
            parameters=[params_file, sim_p, extra],
            output="screen",
            emulate_tty=True,
        ),
        LifecycleNode(
            package="driftgate",
            executable="driftgate_controller",
            name="driftgate_controller",
            namespace=namespace,
            parameters=[params_file, ctl_p, extra],
            output="screen",
            emulate_tty=True,
        ),
    ]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("driftgate"), "launch", "demo.yaml"]),
            description="ROS 2 parameter file with driftgate_sim_robot and driftgate_controller sections"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of both nodes"),
        DeclareLaunchArgument("robot", default_value="", description="robot of both nodes (built-in name or profile); empty: the YAML's"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="follow /clock"),
        OpaqueFunction(function=nodes),
    ])
