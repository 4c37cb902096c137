"""Champion registry: which genome drives the robot, which ones we may fall back to, and why.

Layout of a registry directory::

    root/registry.sqlite             SQLite in WAL mode: genomes, gate_reports, audit (hash chain)
    root/genomes/<id>.safetensors    content-addressed genome files, written atomically

Why this shape:

* **One transaction per decision.** Every state change runs in one `BEGIN IMMEDIATE` transaction
  that also appends its audit row, so a crash (SIGKILL, power loss) leaves either the old state or
  the new one, never a mix, and the log always explains the index.
* **Exactly one champion.** Promotion and rollback demote the old champion and crown the new one in
  the same transaction; a partial unique index makes a second champion impossible in the database
  itself, not just in this code.
* **Files are never trusted.** The index keeps the sha256 of each file's bytes; every load checks it
  and the content id (`load_genome(..., expected_id=...)`) before any weights are returned.
  Promotion and rollback verify the target file before switching, so a corrupt file can never
  become the champion and the previous champion stays in force.
* **One robot.** The registry records the robot its policies drive (observation and action sizes,
  action bounds; optionally the plant's name) at `init(robot=...)` or with its first champion;
  `add` and `promote` refuse a genome for any other robot, before anything is written.
* **Refusals leave no trace.** Every check runs before the first write; a genome file written
  for an `add` whose transaction then fails is removed again.
* **Bounded reads.** Genome files are read as regular files only, size-capped before reading,
  never through a symlink (`sim.safeio`); the genome directory must not lead out of the registry.
* **`verify` trusts nothing it can check:** SQLite's own ``PRAGMA integrity_check`` (an index
  that disagrees with its table), the schema text against what this code creates, the champion
  invariant counted on the table itself (``NOT INDEXED``), the audit chain, every file.
* **WAL** lets the live side read the champion pointer while the gate writes, without blocking.
* The live control tick never touches this module's disk paths: `FallbackCache.refresh()` runs
  outside the tick and the tick only reads the in-memory snapshot.

Statuses and who may move a genome between them (`TRANSITIONS`):

    candidate -> shadow -> canary -> champion          (gate path; promote() needs a PASS report)
    candidate | shadow | canary -> champion            (promote(force=True): bootstrapping, logged)
    candidate | shadow | canary -> rejected            (set_status / reject)
    champion -> retired     replaced while never confirmed stable
    champion -> stable      replaced (or rolled back from) after mark_stable() confirmed it
    champion -> rejected    rolled back from before it was confirmed (live degradation)
    stable   -> champion    rollback() to it; it keeps its stable mark
    rejected, retired: terminal.   stable: only ever returns to champion via rollback.

`mark_stable()` does not change the status: it stamps `stable_since` on the current champion after a
clean watch period, which decides whether it becomes `stable` (a rollback target) or `retired`
when it is replaced. The champion is the single genome whose status is `champion`.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from safety import audit
from safety.audit import AuditRow, VerifyResult, canonical_json
from sim.atomicio import atomic_write_bytes
from sim.genome import (Genome, GenomeFileError, genome_file_bytes, genome_from_bytes, load_genome,
                        read_genome_bytes)
from sim.policy import PolicySpec
from sim.safeio import inside
from sim.srghn_decode import decode_policy

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

_ID_RE = re.compile(r"[0-9a-f]{32}")
_UNSET: Any = object()

_SCHEMA = """
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

_GENOME_COLS = ("id, parent_id, status, kind, generation, drift_hash, created, added, fitness, "
                "file_sha256, stable_since")
_GENOME_FIELDS = tuple(c.strip() for c in _GENOME_COLS.split(","))
_TABLES = {"meta", "genomes", "gate_reports", "audit"}


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
class GateReport:
    """A gate report attached to a genome. `sha256` is of the canonical JSON, also in the audit log."""

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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json_text(obj: Any, what: str) -> str:
    try:
        return canonical_json(obj)
    except (TypeError, ValueError) as e:
        raise RegistryError(f"{what} must be plain JSON (no NaN/inf, no objects): {e}") from e


def _fsync_dir(path: Path) -> None:
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


def _robot_mismatch(robot: dict, genome: Genome) -> str | None:
    have = robot_of(genome.policy_spec)
    diff = [f"{k} {have[k]!r} (registry: {robot[k]!r})" for k in ROBOT_KEYS if k in robot and have[k] != robot[k]]
    if not diff:
        return None
    name = f" ({robot['plant']})" if robot.get("plant") else ""
    return (f"genome {genome.id} drives another robot than this registry's{name}: " + ", ".join(diff))


