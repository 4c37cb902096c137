"""Evaluation tasks: what the evolution loop relies on (scores, switch windows, batch independence,
picklability, loud failures)."""
from __future__ import annotations

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import gymnasium as gym
import numpy as np
import pytest

from sim.envs import SwitchSchedule
from sim.policy import BoundPolicy, PolicySpec, policy_act
from sim.tasks import (TASKS, AntTask, CartPoleSwitchTask, LunarLanderSwitchTask, episode_seeds,
                       make_task)


def balancing_weights(spec: PolicySpec = CartPoleSwitchTask.policy) -> np.ndarray:
    """Hand-made 4-32-2 policy: action = 1 (push right) iff theta + theta_dot > 0."""
    w = np.zeros(spec.num_params, dtype=np.float32)
    off = {name: offset for name, offset, _ in spec.offsets()}
    w[off["W1"] + 2] = w[off["W1"] + 3] = 10.0  # h0 = tanh(10 (theta + theta_dot))
    w[off["W2"] + 32] = 1.0  # output 1 = h0
    w[off["W2"]] = -1.0  # output 0 = -h0
    return w


def population(spec: PolicySpec, n: int, seed: int = 0, scale: float = 0.5) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=(n, spec.num_params)) * scale).astype(np.float32)


def cartpole_population() -> np.ndarray:
    """Good, slightly perturbed and random policies: episodes end at very different times."""
    good = balancing_weights()
    rng = np.random.default_rng(1)
    rows = [good, good + rng.normal(0, 0.3, good.shape), good + rng.normal(0, 1.0, good.shape)]
    rows += list(population(CartPoleSwitchTask.policy, 5, seed=2))
    return np.asarray(rows, dtype=np.float32)

# ---------------------------------------------------------------- registry


def test_registry_and_defaults():
    assert set(TASKS) == {"cartpole-switch", "lunarlander-switch", "ant", "cartpole-drift"}
    cp = make_task("cartpole-switch")
    assert isinstance(cp, CartPoleSwitchTask) and cp.horizon == 500 and cp.episodes == 1
    assert cp.schedule == SwitchSchedule.from_string("100-200")
    assert cp.policy == PolicySpec(4, 2, hidden=(32,), discrete=True)
    ll = make_task("lunarlander-switch", horizon=300, full_reversal=True, episodes=2)
    assert isinstance(ll, LunarLanderSwitchTask) and ll.horizon == 300 and ll.full_reversal and ll.episodes == 2
    assert ll.policy.obs_dim == 8 and ll.policy.act_dim == 4 and ll.schedule.windows
    ant = make_task("ant")
    assert isinstance(ant, AntTask) and ant.horizon == 1000 and not ant.schedule.windows
    assert ant.policy == PolicySpec(27, 8, hidden=(32, 32, 32), discrete=False, act_low=-1.0, act_high=1.0)
    assert make_task("cartpole-switch", schedule="").schedule == SwitchSchedule.never()
    assert cp.config()["schedule"] == "100-200" and cp.config()["name"] == "cartpole-switch"


def test_make_task_rejects_bad_requests():
    with pytest.raises(ValueError, match="known tasks: ant, cartpole-drift, cartpole-switch, lunarlander-switch"):
        make_task("pendulum")
    for bad in (0, -1):
        with pytest.raises(ValueError, match="episodes"):
            make_task("cartpole-switch", episodes=bad)
        with pytest.raises(ValueError, match="horizon"):
            make_task("lunarlander-switch", horizon=bad)
    with pytest.raises(ValueError, match="unknown options"):
        make_task("cartpole-switch", full_reversal=True)
    with pytest.raises(ValueError, match="overlap"):
        make_task("cartpole-switch", schedule="0-10,5-20")
    with pytest.raises(ValueError, match="static"):
        make_task("ant", schedule="10-20")


def test_evaluate_validates_shapes():
    task = make_task("cartpole-switch")
    w = population(task.policy, 2)
    with pytest.raises(ValueError, match="weights"):
        task.evaluate(w[:, :-1], np.arange(2), 0)
    with pytest.raises(ValueError, match="seeds"):
        task.evaluate(w, np.arange(3), 0)
    with pytest.raises(ValueError, match="non-negative"):
        task.evaluate(w, np.array([0, -1]), 0)

# ---------------------------------------------------------------- scores mean what they say


def test_bound_policy_acts_exactly_like_policy_act():
    rng = np.random.default_rng(0)
    for spec in (CartPoleSwitchTask.policy, LunarLanderSwitchTask.policy, AntTask.policy):
        w = population(spec, 7, scale=1.0)
        obs = rng.normal(size=(7, spec.obs_dim)).astype(np.float32)
        assert np.array_equal(BoundPolicy(spec, w).act(obs), policy_act(spec, w, obs))


def test_episode_seeds_are_per_individual():
    s = episode_seeds(np.array([5, 6, 5]), 3)
    assert s.shape == (3, 3) and s.dtype == np.int64 and (s >= 0).all()
    assert np.array_equal(s[0], s[2]) and len(set(s[:2].ravel())) == 6
    assert np.array_equal(episode_seeds(np.array([6]), 3)[0], s[1])


