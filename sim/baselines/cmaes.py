"""CMA-ES (pycma) behind the maximising ask/tell interface, and a restarting variant for drift.

Why pycma: it is the reference implementation, so "CMA-ES does worse" cannot be blamed on a home
made port. pycma minimises, so fitness is negated on the way in.

Seeding. pycma's own `seed` option is *not* used: seed 0 (or None) there means "seed from the
clock", and any other value reseeds NumPy's *global* generator, so two optimisers in one process
(or any other code drawing from `np.random`) would disturb each other. Instead pycma's `randn`
option gets a private `np.random.default_rng(seed)` and `seed` is set to NaN (pycma then leaves
the global generator alone). Every integer seed, 0 included, is therefore reproducible, and runs
with the same seed ask exactly the same points whatever else the process does.

Quiet. `verbose=-9`, `verb_log=0`, `verb_disp=0`: pycma prints nothing and writes no `outcmaes/`
files. Its termination criteria are never consulted (`stop()` is not called): the benchmark runs a
fixed number of generations, and a converged CMA-ES simply keeps asking with a tiny step size.

Why a restarting variant. Once CMA-ES has converged its step size is tiny; after a task switch it
has to grow sigma back through cumulative step-size adaptation, which takes many generations. A
restart from the current centre with `sigma0` when fitness collapses is the standard remedy (as in
IPOP/BIPOP restarts, here triggered by a fitness drop rather than by stagnation) and is the fairer
baseline for non-stationary tasks.

References
----------
Hansen, N., Ostermeier, A. (2001). Completely Derandomized Self-Adaptation in Evolution Strategies.
Evolutionary Computation 9(2).
Hansen, N. (2016). The CMA Evolution Strategy: A Tutorial. arXiv:1604.00772.
Auger, A., Hansen, N. (2005). A Restart CMA Evolution Strategy With Increasing Population Size. CEC.
pycma: https://github.com/CMA-ES/pycma (options `randn`, `CMA_diagonal`, `verbose`).
"""
from __future__ import annotations

import math
import operator
from collections import deque

import cma
import numpy as np

from sim.baselines.common import (Best, check_fitness, check_popsize, check_positive, check_x0,
                           update_best)

# Options this wrapper owns; a caller's `options` may not override them.
_RESERVED = frozenset({"popsize", "seed", "randn", "verbose", "verb_log", "verb_disp"})


class _Randn:
    """pycma `randn(n, dim)` drawing from a private generator (picklable, unlike a lambda)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, *shape: int) -> np.ndarray:
        return self.rng.standard_normal(shape)


class CMAES:
    """CMA-ES that maximises `fitness(x)` over a flat float32 vector.

    Parameters
    ----------
    x0
        Initial mean, a finite 1-D vector of length P.
    popsize
        Individuals per generation (lambda), at least 2.
    sigma0
        Initial step size.
    seed
        Any integer; identical seeds give identical asks (see the module docstring).
    diagonal
        pycma's `CMA_diagonal`: True keeps the covariance diagonal (O(P) per sample instead of
        O(P^2); use it for large P), an int keeps it diagonal for that many iterations.
    options
        Further pycma options (e.g. `{"bounds": [-20, 20]}`); the seeding/verbosity/popsize keys
        are owned by this class.

    Attributes
    ----------
    generation
        Number of completed `tell` calls.
    """

    def __init__(self, x0: np.ndarray, popsize: int, sigma0: float = 0.5, seed: int = 0, *,
                 diagonal: bool | int = False, options: dict | None = None) -> None:
        self._x0 = check_x0(x0)
        self.popsize = check_popsize(popsize, minimum=2)
        self.sigma0 = check_positive("sigma0", sigma0)
        self.seed = operator.index(seed)
        self.diagonal = diagonal
        self._options = dict(options or {})
        clash = sorted(_RESERVED & self._options.keys())
        if clash:
            raise ValueError(f"options may not set {clash}: CMAES controls them")
        self._randn = _Randn(self.seed)
        self._es = self._new_es(self._x0)
        self._pending: list[np.ndarray] | None = None
        self._best: Best | None = None
        self.generation = 0

    def _new_es(self, start: np.ndarray) -> cma.CMAEvolutionStrategy:
        opts = {
            **self._options,
            "popsize": self.popsize,
            "seed": math.nan,  # pycma must not touch np.random's global state
            "randn": self._randn,
            "CMA_diagonal": self.diagonal,
            "verbose": -9,
            "verb_log": 0,
            "verb_disp": 0,
        }
        return cma.CMAEvolutionStrategy(np.asarray(start, dtype=np.float64), self.sigma0, opts)

    # -- ask / tell -------------------------------------------------------------------------------
    def ask(self) -> np.ndarray:
        """Sample a generation: (popsize, P) float32. Must be followed by exactly one `tell`."""
        if self._pending is not None:
            raise RuntimeError("ask() called twice without tell(): tell the pending fitness first")
        self._pending = self._es.ask()
        return np.asarray(self._pending, dtype=np.float32)

    def tell(self, fitness: np.ndarray) -> None:
        """Report one fitness per asked individual (higher is better)."""
        if self._pending is None:
            raise RuntimeError("tell() called without a pending ask()")
        f = check_fitness(fitness, self.popsize)
        X = self._pending
        self._es.tell(X, (-f).tolist())  # pycma minimises
        self._pending = None
        self._best = update_best(self._best, np.asarray(X), f, self.generation)
        self.generation += 1

    # -- state --------------------------------------------------------------------------------------
    @property
    def mean(self) -> np.ndarray:
        """Current centre of the search distribution (float32 copy)."""
        return np.array(self._es.mean, dtype=np.float32)

    @property
    def sigma(self) -> float:
        """pycma's global step size; the per-coordinate spread is `stds` (sigma times sqrt(diag C))."""
        return float(self._es.sigma)

    @property
    def stds(self) -> np.ndarray:
        """Per-coordinate standard deviations of the sampling distribution (float32)."""
        return np.array(self._es.stds, dtype=np.float32)

    @property
    def best(self) -> Best | None:
        """Best point ever told (None before the first tell); stale after a task switch."""
        return self._best


