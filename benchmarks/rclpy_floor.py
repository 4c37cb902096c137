"""The floor under the controller node's latency: how long rclpy itself takes from DDS reception of
a joint state to the start of a Python subscription callback, on a bare node that does nothing else.

Why: the node's in->out target (p99 <= 1 ms, `node_latency.py`) has to fit rclpy's own delivery
path plus the tick. This measures that path alone: one node, one `sensor_msgs/JointState`
subscription (sensor-data QoS, as the controller), a SingleThreadedExecutor, and a publisher at
`--rate` Hz in a second process (normal scheduler). Latency = callback start (system clock) - the
rmw reception timestamp of the message. No sandbox, no other load: the machine as idle as it gets.

Three runs: every thread of the process on SCHED_FIFO 50 (`adapters.realtime`, as the node ships;
skipped where refused) and under the normal scheduler, both spinning rclpy's SingleThreadedExecutor;
and SCHED_FIFO 50 with a hand-rolled loop instead of the executor (one reusable rcl wait set holding
the subscription alone, `take_message` straight after the wait): what a dedicated control thread
would pay, without the executor rebuilding its wait set in Python on every wake-up.

    python benchmarks/rclpy_floor.py --out benchmarks/results [--rate 500] [--n 15000]
"""
from __future__ import annotations

import os

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


PUBLISHER = """
import sys, time, rclpy
from sensor_msgs.msg import JointState
rate, n, domain = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rclpy.init(domain_id=domain)
node = rclpy.create_node("floor_tx")
pub = node.create_publisher(JointState, "/floor/joint_states", 10)
deadline = time.monotonic() + 10
while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(0.5)
msg = JointState(name=["slider", "hinge_1"], position=[0.1, 0.2], velocity=[0.0, 0.1])
period, t_next = 1.0 / rate, time.monotonic()
for _ in range(n):
    t_next += period
    time.sleep(max(0.0, t_next - time.monotonic()))
    pub.publish(msg)
"""


def waitset_loop(ctx, sub, on_message) -> None:
    """The subscription alone in one reusable rcl wait set; take straight after each wake-up."""
    from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

    wait_set = _rclpy.WaitSet(1, 0, 0, 0, 0, 0, ctx.handle)
    with ctx.handle, sub.handle:
        while ctx.ok():
            wait_set.clear_entities()
            wait_set.add_subscription(sub.handle)
            wait_set.wait(100_000_000)
            while (taken := sub.handle.take_message(sub.msg_type, False)) is not None:
                on_message(*taken)


