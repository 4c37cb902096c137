"""The decisions file: what driftgate decided, when, and why, one JSON object per line.

Written by an offline replay (`adapters.replay`, on the bag's simulated clock) and by a live run
(the controller node / `driftgate demo`, on its own clock); read by `adapters.report`, which renders
the same report for either. Format ``driftgate.decisions/1``, file name ``decisions.jsonl``:

- line 1 is the **header** (``kind: "header"``): format, ``source`` (``replay`` | ``live``),
  ``plant``, ``counterfactual`` (true for a replay: after a would-be promotion the recorded telemetry
  still comes from the recorded controller), the effective configuration, the seed, and for a
  replay the bag it read (name + SHA-256 of its storage files).
- every other line is a **record** ``{"t": seconds, "kind": ..., ...data}``; ``t`` is seconds since
  the run started (a replay: since the bag's first message). Records are in time order.

Record kinds (extra keys are allowed; a reader ignores what it does not know):

=================  ==================================================================================
``sample``         periodic: ``reward`` (mean over the interval, null without a reward signal),
                   ``stats`` {detector or channel -> value: ``ph:<ch>`` statistic / threshold,
                   ``s:<ch>`` normalised residual}, ``phase`` (orchestrator), ``monitor`` (state),
                   ``canary_weight`` (or null)
``drift_injected`` ground truth from the recording (the simulated robot's ``~/drift_active``):
                   ``drift`` (DriftSpec dict, {} = nominal), ``hash``
``alarm``          a DriftEvent: ``detectors``, ``channels``, ``magnitude``, ``onset_t``, ``score``
``transition``     an orchestrator state change: ``from``, ``to``, ``reason``, ``evidence``,
                   ``champion``, ``candidate``. Promotion = ``to: promoted``; rollback =
                   ``to: rollback`` (evidence ``to`` / ``replaced``).
``adaptation``     a sandbox job's answer: ``job``, ``ok``, ``error``, ``candidate``, ``sysid``,
                   ``return_before``, ``return_after``, ``nominal_return``, ``generations``
                   [{gen, best, mean}]
``gate``           a gate verdict: ``candidate``, ``verdict``, ``reasons``, ``predicted_reward``,
                   ``scenarios`` [{name, tag, metric, n, candidate, incumbent, diff_mean, diff_ci,
                   status}]
``canary_step``    ``weight``, ``step``
``fall``           the simulated robot fell and was reset (``reset_on_fall``): ``falls`` (its count),
                   ``joint``, ``value``
``event``          any other orchestrator event (``event``: champion_loaded, adaptation_held, error)
``end``            last record: ``phase``, ``counters``, ``monitor`` counters, ``duration_s``
=================  ==================================================================================

Why canonical JSON (sorted keys, no spaces, no NaN, times rounded to the microsecond): a replay of
the same bag with the same configuration and seed must give a byte-identical file, and a diff of
two replays with different settings must show only the decisions that changed.

Live nodes: ``DecisionWriter(path, header)`` (thread-safe, line-buffered), then
``writer.write_event(orchestrator_event, t)`` from the orchestrator's ``emit`` callback, and
``writer.write(t, "sample", ...)`` from a timer. Nothing here imports ROS.
"""
from __future__ import annotations

import json
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sim.atomicio import canonical_json, json_safe


FORMAT = "driftgate.decisions/1"
FILE_NAME = "decisions.jsonl"
KINDS = ("header", "sample", "drift_injected", "alarm", "transition", "adaptation", "gate",
         "canary_step", "fall", "event", "end")


class DecisionFormatError(ValueError):
    """A decisions file that is not in this format (says which line and why)."""


def round_t(t: float) -> float:
    return round(float(t), 6)


