"""`--help` everywhere: fixed choices are listed as choices, flags show no `<bool>`."""
import re
import typing

import pytest
import typer
from typer.testing import CliRunner

from adapters import cli_help
from adapters.cli import app

runner = CliRunner()


def _commands():
    """(path, click command) for every command of `driftgate`, sub-apps included."""
    root = typer.main.get_command(app)
    out = []

    def walk(cmd, path):
        if getattr(cmd, "commands", None):
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
        else:
            out.append((path, cmd))
    walk(root, [])
    return out


COMMANDS = _commands()


def test_choice_lists_match_the_registries_they_name():
    from safety.registry import STATUSES
    from sim.plants import PLANTS
    from sim.runner import METHODS
    from sim.tasks import TASKS
    from sim.plant_names import BUILTIN_PLANTS
    assert BUILTIN_PLANTS == tuple(PLANTS)
    assert typing.get_args(cli_help.Task) == tuple(TASKS)
    assert typing.get_args(cli_help.Method) == tuple(METHODS)
    assert typing.get_args(cli_help.Status) == tuple(STATUSES)


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_shows_no_bool_on_flags(path):
    r = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "--help" in r.output and "<bool>" not in r.output


@pytest.mark.parametrize("path, option, choices", [
    (["evolve"], "--task", "cartpole-switch|lunarlander-switch|ant|cartpole-drift"),
    (["evolve"], "--method", "srghn|cmaes|cmaes-restart|cmaes-ipop|cmaes-bipop|openes|fixed-rate|fixed-rate-std|"
                              "frozen-head|no-self-reference"),
    (["evolve"], "--noise", "port|original"),
    (["adapt"], "--backend", "local|ray"),
])
def test_help_lists_the_choices_and_the_parser_refuses_others(path, option, choices):
    r = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "320"})
    line = next(ln for ln in r.output.splitlines() if re.search(rf"{option}\b", ln))
    assert f"<{choices}>" in line, line
    r = runner.invoke(app, [*path, option, "no-such-choice"])
    flat = " ".join(re.sub(r"[│╭╮╰╯─]", " ", r.output).split())
    assert r.exit_code == 2 and option in flat and "'no-such-choice' is not one of" in flat, r.output
