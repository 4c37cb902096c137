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
* The live control tick never touches the disk: `safety.policy_cache.FallbackCache.refresh()` runs
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

The parts: `safety.registry_schema` (layout, schema, transitions, records, errors),
`safety.registry_store` (connection, transactions, verified reads), `safety.registry_verify`
(database and audit-log checks), `safety.policy_cache` (the live side).
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from typing import Any, Iterator

from safety import audit
from safety.audit import AuditRow
from safety.registry_schema import (GENOME_COLS, ID_RE, STATUSES, GateReportRecord, GenomeIntegrityError,
                                    GenomeRecord, RegistryCheck, RegistryError, check_transition, fsync_dir,
                                    json_text, robot_of, sha256_hex)
from safety.registry_store import RegistryStore
from safety.registry_verify import database_problems, replay_audit
from sim.atomicio import atomic_write_bytes
from sim.genome import Genome, GenomeFileError, genome_file_bytes, genome_from_bytes, load_genome, read_genome_bytes
from sim.safeio import inside

_UNSET: Any = object()


class Registry(RegistryStore):
    """The champion registry in directory `root` (see module docstring).

    `Registry(root)` opens an existing registry and refuses a directory that is not one;
    `Registry(root, create=True)` (or `Registry.init(root)`) creates it if needed. `actor` is
    recorded in every audit row written through this object. Safe to share between threads of one
    process (calls on one instance are serialised by a lock), so a reader that must never wait on a
    writer in the same process (the live node) should hold its own instance; other processes open
    their own. With WAL, readers on separate connections do not wait for writers.
    """

    @classmethod
    def init(cls, root: str | os.PathLike, *, actor: str = "driftgate", robot: dict | None = None) -> "Registry":
        """Create (or open, if it already exists) the registry in `root`. `robot` (`robot_of`,
        `robot_for_plant`): the robot its policies drive; without it, the first champion's."""
        return cls(root, create=True, actor=actor, robot=robot)

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
                                                 and ID_RE.fullmatch(genome.parent_id)):
            raise RegistryError(f"genome {gid}: parent {genome.parent_id!r} is not a genome id "
                                "(32 lowercase hex characters)")
        if genome.parent_id == gid:
            raise RegistryError(f"genome {gid} cannot be its own parent")
        fitness_text = json_text(genome.fitness, "genome fitness")
        evidence_obj = {"parent_id": genome.parent_id, "drift_hash": genome.drift_hash, "kind": genome.kind,
                        "source": source, "reason": reason, "evidence": evidence or {}}
        json_text(evidence_obj, "evidence")
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
                fsync_dir(path.parent)
                try:
                    data = read_genome_bytes(path, follow_symlinks=False)
                    genome_from_bytes(data, path, expected_id=gid)
                except GenomeFileError as e:
                    raise GenomeIntegrityError(f"genome {gid} did not read back intact: {e}") from e
                digest = sha256_hex(data)
                now = time.time()
                c.execute(f"INSERT INTO genomes ({GENOME_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
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
        text = json_text(report, "gate report")
        verdict = report.get("verdict")
        verdict = None if verdict is None else str(verdict)
        digest = sha256_hex(text.encode())
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
                c.execute("INSERT OR IGNORE INTO meta VALUES ('robot', ?)", (json_text(first, "robot"),))
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
                hit = self._verified_fallback(c, cur.id, skipped)
                target = None if hit is None else hit[0]
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

    def _stable_ancestors(self, c: sqlite3.Connection, genome_id: str) -> Iterator[GenomeRecord]:
        """The rollback targets below `genome_id`: its stable ancestors, nearest first."""
        return (anc for anc in self._ancestors(c, genome_id)[1:] if anc.status == "stable")

    def _verified_fallback(self, c: sqlite3.Connection, genome_id: str, skipped: list[dict] | None = None
                           ) -> tuple[GenomeRecord, Genome] | None:
        """The nearest stable ancestor whose file verifies, and its genome; corrupt ones are passed
        over (and named in `skipped`)."""
        for anc in self._stable_ancestors(c, genome_id):
            try:
                return anc, self._load_verified(anc)
            except GenomeIntegrityError as e:
                if skipped is not None:
                    skipped.append({"id": anc.id, "error": str(e)})
        return None

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
                rows = c.execute(f"SELECT {GENOME_COLS} FROM genomes ORDER BY added, id").fetchall()
            else:
                rows = c.execute(f"SELECT {GENOME_COLS} FROM genomes WHERE status = ? "
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

    def gate_reports(self, genome_id: str) -> list[GateReportRecord]:
        with self._read() as c:
            self._require(c, genome_id)
            rows = c.execute("SELECT id, genome_id, time, verdict, report, sha256 FROM gate_reports "
                             "WHERE genome_id = ? ORDER BY id", (genome_id,)).fetchall()
        return [GateReportRecord(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in rows]

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
            anc = next(self._stable_ancestors(c, cur.id), None)
        return None if anc is None else anc.id

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
            hit = None if cur is None else self._verified_fallback(c, cur.id)
        return None if hit is None else hit[1]

    # ------------------------------------------------------------------ verification

    def verify(self) -> RegistryCheck:
        """Audit chain + every genome file's bytes + replay of the log against the index."""
        problems: list[str] = []
        with self._read() as c:
            db_problems = database_problems(c)
            chain = audit.verify(c)
            rows = audit.rows(c) if chain.ok else []
            records = [self._record(r) for r in
                       c.execute(f"SELECT {GENOME_COLS} FROM genomes ORDER BY added, id").fetchall()]
            reports = c.execute("SELECT id, genome_id, report, sha256 FROM gate_reports").fetchall()
        if not chain.ok:
            problems.append(f"audit log: first bad row seq={chain.first_bad_seq}: {chain.reason}")
        for rec in records:
            try:
                self._load_verified(rec)
            except GenomeIntegrityError as e:
                problems.append(str(e))
        if chain.ok:
            problems.extend(replay_audit(rows, records, reports))
        problems.extend(db_problems)
        known = {f"{r.id}.safetensors" for r in records}
        orphans = tuple(sorted(p.name for p in self.genome_dir.iterdir() if p.name not in known)) \
            if self.genome_dir.is_dir() else ()
        if not self.genome_dir.is_dir() and records:
            problems.append(f"genome directory {self.genome_dir} is missing")
        problems = [" ".join(str(p).split()) for p in problems]     # one line each (SQLite's own have newlines)
        return RegistryCheck(ok=not problems, audit=chain, problems=tuple(problems),
                             genomes_checked=len(records), orphan_files=orphans)
