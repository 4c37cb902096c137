"""DriftEvent (what an alarm says) and the bounded telemetry ring buffer it carries.

The ring keeps the last `capacity` *valid* ticks (time, observation, applied action, reward) in
preallocated arrays, so recording costs a few array writes per tick and never allocates. Each tick
also carries its segment number: the segment changes whenever the validator re-synchronises (a gap,
a clock reset), so system identification knows where the recording is not contiguous.

A DriftEvent is the record the orchestrator receives: when, which detectors and channels fired,
how strongly (statistic / threshold), the monitor's estimate of when the change began, the
feature snapshot, and a copy of the telemetry window that the sandbox replays through MuJoCo.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class TelemetryWindow:
    """A contiguous copy of recent valid ticks, oldest first."""

    t: np.ndarray          # (n,)
    obs: np.ndarray        # (n, obs_dim)
    action: np.ndarray     # (n, act_dim)
    reward: np.ndarray     # (n,), NaN where no reward was given
    segment: np.ndarray    # (n,) int64, changes where the recording is not contiguous

    def __len__(self) -> int:
        return int(self.t.shape[0])


class TelemetryRing:
    """Fixed-capacity ring of valid ticks. `push` is O(1); `window()` copies, oldest first."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int) -> None:
        if capacity < 1:
            raise ValueError(f"ring capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self._t = np.zeros(capacity)
        self._obs = np.zeros((capacity, obs_dim))
        self._act = np.zeros((capacity, act_dim))
        self._rew = np.zeros(capacity)
        self._seg = np.zeros(capacity, dtype=np.int64)
        self._next = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def clear(self) -> None:
        self._next = 0
        self._size = 0

    def push(self, t: float, obs: np.ndarray, action: np.ndarray, reward: float, segment: int) -> None:
        i = self._next
        self._t[i] = t
        self._obs[i] = obs
        self._act[i] = action
        self._rew[i] = reward
        self._seg[i] = segment
        self._next = (i + 1) % self.capacity
        if self._size < self.capacity:
            self._size += 1

    def window(self, last: int | None = None) -> TelemetryWindow:
        """Copy of the most recent `last` ticks (all by default), oldest first."""
        n = self._size if last is None else max(0, min(int(last), self._size))
        idx = (np.arange(self._next - n, self._next)) % self.capacity
        return TelemetryWindow(self._t[idx].copy(), self._obs[idx].copy(), self._act[idx].copy(),
                               self._rew[idx].copy(), self._seg[idx].copy())


def _num(x) -> float | None:
    """A JSON-safe number: None for missing or non-finite values."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass
class DriftEvent:
    """One alarm of the drift monitor."""

    t: float                                   # telemetry time of the tick that raised the alarm
    tick: int                                  # index of that tick among all ticks seen
    detectors: tuple[str, ...]                 # detectors whose vote made the alarm, e.g. "ph:one_step"
    channels: tuple[str, ...]                  # residual channels those detectors watch
    magnitude: dict[str, float]                # detector -> statistic / threshold at its firing (>= 1)
    onset_t: float | None                      # estimated start of the change (PageHinkley argmin)
    features: dict[str, float] = field(default_factory=dict)   # feature snapshot at the alarm
    window: TelemetryWindow | None = None      # recent valid telemetry, for system identification

    @property
    def score(self) -> float:
        return max(self.magnitude.values()) if self.magnitude else 0.0

    def to_dict(self, include_window: bool = False) -> dict:
        """JSON-ready summary (the window as lists only when asked: it can be large)."""
        out = {"t": self.t, "tick": self.tick, "detectors": list(self.detectors),
               "channels": list(self.channels),
               "magnitude": {k: _num(v) for k, v in self.magnitude.items()},
               "onset_t": _num(self.onset_t),
               "features": {k: _num(v) for k, v in self.features.items()},
               "window_ticks": 0 if self.window is None else len(self.window)}
        if include_window and self.window is not None:
            w = self.window
            out["window"] = {"t": w.t.tolist(), "obs": w.obs.tolist(), "action": w.action.tolist(),
                             "reward": [None if np.isnan(x) else x for x in w.reward.tolist()],
                             "segment": w.segment.tolist()}
        return out

    def to_json(self, include_window: bool = False) -> str:
        return json.dumps(self.to_dict(include_window), allow_nan=False)
