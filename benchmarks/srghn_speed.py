"""Cost of one SR-GHN generation on one core (torch and BLAS pinned to one thread).

Measures, for P = 10, C = 2 (30 individuals) on CartPole-Switch's 4-32-2 policy:
  reproduce   the stochastic head + 20 children (the self-GNN, coefficients, basis projection)
  write       the deterministic head for all 30 individuals (policy weights)
  evaluate    30 CartPole episodes (vectorised, horizon 500) at the current champion quality
  generation  a whole generation of `evolve_srghn` (all of the above + selection + logging)

Writes benchmarks/results/srghn_speed.{json,md}. Target (issue 2): <= 25 ms per generation.

    python benchmarks/srghn_speed.py [--out DIR]
    python benchmarks/srghn_speed.py --smoke    # does it still run: a few repeats, into a temp dir
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.atomicio import atomic_write_bytes, atomic_write_json  # noqa: E402
from sim.evolution import EvolutionConfig, evolve_srghn  # noqa: E402
from sim.srghn import SRGHN  # noqa: E402
from sim.tasks import make_task  # noqa: E402


def timed(fn, repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(samples))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--smoke", action="store_true", help="2 repeats, 3 generations, into --out or a temp dir")
    args = ap.parse_args()
    out, smoke = args.out, args.smoke
    if smoke and out.resolve() == (Path(__file__).parent / "results").resolve():
        out = Path(tempfile.mkdtemp(prefix="driftgate-smoke-"))
    out.mkdir(parents=True, exist_ok=True)
    reps, trained_gens, timed_gens = (2, 2, 3) if smoke else (None, 40, 100)
    torch.set_num_threads(1)
    task = make_task("cartpole-switch", schedule="")
    model = SRGHN(task.policy)
    parents = model.init_genomes(10, seed=0)
    gen = torch.Generator().manual_seed(0)
    everyone = torch.cat([parents, model.children(parents, 2, gen)[0]])
    weights = model.policy_weights(everyone).numpy()
    seeds = np.arange(30)
    # a trained population makes episodes last the full 500 steps: time evaluation at that cost
    trained = evolve_srghn(task, task.evaluate, trained_gens, seed=0)
    w_trained = model.policy_weights(torch.as_tensor(trained.population).repeat(3, 1)).numpy()
    rows = {
        "reproduce_ms": timed(lambda: model.children(parents, 2, gen), reps or 50),
        "write_policies_ms": timed(lambda: model.policy_weights(everyone), reps or 50),
        "evaluate_random_ms": timed(lambda: task.evaluate(weights, seeds, 0), reps or 20),
        "evaluate_trained_ms": timed(lambda: task.evaluate(w_trained, seeds, 0), reps or 20),
    }
    mean_return = float(task.evaluate(w_trained, seeds, 0).mean())
    t0 = time.perf_counter()
    res = evolve_srghn(task, task.evaluate, timed_gens, seed=1, config=EvolutionConfig(10, 2, 0.0))
    rows["generation_ms_100gen_mean"] = 1e3 * (time.perf_counter() - t0) / timed_gens
    rows["generation_ms_median"] = 1e3 * float(np.median([g.wall_s for g in res.generations]))
    record = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": f"{platform.machine()} {platform.processor()}, {os.cpu_count()} cores, one thread used",
              "torch": torch.__version__, "srghn_params": model.num_params, "policy_params": task.policy.num_params,
              "trained_mean_return": mean_return, **rows}
    atomic_write_json(out / "srghn_speed.json", record)
    md = ["# SR-GHN cost per generation (P = 10, C = 2, CartPole 4-32-2, one core)", "",
          f"Date: {record['date']}. Machine: {record['machine']}. torch {record['torch']}. "
          f"SR-GHN {model.num_params} parameters. Command: `python benchmarks/srghn_speed.py`.", "",
          "| stage | ms |", "|---|---|"]
    md += [f"| {k} | {v:.2f} |" for k, v in rows.items()]
    md += ["", f"`evaluate_trained` uses a population after 40 generations (mean return {mean_return:.0f}).",
           "Target: <= 25 ms per generation."]
    atomic_write_bytes(out / "srghn_speed.md", ("\n".join(md) + "\n").encode())
    print("\n".join(md))


if __name__ == "__main__":
    main()
