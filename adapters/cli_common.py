"""What every `driftgate` command shares: how an error ends the process.

One line on stderr, ``error: <what> ...`` naming the option or field, never wrapped (a rich console
wraps at the terminal's width, 80 columns when there is none, which split messages over several
lines), and one exit status convention everywhere:

- 2: bad input (an option, a parameter, a file's contents): fix the command and run it again;
- 1: a runtime failure (a sandbox job failed, a registry is corrupt, a node could not start).
"""
from __future__ import annotations

import sys
from typing import NoReturn

import typer

BAD_INPUT = 2
RUNTIME_FAILURE = 1


def one_line(message: object) -> str:
    """`message` with its whitespace (newlines included) collapsed to single spaces."""
    return " ".join(str(message).split())


def fail(message: object, code: int = BAD_INPUT) -> NoReturn:
    """Print ``error: message`` as one line on stderr and exit with `code`."""
    print(f"error: {one_line(message)}", file=sys.stderr, flush=True)
    raise typer.Exit(code)
