"""The controller node's parameter rules (controller/params.py), one test per rule class: enum,
range, path, JSON; plus "did you mean" for a mistyped key. The node applies exactly these checks to
start-up values and run-time changes (tests/test_ros_params.py)."""
import math

import pytest

from controller.params import RULES, check_value, did_you_mean, unknown_names

PARAMETER_NAMES = ["mode", "trigger", "rate_hz", "stale_timeout_s", "registry_path", "canary_weight",
                   "canary_period_s", "realtime_priority", "guard_joint_bounds", "drift_hint"]


def one_line(why):
    assert why is not None and "\n" not in why
    return why


@pytest.mark.parametrize("name, value", [("mode", "Active"), ("mode", "bogus"), ("mode", ""), ("mode", "activ"),
                                         ("trigger", "bogus"), ("trigger", "joint_state"), ("sandbox", "docker"),
                                         ("velocity_source", "guess"), ("plant", "tractor")])
def test_enum_values_outside_the_choices_are_refused_naming_the_choices(name, value):
    why = one_line(check_value(name, value))
    assert why.startswith(f"parameter {name}: {value!r} is not allowed")
    for choice in RULES[name].options():
        assert choice in why
    assert check_value(name, RULES[name].options()[0]) is None


@pytest.mark.parametrize("name, value", [("rate_hz", -1.0), ("rate_hz", 0.0), ("rate_hz", math.nan),
                                         ("rate_hz", math.inf), ("rate_hz", "fast"), ("stale_timeout_s", 0.0),
                                         ("canary_weight", 5.0), ("canary_weight", -0.1),
                                         ("canary_period_s", math.inf), ("realtime_priority", 500),
                                         ("realtime_priority", -1), ("burst_limit", 0), ("canary_weights", [0.5, 2.0]),
                                         ("canary_weights", []), ("safe_command", [math.nan])])
def test_range_values_outside_the_range_are_refused_naming_the_range(name, value):
    why = one_line(check_value(name, value))
    assert why.startswith(f"parameter {name}: ") and "allowed: " in why


@pytest.mark.parametrize("name, value", [("rate_hz", 100.0), ("rate_hz", 10000.0), ("canary_weight", 0.0),
                                         ("canary_weight", 1.0), ("realtime_priority", 0), ("realtime_priority", 99),
                                         ("canary_weights", [0.1, 1.0]), ("safe_command", [0.0])])
def test_range_values_inside_are_accepted(name, value):
    assert check_value(name, value) is None


def test_path_rules(tmp_path):
    assert "system directory" in one_line(check_value("registry_path", "/etc"))
    assert "system directory" in one_line(check_value("registry_path", "/"))
    assert "system directory" in one_line(check_value("job_root", "/usr"))
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("x")
    assert "not a driftgate registry" in one_line(check_value("registry_path", str(full)))
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert "not a directory" in one_line(check_value("registry_path", str(afile)))
    assert check_value("registry_path", str(tmp_path / "new")) is None          # created on bootstrap
    (tmp_path / "empty").mkdir()
    assert check_value("registry_path", str(tmp_path / "empty")) is None
    assert "does not exist" in one_line(check_value("gate_suite", str(tmp_path / "missing.yaml")))
    assert "not a regular file" in one_line(check_value("detector_config", str(tmp_path / "empty")))
    assert "not a regular file" in one_line(check_value("bootstrap_champion", "/dev/zero"))
    assert check_value("bootstrap_champion", "lqr") is None and check_value("detector_config", "none") is None
    assert check_value("gate_suite", str(afile)) is None


@pytest.mark.parametrize("name, value, match", [
    ("guard_joint_bounds", "{bad", "not valid JSON"),
    ("guard_joint_bounds", "[1, 2]", "JSON object"),
    ("guard_joint_bounds", '{"slider": [1.0, -1.0]}', "must be < high"),
    ("guard_joint_bounds", '{"slider": [NaN, 1.0]}', "finite"),
    ("drift_hint", "gravity x 2", "not valid JSON"),
    ("drift_hint", '{"gravity": 1e9}', "not physically plausible"),
    ("drift_hint", '{"mass": 2}', "unknown field"),
    ("sandbox_command", "python run.py", "{job_dir}"),
    ("sandbox_command", "python 'unclosed {job_dir}", "cannot be split")])
def test_json_values_are_parsed_and_checked(name, value, match):
    why = one_line(check_value(name, value))
    assert why.startswith(f"parameter {name}: ") and match in why


def test_json_values_that_parse_are_accepted():
    assert check_value("guard_joint_bounds", '{"slider": [-1.6, 1.6]}') is None
    assert check_value("guard_joint_bounds", "{}") is None
    assert check_value("drift_hint", "") is None
    assert check_value("drift_hint", '{"mass_scale": {"pole_1": 3.0}}') is None


def test_a_mistyped_key_gets_did_you_mean():
    assert did_you_mean("rate_hx", PARAMETER_NAMES) == "; did you mean rate_hz?"
    assert "did you mean stale_timeout_s" in unknown_names(["stale_timeout"], PARAMETER_NAMES)
    assert unknown_names(["zzz"], PARAMETER_NAMES) == "unknown parameter 'zzz'"
    assert unknown_names(["mode"], PARAMETER_NAMES) is None


def test_every_rule_names_what_is_allowed():
    for name, rule in RULES.items():
        assert rule.allowed(), name
