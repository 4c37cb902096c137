"""A champion on day one: distil the robot's existing controller into an SR-GHN.

A user who brings a robot already has a controller that drives it. A recording of that controller
(joint states in, commands out) is a supervised data set: fit the policy network to it by regression,
write the fitted network into an SR-GHN's deterministic head (`sim.model_seed.write_policy_into_head`,
the way the shipped cartpole champion and the adaptation's model seed are made), and the result is an
SR-GHN like any other: its stochastic head lets adaptation evolve it when the robot drifts.

    Demonstration (plant-ordered q, qdot, command per tick)
        -> observation: the runtime's own map (`sim.observation.make_observation_map`)
        -> split ticks in contiguous blocks: train / validation (early stopping) / test (reported)
        -> torch regression of the PolicySpec MLP (tanh hidden, linear out), every weight kept inside
           the genome clamp so that the head can write it exactly
        -> written into an SR-GHN head, decoded back and checked
        -> closed-loop return on the simulated robot vs the incumbent's, same episode seeds
        -> optional: a few generations of SR-GHN evolution on the plant's objective

Why blocks, not random ticks: neighbouring ticks are nearly the same sample; a random split would
test on the training data's twins and report a fit error that means nothing.

Why a one-sided error at the command limits: a recorded command at its limit says only "at least
this much" (the incumbent clipped it); the network is penalised only for falling short of it.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from sim.genome import Genome
from sim.model_seed import VALUE_LIMIT, write_policy_into_head
from sim.policy import PolicySpec

DEFAULT_HIDDEN = (32, 32)          # the policy shape every plant's champion uses (sim.plant_task)
BASE_SRGHN = {"update_clip": 0.1}  # SR-GHN config of a fresh base: what `train-nominal` evolves with


class DistillError(ValueError):
    """Bad input for distillation; `field` names the option or field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Demonstration:
    """Paired ticks of an incumbent controller: the joint state (plant joint order) and the command
    the incumbent sent after it. `rewards` are the recorded rewards (any count; None: none recorded),
    `source` says where the ticks came from (bag, topics, counts)."""

    positions: np.ndarray
    velocities: np.ndarray
    commands: np.ndarray
    stamps: np.ndarray
    rewards: np.ndarray | None = None
    source: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.commands)


@dataclass(frozen=True)
class DistillConfig:
    """Fit, evaluation and refinement settings (all seeded)."""

    hidden: tuple[int, ...] = DEFAULT_HIDDEN
    seed: int = 0
    val_fraction: float = 0.15       # early stopping
    test_fraction: float = 0.15      # the reported fit error
    block_ticks: int = 50            # split unit (0.5 s of the cartpole)
    min_ticks: int = 200
    max_rounds: int = 60             # L-BFGS rounds, a validation check after each
    iters_per_round: int = 20
    patience: int = 6                # rounds without a better validation error
    episodes: int = 20               # closed-loop episodes (seeds eval_seed, eval_seed + 1, ...)
    horizon: int = 300
    eval_seed: int = 10_000
    refine_generations: int = 0
    workers: int = 1

    def __post_init__(self) -> None:
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise DistillError("--hidden", f"hidden widths must be positive integers, got {self.hidden}")
        if not (0 < self.val_fraction < 0.5 and 0 < self.test_fraction < 0.5):
            raise DistillError("--holdout", "validation and test fractions must be in (0, 0.5)")
        for name in ("block_ticks", "min_ticks", "max_rounds", "iters_per_round", "patience", "episodes",
                     "horizon", "workers"):
            if int(getattr(self, name)) < 1:
                raise DistillError(f"--{name.replace('_', '-')}", f"must be a positive integer, got "
                                   f"{getattr(self, name)}")
        if self.refine_generations < 0:
            raise DistillError("--refine-generations", f"must be >= 0, got {self.refine_generations}")


# ---------------------------------------------------------------------- data

def observations(plant_name: str, positions: np.ndarray, velocities: np.ndarray) -> np.ndarray:
    """The policy observation of every tick, computed by the controller runtime's own map."""
    from sim.observation import make_observation_map
    obs_map = make_observation_map(plant_name)
    return np.array([obs_map(q, v) for q, v in zip(positions, velocities)], dtype=np.float64)


