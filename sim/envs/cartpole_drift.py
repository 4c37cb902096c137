"""A vectorised cart-pole whose plant drifts (pole mass, motor gain, friction), with a shaped reward.

Why this plant: CartPole-v1's reward saturates (every balancing policy scores 500), so once a
population balances, a larger mutation rate costs nothing and a self-regulated rate has nothing to
win. Here the reward is *shaped* and never saturates: each step the pole is up pays

    1 - 0.5 * min(1, |x| / x_scale) - 0.5 * min(1, |theta| / theta_scale)

(x_scale 0.2 m, theta_scale 0.02 rad by default: tight enough that a bang-bang controller that
merely balances earns well under the maximum), so keeping the cart centred and the pole upright keeps paying, fine-tuning matters, and a mutation
rate that stays high after a recovery has a cost. The plant parameters are those of a robot drift
(the same three kinds the MuJoCo plants in `sim/plants` model: a heavier link, a motor whose gain
changed sign, added friction), in a numpy plant so that hundreds of runs fit a CPU budget.

Dynamics: Gymnasium's CartPole equations (semi-implicit Euler, tau 0.02) with Barto, Sutton and
Anderson's (1983) friction terms: a Coulomb cart friction `mu_c * sign(x_dot)` (in newtons here)
and a viscous pole-joint friction `mu_p * theta_dot / (m_pole * l)`. With `DriftCondition()` (no
drift, no friction) the equations are CartPole-v1's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from gymnasium.utils.seeding import np_random

_GRAVITY = 9.8
_MASSCART = 1.0
_MASSPOLE = 0.1
_LENGTH = 0.5
_FORCE_MAG = 10.0
_TAU = 0.02
THETA_THRESHOLD = 12 * 2 * math.pi / 360
X_THRESHOLD = 2.4


@dataclass(frozen=True)
class DriftCondition:
    """One plant condition: pole mass scale, motor gain (negative = wired backwards), friction."""

    pole_mass_scale: float = 1.0
    gain: float = 1.0
    cart_friction: float = 0.0      # Coulomb, newtons
    pole_friction: float = 0.0      # viscous, N m s

    def __post_init__(self) -> None:
        if not self.pole_mass_scale > 0:
            raise ValueError(f"DriftCondition.pole_mass_scale must be > 0, got {self.pole_mass_scale}")
        if not math.isfinite(self.gain) or self.gain == 0:
            raise ValueError(f"DriftCondition.gain must be finite and non-zero, got {self.gain}")
        if self.cart_friction < 0 or self.pole_friction < 0:
            raise ValueError("DriftCondition: friction must be >= 0")


X_SCALE = 0.2
THETA_SCALE = 0.02


def shaped_returns(policy, seeds: Sequence[int], condition: DriftCondition, horizon: int,
                   x_scale: float = X_SCALE, theta_scale: float = THETA_SCALE) -> np.ndarray:
    """Shaped return of each copy under `policy` (a `sim.policy.BoundPolicy` with one row per seed:
    `act(obs (N, 4) float32) -> actions (N,)` in {0, 1}, `subset(mask)`).

    Copy i starts from CartPole's uniform(-0.05, 0.05) state drawn from `np_random(seeds[i])`, so a
    copy's return depends only on its own seed (batch independence). A copy that leaves the bounds
    stops earning; the loop ends when all copies have.
    """
    n = len(seeds)
    state = np.empty((4, n), dtype=np.float64)
    for i, s in enumerate(seeds):
        state[:, i] = np_random(int(s))[0].uniform(low=-0.05, high=0.05, size=(4,))
    m_pole = _MASSPOLE * condition.pole_mass_scale
    total = m_pole + _MASSCART
    pml = m_pole * _LENGTH
    forces = np.array([-_FORCE_MAG, _FORCE_MAG]) * condition.gain
    returns = np.zeros(n)
    live = np.arange(n)
    for _ in range(horizon):
        actions = np.asarray(policy.act(state.T.astype(np.float32)))
        x_dot, theta, theta_dot = state[1], state[2], state[3]
        cos, sin = np.cos(theta), np.sin(theta)
        temp = (forces[actions] + pml * theta_dot ** 2 * sin - condition.cart_friction * np.sign(x_dot)) / total
        thetaacc = (_GRAVITY * sin - cos * temp - condition.pole_friction * theta_dot / pml) / (
            _LENGTH * (4.0 / 3.0 - m_pole * cos ** 2 / total))
        xacc = temp - pml * thetaacc * cos / total
        state = state + _TAU * np.stack((x_dot, xacc, theta_dot, thetaacc))
        fallen = (np.abs(state[0]) > X_THRESHOLD) | (np.abs(state[2]) > THETA_THRESHOLD)
        reward = (1.0 - 0.5 * np.minimum(1.0, np.abs(state[0]) / x_scale)
                  - 0.5 * np.minimum(1.0, np.abs(state[2]) / theta_scale))
        returns[live[~fallen]] += reward[~fallen]
        alive = ~fallen
        if not alive.any():
            break
        if not alive.all():
            state, live = np.ascontiguousarray(state[:, alive]), live[alive]
            policy = policy.subset(alive)
    return returns
