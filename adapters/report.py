"""Reports of a run or a replay: ``report.json``, ``timeline.png`` and ``summary.md``.

Everything is derived from the run directory's ``decisions.jsonl`` (`controller.decisions`), so
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
import re
from pathlib import Path
from typing import Any

import numpy as np

from controller.decisions import DecisionLog, jsonable, read_decisions

REPORT_FORMAT = "driftgate.report/1"
PHASE_COLORS = {"adapting": "#f4a261", "gating": "#e9c46a", "shadow": "#a8dadc", "canary": "#457b9d",
                "promoted": "#2a9d8f", "watch": "#8ecae6", "rollback": "#e63946"}
VERDICT_COLORS = {"PASS": "#2a9d8f", "FAIL": "#e63946", "INCONCLUSIVE": "#8d99ae"}


def _mean(xs: list[float]) -> float | None:
    xs = [x for x in xs if isinstance(x, (int, float)) and math.isfinite(x)]
    return float(np.mean(xs)) if xs else None


def _phase_intervals(log: DecisionLog, end: float) -> list[tuple[str, float, float]]:
    """(phase, start, stop) from the transition records."""
    out, cur, since = [], None, 0.0
    for r in log.of("transition"):
        if cur is not None and r.t >= since:
            out.append((cur, since, r.t))
        cur, since = r.data.get("to"), r.t
    if cur is not None:
        out.append((cur, since, max(end, since)))
    return out


def build_report(log: DecisionLog, extra: dict | None = None) -> dict:
    """The report dict of a decisions log (see the module docstring)."""
    h = log.header
    samples = log.of("sample")
    end_rec = (log.of("end") or [None])[-1]
    duration = (end_rec.data.get("duration_s") if end_rec else None) or \
        (max((r.t for r in log.records), default=0.0))
    injections = [r for r in log.of("drift_injected") if r.data.get("drift")]
    t_drift = injections[0].t if injections else None
    drift = injections[0].data.get("drift") if injections else None
    alarms = [{"t": r.t, "channels": r.data.get("channels", []), "detectors": r.data.get("detectors", []),
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
    adapting = [(s, e) for p, s, e in _phase_intervals(log, duration) if p == "adapting"]
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
    return jsonable(out)


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


# ---------------------------------------------------------------------- the picture

def plot_timeline(log: DecisionLog, path: str | os.PathLike, report: dict | None = None) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rep = report or build_report(log)
    path = Path(path)
    end = float(rep.get("duration_s") or 0.0) or max((r.t for r in log.records), default=1.0)
    samples = log.of("sample")
    t = np.array([r.t for r in samples], float)
    phases = _phase_intervals(log, end)
    fig = plt.figure(figsize=(11, 10))
    gs = fig.add_gridspec(4, 1, height_ratios=[2.2, 2.0, 1.4, 1.6], hspace=0.45)
    ax0 = fig.add_subplot(gs[0])
    ax1 = fig.add_subplot(gs[1], sharex=ax0)
    ax2 = fig.add_subplot(gs[2], sharex=ax0)
    ax3 = fig.add_subplot(gs[3])
    t_drift = rep.get("drift_injected_at_s")

    # 1. performance, with the phases behind it
    rew = np.array([np.nan if r.data.get("reward") is None else r.data["reward"] for r in samples], float)
    for p, s, e in phases:
        if p in PHASE_COLORS and e > s:
            ax0.axvspan(s, e, color=PHASE_COLORS[p], alpha=0.25, lw=0)
    if np.isfinite(rew).any():
        ax0.plot(t, rew, color="k", lw=1.0, label="reward (mean per tick)")
    else:
        ax0.text(0.5, 0.5, "no reward signal recorded", transform=ax0.transAxes, ha="center", color="gray")
    fall_times = (rep.get("falls") or {}).get("times") or []
    if fall_times:
        ax0.plot(fall_times, np.zeros(len(fall_times)), "|", color="#e63946", ms=9, mew=1.2,
                 transform=ax0.get_xaxis_transform(), label=f"robot fell, reset ({len(fall_times)})")
        ax0.legend(fontsize=7, loc="lower left")
    for p in rep.get("promotions", []):
        ax0.axvline(p["t"], color="#2a9d8f", lw=1.8)
        ax0.annotate("promote", (p["t"], 1.0), xycoords=("data", "axes fraction"), fontsize=8, color="#2a9d8f",
                     ha="left", va="top", rotation=90)
    for r in rep.get("rollbacks", []):
        ax0.axvline(r["t"], color="#e63946", lw=1.8)
        ax0.annotate("rollback", (r["t"], 1.0), xycoords=("data", "axes fraction"), fontsize=8,
                     color="#e63946", ha="left", va="top", rotation=90)
    ax0.set_ylabel("performance")
    title = f"driftgate {rep.get('source') or 'run'}: {rep.get('plant')}"
    if rep.get("bag"):
        title += f" (bag {rep['bag']})"
    if rep.get("drift"):
        title += f"\ndrift {json.dumps(rep['drift'], sort_keys=True)}"
    ax0.set_title(title, fontsize=10)
    ax0.set_xlabel("background: pipeline phase (colours as in the pipeline chart below)", fontsize=7)

    # 2. detector statistics / threshold, and the alarms
    keys = sorted({k for r in samples for k in (r.data.get("stats") or {}) if k.startswith("ph:")})
    for k in keys:
        y = np.array([np.nan if (r.data.get("stats") or {}).get(k) is None else r.data["stats"][k] for r in samples],
                     float)
        if np.isfinite(y).any():
            ax1.plot(t, np.maximum(y, 0.0), lw=0.9, label=k)
    ax1.axhline(1.0, color="r", ls=":", lw=1, label="threshold")
    ax1.set_yscale("symlog", linthresh=0.1, linscale=1.0)
    ax1.set_ylim(bottom=0.0)
    ax1.set_ylabel("PageHinkley peak / threshold")
    for a in rep.get("alarms", []):
        ax1.axvline(a["t"], color="r", lw=1.1, alpha=0.8)
    if keys:
        ax1.legend(fontsize=7, loc="upper left", ncol=2)
    ax1.set_title(f"detector statistics (peak per sample interval); red lines: {len(rep.get('alarms', []))} "
                  "alarm(s)", fontsize=9)

    # 3. the pipeline as a Gantt chart
    rows = ["adapting", "gating", "shadow", "canary", "watch"]
    for i, p in enumerate(rows):
        spans = [(s, max(e - s, end * 0.003)) for q, s, e in phases if q == p]
        if spans:
            ax2.broken_barh(spans, (i - 0.35, 0.7), color=PHASE_COLORS.get(p, "gray"))
    for st in rep.get("canary", {}).get("steps", []):
        ax2.annotate(f"w={st['weight']:g}", (st["t"], 2.62), fontsize=7, ha="left")
    for v in rep.get("verdicts", []):
        ax2.annotate(v["verdict"], (v["t"], 1.45), fontsize=8, ha="left", color=VERDICT_COLORS.get(v["verdict"], "k"),
                     fontweight="bold")
    for s in rep.get("shadow", []):
        ax2.annotate(s["result"], (s["t"], 2.45), fontsize=7, ha="left")
    ax2.set_yticks(range(len(rows)))
    ax2.set_yticklabels(rows, fontsize=8)
    ax2.set_ylim(-0.6, len(rows) - 0.4)
    ax2.invert_yaxis()
    for ax in (ax0, ax1, ax2):
        if t_drift is not None:
            ax.axvline(t_drift, color="tab:orange", ls="--", lw=1.2)
        ax.set_xlim(0, max(end, 1e-6))
    ax2.set_xlabel("time [s] (orange dashed: drift injected)")

    # 4. adaptation progress per sandbox job
    adaptation_panel(ax3, log.of("adaptation"))
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _job_words(d: dict) -> str:
    """One sandbox job in words: what a curve cannot show for fewer than two generations."""
    g = d.get("generations") or []
    state = "ok" if d.get("ok") else f"failed: {d.get('error')}" if d.get("error") else "failed"
    if not g:
        what = "no generation log"
    else:
        best = g[-1].get("best")
        what = f"{len(g)} generation{'s' if len(g) != 1 else ''}" + \
            (f", best return {_num(best)}" if isinstance(best, (int, float)) else "")
    if d.get("target_return") is not None:
        what += f" (target {_num(d['target_return'])})"
    return f"{d.get('job') or 'job'} ({state}): {what}"


def adaptation_panel(ax, ads) -> None:
    """Best return per generation of each sandbox job that logged at least two generations; jobs
    with fewer, or no job at all, are said in words (a single point on an axis says nothing)."""
    curves = [r for r in ads if len(r.data.get("generations") or []) >= 2]
    words = [_job_words(r.data) for r in ads if r not in curves]
    for r in curves:
        g = r.data["generations"]
        ax.plot([x.get("gen") for x in g], [x.get("best") for x in g], marker=".", lw=1,
                label=f"{r.data.get('job')} ({'ok' if r.data.get('ok') else 'failed'})")
        if r.data.get("target_return") is not None:
            ax.axhline(r.data["target_return"], color="gray", ls=":", lw=0.8)
    if curves:
        ax.legend(fontsize=7)
        ax.set_xlabel("generation")
        ax.set_ylabel("best return (calibrated sim)")
        if words:
            ax.text(0.01, 0.02, "\n".join(words), transform=ax.transAxes, ha="left", va="bottom", fontsize=7,
                    color="gray")
    else:
        ax.text(0.5, 0.5, "\n".join(words) if words else "no sandbox job in this run", transform=ax.transAxes,
                ha="center", va="center", color="gray", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_title("adaptation progress (sandbox)", fontsize=9)


# ---------------------------------------------------------------------- markdown

_LONG_FLOAT = re.compile(r"(?<![\w.])-?\d+\.\d{5,}(?:[eE][-+]?\d+)?(?![\w.])")


def _num(x: float, sig: int = 4) -> str:
    """A measured number for people: `sig` significant digits, no float noise (0.1 + 0.2)."""
    return f"{x:.{sig}g}" if isinstance(x, float) else str(x)


def _rounded(obj: Any, sig: int = 4) -> Any:
    """`obj` with every float rounded to `sig` significant digits (for JSON shown in the summary)."""
    if isinstance(obj, float):
        return float(f"{obj:.{sig}g}") if math.isfinite(obj) else obj
    if isinstance(obj, dict):
        return {k: _rounded(v, sig) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(v, sig) for v in obj]
    return obj


def _dumps(obj: Any) -> str:
    return json.dumps(_rounded(obj), sort_keys=True)


def _text(s: Any) -> str:
    """Free text from the decisions (reasons, notes, errors): long floats in it shortened."""
    return _LONG_FLOAT.sub(lambda m: _num(float(m.group())), str(s))

def _f(x: Any, nd: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, float):
        return f"{x:.{nd}f}" if abs(x) >= 1e-3 or x == 0 else f"{x:.3g}"
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(_f(v, nd) for v in x) + "]"
    return str(x)


def _short(gid: Any) -> str:
    return str(gid)[:12] if gid else "-"


def markdown_summary(rep: dict, log: DecisionLog, png: str | None = "timeline.png") -> str:
    h = log.header
    lines = [f"# driftgate report: {rep.get('source') or 'run'} of {rep.get('bag') or rep.get('plant')}", ""]
    if rep.get("counterfactual"):
        lines += [f"> {rep.get('note')}", ""]
    lines += ["| | |", "|---|---|",
              f"| plant | {rep.get('plant')} |",
              f"| duration | {_f(rep.get('duration_s'), 1)} s |",
              f"| seed | {_f(rep.get('seed'))} |",
              f"| drift | {_dumps(rep['drift']) if rep.get('drift') else '-'} |",
              f"| drift injected at | {_f(rep.get('drift_injected_at_s'), 2)} s |",
              f"| detected after | {_f(rep.get('detected_after_s'), 2)} s |",
              f"| time to adapt (drift -> promotion) | {_f(rep.get('time_to_adapt_s'), 1)} s |",
              f"| reward before drift | {_f(rep.get('return_before_drift'))} |",
              f"| reward after drift, before adaptation | {_f(rep.get('return_after_drift_before_adapt'))} |",
              f"| reward after adaptation | {_f(rep.get('return_after_adapt'))} |",
              f"| alarms (before the drift) | {len(rep.get('alarms', []))} ({rep.get('false_alarms_before_drift')}) |",
              f"| gate verdicts | {', '.join(v['verdict'] for v in rep.get('verdicts', [])) or '-'} |",
              f"| promotions / rollbacks | {len(rep.get('promotions', []))} / {len(rep.get('rollbacks', []))} |",
              f"| champion lineage | {' -> '.join(_short(g) for g in rep.get('champion_lineage', [])) or '-'} |",
              f"| final phase | {rep.get('final_phase') or '-'} |"]
    fl = rep.get("falls")
    if fl:
        per = lambda k: "-" if k not in fl else f"{fl[k]['n']} ({_f(fl[k]['per_min'], 1)}/min)"  # noqa: E731
        lines.append(f"| robot falls (reset): before drift / after drift / after adaptation | "
                     f"{per('before_drift')} / {per('after_drift_before_adapt')} / {per('after_adapt')} |")
    lines.append("")
    if png:
        lines += [f"![timeline]({png})", ""]
    lines += ["## Alarms", ""]
    if rep.get("alarms"):
        lines += ["| t [s] | channels | detectors | score |", "|---:|---|---|---:|"]
        lines += [f"| {_f(a['t'], 2)} | {', '.join(a['channels'])} | {', '.join(a['detectors'])} | {_f(a['score'], 2)} |"
                  for a in rep["alarms"]]
    else:
        lines.append("none")
    lines += ["", "## Adaptation jobs", ""]
    ads = log.of("adaptation")
    if ads:
        lines += ["| t [s] | job | ok | drift estimate | return before -> after (nominal) | generations | note |",
                  "|---:|---|---|---|---|---:|---|"]
        for r in ads:
            d = r.data
            est = d.get("drift_estimate") or (d.get("sysid") or {}).get("estimate")
            note = _text(d.get("error") or (f"budget bound: {d['budget_bound']}" if d.get("budget_bound") else ""))
            lines.append(f"| {_f(r.t, 2)} | {d.get('job')} | {_f(d.get('ok'))} | "
                         f"{_dumps(est) if est else '-'} | {_f(d.get('return_before'), 1)} -> "
                         f"{_f(d.get('return_after'), 1)} ({_f(d.get('nominal_return'), 1)}) | "
                         f"{len(d.get('generations') or [])} | {note} |")
    else:
        lines.append("none")
    lines += ["", "## Gate verdicts", ""]
    gates = log.of("gate")
    if not gates and not rep.get("verdicts"):
        lines.append("none")
    for r in gates:
        d = r.data
        lines += [f"### {d.get('verdict')} at {_f(r.t, 2)} s: candidate {_short(d.get('candidate'))}"
                  f" (stage {d.get('stage') or '-'}, predicted reward {_f(d.get('predicted_reward'))})", ""]
        lines += [f"- {_text(x)}" for x in d.get("reasons") or []]
        rows = d.get("scenarios") or []
        if rows:
            lines += ["", "| scenario | tag | metric | n | candidate | incumbent | diff | CI | status |",
                      "|---|---|---|---:|---:|---:|---:|---|---|"]
            for s in rows:
                lines.append(f"| {s.get('name')} | {s.get('tag')} | {s.get('metric')} | {_f(s.get('n'))} | "
                             f"{_f(s.get('candidate'))} | {_f(s.get('incumbent'))} | {_f(s.get('diff_mean'))} | "
                             f"{_f(s.get('diff_ci'))} | {s.get('status')} |")
        lines.append("")
    if not gates:
        for v in rep.get("verdicts", []):
            lines.append(f"- {v['verdict']} at {_f(v['t'], 2)} s: {_text('; '.join(v.get('reasons') or []))}")
    lines += ["", "## Transitions", ""]
    trs = log.of("transition")
    if trs:
        lines += ["| t [s] | from | to | reason |", "|---:|---|---|---|"]
        lines += [f"| {_f(r.t, 2)} | {r.data.get('from')} | {r.data.get('to')} | "
                  f"{_text(r.data.get('reason') or '').replace('|', '/')} |" for r in trs]
    else:
        lines.append("none" + ("" if (h.get("config") or {}).get("adapt_stage", True) else
                               " (monitor stage only: --no-adapt)"))
    mc = rep.get("monitor_counters") or {}
    if mc:
        lines += ["", "## Monitor counters", "",
                  _text(", ".join(f"{k} {v}" for k, v in sorted(mc.items()) if v))]
    return "\n".join(lines) + "\n"


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def render_report(run_dir: str | os.PathLike, *, png: bool = True, extra: dict | None = None) -> dict:
    """Write report.json, timeline.png and summary.md into `run_dir` from its decisions.jsonl.
    Raises `controller.decisions.DecisionFormatError` (a ValueError) for a missing or bad file."""
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


__all__ = ["REPORT_FORMAT", "build_report", "markdown_summary", "plot_timeline", "render_report"]
