"""The controller node with ``trigger: joint_states`` (one tick per accepted joint state, the
low-latency mode of `benchmarks/node_latency.py`) and the hot swap (promotion / rollback take effect
at the next control tick), over real DDS on loopback (private Context, own domain id and namespace).
"""
import json
import math
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from test_ros_nodes import NS, P, Session, domain, wait_for  # noqa: E402

from adapters.ros import controller_node as cn  # noqa: E402
from controller.bootstrap import bootstrap_registry, lqr_policy_genome  # noqa: E402
from controller.compiled_policy import CompiledPolicy  # noqa: E402
from sim.observation import CartpoleObservation  # noqa: E402
from safety.registry import Registry  # noqa: E402

pytestmark = pytest.mark.ros
JOINTS = ["slider", "hinge_1"]


@pytest.fixture
def session(request):
    offsets = {"test_joint_states_trigger_ticks_once_per_accepted_state": 21,
               "test_joint_states_trigger_holds_the_safe_command_when_the_topic_goes_silent": 22,
               "test_promotion_and_rollback_take_effect_at_the_next_tick": 23,
               "test_a_realtime_priority_not_in_force_is_reported_and_control_runs_on": 25,
               "test_joint_states_trigger_ticks_once_per_accepted_state[thread]": 26,
               "test_joint_states_trigger_holds_the_safe_command_when_the_topic_goes_silent[thread]": 27,
               "test_the_control_thread_runs_the_tick_survives_a_failing_tick_and_stops_on_cleanup": 28,
               "test_the_control_thread_ticks_at_rate_hz_with_trigger_timer": 29}
    name = request.node.name.replace("[executor]", "")
    s = Session(domain(offsets.get(name, 24)))
    yield s
    s.close()


def compiled(genome):
    return CompiledPolicy(genome.id, genome.policy_spec, genome.vector)


def state(k, stamp):
    """The k-th test joint state: near upright, a different cart position each time (distinct actions)."""
    m = JointState(name=JOINTS, position=[0.001 * (k % 200) - 0.1, 0.02], velocity=[0.0, 0.05])
    m.header.stamp.sec, m.header.stamp.nanosec = int(stamp), int(round((stamp % 1.0) * 1e9)) % 1_000_000_000
    return m


def controller(session, root, tag, **kw):
    params = dict(orchestrator__registry_path=str(root), runtime__trigger="joint_states", runtime__rate_hz=500.0,
                  monitor__config="none", adapt__enabled=False, ros__joint_states_topic=f"{tag}/joint_states",
                  ros__commands_topic=f"{tag}/commands")   # in NS
    params.update(kw)
    return session.add(cn.ControllerNode(namespace=NS, context=session.ctx, parameter_overrides=P(**params)))


