"""The suite grows with the robot: after each promotion the regime adapted to is appended as an
`archive` scenario (`append_archive`), and a working copy of a shipped suite carries the archive
of earlier runs (`working_suite`). Every write is validated first, atomic and locked."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

from safety.scenarios import Suite, SuiteError, SuiteScenario, check_drift
from safety.suite import load_suite, parse_suite, parse_suite_text
from sim.atomicio import atomic_write_bytes
from sim.drift_spec import DriftSpec


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise read-modify-write of one suite file across processes (a sidecar lock file:
    locking the suite itself would not survive the atomic rename)."""
    lock = path.parent / f".{path.name}.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _append_text(text: str, entry: dict) -> str | None:
    """`text` with `entry` appended to its block-style `scenarios:` list, comments kept; None when
    the layout is not that simple (the caller then re-dumps the document)."""
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if re.match(r"scenarios\s*:\s*(#.*)?$", ln)), None)
    if start is None:
        return None
    indent = None
    for ln in lines[start + 1:]:
        if not ln.strip() or ln.lstrip().startswith("#"):
            continue
        m = re.match(r"( *)- ", ln)
        if m is None:
            return None
        indent = m.group(1)
        break
    if indent is None:
        return None
    block = yaml.safe_dump([entry], sort_keys=False, default_flow_style=None, allow_unicode=True, width=100)
    block = "".join(indent + ln + "\n" for ln in block.splitlines())
    return text.rstrip("\n") + "\n" + block


def _write_entries(path: Path, text: str, entries: list[dict], want: dict) -> Suite:
    """Write `text` with `entries` appended to its scenarios, comments kept, when that reads back
    as the document `want`; else `want` re-dumped without comments. The result is validated
    before it replaces the file; returns the suite it holds."""
    new_text: str | None = text
    for entry in entries:
        new_text = _append_text(new_text, entry) if new_text is not None else None
    try:
        ok = new_text is not None and parse_suite_text(new_text, str(path)) == want
    except SuiteError:
        ok = False
    if not ok:
        new_text = yaml.safe_dump(want, sort_keys=False, default_flow_style=None, allow_unicode=True, width=100)
    data = new_text.encode("utf-8")
    suite = parse_suite(parse_suite_text(new_text, str(path)), source=str(path), path=str(path),
                        sha256=hashlib.sha256(data).hexdigest())
    if not path.exists() or path.read_bytes() != data:
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.close(fd)
        atomic_write_bytes(path, data)     # keeps the suite file's permissions
    return suite


def working_suite(base_path: str | os.PathLike, dest_path: str | os.PathLike) -> Path:
    """The suite file the gate reads and promotions append to: `base_path` (a shipped or reviewed
    suite, never written to) copied to `dest_path` (under the registry), with the archive scenarios
    that earlier promotions appended to `dest_path` carried over. Returns `dest_path`.

    Why a copy: the archive grows with every promotion, and a shipped file (installed package data,
    or a tracked file in a checkout) must not change under the user. Run at every start, so edits
    of the base suite reach the gate; an archived regime the base already holds (same DriftSpec) or
    whose name it now uses is not duplicated. Atomic and locked like `append_archive`.
    """
    base, dest = Path(base_path), Path(dest_path)
    if base.resolve() == dest.resolve():
        raise SuiteError(f"{dest}: the working suite must not be the base suite itself")
    base_suite = load_suite(base)
    text = base.read_bytes().decode("utf-8")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _locked(dest):
        carried: list[dict] = []
        if dest.exists():
            old = parse_suite_text(dest.read_text(encoding="utf-8"), str(dest))
            names = {s.name for s in base_suite.scenarios}
            hashes = {s.drift.hash for s in base_suite.scenarios if s.tag == "archive"}
            for raw in (old or {}).get("scenarios") or []:
                if not (isinstance(raw, Mapping) and raw.get("tag") == "archive") or raw.get("name") in names:
                    continue
                try:
                    h = DriftSpec.parse(raw.get("drift") or {}).hash
                except ValueError:
                    continue
                if h not in hashes:
                    hashes.add(h)
                    names.add(raw.get("name"))
                    carried.append(dict(raw))
        want = parse_suite_text(text, str(base))
        want = {**want, "scenarios": [*want["scenarios"], *carried]}
        _write_entries(dest, text, carried, want)
    return dest


def append_archive(suite_path: str | os.PathLike, drift: DriftSpec | Mapping | str, *,
                   name: str | None = None, seeds: list[int] | int | None = None,
                   horizon: int | None = None, tolerance: float | None = None,
                   genome_id: str | None = None, note: str = "") -> SuiteScenario:
    """Append an `archive` scenario for `drift` to the suite file, atomically; returns it.

    Called after each promotion with the regime the new champion was promoted for, so every later
    candidate must stay non-inferior there. Seeds and horizon default to the first target's.
    Idempotent: if an archive scenario with the same DriftSpec (by hash) exists, nothing is written
    and that scenario is returned. The new file is validated before it replaces the old one (temp
    file + fsync + rename under a lock), so a reader or a crash sees the old suite or the new one,
    and an invalid drift leaves the file untouched. Comments are kept when `scenarios:` is a
    block list at the end of the file; otherwise the document is re-dumped without them.
    """
    path = Path(suite_path)
    spec = DriftSpec.parse(drift)
    with _locked(path):
        suite = load_suite(path)
        for s in suite.scenarios:
            if s.tag == "archive" and s.drift.hash == spec.hash:
                return s
        check_drift(suite.plant, spec, f"{path}: archive drift")
        target = suite.targets[0]
        name = name or f"archive-{spec.hash[:10]}"
        if any(s.name == name for s in suite.scenarios):
            raise SuiteError(f"{path}: a scenario named {name!r} already exists")
        entry: dict[str, Any] = {"name": name, "tag": "archive", "drift": spec.as_dict(),
                                 "seeds": list(target.seeds) if seeds is None else seeds,
                                 "horizon": target.horizon if horizon is None else horizon}
        if target.metric != "mean_reward":
            entry["metric"] = target.metric
        if tolerance is not None:
            entry["tolerance"] = tolerance
        if note:
            entry["note"] = note
        entry["source"] = {"drift_hash": spec.hash, "genome_id": genome_id,
                           "added": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        text = path.read_text(encoding="utf-8")
        old_doc = parse_suite_text(text, str(path))
        want = {**old_doc, "scenarios": [*old_doc["scenarios"], entry]}
        return _write_entries(path, text, [entry], want).scenario(name)
