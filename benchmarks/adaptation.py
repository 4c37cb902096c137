"""Adaptation benchmark: methods x seeds on the Switch benchmarks, at equal evaluations per generation.

Writes (under --out, default benchmarks/results/):
  adaptation.json   a list of `driftgate evolve` records (generation logs, config, recovery)
  adaptation.md     median and IQR per metric and method, with the date and the machine
  adaptation_<task>.png         best fitness vs generation, switch windows shaded, and the rate curves

    python benchmarks/adaptation.py                 # the committed run (~30-40 min on 2 cores)
    python benchmarks/adaptation.py --quick         # a CI-sized run (a few minutes), writes *_quick.*
    python benchmarks/adaptation.py --smoke         # seconds; writes to a temp dir, never to results/

Fair statistics (issue 17): every recovery median counts non-recovery, censored at the segment
length, and shows n_none; every switch is scored against an absolute target (90 % of the task's
maximum return where it has one), so a run that never re-adapted in the previous phase cannot
"recover" in 0 generations; each method gets a bootstrap 95 % CI and a Mann-Whitney p-value against
the shipped default (`srghn`, no label). The pre-registered SR-GHN study lives in benchmarks/science/.

Runs are spread over --jobs processes, each single-threaded; a run's result depends only on its
seed, never on the process it ran in.
"""
from __future__ import annotations

import argparse
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import datetime as dt  # noqa: E402
import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.plots import plot_adaptation  # noqa: E402
from sim.atomicio import atomic_write_bytes, atomic_write_json  # noqa: E402
from sim.recovery import bootstrap_ci, censor, rank_test, recovery, summarise, summarise_censored  # noqa: E402
from sim.runner import RunConfig, run  # noqa: E402

CARTPOLE = dict(task="cartpole-switch", generations=300, schedule="100-200")
# (label, RunConfig overrides): SR-GHN as shipped, the cf it would have in the original code,
# the baselines at equal evaluations, and the ablation grid fixed rate x cf.
CARTPOLE_METHODS = [
    ("", dict(method="srghn", cf=0.0)),
    ("cf=0.5", dict(method="srghn", cf=0.5)),
    ("", dict(method="cmaes")),
    ("", dict(method="cmaes-restart")),
    ("", dict(method="openes")),
    ("cf=0", dict(method="no-self-reference", cf=0.0)),
    ("cf=0", dict(method="frozen-head", cf=0.0)),
] + [(f"rate={r} cf={cf}", dict(method="fixed-rate", rate=r, cf=cf)) for r in (0.05, 0.2, 0.5) for cf in (0.0, 0.5)]
ABLATION_METHODS = ("fixed-rate", "fixed-rate-std", "frozen-head", "no-self-reference")


def renamed(record: dict) -> dict:
    """Records written before issue 17 renamed the ablations: say what they froze.

    Old `frozen-head` froze the whole variation machinery (now `no-self-reference`); old `fixed-rate`
    fixed the rate but let the std head evolve (now `fixed-rate-std`).
    """
    srg = record.get("config", {}).get("srghn", {})
    if "freeze_stochastic_head" in srg:
        return record
    if record["method"] == "frozen-head" and srg.get("freeze_variation"):
        return {**record, "method": "no-self-reference"}
    if record["method"] == "fixed-rate" and not srg.get("freeze_variation"):
        return {**record, "method": "fixed-rate-std"}
    return record

LUNAR = dict(task="lunarlander-switch", generations=120, schedule="40-80", horizon=400)
LUNAR_METHODS = [("", dict(method="srghn")), ("", dict(method="cmaes-restart")), ("", dict(method="openes"))]
ANT = dict(task="ant", generations=30, horizon=100)
ANT_METHODS = [("", dict(method="srghn")), ("", dict(method="cmaes")), ("", dict(method="openes"))]


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _one(job: tuple[str, dict]) -> dict:
    label, kw = job
    record, _ = run(RunConfig(**kw))
    record["label"] = label
    return record


def jobs(quick: bool, seeds: int, lunar_seeds: int, ant_seeds: int, smoke: bool = False) -> list[tuple[str, dict]]:
    out = []
    if smoke:
        base = dict(task="cartpole-switch", generations=4, schedule="2-3", horizon=50)
        return [(label, {**base, **m, "seed": 0}) for label, m in CARTPOLE_METHODS[:3]]
    if quick:
        base = dict(task="cartpole-switch", generations=12, schedule="4-8")
        for label, m in CARTPOLE_METHODS[:5]:
            out += [(label, {**base, **m, "seed": s}) for s in range(2)]
        return out
    for label, m in CARTPOLE_METHODS:
        out += [(label, {**CARTPOLE, **m, "seed": s}) for s in range(seeds)]
    for label, m in LUNAR_METHODS:
        out += [(label, {**LUNAR, **m, "seed": s}) for s in range(lunar_seeds)]
    for label, m in ANT_METHODS:
        out += [(label, {**ANT, **m, "seed": s}) for s in range(ant_seeds)]
    return out


