"""Adaptation on a Ray cluster, through the product's own paths: `driftgate adapt --backend ray` and the
controller node's sandbox job (controller.jobs.SandboxRunner -> sim.sandbox_launch ->
sim.sandbox), against a head started here with ``ray start --head`` (2 CPUs, own port and temp dir,
stopped after the module). Budgets are counts, so the ray candidate must equal the local one."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from controller.contracts import AdaptationJob
from controller.jobs import SandboxRunner
from sim.ray_backend import plan_chunks
from sim.ray_cluster import LocalHead, RayUnavailable, check_reachable, cluster_address, host_port

ray = pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parents[1]
DRIFT = {"mass_scale": {"pole_1": 3.0}, "actuator_gain": {"slide": -1.0}}
# count budgets only (wall budgets far away): the same seed gives the same candidate anywhere
# (job.json's own names: sim.job_contract.AdaptJob; the node's adapt.* settings are a subset)
COUNTS = {"budget_s": 300.0, "max_generations": 20, "population": 6, "children": 2, "horizon": 120,
          "sysid_budget_s": 1e6, "sysid_max_evals": 40, "telemetry_ticks": 150, "target_fraction": 1e6,
          "workers": 2, "randomize": 1}
CLI_COUNTS = ["--max-generations", "2", "--population", "4", "--children", "1", "--horizon", "60",
              "--sysid-max-evals", "40", "--budget-s", "1000", "--sysid-budget-s", "1000", "--seed", "1"]


# ---------------------------------------------------------------- without a cluster

def test_chunk_plan_keeps_the_per_task_overhead_small():
    # unknown costs: one contiguous chunk per worker
    assert [c.tolist() for c in plan_chunks(5, 2, None, None)] == [[0, 1, 2], [3, 4]]
    # 1 ms per individual, 5 ms per task: a chunk needs >= 100 individuals for <= 5 % overhead
    assert len(plan_chunks(30, 8, 1e-3, 5e-3)) == 1
    assert len(plan_chunks(400, 8, 1e-3, 5e-3)) == 4
    # heavy individuals: one chunk per worker, never more chunks than individuals
    assert len(plan_chunks(30, 8, 0.1, 5e-3)) == 8 and len(plan_chunks(3, 8, 0.1, 5e-3)) == 3
    chunks = plan_chunks(31, 4, 0.01, 1e-3)
    assert np.array_equal(np.concatenate(chunks), np.arange(31))      # contiguous, in order


def test_addresses_and_an_unreachable_cluster(monkeypatch):
    assert host_port("ray://head.example:10001") == ("head.example", 10001)
    assert host_port("10.0.0.5:6379") == ("10.0.0.5", 6379) and host_port("auto") is None
    with pytest.raises(RayUnavailable, match="ray_address"):
        host_port("head-without-port")
    monkeypatch.setenv("RAY_ADDRESS", "10.1.2.3:6379")
    assert cluster_address(None) == "10.1.2.3:6379" and cluster_address("h:1") == "h:1"
    monkeypatch.delenv("RAY_ADDRESS")
    assert cluster_address("") is None
    with pytest.raises(RayUnavailable, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:\d+") as e:
        check_reachable(f"127.0.0.1:{_closed_port()}", timeout_s=2.0)
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------- with a cluster

def _closed_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """``ray start --head --block`` (2 CPUs, Ray's default authentication); stopped after the module."""
    head = LocalHead(num_cpus=2, own_token=False, object_store_mb=200).start()
    yield head
    head.stop()


def _env(**extra) -> dict:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **extra}
    env.pop("RAY_ADDRESS", None)
    return env


def _cli(args, out, env=None, timeout=240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adapters.cli", "adapt", "--out", str(out), *args],
                          cwd=ROOT, env=env or _env(), capture_output=True, text=True, timeout=timeout)


def test_cli_adapt_on_a_running_cluster(tmp_path, cluster):
    done = _cli(["--backend", "ray", "--workers", "2", "--ray-address", cluster.address, *CLI_COUNTS], tmp_path / "a")
    log = (tmp_path / "a" / "job" / "sandbox.log")
    assert done.returncode == 0, (done.stderr[-1500:], log.read_text()[-1500:] if log.exists() else "")
    r = json.loads((tmp_path / "a" / "result.json").read_text())
    assert r["status"] == "ok" and r["evaluation"]["backend"] == "ray"
    assert r["evaluation"]["ray_address"] == cluster.address        # the cluster's, not a private Ray
    assert r["evaluation"]["ray_task_overhead_s"] > 0


def test_cli_adapt_without_an_address_starts_and_stops_a_head(tmp_path):
    done = _cli(["--backend", "ray", "--workers", "2", "--wall-limit-s", "180", *CLI_COUNTS], tmp_path / "b")
    assert done.returncode == 0, done.stderr[-1500:]
    r = json.loads((tmp_path / "b" / "result.json").read_text())
    assert r["status"] == "ok"
    address = r["evaluation"]["ray_address"]
    with pytest.raises(RayUnavailable):           # the head started for the job is gone
        check_reachable(address, timeout_s=2.0)


def test_an_unreachable_cluster_fails_fast_with_one_line(tmp_path):
    address = f"127.0.0.1:{_closed_port()}"
    done = _cli(["--backend", "ray", "--ray-address", address, "--wall-limit-s", "120", *CLI_COUNTS], tmp_path / "c")
    assert done.returncode == 1
    r = json.loads((tmp_path / "c" / "result.json").read_text())
    assert r["status"] == "failed", r                   # not "timeout": the wall-clock kill never came
    assert f"cannot reach the Ray cluster at {address}" in r["sandbox_reason"]
    assert "\n" not in r["sandbox_reason"]