@pytest.mark.parametrize("control_thread", [False, True], ids=["executor", "thread"])
def test_joint_states_trigger_ticks_once_per_accepted_state(session, tmp_path, control_thread):
    """Each accepted joint state produces exactly one command, computed from that state; refused
    states (NaN, repeated stamp, unknown joint set) produce none; no control timer in this mode (only
    the stale-data watchdog, which ticks when nothing arrived for stale_timeout_s)."""
    root = tmp_path / "registry"
    base = bootstrap_registry(root)
    ctl = controller(session, root, "trig", ros__autostart=True, runtime__stale_timeout_s=2.0, ros__control_thread=control_thread)
    commands = session.collect(Float64MultiArray, f"{NS}/trig/commands", 100)
    pub = session.probe.create_publisher(JointState, f"{NS}/trig/joint_states", 10)
    session.start()
    wait_for(lambda: ctl.lifecycle == "active" and pub.get_subscription_count() > 0, 30, "active controller")
    # no joint state yet: the watchdog ticks every stale_timeout_s / 2 and holds the safe command
    wait_for(lambda: commands and ctl.runtime.ticks["waiting"] >= 1, 10, "a waiting tick")
    assert ctl.runtime.ticks["ticks"] == ctl.runtime.ticks["waiting"] <= 3 and list(commands[-1].data) == [0.0]
    waiting = ctl.runtime.ticks["waiting"]
    del commands[:]
    policy, obs = compiled(lqr_policy_genome()), CartpoleObservation()
    assert ctl.runtime.slot.champion.genome_id == base == policy.genome_id
    t0 = time.time()
    sent = []
    for k in range(40):                          # lock-step: one state, wait for its command
        n = len(commands)
        msg = state(k, t0 + 0.01 * k)
        if k % 10 == 5:                          # a refused state right before each 5th good one
            bad = state(k, t0 + 0.01 * k - 0.005)
            bad.position = [math.nan, 0.0]
            pub.publish(bad)
        pub.publish(msg)
        sent.append(msg)
        wait_for(lambda: len(commands) > n, 10, f"the command for state {k}")
    pub.publish(state(39, t0 + 0.39))            # repeated stamp: refused, no tick
    wrong = state(40, t0 + 0.5)
    wrong.name = ["slider", "elbow"]             # a joint this controller does not know: refused
    pub.publish(wrong)
    wait_for(lambda: ctl.runtime.refused["repeated_time"] == 1 and ctl.runtime.refused["missing_joint"] == 1, 10,
             "refusals")
    time.sleep(0.3)
    rt = ctl.runtime
    assert rt.refused["non_finite"] == 4 and rt.accepted == 40
    assert rt.ticks["ok"] == 40 and rt.ticks["ticks"] == 40 + waiting and rt.ticks["stale"] == 0
    assert len(commands) == 40 and ctl.commands_published == 40 + waiting
    # the node's own in->out latency: one sample per state-triggered command (not the watchdog's)
    lat = ctl.status()["in_out_latency"]
    assert lat["n"] == 40 and lat["refused"] == 0 and 0 < lat["p50_us"] <= lat["p99_us"] < 1e6
    for msg, cmd in zip(sent, commands):
        expected = policy.act(obs(np.array(msg.position), np.array(msg.velocity)))
        np.testing.assert_allclose(cmd.data, expected, rtol=0, atol=1e-12)
    assert len({round(c.data[0], 9) for c in commands}) == 40          # one command per state, in order
    assert ctl.set_parameters([cn.Parameter("runtime.trigger", value="timer")])[0].successful is False   # read-only


@pytest.mark.parametrize("control_thread", [False, True], ids=["executor", "thread"])
def test_joint_states_trigger_holds_the_safe_command_when_the_topic_goes_silent(session, tmp_path, control_thread):
    """No joint states means no ticks in this mode, so a watchdog must tick: after stale_timeout_s
    the node holds the safe command and reports ERROR on /diagnostics, then resumes on new data."""
    root = tmp_path / "registry"
    bootstrap_registry(root)
    ctl = controller(session, root, "silent", ros__autostart=True, runtime__stale_timeout_s=0.2, runtime__safe_command=[0.25],
                     ros__diagnostics_rate_hz=5.0, ros__control_thread=control_thread)
    commands = session.collect(Float64MultiArray, f"{NS}/silent/commands", 100)
    diags = session.collect(DiagnosticArray, "/diagnostics", 50)
    pub = session.probe.create_publisher(JointState, f"{NS}/silent/joint_states", 10)
    session.start()
    wait_for(lambda: ctl.lifecycle == "active" and pub.get_subscription_count() > 0, 30, "active controller")
    t0 = time.time()
    for k in range(20):
        pub.publish(state(k, t0 + 0.01 * k))
        time.sleep(0.01)
    wait_for(lambda: ctl.runtime.ticks["ok"] == 20, 10, "20 ticks")

    def control_level():
        for arr in reversed(list(diags)):
            for st in arr.status:
                if st.name == f"{NS}/driftgate_controller: control":
                    return st.level, st.message
        return None, ""

    wait_for(lambda: commands and list(commands[-1].data) == [0.25], 10,
             f"the safe command ({ctl.runtime.last_output})")
    wait_for(lambda: control_level()[0] == b"\x02" and "stale" in control_level()[1], 10,
             f"ERROR on /diagnostics ({control_level()})")
    held = ctl.runtime.ticks["stale"]
    assert held >= 1
    n = len(commands)
    for k in range(20, 25):                      # the robot is back: one command per state again
        pub.publish(state(k, t0 + 5.0 + 0.01 * k))
        time.sleep(0.01)
    wait_for(lambda: ctl.runtime.ticks["ok"] == 25, 10, "ticks on fresh data")
    wait_for(lambda: len(commands) >= n + 5 and list(commands[-1].data) != [0.25], 10, "commands on fresh data")


