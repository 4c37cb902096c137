"""No import circles inside the package: the modules of controller/, adapters/, sim/ and safety/ form a
directed acyclic graph, so each can be read (and imported) after the ones it uses.

Every import statement counts, wherever it stands (module level, inside a function, under
`TYPE_CHECKING`): a lazy import still ties two modules together. The one implicit edge left out is
a submodule's dependence on its own package's ``__init__`` (a package that re-exports its submodules
is not a circle)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("controller", "adapters", "sim", "safety")
# Circles that another change is removing; each entry is a sorted list of module names.
KNOWN: list[list[str]] = []


def module_files(root: Path = ROOT) -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in (root / pkg).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            mods[name] = path
    return mods


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the package modules it imports (the longest known prefix of each imported name)."""
    def known(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for mod, path in mods.items():
        package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps.update(known(a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
                for a in node.names:          # `from pkg import submodule` names the submodule
                    deps.add(known(f"{base}.{a.name}") or known(base))
        graph[mod] = deps - {None, mod}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def test_the_package_has_no_import_circles():
    found = cycles(import_graph(module_files()))
    assert [c for c in found if c not in KNOWN] == []


def test_the_checker_finds_a_circle_through_a_lazy_import(tmp_path):
    """The checker itself can fail: a function-level import closing a loop is a circle."""
    (tmp_path / "sim").mkdir()
    (tmp_path / "sim" / "__init__.py").write_text("")
    (tmp_path / "sim" / "a.py").write_text("from sim.b import f\n")
    (tmp_path / "sim" / "b.py").write_text("def f():\n    from sim import a\n    return a\n")
    (tmp_path / "sim" / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                           "    from sim.d import X\n")
    (tmp_path / "sim" / "d.py").write_text("from .c import Y\n")
    found = cycles(import_graph(module_files(tmp_path)))
    assert found == [["sim.a", "sim.b"], ["sim.c", "sim.d"]]


# Which rooms a room may import (ARCHITECTURE.md): dependencies point inward, never back up.
MAY_IMPORT = {"sim": {"sim"}, "safety": {"safety", "sim"}, "controller": {"controller", "safety", "sim"},
              "adapters": {"adapters", "controller", "safety", "sim"}}


def room_violations(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{mod} imports {dep}" for mod, deps in graph.items() for dep in deps
                  if dep.split(".")[0] not in MAY_IMPORT[mod.split(".")[0]])


def test_imports_point_inward():
    """sim and safety never import controller or adapters; controller never imports adapters."""
    assert room_violations(import_graph(module_files())) == []


def test_the_room_check_finds_an_import_that_points_outward(tmp_path):
    for pkg in ("sim", "controller"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "controller" / "tick.py").write_text("X = 1\n")
    (tmp_path / "sim" / "plant.py").write_text("def f():\n    from controller.tick import X\n    return X\n")
    assert room_violations(import_graph(module_files(tmp_path))) == ["sim.plant imports controller.tick"]
