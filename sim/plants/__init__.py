"""Simulated robots (dm_control suite models) behind one small `Plant` interface.

`make_plant(name, seed, drift)` is the only constructor the rest of driftgate needs; a plant's
name is what `job.json`, telemetry files and genome metadata carry. A robot profile file
(`make_plant("launch/robots/ant.yaml")`, any name ending in .yaml/.yml) gives a `ProfilePlant`
(`sim.plants.profile_plant`); the bare names stay the hand-coded plants.
"""
from __future__ import annotations

from sim.drift_spec import DriftSpec
from sim.plant_names import BUILTIN_PLANTS, DEFAULT_PLANT
from sim.plants.base import Plant
from sim.plants.cartpole import Cartpole
from sim.plants.reacher import Reacher
from sim.plants.walker import Walker

PLANTS: dict[str, type[Plant]] = {"cartpole": Cartpole, "walker": Walker, "reacher": Reacher}
assert tuple(PLANTS) == BUILTIN_PLANTS, "sim.plant_names lists the built-ins"


def is_profile(name) -> bool:
    """A robot profile file (or a RobotProfile), not a built-in plant's name."""
    return not isinstance(name, str) or (name not in PLANTS and name.endswith((".yaml", ".yml")))


def plant_class(name) -> type[Plant]:
    """The class `make_plant(name)` would build (class-level facts without building a model)."""
    if is_profile(name):
        from sim.plants.profile_plant import ProfilePlant
        return ProfilePlant
    if name not in PLANTS:
        raise ValueError(f"unknown plant {name!r}; known plants: {sorted(PLANTS)}")
    return PLANTS[name]


def make_plant(name: str, seed: int = 0, drift: DriftSpec | dict | str | None = None) -> Plant:
    """A fresh plant, reset with `seed`, carrying `drift` (validated against its model)."""
    if name not in PLANTS and str(name).endswith((".yaml", ".yml")):
        return make_plant_from_profile(name, seed=seed, drift=drift)
    if name not in PLANTS:
        raise ValueError(f"unknown plant {name!r}; known plants: {sorted(PLANTS)}")
    return PLANTS[name](seed=seed, drift=drift)


def make_plant_from_profile(profile, seed: int = 0, drift: DriftSpec | dict | str | None = None) -> Plant:
    """A `ProfilePlant` from a `RobotProfile`, a profile path or a shipped profile's name."""
    from sim.plants.profile_plant import ProfilePlant
    return ProfilePlant(profile, seed=seed, drift=drift)


__all__ = ["DEFAULT_PLANT", "PLANTS", "Plant", "is_profile", "plant_class", "Cartpole", "Walker", "Reacher", "make_plant", "make_plant_from_profile"]
