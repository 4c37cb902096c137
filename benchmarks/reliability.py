"""Reliability: what a robot stack and an attacker would try, and what driftgate does with it.

Four batteries, every case classified as one of

* **refused cleanly**: the bad input was refused with a one-line reason (exit status 2 or 1, a
  refusal counter, a failed parameter set) and nothing changed;
* **survived**: the input is legal but hard (a flood, silence, a clock reset, a reordered message)
  and the system did the documented thing;
* failures: **traceback** (an exception escaped), **silent acceptance** (bad input taken as
  good), **unsafe command** (a non-finite or out-of-bounds command reached the robot, or no safe
  command within the stale timeout), **lost or corrupt state** (a registry that fails `verify`,
  a champion that is neither the one before nor the one after, a trace of a refused operation),
  **hang** (no answer within the case's time limit).

The batteries:

1. **robot stack**: an external rclpy client around `driftgate node controller` (a child
   process, control thread on, the nominal LQR champion): valid streams, NaN/inf/huge values,
   wrong lengths, missing/duplicate/extra/reordered names, positions-only messages, repeated,
   backwards and zero stamps, a clock reset, silence, a ~10 kHz flood, incumbent garbage, and
   run-time parameter sets (`rcl_interfaces/SetParameters`, what `ros2 param set` calls);
2. **start-up parameters**: `driftgate node controller --set ...` with bad values of every rule
   class, mistyped keys and hostile parameter files;
3. **hostile files**: genome files (`registry add`), registry database bytes (random flips),
   audit log edits, bags (`driftgate replay`), configs (suites, monitor, replay);
4. **SIGKILL** during promote / rollback (tests/test_registry_crash.py's forking worker), at
   random points, with `verify` and the champion checked after every kill.

    nice -n 10 python benchmarks/reliability.py                 # full: benchmarks/results/reliability.{json,md}
    python benchmarks/reliability.py --smoke                    # seconds; writes to a temp dir only
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OK_OUTCOMES = ("refused cleanly", "survived")
FAILURES = ("traceback", "silent acceptance", "unsafe command", "lost or corrupt state", "hang")


@dataclass
class Case:
    battery: str
    name: str
    outcome: str
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Report:
    cases: list[Case] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)      # battery summaries (not cases)
    work: str = ""                                      # the temporary directory, written as <tmp>

    def scrub(self, text: str) -> str:
        text = " ".join(str(text).split())
        return text.replace(self.work, "<tmp>") if self.work else text

    def add(self, battery: str, name: str, outcome: str, detail: str = "", seconds: float = 0.0) -> None:
        assert outcome in OK_OUTCOMES + FAILURES, outcome
        self.cases.append(Case(battery, name, outcome, self.scrub(detail)[:300], round(seconds, 3)))
        mark = "  " if outcome in OK_OUTCOMES else "!!"
        print(f"{mark} [{battery}] {name}: {outcome} {('- ' + self.cases[-1].detail) if detail else ''}",
              flush=True)

    def run(self, battery: str, name: str, fn: Callable[[], tuple[str, str]]) -> None:
        t0 = time.monotonic()
        try:
            outcome, detail = fn()
        except Exception as e:      # a bug in the harness or in driftgate: counted, never hidden
            outcome, detail = "traceback", f"{type(e).__name__}: {e} @ {traceback.format_exc().splitlines()[-3:]}"
        self.add(battery, name, outcome, detail, time.monotonic() - t0)


# ====================================================================== shared helpers

def cli(args: list[str], timeout: float = 120.0, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", "from adapters.cli import main; main()", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def judge_cli(r, *, expect_codes=(1, 2), needle: str = "") -> tuple[str, str]:
    """A refusal through the CLI: non-zero exit, last stderr line 'error: ...', no traceback."""
    text = (r.stdout or "") + (r.stderr or "")
    lines = [ln for ln in (r.stderr or "").strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    if "Traceback (most recent call last)" in text:
        return "traceback", last or text[-200:]
    if r.returncode == 0:
        return "silent acceptance", f"exit 0; {last or (r.stdout or '')[-200:]}"
    if r.returncode not in expect_codes or not (last.startswith("error: ") or last.startswith("FAILED: ")):
        return "traceback", f"exit {r.returncode}, last line {last!r}"
    if needle and needle not in last:
        return "traceback", f"refused but without naming {needle!r}: {last}"
    return "refused cleanly", f"exit {r.returncode}: {last[:200]}"


def invoke(app, args: list[str], timeout: float = 60.0):
    """typer CliRunner in a thread with a deadline (a hostile FIFO must not hang the benchmark)."""
    from typer.testing import CliRunner
    box: dict = {}

    def go():
        box["r"] = CliRunner().invoke(app, [str(a) for a in args])
    th = threading.Thread(target=go, daemon=True)
    th.start()
    th.join(timeout)
    return box.get("r")


def judge_invoke(r, *, needle: str = "") -> tuple[str, str]:
    if r is None:
        return "hang", "no answer within the time limit"
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        return "traceback", f"{type(r.exception).__name__}: {r.exception}"
    err = r.stderr.strip().splitlines()
    last = err[-1] if err else ""
    if r.exit_code == 0:
        return "silent acceptance", f"exit 0: {r.stdout.strip()[:160]}"
    if not (last.startswith("error: ") or last.startswith("FAILED: ") or "also:" in last):
        return "traceback", f"exit {r.exit_code}, stderr {r.stderr[-200:]!r}"
    if needle and needle not in r.stderr:
        return "traceback", f"refused without naming {needle!r}: {last}"
    return "refused cleanly", f"exit {r.exit_code}: {err[0][:200]}"


# ====================================================================== 1. robot stack

class RobotStack:
    """An external rclpy client: publishes joint states / incumbent commands, records commands,
    calls the node's ~/status and parameter services."""

    def __init__(self, ns: str, domain_id: int) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float64MultiArray
        self.ns, self.JointState, self.domain_id = ns, JointState, domain_id
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=domain_id)
        self.node = rclpy.create_node("robot_stack", namespace=ns, context=self.ctx)
        self.js = self.node.create_publisher(JointState, f"{ns}/joint_states", qos_profile_sensor_data)
        self.inc = self.node.create_publisher(Float64MultiArray, f"{ns}/incumbent", qos_profile_sensor_data)
        self.commands: list[tuple[float, list[float]]] = []
        self.node.create_subscription(Float64MultiArray, f"{ns}/commands",
                                      lambda m: self.commands.append((time.monotonic(), list(m.data))),
                                      QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.t = 1000.0            # synthetic header stamps: strictly increasing unless a case says otherwise

    def stamp(self, dt: float = 0.01) -> float:
        self.t += dt
        return self.t

    def send(self, names=("slider", "hinge_1"), pos=(0.0, 0.0), vel=(0.0, 0.0), stamp: float | None = None) -> None:
        m = self.JointState(name=list(names), position=[float(x) for x in pos], velocity=[float(x) for x in vel])
        s = self.stamp() if stamp is None else stamp
        m.header.stamp.sec = int(math.floor(s)) if math.isfinite(s) and s > 0 else 0
        m.header.stamp.nanosec = int((s - math.floor(s)) * 1e9) if math.isfinite(s) and s > 0 else 0
        self.js.publish(m)

    def stream(self, seconds: float, hz: float = 100.0) -> int:
        n, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            self.send()
            n += 1
            time.sleep(1.0 / hz)
        return n

    def call(self, srv_type, name: str, request=None, timeout: float = 20.0):
        client = self.node.create_client(srv_type, f"{self.ns}/driftgate_controller/{name}")
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f"service {name} not available")
            fut = client.call_async(request if request is not None else srv_type.Request())
            end = time.monotonic() + timeout
            while not fut.done() and time.monotonic() < end:
                time.sleep(0.01)
            if not fut.done():
                raise TimeoutError(f"no answer from {name}")
            return fut.result()
        finally:
            self.node.destroy_client(client)

    def status(self) -> dict:
        from std_srvs.srv import Trigger
        return json.loads(self.call(Trigger, "status").message)

    def set_param(self, name: str, value) -> tuple[bool, str]:
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter
        req = SetParameters.Request()
        req.parameters = [Parameter(name, value=value).to_parameter_msg()]
        res = self.call(SetParameters, "set_parameters", req).results[0]
        return bool(res.successful), res.reason

    def close(self) -> None:
        import rclpy
        self.executor.shutdown(timeout_sec=5)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)


