"""Ray evaluation backend: the same contract as `sim.evaluate.Evaluator`, on a Ray cluster.

Where: the cluster at `address` (``host:port`` of a head's GCS, ``ray://host:10001`` with Ray Client,
or ``RAY_ADDRESS``), reached within seconds or a one-line error (`sim.ray_cluster`); with no address,
a private local Ray with ``num_cpus=workers``. Inside the sandbox the parent always hands over an
address (it starts a head outside the sandbox when the job names none).

How the work is cut: the batch is split into contiguous chunks, at most one per worker, and never
smaller than the chunk whose per-task overhead stays under `MAX_OVERHEAD` of its work. The overhead
(a no-op task's round trip) is measured when the evaluator starts and the per-individual time on the
first batches, each task returning its own compute time. Every row is evaluated independently of the
others (sim.evaluate's contract), so fitness is the same whatever the cut: the same seed gives the
same fitness vector on Ray, on local workers, and on any worker count.

Many robots, one cluster: the driver joins with job metadata (requester, job id, seed), each task is
named ``driftgate/<requester>/seed<seed>/gen<g>/chunk<i>``; the task object travels once per evaluator
(`ray.put`), not once per chunk. A worker that dies mid-task is retried (`MAX_RETRIES`, the result
is the same: tasks are pure); past that the generation fails with a one-line error. A driver that
dies (a job cancelled by its node: the sandbox's process group is killed) has its tasks cancelled
by Ray, which frees the cluster's CPUs.

Why it lives in sim/ and not adapters/: the sandbox process (sim/) chooses its backend and sim must
never import adapters; this module talks to Ray only, never to the robot.
"""
from __future__ import annotations

import math
import os
import time

import numpy as np

from sim.fitness import checked_batch, checked_fitness
from sim.ray_cluster import (CONNECT_TIMEOUT_S, INIT_TIMEOUT_S, RayUnavailable, check_reachable, cluster_address,
                             enable_token_auth, init_with_timeout)

MAX_OVERHEAD = 0.05        # per-task overhead allowed, as a share of the task's work
MAX_RETRIES = 2            # a chunk whose worker died is run again (same result: tasks are pure)
LOCAL_OBJECT_STORE_MB = 256

_worker_tasks: dict = {}   # in each Ray worker: task object by ref, deserialised once per worker


def _evaluate_chunk(task_box: list, weights: np.ndarray, seeds: np.ndarray, generation: int):
    """One chunk on a Ray worker: (fitness, compute seconds, CPU seconds). The task ref arrives boxed in a list
    so that Ray does not fetch it again for every chunk: each worker keeps it."""
    import ray
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    ref = task_box[0]
    task = _worker_tasks.get(ref.hex())
    if task is None:
        if len(_worker_tasks) > 8:
            _worker_tasks.clear()
        task = _worker_tasks[ref.hex()] = ray.get(ref)
    t0, c0 = time.perf_counter(), time.process_time()
    fitness = task.evaluate(weights, seeds, generation)
    return np.asarray(fitness, dtype=np.float64), time.perf_counter() - t0, time.process_time() - c0


def _noop() -> None:
    return None


