"""`driftgate_sim_robot`: a MuJoCo plant behind ROS 2 topics, the stand-in robot for demos and tests.

It behaves like a ros2_control robot with a `joint_state_broadcaster` and a forward command
controller: every control period it applies the latest command (zero-order hold; after
``command_timeout_s`` without a command it applies zeros, as a hardware interface's watchdog would),
steps the physics one control tick and publishes `sensor_msgs/JointState` (positions, velocities, in
the plant's joint order, optionally renamed by ``joint_names``, plus ``sensor_noise_std`` Gaussian
encoder noise if set: a noise-free simulator is an unrealistically quiet robot, whose drift-monitor
residuals are numerically zero until the first hiccup of the command stream) and the plant's reward on
``~/reward`` (std_msgs/Float64) for reporting. ``effort`` carries the command applied over the step
to each actuated joint (0 for passive joints), as joint_state_broadcaster reports an effort
command interface (what a ros2_control incumbent is observed by: `adapters.ros.incumbent`).

Topic names are ROS names: relative by default (``joint_states``,
``forward_effort_controller/commands``), so a namespace or a remap moves them; ``~/`` ones are
private. ``use_sim_time: true`` puts the command timeout and the fall pause on ``/clock``
(`adapters.ros.node_clock`), as the stepping timer already is.

Drift is injected at run time, as a DriftSpec JSON:

- parameter ``drift`` (string; validated against the model in the parameter callback, so a bad spec
  is refused with a reason and the robot keeps its current dynamics), or
- topic ``~/inject_drift`` (std_msgs/String), for tools that cannot set parameters.

The active drift is published on ``~/drift_active`` (String, transient local). ``~/reset``
(std_srvs/Trigger) starts a new episode. std_srvs has no string-carrying service, hence the
parameter/topic pair for drift.

Falls (``reset_on_fall: true``, off by default): a balance controller cannot bring back a pole
that has fallen (it has no swing-up), and a real robot that crashed would be stopped and set
upright by an operator. So when a joint leaves ``fall_bounds`` (JSON ``{"joint": [low, high]}`` on
positions; default: the plant's hard state limits from `safety.constraints.default_limits`, i.e. the
envelope the gate demands of every candidate: for the cartpole the pole above horizontal and the
cart off its end stops) the node holds for ``fall_pause_s`` (publishing nothing, as a robot being
caught), then starts a new episode (the next seed) and carries on. Every fall is counted and
announced on ``~/falls`` (String, JSON {falls, episode, joint, value, time}, transient local), so a
report can show how often it happened. The pause leaves a gap in the joint-state stamps longer
than the drift monitor's ``gap_factor`` periods, so the monitor starts a new telemetry segment
there instead of reading the jump back to upright as dynamics (and the sandbox's system
identification never replays across it).

Clocking: a wall-clock timer at the plant's control rate by default. ``lockstep: true`` steps only
after a command arrived since the last published state (or the command timeout expired), so one
command = one physics tick whatever the CPU load; ``autostep: false`` creates no timer at all and a
test calls `step_once()` itself.
"""
from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Float64MultiArray, String
from std_srvs.srv import Trigger

from adapters.ros.node_clock import NodeClock, sim_time_change_refused
from adapters.ros.node_params import param_value
from sim.drift_spec import DriftSpec
from sim.plant_names import BUILTIN_HELP, DEFAULT_PLANT
from sim.plants import make_plant

NODE_NAME = "driftgate_sim_robot"

PARAMETERS: dict[str, tuple[Any, str, bool]] = {
    "robot": (DEFAULT_PLANT, f"the robot: a built-in name ({BUILTIN_HELP}) or a robot profile YAML", True),
    "seed": (0, "episode seed (reset uses seed, seed + 1, ...)", True),
    "rate_hz": (0.0, "physics/publish rate (0: the plant's control rate)", True),
    "joint_names": (Parameter.Type.STRING_ARRAY, "names published for the plant's joints (default: MuJoCo names)",
                    True),
    "joint_states_topic": ("joint_states", "sensor_msgs/JointState output (relative: in the node's namespace)",
                           True),
    "commands_topic": ("forward_effort_controller/commands", "Float64MultiArray command input", True),
    "command_timeout_s": (0.2, "no command for this long: apply zeros", True),
    "drift": ("", "DriftSpec JSON applied to the plant now ('' : nominal); changeable at run time", False),
    "lockstep": (False, "step only when a new command arrived (or the command timed out)", True),
    "autostep": (True, "create the stepping timer (false: call step_once() yourself)", True),
    "reset_on_fall": (False, "start a new episode when a joint leaves fall_bounds (an operator catching the "
                      "robot); counted on ~/falls", True),
    "fall_bounds": ("", 'JSON {"joint": [low, high]} on positions (\'\': the plant\'s hard state limits, '
                    "safety.constraints.default_limits)", True),
    "fall_pause_s": (0.05, "after a fall: publish nothing this long, then the new episode (a telemetry gap)", True),
    "sensor_noise_std": (0.0, "N(0, std) added to every published position and velocity (encoder noise)", True),
}


