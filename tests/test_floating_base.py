"""A floating base on the live side: the controller builds a profile robot's observation from joint
states plus the IMU and odometry the profile lists (sim.observation.ProfileObservation), refuses and
counts bad base readings, and holds the safe command while a base sensor is missing or stale."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from sim.observation import ProfileObservation, base_readings, make_observation_map, odometry_values
from sim.plants import make_plant
from sim.profile import find_profile

from constant_runtime import constant_runtime

warnings.filterwarnings("ignore", message=".*DISPLAY.*")
ANT = str(find_profile("ant"))


def _measure(plant):
    """What the robot's sensors report, turned into the observation's channels as the node does."""
    r = base_readings(plant)
    imu = np.concatenate([r["imu"]["orientation"], r["imu"]["angular_velocity"]])
    o = r["odometry"]
    return imu, odometry_values(o["position"], o["orientation"], o["linear_velocity"])


def test_the_live_observation_of_a_floating_base_is_the_simulated_one():
    """Joint states + Imu + Odometry (twist in the child frame, rotated back to the world) give the
    plant's own observation, so a champion trained in simulation sees on the robot what it saw there."""
    plant = make_plant(ANT, seed=2)
    obs_map = make_observation_map(ANT)
    assert isinstance(obs_map, ProfileObservation) and obs_map.base_sensors == ("imu", "odometry")
    assert obs_map.base_topics == {"imu": "imu", "odometry": "odom"}
    plant.reset(5)
    rng = np.random.default_rng(1)
    for _ in range(40):            # a tumbling, moving base: the rotation of the twist matters
        plant.act(rng.uniform(plant.act_low, plant.act_high))
        imu, odom = _measure(plant)
        live = obs_map(plant.joint_positions(), plant.joint_velocities(), imu, odom)
        np.testing.assert_allclose(live, plant.observe(), atol=1e-9)
    assert np.abs(base_readings(plant)["odometry"]["linear_velocity"]
                  - plant.data.qvel[0:3]).max() > 1e-6     # child frame != world frame here


def test_odometry_twist_is_rotated_into_the_world_frame():
    # a base yawed 90 degrees about z, moving forward along its own x: world velocity along +y
    yaw90 = (np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4))
    np.testing.assert_allclose(odometry_values((1, 2, 3), yaw90, (1.0, 0.0, 0.0)), [1, 2, 3, 0, 1, 0], atol=1e-12)
    with pytest.raises(ValueError, match="not a rotation"):
        odometry_values((0, 0, 0), (0, 0, 0, 0), (0, 0, 0))


def _runtime(clock):
    return constant_runtime(ANT, clock)


def test_a_missing_or_stale_base_sensor_holds_the_safe_command():
    now = [1.0]
    rt, plant, names = _runtime(lambda: now[0])
    q, v = plant.joint_positions(), plant.joint_velocities()
    imu, odom = _measure(plant)
    rt.ingest(now[0], names, q, v, now=now[0])
    out = rt.tick(now[0])
    assert out.status == "base_stale" and np.allclose(out.command, rt.safe_command)
    assert rt.ingest_base("imu", imu, now=now[0]) and rt.ingest_base("odometry", odom, now=now[0])
    out = rt.tick(now[0])
    assert out.status == "ok" and np.allclose(out.command, 0.5)
    now[0] = 1.5                                        # joints keep coming, the IMU went silent
    rt.ingest(now[0], names, q, v, now=now[0])
    rt.ingest_base("odometry", odom, now=now[0])
    out = rt.tick(now[0])
    assert out.status == "base_stale" and np.allclose(out.command, rt.safe_command)
    assert rt.ticks["base_stale"] == 2


