"""The fast path: joint states in, one command out per control tick, in numpy, never raising.

What runs in the tick, and why nothing else does:

    ingest(JointState)  ──► validated Sample (one reference)      subscription callback
    tick(now)           ──► obs = ObservationMap(q, qdot)          control timer
                            a_champion = champion policy (numpy MLP)
                            a_candidate / a_incumbent (when present)
                            guards -> command, comparison stats, drift monitor update
                                (a node publishes first: tick(defer_monitor=True), publish,
                                 finish_tick() runs the monitor update)

Everything that can be slow or fail (registry I/O, decoding genomes, sandbox jobs, the gate, state
transitions) happens elsewhere (`controller.orchestrator`, on its own timer) and reaches the tick as
*one immutable `AuthoritySlot`* that the tick reads once at its start. A hot swap is therefore an
attribute assignment between two ticks: a tick computes with either the old authority or the new
one, never half of each, and no lock is taken on the control path.

The parts: who drives the command (`controller.authority`), the limits that hand authority back
in the same tick (`controller.guards`), the input callbacks (`controller.joint_input`), the
policy and its observation (`controller.compiled_policy`, `sim.observation`), the shadow
statistics (`controller.shadow_stats`). A tick without fresh valid data holds the configured safe
command and reports ``stale``.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from controller.authority import Authority, AuthoritySlot, Canary
from controller.compiled_policy import CompiledPolicy
from controller.guards import GuardConfig, GuardTrip, challenger_violation, joint_margin
from controller.joint_input import VELOCITY_SOURCES, JointStateInput
from sim.observation import ObservationMap
from controller.shadow_stats import Comparison, RewardStats

# Tick-level counters (the keys of `ControllerRuntime.ticks`).
TICK_COUNTERS = ("ticks", "ok", "stale", "base_stale", "waiting", "no_policy", "obs_error", "policy_error",
                 "bursts", "guard_trips", "monitor_errors", "internal_errors")


@dataclass(frozen=True)
class RuntimeConfig:
    """Static settings of the fast path (changing them means building a new runtime)."""

    joint_names: tuple[str, ...]                      # robot names of the plant's joints, plant order
    act_dim: int
    act_low: tuple[float, ...] | None = None          # command clip (None: no clip beyond the policy's)
    act_high: tuple[float, ...] | None = None
    safe_command: tuple[float, ...] | None = None     # held when data is stale (None: zeros)
    stale_timeout_s: float = 0.1                        # no valid joint state for this long -> stale
    max_abs_input: float = 1.0e6                      # larger magnitudes are refused (sensor glitch)
    burst_limit: int = 10                             # more messages than this between ticks: a burst
    clock_reset_after: int = 10                       # backwards stamps in a row = the clock was reset
    velocity_source: str = "measured"                 # measured | differentiate (see `ingest`)
    guard: GuardConfig = field(default_factory=GuardConfig)

    def __post_init__(self) -> None:
        if not self.joint_names or len(set(self.joint_names)) != len(self.joint_names):
            raise ValueError(f"joint_names must be non-empty and unique, got {self.joint_names!r}")
        if self.act_dim < 1:
            raise ValueError(f"act_dim must be >= 1, got {self.act_dim}")
        for name in ("act_low", "act_high"):
            b = getattr(self, name)
            if b is not None and (len(b) != self.act_dim or not all(math.isfinite(float(x)) for x in b)):
                raise ValueError(f"{name} must hold {self.act_dim} finite values, got {b!r}")
        if self.act_low is not None and self.act_high is not None and \
                not all(lo <= hi for lo, hi in zip(self.act_low, self.act_high)):
            raise ValueError(f"act_low {self.act_low} must be <= act_high {self.act_high}")
        if self.safe_command is not None:
            safe = tuple(self.safe_command)
            if len(safe) != self.act_dim:
                raise ValueError(f"safe_command has {len(safe)} values, the robot has {self.act_dim} actuators")
            if not all(isinstance(x, (int, float)) and math.isfinite(float(x)) for x in safe):
                raise ValueError(f"safe_command {list(safe)} must be finite")
            lo = self.act_low or (-math.inf,) * self.act_dim
            hi = self.act_high or (math.inf,) * self.act_dim
            if not all(a <= x <= b for x, a, b in zip(safe, lo, hi)):
                raise ValueError(f"safe_command {list(safe)} is outside the actuator bounds "
                                 f"[{list(lo)}, {list(hi)}]")
        if self.velocity_source not in VELOCITY_SOURCES:
            raise ValueError(f"velocity_source must be one of {' | '.join(VELOCITY_SOURCES)}, "
                             f"got {self.velocity_source!r}")
        for name, low in (("stale_timeout_s", 0), ("max_abs_input", 0), ("burst_limit", 0.5)):
            if not getattr(self, name) > low:
                raise ValueError(f"{name} must be {'>= 1' if low else '> 0'}, got {getattr(self, name)!r}")


@dataclass
class TickOutput:
    """What one tick decided. `command` is None when nothing may be published (authority NONE)."""

    t: float
    status: str                          # ok | stale | waiting | no_policy | error
    command: np.ndarray | None
    champion_action: np.ndarray | None = None
    challenger_action: np.ndarray | None = None   # candidate (orchestrator) actions
    share: float = 0.0
    latency_s: float | None = None       # tick time - arrival of the sample it used
    tripped: GuardTrip | None = None


def _saturated(a: np.ndarray, policy: CompiledPolicy) -> bool:
    return bool(np.any(np.abs(a) >= policy.spec.act_high - 1e-3))


class ControllerRuntime(JointStateInput):
    """Fast path of the controller node (see module docstring). Thread model: `ingest*` from
    subscription callbacks, `tick` from the control timer, `install`/`take_*` from the orchestrator;
    they share only single-reference assignments (atomic in CPython), no locks on the tick path."""

    def __init__(self, config: RuntimeConfig, obs_map: ObservationMap,
                 monitor: Any | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(config, monitor, clock)
        self.obs_map = obs_map
        self._base_sensors = tuple(getattr(obs_map, "base_sensors", ()))   # IMU / odometry / task the map needs
        self.base_widths.update(getattr(obs_map, "base_widths", {}))
        self._safe = np.zeros(config.act_dim) if config.safe_command is None else \
            np.asarray(config.safe_command, dtype=np.float64)
        self._low = None if config.act_low is None else np.asarray(config.act_low, dtype=np.float64)
        self._high = None if config.act_high is None else np.asarray(config.act_high, dtype=np.float64)
        self._safe = self._clip(self._safe)     # checked by RuntimeConfig; clipped again, whatever comes
        self._safe.flags.writeable = False
        self._slot = AuthoritySlot()
        self._tripped_generation = -1
        self.last_trip: GuardTrip | None = None
        self._monitored_stamp = math.nan
        self._pending_monitor: tuple | None = None   # (t, obs, action) for finish_tick
        self.ticks = {k: 0 for k in TICK_COUNTERS}
        self.drift_events: deque = deque(maxlen=32)   # DriftEvents raised in the tick, for the orchestrator
        self._cand_cmp = Comparison()
        self._inc_cmp = Comparison()
        self.last_output: TickOutput | None = None
        self.tick_time_max_s = 0.0
        self.tick_time_last_s = 0.0
        self._swap_lock = threading.Lock()            # serialises writers of the slot, never the tick

    # -- authority (called outside the tick) --------------------------------------------------------
    @property
    def slot(self) -> AuthoritySlot:
        return self._slot

    @property
    def safe_command(self) -> np.ndarray:
        """What a tick holds on stale input (a copy); a node publishes it last on its way out."""
        return self._safe.copy()

    def check_policy(self, p: CompiledPolicy | None) -> None:
        """Raise ValueError unless `p` (None passes) fits this plant's observation and action sizes."""
        if p is None:
            return
        if p.spec.obs_dim != self.obs_map.obs_dim or p.spec.act_dim != self.config.act_dim:
            raise ValueError(f"policy {p.genome_id}: obs {p.spec.obs_dim} / act {p.spec.act_dim} does not "
                             f"fit this plant (obs {self.obs_map.obs_dim} / act {self.config.act_dim})")

    _KEEP: Any = object()

    def install(self, *, authority: Authority | str | Any = _KEEP, champion: CompiledPolicy | None | Any = _KEEP,
                candidate: CompiledPolicy | None | Any = _KEEP, canary: Canary | None | Any = _KEEP
                ) -> AuthoritySlot:
        """Swap in a new authority slot (one reference assignment: the next tick sees all of it).

        Arguments left out keep their current value. Raises ValueError (before anything changes) for
        a policy that does not fit the plant. A new slot clears any guard trip of the previous one.
        """
        K = ControllerRuntime._KEEP
        for p in (champion, candidate):
            if p is not K:
                self.check_policy(p)
        with self._swap_lock:
            cur = self._slot
            new = AuthoritySlot(
                authority=cur.authority if authority is K else Authority(authority),
                champion=cur.champion if champion is K else champion,
                candidate=cur.candidate if candidate is K else candidate,
                canary=cur.canary if canary is K else canary,
                generation=cur.generation + 1)
            if new.candidate is not cur.candidate:
                self._cand_cmp = Comparison()
            self._slot = new
        return new

    @property
    def tripped(self) -> bool:
        """The current slot's challenger has been handed back by a guard."""
        return self._tripped_generation == self._slot.generation

    # -- statistics (taken by the orchestrator / diagnostics) -------------------------------------
    def candidate_comparison(self) -> Comparison:
        return self._cand_cmp

    def reset_candidate_comparison(self, now: float = math.nan) -> Comparison:
        old, self._cand_cmp = self._cand_cmp, Comparison(now)
        return old

    def incumbent_comparison(self) -> Comparison:
        return self._inc_cmp

    def take_rewards(self, now: float = math.nan) -> RewardStats:
        old, self._rewards = self._rewards, RewardStats(now)
        return old

    def counters(self) -> dict[str, int]:
        out = {f"refused_{k}": v for k, v in self.refused.items()}
        out.update(self.ticks)
        out["accepted"] = self.accepted
        out["refused_total"] = sum(self.refused.values())
        out["incumbent_refused"] = self.incumbent_refused
        out["clock_resets"] = self.clock_resets
        return out

    # -- the tick -----------------------------------------------------------------------------------
    def tick(self, now: float | None = None, *, defer_monitor: bool = False) -> TickOutput:
        """One control tick (see module docstring). Never raises: an internal error holds the safe
        command (or publishes nothing without authority) and is counted.

        `defer_monitor`: leave the drift monitor's update for `finish_tick`, so that a node can
        publish the command first (the update does not shape the command and is most of the tick's
        cost); it must call `finish_tick` before the next tick."""
        t0 = time.perf_counter()
        now = self.clock() if now is None else float(now)
        self._pending_monitor = None
        try:
            out = self._tick(now)
        except Exception:
            self.ticks["internal_errors"] += 1
            slot = self._slot
            out = TickOutput(now, "error", None if slot.authority is Authority.NONE else self._clip(self._safe.copy()))
        self.last_output = out
        self.tick_time_last_s = 0.0
        self._account(time.perf_counter() - t0)
        if not defer_monitor:
            self.finish_tick()
        return out

    def finish_tick(self) -> None:
        """The deferred part of the last tick: the drift monitor's update (see `tick`)."""
        pending, self._pending_monitor = self._pending_monitor, None
        if pending is None:
            return
        t0 = time.perf_counter()
        self._update_monitor(*pending)
        self._account(time.perf_counter() - t0)

    def _account(self, dt: float) -> None:
        """tick_time_last_s: the whole tick, deferred monitor update included."""
        self.tick_time_last_s += dt
        if self.tick_time_last_s > self.tick_time_max_s:
            self.tick_time_max_s = self.tick_time_last_s

    def _hold(self, now: float, slot: AuthoritySlot, status: str, latency=None) -> TickOutput:
        """No usable data or policy: hold the safe command (or, for the incumbent canary, relay the
        incumbent if it is fresh; without authority publish nothing)."""
        self.ticks[status] += 1
        if slot.authority is Authority.NONE:
            return TickOutput(now, status, None, latency_s=latency)
        if slot.authority is Authority.INCUMBENT:
            inc = self._fresh_incumbent(now)
            if inc is not None:
                return TickOutput(now, status, self._clip(inc.copy()), latency_s=latency)
        return TickOutput(now, status, self._clip(self._safe.copy()), latency_s=latency)

    def _fresh_incumbent(self, now: float) -> np.ndarray | None:
        inc = self._incumbent
        if inc is None or now - inc[0] > self.config.guard.incumbent_timeout_s:
            return None
        return inc[1]

    def _clip(self, a: np.ndarray) -> np.ndarray:
        if self._low is not None:
            a = np.maximum(a, self._low)
        if self._high is not None:
            a = np.minimum(a, self._high)
        return a

    def _trip(self, now: float, slot: AuthoritySlot, reason: str, detail: str, who: str | None) -> GuardTrip:
        trip = GuardTrip(now, slot.generation, reason, detail, who)
        self._tripped_generation = slot.generation
        self.last_trip = trip
        self.ticks["guard_trips"] += 1
        return trip

    def _tick(self, now: float) -> TickOutput:
        self.ticks["ticks"] += 1
        slot = self._slot                       # the one read of the authority per tick
        if self._since_tick > self.config.burst_limit:
            self.ticks["bursts"] += 1
        self._since_tick = 0
        sample = self._latest
        if sample is None:
            return self._hold(now, slot, "waiting")
        latency = now - sample.received
        if latency > self.config.stale_timeout_s:
            return self._hold(now, slot, "stale", latency)
        champ = slot.champion
        if champ is None:
            return self._hold(now, slot, "no_policy", latency)
        base = ()
        if self._base_sensors:     # a floating base: its IMU / odometry must be as fresh as the joints
            base = self.fresh_base(self._base_sensors, now)
            if base is None:
                return self._hold(now, slot, "base_stale", latency)
        try:
            obs = self.obs_map(sample.positions, sample.velocities, *base)
        except Exception:
            return self._hold(now, slot, "obs_error", latency)
        a_champ = champ.act(obs)
        if not np.isfinite(a_champ).all():
            return self._hold(now, slot, "policy_error", latency)

        margin = joint_margin(self.config.guard, sample.positions, self._names)
        a_cand, trip = self._run_candidate(now, slot, obs, a_champ, margin[0])
        tripped = self._tripped_generation == slot.generation
        command: np.ndarray | None = a_champ
        share = 0.0
        if slot.authority is Authority.NONE:
            command = None
            inc = self._fresh_incumbent(now)
            if inc is not None:
                self._inc_cmp.add(inc, a_champ, margin[0], False, _saturated(a_champ, champ))
        elif slot.authority is Authority.CHAMPION:
            if a_cand is not None and slot.canary is not None and not tripped:
                command, share, trip = self._canary(now, slot, a_champ, a_cand, margin, slot.candidate.genome_id,
                                                    ("candidate", "champion"), rescue=slot.canary.rescue)
        else:  # INCUMBENT: relay the incumbent, blend the champion in during canary windows
            inc = self._fresh_incumbent(now)
            if inc is None:
                if slot.canary is not None and not tripped and slot.canary.share(now) > 0.0:
                    trip = self._trip(now, slot, "incumbent_stale", "no fresh incumbent command",
                                      champ.genome_id)
                out = self._hold(now, slot, "stale", latency)
                return out if trip is None else replace(out, tripped=trip)
            self._inc_cmp.add(inc, a_champ, margin[0], False, _saturated(a_champ, champ))
            command = inc
            if slot.canary is not None and not tripped:    # (the node canary is never a rescue)
                command, share, trip = self._canary(now, slot, inc, a_champ, margin, champ.genome_id,
                                                    ("champion", "incumbent"), rescue=False)
        if command is not None:
            command = self._clip(np.asarray(command, dtype=np.float64))
        applied = command if command is not None else self._fresh_incumbent(now)
        if self.monitor is not None and applied is not None and sample.stamp != self._monitored_stamp:
            self._monitored_stamp = sample.stamp        # one monitor update per joint state, not per tick
            self._pending_monitor = (sample.stamp, obs, applied)
        self.ticks["ok"] += 1
        return TickOutput(now, "ok", command, champion_action=a_champ, challenger_action=a_cand,
                          share=share, latency_s=latency, tripped=trip)

    def _run_candidate(self, now: float, slot: AuthoritySlot, obs: np.ndarray, a_champ: np.ndarray,
                       margin: float) -> tuple[np.ndarray | None, GuardTrip | None]:
        """The orchestrator candidate's action on the same state, compared with the champion's; a
        failing candidate that holds a canary is handed back (a trip)."""
        cand = slot.candidate
        if cand is None:
            return None, None
        cmp = self._cand_cmp
        try:
            a_cand = cand.act(obs)
            ok = bool(np.isfinite(a_cand).all())
        except Exception:
            ok = False
        if ok:
            cmp.add(a_champ, a_cand, margin, _saturated(a_champ, slot.champion), _saturated(a_cand, cand))
            return a_cand, None
        cmp.errors += 1
        if self._tripped_generation != slot.generation and slot.canary is not None:
            return None, self._trip(now, slot, "challenger_error", "candidate action not finite", cand.genome_id)
        return None, None

    def _canary(self, now: float, slot: AuthoritySlot, base: np.ndarray, challenger: np.ndarray,
                margin: tuple[float, str | None], who: str, names: tuple[str, str], *, rescue: bool
                ) -> tuple[np.ndarray, float, GuardTrip | None]:
        """The one guard path of a challenger holding a canary (the candidate next to the champion, or
        the champion next to the incumbent): the blended command, or, when a guard is broken, the
        base command alone and a trip. A rescue canary skips the divergence guard, and the joint
        bounds during its grace period."""
        canary = slot.canary
        share = canary.share(now)
        if share <= 0.0:
            return base, share, None
        broken = challenger_violation(self.config.guard, base, challenger, margin[0], margin[1], names,
                                      check_divergence=not rescue,
                                      check_bounds=not (rescue and now - canary.start < canary.grace_s))
        if broken is not None:
            return base, 0.0, self._trip(now, slot, broken[0], broken[1], who)
        return (1.0 - share) * base + share * challenger, share, None

    def _update_monitor(self, t: float, obs: np.ndarray, action: np.ndarray) -> None:
        try:
            event = self.monitor.update(t, obs, action, self._reward)
        except Exception:
            self.ticks["monitor_errors"] += 1
            return
        if event is not None:
            self.drift_events.append(event)
