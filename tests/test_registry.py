"""Champion registry: transitions, one champion, rollback, file integrity, bad input, live cache, CLI.

Real files and a real SQLite database in tmp_path; no mocks.
"""
from __future__ import annotations

import json
import shutil
import sqlite3

import numpy as np
import pytest
from typer.testing import CliRunner

from adapters.cli_registry import app
from safety.policy_cache import FallbackCache
from safety.registry import STATUSES, GenomeIntegrityError, Registry, RegistryError
from safety.registry_schema import DB_NAME, TRANSITIONS
from sim.genome import Genome, save_genome
from sim.policy import PolicySpec, policy_act

SPEC = PolicySpec(obs_dim=4, act_dim=2, hidden=(8,))
_counter = iter(range(1, 10**9))


def mk(parent: str | None = None, value: float | None = None, **kw) -> Genome:
    """A small, unique policy genome."""
    v = float(next(_counter)) if value is None else value
    vec = np.linspace(-1, 1, SPEC.num_params, dtype=np.float32) * np.float32(v)
    return Genome(vector=vec, policy_spec=SPEC, kind="policy", parent_id=parent, **kw)


@pytest.fixture
def reg(tmp_path):
    r = Registry.init(tmp_path / "reg")
    yield r
    r.close()


def snapshot(reg: Registry) -> tuple:
    """Everything observable, to assert that a refused operation changed nothing."""
    return ([r.to_dict() for r in reg.list()], len(reg.history()), reg.champion_id())


def flip_byte(path, offset: int = -5) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def champion_chain(reg: Registry, n: int, stable: bool = True) -> list[str]:
    """n genomes, each the child of the last, each promoted (and marked stable)."""
    ids, parent = [], None
    for _ in range(n):
        gid = reg.add(mk(parent))
        reg.promote(gid, force=True, reason="test")
        if stable:
            reg.mark_stable(gid)
        ids.append(gid)
        parent = gid
    return ids


def make_status(reg: Registry, status: str) -> str:
    """A genome in `status`, reached only through legal operations."""
    if reg.champion_id() is None:
        champion_chain(reg, 1)
    champ = reg.champion_id()
    if status == "champion":
        return champ
    gid = reg.add(mk(champ))
    path = {"candidate": [], "shadow": ["shadow"], "canary": ["shadow", "canary"],
            "rejected": ["rejected"]}
    if status in path:
        for s in path[status]:
            reg.set_status(gid, s)
        return gid
    reg.promote(gid, force=True)
    if status == "stable":
        reg.mark_stable(gid)
    reg.promote(reg.add(mk(gid)), force=True)  # replace it: stable stays stable, else retired
    assert reg.show(gid).status == status
    return gid


# --- transitions -------------------------------------------------------------------------------

@pytest.mark.parametrize("src", STATUSES)
def test_set_status_follows_the_transition_table(reg, src):
    for dst in STATUSES:
        gid = make_status(reg, src)
        before = snapshot(reg)
        if TRANSITIONS.get((src, dst)) == "set_status":
            reg.set_status(gid, dst, reason="test")
            assert reg.show(gid).status == dst
            assert reg.history(gid)[-1].to_status == dst
        else:
            with pytest.raises(RegistryError, match="illegal transition"):
                reg.set_status(gid, dst)
            assert snapshot(reg) == before


@pytest.mark.parametrize("src", STATUSES)
def test_forced_promotion_only_from_the_pre_champion_statuses(reg, src):
    gid = make_status(reg, src)
    before = snapshot(reg)
    if src in ("candidate", "shadow", "canary"):
        reg.promote(gid, force=True, reason="bootstrap")
        assert reg.champion_id() == gid
        ev = reg.history(gid)[-1].evidence_obj
        assert ev["forced"] is True and "without a gate" in ev["gate"]
    else:
        with pytest.raises(RegistryError):
            reg.promote(gid, force=True)
        assert snapshot(reg) == before


