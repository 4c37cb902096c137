"""Rescue canary: when the champion itself keeps the live robot outside the guard bounds, a
candidate is not judged by its distance to it (controller.orchestrator, controller.runtime)."""
import math

import numpy as np

from controller.bootstrap import lqr_policy_genome
from controller.contracts import PASS, GateOutcome
from controller.jobs import FunctionGate
from controller.orchestrator import Phase
from controller.runtime import Canary, CompiledPolicy
from test_orchestrator import JOINTS, Rig, candidate_runner


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


def reversed_candidate_rig(tmp_path, **cfg):
    """A candidate that pushes the other way (a motor wired backwards), a gate that passes it, and
    a shadow limit the reversed candidate cannot meet."""
    cfg = {"shadow_max_divergence_mean": 0.05, "canary_weights": (0.25, 1.0), "canary_step_s": 1.0,
           "rescue_grace_s": 0.5, **cfg}
    rig = Rig(tmp_path, candidate_runner(lqr_policy_genome(sign=-1.0)),
              FunctionGate(lambda req: GateOutcome(PASS, predicted_reward=0.5)), **cfg)
    feed(rig, 0.2)
    rig.drift()
    for _ in range(100):
        if rig.orch.phase is Phase.SHADOW:
            return rig
        feed(rig, 0.1)
    raise AssertionError(rig.transitions())


def test_failing_champion_gets_a_rescue_canary_and_the_candidate_is_promoted(tmp_path):
    rig = reversed_candidate_rig(tmp_path)
    cid = rig.orch.candidate_id
    feed(rig, 0.5, slider=1.7)                       # the champion has the cart past its bound (1.5)
    feed(rig, 1.6)                                   # back inside: shadow ends after 2 s
    assert rig.orch.phase is Phase.CANARY, rig.transitions()
    canary = rig.rt.slot.canary
    assert canary.rescue and canary.weight == 1.0 and canary.grace_s == 0.5
    shadow = [e for e in rig.events if e.get("to") == "canary"][0]
    assert shadow["evidence"]["rescue"] and shadow["evidence"]["shadow"]["outside_bounds"] >= 0.05
    outs = feed(rig, 1.0)
    assert all(o.share == 1.0 for o in outs)        # full authority, no divergence trip
    assert rig.orch.phase is Phase.CANARY           # one step as long as both stepped ones (2 x 1 s)
    feed(rig, 1.2)
    assert rig.orch.phase is Phase.WATCH and rig.registry.champion_id() == cid
    assert rig.rt.slot.champion.genome_id == cid


def test_healthy_champion_keeps_the_pairwise_limits(tmp_path):
    rig = reversed_candidate_rig(tmp_path)
    feed(rig, 2.2)                                   # always inside the bounds
    assert rig.orch.counters["shadow_fail"] == 1 and rig.orch.phase is Phase.WATCHING
    assert rig.registry.champion_id() == rig.champion_id
    assert len(rig.registry.list("rejected")) == 1


def test_rescue_can_be_switched_off(tmp_path):
    rig = reversed_candidate_rig(tmp_path, rescue_failing_champion=False)
    feed(rig, 0.5, slider=1.7)
    feed(rig, 1.7)
    assert rig.orch.counters["shadow_fail"] == 1 and rig.orch.phase is Phase.WATCHING
    assert rig.registry.champion_id() == rig.champion_id




def test_runtime_rescue_canary_skips_the_divergence_guard_and_waits_for_its_grace(tmp_path):
    rig = reversed_candidate_rig(tmp_path, shadow_s=1000.0, shadow_timeout_s=1000.0)   # stays in shadow
    slot = rig.rt.slot
    assert slot.candidate is not None
    # a normal canary with a candidate that pushes the other way on a tilted pole: divergence trip
    rig.rt.install(canary=Canary(0.5, start=rig.clock.t))
    outs = feed(rig, 0.2, hinge=0.3, step_every=10 ** 9)
    assert rig.rt.tripped and rig.rt.last_trip.reason == "divergence"
    assert max(abs(o.challenger_action[0] - o.champion_action[0]) for o in outs
               if o.challenger_action is not None) > 0.5
    # a rescue canary: full authority, the command is the candidate's own action
    rig.rt.install(canary=Canary(1.0, start=rig.clock.t, rescue=True, grace_s=0.5))
    outs = feed(rig, 0.2, hinge=0.3, step_every=10 ** 9)
    assert not rig.rt.tripped
    for o in outs:
        np.testing.assert_allclose(o.command, np.clip(o.challenger_action, -1, 1))
    # outside the joint bounds within the grace: no trip; after the grace: trip
    rig.rt.install(canary=Canary(1.0, start=rig.clock.t, rescue=True, grace_s=0.5))
    feed(rig, 0.3, slider=1.7, step_every=10 ** 9)
    assert not rig.rt.tripped
    feed(rig, 0.4, slider=1.7, step_every=10 ** 9)
    assert rig.rt.tripped and rig.rt.last_trip.reason == "joint_bounds"
