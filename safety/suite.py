"""The regression suite: which robots a candidate must be judged on, and how, as one YAML file.

Why a file and not code: the suite is the gate's policy. It is versioned with the robot, reviewed
by people, hashed into every gate report (so a verdict always names the exact rules it applied), and
it grows by itself: after every promotion the regime just adapted to is appended as an `archive`
scenario (`append_archive`), so a later candidate cannot silently forget it.

Format (unknown keys anywhere are errors; see `launch/regression_suite.yaml` for a commented one)::

    version: 1
    name: cartpole-default
    plant: cartpole                 # one suite judges one robot's controller
    defaults: {horizon: 300, seeds: 10, metric: mean_reward}
    gate:                           # the decision rules (GateConfig); all optional
      min_seeds: 5                  # fewer paired seeds -> INCONCLUSIVE (hold)
      margin: 0.02                  # target: CI lower bound of (cand - inc) must exceed this
      tolerance: 0.02               # archive/nominal: CI lower bound must be >= -tolerance
      ci_level: 0.95
      resamples: 2000
      seed: 0
      hurdle: {seeds: 3, horizon: 100, margin: 0.1}
      static: {max_abs_weight: 1000, max_params: 1000000}
    constraints: {max_saturation: 0.5, max_jerk: 1.0, state: {slider: [-1.8, 1.8]}}
    scenarios:
      - {name: target, tag: target, variant: [payload], margin: 0.05}  # sim.drift_spec.VARIANTS
      - {name: nominal, tag: nominal, drift: {}, seeds: [0, 1, 2, 3, 4, 5, 6, 7]}
      - {name: archive-76167fe9eb, tag: archive, drift: {actuator_gain: {slide: -0.8}}}
      - name: stress
        tag: stress
        drift: target                  # the target's DriftSpec (also after Suite.with_target);
                                       # the sampled entries below replace its entries
        stress: {seed: 7, bounds: {mass_scale: {pole_1: [2.0, 4.0]}}}
        min_metric: 0.6
      - name: cart-offset
        tag: probe
        drift: target
        probe: {kind: initial_offset, joints: {slider: 0.5}}
        metric: recovery
        min_metric: 0.5

`seeds` is a count n (seeds 0..n-1) or a list; both policies run every seed. `drift` is a DriftSpec
object, `variant` a list of named variants, and `drift: target` tracks the first target scenario.
The hard constraints (`safety.constraints`) apply to every candidate rollout of every scenario.

Tags and what the gate asks of each (thresholds are in the scenario's metric units):

* ``target``   the current drift estimate. PASS needs CI(cand - inc) > ``margin`` on every target.
* ``archive``  a regime adapted to before; ``nominal`` the robot as built. Non-inferiority:
               CI(cand - inc) >= -``tolerance``.
* ``stress``   one DriftSpec per seed, drawn uniformly inside ``bounds`` (seeded: seed index i draws
               from SeedSequence([stress.seed, i]), so both policies meet the same robots).
* ``probe``    checks the policy reads the right cues, not just the average return:
    - ``initial_offset``: joints start displaced by the given amounts (sign alternating with the
      seed index, so drifting one way by luck cannot pass). Metric ``recovery`` = 1 - (mean |q| of
      those joints over the last quarter) / |offset|: 1 means it went home to q = 0, which is
      meaningful for joints whose home is 0 (the cart's rail centre); use ``tail_reward`` otherwise.
    - ``push``: at tick ``at`` the joints' velocities jump by the given amounts (alternating sign);
      metric ``tail_reward`` (mean reward from the push on): did it catch the pole / stay up?
    - ``target_jump`` (reacher): at tick ``at`` the target's phase on its circle jumps by ``phase``
      rad; ``tail_reward`` says whether the arm followed the ``to_target`` cue.
  Any tag may set ``min_metric`` (CI of the candidate's mean must reach it) and stress/probe may set
  ``tolerance``; without either a stress/probe scenario only enforces the hard constraints.

Metrics: ``mean_reward`` (return / horizon, so an episode cut short by a blow-up scores 0 for the
missing ticks; dm_control rewards are in [0, 1], so thresholds do not depend on the horizon),
``return``, ``tail_reward`` (mean reward from a probe's ``at`` tick, else over the last quarter) and
``recovery`` (initial_offset probes only).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import math
import os
import re
import stat
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Iterator, Mapping, Optional

import numpy as np
import yaml
from pydantic import Field

from controller.config_model import Int, Strict, ValidationError, describe

from sim.safeio import MAX_CONFIG_BYTES, read_bounded

from safety.constraints import Limits, limits_for
from sim.drift_spec import FIELDS as DRIFT_FIELDS
from sim.drift_spec import SCALE_FIELDS, TABLE_FIELDS, DriftSpec, variant

SUITE_VERSION = 1
TAGS = ("target", "archive", "nominal", "stress", "probe")
METRICS = ("mean_reward", "return", "tail_reward", "recovery")
PROBE_KINDS = ("initial_offset", "push", "target_jump")
DEFAULT_HORIZON = 300
DEFAULT_SEEDS = 10
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")

_TOP_KEYS = {"version", "name", "plant", "defaults", "gate", "constraints", "scenarios"}
_DEFAULT_KEYS = {"horizon", "seeds", "metric"}
_SCENARIO_KEYS = {"name", "tag", "plant", "drift", "variant", "seeds", "horizon", "metric", "margin",
                  "tolerance", "min_metric", "probe", "stress", "constraints", "note", "source"}
_CONSTRAINT_KEYS = {"max_saturation", "max_jerk", "state"}
_STRESS_KEYS = {"seed", "bounds"}
_PROBE_KEYS = {"initial_offset": {"kind", "joints"}, "push": {"kind", "joints", "at"},
               "target_jump": {"kind", "at", "phase"}}


class SuiteError(ValueError):
    """A suite file (or an edit of one) is malformed; the message names the file and the place."""


# ---------------------------------------------------------------------- the file's model
# One pydantic model for the suite file (controller.config_model): the keys, types and ranges of every
# section, worded as "path: must be ..., got ..." (a scenario is named by its index and name). What
# needs the robot's model (joint and body names, drift specs, probes, stress bounds) is checked
# by the parser below once the document has this shape.

_Opt = Optional
_Fin = float                               # strict + allow_inf_nan=False: a finite number


class _HurdleModel(Strict):
    seeds: Annotated[Int, Field(ge=0)] = 3
    horizon: Annotated[Int, Field(ge=1)] = 100
    margin: Annotated[float, Field(ge=0)] = 0.1


class _StaticModel(Strict):
    max_abs_weight: Annotated[float, Field(gt=0)] = 1000.0
    max_params: Annotated[Int, Field(ge=1)] = 1_000_000


class _GateSectionModel(Strict):
    min_seeds: Annotated[Int, Field(ge=2)] = 5
    margin: Annotated[float, Field(ge=0)] = 0.02
    tolerance: Annotated[float, Field(ge=0)] = 0.02
    ci_level: Annotated[float, Field(ge=0.5, le=0.999)] = 0.95
    resamples: Annotated[Int, Field(ge=100)] = 2000
    seed: Annotated[Int, Field(ge=0)] = 0
    hurdle: _HurdleModel = _HurdleModel()
    static: _StaticModel = _StaticModel()


class _ConstraintsModel(Strict):
    max_saturation: _Opt[Annotated[float, Field(ge=0, le=1)]] = None
    max_jerk: _Opt[Annotated[float, Field(gt=0)]] = None
    state: _Opt[dict[str, Any]] = None          # joint -> [low, high]: joint names need the plant


class _DefaultsModel(Strict):
    horizon: _Opt[Annotated[Int, Field(ge=1)]] = None
    seeds: Any = None                           # a count or a list (checked with the scenario)
    metric: _Opt[str] = None


class _ScenarioModel(Strict):
    name: Any
    tag: Any
    plant: _Opt[str] = None
    drift: Any = None
    variant: Any = None
    seeds: Any = None
    horizon: _Opt[Annotated[Int, Field(ge=1)]] = None
    metric: _Opt[str] = None
    margin: _Opt[Annotated[float, Field(ge=0)]] = None
    tolerance: _Opt[Annotated[float, Field(ge=0)]] = None
    min_metric: _Opt[_Fin] = None
    probe: Any = None
    stress: Any = None
    constraints: _Opt[_ConstraintsModel] = None
    note: _Opt[str] = None
    source: _Opt[dict] = None


class SuiteModel(Strict):
    """The regression suite file (see the module docstring)."""

    version: Int = SUITE_VERSION
    name: Any = None
    plant: str
    defaults: _Opt[_DefaultsModel] = None
    gate: _Opt[_GateSectionModel] = None
    constraints: _Opt[_ConstraintsModel] = None
    scenarios: list[_ScenarioModel]

    def gate_config(self) -> "GateConfig":
        g = self.gate or _GateSectionModel()
        return GateConfig(min_seeds=g.min_seeds, margin=g.margin, tolerance=g.tolerance, ci_level=g.ci_level,
                          resamples=g.resamples, seed=g.seed, hurdle=HurdleConfig(**g.hurdle.model_dump()),
                          max_abs_weight=g.static.max_abs_weight, max_params=g.static.max_params)


# ---------------------------------------------------------------------- contracts

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
    """Decision rules, read from the suite's `gate:` section (see the module docstring).

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


