"""`--robot PROFILE` on the offline commands, with `--plant` kept as the same option's alias.

A robot is named the way a user has it: a built-in name (``cartpole``, ``walker``, ``reacher``), the
name of a shipped profile (``launch/robots/<name>.yaml``: ``ant``, ``pusher``), or the path of their
own profile YAML. `resolve_robot` turns that into what `sim.plants.make_plant` takes (the built-in
name, else the profile's absolute path, validated against its model), or a one-line error naming
--robot and the known names.
"""
from __future__ import annotations

from pathlib import Path

import typer

from sim.plant_names import BUILTIN_PLANTS, DEFAULT_PLANT

HELP = (f"robot: a built-in name ({', '.join(BUILTIN_PLANTS)}), a shipped profile's name (launch/robots/) or a "
        "robot profile YAML; --plant is the same option")


def robot_option(default: str | None = DEFAULT_PLANT, help: str = HELP):
    """The option itself: ``--robot`` first, ``--plant`` its alias."""
    return typer.Option(default, "--robot", "--plant", help=help, metavar="ROBOT")


def resolve_robot(text: str) -> str:
    """The plant name `make_plant` takes for `text`; ValueError('--robot: ...') when it names nothing."""
    from sim.plants import PLANTS
    from sim.profile import ProfileError, builtin_profiles, find_profile, load_profile

    text = str(text).strip()
    if text in PLANTS:
        return text
    try:
        path = find_profile(text)
    except ProfileError as e:
        raise ValueError(f"--robot: {e}") from None
    if not path.is_file():
        raise ValueError(f"--robot: no such profile file {str(path)!r}; built-in robots: "
                         f"{sorted(set(PLANTS) | set(builtin_profiles()))}")
    try:
        load_profile(path)
    except (ProfileError, OSError) as e:
        raise ValueError(f"--robot: {e}") from None
    shipped = builtin_profiles().get(Path(path).stem)
    if Path(path).stem in PLANTS and shipped is not None and Path(path).resolve() == shipped.resolve():
        return Path(path).stem     # a built-in's own shipped profile IS that robot (--robot walker)
    return str(Path(path).resolve())


def robot_label(plant: str) -> str:
    """A short name for messages and default file names: the built-in name or the profile's stem."""
    return Path(plant).stem if plant.endswith((".yaml", ".yml")) else plant


def robot_profile(plant: str):
    """The RobotProfile of `plant`: its own file, or the shipped profile of a built-in name."""
    from sim.profile import find_profile, load_profile
    return load_profile(find_profile(plant))
