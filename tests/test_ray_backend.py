"""Ray gives the same fitness vector as local workers for the same seeds (and any worker count)."""
import numpy as np
import pytest

from sim.evaluate import make_evaluator
from sim.plant_task import PlantTask
from sim.tasks import make_task

ray = pytest.importorskip("ray")


def test_ray_matches_local_workers():
    cart = make_task("cartpole-switch", schedule="0-")
    plant = PlantTask("cartpole", horizon=30)
    rng = np.random.default_rng(0)
    w_cart = rng.normal(0, 0.5, (7, cart.policy.num_params)).astype(np.float32)
    w_plant = rng.normal(0, 0.3, (5, plant.policy.num_params)).astype(np.float32)
    seeds7, seeds5 = np.arange(7) + 100, np.arange(5) + 7
    with make_evaluator(cart, workers=1) as local:
        expected_cart = local(w_cart, seeds7, 3)
    with make_evaluator(plant, workers=1) as local:
        expected_plant = local(w_plant, seeds5, 0)
    with make_evaluator(cart, workers=2, backend="ray") as remote:
        assert ray.is_initialized()
        np.testing.assert_array_equal(remote(w_cart, seeds7, 3), expected_cart)
    assert not ray.is_initialized()                     # the evaluator that started Ray shuts it down
    with make_evaluator(plant, workers=2, backend="ray") as remote:
        np.testing.assert_array_equal(remote(w_plant, seeds5, 0), expected_plant)
    with pytest.raises(ValueError, match="unknown evaluation backend"):
        make_evaluator(cart, backend="dask")


def test_train_nominal_on_ray_makes_the_local_champion():
    """`driftgate train-nominal --backend ray` evolves the same champion as local workers (same seed)."""
    from sim.champion import train_nominal
    local = train_nominal("cartpole", generations=2, seed=3, horizon=30, workers=1, start="scratch")
    on_ray = []
    remote = train_nominal("cartpole", generations=2, seed=3, horizon=30, workers=2, start="scratch", backend="ray",
                           on_generation=lambda log: on_ray.append(ray.is_initialized()))
    assert on_ray == [True, True]                       # the population was evaluated on Ray ...
    assert not ray.is_initialized()                     # ... which was shut down after
    np.testing.assert_array_equal(remote.vector, local.vector)
    assert remote.fitness["best_per_generation"] == local.fitness["best_per_generation"]
