"""The SR-GHN mechanism flags of issue 17 (each an ablation arm of benchmarks/science/): behaviour, not plumbing."""
import numpy as np
import pytest
import torch

from sim.evolution import EvolutionConfig, evolve_srghn, truncation
from sim.policy import PolicySpec
from sim.runner import RunConfig, model_config
from sim.srghn import SRGHN, SRGHNConfig, shipped_config
from sim.tasks import make_task

SPEC = PolicySpec(obs_dim=4, act_dim=2, hidden=(32,))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _near_zero_rate(m: SRGHN, genomes: torch.Tensor) -> torch.Tensor:
    """Force every node's evolved rate to ~0 (sigmoid(-20)) through the rate head itself."""
    g = genomes.clone()
    m.view(g, "rate.weight").zero_()
    m.view(g, "rate.bias").fill_(-20.0)
    return g


def test_meta_rate_moves_the_rate_head_even_when_the_rate_is_zero():
    off = SRGHN(SPEC, SRGHNConfig(noise_std=0.0))
    on = SRGHN(SPEC, SRGHNConfig(noise_std=0.0, meta_rate=0.3))
    parents = _near_zero_rate(off, off.init_genomes(3, seed=0))
    assert off.variation(parents)[1].max() < 1e-8
    rep = parents.repeat_interleave(4, 0)
    kids_off, _ = off.children(parents, 4, gen(1))
    kids_on, _ = on.children(parents, 4, gen(1))
    # without a meta-rate the rate head is stuck: its update is scaled by its own ~0 rate
    assert (off.view(kids_off, "rate.bias") - off.view(rep, "rate.bias")).abs().max() < 1e-6
    # with one it moves by ~N(0, 0.3), and so does the rate the children write
    step = (on.view(kids_on, "rate.bias") - on.view(rep, "rate.bias")).abs()
    assert step.max() > 0.05
    assert (on.view(kids_on, "rate.weight") - on.view(rep, "rate.weight")).abs().max() > 0.05
    assert not torch.equal(on.variation(kids_on)[1], on.variation(rep)[1])
    # every other tensor is still scaled by the (zero) rate
    assert (on.view(kids_on, "det_head.weight") - on.view(rep, "det_head.weight")).abs().max() < 1e-6


def test_meta_rate_lets_a_low_rate_climb_under_selection_for_variation():
    """Selection that rewards large mutations: the evolved rate rises from ~0 only with a meta-rate."""
    class RewardsChange:
        policy = SPEC
        episodes = 1
        schedule = make_task("cartpole-switch", schedule="").schedule

        def __init__(self):
            self.ref = None

        def evaluate(self, weights, seeds, generation):
            if self.ref is None:
                self.ref = weights[0].copy()
            return np.abs(weights - self.ref).sum(axis=1)   # further from the start = fitter

    for meta, expect_rise in ((0.0, False), (0.3, True)):
        m = SRGHN(SPEC, SRGHNConfig(meta_rate=meta))
        init = m.init_genomes(10, seed=0)
        m.view(init, "rate.weight").zero_()
        m.view(init, "rate.bias").fill_(-6.0)                 # rate 0.0025 everywhere
        task = RewardsChange()
        res = evolve_srghn(task, task.evaluate, 60, seed=0, model_config=m.config, initial=init.numpy())
        rates = [g.rate_mean for g in res.generations]
        assert rates[0] == pytest.approx(0.0025, rel=0.02)
        if expect_rise:
            assert rates[-1] > 0.1, rates[-5:]                # measured: ~0.9
        else:
            assert rates[-1] < 0.003, rates[-5:]              # stuck: the head moves at its own tiny rate


def test_rate_floor_holds_for_every_node():
    m = SRGHN(SPEC, SRGHNConfig(rate_floor=0.1))
    g = _near_zero_rate(m, m.init_genomes(4, seed=2))
    _, rate = m.variation(g)
    assert torch.all(rate >= 0.1 - 1e-7) and torch.all(rate <= 0.1 + 1e-7)
    _, high = m.variation(m.init_genomes(4, seed=2))
    assert high.max() > 0.1                            # a floor, not a constant
    _, free = SRGHN(SPEC, SRGHNConfig()).variation(g)
    assert free.max() < 1e-6
    with pytest.raises(ValueError, match="rate_floor"):
        SRGHNConfig(rate_floor=1.0)


def test_init_rate_sets_the_initial_mean_rate():
    for r0 in (0.02, 0.5, 0.9):
        m = SRGHN(SPEC, SRGHNConfig(init_rate=r0))
        _, rate = m.variation(m.init_genomes(5, seed=0))
        logit = torch.log(rate / (1 - rate)).mean(dim=1)
        assert torch.allclose(logit, torch.full_like(logit, float(np.log(r0 / (1 - r0)))), atol=1e-3)


@pytest.mark.parametrize("rule,expect", [("children", [4, 3, 2]), ("parents", [0, 1, 2])])
def test_ties_go_where_configured(rule, expect):
    scores = np.array([5.0, 5.0, 5.0, 5.0, 5.0, 1.0])
    assert truncation(scores, 3, rule).tolist() == expect
    # a strictly better score always wins, whatever the rule
    assert truncation(np.array([1.0, 9.0, 1.0]), 1, rule).tolist() == [1]


