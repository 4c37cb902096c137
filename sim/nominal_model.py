"""The nominal MuJoCo model as a residual source for the drift monitor.

`NominalPredictor` implements `controller.drift.features.ResidualSource`: for every valid telemetry
tick it compares what the robot did with what the *nominal* robot (the plant's model with no
drift) would have done, and returns the differences, in the joint-state space:

- ``one_step``     every tick: the state measured now minus the nominal one-tick prediction from
                   the state estimated at the previous tick with the action applied then;
- ``kstep_<h>s``   decimated open-loop predictions: every ``every_s`` a "shadow" copy of the
                   nominal model starts from the current state estimate and is driven, one tick at
                   a time, by the actions actually applied; after each horizon h (0.1 s and 0.25 s
                   by default) the measured state minus the shadow state is one residual. Open-loop
                   errors grow with the horizon, so slow drifts (a weaker motor, a heavier payload)
                   that hide in the one-step noise stand out here.

The measured state comes from the observation (`STATE_CODECS`: e.g. cartpole angle = atan2(sin,
cos)); components the observation does not carry (the walker's root x) are left out of the residual,
and angle differences are wrapped to (-pi, pi]. With ``blend < 1`` the state estimate is a fixed-gain
observer, prediction + blend (measurement - prediction), which smooths sensor noise; ``blend = 1``
uses the measurement as is.

Command latency (``latency_ticks`` L > 0): a controller on ROS publishes each command after it
received the joint state, and the robot applies whatever command it holds at its next tick. When
the command is late (a loaded CPU, a busy executor), the robot steps once more with the previous
command, and a residual that assumes the new one carries the command's tick-to-tick change times
the actuator gain: on a live arm (benchmarks/results/robots.md, manipulator) 40 % of the commands
came one or two ticks late and the one-step velocity residuals were 7 x the sensor noise, heavy
tailed, bursts that a Page-Hinkley detector calibrated on latency-free simulation took for a
drift. With L > 0 the one-step prediction is made for each of the last L + 1 commands (newest
first) and the residual of the command that best explains the step is kept; the open-loop shadow
is driven by that command too. A drift that no recent command explains (a payload, a weaker motor)
still shows: the choice can only remove what a command change explains. Cost: up to L more
one-tick predictions per tick (identical commands are predicted once).

Stepping is raw `mujoco.mj_step` on the model's MjModel with private MjData objects (never
dm_control's env.step), so the cost per tick is about two control ticks of physics: one for the
one-step prediction and one for the shadow (less when ``every_s`` exceeds the longest horizon).
The work is spread evenly: the shadow advances one tick per telemetry tick, so no tick pays for a
whole horizon at once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import mujoco
import numpy as np

from sim.plants import make_plant
from sim.plants.walker import qpos_from_obs as walker_qpos_from_obs
from sim.profile.angles import decode_positions, position_width

TWO_PI = 2.0 * math.pi


@dataclass(frozen=True)
class StateCodec:
    """How to read (qpos, qvel) from a plant's observation, and which components to compare."""

    from_obs: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    qpos_keep: tuple[int, ...]        # qpos components that the observation determines
    angle_qpos: tuple[int, ...]       # qpos components that are angles (wrapped differences)
    qvel_keep: tuple[int, ...] | None = None   # qvel components the observation determines (None: all)
    # qpos components the observation gives only up to whole turns (a continuous joint under
    # ``angle: wrap|sincos``): telemetry unwraps them in time (`unwrap_turns`), so that a replay
    # window crossing the back of the circle is not a 2 pi jump to system identification
    turns_qpos: tuple[int, ...] = ()

    def unwrap_turns(self, qpos: np.ndarray, breaks=()) -> np.ndarray:
        """(T, nq) decoded qpos with `turns_qpos` unwrapped along time within each contiguous
        segment (a new segment starts after each tick in `breaks`); other components untouched."""
        qpos = np.array(qpos, dtype=np.float64)
        if not self.turns_qpos or len(qpos) < 2:
            return qpos
        cols = list(self.turns_qpos)
        edges = [0, *(int(b) + 1 for b in breaks), len(qpos)]
        for a, b in zip(edges[:-1], edges[1:]):
            if b - a > 1:
                qpos[a:b, cols] = np.unwrap(qpos[a:b, cols], axis=0)
        return qpos


