"""One adaptation job: make the simulator look like the drifted robot, then evolve there.

    telemetry window ──► system identification (replay, CMA-ES) ──► DriftSpec estimate ± std
                                                                         │
    champion + model seed + ancestors ──► SR-GHN population ──► evolve on the calibrated plants:
                                         the sysid ensemble (models the window cannot rule out),
                                         then draws inside the sysid std
                                                                         │
                                   candidate genome + lineage + curves ◄─┘

Stops on whichever comes first: wall seconds, generations, evaluations, or the target: when a
generation's best return on the calibrated plant reaches `target_fraction` of the champion's
nominal return, the elite must hold it on >= 10 fresh episodes (`sim.evolution.ConfirmedTarget`)
before the run stops. A job that never confirms its target is a failed job (status "failed", no
candidate): the gate is never asked to promote it. result.json says who won and how: the
winner's parent chain back to its root seed (champion, model seed, ancestor), its lineage depth
(variation steps since that seed), and the best return per generation. The model seed (sim/model_seed.py) is a linear design on the identified model
written into the champion's SR-GHN; a robot without a linear design gets the gain seed instead
(sim/gain_seed.py: the champion's commands divided by the identified motor gains, when any changed);
either competes in the population like any individual.

Fitness and confirmation see the gate's hard limits on the commands (job.json's `gate_limits`, written
by the job's writer from `safety.command_limits`: the robot's saturation and jerk limits with its
suite's overrides, and the suite's sensor noise; `sim.plant_task.ActionLimits`):
an episode whose commands come near them loses most of its return, so evolution does not breed, and
the stop rule cannot confirm, a candidate the gate must refuse (the ant's chattering 273 / 300).
With `stress_draws` / `start_probes` (the walker's demo) they also see the robots and starts the gate
will judge (`GateDraws`, `sim.stress`): robots drawn from the suite's stress distribution around the
estimate, the estimate started from the suite's initial-offset probes, and a fall costs half an
episode in fitness and fails the confirmation (the walker's candidates had confirmed on the estimate
and then fallen on 6-8 of the gate's 10 stress robots and on its hip-offset probe). Determinism: the same seed gives the same candidate on any backend and worker
count as long as the budgets that bind are counts (generations, evaluations, sysid evaluations);
a wall-clock budget that binds stops wherever the machine's speed puts it. The job never touches the robot: it runs inside the sandbox process
(sim/sandbox.py) and answers only through its result.

A robot whose profile names an `adapt_objective` (the cartpole: its balance reward sits at ~0.999 per
tick for the model seed, so nothing can beat the seed on it) evolves on that objective instead, with every
individual of a generation on the same episodes (`PlantTask.common_episodes`); the stop rule, the target
and the choice among confirmed elites stay on the gate's metric (each generation's elite is checked), the
adapt objective only breaking the gate's ties (`select_on_confirmation`). `seed_rate` starts the model
seed at a small mutation rate, so that its children refine it instead of falling.

When no telemetry window is given (the CLI, the benchmark), the window is generated from the
simulated robot carrying the job's true `drift`, driven by the champion, with sensor noise.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from sim.drift_spec import DriftSpec
from sim.evaluate import make_evaluator
from sim.evolution import CONFIRM_EPISODES, ConfirmedTarget, EvolutionConfig, GenerationLog, evolve_srghn
from sim.genome import Genome, load_genome
from sim.job_contract import AdaptJob  # noqa: F401 (the job contract; re-exported)
from sim.gain_seed import gain_seed
from sim.model_seed import model_seed
from sim.plant_task import ActionLimits, PlantTask, adapt_objective_source, plant_policy_spec
from sim.srghn import SRGHNConfig
from sim.srghn_decode import genome_policy_weights, srghn_policy_weights

ASSETS = Path(__file__).parent / "assets" / "champions"
EVAL_EPISODES = 5
NO_SCORE = 1e-6          # returns at or below this are "scores nothing" (rewards are >= 0)
# every confirming episode must reach this fraction of the target, not only their mean: the gate fails a
# candidate on any seed that breaks a hard limit, and a walker that falls in one episode of twelve still
# had a mean above the target (its fall costs less than the margin between 0.95 and 1.0 of nominal)
EPISODE_FLOOR = 0.8


# -- the nominal champion ----------------------------------------------------------------------

def train_nominal(plant: str, generations: int = 60, seed: int = 0, horizon: int = 300,
                  on_generation: Callable[[GenerationLog], None] | None = None, workers: int = 1,
                  start: str = "scratch") -> Genome:
    """A nominal champion for `plant` (sim/champion.py): from scratch by default here; `train-nominal`
    starts from the plant's model seed where it has one."""
    from sim.champion import train_nominal as train
    return train(plant, generations, seed, horizon, on_generation=on_generation, workers=workers, start=start)


