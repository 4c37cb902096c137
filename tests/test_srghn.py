"""SR-GHN behaviour (the 'tests worth having' of SRGHN.md)."""
import numpy as np
import pytest
import torch

from sim.evolution import EvolutionConfig, diversity, evolve_srghn
from sim.genome import Genome, GenomeFileError, load_genome, save_genome
from sim.policy import PolicySpec, init_policy, policy_act
from sim.srghn import SRGHN, SRGHNConfig

SPEC = PolicySpec(obs_dim=4, act_dim=2, hidden=(32,))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_layout_covers_vector_exactly_and_self_graph_includes_itself():
    m = SRGHN(SPEC)
    assert sum(m.numels) == m.num_params
    names = [n for n, _ in m.tensors]
    assert m.offsets["embed_self"][1] == (len(names), 32)          # one self node per tensor, itself included
    assert {"log_std.weight", "rate.weight", "rate.bias", "trunk.0.weight", "embed_self"} <= set(names)
    assert m.basis.shape == (32, m.max_self_numel)
    gram = m.basis @ m.basis.T                                       # orthogonal rows
    assert torch.allclose(gram, torch.eye(32), atol=1e-4)


def test_policy_from_genome_is_deterministic_and_batched_rows_are_independent():
    m = SRGHN(SPEC)
    g = m.init_genomes(6, seed=1)
    w_all = m.policy_weights(g)
    w_again = m.policy_weights(g.clone())
    assert torch.equal(w_all, w_again)
    assert w_all.shape == (6, SPEC.num_params)
    assert torch.allclose(m.policy_weights(g[2:3])[0], w_all[2], atol=1e-6)
    obs = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    a1 = policy_act(SPEC, w_all.numpy(), obs)
    assert a1.shape == (6,) and set(a1.tolist()) <= {0, 1}


def test_rate_zero_and_no_noise_gives_child_equal_to_parent():
    m = SRGHN(SPEC, SRGHNConfig(rate_mode="fixed", fixed_rate=0.0, noise_std=0.0))
    parents = m.init_genomes(3, seed=2)
    kids, _ = m.children(parents, 2, gen())
    assert torch.equal(kids, parents.repeat_interleave(2, dim=0))


def test_update_magnitude_is_bounded_by_rate_before_noise():
    rate = 0.3
    m = SRGHN(SPEC, SRGHNConfig(rate_mode="fixed", fixed_rate=rate, noise_std=0.0))
    parents = m.init_genomes(4, seed=3)
    kids, _ = m.children(parents, 3, gen(5))
    delta = (kids - parents.repeat_interleave(3, dim=0)).abs()
    assert delta.max() <= rate + 1e-6
    assert delta.max() > 0.1 * rate          # and it does move (|c @ B| is ~0.09 per entry at std 1)


def _with_rate_bias(m, genomes, bias):
    """Genomes whose rate head outputs sigmoid(bias) on every node: rate.weight = 0, rate.bias = bias.
    Everything else (and so the coefficient std) is unchanged."""
    g = genomes.clone()
    m.view(g, "rate.weight")[:] = 0.0
    m.view(g, "rate.bias")[:] = bias
    return g


@pytest.mark.parametrize("bias", [-6.0, -1.0, 0.0, 2.0, 6.0])
def test_evolved_rate_bounds_each_nodes_update(bias):
    """With the noise off, every parameter's update is clip(c @ B) * rate, |.| <= rate * update_clip,
    where the rate is the one the head computes from the genome: sigmoid(rate.bias) when the rate
    head's weights are zero (known without running `variation`)."""
    m = SRGHN(SPEC, SRGHNConfig(noise_std=0.0))
    parents = _with_rate_bias(m, m.init_genomes(2, seed=4), bias)
    rate = torch.sigmoid(torch.tensor(bias)).item()
    kids, stats = m.children(parents, 3, gen(6))
    delta = (kids - parents.repeat_interleave(3, dim=0)).abs()
    assert torch.all(delta <= rate * m.config.update_clip * (1 + 1e-5))
    assert delta.max() > 0.05 * rate                      # it moves, on the scale of the rate
    assert torch.allclose(stats["rate"], torch.full((2,), rate))
    _, head_rate = m.variation(parents)
    assert torch.allclose(head_rate, torch.full_like(head_rate, rate))


