"""`driftgate drift-calibrate` and `driftgate drift-bench`: a typer sub-app for the drift monitor.

Mount the commands on the main CLI with ``app.add_typer(cli_drift.app)`` (no name: the two
commands join the top level, ``driftgate drift-calibrate`` / ``driftgate drift-bench``). Bad input
gives a one-line error on stderr and exit code 2; outputs are written only after the work
succeeded (the calibration file atomically).
"""
from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from adapters.robot_option import resolve_robot, robot_label, robot_option

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Drift detection: calibrate the monitor, run the labelled benchmark.")
err = Console(stderr=True, soft_wrap=True)   # never wrapped: one message, one line
ROOT = Path(__file__).resolve().parents[1]


from adapters.cli_common import fail  # noqa: E402  one line on stderr, exit 2 / 1


def _segments(t, obs, act, rew, seg_s: float):
    """Split one recording into consecutive windows of at least about seg_s seconds."""
    from controller.drift import TelemetryWindow
    n = len(t)
    dt = float(np.median(np.diff(t))) if n > 1 else 0.0
    per = max(1, int(round(seg_s / dt))) if dt > 0 else n
    k = max(1, n // per)
    edges = np.linspace(0, n, k + 1).astype(int)
    return [TelemetryWindow(t[i:j], obs[i:j], act[i:j], rew[i:j], np.zeros(j - i, dtype=np.int64))
            for i, j in zip(edges[:-1], edges[1:])]


def _progress(quiet: bool) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
                    TimeElapsedColumn(), console=err, disable=quiet, transient=False)


def _tracked(items, progress: Progress, task) -> Iterator:
    """Yield `items` (lazily produced windows), advancing the bar after each one is consumed."""
    for x in items:
        yield x
        progress.advance(task)


