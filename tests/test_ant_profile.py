"""The gymnasium ant as a driftgate robot (launch/robots/ant.yaml): a floating base observed through
its IMU and odometry, a posture task that needs active control, a default drift the robot can still
do the task under, and the pieces the profile path needed for it (actuators named by their target,
system identification of a profile robot in its command order, the base measured live)."""
from pathlib import Path

import numpy as np
import pytest

from sim.drift_spec import DriftSpec
from sim.plants import make_plant

ROOT = Path(__file__).resolve().parents[1]
ANT = str(ROOT / "launch" / "robots" / "ant.yaml")
STANCE = np.radians(58.0) * np.array([0, 1, 0, -1, 0, -1, 0, 1])   # ankles 58 deg, hips straight


def stance_controller(signs=np.ones(8), kp=3.0, kd=0.3):
    """Joint PD to a raised stance (torso at ~0.58 m); `signs` flips motors the robot has backwards."""
    return lambda obs: np.clip(signs * (kp * (STANCE - obs[:8]) - kd * obs[8:16]), -1, 1)


def episode_return(plant, controller, seed, ticks=300):
    obs, total = plant.reset(seed), 0.0
    for _ in range(ticks):
        obs, r = plant.act(controller(obs))
        if plant.fallen():
            break
        total += r
    return total


@pytest.fixture(scope="module")
def ant():
    return make_plant(ANT, seed=0)


def test_unnamed_actuators_are_named_by_their_target_so_a_drift_can_name_them(ant):
    # gymnasium's ant.xml names no actuator; the profile and the DriftSpec both say joint:ankle_1
    names = [ant.model.actuator(i).name for i in range(ant.model.nu)]
    assert names[:3] == ["joint:hip_4", "joint:ankle_4", "joint:hip_1"]     # MuJoCo's order: leg 4 first
    drifted = make_plant(ANT, drift=ant.profile.default_drift)
    gear = drifted.model.actuator_gear[:, 0]
    assert gear[drifted.model.actuator("joint:ankle_1").id] == -150.0
    assert gear[drifted.model.actuator("joint:ankle_2").id] == -150.0
    assert sorted(gear)[2:] == [150.0] * 6


def test_the_task_needs_control_and_the_default_drift_defeats_a_stance_controller_it_does_not_forbid():
    nominal, drifted = make_plant(ANT), make_plant(ANT, drift=DriftSpec.parse(make_plant(ANT).profile.default_drift))
    seeds = range(3)
    mean = lambda plant, ctrl: float(np.mean([episode_return(plant, ctrl, 100 + s) for s in seeds]))  # noqa: E731
    held = mean(nominal, stance_controller())
    assert held > 280                                       # the raised stance scores near the 300 maximum
    assert mean(nominal, lambda obs: np.zeros(8)) < 0.5 * held      # limp: the torso sinks out of the band
    pushed = lambda obs: 0.05 * np.sign(STANCE)             # noqa: E731  ankles pushed to their stops
    assert mean(nominal, pushed) < 0.7 * held                      # too high: the band needs feedback
    assert mean(drifted, stance_controller()) < 0.4 * held          # front ankles reversed: it pitches over
    flipped = np.ones(8)
    flipped[[1, 3]] = -1                                     # what the drift needs: those two commands negated
    assert mean(drifted, stance_controller(flipped)) > 0.95 * held


def test_the_controller_observes_the_base_it_is_given_not_the_models_start_pose(ant):
    """Joint states alone are not an observation of a floating base: the map needs the IMU and
    odometry readings (refusal, staleness: tests/test_floating_base.py)."""
    from sim.observation import make_observation_map
    rng = np.random.default_rng(0)
    ant.reset(5)
    for _ in range(40):
        obs, _ = ant.act(rng.uniform(-0.3, 0.3, 8))
    obs_map = make_observation_map(ANT)
    assert obs_map.base_topics == {"imu": "imu", "odometry": "odom"}
    n = len(ant.joint_names)
    q, v = ant.joint_positions(), ant.joint_velocities()
    with pytest.raises(ValueError, match="needs"):
        obs_map(q, v)
    assert np.array_equal(obs_map(q, v, obs[2 * n:2 * n + 7], obs[2 * n + 7:2 * n + 13]), obs)


