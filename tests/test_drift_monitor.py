"""DriftMonitor semantics with a synthetic residual source (no MuJoCo): warm-up, detection,
debounce, voting, cooldown, reset, bad input, the DriftEvent and its telemetry window."""
import math

import numpy as np
import pytest

from controller.drift import (Calibration, DriftMonitor, MonitorConfig, TelemetryRing,
                              TelemetryWindow, from_mapping)
from controller.drift.features import ChannelNormalizer, ResidualSource

DT = 0.01


class FakeSource:
    """Gaussian residuals; after `shift_at` accepted calls the mean of every component moves."""

    def __init__(self, seed=0, shift_at=None, shift=3.0, dim=3):
        self.channels = {"one_step": dim, "kstep_0.10s": dim}
        self.rng = np.random.default_rng(seed)
        self.n = 0
        self.shift_at, self.shift, self.dim = shift_at, shift, dim
        self.resyncs = 0

    def resync(self):
        self.resyncs += 1

    def residuals(self, obs, action):
        self.n += 1
        mu = self.shift if self.shift_at is not None and self.n >= self.shift_at else 0.0
        out = [("one_step", mu + self.rng.standard_normal(self.dim))]
        if self.n % 10 == 0:
            out.append(("kstep_0.10s", 2 * mu + self.rng.standard_normal(self.dim)))
        return out


def make(source=None, calibration=None, **cfg):
    base = dict(warmup_s=2.0, min_warmup_samples=10, debounce_s=1.0, cooldown_s=3.0, window_s=1.0)
    base.update(cfg)
    config = from_mapping(base)
    if calibration is None:
        calibration = Calibration(thresholds={"ph:one_step": 30.0, "ph:kstep_0.10s": 30.0})
    return DriftMonitor(config, obs_dim=2, act_dim=1, dt=DT, source=source or FakeSource(),
                        calibration=calibration, act_low=[-1.0], act_high=[1.0])


def feed(mon, n, t0=0.0, obs=(0.0, 0.0), action=(0.0,), reward=1.0):
    events = []
    for i in range(n):
        ev = mon.update(t0 + i * DT, np.array(obs), np.array(action), reward)
        if ev is not None:
            events.append(ev)
    return events


def test_warmup_then_quiet_on_nominal_residuals():
    mon = make()
    assert mon.state == "warmup"
    assert feed(mon, 150) == []
    assert mon.state == "warmup"
    assert feed(mon, 3000, t0=1.5) == []
    assert mon.state == "monitoring"
    assert mon.monitored_seconds > 25
    assert mon.counters["internal_errors"] == 0
    c = mon.all_counters()
    assert c["ticks"] == c["accepted"] + c["refused"] + c["resyncs"] == 3150


def test_shift_is_detected_quickly_and_event_is_complete():
    src = FakeSource(shift_at=800)
    mon = make(src)
    events = feed(mon, 1000)          # the shift begins at tick 799 (t = 7.99 s)
    assert len(events) == 2           # then once more after the 1 s debounce
    ev = events[0]
    delay = ev.t - 799 * DT
    assert 0 <= delay < 0.2
    assert ev.detectors and set(ev.channels) <= {"one_step", "kstep_0.10s"}
    assert all(m >= 1.0 for k, m in ev.magnitude.items() if k.startswith("ph:"))
    # the onset estimate is the detector's last minimum (coarse for a decimated channel)
    assert ev.onset_t is not None and ev.t - 2.0 < ev.onset_t <= ev.t
    w = ev.window
    assert isinstance(w, TelemetryWindow) and len(w) == 100          # window_s / dt
    assert w.t[-1] == pytest.approx(ev.t) and np.all(np.diff(w.t) > 0)
    assert set(ev.features) >= {"perf_centred", "saturation", "s:one_step"}
    d = ev.to_dict(include_window=True)
    assert d["window_ticks"] == 100 and len(d["window"]["t"]) == 100
    ev.to_json(include_window=True)                                      # JSON-safe (no NaN)


