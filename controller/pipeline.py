"""The live pipeline, assembled once: settings tree -> runtime, monitor, orchestrator.

    guard config -> runtime -> drift monitor -> registry (bootstrap) -> orchestrator -> runner -> gate

Why one function: the controller node (`adapters.ros.controller_node`) and offline replay
(`adapters.replay`) run the same pipeline and differ only in their I/O (topics and timers vs a
bag and a simulated clock). Both call `build`; what differs is passed in (the clock, the event
sink, a monitor replay configured itself, replay's simulated-latency wrappers). One rule picks the
sandbox runner: ``adapt.sandbox_command`` if set, else the sandbox launcher
(`controller.jobs.SandboxRunner`), which serves every champion kind.

Errors in the settings raise `SettingsError` with one line naming the setting.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from controller.contracts import INCONCLUSIVE, GateOutcome
from controller.jobs import FunctionGate, ProcessGate, SandboxRunner, SubprocessRunner
from controller.orchestrator import Orchestrator, OrchestratorConfig
from controller.authority import Authority
from controller.guards import GuardConfig
from sim.observation import make_observation_map, plant_info
from controller.runtime import ControllerRuntime, RuntimeConfig
from controller.settings import Settings, SettingsError

MONITOR_OFF = ("none", "off", "disabled")


@dataclass
class Pipeline:
    runtime: ControllerRuntime
    monitor: Any                 # controller.drift.DriftMonitor or None
    monitor_note: str            # why there is none ('' when there is one)
    registry: Any                # safety.registry.Registry
    orchestrator: Orchestrator
    suite: str                   # the regression suite the gate reads ('' : none)
    info: dict                   # the robot's joints, actuators, control period (runtime.plant_info)

    def close(self) -> None:
        """Cancel a running job or gate and close the registry."""
        for part in (self.orchestrator.runner, self.orchestrator.gate):
            if part is not None:
                try:
                    part.cancel()
                except Exception:
                    pass
        try:
            self.registry.close()
        except Exception:
            pass


def robot_joints(settings: Settings, given: tuple[str, ...] | None = None) -> tuple[dict, tuple[str, ...]]:
    """The robot's model facts and the robot names of its joints, in model order."""
    info = plant_info(settings.robot)
    joints = tuple(given or settings.runtime.joint_names or info["joint_names"])
    if len(joints) != len(info["joint_names"]):
        raise SettingsError(f"parameter runtime.joint_names: {len(joints)} names given; robot {settings.robot!r} "
                            f"has {len(info['joint_names'])} joints {info['joint_names']} (robot names in this order)")
    return info, joints


def runtime_config(settings: Settings, info: dict, joints: tuple[str, ...]) -> RuntimeConfig:
    g, r = settings.guard, settings.runtime
    try:
        guard = GuardConfig.from_names(joints, g.joint_bounds, max_divergence=float(g.max_divergence),
                                       incumbent_timeout_s=float(g.incumbent_timeout_s))
    except ValueError as e:
        raise SettingsError(f"parameter guard.joint_bounds: {e}") from None
    try:               # finite, one per actuator, inside the actuator bounds
        return RuntimeConfig(joint_names=joints, act_dim=info["act_dim"], act_low=tuple(info["act_low"]),
                             act_high=tuple(info["act_high"]), safe_command=tuple(r.safe_command) or None,
                             stale_timeout_s=float(r.stale_timeout_s), max_abs_input=float(r.max_abs_input),
                             burst_limit=int(r.burst_limit), velocity_source=r.velocity_source, guard=guard)
    except ValueError as e:
        field = str(e).split(" ", 1)[0].rstrip(":")
        raise SettingsError(f"parameter runtime.{field}: {e}") from None


def monitor_config(settings: Settings):
    """The drift monitor's configuration: its YAML (``monitor.config``), then ``monitor.overrides``."""
    from controller.drift import from_mapping, load_config
    path = settings.monitor.config
    cfg = load_config(path or None)
    if settings.monitor.overrides:
        cfg = from_mapping(merge_mapping(cfg.to_dict(), settings.monitor.overrides))
    return cfg


def build_monitor(settings: Settings, info: dict) -> tuple[Any, str]:
    """(the drift monitor with the nominal-model residual source, '') or (None, why not). A file the
    user named that does not load is bad input (SettingsError); a missing package is a note."""
    path = settings.monitor.config
    if path.lower() in MONITOR_OFF:
        return None, "disabled by monitor.config"
    try:
        from controller.drift import DriftMonitor
        from sim.nominal_model import make_predictor
        cfg = monitor_config(settings)
        return DriftMonitor(cfg, obs_dim=len(info["obs_names"]), act_dim=info["act_dim"], dt=info["control_dt"],
                            source=make_predictor(settings.robot, cfg), act_low=info["act_low"],
                            act_high=info["act_high"]), ""
    except Exception as e:
        if path or settings.monitor.overrides:
            raise SettingsError(f"parameter monitor.config: {path!r} cannot be used: {type(e).__name__}: {e}") \
                from None
        return None, f"unavailable: {type(e).__name__}: {e}"


