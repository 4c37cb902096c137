"""An arm driftgate has no code for (dm_control's planar manipulator, launch/robots/manipulator.yaml):
its day-one incumbent, the payload drift that breaks it, system identification from its profile's
drift block, the distilled champion on the shipped name, and a suite that names the shipped profile."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from adapters.cli import app
from adapters.recording import simulate_bag
from sim.drift_spec import DriftSpec
from sim.incumbent import gravity_pd
from sim.plants import make_plant
from sim.profile import find_profile, load_profile

ROBOT = str(find_profile("manipulator").resolve())
PAYLOAD = {"mass_scale": {"hand": 20.0}}
runner = CliRunner()


def episode_return(controller, drift=None, seed=10_000, ticks=200):
    plant = make_plant(ROBOT, drift=drift)
    obs, total = plant.reset(seed), 0.0
    for _ in range(ticks):
        obs, r = plant.act(np.asarray(controller(obs)))
        total += r
    return total / ticks, plant.joint_positions()


def test_profile_default_drift_is_a_payload_in_the_hand():
    profile = load_profile(find_profile("manipulator"))
    assert profile.default_drift == PAYLOAD
    assert profile.doc.objective.kind == "terms"
    assert profile.model.opt.gravity[2] < 0          # an arm in gravity: a payload has to be held


def test_incumbent_holds_the_pose_and_its_gravity_model_matters():
    pd = gravity_pd(ROBOT, 1.5, 0.1)
    per_tick, q = episode_return(pd)
    assert per_tick > 0.97, per_tick
    assert np.abs(q - pd.target).max() < 0.005
    no_gravity = gravity_pd(ROBOT, 1.5, 0.1)
    no_gravity.gravity = lambda q: np.zeros(len(q))   # the same PD without the gravity model sags
    per_tick_ng, q_ng = episode_return(no_gravity)
    assert np.abs(q_ng - pd.target).max() > 3 * np.abs(q - pd.target).max()


def test_payload_makes_the_incumbent_sag_within_its_torque_limits():
    pd = gravity_pd(ROBOT, 1.5, 0.1)
    per_tick, q = episode_return(pd, PAYLOAD)
    assert per_tick < 0.8, per_tick                      # fails visibly (nominal: > 0.97)
    sag = q - pd.target
    assert sag[:3].min() > 0.03                          # the root, shoulder and elbow all droop
    u = pd(np.concatenate([q, np.zeros(4)]))
    assert np.abs(u).max() < 0.5                         # holding it would take far less than full torque


def test_excitation_is_seeded_white_noise_around_the_controller():
    obs = np.concatenate([gravity_pd(ROBOT, 1.5, 0.1).target + 0.02, np.zeros(4)])
    clean = gravity_pd(ROBOT, 1.5, 0.1)(obs)
    a, b = gravity_pd(ROBOT, 1.5, 0.1, excitation=0.1, seed=3), gravity_pd(ROBOT, 1.5, 0.1, excitation=0.1, seed=3)
    xs = np.array([a(obs) for _ in range(400)])
    assert np.array_equal(xs[0], b(obs))
    assert np.allclose(xs.mean(axis=0)[:4], clean[:4], atol=0.02)
    assert 0.08 < xs[:, :4].std() < 0.12
    assert np.all(xs[:, 4] == 0.0)                       # the gripper, driving no observed joint, holds safe


def test_sysid_parameter_set_comes_from_the_profile_drift_block():
    from sim.sysid_params import PARAMETER_SETS, model_ref, parameter_set
    plant = make_plant(ROBOT, drift=PAYLOAD)
    params = {p.name: (p.lo, p.hi) for p in parameter_set(plant)}
    assert params == {"mass_scale.hand": (0.5, 40.0), "damping_scale.*": (0.5, 2.0)}
    twin = make_plant(model_ref(plant))
    assert twin.name == "manipulator" and twin.drift == DriftSpec()
    assert parameter_set(make_plant("cartpole")) == PARAMETER_SETS["cartpole"]


def test_sysid_identifies_a_payload_on_a_profile_robot():
    from sim.sysid import identify, record
    pd = gravity_pd(ROBOT, 1.5, 0.1)
    tel = record(make_plant(ROBOT, drift=PAYLOAD), pd, 300, noise_std=0.01, seed=0)
    res = identify(make_plant(ROBOT), tel, max_seconds=90, max_evals=300, seed=0)
    assert res.loss < 0.8 * res.nominal_loss
    assert 15.0 < res.params["mass_scale.hand"] < 27.0, res.params   # nominal 1, true 20


def test_champion_distill_takes_a_shipped_profile_name(tmp_path):
    bag = simulate_bag(tmp_path / "bag", plant=ROBOT, seconds=4.0, seed=1,
                       controller=gravity_pd(ROBOT, 1.5, 0.1, excitation=0.2, seed=1))
    out = tmp_path / "champion.safetensors"
    res = runner.invoke(app, ["champion", "distill", str(bag), "--robot", "manipulator", "--out", str(out),
                              "--episodes", "1", "--horizon", "30"])
    assert res.exit_code == 0, res.output
    assert out.is_file()
    bad = runner.invoke(app, ["champion", "distill", str(bag), "--robot", "no-such-arm", "--out",
                              str(tmp_path / "x.safetensors")])
    assert bad.exit_code == 2 and "--robot" in bad.output and "no-such-arm" in bad.output
    assert not (tmp_path / "x.safetensors").exists()


@pytest.mark.parametrize("plant", ["manipulator", "../robots/manipulator.yaml"])
def test_suite_names_a_shipped_profile_or_a_path_relative_to_itself(tmp_path, plant):
    from safety.suite import load_suite
    suites = tmp_path / "suites"
    (tmp_path / "robots").mkdir()
    (tmp_path / "robots" / "manipulator.yaml").write_text(Path(ROBOT).read_text())
    suites.mkdir()
    text = Path(find_profile("manipulator").parent / "suites" / "manipulator.yaml").read_text()
    (suites / "s.yaml").write_text(text.replace("plant: manipulator ", f"plant: {plant} "))
    suite = load_suite(suites / "s.yaml")
    assert Path(suite.plant).is_absolute() and Path(suite.plant).name == "manipulator.yaml"
    if plant.startswith(".."):
        assert Path(suite.plant) == (tmp_path / "robots" / "manipulator.yaml").resolve()


def test_shipped_champion_holds_nominal_and_fails_under_the_payload():
    from sim.distill import policy_controller
    from sim.genome import load_genome
    g = load_genome(load_profile(find_profile("manipulator")).asset_path("champion"))
    ctrl = policy_controller(g)()
    nominal, _ = episode_return(ctrl)
    drifted, _ = episode_return(ctrl, PAYLOAD)
    assert nominal > 0.95, nominal
    assert drifted < 0.8 * nominal, (nominal, drifted)
