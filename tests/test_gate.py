"""The safety gate with real rollouts: verdicts, reasons, the report, the registry and the CLI.

Policies are hand-made, not trained: the cartpole's nominal LQR gain K written into a one-unit
tanh MLP with a small input scale (so the tanh is nearly linear), u = -K x. Its output layer negated
is the controller for a motor wired backwards (`actuator_gain: {slide: -1}`), and a catastrophe on
the nominal robot; scaled up 100x it is a bang-bang controller that saturates. Horizons and seed
counts are small to keep the file fast; the decision rules do not depend on them.
"""
from __future__ import annotations

import doctest
import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import safety.stats
from adapters.cli_gate import gate as gate_command
from safety.gate import FAIL, INCONCLUSIVE, PASS, Contender, gate_registry, run_gate, static_checks
from safety.registry import Registry, RegistryError
from safety.suite import load_suite, parse_suite
from safety.suite_archive import append_archive
from sim.drift_spec import DriftSpec
from sim.genome import Genome
from sim.plants import make_plant
from sim.policy import PolicySpec

SPEC = PolicySpec(obs_dim=5, act_dim=1, hidden=(1,), discrete=False)
K = make_plant("cartpole").nominal_controller().K.ravel()   # (cart, angle, cart vel, angle vel)
REVERSED = {"actuator_gain": {"slide": -1.0}}
HORIZON, SEEDS = 120, 6


def lqr(sign: float = 1.0, gain: float = 1.0, cart: float = 1.0, eps: float = 0.1) -> np.ndarray:
    """u ~= -sign * gain * K x through tanh(eps * .) / eps; obs = (cart, cos, sin, cart vel, ang vel)."""
    w1 = -eps * np.array([cart * K[0], 0.0, K[1], K[2], K[3]])
    return np.concatenate([w1, [0.0], [sign * gain / eps], [0.0]]).astype(np.float32)


def contender(name: str, w: np.ndarray) -> Contender:
    return Contender.from_weights(name, SPEC, w)


INC = contender("incumbent", lqr())
GOOD = contender("negated", lqr(sign=-1))          # the fix for a reversed motor

TARGET = {"name": "target", "tag": "target", "drift": REVERSED}
NOMINAL = {"name": "nominal", "tag": "nominal", "drift": {}}
PAYLOAD = {"name": "payload", "tag": "target", "drift": {"mass_scale": {"pole_1": 3.0}}}


def make_suite(*scenarios: dict, seeds: int = SEEDS, horizon: int = HORIZON, **gate) -> object:
    gate = {"hurdle": {"seeds": 2, "horizon": 60}, "resamples": 1000, **gate}
    return parse_suite({"plant": "cartpole", "defaults": {"horizon": horizon, "seeds": seeds},
                        "gate": gate, "scenarios": list(scenarios)}, source="test-suite")


def test_stats_examples():
    result = doctest.testmod(safety.stats)
    assert result.attempted > 0 and result.failed == 0


def test_identical_candidate_is_not_pass():
    same = contender("same-weights", lqr())
    rep = run_gate(same, INC, make_suite(PAYLOAD, NOMINAL))   # the LQR copes with a payload
    assert rep.verdict == FAIL and rep.stage == "suite"
    target, nominal = rep.scenarios
    assert target.diff_ci == [0.0, 0.0] and target.status == "fail"
    assert nominal.status == "pass" and not rep.violations   # no regression, no violation either
    assert rep.reasons == ["payload (target): no improvement beyond margin 0.02: mean mean_reward "
                           "diff +0.0000, 95% CI [+0.0000, +0.0000]"]
    # on the reversed motor the incumbent itself crashes: a copy of it stops at the hurdle
    rep = run_gate(same, INC, make_suite(TARGET))
    assert rep.verdict == FAIL and rep.stage == "hurdle"


