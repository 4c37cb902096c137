"""cartpole-drift: the drift sequence is applied where and as documented, and the reward never saturates."""
import numpy as np
import pytest

from sim.envs.cartpole_drift import DriftCondition, shaped_returns
from sim.policy import BoundPolicy, init_policy
from sim.tasks import make_task


class Bang:
    """Pushes toward the side the pole leans to (a classic balancing rule) or, inverted, the other way."""
    def __init__(self, n, inverted=False):
        self.n, self.inverted = n, inverted

    def act(self, obs):
        a = (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(int)
        return 1 - a if self.inverted else a

    def subset(self, mask):
        return Bang(int(np.count_nonzero(mask)), self.inverted)


def test_sequence_is_cumulative_and_ends_nominal():
    t = make_task("cartpole-drift")
    assert t.change_points() == [100, 200, 300, 400]
    assert t.condition(99) == DriftCondition()
    assert t.condition(100) == DriftCondition(pole_mass_scale=5.0)
    assert t.condition(250) == DriftCondition(pole_mass_scale=5.0, gain=-1.0)
    assert t.condition(399) == DriftCondition(pole_mass_scale=5.0, gain=-1.0, cart_friction=2.0, pole_friction=0.01)
    assert t.condition(400) == DriftCondition()
    assert [t.switch_on(g) for g in (99, 100, 399, 400)] == [False, True, True, False]
    inv = make_task("cartpole-drift", changes="10,20", sequence="gain,gain")
    assert inv.condition(15).gain == -1.0 and inv.condition(25).gain == 1.0


def test_gain_flip_breaks_a_balancing_rule_and_the_inverted_rule_works_again():
    seeds = list(range(8))
    ok = shaped_returns(Bang(8), seeds, DriftCondition(), 200)
    broken = shaped_returns(Bang(8), seeds, DriftCondition(gain=-1.0), 200)
    fixed = shaped_returns(Bang(8, inverted=True), seeds, DriftCondition(gain=-1.0), 200)
    assert ok.min() > 50 and broken.max() < 20 and np.allclose(fixed, ok)


def test_reward_is_shaped_below_the_horizon_and_batch_independent():
    seeds = list(range(6))
    r = shaped_returns(Bang(6), seeds, DriftCondition(), 200)
    assert np.all(r < 200) and np.all(r > 0)           # balances the whole episode, yet earns < 1 per step
    alone = shaped_returns(Bang(1), [seeds[3]], DriftCondition(), 200)
    assert alone[0] == r[3]


def test_task_scores_depend_on_the_phase():
    t = make_task("cartpole-drift", changes="1", sequence="gain")
    w = np.repeat(init_policy(t.policy, 0)[None], 4, axis=0)
    seeds = np.arange(4)
    assert not np.array_equal(t.evaluate(w, seeds, 0), t.evaluate(w, seeds, 1))
    assert np.array_equal(t.evaluate(w, seeds, 0), t.evaluate(w, seeds, 0))


def test_bad_sequences_are_refused():
    with pytest.raises(ValueError, match="unknown sequence steps"):
        make_task("cartpole-drift", changes="10", sequence="wind")
    with pytest.raises(ValueError, match="increasing"):
        make_task("cartpole-drift", changes="20,10", sequence="mass,gain")
    with pytest.raises(ValueError, match="not a switch schedule"):
        make_task("cartpole-drift", schedule="10-20")
    with pytest.raises(ValueError, match="gain"):
        DriftCondition(gain=0.0)
