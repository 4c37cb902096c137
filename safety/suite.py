"""The regression suite: which robots a candidate must be judged on, and how, as one YAML file.

Why a file and not code: the suite is the gate's policy. It is versioned with the robot, reviewed
by people, hashed into every gate report (so a verdict always names the exact rules it applied), and
it grows by itself: after every promotion the regime just adapted to is appended as an `archive`
scenario (`safety.suite_archive.append_archive`), so a later candidate cannot silently forget it.

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
               from SeedSequence([stress.seed, i]), so both policies meet the same robots). With
               ``relative: true`` the bounds of scale and gain entries are factors of the base
               drift's value (``[0.8, 1.2]``: within 20 % of the target, also after
               Suite.with_target replaced it with the sysid estimate); other fields stay absolute.
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

import hashlib
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Mapping, Optional

import yaml
from pydantic import Field

from safety.config_model import Int, Strict, ValidationError, describe

from sim.safeio import MAX_CONFIG_BYTES, read_bounded

from safety.constraints import limits_for
from safety.gate_config import GateConfig, HurdleConfig
from safety.scenarios import METRICS, PROBE_KINDS, TAGS, Suite, SuiteError, SuiteScenario, check_stress
from safety.suite_fields import (Ctx, constraint_overrides, finite_number, integer, mapping_keys, probe_spec,
                                 scenario_drift, seed_list, stress_spec)
from sim.drift_spec import DriftSpec

SUITE_VERSION = 1
DEFAULT_HORIZON = 300
DEFAULT_SEEDS = 10
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")

_TOP_KEYS = {"version", "name", "plant", "defaults", "gate", "constraints", "scenarios"}
_DEFAULT_KEYS = {"horizon", "seeds", "metric"}
_SCENARIO_KEYS = {"name", "tag", "plant", "drift", "variant", "seeds", "horizon", "metric", "margin",
                  "tolerance", "min_metric", "probe", "stress", "constraints", "note", "source"}


# ---------------------------------------------------------------------- the file's model
# One pydantic model for the suite file (safety.config_model): the keys, types and ranges of every
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


def _scenario(ctx: Ctx, i: int, raw: Any, plant: str, defaults: dict, gate: GateConfig,
              suite_constraints: dict) -> SuiteScenario:
    label = f"scenarios[{i}]"
    if isinstance(raw, Mapping) and isinstance(raw.get("name"), str):
        label += f" {raw['name']!r}"
    d = mapping_keys(ctx, label, raw, _SCENARIO_KEYS, required=("name", "tag"))
    name = d["name"]
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ctx.fail(label, f"name must be letters, digits, '_', '.', '-', got {name!r}")
    tag = d["tag"]
    if tag not in TAGS:
        raise ctx.fail(label, f"unknown tag {tag!r}; one of {list(TAGS)}")
    if d.get("plant", plant) != plant:
        raise ctx.fail(label, f"plant {d['plant']!r} differs from the suite's {plant!r}: one suite "
                              "judges one robot's controller")
    horizon = integer(ctx, f"{label}.horizon", d.get("horizon", defaults.get("horizon", DEFAULT_HORIZON)), lo=1)
    seeds = seed_list(ctx, f"{label}.seeds", d.get("seeds", defaults.get("seeds", DEFAULT_SEEDS)))
    drift = scenario_drift(ctx, label, d, plant)
    follows = drift is None
    if follows and tag == "target":
        raise ctx.fail(label, "a target scenario cannot take 'drift: target'; give its DriftSpec")
    probe = stress = None
    if "probe" in d:
        if tag != "probe":
            raise ctx.fail(label, f"'probe' belongs to probe scenarios, this one is tagged {tag!r}")
        probe = probe_spec(ctx, f"{label}.probe", d["probe"], plant, horizon)
    elif tag == "probe":
        raise ctx.fail(label, "a probe scenario needs a 'probe' (kind: one of "
                              f"{list(PROBE_KINDS)})")
    if "stress" in d:
        if tag != "stress":
            raise ctx.fail(label, f"'stress' belongs to stress scenarios, this one is tagged {tag!r}")
        stress = stress_spec(ctx, f"{label}.stress", d["stress"])
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
    margin = finite_number(ctx, f"{label}.margin", d["margin"], lo=0.0) if "margin" in d else \
        (gate.margin if tag == "target" else None)
    tolerance = finite_number(ctx, f"{label}.tolerance", d["tolerance"], lo=0.0) if "tolerance" in d else \
        (gate.tolerance if tag in ("archive", "nominal") else None)
    min_metric = finite_number(ctx, f"{label}.min_metric", d["min_metric"]) if "min_metric" in d else None
    own = constraint_overrides(ctx, f"{label}.constraints", d.get("constraints"), plant)
    overrides = {**suite_constraints, **own}
    if "state" in suite_constraints and "state" in own:
        overrides["state"] = {**suite_constraints["state"], **own["state"]}
    note = d.get("note", "")
    if not isinstance(note, str):
        raise ctx.fail(f"{label}.note", f"expected text, got {note!r}")
    source = d.get("source", {})
    if not isinstance(source, Mapping):
        raise ctx.fail(f"{label}.source", f"expected a mapping, got {source!r}")
    return SuiteScenario(name=name, tag=tag, plant=plant, drift=drift or DriftSpec(), seeds=seeds,
                         horizon=horizon, metric=metric, margin=margin, tolerance=tolerance,
                         min_metric=min_metric, probe=probe, stress=stress,
                         limits=limits_for(plant, overrides), note=note, source=dict(source),
                         follows_target=follows)


def _profile_plant(plant: Any, path: str | None) -> Any:
    """A suite's `plant` as `make_plant` takes it: a built-in name as is; a shipped profile's name
    (``manipulator``: launch/robots/manipulator.yaml) or a profile path relative to the suite file
    as the profile's absolute path, so a shipped suite does not depend on the working directory."""
    from sim.plants import PLANTS
    if not isinstance(plant, str) or plant in PLANTS:
        return plant
    if plant.endswith((".yaml", ".yml")):
        near = Path(path).parent / plant if path and not Path(plant).is_absolute() else None
        return str(near.resolve()) if near is not None and near.is_file() else plant
    from sim.profile import ProfileError, find_profile
    try:
        return str(find_profile(plant).resolve())
    except ProfileError:
        return plant