def nominal_champion(plant: str) -> Genome:
    """The shipped nominal champion for `plant` (sim/assets/champions/<plant>.safetensors), or the
    one a robot profile names (assets.champion)."""
    path = ASSETS / f"{plant}.safetensors"
    if str(plant).endswith((".yaml", ".yml")):
        from sim.profile import load_profile
        named = load_profile(plant).asset_path("champion")
        if named is None:
            raise FileNotFoundError(f"profile {plant} names no assets.champion; create one with "
                                    f"`driftgate train-nominal --robot {plant} --out FILE`")
        path = named
    if not path.exists():
        raise FileNotFoundError(f"no shipped champion for plant {plant!r} at {path}; "
                                f"create one with `driftgate train-nominal --plant {plant}`")
    return load_genome(path)


# -- evaluation helpers --------------------------------------------------------------------------

def mean_return(plant: str, genome: Genome, drift: DriftSpec, horizon: int, seed: int,
                episodes: int = EVAL_EPISODES, objective: str | None = None) -> float:
    """Mean return of `genome`'s policy over `episodes` fixed-seed episodes on `plant` + `drift`
    (scored by profile `objective`'s adapt_objective when given, else the plant's reward)."""
    task = PlantTask(plant, drifts=(drift,), horizon=horizon, episodes=episodes, objective=objective)
    return float(task.evaluate(genome_policy_weights(genome)[None], np.array([seed]))[0])


def calibrated_specs(sysid, n: int, seed: int) -> list[DriftSpec]:
    """The `n + 1` models the job evolves on: the sysid ensemble first (the estimate and the
    parameter vectors that explain the window almost as well, `SysIdResult.ensemble`), then draws
    inside the sysid std while fewer. Why the ensemble: where the window cannot tell two robots
    apart (the walker's torso mass against its leg gains), fitness averaged over both keeps the
    candidate from betting on the one noise happened to favour."""
    specs = list(sysid.ensemble_specs())[:n + 1] if getattr(sysid, "ensemble", None) else [sysid.estimate]
    if len(specs) < n + 1:
        specs += randomised_specs(sysid, n + 1 - len(specs), seed)[1:]
    return specs


def randomised_specs(sysid, n: int, seed: int) -> list[DriftSpec]:
    """The estimate plus `n` specs drawn from N(estimate, std) per parameter (signs kept)."""
    from sim.sysid import spec_from_params
    rng = np.random.default_rng(seed)
    specs = [sysid.estimate]
    for _ in range(n):
        params = {}
        for name, value in sysid.params.items():
            draw = value + sysid.std.get(name, 0.0) * rng.standard_normal()
            params[name] = float(np.sign(value) * max(abs(draw), 0.05 * abs(value))) if value else float(draw)
        specs.append(spec_from_params(params))
    return specs


# -- the job -------------------------------------------------------------------------------------