def test_random_ties_are_seeded_and_mix_parents_and_children():
    scores = np.zeros(30)
    picks = [tuple(truncation(scores, 10, "random", np.random.default_rng(s)).tolist()) for s in range(20)]
    assert len(set(picks)) > 1
    assert truncation(scores, 10, "random", np.random.default_rng(3)).tolist() == list(picks[3])
    kept = np.concatenate(picks)
    assert (kept < 10).any() and (kept >= 10).any()


class Flat:
    """Every individual scores the same: selection is all ties."""
    policy = SPEC
    episodes = 1
    schedule = make_task("cartpole-switch", schedule="").schedule

    def evaluate(self, weights, seeds, generation):
        return np.zeros(len(weights))


@pytest.mark.parametrize("rule,parents_survive", [("parents", True), ("children", False)])
def test_tie_break_in_the_loop(rule, parents_survive):
    res = evolve_srghn(Flat(), Flat().evaluate, 3, seed=0, config=EvolutionConfig(5, 2, tie_break=rule))
    assert (sorted(res.population_ids) == list(range(5))) == parents_survive


def test_selection_on_the_mean_of_reevaluations_discounts_one_lucky_evaluation():
    """A parent that scored 100 once and 0 since loses to a steady 10 under "mean", not under "last"."""
    class Scripted:
        policy = SPEC
        episodes = 1
        schedule = make_task("cartpole-switch", schedule="").schedule

        def __init__(self):
            self.who = None

        def evaluate(self, weights, seeds, generation):
            if self.who is None:                  # the two founders, by their policy weights
                self.who = [weights[0].tobytes(), weights[1].tobytes()]
            f = np.full(len(weights), -1.0)       # children always bad: the founders stay
            for i, w in enumerate(weights):
                if w.tobytes() == self.who[0]:
                    f[i] = 100.0 if generation == 0 else 0.0
                elif w.tobytes() == self.who[1]:
                    f[i] = 10.0
            return f

    def ranking(selection):
        task = Scripted()
        res = evolve_srghn(task, task.evaluate, 3, seed=0,
                           config=EvolutionConfig(2, 1, selection_fitness=selection, fitness_window=4))
        return res.population_ids

    assert ranking("last") == [1, 0]        # 10 > 0 this generation
    assert ranking("mean") == [0, 1]        # mean(100, 0, 0) = 33 > 10


def test_frozen_head_is_not_no_self_reference_and_fixed_rate_freezes_std():
    task = make_task("cartpole-switch")
    heads = ("log_std.weight", "rate.weight", "rate.bias")
    machinery = ("embed_self", "gnn_self.msg.weight", "trunk.0.weight")
    for method, frozen, moving in (("frozen-head", heads, machinery + ("det_head.weight",)),
                                   ("no-self-reference", heads + machinery, ("det_head.weight",)),
                                   ("fixed-rate", heads + machinery, ("det_head.weight",)),
                                   ("fixed-rate-std", (), heads[:1] + machinery)):
        m = SRGHN(task.policy, model_config(RunConfig(method=method, rate=0.3), task))
        parents = m.init_genomes(2, seed=0)
        kids, _ = m.children(parents, 2, gen(0))
        rep = parents.repeat_interleave(2, 0)
        for name in frozen:
            assert torch.equal(m.view(kids, name), m.view(rep, name)), (method, name)
        for name in moving:
            assert not torch.equal(m.view(kids, name), m.view(rep, name)), (method, name)
    # fixed-rate: the whole mutation distribution is inherited unchanged, std included
    m = SRGHN(task.policy, model_config(RunConfig(method="fixed-rate", rate=0.3), task))
    parents = m.init_genomes(2, seed=0)
    kids, _ = m.children(parents, 1, gen(0))
    assert torch.equal(m.variation(kids)[0], m.variation(parents)[0])
    assert torch.all(m.variation(kids)[1] == 0.3)


def test_bad_mechanism_settings_name_the_field():
    for kw, field in ((dict(tie_break="oldest"), "tie_break"), (dict(selection_fitness="max"), "selection_fitness"),
                      (dict(meta_rate=-1.0), "meta_rate"), (dict(rate_floor=-0.1), "rate_floor"),
                      (dict(init_rate=1.0), "init_rate"), (dict(fitness_window=0), "fitness_window")):
        with pytest.raises(ValueError, match=field):
            RunConfig(**kw)


def test_shipped_default_is_the_setting_chosen_by_the_study_and_srghn_stays_self_referential():
    """Issue 17, amendment 3: the rule shipped S* (evolved rate, floor 0.1) over fixed-rate 0.2."""
    task = make_task("cartpole-switch")
    shipped = model_config(RunConfig(), task)
    assert RunConfig().method == "srghn" and shipped.rate_mode == "evolved" and shipped.rate_floor == 0.1
    assert not shipped.freeze_variation and shipped == shipped_config(update_clip=1.0)
    srg = model_config(RunConfig(method="srghn", rate_floor=0.0), task)   # the floorless original
    assert srg.rate_mode == "evolved" and not srg.freeze_variation and not srg.freeze_stochastic_head
    assert srg.rate_floor == 0.0
    fixed = model_config(RunConfig(method="fixed-rate"), task)          # the floor is srghn's only
    assert fixed.rate_mode == "fixed" and fixed.fixed_rate == 0.2 and fixed.freeze_variation and fixed.rate_floor == 0.0
    # the other mechanisms stay off by default
    assert RunConfig().tie_break == "children" and RunConfig().meta_rate == 0.0
    assert RunConfig().selection_fitness == "last" and RunConfig().cf == 0.0 and RunConfig().noise_convention == "port"
