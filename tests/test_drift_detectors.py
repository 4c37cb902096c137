"""The river wrappers of controller/drift/detectors.py, one behaviour at a time: when they report,
what they report, and that they start and reset clean (also the fast test file that
benchmarks/mutation.py runs for this module)."""
import doctest
import math

import numpy as np
import pytest

import controller.drift.detectors as detectors
from controller.drift.detectors import AdwinDetector, CalibratedPageHinkley, DecimatedKSWIN, ExceedanceHDDMW

CLASSES = (CalibratedPageHinkley, ExceedanceHDDMW, AdwinDetector, DecimatedKSWIN)


def test_docstring_examples():
    assert doctest.testmod(detectors, raise_on_error=False).failed == 0


@pytest.mark.parametrize("cls", CLASSES)
def test_channel_is_the_name_after_the_kind_unless_given(cls):
    assert cls("kind:pos_err").channel == "pos_err"
    assert cls("kind:a:b").channel == "a:b"                 # only the first colon separates the kind
    assert cls("plain").channel == "plain"
    assert cls("kind:pos_err", channel="vel").channel == "vel"


@pytest.mark.parametrize("cls", CLASSES)
def test_a_fresh_detector_has_seen_nothing(cls):
    det = cls("kind:x")
    assert det.peak == 0.0 and det.magnitude == 0.0 and det.statistic == 0.0 and det.onset_t is None


def test_page_hinkley_reports_from_min_instances_and_magnitude_is_statistic_over_threshold():
    ph = CalibratedPageHinkley("ph:x", threshold=100.0, delta=0.0, min_instances=5)
    stats = []
    for i in range(4):
        assert ph.update(float(i)) is False
        stats.append(ph.statistic)
    assert stats == [0.0] * 4                               # not before min_instances samples
    ph.update(10.0)
    assert 0.0 < ph.statistic < 100.0 and ph.peak == ph.statistic
    fired = next(i for i in range(100) if ph.update(50.0, t=float(i)))
    assert fired < 5
    assert ph.magnitude == pytest.approx(ph.statistic / ph.threshold) and ph.magnitude > 1.0
    assert ph.peak == ph.statistic                          # the firing statistic is the largest seen
    ph.update(1.0)                                          # the update after firing starts afresh
    assert ph.statistic == 0.0 and ph._n == 1


def test_page_hinkley_refuses_a_non_positive_threshold():
    with pytest.raises(ValueError, match="threshold"):
        CalibratedPageHinkley("ph:x", threshold=0.0)


def test_page_hinkley_fires_only_above_the_threshold():
    """The test fires on the first statistic above the threshold, not at it."""
    thr = 3.0
    ph = CalibratedPageHinkley("ph:x", threshold=thr, delta=0.0, min_instances=1)
    seen = []
    for i in range(200):
        fired = ph.update(0.0 if i < 50 else 1.0)
        seen.append((ph.statistic, fired))
        if fired:
            break
    assert seen[-1][1] and seen[-1][0] > thr
    assert all(stat <= thr for stat, fired in seen[:-1])
    # exactly at the threshold is not above it: 0 then 4 gives S = 4 - mean(0, 4) = 2, exactly
    at = CalibratedPageHinkley("ph:x", threshold=2.0, delta=0.0, min_instances=1)
    assert at.update(0.0) is False and at.update(4.0) is False and at.statistic == 2.0


def test_exceedance_hddm_w_fires_on_a_rise_in_the_rate_and_resets():
    rng = np.random.default_rng(0)
    det = ExceedanceHDDMW("hddm_w:x", level=2.33, nominal_rate=0.01)
    assert not any(det.update(float(x)) for x in rng.normal(0, 1, 3000))
    first = next(i for i, x in enumerate(rng.normal(3.0, 1, 500)) if det.update(float(x)))
    assert first < 100
    assert det.statistic == 0.0                             # reset on the firing tick
    assert det.magnitude > 10.0                             # the rate at firing over 1 %


def test_adwin_fires_on_a_rise_only():
    up = AdwinDetector("adwin:x")
    assert not any(up.update(1.0) for _ in range(500))
    assert any(up.update(5.0) for _ in range(500)) and up.magnitude == 1.0
    down = AdwinDetector("adwin:x")
    assert not any(down.update(x) for x in [5.0] * 500 + [1.0] * 500)


def test_kswin_sees_every_decimation_th_sample_and_fires_on_a_change():
    ks = DecimatedKSWIN("ks:x", seed=1)
    assert ks.decimation == 10
    rng = np.random.default_rng(2)
    assert not any(ks.update(float(x)) for x in np.full(2000, 0.5))          # no change, no alarm
    assert len(ks._d.window) == 100 and ks._i == 2000
    assert math.isfinite(ks.statistic)
    fired = [i for i, x in enumerate(rng.normal(5.0, 1.0, 3000)) if ks.update(float(x))]
    assert fired and all((2000 + i + 1) % 10 == 0 for i in fired) and ks.magnitude == 1.0
    assert DecimatedKSWIN("ks:x", decimation=0).decimation == 1
