"""Nothing unsafe reaches the robot from the fast path: the safe command is checked when the runtime
is built and clipped whenever it is held; positions-only joint states are a configured choice
(refused with a reason, or velocities by differencing), never a silent refusal forever."""
import dataclasses
import math

import numpy as np
import pytest

from controller.authority import Authority
from sim.observation import make_observation_map
from controller.runtime import ControllerRuntime, RuntimeConfig
from tests.test_runtime import JOINTS, constant, feed, make_runtime


def cfg(**kw) -> RuntimeConfig:
    return RuntimeConfig(joint_names=JOINTS, act_dim=1, act_low=(-1.0,), act_high=(1.0,), **kw)


@pytest.mark.parametrize("safe, match", [
    ((math.nan,), "finite"), ((math.inf,), "finite"), ((5.0,), "outside the actuator bounds"),
    ((-1.5,), "outside the actuator bounds"), ((0.0, 0.0), "1 actuators")])
def test_unsafe_safe_command_is_refused_with_the_reason(safe, match):
    with pytest.raises(ValueError, match=match) as e:
        cfg(safe_command=safe)
    assert str(e.value).startswith("safe_command") and "\n" not in str(e.value)


def test_safe_command_on_the_bounds_is_accepted():
    assert cfg(safe_command=(1.0,)).safe_command == (1.0,)
    assert cfg(safe_command=(-1.0,)).safe_command == (-1.0,)


def test_the_hold_path_clips_the_safe_command_anyway():
    """A config that escaped the check (built around it) still never makes the tick hold 5.0."""
    c = cfg(safe_command=(0.5,))
    object.__setattr__(c, "safe_command", (5.0,))      # what a bypassed check would leave
    rt = ControllerRuntime(c, make_observation_map("cartpole"), clock=lambda: 0.0)
    rt.install(champion=constant(0.3))
    out = rt.tick(now=1.0)                             # no joint state yet: hold
    assert out.status == "waiting" and out.command.tolist() == [1.0]
    assert feed(rt, 1.0)
    out = rt.tick(now=5.0)                             # stale
    assert out.status == "stale" and out.command.tolist() == [1.0]


def test_the_incumbent_relayed_while_holding_is_clipped():
    rt = make_runtime()
    rt.install(authority=Authority.INCUMBENT, champion=constant(0.3))
    assert rt.ingest_incumbent([7.0], now=1.0)
    out = rt.tick(now=1.0)                             # no joint state: hold, relay the fresh incumbent
    assert out.status == "waiting" and out.command.tolist() == [1.0]


def test_positions_only_measured_is_refused_with_a_reason_from_the_first_message():
    rt = make_runtime()
    rt.install(champion=constant(0.3))
    assert not rt.ingest(1.0, list(JOINTS), [0.0, 0.0], [], now=1.0)
    assert rt.refused["no_velocity"] == 1 and rt.refused["wrong_length"] == 0
    assert "velocity_source: differentiate" in rt.input_problem()
    assert rt.tick(now=1.01).status == "waiting"


def test_positions_only_differentiate_estimates_velocity_from_the_stamps():
    rt = make_runtime(velocity_source="differentiate")
    rt.install(champion=constant(0.3))
    assert not rt.ingest(1.0, list(JOINTS), [0.0, 0.1], [], now=1.0)      # primes the estimate
    assert rt.refused["no_velocity"] == 1
    assert rt.ingest(1.02, list(JOINTS), [0.01, 0.08], [], now=1.02)
    np.testing.assert_allclose(rt._latest.velocities, [0.5, -1.0], rtol=1e-6)
    assert rt.ingest(1.04, ["hinge_1", "slider"], [0.08, 0.03], [], now=1.04)   # any name order
    np.testing.assert_allclose(rt._latest.velocities, [1.0, 0.0], atol=1e-6)
    assert rt.tick(now=1.05).status == "ok"
    assert rt.refused["no_velocity"] == 1                                       # only the first


def test_differentiate_restarts_after_a_gap():
    rt = make_runtime(velocity_source="differentiate")
    assert not rt.ingest(1.0, list(JOINTS), [0.0, 0.0], [], now=1.0)
    assert rt.ingest(1.01, list(JOINTS), [0.0, 0.0], [], now=1.01)
    assert not rt.ingest(3.0, list(JOINTS), [5.0, 0.0], [], now=3.0)   # 2 s later: not a velocity
    assert rt.ingest(3.01, list(JOINTS), [5.01, 0.0], [], now=3.01)
    np.testing.assert_allclose(rt._latest.velocities, [1.0, 0.0], rtol=1e-6)


def test_velocity_source_is_checked():
    with pytest.raises(ValueError, match="velocity_source"):
        cfg(velocity_source="guess")
    assert dataclasses.replace(cfg(), velocity_source="differentiate").velocity_source == "differentiate"
