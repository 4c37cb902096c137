"""One scenario episode for one policy: the rollout, its metric, its hard-constraint violations.

Every scenario runs through `sim.plant_task.rollout`, the same episode function the rest of
driftgate uses, so a gate number means what an evolution number means. Probe scenarios touch the
robot mid-episode (displace a joint at reset, push it, move a moving target: `Plant.move_target`) through that
loop's `touch` hook (`probe_touch`). Both sides of a paired comparison always go through the same
function.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from safety.constraints import Violation, check_rollout
from safety.scenarios import Probe, SuiteScenario, plant_instance
from sim.drift_spec import DriftSpec
from sim.plant_task import Rollout, rollout
from sim.policy import PolicySpec


@dataclass(frozen=True)
class Episode:
    """What one episode contributed to the gate: the metric and what the constraints saw."""

    seed: int
    drift_hash: str
    metric: float
    ret: float
    steps: int
    finite: bool
    saturation: float
    jerk: float
    violations: tuple[Violation, ...]

    def to_dict(self) -> dict:
        return {"seed": self.seed, "drift_hash": self.drift_hash, "metric": _finite_or_none(self.metric),
                "return": _finite_or_none(self.ret), "steps": self.steps, "finite": self.finite,
                "saturation": _finite_or_none(self.saturation), "jerk": _finite_or_none(self.jerk),
                "violations": [v.to_dict() for v in self.violations]}


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def probe_touch(probe: Probe, index: int) -> Callable[[Any, int], bool]:
    """The `touch` hook of `sim.plant_task.rollout` that applies `probe` (sign alternates with `index`)."""
    sign = probe.sign(index)

    def perturb(plant: Any, field: str) -> None:
        model = plant.model
        qpos, qvel = plant.data.qpos.copy(), plant.data.qvel.copy()
        for joint, value in probe.joints:
            jid = model.joint(joint).id
            if field == "qpos":
                qpos[model.jnt_qposadr[jid]] += sign * value
            else:
                qvel[model.jnt_dofadr[jid]] += sign * value
        plant.set_qpos_qvel(qpos, qvel)

    def touch(plant: Any, t: int) -> bool:
        if t == -1 and probe.kind == "initial_offset":
            perturb(plant, "qpos")
        elif t == probe.at and probe.kind == "push":
            perturb(plant, "qvel")
        elif t == probe.at and probe.kind == "target_jump":
            plant.move_target(probe.phase)
        else:
            return False
        return True

    return touch


def metric_value(metric: str, ro: Rollout, horizon: int, probe: Probe | None,
                 joint_names: list[str]) -> float:
    """The scenario metric of one rollout (see safety.suite). Missing ticks of an episode that
    blew up count as zero reward; a displaced joint that never came back scores <= 0."""
    rewards = np.nan_to_num(ro.rewards, nan=0.0)
    if metric == "return":
        return float(ro.ret)
    if metric == "mean_reward":
        return float(rewards.sum() / horizon)
    if metric == "tail_reward":
        start = probe.at if probe is not None and probe.kind in ("push", "target_jump") \
            else horizon - max(1, horizon // 4)
        return float(rewards[start:].sum() / (horizon - start))
    if metric == "recovery":
        if probe is None or probe.kind != "initial_offset":
            raise ValueError("recovery needs an initial_offset probe")
        start = horizon - max(1, horizon // 4)
        tail = ro.qpos[1 + start:] if len(ro.qpos) > 1 + start else ro.qpos[-1:]
        scores = []
        for joint, offset in probe.joints:
            col = np.abs(tail[:, joint_names.index(joint)])
            scores.append(1.0 - float(np.mean(col)) / abs(offset) if np.all(np.isfinite(col)) else -np.inf)
        return float(np.mean(scores))
    raise ValueError(f"unknown metric {metric!r}")


def run_episode(scenario: SuiteScenario, index: int, spec: PolicySpec, weights: np.ndarray, *,
                horizon: int | None = None, stage: str = "suite") -> Episode:
    """Run the `index`-th seed of `scenario` (optionally shortened to `horizon` ticks)."""
    horizon = scenario.horizon if horizon is None else int(horizon)
    seed = scenario.seeds[index]
    drift = scenario.drift_for(index)
    if scenario.probe is None:
        ro = rollout(scenario.plant, spec, weights, seed, horizon, drift)
    else:
        ro = rollout(scenario.plant, spec, weights, seed, horizon, drift, plant=plant_instance(scenario.plant),
                     touch=probe_touch(scenario.probe, index))
    joints = plant_instance(scenario.plant).joint_names
    violations = tuple(
        Violation(v.kind, v.value, v.limit, joint=v.joint, scenario=scenario.name, seed=seed, stage=stage)
        for v in check_rollout(scenario.limits, joints, ro.qpos, ro.actions, ro.finite, ro.saturation,
                               ro.jerk, fell=ro.fell))
    return Episode(seed=seed, drift_hash=drift.hash,
                   metric=metric_value(scenario.metric, ro, horizon, scenario.probe, joints),
                   ret=ro.ret, steps=len(ro.rewards), finite=ro.finite, saturation=ro.saturation,
                   jerk=ro.jerk, violations=violations)
