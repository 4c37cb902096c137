"""Spin driftgate's nodes in a private rclpy context until SIGINT / SIGTERM, then clean up.

Its own module because both the CLI (`adapters.cli_node`) and each node's ``ros2 run`` entry point
(`adapters.ros.controller_node.main`, `adapters.ros.sim_robot_node.main`) start nodes this way, and
the nodes must not import the CLI that imports them."""
from __future__ import annotations

import signal
import threading
from typing import Any, Callable


class NodeFailed(RuntimeError):
    """A node could not start (its configure failed on autostart); the message is one line, `code`
    the exit status it asks for (2: bad parameters, 1: anything else)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def run_nodes(factories: list[Callable[[Any], Any]], *, domain_id: int | None = None,
              stop: threading.Event | None = None, threads: int = 1, args: list[str] | None = None) -> None:
    """Build the nodes in a private context, spin them until SIGINT/SIGTERM (or `stop`), clean up.

    One thread (rclpy's SingleThreadedExecutor) by default: every callback of the nodes is short
    (the sandbox and the gate run in processes of their own and are polled), and rclpy's
    MultiThreadedExecutor busy-spins a core whenever a ready timer waits on a busy callback group,
    which cost the control loop missed ticks (benchmarks/results/node_latency.md).

    A node whose ``fatal`` attribute becomes a message (the controller, when configure fails on
    autostart) ends the run: the nodes are cleaned up and `NodeFailed` is raised with that message.

    A node that declares ``ros.realtime_priority`` > 0 (the controller) gets its process's threads on
    SCHED_FIFO once the nodes exist (`adapters.realtime.enter_realtime`, called by the executor
    thread; what that thread starts later runs under the normal scheduler). Refused: the node says
    so on /diagnostics and runs on.

    `args`: command-line arguments for the context (``--ros-args ...``: remaps, parameters). rclpy's
    signal handlers are off: they would shut the context down before the nodes' teardown, which
    must still publish (the controller's safe command)."""
    import rclpy
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    stop = stop or threading.Event()
    failure: tuple[str, int] | None = None
    ctx = rclpy.Context()
    rclpy.init(args=args, context=ctx, domain_id=domain_id, signal_handler_options=SignalHandlerOptions.NO)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    nodes = []
    try:
        nodes = [f(ctx) for f in factories]
        executor = SingleThreadedExecutor(context=ctx) if threads <= 1 else \
            MultiThreadedExecutor(num_threads=threads, context=ctx)
        for n in nodes:
            executor.add_node(n)
        priority = max([requested_realtime_priority(n) for n in nodes] or [0])

        def spin() -> None:
            if priority:
                from adapters.realtime import enter_realtime
                sched = enter_realtime(priority)
                for n in nodes:
                    note = getattr(n, "note_scheduling", None)
                    if note is not None:
                        note(sched)
            executor.spin()
        spinner = threading.Thread(target=spin, name="driftgate-executor", daemon=True)
        spinner.start()
        while not stop.wait(0.05):
            if not spinner.is_alive():
                break
            failed = [n for n in nodes if getattr(n, "fatal", None)]
            if failed:                # autostart's configure failed: nothing will retry it
                failure = (failed[0].fatal, int(getattr(failed[0], "fatal_code", 1)))
                break
        executor.shutdown(timeout_sec=5.0)
        spinner.join(timeout=5.0)
    finally:
        for n in reversed(nodes):
            teardown = getattr(n, "_teardown", None)
            if teardown is not None:
                teardown()
            n.destroy_node()
        rclpy.try_shutdown(context=ctx)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failure:
        raise NodeFailed(*failure)


def requested_realtime_priority(node) -> int:
    """The node's ``ros.realtime_priority`` parameter (0 if it declares none: the simulated robot)."""
    name = "ros.realtime_priority"
    if not node.has_parameter(name):
        return 0
    return int(node.get_parameter(name).value or 0)