def test_update_scales_with_the_heritable_rate():
    """Same parents, same random draws, two rate-head outputs: the updates differ exactly by the ratio
    of the rates. A machinery that ignores the evolved rate (a constant, or the fixed-rate value) moves
    both sets of children by the same amount."""
    m = SRGHN(SPEC, SRGHNConfig(noise_std=0.0))
    base = m.init_genomes(3, seed=8)
    deltas = {}
    for bias in (-4.0, 3.0):
        parents = _with_rate_bias(m, base, bias)
        kids, _ = m.children(parents, 2, gen(11))
        deltas[bias] = kids - parents.repeat_interleave(2, dim=0)
    ratio = (torch.sigmoid(torch.tensor(-4.0)) / torch.sigmoid(torch.tensor(3.0))).item()
    moved = deltas[3.0].abs() > 1e-3                      # well above float32 rounding of the parents
    assert moved.sum() > 0.3 * moved.numel()
    np.testing.assert_allclose((deltas[-4.0][moved] / deltas[3.0][moved]).numpy(), ratio, rtol=2e-2)
    # and the rate is heritable: a child's rate head gives (almost) its parent's rate
    kids, _ = m.children(_with_rate_bias(m, base, 3.0), 2, gen(12))
    _, kid_rate = m.variation(kids)
    assert torch.allclose(kid_rate, torch.sigmoid(torch.tensor(3.0)), atol=0.05)


def test_parameters_stay_within_clamp():
    m = SRGHN(SPEC, SRGHNConfig(rate_mode="fixed", fixed_rate=1.0))   # the default clamp: SRGHN.md's ±20
    parents = m.init_genomes(2, seed=0) * 0 + 19.9
    parents[1] = -19.9
    kids, _ = m.children(parents, 4, gen(1))
    assert kids.abs().max() == 20.0                   # pushed past it, held at it, on both sides
    assert (kids[:4] == 20.0).any() and (kids[4:] == -20.0).any()
    small = SRGHN(SPEC, SRGHNConfig(param_clip=0.5)).children(parents * 0, 4, gen(1))[0]
    assert small.abs().max() <= 0.5


@pytest.mark.parametrize("convention,power", [("port", 1), ("original", 2)])
def test_noise_convention_scales_coefficients_by_std_or_std_squared(convention, power):
    cfg = SRGHNConfig(rate_mode="fixed", fixed_rate=1.0, noise_std=0.0, update_clip=1e9,
                      noise_convention=convention)
    m = SRGHN(SPEC, cfg)
    parents = m.init_genomes(1, seed=7)
    std, _ = m.variation(parents)
    kids, _ = m.children(parents, 1, gen(9))
    eps = torch.randn(std.shape, generator=gen(9))
    expected = ((eps * std ** power) @ m.basis).reshape(1, -1)[:, m._gather]   # full projection, then gather
    assert torch.allclose(kids - parents, expected, atol=1e-4)


def test_frozen_variation_ablation_never_mutates_variation_tensors():
    m = SRGHN(SPEC, SRGHNConfig(freeze_variation=True))
    parents = m.init_genomes(2, seed=0)
    kids, _ = m.children(parents, 2, gen(0))
    for name in ("embed_self", "trunk.0.weight", "log_std.weight", "rate.bias", "gnn_self.msg.weight"):
        assert torch.equal(m.view(kids, name), m.view(parents.repeat_interleave(2, 0), name))
    assert not torch.equal(m.view(kids, "det_head.weight"), m.view(parents.repeat_interleave(2, 0), "det_head.weight"))
    std0, rate0 = m.variation(parents.repeat_interleave(2, 0))
    std1, rate1 = m.variation(kids)
    assert torch.equal(rate0, rate1) and torch.equal(std0, std1)


