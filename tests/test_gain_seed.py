"""The gain seed (sim/gain_seed.py): the champion with its commands divided by the identified motor
gains, the adaptation population's model-based seed on a robot without a linear design.

Why: on the ant with both front ankle motors reversed, evolution from the champion alone reached
201 of the 271 needed in 420 s; system identification had already found both signs."""
from __future__ import annotations

import numpy as np
import pytest

from sim.drift_spec import DriftSpec

ANT = "launch/robots/ant.yaml"
REVERSED = {"actuator_gain": {"joint:ankle_1": -1.0, "joint:ankle_2": -1.0}}


@pytest.fixture(scope="module")
def champion():
    from sim.adapt_job import nominal_champion
    return nominal_champion(ANT)


def test_command_gains_follow_the_command_order_not_the_models():
    """The ant's command order (legs 1..4) is not its MJCF's actuator order (leg 4 first)."""
    from sim.gain_seed import command_gains
    g = command_gains(ANT, DriftSpec.parse({"actuator_gain": {"joint:ankle_1": -1.0, "joint:hip_4": 0.5}}))
    assert g.tolist() == [1.0, -1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 1.0]


def test_the_seed_divides_each_command_by_its_gain(champion):
    """The decoded policy: the output layer's row and bias of command 1 divided by -2, of command 2
    (gain 0.1, outside [1/2, 2]) left alone, every other tensor the champion's."""
    from sim.gain_seed import gain_seed
    from sim.srghn_decode import genome_policy_weights
    seed = gain_seed(champion, ANT, DriftSpec.parse({"actuator_gain": {"joint:ankle_1": -2.0, "joint:hip_2": 0.1, "joint:ankle_2": -0.05}}))
    assert seed is not None and seed.kind == "srghn" and seed.vector.size == champion.vector.size
    spec = champion.policy_spec
    before, after = genome_policy_weights(champion), genome_policy_weights(seed)
    (_, w_off, (n_out, n_in)), (_, b_off, _) = spec.offsets()[-2], spec.offsets()[-1]
    W0 = before[w_off:w_off + n_out * n_in].reshape(n_out, n_in)
    W1 = after[w_off:w_off + n_out * n_in].reshape(n_out, n_in)
    expect = np.ones(n_out)
    expect[1] = -0.5
    expect[3] = -1.0         # gain -0.05: the sign is divided out, the magnitude is not
    expect[2] = 1.0          # gain 0.1: an implausible magnitude is not divided out (identification's weakest part)
    assert np.allclose(W1, W0 * expect[:, None], atol=1e-5)
    assert np.allclose(after[b_off:b_off + n_out], before[b_off:b_off + n_out] * expect, atol=1e-5)
    assert np.allclose(after[:w_off], before[:w_off], atol=1e-5)


def test_no_seed_without_an_identified_reversed_motor(champion):
    from sim.gain_seed import gain_seed
    assert gain_seed(champion, ANT, DriftSpec()) is None
    assert gain_seed(champion, ANT, DriftSpec.parse({"actuator_gain": {"joint:ankle_1": 1.02}})) is None
    # weaker motors, none reversed: evolution's job (the walker's default drift is of this kind)
    assert gain_seed(champion, ANT, DriftSpec.parse({"actuator_gain": {"*": 0.5}})) is None
    assert gain_seed(champion, ANT, DriftSpec.parse({"mass_scale": {"torso": 2.0}})) is None


def test_on_the_reversed_ankles_the_seed_restores_the_nominal_return(champion):
    """The shipped champion scores ~62 of its ~295 with both front ankles reversed; its gain seed,
    made from that drift, scores as the champion does on the nominal robot."""
    from sim.adapt_job import mean_return
    from sim.gain_seed import gain_seed
    drift = DriftSpec.parse(REVERSED)
    seed = gain_seed(champion, ANT, drift)
    nominal = mean_return(ANT, champion, DriftSpec(), 150, 0, episodes=2)
    assert mean_return(ANT, champion, drift, 150, 0, episodes=2) < 0.5 * nominal
    assert mean_return(ANT, seed, drift, 150, 0, episodes=2) > 0.97 * nominal


def test_the_job_puts_the_gain_seed_in_the_population(monkeypatch, champion):
    """A profile robot has no LQR: the job seeds its population with the gain seed made from the
    sysid estimate (result.json model_seed.source names it)."""
    import sim.adapt_job as aj
    made = []
    real = aj.gain_seed

    def spy(champ, robot, estimate):
        made.append(estimate)
        return real(champ, robot, DriftSpec.parse(REVERSED))     # as if identification were exact
    monkeypatch.setattr(aj, "gain_seed", spy)
    job = aj.AdaptJob(robot=ANT, drift=REVERSED, budget_s=1e6, max_generations=1, horizon=20,
                      telemetry_ticks=60, randomize=0, population=3, children=1, sysid_max_evals=4)
    r, _ = aj.run_job(job, [champion])
    assert made and r["model_seed"] is not None
    assert "identified command gains" in r["model_seed"]["source"]
