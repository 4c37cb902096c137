"""The controller node's ROS entities, made at configure from the settings tree: publishers,
subscriptions, timers, services and the control loop (`adapters.ros.control_loop`). Each is added
with `node._add`, so cleanup destroys them in reverse order (the control loop first)."""
from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Float64MultiArray, String
from std_srvs.srv import Trigger

from adapters.ros.control_loop import ControlLoop
from controller.settings import Settings


def base_inputs(node) -> list[tuple]:
    """(message type, topic, callback) of each base sensor the robot's observation needs."""
    topics = getattr(node.runtime.obs_map, "base_topics", {})
    out = []
    if "imu" in topics:
        from sensor_msgs.msg import Imu
        out.append((Imu, topics["imu"], node._on_imu))
    if "task" in topics:             # the profile's task signals (a moving target)
        from std_msgs.msg import Float64MultiArray
        out.append((Float64MultiArray, topics["task"], node._on_task))
    if "odometry" in topics:
        from nav_msgs.msg import Odometry
        out.append((Odometry, topics["odometry"], node._on_odometry))
    return out


def make_entities(node, st: Settings) -> None:
    """Publishers, subscriptions, timers, services and the control loop of `node` (a ControllerNode)."""
    ros, rate_hz = st.ros, float(st.runtime.rate_hz)
    control = MutuallyExclusiveCallbackGroup()
    inputs = MutuallyExclusiveCallbackGroup()
    slow = MutuallyExclusiveCallbackGroup()
    services = MutuallyExclusiveCallbackGroup()
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    latched = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pub = lambda t, name, qos: node._add("publisher", node.create_publisher(t, name, qos))  # noqa: E731
    node._cmd_pub = pub(Float64MultiArray, ros.commands_topic, reliable)
    node._shadow_pub = pub(Float64MultiArray, "~/shadow_commands", reliable)
    node._cmp_pub = pub(String, "~/comparison", reliable)
    node._events_pub = pub(String, "~/events", latched)
    node._diag_pub = pub(DiagnosticArray, "/diagnostics", reliable)
    node._tick_on_message = st.runtime.trigger == "joint_states"
    own_thread = bool(ros.control_thread)
    sub = lambda t, topic, cb: node._add("subscription", node.create_subscription(  # noqa: E731
        t, topic, cb, qos_profile_sensor_data, callback_group=inputs))
    if not own_thread:
        sub(JointState, ros.joint_states_topic, node._on_joint_state)
    if node._effort_incumbent is None:
        sub(Float64MultiArray, ros.incumbent_topic, node._on_incumbent)
    if ros.reward_topic:
        sub(Float64, ros.reward_topic, node._on_reward)
    # a floating base: the IMU and odometry topics the robot profile names (relative: in the namespace).
    # With a control thread they are taken in its wait set, ahead of each wake-up's joint states
    # (ControlLoop extra inputs): through the executor, 22-34 % of the live ant's ticks saw the previous
    # step's base, which the drift monitor reads as dynamics
    base = base_inputs(node)
    if not own_thread:
        for msg_type, topic, cb in base:
            sub(msg_type, topic, cb)
    # trigger joint_states: a silent topic would mean no tick at all, hence no safe command and no
    # ERROR on /diagnostics. A watchdog (never concurrent with the joint-state callback) ticks only
    # when no tick ran for stale_timeout_s; that tick holds the safe command and reports
    # stale/waiting. Its period is stale_timeout_s / 2, not 1 / rate_hz: free while data flows.
    node._stale_s = float(st.runtime.stale_timeout_s)
    if own_thread:
        pass                                # the control loop (added last, below) ticks and watches
    elif node._tick_on_message:
        node._add("timer", node.create_timer(node._stale_s / 2.0, node._on_watchdog, callback_group=inputs))
    else:
        node._add("timer", node.create_timer(1.0 / rate_hz, node._on_tick, callback_group=control))
    node._add("timer", node.create_timer(float(st.orchestrator.step_s), node._on_step, callback_group=slow))
    node._add("timer", node.create_timer(1.0 / float(ros.diagnostics_rate_hz), node._on_diagnostics,
                                         callback_group=slow))
    for name, cb in (("~/promote", node._srv_promote), ("~/rollback", node._srv_rollback),
                     ("~/status", node._srv_status)):
        node._add("service", node.create_service(Trigger, name, cb, callback_group=services))
    if own_thread:   # last: destroyed first, before the publishers it uses
        period, deadline = ((node._stale_s / 2.0, node._on_watchdog) if node._tick_on_message
                            else (1.0 / rate_hz, node._on_tick))
        # a flood never delays the tick: at most max_joint_states_per_tick per control period (timer),
        # or per 1/rate_hz of the watchdog period (joint_states trigger); the rest is dropped, counted
        per_period = int(ros.max_joint_states_per_tick) * max(1, round(period * rate_hz))
        node.control_loop = node._add("control_loop", ControlLoop(
            node, JointState, ros.joint_states_topic, qos_profile_sensor_data, node._on_joint_state,
            period_s=period, on_deadline=deadline, priority=int(ros.realtime_priority),
            max_messages=per_period, name=f"{node.get_name()}_control", clock=node.clock,
            extra=[(t, topic, qos_profile_sensor_data, cb) for t, topic, cb in base])).start()
