"""The audit log's hash chain: intact logs verify, and every kind of tampering names the first bad row.

Tampering is done the way an operator (or an attacker) would: with sqlite3 on the real file,
dropping the append-only triggers first.
"""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from safety import audit
from safety.audit import GENESIS, AuditError
from safety.registry import Registry
from safety.registry_schema import DB_NAME
from sim.genome import Genome
from sim.policy import PolicySpec

SPEC = PolicySpec(obs_dim=3, act_dim=2, hidden=(4,))
COLS = "time, actor, action, genome_id, from_status, to_status, evidence, prev_hash, hash"


def _db(tmp_path, n: int = 5) -> sqlite3.Connection:
    conn = sqlite3.connect(tmp_path / "audit.sqlite", isolation_level=None)
    audit.ensure_schema(conn)
    for i in range(n):
        conn.execute("BEGIN IMMEDIATE")
        audit.append(conn, actor="test", action="decide", genome_id=f"g{i}", from_status="a",
                     to_status="b", evidence={"i": i, "why": "because"})
        conn.execute("COMMIT")
    return conn


def _untrigger(conn: sqlite3.Connection) -> None:
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("DROP TRIGGER audit_no_delete")


def test_intact_chain_verifies(tmp_path):
    conn = _db(tmp_path)
    res = audit.verify(conn)
    assert res.ok and res.rows == 5 and res.first_bad_seq is None
    assert res.head == conn.execute("SELECT hash FROM audit WHERE seq = 5").fetchone()[0]
    rows = audit.rows(conn)
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == GENESIS and rows[1].prev_hash == rows[0].hash
    assert rows[2].evidence_obj == {"i": 2, "why": "because"}


def test_empty_log_verifies(tmp_path):
    res = audit.verify(_db(tmp_path, n=0))
    assert res.ok and res.rows == 0 and res.head == GENESIS


def test_append_outside_a_transaction_is_refused(tmp_path):
    conn = _db(tmp_path, n=0)
    with pytest.raises(AuditError, match="inside the transaction"):
        audit.append(conn, actor="t", action="x")
    assert audit.rows(conn) == []


def test_evidence_must_be_plain_json(tmp_path):
    conn = _db(tmp_path, n=1)
    conn.execute("BEGIN IMMEDIATE")
    with pytest.raises(AuditError, match="plain JSON"):
        audit.append(conn, actor="t", action="x", evidence={"x": float("nan")})
    conn.execute("ROLLBACK")
    assert len(audit.rows(conn)) == 1


