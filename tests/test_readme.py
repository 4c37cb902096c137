"""README.md says what the code does: its parameter snippets validate against the settings tree
(an old flat name fails), every `driftgate ...` command it shows exists with the options it uses,
and every repository path and module it names exists.

Why a test: the README is the first thing a user copies from; after the settings redesign every
example in it named parameters that the node now refuses. The checkers are plain functions that
return the problems they find, so each is also run on a known-bad text here (it must find it).
"""
from __future__ import annotations

import importlib
import importlib.util
import re
import shlex
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from adapters.cli import app
from controller.settings import (RENAMED, Settings, SettingsError, field_info, flatten, from_parameters,
                                 renamed_error, validate)

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")

# Nodes of a ros2_control setup (not driftgate's: their parameters are ros2_control's).
ROS2_CONTROL_NODES = ("controller_manager",)
# Parameters of other nodes or of rclpy that the README names in `key: value` form.
OTHER_PARAMETERS = {"command_timeout_s": "the simulated robot node (launch/demo.yaml)",
                    "use_sim_time": "rclpy's own"}
# Paths that exist only in a built package, never in the source tree.
BUILD_ONLY_PATHS = {"controller/assets/launch": "setup.py copies launch/*.yaml there when it builds a wheel"}
PROJECT_DIRS = ("controller", "sim", "adapters", "safety", "launch", "benchmarks", "tests")


