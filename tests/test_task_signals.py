"""Task signals on the live side (a profile's ``observe.extra``: the reacher's circling target): the
controller receives them on their own topic and builds exactly the simulated observation; it holds
the safe command while they are missing; recordings carry and replay them. Before, the live map
rebuilt the observation from joint states alone and read the target of t = 0: the shipped reacher
champion returned 0 of 300 through it."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from sim.adapt_job import nominal_champion
from sim.distill import policy_controller
from sim.observation import ProfileObservation, base_readings, live_profile, make_observation_map
from sim.plants import make_plant
from sim.profile import find_profile

from constant_runtime import constant_runtime

warnings.filterwarnings("ignore", message=".*DISPLAY.*")
REACHER = str(find_profile("reacher"))


@pytest.mark.parametrize("robot", ["reacher", REACHER])
def test_live_observation_with_the_task_topic_is_the_simulated_one(robot):
    obs_map = make_observation_map(robot)
    assert isinstance(obs_map, ProfileObservation)
    assert obs_map.base_sensors == ("task",) and obs_map.base_topics == {"task": "task"}
    assert obs_map.base_widths == {"task": 2}
    plant = make_plant(robot)
    assert live_profile(plant).doc.observe.extra.names == ["to_target_x", "to_target_y"]
    policy = policy_controller(nominal_champion("reacher"))()
    obs, total = plant.reset(10_000), 0.0
    for _ in range(300):
        live = obs_map(plant.joint_positions(), plant.joint_velocities(), base_readings(plant)["task"]["values"])
        assert np.array_equal(live, obs)
        obs, r = plant.act(policy(live))
        total += r
    assert total > 250.0                        # the champion tracks the target it is sent


def test_builtins_without_task_signals_keep_their_maps():
    assert not isinstance(make_observation_map("walker"), ProfileObservation)
    assert live_profile(make_plant("walker")) is None and live_profile(make_plant("cartpole")) is None


def _runtime(clock):
    return constant_runtime("reacher", clock)


def test_missing_stale_or_bad_task_signals_hold_the_safe_command():
    now = [1.0]
    rt, plant, names = _runtime(lambda: now[0])
    q, v = plant.joint_positions(), plant.joint_velocities()
    rt.ingest(now[0], names, q, v, now=now[0])
    assert rt.tick(now[0]).status == "base_stale"
    assert rt.ingest_base("task", [0.1, 0.2, 0.3], now=now[0]) is False      # 3 values for 2 names
    assert rt.refused["wrong_length"] == 1 and "task" in rt.first_refusal["wrong_length"]
    assert rt.ingest_base("task", [0.1, np.nan], now=now[0]) is False
    assert rt.tick(now[0]).status == "base_stale"
    assert rt.ingest_base("task", [0.1, -0.05], now=now[0])
    out = rt.tick(now[0])
    assert out.status == "ok" and np.allclose(out.command, 0.5)
    now[0] = 1.5                                       # joints keep coming, the target went silent
    rt.ingest(now[0], names, q, v, now=now[0])
    out = rt.tick(now[0])
    assert out.status == "base_stale" and np.allclose(out.command, rt.safe_command)


def test_a_recording_carries_the_task_signals_and_reads_back_the_observation(tmp_path):
    from adapters.bag_telemetry import read_bag_telemetry
    from adapters.base_sensors import CUSTOM_KEY
    from adapters.recording import simulate_bag
    from adapters.replay_bag import inspect_bag
    bag = simulate_bag(tmp_path / "reacher", plant="reacher", seconds=3.0, obs_noise=0.0, seed=3)
    info = inspect_bag(bag)
    assert json.loads(info.custom[CUSTOM_KEY]) == {"task": "/task"} and info.counts["/task"] > 100
    tel = read_bag_telemetry(bag, plant="reacher")
    plant = make_plant("reacher")
    assert tel.obs.shape[1] == plant.obs_dim and len(tel) > 100
    plant.reset(3)
    targets = tel.obs[:, -2:]
    assert np.ptp(targets, axis=0).max() > 0.05        # the target moved, and the bag says where it was
    assert np.isfinite(tel.obs).all()
