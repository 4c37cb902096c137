"""`driftgate_controller`: the driftgate controller as a ROS 2 lifecycle node.

Fits a ros2_control stack: reads `sensor_msgs/JointState` (what `joint_state_broadcaster` publishes),
writes `std_msgs/Float64MultiArray` to a forward command controller's ``commands`` topic at a fixed
rate. The node is an adapter only: the tick is `controller.runtime.ControllerRuntime.tick` (numpy
policy + drift monitor update), adaptation is `controller.orchestrator.Orchestrator.step` on its own
timer and callback group, so nothing the orchestrator does (registry I/O, starting a sandbox job,
polling the gate) can delay a control tick.

Why a LifecycleNode (``rclpy.lifecycle``, present in the ros-rclpy wheels): authority over a robot is
exactly what the managed-node states express.

    unconfigured ──configure──► inactive ──activate──► active
                                  │ shadow only:          │ authority according to `mode`:
                                  │ never publishes        │   active: full authority
                                  │ commands               │   canary: incumbent relayed, champion
                                  │                        │           blended in bounded windows
                                  │                        │   shadow: never publishes commands

Configure loads the registry and the champion and creates every publisher, subscription, service
and timer; cleanup destroys them. ``ros.autostart: true`` configures and activates the node itself on
start-up (for `driftgate node controller` in a plain venv, where no lifecycle manager runs).

Interfaces (topic parameters are ROS names: relative ones, the defaults, resolve in the node's
namespace, so ``namespace:=robot_a`` or a ``--ros-args -r`` remap moves them; ``~/`` ones are
private to the node):

- sub  ``ros.joint_states_topic`` (JointState, default ``joint_states``), ``ros.incumbent_topic``
       (Float64MultiArray, shadow/canary; with ``ros.incumbent_source: joint_state_effort`` none, the
       incumbent is read from ``JointState.effort``: `adapters.ros.incumbent`), ``ros.reward_topic``
       (Float64, optional live performance signal for the watch period)
- pub  ``ros.commands_topic`` (Float64MultiArray, default ``forward_effort_controller/commands``),
       ``~/shadow_commands`` (Float64MultiArray: the
       champion's actions in shadow, the candidate's while one is in shadow/canary),
       ``~/comparison`` (String, JSON, 1 Hz), ``~/events`` (String, JSON, transient local),
       ``/diagnostics`` (DiagnosticArray, 1 Hz; absolute as diagnostic_updater's, the status names
       carry the node's full name)
- srv  ``~/promote``, ``~/rollback``, ``~/status`` (std_srvs/Trigger)
- ``runtime.mode`` (active | shadow | canary), ``runtime.canary_*`` and ``adapt.enabled`` can be changed at
  run time. Every parameter is a setting of `controller.settings` (its dotted name); the pipeline
  is built by `controller.pipeline.build`, the node keeps only its I/O.

Time: ``use_sim_time: true`` puts the tick, the stale-input timeout, canary windows, the
orchestrator's timers and durations and the diagnostics on ``/clock`` (`adapters.ros.node_clock`).

Safe on exit: every orderly way out of authority (deactivate, cleanup, shutdown, SIGINT/SIGTERM
through `adapters.ros.spin.run_nodes` and `main`) publishes ``runtime.safe_command`` once more, after the
last tick, before the publisher goes (`_publish_safe`). After SIGKILL nothing can: the robot side
must time out stale commands (README, "Safe on exit").
"""
from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Float64MultiArray, String

from adapters.ros import incumbent as incumbent_source
from adapters.ros.control_loop import ControlLoop
from adapters.ros.node_clock import NodeClock, sim_time_change_refused
from adapters.ros.node_params import param_value
from adapters.base_sensors import imu_values, odometry_msg_values
from adapters.ros.node_entities import make_entities
from adapters.ros.node_status import NodeStatus
from controller import settings as tree
from adapters.latency import LatencyHistogram
from controller.orchestrator import Orchestrator
from controller.params import ParameterError, allowed, check_value, declare_checked
from adapters.realtime import Scheduling
from controller.runtime import Authority, Canary, ControllerRuntime

NODE_NAME = "driftgate_controller"
_T = Parameter.Type


def _parameter_table() -> dict[str, tuple[Any, str, bool]]:
    """name -> (default or type, description, read_only): the settings tree's dotted flattening
    (`controller.settings`; the ``replay`` section is not the node's)."""
    values = tree.to_parameters()
    out = {}
    for name, f, _ in tree.leaves(exclude=("replay",)):
        default = values[name]
        if isinstance(default, list) and not default:     # an empty array has no type of its own
            default = _T.STRING_ARRAY if name == "runtime.joint_names" else _T.DOUBLE_ARRAY
        out[name] = (default, f.description or "", not tree.is_mutable(f))
    return out


