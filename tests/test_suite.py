"""Regression suite YAML: loading, defaults, clear errors for bad input, stress sampling, archive appends.

Real files in tmp_path, real plants for name validation; no rollouts here (see test_gate.py).
"""
from __future__ import annotations

import copy
import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import pytest
import yaml

from safety.gate_config import GateConfig
from safety.suite import SuiteError, load_suite, parse_suite
from safety.suite_archive import append_archive
from sim.drift_spec import DriftSpec, variant

DEFAULT = Path(__file__).resolve().parents[1] / "launch" / "regression_suite.yaml"
REVERSED = {"actuator_gain": {"slide": -1.0}}

BASE = {
    "version": 1, "name": "t", "plant": "cartpole",
    "defaults": {"horizon": 50, "seeds": 6},
    "scenarios": [
        {"name": "target", "tag": "target", "drift": REVERSED},
        {"name": "nominal", "tag": "nominal", "drift": {}},
        {"name": "stress", "tag": "stress", "drift": "target",
         "stress": {"seed": 3, "bounds": {"mass_scale": {"pole_1": [2.0, 4.0]}, "obs_noise": [0.0, 0.01]}}},
        {"name": "offset", "tag": "probe", "probe": {"kind": "initial_offset", "joints": {"slider": 0.5}},
         "min_metric": 0.5},
    ],
}


def doc(**changes) -> dict:
    d = copy.deepcopy(BASE)
    d.update(changes)
    return d


def with_scenario(i: int, drop: tuple[str, ...] = (), **changes) -> dict:
    d = copy.deepcopy(BASE)
    d["scenarios"][i].update(changes)
    for key in drop:
        d["scenarios"][i].pop(key)
    return d


def test_default_suite_loads_and_resolves():
    suite = load_suite(DEFAULT)
    assert suite.plant == "cartpole" and suite.sha256 and suite.path == str(DEFAULT)
    target = suite.targets[0]
    assert target.drift == variant("cartpole", "payload", "reversed_motor")
    assert target.margin == 0.05 and target.seeds == tuple(range(10)) and target.horizon == 300
    tags = {s.tag for s in suite.scenarios}
    assert {"target", "stress", "probe"} <= tags
    for s in suite.scenarios:
        if s.follows_target:
            assert s.drift == target.drift
    offset = suite.scenario("cart-offset")
    assert offset.metric == "recovery" and offset.probe.kind == "initial_offset"
    assert suite.scenario("pole-push").probe.at == 100


def test_defaults_and_tags_resolve():
    s = parse_suite(doc())
    assert s.gate == GateConfig()
    assert s.scenario("target").margin == GateConfig().margin and s.scenario("target").tolerance is None
    assert s.scenario("nominal").tolerance == GateConfig().tolerance
    assert s.scenario("stress").tolerance is None and s.scenario("stress").drift == DriftSpec.parse(REVERSED)
    assert s.scenario("offset").metric == "recovery"
    assert s.scenario("offset").drift.is_nominal and not s.scenario("offset").follows_target
    assert all(sc.seeds == tuple(range(6)) and sc.horizon == 50 for sc in s.scenarios)
    lim = s.scenario("target").limits
    assert dict((j, (lo, hi)) for j, lo, hi in lim.state)["slider"] == (-1.8, 1.8)


def test_stress_drifts_are_seeded_inside_bounds_and_differ_per_seed():
    sc = parse_suite(doc()).scenario("stress")
    drifts = [sc.drift_for(i) for i in range(len(sc.seeds))]
    again = [parse_suite(doc()).scenario("stress").drift_for(i) for i in range(len(sc.seeds))]
    assert drifts == again
    assert len({d.hash for d in drifts}) == len(drifts)
    for d in drifts:
        assert 2.0 <= d.value("mass_scale", "pole_1") <= 4.0
        assert 0.0 <= d.obs_noise <= 0.01
        assert d.value("actuator_gain", "slide") == -1.0  # the base (target) entry stays


