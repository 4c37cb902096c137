"""Robot profiles: every bad profile is refused with one line that names the field (and, for an
unknown name, the names the model has); URDF models go through MuJoCo's URDF compiler."""
import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from sim.plants import make_plant
from sim.profile import ProfileError, find_profile, load_profile, profile_from_mapping

ROBOTS = Path(__file__).resolve().parents[1] / "launch" / "robots"


def base(name="cartpole"):
    return yaml.safe_load((ROBOTS / f"{name}.yaml").read_text())


def refused(doc, *fragments, name="cartpole"):
    """Load `doc` as if it were the shipped profile's file; return the one-line error."""
    with pytest.raises(ProfileError) as e:
        profile_from_mapping(doc, ROBOTS / f"{name}.yaml")
    msg = str(e.value)
    assert "\n" not in msg, msg
    for f in fragments:
        assert f in msg, (f, msg)
    return msg


def edit(path, value, name="cartpole"):
    doc = copy.deepcopy(base(name))
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return doc


def test_every_shipped_profile_loads():
    for path in sorted(ROBOTS.glob("*.yaml")):
        p = load_profile(path)
        assert p.name == path.stem and len(p.actuators) == p.model.nu
    assert find_profile("ant") == ROBOTS / "ant.yaml"
    with pytest.raises(ProfileError, match="unknown robot 'nope'; shipped profiles: .*'cartpole'"):
        find_profile("nope")


@pytest.mark.parametrize("field,value,fragments", [
    ("observe.joint_states.joints", {"slider": "slidr"},
     ["observe.joint_states.joints.slider", "unknown joint 'slidr'", "known: [slider, hinge_1]"]),
    ("command.actuators", ["slid"], ["command.actuators[0]", "unknown actuator 'slid'", "known: [slide]"]),
    ("safety.fall", {"body": "pole", "max_tilt_deg": 90}, ["safety.fall[0].body", "unknown body 'pole'", "pole_1"]),
    ("observe.imu", {"site": "tip"}, ["observe.imu.site", "unknown site 'tip'", "known: []"]),
    ("initial_state", {"keyframe": "home"}, ["initial_state.keyframe", "unknown keyframe 'home'"]),
    ("initial_state", {"qpos": {"hinge_2": 0.1}}, ["initial_state.qpos.hinge_2", "unknown joint", "hinge_1"]),
    ("drift.mass_scale", {"pole_2": [0.5, 2]}, ["drift.mass_scale.pole_2", "unknown body", "pole_1"]),
    ("drift.actuator_gain", {"joint:hinge_1": [-1, 1]}, ["drift.actuator_gain.joint:hinge_1", "known: [slide]"]),
    ("drift.obs_bias", {"pole_angle": [0, 0.1]}, ["drift.obs_bias.pole_angle", "unknown observation",
                                                  "slider.position"]),
    ("safety.joint_bounds", {"cart": [-1, 1]}, ["safety.joint_bounds.cart", "unknown joint 'cart'", "slider"]),
])
def test_unknown_names_name_the_field_and_the_known_names(field, value, fragments):
    refused(edit(field, value), *fragments)


def test_count_mismatches():
    refused(edit("command.safe", [0.0, 0.0]), "command.safe", "2 values for 1 actuators")
    doc = base("walker")
    doc["command"]["actuators"] = doc["command"]["actuators"][:5]
    doc["command"]["safe"] = [0] * 5
    refused(doc, "command.actuators", "5 actuators listed, the model has 6", "missing: [left_ankle]", name="walker")
    doc = base("walker")
    doc["command"]["actuators"][5] = "left_hip"
    refused(doc, "command.actuators[5]", "'left_hip' is already command index 3", name="walker")
    refused(edit("observe.joint_states.joints", {"a": "slider", "b": "slider"}),
            "observe.joint_states.joints.b", "already mapped from 'a'")


def test_values_are_checked_against_the_model():
    refused(edit("control.rate_hz", 30), "control.rate_hz", "30 Hz is not the model's 100 Hz", "50")
    refused(edit("command.safe", [2.0]), "command.safe[0]", "outside the ctrlrange [-1, 1] of actuator 'slide'")
    refused(edit("command.safe", [float("nan")]), "command.safe[0]", "finite")
    refused(edit("command.safe", ["x"]), "command.safe[0]")
    refused(edit("safety.joint_bounds", {"slider": [1, -1]}), "safety.joint_bounds", "lower bound 1.0 >= upper")
    doc = base("ant")
    doc["observe"]["joint_states"]["joints"]["root"] = "root"
    refused(doc, "observe.joint_states.joints.root", "is a free joint", "observe.imu", name="ant")
    refused(edit("observe.odometry", {"body": "pole_1"}), "observe.odometry.body", "has no free joint")