def _cartpole_state(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.array([obs[0], math.atan2(obs[2], obs[1])]), obs[3:5]


def _walker_state(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return walker_qpos_from_obs(obs), obs[15:24]


def _reacher_state(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.array([math.atan2(obs[0], obs[1]), obs[2]]), obs[3:5]   # shoulder as (sin, cos)


STATE_CODECS: dict[str, StateCodec] = {
    "cartpole": StateCodec(_cartpole_state, (0, 1), (1,)),
    "walker": StateCodec(_walker_state, (0, 2, 3, 4, 5, 6, 7, 8), (2, 3, 4, 5, 6, 7, 8)),
    "reacher": StateCodec(_reacher_state, (0, 1), (0, 1), None, (0,)),
}


def profile_codec(plant) -> StateCodec:
    """The codec of a profile robot (`sim.plants.profile_plant.ProfilePlant`), read off its observation
    layout (`sim.profile.objective.observe_function`): joint positions, then joint velocities, at the
    profile's qpos / dof addresses; then the IMU (orientation w x y z, angular velocity in its own
    frame); then odometry (position, linear velocity in the world frame).

    A floating base (odometry on a body with a free joint) is put back together from both: position
    and linear velocity from odometry, orientation and angular velocity from the IMU when the IMU sits
    on that body (MuJoCo keeps a free joint's angular velocity in the body's frame, as an IMU reports
    it). What the observation does not carry (an unobserved object, a base without odometry) is taken
    from the nominal pose with zero velocity and left out of the residual: the monitor compares only
    what the robot measures."""
    profile = plant.profile
    model = plant.model
    qpos0 = plant._qpos0.copy()
    n = len(profile.qpos_adr)
    qpos_adr = np.asarray(profile.qpos_adr, dtype=np.intp)
    dof_adr = np.asarray(profile.dof_adr, dtype=np.intp)
    hinge = {int(model.jnt_qposadr[j]) for j in range(model.njnt)
             if int(model.jnt_type[j]) == int(mujoco.mjtJoint.mjJNT_HINGE)}
    # qpos residual order: slides first, hinges last (angle components contiguous, as _diff wants)
    joints = sorted((int(a) for a in qpos_adr), key=lambda a: a in hinge)
    keep_q, keep_v = [a for a in joints if a not in hinge], list(int(d) for d in dof_adr)
    modes = tuple(profile.angle_modes) or ("raw",) * n   # continuous joints' encoding (sim.profile.angles)
    raw, width = all(m == "raw" for m in modes), position_width(modes)
    imu_at = width + n
    odom_at = imu_at + (7 if profile.imu is not None else 0)
    base = None
    if profile.odometry is not None:
        body, free_dof = profile.odometry
        jnt = int(model.body_jntadr[body])
        free_q = int(model.jnt_qposadr[jnt])
        with_imu = profile.imu is not None and profile.imu[0] == body and profile.imu[1] is None
        base = (free_q, int(free_dof), with_imu)
        keep_q = list(range(free_q, free_q + 3)) + keep_q
        keep_v += list(range(free_dof, free_dof + (6 if with_imu else 3)))

    def from_obs(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q, v = qpos0.copy(), np.zeros(model.nv)
        q[qpos_adr] = obs[:n] if raw else decode_positions(obs[:width], modes)
        v[dof_adr] = obs[width:width + n]
        if base is not None:
            fq, fd, with_imu = base
            q[fq:fq + 3] = obs[odom_at:odom_at + 3]
            v[fd:fd + 3] = obs[odom_at + 3:odom_at + 6]
            if with_imu:
                q[fq + 3:fq + 7] = obs[imu_at:imu_at + 4]
                v[fd + 3:fd + 6] = obs[imu_at + 4:imu_at + 7]
        return q, v

    turns = tuple(int(a) for a, m in zip(qpos_adr, modes) if m != "raw")
    return StateCodec(from_obs, tuple(keep_q + [a for a in joints if a in hinge]), tuple(sorted(hinge)),
                      tuple(keep_v), turns)


def has_codec(plant: str) -> bool:
    """Whether the drift monitor has a nominal model for `plant` (a built-in with a codec, or any
    robot profile)."""
    from sim.plants import is_profile
    return plant in STATE_CODECS or is_profile(plant)


def codec_for(plant: str) -> StateCodec:
    """The state codec of a built-in plant name or a robot profile path (cached per profile)."""
    if plant in STATE_CODECS:
        return STATE_CODECS[plant]
    if not has_codec(plant):
        raise ValueError(f"no nominal drift model for plant {plant!r}; known: {sorted(STATE_CODECS)} "
                         "or a robot profile")
    return _profile_codec_cached(str(plant))


@lru_cache(maxsize=8)
def _profile_codec_cached(plant: str) -> StateCodec:
    return profile_codec(make_plant(plant))


def channel_name(horizon_s: float) -> str:
    return f"kstep_{horizon_s:.2f}s"


class NominalPredictor:
    """Residual source from the nominal model of plant `plant` (see the module docstring).

    `drift` builds the predictor on a *modified* model instead (e.g. the model system
    identification returned, so the monitor watches for change relative to the robot as it now is).
    """

    def __init__(self, plant: str, horizons_s=(0.1, 0.25), every_s: float = 0.25,
                 blend: float = 1.0, drift=None, latency_ticks: int = 0) -> None:
        if not has_codec(plant):
            raise ValueError(f"NominalPredictor: no state codec for plant {plant!r}; "
                             f"known: {sorted(STATE_CODECS)} or a robot profile")
        self.plant_name = plant
        self._plant = make_plant(plant, seed=0, drift=drift)   # owns the MjModel
        self.model: mujoco.MjModel = self._plant.model
        self.n_sub = int(self._plant.n_sub_steps)
        self.dt = float(self._plant.control_dt)
        self.codec = STATE_CODECS[plant] if plant in STATE_CODECS else profile_codec(self._plant)
        # commands arrive in the robot's command order; MuJoCo's ctrl holds every actuator of the
        # model (a profile may command a subset): ctrl[command[k]] = action[k], the rest at zero
        command = getattr(getattr(self._plant, "profile", None), "actuators", None)
        self._command = None if command is None else np.asarray(command, dtype=np.intp)
        order = self._plant.ctrl_order
        self._ctrl_order = None if order is None or self._command is not None else np.asarray(order)
        self.blend = float(blend)
        if not 0 < self.blend <= 1:
            raise ValueError(f"NominalPredictor: blend must be in (0, 1], got {blend!r}")
        if isinstance(latency_ticks, bool) or int(latency_ticks) != latency_ticks or latency_ticks < 0:
            raise ValueError(f"NominalPredictor: latency_ticks must be an integer >= 0, got {latency_ticks!r}")
        self.latency_ticks = int(latency_ticks)
        self.latency_hist = np.zeros(self.latency_ticks + 1, dtype=np.int64)   # which command explained each step
        ticks = sorted({max(1, int(round(h / self.dt))) for h in horizons_s})
        if not ticks:
            raise ValueError("NominalPredictor: give at least one open-loop horizon")
        self.horizon_ticks = tuple(ticks)
        self.every_ticks = max(ticks[-1], int(round(every_s / self.dt)))
        self._names = {k: channel_name(k * self.dt) for k in ticks}
        self.lo, self.hi = self._plant.act_low, self._plant.act_high
        nq, nv = self.model.nq, self.model.nv
        keep = np.asarray(self.codec.qpos_keep, dtype=np.intp)
        self._keep = keep
        vkeep = self.codec.qvel_keep
        self._vkeep = None if vkeep is None else np.asarray(vkeep, dtype=np.intp)
        self.dim = keep.size + (nv if vkeep is None else len(vkeep))
        ang = [i for i, j in enumerate(keep) if j in self.codec.angle_qpos]
        if ang != list(range(ang[0], ang[-1] + 1)) if ang else False:
            raise ValueError("NominalPredictor: angle components must be contiguous in qpos_keep")
        self._ang_slice = slice(ang[0], ang[-1] + 1) if ang else slice(0, 0)
        self._one_angle = ang[0] if len(ang) == 1 else None
        self._nk = keep.size
        self._keep_all = keep.size == nq and bool(np.all(keep == np.arange(nq)))
        self._clip_ctrl = not bool(np.all(self.model.actuator_ctrllimited))  # else MuJoCo clamps
        self.channels = {"one_step": self.dim, **{self._names[k]: self.dim for k in ticks}}
        self._d1 = mujoco.MjData(self.model)
        self._dk = mujoco.MjData(self.model)
        self._nq, self._nv = nq, nv
        self.resync()

    # -- ResidualSource ---------------------------------------------------------------------------
    def resync(self) -> None:
        self._prev_q: np.ndarray | None = None
        self._prev_v: np.ndarray | None = None
        self._prev_a: np.ndarray | None = None
        self._older: list[np.ndarray] = []    # the commands before _prev_a, newest first (latency_ticks)
        self._k = -1                       # ticks the shadow has run; -1 = no window open
        self._since = self.every_ticks     # start a window at the first opportunity

    def _diff(self, q_meas: np.ndarray, v_meas: np.ndarray, q_pred: np.ndarray,
              v_pred: np.ndarray) -> np.ndarray:
        r = np.empty(self.dim)
        nk = self._nk
        if self._keep_all:
            np.subtract(q_meas, q_pred, out=r[:nk])
        else:
            r[:nk] = q_meas[self._keep] - q_pred[self._keep]
        if self._vkeep is None:
            np.subtract(v_meas, v_pred, out=r[nk:])
        else:
            r[nk:] = v_meas[self._vkeep] - v_pred[self._vkeep]
        if self._one_angle is not None:   # the common single-angle case, in plain floats
            i = self._one_angle
            x = r[i]
            if x > math.pi or x < -math.pi:
                r[i] = (x + math.pi) % TWO_PI - math.pi
        else:
            a = r[self._ang_slice]       # a view: wrap angle differences in place
            a += math.pi
            np.remainder(a, TWO_PI, out=a)
            a -= math.pi
        return r

    def residuals(self, obs: np.ndarray, action: np.ndarray) -> list[tuple[str, np.ndarray]]:
        qm, vm = self.codec.from_obs(obs)          # measured state
        q, v = qm, vm                              # state estimate
        out: list[tuple[str, np.ndarray]] = []
        m, nsub = self.model, self.n_sub
        if self._prev_q is not None:
            d = self._d1
            d.qpos[:] = self._prev_q
            d.qvel[:] = self._prev_v
            d.ctrl[:] = self._prev_a
            mujoco.mj_step(m, d, nsub)
            r = self._diff(qm, vm, d.qpos, d.qvel)
            applied = self._prev_a
            if self._older:
                r, applied = self._latest_explaining(r, qm, vm)
            out.append(("one_step", r))
            if self.blend < 1.0:
                nk = self._nk
                q = d.qpos.copy()
                q[self._keep] += self.blend * r[:nk]
                v = d.qvel.copy()
                v[slice(None) if self._vkeep is None else self._vkeep] += self.blend * r[nk:]
            if self._k >= 0:
                dk = self._dk
                dk.ctrl[:] = applied
                mujoco.mj_step(m, dk, nsub)
                self._k += 1
                name = self._names.get(self._k)
                if name is not None:
                    out.append((name, self._diff(qm, vm, dk.qpos, dk.qvel)))
                    if self._k == self.horizon_ticks[-1]:
                        self._k = -1
        self._since += 1
        if self._k < 0 and self._since >= self.every_ticks:
            dk = self._dk
            dk.qpos[:] = q
            dk.qvel[:] = v
            self._k = 0
            self._since = 0
        self._prev_q, self._prev_v = q, v
        if self.latency_ticks and self._prev_a is not None:
            self._older = [self._prev_a, *self._older[:self.latency_ticks - 1]]
        a = np.minimum(np.maximum(action, self.lo), self.hi) if self._clip_ctrl else action
        if self._command is not None:
            ctrl = np.zeros(self.model.nu)
            ctrl[self._command] = a
            a = ctrl
        elif self._ctrl_order is not None:
            a = np.asarray(a)[self._ctrl_order]
        self._prev_a = a
        return out

    def _latest_explaining(self, r: np.ndarray, qm: np.ndarray, vm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The one-step residual under the most recent command that best explains the step (`r`: the
        newest command's, already in `_d1`), and that command. The qpos / qvel of `_d1` are left
        at the chosen prediction (the blended state estimate reads them)."""
        d, m, nsub = self._d1, self.model, self.n_sub
        best, best_a, best_i = r, self._prev_a, 0
        best_n = float(r @ r)
        q_best, v_best = d.qpos.copy(), d.qvel.copy()
        seen = [self._prev_a]
        for i, a in enumerate(self._older, start=1):
            if any(np.array_equal(a, b) for b in seen):
                continue        # the same command predicts the same step
            seen.append(a)
            d.qpos[:] = self._prev_q
            d.qvel[:] = self._prev_v
            d.ctrl[:] = a
            mujoco.mj_step(m, d, nsub)
            ri = self._diff(qm, vm, d.qpos, d.qvel)
            ni = float(ri @ ri)
            if ni < best_n:
                best, best_a, best_i, best_n = ri, a, i, ni
                q_best, v_best = d.qpos.copy(), d.qvel.copy()
        d.qpos[:] = q_best
        d.qvel[:] = v_best
        self.latency_hist[best_i] += 1
        return best, best_a

    # -- snapshots (benchmarks branch one history into several futures) ---------------------------
    def snapshot(self) -> tuple:
        """Everything the next `residuals` call depends on, copied."""
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        states = []
        for d in (self._d1, self._dk):
            x = np.empty(mujoco.mj_stateSize(self.model, spec))
            mujoco.mj_getState(self.model, d, x, spec)
            states.append(x)
        cp = (lambda a: None if a is None else np.array(a, copy=True))
        return (cp(self._prev_q), cp(self._prev_v), cp(self._prev_a), self._k, self._since, states,
                [cp(a) for a in self._older])

    def restore(self, snap: tuple) -> None:
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        prev_q, prev_v, prev_a, self._k, self._since, states, older = snap
        cp = (lambda a: None if a is None else np.array(a, copy=True))
        self._prev_q, self._prev_v, self._prev_a = cp(prev_q), cp(prev_v), cp(prev_a)
        self._older = [cp(a) for a in older]
        for d, x in zip((self._d1, self._dk), states):
            mujoco.mj_setState(self.model, d, x, spec)


def make_predictor(plant: str, config=None, drift=None) -> NominalPredictor:
    """A predictor configured from a `MonitorConfig`'s ``nominal_model`` section (or defaults)."""
    if config is None:
        return NominalPredictor(plant, drift=drift)
    nm = config.nominal_model
    return NominalPredictor(plant, horizons_s=nm.horizons_s, every_s=nm.every_s, blend=nm.blend,
                            drift=drift, latency_ticks=nm.latency_ticks)
