"""What every baseline optimiser shares: the `Best` record and the argument checks."""
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
