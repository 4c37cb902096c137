"""The one home of driftgate's JSON and file-writing helpers.

* Atomic writes: temporary file in the same directory, fsync, rename, fsync of the directory. A
  reader (or a crash) sees the old file or the new one, never half of one. A replaced file keeps
  its permissions (a reviewed, shared file stays readable by the group that could read it).
* Canonical JSON: sorted keys, no whitespace, no NaN: one text per value, so hashes (genome ids,
  DriftSpec hashes, the audit chain, decision records) are reproducible.
* JSON-safe conversion: numpy scalars and arrays to Python, tuples to lists, non-finite floats to
  None, enums to their values, paths to strings.
* Strict dataclass-from-mapping: a file's object becomes a contract dataclass, or a one-line error
  naming the unknown key (a typo is an error, not a silently ignored setting).

Small and import-light (json, os, numpy): the live side (controller/) uses it too.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import secrets
import stat
from enum import Enum
from pathlib import Path
from typing import Any, Iterable, Mapping, TypeVar

import numpy as np

T = TypeVar("T")


# ---------------------------------------------------------------------- atomic writes

def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (see the module docstring); returns the path. A new file gets
    the permissions `open()` would give it (0666 less the umask), a replaced one keeps its own."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mode = None
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def _create_temp(path: Path) -> tuple[int, str]:
    """A new, exclusive temporary file beside `path` (like mkstemp, but with open()'s permissions)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(100):
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (best effort: not every filesystem lets a directory be synced)."""
    with contextlib.suppress(OSError):
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """`atomic_write_bytes` of UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 1, *,
                      sort_keys: bool = False) -> Path:
    """`obj` as JSON (no NaN: `json_safe` it first when it may hold any) plus a newline, atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys, allow_nan=False) + "\n")


# ---------------------------------------------------------------------- JSON values

def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, ASCII, no NaN (ValueError): the one text of a JSON value."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def json_safe(x: Any) -> Any:
    """Plain JSON values: numpy to Python, tuples to lists, non-finite floats to None, enums to their
    values, paths to strings, anything else to its `str`.

    >>> json_safe({"a": (np.float32(1.5), float("nan")), 2: np.arange(2)})
    {'a': [1.5, None], '2': [0, 1]}
    """
    if isinstance(x, Mapping):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, np.ndarray):
        return json_safe(x.tolist())
    if isinstance(x, Enum):
        return json_safe(x.value)
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    if x is None or isinstance(x, str):
        return x
    return str(x)


# ---------------------------------------------------------------------- contracts from files

def dataclass_from_mapping(cls: type[T], data: Any, *, what: str, ignore: Iterable[str] = ()) -> T:
    """`cls(**data)` for a dataclass `cls`, refusing anything but a mapping of its own field names.

    Keys in `ignore` are dropped silently (fields a format carries beside the contract). Every
    problem is a ValueError starting with `what` (e.g. ``job.json`` or ``calibration``): unknown keys
    (all of them, and the known ones), a missing required field, a value `cls` refuses.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"{what}: expected a JSON object, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    skip = set(ignore)
    unknown = sorted(str(k) for k in set(data) - known - skip)
    if unknown:
        raise ValueError(f"{what}: unknown key(s) {unknown}; known: {sorted(known)}")
    try:
        return cls(**{k: v for k, v in data.items() if k in known})
    except TypeError as e:
        raise ValueError(f"{what}: {e}") from None


__all__ = ["atomic_write_bytes", "atomic_write_json", "atomic_write_text", "canonical_json",
           "dataclass_from_mapping", "json_safe"]
