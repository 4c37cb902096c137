"""The controller node's parameter rules: one check for start-up values and run-time changes alike.

Why a table of its own: a value given at start-up (``--params`` file, ``--set``, a launch file's
``parameters``) must be refused exactly like the same value set with ``ros2 param set``, and the
refusal must name the parameter and what it may be. ROS 2 expresses part of that in a parameter's
descriptor (``read_only``, ``floating_point_range`` / ``integer_range``, ``additional_constraints``,
shown by ``ros2 param describe``); the rest (choices, finiteness, paths, JSON) is checked by the
node's set-parameters callback, which is registered before the parameters are declared so that
overrides go through it too (`declare_checked`).

Rule classes (one test each in tests/test_params.py):

- **enum**  `Choice`: one of a fixed set (``mode``, ``trigger``, ``sandbox``, ``velocity_source``,
  ``plant``).
- **range** `Range`: a finite number inside [low, high] (an open low end for "> 0").
- **path**  `PathRule`: a file or directory that must exist / must not be a system directory.
- **JSON**  `JsonRule`: a JSON text parsed and checked by a function.

A parameter without a rule is still type-checked by rclpy (its default fixes its type).
Everything here is plain Python; nothing imports rclpy except `descriptor` and `declare_checked`.
"""
from __future__ import annotations

import difflib
import json
import math
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

MODES = ("active", "shadow", "canary")
TRIGGERS = ("timer", "joint_states")
SANDBOXES = ("auto", "sim", "interim")
VELOCITY_SOURCES = ("measured", "differentiate")
# Directories a registry or a job root must never be (the node writes into them).
SYSTEM_DIRS = ("/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/root", "/run", "/sbin",
               "/sys", "/usr", "/var", "/opt", "/home", "/tmp")


class ParameterError(ValueError):
    """A parameter value that the node refuses; the message is one line naming the parameter."""