def test_genome_file_round_trip_is_lossless_and_verified(tmp_path):
    m = SRGHN(SPEC)
    vec = m.init_genomes(1, seed=11)[0].numpy()
    g = Genome(vector=vec, policy_spec=SPEC, kind="srghn", model=SRGHNConfig().to_dict(), parent_id="abc", generation=7)
    path = save_genome(g, tmp_path / "g.safetensors")
    back = load_genome(path, expected_id=g.id)
    assert np.array_equal(back.vector, vec) and back.vector.dtype == np.float32
    assert back.id == g.id and back.parent_id == "abc" and back.generation == 7
    assert torch.equal(SRGHN(SPEC, SRGHNConfig(**back.model)).policy_weights(torch.as_tensor(back.vector)[None]),
                       m.policy_weights(torch.as_tensor(vec)[None]))
    with pytest.raises(GenomeFileError, match="expected genome"):
        load_genome(path, expected_id="0" * 32)
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF                                   # flip a weight byte
    (tmp_path / "bad.safetensors").write_bytes(bytes(raw))
    with pytest.raises(GenomeFileError, match="hash mismatch"):
        load_genome(tmp_path / "bad.safetensors")
    (tmp_path / "trunc.safetensors").write_bytes(bytes(raw[:40]))
    with pytest.raises(GenomeFileError):
        load_genome(tmp_path / "trunc.safetensors")


def test_policy_genome_with_wrong_length_is_refused():
    with pytest.raises(GenomeFileError, match="needs"):
        Genome(vector=np.zeros(5, np.float32), policy_spec=SPEC, kind="policy")


class PositionTask:
    """Fitness by position in the batch: parents (first P rows) win. Tests selection bookkeeping."""
    name = "position"
    policy = SPEC
    episodes = 1

    class schedule:  # noqa: N801 - mimics SwitchSchedule
        @staticmethod
        def active(g):
            return False

    def __init__(self, parents_win: bool, P: int):
        self.parents_win, self.P = parents_win, P

    def evaluate(self, weights, seeds, generation):
        f = np.zeros(len(weights))
        f[: self.P] = 10.0 if self.parents_win else -10.0
        return f


def test_selection_keeps_exactly_P_and_keeps_parents_when_children_are_worse():
    P = 5
    res = evolve_srghn(PositionTask(True, P), PositionTask(True, P).evaluate, 3, seed=0,
                       config=EvolutionConfig(population=P, children=2, child_credit=0.0))
    assert len(res.population) == P and sorted(res.population_ids) == list(range(P))
    assert len(res.lineage) == P + 3 * P * 2
    res = evolve_srghn(PositionTask(False, P), PositionTask(False, P).evaluate, 1, seed=0,
                       config=EvolutionConfig(population=P, children=2, child_credit=0.0))
    assert len(res.population) == P and all(i >= P for i in res.population_ids)   # children replaced parents


class RowTask(PositionTask):
    """Fitness given per row (parents first, then children parent-major) by `table(generation, n)`."""

    def __init__(self, table):
        self.table, self.calls = table, []

    def evaluate(self, weights, seeds, generation):
        self.calls.append((generation, len(weights)))
        return np.asarray(self.table(generation, len(weights)), dtype=float)


