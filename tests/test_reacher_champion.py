"""Issue 15, the reacher: `train-nominal --dagger` (the imitation relabelled in the states it drives
into, sim/champion.py) and the shipped champion it made, on the (sin, cos) shoulder observation."""
from pathlib import Path

import numpy as np
import pytest

from sim.champion import HELD_OUT_SEED, train_nominal
from sim.distill import closed_loop_returns, nominal_controller, policy_controller
from sim.genome import load_genome
from sim.profile import load_profile

ROBOTS = Path(__file__).resolve().parents[1] / "launch" / "robots"


def test_dagger_rounds_add_on_policy_data_and_keep_the_best_round():
    g = train_nominal("reacher", generations=0, horizon=40, start="model", dagger=2)
    seed = g.fitness["model_seed"]
    rounds = seed["dagger_rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert [r["ticks"] for r in rounds] == [8 * 40, 16 * 40, 24 * 40]     # each round adds its episodes
    best = max(rounds, key=lambda r: r["validation_return"])
    assert seed["validation_return"] == best["validation_return"] and seed["ticks"] == best["ticks"]
    assert g.fitness["source"] == "model seed (2 DAgger rounds)"


def test_dagger_options_are_checked():
    with pytest.raises(ValueError, match="--dagger"):
        train_nominal("reacher", generations=1, start="scratch", dagger=1)
    with pytest.raises(ValueError, match="--dagger"):
        train_nominal("reacher", generations=0, start="model", dagger=-1)
    with pytest.raises(ValueError, match="--dagger: relabels the model seed; .*pusher.yaml has none"):
        train_nominal(str(ROBOTS / "pusher.yaml"), generations=1, dagger=2)     # no controller to relabel with


def test_shipped_reacher_champion_tracks_the_target_on_held_out_episodes():
    """>= 0.9 of the Jacobian-transpose controller's return on the 20 held-out seeds (issue 15)."""
    path = load_profile(ROBOTS / "reacher.yaml").asset_path("champion")
    g = load_genome(path)
    assert g.policy_spec.obs_dim == 7                     # (sin, cos) shoulder, wrist, velocities, to target
    seeds = list(range(HELD_OUT_SEED, HELD_OUT_SEED + 20))
    champion = closed_loop_returns("reacher", policy_controller(g), seeds, 300)
    jt = closed_loop_returns("reacher", nominal_controller("reacher"), seeds, 300)
    assert np.mean(champion) >= 0.9 * np.mean(jt), (np.mean(champion), np.mean(jt))


def test_reacher_default_drift_suite_calibration_and_scenario_are_shipped():
    """The reversed wrist motor breaks the champion; the suite targets it; the monitor's calibration
    loads; the drift scenarios run the built-in reacher under its champion (no scenario of its own)."""
    from controller.drift import load_config
    from safety.suite import load_suite
    from sim.adapt_job import mean_return, nominal_champion
    from sim.drift_scenarios import has_scenario, record_nominal, scenario
    from sim.drift_spec import DriftSpec
    profile = load_profile(ROBOTS / "reacher.yaml")
    drift = DriftSpec.parse(profile.default_drift)
    g = nominal_champion("reacher")
    assert mean_return("reacher", g, drift, 300, 0, episodes=3) < 0.2 * mean_return("reacher", g, DriftSpec(), 300,
                                                                                       0, episodes=3)
    suite = load_suite(profile.asset_path("suite"))
    target = next(s for s in suite.scenarios if s.tag == "target")
    assert suite.plant == "reacher" and target.drift.as_dict() == drift.as_dict()
    cfg = load_config(profile.asset_path("calibration"))
    assert Path(cfg.calibration_file) == profile.asset_path("calibration").parent / "reacher.json"
    assert Path(cfg.calibration_file).is_file()
    assert has_scenario("reacher") and [d.name for d in scenario("reacher").drifts] == ["default", "wear_ramp"]
    t, obs, act, _ = record_nominal("reacher", 2.0, seed=0, with_reward=False)
    ctrl = policy_controller(g)()
    assert np.array_equal(act[0], ctrl(obs[0]))          # the champion drives the nominal telemetry