def test_objective_terms_that_name_nothing():
    term = lambda **t: edit("objective", {"kind": "terms", "terms": [t]})  # noqa: E731
    refused(term(tolerance="body_height(torso)"), "objective.terms[0].tolerance", "unknown body 'torso'", "pole_1")
    refused(term(tolerance="joint_position(hinge)"), "objective.terms[0].tolerance", "unknown joint", "hinge_1")
    refused(term(tolerance="control(joint:hinge_1)", bounds=[0, 0]), "objective.terms[0].tolerance", "known: [slide]")
    refused(term(tolerance="height(pole_1)"), "objective.terms[0]", "not a quantity", "body_height(NAME)")
    refused(term(upright="pole"), "objective.terms[0].upright", "unknown body 'pole'")
    refused(term(effort=[]), "objective.terms[0].effort", "names no actuator")
    refused(term(effort=["slider"]), "objective.terms[0].effort[0]", "unknown actuator 'slider'")
    refused(term(upright="pole_1", effort="all"), "objective.terms[0]", "exactly one of tolerance, upright, effort")
    refused(edit("objective", {"kind": "terms"}), "objective", "needs at least one term")
    refused(edit("objective", {"kind": "entry_point", "entry_point": "sim.plants.cartpole:no_such"}),
            "objective.entry_point", "cannot load 'sim.plants.cartpole:no_such'")
    refused(edit("objective", {"kind": "entry_point", "entry_point": "not an entry point"}),
            "objective.entry_point", "not a 'package.module:function' entry point")
    refused(edit("objective", {"kind": "model_reference", "track": ["base_orientation"]}),
            "objective.track", "needs observe.imu")


def test_shape_errors_name_the_path():
    refused(edit("observe.joint_states.velocty", "measured"), "observe.joint_states.velocty", "Extra inputs")
    refused(edit("command.interface", "torque"), "command.interface", "'effort', 'velocity' or 'position'")
    refused(edit("drift.damping_scale", {"all": [0, 2]}), "drift", "a scale must be > 0")
    refused(edit("model", {"mjcf": "x.xml", "urdf": "y.urdf"}), "model", "exactly one of mjcf or urdf")
    refused(edit("model", {"mjcf": "no_such.xml"}), "model.mjcf", "no such file", "no_such.xml")
    refused(edit("model", {"mjcf": "no_such_package_xyz:robot.xml"}), "model.mjcf", "'no_such_package_xyz'",
            "not installed")
    refused({"name": "x"}, "model", "Field required")
    with pytest.raises(ProfileError, match="a profile is a YAML mapping"):
        profile_from_mapping(["x"])


def test_profile_files_with_broken_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ProfileError, match=r"bad.yaml: not valid YAML"):
        load_profile(bad)
    with pytest.raises(ProfileError, match="cannot read the profile"):
        load_profile(tmp_path / "missing.yaml")


# -- URDF through MuJoCo's URDF compiler -------------------------------------------------------------

URDF = """<robot name="arm2">
  <link name="base"><inertial><mass value="1"/><inertia ixx="0.01" iyy="0.01" izz="0.01" ixy="0" ixz="0" iyz="0"/></inertial>
    <visual><geometry><box size="0.1 0.1 0.1"/></geometry></visual></link>
  <link name="upper"><inertial><origin xyz="0 0 0.15"/><mass value="0.5"/>
    <inertia ixx="0.004" iyy="0.004" izz="0.001" ixy="0" ixz="0" iyz="0"/></inertial>
    <collision><origin xyz="0 0 0.15"/><geometry>{upper_geometry}</geometry></collision></link>
  <link name="lower"><inertial><origin xyz="0 0 0.1"/><mass value="0.3"/>
    <inertia ixx="0.002" iyy="0.002" izz="0.0005" ixy="0" ixz="0" iyz="0"/></inertial>
    <collision><origin xyz="0 0 0.1"/><geometry><cylinder radius="0.02" length="0.2"/></geometry></collision></link>
  <joint name="shoulder" type="revolute"><parent link="base"/><child link="upper"/><axis xyz="0 1 0"/>
    <limit lower="-1.5" upper="1.5" effort="20" velocity="3"/></joint>
  <joint name="elbow" type="revolute"><parent link="upper"/><child link="lower"/><origin xyz="0 0 0.3"/>
    <axis xyz="0 1 0"/><limit lower="-2" upper="2" effort="10" velocity="3"/></joint>
</robot>
"""
CYLINDER = '<cylinder radius="0.03" length="0.3"/>'


