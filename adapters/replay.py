"""Deterministic offline replay: what would driftgate have decided on a recorded bag?

    bag (rosbag2 MCAP) ──rosbags AnyReader──► ticks (t, joint state, the command sent after it, reward)
                                                   │ simulated clock = the bag's receive times
                                                   ▼
           DriftMonitor (nominal-model residuals) ──alarm──► Orchestrator ──job──► sandbox (child process)
                                                                   ▲                    │ result
                                                                   └── gate (child) ◄───┘
                                                                   shadow / canary on the recorded states
                                                   ▼
                                          OUT/decisions.jsonl (controller.decisions) + report

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
from controller.settings import ReplayTopics, Settings, SettingsError, validate
from sim.safeio import read_text_bounded

from controller.decisions import (FILE_NAME, DecisionWriter, adaptation_record, from_orchestrator_event,
                                  gate_record, jsonable, make_header, monitor_stats)

DEFAULT_SUITES = {"cartpole": "launch/regression_suite.yaml"}   # shipped names (controller.shipped)
REQUIRED_ROLES = ("joint_states", "commands")


class ReplayError(Exception):
    """Bad input (bag, configuration, output directory): the message says what and where."""


# ---------------------------------------------------------------------- configuration
# The replay configuration is the settings tree (controller.settings): the same names as the
# node's parameters, plus the ``replay`` section. ``robot`` not given: the bag's driftgate.plant.

ReplayConfig = Settings


def config_from_mapping(data: Mapping | None, base_dir: Path | None = None) -> ReplayConfig:
    """Validate a replay configuration mapping (ReplayError names the path to a bad key or value)."""
    try:
        cfg = validate(data, "replay config")
    except SettingsError as e:
        raise ReplayError(str(e)) from None
    if base_dir is not None:   # paths in a config file are relative to the file
        rel = lambda p: str((base_dir / p).resolve()) if p and p not in ("lqr", "none") and not Path(p).is_absolute() else p  # noqa: E731
        cfg = cfg.model_copy(update={
            "orchestrator": cfg.orchestrator.model_copy(update={"bootstrap_champion":
                                                                rel(cfg.orchestrator.bootstrap_champion)}),
            "monitor": cfg.monitor.model_copy(update={"config": rel(cfg.monitor.config)}),
            "gate": cfg.gate.model_copy(update={"suite": rel(cfg.gate.suite)})})
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
    """The drift monitor configuration: its YAML file, then the `monitor.overrides`."""
    from controller.pipeline import monitor_config as from_settings
    try:
        return from_settings(cfg)
    except (ValueError, OSError) as e:
        raise ReplayError(f"replay config: monitor: {e}") from None


def _topics(cfg: ReplayConfig) -> dict:
    return cfg.replay.topics.model_dump(exclude_none=True)


def _topics_roles() -> tuple[str, ...]:
    return tuple(ReplayTopics.model_fields)


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
    src = cfg.orchestrator.bootstrap_champion
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
        raise ReplayError(f"replay config: orchestrator.bootstrap_champion {src or plant!r}: {e}") from None
    raise ReplayError(f"no champion for plant {plant!r}: set orchestrator.bootstrap_champion (a genome file) in "
                      "--config")


def _suite(cfg: ReplayConfig, plant: str, work: Path) -> tuple[Path, dict]:
    from safety.suite import SuiteError, load_suite
    from controller.shipped import resolve
    src = cfg.gate.suite or DEFAULT_SUITES.get(plant)
    if src is None:
        raise ReplayError(f"no regression suite for plant {plant!r}: set gate.suite in --config "
                          "(or replay.gate_enabled: false)")
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
    info = inspect_bag(bag, _topics(cfg))
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
        from controller.runtime import make_observation_map, plant_info
        from sim.nominal_model import STATE_CODECS, make_predictor
        self.info, self.cfg, self.mcfg, self.seed, self.use_adapt = info, cfg, mcfg, int(seed), use_adapt
        self.work, self.progress = work, progress
        plant = cfg.robot if "robot" in cfg.model_fields_set else info.custom.get("driftgate.plant", "")
        if not plant:
            raise ReplayError(f"bag {info.path} does not name its plant (no driftgate.plant in metadata.yaml): "
                              "set robot: in --config")
        if plant not in STATE_CODECS:
            raise ReplayError(f"unknown plant {plant!r}; replay knows {sorted(STATE_CODECS)}")
        self.plant = plant
        self.pinfo = plant_info(plant)
        names = list(cfg.runtime.joint_names)
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
        self.runtime = None
        if use_adapt:
            self._setup_adaptation(runner, gate)
        else:                   # the runtime only for its joint ordering (no authority, no tick)
            from controller.pipeline import runtime_config
            from controller.runtime import ControllerRuntime
            try:
                rcfg = runtime_config(cfg.model_copy(update={"robot": plant}), self.pinfo, self.joint_names)
            except ValueError as e:
                raise ReplayError(f"replay config: {e}") from None
            self.runtime = ControllerRuntime(rcfg, self.obs_map, monitor=None, clock=lambda: self.now)

    # -- header -----------------------------------------------------------------------------------
    def effective_config(self) -> dict:
        m = self.mcfg.to_dict()
        if m.get("calibration_file"):
            m["calibration_file"] = Path(m["calibration_file"]).name
        out = {"plant": self.plant, "joint_names": list(self.joint_names), "sample_s": self.cfg.replay.sample_s,
               "step_s": self.cfg.orchestrator.step_s, "topics": self.info.topics, "monitor": m, "adapt_stage": self.use_adapt}
        if self.use_adapt:
            oc = dataclasses.asdict(self.orch.config)
            oc.pop("job_root", None)
            out.update({"champion": {"id": self.champion.id, "kind": self.champion.kind,
                                     "source": self.champion_src},
                        "orchestrator": oc, "guard": self.cfg.guard.model_dump(mode="json"),
                        "adapt": self.cfg.adapt.model_dump(mode="json"),
                        "replay": self.cfg.replay.model_dump(mode="json", exclude={"topics"}),
                        "gate": {**self.cfg.gate.model_dump(mode="json"), "suite": self.suite_info}})
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
        from controller.pipeline import build, hold_gate
        cfg = self.cfg
        self.champion, self.champion_src = _champion(cfg, self.plant)
        if custom_gate is not None:
            self.suite_info = {"name": type(custom_gate).__name__, "source": "custom gate object"}
            suite = ""
        elif cfg.replay.gate_enabled:
            suite_path, self.suite_info = _suite(cfg, self.plant, self.work)
            suite = str(suite_path)
        else:
            self.suite_info, suite = None, ""
            custom_gate = hold_gate("gate disabled in the replay config: holding")
        st = cfg.model_copy(update={"robot": self.plant, "orchestrator": cfg.orchestrator.model_copy(
            update={"seed": self.seed, "job_root": str(self.work / "jobs"), "bootstrap_champion": ""}),
            "gate": cfg.gate.model_copy(update={"archive_on_promotion": False})})
        clock = lambda: self.now  # noqa: E731

        def sim_timed(runner, gate):
            self.runner = _SimTimed(runner, cfg.replay.adapt_latency_s, clock, self._on_adaptation, self._waiting,
                                    "sandbox job")
            self.gate = _SimTimed(gate, cfg.replay.gate_latency_s, clock, self._on_gate, self._waiting, "gate")
            return self.runner, self.gate
        try:
            pipe = build(st, clock, self._on_event, registry_root=self.work / "registry", actor="driftgate-replay",
                         suite=suite, joint_names=self.joint_names, monitor=self.monitor, monitor_in_runtime=False,
                         champion=self.champion, runner=custom_runner, gate=custom_gate, wrap=sim_timed,
                         refresh=False)
        except (ValueError, TypeError) as e:
            raise ReplayError(f"replay config: {e}") from None
        self.registry, self.runtime, self.orch = pipe.registry, pipe.runtime, pipe.orchestrator

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
                                drift_estimate=res.drift_estimate, max_generations=self.cfg.adapt.max_generations,
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
        joint_order = self.runtime.joint_order
        pending = None             # (t_rel, stamp, q, v) of a joint state waiting for its command
        last_cmd = None
        reward = None
        rew_sum, rew_n = 0.0, 0
        sample_s, step_s = self.cfg.replay.sample_s, self.cfg.orchestrator.step_s
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
                        n_names = len(m.name)
                        idx = joint_order(m.name)
                        if isinstance(idx, str) or len(m.position) != n_names or len(m.velocity) != n_names:
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
        step_s = self.cfg.orchestrator.step_s
        limit = end + self.cfg.replay.adapt_latency_s + self.cfg.replay.gate_latency_s + 10 * step_s
        while self.orch.phase in (Phase.ADAPTING, Phase.GATING) and t <= limit:
            t = round(t + step_s, 9)
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


__all__ = ["BagInfo", "ReplayConfig", "ReplayError", "ReplayResult",
           "config_from_mapping", "inspect_bag", "load_replay_config", "monitor_config", "replay"]
