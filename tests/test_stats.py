"""The gate's statistics (safety/stats.py) on their own: fast, pure, and pinned at the boundaries a
verdict turns on (also the test file benchmarks/mutation.py runs for this module)."""
import math

import numpy as np
import pytest
from scipy.stats import wilcoxon

from safety.stats import (FAIL, INCONCLUSIVE, PASS, bootstrap_ci, combine, decide, paired_bootstrap_ci,
                          stable_seed, wilcoxon_p)


def test_stable_seed_is_a_63_bit_function_of_the_parts():
    assert stable_seed("gate", 3, "cartpole") == stable_seed("gate", 3, "cartpole")
    assert stable_seed("gate", 3) != stable_seed("gate", 4) != stable_seed("gate3")
    assert stable_seed("ab", "c") != stable_seed("a", "bc")                  # parts are separated
    seeds = [stable_seed("s", i) for i in range(200)]
    assert all(isinstance(s, int) and 0 <= s < 2**63 for s in seeds)
    assert max(seeds) >= 2**62 and len(set(seeds)) == 200                  # uses the whole range
    assert stable_seed("x") == 2474749279504906390                          # sha256: the same on every machine


def test_bootstrap_ci_of_the_mean():
    x = np.random.default_rng(5).normal(2.0, 1.0, 400)
    lo, hi = bootstrap_ci(x, seed=1)
    half = 1.96 * x.std(ddof=1) / math.sqrt(x.size)                       # the normal-theory 95 % interval
    assert lo < x.mean() < hi
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.15)
    assert (lo + hi) / 2 == pytest.approx(x.mean(), abs=0.2 * half)
    lo50, hi50 = bootstrap_ci(x, level=0.5, seed=1)
    assert lo < lo50 < hi50 < hi                                            # a lower level is narrower
    assert bootstrap_ci(x, seed=1) == (lo, hi) != bootstrap_ci(x, seed=2)   # seeded
    assert bootstrap_ci(x) == bootstrap_ci(x, seed=0)                       # the default seed is 0
    lo_few, hi_few = bootstrap_ci(x, resamples=50, seed=1)
    assert (lo_few, hi_few) != (lo, hi) and lo_few < x.mean() < hi_few


def test_bootstrap_ci_edges():
    assert bootstrap_ci([]) is None
    assert bootstrap_ci([1.0, math.nan]) is None and bootstrap_ci([1.0, math.inf]) is None
    assert bootstrap_ci([0.25] * 7) == (0.25, 0.25)                         # no spread to invent
    assert bootstrap_ci([0.1] * 7) == (0.1, 0.1)           # exactly the value, not a rounded mean of copies
    assert bootstrap_ci([3.0]) == (3.0, 3.0)
    lo, hi = bootstrap_ci([0.0, 1.0], seed=0)
    assert 0.0 <= lo < hi <= 1.0
    for bad in (dict(level=0.0), dict(level=1.0), dict(level=1.5), dict(resamples=0)):
        with pytest.raises(ValueError, match="bootstrap_ci"):
            bootstrap_ci([1.0, 2.0], **bad)
    assert bootstrap_ci([1.0, 2.0], resamples=1) is not None


def test_paired_ci_is_the_ci_of_the_differences():
    rng = np.random.default_rng(2)
    base = rng.normal(0, 5, 30)                                              # big seed-to-seed spread
    cand = base + 0.3 + rng.normal(0, 0.05, 30)                              # small, consistent gain
    ci = paired_bootstrap_ci(cand, base, seed=4)
    assert ci == bootstrap_ci(cand - base, seed=4)
    assert 0.25 < ci[0] < 0.3 < ci[1] < 0.35
    assert paired_bootstrap_ci(base, cand, seed=4) == pytest.approx((-ci[1], -ci[0]), abs=1e-9)
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap_ci([1.0, 2.0], [1.0])


def test_wilcoxon_p():
    assert wilcoxon_p([]) is None and wilcoxon_p([0.0, 0.0, 1.0]) is None and wilcoxon_p([math.nan, 1.0]) is None
    d = np.array([0.5, 1.2, -0.3, 0.8, 0.9, 1.1, 0.4, -0.1, 0.7, 0.6])
    p = wilcoxon_p(d)
    assert p == pytest.approx(wilcoxon(d).pvalue)
    assert wilcoxon_p(np.concatenate([d, [0.0, 0.0, math.nan, math.inf]])) == p   # zeros, non-finite dropped
    assert wilcoxon_p(np.arange(1.0, 21.0)) < 1e-4                          # all positive: significant
    assert wilcoxon_p([1.0, -1.0, 2.0, -2.0, 3.0, -3.0]) == pytest.approx(1.0)   # symmetric: nothing
    assert 0.0 < wilcoxon_p([1.0, 2.0]) <= 1.0


@pytest.mark.parametrize("ci,thr,strict,expected", [
    ((0.1, 0.3), 0.05, True, PASS),
    ((0.05, 0.3), 0.05, True, INCONCLUSIVE),     # lo == thr is not beyond it
    ((0.0, 0.3), 0.05, True, INCONCLUSIVE),
    ((-0.2, 0.05), 0.05, True, FAIL),            # hi == thr: cannot exceed it
    ((-0.2, 0.06), 0.05, True, INCONCLUSIVE),
    ((-0.3, -0.1), 0.05, True, FAIL),
    ((-0.02, 0.1), -0.02, False, PASS),          # lo == thr reaches it
    ((-0.03, 0.1), -0.02, False, INCONCLUSIVE),
    ((-0.5, -0.02), -0.02, False, INCONCLUSIVE),  # hi == thr: might reach it
    ((-0.5, -0.021), -0.02, False, FAIL),
    ((0.0, 0.0), 0.0, True, FAIL),
    ((0.0, 0.0), 0.0, False, PASS),
    (None, 0.0, True, INCONCLUSIVE),
    (None, 0.0, False, INCONCLUSIVE),
])
def test_decide_at_the_boundaries(ci, thr, strict, expected):
    assert decide(ci, thr, strict=strict) == expected


def test_combine_fail_beats_inconclusive_beats_pass():
    assert combine() == PASS and combine(PASS, PASS) == PASS
    assert combine(PASS, INCONCLUSIVE) == combine(INCONCLUSIVE, PASS) == INCONCLUSIVE
    assert combine(PASS, INCONCLUSIVE, FAIL) == combine(FAIL, PASS) == combine(INCONCLUSIVE, FAIL) == FAIL