def urdf_profile(tmp_path, actuators=True, geometry=CYLINDER):
    (tmp_path / "arm2.urdf").write_text(URDF.format(upper_geometry=geometry))
    model = {"urdf": "arm2.urdf"}
    if actuators:
        model["actuators"] = [{"joint": "shoulder", "gear": 20, "ctrlrange": [-1, 1]},
                              {"joint": "elbow", "kind": "position", "kp": 30, "ctrlrange": [-2, 2]}]
    doc = {"version": 1, "name": "arm2", "model": model, "control": {"rate_hz": 50},
           "observe": {"joint_states": {"joints": {"shoulder_joint": "shoulder", "elbow_joint": "elbow"}}},
           "command": {"actuators": ["joint:shoulder", "joint:elbow"]}}
    path = tmp_path / "arm2.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_urdf_with_an_actuator_block_compiles_and_runs(tmp_path):
    p = load_profile(urdf_profile(tmp_path))
    assert p.model.nu == 2 and p.n_sub_steps == 10           # MuJoCo's default 2 ms timestep
    assert p.joint_bounds == {"shoulder_joint": (-1.5, 1.5), "elbow_joint": (-2.0, 2.0)}
    plant = make_plant(str(tmp_path / "arm2.yaml"), seed=0)
    assert plant.act_high.tolist() == [1.0, 2.0]
    elbow = plant.obs_names.index("elbow_joint.position")
    for target in (1.0, -1.0):                                 # the elbow is a position servo
        plant.reset(0)
        for _ in range(50):
            obs, reward = plant.act([0.0, target])
        assert obs[elbow] * target > 0.4 and 0 <= reward <= 1


def test_urdf_without_actuators_is_refused(tmp_path):
    with pytest.raises(ProfileError) as e:
        load_profile(urdf_profile(tmp_path, actuators=False))
    assert "model.actuators: the URDF arm2.urdf declares no actuators" in str(e.value)
    assert "driftgate robot init --urdf" in str(e.value) and "\n" not in str(e.value)


def test_urdf_with_a_missing_mesh_is_refused(tmp_path):
    with pytest.raises(ProfileError) as e:
        load_profile(urdf_profile(tmp_path, geometry='<mesh filename="meshes/upper_arm.stl"/>'))
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 'arm2.yaml'}: model.urdf: ") and "upper_arm.stl" in msg and "\n" not in msg
    assert "mesh" in msg.split("upper_arm.stl")[-1]


def test_urdf_actuator_on_an_unknown_joint(tmp_path):
    path = urdf_profile(tmp_path)
    doc = yaml.safe_load(path.read_text())
    doc["model"]["actuators"][1]["joint"] = "wrist"
    with pytest.raises(ProfileError, match=r"model.actuators\[1\].joint: unknown joint 'wrist'; known: \[shoulder, elbow\]"):
        profile_from_mapping(doc, path)


def test_safe_command_defaults_inside_the_ctrlrange():
    p = load_profile(ROBOTS / "pusher.yaml")
    assert np.array_equal(p.safe_command, np.zeros(7))


def test_actuator_kinds_for_the_command_interface(tmp_path):
    from sim.profile.model_names import actuator_kind
    p = load_profile(urdf_profile(tmp_path))          # a motor and a position servo
    assert [actuator_kind(p.model, a) for a in p.actuators] == ["motor", "position"]
    ant = load_profile(ROBOTS / "ant.yaml")
    assert {actuator_kind(ant.model, a) for a in ant.actuators} == {"motor"}
    import mujoco
    m = mujoco.MjModel.from_xml_string("""<mujoco><worldbody><body><joint name="j" type="hinge"/>
      <geom size="0.1" mass="1"/></body></worldbody><actuator><motor joint="j"/><position joint="j" kp="5"/>
      <velocity joint="j" kv="2"/><general joint="j" dyntype="filter" dynprm="0.1"/></actuator></mujoco>""")
    assert [actuator_kind(m, i) for i in range(4)] == ["motor", "position", "velocity", "other"]
