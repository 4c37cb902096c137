"""How a profile's observation carries the angle of a continuous joint (a hinge with no range).

Why: a joint that turns freely (the reacher's shoulder while it tracks a circling target) runs to any
angle: -13.5 rad after 300 ticks of tracking. A policy fed that raw number sees inputs it was never
trained on, and cannot represent what depends on the angle periodically (a Jacobian, gravity);
the first reacher champion, an MLP on raw angles, kept 18 of the controller's 279 (issue 15).

``observe.joint_states.angle`` (schema `JointStates.angle`) picks the encoding of every continuous
joint; limited hinges and slides are always observed raw:

- ``raw``    (default) q itself: every existing robot's observation, bit for bit;
- ``wrap``   q wrapped into [-pi, pi): one channel, same name, a jump at the back of the circle;
- ``sincos`` (sin q, cos q): two channels ``NAME.position.sin`` / ``NAME.position.cos``, smooth.

One implementation, `encode_positions`, serves the simulation (`sim.profile.terms.joint_observer`,
batched and one-plant paths alike) and the live controller (`sim.observation.ProfileObservation`,
from JointState); `decode_positions` is its inverse up to whole turns, which is all the drift
monitor and system identification need (`sim.nominal_model.profile_codec` compares angles wrapped
and unwraps telemetry in time).
"""
from __future__ import annotations

import math

import mujoco
import numpy as np

MODES = ("raw", "wrap", "sincos")
TWO_PI = 2.0 * math.pi


def continuous(model: mujoco.MjModel, joint: int) -> bool:
    """A hinge without a range (``jnt_limited == 0``): its angle is only defined up to whole turns."""
    return (int(model.jnt_type[joint]) == int(mujoco.mjtJoint.mjJNT_HINGE)
            and not bool(model.jnt_limited[joint]))


def joint_modes(model: mujoco.MjModel, joints, angle: str) -> tuple[str, ...]:
    """The encoding of each observed joint: `angle` for continuous ones, ``raw`` for the rest."""
    if angle not in MODES:
        raise ValueError(f"angle: must be one of {', '.join(MODES)}, got {angle!r}")
    return tuple(angle if continuous(model, int(j)) else "raw" for j in joints)


def position_names(ros_joints, modes) -> list[str]:
    """Names of the position channels, in observation order."""
    out = []
    for name, mode in zip(ros_joints, modes):
        out += [f"{name}.position.sin", f"{name}.position.cos"] if mode == "sincos" else [f"{name}.position"]
    return out


def position_width(modes) -> int:
    return sum(2 if m == "sincos" else 1 for m in modes)


def encode_positions(q: np.ndarray, modes) -> np.ndarray:
    """(B, n) joint positions -> (B, position_width) channels. Element-wise only (no reduction over
    the batch), so a batch of B gives each row exactly what a batch of one gives."""
    q = np.asarray(q, dtype=np.float64)
    if all(m == "raw" for m in modes):
        return q
    cols = []
    for k, mode in enumerate(modes):
        x = q[:, k]
        if mode == "sincos":
            cols += [np.sin(x), np.cos(x)]
        elif mode == "wrap":
            cols.append(np.mod(x + math.pi, TWO_PI) - math.pi)
        else:
            cols.append(x)
    return np.stack(cols, axis=1)


def decode_positions(channels: np.ndarray, modes) -> np.ndarray:
    """(position_width,) channels -> (n,) joint positions, continuous joints in [-pi, pi]."""
    channels = np.asarray(channels, dtype=np.float64)
    out, i = np.empty(len(modes)), 0
    for k, mode in enumerate(modes):
        if mode == "sincos":
            out[k] = math.atan2(channels[i], channels[i + 1])
            i += 2
        else:
            out[k] = channels[i]
            i += 1
    return out


__all__ = ["MODES", "continuous", "decode_positions", "encode_positions", "joint_modes", "position_names",
           "position_width"]