def test_with_target_moves_targets_and_followers():
    s = parse_suite(doc())
    new = s.with_target({"mass_scale": {"pole_1": 2.0}})
    assert new.scenario("target").drift.value("mass_scale", "pole_1") == 2.0
    assert new.scenario("stress").drift.value("mass_scale", "pole_1") == 2.0
    assert new.scenario("nominal").drift.is_nominal and new.sha256 is None
    with pytest.raises(SuiteError, match="unknown body 'pole_9'"):
        s.with_target({"mass_scale": {"pole_9": 2.0}})


BAD = [
    (doc(colour="red"), "unknown key(s) ['colour']"),
    (doc(version=2), "unsupported suite version"),
    (doc(plant="toaster"), "unknown plant 'toaster'"),
    (doc(scenarios=[]), "non-empty list"),
    (doc(scenarios=[BASE["scenarios"][1]]), "no scenario is tagged 'target'"),
    (doc(defaults={"horizon": 10, "episodes": 3}), "unknown key(s) ['episodes']"),
    (doc(gate={"min_seeds": 1}), "gate.min_seeds: must be >= 2"),
    (doc(gate={"hurdle": {"seeds": 2, "speed": 1}}), "gate.hurdle: unknown key(s) ['speed']"),
    (doc(gate={"ci_level": 1.5}), "gate.ci_level: must be <= 0.999"),
    (with_scenario(0, metrc="return"), "scenarios[0] 'target': unknown key(s) ['metrc']"),
    (with_scenario(1, tag="regression"), "unknown tag 'regression'"),
    (with_scenario(1, name="target"), "duplicate scenario name(s) ['target']"),
    (with_scenario(1, name="bad name!"), "name must be"),
    (with_scenario(0, horizon=0), "scenarios[0] 'target'.horizon: must be >= 1"),
    (with_scenario(0, horizon=12.5), "expected an integer"),
    (with_scenario(0, seeds=[]), "non-empty list of seeds"),
    (with_scenario(0, seeds=[1, 1]), "seeds must be distinct"),
    (with_scenario(0, seeds=[-1]), "must be >= 0"),
    (with_scenario(0, drift={"mass_scale": {"pole_9": 2.0}}), "unknown body 'pole_9'"),
    (with_scenario(0, drift={"mass_scale": {"pole_1": -2.0}}), "scale must be > 0"),
    (with_scenario(0, drift={"wind": 3}), "unknown field(s) ['wind']"),
    (with_scenario(0, drop=("drift",), variant=["payload", "gremlins"]), "unknown cartpole variant(s) ['gremlins']"),
    (with_scenario(0, variant="payload"), "give either 'drift' or 'variant', not both"),
    (with_scenario(0, drift="target"), "a target scenario cannot take 'drift: target'"),
    (with_scenario(0, plant="walker"), "differs from the suite's 'cartpole'"),
    (with_scenario(0, tolerance=0.1), "takes 'margin'"),
    (with_scenario(1, margin=0.1), "'margin' applies to target scenarios only"),
    (with_scenario(1, min_metric=float("nan")), "expected a finite number"),
    (with_scenario(1, metric="happiness"), "unknown metric 'happiness'"),
    (with_scenario(1, metric="recovery"), "initial_offset probes only"),
    (with_scenario(1, probe={"kind": "push", "at": 5, "joints": {"slider": 1.0}}),
     "'probe' belongs to probe scenarios"),
    (with_scenario(2, stress={"seed": 1, "bounds": {"actuator_gain": {"slide": [-1.0, 1.0]}}}),
     "must not contain 0"),
    (with_scenario(2, stress={"seed": 1, "bounds": {"mass_scale": {"pole_1": [3.0, 2.0]}}}), "low 3.0 > high 2.0"),
    (with_scenario(2, stress={"seed": 1, "bounds": {"mass_scale": {"pole_9": [1.0, 2.0]}}}), "unknown body 'pole_9'"),
    (with_scenario(2, stress={"seed": 1}), "missing required key(s) ['bounds']"),
    (with_scenario(3, probe={"kind": "initial_offset", "joints": {"elbow": 0.5}}), "unknown key(s) ['elbow']"),
    (with_scenario(3, probe={"kind": "wiggle"}), "probe needs kind"),
    (with_scenario(3, probe={"kind": "target_jump", "at": 10, "phase": 1.0}, metric="tail_reward"),
     "needs a plant with a moving target"),
    (with_scenario(3, probe={"kind": "push", "at": 50, "joints": {"hinge_1": 1.0}}, metric="tail_reward"),
     "not inside the horizon"),
    (with_scenario(3, constraints={"state": {"elbow": [0, 1]}}), "unknown key(s) ['elbow']"),
    (with_scenario(3, constraints={"max_saturation": 2}), "'offset'.constraints.max_saturation: must be <= 1, got 2"),
    (with_scenario(0, metrc="return"), "unknown key(s) ['metrc'] (did you mean 'metric'?)"),
    (doc(gate={"hurdle": {"seeds": -1}}), "gate.hurdle.seeds: must be >= 0, got -1"),
    (doc(gate={"static": {"max_params": "many"}}), "gate.static.max_params: expected an integer, got 'many'"),
    (doc(defaults={"horizon": True}), "defaults.horizon: expected an integer, got True"),
    (with_scenario(3, constraints={"state": {"slider": [1, -1]}}), "low 1.0 must be < high -1.0"),
]