def split_ticks(n: int, block: int, val: float, test: float, seed: int) -> tuple[np.ndarray, ...]:
    """(train, validation, test) tick indices: whole blocks of `block` ticks, drawn with `seed`."""
    n_blocks = math.ceil(n / block)
    n_val, n_test = max(1, round(val * n_blocks)), max(1, round(test * n_blocks))
    if n_blocks - n_val - n_test < 1:
        raise DistillError("--min-ticks", f"{n} ticks make {n_blocks} blocks of {block}: too few for a train, "
                           "validation and test split")
    order = np.random.default_rng(seed).permutation(n_blocks)
    parts = order[:n_val], order[n_val:n_val + n_test], order[n_val + n_test:]
    ticks = [np.sort(np.concatenate([np.arange(b * block, min(n, (b + 1) * block)) for b in p])) for p in parts]
    return ticks[2], ticks[0], ticks[1]


# ---------------------------------------------------------------------- the fit

@dataclass
class Fit:
    tensors: list[np.ndarray]        # [W1, b1, ..., Wout, bout], float64, inside the genome clamp
    rounds: int
    best_round: int
    train_loss: float
    val_loss: float
    wall_s: float


def fit_policy(spec: PolicySpec, obs: np.ndarray, commands: np.ndarray, train: np.ndarray, val: np.ndarray,
               cfg: DistillConfig) -> Fit:
    """Least squares (one-sided at the command limits) of the MLP on `train` by full-batch L-BFGS in
    float32 (the precision the runtime computes in), early-stopped on `val`; every weight is clamped
    into the genome's range after each round. Starts from `sim.policy.init_policy(spec, seed)` and
    runs on one thread: no torch random state, no thread-count-dependent reductions, so the same
    data and seed give the same weights."""
    import torch

    from sim.policy import init_policy

    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        flat = init_policy(spec, cfg.seed)
        params = [torch.tensor(flat[off:off + int(np.prod(shape))].reshape(shape), requires_grad=True)
                  for _, off, shape in spec.offsets()]
        x = torch.as_tensor(obs, dtype=torch.float32)
        y = torch.as_tensor(commands, dtype=torch.float32)
        lo, hi = float(spec.act_low), float(spec.act_high)
        at_hi, at_lo = y >= hi - 1e-6, y <= lo + 1e-6
        tr, va = torch.as_tensor(train), torch.as_tensor(val)

        def loss(idx: torch.Tensor) -> torch.Tensor:
            h = x[idx]
            for i in range(0, len(params), 2):
                h = h @ params[i].T + params[i + 1]
                if i < len(params) - 2:
                    h = torch.tanh(h)
            err = h - y[idx]
            err = torch.where(at_hi[idx], torch.clamp(err, max=0.0), err)
            err = torch.where(at_lo[idx], torch.clamp(err, min=0.0), err)
            return (err ** 2).mean()

        def lbfgs() -> torch.optim.LBFGS:
            return torch.optim.LBFGS(params, lr=1.0, max_iter=cfg.iters_per_round, history_size=20,
                                     line_search_fn="strong_wolfe")
        opt = lbfgs()

        def closure() -> torch.Tensor:
            opt.zero_grad()
            value = loss(tr)
            value.backward()
            return value

        best = (math.inf, 0, [p.detach().clone() for p in params])
        since, rnd = 0, 0
        last = math.inf
        for rnd in range(1, cfg.max_rounds + 1):
            now = float(opt.step(closure).detach())
            if not now < last * (1 - 1e-6):
                opt = lbfgs()       # a stalled L-BFGS (stale curvature pairs) starts afresh
            last = now
            with torch.no_grad():
                for p in params:
                    p.clamp_(-VALUE_LIMIT, VALUE_LIMIT)      # what the SR-GHN head can write
                v = float(loss(va))
            if not math.isfinite(v):
                break
            if v < best[0] * (1 - 1e-3):
                best, since = (v, rnd, [p.detach().clone() for p in params]), 0
            else:
                since += 1
                if since >= cfg.patience:
                    break
        with torch.no_grad():
            for p, b in zip(params, best[2]):
                p.copy_(b)
            train_loss = float(loss(tr))
        tensors = [p.detach().numpy().astype(np.float64) for p in params]
    finally:
        torch.set_num_threads(threads)
    return Fit(tensors, rnd, best[1], train_loss, best[0], time.perf_counter() - t0)


