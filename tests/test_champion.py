"""Issue 15: nominal champions (sim/champion.py) and the walker's shipped champion, suite and
calibration, found from its profile."""
import numpy as np
import pytest

from sim.champion import HELD_OUT_SEED, train_nominal, validation_return
from sim.drift_spec import DriftSpec


def test_model_seed_start_stands_the_walker_without_evolution():
    """The walker's nominal LQR imitated into the SR-GHN head stands on its own (0 generations)."""
    g = train_nominal("walker", generations=0, horizon=100, start="model")
    assert g.kind == "srghn" and g.fitness["winner"] == "seed" and g.fitness["lineage_depth"] == 0
    assert g.fitness["model_seed"]["ticks"] == 8 * 100
    assert g.fitness["nominal_return"] >= 0.9 * 100


def test_evolution_after_the_seed_never_loses_it():
    """With generations the champion is the better of seed and evolved elite on validation episodes."""
    g = train_nominal("cartpole", generations=1, horizon=60, start="model")
    v = g.fitness["validation"]
    assert set(v) >= {"seed", "evolved", "episodes"} and g.fitness["winner"] in ("seed", "evolved")
    assert g.fitness["nominal_return"] == max(v["seed"], v["evolved"])
    assert g.fitness["source"] == "model seed + 1 generations of SR-GHN evolution"
    assert len(g.fitness["best_per_generation"]) == 1


def test_start_options_are_checked():
    with pytest.raises(ValueError, match="--start"):
        train_nominal("cartpole", generations=1, start="magic")
    with pytest.raises(ValueError, match="--start model"):
        train_nominal("launch/robots/pusher.yaml", generations=1, horizon=10, start="model")
    with pytest.raises(ValueError, match="--generations"):
        train_nominal("cartpole", generations=0, start="scratch")


# -- the shipped walker ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def walker():
    from sim.profile import find_profile, load_profile
    return load_profile(find_profile("walker"))


def test_shipped_walker_champion_stands_on_held_out_episodes(walker):
    from sim.genome import load_genome
    path = walker.asset_path("champion")
    assert path is not None and path.is_file()
    g = load_genome(path)
    r = validation_return("walker", g, 300, episodes=20, first_seed=HELD_OUT_SEED)
    assert r >= 270.0


def test_walker_default_drift_is_one_the_champion_fails_on(walker):
    from sim.adapt_job import mean_return, nominal_champion
    drift = walker.default_drift
    assert drift and not DriftSpec.parse(drift).is_nominal
    g = nominal_champion("walker")
    nominal = mean_return("walker", g, DriftSpec(), 300, 0, episodes=3)
    drifted = mean_return("walker", g, DriftSpec.parse(drift), 300, 0, episodes=3)
    assert drifted < 0.9 * nominal


def test_walker_suite_and_calibration_are_shipped_and_valid(walker):
    from controller.drift import load_config
    from safety.suite import load_suite
    suite = load_suite(walker.asset_path("suite"))
    assert suite.plant == "walker"
    target = next(s for s in suite.scenarios if s.tag == "target")
    assert target.drift.as_dict() == DriftSpec.parse(walker.default_drift).as_dict()
    cfg = load_config(walker.asset_path("calibration"))
    assert cfg.calibration_file and np.isfinite(cfg.warmup_s)
