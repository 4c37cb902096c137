"""Plants: the interface, exact state save/restore, drift effects, and the nominal controllers."""
import mujoco
import numpy as np
import pytest
from dm_control.suite import cartpole as suite_cartpole

from sim.drift_spec import VARIANTS, DriftSpec
from sim.plants import PLANTS, Plant, make_plant

SHAPES = {  # name: (obs_dim, act_dim, control_dt, joint_names[:2])
    "cartpole": (5, 1, 0.01, ["slider", "hinge_1"]),
    "walker": (24, 6, 0.025, ["rootz", "rootx"]),
    "reacher": (7, 2, 0.02, ["shoulder", "wrist"]),
}


def random_actions(plant, n, seed=0):
    return np.random.default_rng(seed).uniform(plant.act_low, plant.act_high, (n, plant.act_dim))


def run(plant, actions):
    out = []
    for a in actions:
        obs, r = plant.act(a)
        out.append(np.concatenate([plant.get_state(), obs, [r]]))
    return np.array(out)


def test_registry():
    assert sorted(PLANTS) == ["cartpole", "reacher", "walker"]
    with pytest.raises(ValueError, match="cartpole.*reacher.*walker"):
        make_plant("hexapod")


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_interface(name):
    obs_dim, act_dim, dt, joints = SHAPES[name]
    plant = make_plant(name, seed=1)
    assert isinstance(plant, Plant) and plant.name == name
    assert (plant.obs_dim, plant.act_dim) == (obs_dim, act_dim)
    assert plant.control_dt == pytest.approx(dt)
    assert plant.joint_names[:2] == joints
    assert np.all(plant.act_low == -1) and np.all(plant.act_high == 1)
    obs = plant.reset(3)
    assert obs.dtype == np.float64 and obs.shape == (obs_dim,) and np.all(np.isfinite(obs))
    n_joints = len(plant.joint_names)
    assert plant.joint_positions().shape == plant.joint_velocities().shape == (n_joints,)
    obs, reward = plant.act(np.zeros(act_dim))
    assert obs.shape == (obs_dim,) and 0.0 <= reward <= 1.0
    assert plant.time == pytest.approx(dt)
    with pytest.raises(ValueError, match="non-finite"):
        plant.act(np.full(act_dim, np.nan))


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_reset_is_seeded(name):
    a, b = make_plant(name, seed=5), make_plant(name, seed=5)
    assert np.array_equal(a.observe(), b.observe())
    assert not np.array_equal(a.reset(6), b.observe())


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_get_set_state_replays_identically(name):
    plant = make_plant(name, seed=2, drift={"action_delay": 2})
    run(plant, random_actions(plant, 15, seed=1))        # somewhere mid-episode, queue full
    saved = plant.get_state()
    actions = random_actions(plant, 40, seed=2)
    first = run(plant, actions)
    plant.set_state(saved)
    second = run(plant, actions)
    assert np.array_equal(first, second)                  # bit for bit, walker contacts included
    with pytest.raises(ValueError, match="state has"):
        plant.set_state(saved[:-1])


def test_actuator_gain_minus_one_inverts_the_motor():
    def cart_velocity_after_push(drift):
        plant = make_plant("cartpole", seed=0, drift=drift)
        plant.set_state(make_plant("cartpole", seed=0).get_state())
        for _ in range(10):
            plant.act([1.0])
        return plant.physics.named.data.qvel["slider"]

    v0 = cart_velocity_after_push(None)
    v_rev = cart_velocity_after_push(VARIANTS["cartpole"]["reversed_motor"])
    v_half = cart_velocity_after_push(VARIANTS["cartpole"]["gain_loss"])
    assert v0 > 0.5 and v_rev < -0.5
    assert abs(v_rev + v0) < 0.05 * v0          # same push, other way (gravity on the pole aside)
    assert 0.4 * v0 < v_half < 0.6 * v0