def test_gated_promotion_needs_a_canary_with_a_pass_report(reg):
    champion_chain(reg, 1)
    gid = reg.add(mk(reg.champion_id()))
    with pytest.raises(RegistryError, match="illegal transition candidate -> champion"):
        reg.promote(gid)
    reg.set_status(gid, "shadow")
    reg.set_status(gid, "canary")
    with pytest.raises(RegistryError, match="no gate report"):
        reg.promote(gid)
    for verdict in ("FAIL", "INCONCLUSIVE"):
        reg.attach_gate_report(gid, {"verdict": verdict, "reasons": ["x"]})
        before = snapshot(reg)
        with pytest.raises(RegistryError, match=verdict):
            reg.promote(gid)
        assert snapshot(reg) == before
    rid = reg.attach_gate_report(gid, {"verdict": "PASS", "reasons": [], "scenarios": []})
    reg.promote(gid, reason="gate passed")
    assert reg.champion_id() == gid
    ev = reg.history(gid)[-1].evidence_obj
    assert ev["forced"] is False and ev["gate"]["report_id"] == rid and ev["gate"]["verdict"] == "PASS"
    assert [g.verdict for g in reg.gate_reports(gid)] == ["FAIL", "INCONCLUSIVE", "PASS"]
    assert reg.verify().ok


def test_mark_stable_only_for_the_champion_and_once(reg):
    a, = champion_chain(reg, 1, stable=False)
    b = reg.add(mk(a))
    with pytest.raises(RegistryError, match="only the current champion"):
        reg.mark_stable(b)
    reg.mark_stable(a)
    with pytest.raises(RegistryError, match="already"):
        reg.mark_stable(a)
    assert reg.show(a).stable and reg.show(a).status == "champion"


# --- exactly one champion ----------------------------------------------------------------------

def test_exactly_one_champion_and_the_old_one_is_demoted_in_the_same_step(reg):
    assert reg.champion() is None and reg.champion_id() is None
    a = reg.add(mk())
    reg.promote(a, force=True)
    reg.mark_stable(a)
    b = reg.add(mk(a))
    reg.promote(b, force=True)           # a was confirmed: stays stable
    c = reg.add(mk(b))
    reg.promote(c, force=True)           # b never confirmed: retired
    assert [r.id for r in reg.list("champion")] == [c]
    assert (reg.show(a).status, reg.show(b).status) == ("stable", "retired")
    row = reg.history(c)[-1]
    assert row.action == "promote" and row.evidence_obj["replaced"] == {"id": b, "from": "champion",
                                                                        "to": "retired"}
    with pytest.raises(RegistryError, match="already the champion"):
        reg.promote(c, force=True)


def test_database_itself_refuses_a_second_champion(reg):
    a, b = champion_chain(reg, 2)
    conn = sqlite3.connect(reg.db_path)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE genomes SET status = 'champion' WHERE id = ?", (a,))
    conn.close()


# --- rollback ----------------------------------------------------------------------------------

def _chain_for_rollback(reg):
    """root(stable) -> a(stable) -> b(retired, never confirmed) -> c(champion)."""
    root, a = champion_chain(reg, 2)
    b = reg.add(mk(a))
    reg.promote(b, force=True)
    c = reg.add(mk(b))
    reg.promote(c, force=True)
    return root, a, b, c


def test_rollback_goes_to_the_nearest_stable_ancestor(reg):
    root, a, b, c = _chain_for_rollback(reg)
    assert reg.fallback_id() == a and reg.fallback().id == a
    assert reg.rollback(reason="live degradation") == a
    assert reg.champion_id() == a and reg.champion().id == a
    assert reg.show(c).status == "rejected" and reg.show(b).status == "retired"
    row = reg.history()[-1]
    assert (row.action, row.genome_id, row.from_status, row.to_status) == ("rollback", a, "stable", "champion")
    assert row.evidence_obj["replaced"] == {"id": c, "from": "champion", "to": "rejected"}
    # a was confirmed, so rolling back from it keeps it stable
    assert reg.rollback() == root
    assert reg.show(a).status == "stable" and reg.champion_id() == root
    with pytest.raises(RegistryError, match="no stable ancestor"):
        reg.rollback()
    assert reg.verify().ok


