"""Validation of one telemetry tick, with counters for every refusal.

A tick is (time, observation, applied action, reward or tracking error). Bad input never raises and
never reaches a detector: the tick is refused, the reason is counted, and the monitor keeps running.
The counters are what the ROS node publishes on /diagnostics.

Refusal reasons (the keys of `TickValidator.counters`):

- ``bad_time``        the timestamp is not a finite number
- ``non_finite``      NaN or inf in the observation, action or reward
- ``out_of_range``    a finite value whose magnitude exceeds ``max_abs`` (a sensor glitch; such values
                      would overflow the residual arithmetic)
- ``wrong_length``    an observation or action vector of the wrong size (or not a flat vector)
- ``repeated_time``   the same timestamp as the last accepted tick (a duplicated message)
- ``backwards_time``  an earlier timestamp than the last accepted tick (a late message). After
                      ``clock_reset_ticks`` backwards ticks in a row the clock is taken to have been
                      reset (a replay looped, a simulation restarted): the validator re-synchronises
                      on the new time base instead of refusing forever (counted in ``clock_resets``).
- ``gap``             more than ``gap_factor`` control periods since the last accepted tick. The tick
                      itself is valid but the history before it is not contiguous, so it only starts a
                      new segment: predictions that need the previous tick restart from it.

Only ACCEPT ticks reach the detectors: ``ticks = accepted + refused + resyncs``.

A tick that follows a refused one is judged against the last *accepted* tick, so one NaN tick
makes the next good tick a gap (the prediction chain is broken) and the one after is accepted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np


class Verdict(str, Enum):
    ACCEPT = "accept"        # contiguous with the previous accepted tick
    RESYNC = "resync"        # valid but starts a new segment (gap, first tick, clock reset)
    REFUSE = "refuse"        # not used at all


REASONS = ("bad_time", "non_finite", "out_of_range", "wrong_length", "repeated_time",
           "backwards_time", "gap")


@dataclass
class CheckedTick:
    """A tick that passed validation, as float64 arrays (copies, safe to keep)."""

    t: float
    obs: np.ndarray
    action: np.ndarray
    reward: float            # NaN when the caller has no reward signal


class TickValidator:
    """Checks ticks against the expected sizes and the control period; counts refusals."""

    def __init__(self, obs_dim: int, act_dim: int, dt: float, gap_factor: float = 2.5,
                 max_abs: float = 1e6, clock_reset_ticks: int = 10) -> None:
        if obs_dim < 1 or act_dim < 0:
            raise ValueError(f"obs_dim must be >= 1 and act_dim >= 0, got {obs_dim}, {act_dim}")
        if not (dt > 0 and math.isfinite(dt)):
            raise ValueError(f"dt must be a positive finite number of seconds, got {dt!r}")
        if not gap_factor > 1:
            raise ValueError(f"gap_factor must be > 1, got {gap_factor!r}")
        self.obs_dim, self.act_dim, self.dt = int(obs_dim), int(act_dim), float(dt)
        self.gap_factor, self.max_abs = float(gap_factor), float(max_abs)
        self._max_abs2 = self.max_abs * self.max_abs
        self.clock_reset_ticks = int(clock_reset_ticks)
        self.counters: dict[str, int] = {r: 0 for r in REASONS}
        self.counters.update(ticks=0, accepted=0, refused=0, resyncs=0, clock_resets=0)
        self.last_t: float | None = None
        self._backwards_run = 0
        self.last_reason: str | None = None

    def restart(self) -> None:
        """Forget the last accepted time (the next valid tick starts a new segment)."""
        self.last_t = None
        self._backwards_run = 0

    def _refuse(self, reason: str) -> tuple[Verdict, None]:
        self.counters[reason] += 1
        self.counters["refused"] += 1
        self.last_reason = reason
        return Verdict.REFUSE, None

    def _vector(self, x, n: int) -> np.ndarray | None:
        try:
            v = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            return None
        if v.ndim != 1 or v.shape[0] != n:
            return None
        return v

    def check(self, t, obs, action, reward=None) -> tuple[Verdict, CheckedTick | None]:
        """Judge one tick. Never raises; returns (verdict, the checked tick or None)."""
        self.counters["ticks"] += 1
        try:
            t = float(t)
        except (TypeError, ValueError, OverflowError):
            return self._refuse("bad_time")
        if not math.isfinite(t):
            return self._refuse("bad_time")
        o = self._vector(obs, self.obs_dim)
        a = self._vector(action, self.act_dim)
        if o is None or a is None:
            return self._refuse("wrong_length")
        if reward is None:
            r = math.nan
        else:
            try:
                r = float(reward)
            except (TypeError, ValueError, OverflowError):
                return self._refuse("non_finite")
            if not math.isfinite(r):
                return self._refuse("non_finite")
        # fast path: one dot product per vector. NaN/inf make it NaN/inf, and if it is within
        # max_abs^2 every component is within range; only a suspicious tick pays for exact checks.
        lim2 = self._max_abs2
        try:
            ok = o.dot(o) <= lim2 and a.dot(a) <= lim2 and (r != r or abs(r) <= self.max_abs)
        except (ArithmeticError, RuntimeWarning):   # overflow, when warnings are errors
            ok = False
        if not ok:
            if not (np.isfinite(o).all() and np.isfinite(a).all()):
                return self._refuse("non_finite")
            if (np.abs(o).max() > self.max_abs or (a.size and np.abs(a).max() > self.max_abs)
                    or abs(r) > self.max_abs):
                return self._refuse("out_of_range")
        verdict = Verdict.ACCEPT
        if self.last_t is None:
            verdict = Verdict.RESYNC
        elif t == self.last_t:
            return self._refuse("repeated_time")
        elif t < self.last_t:
            self._backwards_run += 1
            if self._backwards_run < self.clock_reset_ticks:
                return self._refuse("backwards_time")
            self.counters["backwards_time"] += 1
            self.counters["clock_resets"] += 1
            verdict = Verdict.RESYNC
        elif t - self.last_t > self.gap_factor * self.dt:
            self.counters["gap"] += 1
            self.last_reason = "gap"
            verdict = Verdict.RESYNC
        self._backwards_run = 0
        self.last_t = t
        if verdict is Verdict.RESYNC:
            self.counters["resyncs"] += 1
        else:
            self.counters["accepted"] += 1
            self.last_reason = None
        return verdict, CheckedTick(t, o.copy(), a.copy(), r)
