"""Telemetry features per control tick: normalised model residuals and the reporting signals.

Why residuals: raw joint states and rewards are autocorrelated and move with every setpoint change,
so a change detector fed with them alarms all the time. The residual of a nominal dynamics model
(what the robot did minus what the nominal robot would have done from the same state with the same
action) is flat while nothing changed, whatever the robot is doing, and moves when the dynamics do.

The monitor never computes predictions itself (that needs MuJoCo, which lives in `sim/`): it asks a
`ResidualSource` once per valid tick. `sim.nominal_model.NominalPredictor` is the one driftgate
ships; anything with the same three members works (a learned model, a replayed recording, a test
double).

Each residual channel is normalised per dimension by statistics from a warm-up period (mean and
standard deviation of every component), then reduced to one number per tick:

    s = mean_i min(z_i^2, clip^2),   z_i = (r_i - mean_i) / std_i

which is about 1 while the robot is nominal, whatever the units and scales of the components. The
clip bounds the influence of one wild sample (a contact chatter, a sensor spike) on the detectors.
With ``whiten="full"`` the residual is whitened with the warm-up covariance instead (shrunk towards
its diagonal), which accounts for components that always move together.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class ResidualSource(Protocol):
    """What the monitor needs from a nominal model.

    ``channels`` maps each residual channel name to its vector length. ``residuals(obs, action)`` is
    called once for every accepted tick, in time order, with that tick's observation and the action
    applied at that tick; it returns the residual vectors that became available at this tick (none,
    one or several channels). ``resync()`` is called when the history is broken (first tick, gap,
    refused tick, clock reset): the next call must not use anything seen before it.
    """

    channels: Mapping[str, int]

    def residuals(self, obs: np.ndarray, action: np.ndarray) -> Iterable[tuple[str, np.ndarray]]:
        ...

    def resync(self) -> None:
        ...


class ChannelNormalizer:
    """Warm-up statistics of one residual channel and the per-tick normalised statistic.

    Collect residual vectors with `add` while warming up; `finish()` fixes the mean and scale and the
    `quantile` of the statistic over the warm-up samples (the exceedance level). Afterwards
    `statistic(r)` maps a residual vector to the scalar s described in the module docstring.
    """

    def __init__(self, dim: int, capacity: int, clip: float = 10.0, whiten: str = "diag",
                 quantile: float = 0.99, shrinkage: float = 0.1) -> None:
        if whiten not in ("diag", "full"):
            raise ValueError(f"whiten must be 'diag' or 'full', got {whiten!r}")
        self.dim, self.capacity = int(dim), max(2, int(capacity))
        self.clip2 = float(clip) ** 2
        self.whiten, self.quantile, self.shrinkage = whiten, float(quantile), float(shrinkage)
        self._buf = np.zeros((self.capacity, self.dim))
        self.n = 0
        self.ready = False
        self.mean = np.zeros(self.dim)
        self.scale = np.ones((self.dim,)) if whiten == "diag" else np.eye(self.dim)
        self.level = math.inf          # warm-up `quantile` of the statistic
        self.nominal_mean = 1.0        # warm-up mean of the statistic

    def reset(self) -> None:
        self.n = 0
        self.ready = False
        self.level = math.inf

    def add(self, r: np.ndarray) -> None:
        if self.n < self.capacity:
            self._buf[self.n] = r
            self.n += 1

    def finish(self) -> bool:
        """Fix the normalisation from the samples so far; False (still warming up) if too few."""
        if self.n < max(10, 2 * self.dim if self.whiten == "full" else 10):
            return False
        x = self._buf[:self.n]
        mean = x.mean(axis=0)
        centred = x - mean
        sd = centred.std(axis=0)
        floor = max(1e-12, 1e-6 * float(sd.max()))
        sd = np.maximum(sd, floor)
        if self.whiten == "diag":
            scale = 1.0 / sd
        else:
            cov = np.cov(centred, rowvar=False).reshape(self.dim, self.dim)
            cov = (1 - self.shrinkage) * cov + self.shrinkage * np.diag(np.diag(cov))
            cov += np.eye(self.dim) * floor ** 2
            try:
                scale = np.linalg.inv(np.linalg.cholesky(cov))      # z = L^-1 (r - mean)
            except np.linalg.LinAlgError:
                scale = np.diag(1.0 / sd)
        self.mean, self.scale = mean, scale
        self.ready = True
        s = np.array([self.statistic(r) for r in x])
        self.level = float(np.quantile(s, self.quantile))
        self.nominal_mean = float(s.mean())
        return True

    def statistic(self, r: np.ndarray) -> float:
        z = (r - self.mean) * self.scale if self.whiten == "diag" else self.scale @ (r - self.mean)
        s = float(z.dot(z))
        if s > self.clip2:                       # some component may exceed the clip: exact path
            z2 = z * z
            np.minimum(z2, self.clip2, out=z2)
            s = float(z2.sum())
        elif s != s:
            return self.clip2                    # NaN (inf - inf) counts as the worst case
        s /= self.dim
        return s if s == s else self.clip2


class ReportingFeatures:
    """Signals reported with every alarm and in /diagnostics, never fed to detectors as alarms:

    - ``perf_centred``  the performance signal (reward, or minus a tracking error) averaged over the
                        last ``tau_s``, minus its warm-up mean; negative means worse than usual
    - ``saturation``    fraction of action components at their limits over the last ``tau_s``

    Per tick only the warm-up baseline is accumulated (two float additions); the features are
    computed from the telemetry ring when asked for.
    """

    def __init__(self, dt: float, tau_s: float = 1.0, act_low=None, act_high=None,
                 sat_fraction: float = 0.99) -> None:
        self.n_recent = max(1, int(round(tau_s / dt)))
        self._warm_sum, self._warm_n = 0.0, 0
        if act_low is not None and act_high is not None:
            lo, hi = np.asarray(act_low, float), np.asarray(act_high, float)
            self._mid, self._lim = (hi + lo) / 2, sat_fraction * (hi - lo) / 2
        else:
            self._mid = self._lim = None

    def reset(self) -> None:
        self._warm_sum, self._warm_n = 0.0, 0

    @property
    def perf_baseline(self) -> float:
        return self._warm_sum / self._warm_n if self._warm_n else math.nan

    def update(self, reward: float, warming: bool) -> None:
        if warming and reward == reward:
            self._warm_sum += reward
            self._warm_n += 1

    def snapshot(self, ring) -> dict[str, float]:
        w = ring.window(self.n_recent)
        out = {"perf_centred": math.nan, "saturation": math.nan}
        if len(w):
            rew = w.reward[~np.isnan(w.reward)]
            if rew.size and self._warm_n:
                out["perf_centred"] = float(rew.mean()) - self.perf_baseline
            if self._mid is not None and w.action.shape[1] == self._mid.size and w.action.size:
                out["saturation"] = float(np.mean(np.abs(w.action - self._mid) >= self._lim))
        return out
