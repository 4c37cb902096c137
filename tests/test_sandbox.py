"""The sandbox: a real child process answering only through its job directory, whatever happens."""
import json
import os

import numpy as np
import pytest

from sim.adapt_job import AdaptJob, run_job, train_nominal
from sim.genome import load_genome
from sim.sandbox import SandboxLimits, read_job, run_sandbox, write_job
from sim.sysid import Telemetry

DRIFT = {"mass_scale": {"pole_1": 3.0}, "actuator_gain": {"slide": -1.0}}
SMALL = dict(robot="cartpole", drift=DRIFT, budget_s=20, max_generations=2, horizon=40, sysid_budget_s=3,
             telemetry_ticks=150, randomize=1, population=4, children=1)


@pytest.fixture(scope="module")
def champion():
    return train_nominal("cartpole", generations=1, horizon=40)


def test_job_runs_in_a_child_and_reports_through_the_directory(tmp_path, champion):
    job_dir = write_job(tmp_path / "job", AdaptJob(**SMALL), [champion])
    outcome = run_sandbox(job_dir, SandboxLimits(wall_s=240))
    assert outcome.status == "ok", (outcome.reason, (job_dir / "sandbox.log").read_text()[-2000:])
    r = outcome.result
    for key in ("robot", "drift", "sysid", "candidate_id", "parent_id", "return_before", "return_after",
                "nominal_return", "wall_s", "status"):
        assert key in r
    assert r["parent_id"] == champion.id and r["robot"] == "cartpole" and r["drift"] == DRIFT
    assert r["rclpy_imported"] is False
    assert set(r["sysid"]["error"]) == set(r["sysid"]["params"])
    candidate = load_genome(outcome.candidate_path, expected_id=r["candidate_id"])
    assert candidate.parent_id == champion.id and candidate.kind == "srghn"
    assert 1 <= len(r["generations"]) <= 2
    # the model seed (an LQR on the identified model) was in the population and is reported
    assert r["model_seed"] is not None and r["model_seed"]["source"].startswith("LQR on the identified model")
    assert np.isfinite(r["model_seed"]["return"])


def test_same_seed_same_candidate_on_one_or_two_workers(champion):
    counts_only = {**SMALL, "budget_s": 1e6, "sysid_budget_s": 1e6, "sysid_max_evals": 80}
    one, c1 = run_job(AdaptJob(**counts_only), [champion])
    two, c2 = run_job(AdaptJob(**counts_only, workers=2), [champion])
    assert c1.id == c2.id
    assert one["generations"] == two["generations"]


@pytest.mark.parametrize("edit,field", [
    (lambda d: d.update(robot="hexapod"), "job.robot: unknown robot 'hexapod'"),
    (lambda d: d.update(plant=d.pop("robot")), "job.json: key 'plant' was renamed: use 'robot'"),
    (lambda d: d.update(drift={"mass_scale": {"no_such_body": 2.0}}), "no_such_body"),
    (lambda d: d.update(horizon=-5), "job.horizon"),
    (lambda d: d.update(colour="blue"), "job.json: unknown key(s) ['colour']"),
    (lambda d: d["seed_genomes"][0].update(id="0" * 32), "seed_genomes[0]"),
    (lambda d: d.update(seed_genomes=[]), "seed_genomes"),
])
def test_bad_job_files_are_refused_before_any_work(tmp_path, champion, edit, field):
    job_dir = write_job(tmp_path / "job", AdaptJob(**SMALL), [champion])
    doc = json.loads((job_dir / "job.json").read_text())
    edit(doc)
    (job_dir / "job.json").write_text(json.dumps(doc))
    outcome = run_sandbox(job_dir)
    assert outcome.status == "refused" and field in outcome.reason
    assert not (job_dir / "sandbox.log").exists()          # no child was started


def test_bad_telemetry_is_refused(tmp_path, champion):
    n = 100
    tel = Telemetry(np.zeros((n + 1, 2)), np.zeros((n + 1, 2)), np.zeros((n, 1)), 0.01)
    bad = Telemetry(tel.qpos.copy(), tel.qvel.copy(), tel.actions.copy(), 0.01)
    bad.qvel[3, 1] = np.nan
    job_dir = write_job(tmp_path / "nan", AdaptJob(**SMALL), [champion], bad)
    assert "telemetry.qvel" in run_sandbox(job_dir).reason
    short = Telemetry(np.zeros((6, 2)), np.zeros((6, 2)), np.zeros((5, 1)), 0.01)
    job_dir = write_job(tmp_path / "short", AdaptJob(**SMALL), [champion], short)
    assert "too few" in run_sandbox(job_dir).reason
    (tmp_path / "corrupt").mkdir()
    job_dir = write_job(tmp_path / "corrupt" / "job", AdaptJob(**SMALL), [champion], tel)
    (job_dir / "telemetry.npz").write_bytes(b"not a zip file")
    assert "telemetry.npz" in run_sandbox(job_dir).reason
    with pytest.raises(ValueError, match="job.json: missing"):
        read_job(tmp_path / "nowhere")


def test_a_hanging_job_is_killed_at_the_wall_clock_limit(tmp_path, champion):
    job = AdaptJob(**{**SMALL, "budget_s": 1e6, "max_generations": 100000, "horizon": 300, "target_fraction": 1e6})
    job_dir = write_job(tmp_path / "job", job, [champion])
    outcome = run_sandbox(job_dir, SandboxLimits(wall_s=8))
    assert outcome.status == "timeout" and "wall-clock" in outcome.reason
    assert outcome.candidate_path is None and os.getpid() > 0      # the parent carries on


def test_a_job_past_its_memory_limit_ends_as_a_clean_failure(tmp_path, champion):
    job_dir = write_job(tmp_path / "job", AdaptJob(**SMALL), [champion])
    outcome = run_sandbox(job_dir, SandboxLimits(memory_mb=200, wall_s=120))
    assert outcome.status in ("failed", "killed")
    assert outcome.reason and outcome.candidate_path is None


def test_progress_lines_reach_the_caller_while_the_child_runs(tmp_path, champion):
    """`driftgate adapt` draws its progress bars from these (adapters.cli._adapt_progress)."""
    import io

    from rich.console import Console
    from rich.progress import Progress

    from adapters.cli import _adapt_progress
    seen = []
    job_dir = write_job(tmp_path / "job", AdaptJob(**SMALL), [champion])
    outcome = run_sandbox(job_dir, SandboxLimits(wall_s=240), on_progress=seen.append)
    assert outcome.status == "ok", outcome.reason
    stages = [m["stage"] for m in seen]
    assert stages[:2] == ["sysid", "sysid done"] and "generation" in stages
    gens = [m["gen"] for m in seen if m["stage"] == "generation"]
    assert gens == sorted(gens) and len(gens) == len(outcome.result["generations"])
    # the bars: system identification done, one step per generation reported
    progress = Progress(console=Console(file=io.StringIO()))
    on = _adapt_progress(progress, SMALL["max_generations"])
    for m in seen:
        on(m)
    bars = {t.description: t for t in progress.tasks}
    assert bars["system identification"].completed == 1
    assert bars["evolving"].completed == max(gens) + 1 and bars["evolving"].total == SMALL["max_generations"]
