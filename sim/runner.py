"""One experiment = one task x one method x one seed, with the same record for every method.

Methods get the same evaluations per generation: P * (1 + C) (30 for P = 10, C = 2), so SR-GHN and
the flat-vector baselines (CMA-ES, CMA-ES with restarts, OpenES) are compared at equal cost.

    srghn              the self-referential hypernetwork, heritable rate (the method, and the shipped
                       default with its rate floor 0.1: `rate_floor=0` is the floorless original); the
                       mechanism flags (tie_break, meta_rate, rate_floor, selection_fitness, ...) apply
    fixed-rate         every node's rate fixed to `rate` AND the variation machinery frozen, so the
                       mutation distribution never changes (a fixed-scale ES on the hypernetwork)
    fixed-rate-std     every node's rate fixed to `rate`, the std head still evolves (what
                       `fixed-rate` meant before the ablations were renamed)
    frozen-head        the stochastic head's output layers (std, rate) never mutated; the self
                       embedding / self GNN / trunk still are (SRGHN.md's "frozen stochastic head")
    no-self-reference  every tensor that only shapes variation (self embedding, self GNN, trunk,
                       std and rate heads) never mutated (what `frozen-head` meant before)
    cmaes              pycma on the flat policy vector, sigma0 = `sigma0`
    cmaes-restart      CMA-ES restarted when the generation's best drops (home-made rule)
    cmaes-ipop         pycma's own IPOP restarts (`cma.fmin2`, restarts, doubling popsize)
    cmaes-bipop        pycma's own BIPOP restarts
    openes             antithetic OpenAI-ES, centred ranks, Adam

The record is what `driftgate evolve --json-out` writes and `benchmarks/adaptation.py` aggregates.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch

from sim.evaluate import Evaluator
from sim.evolution import EvolutionConfig, GenerationLog, diversity, evolve_srghn
from sim.genome import Genome
from sim.policy import init_policy
from sim.recovery import recovery_best, recovery_mean
from sim.srghn import SHIPPED, SRGHN, SRGHNConfig
from sim.tasks import make_task as _make_named_task

METHODS = ("srghn", "cmaes", "cmaes-restart", "cmaes-ipop", "cmaes-bipop", "openes", "fixed-rate",
           "fixed-rate-std", "frozen-head", "no-self-reference")
SRGHN_METHODS = ("srghn", "fixed-rate", "fixed-rate-std", "frozen-head", "no-self-reference")


@dataclass(frozen=True)
class RunConfig:
    """Every setting of a run; all of it goes into the record."""

    task: str = "cartpole-switch"
    method: str = "srghn"             # the shipped default (issue 17's study): evolved rate, floor 0.1
    generations: int = 300
    seed: int = 0
    population: int = 10
    children: int = 2
    cf: float = 0.0
    rate: float = 0.2                 # fixed-rate ablation only
    episodes: int = 1
    schedule: str | None = None       # switch windows, e.g. "100-200"; None = the task's default
    horizon: int | None = None
    workers: int = 1
    update_clip: float | None = None  # None = 1.0 for discrete tasks, 0.1 for locomotion
    noise_convention: str = "port"
    sigma0: float = 0.5               # CMA-ES
    cma_diagonal: bool | None = None  # None: diagonal CMA-ES when the policy has > 1000 parameters (Ant)
    openes_sigma: float = 0.1
    openes_lr: float = 0.03
    torch_threads: int = 1
    tie_break: str = "children"       # SR-GHN selection: children | parents | random
    selection_fitness: str = "last"   # last | mean (of the last `fitness_window` evaluations)
    fitness_window: int = 4
    meta_rate: float = 0.0            # > 0: the rate head mutates at this fixed scale
    rate_floor: float | None = None   # evolved rate never below this; None: the shipped floor
                                      # (SHIPPED, 0.1) for `srghn`, 0 for every other method
    init_rate: float | None = None    # r0: initial mean rate of the evolved rate head
    model: dict = field(default_factory=dict)  # extra SRGHNConfig fields
    task_options: dict = field(default_factory=dict)  # extra make_task options (e.g. cartpole-drift's sequence)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; known: {', '.join(METHODS)}")
        for name in ("generations", "population", "children", "episodes", "workers", "torch_threads"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not 0.0 <= self.cf <= 1.0:
            raise ValueError(f"cf must be in [0, 1], got {self.cf}")
        if self.sigma0 <= 0 or self.openes_sigma <= 0 or self.openes_lr <= 0:
            raise ValueError("sigma0, openes_sigma and openes_lr must be positive")
        EvolutionConfig(self.population, self.children, self.cf, self.tie_break, self.selection_fitness,
                        self.fitness_window)   # validates the selection fields, naming them
        SRGHNConfig(meta_rate=self.meta_rate, rate_floor=self.floor, init_rate=self.init_rate)  # and these

    @property
    def floor(self) -> float:
        """The rate floor in force: `rate_floor`, else the shipped one for `srghn` and 0 otherwise."""
        if self.rate_floor is not None:
            return float(self.rate_floor)
        return float(SHIPPED.get("rate_floor", 0.0)) if self.method == "srghn" else 0.0

    def evolution_config(self) -> EvolutionConfig:
        return EvolutionConfig(self.population, self.children, self.cf, self.tie_break, self.selection_fitness,
                               self.fitness_window)

    @property
    def evaluations_per_generation(self) -> int:
        return self.population * (1 + self.children)


def make_task(cfg: RunConfig):
    """The run's task: a `sim.tasks` benchmark, or `plant-drift` (a MuJoCo plant with a drift sequence)."""
    if cfg.task == "plant-drift":
        from sim.plant_drift_task import make_plant_drift_task
        return make_plant_drift_task(episodes=cfg.episodes, schedule=cfg.schedule, horizon=cfg.horizon,
                                     **cfg.task_options)
    return _make_named_task(cfg.task, episodes=cfg.episodes, schedule=cfg.schedule, horizon=cfg.horizon,
                            **cfg.task_options)


