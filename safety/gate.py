"""The safety gate: should this evolved controller get authority over the robot? PASS, FAIL or hold.

This is the decision module of a Simplex-style architecture. The incumbent (the registry's
champion) is the known-good controller; a candidate takes over only with evidence that it is better
where the robot is now *and* no worse where the robot has been. "No data or inconclusive means
hold": too few seeds, a missing incumbent, or a confidence interval that straddles a threshold give
INCONCLUSIVE, which keeps the incumbent, never PASS (promoting on missing data is the classic
failure of progressive-delivery tools).

The cascade runs cheapest first and stops at the first FAIL:

1. **static checks** (no simulation): the weights decode, are finite, inside bounds, the right
   shape and size for the suite's plant, and the genome's content hash matches its id (the registry
   has already checked the file's sha256 on load);
2. **hurdle**: a few short paired rollouts on the target scenario; a candidate that breaks a hard
   constraint or is worse on every seed by more than the hurdle margin stops here;
3. **full suite**: every scenario, candidate and incumbent on identical seeds (and, for stress
   scenarios, identical randomised robots), judged per scenario with a paired bootstrap CI of the
   per-seed difference (`safety.stats`);
4. **hard constraints** on every candidate rollout (`safety.constraints`): one violation is a FAIL.

The `GateReport` (`safety.gate_report`) keeps every number that drove the verdict: each scenario x seed row for both
policies, the CIs, the rules they were compared with, every violation, the reasons and the timings.
It is plain JSON (`to_dict`), attached to the registry and hashed into its audit log.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from safety import stats
from safety.episodes import Episode, run_episode
from safety.gate_config import GateConfig
from safety.gate_report import Check, GateReport, HurdleResult, ScenarioResult, StaticResult
from safety.scenarios import Suite, SuiteScenario, plant_instance
from sim.genome import Genome
from sim.policy import PolicySpec
from sim.srghn_decode import decode_policy  # the one decoder: the tick runs what the gate evaluates

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
VERDICTS = (PASS, FAIL, INCONCLUSIVE)
GATEABLE = ("candidate", "shadow", "canary")


# ---------------------------------------------------------------------- contenders

@dataclass(frozen=True)
class Contender:
    """A policy under judgement: what rolls out (spec + flat weights) and where it came from.

    `genome` (when known) enables the genome-level static checks; `load_error` records why the
    weights could not be obtained (corrupt file, undecodable genome): the static stage then FAILs
    the candidate instead of the gate crashing. `provenance` is copied into the report.
    """

    id: str
    spec: PolicySpec | None
    weights: np.ndarray
    kind: str = "policy"
    genome: Genome | None = None
    load_error: str | None = None
    provenance: dict = field(default_factory=dict)

    @classmethod
    def from_weights(cls, id: str, spec: PolicySpec, weights: Any, **kw: Any) -> "Contender":
        return cls(id=id, spec=spec, weights=np.asarray(weights, dtype=np.float32).reshape(-1), **kw)

    @classmethod
    def from_genome(cls, genome: Genome, provenance: dict | None = None) -> "Contender":
        """Decode once; a decoding error is recorded (and FAILs static checks), never raised."""
        try:
            spec, weights = decode_policy(genome)
            err = None
        except (ValueError, TypeError, RuntimeError, KeyError) as e:
            spec, weights, err = genome.policy_spec, np.zeros(0, np.float32), f"cannot decode genome: {e}"
        return cls(id=genome.id, spec=spec, weights=np.asarray(weights, dtype=np.float32).reshape(-1),
                   kind=genome.kind, genome=genome, load_error=err, provenance=dict(provenance or {}))

    @classmethod
    def unloadable(cls, id: str, error: str, provenance: dict | None = None) -> "Contender":
        return cls(id=id, spec=None, weights=np.zeros(0, np.float32), load_error=error,
                   provenance=dict(provenance or {}))

    def describe(self) -> dict:
        w = self.weights
        return {"id": self.id, "kind": self.kind,
                "policy_spec": None if self.spec is None else _spec_dict(self.spec),
                "num_weights": int(w.size), "drift_hash": self.genome.drift_hash if self.genome else None,
                "provenance": self.provenance}


def _spec_dict(spec: PolicySpec) -> dict:
    import json
    return json.loads(spec.to_json())


# ---------------------------------------------------------------------- 1. static checks

def static_checks(c: Contender, suite: Suite) -> StaticResult:
    """Everything that can be judged without a simulator. Runs every check (cheap), so the report
    names all problems at once; the weights are never rolled out if one fails."""
    cfg = suite.gate
    checks: list[Check] = []

    def add(name: str, ok: bool, detail: str) -> None:
        checks.append(Check(name, bool(ok), detail))

    add("load", c.load_error is None, c.load_error or "weights obtained")
    if c.genome is not None:
        gid = c.genome.id
        add("content_hash", gid == c.id,
            f"genome content hashes to {gid}" + ("" if gid == c.id else f", expected {c.id}"))
        if c.genome.kind == "srghn":
            clip = float((c.genome.model or {}).get("param_clip", 20.0))
            vmax = float(np.max(np.abs(c.genome.vector))) if c.genome.vector.size else 0.0
            add("genome_bounds", vmax <= clip, f"max |genome value| {vmax:.4g}, SR-GHN clamp +-{clip:g}")
    if c.spec is None or c.load_error is not None:
        return StaticResult(False, checks)
    plant = plant_instance(suite.plant)
    ok = (c.spec.obs_dim == plant.obs_dim and c.spec.act_dim == plant.act_dim and not c.spec.discrete)
    add("policy_spec", ok, f"policy obs {c.spec.obs_dim} -> act {c.spec.act_dim} "
        f"({'discrete' if c.spec.discrete else 'continuous'}); plant {suite.plant} needs obs "
        f"{plant.obs_dim} -> act {plant.act_dim} (continuous)")
    w = c.weights
    add("shape", w.ndim == 1 and w.size == c.spec.num_params,
        f"{w.size} weights, the policy spec needs {c.spec.num_params}")
    add("size", w.size <= cfg.max_params, f"{w.size} weights, limit {cfg.max_params}")
    finite = bool(np.all(np.isfinite(w)))
    n_bad = int(np.sum(~np.isfinite(w)))
    add("finite", finite, "all weights finite" if finite else f"{n_bad} NaN/inf weights")
    wmax = float(np.max(np.abs(w[np.isfinite(w)]))) if np.any(np.isfinite(w)) else 0.0
    add("bounds", wmax <= cfg.max_abs_weight, f"max |weight| {wmax:.4g}, limit {cfg.max_abs_weight:g}")
    return StaticResult(all(ch.passed for ch in checks), checks)


# ---------------------------------------------------------------------- 2. hurdle

class _Counter:
    def __init__(self) -> None:
        self.rollouts = 0

    def run(self, scenario: SuiteScenario, index: int, c: Contender, **kw: Any) -> Episode:
        self.rollouts += 1
        return run_episode(scenario, index, c.spec, c.weights, **kw)


def run_hurdle(cand: Contender, inc: Contender, suite: Suite, counter: _Counter) -> HurdleResult:
    """A few short paired rollouts on the first target; stops at the first hard violation."""
    h = suite.gate.hurdle
    target = suite.targets[0]
    k = min(h.seeds, len(target.seeds))
    if k == 0:
        return HurdleResult(ran=False, passed=True, reason="hurdle disabled (gate.hurdle.seeds: 0)")
    horizon = min(h.horizon, target.horizon)
    res = HurdleResult(ran=True, passed=True, scenario=target.name, horizon=horizon, margin=h.margin)
    diffs = []
    for i in range(k):
        ce = counter.run(target, i, cand, horizon=horizon, stage="hurdle")
        ie = counter.run(target, i, inc, horizon=horizon, stage="hurdle")
        diffs.append(ce.metric - ie.metric)
        res.rows.append({"seed": ce.seed, "candidate": ce.to_dict(), "incumbent": ie.to_dict(),
                         "diff": diffs[-1]})
        if ce.violations:
            res.passed = False
            res.reason = (f"hurdle on {target.name!r}: hard constraint violated, stopped after {i + 1} "
                          f"of {k} seeds: {ce.violations[0].describe()}")
            return res
    res.mean_diff = float(np.mean(diffs))
    if all(d < 0 for d in diffs) and res.mean_diff < -h.margin:
        res.passed = False
        res.reason = (f"hurdle on {target.name!r}: candidate clearly worse than the incumbent "
                      f"({target.metric} lower on all {k} seeds, mean diff {res.mean_diff:+.3f} < "
                      f"-{h.margin:g}, {horizon} ticks)")
    return res


# ---------------------------------------------------------------------- 3 + 4. suite, constraints

def judge_scenario(s: SuiteScenario, cand: list[Episode], inc: list[Episode], cfg: GateConfig) -> ScenarioResult:
    """Pure: paired episodes in, the scenario's verdict out (see `safety.suite` for the rules)."""
    c = np.array([e.metric for e in cand], dtype=np.float64)
    b = np.array([e.metric for e in inc], dtype=np.float64)
    n = len(c)
    kw = dict(level=cfg.ci_level, resamples=cfg.resamples)
    diff_ci = stats.paired_bootstrap_ci(c, b, seed=stats.stable_seed(cfg.seed, s.name, "diff"), **kw)
    cand_ci = stats.bootstrap_ci(c, seed=stats.stable_seed(cfg.seed, s.name, "cand"), **kw)
    d = c - b
    diff_mean = float(np.mean(d)) if n else None
    pct = f"{100 * cfg.ci_level:g}%"

    def ci_txt(ci: tuple[float, float] | None) -> str:
        return "no CI" if ci is None else f"{pct} CI [{ci[0]:+.4f}, {ci[1]:+.4f}]"

    outcomes, reasons = [], []
    rule: dict[str, Any] = {"min_seeds": cfg.min_seeds}
    checks: list[tuple[str, tuple | None, float, bool]] = []  # (what, ci, threshold, strict)
    if s.tag == "target":
        rule["margin"] = s.margin
        checks.append(("improvement", diff_ci, float(s.margin), True))
    elif s.tolerance is not None:
        rule["tolerance"] = s.tolerance
        checks.append(("non_inferiority", diff_ci, -float(s.tolerance), False))
    if s.min_metric is not None:
        rule["min_metric"] = s.min_metric
        checks.append(("min_metric", cand_ci, float(s.min_metric), False))

    label = f"{s.name} ({s.tag})"
    if checks and n < cfg.min_seeds:
        outcomes.append(stats.INCONCLUSIVE)
        reasons.append(f"{label}: only {n} paired seed(s), the gate needs >= {cfg.min_seeds} for a "
                       "confidence interval: holding")
    elif checks:
        for what, ci, thr, strict in checks:
            o = stats.decide(ci, thr, strict=strict)
            outcomes.append(o)
            if what == "improvement" and o != stats.PASS:
                reasons.append(f"{label}: " + (
                    f"no improvement beyond margin {thr:g}" if o == stats.FAIL else
                    f"improvement beyond margin {thr:g} not established") +
                    f": mean {s.metric} diff {diff_mean:+.4f}, {ci_txt(ci)}")
            elif what == "non_inferiority" and o != stats.PASS:
                reasons.append(f"{label}: " + (
                    f"regression beyond tolerance {-thr:g}" if o == stats.FAIL else
                    f"non-inferiority (tolerance {-thr:g}) not established") +
                    f": mean {s.metric} diff {diff_mean:+.4f}, {ci_txt(ci)}")
            elif what == "min_metric" and o != stats.PASS:
                reasons.append(f"{label}: candidate {s.metric} mean {float(np.mean(c)):.4f} " + (
                    "below" if o == stats.FAIL else "not shown to reach") +
                    f" the required {thr:g} ({ci_txt(ci)})")
    violations = [v for e in cand for v in e.violations]
    if violations:
        outcomes.append(stats.FAIL)
        bad = sorted({v.seed for v in violations})
        kinds = sorted({v.kind if v.joint is None else f"{v.kind}:{v.joint}" for v in violations})
        reasons.append(f"{label}: hard constraint violated on {len(bad)}/{n} seed(s) ({', '.join(kinds)}); "
                       f"first: {violations[0].describe()}")
    status = stats.combine(*outcomes) if outcomes else stats.PASS
    per_seed = []
    for i, (ce, ie) in enumerate(zip(cand, inc)):
        row = {"seed": ce.seed, "candidate": ce.to_dict(), "incumbent": ie.to_dict(), "diff": float(d[i])}
        if s.stress is not None:
            row["drift"] = s.drift_for(i).as_dict()
        per_seed.append(row)
    return ScenarioResult(
        name=s.name, tag=s.tag, metric=s.metric, horizon=s.horizon, n=n,
        candidate=float(np.mean(c)) if n else None, incumbent=float(np.mean(b)) if n else None,
        diff_mean=diff_mean, diff_ci=None if diff_ci is None else list(diff_ci),
        candidate_ci=None if cand_ci is None else list(cand_ci), wilcoxon_p=stats.wilcoxon_p(d),
        ci_level=cfg.ci_level, rule=rule, status=status, passed=status == stats.PASS, reasons=reasons,
        violations=[v.to_dict() for v in violations],
        incumbent_violations=[v.to_dict() for e in inc for v in e.violations],
        per_seed=per_seed, drift=s.drift.as_dict(), drift_hash=s.drift.hash)


