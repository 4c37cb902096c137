"""`DecisionRecorder`: writes a live run's ``decisions.jsonl`` from the ROS 2 topics, from any rclpy node.

The controller node already says everything on its topics; this turns them into the decisions
format (`adapters.decisions`) that `adapters.report` renders, so a live run (``driftgate demo``, a
robot) gets the same report as an offline replay, without touching the controller node:

- ``events`` (std_msgs/String JSON, the controller's ``~/events``, transient local): every
  orchestrator event -> ``transition`` / ``canary_step`` / ``alarm`` (the ``drift`` event) / ``event``.
  When a transition leaves ``adapting``, the job's ``result.json`` (its directory is in the
  ``watching -> adapting`` evidence) becomes an ``adaptation`` record; when one leaves ``gating`` and
  `registry_path` is given, the candidate's last gate report becomes a ``gate`` record with its table.
- ``reward`` (std_msgs/Float64) and ``diagnostics`` (the controller's ``<node>: drift monitor`` and
  ``<node>: adaptation`` statuses): one ``sample`` record every `sample_s` (mean reward, detector
  statistic / threshold, residual statistics, phase, canary weight).
- ``drift_active`` (the simulated robot's, transient local): ``drift_injected`` records.
- ``falls_topic`` (optional; the simulated robot's ``~/falls`` with ``reset_on_fall``): one ``fall``
  record per fall (``falls``: the robot's running count, ``joint``, ``value``), so a report can say
  how often the robot had to be caught before the drift, after it and after adaptation.

Times are seconds since the recorder started (the node's clock); the drift injection and the controller's
events are placed at their own wall-clock ``time`` field (`at`), not at their arrival. `close()` writes the ``end``
record and closes the file; the file is line-buffered, so a crash leaves every record written so far.
"""
from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any, Mapping

from adapters.decisions import (DecisionWriter, adaptation_record, from_orchestrator_event, gate_record,
                                make_header)
from adapters.recording import DEFAULT_TOPICS


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