def model_config(cfg: RunConfig, task) -> SRGHNConfig:
    clip = cfg.update_clip if cfg.update_clip is not None else (1.0 if task.policy.discrete else 0.1)
    extra = dict(meta_rate=cfg.meta_rate, rate_floor=cfg.floor, init_rate=cfg.init_rate)
    if cfg.method == "srghn":         # the self-referential method, whatever the class defaults
        extra.update(rate_mode="evolved", freeze_variation=False, freeze_stochastic_head=False)
    extra.update(cfg.model)
    if cfg.method in ("fixed-rate", "fixed-rate-std"):
        extra.update(rate_mode="fixed", fixed_rate=cfg.rate)
    if cfg.method in ("fixed-rate", "no-self-reference"):
        extra.update(freeze_variation=True)
    if cfg.method == "frozen-head":
        extra.update(freeze_stochastic_head=True)
    return SRGHNConfig(update_clip=clip, noise_convention=cfg.noise_convention, **extra)


def _make_optimizer(cfg: RunConfig, x0: np.ndarray):
    from sim.baselines.cmaes import CMAES, CMAESRestart
    from sim.baselines.openes import OpenES
    n = cfg.evaluations_per_generation
    diagonal = cfg.cma_diagonal if cfg.cma_diagonal is not None else x0.size > 1000
    if cfg.method == "cmaes":
        return CMAES(x0, popsize=n, sigma0=cfg.sigma0, seed=cfg.seed, diagonal=diagonal)
    if cfg.method == "cmaes-restart":
        return CMAESRestart(x0, popsize=n, sigma0=cfg.sigma0, seed=cfg.seed, diagonal=diagonal)
    return OpenES(x0, popsize=n + (n % 2), sigma0=cfg.openes_sigma, lr=cfg.openes_lr, seed=cfg.seed)


def _evolve_cma_restarts(cfg: RunConfig, task, evaluator, on_generation, x0=None
                         ) -> tuple[list[GenerationLog], np.ndarray, float, int]:
    from sim.baselines.cma_restarts import cma_restarts
    rng = np.random.default_rng(cfg.seed)
    x0 = init_policy(task.policy, cfg.seed) if x0 is None else x0
    logs: list[GenerationLog] = []
    t_last = [time.perf_counter()]

    def evaluate(X, g):
        return evaluator(X, rng.integers(0, 2**31 - 1, size=len(X)), g)

    def log_gen(g, fit, sigma):
        now = time.perf_counter()
        log = GenerationLog(gen=g, best=float(fit.max()), mean=float(fit.mean()), median=float(np.median(fit)),
                            rate_mean=None, std_mean=float(sigma), diversity=0.0,
                            switch_on=bool(task.schedule.active(g)), wall_s=now - t_last[0])
        t_last[0] = now
        logs.append(log)
        if on_generation is not None:
            on_generation(log)

    n = cfg.evaluations_per_generation
    res = cma_restarts(evaluate, x0, cfg.generations, n, cfg.sigma0, cfg.seed,
                       bipop=cfg.method == "cmaes-bipop", on_generation=log_gen)
    return logs, res.best_x, logs[-1].best, cfg.generations * n * task.episodes


