"""The input side of the fast path: joint states, the incumbent's commands and the reward, validated
in the subscription callbacks, never raising.

Bad input never raises: each refused message is counted by reason (`REFUSALS`), and the first one
of each reason is kept in words (`JointStateInput.input_problem`), so that a tick without fresh
valid data can say why it holds the safe command.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from controller.shadow_stats import RewardStats
from sim.observation import BASE_SENSORS

# Reasons a message is refused (the keys of `ControllerRuntime.refused`).
REFUSALS = ("bad_time", "repeated_time", "backwards_time", "wrong_length", "missing_joint",
            "duplicate_name", "non_finite", "out_of_range", "bad_message", "no_velocity")
# What to do with a JointState whose velocity array is empty (many drivers publish positions only).
VELOCITY_SOURCES = ("measured", "differentiate")


@dataclass(frozen=True)
class Sample:
    """One accepted joint state, already in the plant's joint order."""

    stamp: float
    received: float
    positions: np.ndarray
    velocities: np.ndarray


def joint_order(names: Sequence[str], joint_names: Sequence[str]) -> np.ndarray | str:
    """Indices of `joint_names` in a message's name list, or the refusal reason (``duplicate_name``,
    ``missing_joint``). The message may name joints this controller does not use, in any order."""
    if len(set(names)) != len(names):
        return "duplicate_name"
    pos = {n: i for i, n in enumerate(names)}
    if any(n not in pos for n in joint_names):
        return "missing_joint"
    return np.array([pos[n] for n in joint_names], dtype=np.intp)


