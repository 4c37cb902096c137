"""The model seed (sim/model_seed.py): an LQR on the identified model written into an SR-GHN."""
import numpy as np
import pytest

from sim.adapt_job import AdaptJob, mean_return, nominal_champion, run_job
from sim.drift_spec import DriftSpec
from sim.model_seed import VALUE_LIMIT, linear_policy_tensors, model_seed, write_policy_into_head
from sim.plants.cartpole import Cartpole
from sim.policy import PolicySpec, policy_act
from sim.srghn_decode import genome_policy_weights

DRIFT = {"mass_scale": {"pole_1": 3.0}, "actuator_gain": {"slide": -1.0}}
REVERSED = DriftSpec.parse(DRIFT)
HORIZON = 300
COLUMNS = (0, 2, 3, 4)                  # cartpole: cart, sin(angle), cart velocity, angular velocity


@pytest.fixture(scope="module")
def champion():
    return nominal_champion("cartpole")


@pytest.fixture(scope="module")
def reversed_seed(champion):
    return model_seed(champion, "cartpole", REVERSED)


def small_obs(n=64, scale=0.02, seed=0):
    return np.random.default_rng(seed).normal(0.0, scale, (n, 5)).astype(np.float32)


def lqr_of(plant, drift):
    from sim.plants import make_plant
    return make_plant(plant, drift=drift).model_lqr()


def torch_head(genome):
    """The torch SR-GHN's deterministic head (what evolution decodes with) for one genome."""
    import torch

    from sim.srghn import SRGHN, SRGHNConfig
    net = SRGHN(genome.policy_spec, SRGHNConfig(**genome.model))
    return net.policy_weights(torch.from_numpy(genome.vector)[None])[0].numpy()


def act(genome, obs):
    return policy_act(genome.policy_spec, genome_policy_weights(genome)[None], obs)


def test_nominal_seed_is_the_shipped_champion(champion):
    """The shipped champion was made the same way from the nominal LQR: same weights, same actions."""
    seed = model_seed(champion, "cartpole", DriftSpec())
    assert seed is not None and seed.kind == "srghn" and seed.model == champion.model
    assert seed.parent_id == champion.id and seed.fitness["source"].startswith("LQR on the identified model")
    np.testing.assert_array_equal(genome_policy_weights(seed), genome_policy_weights(champion))
    obs = small_obs()
    a = act(seed, obs)
    np.testing.assert_array_equal(a, act(champion, obs))
    assert np.abs(a).max() > 0.05          # not a trivially zero policy


def test_seed_acts_as_the_lqr_of_the_drifted_model(reversed_seed):
    """For small states the seed computes u = -K x with K the LQR on the drifted model."""
    K, columns = lqr_of("cartpole", REVERSED)
    obs = small_obs(scale=0.005)
    expected = -(obs[:, list(columns)].astype(np.float64) @ K.T)
    np.testing.assert_allclose(act(reversed_seed, obs), expected, rtol=0.03, atol=2e-4)
    # the drifted design pushes the other way than the nominal one (the motor is reversed)
    K0, _ = lqr_of("cartpole", DriftSpec())
    assert np.all(np.sign(K) == -np.sign(K0))


def test_seed_on_the_identified_model_balances_the_drifted_robot(champion, reversed_seed):
    # measured: champion 29.1 on the drift, 299.9 nominal; seed 299.9 on the drift, 27.9 nominal
    nominal = mean_return("cartpole", champion, DriftSpec(), HORIZON, 0, episodes=2)
    before = mean_return("cartpole", champion, REVERSED, HORIZON, 0, episodes=2)
    after = mean_return("cartpole", reversed_seed, REVERSED, HORIZON, 0, episodes=2)
    assert nominal > 0.95 * HORIZON
    assert before < 100.0
    assert after > 0.95 * nominal
    # a design for the drifted model, not a generally better controller: it fails the nominal robot
    assert mean_return("cartpole", reversed_seed, DriftSpec(), HORIZON, 0, episodes=2) < 100.0


def test_written_genome_stays_in_the_clamp_and_decoders_agree(champion, reversed_seed):
    for seed in (reversed_seed, model_seed(champion, "cartpole", DriftSpec())):
        assert np.all(np.isfinite(seed.vector)) and np.abs(seed.vector).max() <= VALUE_LIMIT == 20.0
        assert seed.vector.shape == champion.vector.shape
        assert seed.policy_spec == champion.policy_spec
        np.testing.assert_allclose(torch_head(seed), genome_policy_weights(seed), atol=1e-5)
    # the champion is not modified in place
    np.testing.assert_array_equal(nominal_champion("cartpole").vector, champion.vector)


