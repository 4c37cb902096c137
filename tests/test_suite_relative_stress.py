"""Relative stress bounds (`stress.relative`) and the drafted suite's semantics after a persistent drift.

Why: the orchestrator replaces a suite's target with the system-identification estimate
(`Suite.with_target`); stress bounds that are absolute keep stressing the drift the suite's author
guessed, not the one identified. And a drafted suite must not carry a paired `nominal` regression for
a persistent drift: no candidate adapted to half-strength motors matches the old champion on
full-strength ones, so that scenario failed every walker adaptation."""
from __future__ import annotations

import copy

import pytest

from safety.suite import SuiteError, load_suite, parse_suite

HALF = {"actuator_gain": {"slide": 0.5}}
DOC = {
    "version": 1, "name": "rel", "plant": "cartpole", "defaults": {"horizon": 50, "seeds": 6},
    "scenarios": [
        {"name": "target", "tag": "target", "drift": HALF},
        {"name": "stress", "tag": "stress", "drift": "target",
         "stress": {"seed": 3, "relative": True,
                    "bounds": {"actuator_gain": {"slide": [0.8, 1.2]}, "mass_scale": {"pole_1": [0.9, 1.1]},
                               "obs_noise": [0.0, 0.01]}}},
    ],
}


def _doc(**stress) -> dict:
    d = copy.deepcopy(DOC)
    d["scenarios"][1]["stress"].update(stress)
    return d


def test_relative_bounds_are_factors_of_the_target_and_follow_with_target():
    suite = parse_suite(_doc())
    sc = suite.scenario("stress")
    for i in range(len(sc.seeds)):
        d = sc.drift_for(i)
        assert 0.4 <= d.value("actuator_gain", "slide") <= 0.6          # 0.5 x [0.8, 1.2]
        assert 0.9 <= d.value("mass_scale", "pole_1") <= 1.1           # untouched by the target: 1.0 x
        assert 0.0 <= d.obs_noise <= 0.01                               # absolute
    moved = suite.with_target({"actuator_gain": {"slide": -2.0}, "mass_scale": {"pole_1": 3.0}}).scenario("stress")
    for i in range(len(moved.seeds)):
        d = moved.drift_for(i)
        assert -2.4 <= d.value("actuator_gain", "slide") <= -1.6       # sign kept, spread follows the estimate
        assert 2.7 <= d.value("mass_scale", "pole_1") <= 3.3
    # the same draws, scaled: factor = value / target
    f0 = sc.drift_for(0).value("actuator_gain", "slide") / 0.5
    assert moved.drift_for(0).value("actuator_gain", "slide") == pytest.approx(-2.0 * f0)


def test_absolute_bounds_stay_absolute():
    sc = parse_suite(_doc(relative=False)).with_target({"actuator_gain": {"slide": 2.0}}).scenario("stress")
    assert all(0.8 <= sc.drift_for(i).value("actuator_gain", "slide") <= 1.2 for i in range(len(sc.seeds)))


@pytest.mark.parametrize("stress,message", [
    ({"relative": "yes"}, "expected true or false"),
    ({"bounds": {"mass_scale": {"pole_1": [-0.5, 1.2]}}}, "factors must be > 0"),
    ({"bounds": {"actuator_gain": {"slide": [-1.2, -0.8]}}}, "must be > 0"),
])
def test_bad_relative_bounds_are_refused(stress, message):
    with pytest.raises(SuiteError, match=message):
        parse_suite(_doc(**stress), source="s.yaml")


def test_relative_flag_round_trips_in_to_dict():
    assert parse_suite(_doc()).scenario("stress").stress.to_dict()["relative"] is True
    assert "relative" not in parse_suite(_doc(relative=False)).scenario("stress").stress.to_dict()


def test_drafted_suite_has_no_paired_nominal_regression_and_relative_stress():
    from sim.profile import find_profile, load_profile
    from sim.profile.suite_draft import draft_suite
    profile = load_profile(find_profile("walker"))
    doc = draft_suite("walker", profile)
    tags = {s["tag"] for s in doc["scenarios"]}
    assert "nominal" not in tags and {"target", "stress"} <= tags
    stress = next(s for s in doc["scenarios"] if s["tag"] == "stress")
    assert stress["stress"]["relative"] is True
    assert all(b == [0.8, 1.2] for b in stress["stress"]["bounds"]["actuator_gain"].values())
    assert "nominal" in {s["tag"] for s in draft_suite("walker", profile, nominal=True)["scenarios"]}


def test_shipped_walker_suite_follows_the_estimate():
    from pathlib import Path
    suite = load_suite(Path(__file__).resolve().parents[1] / "launch" / "robots" / "suites" / "walker.yaml")
    assert "nominal" not in {s.tag for s in suite.scenarios}
    estimate = {"actuator_gain": {"left_knee": 0.77}, "mass_scale": {"torso": 1.9}}
    sc = suite.with_target(estimate).scenario("stress")
    for i in range(len(sc.seeds)):
        d = sc.drift_for(i)
        assert 0.77 * 0.8 <= d.value("actuator_gain", "left_knee") <= 0.77 * 1.2
        assert d.value("mass_scale", "torso") == 1.9
