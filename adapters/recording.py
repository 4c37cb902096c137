"""Recording: telemetry, commands, rewards, drift events and decisions to a rosbag2 MCAP bag.

A bag is a rosbag2 directory::

    NAME/
      metadata.yaml       rosbag2 metadata (version 9), with driftgate's facts in custom_data
      NAME.mcap           MCAP, profile ros2, ROS 2 .msg schemas, zstd-compressed chunks

It opens with ``ros2 bag info/play``, with `rosbags` (``AnyReader``), with the `mcap` readers
(``mcap_ros2.reader.read_ros2_messages``) and in Foxglove / Lichtblick (open the .mcap file). The
messages are the ROS 2 messages the nodes publish, stored as CDR, stamped with their *receive* time
(the rosbag2 convention); a JointState keeps its own header stamp.

Two writers share one storage class:

- `BagWriter`: the offline API (no ROS needed). Tests, benchmarks and `simulate_bag` write synthetic
  telemetry through it; message objects come from the `rosbags` typestore (ROS 2 Kilted).
- `adapters.bag_recorder.BagRecorder`: attached to an rclpy node; subscribes to the topics (raw CDR, no decode/encode
  round trip) and writes each message with the node clock's receive time. Thread-safe (callbacks from
  a multi-threaded executor are serialised by a lock); `close()` destroys the subscriptions and
  finishes the bag.

Atomicity: a bag is written inside a hidden temporary directory next to its destination and renamed
into place by `close()`. A crash, an exception inside ``with BagWriter(...)`` or `abort()` leaves no
bag at the destination (the temporary directory is removed where the process survives to do so).

Bag facts in ``metadata.yaml`` ``custom_data`` (all strings): ``driftgate.format``
(``driftgate.bag/1``), ``driftgate.plant``, ``driftgate.joint_names`` (JSON list),
``driftgate.control_dt``, ``driftgate.topics`` (JSON {role: topic}) and anything the caller adds.
Replay reads them, so a bag names its own plant and topics.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from sim.plant_names import DEFAULT_PLANT

BAG_FORMAT = "driftgate.bag/1"
ROLES = ("joint_states", "commands", "reward", "events", "drift_active", "diagnostics")
# the topics the driftgate nodes use by default (adapters/ros/*.py), resolved in the root namespace
# (the nodes' names are relative: in a namespace they move, see adapters.demo_node.demo_topics)
DEFAULT_TOPICS: dict[str, str] = {
    "joint_states": "/joint_states",
    "commands": "/forward_effort_controller/commands",
    "reward": "/driftgate_sim_robot/reward",
    "events": "/driftgate_controller/events",
    "drift_active": "/driftgate_sim_robot/drift_active",
    "diagnostics": "/diagnostics",
}
ROLE_TYPES: dict[str, str] = {
    "joint_states": "sensor_msgs/msg/JointState",
    "commands": "std_msgs/msg/Float64MultiArray",
    "reward": "std_msgs/msg/Float64",
    "events": "std_msgs/msg/String",
    "drift_active": "std_msgs/msg/String",
    "diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
}
LATCHED_ROLES = ("events", "drift_active")   # published transient-local by the nodes

_TYPESTORE = None


def typestore():
    """The rosbags typestore used for schemas and offline serialisation (ROS 2 Kilted)."""
    global _TYPESTORE
    if _TYPESTORE is None:
        from rosbags.typesys import Stores, get_typestore
        _TYPESTORE = get_typestore(Stores.ROS2_KILTED)
    return _TYPESTORE


class RecordingError(RuntimeError):
    """The bag cannot be written (destination exists, unknown message type, writer closed)."""


def _ns(t: float | int) -> int:
    return int(t) if isinstance(t, (int, np.integer)) else int(round(float(t) * 1e9))


class CloseOnExit:
    """``with`` support for a bag being written: `close()` on a clean exit, `abort()` (no bag at the
    destination) when the block raised."""

    def close(self) -> Path:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


@dataclass(frozen=True)
class _Topic:
    name: str
    msgtype: str
    connection: Any


class BagWriter(CloseOnExit):
    """rosbag2 MCAP writer with helpers for driftgate's message types (offline API).

    ``with BagWriter(path, plant="my_robot.yaml", joint_names=[...], control_dt=0.01) as bag:``
    ``bag.joint_state(t, names, q, v)``, ``bag.command(t, a)``, ``bag.reward(t, r)``,
    ``bag.event(t, {...})``, ``bag.drift_active(t, spec)``, ``bag.diagnostics(t, ...)``.
    Times are ``int`` nanoseconds or ``float`` seconds (both since the Unix epoch). Topics are added
    on first use (a role's default topic and type, or `add_topic` for anything else).

    The destination must not exist (``overwrite=True`` replaces an existing bag on close).
    """

    def __init__(self, path: str | os.PathLike, *, plant: str | None = None,
                 joint_names: Sequence[str] | None = None, control_dt: float | None = None,
                 topics: Mapping[str, str] | None = None, custom_data: Mapping[str, Any] | None = None,
                 compression: str = "zstd", overwrite: bool = False) -> None:
        from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise RecordingError(f"{self.path} exists already; choose a new bag directory")
        if compression not in ("zstd", "none"):
            raise RecordingError(f"compression must be 'zstd' or 'none', got {compression!r}")
        self.topics = {**DEFAULT_TOPICS, **dict(topics or {})}
        unknown = sorted(set(self.topics) - set(ROLES))
        if unknown:
            raise RecordingError(f"unknown topic role(s) {unknown}; roles: {list(ROLES)}")
        self.overwrite = overwrite
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.partial-", dir=self.path.parent))
        self._lock = threading.Lock()
        self._topics: dict[str, _Topic] = {}
        self._ts = typestore()
        self.counts: dict[str, int] = {}
        self._writer = Writer(self._tmp / self.path.name, version=9, storage_plugin=StoragePlugin.MCAP)
        if compression == "zstd":   # storage level = compressed MCAP chunks (metadata says none)
            self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        meta = {"driftgate.format": BAG_FORMAT, "driftgate.topics": json.dumps(self.topics, sort_keys=True)}
        if plant:
            meta["driftgate.plant"] = str(plant)
        if joint_names is not None:
            meta["driftgate.joint_names"] = json.dumps(list(joint_names))
        if control_dt is not None:
            meta["driftgate.control_dt"] = repr(float(control_dt))
        for k, v in (custom_data or {}).items():
            meta[str(k)] = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
        for k, v in meta.items():
            self._writer.set_custom_data(k, v)
        try:
            self._writer.open()
        except Exception:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise
        self._open = True
        # message classes
        T = self._ts.types
        self._JointState = T["sensor_msgs/msg/JointState"]
        self._Header = T["std_msgs/msg/Header"]
        self._Time = T["builtin_interfaces/msg/Time"]
        self._F64 = T["std_msgs/msg/Float64"]
        self._F64A = T["std_msgs/msg/Float64MultiArray"]
        self._Layout = T["std_msgs/msg/MultiArrayLayout"]
        self._String = T["std_msgs/msg/String"]
        self._empty = np.zeros(0, dtype=np.float64)

    # -- topics ---------------------------------------------------------------------------------
    def add_topic(self, topic: str, msgtype: str, *, qos: Sequence[Any] = ()) -> None:
        """Declare a topic (schema from the typestore). Adding the same topic+type twice is a no-op."""
        with self._lock:
            self._add_topic(topic, msgtype, qos)

    def _add_topic(self, topic: str, msgtype: str, qos: Sequence[Any] = ()) -> _Topic:
        if not self._open:
            raise RecordingError(f"bag {self.path} is closed")
        have = self._topics.get(topic)
        if have is not None:
            if have.msgtype != msgtype:
                raise RecordingError(f"topic {topic} is already recorded as {have.msgtype}, not {msgtype}")
            return have
        if msgtype not in self._ts.types:
            raise RecordingError(f"unknown message type {msgtype!r} (not in the ROS 2 typestore)")
        conn = self._writer.add_connection(topic, msgtype, typestore=self._ts, offered_qos_profiles=list(qos))
        tp = _Topic(topic, msgtype, conn)
        self._topics[topic] = tp
        self.counts[topic] = 0
        return tp

    def _role(self, role: str, topic: str | None) -> _Topic:
        name = topic or self.topics[role]
        tp = self._topics.get(name)
        if tp is None:
            self.add_topic(name, ROLE_TYPES[role])
            tp = self._topics[name]
        return tp

    # -- writing --------------------------------------------------------------------------------
    def write_raw(self, topic: str, t: float | int, data: bytes | memoryview, msgtype: str | None = None) -> None:
        """Write one CDR-serialised message (the topic is added first when `msgtype` is given)."""
        with self._lock:
            if not self._open:
                raise RecordingError(f"bag {self.path} is closed")
            tp = self._topics.get(topic)
            if tp is None:
                if msgtype is None:
                    raise RecordingError(f"topic {topic} was not added (give msgtype or call add_topic)")
                tp = self._add_topic(topic, msgtype)
            self._writer.write(tp.connection, _ns(t), data)
            self.counts[topic] += 1

    def write(self, topic: str, t: float | int, msg: Any, msgtype: str | None = None) -> None:
        """Write a rosbags message object (``typestore().types[...]``)."""
        msgtype = msgtype or msg.__msgtype__
        self.write_raw(topic, t, self._ts.serialize_cdr(msg, msgtype), msgtype)

    def _stamp(self, ns: int):
        return self._Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)

    def joint_state(self, t: float | int, names: Sequence[str], positions: Sequence[float],
                    velocities: Sequence[float], efforts: Sequence[float] | None = None, *,
                    stamp: float | int | None = None, frame_id: str = "", topic: str | None = None) -> None:
        """sensor_msgs/JointState, header stamp `stamp` (default: `t`)."""
        ns = _ns(t)
        msg = self._JointState(
            header=self._Header(stamp=self._stamp(_ns(stamp) if stamp is not None else ns), frame_id=frame_id),
            name=list(names), position=np.asarray(positions, dtype=np.float64),
            velocity=np.asarray(velocities, dtype=np.float64),
            effort=self._empty if efforts is None else np.asarray(efforts, dtype=np.float64))
        tp = self._role("joint_states", topic)
        self.write_raw(tp.name, ns, self._ts.serialize_cdr(msg, tp.msgtype))

    def command(self, t: float | int, values: Sequence[float], *, topic: str | None = None) -> None:
        """std_msgs/Float64MultiArray (what a forward command controller reads)."""
        msg = self._F64A(layout=self._Layout(dim=[], data_offset=0), data=np.asarray(values, dtype=np.float64))
        tp = self._role("commands", topic)
        self.write_raw(tp.name, t, self._ts.serialize_cdr(msg, tp.msgtype))

    def reward(self, t: float | int, value: float, *, topic: str | None = None) -> None:
        """std_msgs/Float64 (the simulated robot's ``~/reward``)."""
        tp = self._role("reward", topic)
        self.write_raw(tp.name, t, self._ts.serialize_cdr(self._F64(data=float(value)), tp.msgtype))

    def string(self, topic: str, t: float | int, text: str) -> None:
        tp = self._topics.get(topic)
        if tp is None:
            self.add_topic(topic, "std_msgs/msg/String")
            tp = self._topics[topic]
        self.write_raw(tp.name, t, self._ts.serialize_cdr(self._String(data=str(text)), tp.msgtype))

    def event(self, t: float | int, event: Mapping[str, Any], *, topic: str | None = None) -> None:
        """A driftgate event (std_msgs/String with JSON), as the controller node's ``~/events``."""
        tp = self._role("events", topic)
        self.string(tp.name, t, json.dumps(dict(event), allow_nan=False, default=str, sort_keys=True))

    def drift_active(self, t: float | int, spec: Any = None, *, topic: str | None = None) -> None:
        """The simulated robot's ``~/drift_active``: {"drift": {...}, "hash": ...}."""
        from sim.drift_spec import DriftSpec
        d = DriftSpec.parse(spec) if spec is not None else DriftSpec()
        tp = self._role("drift_active", topic)
        self.string(tp.name, t, json.dumps({"drift": d.as_dict(), "hash": d.hash, "time": _ns(t) / 1e9}))

    def diagnostics(self, t: float | int, statuses: Iterable[Mapping[str, Any]], *, topic: str | None = None) -> None:
        """diagnostic_msgs/DiagnosticArray; each status {name, level (0 OK .. 3 STALE), message,
        hardware_id, values: {key: value}}."""
        T = self._ts.types
        DS, KV = T["diagnostic_msgs/msg/DiagnosticStatus"], T["diagnostic_msgs/msg/KeyValue"]
        ns = _ns(t)
        items = [DS(level=int(s.get("level", 0)), name=str(s.get("name", "")),
                    message=str(s.get("message", "")), hardware_id=str(s.get("hardware_id", "")),
                    values=[KV(key=str(k), value=str(v)) for k, v in (s.get("values") or {}).items()])
                 for s in statuses]
        msg = T["diagnostic_msgs/msg/DiagnosticArray"](header=self._Header(stamp=self._stamp(ns), frame_id=""),
                                                       status=items)
        tp = self._role("diagnostics", topic)
        self.write_raw(tp.name, ns, self._ts.serialize_cdr(msg, tp.msgtype))

    # -- closing --------------------------------------------------------------------------------
    def close(self) -> Path:
        """Finish the bag (MCAP summary, metadata.yaml) and move it into place. Returns its path."""
        with self._lock:
            if not self._open:
                return self.path
            self._open = False
            try:
                self._writer.close()
                src = self._tmp / self.path.name
                if self.path.exists():
                    if not self.overwrite:
                        raise RecordingError(f"{self.path} appeared while recording; the bag stays in {src}")
                    old = self._tmp / ".replaced"
                    os.replace(self.path, old)
                os.replace(src, self.path)
            except RecordingError:
                raise
            except BaseException:
                shutil.rmtree(self._tmp, ignore_errors=True)
                raise
            shutil.rmtree(self._tmp, ignore_errors=True)
            return self.path

    def abort(self) -> None:
        """Drop everything written so far (nothing appears at the destination)."""
        with self._lock:
            if self._open:
                self._open = False
                try:
                    self._writer.abort()
                except Exception:
                    pass
            shutil.rmtree(self._tmp, ignore_errors=True)

    @property
    def closed(self) -> bool:
        return not self._open

    def __del__(self) -> None:   # an unclosed writer leaves no temp directory behind
        try:
            if getattr(self, "_open", False):
                self.abort()
        except Exception:
            pass


# ---------------------------------------------------------------------- synthetic telemetry

EPOCH_NS = 1_700_000_000_000_000_000        # synthetic bags start here (2023-11-14)


def simulate_bag(path: str | os.PathLike, *, plant: str = DEFAULT_PLANT, seconds: float = 120.0,
                 drift: Any = None, drift_at_s: float | None = None, seed: int = 0,
                 obs_noise: float = 0.01, controller: Callable[[np.ndarray], np.ndarray] | None = None,
                 command_latency_s: float = 0.001, diagnostics_hz: float = 1.0, start_ns: int = EPOCH_NS,
                 overwrite: bool = False, progress: Callable[[float], None] | None = None) -> Path:
    """Record `seconds` of a simulated robot to a bag, without ROS: what the simulated robot node
    and a controller node would have published.

    Every control tick k (the plant's period, 10 ms for the cartpole): the JointState at t_k (true
    joint state + N(0, obs_noise) on positions and velocities: a sensor), the command the controller
    computed from it at t_k + `command_latency_s`, and the reward of the step at t_{k+1} (as
    `adapters.ros.sim_robot_node` publishes it, with the next state). The drift (DriftSpec, default
    none) is applied at `drift_at_s` and announced on ``drift_active``; diagnostics at
    `diagnostics_hz`. The controller sees the observation computed from the noisy joint state (as
    the controller node does); default: the plant's drift-scenario controller (cartpole: the nominal
    LQR tracking a moving cart setpoint, `sim.drift_scenarios`).
    """
    from sim.observation import make_observation_map
    from sim.drift_spec import DriftSpec
    from sim.plants import make_plant

    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"seconds must be a positive number, got {seconds!r}")
    spec = DriftSpec.parse(drift) if drift is not None else None
    if spec is not None and drift_at_s is None:
        drift_at_s = seconds / 2
    p = make_plant(plant, seed=seed)
    if spec is not None:
        make_plant(plant).apply_drift(spec)   # names checked against the model before any work
    if controller is None:
        from sim.drift_scenarios import has_scenario, scenario
        if has_scenario(plant):     # a built-in's scenario controller, or a profile robot's champion
            ctrl = scenario(plant).make_controller(p)
        else:
            ctrl = p.nominal_controller()
            if hasattr(ctrl, "reset"):
                ctrl.reset()
    else:
        ctrl = controller
    obs_map = make_observation_map(plant)
    rng = np.random.default_rng(seed + 7919)
    names = list(p.joint_names)
    dt = float(p.control_dt)
    n = int(round(seconds / dt))
    k_drift = None if spec is None else int(round(drift_at_s / dt))
    lat = _ns(command_latency_s)
    dt_ns = _ns(dt)
    diag_every = max(1, int(round(1.0 / (diagnostics_hz * dt)))) if diagnostics_hz > 0 else 0
    from adapters.base_sensors import BASE_TYPES, CUSTOM_KEY, write_base
    from sim.observation import base_readings, odometry_values
    sensors = tuple(getattr(obs_map, "base_sensors", ()))       # a floating base: IMU / odometry
    base_topics = {s: "/" + obs_map.base_topics[s].lstrip("/") for s in sensors}
    frames = {}
    if sensors:
        from sim.observation import live_profile
        observe = live_profile(p).doc.observe
        frames = {"imu": (observe.imu.site or observe.imu.body) if observe.imu else "",
                  "odometry": observe.odometry.body if observe.odometry else ""}
    custom = {"driftgate.source": "simulate_bag", "driftgate.seed": str(seed),
              "driftgate.obs_noise": repr(float(obs_noise)),
              "driftgate.drift": json.dumps(spec.as_dict() if spec else {}, sort_keys=True),
              "driftgate.drift_at_s": "" if k_drift is None else repr(k_drift * dt)}
    if sensors:
        custom[CUSTOM_KEY] = json.dumps(base_topics, sort_keys=True)
    with BagWriter(path, plant=plant, joint_names=names, control_dt=dt, overwrite=overwrite,
                   custom_data=custom) as bag:
        for s in sensors:
            bag.add_topic(base_topics[s], BASE_TYPES[s])
        bag.drift_active(start_ns, None)
        for k in range(n):
            t = start_ns + k * dt_ns
            if k_drift is not None and k == k_drift:
                p.apply_drift(spec)
                bag.drift_active(t, spec)
            q = p.joint_positions()
            v = p.joint_velocities()
            if obs_noise:
                q = q + obs_noise * rng.standard_normal(q.shape)
                v = v + obs_noise * rng.standard_normal(v.shape)
            base = ()
            if sensors:               # written before the joint state, as the simulated robot node does
                readings = base_readings(p)
                write_base(bag, base_topics, t, readings, frames)
                o = readings.get("odometry")
                base = tuple(np.concatenate([readings["imu"]["orientation"], readings["imu"]["angular_velocity"]])
                             if s == "imu" else readings["task"]["values"] if s == "task"
                             else odometry_values(o["position"], o["orientation"], o["linear_velocity"])
                             for s in sensors)
            bag.joint_state(t, names, q, v)
            a = np.asarray(ctrl(obs_map(q, v, *base)), dtype=np.float64).reshape(-1)
            bag.command(t + lat, a)
            _, r = p.act(a)
            bag.reward(t + dt_ns, r)
            if diag_every and k % diag_every == 0:
                bag.diagnostics(t, [{"name": "driftgate_sim_robot: plant", "level": 0, "message": "ok",
                                     "hardware_id": plant, "values": {"steps": k, "reward": f"{r:.6g}"}}])
            if progress is not None and k % 1000 == 0:
                progress(k / n)
    return Path(path)


__all__ = ["BAG_FORMAT", "BagWriter", "DEFAULT_TOPICS", "LATCHED_ROLES", "ROLES",
           "ROLE_TYPES", "RecordingError", "simulate_bag", "typestore"]
