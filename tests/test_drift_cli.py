"""The drift sub-app (drift-calibrate, drift-bench) through typer's CliRunner."""
import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from adapters import cli_drift
from controller.drift import Calibration

runner = CliRunner()


def _flat(text: str) -> str:
    """CLI output with rich's panel borders and line wrapping removed."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())
FAST_YAML = """drift_monitor:
  ros__parameters:
    warmup_s: 3.0
    min_warmup_samples: 10
"""


@pytest.fixture()
def fast_config(tmp_path):
    p = tmp_path / "fast.yaml"
    p.write_text(FAST_YAML)
    return p


def test_commands_are_registered():
    names = {c.name for c in cli_drift.app.registered_commands}
    assert names == {"drift-calibrate", "drift-bench"}
    r = runner.invoke(cli_drift.app, ["--help"])
    assert r.exit_code == 0 and "drift-calibrate" in r.output and "drift-bench" in r.output


def test_calibrate_from_a_recording(tmp_path, fast_config):
    from sim.drift_scenarios import record_nominal
    t, obs, act, rew = record_nominal("cartpole", 20.0, seed=2, with_reward=False)
    rec = tmp_path / "nominal.npz"
    np.savez(rec, t=t, obs=obs, action=act)
    out = tmp_path / "cal.json"
    # segments must hold the warm-up plus a minute: with a 3 s warm-up that is 63 s; use a
    # deliberately short segment to check the guard, then a valid one
    r = runner.invoke(cli_drift.app, ["drift-calibrate", "--plant", "cartpole", "--out", str(out),
                                      "--recording", str(rec), "--config", str(fast_config),
                                      "--segment-minutes", "0.5"])
    assert r.exit_code == 2 and "segment-minutes" in r.output and not out.exists()
    r = runner.invoke(cli_drift.app, ["drift-calibrate", "--plant", "cartpole", "--out", str(out),
                                      "--recording", str(rec), "--config", str(fast_config),
                                      "--segment-minutes", "1.07"])
    assert r.exit_code == 0, r.output
    cal = Calibration.load(out)
    assert cal.plant == "cartpole" and cal.dt == 0.01
    assert set(cal.thresholds) == {"ph:one_step", "ph:kstep_0.10s", "ph:kstep_0.25s"}
    assert all(v >= 1.0 for v in cal.thresholds.values())
    assert 0 < cal.nominal_hours < 0.01 and "recommended" in cal.note


def test_calibrate_simulated(tmp_path, fast_config):
    out = tmp_path / "cal.json"
    r = runner.invoke(cli_drift.app, ["drift-calibrate", "--plant", "cartpole", "--out", str(out),
                                      "--minutes", "1.0", "--segment-minutes", "1.1",
                                      "--config", str(fast_config)])
    assert r.exit_code == 0, r.output
    cal = json.loads(out.read_text())
    assert cal["format"] == "driftgate.drift_calibration/1"
    assert len(cal["block_peaks"]["ph:one_step"]) == 1


@pytest.mark.parametrize("args, msg", [
    (["--plant", "humanoid"], "--robot: unknown robot 'humanoid'"),
    (["--robot", "humanoid"], "--robot: unknown robot 'humanoid'"),
    ([], "--robot is required"),
    (["--robot", "launch/robots/pusher.yaml", "--champion", "missing.safetensors"], "--champion missing"),
    (["--plant", "cartpole", "--minutes", "-1"], "--minutes"),
    (["--plant", "cartpole", "--factor", "0"], "--factor"),
    (["--robot", "pusher"], "no simulated scenario"),   # a profile without a champion
])
def test_calibrate_rejects_bad_input(tmp_path, args, msg):
    out = tmp_path / "cal.json"
    r = runner.invoke(cli_drift.app, ["drift-calibrate", "--out", str(out), *args])
    assert r.exit_code == 2 and msg in _flat(r.output), r.output
    assert not out.exists()


def test_calibrate_rejects_a_recording_of_the_wrong_shape(tmp_path):
    rec = tmp_path / "bad.npz"
    np.savez(rec, t=np.arange(10) * 0.01, obs=np.zeros((10, 3)), action=np.zeros((10, 1)))
    out = tmp_path / "cal.json"
    r = runner.invoke(cli_drift.app, ["drift-calibrate", "--plant", "cartpole", "--out", str(out),
                                      "--recording", str(rec)])
    assert r.exit_code == 2 and "expected" in r.output and not out.exists()
    r = runner.invoke(cli_drift.app, ["drift-calibrate", "--plant", "cartpole", "--out", str(out),
                                      "--recording", str(tmp_path / "missing.npz")])
    assert r.exit_code == 2 and "cannot read" in r.output


@pytest.fixture(scope="module")
def nominal_bag(tmp_path_factory):
    """A driftgate bag (`simulate-bag`): 100 s nominal, then the default drift for 30 s."""
    from adapters.cli_replay import app as replay_app
    path = tmp_path_factory.mktemp("bag") / "robot"
    r = runner.invoke(replay_app, ["simulate-bag", "--out", str(path), "--seconds", "130", "--drift-at", "100",
                                   "--seed", "3"])
    assert r.exit_code == 0, r.output
    return path


def test_calibrate_from_a_recorded_bag_uses_its_nominal_part_only(tmp_path, fast_config, nominal_bag):
    from adapters.bag_telemetry import read_bag_telemetry
    tel = read_bag_telemetry(nominal_bag)
    # every joint state before the drift marker, each with the command sent after it
    assert tel.plant == "cartpole" and len(tel) == 10000 and tel.skipped == 0
    assert tel.drift_at_s == pytest.approx(100.0)
    assert tel.obs.shape == (10000, 5) and tel.action.shape == (10000, 1)
    assert np.all(np.diff(tel.t) > 0) and np.isfinite(tel.action).all() and np.ptp(tel.action) > 0
    everything = read_bag_telemetry(nominal_bag, nominal_only=False)
    assert len(everything) == 13000 and everything.drift_at_s is None
    out = tmp_path / "cal.json"
    r = runner.invoke(cli_drift.app, ["drift-calibrate", "--bag", str(nominal_bag), "--out", str(out),
                                      "--config", str(fast_config), "--segment-minutes", "1.07"])
    assert r.exit_code == 0, r.output
    assert "10000 joint states" in r.output and "drift marked active at 100 s" in r.output
    cal = Calibration.load(out)
    assert cal.plant == "cartpole" and cal.dt == 0.01     # the plant named by the bag
    assert set(cal.thresholds) == {"ph:one_step", "ph:kstep_0.10s", "ph:kstep_0.25s"}
    assert cal.nominal_hours * 3600 == pytest.approx(100.0 - 3.0, abs=0.5)   # the nominal part minus warm-up
    # the same telemetry as an .npz gives the same thresholds: one pairing rule
    rec = tmp_path / "same.npz"
    np.savez(rec, t=tel.t, obs=tel.obs, action=tel.action, reward=tel.reward)
    out2 = tmp_path / "cal2.json"
    r = runner.invoke(cli_drift.app, ["drift-calibrate", "--plant", "cartpole", "--recording", str(rec),
                                      "--out", str(out2), "--config", str(fast_config), "--segment-minutes", "1.07"])
    assert r.exit_code == 0, r.output
    assert Calibration.load(out2).thresholds == cal.thresholds


def test_calibrate_from_a_bag_refuses_bad_input(tmp_path, fast_config, nominal_bag):
    out = tmp_path / "cal.json"
    cases = [(["--bag", str(tmp_path / "missing")], "does not exist"),
             (["--bag", str(nominal_bag), "--plant", "walker"], "walker"),
             (["--bag", str(nominal_bag), "--recording", str(tmp_path / "x.npz")], "not both")]
    for args, msg in cases:
        r = runner.invoke(cli_drift.app, ["drift-calibrate", "--out", str(out), "--config", str(fast_config),
                                          "--segment-minutes", "1.07", *args])
        assert r.exit_code == 2 and msg in r.output, (args, r.output)
        assert not out.exists()
    # a bag that is drifted from the start has no nominal telemetry
    from adapters.recording import simulate_bag
    drifted = simulate_bag(tmp_path / "drifted", seconds=5.0, drift={"mass_scale": {"pole_1": 2.0}}, drift_at_s=0.0)
    r = runner.invoke(cli_drift.app, ["drift-calibrate", "--bag", str(drifted), "--out", str(out),
                                      "--config", str(fast_config), "--segment-minutes", "1.07"])
    assert r.exit_code == 2 and "no nominal joint states" in r.output and not out.exists()


def test_bench_runs_a_tiny_benchmark(tmp_path, monkeypatch):
    bench = cli_drift._load_benchmark()

    def tiny():
        return bench.BenchConfig(plants=("cartpole",), seeds=1, raw_seeds=1, warmup_s=3.0,
                                 pre_s=(2.0, 2.0), post_s=3.0, ramp_s=2.0, ramp_post_s=1.0,
                                 raw_lead_s=1.0, calib_minutes=0.2, nominal_hours=0.002,
                                 episode_hours=0.002, raw_nominal_hours=0.001, cost_seconds=1.0,
                                 drifts=("reversed_motor", "wear_ramp"),
                                 plot=("cartpole", "reversed_motor", 0), quick=True)

    monkeypatch.setattr(bench, "quick_config", tiny)
    monkeypatch.setattr(cli_drift, "_load_benchmark", lambda: bench)
    out = tmp_path / "res"
    r = runner.invoke(cli_drift.app, ["drift-bench", "--out", str(out), "--quick"])
    assert r.exit_code == 0, r.output
    res = json.loads((out / "drift.json").read_text())
    need = {"plant", "drift", "kind", "perf_drop", "detector", "mtd_s", "mdr", "false_alarms_per_h",
            "nominal_hours", "us_per_tick"}
    assert res["rows"] and all(need <= set(row) for row in res["rows"])
    kinds = {(row["drift"], row["kind"]) for row in res["rows"]}
    assert kinds == {("reversed_motor", "abrupt"), ("wear_ramp", "gradual"), ("none", "none")}
    detectors = {row["detector"] for row in res["rows"]}
    assert detectors == {"default", "river_page_hinkley_raw", "river_adwin_raw", "river_kswin_raw",
                         "dummy_periodic"}
    rev = [row for row in res["rows"] if row["drift"] == "reversed_motor"
           and row["detector"] == "default"][0]
    assert rev["perf_drop"] > 0.2 and rev["mdr"] == 0.0 and rev["mtd_s"] < 1.0
    assert (out / "drift.md").read_text().startswith("# Drift detection benchmark")
    assert (out / "drift.png").stat().st_size > 1000
    r = runner.invoke(cli_drift.app, ["drift-bench", "--out", str(out), "--nominal-hours", "-2"])
    assert r.exit_code == 2