@pytest.mark.parametrize("bad, message", BAD, ids=[m for _, m in BAD])
def test_bad_suites_give_clear_errors(tmp_path, bad, message):
    with pytest.raises(SuiteError) as e:
        parse_suite(bad, source="suite.yaml")
    assert message in str(e.value)
    assert str(e.value).startswith("suite.yaml: ")


def test_file_level_errors(tmp_path):
    with pytest.raises(SuiteError, match="cannot read suite file"):
        load_suite(tmp_path / "missing.yaml")
    p = tmp_path / "s.yaml"
    p.write_text("plant: cartpole\nscenarios: [\n")
    with pytest.raises(SuiteError, match="not valid YAML"):
        load_suite(p)
    p.write_text("plant: cartpole\nplant: walker\nscenarios: []\n")
    with pytest.raises(SuiteError, match="duplicate key 'plant'"):
        load_suite(p)
    p.write_text("- just\n- a list\n")
    with pytest.raises(SuiteError, match="expected a mapping"):
        load_suite(p)


# ---------------------------------------------------------------------- append_archive

def write_suite(path: Path, d: dict | None = None, comment: str = "# keep me\n") -> Path:
    path.write_text(comment + yaml.safe_dump(d or doc(), sort_keys=False))
    return path


def test_append_archive_appends_validates_and_keeps_comments(tmp_path):
    p = write_suite(tmp_path / "suite.yaml")
    p.chmod(0o640)
    before = load_suite(p)
    sc = append_archive(p, REVERSED, genome_id="ab" * 16, note="promoted for the reversed motor")
    after = load_suite(p)
    assert p.read_text().startswith("# keep me\n")
    assert p.stat().st_mode & 0o777 == 0o640
    assert len(after.scenarios) == len(before.scenarios) + 1 and after.scenarios[-1] == sc
    assert sc.tag == "archive" and sc.drift == DriftSpec.parse(REVERSED)
    assert sc.seeds == before.targets[0].seeds and sc.horizon == before.targets[0].horizon
    assert sc.tolerance == before.gate.tolerance
    assert sc.source["genome_id"] == "ab" * 16 and sc.source["drift_hash"] == sc.drift.hash
    # idempotent: the same regime is archived once
    assert append_archive(p, DriftSpec.parse(REVERSED)) == sc
    assert len(load_suite(p).scenarios) == len(after.scenarios)
    second = append_archive(p, {"mass_scale": {"pole_1": 2.0}}, seeds=[0, 1, 2, 3, 4], tolerance=0.05)
    assert load_suite(p).scenarios[-1] == second and second.tolerance == 0.05


