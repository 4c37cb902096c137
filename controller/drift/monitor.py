"""The drift monitor: validated telemetry -> normalised residuals -> river detectors -> DriftEvent.

One call per control tick, `update(t, obs, action, reward)`. It never raises on bad input and never
blocks: the work per tick is one call into the residual source (a nominal-model prediction), a few
array operations and one or two river updates per channel.

Life cycle and reset semantics
------------------------------
- **warm-up** (``warmup_s`` of accepted telemetry): residuals are collected, nothing is tested.
  At its end every channel fixes its normalisation (a channel that has too few samples, e.g. a
  decimated open-loop channel, keeps collecting until it has ``min_warmup_samples``).
- **monitoring**: each channel's statistic feeds its detectors; when at least ``vote_k`` detectors
  have fired within ``vote_window_s``, an alarm (a `DriftEvent`) is returned, unless one was raised
  less than ``debounce_s`` ago (then the firing is counted as suppressed). A detector resets itself
  after it fires.
- `notify_adapted()` — the controller was swapped after an alarm: alarms are suppressed for
  ``cooldown_s`` and the normalisation is re-estimated (a new warm-up; the new normal includes
  whatever the robot now is). Counters, calibration and the telemetry ring are kept.
- `rebaseline()` — the same re-estimation without the cooldown (e.g. after an operator confirmed the
  robot is fine as it is now).
- `set_source(source)` — a new nominal model (e.g. after system identification); implies rebaseline.
- `reset()` — forget everything but the configuration, the calibration and the lifetime counters:
  a fresh warm-up, empty ring, no history of alarms.

Time is counted in accepted control periods (ticks x dt), not from the timestamps, so a jumping or
resetting clock cannot stretch or skip the warm-up, the debounce or the cooldown.

Threads: the live node ticks on its control thread while the orchestrator, on the executor, calls
`notify_adapted()` and copies recent telemetry (`recent_window()`). ``lock`` (re-entrant) makes each
of those whole with respect to an update; uncontended it costs well under a microsecond.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Iterable, Mapping

import numpy as np

from controller.drift.calibration_file import Calibration
from controller.drift.config import MonitorConfig
from controller.drift.detectors import (AdwinDetector, CalibratedPageHinkley, DecimatedKSWIN,
                                        ExceedanceHDDMW)
from controller.drift.events import DriftEvent, TelemetryRing
from controller.drift.features import ChannelNormalizer, ReportingFeatures, ResidualSource
from controller.drift.telemetry import TickValidator, Verdict

STATE_WARMUP, STATE_MONITORING, STATE_COOLDOWN = "warmup", "monitoring", "cooldown"


class _Channel:
    __slots__ = ("name", "dim", "norm", "detectors", "last", "n")

    def __init__(self, name: str, dim: int, norm: ChannelNormalizer, detectors: list) -> None:
        self.name, self.dim, self.norm, self.detectors = name, dim, norm, detectors
        self.last = math.nan
        self.n = 0


class DriftMonitor:
    """Configurable residual-based drift monitor (see the module docstring for semantics).

    Parameters
    ----------
    config       the monitor settings (`controller.drift.config.load_config()` for the default file)
    obs_dim, act_dim, dt
                 telemetry sizes and the nominal control period in seconds
    source       the `ResidualSource` (a nominal model); without one, pass residuals to `update`
    channels     residual channel -> vector length, required when there is no source
    calibration  detector thresholds (else ``calibration_file`` from the config, else defaults)
    act_low, act_high
                 action limits, for the saturation feature (optional)
    calibrating  run with infinite PageHinkley thresholds and record peaks (`calibration` module)
    profile      accumulate per-stage wall time (`timing()`); costs ~0.3 us per tick
    """

    def __init__(self, config: MonitorConfig | None = None, *, obs_dim: int, act_dim: int, dt: float,
                 source: ResidualSource | None = None, channels: Mapping[str, int] | None = None,
                 calibration: Calibration | None = None, act_low=None, act_high=None,
                 calibrating: bool = False, profile: bool = False) -> None:
        self.config = config if config is not None else MonitorConfig()
        cfg = self.config
        self.lock = threading.RLock()
        self.dt = float(dt)
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.validator = TickValidator(obs_dim, act_dim, dt, cfg.gap_factor, cfg.max_abs,
                                       cfg.clock_reset_ticks)
        if calibration is None and cfg.calibration_file and not calibrating:
            calibration = Calibration.load(cfg.calibration_file)
        self.calibration = calibration
        self.calibrating = bool(calibrating)
        self.profile = bool(profile)
        self.ring = TelemetryRing(max(1, int(round(cfg.window_s / self.dt))), obs_dim, act_dim)
        self.features = ReportingFeatures(self.dt, cfg.tau_s, act_low, act_high)
        self.counters: dict[str, int] = {"alarms": 0, "suppressed": 0, "fires": 0,
                                         "residual_errors": 0, "bad_residuals": 0,
                                         "internal_errors": 0}
        self.fire_counts: dict[str, int] = {}
        self.events: list[DriftEvent] = []       # the most recent alarms (bounded)
        self.max_events = 100
        self.monitored_seconds = 0.0            # lifetime, for rates and calibration
        self.block_peaks: dict[str, list[float]] = {}   # calibration: per-block peaks
        self._lifetime_peaks: dict[str, float] = {}
        self._block_s = 0.0
        self._timing = {"residual_s": 0.0, "detect_s": 0.0, "total_s": 0.0, "ticks": 0}
        self.source: ResidualSource | None = None
        self._channels: dict[str, _Channel] = {}
        if source is not None:
            self.set_source(source)
        elif channels:
            self._build_channels(dict(channels))
        else:
            raise ValueError("DriftMonitor: give a residual source or the residual channels")
        self.reset()

    def __getstate__(self) -> dict:            # a lock does not cross processes (the drift bench pickles)
        state = dict(self.__dict__)
        state.pop("lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.lock = threading.RLock()

    # -- construction -----------------------------------------------------------------------------
    def _threshold(self, name: str) -> float:
        if self.calibrating:
            return math.inf
        if self.calibration is not None and name in self.calibration.thresholds:
            return float(self.calibration.thresholds[name])
        return self.config.page_hinkley.default_threshold

    def _build_channels(self, channels: dict[str, int]) -> None:
        cfg = self.config
        cap = int(math.ceil(cfg.warmup_s / self.dt)) + cfg.min_warmup_samples + 1
        self._channels = {}
        for name, dim in channels.items():
            dim = int(dim)
            if dim < 1:
                raise ValueError(f"DriftMonitor: channel {name!r} has dimension {dim}")
            dets: list = []
            ph = cfg.page_hinkley
            if ph.enabled:
                dets.append(CalibratedPageHinkley(f"ph:{name}", self._threshold(f"ph:{name}"),
                                                  ph.delta, ph.alpha, ph.min_instances, channel=name))
            hd = cfg.hddm_w
            if hd.enabled and ("*" in hd.channels or name in hd.channels):
                dets.append(ExceedanceHDDMW(f"hddm_w:{name}", math.inf, 1 - cfg.quantile,
                                            hd.drift_confidence, hd.warning_confidence,
                                            hd.lambda_val, channel=name))
            if cfg.adwin.enabled:
                dets.append(AdwinDetector(f"adwin:{name}", cfg.adwin.delta, channel=name))
            if cfg.kswin.enabled:
                k = cfg.kswin
                dets.append(DecimatedKSWIN(f"kswin:{name}", k.decimation, k.alpha, k.window_size,
                                           k.stat_size, channel=name))
            norm = ChannelNormalizer(dim, cap, cfg.clip, cfg.whiten, cfg.quantile)
            self._channels[name] = _Channel(name, dim, norm, dets)
            for d in dets:
                self.fire_counts.setdefault(d.name, 0)

    def set_source(self, source: ResidualSource) -> None:
        """Use a new nominal model; the channels are rebuilt and the monitor re-baselines."""
        channels = dict(source.channels)
        if not channels:
            raise ValueError("DriftMonitor: the residual source has no channels")
        with self.lock:
            self.source = source
            self._build_channels(channels)
            if hasattr(self, "_state"):
                self.rebaseline()

    # -- reset semantics --------------------------------------------------------------------------
    def reset(self) -> None:
        """Fresh warm-up, empty telemetry ring, no alarm history (config, calibration and the
        lifetime counters are kept)."""
        with self.lock:
            self.validator.restart()
            self.ring.clear()
            self.features.reset()
            self._segment = 0
            self._broken = True
            self._clock = 0.0                 # accepted control periods x dt
            self._tick = 0
            self._last_alarm = -math.inf
            self._cooldown_until = -math.inf
            self._rebaseline_at(0.0)

    def rebaseline(self) -> None:
        """Re-estimate the residual normalisation from a new warm-up; detectors restart."""
        with self.lock:
            self._rebaseline_at(self._clock)

    def _rebaseline_at(self, clock: float) -> None:
        self._warm_start = clock
        if self.calibrating:        # a partial block is kept in the peaks, not in the blocks
            for d in self.detectors():
                self._lifetime_peaks[d.name] = max(self._lifetime_peaks.get(d.name, 0.0), d.peak)
                d.peak = 0.0
        self._block_s = 0.0
        self._state = STATE_WARMUP
        self._recent: dict[str, float] = {}
        for ch in self._channels.values():
            ch.norm.reset()
            ch.last = math.nan
            ch.n = 0
            for d in ch.detectors:
                d.reset()

    def notify_adapted(self) -> None:
        """The controller was replaced: suppress alarms for ``cooldown_s`` and re-baseline."""
        with self.lock:
            self._cooldown_until = self._clock + self.config.cooldown_s
            self.rebaseline()

    def resync(self) -> None:
        """Declare the telemetry history broken (the next valid tick starts a new segment)."""
        self._broken = True

    # -- the tick ---------------------------------------------------------------------------------
    def update(self, t, obs, action, reward=None,
               residuals: Iterable[tuple[str, np.ndarray]] | Mapping[str, np.ndarray] | None = None
               ) -> DriftEvent | None:
        """Process one control tick; returns a DriftEvent when this tick raises an alarm.

        `residuals` are used instead of asking the source (for monitors built without one, or to
        replay precomputed residuals). Never raises: refused ticks are counted, and an internal
        failure (a bug, or numpy warnings configured as errors) is counted in ``internal_errors``
        and the history is re-synchronised.
        """
        with self.lock:
            try:
                return self._update(t, obs, action, reward, residuals)
            except Exception:
                self.counters["internal_errors"] += 1
                self._broken = True
                return None

    def recent_window(self):
        """A copy of the telemetry ring (a `TelemetryWindow`), taken between two updates."""
        with self.lock:
            return self.ring.window()

    def _update(self, t, obs, action, reward, residuals) -> DriftEvent | None:
        prof = self.profile
        if prof:
            t0 = time.perf_counter()
        verdict, tick = self.validator.check(t, obs, action, reward)
        self._tick += 1
        if verdict is Verdict.REFUSE:
            if self.validator.last_reason not in ("repeated_time", "backwards_time"):
                self._broken = True    # this control period's data is lost
            return None
        if verdict is Verdict.RESYNC or self._broken:
            return self._start_segment(tick, residuals)
        dt = self.dt
        self._clock += dt
        if residuals is None and self.source is not None:
            try:
                residuals = self.source.residuals(tick.obs, tick.action)
            except Exception:  # a nominal model must never take the monitor down
                self.counters["residual_errors"] += 1
                self._broken = True
                return None
        if prof:
            t1 = time.perf_counter()
        warming = self._state == STATE_WARMUP
        fired: list = []
        if residuals:
            items = residuals.items() if isinstance(residuals, Mapping) else residuals
            channels = self._channels
            tt = tick.t
            for name, r in items:
                ch = channels.get(name)
                if ch is None:
                    self.counters["bad_residuals"] += 1
                    continue
                if not isinstance(r, np.ndarray) or r.dtype != np.float64:
                    try:
                        r = np.asarray(r, dtype=np.float64)
                    except (TypeError, ValueError, OverflowError):
                        self.counters["bad_residuals"] += 1
                        continue
                if r.shape != (ch.dim,):
                    self.counters["bad_residuals"] += 1
                    continue
                if ch.norm.ready:
                    s = ch.norm.statistic(r)       # non-finite components saturate at the clip
                    ch.last = s
                    ch.n += 1
                    for d in ch.detectors:
                        if d.update(s, tt):
                            fired.append(d)
                elif np.isfinite(r).all():
                    ch.norm.add(r)
                else:
                    self.counters["bad_residuals"] += 1
        if warming:
            if self._clock - self._warm_start >= self.config.warmup_s:
                self._finish_warmup()
        else:
            self.monitored_seconds += dt
            if self.calibrating:
                self._block_s += dt
                if self._block_s >= self.config.page_hinkley.block_s:
                    self._block_s = 0.0
                    self._close_block()
        self.ring.push(tick.t, tick.obs, tick.action, tick.reward, self._segment)
        if warming:
            self.features.update(tick.reward, True)
        event = self._vote(fired, tick.t) if fired else None
        if prof:
            t2 = time.perf_counter()
            tm = self._timing
            tm["residual_s"] += t1 - t0
            tm["detect_s"] += t2 - t1
            tm["total_s"] += t2 - t0
            tm["ticks"] += 1
        return event

    def _start_segment(self, tick, residuals) -> None:
        """A valid tick that begins a new contiguous segment: seed the source, test nothing."""
        self._broken = False
        self._segment += 1
        self._clock += self.dt
        if self.source is not None and residuals is None:
            try:
                self.source.resync()
                for _ in self.source.residuals(tick.obs, tick.action):
                    pass
            except Exception:
                self.counters["residual_errors"] += 1
                self._broken = True
        self.ring.push(tick.t, tick.obs, tick.action, tick.reward, self._segment)
        self.features.update(tick.reward, self._state == STATE_WARMUP)
        return None

    def _finish_warmup(self) -> None:
        done = True
        for ch in self._channels.values():
            if ch.norm.ready:
                continue
            if ch.norm.n >= self.config.min_warmup_samples and ch.norm.finish():
                for d in ch.detectors:
                    if isinstance(d, ExceedanceHDDMW):
                        d.level = ch.norm.level
            else:
                done = False
        if done:
            self._state = STATE_MONITORING

    def _vote(self, fired: list, t: float) -> DriftEvent | None:
        cfg = self.config
        now = self._clock
        for d in fired:
            self.counters["fires"] += 1
            self.fire_counts[d.name] = self.fire_counts.get(d.name, 0) + 1
            self._recent[d.name] = now
        if self.calibrating:
            self._recent.clear()
            return None
        horizon = now - cfg.vote_window_s - 1e-9
        voters = [n for n, ft in self._recent.items() if ft >= horizon]
        if len(voters) < cfg.vote_k:
            return None
        if now < self._cooldown_until or now - self._last_alarm < cfg.debounce_s:
            self.counters["suppressed"] += 1
            self._recent.clear()
            return None
        self._last_alarm = now
        self._recent.clear()
        self.counters["alarms"] += 1
        dets = {d.name: d for ch in self._channels.values() for d in ch.detectors}
        magnitude = {n: float(dets[n].magnitude) for n in sorted(voters)}
        onsets = [dets[n].onset_t for n in voters if dets[n].onset_t is not None]
        features = self.features.snapshot(self.ring)
        features.update({f"s:{c.name}": c.last for c in self._channels.values()})
        event = DriftEvent(t=float(t), tick=self._tick - 1, detectors=tuple(sorted(voters)),
                           channels=tuple(sorted({dets[n].channel for n in voters})),
                           magnitude=magnitude, onset_t=min(onsets) if onsets else None,
                           features=features, window=self.ring.window())
        self.events.append(event)
        if len(self.events) > self.max_events:
            del self.events[0]
        return event

    # -- introspection ----------------------------------------------------------------------------
    @property
    def state(self) -> str:
        if self._state == STATE_WARMUP:
            return STATE_WARMUP
        return STATE_COOLDOWN if self._clock < self._cooldown_until else STATE_MONITORING

    @property
    def channels(self) -> dict[str, int]:
        return {n: c.dim for n, c in self._channels.items()}

    def detectors(self) -> list:
        return [d for ch in self._channels.values() for d in ch.detectors]

    def peaks(self) -> dict[str, float]:
        """Largest statistic each detector reached (what calibration turns into thresholds)."""
        return {d.name: max(float(d.peak), self._lifetime_peaks.get(d.name, 0.0))
                for d in self.detectors()}

    def _close_block(self) -> None:
        """Calibration bookkeeping: the peaks of one block of monitored time."""
        for d in self.detectors():
            self.block_peaks.setdefault(d.name, []).append(float(d.peak))
            self._lifetime_peaks[d.name] = max(self._lifetime_peaks.get(d.name, 0.0), d.peak)
            d.peak = 0.0

    def statistics(self) -> dict[str, float]:
        """Current channel statistics (``s:<channel>``) and detector statistics and thresholds."""
        out: dict[str, float] = {}
        for ch in self._channels.values():
            out[f"s:{ch.name}"] = ch.last
            for d in ch.detectors:
                out[d.name] = float(d.statistic)
                out[f"{d.name}:threshold"] = float(d.threshold)
        out.update(self.features.snapshot(self.ring))
        return out

    def all_counters(self) -> dict[str, int]:
        """Input validity counters and alarm counters together."""
        return {**self.validator.counters, **self.counters}

    def diagnostics(self) -> dict[str, str]:
        """Flat key -> string map, as a diagnostic_msgs/KeyValue list carries it."""
        with self.lock:
            return self._diagnostics()

    def _diagnostics(self) -> dict[str, str]:
        out = {"state": self.state, "monitored_s": f"{self.monitored_seconds:.1f}",
               "calibrated": str(self.calibration is not None).lower()}
        out.update({k: str(v) for k, v in self.all_counters().items()})
        for k, v in self.statistics().items():
            out[k] = f"{v:.6g}"
        if self.events:
            out["last_alarm_t"] = f"{self.events[-1].t:.3f}"
            out["last_alarm_detectors"] = ",".join(self.events[-1].detectors)
        return out

    def timing(self) -> dict[str, float]:
        """Mean microseconds per tested tick (needs ``profile=True``): ``residual_us`` = validation
        + the residual source (the nominal-model prediction), ``detect_us`` = normalisation,
        detectors, voting, ring buffer and features, ``total_us`` = both."""
        n = max(1, self._timing["ticks"])
        return {"residual_us": 1e6 * self._timing["residual_s"] / n,
                "detect_us": 1e6 * self._timing["detect_s"] / n,
                "total_us": 1e6 * self._timing["total_s"] / n, "ticks": self._timing["ticks"]}
