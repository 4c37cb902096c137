"""The nominal-model residual source: exact on the nominal plant, clearly non-zero under drift,
decimated open-loop channels on schedule, snapshots exact; and the scenario helpers."""
import numpy as np
import pytest

from controller.drift import ResidualSource
from sim.drift_scenarios import SCENARIOS, interpolate, record_nominal, step_fast
from sim.drift_spec import DriftSpec
from sim.nominal_model import NominalPredictor, make_predictor
from sim.plants import make_plant


def rollout(name, ticks, drift=None, drift_at=None, src=None, noise=0.0):
    plant = make_plant(name, seed=3, drift={"obs_noise": noise} if noise else None)
    ctrl = plant.nominal_controller()
    ctrl.reset()
    src = src or NominalPredictor(name)
    obs = plant.observe()
    out = []
    for i in range(ticks):
        if drift is not None and i == drift_at:
            plant.apply_drift(drift)
        a = ctrl(obs)
        out.append((i, src.residuals(obs, a)))
        obs, _ = plant.act(a)
    return src, out


@pytest.mark.parametrize("name", ["cartpole", "walker", "reacher"])
def test_residuals_vanish_on_the_nominal_plant(name):
    src, out = rollout(name, 60)
    assert isinstance(src, ResidualSource)
    seen = {}
    for _, res in out:
        for ch, r in res:
            assert r.shape == (src.channels[ch],)
            seen[ch] = max(seen.get(ch, 0.0), float(np.abs(r).max()))
    assert set(seen) == set(src.channels)
    assert max(seen.values()) < 1e-9, seen


def test_open_loop_channels_follow_their_schedule():
    src = NominalPredictor("cartpole", horizons_s=(0.1, 0.25), every_s=0.5)
    assert src.horizon_ticks == (10, 25) and src.every_ticks == 50
    _, out = rollout("cartpole", 160, src=src)
    ticks = {ch: [i for i, res in out for c, _ in res if c == ch] for ch in src.channels}
    assert ticks["one_step"] == list(range(1, 160))
    assert ticks["kstep_0.10s"] == [10, 60, 110]
    assert ticks["kstep_0.25s"] == [25, 75, 125]


def test_drift_makes_residuals_grow_open_loop_most():
    spec = DriftSpec(actuator_gain={"slide": 0.5})
    src, out = rollout("cartpole", 200, drift=spec, drift_at=100)
    after = {}
    for i, res in out:
        for ch, r in res:
            if i > 101:
                after[ch] = max(after.get(ch, 0.0), float(np.abs(r).max()))
    assert after["one_step"] > 1e-5
    assert after["kstep_0.25s"] > 10 * after["one_step"]


def test_snapshot_restore_is_exact():
    plant = make_plant("walker", seed=1, drift={"obs_noise": 0.01})
    ctrl = SCENARIOS["walker"].make_controller(plant)
    src = NominalPredictor("walker")
    obs = plant.observe()
    for _ in range(7):
        a = ctrl(obs)
        src.residuals(obs, a)
        obs, _ = plant.act(a)
    snap = src.snapshot()
    inputs = []
    for _ in range(12):
        a = ctrl(obs)
        inputs.append((obs.copy(), a.copy()))
        obs, _ = plant.act(a)
    first = [src.residuals(o, a) for o, a in inputs]
    src.restore(snap)
    second = [src.residuals(o, a) for o, a in inputs]
    for x, y in zip(first, second):
        assert [c for c, _ in x] == [c for c, _ in y]
        for (_, r1), (_, r2) in zip(x, y):
            np.testing.assert_array_equal(r1, r2)


def test_blend_observer_and_config_wiring():
    from controller.drift import MonitorConfig
    cfg = MonitorConfig().replace(nominal_model={"horizons_s": [0.1], "every_s": 0.2, "blend": 0.5})
    src = make_predictor("cartpole", cfg)
    assert src.blend == 0.5 and src.horizon_ticks == (10,) and src.every_ticks == 20
    _, out = rollout("cartpole", 50, src=src, noise=0.01)
    assert all(np.isfinite(r).all() for _, res in out for _, r in res)
    with pytest.raises(ValueError):
        NominalPredictor("cartpole", blend=0.0)
    with pytest.raises(ValueError):
        NominalPredictor("humanoid")


def test_angle_residuals_are_wrapped():
    src = NominalPredictor("cartpole")
    r = src._diff(np.array([0.0, np.pi - 0.01]), np.zeros(2), np.array([0.0, -np.pi + 0.01]),
                  np.zeros(2))
    assert r[1] == pytest.approx(-0.02)


def test_step_fast_matches_act_and_recording_shapes():
    sc = SCENARIOS["cartpole"]
    p1, p2 = sc.make_plant(5), sc.make_plant(5)
    ctrl = sc.make_controller(p1)
    o1, o2 = p1.observe(), p2.observe()
    for _ in range(50):
        a = ctrl(o1)
        o1, _ = p1.act(a)
        o2 = step_fast(p2, a)
        np.testing.assert_array_equal(o1, o2)
    t, obs, act, rew = record_nominal("cartpole", 0.5, seed=1)
    assert obs.shape == (50, 5) and act.shape == (50, 1) and np.all(np.diff(t) > 0)
    assert np.isfinite(rew[1:]).all()


def test_interpolate_ramps_tables():
    spec = DriftSpec(actuator_gain={"slide": 0.6}, obs_bias={"pole_sin": 0.1})
    half = interpolate(spec, 0.5)
    assert dict(half.actuator_gain)["slide"] == pytest.approx(0.8)
    assert dict(half.obs_bias)["pole_sin"] == pytest.approx(0.05)
    assert interpolate(spec, 0.0).is_nominal
    with pytest.raises(ValueError):
        interpolate(DriftSpec(action_delay=2), 0.5)
