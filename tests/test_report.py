"""The decisions format (adapters.decisions) and the reports rendered from it (adapters.report):
a live run's decisions (written the way a node writes them) and a replay's render the same way."""
import json
import re
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from adapters import cli_replay
from sim.atomicio import canonical_json
from adapters.decisions import (FORMAT, Decision, DecisionFormatError, DecisionWriter,
                                from_orchestrator_event, make_header, read_decisions)
from adapters.report import build_report, render_report

DRIFT = {"mass_scale": {"pole_1": 3.0}, "actuator_gain": {"slide": -1.0}}
CHAMP, CAND, CAND2 = "c" * 32, "d" * 32, "e" * 32


def tr(frm, to_phase, reason, champion=CHAMP, candidate=None, **evidence):
    return {"event": "transition", "time": 1.7e9, "phase": to_phase, "champion": champion, "candidate": candidate,
            "from": frm, "to": to_phase, "reason": reason, "evidence": evidence}


def live_run(path, *, with_gate_records=True):
    """A live run's decisions.jsonl, written as a node would: samples from a timer, orchestrator
    events through `write_event`, gate and adaptation records when the answers come."""
    with DecisionWriter(path, make_header("live", "cartpole", counterfactual=False, seed=0)) as w:
        for k in range(120):
            t = float(k)
            r = 0.95 if k <= 40 else (0.2 if k <= 76 else 0.9)    # a sample covers the second before it
            phase = "watching" if k < 41 else "adapting" if k < 60 else "watching"
            w.write(t, "sample", reward=r, stats={"ph:one_step": 0.1 if k != 40 else 2.5, "s:one_step": 1.0},
                    phase=phase, monitor="monitoring", canary_weight=None)
            if k == 0:
                w.write_event({"event": "champion_loaded", "genome": CHAMP, "champion": CHAMP, "time": 1.7e9}, t)
                w.write_event(tr("idle", "watching", "champion in force"), t)
                w.write(t, "drift_injected", drift={}, hash="h0")
            if k == 40:
                w.write(40.0, "drift_injected", drift=DRIFT, hash="h1")
                w.write_event({"event": "drift", "time": 1.7e9, "drift": {
                    "channels": ["one_step"], "detectors": ["ph:one_step"], "magnitude": {"ph:one_step": 2.5},
                    "onset_t": 40.0}}, 40.3)
                w.write_event(tr("watching", "adapting", "drift detected: sandbox job started", job="job-1"), 40.5)
            if k == 60:
                w.write(60.0, "adaptation", job="job-1", ok=True, candidate=CAND, return_before=20.0,
                        return_after=280.0, nominal_return=290.0, target_return=261.0,
                        generations=[{"gen": i, "best": 100.0 + 60 * i, "mean": 50.0 + 40 * i} for i in range(4)],
                        drift_estimate=DRIFT)
                w.write_event(tr("adapting", "gating", "candidate registered, gate started", candidate=CAND), 60.0)
                if with_gate_records:
                    w.write(70.0, "gate", candidate=CAND, verdict="PASS", reasons=["better on the target"],
                            predicted_reward=0.88, stage="suite",
                            scenarios=[{"name": "target", "tag": "target", "metric": "mean_reward", "n": 10,
                                        "candidate": 0.88, "incumbent": 0.12, "diff_mean": 0.76,
                                        "diff_ci": [0.7, 0.8], "status": "pass"},
                                       {"name": "stress", "tag": "stress", "metric": "mean_reward", "n": 10,
                                        "candidate": 0.85, "incumbent": 0.1, "diff_mean": 0.75,
                                        "diff_ci": [0.6, 0.8], "status": "pass"}])
                w.write_event(tr("gating", "shadow", "gate PASS", candidate=CAND, reasons=["better on the target"],
                                 predicted_reward=0.88), 70.0)
                w.write_event(tr("shadow", "canary", "shadow comparison passed", candidate=CAND,
                                 shadow={"n": 1000, "divergence_mean": 0.05}), 72.0)
                w.write_event({"event": "canary_step", "time": 1.7e9, "weight": 1.0, "step": 1, "champion": CHAMP,
                               "candidate": CAND}, 74.0)
                w.write_event(tr("canary", "promoted", "canary completed without a guard violation", champion=CAND,
                                 replaced=CHAMP), 76.0)
                w.write_event(tr("promoted", "watch", "watching live performance after promotion", champion=CAND), 76.0)
            if k == 100:
                w.write_event(tr("watch", "watching", "watch period clean: champion marked stable", champion=CAND),
                              100.0)
            if k == 110:
                w.write_event(tr("watching", "rollback", "operator request (~/rollback)", champion=CHAMP,
                                 to=CHAMP, replaced=CAND), 110.0)
                w.write_event(tr("rollback", "watching", "authority back on the stable ancestor"), 110.0)
        w.write(120.0, "end", phase="watching", counters={"promotions": 1, "rollbacks": 1}, duration_s=120.0,
                monitor={"alarms": 1})
    return path