@dataclass(frozen=True)
class Choice:
    choices: tuple[str, ...] | Callable[[], Sequence[str]]

    def options(self) -> tuple[str, ...]:
        return tuple(self.choices() if callable(self.choices) else self.choices)

    def allowed(self) -> str:
        return "one of " + " | ".join(self.options())

    def check(self, value: Any) -> str | None:
        if value not in self.options():
            return f"{value!r} is not allowed"
        return None


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    low_open: bool = False          # "> low" instead of ">= low"
    integer: bool = False

    def allowed(self) -> str:
        lo = f"> {self.low:g}" if self.low_open else f">= {self.low:g}"
        return f"a finite {'integer' if self.integer else 'number'} {lo} and <= {self.high:g}"

    def check(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{value!r} is not a number"
        if self.integer and not isinstance(value, int):
            return f"{value!r} is not an integer"
        v = float(value)
        if not math.isfinite(v):
            return f"{value!r} is not finite"
        if v < self.low or (self.low_open and v == self.low) or v > self.high:
            return f"{value!r} is out of range"
        return None


@dataclass(frozen=True)
class PathRule:
    """`kind`: file (a regular file), dir (a writable directory, created if missing: not a system
    directory), registry (dir, and if it exists either empty or a driftgate registry).
    `empty_ok`: '' means "not set"; `keywords`: values that are not paths ('lqr', 'none')."""

    kind: str
    empty_ok: bool = True
    keywords: tuple[str, ...] = ()

    def allowed(self) -> str:
        what = {"file": "an existing regular file", "dir": "a directory that is not a system directory",
                "registry": "a driftgate registry directory, or a new or empty one (not a system directory)"}
        extra = [repr(k) for k in self.keywords] + (["'' (not set)"] if self.empty_ok else [])
        return what[self.kind] + (f", or {', '.join(extra)}" if extra else "")

    def check(self, value: Any) -> str | None:
        if not isinstance(value, str):
            return f"{value!r} is not a path"
        if value == "":
            return None if self.empty_ok else "is not set"
        if value.lower() in self.keywords:
            return None
        if "\x00" in value:
            return "contains a NUL byte"
        if self.kind == "file":
            return _check_file(value)
        return _check_dir(value, registry=self.kind == "registry")


@dataclass(frozen=True)
class JsonRule:
    """A JSON text; `parse(obj)` raises ValueError with the reason. `empty_ok`: '' means none."""

    parse: Callable[[Any], Any]
    what: str
    empty_ok: bool = True

    def allowed(self) -> str:
        return self.what + (", or '' (none)" if self.empty_ok else "")

    def check(self, value: Any) -> str | None:
        if not isinstance(value, str):
            return f"{value!r} is not JSON text"
        if value.strip() == "" and self.empty_ok:
            return None
        try:
            obj = json.loads(value)
        except json.JSONDecodeError as e:
            return f"is not valid JSON ({e.msg} at character {e.pos})"
        try:
            self.parse(obj)
        except (ValueError, TypeError) as e:
            return str(e).splitlines()[0] if str(e) else type(e).__name__
        return None


@dataclass(frozen=True)
class ListRule:
    """A list whose items pass `item` (a Range or a function returning a reason), length limits."""

    item: Any
    what: str
    min_len: int = 0
    unique: bool = False

    def allowed(self) -> str:
        return self.what

    def check(self, value: Any) -> str | None:
        if not isinstance(value, (list, tuple)):
            return f"{value!r} is not a list"
        if len(value) < self.min_len:
            return f"has {len(value)} entries, needs at least {self.min_len}"
        if self.unique and len(set(value)) != len(value):
            return f"{list(value)!r} has duplicates"
        for i, x in enumerate(value):
            why = self.item.check(x) if hasattr(self.item, "check") else self.item(x)
            if why:
                return f"entry {i}: {why}"
        return None


@dataclass(frozen=True)
class FuncRule:
    func: Callable[[Any], str | None]
    what: str

    def allowed(self) -> str:
        return self.what

    def check(self, value: Any) -> str | None:
        return self.func(value)


# ---------------------------------------------------------------------- helpers

def _check_file(value: str) -> str | None:
    p = Path(value)
    try:
        st = p.stat()
    except OSError:
        # relative files may be package data (resolved by the node); only absolute ones must exist here
        return f"{value!r} does not exist" if p.is_absolute() else None
    import stat
    if not stat.S_ISREG(st.st_mode):
        return f"{value!r} is not a regular file"
    return None


def _is_system_dir(p: Path) -> bool:
    try:
        real = p.resolve()
    except (OSError, RuntimeError):
        return True
    return str(real) in SYSTEM_DIRS or str(real).startswith(("/proc/", "/sys/", "/dev/"))


def _check_dir(value: str, registry: bool) -> str | None:
    p = Path(value)
    if _is_system_dir(p):
        return f"{value!r} is a system directory"
    if p.exists():
        if not p.is_dir():
            return f"{value!r} exists and is not a directory"
        if registry and not (p / "registry.sqlite").is_file():
            try:
                empty = next(os.scandir(p), None) is None
            except OSError as e:
                return f"{value!r} cannot be read ({e.strerror})"
            if not empty:
                return f"{value!r} is a non-empty directory without registry.sqlite (not a driftgate registry)"
        if not os.access(p, os.W_OK | os.X_OK):
            return f"{value!r} is not writable"
    return None


def _guard_bounds(obj: Any) -> None:
    if not isinstance(obj, dict):
        raise ValueError('expected a JSON object {"joint": [low, high], ...}')
    for name, lohi in obj.items():
        if not isinstance(lohi, list) or len(lohi) != 2 or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in lohi):
            raise ValueError(f"joint {name!r}: expected [low, high] with finite numbers, got {lohi!r}")
        if not lohi[0] < lohi[1]:
            raise ValueError(f"joint {name!r}: low {lohi[0]} must be < high {lohi[1]}")


def _drift_hint(obj: Any) -> None:
    from sim.drift_spec import DriftSpec
    DriftSpec.parse(obj)


