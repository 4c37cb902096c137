"""The Switch benchmark plants: schedules, Gym conformance, the switch itself, and VectorCartPole's
bit-identity with Gymnasium's CartPole-v1."""
from __future__ import annotations

import importlib
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.box2d.lunar_lander import LunarLander
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.utils.env_checker import check_env

import sim
from sim.envs import (CARTPOLE_SWITCH_ID, LUNARLANDER_SWITCH_ID, CartPoleSwitchEnv, SwitchSchedule,
                      VectorCartPole, register_envs)
from sim.envs.lunarlander_switch import LunarLanderSwitchEnv

# ---------------------------------------------------------------- SwitchSchedule


def test_schedule_parses_and_round_trips():
    s = SwitchSchedule.from_string("300-, 100-200")
    assert s.windows == ((100, 200), (300, None))
    assert s.to_string() == "100-200,300-"
    assert SwitchSchedule.from_string(s.to_string()) == s
    assert SwitchSchedule.from_string("") == SwitchSchedule.never() == SwitchSchedule()


def test_schedule_active_is_half_open():
    s = SwitchSchedule.from_string("100-200,300-")
    assert [s.active(g) for g in (0, 99, 100, 199, 200, 299, 300, 10**6)] == [
        False, False, True, True, False, False, True, True]
    assert not SwitchSchedule.never().active(0)


def test_schedule_toggles():
    assert SwitchSchedule.from_string("100-200,300-").toggles() == [100, 200, 300]
    assert SwitchSchedule.from_string("0-10,10-20").toggles() == [0, 20]  # no flip where windows touch
    assert SwitchSchedule.never().toggles() == []


@pytest.mark.parametrize("text, match", [
    ("200-100", "start < end"),
    ("5-5", "start < end"),
    ("0-100,50-150", "overlap"),
    ("10-,20-30", "overlap"),
    ("-5-10", "cannot parse"),
    ("abc", "cannot parse"),
    ("1.5-3", "cannot parse"),
])
def test_schedule_rejects_bad_strings(text, match):
    with pytest.raises(ValueError, match=match):
        SwitchSchedule.from_string(text)


def test_schedule_rejects_bad_windows():
    with pytest.raises(ValueError, match="non-negative"):
        SwitchSchedule(((-1, 5),))
    with pytest.raises(ValueError, match="integer"):
        SwitchSchedule(((1.5, 5),))
    with pytest.raises(ValueError, match="pair"):
        SwitchSchedule(((1, 2, 3),))
    assert SwitchSchedule(((np.int64(3), np.int64(7)),)).windows == ((3, 7),)

# ---------------------------------------------------------------- Gym conformance and registration


