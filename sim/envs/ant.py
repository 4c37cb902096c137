"""Ant-v5 as the paper's static locomotion task: 27-D observation, 8 torques in [-1, 1].

`include_cfrc_ext_in_observation=False` drops the 78 contact-force entries (always zero in MuJoCo >= 2.0
anyway), leaving the 27-D observation the policy 27-32-32-32-8 expects. No switch: Ant measures how the
mutation scale settles once good gaits are found, not adaptation to a shock.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym

ANT_ID = "Ant-v5"
ANT_OBS_DIM = 27
ANT_ACT_DIM = 8
ANT_HORIZON = 1000


def make_ant(max_episode_steps: int = ANT_HORIZON, **kwargs: Any) -> gym.Env:
    """`gym.make("Ant-v5")` with the 27-D observation; other keyword arguments go to Ant-v5."""
    kwargs.setdefault("include_cfrc_ext_in_observation", False)
    env = gym.make(ANT_ID, max_episode_steps=max_episode_steps, **kwargs)
    if env.observation_space.shape != (ANT_OBS_DIM,) and not kwargs["include_cfrc_ext_in_observation"]:
        raise RuntimeError(f"Ant-v5 gave a {env.observation_space.shape} observation, expected ({ANT_OBS_DIM},)")
    return env
