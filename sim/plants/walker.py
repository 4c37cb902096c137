"""Walker: dm_control's planar biped (three root joints, six actuated leg joints) behind Plant.

Model, accessors and the stand reward are dm_control's (suite `walker.stand`); one control tick is
25 ms = 10 physics steps of 2.5 ms, as in the suite. Episodes start from a standing, slightly
crouched equilibrium (not the suite's random fall-and-get-up start) because the question driftgate
asks of the walker is "does a working stand controller keep working", not "can it get up".

The nominal controller is a squat controller: a slow sinusoidal crouch reference around a bent-knee
stance, tracked by LQR on the nominal model linearised *with its foot contacts* at that stance
(finite differences of the 10 `mj_step`s of one tick) plus a gravity feed-forward from inverse
dynamics. Why a crouch around bent knees: the straight-legged pose sits on the knee joint limits,
where the linearisation sees rigid knees and the LQR gains are useless; and squatting loads knees,
hips and ankles through the whole window, which is what makes torso mass and actuator gains
identifiable from telemetry. The controller reads only the observation (body orientations, torso
height, joint velocities), like a policy would; the root x position is not observed (no gain).
"""
from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass, field

import mujoco
import numpy as np
from dm_control.suite import walker as suite_walker

from sim.plants.base import DataBatch, Plant
from sim.plants.limits import JOINT_TOL, HardLimits
from sim.plants.lqr import linearize, lqr_gain
from sim.plants.rewards import XX, XZ, Z, ZZ, tolerance

BODIES = ("torso", "right_thigh", "right_leg", "right_foot", "left_thigh", "left_leg", "left_foot")
JOINTS = ("rootz", "rootx", "rooty", "right_hip", "right_knee", "right_ankle",
          "left_hip", "left_knee", "left_ankle")
TORSO_Z0 = 1.3          # torso body height in the MJCF: torso z = TORSO_Z0 + rootz
LEG_LENGTH = 0.95       # hip-to-knee 0.45 + knee-to-ankle 0.5
DEG = np.pi / 180.0
# the safety gate's hard limits (safety/constraints.py): the torso above 0.8 m (dm_control's "fallen"
# line: torso z = TORSO_Z0 + rootz), pitched less than 1 rad, leg joints within their MJCF ranges
# (+ JOINT_TOL: MuJoCo's limits are soft)
_LEG_RANGES = {f"{side}_{j}": r for side in ("right", "left")
               for j, r in (("hip", (-20 * DEG, 100 * DEG)), ("knee", (-150 * DEG, 0.0)),
                            ("ankle", (-45 * DEG, 45 * DEG)))}
HARD_LIMITS = HardLimits(state=(("rootz", -0.5, None), ("rooty", -1.0, 1.0))
                         + tuple((j, lo - JOINT_TOL, hi + JOINT_TOL) for j, (lo, hi) in _LEG_RANGES.items()))


def crouch_pose(s: float, nq: int = 9) -> np.ndarray:
    """qpos with knees bent by `s` rad and hips/ankles by s/2: torso upright, feet flat."""
    q = np.zeros(nq)
    q[0] = -LEG_LENGTH * (1 - np.cos(s / 2))
    q[3:9] = [s / 2, -s, s / 2] * 2
    return q


def stance_equilibrium(model: mujoco.MjModel, s: float) -> tuple[np.ndarray, np.ndarray]:
    """(qpos, ctrl) holding crouch `s` statically: the height where the contacts carry exactly the
    weight (bisection on the vertical inverse-dynamics residual), then joint torques / gear."""
    data = mujoco.MjData(model)
    lo, hi = -2e-3, 0.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        mujoco.mj_resetData(model, data)
        data.qpos[:] = crouch_pose(s, model.nq)
        data.qpos[0] += mid
        mujoco.mj_inverse(model, data)
        lo, hi = (lo, mid) if data.qfrc_inverse[0] > 0 else (mid, hi)
    return data.qpos.copy(), data.qfrc_inverse[3:] / model.actuator_gear[:, 0]


def qpos_from_obs(obs: np.ndarray) -> np.ndarray:
    """Joint configuration implied by the suite observation (root x is unobservable: 0)."""
    o = obs[:14].reshape(7, 2)
    pitch = np.arctan2(o[:, 1], o[:, 0])  # world pitch of each body (xmat xz, xx)
    return np.array([obs[14] - TORSO_Z0, 0.0, pitch[0],
                     pitch[0] - pitch[1], pitch[1] - pitch[2], pitch[2] - pitch[3],
                     pitch[0] - pitch[4], pitch[4] - pitch[5], pitch[5] - pitch[6]])


@dataclass
class WalkerSquat:
    """u = u_ff(s) - K (x - x_ref(s)), crouch s(t) = s0 + depth sin(2 pi t / period)."""

    K: np.ndarray
    qpos0: np.ndarray
    grid: np.ndarray          # crouch values where the feed-forward was solved
    grid_rootz: np.ndarray
    grid_ctrl: np.ndarray
    dt: float
    s0: float = 0.4
    depth: float = 0.3
    period: float = 3.0
    t: float = field(default=0.0, init=False)

    def reset(self) -> None:
        self.t = 0.0

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        s = self.s0 + self.depth * np.sin(2 * np.pi * self.t / self.period)
        self.t += self.dt
        ref = np.zeros(18)
        ref[:9] = crouch_pose(s) - self.qpos0
        ref[0] = np.interp(s, self.grid, self.grid_rootz) - self.qpos0[0]
        x = np.concatenate([qpos_from_obs(obs) - self.qpos0, obs[15:24]])
        x[1] = 0.0
        u_ff = np.array([np.interp(s, self.grid, c) for c in self.grid_ctrl.T])
        return np.clip(u_ff - self.K @ (x - ref), -1.0, 1.0)


