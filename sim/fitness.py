"""The evaluator contract both backends (`sim.evaluate`, `sim.ray_backend`) enforce: a batch of flat
policies with one episode seed each goes in, one finite float64 fitness per policy comes out."""
from __future__ import annotations

import numpy as np


def checked_batch(weights, seeds) -> tuple[np.ndarray, np.ndarray]:
    """(float32 weights (N, P), int64 seeds (N,)), or a ValueError when they do not pair up."""
    weights = np.ascontiguousarray(weights, dtype=np.float32)
    seeds = np.asarray(seeds, dtype=np.int64)
    if weights.ndim != 2 or weights.shape[0] != seeds.shape[0]:
        raise ValueError(f"weights {weights.shape} and seeds {seeds.shape} do not match")
    return weights, seeds


def checked_fitness(task, fitness) -> np.ndarray:
    """float64 fitness, or a ValueError naming the task and the first individual with NaN/inf."""
    fitness = np.asarray(fitness, dtype=np.float64)
    bad = ~np.isfinite(fitness)
    if bad.any():
        raise ValueError(f"task {getattr(task, 'name', task)!r} returned non-finite fitness "
                         f"for {int(bad.sum())} of {len(fitness)} individuals (first: index {int(np.argmax(bad))})")
    return fitness
