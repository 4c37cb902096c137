"""OpenAI-ES: a Gaussian-smoothed gradient estimate of fitness, followed with Adam.

Why this baseline: it is the other classic black-box method the SR-GHN paper compares against,
and the opposite extreme of self-adaptation: its mutation scale sigma is a fixed hyper-parameter,
so after a task switch it can only re-adapt through the learning rate of its mean.

The recipe of Salimans et al. (2017), numpy only:

- antithetic (mirrored) sampling: noise eps_1..eps_{n/2} and their negatives, so the gradient
  estimate is free of the fitness offset and has lower variance (popsize must be even);
- centred ranks: fitness is replaced by its rank scaled to [-0.5, 0.5], which makes the update
  invariant to monotone transforms of fitness and robust to outliers. Tied fitness values share
  their average rank, so a flat generation (e.g. every CartPole episode reaching 500) gives a zero
  gradient instead of a bias towards whichever individuals were asked first;
- gradient g = sum_i rank_i * eps_i / (popsize * sigma) - weight_decay * mean, ascended with Adam.

Reproducibility: all noise comes from `np.random.default_rng(seed)`.

References
----------
Salimans, T., Ho, J., Chen, X., Sidor, S., Sutskever, I. (2017). Evolution Strategies as a
Scalable Alternative to Reinforcement Learning. arXiv:1703.03864.
https://github.com/openai/evolution-strategies-starter
Kingma, D. P., Ba, J. (2015). Adam: A Method for Stochastic Optimization. ICLR.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import rankdata

from sim.baselines.common import (Best, check_fitness, check_popsize, check_positive, check_x0,
                           update_best)


def centered_ranks(fitness: np.ndarray) -> np.ndarray:
    """Ranks scaled to [-0.5, 0.5] (ties share their average rank), as in Salimans et al.

    >>> centered_ranks(np.array([3.0, -1.0, 10.0]))
    array([ 0. , -0.5,  0.5])
    >>> centered_ranks(np.array([500.0, 500.0]))
    array([0., 0.])
    """
    f = np.asarray(fitness, dtype=np.float64)
    if f.size < 2:
        return np.zeros_like(f)
    return (rankdata(f, method="average") - 1.0) / (f.size - 1) - 0.5


@dataclass
class Adam:
    """Adam for gradient *ascent*: `step(g)` returns the change to add to the parameters."""

    dim: int
    lr: float = 0.03
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    t: int = 0
    m: np.ndarray = field(init=False)
    v: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.m = np.zeros(self.dim)
        self.v = np.zeros(self.dim)

    def step(self, grad: np.ndarray) -> np.ndarray:
        self.t += 1
        self.m = self.beta1 * self.m + (1.0 - self.beta1) * grad
        self.v = self.beta2 * self.v + (1.0 - self.beta2) * grad * grad
        a = self.lr * np.sqrt(1.0 - self.beta2 ** self.t) / (1.0 - self.beta1 ** self.t)
        return a * self.m / (np.sqrt(self.v) + self.eps)


class OpenES:
    """OpenAI-ES that maximises `fitness(x)` over a flat float32 vector.

    Parameters
    ----------
    x0
        Initial mean, a finite 1-D vector of length P.
    popsize
        Individuals per generation; even (antithetic pairs), at least 2.
    sigma0
        Noise standard deviation. It stays fixed (as in Salimans et al.); the name matches
        `CMAES` so the benchmark can build every optimiser with the same call.
    seed
        Seed of the private noise generator.
    lr
        Adam step size on the mean.
    weight_decay
        L2 coefficient subtracted from the gradient (0 disables it).

    Attributes
    ----------
    generation
        Number of completed `tell` calls.
    noise
        The last asked standard-normal noise, (popsize, P): row i and row i + popsize/2 are exact
        negatives; `ask()` returned `mean + sigma * noise` (cast to float32).
    """

    def __init__(self, x0: np.ndarray, popsize: int, sigma0: float = 0.1, seed: int = 0, *,
                 lr: float = 0.03, weight_decay: float = 0.0) -> None:
        self._mean = check_x0(x0)
        self.popsize = check_popsize(popsize, minimum=2)
        if self.popsize % 2:
            raise ValueError(f"popsize must be even for antithetic sampling, got {self.popsize}")
        self._sigma = check_positive("sigma0", sigma0)
        self.seed = operator.index(seed)
        self.weight_decay = float(weight_decay)
        if not self.weight_decay >= 0.0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        self.adam = Adam(self._mean.size, lr=check_positive("lr", lr))
        self.rng = np.random.default_rng(self.seed)
        self.noise: np.ndarray | None = None
        self._pending: np.ndarray | None = None
        self._best: Best | None = None
        self.generation = 0

    def ask(self) -> np.ndarray:
        """Sample a generation: (popsize, P) float32, antithetic pairs (i, i + popsize/2)."""
        if self._pending is not None:
            raise RuntimeError("ask() called twice without tell(): tell the pending fitness first")
        half = self.rng.standard_normal((self.popsize // 2, self._mean.size))
        self.noise = np.concatenate([half, -half])
        self._pending = (self._mean + self._sigma * self.noise).astype(np.float32)
        return self._pending.copy()

    def tell(self, fitness: np.ndarray) -> None:
        """Report one fitness per asked individual (higher is better); moves the mean."""
        if self._pending is None:
            raise RuntimeError("tell() called without a pending ask()")
        f = check_fitness(fitness, self.popsize)
        grad = centered_ranks(f) @ self.noise / (self.popsize * self._sigma)
        grad -= self.weight_decay * self._mean
        self._mean = self._mean + self.adam.step(grad)
        self._best = update_best(self._best, self._pending, f, self.generation)
        self._pending = None
        self.generation += 1

    @property
    def mean(self) -> np.ndarray:
        """Current centre (float32 copy)."""
        return self._mean.astype(np.float32)

    @property
    def sigma(self) -> float:
        """Noise standard deviation (fixed)."""
        return self._sigma

    @property
    def best(self) -> Best | None:
        """Best point ever told (None before the first tell); stale after a task switch."""
        return self._best
