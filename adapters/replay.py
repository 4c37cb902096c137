"""Deterministic offline replay: what would driftgate have decided on a recorded bag?

    bag (rosbag2 MCAP) ──rosbags AnyReader──► ticks (t, joint state, the command sent after it, reward)
                                                   │ simulated clock = the bag's receive times
                                                   ▼
           DriftMonitor (nominal-model residuals) ──alarm──► Orchestrator ──job──► sandbox (child process)
                                                                   ▲                    │ result
                                                                   └── gate (child) ◄───┘
                                                                   shadow / canary on the recorded states
                                                   ▼
                                          OUT/decisions.jsonl (adapters.decisions) + report

The bag is read in code, never through ``ros2 bag play``, so nothing depends on real time: every
component sees the bag's own timestamps. The same code as the live node runs each stage
(`controller.drift.DriftMonitor`, `controller.orchestrator.Orchestrator`, `controller.runtime`
for the shadow comparison and the canary guards, `controller.jobs.SandboxRunner` /
`ProcessGate`), wired to a simulated clock:

- **monitor**: one `update` per recorded joint state with the command the controller published
  after it (zero-order hold when none came) and the latest reward. Fast: this is the stage the
  throughput target is about (`benchmarks/replay.py`).
- **sandbox and gate** (optional, ``adapt.enabled`` / ``--no-adapt``): they run for real, in their
  child processes, while the simulated clock stands still; their answer is released to the
  orchestrator ``adapt.latency_s`` / ``gate.latency_s`` *simulated* seconds after they started
  (a stated assumption about how long they take on the robot's computer, so the decisions do not
  depend on this machine's speed). A bag that ends while a job or the gate runs is drained: the
  clock runs on past the end until they answer.
- **shadow and canary** run on the recorded states; their commands are never applied to anything,
  so everything after a would-be promotion is **counterfactual**: the recording still shows the
  old controller. The watch period after a promotion therefore has no performance data (no reward
  is fed to it) and ends inconclusive.

Determinism: same bag + same configuration + same seed => byte-identical ``decisions.jsonl``.
The decisions carry no wall-clock time, no process id, no temporary path (job ids become
``job-<n>``); the sandbox's budgets that bind are counts (generations, system-identification
evaluations), its wall-clock limits are only kill switches (when one binds, the adaptation record
says ``budget_bound: "wall"`` and that run is not reproducible). Non-deterministic facts (wall time,
speed-up) go to ``replay.json``.

Bad input (a missing or truncated bag, a corrupt MCAP, unknown schemas on the topics replay needs,
missing topics, an empty bag, a configuration with unknown keys) raises `ReplayError` with a clear
message before or instead of any output: everything is written into a temporary directory next
to ``--out`` and renamed into place only when the replay finished.

Configuration (``--config FILE``, YAML; unknown keys are errors)::

    plant: cartpole                  # default: the bag's driftgate.plant
    champion: ""                     # "" shipped nominal champion | lqr | a .safetensors file
    joint_names: []                  # robot names of the plant's joints (default: from the bag)
    sample_s: 1.0                    # one `sample` record per this many seconds
    step_s: 0.2                      # orchestrator step period (simulated seconds)
    topics: {joint_states: /joint_states, commands: /x/commands, reward: ..., drift_active: ...}
    monitor_file: ""                 # drift monitor YAML (default launch/drift_monitor.yaml)
    monitor: {page_hinkley: {default_threshold: 30}}    # overrides of its keys ("what if")
    orchestrator: {shadow_s: 10, canary_weights: [0.1, 0.5, 1.0], ...}   # OrchestratorConfig
    guard: {max_divergence: 0.5, joint_bounds: {slider: [-1.8, 1.8]}}
    adapt: {enabled: true, latency_s: 60, generations: 20, population: 10, children: 2,
            horizon: 300, sysid_max_evals: 600, wall_limit_s: 900, workers: 1, drift_hint: null}
    gate: {enabled: true, suite: "", latency_s: 10, timeout_s: 900,
           overrides: {defaults: {seeds: 6}, gate: {min_seeds: 5, margin: 0.05}}}
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Mapping, Optional

import numpy as np
import yaml
from pydantic import AfterValidator, BeforeValidator, Field

from controller.config_model import Int, Listy, Strict, Text, ValidationError, describe

from sim.safeio import read_text_bounded

from adapters.decisions import (FILE_NAME, DecisionWriter, adaptation_record, from_orchestrator_event,
                                gate_record, jsonable, make_header, monitor_stats)

DEFAULT_SUITES = {"cartpole": "launch/regression_suite.yaml"}   # shipped names (controller.shipped)
REQUIRED_ROLES = ("joint_states", "commands")


class ReplayError(Exception):
    """Bad input (bag, configuration, output directory): the message says what and where."""


# ---------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class AdaptSettings:
    enabled: bool = True
    latency_s: float = 60.0          # simulated seconds between a job's start and its answer
    wall_limit_s: float = 900.0      # kill switch (real seconds) for the sandbox; counts should bind first
    generations: int = 20
    population: int = 10
    children: int = 2
    horizon: int = 300
    sysid_max_evals: int = 600
    workers: int = 1
    drift_hint: dict | None = None   # the interim sandbox (policy champions) evolves under this


@dataclass(frozen=True)
class GateSettings:
    enabled: bool = True
    suite: str = ""                  # regression suite YAML (default: the plant's shipped suite)
    latency_s: float = 10.0          # simulated seconds between the gate's start and its verdict
    timeout_s: float = 900.0         # kill switch (real seconds)
    overrides: dict = field(default_factory=dict)   # merged into the suite YAML (defaults, gate, ...)


@dataclass(frozen=True)
class ReplayConfig:
    plant: str = ""
    champion: str = ""
    joint_names: tuple[str, ...] = ()
    sample_s: float = 1.0
    step_s: float = 0.2
    topics: dict = field(default_factory=dict)
    monitor_file: str = ""
    monitor: dict = field(default_factory=dict)
    orchestrator: dict = field(default_factory=dict)
    guard: dict = field(default_factory=dict)
    adapt: AdaptSettings = field(default_factory=AdaptSettings)
    gate: GateSettings = field(default_factory=GateSettings)


_ORCH_KEYS = ("retry_backoff_s", "post_alarm_s", "shadow_s", "shadow_min_samples", "shadow_timeout_s",
              "shadow_max_divergence_mean", "shadow_max_saturation", "canary_weights", "canary_step_s",
              "canary_slice_s", "canary_duty", "watch_s", "watch_min_samples", "watch_tolerance", "refresh_s")
_GUARD_KEYS = ("max_divergence", "joint_bounds")


# ---------------------------------------------------------------------- the file's model
# One pydantic model for the replay configuration file (controller.config_model: errors as
# "path.to.field: must be ..., got ..."); the frozen dataclasses above stay what replay reads.

_NonNeg = Annotated[float, Field(ge=0)]
_Pos = Annotated[float, Field(gt=0)]
_Count = Annotated[Int, Field(ge=1)]
_Opt = Optional


def _absolute(topic: Optional[str]) -> Optional[str]:
    if topic is not None and not topic.startswith("/"):
        raise ValueError(f"must be an absolute topic name (a bag records /name), got {topic!r}")
    return topic


_Topic = Annotated[Optional[str], AfterValidator(_absolute)]


class _TopicsModel(Strict):
    joint_states: _Topic = None
    commands: _Topic = None
    reward: _Topic = None
    events: _Topic = None
    drift_active: _Topic = None
    diagnostics: _Topic = None


def _topics_roles() -> tuple[str, ...]:
    return tuple(_TopicsModel.model_fields)


class _OrchestratorModel(Strict):
    retry_backoff_s: _Opt[_NonNeg] = None
    post_alarm_s: _Opt[_NonNeg] = None
    shadow_s: _Opt[_NonNeg] = None
    shadow_min_samples: _Opt[_Count] = None
    shadow_timeout_s: _Opt[_NonNeg] = None
    shadow_max_divergence_mean: _Opt[_NonNeg] = None
    shadow_max_saturation: _Opt[Annotated[float, Field(ge=0, le=1)]] = None
    canary_weights: _Opt[Annotated[list[Annotated[float, Field(gt=0, le=1)]], Field(min_length=1), Listy]] = None
    canary_step_s: _Opt[_NonNeg] = None
    canary_slice_s: _Opt[_Pos] = None
    canary_duty: _Opt[Annotated[float, Field(gt=0, le=1)]] = None
    watch_s: _Opt[_NonNeg] = None
    watch_min_samples: _Opt[_Count] = None
    watch_tolerance: _Opt[_NonNeg] = None
    refresh_s: _Opt[_Pos] = None


class _GuardModel(Strict):
    max_divergence: _Opt[_Pos] = None
    joint_bounds: _Opt[dict[str, Annotated[list[float], Field(min_length=2, max_length=2), Listy]]] = None


class _AdaptModel(Strict):
    enabled: bool = True
    latency_s: _NonNeg = 60.0
    wall_limit_s: _Pos = 900.0
    generations: _Count = 20
    population: _Count = 10
    children: _Count = 2
    horizon: _Count = 300
    sysid_max_evals: _Count = 600
    workers: _Count = 1
    drift_hint: _Opt[dict] = None


class _GateModel(Strict):
    enabled: bool = True
    suite: Text = ""
    latency_s: _NonNeg = 10.0
    timeout_s: _Pos = 900.0
    overrides: Annotated[dict, BeforeValidator(lambda x: {} if x is None else x)] = {}


class ReplayModel(Strict):
    """The replay configuration file (``--config``; see the module docstring and launch/replay.yaml)."""

    plant: Text = ""
    champion: Text = ""
    joint_names: Annotated[list[str], Listy, BeforeValidator(lambda x: [] if x is None else x)] = []
    sample_s: _Pos = 1.0
    step_s: _Pos = 0.2
    topics: Annotated[_TopicsModel, BeforeValidator(lambda x: {} if x is None else x)] = _TopicsModel()
    monitor_file: Text = ""
    monitor: Annotated[dict, BeforeValidator(lambda x: {} if x is None else x)] = {}   # the monitor's own model
    orchestrator: Annotated[_OrchestratorModel, BeforeValidator(lambda x: {} if x is None else x)] = \
        _OrchestratorModel()
    guard: Annotated[_GuardModel, BeforeValidator(lambda x: {} if x is None else x)] = _GuardModel()
    adapt: Annotated[_AdaptModel, BeforeValidator(lambda x: {} if x is None else x)] = _AdaptModel()
    gate: Annotated[_GateModel, BeforeValidator(lambda x: {} if x is None else x)] = _GateModel()

    def to_config(self) -> ReplayConfig:
        given = lambda m: m.model_dump(exclude_none=True)  # noqa: E731 - only the keys the file sets
        return ReplayConfig(plant=self.plant, champion=self.champion, joint_names=tuple(self.joint_names),
                            sample_s=self.sample_s, step_s=self.step_s, topics=given(self.topics),
                            monitor_file=self.monitor_file, monitor=dict(self.monitor),
                            orchestrator=given(self.orchestrator), guard=given(self.guard),
                            adapt=AdaptSettings(**self.adapt.model_dump()),
                            gate=GateSettings(**self.gate.model_dump()))


def config_from_mapping(data: Mapping | None, base_dir: Path | None = None) -> ReplayConfig:
    """Validate a replay configuration mapping (ReplayError names the path to a bad key or value)."""
    data = {} if data is None else data
    try:
        cfg = ReplayModel.model_validate(data).to_config()
    except ValidationError as e:
        raise ReplayError(f"replay config: {describe(e, ReplayModel, data)}") from None
    if base_dir is not None:   # paths in a config file are relative to the file
        rel = lambda p: str((base_dir / p).resolve()) if p and p not in ("lqr",) and not Path(p).is_absolute() else p  # noqa: E731
        cfg = dataclasses.replace(cfg, champion=rel(cfg.champion), monitor_file=rel(cfg.monitor_file),
                                  gate=dataclasses.replace(cfg.gate, suite=rel(cfg.gate.suite)))
    return cfg


def load_replay_config(path: str | os.PathLike | None = None) -> ReplayConfig:
    """Read a replay configuration YAML (None: all defaults)."""
    if path is None:
        return ReplayConfig()
    path = Path(path)
    try:
        data = yaml.safe_load(read_text_bounded(path, what="replay config"))
    except OSError as e:
        raise ReplayError(f"cannot read config {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise ReplayError(f"config {path}: not valid YAML ({e})") from None
    try:
        return config_from_mapping(data, path.parent.resolve())
    except ReplayError as e:
        raise ReplayError(f"{path}: {e}") from None


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, Mapping):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def monitor_config(cfg: ReplayConfig):
    """The drift monitor configuration: its YAML file, then the `monitor` overrides."""
    from controller.drift import from_mapping, load_config
    try:
        base = load_config(cfg.monitor_file or None)
        if cfg.monitor:
            base = from_mapping(_merge(base.to_dict(), cfg.monitor))
    except (ValueError, OSError) as e:
        raise ReplayError(f"replay config: monitor: {e}") from None
    return base


# ---------------------------------------------------------------------- the bag

@dataclass
class BagInfo:
    path: Path
    custom: dict
    topics: dict            # role -> topic
    types: dict             # topic -> msgtype
    counts: dict            # topic -> messages
    start_ns: int
    end_ns: int
    storage_sha256: str

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e9


def _bag_error(path: Path, e: BaseException, reading: bool = False) -> ReplayError:
    msg = str(e) or type(e).__name__
    if reading:
        return ReplayError(f"bag {path} is damaged: {msg} (a truncated or corrupt MCAP file)")
    return ReplayError(f"cannot open bag {path}: {msg} (a damaged metadata.yaml, or a truncated or corrupt "
                       "MCAP file)")


def _sha256_files(paths) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode() + b"\0")
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _check_storage_files(bag: Path, files: list[Path]) -> None:
    import stat

    from sim.safeio import inside
    for f in files:
        if not inside(f, bag):
            raise ReplayError(f"bag {bag}: storage file {f.name} lies outside the bag directory; refused")
        try:
            st = os.stat(f)
        except OSError as e:
            raise ReplayError(f"bag {bag}: storage file {f.name}: {e.strerror or e}") from None
        if not stat.S_ISREG(st.st_mode):
            raise ReplayError(f"bag {bag}: storage file {f.name} is not a regular file; refused")


def inspect_bag(path: str | os.PathLike, topics: Mapping[str, str] | None = None) -> BagInfo:
    """Open a bag and check what replay needs (ReplayError otherwise). Does not read messages."""
    from rosbags.rosbag2 import Reader

    from adapters.recording import DEFAULT_TOPICS, ROLE_TYPES, typestore
    path = Path(path)
    if not path.exists():
        raise ReplayError(f"bag {path} does not exist")
    if path.is_file():
        if path.suffix == ".mcap" and (path.parent / "metadata.yaml").exists():
            path = path.parent
        else:
            raise ReplayError(f"{path} is a file: give the rosbag2 bag directory (with metadata.yaml and the "
                              ".mcap file)")
    if not (path / "metadata.yaml").exists():
        raise ReplayError(f"{path} is not a rosbag2 bag directory (no metadata.yaml)")
    try:   # the low-level reader: schemas of topics replay does not use are never parsed
        # first what the reader would open, bounded: the metadata (regular file, size-capped) and
        # every storage file (regular files inside the bag: no device, pipe or link out of it)
        meta = yaml.safe_load(read_text_bounded(path / "metadata.yaml", what="bag metadata"))["rosbag2_bagfile_information"]
        custom = {str(k): str(v) for k, v in (meta.get("custom_data") or {}).items()}
        files = [path / str(f) for f in meta.get("relative_file_paths") or []]
        _check_storage_files(path, files)
        with Reader(path) as r:
            conns = list(r.connections)
            start, end = int(r.start_time), int(r.end_time) - 1   # rosbags: end = last + 1 ns
    except ReplayError:
        raise
    except Exception as e:   # rosbags raises its own errors, and struct/zstd/yaml errors on damage
        raise _bag_error(path, e) from None
    types: dict[str, str] = {}
    counts: dict[str, int] = {}
    for c in conns:
        if c.topic in types and types[c.topic] != c.msgtype:
            raise ReplayError(f"bag {path}: topic {c.topic} is recorded with two types ({types[c.topic]}, "
                              f"{c.msgtype})")
        types[c.topic] = c.msgtype
        counts[c.topic] = counts.get(c.topic, 0) + int(c.msgcount)
    if not conns or sum(counts.values()) == 0:
        raise ReplayError(f"bag {path} is empty (no messages)")
    bag_topics = {}
    try:
        bag_topics = json.loads(custom.get("driftgate.topics") or "{}")
    except ValueError:
        pass
    resolved: dict[str, str] = {}
    for role in ROLE_TYPES:
        want = (topics or {}).get(role) or bag_topics.get(role) or DEFAULT_TOPICS[role]
        if want in types:
            resolved[role] = want
            continue
        if (topics or {}).get(role):
            if role in REQUIRED_ROLES:
                raise ReplayError(f"bag {path}: topic {want} ({role}) is not in the bag; topics: "
                                  f"{sorted(types)}")
            continue
        # not at the expected name: the only topic of the role's type (reward: a Float64 named *reward)
        cands = [t for t, ty in types.items() if ty == ROLE_TYPES[role]]
        if role == "reward":
            cands = [t for t in cands if "reward" in t]
        elif role in ("events", "drift_active"):
            cands = [t for t in cands if t.rstrip("/").endswith(role)]
        if len(cands) == 1:
            resolved[role] = cands[0]
        elif role in REQUIRED_ROLES:
            what = "no topic" if not cands else f"several topics ({sorted(cands)})"
            raise ReplayError(f"bag {path}: missing topic {want} ({role}, {ROLE_TYPES[role]}): {what} of that "
                              f"type; topics: {sorted(f'{t} [{ty}]' for t, ty in types.items())}. "
                              f"Name it with topics.{role} in --config.")
    ts = typestore()
    for role, topic in list(resolved.items()):
        problem = None
        if types[topic] != ROLE_TYPES[role]:
            problem = f"has schema {types[topic]}; replay needs {ROLE_TYPES[role]}"
        else:
            want = ts.hash_rihs01(ROLE_TYPES[role])
            for c in conns:
                if c.topic == topic and str(c.digest or "").startswith("RIHS01_") and c.digest != want:
                    problem = (f"carries an unknown schema for {ROLE_TYPES[role]} (type hash {c.digest[:20]}..., "
                               f"ROS 2's is {want[:20]}...): replay decodes the standard ROS 2 definition only")
        if problem and role in REQUIRED_ROLES:
            raise ReplayError(f"bag {path}: topic {topic} ({role}) {problem}")
        if problem:              # an optional role (reward, drift markers): replay goes on without it
            del resolved[role]
    for role in REQUIRED_ROLES:
        if counts.get(resolved[role], 0) == 0:
            raise ReplayError(f"bag {path}: topic {resolved[role]} ({role}) has no messages")
    sha = _sha256_files(files) if files else ""
    return BagInfo(path, custom, resolved, types, counts, start, end, sha)


# ---------------------------------------------------------------------- simulated-time job wrappers

_JOB_ID = re.compile(r"\b\d{8}-\d{6}-\d+-(\d+)\b")
_GATE_DIR = re.compile(r"gate-\d{8}-\d{6}-\d+-(\d+)")


class _Sanitizer:
    """Removes what differs between two runs of the same replay: temporary paths, job and gate
    directory names (which carry wall-clock times and process ids)."""

    def __init__(self, work: Path) -> None:
        self.work = str(work)
        self.real = str(work.resolve())

    def __call__(self, x: Any) -> Any:
        if isinstance(x, dict):
            return {k: self(v) for k, v in x.items()}
        if isinstance(x, list):
            return [self(v) for v in x]
        if isinstance(x, str):
            x = x.replace(self.real, "<work>").replace(self.work, "<work>")
            x = _GATE_DIR.sub(r"gate-\1", x)
            return _JOB_ID.sub(r"job-\1", x)
        return x


class _SimTimed:
    """A runner or gate whose answer the replay holds back until `latency_s` simulated seconds
    after `start`. The first poll blocks (in real time, the simulated clock standing still) until
    the wrapped process answered: the answer and the time it is released at are then independent
    of this machine's speed."""

    def __init__(self, inner, latency_s: float, clock: Callable[[], float],
                 on_answer: Callable[[Any, Any], None], wait: Callable[[str], None] | None = None,
                 what: str = "job") -> None:
        self.inner, self.latency_s, self.clock = inner, float(latency_s), clock
        self.on_answer, self.wait, self.what = on_answer, wait, what
        self._started: float | None = None
        self._req: Any = None
        self._answer: Any = None
        self.wall_s = 0.0
        self.n = 0

    @property
    def status(self) -> str:
        return getattr(self.inner, "status", "")

    def start(self, request) -> None:
        self.inner.start(request)
        self._started = self.clock()
        self._req = request
        self._answer = None
        self.n += 1

    def poll(self):
        if self._started is None:
            return None
        if self._answer is None:
            t0 = time.monotonic()
            while True:
                ans = self.inner.poll()
                if ans is not None:
                    break
                if self.wait is not None:
                    self.wait(f"{self.what} {self.n} running ({time.monotonic() - t0:.0f} s)")
                time.sleep(0.05)
            self.wall_s += time.monotonic() - t0
            self._answer = ans
        if self.clock() < self._started + self.latency_s - 1e-9:
            return None
        ans, req = self._answer, self._req
        self._started, self._answer, self._req = None, None, None
        self.on_answer(req, ans)
        return ans

    def cancel(self) -> None:
        self.inner.cancel()
        self._started, self._answer, self._req = None, None, None

    @property
    def busy(self) -> bool:
        return self._started is not None


