"""Joint states and commands read back from a recording, paired the way the live node pairs them.

Every reader of a recorded bag (the replay, the drift calibration's `bag_telemetry`, the champion
distillation's `demonstration`) turns two topics into ticks: each ``sensor_msgs/JointState``, put in
the plant's joint order, is paired with the ``Float64MultiArray`` command published after it.

* `JointOrder` puts a message's positions and velocities in a fixed joint order (the lookup is cached
  per tuple of names, as the live runtime does); a message that lacks one of the joints, names one
  twice, or whose arrays do not match its names, gives None.
* `StatePairing` pairs states with the next command. With ``hold=True`` a state followed by another
  state before any command is paired with the last command seen (zero-order hold: the command in
  force, what the monitor saw live); with ``hold=False`` it is counted in `unpaired` and dropped (a
  demonstration pairs only what the incumbent answered).
* `header_stamp` is a message's own stamp in seconds, or the bag's receive time when it has none.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np


class JointOrder:
    """Positions and velocities of JointState messages in the order `names`."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self._index: dict[tuple, np.ndarray | None] = {}

    def index(self, msg_names: Sequence[str]) -> np.ndarray | None:
        """Where each of `names` sits in `msg_names` (which may name more joints); None when one is
        missing or a name repeats."""
        key = tuple(msg_names)
        if key not in self._index:
            where = {n: i for i, n in enumerate(key)}
            self._index[key] = (np.array([where[n] for n in self.names], dtype=np.intp)
                                if len(where) == len(key) and all(n in where for n in self.names) else None)
        return self._index[key]

    def reorder(self, msg: Any) -> tuple[np.ndarray, np.ndarray] | None:
        """(q, v) as float64 in this order, or None for a message with other joints or ragged arrays."""
        idx = self.index(msg.name)
        if idx is None or len(msg.position) != len(msg.name) or len(msg.velocity) != len(msg.name):
            return None
        return np.asarray(msg.position, dtype=np.float64)[idx], np.asarray(msg.velocity, dtype=np.float64)[idx]


def header_stamp(msg: Any, bag_ns: int) -> float:
    """The message's header stamp in seconds; the bag's receive time when the stamp is unset."""
    st = msg.header.stamp
    stamp = st.sec + 1e-9 * st.nanosec
    return stamp if stamp > 0 else bag_ns / 1e9


class StatePairing:
    """Joint states paired with the command that follows each; `emit(state, command)` per pair.

    Feed `state(item)` for every joint state (None for one that cannot be used: counted in
    `skipped`), `command(a)` for every command, and `finish()` at the end of the recording."""

    def __init__(self, emit: Callable[[Any, np.ndarray], None], *, hold: bool) -> None:
        self.emit, self.hold = emit, hold
        self.pending: Any = None
        self.last_command: np.ndarray | None = None
        self.skipped = 0        # unusable states, and (hold) states before any command
        self.unpaired = 0       # (no hold) states another state followed before any command

    def state(self, item: Any) -> None:
        if self.pending is not None:
            if not self.hold:
                self.unpaired += 1
            elif self.last_command is not None:
                self.emit(self.pending, self.last_command)
            else:
                self.skipped += 1
        self.pending = item
        if item is None:
            self.skipped += 1

    def command(self, a: np.ndarray) -> None:
        self.last_command = a
        if self.pending is not None:
            self.emit(self.pending, a)
            self.pending = None

    def discard(self) -> None:
        """A command that cannot be used: the waiting state goes unpaired (and uncounted)."""
        self.pending = None

    def finish(self) -> None:
        if self.hold and self.pending is not None and self.last_command is not None:
            self.emit(self.pending, self.last_command)
        self.pending = None


__all__ = ["JointOrder", "StatePairing", "header_stamp"]
