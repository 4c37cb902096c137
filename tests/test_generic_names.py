"""Generic means generic: controller/ and safety/ name no robot.

A robot is described by data (its robot profile, launch/robots/*.yaml, or a hand-coded plant in
sim/plants/), so every stage runs on a robot nobody here has seen. This test reads the code of
controller/ and safety/ with `ast` (docstrings and comments are prose and may cite an example) and
fails on:

* a robot's part name (a joint, body, actuator, geom, site or tendon of any built-in robot or
  shipped profile, or a ROS joint / command name of a profile) as a string constant or an identifier;
* a robot's name (a built-in plant or a shipped profile) used to pick behaviour: compared with
  ``==`` / ``!=`` / ``in``, a key of a dict literal, a subscript, or a ``match`` case.

A bare default (``robot: str = "..."``) is a setting's value, not a special case, and is allowed.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("controller", "safety")
# model names that are also ordinary words of the code, where they do not mean a robot's part:
# MuJoCo's world body and the ground, and words the code uses for its own concepts (a scenario's
# "target", a registry's "root", a ring buffer's "head" / "tail", a "base" value, the "body" of a
# message, an "imu" topic, Python's "object"; the authority "slot" and a "guard", which the
# manipulator's model also names: a peg's slot and a finger guard); a future profile may name parts so too.
GENERIC = {"", "world", "floor", "ground", "table", "object", "target", "goal", "root", "base", "body",
           "head", "tail", "imu", "left", "right", "slot", "guard"}


def robot_vocabulary() -> tuple[set[str], set[str]]:
    """(part names, robot names) of every built-in plant and shipped robot profile."""
    import mujoco

    from sim.plants import PLANTS, make_plant
    from sim.profile import builtin_profiles, load_profile

    models, parts, robots = [], set(), set(PLANTS)
    for name in PLANTS:
        models.append(make_plant(name).model)
    for name, path in builtin_profiles().items():
        profile = load_profile(path)
        robots |= {name, profile.name}
        models.append(profile.model)
        parts |= set(profile.ros_joints)
        parts |= {a.split(":", 1)[-1] for a in profile.doc.command.actuators}
    for model in models:
        for kind, count in (("joint", model.njnt), ("body", model.nbody), ("actuator", model.nu),
                            ("geom", model.ngeom), ("site", model.nsite), ("tendon", model.ntendon)):
            for i in range(count):
                parts.add(mujoco.mj_id2name(model, getattr(mujoco.mjtObj, f"mjOBJ_{kind.upper()}"), i) or "")
    return parts - GENERIC, robots - GENERIC


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                out.add(id(first.value))
    return out


def _strings(node: ast.AST | None) -> list[ast.Constant]:
    """The string constants of an expression that can stand for a value compared or looked up
    (itself, or the elements of a tuple / list / set literal)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [e for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return []


def scan_source(text: str, where: str, parts: set[str], robots: set[str]) -> list[str]:
    """Every robot-specific name in one module's code, as 'file:line: what'."""
    tree = ast.parse(text, where)
    docs, hits = _docstrings(tree), []

    def hit(node: ast.AST, what: str) -> None:
        hits.append(f"{where}:{getattr(node, 'lineno', '?')}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs \
                and node.value in parts:
            hit(node, f"part name {node.value!r}")
        for ident in _identifiers(node):
            if ident in parts:
                hit(node, f"identifier named after a part: {ident!r}")
        picked: list[ast.Constant] = []
        if isinstance(node, ast.Compare):
            for operand in [node.left, *node.comparators]:
                picked += _strings(operand)
        elif isinstance(node, ast.Dict):
            for key in node.keys:
                picked += _strings(key)
        elif isinstance(node, ast.Subscript):
            picked += _strings(node.slice)
        elif isinstance(node, ast.MatchValue):
            picked += _strings(node.value)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            picked += _strings(node.args[0]) if node.args else []
        for const in picked:
            if const.value in robots:
                hit(const, f"special case for robot {const.value!r}")
    return hits


def _identifiers(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, ast.arg):
        return [node.arg]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.keyword) and node.arg:
        return [node.arg]
    return []


def scan_tree(root: Path, parts: set[str], robots: set[str]) -> list[str]:
    hits = []
    for package in SCANNED:
        for path in sorted((root / package).rglob("*.py")):
            hits += scan_source(path.read_text(), str(path.relative_to(root)), parts, robots)
    return hits


@pytest.fixture(scope="module")
def vocabulary():
    return robot_vocabulary()


def test_vocabulary_knows_the_robots(vocabulary):
    """The scan is only as good as its word list: it must hold the shipped robots' parts and names."""
    parts, robots = vocabulary
    assert {"slider", "hinge_1", "pole_1", "slide", "right_hip", "wrist", "torso", "hip_1"} <= parts
    assert {"cartpole", "walker", "reacher", "ant", "pusher"} <= robots


def test_controller_and_safety_name_no_robot(vocabulary):
    hits = scan_tree(ROOT, *vocabulary)
    assert not hits, "robot-specific names in generic code (put them in the robot's profile or its " \
                     "plant in sim/plants/):\n" + "\n".join(hits)


@pytest.mark.parametrize("code, found", [
    ('LIMITS = {"cartpole": 1.8}', "special case for robot 'cartpole'"),
    ('def f(plant):\n    if plant != "cartpole":\n        raise ValueError(plant)', "special case for robot"),
    ('def f(p):\n    return p in ("walker", "reacher")', "special case for robot 'walker'"),
    ('def f(q):\n    return q.named["slider"]', "part name 'slider'"),
    ('def f(model):\n    return model.joint("hinge_1")', "part name 'hinge_1'"),
    ('def f(plant):\n    return plant.torso', "identifier named after a part: 'torso'"),
    ('def f(table):\n    return table.get("ant")', "special case for robot 'ant'"),
])
def test_scan_finds_each_kind_of_special_case(vocabulary, code, found):
    hits = scan_source(code, "<mutant>", *vocabulary)
    assert any(found in h for h in hits), hits


@pytest.mark.parametrize("code", [
    '"""An example: the cartpole\'s slider hits its end stop."""',
    'def f(robot: str = "cartpole"):\n    """Default robot: a setting, not a special case."""\n    return robot',
    'def f(plant):\n    return plant.joint_names.index(plant.hard_limits().state[0][0])',
])
def test_scan_passes_prose_defaults_and_data_driven_code(vocabulary, code):
    assert scan_source(code, "<ok>", *vocabulary) == []
