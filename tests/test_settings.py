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
               "drift": {"mass_scale": {"pole_1": 2.0}}, "min_generations": 3, "target_fraction": 0.9,
               "stress_draws": 4, "start_probes": True, "seed_rate": 0.05}
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
    adapt = tree.from_parameters({**demo, **_yaml_section("robots/demo/cartpole.yaml", "driftgate_controller")}).adapt
    assert (adapt.budget_s, adapt.min_generations, adapt.seed_rate) == (60.0, 5, 0.03)


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


# ---------------------------------------------------------------------- the tree's names downstream

def _consumers():
    """dataclass -> (the tree sections it takes settings from, its fields that are not settings)."""
    from controller.contracts import AdaptationJob
    from controller.guards import GuardConfig
    from controller.lifecycle import OrchestratorConfig
    from controller.runtime import RuntimeConfig
    return {
        RuntimeConfig: (("runtime",), {"act_dim", "act_low", "act_high", "clock_reset_after", "guard"}),
        GuardConfig: (("guard",), set()),
        OrchestratorConfig: (("orchestrator",), {"job", "archive_suite"}),
        AdaptJob: (("adapt",), {"seed", "max_evaluations", "target_fraction", "cf", "randomize", "requester",
                                "job_id", "telemetry_ticks", "telemetry_noise", "model_seed",
                                "gate_limits"}),   # from the suite (safety.command_limits), not a setting
        AdaptationJob: (("adapt",), {"job_id", "job_dir", "seed", "budgets", "seeds", "window", "drift_event"}),
    }


def _tree_name(field, own_sections):
    """The dotted setting a dataclass field carries under the one-name rule: a leaf of one of its own
    sections by its leaf name, a top-level setting by its name, another section's leaf as
    ``<section>_<leaf>``; None when the field names no setting."""
    top = {n for n, f in Settings.model_fields.items() if tree.model_of(f.annotation) is None}
    if field in top:
        return field
    for section in own_sections:
        if tree.field_info(f"{section}.{field}") is not None:
            return f"{section}.{field}"
    for section in Settings.model_fields:
        if field.startswith(section + "_") and tree.field_info(f"{section}.{field[len(section) + 1:]}"):
            return f"{section}.{field[len(section) + 1:]}"
    return None


def test_runtime_orchestrator_and_job_dataclasses_use_the_trees_names():
    """Every field of the dataclasses the tree feeds is a setting under its tree name (or is listed as
    not a setting): a field renamed on either side (stale_after_s, plant, drift_hint) fails here."""
    from dataclasses import fields
    for cls, (sections, not_settings) in _consumers().items():
        names = [f.name for f in fields(cls)]
        assert not_settings <= set(names), (cls.__name__, not_settings - set(names))
        stray = [n for n in names if n not in not_settings and _tree_name(n, sections) is None]
        assert not stray, f"{cls.__name__}: fields {stray} are not named like any setting of the tree"


def test_every_runtime_and_orchestrator_setting_reaches_its_dataclass():
    """The other direction: each setting of these sections is a field of its dataclass, or is read
    where the node/replay use it (listed here by name)."""
    from dataclasses import fields

    from controller.lifecycle import OrchestratorConfig
    from controller.runtime import RuntimeConfig
    elsewhere = {"runtime": {"rate_hz", "trigger", "mode", "canary_window_s", "canary_period_s", "canary_weight"},
                 "orchestrator": {"registry_path", "bootstrap_champion", "step_s"}}
    for section, cls in (("runtime", RuntimeConfig), ("orchestrator", OrchestratorConfig)):
        leaves = set(getattr(tree, f"{section.capitalize()}Settings").model_fields)
        missing = leaves - {f.name for f in fields(cls)} - elsewhere[section]
        assert not missing, f"{section}: settings {sorted(missing)} reach no field of {cls.__name__}"


def test_the_pipeline_copies_the_tree_into_the_runtime_under_the_same_names(tmp_path):
    from controller.pipeline import runtime_config, robot_joints
    st = validate({"runtime": {"stale_timeout_s": 0.25, "max_abs_input": 50.0, "burst_limit": 4,
                               "velocity_source": "differentiate", "safe_command": [0.5]}})
    info, joints = robot_joints(st)
    cfg = runtime_config(st, info, joints)
    for name in ("stale_timeout_s", "max_abs_input", "burst_limit", "velocity_source"):
        assert getattr(cfg, name) == getattr(st.runtime, name), name
    assert cfg.safe_command == (0.5,)
    with pytest.raises(SettingsError, match=r"^parameter runtime.safe_command: "):
        runtime_config(validate({"runtime": {"safe_command": [0.5, 0.5]}}), info, joints)


