"""The job's fitness and stop rule agree with the gate's hard limits on the walker.

Why: the gate fails a candidate on any seed whose torso drops below 0.8 m (rootz < -0.5). The job
used to (a) keep paying the stand reward of a walker lying on the floor (the built-in plant never
reported a fall) and (b) confirm its target on the mean of twelve episodes, which hid one fall. The
demo's first walker candidate confirmed 300/300 and then fell on 5 of the gate's 10 seeds."""
from __future__ import annotations

import numpy as np

from sim.evolution import CONFIRM_EPISODES, ConfirmedTarget, GenerationLog
from sim.plants import make_plant


def _log(gen: int, best: float) -> GenerationLog:
    return GenerationLog(gen=gen, best=best, mean=best, median=best, rate_mean=None, std_mean=None,
                         diversity=0.0, switch_on=False, wall_s=0.0)


def test_walker_reports_a_fall_from_its_observation():
    plant = make_plant("walker")
    standing = plant.reset(0)
    plant.data.qpos[0] = -1.2                       # torso on the floor (rootz below the gate's -0.5)
    import mujoco
    mujoco.mj_forward(plant.model, plant.data)
    lying = plant.observe()
    plant.data.qpos[0], plant.data.qpos[2] = 0.0, 1.3   # upright height, pitched past 1 rad
    mujoco.mj_forward(plant.model, plant.data)
    pitched = plant.observe()
    assert plant.fallen_batch(np.stack([standing, lying, pitched])).tolist() == [False, True, True]


def test_a_walker_that_falls_earns_nothing_after_the_fall():
    """Zero torques on half-strength motors: the walker collapses; with stop_on_fall its return is
    only the ticks before the fall, well below what lying on the floor used to pay."""
    from sim.plant_task import PlantTask
    half = {"actuator_gain": {a: 0.1 for a in ("right_hip", "right_knee", "right_ankle",
                                               "left_hip", "left_knee", "left_ankle")}}
    task = PlantTask("walker", drifts=(half,), horizon=200, hidden=(4,))
    w = np.zeros((1, task.policy.num_params), dtype=np.float32)
    stopped = task.evaluate(w, np.array([0]))[0]
    paid = PlantTask("walker", drifts=(half,), horizon=200, hidden=(4,), stop_on_fall=False).evaluate(w, np.array([0]))[0]
    assert stopped < paid - 5.0


def test_one_low_episode_among_twelve_does_not_confirm_with_a_floor():
    returns = np.r_[np.full(CONFIRM_EPISODES + 1, 300.0), 140.0]       # mean 286.7 >= 285
    assert ConfirmedTarget(285.0, lambda e, s: returns)(_log(0, 300.0), np.zeros(2)) is True
    rule = ConfirmedTarget(285.0, lambda e, s: returns, min_return=0.8 * 285.0)
    assert rule(_log(0, 300.0), np.zeros(2)) is False
    assert rule.checks[-1]["min"] == 140.0 and rule.checks[-1]["confirmed"] is False


def test_the_job_confirms_with_the_episode_floor(monkeypatch):
    import sim.adapt_job as aj
    made = []
    real = aj.ConfirmedTarget

    def spy(*a, **k):
        made.append(k)
        return real(*a, **k)
    monkeypatch.setattr(aj, "ConfirmedTarget", spy)
    job = aj.AdaptJob(robot="cartpole", drift={"mass_scale": {"pole_1": 1.5}}, budget_s=1e6, max_generations=1,
                      horizon=30, telemetry_ticks=120, randomize=0, population=4, children=1, sysid_max_evals=40)
    r, _ = aj.run_job(job, [aj.nominal_champion("cartpole")])
    assert made and made[0]["min_return"] == aj.EPISODE_FLOOR * r["target_return"]
