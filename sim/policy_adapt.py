"""Adaptation of a `kind="policy"` champion (flat MLP weights, e.g. the bootstrap LQR): CMA-ES.

The sandbox (`sim.sandbox.child_main`) dispatches on the champion's kind: SR-GHN genomes go to
`sim.adapt_job.run_job` (system identification + SR-GHN evolution), policy genomes come here. A
policy has no generative head, so the search is CMA-ES on its weights (numpy only), under the job's
``drift`` (the DriftSpec to adapt to; the nominal robot when null). No system identification: a
policy champion is a bootstrap, the first SR-GHN champion replaces it. Same job contract, same
result.json keys as `run_job`, same budgets (budget_s, max_generations, population, children).
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from sim.drift_spec import DriftSpec
from sim.genome import Genome
from sim.job_contract import AdaptJob

SIGMA0 = 0.5


def run_policy_job(job: AdaptJob, seeds: list[Genome], telemetry=None,
                   progress: Callable[[str, dict], None] | None = None) -> tuple[dict, Genome]:
    from sim.baselines.cmaes import CMAES
    from sim.plant_task import PlantTask
    t0 = time.monotonic()
    parent = seeds[0]
    drift = DriftSpec.parse(job.drift)
    task = PlantTask(job.robot, drifts=(drift,), horizon=job.horizon, episodes=1, hidden=parent.policy_spec.hidden)
    if task.policy != parent.policy_spec:
        raise ValueError(f"seed genome's policy {parent.policy_spec} does not drive plant {job.robot!r} "
                         f"({task.policy})")
    rng = np.random.default_rng(job.seed)
    x0 = parent.vector.astype(np.float64)
    before = float(task.evaluate(x0[None], rng.integers(0, 2**31 - 1, size=1))[0])
    opt = CMAES(x0, popsize=job.population * (1 + job.children), sigma0=SIGMA0, seed=job.seed,
                diagonal=x0.size > 1000)
    best_x, best_f = x0, before
    generations = []
    for g in range(job.max_generations):
        if time.monotonic() - t0 > 0.8 * job.budget_s:
            break
        X = opt.ask()
        fit = task.evaluate(np.asarray(X, dtype=np.float32), rng.integers(0, 2**31 - 1, size=len(X)), g)
        opt.tell(fit)
        i = int(np.argmax(fit))
        if fit[i] > best_f:
            best_x, best_f = np.asarray(X[i]), float(fit[i])
        generations.append({"gen": g, "best": float(np.max(fit)), "mean": float(np.mean(fit))})
        if progress is not None:
            progress("evolve", generations[-1])
    cand = Genome(vector=best_x.astype(np.float32), policy_spec=task.policy, kind="policy",
                  parent_id=parent.id, generation=parent.generation + 1, drift_hash=drift.hash,
                  fitness={"score": best_f, "plant": job.robot, "method": "cmaes"})
    result = {"status": "ok", "robot": job.robot, "drift": drift.as_dict(), "sysid": None,
              "candidate_id": cand.id, "parent_id": parent.id, "return_before": before, "return_after": best_f,
              "generations": generations, "method": "cmaes", "wall_s": time.monotonic() - t0, "job": job.to_dict()}
    return result, cand


__all__ = ["run_policy_job"]
