"""The model seed (sim/model_seed.py): an LQR on the identified model written into an SR-GHN."""
import numpy as np
import pytest

from sim.adapt_job import mean_return, nominal_champion
from sim.drift_spec import DriftSpec
from sim.model_seed import linear_policy_tensors, model_seed, write_policy_into_head
from sim.policy import PolicySpec, policy_act
from sim.srghn_decode import genome_policy_weights

REVERSED = DriftSpec.parse({"mass_scale": {"pole_1": 3.0}, "actuator_gain": {"slide": -1.0}})


@pytest.fixture(scope="module")
def champion():
    return nominal_champion("cartpole")


def test_nominal_seed_is_the_shipped_champion(champion):
    """The shipped champion was made the same way from the nominal LQR: same policy weights."""
    seed = model_seed(champion, "cartpole", DriftSpec())
    np.testing.assert_array_equal(genome_policy_weights(seed), genome_policy_weights(champion))
    assert seed.parent_id == champion.id and seed.kind == "srghn" and seed.model == champion.model


def test_seed_on_the_identified_model_balances_the_drifted_robot(champion):
    seed = model_seed(champion, "cartpole", REVERSED)
    before = mean_return("cartpole", champion, REVERSED, 300, 0, episodes=2)
    after = mean_return("cartpole", seed, REVERSED, 300, 0, episodes=2)
    assert before < 100.0 < 0.95 * 300.0 < after
    assert np.abs(seed.vector).max() <= 20.0
    # numpy and torch decoders agree on the written head
    from safety.gate import decode_policy
    np.testing.assert_allclose(decode_policy(seed)[1], genome_policy_weights(seed), atol=1e-5)


def test_copies_keep_the_small_signal_gain_and_need_room():
    spec = PolicySpec(obs_dim=5, act_dim=1, hidden=(32, 32), discrete=False)
    K = np.array([[-1.0, 30.0, -2.0, 4.0]])
    obs = np.random.default_rng(0).normal(0, 0.003, (16, 5))
    outs = []
    for copies in (1, 2, 8):
        w = np.concatenate([t.reshape(-1) for t in linear_policy_tensors(K, (0, 2, 3, 4), 5, (32, 32), copies=copies)])
        outs.append(policy_act(spec, w[None].astype(np.float32), obs)[:, 0])
    expected = -(obs[:, [0, 2, 3, 4]] @ K.T)[:, 0]
    for out in outs:
        np.testing.assert_allclose(out, expected, rtol=0.02, atol=1e-4)
    with pytest.raises(ValueError, match="narrower"):
        linear_policy_tensors(K, (0, 2, 3, 4), 5, (32, 32), copies=9)


def test_refusals(champion):
    with pytest.raises(ValueError, match="do not match"):
        write_policy_into_head(champion, [np.zeros((2, 2))], "wrong shapes")
    assert model_seed(champion, "walker", DriftSpec()) is None        # the walker has no linear design
