"""The sandbox evolves and confirms on the robots and starts the gate will judge (sim.stress,
sim.adapt_job.GateDraws, safety.command_limits).

Why: the walker's evolved candidates confirmed their target on the identified model and then fell
in 6-8 of the gate's 10 stress robots (the shared leg gain x [0.8, 1.2] of the estimate, each motor
a further x [0.95, 1.05]) and on its 0.05 rad hip-offset probe: evolution had met neither. The
suite's stress bounds and initial-offset probes now travel in job.json (gate_limits, written by the
job's writers from the suite: sim never imports safety), and a job with `stress_draws` /
`start_probes` draws fitness robots from that distribution, starts from those offsets, and confirms
on fresh draws where one fall fails the check."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sim.drift_spec import DriftSpec

LEGS = ("right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle")
HALF = {"actuator_gain": {k: 0.5 for k in LEGS}}


@pytest.fixture(scope="module")
def walker_limits():
    from safety.command_limits import gate_command_limits
    return gate_command_limits("walker")


@pytest.fixture(scope="module")
def walker():
    from sim.adapt_job import nominal_champion
    from sim.srghn_decode import genome_policy_weights
    champion = nominal_champion("walker")
    return champion, genome_policy_weights(champion).astype(np.float32)


def test_a_built_in_name_carries_its_shipped_suites_stress_and_probes(walker_limits):
    """`driftgate gate` and the demo judge `walker` with the suite its shipped profile names; the job's
    writer now reads the same suite (before: a built-in name read none, so the walker's jobs ran
    without the gate's sensor noise, stress robots or probes)."""
    from safety.suite import load_suite
    suite = load_suite("launch/robots/suites/walker.yaml")
    stress = suite.scenario("stress").stress
    assert walker_limits["obs_noise"] == pytest.approx(0.01)
    assert walker_limits["stress"] == [{"relative": True, "bounds": stress.to_dict()["bounds"]}]
    assert walker_limits["start_offsets"] == [{"right_hip": 0.05}]
    from sim.job_contract import AdaptJob
    AdaptJob(robot="walker", gate_limits=walker_limits)            # the contract accepts what is written


def test_the_job_contract_refuses_malformed_draws():
    from sim.job_contract import AdaptJob
    with pytest.raises(ValueError, match="gate_limits.stress"):
        AdaptJob(gate_limits={"stress": [{"bounds": {"actuator_gain": {"*": [1.2, 0.8]}}}]})
    with pytest.raises(ValueError, match="gate_limits.stress"):
        AdaptJob(gate_limits={"stress": {"bounds": {}}})
    with pytest.raises(ValueError, match="gate_limits.start_offsets"):
        AdaptJob(gate_limits={"start_offsets": [{"right_hip": "far"}]})
    with pytest.raises(ValueError, match="stress_draws"):
        AdaptJob(stress_draws=-1)


def test_the_gate_and_the_sandbox_draw_with_one_sampler(walker_limits):
    """The gate's stress robots ARE `sim.stress.sample_stress` draws (same function, the gate's seed),
    and the sandbox's draws come from the same distribution around the estimate, with seeds of
    its own: relative bounds multiply the estimate's shared gain."""
    from safety.suite import load_suite
    from sim.stress import bounds_from_dict, sample_stress, stress_draws
    estimate = DriftSpec.parse({"actuator_gain": {"*": 0.42}, "mass_scale": {"torso": 0.9}})
    suite = load_suite("launch/robots/suites/walker.yaml").with_target(estimate)
    sc = suite.scenario("stress")
    bounds = bounds_from_dict(walker_limits["stress"][0]["bounds"])
    for i in range(3):
        rng = np.random.default_rng(np.random.SeedSequence([sc.stress.seed, i]))
        assert sc.drift_for(i) == sample_stress(estimate, bounds, True, rng)
    draws = stress_draws(estimate, walker_limits["stress"], 40, seed=3)
    shared = np.array([d.as_dict()["actuator_gain"]["*"] for d in draws])
    each = np.array([[d.as_dict()["actuator_gain"][k] for k in LEGS] for d in draws])
    assert np.all((shared >= 0.8 * 0.42) & (shared <= 1.2 * 0.42)) and shared.std() > 0.02
    assert np.all((each >= 0.95) & (each <= 1.05))
    assert all(d.as_dict()["mass_scale"] == {"torso": 0.9} for d in draws)      # unbounded fields: the estimate's
    assert draws == stress_draws(estimate, walker_limits["stress"], 40, seed=3)   # seeded
    assert draws[0] != stress_draws(estimate, walker_limits["stress"], 1, seed=4)[0]
    assert draws[0] not in [sc.drift_for(i) for i in range(len(sc.seeds))]       # never the gate's own robots


def test_a_few_stress_robots_cover_the_weak_end_of_the_range(walker_limits):
    """Stratified draws: n robots put one shared gain in each n-th of the range, so 4 robots always
    include one within the weakest quarter (plain uniform draws missed it in 32 % of 4-robot sets: a
    walker candidate evolved and confirmed without the weak end fell there in the gate). Each motor's
    own factor is stratified too; every draw stays inside the suite's bounds."""
    from sim.stress import stress_draws
    estimate = DriftSpec.parse({"actuator_gain": {"*": 0.5}})
    for seed in range(20):
        draws = stress_draws(estimate, walker_limits["stress"], 4, seed)
        shared = sorted(d.as_dict()["actuator_gain"]["*"] / 0.5 for d in draws)
        for k, g in enumerate(shared):
            assert 0.8 + 0.1 * k <= g <= 0.8 + 0.1 * (k + 1)
        knees = sorted(d.as_dict()["actuator_gain"]["left_knee"] for d in draws)
        assert knees[0] <= 0.975 and knees[-1] >= 1.025
        assert all(0.0 <= d.obs_noise <= 0.01 for d in draws)


def test_a_displaced_start_is_the_gates_probe(walker):
    """PlantTask's start offsets do what the gate's initial_offset probe does: same state, same
    observation noise draw, so the same return as the gate's rollout of that seed."""
    from safety.episodes import probe_touch
    from safety.scenarios import Probe
    from sim.plant_task import PlantTask, _episode_seed, rollout
    champion, w = walker
    spec = champion.policy_spec
    drift = {"obs_noise": 0.01}
    probe = Probe("initial_offset", (("right_hip", 0.05),))
    for sign, index in ((1.0, 0), (-1.0, 1)):
        task = PlantTask("walker", drifts=(drift,), horizon=60, hidden=spec.hidden, starts=((("right_hip", 0.05 * sign),),))
        got = task.evaluate(w[None], np.array([11]))[0]
        seed = _episode_seed(11, 0, 0)
        gate = rollout("walker", spec, w, seed, 60, drift, touch=probe_touch(probe, index)).ret
        plain = rollout("walker", spec, w, seed, 60, drift).ret
        assert got == pytest.approx(gate, rel=1e-12, abs=1e-12)
        assert abs(got - plain) > 1e-6                     # the offset matters


def test_batched_starts_and_fall_share_are_the_reference_bit_for_bit(walker):
    from sim.plant_task import ActionLimits, PlantTask
    champion, w = walker
    rng = np.random.default_rng(0)
    weights = np.stack([w, w + 0.05 * rng.standard_normal(w.size).astype(np.float32), w * 1.3])
    task = PlantTask("walker", drifts=(HALF, {}, HALF), horizon=80, hidden=champion.policy_spec.hidden,
                     starts=((), (("right_hip", 0.1), ("left_knee", -0.05)), (("right_hip", -0.05),)),
                     fall_factor=0.5, action_limits=ActionLimits())
    seeds = np.array([1, 2, 3])
    assert np.array_equal(task.evaluate(weights, seeds), task.evaluate_reference(weights, seeds))
    with pytest.raises(ValueError, match="starts"):
        PlantTask("walker", drifts=(HALF, {}), starts=((),))


def test_a_fallen_episode_keeps_only_its_share(walker):
    """On the half-torque walker the champion falls; with fall_factor f its return is f x the plain one
    (stop_on_fall already pays nothing after the fall); on the nominal robot it stands: untouched."""
    from sim.plant_task import PlantTask
    champion, w = walker
    kw = dict(horizon=200, hidden=champion.policy_spec.hidden)
    seeds = np.array([5])
    fell = PlantTask("walker", drifts=(HALF,), **kw).evaluate(w[None], seeds)[0]
    assert PlantTask("walker", drifts=(HALF,), fall_factor=0.5, **kw).evaluate(w[None], seeds)[0] == \
        pytest.approx(0.5 * fell) and fell > 0
    assert PlantTask("walker", drifts=(HALF,), fall_factor=0.0, **kw).evaluate(w[None], seeds)[0] == 0.0
    stood = PlantTask("walker", drifts=({},), **kw).evaluate(w[None], seeds)[0]
    assert PlantTask("walker", drifts=({},), fall_factor=0.0, **kw).evaluate(w[None], seeds)[0] == stood


def test_confirmation_meets_fresh_stress_robots_and_probes_and_fails_on_one_fall(walker, walker_limits):
    """With gate draws the confirmation adds fresh stress robots (new ones per check seed) and both
    signed probe starts; a fall scores 0, so the champion on the half-torque robot (it falls) can
    never confirm, where the old confirmation's mean could hide a late fall."""
    import sim.adapt_job as aj
    from sim.evolution import CONFIRM_EPISODES
    from sim.job_contract import AdaptJob
    champion, w = walker
    job = AdaptJob(robot="walker", stress_draws=3, start_probes=True, gate_limits=walker_limits)
    draws = aj.GateDraws.of(job, DriftSpec.parse(HALF))
    assert draws.active and draws.n_stress == 3
    assert draws.starts == ((("right_hip", 0.05),), (("right_hip", -0.05),))
    specs = [DriftSpec.parse({"obs_noise": 0.01})]
    seen = []
    real = aj.PlantTask

    class Spy(real):
        def evaluate(self, weights, seeds, generation=0):
            seen.append((self.drifts[0], self.starts, self.fall_factor, len(weights)))
            return super().evaluate(weights, seeds, generation)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(aj, "PlantTask", Spy)
        mp.setattr(aj, "srghn_policy_weights", lambda v, spec, model: np.asarray(v, np.float32))
        confirm = aj.confirmation("walker", specs, 60, champion, champion.model, gate_draws=draws)
        out = confirm(w, 1)
        first = [d for d, st, f, n in seen[-aj.CONFIRM_STRESS:]]
        confirm(w, 2)
        second = [d for d, st, f, n in seen[-aj.CONFIRM_STRESS:]]
    assert out.size == CONFIRM_EPISODES + 2 * aj.PROBE_EPISODES + aj.CONFIRM_STRESS
    assert all(f == 0.0 for _, _, f, _ in seen)
    assert [st for _, st, _, _ in seen[1:3]] == [((("right_hip", 0.05),),), ((("right_hip", -0.05),),)]
    assert first != second                                   # fresh stress robots per check
    plain = aj.confirmation("walker", [DriftSpec.parse(HALF)], 200, champion, champion.model)
    robust = aj.confirmation("walker", [DriftSpec.parse(HALF)], 200, champion, champion.model, gate_draws=draws)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(aj, "srghn_policy_weights", lambda v, spec, model: np.asarray(v, np.float32))
        assert np.min(robust(w, 3)) == 0.0 and np.min(plain(w, 3)) > 0.0


def test_the_job_evolves_on_the_gates_draws_and_says_so(monkeypatch, walker_limits):
    """run_job with stress_draws / start_probes: the task evolution runs on holds the calibrated
    specs, then stress robots around the sysid estimate, then the estimate from both probe starts;
    result.json lists them; without the options the task is the old one (no starts, no fall share)."""
    import sim.adapt_job as aj
    seen = {}
    real_evolve = aj.evolve_srghn

    def evolve(task, *a, **k):
        seen["task"] = task
        return real_evolve(task, *a, **k)
    monkeypatch.setattr(aj, "evolve_srghn", evolve)
    champion = aj.nominal_champion("walker")
    common = dict(robot="walker", drift=HALF, budget_s=1e6, max_generations=1, horizon=20, telemetry_ticks=120,
                  randomize=0, population=2, children=1, sysid_max_evals=20, gate_limits=walker_limits)
    r, _ = aj.run_job(aj.AdaptJob(stress_draws=2, start_probes=True, **common), [champion])
    task = seen["task"]
    est = DriftSpec.parse(r["sysid"]["estimate"])
    assert len(task.drifts) == 1 + 2 + 2 and task.fall_factor == aj.FIT_FALL_FACTOR
    assert task.starts == ((), (), (), (("right_hip", 0.05),), (("right_hip", -0.05),))
    base = est.as_dict().get("actuator_gain", {}).get("*", 1.0)
    gains = [d.as_dict()["actuator_gain"]["*"] / base for d in task.drifts[1:3]]
    assert all(0.8 <= g <= 1.2 for g in gains)
    assert r["gate_draws"]["stress_draws"] == 2 and len(r["fitness_models"]) == 5
    assert r["fitness_starts"][3] == {"right_hip": 0.05}
    r0, _ = aj.run_job(aj.AdaptJob(**common), [champion])
    assert len(seen["task"].drifts) == 1 and seen["task"].starts == () and seen["task"].fall_factor == 1.0
    assert r0["gate_draws"] is None


def test_the_node_writes_the_suites_draws_into_the_job(tmp_path):
    """The live node's job writer (robot-neutral) puts the suite's stress bounds and probe offsets in
    job.json, and the demo's walker settings ask the sandbox to use them."""
    from controller.jobs import AdaptationJob, write_sandbox_job
    (tmp_path / "j").mkdir()
    job = AdaptationJob(job_id="j", job_dir=tmp_path / "j", robot="walker", seed=0,
                        budgets={"stress_draws": 4, "start_probes": True}, drift=HALF)
    write_sandbox_job(job)
    written = json.loads((tmp_path / "j" / "job.json").read_text())
    assert written["gate_limits"]["start_offsets"] == [{"right_hip": 0.05}]
    assert written["gate_limits"]["stress"][0]["relative"] is True
    assert (written["stress_draws"], written["start_probes"]) == (4, True)


def test_a_gate_draws_job_is_the_same_on_one_or_two_workers(walker_limits):
    """Fitness with stress robots, probe starts and the fall share is per individual: the same seed
    gives the same candidate on 1 and 2 worker processes (the walker's demo runs 2)."""
    import sim.adapt_job as aj
    champion = aj.nominal_champion("walker")
    common = dict(robot="walker", drift=HALF, budget_s=1e6, max_generations=2, horizon=25, telemetry_ticks=120,
                  randomize=0, population=3, children=1, sysid_max_evals=20, gate_limits=walker_limits,
                  stress_draws=2, start_probes=True)
    one, c1 = aj.run_job(aj.AdaptJob(workers=1, **common), [champion])
    two, c2 = aj.run_job(aj.AdaptJob(workers=2, **common), [champion])
    assert np.array_equal(c1.vector, c2.vector)
    assert one["best_per_generation"] == two["best_per_generation"]
