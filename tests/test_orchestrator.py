"""The adaptation lifecycle without ROS: a fake clock, explicit steps, a real registry, fake or real
(child-process) sandbox and gate."""
import json
import math
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from controller.bootstrap import bootstrap_registry, lqr_policy_genome
from controller.contracts import FAIL, INCONCLUSIVE, PASS, AdaptationResult, GateOutcome
from controller.jobs import (FunctionGate, ProcessGate, SandboxRunner, SubprocessRunner, window_to_telemetry,
                             write_sandbox_job)
from controller.orchestrator import TRANSITIONS, Orchestrator, OrchestratorConfig, OrchestratorError, Phase
from controller.guards import GuardConfig
from sim.observation import make_observation_map
from controller.runtime import ControllerRuntime, RuntimeConfig
from safety.registry import Registry
from sim.genome import save_genome

JOINTS = ("slider", "hinge_1")


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


class FakeRunner:
    """Answers after `polls` polls with `make(job)` (an AdaptationResult)."""

    def __init__(self, make, polls=2):
        self.make, self.polls, self.jobs, self._left, self.cancelled = make, polls, [], None, 0
        self.status = "idle"

    def start(self, job):
        write_sandbox_job(job)
        self.jobs.append(job)
        self._left = self.polls
        self.status = "running"

    def poll(self):
        if self._left is None:
            return None
        self._left -= 1
        if self._left > 0:
            return None
        self._left = None
        self.status = "done"
        return self.make(self.jobs[-1])

    def cancel(self):
        self.cancelled += 1
        self._left = None


def candidate_runner(genome, polls=2):
    def make(job):
        path = job.job_dir / "candidate.safetensors"
        save_genome(genome.with_lineage(parent_id=job.seed_ids[0]), path)
        return AdaptationResult(True, (path,), {"actuator_gain": {"slide": -1.0}}, result={"status": "ok"})
    return FakeRunner(make, polls)


class Rig:
    """Registry (LQR champion, stable) + runtime + orchestrator + a fake clock and a fake robot."""

    def __init__(self, tmp_path, runner, gate, **cfg):
        self.clock = Clock()
        self.root = tmp_path / "registry"
        self.champion_id = bootstrap_registry(self.root)
        self.registry = Registry(self.root, actor="test-orchestrator")
        guard = GuardConfig.from_names(JOINTS, {"slider": [-1.5, 1.5]}, max_divergence=0.5)
        self.rt = ControllerRuntime(RuntimeConfig(joint_names=JOINTS, act_dim=1, act_low=(-1.0,), act_high=(1.0,),
                                                  guard=guard, stale_timeout_s=0.5),
                                    make_observation_map("cartpole"), clock=self.clock)
        self.events = []
        defaults = dict(post_alarm_s=0.0, shadow_s=2.0, shadow_min_samples=50, shadow_timeout_s=10.0, canary_weights=(0.25, 1.0),
                        canary_step_s=1.0, watch_s=3.0, watch_min_samples=50, retry_backoff_s=5.0, refresh_s=0.5)
        defaults.update(cfg)
        self.orch = Orchestrator(OrchestratorConfig(robot="cartpole", job_root=tmp_path / "jobs", **defaults),
                                 self.registry, self.rt, runner, gate, emit=self.events.append, clock=self.clock)
        self.k = 0

    def run(self, seconds, reward=0.9, dt=0.01, step_every=10):
        """Feed joint states, rewards and ticks at 100 Hz; step the orchestrator at 10 Hz."""
        outs = []
        for _ in range(int(round(seconds / dt))):
            self.k += 1
            self.clock.t += dt
            t = self.clock.t
            q = (0.2 * math.sin(0.7 * t), 0.05 * math.sin(2.3 * t))
            v = (0.14 * math.cos(0.7 * t), 0.115 * math.cos(2.3 * t))
            self.rt.ingest(t, list(JOINTS), list(q), list(v), now=t)
            if reward is not None:
                self.rt.ingest_reward(reward)
            outs.append(self.rt.tick(now=t))
            if self.k % step_every == 0:
                self.orch.step()
        return outs

    def run_until(self, phase, max_s, **kw):
        for _ in range(int(max_s / 0.1)):
            if self.orch.phase is phase:
                return
            self.run(0.1, **kw)
        assert self.orch.phase is phase, (self.orch.phase, self.transitions())

    def drift(self):
        self.rt.drift_events.append({"t": self.clock.t, "detectors": ["ph:one_step"], "window_ticks": 0})

    def transitions(self):
        return [(e["from"], e["to"]) for e in self.events if e["event"] == "transition"]

    def actions(self):
        return [r.action for r in self.registry.history()]


