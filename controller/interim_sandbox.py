"""INTERIM sandbox job: `python -m controller.interim_sandbox JOB_DIR`. Replace with `sim/sandbox`.

This exists so the orchestrator can be run end to end before the real sandbox (issue 4) lands. It
honours the same directory contract — reads ``job.json`` and ``seeds/*.safetensors``, answers only
with ``result.json`` + ``candidate.safetensors`` — but offers none of the real sandbox's guarantees
beyond running in its own process: no system identification (it evolves under ``drift_hint`` from
job.json, or the nominal plant), no memory limit, no CPU-time limit (the parent's wall-clock kill
is the only limit).

Search: a `kind="policy"` seed is improved by CMA-ES on its flat weights (numpy only); an SR-GHN
seed (or no seed) runs the SR-GHN population loop (torch, in this child process only).
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np


def _write_result(job_dir: Path, result: dict) -> None:
    tmp = job_dir / "result.json.tmp"
    tmp.write_text(json.dumps(result, indent=1, allow_nan=False, default=float))
    os.replace(tmp, job_dir / "result.json")


def run(job_dir: Path) -> dict:
    from sim.drift_spec import DriftSpec
    from sim.genome import Genome, load_genome, save_genome
    from sim.plant_task import PlantTask

    t0 = time.monotonic()
    job = json.loads((job_dir / "job.json").read_text())
    plant = str(job["plant"])
    budgets = dict(job.get("budgets") or {})
    wall_s = float(budgets.get("wall_s", 60.0))
    generations = int(budgets.get("generations", 20))
    population = int(budgets.get("population", 10))
    children = int(budgets.get("children", 2))
    horizon = int(budgets.get("horizon", 300))
    episodes = int(budgets.get("episodes", 1))
    seed = int(job.get("seed", 0))
    drift = DriftSpec.parse(job.get("drift_hint"))
    seeds = [load_genome(job_dir / p) for p in job.get("seeds") or []]
    parent = seeds[0] if seeds else None

    if parent is not None and parent.kind == "policy":
        task = PlantTask(plant, drifts=(drift,), horizon=horizon, episodes=episodes,
                         hidden=parent.policy_spec.hidden)
        if task.policy != parent.policy_spec:
            raise ValueError(f"seed genome's policy {parent.policy_spec} does not drive plant {plant!r} "
                             f"({task.policy})")
        from sim.baselines.cmaes import CMAES
        rng = np.random.default_rng(seed)
        x0 = parent.vector.astype(np.float64)
        before = float(task.evaluate(x0[None], rng.integers(0, 2**31 - 1, size=1))[0])
        opt = CMAES(x0, popsize=population * (1 + children), sigma0=float(budgets.get("sigma0", 0.5)),
                    seed=seed, diagonal=x0.size > 1000)
        best_x, best_f = x0, before
        for g in range(generations):
            if time.monotonic() - t0 > 0.8 * wall_s:
                break
            X = opt.ask()
            fit = task.evaluate(np.asarray(X, dtype=np.float32), rng.integers(0, 2**31 - 1, size=len(X)), g)
            opt.tell(fit)
            i = int(np.argmax(fit))
            if fit[i] > best_f:
                best_x, best_f = np.asarray(X[i]), float(fit[i])
        cand = Genome(vector=best_x.astype(np.float32), policy_spec=task.policy, kind="policy",
                      parent_id=parent.id, generation=parent.generation + 1, drift_hash=drift.hash,
                      fitness={"score": best_f, "plant": plant, "method": "interim-cmaes"})
        method = "cmaes"
    else:
        import torch

        from sim.evaluate import Evaluator
        from sim.evolution import EvolutionConfig, evolve_srghn
        from sim.srghn import SRGHNConfig, shipped_config
        torch.set_num_threads(1)
        hidden = parent.policy_spec.hidden if parent is not None else (32, 32)
        task = PlantTask(plant, drifts=(drift,), horizon=horizon, episodes=episodes, hidden=hidden)
        mcfg = SRGHNConfig(**(parent.model or {})) if parent is not None else shipped_config(update_clip=0.1)
        init = parent.vector[None] if parent is not None else None
        before = None
        with Evaluator(task, workers=1) as ev:
            res = evolve_srghn(task, ev, generations, seed, EvolutionConfig(population, children), mcfg,
                               initial=init)
        best_f = res.champion_fitness
        cand = Genome(vector=res.champion, policy_spec=task.policy, kind="srghn", model=mcfg.to_dict(),
                      parent_id=parent.id if parent is not None else None,
                      generation=(parent.generation if parent is not None else 0) + generations,
                      drift_hash=drift.hash, fitness={"score": best_f, "plant": plant, "method": "interim-srghn"})
        method = "srghn"
    save_genome(cand, job_dir / "candidate.safetensors")
    return {"status": "ok", "plant": plant, "drift": drift.as_dict(), "sysid": None,
            "candidate_id": cand.id, "candidate_file": "candidate.safetensors",
            "parent_id": cand.parent_id, "return_before": before, "return_after": best_f,
            "method": method, "interim": True, "wall_s": time.monotonic() - t0}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m controller.interim_sandbox JOB_DIR", file=sys.stderr)
        return 2
    job_dir = Path(argv[0])
    try:
        os.nice(10)     # below the live node
    except OSError:
        pass
    try:
        result = run(job_dir)
    except Exception as e:
        traceback.print_exc()
        _write_result(job_dir, {"status": "failed", "error": f"{type(e).__name__}: {e}"})
        return 1
    _write_result(job_dir, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