def test_better_candidate_on_the_target_passes_and_report_keeps_every_value():
    stress = {"name": "stress", "tag": "stress", "drift": "target",
              "stress": {"seed": 1, "bounds": {"mass_scale": {"pole_1": [1.0, 3.0]}}}, "min_metric": 0.8}
    suite = make_suite(TARGET, stress)
    rep = run_gate(GOOD, INC, suite)
    assert rep.verdict == PASS, rep.reasons
    assert rep.reasons[0].startswith("target (target): mean_reward improved by")
    target = rep.scenarios[0]
    assert target.diff_ci[0] > suite.targets[0].margin
    assert not rep.violations and target.incumbent_violations   # the incumbent crashes on the target
    assert rep.rollouts == 2 * (2 + 2 * SEEDS)                    # hurdle + two scenarios, paired

    out = json.loads(json.dumps(rep.to_dict(), allow_nan=False))  # plain JSON
    for key in ("verdict", "reasons", "scenarios", "static", "hurdle", "timings", "candidate",
                "incumbent", "suite", "config", "violations"):
        assert key in out
    assert set(out["timings"]) >= {"static_s", "hurdle_s", "suite_s", "total_s"}
    assert len(out["hurdle"]["rows"]) == 2
    for sc, spec in zip(out["scenarios"], suite.scenarios):
        for key in ("name", "tag", "candidate", "incumbent", "diff_ci", "violations", "passed"):
            assert key in sc
        rows = sc["per_seed"]
        assert [r["seed"] for r in rows] == list(spec.seeds) and sc["n"] == SEEDS
        cand = [r["candidate"]["metric"] for r in rows]
        inc = [r["incumbent"]["metric"] for r in rows]
        assert sc["candidate"] == pytest.approx(np.mean(cand))
        assert sc["incumbent"] == pytest.approx(np.mean(inc))
        assert [r["diff"] for r in rows] == pytest.approx(np.subtract(cand, inc))
        for r in rows:
            for side in ("candidate", "incumbent"):
                assert {"return", "saturation", "jerk", "steps", "finite", "violations"} <= set(r[side])
    stress_rows = out["scenarios"][1]["per_seed"]
    drifts = [DriftSpec.parse(r["drift"]) for r in stress_rows]
    assert len({d.hash for d in drifts}) == SEEDS                 # one robot per seed, both policies
    assert all(r["candidate"]["drift_hash"] == r["incumbent"]["drift_hash"] == d.hash
               for r, d in zip(stress_rows, drifts))

    again = run_gate(GOOD, INC, suite)                            # deterministic, seeds and bootstrap
    assert [s.per_seed for s in again.scenarios] == [s.per_seed for s in rep.scenarios]
    assert [s.diff_ci for s in again.scenarios] == [s.diff_ci for s in rep.scenarios]


def test_better_on_target_but_breaks_nominal_fails_naming_it():
    rep = run_gate(GOOD, INC, make_suite(TARGET, NOMINAL))
    assert rep.verdict == FAIL
    nominal = rep.scenarios[1]
    assert rep.scenarios[0].status == "pass" and nominal.status == "fail" and not nominal.passed
    assert any(r.startswith("nominal (nominal): regression beyond tolerance") for r in rep.reasons)
    assert any(r.startswith("nominal (nominal): hard constraint violated") for r in rep.reasons)
    assert {v["scenario"] for v in rep.violations} == {"nominal"}


def test_nan_weights_fail_static_checks_without_a_rollout():
    w = lqr(sign=-1)
    w[2] = np.nan
    rep = run_gate(contender("nan", w), INC, make_suite(TARGET))
    assert rep.verdict == FAIL and rep.stage == "static" and rep.rollouts == 0
    assert rep.reasons == ["static check finite failed: 1 NaN/inf weights"]
    assert rep.hurdle == {"ran": False, "passed": None} and rep.scenarios == []
    json.dumps(rep.to_dict(), allow_nan=False)


