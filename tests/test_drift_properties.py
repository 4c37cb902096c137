"""Property tests (hypothesis) for bad telemetry: the monitor never raises, never alarms on a refused
tick, and its counters add up, whatever arrives."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.drift import Calibration, DriftMonitor, TickValidator, Verdict, from_mapping

DT = 0.01
OBS, ACT = 3, 1

weird = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                  st.floats(min_value=-2.0, max_value=2.0),
                  st.sampled_from([0.0, 1e6, -1e6, 1e7, 1e300, float("nan"), float("inf")]))


def vector(n):
    return st.one_of(
        st.lists(st.floats(min_value=-3.0, max_value=3.0), min_size=n, max_size=n),  # good
        st.lists(weird, min_size=n, max_size=n),                                       # bad values
        st.lists(weird, min_size=0, max_size=n + 2),                                   # bad length
        st.just([[0.0] * n]), st.just("xyz"), st.just(None))


# time steps: mostly one control period, sometimes repeated, backwards, gaps or garbage
step = st.one_of(st.just(DT), st.just(DT), st.just(DT), st.just(0.0), st.just(-DT),
                 st.floats(min_value=-1.0, max_value=1.0), st.just(5 * DT),
                 st.just(float("nan")), st.just(float("inf")))
tick = st.tuples(step, vector(OBS), vector(ACT),
                 st.one_of(st.none(), st.floats(min_value=-1.0, max_value=1.0), weird))


class ObsSource:
    """Residuals that follow the observation: wild (valid) observations make alarms possible."""

    channels = {"one_step": OBS, "kstep_0.10s": OBS}

    def __init__(self):
        self.prev = None
        self.n = 0

    def resync(self):
        self.prev = None

    def residuals(self, obs, action):
        self.n += 1
        out = []
        if self.prev is not None:
            out.append(("one_step", obs - self.prev))
            if self.n % 5 == 0:
                out.append(("kstep_0.10s", obs + action[0]))
        self.prev = obs.copy()
        return out


def make_monitor(**kw):
    cfg = from_mapping({"warmup_s": 0.1, "min_warmup_samples": 3, "debounce_s": 0.0,
                        "clock_reset_ticks": 4, "page_hinkley": {"min_instances": 1}, **kw})
    cal = Calibration(thresholds={"ph:one_step": 1.0, "ph:kstep_0.10s": 1.0})   # twitchy
    return DriftMonitor(cfg, obs_dim=OBS, act_dim=ACT, dt=DT, source=ObsSource(), calibration=cal,
                        act_low=[-1.0], act_high=[1.0])


def good_prefix(mon, n=30, seed=0):
    rng = np.random.default_rng(seed)
    t = 0.0
    for _ in range(n):
        mon.update(t, rng.standard_normal(OBS), rng.uniform(-1, 1, ACT), 0.5)
        t += DT
    return t


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(tick, min_size=1, max_size=60), st.sampled_from(["diag", "full"]))
def test_monitor_never_raises_and_never_alarms_on_refused_ticks(ticks, whiten):
    mon = make_monitor(whiten=whiten)
    t = good_prefix(mon)
    v = mon.validator.counters
    for dt, obs, act, rew in ticks:
        t = t + dt if math.isfinite(dt) else dt
        before = (v["refused"], v["resyncs"], v["accepted"])
        with np.errstate(all="ignore"):
            ev = mon.update(t, obs, act, rew)          # must not raise
        after = (v["refused"], v["resyncs"], v["accepted"])
        if after[0] > before[0] or after[1] > before[1]:
            assert ev is None, "alarm on a refused or re-synchronising tick"
        if ev is not None:
            assert after[2] == before[2] + 1
            assert ev.window is not None and len(ev.window) >= 1
            assert np.isfinite(ev.window.obs).all()
        if not isinstance(t, float) or not math.isfinite(t):
            t = 0.0
    assert v["ticks"] == v["accepted"] + v["refused"] + v["resyncs"]
    assert mon.counters["internal_errors"] == 0
    assert all(np.isfinite(mon.ring.window().obs).ravel())
    mon.diagnostics()


@settings(max_examples=150, deadline=None)
@given(st.lists(tick, min_size=1, max_size=40))
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_validator_accepts_only_finite_correctly_shaped_ordered_ticks(ticks):
    val = TickValidator(OBS, ACT, DT, max_abs=1e6)
    t = 0.0
    last = None
    for dt, obs, act, rew in ticks:
        t = t + dt if math.isfinite(dt) else dt
        verdict, checked = val.check(t, obs, act, rew)
        if verdict is Verdict.REFUSE:
            assert checked is None
        else:
            assert checked.obs.shape == (OBS,) and checked.action.shape == (ACT,)
            assert np.isfinite(checked.obs).all() and np.isfinite(checked.action).all()
            assert np.abs(checked.obs).max() <= 1e6 and np.abs(checked.action).max() <= 1e6
            assert math.isnan(checked.reward) if rew is None else math.isfinite(checked.reward)
            if last is not None and verdict is Verdict.ACCEPT:
                assert checked.t > last
            last = checked.t
        if not math.isfinite(t):
            t = 0.0
    c = val.counters
    assert c["ticks"] == c["accepted"] + c["refused"] + c["resyncs"] == len(ticks)


def test_a_twitchy_monitor_does_alarm_on_valid_wild_ticks():
    """The property test above is not vacuous: this monitor alarms on valid but wild telemetry."""
    mon = make_monitor()
    t = good_prefix(mon)
    alarms = 0
    for i in range(50):
        t += DT
        alarms += mon.update(t, np.full(OBS, 1e5 * (-1) ** i), [0.0], 0.0) is not None
    assert alarms > 0


def test_warnings_as_errors_do_not_change_verdicts():
    import warnings
    val = TickValidator(OBS, ACT, DT)
    mon = make_monitor()
    t = good_prefix(mon)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert val.check(0.0, [1e300, 0.0, 0.0], [0.0], 0.0)[0] is Verdict.REFUSE
        assert val.counters["out_of_range"] == 1
        assert mon.update(t, [1e300, 1e300, 0.0], [0.0], 0.0) is None
        assert mon.update(t + DT, [1.0, 0.0, 0.0], [0.0], 0.0) is None   # re-sync after the loss
    assert mon.counters["internal_errors"] == 0


_PREDICTOR = {}


def _cartpole_source():
    if "cartpole" not in _PREDICTOR:
        from sim.nominal_model import NominalPredictor
        _PREDICTOR["cartpole"] = NominalPredictor("cartpole")
    src = _PREDICTOR["cartpole"]
    src.resync()
    return src


cart_obs = st.one_of(st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=5, max_size=5),
                     vector(5))
cart_tick = st.tuples(step, cart_obs, vector(1), st.one_of(st.none(), weird))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(cart_tick, min_size=1, max_size=40))
def test_real_nominal_model_survives_arbitrary_telemetry(ticks):
    """The MuJoCo-backed residual source fed garbage (huge but valid values make MuJoCo
    unstable): the monitor still never raises and never alarms on a refused tick."""
    cfg = from_mapping({"warmup_s": 0.1, "min_warmup_samples": 3, "debounce_s": 0.0,
                        "page_hinkley": {"min_instances": 1}})
    cal = Calibration(thresholds={"ph:one_step": 1.0, "ph:kstep_0.10s": 1.0,
                                  "ph:kstep_0.25s": 1.0})
    mon = DriftMonitor(cfg, obs_dim=5, act_dim=1, dt=0.01, source=_cartpole_source(),
                       calibration=cal)
    rng = np.random.default_rng(0)
    t = 0.0
    for _ in range(40):
        mon.update(t, rng.normal(0, 0.1, 5), rng.uniform(-1, 1, 1), 0.9)
        t += 0.01
    v = mon.validator.counters
    for dt, obs, act, rew in ticks:
        t = t + dt if math.isfinite(dt) else dt
        before = v["refused"] + v["resyncs"]
        with np.errstate(all="ignore"):
            ev = mon.update(t, obs, act, rew)
        if v["refused"] + v["resyncs"] > before:
            assert ev is None
        if not math.isfinite(t):
            t = 0.0
    assert mon.counters["internal_errors"] == 0