def test_child_credit_judges_a_parent_by_its_children():
    """Parent 0 is fit (10) with unfit children (0); parent 1 is 6 with children of 6. cf = 0 ranks
    parent 0 first; cf = 0.5 scores it 0.5 * 10 + 0.5 * 0 = 5 < 6, so parent 1 (or its tied
    children) comes first; cf = 1 scores a parent by its children alone."""
    P, C = 2, 2

    def table(g, n):
        return [10.0, 6.0, 0.0, 0.0, 6.0, 6.0]

    ids, fitness = {}, {}
    for cf in (0.0, 0.5, 1.0):
        task = RowTask(table)
        res = evolve_srghn(task, task.evaluate, 1, seed=0, config=EvolutionConfig(P, C, cf))
        ids[cf], fitness[cf] = res.population_ids, res.champion_fitness
    assert ids[0.0][0] == 0 and fitness[0.0] == 10.0
    assert ids[0.5][0] != 0 and fitness[0.5] == 6.0 and 0 not in ids[0.5]     # parent 0 scored 5: dropped
    assert fitness[1.0] == 6.0 and 0 not in ids[1.0]                          # parent 0 scored 0


def test_parent_score_with_child_credit_is_the_weighted_mean():
    P, C = 3, 2
    own = np.array([9.0, 3.0, 1.0])
    kids = np.array([[1.0, 3.0], [7.0, 5.0], [2.0, 2.0]])
    for cf in (0.25, 0.75):
        task = RowTask(lambda g, n: np.concatenate([own, kids.ravel()]))
        res = evolve_srghn(task, task.evaluate, 1, seed=0, config=EvolutionConfig(P, C, cf))
        scores = (1 - cf) * own + cf * kids.mean(axis=1)
        everyone = np.concatenate([scores, kids.ravel()])
        assert res.champion_fitness == pytest.approx(everyone.max())
        assert res.champion_id == int(np.argmax(everyone))


def test_parents_are_re_evaluated_every_generation():
    """A lucky first evaluation must not stick: at generation 0 the parents score 10 and their
    children -10; from then on every parent scores -10 and every child 5. Re-evaluated, the first
    parents fall at generation 1; with stale scores they would be kept for ever."""
    P, C = 3, 2

    def table(g, n):
        f = np.full(n, -10.0 if g == 0 else 5.0)
        f[:P] = 10.0 if g == 0 else -10.0
        return f

    task = RowTask(table)
    res = evolve_srghn(task, task.evaluate, 4, seed=0, config=EvolutionConfig(P, C, 0.0))
    assert task.calls == [(g, P * (1 + C)) for g in range(4)]      # parents and children, every generation
    assert all(i >= P for i in res.population_ids)                 # the lucky first parents are gone
    assert res.champion_fitness == 5.0


def test_reported_champion_fitness_is_this_generations_evaluation():
    """In a world that gets worse every generation, the champion's score is its latest evaluation,
    not an earlier, better one."""
    target = TargetTask.target

    def evaluate(weights, seeds, generation):
        return -np.mean((weights - target) ** 2, axis=1) - 100.0 * generation

    res = evolve_srghn(TargetTask(), evaluate, 3, seed=0, config=EvolutionConfig(4, 1, 0.0))
    model = SRGHN(SPEC)
    w = model.policy_weights(torch.as_tensor(res.champion)[None]).numpy()
    assert res.champion_fitness == pytest.approx(evaluate(w, None, 2)[0], rel=1e-6)
    assert res.champion_fitness < -200.0


class TargetTask:
    """Fitness = -||policy weights - target||^2 / P: smooth, so evolution must make progress."""
    name = "target"
    policy = SPEC
    episodes = 1

    class schedule:  # noqa: N801
        @staticmethod
        def active(g):
            return False

    target = init_policy(SPEC, 123) * 3

    def evaluate(self, weights, seeds, generation):
        return -np.mean((weights - self.target) ** 2, axis=1)


def test_srghn_improves_a_smooth_objective():
    """A gain that the mutation machinery has to earn: with the rate forced to 0 (only the constant
    1e-3 noise explores) 60 generations gain 0.011-0.012 (seeds 0-2); the evolved machinery gains
    0.045-0.091. The bar, 0.025, is twice what the noise alone reaches."""
    res = evolve_srghn(TargetTask(), TargetTask().evaluate, 60, seed=0)
    best = [g.best for g in res.generations]
    assert np.mean(best[-5:]) - best[0] > 0.025
    assert all(0 < g.rate_mean < 1 for g in res.generations)


