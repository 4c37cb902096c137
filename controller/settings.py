"""The settings tree: every setting of driftgate's live pipeline, with one name, one default and
one description, from the YAML file to job.json.

    robot                     the robot: a built-in name (cartpole | walker | reacher) or a profile YAML
    runtime.*                 the control tick (controller.runtime): joints, rate, input checks, mode
    guard.*                   limits that end a challenger's authority within a tick
    monitor.*                 the drift monitor (controller.drift): its YAML and overrides of its keys
    orchestrator.*            the adaptation lifecycle (controller.orchestrator): registry, shadow, canary, watch
    adapt.*                   the sandbox job: job.json's own names (sim.job_contract.AdaptJob) + how to launch it
    gate.*                    the safety gate: regression suite, time limit
    ros.*                     the controller node's I/O only (topics, threads, timers)
    replay.*                  offline replay only (bag topics, sampling, simulated latencies)

Why one tree (in the spirit of CleanRL's single ``Args`` and ros2_control's parameter schemas): the
controller node's ROS parameters are its dotted flattening (``adapt.budget_s``; a nested mapping
under ``ros__parameters`` in launch/driftgate.yaml), the replay configuration is the same tree
(launch/replay.yaml), and the ``adapt`` section is written into job.json under the same names. A
mapping-valued setting (``guard.joint_bounds``, ``adapt.drift``, ...) is JSON text as a ROS parameter.

Old flat parameter names (``adapt_budget_s``, ``plant``, ...) are refused with the new name
(`RENAMED`), never silently aliased. The descriptions here are the only ones: the ROS parameter
descriptors carry them, and ``driftgate settings dump`` (`controller.settings_doc`) writes them as
the comments of launch/driftgate.yaml.
"""
from __future__ import annotations

import json
import typing
from typing import Annotated, Any, Iterator, Literal, Mapping, Optional

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field

from safety.config_model import Int, Listy, Strict, Text, ValidationError, describe
from sim.job_contract import AdaptJob
from sim.plant_names import BUILTIN_HELP, DEFAULT_PLANT

_JOB = AdaptJob()
DAY = 86400.0


def _empty(kind):
    return BeforeValidator(lambda x: kind() if x is None else x)


def _f(default: Any, description: str, *, mutable: bool = False, **constraints: Any) -> Any:
    """A field with its description; `mutable`: changeable at run time (``ros2 param set``)."""
    extra = {"mutable": True} if mutable else None
    if isinstance(default, (list, dict)):
        return Field(default_factory=lambda d=default: type(d)(d), description=description,
                     json_schema_extra=extra, **constraints)
    return Field(default, description=description, json_schema_extra=extra, **constraints)


_Bounds = dict[str, Annotated[list[float], Field(min_length=2, max_length=2), Listy]]
_Dict = Annotated[dict, _empty(dict)]
_StrList = Annotated[list[str], Listy, _empty(list)]
_FloatList = Annotated[list[float], Listy, _empty(list)]


class RuntimeSettings(Strict):
    """The control tick (controller.runtime.ControllerRuntime)."""

    joint_names: _StrList = _f([], "robot names of the robot's joints, in the robot's joint order ([] = the "
                               "model's own names)")
    rate_hz: float = _f(100.0, "control rate of the command publisher", gt=0, le=10000)
    trigger: Literal["timer", "joint_states"] = _f("timer", "timer: tick at rate_hz; joint_states: tick on "
                                                   "every accepted joint state (lowest latency)")
    mode: Literal["active", "shadow", "canary"] = _f("active", "active | shadow | canary (changeable at run time)",
                                                      mutable=True)
    stale_timeout_s: float = _f(0.1, "no valid joint state for this long: hold the safe command, report ERROR",
                                gt=0, le=60)
    safe_command: _FloatList = _f([], "command held on stale input and published last on exit ([] = zeros)")
    max_abs_input: float = _f(1.0e6, "joint positions/velocities above this are refused", gt=0, le=1e12)
    burst_limit: Int = _f(10, "more joint states than this between two ticks counts a burst", ge=1, le=1_000_000)
    velocity_source: Literal["measured", "differentiate"] = _f(
        "measured", "measured: JointState.velocity is required (positions-only messages, as many drivers "
        "publish, are refused: ERROR on /diagnostics names this setting); differentiate: velocities by "
        "differencing consecutive positions over their header stamps")
    canary_window_s: float = _f(2.0, "mode canary: length of a window with authority", mutable=True, gt=0, le=DAY)
    canary_period_s: float = _f(10.0, "mode canary: one window per period", mutable=True, gt=0, le=DAY)
    canary_weight: float = _f(1.0, "mode canary: share of the command during a window", mutable=True, ge=0, le=1)


