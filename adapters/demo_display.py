"""What `driftgate demo` shows: the live panel (a snapshot of the controller node, the driver's
state and the sandbox's progress, rendered with rich) and the summary table printed at the end."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from adapters.demo_node import DemoState


def _sandbox_progress(job_dir: str | None) -> dict:
    """The sandbox's last progress lines (sim.sandbox prints JSON lines to job_dir/sandbox.log)."""
    if not job_dir:
        return {}
    try:
        with open(Path(job_dir) / "sandbox.log", "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4096))
            lines = fh.read().decode(errors="replace").splitlines()
    except OSError:
        return {}
    out: dict = {}
    for line in reversed(lines):
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if not isinstance(d, dict) or "stage" not in d:
            continue
        if not out:
            out["stage"] = d["stage"]
        if d["stage"] == "generation" and "gen" not in out:
            out.update(gen=d.get("gen"), best=d.get("best"), target=d.get("target"))
        if out.get("stage") and "gen" in out:
            break
    return out


def snapshot(ctl, st: DemoState) -> dict:
    """Everything the display shows, read from the controller node (same process) and the driver."""
    now = st.now()
    with st.lock:
        rew = [r for _, r in st.rewards]
        falls = st.falls
        recent_falls = sum(1 for t in st.fall_times if t > now - 10.0)
    snap: dict[str, Any] = {"t": now, "reward": sum(rew) / len(rew) if rew else None, "falls": falls,
                            "falls_10s": recent_falls, "story": st.story, "injected_at": st.injected_at,
                            "armed_at": st.armed_at, "inject_note": st.inject_note}
    orch = getattr(ctl, "orchestrator", None)
    mon = getattr(ctl, "monitor", None)
    if mon is not None:
        try:
            snap["monitor"] = mon.state
            warm = float(mon.config.warmup_s)
            snap["warmup"] = min(1.0, (mon._clock - mon._warm_start) / warm) if warm > 0 else 1.0
            stats = mon.statistics()
            ratios = [(k, stats[k] / stats[f"{k}:threshold"]) for k in stats
                      if k.startswith("ph:") and not k.endswith(":threshold")
                      and stats.get(f"{k}:threshold", 0) and math.isfinite(stats[f"{k}:threshold"])]
            snap["detector_peak"] = max(ratios, key=lambda kv: kv[1]) if ratios else None
            snap["alarms"] = int(mon.counters.get("alarms", 0))
        except Exception:
            pass
    if orch is not None:
        try:
            s = orch.status()
            snap.update(phase=s["phase"], in_phase_s=s["in_phase_s"], champion=s["champion"],
                        candidate=s["candidate"], canary_weight=s["canary_weight"], sandbox=s["sandbox"],
                        counters=s["counters"], shadow=s.get("shadow"), last_error=s.get("last_error"))
            job = getattr(orch, "_job", None)
            snap["job_dir"] = str(job.job_dir) if job is not None and s["phase"] == "adapting" else None
            snap["sandbox_progress"] = _sandbox_progress(snap["job_dir"])
            go = getattr(orch, "_gate_outcome", None)
            if go is not None:
                snap["gate"] = {"verdict": go.verdict, "reasons": list(go.reasons)[:2],
                                "predicted_reward": go.predicted_reward}
            hist = orchestrator_history(orch)[-6:]
            snap["history"] = [(h.get("time"), h.get("from"), h.get("to"), h.get("reason")) for h in hist]
        except Exception:
            pass
    return snap


def _short(gid: Any) -> str:
    return str(gid)[:10] if gid else "-"


def render(snap: dict, opts: Any):
    """The live display (a rich renderable)."""
    from rich.panel import Panel
    from rich.table import Table
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold cyan", justify="right")
    t.add_column()
    t.add_row("time", f"{snap['t']:6.1f} s   (stops by {snap.get('max_s') or opts.max_s or 0:g} s)")
    t.add_row("story", snap.get("story", ""))
    phase = snap.get("phase", "-")
    t.add_row("phase", f"[bold]{phase}[/] for {snap.get('in_phase_s', 0.0):.1f} s   champion "
              f"{_short(snap.get('champion'))}   candidate {_short(snap.get('candidate'))}")
    rew = snap.get("reward")
    inj = snap.get("injected_at")
    drift = f"injected at {inj:.1f} s: {json.dumps(snap.get('drift'))}" if inj is not None else "none yet"
    t.add_row("robot", f"reward {'-' if rew is None else f'{rew:.3f}'} /tick (last 1 s)   falls {snap['falls']} "
              f"({snap['falls_10s']} in the last 10 s)   drift {drift}")
    mon = snap.get("monitor", "-")
    if mon == "warmup":
        mon = f"warm-up {100 * snap.get('warmup', 0.0):.0f} %"
    peak = snap.get("detector_peak")
    t.add_row("detector", f"{mon}   alarms {snap.get('alarms', 0)}" +
              (f"   peak {peak[0]} {peak[1]:.2f} x threshold" if peak else ""))
    sp = snap.get("sandbox_progress") or {}
    sb = str(snap.get("sandbox", "-"))
    if sp:
        sb += f"   stage {sp.get('stage')}"
        if sp.get("gen") is not None:
            sb += f"   generation {sp['gen']}  best {sp.get('best') or 0.0:.1f} (target {sp.get('target') or 0.0:.1f})"
    t.add_row("sandbox", sb)
    g = snap.get("gate")
    t.add_row("gate", "-" if not g else f"{g['verdict']}  " + "; ".join(g["reasons"])[:110])
    sh = snap.get("shadow")
    if sh and sh.get("n"):
        t.add_row("shadow", f"n {sh['n']}  divergence {sh.get('divergence_mean') or 0:.3f}  candidate saturated "
                  f"{100 * (sh.get('saturation_challenger') or 0):.0f} %")
    cw = snap.get("canary_weight")
    c = snap.get("counters") or {}
    t.add_row("canary / registry", f"weight {'-' if cw is None else f'{cw:g}'}   promotions {c.get('promotions', 0)}  "
              f"rollbacks {c.get('rollbacks', 0)}  gate pass/fail/hold {c.get('gate_pass', 0)}/"
              f"{c.get('gate_fail', 0)}/{c.get('gate_hold', 0)}  jobs {c.get('jobs', 0)} "
              f"(failed {c.get('job_failures', 0)})")
    for when, frm, to, why in snap.get("history") or []:
        t.add_row("", f"[dim]{frm} -> {to}: {str(why)[:100]}[/]")
    return Panel(t, title=f"driftgate demo: {opts.plant}", border_style="blue")


def orchestrator_history(orch) -> list[dict]:
    with orch._lock:            # the orchestrator appends under this lock (a deque is not safe to copy while it grows)
        return list(orch.history)


def summary_table(report: dict, result: Any):
    """The short printed summary (a rich Table)."""
    from rich.table import Table

    def f(x, nd=3, unit=""):
        if x is None:
            return "-"
        return f"{x:.{nd}f}{unit}" if isinstance(x, float) else str(x)
    t = Table(title=f"driftgate demo: {report.get('plant')} ({result.wall_s:.0f} s wall)", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("drift", json.dumps(report.get("drift")))
    t.add_row("injected at", f(report.get("drift_injected_at_s"), 1, " s"))
    t.add_row("detected after", f(report.get("detected_after_s"), 2, " s"))
    t.add_row("time to adapt (drift -> promotion)", f(report.get("time_to_adapt_s"), 1, " s"))
    t.add_row("reward before drift", f(report.get("return_before_drift")))
    t.add_row("reward after drift, before adaptation", f(report.get("return_after_drift_before_adapt")))
    t.add_row("reward after adaptation", f(report.get("return_after_adapt")))
    fl = report.get("falls") or {}
    if fl:
        def per(k):
            return "-" if k not in fl else f"{fl[k]['n']} ({f(fl[k]['per_min'], 1)}/min)"
        t.add_row("robot falls (reset): before / after drift / after adaptation",
                  f"{per('before_drift')} / {per('after_drift_before_adapt')} / {per('after_adapt')}")
    ads = report.get("adaptations") or []
    for a in ads:
        t.add_row(f"adaptation {a.get('job')}",
                  f"{'ok' if a.get('ok') else 'failed'}: sim return {f(a.get('return_before'), 1)} -> "
                  f"{f(a.get('return_after'), 1)} (nominal {f(a.get('nominal_return'), 1)}), "
                  f"{a.get('generations')} generations, estimate {json.dumps(a.get('drift_estimate'))}")
    t.add_row("gate verdicts", ", ".join(v["verdict"] for v in report.get("verdicts") or []) or "-")
    for v in (report.get("verdicts") or [])[:3]:
        if v.get("reasons"):
            t.add_row(f"  {v['verdict']}", "; ".join(v["reasons"])[:160])
    t.add_row("promotions / rollbacks", f"{len(report.get('promotions') or [])} / {len(report.get('rollbacks') or [])}")
    t.add_row("champion lineage", " -> ".join(_short(g) for g in report.get("champion_lineage") or []) or "-")
    t.add_row("stopped because", result.stop_reason or "-")
    return t
