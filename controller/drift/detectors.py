"""Change detectors from river, wrapped for normalised residual statistics.

river names are imported explicitly (``from river.drift import *`` raises in river 0.26). Every
wrapper has the same small surface: ``update(x, t) -> bool`` (True on the tick it fires),
``statistic`` (the current test statistic, for plots and /diagnostics), ``threshold``, ``peak`` (the
largest statistic seen, what calibration reads), ``onset_t`` (the detector's estimate of when the
change began, where it has one), ``magnitude`` (statistic / threshold at the last firing) and
``reset()``. A river detector resets itself on the update after it fires; the wrappers follow.

- `CalibratedPageHinkley`: one-sided (upward) Page-Hinkley, the primary detector. Its threshold
  comes from a calibration run (`controller.drift.calibration`).
- `ExceedanceHDDMW`: HDDM_W on the bit "statistic above its warm-up quantile", a backup that reacts
  to a rise in the *rate* of large residuals rather than to their sum.
- `AdwinDetector`, `DecimatedKSWIN`: optional (off in the default configuration); KSWIN runs a
  Kolmogorov-Smirnov test per update (~0.4 ms), so it only sees every n-th sample.
"""
from __future__ import annotations

import math

from river.drift import ADWIN, KSWIN, PageHinkley
from river.drift.binary import HDDMW


class CalibratedPageHinkley:
    """One-sided Page-Hinkley test on a signal whose nominal level is known to be flat.

    river's `PageHinkley` with ``mode="up"``: S_t = alpha S_{t-1} + (x_t - mean_t) - delta, and
    the test fires when S_t - min S exceeds ``threshold``. On a normalised residual statistic
    (about 1 when nominal) ``delta = 0.5`` ignores small wobbles and a sustained rise of the mean by
    more than delta accumulates linearly, so the delay is about threshold / (rise - delta) ticks.

    Example
    -------
    A flat signal never fires; a step up of the mean by 2 fires after about
    threshold / (2 - delta) = 4 ticks, and the onset estimate points at the step:

    >>> ph = CalibratedPageHinkley("ph:one_step", threshold=6.0)
    >>> any(ph.update(1.0 + 0.2 * (-1) ** i, t=0.01 * i) for i in range(500))
    False
    >>> ph.peak < 6.0
    True
    >>> next(i for i in range(10) if ph.update(3.0, t=5.0 + 0.01 * i))
    4
    >>> round(ph.onset_t, 2), ph.magnitude > 1.0
    (4.99, True)

    A downward step (the residual getting smaller) never fires: the test is one-sided.

    >>> ph.reset()
    >>> any(ph.update(x, t=0.0) for x in [1.0] * 100 + [-5.0] * 100)
    False
    """

    def __init__(self, name: str, threshold: float = 50.0, delta: float = 0.5, alpha: float = 1.0,
                 min_instances: int = 30, channel: str | None = None) -> None:
        if not threshold > 0:
            raise ValueError(f"{name}: threshold must be > 0, got {threshold!r}")
        self.name = name
        self.channel = channel if channel is not None else name.split(":", 1)[-1]
        self.threshold = float(threshold)
        self.delta, self.alpha, self.min_instances = float(delta), float(alpha), int(min_instances)
        self.peak = 0.0
        self.magnitude = 0.0
        self.reset()

    def reset(self) -> None:
        # river's threshold is only used in its own test; the wrapper tests, so calibration runs
        # (threshold = inf) and live runs share one code path
        self._ph = PageHinkley(min_instances=self.min_instances, delta=self.delta,
                               threshold=math.inf, alpha=self.alpha, mode="up")
        self.statistic = 0.0
        self.onset_t: float | None = None
        self._n = 0

    def update(self, x: float, t: float = math.nan) -> bool:
        ph = self._ph
        ph.update(x)
        self._n += 1
        s, m = ph._sum_increase, ph._min_increase
        if s <= m:
            self.onset_t = t
        stat = s - m if self._n >= self.min_instances else 0.0
        self.statistic = stat
        if stat > self.peak:
            self.peak = stat
        if stat > self.threshold:
            self.magnitude = stat / self.threshold
            onset = self.onset_t
            self.reset()              # what river does on its next update, done now
            self.onset_t = onset
            self.statistic = stat     # reported until the next update
            return True
        return False


