"""Append-only, hash-chained audit log kept in the registry's own SQLite database.

Why a chain: the audit log is the evidence behind every decision that gave (or took away) a
controller's authority over a robot. A plain table can be edited after the fact; here every row
stores `hash = sha256(prev_hash + canonical JSON of the row)`, so editing, deleting, inserting or
reordering a row breaks the chain at that row and `verify()` names the first bad `seq`.

Why in the same database: a decision row is written in the *same* transaction as the state change
it describes (see `safety.registry`), so the log and the index can never disagree after a crash.
`append()` therefore refuses to run outside an open transaction.

Limits, stated plainly: the chain has no secret key. Someone with write access who recomputes every
hash from some row onwards, or who truncates the tail, is not caught by the chain alone. The
registry cross-checks the log against its index (a truncated tail leaves index state the log does
not explain), and `VerifyResult.head` is the value to anchor outside the machine when that matters.
Triggers block UPDATE/DELETE on the table to stop accidents; they are not a security boundary.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import asdict, dataclass
from typing import Any

from sim.atomicio import canonical_json  # noqa: F401  (sorted, compact, no NaN: reproducible hashes)

GENESIS = "0" * 64

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq         INTEGER PRIMARY KEY,
    time        REAL    NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    genome_id   TEXT,
    from_status TEXT,
    to_status   TEXT,
    evidence    TEXT    NOT NULL,
    prev_hash   TEXT    NOT NULL,
    hash        TEXT    NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
"""

_COLUMNS = "seq, time, actor, action, genome_id, from_status, to_status, evidence, prev_hash, hash"


class AuditError(RuntimeError):
    """The audit log was used wrongly (e.g. appended to outside a transaction, evidence not JSON)."""


@dataclass(frozen=True)
class AuditRow:
    """One decision. `evidence` is the exact stored JSON text (the hash covers those bytes)."""

    seq: int
    time: float
    actor: str
    action: str
    genome_id: str | None
    from_status: str | None
    to_status: str | None
    evidence: str
    prev_hash: str
    hash: str

    @property
    def evidence_obj(self) -> Any:
        return json.loads(self.evidence)

    def hashed_fields(self) -> dict:
        """Everything the hash covers except `prev_hash`, which is prepended separately."""
        d = asdict(self)
        d.pop("hash")
        d.pop("prev_hash")
        return d

    def to_dict(self) -> dict:
        d = asdict(self)
        d["evidence"] = self.evidence_obj
        return d


def row_hash(prev_hash: str, fields: dict) -> str:
    return hashlib.sha256((prev_hash + canonical_json(fields)).encode()).hexdigest()


def _row(r: tuple) -> AuditRow:
    return AuditRow(*r)


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the table and its append-only triggers (idempotent; safe inside a transaction)."""
    for stmt in split_statements(SCHEMA):
        conn.execute(stmt)


def split_statements(script: str) -> list[str]:
    """Split SCHEMA into statements (executescript would COMMIT an open transaction)."""
    out, buf = [], []
    for line in script.strip().splitlines():
        buf.append(line)
        joined = "\n".join(buf)
        if sqlite3.complete_statement(joined):
            out.append(joined)
            buf = []
    return out


def head(conn: sqlite3.Connection) -> tuple[int, str]:
    """(seq, hash) of the last row, or (0, GENESIS) for an empty log."""
    r = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    return (0, GENESIS) if r is None else (int(r[0]), str(r[1]))


def append(conn: sqlite3.Connection, *, actor: str, action: str, genome_id: str | None = None,
           from_status: str | None = None, to_status: str | None = None,
           evidence: Any = None, now: float | None = None) -> AuditRow:
    """Append one row, chained to the current head. Must run inside the caller's write transaction,
    so that the decision and the state change it records commit (or vanish) together."""
    if not conn.in_transaction:
        raise AuditError("audit.append must run inside the transaction that makes the state change")
    try:
        evidence_text = canonical_json({} if evidence is None else evidence)
    except (TypeError, ValueError) as e:
        raise AuditError(f"audit evidence must be plain JSON (no NaN, no objects): {e}") from e
    seq, prev = head(conn)
    fields = dict(seq=seq + 1, time=float(time.time() if now is None else now), actor=str(actor),
                  action=str(action), genome_id=genome_id, from_status=from_status,
                  to_status=to_status, evidence=evidence_text)
    row = AuditRow(**fields, prev_hash=prev, hash=row_hash(prev, fields))
    conn.execute(f"INSERT INTO audit ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                 tuple(asdict(row).values()))
    return row


def rows(conn: sqlite3.Connection, genome_id: str | None = None) -> list[AuditRow]:
    """All rows in seq order (optionally only those about one genome)."""
    if genome_id is None:
        cur = conn.execute(f"SELECT {_COLUMNS} FROM audit ORDER BY seq")
    else:
        cur = conn.execute(f"SELECT {_COLUMNS} FROM audit WHERE genome_id = ? ORDER BY seq",
                           (genome_id,))
    return [_row(r) for r in cur.fetchall()]


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of walking the chain. `first_bad_seq` is the first row that is wrong or missing."""

    ok: bool
    rows: int
    head: str
    first_bad_seq: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def verify_rows(all_rows: list[AuditRow]) -> VerifyResult:
    """Check seq continuity (1, 2, ...), the prev_hash links and every row's own hash."""
    prev, expected_seq = GENESIS, 1
    for row in all_rows:
        bad = None
        if row.seq != expected_seq:
            if row.seq > expected_seq:
                bad = (expected_seq, f"row {expected_seq} is missing (next row is {row.seq}): deleted")
            else:
                bad = (row.seq, f"row {row.seq} is out of order or duplicated (expected {expected_seq})")
        elif row.prev_hash != prev:
            bad = (row.seq, f"row {row.seq} does not link to row {row.seq - 1} "
                            "(prev_hash mismatch: inserted, reordered or earlier row rewritten)")
        elif row_hash(row.prev_hash, row.hashed_fields()) != row.hash:
            bad = (row.seq, f"row {row.seq} content does not match its hash: edited")
        if bad is not None:
            return VerifyResult(ok=False, rows=len(all_rows), head=prev, first_bad_seq=bad[0],
                                reason=bad[1])
        prev, expected_seq = row.hash, expected_seq + 1
    return VerifyResult(ok=True, rows=len(all_rows), head=prev)


def verify(conn: sqlite3.Connection) -> VerifyResult:
    """Walk the whole chain in one read snapshot; never raises on a tampered log, reports it."""
    try:
        all_rows = rows(conn)
    except (sqlite3.DatabaseError, TypeError, ValueError) as e:
        return VerifyResult(ok=False, rows=0, head=GENESIS, first_bad_seq=None,
                            reason=f"audit table unreadable: {e}")
    return verify_rows(all_rows)
