"""`driftgate_sim_robot`: a MuJoCo plant behind ROS 2 topics, the stand-in robot for demos and tests.

It behaves like a ros2_control robot with a `joint_state_broadcaster` and a forward command
controller: every control period it applies the latest command (zero-order hold; after
``command_timeout_s`` without a command it applies zeros, as a hardware interface's watchdog would),
steps the physics one control tick and publishes `sensor_msgs/JointState` (positions, velocities, in
the plant's joint order, optionally renamed by ``joint_names``) and the plant's reward on
``~/reward`` (std_msgs/Float64) for reporting.

Drift is injected at run time, as a DriftSpec JSON:

- parameter ``drift`` (string; validated against the model in the parameter callback, so a bad spec
  is refused with a reason and the robot keeps its current dynamics), or
- topic ``~/inject_drift`` (std_msgs/String), for tools that cannot set parameters.

The active drift is published on ``~/drift_active`` (String, transient local). ``~/reset``
(std_srvs/Trigger) starts a new episode. std_srvs has no string-carrying service, hence the
parameter/topic pair for drift.

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
import rclpy
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Float64MultiArray, String
from std_srvs.srv import Trigger

from sim.drift_spec import DriftSpec
from sim.plants import make_plant

NODE_NAME = "driftgate_sim_robot"

PARAMETERS: dict[str, tuple[Any, str, bool]] = {
    "plant": ("cartpole", "cartpole | walker | reacher", True),
    "seed": (0, "episode seed (reset uses seed, seed + 1, ...)", True),
    "rate_hz": (0.0, "physics/publish rate (0: the plant's control rate)", True),
    "joint_names": (Parameter.Type.STRING_ARRAY, "names published for the plant's joints (default: MuJoCo names)",
                    True),
    "joint_states_topic": ("/joint_states", "sensor_msgs/JointState output", True),
    "commands_topic": ("/forward_effort_controller/commands", "Float64MultiArray command input", True),
    "command_timeout_s": (0.2, "no command for this long: apply zeros", True),
    "drift": ("", "DriftSpec JSON applied to the plant now ('' : nominal); changeable at run time", False),
    "lockstep": (False, "step only when a new command arrived (or the command timed out)", True),
    "autostep": (True, "create the stepping timer (false: call step_once() yourself)", True),
}


class SimRobotNode(Node):
    """See the module docstring."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for name, (default, desc, ro) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=desc, read_only=ro))
        self.plant = make_plant(self.p("plant"), seed=int(self.p("seed")))
        self._episode = 0
        names = list(self.p("joint_names") or self.plant.joint_names)
        if len(names) != len(self.plant.joint_names):
            raise ValueError(f"joint_names has {len(names)} names; plant {self.plant.name!r} has "
                             f"{self.plant.joint_names}")
        self.joint_names = names
        self.counters = {"steps": 0, "commands": 0, "bad_commands": 0, "timeouts": 0, "drift_applied": 0,
                         "drift_rejected": 0}
        self.last_reward = float("nan")
        self._command = np.zeros(self.plant.act_dim)
        self._command_time = -float("inf")
        self._fresh_command = False
        self._published_once = False
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._js_pub = self.create_publisher(JointState, self.p("joint_states_topic"), reliable)
        self._reward_pub = self.create_publisher(Float64, "~/reward", reliable)
        self._drift_pub = self.create_publisher(String, "~/drift_active", latched)
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
        try:
            v = self.get_parameter(name).value
        except ParameterUninitializedException:
            return []
        return [] if v is None else v

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

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
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

    # -- commands and stepping --------------------------------------------------------------------
    def _on_command(self, msg: Float64MultiArray) -> None:
        a = np.asarray(msg.data, dtype=np.float64)
        if a.shape != (self.plant.act_dim,) or not np.isfinite(a).all():
            self.counters["bad_commands"] += 1
            return
        self._command = a
        self._command_time = time.monotonic()
        self._fresh_command = True
        self.counters["commands"] += 1

    def _on_timer(self) -> None:
        if not self._published_once:
            self.publish_state()
            return
        if self.p("lockstep") and not self._fresh_command and \
                time.monotonic() - self._command_time < float(self.p("command_timeout_s")):
            return
        self.step_once()

    def step_once(self) -> float:
        """Apply the held command (zeros after the timeout), step one control tick, publish."""
        if time.monotonic() - self._command_time > float(self.p("command_timeout_s")):
            action = np.zeros(self.plant.act_dim)
            self.counters["timeouts"] += 1
        else:
            action = self._command
        self._fresh_command = False
        _, reward = self.plant.act(action)
        self.last_reward = float(reward)
        self.counters["steps"] += 1
        self.publish_state()
        return self.last_reward

    def publish_state(self) -> None:
        msg = JointState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.name = self.joint_names
        msg.position = self.plant.joint_positions().tolist()
        msg.velocity = self.plant.joint_velocities().tolist()
        self._js_pub.publish(msg)
        if self.counters["steps"]:
            self._reward_pub.publish(Float64(data=self.last_reward))
        self._published_once = True

    def _srv_reset(self, request, response):
        self._episode += 1
        self.plant.reset(int(self.p("seed")) + self._episode)
        self._fresh_command = False
        self._command = np.zeros(self.plant.act_dim)
        seed = int(self.p("seed")) + self._episode
        response.success, response.message = True, f"episode {self._episode} (seed {seed})"
        return response


def main(args: list[str] | None = None) -> None:
    """`ros2 run driftgate driftgate_sim_robot --ros-args --params-file FILE` entry point."""
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    rclpy.init(args=args if args is not None else sys.argv)
    node = SimRobotNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