SAFE = 0.25          # the configured safe command: distinguishable from the champion's action at rest

# The flood publisher (argv: namespace, seconds, first stamp); prints "<sent> <seconds>".
FLOOD = """
import sys, time, rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
ns, seconds, t, rate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
rclpy.init()
node = rclpy.create_node("flood", namespace=ns)
pub = node.create_publisher(JointState, ns + "/joint_states", qos_profile_sensor_data)
msg = JointState(name=["slider", "hinge_1"], position=[0.0, 0.0], velocity=[0.0, 0.0])
time.sleep(1.0)                                  # discovery
n, t0 = 0, time.monotonic()
while time.monotonic() - t0 < seconds:
    t += 1e-5
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(t), int((t - int(t)) * 1e9)
    pub.publish(msg)
    n += 1
    if rate and n % 50 == 0:                     # paced in bursts of 50 (0 = as fast as it goes)
        ahead = t0 + n / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
print(n, time.monotonic() - t0)
"""


def robot_stack_battery(rep: Report, work: Path, smoke: bool) -> None:
    battery = "robot stack"
    domain_id = int(os.environ.get("ROS_DOMAIN_ID", "112"))
    ns = f"/rel{os.getpid()}"
    reg = work / "stack-registry"
    args = ["node", "controller", "--params", str(ROOT / "launch" / "driftgate.yaml"), "--namespace", ns.strip("/"),
            "--domain-id", str(domain_id),
            "--set", f"orchestrator.registry_path={reg}", "--set", "orchestrator.bootstrap_champion=lqr", "--set", "monitor.config=none",
            "--set", "adapt.enabled=false", "--set", f"runtime.safe_command=[{SAFE}]",      # realtime_priority: the shipped 50
            "--set", f"ros.joint_states_topic={ns}/joint_states", "--set", f"ros.commands_topic={ns}/commands",
            "--set", f"ros.incumbent_topic={ns}/incumbent", "--set", "gate.suite=''"]
    log = open(work / "controller.log", "w")
    proc = subprocess.Popen([sys.executable, "-c", "from adapters.cli import main; main()", *args], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    stack = None
    try:
        stack = RobotStack(ns, domain_id)
        end = time.monotonic() + 90
        st = None
        while time.monotonic() < end and proc.poll() is None:
            try:
                st = stack.status()
                if st.get("lifecycle") == "active":
                    break
            except TimeoutError:
                pass
            time.sleep(0.5)
        if st is None or st.get("lifecycle") != "active":
            rep.add(battery, "controller starts", "traceback", f"not active: {(work / 'controller.log').read_text()[-400:]}")
            return
        sched = st.get("scheduling") or {}
        rep.notes.append(f"robot stack: `driftgate node controller --params launch/driftgate.yaml` (control thread, "
                         f"realtime_priority {sched.get('requested')}: tick thread on {sched.get('tick_thread') or '?'}"
                         f"{'' if sched.get('ok') else ', not granted: ' + str(sched.get('note'))}), the nominal LQR "
                         f"champion, safe_command [{SAFE}], this benchmark and its clients under nice 10. Without "
                         "SCHED_FIFO, on this shared 2-core VM at load ~11, floods were answered with late deadlines "
                         "(22-45 in 3 s), as any tick starved of CPU would be.")
        _stack_cases(rep, stack, proc, smoke)
    finally:
        if stack is not None:
            stack.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
    text = (work / "controller.log").read_text()
    rep.add(battery, "controller process: no traceback over the whole battery, clean exit on SIGTERM",
            "traceback" if "Traceback" in text or proc.returncode not in (0, -signal.SIGTERM) else "survived",
            f"exit {proc.returncode}")


def _commands_safe(cmds: list[tuple[float, list[float]]]) -> str | None:
    for _, c in cmds:
        if len(c) != 1 or not all(math.isfinite(x) and -1.0 <= x <= 1.0 for x in c):
            return f"command {c}"
    return None


def _stack_cases(rep: Report, stack: RobotStack, proc, smoke: bool) -> None:
    battery = "robot stack"
    NAMES = ("slider", "hinge_1")

    def counters():
        st = stack.status()
        c = dict(st["counters"])
        loop = st.get("control_loop")
        c["dropped"] = loop.get("dropped", 0) if isinstance(loop, dict) else 0
        c["late_deadlines"] = loop.get("late_deadlines", 0) if isinstance(loop, dict) else 0
        c["deadlines"] = loop.get("deadlines", 0) if isinstance(loop, dict) else 0
        c["commands_published"] = st["commands_published"]
        return c

    def refused_case(name: str, reason: str, send: Callable[[], None], n: int = 5,
                     expect_accept: bool = False) -> None:
        def go():
            stack.stream(0.2)                          # a healthy robot first
            time.sleep(0.1)
            before, k0 = counters(), len(stack.commands)
            for _ in range(n):
                send()
                time.sleep(0.005)
            time.sleep(0.3)
            after = counters()
            unsafe = _commands_safe(stack.commands[k0:])
            if unsafe:
                return "unsafe command", unsafe
            if proc.poll() is not None:
                return "traceback", f"controller exited {proc.returncode}"
            d_acc = after["accepted"] - before["accepted"]
            d_ref = after[f"refused_{reason}"] - before[f"refused_{reason}"] if reason else 0
            if expect_accept:
                return ("survived", f"accepted {d_acc}/{n}") if d_acc == n else \
                    ("silent acceptance" if d_acc > n else "survived", f"accepted {d_acc}/{n} (transport loss?)")
            if d_acc > 0:
                return "silent acceptance", f"{d_acc} of {n} accepted"
            return ("refused cleanly", f"refused_{reason} +{d_ref}") if d_ref == n else \
                ("refused cleanly", f"refused_{reason} +{d_ref} of {n} sent (the rest lost in transport)")
        rep.run(battery, name, go)

    nan, inf = math.nan, math.inf
    refused_case("NaN position", "non_finite", lambda: stack.send(pos=(nan, 0.0)))
    refused_case("inf velocity", "non_finite", lambda: stack.send(vel=(0.0, -inf)))
    refused_case("huge position 1e300", "out_of_range", lambda: stack.send(pos=(1e300, 0.0)))
    refused_case("positions only (velocity_source measured)", "no_velocity", lambda: stack.send(vel=()))
    if smoke:
        return
    refused_case("more positions than names", "wrong_length", lambda: stack.send(pos=(0.0, 0.0, 0.0)))
    refused_case("fewer velocities than names", "wrong_length", lambda: stack.send(vel=(0.0,)))
    refused_case("a joint missing", "missing_joint", lambda: stack.send(names=("slider",), pos=(0.0,), vel=(0.0,)))
    refused_case("duplicate joint names", "duplicate_name",
                 lambda: stack.send(names=("slider", "slider", "hinge_1"), pos=(0,) * 3, vel=(0,) * 3))
    refused_case("empty message", "wrong_length", lambda: stack.send(names=(), pos=(0.0,), vel=()))
    refused_case("zero stamp (unstamped)", "bad_time", lambda: stack.send(stamp=0.0))
    refused_case("repeated stamp", "repeated_time", lambda: stack.send(stamp=stack.t))
    refused_case("backwards stamp (a late message)", "backwards_time", lambda: stack.send(stamp=stack.t - 5.0), n=3)
    refused_case("reordered names + an extra joint", "", lambda: stack.send(
        names=("hinge_1", "other", "slider"), pos=(0.0, 9.0, 0.0), vel=(0.0, 0.0, 0.0)), expect_accept=True)
    if not smoke:
        refused_case("NaN in an unused extra joint (not ours: accepted)", "", lambda: stack.send(
            names=("slider", "hinge_1", "x"), pos=(0.0, 0.0, math.nan), vel=(0.0, 0.0, 0.0)), expect_accept=True)
        refused_case("non-UTF-8-ish names", "missing_joint", lambda: stack.send(names=("sl\u00efder", "h\x01"), pos=(0, 0),
                                                                              vel=(0, 0)))
        refused_case("negative zero / subnormal values", "", lambda: stack.send(pos=(-0.0, 5e-324), vel=(0.0, -0.0)),
                     expect_accept=True)

    def clock_reset():
        stack.stream(0.2)
        before = counters()
        base = 10.0                                  # the robot restarted: its clock begins again
        for k in range(15):
            stack.send(stamp=base + 0.01 * k)
            time.sleep(0.01)
        time.sleep(0.3)
        after = counters()
        resets = after["clock_resets"] - before["clock_resets"]
        stack.t = base + 0.2
        ok = resets == 1 and after["refused_backwards_time"] - before["refused_backwards_time"] == 9
        return ("survived" if ok else "silent acceptance",
                f"clock_resets +{resets}, backwards refused "
                f"+{after['refused_backwards_time'] - before['refused_backwards_time']}, then accepted")
    rep.run(battery, "clock reset (stamps restart from 10 s: 9 refused, then taken as a reset)", clock_reset)

    def silence():
        stack.stream(0.3)
        last = time.monotonic()
        k0 = len(stack.commands)
        time.sleep(0.6)
        cmds = stack.commands[k0:]
        held = [t for t, c in cmds if c == [SAFE] and t > last]
        unsafe = _commands_safe(cmds)
        if unsafe:
            return "unsafe command", unsafe
        if not held:
            return "unsafe command", "no safe command while the joint states were silent"
        delay = held[0] - last
        st = stack.status()
        resumed_from = len(stack.commands)
        stack.stream(0.3)
        back = [c for _, c in stack.commands[resumed_from:] if c != [SAFE]]
        ok = delay <= 0.1 + 0.05 and back and st["last_tick_status"] == "stale"
        return ("survived" if ok else "unsafe command",
                f"safe command {SAFE} {1e3 * delay:.0f} ms after the last joint state (stale timeout 100 ms), "
                f"status {st['last_tick_status']}, control back: {bool(back)}")
    rep.run(battery, "silence 0.6 s, then data resumes", silence)

    def flood(rate: float, seconds: float = 1.0 if smoke else 3.0):
        """A publisher process of its own (so that this client's GIL does not delay the commands it
        timestamps) sends joint states as fast as it can; the node's control loop must run every
        deadline on time (late_deadlines: a deadline more than one period late) and the commands
        keep coming (longest gap at the client <= the 100 ms stale timeout)."""
        stack.stream(0.2)
        before = counters()
        k0 = len(stack.commands)
        start = stack.t + 1.0
        stack.t = start + 100.0                       # the flood's stamps lie between; ours resume after
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-c", FLOOD, stack.ns, str(seconds), repr(start), str(rate)], cwd=ROOT,
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, "ROS_DOMAIN_ID": str(stack.domain_id)})
        wall = time.monotonic() - t0
        time.sleep(0.2)
        sent, flood_s = (float(x) for x in r.stdout.split()[-2:])
        t_end = t0 + wall
        cmds = [c for c in stack.commands[k0:] if c[0] <= t_end]
        after = counters()
        gaps = [b[0] - a[0] for a, b in zip(cmds, cmds[1:])]
        unsafe = _commands_safe(cmds)
        if unsafe:
            return "unsafe command", unsafe
        worst = max(gaps) if gaps else math.inf
        late = after["late_deadlines"] - before["late_deadlines"]
        published = after["commands_published"] - before["commands_published"]
        span = wall + 0.2 + (time.monotonic() - t_end - 0.2)      # between the two status reads
        detail = (f"{sent / flood_s:.0f} joint states/s for {flood_s:.1f} s from another process; the node: "
                  f"{after['deadlines'] - before['deadlines']} deadlines, {late} late (> one 10 ms period), "
                  f"{published / span:.0f} commands/s published, {after['accepted'] - before['accepted']} joint "
                  f"states handed on, {after['dropped'] - before['dropped']} dropped; at this client: "
                  f"{len(cmds) / wall:.0f} commands/s, longest gap {1e3 * worst:.0f} ms (its own scheduling included)")
        return ("survived" if late == 0 and published / span >= 90 else "unsafe command"), detail
    for rate in (9000.0, 0.0):
        rep.run(battery, f"joint-state flood ({f'{rate:.0f}/s' if rate else 'as fast as a Python publisher goes'})",
                lambda rate=rate: flood(rate))

    def incumbent(data, counter="incumbent_refused"):
        def go():
            from std_msgs.msg import Float64MultiArray
            before = counters()
            for _ in range(3):
                stack.inc.publish(Float64MultiArray(data=data))
                time.sleep(0.01)
            time.sleep(0.3)
            d = counters()[counter] - before[counter]
            return ("refused cleanly", f"{counter} +{d}") if d >= 1 else ("silent acceptance", f"{counter} +{d}")
        return go
    rep.run(battery, "incumbent command NaN", incumbent([math.nan]))
    rep.run(battery, "incumbent command of wrong length", incumbent([0.1, 0.2]))

    def param(name, value, expect_ok=False):
        def go():
            ok, reason = stack.set_param(name, value)
            if expect_ok:
                return ("survived", "accepted") if ok else ("traceback", f"a valid value refused: {reason}")
            if ok:
                return "silent acceptance", f"{name}={value!r} accepted"
            return "refused cleanly", reason
        return go
    for name, value in (("runtime.mode", "bogus"), ("runtime.mode", "Active"), ("runtime.mode", ""), ("runtime.canary_period_s", math.inf),
                        ("runtime.canary_period_s", math.nan), ("runtime.canary_weight", 5.0), ("runtime.canary_window_s", -1.0),
                        ("runtime.canary_weight", "half"), ("runtime.rate_hz", 50.0), ("runtime.trigger", "joint_states"),
                        ("runtime.safe_command", [5.0]), ("orchestrator.registry_path", "/etc"), ("adapt.enabled", "yes")):
        rep.run(battery, f"run-time set {name}={value!r}", param(name, value))
    rep.run(battery, "run-time set mode=shadow (valid)", param("runtime.mode", "shadow", expect_ok=True))
    rep.run(battery, "run-time set mode=active (valid)", param("runtime.mode", "active", expect_ok=True))

    def still_controls():
        k0 = len(stack.commands)
        stack.stream(0.5)
        cmds = stack.commands[k0:]
        unsafe = _commands_safe(cmds)
        st = stack.status()
        if unsafe:
            return "unsafe command", unsafe
        return ("survived" if cmds and st["last_tick_status"] == "ok" and proc.poll() is None else "unsafe command",
                f"{len(cmds)} commands in 0.5 s, last tick {st['last_tick_status']}, "
                f"refused total {st['counters']['refused_total']}")
    rep.run(battery, "after everything: still in control", still_controls)


