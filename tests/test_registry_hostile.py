"""The registry against a hostile file system and a doctored database: a one-byte index edit cannot
crown a candidate unnoticed, genomes for another robot are refused, refusals leave no trace, and
genome files are read bounded (no /dev/zero, FIFO, 1 GB file or symlink out of the registry)."""
import json
import os
import sqlite3
import threading

import numpy as np
import pytest
from typer.testing import CliRunner

from adapters.cli_registry import app
from safety.registry import GenomeIntegrityError, Registry, RegistryError
from safety.registry_schema import DB_NAME, robot_for_plant
from sim.genome import Genome, GenomeFileError, genome_file_bytes, load_genome, save_genome
from sim.policy import PolicySpec

SPEC = PolicySpec(obs_dim=4, act_dim=2, hidden=(8,), discrete=False)
OTHER = PolicySpec(obs_dim=24, act_dim=6, hidden=(8,), discrete=False)      # a walker-sized robot
_n = iter(range(1, 10**9))


def mk(spec=SPEC, **kw) -> Genome:
    v = float(next(_n))
    return Genome(vector=np.linspace(-1, 1, spec.num_params, dtype=np.float32) * np.float32(v),
                  policy_spec=spec, kind="policy", **kw)


def snapshot(root):
    """Everything a refused operation must leave unchanged: files, audit rows, genome rows."""
    files = sorted(p.name for p in (root / "genomes").iterdir())
    with Registry(root) as reg:
        return files, len(reg.history()), [(r.id, r.status) for r in reg.list()]


@pytest.fixture
def reg_root(tmp_path):
    root = tmp_path / "reg"
    with Registry.init(root) as reg:
        a = reg.add(mk())
        reg.promote(a, force=True)
        reg.mark_stable(a)
        b = reg.add(mk(parent_id=a))
        reg.promote(b, force=True)
        c = reg.add(mk(parent_id=b))                      # a candidate that was never gated
    return root, a, b, c


# ---------------------------------------------------------------------- the database itself

def test_champion_is_read_from_the_table_and_verify_catches_a_repointed_index(reg_root):
    """What a raw page edit does: the one_champion index entry points at the candidate's row."""
    root, a, b, c = reg_root
    conn = sqlite3.connect(root / DB_NAME)
    conn.execute("PRAGMA writable_schema = ON")           # a doctored index: c's row is in it, b's is not
    conn.execute("DROP INDEX one_champion")
    conn.execute("CREATE UNIQUE INDEX one_champion ON genomes(status) WHERE status = 'champion'")
    rowid_b, rowid_c = (conn.execute("SELECT rowid FROM genomes WHERE id = ?", (x,)).fetchone()[0] for x in (b, c))
    conn.commit()
    conn.close()
    _swap_index_rowid(root / DB_NAME, rowid_b, rowid_c)
    with Registry(root) as reg:
        assert reg.champion_id() == b                     # the table says b; the index would say c
        res = reg.verify()
    assert not res.ok
    assert any("integrity_check" in p or "one_champion index disagrees" in p for p in res.problems), res.problems


def _swap_index_rowid(db, old: int, new: int) -> None:
    """Re-point the single entry of the one_champion index from rowid `old` to `new` by editing the
    index page's bytes (the record is ('champion', rowid))."""
    conn = sqlite3.connect(db)
    page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'one_champion'").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(db.read_bytes())
    start = (page - 1) * size
    body = data[start:start + size]
    needle = b"champion" + bytes([old])
    i = body.rfind(needle)
    assert i >= 0, "index record not found"
    body[i + len(needle) - 1] = new
    data[start:start + size] = body
    db.write_bytes(bytes(data))


def test_verify_catches_a_schema_text_edit(reg_root):
    root, *_ = reg_root
    conn = sqlite3.connect(root / DB_NAME)
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute("UPDATE sqlite_master SET sql = replace(sql, 'stable_since REAL', 'stable_since REAM') "
                 "WHERE name = 'genomes'")
    conn.commit()
    conn.close()
    with Registry(root) as reg:
        res = reg.verify()
    assert not res.ok and any("schema of table genomes" in p for p in res.problems), res.problems


# ---------------------------------------------------------------------- one robot

def test_a_genome_for_another_robot_is_refused_by_add_and_promote(reg_root):
    root, a, b, c = reg_root
    before = snapshot(root)
    with Registry(root) as reg:
        with pytest.raises(RegistryError, match="another robot.*obs_dim 24"):
            reg.add(mk(OTHER))
    assert snapshot(root) == before                        # no file, no audit row, no genome row
    r = CliRunner().invoke(app, ["add", "--registry", str(root), "--genome",
                                 str(save_genome(mk(OTHER), root.parent / "walker.safetensors"))])
    assert r.exit_code == 2 and "another robot" in r.stderr and len(r.stderr.splitlines()) == 1
    assert snapshot(root) == before