def run_gate(candidate: Contender, incumbent: Contender | None, suite: Suite, *,
             progress: Callable[[str], None] | None = None) -> GateReport:
    """Run the cascade and return the report (never raises for a bad candidate: it FAILs)."""
    t0 = time.perf_counter()
    cfg = suite.gate
    say = progress or (lambda msg: None)
    timings: dict[str, float] = {}
    counter = _Counter()
    notes: list[str] = []
    target_hashes = {s.drift.hash for s in suite.targets}
    if candidate.genome is not None and candidate.genome.drift_hash and \
            candidate.genome.drift_hash not in target_hashes:
        notes.append(f"candidate was evolved for drift {candidate.genome.drift_hash[:12]}, not for the "
                     "suite's target drift")

    def report(verdict: str, reasons: list[str], stage: str, static: StaticResult,
               hurdle: HurdleResult | None = None, scenarios: list[ScenarioResult] | None = None
               ) -> GateReport:
        timings["total_s"] = time.perf_counter() - t0
        scenarios = scenarios or []
        violations = [v for r in scenarios for v in r.violations]
        if hurdle is not None:
            violations = [v for row in hurdle.rows for v in row["candidate"]["violations"]] + violations
        return GateReport(
            verdict=verdict, reasons=reasons, stage=stage, candidate=candidate.describe(),
            incumbent=None if incumbent is None else incumbent.describe(),
            suite={"name": suite.name, "plant": suite.plant, "path": suite.path, "sha256": suite.sha256,
                   "scenarios": [s.to_dict() for s in suite.scenarios]},
            config=cfg.to_dict(), static={"passed": static.passed, "checks": [asdict(c) for c in static.checks]},
            hurdle=asdict(hurdle) if hurdle is not None else {"ran": False, "passed": None},
            scenarios=scenarios, violations=violations, timings=dict(timings),
            rollouts=counter.rollouts, notes=notes)

    # 1. static
    say("static checks")
    t = time.perf_counter()
    static = static_checks(candidate, suite)
    inc_static = static_checks(incumbent, suite) if incumbent is not None else None
    timings["static_s"] = time.perf_counter() - t
    if not static.passed:
        return report(FAIL, [f"static check {c.name} failed: {c.detail}" for c in static.failures],
                      "static", static)
    if incumbent is None:
        return report(INCONCLUSIVE, ["no incumbent (no champion in the registry) to compare with: "
                                     "holding; bootstrap the first champion with a forced promotion"],
                      "static", static)
    if not inc_static.passed:
        return report(INCONCLUSIVE, [f"incumbent {incumbent.id} fails static check {c.name}: {c.detail}; "
                                     "cannot compare, holding" for c in inc_static.failures],
                      "static", static)

    # 2. hurdle
    say("hurdle")
    t = time.perf_counter()
    hurdle = run_hurdle(candidate, incumbent, suite, counter)
    timings["hurdle_s"] = time.perf_counter() - t
    if not hurdle.passed:
        return report(FAIL, [hurdle.reason or "hurdle failed"], "hurdle", static, hurdle)

    # 3. full suite, paired; 4. hard constraints are checked on every episode as it is recorded
    t = time.perf_counter()
    episodes: list[tuple[SuiteScenario, list[Episode], list[Episode]]] = []
    for s in suite.scenarios:
        say(f"scenario {s.name} ({s.tag}, {len(s.seeds)} seeds)")
        cand_eps, inc_eps = [], []
        for i in range(len(s.seeds)):
            cand_eps.append(counter.run(s, i, candidate))
            inc_eps.append(counter.run(s, i, incumbent))
        episodes.append((s, cand_eps, inc_eps))
    timings["suite_s"] = time.perf_counter() - t
    t = time.perf_counter()
    results = [judge_scenario(s, ce, ie, cfg) for s, ce, ie in episodes]
    timings["judge_s"] = time.perf_counter() - t

    verdict_of = {stats.PASS: PASS, stats.FAIL: FAIL, stats.INCONCLUSIVE: INCONCLUSIVE}
    verdict = verdict_of[stats.combine(*(r.status for r in results))]
    if verdict == PASS:
        tgt = [r for r in results if r.tag == "target"]
        guarded = [r for r in results if r.tag in ("archive", "nominal")]
        reasons = [f"{r.name} (target): {r.metric} improved by {r.diff_mean:+.4f}, "
                   f"{100 * cfg.ci_level:g}% CI [{r.diff_ci[0]:+.4f}, {r.diff_ci[1]:+.4f}] > margin "
                   f"{r.rule['margin']:g}" for r in tgt]
        reasons.append(f"no regression beyond tolerance on archive/nominal: {', '.join(r.name for r in guarded)}"
                       if guarded else "the suite has no archive/nominal scenario to guard")
        others = [r for r in results if r.tag in ("stress", "probe")]
        if others:
            reasons.append(f"stress/probe scenarios passed: {', '.join(r.name for r in others)}")
        reasons.append(f"no hard-constraint violation in {counter.rollouts // 2} candidate rollouts")
    else:
        order = {stats.FAIL: 0, stats.INCONCLUSIVE: 1, stats.PASS: 2}
        reasons = [msg for r in sorted(results, key=lambda r: order[r.status]) for msg in r.reasons]
    return report(verdict, reasons, "suite", static, hurdle, results)