# ====================================================================== 2. start-up parameters

STARTUP_CASES = [
    ("runtime.mode=Active", "parameter runtime.mode"), ("runtime.mode=bogus", "parameter runtime.mode"), ("runtime.mode=''", "parameter runtime.mode"),
    ("runtime.trigger=bogus", "parameter runtime.trigger"), ("runtime.rate_hz=-1.0", "parameter runtime.rate_hz"),
    ("runtime.rate_hz=.nan", "parameter runtime.rate_hz"), ("runtime.rate_hz=fast", "parameter runtime.rate_hz"),
    ("runtime.stale_timeout_s=0.0", "parameter runtime.stale_timeout_s"), ("runtime.joint_names=[a]", "parameter runtime.joint_names"),
    ("runtime.joint_names=[a, a]", "parameter runtime.joint_names"), ("runtime.joint_names=['', x]", "parameter runtime.joint_names"),
    ("orchestrator.registry_path=/etc", "parameter orchestrator.registry_path"), ("orchestrator.registry_path=/", "parameter orchestrator.registry_path"),
    ("ros.realtime_priority=500", "parameter ros.realtime_priority"), ("runtime.canary_weight=5.0", "parameter runtime.canary_weight"),
    ("runtime.canary_period_s=.inf", "parameter runtime.canary_period_s"), ("runtime.safe_command=[.nan]", "parameter runtime.safe_command"),
    ("runtime.safe_command=[5.0]", "parameter runtime.safe_command"), ("runtime.safe_command=[0.0, 0.0]", "parameter runtime.safe_command"),
    ("guard.joint_bounds='{bad'", "parameter guard.joint_bounds"),
    ("guard.joint_bounds='{\"slider\": [1.0, -1.0]}'", "parameter guard.joint_bounds"),
    ("adapt.drift='{\"gravity\": 1e9}'", "parameter adapt.drift"), ("adapt.backend=docker", "parameter adapt.backend"),
    ("runtime.velocity_source=guess", "parameter runtime.velocity_source"),
    ("ros.max_joint_states_per_tick=0", "parameter ros.max_joint_states_per_tick"),
    ("orchestrator.canary_weights=[2.0]", "parameter orchestrator.canary_weights"), ("adapt.population=0", "parameter adapt.population"),
    ("orchestrator.bootstrap_champion=/dev/zero", "parameter orchestrator.bootstrap_champion"),
    ("gate.suite=/nonexistent/suite.yaml", "parameter gate.suite"), ("robot=tractor", "parameter robot"),
    ("adapt.sandbox_command='python x.py'", "parameter adapt.sandbox_command"),
    ("runtime.stale_timeout=0.2", "did you mean runtime.stale_timeout_s"),
    ("runtime.rate_hx=50.0", "did you mean runtime.rate_hz"), ("rate_hz=50.0", "use runtime.rate_hz"),
]
SMOKE_STARTUP = [("runtime.mode=bogus", "parameter runtime.mode"), ("runtime.rate_hx=50.0", "did you mean runtime.rate_hz")]