def test_good_cartpole_policy_scores_high_off_and_low_on():
    task = make_task("cartpole-switch", episodes=3)  # switch on for generations 100..199
    w = balancing_weights()[None]
    seeds = np.array([1])
    assert task.evaluate(w, seeds, 0)[0] > 450
    assert task.evaluate(w, seeds, 99)[0] > 450
    assert task.evaluate(w, seeds, 100)[0] < 50
    assert task.evaluate(w, seeds, 199)[0] < 50
    assert task.evaluate(w, seeds, 200)[0] > 450


def _gym_return(env, spec, w, seed, mapping=None):
    obs, _ = env.reset(seed=int(seed))
    total, done = 0.0, False
    while not done:
        a = int(policy_act(spec, w[None], obs[None])[0])
        obs, r, term, trunc, _ = env.step(mapping[a] if mapping else a)
        total += float(r)
        done = term or trunc
    return total


def test_cartpole_task_matches_gymnasium_rollouts():
    task = make_task("cartpole-switch", episodes=2)
    w, seeds = cartpole_population(), np.arange(10, 18)
    ep = episode_seeds(seeds, 2)
    env = gym.make("CartPole-v1")
    for gen, mapping in ((0, None), (150, (1, 0))):
        got = task.evaluate(w, seeds, gen)
        want = [np.mean([_gym_return(env, task.policy, w[i], s, mapping) for s in ep[i]]) for i in range(len(w))]
        assert np.array_equal(got, want)


def test_lunarlander_task_matches_gymnasium_rollouts():
    task = make_task("lunarlander-switch", schedule="5-", horizon=150)
    w, seeds = population(task.policy, 3, seed=3), np.array([4, 5, 6])
    ep = episode_seeds(seeds, 1)[:, 0]
    env = gym.make("LunarLander-v3", max_episode_steps=150)
    for gen, mapping in ((0, None), (5, (0, 3, 2, 1))):
        got = task.evaluate(w, seeds, gen)
        assert np.array_equal(got, [_gym_return(env, task.policy, w[i], ep[i], mapping) for i in range(3)])
    assert not np.array_equal(task.evaluate(w, seeds, 0), task.evaluate(w, seeds, 5))

# ---------------------------------------------------------------- batch independence, workers, pickling


def _split_equal(task, w, seeds, generation):
    whole = task.evaluate(w, seeds, generation)
    k = len(w) // 2
    halves = np.concatenate([task.evaluate(w[:k], seeds[:k], generation),
                             task.evaluate(w[k:], seeds[k:], generation)])
    singles = np.concatenate([task.evaluate(w[i:i + 1], seeds[i:i + 1], generation) for i in range(len(w))])
    assert np.array_equal(whole, halves) and np.array_equal(whole, singles)
    return whole


@pytest.mark.parametrize("generation", [0, 150])
def test_cartpole_scores_do_not_depend_on_the_batch(generation):
    w = cartpole_population()
    scores = _split_equal(make_task("cartpole-switch", episodes=3), w, np.arange(100, 108), generation)
    assert scores.dtype == np.float64 and scores.shape == (8,)
    assert len(set(scores)) > 3  # a real mix of short and long episodes (exercises the compaction)


def test_gym_task_scores_do_not_depend_on_the_batch():
    ll = make_task("lunarlander-switch", horizon=100, episodes=2)
    _split_equal(ll, population(ll.policy, 4), np.arange(4), 250)
    ant = make_task("ant", horizon=30)
    _split_equal(ant, population(ant.policy, 4), np.arange(4), 0)


def _evaluate_chunk(args):
    task, w, seeds, generation = args
    return task.evaluate(w, seeds, generation)


def test_one_or_two_worker_processes_give_identical_scores():
    task = make_task("cartpole-switch", episodes=2)
    w, seeds = cartpole_population(), np.arange(8)
    local = task.evaluate(w, seeds, 120)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
        parts = list(pool.map(_evaluate_chunk, [(task, w[:3], seeds[:3], 120), (task, w[3:], seeds[3:], 120)]))
    assert np.array_equal(np.concatenate(parts), local)


def test_tasks_pickle():
    for task in (make_task("cartpole-switch", episodes=2), make_task("lunarlander-switch", full_reversal=True),
                 make_task("ant", horizon=10)):
        clone = pickle.loads(pickle.dumps(task))
        assert clone == task and type(clone) is type(task)
    ll = make_task("lunarlander-switch", horizon=50)
    w = population(ll.policy, 2)
    before = ll.evaluate(w, np.arange(2), 0)  # builds and caches an env in this process
    assert np.array_equal(pickle.loads(pickle.dumps(ll)).evaluate(w, np.arange(2), 0), before)

# ---------------------------------------------------------------- NaN guard


def test_non_finite_reward_names_task_and_individual(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo writes MUJOCO_LOG.TXT to the working directory on NaN controls
    ant = make_task("ant", horizon=5)
    w = population(ant.policy, 3, scale=0.1)
    w[1] = np.nan  # NaN torques: Ant-v5's control cost (and so its reward) is NaN
    with pytest.raises(ValueError, match=r"task 'ant': individual 1 got a non-finite reward"):
        ant.evaluate(w, np.arange(3), 0)
