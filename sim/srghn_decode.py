"""The SR-GHN deterministic head in numpy: genome -> policy weights without torch.

The live process (controller node, FallbackCache) must never import torch, yet the registry stores
SR-GHN genomes (they seed the next adaptation). This is the same math as `SRGHN.policy_weights`
(sim/srghn.py), written over numpy views of the flat vector; tests check the two agree to float32
round-off. Only the layout table is shared: the config in the genome's metadata rebuilds it.
"""
from __future__ import annotations

import numpy as np

from sim.policy import PolicySpec


def _layout(policy: PolicySpec, d: int, trunk: int, k: int) -> dict[str, tuple[int, tuple[int, ...]]]:
    """(offset, shape) per tensor, in SRGHN's registration order (kept in sync by a test)."""
    n_pol = len(policy.tensors)
    m_pol = max(int(np.prod(s)) for _, s in policy.tensors)
    gnn = lambda p: [(f"{p}.msg.weight", (d, d)), (f"{p}.msg.bias", (d,)),  # noqa: E731
                     (f"{p}.gru.weight_ih", (3 * d, d)), (f"{p}.gru.weight_hh", (3 * d, d)),
                     (f"{p}.gru.bias_ih", (3 * d,)), (f"{p}.gru.bias_hh", (3 * d,))]
    tensors = [("embed_policy", (n_pol, d)), ("embed_self", None)] + gnn("gnn_policy") + gnn("gnn_self")
    tensors += [("det_head.weight", (m_pol, d)), ("det_head.bias", (m_pol,)), ("trunk.0.weight", (trunk, d)),
                ("trunk.2.weight", (trunk, trunk)), ("log_std.weight", (k, trunk)), ("rate.weight", (1, trunk)),
                ("rate.bias", (1,))]
    tensors[1] = ("embed_self", (len(tensors), d))
    out, off = {}, 0
    for name, shape in tensors:
        out[name] = (off, shape)
        off += int(np.prod(shape))
    out["__total__"] = (off, ())
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def srghn_policy_weights(vector: np.ndarray, policy: PolicySpec, model: dict) -> np.ndarray:
    """Flat policy weights (float32) written by an SR-GHN genome's deterministic head."""
    d, steps = int(model.get("embed_dim", 32)), int(model.get("gnn_steps", 10))
    layout = _layout(policy, d, int(model.get("trunk_width", 64)), int(model.get("basis_dim", 32)))
    vec = np.asarray(vector, dtype=np.float32).reshape(-1)
    if vec.size != layout["__total__"][0]:
        raise ValueError(f"SR-GHN genome has {vec.size} values; its config and PolicySpec need {layout['__total__'][0]}")

    def t(name: str) -> np.ndarray:
        off, shape = layout[name]
        return vec[off:off + int(np.prod(shape))].reshape(shape)

    n = len(policy.tensors)
    adj = np.zeros((n, n), dtype=np.float32)
    idx = np.arange(n - 1)
    adj[idx + 1, idx] = adj[idx, idx + 1] = 1.0
    h = t("embed_policy")
    W, b = t("gnn_policy.msg.weight"), t("gnn_policy.msg.bias")
    W_ih, W_hh = t("gnn_policy.gru.weight_ih"), t("gnn_policy.gru.weight_hh")
    b_ih, b_hh = t("gnn_policy.gru.bias_ih"), t("gnn_policy.gru.bias_hh")
    for _ in range(steps):
        m = adj @ (h @ W.T + b)
        gi, gh = m @ W_ih.T + b_ih, h @ W_hh.T + b_hh
        r = _sigmoid(gi[:, :d] + gh[:, :d])
        z = _sigmoid(gi[:, d:2 * d] + gh[:, d:2 * d])
        cand = np.tanh(gi[:, 2 * d:] + r * gh[:, 2 * d:])
        h = (1 - z) * cand + z * h
    out = h @ t("det_head.weight").T + t("det_head.bias")
    return np.concatenate([out[j, :int(np.prod(s))] for j, (_, s) in enumerate(policy.tensors)]).astype(np.float32)


def genome_policy_weights(genome) -> np.ndarray:
    """Policy weights of any genome (`kind` "policy" as is, "srghn" through the deterministic head)."""
    if genome.kind == "policy":
        return np.asarray(genome.vector, dtype=np.float32)
    return srghn_policy_weights(genome.vector, genome.policy_spec, genome.model or {})
