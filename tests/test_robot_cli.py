"""`driftgate robot init` then `robot check` on every MuJoCo model shipped inside the installed
dependencies (dm_control's suite, gymnasium's MuJoCo assets) and on URDFs; `check --bag` against
recordings of the right and of another robot."""
import importlib.util
from pathlib import Path

import mujoco
import numpy as np
import pytest
from typer.testing import CliRunner

from adapters.cli import app
from adapters.recording import BagWriter
from sim.plants import make_plant

runner = CliRunner()
ROBOTS = Path(__file__).resolve().parents[1] / "launch" / "robots"


def package_dir(name: str) -> Path:
    return Path(list(importlib.util.find_spec(name).submodule_search_locations)[0])


MODELS = sorted(package_dir("dm_control").glob("suite/*.xml")) + \
    sorted(package_dir("gymnasium").glob("envs/mujoco/assets/*.xml"))


def model_id(path: Path) -> str:
    return f"{path.parent.parent.name if path.parent.name == 'assets' else path.parent.name}/{path.name}"


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_the_models_are_there():
    """The parametrisation below is not empty: dm_control's suite and gymnasium's assets are found."""
    names = {model_id(p) for p in MODELS}
    assert {"suite/cartpole.xml", "suite/quadruped.xml", "mujoco/ant.xml", "mujoco/pusher.xml"} <= names
    assert len(MODELS) >= 30


@pytest.mark.parametrize("model_path", MODELS, ids=model_id)
def test_init_then_check_on_every_shipped_model(model_path, tmp_path):
    try:
        model = mujoco.MjModel.from_xml_path(str(model_path))
    except ValueError as e:
        if "opening file" in str(e):
            pytest.skip(f"{model_path.name} needs asset files not shipped in the package: {e}")
        raise
    usable = model.nu > 0 and any(model.joint(j).name and model.jnt_type[j] in (2, 3) for j in range(model.njnt))
    profile = tmp_path / "robot.yaml"
    result = run("robot", "init", "--mjcf", model_path, "--out", profile)
    if not usable:   # nothing to command or to observe: refused with one line, nothing written
        assert result.exit_code == 2, result.output
        assert "no actuators" in result.output or "no named hinge or slide joint" in result.output
        assert not profile.exists()
        return
    assert result.exit_code == 0, result.output
    text = profile.read_text()
    for j in range(model.njnt):      # every joint, actuator and body is named in the draft
        assert model.joint(j).name in text
    for b in range(1, model.nbody):
        assert model.body(b).name in text
    for s in range(model.nsensor):
        assert model.sensor(s).name in text
    checked = run("robot", "check", profile)
    assert checked.exit_code == 0, checked.output
    assert "ok: " in checked.output
    plant = make_plant(str(profile), seed=0)       # the draft drives a plant as it is
    for _ in range(3):
        obs, reward = plant.act(plant.safe_command)
    assert obs.shape == (plant.obs_dim,) and np.isfinite(reward)


def test_init_refuses_to_overwrite_and_bad_input(tmp_path):
    model = package_dir("dm_control") / "suite" / "cartpole.xml"
    out = tmp_path / "cp.yaml"
    assert run("robot", "init", "--mjcf", model, "--out", out).exit_code == 0
    before = out.read_text()
    again = run("robot", "init", "--mjcf", model, "--out", out)
    assert again.exit_code == 2 and "exists; pass --force" in again.output and out.read_text() == before
    assert run("robot", "init", "--mjcf", model, "--out", out, "--force").exit_code == 0
    missing = run("robot", "init", "--mjcf", tmp_path / "nope.xml")
    assert missing.exit_code == 2 and "--mjcf: no such file" in missing.output
    both = run("robot", "init")
    assert both.exit_code == 2 and "exactly one of --mjcf FILE or --urdf FILE" in both.output
    bad = tmp_path / "bad.xml"
    bad.write_text("<mujoco><worldbody><body><joint type='hinge'/></body></worldbody>")
    broken = run("robot", "init", "--mjcf", bad, "--out", tmp_path / "bad.yaml")
    assert broken.exit_code == 2 and "--mjcf" in broken.output and not (tmp_path / "bad.yaml").exists()


def test_check_refuses_a_bad_profile_with_one_line(tmp_path):
    doc = (ROBOTS / "cartpole.yaml").read_text().replace("actuators: [slide]", "actuators: [slid]")
    bad = tmp_path / "cartpole.yaml"
    bad.write_text(doc.replace("sim/assets", "x"))
    result = run("robot", "check", bad)
    assert result.exit_code == 2
    assert "command.actuators[0]: unknown actuator 'slid'" in result.output
    assert result.output.count("\n") == 1


