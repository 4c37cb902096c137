"""The controller node's parameter rules: one check for start-up values and run-time changes alike.

Why a table of its own: a value given at start-up (``--params`` file, ``--set``, a launch file's
``parameters``) must be refused exactly like the same value set with ``ros2 param set``, and the
refusal must name the parameter and what it may be. ROS 2 expresses part of that in a parameter's
descriptor (``read_only``, ``floating_point_range`` / ``integer_range``, ``additional_constraints``,
shown by ``ros2 param describe``); the rest (choices, finiteness, paths, JSON) is checked by the
node's set-parameters callback, which is registered before the parameters are declared so that
overrides go through it too (`declare_checked`).

Rule classes (one test each in tests/test_params.py):

- **enum**  `Choice`: one of a fixed set (from the settings tree's ``Literal`` annotations).
- **range** `Range`: a finite number inside [low, high] (an open low end for "> 0"), from the
  tree's ``gt`` / ``ge`` / ``le`` constraints (`rule` derives both; `RULES` holds the rest).
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

from controller.settings import SettingsError

# Directories a registry or a job root must never be (the node writes into them).
SYSTEM_DIRS = ("/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/root", "/run", "/sbin",
               "/sys", "/usr", "/var", "/opt", "/home", "/tmp")


# A parameter value that the node refuses; the message is one line naming the parameter.
ParameterError = SettingsError


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


def _robot(value: Any) -> str | None:
    """A built-in robot's name or a robot profile file (relative ones may be shipped: checked at configure)."""
    if not isinstance(value, str) or not value:
        return f"{value!r} is not a robot"
    if value.endswith((".yaml", ".yml")):
        return _check_file(value)
    from sim.plants import PLANTS
    return None if value in PLANTS else f"{value!r} is not a built-in robot ({' | '.join(PLANTS)})"


def _finite(x: Any) -> str | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(float(x)):
        return f"{x!r} is not a finite number"
    return None


def _pos(high: float) -> Range:
    return Range(0.0, high, low_open=True)


def _mapping(obj: Any) -> None:
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")


# name -> rule, where the tree's own constraints (Literal choices, gt/ge/le) do not say it all;
# every other setting gets its rule from controller.settings (`rule`).
RULES: dict[str, Any] = {
    "robot": FuncRule(_robot, "a built-in robot name (sim.plants) or an existing robot profile "
                      "YAML (.yaml/.yml)"),
    "orchestrator.canary_weights": ListRule(_pos(1.0), "a non-empty list of numbers in (0, 1]", min_len=1),
    "runtime.safe_command": ListRule(FuncRule(_finite, "finite"), "finite numbers inside the actuator bounds, one "
                                     "per actuator (the bounds are checked at configure)"),
    "runtime.joint_names": ListRule(FuncRule(_joint_name, "name"), "unique joint names without whitespace, one "
                                    "per joint of the robot (or [] for the model's own names)", unique=True),
    # path
    "orchestrator.registry_path": PathRule("registry"),            # unset: configure says so
    "orchestrator.job_root": PathRule("dir"),
    "monitor.config": PathRule("file", keywords=("none", "off", "disabled")),
    "gate.suite": PathRule("file"),
    "orchestrator.bootstrap_champion": PathRule("file", keywords=("lqr",)),
    # JSON
    "guard.joint_bounds": JsonRule(_guard_bounds, 'a JSON object {"joint": [low, high]} with low < high'),
    "adapt.drift": JsonRule(_drift_hint, "a DriftSpec JSON object"),
    "monitor.overrides": JsonRule(_mapping, "a JSON object (keys of the drift monitor YAML)"),
    "gate.overrides": JsonRule(_mapping, "a JSON object (keys of the regression suite YAML)"),
    "adapt.sandbox_command": FuncRule(_sandbox_command, "'' or a command line containing {job_dir}"),
}


def _derived(name: str) -> Any:
    """A Choice or Range from the settings tree's annotation and constraints (None if it has none)."""
    import typing

    from controller import settings
    f = settings.field_info(name)
    if f is None:
        return None
    ann = f.annotation
    if typing.get_origin(ann) is typing.Literal:
        return Choice(tuple(typing.get_args(ann)))
    low = high = None
    low_open = False
    for m in f.metadata:
        for attr, is_open in (("gt", True), ("ge", False)):
            if getattr(m, attr, None) is not None:
                low, low_open = float(getattr(m, attr)), is_open
        if getattr(m, "le", None) is not None:
            high = float(m.le)
    if low is None:
        return None
    integer = ann is int or int in typing.get_args(ann)
    return Range(low, high if high is not None else 1e18, low_open=low_open, integer=integer)


def rule(name: str) -> Any:
    """The rule of a dotted setting name (None: type-checked only)."""
    r = RULES.get(name)
    return r if r is not None else _derived(name)


def allowed(name: str) -> str:
    r = rule(name)
    return r.allowed() if r is not None else ""


def check_value(name: str, value: Any) -> str | None:
    """None if `value` is acceptable for parameter `name`, else one line naming the parameter, the
    value's problem and what is allowed."""
    r = rule(name)
    if r is None or value is None:       # None: a typed parameter without a value (not set)
        return None
    try:
        why = r.check(value)
    except Exception as e:   # a rule must never take the node down
        why = f"cannot be checked ({type(e).__name__}: {e})"
    if why is None:
        return None
    return f"parameter {name}: {why}; allowed: {r.allowed()}"


def did_you_mean(name: str, known: Sequence[str]) -> str:
    """Close names; a dotted name is compared with the names of its own section."""
    prefix, _, leaf = name.rpartition(".")
    if prefix:
        siblings = {k.rpartition(".")[2]: k for k in known if k.rpartition(".")[0] == prefix}
        close = [siblings[c] for c in difflib.get_close_matches(leaf, list(siblings), n=3, cutoff=0.6)]
    else:
        close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(close)}?" if close else ""


def unknown_names(names: Sequence[str], known: Sequence[str]) -> str | None:
    """One line for names that are not parameters (None if all are known); an old name of a
    setting names its replacement (`controller.settings.RENAMED`)."""
    unknown = sorted(set(names) - set(known))
    if not unknown:
        return None
    from controller.settings import renamed_error
    old = renamed_error(unknown, known)
    if old:
        return "parameter " + old.replace("setting ", "", 1)
    return "; ".join(f"unknown parameter {n!r}{did_you_mean(n, known)}" for n in unknown)


# ---------------------------------------------------------------------- rclpy side

def descriptor(name: str, description: str, read_only: bool):
    """The ROS ParameterDescriptor: description, read_only, ranges where ROS can express them, and
    the other constraints in words (``ros2 param describe``)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
    d = ParameterDescriptor(description=description, read_only=read_only)
    r = rule(name)
    if r is None:
        return d
    d.additional_constraints = r.allowed()
    if isinstance(r, Range) and r.high < 1e18:
        if r.integer:
            d.integer_range = [IntegerRange(from_value=int(r.low), to_value=int(r.high), step=1)]
        elif not r.low_open:     # ROS ranges are closed; "> 0" stays in the callback
            d.floating_point_range = [FloatingPointRange(from_value=float(r.low), to_value=float(r.high), step=0.0)]
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
