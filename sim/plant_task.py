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


def _plant_batch(name: str, size: int) -> PlantBatch:
    """Per-process cache of the last few `PlantBatch`es used (by plant and batch size), each with a
    plant of its own (not shared with `rollout`)."""
    from sim.plants import make_plant
    from sim.plants.base import PlantBatch
    key = (name, size)
    if key in _batch_cache:
        _batch_cache.move_to_end(key)
    else:
        _batch_cache[key] = PlantBatch(make_plant(name), size)
        while len(_batch_cache) > BATCH_CACHE_SIZE:
            _batch_cache.popitem(last=False)
    return _batch_cache[key]


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "drifts", tuple(DriftSpec.parse(d) for d in self.drifts) or (DriftSpec(),))
        if self.horizon < 1 or self.episodes < 1:
            raise ValueError(f"PlantTask: horizon and episodes must be >= 1, got {self.horizon}, {self.episodes}")
        object.__setattr__(self, "_policy", plant_policy_spec(self.plant, self.hidden))

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
        batch = _plant_batch(self.plant, n)
        self._configure(batch.plant)
        act = BoundPolicy(self.policy, weights)
        total = np.zeros(n)
        for d, drift in enumerate(self.drifts):
            batch.plant.apply_drift(drift)
            for e in range(self.episodes):
                obs = batch.reset([_episode_seed(seeds[i], d, e) for i in range(n)])
                alive = np.ones(n, dtype=bool)
                for _ in range(self.horizon):
                    obs, r = batch.act(act(obs))
                    if self.stop_on_fall:
                        alive &= ~batch.plant.fallen_batch(obs)
                        r = np.where(alive, r, 0.0)
                    total += r
        return self._fitness(total)

    def evaluate_reference(self, weights: np.ndarray, seeds: np.ndarray, generation: int = 0) -> np.ndarray:
        """`evaluate` the slow, obvious way: one plant per individual, one `Plant.act` per tick (the
        reference the batched `evaluate` reproduces bit for bit)."""
        weights = np.asarray(weights, dtype=np.float32)
        n = len(weights)
        plants = _plants(self.plant, n)
        for p in plants:
            self._configure(p)
        total = np.zeros(n)
        for d, drift in enumerate(self.drifts):
            for e in range(self.episodes):
                obs = np.empty((n, self.policy.obs_dim))
                for i, p in enumerate(plants):
                    p.apply_drift(drift)
                    obs[i] = p.reset(_episode_seed(seeds[i], d, e))
                alive = np.ones(n, dtype=bool)
                for _ in range(self.horizon):
                    actions = policy_act(self.policy, weights, obs)
                    for i, p in enumerate(plants):
                        obs[i], r = p.act(actions[i])
                        alive[i] &= not p.fallen_batch(obs[i:i + 1])[0] if self.stop_on_fall else True
                        total[i] += r if alive[i] else 0.0
        return self._fitness(total)

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
        return float(np.mean(np.abs(self.actions) >= 0.999)) if self.actions.size else 0.0

    @property
    def jerk(self) -> float:
        """RMS of the second difference of the actions per tick (a smoothness proxy)."""
        if len(self.actions) < 3:
            return 0.0
        return float(np.sqrt(np.mean(np.diff(self.actions, n=2, axis=0) ** 2)))


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
