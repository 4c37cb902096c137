"""The one small interface every simulated robot offers, and the drift machinery they share.

A `Plant` owns a dm_control `Physics` (so domain code reads `physics.named.data.qpos['slider']`,
never a magic index) but steps it with raw `mujoco.mj_step`, the same call system identification
and population evaluation use: a trajectory from `act` and one replayed from `get_state` are then
the same function of the same numbers, bit for bit.

Why the stepping detail matters: dm_control's legacy step splits `mj_step` into `mj_step2/mj_step1`
so that derived quantities are fresh after a step. Mixing the two styles between the live plant and
the replay would give trajectories that differ in the last bits and make "deterministic replay"
untestable. Here a control tick is `mj_step(n_sub_steps)` followed by `mj_forward` (which writes
only derived quantities, not state), so observations and rewards read fresh kinematics.

The plant's state (`get_state`) is MuJoCo's integration state (time, qpos, qvel, act, warm start,
ctrl, applied forces: `mjSTATE_INTEGRATION`) followed by the actions still queued by an
`action_delay` drift. The warm start is included because with contacts the constraint solver's
result depends on it; leaving it out breaks exact replay for the walker.

Drift has three parts: model edits (delegated to `sim.drift_spec.apply_to_model`, restored exactly),
observation edits (bias, Gaussian noise from the plant's seeded generator) and the action delay.
"""
from __future__ import annotations

from collections import deque
from typing import Callable

import mujoco
import numpy as np
import scipy.linalg

from sim.drift_spec import DriftSpec, NominalModel, apply_to_model, check_names, restore_model

STATE_SPEC = mujoco.mjtState.mjSTATE_INTEGRATION
Controller = Callable[[np.ndarray], np.ndarray]


def linearize(model: mujoco.MjModel, qpos: np.ndarray, ctrl: np.ndarray, n_sub_steps: int = 1,
              eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Discrete (A, B) of one control tick about (qpos, qvel=0, ctrl), by centred differences of
    `mj_step` itself (whatever the integrator: `mjd_transitionFD` refuses RK4). State x = (qpos,
    qvel); valid for models whose joints are all hinges/slides (nq == nv), as here."""
    if model.nq != model.nv:
        raise ValueError("linearize: needs nq == nv (no free or ball joints)")
    data = mujoco.MjData(model)
    data.qpos[:], data.ctrl[:] = qpos, ctrl
    mujoco.mj_forward(model, data)
    warm = data.qacc.copy()
    x0, u0 = np.concatenate([qpos, np.zeros(model.nv)]), np.asarray(ctrl, dtype=np.float64)

    def step(x, u):
        mujoco.mj_resetData(model, data)
        data.qpos[:], data.qvel[:], data.ctrl[:] = x[:model.nq], x[model.nq:], u
        data.qacc_warmstart[:] = warm
        mujoco.mj_step(model, data, n_sub_steps)
        return np.concatenate([data.qpos, data.qvel])

    n, m = x0.size, u0.size
    A, B = np.empty((n, n)), np.empty((n, m))
    for i in range(n):
        dx = np.zeros(n); dx[i] = eps
        A[:, i] = (step(x0 + dx, u0) - step(x0 - dx, u0)) / (2 * eps)
    for j in range(m):
        du = np.zeros(m); du[j] = eps
        B[:, j] = (step(x0, u0 + du) - step(x0, u0 - du)) / (2 * eps)
    return A, B


def lqr_gain(A: np.ndarray, B: np.ndarray, Q: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Discrete-time infinite-horizon LQR gain K (u = -K x)."""
    P = scipy.linalg.solve_discrete_are(A, B, Q, R)
    return np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)


