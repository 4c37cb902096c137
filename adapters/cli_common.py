"""What every `driftgate` command shares: how an error ends the process, and how a command module
joins the root CLI.

One line on stderr, ``error: <what> ...`` naming the option or field, never wrapped (a rich console
wraps at the terminal's width, 80 columns when there is none, which split messages over several
lines), and one exit status convention everywhere:

- 2: bad input (an option, a parameter, a file's contents): fix the command and run it again;
- 1: a runtime failure (a sandbox job failed, a registry is corrupt, a node could not start).

Every command module (``adapters/cli_*.py``) defines one ``app = typer.Typer(...)``: with a ``name``
its commands form a group (``driftgate registry list``), without one they join the top level
(``driftgate replay``). The root mounts them all the same way, `mount(app, "adapters.cli_x", ...)`.
"""
from __future__ import annotations

import importlib
import sys
from typing import NoReturn

import typer
from typer.core import TyperGroup

try:        # typer >= 0.20 parses with its own copy of click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # pragma: no cover - older typer on click itself
    from click.exceptions import ClickException, NoArgsIsHelpError

BAD_INPUT = 2
RUNTIME_FAILURE = 1


def one_line(message: object) -> str:
    """`message` with its whitespace (newlines included) collapsed to single spaces."""
    return " ".join(str(message).split())


def fail(message: object, code: int = BAD_INPUT) -> NoReturn:
    """Print ``error: message`` as one line on stderr and exit with `code`."""
    print(f"error: {one_line(message)}", file=sys.stderr, flush=True)
    raise typer.Exit(code)


class OneLineErrors(TyperGroup):
    """The root command group: a usage error found by the parser (an unknown option, a value that is
    not one of the choices) ends the process like `fail` does, as one ``error:`` line on stderr with
    exit status 2, instead of typer's boxed, console-wrapped panel."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except NoArgsIsHelpError as e:     # `driftgate registry`: the help, as before
            e.show()
            sys.exit(e.exit_code)
        except ClickException as e:
            print(f"error: {one_line(e.format_message())}", file=sys.stderr, flush=True)
            sys.exit(e.exit_code)
        except typer.Abort:
            print("Aborted!", file=sys.stderr, flush=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


def mount(root: typer.Typer, *modules: str) -> None:
    """Add the ``app`` of each command module (by dotted name) to `root`, in order."""
    for name in modules:
        root.add_typer(importlib.import_module(name).app)