def test_same_seed_same_run_and_diversity_math():
    a = evolve_srghn(TargetTask(), TargetTask().evaluate, 5, seed=3)
    b = evolve_srghn(TargetTask(), TargetTask().evaluate, 5, seed=3)
    assert np.array_equal(a.population, b.population)
    x = np.random.default_rng(0).normal(size=(6, 10))
    brute = np.sqrt(np.mean([np.sum((x[i] - x[j]) ** 2) for i in range(6) for j in range(i + 1, 6)])) / np.sqrt(10)
    assert diversity(x) == pytest.approx(brute)


def test_init_genomes_follow_pytorch_default_initialisations():
    """Linear / GRU tensors uniform in ±1/sqrt(fan_in) (fan_in = the input width; d for the GRU and
    for every bias of a d-wide layer), embeddings N(0, 1)."""
    m = SRGHN(SPEC)
    g = m.init_genomes(64, seed=3)
    d, w = m.config.embed_dim, m.config.trunk_width
    fan_in = {"rate.bias": w, "rate.weight": w, "trunk.2.weight": w, "trunk.0.weight": d, "det_head.bias": d,
              "gnn_self.gru.bias_hh": d, "gnn_policy.msg.bias": d, "log_std.weight": w}
    for name, n_in in fan_in.items():
        v = m.view(g, name)
        bound = 1.0 / np.sqrt(n_in)
        assert v.abs().max() <= bound and v.max() > 0.9 * bound and v.min() < -0.9 * bound, name
        assert abs(float(v.mean())) < 0.1 * bound, name
    emb = m.view(g, "embed_self")
    assert abs(float(emb.std()) - 1.0) < 0.05 and abs(float(emb.mean())) < 0.05
    assert torch.equal(g, m.init_genomes(64, seed=3)) and not torch.equal(g, m.init_genomes(64, seed=4))


class BareTask:
    """Only what evolve_srghn needs: a policy (no `episodes`, no `schedule`)."""
    policy = SPEC


def test_generation_log_lineage_and_evaluation_count():
    seen, elites = [], []

    def evaluate(weights, seeds, generation):
        seen.append(np.asarray(seeds).copy())
        return -np.mean(weights ** 2, axis=1)

    P, C, G = 3, 2, 4
    res = evolve_srghn(BareTask(), evaluate, G, seed=5, config=EvolutionConfig(P, C),
                       should_stop=lambda log, elite: elites.append(elite.copy()) or False)
    assert [g.gen for g in res.generations] == list(range(G)) and not any(g.switch_on for g in res.generations)
    assert res.evaluations == G * P * (1 + C)                       # one episode each without `episodes`
    everything = np.concatenate(seen)
    assert everything.size == G * P * (1 + C) and len(np.unique(everything)) == everything.size   # fresh seeds
    assert np.array_equal(elites[-1], res.champion)                 # should_stop sees the ranked-first genome
    ids = {i for i, _, _ in res.lineage}
    assert len(ids) == len(res.lineage) == P + G * P * C and set(res.population_ids) <= ids
    parent = {i: p for i, p, _ in res.lineage}
    assert res.champion_parent == parent[res.champion_id]
    assert all(0 < g.rate_mean < 1 and g.std_mean > 0 and g.diversity > 0 for g in res.generations)
    episodic = PositionTask(True, P)
    episodic.episodes = 3
    assert evolve_srghn(episodic, episodic.evaluate, 2, seed=0, config=EvolutionConfig(P, C)).evaluations == 2 * P * 3 * 3