def test_copies_keep_the_small_signal_gain_and_need_room():
    spec = PolicySpec(obs_dim=5, act_dim=1, hidden=(32, 32), discrete=False)
    K = np.array([[-1.0, 30.0, -2.0, 4.0]])
    obs = small_obs(16, scale=0.003)

    def out(copies):
        tensors = linear_policy_tensors(K, COLUMNS, 5, (32, 32), copies=copies)
        assert [t.shape for t in tensors] == [tuple(s) for _, s in spec.tensors]
        w = np.concatenate([t.reshape(-1) for t in tensors]).astype(np.float32)
        return policy_act(spec, w[None], obs)[:, 0], max(np.abs(t).max() for t in tensors)

    (one, big1), (two, big2), (eight, big8) = out(1), out(2), out(8)
    np.testing.assert_allclose(two, one, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(eight, one, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(one, -(obs[:, list(COLUMNS)] @ K.T)[:, 0], rtol=0.02, atol=1e-4)
    assert big2 == pytest.approx(big1 / 2) and big8 == pytest.approx(big1 / 8)   # room in the clamp
    with pytest.raises(ValueError, match="narrower"):
        linear_policy_tensors(K, COLUMNS, 5, (32, 32), copies=9)                 # 9 x 4 > 32
    with pytest.raises(ValueError, match="narrower"):
        linear_policy_tensors(K, COLUMNS, 5, (32, 3))                            # 4 states, width 3
    with pytest.raises(ValueError, match="columns"):
        linear_policy_tensors(K, (0, 2, 3), 5, (32, 32))


def test_large_gains_use_copies_and_too_large_ones_give_no_seed(champion, monkeypatch):
    K = np.array([[-2.0, 30.0, -3.0, 5.0]])       # 30 / a1 = 60 > 20: one copy does not fit
    monkeypatch.setattr(Cartpole, "model_lqr", lambda self: (K, COLUMNS))
    seed = model_seed(champion, "cartpole", DriftSpec())
    assert seed is not None and np.abs(seed.vector).max() <= VALUE_LIMIT
    obs = small_obs(scale=0.002)
    np.testing.assert_allclose(act(seed, obs)[:, 0], -(obs[:, list(COLUMNS)] @ K.T)[:, 0], rtol=0.03, atol=2e-4)
    # 200 / (0.5 x 8 copies) = 50 > 20 even with as many copies as 32 units hold
    monkeypatch.setattr(Cartpole, "model_lqr", lambda self: (K * 200.0 / 30.0, COLUMNS))
    assert model_seed(champion, "cartpole", DriftSpec()) is None


@pytest.mark.parametrize("plant", ["reacher", "walker"])
def test_plants_without_a_linear_design_get_no_seed(champion, plant):
    from sim.plants import make_plant
    assert not hasattr(make_plant(plant), "model_lqr")
    assert model_seed(champion, plant, DriftSpec()) is None


def test_head_writes_exactly_the_tensors_from_any_srghn_vector(champion):
    """Whatever the genome's policy graph held before (here noise everywhere), the written head
    decodes to exactly the given tensors; the self graph, trunk and rate heads are kept."""
    from sim.genome import Genome
    from sim.srghn_layout import srghn_layout
    spec = champion.policy_spec
    rng = np.random.default_rng(1)
    noisy = Genome(vector=np.clip(champion.vector + rng.normal(0, 0.5, champion.vector.shape), -20, 20)
                   .astype(np.float32), policy_spec=spec, kind="srghn", model=champion.model)
    tensors = linear_policy_tensors(np.array([[-1.0, 7.0, -1.5, 2.0]]), COLUMNS, spec.obs_dim, spec.hidden)
    flat = np.concatenate([t.reshape(-1) for t in tensors])
    assert np.abs(genome_policy_weights(noisy) - flat).max() > 1.0
    written = write_policy_into_head(noisy, tensors, "test")
    np.testing.assert_allclose(genome_policy_weights(written), flat, atol=1e-6)
    np.testing.assert_allclose(torch_head(written), flat, atol=1e-5)
    assert written.parent_id == noisy.id and written.fitness == {"source": "test"}
    L = srghn_layout(spec, written.model)
    for name in ("embed_self", "gnn_self.msg.weight", "gnn_self.gru.bias_hh", "trunk.0.weight", "trunk.2.weight",
                 "log_std.weight", "rate.weight", "rate.bias"):
        off, shape = L[name]
        sl = slice(off, off + int(np.prod(shape)))
        np.testing.assert_array_equal(written.vector[sl], noisy.vector[sl])


def test_refusals(champion):
    spec = champion.policy_spec
    good = linear_policy_tensors(np.ones((1, 4)), COLUMNS, spec.obs_dim, spec.hidden)
    with pytest.raises(ValueError, match="do not match"):
        write_policy_into_head(champion, [np.zeros((2, 2))], "wrong count")
    with pytest.raises(ValueError, match="do not match"):
        write_policy_into_head(champion, good[:-1] + [np.zeros(2)], "last tensor the wrong shape")
    with pytest.raises(ValueError, match="clamp"):
        write_policy_into_head(champion, good[:-2] + [np.full_like(good[-2], 25.0), good[-1]], "too large")
    write_policy_into_head(champion, good, "fits")                      # the same tensors, right shapes
    from controller.bootstrap import lqr_policy_genome
    assert model_seed(lqr_policy_genome(), "cartpole", DriftSpec()) is None     # not an SR-GHN


def test_adaptation_job_puts_the_seed_in_the_population(champion):
    """run_job with one generation: with the seed in the population the candidate (whichever genome
    wins: the seed or one of its children) balances the drifted robot; without it the champion's
    neighbourhood does not."""
    small = dict(robot="cartpole", drift=DRIFT, budget_s=60, max_generations=1, horizon=100, sysid_budget_s=60,
                 sysid_max_evals=300, telemetry_ticks=300, randomize=0, population=4, children=1)
    seeded, _ = run_job(AdaptJob(**small), [champion])
    plain, _ = run_job(AdaptJob(**small, model_seed=False), [champion])
    assert plain["model_seed"] is None
    ms = seeded["model_seed"]
    assert ms["source"].startswith("LQR on the identified model") and ms["return"] > 95.0
    assert seeded["return_before"] == plain["return_before"] < 50.0
    assert seeded["return_after"] > 95.0                 # the winner meets the target, whichever it is
    if ms["is_candidate"]:
        assert ms["return"] == seeded["return_after"]
    assert plain["return_after"] < 50.0
