"""`driftgate replay`, `driftgate report` and `driftgate simulate-bag`: a typer sub-app.

Mount on the main CLI with ``app.add_typer(cli_replay.app)`` (no name: the commands join the top
level). Bad input (a missing, truncated or corrupt bag, unknown schemas, missing topics, an empty
bag, a configuration with unknown keys, a directory without decisions) prints one clear error line
on stderr and exits with code 2; no output directory is left behind (replay writes into a
temporary directory and renames it at the end).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from adapters.robot_option import resolve_robot, robot_option

os.environ.setdefault("MUJOCO_GL", "disable")

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Record, replay and report: what would driftgate have done on a recorded bag?")
err = Console(stderr=True, soft_wrap=True)   # never wrapped: one message, one line
out = Console()


from adapters.cli_common import fail  # noqa: E402  one line on stderr, exit 2 / 1


@app.command("replay")
def replay_cmd(
    bag: Path = typer.Argument(..., help="rosbag2 bag directory (metadata.yaml + .mcap)"),
    out_dir: Path = typer.Option(..., "--out", help="output directory (must not exist; see --force)"),
    config: Optional[Path] = typer.Option(None, "--config", help="replay configuration YAML (what-if settings: "
                                          "monitor, orchestrator, adapt, gate; see adapters/replay.py)"),
    seed: int = typer.Option(0, "--seed", help="seed of the adaptation jobs (same bag + config + seed => "
                             "identical decisions)"),
    no_adapt: bool = typer.Option(False, "--no-adapt", help="monitor stage only (no sandbox, gate, shadow, canary)"),
    no_report: bool = typer.Option(False, "--no-report", help="write decisions only (render later with "
                                   "`driftgate report`)"),
    force: bool = typer.Option(False, "--force", help="replace an existing output directory"),
    keep_work: bool = typer.Option(False, "--keep-work", help="keep the registry, job and gate directories "
                                   "(OUT/work)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress display"),
    robot: Optional[str] = robot_option(None, help="the robot the bag was recorded on (a built-in name, a shipped "
                                        "profile's name or a profile YAML; default: the bag's); a bag from another "
                                        "robot is refused. --plant is the same option"),
) -> None:
    """Replay a recorded bag through monitor -> sandbox -> gate on its own clock; write the decisions."""
    from adapters.replay import ReplayError, load_replay_config, replay
    try:
        cfg = load_replay_config(config)
        robot = resolve_robot(robot) if robot is not None else None
    except (ReplayError, ValueError) as e:
        fail(str(e))
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=err, disable=quiet,
                        transient=True)
    try:
        with progress:
            task = progress.add_task(f"replaying {bag.name}", total=1.0, status="")
            res = replay(bag, out_dir, cfg, seed=seed, adapt=False if no_adapt else None, report=not no_report,
                         overwrite=force, keep_work=keep_work, robot=robot,
                         progress=lambda f, s: progress.update(task, completed=f, status=s))
    except ReplayError as e:
        fail(str(e))
    except (OSError, ValueError) as e:
        fail(f"{type(e).__name__}: {e}")
    from adapters.decisions import read_decisions
    log = read_decisions(res.decisions)
    verdicts = [r.data.get("verdict") for r in log.of("gate")]
    promos = [r for r in log.of("transition") if r.data.get("to") == "promoted"]
    err.print(f"replayed {res.bag_duration_s:.1f} s of telemetry ({res.ticks} ticks) in {res.wall_s:.1f} s "
              f"({res.speedup:.0f}x real time): {res.alarms} alarm(s), "
              f"{len(log.of('adaptation'))} adaptation job(s), verdicts {verdicts or '-'}, "
              f"{len(promos)} promotion(s)")
    out.print(str(res.out_dir))


@app.command("report")
def report_cmd(
    run_dir: Path = typer.Argument(..., help="a replay output or a run directory with decisions.jsonl"),
    no_png: bool = typer.Option(False, "--no-png", help="skip the timeline picture"),
) -> None:
    """Render report.json, timeline.png and summary.md from a directory's decisions.jsonl."""
    from adapters.report import render_report
    from adapters.decisions import DecisionFormatError
    if not run_dir.is_dir():
        fail(f"{run_dir} is not a directory")
    try:
        rep = render_report(run_dir, png=not no_png)
    except DecisionFormatError as e:
        fail(str(e))
    except OSError as e:
        fail(f"cannot write the report into {run_dir}: {e}")
    err.print(f"{rep.get('source')} of {rep.get('bag') or rep.get('plant')}: {len(rep['alarms'])} alarm(s), "
              f"detected after {rep.get('detected_after_s')} s, verdicts "
              f"{[v['verdict'] for v in rep['verdicts']] or '-'}, lineage {len(rep['champion_lineage'])}")
    for name in ("report.json", "summary.md") + (() if no_png else ("timeline.png",)):
        out.print(str(run_dir / name))


@app.command("simulate-bag")
def simulate_bag_cmd(
    out_bag: Path = typer.Option(..., "--out", help="bag directory to create"),
    plant: str = robot_option(),
    seconds: float = typer.Option(120.0, help="length of the recording (simulated seconds)"),
    drift: Optional[str] = typer.Option(None, help="DriftSpec JSON injected mid-run (default: the robot "
                                        "profile's drift.default; '' : none)"),
    drift_at: Optional[float] = typer.Option(None, "--drift-at", help="seconds into the recording (default: half)"),
    seed: int = typer.Option(0),
    obs_noise: float = typer.Option(0.01, "--obs-noise", help="sensor noise (std) on joint positions/velocities"),
) -> None:
    """Record a synthetic bag without ROS: a simulated robot, its nominal controller, an injected drift."""
    from adapters.recording import RecordingError, simulate_bag
    try:
        plant = resolve_robot(plant)
        if drift is None:
            from adapters.robot_option import robot_profile
            spec = robot_profile(plant).default_drift
        else:
            spec = json.loads(drift) if drift else None
        path = simulate_bag(out_bag, plant=plant, seconds=seconds, drift=spec, drift_at_s=drift_at, seed=seed,
                            obs_noise=obs_noise)
    except (ValueError, RecordingError, KeyError) as e:
        fail(f"{type(e).__name__}: {e}" if not isinstance(e, (ValueError, RecordingError)) else str(e))
    out.print(str(path))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
