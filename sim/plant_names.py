"""The built-in robots' names, importable without MuJoCo: CLI help and settings defaults name them
from here, so generic code never spells a robot (`sim.plants.PLANTS` holds their classes; a test
keeps the two equal)."""
from __future__ import annotations

BUILTIN_PLANTS = ("cartpole", "walker", "reacher")
DEFAULT_PLANT = "cartpole"      # the robot a bare command or node runs when none is named
BUILTIN_HELP = " | ".join(BUILTIN_PLANTS)