def test_promote_refuses_another_robot_when_the_first_champion_defined_it(tmp_path):
    root = tmp_path / "reg"
    with Registry.init(root) as reg:
        x = reg.add(mk(OTHER))                             # no robot yet: a candidate may be anything
        a = reg.add(mk())
        reg.promote(a, force=True)                         # the first champion defines the robot
        assert reg.robot() == {"obs_dim": 4, "act_dim": 2, "discrete": False, "act_low": -1.0, "act_high": 1.0}
        n = len(reg.history())
        with pytest.raises(RegistryError, match="another robot"):
            reg.promote(x, force=True)
        assert reg.champion_id() == a and len(reg.history()) == n
        assert reg.verify().ok


def test_init_with_a_plant_records_its_robot(tmp_path):
    root = tmp_path / "reg"
    robot = robot_for_plant("cartpole")
    with Registry.init(root, robot=robot) as reg:
        assert reg.robot()["plant"] == "cartpole" and reg.robot()["obs_dim"] == 5
        with pytest.raises(RegistryError, match="another robot"):
            reg.add(mk())                                  # obs 4 is not the cartpole
        assert reg.verify().ok
    r = CliRunner().invoke(app, ["init", "--registry", str(tmp_path / "r2"), "--plant", "walker"])
    assert r.exit_code == 0, r.output
    with Registry(tmp_path / "r2") as reg:
        assert reg.robot()["plant"] == "walker"
    r = CliRunner().invoke(app, ["init", "--registry", str(tmp_path / "r3"), "--plant", "tractor"])
    assert r.exit_code == 2 and r.stderr.startswith("error: --plant") and len(r.stderr.splitlines()) == 1


@pytest.mark.parametrize("low, high, match", [(1.0, -1.0, "act_low 1.0 must be < act_high"),
                                              (float("nan"), 1.0, "act_low must be a finite"),
                                              (-1.0, float("inf"), "act_high must be a finite")])
def test_policy_spec_with_bad_action_bounds_is_refused(tmp_path, low, high, match):
    with pytest.raises(ValueError, match=match):
        PolicySpec(obs_dim=4, act_dim=2, hidden=(8,), discrete=False, act_low=low, act_high=high)
    # the same spec written into a file by hand: refused on load, and by `registry add`, with no trace
    g = mk()
    meta_text = genome_file_bytes(g)
    n = int.from_bytes(meta_text[:8], "little")
    header = json.loads(meta_text[8:8 + n])
    meta = json.loads(header["__metadata__"]["driftgate"])
    meta["policy_spec"]["act_low"], meta["policy_spec"]["act_high"] = low, high
    header["__metadata__"]["driftgate"] = json.dumps(meta)
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    path = tmp_path / "bad.safetensors"
    path.write_bytes(len(new).to_bytes(8, "little") + new + meta_text[8 + n:])
    with pytest.raises(GenomeFileError, match="act_"):
        load_genome(path)
    root = tmp_path / "reg"
    Registry.init(root).close()
    before = snapshot(root)
    r = CliRunner().invoke(app, ["add", "--registry", str(root), "--genome", str(path)])
    assert r.exit_code == 2 and "act_" in r.stderr and "Traceback" not in r.output
    assert len(r.stderr.strip().splitlines()) == 1
    assert snapshot(root) == before


def test_a_failed_add_transaction_removes_the_file_it_wrote(tmp_path, monkeypatch):
    root = tmp_path / "reg"
    with Registry.init(root) as reg:
        before = snapshot(root)
        from safety import audit

        def broken(*a, **k):
            raise sqlite3.OperationalError("disk I/O error")
        monkeypatch.setattr(audit, "append", broken)
        with pytest.raises(RegistryError):
            reg.add(mk())
        monkeypatch.undo()
    assert snapshot(root) == before


# ---------------------------------------------------------------------- bounded reads

def _registry_with_file(tmp_path):
    root = tmp_path / "reg"
    with Registry.init(root) as reg:
        gid = reg.add(mk())
        reg.promote(gid, force=True)
    return root, gid, root / "genomes" / f"{gid}.safetensors"


def test_genome_symlinked_to_dev_zero_is_refused_quickly(tmp_path):
    root, gid, path = _registry_with_file(tmp_path)
    path.unlink()
    os.symlink("/dev/zero", path)
    with Registry(root) as reg:
        with pytest.raises(GenomeIntegrityError, match="symlink"):
            reg.get(gid)
        assert not reg.verify().ok
    src = tmp_path / "zero.safetensors"
    os.symlink("/dev/zero", src)
    with pytest.raises(GenomeFileError, match="device"):
        load_genome(src)                                  # a user's path may be a link, never a device


