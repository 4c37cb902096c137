"""The controller's fast path: numpy policy, bad input counted never raised, hot swap between ticks,
canary blend with in-tick guards, shadow and incumbent modes."""
import math
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.bootstrap import lqr_policy_genome
from controller.authority import Authority, Canary
from controller.compiled_policy import CompiledPolicy
from controller.guards import GuardConfig
from controller.joint_input import REFUSALS
from sim.observation import make_observation_map
from controller.runtime import ControllerRuntime, RuntimeConfig
from sim.policy import PolicySpec, init_policy, policy_act

JOINTS = ("slider", "hinge_1")
SPEC = PolicySpec(obs_dim=5, act_dim=1, hidden=(1,), discrete=False, act_low=-1.0, act_high=1.0)


def constant(value: float, gid: str = None) -> CompiledPolicy:
    """A policy whose action is `value` whatever the observation (only the output bias is set)."""
    w = np.zeros(SPEC.num_params, dtype=np.float32)
    w[-1] = value
    return CompiledPolicy(gid or f"const{value:+.2f}", SPEC, w)


def make_runtime(**kw) -> ControllerRuntime:
    guard = kw.pop("guard", GuardConfig.from_names(JOINTS, {"slider": [-1.5, 1.5]}, max_divergence=0.5))
    cfg = RuntimeConfig(joint_names=JOINTS, act_dim=1, act_low=(-1.0,), act_high=(1.0,), guard=guard, **kw)
    return ControllerRuntime(cfg, make_observation_map("cartpole"), clock=lambda: 0.0)


def feed(rt, t, pos=(0.0, 0.0), vel=(0.0, 0.0), names=JOINTS):
    return rt.ingest(t, list(names), list(pos), list(vel), now=t)


def test_compiled_policy_matches_sim_policy_act():
    spec = PolicySpec(obs_dim=5, act_dim=2, hidden=(8, 8), discrete=False, act_low=-1.0, act_high=1.0)
    w = init_policy(spec, 3) * 3
    obs = np.random.default_rng(0).normal(size=(20, 5))
    cp = CompiledPolicy("x", spec, w)
    ref = policy_act(spec, w[None].repeat(20, 0), obs)
    got = np.stack([cp.act(o) for o in obs])
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)


def test_lqr_champion_balances_the_cartpole_through_the_runtime():
    from sim.plants import make_plant
    g = lqr_policy_genome()
    rt = make_runtime()
    rt.install(champion=CompiledPolicy(g.id, g.policy_spec, g.vector))
    plant = make_plant("cartpole", seed=4)
    for k in range(1, 401):
        t = k * plant.control_dt
        q, v = plant.joint_positions(), plant.joint_velocities()
        # names in another order, with a joint this controller does not use
        assert rt.ingest(t, ["hinge_1", "other", "slider"], [q[1], 9.0, q[0]], [v[1], 0.0, v[0]], now=t)
        out = rt.tick(now=t)
        assert out.status == "ok"
        plant.act(out.command)
    assert plant.pole_upright() and abs(plant.joint_positions()[1]) < 0.05
    assert rt.counters()["refused_total"] == 0


def test_refusals_are_counted_by_reason():
    rt = make_runtime()
    rt.install(champion=constant(0.3))
    assert feed(rt, 1.0)
    assert not feed(rt, 1.0)                                   # duplicate stamp
    assert not feed(rt, 0.5)                                   # late message
    assert not feed(rt, 2.0, pos=(math.nan, 0.0))
    assert not feed(rt, 2.0, vel=(0.0, math.inf))
    assert not rt.ingest(2.0, ["slider"], [0.0], [0.0], now=2.0)            # missing joint
    assert not rt.ingest(2.0, ["slider", "slider", "hinge_1"], [0] * 3, [0] * 3, now=2.0)
    assert not rt.ingest(2.0, list(JOINTS), [0.0], [0.0, 0.0], now=2.0)     # wrong length
    assert not rt.ingest(2.0, list(JOINTS), [0.0, 0.0], [], now=2.0)        # no velocities (measured)
    assert not feed(rt, 2.0, pos=(1e9, 0.0))
    assert not feed(rt, math.nan)
    assert not feed(rt, 0.0)                                   # unstamped
    assert not rt.ingest(2.0, None, None, None, now=2.0)
    assert not rt.ingest(2.0, list(JOINTS), ["a", "b"], [0, 0], now=2.0)
    r = rt.refused
    assert (r["repeated_time"], r["backwards_time"], r["non_finite"], r["missing_joint"], r["duplicate_name"],
            r["wrong_length"], r["out_of_range"], r["bad_time"]) == (1, 1, 2, 1, 1, 1, 1, 2)
    assert r["bad_message"] == 2 and r["no_velocity"] == 1
    assert rt.accepted == 1
    assert rt.tick(now=1.01).status == "ok"


