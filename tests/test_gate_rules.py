"""The gate's per-scenario rule (`safety.gate.judge_scenario`) on hand-made paired episodes: which
side of each threshold passes, holds or fails, with no rollout (fast; the exact boundaries are
values that binary floating point represents exactly, so they hold on every machine)."""
from dataclasses import replace
from pathlib import Path

import pytest

from safety import stats
from safety.episodes import Episode
from safety.gate import judge_scenario
from safety.gate_config import GateConfig
from safety.suite import load_suite

ROOT = Path(__file__).resolve().parents[1]
SUITE = load_suite(ROOT / "launch" / "regression_suite.yaml")
TARGET = next(s for s in SUITE.scenarios if s.tag == "target")
CFG = GateConfig(min_seeds=5, resamples=200)


def episodes(metrics, violations=()):
    return [Episode(seed=i, drift_hash="", metric=float(m), ret=float(m), steps=10, finite=True, saturation=0.0,
                    jerk=0.0, violations=tuple(violations) if i == 0 else ()) for i, m in enumerate(metrics)]


def kept(tolerance=None, margin=None, min_metric=None, tag="nominal"):
    return replace(TARGET, name=f"{tag}-rule", tag=tag, tolerance=tolerance, margin=margin, min_metric=min_metric)


@pytest.mark.parametrize("cand,status", [(0.75, stats.PASS), (0.5, stats.FAIL), (1.0, stats.PASS)])
def test_non_inferiority_passes_at_exactly_the_tolerance(cand, status):
    """diff = -0.25 on every seed and tolerance 0.25: the candidate reaches the allowed loss."""
    r = judge_scenario(kept(tolerance=0.25), episodes([cand] * 6), episodes([1.0] * 6), CFG)
    assert r.status == status and r.passed == (status == stats.PASS)
    assert r.rule == {"min_seeds": 5, "tolerance": 0.25} and r.n == 6
    assert r.diff_ci == [cand - 1.0, cand - 1.0] and r.diff_mean == cand - 1.0
    if status == stats.FAIL:
        assert "regression beyond tolerance 0.25" in r.reasons[0]


@pytest.mark.parametrize("cand,status", [(1.25, stats.FAIL), (1.5, stats.PASS)])
def test_improvement_must_exceed_the_margin(cand, status):
    r = judge_scenario(kept(margin=0.25, tag="target"), episodes([cand] * 6), episodes([1.0] * 6), CFG)
    assert r.status == status and r.rule["margin"] == 0.25
    assert (r.reasons == []) == (status == stats.PASS)


def test_min_metric_is_reached_at_exactly_the_level():
    assert judge_scenario(kept(min_metric=0.5), episodes([0.5] * 5), episodes([9.0] * 5), CFG).passed
    r = judge_scenario(kept(min_metric=0.5), episodes([0.25] * 5), episodes([9.0] * 5), CFG)
    assert r.status == stats.FAIL and "below the required 0.5" in r.reasons[0]


def test_a_straddling_interval_holds():
    cand = [0.5, 1.5, 0.75, 1.25, 1.0, 0.6, 1.4]                   # mean diff 0 with spread
    r = judge_scenario(kept(tolerance=0.01), episodes(cand), episodes([1.0] * 7), CFG)
    assert r.status == stats.INCONCLUSIVE and "not established" in r.reasons[0]
    assert r.diff_ci[0] < -0.01 < r.diff_ci[1]


def test_too_few_seeds_hold_and_no_rule_passes():
    r = judge_scenario(kept(tolerance=0.25), episodes([2.0] * 4), episodes([1.0] * 4), CFG)
    assert r.status == stats.INCONCLUSIVE and "only 4 paired seed(s)" in r.reasons[0]
    free = judge_scenario(kept(), episodes([0.0] * 3), episodes([1.0] * 3), CFG)     # no rule: nothing to hold
    assert free.status == stats.PASS and free.rule == {"min_seeds": 5}


def test_a_hard_constraint_violation_fails_whatever_the_metric():
    from safety.constraints import Violation
    v = Violation(kind="state_limit", value=2.0, limit=1.5, joint="joint_a", scenario="nominal-rule", seed=0)
    r = judge_scenario(kept(tolerance=0.25), episodes([5.0] * 6, [v]), episodes([1.0] * 6), CFG)
    assert r.status == stats.FAIL and "hard constraint violated on 1/6 seed(s) (state_limit:joint_a)" in r.reasons[-1]
    assert len(r.violations) == 1 and r.incumbent_violations == []
    assert [row["diff"] for row in r.per_seed] == [4.0] * 6 and r.per_seed[0]["seed"] == 0
    assert r.candidate == 5.0 and r.incumbent == 1.0 and r.wilcoxon_p is not None
