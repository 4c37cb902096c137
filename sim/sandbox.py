"""The sandbox: an adaptation job in its own OS process, talking only through a job directory.

    job_dir/
      job.json              AdaptJob fields + seed_genomes: [{"file", "id"}]   (written by the parent)
      telemetry.npz         qpos, qvel, actions, control_dt [, breaks] (optional) (parent)
      seeds/<id>.safetensors                                                    (parent)
      result.json           status, sysid, returns, curves ...                  (child, atomically)
      candidate.safetensors the evolved candidate                               (child, atomically)
      sandbox.log           the child's stdout/stderr

Why a process and not a thread: evolution is CPU-heavy Python and torch; in the live process it
would steal the control tick's GIL and could crash or leak into it. The child runs with an
address-space limit (memory), a CPU-time limit, lower scheduling priority, and a wall-clock limit
enforced by the parent (SIGKILL of its process group). It cannot import rclpy (blocked before
anything else runs), so it has no way to reach the robot. Whatever happens in it — an exception,
a hang, an allocation past the limit — the parent gets a `SandboxOutcome` with a status and a
reason, never an exception, and a job directory it can inspect.

With the Ray backend (`sim.ray_cluster`) only the Ray *driver* runs in the child: the evaluations
run on a cluster, either the job's (`ray_address`, else ``RAY_ADDRESS``) or a head this parent starts
outside the limits before the child (and stops after it). The driver maps the cluster's shared
object store, which is Ray's memory, not the job's: for it the memory limit is on private memory
(RLIMIT_DATA) instead of address space. A cluster that cannot be reached is a `failed` outcome with
a one-line reason within seconds.

Bad input (missing or malformed files, unknown keys, a DriftSpec naming an unknown body, NaN
telemetry, too few ticks, a seed genome whose hash does not match job.json) is refused before any
work, with a message naming the field: `read_job` runs in the parent before starting the child,
and again in the child.

One entry point for every champion kind: the child dispatches on the first seed genome's kind
(SR-GHN: `sim.adapt_job.run_job`; a flat ``policy``: `sim.policy_adapt.run_policy_job`). The job
directory is written by `sim.job_contract.write_job` (re-exported here), the live node starts the
child through `sim.sandbox_launch`.

Run the child by hand with `python -m sim.sandbox JOB_DIR`.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from sim.atomicio import atomic_write_json
from sim.job_contract import write_job  # noqa: F401 (the one job writer; re-exported)
from sim.ray_cluster import die_with_parent

STATUSES = ("ok", "failed", "timeout", "cpu_limit", "killed", "refused")


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of the child process."""

    wall_s: float = 300.0
    cpu_s: float = 1200.0
    memory_mb: int = 8192
    nice: int = 10


@dataclass
class SandboxOutcome:
    status: str
    reason: str
    result: dict = field(default_factory=dict)
    candidate_path: Path | None = None
    returncode: int | None = None
    wall_s: float = 0.0


# -- the job directory ---------------------------------------------------------------------------

def read_job(job_dir: str | os.PathLike):
    """(AdaptJob, seed genomes, telemetry or None), or ValueError naming the bad field."""
    from sim.genome import GenomeFileError, load_genome
    job_dir = Path(job_dir)
    try:
        raw = json.loads((job_dir / "job.json").read_text())
    except FileNotFoundError:
        raise ValueError(f"{job_dir}/job.json: missing") from None
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{job_dir}/job.json: not valid JSON ({e})") from None
    from sim.job_contract import AdaptJob
    job = AdaptJob.from_dict(raw)
    entries = raw.get("seed_genomes")
    if not isinstance(entries, list) or not entries:
        raise ValueError("job.json: seed_genomes must be a non-empty list of {file, id}")
    seeds = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not isinstance(e.get("file"), str) or not isinstance(e.get("id"), str):
            raise ValueError(f"job.json: seed_genomes[{i}] must be an object with string 'file' and 'id'")
        path = (job_dir / e["file"]).resolve()
        if job_dir.resolve() not in path.parents:
            raise ValueError(f"job.json: seed_genomes[{i}].file points outside the job directory")
        try:
            seeds.append(load_genome(path, expected_id=e["id"]))
        except GenomeFileError as err:
            raise ValueError(f"job.json: seed_genomes[{i}]: {err}") from None
    telemetry = None
    if (job_dir / "telemetry.npz").exists():
        telemetry = _read_telemetry(job_dir / "telemetry.npz", job)
    elif job.drift is None:
        raise ValueError("telemetry.npz: missing, and job.drift is null (nothing to identify from)")
    return job, seeds, telemetry


