"""`driftgate suite init --robot P --out FILE`: a regression suite for a robot, from its profile.

The draft (`sim.profile.suite_draft`) is validated by the gate's own suite parser before it is
written (atomically; an existing file is never replaced without --force), so what is written is a
suite `driftgate gate` accepts as it is. Bad input is one line on stderr naming the option, exit 2.
"""
from __future__ import annotations

from pathlib import Path

import typer

from adapters.robot_option import resolve_robot, robot_label, robot_option

EXIT_BAD_INPUT = 2
app = typer.Typer(name="suite", no_args_is_help=True, add_completion=False,
                  help="regression suites: draft one for a robot from its profile (init)")


def _fail(message: str) -> None:
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


@app.command("init")
def init(
    robot: str = robot_option(..., "robot: a built-in name or a robot profile YAML (--plant is the same option)"),
    out: Path = typer.Option(..., "--out", help="suite YAML to write"),
    horizon: int = typer.Option(300, help="control ticks per scenario episode"),
    seeds: int = typer.Option(10, help="paired seeds per scenario"),
    nominal: bool = typer.Option(False, "--nominal/--no-nominal", help="include the undrifted robot as a "
                                 "`nominal` scenario: only for drifts that come and go (a persistent drift leaves "
                                 "the undrifted robot behind; no adapted candidate can match the old champion there)"),
    force: bool = typer.Option(False, "--force", help="replace an existing file"),
) -> None:
    """Write a regression suite for ROBOT: its default drift as target + stress (+ nominal), a probe."""
    import tempfile

    import yaml

    from safety.suite import SuiteError, load_suite
    from sim.atomicio import atomic_write_bytes
    from sim.profile import ProfileError, find_profile, load_profile
    from sim.profile.suite_draft import draft_suite

    if horizon < 1 or seeds < 5:
        _fail(f"--horizon must be >= 1 and --seeds >= 5 (the gate's min_seeds), got {horizon}, {seeds}")
    if out.exists() and not force:
        _fail(f"--out: {out} exists; pass --force to replace it")
    try:
        plant = resolve_robot(robot)
        profile = load_profile(find_profile(plant))
        doc = draft_suite(plant, profile, nominal=nominal, horizon=horizon, seeds=seeds)
    except (ValueError, ProfileError) as e:
        _fail(str(e))
    header = (f"# driftgate regression suite for {robot_label(plant)}, drafted by `driftgate suite init` from its\n"
              f"# robot profile (format: safety/suite.py). Targets, stress bounds and probes come from the\n"
              f"# profile's default drift and initial state; edit them, `driftgate gate` re-validates.\n")
    text = (header + yaml.safe_dump(doc, sort_keys=False)).encode()
    with tempfile.TemporaryDirectory(prefix="driftgate-suite-") as tmp:
        probe = Path(tmp) / out.name
        probe.write_bytes(text)
        try:
            load_suite(probe)
        except SuiteError as e:
            _fail(f"the drafted suite does not validate: {e}")
    try:
        atomic_write_bytes(out, text)
    except OSError as e:
        _fail(f"--out: cannot write {out}: {e}")
    typer.echo(str(out))
