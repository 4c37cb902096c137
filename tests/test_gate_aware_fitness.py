"""The sandbox selects on what the gate checks: commands that chatter or saturate cost fitness and
cannot confirm a target (sim.plant_task.ActionLimits, sim.adapt_job).

Why: nothing in a return sees chatter. The ant's first sandbox candidate went 63 -> 273 of 300 on
the identified model with its commands flipping every tick, and the gate's hurdle refused it (jerk
1.44 > limit 1): the job had offered a candidate the gate was bound to refuse. A chattering policy
here is the cart-pole champion with its output layer x100 (bang-bang: the gate's own example)."""
from __future__ import annotations

import numpy as np
import pytest

from sim.plant_task import ActionLimits, PlantTask, action_jerk, action_saturation, rollout

DRIFT = {"mass_scale": {"pole_1": 1.5}}


@pytest.fixture(scope="module")
def policies():
    """(spec, smooth weights, chattering weights): the shipped champion and the same x100 at the output."""
    from sim.adapt_job import nominal_champion
    from sim.srghn_decode import genome_policy_weights
    champion = nominal_champion("cartpole")
    smooth = genome_policy_weights(champion).astype(np.float32)
    spec = champion.policy_spec
    loud = smooth.copy()
    w_name = spec.offsets()[-2]        # the last layer's weights and bias
    b_name = spec.offsets()[-1]
    for _, off, shape in (w_name, b_name):
        size = int(np.prod(shape))
        loud[off:off + size] *= 100.0
    return spec, smooth, loud


def test_the_measures_are_the_gates():
    """One implementation: the rollout the gate judges reports exactly action_jerk / action_saturation."""
    rng = np.random.default_rng(0)
    a = np.clip(rng.normal(size=(50, 3)), -1, 1)
    assert action_jerk(a) == pytest.approx(np.sqrt(np.mean(np.diff(a, n=2, axis=0) ** 2)))
    assert action_saturation(a) == np.mean(np.abs(a) >= 0.999)
    flip = np.tile([[1.0], [-1.0]], (20, 1))     # bang-bang every tick: jerk 4, saturation 1
    assert action_jerk(flip) == pytest.approx(4.0) and action_saturation(flip) == 1.0


def test_factor_is_one_well_inside_the_limits_and_small_at_them():
    lim = ActionLimits(max_saturation=0.5, max_jerk=1.0)
    smooth = np.linspace(-0.3, 0.3, 40)[:, None, None]                  # (T, n=1, act_dim=1)
    flip = np.tile([[[0.5]], [[-0.5]]], (20, 1, 1))                     # jerk 2, no saturation
    assert lim.factors(smooth)[0] == 1.0
    assert lim.factors(flip)[0] == pytest.approx((0.7 / 2.0) ** 4)
    at_limit = np.tile([[[0.25]], [[-0.25]]], (20, 1, 1))               # jerk 1.0 exactly
    assert lim.factors(at_limit)[0] < 0.8 * 0.92      # no confirmation floor survives the limit
    with pytest.raises(ValueError):
        ActionLimits(max_jerk=0.0)


def test_a_chattering_policy_loses_its_fitness_and_a_smooth_one_keeps_it(policies):
    spec, smooth, loud = policies
    ro = rollout("cartpole", spec, loud, 0, 200, DRIFT)
    assert ro.jerk > 1.0                                               # the gate would refuse it
    plain = PlantTask("cartpole", drifts=(DRIFT,), horizon=200, hidden=spec.hidden)
    aware = PlantTask("cartpole", drifts=(DRIFT,), horizon=200, hidden=spec.hidden, action_limits=ActionLimits())
    w = np.stack([smooth, loud])
    seeds = np.array([3, 3])
    raw, seen = plain.evaluate(w, seeds), aware.evaluate(w, seeds)
    assert seen[0] == raw[0]                                           # the champion: untouched
    assert seen[1] < 0.3 * raw[1]                                      # the chatter: a fraction
    assert seen[1] < seen[0]


