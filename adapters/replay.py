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

import dataclasses
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from adapters.replay_bag import BagInfo, ReplayError, _bag_error, inspect_bag  # noqa: F401 (re-exported)
from adapters.replay_clock import Sanitizer, SimTimed
from adapters.replay_setup import (ReplayConfig, _champion, _make_output_tmp, _publish, _suite,  # noqa: F401
                                   _topics, _topics_roles, config_from_mapping, load_replay_config, monitor_config,
                                   robot_config)
from adapters.decisions import (FILE_NAME, DecisionWriter, adaptation_record, from_orchestrator_event,
                                gate_record, make_header, monitor_stats)
from sim.atomicio import json_safe


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



def replay(bag: str | os.PathLike, out_dir: str | os.PathLike, config: ReplayConfig | None = None, *,
           seed: int = 0, adapt: bool | None = None, report: bool = True, overwrite: bool = False,
           keep_work: bool = False, progress: Callable[[float, str], None] | None = None,
           runner: Any = None, gate: Any = None, robot: str | None = None) -> ReplayResult:
    """Replay `bag` through the pipeline and write `out_dir` (decisions.jsonl, replay.json and, with
    `report`, report.json / timeline.png / summary.md). `adapt` overrides ``config.adapt.enabled``.
    `runner` / `gate` replace the sandbox runner / the gate (any `controller.contracts`
    AdaptationRunner / Gate; tests and embedding). `progress(fraction, status)` is called as the
    replay advances. `robot`: the robot the bag must come from (`--robot`; a built-in name or a
    profile path as `adapters.robot_option.resolve_robot` gives it): a bag recorded on another robot
    is refused before anything is written. Raises ReplayError for bad input; `out_dir` then does not
    exist (or is unchanged)."""
    cfg = config or ReplayConfig()
    out_dir = Path(out_dir)
    use_adapt = cfg.adapt.enabled if adapt is None else bool(adapt)
    t_wall0 = time.perf_counter()
    info = inspect_bag(bag, _topics(cfg))
    cfg = robot_config(cfg, info, robot)
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
        (tmp / "replay.json").write_text(json.dumps(json_safe(meta), indent=1, sort_keys=True) + "\n")
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
        from sim.observation import make_observation_map, plant_info
        from sim.nominal_model import STATE_CODECS, has_codec, make_predictor
        self.info, self.cfg, self.mcfg, self.seed, self.use_adapt = info, cfg, mcfg, int(seed), use_adapt
        self.work, self.progress = work, progress
        plant = cfg.robot if "robot" in cfg.model_fields_set else info.custom.get("driftgate.plant", "")
        if not plant:
            raise ReplayError(f"bag {info.path} does not name its plant (no driftgate.plant in metadata.yaml): "
                              "set robot: in --config")
        if not has_codec(plant):
            raise ReplayError(f"unknown plant {plant!r}; replay knows {sorted(STATE_CODECS)} or a robot profile")
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
        self.sanitize = Sanitizer(work)
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
            self.runner = SimTimed(runner, cfg.replay.adapt_latency_s, clock, self._on_adaptation, self._waiting,
                                    "sandbox job")
            self.gate = SimTimed(gate, cfg.replay.gate_latency_s, clock, self._on_gate, self._waiting, "gate")
            return self.runner, self.gate
        try:
            pipe = build(st, clock, self._on_event, registry_root=self.work / "registry", actor="driftgate-replay",
                         suite=suite, joint_names=self.joint_names, monitor=self.monitor, monitor_in_runtime=False,
                         champion=self.champion, runner=custom_runner, gate=custom_gate, wrap=sim_timed,
                         refresh=False)
        except (ValueError, TypeError) as e:
            raise ReplayError(f"replay config: {e}") from None
        self.pipeline = pipe
        self.registry, self.runtime, self.orch = pipe.registry, pipe.runtime, pipe.orchestrator

    def _waiting(self, what: str) -> None:
        if self.progress is not None:
            self.progress(self._fraction(), what)

    def _on_event(self, ev: dict) -> None:
        if self.writer is None:
            return
        rec = from_orchestrator_event(self.sanitize(json_safe(ev)), self.now, alarms=False)
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
        base = None
        if getattr(self.obs_map, "base_sensors", ()):       # a floating base: the bag's IMU / odometry too
            from adapters.base_sensors import BaseTracker, bag_base_topics, message_values
            try:
                base = BaseTracker(self.obs_map.base_sensors, bag_base_topics(info.custom), f"bag {info.path}")
            except ValueError as e:
                raise ReplayError(str(e)) from None
            wanted |= set(base.by_topic)
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
            t_rel, stamp, q, v, readings = p
            self.now = t_rel
            obs = obs_map(q, v, *readings)
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
                        readings = () if base is None else base.current()
                        if readings is None:          # no IMU / odometry yet: not a full observation
                            self.skipped += 1
                            pending = None
                            continue
                        st = m.header.stamp
                        stamp = st.sec + 1e-9 * st.nanosec
                        if stamp <= 0:
                            stamp = ts / 1e9
                        pending = (t_rel, stamp, np.asarray(m.position, dtype=np.float64)[idx],
                                   np.asarray(m.velocity, dtype=np.float64)[idx], readings)
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
                    elif base is not None and topic in base.by_topic:
                        m = deser(raw, c.msgtype)
                        base.update(topic, m)
                        if rt is not None:
                            sensor = base.by_topic[topic]
                            rt.ingest_base(sensor, message_values(sensor, m), now=t_rel)
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
        self.writer.write(self.now, "end", **self.sanitize(json_safe(rec)))

    def close(self) -> None:
        if self.orch is not None:
            self.pipeline.close()          # cancels a running job or gate, closes the registry


__all__ = ["BagInfo", "ReplayConfig", "ReplayError", "ReplayResult",
           "config_from_mapping", "inspect_bag", "load_replay_config", "monitor_config", "replay"]