@dataclass(frozen=True)
class Probe:
    """A cue check (see module docstring). `joints`: qpos offsets (initial_offset) or qvel jumps (push)."""

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
    """Randomised drifts: seed index i gets `base` with every bounded entry drawn uniformly."""

    seed: int
    bounds: tuple[tuple[str, Any], ...]  # (field, (lo, hi)) or (field, ((name, (lo, hi)), ...))

    def sample(self, base: DriftSpec, index: int) -> DriftSpec:
        rng = np.random.default_rng(np.random.SeedSequence([int(self.seed), int(index)]))
        d = base.as_dict()
        for fld, rng_spec in self.bounds:
            if fld in TABLE_FIELDS:
                table = dict(d.get(fld, {}))
                for name, (lo, hi) in rng_spec:
                    table[name] = float(rng.uniform(lo, hi))
                d[fld] = table
            elif fld == "action_delay":
                d[fld] = int(rng.integers(int(rng_spec[0]), int(rng_spec[1]) + 1))
            else:
                d[fld] = float(rng.uniform(*rng_spec))
        return DriftSpec.parse(d)

    def to_dict(self) -> dict:
        return {"seed": self.seed,
                "bounds": {f: ({n: list(r) for n, r in b} if f in TABLE_FIELDS else list(b))
                           for f, b in self.bounds}}