def test_promotion_and_rollback_take_effect_at_the_next_tick(session, tmp_path):
    """While joint states stream at 200 Hz (one tick each), a rollback (`~/rollback`) and a promotion
    (the registry's champion changed; the orchestrator installs it) are hot swaps: every tick whose
    index is above the runtime's tick counter at the moment the swap completed computes with the new
    champion, and the first such tick is the next one (tick-counter distance 1)."""
    root = tmp_path / "registry"
    base = bootstrap_registry(root)
    bad = lqr_policy_genome(sign=-1.0)           # the opposite actions: every tick says which policy ran
    with Registry(root, actor="test") as reg:
        child = reg.add(bad, parent_id=base)
        reg.promote(child, force=True, reason="test: a champion with a stable ancestor")
    ctl = controller(session, root, "swap", orchestrator__step_s=0.05)
    assert ctl.trigger_configure() == cn.TransitionCallbackReturn.SUCCESS
    rt = ctl.runtime
    obs_map = CartpoleObservation()
    policies = {g.id: compiled(g) for g in (lqr_policy_genome(), bad, lqr_policy_genome(sign=-1.0, eps=0.06))}
    swaps, ticks = [], []
    install, tick = rt.install, rt.tick

    def recording_install(**kw):                 # the orchestrator's (and the service's) way in
        slot = install(**kw)
        if "champion" in kw:
            swaps.append((rt.ticks["ticks"], slot.champion.genome_id, time.perf_counter()))
        return slot

    def recording_tick(now=None, **kw):
        out = tick(now, **kw)
        s = rt._latest
        if out.champion_action is not None and s is not None:
            o = obs_map(s.positions, s.velocities)
            used = [gid for gid, p in policies.items() if np.array_equal(p.act(o), out.champion_action)]
            ticks.append((rt.ticks["ticks"], used, time.perf_counter()))
        return out

    rt.install, rt.tick = recording_install, recording_tick
    assert ctl.trigger_activate() == cn.TransitionCallbackReturn.SUCCESS
    pub = session.probe.create_publisher(JointState, f"{NS}/swap/joint_states", 10)
    session.start()
    wait_for(lambda: pub.get_subscription_count() > 0, 30, "subscription")
    stop = threading.Event()

    def stream():
        t0, k = time.time(), 0
        while not stop.is_set():
            pub.publish(state(k, t0 + 0.005 * k))
            k += 1
            time.sleep(0.005)

    streamer = threading.Thread(target=stream, daemon=True)
    streamer.start()
    try:
        wait_for(lambda: len(ticks) >= 50, 30, "50 ticks")
        assert rt.slot.champion.genome_id == child
        answer = session.call(Trigger, f"{NS}/driftgate_controller/rollback")
        assert answer.success, answer.message
        assert rt.slot.champion.genome_id == base           # swapped before the service answered
        wait_for(lambda: len(ticks) >= len([t for t in ticks if t[0] <= swaps[-1][0]]) + 50, 30, "50 more ticks")
        with Registry(root, actor="operator") as reg:        # a promotion from outside (registry CLI)
            newer = reg.add(lqr_policy_genome(sign=-1.0, eps=0.06), parent_id=base)
            reg.promote(newer, force=True, reason="test: external promotion")
        wait_for(lambda: rt.slot.champion.genome_id == newer, 30, "the orchestrator installs the new champion")
        wait_for(lambda: ticks[-1][0] >= swaps[-1][0] + 50, 30, "50 ticks after the promotion")
    finally:
        stop.set()
        streamer.join(timeout=5)
    assert [s[1] for s in swaps] == [base, newer]
    report = []
    for i, (at, gid, t_swap) in enumerate(swaps):
        until = swaps[i + 1][0] if i + 1 < len(swaps) else math.inf
        after = [t for t in ticks if at < t[0] <= until]
        assert after and all(gid in used for _, used, _ in after), (at, gid, after[:3])
        first = after[0]
        report.append({"genome": gid, "ticks_to_effect": first[0] - at,
                       "ms_to_first_command": 1e3 * (first[2] - t_swap)})
        assert first[0] - at == 1, report
    print(json.dumps(report))