def plan_chunks(n: int, workers: int, per_item_s: float | None, overhead_s: float | None,
                max_overhead: float = MAX_OVERHEAD) -> list[np.ndarray]:
    """Contiguous index chunks of a batch of `n`: one per worker, fewer when a chunk would be so
    small that the per-task overhead exceeds `max_overhead` of its work (unknown costs: one per worker)."""
    chunks = min(workers, n)
    if per_item_s and overhead_s and per_item_s > 0:
        min_items = math.ceil(overhead_s / (max_overhead * per_item_s))
        chunks = max(1, min(chunks, n // max(1, min_items)))
    return np.array_split(np.arange(n), max(1, chunks))


class RayEvaluator:
    """Callable `evaluator(weights (N, P), seeds (N,), generation) -> fitness (N,)` on Ray."""

    def __init__(self, task, workers: int = 1, address: str | None = None, *, metadata: dict | None = None,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S, init_timeout_s: float = INIT_TIMEOUT_S):
        if int(workers) < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.task, self.workers = task, int(workers)
        self.metadata = {k: str(v) for k, v in (metadata or {}).items()}
        self.address = cluster_address(address)
        self.overhead_s: float | None = None
        self.per_item_s: float | None = None
        self.chunk_log: list[int] = []          # chunks per call (what the planner chose)
        self.last_chunk_s: list[float] = []     # the last call's chunks: time inside the task
        self.last_chunk_cpu_s: list[float] = []  # ... and CPU time (what load on the machine does not stretch)
        import ray
        self._ray = ray
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            self._connect(connect_timeout_s, init_timeout_s)
        self._remote = ray.remote(num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False)(_evaluate_chunk)
        self._task_ref = ray.put(task)
        name = ["driftgate", self.metadata.get("requester", "").strip("/")]
        if "seed" in self.metadata:
            name.append(f"seed{self.metadata['seed']}")
        self._name = "/".join(p for p in name if p)
        self.overhead_s = self._measure_overhead()

    def _connect(self, connect_timeout_s: float, init_timeout_s: float) -> None:
        ray = self._ray
        kwargs = dict(log_to_driver=False, configure_logging=False, namespace="driftgate")
        if self.metadata:
            from ray.job_config import JobConfig
            kwargs["job_config"] = JobConfig(metadata={"driftgate": "adaptation", **self.metadata})
        if self.address:
            check_reachable(self.address, connect_timeout_s)
            enable_token_auth()
            init_with_timeout(ray, init_timeout_s, address=self.address, **kwargs)
        else:   # in this thread: Ray's processes die with the thread that started them (PDEATHSIG)
            ray.init(num_cpus=self.workers, include_dashboard=False,
                     object_store_memory=LOCAL_OBJECT_STORE_MB * 1024 * 1024, **kwargs)

    def _measure_overhead(self, samples: int = 5) -> float:
        """Median round trip of a no-op task on this cluster (scheduling, transfer, result)."""
        noop = self._ray.remote(num_cpus=1)(_noop)
        self._ray.get(noop.remote())              # a worker is up
        times = []
        for _ in range(samples):
            t0 = time.perf_counter()
            self._ray.get(noop.remote())
            times.append(time.perf_counter() - t0)
        return float(np.median(times))

    def __call__(self, weights: np.ndarray, seeds: np.ndarray, generation: int) -> np.ndarray:
        weights, seeds = checked_batch(weights, seeds)
        chunks = plan_chunks(len(weights), self.workers, self.per_item_s, self.overhead_s)
        self.chunk_log.append(len(chunks))
        box = [self._task_ref]
        refs = [self._remote.options(name=f"{self._name}/gen{generation}/chunk{i}").remote(
                    box, weights[c], seeds[c], generation) for i, c in enumerate(chunks)]
        try:
            parts = self._ray.get(refs)
        except self._ray.exceptions.RayTaskError:
            raise                                   # the task itself raised: its own error, as locally
        except self._ray.exceptions.RayError as e:  # a worker or node lost past the retries
            for ref in refs:
                self._ray.cancel(ref, force=True)
            first = (str(e).strip().splitlines() or [""])[0][:300]
            raise RayUnavailable(f"ray: generation {generation} failed after {MAX_RETRIES} retries: "
                                 f"{type(e).__name__}: {first}") from None
        self.last_chunk_s = [t for _, t, _ in parts]
        self.last_chunk_cpu_s = [c for _, _, c in parts]
        per_item = [t / len(c) for (_, t, _), c in zip(parts, chunks) if len(c)]
        if per_item:
            self.per_item_s = float(np.median(per_item))
        return checked_fitness(self.task, np.concatenate([f for f, _, _ in parts]))

    def close(self) -> None:
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()

    def __enter__(self) -> "RayEvaluator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
