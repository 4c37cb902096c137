"""Baseline optimisers: they optimise, they are reproducible, they validate, and they adapt as claimed."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from sim.baselines import CMAES, Best, CMAESRestart, OpenES
from sim.baselines.openes import centered_ranks

D = 20
TARGET = np.linspace(-1.0, 1.0, D)
ALL = [CMAES, CMAESRestart, OpenES]


def sphere(X: np.ndarray, target: np.ndarray = TARGET) -> np.ndarray:
    return -np.sum((np.asarray(X, dtype=np.float64) - target) ** 2, axis=1)


def run(opt, generations: int, objective=sphere) -> list[float]:
    """The benchmark's loop: ask, evaluate, tell; returns the per-generation best."""
    curve = []
    for _ in range(generations):
        f = objective(opt.ask())
        opt.tell(f)
        curve.append(float(f.max()))
    return curve


@pytest.mark.parametrize("cls", [CMAES, OpenES])
def test_improves_concave_objective(cls):
    opt = cls(np.zeros(D, dtype=np.float32), popsize=16, seed=0)
    start = sphere(opt.mean[None])[0]  # -||TARGET||^2 ~ -7.4
    run(opt, 60)
    end = sphere(opt.mean[None])[0]
    assert end > 0.05 * start  # at least 95 % of the squared distance gone
    assert isinstance(opt.best, Best) and opt.best.fitness > 0.05 * start
    assert opt.generation == 60


@pytest.mark.parametrize("cls", ALL)
def test_ask_shape_dtype_and_best_bookkeeping(cls):
    opt = cls(np.zeros(D), popsize=8, seed=3)
    assert opt.best is None
    X = opt.ask()
    assert X.shape == (8, D) and X.dtype == np.float32
    f = sphere(X)
    opt.tell(f)
    i = int(np.argmax(f))
    assert opt.best.fitness == f[i] and opt.best.generation == 0
    np.testing.assert_array_equal(opt.best.x, X[i])
    assert opt.mean.dtype == np.float32 and opt.mean.shape == (D,)
    assert isinstance(opt.sigma, float) and opt.sigma > 0


@pytest.mark.parametrize("cls", ALL)
def test_same_seed_same_asks_whatever_else_draws_random_numbers(cls):
    a, b = cls(np.zeros(D), 8, seed=5), cls(np.zeros(D), 8, seed=5)
    for _ in range(3):
        Xa = a.ask()
        np.random.standard_normal(100)  # global RNG traffic must not matter
        cls(np.zeros(D), 8, seed=99).ask()  # nor another optimiser in the same process
        Xb = b.ask()
        np.testing.assert_array_equal(Xa, Xb)
        a.tell(sphere(Xa))
        b.tell(sphere(Xb))
    np.testing.assert_array_equal(a.mean, b.mean)


@pytest.mark.parametrize("cls", ALL)
def test_different_seeds_differ_and_seed_zero_is_deterministic(cls):
    X0 = cls(np.zeros(D), 8, seed=0).ask()
    np.testing.assert_array_equal(X0, cls(np.zeros(D), 8, seed=0).ask())
    assert not np.array_equal(X0, cls(np.zeros(D), 8, seed=1).ask())


