"""Rescue canary: when the champion itself keeps the live robot outside the guard bounds, a
candidate is not judged by its distance to it (controller.orchestrator, controller.runtime)."""
import math

import numpy as np
import pytest

from controller.bootstrap import lqr_policy_genome
from controller.contracts import PASS, GateOutcome
from controller.jobs import FunctionGate
from controller.orchestrator import Phase
from controller.authority import Canary
from test_orchestrator import JOINTS, Rig, candidate_runner

SLIDER_BOUND = 1.5          # Rig's guard: slider in [-1.5, 1.5]
NEVER = 10 ** 9             # step_every: the orchestrator is not stepped (runtime-only checks)


def feed(rig, seconds, slider=0.0, hinge=0.0, dt=0.01, step_every=10):
    """Joint states around (slider, hinge) at 100 Hz, the orchestrator stepped at 10 Hz."""
    outs = []
    for _ in range(int(round(seconds / dt))):
        rig.k += 1
        rig.clock.t += dt
        t = rig.clock.t
        q = (slider + 0.05 * math.sin(0.7 * t), hinge + 0.02 * math.sin(2.3 * t))
        v = (0.035 * math.cos(0.7 * t), 0.046 * math.cos(2.3 * t))
        rig.rt.ingest(t, list(JOINTS), list(q), list(v), now=t)
        rig.rt.ingest_reward(0.5)
        outs.append(rig.rt.tick(now=t))
        if rig.k % step_every == 0:
            rig.orch.step()
    return outs


def feed_until(rig, t_end, **kw):
    return feed(rig, max(t_end - rig.clock.t, 0.0), **kw)


def reversed_candidate_rig(tmp_path, gate=None, **cfg):
    """A candidate that pushes the other way (a motor wired backwards), a gate that passes it, and
    shadow limits (divergence, saturation) the reversed candidate cannot meet next to a champion
    that has the cart past its bound. Returns the rig in SHADOW."""
    cfg = {"shadow_max_divergence": 0.05, "shadow_max_saturation": 0.1, "canary_weights": (0.25, 1.0),
           "canary_step_s": 1.0, "rescue_grace_s": 0.5, **cfg}
    rig = Rig(tmp_path, candidate_runner(lqr_policy_genome(sign=-1.0)),
              gate or FunctionGate(lambda req: GateOutcome(PASS, predicted_reward=0.5)), **cfg)
    feed(rig, 0.2)
    rig.drift()
    for _ in range(100):
        if rig.orch.phase is Phase.SHADOW:
            assert rig.rt.slot.candidate is not None and rig.rt.slot.canary is None
            return rig
        feed(rig, 0.1)
    raise AssertionError(rig.transitions())


def shadow_with_failing_champion(rig):
    """0.5 s of the 2 s shadow with the cart past its bound (the champion failing), then inside."""
    feed(rig, 0.5, slider=SLIDER_BOUND + 0.2)
    feed(rig, 1.6)


def transition(rig, to):
    found = [e for e in rig.events if e["event"] == "transition" and e["to"] == to]
    assert found, rig.transitions()
    return found[-1]


# ---------------------------------------------------------------------- orchestrator

def test_failing_champion_gets_a_rescue_canary_and_the_candidate_is_promoted(tmp_path):
    # a stepped canary would give the candidate authority only half of every 0.4 s slice
    rig = reversed_candidate_rig(tmp_path, canary_duty=0.5, canary_slice_s=0.4)
    cid = rig.orch.candidate_id
    shadow_with_failing_champion(rig)
    assert rig.orch.phase is Phase.CANARY, rig.transitions()
    canary = rig.rt.slot.canary
    assert canary.rescue and canary.weight == 1.0 and canary.duty == 1.0 and canary.grace_s == 0.5
    ev = transition(rig, "canary")
    assert ev["evidence"]["rescue"] is True and ev["evidence"]["weight"] == 1.0
    shadow = ev["evidence"]["shadow"]
    assert shadow["champion_failing"]
    assert shadow["outside_bounds"] >= 0.05 and shadow["joint_margin_min"] < 0.0
    # both pairwise limits were broken, and neither counted
    assert shadow["divergence_mean"] > 0.05 and shadow["saturation_challenger"] > 0.1
    assert rig.orch.counters["shadow_fail"] == 0

    # one full-authority step as long as both stepped ones together (2 x 1 s), on a tilted pole
    # where the candidate and the champion disagree far beyond the divergence guard (0.5)
    outs = feed_until(rig, canary.start + 1.85, hinge=0.3)
    assert rig.orch.phase is Phase.CANARY, rig.transitions()
    assert not rig.rt.tripped
    assert all(o.share == 1.0 for o in outs)
    assert min(abs(o.challenger_action[0] - o.champion_action[0]) for o in outs) > 0.5
    for o in outs:
        np.testing.assert_allclose(o.command, np.clip(o.challenger_action, -1.0, 1.0))
    feed_until(rig, canary.start + 2.25)
    assert rig.orch.phase is Phase.WATCH, rig.transitions()
    assert rig.registry.champion_id() == cid and rig.rt.slot.champion.genome_id == cid
    promoted = transition(rig, "promoted")["evidence"]["canary"]
    assert promoted["rescue"] is True and promoted["weights"] == [1.0]


