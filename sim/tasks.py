"""Evaluation tasks for the evolution loop: score a population of policies on a (switchable) plant.

A task turns `weights (B, P)`, `seeds (B,)` and a generation number into fitness `(B,)`: the mean
episode return of each individual over `episodes` episodes, with the switch in the state the task's
`SwitchSchedule` gives for that generation. Three promises make tasks safe to farm out:

* **Batch independence.** Individual i's score depends only on `weights[i]`, `seeds[i]`, the generation
  and the task, never on the other rows, so a population split over 1 or 2 worker processes scores the
  same. (Episode seeds come from `seeds[i]` alone; the policy forward has no cross-row reduction;
  `VectorCartPole` seeds every copy separately.)
* **Picklable.** Tasks are small frozen dataclasses; environments are built lazily inside `evaluate`
  and cached per process, never pickled.
* **Loud on NaN.** A non-finite reward raises `ValueError` naming the task and the individual, instead
  of quietly ranking a broken genome.

Use `make_task("cartpole-switch", episodes=1, schedule="100-200")`; `TASKS` lists the names.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

import numpy as np

from sim.envs.cartpole_drift import DriftCondition, shaped_returns
from sim.envs.cartpole_switch import CARTPOLE_HORIZON, VectorCartPole
from sim.envs.switch import SwitchSchedule
from sim.policy import BoundPolicy, PolicySpec


def episode_seeds(seeds: np.ndarray, episodes: int) -> np.ndarray:
    """(B, episodes) int64 env seeds: episode e of individual i gets a hash of (seeds[i], e).

    Hashing (SeedSequence) rather than `seed + e` keeps individuals with nearby seeds from sharing
    episodes. The values fit in 63 bits, so they are valid Gymnasium seeds.
    """
    out = np.empty((len(seeds), episodes), dtype=np.int64)
    for i, seed in enumerate(seeds):
        for e in range(episodes):
            state = np.random.SeedSequence((int(seed), e)).generate_state(1, np.uint64)[0]
            out[i, e] = int(state >> np.uint64(1))
    return out


@dataclass(frozen=True)
class Task:
    """Base of the evaluation tasks. Subclasses set `name`, `policy`, `default_schedule`, `default_horizon`
    and implement `_episode_returns`."""

    episodes: int = 1
    schedule: SwitchSchedule = field(default_factory=SwitchSchedule.never)
    horizon: int | None = None  # None: the subclass's default_horizon

    name: ClassVar[str] = ""
    policy: ClassVar[PolicySpec]
    default_schedule: ClassVar[str] = ""
    default_horizon: ClassVar[int] = 1000

    def __post_init__(self) -> None:
        if isinstance(self.episodes, bool) or not isinstance(self.episodes, (int, np.integer)) or self.episodes <= 0:
            raise ValueError(f"task {self.name!r}: episodes must be a positive integer, got {self.episodes!r}")
        if self.horizon is None:
            object.__setattr__(self, "horizon", self.default_horizon)
        if isinstance(self.horizon, bool) or not isinstance(self.horizon, (int, np.integer)) or self.horizon <= 0:
            raise ValueError(f"task {self.name!r}: horizon must be a positive integer, got {self.horizon!r}")
        if isinstance(self.schedule, str):
            object.__setattr__(self, "schedule", SwitchSchedule.from_string(self.schedule))
        object.__setattr__(self, "episodes", int(self.episodes))
        object.__setattr__(self, "horizon", int(self.horizon))

    def switch_on(self, generation: int) -> bool:
        return self.schedule.active(generation)

    def change_points(self) -> list[int]:
        """Generations at which the plant changes (the recovery metrics' toggles)."""
        return self.schedule.toggles()

    def config(self) -> dict[str, Any]:
        """JSON-ready description for logs and result files."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["schedule"] = self.schedule.to_string()
        return {"name": self.name, "policy": json.loads(self.policy.to_json()), **d}

    def evaluate(self, weights: np.ndarray, seeds: np.ndarray, generation: int) -> np.ndarray:
        """Mean return over `episodes` episodes of each individual: (B,) float64.

        weights (B, P) are cast to float32 (the genome dtype); seeds (B,) non-negative integers.
        """
        weights = np.ascontiguousarray(weights, dtype=np.float32)
        seeds = np.asarray(seeds)
        if weights.ndim != 2 or weights.shape[1] != self.policy.num_params:
            raise ValueError(f"task {self.name!r}: weights must have shape (B, {self.policy.num_params}), "
                             f"got {weights.shape}")
        if seeds.shape != (weights.shape[0],) or seeds.dtype.kind not in "iu":
            raise ValueError(f"task {self.name!r}: seeds must be {weights.shape[0]} integers, "
                             f"got shape {seeds.shape} dtype {seeds.dtype}")
        if seeds.size and seeds.min() < 0:
            raise ValueError(f"task {self.name!r}: seeds must be non-negative")
        if weights.shape[0] == 0:
            return np.zeros(0, dtype=np.float64)
        returns = self._returns_at(weights, episode_seeds(seeds, self.episodes), generation)
        bad = ~np.isfinite(returns)
        if bad.any():
            i, e = np.argwhere(bad)[0]
            raise ValueError(f"task {self.name!r}: individual {i} got a non-finite return "
                             f"({returns[i, e]}) in episode {e} at generation {generation}")
        return returns.mean(axis=1)

    def _returns_at(self, weights: np.ndarray, seeds: np.ndarray, generation: int) -> np.ndarray:
        """(B, episodes) float64 returns at `generation`; tasks whose plant is more than on/off override this."""
        return self._episode_returns(weights, seeds, self.switch_on(generation))

    def _episode_returns(self, weights: np.ndarray, seeds: np.ndarray, switch_on: bool) -> np.ndarray:
        """(B, episodes) float64 returns; seeds (B, episodes)."""
        raise NotImplementedError


@dataclass(frozen=True)
class CartPoleSwitchTask(Task):
    """CartPole-v1 (horizon 500), actions inverted while the switch is on; default schedule `100-200`.

    All `B * episodes` episodes run in one `VectorCartPole`; copies that have fallen are dropped once
    they are half the batch, so the cost follows the live episodes.
    """

    name: ClassVar[str] = "cartpole-switch"
    policy: ClassVar[PolicySpec] = PolicySpec(4, 2, hidden=(32,), discrete=True)
    default_schedule: ClassVar[str] = "100-200"
    default_horizon: ClassVar[int] = CARTPOLE_HORIZON

    def _episode_returns(self, weights, seeds, switch_on):
        n_ind, n_ep = seeds.shape
        policy = BoundPolicy(self.policy, np.repeat(weights, n_ep, axis=0))  # row i*E + e
        env = VectorCartPole(n_ind * n_ep, max_episode_steps=self.horizon, switch_on=switch_on)
        obs = env.reset(seeds.reshape(-1))
        returns = np.zeros(n_ind * n_ep)
        live = np.arange(n_ind * n_ep)  # which episode each env copy runs
        live_returns = np.zeros(n_ind * n_ep)
        for _ in range(self.horizon):
            obs, reward, _, _ = env.step(policy.act(obs))
            live_returns += reward
            n_fallen = np.count_nonzero(env.fallen)
            if n_fallen == env.num_envs:
                break
            if 2 * n_fallen >= env.num_envs:
                keep = ~env.fallen
                returns[live[~keep]] = live_returns[~keep]
                live, live_returns, obs = live[keep], live_returns[keep], obs[keep]
                env.keep(keep)
                policy = policy.subset(keep)
        returns[live] = live_returns
        return returns.reshape(n_ind, n_ep)


# Envs built inside worker processes, reused across evaluate calls (tasks themselves stay picklable).
_ENV_CACHE: dict[tuple, Any] = {}


@dataclass(frozen=True)
class _GymTask(Task):
    """A task run on one Gymnasium env, one episode at a time (Box2D / MuJoCo step in C; batching buys little)."""

    def _make_env(self):
        raise NotImplementedError

    def _env(self):
        key = (type(self).__name__, self.horizon, self._env_options())
        if key not in _ENV_CACHE:
            _ENV_CACHE[key] = self._make_env()
        return _ENV_CACHE[key]

    def _env_options(self) -> tuple:
        return ()

    def _set_switch(self, env, on: bool) -> None:
        if on:
            raise ValueError(f"task {self.name!r} has no switch")

    def _episode_returns(self, weights, seeds, switch_on):
        env = self._env()
        self._set_switch(env, switch_on)
        returns = np.zeros(seeds.shape)
        for i in range(seeds.shape[0]):
            policy = BoundPolicy(self.policy, weights[i:i + 1])
            for e in range(seeds.shape[1]):
                returns[i, e] = self._run_episode(env, policy, int(seeds[i, e]), i, e)
        return returns

    def _run_episode(self, env, policy: BoundPolicy, seed: int, index: int, episode: int) -> float:
        obs, _ = env.reset(seed=seed)
        total = 0.0
        for t in range(self.horizon):
            obs, reward, terminated, truncated, _ = env.step(policy.act(obs[None])[0])
            if not math.isfinite(reward):
                raise ValueError(f"task {self.name!r}: individual {index} got a non-finite reward ({reward}) "
                                 f"at step {t} of episode {episode} (env seed {seed})")
            total += float(reward)
            if terminated or truncated:
                break
        return total


@dataclass(frozen=True)
class LunarLanderSwitchTask(_GymTask):
    """LunarLander-v3 (discrete, horizon 1000), side engines swapped while the switch is on.

    Default schedule `200-400` (ours; the paper's is unknown): LunarLander needs far more generations
    than CartPole (~15) before a population lands reliably, so the switch comes once a policy is worth
    breaking, and stays on long enough to re-learn steering before it flips back.
    `full_reversal=True` maps every action a -> 3 - a instead.
    """

    full_reversal: bool = False

    name: ClassVar[str] = "lunarlander-switch"
    policy: ClassVar[PolicySpec] = PolicySpec(8, 4, hidden=(32,), discrete=True)
    default_schedule: ClassVar[str] = "200-400"
    default_horizon: ClassVar[int] = 1000

    def _env_options(self):
        return (self.full_reversal,)

    def _make_env(self):
        from sim.envs.lunarlander_switch import LunarLanderSwitchEnv
        return LunarLanderSwitchEnv(full_reversal=self.full_reversal, max_episode_steps=self.horizon)

    def _set_switch(self, env, on):
        env.set_switch(on)


@dataclass(frozen=True)
class AntTask(_GymTask):
    """Ant-v5, 27-D observation, policy 27-32-32-32-8 with actions clipped to [-1, 1]; static (no switch)."""

    name: ClassVar[str] = "ant"
    policy: ClassVar[PolicySpec] = PolicySpec(27, 8, hidden=(32, 32, 32), discrete=False, act_low=-1.0, act_high=1.0)
    default_schedule: ClassVar[str] = ""
    default_horizon: ClassVar[int] = 1000

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.schedule.windows:
            raise ValueError(f"task 'ant' is static and takes no switch schedule, got {self.schedule.to_string()!r}")

    def _make_env(self):
        from sim.envs.ant import make_ant
        return make_ant(max_episode_steps=self.horizon)


# Drift steps of `cartpole-drift`, applied cumulatively in sequence (ours: see sim/envs/cartpole_drift.py).
DRIFT_STEPS = {
    "mass": dict(pole_mass_scale=5.0),                     # a 5x heavier pole
    "gain": None,                                          # motor gain changes sign (wired backwards)
    "friction": dict(cart_friction=2.0, pole_friction=0.01),
    "nominal": {},                                         # repaired: back to the nominal plant
}


@dataclass(frozen=True)
class CartPoleDriftTask(Task):
    """Shaped-reward cart-pole whose plant drifts at `changes` through `sequence` (cumulative steps).

    Default: mass at 100, gain (sign flip) at 200, friction at 300, back to nominal at 400 — the
    robot drift sequence mass -> gain -> friction plus the repair. `sequence="gain,gain,gain,gain"`
    is action inversion toggled four times. The reward never saturates (see
    `sim.envs.cartpole_drift`). The switch schedule (for logs) is "plant not nominal".
    """

    changes: str = "100,200,300,400"
    sequence: str = "mass,gain,friction,nominal"

    name: ClassVar[str] = "cartpole-drift"
    policy: ClassVar[PolicySpec] = PolicySpec(4, 2, hidden=(32,), discrete=True)
    default_schedule: ClassVar[str] = ""
    default_horizon: ClassVar[int] = 200

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.schedule.windows:
            raise ValueError("task 'cartpole-drift': give `changes` and `sequence`, not a switch schedule")
        points, steps = SwitchSchedule.parse_sequence("cartpole-drift", self.changes, self.sequence)
        unknown = [t for t in steps if t not in DRIFT_STEPS]
        if unknown:
            raise ValueError(f"task 'cartpole-drift': unknown sequence steps {unknown}; known: {sorted(DRIFT_STEPS)}")
        conds, cur = [DriftCondition()], DriftCondition()
        for t in steps:
            if t == "gain":
                cur = replace(cur, gain=-cur.gain)
            elif t == "nominal":
                cur = DriftCondition()
            else:
                cur = replace(cur, **DRIFT_STEPS[t])
            conds.append(cur)
        object.__setattr__(self, "_points", tuple(points))
        object.__setattr__(self, "_conditions", tuple(conds))
        object.__setattr__(self, "schedule", SwitchSchedule.from_conditions(points, conds, DriftCondition()))

    def condition(self, generation: int) -> DriftCondition:
        return self._conditions[sum(generation >= p for p in self._points)]

    def change_points(self) -> list[int]:
        return list(self._points)

    def _returns_at(self, weights, seeds, generation):
        n_ind, n_ep = seeds.shape
        policy = BoundPolicy(self.policy, np.repeat(weights, n_ep, axis=0))
        out = shaped_returns(policy, seeds.reshape(-1), self.condition(generation), self.horizon)
        return out.reshape(n_ind, n_ep)


TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (CartPoleSwitchTask, LunarLanderSwitchTask, AntTask,
                                                          CartPoleDriftTask)}


def make_task(name: str, *, episodes: int = 1, schedule: str | None = None, horizon: int | None = None,
              **options: Any) -> Task:
    """Build a task by name. `schedule=None` takes the task's default ("" = never switched);
    `horizon=None` its default; `options` are task-specific (e.g. `full_reversal` for LunarLander)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    cls = TASKS[name]
    base = {f.name for f in fields(Task)}
    allowed = sorted(f.name for f in fields(cls) if f.name not in base)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"task {name!r}: unknown options {unknown}; it accepts {allowed or 'none'}")
    sched = SwitchSchedule.from_string(cls.default_schedule if schedule is None else schedule)
    return cls(episodes=episodes, schedule=sched, horizon=horizon, **options)
