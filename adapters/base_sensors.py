"""A floating base's sensor messages (sensor_msgs/Imu, nav_msgs/Odometry) as the observation's base
channels (`sim.observation.BASE_SENSORS`), in one place for the live node, the bag writer and replay.

A bag carries them on the topics its ``custom_data`` names (``driftgate.base_topics``: JSON
{sensor: topic}), next to the joint-state roles: the demo's recorder and `simulate_bag` write it, and
replay and `drift-calibrate --bag` read it, so a floating-base robot replays as it ran.
"""
from __future__ import annotations

import json
import math
from typing import Any, Mapping, Sequence

import numpy as np

from sim.observation import odometry_values

BASE_TYPES = {"imu": "sensor_msgs/msg/Imu", "odometry": "nav_msgs/msg/Odometry",
              "task": "std_msgs/msg/Float64MultiArray"}   # the profile's task signals (observe.extra)
CUSTOM_KEY = "driftgate.base_topics"


def imu_values(msg: Any) -> tuple[float, ...]:
    """orientation (w x y z), angular velocity (x y z)."""
    o, w = msg.orientation, msg.angular_velocity
    return (o.w, o.x, o.y, o.z, w.x, w.y, w.z)


def odometry_msg_values(msg: Any) -> np.ndarray:
    """position, world-frame linear velocity (REP 105: the twist is in the child frame); NaNs (refused
    downstream as non-finite) when the orientation is not a rotation."""
    p, o, v = msg.pose.pose.position, msg.pose.pose.orientation, msg.twist.twist.linear
    try:
        return odometry_values((p.x, p.y, p.z), (o.w, o.x, o.y, o.z), (v.x, v.y, v.z))
    except ValueError:
        return np.full(6, math.nan)


def message_values(sensor: str, msg: Any) -> Sequence[float]:
    if sensor == "task":
        return [float(x) for x in msg.data]
    return imu_values(msg) if sensor == "imu" else odometry_msg_values(msg)


def bag_base_topics(custom: Mapping[str, str]) -> dict[str, str]:
    """{sensor: topic} a bag's custom data names ({} for a bag without base sensors)."""
    try:
        topics = json.loads(custom.get(CUSTOM_KEY) or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in topics.items() if k in BASE_TYPES} if isinstance(topics, dict) else {}


class BaseTracker:
    """The latest reading of each base sensor an observation map needs, fed by topic from a bag."""

    def __init__(self, sensors: Sequence[str], topics: Mapping[str, str], where: str = "bag") -> None:
        missing = [s for s in sensors if s not in topics]
        if missing:
            raise ValueError(f"{where}: the robot's observation needs {list(missing)} but the recording names no "
                             f"topic for them ({CUSTOM_KEY} in metadata.yaml)")
        self.sensors = tuple(sensors)
        self.by_topic = {topics[s]: s for s in self.sensors}
        self._latest: dict[str, np.ndarray] = {}
        self.refused = 0

    def update(self, topic: str, msg: Any) -> None:
        sensor = self.by_topic[topic]
        x = np.asarray(message_values(sensor, msg), dtype=np.float64)
        if np.isfinite(x).all():
            self._latest[sensor] = x
        else:
            self.refused += 1

    def current(self) -> list[np.ndarray] | None:
        """The readings in the map's order, or None until every sensor has spoken."""
        if len(self._latest) < len(self.sensors):
            return None
        return [self._latest[s] for s in self.sensors]


def write_base(bag, topics: Mapping[str, str], t_ns: int, readings: Mapping[str, Mapping[str, np.ndarray]],
               frames: Mapping[str, str]) -> None:
    """Write `sim.observation.base_readings` as Imu / Odometry messages into a `BagWriter`."""
    T = bag._ts.types
    header = bag._Header(stamp=bag._stamp(t_ns), frame_id="")
    Q, V3, P = T["geometry_msgs/msg/Quaternion"], T["geometry_msgs/msg/Vector3"], T["geometry_msgs/msg/Point"]

    def quat(q):
        return Q(x=float(q[1]), y=float(q[2]), z=float(q[3]), w=float(q[0]))

    def vec(v, cls=V3):
        return cls(x=float(v[0]), y=float(v[1]), z=float(v[2]))

    if "imu" in topics and "imu" in readings:
        r = readings["imu"]
        cov = np.zeros(9)
        acc_cov = np.zeros(9)
        acc_cov[0] = -1.0                                  # not provided
        msg = T[BASE_TYPES["imu"]](header=bag._Header(stamp=bag._stamp(t_ns), frame_id=frames.get("imu", "")),
                                   orientation=quat(r["orientation"]), orientation_covariance=cov,
                                   angular_velocity=vec(r["angular_velocity"]), angular_velocity_covariance=cov,
                                   linear_acceleration=vec((0.0, 0.0, 0.0)), linear_acceleration_covariance=acc_cov)
        bag.write(topics["imu"], t_ns, msg, BASE_TYPES["imu"])
    if "odometry" in topics and "odometry" in readings:
        r = readings["odometry"]
        cov = np.zeros(36)
        pose = T["geometry_msgs/msg/Pose"](position=vec(r["position"], P), orientation=quat(r["orientation"]))
        twist = T["geometry_msgs/msg/Twist"](linear=vec(r["linear_velocity"]), angular=vec(r["angular_velocity"]))
        msg = T[BASE_TYPES["odometry"]](
            header=T["std_msgs/msg/Header"](stamp=header.stamp, frame_id="odom"), child_frame_id=frames.get("odometry", ""),
            pose=T["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=cov),
            twist=T["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=cov))
        bag.write(topics["odometry"], t_ns, msg, BASE_TYPES["odometry"])
    if "task" in topics and "task" in readings:
        T_ = T[BASE_TYPES["task"]]
        layout = T["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
        msg = T_(layout=layout, data=np.asarray(readings["task"]["values"], dtype=np.float64))
        bag.write(topics["task"], t_ns, msg, BASE_TYPES["task"])
