"""The nominal closed loop of a profile robot: what its champion does on the NOMINAL model.

The default objective (``kind: model_reference``) scores how closely the robot, drifted or not,
reproduces this reference from the same initial state: a robot with no hand-written reward still has
a meaningful fitness, "behave as you did before the drift". The reference of an episode is a
rollout of the champion's policy (`sim.policy.BoundPolicy`, as the gate and the tick run it) on a
private copy of the nominal model, started from the episode's initial state and recorded for
`ticks` control ticks (after that the last state is held). Initial states repeat (the same episode
seeds across individuals and generations), so rollouts are cached by initial state.

Where the profile has no champion yet (making the first one: `train-nominal`), the reference is the
nominal pose held still (`initial_pose`).
"""
from __future__ import annotations

import copy
import hashlib
from collections import OrderedDict

import mujoco
import numpy as np

from sim.profile.resolve import RobotProfile

CACHE_SIZE = 4096


class ClosedLoopReference:
    """Reference trajectories of the tracked channels: rows = ticks 0..ticks, columns = the profile's
    joint positions (if tracked) then joint velocities (if tracked), in profile order."""

    def __init__(self, profile: RobotProfile, genome, ticks: int, track: tuple[str, ...]) -> None:
        from sim.policy import BoundPolicy
        from sim.profile.objective import observe_function
        from sim.profile.terms import OneRow, fields_of
        from sim.srghn_decode import genome_policy_weights
        self.model = copy.deepcopy(profile.model)            # nominal: no drift is ever applied to it
        self.data = mujoco.MjData(self.model)
        self.ticks = int(ticks)
        self.n_sub = int(profile.n_sub_steps)
        self.command = np.asarray(profile.actuators, dtype=np.intp)
        m = self.model
        limited = m.actuator_ctrllimited[self.command].astype(bool)
        self.lo = np.where(limited, m.actuator_ctrlrange[self.command, 0], -np.inf)
        self.hi = np.where(limited, m.actuator_ctrlrange[self.command, 1], np.inf)
        self.policy = BoundPolicy(genome.policy_spec, genome_policy_weights(genome)[None])
        self.observe = observe_function(profile)
        self.row = OneRow(self.data, fields_of(self.observe))
        cols = []
        if "joint_positions" in track:
            cols.append(("qpos", np.asarray(profile.qpos_adr, dtype=np.intp)))
        if "joint_velocities" in track:
            cols.append(("qvel", np.asarray(profile.dof_adr, dtype=np.intp)))
        self.cols = cols
        self.width = sum(len(c) for _, c in cols)
        self.genome_id = genome.id
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()

    def _channels(self) -> np.ndarray:
        return np.concatenate([getattr(self.data, f)[idx] for f, idx in self.cols])

    def trajectory(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """(ticks + 1, width): the tracked channels of the nominal closed loop from (qpos, qvel)."""
        key = hashlib.blake2b(np.ascontiguousarray(qpos, dtype=np.float64).tobytes()
                              + np.ascontiguousarray(qvel, dtype=np.float64).tobytes(), digest_size=16).digest()
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        d.qpos[:] = qpos
        d.qvel[:] = qvel
        mujoco.mj_forward(m, d)
        out = np.empty((self.ticks + 1, self.width))
        out[0] = self._channels()
        empty = np.zeros((1, 0))
        for k in range(1, self.ticks + 1):
            obs = self.observe(m, self.row, empty)
            a = np.clip(self.policy.act(obs)[0].astype(np.float64), self.lo, self.hi)
            d.ctrl[self.command] = a
            mujoco.mj_step(m, d, self.n_sub)
            mujoco.mj_kinematics(m, d)
            out[k] = self._channels()
        out.flags.writeable = False
        self._cache[key] = out
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return out


_REFERENCES: dict[tuple, ClosedLoopReference] = {}


def closed_loop_reference(profile: RobotProfile, ticks: int, track: tuple[str, ...]) -> ClosedLoopReference | None:
    """The profile's nominal closed loop with its champion (assets.champion), shared per process;
    None when the profile names no champion or it does not exist yet."""
    path = profile.asset_path("champion")
    if path is None or not path.exists():
        return None
    key = (str(profile.path), str(path), path.stat().st_mtime_ns, int(ticks), tuple(track))
    ref = _REFERENCES.get(key)
    if ref is None:
        from sim.genome import load_genome
        ref = _REFERENCES[key] = ClosedLoopReference(profile, load_genome(path), ticks, track)
    return ref
