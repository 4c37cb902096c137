"""`Registry.verify` trusts nothing it can check: what SQLite itself can tell about the database
(page and index consistency, the schema text, the one-champion invariant), and a replay of the
hash-chained audit log against the index."""
from __future__ import annotations

import sqlite3

from safety import audit
from safety.audit import AuditRow
from safety.registry_schema import SCHEMA_SQL, GenomeRecord, sha256_hex


def _expected_schema() -> set[tuple[str, str, str]]:
    """(type, name, sql) of every table and index this code creates, as SQLite stores them."""
    mem = sqlite3.connect(":memory:", isolation_level=None)
    try:
        mem.execute("BEGIN")
        for stmt in audit.split_statements(SCHEMA_SQL):
            mem.execute(stmt)
        audit.ensure_schema(mem)
        mem.execute("COMMIT")
        return set(mem.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall())
    finally:
        mem.close()


def database_problems(c: sqlite3.Connection) -> list[str]:
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


def replay_audit(rows: list[AuditRow], records: list[GenomeRecord], reports: list[tuple]) -> list[str]:
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
        elif logged != (gid, digest) or sha256_hex(text.encode()) != digest:
            problems.append(f"gate report {rid} for {gid} does not match its audit row (edited)")
    for rid in sorted(set(gate) - {int(r[0]) for r in reports}):
        problems.append(f"gate report {rid} is in the audit log but missing from the index")
    return problems
