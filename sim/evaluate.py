"""Population evaluation on 1 or N worker processes, with identical results either way.

Determinism comes from the contract, not from luck: every individual carries its own episode seed
(drawn in the parent process), tasks compute each row independently of the others, and the batch is
split into contiguous chunks whose results are concatenated in order. So the same run seed gives the
same fitness vector on 1 worker or 2 (tests/test_evolution.py checks it).

Workers are started with the "spawn" method (no forked torch/BLAS thread state) and pin their math
libraries to one thread each: on a 2-core machine, oversubscription costs more than it gains.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from sim.fitness import checked_batch, checked_fitness

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_worker_task = None


def _init_worker(task) -> None:
    global _worker_task
    for var in _THREAD_VARS:
        os.environ[var] = "1"
    _worker_task = task


def _evaluate_chunk(weights: np.ndarray, seeds: np.ndarray, generation: int) -> np.ndarray:
    return _worker_task.evaluate(weights, seeds, generation)


class Evaluator:
    """Callable `evaluator(weights (N, P), seeds (N,), generation) -> fitness (N,)`.

    Use as a context manager (or call `close()`) so worker processes are shut down.
    """

    def __init__(self, task, workers: int = 1):
        if int(workers) < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.task = task
        self.workers = int(workers)
        self._pool = None
        if self.workers > 1:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                             initializer=_init_worker, initargs=(task,))

    def __call__(self, weights: np.ndarray, seeds: np.ndarray, generation: int) -> np.ndarray:
        weights, seeds = checked_batch(weights, seeds)
        if self._pool is None or len(weights) < 2:
            fitness = self.task.evaluate(weights, seeds, generation)
        else:
            chunks = np.array_split(np.arange(len(weights)), min(self.workers, len(weights)))
            futures = [self._pool.submit(_evaluate_chunk, weights[c], seeds[c], generation) for c in chunks]
            fitness = np.concatenate([f.result() for f in futures])
        return checked_fitness(self.task, fitness)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> "Evaluator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def make_evaluator(task, workers: int = 1, backend: str = "local", address: str | None = None,
                   metadata: dict | None = None):
    """An evaluator on the chosen backend: "local" worker processes, or "ray" (the cluster at
    `address` or ``RAY_ADDRESS``, else a local Ray with `num_cpus=workers`; `metadata` such as the
    requester and seed labels its Ray job and tasks). Rows are evaluated independently, so a seed gives
    the same result on either backend however the batch is cut."""
    if backend == "local":
        return Evaluator(task, workers)
    if backend == "ray":
        from sim.ray_backend import RayEvaluator
        return RayEvaluator(task, workers, address=address, metadata=metadata)
    raise ValueError(f"unknown evaluation backend {backend!r}; known: local, ray")
