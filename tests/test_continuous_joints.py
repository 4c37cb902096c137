"""Continuous joints in a profile's observation (``observe.joint_states.angle``, sim/profile/angles.py):
the shipped reacher sees its freely turning shoulder as (sin, cos), the same channels in the
simulation (one plant and batched), on the live controller (from JointState), in the drift
monitor's and system identification's decoding; the default (raw) leaves every robot as it was;
bad settings are one line naming the field; `robot init` drafts the setting."""
from pathlib import Path

import mujoco
import numpy as np
import pytest
import yaml

from sim.nominal_model import codec_for
from sim.observation import ProfileObservation, make_observation_map
from sim.plant_task import PlantTask
from sim.plants import make_plant
from sim.plants.base import PlantBatch
from sim.policy import init_policy
from sim.profile import ProfileError, load_profile, profile_from_mapping
from sim.profile.angles import decode_positions, encode_positions

ROBOTS = Path(__file__).resolve().parents[1] / "launch" / "robots"
REACHER = str(ROBOTS / "reacher.yaml")


def doc(name):
    return yaml.safe_load((ROBOTS / f"{name}.yaml").read_text())


def cartpole_with(tmp_path, angle):
    """The shipped cart-pole profile (its pole hinge has no range) with `angle` set."""
    d = doc("cartpole")
    d["model"] = {"mjcf": "dm_control:suite/cartpole.xml"}
    d["observe"]["joint_states"]["angle"] = angle
    d.pop("assets", None)
    path = tmp_path / f"cartpole_{angle}.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return str(path)


def test_reacher_shoulder_is_sin_cos_and_stays_bounded_over_many_turns():
    plant = make_plant(REACHER)
    assert plant.obs_names[:3] == ("shoulder.position.sin", "shoulder.position.cos", "wrist.position")
    assert plant.profile.angle_modes == ("sincos", "raw")      # the wrist has a range: raw
    plant.reset(3)
    for turns in (0.0, -13.5, 40.0):
        plant.data.qpos[plant.model.joint("shoulder").qposadr[0]] = turns
        mujoco.mj_forward(plant.model, plant.data)
        obs = plant.observe()
        assert obs[0] == np.sin(turns) and obs[1] == np.cos(turns)
        assert np.all(np.abs(obs[:2]) <= 1.0)
        assert obs[2] == plant.data.qpos[plant.model.joint("wrist").qposadr[0]]


def test_hand_coded_reacher_observes_what_its_profile_says():
    """The built-in plant (what `--robot reacher` runs) and the profile give the same channels, bit for bit."""
    prof, hand = make_plant(REACHER), make_plant("reacher")
    assert prof.obs_names == hand.obs_names
    ctrl = hand.nominal_controller()
    for seed in range(3):
        a, b = prof.reset(seed), hand.reset(seed)
        for _ in range(60):
            assert np.array_equal(a, b)
            u = ctrl(b)
            a, _ = prof.act(u)
            b, _ = hand.act(u)
    assert abs(hand.data.qpos[0]) > 0.0


@pytest.mark.parametrize("robot", [REACHER, "reacher"])
def test_batched_observation_is_the_one_plant_observation(robot):
    task = PlantTask(robot, horizon=80)
    weights = np.stack([init_policy(task.policy, s) for s in range(3)]).astype(np.float32) * 3.0
    seeds = np.array([5, 9, 2])
    assert np.array_equal(task.evaluate(weights, seeds), task.evaluate_reference(weights, seeds))
    plant = make_plant(robot)
    batch = PlantBatch(plant, 3)
    obs = batch.reset([1, 2, 3])
    rng = np.random.default_rng(0)
    for _ in range(50):
        u = rng.uniform(-1, 1, (3, plant.act_dim))
        obs, _ = batch.act(u)
    ref = make_plant(robot)
    for i, s in enumerate([1, 2, 3]):
        o = ref.reset(s)
        for row in np.random.default_rng(0).uniform(-1, 1, (50, 3, plant.act_dim))[:, i]:
            o, _ = ref.act(row)
        assert np.array_equal(o, obs[i])