def startup_battery(rep: Report, work: Path, smoke: bool) -> None:
    battery = "start-up parameters"
    base = ["node", "controller", "--params", str(ROOT / "launch" / "driftgate.yaml"),
            "--domain-id", os.environ.get("ROS_DOMAIN_ID", "112"), "--set", f"orchestrator.registry_path={work / 'startup-reg'}",
            "--set", "orchestrator.bootstrap_champion=lqr", "--set", "monitor.config=none", "--set", "ros.realtime_priority=0",
            "--set", f"ros.commands_topic=/rel{os.getpid()}/startup/commands"]
    for item, needle in (SMOKE_STARTUP if smoke else STARTUP_CASES):
        rep.run(battery, f"--set {item}", lambda item=item, needle=needle: judge_cli(
            cli(base + ["--set", item], timeout=120), expect_codes=(2,), needle=needle))
    if smoke:
        return
    files = {"not YAML": "driftgate_controller: [unclosed\n", "a list at the top": "- 1\n- 2\n",
             "ros__parameters not a mapping": "driftgate_controller:\n  ros__parameters: [1, 2]\n",
             "binary bytes": None}
    for label, text in files.items():
        p = work / f"params-{label.replace(' ', '_')}.yaml"
        if text is None:
            p.write_bytes(bytes(range(256)) * 4)
        else:
            p.write_text(text)
        rep.run(battery, f"--params file: {label}", lambda p=p: judge_cli(cli(["node", "controller", "--params", str(p)]),
                                                                      expect_codes=(2,), needle=str(p)))
    zero = work / "params-devzero.yaml"
    zero.symlink_to("/dev/zero")
    rep.run(battery, "--params file: symlink to /dev/zero", lambda: judge_cli(
        cli(["node", "controller", "--params", str(zero)], timeout=60), expect_codes=(2,)))
    fifo = work / "params-fifo.yaml"
    os.mkfifo(fifo)
    rep.run(battery, "--params file: a named pipe", lambda: _no_hang(lambda: judge_cli(
        cli(["node", "controller", "--params", str(fifo)], timeout=60), expect_codes=(2,))))