def test_decision_writer_reader_roundtrip(tmp_path):
    p = tmp_path / "decisions.jsonl"
    h = make_header("live", "cartpole", counterfactual=False, config={"a": (1, 2)}, seed=3)
    with DecisionWriter(p, h) as w:
        w.write(1.23456789, "alarm", channels=("one_step",), magnitude={"x": np.float64(1.5)}, bad=math.nan)
        rec = w.write(0.5, "sample", reward=np.float32(0.25))        # late: keeps the file sorted
        assert rec.t == 1.234568
        with pytest.raises(ValueError):
            w.write(2.0, "header")
    lines = p.read_text().splitlines()
    assert json.loads(lines[0])["format"] == FORMAT and json.loads(lines[0])["config"] == {"a": [1, 2]}
    assert lines[1] == canonical_json({"t": 1.234568, "kind": "alarm", "channels": ["one_step"],
                                  "magnitude": {"x": 1.5}, "bad": None})
    assert " " not in lines[1] and lines[1].index('"bad"') < lines[1].index('"channels"')   # sorted, compact
    log = read_decisions(tmp_path)                                     # a directory works too
    assert [r.kind for r in log.records] == ["alarm", "sample"] and log.header["seed"] == 3
    assert log.records[1].t == 1.234568 and log.records[1].data["reward"] == 0.25
    assert Decision.from_dict(log.records[0].to_dict()) == log.records[0]


def test_orchestrator_events_map_to_records():
    d = from_orchestrator_event(tr("watching", "adapting", "drift", job="job-1"), 3.0)
    assert d.kind == "transition" and d.data["to"] == "adapting" and "time" not in d.data
    d = from_orchestrator_event({"event": "drift", "time": 1.0, "drift": {"channels": ["a"], "detectors": ["ph:a"],
                                                                          "magnitude": {"ph:a": 3.0}}}, 4.0)
    assert d.kind == "alarm" and d.data["score"] == 3.0
    assert from_orchestrator_event({"event": "drift", "drift": {}}, 4.0, alarms=False) is None
    d = from_orchestrator_event({"event": "adaptation_held", "reason": "no authority", "node": "/x"}, 5.0)
    assert d.kind == "event" and d.data == {"event": "adaptation_held", "reason": "no authority"}


def test_bad_decisions_files(tmp_path):
    p = tmp_path / "decisions.jsonl"
    for text, match in (("", "empty"), ("not json\n", ":1: not JSON"), ('{"kind": "sample", "t": 1}\n', "header"),
                        ('{"kind": "header", "format": "other/9"}\n', "unknown format"),
                        (canonical_json(make_header("live", "x", counterfactual=False)) + '\n{"t": 1}\n', ":2: .*kind"),
                        (canonical_json(make_header("live", "x", counterfactual=False)) + '\n{"t": "a", "kind": "x"}\n',
                         ":2: record time"),
                        (canonical_json(make_header("live", "x", counterfactual=False)) + '\n{"t": 1, "kind": "x"}\n{oops\n',
                         ":3: not JSON")):
        p.write_text(text)
        with pytest.raises(DecisionFormatError, match=match):
            read_decisions(p)
    with pytest.raises(DecisionFormatError, match="no decisions file"):
        read_decisions(tmp_path / "missing")
    res = CliRunner().invoke(cli_replay.app, ["report", str(tmp_path)])
    assert res.exit_code == 2 and ":3: not JSON" in res.output
    res = CliRunner().invoke(cli_replay.app, ["report", str(tmp_path / "none")])
    assert res.exit_code == 2 and "not a directory" in res.output
    assert not (tmp_path / "report.json").exists()