@dataclass(frozen=True)
class Scenario:
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
    scenarios: tuple[Scenario, ...]
    gate: GateConfig = GateConfig()
    path: str | None = None
    sha256: str | None = None

    @property
    def targets(self) -> tuple[Scenario, ...]:
        return tuple(s for s in self.scenarios if s.tag == "target")

    def scenario(self, name: str) -> Scenario:
        for s in self.scenarios:
            if s.name == name:
                return s
        raise KeyError(name)

    def with_target(self, drift: DriftSpec | Mapping | str | None) -> "Suite":
        """The same suite with every target scenario's drift replaced (e.g. by the latest system
        identification estimate). The result has no file hash: it is no longer the file's suite."""
        spec = DriftSpec.parse(drift)
        _check_drift(self.plant, spec, f"suite {self.name!r}: new target drift")
        scenarios = tuple(replace(s, drift=spec) if s.tag == "target" or s.follows_target else s
                          for s in self.scenarios)
        for s in scenarios:
            _check_stress(s, f"suite {self.name!r}: {s.name}")
        return replace(self, sha256=None, scenarios=scenarios)

    def to_dict(self) -> dict:
        return {"name": self.name, "plant": self.plant, "path": self.path, "sha256": self.sha256,
                "gate": self.gate.to_dict(), "scenarios": [s.to_dict() for s in self.scenarios]}


# ---------------------------------------------------------------------- validation helpers