# ---------------------------------------------------------------------- registry entry point

def gate_registry(registry: Any, candidate_id: str, suite: Suite, *, attach: bool = True,
                  progress: Callable[[str], None] | None = None) -> tuple[GateReport, int | None]:
    """Gate a registered genome against the current champion; attach the report (returns its id).

    Raises `RegistryError` for bad input (unknown id, a genome that is not a candidate/shadow/
    canary); a candidate whose file fails verification is not an error but a static FAIL. The
    champion is the incumbent; no champion, or one whose file fails verification, means
    INCONCLUSIVE (hold).
    """
    from safety.registry_schema import GenomeIntegrityError, RegistryError
    rec = registry.show(candidate_id)
    if rec.status not in GATEABLE:
        raise RegistryError(f"genome {rec.id} is {rec.status}: only {', '.join(GATEABLE)} genomes are gated")
    prov = {"status": rec.status, "file_sha256": rec.file_sha256, "parent_id": rec.parent_id,
            "generation": rec.generation, "drift_hash": rec.drift_hash}
    try:
        cand = Contender.from_genome(registry.get(rec.id), provenance=prov)
    except GenomeIntegrityError as e:
        cand = Contender.unloadable(rec.id, f"file verification failed: {e}", provenance=prov)
    inc = None
    champ_id = registry.champion_id()
    inc_error = None
    if champ_id is not None:
        crec = registry.show(champ_id)
        cprov = {"status": crec.status, "file_sha256": crec.file_sha256, "parent_id": crec.parent_id,
                 "generation": crec.generation, "drift_hash": crec.drift_hash}
        try:
            inc = Contender.from_genome(registry.get(champ_id), provenance=cprov)
        except GenomeIntegrityError as e:
            inc_error = f"champion {champ_id} failed verification: {e}"
    report = run_gate(cand, inc, suite, progress=progress)
    if inc_error is not None and report.verdict != FAIL:
        report.verdict = INCONCLUSIVE
        report.reasons = [f"{inc_error}: no trustworthy incumbent, holding"]
    report_id = registry.attach_gate_report(rec.id, report.to_dict()) if attach else None
    return report, report_id
