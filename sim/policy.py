"""The controller a genome encodes: an MLP described by a PolicySpec plus one flat float32 vector.

This is the whole contract the live runtime needs (no torch, no hypernetwork): tanh hidden layers,
a linear output, argmax for discrete actions, clipping for continuous ones. The flat layout is
`W1, b1, W2, b2, ...` with each W stored row-major as (out, in), so a policy written by the SR-GHN
deterministic head, a CMA-ES mean or a file on disk all mean the same thing.

`policy_forward` is batched over individuals: `weights` (B, P) with `obs` (B, O) gives (B, A).
Each row is computed independently of the others (batched matmul, no cross-row reduction), so an
individual's action does not depend on how a population is split across worker processes.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from sim.atomicio import canonical_json, dataclass_from_mapping


@dataclass(frozen=True)
class PolicySpec:
    """Shape of an MLP policy: obs_dim -> hidden... -> act_dim.

    Parameters
    ----------
    obs_dim, act_dim
        Observation and action sizes (for discrete actions, act_dim is the number of choices).
    hidden
        Widths of the tanh hidden layers.
    discrete
        True: the action is argmax of the outputs. False: outputs are clipped to [act_low, act_high].
    """

    obs_dim: int
    act_dim: int
    hidden: tuple[int, ...] = (32,)
    discrete: bool = True
    act_low: float = -1.0
    act_high: float = 1.0
    tensors: tuple[tuple[str, tuple[int, ...]], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.obs_dim <= 0 or self.act_dim <= 0 or any(h <= 0 for h in self.hidden):
            raise ValueError(f"PolicySpec sizes must be positive, got obs={self.obs_dim} "
                             f"hidden={self.hidden} act={self.act_dim}")
        for name in ("act_low", "act_high"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                    or not np.isfinite(v):
                raise ValueError(f"PolicySpec.{name} must be a finite number, got {v!r}")
        if not self.act_low < self.act_high:
            raise ValueError(f"PolicySpec: act_low {self.act_low} must be < act_high {self.act_high}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        sizes = (self.obs_dim, *self.hidden, self.act_dim)
        tensors = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            tensors.append((f"W{i}", (n_out, n_in)))
            tensors.append((f"b{i}", (n_out,)))
        object.__setattr__(self, "tensors", tuple(tensors))

    @property
    def num_params(self) -> int:
        return sum(int(np.prod(shape)) for _, shape in self.tensors)

    def offsets(self) -> list[tuple[str, int, tuple[int, ...]]]:
        """(name, offset, shape) for every tensor in the flat vector."""
        out, off = [], 0
        for name, shape in self.tensors:
            out.append((name, off, shape))
            off += int(np.prod(shape))
        return out

    def to_json(self) -> str:
        d = asdict(self)
        d.pop("tensors")
        d["hidden"] = list(d["hidden"])
        return canonical_json(d)

    @classmethod
    def from_json(cls, text: str) -> "PolicySpec":
        d = json.loads(text)
        if isinstance(d, dict):
            d["hidden"] = tuple(d.get("hidden", ()))
        return dataclass_from_mapping(cls, d, what="PolicySpec")


def policy_outputs(spec: PolicySpec, weights: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """Raw MLP outputs (B, act_dim) for weights (B, P) and observations (B, obs_dim)."""
    weights = np.asarray(weights)
    obs = np.asarray(obs)
    if weights.ndim == 1:
        weights = weights[None]
    if obs.ndim == 1:
        obs = obs[None]
    if weights.shape[-1] != spec.num_params:
        raise ValueError(f"policy weights have {weights.shape[-1]} values, spec needs {spec.num_params}")
    if obs.shape[-1] != spec.obs_dim:
        raise ValueError(f"observation has {obs.shape[-1]} values, spec needs {spec.obs_dim}")
    batch = weights.shape[0]
    h = obs.astype(weights.dtype, copy=False)
    layers = spec.offsets()
    n_layers = len(layers) // 2
    for i in range(n_layers):
        _, w_off, w_shape = layers[2 * i]
        _, b_off, b_shape = layers[2 * i + 1]
        W = weights[:, w_off:w_off + w_shape[0] * w_shape[1]].reshape(batch, *w_shape)
        b = weights[:, b_off:b_off + b_shape[0]]
        h = np.matmul(W, h[..., None])[..., 0] + b
        if i < n_layers - 1:
            h = np.tanh(h)
    return h


def policy_act(spec: PolicySpec, weights: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """Actions (B,) int64 for discrete specs, (B, act_dim) clipped floats for continuous ones."""
    out = policy_outputs(spec, weights, obs)
    if spec.discrete:
        return np.argmax(out, axis=-1)
    return np.clip(out, spec.act_low, spec.act_high)


def init_policy(spec: PolicySpec, seed: int) -> np.ndarray:
    """PyTorch-default-like init (uniform ±1/sqrt(fan_in)) as one flat float32 vector: the x0 of the
    flat-vector baselines (CMA-ES, OpenES), so they start where an untrained MLP would."""
    rng = np.random.default_rng(seed)
    parts = []
    for name, shape in spec.tensors:
        fan_in = shape[1] if name.startswith("W") else parts[-1].size // shape[0]
        bound = 1.0 / np.sqrt(fan_in)
        parts.append(rng.uniform(-bound, bound, size=int(np.prod(shape))).astype(np.float32))
    return np.concatenate(parts)


class BoundPolicy:
    """`policy_act` for fixed weights with the per-layer views sliced once, for loops that act every
    control tick. Exactly the operations of `policy_outputs` (same matmul shapes, same order), so
    its actions are bit-identical to `policy_act`'s, i.e. to what the live runtime does."""

    def __init__(self, spec: PolicySpec, weights: np.ndarray) -> None:
        self.spec, self.weights, self.dtype = spec, weights, weights.dtype
        batch, offsets = weights.shape[0], spec.offsets()
        self.layers = []
        for i in range(len(offsets) // 2):
            _, w_off, (n_out, n_in) = offsets[2 * i]
            _, b_off, _ = offsets[2 * i + 1]
            self.layers.append((weights[:, w_off:w_off + n_out * n_in].reshape(batch, n_out, n_in),
                                weights[:, b_off:b_off + n_out]))

    def act(self, obs: np.ndarray) -> np.ndarray:
        h = obs.astype(self.dtype, copy=False)
        last = len(self.layers) - 1
        for i, (W, b) in enumerate(self.layers):
            h = np.matmul(W, h[..., None])[..., 0] + b
            if i < last:
                h = np.tanh(h)
        if self.spec.discrete:
            return np.argmax(h, axis=-1)
        return np.clip(h, self.spec.act_low, self.spec.act_high)

    __call__ = act

    def subset(self, mask: np.ndarray) -> "BoundPolicy":
        return BoundPolicy(self.spec, self.weights[mask])
