"""`driftgate champion distill`: a champion from a recording of the robot's own controller.

The recording is what `driftgate simulate-bag` writes (no ROS needed): the cartpole driven by its
nominal LQR (the incumbent), joint states in and commands out, with sensor noise.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from adapters.cli import app
from adapters.demonstration import read_demonstration
from adapters.recording import BagWriter, simulate_bag
from sim.distill import DistillConfig, Demonstration, distill, split_ticks
from sim.drift_spec import DriftSpec
from sim.genome import load_genome

runner = CliRunner()


@pytest.fixture(scope="module")
def lqr_bag(tmp_path_factory) -> Path:
    """60 s of the nominal cartpole under its nominal LQR (the plant's `nominal_controller()`)."""
    return simulate_bag(tmp_path_factory.mktemp("bags") / "lqr", plant="cartpole", seconds=60.0, seed=3)


def static_lqr():
    """The nominal LQR about a fixed setpoint: a pure function of the joint state, fresh per episode."""
    from sim.plants import make_plant
    ctrl = make_plant("cartpole").nominal_controller(amplitude=0.0)
    ctrl.reset()
    return ctrl


@pytest.fixture(scope="module")
def static_bag(tmp_path_factory) -> Path:
    """40 s of the nominal cartpole under its LQR about a fixed setpoint."""
    return simulate_bag(tmp_path_factory.mktemp("bags") / "static", plant="cartpole", seconds=40.0, seed=4,
                        controller=static_lqr())


@pytest.fixture(scope="module")
def distilled(lqr_bag, tmp_path_factory):
    out = tmp_path_factory.mktemp("champ") / "cartpole_distilled.safetensors"
    res = runner.invoke(app, ["champion", "distill", str(lqr_bag), "--robot", "cartpole", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out, json.loads(out.with_suffix(".json").read_text()), res.output


def test_distilled_champion_balances_like_the_incumbent(distilled):
    out, report, text = distilled
    cl = report["closed_loop"]
    assert cl["incumbent"]["how"].startswith("the plant's nominal controller")
    assert cl["seeds"] == list(range(10_000, 10_020))
    # >= 90 % of the incumbent's return on the same 20 episode seeds
    assert cl["ratio"] >= 0.9, cl
    assert cl["distilled"]["mean"] >= 0.9 * cl["incumbent"]["mean"]
    # the held-out fit error is small next to the spread of the commands
    fe = report["fit_error"]
    assert fe["ticks"] == report["split"]["test"] > 0
    # this incumbent tracks a setpoint that moves with its own clock: the joint state cannot explain
    # that part of its commands (the static incumbent below is fitted to within a few per cent)
    assert fe["relative"][0] < 0.5, fe
    assert "held-out RMSE" in text and "distilled / incumbent" in text


def test_distilled_genome_is_an_srghn_the_runtime_and_gate_can_run(distilled):
    """Independently of the report: the file's policy, evaluated by the batched PlantTask path
    (other episode seeds), still balances the cartpole."""
    from sim.adapt_job import mean_return
    out, report, _ = distilled
    g = load_genome(out)
    assert g.kind == "srghn" and g.parent_id is None and g.id == report["genome_id"]
    assert g.fitness["source"] == "distilled"
    ret = mean_return("cartpole", g, DriftSpec(), 300, seed=123, episodes=10)
    assert ret >= 0.9 * report["closed_loop"]["incumbent"]["mean"]


def test_registry_add_accepts_the_distilled_genome(distilled, tmp_path):
    out, report, _ = distilled
    reg = tmp_path / "reg"
    assert runner.invoke(app, ["registry", "init", "--registry", str(reg)]).exit_code == 0
    res = runner.invoke(app, ["registry", "add", "--registry", str(reg), "--genome", str(out)])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == report["genome_id"]


def test_a_state_feedback_incumbent_is_copied_closely(static_bag):
    """An incumbent that is a function of the joint state: small held-out error, same return on the
    same seeds as the incumbent itself (given as the controller factory)."""
    rep = distill(read_demonstration(static_bag, "cartpole"), "cartpole", DistillConfig(),
                  incumbent=static_lqr).report
    assert rep["fit_error"]["relative"][0] < 0.1, rep["fit_error"]
    assert rep["closed_loop"]["incumbent"]["how"] == "the given controller, simulated on the same seeds"
    assert rep["closed_loop"]["ratio"] >= 0.9, rep["closed_loop"]


def test_shuffled_commands_give_no_working_champion(static_bag):
    """The mutant: commands shuffled against the joint states that caused them. The closed-loop
    check (>= 90 % of the incumbent) must fail, and the fit error must be of the commands' spread."""
    demo = read_demonstration(static_bag, "cartpole")
    perm = np.random.default_rng(0).permutation(len(demo))
    bad = Demonstration(demo.positions, demo.velocities, demo.commands[perm], demo.stamps, demo.rewards,
                        demo.source)
    rep = distill(bad, "cartpole", DistillConfig(episodes=10), incumbent=static_lqr).report
    assert rep["closed_loop"]["ratio"] < 0.9, rep["closed_loop"]
    assert rep["fit_error"]["relative"][0] > 0.8


def test_pairing_and_joint_order(tmp_path):
    """Each joint state is paired with the command after it; a joint state without its own command
    is dropped, never paired with a stale one; joints come in the plant's order whatever the message's."""
    with BagWriter(tmp_path / "b", plant="cartpole", joint_names=["slider", "hinge_1"], control_dt=0.01) as bag:
        for k in range(10):
            t = 1.0 + 0.01 * k
            bag.joint_state(t, ["hinge_1", "slider"], [0.1 * k, float(k)], [0.2 * k, 2.0 * k])
            if k != 4:
                bag.command(t + 0.001, [float(k) / 10])
    demo = read_demonstration(tmp_path / "b", "cartpole")
    assert len(demo) == 9 and demo.source["unpaired_joint_states"] == 1
    ks = [k for k in range(10) if k != 4]
    np.testing.assert_array_equal(demo.positions[:, 0], ks)           # slider first (plant order)
    np.testing.assert_allclose(demo.positions[:, 1], [0.1 * k for k in ks])
    np.testing.assert_allclose(demo.commands[:, 0], [k / 10 for k in ks])


def test_split_is_disjoint_whole_blocks_and_seeded():
    tr, va, te = split_ticks(1000, 50, 0.15, 0.15, seed=1)
    allt = np.concatenate([tr, va, te])
    assert sorted(allt.tolist()) == list(range(1000))
    for part in (va, te):
        assert len(part) % 50 == 0 and all(set(range(b, b + 50)) <= set(part.tolist()) for b in part[::50])
    again = split_ticks(1000, 50, 0.15, 0.15, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip((tr, va, te), again))


def test_same_seed_same_champion(lqr_bag):
    demo = read_demonstration(lqr_bag, "cartpole")
    short = Demonstration(demo.positions[:600], demo.velocities[:600], demo.commands[:600], demo.stamps[:600])
    cfg = DistillConfig(max_rounds=3, episodes=1, horizon=20)
    a, b = distill(short, "cartpole", cfg).genome, distill(short, "cartpole", cfg).genome
    assert a.id == b.id


# ---------------------------------------------------------------------- bad input

def _bad(args, tmp_path, option):
    out = tmp_path / "c.safetensors"
    res = runner.invoke(app, ["champion", "distill", *args, "--out", str(out)])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and option in lines[0], res.output
    assert list(tmp_path.glob("c.*")) == []
    return lines[0]


def test_bag_without_command_topic(tmp_path):
    with BagWriter(tmp_path / "nocmd", plant="cartpole", joint_names=["slider", "hinge_1"]) as bag:
        for k in range(300):
            bag.joint_state(1.0 + 0.01 * k, ["slider", "hinge_1"], [0.0, 0.0], [0.0, 0.0])
    _bad([str(tmp_path / "nocmd"), "--robot", "cartpole"], tmp_path, "--command-topic")


def test_wrong_plant_for_the_bag(lqr_bag, tmp_path):
    line = _bad([str(lqr_bag), "--robot", "walker"], tmp_path, "--robot")
    assert "slider" in line


def test_unknown_topic_is_named(lqr_bag, tmp_path):
    _bad([str(lqr_bag), "--robot", "cartpole", "--command-topic", "/nope"], tmp_path, "--command-topic")


def test_empty_bag(tmp_path):
    with BagWriter(tmp_path / "empty", plant="cartpole"):
        pass
    _bad([str(tmp_path / "empty"), "--robot", "cartpole"], tmp_path, "empty")


def test_too_few_ticks(tmp_path):
    simulate_bag(tmp_path / "short", plant="cartpole", seconds=1.0)
    _bad([str(tmp_path / "short"), "--robot", "cartpole"], tmp_path, "--min-ticks")


def test_existing_out_is_kept(lqr_bag, tmp_path):
    out = tmp_path / "c.safetensors"
    out.write_bytes(b"precious")
    res = runner.invoke(app, ["champion", "distill", str(lqr_bag), "--robot", "cartpole", "--out", str(out)])
    assert res.exit_code == 2 and "--out" in res.output
    assert out.read_bytes() == b"precious"


def test_refine_generations_evolves_from_the_distilled_genome(lqr_bag):
    """--refine-generations: SR-GHN evolution on the plant's objective starts from the distilled
    genome; the result is a root genome that records which distilled genome it came from."""
    demo = read_demonstration(lqr_bag, "cartpole")
    cfg = DistillConfig(max_rounds=5, episodes=2, horizon=50, refine_generations=2)
    res = distill(demo, "cartpole", cfg)
    ref = res.report["refined"]
    assert ref["generations"] == 2 and len(ref["best_per_generation"]) == 2
    assert res.genome.fitness["source"] == "distilled + refined"
    assert res.genome.fitness["distilled_id"] == ref["distilled_id"]
    assert res.genome.parent_id is None and res.genome.generation == 2
    assert res.report["closed_loop"]["refined"]["mean"] > 0.5 * res.report["closed_loop"]["incumbent"]["mean"]


def test_distill_for_a_robot_profile(lqr_bag):
    """--robot PROFILE.yaml: the profile's observation (the runtime's kinematic map) and, with no
    controller in a profile, the recorded reward as the incumbent's measure."""
    demo = read_demonstration(lqr_bag, "launch/robots/cartpole.yaml")
    rep = distill(demo, "launch/robots/cartpole.yaml", DistillConfig(episodes=5)).report
    assert rep["policy"]["obs_dim"] == 4                      # joint positions and velocities
    assert rep["closed_loop"]["incumbent"]["how"].startswith("recorded reward")
    assert rep["closed_loop"]["ratio"] >= 0.9, rep["closed_loop"]


def test_base_genome_for_another_policy_is_refused(lqr_bag, tmp_path):
    from sim.distill import base_srghn
    from sim.genome import save_genome
    from sim.plant_task import plant_policy_spec
    save_genome(base_srghn(plant_policy_spec("walker"), 0), tmp_path / "walker_base.safetensors")
    _bad([str(lqr_bag), "--robot", "cartpole", "--base", str(tmp_path / "walker_base.safetensors")], tmp_path,
         "--base")
