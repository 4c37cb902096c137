"""The candidate on the live robot: shadow comparison, stepped canary, promotion, the watch period
and rollback (a mixin of `controller.orchestrator.Orchestrator`, which owns the state, the lock and
the transitions; kept apart because it is the part that hands authority over)."""
from __future__ import annotations

from typing import Any

from controller.contracts import PASS
from controller.lifecycle import Phase
from controller.runtime import Canary, CompiledPolicy
from sim.atomicio import json_safe


class LiveRollout:
    """Shadow -> canary -> promoted -> watch -> (stable | rollback), and the operator's requests."""

    def _load_policy(self, gid: str) -> CompiledPolicy:
        genome = self.registry.get(gid)
        spec, weights = self.cache.decode(genome)
        return CompiledPolicy(gid, spec, weights)

    def _drop_candidate(self, now: float, reason: str, *, reject: bool, to: Phase = Phase.WATCHING,
                        **evidence: Any) -> None:
        """Withdraw the candidate from the runtime (between ticks), reject it if it failed, go on."""
        cid = self._candidate_id
        if self.runtime.slot.candidate is not None or self.runtime.slot.canary is not None:
            self.runtime.install(candidate=None, canary=None)
        if reject and cid is not None:
            try:
                self.registry.reject(cid, reason=reason, evidence=json_safe(evidence))
            except Exception as e:
                self.report_error("reject candidate", e)
        self._backoff_until = now + self.config.retry_backoff_s
        self._to(to, now, reason, **evidence)
        self._candidate_id = None
        self._candidate = None

    def _step_shadow(self, now: float) -> None:
        cfg = self.config
        cmp = self.runtime.candidate_comparison()
        elapsed = now - self._entered
        if elapsed >= cfg.shadow_s and cmp.n >= cfg.shadow_min_samples:
            stats = cmp.to_dict()
            self._shadow_stats = stats
            problems = []
            if cmp.errors:
                problems.append(f"{cmp.errors} non-finite candidate actions")
            # failing: the champion keeps the robot outside the guard bounds, or its own commands break
            # the saturation limit the candidate is held to (a robot that falls over and over inside its
            # joint bounds: the walker on half-strength motors, champion 55 % saturated, where a candidate
            # that stands in its own closed loop saturates on the champion's falling states)
            # ... or the gate measured it on the drifted target far below the candidate (a motor wired
            # backwards that keeps the robot inside its bounds: the live checks cannot see that)
            stats["gate_rewards"] = self._gate_rewards()
            failing = ((stats["outside_bounds"] or 0.0) >= cfg.rescue_outside_fraction
                       or (stats["saturation_reference"] or 0.0) > cfg.shadow_max_saturation
                       or self._gate_says_champion_fails(stats["gate_rewards"]))
            self._rescue = failing and cfg.rescue_failing_champion
            stats["champion_failing"] = failing
            if self._rescue:
                pass          # pairwise limits against a failing champion mean nothing (see config)
            elif stats["divergence_mean"] > cfg.shadow_max_divergence:
                problems.append(f"mean action divergence {stats['divergence_mean']:.3g} > "
                                f"{cfg.shadow_max_divergence:g}")
            if not self._rescue and stats["saturation_challenger"] > cfg.shadow_max_saturation:
                problems.append(f"candidate saturated on {100 * stats['saturation_challenger']:.0f}% of ticks "
                                f"> {100 * cfg.shadow_max_saturation:.0f}%")
            if problems:
                self.counters["shadow_fail"] += 1
                self._drop_candidate(now, "shadow comparison failed", reject=True, problems=problems, shadow=stats)
                return
            if not self.authority_ok:
                if elapsed >= cfg.shadow_timeout_s:
                    self.counters["shadow_hold"] += 1
                    self._drop_candidate(now, "shadow passed but the node has no authority: holding",
                                         reject=False, shadow=stats)
                return
            try:
                self.registry.set_status(self._candidate_id, "canary", reason="shadow comparison passed",
                                         evidence=json_safe({"shadow": stats}))
            except Exception as e:
                self.report_error("enter canary", e)
                self._drop_candidate(now, "could not start canary", reject=False)
                return
            self._canary_step = 0
            self._canary_weights = (1.0,) if self._rescue else cfg.canary_weights
            self._install_canary(now)
            self._to(Phase.CANARY, now, "shadow: the champion is failing on the live robot, rescue canary "
                     "(full authority, joint-bound guard)" if self._rescue else "shadow comparison passed",
                     shadow=stats, weight=self._canary_weights[0], rescue=self._rescue)
        elif elapsed >= cfg.shadow_timeout_s:
            self.counters["shadow_hold"] += 1
            self._drop_candidate(now, "not enough paired shadow samples: holding", reject=False,
                                 samples=cmp.n)

    def _gate_rewards(self) -> dict:
        out = self._gate_outcome
        return {"candidate": getattr(out, "predicted_reward", None), "champion": getattr(out, "incumbent_reward", None)}

    def _gate_says_champion_fails(self, rewards: dict) -> bool:
        """The gate's target episodes (the identified drifted robot) put the champion below
        `rescue_gate_fraction` of the candidate's per-tick reward."""
        cand, champ, frac = rewards["candidate"], rewards["champion"], self.config.rescue_gate_fraction
        if frac <= 0 or cand is None or champ is None or not (cand > 0):
            return False
        return champ < frac * cand

    def _install_canary(self, now: float) -> None:
        cfg = self.config
        self._step_started = now
        self.runtime.install(canary=Canary(self._canary_weights[self._canary_step], start=now,
                                           slice_s=cfg.canary_slice_s, duty=1.0 if self._rescue else cfg.canary_duty,
                                           rescue=self._rescue, grace_s=cfg.rescue_grace_s))

    def _step_canary(self, now: float) -> None:
        cfg = self.config
        rt = self.runtime
        if rt.tripped:
            trip = rt.last_trip.to_dict() if rt.last_trip else {}
            self.counters["canary_aborts"] += 1
            self._drop_candidate(now, f"canary guard violation ({trip.get('reason')}): authority handed "
                                 "back to the champion", reject=True, trip=trip,
                                 weight=self._canary_weights[self._canary_step])
            return
        if not self.authority_ok:
            self._drop_candidate(now, "node lost authority during canary: holding", reject=False)
            return
        # a rescue canary has one step, as long as all the stepped ones together
        step_s = cfg.canary_step_s * (len(cfg.canary_weights) if self._rescue else 1)
        if now - self._step_started < step_s:
            return
        if self._canary_step + 1 < len(self._canary_weights):
            self._canary_step += 1
            self._install_canary(now)
            self._event("canary_step", weight=self._canary_weights[self._canary_step], step=self._canary_step)
            return
        self._promote(now, "canary completed without a guard violation",
                      canary={"weights": list(self._canary_weights), "step_s": cfg.canary_step_s,
                              "rescue": self._rescue,
                              "comparison": rt.candidate_comparison().to_dict()})

    def _promote(self, now: float, reason: str, **evidence: Any) -> None:
        cid, cand = self._candidate_id, self._candidate
        old = self.champion_id
        try:
            self.registry.promote(cid, reason=reason, evidence=json_safe(evidence))
        except Exception as e:
            self.report_error("promote", e)
            self._drop_candidate(now, f"registry refused the promotion: {e}", reject=False)
            return
        self.runtime.install(champion=cand, candidate=None, canary=None)   # the swap between two ticks
        self.counters["promotions"] += 1
        try:
            self.cache.refresh(self.registry)
        except Exception as e:
            self.report_error("registry refresh after promotion", e)
        self._notify_monitor()
        self._archive_regime(cid)
        self._to(Phase.PROMOTED, now, reason, replaced=old, **evidence)
        self._candidate_id, self._candidate = None, None
        pred = self._gate_outcome.predicted_reward if self._gate_outcome else None
        self.runtime.take_rewards(now)
        self._watch = {"genome": cid, "predicted_reward": pred, "replaced": old}
        self._to(Phase.WATCH, now, "watching live performance after promotion", predicted_reward=pred)

    def _archive_regime(self, genome_id: str) -> None:
        """Append the regime the new champion was promoted for (the sysid estimate) to the suite's
        archive, so no later candidate may regress on it. Outside the tick; failures are reported."""
        drift = self._job_result.drift_estimate if self._job_result is not None else None
        if self.config.archive_suite is None or not drift:
            return
        try:
            from safety.suite_archive import append_archive
            scenario = append_archive(self.config.archive_suite, drift, genome_id=genome_id,
                                      note="appended by the orchestrator after promotion")
            self._event("archive_appended", scenario=scenario.name, suite=str(self.config.archive_suite))
        except Exception as e:
            self.report_error("archive the promoted regime", e)

    def _notify_monitor(self) -> None:
        if self.monitor is not None:
            try:
                self.monitor.notify_adapted()
            except Exception as e:
                self.report_error("drift monitor notify_adapted", e)

    def _step_watch(self, now: float) -> None:
        cfg = self.config
        if self.champion_id != (self._watch or {}).get("genome"):
            self._to(Phase.WATCHING, now, "champion changed during the watch period")
            return
        if now - self._entered < cfg.watch_s:
            return
        rewards = self.runtime.take_rewards(now)
        pred = self._watch.get("predicted_reward")
        live = rewards.mean
        evidence = {"live_reward": live, "samples": rewards.n, "predicted_reward": pred,
                    "tolerance": cfg.watch_tolerance, "watch_s": cfg.watch_s}
        if live is not None and rewards.n >= cfg.watch_min_samples and pred is not None \
                and live < pred - cfg.watch_tolerance:
            self._rollback(now, f"live reward {live:.3f} below the gate's prediction {pred:.3f} - "
                           f"{cfg.watch_tolerance:g}", evidence)
            return
        if live is None or rewards.n < cfg.watch_min_samples or pred is None:
            self._to(Phase.WATCHING, now, "watch period inconclusive (no performance data or no "
                     "prediction): champion kept, not marked stable", **evidence)
            return
        try:
            self.registry.mark_stable(self._watch["genome"], reason="clean watch period",
                                      evidence=json_safe(evidence))
            self.counters["stable"] += 1
        except Exception as e:
            self.report_error("mark_stable", e)
        try:
            self.cache.refresh(self.registry)
        except Exception as e:
            self.report_error("registry refresh", e)
        self._to(Phase.WATCHING, now, "watch period clean: champion marked stable", **evidence)

    def _rollback(self, now: float, reason: str, evidence: dict) -> tuple[bool, str]:
        """Swap to the cached stable ancestor first (effective next tick), then record it."""
        fb = self.cache.fallback
        if fb is None:
            try:
                self.cache.refresh(self.registry)
            except Exception:
                pass
            fb = self.cache.fallback
        if fb is None:
            msg = f"no stable ancestor of champion {self.champion_id} to roll back to"
            self.report_error("rollback", msg)
            if self.phase is Phase.WATCH:
                self._to(Phase.WATCHING, now, f"degradation but {msg}: champion kept", **evidence)
            return False, msg
        replaced = self.champion_id
        try:
            target = CompiledPolicy.from_snapshot(fb)
            self.runtime.install(champion=target, candidate=None, canary=None)
        except ValueError as e:
            self.report_error("rollback install", e)
            return False, str(e)
        try:
            self.registry.rollback(to=fb.genome_id, reason=reason, evidence=json_safe(evidence))
        except Exception as e:   # the stable genome already drives; the registry disagrees: say so loudly
            self.report_error("registry rollback (runtime already on the stable ancestor)", e)
        try:
            self.cache.refresh(self.registry)
        except Exception as e:
            self.report_error("registry refresh after rollback", e)
        self.counters["rollbacks"] += 1
        self._notify_monitor()
        self._candidate_id, self._candidate, self._watch = None, None, None
        self._to(Phase.ROLLBACK, now, reason, to=fb.genome_id, replaced=replaced, **evidence)
        self._to(Phase.WATCHING, now, "authority back on the stable ancestor", champion=fb.genome_id)
        return True, f"rolled back to {fb.genome_id}"

    def set_authority(self, ok: bool) -> None:
        """The node gained or lost authority (lifecycle / mode). Losing it during the canary withdraws
        the candidate at once (held, not rejected: it did nothing wrong)."""
        with self._lock:
            self.authority_ok = bool(ok)
            if not ok and self.phase is Phase.CANARY:
                self._drop_candidate(self.clock(), "node lost authority during canary: holding", reject=False)

    # -- operator requests (services) -------------------------------------------------------------
    def promote_now(self, reason: str = "operator request") -> tuple[bool, str]:
        """Promote the candidate in SHADOW or CANARY now (the registry still requires its gate PASS)."""
        with self._lock:
            now = self.clock()
            if self.phase not in (Phase.SHADOW, Phase.CANARY) or self._candidate_id is None:
                return False, f"nothing to promote (phase {self.phase.value})"
            cid = self._candidate_id
            if self.phase is Phase.SHADOW:
                try:
                    self.registry.set_status(cid, "canary", reason=f"{reason}: skipping canary")
                except Exception as e:
                    return False, f"cannot promote {cid}: {e}"
            self._promote(now, reason, operator=True)
            ok = self.champion_id == cid
            return ok, f"promoted {cid}" if ok else f"promotion of {cid} refused: {self.last_error}"

    def rollback_now(self, reason: str = "operator request") -> tuple[bool, str]:
        """Withdraw any candidate / job and hand authority to the champion's stable ancestor.
        Nothing is cancelled when there is no ancestor to roll back to."""
        with self._lock:
            now = self.clock()
            if self.champion_id is None or self.phase is Phase.IDLE:
                return False, "no champion in force"
            if self.cache.fallback is None:
                try:
                    self.cache.refresh(self.registry)
                except Exception:
                    pass
            if self.cache.fallback is None:
                return False, f"no stable ancestor of champion {self.champion_id} to roll back to"
            if self.phase is Phase.ADAPTING and self.runner is not None:
                self.runner.cancel()
            if self.phase is Phase.GATING and self.gate is not None:
                self.gate.cancel()
            if self.phase in (Phase.SHADOW, Phase.CANARY):
                self.runtime.install(candidate=None, canary=None)   # held, not rejected
            self._candidate_id, self._candidate = None, None
            return self._rollback(now, reason, {"operator": True, "phase": self.phase.value})

    def status(self) -> dict:
        with self._lock:
            slot = self.runtime.slot
            return {"phase": self.phase.value, "champion": self.champion_id, "candidate": self._candidate_id,
                    "fallback": self.cache.fallback.genome_id if self.cache.fallback else None,
                    "authority_ok": self.authority_ok,
                    "canary_weight": slot.canary.weight if slot.canary else None,
                    "tripped": self.runtime.tripped,
                    "sandbox": self.runner.status if self.runner is not None else "none",
                    "job": self._job.job_id if self._job else None,
                    "in_phase_s": self.clock() - self._entered, "counters": dict(self.counters),
                    "last_error": self.last_error,
                    "shadow": self.runtime.candidate_comparison().to_dict() if slot.candidate else None,
                    "last_transition": self.history[-1] if self.history else None}
