"""Mutation testing of the core: do the tests fail when the code is broken?

A small AST mutation engine (no extra dependency): for each module below it lists every mutation
site of these kinds, then runs a seeded sample of them against the module's own fast test files:

  binop     an arithmetic operator swapped (+ -, * /, ** *, // /, % *, @ stays)
  compare   a comparison flipped (< <=, > >=, == !=, is / is not, in / not in)
  boolop    `and` <-> `or`;  `not x` -> `x`;  `-x` -> `x`
  constant  a number changed (0 -> 1, 1 -> 0, n -> n + 1, x.y -> 2 * x.y), True <-> False
  delete    an expression statement (a call, an in-place update) replaced by `pass`
  return    `return X` -> `return None`

Why our own engine and not mutmut / cosmic-ray (both on the index): they mutate the working tree
in place (cosmic-ray) or run the whole suite per mutant through their own runner (mutmut), and a
full suite here is ~10 minutes on 2 cores. Here each mutant is written into a temporary copy of the
tree (the working tree is never touched) and only the module's fast test files run, with
`pytest -x` (the first failure kills the mutant) and a timeout of 3 x the unmutated run + 20 s.
Each run is a child forked from this process after it imported the heavy third-party libraries
(torch, MuJoCo, scipy) and none of the project's modules, so the child imports the mutant.

Per module it writes killed / survived / timed-out counts (a timeout counts as detected: the tests
noticed a hang), and every surviving mutant with the reason it is harmless (`EQUIVALENT` below) or
the test that now kills it. Target: >= 85 % detected per module.

    python benchmarks/mutation.py [--per-module 30] [--jobs 2] [--modules sim/srghn.py,...]
    python benchmarks/mutation.py --smoke [--out DIR]     # 3 mutants of one module, into a temp dir
    python benchmarks/mutation.py --list sim/srghn.py    # print every site of one module

Writes benchmarks/results/mutation.{json,md}.
"""
from __future__ import annotations

import argparse
import ast
import copy
import datetime
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

# module -> the fast test files that exercise it (the ones `make test` runs for it)
MODULES: dict[str, tuple[str, ...]] = {
    "safety/stats.py": ("tests/test_stats.py",),
    "sim/recovery.py": ("tests/test_recovery.py",),
    "sim/evolution.py": ("tests/test_srghn.py",),
    "sim/srghn.py": ("tests/test_srghn.py", "tests/test_srghn_decode.py"),
    "controller/drift/detectors.py": ("tests/test_drift_detectors.py", "tests/test_drift_properties.py",
                                      "tests/test_drift_monitor.py"),
    "safety/gate.py": ("tests/test_gate_rules.py", "tests/test_gate.py"),
}
COPIED = ("adapters", "controller", "safety", "sim", "tests", "launch", "resource", "setup.cfg", "setup.py",
          "package.xml")
TARGET = 0.85

# Surviving mutants that cannot be told apart from the original by any test, with the reason.
# Keyed by the mutant's id (module:line:col:kind:description).
EQUIVALENT: dict[str, str] = {
    "sim/evolution.py:115:14:constant:0 -> 1":
        "equivalent: `next_id = 0` is a dead store, overwritten by `next_id = P` two lines below",
}


# -- the engine ------------------------------------------------------------------------------------

BINOPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult,
          ast.FloorDiv: ast.Div, ast.Mod: ast.Mult}
CMPOPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
          ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.FloorDiv: "//",
          ast.Mod: "%", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
          ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in", ast.And: "and", ast.Or: "or"}


@dataclass(frozen=True)
class Mutant:
    module: str
    index: int          # position of the node in ast.walk order (how the mutant is re-applied)
    line: int
    col: int
    kind: str
    description: str

    @property
    def id(self) -> str:
        return f"{self.module}:{self.line}:{self.col}:{self.kind}:{self.description}"


def _docstring_nodes(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0]))
    return out


def _skipped(tree: ast.AST) -> set[int]:
    """Nodes not worth mutating: docstrings, type annotations, `__all__`, `from __future__`."""
    skip = _docstring_nodes(tree)
    for node in ast.walk(tree):
        ann = getattr(node, "annotation", None) or getattr(node, "returns", None)
        for sub in ([ann] if ann is not None else []):
            skip.update(id(n) for n in ast.walk(sub))
        if isinstance(node, ast.arguments):
            for a in node.args + node.kwonlyargs + node.posonlyargs:
                if a.annotation is not None:
                    skip.update(id(n) for n in ast.walk(a.annotation))
    return skip