def _evolve_baseline(cfg: RunConfig, task, evaluator, on_generation, x0=None
                     ) -> tuple[list[GenerationLog], np.ndarray, float, int]:
    if cfg.method in ("cmaes-ipop", "cmaes-bipop"):
        return _evolve_cma_restarts(cfg, task, evaluator, on_generation, x0)
    rng = np.random.default_rng(cfg.seed)
    opt = _make_optimizer(cfg, init_policy(task.policy, cfg.seed) if x0 is None else x0)
    logs, evaluations = [], 0
    best_x, best_f = None, -np.inf
    for g in range(cfg.generations):
        t0 = time.perf_counter()
        X = opt.ask()
        fit = evaluator(X, rng.integers(0, 2**31 - 1, size=len(X)), g)
        opt.tell(fit)
        evaluations += len(X) * task.episodes
        i = int(np.argmax(fit))
        best_x, best_f = X[i].copy(), float(fit[i])   # the latest generation's best: the world may have changed
        log = GenerationLog(gen=g, best=float(fit.max()), mean=float(fit.mean()), median=float(np.median(fit)),
                            rate_mean=None, std_mean=float(opt.sigma), diversity=diversity(X),
                            switch_on=bool(task.schedule.active(g)), wall_s=time.perf_counter() - t0)
        logs.append(log)
        if on_generation is not None:
            on_generation(log)
    return logs, best_x, best_f, evaluations


def check_initial(cfg: RunConfig, genome: Genome) -> np.ndarray:
    """The vector of a seed genome, if it fits this run (same method family, task policy and size)."""
    task = make_task(cfg)
    want_kind = "srghn" if cfg.method in SRGHN_METHODS else "policy"
    if genome.kind != want_kind:
        raise ValueError(f"seed genome is a {genome.kind!r} genome; method {cfg.method!r} needs a {want_kind!r} one")
    if genome.policy_spec != task.policy:
        raise ValueError(f"seed genome's policy {genome.policy_spec} does not match task {cfg.task!r} ({task.policy})")
    need = SRGHN(task.policy, model_config(cfg, task)).num_params if want_kind == "srghn" else task.policy.num_params
    if genome.vector.size != need:
        raise ValueError(f"seed genome has {genome.vector.size} values; {cfg.method} on {cfg.task} needs {need}")
    return genome.vector


def run(cfg: RunConfig, on_generation: Callable[[GenerationLog], None] | None = None,
        initial: Genome | None = None) -> tuple[dict, Genome]:
    """Run one experiment; returns (record, best genome). The record is JSON-ready.

    `initial` seeds the run: the first SR-GHN individual(s), or the x0 of a flat-vector baseline.
    """
    torch.set_num_threads(cfg.torch_threads)
    task = make_task(cfg)
    x_init = check_initial(cfg, initial) if initial is not None else None
    t0 = time.perf_counter()
    with Evaluator(task, workers=cfg.workers) as evaluator:
        if cfg.method in SRGHN_METHODS:
            mcfg = model_config(cfg, task)
            res = evolve_srghn(task, evaluator, cfg.generations, cfg.seed,
                               cfg.evolution_config(), mcfg,
                               initial=None if x_init is None else x_init[None], on_generation=on_generation)
            logs, evaluations = res.generations, res.evaluations
            best = Genome(vector=res.champion, policy_spec=task.policy, kind="srghn", model=mcfg.to_dict(),
                          parent_id=initial.id if initial is not None else None,
                          generation=cfg.generations, fitness={"score": res.champion_fitness, "task": cfg.task})
            best_fitness = res.champion_fitness
        else:
            logs, x, best_fitness, evaluations = _evolve_baseline(cfg, task, evaluator, on_generation, x_init)
            best = Genome(vector=x, policy_spec=task.policy, kind="policy", generation=cfg.generations,
                          parent_id=initial.id if initial is not None else None,
                          fitness={"score": best_fitness, "task": cfg.task})
    wall = time.perf_counter() - t0
    best_curve = [g.best for g in logs]
    toggles = [t for t in task.change_points() if t < len(logs)]
    floor = float(getattr(task, "recovery_floor", 0.0))
    record = {
        "task": cfg.task,
        "method": cfg.method,
        "seed": cfg.seed,
        "config": {**asdict(cfg), "schedule": task.schedule.to_string(),
                   "evaluations_per_generation": cfg.evaluations_per_generation,
                   "policy": {"obs_dim": task.policy.obs_dim, "hidden": list(task.policy.hidden),
                              "act_dim": task.policy.act_dim, "num_params": task.policy.num_params},
                   **({"srghn": model_config(cfg, task).to_dict(),
                       "srghn_num_params": SRGHN(task.policy, model_config(cfg, task)).num_params}
                      if cfg.method in SRGHN_METHODS else {})},
        "generations": [{"gen": g.gen, "best": g.best, "mean": g.mean, "median": g.median,
                         "rate_mean": g.rate_mean, "std_mean": g.std_mean, "diversity": g.diversity,
                         "switch_on": g.switch_on} for g in logs],
        "evaluations": evaluations,
        "wall_s": wall,
        "ms_per_generation": 1e3 * wall / len(logs),
        "final_best_fitness": best_fitness,
        "recovery": recovery_best(best_curve, toggles, floor=floor),
        "recovery_mean": recovery_mean([g.mean for g in logs], toggles, floor=floor),
        "best_genome_id": best.id,
        "seed_genome_id": initial.id if initial is not None else None,
    }
    return record, best
