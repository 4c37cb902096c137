"""The calibration file: detector thresholds derived from a nominal recording.

Only the data and its JSON form live here, so that the monitor (which reads a calibration) and the
calibration procedure (`controller.drift.calibration`, which runs a monitor to write one) do not
import each other.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

MIN_THRESHOLD = 1.0
FORMAT = "driftgate.drift_calibration/1"


@dataclass
class Calibration:
    thresholds: dict[str, float]                 # detector name -> threshold
    peaks: dict[str, float] = field(default_factory=dict)
    threshold_factor: float = 2.0
    nominal_hours: float = 0.0                   # monitored (post-warm-up) hours it saw
    nominal_fires: dict[str, int] = field(default_factory=dict)   # detector firings while calibrating
    plant: str = ""
    dt: float = 0.0
    note: str = ""
    tail_levels: dict[str, float] = field(default_factory=dict)   # Gumbel levels used
    block_peaks: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, x in self.thresholds.items():
            if not (isinstance(x, (int, float)) and math.isfinite(x) and x > 0):
                raise ValueError(f"calibration: threshold of {name!r} must be a positive number, got {x!r}")

    def to_dict(self) -> dict:
        return {"format": FORMAT, **asdict(self)}

    def save(self, path: str | Path) -> Path:
        """Write the JSON file atomically (`sim.atomicio`)."""
        from sim.atomicio import atomic_write_json   # here: controller.drift itself stays free of sim
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: dict) -> "Calibration":
        from sim.atomicio import dataclass_from_mapping
        if not isinstance(data, dict):
            raise ValueError("calibration: expected a JSON object")
        fmt = data.get("format", FORMAT)
        if fmt != FORMAT:
            raise ValueError(f"calibration: unknown format {fmt!r} (expected {FORMAT!r})")
        if not isinstance(data.get("thresholds"), dict):
            raise ValueError("calibration: missing 'thresholds' object")
        return dataclass_from_mapping(cls, data, what="calibration", ignore=("format",))

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"calibration {path}: not valid JSON ({exc})") from None
        return cls.from_dict(data)


__all__ = ["Calibration", "FORMAT", "MIN_THRESHOLD"]
