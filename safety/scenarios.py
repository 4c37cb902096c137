"""The validated regression suite (`safety.suite` parses the file): its scenarios, with every
default resolved, the probes and randomised stress drifts they carry, and the checks that a drift
applies to the suite's plant."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np

from safety.constraints import Limits
from safety.gate_config import GateConfig
from sim.drift_spec import TABLE_FIELDS, DriftSpec
from sim.stress import RELATIVE_FIELDS, sample_stress

TAGS = ("target", "archive", "nominal", "stress", "probe")
METRICS = ("mean_reward", "return", "tail_reward", "recovery")
PROBE_KINDS = ("initial_offset", "push", "target_jump")


class SuiteError(ValueError):
    """A suite file (or an edit of one) is malformed; the message names the file and the place."""


@dataclass(frozen=True)
class Probe:
    """A cue check (see `safety.suite`). `joints`: qpos offsets (initial_offset) or qvel jumps (push)."""

    kind: str
    joints: tuple[tuple[str, float], ...] = ()
    at: int = 0
    phase: float = 0.0

    def sign(self, index: int) -> float:
        """+1 on even seed indices, -1 on odd ones."""
        return 1.0 if index % 2 == 0 else -1.0

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind in ("initial_offset", "push"):
            out["joints"] = dict(self.joints)
        if self.kind in ("push", "target_jump"):
            out["at"] = self.at
        if self.kind == "target_jump":
            out["phase"] = self.phase
        return out


@dataclass(frozen=True)
class Stress:
    """Randomised drifts: seed index i gets `base` with every bounded entry drawn uniformly.

    `relative`: the bounds of scale and gain entries are factors of the base drift's value (1.0
    where the base leaves the entry alone), not values. Why: a scenario with `drift: target`
    follows the target, which the orchestrator replaces with the system-identification estimate;
    absolute bounds would keep stressing the robot the suite's author guessed, not the one just
    identified. Other fields (obs_bias, gravity, obs_noise, action_delay) stay absolute."""

    seed: int
    bounds: tuple[tuple[str, Any], ...]  # (field, (lo, hi)) or (field, ((name, (lo, hi)), ...))
    relative: bool = False

    def sample(self, base: DriftSpec, index: int) -> DriftSpec:
        """Seed index `index`'s robot (`sim.stress.sample_stress`: the sampler the sandbox's
        fitness draws from too, with seeds of its own)."""
        rng = np.random.default_rng(np.random.SeedSequence([int(self.seed), int(index)]))
        return sample_stress(base, self.bounds, self.relative, rng)

    def to_dict(self) -> dict:
        out = {"seed": self.seed,
               "bounds": {f: ({n: list(r) for n, r in b} if f in TABLE_FIELDS else list(b))
                          for f, b in self.bounds}}
        if self.relative:
            out["relative"] = True
        return out


@dataclass(frozen=True)
class SuiteScenario:
    """One row of the suite, with every default resolved."""

    name: str
    tag: str
    plant: str
    drift: DriftSpec
    seeds: tuple[int, ...]
    horizon: int
    metric: str
    margin: float | None = None       # target only
    tolerance: float | None = None    # archive / nominal (default from gate), stress / probe optional
    min_metric: float | None = None
    probe: Probe | None = None
    stress: Stress | None = None
    limits: Limits = Limits()
    note: str = ""
    source: dict = field(default_factory=dict)
    follows_target: bool = False      # `drift: target`: always the (first) target's drift

    def drift_for(self, index: int) -> DriftSpec:
        """The DriftSpec of the `index`-th seed (differs per seed only for stress scenarios)."""
        return self.stress.sample(self.drift, index) if self.stress else self.drift

    def to_dict(self) -> dict:
        out = {"name": self.name, "tag": self.tag, "plant": self.plant, "drift": self.drift.as_dict(),
               "drift_hash": self.drift.hash, "seeds": list(self.seeds), "horizon": self.horizon,
               "metric": self.metric, "margin": self.margin, "tolerance": self.tolerance,
               "min_metric": self.min_metric, "limits": self.limits.to_dict(), "note": self.note,
               "source": self.source, "follows_target": self.follows_target}
        if self.probe:
            out["probe"] = self.probe.to_dict()
        if self.stress:
            out["stress"] = self.stress.to_dict()
        return out


@dataclass(frozen=True)
class Suite:
    """A validated suite. `sha256` is of the file's bytes (None when built from a dict)."""

    name: str
    plant: str
    scenarios: tuple[SuiteScenario, ...]
    gate: GateConfig = GateConfig()
    path: str | None = None
    sha256: str | None = None

    @property
    def targets(self) -> tuple[SuiteScenario, ...]:
        return tuple(s for s in self.scenarios if s.tag == "target")

    def scenario(self, name: str) -> SuiteScenario:
        for s in self.scenarios:
            if s.name == name:
                return s
        raise KeyError(name)

    def with_target(self, drift: DriftSpec | Mapping | str | None) -> "Suite":
        """The same suite with every target scenario's drift replaced (e.g. by the latest system
        identification estimate). The result has no file hash: it is no longer the file's suite."""
        spec = DriftSpec.parse(drift)
        check_drift(self.plant, spec, f"suite {self.name!r}: new target drift")
        scenarios = tuple(replace(s, drift=spec) if s.tag == "target" or s.follows_target else s
                          for s in self.scenarios)
        for s in scenarios:
            check_stress(s, f"suite {self.name!r}: {s.name}")
        return replace(self, sha256=None, scenarios=scenarios)

    def to_dict(self) -> dict:
        return {"name": self.name, "plant": self.plant, "path": self.path, "sha256": self.sha256,
                "gate": self.gate.to_dict(), "scenarios": [s.to_dict() for s in self.scenarios]}


_PLANT_CACHE: dict[str, Any] = {}


def plant_instance(name: str):
    """A per-process plant instance for validation and probes (callers clear any drift they set)."""
    from sim.plants import make_plant
    if name not in _PLANT_CACHE:
        _PLANT_CACHE[name] = make_plant(name)
    return _PLANT_CACHE[name]


def check_drift(plant_name: str, spec: DriftSpec, where: str) -> None:
    """Names in a DriftSpec are only checked against a model when applied: apply it once now."""
    plant = plant_instance(plant_name)
    try:
        plant.apply_drift(spec)
    except ValueError as e:
        raise SuiteError(f"{where}: {e}") from None
    finally:
        plant.clear_drift()


def check_stress(s: SuiteScenario, where: str) -> None:
    """Every drift a stress scenario will draw must apply to the plant (names, values)."""
    if s.stress is None:
        return
    for k in range(len(s.seeds)):
        try:
            spec = s.stress.sample(s.drift, k)
        except ValueError as e:
            raise SuiteError(f"{where}.stress (seed index {k}): {e}") from None
        check_drift(s.plant, spec, f"{where}.stress (seed index {k})")
