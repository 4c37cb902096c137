"""What a champion registry holds (`safety.registry`): the on-disk layout and SQL schema, the legal
status transitions, the rows read back (`GenomeRecord`, `GateReportRecord`, `RegistryCheck`), the
robot a registry's policies drive, and its errors."""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from safety.audit import VerifyResult, canonical_json
from sim.genome import Genome
from sim.policy import PolicySpec

DB_NAME = "registry.sqlite"
GENOME_DIR = "genomes"
FORMAT = "driftgate-registry"
SCHEMA_VERSION = 1

STATUSES = ("candidate", "shadow", "canary", "champion", "stable", "rejected", "retired")
TERMINAL = frozenset({"rejected", "retired"})

# Every legal edge, and the operation that may take it. Anything not listed is refused.
TRANSITIONS: dict[tuple[str, str], str] = {
    ("candidate", "shadow"): "set_status",
    ("shadow", "canary"): "set_status",
    ("candidate", "rejected"): "set_status",
    ("shadow", "rejected"): "set_status",
    ("canary", "rejected"): "set_status",
    ("canary", "champion"): "promote",
    ("candidate", "champion"): "promote(force)",
    ("shadow", "champion"): "promote(force)",
    ("champion", "retired"): "replaced",
    ("champion", "stable"): "replaced",
    ("champion", "rejected"): "rollback",
    ("stable", "champion"): "rollback",
}

ID_RE = re.compile(r"[0-9a-f]{32}")

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS genomes (
    id           TEXT PRIMARY KEY,
    parent_id    TEXT REFERENCES genomes(id),
    status       TEXT NOT NULL CHECK (status IN ('candidate','shadow','canary','champion',
                                                 'stable','rejected','retired')),
    kind         TEXT NOT NULL,
    generation   INTEGER NOT NULL,
    drift_hash   TEXT,
    created      REAL NOT NULL,
    added        REAL NOT NULL,
    fitness      TEXT NOT NULL,
    file_sha256  TEXT NOT NULL,
    stable_since REAL,
    CHECK (status != 'stable' OR stable_since IS NOT NULL)
);
CREATE UNIQUE INDEX IF NOT EXISTS one_champion ON genomes(status) WHERE status = 'champion';
CREATE INDEX IF NOT EXISTS genomes_parent ON genomes(parent_id);
CREATE TABLE IF NOT EXISTS gate_reports (
    id        INTEGER PRIMARY KEY,
    genome_id TEXT NOT NULL REFERENCES genomes(id),
    time      REAL NOT NULL,
    verdict   TEXT,
    report    TEXT NOT NULL,
    sha256    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS gate_reports_genome ON gate_reports(genome_id);
"""

GENOME_COLS = ("id, parent_id, status, kind, generation, drift_hash, created, added, fitness, "
                "file_sha256, stable_since")
GENOME_FIELDS = tuple(c.strip() for c in GENOME_COLS.split(","))
TABLES = {"meta", "genomes", "gate_reports", "audit"}


class RegistryError(RuntimeError):
    """Bad input or an illegal operation; the registry was left unchanged."""


class RegistryStateError(RegistryError):
    """The registry itself is damaged, locked or unreadable (a runtime failure, not bad input)."""


class GenomeIntegrityError(RegistryStateError):
    """A genome file is missing or its bytes do not match the index: it is never loaded."""


@dataclass(frozen=True)
class GenomeRecord:
    """One row of the index (what the registry knows about a genome without reading its file)."""

    id: str
    parent_id: str | None
    status: str
    kind: str
    generation: int
    drift_hash: str | None
    created: float
    added: float
    fitness: dict
    file_sha256: str
    stable_since: float | None

    @property
    def stable(self) -> bool:
        """Confirmed by a clean watch period (a rollback target once it is no longer champion)."""
        return self.stable_since is not None

    def to_dict(self) -> dict:
        return {**asdict(self), "stable": self.stable}


@dataclass(frozen=True)
class GateReportRecord:
    """A gate report as the registry stores it for a genome (the report itself: `safety.gate.GateReport`).
    `sha256` is of the canonical JSON, also in the audit log."""

    id: int
    genome_id: str
    time: float
    verdict: str | None
    report: dict
    sha256: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RegistryCheck:
    """Result of `Registry.verify()`: the audit chain, every genome file, and log-vs-index replay.

    `orphan_files` (files with no index row, e.g. left by a crash between writing the file and
    committing its row, or a temporary file of an interrupted write) are harmless and not a failure.
    """

    ok: bool
    audit: VerifyResult
    problems: tuple[str, ...]
    genomes_checked: int
    orphan_files: tuple[str, ...] = ()

    @property
    def first_problem(self) -> str | None:
        return self.problems[0] if self.problems else None

    def to_dict(self) -> dict:
        return {"ok": self.ok, "audit": self.audit.to_dict(), "problems": list(self.problems),
                "genomes_checked": self.genomes_checked, "orphan_files": list(self.orphan_files)}


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def json_text(obj: Any, what: str) -> str:
    try:
        return canonical_json(obj)
    except (TypeError, ValueError) as e:
        raise RegistryError(f"{what} must be plain JSON (no NaN/inf, no objects): {e}") from e


def fsync_dir(path: Path) -> None:
    """Make a rename durable (the file's own fsync does not cover its directory entry)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_transition(from_status: str, to_status: str, via: str) -> None:
    """Raise RegistryError unless `via` may move a genome from `from_status` to `to_status`."""
    allowed = TRANSITIONS.get((from_status, to_status))
    if allowed is None or (allowed != via and not (via == "promote(force)" and allowed == "promote")):
        legal = sorted(f"{a}->{b} ({v})" for (a, b), v in TRANSITIONS.items() if a == from_status)
        raise RegistryError(f"illegal transition {from_status} -> {to_status} via {via}; "
                            f"legal from {from_status}: {', '.join(legal) or 'none (terminal)'}")


ROBOT_KEYS = ("obs_dim", "act_dim", "discrete", "act_low", "act_high")


def robot_of(spec: PolicySpec, plant: str | None = None) -> dict:
    """The robot a policy drives: what a genome must match to be registered here (its hidden
    layers may differ; its interface to the robot may not)."""
    out = {"obs_dim": int(spec.obs_dim), "act_dim": int(spec.act_dim), "discrete": bool(spec.discrete),
           "act_low": float(spec.act_low), "act_high": float(spec.act_high)}
    if plant is not None:
        out["plant"] = str(plant)
    return out


def robot_for_plant(plant: str) -> dict:
    """The robot identity of one of the simulated plants (for `registry init --plant`)."""
    from sim.plant_task import plant_policy_spec
    return robot_of(plant_policy_spec(plant, (1,)), plant)


def robot_mismatch(robot: dict, genome: Genome) -> str | None:
    have = robot_of(genome.policy_spec)
    diff = [f"{k} {have[k]!r} (registry: {robot[k]!r})" for k in ROBOT_KEYS if k in robot and have[k] != robot[k]]
    if not diff:
        return None
    name = f" ({robot['plant']})" if robot.get("plant") else ""
    return (f"genome {genome.id} drives another robot than this registry's{name}: " + ", ".join(diff))
