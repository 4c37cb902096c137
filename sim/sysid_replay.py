"""Multi-step open-loop replay of a telemetry window under candidate drift parameters.

`Replay` replays every window in one `mujoco.rollout` call (C loop, no per-step Python) and
returns residuals normalised per state dimension by that dimension's spread in the window, so
slider metres and hinge radians per second weigh alike.

Sensor noise: the start state of a window is a noisy measurement, and the dynamics amplify its
error (an inverted pendulum doubles it every few ticks). Replaying from it as if it were exact
biases the estimate toward parameters under which that error grows less (for the cartpole: a
lighter pole, 3x payload estimated as 0.2x). So each window's start state is corrected too: the
prediction is linearised in the start state (`Replay.refine`, finite differences, once at the
known drift and once more at the first estimate) and the best correction, with the measured start
as a prior, is projected out of the residual in closed form. The compared states stay raw: their
noise adds a constant to the loss. Optional Savitzky-Golay smoothing of start states (`smooth`)
exists but is off by default: it distorts contact-rich motion (the walker) more than it removes
noise.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import mujoco
import mujoco.rollout
import numpy as np
from scipy.signal import savgol_filter

from sim.drift_spec import DriftSpec
from sim.plants.base import Plant
from sim.sysid_telemetry import Telemetry


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
    # the start-correction projection set by `refine`: A (W, (K+1)d, d) and its pseudo-inverse G
    start_A: np.ndarray | None = field(default=None, repr=False)
    start_G: np.ndarray | None = field(default=None, repr=False)
    # (d,) bool: the state dimensions the telemetry measured: one that never changes in the window
    # was filled in, not measured, and a profile robot names what its sensors measure
    # (`ProfilePlant.measured_state`); the rest (a gripper, loose props) is simulated, but its
    # prediction is no evidence (contacts of a rolling prop are noise to the arm's parameters). None: all
    measured: np.ndarray | None = field(default=None, repr=False)
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
        # telemetry holds commands in the robot's command order; MuJoCo's ctrl is in actuator order
        actions = tel.actions if plant.ctrl_order is None else tel.actions[:, plant.ctrl_order]
        control = np.repeat(actions[idx], plant.n_sub_steps, axis=1)
        later = starts[:, None] + np.arange(1, horizon + 1)[None, :]
        target = np.concatenate([tel.qpos[later], tel.qvel[later]], axis=2)
        raw = np.concatenate([tel.qpos, tel.qvel], axis=1)
        offset = np.concatenate([qpos, qvel], axis=1)[starts] - raw[starts]
        scale = np.maximum(raw.std(axis=0), 1e-3)
        measured = np.ptp(raw, axis=0) > 0
        sensed = getattr(plant, "measured_state", None)     # a profile robot: what its sensors measure
        if sensed is not None:
            measured &= sensed()
        warm = tel.warmstart[starts] if tel.warmstart is not None else None
        return cls(plant, starts, initial, warm, np.ascontiguousarray(control), target, offset,
                   scale, horizon, measured=None if measured.all() else measured)

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
        if self.measured is not None:
            err = err * self.measured
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
        refined = self.start_A is not None
        return Replay(self.plant, self.starts[mask], self.initial[mask],
                      None if self.warm is None else self.warm[mask], self.control[mask],
                      self.target[mask], self.start_offset[mask], self.scale, self.horizon,
                      self.start_A[mask] if refined else None, self.start_G[mask] if refined else None,
                      self.measured)

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
        if self.measured is not None:
            phi = phi * self.measured
        A = np.concatenate([np.transpose(phi, (0, 2, 3, 1)).reshape(W, K * d, d)
                            / np.tile(self.scale, K)[None, :, None],
                            np.broadcast_to(np.diag(1 / self.scale), (W, d, d))], axis=1)
        self.start_A, self.start_G = A, np.linalg.pinv(A)  # (W, (K+1)d, d), (W, d, (K+1)d)

    def residuals(self, spec: DriftSpec) -> np.ndarray:
        """(W, N) normalised residuals, after the start correction when `refine` was called."""
        r = self.raw_residuals(spec).reshape(self.starts.size, -1)
        if self.start_A is None:
            return r
        b = np.concatenate([r, self.start_offset / self.scale], axis=1)
        delta = np.einsum("wij,wj->wi", self.start_G, b)
        return b - np.einsum("wij,wj->wi", self.start_A, delta)

    def loss(self, spec: DriftSpec) -> float:
        r = self.residuals(spec)
        return float(np.mean(r * r))


__all__ = ["Replay", "smooth"]
