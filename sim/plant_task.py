"""Robot plants as evolution tasks and as rollouts for the gate.

`PlantTask` gives a MuJoCo plant (sim.plants) the same `evaluate(weights, seeds, generation)`
interface as the Switch benchmarks, so the SR-GHN loop, the baselines and the worker pool run on a
drifted robot unchanged. An individual's fitness is its mean return over the task's list of
DriftSpecs (the sysid estimate, plus samples inside its uncertainty for domain randomisation) x
`episodes`. Every individual of a generation sees the SAME list of specs and derives its episode
seeds from its own seed, so fitnesses of one selection step always come from the same conditions
and never depend on which other individuals share the batch.

`evaluate` steps the whole batch together (`sim.plants.base.PlantBatch`: one MjData per individual,
direct `mujoco.mj_step`, observations, rewards and the policy forward batched in numpy) and returns
exactly, bit for bit, what stepping each individual's own plant with `Plant.act` returns
(`evaluate_reference`, kept as the reference; tests/test_fast_eval.py compares them).

`rollout` runs one policy for one episode and keeps what the safety gate judges: the return, the
actions (saturation, jerk), and the joint positions (state limits).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from sim.drift_spec import DriftSpec
from sim.envs.switch import SwitchSchedule
from sim.policy import BoundPolicy, PolicySpec, policy_act
from sim.profile.terms import OneRow, fields_of

if TYPE_CHECKING:
    from sim.plants.base import PlantBatch

DEFAULT_HORIZON = 300
_plant_cache: dict[str, list] = {}
_batch_cache: "OrderedDict[tuple[str, int], PlantBatch]" = OrderedDict()
BATCH_CACHE_SIZE = 4  # a MjData reserves ~13 MB of address space (the sandbox limits it): bounded


def plant_policy_spec(plant_name: str, hidden: Sequence[int] = (32, 32)) -> PolicySpec:
    """The MLP shape that drives `plant_name`: its observation in, its actuators out, clipped to ±1."""
    from sim.plants import make_plant
    plant = make_plant(plant_name)
    return PolicySpec(obs_dim=plant.obs_dim, act_dim=plant.act_dim, hidden=tuple(hidden), discrete=False,
                      act_low=float(np.max(plant.act_low)), act_high=float(np.min(plant.act_high)))


def _plants(name: str, n: int) -> list:
    """Per-process cache of plant instances (building a dm_control Physics costs milliseconds)."""
    from sim.plants import make_plant
    cache = _plant_cache.setdefault(name, [])
    while len(cache) < n:
        cache.append(make_plant(name))
    return cache[:n]


def _plant_batch(name: str, size: int, extra_fields: tuple[str, ...] = ()) -> PlantBatch:
    """Per-process cache of the last few `PlantBatch`es used (by plant, batch size and the extra
    MjData fields a task's objective reads), each with a plant of its own (not shared with `rollout`)."""
    from sim.plants import make_plant
    from sim.plants.base import PlantBatch
    key = (name, size, tuple(extra_fields))
    if key in _batch_cache:
        _batch_cache.move_to_end(key)
    else:
        _batch_cache[key] = PlantBatch(make_plant(name), size, extra_fields)
        while len(_batch_cache) > BATCH_CACHE_SIZE:
            _batch_cache.popitem(last=False)
    return _batch_cache[key]


def adapt_objective_source(robot: str) -> str | None:
    """The robot profile whose ``adapt_objective`` an adaptation job on `robot` evolves on: `robot`
    itself when it is a profile file, else the shipped profile of that name (a built-in plant's
    twin, launch/robots/NAME.yaml); None when that profile names no adapt_objective (or there is none)."""
    from sim.plants import is_profile
    from sim.profile import builtin_profiles, find_profile, load_profile
    if is_profile(robot):
        path = find_profile(robot)
    elif robot in builtin_profiles():
        path = builtin_profiles()[robot]
    else:
        return None
    return str(path) if load_profile(path).doc.adapt_objective is not None else None


_objective_cache: dict[tuple[str, str], Callable] = {}


def objective_score(source: str, plant_name: str) -> Callable:
    """The ``adapt_objective`` of profile `source` as a batched reward fn(model, frames, constants)
    on plant `plant_name` (cached per process). Its indices are resolved on the profile's model, so
    that model must be the plant's (a built-in's shipped twin is the same MJCF)."""
    key = (str(source), str(plant_name))
    if key not in _objective_cache:
        from sim.plants import make_plant
        from sim.profile import find_profile, load_profile
        from sim.profile.objective import adapt_reward_function
        profile = load_profile(find_profile(source))
        fn = adapt_reward_function(profile)
        if fn is None:
            raise ValueError(f"objective: profile {source} names no adapt_objective")
        a, b = profile.model, make_plant(plant_name).model
        if (a.nq, a.nv, a.nu, a.nbody, a.njnt) != (b.nq, b.nv, b.nu, b.nbody, b.njnt):
            raise ValueError(f"objective: profile {source}'s model is not plant {plant_name!r}'s "
                             f"(nq, nv, nu, nbody, njnt differ)")
        _objective_cache[key] = fn
    return _objective_cache[key]


def _episode_seed(seed: int, drift_index: int, episode: int) -> int:
    return int(np.random.SeedSequence([int(seed), drift_index, episode]).generate_state(1)[0])


@dataclass(frozen=True)
class PlantTask:
    """Evaluate flat policies on a (drifted) plant. Parameters: the plant name, the DriftSpecs to
    average over, episode length in control ticks, episodes per spec, and the policy's hidden widths."""

    plant: str
    drifts: tuple[DriftSpec, ...] = (DriftSpec(),)
    horizon: int = DEFAULT_HORIZON
    episodes: int = 1
    hidden: tuple[int, ...] = (32, 32)
    schedule: SwitchSchedule = field(default_factory=SwitchSchedule.never)
    stop_on_fall: bool = True      # no reward after the robot has fallen (`Plant.fallen`): the fitness
                                   # then agrees with the gate's hard limits instead of paying for a
                                   # pole that swings round and round
    start_cart_range: float | None = None   # cartpole only: wider start positions (None: the suite's)
    action_limits: "ActionLimits | None" = None  # the gate's limits on the commands as a fitness penalty
    starts: tuple = ()             # per drift (same length as `drifts`, or empty: none): qpos offsets
                                   # ((joint, offset), ...) added after each reset, as the gate's
                                   # initial_offset probe does (`sim.stress.offset_start`); () = plain start
    fall_factor: float = 1.0       # an episode in which the robot fell keeps this share of its return (the
                                   # gate fails a candidate on ONE fall: 0 in the confirmation)
    objective: str | None = None   # a robot profile whose adapt_objective scores each tick instead of the
                                   # plant's own reward (an adaptation job's fitness, `adapt_objective_source`)
    common_episodes: int | None = None   # None: each individual plays episodes of its own seed; an int c:
                                   # every individual of generation g plays the episodes of seed (c, g)
                                   # (common random numbers: on an objective where the start state moves
                                   # the return more than the controller does, selection then compares
                                   # controllers, not luck). Rows still never depend on the batch's makeup.

    def __post_init__(self) -> None:
        object.__setattr__(self, "drifts", tuple(DriftSpec.parse(d) for d in self.drifts) or (DriftSpec(),))
        if self.horizon < 1 or self.episodes < 1:
            raise ValueError(f"PlantTask: horizon and episodes must be >= 1, got {self.horizon}, {self.episodes}")
        object.__setattr__(self, "_policy", plant_policy_spec(self.plant, self.hidden))
        starts = tuple(tuple((str(j), float(v)) for j, v in st) for st in self.starts)
        if starts and len(starts) != len(self.drifts):
            raise ValueError(f"PlantTask: {len(starts)} starts for {len(self.drifts)} drifts (one per drift, or none)")
        object.__setattr__(self, "starts", starts)
        if not 0.0 <= float(self.fall_factor) <= 1.0:
            raise ValueError(f"PlantTask: fall_factor must be in [0, 1], got {self.fall_factor}")

    def _start(self, d: int):
        """The start hook of drift `d` (None: the plant's own start)."""
        if not self.starts or not self.starts[d]:
            return None
        from sim.stress import offset_start
        return offset_start(self.starts[d])

    @property
    def name(self) -> str:
        return f"plant:{self.plant}"

    @property
    def policy(self) -> PolicySpec:
        return self._policy

    def evaluate(self, weights: np.ndarray, seeds: np.ndarray, generation: int = 0) -> np.ndarray:
        """Mean return of each individual (rows of `weights`, one seed each) over drifts x episodes."""
        weights = np.asarray(weights, dtype=np.float32)
        n = len(weights)
        if n == 0:
            return np.zeros(0)
        if len(seeds) < n:
            raise ValueError(f"task {self.name!r}: {len(seeds)} seeds for {n} individuals")
        if weights.ndim != 2 or weights.shape[1] != self.policy.num_params:
            raise ValueError(f"policy weights have shape {weights.shape}, spec needs (n, {self.policy.num_params})")
        seeds = self._seeds(seeds, n, generation)
        score = self._score()
        batch = _plant_batch(self.plant, n, () if score is None else tuple(sorted(fields_of(score))))
        self._configure(batch.plant)
        act = BoundPolicy(self.policy, weights)
        total = np.zeros(n)
        limits = self.action_limits
        for d, drift in enumerate(self.drifts):
            batch.plant.apply_drift(drift)
            for e in range(self.episodes):
                obs = batch.reset([_episode_seed(seeds[i], d, e) for i in range(n)], start=self._start(d))
                alive = np.ones(n, dtype=bool)
                plain = limits is None and self.fall_factor == 1.0
                episode = total if plain else np.zeros(n)   # without limits: exactly the old sums
                actions = []
                for _ in range(self.horizon):
                    a = act(obs)
                    if limits is not None:
                        actions.append(np.array(a, copy=True))
                    obs, r = batch.act(a)
                    if score is not None:
                        r = score(batch.plant.model, batch.data, batch.constants)
                    if self.stop_on_fall:
                        alive &= ~batch.plant.fallen_batch(obs)
                        r = np.where(alive, r, 0.0)
                    episode += r
                if not plain:
                    total += self._episode_factors(episode, alive, actions)
        return self._fitness(total)

    def _episode_factors(self, episode: np.ndarray, alive: np.ndarray, actions: list) -> np.ndarray:
        """One episode's returns with the command-limit factors and the fall share applied."""
        out = episode if self.action_limits is None else episode * self.action_limits.factors(np.stack(actions))
        return np.where(alive, out, out * self.fall_factor) if self.fall_factor != 1.0 else out

    def evaluate_reference(self, weights: np.ndarray, seeds: np.ndarray, generation: int = 0) -> np.ndarray:
        """`evaluate` the slow, obvious way: one plant per individual, one `Plant.act` per tick (the
        reference the batched `evaluate` reproduces bit for bit)."""
        weights = np.asarray(weights, dtype=np.float32)
        n = len(weights)
        seeds = self._seeds(seeds, n, generation)
        plants = _plants(self.plant, n)
        for p in plants:
            self._configure(p)
        score = self._score()
        rows = None if score is None else [OneRow(p.data, fields_of(score)) for p in plants]
        total = np.zeros(n)
        for d, drift in enumerate(self.drifts):
            for e in range(self.episodes):
                obs = np.empty((n, self.policy.obs_dim))
                start = self._start(d)
                for i, p in enumerate(plants):
                    p.apply_drift(drift)
                    obs[i] = p.reset(_episode_seed(seeds[i], d, e))
                    if start is not None:
                        obs[i] = start(p)
                alive = np.ones(n, dtype=bool)
                limits = self.action_limits
                plain = limits is None and self.fall_factor == 1.0
                episode = total if plain else np.zeros(n)
                taken = []
                for _ in range(self.horizon):
                    actions = policy_act(self.policy, weights, obs)
                    taken.append(np.array(actions, copy=True))
                    for i, p in enumerate(plants):
                        obs[i], r = p.act(actions[i])
                        if score is not None:
                            r = float(score(p.model, rows[i], p.episode_constants()[None])[0])
                        alive[i] &= not p.fallen_batch(obs[i:i + 1])[0] if self.stop_on_fall else True
                        episode[i] += r if alive[i] else 0.0
                if not plain:
                    total += self._episode_factors(episode, alive, taken)
        return self._fitness(total)

    def _seeds(self, seeds, n: int, generation: int):
        """The individuals' episode seeds: their own, or with `common_episodes` one per generation for all."""
        if self.common_episodes is None:
            return seeds
        common = int(np.random.SeedSequence([int(self.common_episodes), int(generation)]).generate_state(1)[0])
        return np.full(max(n, len(seeds)), common, dtype=np.int64)

    def _score(self) -> Callable | None:
        """The per-tick score replacing the plant's reward (`objective`), None for the plant's own."""
        return None if self.objective is None else objective_score(self.objective, self.plant)

    def _configure(self, plant) -> None:
        """Per-task start distribution on a cached plant (reset to the plant's default otherwise)."""
        if hasattr(type(plant), "start_cart_range"):
            plant.start_cart_range = (type(plant).start_cart_range if self.start_cart_range is None
                                      else float(self.start_cart_range))

    def _fitness(self, total: np.ndarray) -> np.ndarray:
        fitness = total / (len(self.drifts) * self.episodes)
        if not np.all(np.isfinite(fitness)):
            raise ValueError(f"task {self.name!r}: non-finite return for individual {int(np.argmax(~np.isfinite(fitness)))}")
        return fitness


@dataclass
class Rollout:
    """One episode of one policy: what the gate needs to judge it."""

    ret: float
    rewards: np.ndarray     # (T,)
    actions: np.ndarray     # (T, act_dim), after the policy's clip
    qpos: np.ndarray        # (T + 1, njnt) joint positions
    finite: bool
    fell: bool = False      # the plant's fall conditions (`Plant.fallen_batch`) held at some tick

    @property
    def saturation(self) -> float:
        """Fraction of action components at (within 1e-3 of) their limits."""
        return action_saturation(self.actions)

    @property
    def jerk(self) -> float:
        """RMS of the second difference of the actions per tick (a smoothness proxy)."""
        return action_jerk(self.actions)


def action_saturation(actions: np.ndarray) -> float:
    """Fraction of the components of one episode's (T, act_dim) actions at (within 1e-3 of) +-1: the
    gate's saturation (`Rollout.saturation`, safety.constraints ``max_saturation``)."""
    actions = np.asarray(actions)
    return float(np.mean(np.abs(actions) >= 0.999)) if actions.size else 0.0


def action_jerk(actions: np.ndarray) -> float:
    """RMS of the second difference per tick of one episode's (T, act_dim) actions: the gate's jerk
    (`Rollout.jerk`, safety.constraints ``max_jerk``, chattering)."""
    actions = np.asarray(actions)
    if len(actions) < 3:
        return 0.0
    return float(np.sqrt(np.mean(np.diff(actions, n=2, axis=0) ** 2)))


@dataclass(frozen=True)
class ActionLimits:
    """The gate's hard limits on the commands (saturation, jerk: safety.constraints.Limits) as a
    fitness factor per episode, so that evolution does not breed a candidate the gate must refuse.

    Why in the fitness: nothing in a return sees chatter; the ant's first sandbox candidate went 63 ->
    273 of 300 with commands flipping every tick (jerk 1.44 > 1) and the gate's hurdle refused it.
    The factor is 1 up to `soft` x the limit (the champion's own commands are far below it) and
    (soft / r) ** power beyond, with r the worse of jerk / max_jerk and saturation / max_saturation:
    a smooth slope that evolution can climb back down from, and at the limit itself a factor of
    0.7 ** 4 = 0.24, which no confirmation (mean >= target, every episode >= 0.8 x target) survives.
    The measures are the gate's own functions (`action_jerk`, `action_saturation`)."""

    max_saturation: float = 0.5
    max_jerk: float = 1.0
    soft: float = 0.7
    power: float = 4.0

    def __post_init__(self) -> None:
        if not (self.max_saturation > 0 and self.max_jerk > 0 and 0 < self.soft <= 1 and self.power > 0):
            raise ValueError(f"ActionLimits: limits > 0, soft in (0, 1], power > 0; got {self}")

    def ratio(self, actions: np.ndarray) -> float:
        """How far one episode's (T, act_dim) actions are toward the nearer limit (1.0: at it)."""
        return max(action_jerk(actions) / self.max_jerk, action_saturation(actions) / self.max_saturation)

    def factors(self, actions: np.ndarray) -> np.ndarray:
        """(n,) fitness factors of n individuals' episodes from their (T, n, act_dim) actions."""
        actions = np.asarray(actions)
        out = np.ones(actions.shape[1])
        for i in range(actions.shape[1]):
            r = self.ratio(actions[:, i])
            out[i] = 1.0 if r <= self.soft else ((self.soft / r) ** self.power if np.isfinite(r) else 0.0)
        return out


def rollout(plant_name: str, spec: PolicySpec, weights: np.ndarray, seed: int, horizon: int = DEFAULT_HORIZON,
            drift: DriftSpec | dict | str | None = None, *, plant: Any = None,
            touch: Callable[[Any, int], bool] | None = None) -> Rollout:
    """Run one episode; a non-finite observation ends it early with `finite=False` (never raises).

    The one episode loop of the gate. `plant` is the instance to run (default: this process's cached
    one); `touch(plant, t)` may act on the robot mid-episode (a gate probe: displace a joint at
    reset, push it, move a target), with t = -1 right after the reset and then before each tick's
    action; it returns True when it changed what the robot observes."""
    plant = _plants(plant_name, 1)[0] if plant is None else plant
    plant.apply_drift(drift)
    try:
        obs = plant.reset(int(seed))
        if touch is not None and touch(plant, -1):
            obs = plant.observe()
        rewards, actions, qpos = [], [], [plant.joint_positions()]
        finite, fell = True, False
        w = np.asarray(weights, dtype=np.float32)[None]
        for t in range(int(horizon)):
            if touch is not None and touch(plant, t):
                obs = plant.observe()
            a = policy_act(spec, w, obs[None])[0]
            obs, r = plant.act(a)
            actions.append(a)
            rewards.append(r)
            qpos.append(plant.joint_positions())
            if not (np.all(np.isfinite(obs)) and np.isfinite(r)):
                finite = False
                break
            fell = fell or bool(plant.fallen_batch(obs[None])[0])
    finally:
        plant.clear_drift()
    rew = np.asarray(rewards, dtype=np.float64)
    return Rollout(ret=float(np.nansum(rew)), rewards=rew, actions=np.asarray(actions).reshape(-1, spec.act_dim),
                   qpos=np.asarray(qpos), finite=finite, fell=fell)
