"""Every benchmark script still runs on the current code (`--smoke`), so a refactor that breaks one
is red at once; the committed numbers can always be regenerated."""
from benchmark_smoke import ROS_SCRIPTS, run_all, scripts, snapshot


def test_every_benchmark_script_runs_in_smoke_mode(tmp_path):
    found = scripts(ros=False)
    assert len(found) >= 10 and all(p.suffix == ".py" for p in found)
    before = snapshot()
    failed = run_all(found, tmp_path)
    assert not failed, "\n".join(f"{k}: {v}" for k, v in failed.items())
    assert snapshot() == before                   # nothing written over committed results or champions
    assert set(ROS_SCRIPTS) <= {p.name for p in scripts(ros=True)}   # the ROS ones exist (run elsewhere)
