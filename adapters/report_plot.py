"""``timeline.png`` of a run or a replay (`adapters.report`): performance with the pipeline's phases
behind it, the detector statistics with the alarms, the pipeline as a Gantt chart, and the
adaptation progress of each sandbox job."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from adapters.decisions import DecisionLog
from adapters.report_markdown import number_text

PHASE_COLORS = {"adapting": "#f4a261", "gating": "#e9c46a", "shadow": "#a8dadc", "canary": "#457b9d",
                "promoted": "#2a9d8f", "watch": "#8ecae6", "rollback": "#e63946"}
VERDICT_COLORS = {"PASS": "#2a9d8f", "FAIL": "#e63946", "INCONCLUSIVE": "#8d99ae"}


def plot_timeline(log: DecisionLog, path: str | os.PathLike, rep: dict) -> Path:
    """The picture of `rep` (`adapters.report.build_report` of `log`), written atomically to `path`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    path = Path(path)
    end = float(rep.get("duration_s") or 0.0) or max((r.t for r in log.records), default=1.0)
    samples = log.of("sample")
    t = np.array([r.t for r in samples], float)
    phases = log.phase_intervals(end)
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
            (f", best return {number_text(best)}" if isinstance(best, (int, float)) else "")
    if d.get("target_return") is not None:
        what += f" (target {number_text(d['target_return'])})"
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