def test_triggers_block_update_and_delete(tmp_path):
    conn = _db(tmp_path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit WHERE seq = 2")
    assert audit.verify(conn).ok


def test_edited_row_is_detected(tmp_path):
    conn = _db(tmp_path)
    _untrigger(conn)
    conn.execute("""UPDATE audit SET evidence = '{"i":2,"why":"forged"}' WHERE seq = 3""")
    res = audit.verify(conn)
    assert not res.ok and res.first_bad_seq == 3 and "edited" in res.reason


def test_edited_row_with_recomputed_hash_breaks_the_next_link(tmp_path):
    conn = _db(tmp_path)
    _untrigger(conn)
    row = audit.rows(conn)[2]
    fields = {**row.hashed_fields(), "actor": "mallory"}
    conn.execute("UPDATE audit SET actor = 'mallory', hash = ? WHERE seq = 3",
                 (audit.row_hash(row.prev_hash, fields),))
    res = audit.verify(conn)
    assert not res.ok and res.first_bad_seq == 4 and "prev_hash" in res.reason


def test_deleted_row_is_detected(tmp_path):
    conn = _db(tmp_path)
    _untrigger(conn)
    conn.execute("DELETE FROM audit WHERE seq = 3")
    res = audit.verify(conn)
    assert not res.ok and res.first_bad_seq == 3 and "missing" in res.reason


def test_deleted_first_row_is_detected(tmp_path):
    conn = _db(tmp_path)
    _untrigger(conn)
    conn.execute("DELETE FROM audit WHERE seq = 1")
    res = audit.verify(conn)
    assert not res.ok and res.first_bad_seq == 1


def test_inserted_row_is_detected(tmp_path):
    """A forged row slipped in at seq 3 (correctly linked to row 2) displaces the original row 3,
    whose hash covers its old seq: the chain breaks right after the forgery."""
    conn = _db(tmp_path)
    _untrigger(conn)
    for seq in range(5, 2, -1):
        conn.execute("UPDATE audit SET seq = seq + 1 WHERE seq = ?", (seq,))
    prev = audit.rows(conn)[1].hash
    fields = dict(seq=3, time=1.0, actor="mallory", action="promote", genome_id="x",
                  from_status="candidate", to_status="champion", evidence="{}")
    conn.execute(f"INSERT INTO audit (seq, {COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                 (*fields.values(), prev, audit.row_hash(prev, fields)))
    res = audit.verify(conn)
    assert not res.ok and res.first_bad_seq == 4


def test_reordered_rows_are_detected(tmp_path):
    conn = _db(tmp_path)
    _untrigger(conn)
    r2, r3 = (conn.execute(f"SELECT {COLS} FROM audit WHERE seq = ?", (s,)).fetchone() for s in (2, 3))
    sets = ", ".join(f"{c.strip()} = ?" for c in COLS.split(","))
    conn.execute(f"UPDATE audit SET {sets} WHERE seq = 2", r3)
    conn.execute(f"UPDATE audit SET {sets} WHERE seq = 3", r2)
    res = audit.verify(conn)
    assert not res.ok and res.first_bad_seq == 2


# --- the same checks through a real registry, editing its SQLite file behind its back ----------

def _registry_with_history(root) -> list[str]:
    ids = []
    with Registry.init(root) as reg:
        parent = None
        for i in range(3):
            g = Genome(vector=np.full(SPEC.num_params, i, np.float32), policy_spec=SPEC, kind="policy")
            gid = reg.add(g, parent_id=parent)
            reg.promote(gid, force=True, reason=f"step {i}")
            reg.mark_stable(gid)
            ids.append(gid)
            parent = gid
        assert reg.verify().ok
    return ids


def _edit(root, *sql: str) -> None:
    conn = sqlite3.connect(root / DB_NAME, isolation_level=None)
    _untrigger(conn)
    for s in sql:
        conn.execute(s)
    conn.close()


def test_registry_verify_names_an_edited_row(tmp_path):
    _registry_with_history(tmp_path)
    _edit(tmp_path, """UPDATE audit SET actor = 'mallory' WHERE seq = 4""")
    with Registry(tmp_path) as reg:
        res = reg.verify()
    assert not res.ok and res.audit.first_bad_seq == 4
    assert "seq=4" in res.first_problem


def test_registry_verify_names_a_deleted_row(tmp_path):
    _registry_with_history(tmp_path)
    _edit(tmp_path, "DELETE FROM audit WHERE seq = 5")
    with Registry(tmp_path) as reg:
        res = reg.verify()
    assert not res.ok and res.audit.first_bad_seq == 5 and "missing" in res.first_problem


def test_truncated_tail_passes_the_chain_but_not_the_registry_replay(tmp_path):
    """The chain alone cannot see a cut-off tail (documented limit); the index still remembers the
    state the last row created, so the registry's replay check catches it."""
    _registry_with_history(tmp_path)
    _edit(tmp_path, "DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit)")
    with Registry(tmp_path) as reg:
        res = reg.verify()
    assert res.audit.ok
    assert not res.ok and any("audit log says" in p for p in res.problems)


def test_registry_verify_detects_an_index_edited_behind_the_log(tmp_path):
    ids = _registry_with_history(tmp_path)
    _edit(tmp_path, f"UPDATE genomes SET status = 'rejected' WHERE id = '{ids[0]}'")
    with Registry(tmp_path) as reg:
        res = reg.verify()
    assert res.audit.ok and not res.ok
    assert any(ids[0] in p and "status" in p for p in res.problems)