def test_cmaes_leaves_global_rng_alone_and_is_silent(capfd, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    state = np.random.get_state()[1].copy()
    opt = CMAESRestart(np.zeros(D), 8, seed=0, diagonal=True)
    run(opt, 5)
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert list(tmp_path.iterdir()) == []  # no outcmaes/ logs


@pytest.mark.parametrize("cls", ALL)
def test_pickled_optimiser_resumes_identically(cls):
    opt = cls(np.zeros(D), 8, seed=2)
    run(opt, 3)
    clone = pickle.loads(pickle.dumps(opt))
    np.testing.assert_array_equal(opt.ask(), clone.ask())


def test_openes_antithetic_pairs_mirror_the_mean():
    opt = OpenES(np.linspace(-3, 3, D), popsize=10, sigma0=0.1, seed=0)
    X = opt.ask()
    half = 5
    np.testing.assert_array_equal(opt.noise[:half], -opt.noise[half:])  # exact
    np.testing.assert_array_equal(X, (np.linspace(-3, 3, D) + 0.1 * opt.noise).astype(np.float32))
    dev = X.astype(np.float64) - opt.mean
    np.testing.assert_allclose(dev[:half], -dev[half:], atol=1e-6)


def test_openes_flat_fitness_leaves_the_mean_where_it_is():
    # all-tied fitness (every CartPole episode at 500) carries no information: zero gradient
    opt = OpenES(np.ones(D), popsize=8, seed=0)
    opt.ask()
    opt.tell(np.full(8, 500.0))
    np.testing.assert_array_equal(opt.mean, np.ones(D, dtype=np.float32))


def test_centered_ranks():
    np.testing.assert_allclose(centered_ranks(np.array([5.0, -2.0, 7.0, 1.0, 0.0])),
                               [0.25, -0.5, 0.5, 0.0, -0.25])
    np.testing.assert_allclose(centered_ranks(np.array([1.0, 1.0, 2.0])), [-0.25, -0.25, 0.5])


def switching_objective(switch_at: int):
    """Positive fitness in (0, 10]; the target jumps from 0 to 2 (every coordinate) at `switch_at`."""
    gen = {"g": 0}

    def objective(X):
        target = 0.0 if gen["g"] < switch_at else 2.0
        gen["g"] += 1
        return 10.0 / (1.0 + np.sum((np.asarray(X, dtype=np.float64) - target) ** 2, axis=1) / D)

    return objective


@pytest.mark.parametrize("restart_from", ["mean", "best"])
def test_restart_after_fitness_drop_beats_collapsed_cmaes(restart_from):
    plain = CMAES(np.full(D, 0.5), popsize=12, sigma0=0.5, seed=1)
    restart = CMAESRestart(np.full(D, 0.5), popsize=12, sigma0=0.5, seed=1,
                           restart_from=restart_from)
    plain_curve = run(plain, 100, switching_objective(100))
    restart_curve = run(restart, 100, switching_objective(100))
    assert restart.restarts == 0  # no spurious restart on a stationary task
    assert plain.sigma < 0.05  # converged: step size has collapsed
    assert plain_curve[-1] > 9.9 and restart_curve[-1] > 9.9

    # continue the same runs through the switch (generation counter of the objective restarts)
    objective_p, objective_r = switching_objective(0), switching_objective(0)
    plain_after = run(plain, 60, objective_p)
    restart_after = run(restart, 60, objective_r)
    assert restart.restart_generations == [100]  # exactly one, at the toggle
    assert restart_after[0] < 5.0  # the drop that triggered it
    assert max(restart_after) > 9.0  # re-approached the new target
    assert np.mean(restart_after) > np.mean(plain_after) + 1.0


def test_restart_rule_relative_to_magnitude():
    opt = CMAESRestart(np.zeros(3), 4, drop_fraction=0.5)
    assert opt.dropped(40.0, 100.0) and not opt.dropped(60.0, 100.0)
    assert opt.dropped(-160.0, -100.0) and not opt.dropped(-140.0, -100.0)  # LunarLander-style
    assert opt.dropped(-0.1, 0.0) and not opt.dropped(0.0, 0.0)


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("kwargs, match", [
    (dict(x0=np.zeros(D), popsize=0), "popsize must be positive"),
    (dict(x0=np.zeros(D), popsize=-4), "popsize must be positive"),
    (dict(x0=np.zeros(D), popsize=2.5), "popsize must be an integer"),
    (dict(x0=np.zeros(D), popsize=8, sigma0=0.0), "sigma0 must be a positive"),
    (dict(x0=np.zeros(D), popsize=8, sigma0=-1.0), "sigma0 must be a positive"),
    (dict(x0=np.zeros((2, 3)), popsize=8), "1-D"),
    (dict(x0=np.array([0.0, np.nan, np.inf]), popsize=8), "2 of 3 entries"),
])
def test_constructor_validation(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_specific_validation():
    with pytest.raises(ValueError, match="even"):
        OpenES(np.zeros(D), 7)
    with pytest.raises(ValueError, match="drop_fraction"):
        CMAESRestart(np.zeros(D), 8, drop_fraction=0.0)
    with pytest.raises(ValueError, match="window"):
        CMAESRestart(np.zeros(D), 8, window=0)
    with pytest.raises(ValueError, match="may not set"):
        CMAES(np.zeros(D), 8, options={"seed": 3})


@pytest.mark.parametrize("cls", ALL)
def test_tell_validation(cls):
    opt = cls(np.zeros(D), 8, seed=0)
    with pytest.raises(RuntimeError, match="without a pending ask"):
        opt.tell(np.zeros(8))
    opt.ask()
    with pytest.raises(RuntimeError, match="twice"):
        opt.ask()
    with pytest.raises(ValueError, match=r"shape \(8,\)"):
        opt.tell(np.zeros(7))
    with pytest.raises(ValueError, match="NaN: 2 of 8"):
        opt.tell(np.array([0, np.nan, 1, 2, np.nan, 3, 4, 5], dtype=float))
    opt.tell(np.array([-np.inf, 0, 1, 2, 3, 4, 5, 6]))  # -inf (invalid individual) is fine
    assert opt.generation == 1
