"""When the plant is "switched": a schedule of generation windows for the Switch benchmarks.

The Switch benchmarks (CartPole-Switch, LunarLander-Switch) test adaptation, not control: a policy that
was good becomes bad at a known generation and good again later. The switch is a property of the
*generation*, never of a step inside an episode, so the schedule speaks in generations and the evolution
loop asks `schedule.active(generation)` before it evaluates a population.

Windows are half-open `[start, end)`; `end=None` means "on from `start` forever". The string form
`"100-200,300-"` is what configs, CLIs and logs use; `to_string()` gives it back canonically.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class SwitchSchedule:
    """Generation windows during which the switch is on.

    Parameters
    ----------
    windows
        `((start, end), ...)` with `start < end` (`end` exclusive, `None` = open-ended), all
        non-negative and non-overlapping. They are stored sorted by start.
    """

    windows: tuple[tuple[int, int | None], ...] = ()

    def __post_init__(self) -> None:
        clean: list[tuple[int, int | None]] = []
        for window in self.windows:
            try:
                start, end = window
            except (TypeError, ValueError):
                raise ValueError(f"SwitchSchedule: window {window!r} is not a (start, end) pair") from None
            start = _as_generation(start, "start", window)
            end = None if end is None else _as_generation(end, "end", window)
            if end is not None and start >= end:
                raise ValueError(f"SwitchSchedule: window {window!r} needs start < end (end is exclusive)")
            clean.append((start, end))
        clean.sort(key=lambda w: w[0])
        for (s0, e0), (s1, e1) in zip(clean[:-1], clean[1:]):
            if e0 is None or e0 > s1:
                raise ValueError(f"SwitchSchedule: windows ({s0}, {e0}) and ({s1}, {e1}) overlap")
        object.__setattr__(self, "windows", tuple(clean))

    @classmethod
    def never(cls) -> "SwitchSchedule":
        """A static task: the switch is never on."""
        return cls(())

    @classmethod
    def from_windows(cls, windows: Iterable[tuple[int, int | None]]) -> "SwitchSchedule":
        return cls(tuple(tuple(w) for w in windows))

    @staticmethod
    def parse_sequence(task: str, changes: str, sequence: str) -> tuple[list[int], list[str]]:
        """A drift-sequence task's `changes` ("100,200") and `sequence` ("mass,gain") as (generations,
        steps), checked: increasing generations >= 1, one per step; errors name the task."""
        try:
            points = [int(c) for c in str(changes).split(",") if c.strip()]
        except ValueError:
            raise ValueError(f"task {task!r}: changes must be comma-separated generations, got {changes!r}") from None
        steps = [t.strip() for t in str(sequence).split(",") if t.strip()]
        if len(points) != len(steps) or any(b <= a for a, b in zip(points, points[1:])) or any(p < 1 for p in points):
            raise ValueError(f"task {task!r}: changes {points} must be increasing, >= 1 and as many as "
                             f"sequence steps {steps}")
        return points, steps

    @classmethod
    def from_conditions(cls, points, conditions, nominal) -> "SwitchSchedule":
        """The windows in which a drift sequence's condition differs from `nominal`: `conditions[0]`
        holds before `points[0]`, `conditions[k]` from `points[k - 1]` on (a drift-sequence task's
        changes, told as switch windows so the recovery metrics read them as Switch tasks do)."""
        windows, start = [], None
        for k, c in enumerate(conditions):
            begin = 0 if k == 0 else points[k - 1]
            if c != nominal and start is None:
                start = begin
            if c == nominal and start is not None:
                windows.append((start, begin))
                start = None
        if start is not None:
            windows.append((start, None))
        return cls.from_windows(windows)

    @classmethod
    def from_string(cls, text: str) -> "SwitchSchedule":
        """Parse `"100-200,300-"` (comma-separated `start-end`, empty end = forever; `""` = never)."""
        if not isinstance(text, str):
            raise ValueError(f"SwitchSchedule: expected a string like '100-200,300-', got {text!r}")
        windows: list[tuple[int, int | None]] = []
        for part in text.replace(" ", "").split(","):
            if not part:
                continue
            start_s, sep, end_s = part.partition("-")
            if not sep or not start_s.isdigit() or not (end_s == "" or end_s.isdigit()):
                raise ValueError(f"SwitchSchedule: cannot parse window {part!r} in {text!r}; "
                                 "expected 'start-end' or 'start-' with non-negative integers")
            windows.append((int(start_s), int(end_s) if end_s else None))
        return cls(tuple(windows))

    def to_string(self) -> str:
        return ",".join(f"{s}-{'' if e is None else e}" for s, e in self.windows)

    def __str__(self) -> str:
        return self.to_string()

    def active(self, generation: int) -> bool:
        """Is the switch on during `generation`?"""
        return any(s <= generation and (e is None or generation < e) for s, e in self.windows)

    def toggles(self) -> list[int]:
        """Generations at which the switch flips (on at each start, off at each finite end), sorted.

        Adjacent windows such as `0-10,10-20` do not flip at 10, so that generation is left out.
        """
        flips: list[int] = []
        for s, e in self.windows:
            if flips and flips[-1] == s:
                flips.pop()  # an end meeting the next start: the switch stays on
            else:
                flips.append(s)
            if e is not None:
                flips.append(e)
        return flips


def _as_generation(value: object, what: str, window: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) and not hasattr(value, "__index__"):
        raise ValueError(f"SwitchSchedule: {what} of window {window!r} must be an integer generation")
    value = int(value.__index__())  # numpy integers are fine, floats are not
    if value < 0:
        raise ValueError(f"SwitchSchedule: {what} of window {window!r} must be non-negative")
    return value