def test_transition_table_is_closed_and_illegal_edges_raise(tmp_path):
    for a, b in TRANSITIONS:
        assert isinstance(a, Phase) and isinstance(b, Phase) and a != b
    rig = Rig(tmp_path, None, None)
    with pytest.raises(OrchestratorError):
        rig.orch._to(Phase.PROMOTED, 0.0, "no")


def test_full_lifecycle_drift_to_promotion_and_a_clean_watch(tmp_path):
    cand = lqr_policy_genome(eps=0.06)          # a different genome with nearly the same actions
    runner = candidate_runner(cand)
    gate = FunctionGate(lambda req: GateOutcome(PASS, ("better on the target",), predicted_reward=0.85))
    rig = Rig(tmp_path, runner, gate)
    rig.run(0.5)
    assert rig.orch.phase is Phase.WATCHING and rig.orch.champion_id == rig.champion_id
    rig.drift()
    rig.run(0.2)
    assert rig.orch.phase in (Phase.ADAPTING, Phase.GATING, Phase.SHADOW)
    job = runner.jobs[0]
    spec = json.loads((job.job_dir / "job.json").read_text())
    assert spec["robot"] == "cartpole" and spec["seed_genomes"] == [
        {"file": f"seeds/{rig.champion_id}.safetensors", "id": rig.champion_id}]
    assert (job.job_dir / spec["seed_genomes"][0]["file"]).is_file()
    rig.run(0.5)
    assert rig.orch.phase is Phase.SHADOW
    cid = rig.orch.candidate_id
    assert rig.registry.show(cid).status == "shadow" and rig.rt.slot.candidate.genome_id == cid
    outs = rig.run(2.0)
    assert rig.orch.phase is Phase.CANARY and rig.registry.show(cid).status == "canary"
    assert any(o.share == 0.25 for o in outs[-5:])
    rig.run(1.0)
    assert rig.rt.slot.canary.weight == 1.0
    rig.run(1.1)
    assert rig.orch.phase is Phase.WATCH
    assert rig.rt.slot.champion.genome_id == cid and rig.rt.slot.candidate is None   # swapped
    assert rig.registry.champion_id() == cid
    rig.run(3.2, reward=0.84)
    assert rig.orch.phase is Phase.WATCHING
    assert rig.registry.show(cid).stable
    assert rig.transitions() == [("idle", "watching"), ("watching", "adapting"), ("adapting", "gating"),
                                 ("gating", "shadow"), ("shadow", "canary"), ("canary", "promoted"),
                                 ("promoted", "watch"), ("watch", "watching")]
    assert rig.actions()[-6:] == ["add", "gate_report", "set_status", "set_status", "promote", "mark_stable"]
    add_row = [r for r in rig.registry.history(cid) if r.action == "add"][0]
    assert add_row.evidence_obj["evidence"]["drift_event"]["detectors"] == ["ph:one_step"]
    assert rig.registry.verify().ok
    json.dumps(rig.events)                      # events are plain JSON (the ROS events topic)


def test_promoted_regime_is_archived_in_the_regression_suite(tmp_path):
    import shutil

    from safety.suite import load_suite
    suite = tmp_path / "suite.yaml"
    shutil.copyfile(Path(__file__).resolve().parents[1] / "launch" / "regression_suite.yaml", suite)
    before = [s.name for s in load_suite(suite).scenarios if s.tag == "archive"]
    gate = FunctionGate(lambda req: GateOutcome(PASS, ("better on the target",), predicted_reward=0.85))
    rig = Rig(tmp_path, candidate_runner(lqr_policy_genome(eps=0.06)), gate, archive_suite=suite)
    rig.run(0.5)
    rig.drift()
    rig.run(5.0)
    assert rig.orch.phase in (Phase.WATCH, Phase.WATCHING)
    archived = [s for s in load_suite(suite).scenarios if s.tag == "archive" and s.name not in before]
    assert len(archived) == 1 and archived[0].drift.as_dict() == {"actuator_gain": {"slide": -1.0}}
    assert any(e.get("event") == "archive_appended" for e in rig.events if isinstance(e, dict))