def fit_error(spec: PolicySpec, weights: np.ndarray, obs: np.ndarray, commands: np.ndarray) -> dict:
    """RMSE per command channel of the policy (clipped, as the runtime sends it) on these ticks, and
    relative to each channel's spread (standard deviation of the recorded commands)."""
    from sim.policy import policy_act
    pred = policy_act(spec, np.asarray(weights, np.float32)[None], obs[None].astype(np.float32))[0]
    rmse = np.sqrt(np.mean((pred - commands) ** 2, axis=0))
    return {"rmse": [float(r) for r in rmse], "ticks": int(len(commands))}


# ---------------------------------------------------------------------- genome

def base_srghn(spec: PolicySpec, seed: int) -> Genome:
    """A fresh SR-GHN for `spec` (self graph, stochastic head and basis as initialised with `seed`)."""
    from sim.srghn import SRGHN, SRGHNConfig
    cfg = SRGHNConfig(**BASE_SRGHN)
    vec = SRGHN(spec, cfg).init_genomes(1, seed)[0].numpy()
    return Genome(vector=vec, policy_spec=spec, kind="srghn", model=cfg.to_dict())


def to_genome(base: Genome, tensors: list[np.ndarray], note: str) -> Genome:
    """`tensors` written into `base`'s deterministic head; refused unless the head decodes them back."""
    from sim.srghn_decode import genome_policy_weights
    g = write_policy_into_head(base, tensors, note)
    want = np.concatenate([t.reshape(-1) for t in tensors]).astype(np.float32)
    err = float(np.abs(genome_policy_weights(g) - want).max())
    if not err <= 1e-5 * max(1.0, float(np.abs(want).max())):
        raise RuntimeError(f"the SR-GHN head decodes the distilled policy with error {err:.3g}")
    return g


# ---------------------------------------------------------------------- closed loop

def closed_loop_returns(plant_name: str, make_controller: Callable[[], Callable[[np.ndarray], np.ndarray]],
                        seeds: Sequence[int], horizon: int) -> np.ndarray:
    """Return of each episode (plant reset with its seed, `horizon` ticks, no reward after a fall,
    as `sim.plant_task.PlantTask` counts it). `make_controller()` is called once per episode."""
    from sim.plants import make_plant
    plant = make_plant(plant_name)
    out = np.zeros(len(seeds))
    for i, s in enumerate(seeds):
        ctrl = make_controller()
        obs = plant.reset(int(s))
        alive = True
        for _ in range(int(horizon)):
            obs, r = plant.act(np.asarray(ctrl(obs), dtype=np.float64))
            alive = alive and not bool(plant.fallen_batch(obs[None])[0])
            out[i] += r if alive else 0.0
    return out


def policy_controller(genome: Genome) -> Callable[[], Callable[[np.ndarray], np.ndarray]]:
    """The genome's policy as the gate evaluates it (`sim.policy.BoundPolicy`, float32 weights from the
    one decoder; the live tick's `CompiledPolicy` computes the same)."""
    from sim.policy import BoundPolicy
    from sim.srghn_decode import genome_policy_weights
    policy = BoundPolicy(genome.policy_spec, genome_policy_weights(genome)[None])
    return lambda: (lambda obs: policy.act(np.asarray(obs)[None])[0].astype(np.float64))


def nominal_controller(plant_name: str) -> Callable[[], Callable[[np.ndarray], np.ndarray]] | None:
    """The plant's own nominal controller, fresh per episode (None when the plant has none)."""
    from sim.plants import make_plant
    plant = make_plant(plant_name)
    try:
        plant.nominal_controller()
    except NotImplementedError:
        return None

    def make():
        ctrl = plant.nominal_controller()
        if hasattr(ctrl, "reset"):
            ctrl.reset()
        return ctrl
    return make


# ---------------------------------------------------------------------- refinement

