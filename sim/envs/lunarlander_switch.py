"""LunarLander-Switch: Gymnasium's LunarLander-v3 (discrete) whose controls are crossed while a switch is on.

Actions are 0 noop, 1 fire left engine, 2 main engine, 3 fire right engine. While the switch is on:

* default: the side engines are swapped (1 <-> 3), i.e. steering is mirrored, the main engine still works;
* `full_reversal=True`: every action a becomes 3 - a (noop <-> right, left <-> main), a harsher shock.

The paper does not give its LunarLander schedule; ours is in `sim.tasks.LunarLanderSwitchTask`.

Like `CartPoleSwitchEnv` this subclasses Gymnasium's env, so the physics and seeding are untouched.
One wrinkle: `LunarLander.reset` calls `self.step(0)` to produce the first observation; that internal
call must not be remapped (under full reversal it would fire an engine) nor counted towards the time limit.
"""
from __future__ import annotations

import numpy as np
from gymnasium.envs.box2d.lunar_lander import LunarLander
from gymnasium.utils import EzPickle

LUNARLANDER_HORIZON = 1000

SWAP_SIDE_ENGINES = (0, 3, 2, 1)
FULL_REVERSAL = (3, 2, 1, 0)


class LunarLanderSwitchEnv(LunarLander):
    """Discrete LunarLander-v3, truncated at `max_episode_steps` (1000), with a control-crossing switch."""

    def __init__(self, switch_on: bool = False, full_reversal: bool = False,
                 max_episode_steps: int = LUNARLANDER_HORIZON, render_mode: str | None = None,
                 gravity: float = -10.0, enable_wind: bool = False, wind_power: float = 15.0,
                 turbulence_power: float = 1.5):
        super().__init__(render_mode=render_mode, continuous=False, gravity=gravity, enable_wind=enable_wind,
                         wind_power=wind_power, turbulence_power=turbulence_power)
        EzPickle.__init__(self, switch_on, full_reversal, max_episode_steps, render_mode, gravity,
                          enable_wind, wind_power, turbulence_power)
        if max_episode_steps <= 0:
            raise ValueError(f"LunarLanderSwitchEnv: max_episode_steps must be positive, got {max_episode_steps}")
        self.switch_on = bool(switch_on)
        self.full_reversal = bool(full_reversal)
        self.max_episode_steps = int(max_episode_steps)
        self._elapsed_steps = 0
        self._in_reset = False

    @property
    def action_map(self) -> tuple[int, int, int, int]:
        """applied action = action_map[chosen action], for the current switch state."""
        if not self.switch_on:
            return (0, 1, 2, 3)
        return FULL_REVERSAL if self.full_reversal else SWAP_SIDE_ENGINES

    def set_switch(self, on: bool) -> None:
        """Cross or uncross the controls; call between episodes (the benchmark switches per generation)."""
        self.switch_on = bool(on)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._in_reset = True
        try:
            obs, info = super().reset(seed=seed, options=options)
        finally:
            self._in_reset = False
        self._elapsed_steps = 0
        info["switch_on"] = self.switch_on
        return obs, info

    def step(self, action):
        if self._in_reset:  # LunarLander.reset's own step(0): leave it alone
            return super().step(action)
        assert self.action_space.contains(action), f"{action!r} ({type(action)}) invalid"
        obs, reward, terminated, _, info = super().step(self.action_map[int(action)])
        self._elapsed_steps += 1
        truncated = self._elapsed_steps >= self.max_episode_steps
        info["switch_on"] = self.switch_on
        return obs, float(reward), terminated, truncated, info
