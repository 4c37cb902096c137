"""The controller node's reporting: ``~/status``, /diagnostics and ~/comparison (a mixin of
`adapters.ros.controller_node.ControllerNode`, kept apart because it only reads the node's state)."""
from __future__ import annotations

import json
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import String

from adapters.realtime import Scheduling, current_scheduling


class NodeStatus:
    """Reads: runtime, orchestrator, monitor, monitor_note, control_loop, scheduling, counters of the node."""

    def note_scheduling(self, sched: Scheduling) -> None:
        """Called by the executor thread after `enter_realtime` (adapters.ros.spin.run_nodes, main)."""
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
        requested = int(self.p("ros.realtime_priority"))
        ok = requested == 0 or (now is not None and now.policy == "SCHED_FIFO" and now.priority == requested)
        applied = self.control_loop.scheduling if self.control_loop is not None else self.scheduling
        note = applied.error if applied is not None else ""
        if requested and applied is None:
            note = "not applied: this process does not spin with adapters.ros.spin.run_nodes or main()"
        return {"tick_thread": now.describe() if now else "", "requested": requested, "ok": ok,
                "note": "" if ok else note}

    def status(self) -> dict:
        rt, orch = self.runtime, self.orchestrator
        out: dict[str, Any] = {"node": self.get_fully_qualified_name(), "lifecycle": self.lifecycle,
                               "mode": self.p("runtime.mode"), "robot": self.p("robot")}
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
        elif last == "base_stale":
            sensors = ", ".join(getattr(rt.obs_map, "base_sensors", ()))
            level, msg = DiagnosticStatus.ERROR, f"base sensors ({sensors}) missing or stale: holding the safe command" + \
                (f" ({rt.input_problem()})" if rt.base_refused else "")
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
        control = _status(DiagnosticStatus, level, f"{name}: control", msg, self.p("robot"), values)
        if self.monitor is not None:
            try:
                mvals = self.monitor.diagnostics()
            except Exception as e:
                mvals = {"error": str(e)}
            mstatus = _status(DiagnosticStatus, DiagnosticStatus.OK, f"{name}: drift monitor",
                              mvals.get("state", "?"), self.p("robot"), mvals)
        else:
            mstatus = _status(DiagnosticStatus, DiagnosticStatus.WARN, f"{name}: drift monitor",
                              self.monitor_note or "no drift monitor", self.p("robot"), {})
        ovals = {"phase": orch.get("phase", ""), "sandbox": orch.get("sandbox", ""), "job": orch.get("job") or "",
                 "fallback": orch.get("fallback") or "", "last_error": orch.get("last_error") or ""}
        ovals.update({k: v for k, v in (orch.get("counters") or {}).items()})
        olevel = DiagnosticStatus.WARN if orch.get("last_error") else DiagnosticStatus.OK
        ostatus = _status(DiagnosticStatus, olevel, f"{name}: adaptation", orch.get("phase", ""), self.p("robot"),
                          ovals)
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [control, mstatus, ostatus]
        self._diag_pub.publish(arr)
        cmp = {"incumbent_vs_champion": rt.incumbent_comparison().to_dict(),
               "champion_vs_candidate": rt.candidate_comparison().to_dict() if rt.slot.candidate else None,
               "mode": st["mode"], "champion": st["champion"], "candidate": st["candidate"]}
        self._cmp_pub.publish(String(data=json.dumps(cmp, allow_nan=False, default=str)))


def _status(cls, level, name: str, message: str, hardware_id: str, values: dict):
    s = cls()
    s.level, s.name, s.message, s.hardware_id = level, name, str(message), str(hardware_id)
    s.values = [KeyValue(key=str(k), value=str(v)) for k, v in values.items()]
    return s