def generate_telemetry(job: AdaptJob, champion: Genome):
    """A window from the simulated robot carrying the job's true drift, driven by the champion."""
    from sim.plants import make_plant
    from sim.policy import policy_act
    from sim.sysid import record
    plant = make_plant(job.robot, seed=job.seed, drift=job.drift)
    weights = genome_policy_weights(champion)[None]
    spec = champion.policy_spec
    return record(plant, lambda obs: policy_act(spec, weights, obs[None])[0], job.telemetry_ticks,
                  noise_std=job.telemetry_noise, seed=job.seed)


def run_job(job: AdaptJob, seeds: list[Genome], telemetry=None,
            progress: Callable[[str, dict], None] | None = None) -> tuple[dict, Genome]:
    """Run the whole job; returns (result dict for result.json, candidate genome)."""
    from sim.plants import make_plant
    from sim.sysid import identify
    t0 = time.perf_counter()
    say = progress or (lambda stage, info: None)
    if not seeds:
        raise ValueError("job: at least one seed genome (the champion) is required")
    champion = seeds[0]
    if champion.policy_spec != plant_policy_spec(job.robot, champion.policy_spec.hidden):
        raise ValueError(f"seed genome's policy {champion.policy_spec} does not drive plant {job.robot!r}")
    true_drift = DriftSpec.parse(job.drift) if job.drift is not None else None

    if telemetry is None:
        if true_drift is None:
            raise ValueError("job: without a telemetry window, job.drift (the simulated robot's drift) is required")
        telemetry = generate_telemetry(job, champion)
    say("sysid", {"ticks": telemetry.ticks})
    sysid = identify(make_plant(job.robot), telemetry, max_seconds=job.sysid_budget_s,
                     max_evals=job.sysid_max_evals, seed=job.seed, ensemble=1 + job.randomize)
    say("sysid done", {"estimate": sysid.estimate.as_dict(), "wall_s": sysid.wall_s,
                       "ensemble": len(sysid.ensemble)})

    # evolve and confirm under the sensor noise the gate's suite will apply (its jerk limit holds there)
    specs = with_obs_noise(calibrated_specs(sysid, job.randomize, job.seed), gate_obs_noise(job))
    start = {"start_cart_range": 0.6} if job.robot == "cartpole" else {}   # off-centre starts too
    limits = gate_action_limits(job)             # select on what the gate will check
    # ... and on the robots and starts it will check: the suite's stress draws and start probes
    gate_draws = GateDraws.of(job, sysid.estimate)
    drifts, starts = gate_draws.conditions(specs, job.stress_draws, job.seed)
    # the profile's adapt_objective, when it names one: evolution climbs it (on common episodes per
    # generation), while the stop rule, the target and the winner's selection stay on the gate's metric
    objective = adapt_objective_source(job.robot)
    task = PlantTask(job.robot, drifts=tuple(drifts), horizon=job.horizon, hidden=champion.policy_spec.hidden,
                     action_limits=limits, starts=tuple(starts), fall_factor=gate_draws.fall_factor,
                     objective=objective, common_episodes=None if objective is None else job.seed, **start)
    model_cfg = SRGHNConfig(**(champion.model or {}))
    nominal_return = mean_return(job.robot, champion, DriftSpec(), job.horizon, job.seed)
    target = job.target_fraction * nominal_return
    evaluations = 0

    confirm = confirmation(job.robot, specs, job.horizon, champion, model_cfg.to_dict(), action_limits=limits,
                           gate_draws=gate_draws)
    stop_on_target = ConfirmedTarget(target, confirm, seed=job.seed, min_return=EPISODE_FLOOR * target,
                                     trigger=None if objective is None else float("-inf"))
    confirmed_elites: dict[int, np.ndarray] = {}     # id -> genome of every elite that confirmed the target
    ran = 0

    def should_stop(log: GenerationLog, elite: np.ndarray) -> bool:
        nonlocal evaluations, ran
        evaluations += job.population * (1 + job.children)
        ran += 1
        say("generation", {"gen": log.gen, "best": log.best, "rate": log.rate_mean, "target": target,
                           "elite": log.elite_id})
        reached = stop_on_target(log, elite)     # >= 10 fresh episodes, never one lucky evaluation
        if stop_on_target.checks and stop_on_target.checks[-1]["gen"] == log.gen:
            say("confirm", {**stop_on_target.checks[-1], "target": target})
        if reached and log.elite_id is not None:
            confirmed_elites.setdefault(int(log.elite_id), np.array(elite, copy=True))
        # min_generations: a confirmed target no longer ends the run before that many generations, so
        # evolution gets a chance to beat a seed that already meets the target (the cartpole's model seed)
        if (reached or confirmed_elites) and ran >= job.min_generations:
            return True
        if time.perf_counter() - t0 > job.budget_s:
            return True
        return job.max_evaluations is not None and evaluations >= job.max_evaluations

    pool = [g for g in seeds if g.kind == "srghn" and g.vector.size == champion.vector.size]
    seeded = model_seed(champion, job.robot, sysid.estimate) if job.model_seed and pool else None
    if seeded is None and job.model_seed and pool:
        # no linear design (a profile robot): the champion with its commands divided by the identified
        # motor gains, when identification found any changed (sim/gain_seed.py)
        seeded = gain_seed(champion, job.robot, sysid.estimate)
    if seeded is not None and job.seed_rate > 0:   # refine the seed: small steps around it
        seeded = with_rate(seeded, champion.policy_spec, model_cfg, job.seed_rate)
    if seeded is not None:
        pool.insert(1, seeded)
        say("model seed", {"source": seeded.fitness["source"]})
    initial = np.stack([g.vector for g in pool])
    roots = ["champion"] + (["model seed"] if seeded is not None else []) + \
        [f"ancestor {g.id}" for g in pool[1 + (seeded is not None):]]
    labels = {"requester": job.requester, "job_id": job.job_id, "seed": job.seed}
    with make_evaluator(task, workers=job.workers, backend=job.backend, address=job.ray_address,
                        metadata={k: v for k, v in labels.items() if v != ""}) as evaluator:
        res = evolve_srghn(task, evaluator, job.max_generations, job.seed,
                           EvolutionConfig(job.population, job.children, job.cf), model_cfg,
                           initial=initial, should_stop=should_stop)
        evaluation = {"backend": job.backend, "workers": job.workers,
                      "ray_address": getattr(evaluator, "address", None),
                      "ray_task_overhead_s": getattr(evaluator, "overhead_s", None),
                      "ray_chunks_per_generation": sorted(set(getattr(evaluator, "chunk_log", []))) or None}
    selection = None
    if job.min_generations > 0 and confirmed_elites:
        by_objective = None if objective is None else confirmation(
            job.robot, specs, job.horizon, champion, model_cfg.to_dict(), action_limits=limits,
            gate_draws=gate_draws, objective=objective)
        selection = select_on_confirmation(confirmed_elites, confirm, job.horizon, job.seed, by_objective)
        chosen = selection["chosen"]
        res.champion, res.champion_id = confirmed_elites[chosen], chosen
        res.champion_fitness = selection["scores"][0]["return"]
    candidate = Genome(vector=res.champion, policy_spec=champion.policy_spec, kind="srghn", model=model_cfg.to_dict(),
                       parent_id=champion.id, generation=champion.generation + len(res.generations),
                       drift_hash=sysid.estimate.hash,
                       fitness={"calibrated_return": res.champion_fitness, "horizon": job.horizon})
    judge = true_drift if true_drift is not None else sysid.estimate
    result = {
        "status": "ok",
        "robot": job.robot,
        "drift": true_drift.as_dict() if true_drift is not None else None,
        "sysid": {**sysid.to_dict(), "error": _sysid_error(sysid.params, true_drift)},
        "fitness_models": [s.as_dict() for s in drifts],    # what fitness averaged over (ensemble first)
        "fitness_starts": [dict(st) for st in starts] if starts else None,   # per model: start offsets
        "gate_draws": gate_draws.describe(job.stress_draws),
        # the gate's command limits the fitness and the confirmation saw
        "action_limits": {"max_saturation": limits.max_saturation, "max_jerk": limits.max_jerk,
                          "soft": limits.soft, "power": limits.power},
        "candidate_commands": command_quality(job.robot, candidate, judge, job.horizon, job.seed + 1),
        "candidate_id": candidate.id,
        "parent_id": champion.id,
        "model_seed": None if seeded is None else {
            "source": seeded.fitness["source"],
            "return": mean_return(job.robot, seeded, judge, job.horizon, job.seed + 1),
            "is_candidate": bool(np.array_equal(seeded.vector, res.champion))},
        "return_before": mean_return(job.robot, champion, judge, job.horizon, job.seed + 1),
        "return_after": mean_return(job.robot, candidate, judge, job.horizon, job.seed + 1),
        "nominal_return": nominal_return,
        "fitness_objective": None if objective is None else {    # what evolution climbed (not the gate's metric)
            "source": objective, "common_episodes": True,
            "nominal_return": mean_return(job.robot, champion, DriftSpec(), job.horizon, job.seed, objective=objective),
            "return_after": mean_return(job.robot, candidate, judge, job.horizon, job.seed + 1, objective=objective),
            "model_seed_return": None if seeded is None else
            mean_return(job.robot, seeded, judge, job.horizon, job.seed + 1, objective=objective)},
        "judged_on": "true drift" if true_drift is not None else "sysid estimate",
        "generations": [{"gen": g.gen, "best": g.best, "mean": g.mean, "rate_mean": g.rate_mean}
                        for g in res.generations],
        "evaluations": res.evaluations * len(drifts),
        "target_return": target,
        "best_per_generation": res.best_per_generation,
        "winner": winner_provenance(res, roots),
        "confirmations": stop_on_target.checks,
        "selection": selection,
        "reached_target": stop_on_target.confirmed is not None,
        "wall_s": time.perf_counter() - t0,
        "evaluation": evaluation,
        "job": job.to_dict(),
    }
    why = no_score(result["return_before"], result["return_after"])
    if not why and not result["reached_target"]:
        # an adaptation that misses its target is a failed job: nothing is offered to the gate
        best = max((c["score"] for c in stop_on_target.checks), default=None)
        why = (f"target not reached: {target:.1f} (= {job.target_fraction:g} x nominal {nominal_return:.1f}) "
               f"was not confirmed on >= {stop_on_target.min_episodes} fresh episodes in "
               f"{len(res.generations)} generations (best confirmation "
               f"{'none' if best is None else f'{best:.1f}'}; best single evaluation "
               f"{max(res.best_per_generation):.1f})")
    if why:
        # a robot on which neither the champion nor the candidate scores anything (a drift outside
        # what the simulator can represent, a diverging model) is not an adaptation: nothing is offered
        result["status"], result["error"] = "failed", why
    return result, candidate


