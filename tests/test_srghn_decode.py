"""The numpy deterministic head (the one decoder: gate, registry, tick) agrees with the torch SR-GHN
(evolution's batched head), and both read the one layout table."""
import numpy as np
import pytest
from sim.genome import Genome
from sim.policy import PolicySpec
from sim.srghn import SRGHN, SRGHNConfig
from sim.srghn_decode import decode_policy, genome_policy_weights, srghn_policy_weights
from sim.srghn_layout import config_of, srghn_layout


@pytest.mark.parametrize("spec", [PolicySpec(4, 2, (32,)), PolicySpec(5, 1, (32, 32), discrete=False)])
def test_numpy_head_matches_torch(spec):
    cfg = SRGHNConfig()
    m = SRGHN(spec, cfg)
    assert m.offsets is srghn_layout(spec, cfg).offsets          # one table, not two kept in sync
    g = m.init_genomes(3, seed=5)
    expected = m.policy_weights(g).numpy()
    for i in range(3):
        got = srghn_policy_weights(g[i].numpy(), spec, cfg.to_dict())
        np.testing.assert_allclose(got, expected[i], rtol=1e-4, atol=1e-5)
    genome = Genome(vector=g[0].numpy(), policy_spec=spec, kind="srghn", model=cfg.to_dict())
    np.testing.assert_allclose(genome_policy_weights(genome), expected[0], rtol=1e-4, atol=1e-5)


def test_layout_follows_the_config_and_tiles_the_vector():
    spec = PolicySpec(4, 2, (32,))
    small = srghn_layout(spec, {"embed_dim": 8, "trunk_width": 16, "basis_dim": 4})
    assert small["gnn_policy.msg.weight"][1] == (8, 8) and small["log_std.weight"][1] == (4, 16)
    assert small.offsets["embed_self"][1] == (len(small.tensors), 8)
    off = 0
    for name, shape in small.tensors:                              # contiguous, in registration order
        assert small[name] == (off, shape)
        off += int(np.prod(shape))
    assert off == small.num_params == SRGHN(spec, config_of({"embed_dim": 8, "trunk_width": 16,
                                                              "basis_dim": 4})).num_params


def test_wrong_size_is_refused():
    with pytest.raises(ValueError, match="7 values.*need 28065"):
        srghn_policy_weights(np.zeros(7, np.float32), PolicySpec(4, 2, (32,)), {})


def test_a_model_with_an_unknown_or_bad_key_is_refused_naming_it():
    spec = PolicySpec(4, 2, (32,))
    with pytest.raises(ValueError, match=r"SR-GHN model: unknown key\(s\) \['embed_dimm'\]"):
        decode_policy(Genome(vector=np.zeros(10, np.float32), policy_spec=spec, model={"embed_dimm": 8}))
    with pytest.raises(ValueError, match="embed_dim must be positive"):
        srghn_layout(spec, {"embed_dim": 0})


def test_a_policy_genome_decodes_to_its_own_vector():
    spec = PolicySpec(3, 1, (4,), discrete=False)
    g = Genome(vector=np.arange(spec.num_params, dtype=np.float32), policy_spec=spec, kind="policy")
    got_spec, w = decode_policy(g)
    assert got_spec == spec and w.dtype == np.float32
    np.testing.assert_array_equal(w, g.vector)
