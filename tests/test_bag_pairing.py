"""`read_bag_telemetry(pairing="queue")`: a controller that answers every joint state in order but
falls behind (a loaded machine) writes s1 s2 s3 c1 c2 c3; the queue pairs each state with the
command computed from it, the zero-order hold with older ones."""
import numpy as np
import pytest

from adapters.bag_telemetry import QueuedPairing, read_bag_telemetry
from adapters.recording import BagWriter
from adapters.replay import ReplayError

JOINTS = ["slider", "hinge_1"]
T0 = 1_700_000_000.0


@pytest.fixture(scope="module")
def late_bag(tmp_path_factory):
    """s_k has q = k; the command answering s_k is [10 k]. s0 and s1 are answered in time, s2..s4
    are answered together after s4, s5 in time."""
    path = tmp_path_factory.mktemp("bags") / "late"
    with BagWriter(path, plant="cartpole", joint_names=JOINTS, control_dt=0.01) as b:
        t = T0
        for k, answered in ((0, [0]), (1, [1]), (2, []), (3, []), (4, [2, 3, 4]), (5, [5])):
            b.joint_state(t + 0.01 * k, JOINTS, [float(k), 0.0], [0.0, 0.0])
            for j, c in enumerate(answered):
                b.command(t + 0.01 * k + 0.001 * (j + 1), [10.0 * c])
    return path


def test_the_queue_pairs_each_state_with_its_own_command(late_bag):
    tel = read_bag_telemetry(late_bag, pairing="queue")
    assert tel.obs[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert tel.action[:, 0].tolist() == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]
    held = read_bag_telemetry(late_bag)           # the default: the command in force
    assert held.action[:, 0].tolist() == [0.0, 10.0, 10.0, 10.0, 20.0, 50.0]


def test_the_queue_is_bounded_and_bad_pairing_is_refused(late_bag):
    got = []
    q = QueuedPairing(lambda s, a: got.append((s, a)), max_waiting=2)
    q.state("a")                  # no command yet: skipped once it falls out of the queue
    q.state("b")
    q.state("c")
    q.command(1)                  # answers b (a fell out)
    q.state(None)                 # unusable
    q.state("d")
    q.finish()                    # c and d never answered: the command in force
    assert got == [("b", 1), ("c", 1), ("d", 1)]
    assert q.skipped == 2
    with pytest.raises(ReplayError, match="pairing"):
        read_bag_telemetry(late_bag, pairing="fifo")