class Registry:
    """The champion registry in directory `root` (see module docstring).

    `Registry(root)` opens an existing registry and refuses a directory that is not one;
    `Registry(root, create=True)` (or `Registry.init(root)`) creates it if needed. `actor` is
    recorded in every audit row written through this object. Safe to share between threads of one
    process (calls on one instance are serialised by a lock), so a reader that must never wait on a
    writer in the same process (the live node) should hold its own instance; other processes open
    their own. With WAL, readers on separate connections do not wait for writers.
    """

    def __init__(self, root: str | os.PathLike, *, create: bool = False, actor: str = "driftgate",
                 robot: dict | None = None):
        self.root = Path(root)
        self.db_path = self.root / DB_NAME
        self.genome_dir = self.root / GENOME_DIR
        self.actor = actor
        self._lock = threading.RLock()
        if not self.db_path.is_file():
            if not create:
                raise RegistryError(f"{self.root} is not a driftgate registry (no {DB_NAME}); "
                                    f"create one with `driftgate registry init --registry {self.root}`")
            if self.root.exists() and not self.root.is_dir():
                raise RegistryError(f"{self.root} exists and is not a directory")
            self.root.mkdir(parents=True, exist_ok=True)
        if create:
            self.genome_dir.mkdir(parents=True, exist_ok=True)
        uri = self.db_path.resolve().as_uri() + ("?mode=rwc" if create else "?mode=rw")
        try:
            self._conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0,
                                         check_same_thread=False)
        except sqlite3.Error as e:
            raise RegistryStateError(f"cannot open registry database {self.db_path}: {e}") from e
        try:
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise RegistryError(f"{self.db_path}: could not switch to WAL mode (got {mode})")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            if create:
                self._create_schema()
            self._check_format()
            if robot is not None:
                self._record_robot(robot)
        except (sqlite3.Error, UnicodeDecodeError) as e:   # (a damaged schema: SQLite's message holds its bytes)
            self._conn.close()
            raise RegistryStateError(f"{self.db_path} is not a usable driftgate registry: {e}") from e
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def init(cls, root: str | os.PathLike, *, actor: str = "driftgate", robot: dict | None = None) -> "Registry":
        """Create (or open, if it already exists) the registry in `root`. `robot` (`robot_of`,
        `robot_for_plant`): the robot its policies drive; without it, the first champion's."""
        return cls(root, create=True, actor=actor, robot=robot)

    # ------------------------------------------------------------------ the robot

    def robot(self) -> dict | None:
        """The robot this registry's policies drive (None until init(robot=) or a first champion)."""
        with self._read() as c:
            return self._robot(c)

    def _robot(self, c: sqlite3.Connection) -> dict | None:
        r = c.execute("SELECT value FROM meta WHERE key = 'robot'").fetchone()
        if r is None:
            return None
        try:
            robot = json.loads(r[0])
            if not isinstance(robot, dict) or not set(ROBOT_KEYS) <= set(robot):
                raise ValueError("missing keys")
        except ValueError as e:
            raise RegistryStateError(f"{self.db_path}: the recorded robot is unreadable ({e}); run `registry verify`")
        return robot

    def _record_robot(self, robot: dict) -> None:
        if not isinstance(robot, dict) or not set(ROBOT_KEYS) <= set(robot):
            raise RegistryError(f"robot must name {', '.join(ROBOT_KEYS)}, got {robot!r}")
        text = _json_text(robot, "robot")
        with self._write() as c:
            have = self._robot(c)
            if have is not None:
                if {k: have.get(k) for k in robot} != robot and \
                        {k: have[k] for k in ROBOT_KEYS} != {k: robot[k] for k in ROBOT_KEYS}:
                    raise RegistryError(f"this registry's robot is {have}, not {robot}")
                return
            c.execute("INSERT INTO meta VALUES ('robot', ?)", (text,))
            audit.append(c, actor=self.actor, action="robot", evidence={"robot": robot})

    def _check_robot(self, c: sqlite3.Connection, genome: Genome) -> dict | None:
        """The recorded robot (or None); RegistryError if `genome` is for another robot."""
        robot = self._robot(c)
        if robot is None:           # an older registry: its champion defines the robot
            cur = self._champion(c)
            if cur is not None:
                robot = robot_of(self._load_verified(cur).policy_spec)
        if robot is not None:
            why = _robot_mismatch(robot, genome)
            if why:
                raise RegistryError(why)
        return robot

    # ------------------------------------------------------------------ plumbing

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One BEGIN IMMEDIATE transaction: all or nothing, one writer at a time."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as e:
                raise RegistryStateError(f"registry is locked or unwritable: {e}") from e
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException as e:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if isinstance(e, sqlite3.Error):
                    raise RegistryStateError(f"registry database error, nothing changed: {e}") from e
                if isinstance(e, UnicodeDecodeError):
                    raise RegistryStateError(f"registry database holds text that is not UTF-8 (damaged), "
                                             f"nothing changed: {e}") from e
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read snapshot (deferred transaction) so that multi-query reads are consistent."""
        with self._lock:
            try:
                self._conn.execute("BEGIN")
                yield self._conn
            except sqlite3.Error as e:
                raise RegistryStateError(f"registry database error: {e}") from e
            except UnicodeDecodeError as e:      # a damaged page: text columns with bytes that are not UTF-8
                raise RegistryStateError(f"registry database holds text that is not UTF-8 (damaged): {e}") from e
            finally:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")

    def _create_schema(self) -> None:
        with self._write() as c:
            tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and "meta" not in tables:
                raise RegistryError(f"{self.db_path} is an SQLite database of something else "
                                    f"(tables: {', '.join(sorted(tables - _TABLES))}); not touching it")
            for stmt in audit.split_statements(_SCHEMA):
                c.execute(stmt)
            audit.ensure_schema(c)
            have = dict(c.execute("SELECT key, value FROM meta").fetchall())
            if not have:
                c.execute("INSERT INTO meta VALUES ('format', ?), ('schema_version', ?)",
                          (FORMAT, str(SCHEMA_VERSION)))
                audit.append(c, actor=self.actor, action="init",
                             evidence={"format": FORMAT, "schema_version": SCHEMA_VERSION})

    def _check_format(self) -> None:
        try:
            meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        except (sqlite3.Error, UnicodeDecodeError) as e:
            raise RegistryError(f"{self.db_path} is not a driftgate registry: {e}") from e
        if meta.get("format") != FORMAT:
            raise RegistryError(f"{self.db_path} is not a driftgate registry (format={meta.get('format')!r})")
        if meta.get("schema_version") != str(SCHEMA_VERSION):
            raise RegistryError(f"{self.db_path}: unsupported registry schema "
                                f"{meta.get('schema_version')!r} (this code reads {SCHEMA_VERSION})")

    def _path(self, genome_id: str) -> Path:
        return self.genome_dir / f"{genome_id}.safetensors"

    @staticmethod
    def _check_id(genome_id: Any) -> str:
        if not isinstance(genome_id, str) or not _ID_RE.fullmatch(genome_id):
            raise RegistryError(f"not a genome id (32 lowercase hex characters): {genome_id!r}")
        return genome_id

    @staticmethod
    def _record(row: tuple) -> GenomeRecord:
        d = dict(zip(_GENOME_FIELDS, row))
        try:
            d["fitness"] = json.loads(d["fitness"])
        except (TypeError, ValueError) as e:     # only an edited or damaged database gets here
            raise RegistryStateError(f"genome {d.get('id')!r}: unreadable index row ({e}); run `registry verify`")
        return GenomeRecord(**d)

    def _get(self, c: sqlite3.Connection, genome_id: str) -> GenomeRecord | None:
        r = c.execute(f"SELECT {_GENOME_COLS} FROM genomes WHERE id = ?", (genome_id,)).fetchone()
        return None if r is None else self._record(r)

    def _require(self, c: sqlite3.Connection, genome_id: str) -> GenomeRecord:
        rec = self._get(c, self._check_id(genome_id))
        if rec is None:
            raise RegistryError(f"unknown genome {genome_id}")
        return rec

    def _champion(self, c: sqlite3.Connection) -> GenomeRecord | None:
        """The champion read from the table itself, not through the one_champion index: an index
        entry edited on disk must not be able to crown another genome (a handful of rows: cheap)."""
        rows = c.execute(f"SELECT {_GENOME_COLS} FROM genomes NOT INDEXED WHERE status = 'champion'").fetchall()
        if len(rows) > 1:
            raise RegistryStateError(f"{self.db_path}: {len(rows)} genomes have status champion; the database was "
                                "edited outside driftgate (run `registry verify`)")
        return None if not rows else self._record(rows[0])

    def _ancestors(self, c: sqlite3.Connection, genome_id: str) -> list[GenomeRecord]:
        """`genome_id` then its parent, grandparent, ... (depth-capped against a doctored cycle)."""
        cols = ", ".join(f"g.{x}" for x in _GENOME_FIELDS)
        rows = c.execute(f"""
            WITH RECURSIVE anc(gid, depth) AS (
                SELECT ?, 0
                UNION ALL
                SELECT g.parent_id, anc.depth + 1 FROM genomes g JOIN anc ON g.id = anc.gid
                WHERE g.parent_id IS NOT NULL AND anc.depth < 100000
            )
            SELECT {cols} FROM anc JOIN genomes g ON g.id = anc.gid ORDER BY anc.depth""",
                         (genome_id,)).fetchall()
        return [self._record(r) for r in rows]

    def _load_verified(self, rec: GenomeRecord) -> Genome:
        """Read the file, check its sha256 against the index and its content id; else refuse."""
        path = self._path(rec.id)
        if not inside(self.genome_dir, self.root):
            raise GenomeIntegrityError(f"genome {rec.id}: {self.genome_dir} leads out of the registry "
                                       "(a symlink); refusing to read through it")
        try:
            data = read_genome_bytes(path, follow_symlinks=False)
        except GenomeFileError as e:
            raise GenomeIntegrityError(f"genome {rec.id}: file is missing or unreadable: {e}") from e
        digest = _sha256(data)
        if digest != rec.file_sha256:
            raise GenomeIntegrityError(
                f"genome {rec.id}: file {path} does not match the registry (sha256 {digest[:16]}..., "
                f"expected {rec.file_sha256[:16]}...): corrupt or replaced, refusing to load it")
        try:
            return genome_from_bytes(data, path, expected_id=rec.id)
        except GenomeFileError as e:
            raise GenomeIntegrityError(f"genome {rec.id}: {e}") from e

    def _displace_champion(self, c: sqlite3.Connection, unconfirmed_to: str) -> dict | None:
        """Demote the current champion inside the caller's transaction; returns what happened."""
        old = self._champion(c)
        if old is None:
            return None
        to = "stable" if old.stable else unconfirmed_to
        check_transition("champion", to, "replaced" if to != "rejected" else "rollback")
        c.execute("UPDATE genomes SET status = ? WHERE id = ?", (to, old.id))
        return {"id": old.id, "from": "champion", "to": to}

    # ------------------------------------------------------------------ writes

    def add(self, genome: Genome | str | os.PathLike, *, parent_id: str | None = _UNSET,
            reason: str = "", evidence: dict | None = None) -> str:
        """Register a genome (a `Genome` or a path to its safetensors file) as a candidate.

        The file is verified, then stored content-addressed; returns the id. Adding content that is
        already registered changes nothing and returns the same id. `parent_id` (default: the
        genome's own metadata) must already be registered, so lineage never dangles.
        """
        source = None
        if not isinstance(genome, Genome):
            source = str(genome)
            try:
                genome = load_genome(genome)
            except GenomeFileError as e:
                raise RegistryError(f"cannot add {source}: {e}") from e
        explicit_parent = parent_id is not _UNSET
        if explicit_parent:
            if parent_id is not None:
                self._check_id(parent_id)
            genome = genome.with_lineage(parent_id=parent_id)
        gid = genome.id
        if genome.parent_id is not None and not (isinstance(genome.parent_id, str)
                                                 and _ID_RE.fullmatch(genome.parent_id)):
            raise RegistryError(f"genome {gid}: parent {genome.parent_id!r} is not a genome id "
                                "(32 lowercase hex characters)")
        if genome.parent_id == gid:
            raise RegistryError(f"genome {gid} cannot be its own parent")
        fitness_text = _json_text(genome.fitness, "genome fitness")
        evidence_obj = {"parent_id": genome.parent_id, "drift_hash": genome.drift_hash, "kind": genome.kind,
                        "source": source, "reason": reason, "evidence": evidence or {}}
        _json_text(evidence_obj, "evidence")
        try:
            genome_bytes = genome_file_bytes(genome)
            genome_from_bytes(genome_bytes, expected_id=gid)       # what will be written reads back
        except (GenomeFileError, ValueError, TypeError) as e:
            raise RegistryError(f"cannot add genome {gid}: {e}") from e
        if not inside(self.genome_dir, self.root):
            raise RegistryError(f"{self.genome_dir} leads out of the registry (a symlink); not writing there")
        path = self._path(gid)
        written = False
        try:
            with self._write() as c:
                existing = self._get(c, gid)
                if existing is not None:
                    if explicit_parent and existing.parent_id != genome.parent_id:
                        raise RegistryError(f"genome {gid} is already registered with parent "
                                            f"{existing.parent_id}, not {genome.parent_id}")
                    return gid
                if genome.parent_id is not None and self._get(c, genome.parent_id) is None:
                    where = "given" if explicit_parent else "named in the genome's metadata"
                    raise RegistryError(f"parent {genome.parent_id} ({where}) is not in the registry: "
                                        "add it first, or pass another parent (or none)")
                self._check_robot(c, genome)
                # every check passed: now the file, then the row and the audit row (one transaction)
                existed = os.path.lexists(path)
                if existed and not path.is_symlink() and path.is_file():
                    os.unlink(path)         # an orphan of an interrupted add: replaced by these bytes
                elif existed:
                    raise RegistryError(f"{path} exists and is not a regular file; not overwriting it")
                atomic_write_bytes(path, genome_bytes)
                written = True
                _fsync_dir(path.parent)
                try:
                    data = read_genome_bytes(path, follow_symlinks=False)
                    genome_from_bytes(data, path, expected_id=gid)
                except GenomeFileError as e:
                    raise GenomeIntegrityError(f"genome {gid} did not read back intact: {e}") from e
                digest = _sha256(data)
                now = time.time()
                c.execute(f"INSERT INTO genomes ({_GENOME_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                          (gid, genome.parent_id, "candidate", genome.kind, int(genome.generation),
                           genome.drift_hash, float(genome.created), now, fitness_text, digest, None))
                audit.append(c, actor=self.actor, action="add", genome_id=gid, to_status="candidate",
                             now=now, evidence={**evidence_obj, "file_sha256": digest})
        except BaseException:
            if written:                     # the transaction did not commit: the file goes too
                try:
                    os.unlink(path)
                except OSError:
                    pass
            raise
        return gid

    def set_status(self, genome_id: str, status: str, *, reason: str = "",
                   evidence: dict | None = None) -> None:
        """Move along the gate path (candidate->shadow->canary) or reject a non-champion.

        Champion changes go through `promote` / `rollback`, never here.
        """
        if status not in STATUSES:
            raise RegistryError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
        with self._write() as c:
            rec = self._require(c, genome_id)
            check_transition(rec.status, status, "set_status")
            c.execute("UPDATE genomes SET status = ? WHERE id = ?", (status, rec.id))
            audit.append(c, actor=self.actor, action="set_status", genome_id=rec.id,
                         from_status=rec.status, to_status=status,
                         evidence={"reason": reason, "evidence": evidence or {}})

    def reject(self, genome_id: str, *, reason: str, evidence: dict | None = None) -> None:
        self.set_status(genome_id, "rejected", reason=reason, evidence=evidence)

    def attach_gate_report(self, genome_id: str, report: dict) -> int:
        """Store a gate report (JSON object) for a genome; its hash goes into the audit log."""
        if not isinstance(report, dict):
            raise RegistryError(f"a gate report must be a JSON object, got {type(report).__name__}")
        text = _json_text(report, "gate report")
        verdict = report.get("verdict")
        verdict = None if verdict is None else str(verdict)
        digest = _sha256(text.encode())
        with self._write() as c:
            rec = self._require(c, genome_id)
            now = time.time()
            cur = c.execute("INSERT INTO gate_reports (genome_id, time, verdict, report, sha256) "
                            "VALUES (?,?,?,?,?)", (rec.id, now, verdict, text, digest))
            report_id = int(cur.lastrowid)
            audit.append(c, actor=self.actor, action="gate_report", genome_id=rec.id,
                         from_status=rec.status, to_status=rec.status, now=now,
                         evidence={"report_id": report_id, "sha256": digest, "verdict": verdict,
                                   "reasons": report.get("reasons")})
        return report_id

    def promote(self, genome_id: str, *, force: bool = False, reason: str = "",
                evidence: dict | None = None) -> None:
        """Make `genome_id` the champion; the old champion becomes `stable` (if confirmed) or `retired`.

        Without `force`, only a `canary` whose latest gate report says PASS may be promoted ("no
        data means hold"). `force=True` skips the gate (bootstrapping, tests) and the audit row says
        so. The new champion's file is verified first; if it is corrupt nothing changes.
        """
        with self._write() as c:
            rec = self._require(c, genome_id)
            if rec.status == "champion":
                raise RegistryError(f"genome {rec.id} is already the champion")
            check_transition(rec.status, "champion", "promote(force)" if force else "promote")
            gate = None
            if not force:
                r = c.execute("SELECT id, verdict, sha256 FROM gate_reports WHERE genome_id = ? "
                              "ORDER BY id DESC LIMIT 1", (rec.id,)).fetchone()
                if r is None or r[1] != "PASS":
                    got = "no gate report" if r is None else f"latest gate verdict {r[1]!r}"
                    raise RegistryError(f"cannot promote {rec.id} without a PASS gate report ({got}); "
                                        "use force=True only for bootstrapping")
                gate = {"report_id": r[0], "verdict": r[1], "sha256": r[2]}
            genome = self._load_verified(rec)
            robot = self._check_robot(c, genome)
            if robot is None:               # the first champion defines the registry's robot
                first = robot_of(genome.policy_spec)
                c.execute("INSERT OR IGNORE INTO meta VALUES ('robot', ?)", (_json_text(first, "robot"),))
                audit.append(c, actor=self.actor, action="robot", genome_id=rec.id,
                             from_status=rec.status, to_status=rec.status,
                             evidence={"robot": first, "from": "first champion"})
            replaced = self._displace_champion(c, unconfirmed_to="retired")
            c.execute("UPDATE genomes SET status = 'champion' WHERE id = ?", (rec.id,))
            audit.append(c, actor=self.actor, action="promote", genome_id=rec.id,
                         from_status=rec.status, to_status="champion",
                         evidence={"forced": bool(force),
                                   "gate": gate if not force else "none: forced promotion without a gate",
                                   "replaced": replaced, "reason": reason, "evidence": evidence or {}})

    def mark_stable(self, genome_id: str, *, reason: str = "", evidence: dict | None = None) -> None:
        """Confirm the current champion after a clean watch period (makes it a rollback target)."""
        with self._write() as c:
            rec = self._require(c, genome_id)
            if rec.status != "champion":
                raise RegistryError(f"only the current champion can be marked stable; "
                                    f"{rec.id} is {rec.status}")
            if rec.stable:
                raise RegistryError(f"genome {rec.id} is already marked stable")
            now = time.time()
            c.execute("UPDATE genomes SET stable_since = ? WHERE id = ?", (now, rec.id))
            audit.append(c, actor=self.actor, action="mark_stable", genome_id=rec.id,
                         from_status="champion", to_status="champion", now=now,
                         evidence={"reason": reason, "evidence": evidence or {}})

    def rollback(self, to: str | None = None, *, reason: str = "", evidence: dict | None = None) -> str:
        """Hand authority back to a stable genome in one transaction; returns its id.

        Default target: the nearest stable ancestor of the current champion whose file verifies
        (corrupt ones are skipped and named in the audit row). `to` names any stable genome. The
        replaced champion becomes `rejected`, or stays `stable` if it had been confirmed.
        """
        with self._write() as c:
            cur = self._champion(c)
            if cur is None:
                raise RegistryError("there is no champion to roll back from")
            skipped: list[dict] = []
            if to is None:
                target = None
                for anc in self._ancestors(c, cur.id)[1:]:
                    if anc.status != "stable":
                        continue
                    try:
                        self._load_verified(anc)
                    except GenomeIntegrityError as e:
                        skipped.append({"id": anc.id, "error": str(e)})
                        continue
                    target = anc
                    break
                if target is None:
                    extra = f" ({len(skipped)} corrupt ones skipped)" if skipped else ""
                    raise RegistryError(f"champion {cur.id} has no stable ancestor to roll back to{extra}")
            else:
                target = self._require(c, to)
                if target.status != "stable":
                    raise RegistryError(f"can only roll back to a stable genome; {target.id} is "
                                        f"{target.status}")
                self._load_verified(target)
            check_transition("stable", "champion", "rollback")
            replaced = self._displace_champion(c, unconfirmed_to="rejected")
            c.execute("UPDATE genomes SET status = 'champion' WHERE id = ?", (target.id,))
            audit.append(c, actor=self.actor, action="rollback", genome_id=target.id,
                         from_status="stable", to_status="champion",
                         evidence={"named": to is not None, "replaced": replaced,
                                   "skipped_corrupt": skipped, "reason": reason,
                                   "evidence": evidence or {}})
            return target.id

    # ------------------------------------------------------------------ reads

    def show(self, genome_id: str) -> GenomeRecord:
        with self._read() as c:
            return self._require(c, genome_id)

    def list(self, status: str | None = None) -> list[GenomeRecord]:
        """All genomes in the order they were added (optionally one status only)."""
        if status is not None and status not in STATUSES:
            raise RegistryError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
        with self._read() as c:
            if status is None:
                rows = c.execute(f"SELECT {_GENOME_COLS} FROM genomes ORDER BY added, id").fetchall()
            else:
                rows = c.execute(f"SELECT {_GENOME_COLS} FROM genomes WHERE status = ? "
                                 "ORDER BY added, id", (status,)).fetchall()
        return [self._record(r) for r in rows]

    def resolve(self, ref: str) -> str:
        """Full id for an id or a unique prefix of at least 6 hex characters (for humans/CLI)."""
        if not isinstance(ref, str) or not re.fullmatch(r"[0-9a-f]{6,32}", ref):
            raise RegistryError(f"not a genome id or id prefix (6-32 lowercase hex characters): {ref!r}")
        with self._read() as c:
            ids = [r[0] for r in c.execute("SELECT id FROM genomes WHERE substr(id, 1, ?) = ? LIMIT 2",
                                           (len(ref), ref)).fetchall()]
        if not ids:
            raise RegistryError(f"unknown genome {ref}")
        if len(ids) > 1:
            raise RegistryError(f"genome prefix {ref} is ambiguous")
        return ids[0]

    def lineage(self, genome_id: str) -> list[GenomeRecord]:
        """`genome_id`, its parent, ... back to the root."""
        with self._read() as c:
            self._require(c, genome_id)
            return self._ancestors(c, genome_id)

    def gate_reports(self, genome_id: str) -> list[GateReport]:
        with self._read() as c:
            self._require(c, genome_id)
            rows = c.execute("SELECT id, genome_id, time, verdict, report, sha256 FROM gate_reports "
                             "WHERE genome_id = ? ORDER BY id", (genome_id,)).fetchall()
        return [GateReport(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in rows]

    def history(self, genome_id: str | None = None) -> list[AuditRow]:
        """Audit rows (all, or those about one genome) in order."""
        with self._read() as c:
            if genome_id is not None:
                self._require(c, genome_id)
            return audit.rows(c, genome_id)

    def champion_id(self) -> str | None:
        """The champion pointer alone: one indexed read, no file access."""
        with self._read() as c:
            rec = self._champion(c)
        return None if rec is None else rec.id

    def fallback_id(self) -> str | None:
        """Nearest stable ancestor of the champion by the index alone (no file access)."""
        with self._read() as c:
            cur = self._champion(c)
            if cur is None:
                return None
            for anc in self._ancestors(c, cur.id)[1:]:
                if anc.status == "stable":
                    return anc.id
        return None

    def get(self, genome_id: str) -> Genome:
        """Any registered genome, verified against the index (GenomeIntegrityError otherwise)."""
        with self._read() as c:
            return self._load_verified(self._require(c, genome_id))

    def champion(self) -> Genome | None:
        """The current champion, verified; None before the first promotion. Never unverified weights."""
        with self._read() as c:
            rec = self._champion(c)
            return None if rec is None else self._load_verified(rec)

    def fallback(self) -> Genome | None:
        """What `rollback()` would switch to now: the nearest stable ancestor that verifies."""
        with self._read() as c:
            cur = self._champion(c)
            if cur is None:
                return None
            for anc in self._ancestors(c, cur.id)[1:]:
                if anc.status == "stable":
                    try:
                        return self._load_verified(anc)
                    except GenomeIntegrityError:
                        continue
        return None

    # ------------------------------------------------------------------ verification

    def verify(self) -> RegistryCheck:
        """Audit chain + every genome file's bytes + replay of the log against the index."""
        problems: list[str] = []
        with self._read() as c:
            db_problems = _database_problems(c)
            chain = audit.verify(c)
            rows = audit.rows(c) if chain.ok else []
            records = [self._record(r) for r in
                       c.execute(f"SELECT {_GENOME_COLS} FROM genomes ORDER BY added, id").fetchall()]
            reports = c.execute("SELECT id, genome_id, report, sha256 FROM gate_reports").fetchall()
        if not chain.ok:
            problems.append(f"audit log: first bad row seq={chain.first_bad_seq}: {chain.reason}")
        for rec in records:
            try:
                self._load_verified(rec)
            except GenomeIntegrityError as e:
                problems.append(str(e))
        if chain.ok:
            problems.extend(_replay(rows, records, reports))
        problems.extend(db_problems)
        known = {f"{r.id}.safetensors" for r in records}
        orphans = tuple(sorted(p.name for p in self.genome_dir.iterdir() if p.name not in known)) \
            if self.genome_dir.is_dir() else ()
        if not self.genome_dir.is_dir() and records:
            problems.append(f"genome directory {self.genome_dir} is missing")
        problems = [" ".join(str(p).split()) for p in problems]     # one line each (SQLite's own have newlines)
        return RegistryCheck(ok=not problems, audit=chain, problems=tuple(problems),
                             genomes_checked=len(records), orphan_files=orphans)


def _expected_schema() -> set[tuple[str, str, str]]:
    """(type, name, sql) of every table and index this code creates, as SQLite stores them."""
    mem = sqlite3.connect(":memory:", isolation_level=None)
    try:
        mem.execute("BEGIN")
        for stmt in audit.split_statements(_SCHEMA):
            mem.execute(stmt)
        audit.ensure_schema(mem)
        mem.execute("COMMIT")
        return set(mem.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall())
    finally:
        mem.close()


def _database_problems(c: sqlite3.Connection) -> list[str]:
    """What SQLite itself can tell: page/index consistency, the schema text, the champion
    invariant counted on the table (not through the one_champion index)."""
    problems: list[str] = []
    try:
        rows = [r[0] for r in c.execute("PRAGMA integrity_check(20)").fetchall()]
    except (sqlite3.DatabaseError, UnicodeDecodeError) as e:
        return [f"database: integrity_check could not run or report: {e}"]
    if rows != ["ok"]:
        problems.append(f"database: integrity_check: {'; '.join(map(str, rows[:5]))}")
    have = set(c.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall())
    want = _expected_schema()
    for typ, name, _sql in sorted(want - have):
        problems.append(f"database: schema of {typ} {name} differs from what driftgate creates (edited or missing)")
    for typ, name, _sql in sorted(have - want):
        if (typ, name) not in {(t, n) for t, n, _ in want}:
            problems.append(f"database: unexpected {typ} {name} in the schema")
    n = c.execute("SELECT count(*) FROM genomes NOT INDEXED WHERE status = 'champion'").fetchone()[0]
    if n > 1:
        problems.append(f"database: {n} genomes have status champion (at most one may)")
    try:
        via_index = c.execute("SELECT id FROM genomes INDEXED BY one_champion WHERE status = 'champion'").fetchall()
        via_table = c.execute("SELECT id FROM genomes NOT INDEXED WHERE status = 'champion'").fetchall()
        if sorted(via_index) != sorted(via_table):
            problems.append("database: the one_champion index disagrees with the genomes table "
                            f"(index: {[r[0] for r in via_index]}, table: {[r[0] for r in via_table]})")
    except sqlite3.DatabaseError as e:
        problems.append(f"database: the one_champion index is unusable: {e}")
    return problems


def _replay(rows: list[AuditRow], records: list[GenomeRecord], reports: list[tuple]) -> list[str]:
    """Rebuild statuses from the (chain-verified) log and compare with the index.

    Catches what the chain alone cannot: an index edited behind the log's back (a status flipped,
    a file hash swapped, a genome inserted) and a log whose tail was cut off.
    """
    problems: list[str] = []
    state: dict[str, dict] = {}
    gate: dict[int, tuple[str, str]] = {}

    def bad(row: AuditRow, msg: str) -> None:
        problems.append(f"audit log row seq={row.seq} ({row.action}): {msg}")

    for row in rows:
        try:
            ev = row.evidence_obj
            gid = row.genome_id
            if row.action in ("init", "robot"):
                continue
            if row.action == "add":
                state[gid] = {"status": "candidate", "stable": False, "parent_id": ev["parent_id"],
                              "file_sha256": ev["file_sha256"]}
                continue
            if gid not in state:
                bad(row, f"genome {gid} was never added")
                continue
            st = state[gid]
            if row.from_status != st["status"]:
                bad(row, f"from_status {row.from_status} but the log had {gid} as {st['status']}")
            if row.action == "gate_report":
                gate[int(ev["report_id"])] = (gid, ev["sha256"])
            elif row.action == "set_status":
                st["status"] = row.to_status
            elif row.action == "mark_stable":
                st["stable"] = True
            elif row.action in ("promote", "rollback"):
                rep = ev.get("replaced")
                if rep:
                    old = state.get(rep["id"])
                    if old is None or old["status"] != "champion":
                        bad(row, f"replaced {rep['id']} was not the champion")
                    else:
                        old["status"] = rep["to"]
                st["status"] = "champion"
            else:
                bad(row, f"unknown action {row.action!r}")
        except (KeyError, TypeError, ValueError) as e:
            bad(row, f"malformed evidence: {e}")

    champions = [g for g, s in state.items() if s["status"] == "champion"]
    if len(champions) > 1:
        problems.append(f"audit log leaves {len(champions)} champions: {champions}")
    index = {r.id: r for r in records}
    for gid in sorted(set(index) - set(state)):
        problems.append(f"genome {gid} is in the index but was never added in the audit log")
    for gid in sorted(set(state) - set(index)):
        problems.append(f"genome {gid} was added in the audit log but is missing from the index")
    for gid in sorted(set(state) & set(index)):
        s, r = state[gid], index[gid]
        for field, got, want in (("status", r.status, s["status"]), ("stable", r.stable, s["stable"]),
                                 ("parent_id", r.parent_id, s["parent_id"]),
                                 ("file_sha256", r.file_sha256, s["file_sha256"])):
            if got != want:
                problems.append(f"genome {gid}: index says {field}={got!r}, audit log says {want!r}")
    for rid, gid, text, digest in reports:
        logged = gate.get(int(rid))
        if logged is None:
            problems.append(f"gate report {rid} for {gid} has no audit row")
        elif logged != (gid, digest) or _sha256(text.encode()) != digest:
            problems.append(f"gate report {rid} for {gid} does not match its audit row (edited)")
    for rid in sorted(set(gate) - {int(r[0]) for r in reports}):
        problems.append(f"gate report {rid} is in the audit log but missing from the index")
    return problems


# ---------------------------------------------------------------------- live side

@dataclass(frozen=True)
class PolicySnapshot:
    """What the control tick needs to run a policy: id, spec, read-only float32 weights."""

    genome_id: str
    spec: PolicySpec
    weights: np.ndarray


class FallbackCache:
    """Champion and fallback policies held in memory for the control tick.

    `refresh(registry)` does all the disk and database work (and verification) and runs outside the
    tick; it swaps in a new (champion, fallback) pair with one attribute assignment, so a tick
    reading `snapshot()` always sees a consistent pair and never waits on I/O. If a refresh fails
    (e.g. the new champion's file is corrupt) the previous pair stays in force and the error is raised
    to the refresher.
    """

    def __init__(self, decode: Callable[[Genome], tuple[PolicySpec, np.ndarray]] | None = None):
        self.decode = decode or decode_policy     # the gate's decoder (sim.srghn_decode): same weights
        self._pair: tuple[PolicySnapshot | None, PolicySnapshot | None] = (None, None)
        self._ids: tuple[str | None, str | None] = (None, None)
        self.version = 0

    def _snap(self, genome: Genome | None) -> PolicySnapshot | None:
        if genome is None:
            return None
        try:
            spec, weights = self.decode(genome)
        except (ValueError, TypeError, KeyError) as e:
            raise RegistryError(f"genome {genome.id}: cannot decode its policy: {e}") from None
        w = np.array(weights, dtype=np.float32, copy=True).reshape(-1)
        if w.size != spec.num_params:
            raise RegistryError(f"genome {genome.id}: decoded policy has {w.size} weights, "
                                f"its PolicySpec needs {spec.num_params}")
        w.flags.writeable = False
        return PolicySnapshot(genome.id, spec, w)

    def refresh(self, registry: Registry) -> bool:
        """Reload from the registry if the champion or fallback changed; True if the pair changed."""
        old_c, old_f = self._pair
        ids = (registry.champion_id(), registry.fallback_id())
        if ids == self._ids:
            return False
        champ = registry.champion()
        fb = registry.fallback()
        new_c = old_c if old_c and champ and old_c.genome_id == champ.id else self._snap(champ)
        new_f = old_f if old_f and fb and old_f.genome_id == fb.id else self._snap(fb)
        changed = new_c is not old_c or new_f is not old_f
        self._pair, self._ids = (new_c, new_f), ids
        if changed:
            self.version += 1
        return changed

    def snapshot(self) -> tuple[PolicySnapshot | None, PolicySnapshot | None]:
        """(champion, fallback) as one consistent pair; no I/O."""
        return self._pair

    @property
    def champion(self) -> PolicySnapshot | None:
        return self._pair[0]

    @property
    def fallback(self) -> PolicySnapshot | None:
        return self._pair[1]
