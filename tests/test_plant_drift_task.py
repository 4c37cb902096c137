"""`plant-drift` (issue 17, science D): the MuJoCo cart-pole drifting mass -> gain -> friction.

The tests fail when the drift sequence is removed (the plant at every generation the nominal one),
when a step is dropped, or when evaluation stops being deterministic and row-independent.
"""
import numpy as np
import pytest

from sim.drift_spec import DriftSpec
from sim.plant_drift_task import PlantDriftTask, make_plant_drift_task
from sim.policy import init_policy
from sim.runner import RunConfig, make_task, run


def _lqr_like_weights(task: PlantDriftTask, n: int) -> np.ndarray:
    """n random policies (seeded) to probe the plant with."""
    return np.stack([init_policy(task.policy, s) for s in range(n)]).astype(np.float32)


def test_sequence_is_cumulative_mass_then_gain_then_friction():
    task = PlantDriftTask(changes="10,20,30", horizon=20)
    assert task.change_points() == [10, 20, 30]
    assert task.condition(0) == DriftSpec()
    assert task.condition(10) == DriftSpec(mass_scale={"pole_1": 3.0})
    assert task.condition(20) == DriftSpec(mass_scale={"pole_1": 3.0}, actuator_gain={"slide": -1.0})
    assert task.condition(35) == DriftSpec(mass_scale={"pole_1": 3.0}, actuator_gain={"slide": -1.0},
                                           damping_scale={"slider": 4000.0, "hinge_1": 5000.0})
    assert task.schedule.active(5) is False and task.schedule.active(25) is True


def test_the_plant_really_drifts_at_each_change():
    """Same policies, same seeds: the returns differ between consecutive drift conditions."""
    task = PlantDriftTask(changes="10,20,30", horizon=60)
    w = _lqr_like_weights(task, 12)
    seeds = np.arange(12)
    f = [task.evaluate(w, seeds, g) for g in (0, 10, 20, 30)]
    for a, b in zip(f, f[1:]):
        assert not np.allclose(a, b), "a change point left the plant as it was"
    assert np.array_equal(task.evaluate(w, seeds, 5), f[0])      # no change within a phase


def test_deterministic_and_row_independent():
    task = PlantDriftTask(changes="5", sequence="gain", horizon=40)
    w = _lqr_like_weights(task, 7)
    seeds = np.arange(100, 107)
    full = task.evaluate(w, seeds, 6)
    assert np.array_equal(full, task.evaluate(w, seeds, 6))
    assert np.array_equal(full[2:5], task.evaluate(w[2:5], seeds[2:5], 6))   # padded batch, same rows
    assert np.all(full >= 0) and np.all(full <= 40)


def test_bad_options_are_one_line_errors():
    with pytest.raises(ValueError, match="unknown steps"):
        PlantDriftTask(sequence="mass,teleport", changes="1,2")
    with pytest.raises(ValueError, match="increasing"):
        PlantDriftTask(changes="20,10", sequence="mass,gain")
    with pytest.raises(ValueError, match="no drift steps"):
        PlantDriftTask(plant="walker")
    with pytest.raises(ValueError, match="unknown options"):
        make_plant_drift_task(bogus=1)


def test_runner_runs_it_and_records_the_changes():
    cfg = RunConfig(task="plant-drift", method="fixed-rate", generations=6, seed=3, horizon=15,
                    task_options={"changes": "2,4", "sequence": "mass,gain"})
    assert isinstance(make_task(cfg), PlantDriftTask)
    rec, _ = run(cfg)
    assert [r["switch_gen"] for r in rec["recovery"]] == [2, 4]
    assert len(rec["generations"]) == 6
    rec2, _ = run(cfg)
    assert [g["best"] for g in rec["generations"]] == [g["best"] for g in rec2["generations"]]
