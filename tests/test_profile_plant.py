"""`ProfilePlant`: a plant built from a robot profile. Batched evaluation is the one-plant path bit
for bit (as tests/test_fast_eval.py shows for the hand-coded plants), the shipped built-in profiles
reproduce the hand-coded plants' rewards exactly, and what the profile says (command order, IMU,
odometry, falls, initial state) is what the plant does."""
from pathlib import Path

import mujoco
import numpy as np
import pytest

from sim.drift_spec import DriftSpec
from sim.plant_task import PlantTask
from sim.plants import Cartpole, make_plant, make_plant_from_profile
from sim.plants.base import STATE_SPEC, PlantBatch
from sim.plants.profile_plant import ProfilePlant
from sim.policy import init_policy
from sim.profile import builtin_profiles, load_profile

ROBOTS = Path(__file__).resolve().parents[1] / "launch" / "robots"
PROFILES = ("cartpole", "walker", "reacher", "ant", "pusher")
TICKS = {"cartpole": 200, "walker": 60, "reacher": 200, "ant": 100, "pusher": 120}
DRIFTS = {  # model drift by the model's own names, and sensor drift by the profile's observation names
    "cartpole": DriftSpec(mass_scale={"pole_1": 2.0}, actuator_gain={"slide": -1.0},
                          obs_bias={"hinge_1.position": 0.05}, obs_noise=0.01, action_delay=2),
    "walker": DriftSpec(mass_scale={"torso": 1.5}, obs_bias={"imu.orientation.w": 0.01}, obs_noise=0.01,
                        action_delay=1),
    "reacher": DriftSpec(damping_scale={"*": 2.0}, obs_bias={"to_target_x": 0.02}, action_delay=3),
    "ant": DriftSpec(mass_scale={"torso": 2.0}, friction_scale={"*": 0.5}, obs_bias={"odom.position.z": 0.05},
                     obs_noise=0.01, action_delay=1),
    "pusher": DriftSpec(mass_scale={"r_wrist_roll_link": 4.0}, obs_noise=0.02, action_delay=2),
}


def path(name):
    return str(ROBOTS / f"{name}.yaml")


def mj_state(model, data):
    state = np.empty(mujoco.mj_stateSize(model, STATE_SPEC))
    mujoco.mj_getState(model, data, state, STATE_SPEC)
    return state


def test_make_plant_takes_profiles_and_keeps_the_builtin_names():
    assert type(make_plant("cartpole")) is Cartpole
    assert isinstance(make_plant(path("cartpole")), ProfilePlant)
    assert isinstance(make_plant_from_profile("ant"), ProfilePlant)          # a shipped profile by name
    assert isinstance(make_plant_from_profile(load_profile(path("pusher"))), ProfilePlant)
    assert set(PROFILES) <= set(builtin_profiles())
    with pytest.raises(ValueError, match="unknown plant"):
        make_plant("no_such_robot")


@pytest.mark.parametrize("drifted", [False, True])
@pytest.mark.parametrize("name", PROFILES)
def test_batch_ticks_match_plant_act(name, drifted):
    drift = DRIFTS[name] if drifted else DriftSpec()
    n = 5
    seeds = [11 + 13 * i for i in range(n)]
    refs = [make_plant(path(name), drift=drift) for _ in range(n)]
    batch = PlantBatch(make_plant(path(name)), n)
    batch.plant.apply_drift(drift)
    obs = batch.reset(seeds)
    assert np.array_equal(obs, np.array([p.reset(s) for p, s in zip(refs, seeds)]))
    assert np.array_equal(batch.constants, np.array([p.episode_constants() for p in refs]).reshape(n, -1))
    rng = np.random.default_rng(PROFILES.index(name))
    falls = 0
    for t in range(TICKS[name]):
        actions = rng.uniform(-1.5, 1.5, (n, batch.plant.act_dim)) * (1.0 if t % 40 < 30 else 0.2)
        obs, reward = batch.act(actions)
        fallen = batch.plant.fallen_batch(obs)
        falls += int(fallen.sum())
        for i, p in enumerate(refs):
            ref_obs, ref_reward = p.act(actions[i])
            assert np.array_equal(obs[i], ref_obs), (t, i, obs[i] - ref_obs)
            assert reward[i] == ref_reward, (t, i, reward[i] - ref_reward)
            assert fallen[i] == p.fallen_batch(ref_obs[None])[0] == p.fallen(), (t, i)
            assert np.array_equal(mj_state(batch.plant.model, batch.data.datas[i]), mj_state(p.model, p.data))
    if name == "walker":
        assert falls > 0          # the fall conditions were exercised, not only "never fallen"