def test_debounce_limits_alarm_rate():
    mon = make(FakeSource(shift_at=300, shift=5.0), debounce_s=1.0)
    events = feed(mon, 800)           # 5 s of shifted residuals
    assert 3 <= len(events) <= 6
    assert np.all(np.diff([e.t for e in events]) >= 1.0 - 1e-9)
    assert mon.counters["suppressed"] > 0


def test_k_of_n_voting_needs_two_detectors():
    # only the one-step channel shifts; the k-step channel stays nominal
    class OneChannel(FakeSource):
        def residuals(self, obs, action):
            out = super().residuals(obs, action)
            return [(n, r if n == "one_step" else self.rng.standard_normal(self.dim)) for n, r in out]

    cal = Calibration(thresholds={"ph:one_step": 30.0, "ph:kstep_0.10s": 30.0})
    one = make(OneChannel(shift_at=400), calibration=cal, hddm_w={"enabled": False})
    assert feed(one, 700)
    # (the decimated channel's detector needs min_instances samples: a wide vote window)
    two = make(OneChannel(shift_at=400), calibration=cal, hddm_w={"enabled": False}, vote_k=2,
               vote_window_s=2.0)
    assert feed(two, 700) == []
    both = make(FakeSource(shift_at=400), calibration=cal, hddm_w={"enabled": False}, vote_k=2,
                vote_window_s=2.0)
    ev = feed(both, 700)
    assert ev and len(ev[0].detectors) >= 2


def test_notify_adapted_cools_down_and_rebaselines():
    src = FakeSource(shift_at=400)
    mon = make(src, cooldown_s=3.0)
    assert len(feed(mon, 500)) == 1
    mon.notify_adapted()
    assert mon.state == "warmup"
    # the shifted residuals are the new normal after the re-baseline: no alarms
    assert feed(mon, 1500, t0=5.0) == []
    assert mon.state == "monitoring"
    assert len(mon.events) == 1


def test_reset_forgets_history_but_keeps_counters():
    mon = make(FakeSource(shift_at=300))
    feed(mon, 400)
    alarms = mon.counters["alarms"]
    assert alarms >= 1 and len(mon.ring) > 0
    mon.reset()
    assert mon.state == "warmup" and len(mon.ring) == 0
    assert mon.counters["alarms"] == alarms
    # time may restart from zero after a reset
    assert mon.update(0.0, np.zeros(2), np.zeros(1), 1.0) is None
    assert mon.validator.counters["backwards_time"] == 0


def test_bad_ticks_are_refused_and_counted():
    src = FakeSource()
    mon = make(src)
    feed(mon, 10)
    v = mon.validator.counters
    t = 10 * DT
    assert mon.update(t, [np.nan, 0.0], [0.0], 1.0) is None
    assert v["non_finite"] == 1
    assert mon.update(t, [0.0, 0.0], [np.inf], 1.0) is None
    assert mon.update(t, [0.0, 0.0], [0.0], float("nan")) is None
    assert v["non_finite"] == 3
    assert mon.update(t, [0.0, 0.0, 0.0], [0.0], 1.0) is None
    assert mon.update(t, [[0.0, 0.0]], [0.0], 1.0) is None
    assert mon.update(t, "ab", [0.0], 1.0) is None
    assert v["wrong_length"] == 3
    assert mon.update(t, [1e9, 0.0], [0.0], 1.0) is None
    assert v["out_of_range"] == 1
    assert mon.update(float("inf"), [0.0, 0.0], [0.0], 1.0) is None
    assert mon.update("noon", [0.0, 0.0], [0.0], 1.0) is None
    assert v["bad_time"] == 2
    # a lost control period breaks the prediction chain: the next good tick re-synchronises
    resyncs = src.resyncs
    assert mon.update(t, [0.0, 0.0], [0.0], 1.0) is None
    assert src.resyncs == resyncs + 1
    # duplicates and late messages do not break the chain
    assert mon.update(t, [0.0, 0.0], [0.0], 1.0) is None
    assert mon.update(t - DT, [0.0, 0.0], [0.0], 1.0) is None
    assert v["repeated_time"] == 1 and v["backwards_time"] == 1
    n = src.n
    mon.update(t + DT, [0.0, 0.0], [0.0], 1.0)
    assert src.n == n + 1 and src.resyncs == resyncs + 1
    # a gap starts a new segment
    mon.update(t + 1.0, [0.0, 0.0], [0.0], 1.0)
    assert v["gap"] == 1 and src.resyncs == resyncs + 2
    assert mon.ring.window().segment[-1] > mon.ring.window().segment[0]
    assert mon.counters["internal_errors"] == 0
    diag = mon.diagnostics()
    assert diag["non_finite"] == "3" and all(isinstance(x, str) for x in diag.values())