class DecisionRecorder:
    """See the module docstring. ``DecisionRecorder(node, "runs/demo/decisions.jsonl", plant="my_robot.yaml",
    config={...}, seed=0, registry_path=reg)``; ``close(counters=...)`` at the end."""

    def __init__(self, node, path: str | os.PathLike, *, plant: str, topics: Mapping[str, str] | None = None,
                 config: dict | None = None, seed: int | None = None, registry_path: str | os.PathLike | None = None,
                 sample_s: float = 1.0, callback_group=None, falls_topic: str | None = None,
                 **header_extra: Any) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from std_msgs.msg import Float64, String
        self.node = node
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.topics = {**DEFAULT_TOPICS, **dict(topics or {})}
        self.registry_path = str(registry_path) if registry_path else None
        self._t0 = node.get_clock().now().nanoseconds
        self._lock = threading.Lock()
        self.writer = DecisionWriter(self.path, make_header("live", plant, counterfactual=False, config=config or {},
                                                           seed=seed, roles=self.topics, **header_extra))
        self._reward_sum, self._reward_n = 0.0, 0
        self._stats: dict[str, float | None] = {}
        self._monitor_state: str | None = None
        self._phase: str | None = None
        self._canary_weight: float | None = None
        self._drift_hash: str | None = None
        self._job_dirs: dict[str, str] = {}
        self._falls = 0
        self._jobs = 0
        self._closed = False
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        kw = {"callback_group": callback_group}
        self._subs = [
            node.create_subscription(String, self.topics["events"], self._on_event, latched, **kw),
            node.create_subscription(String, self.topics["drift_active"], self._on_drift, latched, **kw),
            node.create_subscription(Float64, self.topics["reward"], self._on_reward, reliable, **kw),
            node.create_subscription(DiagnosticArray, self.topics["diagnostics"], self._on_diag, reliable, **kw)]
        if falls_topic:
            self._subs.append(node.create_subscription(String, falls_topic, self._on_fall, latched, **kw))
        self._timer = node.create_timer(float(sample_s), self._on_sample, **kw)

    def now(self) -> float:
        return (self.node.get_clock().now().nanoseconds - self._t0) / 1e9

    def at(self, wall: Any) -> float:
        """The record time of something that happened at wall-clock time `wall` (the ``time`` field the
        simulated robot's drift message and the orchestrator's events carry): now, less the message's
        age. A message waits in the executor's queue (on a loaded machine, 0.5 s and more), and a
        detection delay measured from the injection's *arrival* here would be short by that wait.
        Arrival time (now) where the field is missing or odd, or where the node's clock is not the
        wall clock (simulated time)."""
        now = self.now()
        w = _num(wall)
        if w is None:
            return now
        node_wall = self.node.get_clock().now().nanoseconds / 1e9
        wall_now = time.time()
        if abs(node_wall - wall_now) > 1.0:      # simulated time: ages in wall time do not apply
            return now
        age = wall_now - w
        return now - age if 0.0 <= age <= 3600.0 else now

    # -- callbacks --------------------------------------------------------------------------------
    def _on_event(self, msg) -> None:
        try:
            ev = json.loads(msg.data)
        except ValueError:
            return
        if not isinstance(ev, dict):
            return
        with self._lock:
            if self._closed:
                return
            t = self.at(ev.get("time"))
            rec = from_orchestrator_event(ev, t)
            if rec is None:
                return
            if rec.kind == "alarm":       # the file keeps its times sorted (a late record is moved up to
                rec.data["at_s"] = round(t, 6)    # the last time written): the alarm's own time, kept
            if rec.kind == "transition":
                frm, to = rec.data.get("from"), rec.data.get("to")
                self._phase = to
                ev_ = rec.data.get("evidence") or {}
                if to == "adapting" and ev_.get("job_dir"):
                    self._jobs += 1
                    self._job_dirs["current"] = str(ev_["job_dir"])
                if frm == "adapting":
                    self._adaptation(t, rec.data)
                if frm == "gating":
                    self._gate(t, rec.data)
                if to != "canary":
                    self._canary_weight = None
                if frm == "shadow" and to == "canary":
                    self._canary_weight = _num(ev_.get("weight"))
            elif rec.kind == "canary_step":
                self._canary_weight = _num(rec.data.get("weight"))
            self.writer.write(rec.t, rec.kind, **rec.data)

    def _adaptation(self, t: float, tr: dict) -> None:
        d = self._job_dirs.pop("current", None)
        if d is None:
            return
        result = None
        try:
            result = json.loads((Path(d) / "result.json").read_text())
        except (OSError, ValueError):
            pass
        ok = tr.get("to") == "gating"
        err = None if ok else (tr.get("evidence") or {}).get("error") or tr.get("reason")
        self.writer.write(t, "adaptation", **adaptation_record(result if isinstance(result, dict) else None,
                                                               job=f"job-{self._jobs}", ok=ok, error=err))

    def _gate(self, t: float, tr: dict) -> None:
        reason = tr.get("reason") or ""
        verdict = "PASS" if tr.get("to") == "shadow" or "PASS" in reason else "FAIL" if "FAIL" in reason \
            else "INCONCLUSIVE"
        ev = tr.get("evidence") or {}
        cand = tr.get("candidate")
        report = None
        if self.registry_path and cand:
            try:
                from safety.registry import Registry
                with Registry(self.registry_path, actor="driftgate-decisions") as reg:
                    reps = reg.gate_reports(cand)
                    report = reps[-1].report if reps else None
            except Exception:
                report = None
        if report is not None and report.get("verdict") in ("PASS", "FAIL", "INCONCLUSIVE"):
            verdict = report["verdict"]
        self.writer.write(t, "gate", **gate_record(cand, verdict, ev.get("reasons") or (report or {}).get("reasons"),
                                                   _num(ev.get("predicted_reward")), report))

    def _on_drift(self, msg) -> None:
        try:
            d = json.loads(msg.data)
            drift, h, wall = d.get("drift") or {}, d.get("hash"), d.get("time")
        except (ValueError, AttributeError):
            return
        with self._lock:
            if self._closed or h == self._drift_hash:
                return
            self._drift_hash = h
            t = self.at(wall)
            self.writer.write(t, "drift_injected", drift=drift, hash=h, at_s=round(t, 6))

    def _on_fall(self, msg) -> None:
        try:
            d = json.loads(msg.data)
            n = int(d.get("falls"))
        except (ValueError, TypeError, AttributeError):
            return
        with self._lock:
            if self._closed or n <= self._falls:     # the latched copy of a fall already recorded
                return
            self._falls = n
            self.writer.write(self.now(), "fall", falls=n, joint=d.get("joint"), value=_num(d.get("value")),
                              episode=d.get("episode"))

    def _on_reward(self, msg) -> None:
        x = _num(msg.data)
        if x is not None:
            with self._lock:
                self._reward_sum += x
                self._reward_n += 1

    def _on_diag(self, msg) -> None:
        for st in msg.status:
            vals = {kv.key: kv.value for kv in st.values}
            if st.name.endswith(": drift monitor"):
                stats: dict[str, float | None] = {}
                for k, v in vals.items():
                    if k.endswith(":threshold"):
                        continue
                    th = _num(vals.get(f"{k}:threshold"))
                    x = _num(v)
                    if k.startswith("s:") or th is not None:
                        stats[k] = None if x is None else (x / th if th and th > 0 else x)
                with self._lock:
                    self._stats = stats
                    self._monitor_state = vals.get("state")
            elif st.name.endswith(": adaptation") and vals.get("phase"):
                with self._lock:
                    self._phase = vals["phase"]

    def _on_sample(self) -> None:
        with self._lock:
            if self._closed:
                return
            r = self._reward_sum / self._reward_n if self._reward_n else None
            self._reward_sum, self._reward_n = 0.0, 0
            self.writer.write(self.now(), "sample", reward=r, stats=dict(self._stats), monitor=self._monitor_state,
                              phase=self._phase, canary_weight=self._canary_weight)

    # -- closing ------------------------------------------------------------------------------------
    def close(self, **end: Any) -> Path:
        """Write the ``end`` record (`end` adds e.g. counters=, champion=) and close the file."""
        with self._lock:
            if self._closed:
                return self.path
            self._closed = True
            for s in self._subs:
                try:
                    self.node.destroy_subscription(s)
                except Exception:
                    pass
            try:
                self.node.destroy_timer(self._timer)
            except Exception:
                pass
            t = self.now()
            self.writer.write(t, "end", duration_s=t, phase=self._phase, **end)
            self.writer.close()
        return self.path


__all__ = ["DecisionRecorder"]
