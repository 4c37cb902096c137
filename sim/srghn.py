"""Self-referential graph hypernetwork (SR-GHN): one network that writes a policy and mutates itself.

Read top to bottom. An individual is ONE flat float32 vector, laid out by `sim.srghn_layout` (which
also holds `SRGHNConfig`); `SRGHN` runs the two heads on a batch of such vectors, in torch, for
evolution. Evaluating one genome (the gate, the registry, the control tick) goes through the numpy
decoder `sim.srghn_decode.decode_policy` instead, the same math over the same layout:

* deterministic head: a gated GNN over the *policy graph* (one node per policy tensor) turns
  per-node embeddings into the policy's weights -> `policy_weights(genomes)`.
* stochastic head: a gated GNN over the *self graph* (one node per SR-GHN tensor, the head's own
  tensors included) gives per-node mutation std and a heritable mutation rate; coefficients drawn
  with that std are projected through a fixed random orthogonal basis into an update for every
  tensor -> `children(genomes, ...)`.

The basis is a buffer shared by the population, never evolved: a learned output layer large enough
to write every SR-GHN tensor would have to be bigger than the network it writes.

No gradients anywhere (`torch.no_grad()`); the math is a hand-written batched forward over views of
the flat vectors, so a whole population is one tensor (B, D).

References: Pedersen et al., "Hypernetworks That Evolve Themselves", arXiv:2512.16406 (2025);
constants from the authors' JAX port (`Joachm/sr_ghn_jax`, reference_spec.md); see
`../shared/design/SRGHN.md` for which choices are ours.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from sim.policy import PolicySpec
from sim.srghn_layout import SHIPPED, SRGHNConfig, shipped_config, srghn_layout  # noqa: F401  (re-exported)

# Tensors that only shape variation; frozen in the no-self-reference ablation.
_VARIATION_PREFIXES = ("embed_self", "gnn_self.", "trunk.", "log_std.", "rate.")
# The stochastic head's output layers; frozen in the frozen-stochastic-head ablation.
_HEAD_PREFIXES = ("log_std.", "rate.")
# The rate head, mutated at its own meta-rate when `meta_rate > 0`.
_RATE_HEAD = ("rate.weight", "rate.bias")


def chain_adjacency(n: int) -> torch.Tensor:
    """Bidirectional chain: A[v, u] = 1 when u -> v, so messages are A @ Linear(h)."""
    a = torch.zeros(n, n)
    idx = torch.arange(n - 1)
    a[idx + 1, idx] = 1.0
    a[idx, idx + 1] = 1.0
    return a


class SRGHN:
    """Layout and batched math of an SR-GHN for one PolicySpec. Holds no individual's parameters."""

    def __init__(self, policy: PolicySpec, config: SRGHNConfig = SRGHNConfig()):
        self.policy = policy
        self.config = config
        k = config.basis_dim
        layout = srghn_layout(policy, config)       # registration order = self-graph node order
        self.policy_numels = list(layout.policy_numels)
        self.max_policy_numel = max(self.policy_numels)
        n_pol = len(policy.tensors)
        tensors = list(layout.tensors)
        n_self = len(tensors)
        self.tensors: list[tuple[str, tuple[int, ...]]] = tensors
        self.offsets = layout.offsets
        self.num_params = layout.num_params
        self.numels = [int(np.prod(s)) for _, s in tensors]
        self.max_self_numel = max(self.numels)

        gen = torch.Generator().manual_seed(config.basis_seed)
        basis = torch.empty(k, self.max_self_numel)
        torch.nn.init.orthogonal_(basis, generator=gen)
        self.basis = basis
        self.adj_policy = chain_adjacency(n_pol)
        self.adj_self = chain_adjacency(n_self)
        # gather index: node i's update is the first numel_i entries of row i of (coeffs @ basis)
        self._gather = torch.cat([i * self.max_self_numel + torch.arange(n) for i, n in enumerate(self.numels)])
        self._node_of_param = torch.repeat_interleave(torch.arange(n_self), torch.tensor(self.numels))
        mask = torch.ones(self.num_params)
        frozen = (_VARIATION_PREFIXES if config.freeze_variation else ()) + \
            (_HEAD_PREFIXES if config.freeze_stochastic_head else ())
        for name, _ in tensors:
            if frozen and name.startswith(frozen):
                o, s = self.offsets[name]
                mask[o:o + int(np.prod(s))] = 0.0
        self.mutable_mask = mask
        self._frozen = bool(frozen)
        self._rate_head_slices = [(self.offsets[n][0], int(np.prod(self.offsets[n][1]))) for n in _RATE_HEAD]

    # ----------------------------------------------------------------- layout
    def view(self, genomes: torch.Tensor, name: str) -> torch.Tensor:
        """Batched view (B, *shape) of one named tensor in flat genomes (B, D)."""
        off, shape = self.offsets[name]
        return genomes[:, off:off + int(np.prod(shape))].reshape(genomes.shape[0], *shape)

    def init_genomes(self, n: int, seed: int) -> torch.Tensor:
        """n fresh individuals with PyTorch's default initialisations (Linear/GRU uniform, embeddings N(0,1))."""
        gen = torch.Generator().manual_seed(int(seed))
        out = torch.empty(n, self.num_params)
        d = self.config.embed_dim
        for name, shape in self.tensors:
            off, _ = self.offsets[name]
            numel = int(np.prod(shape))
            if name.startswith("embed"):
                vals = torch.randn(n, numel, generator=gen)
            else:
                fan_in = d if ".gru." in name else (shape[1] if len(shape) == 2 else self._fan_in_of_bias(name))
                bound = 1.0 / math.sqrt(fan_in)
                vals = (torch.rand(n, numel, generator=gen) * 2 - 1) * bound
            out[:, off:off + numel] = vals
        if self.config.init_rate is not None:
            self.set_mean_rate(out, self.config.init_rate)
        return out

    @torch.no_grad()
    def set_mean_rate(self, genomes: torch.Tensor, rate: float) -> torch.Tensor:
        """Shift each genome's rate.bias (in place) so that its mean rate logit over the nodes is
        logit(`rate`): the variation it starts with; evolution moves it from there."""
        if not 0.0 < float(rate) < 1.0:
            raise ValueError(f"rate: must be in (0, 1), got {rate}")
        target = math.log(float(rate) / (1.0 - float(rate)))
        logits = self._rate_logits(genomes)                            # (n, N_self)
        self.view(genomes, "rate.bias")[:, 0] += target - logits.mean(dim=1)
        return genomes

    def _fan_in_of_bias(self, name: str) -> int:
        weight = name.replace("bias", "weight")
        return self.offsets[weight][1][1]

    # ----------------------------------------------------------------- math
    def _gnn(self, genomes: torch.Tensor, prefix: str, h: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        """T steps of m_v = sum_{u->v} Linear(h_u); h_v = GRUCell(m_v, h_v), batched over (B, N, d)."""
        W = self.view(genomes, f"{prefix}.msg.weight")
        b = self.view(genomes, f"{prefix}.msg.bias")
        W_ih = self.view(genomes, f"{prefix}.gru.weight_ih")
        W_hh = self.view(genomes, f"{prefix}.gru.weight_hh")
        b_ih = self.view(genomes, f"{prefix}.gru.bias_ih")[:, None, :]
        b_hh = self.view(genomes, f"{prefix}.gru.bias_hh")[:, None, :]
        for _ in range(self.config.gnn_steps):
            m = adj @ (h @ W.transpose(1, 2) + b[:, None, :])
            gi = m @ W_ih.transpose(1, 2) + b_ih
            gh = h @ W_hh.transpose(1, 2) + b_hh
            i_r, i_z, i_n = gi.chunk(3, dim=-1)
            h_r, h_z, h_n = gh.chunk(3, dim=-1)
            r = torch.sigmoid(i_r + h_r)
            z = torch.sigmoid(i_z + h_z)
            n = torch.tanh(i_n + r * h_n)
            h = (1 - z) * n + z * h
        return h

    @torch.no_grad()
    def policy_weights(self, genomes: torch.Tensor) -> torch.Tensor:
        """Deterministic head: flat policy weights (B, P) for genomes (B, D)."""
        h = self._gnn(genomes, "gnn_policy", self.view(genomes, "embed_policy"), self.adj_policy)
        out = h @ self.view(genomes, "det_head.weight").transpose(1, 2) + self.view(genomes, "det_head.bias")[:, None, :]
        return torch.cat([out[:, j, :n] for j, n in enumerate(self.policy_numels)], dim=1)

    def _trunk(self, genomes: torch.Tensor) -> torch.Tensor:
        h = self._gnn(genomes, "gnn_self", self.view(genomes, "embed_self"), self.adj_self)
        x = torch.relu(h @ self.view(genomes, "trunk.0.weight").transpose(1, 2))
        return torch.relu(x @ self.view(genomes, "trunk.2.weight").transpose(1, 2))

    def _rate_logits(self, genomes: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        x = self._trunk(genomes) if x is None else x
        return (x @ self.view(genomes, "rate.weight").transpose(1, 2) + self.view(genomes, "rate.bias")[:, None, :])[..., 0]

    @torch.no_grad()
    def variation(self, genomes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stochastic head: per self-node coefficient std (B, N_self, k) and mutation rate (B, N_self)."""
        x = self._trunk(genomes)
        std = torch.clamp(torch.exp(x @ self.view(genomes, "log_std.weight").transpose(1, 2)), 0.0, 2.0)
        rate = torch.sigmoid(self._rate_logits(genomes, x))
        if self.config.rate_mode == "fixed":
            rate = torch.full_like(rate, self.config.fixed_rate)
        elif self.config.rate_floor > 0.0:
            rate = rate.clamp(min=self.config.rate_floor)
        return std, rate

    @torch.no_grad()
    def children(self, parents: torch.Tensor, n_children: int, generator: torch.Generator
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """`n_children` mutated copies of every parent, ordered parent-major (B * C, D).

        Returns the children and the parents' variation statistics (mean rate and mean std per
        parent) for logging the self-regulated variation curves.
        """
        cfg = self.config
        std, rate = self.variation(parents)                          # (B, N, k), (B, N)
        B, N, k = std.shape
        std = std.repeat_interleave(n_children, dim=0)               # (B*C, N, k)
        rate_c = rate.repeat_interleave(n_children, dim=0)
        eps = torch.randn(std.shape, generator=generator)
        coeffs = eps * std if cfg.noise_convention == "port" else eps * std * std
        noise = torch.randn((B * n_children, self.num_params), generator=generator)
        # node i's update is clip(coeffs_i @ basis[:, :numel_i]) * rate_i: only the columns each
        # tensor needs are computed (sum(numel_i), not N * max(numel_i)), written in place.
        update = torch.empty(B * n_children, self.num_params)
        off = 0
        for i, n in enumerate(self.numels):
            block = update[:, off:off + n]
            torch.matmul(coeffs[:, i, :], self.basis[:, :n], out=block)
            block.clamp_(-cfg.update_clip, cfg.update_clip).mul_(rate_c[:, i:i + 1])
            off += n
        update.add_(noise, alpha=cfg.noise_std)
        if cfg.meta_rate > 0.0 and cfg.rate_mode == "evolved":
            # the rate head moves at its own fixed scale, whatever the rate it currently writes
            for o, n in self._rate_head_slices:
                update[:, o:o + n] = torch.randn((B * n_children, n), generator=generator) * cfg.meta_rate
        if self._frozen:
            update.mul_(self.mutable_mask)
        kids = update.add_(parents.repeat_interleave(n_children, dim=0)).clamp_(-cfg.param_clip, cfg.param_clip)
        stats = {"rate": rate.mean(dim=1), "std": std.reshape(B, n_children, N, k)[:, 0].mean(dim=(1, 2))}
        return kids, stats