URDF = """<robot name="twolink">
  <link name="base"/>
  <link name="l1"><inertial><mass value="1"/><inertia ixx="0.01" iyy="0.01" izz="0.01" ixy="0" ixz="0" iyz="0"/></inertial>
    <collision><geometry>{geometry}</geometry></collision></link>
  <link name="l2"><inertial><mass value="0.5"/><inertia ixx="0.005" iyy="0.005" izz="0.005" ixy="0" ixz="0" iyz="0"/></inertial></link>
  <joint name="j1" type="revolute"><parent link="base"/><child link="l1"/><axis xyz="0 0 1"/>
    <limit lower="-3" upper="3" effort="12" velocity="2"/></joint>
  <joint name="j2" type="prismatic"><parent link="l1"/><child link="l2"/><axis xyz="1 0 0"/>
    <limit lower="0" upper="0.5" effort="40" velocity="1"/></joint>
  <joint name="fixed_tool" type="fixed"><parent link="l2"/><child link="tool"/></joint>
  <link name="tool"/>
</robot>
"""


def test_init_urdf_drafts_an_actuator_block_that_checks(tmp_path):
    (tmp_path / "twolink.urdf").write_text(URDF.format(geometry='<box size="0.1 0.1 0.1"/>'))
    out = tmp_path / "profiles" / "twolink.yaml"
    result = run("robot", "init", "--urdf", tmp_path / "twolink.urdf", "--out", out)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert 'urdf: "../twolink.urdf"' in text and "declares no actuators" in text
    assert '{joint: "j1", kind: motor, gear: 1, ctrlrange: [-12, 12]}' in text      # from the effort limits
    assert '{joint: "j2", kind: motor, gear: 1, ctrlrange: [-40, 40]}' in text
    assert "fixed_tool" not in text.split("actuators:")[1].split("control:")[0]
    checked = run("robot", "check", out)
    assert checked.exit_code == 0, checked.output
    plant = make_plant(str(out))
    assert plant.act_high.tolist() == [12.0, 40.0] and plant.actuator_names == ["joint:j1", "joint:j2"]


def test_init_urdf_with_a_missing_mesh(tmp_path):
    (tmp_path / "twolink.urdf").write_text(URDF.format(geometry='<mesh filename="package://twolink/l1.stl"/>'))
    result = run("robot", "init", "--urdf", tmp_path / "twolink.urdf", "--out", tmp_path / "t.yaml")
    assert result.exit_code == 2 and "l1.stl" in result.output and result.output.count("\n") == 1
    assert not (tmp_path / "t.yaml").exists()


def write_bag(path, names, width, joint_topic=None):
    with BagWriter(path, plant="x", joint_names=names, control_dt=0.01) as bag:
        for k in range(5):
            bag.joint_state(k * 0.01, names, np.zeros(len(names)), np.zeros(len(names)), topic=joint_topic)
            bag.command(k * 0.01 + 0.001, np.zeros(width))


def test_check_against_a_recording(tmp_path):
    profile = ROBOTS / "cartpole.yaml"
    write_bag(tmp_path / "good", ["slider", "hinge_1"], 1)
    good = run("robot", "check", profile, "--bag", tmp_path / "good")
    assert good.exit_code == 0, good.output
    assert "/joint_states" in good.output and "ok: cartpole" in good.output
    # a recording of another robot: its JointState names are not the profile's
    walker = ["rootz", "rootx", "rooty", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle"]
    write_bag(tmp_path / "walker", walker, 6)
    other = run("robot", "check", profile, "--bag", tmp_path / "walker")
    assert other.exit_code == 2
    assert "observe.joint_states.joints: ['slider', 'hinge_1'] are not in the recorded JointState" in other.output
    write_bag(tmp_path / "wide", ["slider", "hinge_1"], 3)
    wide = run("robot", "check", profile, "--bag", tmp_path / "wide")
    assert wide.exit_code == 2 and "command.actuators: the recorded commands carry 3 values" in wide.output
    write_bag(tmp_path / "ns", ["slider", "hinge_1"], 1, joint_topic="/robot1/states")
    moved = run("robot", "check", profile, "--bag", tmp_path / "ns")
    assert moved.exit_code == 2 and "observe.joint_states.topic: topic 'joint_states' is not in the recording" in moved.output
    notbag = run("robot", "check", profile, "--bag", tmp_path)
    assert notbag.exit_code == 2 and "not a rosbag2 bag directory" in notbag.output


@pytest.mark.parametrize("profile", sorted(ROBOTS.glob("*.yaml")), ids=lambda p: p.stem)
def test_check_every_shipped_profile(profile):
    result = run("robot", "check", profile)
    assert result.exit_code == 0, result.output
    assert f"ok: {profile.stem}" in result.output and "objective" in result.output