class GuardSettings(Strict):
    """Limits that hand authority back within a tick (canary, rescue)."""

    max_divergence: float = _f(0.5, "|a_challenger - a_base| above this hands authority back", ge=0, le=1e6)
    joint_bounds: Annotated[_Bounds, _empty(dict)] = _f({}, 'joint position bounds {"joint": [low, high]} '
                                                        "(JSON text as a ROS parameter)")
    incumbent_timeout_s: float = _f(0.2, "incumbent commands older than this hand authority back", gt=0, le=3600)


class MonitorSettings(Strict):
    """The drift monitor (controller.drift)."""

    config: Text = _f("", "drift monitor YAML ('' = launch/drift_monitor.yaml, 'none' = no monitor)")
    overrides: _Dict = _f({}, "overrides of the monitor YAML's keys, e.g. {page_hinkley: {default_threshold: 30}} "
                          "(JSON text as a ROS parameter)")


class OrchestratorSettings(Strict):
    """The adaptation lifecycle (controller.orchestrator.Orchestrator)."""

    registry_path: Text = _f("", "champion registry directory (replay: its own, in the output)")
    bootstrap_champion: Text = _f("", "empty registry: '' none (the node stays idle; replay takes the robot's "
                                  "shipped nominal champion), 'lqr' the nominal LQR, or a genome file")
    job_root: Text = _f("", "directory for sandbox and gate jobs ('' = <registry_path>/jobs)")
    step_s: float = _f(0.2, "state machine step period (replay: simulated seconds)", gt=0, le=DAY)
    seed: Int = _f(0, "seed of the sandbox jobs (replay: --seed)", ge=0)
    retry_backoff_s: float = _f(30.0, "after a failed or held adaptation, ignore alarms this long", ge=0, le=DAY)
    post_alarm_s: float = _f(3.0, "keep recording this long after an alarm before starting the sandbox job",
                             ge=0, le=DAY)
    shadow_s: float = _f(10.0, "shadow comparison duration", ge=0, le=DAY)
    shadow_min_samples: Int = _f(100, "paired samples needed to judge the shadow comparison", ge=1,
                                 le=1_000_000_000)
    shadow_timeout_s: float = _f(60.0, "shadow not judged by then: hold", ge=0, le=DAY)
    shadow_max_divergence: float = _f(0.5, "mean |a_candidate - a_champion| allowed in shadow", ge=0, le=1e6)
    shadow_max_saturation: float = _f(0.5, "fraction of saturated candidate actions allowed in shadow", ge=0, le=1)
    rescue_failing_champion: bool = _f(True, "a champion outside the guard bounds on rescue_outside_fraction of "
                                       "the shadow ticks, or saturated on more than shadow_max_saturation of "
                                       "them, is failing: skip the pairwise limits, rescue canary "
                                       "(full authority); false: hold")
    rescue_outside_fraction: float = _f(0.05, "shadow ticks outside the guard bounds that make the champion "
                                        "'failing'", ge=0, le=1)
    rescue_gate_fraction: float = _f(0.5, "a champion the gate measured on the drifted target at less than this "
                                     "fraction of the candidate's reward is failing too (rescue canary); "
                                     "0 = only the live evidence", ge=0, le=1)
    rescue_grace_s: float = _f(1.0, "rescue canary: joint-bound trips count after this long", ge=0, le=DAY)
    canary_weights: Annotated[list[Annotated[float, Field(gt=0, le=1)]], Field(min_length=1), Listy] = _f(
        [0.1, 0.25, 0.5, 1.0], "stepped share of the candidate during the canary")
    canary_step_s: float = _f(5.0, "duration of each canary step", ge=0, le=DAY)
    canary_slice_s: float = _f(1.0, "canary time slice", gt=0, le=DAY)
    canary_duty: float = _f(1.0, "fraction of each slice with the candidate's share (1: continuous)", gt=0, le=1)
    watch_s: float = _f(30.0, "post-promotion watch period", ge=0, le=DAY)
    watch_min_samples: Int = _f(100, "performance samples needed to judge the watch period", ge=1,
                                le=1_000_000_000)
    watch_tolerance: float = _f(0.1, "rollback when live reward < gate prediction - tolerance", ge=0, le=1e6)
    refresh_s: float = _f(1.0, "registry poll period for external champion changes", gt=0, le=DAY)