PARAMETERS: dict[str, tuple[Any, str, bool]] = _parameter_table()
# changing one of these at run time re-applies the authority (lifecycle x mode)
AUTHORITY_PARAMETERS = ("runtime.mode", "runtime.canary_window_s", "runtime.canary_period_s",
                        "runtime.canary_weight")


class ControllerNode(NodeStatus, LifecycleNode):
    """See the module docstring. `clock` (seconds) is injectable for tests; by default configure
    picks `NodeClock` (/clock under use_sim_time, else monotonic)."""

    def __init__(self, node_name: str = NODE_NAME, *, clock=None, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._clock_given = clock
        self.clock = clock or time.monotonic
        self.lifecycle = "unconfigured"
        self.runtime: ControllerRuntime | None = None
        self.orchestrator: Orchestrator | None = None
        # the check first, then the declarations: start-up overrides pass the run-time check too;
        # refused ones keep their default and make configure fail (controller.params)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.parameter_errors: list[str] = declare_checked(self, PARAMETERS)
        self.fatal: str | None = None          # autostart: why configure failed (the CLI exits with it)
        self.configure_error: str | None = None
        self.configure_bad_input = False
        self.fatal_code = 1
        self.registry = None
        self.monitor = None
        self.commands_published = 0
        self.in_out = LatencyHistogram()        # DDS reception of a joint state -> its command published
        self.scheduling: Scheduling | None = None   # what enter_realtime did (None: not asked)
        self._tick_tid = 0                      # native id of the thread that runs the control tick
        self.control_loop: ControlLoop | None = None   # control_thread: the thread that runs the tick
        self.shadow_published = 0
        self.events_published = 0
        self.monitor_note = ""
        self._entities: list = []
        self._lock = threading.Lock()
        self._tick_lock = threading.Lock()      # a tick and the exit's safe command never interleave
        self.safe_exits = 0                     # safe commands published on the way out of authority
        self._effort_incumbent: incumbent_source.EffortIncumbent | None = None
        self._mode_applied: str | None = None
        # an old `autostart` (renamed) still fails fast with the rename instead of idling unconfigured
        old_autostart = bool(self.parameter_errors) and "autostart" in (getattr(self, "_parameter_overrides", {}) or {})
        if self.p("ros.autostart") or old_autostart:
            self._autostart_timer = self.create_timer(0.0, self._autostart)

    # -- parameters -----------------------------------------------------------------------------------
    def p(self, name: str) -> Any:
        return param_value(self, name)

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        configured = getattr(self, "runtime", None) is not None     # (callbacks may run during declaration)
        refused = sim_time_change_refused(self.clock if configured else None, params)
        if refused:
            return SetParametersResult(successful=False, reason=refused)
        for prm in params:
            if prm.name == "runtime.mode" and self.has_parameter("ros.incumbent_source") and \
                    incumbent_source.mode_refused(self.p("ros.incumbent_source"), prm.value):
                return SetParametersResult(successful=False, reason=incumbent_source.mode_refused(
                    self.p("ros.incumbent_source"), prm.value))
            why = check_value(prm.name, prm.value)
            if why is not None:
                return SetParametersResult(successful=False, reason=why)
        changed = {prm.name: prm.value for prm in params}
        if "adapt.enabled" in changed and self.orchestrator is not None:
            self.orchestrator.config = _replace(self.orchestrator.config, adapt_enabled=bool(changed["adapt.enabled"]))
        if self.runtime is not None and changed.keys() & set(AUTHORITY_PARAMETERS):
            old = self._mode_applied
            self._apply_authority(changed)      # the values are valid; rclpy stores them after we return
            if changed.get("runtime.mode", old) != old:
                self._publish_event({"event": "mode", "mode": changed["runtime.mode"], "previous": old,
                                     "lifecycle": self.lifecycle})
        return SetParametersResult(successful=True)

    # -- lifecycle ----------------------------------------------------------------------------------
    def _autostart(self) -> None:
        self.destroy_timer(self._autostart_timer)
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()
        else:                    # no lifecycle manager will retry: the process must end and say why
            self.fatal = self.configure_error or "configure failed"
            self.fatal_code = 2 if self.configure_bad_input else 1

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.configure_error = None
        try:
            if self.parameter_errors:
                raise ParameterError(self.parameter_errors[0])
            self._configure()
        except Exception as e:   # a bad parameter or registry: stay unconfigured, say why
            self.configure_bad_input = isinstance(e, ParameterError)
            why = str(e) if isinstance(e, ParameterError) else f"{type(e).__name__}: {e}"
            self.configure_error = " ".join(f"configure failed: {why}".split())    # one line
            self.get_logger().error(self.configure_error)
            self._destroy_entities()
            self.runtime = self.orchestrator = None
            if self.registry is not None:
                self.registry.close()
                self.registry = None
            return TransitionCallbackReturn.FAILURE
        self.lifecycle = "inactive"
        self._apply_authority()
        self._publish_event({"event": "lifecycle", "state": "inactive"})
        champ = self.runtime.slot.champion
        self.get_logger().info(f"configured: robot {self.p('robot')}, champion "
                               f"{champ.genome_id if champ else 'none (holding the safe command)'}, "
                               f"drift monitor {'on' if self.monitor is not None else self.monitor_note}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.lifecycle = "active"
        self._apply_authority()
        self._publish_event({"event": "lifecycle", "state": "active", "mode": self.p("runtime.mode")})
        self.get_logger().info(f"active, mode {self.p('runtime.mode')}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        had = self._has_authority()
        self.lifecycle = "inactive"
        self._apply_authority()
        if had:
            self._publish_safe("deactivate")
        self._publish_event({"event": "lifecycle", "state": "inactive"})
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown("cleanup")
        self.lifecycle = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown("shutdown")
        self.lifecycle = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown("error")
        self.lifecycle = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def _has_authority(self) -> bool:
        """True while this node's commands drive the robot (champion or relayed incumbent)."""
        rt = self.runtime
        return rt is not None and rt.slot.authority is not Authority.NONE

    def _publish_safe(self, why: str, ack_timeout_s: float = 0.5) -> None:
        """The node's last command: the safe command, once the authority is already NONE (so no
        later tick publishes) and after any tick in flight (the tick lock). Waits (bounded) for
        reliable subscribers (forward_command_controller's) to acknowledge it, so that a process
        about to exit does not take it down with the publisher."""
        rt, pub = self.runtime, getattr(self, "_cmd_pub", None)
        if rt is None or pub is None:
            return
        with self._tick_lock:
            try:
                pub.publish(Float64MultiArray(data=rt.safe_command.tolist()))
                self.safe_exits += 1
            except Exception as e:       # the context is already gone: nothing more can be done here
                self.get_logger().error(f"safe command not published on {why}: {e}")
                return
        try:
            if pub.get_subscription_count():
                from rclpy.duration import Duration
                pub.wait_for_all_acked(Duration(nanoseconds=int(ack_timeout_s * 1e9)))
        except Exception:
            pass
        self.get_logger().info(f"{why}: safe command {rt.safe_command.tolist()} published")

    def _teardown(self, why: str = "teardown") -> None:
        if self.runtime is not None:
            had = self._has_authority()
            self.runtime.install(authority=Authority.NONE)
            if had:
                self._publish_safe(why)
        if self.orchestrator is not None:
            if self.orchestrator.runner is not None:
                self.orchestrator.runner.cancel()
            if self.orchestrator.gate is not None:
                self.orchestrator.gate.cancel()
        self._destroy_entities()
        self.runtime = self.orchestrator = None
        if self.registry is not None:
            self.registry.close()
            self.registry = None

    def _destroy_entities(self) -> None:
        for kind, ent in reversed(self._entities):
            try:
                getattr(self, f"destroy_{kind}")(ent)
            except Exception:
                pass
        self._entities = []

    def _add(self, kind: str, ent):
        self._entities.append((kind, ent))
        return ent

    def destroy_control_loop(self, loop: ControlLoop) -> None:
        """(for `_destroy_entities`: the loop is added last, so it stops before what it publishes on goes)"""
        loop.stop()
        self.control_loop = None
        self._tick_tid = 0

    # -- configure: everything built from parameters ----------------------------------------------
    def settings(self) -> tree.Settings:
        """The settings tree from the node's parameters (SettingsError names the parameter)."""
        return tree.from_parameters({name: self.p(name) for name in PARAMETERS})

    def _configure(self) -> None:
        from controller.pipeline import build
        st = self.settings()
        ros = st.ros
        source = ros.incumbent_source
        incumbent_source.check_source(source)
        refused = incumbent_source.mode_refused(source, st.runtime.mode)
        if refused:
            raise ParameterError(f"parameter ros.incumbent_source: {refused}")
        self.clock = self._clock_given or NodeClock(self)   # chosen once: see adapters.ros.node_clock
        reg_path = st.orchestrator.registry_path
        if not reg_path:
            raise ParameterError("parameter orchestrator.registry_path: is not set; allowed: "
                                 + allowed("orchestrator.registry_path"))
        reg_path = str(Path(reg_path).expanduser().absolute())   # mutable state: logged where it is
        suite = _gate_suite(st.gate.suite, reg_path, st.gate.archive_on_promotion)
        pipe = build(st, self.clock, self._publish_event, registry_root=reg_path,
                     actor=self.get_fully_qualified_name(), suite=suite)
        self.pipeline, self.registry = pipe, pipe.registry
        self.monitor, self.monitor_note = pipe.monitor, pipe.monitor_note
        if pipe.monitor_note:
            self.get_logger().warning(f"drift monitor {pipe.monitor_note}")
        self.runtime, self.orchestrator = pipe.runtime, pipe.orchestrator
        self._effort_incumbent = incumbent_source.EffortIncumbent(
            pipe.runtime.config.joint_names, incumbent_source.actuated_joints(st.robot)) \
            if source == "joint_state_effort" else None
        self.get_logger().info(f"registry {reg_path}; gate suite {suite or '(none)'}")
        make_entities(self, st)

    # -- authority ------------------------------------------------------------------------------------
    def _apply_authority(self, changed: dict | None = None) -> None:
        """lifecycle x mode -> the runtime's authority (a hot swap) and the orchestrator's permission.
        `changed`: parameter values being set right now (not yet readable with get_parameter)."""
        rt, orch = self.runtime, self.orchestrator
        if rt is None:
            return
        val = lambda name: (changed or {}).get(name, self.p(name))  # noqa: E731
        mode = val("runtime.mode")
        active = self.lifecycle == "active"
        with self._lock:
            if orch is not None:   # first, so that its canary is withdrawn before the authority changes
                orch.set_authority(active and mode == "active")
            was_incumbent = rt.slot.authority is Authority.INCUMBENT
            keep = {"canary": None} if was_incumbent else {}
            if not active or mode == "shadow":
                rt.install(authority=Authority.NONE, **keep)
            elif mode == "active":
                rt.install(authority=Authority.CHAMPION, **keep)
            else:   # canary next to an incumbent: relay it, blend the champion in during windows
                period = float(val("runtime.canary_period_s"))
                window = min(float(val("runtime.canary_window_s")), period)
                rt.install(authority=Authority.INCUMBENT, candidate=None,
                           canary=Canary(float(val("runtime.canary_weight")), start=self.clock(), slice_s=period,
                                         duty=window / period))
            self._mode_applied = mode

    # -- callbacks ------------------------------------------------------------------------------------
    def _on_joint_state(self, msg: JointState, info: dict) -> None:
        """(rclpy passes the MessageInfo because the callback takes two arguments.)"""
        rt = self.runtime
        if rt is None:
            return
        stamp = msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec
        if self._effort_incumbent is not None and msg.effort:   # a ros2_control incumbent's applied command
            inc = self._effort_incumbent.command(msg.name, msg.effort)
            if inc is not None:
                rt.ingest_incumbent(inc)
        ok = rt.ingest(stamp, msg.name, msg.position, msg.velocity)
        if ok and self._tick_on_message:
            self._on_tick(received_ns=info.get("received_timestamp") if info else None)

    def _on_incumbent(self, msg: Float64MultiArray) -> None:
        if self.runtime is not None:
            self.runtime.ingest_incumbent(msg.data)

    def _on_imu(self, msg) -> None:
        """sensor_msgs/Imu -> orientation (w x y z) and angular velocity, as the profile's observation."""
        if self.runtime is not None:
            self.runtime.ingest_base("imu", imu_values(msg))

    def _on_odometry(self, msg) -> None:
        """nav_msgs/Odometry -> position and world-frame linear velocity (the twist is in the child frame)."""
        if self.runtime is not None:
            self.runtime.ingest_base("odometry", odometry_msg_values(msg))

    def _on_task(self, msg: Float64MultiArray) -> None:
        """The profile's task signals (std_msgs/Float64MultiArray, observe.extra.names in order)."""
        if self.runtime is not None:
            self.runtime.ingest_base("task", msg.data)

    def _on_reward(self, msg: Float64) -> None:
        if self.runtime is not None:
            self.runtime.ingest_reward(msg.data)

    def _on_watchdog(self) -> None:
        """trigger joint_states only: tick when the joint states went silent (see `_configure`)."""
        rt = self.runtime
        if rt is None:
            return
        last = rt.last_output
        if last is None or self.clock() - last.t >= self._stale_s:
            self._on_tick()

    def _on_tick(self, received_ns: int | None = None) -> None:
        """One control tick. `received_ns`: when DDS received the joint state that triggered it
        (system clock, as rmw stamps it), for the node's own in->out latency."""
        rt = self.runtime
        if rt is None:
            return
        if not self._tick_tid:
            self._tick_tid = threading.get_native_id()
        with self._tick_lock:                  # uncontended but on the way out (see _publish_safe)
            self._tick(rt, received_ns)

    def _tick(self, rt: ControllerRuntime, received_ns: int | None) -> None:
        out = rt.tick(defer_monitor=True)      # the command leaves first, the drift monitor updates after
        try:
            if out.command is not None:
                self._cmd_pub.publish(Float64MultiArray(data=out.command.tolist()))
                if received_ns:
                    self.in_out.add_us(1e-3 * (time.time_ns() - received_ns))
                self.commands_published += 1
            shadow = out.challenger_action if out.challenger_action is not None else \
                (out.champion_action if out.command is None else None)
            if shadow is not None:
                self._shadow_pub.publish(Float64MultiArray(data=shadow.tolist()))
                self.shadow_published += 1
        finally:
            rt.finish_tick()

    def _on_step(self) -> None:
        orch = self.orchestrator
        if orch is None:
            return
        try:
            orch.step()
        except Exception as e:   # a bug must not take the node down; the champion stays in force
            self.get_logger().error(f"orchestrator step failed: {type(e).__name__}: {e}")
            orch.report_error("step", e)

    def _publish_event(self, event: dict) -> None:
        pub = getattr(self, "_events_pub", None)
        if pub is None or self.runtime is None:
            return
        event = {"node": self.get_fully_qualified_name(), **event}
        event.setdefault("time", time.time())
        try:
            pub.publish(String(data=json.dumps(event, allow_nan=False, default=str)))
            self.events_published += 1
        except Exception as e:
            self.get_logger().warning(f"event not published: {e}")

    # -- services -------------------------------------------------------------------------------------
    def _srv_promote(self, request, response):
        if self.orchestrator is None:
            response.success, response.message = False, f"not configured ({self.lifecycle})"
            return response
        response.success, response.message = self.orchestrator.promote_now("operator request (~/promote)")
        return response

    def _srv_rollback(self, request, response):
        if self.orchestrator is None:
            response.success, response.message = False, f"not configured ({self.lifecycle})"
            return response
        response.success, response.message = self.orchestrator.rollback_now("operator request (~/rollback)")
        return response

    def _srv_status(self, request, response):
        response.success = self.runtime is not None
        response.message = json.dumps(self.status(), allow_nan=False, default=str)
        return response


def _package_path(path: str) -> Path:
    """A relative file path as given (from the working directory) if it exists there, else the shipped
    file of that name (`controller.shipped`: ``champions/cartpole.safetensors``, ``launch/...``, also
    ``package://driftgate/...``), so it resolves from a clone, an editable install, a wheel or colcon."""
    from controller.shipped import resolve
    return resolve(path)


def _gate_suite(given: str, registry: str, archive: bool) -> str:
    """The suite file the gate reads. With `archive` (archive_on_promotion) it is a working copy under
    the registry (``<registry>/gate_suite.yaml``, `safety.suite_archive.working_suite`) that promotions append
    to: the given file (shipped or reviewed) is never written to."""
    if not given:
        return ""
    base = _package_path(given)
    if not archive:
        return str(base)
    from safety.suite_archive import working_suite
    return str(working_suite(base, Path(registry) / "gate_suite.yaml"))


def _replace(cfg, **kw):
    from dataclasses import replace
    return replace(cfg, **kw)


def main(args: list[str] | None = None) -> None:
    """`ros2 run driftgate driftgate_controller --ros-args --params-file FILE` entry point.

    Spun by `adapters.ros.spin.run_nodes` with the ROS arguments: its SIGINT/SIGTERM handlers stop
    the executor and leave the context up, so the node's teardown can still publish the safe
    command (rclpy's own handlers shut the context down first, and the publisher with it)."""
    from adapters.ros.spin import NodeFailed, run_nodes
    try:
        run_nodes([lambda ctx: ControllerNode(context=ctx)], args=args if args is not None else sys.argv)
    except NodeFailed as e:           # autostart's configure failed: one line and its exit status
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(e.code)


if __name__ == "__main__":
    main()