def _read_telemetry(path: Path, job):
    from sim.plants import make_plant
    from sim.sysid import DEFAULT_HORIZON, Telemetry
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # not a zip, truncated, or an object array (pickle is never loaded)
        raise ValueError(f"telemetry.npz: unreadable ({type(e).__name__}: {e})") from None
    missing = sorted({"qpos", "qvel", "actions", "control_dt"} - set(arrays))
    if missing:
        raise ValueError(f"telemetry.npz: missing arrays {missing}")
    try:
        breaks = arrays.get("breaks")     # optional: where the stream was interrupted (sim.sysid.Telemetry)
        tel = Telemetry(arrays["qpos"].astype(np.float64), arrays["qvel"].astype(np.float64),
                        arrays["actions"].astype(np.float64), float(arrays["control_dt"]),
                        breaks=None if breaks is None else breaks.astype(np.int64).reshape(-1))
    except (TypeError, ValueError) as e:
        raise ValueError(f"telemetry.npz: bad array types ({e})") from None
    tel.validate(make_plant(job.robot), DEFAULT_HORIZON.get(job.robot, 10))
    return tel


# -- the parent side -----------------------------------------------------------------------------

def _child_limits(limits: SandboxLimits, memory_rlimit: int = resource.RLIMIT_AS):
    def apply() -> None:
        os.setsid()
        os.nice(limits.nice)
        mem = int(limits.memory_mb) * 1024 * 1024
        resource.setrlimit(memory_rlimit, (mem, mem))
        cpu = int(limits.cpu_s)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        die_with_parent(signal.SIGKILL)     # a killed parent (a cancelled job) takes the child along
    return apply


def run_sandbox(job_dir: str | os.PathLike, limits: SandboxLimits = SandboxLimits(),
                on_progress: Callable[[dict], None] | None = None) -> SandboxOutcome:
    """Run the job in a child process under `limits`; always returns an outcome. `on_progress` gets
    each progress line the child writes to sandbox.log (``{"stage": ..., ...}``) while it runs."""
    job_dir = Path(job_dir)
    t0 = time.perf_counter()
    try:
        job, _, _ = read_job(job_dir)
    except (ValueError, FileExistsError) as e:
        return SandboxOutcome("refused", str(e), wall_s=time.perf_counter() - t0)
    for stale in ("result.json", "candidate.safetensors"):
        (job_dir / stale).unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MUJOCO_GL": os.environ.get("MUJOCO_GL", "disable")}
    if job.backend != "ray":
        return _run_child(job_dir, limits, env, resource.RLIMIT_AS, t0, on_progress)
    from sim.ray_cluster import LocalHead, RayUnavailable, check_reachable, cluster_address
    address = cluster_address(job.ray_address)
    if address:
        try:
            check_reachable(address)      # the child checks again; this saves starting it for nothing
        except RayUnavailable as e:
            return SandboxOutcome("failed", str(e), wall_s=time.perf_counter() - t0)
        return _run_child(job_dir, limits, env, resource.RLIMIT_DATA, t0, on_progress)
    head = LocalHead(num_cpus=job.workers, nice=limits.nice)
    try:
        head.start()
    except RayUnavailable as e:
        return SandboxOutcome("failed", str(e), wall_s=time.perf_counter() - t0)
    try:
        env.update(head.client_env())
        return _run_child(job_dir, limits, env, resource.RLIMIT_DATA, t0, on_progress)
    finally:
        head.stop()