def test_rollback_to_a_named_stable_genome(reg):
    root, a, b, c = _chain_for_rollback(reg)
    assert reg.rollback(to=root, reason="operator") == root
    assert reg.champion_id() == root and reg.show(a).status == "stable"
    assert reg.history()[-1].evidence_obj["named"] is True


@pytest.mark.parametrize("which", ["b", "c", "unknown"])
def test_rollback_to_a_non_stable_genome_is_refused(reg, which):
    root, a, b, c = _chain_for_rollback(reg)
    target = {"b": b, "c": c, "unknown": "0" * 32}[which]
    before = snapshot(reg)
    with pytest.raises(RegistryError):
        reg.rollback(to=target)
    assert snapshot(reg) == before


def test_rollback_without_a_champion_is_refused(reg):
    with pytest.raises(RegistryError, match="no champion"):
        reg.rollback()


def test_rollback_skips_a_corrupt_stable_ancestor_and_says_so(reg):
    root, a, b, c = _chain_for_rollback(reg)
    flip_byte(reg.genome_dir / f"{a}.safetensors")
    assert reg.fallback().id == root
    assert reg.rollback() == root
    skipped = reg.history()[-1].evidence_obj["skipped_corrupt"]
    assert [s["id"] for s in skipped] == [a]
    with pytest.raises(GenomeIntegrityError):
        reg.rollback(to=a)


def test_lineage_walks_back_to_the_root(reg):
    root, a, b, c = _chain_for_rollback(reg)
    assert [r.id for r in reg.lineage(c)] == [c, b, a, root]
    assert [r.id for r in reg.lineage(root)] == [root]


# --- file integrity ----------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "swap"])
def test_corrupt_champion_file_is_refused_by_champion_and_verify(reg, damage):
    a, = champion_chain(reg, 1)
    path = reg.genome_dir / f"{a}.safetensors"
    if damage == "flip":
        flip_byte(path)
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:-40])
    elif damage == "delete":
        path.unlink()
    else:  # same weights, doctored metadata: the content id still matches, the file hash does not
        save_genome(reg.get(a).with_lineage(generation=99, fitness={"mean": 1e9}), path)
    with pytest.raises(GenomeIntegrityError, match=a):
        reg.champion()
    res = reg.verify()
    assert not res.ok and a in res.first_problem
    assert reg.champion_id() == a  # the index is untouched


def test_corrupt_candidate_cannot_be_promoted_and_the_champion_stays(reg):
    a, = champion_chain(reg, 1)
    b = reg.add(mk(a))
    flip_byte(reg.genome_dir / f"{b}.safetensors", offset=-3)
    before = snapshot(reg)
    with pytest.raises(GenomeIntegrityError):
        reg.promote(b, force=True)
    assert snapshot(reg) == before and reg.champion().id == a


def test_same_content_is_added_once(reg, tmp_path):
    g = mk()
    gid = reg.add(g)
    assert reg.add(g) == gid
    f = save_genome(g, tmp_path / "g.safetensors")
    assert reg.add(f) == gid
    assert len(reg.list()) == 1 and [r.action for r in reg.history(gid)] == ["add"]
    other = reg.add(mk())
    with pytest.raises(RegistryError, match="already registered with parent"):
        reg.add(g, parent_id=other)


def test_add_from_file_records_lineage_and_metadata(reg, tmp_path):
    root = reg.add(mk())
    g = mk(root, generation=7, drift_hash="d" * 16, fitness={"mean": 1.5})
    gid = reg.add(save_genome(g, tmp_path / "child.safetensors"))
    rec = reg.show(gid)
    assert (rec.parent_id, rec.generation, rec.drift_hash, rec.fitness, rec.status) == \
        (root, 7, "d" * 16, {"mean": 1.5}, "candidate")
    assert reg.get(gid).id == gid