class _Ctx:
    """Where we are in the document, for error messages."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, msg: str) -> SuiteError:
        return SuiteError(f"{self.source}: {where}: {msg}")


def _keys(ctx: _Ctx, where: str, obj: Any, allowed: set[str], required: tuple[str, ...] = ()) -> dict:
    if not isinstance(obj, Mapping):
        raise ctx.fail(where, f"expected a mapping, got {type(obj).__name__} {obj!r}")
    unknown = sorted(str(k) for k in obj if k not in allowed)
    if unknown:
        raise ctx.fail(where, f"unknown key(s) {unknown}; known keys: {sorted(allowed)}")
    missing = [k for k in required if k not in obj]
    if missing:
        raise ctx.fail(where, f"missing required key(s) {missing}")
    return dict(obj)


def _num(ctx: _Ctx, where: str, x: Any, *, lo: float | None = None, hi: float | None = None,
         lo_open: bool = False) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(float(x)):
        raise ctx.fail(where, f"expected a finite number, got {x!r}")
    x = float(x)
    if lo is not None and (x < lo or (lo_open and x == lo)):
        raise ctx.fail(where, f"must be {'>' if lo_open else '>='} {lo}, got {x!r}")
    if hi is not None and x > hi:
        raise ctx.fail(where, f"must be <= {hi}, got {x!r}")
    return x


def _int(ctx: _Ctx, where: str, x: Any, *, lo: int | None = None) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise ctx.fail(where, f"expected an integer, got {x!r}")
    if lo is not None and x < lo:
        raise ctx.fail(where, f"must be >= {lo}, got {x!r}")
    return int(x)


def _seeds(ctx: _Ctx, where: str, x: Any) -> tuple[int, ...]:
    if isinstance(x, int) and not isinstance(x, bool):
        if x < 1:
            raise ctx.fail(where, f"a seed count must be >= 1, got {x}")
        return tuple(range(x))
    if not isinstance(x, list) or not x:
        raise ctx.fail(where, f"expected a seed count or a non-empty list of seeds, got {x!r}")
    seeds = tuple(_int(ctx, f"{where}[{i}]", s, lo=0) for i, s in enumerate(x))
    if len(set(seeds)) != len(seeds):
        raise ctx.fail(where, f"seeds must be distinct, got {list(seeds)}")
    return seeds


_PLANT_CACHE: dict[str, Any] = {}


def plant_instance(name: str):
    """A per-process plant instance for validation and probes (callers clear any drift they set)."""
    from sim.plants import make_plant
    if name not in _PLANT_CACHE:
        _PLANT_CACHE[name] = make_plant(name)
    return _PLANT_CACHE[name]


def _check_drift(plant_name: str, spec: DriftSpec, where: str) -> None:
    """Names in a DriftSpec are only checked against a model when applied: apply it once now."""
    plant = plant_instance(plant_name)
    try:
        plant.apply_drift(spec)
    except ValueError as e:
        raise SuiteError(f"{where}: {e}") from None
    finally:
        plant.clear_drift()


def _check_stress(s: "Scenario", where: str) -> None:
    """Every drift a stress scenario will draw must apply to the plant (names, values)."""
    if s.stress is None:
        return
    for k in range(len(s.seeds)):
        try:
            spec = s.stress.sample(s.drift, k)
        except ValueError as e:
            raise SuiteError(f"{where}.stress (seed index {k}): {e}") from None
        _check_drift(s.plant, spec, f"{where}.stress (seed index {k})")


def _drift(ctx: _Ctx, where: str, raw: dict, plant: str) -> DriftSpec | None:
    """The scenario's DriftSpec; None for `drift: target` (resolved by the caller)."""
    if "drift" in raw and "variant" in raw:
        raise ctx.fail(where, "give either 'drift' or 'variant', not both")
    if raw.get("drift") == "target":
        return None
    try:
        if "variant" in raw:
            names = raw["variant"]
            names = [names] if isinstance(names, str) else names
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ValueError(f"variant: expected a name or a list of names, got {raw['variant']!r}")
            spec = variant(plant, *names)
        else:
            spec = DriftSpec.parse(raw.get("drift") or {})
    except ValueError as e:
        raise ctx.fail(where, str(e)) from None
    _check_drift(plant, spec, f"{ctx.source}: {where}")
    return spec


def _stress(ctx: _Ctx, where: str, raw: Any) -> Stress:
    d = _keys(ctx, where, raw, _STRESS_KEYS, required=("seed", "bounds"))
    seed = _int(ctx, f"{where}.seed", d["seed"], lo=0)
    bounds_raw = _keys(ctx, f"{where}.bounds", d["bounds"], set(DRIFT_FIELDS))
    if not bounds_raw:
        raise ctx.fail(f"{where}.bounds", "needs at least one bounded field")

    def interval(w: str, r: Any, fld: str) -> tuple[float, float]:
        if not isinstance(r, list) or len(r) != 2:
            raise ctx.fail(w, f"expected [low, high], got {r!r}")
        lo, hi = _num(ctx, w, r[0]), _num(ctx, w, r[1])
        if lo > hi:
            raise ctx.fail(w, f"low {lo} > high {hi}")
        if fld in SCALE_FIELDS + ("gravity",) and lo <= 0:
            raise ctx.fail(w, f"{fld} factors must be > 0, got low {lo}")
        if fld == "actuator_gain" and lo <= 0 <= hi:
            raise ctx.fail(w, "an actuator gain range must not contain 0 (a dead motor is not a drift)")
        if fld == "obs_noise" and lo < 0:
            raise ctx.fail(w, f"noise std must be >= 0, got low {lo}")
        if fld == "action_delay" and (lo != int(lo) or hi != int(hi) or lo < 0):
            raise ctx.fail(w, f"delays are whole ticks >= 0, got {r!r}")
        return lo, hi

    bounds = []
    for fld in sorted(bounds_raw):
        w = f"{where}.bounds.{fld}"
        if fld in TABLE_FIELDS:
            table = bounds_raw[fld]
            if not isinstance(table, Mapping) or not table:
                raise ctx.fail(w, f"expected a non-empty mapping of name -> [low, high], got {table!r}")
            bounds.append((fld, tuple((str(n), interval(f"{w}.{n}", table[n], fld)) for n in sorted(table))))
        else:
            bounds.append((fld, interval(w, bounds_raw[fld], fld)))
    return Stress(seed=seed, bounds=tuple(bounds))