def _no_hang(fn):
    try:
        return fn()
    except subprocess.TimeoutExpired:
        return "hang", "no answer within the time limit"


# ====================================================================== 3. hostile files

def _genome_bytes_with(meta_edit: Callable[[dict], None] | None = None, header_edit=None, body_edit=None) -> bytes:
    from controller.bootstrap import lqr_policy_genome
    from sim.genome import genome_file_bytes
    data = genome_file_bytes(lqr_policy_genome())
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    body = bytearray(data[8 + n:])
    if meta_edit is not None:
        meta = json.loads(header["__metadata__"]["driftgate"])
        meta_edit(meta)
        header["__metadata__"]["driftgate"] = json.dumps(meta)
    if header_edit is not None:
        header_edit(header)
    if body_edit is not None:
        body_edit(body)
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    return len(new).to_bytes(8, "little") + new + bytes(body)


def _snapshot(root: Path):
    from safety.registry import Registry
    files = sorted(p.name for p in (root / "genomes").iterdir()) if (root / "genomes").is_dir() else []
    with Registry(root) as reg:
        return files, len(reg.history()), [(r.id, r.status) for r in reg.list()]


def hostile_files_battery(rep: Report, work: Path, smoke: bool) -> None:
    from adapters.cli_registry import app as registry_app
    from controller.bootstrap import bootstrap_registry, lqr_policy_genome
    from sim.genome import Genome, save_genome
    from sim.policy import PolicySpec
    battery = "hostile files"
    root = work / "files-reg"
    bootstrap_registry(root)
    hostile = work / "hostile"
    hostile.mkdir()

    def body_nan(body):
        body[0:4] = b"\x00\x00\xc0\x7f"         # float32 NaN in the first weight

    genomes: dict[str, Callable[[Path], None]] = {
        "empty file": lambda p: p.write_bytes(b""),
        "7 bytes": lambda p: p.write_bytes(b"1234567"),
        "header length 2^60": lambda p: p.write_bytes((1 << 60).to_bytes(8, "little") + b"{}"),
        "header not JSON": lambda p: p.write_bytes((8).to_bytes(8, "little") + b"{notjson"),
        "no driftgate metadata": lambda p: p.write_bytes(_genome_bytes_with(
            header_edit=lambda h: h["__metadata__"].pop("driftgate"))),
        "NaN weight (content id no longer matches)": lambda p: p.write_bytes(_genome_bytes_with(body_edit=body_nan)),
        "content id does not match": lambda p: p.write_bytes(_genome_bytes_with(
            meta_edit=lambda m: m.__setitem__("id", "0" * 32))),
        "act_low > act_high": lambda p: p.write_bytes(_genome_bytes_with(
            meta_edit=lambda m: m["policy_spec"].update(act_low=1.0, act_high=-1.0))),
        "act_low NaN": lambda p: p.write_bytes(_genome_bytes_with(
            meta_edit=lambda m: m["policy_spec"].update(act_low=float("nan")))),
        "policy_spec a string": lambda p: p.write_bytes(_genome_bytes_with(
            meta_edit=lambda m: m.__setitem__("policy_spec", "mlp"))),
        "num_params lies": lambda p: p.write_bytes(_genome_bytes_with(
            meta_edit=lambda m: m.__setitem__("num_params", 3))),
        "tensor shape (2, 37)": lambda p: p.write_bytes(_genome_bytes_with(
            header_edit=lambda h: h["genome"].__setitem__("shape", [2, 37]))),
        "tensor dtype F64": lambda p: p.write_bytes(_genome_bytes_with(
            header_edit=lambda h: h["genome"].__setitem__("dtype", "F64"))),
        "data offsets past the end": lambda p: p.write_bytes(_genome_bytes_with(
            header_edit=lambda h: h["genome"].__setitem__("data_offsets", [0, 1 << 40]))),
        "parent id '../../etc'": lambda p: p.write_bytes(_genome_bytes_with(
            meta_edit=lambda m: m.__setitem__("parent_id", "../../etc"))),
        "a walker genome (another robot)": lambda p: save_genome(Genome(
            vector=__import__("numpy").zeros(PolicySpec(24, 6, (4,), False).num_params, "float32"),
            policy_spec=PolicySpec(24, 6, (4,), False), kind="policy"), p),
        "symlink to /dev/zero": lambda p: p.symlink_to("/dev/zero"),
        "named pipe": lambda p: os.mkfifo(p),
        "1 GB sparse file": lambda p: open(p, "wb").truncate(1 << 30),
        "a directory": lambda p: p.mkdir(),
        "symlink loop": lambda p: p.symlink_to(p),
    }
    if smoke:
        genomes = {k: genomes[k] for k in ("symlink to /dev/zero", "act_low > act_high", "a walker genome (another robot)")}
    for label, make in genomes.items():
        path = hostile / f"{label.replace(' ', '_').replace('/', '_')}.safetensors"

        def go(path=path, make=make):
            make(path)
            before = _snapshot(root)
            outcome, detail = judge_invoke(invoke(registry_app, ["add", "--registry", root, "--genome", path]))
            if _snapshot(root) != before:
                return "lost or corrupt state", f"the refused add left a trace ({detail})"
            return outcome, detail
        rep.run(battery, f"registry add: {label}", go)

    # files inside the registry replaced behind its back
    champ_root = work / "files-reg2"
    bootstrap_registry(champ_root)
    from safety.registry import Registry
    with Registry(champ_root) as reg:
        cid = reg.champion_id()
    gpath = champ_root / "genomes" / f"{cid}.safetensors"
    pristine = gpath.read_bytes()
    inside_cases = {
        "champion file: one bit flipped": lambda: gpath.write_bytes(bytes([pristine[0] ^ 1]) + pristine[1:]),
        "champion file: truncated": lambda: gpath.write_bytes(pristine[:100]),
        "champion file: symlink to an identical copy outside": lambda: (
            (work / "outside.safetensors").write_bytes(pristine), gpath.unlink(),
            gpath.symlink_to(work / "outside.safetensors")),
        "champion file: symlink to /dev/zero": lambda: (gpath.unlink(), gpath.symlink_to("/dev/zero")),
        "champion file: a named pipe": lambda: (gpath.unlink(), os.mkfifo(gpath)),
        "champion file: deleted": lambda: gpath.unlink(),
    }
    if smoke:
        inside_cases = {k: inside_cases[k] for k in ("champion file: symlink to /dev/zero",)}
    for label, damage in inside_cases.items():
        def go(damage=damage):
            if gpath.is_symlink() or gpath.exists():
                gpath.unlink()
            gpath.write_bytes(pristine)
            damage()
            r = invoke(registry_app, ["verify", "--registry", champ_root], timeout=60)
            outcome, detail = judge_invoke(r)
            try:
                with Registry(champ_root) as reg:
                    reg.champion()
                return "silent acceptance", "the damaged champion loaded"
            except Exception as e:
                if type(e).__name__ not in ("GenomeIntegrityError",):
                    return "traceback", f"{type(e).__name__}: {e}"
            return outcome, detail
        rep.run(battery, f"registry verify: {label}", go)
    if gpath.is_symlink() or gpath.exists():
        gpath.unlink()
    gpath.write_bytes(pristine)

    _db_flips(rep, work, 12 if smoke else 300)
    _audit_edits(rep, work, smoke)
    _bags(rep, work, smoke)
    _configs(rep, work, smoke)