@pytest.mark.parametrize("name", ["ant", "pusher", "walker"])
def test_plant_task_evaluate_is_the_reference_loop(name):
    """The whole population evaluation (falls stop the reward) on a profile robot, batched vs one by one."""
    task = PlantTask(path(name), drifts=(DriftSpec(), DRIFTS[name]), horizon=30 if name == "walker" else 60,
                     episodes=2)
    rng = np.random.default_rng(0)
    weights = np.stack([init_policy(task.policy, i) for i in range(4)]) * rng.uniform(0.5, 4.0, (4, 1))
    weights, seeds = weights.astype(np.float32), np.array([3, 1, 4, 1])
    fast = task.evaluate(weights, seeds)
    assert np.array_equal(fast, task.evaluate_reference(weights, seeds))
    assert np.all(np.isfinite(fast))


@pytest.mark.parametrize("name", ["cartpole", "walker", "reacher"])
def test_builtin_profiles_reward_is_the_hand_coded_reward(name):
    """Same initial state from the same seed, same reward on the same (random, wild) states."""
    prof, hand = make_plant(path(name)), make_plant(name)
    for seed in range(5):
        prof.reset(seed), hand.reset(seed)
        assert np.array_equal(prof.data.qpos, hand.data.qpos) and np.array_equal(prof.data.qvel, hand.data.qvel)
        assert np.array_equal(prof.episode_constants(), hand.episode_constants())
    rng = np.random.default_rng(1)
    values = []
    for _ in range(400):
        seed = int(rng.integers(1 << 30))
        for p in (prof, hand):
            p.reset(seed)                       # same draws: same target circle (reacher)
            state = np.random.default_rng(seed)
            model, data = p.model, p.data
            data.qpos[:] = state.normal(0.0, 1.0, model.nq) * state.choice([0.05, 1.0, 3.0])
            data.qvel[:] = state.normal(0.0, 1.0, model.nv) * state.choice([0.1, 2.0, 10.0])
            data.ctrl[:] = state.uniform(-1.2, 1.2, model.nu) * state.choice([0.0, 0.01, 1.0])
            data.time = state.uniform(0.0, 10.0)
            mujoco.mj_forward(model, data)
        assert prof.reward() == hand.reward()
        values.append(hand.reward())
    assert len(set(values)) > (1 if name == "reacher" else 100)   # not a saturated comparison


def test_command_order_is_the_profiles_not_the_models():
    """The ant's MJCF lists leg 4 first; the profile commands legs 1..4: index 0 drives hip_1."""
    p = make_plant(path("ant"))
    assert p.actuator_names[0] == "joint:hip_1"
    a = np.zeros(p.act_dim)
    a[0] = 0.7
    p.act(a)
    hip_1 = next(i for i in range(p.model.nu) if p.model.joint(p.model.actuator_trnid[i, 0]).name == "hip_1")
    assert p.data.ctrl[hip_1] == 0.7 and np.count_nonzero(p.data.ctrl) == 1


def test_imu_and_odometry_are_the_floating_base_as_mujoco_sees_it():
    p = make_plant(path("ant"), seed=2)
    rng = np.random.default_rng(0)
    for _ in range(40):
        obs, _ = p.act(rng.uniform(-1, 1, p.act_dim))
    col = {n: i for i, n in enumerate(p.obs_names)}
    torso = p.model.body("torso").id
    gyro = np.zeros(6)
    mujoco.mj_objectVelocity(p.model, p.data, mujoco.mjtObj.mjOBJ_BODY, torso, gyro, 1)   # local frame
    w = obs[col["imu.angular_velocity.x"]:col["imu.angular_velocity.z"] + 1]
    assert np.allclose(w, gyro[:3], atol=1e-9) and np.linalg.norm(w) > 0.1
    assert np.array_equal(obs[col["imu.orientation.w"]:col["imu.orientation.z"] + 1], p.data.xquat[torso])
    assert np.array_equal(obs[col["odom.position.x"]:col["odom.position.z"] + 1], p.data.xpos[torso])
    assert np.array_equal(obs[col["odom.linear_velocity.x"]:col["odom.linear_velocity.z"] + 1], p.data.qvel[:3])


