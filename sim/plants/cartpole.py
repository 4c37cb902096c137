"""Cartpole: dm_control's cart-pole balance task behind the Plant interface.

The model, its Physics accessors and the smooth balance reward are dm_control's own (suite
`cartpole.balance`), so returns are comparable with published numbers. One control tick is one
10 ms RK4 step, as in the suite.

The nominal controller is an LQR designed on the *nominal* model (linearised about the upright
pole by finite differences of `mj_step`, then a discrete Riccati solve) that tracks a slowly moving
cart setpoint. It stands in for "the controller that worked before the robot changed": it balances
the nominal cartpole indefinitely, survives moderate payloads, and fails on an inverted motor,
which is exactly what adaptation must fix. The moving setpoint keeps the cart accelerating: a still
robot says nothing about its dynamics (and even a moving one under pure state feedback says too
little to separate pole mass from motor gain: see `sim.sysid.record` for the probe that does).
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field

import numpy as np
from dm_control.suite import cartpole as suite_cartpole

from sim.plants.base import DataBatch, Plant
from sim.plants.limits import HardLimits
from sim.plants.lqr import LinearFeedback, linearize, lqr_gain
from sim.plants.rewards import XZ, ZZ, tolerance


@dataclass
class CartpoleLQR:
    """u = -K (x - x_ref(t)) with x = (cart, angle, cart velocity, angular velocity).

    The setpoint moves the cart sinusoidally (`amplitude` metres, `period` seconds); the clock is
    the number of calls times `dt`, so call `reset()` at the start of each episode.
    """

    K: np.ndarray
    dt: float
    amplitude: float = 0.4
    period: float = 4.0
    t: float = field(default=0.0, init=False)

    def reset(self) -> None:
        self.t = 0.0

    def setpoint(self, t: float) -> float:
        return self.amplitude * np.sin(2 * np.pi * t / self.period)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        cart, cos, sin, cart_vel, ang_vel = obs
        x = np.array([cart - self.setpoint(self.t), np.arctan2(sin, cos), cart_vel, ang_vel])
        self.t += self.dt
        return np.clip(-self.K @ x, -1.0, 1.0)


class CartpoleObservation:
    """The cart-pole's observation in closed form from its joint states (slider, hinge): (cart, cos pole,
    sin pole, cart velocity, pole angular velocity), what `Cartpole._observe` reads from the model."""

    obs_names = ("cart_position", "pole_cos", "pole_sin", "cart_velocity", "pole_angular_velocity")
    obs_dim = 5

    def __call__(self, positions: np.ndarray, velocities: np.ndarray) -> np.ndarray:
        return np.array([positions[0], math.cos(positions[1]), math.sin(positions[1]),
                         velocities[0], velocities[1]])


class Cartpole(Plant):
    """dm_control cart-pole (one pole), balance task, smooth reward."""

    name = "cartpole"
    obs_names = ("cart_position", "pole_cos", "pole_sin", "cart_velocity", "pole_angular_velocity")
    n_sub_steps = 1

    def _make_physics(self):
        self._task = suite_cartpole.Balance(swing_up=False, sparse=False, random=0)
        return suite_cartpole.Physics.from_xml_string(*suite_cartpole.get_model_and_assets())

    # half-width of the cart's start position; the suite's 0.1 m by default. Adaptation widens it
    # (PlantTask.start_cart_range) so candidates also learn to bring an off-centre cart home, which
    # the gate's cart-offset probe checks.
    start_cart_range = 0.1

    def _initialize_episode(self, rng: np.random.Generator) -> None:
        """Near upright, cart near the middle, small velocities (the suite's balance start)."""
        physics = self.physics
        physics.named.data.qpos["slider"] = rng.uniform(-0.1, 0.1) * (self.start_cart_range / 0.1)
        physics.named.data.qpos["hinge_1"] = rng.uniform(-0.034, 0.034)
        physics.named.data.qvel[:] = 0.01 * rng.standard_normal(self.model.nv)

    def _observe(self) -> np.ndarray:
        return np.concatenate([self.physics.bounded_position(), self.physics.velocity()])

    def reward(self) -> float:
        return float(self._task.get_reward(self.physics))

    # batched twins of `_observe` and `reward` (dm_control's `bounded_position`, `velocity` and
    # `Balance._get_reward(sparse=False)`, same operations in the same order)
    batch_fields = ("qpos", "qvel", "xmat", "ctrl")

    def _batch_indices(self) -> tuple[int, int, int, int]:
        if not hasattr(self, "_batch_ids"):
            model = self.model
            self._batch_ids = (int(model.joint("slider").qposadr[0]), int(model.joint("hinge_1").dofadr[0]),
                               model.body("pole_1").id, model.actuator("slide").id)
        return self._batch_ids

    # the safety gate's hard limits (safety/constraints.py): the cart between its end stops (the MJCF
    # slider range, +-1.8 m), the pole above horizontal (unwrapped, so a full turn counts)
    FALL_CART_LIMIT = 1.8
    HARD_LIMITS = HardLimits(state=(("slider", -FALL_CART_LIMIT, FALL_CART_LIMIT),
                                    ("hinge_1", -math.pi / 2, math.pi / 2)))

    def hard_limits(self) -> HardLimits:
        return self.HARD_LIMITS

    @classmethod
    def analytic_observation(cls) -> CartpoleObservation:
        return CartpoleObservation()

    def fallen_batch(self, obs: np.ndarray) -> np.ndarray:
        """Pole below horizontal or cart at the end of its rail: a balance controller cannot recover."""
        cart = obs[:, self.obs_names.index("cart_position")]
        cos = obs[:, self.obs_names.index("pole_cos")]
        return (cos <= 0.0) | (np.abs(cart) >= self.FALL_CART_LIMIT)

    def observe_batch(self, batch: DataBatch, constants: np.ndarray) -> np.ndarray:
        slider, _, pole, _ = self._batch_indices()
        pole_xmat = batch.xmat[:, pole]
        return np.concatenate([batch.qpos[:, slider, None], pole_xmat[:, ZZ, None], pole_xmat[:, XZ, None],
                               batch.qvel], axis=1)

    def reward_batch(self, batch: DataBatch, constants: np.ndarray) -> np.ndarray:
        return balance_reward(batch, *self._batch_indices())

    # accessors named for what they mean
    def cart_position(self) -> float:
        return float(self.physics.named.data.qpos["slider"][0])

    def pole_angle(self) -> float:
        return float(self.physics.named.data.qpos["hinge_1"][0])

    def pole_upright(self) -> bool:
        return bool(self.physics.pole_angle_cosine()[0] > np.cos(np.deg2rad(45)))

    LQR_Q, LQR_R = np.diag([1.0, 10.0, 0.1, 0.1]), np.array([[1.0]])
    # observation columns standing for the LQR state (cart, angle, cart velocity, angular
    # velocity): the pole angle enters as its sine (equal near upright)
    LQR_COLUMNS = (0, 2, 3, 4)

    def model_lqr(self) -> tuple[np.ndarray, tuple[int, ...]]:
        """LQR on this plant's model *as it is now*, drift included -> (K, observation columns).
        `sim.model_seed` writes it into an SR-GHN to seed adaptation on an identified model."""
        A, B = linearize(self.model, np.zeros(self.model.nq), np.zeros(self.model.nu), self.n_sub_steps)
        return lqr_gain(A, B, Q=self.LQR_Q, R=self.LQR_R), self.LQR_COLUMNS

    def nominal_feedback(self) -> LinearFeedback:
        """The nominal LQR as u = -K (cart, sin angle, cart velocity, angular velocity), setpoint still."""
        return LinearFeedback(K=np.asarray(self.nominal_controller().K, dtype=np.float64),
                              columns=self.LQR_COLUMNS, source="nominal LQR")

    def nominal_controller(self, amplitude: float = 0.4, period: float = 4.0) -> CartpoleLQR:
        """LQR on the nominal model (whatever drift this plant carries now)."""
        physics = suite_cartpole.Physics.from_xml_string(*suite_cartpole.get_model_and_assets())
        model = physics.model.ptr
        A, B = linearize(model, np.zeros(model.nq), np.zeros(model.nu), self.n_sub_steps)
        K = lqr_gain(A, B, Q=self.LQR_Q, R=self.LQR_R)
        return CartpoleLQR(K=K, dt=self.control_dt, amplitude=amplitude, period=period)


def balance_reward(batch, slider: int, hinge: int, pole: int, slide: int) -> np.ndarray:
    """dm_control's smooth balance reward of every row of `batch` (qpos address of the cart, dof of
    the hinge, pole body, cart actuator), bit for bit."""
    upright = (batch.xmat[:, pole, ZZ] + 1) / 2
    centered = tolerance(batch.qpos[:, slider], margin=2, per_scalar=True)
    centered = (1 + centered) / 2
    small_control = tolerance(batch.ctrl[:, slide], margin=1, value_at_margin=0, sigmoid="quadratic",
                              per_scalar=False)
    small_control = (4 + small_control) / 5
    small_velocity = tolerance(batch.qvel[:, hinge], margin=5, per_scalar=False)
    small_velocity = (1 + small_velocity) / 2
    return upright * small_control * small_velocity * centered


_IDS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # model -> indices (looked up once)


def reward(model, frames, constants) -> np.ndarray:
    """Objective entry point of the shipped cartpole profile (launch/robots/cartpole.yaml): the
    suite's balance reward, the hand-coded plant's own, by the model's names."""
    ids = _IDS.get(model)
    if ids is None:
        ids = _IDS[model] = (int(model.joint("slider").qposadr[0]), int(model.joint("hinge_1").dofadr[0]),
                             model.body("pole_1").id, model.actuator("slide").id)
    return balance_reward(frames, *ids)


reward.fields = ("qpos", "qvel", "xmat", "ctrl")


def initialize(model, data, rng: np.random.Generator) -> None:
    """Initial-state entry point of the shipped cartpole profile: the suite's balance start, the
    same draws in the same order as `Cartpole._initialize_episode`."""
    data.qpos[model.joint("slider").qposadr[0]] = rng.uniform(-0.1, 0.1) * (Cartpole.start_cart_range / 0.1)
    data.qpos[model.joint("hinge_1").qposadr[0]] = rng.uniform(-0.034, 0.034)
    data.qvel[:] = 0.01 * rng.standard_normal(model.nv)
