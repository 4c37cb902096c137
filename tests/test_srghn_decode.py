"""The numpy deterministic head (live side, no torch) agrees with the torch SR-GHN."""
import numpy as np
import pytest
from sim.genome import Genome
from sim.policy import PolicySpec
from sim.srghn import SRGHN, SRGHNConfig
from sim.srghn_decode import _layout, genome_policy_weights, srghn_policy_weights


@pytest.mark.parametrize("spec", [PolicySpec(4, 2, (32,)), PolicySpec(5, 1, (32, 32), discrete=False)])
def test_numpy_head_matches_torch(spec):
    cfg = SRGHNConfig()
    m = SRGHN(spec, cfg)
    assert {k: v for k, v in _layout(spec, 32, 64, 32).items() if k != "__total__"} == m.offsets
    g = m.init_genomes(3, seed=5)
    expected = m.policy_weights(g).numpy()
    for i in range(3):
        got = srghn_policy_weights(g[i].numpy(), spec, cfg.to_dict())
        np.testing.assert_allclose(got, expected[i], rtol=1e-4, atol=1e-5)
    genome = Genome(vector=g[0].numpy(), policy_spec=spec, kind="srghn", model=cfg.to_dict())
    np.testing.assert_allclose(genome_policy_weights(genome), expected[0], rtol=1e-4, atol=1e-5)


def test_wrong_size_is_refused():
    with pytest.raises(ValueError, match="7 values.*need 28065"):
        srghn_policy_weights(np.zeros(7, np.float32), PolicySpec(4, 2, (32,)), {})
