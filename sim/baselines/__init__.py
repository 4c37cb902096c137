"""Baseline optimisers for the SR-GHN comparisons: CMA-ES, restarting CMA-ES and OpenAI-ES.

Every optimiser here MAXIMISES a fitness over one flat float32 policy vector (the same layout as
`sim.policy`), through the same ask/tell loop, so the benchmark can swap methods without caring
which one it drives::

    opt = CMAES(x0, popsize=30, sigma0=0.5, seed=0)
    for gen in range(n_generations):
        X = opt.ask()                      # (popsize, P) float32
        opt.tell(evaluate(X))              # (popsize,) fitness, higher is better
        log(gen, opt.sigma, opt.best)      # sigma: the method's "mutation scale"

Why one interface: the SR-GHN paper's claim is about adaptation under the same evaluation budget
(population = P·(1 + C) evaluations per generation for the baselines), so the loop, the fresh
re-evaluation every generation and the logging must be identical across methods; only `ask` and
`tell` differ.

`best` is the best point ever told, with its fitness. Under drift that value is stale (it was
scored on the old task); the benchmark should log the per-generation best from the fitness it
passes to `tell`, not `best.fitness`.

This module also holds the pieces the optimisers share (the `Best` record and argument checks);
they are defined before the submodules are imported so `cmaes.py` and `openes.py` can use them.

References
----------
Hansen, N. (2016). The CMA Evolution Strategy: A Tutorial. arXiv:1604.00772.
pycma: https://github.com/CMA-ES/pycma
Salimans, T., Ho, J., Chen, X., Sidor, S., Sutskever, I. (2017). Evolution Strategies as a
Scalable Alternative to Reinforcement Learning. arXiv:1703.03864.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Best:
    """The best individual an optimiser has been told about, and when."""

    x: np.ndarray  # float32, shape (P,)
    fitness: float
    generation: int  # number of completed tell() calls before this one (0-based)


def check_x0(x0) -> np.ndarray:
    """Return x0 as a float64 copy after checking it is a non-empty, finite, 1-D vector."""
    x = np.array(x0, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"x0 must be a non-empty 1-D vector, got shape {x.shape}")
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        raise ValueError(f"x0 must be finite, {bad} of {x.size} entries are NaN or inf")
    return x


def check_popsize(popsize, minimum: int = 1) -> int:
    """Return popsize as an int; reject bools, non-integers and values below `minimum`."""
    if isinstance(popsize, bool):
        raise ValueError(f"popsize must be an integer, got {popsize!r}")
    try:
        n = operator.index(popsize)
    except TypeError:
        raise ValueError(f"popsize must be an integer, got {popsize!r}") from None
    if n <= 0:
        raise ValueError(f"popsize must be positive, got {n}")
    if n < minimum:
        raise ValueError(f"popsize must be at least {minimum}, got {n}")
    return n


def check_positive(name: str, value) -> float:
    """Return value as a float after checking it is finite and > 0 (step sizes, rates)."""
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def check_fitness(fitness, popsize: int) -> np.ndarray:
    """Return fitness as a float64 (popsize,) array; reject wrong length and NaN.

    ±inf is allowed: both optimisers only use the ranking, and -inf is a natural score for an
    invalid individual.
    """
    f = np.asarray(fitness, dtype=np.float64)
    if f.ndim != 1 or f.shape[0] != popsize:
        raise ValueError(f"fitness must have shape ({popsize},) (one value per asked "
                         f"individual), got shape {f.shape}")
    n_nan = int(np.count_nonzero(np.isnan(f)))
    if n_nan:
        raise ValueError(f"fitness contains NaN: {n_nan} of {popsize} values")
    return f


def update_best(best: Best | None, X: np.ndarray, fitness: np.ndarray, generation: int) -> Best:
    """Best of `best` and the told population (ties keep the older point)."""
    i = int(np.argmax(fitness))
    if best is None or fitness[i] > best.fitness:
        return Best(x=np.array(X[i], dtype=np.float32), fitness=float(fitness[i]),
                    generation=generation)
    return best


from sim.baselines.cmaes import CMAES, CMAESRestart  # noqa: E402  (needs the helpers above)
from sim.baselines.openes import OpenES  # noqa: E402

__all__ = ["Best", "CMAES", "CMAESRestart", "OpenES"]