def test_append_archive_rewrites_when_scenarios_is_not_last(tmp_path):
    p = tmp_path / "suite.yaml"
    d = doc()
    d = {"scenarios": d.pop("scenarios"), **d}  # scenarios first: cannot append text at the end
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    sc = append_archive(p, REVERSED)
    assert load_suite(p).scenarios[-1] == sc


def test_append_archive_refuses_bad_input_and_leaves_the_file(tmp_path):
    p = write_suite(tmp_path / "suite.yaml")
    data, inode = p.read_bytes(), p.stat().st_ino
    with pytest.raises(SuiteError, match="unknown body 'pole_9'"):
        append_archive(p, {"mass_scale": {"pole_9": 2.0}})
    with pytest.raises(ValueError, match="unknown field"):
        append_archive(p, {"wind": 1.0})
    with pytest.raises(SuiteError, match="already exists"):
        append_archive(p, REVERSED, name="nominal")
    with pytest.raises(SuiteError, match="seeds must be distinct"):
        append_archive(p, REVERSED, seeds=[1, 1])
    assert p.read_bytes() == data and p.stat().st_ino == inode
    assert sorted(x.name for x in tmp_path.iterdir()) == [".suite.yaml.lock", "suite.yaml"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("plant: cartpole\nscenarios: []\n")
    with pytest.raises(SuiteError, match="non-empty list"):
        append_archive(bad, REVERSED)
    assert bad.read_text() == "plant: cartpole\nscenarios: []\n"


def _appender(path: str, start: int, count: int) -> None:
    for k in range(start, start + count):
        append_archive(path, {"mass_scale": {"pole_1": 1.0 + 0.01 * (k + 1)}})


def test_concurrent_appends_lose_nothing(tmp_path):
    p = write_suite(tmp_path / "suite.yaml")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_appender, args=(str(p), 10 * i, 4)) for i in range(2)]
    for pr in procs:
        pr.start()
    for pr in procs:
        pr.join(60)
        assert pr.exitcode == 0
    archives = [s for s in load_suite(p).scenarios if s.tag == "archive"]
    assert len(archives) == 8


def _append_forever(path: str, start: int) -> None:
    k = start
    while True:
        k += 1
        append_archive(path, {"mass_scale": {"pole_1": 1.0 + 1e-4 * k}})


def test_append_archive_is_atomic_under_sigkill(tmp_path):
    """Killed at random points while appending: the file always parses as a valid suite, each
    time with the scenarios of the previous run plus zero or more complete archive entries."""
    p = write_suite(tmp_path / "suite.yaml")
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(0)
    seen = len(load_suite(p).scenarios)
    for trial in range(6):
        pr = ctx.Process(target=_append_forever, args=(str(p), 1000 * trial))
        pr.start()
        time.sleep(rng.uniform(0.05, 0.4))
        os.kill(pr.pid, signal.SIGKILL)
        pr.join()
        suite = load_suite(p)  # never partial
        assert len(suite.scenarios) >= seen
        seen = len(suite.scenarios)
    assert seen > len(BASE["scenarios"])  # it did append
    leftovers = [x.name for x in tmp_path.iterdir() if x.name.endswith(".tmp")]
    # a temporary file of a killed write may remain (like the registry's orphans); never the suite itself
    assert all(n.startswith(".suite.yaml.") for n in leftovers)


def test_the_documented_example_is_a_valid_suite():
    import safety.suite
    block = safety.suite.__doc__.split("::\n\n", 1)[1].split("\n\n")[0]
    s = parse_suite(yaml.safe_load("\n".join(line[4:] for line in block.splitlines())))
    assert [sc.tag for sc in s.scenarios] == ["target", "nominal", "archive", "stress", "probe"]
