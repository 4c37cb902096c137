"""In->out latency of the control path, measured inside the node: from the moment DDS received a
joint state (rmw's reception timestamp) to the moment the command for it was handed to DDS.

Why inside the node: a round trip measured by the robot also contains the robot's own executor and
two DDS hops; this is the part driftgate is responsible for. A fixed-bin histogram, so that adding
a sample costs O(1) in the tick and percentiles are available at any time without keeping samples.

Parameters
----------
bin_us
    Bin width in microseconds (the resolution of the percentiles).
max_us
    Samples above this land in the last bin (and still count in `max_us_seen`).

Example
-------
>>> h = LatencyHistogram(bin_us=10.0, max_us=1000.0)
>>> for us in [100.0] * 98 + [900.0, 2000.0]:
...     h.add_us(us)
>>> h.n, round(h.percentile_us(50)), round(h.percentile_us(99)), h.max_us_seen
(100, 110, 910, 2000.0)
"""
from __future__ import annotations

import math

import numpy as np


class LatencyHistogram:
    def __init__(self, bin_us: float = 10.0, max_us: float = 100_000.0) -> None:
        if not 0 < bin_us < max_us:
            raise ValueError(f"need 0 < bin_us < max_us, got {bin_us}, {max_us}")
        self.bin_us = float(bin_us)
        self.counts = np.zeros(int(math.ceil(max_us / bin_us)) + 1, dtype=np.int64)
        self.n = 0
        self.max_us_seen = 0.0
        self.refused = 0                       # negative or non-finite (clock steps between hosts)

    def add_us(self, us: float) -> None:
        if not (us >= 0.0 and math.isfinite(us)):
            self.refused += 1
            return
        self.counts[min(int(us / self.bin_us), self.counts.size - 1)] += 1
        self.n += 1
        if us > self.max_us_seen:
            self.max_us_seen = float(us)

    def percentile_us(self, q: float, _cum: np.ndarray | None = None) -> float | None:
        """Upper edge of the bin holding the q-th percentile (a conservative value); None if empty."""
        if self.n == 0:
            return None
        rank = math.ceil(q / 100.0 * self.n)
        cum = np.cumsum(self.counts) if _cum is None else _cum
        i = int(np.searchsorted(cum, max(rank, 1)))
        return (i + 1) * self.bin_us

    def over_us(self, limit_us: float) -> int:
        """Samples in bins entirely above `limit_us`."""
        return int(self.counts[int(math.ceil(limit_us / self.bin_us)):].sum())

    def to_dict(self, bins: bool = False) -> dict:
        cum = np.cumsum(self.counts)
        p = lambda q: self.percentile_us(q, cum)  # noqa: E731
        out = {"n": self.n, "p50_us": p(50), "p99_us": p(99), "p999_us": p(99.9),
               "max_us": self.max_us_seen if self.n else None, "over_1ms": self.over_us(1000.0),
               "refused": self.refused, "bin_us": self.bin_us}
        if bins:                              # the non-empty bins, to subtract two snapshots
            nz = np.flatnonzero(self.counts)  # (not a Python loop over every bin: this runs between ticks)
            out["bins"] = dict(zip(map(str, nz.tolist()), self.counts[nz].tolist()))
        return out

    @classmethod
    def between(cls, before: dict, after: dict) -> "LatencyHistogram":
        """The samples added between two `to_dict(bins=True)` snapshots (max: the later one's max
        if any sample of that bin range was added, a conservative bound)."""
        h = cls(bin_us=after["bin_us"])
        for i, c in after["bins"].items():
            h.counts[int(i)] += c - before.get("bins", {}).get(i, 0)
        h.n = int(h.counts.sum())
        top = np.nonzero(h.counts)[0]
        h.max_us_seen = float((top[-1] + 1) * h.bin_us) if top.size else 0.0
        return h