def test_gate_fail_rejects_and_the_champion_never_changes(tmp_path):
    runner = candidate_runner(lqr_policy_genome(eps=0.07))
    rig = Rig(tmp_path, runner, FunctionGate(lambda req: GateOutcome(FAIL, ("worse on archive",))))
    rig.run(0.2)
    rig.drift()
    rig.run(1.0)
    assert rig.orch.phase is Phase.WATCHING and rig.orch.counters["gate_fail"] == 1
    cid = rig.registry.list("rejected")[0].id
    assert rig.registry.gate_reports(cid)[0].verdict == FAIL
    assert rig.registry.champion_id() == rig.champion_id == rig.rt.slot.champion.genome_id
    rig.drift()                                  # inside the backoff: ignored
    rig.run(0.3)
    assert len(runner.jobs) == 1 and rig.orch.counters["drift_ignored"] == 1


def test_inconclusive_gate_holds(tmp_path):
    runner = candidate_runner(lqr_policy_genome(eps=0.08))
    rig = Rig(tmp_path, runner, FunctionGate(lambda req: GateOutcome(INCONCLUSIVE, ("too few seeds",))))
    rig.run(0.2)
    rig.drift()
    rig.run(1.0)
    assert rig.orch.phase is Phase.WATCHING and rig.orch.counters["gate_hold"] == 1
    assert [g.status for g in rig.registry.list()] == ["champion", "candidate"]


def test_sandbox_failure_keeps_the_champion(tmp_path):
    runner = FakeRunner(lambda job: AdaptationResult(False, error="sandbox crashed"))
    rig = Rig(tmp_path, runner, FunctionGate(lambda req: GateOutcome(PASS)))
    rig.run(0.2)
    rig.drift()
    rig.run(0.5)
    assert rig.orch.phase is Phase.WATCHING and rig.orch.counters["job_failures"] == 1
    assert ("adapting", "watching") in rig.transitions()
    assert rig.orch.champion_id == rig.champion_id


def test_sandbox_returning_the_champion_unchanged_is_not_gated(tmp_path):
    """On telemetry that looks nominal the evolution stops at once and answers with the champion
    itself: nothing to judge, not a failure, no registry error."""
    def make(job):
        path = job.job_dir / "candidate.safetensors"
        save_genome(job.seeds[0], path)
        return AdaptationResult(True, (path,), {}, result={"status": "ok", "candidate_id": job.seeds[0].id})
    rig = Rig(tmp_path, FakeRunner(make), FunctionGate(lambda req: GateOutcome(PASS)))
    rig.run(0.2)
    rig.drift()
    rig.run(0.5)
    assert rig.orch.phase is Phase.WATCHING and rig.orch.counters["job_failures"] == 0
    assert rig.orch.counters["errors"] == 0 and rig.orch.champion_id == rig.champion_id
    assert [g.status for g in rig.registry.list()] == ["champion"]
    assert "unchanged" in rig.orch.history[-1]["reason"]


def test_hung_sandbox_process_is_killed_at_its_budget(tmp_path):
    runner = SubprocessRunner([sys.executable, "-c", "import time; time.sleep(120)"], timeout_s=1.0)
    rig = Rig(tmp_path, runner, FunctionGate(lambda req: GateOutcome(PASS)))
    rig.run(0.2)
    rig.drift()
    rig.run(0.2)
    assert rig.orch.phase is Phase.ADAPTING and runner.status == "running"
    import time
    deadline = time.monotonic() + 30
    while rig.orch.phase is Phase.ADAPTING and time.monotonic() < deadline:
        time.sleep(0.2)
        rig.orch.step()
    assert rig.orch.phase is Phase.WATCHING
    assert "killed" in rig.orch.history[-1]["evidence"]["error"]
    assert runner.status == "failed: timeout"


def test_canary_guard_violation_aborts_back_to_the_champion(tmp_path):
    bad = lqr_policy_genome(sign=-1.0)           # pushes the other way: diverges once it has authority
    rig = Rig(tmp_path, candidate_runner(bad), FunctionGate(lambda req: GateOutcome(PASS)),
              shadow_max_divergence=10.0)   # let it through shadow to exercise the canary guard
    rig.run(0.2)
    rig.drift()
    rig.run(5.0)
    assert rig.orch.counters["canary_aborts"] == 1 and rig.orch.phase is Phase.WATCHING
    assert ("canary", "watching") in rig.transitions()
    rejected = rig.registry.list("rejected")
    assert len(rejected) == 1
    row = [r for r in rig.registry.history(rejected[0].id) if r.action == "set_status"][-1]
    assert row.to_status == "rejected" and row.evidence_obj["evidence"]["trip"]["reason"] == "divergence"
    assert rig.rt.slot.candidate is None and rig.rt.slot.champion.genome_id == rig.champion_id
    assert rig.registry.champion_id() == rig.champion_id


