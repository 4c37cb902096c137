"""Start the real sandbox on a job directory: `python -m sim.sandbox_launch JOB_DIR [--wall-s S]
[--cpu-s S] [--memory-mb M]` (started by `controller.jobs.SandboxRunner`).

A launcher process, not a direct `python -m sim.sandbox` (the live node must not import the
sandbox's parent side), because the limits (address space, CPU
time, nice, wall clock with a process-group kill) are applied by `sim.sandbox.run_sandbox` in the
parent of the sandbox child, and that parent-side code imports torch: it must not run in the live
node. Writes ``outcome.json`` = {status, reason, returncode, wall_s} next to the sandbox's own
``result.json`` / ``candidate.safetensors``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.sandbox_launch")
    ap.add_argument("job_dir", type=Path)
    ap.add_argument("--wall-s", type=float, default=300.0)
    ap.add_argument("--cpu-s", type=float, default=1200.0)
    ap.add_argument("--memory-mb", type=int, default=8192)
    args = ap.parse_args(argv)
    try:
        from sim.sandbox import SandboxLimits, run_sandbox
        out = run_sandbox(args.job_dir, SandboxLimits(wall_s=args.wall_s, cpu_s=args.cpu_s,
                                                      memory_mb=args.memory_mb))
        outcome = {"status": out.status, "reason": out.reason, "returncode": out.returncode,
                   "wall_s": out.wall_s}
    except Exception as e:   # the sandbox module itself failed: still an answer, never a hang
        outcome = {"status": "failed", "reason": f"{type(e).__name__}: {e}", "returncode": None}
    from sim.atomicio import atomic_write_json
    atomic_write_json(args.job_dir / "outcome.json", outcome, indent=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