def test_add_refuses_an_unknown_parent_but_accepts_an_override(reg, tmp_path):
    g = mk("f" * 32)
    before = snapshot(reg)
    with pytest.raises(RegistryError, match="not in the registry"):
        reg.add(g)
    assert snapshot(reg) == before
    assert reg.show(reg.add(g, parent_id=None)).parent_id is None


def test_add_refuses_a_corrupt_file(reg, tmp_path):
    f = save_genome(mk(), tmp_path / "bad.safetensors")
    flip_byte(f, offset=-2)
    with pytest.raises(RegistryError, match="cannot add"):
        reg.add(f)
    assert reg.list() == []


# --- bad input ---------------------------------------------------------------------------------

def test_unknown_and_malformed_ids(reg):
    for bad in ("0" * 32, "../../etc/passwd", "ABC", 42):
        with pytest.raises(RegistryError):
            reg.show(bad)
        with pytest.raises(RegistryError):
            reg.promote(bad, force=True)
    with pytest.raises(RegistryError, match="unknown status"):
        reg.list("winner")
    with pytest.raises(RegistryError, match="unknown status"):
        reg.set_status(reg.add(mk()), "winner")


def test_a_directory_that_is_not_a_registry(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(RegistryError, match="not a driftgate registry"):
        Registry(missing)
    assert not missing.exists()
    other = tmp_path / "other"
    other.mkdir()
    sqlite3.connect(other / DB_NAME).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(RegistryError, match="not a driftgate registry"):
        Registry(other)
    with pytest.raises(RegistryError, match="something else"):
        Registry.init(other)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / DB_NAME).write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(RegistryError):
        Registry(tmp_path / "junk")


def test_gate_report_must_be_plain_json_and_is_tamper_evident(reg):
    gid = reg.add(mk())
    before = snapshot(reg)
    with pytest.raises(RegistryError, match="plain JSON"):
        reg.attach_gate_report(gid, {"verdict": "PASS", "ci": float("nan")})
    with pytest.raises(RegistryError, match="JSON object"):
        reg.attach_gate_report(gid, ["PASS"])
    assert snapshot(reg) == before
    reg.attach_gate_report(gid, {"verdict": "FAIL", "reasons": ["saturates"]})
    assert reg.verify().ok
    conn = sqlite3.connect(reg.db_path)
    conn.execute("""UPDATE gate_reports SET report = '{"verdict":"PASS"}'""")
    conn.commit()
    conn.close()
    res = reg.verify()
    assert not res.ok and "gate report" in res.first_problem


def test_reopened_registry_sees_everything(reg):
    ids = champion_chain(reg, 3)
    reg.close()
    with Registry(reg.root) as again:
        assert again.champion_id() == ids[-1] and again.verify().ok
        assert Registry.init(reg.root).champion_id() == ids[-1]  # init of an existing one is harmless


# --- live side ---------------------------------------------------------------------------------

def test_fallback_cache_serves_from_memory(reg, tmp_path):
    root, a, b, c = _chain_for_rollback(reg)
    cache = FallbackCache()
    assert cache.snapshot() == (None, None)
    assert cache.refresh(reg) is True and cache.version == 1
    champ, fb = cache.snapshot()
    assert (champ.genome_id, fb.genome_id) == (c, a)
    assert champ.spec == SPEC and not champ.weights.flags.writeable
    assert cache.refresh(reg) is False and cache.version == 1
    reg.rollback()
    assert cache.refresh(reg) is True
    assert (cache.champion.genome_id, cache.fallback.genome_id) == (a, root)
    # the tick needs no disk: the registry can vanish and the snapshot still acts
    reg.close()
    shutil.rmtree(reg.root)
    act = policy_act(cache.champion.spec, cache.champion.weights, np.zeros(SPEC.obs_dim, np.float32))
    assert act.shape == (1,)


def test_fallback_cache_keeps_the_previous_champion_when_the_new_file_is_corrupt(reg):
    a, = champion_chain(reg, 1)
    cache = FallbackCache()
    cache.refresh(reg)
    b = reg.add(mk(a))
    reg.promote(b, force=True)
    flip_byte(reg.genome_dir / f"{b}.safetensors")
    with pytest.raises(GenomeIntegrityError):
        cache.refresh(reg)
    assert cache.champion.genome_id == a