def test_initial_genomes_seed_the_population():
    """`initial` rows come first; the missing places are children of them."""
    m = SRGHN(SPEC)
    seed_genome = m.init_genomes(1, seed=9)[0].numpy()
    task = RowTask(lambda g, n: np.r_[np.full(3, 10.0), np.full(n - 3, -10.0)])   # parents always win
    res = evolve_srghn(task, task.evaluate, 1, seed=0, config=EvolutionConfig(3, 1), initial=seed_genome[None])
    assert any(np.array_equal(row, seed_genome) for row in res.population)
    others = [row for row in res.population if not np.array_equal(row, seed_genome)]
    assert len(others) == 2 and all(0 < np.abs(row - seed_genome).max() <= 1.0 + 0.01 for row in others)


def test_diversity_of_fewer_than_two_is_zero():
    assert diversity(np.ones((1, 4))) == 0.0 and diversity(np.ones((0, 4))) == 0.0
    assert diversity(np.array([[0.0, 0.0], [3.0, 4.0]])) == pytest.approx(5.0 / np.sqrt(2))


def test_defaults_are_the_reference_constants():
    """SRGHN.md / the reference code: d = 32, T = 10, k = 32, trunk 64, clip 1, params in ±20,
    noise N(0, 1e-3), the port's noise convention, evolved rate, basis seed 0 (the shipped
    champion's basis)."""
    cfg = SRGHNConfig()
    assert (cfg.embed_dim, cfg.gnn_steps, cfg.basis_dim, cfg.trunk_width) == (32, 10, 32, 64)
    assert (cfg.update_clip, cfg.param_clip, cfg.noise_std) == (1.0, 20.0, 1e-3)
    assert (cfg.noise_convention, cfg.rate_mode, cfg.fixed_rate, cfg.freeze_variation, cfg.basis_seed) == \
        ("port", "evolved", 0.2, False, 0)
    ec = EvolutionConfig()
    assert (ec.population, ec.children, ec.child_credit, ec.evaluations_per_generation) == (10, 2, 0.0, 30)


@pytest.mark.parametrize("bad,match", [
    (dict(embed_dim=0), "embed_dim"), (dict(gnn_steps=-1), "gnn_steps"), (dict(basis_dim=0), "basis_dim"),
    (dict(trunk_width=0), "trunk_width"), (dict(rate_mode="learned"), "rate_mode"),
    (dict(update_clip=0.0), "update_clip"), (dict(param_clip=-1.0), "param_clip"), (dict(noise_std=-1e-3), "noise_std"),
    (dict(fixed_rate=-0.1), "fixed_rate"), (dict(fixed_rate=1.1), "fixed_rate"),
])
def test_every_bad_srghn_config_field_is_refused_by_name(bad, match):
    with pytest.raises(ValueError, match=match):
        SRGHNConfig(**bad)


def test_config_edges_are_accepted():
    SRGHNConfig(embed_dim=1, gnn_steps=1, basis_dim=1, trunk_width=1, noise_std=0.0, fixed_rate=0.0)
    SRGHNConfig(fixed_rate=1.0, noise_convention="original", rate_mode="fixed")
    EvolutionConfig(population=1, children=1, child_credit=0.0)
    EvolutionConfig(child_credit=1.0)
    with pytest.raises(ValueError, match="population and children"):
        EvolutionConfig(children=0)
    with pytest.raises(ValueError, match="cf"):
        EvolutionConfig(child_credit=-0.1)
    with pytest.raises(ValueError, match="generations"):
        evolve_srghn(TargetTask(), TargetTask().evaluate, 0, seed=0)


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="noise_convention"):
        SRGHNConfig(noise_convention="sigma3")
    with pytest.raises(ValueError, match="population"):
        EvolutionConfig(population=0)
    with pytest.raises(ValueError, match="cf"):
        EvolutionConfig(child_credit=1.5)
    with pytest.raises(ValueError, match="positive"):
        PolicySpec(obs_dim=0, act_dim=2)