def _sites(node: ast.AST) -> list[tuple[str, str]]:
    """(kind, description) of every mutation this one node allows."""
    if isinstance(node, ast.BinOp) and type(node.op) in BINOPS:
        return [("binop", f"{SYMBOL[type(node.op)]} -> {SYMBOL[BINOPS[type(node.op)]]}")]
    if isinstance(node, ast.AugAssign) and type(node.op) in BINOPS:
        return [("binop", f"{SYMBOL[type(node.op)]}= -> {SYMBOL[BINOPS[type(node.op)]]}=")]
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in CMPOPS:
        return [("compare", f"{SYMBOL[type(node.ops[0])]} -> {SYMBOL[CMPOPS[type(node.ops[0])]]}")]
    if isinstance(node, ast.BoolOp):
        other = ast.Or if isinstance(node.op, ast.And) else ast.And
        return [("boolop", f"{SYMBOL[type(node.op)]} -> {SYMBOL[other]}")]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        return [("boolop" if isinstance(node.op, ast.Not) else "binop",
                 "drop not" if isinstance(node.op, ast.Not) else "drop unary -")]
    if isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
        v = node.value
        if isinstance(v, bool):
            return [("constant", f"{v} -> {not v}")]
        return [("constant", f"{v!r} -> {_new_number(v)!r}")]
    if isinstance(node, ast.Expr) and not isinstance(node.value, ast.Constant):
        return [("delete", "statement -> pass")]
    if isinstance(node, ast.AugAssign):
        return [("delete", "statement -> pass")]
    if isinstance(node, ast.Return) and node.value is not None and not (
            isinstance(node.value, ast.Constant) and node.value.value is None):
        return [("return", "return X -> return None")]
    return []


def _new_number(v):
    if isinstance(v, int):
        return 1 if v == 0 else 0 if v == 1 else v + 1
    return 1.0 if v == 0 else 2.0 * v


def list_mutants(module: str) -> list[Mutant]:
    tree = ast.parse((ROOT / module).read_text())
    skip = _skipped(tree)
    out = []
    for i, node in enumerate(ast.walk(tree)):
        if id(node) in skip:
            continue
        for kind, desc in _sites(node):
            out.append(Mutant(module, i, getattr(node, "lineno", 0), getattr(node, "col_offset", 0), kind, desc))
    return out


class _Apply(ast.NodeTransformer):
    def __init__(self, target: ast.AST, kind: str):
        self.target, self.kind = target, kind

    def visit(self, node):
        if node is not self.target:
            return self.generic_visit(node)
        if self.kind == "delete":
            return ast.copy_location(ast.Pass(), node)
        if self.kind == "return":
            node.value = None
        elif isinstance(node, ast.BinOp) or isinstance(node, ast.AugAssign):
            node.op = BINOPS[type(node.op)]()
        elif isinstance(node, ast.Compare):
            node.ops = [CMPOPS[type(node.ops[0])]()]
        elif isinstance(node, ast.BoolOp):
            node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        elif isinstance(node, ast.UnaryOp):
            return ast.copy_location(node.operand, node)
        elif isinstance(node, ast.Constant):
            node.value = (not node.value) if isinstance(node.value, bool) else _new_number(node.value)
        return node


def mutated_source(mutant: Mutant | None, module: str) -> str:
    """The module's source with the mutant applied (None: unparsed unmutated, the baseline)."""
    tree = ast.parse((ROOT / module).read_text())
    if mutant is not None:
        target = list(ast.walk(tree))[mutant.index]
        assert getattr(target, "lineno", 0) == mutant.line, mutant
        tree = _Apply(target, mutant.kind).visit(tree)
        ast.fix_missing_locations(tree)
    return ast.unparse(tree) + "\n"


# -- running ---------------------------------------------------------------------------------------

def make_tree(dest: Path) -> Path:
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


# Third-party modules imported once by this process before it forks one child per test run: a
# mutant then costs its tests, not a fresh interpreter importing torch and MuJoCo (seconds each on a
# loaded 2-core machine). No project module is imported here, so every child imports the mutant.
PRELOAD = ("numpy", "scipy.stats", "scipy.linalg", "scipy.optimize", "torch", "mujoco", "yaml", "safetensors",
           "hypothesis", "pytest", "dm_control.suite", "gymnasium", "river.drift")