def _fmt(summary: dict) -> str:
    if summary["median"] is None:
        return "never"
    return f"{summary['median']:.1f} [{summary['q25']:.1f}, {summary['q75']:.1f}]"


def first_reaching(curve: list[float], level: float) -> int | None:
    return next((i for i, v in enumerate(curve) if v >= level), None)


# Absolute targets: the maximum return where the task has one (CartPole: 500), else the "solved" score.
ABSOLUTE_TARGET = {"cartpole-switch": 500.0, "lunarlander-switch": 200.0}
SHIPPED = "srghn"


def fair_recovery(run: dict) -> list[tuple[int | None, int]]:
    """(generations to 90 % of the absolute target or None, segment length) per switch of one run."""
    best = [g["best"] for g in run["generations"]]
    toggles = [r["switch_gen"] for r in run["recovery"]]
    ref = ABSOLUTE_TARGET.get(run["task"])
    if run["task"] == "cartpole-switch" and run["config"].get("horizon"):
        ref = float(run["config"]["horizon"])       # one point per step: the maximum return is the horizon
    if ref is None:
        return [(r["gens_to_90"], len(best) - r["switch_gen"]) for r in run["recovery"]]
    ends = toggles[1:] + [len(best)]
    return [(r["gens_to_90"], e - t) for r, t, e in
            zip(recovery(best, toggles, reference=ref, floor=float(run.get("recovery_floor", 0.0))), toggles, ends)]


def _cens(values: list, window: int) -> str:
    s = summarise_censored(values, window)
    if s["median"] is None:
        return "-"
    return (f"{s['median']:.0f}{'+' if s['median_censored'] else ''} [{s['q25']:.0f}, {s['q75']:.0f}], "
            f"{s['n_none']}/{s['n']} never")