class ExceedanceHDDMW:
    """river's HDDM_W (one-sided) on the bit ``x > level`` (level = warm-up quantile of x).

    Nominally the bit is 1 on a fraction (1 - quantile) of ticks; HDDM_W fires when the recent
    rate of ones is significantly higher than the best rate seen since its last reset.
    ``statistic`` is the EWMA rate of ones; ``magnitude`` the rate at firing over the nominal rate.
    """

    def __init__(self, name: str, level: float = math.inf, nominal_rate: float = 0.01,
                 drift_confidence: float = 0.001, warning_confidence: float = 0.005,
                 lambda_val: float = 0.05, channel: str | None = None) -> None:
        self.name = name
        self.channel = channel if channel is not None else name.split(":", 1)[-1]
        self.level, self.nominal_rate = float(level), max(float(nominal_rate), 1e-6)
        self.drift_confidence, self.warning_confidence = drift_confidence, warning_confidence
        self.lambda_val = lambda_val
        self.threshold = 1.0
        self.peak = 0.0
        self.magnitude = 0.0
        self.onset_t: float | None = None
        self.reset()

    def reset(self) -> None:
        self._d = HDDMW(drift_confidence=self.drift_confidence,
                        warning_confidence=self.warning_confidence, lambda_val=self.lambda_val)
        self.statistic = 0.0

    def update(self, x: float, t: float = math.nan) -> bool:
        d = self._d
        d.update(1 if x > self.level else 0)
        rate = d._total.ewma
        self.statistic = rate
        if rate > self.peak:
            self.peak = rate
        if d.drift_detected:
            self.magnitude = rate / self.nominal_rate
            self.reset()
            return True
        return False


class AdwinDetector:
    """river's ADWIN on the statistic (optional). ``statistic`` is the window mean."""

    def __init__(self, name: str, delta: float = 0.002, clock: int = 32,
                 channel: str | None = None) -> None:
        self.name = name
        self.channel = channel if channel is not None else name.split(":", 1)[-1]
        self.delta, self.clock = delta, clock
        self.threshold, self.peak, self.magnitude = 1.0, 0.0, 0.0
        self.onset_t: float | None = None
        self.reset()

    def reset(self) -> None:
        self._d = ADWIN(delta=self.delta, clock=self.clock)
        self.statistic = 0.0

    def update(self, x: float, t: float = math.nan) -> bool:
        before = self._d.estimation
        self._d.update(x)
        self.statistic = self._d.estimation
        if self._d.drift_detected and self._d.estimation > before:   # rises only
            self.magnitude = 1.0
            return True
        return False


class DecimatedKSWIN:
    """river's KSWIN fed every ``decimation``-th sample (optional; a KS test is costly)."""

    def __init__(self, name: str, decimation: int = 10, alpha: float = 0.005,
                 window_size: int = 100, stat_size: int = 30, seed: int = 0,
                 channel: str | None = None) -> None:
        self.name = name
        self.channel = channel if channel is not None else name.split(":", 1)[-1]
        self.decimation = max(1, int(decimation))
        self.alpha, self.window_size, self.stat_size, self.seed = alpha, window_size, stat_size, seed
        self.threshold, self.peak, self.magnitude = 1.0, 0.0, 0.0
        self.onset_t: float | None = None
        self.reset()

    def reset(self) -> None:
        self._d = KSWIN(alpha=self.alpha, window_size=self.window_size, stat_size=self.stat_size,
                        seed=self.seed)
        self._i = 0
        self.statistic = 0.0

    def update(self, x: float, t: float = math.nan) -> bool:
        self._i += 1
        if self._i % self.decimation:
            return False
        self._d.update(x)
        self.statistic = float(getattr(self._d, "p_value", 1.0))
        if self._d.drift_detected:
            self.magnitude = 1.0
            return True
        return False