def test_fallback_cache_refuses_a_genome_it_cannot_decode(reg):
    g = Genome(vector=np.ones(10, np.float32), policy_spec=SPEC, kind="srghn", model={"w": 1})
    gid = reg.add(g)
    reg.promote(gid, force=True)
    with pytest.raises(RegistryError, match=rf"genome {gid}: cannot decode its policy: .*unknown key\(s\) \['w'\]"):
        FallbackCache().refresh(reg)
    cache = FallbackCache(decode=lambda gen: (SPEC, np.zeros(SPEC.num_params, np.float32)))
    assert cache.refresh(reg) and cache.champion.genome_id == gid


# --- CLI ---------------------------------------------------------------------------------------

def _cli(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_round_trip(tmp_path):
    d = tmp_path / "reg"
    assert _cli("init", "--registry", d).exit_code == 0
    f1 = save_genome(mk(), tmp_path / "a.safetensors")
    r = _cli("add", "--registry", d, "--genome", f1)
    assert r.exit_code == 0, r.output
    a = r.stdout.strip()
    assert len(a) == 32 and r.stdout == a + "\n"
    assert _cli("promote", "--registry", d, a[:8]).stdout.strip() == a
    assert _cli("mark-stable", "--registry", d, a).exit_code == 0
    f2 = save_genome(mk(), tmp_path / "b.safetensors")
    b = _cli("add", "--registry", d, "--genome", f2, "--parent", a).stdout.strip()
    assert _cli("promote", "--registry", d, b).exit_code == 0

    r = _cli("list", "--registry", d)
    assert r.exit_code == 0 and a in r.stdout and b in r.stdout and "champion" in r.stdout
    rows = json.loads(_cli("list", "--registry", d, "--json").stdout)
    assert {x["id"]: x["status"] for x in rows} == {a: "stable", b: "champion"}
    assert [x["id"] for x in json.loads(_cli("list", "--registry", d, "--status", "stable",
                                             "--json").stdout)] == [a]
    shown = json.loads(_cli("show", "--registry", d, b).stdout)
    assert shown["parent_id"] == a and shown["status"] == "champion"
    promo = [h for h in shown["history"] if h["action"] == "promote"][0]
    assert promo["evidence"]["forced"] is True and "without a gate" in promo["evidence"]["gate"]
    lines = _cli("lineage", "--registry", d, b).stdout.splitlines()
    assert [ln.split()[0] for ln in lines] == [b, a]

    r = _cli("rollback", "--registry", d)
    assert r.exit_code == 0 and r.stdout.strip() == a
    r = _cli("verify", "--registry", d)
    assert r.exit_code == 0 and r.stdout.startswith("ok:")
    assert json.loads(_cli("verify", "--registry", d, "--json").stdout)["ok"] is True

    conn = sqlite3.connect(d / DB_NAME)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 3")
    conn.commit()
    conn.close()
    r = _cli("verify", "--registry", d)
    assert r.exit_code == 1 and "seq=3" in r.stderr


def test_cli_errors_are_one_clear_line(tmp_path):
    d = tmp_path / "reg"
    r = _cli("list", "--registry", d)
    assert r.exit_code == 2 and "not a driftgate registry" in r.stderr and not d.exists()   # bad input
    _cli("init", "--registry", d)
    for args in (["promote", "--registry", d, "0" * 32],
                 ["show", "--registry", d, "zzz"],
                 ["add", "--registry", d, "--genome", tmp_path / "missing.safetensors"],
                 ["rollback", "--registry", d],
                 ["list", "--registry", d, "--status", "winner"]):
        r = _cli(*args)
        assert r.exit_code == 2, args                       # bad input: 2, as every driftgate command
        assert r.stderr.startswith("error: ") and "Traceback" not in r.output
        assert r.stdout == ""
    assert _cli("verify", "--registry", d).exit_code == 0
