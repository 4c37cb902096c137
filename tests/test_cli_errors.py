"""Every CLI error is one line naming the option, exit 2 for bad input; extreme but finite drifts
are refused as implausible; an adaptation on which nothing scores reports `failed`, not `ok`."""
import pytest
from typer.testing import CliRunner

import sim.adapt_job as adapt_job
from adapters.cli import app
from sim.adapt_job import AdaptJob, run_job, train_nominal
from sim.drift_spec import DriftSpec

runner = CliRunner()
LONG = "x" * 150          # messages longer than an 80-column console, which wrapped them before


def one_line_error(result, code=2):
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("args, needle", [
    (["--budget-s", "inf"], "--budget-s"),
    (["--budget-s", "nan"], "--budget-s"),
    (["--sysid-budget-s", "-1"], "--sysid-budget-s"),
    (["--drift", "gravity x 2"], "--drift: not valid JSON"),
    (["--drift", '{"gravity": 1e9}'], "--drift: DriftSpec.gravity"),
    (["--drift", '{"mass_scale": {"pole_1": 1e-9}}'], "--drift: DriftSpec.mass_scale"),
    (["--drift", '{"mass_scale": {"pole_1": 3.0}, "' + LONG + '": 1}'], "--drift: DriftSpec: unknown field"),
])
def test_adapt_bad_input_is_one_line_naming_the_option(tmp_path, args, needle):
    r = runner.invoke(app, ["adapt", "--out", str(tmp_path / "out"), *args])
    assert needle in one_line_error(r)
    assert not (tmp_path / "out").exists()


def test_evolve_and_replay_errors_are_not_wrapped(tmp_path):
    r = runner.invoke(app, ["evolve", "-q", "--json-out", str(tmp_path / "r.json"), "--task", LONG])
    assert LONG in one_line_error(r)
    r = runner.invoke(app, ["replay", str(tmp_path / LONG), "--out", str(tmp_path / "o")])
    one_line_error(r)


@pytest.mark.parametrize("spec, field", [
    ({"gravity": 1e9}, "gravity"), ({"gravity": [0, 0, -1e4]}, "gravity"), ({"mass_scale": {"pole_1": 1e-9}}, "mass_scale"),
    ({"mass_scale": {"pole_1": 1e3}}, "mass_scale"), ({"actuator_gain": {"slide": 1e-6}}, "actuator_gain"),
    ({"friction_scale": {"*": 1e6}}, "friction_scale"), ({"damping_scale": {"slider": 1e9}}, "damping_scale"),
    ({"obs_bias": {"pole_sin": 1e6}}, "obs_bias"), ({"obs_noise": 1e4}, "obs_noise")])
def test_drift_values_outside_the_plausibility_bounds_are_refused(spec, field):
    with pytest.raises(ValueError, match=f"DriftSpec.{field}.*(plausible|must be in)"):
        DriftSpec.parse(spec)


def test_plausible_extremes_and_the_shipped_variants_are_accepted():
    from sim.drift_spec import VARIANTS
    DriftSpec.parse({"mass_scale": {"pole_1": 100.0}, "actuator_gain": {"slide": -0.001}, "gravity": 10.0,
                     "damping_scale": {"slider": 1e4}})
    assert all(isinstance(v, DriftSpec) for plant in VARIANTS.values() for v in plant.values())


def test_an_adaptation_where_nothing_scores_reports_failed(monkeypatch):
    """A drifted robot on which neither policy scores (returns 0 -> 0) is a failed job, not `ok`."""
    champion = train_nominal("cartpole", generations=1, horizon=30)
    monkeypatch.setattr(adapt_job, "mean_return", lambda *a, **k: 0.0)
    job = AdaptJob(robot="cartpole", drift={"mass_scale": {"pole_1": 3.0}}, budget_s=60, max_generations=1,
                   horizon=30, sysid_budget_s=2, sysid_max_evals=20, telemetry_ticks=100, randomize=0,
                   population=2, children=1, model_seed=False)
    result, _ = run_job(job, [champion])
    assert result["status"] == "failed" and "scores nothing" in result["error"]
    assert adapt_job.no_score(0.0, 12.5) is None and adapt_job.no_score(float("nan"), 0.0)
