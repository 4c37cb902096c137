"""Launch the driftgate controller as a managed (lifecycle) node in a ros2_control stack.

    ros2 launch driftgate driftgate.launch.py [params_file:=FILE] [namespace:=NS] [robot:=PLANT]
                                              [autostart:=true|false] [use_sim_time:=true|false]

With autostart (default) the launch system drives the lifecycle: configure, then activate once the
node reports `inactive`. With autostart:=false the node waits in `unconfigured` for a lifecycle
manager (e.g. `ros2 lifecycle set /driftgate_controller configure`). Keep the YAML's own `ros.autostart`
false here, or the node and the launch file would both configure it.

Topic names in the YAML are relative (`joint_states`, `forward_effort_controller/commands`), so
`namespace:=robot_a` moves them all under `/robot_a`, next to that robot's controller_manager; a
second robot is a second launch with another namespace, not another YAML. Remap what does not fit
from an including launch file (`Node(remappings=...)` / `--ros-args -r`), e.g.
`joint_states:=/robot_a/broadcaster/joint_states`. `robot` names the robot model (for now the
simulated plant the policies were evolved for: the `robot` parameter); empty keeps the YAML's.
"""
import lifecycle_msgs.msg
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.substitutions import FindPackageShare


def overrides(context):
    """Parameters from the launch arguments, on top of params_file: `robot` -> robot (if given)."""
    out = {"use_sim_time": LaunchConfiguration("use_sim_time").perform(context).lower() == "true"}
    robot = LaunchConfiguration("robot").perform(context)
    if robot:
        out["robot"] = robot
    return out


def controller_actions(context):
    autostart = LaunchConfiguration("autostart")
    controller = LifecycleNode(
        package="driftgate",
        executable="driftgate_controller",
        name="driftgate_controller",
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file"), overrides(context)],
        output="screen",
        emulate_tty=True,
    )
    configure = EmitEvent(
        event=ChangeState(lifecycle_node_matcher=matches_action(controller),
                          transition_id=lifecycle_msgs.msg.Transition.TRANSITION_CONFIGURE),
        condition=IfCondition(autostart),
    )
    activate_when_inactive = RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=controller,
            goal_state="inactive",
            entities=[EmitEvent(event=ChangeState(
                lifecycle_node_matcher=matches_action(controller),
                transition_id=lifecycle_msgs.msg.Transition.TRANSITION_ACTIVATE))],
        ),
        condition=IfCondition(autostart),
    )
    return [activate_when_inactive, controller, configure]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("driftgate"), "launch", "driftgate.yaml"]),
            description="ROS 2 parameter file with a driftgate_controller section"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="node namespace: every relative topic of the node moves under it"),
        DeclareLaunchArgument("robot", default_value="",
                              description="robot: a built-in name or a robot profile YAML; empty: params_file's"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="configure and activate the controller from the launch file"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="follow /clock (ros2 bag play --clock, a simulator)"),
        OpaqueFunction(function=controller_actions),
    ])
