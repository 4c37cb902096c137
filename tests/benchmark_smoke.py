"""Run benchmark scripts in their `--smoke` mode (shared by the two smoke test files).

Every script in benchmarks/ must accept `--smoke --out DIR`: tiny sizes, seconds, results into DIR.
A script without the flag exits with argparse's error and the test names it. The committed results
(benchmarks/results/) and the shipped champions are checked to be untouched.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
# these need a ROS 2 graph: they run in the ROS test process (Makefile ROS_TESTS)
ROS_SCRIPTS = ("node_latency.py", "rclpy_floor.py")
GUARDED = (BENCHMARKS / "results", ROOT / "sim" / "assets")


def scripts(ros: bool) -> list[Path]:
    return [p for p in sorted(BENCHMARKS.glob("*.py")) if (p.name in ROS_SCRIPTS) == ros]


def snapshot() -> dict[str, str]:
    """Content hash of every file under the committed result and asset folders."""
    return {str(p.relative_to(ROOT)): hashlib.sha256(p.read_bytes()).hexdigest()
            for root in GUARDED for p in sorted(root.rglob("*")) if p.is_file()}


def run_one(script: Path, out: Path, extra: tuple[str, ...] = (), timeout: float = 300.0) -> tuple[str, str]:
    """'' when the smoke run succeeded and wrote something into `out`, else why not."""
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MUJOCO_GL="disable",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        r = subprocess.run([sys.executable, str(script), "--smoke", "--out", str(out), *extra], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return script.name, f"--smoke ran longer than {timeout:.0f} s"
    if r.returncode != 0:
        return script.name, f"exit {r.returncode}: {(r.stderr or r.stdout)[-1500:]}"
    if not any(p.is_file() for p in out.rglob("*")):
        return script.name, f"--smoke wrote nothing into --out {out}"
    return script.name, ""


def run_all(paths: list[Path], tmp: Path, workers: int = 2, extra: dict[str, tuple[str, ...]] | None = None
            ) -> dict[str, str]:
    extra = extra or {}
    with ThreadPoolExecutor(workers) as pool:
        done = pool.map(lambda p: run_one(p, tmp / p.stem, extra.get(p.name, ())), paths)
        return {name: why for name, why in done if why}
