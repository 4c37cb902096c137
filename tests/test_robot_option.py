"""Issue 14: `--robot PROFILE` (a built-in name, a shipped profile's name or a profile path; `--plant`
its alias) on the offline commands, and `driftgate suite init --robot`."""
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from adapters.cli import app
from adapters.robot_option import resolve_robot

runner = CliRunner()
ROBOTS = Path(__file__).resolve().parents[1] / "launch" / "robots"

COMMANDS = [
    ["adapt", "--out", "unused-dir"],
    ["train-nominal", "--out", "unused.safetensors"],
    ["simulate-bag", "--out", "unused-bag"],
    ["drift-calibrate", "--out", "unused.json"],
    ["drift-bench", "--out", "unused-dir"],
    ["suite", "init", "--out", "unused.yaml"],
    ["gate", "--registry", "unused", "--candidate", "abc", "--json-out", "unused.json"],
]


def one_line(output: str) -> str:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert len(lines) == 1, output
    return lines[0]


def test_resolve_names_built_ins_shipped_profiles_and_paths():
    assert resolve_robot("walker") == "walker"
    assert resolve_robot("pusher") == str((ROBOTS / "pusher.yaml").resolve())
    assert resolve_robot(str(ROBOTS / "pusher.yaml")) == str((ROBOTS / "pusher.yaml").resolve())
    with pytest.raises(ValueError, match="--robot: unknown robot 'hexapod'.*cartpole"):
        resolve_robot("hexapod")
    with pytest.raises(ValueError, match="--robot: no such profile file"):
        resolve_robot("no/such/robot.yaml")


@pytest.mark.parametrize("flag", ["--robot", "--plant"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_every_command_refuses_an_unknown_robot_in_one_line(tmp_path, monkeypatch, command, flag):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, [*command, flag, "hexapod"], catch_exceptions=False)
    assert r.exit_code == 2
    line = one_line(r.output)
    assert "--robot" in line and "hexapod" in line and "walker" in line
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("command", [["adapt"], ["train-nominal"], ["simulate-bag"], ["drift-calibrate"],
                                     ["drift-bench"], ["suite", "init"], ["gate"]], ids=" ".join)
def test_help_names_robot_and_its_plant_alias(command):
    r = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "--robot" in r.output and "--plant" in r.output


def test_suite_init_writes_a_suite_the_gate_accepts_for_the_walker(tmp_path):
    from safety.suite import load_suite
    from sim.profile import find_profile, load_profile
    out = tmp_path / "walker_suite.yaml"
    r = runner.invoke(app, ["suite", "init", "--robot", "walker", "--out", str(out)])
    assert r.exit_code == 0, r.output
    suite = load_suite(out)
    default = load_profile(find_profile("walker")).default_drift
    tags = {s.name: s for s in suite.scenarios}
    assert suite.plant == "walker" and tags["target"].drift.as_dict() == default
    assert tags["stress"].stress is not None and "nominal" not in tags and tags["initial-offset"].probe is not None
    again = runner.invoke(app, ["suite", "init", "--robot", "walker", "--out", str(out)])
    assert again.exit_code == 2 and "--force" in one_line(again.output)
    r = runner.invoke(app, ["suite", "init", "--plant", "walker", "--out", str(out), "--force", "--nominal"])
    assert r.exit_code == 0 and "nominal" in {s.name for s in load_suite(out).scenarios}


def test_suite_init_for_a_profile_file_robot(tmp_path):
    from safety.suite import load_suite
    out = tmp_path / "pusher_suite.yaml"
    r = runner.invoke(app, ["suite", "init", "--robot", str(ROBOTS / "pusher.yaml"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    doc = yaml.safe_load(out.read_text())
    assert doc["plant"] == str((ROBOTS / "pusher.yaml").resolve())
    assert load_suite(out).plant == doc["plant"]


def test_gate_refuses_a_suite_for_another_robot(tmp_path):
    cartpole_suite = Path(__file__).resolve().parents[1] / "launch" / "regression_suite.yaml"
    r = runner.invoke(app, ["gate", "--registry", str(tmp_path / "reg"), "--candidate", "abcdef",
                            "--json-out", str(tmp_path / "g.json"), "--robot", "walker", "--suite", str(cartpole_suite)])
    assert r.exit_code == 2
    line = one_line(r.output)
    assert "--suite" in line and "cartpole" in line and "walker" in line


def test_train_nominal_for_a_profile_writes_the_champion_the_profile_names(tmp_path):
    """No --out: the champion goes where the profile's assets.champion says (relative to the profile)."""
    import shutil

    from sim.genome import load_genome
    profile = tmp_path / "pusher.yaml"
    shutil.copy(ROBOTS / "pusher.yaml", profile)
    r = runner.invoke(app, ["train-nominal", "--robot", str(profile), "--generations", "1", "--horizon", "10"])
    assert r.exit_code == 0, r.output
    g = load_genome(tmp_path / "champions" / "pusher.safetensors")
    assert g.fitness["source"].startswith("random SR-GHN") and g.fitness["winner"] == "evolved"


def test_gate_takes_the_suite_from_the_robot_profile(tmp_path):
    """--robot walker without --suite: the profile's suite is loaded (the error is about the registry)."""
    r = runner.invoke(app, ["gate", "--registry", str(tmp_path / "no-registry"), "--candidate", "abcdef",
                            "--json-out", str(tmp_path / "g.json"), "--robot", "walker"])
    assert r.exit_code == 2
    line = one_line(r.output)
    assert "--suite" not in line and "no-registry" in line


def test_adapt_takes_the_default_drift_from_the_profile(tmp_path):
    from sim.profile import find_profile, load_profile
    assert load_profile(find_profile("cartpole")).default_drift == {"mass_scale": {"pole_1": 3.0},
                                                                   "actuator_gain": {"slide": -1.0}}
    r = runner.invoke(app, ["adapt", "--robot", "pusher", "--out", str(tmp_path / "out")])
    assert r.exit_code == 2
    assert "--drift: robot 'pusher' has no default drift" in one_line(r.output)
    assert not (tmp_path / "out").exists()
