"""The SR-GHN population loop, readable top to bottom (CleanRL style).

Every generation:
  1. every parent writes `children` mutated copies of itself with its own stochastic head;
  2. parents AND children are evaluated with fresh episode seeds (re-evaluating parents is what lets
     a population notice that the world changed: stale pre-drift fitness would block adaptation);
  3. a parent's score is (1 - cf) * own fitness + cf * mean(children's fitness): with cf > 0 a
     parent is also judged by how good its offspring are, i.e. by its mutation machinery;
  4. (mu + lambda) truncation keeps the top `population` of parents + children (implicit elitism);
     ties go to children by default (`tie_break`), so a population on a plateau keeps moving.

Mechanisms exposed as config fields (each an ablation arm of benchmarks/science/): `tie_break`
(children / parents / random), `selection_fitness` ("last" re-evaluation, or the mean of an
individual's last `fitness_window` evaluations), plus the SRGHNConfig ones (rate floor, meta-rate).

The log per generation holds best / mean / median fitness, the population-mean mutation rate and
coefficient std (the paper's "self-regulated variation" curves) and diversity. Lineage of every
individual ever created is kept as (id, parent_id, born).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from sim.srghn import SRGHN, SRGHNConfig


TIE_BREAKS = ("children", "parents", "random")
SELECTION_FITNESS = ("last", "mean")


def truncation(scores: np.ndarray, keep: int, tie_break: str = "children",
               rng: np.random.Generator | None = None) -> np.ndarray:
    """Indices of the `keep` best scores, best first; `scores` lists parents first, then children.

    Equal scores go to the later entries ("children", the reference code's ascending sort +
    take-the-last), to the earlier ones ("parents"), or in a random order ("random", needs `rng`).
    """
    idx = np.arange(len(scores))
    if tie_break == "children":
        second = -idx
    elif tie_break == "parents":
        second = idx
    else:
        second = rng.permutation(len(scores))
    return np.lexsort((second, -np.asarray(scores, dtype=np.float64)))[:keep].copy()


@dataclass(frozen=True)
class EvolutionConfig:
    """Population settings (SRGHN.md: P = 10, C = 2 for CartPole; cf 0.5 original, 0 port)."""

    population: int = 10
    children: int = 2
    child_credit: float = 0.0
    tie_break: str = "children"        # who wins equal scores: children | parents | random
    selection_fitness: str = "last"    # last: this generation's evaluation; mean: mean of the last `fitness_window`
    fitness_window: int = 4

    def __post_init__(self) -> None:
        if self.population < 1 or self.children < 1:
            raise ValueError(f"population and children must be >= 1, got {self.population}, {self.children}")
        if not 0.0 <= self.child_credit <= 1.0:
            raise ValueError(f"child_credit (cf) must be in [0, 1], got {self.child_credit}")
        if self.tie_break not in TIE_BREAKS:
            raise ValueError(f"tie_break must be one of {TIE_BREAKS}, got {self.tie_break!r}")
        if self.selection_fitness not in SELECTION_FITNESS:
            raise ValueError(f"selection_fitness must be one of {SELECTION_FITNESS}, got {self.selection_fitness!r}")
        if int(self.fitness_window) < 1:
            raise ValueError(f"fitness_window must be >= 1, got {self.fitness_window}")

    @property
    def evaluations_per_generation(self) -> int:
        return self.population * (1 + self.children)


@dataclass
class GenerationLog:
    gen: int
    best: float
    mean: float
    median: float
    rate_mean: float | None
    std_mean: float | None
    diversity: float
    switch_on: bool
    wall_s: float
    elite_id: int | None = None    # id of the individual ranked first after selection (lineage look-ups)


@dataclass
class EvolutionResult:
    generations: list[GenerationLog]
    champion: np.ndarray                      # flat genome of the final best individual
    champion_id: int
    champion_parent: int | None
    champion_fitness: float
    population: np.ndarray                    # final population (P, D)
    population_ids: list[int]
    lineage: list[tuple[int, int | None, int]] = field(default_factory=list)  # (id, parent, born)
    evaluations: int = 0

    def curves(self) -> dict[str, list]:
        return {k: [getattr(g, k) for g in self.generations] for k in ("best", "mean", "median", "rate_mean")}

    def parent_chain(self, individual: int | None = None) -> list[int]:
        """Ids from `individual` (default: the champion) back to its root seed, itself first."""
        parent_of = {i: p for i, p, _ in self.lineage}
        chain = [self.champion_id if individual is None else individual]
        while parent_of.get(chain[-1]) is not None:
            chain.append(parent_of[chain[-1]])
        return chain

    def lineage_depth(self, individual: int | None = None) -> int:
        """Variation steps (generations of SR-GHN mutation) between `individual` and its root seed:
        0 means the individual IS one of the initial seeds, unchanged."""
        return len(self.parent_chain(individual)) - 1

    @property
    def best_per_generation(self) -> list[float]:
        return [g.best for g in self.generations]


CONFIRM_EPISODES = 10     # fresh episodes a target must hold on before a run may stop on it


@dataclass
class ConfirmedTarget:
    """Stop rule "the target is reached", proven on fresh episodes, never on one lucky evaluation.

    A generation's best is one evaluation (a single episode per spec): with many individuals some
    score high by luck. When it reaches `target`, the elite is re-evaluated by `confirm(elite,
    seed)` on fresh episodes, which returns one return per episode; the run stops only when there
    are at least `min_episodes` of them, their mean reaches the target and none is below
    `min_return` (the gate fails a candidate on any seed that breaks a hard limit; a mean hides one
    fallen episode among twelve). Every check is kept in
    `checks` (for result.json); `confirmed` is the check that stopped the run, if any."""

    target: float
    confirm: Callable[[np.ndarray, int], np.ndarray]
    seed: int = 0
    min_episodes: int = CONFIRM_EPISODES
    min_return: float = float("-inf")   # every confirming episode must reach this too (no fall hidden in a mean)
    checks: list = field(default_factory=list)
    # the generation best (on the fitness's scale) that starts a check; None: `target`. A run whose
    # fitness is not the target's metric (a job's adapt_objective) checks every elite: -inf
    trigger: float | None = None

    def __post_init__(self) -> None:
        if int(self.min_episodes) < CONFIRM_EPISODES:
            raise ValueError(f"min_episodes: a target is confirmed on >= {CONFIRM_EPISODES} fresh episodes, "
                             f"got {self.min_episodes}")

    def __call__(self, log: GenerationLog, elite: np.ndarray) -> bool:
        if not log.best >= (self.target if self.trigger is None else self.trigger):
            return False
        returns = np.asarray(self.confirm(elite, int(self.seed) + 7919 * (int(log.gen) + 1)), dtype=np.float64)
        if returns.size < self.min_episodes:
            raise ValueError(f"confirm returned {returns.size} episode returns; the stop rule needs "
                             f">= {self.min_episodes}")
        score = float(np.mean(returns)) if np.all(np.isfinite(returns)) else float("-inf")
        ok = score >= self.target and bool(np.min(returns) >= self.min_return)
        self.checks.append({"gen": int(log.gen), "score": score, "episodes": int(returns.size),
                            "min": float(np.min(returns)), "confirmed": bool(ok)})
        return ok

    @property
    def confirmed(self) -> dict | None:
        return next((c for c in self.checks if c["confirmed"]), None)


def diversity(pop: np.ndarray) -> float:
    """RMS pairwise parameter distance / sqrt(#params), O(n * D) via the sum-of-squares identity."""
    n, d = pop.shape
    if n < 2:
        return 0.0
    x = pop.astype(np.float64)
    total = n * np.sum(x * x) - np.sum(x.sum(axis=0) ** 2)   # = sum_{i<j} ||x_i - x_j||^2
    pairs = n * (n - 1) / 2
    return float(np.sqrt(max(total, 0.0) / pairs) / np.sqrt(d))


def evolve_srghn(task, evaluator: Callable, generations: int, seed: int,
                 config: EvolutionConfig = EvolutionConfig(), model_config: SRGHNConfig = SRGHNConfig(),
                 initial: np.ndarray | None = None, start_generation: int = 0,
                 on_generation: Callable[[GenerationLog], None] | None = None,
                 should_stop: Callable[[GenerationLog, np.ndarray], bool] | None = None) -> EvolutionResult:
    """Evolve an SR-GHN population on `task` (see `sim.tasks`) for `generations` generations.

    `initial` (k, D) seeds the population (e.g. the current champion and its stable ancestors);
    missing places are filled with children of the seeds. `start_generation` offsets the generation
    index handed to the task (its switch schedule). `should_stop(log, elite)` (elite: the flat genome
    ranked first after selection) ends the run early after a generation (budgets, a confirmed
    target); `generations` is then the maximum.
    """
    if generations < 1:
        raise ValueError(f"generations must be >= 1, got {generations}")
    model = SRGHN(task.policy, model_config)
    P, C, cf = config.population, config.children, config.child_credit
    rng = np.random.default_rng(seed)
    tie_rng = np.random.default_rng([int(seed), 1])   # its own stream: tie_break never shifts episode seeds
    tgen = torch.Generator().manual_seed(int(seed))
    history: dict[int, list[float]] = {}              # id -> recent evaluations (selection_fitness="mean")

    if initial is None:
        pop = model.init_genomes(P, seed)
    else:
        seeds = torch.as_tensor(np.asarray(initial, dtype=np.float32)).reshape(-1, model.num_params)
        pop = seeds[:P]
        parents: list[int | None] = [None] * len(pop)
        while len(pop) < P:
            kids, _ = model.children(seeds, 1, tgen)     # one fill-in child per seed, in seed order
            parents += list(range(len(seeds)))
            pop = torch.cat([pop, kids])[:P]
        parents = parents[:P]
    ids = list(range(P))
    next_id = P
    if initial is None:
        parents = [None] * P
    # a fill-in child keeps its seed as parent: one variation step, so the winner's lineage depth
    # and parent chain say honestly whether it is a seed or something evolution made
    lineage: list[tuple[int, int | None, int]] = [(i, parents[i], start_generation) for i in ids]
    logs: list[GenerationLog] = []
    evaluations = 0
    scores = np.zeros(P)
    fitness_all = np.zeros(P)

    for g in range(start_generation, start_generation + generations):
        t0 = time.perf_counter()
        kids, stats = model.children(pop, C, tgen)
        kid_ids = list(range(next_id, next_id + P * C))
        next_id += P * C
        kid_parents = [ids[i // C] for i in range(P * C)]
        lineage += [(k, p, g) for k, p in zip(kid_ids, kid_parents)]

        everyone = torch.cat([pop, kids])
        weights = model.policy_weights(everyone).numpy()
        episode_seeds = rng.integers(0, 2**31 - 1, size=len(everyone))
        fitness_all = evaluator(weights, episode_seeds, g)
        evaluations += len(everyone) * getattr(task, "episodes", 1)

        all_ids = ids + kid_ids
        if config.selection_fitness == "mean":
            for i, f in zip(all_ids, fitness_all):
                history.setdefault(i, []).append(float(f))
                del history[i][:-config.fitness_window]
            judged = np.array([np.mean(history[i]) for i in all_ids])
        else:
            judged = np.asarray(fitness_all, dtype=np.float64)
        parent_fit, child_fit = judged[:P], judged[P:].reshape(P, C)
        parent_score = (1 - cf) * parent_fit + cf * child_fit.mean(axis=1)
        scores_all = np.concatenate([parent_score, child_fit.ravel()])
        # Default: ties go to the newest (children, then later children), as in the reference code's
        # ascending sort + take-the-last-P: on a fitness plateau the population keeps drifting
        # neutrally instead of freezing, which keeps variation alive for the next shock.
        keep = truncation(scores_all, P, config.tie_break, tie_rng)
        if history:
            survivors = {all_ids[i] for i in keep}
            history = {i: h for i, h in history.items() if i in survivors}
        pop, ids, scores = everyone[keep], [all_ids[i] for i in keep], scores_all[keep]

        log = GenerationLog(gen=g, best=float(fitness_all.max()), mean=float(fitness_all.mean()),
                            median=float(np.median(fitness_all)),
                            rate_mean=float(stats["rate"].mean()), std_mean=float(stats["std"].mean()),
                            diversity=diversity(pop.numpy()),
                            switch_on=bool(task.schedule.active(g)) if hasattr(task, "schedule") else False,
                            wall_s=time.perf_counter() - t0, elite_id=int(ids[0]))
        logs.append(log)
        if on_generation is not None:
            on_generation(log)
        if should_stop is not None and should_stop(log, pop[0].numpy()):
            break

    parent_of = {i: p for i, p, _ in lineage}
    return EvolutionResult(generations=logs, champion=pop[0].numpy().copy(), champion_id=ids[0],
                           champion_parent=parent_of.get(ids[0]), champion_fitness=float(scores[0]),
                           population=pop.numpy().copy(), population_ids=ids, lineage=lineage,
                           evaluations=evaluations)
