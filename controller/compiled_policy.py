"""The champion's (or a challenger's) policy as the control tick runs it: numpy only, no allocation
beyond the activations, weights checked once when it is compiled (outside the tick)."""
from __future__ import annotations

from typing import Any

import numpy as np

from sim.policy import PolicySpec


class CompiledPolicy:
    """A policy ready for one observation at a time: per-layer (W, b) views, no allocation beyond
    the activations. Same math and dtype as `sim.policy.policy_act` (float32 weights), so the tick
    computes what the gate evaluated."""

    __slots__ = ("genome_id", "spec", "weights", "_layers", "_low", "_high")

    def __init__(self, genome_id: str, spec: PolicySpec, weights: np.ndarray) -> None:
        if spec.discrete:
            raise ValueError(f"policy {genome_id}: discrete policies cannot drive a forward command "
                             "controller (continuous actions only)")
        w = np.array(weights, dtype=np.float32, copy=True).reshape(-1)
        if w.size != spec.num_params:
            raise ValueError(f"policy {genome_id}: {w.size} weights, its PolicySpec needs {spec.num_params}")
        if not np.all(np.isfinite(w)):
            raise ValueError(f"policy {genome_id}: non-finite weights")
        w.flags.writeable = False
        self.genome_id, self.spec, self.weights = genome_id, spec, w
        layers, offs = [], spec.offsets()
        for i in range(0, len(offs), 2):
            (_, wo, ws), (_, bo, bs) = offs[i], offs[i + 1]
            layers.append((w[wo:wo + ws[0] * ws[1]].reshape(ws), w[bo:bo + bs[0]]))
        self._layers = tuple(layers)
        self._low, self._high = np.float32(spec.act_low), np.float32(spec.act_high)

    @classmethod
    def from_snapshot(cls, snap: Any) -> "CompiledPolicy":
        """From a `safety.policy_cache.PolicySnapshot` (genome_id, spec, weights)."""
        return cls(snap.genome_id, snap.spec, snap.weights)

    def act(self, obs: np.ndarray) -> np.ndarray:
        h = np.asarray(obs, dtype=np.float32)
        last = len(self._layers) - 1
        for i, (W, b) in enumerate(self._layers):
            h = W @ h + b
            if i < last:
                h = np.tanh(h)
        return np.clip(h, self._low, self._high).astype(np.float64)
