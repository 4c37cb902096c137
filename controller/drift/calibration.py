"""Calibration: turn a nominal recording into detector thresholds.

The monitor is run over nominal telemetry (a recording of the robot doing its normal work, at least
30 minutes is recommended) in calibration mode: every detector sees the same normalised residual
statistics as in live use, but PageHinkley thresholds are infinite, so each records the largest
statistic it reaches. The threshold is the larger of ``threshold_factor`` (2 by default) times that
peak and a Gumbel tail level (`gumbel_level`) for ``target_false_alarms_per_h`` fitted to the peaks
of blocks of the run. Calibrate on several segments, each with its own warm-up (the CLI splits a
recording into segments), so the thresholds also cover the variation of the warm-up normalisation.
HDDM_W has no threshold to calibrate; its firings on the nominal recording are counted and
reported so that a configuration in which it false-alarms is visible.

The result is a `Calibration` (`controller.drift.calibration_file`), a small JSON file
(`driftgate drift-calibrate` writes it; the monitor YAML's ``calibration_file`` points at it).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Iterable

import numpy as np

from controller.drift.calibration_file import FORMAT, MIN_THRESHOLD, Calibration  # noqa: F401  (re-exported)

if TYPE_CHECKING:  # pragma: no cover  (types only: the monitor imports calibration_file, not this module)
    from controller.drift.events import TelemetryWindow
    from controller.drift.monitor import DriftMonitor

def feed_window(monitor: "DriftMonitor", window: "TelemetryWindow") -> int:
    """Replay a recorded window through a monitor; returns the number of alarms raised."""
    alarms = 0
    rewards = window.reward
    for i in range(len(window)):
        r = rewards[i]
        if monitor.update(window.t[i], window.obs[i], window.action[i],
                          None if np.isnan(r) else r) is not None:
            alarms += 1
    return alarms


def calibrate(monitor: "DriftMonitor", recordings: Iterable["TelemetryWindow"],
              threshold_factor: float | None = None, plant: str = "") -> Calibration:
    """Run `monitor` (built with ``calibrating=True``) over nominal recordings; derive thresholds.

    Each recording starts a fresh warm-up (`monitor.reset()`); peaks are taken over all of them.
    """
    if not monitor.calibrating:
        raise ValueError("calibrate: the monitor must be built with calibrating=True")
    factor = monitor.config.page_hinkley.threshold_factor if threshold_factor is None \
        else float(threshold_factor)
    if not factor > 0:
        raise ValueError(f"calibrate: threshold_factor must be > 0, got {factor!r}")
    seen = 0
    for window in recordings:
        monitor.reset()
        feed_window(monitor, window)
        seen += 1
    if seen == 0:
        raise ValueError("calibrate: no nominal recording given")
    return calibration_from_monitor(monitor, factor, plant)


def gumbel_level(block_maxima, block_s: float, rate_per_h: float) -> float | None:
    """The level that the maximum of one block exceeds with probability rate_per_h x block hours,
    from a Gumbel distribution fitted to block maxima by moments (None with fewer than 3 blocks).

    Maxima of a CUSUM / Page-Hinkley statistic over long blocks have exponential tails (the
    statistic is a random walk with negative drift, reflected at its minimum), the Gumbel domain.

    >>> round(gumbel_level([10.0, 12.0, 11.0, 13.0, 9.0, 11.0], 300.0, 0.01), 1)
    18.2
    """
    x = np.asarray(list(block_maxima), dtype=float)
    if x.size < 3 or not (rate_per_h > 0 and block_s > 0):
        return None
    beta = max(float(x.std(ddof=1)), 1e-9) * math.sqrt(6.0) / math.pi
    mu = float(x.mean()) - 0.5772156649 * beta
    p = min(0.5, rate_per_h * block_s / 3600.0)
    return mu - beta * math.log(-math.log1p(-p))


def calibration_from_monitor(monitor: "DriftMonitor", threshold_factor: float,
                             plant: str = "") -> Calibration:
    """Thresholds from what a calibrating monitor has recorded so far.

    threshold = max(threshold_factor x the largest statistic seen,
                    the Gumbel level for ``page_hinkley.target_false_alarms_per_h``)
    (the second only when there are at least 3 complete blocks of ``page_hinkley.block_s``).
    """
    ph = monitor.config.page_hinkley
    peaks = monitor.peaks()
    thresholds, tail = {}, {}
    for name, p in peaks.items():
        if not name.startswith("ph:"):
            continue
        level = gumbel_level(monitor.block_peaks.get(name, []), ph.block_s,
                             ph.target_false_alarms_per_h)
        tail[name] = level
        thresholds[name] = max(MIN_THRESHOLD, threshold_factor * p, level or 0.0)
    hours = monitor.monitored_seconds / 3600.0
    note = "" if hours >= 0.5 else (f"calibrated on {hours * 60:.1f} monitored minutes; >= 30 min "
                                   f"of nominal telemetry is recommended")
    return Calibration(thresholds=thresholds, peaks=peaks, threshold_factor=threshold_factor,
                       nominal_hours=hours, nominal_fires=dict(monitor.fire_counts), plant=plant,
                       dt=monitor.dt, note=note,
                       tail_levels={k: v for k, v in tail.items() if v is not None},
                       block_peaks={k: [round(x, 4) for x in v]
                                    for k, v in monitor.block_peaks.items() if k.startswith("ph:")})
