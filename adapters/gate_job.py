"""Gate child process: `python -m adapters.gate_job DIR` (started by `controller.jobs.ProcessGate`).

Reads ``DIR/request.json`` (registry, suite, candidate_id, target_drift, actor), runs
`safety.gate.gate_registry` (which attaches the report to the registry: one transaction, one audit
row) and writes ``DIR/outcome.json`` = {verdict, reasons, report_id, predicted_reward}. Anything
that prevents a judgement (no gate module yet, a bad suite, a crash) is INCONCLUSIVE: hold.
"""
from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path


def _write(d: Path, out: dict) -> None:
    from sim.atomicio import atomic_write_json
    atomic_write_json(d / "outcome.json", out, indent=None)


def judge(req: dict) -> dict:
    try:
        from safety.gate import gate_registry
        from safety.suite import load_suite
    except ImportError as e:
        return {"verdict": "INCONCLUSIVE", "reasons": [f"no safety gate available ({e}): holding"],
                "report_id": None, "predicted_reward": None}
    from controller.orchestrator import predicted_reward
    from safety.registry import Registry

    suite = load_suite(req["suite"])
    if req.get("target_drift"):
        suite = suite.with_target(req["target_drift"])
    reg = Registry(req["registry"], actor=req.get("actor") or "driftgate-gate")
    try:
        report, report_id = gate_registry(reg, req["candidate_id"], suite, attach=True)
    finally:
        reg.close()
    d = report.to_dict()
    return {"verdict": d["verdict"], "reasons": list(d.get("reasons") or []), "report_id": report_id,
            "predicted_reward": predicted_reward(d), "incumbent_reward": predicted_reward(d, "incumbent")}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m adapters.gate_job DIR", file=sys.stderr)
        return 2
    d = Path(argv[0])
    try:
        os.nice(5)
    except OSError:
        pass
    try:
        out = judge(json.loads((d / "request.json").read_text()))
    except Exception as e:
        traceback.print_exc()
        out = {"verdict": "INCONCLUSIVE", "reasons": [f"gate failed ({type(e).__name__}: {e}): holding"],
               "report_id": None, "predicted_reward": None}
    _write(d, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
