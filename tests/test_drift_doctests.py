"""The Examples in the drift modules' docstrings are tests (river style): the PageHinkley wrapper's
Example asserts real detection behaviour (no false alarm on a flat signal, delay after a step,
onset estimate, one-sidedness)."""
import doctest
import importlib

import pytest

MODULES = ["controller.drift.detectors", "controller.drift.calibration"]


@pytest.mark.parametrize("name", MODULES)
def test_module_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no Example to run"
    assert result.failed == 0


def test_page_hinkley_example_is_in_the_wrapper_docstring():
    from controller.drift.detectors import CalibratedPageHinkley
    assert ">>> ph = CalibratedPageHinkley(" in CalibratedPageHinkley.__doc__


def test_controller_drift_does_not_import_torch_or_mujoco():
    import subprocess
    import sys
    code = ("import sys, controller.drift, controller.drift.monitor; "
            "bad = [m for m in ('torch', 'mujoco', 'dm_control', 'sim') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
