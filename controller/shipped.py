"""Where the files driftgate ships live, in every kind of install.

The shipped configuration (``launch/*.yaml``: the drift monitor, the regression suite, the node
parameter files) and the shipped champions (``champions/<plant>.safetensors``) are found under one
share-relative name, whichever way driftgate was installed:

1. a colcon / ament install: ``<prefix>/share/driftgate/<name>`` through ``ament_index_python``
   (the package registered in the ament resource index on ``AMENT_PREFIX_PATH``);
2. a wheel (``pip install`` without ``-e``): package data, read through ``importlib.resources``
   (``controller/assets/launch/*.yaml`` is copied there at build time by setup.py; the champions
   are package data of ``sim`` already, ``sim/assets/champions``);
3. a source checkout (clone or editable install): ``launch/`` at the repository root and
   ``sim/assets/champions``.

Why one module: the node, the CLI, replay and the demo all used paths relative to the source tree
or the working directory, so a non-editable install silently lost the monitor's defaults. Nothing
here is ever written to: mutable state (registry, archived scenarios, recordings) lives under the
registry or the run directory.
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

PACKAGE = "driftgate"
PACKAGE_URI = f"package://{PACKAGE}/"
# share-relative prefix -> (package with the data, folder inside it, folder in a source checkout)
_LAYOUT = {
    "launch": ("controller", "assets/launch", "launch"),   # not `sim`: importing it registers gym envs
    "champions": ("sim", "assets/champions", "sim/assets/champions"),
}
_CHECKOUT = Path(__file__).resolve().parents[1]


def ament_share() -> Path | None:
    """``<prefix>/share/driftgate`` when ament_index_python is importable and the package is in the
    ament resource index (a sourced colcon workspace or ROS install); else None."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return None
    try:
        return Path(get_package_share_directory(PACKAGE))
    except (PackageNotFoundError, LookupError, ValueError, OSError):
        return None


def _split(name: str) -> tuple[str, str]:
    name = name[len(PACKAGE_URI):] if name.startswith(PACKAGE_URI) else name
    if name.startswith("sim/assets/champions/"):     # the checkout path of a champion names it too
        name = "champions/" + name[len("sim/assets/champions/"):]
    head, _, rest = name.replace(os.sep, "/").partition("/")
    if head not in _LAYOUT or not rest or ".." in rest.split("/"):
        raise FileNotFoundError(f"{name!r} is not a shipped driftgate file (names start with "
                                f"{' or '.join(f'{k}/' for k in _LAYOUT)})")
    return head, rest


def candidates(name: str) -> list[Path]:
    """Every place `name` (e.g. ``launch/drift_monitor.yaml``) is looked for, in order."""
    head, rest = _split(name)
    package, inside, checkout = _LAYOUT[head]
    out = []
    share = ament_share()
    if share is not None:
        out.append(share / head / rest)
    try:
        data = resources.files(package).joinpath(inside, *rest.split("/"))
        out.append(Path(str(data)))
    except (ModuleNotFoundError, TypeError, ValueError):
        pass
    out.append(_CHECKOUT / checkout / rest)
    seen, unique = set(), []
    for p in out:
        if p not in seen:
            seen.add(p)
            unique.append(p)
    return unique


def shipped_file(name: str) -> Path:
    """The installed copy of a shipped file (``launch/regression_suite.yaml``,
    ``champions/cartpole.safetensors``, or ``package://driftgate/launch/...``). FileNotFoundError
    names every place looked at."""
    places = candidates(name)
    for p in places:
        if p.is_file():
            return p
    raise FileNotFoundError(f"shipped file {name!r} not found; looked in: {', '.join(str(p) for p in places)}")


def resolve(path: str | os.PathLike, base: str | os.PathLike | None = None) -> Path:
    """A user-given file path: ``package://driftgate/<name>`` is always the shipped file; an absolute
    path is taken as it is; a relative one is taken relative to `base` (default: the working
    directory) when it exists there, else as a shipped name (``launch/regression_suite.yaml`` works
    from any directory and any install). A path found nowhere is returned as given (relative to
    `base`), so the caller's error names it."""
    s = os.fspath(path)
    if s.startswith(PACKAGE_URI):
        return shipped_file(s)
    p = Path(s).expanduser()
    if p.is_absolute():
        return p
    local = Path(base) / p if base is not None else p
    if local.exists():
        return local
    try:
        return shipped_file(s)
    except FileNotFoundError:
        return local


__all__ = ["PACKAGE", "ament_share", "candidates", "resolve", "shipped_file"]
