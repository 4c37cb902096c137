"""pycma's own IPOP/BIPOP restarts behind the benchmark's fixed evaluations-per-generation clock."""
import numpy as np

from sim.baselines.cma_restarts import cma_restarts


def sphere_task(calls):
    def evaluate(X, g):
        calls.append((len(X), g))
        return -np.sum(X.astype(np.float64) ** 2, axis=1)
    return evaluate


def test_every_generation_is_exactly_its_evaluations_and_restarts_happen():
    calls = []
    res = cma_restarts(sphere_task(calls), np.full(5, 3.0), generations=200, per_generation=10, sigma0=0.5,
                       seed=1, options={"tolfun": 1e-2, "tolx": 1e-2})
    assert len(res.fitness) == 200 and all(len(f) == 10 for f in res.fitness)
    per_gen = {}
    for n, g in calls:
        per_gen[g] = per_gen.get(g, 0) + n
    assert per_gen == {g: 10 for g in range(200)}       # chunks never straddle a generation
    assert res.restarts >= 1                            # pycma's termination fired and fmin2 restarted
    assert max(n for n, _ in calls) <= 10
    assert max(np.max(f) for f in res.fitness) > -0.1    # and it optimises (start: about -45)


def test_ipop_grows_the_population_so_iterations_span_generations():
    calls = []
    cma_restarts(sphere_task(calls), np.full(5, 3.0), generations=80, per_generation=10, sigma0=0.5, seed=0,
                 options={"tolfun": 1e-2, "tolx": 1e-2})
    gens_per_call = {}
    for n, g in calls:
        gens_per_call.setdefault(g, []).append(n)
    assert any(len(v) == 1 for v in gens_per_call.values())


def test_same_seed_same_run_and_global_numpy_state_untouched():
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    a = cma_restarts(sphere_task([]), np.ones(4), 20, 8, 0.5, seed=5, bipop=True, options={"tolfun": 1e-2})
    after = np.random.random()
    b = cma_restarts(sphere_task([]), np.ones(4), 20, 8, 0.5, seed=5, bipop=True, options={"tolfun": 1e-2})
    assert before == after
    assert all(np.array_equal(x, y) for x, y in zip(a.fitness, b.fitness))
