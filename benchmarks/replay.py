"""Replay throughput: the monitor stage of `driftgate replay` on a recorded 100 Hz cartpole bag.

The bag is recorded offline with `adapters.recording.simulate_bag` (no ROS): the cartpole under its
nominal LQR (tracking a moving cart setpoint), sensor noise sigma = 0.01 on joint positions and
velocities, 10 minutes nominal, then the issue's drift (pole mass x3, motor reversed) for 5 more
minutes. Per control tick it holds a JointState, the command and the reward, plus diagnostics at 1 Hz
(~270 k messages, zstd-compressed MCAP).

Measured: `adapters.replay.replay(..., adapt=False, report=False)`, the whole command minus the
report picture: open and check the bag, read and decode every message the monitor needs, run the
drift monitor (nominal-model residuals through MuJoCo, river detectors) once per tick, write
decisions.jsonl. The shipped monitor configuration (launch/drift_monitor.yaml). Median of
`--repeats` runs, one process, one thread. Target: speedup = bag duration / wall time >= 20.

Writes benchmarks/results/replay.json (bag_duration_s, wall_s, speedup, ...) and replay.md.

    python benchmarks/replay.py [--nominal-min 10] [--drift-min 5] [--repeats 3]
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("MUJOCO_GL", "disable")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from adapters.recording import simulate_bag  # noqa: E402
from sim.profile import find_profile, load_profile  # noqa: E402

DEFAULT_DRIFT = load_profile(find_profile("cartpole")).default_drift   # the cartpole's profile default
from adapters.replay import ReplayConfig, replay  # noqa: E402
from adapters.decisions import read_decisions  # noqa: E402
from sim.atomicio import atomic_write_bytes, atomic_write_json  # noqa: E402

TARGET = 20.0


def run(nominal_min: float, drift_min: float, repeats: int, seed: int = 0, out: Path | None = None) -> dict:
    out = out or ROOT / "benchmarks" / "results"
    work = Path(tempfile.mkdtemp(prefix="driftgate-replay-bench-"))
    try:
        bag = work / "cartpole_100hz"
        seconds = 60.0 * (nominal_min + drift_min)
        t0 = time.perf_counter()
        simulate_bag(bag, plant="cartpole", seconds=seconds, drift=DEFAULT_DRIFT, drift_at_s=60.0 * nominal_min,
                     seed=seed)
        record_s = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in bag.iterdir())
        walls, metas = [], []
        for i in range(repeats):
            res = replay(bag, work / f"out{i}", ReplayConfig(), seed=seed, adapt=False, report=False)
            walls.append(res.wall_s)
            metas.append(res.meta)
            print(f"run {i}: {res.bag_duration_s:.0f} s of telemetry in {res.wall_s:.2f} s "
                  f"({res.speedup:.1f}x)", flush=True)
        identical = len({(work / f"out{i}" / "decisions.jsonl").read_bytes() for i in range(repeats)}) == 1
        log = read_decisions(work / "out0")
        t_drift = 60.0 * nominal_min
        alarms = [r.t for r in log.of("alarm")]
        after = [t for t in alarms if t >= t_drift]
        wall = statistics.median(walls)
        duration = res.bag_duration_s
        meta = metas[walls.index(sorted(walls)[len(walls) // 2])]
        result = {
            "bag_duration_s": round(duration, 3),
            "wall_s": round(wall, 3),
            "speedup": round(duration / wall, 1),
            "target_speedup": TARGET,
            "pass": bool(duration / wall >= TARGET),
            "walls_s": [round(w, 3) for w in walls],
            "ticks": res.ticks,
            "rate_hz": 100,
            "messages": sum(v["messages"] for v in log.header["bag"]["topics"].values()),
            "bag_mb": round(size / 2**20, 2),
            "monitor_wall_s": round(meta["monitor_wall_s"], 3),
            "us_per_tick": round(1e6 * wall / res.ticks, 1),
            "monitor_us_per_tick": round(1e6 * meta["monitor_wall_s"] / res.ticks, 1),
            "decisions_identical_across_runs": identical,
            "drift": DEFAULT_DRIFT,
            "drift_at_s": t_drift,
            "alarms": len(alarms),
            "false_alarms_before_drift": len(alarms) - len(after),
            "detected_after_s": round(after[0] - t_drift, 3) if after else None,
            "record_s": round(record_s, 1),
            "meta": {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                     "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
                     "loadavg": [round(x, 2) for x in os.getloadavg()], "repeats": repeats, "seed": seed,
                     "monitor_config": "launch/drift_monitor.yaml (shipped defaults, no calibration file)"},
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "replay.json", result)
    atomic_write_bytes(out / "replay.md", markdown(result).encode())
    return result


def markdown(r: dict) -> str:
    m = r["meta"]
    return "\n".join([
        "# Replay throughput (monitor stage)", "",
        f"Generated by `benchmarks/replay.py` on {m['date']} ({m['machine']}, {m['cpus']} CPUs, Python {m['python']}, "
        f"load average {m['loadavg']}); median of {m['repeats']} runs, one process, one thread.", "",
        f"Bag: {r['bag_duration_s'] / 60:g} min of the simulated cartpole at {r['rate_hz']} Hz "
        f"({r['ticks']} ticks, {r['messages']} messages: JointState, command, reward, 1 Hz diagnostics; "
        f"{r['bag_mb']} MB zstd MCAP), nominal for {r['drift_at_s'] / 60:g} min, then "
        f"`{json.dumps(r['drift'], sort_keys=True)}`. Replay = `driftgate replay BAG --out DIR --no-adapt "
        "--no-report` (read + decode, drift monitor with nominal-model residuals per tick, decisions.jsonl), "
        f"the shipped monitor configuration ({m['monitor_config']}).", "",
        "| bag_duration_s | wall_s | speedup | target | us / tick | monitor us / tick | identical decisions |",
        "|---:|---:|---:|---:|---:|---:|---|",
        f"| {r['bag_duration_s']:.1f} | {r['wall_s']:.2f} | **{r['speedup']:.1f}x** | >= {r['target_speedup']:.0f}x "
        f"({'pass' if r['pass'] else 'FAIL'}) | {r['us_per_tick']} | {r['monitor_us_per_tick']} | "
        f"{r['decisions_identical_across_runs']} |", "",
        f"Runs: {', '.join(f'{w:.2f} s' for w in r['walls_s'])}. Decisions: {r['alarms']} alarm(s), "
        f"{r['false_alarms_before_drift']} before the drift, first after the drift "
        f"{r['detected_after_s']} s after it. Recording the bag (not timed above) took {r['record_s']} s.", ""])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nominal-min", type=float, default=10.0)
    ap.add_argument("--drift-min", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--smoke", action="store_true",
                    help="a 1.5 min bag, one replay, into --out or a temp dir; exit 0 whatever the speed")
    args = ap.parse_args(argv)
    if args.smoke:  # does it still run: never over the committed results, no speed verdict
        args.nominal_min, args.drift_min, args.repeats = 1.0, 0.5, 1
        if Path(args.out).resolve() == (ROOT / "benchmarks" / "results").resolve():
            args.out = tempfile.mkdtemp(prefix="driftgate-smoke-")
    r = run(args.nominal_min, args.drift_min, args.repeats, args.seed, Path(args.out))
    print(json.dumps({k: r[k] for k in ("bag_duration_s", "wall_s", "speedup", "pass")}))
    return 0 if r["pass"] or args.smoke else 1


if __name__ == "__main__":
    sys.exit(main())
