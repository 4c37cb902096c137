"""`driftgate gate`: judge a registered candidate against the champion on a regression suite.

    driftgate gate --registry DIR --candidate ID --suite FILE --json-out PATH

Writes the gate report as JSON (at least `verdict`, `reasons` and `scenarios`: a list of
`{name, tag, candidate, incumbent, diff_ci, violations, passed}`, plus every per-seed value), attaches
it to the registry (its hash goes into the audit log, which is what a gated `promote` checks) and
prints the verdict and a per-scenario table. The exit status is 0 whenever a report was produced,
whatever the verdict (scripts read `verdict`); `--strict` makes it 0 only for PASS (3 otherwise).

Bad input (a directory that is not a registry, an unknown or ambiguous id, a genome that is not a
candidate/shadow/canary, a malformed suite, an unwritable output path) is one line on stderr, exit
status 2, and nothing is written: inputs are validated before any rollout, the report is attached
only after the gate finished, and the JSON file is written atomically last.

Its `app` has no name, so `gate` joins the top level (`adapters.cli_common.mount`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from adapters.cli_common import fail as _fail   # one line on stderr, exit 2 (EXIT_ERROR)

ACTOR = "gate"
EXIT_ERROR = 2
EXIT_NOT_PASS = 3


def _check_output(path: Path) -> None:
    """Refuse an output path we could not write *before* spending minutes on rollouts."""
    if path.exists() and path.is_dir():
        _fail(f"--json-out {path} is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        _fail(f"--json-out: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        _fail(f"--json-out: directory {parent} is not writable")


def _resolved(robot: str) -> str:
    from adapters.robot_option import resolve_robot
    try:
        return resolve_robot(robot)
    except ValueError as e:
        _fail(str(e))


def _label(plant: str) -> str:
    from adapters.robot_option import robot_label
    return robot_label(plant)


def _robot_suite(robot: str | None, suite: Path | None) -> Path:
    """--suite, else the robot profile's suite; one of them is needed."""
    if suite is not None:
        return suite
    if robot is None:
        _fail("--suite: give a regression suite YAML (or --robot, whose profile names one)")
    from adapters.robot_option import robot_profile
    _resolved(robot)
    path = robot_profile(robot).asset_path("suite")
    if path is None or not path.is_file():
        _fail(f"--suite: the profile of --robot {robot!r} names no regression suite file (assets.suite: {path}); "
              f"write one with `driftgate suite init --robot {robot} --out FILE`")
    return path


def _table(report: dict) -> Table:
    t = Table(title=f"gate: {report['verdict']}")
    for col in ("scenario", "tag", "metric", "n", "candidate", "incumbent", "diff CI", "violations", "status"):
        t.add_column(col, justify="right" if col in ("n", "candidate", "incumbent", "violations") else "left")

    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    for s in report["scenarios"]:
        ci = "-" if s["diff_ci"] is None else f"[{s['diff_ci'][0]:+.3f}, {s['diff_ci'][1]:+.3f}]"
        t.add_row(s["name"], s["tag"], s["metric"], str(s["n"]), f(s["candidate"]), f(s["incumbent"]),
                  ci, str(len(s["violations"])), s["status"])
    return t


def gate(
    registry: Annotated[Path, typer.Option("--registry", "-r", help="Registry directory.")],
    candidate: Annotated[str, typer.Option("--candidate", help="Candidate genome id (or unique prefix >= 6).")],
    json_out: Annotated[Path, typer.Option("--json-out", help="Where to write the gate report (JSON).")],
    suite: Annotated[Optional[Path], typer.Option("--suite", help="Regression suite YAML (default: the --robot "
                                                  "profile's assets.suite).")] = None,
    robot: Annotated[Optional[str], typer.Option("--robot", "--plant", metavar="ROBOT", help=(
        "The robot the candidate drives (built-in name or profile YAML): the suite must be for it; "
        "--plant is the same option."))] = None,
    no_attach: Annotated[bool, typer.Option("--no-attach", help="Do not attach the report to the registry.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help=f"Exit {EXIT_NOT_PASS} unless the verdict is PASS.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No table, only the verdict line.")] = False,
) -> None:
    """Gate CANDIDATE against the registry's champion on SUITE; write the report to --json-out."""
    from safety.audit import AuditError
    from safety.gate import gate_registry
    from safety.registry import Registry, RegistryError
    from safety.suite import SuiteError, load_suite
    from sim.atomicio import atomic_write_json

    err = Console(stderr=True)
    _check_output(json_out)
    suite = _robot_suite(robot, suite)
    try:
        the_suite = load_suite(suite)
    except SuiteError as e:
        _fail(str(e))
    if robot is not None and _label(the_suite.plant) != _label(_resolved(robot)):
        _fail(f"--suite: {suite} is for robot {the_suite.plant!r}, not --robot {robot!r}")
    try:
        reg = Registry(registry, actor=ACTOR)
    except RegistryError as e:
        _fail(str(e))
    try:
        try:
            gid = reg.resolve(candidate)
            report, report_id = gate_registry(
                reg, gid, the_suite, attach=not no_attach,
                progress=None if quiet else (lambda msg: err.print(f"[dim]gate: {msg}[/]")))
        except (RegistryError, AuditError) as e:
            _fail(str(e))
    finally:
        reg.close()
    out = report.to_dict()
    out["registry_report_id"] = report_id
    try:
        atomic_write_json(json_out, out)
    except OSError as e:
        attached = f" (the report is attached to the registry as #{report_id})" if report_id else ""
        _fail(f"cannot write {json_out}: {e}{attached}")
    if not quiet:
        Console(stderr=True, width=max(120, Console().width)).print(_table(out))
        for r in out["reasons"]:
            typer.echo(f"  - {r}", err=True)
    typer.echo(json.dumps({"verdict": out["verdict"], "candidate": gid, "report_id": report_id,
                           "json_out": str(json_out)}))
    if strict and out["verdict"] != "PASS":
        raise typer.Exit(EXIT_NOT_PASS)


app = typer.Typer(add_completion=False)
app.command("gate")(gate)
