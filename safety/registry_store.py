"""The storage layer under `safety.registry.Registry`: opening (WAL, schema, format check), one
transaction per write, consistent read snapshots, index rows, verified genome files, and the
robot the registry's policies drive. The state machine on top lives in `safety.registry`."""
from __future__ import annotations

import json
import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from safety import audit
from safety.registry_schema import (DB_NAME, FORMAT, GENOME_COLS, GENOME_DIR, GENOME_FIELDS, ID_RE, ROBOT_KEYS,
                                    SCHEMA_SQL, SCHEMA_VERSION, TABLES, GenomeIntegrityError, GenomeRecord,
                                    RegistryError, RegistryStateError, check_transition, json_text, robot_mismatch,
                                    robot_of, sha256_hex)
from sim.genome import Genome, GenomeFileError, genome_from_bytes, read_genome_bytes
from sim.safeio import inside


class RegistryStore:
    """Connection, transactions and verified reads of one registry directory (see `Registry`)."""


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
        text = json_text(robot, "robot")
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
            why = robot_mismatch(robot, genome)
            if why:
                raise RegistryError(why)
        return robot

    # ------------------------------------------------------------------ plumbing

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "RegistryStore":
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
                                    f"(tables: {', '.join(sorted(tables - TABLES))}); not touching it")
            for stmt in audit.split_statements(SCHEMA_SQL):
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
        if not isinstance(genome_id, str) or not ID_RE.fullmatch(genome_id):
            raise RegistryError(f"not a genome id (32 lowercase hex characters): {genome_id!r}")
        return genome_id

    @staticmethod
    def _record(row: tuple) -> GenomeRecord:
        d = dict(zip(GENOME_FIELDS, row))
        try:
            d["fitness"] = json.loads(d["fitness"])
        except (TypeError, ValueError) as e:     # only an edited or damaged database gets here
            raise RegistryStateError(f"genome {d.get('id')!r}: unreadable index row ({e}); run `registry verify`")
        return GenomeRecord(**d)

    def _get(self, c: sqlite3.Connection, genome_id: str) -> GenomeRecord | None:
        r = c.execute(f"SELECT {GENOME_COLS} FROM genomes WHERE id = ?", (genome_id,)).fetchone()
        return None if r is None else self._record(r)

    def _require(self, c: sqlite3.Connection, genome_id: str) -> GenomeRecord:
        rec = self._get(c, self._check_id(genome_id))
        if rec is None:
            raise RegistryError(f"unknown genome {genome_id}")
        return rec

    def _champion(self, c: sqlite3.Connection) -> GenomeRecord | None:
        """The champion read from the table itself, not through the one_champion index: an index
        entry edited on disk must not be able to crown another genome (a handful of rows: cheap)."""
        rows = c.execute(f"SELECT {GENOME_COLS} FROM genomes NOT INDEXED WHERE status = 'champion'").fetchall()
        if len(rows) > 1:
            raise RegistryStateError(f"{self.db_path}: {len(rows)} genomes have status champion; the database was "
                                "edited outside driftgate (run `registry verify`)")
        return None if not rows else self._record(rows[0])

    def _ancestors(self, c: sqlite3.Connection, genome_id: str) -> list[GenomeRecord]:
        """`genome_id` then its parent, grandparent, ... (depth-capped against a doctored cycle)."""
        cols = ", ".join(f"g.{x}" for x in GENOME_FIELDS)
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
        digest = sha256_hex(data)
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
