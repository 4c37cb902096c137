"""The controller node's parameter rules (controller/params.py), one test per rule class: enum,
range, path, JSON; plus "did you mean" for a mistyped key. The node applies exactly these checks to
start-up values and run-time changes (tests/test_ros_params.py)."""
import math

import pytest

from controller.params import RULES, check_value, did_you_mean, rule, unknown_names

PARAMETER_NAMES = ["runtime.mode", "runtime.trigger", "runtime.rate_hz", "runtime.stale_timeout_s", "orchestrator.registry_path", "runtime.canary_weight",
                   "runtime.canary_period_s", "ros.realtime_priority", "guard.joint_bounds", "adapt.drift"]


def one_line(why):
    assert why is not None and "\n" not in why
    return why


@pytest.mark.parametrize("name, value", [("runtime.mode", "Active"), ("runtime.mode", "bogus"), ("runtime.mode", ""), ("runtime.mode", "activ"),
                                         ("runtime.trigger", "bogus"), ("runtime.trigger", "joint_state"), ("adapt.backend", "docker"),
                                         ("runtime.velocity_source", "guess"), ("robot", "tractor")])
def test_enum_values_outside_the_choices_are_refused_naming_the_choices(name, value):
    why = one_line(check_value(name, value))
    assert why.startswith(f"parameter {name}: {value!r} is not " + ("a built-in robot" if name == "robot" else "allowed"))
    if name == "robot":
        assert "cartpole | walker | reacher" in why
        return
    for choice in rule(name).options():
        assert choice in why
    assert check_value(name, rule(name).options()[0]) is None


@pytest.mark.parametrize("name, value", [("runtime.rate_hz", -1.0), ("runtime.rate_hz", 0.0), ("runtime.rate_hz", math.nan),
                                         ("runtime.rate_hz", math.inf), ("runtime.rate_hz", "fast"), ("runtime.stale_timeout_s", 0.0),
                                         ("runtime.canary_weight", 5.0), ("runtime.canary_weight", -0.1),
                                         ("runtime.canary_period_s", math.inf), ("ros.realtime_priority", 500),
                                         ("ros.realtime_priority", -1), ("runtime.burst_limit", 0), ("orchestrator.canary_weights", [0.5, 2.0]),
                                         ("orchestrator.canary_weights", []), ("runtime.safe_command", [math.nan])])
def test_range_values_outside_the_range_are_refused_naming_the_range(name, value):
    why = one_line(check_value(name, value))
    assert why.startswith(f"parameter {name}: ") and "allowed: " in why


@pytest.mark.parametrize("name, value", [("runtime.rate_hz", 100.0), ("runtime.rate_hz", 10000.0), ("runtime.canary_weight", 0.0),
                                         ("runtime.canary_weight", 1.0), ("ros.realtime_priority", 0), ("ros.realtime_priority", 99),
                                         ("orchestrator.canary_weights", [0.1, 1.0]), ("runtime.safe_command", [0.0])])
def test_range_values_inside_are_accepted(name, value):
    assert check_value(name, value) is None


def test_path_rules(tmp_path):
    assert "system directory" in one_line(check_value("orchestrator.registry_path", "/etc"))
    assert "system directory" in one_line(check_value("orchestrator.registry_path", "/"))
    assert "system directory" in one_line(check_value("orchestrator.job_root", "/usr"))
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("x")
    assert "not a driftgate registry" in one_line(check_value("orchestrator.registry_path", str(full)))
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert "not a directory" in one_line(check_value("orchestrator.registry_path", str(afile)))
    assert check_value("orchestrator.registry_path", str(tmp_path / "new")) is None          # created on bootstrap
    (tmp_path / "empty").mkdir()
    assert check_value("orchestrator.registry_path", str(tmp_path / "empty")) is None
    assert "does not exist" in one_line(check_value("gate.suite", str(tmp_path / "missing.yaml")))
    assert "not a regular file" in one_line(check_value("monitor.config", str(tmp_path / "empty")))
    assert "not a regular file" in one_line(check_value("orchestrator.bootstrap_champion", "/dev/zero"))
    assert check_value("orchestrator.bootstrap_champion", "lqr") is None and check_value("monitor.config", "none") is None
    assert check_value("gate.suite", str(afile)) is None


@pytest.mark.parametrize("name, value, match", [
    ("guard.joint_bounds", "{bad", "not valid JSON"),
    ("guard.joint_bounds", "[1, 2]", "JSON object"),
    ("guard.joint_bounds", '{"slider": [1.0, -1.0]}', "must be < high"),
    ("guard.joint_bounds", '{"slider": [NaN, 1.0]}', "finite"),
    ("adapt.drift", "gravity x 2", "not valid JSON"),
    ("adapt.drift", '{"gravity": 1e9}', "not physically plausible"),
    ("adapt.drift", '{"mass": 2}', "unknown field"),
    ("adapt.sandbox_command", "python run.py", "{job_dir}"),
    ("adapt.sandbox_command", "python 'unclosed {job_dir}", "cannot be split")])
def test_json_values_are_parsed_and_checked(name, value, match):
    why = one_line(check_value(name, value))
    assert why.startswith(f"parameter {name}: ") and match in why


def test_json_values_that_parse_are_accepted():
    assert check_value("guard.joint_bounds", '{"slider": [-1.6, 1.6]}') is None
    assert check_value("guard.joint_bounds", "{}") is None
    assert check_value("adapt.drift", "") is None
    assert check_value("adapt.drift", '{"mass_scale": {"pole_1": 3.0}}') is None


def test_a_mistyped_key_gets_did_you_mean():
    assert did_you_mean("runtime.rate_hx", PARAMETER_NAMES) == "; did you mean runtime.rate_hz?"
    assert "did you mean runtime.stale_timeout_s" in unknown_names(["runtime.stale_timeout"], PARAMETER_NAMES)
    assert unknown_names(["zzz"], PARAMETER_NAMES) == "unknown parameter 'zzz'"
    assert unknown_names(["runtime.mode"], PARAMETER_NAMES) is None


def test_an_old_flat_name_is_refused_naming_the_new_one():
    assert unknown_names(["rate_hz"], PARAMETER_NAMES) == "parameter 'rate_hz' was renamed: use runtime.rate_hz"
    assert unknown_names(["drift_hint"], PARAMETER_NAMES) == "parameter 'drift_hint' was renamed: use adapt.drift"


def test_every_rule_names_what_is_allowed():
    from controller.settings import field_info, leaves
    for name, r in RULES.items():
        assert r.allowed(), name
        assert field_info(name) is not None, f"{name} is not a setting of the tree"
    for name, _, _ in leaves():                      # a rule, or a type check by ROS / pydantic
        r = rule(name)
        assert r is None or r.allowed(), name
