"""Where the controller node observes the incumbent (the controller already on the robot).

``incumbent_source``:

- ``topic``: the incumbent publishes its commands (``incumbent_topic``, std_msgs/Float64MultiArray),
  e.g. a controller node outside ros2_control, or a topic-based mux in front of the robot;
- ``joint_state_effort``: the incumbent is a ros2_control controller (a joint trajectory
  controller, say) that writes the command interfaces directly and publishes nothing to listen to.
  What it applied is then read back from ``JointState.effort``: joint_state_broadcaster publishes
  the effort state interface of every joint that has one, and for an effort-commanded joint that
  is the command in force. One effort per actuator, from the actuated joints (the plant model's
  actuator transmissions, `actuated_joints`), in actuator order: the units of the commands topic.

The effort in a joint state is the command that moved the robot *to* that state, i.e. the
incumbent's answer to the previous state: the pairing with the champion's action lags one control
period. The shadow comparison is a mean over many ticks and tolerates it.

Only shadow mode makes sense with ``joint_state_effort``. The node's canary mode relays the
incumbent's command on driftgate's own command topic; with ros2_control only one controller holds
a command interface, so once driftgate's forward command controller is active the effort read back
is driftgate's own output, and relaying it would freeze the robot on its last command. Canary is
refused there (`mode_refused`): switch controllers with controller_manager instead (README).
"""
from __future__ import annotations

from typing import Sequence

SOURCES = ("topic", "joint_state_effort")


def actuated_joints(plant: str) -> tuple[int, ...]:
    """Index (in the plant's joint order) of the joint each command drives, in command order.
    Raises ValueError for a command whose actuator does not act on one published joint (a tendon, a site)."""
    from sim.plants import make_plant
    p = make_plant(plant)
    out = p.command_joints()
    for k, j in enumerate(out):
        if j < 0:
            raise ValueError(f"incumbent_source joint_state_effort: command {k} ({p.actuator_names[k]!r}) of plant "
                             f"{plant!r} does not drive a single published joint; use incumbent_source topic")
    return tuple(out)


class EffortIncumbent:
    """The incumbent's command from a JointState's effort field (see the module docstring)."""

    def __init__(self, joint_names: Sequence[str], actuated: Sequence[int]) -> None:
        self.joints = tuple(joint_names[i] for i in actuated)   # robot names of the actuated joints
        self._cache: dict[tuple, tuple[int, ...] | None] = {}
        self.missing = 0                                         # joint states without usable effort

    def command(self, names: Sequence[str], effort: Sequence[float]) -> list[float] | None:
        """Efforts of the actuated joints in actuator order, or None (no effort field, or one that
        does not cover those joints: joint_state_broadcaster leaves it empty without effort
        interfaces)."""
        if len(effort) != len(names):
            self.missing += 1
            return None
        key = tuple(names)
        idx = self._cache.get(key, ())
        if idx == ():
            pos = {n: i for i, n in enumerate(key)}
            idx = tuple(pos[j] for j in self.joints) if all(j in pos for j in self.joints) else None
            if len(self._cache) < 64:
                self._cache[key] = idx
        if idx is None:
            self.missing += 1
            return None
        return [float(effort[i]) for i in idx]


def check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"incumbent_source must be one of {', '.join(SOURCES)}; got {source!r}")


def mode_refused(source: str, mode: str) -> str | None:
    """Why `mode` cannot run with this incumbent source (None: it can)."""
    if source == "joint_state_effort" and mode == "canary":
        return ("mode canary relays the incumbent's command, which incumbent_source joint_state_effort cannot "
                "observe once driftgate holds the command interface; use shadow, then switch controllers "
                "with controller_manager")
    return None