# adapt: the job's fields that a user sets, under job.json's names, defaults from sim.job_contract
JOB_SETTINGS = ("budget_s", "max_generations", "population", "children", "horizon", "workers", "backend",
                "ray_address", "sysid_budget_s", "sysid_max_evals", "drift", "min_generations", "target_fraction",
                "stress_draws", "start_probes", "seed_rate")


class AdaptSettings(Strict):
    """The sandbox job. The fields named in `JOB_SETTINGS` go into job.json unchanged."""

    enabled: bool = _f(True, "start sandbox jobs on drift alarms (node: only with authority; replay: false = "
                       "the monitor stage only)", mutable=True)
    sandbox_command: Text = _f("", "custom sandbox command line with {job_dir} (same job contract); '' = "
                               "python -m sim.sandbox_launch")
    budget_s: float = _f(_JOB.budget_s, "wall-clock budget of the evolution", gt=0, le=DAY)
    max_generations: Int = _f(_JOB.max_generations, "generations budget of one job", ge=1, le=1_000_000)
    min_generations: Int = _f(_JOB.min_generations, "evolve at least this many generations, then pick the winner "
                              "among the confirmed elites (seeds included) on the confirmation metric; 0 = stop on "
                              "the first confirmed target", ge=0, le=1_000_000)
    target_fraction: float = _f(_JOB.target_fraction, "stop when the elite holds this fraction of the champion's "
                                "nominal return on fresh episodes of the identified model (else the job fails)",
                                gt=0, le=2.0)
    stress_draws: Int = _f(_JOB.stress_draws, "robots drawn from the regression suite's stress distribution around "
                           "the estimate that fitness also averages over (as many fresh ones in the confirmation); "
                           "0 = none", ge=0, le=1000)
    start_probes: bool = _f(_JOB.start_probes, "fitness and confirmation also start from the suite's "
                            "initial-offset probes (both signs)")
    seed_rate: float = _f(_JOB.seed_rate, "the model seed's starting mutation rate, small to refine a seed that "
                          "already meets the target (with min_generations); 0 = the champion's own", ge=0, lt=1)
    population: Int = _f(_JOB.population, "population size", ge=1, le=100_000)
    children: Int = _f(_JOB.children, "children per parent", ge=1, le=10_000)
    horizon: Int = _f(_JOB.horizon, "episode length (ticks)", ge=1, le=10_000_000)
    workers: Int = _f(_JOB.workers, "evaluation worker processes (backend local)", ge=1, le=1024)
    backend: Literal["local", "ray"] = _f(_JOB.backend, "local: worker processes; ray: a Ray cluster")
    ray_address: Text = _f("", "backend ray: the cluster (host:port, ray://host:10001); '' = RAY_ADDRESS, else a "
                           "head started for each job")
    sysid_budget_s: float = _f(_JOB.sysid_budget_s, "system identification wall-clock budget (before the "
                               "evolution's)", gt=0, le=DAY)
    sysid_max_evals: Int = _f(_JOB.sysid_max_evals, "system identification evaluations at most (a count binds "
                              "reproducibly)", ge=1, le=100_000_000)
    drift: Annotated[Optional[dict], BeforeValidator(lambda x: None if x in ({}, "") else x)] = _f(
        None, "a DriftSpec for jobs without telemetry / the policy sandbox's target (null: identify it from "
        "the telemetry; JSON text as a ROS parameter)")
    cpu_s: float = _f(1200.0, "CPU-time limit of the sandbox process", gt=0, le=DAY)
    memory_mb: Int = _f(8192, "memory limit of the sandbox process (MiB)", ge=64, le=10_000_000)


class GateSettings(Strict):
    """The safety gate (safety.gate) in its child process."""

    suite: Text = _f("", "regression suite YAML, read only: the node's gate reads a copy under the registry ('' : no "
                     "gate, candidates are held; replay: the robot's shipped suite)")
    archive_on_promotion: bool = _f(True, "node: append each promoted regime to the working copy of the suite "
                                    "(<registry_path>/gate_suite.yaml) as an archive scenario, so that no later "
                                    "candidate may regress on it (gate.suite itself is never written to)")
    timeout_s: float = _f(900.0, "gate process wall-clock limit (INCONCLUSIVE after it)", gt=0, le=DAY)
    overrides: _Dict = _f({}, "merged into the suite YAML, e.g. {defaults: {seeds: 6}} (JSON text as a ROS "
                          "parameter)")