def test_clock_reset_is_followed_after_repeated_backwards_ticks():
    mon = make(clock_reset_ticks=5)
    feed(mon, 100, t0=100.0)
    v = mon.validator.counters
    for i in range(4):
        assert mon.update(1.0 + i * DT, np.zeros(2), np.zeros(1), 1.0) is None
    assert v["backwards_time"] == 4 and v["clock_resets"] == 0
    mon.update(1.04, np.zeros(2), np.zeros(1), 1.0)
    assert v["clock_resets"] == 1
    before = v["accepted"]
    feed(mon, 10, t0=1.05)
    assert v["accepted"] == before + 10


def test_source_failures_never_escape():
    class Broken(FakeSource):
        def residuals(self, obs, action):
            if self.n % 7 == 3:
                self.n += 1
                raise FloatingPointError("boom")
            return super().residuals(obs, action)

    mon = make(Broken())
    feed(mon, 500)
    assert mon.counters["residual_errors"] > 0
    assert mon.counters["internal_errors"] == 0


def test_bad_residual_vectors_are_counted_not_used():
    mon = make(source=None) if False else DriftMonitor(
        from_mapping({"warmup_s": 0.5, "min_warmup_samples": 10}), obs_dim=2, act_dim=1, dt=DT,
        channels={"one_step": 2})
    rng = np.random.default_rng(0)
    for i in range(200):
        res = {"one_step": rng.standard_normal(2)}
        if i % 10 == 5:
            res = {"one_step": [np.nan, 1.0]} if i < 50 else {"one_step": [1.0]}
        if i == 7:
            res = {"unknown": [1.0, 2.0]}
        mon.update(i * DT, np.zeros(2), np.zeros(1), None, residuals=res)
    assert mon.counters["bad_residuals"] >= 15
    assert mon.state == "monitoring"


def test_profile_timing_and_statistics():
    mon = make(profile=True) if False else DriftMonitor(
        from_mapping({"warmup_s": 1.0, "min_warmup_samples": 10}), obs_dim=2, act_dim=1, dt=DT,
        source=FakeSource(), profile=True)
    feed(mon, 300)
    tm = mon.timing()
    assert tm["ticks"] > 0 and tm["total_us"] >= tm["detect_us"] > 0
    st = mon.statistics()
    assert "ph:one_step" in st and "ph:one_step:threshold" in st and "s:one_step" in st
    assert st["ph:one_step:threshold"] == 50.0          # uncalibrated default


def test_normalizer_statistic_is_about_one_and_clipped():
    rng = np.random.default_rng(1)
    for whiten in ("diag", "full"):
        n = ChannelNormalizer(4, 2000, clip=10.0, whiten=whiten)
        scale = np.array([1.0, 10.0, 0.01, 3.0])
        for _ in range(2000):
            n.add(5.0 + scale * rng.standard_normal(4))
        assert n.finish()
        s = [n.statistic(5.0 + scale * rng.standard_normal(4)) for _ in range(2000)]
        assert 0.9 < np.mean(s) < 1.1
        assert n.statistic(np.array([np.inf, 0, 0, 0])) <= 100.0
        assert n.statistic(np.array([np.nan, 5.0, 5.0, 5.0])) == 100.0
        with np.errstate(over="ignore", invalid="ignore"):
            assert n.statistic(np.full(4, 1e300)) == 100.0
        assert 2.0 < n.level < 5.0