def _pristine_registry(path: Path) -> None:
    from controller.bootstrap import bootstrap_registry, lqr_policy_genome
    from safety.registry import Registry
    base = bootstrap_registry(path)
    with Registry(path, actor="bench") as reg:
        prev = base
        for k in range(4):
            g = reg.add(lqr_policy_genome(eps=0.05 + 0.01 * (k + 1)), parent_id=prev)
            reg.attach_gate_report(g, {"verdict": "PASS", "reasons": [], "scenarios": []})
            reg.set_status(g, "shadow")
            reg.set_status(g, "canary")
            reg.promote(g, reason="bench")
            if k % 2 == 0:
                reg.mark_stable(g)
            prev = g
        reg.rollback(reason="bench")
        reg.add(lqr_policy_genome(eps=0.2), parent_id=prev)          # a candidate never gated
    conn = sqlite3.connect(path / "registry.sqlite")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _state(path: Path):
    from safety.registry import Registry
    with Registry(path) as reg:
        return reg.champion_id(), [(r.id, r.status, r.stable) for r in reg.list()]


def _db_flips(rep: Report, work: Path, trials: int) -> None:
    """Random byte flips in registry.sqlite: verify must refuse, or the state must be unchanged."""
    from adapters.cli_registry import app as registry_app
    battery = "hostile files"
    pristine = work / "flip-pristine"
    _pristine_registry(pristine)
    want = _state(pristine)
    size = (pristine / "registry.sqlite").stat().st_size
    rng = random.Random(7)
    tally: dict[str, int] = {}
    worst = ""
    t0 = time.monotonic()
    for trial in range(trials):
        d = work / "flip"
        if d.exists():
            shutil.rmtree(d)
        shutil.copytree(pristine, d)
        db = bytearray((d / "registry.sqlite").read_bytes())
        n_bytes = rng.choice((1, 1, 1, 4, 16))
        offs = [rng.randrange(size) for _ in range(n_bytes)]
        for o in offs:
            db[o] ^= rng.randrange(1, 256)
        (d / "registry.sqlite").write_bytes(bytes(db))
        r = invoke(registry_app, ["verify", "--registry", d], timeout=60)
        if r is None:
            outcome, detail = "hang", "verify did not answer"
        elif r.exception is not None and not isinstance(r.exception, SystemExit):
            outcome, detail = "traceback", f"{type(r.exception).__name__}: {r.exception}"
        elif r.exit_code == 0:
            try:
                got = _state(d)
                outcome = "survived" if got == want else "silent acceptance"
                detail = "verify ok, state unchanged" if got == want else f"verify ok but state changed: {got[0]}"
            except Exception as e:
                outcome, detail = "silent acceptance", f"verify ok, then {type(e).__name__}: {e}"
        else:
            outcome, detail = judge_invoke(r)
            try:                                      # and the live read refuses or reads the true state
                got = _state(d)
                if got[0] != want[0]:
                    outcome, detail = "silent acceptance", f"verify refused, but champion_id() reads {got[0]}"
            except Exception as e:
                if not type(e).__name__.startswith(("Registry", "GenomeIntegrity")):
                    outcome, detail = "traceback", f"champion read: {type(e).__name__}: {e}"
        tally[outcome] = tally.get(outcome, 0) + 1
        if outcome not in OK_OUTCOMES:
            worst = worst or f"trial {trial} (offsets {offs}): {detail}"
            rep.add(battery, f"registry.sqlite byte flip, trial {trial}", outcome, detail)
    rep.notes.append(f"registry.sqlite: {trials} copies with 1-16 random bytes changed: " +
                     ", ".join(f"{v} {k}" for k, v in sorted(tally.items())) +
                     f" ({time.monotonic() - t0:.0f} s); survived = verify passes and the state is unchanged")
    print(rep.notes[-1], flush=True)
    for label in sorted(tally):
        if label in OK_OUTCOMES:
            for _ in range(tally[label]):
                rep.cases.append(Case(battery, "registry.sqlite byte flip", label, "", 0.0))


