"""CartPole-Switch: Gymnasium's CartPole-v1 whose two actions swap while a switch is on.

Two implementations of the same plant:

* `CartPoleSwitchEnv` is a `gymnasium.Env` (a subclass of Gymnasium's own `CartPoleEnv`, so the
  dynamics, the RNG and the seeding are Gymnasium's, unchanged) for tools that expect the Gym API.
* `VectorCartPole` steps N copies at once with numpy, for the evolution loop, where one Python
  `step()` per individual per time step would dominate the cost of a generation. It is written to be
  *bit-identical* to `CartPoleEnv` + `TimeLimit(500)`: same float64 operation order, same float32
  observation cast, one `Generator` per copy seeded exactly as `CartPoleEnv.reset(seed=...)` seeds
  its own. So a score measured here is the score Gymnasium would give, and it does not depend on how
  many other copies share the batch.

The switch models a motor wired backwards: while on, action `a` is applied as `1 - a`. It is set
between episodes (per generation), never inside one.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.utils.seeding import np_random

CARTPOLE_HORIZON = 500

# CartPoleEnv's constants, spelled as CartPoleEnv computes them (same floats, bit for bit).
_GRAVITY = 9.8
_MASSCART = 1.0
_MASSPOLE = 0.1
_TOTAL_MASS = _MASSPOLE + _MASSCART
_LENGTH = 0.5  # half the pole's length
_POLEMASS_LENGTH = _MASSPOLE * _LENGTH
_FORCE_MAG = 10.0
_TAU = 0.02
_THETA_THRESHOLD = 12 * 2 * math.pi / 360
_X_THRESHOLD = 2.4


class CartPoleSwitchEnv(CartPoleEnv):
    """CartPole-v1 (truncated at `max_episode_steps`, 500 by default) with an action-inverting switch.

    Subclassing rather than holding a `gym.make("CartPole-v1")` keeps a single RNG, so
    `reset(seed=s)` gives exactly CartPole-v1's initial state and `check_env`'s seeding checks hold.
    The time limit lives here (not in a `TimeLimit` wrapper) so the class alone is the whole task.
    """

    def __init__(self, switch_on: bool = False, max_episode_steps: int = CARTPOLE_HORIZON,
                 render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        if max_episode_steps <= 0:
            raise ValueError(f"CartPoleSwitchEnv: max_episode_steps must be positive, got {max_episode_steps}")
        self.switch_on = bool(switch_on)
        self.max_episode_steps = int(max_episode_steps)
        self._elapsed_steps = 0

    def set_switch(self, on: bool) -> None:
        """Turn the inversion on or off; call between episodes (the benchmark switches per generation)."""
        self.switch_on = bool(on)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._elapsed_steps = 0
        obs, info = super().reset(seed=seed, options=options)
        info["switch_on"] = self.switch_on
        return obs, info

    def step(self, action):
        assert self.action_space.contains(action), f"{action!r} ({type(action)}) invalid"
        applied = 1 - int(action) if self.switch_on else int(action)
        obs, reward, terminated, _, info = super().step(applied)
        self._elapsed_steps += 1
        truncated = self._elapsed_steps >= self.max_episode_steps
        info["switch_on"] = self.switch_on
        return obs, reward, terminated, truncated, info


class VectorCartPole:
    """N independent CartPole-v1 copies stepped together, bit-identical to Gymnasium's.

    No autoreset: all copies are reset together (`reset(seeds)`), and each copy behaves after its
    termination the way `CartPoleEnv` does (the physics keeps going, the reward is 0), so summing the
    rewards of the first `max_episode_steps` steps gives each copy's episode return with no masking.
    `fallen` (N,) marks the copies that have terminated since the reset; `keep(mask)` drops copies a
    caller no longer needs, so the work follows the live episodes.

    The state is held as a (4, N) float64 array whose rows are contiguous, so every operation is the
    elementwise twin of `CartPoleEnv.step`'s scalar one.
    """

    def __init__(self, num_envs: int, max_episode_steps: int = CARTPOLE_HORIZON, switch_on: bool = False):
        if num_envs <= 0:
            raise ValueError(f"VectorCartPole: num_envs must be positive, got {num_envs}")
        if max_episode_steps <= 0:
            raise ValueError(f"VectorCartPole: max_episode_steps must be positive, got {max_episode_steps}")
        self.num_envs = int(num_envs)
        self.max_episode_steps = int(max_episode_steps)
        self.switch_on = bool(switch_on)
        self.elapsed_steps = 0
        self.state: np.ndarray | None = None
        self.fallen = np.zeros(self.num_envs, dtype=bool)  # terminated at some step since reset
        self._rngs: list[np.random.Generator] | None = None

    def set_switch(self, on: bool) -> None:
        """Turn the inversion on or off; call between episodes."""
        self.switch_on = bool(on)

    def reset(self, seeds: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Reset every copy; copy i draws its start state from its own RNG seeded with `seeds[i]`.

        Like `CartPoleEnv.reset`: with seeds, each RNG is rebuilt from its seed; without, each copy's
        RNG continues (and is seeded from OS entropy the first time).
        """
        if seeds is not None:
            seeds = [int(s) for s in np.asarray(seeds).reshape(-1)]
            if len(seeds) != self.num_envs:
                raise ValueError(f"VectorCartPole.reset: got {len(seeds)} seeds for {self.num_envs} envs")
            self._rngs = [np_random(s)[0] for s in seeds]
        elif self._rngs is None:
            self._rngs = [np_random(None)[0] for _ in range(self.num_envs)]
        start = np.empty((4, self.num_envs), dtype=np.float64)
        for i, rng in enumerate(self._rngs):
            start[:, i] = rng.uniform(low=-0.05, high=0.05, size=(4,))
        self.state = start
        self.elapsed_steps = 0
        self.fallen = np.zeros(self.num_envs, dtype=bool)
        return start.T.astype(np.float32)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Apply `actions` (N,) in {0, 1}; returns obs (N, 4) float32, reward (N,) float64,
        terminated (N,) bool, truncated (N,) bool."""
        if self.state is None:
            raise RuntimeError("VectorCartPole.step called before reset")
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"VectorCartPole.step: actions must have shape ({self.num_envs},), got {actions.shape}")
        forces = _FORCES_SWITCHED if self.switch_on else _FORCES
        force = forces[actions]  # actions must be 0 or 1: not re-checked here, this is the hot loop
        x_dot, theta, theta_dot = self.state[1], self.state[2], self.state[3]
        costheta = np.cos(theta)
        sintheta = np.sin(theta)
        # Same expression tree as CartPoleEnv.step, operand for operand.
        temp = (force + _POLEMASS_LENGTH * np.square(theta_dot) * sintheta) / _TOTAL_MASS
        thetaacc = (_GRAVITY * sintheta - costheta * temp) / (
            _LENGTH * (4.0 / 3.0 - _MASSPOLE * np.square(costheta) / _TOTAL_MASS))
        xacc = temp - _POLEMASS_LENGTH * thetaacc * costheta / _TOTAL_MASS
        # Euler: x += tau * x_dot, x_dot += tau * xacc, theta += tau * theta_dot, theta_dot += tau * thetaacc.
        self.state = self.state + _TAU * np.stack((x_dot, xacc, theta_dot, thetaacc))
        # |v| > t is exactly (v < -t or v > t), NaN included (both false).
        terminated = (np.abs(self.state[0]) > _X_THRESHOLD) | (np.abs(self.state[2]) > _THETA_THRESHOLD)
        reward = np.where(self.fallen, 0.0, 1.0)
        self.fallen |= terminated
        self.elapsed_steps += 1
        truncated = np.full(self.num_envs, self.elapsed_steps >= self.max_episode_steps)
        return self.state.T.astype(np.float32), reward, terminated, truncated

    def keep(self, mask: np.ndarray) -> None:
        """Keep only the copies where `mask` is true (in order); the others are forgotten."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.num_envs,):
            raise ValueError(f"VectorCartPole.keep: mask must have shape ({self.num_envs},), got {mask.shape}")
        if self.state is not None:
            self.state = np.ascontiguousarray(self.state[:, mask])
        self.fallen = self.fallen[mask]
        if self._rngs is not None:
            self._rngs = [rng for rng, k in zip(self._rngs, mask) if k]
        self.num_envs = int(mask.sum())


_FORCES = np.array([-_FORCE_MAG, _FORCE_MAG])
_FORCES_SWITCHED = _FORCES[::-1].copy()