def _job(tmp_path, name: str, seed: int = 3, **budgets) -> AdaptationJob:
    from sim.adapt_job import nominal_champion
    job_dir = tmp_path / name
    job_dir.mkdir()
    return AdaptationJob(name, job_dir, "cartpole", seed, {**COUNTS, **budgets}, (nominal_champion("cartpole"),),
                         None, None, DRIFT)


def _wait(runner, limit_s: float = 240.0, on_poll=None):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        res = runner.poll()
        if res is not None:
            return res
        if on_poll is not None:
            on_poll()
        time.sleep(0.02)
    runner.cancel()
    raise AssertionError("the runner never answered")


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process (from /proc)."""
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                out[int(d.name)] = (ppid, (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except (OSError, ValueError, IndexError):
                pass
    return out


def _chunk_workers(head: LocalHead) -> list[tuple[int, str]]:
    """(pid, title) of the Ray workers of `head` evaluating a chunk right now (the title names the task)."""
    procs = _processes()
    mine, frontier = set(), {head.proc.pid}
    while frontier:
        frontier = {pid for pid, (ppid, _) in procs.items() if ppid in frontier} - mine
        mine |= frontier
    return [(pid, procs[pid][1]) for pid in sorted(mine) if "driftgate/" in procs[pid][1] and "chunk" in procs[pid][1]]


def test_node_job_on_the_cluster_gives_the_local_candidate_even_when_a_worker_dies(tmp_path, cluster):
    # target_fraction 1e6: every generation runs (a worker can be killed mid-run), the target is
    # missed, so each job is a failed job (no candidate for the gate) whose result.json still says
    # which individual won: the two must agree
    local = SandboxRunner(requester="/robot_a")
    local_job = _job(tmp_path, "local")
    local.start(local_job)
    expected = _wait(local)
    assert not expected.ok and "target not reached" in expected.error, expected.error
    expected_result = json.loads((local_job.job_dir / "result.json").read_text())

    # 1792 MB: a Ray driver with torch maps ~2.4 GB here (the cluster's object store among it) but
    # holds ~0.75 GB of private memory; the limit is on the latter (RLIMIT_DATA), not on address space
    remote = SandboxRunner(requester="/robot_a", memory_mb=1792)
    job = _job(tmp_path, "ray", backend="ray", ray_address=cluster.address)
    remote.start(job)
    killed = []

    def kill_a_worker() -> None:
        if not killed:
            for pid, title in _chunk_workers(cluster):
                os.kill(pid, signal.SIGKILL)
                killed.append(title)
                break
    got = _wait(remote, on_poll=kill_a_worker)
    assert killed, "no Ray worker was seen evaluating a chunk"
    assert not got.ok and "target not reached" in got.error, got.error     # the lost chunk was retried
    got_result = json.loads((job.job_dir / "result.json").read_text())
    assert got_result["candidate_id"] == expected_result["candidate_id"]
    assert got_result["generations"] == expected_result["generations"] and len(got_result["generations"]) == 20
    assert got_result["winner"] == expected_result["winner"]
    assert got_result["evaluation"]["ray_address"] == cluster.address
    spec = json.loads((job.job_dir / "job.json").read_text())
    assert spec["requester"] == "/robot_a" and spec["robot"] == "cartpole" and spec["seed"] == 3 and spec["backend"] == "ray"
    assert "robot_a/seed3/gen" in killed[0]                # the task carried the requester and seed


def test_a_cancelled_job_frees_its_ray_tasks(tmp_path, cluster, monkeypatch):
    from sim.ray_cluster import enable_token_auth
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    enable_token_auth()
    monkeypatch.setenv("RAY_AUTH_MODE", os.environ.get("RAY_AUTH_MODE", "disabled"))   # undone after
    runner = SandboxRunner(requester="/robot_b")
    job = _job(tmp_path, "long", max_generations=100000, horizon=300, randomize=2, backend="ray",
               ray_address=cluster.address)
    ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
    try:
        runner.start(job)
        t0 = time.monotonic()
        while not _chunk_workers(cluster):                # the job's tasks hold the cluster's CPUs
            assert runner.poll() is None, "the job ended before it ran on the cluster"
            assert time.monotonic() - t0 < 180, "no task of the job ever ran"
            time.sleep(0.05)
        live = _cluster_jobs()
        assert {"requester": "/robot_b", "job_id": "long", "seed": "3"}.items() <= \
            next(m for m, dead in live if m.get("requester") == "/robot_b" and not dead).items()
        runner.cancel()
        t0 = time.monotonic()
        free = 0
        while free < 10:                                  # free, and staying free (not a gap between generations)
            assert time.monotonic() - t0 < 60, f"still held: {ray.available_resources()}"
            free = free + 1 if ray.available_resources().get("CPU", 0) >= 2 and not _chunk_workers(cluster) else 0
            time.sleep(0.2)
        assert not [c for _, c in _processes().values() if str(job.job_dir) in c]   # no sandbox left
        assert all(dead for m, dead in _cluster_jobs() if m.get("requester") == "/robot_b")
    finally:
        runner.cancel()
        ray.shutdown()


def _cluster_jobs() -> list[tuple[dict, bool]]:
    """(metadata, is_dead) of every job the cluster's GCS knows."""
    from ray.core.generated import gcs_pb2
    accessor = ray._private.state.state._connect_and_get_accessor()
    table = accessor.get_job_table(skip_submission_job_info_field=True, skip_is_running_tasks_field=True)
    entries = [gcs_pb2.JobTableData.FromString(raw) for raw in table]
    return [(dict(e.config.metadata), e.is_dead) for e in entries]