def test_falls_come_from_the_profiles_body_conditions():
    p = make_plant(path("ant"))
    assert not p.fallen()
    p.data.qpos[2] = 0.1                        # torso below min_height 0.26
    mujoco.mj_forward(p.model, p.data)
    assert p.fallen()
    p.reset(0)
    p.data.qpos[3:7] = [np.cos(np.pi / 4), np.sin(np.pi / 4), 0, 0]   # tilted 90 deg > 80
    mujoco.mj_forward(p.model, p.data)
    assert p.fallen()


def test_initial_state_follows_the_profile():
    p = make_plant(path("pusher"))
    prof = p.profile
    elbow = p.model.joint("r_elbow_flex_joint").qposadr[0]
    starts = []
    for seed in range(200):
        p.reset(seed)
        starts.append(p.data.qpos[elbow])
    starts = np.array(starts)
    assert abs(starts.mean() - (-1.0)) < 0.02 and 0.03 < starts.std() < 0.07   # qpos -1.0 + N(0, 0.05)
    assert np.array_equal(p.reset(7), p.reset(7))
    assert prof.doc.initial_state.qpos_noise == 0.05


def test_model_reference_reward_is_one_at_the_reference_and_falls_away():
    p = make_plant(path("pusher"))
    p.reset(0)
    p.data.qpos[:] = 0
    p.data.qpos[p.profile.qpos_adr] = [0, 0.3, 0, -1.0, 0, -0.5, 0]
    p.data.qvel[:] = 0
    mujoco.mj_forward(p.model, p.data)
    assert p.reward() == 1.0
    p.data.qpos[p.model.joint("r_elbow_flex_joint").qposadr[0]] = -1.5
    mujoco.mj_forward(p.model, p.data)
    assert 0.0 < p.reward() < 1.0


def test_terms_objective_scores_the_named_quantities():
    p = make_plant(path("ant"))
    p.reset(0)
    up = p.reward()
    p.data.qpos[2] = 0.0          # torso on the floor: height term 0 (margin 0.3 below 0.45)
    mujoco.mj_forward(p.model, p.data)
    low = p.reward()
    p.data.ctrl[:] = 1.0          # full effort: effort term 0
    assert low < up and p.reward() < low


def test_declarative_terms_reproduce_the_walker_stand_reward(tmp_path):
    """The suite's stand reward, (3 standing + upright) / 4, written as profile terms: the same values
    (up to the last bit: dm_control squares the height as a scalar, the terms as an array)."""
    import yaml
    doc = yaml.safe_load((ROBOTS / "walker.yaml").read_text())
    doc["objective"] = {"kind": "terms", "terms": [
        {"tolerance": "body_height(torso)", "bounds": [1.2, float("inf")], "margin": 0.6, "weight": 3},
        {"upright": "torso", "weight": 1}]}
    doc["assets"] = {}
    (tmp_path / "walker_terms.yaml").write_text(yaml.safe_dump(doc))
    terms, hand = make_plant(str(tmp_path / "walker_terms.yaml")), make_plant("walker")
    rng = np.random.default_rng(5)
    got, want = [], []
    for _ in range(300):
        q, v = rng.normal(0, 0.7, hand.model.nq), rng.normal(0, 2.0, hand.model.nv)
        for p in (terms, hand):
            p.set_qpos_qvel(q, v)
        got.append(terms.reward())
        want.append(hand.reward())
    assert np.allclose(got, want, rtol=1e-12, atol=1e-15) and np.std(want) > 0.05