class SimRobotNode(Node):
    """See the module docstring."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for name, (default, desc, ro) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=desc, read_only=ro))
        self.plant = make_plant(self.p("robot"), seed=int(self.p("seed")))
        self.clock = NodeClock(self)
        self._actuated = self._actuated_joints()
        self._episode = 0
        names = list(self.p("joint_names") or self.plant.joint_names)
        if len(names) != len(self.plant.joint_names):
            raise ValueError(f"joint_names has {len(names)} names; plant {self.plant.name!r} has "
                             f"{self.plant.joint_names}")
        self.joint_names = names
        self.counters = {"steps": 0, "commands": 0, "bad_commands": 0, "timeouts": 0, "drift_applied": 0,
                         "drift_rejected": 0, "falls": 0}
        self.fall_bounds = self._fall_bounds() if self.p("reset_on_fall") else ()
        self._noise_std = float(self.p("sensor_noise_std"))
        self._noise_rng = np.random.default_rng([int(self.p("seed")), 7919])
        self._paused_until = -float("inf")
        self.last_reward = float("nan")
        self._command = np.zeros(self.plant.act_dim)
        self._applied = np.zeros(self.plant.act_dim)      # what the last step applied (JointState.effort)
        self._command_time = -float("inf")
        self._fresh_command = False
        self._published_once = False
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._js_pub = self.create_publisher(JointState, self.p("joint_states_topic"), reliable)
        self._reward_pub = self.create_publisher(Float64, "~/reward", reliable)
        self._drift_pub = self.create_publisher(String, "~/drift_active", latched)
        self._falls_pub = self.create_publisher(String, "~/falls", latched)
        self._base_pubs = self._make_base_publishers(reliable)
        self.create_subscription(Float64MultiArray, self.p("commands_topic"), self._on_command, reliable)
        self.create_subscription(String, "~/inject_drift", self._on_inject, reliable)
        self.create_service(Trigger, "~/reset", self._srv_reset)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        initial = self.p("drift")
        if initial:
            self.plant.apply_drift(initial)     # a bad spec at start-up is an error: raise
        self._publish_drift()
        rate = float(self.p("rate_hz")) or 1.0 / self.plant.control_dt
        self.period = 1.0 / rate
        if self.p("autostep"):
            self.create_timer(self.period, self._on_timer)

    def p(self, name: str) -> Any:
        return param_value(self, name)

    # -- drift ------------------------------------------------------------------------------------
    def apply_drift(self, spec: Any) -> DriftSpec:
        """Validate and apply a DriftSpec (raises ValueError and changes nothing if it is bad)."""
        applied = self.plant.apply_drift(DriftSpec.parse(spec))
        self.counters["drift_applied"] += 1
        self._publish_drift()
        self.get_logger().info(f"drift applied: {applied.to_json()} (hash {applied.hash[:12]})")
        return applied

    def _publish_drift(self) -> None:
        d = self.plant.drift
        self._drift_pub.publish(String(data=json.dumps({"drift": d.as_dict(), "hash": d.hash,
                                                        "time": time.time()})))

    def _actuated_joints(self) -> list[int]:
        """Published joint driven by each command (-1: none: no effort reported for it)."""
        return self.plant.command_joints()

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        refused = sim_time_change_refused(self.clock, params)
        if refused:
            return SetParametersResult(successful=False, reason=refused)
        for prm in params:
            if prm.name == "drift":
                try:
                    self.apply_drift(prm.value or None)
                except (ValueError, TypeError) as e:
                    self.counters["drift_rejected"] += 1
                    return SetParametersResult(successful=False, reason=f"bad DriftSpec: {e}")
        return SetParametersResult(successful=True)

    def _on_inject(self, msg: String) -> None:
        try:
            self.apply_drift(msg.data or None)
        except (ValueError, TypeError) as e:
            self.counters["drift_rejected"] += 1
            self.get_logger().error(f"~/inject_drift refused: {e}")

    # -- falls -------------------------------------------------------------------------------------
    def _fall_bounds(self) -> tuple[tuple[int, str, float | None, float | None], ...]:
        """(joint index, name, low, high) from ``fall_bounds`` or the plant's hard state limits."""
        raw = self.p("fall_bounds")
        if raw:
            bounds = json.loads(raw)
            if not isinstance(bounds, dict):
                raise ValueError('fall_bounds must be a JSON object {"joint": [low, high]}')
            items = [(j, (None if lohi[0] is None else float(lohi[0]), None if lohi[1] is None else float(lohi[1])))
                     for j, lohi in bounds.items()]
        else:
            from safety.constraints import default_limits
            limits = default_limits(self.plant)
            if not limits.state:
                raise ValueError(f"reset_on_fall: no default fall bounds for plant {self.plant.name!r}; "
                                 "set fall_bounds")
            items = [(j, (lo, hi)) for j, lo, hi in limits.state]
        names = list(self.plant.joint_names)
        out = []
        for joint, (lo, hi) in items:
            if joint not in names:
                raise ValueError(f"fall_bounds: unknown joint {joint!r}; joints: {names}")
            out.append((names.index(joint), joint, lo, hi))
        return tuple(out)

    def _fallen(self) -> tuple[str, float] | None:
        """(joint, position) of the first joint outside its fall bounds, or None."""
        if not self.fall_bounds:
            return None
        q = self.plant.joint_positions()
        for i, name, lo, hi in self.fall_bounds:
            x = float(q[i])
            if (lo is not None and x < lo) or (hi is not None and x > hi):
                return name, x
        return None

    def _on_fall(self, joint: str, value: float) -> None:
        """Count the fall, hold for fall_pause_s, start the next episode."""
        self.counters["falls"] += 1
        self._new_episode()
        self._paused_until = self.clock() + float(self.p("fall_pause_s"))
        self._falls_pub.publish(String(data=json.dumps({
            "falls": self.counters["falls"], "episode": self._episode, "joint": joint, "value": value,
            "time": time.time()})))

    def _new_episode(self) -> int:
        self._episode += 1
        seed = int(self.p("seed")) + self._episode
        self.plant.reset(seed)
        self._fresh_command = False
        self._command = np.zeros(self.plant.act_dim)
        self._applied = np.zeros(self.plant.act_dim)
        return seed

    # -- commands and stepping --------------------------------------------------------------------
    def _on_command(self, msg: Float64MultiArray) -> None:
        a = np.asarray(msg.data, dtype=np.float64)
        if a.shape != (self.plant.act_dim,) or not np.isfinite(a).all():
            self.counters["bad_commands"] += 1
            return
        if self.clock() < self._paused_until:
            return      # computed from the fallen robot's last state: the new episode starts from zeros
        self._command = a
        self._command_time = self.clock()
        self._fresh_command = True
        self.counters["commands"] += 1

    def _on_timer(self) -> None:
        if not self._published_once:
            self.publish_state()
            return
        if self._paused_until > -float("inf"):
            if self.clock() < self._paused_until:
                return                          # being caught: no physics, nothing published
            self._paused_until = -float("inf")
            self.publish_state()                # the new episode's first state, after the gap
            return
        if self.p("lockstep") and not self._fresh_command and \
                self.clock() - self._command_time < float(self.p("command_timeout_s")):
            return
        self.step_once()

    def step_once(self) -> float:
        """Apply the held command (zeros after the timeout), step one control tick, publish."""
        if self.clock() - self._command_time > float(self.p("command_timeout_s")):
            action = np.zeros(self.plant.act_dim)
            self.counters["timeouts"] += 1
        else:
            action = self._command
        self._applied = np.clip(action, self.plant.act_low, self.plant.act_high)
        self._fresh_command = False
        _, reward = self.plant.act(action)
        self.last_reward = float(reward)
        self.counters["steps"] += 1
        fell = self._fallen()
        if fell is not None:     # the fall step's reward goes out with the new episode's first state
            self._on_fall(*fell)
            if not self.p("autostep"):         # stepped by hand: no timer to end the pause
                self._paused_until = -float("inf")
                self.publish_state()
            return self.last_reward
        self.publish_state()
        return self.last_reward

    def publish_state(self) -> None:
        msg = JointState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.name = self.joint_names
        q, v = self.plant.joint_positions(), self.plant.joint_velocities()
        if self._noise_std > 0:      # what encoders report; the physics (and fall checks) use the true state
            q = q + self._noise_std * self._noise_rng.standard_normal(q.shape)
            v = v + self._noise_std * self._noise_rng.standard_normal(v.shape)
        msg.position = q.tolist()
        msg.velocity = v.tolist()
        effort = [0.0] * len(self.joint_names)
        for a, j in enumerate(self._actuated):
            if j >= 0:
                effort[j] += float(self._applied[a])
        msg.effort = effort
        if self._base_pubs:        # before the joint state: a tick triggered by it finds them fresh
            self.publish_base(msg.header.stamp)
        self._js_pub.publish(msg)
        if self.counters["steps"]:
            self._reward_pub.publish(Float64(data=self.last_reward))
        self._published_once = True

    # -- a floating base: what its IMU and odometry report (robot profiles that list them) -------------
    def _make_base_publishers(self, qos) -> dict:
        """sensor_msgs/Imu and nav_msgs/Odometry publishers on the topics the robot profile names."""
        from sim.observation import live_profile
        profile = live_profile(self.plant)
        if profile is None:
            return {}
        pubs, observe = {}, profile.doc.observe
        if observe.extra is not None:      # the task signals (a moving target) on their own topic
            pubs["task"] = self.create_publisher(Float64MultiArray, observe.extra.topic, qos)
        if observe.imu is not None:
            from sensor_msgs.msg import Imu
            pubs["imu"] = self.create_publisher(Imu, observe.imu.topic, qos)
        if observe.odometry is not None:
            from nav_msgs.msg import Odometry
            pubs["odometry"] = self.create_publisher(Odometry, observe.odometry.topic, qos)
        return pubs

    def _noisy(self, x: np.ndarray) -> np.ndarray:
        return x + self._noise_std * self._noise_rng.standard_normal(x.shape) if self._noise_std > 0 else x

    def publish_base(self, stamp) -> None:
        """The IMU and odometry readings of the robot's current state (`sim.observation.base_readings`),
        with the node's sensor noise on everything but orientations; the task signals (a moving target)."""
        from sim.observation import base_readings
        from sim.observation import live_profile
        readings = {k: v for k, v in base_readings(self.plant).items() if k in self._base_pubs}
        observe = live_profile(self.plant).doc.observe
        if "task" in readings:             # exact, as a task planner publishes them
            self._base_pubs["task"].publish(Float64MultiArray(data=[float(x) for x in readings["task"]["values"]]))
        if "imu" in readings:
            from sensor_msgs.msg import Imu
            imu = readings["imu"]
            msg = Imu()
            msg.header.stamp, msg.header.frame_id = stamp, observe.imu.site or observe.imu.body
            o, w = msg.orientation, msg.angular_velocity
            o.w, o.x, o.y, o.z = (float(c) for c in imu["orientation"])
            w.x, w.y, w.z = (float(c) for c in self._noisy(imu["angular_velocity"]))
            msg.linear_acceleration_covariance[0] = -1.0        # not provided
            self._base_pubs["imu"].publish(msg)
        if "odometry" in readings:
            from nav_msgs.msg import Odometry
            odom = readings["odometry"]
            msg = Odometry()
            msg.header.stamp, msg.header.frame_id, msg.child_frame_id = stamp, "odom", observe.odometry.body
            p, o, t = msg.pose.pose.position, msg.pose.pose.orientation, msg.twist.twist
            p.x, p.y, p.z = (float(c) for c in self._noisy(odom["position"]))
            o.w, o.x, o.y, o.z = (float(c) for c in odom["orientation"])
            t.linear.x, t.linear.y, t.linear.z = (float(c) for c in self._noisy(odom["linear_velocity"]))
            t.angular.x, t.angular.y, t.angular.z = (float(c) for c in self._noisy(odom["angular_velocity"]))
            self._base_pubs["odometry"].publish(msg)

    def _srv_reset(self, request, response):
        seed = self._new_episode()
        response.success, response.message = True, f"episode {self._episode} (seed {seed})"
        return response


def main(args: list[str] | None = None) -> None:
    """`ros2 run driftgate driftgate_sim_robot --ros-args --params-file FILE` entry point."""
    from adapters.ros.spin import run_nodes
    run_nodes([lambda ctx: SimRobotNode(context=ctx)], args=args if args is not None else sys.argv)


if __name__ == "__main__":
    main()
