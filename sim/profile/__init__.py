"""Robot profiles: one YAML file that describes a robot to every stage of driftgate.

`load_profile(path)` reads and validates one against its compiled MuJoCo model (`RobotProfile`);
`find_profile(name)` finds a shipped one (`launch/robots/NAME.yaml`); `draft_profile` writes a
commented draft from a model (`driftgate robot init`). The schema is `sim.profile.schema`.
"""
from __future__ import annotations

import sys
from pathlib import Path

from sim.profile.resolve import ProfileError, RobotProfile, load_profile, observation_names, profile_from_mapping

ROBOTS_DIRS = (Path(__file__).resolve().parents[2] / "launch" / "robots",
               Path(sys.prefix) / "share" / "driftgate" / "launch" / "robots")


def builtin_profiles() -> dict[str, Path]:
    """Shipped profiles by name (the repository's launch/robots, else the installed share/)."""
    for folder in ROBOTS_DIRS:
        if folder.is_dir():
            return {p.stem: p for p in sorted(folder.glob("*.yaml"))}
    return {}


def find_profile(name_or_path: str | Path) -> Path:
    """A profile file: a path to a YAML file, or the name of a shipped profile."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        return Path(text)
    shipped = builtin_profiles()
    if text not in shipped:
        raise ProfileError(f"unknown robot {text!r}; shipped profiles: {sorted(shipped)} (or give a profile .yaml)")
    return shipped[text]


__all__ = ["ProfileError", "RobotProfile", "builtin_profiles", "find_profile", "load_profile", "observation_names",
           "profile_from_mapping"]
