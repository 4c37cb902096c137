"""The gate's statistics: pure functions, seeded, no state.

Why paired: candidate and incumbent run on identical seeds (same initial state, same observation
noise, same stress drift), so the per-seed difference removes the seed-to-seed spread that would
otherwise swamp a real improvement. We bootstrap the mean of those differences (percentile method,
seeded numpy, 2000 resamples by default) and report the Wilcoxon signed-rank p-value alongside (the
paired counterpart of Mann-Whitney) for a reader who wants a test; the verdict uses the CI only.

Why a three-way decision: "no data or inconclusive means hold". A CI entirely on the good side of a
threshold passes, entirely on the bad side fails, and one that straddles it is inconclusive; the
gate then holds the incumbent rather than guessing.

Example:
>>> bootstrap_ci([1.0, 1.0, 1.0])
(1.0, 1.0)
>>> lo, hi = bootstrap_ci([0.9, 1.1, 1.0, 1.2, 0.8], seed=1)
>>> 0.8 <= lo < 1.0 < hi <= 1.2
True
>>> decide((0.1, 0.3), 0.05, strict=True), decide((0.0, 0.3), 0.05, strict=True)
('pass', 'inconclusive')
>>> decide((-0.5, -0.1), -0.02, strict=False)
'fail'
"""
from __future__ import annotations

import hashlib
import math
import warnings
from typing import Sequence

import numpy as np

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from any printable parts (same parts -> same seed, on every machine)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def bootstrap_ci(values: Sequence[float], *, level: float = 0.95, resamples: int = 2000,
                 seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap CI of the mean of `values`; None when there are no values.

    All values equal -> a zero-width interval at that value (the bootstrap cannot invent spread).
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0 or not np.all(np.isfinite(x)):
        return None
    if not 0.0 < level < 1.0 or resamples < 1:
        raise ValueError(f"bootstrap_ci: need 0 < level < 1 and resamples >= 1, got {level}, {resamples}")
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def paired_bootstrap_ci(candidate: Sequence[float], incumbent: Sequence[float], **kw
                        ) -> tuple[float, float] | None:
    """CI of mean(candidate - incumbent) over paired seeds (`bootstrap_ci` keywords apply)."""
    c = np.asarray(candidate, dtype=np.float64)
    b = np.asarray(incumbent, dtype=np.float64)
    if c.shape != b.shape:
        raise ValueError(f"paired samples must have the same length, got {c.shape} and {b.shape}")
    return bootstrap_ci(c - b, **kw)


def wilcoxon_p(diffs: Sequence[float]) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value of paired differences; None if undefined
    (fewer than two non-zero differences)."""
    d = np.asarray(diffs, dtype=np.float64)
    d = d[np.isfinite(d) & (d != 0)]
    if d.size < 2:
        return None
    from scipy.stats import wilcoxon
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = float(wilcoxon(d).pvalue)
    return p if math.isfinite(p) else None


def decide(ci: tuple[float, float] | None, threshold: float, *, strict: bool) -> str:
    """Compare a CI with a threshold the true value must exceed (`strict`) or reach.

    strict (improvement beyond a margin): lo > thr -> pass, hi <= thr -> fail.
    not strict (non-inferiority, minimum level): lo >= thr -> pass, hi < thr -> fail.
    Otherwise, or without a CI: inconclusive.
    """
    if ci is None:
        return INCONCLUSIVE
    lo, hi = ci
    if strict:
        return PASS if lo > threshold else FAIL if hi <= threshold else INCONCLUSIVE
    return PASS if lo >= threshold else FAIL if hi < threshold else INCONCLUSIVE


def combine(*outcomes: str) -> str:
    """fail beats inconclusive beats pass: any evidence of harm rejects, any gap in evidence holds."""
    if FAIL in outcomes:
        return FAIL
    if INCONCLUSIVE in outcomes:
        return INCONCLUSIVE
    return PASS
