"""The benchmark scripts that need a ROS 2 graph, in `--smoke` mode (in the ROS test process)."""
import os

from benchmark_smoke import ROS_SCRIPTS, run_all, scripts, snapshot


def test_ros_benchmark_scripts_run_in_smoke_mode(tmp_path):
    found = scripts(ros=True)
    assert [p.name for p in found] == sorted(ROS_SCRIPTS)
    before = snapshot()
    domain = os.environ.get("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    failed = run_all(found, tmp_path, workers=1, extra={"node_latency.py": ("--domain", domain)})
    assert not failed, "\n".join(f"{k}: {v}" for k, v in failed.items())
    assert snapshot() == before
