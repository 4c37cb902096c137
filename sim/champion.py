"""Nominal champions: the controller every adaptation starts from, made by `train-nominal`.

    start "model":   the plant's own model-based controller (its nominal LQR, designed on the
                     nominal model: the cart-pole's balance LQR, the walker's stance-and-squat LQR
                     with its gravity feed-forward) imitated on simulated rollouts and written into
                     an SR-GHN's deterministic head: the *model seed*. The fit is `sim.distill`'s
                     (L-BFGS regression, every weight inside the genome clamp) and the writing is
                     `sim.model_seed.write_policy_into_head`; the rollouts add noise to the applied
                     command so that the recording also shows how to recover from errors.
    start "scratch": a random SR-GHN (robots without a model-based controller: profile robots).

then `generations` of SR-GHN evolution on the plant's objective from that start. The champion is
whichever of the start and the evolved elite returns more on validation episodes (seeds disjoint
from the held-out benchmark seeds, `HELD_OUT_SEED`), so evolution can only add to the seed.

Why a model seed and not evolution from scratch: on the walker, 60 generations from a random
SR-GHN gave a champion of 121-231 of 300 (issue 15); a stance LQR exists for it, so a champion
that already stands is one regression away.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from sim.drift_spec import DriftSpec
from sim.genome import Genome

STARTS = ("auto", "model", "scratch")
HELD_OUT_SEED = 10_000      # benchmark episodes (as sim.distill's eval_seed): never used to make a champion
VALIDATION_SEED = 50_000    # episodes that pick between the seed and the evolved elite
VALIDATION_EPISODES = 10


def has_model_controller(plant_name: str) -> bool:
    """Whether the plant has a model-based nominal controller (a profile robot's only holds the
    safe command, which is nothing to imitate)."""
    from sim.plants import PLANTS, make_plant
    if plant_name not in PLANTS:
        return False
    try:
        make_plant(plant_name).nominal_controller()
    except NotImplementedError:
        return False
    return True


def record_nominal(plant_name: str, episodes: int, horizon: int, seed: int,
                   action_noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(observations, commands) of the plant's nominal controller over `episodes` simulated episodes
    of the nominal plant. The command recorded is the controller's; the one applied carries
    N(0, action_noise) noise, so the data also covers the states the noise pushes it into."""
    from sim.plants import make_plant
    plant = make_plant(plant_name, seed=seed)
    ctrl = plant.nominal_controller()
    rng = np.random.default_rng([int(seed), 17])
    obs_rows, cmd_rows = [], []
    for e in range(int(episodes)):
        if hasattr(ctrl, "reset"):
            ctrl.reset()
        obs = plant.reset(int(seed) * 1000 + e)
        for _ in range(int(horizon)):
            u = np.asarray(ctrl(obs), dtype=np.float64)
            obs_rows.append(obs.copy())
            cmd_rows.append(u.copy())
            applied = np.clip(u + action_noise * rng.standard_normal(u.shape), plant.act_low, plant.act_high)
            obs, _ = plant.act(applied)
    return np.array(obs_rows), np.array(cmd_rows)