def _run_child(job_dir: Path, limits: SandboxLimits, env: dict, memory_rlimit: int, t0: float,
               on_progress: Callable[[dict], None] | None) -> SandboxOutcome:
    with open(job_dir / "sandbox.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "sim.sandbox", str(job_dir)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=_child_limits(limits, memory_rlimit), env=env)
        try:
            if on_progress is None:
                proc.wait(timeout=limits.wall_s)
            else:
                _follow(proc, job_dir / "sandbox.log", time.perf_counter() + limits.wall_s, on_progress)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    wall = time.perf_counter() - t0
    result = _read_result(job_dir)
    rc = proc.returncode
    if timed_out:
        return SandboxOutcome("timeout", f"wall-clock limit of {limits.wall_s:g} s reached; child killed",
                              result, None, rc, wall)
    if result.get("status") == "ok" and rc == 0 and (job_dir / "candidate.safetensors").exists():
        return SandboxOutcome("ok", "", result, job_dir / "candidate.safetensors", rc, wall)
    if result.get("status") == "failed":
        return SandboxOutcome("failed", result.get("error", "job failed"), result, None, rc, wall)
    if rc in (-signal.SIGXCPU, -signal.SIGKILL) and _cpu_exhausted(limits, wall):
        return SandboxOutcome("cpu_limit", f"CPU-time limit of {limits.cpu_s:g} s reached", result, None, rc, wall)
    tail = (job_dir / "sandbox.log").read_text(errors="replace")[-400:]
    return SandboxOutcome("killed", f"child exited with code {rc} without a result; log tail: {tail.strip()}",
                          result, None, rc, wall)


def _follow(proc: subprocess.Popen, log: Path, deadline: float, on_progress: Callable[[dict], None]) -> None:
    """Wait for the child like ``proc.wait(timeout)``, passing its JSON progress lines on as they come."""
    with open(log, "rb") as f:
        buf = b""
        while True:
            try:
                proc.wait(timeout=max(0.0, min(0.25, deadline - time.perf_counter())))
                done = True
            except subprocess.TimeoutExpired:
                done = False
            buf += f.read()
            *lines, buf = buf.split(b"\n")
            for line in lines:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if isinstance(msg, dict) and "stage" in msg:
                    on_progress(msg)
            if done:
                return
            if time.perf_counter() >= deadline:
                raise subprocess.TimeoutExpired(proc.args, 0)


def _cpu_exhausted(limits: SandboxLimits, wall: float) -> bool:
    return wall >= limits.cpu_s * 0.5


def _read_result(job_dir: Path) -> dict:
    try:
        data = json.loads((job_dir / "result.json").read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, json.JSONDecodeError):
        return {}


# -- the child side ------------------------------------------------------------------------------

class _NoRobot:
    """Import blocker: the sandbox must not be able to reach ROS 2."""

    def find_spec(self, name, path=None, target=None):
        if name == "rclpy" or name.startswith("rclpy."):
            raise ImportError("the sandbox has no robot access: importing rclpy is blocked")
        return None


def child_main(job_dir: str) -> int:
    sys.meta_path.insert(0, _NoRobot())
    job_dir = Path(job_dir)
    try:
        # the heavy imports first: under a memory limit they fail at once with a clean error (a
        # scipy import that runs out of address space later can hang instead)
        from sim.adapt_job import run_job
        from sim.genome import save_genome
        job, seeds, telemetry = read_job(job_dir)
        if seeds[0].kind == "policy":       # one entry point: dispatch on the champion's kind
            from sim.policy_adapt import run_policy_job as run_job

        def progress(stage: str, info: dict) -> None:
            print(json.dumps({"stage": stage, **{k: v for k, v in info.items() if k != "estimate"}}), flush=True)

        result, candidate = run_job(job, seeds, telemetry, progress=progress)
        if result.get("status") == "ok":       # a failed job (e.g. nothing scores) offers no candidate
            save_genome(candidate, job_dir / "candidate.safetensors")
            result["candidate_file"] = "candidate.safetensors"
        result["rclpy_imported"] = "rclpy" in sys.modules
        atomic_write_json(job_dir / "result.json", result)
        return 0
    except BaseException as e:  # noqa: BLE001 - every failure becomes a report
        error = f"{type(e).__name__}: {e}"
        try:
            atomic_write_json(job_dir / "result.json", {"status": "failed", "error": error})
        except BaseException:  # noqa: BLE001 - e.g. out of memory while reporting
            pass
        print(error, file=sys.stderr, flush=True)
        return 1


def copy_result(outcome: SandboxOutcome, out_dir: Path) -> None:
    """Copy result.json (+ candidate) of a finished job next to a user's output."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "result.json", {**outcome.result, "status": outcome.status,
                                                "sandbox_reason": outcome.reason})
    if outcome.candidate_path is not None:
        shutil.copyfile(outcome.candidate_path, out_dir / "candidate.safetensors")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m sim.sandbox JOB_DIR", file=sys.stderr)
        sys.exit(2)
    code = child_main(sys.argv[1])
    sys.stdout.flush()
    sys.stderr.flush()
    # the answer is on disk; do not let a library's exit handler (a Ray driver whose cluster is
    # gone, a thread that never ends) keep the process alive until the wall-clock kill
    os._exit(code)