def test_clock_reset_is_accepted_after_a_run_of_backwards_stamps():
    rt = make_runtime(clock_reset_after=3)
    assert feed(rt, 100.0)
    assert not feed(rt, 1.0) and not feed(rt, 1.1)
    assert feed(rt, 1.2)                        # third backwards stamp in a row: a restarted clock
    assert rt.clock_resets == 1 and feed(rt, 1.3)


def test_stale_input_holds_the_safe_command_and_bursts_are_counted():
    rt = make_runtime(stale_timeout_s=0.1, safe_command=(0.0,), burst_limit=3)
    rt.install(champion=constant(0.7))
    assert rt.tick(now=0.0).status == "waiting"
    assert rt.tick(now=0.0).command.tolist() == [0.0]
    feed(rt, 1.0)
    assert rt.tick(now=1.05).command.tolist() == pytest.approx([0.7])
    out = rt.tick(now=1.2)
    assert out.status == "stale" and out.command.tolist() == [0.0]
    for k in range(5):
        feed(rt, 2.0 + k * 1e-3)
    assert rt.tick(now=2.0).status == "ok" and rt.ticks["bursts"] == 1
    assert rt.ticks["stale"] == 1


names_st = st.lists(st.sampled_from(["slider", "hinge_1", "cart", "", "slider ", "hinge_1"]), max_size=5)
num_st = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**12, 10**12))
vec_st = st.one_of(st.lists(num_st, max_size=5), st.none(), st.text(max_size=3),
                   st.lists(st.lists(num_st, max_size=2), max_size=2))
stamp_st = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none(), st.text(max_size=2),
                     st.integers(-5, 5))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(stamp_st, names_st, vec_st, vec_st), min_size=1, max_size=12))
def test_bad_joint_states_never_raise_and_are_counted(messages):
    rt = make_runtime(stale_timeout_s=10.0)
    rt.install(champion=constant(0.2))
    for i, (stamp, names, pos, vel) in enumerate(messages):
        ok = rt.ingest(stamp, names, pos, vel, now=float(i))
        assert ok in (True, False)
        out = rt.tick(now=float(i))
        assert out.command is not None and out.command.shape == (1,) and np.isfinite(out.command).all()
        assert out.status in ("ok", "waiting", "stale")
    c = rt.counters()
    assert c["accepted"] + c["refused_total"] == len(messages)
    assert set(rt.refused) == set(REFUSALS)
    assert c["internal_errors"] == 0 and c["ticks"] == len(messages)


def test_hot_swap_lands_between_ticks_never_inside_one():
    """A swap that happens while a tick is computing (here: from inside the observation map) is
    not seen by that tick; the next tick uses the new policy entirely."""
    rt = make_runtime()
    rt.install(champion=constant(0.1, "A"))
    inner = rt.obs_map
    swapped = []

    def obs_map_that_swaps(q, v):
        if not swapped:
            swapped.append(rt.install(champion=constant(-0.4, "B"), candidate=constant(0.9, "C"),
                                      canary=Canary(1.0)))
        return inner(q, v)

    obs_map_that_swaps.obs_dim = 5
    rt.obs_map = obs_map_that_swaps
    feed(rt, 1.0)
    first = rt.tick(now=1.0)
    assert first.command.tolist() == pytest.approx([0.1]) and first.challenger_action is None
    feed(rt, 1.01)
    second = rt.tick(now=1.01)
    assert second.champion_action.tolist() == pytest.approx([-0.4])
    assert second.challenger_action.tolist() == pytest.approx([0.9])


def test_concurrent_swaps_never_mix_policies():
    rt = make_runtime(stale_timeout_s=1e9)
    a, b = constant(0.25, "A"), constant(-0.25, "B")
    rt.install(champion=a)
    stop = threading.Event()

    def swapper():
        i = 0
        while not stop.is_set():
            rt.install(champion=(b if i % 2 else a))
            i += 1

    th = threading.Thread(target=swapper)
    th.start()
    try:
        feed(rt, 1.0)
        seen = set()
        for k in range(3000):
            out = rt.tick(now=1.0)
            seen.add(round(float(out.command[0]), 6))
    finally:
        stop.set()
        th.join()
    assert seen <= {0.25, -0.25}


