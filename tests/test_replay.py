"""Offline replay of recorded bags: the monitor stage, the whole pipeline on the bag's clock,
determinism (byte-identical decisions), "what if" configurations, bad input and the CLI."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from adapters import cli_replay
from adapters.recording import BagWriter, simulate_bag
from adapters.replay import ReplayError, config_from_mapping, inspect_bag, load_replay_config, replay
from controller.contracts import PASS, AdaptationResult, GateOutcome
from adapters.decisions import read_decisions
from controller.jobs import FunctionGate, write_sandbox_job

DRIFT = {"mass_scale": {"pole_1": 3.0}, "actuator_gain": {"slide": -1.0}}
FAST = {"monitor": {"overrides": {"warmup_s": 5.0}}}
T0 = 1_700_000_000_000_000_000


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    """30 s of the simulated cartpole under its nominal LQR; the drift comes at 20 s."""
    return simulate_bag(tmp_path_factory.mktemp("bags") / "cartpole", seconds=30.0, drift=DRIFT, drift_at_s=20.0)


def leftovers(parent):
    return sorted(p.name for p in Path(parent).iterdir() if ".partial-" in p.name or ".old-" in p.name)


def records(out, kind=None):
    log = read_decisions(out)
    return log.records if kind is None else log.of(kind)


# ---------------------------------------------------------------------- the monitor stage

def test_monitor_stage_detects_the_drift_and_is_deterministic(bag, tmp_path):
    cfg = config_from_mapping(FAST)
    a = replay(bag, tmp_path / "a", cfg, adapt=False)
    b = replay(bag, tmp_path / "b", cfg, adapt=False, report=False)
    assert (tmp_path / "a" / "decisions.jsonl").read_bytes() == (tmp_path / "b" / "decisions.jsonl").read_bytes()
    assert a.ticks == 3000 and a.bag_duration_s == pytest.approx(30.0, abs=0.02)
    log = read_decisions(tmp_path / "a")
    h = log.header
    assert h["source"] == "replay" and h["plant"] == "cartpole" and h["counterfactual"] is True
    assert h["bag"]["name"] == "cartpole" and len(h["bag"]["storage_sha256"]) == 64
    assert h["config"]["monitor"]["warmup_s"] == 5.0 and h["config"]["adapt_stage"] is False
    injected = log.of("drift_injected")
    assert [r.t for r in injected] == [0.0, 20.0] and injected[1].data["drift"] == DRIFT
    alarms = log.of("alarm")
    assert alarms and 20.0 <= alarms[0].t <= 21.0 and alarms[0].data["channels"]
    assert all(r.t >= 20.0 for r in alarms)                     # no false alarm before the drift
    samples = log.of("sample")
    assert len(samples) == 30 and samples[0].data["monitor"] == "warmup"
    assert samples[10].data["reward"] > 0.9 and samples[-1].data["reward"] < 0.5
    assert log.records[-1].kind == "end" and log.records[-1].data["ticks"] == 3000
    times = [r.t for r in log.records]
    assert times == sorted(times)
    for name in ("report.json", "summary.md", "timeline.png", "replay.json"):
        assert (tmp_path / "a" / name).is_file()
    assert not (tmp_path / "a" / "work").exists() and leftovers(tmp_path) == []
    meta = json.loads((tmp_path / "a" / "replay.json").read_text())
    assert meta["speedup"] > 1 and meta["ticks"] == 3000
    rep = json.loads((tmp_path / "a" / "report.json").read_text())
    assert rep["detected_after_s"] == pytest.approx(alarms[0].t - 20.0)


def test_what_if_config_changes_the_decisions(bag, tmp_path):
    cfg_file = tmp_path / "whatif.yaml"
    cfg_file.write_text(yaml.safe_dump({"monitor": {"overrides": {"warmup_s": 5.0,
                                                                  "page_hinkley": {"default_threshold": 1e6},
                                                                  "hddm_w": {"enabled": False}}},
                                        "replay": {"sample_s": 2.0}}))
    replay(bag, tmp_path / "base", config_from_mapping(FAST), adapt=False, report=False)
    replay(bag, tmp_path / "whatif", load_replay_config(cfg_file), adapt=False, report=False)
    assert records(tmp_path / "base", "alarm") and not records(tmp_path / "whatif", "alarm")
    log = read_decisions(tmp_path / "whatif")
    assert log.header["config"]["monitor"]["page_hinkley"]["default_threshold"] == 1e6
    assert log.header["config"]["sample_s"] == 2.0 and len(log.of("sample")) == 15


# ---------------------------------------------------------------------- the whole pipeline

class FakeRunner:
    """A sandbox that answers with `genome` (as a child of the champion) after two polls."""

    def __init__(self, genome):
        self.genome, self.jobs, self._left, self.status = genome, [], None, "idle"

    def start(self, job):
        write_sandbox_job(job)
        self.jobs.append(job)
        self._left = 2

    def poll(self):
        if self._left is None:
            return None
        self._left -= 1
        if self._left > 0:
            return None
        self._left = None
        from sim.genome import save_genome
        job = self.jobs[-1]
        path = job.job_dir / "candidate.safetensors"
        save_genome(self.genome.with_lineage(parent_id=job.seed_ids[0], created=0.0), path)
        return AdaptationResult(True, (path,), {"actuator_gain": {"slide": -1.0}},
                                result={"status": "ok", "return_before": 10.0, "return_after": 250.0,
                                        "generations": [{"gen": 0, "best": 100.0, "mean": 50.0},
                                                        {"gen": 1, "best": 250.0, "mean": 120.0}]},
                                wall_s=0.123)

    def cancel(self):
        self._left = None


PIPELINE = {**FAST,
            "orchestrator": {"bootstrap_champion": "lqr", "post_alarm_s": 0.5, "shadow_s": 2.0, "shadow_min_samples": 50, "canary_weights": [0.5, 1.0],
                             "shadow_max_saturation": 1.0,  # the fallen pole saturates every policy
                             "canary_step_s": 1.0, "watch_s": 2.0, "retry_backoff_s": 5.0},
            "replay": {"adapt_latency_s": 2.0, "gate_latency_s": 1.0}}


def _pipeline(bag, out, seed=0):
    from controller.bootstrap import lqr_policy_genome
    gate = FunctionGate(lambda req: GateOutcome(PASS, ("better on the target",), predicted_reward=0.9))
    return replay(bag, out, config_from_mapping(PIPELINE), seed=seed, runner=FakeRunner(lqr_policy_genome(eps=0.06)),
                  gate=gate)


def test_pipeline_on_the_bag_clock_shadow_canary_promotion(bag, tmp_path):
    _pipeline(bag, tmp_path / "a")
    _pipeline(bag, tmp_path / "b")
    assert (tmp_path / "a" / "decisions.jsonl").read_bytes() == (tmp_path / "b" / "decisions.jsonl").read_bytes()
    log = read_decisions(tmp_path / "a")
    trans = [(r.t, r.data["from"], r.data["to"]) for r in log.of("transition")]
    assert [x[1:] for x in trans] == [("idle", "watching"), ("watching", "adapting"), ("adapting", "gating"),
                                      ("gating", "shadow"), ("shadow", "canary"), ("canary", "promoted"),
                                      ("promoted", "watch"), ("watch", "watching")]
    alarm = log.of("alarm")[0].t
    t = {to: t for t, _, to in trans}
    assert alarm + 0.5 <= t["adapting"] <= alarm + 0.75                 # post_alarm_s, then the next step (0.2 s)
    assert t["gating"] == pytest.approx(t["adapting"] + 2.0, abs=0.011)  # replay.adapt_latency_s of simulated time
    assert t["shadow"] == pytest.approx(t["gating"] + 1.0, abs=0.011)    # replay.gate_latency_s
    assert t["canary"] - t["shadow"] >= 2.0 and t["promoted"] - t["canary"] >= 2.0
    watch_end = [r for r in log.of("transition") if r.data["from"] == "watch"][0]
    assert "inconclusive" in watch_end.data["reason"]                   # no live reward after a replayed promotion
    ad = log.of("adaptation")[0].data
    assert ad["ok"] and ad["job"] == "job-1" and len(ad["generations"]) == 2
    assert "wall_s" not in json.dumps(ad)
    g = log.of("gate")[0].data
    assert g["verdict"] == PASS and g["predicted_reward"] == 0.9
    assert [r.data["weight"] for r in log.of("canary_step")] == [1.0]
    text = (tmp_path / "a" / "decisions.jsonl").read_text()
    assert str(tmp_path) not in text and "<work>/jobs/job-1" in text    # no temporary paths, no pids
    samples = log.of("sample")
    assert {s.data["phase"] for s in samples} >= {"watching", "adapting", "shadow", "canary"}
    end = log.records[-1]
    assert end.kind == "end" and end.data["counters"]["promotions"] == 1 and end.data["phase"] == "watching"
    rep = json.loads((tmp_path / "a" / "report.json").read_text())
    assert rep["verdicts"][0]["verdict"] == PASS and len(rep["champion_lineage"]) == 2
    assert rep["time_to_adapt_s"] == pytest.approx(t["promoted"] - 20.0, abs=1e-6)
    assert rep["return_after_adapt"] is None and rep["promotions"][0]["t"] == t["promoted"]


def test_seed_reaches_the_jobs(bag, tmp_path):
    _pipeline(bag, tmp_path / "s0", seed=0)
    _pipeline(bag, tmp_path / "s5", seed=5)
    h0, h5 = read_decisions(tmp_path / "s0").header, read_decisions(tmp_path / "s5").header
    assert h0["seed"] == 0 and h5["seed"] == 5 and h5["config"]["orchestrator"]["seed"] == 5


@pytest.mark.slow
def test_real_sandbox_and_gate_processes(bag, tmp_path):
    """The shipped SR-GHN champion, the real sandbox (system identification + evolution) and the
    real gate (regression suite), each in its child process, with small budgets."""
    cfg = config_from_mapping({**FAST, "adapt": {"max_generations": 2, "population": 3, "children": 1,
                                                 "horizon": 60, "sysid_max_evals": 30},
                               "replay": {"adapt_latency_s": 3.0, "gate_latency_s": 2.0},
                               "gate": {"overrides": {
                                   "defaults": {"seeds": 3, "horizon": 120},
                                   "gate": {"min_seeds": 2, "resamples": 200, "hurdle": {"seeds": 2, "horizon": 30}}}}})
    replay(bag, tmp_path / "real", cfg, keep_work=True)
    log = read_decisions(tmp_path / "real")
    ad = log.of("adaptation")
    assert ad and ad[0].data["ok"], ad and ad[0].data
    assert ad[0].data["sysid"]["evaluations"] <= 40 and ad[0].data["generations"]
    g = log.of("gate")
    assert g and g[0].data["verdict"] in ("PASS", "FAIL", "INCONCLUSIVE")
    assert g[0].data["scenarios"] or g[0].data["stage"] in ("static", "hurdle")
    assert log.header["config"]["gate"]["suite"]["name"] == "cartpole-default"
    assert (tmp_path / "real" / "work" / "registry").is_dir()
    md = (tmp_path / "real" / "summary.md").read_text()
    assert "## Gate verdicts" in md and g[0].data["verdict"] in md


# ---------------------------------------------------------------------- bad input

def _copy(bag, tmp_path, name):
    d = tmp_path / name
    shutil.copytree(bag, d)
    return d


def _bad(path, tmp_path, match, cfg=None):
    out = tmp_path / "out"
    data = {**FAST, **(cfg or {})}
    with pytest.raises(ReplayError, match=match):
        replay(path, out, config_from_mapping(data), adapt=False)
    assert not out.exists() and leftovers(tmp_path) == []
    cfg_file = tmp_path / "bad-input.yaml"
    cfg_file.write_text(yaml.safe_dump(data))
    res = CliRunner().invoke(cli_replay.app, ["replay", str(path), "--out", str(out), "--config", str(cfg_file),
                                              "--no-adapt", "-q"])
    assert res.exit_code == 2 and "error:" in res.output and not out.exists(), res.output
    assert leftovers(tmp_path) == []
    return res.output


def test_truncated_and_corrupt_mcap(bag, tmp_path):
    d = _copy(bag, tmp_path, "trunc")
    m = d / "cartpole.mcap"
    data = m.read_bytes()
    m.write_bytes(data[: len(data) // 2])
    _bad(d, tmp_path, "truncated or corrupt MCAP")
    m.write_bytes(b"")
    _bad(d, tmp_path, "empty|truncated or corrupt")
    d2 = _copy(bag, tmp_path, "corrupt")
    m2 = d2 / "cartpole.mcap"
    raw = bytearray(m2.read_bytes())
    raw[len(raw) // 3: len(raw) // 3 + 3000] = os.urandom(3000)
    m2.write_bytes(bytes(raw))
    _bad(d2, tmp_path, "damaged|truncated or corrupt")
    (d2 / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 9}\n")
    _bad(d2, tmp_path, "cannot open bag")
    _bad(tmp_path / "nope", tmp_path, "does not exist")
    lone = tmp_path / "lone.mcap"                 # an .mcap file without its bag directory
    shutil.copy(bag / "cartpole.mcap", lone)
    _bad(lone, tmp_path, "give the rosbag2 bag directory")


def _custom_bag(path, topics):
    """A rosbag2 bag with hand-made connections {topic: (msgtype, msgdef)} and one message each."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    w = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    w.open()
    for i, (topic, (msgtype, msgdef)) in enumerate(topics.items()):
        c = w.add_connection(topic, msgtype, msgdef=msgdef, rihs01="RIHS01_" + "ab" * 32)
        w.write(c, T0 + i, b"\x00\x01\x00\x00" + b"\x00" * 8)
    w.close()
    return path