@pytest.mark.parametrize("angle", ["sincos", "wrap"])
def test_live_observation_from_joint_states_is_the_simulations(tmp_path, angle):
    """ProfileObservation (the controller node's map) encodes JointState positions as the plant does."""
    robot = cartpole_with(tmp_path, angle)
    plant = make_plant(robot)
    obs_map = make_observation_map(robot)
    assert isinstance(obs_map, ProfileObservation) and obs_map.obs_names == plant.obs_names
    width = 3 if angle == "sincos" else 2
    assert plant.obs_dim == width + 2
    rng = np.random.default_rng(1)
    plant.reset(0)
    for _ in range(30):
        plant.act(rng.uniform(-1, 1, plant.act_dim))
        hinge = plant.model.joint("hinge_1").qposadr[0]
        plant.data.qpos[hinge] += rng.choice([0.0, 7.0, -20.0])      # whole turns and more
        mujoco.mj_forward(plant.model, plant.data)
        assert np.array_equal(obs_map(plant.joint_positions(), plant.joint_velocities()), plant.observe())
    q = plant.data.qpos[plant.model.joint("hinge_1").qposadr[0]]
    obs = plant.observe()
    if angle == "wrap":
        x = obs[plant.obs_names.index("hinge_1.position")]
        assert -np.pi <= x < np.pi and np.isclose(np.cos(x), np.cos(q)) and x != q
    else:
        i = plant.obs_names.index("hinge_1.position.sin")
        assert plant.obs_names[i + 1] == "hinge_1.position.cos" and "hinge_1.position" not in plant.obs_names
        assert obs[i] == np.sin(q) and obs[i + 1] == np.cos(q)


def test_raw_is_the_default_and_changes_nothing(tmp_path):
    raw = make_plant(cartpole_with(tmp_path, "raw"))
    shipped = make_plant(str(ROBOTS / "cartpole.yaml"))
    assert raw.obs_names == shipped.obs_names
    assert {"slider.position", "hinge_1.position"} <= set(raw.obs_names) and raw.obs_dim == 4
    assert load_profile(ROBOTS / "cartpole.yaml").angle_modes == ("raw", "raw")
    for p in (raw, shipped):
        p.reset(4)
        p.data.qpos[p.model.joint("hinge_1").qposadr[0]] = 9.0
        mujoco.mj_forward(p.model, p.data)
    assert np.array_equal(raw.observe(), shipped.observe())
    assert raw.observe()[raw.obs_names.index("hinge_1.position")] == 9.0


def test_bad_settings_are_one_line_naming_the_field():
    d = doc("reacher")
    d["observe"]["joint_states"]["angle"] = "polar"
    with pytest.raises(ProfileError, match=r"observe\.joint_states\.angle:") as e:
        profile_from_mapping(d, ROBOTS / "reacher.yaml")
    assert "\n" not in str(e.value) and "sincos" in str(e.value)
    d = doc("pusher")                             # every observed joint has a range
    d["observe"]["joint_states"]["angle"] = "sincos"
    with pytest.raises(ProfileError, match=r"observe\.joint_states\.angle: 'sincos' encodes continuous") as e:
        profile_from_mapping(d, ROBOTS / "pusher.yaml")
    assert "\n" not in str(e.value)