def test_canary_blends_and_a_guard_hands_back_in_the_same_tick():
    rt = make_runtime(stale_timeout_s=1e9)
    rt.install(champion=constant(0.2, "champ"), candidate=constant(0.5, "cand"), canary=Canary(0.5))
    feed(rt, 1.0)
    out = rt.tick(now=1.0)
    assert out.share == 0.5 and out.command.tolist() == pytest.approx([0.35])
    # a candidate that diverges too much: tripped, champion-only from this tick on
    slot = rt.install(candidate=constant(-0.9, "bad"))
    out = rt.tick(now=1.01)
    assert out.tripped is not None and out.tripped.reason == "divergence"
    assert out.command.tolist() == pytest.approx([0.2]) and rt.tripped
    assert rt.last_trip.generation == slot.generation
    assert rt.tick(now=1.02).command.tolist() == pytest.approx([0.2])
    # a new slot clears the trip
    rt.install(candidate=constant(0.3, "ok"), canary=Canary(1.0))
    assert not rt.tripped and rt.tick(now=1.03).command.tolist() == pytest.approx([0.3])
    # joint outside its guard bounds while the challenger has a share
    feed(rt, 2.0, pos=(1.6, 0.0))
    out = rt.tick(now=2.0)
    assert out.tripped.reason == "joint_bounds" and out.command.tolist() == pytest.approx([0.2])


def test_canary_time_slices():
    c = Canary(0.5, start=10.0, slice_s=1.0, duty=0.25)
    assert c.share(10.1) == 0.5 and c.share(10.5) == 0.0 and c.share(11.2) == 0.5


def test_shadow_authority_publishes_nothing_and_compares_with_the_incumbent():
    rt = make_runtime(stale_timeout_s=1e9)
    rt.install(authority=Authority.NONE, champion=constant(0.2))
    feed(rt, 1.0)
    rt.ingest_incumbent([0.5], now=1.0)
    out = rt.tick(now=1.0)
    assert out.command is None and out.champion_action.tolist() == pytest.approx([0.2])
    cmp = rt.incumbent_comparison().to_dict()
    assert cmp["n"] == 1 and cmp["divergence_mean"] == pytest.approx(0.3)
    assert not rt.ingest_incumbent([0.1, 0.2]) and not rt.ingest_incumbent([math.nan])
    assert rt.incumbent_refused == 2


def test_incumbent_canary_relays_blends_and_hands_back():
    guard = GuardConfig.from_names(JOINTS, {}, max_divergence=0.5, incumbent_timeout_s=0.2)
    rt = make_runtime(stale_timeout_s=1e9, guard=guard)
    rt.install(authority=Authority.INCUMBENT, champion=constant(0.4))
    feed(rt, 1.0)
    rt.ingest_incumbent([0.2], now=1.0)
    assert rt.tick(now=1.0).command.tolist() == pytest.approx([0.2])       # relay outside windows
    rt.install(canary=Canary(1.0, start=1.0, slice_s=1.0, duty=0.5))
    assert rt.tick(now=1.1).command.tolist() == pytest.approx([0.4])       # champion in the window
    assert rt.tick(now=1.15).command.tolist() == pytest.approx([0.4])
    out = rt.tick(now=1.45)                                                  # incumbent went quiet
    assert out.tripped is not None and out.tripped.reason == "incumbent_stale"
    rt.ingest_incumbent([0.1], now=1.5)
    assert rt.tick(now=1.5).command.tolist() == pytest.approx([0.1])       # handed back


def test_incumbent_canary_goes_through_the_same_guards():
    """Next to an incumbent the champion is the challenger: handed back in the same tick when it
    diverges from the incumbent or a joint leaves its bounds. A rescue mark does not apply there
    (it is for a candidate replacing a failing champion)."""
    rt = make_runtime(stale_timeout_s=1e9)                   # slider in [-1.5, 1.5], max_divergence 0.5
    rt.install(authority=Authority.INCUMBENT, champion=constant(0.9, "champ"),
               canary=Canary(1.0, rescue=True, grace_s=100.0))
    feed(rt, 1.0)
    rt.ingest_incumbent([0.1], now=1.0)
    out = rt.tick(now=1.0)
    assert out.tripped is not None and out.tripped.reason == "divergence" and out.tripped.challenger == "champ"
    assert out.tripped.detail == "|a_champion - a_incumbent| = 0.8 > 0.5"
    assert out.command.tolist() == pytest.approx([0.1]) and out.share == 0.0
    rt.install(champion=constant(0.3, "near"))             # a new slot clears the trip
    feed(rt, 2.0, pos=(1.6, 0.0))
    rt.ingest_incumbent([0.1], now=2.0)
    out = rt.tick(now=2.0)
    assert out.tripped.reason == "joint_bounds" and out.tripped.detail.startswith("joint slider outside")
    assert out.command.tolist() == pytest.approx([0.1])


