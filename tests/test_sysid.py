"""System identification by replay: exact replay, recovery under noise, refusal of bad windows."""
import json

import numpy as np
import pytest

from sim.drift_spec import VARIANTS, DriftSpec
from sim.plants import make_plant
from sim.sysid import PARAMETER_SETS, Param, Replay, Telemetry, identify, record

HEADLINE = VARIANTS["cartpole"]["payload_reversed"]  # pole mass x3, cart motor wired backwards


def full_state_window(name, drift, ticks, seed=0):
    plant = make_plant(name, seed=seed, drift=drift)
    controller = plant.nominal_controller()
    states, actions, obs = [plant.get_state()], [], plant.observe()
    for _ in range(ticks):
        a = np.clip(controller(obs), plant.act_low, plant.act_high)
        obs, _ = plant.act(a)
        states.append(plant.get_state())
        actions.append(a)
    return plant, Telemetry.from_states(plant, np.array(states), np.array(actions),
                                        plant.control_dt)


@pytest.mark.parametrize("name, variant", [("cartpole", "payload_reversed"),
                                           ("walker", "low_friction"), ("reacher", "payload")])
def test_replay_of_a_simulated_window_is_exact_under_the_true_drift(name, variant):
    spec = VARIANTS[name][variant]
    plant, tel = full_state_window(name, spec, 60)
    replay = Replay.build(make_plant(name), tel, horizon=10, max_windows=12)
    assert replay.loss(spec) < 1e-20                     # bit-level agreement, not "close"
    assert replay.loss(DriftSpec()) > 1e-4
    replay.refine(spec)                                  # start-state correction keeps it exact
    assert replay.loss(spec) < 1e-20


def test_telemetry_from_qpos_qvel_rows():
    plant, tel = full_state_window("cartpole", None, 30)
    rows = np.concatenate([tel.qpos, tel.qvel], axis=1)
    again = Telemetry.from_states(plant, rows, tel.actions, plant.control_dt)
    assert np.array_equal(again.qpos, tel.qpos) and again.warmstart is None


def test_recovers_pole_mass_and_reversed_motor_from_a_short_noisy_window():
    # 2 s of telemetry, sensor noise 0.01 on every qpos/qvel, 250 loss evaluations (~3 s).
    # Measured over seeds 0-5: pole 2.76..3.23 (true 3), gain -1.03..-0.98 (true -1).
    plant = make_plant("cartpole", seed=0, drift=HEADLINE)
    tel = record(plant, plant.nominal_controller(), 200, noise_std=0.01, seed=0)
    result = identify(make_plant("cartpole"), tel, max_evals=250, max_windows=40, seed=0)
    gain, pole = result.params["actuator_gain.slide"], result.params["mass_scale.pole_1"]
    assert gain < 0                                      # the sign is the point
    assert abs(gain + 1.0) < 0.1
    assert abs(pole - 3.0) < 0.45                        # 15 %, about twice the worst seen
    assert 0 < result.std["mass_scale.pole_1"] < 1.0
    assert result.loss < 0.1 * result.nominal_loss
    assert result.estimate.value("actuator_gain", "slide") == gain
    assert result.evaluations <= 250 + 2 * 3 + 1 and result.wall_s > 0
    record_ = json.loads(json.dumps(result.to_dict()))   # result.json-ready
    assert record_["estimate_hash"] == result.estimate.hash


def test_same_seed_same_estimate_and_budget_is_respected():
    plant = make_plant("cartpole", seed=1, drift=VARIANTS["cartpole"]["gain_loss"])
    tel = record(plant, plant.nominal_controller(), 80, noise_std=0.01, seed=1)
    params = (Param("actuator_gain", "slide", -3, 3),)
    a = identify(make_plant("cartpole"), tel, params, max_evals=40, max_windows=10, horizon=10)
    b = identify(make_plant("cartpole"), tel, params, max_evals=40, max_windows=10, horizon=10)
    assert a.params == b.params and a.estimate == b.estimate
    assert a.evaluations <= 40 + 2 * 1 + 1
    assert 0.4 < a.params["actuator_gain.slide"] < 0.6


def test_known_drift_is_kept_in_the_estimate():
    plant = make_plant("cartpole", seed=2, drift={"action_delay": 1})
    tel = record(plant, plant.nominal_controller(), 60, seed=2)
    result = identify(make_plant("cartpole"), tel, (Param("mass_scale", "pole_1", 0.2, 5),),
                      known={"action_delay": 1}, max_evals=30, max_windows=8, horizon=10)
    assert result.estimate.action_delay == 1


def test_bad_windows_are_refused_naming_the_field():
    plant, tel = full_state_window("cartpole", None, 30)
    sim = make_plant("cartpole")
    nan = tel.qvel.copy()
    nan[5, 1] = np.nan
    cases = [
        (Telemetry(tel.qpos, nan, tel.actions, tel.control_dt), "telemetry.qvel"),
        (Telemetry(tel.qpos[:10], tel.qvel[:10], tel.actions[:9], tel.control_dt),
         "telemetry.actions"),
        (Telemetry(tel.qpos, tel.qvel, tel.actions[:, [0, 0]], tel.control_dt),
         "telemetry.actions"),
        (Telemetry(tel.qpos[:-1], tel.qvel[:-1], tel.actions, tel.control_dt), "ticks\\+1"),
        (Telemetry(tel.qpos, tel.qvel, tel.actions, 0.02), "telemetry.control_dt"),
    ]
    for bad, field in cases:
        with pytest.raises(ValueError, match=field):
            identify(sim, bad, max_evals=5, horizon=10)
    with pytest.raises(ValueError, match="telemetry.states"):
        Telemetry.from_states(plant, np.zeros((5, 3)), tel.actions[:4], plant.control_dt)


def test_parameter_sets_name_real_model_objects():
    for name, params in PARAMETER_SETS.items():
        plant = make_plant(name)
        for p in params:
            plant.apply_drift(DriftSpec(**{p.field: {p.key: p.hi}}))
            assert p.lo < p.hi and p.to_search(1.0) is not None


def test_telemetry_breaks_keep_replay_windows_inside_contiguous_stretches():
    """A break (the robot fell and was reset, the stream was interrupted) is never replayed across;
    telemetry whose stretches are all shorter than the horizon is refused."""
    from sim.sysid import Telemetry
    n = 60
    tel = Telemetry(np.zeros((n + 1, 2)), np.zeros((n + 1, 2)), np.zeros((n, 1)), 0.01,
                    breaks=np.array([19, 39]))
    starts = tel.window_starts(10)
    for s in starts:
        assert not any(s <= b <= s + 9 for b in (19, 39))
    assert set(starts.tolist()) == set(range(0, 10)) | set(range(20, 30)) | set(range(40, 51))
    tel.validate(make_plant("cartpole"), 10)
    short = Telemetry(np.zeros((n + 1, 2)), np.zeros((n + 1, 2)), np.zeros((n, 1)), 0.01,
                      breaks=np.arange(5, 60, 10))
    with pytest.raises(ValueError, match="breaks"):
        short.validate(make_plant("cartpole"), 10)
    with pytest.raises(ValueError, match="breaks"):
        Telemetry(np.zeros((n + 1, 2)), np.zeros((n + 1, 2)), np.zeros((n, 1)), 0.01,
                  breaks=np.array([39, 19])).validate(make_plant("cartpole"), 10)