def test_an_old_job_json_key_is_refused_naming_the_new_one():
    with pytest.raises(ValueError, match=r"^job.json: key 'plant' was renamed: use 'robot'$"):
        AdaptJob.from_dict({"plant": "cartpole", "robot": "/robot_a"})
    with pytest.raises(ValueError, match=r"job.robot: unknown robot '/robot_a'.*job.requester"):
        AdaptJob.from_dict({"robot": "/robot_a"})
    job = AdaptJob.from_dict({"robot": "cartpole", "requester": "/robot_a", "seed_genomes": []})
    assert (job.robot, job.requester) == ("cartpole", "/robot_a")


# ---------------------------------------------------------------------- descriptions -> YAML comments

REGENERATE = ("driftgate settings dump --ros driftgate_controller --values launch/driftgate.yaml "
              "--out launch/driftgate.yaml")


def test_the_node_parameter_file_is_the_dump_of_its_own_values():
    """launch/driftgate.yaml is generated from the tree: every key under the tree's description of it.
    A description changed in the tree, a key or comment edited by hand, fails here."""
    from controller.settings_doc import render
    text = (ROOT / "launch" / "driftgate.yaml").read_text()
    values = tree.from_parameters(_yaml_section("driftgate.yaml", "driftgate_controller"))
    expected = render(values, ros_node="driftgate_controller")
    if text != expected:
        got, want = text.splitlines(), expected.splitlines()
        i = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        pytest.fail(f"launch/driftgate.yaml line {i + 1} differs from the tree's dump: "
                    f"{got[i] if i < len(got) else '<end>'!r} != {want[i] if i < len(want) else '<end>'!r}; "
                    f"regenerate with `{REGENERATE}`")


def _comments_and_keys(text):
    """(key path, the comment lines right above it) for every key of a commented YAML dump."""
    out, stack, comment = [], [], []
    for line in text.splitlines():
        body = line.lstrip()
        indent = len(line) - len(body)
        if not body:
            comment = []
            continue
        if body.startswith("#"):
            comment.append(body[1:].strip())
            continue
        key = body.split(":", 1)[0]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        out.append((".".join(k for _, k in stack), " ".join(comment)))
        comment = []
    return out


def test_settings_dump_prints_each_key_under_its_description():
    import yaml
    from typer.testing import CliRunner

    from adapters.cli import app
    r = CliRunner().invoke(app, ["settings", "dump"])
    assert r.exit_code == 0, r.output
    assert validate(yaml.safe_load(r.stdout)) == Settings()          # the defaults, as a valid tree
    keys = dict(_comments_and_keys(r.stdout))
    leaves = {name: f for name, f, _ in tree.leaves()}
    assert set(leaves) <= set(keys)
    for name, f in leaves.items():
        assert keys[name] == f.description, name
    r = CliRunner().invoke(app, ["settings", "dump", "--section", "adapt", "--robot", "walker"])
    assert r.exit_code == 0, r.output
    doc = yaml.safe_load(r.stdout)
    assert set(doc) == {"adapt"} and doc["adapt"] == Settings().adapt.model_dump()
    r = CliRunner().invoke(app, ["settings", "dump", "--section", "runtime", "--robot", "walker"])
    from sim.observation import plant_info
    assert yaml.safe_load(r.stdout)["runtime"]["joint_names"] == list(plant_info("walker")["joint_names"])


@pytest.mark.parametrize("args, needle", [
    (["--section", "runtimee"], "--section: unknown section 'runtimee'"),
    (["--ros", "n", "--section", "replay"], "--section: unknown section 'replay'"),
    (["--robot", "toaster"], "--robot"),
    (["--values", "/no/such/file.yaml"], "--values"),
])
def test_settings_dump_bad_input_is_one_line(args, needle):
    from typer.testing import CliRunner

    from adapters.cli import app
    r = CliRunner().invoke(app, ["settings", "dump", *args])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.stderr


def test_settings_dump_regenerates_the_node_file(tmp_path):
    """The command the failure message above names writes exactly the shipped file."""
    from typer.testing import CliRunner

    from adapters.cli import app
    out = tmp_path / "driftgate.yaml"
    r = CliRunner().invoke(app, ["settings", "dump", "--ros", "driftgate_controller", "--values",
                                 str(ROOT / "launch" / "driftgate.yaml"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_text() == (ROOT / "launch" / "driftgate.yaml").read_text()
