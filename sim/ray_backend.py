"""Ray evaluation backend: the same contract as `sim.evaluate.Evaluator`, on a Ray cluster.

Locally `ray.init(num_cpus=workers)` starts a private cluster on this machine; give `address`
(e.g. "ray://head:10001" or "auto" inside a cluster job) to evaluate on a real cluster. The batch
is split into the same contiguous chunks as the local backend and results are concatenated in
order, so the same seed gives the same fitness vector on Ray, on local workers, and on any worker
count. The task object travels once per evaluator (`ray.put`), not once per chunk.

Why it lives in sim/ and not adapters/: the sandbox process (sim/) chooses its backend and sim must
never import adapters; this module talks to Ray only, never to the robot.
"""
from __future__ import annotations

import os

import numpy as np

from sim.evaluate import checked_fitness


def _evaluate_chunk(task, weights: np.ndarray, seeds: np.ndarray, generation: int) -> np.ndarray:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    return task.evaluate(weights, seeds, generation)


class RayEvaluator:
    """Callable `evaluator(weights (N, P), seeds (N,), generation) -> fitness (N,)` on Ray."""

    def __init__(self, task, workers: int = 1, address: str | None = None):
        import ray
        if int(workers) < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.task, self.workers = task, int(workers)
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=self.workers, **kwargs)
        self._ray = ray
        self._remote = ray.remote(num_cpus=1)(_evaluate_chunk)
        self._task_ref = ray.put(task)

    def __call__(self, weights: np.ndarray, seeds: np.ndarray, generation: int) -> np.ndarray:
        weights = np.ascontiguousarray(weights, dtype=np.float32)
        seeds = np.asarray(seeds, dtype=np.int64)
        if weights.ndim != 2 or weights.shape[0] != seeds.shape[0]:
            raise ValueError(f"weights {weights.shape} and seeds {seeds.shape} do not match")
        chunks = np.array_split(np.arange(len(weights)), min(self.workers, len(weights)))
        refs = [self._remote.remote(self._task_ref, weights[c], seeds[c], generation) for c in chunks]
        return checked_fitness(self.task, np.concatenate(self._ray.get(refs)))

    def close(self) -> None:
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()

    def __enter__(self) -> "RayEvaluator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