class Walker(Plant):
    """dm_control planar walker, stand reward, crouched standing start."""

    name = "walker"
    obs_names = tuple(f"{b}_{c}" for b in BODIES for c in ("xx", "xz")) + ("height",) + \
        tuple(f"{j}_vel" for j in JOINTS)
    n_sub_steps = 10
    crouch = 0.4

    def _make_physics(self):
        self._task = suite_walker.PlanarWalker(move_speed=0, random=0)
        physics = suite_walker.Physics.from_xml_string(*suite_walker.get_model_and_assets())
        self._qpos0, _ = stance_equilibrium(physics.model.ptr, self.crouch)
        return physics

    def _initialize_episode(self, rng: np.random.Generator) -> None:
        """Crouched equilibrium stance with small random joint velocities."""
        self.physics.data.qpos[:] = self._qpos0
        self.physics.data.qvel[3:] = 0.05 * rng.standard_normal(6)

    def _observe(self) -> np.ndarray:
        p = self.physics
        return np.concatenate([p.orientations(), [p.torso_height()], p.velocity()])

    def reward(self) -> float:
        return float(self._task.get_reward(self.physics))

    # batched twins of `_observe` and `reward` (dm_control's `orientations`, `torso_height`,
    # `velocity` and `PlanarWalker.get_reward` with move_speed 0, same operations in the same order)
    batch_fields = ("qvel", "xmat", "xpos")

    def _batch_indices(self) -> tuple[np.ndarray, int]:
        if not hasattr(self, "_batch_ids"):
            self._batch_ids = (np.array([self.model.body(b).id for b in BODIES]), self.model.body("torso").id)
        return self._batch_ids

    def observe_batch(self, batch: DataBatch, constants: np.ndarray) -> np.ndarray:
        bodies, torso = self._batch_indices()
        orientations = batch.xmat[:, bodies][:, :, [XX, XZ]].reshape(batch.size, -1)
        return np.concatenate([orientations, batch.xpos[:, torso, Z, None], batch.qvel], axis=1)

    def reward_batch(self, batch: DataBatch, constants: np.ndarray) -> np.ndarray:
        return stand_reward(batch, self._batch_indices()[1])

    def torso_height(self) -> float:
        return float(self.physics.torso_height())

    def fallen(self) -> bool:
        return self.torso_height() < 0.8

    def fallen_batch(self, obs: np.ndarray) -> np.ndarray:
        """Torso below 0.8 m or pitched past 1 rad (the gate's rootz / rooty hard limits), read from
        the observation (torso height; torso xx = cos pitch). Why: with the base class's "never",
        `PlantTask.stop_on_fall` kept paying the stand reward of a walker lying on the floor, so
        evolution ranked policies that fall in a quarter of their episodes near the top, and the
        gate then failed them on rootz."""
        height = obs[:, self.obs_names.index("height")]
        upright = obs[:, self.obs_names.index("torso_xx")]
        return (height < 0.8) | (upright < np.cos(1.0))

    def hard_limits(self) -> HardLimits:
        return HARD_LIMITS

    def nominal_controller(self, depth: float = 0.3, period: float = 3.0, r_scale: float = 1.0) -> WalkerSquat:
        """LQR squat designed on the nominal model (whatever drift this plant carries now), with
        control weight R = r_scale I."""
        model = suite_walker.Physics.from_xml_string(*suite_walker.get_model_and_assets()).model.ptr
        qpos0, ctrl0 = stance_equilibrium(model, self.crouch)
        A, B = linearize(model, qpos0, ctrl0, self.n_sub_steps)
        Q = np.diag([100.0, 1e-3, 100.0] + [1.0] * 6 + [0.1] * 9)
        K = lqr_gain(A, B, Q, r_scale * np.eye(model.nu))
        K[:, 1] = 0.0  # root x is not observed
        grid = np.linspace(0.0, 1.2, 13)
        eq = [stance_equilibrium(model, s) for s in grid]
        return WalkerSquat(K=K, qpos0=qpos0, grid=grid, grid_rootz=np.array([q[0] for q, _ in eq]),
                           grid_ctrl=np.array([c for _, c in eq]), dt=self.control_dt,
                           s0=self.crouch, depth=depth, period=period)


def stand_reward(batch, torso: int) -> np.ndarray:
    """dm_control's walker stand reward (move_speed 0) of every row of `batch`, bit for bit."""
    stand_height = suite_walker._STAND_HEIGHT
    standing = tolerance(batch.xpos[:, torso, Z], bounds=(stand_height, float("inf")),
                         margin=stand_height / 2, per_scalar=True)
    upright = (1 + batch.xmat[:, torso, ZZ]) / 2
    return (3 * standing + upright) / 4


def reward(model, frames, constants) -> np.ndarray:
    """Objective entry point of the shipped walker profile (launch/robots/walker.yaml)."""
    torso = _TORSO.get(model)
    if torso is None:
        torso = _TORSO[model] = model.body("torso").id
    return stand_reward(frames, torso)


_TORSO: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # model -> torso body id


reward.fields = ("xpos", "xmat")


@functools.lru_cache(maxsize=4)
def _nominal_stance(crouch: float) -> np.ndarray:
    model = suite_walker.Physics.from_xml_string(*suite_walker.get_model_and_assets()).model.ptr
    return stance_equilibrium(model, crouch)[0]


def initialize(model, data, rng: np.random.Generator) -> None:
    """Initial-state entry point of the shipped walker profile: the crouched equilibrium of the
    *nominal* walker with small random leg velocities, as `Walker._initialize_episode`."""
    data.qpos[:] = _nominal_stance(Walker.crouch)
    data.qvel[3:] = 0.05 * rng.standard_normal(6)