def _probe(ctx: _Ctx, where: str, raw: Any, plant: str, horizon: int) -> Probe:
    if not isinstance(raw, Mapping) or raw.get("kind") not in PROBE_KINDS:
        got = raw.get("kind") if isinstance(raw, Mapping) else raw
        raise ctx.fail(where, f"probe needs kind: one of {list(PROBE_KINDS)}, got {got!r}")
    kind = raw["kind"]
    d = _keys(ctx, where, raw, _PROBE_KEYS[kind], required=tuple(sorted(_PROBE_KEYS[kind])))
    p = plant_instance(plant)
    joints: tuple[tuple[str, float], ...] = ()
    if "joints" in d:
        table = _keys(ctx, f"{where}.joints", d["joints"], set(p.joint_names))
        if not table:
            raise ctx.fail(f"{where}.joints", f"name at least one joint of {p.joint_names}")
        joints = tuple((j, _num(ctx, f"{where}.joints.{j}", v)) for j, v in sorted(table.items()))
        if any(v == 0 for _, v in joints):
            raise ctx.fail(f"{where}.joints", "offsets must be non-zero")
    at = _int(ctx, f"{where}.at", d["at"], lo=1) if "at" in d else 0
    if at >= horizon:
        raise ctx.fail(f"{where}.at", f"tick {at} is not inside the horizon ({horizon})")
    phase = _num(ctx, f"{where}.phase", d["phase"]) if "phase" in d else 0.0
    if kind == "target_jump" and not hasattr(p, "target_phase"):
        raise ctx.fail(where, f"target_jump needs a plant with a moving target (reacher), not {plant}")
    return Probe(kind=kind, joints=joints, at=at, phase=phase)


def _constraints(ctx: _Ctx, where: str, raw: Any, plant: str) -> dict:
    """Validated overrides for `limits_for`."""
    if raw is None:
        return {}
    d = _keys(ctx, where, raw, _CONSTRAINT_KEYS)
    out: dict[str, Any] = {}
    if "max_saturation" in d:
        out["max_saturation"] = _num(ctx, f"{where}.max_saturation", d["max_saturation"], lo=0.0, hi=1.0)
    if "max_jerk" in d:
        out["max_jerk"] = _num(ctx, f"{where}.max_jerk", d["max_jerk"], lo=0.0, lo_open=True)
    if "state" in d:
        joints = plant_instance(plant).joint_names
        table = _keys(ctx, f"{where}.state", d["state"], set(joints))
        state = {}
        for j, b in table.items():
            w = f"{where}.state.{j}"
            if b is None:
                state[j] = None
                continue
            if not isinstance(b, list) or len(b) != 2:
                raise ctx.fail(w, f"expected [low, high] (null for an open side) or null, got {b!r}")
            lo = None if b[0] is None else _num(ctx, w, b[0])
            hi = None if b[1] is None else _num(ctx, w, b[1])
            if lo is not None and hi is not None and lo >= hi:
                raise ctx.fail(w, f"low {lo} must be < high {hi}")
            state[j] = [lo, hi]
        out["state"] = state
    return out


