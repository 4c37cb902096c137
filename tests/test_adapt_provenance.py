"""Issue 15: the adaptation stop rule (a target confirmed on >= 10 fresh episodes), the winner's
provenance in result.json (parent chain, lineage depth, best return per generation), and a missed
target being a failed job that offers nothing to the gate."""
import numpy as np
import pytest

from sim.evolution import CONFIRM_EPISODES, ConfirmedTarget, EvolutionConfig, GenerationLog, evolve_srghn
from sim.policy import PolicySpec
from sim.srghn import SRGHN

SPEC = PolicySpec(obs_dim=4, act_dim=2, hidden=(32,))


class Task:
    policy = SPEC


def log(gen: int, best: float) -> GenerationLog:
    return GenerationLog(gen=gen, best=best, mean=best, median=best, rate_mean=None, std_mean=None,
                         diversity=0.0, switch_on=False, wall_s=0.0)


def test_one_lucky_evaluation_does_not_stop_the_run():
    """The generation's best (one episode) passes the target, the elite's fresh episodes do not."""
    asked = []

    def confirm(elite, seed):
        asked.append(seed)
        return np.r_[100.0, np.full(CONFIRM_EPISODES - 1, 40.0)]    # one lucky episode among ten

    rule = ConfirmedTarget(90.0, confirm, seed=3)
    assert rule(log(0, 95.0), np.zeros(3)) is False
    assert rule.checks[-1]["episodes"] >= 10 and rule.checks[-1]["confirmed"] is False
    assert rule.confirmed is None
    assert rule(log(1, 50.0), np.zeros(3)) is False and len(asked) == 1   # below target: no confirmation run


def test_a_target_held_on_ten_fresh_episodes_stops_it_with_fresh_seeds_each_time():
    seeds = []

    def confirm(elite, seed):
        seeds.append(seed)
        return np.full(CONFIRM_EPISODES, 91.0 if len(seeds) > 1 else 80.0)

    rule = ConfirmedTarget(90.0, confirm, seed=0)
    assert rule(log(0, 95.0), np.zeros(3)) is False
    assert rule(log(1, 95.0), np.zeros(3)) is True
    assert len(set(seeds)) == 2                       # each confirmation on its own fresh episodes
    assert rule.confirmed == rule.checks[1] and rule.confirmed["gen"] == 1


def test_fewer_than_ten_episodes_can_never_confirm():
    rule = ConfirmedTarget(90.0, lambda elite, seed: np.full(3, 1000.0))
    with pytest.raises(ValueError, match=">= 10"):
        rule(log(0, 95.0), np.zeros(3))
    with pytest.raises(ValueError, match="min_episodes"):
        ConfirmedTarget(90.0, lambda e, s: np.zeros(10), min_episodes=1)


def test_nan_episode_does_not_confirm():
    rule = ConfirmedTarget(1.0, lambda elite, seed: np.r_[np.nan, np.full(CONFIRM_EPISODES, 5.0)])
    assert rule(log(0, 5.0), np.zeros(3)) is False


def test_fill_in_children_keep_their_parent_and_the_depth_counts_variation_steps():
    """One seed, P = 4: places 1..3 are children of the seed (parent 0, depth 1), not new roots."""
    m = SRGHN(SPEC)
    seed_genome = m.init_genomes(1, seed=9)[0].numpy()

    def parents_win(weights, seeds, generation):          # the initial population survives unchanged
        return np.r_[np.arange(4, 0, -1.0), np.full(len(weights) - 4, -1.0)]

    res = evolve_srghn(Task(), parents_win, 2, seed=0, config=EvolutionConfig(4, 1), initial=seed_genome[None])
    parent = {i: p for i, p, _ in res.lineage}
    assert [parent[i] for i in range(4)] == [None, 0, 0, 0]
    assert res.champion_id == 0 and res.lineage_depth() == 0 and res.parent_chain() == [0]
    assert res.lineage_depth(2) == 1 and res.parent_chain(2) == [2, 0]
    assert res.best_per_generation == [g.best for g in res.generations] and len(res.best_per_generation) == 2


def test_a_winning_child_reports_its_chain_back_to_a_root():
    def children_win(weights, seeds, generation):
        return np.r_[np.zeros(3), np.arange(1.0, len(weights) - 2)]     # the last child is best

    res = evolve_srghn(Task(), children_win, 3, seed=1, config=EvolutionConfig(3, 2),
                       initial=SRGHN(SPEC).init_genomes(1, seed=2).numpy())
    chain = res.parent_chain()
    parent = {i: p for i, p, _ in res.lineage}
    assert chain[0] == res.champion_id and parent[chain[-1]] is None and chain[-1] < 3
    assert all(parent[a] == b for a, b in zip(chain, chain[1:]))
    assert res.lineage_depth() == len(chain) - 1 >= 3        # three generations of children, maybe a fill-in


# -- the job: result.json and the failed target ----------------------------------------------------

DRIFT = {"mass_scale": {"pole_1": 3.0}, "actuator_gain": {"slide": -1.0}}
SMALL = dict(robot="cartpole", drift=DRIFT, budget_s=1e6, max_generations=2, horizon=40, sysid_budget_s=1e6,
             sysid_max_evals=60, telemetry_ticks=150, randomize=1, population=4, children=1)


@pytest.fixture(scope="module")
def champion():
    from sim.adapt_job import nominal_champion
    return nominal_champion("cartpole")


def test_result_records_the_winner_its_chain_and_the_best_per_generation(champion):
    from sim.adapt_job import AdaptJob, run_job
    r, candidate = run_job(AdaptJob(**SMALL), [champion])
    w = r["winner"]
    assert w["parent_chain"][0] == w["id"] and w["lineage_depth"] == len(w["parent_chain"]) - 1
    assert w["kind"] == ("seed" if w["lineage_depth"] == 0 else "evolved")
    assert w["root"] in ("champion", "model seed") or w["root"].startswith("ancestor")
    assert r["best_per_generation"] == [g["best"] for g in r["generations"]]
    for c in r["confirmations"]:
        assert c["episodes"] >= CONFIRM_EPISODES
    assert r["reached_target"] == any(c["confirmed"] for c in r["confirmations"])
    if r["status"] == "ok":
        assert r["reached_target"]


def test_a_missed_target_is_a_failed_job_with_no_candidate(tmp_path, champion):
    """target 5 x nominal cannot be met: the job fails, names the target, and the sandbox offers no
    candidate file, so nothing can reach the gate."""
    from sim.adapt_job import AdaptJob, run_job
    from sim.sandbox import SandboxLimits, run_sandbox, write_job
    r, _ = run_job(AdaptJob(**SMALL, target_fraction=5.0), [champion])
    assert r["status"] == "failed" and "target not reached" in r["error"]
    assert r["reached_target"] is False
    job_dir = write_job(tmp_path / "job", AdaptJob(**SMALL, target_fraction=5.0), [champion])
    outcome = run_sandbox(job_dir, SandboxLimits(wall_s=240))
    assert outcome.status == "failed" and "target not reached" in outcome.reason
    assert outcome.candidate_path is None and not (job_dir / "candidate.safetensors").exists()