def test_static_checks_shapes_bounds_size_and_srghn():
    suite = make_suite(TARGET, static={"max_abs_weight": 50.0})
    wrong = Contender.from_weights("walker-sized", PolicySpec(obs_dim=24, act_dim=6, hidden=(1,), discrete=False),
                                   np.zeros(PolicySpec(obs_dim=24, act_dim=6, hidden=(1,)).num_params))
    res = static_checks(wrong, suite)
    assert [c.name for c in res.failures] == ["policy_spec"]
    short = Contender.from_weights("short", SPEC, lqr()[:-1])
    assert [c.name for c in static_checks(short, suite).failures] == ["shape"]
    huge = contender("huge", lqr(gain=10.0))                       # output weight 100 > 50
    assert [c.name for c in static_checks(huge, suite).failures] == ["bounds"]
    assert static_checks(contender("ok", lqr()), make_suite(TARGET, static={"max_params": 5})).failures[0].name == "size"

    import torch

    from sim.srghn import SRGHN, SRGHNConfig
    cfg = SRGHNConfig(embed_dim=4, gnn_steps=2, basis_dim=4, trunk_width=8)
    net = SRGHN(SPEC, cfg)
    vec = net.init_genomes(1, seed=0)[0].numpy()
    ok = Genome(vector=vec, policy_spec=SPEC, kind="srghn", model=cfg.to_dict())
    c = Contender.from_genome(ok)
    assert c.weights.size == SPEC.num_params and static_checks(c, suite).passed
    assert np.allclose(c.weights, net.policy_weights(torch.from_numpy(vec)[None])[0].numpy())
    wild = Genome(vector=np.full_like(vec, 1e30), policy_spec=SPEC, kind="srghn", model=cfg.to_dict())
    failed = {ch.name for ch in static_checks(Contender.from_genome(wild), suite).failures}
    assert "genome_bounds" in failed and "finite" in failed      # decodes to NaN/inf


def test_too_few_seeds_is_inconclusive():
    rep = run_gate(GOOD, INC, make_suite(TARGET, seeds=3))
    assert rep.verdict == INCONCLUSIVE
    assert rep.reasons == ["target (target): only 3 paired seed(s), the gate needs >= 5 for a "
                           "confidence interval: holding"]
    assert rep.scenarios[0].n == 3 and len(rep.scenarios[0].per_seed) == 3   # measured and kept


def test_no_incumbent_is_inconclusive():
    rep = run_gate(GOOD, None, make_suite(TARGET))
    assert rep.verdict == INCONCLUSIVE and rep.rollouts == 0 and "no incumbent" in rep.reasons[0]


def test_inverted_candidate_stops_at_the_hurdle():
    payload = PAYLOAD
    rep = run_gate(GOOD, INC, make_suite(payload, NOMINAL))
    assert rep.verdict == FAIL and rep.stage == "hurdle" and rep.scenarios == []
    assert rep.rollouts == 2                                      # stopped on the first seed
    assert rep.reasons[0].startswith("hurdle on 'payload': hard constraint violated")
    # with the hard limits switched off it is still stopped: clearly worse on every hurdle seed
    loose = make_suite(payload, NOMINAL)
    relaxed = parse_suite({"plant": "cartpole", "defaults": {"horizon": HORIZON, "seeds": SEEDS},
                           "gate": {"hurdle": {"seeds": 2, "horizon": 60}},
                           "constraints": {"max_saturation": 1.0, "max_jerk": 100.0,
                                           "state": {"slider": None, "hinge_1": None}},
                           "scenarios": [payload, NOMINAL]})
    assert loose.gate.hurdle.seeds == 2
    rep = run_gate(GOOD, INC, relaxed)
    assert rep.verdict == FAIL and rep.stage == "hurdle" and rep.rollouts == 4
    assert "candidate clearly worse than the incumbent (mean_reward lower on all 2 seeds" in rep.reasons[0]


def test_saturating_candidate_fails_on_saturation():
    bang_bang = contender("bang-bang", lqr(sign=-1, gain=100.0))
    rep = run_gate(bang_bang, INC, make_suite(TARGET))
    assert rep.verdict == FAIL
    assert "saturation" in rep.reasons[0] and "limit 0.5" in rep.reasons[0]
    assert rep.violations[0]["kind"] == "saturation"