def test_a_realtime_priority_not_in_force_is_reported_and_control_runs_on(session, tmp_path):
    """realtime_priority asked for, but this executor was not started by run_nodes or main() (the
    test's session spins it), so the tick thread runs SCHED_OTHER: the node says so (~/status,
    WARN on /diagnostics) and keeps controlling. (Granted and refused SCHED_FIFO: test_realtime.py;
    the CLI path: test_ros_nodes.py.)"""
    root = tmp_path / "registry"
    bootstrap_registry(root)
    ctl = controller(session, root, "rt", ros__autostart=True, ros__realtime_priority=5, runtime__stale_timeout_s=2.0,
                     ros__diagnostics_rate_hz=10.0)
    diags = session.collect(DiagnosticArray, "/diagnostics", 50)
    commands = session.collect(Float64MultiArray, f"{NS}/rt/commands", 100)
    pub = session.probe.create_publisher(JointState, f"{NS}/rt/joint_states", 10)
    session.start()
    wait_for(lambda: ctl.lifecycle == "active" and pub.get_subscription_count() > 0, 30, "active controller")
    t0 = time.time()
    for k in range(5):
        n = len(commands)
        pub.publish(state(k, t0 + 0.01 * k))
        wait_for(lambda: len(commands) > n, 10, f"the command for state {k}")
    sched = ctl.status()["scheduling"]
    assert sched["requested"] == 5 and sched["ok"] is False and sched["tick_thread"] == "SCHED_OTHER"
    assert "not applied" in sched["note"]

    def control_status():
        for arr in reversed(list(diags)):
            for st in arr.status:
                if st.name == f"{NS}/driftgate_controller: control":
                    return st
        return None
    wait_for(lambda: control_status() is not None and "realtime_priority 5 not in force" in control_status().message,
             10, f"WARN on /diagnostics ({control_status()})")
    st = control_status()
    assert st.level == b"\x01" and {kv.key: kv.value for kv in st.values}["scheduling"] == "SCHED_OTHER"
    assert ctl.runtime.ticks["ok"] == 5