class RosSettings(Strict):
    """The controller node's I/O (adapters.ros.controller_node); replay has none of it."""

    joint_states_topic: Text = _f("joint_states", "sensor_msgs/JointState input, e.g. from "
                                  "joint_state_broadcaster (relative names resolve in the node's namespace; a "
                                  "remap moves any topic)")
    commands_topic: Text = _f("forward_effort_controller/commands", "forward command controller input")
    incumbent_source: Literal["topic", "joint_state_effort"] = _f(
        "topic", "where the incumbent's command is observed (shadow/canary): topic (incumbent_topic) | "
        "joint_state_effort (JointState.effort of the actuated joints, a ros2_control incumbent; shadow only)")
    incumbent_topic: Text = _f("incumbent_controller/commands", "the existing controller's commands "
                               "(incumbent_source topic)")
    reward_topic: Text = _f("", "std_msgs/Float64 live performance signal ('' = none: no watch verdict)")
    autostart: bool = _f(False, "configure and activate on start-up (no lifecycle manager)")
    control_thread: bool = _f(False, "joint-state subscription and tick on a thread of their own (an rcl wait "
                              "set, like ros2_control's update loop; SCHED_FIFO realtime_priority); the "
                              "executor keeps the rest: lower latency, half the node's CPU "
                              "(benchmarks/results/node_latency.md)")
    realtime_priority: Int = _f(0, "SCHED_FIFO priority 1..99 for the node's threads, as ros2_control's "
                                "thread_priority (0: the normal scheduler); needs CAP_SYS_NICE or `ulimit -r` "
                                ">= the priority, refused: WARN on /diagnostics and runs on; the sandbox and "
                                "gate processes never inherit it", ge=0, le=99)
    max_joint_states_per_tick: Int = _f(20, "control_thread: joint states taken per control period at most; the "
                                        "rest are dropped and counted", ge=1, le=100_000)
    diagnostics_rate_hz: float = _f(1.0, "/diagnostics and ~/comparison rate", gt=0, le=1000)


def _absolute(topic: Optional[str]) -> Optional[str]:
    if topic is not None and not topic.startswith("/"):
        raise ValueError(f"must be an absolute topic name (a bag records /name), got {topic!r}")
    return topic


_Topic = Annotated[Optional[str], AfterValidator(_absolute)]


class ReplayTopics(Strict):
    """Role -> topic in the bag (the recorder's roles, adapters.recording.ROLES)."""

    joint_states: _Topic = None
    commands: _Topic = None
    reward: _Topic = None
    events: _Topic = None
    drift_active: _Topic = None
    diagnostics: _Topic = None


class ReplaySettings(Strict):
    """Offline replay (adapters.replay) only."""

    topics: Annotated[ReplayTopics, _empty(dict)] = Field(default_factory=ReplayTopics, description=(
        "role -> absolute topic in the bag ({} = the bag's driftgate metadata); roles: joint_states, commands "
        "(required), reward, drift_active, events, diagnostics"))
    sample_s: float = _f(1.0, "one `sample` record per this many seconds", gt=0, le=DAY)
    adapt_latency_s: float = _f(60.0, "simulated seconds a sandbox job is assumed to take", ge=0, le=DAY)
    gate_latency_s: float = _f(10.0, "simulated seconds the gate is assumed to take", ge=0, le=DAY)
    gate_enabled: bool = _f(True, "false: every candidate is held (INCONCLUSIVE)")


def _section(model: type[BaseModel]) -> Any:
    return Field(default_factory=model, description=(model.__doc__ or "").strip().splitlines()[0])


class Settings(Strict):
    """The whole tree (see the module docstring)."""

    robot: Text = _f(DEFAULT_PLANT, f"the robot: a built-in name ({BUILTIN_HELP}) or a robot profile YAML")
    runtime: Annotated[RuntimeSettings, _empty(dict)] = _section(RuntimeSettings)
    guard: Annotated[GuardSettings, _empty(dict)] = _section(GuardSettings)
    monitor: Annotated[MonitorSettings, _empty(dict)] = _section(MonitorSettings)
    orchestrator: Annotated[OrchestratorSettings, _empty(dict)] = _section(OrchestratorSettings)
    adapt: Annotated[AdaptSettings, _empty(dict)] = _section(AdaptSettings)
    gate: Annotated[GateSettings, _empty(dict)] = _section(GateSettings)
    ros: Annotated[RosSettings, _empty(dict)] = _section(RosSettings)
    replay: Annotated[ReplaySettings, _empty(dict)] = _section(ReplaySettings)

    def job_fields(self) -> dict:
        """The job.json fields this tree sets (`JOB_SETTINGS`, same names)."""
        return {k: getattr(self.adapt, k) for k in JOB_SETTINGS}