# ---------------------------------------------------------------------- the replay

@dataclass
class ReplayResult:
    out_dir: Path
    decisions: Path
    bag_duration_s: float
    wall_s: float
    ticks: int
    alarms: int
    meta: dict

    @property
    def speedup(self) -> float:
        return self.bag_duration_s / self.wall_s if self.wall_s > 0 else math.inf


def _champion(cfg: ReplayConfig, plant: str):
    from sim.genome import GenomeFileError, load_genome
    src = cfg.champion
    try:
        if src == "lqr":
            from controller.bootstrap import lqr_policy_genome
            return lqr_policy_genome(plant), "lqr"
        if src:
            return load_genome(src), Path(src).name
        from controller.shipped import shipped_file
        try:
            path = shipped_file(f"champions/{plant}.safetensors")
        except FileNotFoundError:
            path = None
        if path is not None:
            return load_genome(path), f"shipped:{path.name}"
        if plant == "cartpole":
            from controller.bootstrap import lqr_policy_genome
            return lqr_policy_genome(plant), "lqr"
    except (GenomeFileError, OSError, ValueError) as e:
        raise ReplayError(f"replay config: champion {src or plant!r}: {e}") from None
    raise ReplayError(f"no champion for plant {plant!r}: set champion: (a genome file) in --config")


