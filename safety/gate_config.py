"""The gate's decision rules (`GateConfig`), read from the regression suite's `gate:` section
(`safety.suite`) and applied by `safety.gate`."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class HurdleConfig:
    """The cheap early stop: `seeds` short paired rollouts (`horizon` ticks) on the first target.
    The candidate fails there if it is worse on every seed and by more than `margin` on average,
    or breaks a hard constraint. `seeds: 0` skips the hurdle."""

    seeds: int = 3
    horizon: int = 100
    margin: float = 0.1


@dataclass(frozen=True)
class GateConfig:
    """Decision rules, read from the suite's `gate:` section (see `safety.suite` and `safety.gate`).

    `ci_level` is two-sided; each rule looks at one side of the interval, so a 0.95 interval is a
    one-sided test at 2.5%. `seed` seeds the bootstrap (per scenario), not the rollouts: the
    scenarios' own seeds do that."""

    min_seeds: int = 5
    margin: float = 0.02
    tolerance: float = 0.02
    ci_level: float = 0.95
    resamples: int = 2000
    seed: int = 0
    hurdle: HurdleConfig = HurdleConfig()
    max_abs_weight: float = 1000.0
    max_params: int = 1_000_000

    def to_dict(self) -> dict:
        return asdict(self)
