"""The registry's live side: champion and fallback policies held in memory for the control tick.
The tick never touches the registry's disk paths: `FallbackCache.refresh()` runs outside the tick,
and the tick only reads the in-memory snapshot."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from safety.registry import Registry
from safety.registry_schema import RegistryError
from sim.genome import Genome
from sim.policy import PolicySpec
from sim.srghn_decode import decode_policy


@dataclass(frozen=True)
class PolicySnapshot:
    """What the control tick needs to run a policy: id, spec, read-only float32 weights."""

    genome_id: str
    spec: PolicySpec
    weights: np.ndarray


class FallbackCache:
    """Champion and fallback policies held in memory for the control tick.

    `refresh(registry)` does all the disk and database work (and verification) and runs outside the
    tick; it swaps in a new (champion, fallback) pair with one attribute assignment, so a tick
    reading `snapshot()` always sees a consistent pair and never waits on I/O. If a refresh fails
    (e.g. the new champion's file is corrupt) the previous pair stays in force and the error is raised
    to the refresher.
    """

    def __init__(self, decode: Callable[[Genome], tuple[PolicySpec, np.ndarray]] | None = None):
        self.decode = decode or decode_policy     # the gate's decoder (sim.srghn_decode): same weights
        self._pair: tuple[PolicySnapshot | None, PolicySnapshot | None] = (None, None)
        self._ids: tuple[str | None, str | None] = (None, None)
        self.version = 0

    def _snap(self, genome: Genome | None) -> PolicySnapshot | None:
        if genome is None:
            return None
        try:
            spec, weights = self.decode(genome)
        except (ValueError, TypeError, KeyError) as e:
            raise RegistryError(f"genome {genome.id}: cannot decode its policy: {e}") from None
        w = np.array(weights, dtype=np.float32, copy=True).reshape(-1)
        if w.size != spec.num_params:
            raise RegistryError(f"genome {genome.id}: decoded policy has {w.size} weights, "
                                f"its PolicySpec needs {spec.num_params}")
        w.flags.writeable = False
        return PolicySnapshot(genome.id, spec, w)

    def refresh(self, registry: Registry) -> bool:
        """Reload from the registry if the champion or fallback changed; True if the pair changed."""
        old_c, old_f = self._pair
        ids = (registry.champion_id(), registry.fallback_id())
        if ids == self._ids:
            return False
        champ = registry.champion()
        fb = registry.fallback()
        new_c = old_c if old_c and champ and old_c.genome_id == champ.id else self._snap(champ)
        new_f = old_f if old_f and fb and old_f.genome_id == fb.id else self._snap(fb)
        changed = new_c is not old_c or new_f is not old_f
        self._pair, self._ids = (new_c, new_f), ids
        if changed:
            self.version += 1
        return changed

    def snapshot(self) -> tuple[PolicySnapshot | None, PolicySnapshot | None]:
        """(champion, fallback) as one consistent pair; no I/O."""
        return self._pair

    @property
    def champion(self) -> PolicySnapshot | None:
        return self._pair[0]

    @property
    def fallback(self) -> PolicySnapshot | None:
        return self._pair[1]
