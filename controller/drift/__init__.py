"""Drift detection on live telemetry (the live side: numpy and river only, no torch, no MuJoCo).

    telemetry tick ──► TickValidator ──► ResidualSource (nominal model, wired in from outside)
                                              │ residual vectors per channel
                                              ▼
               ChannelNormalizer (warm-up) ──► one-sided PageHinkley (calibrated), HDDM_W, ...
                                              │ k-of-n vote, debounce, cooldown
                                              ▼
                                         DriftEvent (+ telemetry window from the ring buffer)

Typical wiring (the nominal model lives in `sim.nominal_model`; adapters and benchmarks connect it)::

    cfg = load_config()                                   # launch/drift_monitor.yaml
    source = sim.nominal_model.make_predictor("cartpole", cfg)
    monitor = DriftMonitor(cfg, obs_dim=5, act_dim=1, dt=0.01, source=source,
                           calibration=Calibration.load("cartpole_calibration.json"))
    event = monitor.update(t, obs, action, reward)        # once per control tick
"""
from controller.drift.calibration import Calibration, calibrate, calibration_from_monitor, feed_window
from controller.drift.config import MonitorConfig, from_mapping, load_config
from controller.drift.detectors import (AdwinDetector, CalibratedPageHinkley, DecimatedKSWIN,
                                        ExceedanceHDDMW)
from controller.drift.events import DriftEvent, TelemetryRing, TelemetryWindow
from controller.drift.features import ChannelNormalizer, ReportingFeatures, ResidualSource
from controller.drift.monitor import DriftMonitor
from controller.drift.telemetry import REASONS, TickValidator, Verdict

__all__ = [
    "AdwinDetector", "CalibratedPageHinkley", "Calibration", "ChannelNormalizer", "DecimatedKSWIN",
    "DriftEvent", "DriftMonitor", "ExceedanceHDDMW", "MonitorConfig", "REASONS",
    "ReportingFeatures", "ResidualSource", "TelemetryRing", "TelemetryWindow", "TickValidator",
    "Verdict", "calibrate", "calibration_from_monitor", "feed_window", "from_mapping", "load_config",
]
