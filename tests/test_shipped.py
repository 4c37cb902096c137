"""Shipped files are found by one resolver (`controller.shipped`), and promotions never write to them.

The wheel and colcon installs themselves are tested in test_install.py; here the resolver's rules
and the gate's working copy of the suite (what `archive_on_promotion` appends to) are checked in
the checkout.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from safety.suite import SuiteError, load_suite
from safety.suite_archive import append_archive, working_suite
from controller import shipped

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "launch" / "regression_suite.yaml"
REVERSED = {"actuator_gain": {"slide": -1.0}}


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_shipped_names_resolve_in_the_checkout(monkeypatch, tmp_path):
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    assert shipped.shipped_file("launch/drift_monitor.yaml") == ROOT / "launch" / "drift_monitor.yaml"
    champ = ROOT / "sim" / "assets" / "champions" / "cartpole.safetensors"
    assert shipped.shipped_file("champions/cartpole.safetensors") == champ
    assert shipped.shipped_file("package://driftgate/champions/cartpole.safetensors") == champ
    assert shipped.shipped_file("sim/assets/champions/cartpole.safetensors") == champ
    with pytest.raises(FileNotFoundError, match="looked in"):
        shipped.shipped_file("launch/no_such_file.yaml")
    with pytest.raises(FileNotFoundError, match="not a shipped driftgate file"):
        shipped.shipped_file("../etc/passwd")


def test_resolve_prefers_the_working_directory_then_the_shipped_file(monkeypatch, tmp_path):
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    monkeypatch.chdir(tmp_path)
    # nothing here: the shipped file
    assert shipped.resolve("launch/regression_suite.yaml") == SUITE
    # a local file of the same name wins (a user's own launch/ directory)
    (tmp_path / "launch").mkdir()
    (tmp_path / "launch" / "regression_suite.yaml").write_text("mine")
    assert shipped.resolve("launch/regression_suite.yaml") == Path("launch/regression_suite.yaml")
    # ... unless the package:// form asks for the shipped one
    assert shipped.resolve("package://driftgate/launch/regression_suite.yaml") == SUITE
    # absolute paths and unknown relative ones come back as given (the caller's error names them)
    assert shipped.resolve(tmp_path / "x.yaml") == tmp_path / "x.yaml"
    assert shipped.resolve("nowhere/x.yaml") == Path("nowhere/x.yaml")


def test_ament_share_comes_first_when_the_package_is_in_the_index(monkeypatch, tmp_path):
    pytest.importorskip("ament_index_python")
    prefix = tmp_path / "install"
    (prefix / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (prefix / "share" / "ament_index" / "resource_index" / "packages" / "driftgate").write_text("")
    (prefix / "share" / "driftgate" / "launch").mkdir(parents=True)
    shutil.copy(ROOT / "launch" / "drift_monitor.yaml", prefix / "share" / "driftgate" / "launch")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))
    assert shipped.ament_share() == prefix / "share" / "driftgate"
    assert shipped.shipped_file("launch/drift_monitor.yaml") == prefix / "share" / "driftgate" / "launch" / \
        "drift_monitor.yaml"
    # a file the share does not hold falls through to the next place
    assert shipped.shipped_file("launch/regression_suite.yaml") == SUITE
    from controller.drift.config import load_config
    assert load_config().warmup_s > 0


def test_drift_monitor_default_comes_from_the_resolver(monkeypatch, tmp_path):
    """The monitor's default is looked up when it is needed, not fixed to the source tree."""
    from controller.drift import config
    own = tmp_path / "drift_monitor.yaml"
    doc = yaml.safe_load((ROOT / "launch" / "drift_monitor.yaml").read_text())
    doc["drift_monitor"]["ros__parameters"]["warmup_s"] = 12.5
    own.write_text(yaml.safe_dump(doc))
    monkeypatch.setattr(shipped, "candidates", lambda name: [own])
    assert config.load_config().warmup_s == 12.5


# ---------------------------------------------------------------------- the gate's working suite

def test_working_suite_copies_the_base_and_keeps_archived_regimes_across_restarts(tmp_path):
    base = tmp_path / "reviewed.yaml"
    shutil.copyfile(SUITE, base)
    dest = tmp_path / "registry" / "gate_suite.yaml"
    assert working_suite(base, dest) == dest
    assert dest.read_bytes() == base.read_bytes()
    append_archive(dest, REVERSED, genome_id="ab" * 16)        # a promotion
    before = _sha(base)
    # restart after the reviewed suite was edited: the edit arrives, the archive stays, once
    text = base.read_text().replace("name: cartpole-default", "name: cartpole-edited", 1)
    assert text != base.read_text()
    base.write_text(text)
    working_suite(base, dest)
    working_suite(base, dest)
    s = load_suite(dest)
    assert s.name == "cartpole-edited"
    archived = [x for x in s.scenarios if x.tag == "archive" and x.drift.as_dict() == REVERSED]
    assert len(archived) == 1
    assert _sha(base) != before and "archive-" not in base.read_text()
    with pytest.raises(SuiteError, match="must not be the base"):
        working_suite(base, base)


def test_a_promotion_leaves_the_shipped_suite_and_tracked_files_unchanged(tmp_path):
    pytest.importorskip("rclpy")
    from adapters.ros.controller_node import _gate_suite
    from controller.bootstrap import lqr_policy_genome
    from controller.contracts import PASS, GateOutcome
    from controller.jobs import FunctionGate
    from controller.orchestrator import Phase
    from test_orchestrator import Rig, candidate_runner

    def tracked_state() -> str:
        return subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "launch", "sim"],
                              cwd=ROOT, capture_output=True, text=True).stdout

    before, sha = tracked_state(), _sha(SUITE)
    reg = tmp_path / "state"
    suite = Path(_gate_suite("launch/regression_suite.yaml", str(reg), archive=True))
    assert suite == reg / "gate_suite.yaml"
    assert Path(_gate_suite("launch/regression_suite.yaml", str(reg), archive=False)).resolve() == SUITE
    gate = FunctionGate(lambda req: GateOutcome(PASS, ("better on the target",), predicted_reward=0.85))
    rig = Rig(tmp_path, candidate_runner(lqr_policy_genome(eps=0.06)), gate, archive_suite=suite)
    rig.run(0.5)
    rig.drift()
    rig.run(5.0)
    assert rig.orch.phase in (Phase.WATCH, Phase.WATCHING)
    assert any(e.get("event") == "archive_appended" for e in rig.events if isinstance(e, dict))
    assert [x.drift.as_dict() for x in load_suite(suite).scenarios if x.tag == "archive"][-1] == REVERSED
    assert _sha(SUITE) == sha and tracked_state() == before
    # the next start keeps what the promotion archived
    _gate_suite("launch/regression_suite.yaml", str(reg), archive=True)
    assert [x.drift.as_dict() for x in load_suite(suite).scenarios if x.tag == "archive"][-1] == REVERSED