@app.command("drift-calibrate")
def drift_calibrate(
    out: Path = typer.Option(..., "--out", help="calibration JSON to write (point calibration_file at it)"),
    plant: Optional[str] = robot_option(None, "robot whose nominal model gives the residuals: a built-in name "
                                        "or a robot profile YAML; --plant is the same option (default with "
                                        "--bag: the robot the bag names)"),
    bag: Optional[Path] = typer.Option(None, "--bag", help="nominal telemetry recorded on the robot: a driftgate "
                                       "or rosbag2 MCAP bag directory (stops at a drift the bag marks active)"),
    pairing: str = typer.Option("hold", "--pairing", help="--bag: which command answers a joint state: hold "
                                "(the first after it, else the one in force) or queue (the k-th command the "
                                "k-th waiting state: driftgate's own controller, which answers every state "
                                "in order, also when it falls behind)"),
    recording: Optional[Path] = typer.Option(None, help="nominal telemetry .npz with t, obs, action "
                                             "(reward optional)"),
    minutes: float = typer.Option(60.0, help="minutes of nominal telemetry to simulate (no --bag / --recording)"),
    segment_minutes: float = typer.Option(5.0, help="each segment gets its own warm-up; the thresholds "
                                          "cover warm-up variation (>= warm-up + 1 min)"),
    config: Optional[Path] = typer.Option(None, help="monitor YAML (default launch/drift_monitor.yaml)"),
    factor: Optional[float] = typer.Option(None, help="threshold = factor x calibration peak (default from config)"),
    seed: int = typer.Option(0, help="simulation seed (simulated telemetry only)"),
    champion: Optional[Path] = typer.Option(None, "--champion", help="a robot profile's simulated telemetry: "
                                            "the champion that drives it (default: the profile's assets.champion)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Turn nominal telemetry (a recorded bag, an .npz recording, or a simulation) into detector thresholds."""
    from controller.drift import DriftMonitor, TelemetryWindow, calibrate, load_config
    from sim.nominal_model import STATE_CODECS, has_codec, make_predictor

    plant_name = plant
    if bag is not None and recording is not None:
        fail("give --bag or --recording, not both")
    if pairing not in ("hold", "queue"):
        fail(f"--pairing must be hold or queue, got {pairing!r}")
    if plant_name is None and bag is None:
        fail("--robot is required (unless --bag names it)")
    if plant_name is not None:
        try:
            plant_name = resolve_robot(plant_name)
        except ValueError as exc:
            fail(str(exc))
    if not (math.isfinite(minutes) and minutes > 0):
        fail(f"--minutes must be a positive number, got {minutes}")
    if factor is not None and not (math.isfinite(factor) and factor > 0):
        fail(f"--factor must be a positive number, got {factor}")
    try:
        cfg = load_config(config)
    except (OSError, ValueError) as exc:
        fail(str(exc))
    seg_s = segment_minutes * 60.0
    if not (math.isfinite(seg_s) and seg_s >= cfg.warmup_s + 60.0):
        fail(f"--segment-minutes must cover the warm-up ({cfg.warmup_s:g} s) plus at least 1 min")
    with _progress(quiet) as progress:
        telemetry = None
        if bag is not None:
            from adapters.bag_telemetry import read_bag_telemetry
            from adapters.replay import ReplayError
            task = progress.add_task(f"reading {bag.name}", total=1.0)
            try:
                telemetry = read_bag_telemetry(bag, plant=plant_name, pairing=pairing,
                                               progress=lambda f: progress.update(task, completed=f))
            except ReplayError as exc:
                fail(str(exc))
            plant_name = telemetry.plant
            if len(telemetry) < 2:
                fail(f"bag {bag}: no nominal joint states with commands to calibrate on"
                     + (f" (a drift is marked active from {telemetry.drift_at_s:g} s)"
                        if telemetry.drift_at_s is not None else ""))
        if not has_codec(plant_name):
            fail(f"--robot: no nominal drift model for {robot_label(plant_name)!r}; known: {sorted(STATE_CODECS)} "
                 "or a robot profile")
        source = make_predictor(plant_name, cfg)
        probe = source._plant
        obs_dim, act_dim, dt = probe.obs_dim, probe.act_dim, probe.control_dt
        if telemetry is not None:
            t, obs, act, rew = telemetry.t, telemetry.obs, telemetry.action, telemetry.reward
            if obs.shape[1] != obs_dim or act.shape[1] != act_dim:
                fail(f"bag {bag}: observations {obs.shape[1]} / commands {act.shape[1]} wide; plant "
                     f"{plant_name!r} has {obs_dim} / {act_dim}")
            windows = _segments(t, obs, act, rew, seg_s)
        elif recording is not None:
            try:
                with np.load(recording) as z:
                    t, obs, act = (np.asarray(z[k], dtype=float) for k in ("t", "obs", "action"))
                    rew = np.asarray(z["reward"], float) if "reward" in z else np.full(len(t), np.nan)
            except (OSError, KeyError, ValueError) as exc:
                fail(f"cannot read recording {recording}: {exc}")
            if obs.ndim != 2 or obs.shape[1] != obs_dim or act.ndim != 2 or act.shape[1] != act_dim \
                    or not (len(t) == len(obs) == len(act) == len(rew)):
                fail(f"recording {recording}: expected t (n,), obs (n, {obs_dim}), action (n, {act_dim}) "
                     f"for plant {plant_name!r}; got {t.shape}, {obs.shape}, {act.shape}")
            windows = _segments(t, obs, act, rew, seg_s)
        else:
            from sim.drift_scenarios import SCENARIOS, has_scenario, record_nominal
            genome = None
            if champion is not None:
                from sim.genome import load_genome
                try:
                    genome = load_genome(champion)
                except (OSError, ValueError) as exc:
                    fail(f"--champion {champion}: {exc}")
            elif not has_scenario(plant_name):
                fail(f"no simulated scenario for {robot_label(plant_name)!r} ({sorted(SCENARIOS)}, or a robot "
                     "profile with a champion): give --champion, --bag or --recording")
            n = max(1, int(math.ceil(minutes * 60.0 / (seg_s - cfg.warmup_s))))

            def simulated():   # one segment at a time: the bar moves while they are simulated
                for k in range(n):
                    t, obs, act, rew = record_nominal(plant_name, seg_s, seed=seed + k, with_reward=False,
                                                      champion=genome)
                    yield TelemetryWindow(t, obs, act, rew, np.zeros(len(t), dtype=np.int64))
            windows = simulated()
            lengths = [int(round(seg_s / dt))] * n
        if not isinstance(windows, list):
            monitored = len(lengths) * (seg_s - cfg.warmup_s)
        else:
            lengths = [len(w) for w in windows]
            monitored = sum(max(0.0, k * dt - cfg.warmup_s) for k in lengths)
        block = max(1.0, min(lengths) * dt - cfg.warmup_s - 2 * dt)
        cfg = cfg.replace(calibration_file="",
                          page_hinkley={**cfg.to_dict()["page_hinkley"], "block_s": block})
        monitor = DriftMonitor(cfg, obs_dim=obs_dim, act_dim=act_dim, dt=dt, source=source,
                               calibrating=True)
        if monitored <= 0:
            fail("the recording is shorter than the warm-up: nothing to calibrate on")
        task = progress.add_task("calibrating", total=len(lengths))
        cal = calibrate(monitor, _tracked(windows, progress, task), factor, plant_name)
    cal.save(out)
    err.print(f"wrote {out}: {cal.nominal_hours * 60:.1f} monitored minutes in {len(lengths)} "
              f"segment(s); thresholds " +
              ", ".join(f"{k}={v:.2f}" for k, v in cal.thresholds.items()))
    if telemetry is not None:
        err.print(f"bag {bag}: {len(telemetry)} joint states" +
                  (f", {telemetry.skipped} skipped" if telemetry.skipped else "") +
                  (f"; stopped at the drift marked active at {telemetry.drift_at_s:g} s"
                   if telemetry.drift_at_s is not None else ""))
    if cal.note:
        err.print(f"[yellow]note:[/] {cal.note}")
    fires = {k: v for k, v in cal.nominal_fires.items() if v}
    if fires:
        err.print(f"[yellow]warning:[/] detectors without a calibrated threshold fired on the nominal "
                  f"telemetry: {fires}")


def _load_benchmark():
    path = ROOT / "benchmarks" / "drift.py"
    if not path.exists():
        fail(f"benchmark script not found at {path} (drift-bench needs a source checkout)")
    spec = importlib.util.spec_from_file_location("driftgate_benchmarks_drift", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@app.command("drift-bench")
def drift_bench(
    out: Path = typer.Option(..., "--out", help="directory for drift.json, drift.md, drift.png"),
    quick: bool = typer.Option(False, "--quick", help="reduced run (under a minute)"),
    nominal_hours: Optional[float] = typer.Option(None, help="nominal false-alarm hours per plant"),
    seeds: Optional[int] = typer.Option(None, help="drift episodes per plant"),
    config: Optional[Path] = typer.Option(None, help="monitor YAML (default launch/drift_monitor.yaml)"),
    robots: list[str] = typer.Option([], "--robot", "--plant", metavar="ROBOT",
                                     help="robot(s) to benchmark, repeatable (default: every robot with drift "
                                          "scenarios); --plant is the same option"),
) -> None:
    """Run the labelled drift-detection benchmark (MTD, MDR, false alarms per hour, cost)."""
    if nominal_hours is not None and not (math.isfinite(nominal_hours) and nominal_hours > 0):
        fail(f"--nominal-hours must be a positive number, got {nominal_hours}")
    if seeds is not None and seeds < 1:
        fail(f"--seeds must be >= 1, got {seeds}")
    from controller.drift import load_config
    try:
        cfg = load_config(config) if config is not None else None
    except (OSError, ValueError) as exc:
        fail(str(exc))
    try:
        plants = tuple(resolve_robot(r) for r in robots)
    except ValueError as exc:
        fail(str(exc))
    from sim.drift_scenarios import SCENARIOS, has_scenario
    for p in plants:
        if not has_scenario(p):
            fail(f"--robot: no drift scenarios for {robot_label(p)!r}; known: {sorted(SCENARIOS)} or a robot "
                 "profile with a champion (assets.champion)")
    bench = _load_benchmark()
    bc = bench.quick_config() if quick else bench.BenchConfig()
    if plants:
        bc.plants = plants
    if nominal_hours is not None:
        bc.nominal_hours = nominal_hours
    if seeds is not None:
        bc.seeds = seeds
        bc.raw_seeds = min(bc.raw_seeds, seeds)
    res = bench.run_benchmark(out, bc, cfg, progress=lambda m: err.print(m))
    t = res["targets"]
    a = t["abrupt_major"]
    err.print(f"wrote {out}/drift.json, drift.md, drift.png ({res['meta']['wall_s']:.0f} s); "
              f"major abrupt drifts: median delay {a['median_delay_s']} s, MDR {a['mdr']}; "
              + "; ".join(f"{p}: {n['false_alarms']} false alarms in {n['hours']} h"
                          for p, n in t["nominal"].items()))


def main() -> None:  # pragma: no cover - for `python -m adapters.cli_drift`
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