def test_the_control_thread_runs_the_tick_survives_a_failing_tick_and_stops_on_cleanup(session, tmp_path):
    """control_thread: the joint-state subscription lives in the control loop's own wait set (a real
    rcl subscription of the node, invisible to the executor), every tick runs on that thread at the
    requested SCHED_FIFO priority (or says why not), a tick that raises is counted and the next state
    is controlled again, and lifecycle cleanup stops the thread and removes the subscription;
    configure brings both back."""
    root = tmp_path / "registry"
    bootstrap_registry(root)
    topic = f"{NS}/ct/joint_states"
    ctl = controller(session, root, "ct", ros__autostart=True, runtime__stale_timeout_s=2.0, ros__control_thread=True,
                     ros__realtime_priority=5)
    commands = session.collect(Float64MultiArray, f"{NS}/ct/commands", 100)
    pub = session.probe.create_publisher(JointState, topic, 10)
    session.start()
    wait_for(lambda: ctl.lifecycle == "active" and pub.get_subscription_count() > 0, 30, "active controller")
    loop = ctl.control_loop
    assert loop is not None and loop.alive
    assert all(s.topic_name != topic for s in ctl.subscriptions)          # not the executor's
    t0, k = time.time(), 0

    def send(n_states):
        nonlocal k
        for _ in range(n_states):
            n = len(commands)
            pub.publish(state(k, t0 + 0.01 * k))
            k += 1
            wait_for(lambda: len(commands) > n, 10, f"the command for state {k - 1}")

    send(10)
    assert ctl._tick_tid == loop.native_id != session._thread.native_id     # ticks on the control thread
    st = ctl.status()
    assert st["control_loop"]["alive"] and st["control_loop"]["messages"] >= 10
    assert st["in_out_latency"]["n"] == 10
    sched = st["scheduling"]
    if loop.scheduling.granted:
        assert sched["ok"] and sched["tick_thread"] == "SCHED_FIFO 5"
    else:                                                                   # no CAP_SYS_NICE here
        assert not sched["ok"] and sched["note"] == loop.scheduling.error != ""

    tick = ctl.runtime.tick
    failures = []

    def failing_tick(*a, **kw):
        if not failures:
            failures.append(1)
            raise RuntimeError("a bug in the tick")
        return tick(*a, **kw)

    ctl.runtime.tick = failing_tick
    n = len(commands)
    pub.publish(state(k, t0 + 0.01 * k))                                   # this one's tick raises
    k += 1
    wait_for(lambda: loop.counters["callback_errors"] == 1, 10, "the failing tick counted")
    send(5)                                                                 # and control goes on
    assert len(commands) == n + 5 and loop.alive and "a bug in the tick" in loop.last_error
    assert ctl.status()["control_loop"]["callback_errors"] == 1

    assert ctl.trigger_deactivate() == cn.TransitionCallbackReturn.SUCCESS
    assert ctl.trigger_cleanup() == cn.TransitionCallbackReturn.SUCCESS
    assert not loop.alive and ctl.control_loop is None
    wait_for(lambda: pub.get_subscription_count() == 0, 10, "the subscription gone with the loop")
    assert ctl.trigger_configure() == cn.TransitionCallbackReturn.SUCCESS
    assert ctl.trigger_activate() == cn.TransitionCallbackReturn.SUCCESS
    assert ctl.control_loop is not None and ctl.control_loop is not loop and ctl.control_loop.alive
    wait_for(lambda: pub.get_subscription_count() == 1, 10, "the subscription back")
    send(3)
    assert ctl._tick_tid == ctl.control_loop.native_id


def test_the_control_thread_ticks_at_rate_hz_with_trigger_timer(session, tmp_path):
    """control_thread with trigger timer: joint states are only taken in (no tick per state), the
    loop's deadline ticks, one tick per deadline, waiting (safe command) before any state and on
    the latest state after."""
    root = tmp_path / "registry"
    bootstrap_registry(root)
    ctl = controller(session, root, "ctt", ros__autostart=True, runtime__trigger="timer", runtime__rate_hz=100.0, runtime__stale_timeout_s=2.0,
                     ros__control_thread=True)
    commands = session.collect(Float64MultiArray, f"{NS}/ctt/commands", 100)
    pub = session.probe.create_publisher(JointState, f"{NS}/ctt/joint_states", 10)
    session.start()
    wait_for(lambda: ctl.lifecycle == "active" and pub.get_subscription_count() > 0, 30, "active controller")
    wait_for(lambda: ctl.runtime.ticks["waiting"] >= 5, 10, "waiting ticks before any joint state")
    assert ctl.runtime.ticks["ok"] == 0 and list(commands[-1].data) == [0.0]
    t0 = time.time()
    for k in range(5):
        pub.publish(state(k, t0 + 0.01 * k))
        time.sleep(0.01)
    wait_for(lambda: ctl.runtime.accepted == 5, 10, "5 states taken in")
    ok = ctl.runtime.ticks["ok"]
    wait_for(lambda: ctl.runtime.ticks["ok"] >= ok + 10, 10, "ticks on the latest state without new states")
    loop = ctl.control_loop
    assert ctl.runtime.accepted == 5 and loop.counters["messages"] == 5
    assert ctl._tick_tid == loop.native_id
    before = loop.counters["deadlines"]
    ticks = ctl.runtime.ticks["ticks"]
    after = loop.counters["deadlines"]
    assert before - 1 <= ticks <= after                                   # one tick per deadline
    expected = compiled(lqr_policy_genome()).act(CartpoleObservation()(np.array(state(4, 0).position),
                                                                       np.array(state(4, 0).velocity)))
    np.testing.assert_allclose(commands[-1].data, expected, rtol=0, atol=1e-12)
