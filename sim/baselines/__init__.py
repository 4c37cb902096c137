"""Baseline optimisers for the SR-GHN comparisons: CMA-ES, restarting CMA-ES and OpenAI-ES.

Every optimiser here MAXIMISES a fitness over one flat float32 policy vector (the same layout as
`sim.policy`), through the same ask/tell loop, so the benchmark can swap methods without caring
which one it drives::

    opt = CMAES(x0, popsize=30, sigma0=0.5, seed=0)
    for gen in range(n_generations):
        X = opt.ask()                      # (popsize, P) float32
        opt.tell(evaluate(X))              # (popsize,) fitness, higher is better
        log(gen, opt.sigma, opt.best)      # sigma: the method's "mutation scale"

Why one interface: the SR-GHN paper's claim is about adaptation under the same evaluation budget
(population = P·(1 + C) evaluations per generation for the baselines), so the loop, the fresh
re-evaluation every generation and the logging must be identical across methods; only `ask` and
`tell` differ.

`best` is the best point ever told, with its fitness. Under drift that value is stale (it was
scored on the old task); the benchmark should log the per-generation best from the fitness it
passes to `tell`, not `best.fitness`.

The pieces the optimisers share (the `Best` record and argument checks) are in `common.py`.

References
----------
Hansen, N. (2016). The CMA Evolution Strategy: A Tutorial. arXiv:1604.00772.
pycma: https://github.com/CMA-ES/pycma
Salimans, T., Ho, J., Chen, X., Sidor, S., Sutskever, I. (2017). Evolution Strategies as a
Scalable Alternative to Reinforcement Learning. arXiv:1703.03864.
"""
from __future__ import annotations

from sim.baselines.common import Best  # noqa: F401  (re-exported)
from sim.baselines.cmaes import CMAES, CMAESRestart
from sim.baselines.openes import OpenES

__all__ = ["Best", "CMAES", "CMAESRestart", "OpenES"]