def test_ring_buffer_wraps_and_copies():
    ring = TelemetryRing(5, 2, 1)
    for i in range(12):
        ring.push(float(i), np.array([i, -i]), np.array([0.5]), math.nan, i // 6)
    w = ring.window()
    assert list(w.t) == [7.0, 8.0, 9.0, 10.0, 11.0]
    assert w.obs[0, 1] == -7.0 and list(w.segment) == [1, 1, 1, 1, 1]
    assert list(ring.window(2).t) == [10.0, 11.0]
    w.t[0] = -1
    assert ring.window().t[0] == 7.0


def test_fake_source_satisfies_protocol():
    assert isinstance(FakeSource(), ResidualSource)


def test_monitor_requires_channels():
    with pytest.raises(ValueError):
        DriftMonitor(MonitorConfig(), obs_dim=2, act_dim=1, dt=DT)


def test_optional_adwin_and_decimated_kswin_run_inside_the_monitor():
    cfg = {"adwin": {"enabled": True}, "kswin": {"enabled": True, "decimation": 5}}
    mon = make(FakeSource(shift_at=600, shift=4.0), **cfg)
    names = {d.name for d in mon.detectors()}
    assert {"adwin:one_step", "kswin:one_step", "adwin:kstep_0.10s", "kswin:kstep_0.10s"} <= names
    events = feed(mon, 900)
    assert mon.counters["internal_errors"] == 0
    assert events and events[0].t >= 5.99
    fired = {k for k, v in mon.fire_counts.items() if v}
    assert fired


def test_hddm_w_backup_fires_on_a_rise_in_exceedance_rate():
    from controller.drift import ExceedanceHDDMW
    rng = np.random.default_rng(3)
    det = ExceedanceHDDMW("hddm_w:x", level=2.33, nominal_rate=0.01)
    assert not any(det.update(float(x)) for x in rng.standard_normal(3000))
    # HDDM_W's bound (lambda 0.05, confidence 0.001) needs the EWMA rate to rise by ~0.3:
    # a conservative backup, for residuals that stay large
    hits = [det.update(float(x)) for x in rng.standard_normal(300) + 2.5]
    assert any(hits) and hits.index(True) < 60 and det.magnitude > 20


def test_notify_adapted_and_window_copies_wait_for_an_update_in_progress():
    """The node ticks on its control thread while the orchestrator re-baselines and copies recent
    telemetry from the executor's: those wait for an update in progress instead of tearing it."""
    import threading

    class HeldSource(FakeSource):
        def __init__(self):
            super().__init__()
            self.hold_at, self.entered, self.release = None, threading.Event(), threading.Event()

        def residuals(self, obs, action):
            if self.n + 1 == self.hold_at:
                self.entered.set()
                self.release.wait(30)
            return super().residuals(obs, action)

    src = HeldSource()
    mon = make(source=src)
    feed(mon, 300)                                           # past the 2 s warm-up
    assert mon.state == "monitoring"
    src.hold_at = src.n + 1
    ticking = threading.Thread(target=lambda: mon.update(3.0, np.zeros(2), np.zeros(1), 1.0))
    ticking.start()
    assert src.entered.wait(30)                              # the update is inside the residual source
    results = {}
    others = [threading.Thread(target=lambda: results.update(window=mon.recent_window())),
              threading.Thread(target=lambda: results.update(adapted=mon.notify_adapted()))]
    for th in others:
        th.start()
    for th in others:
        th.join(0.2)
    assert all(th.is_alive() for th in others) and results == {}   # waiting for the update
    src.release.set()
    for th in (ticking, *others):
        th.join(30)
        assert not th.is_alive()
    assert results["window"].t[-1] == 3.0                    # copied after the held update, whole
    assert mon.state == "warmup" and mon.counters["internal_errors"] == 0


def test_a_monitor_survives_pickling_with_a_fresh_lock():
    """The drift benchmark ships monitors to worker processes; the lock is recreated there."""
    import pickle

    mon = make()
    feed(mon, 50)
    copy = pickle.loads(pickle.dumps(mon))
    assert copy.lock is not mon.lock and copy.lock.acquire(blocking=False)
    copy.lock.release()
    assert copy.all_counters() == mon.all_counters() and len(copy.ring) == len(mon.ring)