def with_rate(genome: Genome, spec, model_cfg: SRGHNConfig, rate: float) -> Genome:
    """`genome` with its SR-GHN's mean mutation rate set to `rate` (`SRGHN.set_mean_rate`); the policy it
    writes is unchanged. Why: the shipped rate (~0.5) makes nearly every child of a good seed fall."""
    import dataclasses
    import torch
    from sim.srghn import SRGHN
    v = torch.as_tensor(np.array(genome.vector, dtype=np.float32)[None])
    SRGHN(spec, model_cfg).set_mean_rate(v, rate)
    return dataclasses.replace(genome, vector=v[0].numpy(),
                               fitness={**(genome.fitness or {}), "seed_rate": float(rate)})


def gate_action_limits(job: AdaptJob) -> ActionLimits:
    """The gate's limits on the commands, as the job's writer put them in job.json
    (`safety.command_limits.gate_command_limits`); `ActionLimits`' defaults (the gate's own) without."""
    g = job.gate_limits or {}
    base = ActionLimits()
    return ActionLimits(max_saturation=float(g.get("max_saturation", base.max_saturation)),
                        max_jerk=float(g.get("max_jerk", base.max_jerk)))


def gate_obs_noise(job: AdaptJob) -> float:
    """The largest observation noise the gate's suite puts on the robot (job.json's gate_limits), 0
    without. Why: the jerk limit is checked under that noise, and a policy with high feedback gains
    turns 0.01 of sensor noise into chatter (the ant's first gate-aware candidate: jerk 0.18 without
    noise, 1.75 in the stress scenario)."""
    return float((job.gate_limits or {}).get("obs_noise", 0.0))