class Plant:
    """A dm_control robot behind reset / observe / act / reward / get_state / set_state.

    Subclasses set the class attributes and implement `_make_physics`, `_observe`, `reward`,
    `_initialize_episode` and `nominal_controller`, in the style of a dm_control suite domain.
    """

    name: str = ""
    obs_names: tuple[str, ...] = ()
    n_sub_steps: int = 1

    def __init__(self, seed: int = 0, drift: DriftSpec | dict | str | None = None) -> None:
        self.physics = self._make_physics()
        self.model: mujoco.MjModel = self.physics.model.ptr
        self.data: mujoco.MjData = self.physics.data.ptr
        self._scratch = mujoco.MjData(self.model)
        self._nominal = NominalModel.snapshot(self.model)
        self._touched: tuple[str, ...] = ()
        self.drift = DriftSpec()
        self._bias = np.zeros(self.obs_dim)
        self._queue: deque[np.ndarray] = deque()
        self.rng = np.random.default_rng(seed)
        self.mj_state_size = mujoco.mj_stateSize(self.model, STATE_SPEC)
        self.apply_drift(drift)
        self.reset(seed)

    # -- subclass hooks --------------------------------------------------------------------------
    def _make_physics(self):
        raise NotImplementedError

    def _initialize_episode(self, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def _observe(self) -> np.ndarray:
        raise NotImplementedError

    def reward(self) -> float:
        raise NotImplementedError

    def nominal_controller(self) -> Controller:
        raise NotImplementedError

    # -- sizes and names -------------------------------------------------------------------------
    @property
    def control_dt(self) -> float:
        return float(self.model.opt.timestep) * self.n_sub_steps

    @property
    def obs_dim(self) -> int:
        return len(self.obs_names)

    @property
    def act_dim(self) -> int:
        return int(self.model.nu)

    @property
    def act_low(self) -> np.ndarray:
        return self.model.actuator_ctrlrange[:, 0].copy()

    @property
    def act_high(self) -> np.ndarray:
        return self.model.actuator_ctrlrange[:, 1].copy()

    @property
    def joint_names(self) -> list[str]:
        """Joint names as a ROS `sensor_msgs/JointState` carries them (MJCF joint order)."""
        return [self.model.joint(i).name for i in range(self.model.njnt)]

    @property
    def actuator_names(self) -> list[str]:
        return [self.model.actuator(i).name for i in range(self.model.nu)]

    # -- episode ---------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start an episode; the same seed gives the same initial state and the same obs noise."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        mujoco.mj_resetData(self.model, self.data)
        self._initialize_episode(self.rng)
        mujoco.mj_forward(self.model, self.data)
        self._reset_queue()
        return self.observe()

    def observe(self) -> np.ndarray:
        obs = np.asarray(self._observe(), dtype=np.float64) + self._bias
        if self.drift.obs_noise:
            obs = obs + self.drift.obs_noise * self.rng.standard_normal(obs.shape)
        return obs

    def act(self, action) -> tuple[np.ndarray, float]:
        """One control tick: clip, delay (drift), step the physics, observe, reward."""
        action = np.asarray(action, dtype=np.float64).reshape(self.act_dim)
        if not np.all(np.isfinite(action)):
            # MuJoCo would quietly reset the simulation on a NaN; a controller bug must be loud
            raise ValueError(f"{self.name}: non-finite action {action}")
        action = np.clip(action, self.act_low, self.act_high)
        if self.drift.action_delay:
            self._queue.append(action)
            action = self._queue.popleft()
        self.data.ctrl[:] = action
        mujoco.mj_step(self.model, self.data, self.n_sub_steps)
        mujoco.mj_forward(self.model, self.data)
        return self.observe(), self.reward()

    @property
    def time(self) -> float:
        return float(self.data.time)

    # -- state -----------------------------------------------------------------------------------
    def get_state(self) -> np.ndarray:
        """MuJoCo integration state + queued (delayed) actions, as one float64 vector."""
        state = np.empty(self.mj_state_size)
        mujoco.mj_getState(self.model, self.data, state, STATE_SPEC)
        return np.concatenate([state, *self._queue]) if self._queue else state

    def set_state(self, state) -> None:
        """Restore a `get_state` vector exactly (same plant, same action_delay)."""
        state = np.asarray(state, dtype=np.float64).reshape(-1)
        want = self.mj_state_size + self.drift.action_delay * self.act_dim
        if state.size != want:
            raise ValueError(f"{self.name}: state has {state.size} values, expected {want} "
                             f"({self.mj_state_size} MuJoCo + {self.drift.action_delay} queued "
                             f"actions x {self.act_dim})")
        mujoco.mj_setState(self.model, self.data, state[:self.mj_state_size], STATE_SPEC)
        queued = state[self.mj_state_size:].reshape(-1, self.act_dim)
        self._queue = deque(np.array(a) for a in queued)
        mujoco.mj_forward(self.model, self.data)

    def set_qpos_qvel(self, qpos, qvel) -> None:
        """Put the robot in a measured configuration (what telemetry carries) and run forward."""
        self.data.qpos[:] = qpos
        self.data.qvel[:] = qvel
        mujoco.mj_forward(self.model, self.data)

    def joint_positions(self) -> np.ndarray:
        return np.array([self.data.qpos[self.model.jnt_qposadr[i]] for i in range(self.model.njnt)])

    def joint_velocities(self) -> np.ndarray:
        return np.array([self.data.qvel[self.model.jnt_dofadr[i]] for i in range(self.model.njnt)])

    # -- drift -----------------------------------------------------------------------------------
    def apply_drift(self, spec: DriftSpec | dict | str | None) -> DriftSpec:
        """Replace the current drift with `spec` (validated against this model first)."""
        spec = DriftSpec.parse(spec)
        check_names(self.model, spec)  # both raise before anything changes
        bias = self._resolve_bias(spec)
        restore_model(self.model, self._nominal, self._touched)
        self._touched = apply_to_model(self.model, self._nominal, spec, self._scratch)
        self.drift, self._bias = spec, bias
        self._reset_queue()
        mujoco.mj_forward(self.model, self.data)
        return spec

    def clear_drift(self) -> None:
        """Back to the nominal robot, bit for bit."""
        restore_model(self.model, self._nominal, self._touched)
        self._touched = ()
        self.drift, self._bias = DriftSpec(), np.zeros(self.obs_dim)
        self._reset_queue()
        mujoco.mj_forward(self.model, self.data)

    def _resolve_bias(self, spec: DriftSpec) -> np.ndarray:
        bias = np.zeros(self.obs_dim)
        for key, x in spec.obs_bias:
            if key in self.obs_names:
                bias[self.obs_names.index(key)] += x
            elif key.isdigit() and int(key) < self.obs_dim:
                bias[int(key)] += x
            else:
                raise ValueError(f"DriftSpec.obs_bias: unknown observation {key!r} for plant "
                                 f"{self.name!r}; known: {list(self.obs_names)} or an index "
                                 f"0..{self.obs_dim - 1}")
        return bias

    def _reset_queue(self) -> None:
        self._queue = deque(np.zeros(self.act_dim) for _ in range(self.drift.action_delay))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(drift={self.drift.to_json()})"