def orchestrator_config(settings: Settings, job_root: Path, archive_suite: str | None) -> OrchestratorConfig:
    o = settings.orchestrator
    try:
        return OrchestratorConfig(
            robot=settings.robot, job_root=job_root, adapt_enabled=bool(settings.adapt.enabled), seed=int(o.seed),
            job=settings.job_fields(), archive_suite=Path(archive_suite) if archive_suite else None,
            **{k: (tuple(v) if isinstance(v, list) else v) for k, v in o.model_dump().items()
               if k in OrchestratorConfig.__dataclass_fields__ and k not in ("seed", "job_root")})
    except (TypeError, ValueError) as e:
        raise SettingsError(f"parameter orchestrator: {e}") from None


def default_runner(settings: Settings, requester: str = ""):
    """The one rule: ``adapt.sandbox_command`` if set, else the sandbox launcher (every champion kind)."""
    import shlex
    a = settings.adapt
    if a.sandbox_command:
        return SubprocessRunner(shlex.split(a.sandbox_command))
    return SandboxRunner(cpu_s=a.cpu_s, memory_mb=a.memory_mb, requester=requester)


def hold_gate(why: str) -> FunctionGate:
    return FunctionGate(lambda req: GateOutcome(INCONCLUSIVE, (why,)))


def bootstrap(settings: Settings, registry_root: Path, actor: str, champion: Any = None) -> Any:
    """Open the registry at `registry_root`; crown `champion` (a Genome) or ``orchestrator.bootstrap_champion``
    if it has none. The registry must hold policies for this robot."""
    from controller.bootstrap import bootstrap_registry, lqr_policy_genome
    from safety.registry import Registry
    boot = settings.orchestrator.bootstrap_champion
    if champion is None and boot:
        from controller.shipped import resolve
        from sim.genome import load_genome
        champion = lqr_policy_genome(settings.robot) if boot == "lqr" else load_genome(resolve(boot))
    if champion is not None:
        bootstrap_registry(registry_root, champion, plant=settings.robot, actor=f"{actor}-bootstrap")
    return Registry(registry_root, actor=actor)


def build(settings: Settings, clock: Callable[[], float], emit: Callable[[dict], None], *,
          registry_root: str | Path, actor: str, suite: str = "", joint_names: tuple[str, ...] | None = None,
          monitor: Any = None, monitor_in_runtime: bool = True, champion: Any = None, runner: Any = None,
          gate: Any = None, wrap: Callable[[Any, Any], tuple[Any, Any]] | None = None,
          refresh: bool = True) -> Pipeline:
    """Assemble the pipeline. `monitor`: one the caller built (replay), else from ``monitor.*``;
    `monitor_in_runtime`: the tick updates it (node) or the caller does (replay). `suite`: the gate's
    suite file ('' : a gate that holds); `runner` / `gate`: replacements (tests); `wrap(runner, gate)`:
    decorates them (replay's simulated latency). `champion`: crown this Genome in an empty registry."""
    info, joints = robot_joints(settings, joint_names)
    rcfg = runtime_config(settings, info, joints)
    note = ""
    if monitor is None:
        monitor, note = build_monitor(settings, info)
    runtime = ControllerRuntime(rcfg, make_observation_map(settings.robot),
                                monitor=monitor if monitor_in_runtime else None, clock=clock)
    # no authority until the caller grants it: a configuring node must never publish a command
    runtime.install(authority=Authority.NONE)
    root = Path(registry_root)
    registry = bootstrap(settings, root, actor, champion)
    try:
        robot = registry.robot()       # a registry for another robot would only ever hold the safe command
        if robot is not None and (robot["obs_dim"], robot["act_dim"]) != (runtime.obs_map.obs_dim, info["act_dim"]):
            raise SettingsError(f"parameter orchestrator.registry_path: the registry at {root} holds policies for "
                                f"another robot ({robot}), not {settings.robot!r}")
        job_root = Path(settings.orchestrator.job_root or root / "jobs")
        job_root.mkdir(parents=True, exist_ok=True)
        ocfg = orchestrator_config(settings, job_root,
                                   suite if suite and settings.gate.archive_on_promotion else None)
        runner = runner if runner is not None else default_runner(settings, actor)
        if gate is None:
            gate = ProcessGate(root, suite, job_root / "gate", timeout_s=float(settings.gate.timeout_s),
                               actor=f"{actor}-gate") if suite else hold_gate("no gate.suite configured: holding")
        if wrap is not None:
            runner, gate = wrap(runner, gate)
        orch = Orchestrator(ocfg, registry, runtime, runner, gate, monitor=monitor, emit=emit, clock=clock)
    except BaseException:
        registry.close()
        raise
    if refresh:
        orch.refresh_champion()
    return Pipeline(runtime, monitor, note, registry, orch, suite, info)


def merge_mapping(base: Any, over: Any) -> Any:
    """`over` merged into `base`, key by key (nested mappings too); copies, never aliases."""
    import copy
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge_mapping(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


__all__ = ["Pipeline", "bootstrap", "build", "build_monitor", "default_runner", "hold_gate", "merge_mapping",
           "monitor_config",
           "orchestrator_config", "robot_joints", "runtime_config"]
