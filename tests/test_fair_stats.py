"""Fair statistics over seeds: censoring, an absolute reference for later switches, bootstrap and rank test."""
import numpy as np

from sim.recovery import bootstrap_ci, censor, compare, rank_test, recovery, summarise_censored


def test_non_recovery_is_censored_at_the_window_never_dropped():
    s = summarise_censored([2, 4, None, None, None], window=100)
    assert s["median"] == 100 and s["n_none"] == 3 and s["n"] == 5 and s["median_censored"]
    s = summarise_censored([2, 4, 6, None], window=100)
    assert s["median"] == 5 and not s["median_censored"]        # (4 + 6) / 2: the None is counted as 100
    assert censor([1, None], 50).tolist() == [1.0, 50.0]


def test_absolute_reference_stops_a_never_readapted_run_from_recovering_in_zero():
    # inverted at 3, back at 6; the run never re-adapted in the inverted phase (stays at 10)
    best = [500, 500, 500, 10, 10, 10, 10, 10, 10]
    rel = recovery(best, [3, 6])
    assert rel[1]["gens_to_90"] == 0                             # against its own low pre-switch best: "0"
    ab = recovery(best, [3, 6], reference=500)
    assert ab[1]["gens_to_90"] is None and ab[0]["gens_to_90"] is None


def test_bootstrap_and_rank_test():
    rng = np.random.default_rng(0)
    a, b = rng.normal(10, 1, 30), rng.normal(12, 1, 30)
    lo, hi = bootstrap_ci(a)
    assert lo < np.median(a) < hi and hi - lo < 2
    assert rank_test(a, b) < 1e-4 and rank_test(a, a) > 0.5
    assert rank_test(a, b, alternative="less") < rank_test(a, b, alternative="greater")
    c = compare(a, b)
    assert c["diff_ci95"][1] < 0 and c["p_mannwhitney"] < 1e-4
    assert rank_test([100.0] * 5, [100.0] * 5) == 1.0