def test_mass_scale_changes_dynamics_and_equals_compiling_the_heavier_model():
    heavy = make_plant("cartpole", seed=0, drift=VARIANTS["cartpole"]["payload"])
    nominal = make_plant("cartpole", seed=0)
    xml, assets = suite_cartpole.get_model_and_assets()
    compiled = mujoco.MjModel.from_xml_string(xml.replace(b'mass=".1"', b'mass=".3"'), assets)
    data = mujoco.MjData(compiled)
    mujoco.mj_setState(compiled, data, nominal.get_state(), mujoco.mjtState.mjSTATE_INTEGRATION)
    actions = random_actions(nominal, 100, seed=3)
    a, b = run(heavy, actions), run(nominal, actions)
    for u in actions:
        data.ctrl[:] = u
        mujoco.mj_step(compiled, data)
    assert np.abs(a[:, 1:5] - b[:, 1:5]).max() > 0.05    # qpos/qvel visibly different
    np.testing.assert_allclose(heavy.data.qpos, data.qpos, rtol=0, atol=1e-9)
    for field in ("body_mass", "body_inertia", "body_subtreemass", "dof_invweight0"):
        np.testing.assert_allclose(getattr(heavy.model, field), getattr(compiled, field),
                                   rtol=1e-12)


def test_observation_bias_noise_and_action_delay():
    clean = make_plant("cartpole", seed=4)
    biased = make_plant("cartpole", seed=4, drift={"obs_bias": {"pole_sin": 0.1, "0": -0.2}})
    np.testing.assert_allclose(biased.observe() - clean.observe(), [-0.2, 0, 0.1, 0, 0])
    noisy = make_plant("cartpole", seed=4, drift={"obs_noise": 0.05})
    spread = np.std([noisy.observe() - clean.observe() for _ in range(400)], axis=0)
    np.testing.assert_allclose(spread, 0.05, rtol=0.2)

    delayed = make_plant("cartpole", seed=4, drift={"action_delay": 3})
    ref = make_plant("cartpole", seed=4)
    push = [[1.0]] * 3 + [[0.0]] * 3
    for _ in range(3):                                   # the first 3 ticks apply the idle queue
        delayed.act(push[0])
        ref.act([0.0])
    assert np.array_equal(delayed.data.qvel, ref.data.qvel)
    delayed.act([0.0])
    ref.act([1.0])
    assert np.array_equal(delayed.data.qvel, ref.data.qvel)  # the first push lands now


def test_nominal_controller_keeps_the_pole_up_for_ten_seconds():
    for seed in range(3):
        plant = make_plant("cartpole", seed=seed)
        controller = plant.nominal_controller()
        obs, angles, carts, rewards = plant.observe(), [], [], []
        for _ in range(int(10 / plant.control_dt)):
            obs, r = plant.act(controller(obs))
            angles.append(plant.pole_angle())
            carts.append(plant.cart_position())
            rewards.append(r)
        assert np.max(np.abs(angles)) < 0.2
        assert np.ptp(carts) > 0.5                       # it does follow the moving setpoint
        assert np.mean(rewards) > 0.9


def test_nominal_controller_fails_on_the_headline_drift():
    plant = make_plant("cartpole", seed=0, drift=VARIANTS["cartpole"]["payload_reversed"])
    controller, obs, rewards = plant.nominal_controller(), plant.observe(), []
    for _ in range(500):
        obs, r = plant.act(controller(obs))
        rewards.append(r)
    assert np.mean(rewards) < 0.5


def test_walker_squats_without_falling_and_reacher_tracks():
    walker = make_plant("walker", seed=1)
    controller, obs, heights = walker.nominal_controller(), walker.observe(), []
    for _ in range(int(10 / walker.control_dt)):
        obs, _ = walker.act(controller(obs))
        heights.append(walker.torso_height())
    assert min(heights) > 1.1 and np.ptp(heights) > 0.03

    reacher = make_plant("reacher", seed=1)
    controller, obs, rewards = reacher.nominal_controller(), reacher.observe(), []
    for _ in range(int(8 / reacher.control_dt)):
        obs, r = reacher.act(controller(obs))
        rewards.append(r)
    assert np.mean(rewards[len(rewards) // 2:]) > 0.8


def test_clear_drift_gives_back_the_nominal_trajectory():
    plant = make_plant("walker", seed=0, drift=VARIANTS["walker"]["low_friction"])
    plant.clear_drift()
    plant.reset(0)
    fresh = make_plant("walker", seed=0)
    actions = random_actions(plant, 30)
    assert np.array_equal(run(plant, actions), run(fresh, actions))
    assert plant.drift == DriftSpec()
