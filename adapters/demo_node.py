"""The demo's own ROS node (`adapters.demo`): it records the bag (`BagRecorder`) and the decisions
file (`DecisionRecorder`), publishes the drift injection, and keeps what the driver and the display
read (`DemoState`)."""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

SIM_ROBOT = "driftgate_sim_robot"
DEMO_NODE = "driftgate_demo"


class DemoState:
    """What the driver knows (read by the display)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.armed_at: float | None = None
        self.injected_at: float | None = None
        self.injected_wall: float | None = None     # time.time() of the injection (orchestrator events use it)
        self.inject_note = ""
        self.story = "nominal: the champion drives, the drift monitor warms up"
        self.done_at: float | None = None
        self.stop_reason = ""
        self.rewards: deque = deque()       # (t, reward) of the last second
        self.falls = 0
        self.fall_times: deque = deque(maxlen=200)
        self.lock = threading.Lock()

    def now(self) -> float:
        return time.monotonic() - self.t0


def demo_topics(node) -> dict[str, str]:
    """The recorded roles' topics as the nodes use them: relative names resolved in `node`'s
    namespace (``/diagnostics`` stays absolute)."""
    from adapters.recording import DEFAULT_TOPICS
    return {role: t if role == "diagnostics" else node.resolve_topic_name(t.lstrip("/"))
            for role, t in DEFAULT_TOPICS.items()}


def base_topics(node, plant: str) -> dict[str, str]:
    """{sensor: resolved topic} of the base sensors a profile robot publishes ({} for none)."""
    from sim.observation import make_observation_map
    topics = getattr(make_observation_map(plant), "base_topics", {})
    return {sensor: node.resolve_topic_name(t.lstrip("/")) for sensor, t in topics.items()}


def make_demo_node(ctx, out: Path, plant: str, config: dict, seed: int, registry: Path, state: DemoState,
                   namespace: str = ""):
    """The recording node: BagRecorder + DecisionRecorder + the drift publisher + live counters."""
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Float64, String

    from adapters.bag_recorder import BagRecorder
    from adapters.base_sensors import BASE_TYPES, CUSTOM_KEY
    from adapters.decision_recorder import DecisionRecorder
    from sim.observation import plant_info

    class DemoNode(Node):
        def __init__(self) -> None:
            super().__init__(DEMO_NODE, context=ctx, namespace=namespace)
            self.state = state
            info = plant_info(plant)
            topics = demo_topics(self)
            self.falls_topic = self.resolve_topic_name(f"{SIM_ROBOT}/falls")
            extra = {self.falls_topic: "std_msgs/msg/String"}
            custom = {"driftgate.source": "driftgate demo", "driftgate.seed": str(seed)}
            base = base_topics(self, plant)           # a floating base: its IMU / odometry go into the bag
            if base:
                extra.update({topic: BASE_TYPES[sensor] for sensor, topic in base.items()})
                custom[CUSTOM_KEY] = json.dumps(base, sort_keys=True)
            self.bag = BagRecorder(self, out / "bag", topics=topics, plant=plant, joint_names=info["joint_names"],
                                   control_dt=info["control_dt"], extra=extra, custom_data=custom)
            try:
                self.decisions = DecisionRecorder(self, out / "decisions.jsonl", plant=plant, config=config,
                                                  topics=topics, seed=seed, registry_path=registry,
                                                  falls_topic=self.falls_topic)
            except Exception:
                self.bag.abort()
                raise
            reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
            latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self._inject = self.create_publisher(String, f"{SIM_ROBOT}/inject_drift", reliable)
            self.create_subscription(Float64, topics["reward"], self._on_reward, reliable)
            self.create_subscription(String, self.falls_topic, self._on_fall, latched)
            self.closed = False
            self.end_extra: Callable[[], dict] = lambda: {}

        def _on_reward(self, msg) -> None:
            st = self.state
            t = st.now()
            with st.lock:
                st.rewards.append((t, float(msg.data)))
                while st.rewards and st.rewards[0][0] < t - 1.0:
                    st.rewards.popleft()

        def _on_fall(self, msg) -> None:
            try:
                n = int(json.loads(msg.data).get("falls"))
            except (ValueError, TypeError, AttributeError):
                return
            st = self.state
            with st.lock:
                if n > st.falls:
                    st.falls = n
                    st.fall_times.append(st.now())

        def inject(self, drift: dict) -> None:
            self._inject.publish(String(data=json.dumps(drift)))

        def _teardown(self) -> None:     # run_nodes calls it before destroy_node
            if self.closed:
                return
            self.closed = True
            try:
                extra = self.end_extra()
            except Exception as e:       # the end record must still be written
                extra = {"end_error": str(e)}
            self.decisions.close(**extra)
            self.bag.close()

    return DemoNode()


def quiet_logs(node) -> None:
    """Node INFO logs would scroll through the live display; warnings and errors still show."""
    try:
        from rclpy.logging import LoggingSeverity
        node.get_logger().set_level(LoggingSeverity.WARN)
    except Exception:
        pass