def _audit_edits(rep: Report, work: Path, smoke: bool) -> None:
    from adapters.cli_registry import app as registry_app
    battery = "hostile files"
    pristine = work / "audit-pristine"
    _pristine_registry(pristine)
    edits = {
        "actor changed": "UPDATE audit SET actor = 'mallory' WHERE seq = 3",
        "evidence changed": "UPDATE audit SET evidence = '{}' WHERE seq = 5",
        "last row deleted": "DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit)",
        "a middle row deleted": "DELETE FROM audit WHERE seq = 4",
        "a forged row appended": "INSERT INTO audit SELECT seq + 1000, time, actor, action, genome_id, from_status, "
                                 "to_status, evidence, prev_hash, hash FROM audit WHERE seq = 2",
        "genome status flipped in the index": "UPDATE genomes SET status = 'champion' WHERE status = 'candidate'",
        "candidate crowned, champion demoted": "UPDATE genomes SET status = CASE status WHEN 'champion' THEN "
                                               "'retired' WHEN 'candidate' THEN 'champion' ELSE status END",
        "file hash swapped in the index": "UPDATE genomes SET file_sha256 = '0' || substr(file_sha256, 2)",
        "gate report edited": "UPDATE gate_reports SET verdict = 'FAIL'",
        "an index dropped": "DROP INDEX one_champion",
    }
    if smoke:
        edits = {k: edits[k] for k in ("actor changed", "candidate crowned, champion demoted")}
    for label, sql in edits.items():
        def go(sql=sql):
            d = work / "audit"
            if d.exists():
                shutil.rmtree(d)
            shutil.copytree(pristine, d)
            conn = sqlite3.connect(d / "registry.sqlite", isolation_level=None)
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
                conn.execute(f"DROP TRIGGER {name}")
            try:
                conn.execute(sql)
            except sqlite3.DatabaseError as e:
                conn.close()
                return "refused cleanly", f"SQLite refused the edit itself: {e}"
            conn.close()
            return judge_invoke(invoke(registry_app, ["verify", "--registry", d], timeout=60))
        rep.run(battery, f"audit/index edit: {label}", go)


def _bags(rep: Report, work: Path, smoke: bool) -> None:
    battery = "hostile files"
    bags = work / "bags"
    bags.mkdir()
    meta_ok = ("rosbag2_bagfile_information:\n  version: 8\n  storage_identifier: mcap\n  duration: {nanoseconds: 1}\n"
               "  starting_time: {nanoseconds_since_epoch: 1}\n  message_count: 0\n  topics_with_message_count: []\n"
               "  relative_file_paths: [b.mcap]\n  files: []\n")

    def mk(label, build):
        d = bags / label.replace(" ", "_").replace("/", "_")
        d.mkdir()
        build(d)
        return d
    cases = {
        "empty directory": lambda d: None,
        "metadata.yaml not YAML": lambda d: (d / "metadata.yaml").write_text("rosbag2_bagfile_information: [\n"),
        "metadata.yaml binary": lambda d: (d / "metadata.yaml").write_bytes(bytes(range(256))),
        "metadata.yaml /dev/zero": lambda d: (d / "metadata.yaml").symlink_to("/dev/zero"),
        "metadata.yaml a named pipe": lambda d: os.mkfifo(d / "metadata.yaml"),
        "mcap of random bytes": lambda d: ((d / "metadata.yaml").write_text(meta_ok),
                                          (d / "b.mcap").write_bytes(random.Random(1).randbytes(4096))),
        "mcap truncated magic": lambda d: ((d / "metadata.yaml").write_text(meta_ok),
                                          (d / "b.mcap").write_bytes(b"\x89MCAP0\r\n")),
        "mcap symlink to /dev/zero": lambda d: ((d / "metadata.yaml").write_text(meta_ok),
                                               (d / "b.mcap").symlink_to("/dev/zero")),
        "mcap path ../../etc/passwd": lambda d: (d / "metadata.yaml").write_text(
            meta_ok.replace("[b.mcap]", "[../../../../etc/passwd]")),
    }
    if smoke:
        cases = {k: cases[k] for k in ("empty directory", "metadata.yaml /dev/zero")}
    for label, build in cases.items():
        d = mk(label, build)
        out = work / f"replay-{d.name}"
        rep.run(battery, f"replay bag: {label}", lambda d=d, out=out: _no_hang(lambda: judge_cli(
            cli(["replay", str(d), "--out", str(out), "-q"], timeout=120))))


def _configs(rep: Report, work: Path, smoke: bool) -> None:
    battery = "hostile files"
    cfg = work / "configs"
    cfg.mkdir()
    (cfg / "bad.yaml").write_text("gate: [\n")
    (cfg / "list.yaml").write_text("- 1\n")
    (cfg / "zero.yaml").symlink_to("/dev/zero")
    os.mkfifo(cfg / "fifo.yaml")
    (cfg / "unknown.yaml").write_text("monitor: {}\nfrobnicate: 1\n")
    cases = [("replay --config: not YAML", "bad.yaml"), ("replay --config: /dev/zero", "zero.yaml"),
             ("replay --config: a named pipe", "fifo.yaml"), ("replay --config: unknown key", "unknown.yaml"),
             ("replay --config: a list", "list.yaml")]
    if smoke:
        cases = cases[1:2]
    bag = work / "no-bag"
    for label, name in cases:
        rep.run(battery, label, lambda name=name: _no_hang(lambda: judge_cli(
            cli(["replay", str(bag), "--out", str(work / "cfg-out"), "--config", str(cfg / name), "-q"], timeout=60))))
    if smoke:
        return
    suites = [("gate --suite: /dev/zero", "zero.yaml"), ("gate --suite: not YAML", "bad.yaml"),
              ("gate --suite: a named pipe", "fifo.yaml")]
    reg = work / "files-reg"
    from safety.registry import Registry
    with Registry(reg) as r:
        cid = r.champion_id()
    for label, name in suites:
        rep.run(battery, label, lambda name=name: _no_hang(lambda: judge_cli(
            cli(["gate", "--registry", str(reg), "--candidate", cid, "--suite", str(cfg / name),
                 "--json-out", str(work / "gate.json")], timeout=60))))
    for label, name in (("node --set monitor.config=/dev/zero", "/dev/zero"),):
        rep.run(battery, label, lambda name=name: judge_cli(cli(
            ["node", "controller", "--set", f"orchestrator.registry_path={work / 'cfg-reg'}", "--set", "orchestrator.bootstrap_champion=lqr",
             "--set", f"monitor.config={name}", "--set", "ros.realtime_priority=0"], timeout=120),
            expect_codes=(2,), needle="monitor.config"))


# ====================================================================== 4. SIGKILL

