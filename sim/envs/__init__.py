"""Benchmark plants for adaptation: the Switch tasks (CartPole, LunarLander) and static Ant-v5.

Importing this package registers `driftgate/CartPoleSwitch-v0` and `driftgate/LunarLanderSwitch-v0`
with Gymnasium (idempotently), by entry-point string, so Box2D and MuJoCo are only loaded when an
env that needs them is made. `LunarLanderSwitchEnv` and `make_ant` are likewise imported on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

import gymnasium

from sim.envs.cartpole_switch import CARTPOLE_HORIZON, CartPoleSwitchEnv, VectorCartPole
from sim.envs.switch import SwitchSchedule

CARTPOLE_SWITCH_ID = "driftgate/CartPoleSwitch-v0"
LUNARLANDER_SWITCH_ID = "driftgate/LunarLanderSwitch-v0"

_ENTRY_POINTS = {
    CARTPOLE_SWITCH_ID: "sim.envs.cartpole_switch:CartPoleSwitchEnv",
    LUNARLANDER_SWITCH_ID: "sim.envs.lunarlander_switch:LunarLanderSwitchEnv",
}


def register_envs() -> None:
    """Register the Switch envs with Gymnasium; a second call (or a second import) does nothing.

    The time limit is inside the envs (`max_episode_steps` keyword), so no `TimeLimit` is added.
    """
    for env_id, entry_point in _ENTRY_POINTS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=entry_point)


register_envs()

_LAZY = {
    "LunarLanderSwitchEnv": "sim.envs.lunarlander_switch",
    "make_ant": "sim.envs.ant",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sim.envs' has no attribute {name!r}")


__all__ = ["CARTPOLE_HORIZON", "CARTPOLE_SWITCH_ID", "LUNARLANDER_SWITCH_ID", "CartPoleSwitchEnv",
           "LunarLanderSwitchEnv", "SwitchSchedule", "VectorCartPole", "make_ant", "register_envs"]
