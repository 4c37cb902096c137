"""Adaptation metrics: how fast and how far a method recovers after each switch toggle.

These are the metrics of the SR-GHN authors' port (generations to recover 50 / 90 / 100 % of the
pre-switch fitness, immediate drop, post-switch minimum, post-switch area), as pure functions of
a per-generation fitness curve, so they can be computed from any log after the fact and are
identical for SR-GHN and every baseline.

Conventions (ours, where the port's text does not pin them down):

- `curve[g]` is the value logged at generation g (best or mean fitness of the population,
  re-evaluated with fresh episodes that generation); `toggles` are the generations at which the
  switch flips (e.g. `[100, 200]`: on at 100, off at 200). Generation `toggles[k]` is already
  evaluated under the new condition.
- Each toggle owns a segment: from the toggle up to (not including) the next toggle, or the end
  of the curve; `horizon` optionally truncates it to the first `horizon` generations so runs with
  different schedules stay comparable.
- `pre_best` is the maximum of the curve over the window before the toggle: from the previous
  toggle (or generation 0) up to toggle - 1.
- `gens_to_X` counts generations after the toggle until the curve first reaches X % of
  `pre_best`, the toggle generation itself counting as 0 (so 0 means "never fell below").
  `None` means never reached within the segment (right-censored; see `summarise(none_as=...)`).
- Fractions are measured above a `floor` (default 0): the target is `floor + X·(pre_best - floor)`.
  With the default that is `X·pre_best`. For tasks with negative returns (LunarLander) pass a
  floor such as the score of a random policy. When `pre_best <= floor` there was nothing to lose
  and the fractions mean nothing: the gens_to_X and `area` entries are then `None` and
  `valid` is False, so summaries can exclude the toggle instead of counting it as a failure.
- `drop = pre_best - curve[toggle]` (positive when fitness fell), `min_after` = the minimum over
  the segment, `area` = mean over the segment of `(curve - floor) / (pre_best - floor)` clipped
  to [0, 1]: 1 means no loss at all, 0 means nothing regained during the whole segment.
- A toggle at generation 0 or one with no generation before it gets `pre_best = None`; a toggle
  at or beyond the end of the curve gets an empty segment. Neither raises: every toggle always
  gets one entry, with `None` where the value is undefined.

Examples
--------
>>> best = [10, 80, 100, 20, 40, 60, 95, 100, 30, 100]
>>> first, second = recovery_best(best, [3, 8])
>>> first["pre_best"], first["drop"], first["min_after"]
(100.0, 80.0, 20.0)
>>> first["gens_to_50"], first["gens_to_90"], first["gens_to_100"]
(2, 3, 4)
>>> round(first["area"], 2)
0.63
>>> second["pre_best"], second["gens_to_100"]
(100.0, 1)
>>> summarise([first["gens_to_90"], second["gens_to_90"], None])
{'median': 2.0, 'q25': 1.5, 'q75': 2.5, 'n': 2, 'n_none': 1}

References
----------
Pedersen, Plantec, Nisioti, Barylli, Montero, Korte, Risi (2025). Hypernetworks That Evolve
Themselves. arXiv:2512.16406 (metrics as in the authors' JAX port, Joachm/sr_ghn_jax).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_FRACTIONS = (0.5, 0.9, 1.0)


def _key(fraction: float) -> str:
    return f"gens_to_{round(100 * fraction)}"


def _check_curve(curve) -> np.ndarray:
    c = np.asarray(curve, dtype=np.float64)
    if c.ndim != 1:
        raise ValueError(f"curve must be 1-D (one value per generation), got shape {c.shape}")
    n_nan = int(np.count_nonzero(np.isnan(c)))
    if n_nan:
        raise ValueError(f"curve contains NaN: {n_nan} of {c.size} generations")
    return c


def _check_toggles(toggles) -> list[int]:
    ts = [int(t) for t in toggles]
    if any(t < 0 for t in ts) or any(b <= a for a, b in zip(ts, ts[1:])):
        raise ValueError(f"toggles must be non-negative and strictly increasing, got {ts}")
    return ts


def recovery(curve: Sequence[float], toggles: Sequence[int], *, floor: float = 0.0,
             horizon: int | None = None,
             fractions: Sequence[float] = DEFAULT_FRACTIONS, reference: float | None = None) -> list[dict]:
    """Recovery metrics of any per-generation curve, one dict per toggle (see module docstring).

    Keys: `switch_gen`, `pre_best`, `gens_to_50`, `gens_to_90`, `gens_to_100` (one per entry of
    `fractions`), `drop`, `min_after`, `area`, `valid`.

    `reference` (an absolute target, e.g. the task's maximum return) replaces `pre_best` as the
    100 % level of every toggle. Use it for every switch after the first: there the "before"
    window is the previous drifted phase, and a run that never re-adapted in it would otherwise
    "recover" in 0 generations against its own low pre-switch best.
    """
    c = _check_curve(curve)
    ts = _check_toggles(toggles)
    if horizon is not None and int(horizon) < 1:
        raise ValueError(f"horizon must be >= 1 or None, got {horizon}")
    n = c.size
    out = []
    for k, t in enumerate(ts):
        start = ts[k - 1] if k > 0 else 0
        end = ts[k + 1] if k + 1 < len(ts) else n
        if horizon is not None:
            end = min(end, t + int(horizon))
        pre = c[start:min(t, n)]
        seg = c[min(t, n):min(end, n)]
        pre_best = float(pre.max()) if pre.size else None
        entry: dict = {"switch_gen": t, "pre_best": pre_best}
        level = pre_best if reference is None else float(reference)
        scale = None if level is None else level - floor
        valid = scale is not None and scale > 0 and seg.size > 0
        for x in fractions:
            entry[_key(x)] = None
            if valid:
                # tiny tolerance so that reaching exactly X·pre_best counts despite rounding of X
                hit = np.nonzero(seg >= floor + x * scale - 1e-12 * scale)[0]
                entry[_key(x)] = int(hit[0]) if hit.size else None
        entry["drop"] = pre_best - float(seg[0]) if pre_best is not None and seg.size else None
        entry["min_after"] = float(seg.min()) if seg.size else None
        entry["area"] = float(np.clip((seg - floor) / scale, 0.0, 1.0).mean()) if valid else None
        entry["valid"] = valid
        out.append(entry)
    return out


def recovery_best(best: Sequence[float], toggles: Sequence[int], **kwargs) -> list[dict]:
    """Recovery of the per-generation best fitness (the headline metric)."""
    return recovery(best, toggles, **kwargs)


def recovery_mean(mean: Sequence[float], toggles: Sequence[int], **kwargs) -> list[dict]:
    """Recovery of the per-generation population mean fitness.

    Same keys as `recovery_best`; `pre_best` is then the pre-switch peak of the mean curve. The
    mean recovers more slowly than the best: it needs the whole population to move, which is
    what a self-regulated mutation rate should speed up (or what a high fixed rate hurts).
    """
    return recovery(mean, toggles, **kwargs)


def summarise(values: Sequence[float | None], none_as: float | None = None) -> dict:
    """Median and inter-quartile range over seeds, ignoring `None` (never recovered).

    Returns `{"median", "q25", "q75", "n", "n_none"}`; `n` counts the values summarised. Dropping
    the Nones flatters a method that often fails, so always report `n_none` next to the median,
    or pass `none_as` (e.g. the segment length) to count failures as right-censored values.
    With nothing left to summarise the statistics are `None`.
    """
    n_none = sum(v is None for v in values)
    kept = [float(none_as if v is None else v) for v in values
            if v is not None or none_as is not None]
    if not kept:
        return {"median": None, "q25": None, "q75": None, "n": 0, "n_none": n_none}
    q25, median, q75 = np.percentile(np.asarray(kept, dtype=np.float64), [25, 50, 75])
    return {"median": float(median), "q25": float(q25), "q75": float(q75), "n": len(kept),
            "n_none": n_none}


# ------------------------------------------------------------------ fair statistics over seeds
def censor(values: Sequence[float | None], window: float) -> np.ndarray:
    """None (never recovered) -> `window` (the segment length): a right-censored value, never dropped."""
    return np.array([float(window) if v is None else float(v) for v in values], dtype=np.float64)


def summarise_censored(values: Sequence[float | None], window: float) -> dict:
    """Median [q25, q75] with non-recovery counted as `window` (right-censored), and `n_none`.

    A median that is itself censored (more than half the seeds never recovered) is flagged
    `median_censored`: it only says "at least `window`".
    """
    n_none = sum(v is None for v in values)
    if not len(values):
        return {"median": None, "q25": None, "q75": None, "n": 0, "n_none": 0, "median_censored": False}
    x = censor(values, window)
    q25, median, q75 = np.percentile(x, [25, 50, 75])
    return {"median": float(median), "q25": float(q25), "q75": float(q75), "n": len(values), "n_none": n_none,
            "median_censored": bool(2 * n_none >= len(values))}


def bootstrap_ci(values: Sequence[float], stat=np.median, *, n_boot: int = 2000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of `stat` over seeds (resampling seeds)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    boots = np.array([stat(x[rng.integers(0, x.size, x.size)]) for _ in range(n_boot)])
    lo, hi = np.percentile(boots, [50 * (1 - level), 100 - 50 * (1 - level)])
    return float(lo), float(hi)


def bootstrap_diff_ci(a: Sequence[float], b: Sequence[float], stat=np.median, *, n_boot: int = 2000,
                      level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of stat(a) - stat(b), resampling the seeds of each arm independently."""
    xa, xb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    boots = np.array([stat(xa[rng.integers(0, xa.size, xa.size)]) - stat(xb[rng.integers(0, xb.size, xb.size)])
                      for _ in range(n_boot)])
    lo, hi = np.percentile(boots, [50 * (1 - level), 100 - 50 * (1 - level)])
    return float(lo), float(hi)


def rank_test(a: Sequence[float], b: Sequence[float], alternative: str = "two-sided") -> float:
    """Mann-Whitney U p-value (scipy) of arm a against arm b; ties (censored values) handled by scipy."""
    from scipy.stats import mannwhitneyu
    xa, xb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if xa.size == 0 or xb.size == 0:
        return float("nan")
    if np.all(xa == xa[0]) and np.all(xb == xa[0]):
        return 1.0
    return float(mannwhitneyu(xa, xb, alternative=alternative).pvalue)


def compare(a: Sequence[float], b: Sequence[float], *, seed: int = 0, alternative: str = "two-sided") -> dict:
    """Median of each arm, bootstrap CI of the median difference (a - b) and the rank-test p-value."""
    lo, hi = bootstrap_diff_ci(a, b, seed=seed)
    return {"median_a": float(np.median(a)), "median_b": float(np.median(b)), "diff_ci95": [lo, hi],
            "p_mannwhitney": rank_test(a, b, alternative)}