def record_on_policy(plant_name: str, genome: Genome, episodes: int, horizon: int, seed: int,
                     action_noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(observations, nominal controller's commands) in the states the imitating policy `genome`
    drives the plant into: its command (+ N(0, action_noise)) is applied, the nominal controller's is
    recorded. One round of DAgger (Ross et al. 2011): an imitation trained only on the teacher's own
    states meets, once it drives, states the teacher never visits, and errs there with nothing to
    learn from; the reacher's first imitation kept 18 of 279 per episode that way."""
    from sim.distill import policy_controller
    from sim.plants import make_plant
    plant = make_plant(plant_name, seed=seed)
    teacher = plant.nominal_controller()
    student = policy_controller(genome)()
    rng = np.random.default_rng([int(seed), 23])
    obs_rows, cmd_rows = [], []
    for e in range(int(episodes)):
        if hasattr(teacher, "reset"):
            teacher.reset()
        obs = plant.reset(int(seed) * 1000 + e)
        for _ in range(int(horizon)):
            obs_rows.append(obs.copy())
            cmd_rows.append(np.asarray(teacher(obs), dtype=np.float64).copy())
            u = np.asarray(student(obs), dtype=np.float64)
            obs, _ = plant.act(np.clip(u + action_noise * rng.standard_normal(u.shape), plant.act_low, plant.act_high))
    return np.array(obs_rows), np.array(cmd_rows)


def model_based_seed(plant_name: str, seed: int = 0, episodes: int = 8, horizon: int = 300,
                     hidden: tuple[int, ...] = (32, 32), model: dict | None = None,
                     dagger: int = 0) -> tuple[Genome, dict]:
    """The plant's nominal controller in an SR-GHN head (see the module docstring), with a report
    (ticks, held-out fit error, wall time). `dagger` > 0: that many rounds of `record_on_policy`
    (`episodes` each) added to the data and refitted; the seed is then the round that returns most
    on the validation episodes (round 0 is the plain imitation), so the rounds can only help."""
    from sim.distill import DistillConfig, fit_error, fit_policy, split_ticks, to_genome
    from sim.plant_task import plant_policy_spec
    from sim.srghn import SRGHN, shipped_config
    from sim.srghn_decode import genome_policy_weights

    if int(dagger) < 0:
        raise ValueError(f"--dagger: must be >= 0, got {dagger}")
    t0 = time.perf_counter()
    spec = plant_policy_spec(plant_name, hidden)
    obs, commands = record_nominal(plant_name, episodes, horizon, seed)
    cfg = DistillConfig(hidden=tuple(hidden), seed=seed)
    mcfg = shipped_config(**(model or {"update_clip": 0.1}))
    base = Genome(vector=SRGHN(spec, mcfg).init_genomes(1, seed)[0].numpy(), policy_spec=spec, kind="srghn",
                  model=mcfg.to_dict())
    best, rounds = None, []
    for r in range(int(dagger) + 1):
        if r:
            more_obs, more_cmd = record_on_policy(plant_name, genome, episodes, horizon, int(seed) + 7919 * r)
            obs, commands = np.concatenate([obs, more_obs]), np.concatenate([commands, more_cmd])
        train, val, test = split_ticks(len(obs), cfg.block_ticks, cfg.val_fraction, cfg.test_fraction, seed)
        fit = fit_policy(spec, obs, commands, train, val, cfg)
        genome = to_genome(base, fit.tensors, f"model seed: {plant_name}'s nominal controller, imitated"
                           + (f" (DAgger round {r})" if dagger else ""))
        err = fit_error(spec, genome_policy_weights(genome), obs[test], commands[test])
        report = {"ticks": int(len(obs)), "fit_rmse_test": err["rmse"], "fit_rounds": fit.rounds}
        if dagger:
            report["validation_return"] = validation_return(plant_name, genome, horizon)
            rounds.append({"round": r, **report})
            if best is None or report["validation_return"] > best[1]["validation_return"]:
                best = (genome, report)
        else:
            best = (genome, report)
    genome, report = best
    if dagger:
        report = {**report, "dagger_rounds": rounds}
    return genome, {**report, "wall_s": time.perf_counter() - t0}


def validation_return(plant_name: str, genome: Genome, horizon: int, episodes: int = VALIDATION_EPISODES,
                      first_seed: int = VALIDATION_SEED) -> float:
    """Mean return on `episodes` episodes with seeds first_seed, first_seed + 1, ... (no reward after a
    fall, as the tasks count it), the controller as the runtime runs it."""
    from sim.distill import closed_loop_returns, policy_controller
    seeds = list(range(first_seed, first_seed + episodes))
    return float(np.mean(closed_loop_returns(plant_name, policy_controller(genome), seeds, horizon)))


def train_nominal(plant: str, generations: int = 60, seed: int = 0, horizon: int = 300,
                  on_generation: Callable | None = None, workers: int = 1, start: str = "auto",
                  on_stage: Callable[[str], None] | None = None, backend: str = "local",
                  address: str | None = None, dagger: int = 0) -> Genome:
    """A nominal champion for `plant`: the start (model seed or random) + SR-GHN evolution, the
    better of the two on validation episodes. `generations` may be 0 (the start alone).
    `backend` "ray" evaluates the population on a Ray cluster (`address`, else RAY_ADDRESS, else a
    local Ray of `workers` CPUs); rows are evaluated independently, so the champion is the same.
    `dagger`: rounds of on-policy relabelling of the model seed (`model_based_seed`)."""
    from sim.evaluate import make_evaluator
    from sim.evolution import EvolutionConfig, evolve_srghn
    from sim.plant_task import PlantTask
    from sim.srghn import SRGHNConfig, shipped_config

    if start not in STARTS:
        raise ValueError(f"--start: must be one of {', '.join(STARTS)}, got {start!r}")
    if int(generations) < 0:
        raise ValueError(f"--generations: must be >= 0, got {generations}")
    if int(dagger) and (start == "scratch" or not has_model_controller(plant)):
        raise ValueError(f"--dagger: relabels the model seed; {'--start scratch' if start == 'scratch' else plant} "
                         "has none (a plant's own model-based controller)")
    say = on_stage or (lambda s: None)
    t0 = time.perf_counter()
    use_model = start == "model" or (start == "auto" and has_model_controller(plant))
    if start == "model" and not has_model_controller(plant):
        raise ValueError(f"--start model: plant {plant!r} has no model-based nominal controller")
    task = PlantTask(plant, horizon=horizon)
    seed_report = None
    if use_model:
        say("model seed: imitating the nominal controller")
        first, seed_report = model_based_seed(plant, seed, horizon=horizon, hidden=task.policy.hidden,
                                              dagger=dagger)
        cfg = SRGHNConfig(**first.model)
        initial = first.vector[None]
    else:
        cfg = shipped_config(update_clip=0.1)
        first, initial = None, None
    res = None
    if generations:
        say(f"evolving {generations} generations")
        with make_evaluator(task, workers=workers, backend=backend, address=address,
                            metadata={"requester": "train-nominal", "seed": int(seed)}) as evaluator:
            res = evolve_srghn(task, evaluator, int(generations), seed, EvolutionConfig(), cfg, initial=initial,
                               on_generation=on_generation)
    elif first is None:
        raise ValueError("--generations: 0 generations from scratch make no champion")
    evolved = None if res is None else Genome(vector=res.champion, policy_spec=task.policy, kind="srghn",
                                              model=cfg.to_dict())
    say("validating")
    scored = [(g, validation_return(plant, g, horizon), name) for g, name in ((evolved, "evolved"), (first, "seed"))
              if g is not None]
    best, val_return, who = max(scored, key=lambda t: t[1])     # ties: the evolved one (listed first)
    depth = res.lineage_depth() if (res is not None and who == "evolved") else 0
    fitness = {"nominal_return": val_return, "horizon": horizon,
               "source": ("model seed" if use_model else "random SR-GHN") +
                         (f" ({dagger} DAgger rounds)" if use_model and dagger else "") +
                         (f" + {generations} generations of SR-GHN evolution" if generations else ""),
               "winner": who, "lineage_depth": int(depth),
               "validation": {"episodes": VALIDATION_EPISODES, "first_seed": VALIDATION_SEED,
                              **{name: r for _, r, name in scored}},
               "best_per_generation": [] if res is None else res.best_per_generation,
               "wall_s": time.perf_counter() - t0, "backend": backend, "workers": int(workers)}
    if seed_report is not None:
        fitness["model_seed"] = seed_report
    return Genome(vector=best.vector, policy_spec=task.policy, kind="srghn", model=cfg.to_dict(),
                  generation=int(generations), drift_hash=DriftSpec().hash, fitness=fitness)