def refine(genome: Genome, plant_name: str, generations: int, seed: int, horizon: int, workers: int = 1,
           on_generation=None) -> tuple[Genome, list[float]]:
    """`generations` of SR-GHN evolution on the plant's objective from the distilled genome (the entry
    point `train-nominal` uses). Returns the elite and the best return per generation."""
    from sim.evaluate import make_evaluator
    from sim.evolution import EvolutionConfig, evolve_srghn
    from sim.plant_task import PlantTask
    from sim.srghn import SRGHNConfig
    task = PlantTask(plant_name, horizon=horizon, hidden=genome.policy_spec.hidden)
    cfg = SRGHNConfig(**(genome.model or {}))
    with make_evaluator(task, workers=workers) as evaluator:
        res = evolve_srghn(task, evaluator, generations, seed, EvolutionConfig(), cfg,
                           initial=genome.vector[None], on_generation=on_generation)
    g = Genome(vector=res.champion, policy_spec=genome.policy_spec, kind="srghn", model=genome.model,
               generation=generations, drift_hash=genome.drift_hash)
    return g, [lg.best for lg in res.generations]


# ---------------------------------------------------------------------- the whole distillation

@dataclass
class DistillResult:
    genome: Genome
    report: dict


def _stats(x: np.ndarray) -> dict:
    return {"mean": float(np.mean(x)), "median": float(np.median(x)), "min": float(np.min(x)),
            "max": float(np.max(x)), "episodes": [float(v) for v in x]}


