"""The package's declarations agree with each other: setup.py, package.xml, environment.yml and the
shipped parameter file.

Why: three installs (pip, colcon/rosdep, RoboStack) read three different lists of dependencies, and
the node's parameter file claims to list every parameter. Each list drifted from the code before
(issue 16); these tests make the next drift fail in `make test`.
"""
from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# setup.py requirement name -> rosdep key (rosdistro rosdep/python.yaml); None: no key, a
# `<!-- pip: name -->` comment in package.xml instead
ROSDEP = {
    "numpy": "python3-numpy",
    "torch": "python3-torch",
    "mujoco": "python3-mujoco-pip",
    "dm-control": None,
    "gymnasium": "python3-gymnasium-pip",
    "river": "python3-river-pip",
    "cma": None,
    "safetensors": None,
    "ray": None,
    "typer": "python3-typer",
    "rich": "python3-rich",
    "matplotlib": "python3-matplotlib",
    "pyyaml": "python3-yaml",
    "scipy": "python3-scipy",
    "mcap": None,
    "mcap-ros2-support": "mcap-ros2-support",
    "rosbags": "python3-rosbags-pip",
    "pydantic": "python3-pydantic",
}
# setup.py requirement name -> conda-forge package (environment.yml); "pip:" prefix: its pip section
CONDA = {
    "numpy": "numpy",
    "torch": "pytorch-cpu",
    "mujoco": "pip:mujoco",
    "dm-control": "pip:dm-control",
    "gymnasium": "gymnasium",
    "river": "river",
    "cma": "cma",
    "safetensors": "safetensors",
    "ray": "ray-core",
    "typer": "typer",
    "rich": "rich",
    "matplotlib": "matplotlib-base",
    "pyyaml": "pyyaml",
    "scipy": "scipy",
    "mcap": "pip:mcap",
    "mcap-ros2-support": "pip:mcap-ros2-support",
    "rosbags": "rosbags",
    "pydantic": "pydantic",
}
# ROS packages that are not message packages but are imported at run time (nodes, launch files)
ROS_RUNTIME = {"rclpy", "launch", "launch_ros", "ament_index_python", "lifecycle_msgs"}


