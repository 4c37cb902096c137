"""Live recording: a bag (`adapters.recording`) written from inside a running rclpy node, every
message serialised as received and stamped with the node clock at reception."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from adapters.recording import (DEFAULT_TOPICS, LATCHED_ROLES, ROLE_TYPES, ROLES, BagWriter, CloseOnExit,
                                RecordingError)


def _ros_type(msgtype: str):
    """'sensor_msgs/msg/JointState' -> the rclpy message class."""
    import importlib
    pkg, sub, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{sub}"), name)


class BagRecorder(CloseOnExit):
    """Records topics of a running ROS 2 graph into a bag, from inside an rclpy node.

    ``recorder = BagRecorder(node, "runs/demo/bag", plant="my_robot.yaml")`` subscribes to the default
    driftgate topics (`DEFAULT_TOPICS`, override per role with ``topics={"commands": "/x"}``; extra
    topics as ``extra={"/topic": "pkg/msg/Type"}``) and writes every message, serialised as received
    (``raw=True`` subscriptions), stamped with the node clock at reception. Call `close()` (or use it
    as a context manager) to finish the bag; `abort()` drops it. `counts` = messages per topic.

    QoS: reliable, depth 1000; transient-local for the latched roles (events, drift_active), so a
    recorder started late still gets the last drift and the event history the node keeps.
    """

    def __init__(self, node, path: str | os.PathLike, *, topics: Mapping[str, str] | None = None,
                 roles: Sequence[str] | None = None, extra: Mapping[str, str] | None = None,
                 plant: str | None = None, joint_names: Sequence[str] | None = None,
                 control_dt: float | None = None, custom_data: Mapping[str, Any] | None = None,
                 callback_group=None, depth: int = 1000, clock: Callable[[], int] | None = None) -> None:
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        self.node = node
        mapping = {**DEFAULT_TOPICS, **dict(topics or {})}
        use = list(roles) if roles is not None else list(ROLES)
        bad = sorted(set(use) - set(ROLES))
        if bad:
            raise RecordingError(f"unknown role(s) {bad}; roles: {list(ROLES)}")
        self.writer = BagWriter(path, plant=plant, joint_names=joint_names, control_dt=control_dt,
                                topics={r: mapping[r] for r in ROLES}, custom_data=custom_data)
        self._clock = clock or (lambda: node.get_clock().now().nanoseconds)
        self._subs = []
        self.errors = 0
        wanted = {mapping[r]: (ROLE_TYPES[r], r in LATCHED_ROLES) for r in use}
        for topic, msgtype in (extra or {}).items():
            wanted[topic] = (msgtype, False)
        try:
            for topic, (msgtype, latched) in wanted.items():
                cls = _ros_type(msgtype)
                self.writer.add_topic(topic, msgtype)
                qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)
                cb = self._callback(topic)
                self._subs.append(node.create_subscription(cls, topic, cb, qos, raw=True,
                                                           callback_group=callback_group))
        except Exception:
            self.abort()
            raise

    def _callback(self, topic: str):
        writer, clock = self.writer, self._clock

        def on_message(data: bytes) -> None:
            try:
                writer.write_raw(topic, clock(), data)
            except RecordingError:       # closed while a callback was in flight
                pass
            except Exception:
                self.errors += 1
        return on_message

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.writer.counts)

    @property
    def path(self) -> Path:
        return self.writer.path

    def _unsubscribe(self) -> None:
        for s in self._subs:
            try:
                self.node.destroy_subscription(s)
            except Exception:
                pass
        self._subs = []

    def close(self) -> Path:
        self._unsubscribe()
        return self.writer.close()

    def abort(self) -> None:
        self._unsubscribe()
        self.writer.abort()