def preload() -> None:
    import importlib
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in PRELOAD:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - a missing optional one only costs time
                pass
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("sim", "safety", "controller", "adapters"))
    if leaked:
        raise SystemExit(f"preload imported project modules {leaked[:5]}: mutants would not be re-imported")


def _child(tree: Path, tests: tuple[str, ...], log: Path) -> None:
    """In the forked child: run pytest on `tests` inside `tree`, exit with its status."""
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.chdir(tree)
        os.environ.update(PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1",
                          MKL_NUM_THREADS="1", MUJOCO_GL="disable")
        sys.path.insert(0, str(tree))
        sys.dont_write_bytecode = True
        import pytest
        rc = pytest.main(["-x", "-q", "-p", "no:cacheprovider", "--no-header", *tests])
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(rc))
    except BaseException:  # noqa: BLE001
        os._exit(3)


def _first_failure(text: str, rc: int) -> str:
    return next((line.split(" ", 1)[1].split(" - ")[0] for line in text.splitlines()
                 if line.startswith(("FAILED ", "ERROR "))), f"pytest exit {rc}")


class Runner:
    """Up to `jobs` forked pytest runs at a time, each in a tree of its own (no threads: forking a
    threaded process is unsafe)."""

    def __init__(self, trees: list[Path], tests: tuple[str, ...]):
        self.free, self.tests = list(trees), tests

    def run(self, items: list, prepare, timeout: float, done) -> None:
        """For each item: prepare(item, tree) writes the mutant; done(item, status, wall, first)."""
        todo, running = list(items), {}
        while todo or running:
            while todo and self.free:
                item, tree = todo.pop(0), self.free.pop()
                prepare(item, tree)
                log = tree / ".mutation.log"
                pid = os.fork()
                if pid == 0:
                    _child(tree, self.tests, log)
                running[pid] = (item, tree, log, time.perf_counter())
            time.sleep(0.05)
            for pid, (item, tree, log, t0) in list(running.items()):
                got, status = os.waitpid(pid, os.WNOHANG)
                wall = time.perf_counter() - t0
                if got == 0 and wall < timeout:
                    continue
                if got == 0:
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                    _kill_group_leftovers(tree)
                    result = ("timeout", wall, "")
                else:
                    rc = os.waitstatus_to_exitcode(status)
                    text = log.read_text(errors="replace") if log.exists() else ""
                    result = ("passed", wall, "") if rc == 0 else ("failed", wall, _first_failure(text, rc))
                del running[pid]
                self.free.append(tree)
                done(item, *result)


