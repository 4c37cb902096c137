"""``summary.md`` of a run or a replay (`adapters.report`): the key numbers, the alarms, the
adaptation jobs, the gate tables and every transition, with measured numbers shown to a few
significant digits."""
from __future__ import annotations

import json
import math
import re
from typing import Any

from adapters.decisions import DecisionLog

_LONG_FLOAT = re.compile(r"(?<![\w.])-?\d+\.\d{5,}(?:[eE][-+]?\d+)?(?![\w.])")


def number_text(x: float, sig: int = 4) -> str:
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
    return _LONG_FLOAT.sub(lambda m: number_text(float(m.group())), str(s))


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
