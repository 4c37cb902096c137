"""Throughput of VectorCartPole driven by the 4-32-2 MLP, on one core.

Why: CartPole-Switch runs thousands of generations, so env steps per second decide how many seeds and
ablations fit in a budget. Two numbers per batch size N:

* `loop`: the inner loop alone (policy forward + `VectorCartPole.step`), N copies for 500 steps;
* `task`: `make_task("cartpole-switch").evaluate` end to end (episode seeding, per-env RNGs, reset,
  the loop), with a hand-made balancing policy so every episode lasts the full 500 steps.

steps/s counts env steps (N per batch step). BLAS/OpenMP threads are pinned to 1 before numpy loads and
the process is pinned to one CPU where the OS allows; times are process CPU time (`time.process_time`), so
other jobs on a shared machine do not count. Writes benchmarks/results/vector_cartpole.{json,md}.

    python benchmarks/vector_cartpole.py [--repeats 5]
    python benchmarks/vector_cartpole.py --smoke [--out DIR]   # does it still run: 50 steps, into a temp dir
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.envs.cartpole_switch import VectorCartPole  # noqa: E402
from sim.policy import BoundPolicy  # noqa: E402
from sim.tasks import CartPoleSwitchTask, make_task  # noqa: E402

# CPU time of this (single-threaded, pinned) process: on a shared machine wall time would also count
# the time other jobs held the core, so the rates would measure the load rather than the code.
clock = time.process_time
SIZES = (30, 300)
STEPS = 500


def balancing_weights() -> np.ndarray:
    """4-32-2 weights that push right when theta + theta_dot > 0: balances for 500 steps."""
    spec = CartPoleSwitchTask.policy
    w = np.zeros(spec.num_params, dtype=np.float32)
    off = {name: offset for name, offset, _ in spec.offsets()}
    w[off["W1"] + 2] = w[off["W1"] + 3] = 10.0  # hidden unit 0 = tanh(10 * (theta + theta_dot))
    w[off["W2"] + 32] = 1.0  # output 1 (push right) = h0
    w[off["W2"]] = -1.0  # output 0 (push left) = -h0
    return w


def time_loop(n: int, repeats: int, steps: int = STEPS) -> float:
    rng = np.random.default_rng(0)
    spec = CartPoleSwitchTask.policy
    weights = np.tile(balancing_weights(), (n, 1)) + rng.normal(0, 1e-3, (n, spec.num_params)).astype(np.float32)
    policy = BoundPolicy(spec, weights)
    best = np.inf
    for _ in range(repeats):
        env = VectorCartPole(n)
        obs = env.reset(np.arange(n))
        t0 = clock()
        for _ in range(steps):
            obs, _, _, _ = env.step(policy.act(obs))
        best = min(best, clock() - t0)
    return n * steps / best


def time_task(n: int, repeats: int, steps: int = STEPS) -> float:
    task = make_task("cartpole-switch", schedule="", horizon=None if steps == STEPS else steps)
    weights = np.tile(balancing_weights(), (n, 1))
    best = np.inf
    for r in range(repeats):
        seeds = np.arange(n, dtype=np.int64) + r * n
        t0 = clock()
        returns = task.evaluate(weights, seeds, generation=0)
        elapsed = clock() - t0
        steps = float(returns.sum())
        best = min(best, elapsed / steps)
    return 1.0 / best


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--smoke", action="store_true", help="50 steps, 1 repeat, into --out or a temp dir")
    args = parser.parse_args()
    steps = 50 if args.smoke else STEPS
    if args.smoke:  # does it still run: never over the committed results
        args.repeats = 1
        if args.out.resolve() == (ROOT / "benchmarks" / "results").resolve():
            args.out = Path(tempfile.mkdtemp(prefix="driftgate-smoke-"))
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        pinned = True
    except (AttributeError, OSError):
        pinned = False

    rows = []
    for n in SIZES:
        loop = time_loop(n, args.repeats, steps)
        task = time_task(n, args.repeats, steps)
        rows.append({"num_envs": n, "loop_steps_per_s": round(loop), "task_steps_per_s": round(task)})
        print(f"N={n:4d}  loop {loop / 1e6:6.3f} M steps/s   task.evaluate {task / 1e6:6.3f} M steps/s")

    result = {
        "benchmark": "vector_cartpole",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": cpu_name(),
                    "python": platform.python_version(), "numpy": np.__version__, "cpu_count": os.cpu_count(),
                    "pinned_to_one_cpu": pinned, "load_average": [round(x, 2) for x in os.getloadavg()]},
        "policy": "4-32-2 MLP (tanh), argmax",
        "steps_per_episode": steps,
        "command": "python benchmarks/vector_cartpole.py" + (" --smoke" if args.smoke else f" --repeats {args.repeats}"),
        "repeats": args.repeats,
        "timing": "best of repeats, process CPU time (time.process_time)",
        "steps_per_s": {str(r["num_envs"]): r["loop_steps_per_s"] for r in rows},
        "task_evaluate_steps_per_s": {str(r["num_envs"]): r["task_steps_per_s"] for r in rows},
        "targets_steps_per_s": {"30": 500_000, "300": 2_000_000},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "vector_cartpole.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# VectorCartPole throughput (one core, BLAS threads = 1)",
        "",
        f"{result['date']} on `{result['machine']['platform']}` ({result['machine']['processor']}, "
        f"{result['machine']['cpu_count']} cores, load average {result['machine']['load_average'][0]:g} at the end), "
        f"numpy {np.__version__}; best of {args.repeats}, process CPU time (other jobs on a shared machine do not count). "
        f"Command: `{result['command']}`.",
        "`loop` = policy forward + step only; `task` = `cartpole-switch` evaluate end to end (seeding, reset).",
        "",
        "| envs | loop (M steps/s) | task.evaluate (M steps/s) | target (M steps/s) |",
        "|---:|---:|---:|---:|",
    ]
    for r in rows:
        target = result["targets_steps_per_s"][str(r["num_envs"])] / 1e6
        lines.append(f"| {r['num_envs']} | {r['loop_steps_per_s'] / 1e6:.3f} | {r['task_steps_per_s'] / 1e6:.3f} "
                     f"| {target:g} |")
    (args.out / "vector_cartpole.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
