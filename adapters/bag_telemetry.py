"""Telemetry arrays from a recorded bag: what the drift monitor saw, as (t, obs, action, reward).

`driftgate drift-calibrate --bag BAG` calibrates the detector on nominal telemetry recorded on the
robot: a bag written by driftgate (``BagRecorder``, ``simulate_bag``, the demo) or any rosbag2 MCAP
recording with a ``sensor_msgs/JointState`` and a ``std_msgs/Float64MultiArray`` command topic. The
bag is opened and its topics are found exactly as replay does (`adapters.replay.inspect_bag`), and
each joint state is paired with the command published after it (zero-order hold when a second
state comes first), the pairing the live node and replay feed the monitor with.

Pairing (``pairing``): ``hold`` (the default) pairs a joint state with the first command after it, or
with the command in force when another state comes first: right for a controller that answers
the newest state (a periodic one, an incumbent). ``queue`` pairs the k-th command with the k-th
waiting state, oldest first: driftgate's own controller answers every joint state in order, and when
a loaded machine makes it fall two or three states behind, ``hold`` would pair those states with
older commands than the ones computed from them (demo bags at load 12: 40 % of the states). The
queue holds at most `QUEUE_MAX` states; older ones fall back to the command in force.

Only nominal telemetry calibrates: where the bag marks a drift as active (the simulated robot's
``drift_active`` topic with a non-empty DriftSpec), the telemetry stops there.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from adapters.joint_stream import JointOrder, StatePairing, header_stamp


QUEUE_MAX = 4      # states waiting for their command (pairing="queue")


class QueuedPairing:
    """`StatePairing`'s interface, pairing in order: the k-th command with the k-th waiting state."""

    def __init__(self, emit: Callable, *, max_waiting: int = QUEUE_MAX) -> None:
        from collections import deque
        self.emit, self.max_waiting = emit, int(max_waiting)
        self.waiting: "deque" = deque()
        self.last_command = None
        self.skipped = 0

    def state(self, item) -> None:
        if item is None:
            self.skipped += 1
            return
        self.waiting.append(item)
        while len(self.waiting) > self.max_waiting:      # never answered: the command in force
            old = self.waiting.popleft()
            if self.last_command is None:
                self.skipped += 1
            else:
                self.emit(old, self.last_command)

    def command(self, a) -> None:
        self.last_command = a
        if self.waiting:
            self.emit(self.waiting.popleft(), a)

    def finish(self) -> None:
        while self.waiting:
            old = self.waiting.popleft()
            if self.last_command is None:
                self.skipped += 1
            else:
                self.emit(old, self.last_command)


@dataclass
class BagTelemetry:
    plant: str
    t: np.ndarray            # (n,) joint-state stamps, seconds from the first
    obs: np.ndarray          # (n, obs_dim) the plant's observation of each joint state
    action: np.ndarray       # (n, act_dim) the command sent after it
    reward: np.ndarray       # (n,) latest reward (NaN: none yet / no reward topic)
    skipped: int             # joint states without a usable command or with other joints
    drift_at_s: float | None  # where a drift marker cut the nominal part (None: no drift in the bag)
    topics: dict

    def __len__(self) -> int:
        return len(self.t)