def parse_suite(doc: Any, *, source: str = "<suite>", path: str | None = None,
                sha256: str | None = None) -> Suite:
    """Validate a parsed YAML/JSON document and resolve every default. Raises SuiteError."""
    from sim.plants import PLANTS
    ctx = Ctx(source)
    if isinstance(doc, Mapping) and isinstance(doc.get("scenarios"), list) and not doc["scenarios"]:
        raise ctx.fail("scenarios", "expected a non-empty list of scenarios")
    try:
        model = SuiteModel.model_validate(doc)
    except ValidationError as e:
        raise SuiteError(f"{source}: {describe(e, SuiteModel, doc)}") from None
    d = mapping_keys(ctx, "top level", doc, _TOP_KEYS, required=("plant", "scenarios"))
    if d.get("version", SUITE_VERSION) != SUITE_VERSION:
        raise ctx.fail("version", f"unsupported suite version {d['version']!r} (this code reads {SUITE_VERSION})")
    plant = _profile_plant(d["plant"], path)
    if plant not in PLANTS and not (str(plant).endswith((".yaml", ".yml")) and Path(plant).is_file()):
        raise ctx.fail("plant", f"unknown plant {plant!r}; known plants: {sorted(PLANTS)} or a robot profile file")
    name = d.get("name", Path(source).stem if source != "<suite>" else "suite")
    if not isinstance(name, str) or not name:
        raise ctx.fail("name", f"expected a non-empty string, got {name!r}")
    defaults = mapping_keys(ctx, "defaults", d.get("defaults") or {}, _DEFAULT_KEYS)
    gate = model.gate_config()
    suite_constraints = constraint_overrides(ctx, "constraints", d.get("constraints"), plant)
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
        check_stress(s, f"{source}: scenarios[{i}] {s.name!r}")
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


def parse_suite_text(text: str, source: str) -> Any:
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
    return parse_suite(parse_suite_text(text, str(path)), source=str(path), path=str(path),
                       sha256=hashlib.sha256(data).hexdigest())