def test_report_of_a_live_run(tmp_path):
    live_run(tmp_path / "decisions.jsonl")
    rep = render_report(tmp_path)
    assert rep["source"] == "live" and rep["counterfactual"] is False and rep["plant"] == "cartpole"
    assert rep["drift"] == DRIFT and rep["drift_injected_at_s"] == 40.0
    assert rep["detected_after_s"] == pytest.approx(0.3)
    assert rep["time_to_adapt_s"] == pytest.approx(36.0) and rep["detect_to_promote_s"] == pytest.approx(35.7)
    assert rep["return_before_drift"] == pytest.approx(0.95)
    assert rep["return_after_drift_before_adapt"] == pytest.approx(0.2)
    assert rep["return_after_adapt"] == pytest.approx(0.9)
    assert [v["verdict"] for v in rep["verdicts"]] == ["PASS"]
    assert rep["champion_lineage"] == [CHAMP, CAND, CHAMP]
    assert rep["rollbacks"] == [{"t": 110.0, "to": CHAMP, "replaced": CAND, "reason": "operator request (~/rollback)"}]
    assert rep["promotions"][0]["replaced"] == CHAMP
    assert rep["shadow"][0]["result"] == "passed" and rep["canary"]["outcomes"][0]["result"] == "completed"
    assert rep["adaptations"][0]["generations"] == 4 and rep["adapting_s"] == [pytest.approx(19.5)]
    for key in ("plant", "drift", "detected_after_s", "time_to_adapt_s", "return_before_drift",
                "return_after_drift_before_adapt", "return_after_adapt", "verdicts", "champion_lineage", "rollbacks"):
        assert key in rep                                          # the demo's report.json contract
    assert json.loads((tmp_path / "report.json").read_text()) == rep
    png = (tmp_path / "timeline.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    md = (tmp_path / "summary.md").read_text()
    assert "| target | target | mean_reward | 10 | 0.880 | 0.120 | 0.760 | [0.700, 0.800] | pass |" in md
    assert "## Transitions" in md and "| 76.00 | canary | promoted |" in md and "![timeline](timeline.png)" in md
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []     # atomic writes


def test_report_without_gate_records_reads_verdicts_from_transitions(tmp_path):
    live_run(tmp_path / "decisions.jsonl", with_gate_records=False)
    rep = build_report(read_decisions(tmp_path))
    assert [(v["verdict"], v["predicted_reward"]) for v in rep["verdicts"]] == [("PASS", 0.88)]
    rep = render_report(tmp_path, png=False)
    assert not (tmp_path / "timeline.png").exists() and "FAIL" not in (tmp_path / "summary.md").read_text()


def test_report_of_a_minimal_run(tmp_path):
    """A run with only a header still renders (nothing happened)."""
    with DecisionWriter(tmp_path / "decisions.jsonl", make_header("replay", "walker", counterfactual=True)):
        pass
    rep = render_report(tmp_path)
    assert rep["alarms"] == [] and rep["detected_after_s"] is None and rep["champion_lineage"] == []
    assert (tmp_path / "timeline.png").stat().st_size > 5_000
    res = CliRunner().invoke(cli_replay.app, ["report", str(tmp_path)])
    assert res.exit_code == 0, res.output


@pytest.mark.ros
def test_decision_recorder_writes_a_live_run_from_the_topics(tmp_path):
    """The live side: DecisionRecorder turns the controller's topics into decisions.jsonl."""
    import os
    import threading
    import time

    rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Float64, String

    from adapters.decision_recorder import DecisionRecorder
    from controller.bootstrap import bootstrap_registry, lqr_policy_genome
    from safety.registry import Registry

    reg_root = tmp_path / "registry"
    champ = bootstrap_registry(reg_root)
    with Registry(reg_root, actor="test") as reg:
        cand = reg.add(lqr_policy_genome(eps=0.06).with_lineage(parent_id=champ))
        reg.attach_gate_report(cand, {"verdict": "PASS", "reasons": ["better"], "stage": "suite", "scenarios": [
            {"name": "target", "tag": "target", "metric": "mean_reward", "n": 5, "candidate": 0.8, "incumbent": 0.2,
             "diff_mean": 0.6, "diff_ci": [0.5, 0.7], "status": "pass"}]})
    job_dir = tmp_path / "jobs" / "20260101-000000-1-1"
    job_dir.mkdir(parents=True)
    (job_dir / "result.json").write_text(json.dumps({"status": "ok", "candidate_id": cand, "return_before": 5.0,
                                                     "return_after": 250.0, "wall_s": 12.0,
                                                     "generations": [{"gen": 0, "best": 250.0, "mean": 1.0}]}))
    ns = f"/dec{os.getpid()}"
    topics = {"events": f"{ns}/events", "drift_active": f"{ns}/drift_active", "reward": f"{ns}/reward",
              "diagnostics": f"{ns}/diagnostics"}
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=(int(os.environ.get("ROS_DOMAIN_ID", "100")) + 53) % 100 + 100)
    ex = SingleThreadedExecutor(context=ctx)
    pub = rclpy.create_node("pub", context=ctx)
    rec_node = rclpy.create_node("decisions", context=ctx)
    ex.add_node(pub)
    ex.add_node(rec_node)
    threading.Thread(target=ex.spin, daemon=True).start()
    try:
        latched = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        pe = pub.create_publisher(String, topics["events"], latched)
        pdrift = pub.create_publisher(String, topics["drift_active"], latched)
        pr = pub.create_publisher(Float64, topics["reward"], reliable)
        pd = pub.create_publisher(DiagnosticArray, topics["diagnostics"], reliable)
        pe.publish(String(data=json.dumps(tr("idle", "watching", "champion in force", champion=champ))))
        rec = DecisionRecorder(rec_node, tmp_path / "run" / "decisions.jsonl", plant="cartpole", topics=topics,
                               registry_path=reg_root, sample_s=0.2, seed=0)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (pr.get_subscription_count() and pd.get_subscription_count()
                                                    and pe.get_subscription_count()):
            time.sleep(0.05)
        for k in range(20):
            pr.publish(Float64(data=0.9))
            st = DiagnosticStatus(name="/x/driftgate_controller: drift monitor", message="monitoring")
            st.values = [KeyValue(key="state", value="monitoring"), KeyValue(key="ph:one_step", value="5"),
                         KeyValue(key="ph:one_step:threshold", value="50"), KeyValue(key="s:one_step", value="1.1")]
            pd.publish(DiagnosticArray(status=[st]))
            time.sleep(0.02)
        pdrift.publish(String(data=json.dumps({"drift": DRIFT, "hash": "h1"})))
        time.sleep(0.3)
        for ev in (
                {"event": "drift", "drift": {"channels": ["one_step"], "detectors": ["ph:one_step"],
                                             "magnitude": {"ph:one_step": 1.6}}},
                tr("watching", "adapting", "drift detected: sandbox job started", champion=champ,
                   job="20260101-000000-1-1", job_dir=str(job_dir)),
                tr("adapting", "gating", "candidate registered, gate started", champion=champ, candidate=cand),
                tr("gating", "shadow", "gate PASS", champion=champ, candidate=cand, reasons=["better"],
                   predicted_reward=0.8),
                tr("shadow", "canary", "shadow comparison passed", champion=champ, candidate=cand, weight=0.5),
                {"event": "canary_step", "weight": 1.0, "step": 1, "champion": champ, "candidate": cand},
                tr("canary", "promoted", "canary completed", champion=cand, replaced=champ)):
            pe.publish(String(data=json.dumps(ev)))
            time.sleep(0.05)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and '"to":"promoted"' not in rec.path.read_text():
            time.sleep(0.05)
        time.sleep(0.3)
        path = rec.close(counters={"promotions": 1})
    finally:
        ex.shutdown()
        pub.destroy_node()
        rec_node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    log = read_decisions(path)
    assert log.header["source"] == "live" and log.records[-1].kind == "end"
    kinds = [r.kind for r in log.records]
    assert {"sample", "drift_injected", "alarm", "transition", "adaptation", "gate", "canary_step"} <= set(kinds)
    ad = log.of("adaptation")[0].data
    assert ad["ok"] and ad["candidate"] == cand and ad["return_after"] == 250.0 and "wall_s" not in ad
    g = log.of("gate")[0].data
    assert g["verdict"] == "PASS" and g["scenarios"][0]["name"] == "target" and g["predicted_reward"] == 0.8
    samples = log.of("sample")
    assert any(s.data["reward"] == pytest.approx(0.9) for s in samples)
    assert any(s.data["stats"].get("ph:one_step") == pytest.approx(0.1) for s in samples)
    assert [r.t for r in log.records] == sorted(r.t for r in log.records)
    rep = render_report(path.parent)
    assert rep["champion_lineage"] == [champ, cand] and rep["verdicts"][0]["verdict"] == "PASS"
    assert rep["drift"] == DRIFT and rep["detected_after_s"] is not None


