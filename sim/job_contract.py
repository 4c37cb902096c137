"""The sandbox job contract (torch-free): `job.json`'s fields and the one writer of a job directory.

    job_dir/
      job.json              `AdaptJob` fields + seed_genomes: [{"file", "id"}]
      telemetry.npz         qpos, qvel, actions, control_dt [, breaks]   (optional)
      seeds/<id>.safetensors

Why a module of its own: the live node writes jobs and must not import torch, while
`sim.adapt_job` (which runs them) does. The controller's settings tree (`controller.settings`,
section ``adapt``) uses these field names and takes its defaults from `AdaptJob`, so a setting has
one name and one default from the YAML to job.json.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from sim.atomicio import atomic_write_json, dataclass_from_mapping


# Old job.json keys -> their new names: refused with the new name, never aliased (our own code writes
# job files). The old `robot` (the requester's label) cannot be told apart from the new `robot`; an old
# file always carries `plant` too, so it is refused on that key first.
RENAMED_KEYS = {"plant": "robot"}


@dataclass(frozen=True)
class AdaptJob:
    """job.json: what to adapt, with which budgets and seeds. Unknown keys are refused."""

    robot: str = "cartpole"              # the robot: a built-in name or a robot profile path (settings' `robot`)
    drift: dict | None = None            # the true drift (simulated robot) / the policy sandbox's target; None
                                         # when telemetry is real
    seed: int = 0
    budget_s: float = 120.0
    max_generations: int = 30
    max_evaluations: int | None = None
    target_fraction: float = 0.95         # on the calibrated plant; a margin for the sim-to-robot gap
    population: int = 10
    children: int = 2
    cf: float = 0.0
    horizon: int = 300
    randomize: int = 2                   # domain-randomised specs sampled inside the sysid std
    workers: int = 1
    backend: str = "local"               # local | ray
    ray_address: str | None = None       # None or "": RAY_ADDRESS, else a head the sandbox's parent starts
    requester: str = ""                  # who asked (the node's name): labels the Ray job and tasks
    job_id: str = ""
    sysid_budget_s: float = 20.0
    sysid_max_evals: int = 1500          # with budgets in counts (not seconds) a seed fixes the result
    telemetry_ticks: int = 1000
    telemetry_noise: float = 0.01
    model_seed: bool = True              # seed the population with an LQR on the identified model
    gate_limits: dict | None = None      # what the gate checks: {max_saturation, max_jerk, obs_noise[, stress,
                                         # start_offsets]} (safety.command_limits); None: the gate's defaults, no noise
    stress_draws: int = 0                # > 0: fitness also averages over this many robots drawn from the suite's
                                         # stress distribution around the estimate (gate_limits.stress), and the
                                         # confirmation over as many fresh ones (sim.stress)
    start_probes: bool = False           # fitness and confirmation also start from the suite's initial-offset
                                         # probes, both signs, on the estimate (gate_limits.start_offsets)
    min_generations: int = 0             # > 0: evolve at least this many generations, then pick the winner among
                                         # the confirmed elites on the confirmation metric (0: stop on the first)
    seed_rate: float = 0.0               # the model / gain seed's starting mutation rate (its rate head shifted):
                                         # small to refine a seed that already meets the target; 0: the champion's

    def __post_init__(self) -> None:
        from sim.plants import PLANTS
        if self.robot not in PLANTS and not str(self.robot).endswith((".yaml", ".yml")):
            raise ValueError(f"job.robot: unknown robot {self.robot!r}; known: {sorted(PLANTS)} or a robot profile "
                             f"(the requesting node's name is job.requester)")
        if self.ray_address == "":
            object.__setattr__(self, "ray_address", None)
        if self.drift is not None:
            from sim.drift_spec import DriftSpec
            from sim.plants import make_plant
            make_plant(self.robot).apply_drift(DriftSpec.parse(self.drift))   # names checked against the model
        for name in ("budget_s", "sysid_budget_s", "target_fraction"):
            v = float(getattr(self, name))
            if not (v > 0 and v < float("inf")):
                raise ValueError(f"job.{name}: must be a finite number > 0, got {getattr(self, name)}")
        for name in ("max_generations", "population", "children", "horizon", "workers", "telemetry_ticks"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"job.{name}: must be a positive integer, got {getattr(self, name)}")
        if int(self.min_generations) < 0 or int(self.min_generations) > int(self.max_generations):
            raise ValueError(f"job.min_generations: must be an integer in [0, max_generations={self.max_generations}], "
                             f"got {self.min_generations}")
        if not (isinstance(self.seed_rate, (int, float)) and 0 <= self.seed_rate < 1):
            raise ValueError(f"job.seed_rate: a number in [0, 1) (0: the champion's own rate), got {self.seed_rate!r}")
        if self.randomize < 0 or not 0 <= self.cf <= 1 or self.telemetry_noise < 0:
            raise ValueError("job.randomize must be >= 0, job.cf in [0, 1], job.telemetry_noise >= 0")
        if self.backend not in ("local", "ray"):
            raise ValueError(f"job.backend: must be 'local' or 'ray', got {self.backend!r}")
        if self.ray_address is not None and not isinstance(self.ray_address, str):
            raise ValueError(f"job.ray_address: must be a string or null, got {self.ray_address!r}")
        if int(self.stress_draws) < 0 or not isinstance(self.start_probes, bool):
            raise ValueError(f"job.stress_draws must be an integer >= 0 and job.start_probes a boolean, got "
                             f"{self.stress_draws!r}, {self.start_probes!r}")
        if self.gate_limits is not None:
            import math
            known = {"max_saturation", "max_jerk", "obs_noise", "stress", "start_offsets"}
            if not isinstance(self.gate_limits, Mapping) or set(self.gate_limits) - known:
                raise ValueError(f"job.gate_limits: a mapping with keys among {sorted(known)}, got {self.gate_limits!r}")
            _check_gate_draws(self.gate_limits)
            for k, v in self.gate_limits.items():
                if k in ("stress", "start_offsets"):
                    continue
                if not (isinstance(v, (int, float)) and math.isfinite(v) and (v >= 0 if k == "obs_noise" else v > 0)):
                    raise ValueError(f"job.gate_limits.{k}: must be a finite number "
                                     f"{'>= 0' if k == 'obs_noise' else '> 0'}, got {v!r}")
        for name in ("requester", "job_id"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"job.{name}: must be a string, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, d: dict) -> "AdaptJob":
        """job.json's contents (`seed_genomes` is the job directory's, not the contract's)."""
        if isinstance(d, Mapping):
            for old, new in RENAMED_KEYS.items():
                if old in d:
                    raise ValueError(f"job.json: key {old!r} was renamed: use {new!r}")
        return dataclass_from_mapping(cls, d, what="job.json", ignore=("seed_genomes",))

    def to_dict(self) -> dict:
        return asdict(self)


