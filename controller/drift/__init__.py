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
    robot = load_profile(find_profile(ROBOT))             # any robot: a profile file or a shipped name
    source = sim.nominal_model.make_predictor(ROBOT, cfg)
    info = sim.observation.plant_info(ROBOT)              # sizes and control period, from the model
    monitor = DriftMonitor(cfg, obs_dim=len(info["obs_names"]), act_dim=info["act_dim"],
                           dt=info["control_dt"], source=source,
                           calibration=Calibration.load(robot.asset_path("calibration")))
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
