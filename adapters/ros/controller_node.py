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
and timer; cleanup destroys them. ``autostart: true`` configures and activates the node itself on
start-up (for `driftgate node controller` in a plain venv, where no lifecycle manager runs).

Interfaces (topic parameters are ROS names: relative ones, the defaults, resolve in the node's
namespace, so ``namespace:=robot_a`` or a ``--ros-args -r`` remap moves them; ``~/`` ones are
private to the node):

- sub  ``joint_states_topic`` (JointState, default ``joint_states``), ``incumbent_topic``
       (Float64MultiArray, shadow/canary; with ``incumbent_source: joint_state_effort`` none, the
       incumbent is read from ``JointState.effort``: `adapters.ros.incumbent`), ``reward_topic``
       (Float64, optional live performance signal for the watch period)
- pub  ``commands_topic`` (Float64MultiArray, default ``forward_effort_controller/commands``),
       ``~/shadow_commands`` (Float64MultiArray: the
       champion's actions in shadow, the candidate's while one is in shadow/canary),
       ``~/comparison`` (String, JSON, 1 Hz), ``~/events`` (String, JSON, transient local),
       ``/diagnostics`` (DiagnosticArray, 1 Hz; absolute as diagnostic_updater's, the status names
       carry the node's full name)
- srv  ``~/promote``, ``~/rollback``, ``~/status`` (std_srvs/Trigger)
- ``mode`` (active | shadow | canary) and a few thresholds can be changed at run time.

Time: ``use_sim_time: true`` puts the tick, the stale-input timeout, canary windows, the
orchestrator's timers and durations and the diagnostics on ``/clock`` (`adapters.ros.node_clock`).

Safe on exit: every orderly way out of authority (deactivate, cleanup, shutdown, SIGINT/SIGTERM
through `adapters.cli_node.run_nodes` and `main`) publishes ``safe_command`` once more, after the
last tick, before the publisher goes (`_publish_safe`). After SIGKILL nothing can: the robot side
must time out stale commands (README, "Safe on exit").
"""
from __future__ import annotations

import json
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.exceptions import ParameterUninitializedException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Float64MultiArray, String
from std_srvs.srv import Trigger

from adapters.ros import incumbent as incumbent_source
from adapters.ros.control_loop import ControlLoop
from adapters.ros.node_clock import NodeClock, sim_time_change_refused
from controller.contracts import INCONCLUSIVE, GateOutcome
from adapters.latency import LatencyHistogram
from controller.jobs import FunctionGate, ProcessGate, SandboxRunner, SubprocessRunner, sandbox_available
from controller.orchestrator import Orchestrator, OrchestratorConfig
from controller.params import MODES, ParameterError, allowed, check_value, declare_checked  # noqa: F401 (MODES: re-exported)
from adapters.realtime import Scheduling, current_scheduling
from controller.observation import make_observation_map, plant_info
from controller.runtime import Authority, Canary, ControllerRuntime, GuardConfig, RuntimeConfig

NODE_NAME = "driftgate_controller"
_T = Parameter.Type

# name -> (default or type, description, read_only, extra descriptor kwargs)
PARAMETERS: dict[str, tuple[Any, str, bool]] = {
    "plant": ("cartpole", "simulated plant the policy was evolved for (cartpole | walker | reacher)", True),
    "joint_names": (_T.STRING_ARRAY, "robot names of the plant's joints, in the plant's joint order "
                    "(default: the MuJoCo names)", True),
    "joint_states_topic": ("joint_states", "sensor_msgs/JointState input (relative: in the node's namespace)",
                           True),
    "commands_topic": ("forward_effort_controller/commands", "forward command controller input", True),
    "incumbent_source": ("topic", "where the incumbent's command is observed (shadow/canary): topic "
                         "(incumbent_topic) | joint_state_effort (JointState.effort of the actuated joints, a "
                         "ros2_control incumbent; shadow only)", True),
    "incumbent_topic": ("incumbent_controller/commands", "the existing controller's commands (incumbent_source "
                        "topic)", True),
    "reward_topic": ("", "std_msgs/Float64 live performance signal (empty: none)", True),
    "rate_hz": (100.0, "control rate of the command publisher", True),
    "trigger": ("timer", "timer: tick at rate_hz; joint_states: tick on every accepted joint state", True),
    "mode": ("active", "active | shadow | canary (changeable at run time)", False),
    "autostart": (False, "configure and activate on start-up (no lifecycle manager)", True),
    "registry_path": ("", "champion registry directory", True),
    "bootstrap_champion": ("", "empty registry: '' stay idle, 'lqr' the nominal LQR, or a genome file", True),
    "detector_config": ("", "drift monitor YAML ('' the shipped default, 'none' no monitor)", True),
    "stale_timeout_s": (0.1, "no valid joint state for this long: hold the safe command, report ERROR", True),
    "safe_command": (_T.DOUBLE_ARRAY, "command held on stale input (default zeros)", True),
    "max_abs_input": (1.0e6, "joint positions/velocities above this are refused", True),
    "burst_limit": (10, "more joint states than this between two ticks counts a burst", True),
    "max_joint_states_per_tick": (20, "control_thread: joint states taken per control period at most; the "
                                  "rest are dropped and counted, so a flood never delays a tick", True),
    "velocity_source": ("measured", "measured: JointState.velocity is required (positions-only messages are "
                        "refused, ERROR on /diagnostics); differentiate: velocities by differencing consecutive "
                        "positions over their header stamps (for drivers that publish positions only)", True),
    "guard_max_divergence": (0.5, "canary: |a_challenger - a_base| above this hands authority back", True),
    "guard_joint_bounds": ("{}", 'canary: JSON {"joint": [low, high]} on positions', True),
    "incumbent_timeout_s": (0.2, "canary: incumbent commands older than this hand authority back", True),
    "canary_window_s": (2.0, "mode canary: length of a window with authority", False),
    "canary_period_s": (10.0, "mode canary: one window per period", False),
    "canary_weight": (1.0, "mode canary: share of the command during a window", False),
    "adapt": (True, "start sandbox jobs on drift alarms (only with authority)", False),
    "job_root": ("", "directory for sandbox and gate jobs (default: <registry>/jobs)", True),
    "sandbox": ("auto", "sim: sim.sandbox (needs an SR-GHN champion) | interim: the interim CMA-ES sandbox | "
                "auto: sim when installed", True),
    "sandbox_command": ("", "custom sandbox command line with {job_dir} (interim job format); overrides "
                        "`sandbox`", True),
    "adapt_budget_s": (120.0, "wall-clock budget of one sandbox job (killed after it)", True),
    "adapt_generations": (30, "generations budget of one sandbox job", True),
    "adapt_population": (10, "population size of a sandbox job", True),
    "adapt_children": (2, "children per parent in a sandbox job", True),
    "adapt_horizon": (300, "episode length (ticks) in a sandbox job", True),
    "adapt_workers": (1, "evaluation worker processes of a sim.sandbox job", True),
    "ray_address": ("", "evaluate sim.sandbox jobs on this Ray cluster (host:port of a head, ray://host:10001; "
                    "'local': RAY_ADDRESS, else a head started for each job); '' local worker processes", True),
    "adapt_sysid_budget_s": (20.0, "system identification budget of a sim.sandbox job (before the evolution's)",
                             True),
    "drift_hint": ("", "DriftSpec JSON for sandboxes without system identification", True),
    "gate_suite": ("", "regression suite YAML for the gate ('' : no gate, candidates are held)", True),
    "archive_on_promotion": (True, "append each promoted regime to gate_suite as an archive scenario", True),
    "gate_timeout_s": (900.0, "gate process wall-clock limit (INCONCLUSIVE after it)", True),
    "retry_backoff_s": (30.0, "after a failed or held adaptation, ignore alarms this long", True),
    "post_alarm_s": (3.0, "keep recording this long after an alarm before starting the sandbox job", True),
    "shadow_s": (10.0, "shadow comparison duration", True),
    "shadow_min_samples": (100, "paired samples needed to judge the shadow comparison", True),
    "shadow_timeout_s": (60.0, "not judged by then: hold", True),
    "shadow_max_divergence": (0.5, "mean |a_candidate - a_champion| allowed in shadow", True),
    "shadow_max_saturation": (0.5, "fraction of saturated candidate actions allowed in shadow", True),
    "rescue_failing_champion": (True, "a champion outside the guard bounds on rescue_outside_fraction of the shadow "
                                "ticks is failing: skip the pairwise limits, rescue canary (full authority)", True),
    "rescue_outside_fraction": (0.05, "shadow ticks outside the guard bounds that make the champion 'failing'", True),
    "rescue_grace_s": (1.0, "rescue canary: joint-bound trips count after this long", True),
    "canary_weights": ([0.1, 0.25, 0.5, 1.0], "stepped share of the candidate during the canary", True),
    "canary_step_s": (5.0, "duration of each canary step", True),
    "canary_slice_s": (1.0, "canary time slice", True),
    "canary_duty": (1.0, "fraction of each slice with the candidate's share (1: continuous)", True),
    "watch_s": (30.0, "post-promotion watch period", True),
    "watch_min_samples": (100, "performance samples needed to judge the watch period", True),
    "watch_tolerance": (0.1, "rollback when live reward < gate prediction - tolerance", True),
    "realtime_priority": (0, "SCHED_FIFO priority 1..99 for the node's threads (0: the normal scheduler); "
                          "applied when the executor starts; the sandbox and gate processes never inherit it", True),
    "control_thread": (False, "joint-state subscription and tick on a thread of their own (an rcl wait set, "
                       "SCHED_FIFO realtime_priority); the executor keeps parameters, services, the orchestrator "
                       "and diagnostics (adapters.ros.control_loop)", True),
    "orchestrator_rate_hz": (5.0, "state machine step rate", True),
    "diagnostics_rate_hz": (1.0, "/diagnostics and ~/comparison rate", True),
}


class ControllerNode(LifecycleNode):
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
        if self.p("autostart"):
            self._autostart_timer = self.create_timer(0.0, self._autostart)

    # -- parameters -----------------------------------------------------------------------------------
    def p(self, name: str) -> Any:
        try:
            v = self.get_parameter(name).value
        except ParameterUninitializedException:
            return []
        return [] if v is None else v

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        configured = getattr(self, "runtime", None) is not None     # (callbacks may run during declaration)
        refused = sim_time_change_refused(self.clock if configured else None, params)
        if refused:
            return SetParametersResult(successful=False, reason=refused)
        for prm in params:
            if prm.name == "mode" and self.has_parameter("incumbent_source") and \
                    incumbent_source.mode_refused(self.p("incumbent_source"), prm.value):
                return SetParametersResult(successful=False, reason=incumbent_source.mode_refused(
                    self.p("incumbent_source"), prm.value))
            why = check_value(prm.name, prm.value)
            if why is not None:
                return SetParametersResult(successful=False, reason=why)
        changed = {prm.name: prm.value for prm in params}
        if "adapt" in changed and self.orchestrator is not None:
            self.orchestrator.config = _replace(self.orchestrator.config, adapt=bool(changed["adapt"]))
        if self.runtime is not None and changed.keys() & {"mode", "canary_window_s", "canary_period_s",
                                                          "canary_weight"}:
            old = self._mode_applied
            self._apply_authority(changed)      # the values are valid; rclpy stores them after we return
            if changed.get("mode", old) != old:
                self._publish_event({"event": "mode", "mode": changed["mode"], "previous": old,
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
        self.get_logger().info(f"configured: plant {self.p('plant')}, champion "
                               f"{champ.genome_id if champ else 'none (holding the safe command)'}, "
                               f"drift monitor {'on' if self.monitor is not None else self.monitor_note}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.lifecycle = "active"
        self._apply_authority()
        self._publish_event({"event": "lifecycle", "state": "active", "mode": self.p("mode")})
        self.get_logger().info(f"active, mode {self.p('mode')}")
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
    def _configure(self) -> None:
        from safety.registry import Registry
        plant = self.p("plant")
        info = plant_info(plant)
        joints = tuple(self.p("joint_names") or info["joint_names"])
        if len(joints) != len(info["joint_names"]):
            raise ParameterError(f"parameter joint_names: {len(joints)} names given; plant {plant!r} has "
                                 f"{len(info['joint_names'])} joints {info['joint_names']} (robot names in this order)")
        source = self.p("incumbent_source")
        incumbent_source.check_source(source)
        refused = incumbent_source.mode_refused(source, self.p("mode"))
        if refused:
            raise ParameterError(f"parameter incumbent_source: {refused}")
        self._effort_incumbent = incumbent_source.EffortIncumbent(
            joints, incumbent_source.actuated_joints(plant)) if source == "joint_state_effort" else None
        self.clock = self._clock_given or NodeClock(self)   # chosen once: see adapters.ros.node_clock
        bounds = json.loads(self.p("guard_joint_bounds") or "{}")
        try:
            guard = GuardConfig.from_names(joints, bounds, max_divergence=float(self.p("guard_max_divergence")),
                                           incumbent_timeout_s=float(self.p("incumbent_timeout_s")))
        except ValueError as e:
            raise ParameterError(f"parameter guard_joint_bounds: {e}") from None
        safe = tuple(float(x) for x in self.p("safe_command")) or None
        try:                                 # finite, one per actuator, inside the actuator bounds
            cfg = RuntimeConfig(joint_names=joints, act_dim=info["act_dim"], act_low=tuple(info["act_low"]),
                                act_high=tuple(info["act_high"]), safe_command=safe,
                                stale_after_s=float(self.p("stale_timeout_s")),
                                max_abs=float(self.p("max_abs_input")), burst_limit=int(self.p("burst_limit")),
                                velocity_source=self.p("velocity_source"), guard=guard)
        except ValueError as e:
            raise ParameterError(f"parameter {_runtime_param(str(e))}: {e}") from None
        self.monitor = self._make_monitor(plant, info)
        self.runtime = ControllerRuntime(cfg, make_observation_map(plant), monitor=self.monitor, clock=self.clock)
        # no authority until on_configure's _apply_authority: the subscriptions made below may tick
        # (executor or control thread) before it, and a configuring node must never publish a command
        self.runtime.install(authority=Authority.NONE)

        reg_path = self.p("registry_path")
        if not reg_path:
            raise ParameterError("parameter registry_path: is not set; allowed: " + allowed("registry_path"))
        reg_path = str(Path(reg_path).expanduser().absolute())   # mutable state: logged where it is
        boot = self.p("bootstrap_champion")
        if boot:
            from controller.bootstrap import bootstrap_registry, lqr_policy_genome
            from sim.genome import load_genome
            genome = lqr_policy_genome(plant) if boot == "lqr" else load_genome(_package_path(boot))
            bootstrap_registry(reg_path, genome, actor=f"{self.get_name()}-bootstrap")
        self.registry = Registry(reg_path, actor=self.get_fully_qualified_name())
        robot = self.registry.robot()        # a registry for another robot would only ever hold the safe command
        if robot is not None and (robot["obs_dim"], robot["act_dim"]) != (self.runtime.obs_map.obs_dim, info["act_dim"]):
            raise ParameterError(f"parameter registry_path: the registry at {reg_path} holds policies for another "
                                 f"robot ({robot}), not plant {plant!r}")
        suite = _gate_suite(self.p("gate_suite"), reg_path, bool(self.p("archive_on_promotion")))
        self.get_logger().info(f"registry {reg_path}; gate suite {suite or '(none)'}")
        job_root = Path(self.p("job_root") or Path(reg_path) / "jobs")
        job_root.mkdir(parents=True, exist_ok=True)
        budgets = {"wall_s": float(self.p("adapt_budget_s")), "generations": int(self.p("adapt_generations")),
                   "population": int(self.p("adapt_population")), "children": int(self.p("adapt_children")),
                   "horizon": int(self.p("adapt_horizon")), "episodes": 1}
        hint = self.p("drift_hint")
        ocfg = OrchestratorConfig(
            plant=plant, job_root=job_root, adapt=bool(self.p("adapt")), budgets=budgets,
            drift_hint=json.loads(hint) if hint else None, retry_backoff_s=float(self.p("retry_backoff_s")),
            post_alarm_s=float(self.p("post_alarm_s")),
            archive_suite=suite if suite and self.p("archive_on_promotion") else None,
            shadow_s=float(self.p("shadow_s")), shadow_min_samples=int(self.p("shadow_min_samples")),
            shadow_timeout_s=float(self.p("shadow_timeout_s")),
            shadow_max_divergence_mean=float(self.p("shadow_max_divergence")),
            shadow_max_saturation=float(self.p("shadow_max_saturation")),
            rescue_failing_champion=bool(self.p("rescue_failing_champion")),
            rescue_outside_fraction=float(self.p("rescue_outside_fraction")),
            rescue_grace_s=float(self.p("rescue_grace_s")),
            canary_weights=tuple(self.p("canary_weights")), canary_step_s=float(self.p("canary_step_s")),
            canary_slice_s=float(self.p("canary_slice_s")), canary_duty=float(self.p("canary_duty")),
            watch_s=float(self.p("watch_s")), watch_min_samples=int(self.p("watch_min_samples")),
            watch_tolerance=float(self.p("watch_tolerance")))
        cmd, kind = self.p("sandbox_command"), self.p("sandbox")
        if kind not in ("auto", "sim", "interim"):
            raise ValueError(f"sandbox must be auto, sim or interim, got {kind!r}")
        if cmd:
            runner = SubprocessRunner(shlex.split(cmd))
        elif kind == "sim" or (kind == "auto" and sandbox_available()):
            runner = SandboxRunner(extra={"workers": max(1, int(self.p("adapt_workers"))),
                                          "sysid_budget_s": float(self.p("adapt_sysid_budget_s"))},
                                   robot=self.get_fully_qualified_name(), ray_address=str(self.p("ray_address")))
        else:
            runner = SubprocessRunner()
        gate = ProcessGate(reg_path, suite, job_root / "gate", timeout_s=float(self.p("gate_timeout_s")),
                           actor=f"{self.get_fully_qualified_name()}-gate") if suite else \
            FunctionGate(lambda req: GateOutcome(INCONCLUSIVE, ("no gate_suite configured: holding",)))
        self.orchestrator = Orchestrator(ocfg, self.registry, self.runtime, runner, gate, monitor=self.monitor,
                                         emit=self._publish_event, clock=self.clock)
        self.orchestrator.refresh_champion()

        control = MutuallyExclusiveCallbackGroup()
        inputs = MutuallyExclusiveCallbackGroup()
        slow = MutuallyExclusiveCallbackGroup()
        services = MutuallyExclusiveCallbackGroup()
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        pub = lambda t, name, qos: self._add("publisher", self.create_publisher(t, name, qos))  # noqa: E731
        self._cmd_pub = pub(Float64MultiArray, self.p("commands_topic"), reliable)
        self._shadow_pub = pub(Float64MultiArray, "~/shadow_commands", reliable)
        self._cmp_pub = pub(String, "~/comparison", reliable)
        self._events_pub = pub(String, "~/events", latched)
        self._diag_pub = pub(DiagnosticArray, "/diagnostics", reliable)
        self._tick_on_message = self.p("trigger") == "joint_states"
        own_thread = bool(self.p("control_thread"))
        if not own_thread:
            self._add("subscription", self.create_subscription(JointState, self.p("joint_states_topic"),
                                                               self._on_joint_state, qos_profile_sensor_data,
                                                               callback_group=inputs))
        if self._effort_incumbent is None:
            self._add("subscription", self.create_subscription(Float64MultiArray, self.p("incumbent_topic"),
                                                               self._on_incumbent, qos_profile_sensor_data,
                                                               callback_group=inputs))
        if self.p("reward_topic"):
            self._add("subscription", self.create_subscription(Float64, self.p("reward_topic"), self._on_reward,
                                                               qos_profile_sensor_data, callback_group=inputs))
        # trigger joint_states: a silent topic would mean no tick at all, hence no safe command and no
        # ERROR on /diagnostics. A watchdog (never concurrent with the joint-state callback) ticks only
        # when no tick ran for stale_timeout_s; that tick holds the safe command and reports
        # stale/waiting. Its period is stale_timeout_s / 2, not 1 / rate_hz: free while data flows.
        self._stale_s = float(self.p("stale_timeout_s"))
        if own_thread:
            pass                                # the control loop (added last, below) ticks and watches
        elif self._tick_on_message:
            self._add("timer", self.create_timer(self._stale_s / 2.0, self._on_watchdog, callback_group=inputs))
        else:
            self._add("timer", self.create_timer(1.0 / float(self.p("rate_hz")), self._on_tick, callback_group=control))
        self._add("timer", self.create_timer(1.0 / float(self.p("orchestrator_rate_hz")), self._on_step,
                                             callback_group=slow))
        self._add("timer", self.create_timer(1.0 / float(self.p("diagnostics_rate_hz")), self._on_diagnostics,
                                             callback_group=slow))
        self._add("service", self.create_service(Trigger, "~/promote", self._srv_promote, callback_group=services))
        self._add("service", self.create_service(Trigger, "~/rollback", self._srv_rollback, callback_group=services))
        self._add("service", self.create_service(Trigger, "~/status", self._srv_status, callback_group=services))
        if own_thread:   # last: destroyed first, before the publishers it uses
            period, deadline = ((self._stale_s / 2.0, self._on_watchdog) if self._tick_on_message
                                else (1.0 / float(self.p("rate_hz")), self._on_tick))
            # a flood never delays the tick: at most max_joint_states_per_tick per control period (timer),
            # or per 1/rate_hz of the watchdog period (joint_states trigger); the rest is dropped, counted
            per_period = int(self.p("max_joint_states_per_tick")) * max(1, round(period * float(self.p("rate_hz"))))
            self.control_loop = self._add("control_loop", ControlLoop(
                self, JointState, self.p("joint_states_topic"), qos_profile_sensor_data, self._on_joint_state,
                period_s=period, on_deadline=deadline, priority=int(self.p("realtime_priority")),
                max_messages=per_period, name=f"{self.get_name()}_control", clock=self.clock)).start()

    def _make_monitor(self, plant: str, info: dict):
        """The drift monitor from `controller.drift` with the nominal-model residual source. If the
        package is missing or its API changed, the node runs without one and says so on /diagnostics
        (hook: `self.runtime.monitor` is any object with update/resync/notify_adapted/diagnostics)."""
        path = self.p("detector_config")
        if str(path).lower() in ("none", "off", "disabled"):
            self.monitor_note = "disabled by detector_config"
            return None
        try:
            from controller.drift import DriftMonitor, load_config
            from sim.nominal_model import make_predictor
            cfg = load_config(path or None)
            return DriftMonitor(cfg, obs_dim=len(info["obs_names"]), act_dim=info["act_dim"], dt=info["control_dt"],
                                source=make_predictor(plant, cfg), act_low=info["act_low"], act_high=info["act_high"])
        except Exception as e:
            if path:                         # a file the user named and that does not load: bad input
                raise ParameterError(f"parameter detector_config: {path!r} cannot be used: "
                                     f"{type(e).__name__}: {e}") from None
            self.monitor_note = f"unavailable: {type(e).__name__}: {e}"
            self.get_logger().warning(f"drift monitor {self.monitor_note}")
            return None

    # -- authority ------------------------------------------------------------------------------------
    def _apply_authority(self, changed: dict | None = None) -> None:
        """lifecycle x mode -> the runtime's authority (a hot swap) and the orchestrator's permission.
        `changed`: parameter values being set right now (not yet readable with get_parameter)."""
        rt, orch = self.runtime, self.orchestrator
        if rt is None:
            return
        val = lambda name: (changed or {}).get(name, self.p(name))  # noqa: E731
        mode = val("mode")
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
                period = float(val("canary_period_s"))
                window = min(float(val("canary_window_s")), period)
                rt.install(authority=Authority.INCUMBENT, candidate=None,
                           canary=Canary(float(val("canary_weight")), start=self.clock(), slice_s=period,
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
            orch._error("step", e)

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

    # -- reporting ------------------------------------------------------------------------------------
    def note_scheduling(self, sched: Scheduling) -> None:
        """Called by the executor thread after `enter_realtime` (adapters.cli_node.run_nodes, main)."""
        self.scheduling = sched
        if sched.granted:
            self.get_logger().info(f"control path on {sched.describe()} ({sched.threads} threads)")
        else:
            self.get_logger().warning(f"realtime_priority {sched.requested}: {sched.error}; "
                                      f"running {sched.describe()}")

    def scheduling_status(self) -> dict:
        """The tick thread's scheduling now, and what was asked for."""
        try:
            now = current_scheduling(self._tick_tid) if self._tick_tid else None
        except OSError:                          # that thread has ended (a control loop stopped)
            now = None
        requested = int(self.p("realtime_priority"))
        ok = requested == 0 or (now is not None and now.policy == "SCHED_FIFO" and now.priority == requested)
        applied = self.control_loop.scheduling if self.control_loop is not None else self.scheduling
        note = applied.error if applied is not None else ""
        if requested and applied is None:
            note = "not applied: this process does not spin with adapters.cli_node.run_nodes or main()"
        return {"tick_thread": now.describe() if now else "", "requested": requested, "ok": ok,
                "note": "" if ok else note}

    def status(self) -> dict:
        rt, orch = self.runtime, self.orchestrator
        out: dict[str, Any] = {"node": self.get_fully_qualified_name(), "lifecycle": self.lifecycle,
                               "mode": self.p("mode"), "plant": self.p("plant")}
        if rt is None:
            return out
        last = rt.last_output
        out.update({
            "authority": rt.slot.authority.value,
            "champion": rt.slot.champion.genome_id if rt.slot.champion else None,
            "candidate": rt.slot.candidate.genome_id if rt.slot.candidate else None,
            "canary_tripped": rt.tripped, "last_trip": rt.last_trip.to_dict() if rt.last_trip else None,
            "last_tick_status": last.status if last else None, "counters": rt.counters(),
            "commands_published": self.commands_published, "shadow_published": self.shadow_published,
            "tick_us_last": 1e6 * rt.tick_time_last_s, "tick_us_max": 1e6 * rt.tick_time_max_s,
            "in_out_latency": self.in_out.to_dict(bins=True), "scheduling": self.scheduling_status(),
            "control_loop": self.control_loop.status() if self.control_loop is not None else "executor",
            "incumbent_comparison": rt.incumbent_comparison().to_dict(),
            "detector": (self.monitor.state if self.monitor is not None else self.monitor_note),
            "orchestrator": orch.status() if orch is not None else None})
        return out

    def _on_diagnostics(self) -> None:
        rt = self.runtime
        if rt is None:
            return
        st = self.status()
        name = self.get_fully_qualified_name()
        last = st["last_tick_status"]
        orch = st["orchestrator"] or {}
        loop = st["control_loop"]
        if isinstance(loop, dict) and not loop["alive"]:
            level, msg = DiagnosticStatus.ERROR, f"control loop thread ended: {loop['last_error'] or 'unknown'}"
        elif last in ("stale", "error") or (last == "waiting" and rt.first_refusal):
            # every joint state refused (e.g. positions only with velocity_source measured): say why
            problem = rt.input_problem()
            level, msg = DiagnosticStatus.ERROR, f"joint states {last}: holding the safe command" + \
                (f" ({problem})" if problem and not rt.accepted else "")
            if problem and not rt.accepted and not getattr(self, "_input_problem_logged", False):
                self._input_problem_logged = True
                self.get_logger().error(f"no joint state accepted so far: {problem}")
        elif st["champion"] is None:
            level, msg = DiagnosticStatus.WARN, "no champion: holding the safe command"
        elif last in (None, "waiting"):
            level, msg = DiagnosticStatus.WARN, "waiting for joint states"
        elif st["canary_tripped"]:
            level, msg = DiagnosticStatus.WARN, f"canary handed back: {st['last_trip']['reason']}"
        elif not st["scheduling"]["ok"]:
            level, msg = DiagnosticStatus.WARN, f"realtime_priority {st['scheduling']['requested']} not in force: " \
                f"{st['scheduling']['note'] or st['scheduling']['tick_thread']}"
        else:
            level, msg = DiagnosticStatus.OK, f"{st['mode']} ({st['lifecycle']}), phase {orch.get('phase')}"
        values = {"lifecycle": st["lifecycle"], "mode": st["mode"], "authority": st["authority"],
                  "champion_id": st["champion"] or "", "candidate_id": st["candidate"] or "",
                  "phase": orch.get("phase", ""), "last_tick": last or "", "detector_state": str(st["detector"]),
                  "sandbox": orch.get("sandbox", ""), "sandbox_job": orch.get("job") or "",
                  "commands_published": self.commands_published, "shadow_published": self.shadow_published,
                  "tick_us_last": f"{st['tick_us_last']:.1f}", "tick_us_max": f"{st['tick_us_max']:.1f}",
                  "in_out_us_p99": st["in_out_latency"]["p99_us"] or "", "in_out_n": st["in_out_latency"]["n"],
                  "scheduling": st["scheduling"]["tick_thread"],
                  "control_loop": "thread" if isinstance(loop, dict) else loop,
                  "control_callback_errors": loop["callback_errors"] if isinstance(loop, dict) else 0,
                  "joint_states_dropped": loop["dropped"] if isinstance(loop, dict) else 0}
        values.update(st["counters"])
        control = _status(DiagnosticStatus, level, f"{name}: control", msg, self.p("plant"), values)
        if self.monitor is not None:
            try:
                mvals = self.monitor.diagnostics()
            except Exception as e:
                mvals = {"error": str(e)}
            mstatus = _status(DiagnosticStatus, DiagnosticStatus.OK, f"{name}: drift monitor",
                              mvals.get("state", "?"), self.p("plant"), mvals)
        else:
            mstatus = _status(DiagnosticStatus, DiagnosticStatus.WARN, f"{name}: drift monitor",
                              self.monitor_note or "no drift monitor", self.p("plant"), {})
        ovals = {"phase": orch.get("phase", ""), "sandbox": orch.get("sandbox", ""), "job": orch.get("job") or "",
                 "fallback": orch.get("fallback") or "", "last_error": orch.get("last_error") or ""}
        ovals.update({k: v for k, v in (orch.get("counters") or {}).items()})
        olevel = DiagnosticStatus.WARN if orch.get("last_error") else DiagnosticStatus.OK
        ostatus = _status(DiagnosticStatus, olevel, f"{name}: adaptation", orch.get("phase", ""), self.p("plant"),
                          ovals)
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [control, mstatus, ostatus]
        self._diag_pub.publish(arr)
        cmp = {"incumbent_vs_champion": rt.incumbent_comparison().to_dict(),
               "champion_vs_candidate": rt.candidate_comparison().to_dict() if rt.slot.candidate else None,
               "mode": st["mode"], "champion": st["champion"], "candidate": st["candidate"]}
        self._cmp_pub.publish(String(data=json.dumps(cmp, allow_nan=False, default=str)))

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


def _status(cls, level, name: str, message: str, hardware_id: str, values: dict):
    s = cls()
    s.level, s.name, s.message, s.hardware_id = level, name, str(message), str(hardware_id)
    s.values = [KeyValue(key=str(k), value=str(v)) for k, v in values.items()]
    return s


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


def _runtime_param(message: str) -> str:
    """The parameter a RuntimeConfig error is about (its message starts with the field name)."""
    field = message.split(" ", 1)[0].rstrip(":")
    return {"safe_command": "safe_command", "joint_names": "joint_names", "stale_after_s": "stale_timeout_s",
            "velocity_source": "velocity_source"}.get(field, field)


def _replace(cfg, **kw):
    from dataclasses import replace
    return replace(cfg, **kw)


def main(args: list[str] | None = None) -> None:
    """`ros2 run driftgate driftgate_controller --ros-args --params-file FILE` entry point.

    Spun by `adapters.cli_node.run_nodes` with the ROS arguments: its SIGINT/SIGTERM handlers stop
    the executor and leave the context up, so the node's teardown can still publish the safe
    command (rclpy's own handlers shut the context down first, and the publisher with it)."""
    from adapters.cli_node import NodeFailed, run_nodes
    try:
        run_nodes([lambda ctx: ControllerNode(context=ctx)], args=args if args is not None else sys.argv)
    except NodeFailed as e:           # autostart's configure failed: one line and its exit status
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(e.code)


if __name__ == "__main__":
    main()
