"""`driftgate registry ...`: the champion registry from the shell.

A typer sub-app named "registry" (the main CLI mounts it with `adapters.cli_common.mount`).
Every command takes `--registry DIR`. Output meant for scripts goes to stdout (`add` prints only the
new id, `rollback` only the new champion's id); errors go to stderr as one clear line with a
non-zero exit status and no traceback. Genome ids may be given as a unique prefix (>= 6 hex chars).

`promote` here is the *forced* promotion (no gate), for bootstrapping and tests; the audit log
records it as such. Gated promotion is the gate's job (`driftgate gate`).
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer
from rich.console import Console
from rich.table import Table

from safety.audit import AuditError
from adapters.cli_common import BAD_INPUT, RUNTIME_FAILURE, fail
from safety.registry import STATUSES, Registry, RegistryError
from safety.registry_schema import RegistryStateError, robot_for_plant
from sim.genome import GenomeFileError

app = typer.Typer(name="registry", help="the champion registry: lineage, promote, rollback, verify",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

ACTOR = "cli"
RegistryDir = Annotated[Path, typer.Option("--registry", "-r", help="Registry directory.")]
Reason = Annotated[str, typer.Option("--reason", help="Why; recorded in the audit log.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@contextmanager
def _errors() -> Iterator[None]:
    """Errors become one line on stderr: exit 2 for bad input (an illegal operation, a genome for
    another robot, an unreadable genome file), 1 for a damaged or unavailable registry."""
    try:
        yield
    except (RegistryStateError, AuditError) as e:
        fail(e, RUNTIME_FAILURE)
    except (RegistryError, GenomeFileError, OSError) as e:
        fail(e, BAD_INPUT)


@contextmanager
def _open(path: Path) -> Iterator[Registry]:
    with _errors():
        reg = Registry(path, actor=ACTOR)
        try:
            yield reg
        finally:
            reg.close()


def _dump(obj: object) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=True))


@app.command()
def init(registry: RegistryDir,
         plant: Annotated[Optional[str], typer.Option(
             "--plant", help="The robot (simulated plant) its policies drive; genomes for any other robot "
             "are refused. Default: the first champion's.")] = None) -> None:
    """Create a registry in DIR (opening an existing one is fine)."""
    with _errors():
        try:
            robot = robot_for_plant(plant) if plant is not None else None
        except ValueError as e:
            raise RegistryError(f"--plant: {e}") from None
        Registry.init(registry, actor=ACTOR, robot=robot).close()
    typer.echo(f"registry ready at {registry}")


@app.command()
def add(registry: RegistryDir,
        genome: Annotated[Path, typer.Option("--genome", help="Genome .safetensors file.")],
        parent: Annotated[Optional[str], typer.Option("--parent", help="Parent genome id.")] = None,
        no_parent: Annotated[bool, typer.Option("--no-parent",
                                                help="Register as a root, ignoring the file's parent.")] = False,
        reason: Reason = "") -> None:
    """Register a genome file as a candidate; prints only its id."""
    with _open(registry) as reg:
        if parent is not None and no_parent:
            raise RegistryError("--parent and --no-parent exclude each other")
        kw: dict = {}
        if parent is not None:
            kw["parent_id"] = reg.resolve(parent)
        elif no_parent:
            kw["parent_id"] = None
        gid = reg.add(genome, reason=reason, **kw)
    typer.echo(gid)


@app.command()
def promote(registry: RegistryDir, genome_id: Annotated[str, typer.Argument(metavar="ID")],
            reason: Reason = "manual promotion from the CLI") -> None:
    """Make ID the champion WITHOUT a gate (bootstrapping/tests; the audit log says so)."""
    with _open(registry) as reg:
        gid = reg.resolve(genome_id)
        reg.promote(gid, force=True, reason=reason)
    typer.echo(gid)


@app.command("mark-stable")
def mark_stable(registry: RegistryDir, genome_id: Annotated[str, typer.Argument(metavar="ID")],
                reason: Reason = "watch period passed (CLI)") -> None:
    """Confirm the current champion ID as stable (a rollback target from now on)."""
    with _open(registry) as reg:
        gid = reg.resolve(genome_id)
        reg.mark_stable(gid, reason=reason)
    typer.echo(gid)


@app.command("list")
def list_(registry: RegistryDir,
          status: Annotated[Optional[str], typer.Option("--status", help=f"One of: {', '.join(STATUSES)}.")] = None,
          as_json: AsJson = False) -> None:
    """List genomes (oldest first)."""
    with _open(registry) as reg:
        records = reg.list(status)
    if as_json:
        _dump([r.to_dict() for r in records])
        return
    table = Table(title=f"registry {registry}")
    table.add_column("id", no_wrap=True)
    table.add_column("status")
    table.add_column("stable")
    table.add_column("parent", no_wrap=True)
    table.add_column("kind")
    table.add_column("gen", justify="right")
    table.add_column("drift", no_wrap=True)
    for r in records:
        table.add_row(r.id, r.status, "yes" if r.stable else "", (r.parent_id or "-")[:12], r.kind,
                      str(r.generation), (r.drift_hash or "-")[:12])
    Console(width=max(120, Console().width)).print(table)


@app.command()
def show(registry: RegistryDir, genome_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Everything about ID as JSON: index record, gate reports, audit history."""
    with _open(registry) as reg:
        gid = reg.resolve(genome_id)
        out = reg.show(gid).to_dict()
        out["gate_reports"] = [g.to_dict() for g in reg.gate_reports(gid)]
        out["history"] = [h.to_dict() for h in reg.history(gid)]
    _dump(out)


@app.command()
def lineage(registry: RegistryDir, genome_id: Annotated[str, typer.Argument(metavar="ID")],
            as_json: AsJson = False) -> None:
    """ID, its parent, ... back to the root, one per line."""
    with _open(registry) as reg:
        chain = reg.lineage(reg.resolve(genome_id))
    if as_json:
        _dump([r.to_dict() for r in chain])
        return
    for r in chain:
        typer.echo(f"{r.id}  {r.status}{' (stable)' if r.stable and r.status != 'stable' else ''}")


@app.command()
def rollback(registry: RegistryDir,
             to: Annotated[Optional[str], typer.Option("--to", help="A stable genome to return to "
                                                       "(default: nearest stable ancestor).")] = None,
             reason: Reason = "manual rollback from the CLI") -> None:
    """Hand authority back to a stable genome; prints the new champion's id."""
    with _open(registry) as reg:
        target = reg.resolve(to) if to is not None else None
        gid = reg.rollback(target, reason=reason)
    typer.echo(gid)


@app.command()
def verify(registry: RegistryDir, as_json: AsJson = False) -> None:
    """Check the audit hash chain, every genome file and the index; exit 1 on the first problem."""
    with _open(registry) as reg:
        result = reg.verify()
    if as_json:
        _dump(result.to_dict())
    elif result.ok:
        typer.echo(f"ok: {result.audit.rows} audit rows, {result.genomes_checked} genome files verified; "
                   f"head {result.audit.head}")
    else:
        typer.echo(f"FAILED: {result.first_problem}", err=True)
        for p in result.problems[1:]:
            typer.echo(f"  also: {p}", err=True)
    if not result.ok:
        raise typer.Exit(RUNTIME_FAILURE)
