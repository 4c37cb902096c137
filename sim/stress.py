"""The regression suite's stress distribution and start probes, as data the sandbox can draw from.

Why in sim/: the gate (`safety.scenarios.Stress.sample`) and the adaptation job's fitness must draw
robots from the SAME distribution (a candidate evolved on it is judged on it), and sim never imports
safety. So the one sampler lives here; the gate calls it with its own seed, the job with fresh
seeds of its own. The job gets the suite's stress bounds and initial-offset probes through
job.json (`AdaptJob.gate_limits`, written by `safety.command_limits`), in the suite's own format:

    stress:        [{"relative": true, "bounds": {"actuator_gain": {"*": [0.8, 1.2], ...},
                                                  "obs_noise": [0.0, 0.01]}}, ...]
    start_offsets: [{"right_hip": 0.05}, ...]     (qpos offsets added after the reset, both signs)
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from sim.drift_spec import SCALE_FIELDS, TABLE_FIELDS, DriftSpec

RELATIVE_FIELDS = SCALE_FIELDS + ("actuator_gain",)   # multiplicative quantities: `relative` applies

Bounds = tuple  # ((field, (lo, hi)) | (field, ((name, (lo, hi)), ...)), ...)


def sample_stress(base: DriftSpec, bounds: Bounds, relative: bool, rng: np.random.Generator) -> DriftSpec:
    """`base` with every bounded entry drawn uniformly from `rng`, in `bounds`' order.

    `relative`: bounds of scale and gain entries are factors of the base's value (1.0 where the
    base leaves the entry alone); other fields (obs_bias, gravity, obs_noise, action_delay) stay
    absolute. A ``"*"`` entry stacks multiplicatively with named ones (`sim.drift_spec`)."""
    d = base.as_dict()
    for fld, rng_spec in bounds:
        if fld in TABLE_FIELDS:
            table = dict(d.get(fld, {}))
            for name, (lo, hi) in rng_spec:
                draw = float(rng.uniform(lo, hi))
                if relative and fld in RELATIVE_FIELDS:
                    draw *= float(table.get(name, 1.0))
                table[name] = draw
            d[fld] = table
        elif fld == "action_delay":
            d[fld] = int(rng.integers(int(rng_spec[0]), int(rng_spec[1]) + 1))
        else:
            d[fld] = float(rng.uniform(*rng_spec))
    return DriftSpec.parse(d)


def bounds_from_dict(bounds: Mapping[str, Any]) -> Bounds:
    """The suite's ``bounds`` mapping (as `Stress.to_dict` writes it) in `sample_stress`'s tuple form."""
    out = []
    for fld, b in bounds.items():
        if fld in TABLE_FIELDS:
            out.append((fld, tuple((str(n), (float(r[0]), float(r[1]))) for n, r in b.items())))
        else:
            out.append((fld, (float(b[0]), float(b[1]))))
    return tuple(out)


class _Stratified:
    """A stand-in for `rng.uniform` / `rng.integers` in `sample_stress` that returns the `index`-th of
    `n` stratified draws: each bounded entry's range is cut into `n` equal strata, and the `n` robots
    take one stratum each, in an order permuted per entry (a Latin hypercube). Why: with a handful of
    robots, plain uniform draws often miss the weak end of a range (the walker's shared leg gain
    x 0.8-0.9 of the estimate), and a candidate evolved and confirmed without it fell there in the
    gate (demo 18:05 UTC: 5 of the gate's 10 stress robots, all with the shared gain below 0.92 x)."""

    def __init__(self, rng: np.random.Generator, n: int, index: int, entries: int) -> None:
        self.strata = [rng.permutation(n)[index] for _ in range(entries)]   # one stratum per entry
        self.jitter = rng.uniform(size=entries)
        self.n, self.k = n, 0

    def _u(self) -> float:
        u = (self.strata[self.k] + self.jitter[self.k]) / self.n
        self.k += 1
        return float(u)

    def uniform(self, lo: float = 0.0, hi: float = 1.0) -> float:
        return lo + (hi - lo) * self._u()

    def integers(self, lo: int, hi: int) -> int:
        return int(lo + min(int(self._u() * (hi - lo)), hi - lo - 1))


def _entries(bounds: Bounds) -> int:
    return sum(len(spec) if fld in TABLE_FIELDS else 1 for fld, spec in bounds)


def stress_draws(base: DriftSpec, stresses: Sequence[Mapping[str, Any]], n: int, seed: int) -> list[DriftSpec]:
    """`n` robots from the suite's stress scenarios around `base` (the sysid estimate), dealt over the
    scenarios in turn; each scenario's robots are stratified (`_Stratified`: every bounded entry's
    range covered evenly, its ends included), from SeedSequence([seed, ...]) (never the gate's own
    stress seed: the sandbox does not see the gate's robots)."""
    if not stresses or n <= 0:
        return []
    parsed = [(bounds_from_dict(s["bounds"]), bool(s.get("relative", False))) for s in stresses]
    counts = [len(range(i, int(n), len(parsed))) for i in range(len(parsed))]
    out = []
    for k in range(int(n)):
        i = k % len(parsed)
        bounds, relative = parsed[i]
        # the same generator for every robot of one scenario: the same permutations, one index each
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 104723, i]))
        out.append(sample_stress(base, bounds, relative, _Stratified(rng, counts[i], k // len(parsed),
                                                                     _entries(bounds))))
    return out


def signed_offsets(offsets: Sequence[Mapping[str, float]]) -> list[tuple[tuple[str, float], ...]]:
    """Every probe's qpos offsets with both signs (the gate alternates the sign over its seeds)."""
    out = []
    for probe in offsets:
        items = tuple((str(j), float(v)) for j, v in probe.items())
        if items:
            out += [items, tuple((j, -v) for j, v in items)]
    return out


def offset_start(offsets: Sequence[tuple[str, float]]):
    """A start hook (`PlantTask`, `PlantBatch.reset`): add `offsets` to the named joints' qpos right
    after the reset and observe again: exactly what the gate's initial_offset probe does
    (`safety.episodes.probe_touch`: copy, offset, `set_qpos_qvel`, `observe`)."""
    offsets = tuple(offsets)

    def start(plant) -> np.ndarray:
        model = plant.model
        qpos, qvel = plant.data.qpos.copy(), plant.data.qvel.copy()
        for joint, value in offsets:
            qpos[model.jnt_qposadr[model.joint(joint).id]] += value
        plant.set_qpos_qvel(qpos, qvel)
        return plant.observe()
    return start