def _scenario(ctx: _Ctx, i: int, raw: Any, plant: str, defaults: dict, gate: GateConfig,
              suite_constraints: dict) -> Scenario:
    label = f"scenarios[{i}]"
    if isinstance(raw, Mapping) and isinstance(raw.get("name"), str):
        label += f" {raw['name']!r}"
    d = _keys(ctx, label, raw, _SCENARIO_KEYS, required=("name", "tag"))
    name = d["name"]
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ctx.fail(label, f"name must be letters, digits, '_', '.', '-', got {name!r}")
    tag = d["tag"]
    if tag not in TAGS:
        raise ctx.fail(label, f"unknown tag {tag!r}; one of {list(TAGS)}")
    if d.get("plant", plant) != plant:
        raise ctx.fail(label, f"plant {d['plant']!r} differs from the suite's {plant!r}: one suite "
                              "judges one robot's controller")
    horizon = _int(ctx, f"{label}.horizon", d.get("horizon", defaults.get("horizon", DEFAULT_HORIZON)), lo=1)
    seeds = _seeds(ctx, f"{label}.seeds", d.get("seeds", defaults.get("seeds", DEFAULT_SEEDS)))
    drift = _drift(ctx, label, d, plant)
    follows = drift is None
    if follows and tag == "target":
        raise ctx.fail(label, "a target scenario cannot take 'drift: target'; give its DriftSpec")
    probe = stress = None
    if "probe" in d:
        if tag != "probe":
            raise ctx.fail(label, f"'probe' belongs to probe scenarios, this one is tagged {tag!r}")
        probe = _probe(ctx, f"{label}.probe", d["probe"], plant, horizon)
    elif tag == "probe":
        raise ctx.fail(label, "a probe scenario needs a 'probe' (kind: one of "
                              f"{list(PROBE_KINDS)})")
    if "stress" in d:
        if tag != "stress":
            raise ctx.fail(label, f"'stress' belongs to stress scenarios, this one is tagged {tag!r}")
        stress = _stress(ctx, f"{label}.stress", d["stress"])
    elif tag == "stress":
        raise ctx.fail(label, "a stress scenario needs 'stress: {seed, bounds}'")
    default_metric = defaults.get("metric", "mean_reward")
    if probe is not None and "metric" not in d:
        default_metric = "recovery" if probe.kind == "initial_offset" else "tail_reward"
    metric = d.get("metric", default_metric)
    if metric not in METRICS:
        raise ctx.fail(f"{label}.metric", f"unknown metric {metric!r}; one of {list(METRICS)}")
    if metric == "recovery" and (probe is None or probe.kind != "initial_offset"):
        raise ctx.fail(f"{label}.metric", "'recovery' is defined for initial_offset probes only")
    if "margin" in d and tag != "target":
        raise ctx.fail(label, f"'margin' applies to target scenarios only (this one is {tag!r}); "
                              "use 'tolerance' or 'min_metric'")
    if "tolerance" in d and tag == "target":
        raise ctx.fail(label, "a target scenario takes 'margin' (required improvement), not 'tolerance'")
    margin = _num(ctx, f"{label}.margin", d["margin"], lo=0.0) if "margin" in d else \
        (gate.margin if tag == "target" else None)
    tolerance = _num(ctx, f"{label}.tolerance", d["tolerance"], lo=0.0) if "tolerance" in d else \
        (gate.tolerance if tag in ("archive", "nominal") else None)
    min_metric = _num(ctx, f"{label}.min_metric", d["min_metric"]) if "min_metric" in d else None
    own = _constraints(ctx, f"{label}.constraints", d.get("constraints"), plant)
    overrides = {**suite_constraints, **own}
    if "state" in suite_constraints and "state" in own:
        overrides["state"] = {**suite_constraints["state"], **own["state"]}
    note = d.get("note", "")
    if not isinstance(note, str):
        raise ctx.fail(f"{label}.note", f"expected text, got {note!r}")
    source = d.get("source", {})
    if not isinstance(source, Mapping):
        raise ctx.fail(f"{label}.source", f"expected a mapping, got {source!r}")
    return Scenario(name=name, tag=tag, plant=plant, drift=drift or DriftSpec(), seeds=seeds,
                    horizon=horizon, metric=metric, margin=margin, tolerance=tolerance,
                    min_metric=min_metric, probe=probe, stress=stress,
                    limits=limits_for(plant, overrides), note=note, source=dict(source),
                    follows_target=follows)