def test_shadow_divergence_rejects_before_any_authority(tmp_path):
    rig = Rig(tmp_path, candidate_runner(lqr_policy_genome(sign=-1.0)), FunctionGate(lambda req: GateOutcome(PASS)),
              shadow_max_divergence=0.01)
    rig.run(0.2)
    rig.drift()
    outs = rig.run(3.0)
    assert rig.orch.counters["shadow_fail"] == 1 and ("shadow", "watching") in rig.transitions()
    assert all(o.share == 0.0 for o in outs)


def test_degradation_after_promotion_rolls_back_to_the_stable_ancestor(tmp_path):
    cand = lqr_policy_genome(eps=0.06)
    rig = Rig(tmp_path, candidate_runner(cand),
              FunctionGate(lambda req: GateOutcome(PASS, predicted_reward=0.9)))
    rig.run(0.2)
    rig.drift()
    rig.run_until(Phase.WATCH, 10.0)
    cid = rig.registry.champion_id()
    assert cid != rig.champion_id
    rig.run_until(Phase.WATCHING, 5.0, reward=0.3)
    # authority is back on the stable ancestor at once (the next tick runs it)
    assert rig.rt.slot.champion.genome_id == rig.champion_id
    assert rig.registry.champion_id() == rig.champion_id
    assert rig.registry.show(cid).status == "rejected"
    assert ("watch", "rollback") in rig.transitions() and rig.orch.phase is Phase.WATCHING
    row = rig.registry.history()[-1]
    assert row.action == "rollback" and row.evidence_obj["evidence"]["live_reward"] == pytest.approx(0.3, abs=0.05)
    assert rig.registry.verify().ok


def test_operator_promote_and_rollback(tmp_path):
    rig = Rig(tmp_path, candidate_runner(lqr_policy_genome(eps=0.06)),
              FunctionGate(lambda req: GateOutcome(PASS, predicted_reward=0.9)), shadow_s=100.0,
              shadow_timeout_s=200.0)
    ok, msg = rig.orch.promote_now()
    assert not ok and "nothing to promote" in msg
    rig.run(0.2)
    ok, msg = rig.orch.rollback_now()
    assert not ok and "no stable ancestor" in msg          # the bootstrap champion is the root
    rig.drift()
    rig.run(0.6)
    assert rig.orch.phase is Phase.SHADOW
    cid = rig.orch.candidate_id
    ok, msg = rig.orch.promote_now()
    assert ok, msg
    assert rig.orch.phase is Phase.WATCH and rig.rt.slot.champion.genome_id == cid
    ok, msg = rig.orch.rollback_now()
    assert ok, msg
    assert rig.rt.slot.champion.genome_id == rig.champion_id == rig.registry.champion_id()
    status = rig.orch.status()
    assert status["phase"] == "watching" and status["counters"]["rollbacks"] == 1
    json.dumps(status)


def test_no_authority_means_no_adaptation(tmp_path):
    runner = candidate_runner(lqr_policy_genome(eps=0.06))
    rig = Rig(tmp_path, runner, FunctionGate(lambda req: GateOutcome(PASS)))
    rig.orch.authority_ok = False
    rig.run(0.2)
    rig.drift()
    rig.run(0.5)
    assert not runner.jobs and any(e["event"] == "adaptation_held" for e in rig.events)


def test_external_champion_change_is_picked_up(tmp_path):
    rig = Rig(tmp_path, None, None)
    rig.run(0.2)
    other = lqr_policy_genome(eps=0.04)
    gid = rig.registry.add(other, parent_id=rig.champion_id)
    rig.registry.promote(gid, force=True, reason="operator CLI")
    rig.run(1.0)
    assert rig.rt.slot.champion.genome_id == gid


SUITE = textwrap.dedent("""
    version: 1
    name: tiny
    plant: cartpole
    defaults: {horizon: 100, seeds: 5, metric: mean_reward}
    gate:
      min_seeds: 5
      resamples: 300
      hurdle: {seeds: 2, horizon: 50, margin: 0.1}
    scenarios:
      - {name: target, tag: target, drift: {actuator_gain: {slide: -1.0}}, margin: 0.05}
""")