def test_batched_fitness_with_limits_is_the_reference_bit_for_bit(policies):
    spec, smooth, loud = policies
    task = PlantTask("cartpole", drifts=(DRIFT, {}), horizon=60, hidden=spec.hidden, episodes=2,
                     action_limits=ActionLimits(max_jerk=0.5))
    w = np.stack([smooth, loud, 0.5 * smooth + 0.5 * loud])
    seeds = np.array([1, 2, 3])
    assert np.array_equal(task.evaluate(w, seeds), task.evaluate_reference(w, seeds))


def test_a_chattering_elite_cannot_confirm_the_target(policies, monkeypatch):
    """The job's confirmation with the gate's limits: the loud elite scores far below the episode
    floor; without them (the old job) it confirms what the gate then refuses. (The elite vector here
    IS the policy's flat weights: x100 does not fit the SR-GHN genome clamp.)"""
    import sim.adapt_job as aj
    from sim.drift_spec import DriftSpec
    from sim.evolution import ConfirmedTarget, GenerationLog
    monkeypatch.setattr(aj, "srghn_policy_weights", lambda vector, spec, model: np.asarray(vector, np.float32))
    champion = aj.nominal_champion("cartpole")
    spec, smooth, loud = policies
    horizon, specs = 200, [DriftSpec.parse(DRIFT)]
    plain = aj.confirmation("cartpole", specs, horizon, champion, champion.model)
    aware = aj.confirmation("cartpole", specs, horizon, champion, champion.model, action_limits=ActionLimits())
    raw = plain(loud, 5)
    target = 0.9 * float(np.mean(raw))
    log = GenerationLog(gen=0, best=horizon, mean=0, median=0, rate_mean=None, std_mean=None, diversity=0.0,
                        switch_on=False, wall_s=0.0)
    assert ConfirmedTarget(target, plain, min_return=0.8 * target)(log, loud) is True
    assert ConfirmedTarget(target, aware, min_return=0.8 * target)(log, loud) is False
    assert np.array_equal(aware(smooth, 5), plain(smooth, 5))      # a smooth elite: as before


def test_the_job_uses_the_suites_limits_and_reports_its_commands(monkeypatch):
    """The ant's profile ships a suite: the sandbox takes the gate's limits from it; the job's
    fitness (the task evolution runs on) and its confirmation both carry them, and result.json says
    what they were and how the candidate's commands measured against them."""
    import sim.adapt_job as aj
    seen = {}
    real_evolve, real_confirm = aj.evolve_srghn, aj.confirmation

    def evolve(task, *a, **k):
        seen["fitness"] = task.action_limits
        return real_evolve(task, *a, **k)

    def confirm(*a, **k):
        seen["confirm"] = k.get("action_limits")
        return real_confirm(*a, **k)
    monkeypatch.setattr(aj, "evolve_srghn", evolve)
    monkeypatch.setattr(aj, "confirmation", confirm)
    from safety.command_limits import gate_command_limits
    lim = gate_command_limits("launch/robots/ant.yaml")
    assert (lim["max_saturation"], lim["max_jerk"]) == (0.5, 1.0)
    job = aj.AdaptJob(robot="cartpole", drift=DRIFT, budget_s=1e6, max_generations=1, horizon=30,
                      telemetry_ticks=120, randomize=0, population=4, children=1, sysid_max_evals=40,
                      gate_limits={"max_saturation": 0.4, "max_jerk": 0.8})
    r, _ = aj.run_job(job, [aj.nominal_champion("cartpole")])
    assert r["action_limits"]["max_jerk"] == 0.8
    assert seen["fitness"] == seen["confirm"] == aj.gate_action_limits(job)
    assert (seen["fitness"].max_saturation, seen["fitness"].max_jerk) == (0.4, 0.8)
    assert set(r["candidate_commands"]) >= {"max_saturation", "max_jerk"}


