"""adapters.joint_stream: joint states paired with commands, on a real bag with irregular traffic.

The drift calibration (`read_bag_telemetry`, zero-order hold) and the distillation
(`read_demonstration`, strict pairing) read the same bag through the one pairing."""
import numpy as np
import pytest

from adapters.bag_telemetry import read_bag_telemetry
from adapters.demonstration import read_demonstration
from adapters.joint_stream import JointOrder, StatePairing
from adapters.recording import BagWriter

JOINTS = ["slider", "hinge_1"]
T0 = 1_700_000_000.0


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    """States s0..s6 (q = k, v = -k), commands c = [10 k]; s2 has no command of its own, s3 names
    its joints the other way round plus an extra joint, s4 is ragged, s6 is the last message."""
    path = tmp_path_factory.mktemp("bags") / "irregular"
    with BagWriter(path, plant="cartpole", joint_names=JOINTS, control_dt=0.01) as b:
        t = T0
        b.joint_state(t, JOINTS, [0.0, 0.0], [0.0, 0.0])          # s0: before any command
        b.joint_state(t + 0.01, JOINTS, [1.0, 1.0], [-1.0, -1.0])  # s1
        b.command(t + 0.011, [10.0])
        b.joint_state(t + 0.02, JOINTS, [2.0, 2.0], [-2.0, -2.0])  # s2: followed by s3, no command
        b.joint_state(t + 0.03, ["hinge_1", "extra", "slider"], [3.5, 9.0, 3.0], [-3.5, 9.0, -3.0])  # s3
        b.command(t + 0.031, [30.0])
        b.joint_state(t + 0.04, JOINTS, [4.0], [-4.0, -4.0])       # s4: ragged
        b.command(t + 0.041, [40.0])
        b.joint_state(t + 0.05, JOINTS, [5.0, 5.0], [-5.0, -5.0])  # s5
        b.command(t + 0.051, [50.0])
        b.joint_state(t + 0.06, JOINTS, [6.0, 6.0], [-6.0, -6.0])  # s6: the recording ends here
    return path


def test_calibration_holds_the_command_in_force(bag):
    tel = read_bag_telemetry(bag)
    # s0 had no command yet (skipped), s4 is ragged (skipped); s2 gets c1 held, s6 gets c5 held
    assert tel.skipped == 2
    assert tel.action[:, 0].tolist() == [10.0, 10.0, 30.0, 50.0, 50.0]
    assert np.round(tel.t, 6).tolist() == [0.01, 0.02, 0.03, 0.05, 0.06]   # seconds from s0's stamp
    assert tel.obs[2, 0] == 3.0                                              # s3 reordered: slider first


def test_distillation_pairs_only_what_the_incumbent_answered(bag):
    demo = read_demonstration(bag, "cartpole")
    assert demo.positions.tolist() == [[1.0, 1.0], [3.0, 3.5], [5.0, 5.0]]
    assert demo.velocities[:, 0].tolist() == [-1.0, -3.0, -5.0]
    assert demo.commands[:, 0].tolist() == [10.0, 30.0, 50.0]
    # s0 and s2 were followed by another state before a command; s4 is ragged
    assert demo.source["unpaired_joint_states"] == 2 and demo.source["refused_joint_states"] == 1


def test_joint_order_needs_every_joint_once():
    order = JointOrder(JOINTS)
    assert order.index(["hinge_1", "x", "slider"]).tolist() == [2, 0]
    assert order.index(["slider"]) is None
    assert order.index(["slider", "hinge_1", "slider"]) is None


def test_pairing_hold_and_strict_differ_only_where_a_state_went_unanswered():
    for hold, want in ((True, [("a", 0), ("b", 1), ("c", 2)]), (False, [("b", 1), ("c", 2)])):
        got = []
        p = StatePairing(lambda s, a: got.append((s, a)), hold=hold)
        p.command(0)
        p.discard()
        p.state("a")
        p.state("b")
        p.command(1)
        p.state("c")
        p.command(2)
        p.state("d")
        p.discard()
        p.finish()
        assert got == want
        assert (p.unpaired, p.skipped) == ((0, 0) if hold else (1, 0))