def test_policy_champion_sandbox_and_real_gate_in_child_processes(tmp_path):
    """The real contract end to end: the one sandbox entry point, for a policy-kind champion (CMA-ES
    from the champion, its own process), returns a candidate; the gate process judges it with
    safety.gate and attaches the report."""
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    runner = SandboxRunner()
    rig = Rig(tmp_path, runner, None, job={"budget_s": 60.0, "max_generations": 2, "population": 2, "children": 1,
                                           "horizon": 40, "drift": {"actuator_gain": {"slide": -1.0}}})
    rig.orch.gate = ProcessGate(rig.root, suite, tmp_path / "gate", timeout_s=120.0)
    rig.run(0.2)
    rig.drift()
    rig.run(0.2)
    import time
    deadline = time.monotonic() + 150
    while rig.orch.phase in (Phase.ADAPTING, Phase.GATING) and time.monotonic() < deadline:
        time.sleep(0.25)
        rig.orch.step()
    job = runner._job or rig.orch._job
    result = json.loads((job.job_dir / "result.json").read_text())
    assert result["status"] == "ok" and result["parent_id"] == rig.champion_id, result
    assert result["method"] == "cmaes" and json.loads((job.job_dir / "outcome.json").read_text())["status"] == "ok"
    cands = [g for g in rig.registry.list() if g.id == result["candidate_id"]]
    assert cands and cands[0].parent_id == rig.champion_id
    reports = rig.registry.gate_reports(result["candidate_id"])
    assert len(reports) == 1 and reports[0].verdict in (PASS, FAIL, INCONCLUSIVE)
    # a small CMA-ES step from the nominal LQR cannot balance an inverted motor: not promoted
    assert rig.registry.champion_id() == rig.champion_id
    assert rig.registry.verify().ok


def _window(n=80, segments=(0, 1)):
    """A DriftEvent-like telemetry window of a cartpole run (two segments: the first is dropped)."""
    from controller.drift import TelemetryWindow
    from sim.plants import make_plant
    plant = make_plant("cartpole", seed=1)
    ctrl = plant.nominal_controller()
    obs, acts, ts = [], [], []
    o = plant.observe()
    for k in range(n):
        a = ctrl(o)
        obs.append(o)
        acts.append(a)
        ts.append(k * plant.control_dt)
        o, _ = plant.act(a)
    seg = [segments[0]] * 10 + [segments[1]] * (n - 10)
    return TelemetryWindow(np.array(ts), np.array(obs), np.array(acts), np.full(n, np.nan), np.array(seg)), plant


def test_window_to_telemetry_keeps_every_segment_and_marks_the_breaks():
    """Every contiguous segment is kept (a robot that keeps falling gives several short ones) and the
    tick after which a new segment starts is a break no sysid replay window crosses."""
    w, plant = _window()
    tel = window_to_telemetry("cartpole", w, plant.control_dt)
    assert tel["qpos"].shape == (80, 2) and tel["qvel"].shape == (80, 2) and tel["actions"].shape == (79, 1)
    np.testing.assert_allclose(tel["qpos"][:, 1], np.arctan2(w.obs[:, 2], w.obs[:, 1]))
    np.testing.assert_allclose(tel["actions"], w.action[:-1])
    assert tel["breaks"].tolist() == [9]
    from sim.sysid import Telemetry
    t = Telemetry(tel["qpos"], tel["qvel"], tel["actions"], float(tel["control_dt"]), breaks=tel["breaks"])
    starts = t.window_starts(25)
    assert starts.size and all(s > 9 or s + 25 - 1 < 9 for s in starts)   # no window replays 9 -> 10
    assert not window_to_telemetry("cartpole", _window(segments=(0, 0))[0], plant.control_dt).get("breaks")


def test_sandbox_job_directory_is_accepted_by_sim_sandbox(tmp_path):
    """The job directory SandboxRunner writes passes the real sandbox's own validation."""
    from sim import sandbox
    from controller.contracts import AdaptationJob
    from controller.jobs import write_sandbox_job
    w, _ = _window(n=120)
    champ = lqr_policy_genome()
    job = AdaptationJob("j1", tmp_path / "j1", "cartpole", 3, {"budget_s": 30.0, "max_generations": 5,
                                                                "population": 4, "children": 1, "horizon": 100},
                        (champ,), w,
                        {"detectors": ["ph:one_step"]}, None)
    job.job_dir.mkdir()
    write_sandbox_job(job)
    parsed, seeds, tel = sandbox.read_job(job.job_dir)
    assert parsed.robot == "cartpole" and parsed.max_generations == 5 and parsed.budget_s == 30.0
    assert [g.id for g in seeds] == [champ.id] and tel.ticks == 119 and tel.breaks.tolist() == [9]
