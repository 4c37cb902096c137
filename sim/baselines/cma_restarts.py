"""CMA-ES with pycma's own IPOP / BIPOP restarts (`cma.fmin2`), at a fixed evaluation budget per generation.

Why not the ask/tell wrapper: IPOP (Auger & Hansen 2005) and BIPOP (Hansen 2009) restart when
pycma's own termination criteria fire (tolfun, tolx, tolflatfitness, stagnation, ...) and change the
population size between restarts; `cma.fmin2(..., restarts=n, bipop=...)` is the reference
implementation of both, so the baseline is pycma's and not a home-made restart rule.

Equal cost. The benchmark's clock is the *generation*: a fixed number of evaluations (P·(1 + C) =
30 for SR-GHN's defaults) that all see the same plant condition. pycma's iterations can be larger
(IPOP doubles lambda at every restart) or smaller (BIPOP's small regime), so evaluations are
streamed: the k-th evaluation of the run belongs to generation k // per_generation whatever
iteration asked for it, and the log of a generation is the best / mean of its evaluations. The run
stops when generations x per_generation evaluations are spent (the last iteration is cut short).

Determinism. pycma's `randn` option gets a private generator (as in `CMAES`); BIPOP's draws of
the small-regime popsize and step size use NumPy's *global* generator inside `fmin`, so that
generator is seeded with the run seed for the duration of the call and restored afterwards.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import cma
import numpy as np

from sim.baselines.common import check_popsize, check_positive, check_x0
from sim.baselines.cmaes import _Randn


class _BudgetSpent(Exception):
    pass


@dataclass
class RestartRun:
    """Per-generation fitness arrays and step sizes, the last generation's best point, the restarts."""

    fitness: list[np.ndarray] = field(default_factory=list)
    sigma: list[float] = field(default_factory=list)
    best_x: np.ndarray | None = None
    restarts: int = 0


def cma_restarts(evaluate: Callable[[np.ndarray, int], np.ndarray], x0: np.ndarray, generations: int,
                 per_generation: int, sigma0: float, seed: int, *, bipop: bool = False,
                 max_restarts: int = 1000, on_generation: Callable[[int, np.ndarray, float], None] | None = None,
                 options: dict | None = None) -> RestartRun:
    """Maximise with IPOP-CMA-ES (`bipop=False`) or BIPOP-CMA-ES for `generations` generations.

    `evaluate(X (n, P) float32, generation) -> fitness (n,)` (higher is better); every call holds
    evaluations of one generation only. `on_generation(g, fitness, sigma)` is called as each
    generation completes.
    """
    x0 = check_x0(x0)
    per_generation = check_popsize(per_generation, minimum=2)
    sigma0 = check_positive("sigma0", sigma0)
    budget = int(generations) * per_generation
    out = RestartRun()
    pending: list[float] = []
    state = {"evals": 0, "sigma": sigma0, "best_f": -math.inf}

    def objective(X):
        X = np.asarray(X, dtype=np.float64)
        f = np.empty(len(X))
        i = 0
        while i < len(X):
            if state["evals"] >= budget:
                raise _BudgetSpent
            g = state["evals"] // per_generation
            n = min(len(X) - i, per_generation - state["evals"] % per_generation)
            chunk = X[i:i + n].astype(np.float32)
            fit = np.asarray(evaluate(chunk, g), dtype=np.float64)
            f[i:i + n] = fit
            pending.extend(fit.tolist())
            j = int(np.argmax(fit))
            if fit[j] > state["best_f"]:
                state["best_f"], state["best_x"] = float(fit[j]), chunk[j].copy()
            state["evals"] += n
            i += n
            if state["evals"] % per_generation == 0:
                arr = np.array(pending)
                pending.clear()
                out.fitness.append(arr)
                out.sigma.append(state["sigma"])
                out.best_x = state.pop("best_x")
                state["best_f"] = -math.inf
                if on_generation is not None:
                    on_generation(g, arr, state["sigma"])
        return (-f).tolist()  # pycma minimises

    starts = [0]

    def callback(es):
        state["sigma"] = float(es.sigma)
        if es.countiter == 1:   # a new strategy: the first one or a restart
            starts[0] += 1

    opts = {**(options or {}), "popsize": per_generation, "seed": math.nan, "randn": _Randn(int(seed)),
            "verbose": -9, "verb_log": 0, "verb_disp": 0}
    saved = np.random.get_state()
    np.random.seed(int(seed) % 2**32)
    try:
        while state["evals"] < budget:   # fmin2 returns only when its restarts run out
            try:
                cma.fmin2(None, x0, sigma0, options=opts, parallel_objective=objective,
                          restarts=max_restarts, bipop=bipop, callback=callback)
            except _BudgetSpent:
                break
    finally:
        np.random.set_state(saved)
    out.restarts = max(starts[0] - 1, 0)
    return out
