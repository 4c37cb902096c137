"""Distillation benchmark: how well `driftgate champion distill` copies a robot's own controller.

Per plant and seed: record `seconds` of the nominal robot driven by its incumbent controller with
sigma = 0.01 sensor noise (`adapters.recording.simulate_bag`, no drift: what the drift scenarios
drive it with, i.e. the cartpole's nominal LQR tracking a moving setpoint, the walker's squat LQR),
(`cartpole:static`: the nominal LQR about a fixed setpoint, a controller
without hidden state that a policy of the joint state can represent exactly), distil a champion from the bag (`sim.distill`, default settings, the seed as its seed), and measure:

- the fit error on held-out ticks: RMSE per command channel relative to the commands' spread
  (mean over channels);
- the closed-loop return of the distilled champion vs the incumbent's, 20 episodes x 300 ticks on
  the same episode seeds (a fall ends the reward, as in `PlantTask`);
- wall time of the fit and of the whole distillation.

A seed "passes" when the distilled mean return is >= 90 % of the incumbent's; medians count every
seed (a failure is a low ratio, not a dropped row).

    python benchmarks/distill.py [--plants cartpole,walker] [--seeds 5] [--out benchmarks/results]
    python benchmarks/distill.py --smoke      # a few seconds, writes only to a temporary directory
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
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.demonstration import read_demonstration  # noqa: E402
from adapters.recording import simulate_bag  # noqa: E402
from sim.atomicio import atomic_write_bytes, atomic_write_json  # noqa: E402
from sim.distill import DistillConfig, distill  # noqa: E402


STATIC = ":static"   # suffix: the plant's nominal controller about a fixed setpoint (no clock inside)


def incumbent_factory(case: str):
    """The controller `simulate_bag` drove the plant with, fresh per episode."""
    from sim.drift_scenarios import SCENARIOS
    from sim.plants import make_plant
    plant = case.removesuffix(STATIC)
    if case.endswith(STATIC):
        def make():
            ctrl = make_plant(plant).nominal_controller(amplitude=0.0)
            ctrl.reset()
            return ctrl
        make.how = f"the recording's controller ({plant} nominal controller, fixed setpoint), same seeds"
        return make
    sc = SCENARIOS[plant]

    def make():
        return sc.make_controller(make_plant(plant))
    make.how = f"the recording's controller ({plant} drift-scenario controller {sc.controller_kw}), same seeds"
    return make


def run_one(case: str, seed: int, seconds: float, cfg: DistillConfig, work: Path) -> dict:
    t0 = time.perf_counter()
    plant = case.removesuffix(STATIC)
    ctrl = incumbent_factory(case)() if case.endswith(STATIC) else None
    bag = simulate_bag(work / f"{plant}-{seed}-{len(case)}", plant=plant, seconds=seconds, seed=seed,
                       controller=ctrl)
    t_rec = time.perf_counter() - t0
    demo = read_demonstration(bag, plant)
    res = distill(demo, plant, cfg, incumbent=incumbent_factory(case))
    r = res.report
    rel = [x for x in r["fit_error"]["relative"] if x is not None]
    cl = r["closed_loop"]
    return {"plant": case, "seed": seed, "ticks": r["ticks"], "test_ticks": r["split"]["test"],
            "rel_rmse_mean": float(np.mean(rel)), "rel_rmse_max": float(np.max(rel)),
            "rmse": r["fit_error"]["rmse"], "distilled_return": cl["distilled"]["mean"],
            "incumbent_return": cl["incumbent"]["mean"], "ratio": cl["ratio"],
            "passed": bool(cl["ratio"] is not None and cl["ratio"] >= 0.9),
            "fit_rounds": r["fit"]["rounds"], "fit_wall_s": r["fit"]["wall_s"], "distill_wall_s": r["wall_s"],
            "record_wall_s": t_rec, "genome_id": r["genome_id"], "seconds": seconds, "episodes": cfg.episodes,
            "horizon": cfg.horizon}


def markdown(rec: dict) -> str:
    lines = [f"# Distillation: a champion from the robot's own controller ({rec['date']})", "",
             f"Machine: {rec['machine']}. Commands: {', '.join(f'`{c}`' for c in rec['commands'])}. "
             f"Wall: {rec['wall_s']:.0f} s.", "",
             "Per seed: a recording of the nominal robot under its incumbent controller (sigma 0.01 sensor "
             "noise; `cartpole` = its nominal LQR tracking a setpoint that moves with the controller's own clock, "
             "`cartpole:static` = the same LQR about a fixed setpoint, `walker` = its squat LQR), distilled with "
             "default settings (the seed is the split / fit seed too); closed loop over episodes x 300 ticks, "
             "same episode seeds for both controllers; ratio = distilled / incumbent mean return. "
             "Relative RMSE = held-out RMSE / std of the recorded commands (mean over channels).", "",
             "| plant | recording s | seeds | episodes | passed (>= 90 %) | median ratio (min-max) | "
             "median rel. RMSE (min-max) | median distilled / incumbent return | median fit wall s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for plant, s in rec["summary"].items():
        lines.append(f"| {plant} | {s['seconds']:g} | {s['seeds']} | {s['episodes']} | {s['passed']}/{s['seeds']} | "
                     f"{s['ratio_median']:.3f} "
                     f"({s['ratio_min']:.3f}-{s['ratio_max']:.3f}) | {s['rel_rmse_median']:.3f} "
                     f"({s['rel_rmse_min']:.3f}-{s['rel_rmse_max']:.3f}) | {s['distilled_median']:.1f} / "
                     f"{s['incumbent_median']:.1f} | {s['fit_wall_median']:.1f} |")
    lines += ["", "| plant | seed | ticks | rel. RMSE | distilled | incumbent | ratio | fit rounds |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rec["runs"]:
        lines.append(f"| {r['plant']} | {r['seed']} | {r['ticks']} | {r['rel_rmse_mean']:.3f} | "
                     f"{r['distilled_return']:.1f} | {r['incumbent_return']:.1f} | {r['ratio']:.3f} | "
                     f"{r['fit_rounds']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plants", default="cartpole,cartpole:static,walker",
                    help="plants; NAME:static = its nominal controller about a fixed setpoint")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--episodes", type=int, default=20, help="closed-loop episodes per controller")
    ap.add_argument("--merge", action="store_true", help="keep the rows of plants not run now from --out's file")
    ap.add_argument("--smoke", action="store_true", help="one short cartpole run, into --out or a temporary directory")
    args = ap.parse_args(argv)
    plants = [p for p in args.plants.split(",") if p]
    seeds, seconds, cfg = args.seeds, args.seconds, DistillConfig(episodes=args.episodes)
    out = args.out
    tmp_out = None
    if args.smoke:
        plants, seeds, seconds = ["cartpole"], 1, 5.0
        cfg = DistillConfig(max_rounds=2, episodes=2, horizon=50)
        if out.resolve() == (ROOT / "benchmarks" / "results").resolve():   # never over committed results
            tmp_out = tempfile.TemporaryDirectory(prefix="distill-smoke-")
            out = Path(tmp_out.name)
    t0 = time.perf_counter()
    runs = []
    with tempfile.TemporaryDirectory(prefix="distill-bags-") as work:
        for plant in plants:
            for seed in range(seeds):
                cfg_s = DistillConfig(**{**cfg.__dict__, "seed": seed})
                r = run_one(plant, seed, seconds, cfg_s, Path(work))
                runs.append(r)
                print(f"{plant} seed {seed}: rel RMSE {r['rel_rmse_mean']:.3f}, return {r['distilled_return']:.1f} "
                      f"vs {r['incumbent_return']:.1f} (ratio {r['ratio']:.3f}), fit {r['fit_wall_s']:.1f} s",
                      flush=True)
    command = "python benchmarks/distill.py " + " ".join(argv if argv is not None else sys.argv[1:])
    commands, wall = [command], time.perf_counter() - t0
    if args.merge and (out / "distill.json").exists():   # keep the other plants' rows of an earlier run
        old = json.loads((out / "distill.json").read_text())
        runs = [r for r in old["runs"] if r["plant"] not in plants] + runs
        commands = old.get("commands", [old.get("command")]) + commands
        wall += float(old.get("wall_s", 0.0))
        plants = list(dict.fromkeys([r["plant"] for r in runs]))
    summary = {}
    for plant in plants:
        rs = [r for r in runs if r["plant"] == plant]
        ratio = [r["ratio"] if r["ratio"] is not None else 0.0 for r in rs]
        rel = [r["rel_rmse_mean"] for r in rs]
        summary[plant] = {"seeds": len(rs), "passed": sum(r["passed"] for r in rs),
                          "seconds": rs[0]["seconds"], "episodes": rs[0]["episodes"],
                          "ratio_median": float(np.median(ratio)), "ratio_min": float(np.min(ratio)),
                          "ratio_max": float(np.max(ratio)), "rel_rmse_median": float(np.median(rel)),
                          "rel_rmse_min": float(np.min(rel)), "rel_rmse_max": float(np.max(rel)),
                          "distilled_median": float(np.median([r["distilled_return"] for r in rs])),
                          "incumbent_median": float(np.median([r["incumbent_return"] for r in rs])),
                          "fit_wall_median": float(np.median([r["fit_wall_s"] for r in rs]))}
    rec = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
           "commands": commands,
           "seconds": seconds, "episodes": cfg.episodes, "horizon": cfg.horizon, "smoke": args.smoke,
           "wall_s": wall, "summary": summary, "runs": runs}
    atomic_write_json(out / "distill.json", rec)
    atomic_write_bytes(out / "distill.md", markdown(rec).encode())
    print(f"wrote {out / 'distill.json'} and {out / 'distill.md'}")
    if tmp_out is not None:
        tmp_out.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