def _joint_name(x: Any) -> str | None:
    if not isinstance(x, str) or not x.strip():
        return f"{x!r} is not a joint name"
    if any(c.isspace() or not c.isprintable() for c in x):
        return f"{x!r} contains whitespace or control characters"
    return None


def _sandbox_command(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"{value!r} is not a command line"
    if not value.strip():
        return None
    try:
        args = shlex.split(value)
    except ValueError as e:
        return f"cannot be split into arguments ({e})"
    if not any("{job_dir}" in a for a in args):
        return "must contain {job_dir}"
    return None


def _plants() -> tuple[str, ...]:
    from sim.plants import PLANTS
    return tuple(PLANTS)


def _finite(x: Any) -> str | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(float(x)):
        return f"{x!r} is not a finite number"
    return None


def _pos(high: float) -> Range:
    return Range(0.0, high, low_open=True)


def _nonneg(high: float) -> Range:
    return Range(0.0, high)


def _int(low: int, high: int) -> Range:
    return Range(low, high, integer=True)


DAY = 86400.0

# name -> rule. Parameters not listed are checked for their type only.
RULES: dict[str, Any] = {
    # enum
    "plant": Choice(_plants),
    "mode": Choice(MODES),
    "trigger": Choice(TRIGGERS),
    "incumbent_source": Choice(("topic", "joint_state_effort")),
    "sandbox": Choice(SANDBOXES),
    "velocity_source": Choice(VELOCITY_SOURCES),
    # range
    "rate_hz": _pos(10000.0),
    "stale_timeout_s": _pos(60.0),
    "max_abs_input": _pos(1e12),
    "burst_limit": _int(1, 1_000_000),
    "max_joint_states_per_tick": _int(1, 100_000),
    "guard_max_divergence": _nonneg(1e6),
    "incumbent_timeout_s": _pos(3600.0),
    "canary_window_s": _pos(DAY),
    "canary_period_s": _pos(DAY),
    "canary_weight": _nonneg(1.0),
    "adapt_budget_s": _pos(DAY),
    "adapt_generations": _int(1, 1_000_000),
    "adapt_population": _int(1, 100_000),
    "adapt_children": _int(1, 10_000),
    "adapt_horizon": _int(1, 10_000_000),
    "adapt_workers": _int(1, 1024),
    "adapt_sysid_budget_s": _pos(DAY),
    "gate_timeout_s": _pos(DAY),
    "retry_backoff_s": _nonneg(DAY),
    "post_alarm_s": _nonneg(DAY),
    "shadow_s": _pos(DAY),
    "shadow_min_samples": _int(1, 1_000_000_000),
    "shadow_timeout_s": _pos(DAY),
    "shadow_max_divergence": _nonneg(1e6),
    "shadow_max_saturation": _nonneg(1.0),
    "rescue_outside_fraction": _nonneg(1.0),
    "rescue_grace_s": _nonneg(DAY),
    "canary_step_s": _pos(DAY),
    "canary_slice_s": _pos(DAY),
    "canary_duty": _pos(1.0),
    "watch_s": _nonneg(DAY),
    "watch_min_samples": _int(1, 1_000_000_000),
    "watch_tolerance": _nonneg(1e6),
    "realtime_priority": _int(0, 99),
    "orchestrator_rate_hz": _pos(1000.0),
    "diagnostics_rate_hz": _pos(1000.0),
    "canary_weights": ListRule(_pos(1.0), "a non-empty list of numbers in (0, 1]", min_len=1),
    "safe_command": ListRule(FuncRule(_finite, "finite"), "finite numbers inside the actuator bounds, one per "
                             "actuator (the bounds are checked at configure)"),
    "joint_names": ListRule(FuncRule(_joint_name, "name"), "unique joint names without whitespace, one per "
                            "joint of the plant (or [] for the plant's own names)", unique=True),
    # path
    "registry_path": PathRule("registry"),            # unset: configure says so
    "job_root": PathRule("dir"),
    "detector_config": PathRule("file", keywords=("none", "off", "disabled")),
    "gate_suite": PathRule("file"),
    "bootstrap_champion": PathRule("file", keywords=("lqr",)),
    # JSON
    "guard_joint_bounds": JsonRule(_guard_bounds, 'a JSON object {"joint": [low, high]} with low < high'),
    "drift_hint": JsonRule(_drift_hint, "a DriftSpec JSON object"),
    "sandbox_command": FuncRule(_sandbox_command, "'' or a command line containing {job_dir}"),
}


def allowed(name: str) -> str:
    rule = RULES.get(name)
    return rule.allowed() if rule is not None else ""


def check_value(name: str, value: Any) -> str | None:
    """None if `value` is acceptable for parameter `name`, else one line naming the parameter, the
    value's problem and what is allowed."""
    rule = RULES.get(name)
    if rule is None or value is None:       # None: a typed parameter without a value (not set)
        return None
    try:
        why = rule.check(value)
    except Exception as e:   # a rule must never take the node down
        why = f"cannot be checked ({type(e).__name__}: {e})"
    if why is None:
        return None
    return f"parameter {name}: {why}; allowed: {rule.allowed()}"


def did_you_mean(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(close)}?" if close else ""


def unknown_names(names: Sequence[str], known: Sequence[str]) -> str | None:
    """One line for names that are not parameters (None if all are known)."""
    unknown = sorted(set(names) - set(known))
    if not unknown:
        return None
    return "; ".join(f"unknown parameter {n!r}{did_you_mean(n, known)}" for n in unknown)


# ---------------------------------------------------------------------- rclpy side

def descriptor(name: str, description: str, read_only: bool):
    """The ROS ParameterDescriptor: description, read_only, ranges where ROS can express them, and
    the other constraints in words (``ros2 param describe``)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
    d = ParameterDescriptor(description=description, read_only=read_only)
    rule = RULES.get(name)
    if rule is None:
        return d
    d.additional_constraints = rule.allowed()
    if isinstance(rule, Range):
        if rule.integer:
            d.integer_range = [IntegerRange(from_value=int(rule.low), to_value=int(rule.high), step=1)]
        elif not rule.low_open:     # ROS ranges are closed; "> 0" stays in the callback
            d.floating_point_range = [FloatingPointRange(from_value=float(rule.low), to_value=float(rule.high),
                                                         step=0.0)]
    return d


# Parameters every rclpy node may receive without declaring them itself.
_BUILTIN_PREFIXES = ("qos_overrides.",)
_BUILTIN = ("use_sim_time", "start_type_description_service")


def declare_checked(node, table: dict[str, tuple]) -> list[str]:
    """Declare every parameter of `table` (name -> (default, description, read_only)) on `node`.

    Call after `node.add_on_set_parameters_callback` (so overrides pass the same check as run-time
    changes). An override that is refused (wrong type, out of range, not allowed) does not raise:
    the parameter keeps its default and the reason is returned, so that `configure` can fail with
    it (a lifecycle node reports bad configuration by failing configure, not by crashing)."""
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
    from rclpy.parameter import Parameter
    errors: list[str] = []
    overrides = dict(getattr(node, "_parameter_overrides", {}) or {})
    for name, (default, desc, ro) in table.items():
        d = descriptor(name, desc, ro)
        try:
            node.declare_parameter(name, default, d)
        except (InvalidParameterTypeException, InvalidParameterValueException, TypeError, ValueError) as e:
            given = overrides.get(name)
            value = given.value if given is not None else None
            why = check_value(name, value)
            if why is None:
                want = Parameter.Type(d.type).name.lower() if d.type else "?"
                why = f"parameter {name}: {value!r} has the wrong type, expected {want}" \
                    if isinstance(e, InvalidParameterTypeException) else f"parameter {name}: {e}"
            errors.append(why)
            node.declare_parameter(name, default, descriptor(name, desc, ro), ignore_override=True)
    known = list(table)
    extra = [n for n in overrides if n not in table and n not in _BUILTIN and not n.startswith(_BUILTIN_PREFIXES)
             and not node.has_parameter(n)]
    msg = unknown_names(extra, known)
    if msg:
        errors.append(msg)
    return errors
