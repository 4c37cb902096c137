"""`driftgate replay --robot` / `simulate-bag --robot`: the robot is named the way a user has it, its
profile gives the defaults (drift, calibration, suite), and a recording from another robot is refused
with one line naming both robots and their joint sets, before anything is written."""
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from adapters import cli_replay
from adapters.recording import simulate_bag
from adapters.replay import ReplayError, config_from_mapping, replay
from sim.profile import find_profile, load_profile

CARTPOLE_JOINTS = ["slider", "hinge_1"]


@pytest.fixture(scope="module")
def walker_bag(tmp_path_factory):
    """2 s of the simulated walker (its profile's default drift at 1 s)."""
    out = tmp_path_factory.mktemp("bags") / "walker"
    res = CliRunner().invoke(cli_replay.app, ["simulate-bag", "--out", str(out), "--robot", "walker",
                                              "--seconds", "2", "--drift-at", "1"])
    assert res.exit_code == 0, res.output
    return out


def _meta(bag: Path) -> dict:
    return yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]["custom_data"]


def test_simulate_bag_takes_the_default_drift_from_the_profile(walker_bag):
    meta = _meta(walker_bag)
    assert meta["driftgate.plant"] == "walker"
    assert json.loads(meta["driftgate.drift"]) == load_profile(find_profile("walker")).default_drift


@pytest.mark.parametrize("how", ["function", "cli", "config"])
def test_a_bag_from_another_robot_is_refused_and_nothing_is_written(walker_bag, tmp_path, how):
    out = tmp_path / "replay"
    if how == "function":
        with pytest.raises(ReplayError) as e:
            replay(walker_bag, out, adapt=False, robot="cartpole")
        msg = str(e.value)
    elif how == "config":               # the replay config's robot: is checked the same way
        with pytest.raises(ReplayError) as e:
            replay(walker_bag, out, config_from_mapping({"robot": "cartpole"}), adapt=False)
        msg = str(e.value)
    else:
        res = CliRunner().invoke(cli_replay.app, ["replay", str(walker_bag), "--out", str(out), "--robot",
                                                  "cartpole", "--no-adapt", "-q"])
        assert res.exit_code == 2
        msg = res.output.strip()
        assert len(msg.splitlines()) == 1, msg
    assert "'walker'" in msg and "'cartpole'" in msg, msg
    assert str(CARTPOLE_JOINTS) in msg and "right_hip" in msg, msg
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []          # no partial directory either


def test_the_same_robot_replays_with_its_profile_calibration(walker_bag, tmp_path):
    out = tmp_path / "replay"
    res = CliRunner().invoke(cli_replay.app, ["replay", str(walker_bag), "--out", str(out), "--plant", "walker",
                                              "--no-adapt", "--no-report", "-q"])
    assert res.exit_code == 0, res.output
    header = json.loads((out / "decisions.jsonl").read_text().splitlines()[0])
    assert header["plant"] == "walker"
    # the walker's own drift-monitor calibration (launch/robots/calibration/walker.json), not the cartpole's
    assert header["config"]["monitor"]["calibration_file"] == "walker.json"


def test_a_bag_naming_no_robot_is_checked_by_its_joints(tmp_path):
    """A bag without driftgate.plant (any rosbag2): its recorded joint names must be the robot's."""
    bag = simulate_bag(tmp_path / "cp", seconds=1.0, drift=None)
    meta_file = bag / "metadata.yaml"
    doc = yaml.safe_load(meta_file.read_text())
    doc["rosbag2_bagfile_information"]["custom_data"].pop("driftgate.plant")
    meta_file.write_text(yaml.safe_dump(doc))
    with pytest.raises(ReplayError, match=r"recorded on robot '\(unnamed\)' with joints \['slider', 'hinge_1'\]"):
        replay(bag, tmp_path / "out", adapt=False, robot="walker")
    assert not (tmp_path / "out").exists()


def test_an_unknown_robot_is_one_line(walker_bag, tmp_path):
    res = CliRunner().invoke(cli_replay.app, ["replay", str(walker_bag), "--out", str(tmp_path / "o"), "--robot",
                                              "no_such_robot", "--no-adapt"])
    assert res.exit_code == 2 and "--robot" in res.output and "walker" in res.output
    assert not (tmp_path / "o").exists()
