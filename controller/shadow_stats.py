"""Running statistics the tick keeps for the orchestrator: two action streams compared on the same
live states (shadow / canary evidence), and the live performance signal."""
from __future__ import annotations

import math

import numpy as np


class Comparison:
    """Running pairwise statistics of two action streams on the same live states (shadow)."""

    __slots__ = ("n", "sum_div", "sum_sq", "max_div", "sat_a", "sat_b", "errors", "margin_min", "outside",
                 "since")

    def __init__(self, since: float = math.nan) -> None:
        self.n, self.sum_div, self.sum_sq, self.max_div = 0, 0.0, 0.0, 0.0
        self.sat_a = self.sat_b = self.errors = self.outside = 0
        self.margin_min = math.inf
        self.since = since

    def add(self, a: np.ndarray, b: np.ndarray, margin: float, sat_a: bool, sat_b: bool) -> None:
        d = float(np.max(np.abs(a - b)))
        self.n += 1
        self.sum_div += d
        self.sum_sq += d * d
        if d > self.max_div:
            self.max_div = d
        self.sat_a += sat_a
        self.sat_b += sat_b
        if margin < self.margin_min:
            self.margin_min = float(margin)
        self.outside += margin < 0.0

    def to_dict(self) -> dict:
        n = max(self.n, 1)
        return {"n": self.n, "divergence_mean": self.sum_div / n if self.n else None,
                "divergence_rms": math.sqrt(self.sum_sq / n) if self.n else None,
                "divergence_max": self.max_div if self.n else None,
                "saturation_reference": self.sat_a / n if self.n else None,
                "saturation_challenger": self.sat_b / n if self.n else None,
                "errors": self.errors,
                "joint_margin_min": None if math.isinf(self.margin_min) else self.margin_min,
                "outside_bounds": self.outside / n if self.n else None,
                "since": None if math.isnan(self.since) else self.since}


class RewardStats:
    """Running mean of the live performance signal (reward topic)."""

    __slots__ = ("n", "total", "since")

    def __init__(self, since: float = math.nan) -> None:
        self.n, self.total, self.since = 0, 0.0, since

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None