class JointStateInput:
    """Validation and bookkeeping of everything a subscription callback hands the runtime (the base
    of `controller.runtime.ControllerRuntime`). `config` is its `RuntimeConfig`."""

    def __init__(self, config: Any, monitor: Any | None, clock: Callable[[], float]) -> None:
        self.config = config
        self.monitor = monitor                  # controller.drift.DriftMonitor or None
        self.clock = clock
        self._names = tuple(config.joint_names)
        self._index_cache: dict[tuple, np.ndarray | str] = {}
        self._differentiate = config.velocity_source == "differentiate"
        self._prev_positions: tuple[float, np.ndarray] | None = None   # (stamp, positions) for differencing
        self.first_refusal: dict[str, str] = {}  # reason -> a one-line description of its first message
        self._latest: Sample | None = None
        self._last_stamp = -math.inf
        self._backwards_run = 0
        self._since_tick = 0                    # messages since the last tick (burst detection)
        self._incumbent: tuple[float, np.ndarray] | None = None
        self._base: dict[str, tuple[float, np.ndarray]] = {}   # base sensor -> (received, values)
        self.base_widths: dict[str, int] = dict(BASE_SENSORS)  # values per input (+ task signals, if any)
        self.base_refused = 0
        self._reward: float | None = None
        self._rewards = RewardStats()
        self.refused = {k: 0 for k in REFUSALS}
        self.accepted = 0
        self.incumbent_refused = 0
        self.clock_resets = 0

    def _refuse(self, reason: str, detail: str = "") -> bool:
        self.refused[reason] += 1
        if reason not in self.first_refusal:
            self.first_refusal[reason] = detail or reason
        return False

    def input_problem(self) -> str:
        """Why joint states are being refused, in words (for the stale diagnostic), or ''."""
        if not self.first_refusal:
            return ""
        worst = max(self.first_refusal, key=lambda k: self.refused.get(k, 0))
        return f"{self.refused[worst]} refused as {worst}: {self.first_refusal[worst]}"

    def joint_order(self, names: Sequence[str]) -> np.ndarray | str:
        """Indices of the configured joints in a JointState's name list, or why it cannot be used
        ('duplicate_name', 'missing_joint'). Public for offline replay, which orders bag messages."""
        return self._order(tuple(names))

    def _order(self, names: tuple) -> np.ndarray | str:
        """`joint_order` of the configured joints, cached per name list."""
        hit = self._index_cache.get(names)
        if hit is not None:
            return hit
        res = joint_order(names, self._names)
        if len(self._index_cache) < 64:
            self._index_cache[names] = res
        return res

    def ingest(self, stamp: float, names: Sequence[str], positions: Sequence[float],
               velocities: Sequence[float], now: float | None = None) -> bool:
        """Validate one joint state; True if it became the latest sample. Never raises.

        Names may come in any order and may include joints this controller does not use; every
        configured joint must be present exactly once. Stamps must increase strictly (a duplicate
        or late message is refused); `clock_reset_after` backwards stamps in a row are taken as a
        clock reset (a restarted simulation) and accepted from then on.
        """
        try:
            return self._ingest(stamp, names, positions, velocities, self.clock() if now is None else now)
        except Exception:
            return self._refuse("bad_message")

    def _ingest(self, stamp, names, positions, velocities, now) -> bool:
        self._since_tick += 1
        try:
            stamp = float(stamp)
        except (TypeError, ValueError):
            return self._refuse("bad_time")
        if not math.isfinite(stamp) or stamp <= 0.0:
            return self._refuse("bad_time")
        names = tuple(names)
        if not all(isinstance(n, str) for n in names):
            return self._refuse("bad_message")
        pos = np.asarray(positions, dtype=np.float64)
        vel = np.asarray(velocities, dtype=np.float64)
        positions_only = vel.ndim == 1 and vel.shape[0] == 0 and len(names) > 0
        if positions_only and not self._differentiate:
            return self._refuse("no_velocity", "JointState without velocities (positions only); set "
                                "velocity_source: differentiate to estimate them from the positions")
        if pos.ndim != 1 or vel.ndim != 1 or pos.shape[0] != len(names) or \
                (vel.shape[0] != len(names) and not positions_only):
            return self._refuse("wrong_length", f"{len(names)} names, {pos.shape[0] if pos.ndim else '?'} "
                                f"positions, {vel.shape[0] if vel.ndim else '?'} velocities")
        order = self._order(names)
        if isinstance(order, str):
            return self._refuse(order)
        p = pos[order]
        v = np.zeros_like(p) if positions_only else vel[order]
        if not (np.isfinite(p).all() and np.isfinite(v).all()):
            return self._refuse("non_finite")
        m = self.config.max_abs_input
        if np.abs(p).max() > m or np.abs(v).max() > m:
            return self._refuse("out_of_range")
        if stamp <= self._last_stamp:
            if stamp == self._last_stamp:
                return self._refuse("repeated_time")
            self._backwards_run += 1
            if self._backwards_run < self.config.clock_reset_after:
                return self._refuse("backwards_time")
            self.clock_resets += 1
            self._prev_positions = None
            if self.monitor is not None:
                try:
                    self.monitor.resync()
                except Exception:
                    pass
        self._backwards_run = 0
        self._last_stamp = stamp
        if self._differentiate:
            # velocity = position difference over the stamps of two consecutive accepted messages; the
            # first message (or the first after a gap longer than the stale timeout) only primes it
            prev, self._prev_positions = self._prev_positions, (stamp, p)
            if prev is None or stamp - prev[0] > self.config.stale_timeout_s:
                return self._refuse("no_velocity", "first positions-only joint state: velocity estimate "
                                    "starts with the next one") if positions_only else self._accept(stamp, now, p, v)
            if positions_only:
                v = (p - prev[1]) / (stamp - prev[0])
                if not np.isfinite(v).all() or np.abs(v).max() > m:
                    return self._refuse("out_of_range", "differenced velocity out of range")
        return self._accept(stamp, now, p, v)

    def _accept(self, stamp: float, now: float, p: np.ndarray, v: np.ndarray) -> bool:
        self._latest = Sample(stamp, float(now), p, v)
        self.accepted += 1
        return True

    def ingest_base(self, sensor: str, values: Sequence[float], now: float | None = None) -> bool:
        """A base sensor's latest reading in the observation's layout (`sim.observation.BASE_SENSORS`:
        ``imu`` = orientation w x y z + angular velocity, ``odometry`` = position + world-frame linear
        velocity; ``task`` = the profile's task signals, as many as the map's `base_widths` says). Refused and counted (under the joint-state reasons, first one described as
        ``<sensor>: ...``) when it has the wrong length, a non-finite value, a value past
        `max_abs_input`, or an orientation that is not a unit quaternion. Never raises."""
        try:
            return self._ingest_base(str(sensor), values, self.clock() if now is None else float(now))
        except Exception:
            self.base_refused += 1
            return self._refuse("bad_message", f"{sensor}: unreadable message")

    def _ingest_base(self, sensor: str, values, now: float) -> bool:
        width = self.base_widths.get(sensor)
        x = np.asarray(values, dtype=np.float64).reshape(-1)
        reason = ("bad_message" if width is None else "wrong_length" if x.shape[0] != width
                  else "non_finite" if not np.isfinite(x).all()
                  else "out_of_range" if np.abs(x).max() > self.config.max_abs_input
                  or (sensor == "imu" and abs(float(np.linalg.norm(x[:4])) - 1.0) > 0.05) else "")
        if reason:
            self.base_refused += 1
            return self._refuse(reason, f"{sensor}: {x.shape[0]} values" if reason == "wrong_length"
                                else f"{sensor}: {reason.replace('_', ' ')}")
        self._base[sensor] = (now, x)
        return True

    def fresh_base(self, sensors: Sequence[str], now: float) -> list[np.ndarray] | None:
        """The latest reading of each of `sensors`, or None when one is missing or older than the
        stale timeout (the tick then holds the safe command, as for stale joint states)."""
        out = []
        for name in sensors:
            got = self._base.get(name)
            if got is None or now - got[0] > self.config.stale_timeout_s:
                return None
            out.append(got[1])
        return out

    def ingest_incumbent(self, command: Sequence[float], now: float | None = None) -> bool:
        """The incumbent controller's latest command (shadow / node canary). Never raises."""
        try:
            a = np.asarray(command, dtype=np.float64).reshape(-1)
            if a.shape[0] != self.config.act_dim or not np.isfinite(a).all():
                self.incumbent_refused += 1
                return False
            self._incumbent = (self.clock() if now is None else float(now), a)
            return True
        except Exception:
            self.incumbent_refused += 1
            return False

    def ingest_reward(self, reward: float, now: float | None = None) -> bool:
        """Live performance signal (e.g. the plant's reward); feeds the watch period and the monitor."""
        try:
            r = float(reward)
        except (TypeError, ValueError):
            return False
        if not math.isfinite(r):
            return False
        self._reward = r
        rs = self._rewards
        rs.n += 1
        rs.total += r
        return True
