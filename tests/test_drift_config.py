"""Monitor configuration (launch/drift_monitor.yaml) and calibration files."""
import json

import numpy as np
import pytest

from controller.drift import (Calibration, DriftMonitor, MonitorConfig, calibrate, from_mapping,
                              load_config)
from controller.drift.calibration import gumbel_level
from controller.drift.config import DEFAULT_CONFIG_PATH
from controller.drift.events import TelemetryWindow


def test_shipped_yaml_loads_and_matches_the_issue_defaults():
    assert DEFAULT_CONFIG_PATH.name == "drift_monitor.yaml" and DEFAULT_CONFIG_PATH.exists()
    cfg = load_config()
    assert cfg.warmup_s >= 60 and cfg.debounce_s == 10.0 and cfg.vote_k == 1
    ph = cfg.page_hinkley
    assert ph.enabled and ph.delta == 0.5 and ph.alpha == 1.0 and ph.threshold_factor == 2.0
    assert ph.target_false_alarms_per_h == 0.001 and ph.block_s == 300.0
    assert cfg.hddm_w.enabled and cfg.hddm_w.channels == ("one_step",)
    assert not cfg.adwin.enabled and not cfg.kswin.enabled
    assert cfg.nominal_model.horizons_s == (0.1, 0.25)
    assert cfg.max_abs == 1e6
    # the bare mapping and the ROS parameter layout give the same config
    assert from_mapping(cfg.to_dict()) == cfg
    assert from_mapping({"drift_monitor": {"ros__parameters": cfg.to_dict()}}) == cfg


@pytest.mark.parametrize("bad, msg", [
    ({"warmup_s": -1.0}, "warmup_s"),
    ({"warmpu_s": 10.0}, "unknown key"),
    ({"page_hinkley": {"delat": 0.5}}, "unknown key"),
    ({"quantile": 1.5}, "quantile"),
    ({"vote_k": 0}, "vote_k"),
    ({"vote_k": 1.5}, "integer"),
    ({"whiten": "pca"}, "whiten"),
    ({"debounce_s": "ten"}, "number"),
    ({"hddm_w": {"enabled": "yes"}}, "true/false"),
    ({"nominal_model": {"horizons_s": [0.1, -0.2]}}, "horizons_s"),
    ({"nominal_model": {"horizons_s": [0.5], "every_s": 0.25}}, "every_s"),
    ({"nominal_model": {"blend": 0.0}}, "blend"),
    ({"gap_factor": float("nan")}, "finite"),
    ({"page_hinkley": 3}, "mapping"),
])
def test_bad_config_is_rejected_with_the_key_named(bad, msg):
    with pytest.raises(ValueError, match=msg):
        from_mapping(bad)


def test_yaml_errors_and_relative_calibration_path(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("drift_monitor:\n  ros__parameters:\n    warmup_s: [1\n")
    with pytest.raises(ValueError, match="YAML"):
        load_config(p)
    p.write_text("warmup_s: 5.0\ncalibration_file: cal.json\n")
    cfg = load_config(p)
    assert cfg.calibration_file == str(tmp_path / "cal.json")
    Calibration(thresholds={"ph:one_step": 7.0}).save(tmp_path / "cal.json")
    mon = DriftMonitor(cfg, obs_dim=1, act_dim=1, dt=0.1, channels={"one_step": 1})
    assert mon.statistics()["ph:one_step:threshold"] == 7.0


def test_calibration_round_trip_and_validation(tmp_path):
    cal = Calibration(thresholds={"ph:one_step": 12.5}, peaks={"ph:one_step": 8.3}, plant="cartpole")
    path = cal.save(tmp_path / "sub" / "c.json")
    assert Calibration.load(path) == cal
    data = json.loads(path.read_text())
    data["thresholds"]["ph:one_step"] = -1
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="positive"):
        Calibration.load(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="JSON"):
        Calibration.load(path)
    with pytest.raises(ValueError, match="format"):
        Calibration.from_dict({"format": "other/9", "thresholds": {}})


def test_gumbel_level_grows_with_rarer_targets():
    x = [10.0, 12.0, 11.0, 13.0, 9.0, 11.0]
    assert gumbel_level(x, 300, 0.01) > gumbel_level(x, 300, 0.1) > max(x)
    assert gumbel_level(x[:2], 300, 0.01) is None


def test_calibrate_on_recorded_windows_sets_thresholds_above_peaks():
    class Src:
        channels = {"one_step": 2}

        def __init__(self):
            self.rng = np.random.default_rng(0)

        def resync(self):
            pass

        def residuals(self, obs, action):
            return [("one_step", self.rng.standard_normal(2))]

    dt = 0.01
    cfg = from_mapping({"warmup_s": 1.0, "min_warmup_samples": 10,
                        "page_hinkley": {"block_s": 10.0}})
    mon = DriftMonitor(cfg, obs_dim=1, act_dim=1, dt=dt, source=Src(), calibrating=True)
    n = 1200
    windows = [TelemetryWindow(np.arange(n) * dt, np.zeros((n, 1)), np.zeros((n, 1)),
                               np.full(n, np.nan), np.zeros(n, dtype=np.int64)) for _ in range(4)]
    cal = calibrate(mon, windows, plant="test")
    assert cal.nominal_hours == pytest.approx(4 * 11.0 / 3600, rel=0.02)
    assert len(cal.block_peaks["ph:one_step"]) == 4
    peak = cal.peaks["ph:one_step"]
    assert cal.thresholds["ph:one_step"] >= 2.0 * peak
    assert cal.thresholds["ph:one_step"] >= cal.tail_levels["ph:one_step"]
    assert "hddm_w:one_step" in cal.nominal_fires
    with pytest.raises(ValueError, match="calibrating"):
        calibrate(DriftMonitor(MonitorConfig(), obs_dim=1, act_dim=1, dt=dt, source=Src()), windows)
    with pytest.raises(ValueError, match="no nominal"):
        calibrate(mon, [])


@pytest.mark.parametrize("bad, msg", [
    ({"page_hinkley": {"threshold_factor": -1.0}}, "page_hinkley.threshold_factor: must be > 0, got -1.0"),
    ({"kswin": {"window_size": 0}}, "kswin.window_size: must be >= 1, got 0"),
    ({"hddm_w": {"drift_confidence": 1.5}}, "hddm_w.drift_confidence: must be < 1, got 1.5"),
    ({"nominal_model": {"horizons_s": [0.1, -0.2]}}, "nominal_model.horizons_s[1]: must be > 0, got -0.2"),
    ({"warmpu_s": 10.0}, "top level: unknown key(s) ['warmpu_s'] (did you mean 'warmup_s'?)"),
    ({"page_hinkley": {"delat": 0.5}}, "page_hinkley: unknown key(s) ['delat'] (did you mean 'delta'?)"),
    ({"min_warmup_samples": "40"}, "min_warmup_samples: expected an integer, got '40'"),
])
def test_errors_name_the_path_to_the_bad_field(bad, msg):
    """One pydantic model for the file: every message is `drift monitor config: <path>: <what>`."""
    with pytest.raises(ValueError) as e:
        from_mapping(bad)
    assert str(e.value).startswith("drift monitor config: ") and msg in str(e.value), str(e.value)


def test_integral_floats_and_yaml_nulls_are_accepted_as_before():
    cfg = from_mapping({"min_warmup_samples": 40.0, "calibration_file": None, "hddm_w": {"channels": ("one_step",)}})
    assert cfg.min_warmup_samples == 40 and isinstance(cfg.min_warmup_samples, int)
    assert cfg.calibration_file == "" and cfg.hddm_w.channels == ("one_step",)