def parse_suite(doc: Any, *, source: str = "<suite>", path: str | None = None,
                sha256: str | None = None) -> Suite:
    """Validate a parsed YAML/JSON document and resolve every default. Raises SuiteError."""
    from sim.plants import PLANTS
    ctx = _Ctx(source)
    if isinstance(doc, Mapping) and isinstance(doc.get("scenarios"), list) and not doc["scenarios"]:
        raise ctx.fail("scenarios", "expected a non-empty list of scenarios")
    try:
        model = SuiteModel.model_validate(doc)
    except ValidationError as e:
        raise SuiteError(f"{source}: {describe(e, SuiteModel, doc)}") from None
    d = _keys(ctx, "top level", doc, _TOP_KEYS, required=("plant", "scenarios"))
    if d.get("version", SUITE_VERSION) != SUITE_VERSION:
        raise ctx.fail("version", f"unsupported suite version {d['version']!r} (this code reads {SUITE_VERSION})")
    plant = d["plant"]
    if plant not in PLANTS and not (str(plant).endswith((".yaml", ".yml")) and Path(plant).is_file()):
        raise ctx.fail("plant", f"unknown plant {plant!r}; known plants: {sorted(PLANTS)} or a robot profile file")
    name = d.get("name", Path(source).stem if source != "<suite>" else "suite")
    if not isinstance(name, str) or not name:
        raise ctx.fail("name", f"expected a non-empty string, got {name!r}")
    defaults = _keys(ctx, "defaults", d.get("defaults") or {}, _DEFAULT_KEYS)
    gate = model.gate_config()
    suite_constraints = _constraints(ctx, "constraints", d.get("constraints"), plant)
    raw_scenarios = d["scenarios"]
    if not isinstance(raw_scenarios, list) or not raw_scenarios:
        raise ctx.fail("scenarios", "expected a non-empty list of scenarios")
    scenarios = tuple(_scenario(ctx, i, s, plant, defaults, gate, suite_constraints)
                      for i, s in enumerate(raw_scenarios))
    names = [s.name for s in scenarios]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ctx.fail("scenarios", f"duplicate scenario name(s) {dup}")
    targets = [s for s in scenarios if s.tag == "target"]
    if not targets:
        raise ctx.fail("scenarios", "no scenario is tagged 'target': the gate needs the drift it is "
                                    "asked to improve on")
    scenarios = tuple(replace(s, drift=targets[0].drift) if s.follows_target else s for s in scenarios)
    for i, s in enumerate(scenarios):
        _check_stress(s, f"{source}: scenarios[{i}] {s.name!r}")
    return Suite(name=name, plant=plant, scenarios=scenarios, gate=gate, path=path, sha256=sha256)


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses duplicate keys (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _parse_text(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        raise SuiteError(f"{source}: not valid YAML: {e}") from None


def load_suite(path: str | os.PathLike) -> Suite:
    """Read, parse and validate a suite file. Raises SuiteError (never a bare YAML/OS error)."""
    path = Path(path)
    try:
        data = read_bounded(path, MAX_CONFIG_BYTES, what="suite file")
    except OSError as e:
        raise SuiteError(f"cannot read suite file {path}: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SuiteError(f"{path}: not UTF-8 text: {e}") from None
    return parse_suite(_parse_text(text, str(path)), source=str(path), path=str(path),
                       sha256=hashlib.sha256(data).hexdigest())


# ---------------------------------------------------------------------- archive

@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise read-modify-write of one suite file across processes (a sidecar lock file:
    locking the suite itself would not survive the atomic rename)."""
    lock = path.parent / f".{path.name}.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _replace_file(path: Path, data: bytes) -> None:
    """Atomic replace that keeps the file's permissions (a suite is a shared, reviewed file;
    `sim.atomicio` would leave mkstemp's 0600): temp file, fchmod, fsync, rename, fsync dir."""
    mode = stat.S_IMODE(path.stat().st_mode)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _append_text(text: str, entry: dict) -> str | None:
    """`text` with `entry` appended to its block-style `scenarios:` list, comments kept; None when
    the layout is not that simple (the caller then re-dumps the document)."""
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if re.match(r"scenarios\s*:\s*(#.*)?$", ln)), None)
    if start is None:
        return None
    indent = None
    for ln in lines[start + 1:]:
        if not ln.strip() or ln.lstrip().startswith("#"):
            continue
        m = re.match(r"( *)- ", ln)
        if m is None:
            return None
        indent = m.group(1)
        break
    if indent is None:
        return None
    block = yaml.safe_dump([entry], sort_keys=False, default_flow_style=None, allow_unicode=True, width=100)
    block = "".join(indent + ln + "\n" for ln in block.splitlines())
    return text.rstrip("\n") + "\n" + block


def working_suite(base_path: str | os.PathLike, dest_path: str | os.PathLike) -> Path:
    """The suite file the gate reads and promotions append to: `base_path` (a shipped or reviewed
    suite, never written to) copied to `dest_path` (under the registry), with the archive scenarios
    that earlier promotions appended to `dest_path` carried over. Returns `dest_path`.

    Why a copy: the archive grows with every promotion, and a shipped file (installed package data,
    or a tracked file in a checkout) must not change under the user. Run at every start, so edits
    of the base suite reach the gate; an archived regime the base already holds (same DriftSpec) or
    whose name it now uses is not duplicated. Atomic and locked like `append_archive`.
    """
    base, dest = Path(base_path), Path(dest_path)
    if base.resolve() == dest.resolve():
        raise SuiteError(f"{dest}: the working suite must not be the base suite itself")
    base_suite = load_suite(base)
    text = base.read_bytes().decode("utf-8")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _locked(dest):
        carried: list[dict] = []
        if dest.exists():
            old = _parse_text(dest.read_text(encoding="utf-8"), str(dest))
            names = {s.name for s in base_suite.scenarios}
            hashes = {s.drift.hash for s in base_suite.scenarios if s.tag == "archive"}
            for raw in (old or {}).get("scenarios") or []:
                if not (isinstance(raw, Mapping) and raw.get("tag") == "archive") or raw.get("name") in names:
                    continue
                try:
                    h = DriftSpec.parse(raw.get("drift") or {}).hash
                except ValueError:
                    continue
                if h not in hashes:
                    hashes.add(h)
                    names.add(raw.get("name"))
                    carried.append(dict(raw))
        want = _parse_text(text, str(base))
        want = {**want, "scenarios": [*want["scenarios"], *carried]}
        new_text = text
        for entry in carried:
            new_text = _append_text(new_text, entry) if new_text is not None else None
        try:
            ok = new_text is not None and _parse_text(new_text, str(dest)) == want
        except SuiteError:
            ok = False
        if not ok:
            new_text = yaml.safe_dump(want, sort_keys=False, default_flow_style=None, allow_unicode=True,
                                      width=100)
        data = new_text.encode("utf-8")
        parse_suite(_parse_text(new_text, str(dest)), source=str(dest), path=str(dest),
                    sha256=hashlib.sha256(data).hexdigest())
        if not dest.exists() or dest.read_bytes() != data:
            if not dest.exists():
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                os.close(fd)
            _replace_file(dest, data)
    return dest


def append_archive(suite_path: str | os.PathLike, drift: DriftSpec | Mapping | str, *,
                   name: str | None = None, seeds: list[int] | int | None = None,
                   horizon: int | None = None, tolerance: float | None = None,
                   genome_id: str | None = None, note: str = "") -> Scenario:
    """Append an `archive` scenario for `drift` to the suite file, atomically; returns it.

    Called after each promotion with the regime the new champion was promoted for, so every later
    candidate must stay non-inferior there. Seeds and horizon default to the first target's.
    Idempotent: if an archive scenario with the same DriftSpec (by hash) exists, nothing is written
    and that scenario is returned. The new file is validated before it replaces the old one (temp
    file + fsync + rename under a lock), so a reader or a crash sees the old suite or the new one,
    and an invalid drift leaves the file untouched. Comments are kept when `scenarios:` is a
    block list at the end of the file; otherwise the document is re-dumped without them.
    """
    path = Path(suite_path)
    spec = DriftSpec.parse(drift)
    with _locked(path):
        suite = load_suite(path)
        for s in suite.scenarios:
            if s.tag == "archive" and s.drift.hash == spec.hash:
                return s
        _check_drift(suite.plant, spec, f"{path}: archive drift")
        target = suite.targets[0]
        name = name or f"archive-{spec.hash[:10]}"
        if any(s.name == name for s in suite.scenarios):
            raise SuiteError(f"{path}: a scenario named {name!r} already exists")
        entry: dict[str, Any] = {"name": name, "tag": "archive", "drift": spec.as_dict(),
                                 "seeds": list(target.seeds) if seeds is None else seeds,
                                 "horizon": target.horizon if horizon is None else horizon}
        if target.metric != "mean_reward":
            entry["metric"] = target.metric
        if tolerance is not None:
            entry["tolerance"] = tolerance
        if note:
            entry["note"] = note
        entry["source"] = {"drift_hash": spec.hash, "genome_id": genome_id,
                           "added": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        text = path.read_text(encoding="utf-8")
        old_doc = _parse_text(text, str(path))
        want = {**old_doc, "scenarios": [*old_doc["scenarios"], entry]}
        new_text = _append_text(text, entry)
        try:
            appended_ok = new_text is not None and _parse_text(new_text, str(path)) == want
        except SuiteError:
            appended_ok = False
        if not appended_ok:
            new_text = yaml.safe_dump(want, sort_keys=False, default_flow_style=None, allow_unicode=True,
                                      width=100)
        data = new_text.encode("utf-8")
        new_suite = parse_suite(_parse_text(new_text, str(path)), source=str(path), path=str(path),
                                sha256=hashlib.sha256(data).hexdigest())
        _replace_file(path, data)
        return new_suite.scenario(name)
