"""Linear state feedback about an operating point: finite-difference linearisation of `mj_step` and
the discrete LQR gain; how the built-in plants design their nominal controllers and the adaptation
its model seed."""
from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np
import scipy.linalg

@dataclass(frozen=True)
class LinearFeedback:
    """A nominal controller that is linear state feedback u = -K obs[columns] (K: act_dim x len(columns)),
    valid near the operating point; `controller.bootstrap` writes it as a policy genome."""

    K: np.ndarray
    columns: tuple[int, ...]
    source: str = "nominal linear feedback"


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
