"""Who drives the command, handed to the tick as one immutable slot (the hot swap).

Authority, in ros2_control terms:

- ``NONE``       shadow: no command is published at all (the robot's own controller drives it);
                 the champion's actions are still computed and compared with the incumbent's.
- ``CHAMPION``   the champion drives; a *candidate* may run beside it (orchestrator shadow) and may
                 get a bounded share of the command (orchestrator canary: blended action
                 ``(1 - w) a_champion + w a_candidate``, optionally only in time slices).
- ``INCUMBENT``  node-level canary next to an existing controller: the incumbent's command (received
                 on a topic) is relayed, and in bounded windows the champion's action is blended in.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from controller.compiled_policy import CompiledPolicy


class Authority(str, Enum):
    NONE = "none"
    CHAMPION = "champion"
    INCUMBENT = "incumbent"


@dataclass(frozen=True)
class Canary:
    """A challenger's bounded authority: weight `weight` during the first `duty` of every
    `slice_s` seconds counted from `start` (duty 1: continuous).

    A *rescue* canary (`rescue=True`, see `controller.orchestrator`) replaces a champion that was
    itself failing on the live robot: no divergence guard (distance from a failing controller says
    nothing), and joint-bound trips count only once the challenger has held authority for
    `grace_s` (until then the state is the one the failing champion left behind)."""

    weight: float
    start: float = 0.0
    slice_s: float = 1.0
    duty: float = 1.0
    rescue: bool = False
    grace_s: float = 0.0

    def share(self, now: float) -> float:
        if self.weight <= 0.0:
            return 0.0
        if self.duty >= 1.0:
            return self.weight
        return self.weight if ((now - self.start) % self.slice_s) < self.duty * self.slice_s else 0.0


@dataclass(frozen=True)
class AuthoritySlot:
    """Everything the tick needs to decide a command; replaced as a whole (the hot swap)."""

    authority: Authority = Authority.CHAMPION
    champion: CompiledPolicy | None = None
    candidate: CompiledPolicy | None = None          # orchestrator shadow/canary candidate
    canary: Canary | None = None                     # challenger share (candidate, or champion vs incumbent)
    generation: int = 0