class SettingsError(ValueError):
    """A settings value or key that is refused; the message is one line naming the setting."""


# Old (flat) names -> the setting that replaced them: refused with this name, never aliased.
RENAMED: dict[str, str] = {
    "plant": "robot", "joint_names": "runtime.joint_names", "rate_hz": "runtime.rate_hz",
    "trigger": "runtime.trigger", "mode": "runtime.mode", "stale_timeout_s": "runtime.stale_timeout_s",
    "safe_command": "runtime.safe_command", "max_abs_input": "runtime.max_abs_input",
    "burst_limit": "runtime.burst_limit", "velocity_source": "runtime.velocity_source",
    "canary_window_s": "runtime.canary_window_s", "canary_period_s": "runtime.canary_period_s",
    "canary_weight": "runtime.canary_weight",
    "guard_max_divergence": "guard.max_divergence", "guard_joint_bounds": "guard.joint_bounds",
    "incumbent_timeout_s": "guard.incumbent_timeout_s",
    "detector_config": "monitor.config", "monitor_file": "monitor.config",
    "registry_path": "orchestrator.registry_path", "bootstrap_champion": "orchestrator.bootstrap_champion",
    "champion": "orchestrator.bootstrap_champion", "job_root": "orchestrator.job_root",
    "orchestrator_rate_hz": "orchestrator.step_s", "step_s": "orchestrator.step_s",
    "shadow_max_divergence_mean": "orchestrator.shadow_max_divergence",
    "adapt": "adapt.enabled",
    "sandbox": "adapt.sandbox_command (one sandbox now serves every champion kind; drop the key)", "sandbox_command": "adapt.sandbox_command",
    "adapt_budget_s": "adapt.budget_s", "wall_limit_s": "adapt.budget_s", "wall_s": "adapt.budget_s",
    "adapt_generations": "adapt.max_generations", "generations": "adapt.max_generations",
    "adapt_population": "adapt.population", "adapt_children": "adapt.children", "adapt_horizon": "adapt.horizon",
    "adapt_workers": "adapt.workers", "adapt_sysid_budget_s": "adapt.sysid_budget_s",
    "ray_address": "adapt.ray_address (and adapt.backend: ray)", "drift_hint": "adapt.drift",
    "latency_s": "replay.adapt_latency_s / replay.gate_latency_s",
    "gate_suite": "gate.suite", "archive_on_promotion": "gate.archive_on_promotion",
    "gate_timeout_s": "gate.timeout_s",
    "joint_states_topic": "ros.joint_states_topic", "commands_topic": "ros.commands_topic",
    "incumbent_source": "ros.incumbent_source", "incumbent_topic": "ros.incumbent_topic",
    "reward_topic": "ros.reward_topic", "autostart": "ros.autostart", "control_thread": "ros.control_thread",
    "realtime_priority": "ros.realtime_priority", "max_joint_states_per_tick": "ros.max_joint_states_per_tick",
    "diagnostics_rate_hz": "ros.diagnostics_rate_hz", "adapt.latency_s": "replay.adapt_latency_s",
    "gate.latency_s": "replay.gate_latency_s", "gate.enabled": "replay.gate_enabled", "topics": "replay.topics", "sample_s": "replay.sample_s",
}
for _k in ("retry_backoff_s", "post_alarm_s", "shadow_s", "shadow_min_samples", "shadow_timeout_s",
           "shadow_max_divergence", "shadow_max_saturation", "rescue_failing_champion", "rescue_outside_fraction",
           "rescue_gate_fraction", "rescue_grace_s", "canary_weights", "canary_step_s", "canary_slice_s", "canary_duty", "watch_s",
           "watch_min_samples", "watch_tolerance", "refresh_s"):
    RENAMED[_k] = f"orchestrator.{_k}"


# ---------------------------------------------------------------------- the tree as flat names

def model_of(ann: Any) -> type[BaseModel] | None:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for a in typing.get_args(ann):
        m = model_of(a)
        if m is not None:
            return m
    return None


def leaves(model: type[BaseModel] = Settings, prefix: str = "", exclude: tuple[str, ...] = ()) -> Iterator[tuple]:
    """(dotted name, pydantic FieldInfo, owning model) for every setting, in tree order."""
    for name, f in model.model_fields.items():
        dotted = prefix + name
        if dotted in exclude:
            continue
        sub = model_of(f.annotation)
        if sub is not None and sub is not ReplayTopics:
            yield from leaves(sub, dotted + ".", exclude)
        else:
            yield dotted, f, model


