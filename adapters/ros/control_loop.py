"""The control path on a thread of its own: the joint-state subscription alone in an rcl wait set,
the tick straight after the take, and one deadline for periodic work (the tick at ``rate_hz``, or
the stale-input watchdog). ros2_control's controller manager runs its update loop the same way,
apart from the executor that serves parameters and services.

Why: rclpy's SingleThreadedExecutor rebuilds its wait set in Python from every entity of the node
(services, timers, the parameter services) on each wake-up and runs one callback at a time, so a
joint state waits behind it and behind whatever callback is running (the orchestrator step, the
diagnostics). `benchmarks/rclpy_floor.py`: about 60 us less from DDS reception to the callback at
p50 with a wait set of one's own. The node's other callbacks stay on the executor; the runtime is
built for this (the tick takes no lock; swaps are single-reference assignments).

Two details make a Python thread fit for this:

* the GIL: a thread that wakes while another holds the GIL waits up to ``sys.getswitchinterval()``
  (5 ms by default) before asking it to let go; `ControlLoop` lowers it to ``gil_switch_s``
  (0.2 ms) for the process;
* scheduling: threads are clones, so a thread started after `enter_realtime` (reset-on-fork) runs
  under the normal scheduler; the loop puts itself on SCHED_FIFO ``priority``.

The subscription is made with rclpy's C binding (the call `Node.create_subscription` makes) and is
not added to the node's list, so the executor never sees it; it is a real rcl subscription of the
node (remapping, namespaces, ``ros2 node info``). A callback that raises is counted and logged,
never allowed to end the loop.

Sim time: given a `adapters.ros.node_clock.NodeClock` on ``/clock`` (``use_sim_time``), the
deadlines are in sim time and the loop wakes whenever the clock moves (a jump callback triggers its
guard condition), so a paused simulation ticks nothing and one at 10x speed ticks 10x as often.

References
----------
ros2_control controller_manager ``ros2_control_node`` (update loop thread, ``thread_priority``);
rclpy ``executors.py`` (``_wait_for_ready_callbacks``), whose wait-set calls this repeats.
"""
from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import Any, Callable, Sequence

from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.type_support import check_is_valid_msg_type

from adapters.realtime import Scheduling, enter_thread_realtime


