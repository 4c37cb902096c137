"""The telemetry window system identification reads, and a recorder that makes one in simulation.

`Telemetry`: qpos (T+1, nq), qvel (T+1, nv), actions (T, nu), control_dt, and optionally the
exact MuJoCo warm start per tick (when it comes from a simulator) and the breaks where the stream
was interrupted. `record` runs a plant with a controller plus a small probing signal (an
excitation that breaks the gain/mass tie of pure state feedback, see its docstring), with
Gaussian sensor noise.
"""
from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from sim.plants.base import STATE_SPEC, Plant


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


__all__ = ["Telemetry", "record"]