def code_blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}[ \t]*\n(.*?)^```", text, flags=re.S | re.M)


def inline_spans(text: str) -> list[str]:
    """The `code` spans outside fenced blocks."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.findall(r"`([^`\n]+)`", prose)


# ------------------------------------------------------------------ (a) parameters and settings

def _ros_parameter_sections(doc, path=()):
    """(node path, ros__parameters mapping) for every node section in a parameter YAML."""
    if not isinstance(doc, dict):
        return
    for key, value in doc.items():
        if key == "ros__parameters":
            yield path, value
        elif isinstance(value, dict):
            yield from _ros_parameter_sections(value, (*path, key))


def _setting_problem(where: str, tree) -> str | None:
    """A replay configuration: the nested tree, mapping-valued settings as mappings."""
    try:
        validate(tree, where)
    except SettingsError as e:
        return str(e)
    return None


def _node_parameters_problem(where: str, params) -> str | None:
    """A driftgate_controller section: dotted names (nested here), mapping-valued settings as JSON
    text, checked the way the node takes them (`controller.settings.from_parameters`)."""
    if not isinstance(params, dict):
        return f"{where}: ros__parameters is not a mapping"
    flat = {k: v for k, v in flatten(params).items() if k not in OTHER_PARAMETERS}
    unknown = [k for k in flat if field_info(k) is None]
    if unknown:
        return f"{where}: " + (renamed_error(unknown) or f"unknown parameter(s) {unknown}")
    try:
        from_parameters(flat)
    except SettingsError as e:
        return f"{where}: {e}"
    return None


def yaml_problems(text: str) -> list[str]:
    """Every `ros__parameters` section of a driftgate node, and every replay configuration (a YAML
    whose top-level keys are the settings tree's), validated by `controller.settings.validate`."""
    problems = []
    for i, block in enumerate(code_blocks(text, "yaml")):
        try:
            doc = yaml.safe_load(block)
        except yaml.YAMLError as e:
            problems.append(f"yaml block {i}: not YAML: {e}")
            continue
        sections = list(_ros_parameter_sections(doc))
        if sections:
            cm = dict(sections).get(("controller_manager",), {}) or {}
            foreign = set(ROS2_CONTROL_NODES) | {k for k, v in cm.items() if isinstance(v, dict) and "type" in v}
            for path, params in sections:
                node = path[-1] if path else "?"
                if node in foreign:
                    continue          # a ros2_control node: its own parameters
                if node != "driftgate_controller":
                    problems.append(f"yaml block {i}: node {node!r} is neither driftgate_controller nor a "
                                    "ros2_control node of the same file (teach this test about it)")
                    continue
                p = _node_parameters_problem(f"yaml block {i} ({'/'.join(path)})", params)
                if p:
                    problems.append(p)
        elif isinstance(doc, dict) and set(map(str, doc)) & (set(Settings.model_fields) | set(RENAMED)):
            p = _setting_problem(f"yaml block {i} (replay config)", doc)
            if p:
                problems.append(p)
    return problems


def _name_problem(name: str, where: str) -> str | None:
    if field_info(name) is not None:
        return None
    new = RENAMED.get(name)
    return f"{where}: {name!r} " + (f"was renamed: use {new}" if new else "is no setting of controller/settings.py")


def parameter_problems(text: str) -> list[str]:
    """Parameter names in commands and prose: `--set K=V`, `-p K:=V`, `ros2 param set NODE K V`,
    `key: value` spans, and bare old flat names (`adapt_workers`)."""
    problems = []
    commands = [*code_blocks(text, "bash"), *inline_spans(text)]
    for chunk in commands:
        chunk = chunk.replace("\\\n", " ")
        for m in re.finditer(r"--set\s+([\w.]+)=", chunk):
            problems.append(_name_problem(m.group(1), "--set"))
        for m in re.finditer(r"(?<!\S)-p\s+([\w.]+):=", chunk):
            problems.append(_name_problem(m.group(1), "--ros-args -p"))
        for m in re.finditer(r"ros2 param set\s+\S+\s+([\w.]+)", chunk):
            problems.append(_name_problem(m.group(1), "ros2 param set"))
    for span in inline_spans(text):
        m = re.fullmatch(r"([a-z_][a-z0-9_.]*): .+", span)
        if m and m.group(1) not in OTHER_PARAMETERS:
            problems.append(_name_problem(m.group(1), f"`{span}`"))
        elif re.fullmatch(r"[a-z]+_[a-z0-9_]+", span) and span in RENAMED and field_info(span) is None:
            problems.append(f"`{span}`: old setting name, use {RENAMED[span]}")
    return [p for p in problems if p]


# ------------------------------------------------------------------ (b) driftgate commands

def driftgate_invocations(text: str) -> list[str]:
    out = []
    for block in code_blocks(text, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line.startswith("driftgate "):
                out.append(line)
    out += [s for s in inline_spans(text) if s.startswith("driftgate ")]
    return out


def _expand(words: list[str]) -> list[list[str]]:
    """`{a,b}` in a subcommand position stands for each of a, b."""
    for i, w in enumerate(words):
        m = re.fullmatch(r"\{([\w,-]+)\}", w)
        if m:
            return [v for alt in m.group(1).split(",") for v in _expand([*words[:i], alt, *words[i + 1:]])]
    return [words]


def resolve_command(line: str, words: list[str]):
    """(path, click command, problem) for one `driftgate ...` line, split into `words`."""
    words = [w for w in words[1:] if w.strip("[].")]          # `...` and `[` stand for nothing
    cmd = typer.main.get_command(app)
    path: list[str] = []
    while getattr(cmd, "commands", None) and words and not words[0].startswith("-"):
        name = words.pop(0)
        if name not in cmd.commands:
            return path, None, f"`{line}`: no command `driftgate {' '.join([*path, name])}`"
        path.append(name)
        cmd = cmd.commands[name]
    if getattr(cmd, "commands", None) and words and not words[0].startswith(("-", "[")):
        return path, None, f"`{line}`: `driftgate {' '.join(path)}` has no subcommand {words[0]!r}"
    known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
    for w in words:
        opt = w.strip("[]").split("=", 1)[0]
        if opt == "--ros-args":
            break
        if opt.startswith("--") and opt not in known:
            return path, cmd, f"`{line}`: `driftgate {' '.join(path)}` has no option {opt}"
    return path, cmd, None


def command_problems(text: str) -> tuple[list[str], set[tuple[str, ...]]]:
    problems, paths = [], set()
    for line in driftgate_invocations(text):
        try:
            head = shlex.split(line, comments=True)
        except ValueError:
            head = line.split()
        for words in _expand(head):
            path, _, problem = resolve_command(line, words)
            if problem:
                problems.append(problem)
            else:
                paths.add(tuple(path))
    return problems, paths


# ------------------------------------------------------------------ (c) paths and modules

_PATH = re.compile(rf"(?<![\w./-])((?:{'|'.join(PROJECT_DIRS)})/[\w./-]*)")


def path_problems(text: str) -> list[str]:
    problems = []
    spans = inline_spans(text) + re.findall(r"\]\(([^)\s]+)\)", text)
    for span in spans:
        for m in _PATH.finditer(span):
            rel = m.group(1).rstrip(".")
            if span[m.end():m.end() + 1] in ("<", "*") or rel in BUILD_ONLY_PATHS:
                continue         # a pattern (`champions/<plant>.safetensors`, `launch/*.yaml`) or built
            if not (ROOT / rel).exists():
                problems.append(f"`{span}`: {rel} does not exist")
        m = re.fullmatch(r"((?:controller|sim|adapters|safety)(?:\.\w+)+)(?::(\w+))?", span)
        if m:
            module, attr = m.groups()
            while module and importlib.util.find_spec(module) is None and "." in module:
                module, attr = module.rsplit(".", 1)[0], module.rsplit(".", 1)[1]   # pkg.module.Class
            if importlib.util.find_spec(module) is None:
                problems.append(f"`{span}`: no module {module}")
            elif attr and not hasattr(importlib.import_module(module), attr):
                problems.append(f"`{span}`: {module} has no {attr}")
    return problems


def layout_problems(text: str) -> list[str]:
    """The "Layout" table's rows name modules relative to their folder (`settings.py`, `rollout`,
    `ros/`): each must exist there."""
    problems = []
    for folder, rest in re.findall(r"^\| `(\w+)/` \|(.*)\|\s*$", text, flags=re.M):
        for span in re.findall(r"`([^`]+)`", rest):
            if "*" in span or not re.fullmatch(r"\w+(\.py|/)?", span):
                continue
            name = span.rstrip("/")
            if not any((ROOT / folder / c).exists() for c in (name, name + ".py")):
                problems.append(f"Layout, {folder}/: `{span}` does not exist")
    return problems


# ------------------------------------------------------------------ the README itself

def test_readme_parameter_yaml_validates_against_the_settings_tree():
    blocks = code_blocks(README, "yaml")
    assert any("driftgate_controller" in b and "ros__parameters" in b for b in blocks), \
        "README shows no driftgate_controller parameters any more: update this test"
    assert yaml_problems(README) == []


def test_readme_parameter_names_are_the_trees():
    assert parameter_problems(README) == []


def test_every_driftgate_command_in_the_readme_exists_with_its_options():
    problems, paths = command_problems(README)
    assert problems == []
    assert len(paths) >= 10, paths           # the extraction found the command table
    runner = CliRunner()
    for path in sorted(paths):
        r = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert r.exit_code == 0, (path, r.output)


def test_every_repository_path_and_module_in_the_readme_exists():
    assert path_problems(README) == []


def test_the_layout_table_names_modules_that_exist():
    assert re.search(r"^\| `controller/` \|", README, flags=re.M), "no Layout table any more: update this test"
    assert layout_problems(README) == []


# ------------------------------------------------------------------ the checkers find what they look for

@pytest.mark.parametrize("bad, needle", [
    ("```yaml\ndriftgate_controller:\n  ros__parameters:\n    rate_hz: 100.0\n```\n", "runtime.rate_hz"),
    ("```yaml\ndriftgate_controller:\n  ros__parameters:\n    runtime: {rate_hz: -1.0}\n```\n", "rate_hz"),
    ("```yaml\nmonitr: {config: ''}\nruntime: {}\n```\n", "monitr"),
    ("```yaml\nsome_node:\n  ros__parameters: {x: 1}\n```\n", "some_node"),
    ("```yaml\ndriftgate_controller:\n  ros__parameters:\n    guard: {joint_bounds: '{\"j\": [1]}'}\n```\n",
     "joint_bounds"),
])
def test_yaml_checker_refuses_old_and_unknown_names(bad, needle):
    problems = yaml_problems(bad)
    assert problems and needle in problems[0]


def test_yaml_checker_leaves_ros2_control_nodes_alone():
    good = ("```yaml\ncontroller_manager:\n  ros__parameters:\n    fwd: {type: a/B}\n"
            "fwd:\n  ros__parameters: {joints: [j]}\n```\n")
    assert yaml_problems(good) == []


@pytest.mark.parametrize("bad, needle", [
    ("```bash\ndriftgate node controller --set mode=shadow\n```\n", "runtime.mode"),
    ("`ros2 param set /driftgate_controller mode canary`", "runtime.mode"),
    ("```bash\ndriftgate node controller --ros-args -p mode:=shadow\n```\n", "runtime.mode"),
    ("`realtime_priority: 50`", "ros.realtime_priority"),
    ("local worker processes (`adapt_workers`)", "adapt.workers"),
])
def test_parameter_checker_refuses_old_names(bad, needle):
    problems = parameter_problems(bad)
    assert problems and needle in problems[0]


@pytest.mark.parametrize("bad, needle", [
    ("`driftgate calibrate --out x`", "no command"),
    ("`driftgate registry frobnicate --registry r`", "no command"),
    ("```bash\ndriftgate suite init --robot walker --out s.yaml --horizn 3\n```\n", "--horizn"),
    ("`driftgate node {controller,robot} --params p`", "node robot"),
])
def test_command_checker_refuses_unknown_commands_and_options(bad, needle):
    problems, _ = command_problems(bad)
    assert problems and needle in problems[0]


@pytest.mark.parametrize("bad", ["`controller/realtime.py`", "(`safety/nope/`)", "![x](benchmarks/results/no.png)",
                                 "`sim.plants.cartpole:no_such_reward`", "`controller.interim_sandbox`"])
def test_path_checker_refuses_missing_paths_and_modules(bad):
    assert path_problems(bad)


def test_layout_checker_refuses_a_module_that_moved():
    assert layout_problems("| `controller/` | the tick (`runtime.py`, `decisions.py`), `drift/` |\n") == \
        ["Layout, controller/: `decisions.py` does not exist"]


def test_every_path_in_architecture_md_exists():
    """ARCHITECTURE.md draws the tick and the adaptation with file paths: each must exist (a moved
    module makes the map wrong, which is worse than no map)."""
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    paths = {m.group(1).rstrip(".") for m in _PATH.finditer(text)}
    assert len(paths) > 20, sorted(paths)
    assert sorted(p for p in paths if not (ROOT / p).exists()) == []