def field_info(name: str):
    """The pydantic FieldInfo of a dotted setting name (None if there is none)."""
    model: Any = Settings
    parts = name.split(".")
    for i, part in enumerate(parts):
        f = model.model_fields.get(part) if model is not None else None
        if f is None:
            return None
        if i == len(parts) - 1:
            return f
        model = model_of(f.annotation)
    return None


def is_mapping(f) -> bool:
    """Mapping-valued settings are JSON text as ROS parameters."""
    ann = f.annotation
    for a in (ann, *typing.get_args(ann)):
        if a is dict or typing.get_origin(a) is dict or (isinstance(a, type) and issubclass(a, BaseModel)):
            return True
    return False


def is_mutable(f) -> bool:
    return bool((f.json_schema_extra or {}).get("mutable"))


def nested(flat: Mapping[str, Any]) -> dict:
    """``{"adapt.budget_s": 5}`` -> ``{"adapt": {"budget_s": 5}}``."""
    out: dict = {}
    for k, v in flat.items():
        node = out
        parts = k.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v
    return out


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict:
    """The inverse of `nested` for plain mappings (only the tree's sections are descended into)."""
    out: dict = {}
    for k, v in tree.items():
        name = prefix + str(k)
        if isinstance(v, Mapping) and field_info(name) is not None and not is_mapping_leaf(name):
            out.update(flatten(v, name + "."))
        else:
            out[name] = v
    return out


def is_mapping_leaf(name: str) -> bool:
    f = field_info(name)
    return f is not None and model_of(f.annotation) in (None, ReplayTopics) and is_mapping(f)


def renamed_error(names: list[str], known: Any = None) -> str | None:
    """One line for the first old name among `names`, naming its replacement (only replacements
    that are in `known`, when given: another node's parameters have other names)."""
    for n in names:
        new = RENAMED.get(n) or RENAMED.get(n.rsplit(".", 1)[-1])
        if new and new != n and (known is None or new.split(" ")[0] in known):
            return f"setting {n!r} was renamed: use {new}"
    return None


def validate(data: Mapping | None, where: str = "settings") -> Settings:
    """Validate a nested mapping (a YAML file's tree); SettingsError has one line naming the key."""
    data = {} if data is None else data
    if isinstance(data, Mapping):
        old = renamed_error([k for k in flatten(data) if field_info(k) is None])
        if old:
            raise SettingsError(f"{where}: {old}")
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        raise SettingsError(f"{where}: {describe(e, Settings, data)}") from None


def from_parameters(values: Mapping[str, Any]) -> Settings:
    """The tree from flat ROS parameter values (mapping-valued settings given as JSON text)."""
    flat: dict = {}
    for name, v in values.items():
        f = field_info(name)
        if f is not None and is_mapping(f) and isinstance(v, str):
            try:
                v = json.loads(v) if v.strip() else None
            except json.JSONDecodeError as e:
                raise SettingsError(f"parameter {name}: is not valid JSON ({e.msg} at character {e.pos})") from None
        flat[name] = v
    data = nested(flat)
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        raise SettingsError(f"parameter {describe(e, Settings, data)}") from None


def to_parameters(settings: Settings | None = None, exclude: tuple[str, ...] = ("replay",)) -> dict[str, Any]:
    """The flat ROS parameter values of a tree (mapping-valued settings as JSON text)."""
    settings = settings or Settings()
    out: dict = {}
    for name, f, _ in leaves(Settings, exclude=exclude):
        v: Any = settings
        for p in name.split("."):
            v = getattr(v, p)
        out[name] = ros_value(f, v)
    return out


def ros_value(f, v: Any) -> Any:
    if is_mapping(f):
        return "" if v is None else json.dumps(v.model_dump() if isinstance(v, BaseModel) else v, sort_keys=True)
    if isinstance(v, tuple):
        return list(v)
    return v


__all__ = ["AdaptSettings", "GateSettings", "GuardSettings", "JOB_SETTINGS", "MonitorSettings",
           "OrchestratorSettings", "RENAMED", "ReplaySettings", "RosSettings", "RuntimeSettings", "Settings",
           "SettingsError", "field_info", "flatten", "from_parameters", "is_mapping", "is_mutable",
           "leaves", "nested", "renamed_error", "to_parameters", "validate"]