def test_the_gates_sensor_noise_comes_from_the_shipped_suite():
    """The ant's suite stresses with obs_noise up to 0.01; a built-in name reads the suite its shipped
    profile names (the cart-pole's launch/regression_suite.yaml stresses with up to 0.01 too), as
    `driftgate gate` and the demo judge it."""
    from safety.command_limits import gate_command_limits
    from sim.adapt_job import with_obs_noise
    from sim.drift_spec import DriftSpec
    assert gate_command_limits("launch/robots/ant.yaml")["obs_noise"] == pytest.approx(0.01)
    assert gate_command_limits("cartpole")["obs_noise"] == pytest.approx(0.01)
    specs = [DriftSpec.parse(DRIFT), DriftSpec.parse({"obs_noise": 0.05})]
    assert [s.obs_noise for s in with_obs_noise(specs, 0.01)] == [0.01, 0.05]
    assert with_obs_noise(specs, 0.0) == specs


def test_the_job_evolves_and_confirms_under_the_gates_sensor_noise(monkeypatch):
    """A high-gain policy turns sensor noise into chatter, and the gate checks jerk under its stress
    noise: the job's fitness models (evolution and confirmation) carry that noise."""
    import sim.adapt_job as aj
    seen = {}
    real_evolve, real_confirm = aj.evolve_srghn, aj.confirmation

    def evolve(task, *a, **k):
        seen["fitness"] = [d.obs_noise for d in task.drifts]
        return real_evolve(task, *a, **k)

    def confirm(plant, specs, *a, **k):
        seen["confirm"] = [d.obs_noise for d in specs]
        return real_confirm(plant, specs, *a, **k)
    monkeypatch.setattr(aj, "evolve_srghn", evolve)
    monkeypatch.setattr(aj, "confirmation", confirm)
    job = aj.AdaptJob(robot="cartpole", drift=DRIFT, budget_s=1e6, max_generations=1, horizon=30,
                      telemetry_ticks=120, randomize=1, population=4, children=1, sysid_max_evals=40,
                      gate_limits={"obs_noise": 0.02})
    r, _ = aj.run_job(job, [aj.nominal_champion("cartpole")])
    assert seen["fitness"] == seen["confirm"] == [0.02, 0.02]
    assert all(m.get("obs_noise") == 0.02 for m in r["fitness_models"])


def test_the_node_and_the_cli_write_the_gates_limits_into_the_job(tmp_path):
    """sim never imports safety: the job's writers put the gate's limits into job.json, and a bad
    gate_limits entry is refused with its name."""
    import json
    from controller.jobs import AdaptationJob, write_sandbox_job
    from safety.command_limits import gate_command_limits
    from sim.job_contract import AdaptJob
    ant = "launch/robots/ant.yaml"
    (tmp_path / "j1").mkdir()
    job = AdaptationJob(job_id="j1", job_dir=tmp_path / "j1", robot=ant, seed=0, budgets={},
                        drift={"actuator_gain": {"joint:ankle_1": -1.0}})
    write_sandbox_job(job)
    written = json.loads((tmp_path / "j1" / "job.json").read_text())["gate_limits"]
    assert written == gate_command_limits(ant) and written["obs_noise"] == pytest.approx(0.01)
    with pytest.raises(ValueError, match="gate_limits.max_jerk"):
        AdaptJob(gate_limits={"max_jerk": -1})
    with pytest.raises(ValueError, match="gate_limits"):
        AdaptJob(gate_limits={"jerk": 1.0})


def test_sensor_noise_makes_a_high_gain_policy_chatter(policies):
    """Why the noise matters: the same policy, with and without the gate's 0.01 of sensor noise."""
    spec, smooth, loud = policies
    half = smooth.copy()
    (_, w_off, (n_out, n_in)), (_, b_off, _) = spec.offsets()[-2], spec.offsets()[-1]
    half[w_off:w_off + n_out * n_in] *= 5.0          # 5x the output gains: still balances
    quiet = rollout("cartpole", spec, half, 0, 200, DRIFT).jerk
    noisy = rollout("cartpole", spec, half, 0, 200, {**DRIFT, "obs_noise": 0.01}).jerk
    assert noisy > 3 * quiet