def _suite(cfg: ReplayConfig, plant: str, work: Path) -> tuple[Path, dict]:
    from safety.suite import SuiteError, load_suite
    from controller.shipped import resolve
    src = cfg.gate.suite or DEFAULT_SUITES.get(plant)
    if src is None:
        raise ReplayError(f"no regression suite for plant {plant!r}: set gate.suite in --config "
                          "(or gate.enabled: false)")
    src = resolve(src)
    try:
        doc = yaml.safe_load(read_text_bounded(src, what="gate suite"))
    except OSError as e:
        raise ReplayError(f"gate suite {src}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise ReplayError(f"gate suite {src}: not valid YAML ({e})") from None
    if cfg.gate.overrides:
        doc = _merge(doc, cfg.gate.overrides)
    out = work / "suite.yaml"
    text = yaml.safe_dump(doc, sort_keys=False)
    out.write_text(text)
    try:
        suite = load_suite(out)
    except SuiteError as e:
        raise ReplayError(f"gate suite {src} with gate.overrides: {e}".replace(str(out), "suite")) from None
    if suite.plant != plant:
        raise ReplayError(f"gate suite {src} judges plant {suite.plant!r}, the bag is {plant!r}")
    return out, {"name": suite.name, "source": src.name, "sha256": hashlib.sha256(text.encode()).hexdigest(),
                 "overrides": cfg.gate.overrides}


def _make_output_tmp(out_dir: Path, overwrite: bool) -> Path:
    if out_dir.exists() and not overwrite:
        raise ReplayError(f"output directory {out_dir} exists already; choose a new --out (or --force)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))


def _publish(tmp: Path, out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists():
        if not overwrite:
            raise ReplayError(f"output directory {out_dir} appeared during the replay; results left in {tmp}")
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)


def replay(bag: str | os.PathLike, out_dir: str | os.PathLike, config: ReplayConfig | None = None, *,
           seed: int = 0, adapt: bool | None = None, report: bool = True, overwrite: bool = False,
           keep_work: bool = False, progress: Callable[[float, str], None] | None = None,
           runner: Any = None, gate: Any = None) -> ReplayResult:
    """Replay `bag` through the pipeline and write `out_dir` (decisions.jsonl, replay.json and, with
    `report`, report.json / timeline.png / summary.md). `adapt` overrides ``config.adapt.enabled``.
    `runner` / `gate` replace the sandbox runner / the gate (any `controller.contracts`
    AdaptationRunner / Gate; tests and embedding). `progress(fraction, status)` is called as the
    replay advances. Raises ReplayError for bad input; `out_dir` then does not exist (or is
    unchanged)."""
    cfg = config or ReplayConfig()
    out_dir = Path(out_dir)
    use_adapt = cfg.adapt.enabled if adapt is None else bool(adapt)
    t_wall0 = time.perf_counter()
    info = inspect_bag(bag, cfg.topics)
    mcfg = monitor_config(cfg)
    tmp = _make_output_tmp(out_dir, overwrite)
    run = None
    try:
        work = tmp / "work"
        work.mkdir()
        run = _Run(info, cfg, mcfg, seed, use_adapt, work, progress, runner, gate)
        with DecisionWriter(tmp / FILE_NAME, run.header(), buffered=True) as writer:
            run.writer = writer
            run.execute()
        wall = time.perf_counter() - t_wall0
        meta = {"bag": str(info.path.resolve()), "bag_duration_s": info.duration_s, "wall_s": wall,
                "speedup": info.duration_s / wall if wall > 0 else None, "ticks": run.ticks,
                "alarms": run.n_alarms, "adapt": use_adapt, "seed": seed,
                "monitor_wall_s": run.monitor_wall_s, "waited_for_jobs_s": run.wait_s,
                "skipped_ticks": run.skipped, "monitor_counters": run.monitor.all_counters(),
                "python": sys.version.split()[0],
                "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        (tmp / "replay.json").write_text(json.dumps(jsonable(meta), indent=1, sort_keys=True) + "\n")
        run.close()
        if not keep_work:
            shutil.rmtree(work, ignore_errors=True)
        if report:
            from adapters.report import render_report
            render_report(tmp)
        _publish(tmp, out_dir, overwrite)
    except BaseException:
        if run is not None:
            run.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ReplayResult(out_dir, out_dir / FILE_NAME, info.duration_s, wall, run.ticks, run.n_alarms, meta)


class _Run:
    """One replay's state (see `replay`)."""

    def __init__(self, info: BagInfo, cfg: ReplayConfig, mcfg, seed: int, use_adapt: bool, work: Path,
                 progress, runner=None, gate=None) -> None:
        from controller.drift import DriftMonitor
        from controller.observation import make_observation_map, plant_info
        from sim.nominal_model import STATE_CODECS, make_predictor
        self.info, self.cfg, self.mcfg, self.seed, self.use_adapt = info, cfg, mcfg, int(seed), use_adapt
        self.work, self.progress = work, progress
        plant = cfg.plant or info.custom.get("driftgate.plant", "")
        if not plant:
            raise ReplayError(f"bag {info.path} does not name its plant (no driftgate.plant in metadata.yaml): "
                              "set plant: in --config")
        if plant not in STATE_CODECS:
            raise ReplayError(f"unknown plant {plant!r}; replay knows {sorted(STATE_CODECS)}")
        self.plant = plant
        self.pinfo = plant_info(plant)
        names = list(cfg.joint_names)
        if not names:
            try:
                names = json.loads(info.custom.get("driftgate.joint_names") or "[]")
            except ValueError:
                names = []
        names = names or list(self.pinfo["joint_names"])
        if len(names) != len(self.pinfo["joint_names"]):
            raise ReplayError(f"joint_names {names} do not match plant {plant!r} joints {self.pinfo['joint_names']}")
        self.joint_names = tuple(names)
        self.dt = float(self.pinfo["control_dt"])
        self.act_dim = int(self.pinfo["act_dim"])
        self.obs_map = make_observation_map(plant)
        try:
            self.monitor = DriftMonitor(mcfg, obs_dim=self.obs_map.obs_dim, act_dim=self.act_dim, dt=self.dt,
                                        source=make_predictor(plant, mcfg), act_low=self.pinfo["act_low"],
                                        act_high=self.pinfo["act_high"])
        except (ValueError, OSError) as e:
            raise ReplayError(f"drift monitor: {e}") from None
        self.sanitize = _Sanitizer(work)
        self.writer: DecisionWriter | None = None
        self.ticks = self.n_alarms = self.skipped = 0
        self.monitor_wall_s = self.wait_s = 0.0
        self.now = 0.0
        self.orch = None
        self.suite_info: dict | None = None
        self.champion_src = None
        if use_adapt:
            self._setup_adaptation(runner, gate)

    # -- header -----------------------------------------------------------------------------------
    def effective_config(self) -> dict:
        m = self.mcfg.to_dict()
        if m.get("calibration_file"):
            m["calibration_file"] = Path(m["calibration_file"]).name
        out = {"plant": self.plant, "joint_names": list(self.joint_names), "sample_s": self.cfg.sample_s,
               "step_s": self.cfg.step_s, "topics": self.info.topics, "monitor": m, "adapt_stage": self.use_adapt}
        if self.use_adapt:
            oc = dataclasses.asdict(self.orch.config)
            oc.pop("job_root", None)
            out.update({"champion": {"id": self.champion.id, "kind": self.champion.kind,
                                     "source": self.champion_src},
                        "orchestrator": oc, "guard": self.cfg.guard, "adapt": dataclasses.asdict(self.cfg.adapt),
                        "gate": {**dataclasses.asdict(self.cfg.gate), "suite": self.suite_info}})
        return out

    def header(self) -> dict:
        info = self.info
        return make_header("replay", self.plant, counterfactual=True, config=self.effective_config(), seed=self.seed,
                           bag={"name": info.path.name, "storage_sha256": info.storage_sha256,
                                "duration_s": info.duration_s, "start_ns": info.start_ns,
                                "topics": {t: {"type": info.types[t], "messages": info.counts[t]}
                                           for t in sorted(info.types)},
                                "custom_data": {k: v for k, v in sorted(info.custom.items())}},
                           roles=info.topics)

    # -- the adaptation stage -----------------------------------------------------------------------
    def _setup_adaptation(self, custom_runner=None, custom_gate=None) -> None:
        from controller.bootstrap import bootstrap_registry
        from controller.contracts import INCONCLUSIVE, GateOutcome
        from controller.jobs import FunctionGate, ProcessGate, SandboxRunner, SubprocessRunner
        from controller.orchestrator import Orchestrator, OrchestratorConfig
        from controller.runtime import ControllerRuntime, GuardConfig, RuntimeConfig
        from safety.registry import Registry
        cfg, a = self.cfg, self.cfg.adapt
        self.champion, self.champion_src = _champion(cfg, self.plant)
        reg_root = self.work / "registry"
        try:
            bootstrap_registry(reg_root, self.champion, plant=self.plant, actor="driftgate-replay")
        except Exception as e:
            raise ReplayError(f"champion {self.champion_src}: cannot register it: {e}") from None
        self.registry = Registry(reg_root, actor="driftgate-replay")
        g = dict(cfg.guard)
        try:
            guard = GuardConfig.from_names(self.joint_names, g.get("joint_bounds") or {},
                                           max_divergence=float(g.get("max_divergence", 0.5)))
            rcfg = RuntimeConfig(joint_names=self.joint_names, act_dim=self.act_dim,
                                 act_low=tuple(self.pinfo["act_low"]), act_high=tuple(self.pinfo["act_high"]),
                                 stale_after_s=1.0, guard=guard)
            budgets = {"wall_s": a.wall_limit_s, "generations": a.generations, "population": a.population,
                       "children": a.children, "horizon": a.horizon, "episodes": 1}
            ocfg = OrchestratorConfig(plant=self.plant, job_root=self.work / "jobs", adapt=True, seed=self.seed,
                                      budgets=budgets, drift_hint=a.drift_hint,
                                      **{k: (tuple(v) if isinstance(v, list) else v)
                                         for k, v in cfg.orchestrator.items()})
        except (ValueError, TypeError) as e:
            raise ReplayError(f"replay config: {e}") from None
        clock = lambda: self.now  # noqa: E731
        self.runtime = ControllerRuntime(rcfg, self.obs_map, monitor=None, clock=clock)
        if custom_runner is not None:
            inner_runner = custom_runner
        elif self.champion.kind == "srghn":
            inner_runner = SandboxRunner(sysid_s=a.wall_limit_s, extra={
                "budget_s": a.wall_limit_s, "sysid_budget_s": a.wall_limit_s, "sysid_max_evals": a.sysid_max_evals,
                "workers": a.workers})
        else:
            inner_runner = SubprocessRunner(timeout_s=a.wall_limit_s)
        if custom_gate is not None:
            self.suite_info = {"name": type(custom_gate).__name__, "source": "custom gate object"}
            inner_gate = custom_gate
        elif cfg.gate.enabled:
            suite_path, self.suite_info = _suite(cfg, self.plant, self.work)
            inner_gate = ProcessGate(reg_root, suite_path, self.work / "gate", timeout_s=cfg.gate.timeout_s,
                                     actor="driftgate-replay-gate")
        else:
            self.suite_info = None
            inner_gate = FunctionGate(lambda req: GateOutcome(INCONCLUSIVE, ("gate disabled in the replay "
                                                                             "config: holding",)))
        self.runner = _SimTimed(inner_runner, a.latency_s, clock, self._on_adaptation, self._waiting, "sandbox job")
        self.gate = _SimTimed(inner_gate, cfg.gate.latency_s, clock, self._on_gate, self._waiting, "gate")
        self.orch = Orchestrator(ocfg, self.registry, self.runtime, self.runner, self.gate, monitor=self.monitor,
                                 emit=self._on_event, clock=clock)

    def _waiting(self, what: str) -> None:
        if self.progress is not None:
            self.progress(self._fraction(), what)

    def _on_event(self, ev: dict) -> None:
        if self.writer is None:
            return
        rec = from_orchestrator_event(self.sanitize(jsonable(ev)), self.now, alarms=False)
        if rec is not None:
            self.writer.write(rec.t, rec.kind, **rec.data)

    def _on_adaptation(self, job, res) -> None:
        rec = adaptation_record(res.result, job=f"job-{self.runner.n}", ok=res.ok, error=res.error,
                                drift_estimate=res.drift_estimate, max_generations=self.cfg.adapt.generations,
                                drift_event=getattr(job, "drift_event", None) or {})
        self.writer.write(self.now, "adaptation", **self.sanitize(rec))

    def _on_gate(self, req, out) -> None:
        report = out.report
        if report is None and req is not None:
            try:
                reps = self.registry.gate_reports(req.candidate_id)
                report = reps[-1].report if reps else None
            except Exception:
                report = None
        rec = gate_record(getattr(req, "candidate_id", None), out.verdict, out.reasons, out.predicted_reward, report)
        self.writer.write(self.now, "gate", **self.sanitize(rec))

    # -- the main loop --------------------------------------------------------------------------
    def _fraction(self) -> float:
        d = self.info.duration_s
        return min(1.0, self.now / d) if d > 0 else 1.0

    def execute(self) -> None:
        from rosbags.rosbag2 import Reader

        from adapters.recording import typestore
        info, w = self.info, self.writer
        roles = info.topics
        js_topic, cmd_topic = roles["joint_states"], roles["commands"]
        rew_topic, drift_topic = roles.get("reward"), roles.get("drift_active")
        wanted = {t for t in (js_topic, cmd_topic, rew_topic, drift_topic) if t}
        start = info.start_ns
        mon = self.monitor
        update = mon.update
        obs_map = self.obs_map
        names_want = self.joint_names
        order_cache: dict[tuple, Any] = {}
        pending = None             # (t_rel, stamp, q, v) of a joint state waiting for its command
        last_cmd = None
        reward = None
        rew_sum, rew_n = 0.0, 0
        sample_s, step_s = self.cfg.sample_s, self.cfg.step_s
        next_sample = sample_s
        next_step = 0.0
        last_drift_hash = None
        use_adapt = self.use_adapt
        rt = self.runtime if use_adapt else None
        orch = self.orch
        act_dim = self.act_dim
        prog_every = max(1.0, info.duration_s / 200.0)
        next_prog = 0.0
        t_mon = 0.0
        ph = [d for d in mon.detectors() if d.name.startswith("ph:")]
        peaks = {d.name: 0.0 for d in ph}

        def tick(p, action) -> None:
            nonlocal next_sample, rew_sum, rew_n, next_step, t_mon, ph, peaks
            t_rel, stamp, q, v = p
            self.now = t_rel
            obs = obs_map(q, v)
            c0 = time.perf_counter()
            ev = update(stamp, obs, action, reward)
            for d in ph:        # the peak of statistic / threshold since the last sample
                x = d.statistic / d.threshold
                if x > peaks[d.name]:
                    peaks[d.name] = x
            t_mon += time.perf_counter() - c0
            self.ticks += 1
            if ev is not None:
                for k, x in ev.magnitude.items():
                    if k in peaks and x > peaks[k]:
                        peaks[k] = x
                self.n_alarms += 1
                onset = None if ev.onset_t is None else round(ev.onset_t - stamp + t_rel, 6)
                w.write(t_rel, "alarm", detectors=list(ev.detectors), channels=list(ev.channels),
                        magnitude={k: float(f"{x:.6g}") for k, x in ev.magnitude.items()}, onset_t=onset,
                        score=float(f"{ev.score:.6g}"), tick=ev.tick)
                if rt is not None:
                    rt.drift_events.append(ev)
            if rt is not None:
                rt.ingest(stamp, names_want, q, v, now=t_rel)
                rt.tick(now=t_rel)
                if t_rel >= next_step:
                    next_step = (math.floor(t_rel / step_s) + 1) * step_s
                    orch.step(t_rel)
            if t_rel >= next_sample:
                self._sample(next_sample, rew_sum / rew_n if rew_n else None, peaks)
                rew_sum, rew_n = 0.0, 0
                next_sample = (math.floor(t_rel / sample_s) + 1) * sample_s
                ph = [d for d in mon.detectors() if d.name.startswith("ph:")]
                peaks = {d.name: 0.0 for d in ph}

        try:
            with Reader(info.path) as r:
                conns = [c for c in r.connections if c.topic in wanted]
                deser = typestore().deserialize_cdr
                for c, ts, raw in r.messages(connections=conns):
                    topic = c.topic
                    t_rel = (ts - start) / 1e9
                    if topic == js_topic:
                        m = deser(raw, c.msgtype)
                        if pending is not None:
                            if last_cmd is not None:
                                tick(pending, last_cmd)
                            else:
                                self.skipped += 1
                        key = tuple(m.name)
                        idx = order_cache.get(key)
                        if idx is None:
                            pos = {n: i for i, n in enumerate(key)}
                            idx = np.array([pos[n] for n in names_want], dtype=np.intp) \
                                if all(n in pos for n in names_want) and len(pos) == len(key) else False
                            order_cache[key] = idx
                        if idx is False or len(m.position) != len(key) or len(m.velocity) != len(key):
                            self.skipped += 1
                            pending = None
                            continue
                        st = m.header.stamp
                        stamp = st.sec + 1e-9 * st.nanosec
                        if stamp <= 0:
                            stamp = ts / 1e9
                        pending = (t_rel, stamp, np.asarray(m.position, dtype=np.float64)[idx],
                                   np.asarray(m.velocity, dtype=np.float64)[idx])
                    elif topic == cmd_topic:
                        m = deser(raw, c.msgtype)
                        a = np.asarray(m.data, dtype=np.float64)
                        if a.shape != (act_dim,):
                            raise ReplayError(f"bag {info.path}: commands on {topic} have {a.size} values; plant "
                                              f"{self.plant!r} takes {act_dim}")
                        last_cmd = a
                        if pending is not None:
                            tick(pending, a)
                            pending = None
                    elif topic == rew_topic:
                        x = float(deser(raw, c.msgtype).data)
                        if math.isfinite(x):
                            reward = x
                            rew_sum += x
                            rew_n += 1
                    elif topic == drift_topic:
                        self._drift_marker(t_rel, deser(raw, c.msgtype).data, last_drift_hash)
                        last_drift_hash = self._last_hash
                    if self.progress is not None and t_rel >= next_prog:
                        next_prog = t_rel + prog_every
                        self.now = max(self.now, t_rel)
                        self.progress(self._fraction(), "")
                if pending is not None and last_cmd is not None:
                    tick(pending, last_cmd)
        except ReplayError:
            raise
        except Exception as e:
            raise _bag_error(info.path, e, reading=True) from None
        self.monitor_wall_s = t_mon
        if self.ticks == 0:
            raise ReplayError(f"bag {info.path}: no usable tick: no joint state on {js_topic} carried the "
                              f"joints {list(names_want)} with a command on {cmd_topic} after it")
        end = info.duration_s
        self.now = max(self.now, end)
        if rew_n:
            self._sample(max(self.now, next_sample - sample_s), rew_sum / rew_n, peaks)
        self._drain(end)
        self._end()

    def _drain(self, end: float) -> None:
        """The bag ended while a job or the gate runs: let the simulated clock run on until they answer."""
        if self.orch is None:
            return
        from controller.orchestrator import Phase
        t = self.now
        limit = end + self.cfg.adapt.latency_s + self.cfg.gate.latency_s + 10 * self.cfg.step_s
        while self.orch.phase in (Phase.ADAPTING, Phase.GATING) and t <= limit:
            t = round(t + self.cfg.step_s, 9)
            self.now = t
            self.orch.step(t)
        self.orch.step(self.now)

    _last_hash = None

    def _drift_marker(self, t: float, text: str, last: str | None) -> None:
        try:
            d = json.loads(text)
            drift, h = d.get("drift") or {}, d.get("hash")
        except (ValueError, AttributeError):
            return
        if h == last:
            return
        self._last_hash = h
        self.writer.write(t, "drift_injected", drift=drift, hash=h)

    def _sample(self, t: float, reward: float | None, peaks: dict[str, float]) -> None:
        stats = monitor_stats(self.monitor, peaks)   # PageHinkley: the interval's peak
        rec: dict[str, Any] = {"reward": None if reward is None else float(f"{reward:.6g}"),
                               "stats": stats, "monitor": self.monitor.state}
        if self.orch is not None:
            slot = self.runtime.slot
            rec["phase"] = self.orch.phase.value
            rec["canary_weight"] = slot.canary.weight if slot.canary is not None else None
        self.writer.write(t, "sample", **rec)

    def _end(self) -> None:
        rec: dict[str, Any] = {"duration_s": self.info.duration_s, "ticks": self.ticks,
                               "skipped_ticks": self.skipped, "monitor": self.monitor.all_counters()}
        if self.orch is not None:
            rec["phase"] = self.orch.phase.value
            rec["counters"] = dict(self.orch.counters)
            rec["champion"] = self.orch.champion_id
            if self.orch.phase.value == "adapting":      # still running after the drain limit
                self.orch.runner.cancel()
            elif self.orch.phase.value == "gating":
                self.orch.gate.cancel()
        self.writer.write(self.now, "end", **self.sanitize(jsonable(rec)))

    def close(self) -> None:
        if self.orch is not None:
            try:
                self.runner.cancel()
                self.gate.cancel()
            except Exception:
                pass
            try:
                self.registry.close()
            except Exception:
                pass


__all__ = ["AdaptSettings", "BagInfo", "GateSettings", "ReplayConfig", "ReplayError", "ReplayResult",
           "config_from_mapping", "inspect_bag", "load_replay_config", "monitor_config", "replay"]