def distill(demo: Demonstration, plant_name: str, cfg: DistillConfig = DistillConfig(), *,
            base: Genome | None = None, incumbent: str | Callable = "auto", progress: Callable[[str], None] | None = None
            ) -> DistillResult:
    """Fit, write, evaluate (and optionally refine) a champion from `demo`. See the module docstring.

    `incumbent`: "nominal" re-simulates the plant's nominal controller on the same seeds, "recorded"
    compares with the recorded mean reward per tick, "none" skips it, "auto" is nominal for the
    built-in plants, else recorded where the bag has rewards; a callable is a factory of the incumbent
    controller (one per episode; its `how` attribute, if any, describes it in the report)."""
    from sim.drift_spec import DriftSpec
    from sim.plant_task import plant_policy_spec
    from sim.srghn_decode import genome_policy_weights

    say = progress or (lambda s: None)
    t0 = time.perf_counter()
    if not callable(incumbent) and incumbent not in ("auto", "nominal", "recorded", "none"):
        raise DistillError("--incumbent", f"must be auto, nominal, recorded or none, got {incumbent!r}")
    try:
        spec = plant_policy_spec(plant_name, cfg.hidden)
    except (ValueError, OSError) as e:
        raise DistillError("--robot", str(e)) from None
    if len(demo) < cfg.min_ticks:
        raise DistillError("BAG", f"{len(demo)} paired ticks (joint state + command); distillation needs at "
                           f"least {cfg.min_ticks} (--min-ticks)")
    if demo.commands.shape[1] != spec.act_dim:
        raise DistillError("--command-topic", f"commands have {demo.commands.shape[1]} values; plant "
                           f"{plant_name!r} takes {spec.act_dim}")
    if base is not None:
        if base.kind != "srghn" or base.policy_spec != spec:
            raise DistillError("--base", f"base genome must be an SR-GHN for policy {spec}, got a {base.kind!r} "
                               f"genome for {base.policy_spec}")
    else:
        base = base_srghn(spec, cfg.seed)
    try:
        obs = observations(plant_name, demo.positions, demo.velocities)
    except ValueError as e:      # e.g. a floating base: the runtime cannot observe it from joints alone
        raise DistillError("--robot", str(e)) from None
    train, val, test = split_ticks(len(demo), cfg.block_ticks, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    say(f"distilling {demo.source.get('command_topic', 'commands')} from "
        f"{demo.source.get('joint_state_topic', 'joint states')} ({len(demo)} paired ticks) for {plant_name}")
    say(f"fitting {spec.num_params} weights on {len(train)} ticks (validation {len(val)}, test {len(test)})")
    fit = fit_policy(spec, obs, demo.commands, train, val, cfg)
    note = f"distilled from {demo.source.get('bag', 'a recording')}"
    genome = to_genome(base, fit.tensors, note)
    weights = genome_policy_weights(genome)
    spread = np.std(demo.commands, axis=0)
    err = fit_error(spec, weights, obs[test], demo.commands[test])
    err["spread"] = [float(s) for s in spread]
    err["relative"] = [float(r / s) if s > 0 else None for r, s in zip(err["rmse"], spread)]
    err["train_rmse"] = fit_error(spec, weights, obs[train], demo.commands[train])["rmse"]

    seeds = list(range(cfg.eval_seed, cfg.eval_seed + cfg.episodes))
    say(f"closed loop: {cfg.episodes} episodes of {cfg.horizon} ticks")
    distilled = closed_loop_returns(plant_name, policy_controller(genome), seeds, cfg.horizon)
    if callable(incumbent):
        nominal, how = incumbent, getattr(incumbent, "how", "the given controller, simulated on the same seeds")
    else:
        from sim.plants import PLANTS
        # a robot profile's "nominal controller" only holds the safe command: auto never compares with it
        auto_nominal = incumbent == "auto" and plant_name in PLANTS
        nominal = nominal_controller(plant_name) if incumbent == "nominal" or auto_nominal else None
        how = "the plant's nominal controller, re-simulated on the same seeds"
    if incumbent == "nominal" and nominal is None:
        raise DistillError("--incumbent", f"plant {plant_name!r} has no nominal controller to re-simulate")
    closed: dict = {"seeds": seeds, "horizon": cfg.horizon, "distilled": _stats(distilled)}
    recorded = None if demo.rewards is None or not len(demo.rewards) else float(np.mean(demo.rewards))
    closed["recorded_reward_per_tick"] = recorded
    closed["distilled_reward_per_tick"] = float(np.mean(distilled) / cfg.horizon)
    if nominal is not None:
        inc = closed_loop_returns(plant_name, nominal, seeds, cfg.horizon)
        closed["incumbent"] = {"how": how, **_stats(inc)}
        closed["ratio"] = float(np.mean(distilled) / np.mean(inc)) if np.mean(inc) > 0 else None
    elif incumbent != "none" and recorded is not None:
        closed["incumbent"] = {"how": "recorded reward per tick x horizon (the bag's own run, not these seeds)",
                               "mean": recorded * cfg.horizon}
        closed["ratio"] = float(np.mean(distilled) / (recorded * cfg.horizon)) if recorded > 0 else None
    else:
        closed["incumbent"], closed["ratio"] = None, None

    refined = None
    if cfg.refine_generations:
        say(f"refining: {cfg.refine_generations} generations of SR-GHN evolution")
        child, curve = refine(genome, plant_name, cfg.refine_generations, cfg.seed, cfg.horizon, cfg.workers)
        ret = closed_loop_returns(plant_name, policy_controller(child), seeds, cfg.horizon)
        refined = {"generations": cfg.refine_generations, "best_per_generation": curve, **_stats(ret),
                   "distilled_id": genome.id}
        closed["refined"] = _stats(ret)
        if closed.get("incumbent") and closed["incumbent"].get("mean", 0) > 0:
            closed["refined_ratio"] = float(np.mean(ret) / closed["incumbent"]["mean"])
        final, final_ret = child, ret
    else:
        final, final_ret = genome, distilled

    report = {
        "plant": plant_name, "source": demo.source, "ticks": len(demo),
        "split": {"train": int(len(train)), "validation": int(len(val)), "test": int(len(test)),
                  "block_ticks": cfg.block_ticks, "seed": cfg.seed},
        "fit": {"rounds": fit.rounds, "best_round": fit.best_round, "train_loss": fit.train_loss,
                "val_loss": fit.val_loss, "wall_s": fit.wall_s},
        "fit_error": err, "closed_loop": closed, "refined": refined,
        "policy": {"obs_dim": spec.obs_dim, "act_dim": spec.act_dim, "hidden": list(spec.hidden)},
        "wall_s": time.perf_counter() - t0,
    }
    fitness = {"source": "distilled" if refined is None else "distilled + refined",
               "bag": str(demo.source.get("bag", "")), "nominal_return": float(np.mean(final_ret)),
               "horizon": cfg.horizon, "fit_rmse": err["rmse"], "fit_relative": err["relative"],
               "incumbent_ratio": closed.get("refined_ratio" if refined else "ratio")}
    if refined is not None:
        fitness["distilled_id"] = genome.id
    final = final.with_lineage(parent_id=None, generation=final.generation, drift_hash=DriftSpec().hash,
                               fitness=fitness)
    report["genome_id"] = final.id
    return DistillResult(final, report)