def test_probe_catches_a_policy_that_ignores_the_cart_position():
    probe = {"name": "cart-offset", "tag": "probe", "drift": "target", "horizon": 200, "min_metric": 0.5,
             "probe": {"kind": "initial_offset", "joints": {"slider": 0.5}}}
    suite = make_suite(TARGET, probe)
    blind = contender("pole-only", lqr(sign=-1, cart=0.0))
    rep = run_gate(blind, INC, suite)
    assert rep.verdict == FAIL and rep.scenarios[0].status == "pass"
    assert rep.reasons == [r for r in rep.reasons if r.startswith("cart-offset (probe): candidate recovery mean")]
    assert rep.scenarios[1].candidate < 0.5
    assert run_gate(GOOD, INC, suite).scenarios[1].candidate > 0.75  # the full LQR recentres


# ---------------------------------------------------------------------- registry + CLI

def policy_genome(w: np.ndarray, **kw) -> Genome:
    return Genome(vector=w, policy_spec=SPEC, kind="policy", **kw)


def cli() -> typer.Typer:
    """The command mounted the way the main app mounts it."""
    app = typer.Typer()
    app.command("gate")(gate_command)

    @app.command()
    def version() -> None:  # a second command so that `gate` is a subcommand, as in driftgate
        pass
    return app


def write_suite(path, target_drift: dict, seeds: int = SEEDS) -> None:
    path.write_text(
        "# test suite\nversion: 1\nplant: cartpole\n"
        f"defaults: {{horizon: {HORIZON}, seeds: {seeds}}}\n"
        "gate: {hurdle: {seeds: 2, horizon: 60}, resamples: 1000}\n"
        "scenarios:\n"
        f"  - {{name: target, tag: target, drift: {json.dumps(target_drift)}}}\n")


@pytest.fixture
def reg(tmp_path):
    r = Registry.init(tmp_path / "reg")
    champion = r.add(policy_genome(lqr()))
    r.promote(champion, force=True, reason="bootstrap: nominal LQR")
    r.mark_stable(champion)
    yield r
    r.close()