def test_healthy_champion_keeps_the_pairwise_limits(tmp_path):
    rig = reversed_candidate_rig(tmp_path)
    feed(rig, 2.2)                                   # always inside the bounds
    assert rig.orch.counters["shadow_fail"] == 1 and rig.orch.phase is Phase.WATCHING
    ev = transition(rig, "watching")
    assert ev["from"] == "shadow" and not ev["evidence"]["shadow"]["champion_failing"]
    assert ev["evidence"]["shadow"]["outside_bounds"] == 0.0
    assert any("divergence" in p for p in ev["evidence"]["problems"])
    assert rig.registry.champion_id() == rig.champion_id
    assert len(rig.registry.list("rejected")) == 1
    assert rig.rt.slot.candidate is None and rig.rt.slot.canary is None


def test_a_champion_saturating_beyond_the_limit_is_failing_too(tmp_path):
    """Inside its joint bounds, a champion whose own commands saturate beyond the shadow limit (the
    walker on half-strength motors falls over and over inside its bounds, champion 55 % saturated)
    is failing: the candidate is not held to a saturation limit the champion breaks on the same
    states, and gets the rescue canary. (The tilted pole saturates the LQR champion's commands.)"""
    rig = reversed_candidate_rig(tmp_path)
    feed(rig, 2.2, hinge=0.3)
    ev = [e for e in rig.events if e["event"] == "transition" and e["from"] == "shadow"][-1]
    shadow = ev["evidence"]["shadow"]
    assert shadow["outside_bounds"] == 0.0 and shadow["saturation_reference"] > 0.1
    assert shadow["champion_failing"] and ev["to"] == "canary" and rig.rt.slot.canary.rescue
    assert rig.orch.counters["shadow_fail"] == 0


def gate_measuring_champion_at(champion_reward):
    return FunctionGate(lambda req: GateOutcome(PASS, predicted_reward=0.9, incumbent_reward=champion_reward))


@pytest.mark.parametrize("champion_reward, fraction, rescued", [(0.01, 0.5, True), (0.01, 0.0, False),
                                                                 (0.6, 0.5, False)])
def test_a_champion_the_gate_measured_failing_gets_the_rescue(tmp_path, champion_reward, fraction, rescued):
    """Inside its bounds and unsaturated live (a reversed motor the robot's joint limits hide: the
    reacher's champion at 1 % of its reward), the champion is failing when the gate's target episodes
    put it below `rescue_gate_fraction` of the candidate: the rescue skips the divergence limit a
    correct fix of a reversed motor must break. Above the fraction, or with it 0, the limit holds."""
    rig = reversed_candidate_rig(tmp_path, gate=gate_measuring_champion_at(champion_reward),
                                 rescue_gate_fraction=fraction)
    feed(rig, 2.2)                                   # always inside the bounds, small commands
    ev = [e for e in rig.events if e["event"] == "transition" and e["from"] == "shadow"][-1]
    shadow = ev["evidence"]["shadow"]
    assert shadow["outside_bounds"] == 0.0 and shadow["saturation_reference"] <= 0.1
    assert shadow["gate_rewards"] == {"candidate": 0.9, "champion": champion_reward}
    assert shadow["champion_failing"] is rescued
    if rescued:
        assert ev["to"] == "canary" and rig.rt.slot.canary.rescue and rig.orch.counters["shadow_fail"] == 0
    else:
        assert ev["to"] == "watching" and rig.orch.counters["shadow_fail"] == 1
        assert any("divergence" in p for p in ev["evidence"]["problems"])


def test_rescue_can_be_switched_off(tmp_path):
    rig = reversed_candidate_rig(tmp_path, rescue_failing_champion=False)
    shadow_with_failing_champion(rig)
    assert rig.orch.counters["shadow_fail"] == 1 and rig.orch.phase is Phase.WATCHING, rig.transitions()
    ev = transition(rig, "watching")
    assert ev["evidence"]["shadow"]["champion_failing"]          # seen, but not acted on
    assert any("divergence" in p for p in ev["evidence"]["problems"])
    assert "canary" not in [to for _, to in rig.transitions()]
    assert rig.registry.champion_id() == rig.champion_id
    assert len(rig.registry.list("rejected")) == 1


