"""`driftgate settings dump`: the settings tree as commented YAML (each key under its description).

The descriptions live in the tree (controller/settings.py); this prints them with the defaults (or
the values of a file, `--values`), as a replay configuration or, with `--ros NODE`, as a ROS 2
parameter file. launch/driftgate.yaml is such a dump of its own values (tests/test_settings.py).
Bad input is one line on stderr naming the option, exit 2.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from adapters.cli_common import fail
from adapters.robot_option import resolve_robot, robot_option

app = typer.Typer(name="settings", no_args_is_help=True, add_completion=False,
                  help="the settings tree: print it as commented YAML (dump)")


def _values(path: Path, ros_node: Optional[str]):
    """The tree from a settings YAML, or from a node's section of a ROS 2 parameter file."""
    from controller.settings import SettingsError, from_parameters, validate
    try:
        if ros_node:
            from adapters.cli_node import load_node_params
            return from_parameters(load_node_params(path, ros_node))
        import yaml

        from sim.safeio import read_text_bounded
        return validate(yaml.safe_load(read_text_bounded(path, what="settings file")), where=str(path))
    except (OSError, ValueError, SettingsError) as e:
        fail(f"--values: {e}")


@app.command("dump")
def dump(
    section: Optional[str] = typer.Option(None, "--section", help="only this section (runtime, guard, monitor, "
                                          "orchestrator, adapt, gate, ros, replay) or robot"),
    robot: Optional[str] = robot_option(None, "the robot (a built-in name or a profile YAML): sets `robot` and "
                                        "runtime.joint_names to its joints"),
    ros: Optional[str] = typer.Option(None, "--ros", metavar="NODE", help="a ROS 2 parameter file for node NODE "
                                      "(its sections only; mapping-valued settings as JSON text)"),
    values: Optional[Path] = typer.Option(None, "--values", help="take the values from this file (a settings "
                                          "YAML, or with --ros a parameter file) instead of the defaults"),
    out: Optional[Path] = typer.Option(None, "--out", help="write here (atomically; may be the --values file) "
                                       "instead of stdout"),
) -> None:
    """Print the settings tree as commented YAML: each key under its description, at its default."""
    from controller.settings import Settings
    from controller.settings_doc import render

    settings = _values(values, ros) if values is not None else Settings()
    if robot is not None:
        try:
            from sim.observation import plant_info
            plant = resolve_robot(robot)
            joints = plant_info(plant)["joint_names"]
        except ValueError as e:
            fail(str(e))
        settings = settings.model_copy(update={
            "robot": plant, "runtime": settings.runtime.model_copy(update={"joint_names": list(joints)})})
    try:
        text = render(settings, section=section, ros_node=ros)
    except ValueError as e:
        fail(str(e))
    if out is None:
        typer.echo(text, nl=False)
        return
    from sim.atomicio import atomic_write_text
    atomic_write_text(out, text)