def _panel(records):
    """The timeline's adaptation panel drawn on its own axes for these adaptation records."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from adapters.report_plot import adaptation_panel
    fig, ax = plt.subplots()
    adaptation_panel(ax, [Decision(float(i), "adaptation", r) for i, r in enumerate(records)])
    texts = [t.get_text() for t in ax.texts]
    curves = [ln for ln in ax.lines if len(ln.get_xdata()) > 0 and ln.get_linestyle() != ":"]
    plt.close(fig)
    return curves, " ".join(texts)


def test_adaptation_panel_says_in_words_what_one_point_cannot_show():
    one = {"job": "job-1", "ok": True, "generations": [{"gen": 0, "best": 123.456789, "mean": 50.0}],
           "target_return": 150.0}
    curves, text = _panel([one])
    assert curves == [] and "job-1 (ok): 1 generation, best return 123.5 (target 150)" in text
    curves, text = _panel([{"job": "job-2", "ok": False, "error": "sandbox timeout", "generations": []}])
    assert curves == [] and "job-2 (failed: sandbox timeout): no generation log" in text
    curves, text = _panel([])
    assert curves == [] and text == "no sandbox job in this run"
    many = {"job": "job-3", "ok": True, "generations": [{"gen": i, "best": 100.0 + i} for i in range(4)]}
    curves, text = _panel([many, one])
    assert len(curves) == 1 and list(curves[0].get_xdata()) == [0, 1, 2, 3]
    assert "job-1 (ok): 1 generation" in text        # the short job is still named


def test_summary_prints_no_float_noise(tmp_path):
    noisy = {"mass_scale": {"pole_1": 2.9876543210987654}, "actuator_gain": {"slide": -0.9999999999999998}}
    with DecisionWriter(tmp_path / "decisions.jsonl", make_header("live", "cartpole", counterfactual=False)) as w:
        w.write(1.0, "drift_injected", drift=noisy, hash="h1")
        w.write(2.0, "adaptation", job="job-1", ok=True, candidate=CAND, return_before=20.123456789012,
                return_after=280.98765432101234, nominal_return=290.0, drift_estimate=noisy,
                generations=[{"gen": 0, "best": 1.0}])
        w.write(3.0, "gate", candidate=CAND, verdict="FAIL", stage="suite", predicted_reward=0.30000000000000004,
                reasons=["target: CI lower bound 0.012345678901234567 <= margin 0.05"], scenarios=[])
    render_report(tmp_path, png=False)
    md = (tmp_path / "summary.md").read_text()
    assert re.search(r"\d\.\d{7,}", md) is None, [ln for ln in md.splitlines() if re.search(r"\d\.\d{7,}", ln)]
    assert '"pole_1": 2.988' in md and '"slide": -1.0' in md
    assert "CI lower bound 0.01235 <= margin 0.05" in md and "predicted reward 0.300" in md
