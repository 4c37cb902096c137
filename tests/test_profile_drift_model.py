"""The drift monitor's nominal model on robot profiles: a robot described only by data gets the same
residuals as a built-in one (sim.nominal_model.profile_codec), and drift-calibrate / simulate-bag run
on it with its champion driving (sim.drift_scenarios.profile_scenario)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sim.nominal_model import NominalPredictor, codec_for, has_codec
from sim.plants import make_plant
from sim.profile import find_profile

warnings.filterwarnings("ignore", message=".*DISPLAY.*")
ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _worst_residuals(name: str, drift=None, ticks: int = 120) -> dict[str, float]:
    """Largest |residual| per channel over random commands on the (drifted) robot, predicted by the
    nominal model of the robot's profile."""
    path = str(find_profile(name))
    plant = make_plant(path, seed=1, drift=drift)
    pred = NominalPredictor(path)
    rng = np.random.default_rng(0)
    obs = plant.reset(3)
    worst: dict[str, float] = {}
    for _ in range(ticks):
        a = np.clip(0.5 * rng.standard_normal(plant.act_dim), plant.act_low, plant.act_high)
        for channel, r in pred.residuals(obs, a):
            worst[channel] = max(worst.get(channel, 0.0), float(np.abs(r).max()))
        obs, _ = plant.act(a)
    return worst


def test_a_floating_base_is_rebuilt_from_imu_and_odometry():
    """The ant: free joint from odometry (position, linear velocity) and the IMU (orientation, angular
    velocity), legs from joint states in the ROS command order. On the nominal robot the nominal model
    predicts what happens (residuals at rounding level); the residual covers base and joints."""
    path = str(find_profile("ant"))
    codec = codec_for(path)
    model = make_plant(path).model
    assert len(codec.qpos_keep) == 3 + 8 and len(codec.qvel_keep) == model.nv   # base xyz + 8 hinges; all dofs
    worst = _worst_residuals("ant")
    assert set(worst) >= {"one_step"} and max(worst.values()) < 1e-6, worst


def test_weak_motors_stand_out_on_a_profile_robot():
    nominal = _worst_residuals("ant")
    drifted = _worst_residuals("ant", {"actuator_gain": {"*": 0.3}})
    assert drifted["one_step"] > 1e-2 > 1e3 * nominal["one_step"], (nominal, drifted)


def test_unobserved_parts_are_left_out_of_the_residual():
    """The pusher's object and goal slides are not the robot's: filled from the nominal pose, never
    compared; a payload in the hand still shows."""
    path = str(find_profile("pusher"))
    plant = make_plant(path)
    codec = codec_for(path)
    assert len(codec.qpos_keep) == len(plant.joint_names) < plant.model.nq
    assert len(codec.qvel_keep) == len(plant.joint_names) < plant.model.nv
    assert max(_worst_residuals("pusher").values()) < 1e-6
    assert _worst_residuals("pusher", {"mass_scale": {"r_wrist_roll_link": 6.0}})["one_step"] > 1e-3


def test_every_profile_has_a_nominal_model_and_a_builtin_keeps_its_own():
    assert has_codec("cartpole") and has_codec("launch/robots/any.yaml") and not has_codec("humanoid")
    assert codec_for("cartpole").qvel_keep is None
    with pytest.raises(ValueError, match="no nominal drift model"):
        codec_for("humanoid")


@pytest.fixture(scope="module")
def pusher_without_assets(tmp_path_factory):
    """The shipped pusher profile, copied without its assets block, and a champion made for it."""
    from adapters import cli
    d = tmp_path_factory.mktemp("robot")
    text = (ROOT / "launch/robots/pusher.yaml").read_text()
    text = text.split("\nassets:")[0] + "\n"
    src = find_profile("pusher")
    profile = d / "pusher.yaml"
    profile.write_text(text)
    assert src.exists()
    champion = d / "champion.safetensors"
    r = runner.invoke(cli.app, ["train-nominal", "--robot", str(profile), "--generations", "1",
                                "--horizon", "50", "--out", str(champion)])
    assert r.exit_code == 0, r.output
    return profile, champion


def test_drift_calibrate_runs_a_profile_robot_driven_by_its_champion(tmp_path, pusher_without_assets):
    from adapters import cli_drift
    profile, champion = pusher_without_assets
    out = tmp_path / "cal.json"
    fast = tmp_path / "fast.yaml"
    fast.write_text("drift_monitor:\n  ros__parameters:\n    warmup_s: 3.0\n    min_warmup_samples: 10\n")
    common = ["--minutes", "1.0", "--segment-minutes", "1.1", "--config", str(fast)]
    r = runner.invoke(cli_drift.app, ["drift-calibrate", "--robot", str(profile), "--out", str(out), *common])
    assert r.exit_code == 2 and "give --champion" in r.output and not out.exists(), r.output
    r = runner.invoke(cli_drift.app, ["drift-calibrate", "--robot", str(profile), "--out", str(out),
                                      "--champion", str(champion), *common])
    assert r.exit_code == 0, r.output
    cal = json.loads(out.read_text())
    assert cal["plant"].endswith("pusher.yaml") and cal["thresholds"]["ph:one_step"] > 0
