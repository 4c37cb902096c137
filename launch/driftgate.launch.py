"""Launch the driftgate controller as a managed (lifecycle) node in a ros2_control stack.

    ros2 launch driftgate driftgate.launch.py [params_file:=FILE] [autostart:=true|false] [namespace:=NS]

With autostart (default) the launch system drives the lifecycle: configure, then activate once the
node reports `inactive`. With autostart:=false the node waits in `unconfigured` for a lifecycle
manager (e.g. `ros2 lifecycle set /driftgate_controller configure`). Keep the YAML's own `autostart`
false here, or the node and the launch file would both configure it.

Remap `commands_topic` / `joint_states_topic` in the YAML to your controllers' topics, e.g. a
forward_command_controller named `forward_effort_controller` listens on
`/forward_effort_controller/commands`.
"""
import lifecycle_msgs.msg
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    params_file = LaunchConfiguration("params_file")
    autostart = LaunchConfiguration("autostart")
    namespace = LaunchConfiguration("namespace")

    controller = LifecycleNode(
        package="driftgate",
        executable="driftgate_controller",
        name="driftgate_controller",
        namespace=namespace,
        parameters=[params_file],
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
    return LaunchDescription([
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("driftgate"), "launch", "driftgate.yaml"]),
            description="ROS 2 parameter file with a driftgate_controller section"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="configure and activate the controller from the launch file"),
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        activate_when_inactive,
        controller,
        configure,
    ])