class ControlLoop:
    """`on_message(msg, info)` for every joint state taken; `on_deadline()` every `period_s`."""

    def __init__(self, node, msg_type, topic: str, qos, on_message: Callable[[Any, dict], None], *,
                 period_s: float, on_deadline: Callable[[], None], priority: int = 0,
                 gil_switch_s: float = 2e-4, max_messages: int = 20, name: str = "driftgate_control",
                 clock: Callable[[], float] | None = None,
                 extra: Sequence[tuple[Any, str, Any, Callable[[Any], None]]] = ()) -> None:
        if not period_s > 0:
            raise ValueError(f"period_s must be > 0, got {period_s}")
        if not max_messages >= 1:
            raise ValueError(f"max_messages must be >= 1, got {max_messages}")
        self.max_messages = int(max_messages)
        self.node, self.msg_type, self.topic = node, msg_type, topic
        self.on_message, self.on_deadline = on_message, on_deadline
        self.period_s, self.priority, self.gil_switch_s = float(period_s), int(priority), gil_switch_s
        self.context = node.context
        self.clock = clock or time.monotonic
        self._sim = bool(getattr(clock, "sim", False))     # deadlines on /clock: wait for it to move
        self._jump = None
        check_is_valid_msg_type(msg_type)          # loads the message's type support, as rclpy does
        with node.handle:
            self.subscription = _rclpy.Subscription(node.handle, msg_type, topic, qos.get_c_qos_profile(), None)
            self.topic = self.subscription.get_topic_name()    # resolved: namespace and remapping applied
            # (msg_type, topic, qos, callback): inputs the tick reads that come on topics of their own
            # (a floating base's IMU / odometry), taken in this thread *before* the joint states of the
            # same wake-up, so a tick sees the base of its own step, not one the executor got to late
            self.extra = []
            for mtype, etopic, eqos, cb in extra:
                check_is_valid_msg_type(mtype)
                self.extra.append((mtype, _rclpy.Subscription(node.handle, mtype, etopic, eqos.get_c_qos_profile(),
                                                              None), cb))
        self._wake = _rclpy.GuardCondition(self.context.handle)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.scheduling: Scheduling | None = None
        self.native_id = 0
        # messages: handed to on_message; dropped: taken but not handed on (over max_messages in one
        # period: a flood); late_deadlines: the periodic work ran more than one period late
        self.counters = {"wakeups": 0, "messages": 0, "dropped": 0, "deadlines": 0, "late_deadlines": 0,
                         "callback_errors": 0}
        self.last_error = ""

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> "ControlLoop":
        if self.gil_switch_s and sys.getswitchinterval() > self.gil_switch_s:
            sys.setswitchinterval(self.gil_switch_s)
        if self._sim:
            self._jump = self.clock.wake_on_jump(self._wake.trigger_guard_condition)
        self._thread.start()
        self.context.on_shutdown(self.stop)          # rclpy.shutdown ends the loop too
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Between two ticks: the loop finishes the callback it is in, then the subscription goes."""
        self._stop.set()
        jump, self._jump = self._jump, None
        if jump is not None:
            try:
                jump.unregister()
            except Exception:
                pass
        try:
            self._wake.trigger_guard_condition()
        except Exception:
            pass
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        for handle in (self.subscription, self._wake, *(esub for _, esub, _ in self.extra)):
            try:
                handle.destroy_when_not_in_use()
            except Exception:
                pass

    def _call(self, fn: Callable, *args) -> None:
        try:
            fn(*args)
        except Exception as e:       # a bug in a callback must not end the control loop
            self.counters["callback_errors"] += 1
            if self.counters["callback_errors"] == 1 or self.counters["callback_errors"] % 1000 == 0:
                self.last_error = f"{type(e).__name__}: {e}"
                self.node.get_logger().error(f"control loop callback failed ({self.counters['callback_errors']} "
                                             f"so far): {self.last_error}")

    def _run(self) -> None:
        self.native_id = threading.get_native_id()
        self.scheduling = enter_thread_realtime(self.priority)
        if self.priority and not self.scheduling.granted:
            self.node.get_logger().warning(f"control loop: {self.scheduling.error}; running "
                                           f"{self.scheduling.describe()}")
        self.node.get_logger().info(f"control loop thread on {self.scheduling.describe()}: {self.topic}, "
                                    f"deadline every {1e3 * self.period_s:g} ms")
        wait_set = _rclpy.WaitSet(1 + len(self.extra), 1, 0, 0, 0, 0, self.context.handle)
        clock, sim = self.clock, self._sim
        deadline = clock() + self.period_s
        handled = 0                                  # messages handed on in this period
        try:
            with self.context.handle, self.subscription, self._wake, contextlib.ExitStack() as held:
                for _, esub, _ in self.extra:
                    held.enter_context(esub)
                while not self._stop.is_set() and self.context.ok():
                    wait_set.clear_entities()
                    wait_set.add_subscription(self.subscription)
                    for _, esub, _ in self.extra:
                        wait_set.add_subscription(esub)
                    wait_set.add_guard_condition(self._wake)
                    # sim time: no wall-clock timeout; the clock's jump callback wakes the loop
                    wait_set.wait(-1 if sim else max(0, int((deadline - clock()) * 1e9)))
                    self.counters["wakeups"] += 1
                    # a flood must not hold the tick: take while the deadline has not come, hand on at
                    # most max_messages per period, drop (and count) the rest
                    self._take_extra()
                    while not self._stop.is_set() and clock() < deadline:
                        taken = self.subscription.take_message(self.msg_type, False)
                        if taken is None:
                            break
                        if handled >= self.max_messages:
                            self.counters["dropped"] += 1
                            continue
                        handled += 1
                        self.counters["messages"] += 1
                        self._call(self.on_message, *taken)
                    now = clock()
                    if now >= deadline and not self._stop.is_set():
                        self.counters["deadlines"] += 1
                        if now - deadline > self.period_s:
                            self.counters["late_deadlines"] += 1
                        self._call(self.on_deadline)
                        handled = 0
                        deadline += self.period_s
                        if deadline <= now:          # overran: the next period from now, no catch-up burst
                            deadline = now + self.period_s
        except Exception as e:                       # the context went away under us (shutdown)
            if not self._stop.is_set() and self.context.ok():
                self.last_error = f"{type(e).__name__}: {e}"
                self.node.get_logger().error(f"control loop ended: {self.last_error}")

    def _take_extra(self) -> None:
        """Every waiting message of the extra inputs (at most max_messages each: a flood is bounded)."""
        for mtype, esub, cb in self.extra:
            for _ in range(self.max_messages):
                taken = esub.take_message(mtype, False)
                if taken is None:
                    break
                self._call(cb, taken[0])

    def status(self) -> dict:
        return {"alive": self.alive, "topic": self.topic, "period_s": self.period_s,
                "clock": getattr(self.clock, "source", "monotonic"),
                "scheduling": self.scheduling.describe() if self.scheduling else "", **self.counters,
                "last_error": self.last_error}
