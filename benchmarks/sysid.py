"""System identification benchmark: recovered vs true drift parameters, with sensor noise.

For every plant and every named drift variant (`sim.drift_spec.VARIANTS`): run the plant under the
drift with its nominal controller (plus the small probing signal `sim.sysid.record` adds), record
qpos/qvel with sigma = 0.01 Gaussian sensor noise on every coordinate, then run
`sim.sysid.identify` on the window with the plant's default parameter set and the budget below.
One row per identified parameter: true value (1 where the variant leaves it alone), estimate,
reported std, absolute and relative error. `drifted` marks the parameters the variant changes.

Variants whose drift is not in the parameter set (sensor bias, observation noise, action delay)
are there to show what identification reports when the dynamics did *not* change, or changed in
a way it does not model: the action delay is deliberately not given to it as known.

`loss_at_truth` is the replay loss of the true parameters on the same window (same start-state
correction): when it is above the loss of the estimate, the remaining error is the data's (noise,
weak excitation, near-equivalent parameter sets), not the search's.

    python benchmarks/sysid.py --out benchmarks/results [--plants cartpole,walker] [--quick]
    python benchmarks/sysid.py --smoke [--out DIR]     # does it still run: seconds, into a temp dir

Runs on one core (BLAS threads = 1, rollouts single-threaded); about 5 minutes in full.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("MUJOCO_GL", "disable")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mujoco  # noqa: E402

from sim.drift_spec import VARIANTS, DriftSpec  # noqa: E402
from sim.plants import make_plant  # noqa: E402
from sim.sysid import PARAMETER_SETS, Replay, identify, record, spec_from_params  # noqa: E402

NOISE = 0.01
# per plant: telemetry length (ticks), prediction horizon (ticks), windows, loss evaluations
CONFIG = {
    "cartpole": {"ticks": 1000, "horizon": 25, "max_windows": 60, "max_evals": 600},
    "walker": {"ticks": 400, "horizon": 16, "max_windows": 24, "max_evals": 1000},
    "reacher": {"ticks": 500, "horizon": 15, "max_windows": 60, "max_evals": 3000},
}


def true_value(spec: DriftSpec, name: str) -> float:
    field, key = name.split(".", 1)
    table = dict(getattr(spec, field))
    return table.get(key, 1.0) * (table.get("*", 1.0) if key != "*" else 1.0)


def run_one(plant_name: str, variant: str, seed: int, quick: bool, smoke: bool = False) -> dict:
    cfg = dict(CONFIG[plant_name])
    if quick:
        cfg["ticks"], cfg["max_evals"] = cfg["ticks"] // 2, cfg["max_evals"] // 3
    if smoke:  # does the script still run: not an estimate worth reading
        cfg["ticks"], cfg["max_evals"], cfg["max_windows"] = cfg["ticks"] // 2, 20, min(cfg["max_windows"], 4)
    spec = VARIANTS[plant_name][variant]
    plant = make_plant(plant_name, seed=seed, drift=spec)
    controller = plant.nominal_controller()
    tel = record(plant, controller, cfg["ticks"], noise_std=NOISE, seed=seed)
    result = identify(make_plant(plant_name), tel, horizon=cfg["horizon"],
                      max_windows=cfg["max_windows"], max_evals=cfg["max_evals"],
                      max_seconds=120, seed=seed)
    params = PARAMETER_SETS[plant_name]
    truth = {p.name: true_value(spec, p.name) for p in params}
    # loss of the true parameters on the same landscape the search ended on
    replay = Replay.build(make_plant(plant_name), tel, result.horizon,
                          max_windows=cfg["max_windows"])
    replay.refine(result.estimate)
    loss_truth = replay.loss(spec_from_params(truth))
    loss_est = replay.loss(result.estimate)
    rows = []
    for p in params:
        est, std, true = result.params[p.name], result.std[p.name], truth[p.name]
        rows.append({"parameter": p.name, "true": true, "estimate": est, "std": std,
                     "abs_error": abs(est - true), "rel_error": abs(est - true) / abs(true),
                     "drifted": true != 1.0, "within_10pct": abs(est - true) <= 0.1 * abs(true)})
    return {"plant": plant_name, "variant": variant, "drift": spec.as_dict(),
            "drift_hash": spec.hash, "seed": seed, "noise_std": NOISE, **cfg,
            "wall_s": result.wall_s, "evaluations": result.evaluations, "stop": result.stop,
            "windows": result.windows, "nominal_loss": result.nominal_loss, "loss": loss_est,
            "loss_at_truth": loss_truth, "estimate": result.estimate.as_dict(),
            "sign_correct": all(np.sign(r["estimate"]) == np.sign(r["true"]) for r in rows),
            "params": rows}


NOTES = [
    "- **Cartpole** (the headline plant): every drifted parameter is recovered, the sign of an "
    "inverted motor always. Undrifted ones can be off where another drift dominates the motion "
    "(joint_wear: the heavily damped cart masks the pole's reaction; pole 0.38, and its std says "
    "it is poorly known). The nominal slider damping (5e-4 N s/m) is below what 10 s of motion "
    "can resolve, hence its wide std wherever it is not drifted.",
    "- **Action delay** is not in any parameter set and is not given as known here: the replay then "
    "explains the late response with a weaker motor (cartpole gain ~0.87). Pass "
    "`known={\"action_delay\": d}` when the delay is known.",
    "- **Walker friction** is not identifiable from a squat: the feet never slip, so any friction "
    "above the slip threshold explains the window equally (the estimate is arbitrary). Knee damping "
    "x5 (0.1 -> 0.5 N m s/rad) is likewise invisible next to 50 N m knee torques.",
    "- **Walker std is overconfident**: contacts make the loss rugged, so local curvature and even "
    "the split-half refit understate the spread; use the errors here as the honest scale. "
    "`loss_at_truth` above `estimate loss` means the noise, not the search, set the error.",
    "- **Reacher**: scaling hand mass, both gains and both dampings together changes the motion only "
    "through the (fixed) upper-arm inertia, so estimates slide along that direction (payload: hand "
    "2.5 with gains ~0.87; the ratio hand/gain ~2.9 is right). Loss at the estimate equals loss at "
    "the truth: the data, not the optimiser, cannot tell them apart.",
    "- `sensor_bias` / `sensor_noise` change observations only: the dynamics parameters should and "
    "do come out near 1 (walker: within ~0.3, its noise floor under contacts).",
]


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor(),
            "uname": " ".join(platform.uname()), "python": platform.python_version(),
            "mujoco": mujoco.__version__, "numpy": np.__version__,
            "cpu_count": os.cpu_count(), "loadavg": list(os.getloadavg())}


def fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1e4 else f"{x:.2e}"


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# System identification by replay (sensor noise sigma = 0.01)", "",
        f"{report['date']} on `{m['uname']}` (processor `{m['processor'] or 'n/a'}`), "
        f"mujoco {m['mujoco']}, one core, load average {m['loadavg'][0]:.2f}. "
        f"Total {report['total_wall_s']:.0f} s.", "",
        "Per plant and drift variant: the plant runs under the drift with its nominal controller "
        "(+ probing signal), qpos/qvel are recorded with N(0, 0.01^2) noise, and "
        "`sim.sysid.identify` estimates the plant's parameter set. True = 1 where the variant leaves a parameter alone; "
        "**bold** rows are the parameters the variant drifts. `std` is the reported uncertainty "
        "(max of cluster-robust Laplace and split-half refit).", "",
        "| plant | variant | parameter | true | estimated ± std | abs error | rel error | wall_s |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in report["rows"]:
        for i, p in enumerate(row["params"]):
            first = i == 0
            name = f"**{p['parameter']}**" if p["drifted"] else p["parameter"]
            lines.append(f"| {row['plant'] if first else ''} | {row['variant'] if first else ''} "
                         f"| {name} | {fmt(p['true'])} | {fmt(p['estimate'])} ± {fmt(p['std'])} "
                         f"| {fmt(p['abs_error'])} | {p['rel_error']:.1%} "
                         f"| {format(row['wall_s'], '.1f') if first else ''} |")
    lines += ["", "Loss (mean squared normalised K-step prediction error after start-state "
              "correction): nominal -> estimate, and at the true parameters.", "",
              "| plant | variant | nominal loss | estimate loss | loss at truth | evaluations | "
              "stop |", "|---|---|---:|---:|---:|---:|---|"]
    for row in report["rows"]:
        lines.append(f"| {row['plant']} | {row['variant']} | {row['nominal_loss']:.4g} | "
                     f"{row['loss']:.4g} | {row['loss_at_truth']:.4g} | {row['evaluations']} | "
                     f"{row['stop']} |")
    s = report["summary"]
    lines += ["", "## Summary", "",
              f"- drifted parameters recovered within ±10 %: {s['drifted_within_10pct']} of "
              f"{s['drifted_total']}",
              f"- gain signs recovered: {s['signs_correct']} of {s['rows']} variants",
              f"- drifted parameters within 2 reported std: {s['drifted_within_2std']} of "
              f"{s['drifted_total']}",
              f"- per plant (drifted within ±10 %): " + ", ".join(
                  f"{k} {v[0]}/{v[1]}" for k, v in s["per_plant"].items()), ""]
    lines += ["## Reading the results", "", *NOTES, ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--plants", default="cartpole,walker,reacher")
    ap.add_argument("--variants", default="", help="comma list; default: all of each plant")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="half the ticks, a third of the budget")
    ap.add_argument("--render", action="store_true", help="only rewrite sysid.md from sysid.json")
    ap.add_argument("--smoke", action="store_true",
                    help="one cartpole variant, 20 evaluations, into --out or a temp dir (never results/)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.plants, args.variants, args.render = "cartpole", args.variants or next(iter(VARIANTS["cartpole"])), False
        if Path(args.out).resolve() == (ROOT / "benchmarks" / "results").resolve():
            import tempfile
            args.out = tempfile.mkdtemp(prefix="driftgate-smoke-")
    if args.render:
        out = Path(args.out)
        (out / "sysid.md").write_text(markdown(json.loads((out / "sysid.json").read_text())))
        return 0
    t0 = time.perf_counter()
    rows = []
    for plant_name in args.plants.split(","):
        wanted = args.variants.split(",") if args.variants else list(VARIANTS[plant_name])
        for variant in (v for v in wanted if v in VARIANTS[plant_name]):
            row = run_one(plant_name, variant, args.seed, args.quick, args.smoke)
            rows.append(row)
            worst = max((p["rel_error"] for p in row["params"] if p["drifted"]), default=0.0)
            print(f"{plant_name:9s} {variant:17s} {row['wall_s']:5.1f} s  worst drifted rel err "
                  f"{worst:6.1%}  " + "  ".join(f"{p['parameter'].split('.', 1)[1]}="
                                                 f"{p['estimate']:.3g}±{p['std']:.2g}"
                                                 for p in row["params"]), flush=True)
    drifted = [p for r in rows for p in r["params"] if p["drifted"]]
    per_plant = {}
    for r in rows:
        d = [p for p in r["params"] if p["drifted"]]
        ok, n = per_plant.get(r["plant"], (0, 0))
        per_plant[r["plant"]] = (ok + sum(p["within_10pct"] for p in d), n + len(d))
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(), "noise_std": NOISE, "config": CONFIG, "quick": args.quick,
        "total_wall_s": time.perf_counter() - t0, "rows": rows,
        "summary": {"rows": len(rows), "drifted_total": len(drifted),
                    "drifted_within_10pct": sum(p["within_10pct"] for p in drifted),
                    "drifted_within_2std": sum(p["abs_error"] <= 2 * p["std"] for p in drifted),
                    "signs_correct": sum(r["sign_correct"] for r in rows),
                    "per_plant": per_plant},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sysid.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    (out / "sysid.md").write_text(markdown(report))
    print(f"wrote {out / 'sysid.json'} and {out / 'sysid.md'} in {report['total_wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
