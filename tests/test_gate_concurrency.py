"""The gate writing while the live side reads the champion pointer: the reader never waits (WAL).

Two checks, both without wall-clock thresholds (read latency under load is a speed figure and lives
in `benchmarks/registry_reads.py`):

1. **Held transaction.** A second process runs a real `Registry.promote` and stops *inside* its
   transaction (the champion row already changed, the audit row not yet written) until we tell it
   to go on. Its transaction takes an EXCLUSIVE lock, the strongest a writer ever holds (a
   rollback-journal commit takes it; in WAL it is the same as the IMMEDIATE the registry uses).
   While it holds, this process reads the champion pointer: the read must come back -- with the
   old champion, from its snapshot -- while the writer is provably still holding (it waits for our
   signal). Checked by hand that this fails with the registry switched to a rollback journal.
2. **Stress.** The writer does what the gate and the orchestrator do (gate reports of a realistic
   size, register, promote, roll back; every write fsync'd) while this process reads in a tight
   loop: every read sees a champion (old or new, never none) and the audit chain verifies after.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from safety.registry import Registry
from sim.genome import Genome
from sim.policy import PolicySpec

ROOT = Path(__file__).resolve().parents[1]
SPEC = PolicySpec(obs_dim=5, act_dim=1, hidden=(4,), discrete=False)
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

HOLDER = r"""
import sys
from safety import audit, registry
from safety.registry import Registry

root, gid = sys.argv[1], sys.argv[2]
append = audit.append

def held_append(c, **kw):
    # inside promote's BEGIN IMMEDIATE transaction, after the status updates
    print("holding", flush=True)
    sys.stdin.readline()
    return append(c, **kw)

class ExclusiveBegin:
    # the connection, but its transactions take the strongest lock a writer ever holds: EXCLUSIVE
    # (in WAL mode the same as IMMEDIATE; in a rollback journal it shuts every reader out)
    def __init__(self, conn):
        self._conn = conn

    def execute(self, sql, *args):
        return self._conn.execute("BEGIN EXCLUSIVE" if sql == "BEGIN IMMEDIATE" else sql, *args)

    def __getattr__(self, name):
        return getattr(self._conn, name)


registry.audit.append = held_append
with Registry(root, actor="gate") as reg:
    reg._conn = ExclusiveBegin(reg._conn)
    reg.promote(gid, force=True, reason="held transaction test")
print("committed", flush=True)
"""

# the load: the benchmark's writer process (gate reports of realistic size, register, promote,
# roll back, as fast as it can)
WRITER = ROOT / "benchmarks" / "registry_reads.py"


def _registry(root: Path) -> tuple[str, str]:
    """A registry with a stable champion and one candidate; returns (champion, candidate)."""
    with Registry.init(root) as setup:
        champ = setup.add(Genome(vector=np.ones(SPEC.num_params, np.float32), policy_spec=SPEC, kind="policy"))
        setup.promote(champ, force=True)
        setup.mark_stable(champ)
        cand = setup.add(Genome(vector=np.zeros(SPEC.num_params, np.float32), policy_spec=SPEC, kind="policy"))
    return champ, cand


def _read_in_thread(reader: Registry, timeout: float = 20.0) -> str | None:
    """champion_id() in a thread: a read that waits for the writer never comes back in time."""
    got: list = []
    t = threading.Thread(target=lambda: got.append(reader.champion_id()), daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "the champion read is waiting for the writer's transaction"
    return got[0]


def test_reader_is_not_blocked_by_a_write_transaction_in_progress(tmp_path):
    champ, cand = _registry(tmp_path / "reg")
    reader = Registry(tmp_path / "reg", actor="node")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "reg"), cand], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=ENV)
    try:
        line = holder.stdout.readline().strip()
        assert line == "holding", holder.stderr.read()
        # the writer holds the write lock with the champion row already changed, and waits for us
        assert _read_in_thread(reader) == champ                  # the snapshot: old champion
        assert _read_in_thread(reader) == champ
        assert holder.poll() is None                             # ...and it was holding all along
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "committed", holder.stderr.read()
        assert holder.wait(timeout=30) == 0
        assert _read_in_thread(reader) == cand                   # the next read sees the commit
    finally:
        if holder.poll() is None:
            holder.kill()
        reader.close()
    with Registry(tmp_path / "reg") as check:
        assert check.verify().ok
        assert [r.id for r in check.list("champion")] == [cand]


def test_reads_during_heavy_gate_writes_always_see_a_champion(tmp_path):
    _registry(tmp_path / "reg")
    reader = Registry(tmp_path / "reg", actor="node")
    writer = subprocess.Popen([sys.executable, str(WRITER), "--writer", str(tmp_path / "reg"), "--seconds", "1.5"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=ENV)
    try:
        assert writer.stdout.readline().strip() == "ready", writer.stderr.read()
        reads, champions = 0, set()
        while writer.poll() is None:
            champions.add(reader.champion_id())
            reads += 1
        out, err = writer.communicate(timeout=30)
    finally:
        if writer.poll() is None:
            writer.kill()
        reader.close()
    assert writer.returncode == 0, err
    writes = int(out.split()[-1])
    assert writes >= 20 and reads >= 100, (writes, reads)
    assert None not in champions                     # always old or new, never none
    with Registry(tmp_path / "reg") as check:
        assert check.verify().ok
