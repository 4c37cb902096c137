"""The demo's decisions place the drift injection and the controller's events at their own wall-clock
``time`` field, not at their arrival in the recorder: a message that waited 0.8 s in a loaded
executor would otherwise make the detection delay 0.8 s too short (or an alarm before the
injection look like one after it). No ROS needed: the recorder's callbacks with a stand-in node."""
import json
import threading
import time
from types import SimpleNamespace

import pytest

from adapters.decision_recorder import DecisionRecorder


class Clock:
    def __init__(self, offset_s=0.0):
        self.offset_s = offset_s

    def now(self):
        return SimpleNamespace(nanoseconds=int((time.time() + self.offset_s) * 1e9))


def recorder(offset_s=0.0):
    rec = DecisionRecorder.__new__(DecisionRecorder)
    rec.node = SimpleNamespace(get_clock=lambda c=Clock(offset_s): c)
    rec._t0 = rec.node.get_clock().now().nanoseconds - int(100e9)      # started 100 s ago
    rec._lock, rec._closed, rec._drift_hash = threading.Lock(), False, None
    rec._phase, rec._jobs, rec._job_dirs, rec._canary_weight = None, 0, {}, None
    rec.written = []
    rec.writer = SimpleNamespace(write=lambda t, kind, **data: rec.written.append((t, kind, data)))
    return rec


def test_the_injection_is_placed_at_its_own_time_not_its_arrival():
    rec = recorder()
    rec._on_drift(SimpleNamespace(data=json.dumps({"drift": {"mass_scale": {"hand": 20}}, "hash": "h",
                                                   "time": time.time() - 0.8})))
    (t, kind, data), = rec.written
    assert kind == "drift_injected" and data["hash"] == "h"
    assert t == pytest.approx(100.0 - 0.8, abs=0.05)


def test_an_alarm_event_is_placed_at_its_own_time():
    rec = recorder()
    rec._on_event(SimpleNamespace(data=json.dumps({"event": "drift", "time": time.time() - 0.5,
                                                   "drift": {"detectors": ["ph:one_step"]}})))
    (t, kind, _), = rec.written
    assert kind == "alarm" and t == pytest.approx(99.5, abs=0.05)


@pytest.mark.parametrize("field", [None, "soon", float("nan"), -1.0])
def test_arrival_time_where_the_field_is_missing_or_odd(field):
    rec = recorder()
    msg = {"drift": {"mass_scale": {"hand": 2}}, "hash": "x"}
    if field is not None:
        msg["time"] = field if field != -1.0 else time.time() + 5.0      # from the future
    rec._on_drift(SimpleNamespace(data=json.dumps(msg)))
    (t, _, _), = rec.written
    assert t == pytest.approx(100.0, abs=0.05)


def test_arrival_time_on_simulated_time():
    rec = recorder(offset_s=-1e6)      # the node's clock is /clock, far from the wall clock
    assert rec.at(time.time() - 0.8) == pytest.approx(100.0, abs=0.05)


def test_the_report_measures_detection_from_the_true_times_even_when_the_file_moved_them(tmp_path):
    """The decisions file stays sorted: a record written after a later one gets that one's time. The
    injection and the alarm keep their own time in ``at_s``, and the report measures from it."""
    from adapters.decisions import DecisionWriter, make_header, read_decisions
    from adapters.report import build_report
    rec = recorder()
    rec.writer = DecisionWriter(tmp_path / "decisions.jsonl", make_header("live", "cartpole", counterfactual=False))
    rec.writer.write(rec.now(), "sample", reward=1.0)                   # written at arrival, 100 s
    rec._on_drift(SimpleNamespace(data=json.dumps({"drift": {"mass_scale": {"hand": 20}}, "hash": "h",
                                                   "time": time.time() - 0.8})))
    rec._on_event(SimpleNamespace(data=json.dumps({"event": "drift", "time": time.time() - 0.5,
                                                   "drift": {"detectors": ["ph:one_step"]}})))
    rec.writer.close()
    log = read_decisions(tmp_path / "decisions.jsonl")
    inj, = log.of("drift_injected")
    assert inj.t >= 100.0 - 0.05                                        # moved up in the file ...
    assert inj.data["at_s"] == pytest.approx(99.2, abs=0.05)            # ... its own time kept
    rep = build_report(log)
    assert rep["drift_injected_at_s"] == pytest.approx(99.2, abs=0.05)
    assert rep["detected_after_s"] == pytest.approx(0.3, abs=0.05)