def test_cli_gate_pass_attaches_report_enables_gated_promotion_then_archive_blocks_regression(reg, tmp_path):
    runner = CliRunner()
    suite = tmp_path / "suite.yaml"
    write_suite(suite, REVERSED)
    cand = reg.add(policy_genome(lqr(sign=-1), parent_id=reg.champion_id(),
                                 drift_hash=DriftSpec.parse(REVERSED).hash))
    out = tmp_path / "gate.json"
    res = runner.invoke(cli(), ["gate", "--registry", str(reg.root), "--candidate", cand[:8],
                                "--suite", str(suite), "--json-out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["verdict"] == PASS
    report = json.loads(out.read_text())
    assert report["verdict"] == PASS and report["incumbent"]["id"] == reg.champion_id()
    assert report["suite"]["sha256"] == load_suite(suite).sha256
    [sc] = report["scenarios"]
    assert sc["name"] == "target" and sc["passed"] is True and sc["violations"] == []
    attached = reg.gate_reports(cand)
    assert [g.verdict for g in attached] == [PASS] and attached[0].id == report["registry_report_id"]
    report.pop("registry_report_id")
    assert attached[0].report == report
    # the gated path now works: candidate -> shadow -> canary -> champion needs that PASS
    reg.set_status(cand, "shadow")
    reg.set_status(cand, "canary")
    reg.promote(cand, reason="gate PASS")
    assert reg.champion_id() == cand and reg.verify().ok

    # after promotion the regime is archived; the robot is repaired and the target is now nominal:
    append_archive(suite, REVERSED, genome_id=cand)
    text = suite.read_text().replace(json.dumps(REVERSED), "{}", 1)
    suite.write_text(text)
    assert [s.tag for s in load_suite(suite).scenarios] == ["target", "archive"]
    fixed = reg.add(policy_genome(lqr(eps=0.05), parent_id=cand))   # better on nominal, breaks the archive
    res = runner.invoke(cli(), ["gate", "--registry", str(reg.root), "--candidate", fixed,
                                "--suite", str(suite), "--json-out", str(out), "--strict"])
    assert res.exit_code == 3, res.output
    report = json.loads(out.read_text())
    assert report["verdict"] == FAIL
    target, archive = report["scenarios"]
    assert target["passed"] is True and archive["tag"] == "archive" and archive["passed"] is False
    assert any(r.startswith(f"{archive['name']} (archive): regression beyond tolerance")
               for r in report["reasons"])
    assert [g.verdict for g in reg.gate_reports(fixed)] == [FAIL]
    reg.set_status(fixed, "shadow")
    reg.set_status(fixed, "canary")
    with pytest.raises(RegistryError, match="without a PASS gate report"):
        reg.promote(fixed)


def test_cli_bad_input_is_a_clear_error_and_writes_nothing(reg, tmp_path):
    runner = CliRunner()
    suite = tmp_path / "suite.yaml"
    write_suite(suite, REVERSED)
    cand = reg.add(policy_genome(lqr(sign=-1)))
    out = tmp_path / "gate.json"
    history = len(reg.history())
    bad_suite = tmp_path / "bad.yaml"
    bad_suite.write_text("plant: cartpole\nscenarios:\n  - {name: t, tag: targte}\n")
    not_a_registry = tmp_path / "empty"
    not_a_registry.mkdir()
    cases = [
        (["--registry", str(not_a_registry), "--candidate", cand], "is not a driftgate registry"),
        (["--registry", str(reg.root), "--candidate", "f" * 32], "unknown genome"),
        (["--registry", str(reg.root), "--candidate", "xyz"], "not a genome id"),
        (["--registry", str(reg.root), "--candidate", reg.champion_id()], "is champion: only candidate"),
        (["--registry", str(reg.root), "--candidate", cand, "--suite", str(bad_suite)], "unknown tag 'targte'"),
        (["--registry", str(reg.root), "--candidate", cand, "--suite", str(tmp_path / "nope.yaml")],
         "cannot read suite file"),
        (["--registry", str(reg.root), "--candidate", cand, "--json-out", str(tmp_path / "no" / "x.json")],
         "does not exist"),
    ]
    for args, message in cases:
        full = {"--suite": str(suite), "--json-out": str(out)}
        for i in range(0, len(args), 2):
            full[args[i]] = args[i + 1]
        res = runner.invoke(cli(), ["gate", *[x for kv in full.items() for x in kv]])
        assert res.exit_code == 2, (args, res.output)
        assert message in res.stderr and res.stderr.startswith("error: "), (message, res.stderr)
        assert "Traceback" not in res.output
        assert not out.exists() and not (tmp_path / "no").exists()
    assert len(reg.history()) == history and reg.gate_reports(cand) == []


def test_corrupt_candidate_file_fails_static_and_the_champion_stays(reg, tmp_path):
    cand = reg.add(policy_genome(lqr(sign=-1)))
    path = reg.root / "genomes" / f"{cand}.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    champion = reg.champion_id()
    rep, report_id = gate_registry(reg, cand, make_suite(TARGET))
    assert rep.verdict == FAIL and rep.stage == "static" and rep.rollouts == 0
    assert "static check load failed: file verification failed" in rep.reasons[0]
    assert reg.gate_reports(cand)[0].id == report_id and reg.champion_id() == champion


def test_no_champion_means_hold(tmp_path):
    with Registry.init(tmp_path / "reg") as r:
        cand = r.add(policy_genome(lqr(sign=-1)))
        rep, _ = gate_registry(r, cand, make_suite(TARGET))
        assert rep.verdict == INCONCLUSIVE and "no incumbent" in rep.reasons[0]
        assert r.gate_reports(cand)[0].verdict == INCONCLUSIVE
