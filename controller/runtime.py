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
*one immutable `Authority` object* that the tick reads once at its start. A hot swap is therefore an
attribute assignment between two ticks: a tick computes with either the old authority or the new
one, never half of each, and no lock is taken on the control path.

Authority (who drives the command), in ros2_control terms:

- ``NONE``       shadow: no command is published at all (the robot's own controller drives it);
                 the champion's actions are still computed and compared with the incumbent's.
- ``CHAMPION``   the champion drives; a *candidate* may run beside it (orchestrator shadow) and may
                 get a bounded share of the command (orchestrator canary: blended action
                 ``(1 - w) a_champion + w a_candidate``, optionally only in time slices).
- ``INCUMBENT``  node-level canary next to an existing controller: the incumbent's command (received
                 on a topic) is relayed, and in bounded windows the champion's action is blended in.

Guards run in the tick because a hand-back must not wait for the orchestrator: on any violation
while a challenger has authority (non-finite or failing challenger, action divergence above the
limit, a joint outside its bounds, the incumbent's commands going stale) the tick hands authority
back in the *same* tick and records a `GuardTrip`; the orchestrator later turns it into a state
transition and an audit row. A trip is tied to the authority's generation, so it never leaks into
the next candidate.

Bad input never raises: each refused message is counted by reason (`REFUSALS`), and a tick without
fresh valid data holds the configured safe command and reports ``stale``.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from sim.policy import PolicySpec

# Reasons a message is refused (the keys of `ControllerRuntime.refused`).
REFUSALS = ("bad_time", "repeated_time", "backwards_time", "wrong_length", "missing_joint",
            "duplicate_name", "non_finite", "out_of_range", "bad_message", "no_velocity")
# What to do with a JointState whose velocity array is empty (many drivers publish positions only).
VELOCITY_SOURCES = ("measured", "differentiate")
# Tick-level counters (the keys of `ControllerRuntime.ticks`).
TICK_COUNTERS = ("ticks", "ok", "stale", "waiting", "no_policy", "obs_error", "policy_error",
                 "bursts", "guard_trips", "monitor_errors", "internal_errors")


class Authority(str, Enum):
    NONE = "none"
    CHAMPION = "champion"
    INCUMBENT = "incumbent"


# ---------------------------------------------------------------------- policies

class CompiledPolicy:
    """A policy ready for one observation at a time: per-layer (W, b) views, no allocation beyond
    the activations. Same math and dtype as `sim.policy.policy_act` (float32 weights), so the tick
    computes what the gate evaluated."""

    __slots__ = ("genome_id", "spec", "weights", "_layers", "_low", "_high")

    def __init__(self, genome_id: str, spec: PolicySpec, weights: np.ndarray) -> None:
        if spec.discrete:
            raise ValueError(f"policy {genome_id}: discrete policies cannot drive a forward command "
                             "controller (continuous actions only)")
        w = np.array(weights, dtype=np.float32, copy=True).reshape(-1)
        if w.size != spec.num_params:
            raise ValueError(f"policy {genome_id}: {w.size} weights, its PolicySpec needs {spec.num_params}")
        if not np.all(np.isfinite(w)):
            raise ValueError(f"policy {genome_id}: non-finite weights")
        w.flags.writeable = False
        self.genome_id, self.spec, self.weights = genome_id, spec, w
        layers, offs = [], spec.offsets()
        for i in range(0, len(offs), 2):
            (_, wo, ws), (_, bo, bs) = offs[i], offs[i + 1]
            layers.append((w[wo:wo + ws[0] * ws[1]].reshape(ws), w[bo:bo + bs[0]]))
        self._layers = tuple(layers)
        self._low, self._high = np.float32(spec.act_low), np.float32(spec.act_high)

    @classmethod
    def from_snapshot(cls, snap: Any) -> "CompiledPolicy":
        """From a `safety.registry.PolicySnapshot` (genome_id, spec, weights)."""
        return cls(snap.genome_id, snap.spec, snap.weights)

    def act(self, obs: np.ndarray) -> np.ndarray:
        h = np.asarray(obs, dtype=np.float32)
        last = len(self._layers) - 1
        for i, (W, b) in enumerate(self._layers):
            h = W @ h + b
            if i < last:
                h = np.tanh(h)
        return np.clip(h, self._low, self._high).astype(np.float64)


# ---------------------------------------------------------------------- observation maps

class ObservationMap(Protocol):
    """Joint positions/velocities (in the plant's joint order) -> the policy's observation."""

    obs_dim: int
    obs_names: tuple[str, ...]

    def __call__(self, positions: np.ndarray, velocities: np.ndarray) -> np.ndarray: ...


class CartpoleObservation:
    """dm_control cartpole: (cart, cos pole, sin pole, cart velocity, pole angular velocity)."""

    obs_names = ("cart_position", "pole_cos", "pole_sin", "cart_velocity", "pole_angular_velocity")
    obs_dim = 5

    def __call__(self, positions: np.ndarray, velocities: np.ndarray) -> np.ndarray:
        return np.array([positions[0], math.cos(positions[1]), math.sin(positions[1]),
                         velocities[0], velocities[1]])


class KinematicObservation:
    """Any plant whose joints are all hinges/slides: put the measured configuration into a private
    MuJoCo model, run forward kinematics (`mj_forward`, no dynamics step) and read the plant's own
    observation function. Costs one `mj_forward` (tens of microseconds for the walker).

    Limitation: observations that are not functions of the joint state (the reacher's moving
    target, `to_target`) cannot be measured this way; they read the plant's internal state at t=0.
    """

    def __init__(self, plant_name: str) -> None:
        from sim.plants import make_plant  # mujoco/dm_control, never torch
        self.plant = make_plant(plant_name)
        model = self.plant.model
        if model.nq != model.njnt or model.nv != model.njnt:
            raise ValueError(f"plant {plant_name!r}: kinematic observation needs one dof per joint")
        self.obs_names = tuple(self.plant.obs_names)
        self.obs_dim = len(self.obs_names)
        self._qadr = np.array([model.jnt_qposadr[i] for i in range(model.njnt)])
        self._vadr = np.array([model.jnt_dofadr[i] for i in range(model.njnt)])
        self._q = np.zeros(model.nq)
        self._v = np.zeros(model.nv)

    def __call__(self, positions: np.ndarray, velocities: np.ndarray) -> np.ndarray:
        self._q[self._qadr] = positions
        self._v[self._vadr] = velocities
        self.plant.set_qpos_qvel(self._q, self._v)
        return np.asarray(self.plant._observe(), dtype=np.float64)


def make_observation_map(plant_name: str) -> ObservationMap:
    """The observation map for a plant (analytic for the cartpole, kinematic otherwise)."""
    if plant_name == "cartpole":
        return CartpoleObservation()
    return KinematicObservation(plant_name)


def plant_info(plant_name: str) -> dict:
    """Joint names, action size/limits and control period of a plant (for defaults)."""
    from sim.plants import make_plant
    p = make_plant(plant_name)
    return {"joint_names": list(p.joint_names), "act_dim": p.act_dim, "act_low": p.act_low.tolist(),
            "act_high": p.act_high.tolist(), "control_dt": p.control_dt, "obs_names": list(p.obs_names),
            "actuator_names": list(p.actuator_names)}


# ---------------------------------------------------------------------- contracts

@dataclass(frozen=True)
class GuardConfig:
    """Limits that end a challenger's authority at once (see module docstring)."""

    max_divergence: float = 0.5                       # |a_challenger - a_base|_inf
    joint_bounds: tuple[tuple[int, float, float], ...] = ()   # (joint index, low, high) on positions
    incumbent_timeout_s: float = 0.2                  # node canary: incumbent commands must be fresh

    @classmethod
    def from_names(cls, joint_names: Sequence[str], bounds: dict[str, Sequence[float]] | None = None,
                   **kw: Any) -> "GuardConfig":
        out = []
        for name, lohi in (bounds or {}).items():
            if name not in joint_names:
                raise ValueError(f"guard bound for unknown joint {name!r}; joints: {list(joint_names)}")
            lo, hi = (float(x) for x in lohi)
            if not lo < hi:
                raise ValueError(f"guard bound for {name!r}: low {lo} must be < high {hi}")
            out.append((list(joint_names).index(name), lo, hi))
        return cls(joint_bounds=tuple(out), **kw)


@dataclass(frozen=True)
class RuntimeConfig:
    """Static settings of the fast path (changing them means building a new runtime)."""

    joint_names: tuple[str, ...]                      # robot names of the plant's joints, plant order
    act_dim: int
    act_low: tuple[float, ...] | None = None          # command clip (None: no clip beyond the policy's)
    act_high: tuple[float, ...] | None = None
    safe_command: tuple[float, ...] | None = None     # held when data is stale (None: zeros)
    stale_after_s: float = 0.1                        # no valid joint state for this long -> stale
    max_abs: float = 1.0e6                            # larger magnitudes are refused (sensor glitch)
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
        if not (self.stale_after_s > 0 and self.max_abs > 0 and self.burst_limit >= 1):
            raise ValueError("stale_after_s and max_abs must be > 0, burst_limit >= 1")


@dataclass(frozen=True)
class Canary:
    """A challenger's bounded authority: weight `weight` during the first `duty` of every
    `slice_s` seconds counted from `start` (duty 1: continuous).

    A *rescue* canary (`rescue=True`, see `controller.orchestrator`) replaces a champion that was
    itself failing on the live robot: no divergence guard (distance from a failing controller says
    nothing), and joint-bound trips count only once the challenger has held authority for
    `grace_s` (until then the state is the one the failing champion left behind)."""

    weight: float
    start: float = 0.0
    slice_s: float = 1.0
    duty: float = 1.0
    rescue: bool = False
    grace_s: float = 0.0

    def share(self, now: float) -> float:
        if self.weight <= 0.0:
            return 0.0
        if self.duty >= 1.0:
            return self.weight
        return self.weight if ((now - self.start) % self.slice_s) < self.duty * self.slice_s else 0.0


@dataclass(frozen=True)
class AuthoritySlot:
    """Everything the tick needs to decide a command; replaced as a whole (the hot swap)."""

    authority: Authority = Authority.CHAMPION
    champion: CompiledPolicy | None = None
    candidate: CompiledPolicy | None = None          # orchestrator shadow/canary candidate
    canary: Canary | None = None                     # challenger share (candidate, or champion vs incumbent)
    generation: int = 0


@dataclass(frozen=True)
class Sample:
    """One accepted joint state, already in the plant's joint order."""

    stamp: float
    received: float
    positions: np.ndarray
    velocities: np.ndarray


@dataclass(frozen=True)
class GuardTrip:
    """A challenger lost its authority in the tick."""

    t: float
    generation: int
    reason: str
    detail: str
    challenger: str | None

    def to_dict(self) -> dict:
        return {"t": self.t, "generation": self.generation, "reason": self.reason,
                "detail": self.detail, "challenger": self.challenger}


class Comparison:
    """Running pairwise statistics of two action streams on the same live states (shadow)."""

    __slots__ = ("n", "sum_div", "sum_sq", "max_div", "sat_a", "sat_b", "errors", "margin_min", "outside",
                 "since")

    def __init__(self, since: float = math.nan) -> None:
        self.n, self.sum_div, self.sum_sq, self.max_div = 0, 0.0, 0.0, 0.0
        self.sat_a = self.sat_b = self.errors = self.outside = 0
        self.margin_min = math.inf
        self.since = since

    def add(self, a: np.ndarray, b: np.ndarray, margin: float, sat_a: bool, sat_b: bool) -> None:
        d = float(np.max(np.abs(a - b)))
        self.n += 1
        self.sum_div += d
        self.sum_sq += d * d
        if d > self.max_div:
            self.max_div = d
        self.sat_a += sat_a
        self.sat_b += sat_b
        if margin < self.margin_min:
            self.margin_min = float(margin)
        self.outside += margin < 0.0

    def to_dict(self) -> dict:
        n = max(self.n, 1)
        return {"n": self.n, "divergence_mean": self.sum_div / n if self.n else None,
                "divergence_rms": math.sqrt(self.sum_sq / n) if self.n else None,
                "divergence_max": self.max_div if self.n else None,
                "saturation_reference": self.sat_a / n if self.n else None,
                "saturation_challenger": self.sat_b / n if self.n else None,
                "errors": self.errors,
                "joint_margin_min": None if math.isinf(self.margin_min) else self.margin_min,
                "outside_bounds": self.outside / n if self.n else None,
                "since": None if math.isnan(self.since) else self.since}


class RewardStats:
    """Running mean of the live performance signal (reward topic)."""

    __slots__ = ("n", "total", "since")

    def __init__(self, since: float = math.nan) -> None:
        self.n, self.total, self.since = 0, 0.0, since

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None


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


# ---------------------------------------------------------------------- the runtime

class ControllerRuntime:
    """Fast path of the controller node (see module docstring). Thread model: `ingest*` from
    subscription callbacks, `tick` from the control timer, `install`/`take_*` from the orchestrator;
    they share only single-reference assignments (atomic in CPython), no locks on the tick path."""

    def __init__(self, config: RuntimeConfig, obs_map: ObservationMap,
                 monitor: Any | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.obs_map = obs_map
        self.monitor = monitor                  # controller.drift.DriftMonitor or None
        self.clock = clock
        self._names = tuple(config.joint_names)
        self._index_cache: dict[tuple, np.ndarray | str] = {}
        n = len(self._names)
        self._n = n
        self._safe = np.zeros(config.act_dim) if config.safe_command is None else \
            np.asarray(config.safe_command, dtype=np.float64)
        self._low = None if config.act_low is None else np.asarray(config.act_low, dtype=np.float64)
        self._high = None if config.act_high is None else np.asarray(config.act_high, dtype=np.float64)
        self._safe = self._clip(self._safe)     # checked by RuntimeConfig; clipped again, whatever comes
        self._safe.flags.writeable = False
        self._differentiate = config.velocity_source == "differentiate"
        self._prev_positions: tuple[float, np.ndarray] | None = None   # (stamp, positions) for differencing
        self.first_refusal: dict[str, str] = {}  # reason -> a one-line description of its first message
        self._slot = AuthoritySlot()
        self._tripped_generation = -1
        self.last_trip: GuardTrip | None = None
        self._latest: Sample | None = None
        self._last_stamp = -math.inf
        self._backwards_run = 0
        self._since_tick = 0
        self._incumbent: tuple[float, np.ndarray] | None = None
        self._reward: float | None = None
        self._monitored_stamp = math.nan
        self._pending_monitor: tuple | None = None   # (t, obs, action) for finish_tick
        self.refused = {k: 0 for k in REFUSALS}
        self.ticks = {k: 0 for k in TICK_COUNTERS}
        self.accepted = 0
        self.incumbent_refused = 0
        self.clock_resets = 0
        self.drift_events: deque = deque(maxlen=32)   # DriftEvents raised in the tick, for the orchestrator
        self._cand_cmp = Comparison()
        self._inc_cmp = Comparison()
        self._rewards = RewardStats()
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

    def _check_policy(self, p: CompiledPolicy | None) -> None:
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
                self._check_policy(p)
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

    def reset_incumbent_comparison(self, now: float = math.nan) -> Comparison:
        old, self._inc_cmp = self._inc_cmp, Comparison(now)
        return old

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

    # -- input (subscription callbacks) ---------------------------------------------------------
    def _refuse(self, reason: str, detail: str = "") -> bool:
        self.refused[reason] += 1
        if reason not in self.first_refusal:
            self.first_refusal[reason] = detail or reason
        return False

    def input_problem(self) -> str:
        """Why joint states are being refused, in words (for the stale diagnostic), or ''."""
        if not self.first_refusal:
            return ""
        worst = max(self.first_refusal, key=lambda k: self.refused.get(k, 0))
        return f"{self.refused[worst]} refused as {worst}: {self.first_refusal[worst]}"

    def joint_order(self, names: Sequence[str]) -> np.ndarray | str:
        """Indices of the configured joints in a JointState's name list, or why it cannot be used
        ('duplicate_name', 'missing_joint'); cached per name list. Public for offline replay."""
        return self._order(tuple(names))

    def _order(self, names: tuple) -> np.ndarray | str:
        """Indices of the configured joints in a message's name list (cached per name list)."""
        hit = self._index_cache.get(names)
        if hit is not None:
            return hit
        if len(set(names)) != len(names):
            res: np.ndarray | str = "duplicate_name"
        else:
            pos = {n: i for i, n in enumerate(names)}
            missing = [n for n in self._names if n not in pos]
            res = "missing_joint" if missing else np.array([pos[n] for n in self._names], dtype=np.intp)
        if len(self._index_cache) < 64:
            self._index_cache[names] = res
        return res

    def ingest(self, stamp: float, names: Sequence[str], positions: Sequence[float],
               velocities: Sequence[float], now: float | None = None) -> bool:
        """Validate one joint state; True if it became the latest sample. Never raises.

        Names may come in any order and may include joints this controller does not use; every
        configured joint must be present exactly once. Stamps must increase strictly (a duplicate
        or late message is refused); `clock_reset_after` backwards stamps in a row are taken as a
        clock reset (a restarted simulation) and accepted from then on.
        """
        try:
            return self._ingest(stamp, names, positions, velocities, self.clock() if now is None else now)
        except Exception:
            return self._refuse("bad_message")

    def _ingest(self, stamp, names, positions, velocities, now) -> bool:
        self._since_tick += 1
        try:
            stamp = float(stamp)
        except (TypeError, ValueError):
            return self._refuse("bad_time")
        if not math.isfinite(stamp) or stamp <= 0.0:
            return self._refuse("bad_time")
        names = tuple(names)
        if not all(isinstance(n, str) for n in names):
            return self._refuse("bad_message")
        pos = np.asarray(positions, dtype=np.float64)
        vel = np.asarray(velocities, dtype=np.float64)
        positions_only = vel.ndim == 1 and vel.shape[0] == 0 and len(names) > 0
        if positions_only and not self._differentiate:
            return self._refuse("no_velocity", "JointState without velocities (positions only); set "
                                "velocity_source: differentiate to estimate them from the positions")
        if pos.ndim != 1 or vel.ndim != 1 or pos.shape[0] != len(names) or \
                (vel.shape[0] != len(names) and not positions_only):
            return self._refuse("wrong_length", f"{len(names)} names, {pos.shape[0] if pos.ndim else '?'} "
                                f"positions, {vel.shape[0] if vel.ndim else '?'} velocities")
        order = self._order(names)
        if isinstance(order, str):
            return self._refuse(order)
        p = pos[order]
        v = np.zeros_like(p) if positions_only else vel[order]
        if not (np.isfinite(p).all() and np.isfinite(v).all()):
            return self._refuse("non_finite")
        m = self.config.max_abs
        if np.abs(p).max() > m or np.abs(v).max() > m:
            return self._refuse("out_of_range")
        if stamp <= self._last_stamp:
            if stamp == self._last_stamp:
                return self._refuse("repeated_time")
            self._backwards_run += 1
            if self._backwards_run < self.config.clock_reset_after:
                return self._refuse("backwards_time")
            self.clock_resets += 1
            self._prev_positions = None
            if self.monitor is not None:
                try:
                    self.monitor.resync()
                except Exception:
                    pass
        self._backwards_run = 0
        self._last_stamp = stamp
        if self._differentiate:
            # velocity = position difference over the stamps of two consecutive accepted messages; the
            # first message (or the first after a gap longer than the stale timeout) only primes it
            prev, self._prev_positions = self._prev_positions, (stamp, p)
            if prev is None or stamp - prev[0] > self.config.stale_after_s:
                return self._refuse("no_velocity", "first positions-only joint state: velocity estimate "
                                    "starts with the next one") if positions_only else self._accept(stamp, now, p, v)
            if positions_only:
                v = (p - prev[1]) / (stamp - prev[0])
                if not np.isfinite(v).all() or np.abs(v).max() > m:
                    return self._refuse("out_of_range", "differenced velocity out of range")
        return self._accept(stamp, now, p, v)

    def _accept(self, stamp: float, now: float, p: np.ndarray, v: np.ndarray) -> bool:
        self._latest = Sample(stamp, float(now), p, v)
        self.accepted += 1
        return True

    def ingest_incumbent(self, command: Sequence[float], now: float | None = None) -> bool:
        """The incumbent controller's latest command (shadow / node canary). Never raises."""
        try:
            a = np.asarray(command, dtype=np.float64).reshape(-1)
            if a.shape[0] != self.config.act_dim or not np.isfinite(a).all():
                self.incumbent_refused += 1
                return False
            self._incumbent = (self.clock() if now is None else float(now), a)
            return True
        except Exception:
            self.incumbent_refused += 1
            return False

    def ingest_reward(self, reward: float, now: float | None = None) -> bool:
        """Live performance signal (e.g. the plant's reward); feeds the watch period and the monitor."""
        try:
            r = float(reward)
        except (TypeError, ValueError):
            return False
        if not math.isfinite(r):
            return False
        self._reward = r
        rs = self._rewards
        rs.n += 1
        rs.total += r
        return True

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

    def _joint_margin(self, positions: np.ndarray) -> tuple[float, str | None]:
        """Smallest distance of a guarded joint to its bounds (negative: outside)."""
        worst, which = math.inf, None
        for i, lo, hi in self.config.guard.joint_bounds:
            m = min(positions[i] - lo, hi - positions[i])
            if m < worst:
                worst, which = m, self._names[i]
        return worst, which

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
        if latency > self.config.stale_after_s:
            return self._hold(now, slot, "stale", latency)
        champ = slot.champion
        if champ is None:
            return self._hold(now, slot, "no_policy", latency)
        try:
            obs = self.obs_map(sample.positions, sample.velocities)
        except Exception:
            return self._hold(now, slot, "obs_error", latency)
        a_champ = champ.act(obs)
        if not np.isfinite(a_champ).all():
            return self._hold(now, slot, "policy_error", latency)

        margin, margin_joint = self._joint_margin(sample.positions)
        guard = self.config.guard
        trip = None
        tripped = self._tripped_generation == slot.generation

        # orchestrator candidate: computed on the same state, compared, maybe given a share
        a_cand = None
        share = 0.0
        cand = slot.candidate
        if cand is not None:
            cmp = self._cand_cmp
            try:
                a_cand = cand.act(obs)
                ok = bool(np.isfinite(a_cand).all())
            except Exception:
                ok = False
            if not ok:
                a_cand = None
                cmp.errors += 1
                if not tripped and slot.canary is not None:
                    trip = self._trip(now, slot, "challenger_error", "candidate action not finite", cand.genome_id)
                    tripped = True
            else:
                cmp.add(a_champ, a_cand, margin, bool(np.any(np.abs(a_champ) >= champ.spec.act_high - 1e-3)),
                        bool(np.any(np.abs(a_cand) >= cand.spec.act_high - 1e-3)))

        command: np.ndarray | None
        if slot.authority is Authority.NONE:
            command = None
            inc = self._fresh_incumbent(now)
            if inc is not None:
                self._inc_cmp.add(inc, a_champ, margin, False,
                                  bool(np.any(np.abs(a_champ) >= champ.spec.act_high - 1e-3)))
        elif slot.authority is Authority.CHAMPION:
            command = a_champ
            if a_cand is not None and slot.canary is not None and not tripped:
                share = slot.canary.share(now)
                if share > 0.0:
                    div = float(np.max(np.abs(a_cand - a_champ)))
                    rescue, canary = slot.canary.rescue, slot.canary
                    if div > guard.max_divergence and not rescue:
                        trip = self._trip(now, slot, "divergence",
                                          f"|a_candidate - a_champion| = {div:.3g} > {guard.max_divergence:g}",
                                          cand.genome_id)
                        share = 0.0
                    elif margin < 0.0 and not (rescue and now - canary.start < canary.grace_s):
                        trip = self._trip(now, slot, "joint_bounds", f"joint {margin_joint} outside its "
                                          f"bounds by {-margin:.3g}", cand.genome_id)
                        share = 0.0
                    else:
                        command = (1.0 - share) * a_champ + share * a_cand
        else:  # INCUMBENT: relay the incumbent, blend the champion in during canary windows
            inc = self._fresh_incumbent(now)
            if inc is None:
                if slot.canary is not None and not tripped and slot.canary.share(now) > 0.0:
                    trip = self._trip(now, slot, "incumbent_stale", "no fresh incumbent command",
                                      champ.genome_id)
                return self._hold(now, slot, "stale", latency) if trip is None else \
                    replace(self._hold(now, slot, "stale", latency), tripped=trip)
            self._inc_cmp.add(inc, a_champ, margin, False,
                              bool(np.any(np.abs(a_champ) >= champ.spec.act_high - 1e-3)))
            command = inc
            if slot.canary is not None and not tripped:
                share = slot.canary.share(now)
                if share > 0.0:
                    div = float(np.max(np.abs(a_champ - inc)))
                    if div > guard.max_divergence:
                        trip = self._trip(now, slot, "divergence", f"|a_champion - a_incumbent| = {div:.3g} "
                                          f"> {guard.max_divergence:g}", champ.genome_id)
                        share = 0.0
                    elif margin < 0.0:
                        trip = self._trip(now, slot, "joint_bounds", f"joint {margin_joint} outside its "
                                          f"bounds by {-margin:.3g}", champ.genome_id)
                        share = 0.0
                    else:
                        command = (1.0 - share) * inc + share * a_champ
        if command is not None:
            command = self._clip(np.asarray(command, dtype=np.float64))
        applied = command if command is not None else self._fresh_incumbent(now)
        if self.monitor is not None and applied is not None and sample.stamp != self._monitored_stamp:
            self._monitored_stamp = sample.stamp        # one monitor update per joint state, not per tick
            self._pending_monitor = (sample.stamp, obs, applied)
        self.ticks["ok"] += 1
        return TickOutput(now, "ok", command, champion_action=a_champ, challenger_action=a_cand,
                          share=share, latency_s=latency, tripped=trip)

    def _update_monitor(self, t: float, obs: np.ndarray, action: np.ndarray) -> None:
        try:
            event = self.monitor.update(t, obs, action, self._reward)
        except Exception:
            self.ticks["monitor_errors"] += 1
            return
        if event is not None:
            self.drift_events.append(event)