def test_the_drift_monitor_codec_puts_the_floating_base_back_together(ant):
    from sim.nominal_model import profile_codec
    rng = np.random.default_rng(1)
    ant.reset(6)
    for _ in range(40):
        obs, _ = ant.act(rng.uniform(-0.3, 0.3, 8))
    q, v = profile_codec(ant).from_obs(obs)
    assert np.allclose(q, ant.data.qpos, atol=1e-12)      # position from odometry, quaternion from the IMU
    assert np.allclose(v, ant.data.qvel, atol=1e-12)      # world linear velocity, body-frame angular velocity


def test_sysid_replays_a_profile_robots_commands_on_the_right_motors_and_finds_the_reversed_ones():
    from sim.sysid import Replay, identify, record
    from sim.sysid_params import parameter_set
    plant = make_plant(ANT)
    names = [p.name for p in parameter_set(plant)]
    assert "actuator_gain.joint:ankle_1" in names and "mass_scale.torso" in names and len(names) == 11
    drift = DriftSpec.parse(plant.profile.default_drift)
    tel = record(make_plant(ANT, seed=2, drift=drift), stance_controller(), 200, noise_std=0.0, seed=2)
    replay = Replay.build(make_plant(ANT), tel, horizon=10, max_windows=20)
    assert replay.loss(drift) < 1e-3 * replay.loss(DriftSpec())   # the true drift explains the window
    gains = [p for p in parameter_set(plant) if p.field == "actuator_gain"]
    est = identify(make_plant(ANT), tel, params=gains, max_evals=150, max_seconds=60, seed=0).params
    assert est["actuator_gain.joint:ankle_1"] < 0 and est["actuator_gain.joint:ankle_2"] < 0
    assert all(est[f"actuator_gain.joint:{j}"] > 0 for j in ("ankle_3", "ankle_4", "hip_1", "hip_2"))


def test_the_shipped_suite_names_its_profile_relative_to_itself(tmp_path, monkeypatch):
    from safety.suite import load_suite
    monkeypatch.chdir(tmp_path)                         # not the repository: a relative path must not matter
    suite = load_suite(ROOT / "launch" / "robots" / "suites" / "ant.yaml")
    assert Path(suite.plant) == Path(ANT).resolve()
    target = next(s for s in suite.scenarios if s.tag == "target")
    assert target.drift == DriftSpec.parse(make_plant(ANT).profile.default_drift)


def test_the_shipped_champion_stands_and_fails_under_the_default_drift():
    from sim.distill import policy_controller
    from sim.genome import load_genome
    from sim.profile import load_profile
    profile = load_profile(ANT)
    genome = load_genome(profile.asset_path("champion"))
    ctrl = policy_controller(genome)()                       # as the runtime runs it
    drift = DriftSpec.parse(profile.default_drift)
    nominal = [episode_return(make_plant(ANT), ctrl, 10_000 + s) for s in range(2)]
    drifted = [episode_return(make_plant(ANT, drift=drift), ctrl, 10_000 + s) for s in range(2)]
    assert min(nominal) > 280
    assert max(drifted) < 0.4 * min(nominal)


def test_sysid_uncertainty_at_the_gain_floor_does_not_step_to_an_invalid_gain():
    # a live demo's job died here: CMA-ES put a reversed ankle's gain at the 1e-3 floor and the
    # finite-difference step of the Laplace std asked for 0.000999, which no DriftSpec accepts
    from sim.sysid import Replay, _laplace_std, record
    from sim.sysid_params import parameter_set
    plant = make_plant(ANT)
    params = tuple(p for p in parameter_set(plant) if p.name in ("actuator_gain.joint:ankle_1", "mass_scale.torso"))
    tel = record(make_plant(ANT, seed=3), stance_controller(), 60, noise_std=0.01, seed=3)
    replay = Replay.build(make_plant(ANT), tel, horizon=10, max_windows=6)
    est = {p.name: (1e-3 if p.field == "actuator_gain" else 1.0) for p in params}   # in the parameters order
    std = _laplace_std(replay, params, est, DriftSpec())
    assert all(np.isfinite(v) for v in std.values())