def with_obs_noise(specs: list[DriftSpec], noise: float) -> list[DriftSpec]:
    """`specs` with at least `noise` observation noise each (the gate's, `gate_obs_noise`)."""
    if noise <= 0:
        return list(specs)
    return [DriftSpec.parse({**s.as_dict(), "obs_noise": max(float(s.obs_noise), noise)}) for s in specs]


def command_quality(plant: str, genome: Genome, drift: DriftSpec, horizon: int, seed: int,
                    episodes: int = 3) -> dict:
    """The worst saturation and jerk of `genome`'s commands over `episodes` rollouts (the gate's measures)."""
    from sim.plant_task import rollout
    weights = genome_policy_weights(genome)
    outs = [rollout(plant, genome.policy_spec, weights, seed + k, horizon, drift) for k in range(episodes)]
    return {"max_saturation": max(o.saturation for o in outs), "max_jerk": max(o.jerk for o in outs),
            "episodes": episodes}


def confirmation(plant: str, specs: list[DriftSpec], horizon: int, champion: Genome, model: dict,
                 episodes: int = CONFIRM_EPISODES,
                 action_limits: ActionLimits | None = None,
                 gate_draws: "GateDraws | None" = None,
                 objective: str | None = None) -> Callable[[np.ndarray, int], np.ndarray]:
    """confirm(elite, seed): the elite SR-GHN's return on each of >= `episodes` fresh episodes,
    spread over every calibrated spec (the estimate and its randomised neighbours). With
    `action_limits` each episode's return carries its command-limit factor: an elite whose commands
    near the gate's jerk / saturation limits cannot confirm (its episodes fall below the floor).
    With `gate_draws` (the job's stress_draws / start_probes) the elite also plays `CONFIRM_STRESS`
    (or stress_draws, if more) FRESH robots from the suite's stress distribution (stratified, drawn
    from the check's seed, never the fitness's draws) and `PROBE_EPISODES` episodes from each
    signed start probe, and an episode in which the robot falls scores 0: the gate fails a
    candidate on one fall in any of its scenarios.
    `objective`: score the same episodes on that profile's adapt_objective instead (selection's tie-break)."""
    per_spec = -(-int(episodes) // len(specs))
    kw = dict(horizon=horizon, hidden=champion.policy_spec.hidden, action_limits=action_limits, objective=objective,
              **({"start_cart_range": 0.6} if plant == "cartpole" else {}))
    robust = gate_draws is not None and gate_draws.active
    if robust:
        kw["fall_factor"] = 0.0
    tasks = [(PlantTask(plant, drifts=(s,), **kw), per_spec) for s in specs]
    if robust:
        tasks += [(PlantTask(plant, drifts=(gate_draws.probe_spec,), starts=(st,), **kw), PROBE_EPISODES)
                  for st in gate_draws.starts]

    def confirm(elite: np.ndarray, seed: int) -> np.ndarray:
        weights = srghn_policy_weights(elite, champion.policy_spec, model)
        rng = np.random.default_rng([int(seed), 7919])
        out = [t.evaluate(np.repeat(weights[None], k, axis=0), rng.integers(0, 2**31 - 1, size=k))
               for t, k in tasks]
        if robust and gate_draws.n_stress:
            fresh = gate_draws.stress(gate_draws.n_confirm, int(rng.integers(0, 2**31 - 1)))
            out += [PlantTask(plant, drifts=(d,), **kw).evaluate(weights[None], rng.integers(0, 2**31 - 1, size=1))
                    for d in fresh]
        return np.concatenate(out)
    return confirm


PROBE_EPISODES = 5       # confirmation episodes per signed start probe: as many as the gate's (10 seeds, sign
                         # alternating); with 2, a walker candidate confirmed and then fell on 1 of the gate's 10
                         # hip-offset starts (demo 18:05 UTC, job 2)
CONFIRM_STRESS = 10      # fresh stress robots per confirmation, at least: as many as the gate's stress scenario
                         # (with 4, a walker candidate that falls below 0.92 x the estimated gain confirmed
                         # and then fell on 5 of the gate's 10: demo 18:05 UTC)
FIT_FALL_FACTOR = 0.5    # with gate draws, a fitness episode in which the robot fell keeps half its return


@dataclass(frozen=True)
class GateDraws:
    """The suite's stress distribution and start probes around the estimate, as the job's fitness and
    confirmation draw them (`sim.stress`; job.json's gate_limits.stress / start_offsets, written by
    `safety.command_limits`). Why: the walker's evolved candidates confirmed on the estimate and
    then fell in 6-8 of the gate's 10 stress robots (shared leg gain x [0.8, 1.2] of the estimate,
    each motor a further x [0.95, 1.05]) and on its 0.05 rad hip-offset probe: evolution had never
    met either. Inactive (no change to the job) unless the job asks for stress_draws / start_probes."""

    estimate: DriftSpec
    stresses: tuple = ()           # the suite's stress scenarios: ({"relative", "bounds"}, ...)
    starts: tuple = ()             # signed start offsets: (((joint, offset), ...), ...)
    n_stress: int = 0              # fitness's stress robots (fixed for the run)
    probe_spec: DriftSpec = DriftSpec()   # the estimate under the gate's sensor noise (where probes start)

    @classmethod
    def of(cls, job: AdaptJob, estimate: DriftSpec) -> "GateDraws":
        from sim.stress import signed_offsets
        g = job.gate_limits or {}
        stresses = tuple(g.get("stress", ())) if job.stress_draws > 0 else ()
        starts = tuple(signed_offsets(g.get("start_offsets", ()))) if job.start_probes else ()
        return cls(estimate=estimate, stresses=stresses, starts=starts,
                   n_stress=int(job.stress_draws) if stresses else 0,
                   probe_spec=with_obs_noise([estimate], gate_obs_noise(job))[0])

    @property
    def n_confirm(self) -> int:
        """Fresh stress robots per confirmation."""
        return max(self.n_stress, CONFIRM_STRESS) if self.n_stress else 0

    @property
    def active(self) -> bool:
        return bool(self.n_stress or self.starts)

    @property
    def fall_factor(self) -> float:
        return FIT_FALL_FACTOR if self.active else 1.0

    def stress(self, n: int, seed: int) -> list[DriftSpec]:
        from sim.stress import stress_draws
        return stress_draws(self.estimate, self.stresses, n, seed)

    def conditions(self, specs: list[DriftSpec], n: int, seed: int) -> tuple[list[DriftSpec], list]:
        """Fitness's (drifts, starts): the calibrated specs, then `n` stress robots (fixed for the run),
        then the estimate from each signed start probe; starts is [] when nothing is displaced."""
        if not self.active:
            return list(specs), []
        drifts = list(specs) + self.stress(self.n_stress, seed) + [self.probe_spec] * len(self.starts)
        starts = [()] * (len(drifts) - len(self.starts)) + list(self.starts)
        return drifts, (starts if self.starts else [])

    def describe(self, n: int) -> dict | None:
        if not self.active:
            return None
        return {"stress": list(self.stresses), "stress_draws": self.n_stress, "confirm_stress": self.n_confirm,
                "start_offsets": [dict(st) for st in self.starts], "fit_fall_factor": FIT_FALL_FACTOR,
                "confirm_probe_episodes": PROBE_EPISODES}


GATE_TIE = 5e-4   # reward per tick: elites closer than this on the gate's metric are its ties (its margins are 0.02+)


def select_on_confirmation(elites: dict[int, np.ndarray], confirm: Callable[[np.ndarray, int], np.ndarray],
                           horizon: int, seed: int,
                           by_objective: Callable[[np.ndarray, int], np.ndarray] | None = None) -> dict:
    """The winner among the confirmed elites (min_generations > 0): the best mean reward per tick on
    the confirmation episodes, ALL of them scored on the SAME fresh episodes (one seed), so the ranking
    compares policies, not episode luck. The elite a run with min_generations = 0 would have returned
    (the first confirmed: the model seed on the cartpole) is in the pool and wins ties (first found),
    so evolving longer can never give a worse winner on this metric than stopping at once: a seed is
    kept when evolution does not beat it. With `by_objective` (the job evolved on an adapt_objective, scored
    on the same episodes): the elites within GATE_TIE per tick of the best on the gate's metric are ties to
    the gate, and the best of them on the adapt objective wins (a metric that saturates near 1 per tick
    cannot rank regulators; the one evolution climbed can)."""
    common = int(seed) + 104729                       # apart from the per-generation check seeds
    scores = []
    for i, genome in elites.items():                  # insertion order: the first confirmed first
        returns = np.asarray(confirm(genome, common), dtype=np.float64)
        ret = float(np.mean(returns)) if np.all(np.isfinite(returns)) else float("-inf")
        scores.append({"id": int(i), "return": ret, "reward_per_tick": ret / horizon, "episodes": int(returns.size)})
        if by_objective is not None:
            obj = np.asarray(by_objective(genome, common), dtype=np.float64)
            scores[-1]["objective_per_tick"] = float(np.mean(obj)) / horizon if np.all(np.isfinite(obj)) else float("-inf")
    order = sorted(range(len(scores)), key=lambda k: (-scores[k]["reward_per_tick"], k))
    metric = "mean reward per tick on the confirmation episodes (calibrated plant, common seed)"
    if by_objective is not None:
        best = scores[order[0]]["reward_per_tick"]
        ties = [k for k in order if scores[k]["reward_per_tick"] >= best - GATE_TIE]
        rest = [k for k in order if k not in ties]
        order = sorted(ties, key=lambda k: (-scores[k]["objective_per_tick"], k)) + rest
        metric += f"; within {GATE_TIE:g} of the best, the adapt objective per tick"
    ranked = [scores[k] for k in order]
    return {"metric": metric, "chosen": ranked[0]["id"], "first_confirmed": scores[0]["id"], "scores": ranked}


def winner_provenance(res, roots: list[str]) -> dict:
    """Which individual won and how it got there: its parent chain back to its root seed (the
    champion, the model seed or an ancestor), and its lineage depth (variation steps since it)."""
    chain = res.parent_chain()
    root = chain[-1]
    depth = res.lineage_depth()
    return {"id": int(res.champion_id), "parent_chain": [int(i) for i in chain],
            "root": roots[root] if root < len(roots) else f"initial {root}",
            "lineage_depth": int(depth), "kind": "evolved" if depth > 0 else "seed"}


def no_score(before: float, after: float) -> str | None:
    """The reason an adaptation failed when neither policy scores on the drifted robot, else None
    (returns are sums of rewards >= 0; NaN counts as nothing)."""
    if any(x > NO_SCORE for x in (before, after)):
        return None
    return f"the drifted robot scores nothing: return {before:g} before adaptation and {after:g} after"


def _sysid_error(params: dict[str, float], truth: DriftSpec | None) -> dict[str, float] | None:
    """Estimate minus truth per identified parameter ("mass_scale.pole_1": 3.1 - 3.0); a parameter
    the true spec leaves alone has the nominal value 1.0."""
    if truth is None:
        return None
    tables = truth.as_dict()
    errors = {}
    for name, value in params.items():
        table, key = name.split(".", 1)
        true_value = tables.get(table, {}).get(key, 1.0)
        errors[name] = float(value - true_value)
    return errors