def table(records: list[dict], task: str) -> str:
    rows = [r for r in records if r["task"] == task]
    if not rows:
        return ""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(f"{r['method']} {r.get('label', '')}".strip(), []).append(r)
    n_switch = max(len(r["recovery"]) for r in rows)
    solved = ABSOLUTE_TARGET.get(task)
    target = f"90% of {solved:g}" if solved is not None else "90% of the pre-switch best"
    head = ["method", "seeds"] + ([f"first best >= {0.95 * solved:g} (censored)"] if solved is not None else [])
    for k in range(n_switch):
        head += [f"gens to {target} @{k + 1}: median [q25, q75], never", f"vs shipped @{k + 1}: median 95% CI, MW p"]
    head += ["seeds recovering at every switch"] if n_switch else []
    head += ["final best", "ms/gen"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    shipped = [fair_recovery(r) for r in groups.get(SHIPPED, [])]
    for name, runs in groups.items():
        cells = [name, str(len(runs))]
        fair = [fair_recovery(r) for r in runs]
        if solved is not None:
            n_gen = len(runs[0]["generations"])
            cells.append(_cens([first_reaching([g["best"] for g in r["generations"]], 0.95 * solved) for r in runs], n_gen))
        for k in range(n_switch):
            vals = [f[k][0] if k < len(f) else None for f in fair]
            window = max((f[k][1] for f in fair if k < len(f)), default=1)
            cells.append(_cens(vals, window))
            x = censor(vals, window)
            lo, hi = bootstrap_ci(x)
            if name != SHIPPED and shipped:
                y = censor([f[k][0] if k < len(f) else None for f in shipped], window)
                cells.append(f"[{lo:.0f}, {hi:.0f}], p = {rank_test(x, y):.2g}")
            else:
                cells.append(f"[{lo:.0f}, {hi:.0f}]")
        if n_switch:
            ok = sum(all(v is not None for v, _ in f) for f in fair)
            cells.append(f"{ok}/{len(runs)}")
        cells.append(_fmt(summarise([r["generations"][-1]["best"] for r in runs])))
        cells.append(f"{np.median([r['ms_per_generation'] for r in runs]):.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _rounded(obj):
    """Floats to 5 significant digits: the committed JSON stays a few MB instead of tens."""
    if isinstance(obj, float):
        return float(f"{obj:.5g}")
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v) for v in obj]
    return obj


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--quick", action="store_true", help="CI-sized run (a few minutes); writes adaptation_quick.*")
    ap.add_argument("--smoke", action="store_true", help="seconds; into --out or a temp dir, never benchmarks/results/")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--lunar-seeds", type=int, default=3)
    ap.add_argument("--ant-seeds", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--from-json", type=Path, help="re-render tables and plots from an earlier run's JSON")
    args = ap.parse_args()
    if args.smoke:  # does the script still run: never over the committed results
        import tempfile
        args.quick, args.jobs = True, 1
        if args.out.resolve() == (Path(__file__).parent / "results").resolve():
            args.out = Path(tempfile.mkdtemp(prefix="driftgate-smoke-"))

    t0 = time.time()
    if args.smoke:
        print(f"smoke run: writing to {args.out}", flush=True)
    name = "adaptation_quick" if args.quick else "adaptation"
    if args.from_json:
        doc = json.loads(args.from_json.read_text())
        stamp, machine, records, wall = doc["date"], doc["machine"], doc["runs"], doc.get("wall_s", 0.0)
        records = [renamed(r) for r in records]
    else:
        todo = jobs(args.quick, args.seeds, args.lunar_seeds, args.ant_seeds, smoke=args.smoke)
        print(f"{len(todo)} runs on {args.jobs} processes", flush=True)
        records = []
        pool = mp.get_context("spawn").Pool(args.jobs) if args.jobs > 1 else None
        with pool if pool is not None else _nullcontext():
            for i, rec in enumerate(pool.imap(_one, todo) if pool is not None else map(_one, todo), 1):
                records.append(_rounded(rec))
                print(f"[{i}/{len(todo)}] {rec['task']} {rec['method']} {rec['label']} seed {rec['seed']}: "
                      f"final best {rec['generations'][-1]['best']:.1f}, gens to 90% "
                      f"{[x['gens_to_90'] for x in rec['recovery']]}, {rec['wall_s']:.1f} s", flush=True)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        machine = f"{platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, {platform.python_version()}"
        wall = time.time() - t0
    atomic_write_json(args.out / f"{name}.json",
                      {"date": stamp, "machine": machine, "wall_s": wall, "runs": [_rounded(r) for r in records]},
                      indent=None)
    md = [f"# Adaptation benchmark ({'quick' if args.quick else 'full'})", "",
          f"Date: {stamp}. Machine: {machine}. Command: `python benchmarks/adaptation.py"
          f"{' --quick' if args.quick else ''}` ({wall:.0f} s wall, 2 processes; the machine was shared with other "
          f"work, so the ms/gen column is indicative only: see srghn_speed.md for timings on a quiet core)."
          + (f" Tables re-rendered {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC} from the runs' JSON with "
             f"`--from-json` (issue 17's censored statistics; ablations renamed for what they froze)."
             if args.from_json else ""),
          "Recovery cells: generations after a switch until the generation's best reaches 90% of the absolute target "
          "(CartPole: 500; LunarLander: 200), non-recovery censored at the segment length and counted in the median "
          "(a trailing + marks a censored median), then how many seeds never got there. 'vs shipped': bootstrap 95% CI "
          "of the median and the Mann-Whitney p-value against the shipped SR-GHN (sim/recovery.py).", ""]
    for task in ("cartpole-switch", "lunarlander-switch", "ant"):
        t = table(records, task)
        if t:
            task_runs = [r for r in records if r["task"] == task]
            cfg = task_runs[0]["config"]
            suffix = "_quick" if args.quick else ""
            md += [f"## {task}", "", f"{cfg['generations']} generations, schedule `{cfg['schedule'] or 'none'}`, "
                   f"{cfg['evaluations_per_generation']} evaluations per generation, horizon {cfg['horizon'] or 'default'}.",
                   "", t, "", f"![{task}](adaptation_{task}{suffix}.png)", ""]
            main_runs = [r for r in task_runs if r["method"] not in ABLATION_METHODS]
            plot_adaptation(main_runs, args.out / f"adaptation_{task}{suffix}.png",
                            title=f"{task}: median best fitness (IQR) and population-mean mutation rate")
            ablation = [r for r in task_runs if r["method"] in ABLATION_METHODS
                        or (r["method"] == "srghn" and not r.get("label"))]
            if len(ablation) > len([r for r in task_runs if r["method"] == "srghn" and not r.get("label")]):
                plot_adaptation(ablation, args.out / f"adaptation_{task}_ablation{suffix}.png",
                                title=f"{task}: SR-GHN vs its ablations (fixed rate x cf, frozen head, no self-reference)")
                md += [f"![{task} ablations](adaptation_{task}_ablation{suffix}.png)", ""]
    atomic_write_bytes(args.out / f"{name}.md", "\n".join(md).encode())
    print(f"wrote {args.out}/{name}.json, .md and plots in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