@pytest.mark.parametrize("fraction, rescued", [(0.2, True), (0.3, False)])
def test_rescue_threshold_is_the_outside_fraction(tmp_path, fraction, rescued):
    """The failing period covers 50 of ~210 shadow ticks (~0.24): a threshold below rescues, above rejects
    (the saturation limit above the champion's own saturation there, so that only the bounds decide)."""
    rig = reversed_candidate_rig(tmp_path, rescue_outside_fraction=fraction, shadow_max_saturation=0.5)
    shadow_with_failing_champion(rig)
    ev = [e for e in rig.events if e["event"] == "transition" and e["from"] == "shadow"][-1]
    assert 0.2 < ev["evidence"]["shadow"]["outside_bounds"] < 0.3
    if rescued:
        assert ev["to"] == "canary" and rig.rt.slot.canary.rescue
    else:
        assert ev["to"] == "watching" and rig.orch.counters["shadow_fail"] == 1


# ---------------------------------------------------------------------- runtime

def test_runtime_rescue_canary_has_no_divergence_guard(tmp_path):
    rig = reversed_candidate_rig(tmp_path, shadow_s=1000.0, shadow_timeout_s=1000.0)   # stays in shadow
    # a normal canary with a candidate that pushes the other way on a tilted pole: divergence trip
    rig.rt.install(canary=Canary(0.5, start=rig.clock.t))
    outs = feed(rig, 0.2, hinge=0.3, step_every=NEVER)
    assert rig.rt.tripped and rig.rt.last_trip.reason == "divergence"
    assert outs[0].tripped is not None and all(o.share == 0.0 for o in outs)   # on its first tick
    # the same policies, the same states, a rescue canary: full authority, the candidate's command
    rig.rt.install(canary=Canary(1.0, start=rig.clock.t, rescue=True, grace_s=0.5))
    assert not rig.rt.tripped
    outs = feed(rig, 0.2, hinge=0.3, step_every=NEVER)
    assert not rig.rt.tripped and all(o.tripped is None for o in outs)
    assert min(abs(o.challenger_action[0] - o.champion_action[0]) for o in outs) > 0.5
    for o in outs:
        assert o.share == 1.0
        np.testing.assert_allclose(o.command, np.clip(o.challenger_action, -1, 1))
        assert np.sign(o.command[0]) == -np.sign(o.champion_action[0])


def test_runtime_rescue_canary_waits_for_its_grace_before_the_joint_bounds(tmp_path):
    rig = reversed_candidate_rig(tmp_path, shadow_s=1000.0, shadow_timeout_s=1000.0)
    start = rig.clock.t
    rig.rt.install(canary=Canary(1.0, start=start, rescue=True, grace_s=0.5))
    outs = feed(rig, 0.4, slider=SLIDER_BOUND + 0.2, step_every=NEVER)   # outside, inside the grace
    assert not rig.rt.tripped and all(o.share == 1.0 for o in outs)
    feed(rig, 0.3, slider=SLIDER_BOUND + 0.2, step_every=NEVER)          # still outside, grace over
    assert rig.rt.tripped and rig.rt.last_trip.reason == "joint_bounds"
    assert start + 0.5 <= rig.rt.last_trip.t < start + 0.52             # the first tick after the grace


def test_healthy_champion_and_a_close_candidate_get_the_stepped_canary(tmp_path):
    """The ordinary path is unchanged: no rescue, the configured weights, canary_step_s each."""
    rig = Rig(tmp_path, candidate_runner(lqr_policy_genome(eps=0.06)),
              FunctionGate(lambda req: GateOutcome(PASS, predicted_reward=0.5)),
              canary_weights=(0.25, 1.0), canary_step_s=1.0)
    feed(rig, 0.2)
    rig.drift()
    rig.run_until(Phase.CANARY, 5.0, reward=0.5)
    canary = rig.rt.slot.canary
    assert not canary.rescue and canary.weight == 0.25
    assert transition(rig, "canary")["evidence"]["rescue"] is False
    feed_until(rig, canary.start + 0.85)
    assert rig.orch.phase is Phase.CANARY and rig.rt.slot.canary.weight == 0.25
    feed_until(rig, canary.start + 1.5)
    assert rig.orch.phase is Phase.CANARY and rig.rt.slot.canary.weight == 1.0
    feed_until(rig, canary.start + 2.5)
    assert rig.orch.phase is Phase.WATCH, rig.transitions()
    assert transition(rig, "promoted")["evidence"]["canary"]["weights"] == [0.25, 1.0]


def test_the_gate_reports_both_rewards_on_the_target():
    """What the gate job hands the orchestrator: the candidate's and the champion's mean per-tick
    reward over the target scenarios (other tags and metrics do not count)."""
    from controller.lifecycle import predicted_reward
    report = {"scenarios": [
        {"tag": "target", "metric": "mean_reward", "candidate": 0.9, "incumbent": 0.02},
        {"tag": "target", "metric": "mean_reward", "candidate": 0.8, "incumbent": 0.04},
        {"tag": "stress", "metric": "mean_reward", "candidate": 0.1, "incumbent": 0.9},
        {"tag": "target", "metric": "recovery", "candidate": -5.0, "incumbent": 7.0}]}
    assert predicted_reward(report) == pytest.approx(0.85)
    assert predicted_reward(report, "incumbent") == pytest.approx(0.03)
    assert predicted_reward({"scenarios": []}, "incumbent") is None
