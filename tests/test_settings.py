"""The settings tree (controller/settings.py): one name and one default per setting from the YAML
to job.json, one-line errors naming the key, old names refused with the new one, and the shipped
parameter files checked against the tree."""
import json
from pathlib import Path

import pytest

from controller import settings as tree
from controller.contracts import AdaptationJob
from controller.jobs import write_sandbox_job
from controller.settings import JOB_SETTINGS, Settings, SettingsError, validate
from sim.job_contract import AdaptJob, job_field_names

ROOT = Path(__file__).resolve().parents[1]


def one_line(exc):
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("data, needle", [
    ({"adapt": {"budgett_s": 1.0}}, "adapt: unknown key(s) ['budgett_s'] (did you mean 'budget_s'?)"),
    ({"runtimee": {}}, "top level: unknown key(s) ['runtimee'] (did you mean 'runtime'?)"),
    ({"guard": {"joint_bounds": {"slider": [1.0, 2.0, 3.0]}}}, "guard.joint_bounds.slider"),
    ({"orchestrator": {"shadow_s": "long"}}, "orchestrator.shadow_s: expected a finite number, got 'long'"),
    ({"adapt": {"max_generations": 0}}, "adapt.max_generations: must be >= 1, got 0")])
def test_a_bad_key_or_value_is_one_line_naming_it(data, needle):
    with pytest.raises(SettingsError) as e:
        validate(data)
    assert needle in one_line(e)


@pytest.mark.parametrize("data, new", [
    ({"plant": "cartpole"}, "robot"), ({"adapt_budget_s": 5.0}, "adapt.budget_s"),
    ({"adapt": {"wall_limit_s": 5.0}}, "adapt.budget_s"), ({"adapt": {"generations": 5}}, "adapt.max_generations"),
    ({"orchestrator": {"shadow_max_divergence_mean": 0.1}}, "orchestrator.shadow_max_divergence"),
    ({"drift_hint": ""}, "adapt.drift"), ({"champion": "lqr"}, "orchestrator.bootstrap_champion")])
def test_an_old_name_is_refused_naming_the_new_one(data, new):
    with pytest.raises(SettingsError) as e:
        validate(data)
    assert one_line(e).endswith(f"was renamed: use {new}")


def test_every_setting_has_one_name_from_the_yaml_to_job_json(tmp_path):
    """The adapt section's job settings are AdaptJob's fields, with AdaptJob's defaults; a tree with
    every one of them changed writes exactly those values under the same names."""
    fields = set(job_field_names())
    adapt = Settings().adapt
    for name in JOB_SETTINGS:
        assert name in fields, name
        assert getattr(adapt, name) == (getattr(AdaptJob, name) if name != "ray_address" else ""), name
    assert set(tree.AdaptSettings.model_fields) - set(JOB_SETTINGS) == {"enabled", "sandbox_command", "cpu_s",
                                                                        "memory_mb"}
    changed = {"budget_s": 33.0, "max_generations": 7, "population": 5, "children": 3, "horizon": 77, "workers": 2,
               "backend": "ray", "ray_address": "head:6379", "sysid_budget_s": 11.0, "sysid_max_evals": 99,
               "drift": {"mass_scale": {"pole_1": 2.0}}}
    assert set(changed) == set(JOB_SETTINGS)
    st = validate({"adapt": changed})
    job_fields = st.job_fields()
    from controller.bootstrap import lqr_policy_genome
    job = AdaptationJob("j", tmp_path / "j", "cartpole", 4, {k: v for k, v in job_fields.items() if k != "drift"},
                        (lqr_policy_genome(),), None, None, job_fields["drift"])
    job.job_dir.mkdir()
    write_sandbox_job(job)
    written = json.loads((job.job_dir / "job.json").read_text())
    for name, value in changed.items():
        assert written[name] == value, name
    assert set(written) - {"seed_genomes"} == fields


def test_ros_parameter_values_round_trip_through_the_tree():
    values = tree.to_parameters()
    assert tree.from_parameters(values) == Settings()
    assert values["guard.joint_bounds"] == "{}" and values["adapt.drift"] == ""
    st = tree.from_parameters({"guard.joint_bounds": '{"slider": [-1.0, 1.0]}', "adapt.max_generations": 3})
    assert st.guard.joint_bounds == {"slider": [-1.0, 1.0]} and st.adapt.max_generations == 3
    with pytest.raises(SettingsError, match="parameter guard.joint_bounds: is not valid JSON"):
        tree.from_parameters({"guard.joint_bounds": "{bad"})


def _yaml_section(path, node):
    from adapters.cli_node import load_node_params
    return load_node_params(ROOT / "launch" / path, node)


def test_the_shipped_parameter_files_use_the_tree():
    """launch/driftgate.yaml names every setting of the node; demo.yaml only known ones; both valid."""
    node_names = [name for name, _, _ in tree.leaves(exclude=("replay",))]
    full = _yaml_section("driftgate.yaml", "driftgate_controller")
    assert sorted(full) == sorted(node_names)
    tree.from_parameters(full)
    demo = _yaml_section("demo.yaml", "driftgate_controller")
    assert set(demo) <= set(node_names)
    assert tree.from_parameters({**demo, **_yaml_section("robots/demo/cartpole.yaml", "driftgate_controller")}).adapt.budget_s == 45.0


def test_the_replay_config_is_the_same_tree():
    import yaml

    from adapters.replay import ReplayConfig, load_replay_config
    assert ReplayConfig is Settings
    doc = yaml.safe_load((ROOT / "launch" / "replay.yaml").read_text())
    assert set(doc) <= set(Settings.model_fields) and load_replay_config(ROOT / "launch" / "replay.yaml") == Settings()


def test_every_setting_has_a_description():
    for name, f, _ in tree.leaves():
        assert f.description and "\n" not in f.description, name


def test_the_live_side_writes_a_job_without_torch(tmp_path):
    """The job contract is torch-free: building the pipeline's parts and writing a job imports no torch."""
    import subprocess
    import sys
    code = f"""
import sys
from pathlib import Path
import controller.pipeline
from controller.bootstrap import lqr_policy_genome
from controller.contracts import AdaptationJob
from controller.jobs import write_sandbox_job
from controller.settings import Settings
d = Path({str(tmp_path)!r}) / "j"
d.mkdir()
f = Settings().job_fields()
write_sandbox_job(AdaptationJob("j", d, "cartpole", 1, {{k: v for k, v in f.items() if k != "drift"}},
                                (lqr_policy_genome(),), None, None, {{"mass_scale": {{"pole_1": 2.0}}}}))
assert (d / "job.json").is_file()
print("torch" in sys.modules)
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "False"
