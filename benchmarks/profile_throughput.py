"""Batched evaluation rate of a robot-profile plant against the hand-coded plant on the same model.

Why: generality must not cost speed (issue 14: a `ProfilePlant` evaluates at >= 80 % of the
hand-coded plant's rate). For cartpole and walker, `PlantTask.evaluate` (batched: one MjData per
individual, numpy observation/reward, one batched MLP forward per tick) on the hand-coded plant
(`cartpole`, `walker`) and on its shipped profile (`launch/robots/<name>.yaml`: same MJCF, same
sub-steps, the dm_control reward through the profile's entry point, observation and falls from the
profile; and the same profile with a generic objective computed by the profile machinery: the
default model-reference tracking for the cartpole, the suite's stand reward written as declarative
terms for the walker), population 30 x 300 ticks, the same 30 `init_policy` networks for both (the observation
widths differ, so each gets networks of its own shape from the same seeds). Rows are interleaved
per repeat (a burst of load on the shared machine hits both) and the median over repeats is
reported with the spread. Rate = env steps (control ticks) per second; ratio = profile / hand-coded,
per repeat (the two rows of a repeat ran back to back, under the same load), median over repeats.

    python benchmarks/profile_throughput.py [--repeats 7]     # writes benchmarks/results/profile_throughput.{json,md}
    python benchmarks/profile_throughput.py --smoke            # tiny run, writes to a temporary directory only
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ.setdefault("MUJOCO_GL", "disable")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.plant_task import PlantTask  # noqa: E402
from sim.policy import init_policy  # noqa: E402

# (plant, objective of the profile): the shipped profile's dm_control reward through its entry point,
# and the generic objectives computed by the profile machinery itself on the same model
ROWS = (("cartpole", "entry_point"), ("cartpole", "model_reference"), ("walker", "entry_point"), ("walker", "terms"))
OBJECTIVES = {
    "model_reference": {"kind": "model_reference", "track": ["joint_positions", "joint_velocities"]},
    # the suite's stand reward, declaratively: (3 standing + upright) / 4
    "terms": {"kind": "terms", "combine": "weighted_mean", "terms": [
        {"tolerance": "body_height(torso)", "bounds": [1.2, float("inf")], "margin": 0.6, "weight": 3},
        {"upright": "torso", "weight": 1}]},
}
TARGET = 0.80


def profile_file(name: str, objective: str, folder: Path) -> str:
    """The shipped profile, or a copy of it with another objective (written to `folder`)."""
    import yaml
    shipped = ROOT / "launch" / "robots" / f"{name}.yaml"
    if objective == "entry_point":
        return str(shipped)
    doc = yaml.safe_load(shipped.read_text())
    doc["objective"] = OBJECTIVES[objective]
    doc["assets"] = {}
    path = folder / f"{name}_{objective}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def weights_for(task: PlantTask, n: int) -> np.ndarray:
    return np.stack([init_policy(task.policy, 1000 + i) for i in range(n)]).astype(np.float32)


def timed(task: PlantTask, weights: np.ndarray, seeds: np.ndarray) -> float:
    t0 = time.perf_counter()
    fitness = task.evaluate(weights, seeds)
    wall = time.perf_counter() - t0
    assert np.all(np.isfinite(fitness))
    return len(weights) * task.horizon / wall


def bench(name: str, objective: str, population: int, horizon: int, repeats: int, folder: Path) -> dict:
    tasks = {"hand_coded": PlantTask(name, horizon=horizon),
             "profile": PlantTask(profile_file(name, objective, folder), horizon=horizon)}
    weights = {k: weights_for(t, population) for k, t in tasks.items()}
    seeds = np.arange(population)
    for k, t in tasks.items():      # warm: batch caches, model compile, first-call costs
        t.evaluate(weights[k], seeds)
    rates = {k: [] for k in tasks}
    for _ in range(repeats):
        for k, t in tasks.items():
            rates[k].append(timed(t, weights[k], seeds))
    med = {k: float(np.median(v)) for k, v in rates.items()}
    ratios = [p / h for p, h in zip(rates["profile"], rates["hand_coded"])]
    return {"plant": name, "objective": objective, "population": population, "horizon": horizon, "repeats": repeats,
            "obs_dim": {k: t.policy.obs_dim for k, t in tasks.items()},
            "steps_per_s": {k: {"median": med[k], "min": float(min(v)), "max": float(max(v)), "all": v}
                            for k, v in rates.items()},
            "ratio_of_medians": med["profile"] / med["hand_coded"],
            "ratio_paired_median": float(np.median(ratios)), "ratio_paired_all": ratios,
            "meets_target": float(np.median(ratios)) >= TARGET}


def markdown(rec: dict) -> str:
    lines = [f"# Profile plant vs hand-coded plant: batched evaluation rate ({rec['date']})", "",
             f"Machine: {rec['machine']}, Python {rec['python']}; shared with other jobs, so medians over "
             f"{rec['rows'][0]['repeats']} interleaved repeats (min-max in brackets). "
             f"Population {rec['rows'][0]['population']} x {rec['rows'][0]['horizon']} ticks, `PlantTask.evaluate`. "
             f"Target: profile >= {TARGET:.0%} of hand-coded.", "",
             "| plant | profile objective | hand-coded steps/s | profile steps/s | profile / hand-coded (paired median) | ratio of medians | target met |",
             "|---|---|---|---|---|---|---|"]
    for r in rec["rows"]:
        h, p = r["steps_per_s"]["hand_coded"], r["steps_per_s"]["profile"]
        lines.append(f"| {r['plant']} | {r['objective']} | {h['median']:,.0f} [{h['min']:,.0f}-{h['max']:,.0f}] | "
                     f"{p['median']:,.0f} [{p['min']:,.0f}-{p['max']:,.0f}] | {r['ratio_paired_median']:.2f} | "
                     f"{r['ratio_of_medians']:.2f} | "
                     f"{'yes' if r['meets_target'] else 'NO'} |")
    lines += ["", f"Command: `{rec['command']}`", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--population", type=int, default=30)
    ap.add_argument("--horizon", type=int, default=300)
    ap.add_argument("--smoke", action="store_true", help="tiny run; results go to a temporary directory only")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    if args.smoke:
        args.repeats, args.population, args.horizon = 1, 4, 10
        if args.out.resolve() == (ROOT / "benchmarks" / "results").resolve():   # never over committed results
            args.out = Path(tempfile.mkdtemp(prefix="profile_throughput_"))
    folder = Path(tempfile.mkdtemp(prefix="profile_variants_"))
    rows = [bench(name, objective, args.population, args.horizon, args.repeats, folder) for name, objective in ROWS]
    rec = {"benchmark": "profile_throughput", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "machine": f"{cpu_name()}, {os.cpu_count()} CPUs", "python": platform.python_version(),
           "command": "python benchmarks/profile_throughput.py " + " ".join(sys.argv[1:]), "target_ratio": TARGET,
           "rows": rows}
    from sim.atomicio import atomic_write_bytes, atomic_write_json
    atomic_write_json(args.out / "profile_throughput.json", rec)
    atomic_write_bytes(args.out / "profile_throughput.md", markdown(rec).encode())
    print(markdown(rec))
    print(f"wrote {args.out}/profile_throughput.{{json,md}}")


if __name__ == "__main__":
    main()