def test_unknown_schemas(bag, tmp_path):
    # the joint states carry a schema replay cannot read
    p = _custom_bag(tmp_path / "u1", {"/joint_states": ("my_msgs/msg/Foo", "float64 x"),
                                      "/forward_effort_controller/commands":
                                          ("std_msgs/msg/Float64MultiArray", "float64[] data")})
    out = _bad(p, tmp_path, "has schema my_msgs/msg/Foo; replay needs sensor_msgs/msg/JointState")
    assert "schema" in out
    # the right type name with a different definition
    p = _custom_bag(tmp_path / "u2", {"/joint_states": ("sensor_msgs/msg/JointState", "float64 x"),
                                      "/forward_effort_controller/commands":
                                          ("std_msgs/msg/Float64MultiArray", "float64[] data")})
    _bad(p, tmp_path, "unknown schema")
    # an unknown (even unparseable) schema on a topic replay does not use is ignored
    p = tmp_path / "mixed"
    from rosbags.rosbag2 import StoragePlugin
    from rosbags.rosbag2 import Writer as RWriter

    from adapters.recording import typestore
    ts = typestore()
    w = RWriter(p, version=9, storage_plugin=StoragePlugin.MCAP)
    w.open()
    cj = w.add_connection("/joint_states", "sensor_msgs/msg/JointState", typestore=ts)
    cc = w.add_connection("/forward_effort_controller/commands", "std_msgs/msg/Float64MultiArray", typestore=ts)
    cx = w.add_connection("/weird", "my_msgs/msg/Weird", msgdef="this is ! not a msg", rihs01="RIHS01_" + "cd" * 32)
    JS, H, Tm = ts.types["sensor_msgs/msg/JointState"], ts.types["std_msgs/msg/Header"], ts.types["builtin_interfaces/msg/Time"]
    FA, L = ts.types["std_msgs/msg/Float64MultiArray"], ts.types["std_msgs/msg/MultiArrayLayout"]
    for k in range(1000):
        t = T0 + k * 10_000_000
        m = JS(header=H(stamp=Tm(sec=t // 10**9, nanosec=t % 10**9), frame_id=""), name=["slider", "hinge_1"],
               position=np.array([0.0, 0.01 * np.sin(k / 20)]), velocity=np.zeros(2), effort=np.zeros(0))
        w.write(cj, t, ts.serialize_cdr(m, JS.__msgtype__))
        w.write(cc, t + 1000, ts.serialize_cdr(FA(layout=L(dim=[], data_offset=0), data=np.array([0.0])),
                                               FA.__msgtype__))
        if k % 100 == 0:
            w.write(cx, t, b"\x00\x01\x00\x00garbage")
    w.close()
    cfg = config_from_mapping({**FAST, "robot": "cartpole"})
    res = replay(p, tmp_path / "mixed_out", cfg, adapt=False, report=False)
    assert res.ticks == 1000
    h = read_decisions(tmp_path / "mixed_out").header
    assert h["bag"]["topics"]["/weird"]["type"] == "my_msgs/msg/Weird"


def test_missing_topics_and_empty_bags(bag, tmp_path):
    with BagWriter(tmp_path / "nocmd", plant="cartpole") as w:
        for k in range(10):
            w.joint_state(T0 + k * 10_000_000, ["slider", "hinge_1"], [0, 0], [0, 0])
            w.reward(T0 + k * 10_000_000, 1.0)
    out = _bad(tmp_path / "nocmd", tmp_path, r"missing topic /forward_effort_controller/commands")
    assert "/joint_states" in out                     # says which topics there are
    with BagWriter(tmp_path / "empty", plant="cartpole") as w:
        w.add_topic("/joint_states", "sensor_msgs/msg/JointState")
        w.add_topic("/forward_effort_controller/commands", "std_msgs/msg/Float64MultiArray")
    _bad(tmp_path / "empty", tmp_path, "is empty")
    with BagWriter(tmp_path / "noplant") as w:
        w.joint_state(T0, ["slider", "hinge_1"], [0, 0], [0, 0])
        w.command(T0 + 1, [0.0])
    _bad(tmp_path / "noplant", tmp_path, "does not name its plant")
    with BagWriter(tmp_path / "wrongjoints", plant="cartpole") as w:
        for k in range(10):
            w.joint_state(T0 + k * 10_000_000, ["a", "b"], [0, 0], [0, 0])
            w.command(T0 + k * 10_000_000 + 1, [0.0])
    _bad(tmp_path / "wrongjoints", tmp_path, "no usable tick")
    with BagWriter(tmp_path / "wrongcmd", plant="cartpole") as w:
        w.joint_state(T0, ["slider", "hinge_1"], [0, 0], [0, 0])
        w.command(T0 + 1, [0.0, 1.0])
    _bad(tmp_path / "wrongcmd", tmp_path, "have 2 values; plant 'cartpole' takes 1")
    # a topic named in the config that the bag lacks
    _bad(bag, tmp_path, "not in the bag", {"replay": {"topics": {"commands": "/elsewhere"}}})


def test_config_with_unknown_keys(bag, tmp_path):
    cases = [({"monitr": {}}, r"top level: unknown key\(s\) \['monitr'\] \(did you mean 'monitor'\?\)"),
             ({"adapt": {"max_generatons": 3}}, r"adapt: unknown key\(s\) \['max_generatons'\] \(did you mean 'max_generations'"),
             ({"orchestrator": {"shadow_secs": 1}}, r"orchestrator: unknown key\(s\) \['shadow_secs'\]"),
             ({"replay": {"topics": {"joints": "/j"}}}, r"replay.topics: unknown key\(s\) \['joints'\]"),
             ({"replay": {"sample_s": "fast"}}, "replay.sample_s: expected a finite number, got 'fast'"),
             ({"adapt": {"generations": 3}}, "'adapt.generations' was renamed: use adapt.max_generations"),
             ({"plant": "cartpole"}, "'plant' was renamed: use robot"),
             ({"adapt": {"workers": 0}}, r"adapt.workers: must be >= 1, got 0"),
             ({"orchestrator": {"canary_weights": [0.5, 2.0]}}, r"orchestrator.canary_weights\[1\]: must be <= 1"),
             ({"replay": {"topics": {"commands": "cmd"}}}, "replay.topics.commands: must be an absolute topic name")]
    for i, (data, match) in enumerate(cases):
        f = tmp_path / f"c{i}.yaml"
        f.write_text(yaml.safe_dump(data))
        with pytest.raises(ReplayError, match=match):
            load_replay_config(f)
        res = CliRunner().invoke(cli_replay.app, ["replay", str(bag), "--out", str(tmp_path / "o"), "--config",
                                                  str(f), "-q"])
        assert res.exit_code == 2 and ("unknown key" in res.output or "must be" in res.output
                                       or "expected" in res.output or "renamed" in res.output), res.output
        assert not (tmp_path / "o").exists()
    # keys of the drift monitor section are checked by the monitor's own loader
    with pytest.raises(ReplayError, match=r"monitor: .*unknown key\(s\) \['warmup'\]"):
        replay(bag, tmp_path / "o", config_from_mapping({"monitor": {"overrides": {"warmup": 5}}}), adapt=False)
    # and the gate suite overrides by the suite parser (before any work)
    with pytest.raises(ReplayError, match="gate suite"):
        replay(bag, tmp_path / "o", config_from_mapping({**FAST, "gate": {"overrides": {"gate": {"marginn": 1}}}}))
    assert not (tmp_path / "o").exists() and leftovers(tmp_path) == []
    (tmp_path / "bad.yaml").write_text("a: [unclosed\n")
    with pytest.raises(ReplayError, match="not valid YAML"):
        load_replay_config(tmp_path / "bad.yaml")


def test_existing_output_directory_is_left_alone(bag, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ReplayError, match="exists already"):
        replay(bag, out, config_from_mapping(FAST), adapt=False)
    assert (out / "keep.txt").read_text() == "mine" and leftovers(tmp_path) == []
    replay(bag, out, config_from_mapping(FAST), adapt=False, report=False, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "decisions.jsonl").is_file() and leftovers(tmp_path) == []


def test_cli_replay_and_report(bag, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(FAST))
    out = tmp_path / "r"
    res = CliRunner().invoke(cli_replay.app, ["replay", str(bag), "--out", str(out), "--config", str(cfg),
                                              "--seed", "3", "--no-adapt", "--no-report", "-q"])
    assert res.exit_code == 0, res.output
    assert "alarm" in res.output and (out / "decisions.jsonl").is_file() and not (out / "report.json").exists()
    assert read_decisions(out).header["seed"] == 3
    res = CliRunner().invoke(cli_replay.app, ["report", str(out)])
    assert res.exit_code == 0, res.output
    for name in ("report.json", "summary.md", "timeline.png"):
        assert (out / name).is_file()
    assert inspect_bag(bag).topics["reward"] == "/driftgate_sim_robot/reward"


def test_shipped_replay_config_is_the_defaults(tmp_path):
    from adapters.replay import ReplayConfig
    root = Path(__file__).resolve().parents[1]
    assert load_replay_config(root / "launch" / "replay.yaml") == ReplayConfig()
    res = CliRunner().invoke(cli_replay.app, ["simulate-bag", "--out", str(tmp_path / "b"), "--seconds", "2",
                                              "--drift-at", "1"])
    assert res.exit_code == 0, res.output
    info = inspect_bag(tmp_path / "b")
    assert info.counts["/joint_states"] == 200 and info.custom["driftgate.drift_at_s"] == "1.0"
    res = CliRunner().invoke(cli_replay.app, ["simulate-bag", "--out", str(tmp_path / "c"), "--drift", "{bad"])
    assert res.exit_code == 2 and not (tmp_path / "c").exists()


def test_the_config_model_covers_every_role_and_the_shipped_file():
    """The replay file is the settings tree: the topics it names are the recorder's roles, and
    launch/replay.yaml (every setting at its default) loads to the defaults."""
    from adapters.recording import ROLES
    from adapters.replay import ReplayConfig, _topics_roles
    assert _topics_roles() == tuple(ROLES)
    cfg = load_replay_config(Path(__file__).resolve().parents[1] / "launch" / "replay.yaml")
    assert cfg.adapt == ReplayConfig().adapt and cfg.replay == ReplayConfig().replay