class FakeMonitor:
    def __init__(self, fail=False):
        self.calls, self.fail = [], fail

    def update(self, t, obs, action, reward):
        if self.fail:
            raise RuntimeError("boom")
        self.calls.append((t, obs.copy(), action.copy(), reward))
        return {"t": t} if len(self.calls) == 2 else None

    def resync(self):
        pass


def test_drift_monitor_is_updated_once_per_joint_state_and_events_are_queued():
    rt = make_runtime(stale_timeout_s=1e9)
    rt.monitor = FakeMonitor()
    rt.install(champion=constant(0.2))
    rt.ingest_reward(0.9)
    for k in range(3):
        feed(rt, 1.0 + k)
        rt.tick(now=1.0 + k)
        rt.tick(now=1.0 + k)          # a second tick on the same sample: no second update
    assert [c[0] for c in rt.monitor.calls] == [1.0, 2.0, 3.0]
    assert rt.monitor.calls[0][2].tolist() == pytest.approx([0.2]) and rt.monitor.calls[0][3] == 0.9
    assert list(rt.drift_events) == [{"t": 2.0}]
    rt.monitor = FakeMonitor(fail=True)
    feed(rt, 9.0)
    assert rt.tick(now=9.0).status == "ok" and rt.ticks["monitor_errors"] == 1


def test_a_deferred_monitor_update_runs_in_finish_tick_with_the_same_data():
    """The node publishes between tick(defer_monitor=True) and finish_tick(): the command does not
    wait for the drift monitor, and the monitor sees exactly what a plain tick would have given it."""
    plain, deferred = make_runtime(stale_timeout_s=1e9), make_runtime(stale_timeout_s=1e9)
    for rt in (plain, deferred):
        rt.monitor = FakeMonitor()
        rt.install(champion=constant(0.2))
    for k in range(3):
        feed(plain, 1.0 + k)
        feed(deferred, 1.0 + k)
        a = plain.tick(now=1.0 + k)
        b = deferred.tick(now=1.0 + k, defer_monitor=True)
        assert b.command.tolist() == a.command.tolist()
        assert len(deferred.monitor.calls) == k            # not yet: the command leaves first
        deferred.finish_tick()
        deferred.finish_tick()                             # nothing left to do: no second update
        assert len(deferred.monitor.calls) == k + 1
    assert [(c[0], c[1].tolist(), c[2].tolist()) for c in deferred.monitor.calls] == \
        [(c[0], c[1].tolist(), c[2].tolist()) for c in plain.monitor.calls]
    assert list(deferred.drift_events) == list(plain.drift_events) == [{"t": 2.0}]
    deferred.tick(now=3.5, defer_monitor=True)              # same sample again: nothing pending
    deferred.finish_tick()
    assert len(deferred.monitor.calls) == 3
    feed(deferred, 4.0)
    deferred.tick(now=4.0, defer_monitor=True)              # never finished: the next tick drops it,
    feed(deferred, 5.0)
    deferred.tick(now=5.0)                                  # ... and updates with its own sample
    assert [c[0] for c in deferred.monitor.calls] == [1.0, 2.0, 3.0, 5.0]
    assert deferred.tick_time_max_s >= deferred.tick_time_last_s > 0.0


def test_install_refuses_policies_that_do_not_fit():
    rt = make_runtime()
    with pytest.raises(ValueError):
        rt.install(champion=CompiledPolicy("x", PolicySpec(obs_dim=4, act_dim=1, hidden=(2,), discrete=False),
                                           np.zeros(13)))
    with pytest.raises(ValueError):
        CompiledPolicy("d", PolicySpec(obs_dim=5, act_dim=2, hidden=(2,), discrete=True), np.zeros(18))
    with pytest.raises(ValueError):
        CompiledPolicy("n", SPEC, np.full(SPEC.num_params, np.nan))
    assert rt.slot.champion is None


def test_kinematic_observation_matches_the_plant():
    from sim.plants import make_plant
    plant = make_plant("walker", seed=1)
    for _ in range(5):
        plant.act(np.zeros(plant.act_dim))
    m = make_observation_map("walker")
    np.testing.assert_allclose(m(plant.joint_positions(), plant.joint_velocities()), plant._observe(), atol=1e-9)
