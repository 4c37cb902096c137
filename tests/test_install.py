"""driftgate works from a non-editable install: a wheel in a temporary prefix, and a colcon layout.

Why: a wheel installed with ``--prefix`` (and a colcon build without ``--symlink-install``) once lost
the drift monitor's defaults: the node caught the error and ran with "drift monitor unavailable",
so the core feature was silently off (issue 16). Here the real wheel is built from a copy of the
checkout (`pip wheel --no-deps --no-build-isolation`), installed with `pip install --no-deps
--prefix`, and the installed ``driftgate node controller`` is started from a directory outside the
checkout with the shipped parameter file.

colcon is not installed here, so the colcon layout is simulated: ``pip install --prefix`` of the
same wheel lays out ``<prefix>/share/ament_index/resource_index/packages/driftgate``,
``<prefix>/share/driftgate/{package.xml,launch,champions}`` and ``<prefix>/lib/python3.X/
site-packages`` exactly as ``colcon build`` does for an ament_python package (setup.py's
data_files); with ``AMENT_PREFIX_PATH`` on it, `ament_index_python` finds the package, and with the
wheel's package data removed the files are still found there.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _copy_checkout(dest: Path) -> None:
    """The files git would give a fresh clone (tracked + new, not ignored): no .venv, no build/."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for f in filter(None, files):
        src = ROOT / f.decode()
        if src.is_file():
            (dest / f.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f.decode())


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(prefix, site-packages, env) of the wheel installed into a temporary prefix."""
    base = tmp_path_factory.mktemp("install")
    src, wheels, prefix = base / "src", base / "wheels", base / "prefix"
    src.mkdir()
    _copy_checkout(src)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    r = subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)],
                       capture_output=True, text=True, cwd=base)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (wheel,) = wheels.glob("driftgate-*.whl")
    # --ignore-installed: without it pip would first uninstall the driftgate of the running environment
    r = subprocess.run(pip + ["install", "--no-deps", "--no-compile", "--ignore-installed", "--no-warn-script-location",
                              "--prefix", str(prefix), str(wheel)],
                       capture_output=True, text=True, cwd=base)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Uninstalling" not in r.stdout, r.stdout
    site = Path(sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)}))
    assert (site / "controller" / "__init__.py").is_file(), sorted(p.name for p in site.iterdir())
    env = {k: v for k, v in os.environ.items() if k not in ("AMENT_PREFIX_PATH", "PYTHONPATH")}
    env.update(PYTHONPATH=str(site), PYTHONNOUSERSITE="1", MUJOCO_GL="disable",
               ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    return prefix, site, env


def _py(code: str, env: dict, cwd: Path) -> str:
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout.strip()


def test_wheel_carries_the_shipped_files_and_resolves_them_outside_the_checkout(installed, tmp_path):
    prefix, site, env = installed
    out = _py("import controller, controller.shipped as s, controller.drift.config as c\n"
              "print(controller.__file__); print(s.shipped_file('launch/drift_monitor.yaml'))\n"
              "print(s.shipped_file('launch/regression_suite.yaml')); print(s.shipped_file('champions/cartpole.safetensors'))\n"
              "print(c.load_config().warmup_s)", env, tmp_path)
    code, monitor, suite, champion, warmup = out.splitlines()
    assert Path(code).is_relative_to(site)           # the installed code, not the checkout
    for p in (monitor, suite):
        assert Path(p).is_relative_to(site / "controller" / "assets" / "launch"), p
    assert Path(champion).is_relative_to(site / "sim" / "assets" / "champions"), champion
    assert _sha(Path(monitor)) == _sha(ROOT / "launch" / "drift_monitor.yaml")
    assert float(warmup) > 0


def test_installed_node_starts_with_the_monitor_armed_and_leaves_shipped_files_alone(installed, tmp_path):
    prefix, site, env = installed
    exe = prefix / "bin" / "driftgate"
    assert exe.is_file()
    shipped = {p: _sha(p) for p in (site / "controller" / "assets" / "launch").glob("*.yaml")}
    assert shipped
    tracked = _sha(ROOT / "launch" / "regression_suite.yaml")
    env = {**env, "ROS_DOMAIN_ID": os.environ.get("ROS_DOMAIN_ID") or str(100 + os.getpid() % 90)}
    log = tmp_path / "node.log"
    with open(log, "w") as f:
        node = subprocess.Popen([str(exe), "node", "controller", "--params", "launch/driftgate.yaml",
                                 "--set", "ros.realtime_priority=0", "--set", "orchestrator.registry_path=state/registry",
                                 "--set", "orchestrator.bootstrap_champion=champions/cartpole.safetensors"],
                                cwd=tmp_path, env=env, stdout=f, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and node.poll() is None and "active, mode" not in log.read_text():
            time.sleep(0.5)
        time.sleep(2.0)            # a couple of seconds of ticking
    finally:
        node.send_signal(signal.SIGINT)
        try:
            node.wait(timeout=60)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()
    text = log.read_text()
    assert "active, mode active" in text, text[-3000:]
    assert "drift monitor on" in text and "unavailable" not in text, text[-3000:]
    assert "champion none" not in text, text[-3000:]
    # mutable state under the registry, found from the working directory given
    reg = tmp_path / "state" / "registry"
    assert (reg / "gate_suite.yaml").is_file()
    assert f"gate suite {reg / 'gate_suite.yaml'}" in text
    assert {p: _sha(p) for p in shipped} == shipped
    assert _sha(ROOT / "launch" / "regression_suite.yaml") == tracked


def test_colcon_layout_finds_the_files_through_the_ament_index(installed, tmp_path):
    prefix, site, env = installed
    # what colcon installs for an ament_python package (setup.py data_files)
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "driftgate").is_file()
    for rel in ("package.xml", "launch/driftgate.launch.py", "launch/driftgate.yaml", "launch/drift_monitor.yaml",
                "launch/regression_suite.yaml", "champions/cartpole.safetensors"):
        assert (prefix / "share" / "driftgate" / rel).is_file(), rel
    # a colcon install without the wheel's package data: a copy of the prefix with it removed
    colcon = tmp_path / "install" / "driftgate"
    shutil.copytree(prefix, colcon, symlinks=True)
    csite = colcon / site.relative_to(prefix)
    shutil.rmtree(csite / "controller" / "assets" / "launch")
    shutil.rmtree(csite / "sim" / "assets" / "champions")
    cenv = {**env, "PYTHONPATH": str(csite), "AMENT_PREFIX_PATH": str(colcon)}
    code = ("import controller.shipped as s, controller.drift.config as c\n"
            "print(s.ament_share()); print(s.shipped_file('launch/drift_monitor.yaml'))\n"
            "print(s.shipped_file('champions/cartpole.safetensors')); print(s.resolve('launch/regression_suite.yaml'))\n"
            "print(c.load_config().warmup_s)")
    share, monitor, champion, suite, _ = _py(code, cenv, tmp_path).splitlines()
    assert Path(share) == colcon / "share" / "driftgate"
    for p in (monitor, champion, suite):
        assert Path(p).is_relative_to(colcon / "share" / "driftgate"), p
    # without the ament index on the path there is nothing left to find: the error says where it looked
    nenv = {k: v for k, v in cenv.items() if k != "AMENT_PREFIX_PATH"}
    r = subprocess.run([sys.executable, "-c", "import controller.shipped as s; s.shipped_file('launch/drift_monitor.yaml')"],
                       env=nenv, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "looked in" in r.stderr