@pytest.mark.parametrize("sensor, values, reason", [
    ("imu", [1.0, 0, 0, 0, 0.1, 0.2], "wrong_length"),
    ("imu", [1.0, 0, 0, 0, np.nan, 0, 0], "non_finite"),
    ("imu", [2.0, 0, 0, 0, 0, 0, 0], "out_of_range"),        # not a unit quaternion
    ("odometry", [0, 0, 0.5, 1e9, 0, 0], "out_of_range"),
    ("wheel", [0.0], "bad_message"),
    ("odometry", ["not", "numbers"], "bad_message"),
])
def test_bad_base_readings_are_refused_counted_and_never_used(sensor, values, reason):
    now = [1.0]
    rt, plant, names = _runtime(lambda: now[0])
    before = rt.refused[reason]
    assert rt.ingest_base(sensor, values, now=1.0) is False
    assert rt.refused[reason] == before + 1 and rt.base_refused == 1
    assert sensor in rt.first_refusal[reason] or reason == "bad_message"
    rt.ingest(1.0, names, plant.joint_positions(), plant.joint_velocities(), now=1.0)
    if sensor == "imu":
        _, odom = _measure(plant)
        rt.ingest_base("odometry", odom, now=1.0)
    assert rt.tick(1.0).status == "base_stale"


# -- recordings: a floating base replays as it ran ------------------------------------------------

@pytest.fixture(scope="module")
def ant_bag(tmp_path_factory):
    from adapters.recording import simulate_bag
    path = tmp_path_factory.mktemp("bag") / "ant"
    return simulate_bag(path, plant=ANT, seconds=4.0, drift={"actuator_gain": {"*": 0.3}}, drift_at_s=2.0,
                        obs_noise=0.0, seed=3)


def test_a_recorded_floating_base_is_read_back_with_its_imu_and_odometry(ant_bag):
    """simulate_bag writes the Imu / Odometry next to the joint states and names them in the bag's
    metadata; reading the bag rebuilds the observation the controller had, base channels included."""
    from adapters.bag_telemetry import read_bag_telemetry
    from adapters.base_sensors import CUSTOM_KEY
    from adapters.replay_bag import inspect_bag
    info = inspect_bag(ant_bag)
    assert json_topics(info.custom[CUSTOM_KEY]) == {"imu": "/imu", "odometry": "/odom"}
    assert info.counts["/imu"] == info.counts["/odom"] > 0
    tel = read_bag_telemetry(ant_bag, plant=ANT)
    plant = make_plant(ANT)
    assert tel.obs.shape[1] == plant.obs_dim and len(tel) > 50
    n = len(plant.joint_names)
    quat = tel.obs[:, 2 * n:2 * n + 4]
    np.testing.assert_allclose(np.linalg.norm(quat, axis=1), 1.0, atol=1e-9)   # a real orientation, not zeros
    assert np.ptp(tel.obs[:, -6:-3], axis=0).max() > 1e-3                      # the base moved: odometry is read


def test_a_bag_without_the_base_topics_is_refused_in_one_line(ant_bag, tmp_path):
    import shutil

    import yaml

    from adapters.bag_telemetry import read_bag_telemetry
    from adapters.base_sensors import CUSTOM_KEY
    from adapters.replay import ReplayError
    bad = tmp_path / "bag"
    shutil.copytree(ant_bag, bad)
    meta = yaml.safe_load((bad / "metadata.yaml").read_text())
    meta["rosbag2_bagfile_information"]["custom_data"].pop(CUSTOM_KEY)
    (bad / "metadata.yaml").write_text(yaml.safe_dump(meta))
    with pytest.raises(ReplayError, match="needs \\['imu', 'odometry'\\] but the recording names no topic"):
        read_bag_telemetry(bad, plant=ANT)


def test_replay_monitors_a_floating_base_bag(ant_bag, tmp_path):
    """Replay builds every tick's observation from the joint state and the bag's base readings
    (4 s at 50 Hz: 200 joint states, the first before any IMU / odometry)."""
    from adapters.replay import replay
    result = replay(ant_bag, tmp_path / "out", adapt=False, report=False, robot=ANT)
    assert 190 <= result.ticks <= 200


def json_topics(text):
    import json
    return json.loads(text)