def _setup_lists() -> dict[str, list[str]]:
    """INSTALL_REQUIRES / ROS_REQUIRES / DEV_REQUIRES as written in setup.py (read, not executed)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.List):
            for t in node.targets:
                if isinstance(t, ast.Name) and t.id.endswith("_REQUIRES"):
                    out[t.id] = [ast.literal_eval(e) for e in node.value.elts]
    return out


def _name(req: str) -> str:
    return re.split(r"[\[<>=!~;\s]", req, maxsplit=1)[0].strip().lower().replace("_", "-")


def _spec(req: str) -> str:
    return re.sub(r"^[A-Za-z0-9_.\-]+(\[[^\]]*\])?", "", req).split(";")[0].strip()


def _package_xml():
    text = (ROOT / "package.xml").read_text()
    root = ET.fromstring(text)
    deps = {e.text.strip() for e in root.iter("exec_depend")}
    pip = set(re.findall(r"<!--\s*pip:\s*([A-Za-z0-9_.\-]+)\s*-->", text))
    return deps, pip


def _imported_ros_packages() -> set[str]:
    """Top-level ROS packages the shipped code imports (`*_msgs`, `*_srvs`, rclpy, launch...)."""
    found = set()
    pat = re.compile(r"^\s*(?:from|import)\s+([a-z_]+(?:_msgs|_srvs|_interfaces)|rclpy|launch_ros|launch|"
                     r"ament_index_python)\b", re.M)
    for d in ("adapters", "controller", "sim", "safety", "launch"):
        for p in (ROOT / d).rglob("*.py"):
            found |= set(pat.findall(p.read_text()))
    return found


def test_every_setup_requirement_has_a_rosdep_key_or_a_pip_note():
    reqs = {_name(r) for r in _setup_lists()["INSTALL_REQUIRES"]}
    assert reqs == set(ROSDEP), f"mapping table out of date: {sorted(reqs ^ set(ROSDEP))}"
    deps, pip = _package_xml()
    for name in sorted(reqs):
        key = ROSDEP[name]
        if key is None:
            assert name in pip, f"package.xml: {name} has no rosdep key and no <!-- pip: {name} --> line"
        else:
            assert key in deps, f"package.xml: missing <exec_depend>{key}</exec_depend> for {name}"
    # nothing declared that setup.py does not require (stale keys)
    python_keys = {d for d in deps if d.startswith("python3-") or d == "mcap-ros2-support"}
    assert python_keys == {k for k in ROSDEP.values() if k}, sorted(python_keys ^ {k for k in ROSDEP.values() if k})
    assert pip == {n for n, k in ROSDEP.items() if k is None}


def test_package_xml_declares_exactly_the_ros_packages_the_code_uses():
    deps, _ = _package_xml()
    ros_deps = {d for d in deps if not d.startswith("python3-") and d != "mcap-ros2-support"}
    used = _imported_ros_packages()
    assert used - ros_deps == set(), f"imported but not in package.xml: {sorted(used - ros_deps)}"
    assert ros_deps - used == set(), f"in package.xml but never imported: {sorted(ros_deps - used)}"
    # the `ros` extra (PyPI wheels for a plain venv) carries the same packages, launch aside
    extra = {_name(r).removeprefix("ros-").replace("-", "_") for r in _setup_lists()["ROS_REQUIRES"]}
    assert extra == ros_deps - {"launch", "launch_ros"}, sorted(extra ^ (ros_deps - {"launch", "launch_ros"}))


def _environment():
    doc = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, pip = {}, {}
    for d in doc["dependencies"]:
        if isinstance(d, dict):
            for p in d.get("pip", []):
                pip[_name(p)] = _spec(p)
        else:
            m = re.match(r"([A-Za-z0-9_.\-]+)\s*(.*)", d)
            conda[m.group(1).lower()] = m.group(2).replace(" ", "")
    return doc, conda, pip


def test_environment_yml_is_robostack_kilted_and_covers_setup_requirements():
    doc, conda, pip = _environment()
    assert doc["channels"][0] == "robostack-kilted" and "conda-forge" in doc["channels"]
    assert "defaults" not in doc["channels"]
    reqs = {_name(r): _spec(r) for r in _setup_lists()["INSTALL_REQUIRES"]}
    assert set(reqs) == set(CONDA), f"mapping table out of date: {sorted(set(reqs) ^ set(CONDA))}"
    for name, spec in reqs.items():
        where = CONDA[name]
        if where.startswith("pip:"):
            assert where[4:] in pip, f"environment.yml: {name} missing from the pip section"
            got = pip[where[4:]]
        else:
            assert where in conda, f"environment.yml: {name} ({where}) missing"
            got = conda[where]
        if spec.startswith("=="):     # an exact requirement of setup.py holds in the environment too
            assert got.lstrip("=") == spec[2:], f"environment.yml: {name} {got!r}, setup.py {spec!r}"
        elif spec:                    # a range: the same lower bound, no pin of the venv's lock file
            assert got == spec, f"environment.yml: {name} {got!r}, setup.py {spec!r}"
    # ROS from RoboStack: every ROS package of package.xml, and none of the `ros` extra's PyPI wheels
    deps, _ = _package_xml()
    for d in deps:
        if not d.startswith("python3-") and d != "mcap-ros2-support":
            assert f"ros-kilted-{d.replace('_', '-')}" in conda, f"environment.yml: no ros-kilted package for {d}"
    assert not any(n.startswith("ros-") for n in pip), "environment.yml: ROS from PyPI wheels in the pip section"
    assert not any("constraints" in str(p) for p in pip), "the venv's constraints must not reach the conda env"


def test_readme_robostack_section_installs_without_the_ros_extra_and_without_pins():
    text = (ROOT / "README.md").read_text()
    m = re.search(r"\n## Installing into an existing ROS 2 / RoboStack environment\n(.*?)\n## ", text, re.S)
    assert m, "README: the RoboStack section is missing"
    section = m.group(1)
    assert "environment.yml" in section
    cmds = [ln.split("#")[0] for ln in section.splitlines() if ln.strip().startswith("pip install")]
    assert cmds, "README: no pip command in the RoboStack section"
    for c in cmds:
        assert "[ros" not in c and "constraints" not in c, c


def test_parameter_file_lists_every_declared_parameter():
    pytest.importorskip("rclpy")    # the node module needs rclpy (not driftgate) to import
    from adapters.cli_node import load_node_params
    from adapters.ros.controller_node import NODE_NAME, PARAMETERS
    given = load_node_params(ROOT / "launch" / "driftgate.yaml", NODE_NAME)   # nested: dotted names
    declared = set(PARAMETERS)
    assert set(given) - declared == set(), f"unknown keys in driftgate.yaml: {sorted(set(given) - declared)}"
    missing = sorted(declared - set(given))
    assert not missing, f"launch/driftgate.yaml does not list: {missing}"