class CMAESRestart(CMAES):
    """CMA-ES that restarts from its centre with `sigma0` when the per-generation best collapses.

    Restart rule, checked after every `tell`: let `ref` be the highest per-generation best over
    the last `window` generations since the last restart (the current one excluded) and `cur`
    the best of the current generation. Restart when

        cur < ref - (1 - drop_fraction) * |ref|

    i.e. `cur < drop_fraction * ref` for positive fitness (the usual reading: "the best fell
    below half of what it was"), and the same relative loss measured from `|ref|` when fitness is
    negative (e.g. LunarLander). With ref == 0 any negative best triggers a restart.

    The comparison uses per-generation values, which the benchmark re-evaluates every generation
    with fresh episodes, so a drift shows up as a drop at once instead of hiding behind a stale
    pre-drift score. After a restart the window is cleared and seeded with the triggering
    generation's best (the level of the new task).

    Parameters
    ----------
    drop_fraction
        In (0, 1]; 1 restarts on any decrease.
    window
        Generations of history to compare against (>= 1).
    restart_from
        "mean": the centre after telling the triggering generation (default); "best": the best
        individual of the triggering generation.

    Attributes
    ----------
    restart_generations
        Generation index (0-based, as told) of every restart.
    """

    def __init__(self, x0: np.ndarray, popsize: int, sigma0: float = 0.5, seed: int = 0, *,
                 drop_fraction: float = 0.5, window: int = 10, restart_from: str = "mean",
                 diagonal: bool | int = False, options: dict | None = None) -> None:
        drop_fraction = float(drop_fraction)
        if not 0.0 < drop_fraction <= 1.0:
            raise ValueError(f"drop_fraction must be in (0, 1], got {drop_fraction}")
        if isinstance(window, bool) or operator.index(window) < 1:
            raise ValueError(f"window must be an integer >= 1, got {window!r}")
        if restart_from not in ("mean", "best"):
            raise ValueError(f"restart_from must be 'mean' or 'best', got {restart_from!r}")
        super().__init__(x0, popsize, sigma0, seed, diagonal=diagonal, options=options)
        self.drop_fraction = drop_fraction
        self.window = operator.index(window)
        self.restart_from = restart_from
        self._history: deque[float] = deque(maxlen=self.window)
        self.restart_generations: list[int] = []

    def dropped(self, cur: float, ref: float) -> bool:
        """The restart test: has the best fallen by more than (1 - drop_fraction)·|ref|?"""
        return cur < ref - (1.0 - self.drop_fraction) * abs(ref)

    def tell(self, fitness: np.ndarray) -> None:
        X = self._pending
        super().tell(fitness)
        f = np.asarray(fitness, dtype=np.float64)  # validated by super().tell
        cur = float(f.max())
        if self._history and self.dropped(cur, max(self._history)):
            start = self._es.mean if self.restart_from == "mean" else X[int(np.argmax(f))]
            self._es = self._new_es(start)
            self.restart_generations.append(self.generation - 1)
            self._history.clear()
        self._history.append(cur)

    @property
    def restarts(self) -> int:
        """Number of restarts so far."""
        return len(self.restart_generations)
