"""Monitor configuration: one YAML file (`launch/drift_monitor.yaml`), validated on load.

The file is a ROS 2 parameter file (``drift_monitor: ros__parameters: {...}``) so the same file
configures the node; a bare mapping of the same keys is accepted too. Unknown keys are an error
(a typo must not silently fall back to a default). Nested sections map to dataclasses below.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

import yaml
from pydantic import Field, model_validator

from safety.config_model import Int, Listy, Strict, Text, ValidationError, describe

NODE_NAME = "drift_monitor"
DEFAULT_CONFIG_NAME = "launch/drift_monitor.yaml"    # share-relative: found in every install (controller.shipped)


def default_config_path() -> Path:
    """The shipped monitor YAML of this install (colcon share, wheel package data or checkout)."""
    from controller.shipped import shipped_file
    return shipped_file(DEFAULT_CONFIG_NAME)


try:
    DEFAULT_CONFIG_PATH = default_config_path()
except FileNotFoundError:   # reported by load_config() when it is needed
    DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[2] / DEFAULT_CONFIG_NAME


@dataclass(frozen=True)
class PageHinkleyConfig:
    enabled: bool = True
    delta: float = 0.5
    alpha: float = 1.0
    min_instances: int = 30
    threshold_factor: float = 2.0     # threshold >= factor x largest statistic on the calibration run
    target_false_alarms_per_h: float = 0.001  # threshold >= Gumbel tail level for this rate ...
    block_s: float = 300.0            # ... fitted to the peaks of blocks of this length
    default_threshold: float = 50.0   # used for a channel the calibration does not cover


@dataclass(frozen=True)
class HddmWConfig:
    enabled: bool = True
    channels: tuple[str, ...] = ("one_step",)
    drift_confidence: float = 0.001
    warning_confidence: float = 0.005
    lambda_val: float = 0.05


@dataclass(frozen=True)
class AdwinConfig:
    enabled: bool = False
    delta: float = 0.002


@dataclass(frozen=True)
class KswinConfig:
    enabled: bool = False
    decimation: int = 10
    alpha: float = 0.005
    window_size: int = 100
    stat_size: int = 30


@dataclass(frozen=True)
class NominalModelConfig:
    """Settings of the nominal-model residual source (read by the wiring code, not the monitor)."""

    horizons_s: tuple[float, ...] = (0.1, 0.25)   # open-loop prediction horizons
    every_s: float = 0.25                          # one open-loop window starts every every_s
    blend: float = 1.0                             # state estimate = pred + blend (meas - pred)
    latency_ticks: int = 0                         # the command may reach the robot this many ticks late


@dataclass(frozen=True)
class MonitorConfig:
    warmup_s: float = 60.0            # residual normalisation is estimated over this period
    min_warmup_samples: int = 40      # per channel (open-loop channels are decimated)
    quantile: float = 0.99            # exceedance level for HDDM_W
    clip: float = 10.0                # |z| clip in the residual statistic
    whiten: str = "diag"              # "diag": per-dimension; "full": warm-up covariance
    vote_k: int = 1                   # alarm when >= vote_k detectors fired ...
    vote_window_s: float = 0.5        # ... within this window (k-of-n voting)
    debounce_s: float = 10.0          # at most one alarm per debounce_s
    cooldown_s: float = 60.0          # after notify_adapted(): no alarms, re-baseline
    gap_factor: float = 2.5           # a tick later than gap_factor x dt starts a new segment
    max_abs: float = 1.0e6            # larger magnitudes are refused as out of range
    clock_reset_ticks: int = 10       # this many backwards ticks in a row = the clock was reset
    window_s: float = 20.0            # telemetry ring buffer carried by a DriftEvent
    tau_s: float = 1.0                # smoothing of the reporting features
    calibration_file: str = ""        # thresholds from `driftgate drift-calibrate` (empty: defaults)
    page_hinkley: PageHinkleyConfig = field(default_factory=PageHinkleyConfig)
    hddm_w: HddmWConfig = field(default_factory=HddmWConfig)
    adwin: AdwinConfig = field(default_factory=AdwinConfig)
    kswin: KswinConfig = field(default_factory=KswinConfig)
    nominal_model: NominalModelConfig = field(default_factory=NominalModelConfig)

    def __post_init__(self) -> None:
        for name in ("warmup_s", "vote_window_s", "debounce_s", "cooldown_s", "window_s", "tau_s"):
            x = getattr(self, name)
            if not (isinstance(x, (int, float)) and math.isfinite(x) and x >= 0):
                raise ValueError(f"drift monitor config: {name} must be a finite number >= 0, got {x!r}")
        if not 0.5 < self.quantile < 1:
            raise ValueError(f"drift monitor config: quantile must be in (0.5, 1), got {self.quantile!r}")
        if self.vote_k < 1:
            raise ValueError(f"drift monitor config: vote_k must be >= 1, got {self.vote_k!r}")
        if self.whiten not in ("diag", "full"):
            raise ValueError(f"drift monitor config: whiten must be 'diag' or 'full', got {self.whiten!r}")
        if not self.gap_factor > 1:
            raise ValueError(f"drift monitor config: gap_factor must be > 1, got {self.gap_factor!r}")
        if not self.clip > 0:
            raise ValueError(f"drift monitor config: clip must be > 0, got {self.clip!r}")
        if not self.page_hinkley.threshold_factor > 0:
            raise ValueError("drift monitor config: page_hinkley.threshold_factor must be > 0")
        nm = self.nominal_model
        if not nm.horizons_s or not all(isinstance(h, (int, float)) and not isinstance(h, bool)
                                         and math.isfinite(h) and h > 0 for h in nm.horizons_s):
            raise ValueError(f"drift monitor config: nominal_model.horizons_s must be positive "
                             f"numbers, got {nm.horizons_s!r}")
        if not (math.isfinite(nm.every_s) and nm.every_s >= max(nm.horizons_s)):
            raise ValueError("drift monitor config: nominal_model.every_s must be >= the longest "
                             "horizon (one open-loop window at a time)")
        if not 0 < nm.blend <= 1:
            raise ValueError(f"drift monitor config: nominal_model.blend must be in (0, 1], "
                             f"got {nm.blend!r}")
        if isinstance(nm.latency_ticks, bool) or not isinstance(nm.latency_ticks, int) \
                or not 0 <= nm.latency_ticks <= 10:
            raise ValueError(f"drift monitor config: nominal_model.latency_ticks must be an integer "
                             f"in 0..10, got {nm.latency_ticks!r}")
        if not all(isinstance(c, str) and c for c in self.hddm_w.channels):
            raise ValueError("drift monitor config: hddm_w.channels must be channel names")

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))

    def replace(self, **changes: Any) -> "MonitorConfig":
        return from_mapping({**self.to_dict(), **changes})


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


# ---------------------------------------------------------------------- the file's model
# One pydantic model per configuration file (safety.config_model): it defines what the YAML may hold
# and words every error as "path.to.field: must be ..., got ...". The frozen dataclasses above stay
# the contract the monitor reads.

Pos = Annotated[float, Field(gt=0)]
NonNeg = Annotated[float, Field(ge=0)]
Prob = Annotated[float, Field(gt=0, lt=1)]


class _PageHinkleyModel(Strict):
    enabled: bool = True
    delta: NonNeg = 0.5
    alpha: Annotated[float, Field(gt=0, le=1)] = 1.0
    min_instances: Annotated[Int, Field(ge=1)] = 30
    threshold_factor: Pos = 2.0
    target_false_alarms_per_h: Pos = 0.001
    block_s: Pos = 300.0
    default_threshold: Pos = 50.0


class _HddmWModel(Strict):
    enabled: bool = True
    channels: Annotated[list[Annotated[str, Field(min_length=1)]], Listy] = ["one_step"]
    drift_confidence: Prob = 0.001
    warning_confidence: Prob = 0.005
    lambda_val: Prob = 0.05


class _AdwinModel(Strict):
    enabled: bool = False
    delta: Prob = 0.002


class _KswinModel(Strict):
    enabled: bool = False
    decimation: Annotated[Int, Field(ge=1)] = 10
    alpha: Prob = 0.005
    window_size: Annotated[Int, Field(ge=1)] = 100
    stat_size: Annotated[Int, Field(ge=1)] = 30


class _NominalModelModel(Strict):
    horizons_s: Annotated[list[Pos], Field(min_length=1), Listy] = [0.1, 0.25]
    every_s: Pos = 0.25
    blend: Annotated[float, Field(gt=0, le=1)] = 1.0
    latency_ticks: Annotated[Int, Field(ge=0, le=10)] = 0

    @model_validator(mode="after")
    def _one_window_at_a_time(self):
        if self.every_s < max(self.horizons_s):
            raise ValueError(f"every_s ({self.every_s}) must be >= the longest horizon ({max(self.horizons_s)}): "
                             "one open-loop window at a time")
        return self


class MonitorModel(Strict):
    """The drift monitor YAML (``drift_monitor: ros__parameters:`` or the bare mapping)."""

    warmup_s: NonNeg = 60.0
    min_warmup_samples: Annotated[Int, Field(ge=1)] = 40
    quantile: Annotated[float, Field(gt=0.5, lt=1)] = 0.99
    clip: Pos = 10.0
    whiten: Literal["diag", "full"] = "diag"
    vote_k: Annotated[Int, Field(ge=1)] = 1
    vote_window_s: NonNeg = 0.5
    debounce_s: NonNeg = 10.0
    cooldown_s: NonNeg = 60.0
    gap_factor: Annotated[float, Field(gt=1)] = 2.5
    max_abs: Pos = 1.0e6
    clock_reset_ticks: Annotated[Int, Field(ge=1)] = 10
    window_s: NonNeg = 20.0
    tau_s: NonNeg = 1.0
    calibration_file: Text = ""
    page_hinkley: _PageHinkleyModel = _PageHinkleyModel()      # one section per detector ...
    hddm_w: _HddmWModel = _HddmWModel()
    adwin: _AdwinModel = _AdwinModel()
    kswin: _KswinModel = _KswinModel()                          # ... (each with its `enabled`)
    nominal_model: _NominalModelModel = _NominalModelModel()    # the residual source's model

    def to_config(self) -> MonitorConfig:
        d = self.model_dump()
        return MonitorConfig(
            **{k: v for k, v in d.items() if not isinstance(v, dict)},
            page_hinkley=PageHinkleyConfig(**d["page_hinkley"]),
            hddm_w=HddmWConfig(**{**d["hddm_w"], "channels": tuple(d["hddm_w"]["channels"])}),
            adwin=AdwinConfig(**d["adwin"]), kswin=KswinConfig(**d["kswin"]),
            nominal_model=NominalModelConfig(**{**d["nominal_model"],
                                                "horizons_s": tuple(d["nominal_model"]["horizons_s"])}))


def from_mapping(data: Mapping[str, Any] | None) -> MonitorConfig:
    """Build a config from a mapping: bare keys or the ROS ``node: ros__parameters:`` layout."""
    data = dict(data or {})
    if NODE_NAME in data and isinstance(data[NODE_NAME], Mapping):
        data = dict(data[NODE_NAME])
    if "ros__parameters" in data:
        data = dict(data["ros__parameters"] or {})
    try:
        return MonitorModel.model_validate(data).to_config()
    except ValidationError as e:
        raise ValueError(f"drift monitor config: {describe(e, MonitorModel, data)}") from None


def load_config(path: str | Path | None = None) -> MonitorConfig:
    """Read a monitor YAML file (the shipped default when `path` is None; a relative path that does
    not exist in the working directory, or ``package://driftgate/...``, names a shipped file)."""
    from controller.shipped import resolve
    from sim.safeio import read_text_bounded   # here: controller.drift itself stays free of sim
    path = resolve(path) if path is not None else default_config_path()
    try:
        data = yaml.safe_load(read_text_bounded(path, what="drift monitor config"))
    except yaml.YAMLError as exc:
        raise ValueError(f"drift monitor config {path}: not valid YAML ({exc})") from None
    cfg = from_mapping(data)
    if cfg.calibration_file and not Path(cfg.calibration_file).is_absolute():
        cfg = cfg.replace(calibration_file=str((path.parent / cfg.calibration_file).resolve()))
    return cfg
