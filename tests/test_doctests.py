"""The Examples in module docstrings are tests too (river style): run them."""
import doctest
import importlib

import pytest

MODULES = ["sim.recovery", "controller.drift.detectors", "controller.drift.calibration"]


@pytest.mark.parametrize("name", MODULES)
def test_module_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no Example to run"
    assert result.failed == 0
