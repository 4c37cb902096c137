"""Recovery metrics on hand-made curves, where every expected number can be checked by eye."""
from __future__ import annotations

import doctest

import numpy as np
import pytest

import sim.recovery
from sim.recovery import recovery, recovery_best, recovery_mean, summarise


def test_docstring_examples():
    assert doctest.testmod(sim.recovery, raise_on_error=False).failed == 0


def test_two_toggles_exact_numbers():
    #        0    1    2    3    4    5    6    7    8    9   10   11
    best = [50, 100, 100, 10, 30, 50, 90, 100, 40, 60, 70, 80]
    on, off = recovery_best(best, [3, 8])

    assert on == {"switch_gen": 3, "pre_best": 100.0, "gens_to_50": 2, "gens_to_90": 3,
                  "gens_to_100": 4, "drop": 90.0, "min_after": 10.0,
                  "area": pytest.approx((0.1 + 0.3 + 0.5 + 0.9 + 1.0) / 5), "valid": True}
    # the second window runs from the first toggle (gen 3) to gen 7
    assert off == {"switch_gen": 8, "pre_best": 100.0, "gens_to_50": 1, "gens_to_90": None,
                   "gens_to_100": None, "drop": 60.0, "min_after": 40.0,
                   "area": pytest.approx((0.4 + 0.6 + 0.7 + 0.8) / 4), "valid": True}


def test_first_pre_window_starts_at_generation_zero():
    r, = recovery([100, 50, 0, 100], [2])
    assert r["pre_best"] == 100.0 and r["gens_to_100"] == 1


def test_pre_window_starts_at_previous_toggle():
    # a high value before the first toggle must not count as the "pre" level of the second one
    best = [500, 500, 20, 200, 200, 100, 180]
    _, second = recovery(best, [2, 5])
    assert second["pre_best"] == 200.0
    assert second["gens_to_90"] == 1 and second["gens_to_100"] is None


def test_no_drop_is_zero_generations_and_full_area():
    r, = recovery([1, 2, 3, 3, 4], [2])
    assert r["gens_to_50"] == r["gens_to_90"] == r["gens_to_100"] == 0
    assert r["drop"] == -1.0 and r["area"] == 1.0


def test_reaching_exactly_the_fraction_counts():
    r, = recovery([500, 0, 449.99, 450, 500], [1])
    assert (r["gens_to_90"], r["gens_to_100"]) == (2, 3)


def test_never_recovered_is_none():
    r, = recovery([100, 100, 5, 6, 7, 8], [2])
    assert r["gens_to_50"] is None and r["gens_to_100"] is None
    assert r["valid"] and r["area"] == pytest.approx(0.065)


def test_horizon_truncates_the_segment():
    best = [100, 0, 10, 20, 100]
    assert recovery(best, [1])[0]["gens_to_100"] == 3
    r, = recovery(best, [1], horizon=3)
    assert r["gens_to_100"] is None and r["area"] == pytest.approx(0.1)


def test_non_positive_pre_best_is_flagged_not_counted_as_failure():
    r, = recovery([-50, -80, -60, -40], [2])
    assert r["pre_best"] == -50.0 and r["drop"] == 10.0 and r["min_after"] == -60.0
    assert r["gens_to_50"] is None and r["area"] is None and r["valid"] is False
    # with a floor below (e.g. a random policy's score) the fractions are defined again
    r, = recovery([-50, -80, -60, -40], [2], floor=-150.0)  # target 90 %: -60
    assert r["valid"] and r["gens_to_90"] == 0 and r["gens_to_100"] == 1


def test_short_and_empty_curves_do_not_crash():
    empty, = recovery([], [5])
    assert empty["pre_best"] is None and empty["min_after"] is None and not empty["valid"]
    at_zero, = recovery([3, 4], [0])  # nothing before the toggle
    assert at_zero["pre_best"] is None and at_zero["drop"] is None and at_zero["min_after"] == 3.0
    past_end, = recovery([3, 4], [7])  # toggle after the run ended
    assert past_end["pre_best"] == 4.0 and past_end["drop"] is None and not past_end["valid"]
    assert recovery([1.0, 2.0], []) == []


def test_mean_curve_uses_the_same_definition():
    mean = np.array([20.0, 40.0, 10.0, 25.0, 40.0])
    assert recovery_mean(mean, [2]) == recovery(mean, [2])
    assert recovery_mean(mean, [2])[0]["gens_to_50"] == 1


def test_bad_input_raises():
    with pytest.raises(ValueError, match="strictly increasing"):
        recovery([1, 2, 3], [2, 2])
    with pytest.raises(ValueError, match="non-negative"):
        recovery([1, 2, 3], [-1])
    with pytest.raises(ValueError, match="NaN: 1 of 3"):
        recovery([1, float("nan"), 3], [1])
    with pytest.raises(ValueError, match="1-D"):
        recovery([[1, 2]], [1])
    with pytest.raises(ValueError, match="horizon"):
        recovery([1, 2, 3], [1], horizon=0)
    assert recovery([5, 0, 5], [1], horizon=1)[0]["gens_to_100"] is None      # one generation: still 0
    assert recovery([5, 0, 5], [1], horizon=2)[0]["gens_to_100"] == 1


def test_summarise():
    assert summarise([4, None, 1, 2, 3, None]) == {"median": 2.5, "q25": 1.75, "q75": 3.25,
                                                   "n": 4, "n_none": 2}
    assert summarise([10, None], none_as=100) == {"median": 55.0, "q25": 32.5, "q75": 77.5,
                                                  "n": 2, "n_none": 1}
    assert summarise([None, None]) == {"median": None, "q25": None, "q75": None, "n": 0,
                                       "n_none": 2}
    assert summarise([])["n"] == 0
