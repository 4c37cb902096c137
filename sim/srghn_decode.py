"""The one decoder: genome -> (PolicySpec, float32 policy weights), in numpy, without torch.

The gate evaluates, the registry's FallbackCache holds and the control tick runs exactly the weights
`decode_policy` returns: one function, so "the tick computes what the gate evaluated" holds by
construction, not by two implementations agreeing to round-off. The live process (controller node,
FallbackCache) never imports torch, yet the registry stores SR-GHN genomes (they seed the next
adaptation), so the SR-GHN deterministic head is written here over numpy views of the flat vector.
Its tensor layout comes from `sim.srghn_layout`, the one table the torch hypernetwork
(`SRGHN.policy_weights`, batched over a population during evolution) reads too; tests check the two
heads agree to float32 round-off.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from sim.policy import PolicySpec
from sim.srghn_layout import SRGHNConfig, config_of, srghn_layout


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def srghn_policy_weights(vector: np.ndarray, policy: PolicySpec,
                         model: SRGHNConfig | Mapping[str, Any] | None) -> np.ndarray:
    """Flat policy weights (float32) written by an SR-GHN genome's deterministic head."""
    cfg = config_of(model)
    layout = srghn_layout(policy, cfg)
    vec = np.asarray(vector, dtype=np.float32).reshape(-1)
    if vec.size != layout.num_params:
        raise ValueError(f"SR-GHN genome has {vec.size} values; its config and PolicySpec need {layout.num_params}")
    t = lambda name: layout.view(vec, name)  # noqa: E731
    d, n = cfg.embed_dim, len(policy.tensors)
    adj = np.zeros((n, n), dtype=np.float32)        # the policy graph: a bidirectional chain
    idx = np.arange(n - 1)
    adj[idx + 1, idx] = adj[idx, idx + 1] = 1.0
    h = t("embed_policy")
    W, b = t("gnn_policy.msg.weight"), t("gnn_policy.msg.bias")
    W_ih, W_hh = t("gnn_policy.gru.weight_ih"), t("gnn_policy.gru.weight_hh")
    b_ih, b_hh = t("gnn_policy.gru.bias_ih"), t("gnn_policy.gru.bias_hh")
    with np.errstate(over="ignore", invalid="ignore"):   # a wild genome decodes to non-finite weights,
        for _ in range(cfg.gnn_steps):                   # which the gate and CompiledPolicy refuse by name
            m = adj @ (h @ W.T + b)
            gi, gh = m @ W_ih.T + b_ih, h @ W_hh.T + b_hh
            r = _sigmoid(gi[:, :d] + gh[:, :d])
            z = _sigmoid(gi[:, d:2 * d] + gh[:, d:2 * d])
            cand = np.tanh(gi[:, 2 * d:] + r * gh[:, 2 * d:])
            h = (1 - z) * cand + z * h
        out = h @ t("det_head.weight").T + t("det_head.bias")
    return np.concatenate([out[j, :k] for j, k in enumerate(layout.policy_numels)]).astype(np.float32)


def decode_policy(genome: Any) -> tuple[PolicySpec, np.ndarray]:
    """(PolicySpec, flat float32 weights) of a genome: a `kind="policy"` genome is its vector; an
    SR-GHN's deterministic head writes the policy. The decoder of the gate, the registry's
    FallbackCache and the control tick (ValueError for a genome it cannot decode)."""
    if genome.kind == "policy":
        return genome.policy_spec, np.asarray(genome.vector, dtype=np.float32)
    if genome.kind != "srghn":
        raise ValueError(f"genome {genome.id}: cannot decode a {genome.kind!r} genome")
    return genome.policy_spec, srghn_policy_weights(genome.vector, genome.policy_spec, genome.model)


def genome_policy_weights(genome: Any) -> np.ndarray:
    """The weights half of `decode_policy`."""
    return decode_policy(genome)[1]


__all__ = ["decode_policy", "genome_policy_weights", "srghn_policy_weights"]