def _check_gate_draws(g: Mapping) -> None:
    """gate_limits' stress bounds and start offsets: the shapes `sim.stress` reads (names are checked
    against the model when a draw is applied)."""
    import math

    def number(x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    def pair(r: Any) -> bool:
        return isinstance(r, (list, tuple)) and len(r) == 2 and all(number(x) for x in r) and r[0] <= r[1]

    for s in g.get("stress", []) if isinstance(g.get("stress", []), list) else [None]:
        bounds = s.get("bounds") if isinstance(s, Mapping) else None
        ok = isinstance(bounds, Mapping) and bool(bounds) and all(
            (isinstance(b, Mapping) and all(pair(r) for r in b.values())) or pair(b) for b in bounds.values())
        if not ok:
            raise ValueError(f"job.gate_limits.stress: a list of {{relative, bounds: {{field: [lo, hi] | "
                             f"{{name: [lo, hi]}}}}}}, got {g.get('stress')!r}")
    offsets = g.get("start_offsets", [])
    if not (isinstance(offsets, list) and all(isinstance(o, Mapping) and all(
            isinstance(j, str) and number(v) for j, v in o.items()) for o in offsets)):
        raise ValueError(f"job.gate_limits.start_offsets: a list of {{joint: offset}}, got {offsets!r}")


def job_field_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(AdaptJob))


def write_job(job_dir: str | os.PathLike, job: AdaptJob, seeds: list, telemetry: Any = None) -> Path:
    """Create a job directory (refuses a directory that already holds a job). `telemetry`: a
    `sim.sysid.Telemetry` or a mapping of its arrays (qpos, qvel, actions, control_dt[, breaks])."""
    from sim.genome import save_genome
    job_dir = Path(job_dir)
    if (job_dir / "job.json").exists():
        raise FileExistsError(f"{job_dir} already holds a job")
    (job_dir / "seeds").mkdir(parents=True, exist_ok=True)
    entries = []
    for g in seeds:
        save_genome(g, job_dir / "seeds" / f"{g.id}.safetensors")
        entries.append({"file": f"seeds/{g.id}.safetensors", "id": g.id})
    if telemetry is not None:
        arrays = dict(telemetry) if isinstance(telemetry, Mapping) else _telemetry_arrays(telemetry)
        tmp = job_dir / ".telemetry.tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, job_dir / "telemetry.npz")
    atomic_write_json(job_dir / "job.json", {**job.to_dict(), "seed_genomes": entries})
    return job_dir


def _telemetry_arrays(tel: Any) -> dict:
    out = {"qpos": tel.qpos, "qvel": tel.qvel, "actions": tel.actions, "control_dt": np.float64(tel.control_dt)}
    if getattr(tel, "breaks", None) is not None:
        out["breaks"] = np.asarray(tel.breaks, dtype=np.int64)
    return out


__all__ = ["AdaptJob", "job_field_names", "write_job"]
