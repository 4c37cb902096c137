"""The clock the nodes' control path runs on: the ROS clock under ``use_sim_time``, else monotonic.

Why one object: the controller's tick, stale-input timeout, canary windows and orchestrator
durations, and the simulated robot's command timeout, all used ``time.monotonic``. With
``use_sim_time: true`` (``ros2 bag play --clock``, a simulator publishing ``/clock``) they must follow
``/clock`` instead: a paused simulation is not a stale robot, and a simulation at 10x speed runs
its timeouts 10x faster. rclpy's executor timers already follow the node's ROS clock; this covers
the rest, and `ControlLoop` waits on it (`wake_on_jump`).

Without sim time the ROS clock is the system clock, which can jump (NTP), so the wall path stays
``time.monotonic``. The choice is made once, when the object is built (the controller builds it in
``configure``): a clock that switched source in the middle of a run would jump by decades.
`sim_time_change_refused` lets a node refuse ``use_sim_time`` changes while it runs on one.

Sandbox and gate process budgets stay wall-clock (they bound CPU time, not robot time).
"""
from __future__ import annotations

import time
from typing import Any, Callable

USE_SIM_TIME = "use_sim_time"


class NodeClock:
    """Seconds (float) for the control path; call it. ``sim``: following ``/clock``."""

    def __init__(self, node: Any) -> None:
        self._ros = node.get_clock()
        self.sim = bool(self._ros.ros_time_is_active)

    def __call__(self) -> float:
        if self.sim:
            return self._ros.now().nanoseconds * 1e-9
        return time.monotonic()

    @property
    def source(self) -> str:
        return "ros (/clock, use_sim_time)" if self.sim else "monotonic"

    def wake_on_jump(self, callback: Callable[[], None]):
        """Call `callback` (from the thread that sets the clock: the executor's /clock callback)
        whenever sim time moves, so a thread waiting for a sim-time deadline can look again. Returns
        the handle (``unregister()`` it), or None on the wall clock (nothing to wait for)."""
        if not self.sim:
            return None
        from rclpy.clock import JumpThreshold
        from rclpy.duration import Duration
        threshold = JumpThreshold(min_forward=Duration(nanoseconds=1), min_backward=Duration(nanoseconds=-1),
                                  on_clock_change=True)
        return self._ros.create_jump_callback(threshold, post_callback=lambda _jump: callback())


def sim_time_change_refused(clock: NodeClock | None, params) -> str | None:
    """The reason to refuse a ``use_sim_time`` change now (None: allowed). `clock`: the clock the
    node runs on (None: unconfigured, any change is fine); it was chosen at configure, so switching
    source under it would make every duration jump."""
    if clock is None or not hasattr(clock, "sim"):
        return None
    for p in params:
        if p.name == USE_SIM_TIME and bool(p.value) != clock.sim:
            return f"{USE_SIM_TIME} can change only while the node is unconfigured (its clock is chosen at configure)"
    return None