def sigkill_battery(rep: Report, work: Path, trials: int) -> None:
    """tests/test_registry_crash.py's forking worker, killed at random points; after every kill the
    registry must verify and the champion be the one before or after the operation in flight."""
    from safety.registry import Registry
    sys.path.insert(0, str(ROOT / "tests"))
    import test_registry_crash as crash
    battery = "SIGKILL"
    rng = random.Random(4321)
    zygote = subprocess.Popen([sys.executable, crash.__file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = crash._Lines(zygote.stdout)
    stats = {"trials": 0, "mid_operation": 0, "ops_committed": 0, "in_flight_committed": 0}
    bad = []
    t0 = time.monotonic()
    try:
        champion = root = None
        for trial in range(trials):
            if trial % crash.TRIALS_PER_REGISTRY == 0:
                root = work / f"kill{trial // crash.TRIALS_PER_REGISTRY}"
                champion = crash._bootstrap(root)
            zygote.stdin.write(f"go {root} {trial + 1}\n".encode())
            zygote.stdin.flush()
            got = lines.until(lambda s: s.startswith("P "), timeout=30)
            pid = int(got[-1].split()[1])
            if "R" not in got:
                got += lines.until(lambda s: s == "R" or s.startswith(("E ", "X ")), timeout=30)
            time.sleep(rng.uniform(0, 0.04))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            got += lines.until(lambda s: s.startswith(f"X {pid} "), timeout=30)
            allowed = crash._expected(got, champion)
            marks = [s for s in got if s == "D" or s.startswith("B ")]
            stats["trials"] += 1
            stats["ops_committed"] += marks.count("D")
            stats["mid_operation"] += bool(marks) and marks[-1] != "D"
            try:
                with Registry(root) as reg:
                    check = reg.verify()
                    now = reg.champion_id()
                    loaded = reg.champion().id
                ok = check.ok and now in allowed and loaded == now
                why = "" if ok else f"verify {check.problems[:2]}, champion {now}, allowed {allowed}"
            except Exception as e:
                ok, why, now = False, f"{type(e).__name__}: {e}", None
            if not ok:
                bad.append(f"trial {trial}: {why}")
            stats["in_flight_committed"] += now != crash._expected_last(got, champion)
            champion = now
    finally:
        zygote.stdin.close()
        try:
            zygote.wait(timeout=10)
        except subprocess.TimeoutExpired:
            zygote.kill()
    wall = time.monotonic() - t0
    for k in range(stats["trials"] - len(bad)):
        rep.cases.append(Case(battery, "SIGKILL during promote / rollback", "survived", "", 0.0))
    for b in bad:
        rep.add(battery, "SIGKILL during promote / rollback", "lost or corrupt state", b)
    rep.notes.append(f"SIGKILL: {stats['trials']} kills in {wall:.0f} s, {stats['mid_operation']} inside an operation "
                     f"({stats['in_flight_committed']} of those had committed), {len(bad)} registries failed verify or "
                     "had a champion other than the one before or after the operation in flight")
    print(rep.notes[-1], flush=True)


# ====================================================================== report

def summarize(rep: Report) -> dict:
    by: dict[str, dict[str, int]] = {}
    for c in rep.cases:
        by.setdefault(c.battery, {k: 0 for k in OK_OUTCOMES + FAILURES})[c.outcome] += 1
    totals = {k: sum(b[k] for b in by.values()) for k in OK_OUTCOMES + FAILURES}
    return {"by_battery": by, "totals": totals, "cases": len(rep.cases),
            "target_met": all(totals[k] == 0 for k in FAILURES)}


def write_results(rep: Report, out: Path, meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(rep)
    doc = {**meta, **summary, "notes": rep.notes, "details": [asdict(c) for c in rep.cases if c.detail]}
    (out / "reliability.json").write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    t = summary["totals"]
    md = [f"# Reliability: a robot stack and an attacker against driftgate", "",
          f"{meta['date']} on `{meta['platform']}` ({meta['cpu_count']} cores, Python {meta['python']}), "
          f"`{meta['command']}`, {meta['wall_s']:.0f} s.", "",
          f"**{summary['cases']} cases: {t['refused cleanly']} refused cleanly, {t['survived']} survived; "
          f"{t['traceback']} tracebacks, {t['silent acceptance']} silent acceptances, {t['unsafe command']} unsafe "
          f"commands, {t['lost or corrupt state']} lost or corrupt states, {t['hang']} hangs.** "
          f"Target (0 of each failure): {'met' if summary['target_met'] else 'NOT met'}.", "",
          "| battery | cases | refused cleanly | survived | traceback | silent acceptance | unsafe command | "
          "lost/corrupt state | hang |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, b in summary["by_battery"].items():
        md.append(f"| {name} | {sum(b.values())} | " + " | ".join(str(b[k]) for k in OK_OUTCOMES + FAILURES) + " |")
    md += [""] + [f"- {n}" for n in rep.notes]
    md += ["", "What each battery does is in the script's docstring (benchmarks/reliability.py). "
           "Every case with its outcome and the reason driftgate gave:", "",
           "| battery | case | outcome | detail |", "|---|---|---|---|"]
    for c in rep.cases:
        if c.detail:
            md.append(f"| {c.battery} | {c.name} | {c.outcome} | {c.detail.replace('|', '/')} |")
    (out / "reliability.md").write_text("\n".join(md) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="results directory (default benchmarks/results; "
                    "--smoke: a temporary directory)")
    ap.add_argument("--smoke", action="store_true", help="a few cases per battery, seconds, temp dir only")
    ap.add_argument("--kills", type=int, default=120, help="SIGKILL trials")
    ap.add_argument("--skip", default="", help="comma-separated batteries to skip: stack,startup,files,kill")
    args = ap.parse_args(argv)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    skip = set(filter(None, args.skip.split(",")))
    rep = Report()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="driftgate-reliability-") as tmp:
        work = Path(tmp)
        rep.work = str(work)
        out = args.out or (work / "results" if args.smoke else ROOT / "benchmarks" / "results")
        for name, fn in (("stack", lambda: robot_stack_battery(rep, work / "stack", args.smoke)),
                         ("startup", lambda: startup_battery(rep, work / "startup", args.smoke)),
                         ("files", lambda: hostile_files_battery(rep, work / "files", args.smoke)),
                         ("kill", lambda: sigkill_battery(rep, work / "kill", 5 if args.smoke else args.kills))):
            if name in skip:
                continue
            (work / {"stack": "stack", "startup": "startup", "files": "files", "kill": "kill"}[name]).mkdir()
            print(f"== {name}", flush=True)
            rep.run(name, "battery completed", lambda fn=fn: (fn(), ("survived", ""))[1])
            if rep.cases[-1].outcome == "survived" and rep.cases[-1].name == "battery completed":
                rep.cases.pop()
        meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "platform": platform.platform(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
                "python": platform.python_version(), "smoke": args.smoke,
                "command": "python benchmarks/reliability.py" + (" --smoke" if args.smoke else ""),
                "wall_s": time.monotonic() - t0}
        write_results(rep, out, meta)
        s = summarize(rep)
        print(f"{s['cases']} cases, totals {s['totals']}; wrote {out}/reliability.md"
              + (" (temporary: --smoke)" if args.smoke else ""))
    return 0 if s["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