def _check_env_warnings(env) -> set[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    return {str(w.message) for w in caught}


# Only the warnings the wrapped Gymnasium env itself draws (e.g. CartPole's infinite velocity bounds)
# are allowed. Instances come from the registry (so they have a spec, as Gymnasium's do) and directly.
@pytest.mark.parametrize("make", [
    lambda: gym.make(CARTPOLE_SWITCH_ID).unwrapped,
    lambda: gym.make(CARTPOLE_SWITCH_ID, switch_on=True).unwrapped,
])
def test_cartpole_switch_passes_check_env(make):
    assert _check_env_warnings(make()) <= _check_env_warnings(gym.make("CartPole-v1").unwrapped)
    assert _check_env_warnings(CartPoleSwitchEnv(switch_on=True)) <= _check_env_warnings(CartPoleEnv())


@pytest.mark.parametrize("make", [
    lambda: gym.make(LUNARLANDER_SWITCH_ID).unwrapped,
    lambda: gym.make(LUNARLANDER_SWITCH_ID, switch_on=True).unwrapped,
    lambda: gym.make(LUNARLANDER_SWITCH_ID, switch_on=True, full_reversal=True).unwrapped,
])
def test_lunarlander_switch_passes_check_env(make):
    assert _check_env_warnings(make()) <= _check_env_warnings(gym.make("LunarLander-v3").unwrapped)
    assert _check_env_warnings(LunarLanderSwitchEnv(switch_on=True)) <= _check_env_warnings(LunarLander())


def test_envs_register_idempotently():
    importlib.reload(importlib.import_module("sim.envs"))
    register_envs()
    importlib.reload(sim)
    env = gym.make(CARTPOLE_SWITCH_ID, switch_on=True)
    assert isinstance(env.unwrapped, CartPoleSwitchEnv) and env.unwrapped.switch_on
    env = gym.make(LUNARLANDER_SWITCH_ID, full_reversal=True)
    assert env.unwrapped.full_reversal and env.unwrapped.__class__.__name__ == "LunarLanderSwitchEnv"


def test_ant_has_27d_observation():
    from sim.envs import make_ant
    env = make_ant(max_episode_steps=5)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (27,) and env.action_space.shape == (8,)
    for _ in range(5):
        *_, terminated, truncated, _ = env.step(env.action_space.sample())
    assert truncated or terminated

# ---------------------------------------------------------------- the switch inverts actions, only when on


def _rollout(env, seed, actions):
    """Observations, rewards and flags of an episode driven by `actions(t, obs)`, until it ends."""
    obs, _ = env.reset(seed=seed)
    trace = [obs]
    for t in range(10_000):
        obs, reward, terminated, truncated, _ = env.step(actions(t, obs))
        trace.append((obs, reward, terminated, truncated))
        if terminated or truncated:
            return trace
    raise AssertionError("episode did not end")


def _same(a, b):
    assert len(a) == len(b)
    assert np.array_equal(a[0], b[0])
    for (o1, r1, te1, tr1), (o2, r2, te2, tr2) in zip(a[1:], b[1:]):
        assert np.array_equal(o1, o2) and r1 == r2 and te1 == te2 and tr1 == tr2


def _balance(t, obs):
    """Push towards the fall (theta + theta_dot > 0 -> right), with a deterministic wobble."""
    return int(obs[2] + obs[3] > 0) ^ int(t % 17 == 0)


def test_cartpole_switch_inverts_actions_only_when_on():
    reference = gym.make("CartPole-v1")
    for seed in (1, 4):
        off = _rollout(CartPoleSwitchEnv(switch_on=False), seed, _balance)
        _same(off, _rollout(reference, seed, _balance))
        assert len(off) == 501 and off[-1][3]  # truncated at 500 steps

        on = _rollout(CartPoleSwitchEnv(switch_on=True), seed, _balance)
        _same(on, _rollout(reference, seed, lambda t, o: 1 - _balance(t, o)))
        assert len(on) < 60  # the balancing policy now pushes the pole over

    env = CartPoleSwitchEnv()
    env.set_switch(True)
    _same(_rollout(env, 5, _balance), _rollout(reference, 5, lambda t, o: 1 - _balance(t, o)))
    env.set_switch(False)
    _same(_rollout(env, 5, _balance), _rollout(reference, 5, _balance))


def _lander_script(t, obs):
    return (t // 7) % 4  # every action, in runs, so both engines and their swaps matter


@pytest.mark.parametrize("full_reversal, mapping", [(False, (0, 3, 2, 1)), (True, (3, 2, 1, 0))])
def test_lunarlander_switch_maps_actions_only_when_on(full_reversal, mapping):
    reference = gym.make("LunarLander-v3")
    off = _rollout(LunarLanderSwitchEnv(full_reversal=full_reversal), 1, _lander_script)
    _same(off, _rollout(reference, 1, _lander_script))
    on = _rollout(LunarLanderSwitchEnv(switch_on=True, full_reversal=full_reversal), 1, _lander_script)
    _same(on, _rollout(reference, 1, lambda t, o: mapping[_lander_script(t, o)]))
    assert not np.array_equal(on[-1][0], off[-1][0])


def test_lunarlander_switch_truncates_at_its_horizon():
    trace = _rollout(LunarLanderSwitchEnv(max_episode_steps=25), 0, lambda t, o: 0)
    assert len(trace) <= 26 and (trace[-1][2] or trace[-1][3])

# ---------------------------------------------------------------- VectorCartPole == CartPole-v1, bit for bit

SEEDS = [0, 1, 2, 5, 42, 123, 999, 2**31 - 1, 2**40 + 7, 31337, 7, 8, 9, 10, 11, 12, 13]


def _actions(seed, t, obs):
    """Balancing with some random flips: long episodes for most seeds, early falls for a few."""
    flip = np.random.default_rng([seed, t]).random() < (0.04 if seed % 3 else 0.3)
    return int(obs[2] + obs[3] > 0) ^ int(flip)


@pytest.mark.parametrize("switch_on", [False, True])
def test_vector_cartpole_is_bit_identical_to_gymnasium(switch_on):
    venv = VectorCartPole(len(SEEDS), switch_on=switch_on)
    v_obs = venv.reset(SEEDS)
    refs = [gym.make("CartPole-v1") for _ in SEEDS]
    obs = [env.reset(seed=s)[0] for env, s in zip(refs, SEEDS)]
    assert v_obs.dtype == np.float32 and np.array_equal(v_obs, np.stack(obs))
    live = set(range(len(SEEDS)))
    lengths = {}
    for t in range(500):
        actions = np.array([_actions(s, t, o) for s, o in zip(SEEDS, obs)])
        v_obs, v_rew, v_term, v_trunc = venv.step(actions)
        for i in sorted(live):
            applied = 1 - actions[i] if switch_on else actions[i]
            o, r, term, trunc, _ = refs[i].step(int(applied))
            assert np.array_equal(o, v_obs[i]), (SEEDS[i], t)
            assert r == v_rew[i] and term == v_term[i] and trunc == v_trunc[i], (SEEDS[i], t)
            obs[i] = o
            if term or trunc:
                live.discard(i)
                lengths[i] = t + 1
    assert not live
    if not switch_on:  # the comparison covered full 500-step episodes as well as early falls
        assert max(lengths.values()) == 500 and min(lengths.values()) < 100


def test_vector_cartpole_rewards_stop_after_the_fall():
    venv = VectorCartPole(3)
    venv.reset([0, 1, 2])
    total = np.zeros(3)
    for _ in range(500):
        _, reward, _, truncated = venv.step(np.ones(3, dtype=np.int64))  # always push right: falls fast
        total += reward
    assert truncated.all() and venv.fallen.all()
    ref = gym.make("CartPole-v1")
    for i, seed in enumerate([0, 1, 2]):
        ref.reset(seed=seed)
        n = 1
        while not ref.step(1)[2]:
            n += 1
        assert total[i] == n


def test_vector_cartpole_keep_and_batch_size_do_not_change_a_copy():
    full = VectorCartPole(4)
    obs_full = full.reset([10, 11, 12, 13])
    single = VectorCartPole(1)
    obs_single = single.reset([12])
    for t in range(200):
        if t == 50:
            full.keep(np.array([False, True, True, False]))
            obs_full = obs_full[[1, 2]]
        row = 2 if t < 50 else 1
        act_full = (obs_full[:, 2] + obs_full[:, 3] > 0).astype(np.int64)
        act_single = (obs_single[:, 2] + obs_single[:, 3] > 0).astype(np.int64)
        obs_full, *_ = full.step(act_full)
        obs_single, *_ = single.step(act_single)
        assert np.array_equal(obs_full[row if t < 50 else 1], obs_single[0])
    assert full.num_envs == 2


def test_vector_cartpole_validates_input():
    venv = VectorCartPole(2)
    with pytest.raises(RuntimeError, match="before reset"):
        venv.step(np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match="seeds"):
        venv.reset([1, 2, 3])
    venv.reset([1, 2])
    with pytest.raises(ValueError, match="shape"):
        venv.step(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="positive"):
        VectorCartPole(0)