def measure(rate: float, n: int, priority: int, domain: int, loop: str = "executor") -> dict:
    """One run in this process: returns the latency percentiles in microseconds."""
    import threading

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import JointState

    from adapters.realtime import enter_realtime

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    rx = rclpy.create_node("floor_rx", context=ctx)
    waits: list[float] = []

    def on_message(msg, info) -> None:
        waits.append((time.time_ns() - info["received_timestamp"]) / 1e3)

    sub = rx.create_subscription(JointState, "/floor/joint_states", on_message, qos_profile_sensor_data)
    sched = enter_realtime(priority)
    if loop == "waitset":
        threading.Thread(target=waitset_loop, args=(ctx, sub, on_message), daemon=True).start()
    else:
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(rx)
        threading.Thread(target=ex.spin, daemon=True).start()
    # the publisher: another process under the normal scheduler (this thread is reset-on-fork)
    subprocess.run([sys.executable, "-c", PUBLISHER, str(rate), str(n), str(domain)], check=True, timeout=600,
                   cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    time.sleep(0.3)
    w = np.asarray(waits[200:])                    # after discovery and warm-up
    return {"loop": loop, "scheduling": sched.describe(), "granted": sched.granted, "error": sched.error,
            "received": len(waits), "sent": n, "p50_us": float(np.percentile(w, 50)),
            "p90_us": float(np.percentile(w, 90)), "p99_us": float(np.percentile(w, 99)),
            "p999_us": float(np.percentile(w, 99.9)), "max_us": float(w.max()), "samples": w.round(1).tolist()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--rate", type=float, default=500.0)
    ap.add_argument("--n", type=int, default=15000)
    ap.add_argument("--priority", type=int, default=None, help=argparse.SUPPRESS)   # child: one run
    ap.add_argument("--loop", default="executor", help=argparse.SUPPRESS)
    ap.add_argument("--smoke", action="store_true", help="400 messages per run, into --out or a temp dir")
    args = ap.parse_args(argv)
    if args.smoke:  # does the script still run: never over the committed results
        args.n = min(args.n, 400)
        if args.out.resolve() == (ROOT / "benchmarks" / "results").resolve():
            import tempfile
            args.out = Path(tempfile.mkdtemp(prefix="driftgate-smoke-"))
    domain = 100 + os.getpid() % 100
    if args.priority is not None:
        print(json.dumps(measure(args.rate, args.n, args.priority, domain, args.loop)))
        os._exit(0)                                 # (no executor shutdown dance: the process ends)
    runs = {}
    for label, prio, loop in (("SCHED_FIFO 50", 50, "executor"), ("normal scheduler", 0, "executor"),
                              ("SCHED_FIFO 50, own wait set", 50, "waitset")):   # a process each: FIFO sticks
        r = subprocess.run([sys.executable, __file__, "--rate", str(args.rate), "--n", str(args.n),
                            "--priority", str(prio), "--loop", loop], capture_output=True, text=True, cwd=ROOT,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=600)
        if r.returncode != 0:
            raise SystemExit(r.stderr[-2000:])
        runs[label] = json.loads(r.stdout.strip().splitlines()[-1])
        print(label, {k: round(v) for k, v in runs[label].items() if k.endswith("_us")}, flush=True)
    res = {"benchmark": "rclpy_floor", "rate_hz": args.rate, "n": args.n,
           "what": "rmw reception timestamp -> start of the Python subscription callback, bare rclpy node, "
                   "SingleThreadedExecutor (or a hand-rolled wait-set loop), no load",
           "runs": {k: {kk: vv for kk, vv in v.items() if kk != "samples"} for k, v in runs.items()},
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
           "command": " ".join(["python benchmarks/rclpy_floor.py", *sys.argv[1:]])}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rclpy_floor.json").write_text(json.dumps(res, indent=1) + "\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for label, r in runs.items():
        ax.hist(np.minimum(r["samples"], 2000), bins=200, histtype="step", label=label, density=True)
    ax.axvline(1000, color="k", lw=0.8, ls="--")
    ax.set(xlabel="DDS reception -> Python callback start (us, clipped at 2000)", ylabel="density", yscale="log",
           title="rclpy delivery floor, bare node, no load")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "rclpy_floor.png", dpi=110)
    rows = [f"| {k} | {v['received']} / {v['sent']} | {v['p50_us']:.0f} | {v['p90_us']:.0f} | {v['p99_us']:.0f} | "
            f"{v['p999_us']:.0f} | {v['max_us']:.0f} |" for k, v in res["runs"].items()]
    (args.out / "rclpy_floor.md").write_text("\n".join([
        "# rclpy's delivery floor (bare node, no load)", "",
        f"{res['date']} on `{res['platform']}`, {res['cpu_count']} cores, Python {res['python']}. "
        f"Command: `{res['command']}`.", "",
        f"{res['what']}; {args.rate:g} Hz `sensor_msgs/JointState` from a second process (normal scheduler).", "",
        "| scheduling, loop | received / sent | p50 us | p90 | p99 | p99.9 | max |", "|---|---:|---:|---:|---:|---:|---:|",
        *rows, "",
        "The controller node's in->out (`node_latency.md`) is this path plus its own callback up to the "
        "publish (about 150 us) plus whatever else shares the two cores (the sandbox, the robot side).", "",
        "The own-wait-set row is rclpy without its executor: the difference to the first row is what the "
        "executor's per-wake-up Python work costs (a dedicated control thread would not pay it).", "",
        "![histogram](rclpy_floor.png)", ""]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
