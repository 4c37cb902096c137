"""`plant-drift`: a MuJoCo plant of `sim.plants` whose drift changes at given generations.

Issue 17 asks for "at least one robot drift sequence from the plants (mass -> gain -> friction)":
this is that task. The plant is stepped by `sim.plants.base.PlantBatch` (the batched evaluation of
`sim.plant_task.PlantTask`, bit-identical to per-plant stepping). The drift steps are DriftSpecs,
applied cumulatively: after the k-th change the plant runs `compose(step_1, ..., step_k)`
(`nominal` resets to the nominal plant).

Fitness: the same shaped, non-saturating reward as the science study's numpy stand-in
(`sim.envs.cartpole_drift`), per tick while up: `1 - 0.5 min(1, |x|/0.2) - 0.5 min(1, |theta|/0.02)`,
nothing once the pole passes 12 degrees or the cart reaches the end of its rail (so a pole swinging
round cannot farm the centring term). The plant's own dm_control reward saturates at ~1 per tick
for any balancing policy (a 30-evaluation generation reaches 199.9 of 200 within 25 generations and
a drift barely shows), which is why it is not used.

Same interface as `sim.tasks.Task` (policy, schedule, change_points, evaluate), so the SR-GHN loop,
the baselines and `sim.runner.run` use it unchanged. Deterministic: an individual's episodes come
from its own seed only (PlantTask's contract).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.drift_spec import DriftSpec, compose
from sim.envs.switch import SwitchSchedule
from sim.plant_task import PlantTask, _episode_seed, _plant_batch
from sim.policy import BoundPolicy, PolicySpec

# The drift steps per plant, by the model's own names. Cart-pole: a pole payload (the library's
# `payload` variant, mass x3), the motor wired backwards (`reversed_motor`: gear x -1), and
# friction: viscous friction on both joints (dof damping; the dm_control model has no contacts for
# geom friction to act on), slider 5e-4 -> 2 N s/m, hinge 2e-6 -> 0.01 N m s/rad, close to the
# numpy stand-in's 2 N cart friction and 0.01 pole friction.
BATCH_QUANTUM = 30   # evaluations per generation of every arm in the science study
X_SCALE, THETA_SCALE, THETA_LIMIT = 0.2, 0.02, 12 * 2 * 3.141592653589793 / 360   # as the stand-in
DRIFT_STEPS: dict[str, dict[str, DriftSpec]] = {
    "cartpole": {
        "mass": DriftSpec(mass_scale={"pole_1": 3.0}),
        "gain": DriftSpec(actuator_gain={"slide": -1.0}),
        "friction": DriftSpec(damping_scale={"slider": 4000.0, "hinge_1": 5000.0}),
    },
}


@dataclass(frozen=True)
class PlantDriftTask:
    """Plant `plant` drifting through `sequence` at generations `changes` (cumulative steps)."""

    plant: str = "cartpole"
    changes: str = "100,200,300"
    sequence: str = "mass,gain,friction"
    horizon: int = 200
    episodes: int = 1
    hidden: tuple[int, ...] = (32,)

    name = "plant-drift"

    def __post_init__(self) -> None:
        if self.plant not in DRIFT_STEPS:
            raise ValueError(f"task 'plant-drift': no drift steps for plant {self.plant!r}; known: {sorted(DRIFT_STEPS)}")
        points, steps = SwitchSchedule.parse_sequence("plant-drift", self.changes, self.sequence)
        known = set(DRIFT_STEPS[self.plant]) | {"nominal"}
        unknown = [t for t in steps if t not in known]
        if unknown:
            raise ValueError(f"task 'plant-drift': unknown steps {unknown} for {self.plant}; known: {sorted(known)}")
        if int(self.horizon) < 1 or int(self.episodes) < 1:
            raise ValueError(f"task 'plant-drift': horizon and episodes must be >= 1, got {self.horizon}, {self.episodes}")
        conds, cur = [DriftSpec()], DriftSpec()
        for t in steps:
            cur = DriftSpec() if t == "nominal" else compose(cur, DRIFT_STEPS[self.plant][t])
            conds.append(cur)
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "_points", tuple(points))
        object.__setattr__(self, "_tasks", tuple(PlantTask(self.plant, drifts=(c,), horizon=int(self.horizon),
                                                           episodes=int(self.episodes), hidden=self.hidden)
                                                 for c in conds))
        object.__setattr__(self, "schedule", SwitchSchedule.from_conditions(points, conds, DriftSpec()))

    @property
    def policy(self) -> PolicySpec:
        return self._tasks[0].policy

    def condition(self, generation: int) -> DriftSpec:
        """The plant's drift at `generation`."""
        return self._tasks[sum(generation >= p for p in self._points)].drifts[0]

    def change_points(self) -> list[int]:
        return list(self._points)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "plant": self.plant, "changes": self.changes, "sequence": self.sequence,
                "horizon": self.horizon, "episodes": self.episodes, "hidden": list(self.hidden),
                "conditions": [t.drifts[0].as_dict() for t in self._tasks]}

    def evaluate(self, weights: np.ndarray, seeds: np.ndarray, generation: int = 0) -> np.ndarray:
        """Mean shaped return of each individual on the plant as drifted at `generation`."""
        task = self._tasks[sum(generation >= p for p in self._points)]
        weights = np.asarray(weights, dtype=np.float32)
        n = len(weights)
        if n == 0:
            return np.zeros(0)
        if len(seeds) != n or weights.ndim != 2 or weights.shape[1] != self.policy.num_params:
            raise ValueError(f"task 'plant-drift': weights {weights.shape} and {len(seeds)} seeds; "
                             f"need (n, {self.policy.num_params}) and n seeds")
        # pad the batch to a multiple of BATCH_QUANTUM rows (copies of row 0, dropped below): the
        # restarting CMA-ES streams generations in pieces of varying size, and a new PlantBatch per
        # size (a new MuJoCo model each) would cost more than the padded rows; rows are independent
        size = -(-n // BATCH_QUANTUM) * BATCH_QUANTUM
        if size > n:
            weights = np.concatenate([weights, np.repeat(weights[:1], size - n, axis=0)])
            seeds = list(seeds) + [seeds[0]] * (size - n)
        batch = _plant_batch(self.plant, size)
        task._configure(batch.plant)
        batch.plant.apply_drift(task.drifts[0])
        names = batch.plant.obs_names
        ix, ic, isn = names.index("cart_position"), names.index("pole_cos"), names.index("pole_sin")
        act = BoundPolicy(self.policy, weights)
        total = np.zeros(size)
        for e in range(self.episodes):
            obs = batch.reset([_episode_seed(seeds[i], 0, e) for i in range(size)])
            alive = np.ones(size, dtype=bool)
            for _ in range(self.horizon):
                obs, _r = batch.act(act.act(obs))
                x, theta = obs[:, ix], np.arctan2(obs[:, isn], obs[:, ic])
                alive &= (np.abs(theta) <= THETA_LIMIT) & ~batch.plant.fallen_batch(obs)
                if not alive.any():
                    break
                r = 1.0 - 0.5 * np.minimum(1.0, np.abs(x) / X_SCALE) - 0.5 * np.minimum(1.0, np.abs(theta) / THETA_SCALE)
                total += np.where(alive, r, 0.0)
        fitness = total[:n] / self.episodes
        if not np.all(np.isfinite(fitness)):
            raise ValueError(f"task 'plant-drift': non-finite return for individual {int(np.argmax(~np.isfinite(fitness)))}")
        return fitness


def make_plant_drift_task(*, episodes: int = 1, schedule: str | None = None, horizon: int | None = None,
                          **options: Any) -> PlantDriftTask:
    """`make_task`'s signature for `plant-drift` (a switch schedule is refused: give changes/sequence)."""
    if schedule:
        raise ValueError("task 'plant-drift': give `changes` and `sequence` in task_options, not a schedule")
    allowed = {"plant", "changes", "sequence", "hidden"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"task 'plant-drift': unknown options {unknown}; it accepts {sorted(allowed)}")
    return PlantDriftTask(episodes=episodes, horizon=200 if horizon is None else horizon, **options)
