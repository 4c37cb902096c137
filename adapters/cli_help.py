"""What `--help` shows: fixed choices as choices, flags without a type.

Typer prints the type of every option (``<str>``, ``<bool>``). For an option with a fixed set of
values the help should list them (``<cartpole|walker|reacher>``) and a wrong value should be
refused by the parser with the choices named; a flag takes no value, so ``<bool>`` on it reads as
if it needed one. The `Literal` types below are the choices (kept equal to the registries they
come from by tests/test_cli_help.py: importing those registries would load MuJoCo on every CLI
start), and `hide_flag_types` drops the type column for flags.
"""
from __future__ import annotations

from typing import Literal

Task = Literal["cartpole-switch", "lunarlander-switch", "ant", "cartpole-drift"]  # sim.tasks.TASKS
Method = Literal["srghn", "cmaes", "cmaes-restart", "cmaes-ipop", "cmaes-bipop", "openes", "fixed-rate",
                 "fixed-rate-std", "frozen-head", "no-self-reference"]  # sim.runner.METHODS
Noise = Literal["port", "original"]                                      # SR-GHN noise convention
TieBreak = Literal["children", "parents", "random"]                      # sim.evolution ties
SelectionFitness = Literal["last", "mean"]                             # sim.evolution selection
Backend = Literal["local", "ray"]                                        # sim.adapt_job evaluation backends
Status = Literal["candidate", "shadow", "canary", "champion", "stable", "rejected", "retired"]  # safety.registry


def hide_flag_types() -> None:
    """Flags (``--quiet``, ``--help``, ``--json``...) show no ``<bool>`` in `--help`. Idempotent."""
    from typer.core import TyperOption
    if getattr(TyperOption.display_type_rich, "_driftgate", False):
        return
    original = TyperOption.display_type_rich

    def display_type_rich(self, ctx):
        if getattr(self, "is_flag", False) and self.metavar is None:
            return None
        return original(self, ctx)

    display_type_rich._driftgate = True
    TyperOption.display_type_rich = display_type_rich


hide_flag_types()

__all__ = ["Backend", "Method", "Noise", "Plant", "SelectionFitness", "Status", "Task", "TieBreak", "hide_flag_types"]