def test_genome_that_is_a_named_pipe_does_not_hang(tmp_path):
    root, gid, path = _registry_with_file(tmp_path)
    path.unlink()
    os.mkfifo(path)
    result = {}

    def run():
        with Registry(root) as reg:
            try:
                reg.get(gid)
            except GenomeIntegrityError as e:
                result["error"] = str(e)
            result["verify"] = reg.verify().ok
    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(timeout=60)        # generous for a loaded machine; the read itself never blocks
    assert not th.is_alive(), "reading a FIFO genome blocked"
    assert "pipe" in result["error"] and result["verify"] is False
    fifo = tmp_path / "in.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(GenomeFileError, match="named pipe"):
        load_genome(fifo)


def test_a_huge_genome_file_is_refused_before_it_is_read(tmp_path):
    big = tmp_path / "big.safetensors"
    with open(big, "wb") as f:
        f.truncate(1 << 30)                               # 1 GB, sparse: costs no disk
    import resource
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(GenomeFileError, match="more than the"):
        load_genome(big)
    root = tmp_path / "reg"
    Registry.init(root).close()
    r = CliRunner().invoke(app, ["add", "--registry", str(root), "--genome", str(big)])
    assert r.exit_code == 2 and "more than the" in r.stderr
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 200 * 1024   # KiB: nothing big read


def test_symlinks_out_of_the_registry_are_not_followed(tmp_path):
    root, gid, path = _registry_with_file(tmp_path)
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes(path.read_bytes())                # identical bytes, outside the registry
    path.unlink()
    os.symlink(outside, path)
    with Registry(root) as reg:
        with pytest.raises(GenomeIntegrityError, match="symlink"):
            reg.champion()
    # the whole genomes directory replaced by a link elsewhere
    path.unlink()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / path.name).write_bytes(outside.read_bytes())
    os.rmdir(root / "genomes") if not any((root / "genomes").iterdir()) else None
    os.symlink(tmp_path / "elsewhere", root / "genomes")
    with Registry(root) as reg:
        with pytest.raises(GenomeIntegrityError, match="leads out of the registry"):
            reg.champion()
        with pytest.raises(RegistryError, match="leads out of the registry"):
            reg.add(mk())
    assert sorted(p.name for p in (tmp_path / "elsewhere").iterdir()) == [path.name]   # nothing written there


def test_text_that_is_not_utf8_in_the_database_is_a_clean_refusal(reg_root):
    """A damaged page can leave bytes in a TEXT column that Python cannot decode: every read and
    `verify` must end as a RegistryError / one-line exit 1, never a UnicodeDecodeError."""
    root, a, b, c = reg_root
    conn = sqlite3.connect(root / DB_NAME)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit SET actor = CAST(X'61ff62' AS TEXT) WHERE seq = 2")
    conn.execute("UPDATE genomes SET fitness = CAST(X'7bff7d' AS TEXT) WHERE id = ?", (c,))
    conn.commit()
    conn.close()
    with Registry(root) as reg:
        for read in (reg.list, reg.history, reg.verify):
            with pytest.raises(RegistryError, match="UTF-8"):
                read()
    r = CliRunner().invoke(app, ["verify", "--registry", str(root)])
    assert r.exit_code == 1 and r.exception is None or isinstance(r.exception, SystemExit)
    assert len(r.stderr.strip().splitlines()) == 1 and "UTF-8" in r.stderr


def test_a_parent_that_is_not_a_genome_id_is_refused(reg_root):
    root, a, *_ = reg_root
    before = snapshot(root)
    with Registry(root) as reg:
        with pytest.raises(RegistryError, match="not a genome id"):
            reg.add(mk(parent_id="../../etc"))
    assert snapshot(root) == before


def test_a_schema_damaged_into_bytes_that_are_not_utf8_is_refused_on_open(reg_root):
    """SQLite quotes the damaged schema in its error message; that message is not UTF-8 either."""
    root, *_ = reg_root
    db = root / DB_NAME
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(db.read_bytes())
    i = data.find(b"CREATE TABLE genomes")
    assert i > 0
    data[i + 7] = 0xa7                      # 'CREATE \xa7ABLE genomes': malformed schema, quoted back
    db.write_bytes(bytes(data))
    with pytest.raises(RegistryError, match="not a usable driftgate registry"):
        Registry(root)
    r = CliRunner().invoke(app, ["verify", "--registry", str(root)])
    assert r.exit_code == 1 and (r.exception is None or isinstance(r.exception, SystemExit))
    assert len(r.stderr.strip().splitlines()) == 1
