"""Reports of a run or a replay: ``report.json``, ``timeline.png`` and ``summary.md``.

Everything is derived from the run directory's ``decisions.jsonl`` (`adapters.decisions`), so
one renderer serves an offline replay and a live run (``driftgate demo``) alike:

- ``report.json``: the numbers (when the drift came and when it was detected, time to adapt, the
  performance before the drift / after it / after adaptation, every alarm, adaptation job, gate
  verdict, shadow and canary outcome, promotion and rollback, and the champion lineage).
- ``timeline.png``: performance with the pipeline's phases behind it; detector statistics (each
  PageHinkley statistic over its threshold) with the alarms; the pipeline as a Gantt chart (sandbox,
  gate verdicts, shadow, canary weight, watch); the adaptation progress of each sandbox job.
- ``summary.md``: the key numbers, the alarms, the adaptation jobs, the gate tables (one row per
  scenario: candidate vs incumbent and the CI of the paired difference) and every transition.

Performance numbers (``return_*``) are the mean reward per control tick over the window (the
``sample`` records' rewards); for a replay, whose decisions are counterfactual after a would-be
promotion, ``return_after_adapt`` is null: the recording shows the old controller there.

`render_report(run_dir)` writes the three files (each atomically) and returns the report dict;
`build_report(log)` only computes it. ``driftgate report DIR`` calls `render_report`.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from adapters.decisions import DecisionLog, read_decisions
from adapters.report_markdown import markdown_summary
from adapters.report_plot import plot_timeline
from sim.atomicio import json_safe

REPORT_FORMAT = "driftgate.report/1"


def _mean(xs: list[float]) -> float | None:
    xs = [x for x in xs if isinstance(x, (int, float)) and math.isfinite(x)]
    return float(np.mean(xs)) if xs else None


def _at(rec) -> float:
    """When a record happened: its ``at_s`` where the live recorder kept it (the decisions file moves a
    late record up to the last time written, to stay sorted), else its time."""
    x = rec.data.get("at_s")
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else rec.t


def build_report(log: DecisionLog, extra: dict | None = None) -> dict:
    """The report dict of a decisions log (see the module docstring)."""
    h = log.header
    samples = log.of("sample")
    end_rec = (log.of("end") or [None])[-1]
    duration = (end_rec.data.get("duration_s") if end_rec else None) or \
        (max((r.t for r in log.records), default=0.0))
    injections = [r for r in log.of("drift_injected") if r.data.get("drift")]
    t_drift = _at(injections[0]) if injections else None
    drift = injections[0].data.get("drift") if injections else None
    alarms = [{"t": _at(r), "channels": r.data.get("channels", []), "detectors": r.data.get("detectors", []),
               "score": r.data.get("score"), "onset_t": r.data.get("onset_t")} for r in log.of("alarm")]
    detected = None
    if t_drift is not None:
        after = [a["t"] for a in alarms if a["t"] >= t_drift - 1e-9]
        detected = round(after[0] - t_drift, 6) if after else None
    transitions = log.of("transition")
    promotions = [{"t": r.t, "champion": r.data.get("champion"),
                   "replaced": (r.data.get("evidence") or {}).get("replaced"), "reason": r.data.get("reason")}
                  for r in transitions if r.data.get("to") == "promoted"]
    rollbacks = [{"t": r.t, "to": (r.data.get("evidence") or {}).get("to"),
                  "replaced": (r.data.get("evidence") or {}).get("replaced"), "reason": r.data.get("reason")}
                 for r in transitions if r.data.get("to") == "rollback"]
    first_promo = next((p for p in promotions if t_drift is None or p["t"] >= t_drift), None)
    time_to_adapt = round(first_promo["t"] - t_drift, 6) if first_promo and t_drift is not None else None
    first_alarm = next((a for a in alarms if t_drift is None or a["t"] >= t_drift - 1e-9), None)
    # performance windows
    rew = [(r.t, r.data.get("reward")) for r in samples]
    before = [x for t, x in rew if t_drift is None or t <= t_drift]
    t_adapt = first_promo["t"] if first_promo else None
    mid = [x for t, x in rew if t_drift is not None and t > t_drift and (t_adapt is None or t <= t_adapt)]
    post = [x for t, x in rew if t_adapt is not None and t > t_adapt]
    counterfactual = bool(h.get("counterfactual"))
    # champion lineage (ids in the order they held authority)
    cfg = h.get("config") or {}
    lineage: list[str] = []
    initial = (cfg.get("champion") or {}).get("id") if isinstance(cfg.get("champion"), dict) else None
    if initial is None:
        for r in log.records:
            cid = r.data.get("champion") if r.kind in ("transition", "event") else None
            if r.kind == "event" and r.data.get("event") == "champion_loaded":
                cid = r.data.get("genome")
            if cid:
                initial = cid
                break
    if initial:
        lineage.append(initial)
    for r in transitions:
        ev = r.data.get("evidence") or {}
        new = r.data.get("champion") if r.data.get("to") == "promoted" else \
            ev.get("to") if r.data.get("to") == "rollback" else None
        if new and (not lineage or lineage[-1] != new):
            lineage.append(new)
    verdicts = [{"t": r.t, "candidate": r.data.get("candidate"), "verdict": r.data.get("verdict"),
                 "reasons": r.data.get("reasons", []), "predicted_reward": r.data.get("predicted_reward")}
                for r in log.of("gate")]
    if not verdicts:   # a live run without gate records: the gating transitions say it
        for r in transitions:
            if r.data.get("from") == "gating":
                reason = r.data.get("reason") or ""
                v = "PASS" if "PASS" in reason else "FAIL" if "FAIL" in reason else "INCONCLUSIVE"
                verdicts.append({"t": r.t, "candidate": r.data.get("candidate"), "verdict": v,
                                 "reasons": (r.data.get("evidence") or {}).get("reasons", []),
                                 "predicted_reward": (r.data.get("evidence") or {}).get("predicted_reward")})
    shadow = [{"t": r.t, "result": "passed" if r.data.get("to") == "canary" or r.data.get("to") == "promoted"
               else "held" if "hold" in (r.data.get("reason") or "") else "failed",
               "reason": r.data.get("reason"), "stats": (r.data.get("evidence") or {}).get("shadow")}
              for r in transitions if r.data.get("from") == "shadow" and r.data.get("to") != "rollback"]
    canary = {"steps": [{"t": r.t, "weight": r.data.get("weight")} for r in log.of("canary_step")],
              "outcomes": [{"t": r.t, "result": "completed" if r.data.get("to") == "promoted" else "aborted",
                            "reason": r.data.get("reason")}
                           for r in transitions if r.data.get("from") == "canary"]}
    adaptations = [{"t": r.t, **{k: r.data.get(k) for k in ("job", "ok", "error", "candidate", "return_before",
                                                            "return_after", "nominal_return", "reached_target",
                                                            "budget_bound")},
                    "drift_estimate": r.data.get("drift_estimate") or (r.data.get("sysid") or {}).get("estimate"),
                    "generations": len(r.data.get("generations") or [])}
                   for r in log.of("adaptation")]
    adapting = [(s, e) for p, s, e in log.phase_intervals(duration) if p == "adapting"]
    falls = _falls(log, t_drift, t_adapt, float(duration or 0.0))
    out = {
        "format": REPORT_FORMAT,
        "source": h.get("source"),
        "plant": h.get("plant"),
        "counterfactual": counterfactual,
        "seed": h.get("seed"),
        "bag": (h.get("bag") or {}).get("name"),
        "duration_s": duration,
        "drift": drift,
        "drift_injected_at_s": t_drift,
        "detected_after_s": detected,
        "time_to_adapt_s": time_to_adapt,
        "detect_to_promote_s": round(first_promo["t"] - first_alarm["t"], 6)
        if first_promo and first_alarm and first_promo["t"] >= first_alarm["t"] else None,
        "reward_unit": "mean reward per control tick",
        "return_before_drift": _mean(before),
        "return_after_drift_before_adapt": _mean(mid),
        "return_after_adapt": None if counterfactual else _mean(post),
        "alarms": alarms,
        "false_alarms_before_drift": sum(1 for a in alarms if t_drift is not None and a["t"] < t_drift - 1e-9),
        "adaptations": adaptations,
        "adapting_s": [round(e - s, 6) for s, e in adapting],
        "verdicts": verdicts,
        "shadow": shadow,
        "canary": canary,
        "promotions": promotions,
        "rollbacks": rollbacks,
        "champion_lineage": lineage,
        "falls": falls,
        "final_phase": (end_rec.data.get("phase") if end_rec else None),
        "counters": (end_rec.data.get("counters") if end_rec else None),
        "monitor_counters": (end_rec.data.get("monitor") if end_rec else None),
        "transitions": len(transitions),
    }
    if counterfactual:
        out["note"] = ("replay: decisions after a would-be promotion are counterfactual (the recording still "
                       "shows the recorded controller), so return_after_adapt is not measured")
    out.update(extra or {})
    return json_safe(out)


def _falls(log: DecisionLog, t_drift: float | None, t_adapt: float | None, end: float) -> dict | None:
    """How often the simulated robot fell and was reset (``fall`` records), per window and per
    minute: before the drift, after it until the promotion, after the promotion. None when the run
    has no fall records and the robot was not configured to reset on falls."""
    ts = [r.t for r in log.of("fall")]
    if not ts and not (log.header.get("config") or {}).get("reset_on_fall"):
        return None

    def window(a: float, b: float | None) -> dict:     # falls in (a, b]; the first window from t = 0 on
        b = end if b is None else b
        n = sum(1 for t in ts if (a < t or a == 0.0) and t <= b)
        span = max(b - a, 0.0)
        return {"n": n, "seconds": round(span, 3), "per_min": round(60.0 * n / span, 3) if span > 0 else None}

    out = {"total": len(ts), "times": [round(t, 3) for t in ts]}
    if t_drift is None:
        out["before_drift"] = window(0.0, None)
    else:
        out["before_drift"] = window(0.0, t_drift)
        out["after_drift_before_adapt"] = window(t_drift, t_adapt)
        if t_adapt is not None:
            out["after_adapt"] = window(t_adapt, None)
    return out


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def render_report(run_dir: str | os.PathLike, *, png: bool = True, extra: dict | None = None) -> dict:
    """Write report.json, timeline.png and summary.md into `run_dir` from its decisions.jsonl.
    Raises `adapters.decisions.DecisionFormatError` (a ValueError) for a missing or bad file."""
    run_dir = Path(run_dir)
    log = read_decisions(run_dir)
    rep = build_report(log, extra)
    png_name = None
    if png:
        plot_timeline(log, run_dir / "timeline.png", rep)
        png_name = "timeline.png"
    _atomic_text(run_dir / "report.json", json.dumps(rep, indent=1, sort_keys=True, allow_nan=False) + "\n")
    _atomic_text(run_dir / "summary.md", markdown_summary(rep, log, png_name))
    return rep


__all__ = ["REPORT_FORMAT", "build_report", "render_report"]
