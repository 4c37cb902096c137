"""Validation of the regression suite's sections that need more than types: seeds, the drift a
scenario applies, stress bounds, probes and state constraints (joint and body names come from the
plant's model). Every error is a `SuiteError` that names the file and the place."""
from __future__ import annotations

import math
from typing import Any, Mapping

from safety.scenarios import PROBE_KINDS, RELATIVE_FIELDS, Probe, Stress, SuiteError, check_drift, plant_instance
from sim.drift_spec import FIELDS as DRIFT_FIELDS
from sim.drift_spec import SCALE_FIELDS, TABLE_FIELDS, DriftSpec, variant

_CONSTRAINT_KEYS = {"max_saturation", "max_jerk", "state"}
_STRESS_KEYS = {"seed", "bounds", "relative"}
_PROBE_KEYS = {"initial_offset": {"kind", "joints"}, "push": {"kind", "joints", "at"},
               "target_jump": {"kind", "at", "phase"}}


class Ctx:
    """Where we are in the document, for error messages."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, msg: str) -> SuiteError:
        return SuiteError(f"{self.source}: {where}: {msg}")


def mapping_keys(ctx: Ctx, where: str, obj: Any, allowed: set[str], required: tuple[str, ...] = ()) -> dict:
    if not isinstance(obj, Mapping):
        raise ctx.fail(where, f"expected a mapping, got {type(obj).__name__} {obj!r}")
    unknown = sorted(str(k) for k in obj if k not in allowed)
    if unknown:
        raise ctx.fail(where, f"unknown key(s) {unknown}; known keys: {sorted(allowed)}")
    missing = [k for k in required if k not in obj]
    if missing:
        raise ctx.fail(where, f"missing required key(s) {missing}")
    return dict(obj)


def finite_number(ctx: Ctx, where: str, x: Any, *, lo: float | None = None, hi: float | None = None,
                  lo_open: bool = False) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(float(x)):
        raise ctx.fail(where, f"expected a finite number, got {x!r}")
    x = float(x)
    if lo is not None and (x < lo or (lo_open and x == lo)):
        raise ctx.fail(where, f"must be {'>' if lo_open else '>='} {lo}, got {x!r}")
    if hi is not None and x > hi:
        raise ctx.fail(where, f"must be <= {hi}, got {x!r}")
    return x


def integer(ctx: Ctx, where: str, x: Any, *, lo: int | None = None) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise ctx.fail(where, f"expected an integer, got {x!r}")
    if lo is not None and x < lo:
        raise ctx.fail(where, f"must be >= {lo}, got {x!r}")
    return int(x)


def seed_list(ctx: Ctx, where: str, x: Any) -> tuple[int, ...]:
    if isinstance(x, int) and not isinstance(x, bool):
        if x < 1:
            raise ctx.fail(where, f"a seed count must be >= 1, got {x}")
        return tuple(range(x))
    if not isinstance(x, list) or not x:
        raise ctx.fail(where, f"expected a seed count or a non-empty list of seeds, got {x!r}")
    seeds = tuple(integer(ctx, f"{where}[{i}]", s, lo=0) for i, s in enumerate(x))
    if len(set(seeds)) != len(seeds):
        raise ctx.fail(where, f"seeds must be distinct, got {list(seeds)}")
    return seeds


def scenario_drift(ctx: Ctx, where: str, raw: dict, plant: str) -> DriftSpec | None:
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
    check_drift(plant, spec, f"{ctx.source}: {where}")
    return spec


def stress_spec(ctx: Ctx, where: str, raw: Any) -> Stress:
    d = mapping_keys(ctx, where, raw, _STRESS_KEYS, required=("seed", "bounds"))
    seed = integer(ctx, f"{where}.seed", d["seed"], lo=0)
    relative = d.get("relative", False)
    if not isinstance(relative, bool):
        raise ctx.fail(f"{where}.relative", f"expected true or false, got {relative!r}")
    bounds_raw = mapping_keys(ctx, f"{where}.bounds", d["bounds"], set(DRIFT_FIELDS))
    if not bounds_raw:
        raise ctx.fail(f"{where}.bounds", "needs at least one bounded field")

    def interval(w: str, r: Any, fld: str) -> tuple[float, float]:
        if not isinstance(r, list) or len(r) != 2:
            raise ctx.fail(w, f"expected [low, high], got {r!r}")
        lo, hi = finite_number(ctx, w, r[0]), finite_number(ctx, w, r[1])
        if lo > hi:
            raise ctx.fail(w, f"low {lo} > high {hi}")
        if fld in SCALE_FIELDS + ("gravity",) and lo <= 0:
            raise ctx.fail(w, f"{fld} factors must be > 0, got low {lo}")
        if relative and fld in RELATIVE_FIELDS and lo <= 0:
            raise ctx.fail(w, f"relative bounds are factors of the target's value and must be > 0, got low {lo}")
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
    return Stress(seed=seed, bounds=tuple(bounds), relative=relative)


def probe_spec(ctx: Ctx, where: str, raw: Any, plant: str, horizon: int) -> Probe:
    if not isinstance(raw, Mapping) or raw.get("kind") not in PROBE_KINDS:
        got = raw.get("kind") if isinstance(raw, Mapping) else raw
        raise ctx.fail(where, f"probe needs kind: one of {list(PROBE_KINDS)}, got {got!r}")
    kind = raw["kind"]
    d = mapping_keys(ctx, where, raw, _PROBE_KEYS[kind], required=tuple(sorted(_PROBE_KEYS[kind])))
    p = plant_instance(plant)
    joints: tuple[tuple[str, float], ...] = ()
    if "joints" in d:
        table = mapping_keys(ctx, f"{where}.joints", d["joints"], set(p.joint_names))
        if not table:
            raise ctx.fail(f"{where}.joints", f"name at least one joint of {p.joint_names}")
        joints = tuple((j, finite_number(ctx, f"{where}.joints.{j}", v)) for j, v in sorted(table.items()))
        if any(v == 0 for _, v in joints):
            raise ctx.fail(f"{where}.joints", "offsets must be non-zero")
    at = integer(ctx, f"{where}.at", d["at"], lo=1) if "at" in d else 0
    if at >= horizon:
        raise ctx.fail(f"{where}.at", f"tick {at} is not inside the horizon ({horizon})")
    phase = finite_number(ctx, f"{where}.phase", d["phase"]) if "phase" in d else 0.0
    if kind == "target_jump" and not getattr(p, "moves_target", False):
        raise ctx.fail(where, f"target_jump needs a plant with a moving target (Plant.move_target), not {plant}")
    return Probe(kind=kind, joints=joints, at=at, phase=phase)


def constraint_overrides(ctx: Ctx, where: str, raw: Any, plant: str) -> dict:
    """Validated overrides for `limits_for`."""
    if raw is None:
        return {}
    d = mapping_keys(ctx, where, raw, _CONSTRAINT_KEYS)
    out: dict[str, Any] = {}
    if "max_saturation" in d:
        out["max_saturation"] = finite_number(ctx, f"{where}.max_saturation", d["max_saturation"], lo=0.0, hi=1.0)
    if "max_jerk" in d:
        out["max_jerk"] = finite_number(ctx, f"{where}.max_jerk", d["max_jerk"], lo=0.0, lo_open=True)
    if "state" in d:
        joints = plant_instance(plant).joint_names
        table = mapping_keys(ctx, f"{where}.state", d["state"], set(joints))
        state = {}
        for j, b in table.items():
            w = f"{where}.state.{j}"
            if b is None:
                state[j] = None
                continue
            if not isinstance(b, list) or len(b) != 2:
                raise ctx.fail(w, f"expected [low, high] (null for an open side) or null, got {b!r}")
            lo = None if b[0] is None else finite_number(ctx, w, b[0])
            hi = None if b[1] is None else finite_number(ctx, w, b[1])
            if lo is not None and hi is not None and lo >= hi:
                raise ctx.fail(w, f"low {lo} must be < high {hi}")
            state[j] = [lo, hi]
        out["state"] = state
    return out