MJCF = """<mujoco><option timestep="0.005"/>
  <worldbody><body name="cart"><joint name="rail" type="slide" axis="1 0 0" range="-1 1"/>
    <geom type="box" size="0.1 0.1 0.1" mass="1"/>
    <body name="link" pos="0 0 0.1"><joint name="pivot" type="hinge" axis="0 1 0"/>
      <geom type="capsule" fromto="0 0 0 0 0 0.5" size="0.02" mass="0.2"/>
      <site name="imu_site" pos="0 0.01 0.3" euler="30 0 45"/></body></body></worldbody>
  <actuator><motor joint="pivot" ctrlrange="-2 2"/><motor name="push" joint="rail" ctrlrange="-1 1"/></actuator>
  <keyframe><key name="tilted" qpos="0.3 0.2" qvel="0 1"/></keyframe>
</mujoco>"""


def small_robot(tmp_path, **overrides):
    import yaml
    (tmp_path / "models").mkdir(exist_ok=True)
    (tmp_path / "models" / "slider.xml").write_text(MJCF)
    doc = {"version": 1, "name": "slider", "model": {"mjcf": "models/slider.xml"}, "control": {"rate_hz": 50},
           "observe": {"joint_states": {"joints": {"pivot_joint": "pivot", "rail_joint": "rail"}}},
           "command": {"actuators": ["push", "joint:pivot"]}}
    doc.update(overrides)
    (tmp_path / "slider.yaml").write_text(yaml.safe_dump(doc))
    return make_plant(str(tmp_path / "slider.yaml"))


def test_keyframe_and_named_qpos_start_and_observation_order(tmp_path):
    p = small_robot(tmp_path, initial_state={"keyframe": "tilted", "qpos": {"rail": -0.5}})
    assert p.n_sub_steps == 4 and p.obs_names[:2] == ("pivot_joint.position", "rail_joint.position")
    obs = p.reset(0)
    assert obs.tolist() == [0.2, -0.5, 1.0, 0.0]      # keyframe pivot, named rail, keyframe qvel
    assert p.act_high.tolist() == [1.0, 2.0]          # command order: push (rail), then the pivot motor
    p.act([0.5, -1.5])
    assert p.data.ctrl.tolist() == [-1.5, 0.5]


def test_product_of_terms(tmp_path):
    terms = [{"tolerance": "joint_position(rail)", "bounds": [-0.1, 0.1], "margin": 0.5},
             {"tolerance": "joint_velocity(pivot)", "margin": 2.0, "sigmoid": "quadratic", "value_at_margin": 0.0,
              "weight": 2}]
    p = small_robot(tmp_path, objective={"kind": "terms", "combine": "product", "terms": terms})
    from dm_control.utils import rewards
    for q, v in ((0.0, 0.0), (0.3, 0.5), (-0.7, -1.0), (0.05, 3.0)):
        p.set_qpos_qvel([q, 0.0], [0.0, v])
        want = rewards.tolerance(np.array([q]), (-0.1, 0.1), 0.5)[0] * \
            rewards.tolerance(np.array([v]), (0, 0), 2.0, "quadratic", 0.0)[0] ** 2
        assert np.isclose(p.reward(), want, rtol=1e-14, atol=0)


def test_imu_on_a_site_is_the_sites_frame(tmp_path):
    p = small_robot(tmp_path, observe={"joint_states": {"joints": {"pivot_joint": "pivot", "rail_joint": "rail"}},
                                       "imu": {"site": "imu_site"}})
    rng = np.random.default_rng(0)
    for _ in range(30):
        obs, _ = p.act(rng.uniform(-1, 1, 2))
    site = p.model.site("imu_site").id
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, p.data.site_xmat[site])
    got = obs[p.obs_names.index("imu.orientation.w"):][:4]
    assert np.allclose(got, quat * np.sign(quat[0] * got[0]), atol=1e-12)
    vel = np.zeros(6)
    mujoco.mj_objectVelocity(p.model, p.data, mujoco.mjtObj.mjOBJ_SITE, site, vel, 1)
    w = obs[p.obs_names.index("imu.angular_velocity.x"):][:3]
    assert np.allclose(w, vel[:3], atol=1e-9) and abs(w).max() > 0.1