def _kill_group_leftovers(tree: Path) -> None:
    """Child processes a timed-out test left behind (sandboxes, workers) whose cwd is the tree."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if Path(os.readlink(proc / "cwd")).is_relative_to(tree):
                os.kill(int(proc.name), 9)
        except (OSError, ValueError):
            pass


def run_module(module: str, mutants: list[Mutant], jobs: int, log=print) -> dict:
    tests = MODULES[module]
    work = Path(tempfile.mkdtemp(prefix="driftgate-mutation-"))
    original = mutated_source(None, module)
    try:
        trees = [make_tree(work / f"tree{j}") for j in range(jobs)]
        for t in trees:
            (t / module).write_text(original)
        base = {}
        Runner(trees[:1], tests).run([None], lambda m, t: None, 1800,
                                     lambda m, st, wall, first: base.update(status=st, wall=wall, first=first))
        if base["status"] != "passed":
            raise SystemExit(f"{module}: the tests fail on the unmutated (unparsed) module: {base['first']}")
        base_s = base["wall"]
        timeout = 3 * base_s + 20
        log(f"{module}: {len(mutants)} mutants, baseline {base_s:.1f} s, timeout {timeout:.0f} s")
        rows = {}

        def prepare(m: Mutant, tree: Path) -> None:
            (tree / module).write_text(mutated_source(m, module))

        def done(m: Mutant, status: str, wall: float, first: str) -> None:
            res = {**asdict(m), "id": m.id, "status": {"passed": "survived", "failed": "killed",
                                                       "timeout": "timed_out"}[status],
                   "wall_s": round(wall, 1), "killed_by": first}
            rows[m.index] = res
            log(f"  {res['status']:9s} {m.id}  {first}")

        Runner(trees, tests).run(mutants, prepare, timeout, done)
        rows = [rows[m.index] for m in mutants]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("killed", "survived", "timed_out")}
    detected = (counts["killed"] + counts["timed_out"]) / max(len(rows), 1)
    return {"module": module, "tests": list(tests), "baseline_s": round(base_s, 1), "timeout_s": round(timeout),
            **counts, "total": len(rows), "detected": round(detected, 3), "mutants": rows}


def sample(module: str, n: int, seed: int) -> tuple[list[Mutant], int]:
    every = list_mutants(module)
    rng = random.Random(f"{seed}:{module}")
    picked = every if n <= 0 or n >= len(every) else sorted(rng.sample(every, n), key=lambda m: m.index)
    return picked, len(every)


def write_results(out: Path, res: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "mutation.json").write_text(json.dumps(res, indent=1) + "\n")
    lines = ["# Mutation testing of the core", "",
             f"{res['date']} on `{res['machine']}`. Command: `{res['command']}` ({res['wall_s']:.0f} s wall, "
             f"{res['jobs']} processes, under `nice -n 10` on a shared machine).", "",
             "Each mutant is one small change to one module (see the docstring of `benchmarks/mutation.py` for the "
             "operators), written into a temporary copy of the tree; the module's test files run with `pytest -x`. "
             f"Mutants are a seeded sample ({res['per_module']} per module, seed {res['seed']}) of all the module's "
             "sites (`--per-module 0` runs every site: hours on 2 cores). Detected = killed + timed "
             f"out; target >= {TARGET:.0%} per module.", "",
             "| module | test files | sites | mutants run | killed | survived (equivalent) | timed out | detected "
             "| detected of the non-equivalent | target |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for m in res["modules"]:
        lines.append(f"| `{m['module']}` | {', '.join(Path(t).name for t in m['tests'])} | {m['sites']} | {m['total']} "
                     f"| {m['killed']} | {m['survived']} ({m['equivalent']}) | {m['timed_out']} | {m['detected']:.0%} "
                     f"| {m['detected_of_killable']:.0%} | {'met' if m['detected'] >= TARGET else 'MISSED'} |")
    if res.get("first_pass"):
        lines += ["", "First pass (before the tests added for its survivors): " + "; ".join(
            f"`{k}` {v['killed']} killed, {v['survived']} survived, {v['timed_out']} timed out"
            for k, v in res["first_pass"].items()) + "."]
    if res.get("survivors_rerun"):
        lines += ["", f"The survived and timed-out mutants of that run were run again on {res['survivors_rerun']['date']} "
                  "against the tests added for them (`--rerun-survivors`; a new test can only kill more); rows "
                  "marked `rerun` in the JSON."]
    lines += ["", "## Surviving mutants", ""]
    survivors = [(m, r) for m in res["modules"] for r in m["mutants"] if r["status"] == "survived"]
    if not survivors:
        lines.append("None.")
    for m, r in survivors:
        lines.append(f"- `{r['id']}`: {r.get('why') or 'NOT EXPLAINED'}")
    lines += ["", "## Mutants of the issue (applied by hand, each killed by a fast test in `make test`)", "",
              *[f"- {k}: {v}" for k, v in ISSUE_MUTANTS.items()], ""]
    (out / "mutation.md").write_text("\n".join(lines) + "\n")


ISSUE_MUTANTS = {
    "`tests/test_fast_eval.py`: the cart position squared the vector way in the batched reward "
    "(`per_scalar=False` in `sim/plants/cartpole.py`)":
        "tests/test_fast_eval.py::test_batched_reward_equals_the_one_plant_reward_where_the_squaring_path_matters "
        "(on this AMD EPYC; on a CPU whose `pow(x, 2)` always equals `x * x` the two paths are the same function)",
    "the stochastic head's rate replaced by a constant 0.5 after it is computed (`sim/srghn.py` `variation`)":
        "tests/test_srghn.py::test_evolved_rate_bounds_each_nodes_update, ::test_update_scales_with_the_heritable_rate",
    "`cf` ignored in selection (`sim/evolution.py`: parent_score = parent_fit)":
        "tests/test_srghn.py::test_child_credit_judges_a_parent_by_its_children, "
        "::test_parent_score_with_child_credit_is_the_weighted_mean",
    "parents never re-evaluated (`sim/evolution.py`: last generation's scores kept)":
        "tests/test_srghn.py::test_parents_are_re_evaluated_every_generation, "
        "::test_reported_champion_fitness_is_this_generations_evaluation",
}


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{platform.platform()}, {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def finish(res: dict) -> None:
    """Counts and reasons from the rows (after a run or a re-run of survivors)."""
    for m in res["modules"]:
        for row in m["mutants"]:
            row["why"] = EQUIVALENT.get(row["id"], "") if row["status"] == "survived" else ""
        m.update({s: sum(r["status"] == s for r in m["mutants"]) for s in ("killed", "survived", "timed_out")})
        m["total"] = len(m["mutants"])
        m["equivalent"] = sum(bool(r["why"]) for r in m["mutants"])
        m["detected"] = round((m["killed"] + m["timed_out"]) / max(m["total"], 1), 3)
        m["detected_of_killable"] = round((m["killed"] + m["timed_out"]) / max(m["total"] - m["equivalent"], 1), 3)


def rerun_survivors(out: Path, jobs: int) -> int:
    """Survivors (and timed-out mutants: on a loaded machine a slow kill can hit the timeout) of an
    earlier run, against the current tests: adding a test can only kill more."""
    res = json.loads((out / "mutation.json").read_text())
    preload()
    t0 = time.perf_counter()
    for m in res["modules"]:
        todo = [Mutant(**{k: r[k] for k in ("module", "index", "line", "col", "kind", "description")})
                for r in m["mutants"] if r["status"] in ("survived", "timed_out")]
        if not todo:
            continue
        m["tests"] = list(MODULES[m["module"]])
        again = {r["id"]: r for r in run_module(m["module"], todo, jobs, log=lambda s: print(s, flush=True))["mutants"]}
        for row in m["mutants"]:
            if row["id"] in again:
                row.update(again[row["id"]], rerun=True)
    res["survivors_rerun"] = {"date": now(), "wall_s": round(time.perf_counter() - t0, 1)}
    finish(res)
    write_results(out, res)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--per-module", type=int, default=10, help="mutants sampled per module (0: all sites)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--modules", default=",".join(MODULES))
    ap.add_argument("--list", metavar="MODULE", help="print every mutation site of MODULE and exit")
    ap.add_argument("--rerun-survivors", action="store_true",
                    help="re-run only the survived / timed-out mutants of --out/mutation.json (after tests were added)")
    ap.add_argument("--smoke", action="store_true", help="3 mutants of safety/stats.py, into --out or a temp dir")
    ap.add_argument("--render", action="store_true", help="only rewrite mutation.md from --out/mutation.json")
    args = ap.parse_args(argv)
    if args.list:
        for m in list_mutants(args.list):
            print(m.id)
        return 0
    if args.smoke:
        args.modules, args.per_module, args.jobs = "safety/stats.py", 3, 1
        if args.out.resolve() == RESULTS.resolve():
            args.out = Path(tempfile.mkdtemp(prefix="driftgate-smoke-"))
    modules = [m.strip() for m in args.modules.split(",") if m.strip()]
    unknown = sorted(set(modules) - set(MODULES))
    if unknown:
        raise SystemExit(f"--modules: unknown {unknown}; known: {list(MODULES)}")
    if args.rerun_survivors:
        return rerun_survivors(args.out, args.jobs)
    if args.render:
        res = json.loads((args.out / "mutation.json").read_text())
        finish(res)
        write_results(args.out, res)
        return 0
    preload()
    t0 = time.perf_counter()
    per_module = []
    cmd = "python benchmarks/mutation.py" + (" --smoke" if args.smoke else
                                             f" --per-module {args.per_module} --jobs {args.jobs}")
    res = {"benchmark": "mutation", "date": now(), "machine": machine(), "command": cmd, "seed": args.seed,
           "jobs": args.jobs, "per_module": args.per_module, "target_detected": TARGET, "modules": per_module}
    for module in modules:
        picked, sites = sample(module, args.per_module, args.seed)
        r = run_module(module, picked, args.jobs, log=lambda s: print(s, flush=True))
        r["sites"] = sites
        per_module.append(r)
        res["wall_s"] = round(time.perf_counter() - t0, 1)
        finish(res)
        write_results(args.out, res)              # after every module: a partial run still reports
    for m in per_module:
        print(f"{m['module']}: killed {m['killed']}, survived {m['survived']}, timed out {m['timed_out']} "
              f"of {m['total']} ({m['detected']:.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
