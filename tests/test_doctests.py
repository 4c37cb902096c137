"""The Examples in module docstrings are tests too (river style): run them."""
import doctest
import importlib

import pytest

MODULES = ["sim.recovery", "sim.atomicio", "controller.drift.detectors", "controller.drift.calibration", "adapters.latency", "adapters.realtime",
           "adapters.ros.ros_args"]


@pytest.mark.parametrize("name", MODULES)
def test_module_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no Example to run"
    assert result.failed == 0


def test_latency_between_two_snapshots_counts_only_the_new_samples():
    from adapters.latency import LatencyHistogram
    h = LatencyHistogram(bin_us=10.0, max_us=1000.0)
    for _ in range(50):
        h.add_us(5000.0)                   # warm-up: slow, lands in the overflow bin
    before = h.to_dict(bins=True)
    for us in [100.0] * 99 + [950.0]:
        h.add_us(us)
    h.add_us(float("nan"))
    window = LatencyHistogram.between(before, h.to_dict(bins=True))
    assert window.n == 100 and window.percentile_us(50) == 110.0 and window.percentile_us(99) == 110.0
    assert window.max_us_seen == 960.0 and h.refused == 1
    assert h.to_dict()["p99_us"] > 1000.0           # the whole run still sees the warm-up