def read_bag_telemetry(bag: str | os.PathLike, *, plant: str | None = None,
                       topics: Mapping[str, str] | None = None, joint_names: Sequence[str] | None = None,
                       nominal_only: bool = True, pairing: str = "hold",
                       progress: Callable[[float], None] | None = None) -> BagTelemetry:
    """Read a bag's joint states and commands (`adapters.replay.ReplayError` on bad input: a missing,
    damaged or empty bag, missing topics, commands of the wrong size, a plant the bag does not name)."""
    from rosbags.rosbag2 import Reader

    from adapters.recording import typestore
    from adapters.replay import ReplayError, _bag_error, inspect_bag
    from sim.observation import make_observation_map, plant_info
    from sim.nominal_model import STATE_CODECS, has_codec

    if pairing not in ("hold", "queue"):
        raise ReplayError(f"pairing must be 'hold' or 'queue', got {pairing!r}")
    info = inspect_bag(bag, topics)
    plant = plant or info.custom.get("driftgate.plant", "")
    if not plant:
        raise ReplayError(f"bag {info.path} does not name its plant (no driftgate.plant in metadata.yaml): "
                          "give --plant")
    if not has_codec(plant):
        raise ReplayError(f"unknown plant {plant!r}; known: {sorted(STATE_CODECS)} or a robot profile")
    pinfo = plant_info(plant)
    names = list(joint_names or [])
    if not names:
        try:
            names = json.loads(info.custom.get("driftgate.joint_names") or "[]")
        except ValueError:
            names = []
    names = names or list(pinfo["joint_names"])
    if len(names) != len(pinfo["joint_names"]):
        raise ReplayError(f"joint names {names} do not match plant {plant!r} joints {pinfo['joint_names']}")
    act_dim = int(pinfo["act_dim"])
    obs_map = make_observation_map(plant)
    js_topic, cmd_topic = info.topics["joint_states"], info.topics["commands"]
    rew_topic, drift_topic = info.topics.get("reward"), info.topics.get("drift_active")
    wanted = {x for x in (js_topic, cmd_topic, rew_topic, drift_topic) if x}
    base = None
    if getattr(obs_map, "base_sensors", ()):       # a floating base: the bag's IMU / odometry too
        from adapters.base_sensors import BaseTracker, bag_base_topics
        try:
            base = BaseTracker(obs_map.base_sensors, bag_base_topics(info.custom), f"bag {info.path}")
        except ValueError as e:
            raise ReplayError(str(e)) from None
        wanted |= set(base.by_topic)
    ts_out, obs_out, act_out, rew_out = [], [], [], []
    reward = math.nan
    drift_at = None
    t0 = None
    span = max(1, info.end_ns - info.start_ns)
    order = JointOrder(names)

    def emit(p, a) -> None:
        ts_out.append(p[0])
        obs_out.append(obs_map(p[1], p[2], *p[4]))
        act_out.append(a)
        rew_out.append(p[3])

    pairing = QueuedPairing(emit) if pairing == "queue" else StatePairing(emit, hold=True)
    try:
        with Reader(info.path) as r:
            conns = [c for c in r.connections if c.topic in wanted]
            deser = typestore().deserialize_cdr
            for k, (c, ts, raw) in enumerate(r.messages(connections=conns)):
                if progress is not None and k % 2000 == 0:
                    progress(min(1.0, (ts - info.start_ns) / span))
                if c.topic == drift_topic:
                    try:
                        d = json.loads(deser(raw, c.msgtype).data)
                        active = bool(d.get("drift"))
                    except (ValueError, AttributeError):
                        active = False
                    if active and nominal_only:
                        drift_at = (ts - info.start_ns) / 1e9
                        break
                elif c.topic == js_topic:
                    m = deser(raw, c.msgtype)
                    qv = order.reorder(m)
                    if qv is None:
                        pairing.state(None)
                        continue
                    readings = () if base is None else base.current()
                    if readings is None:          # no IMU / odometry yet: not a full observation
                        pairing.state(None)
                        continue
                    stamp = header_stamp(m, ts)
                    t0 = stamp if t0 is None else t0
                    pairing.state((stamp - t0, qv[0], qv[1], reward, readings))
                elif c.topic == cmd_topic:
                    a = np.asarray(deser(raw, c.msgtype).data, dtype=np.float64)
                    if a.shape != (act_dim,):
                        raise ReplayError(f"bag {info.path}: commands on {c.topic} have {a.size} values; plant "
                                          f"{plant!r} takes {act_dim}")
                    pairing.command(a)
                elif c.topic == rew_topic:
                    x = float(deser(raw, c.msgtype).data)
                    if math.isfinite(x):
                        reward = x
                elif base is not None and c.topic in base.by_topic:
                    base.update(c.topic, deser(raw, c.msgtype))
            pairing.finish()
    except ReplayError:
        raise
    except Exception as e:
        raise _bag_error(info.path, e, reading=True) from None
    if progress is not None:
        progress(1.0)
    n = len(ts_out)
    obs_dim = obs_map.obs_dim
    return BagTelemetry(plant=plant, t=np.asarray(ts_out, float).reshape(n),
                        obs=np.asarray(obs_out, float).reshape(n, obs_dim),
                        action=np.asarray(act_out, float).reshape(n, act_dim),
                        reward=np.asarray(rew_out, float).reshape(n), skipped=pairing.skipped, drift_at_s=drift_at,
                        topics=dict(info.topics))


__all__ = ["BagTelemetry", "read_bag_telemetry"]