def test_drift_monitor_and_sysid_decode_the_angle_and_unwrap_turns():
    codec = codec_for(REACHER)
    plant = make_plant(REACHER)
    plant.reset(2)
    ctrl = make_plant("reacher").nominal_controller()
    obs, q_true = [plant.observe()], [plant.data.qpos.copy()]
    for _ in range(300):
        o, _ = plant.act(ctrl(obs[-1]))
        obs.append(o)
        q_true.append(plant.data.qpos.copy())
    q_true = np.array(q_true)
    assert np.ptp(q_true[:, 0]) > 2 * np.pi              # the shoulder went round: there are wraps
    decoded = np.array([codec.from_obs(o)[0] for o in obs])
    assert np.allclose(np.cos(decoded[:, 0] - q_true[:, 0]), 1.0) and np.allclose(decoded[:, 1], q_true[:, 1])
    unwrapped = codec.unwrap_turns(decoded)
    assert np.allclose(unwrapped[:, 0] - q_true[:, 0], unwrapped[0, 0] - q_true[0, 0])
    assert np.abs(np.diff(unwrapped[:, 0])).max() < np.pi
    # the same through the built-in's codec (what a live `--robot reacher` window goes through)
    builtin = codec_for("reacher")
    assert np.array_equal(np.array([builtin.from_obs(o)[0] for o in obs]), decoded)
    assert np.array_equal(builtin.unwrap_turns(decoded), unwrapped)
    # a break restarts the unwrapping: no turn is carried across it
    broken = codec.unwrap_turns(decoded, breaks=[150])
    assert np.array_equal(broken[151:, 0], np.unwrap(decoded[151:, 0]))


def test_window_to_telemetry_unwraps_the_continuous_joint():
    from types import SimpleNamespace

    from controller.jobs import window_to_telemetry
    plant = make_plant("reacher")
    plant.reset(2)
    ctrl = plant.nominal_controller()
    obs, acts = [plant.observe()], []
    for _ in range(200):
        acts.append(ctrl(obs[-1]))
        o, _ = plant.act(acts[-1])
        obs.append(o)
    acts.append(acts[-1])
    window = SimpleNamespace(obs=np.array(obs), action=np.array(acts), segment=np.zeros(len(obs), dtype=int))
    tel = window_to_telemetry("reacher", window, plant.control_dt)
    assert np.abs(np.diff(tel["qpos"][:, 0])).max() < 0.5      # no 2 pi jumps in what sysid replays


def test_encode_decode_roundtrip_and_elementwise():
    q = np.array([[0.3, -13.5, 2.0], [7.0, 0.1, -2.5]])
    modes = ("raw", "sincos", "wrap")
    enc = encode_positions(q, modes)
    assert enc.shape == (2, 4)
    for i in range(2):       # a batch of one gives each row what the batch gives it
        assert np.array_equal(encode_positions(q[i:i + 1], modes)[0], enc[i])
        back = decode_positions(enc[i], modes)
        assert back[0] == q[i, 0] and np.isclose(np.cos(back[1] - q[i, 1]), 1.0)
        assert np.isclose(np.cos(back[2] - q[i, 2]), 1.0) and -np.pi <= back[2] < np.pi


def test_robot_init_drafts_sincos_for_continuous_joints(tmp_path):
    from typer.testing import CliRunner

    from adapters.cli import app
    import importlib.util
    suite = Path(list(importlib.util.find_spec("dm_control").submodule_search_locations)[0]) / "suite"
    runner = CliRunner()
    out = tmp_path / "reacher.yaml"
    assert runner.invoke(app, ["robot", "init", "--mjcf", str(suite / "reacher.xml"), "--out", str(out)]).exit_code == 0
    drafted = yaml.safe_load(out.read_text())
    assert drafted["observe"]["joint_states"]["angle"] == "sincos"
    assert load_profile(out).angle_modes == ("sincos", "raw")
    out2 = tmp_path / "pusher.yaml"       # every hinge limited: no setting drafted
    gym = Path(list(importlib.util.find_spec("gymnasium").submodule_search_locations)[0])
    assert runner.invoke(app, ["robot", "init", "--mjcf", str(gym / "envs/mujoco/assets/pusher.xml"), "--out",
                               str(out2)]).exit_code == 0
    assert "angle" not in yaml.safe_load(out2.read_text())["observe"]["joint_states"]
