"""System identification by replay: make the simulator look like the drifted robot.

Given a telemetry window (measured joint states and the commands sent) and a plant, find the
DriftSpec parameters under which MuJoCo, started from the measured state at tick t and driven
open-loop by the recorded commands, reproduces the measured states at t+1..t+K. Why multi-step
and open-loop: a one-step error is dominated by sensor noise (the change in one tick is tiny next
to sigma), while a mass or gain error compounds over K ticks, so the K-step error separates the
two. Why replay and not a learned model: the candidate answer *is* a DriftSpec, so the adaptation
job can evolve on exactly the plant that explained the data.

Pieces:

- `Telemetry` is the window: qpos (T+1, nq), qvel (T+1, nv), actions (T, nu), control_dt, and
  optionally the exact MuJoCo warm start per tick when it comes from a simulator.
- `record` produces one by running a plant with a controller (plus a small probing signal, see its
  docstring), with Gaussian sensor noise.
- `Replay` replays every window in one `mujoco.rollout` call (C loop, no per-step Python) and
  returns residuals normalised per state dimension by that dimension's spread in the window, so
  slider metres and hinge radians per second weigh alike.
- `identify` minimises the mean squared residual over a per-plant parameter set (`PARAMETER_SETS`)
  with CMA-ES (pycma, seeded), within bounds: scales are searched in log space, actuator gains
  linearly over a range that includes negative values. The sign of each gain is chosen first by a
  cheap scan (every +/- combination when there are few signed gains, one at a time otherwise),
  because a reversed motor is a different basin, not a nearby point.

Parameter sets leave out what motion cannot tell apart: scaling every mass, every motor gain and
every damping by the same factor leaves the motion unchanged (only gravity and any mass held fixed
break the tie), so the cartpole set has the pole mass and the motor gain but not the cart mass.

Sensor noise: the start state of a window is a noisy measurement, and the dynamics amplify its
error (an inverted pendulum doubles it every few ticks). Replaying from it as if it were exact
biases the estimate toward parameters under which that error grows less (for the cartpole: a
lighter pole, 3x payload estimated as 0.2x). So each window's start state is corrected too: the
prediction is linearised in the start state (`Replay.refine`, finite differences, once at the
known drift and once more at the first estimate) and the best correction, with the measured start
as a prior, is projected out of the residual in closed form. The compared states stay raw: their
noise adds a constant to the loss. Optional Savitzky-Golay smoothing of start states exists but is
off by default: it distorts contact-rich motion (the walker) more than it removes noise.

Uncertainty (`SysIdResult.std`), the larger of two estimates:

1. A Laplace approximation around the estimate. The data term is the cluster-robust sandwich
   information `H M^+ H`, with `H = J^T J` from a finite-difference Jacobian of the residuals and
   `M = sum_c s_c s_c^T` over clusters c of windows, `s_c = sum_{w in c} J_w^T r_w`. A cluster is
   all windows starting in one block of `horizon` ticks: residuals within a window are correlated
   (one start-state error runs through all K predictions) and overlapping windows share
   measurements. It is combined with a Gaussian prior whose std is a quarter of each parameter's
   search range, so a parameter the window says nothing about reports about that prior width.
2. A split check: CMA-ES refits, from the estimate, on the even and on the odd blocks of windows;
   half the distance between the two half-data estimates estimates the full-data std without
   trusting local curvature (which contacts make meaningless: the walker's loss is rugged).

Neither captures bias that noise leaves in the estimate; `benchmarks/sysid.py` measures errors.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, field

import cma
import mujoco
import mujoco.rollout
import numpy as np
from scipy.signal import savgol_filter

from sim.drift_spec import DriftSpec, compose
from sim.plants import make_plant
from sim.plants.base import STATE_SPEC, Plant


@dataclass(frozen=True)
class Param:
    """One identified quantity: a DriftSpec table entry and its search range (natural units)."""

    field: str
    key: str
    lo: float
    hi: float

    @property
    def name(self) -> str:
        return f"{self.field}.{self.key}"

    @property
    def signed(self) -> bool:
        return self.lo < 0 < self.hi

    @property
    def log(self) -> bool:
        return not self.signed

    def to_search(self, x: float) -> float:
        return float(np.log(x)) if self.log else float(x)

    def from_search(self, u: float) -> float:
        if self.log:
            return float(np.exp(u))
        return float(u) if abs(u) >= 1e-3 else float(np.copysign(1e-3, u))  # gain 0 is invalid

    @property
    def search_bounds(self) -> tuple[float, float]:
        return self.to_search(self.lo), self.to_search(self.hi)


PARAMETER_SETS: dict[str, tuple[Param, ...]] = {
    "cartpole": (
        Param("mass_scale", "pole_1", 0.2, 5.0),
        Param("actuator_gain", "slide", -3.0, 3.0),
        Param("damping_scale", "slider", 0.1, 1e4),
    ),
    "walker": (
        Param("mass_scale", "torso", 0.3, 3.0),
        *(Param("actuator_gain", a, -3.0, 3.0) for a in
          ("right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle")),
        Param("friction_scale", "*", 0.1, 3.0),
        Param("damping_scale", "right_knee", 0.1, 20.0),
        Param("damping_scale", "left_knee", 0.1, 20.0),
    ),
    "reacher": (
        Param("mass_scale", "hand", 0.2, 5.0),
        Param("actuator_gain", "shoulder", -3.0, 3.0),
        Param("actuator_gain", "wrist", -3.0, 3.0),
        Param("damping_scale", "shoulder", 0.1, 20.0),
        Param("damping_scale", "wrist", 0.1, 20.0),
    ),
}
# prediction horizon (ticks) and number of windows per plant: about 0.15-0.4 s ahead, short enough
# that the open-loop replay of a closed-loop-stabilised robot does not diverge from start noise
DEFAULT_HORIZON = {"cartpole": 25, "walker": 16, "reacher": 15}
DEFAULT_WINDOWS = {"cartpole": 60, "walker": 24, "reacher": 60}


def spec_from_params(params: dict[str, float], known: DriftSpec | None = None) -> DriftSpec:
    """DriftSpec for {"mass_scale.pole_1": 3.0, ...} stacked on top of `known` drift."""
    tables: dict[str, dict[str, float]] = {}
    for name, x in params.items():
        fld, key = name.split(".", 1)
        tables.setdefault(fld, {})[key] = float(x)
    return compose(known, DriftSpec(**tables))


# -- telemetry -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Telemetry:
    """A window of measured states and the commands that produced them.

    `qpos[t], qvel[t]` are measured before `actions[t]` is sent; `qpos[t+1]` after one control
    tick. `warmstart` (T+1, nv) is optional: present only when the window comes from a simulator
    and exact replay is wanted. `breaks` (optional, sorted tick indices) marks ticks t after which
    `qpos[t+1]` is NOT the result of `actions[t]`: the telemetry was interrupted there (a gap in the
    stream, a robot that fell and was reset), so no replay window may cross it. Several contiguous
    stretches of a robot that keeps falling thus make one window without faking dynamics.
    """

    qpos: np.ndarray
    qvel: np.ndarray
    actions: np.ndarray
    control_dt: float
    warmstart: np.ndarray | None = None
    breaks: np.ndarray | None = None

    def window_starts(self, horizon: int, action_delay: int = 0, stride: int = 1) -> np.ndarray:
        """Start ticks of the `horizon`-tick replay windows that cross no break."""
        starts = np.arange(action_delay, self.ticks - horizon + 1, stride)
        if self.breaks is not None and len(self.breaks) and starts.size:
            b = np.asarray(self.breaks, dtype=np.int64)
            # the window replays the transitions t -> t+1 for t in [s - delay, s + horizon - 1]
            first = np.searchsorted(b, starts - action_delay, side="left")
            clean = first >= b.size
            clean |= b[np.minimum(first, b.size - 1)] > starts + horizon - 1
            starts = starts[clean]
        return starts

    @property
    def ticks(self) -> int:
        return int(self.actions.shape[0])

    @classmethod
    def from_states(cls, plant: Plant, states, actions, control_dt: float) -> "Telemetry":
        """From per-tick state rows: either the plant's full state (`get_state`) or qpos|qvel."""
        states = np.asarray(states, dtype=np.float64)
        m = plant.model
        if states.ndim != 2:
            raise ValueError(f"telemetry.states: expected a 2-D array (ticks x state), got shape "
                             f"{states.shape}")
        if states.shape[1] == m.nq + m.nv:
            return cls(states[:, :m.nq], states[:, m.nq:], np.asarray(actions, float), control_dt)
        if states.shape[1] >= plant.mj_state_size:
            data = mujoco.MjData(m)
            qpos, qvel, warm = [], [], []
            for row in states:
                mujoco.mj_setState(m, data, row[:plant.mj_state_size], STATE_SPEC)
                qpos.append(data.qpos.copy())
                qvel.append(data.qvel.copy())
                warm.append(data.qacc_warmstart.copy())
            return cls(np.array(qpos), np.array(qvel), np.asarray(actions, float), control_dt,
                       np.array(warm))
        raise ValueError(f"telemetry.states: rows have {states.shape[1]} values; expected "
                         f"nq+nv={m.nq + m.nv} or the plant's full state ({plant.mj_state_size})")

    def validate(self, plant: Plant, horizon: int) -> None:
        """Refuse a window before any work, naming the offending field."""
        m = plant.model
        for name, arr, width in (("qpos", self.qpos, m.nq), ("qvel", self.qvel, m.nv),
                                 ("actions", self.actions, m.nu)):
            if arr.ndim != 2 or arr.shape[1] != width:
                raise ValueError(f"telemetry.{name}: expected shape (ticks, {width}) for plant "
                                 f"{plant.name!r}, got {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"telemetry.{name}: contains NaN or infinite values")
        if self.qpos.shape[0] != self.ticks + 1 or self.qvel.shape[0] != self.ticks + 1:
            raise ValueError(f"telemetry.qpos/qvel: need ticks+1={self.ticks + 1} rows (a state "
                             f"before and after every action), got {self.qpos.shape[0]}")
        if self.ticks < horizon + 1:
            raise ValueError(f"telemetry.actions: {self.ticks} ticks is too few for a "
                             f"{horizon}-tick prediction horizon (need at least {horizon + 1})")
        if self.breaks is not None:
            b = np.asarray(self.breaks)
            if b.ndim != 1 or (b.size and (not np.issubdtype(b.dtype, np.integer) or b.min() < 0
                                           or b.max() >= self.ticks or np.any(np.diff(b) <= 0))):
                raise ValueError("telemetry.breaks: expected sorted, distinct tick indices in "
                                 f"[0, {self.ticks})")
            if self.window_starts(horizon).size == 0:
                raise ValueError(f"telemetry.breaks: no stretch of {horizon + 1} ticks without a break "
                                 f"(a {horizon}-tick prediction horizon needs one)")
        if not abs(self.control_dt - plant.control_dt) <= 1e-9:
            raise ValueError(f"telemetry.control_dt: {self.control_dt} s, but plant "
                             f"{plant.name!r} ticks every {plant.control_dt} s")


def record(plant: Plant, controller, ticks: int, noise_std: float = 0.0, seed: int = 0,
           probe: float = 0.2, probe_hold: int = 5) -> Telemetry:
    """Run `controller` on `plant` for `ticks` ticks and record what a robot's sensors report:
    qpos/qvel plus N(0, noise_std^2) noise (seeded).

    `probe` adds a random telegraph signal (+/- probe, a new sign every `probe_hold` ticks) to
    the commands, the recorded actions being what was actually sent. Why: under pure state
    feedback the command is a linear function of the state, so a motor gain and a mass that
    couples into the same state are confounded (for the cartpole, pole mass x3 and gain x0.9
    explain an LQR window almost equally well). A small independent probe breaks the tie; it is
    what an operator enables while the robot is being identified. `probe=0` records the bare
    controller.
    """
    rng = np.random.default_rng(seed)
    obs = plant.observe()
    qpos, qvel, actions = [plant.data.qpos.copy()], [plant.data.qvel.copy()], []
    dither = np.zeros(plant.act_dim)
    for k in range(ticks):
        if probe and k % probe_hold == 0:
            dither = probe * rng.choice([-1.0, 1.0], size=plant.act_dim)
        a = np.clip(np.asarray(controller(obs)) + dither, plant.act_low, plant.act_high)
        obs, _ = plant.act(a)
        actions.append(a)
        qpos.append(plant.data.qpos.copy())
        qvel.append(plant.data.qvel.copy())
    qpos, qvel = np.array(qpos), np.array(qvel)
    if noise_std:
        qpos = qpos + noise_std * rng.standard_normal(qpos.shape)
        qvel = qvel + noise_std * rng.standard_normal(qvel.shape)
    return Telemetry(qpos, qvel, np.array(actions), plant.control_dt)


# -- replay --------------------------------------------------------------------------------------

def smooth(x: np.ndarray, window: int) -> np.ndarray:
    """Centred Savitzky-Golay (cubic) along time; `window` < 5 disables it."""
    if window < 5 or x.shape[0] < window:
        return x
    return savgol_filter(x, window | 1, 3, axis=0, mode="interp")


@dataclass
class Replay:
    """Everything about a window that does not depend on the candidate parameters.

    With `refine(spec)` called, residuals are taken after the best small correction of each
    window's start state (linearised about `spec`): the start is a noisy measurement too, and
    the K measurements after it say more about it than it says about itself. Without this the
    estimate drifts toward parameters under which start-state noise grows less (for the
    cartpole: a lighter pole that barely pushes back on the cart). The correction is a linear
    least-squares problem per window with the measured start as a prior, solved with a
    projection precomputed by `refine`, so a loss evaluation stays one batched rollout.
    """

    plant: Plant                  # a private plant: drift is applied to it per evaluation
    starts: np.ndarray            # (W,) start ticks
    initial: np.ndarray           # (W, nstate) full-physics start states
    warm: np.ndarray | None       # (W, nv)
    control: np.ndarray           # (W, K * n_sub, nu)
    target: np.ndarray            # (W, K, d) measured states after each tick, d = nq + nv
    start_offset: np.ndarray      # (W, d) smoothed minus measured start state
    scale: np.ndarray             # (d,)
    horizon: int
    _A: np.ndarray | None = field(default=None, init=False, repr=False)
    _G: np.ndarray | None = field(default=None, init=False, repr=False)
    _data: mujoco.MjData = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._data = mujoco.MjData(self.plant.model)  # rollout scratch; sizes never drift

    @classmethod
    def build(cls, plant: Plant, tel: Telemetry, horizon: int, stride: int = 1,
              smooth_window: int = 0, action_delay: int = 0,
              max_windows: int | None = None) -> "Replay":
        m = plant.model
        qpos, qvel = smooth(tel.qpos, smooth_window), smooth(tel.qvel, smooth_window)
        starts = tel.window_starts(horizon, action_delay, stride)
        if max_windows and starts.size > max_windows:
            starts = starts[np.linspace(0, starts.size - 1, max_windows).round().astype(int)]
        nstate = mujoco.mj_stateSize(m, mujoco.mjtState.mjSTATE_FULLPHYSICS)
        initial = np.zeros((starts.size, nstate))
        initial[:, 0] = starts * tel.control_dt
        initial[:, 1:1 + m.nq] = qpos[starts]
        initial[:, 1 + m.nq:1 + m.nq + m.nv] = qvel[starts]
        idx = starts[:, None] + np.arange(horizon)[None, :] - action_delay
        control = np.repeat(tel.actions[idx], plant.n_sub_steps, axis=1)
        later = starts[:, None] + np.arange(1, horizon + 1)[None, :]
        target = np.concatenate([tel.qpos[later], tel.qvel[later]], axis=2)
        raw = np.concatenate([tel.qpos, tel.qvel], axis=1)
        offset = np.concatenate([qpos, qvel], axis=1)[starts] - raw[starts]
        scale = np.maximum(raw.std(axis=0), 1e-3)
        warm = tel.warmstart[starts] if tel.warmstart is not None else None
        return cls(plant, starts, initial, warm, np.ascontiguousarray(control), target, offset,
                   scale, horizon)

    @property
    def dim(self) -> int:
        return self.plant.model.nq + self.plant.model.nv

    def _apply(self, spec: DriftSpec) -> None:
        model_part = {k: v for k, v in spec.as_dict().items()
                      if k in ("mass_scale", "friction_scale", "actuator_gain", "damping_scale",
                               "gravity")}
        self.plant.apply_drift(DriftSpec(**model_part))

    def _predict(self, initial: np.ndarray, control: np.ndarray,
                 warm: np.ndarray | None) -> np.ndarray:
        """(B, K, d) states after each tick, one `mujoco.rollout` call for the whole batch."""
        p = self.plant
        state = mujoco.rollout.rollout(p.model, self._data, initial, control,
                                       control_spec=mujoco.mjtState.mjSTATE_CTRL,
                                       initial_warmstart=warm)[0]
        n = p.n_sub_steps
        return state[:, n - 1::n, 1:1 + self.dim]

    def raw_residuals(self, spec: DriftSpec) -> np.ndarray:
        """(W, K, d) normalised prediction errors from the (smoothed) measured start states."""
        self._apply(spec)
        err = (self._predict(self.initial, self.control, self.warm) - self.target) / self.scale
        return np.where(np.isfinite(err), err, 1e3)  # a diverged rollout is just very wrong

    def refine(self, spec: DriftSpec, rel_step: float = 1e-3) -> int:
        """Linearise every window's prediction in its start state under `spec` and precompute the
        start-correction projection. One batch of 2d rollouts per window; returns that count in
        loss-evaluation units (2d) for budget accounting."""
        self._apply(spec)
        self._linearize(rel_step)
        return 2 * self.dim

    def subset(self, mask: np.ndarray) -> "Replay":
        """The same replay restricted to some windows (shares the plant)."""
        sub = Replay(self.plant, self.starts[mask], self.initial[mask],
                     None if self.warm is None else self.warm[mask], self.control[mask],
                     self.target[mask], self.start_offset[mask], self.scale, self.horizon)
        if self._A is not None:
            sub._A, sub._G = self._A[mask], self._G[mask]
        return sub

    def _linearize(self, rel_step: float) -> None:
        W, d, K = self.starts.size, self.dim, self.horizon
        eps = rel_step * self.scale
        init = np.repeat(self.initial[:, None, :], 2 * d, axis=1)
        for i in range(d):
            init[:, 2 * i, 1 + i] += eps[i]
            init[:, 2 * i + 1, 1 + i] -= eps[i]
        control = np.repeat(self.control, 2 * d, axis=0)
        warm = None if self.warm is None else np.repeat(self.warm, 2 * d, axis=0)
        pred = self._predict(init.reshape(W * 2 * d, -1), control, warm).reshape(W, d, 2, K, d)
        phi = (pred[:, :, 0] - pred[:, :, 1]) / (2 * eps)[None, :, None, None]  # (W, in, K, out)
        phi = np.where(np.isfinite(phi), phi, 0.0)
        A = np.concatenate([np.transpose(phi, (0, 2, 3, 1)).reshape(W, K * d, d)
                            / np.tile(self.scale, K)[None, :, None],
                            np.broadcast_to(np.diag(1 / self.scale), (W, d, d))], axis=1)
        self._A, self._G = A, np.linalg.pinv(A)  # (W, (K+1)d, d), (W, d, (K+1)d)

    def residuals(self, spec: DriftSpec) -> np.ndarray:
        """(W, N) normalised residuals, after the start correction when `refine` was called."""
        r = self.raw_residuals(spec).reshape(self.starts.size, -1)
        if self._A is None:
            return r
        b = np.concatenate([r, self.start_offset / self.scale], axis=1)
        delta = np.einsum("wij,wj->wi", self._G, b)
        return b - np.einsum("wij,wj->wi", self._A, delta)

    def loss(self, spec: DriftSpec) -> float:
        r = self.residuals(spec)
        return float(np.mean(r * r))


# -- identification ------------------------------------------------------------------------------

@dataclass
class SysIdResult:
    """What system identification concluded, and how sure it is."""

    estimate: DriftSpec
    params: dict[str, float]
    std: dict[str, float]
    loss: float
    nominal_loss: float
    evaluations: int
    wall_s: float
    horizon: int = 0
    windows: int = 0
    stop: str = ""

    def to_dict(self) -> dict:
        out = asdict(self)
        out["estimate"] = self.estimate.as_dict()
        out["estimate_hash"] = self.estimate.hash
        return out


def _sign_starts(params: tuple[Param, ...], loss_of) -> np.ndarray:
    """Start point in search space: nominal scales, gain signs chosen by the scan."""
    x0 = np.array([p.to_search(1.0) for p in params])
    signed = [i for i, p in enumerate(params) if p.signed]
    if len(signed) <= 3:  # every combination (at most 8 evaluations)
        best = min(itertools.product((1.0, -1.0), repeat=len(signed)),
                   key=lambda signs: loss_of(_put(x0, signed, signs)))
        return _put(x0, signed, best)
    f0 = loss_of(x0)
    for i in signed:  # one at a time
        flip = x0.copy()
        flip[i] = -1.0
        f = loss_of(flip)
        if f < f0:
            x0, f0 = flip, f
    return x0


def _put(x: np.ndarray, idx: list[int], values) -> np.ndarray:
    y = x.copy()
    y[idx] = values
    return y


def identify(plant: Plant, tel: Telemetry, params: tuple[Param, ...] | None = None, *,
             known: DriftSpec | dict | None = None, horizon: int | None = None, stride: int = 1,
             max_windows: int | None = None, smooth_window: int = 0, max_evals: int = 1500,
             max_seconds: float = 60.0, seed: int = 0, sigma0: float = 0.25) -> SysIdResult:
    """Estimate drift parameters of `plant` from `tel` by multi-step replay + CMA-ES.

    `plant` says which robot; the replay runs on a fresh nominal copy (its current drift is
    ignored), so estimates are always relative to the nominal model. `params` defaults to the
    plant's PARAMETER_SETS entry; `known` is drift taken as given (its `action_delay` shifts the
    replayed commands). Budget: `max_evals` loss evaluations (a start-
    state linearisation counts as 2 * (nq + nv)), split 55 % first CMA-ES pass, 25 % second pass,
    20 % split check; the curvature step adds 2 * len(params) + 1. `max_seconds` stops the search
    early (the result is then the best point so far, `stop == "max_seconds"`).
    """
    t0 = time.perf_counter()
    params = tuple(params if params is not None else PARAMETER_SETS[plant.name])
    known = DriftSpec.parse(known)
    horizon = horizon or DEFAULT_HORIZON.get(plant.name, 10)
    max_windows = max_windows or DEFAULT_WINDOWS.get(plant.name, 60)
    tel.validate(plant, horizon + known.action_delay)
    sim = make_plant(plant.name)
    replay = Replay.build(sim, tel, horizon, stride, smooth_window, known.action_delay, max_windows)
    evals = 0

    def natural(u) -> dict[str, float]:
        return {p.name: p.from_search(x) for p, x in zip(params, u)}

    def loss_of(u) -> float:
        nonlocal evals
        evals += 1
        return replay.loss(spec_from_params(natural(u), known))

    # pass 1: start-state correction linearised at the known drift; pass 2: at the estimate
    evals += replay.refine(known)
    nominal_loss = replay.loss(known)
    evals += 1
    x = _sign_starts(params, loss_of)
    lo, hi = np.array([p.search_bounds for p in params]).T
    deadline = t0 + max_seconds
    x, f, stop = _cma(loss_of, x, sigma0, lo, hi, int(0.55 * max_evals) - evals, seed, deadline)
    if stop != "max_seconds":
        evals += replay.refine(spec_from_params(natural(x), known))
        x, f, stop = _cma(loss_of, x, sigma0 / 4, lo, hi, int(0.8 * max_evals) - evals, seed + 1,
                          deadline)
    estimate_params = natural(x)
    std = _laplace_std(replay, params, estimate_params, known)
    evals += 2 * len(params) + 1
    # split check: refit on the even and on the odd blocks of windows; half the distance between
    # the two half-data estimates is a direct, model-free estimate of the full-data std
    block = (replay.starts // replay.horizon) % 2
    spare = max_evals + 2 * len(params) + 1 - evals
    if stop != "max_seconds" and spare >= 4 and min(np.bincount(block, minlength=2)) >= 2:
        halves = []
        for b in (0, 1):
            part = replay.subset(block == b)

            def part_loss(u, part=part) -> float:
                nonlocal evals
                evals += 1
                return part.loss(spec_from_params(natural(u), known))
            budget = (spare // 2) if b == 0 else spare - spare // 2
            halves.append(natural(_cma(part_loss, x, sigma0 / 4, lo, hi, budget, seed + 2 + b,
                                       deadline)[0]))
        for p in params:
            std[p.name] = max(std[p.name], abs(halves[0][p.name] - halves[1][p.name]) / 2)
    return SysIdResult(estimate=spec_from_params(estimate_params, known), params=estimate_params,
                       std=std, loss=float(f), nominal_loss=nominal_loss, evaluations=evals,
                       wall_s=time.perf_counter() - t0, horizon=horizon,
                       windows=int(replay.starts.size), stop=stop)


def _cma(loss_of, x0: np.ndarray, sigma0: float, lo: np.ndarray, hi: np.ndarray, budget: int,
         seed: int, deadline: float) -> tuple[np.ndarray, float, str]:
    """Bounded, seeded CMA-ES from x0 using at most `budget` evaluations (x0 included); returns
    the best point seen, its loss, and why it stopped."""
    x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)
    if budget < 1:
        return x0, loss_of(x0), "max_evals"
    best_x, best_f, used = x0, loss_of(x0), 1
    opts = {"seed": seed + 1, "verbose": -9, "bounds": [list(lo), list(hi)],
            "CMA_stds": list((hi - lo) / 4), "tolfun": 1e-10, "tolx": 1e-7}
    es = cma.CMAEvolutionStrategy(x0, sigma0, opts)
    while not es.stop():
        if time.perf_counter() > deadline:
            return best_x, best_f, "max_seconds"
        if used + es.popsize > budget:
            return best_x, best_f, "max_evals"
        X = es.ask()
        F = [loss_of(x) for x in X]
        used += len(X)
        es.tell(X, F)
        i = int(np.argmin(F))
        if F[i] < best_f:
            best_x, best_f = np.array(X[i]), F[i]
    return best_x, best_f, ",".join(es.stop())


def _laplace_std(replay: Replay, params: tuple[Param, ...], est: dict[str, float],
                 known: DriftSpec) -> dict[str, float]:
    """Per-parameter std from the cluster-robust information plus a wide prior (see module doc)."""
    theta = np.array([est[p.name] for p in params])
    r0 = replay.residuals(spec_from_params(est, known))
    W = r0.shape[0]
    J = np.empty((W, r0[0].size, theta.size))
    for i, p in enumerate(params):
        h = 1e-4 * max(abs(theta[i]), 1e-2)
        up, dn = theta.copy(), theta.copy()
        up[i] += h
        dn[i] -= h
        rp = replay.residuals(spec_from_params(dict(zip(est, up)), known)).reshape(W, -1)
        rm = replay.residuals(spec_from_params(dict(zip(est, dn)), known)).reshape(W, -1)
        J[:, :, i] = (rp - rm) / (2 * h)
    r = r0.reshape(W, -1)
    H = np.einsum("wni,wnj->ij", J, J)
    g = np.einsum("wni,wn->wi", J, r)              # per-window score
    # Overlapping windows share measurements, so they are not independent clusters: sum the
    # scores over blocks of `horizon` ticks first (windows in one block overlap each other).
    block = replay.starts // replay.horizon
    G = np.zeros((int(block.max()) + 1, theta.size))
    np.add.at(G, block, g)
    M = G.T @ G
    info = H @ np.linalg.pinv(M, rcond=1e-12) @ H
    prior_std = np.array([(p.hi - p.lo) / 4 for p in params])
    cov = np.linalg.pinv(info + np.diag(1 / prior_std ** 2))
    std = np.sqrt(np.clip(np.diag(cov), 0, None))
    return {p.name: float(s) for p, s in zip(params, std)}