@dataclass(frozen=True)
class Decision:
    """One record of the decisions file."""

    t: float
    kind: str
    data: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {**self.data, "t": round_t(self.t), "kind": self.kind}

    def to_json(self) -> str:
        return canonical_json(json_safe(self.to_dict()))

    @classmethod
    def from_dict(cls, d: dict) -> "Decision":
        if not isinstance(d, dict) or "kind" not in d or "t" not in d:
            raise DecisionFormatError("a record needs 't' and 'kind'")
        t = d["t"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
            raise DecisionFormatError(f"record time must be a finite number, got {t!r}")
        if not isinstance(d["kind"], str):
            raise DecisionFormatError(f"record kind must be a string, got {d['kind']!r}")
        return cls(float(t), d["kind"], {k: v for k, v in d.items() if k not in ("t", "kind")})


@dataclass
class DecisionLog:
    """A decisions file read back: its header and its records (in file order)."""

    header: dict
    records: list[Decision]

    def of(self, *kinds: str) -> list[Decision]:
        return [r for r in self.records if r.kind in kinds]

    def phase_intervals(self, end: float) -> list[tuple[str, float, float]]:
        """(phase, start, stop) of the orchestrator from the transition records; the last one
        lasts until `end`."""
        out, cur, since = [], None, 0.0
        for r in self.of("transition"):
            if cur is not None and r.t >= since:
                out.append((cur, since, r.t))
            cur, since = r.data.get("to"), r.t
        if cur is not None:
            out.append((cur, since, max(end, since)))
        return out


def make_header(source: str, plant: str, *, counterfactual: bool, config: dict | None = None,
                seed: int | None = None, **extra: Any) -> dict:
    return {"kind": "header", "format": FORMAT, "source": source, "plant": plant,
            "counterfactual": bool(counterfactual), "config": config or {}, "seed": seed, **extra}


class DecisionWriter:
    """Appends records to a decisions file (header first). Thread-safe; every line is flushed
    (``buffered=True`` for replays: flushed on close only)."""

    def __init__(self, path: str | os.PathLike | IO[str], header: dict, *, buffered: bool = False) -> None:
        if header.get("format") != FORMAT or header.get("kind") != "header":
            raise ValueError("DecisionWriter: the header must come from make_header()")
        self._own = not hasattr(path, "write")
        self.path = Path(path) if self._own else None
        self._fh: IO[str] = open(path, "w", encoding="ascii") if self._own else path  # type: ignore[arg-type]
        self._buffered = buffered
        self._lock = threading.Lock()
        self._last_t = -math.inf
        self.count = 0
        self._line(canonical_json(json_safe(header)))

    def _line(self, text: str) -> None:
        self._fh.write(text + "\n")
        if not self._buffered:
            self._fh.flush()

    def write(self, t: float, kind: str, **data: Any) -> Decision:
        """Append one record. Times never go backwards in the file (a late record gets the last
        time written, so the file stays sorted)."""
        if kind == "header" or not isinstance(kind, str) or not kind:
            raise ValueError(f"DecisionWriter: bad record kind {kind!r}")
        with self._lock:
            t = max(round_t(t), self._last_t)
            self._last_t = t
            rec = Decision(t, kind, json_safe(data))
            self._line(rec.to_json())
            self.count += 1
            return rec

    def write_event(self, event: dict, t: float, *, alarms: bool = True) -> Decision | None:
        """Record an orchestrator event (its ``emit`` callback); see `from_orchestrator_event`."""
        rec = from_orchestrator_event(event, t, alarms=alarms)
        if rec is None:
            return None
        return self.write(rec.t, rec.kind, **rec.data)

    def close(self) -> None:
        with self._lock:
            if self._fh.closed:
                return
            self._fh.flush()
            if self._own:
                os.fsync(self._fh.fileno())
                self._fh.close()

    def __enter__(self) -> "DecisionWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def from_orchestrator_event(event: dict, t: float, *, alarms: bool = True) -> Decision | None:
    """Map one `controller.orchestrator.Orchestrator` event to a record (None: nothing to record).

    ``transition`` -> transition, ``canary_step`` -> canary_step, ``drift`` -> alarm (only with
    `alarms`: a replay records alarms from the monitor itself), everything else -> event. The
    event's wall-clock ``time`` is dropped: `t` is the record's time.
    """
    ev = {k: v for k, v in event.items() if k not in ("time", "node")}
    kind = ev.pop("event", None)
    if kind == "transition":
        return Decision(t, "transition", json_safe(ev))
    if kind == "canary_step":
        return Decision(t, "canary_step", json_safe({k: ev.get(k) for k in ("weight", "step", "champion",
                                                                             "candidate")}))
    if kind == "drift":
        if not alarms:
            return None
        d = ev.get("drift") or {}
        mags = [v for v in (d.get("magnitude") or {}).values() if isinstance(v, (int, float))]
        return Decision(t, "alarm", json_safe({"detectors": d.get("detectors", []),
                                              "channels": d.get("channels", []),
                                              "magnitude": d.get("magnitude", {}),
                                              "onset_t": d.get("onset_t"),
                                              "score": max(mags) if mags else None}))
    return Decision(t, "event", json_safe({"event": kind, **ev}))


def adaptation_record(result: dict | None, *, job: str, ok: bool, error: str | None = None,
                      drift_estimate: dict | None = None, max_generations: int | None = None,
                      drift_event: dict | None = None) -> dict:
    """The data of an ``adaptation`` record from a sandbox job's ``result.json`` (only what does not
    depend on the machine's speed: no wall times, no paths). ``budget_bound: "wall"`` says a
    wall-clock budget stopped the job (system identification or evolution), i.e. the result would
    differ on a faster or slower machine."""
    r = result or {}
    sysid = r.get("sysid") if isinstance(r.get("sysid"), dict) else None
    if sysid is not None:
        sysid = {k: sysid.get(k) for k in ("estimate", "params", "std", "loss", "nominal_loss", "evaluations",
                                           "stop", "error") if k in sysid}
    gens = [{k: g.get(k) for k in ("gen", "best", "mean")} for g in r.get("generations") or []
            if isinstance(g, dict)]
    if drift_estimate is None:
        drift_estimate = (sysid or {}).get("estimate") or r.get("drift_estimate")
    out = {"job": job, "ok": bool(ok), "error": error, "candidate": r.get("candidate_id"),
           "parent": r.get("parent_id"), "drift_estimate": drift_estimate, "sysid": sysid,
           "return_before": r.get("return_before"), "return_after": r.get("return_after"),
           "nominal_return": r.get("nominal_return"), "target_return": r.get("target_return"),
           "reached_target": r.get("reached_target"), "generations": gens,
           "drift_event": None if drift_event is None else
           {k: drift_event.get(k) for k in ("detectors", "channels", "onset_t")}}
    if (sysid is not None and sysid.get("stop") == "max_seconds") or \
            (ok and gens and max_generations and len(gens) < max_generations and not r.get("reached_target")):
        out["budget_bound"] = "wall"
    if not ok and r.get("status"):
        out["status"] = r.get("status")
    return json_safe(out)


def gate_record(candidate: str | None, verdict: str, reasons, predicted_reward: float | None,
                report: dict | None) -> dict:
    """The data of a ``gate`` record; `report` is the gate report (`safety.gate.GateReport.to_dict`,
    as the registry stores it), from which the per-scenario table is kept."""
    rows = [{k: s.get(k) for k in ("name", "tag", "metric", "n", "candidate", "incumbent", "diff_mean", "diff_ci",
                                   "status")} for s in (report or {}).get("scenarios") or []]
    return json_safe({"candidate": candidate, "verdict": verdict, "reasons": list(reasons or []),
                     "predicted_reward": predicted_reward, "stage": (report or {}).get("stage"), "scenarios": rows})


def monitor_stats(monitor: Any, peaks: dict[str, float] | None = None) -> dict[str, float | None]:
    """The ``stats`` of a `sample` record from a `controller.drift.DriftMonitor`: each detector's
    statistic / threshold (raw statistic where the threshold is not finite) and each channel's
    normalised residual ``s:<channel>``, to 6 significant digits. `peaks` (detector -> the largest
    statistic / threshold since the last sample) replace the current values: a detector resets
    when it fires, so a 1 Hz snapshot alone would miss most alarms."""
    st = monitor.statistics()
    out: dict[str, float | None] = {}
    for k, v in st.items():
        if k.endswith(":threshold"):
            continue
        th = st.get(f"{k}:threshold")
        if not (k.startswith("s:") or th is not None):
            continue
        val = v / th if th is not None and math.isfinite(th) and th > 0 else v
        out[k] = float(f"{val:.6g}") if math.isfinite(val) else None
    for k, x in (peaks or {}).items():
        if math.isfinite(x):
            out[k] = float(f"{x:.6g}")
    return out


def read_decisions(path: str | os.PathLike) -> DecisionLog:
    """Read and check a decisions file (DecisionFormatError names the line and the problem)."""
    path = Path(path)
    if path.is_dir():
        path = path / FILE_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DecisionFormatError(f"{path}: no decisions file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DecisionFormatError(f"{path}: cannot read ({e})") from None
    lines = text.splitlines()
    if not lines:
        raise DecisionFormatError(f"{path}: empty file (no header)")
    try:
        header = json.loads(lines[0])
    except json.JSONDecodeError as e:
        raise DecisionFormatError(f"{path}:1: not JSON ({e})") from None
    if not isinstance(header, dict) or header.get("kind") != "header":
        raise DecisionFormatError(f"{path}:1: the first line must be the header record")
    if header.get("format") != FORMAT:
        raise DecisionFormatError(f"{path}:1: unknown format {header.get('format')!r} (expected {FORMAT!r})")
    records = []
    for i, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            records.append(Decision.from_dict(json.loads(line)))
        except json.JSONDecodeError as e:
            raise DecisionFormatError(f"{path}:{i}: not JSON ({e})") from None
        except DecisionFormatError as e:
            raise DecisionFormatError(f"{path}:{i}: {e}") from None
    return DecisionLog(header, records)


__all__ = ["Decision", "DecisionFormatError", "DecisionLog", "DecisionWriter", "FILE_NAME", "FORMAT", "KINDS",
           "adaptation_record", "canonical", "gate_record", "from_orchestrator_event", "jsonable", "make_header", "monitor_stats", "read_decisions"]
