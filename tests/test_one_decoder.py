"""One decoder: the control tick runs, bit for bit, the policy the safety gate evaluated.

The gate (`safety.gate.Contender`), the registry's FallbackCache and the orchestrator that installs
policies into the runtime all decode a genome with `sim.srghn_decode.decode_policy`. The test
follows a real SR-GHN genome down both paths (gate: Contender; tick: registry -> orchestrator ->
runtime) and checks that both went through that one function and came out with the same bytes and
the same commands."""
import numpy as np
import pytest

import sim.srghn_decode as srghn_decode
from controller.bootstrap import bootstrap_registry
from controller.orchestrator import Orchestrator, OrchestratorConfig
from sim.observation import make_observation_map
from controller.runtime import CompiledPolicy, ControllerRuntime, GuardConfig, RuntimeConfig
from safety.gate import Contender
from safety.registry import Registry
from sim.adapt_job import nominal_champion
from sim.genome import Genome

JOINTS = ("slider", "hinge_1")


@pytest.fixture(scope="module")
def genome():
    """The shipped cartpole SR-GHN with noise everywhere: a head whose every tensor matters."""
    champ = nominal_champion("cartpole")
    rng = np.random.default_rng(7)
    vec = np.clip(champ.vector + rng.normal(0.0, 0.05, champ.vector.shape), -20, 20).astype(np.float32)
    return Genome(vector=vec, policy_spec=champ.policy_spec, kind="srghn", model=champ.model)


@pytest.fixture
def decoder_calls(monkeypatch):
    """Counts the SR-GHN decodes that go through the one decoder."""
    calls = []
    real = srghn_decode.srghn_policy_weights

    def counted(*args, **kw):
        calls.append(args[0])
        return real(*args, **kw)

    monkeypatch.setattr(srghn_decode, "srghn_policy_weights", counted)
    return calls


def tick_policy(tmp_path, genome) -> CompiledPolicy:
    """What the runtime ticks with once `genome` is the registry's champion."""
    root = tmp_path / "registry"
    bootstrap_registry(root)
    with Registry(root, actor="test") as reg:
        gid = reg.add(genome)
        reg.promote(gid, force=True)
        guard = GuardConfig.from_names(JOINTS, {"slider": [-1.5, 1.5]}, max_divergence=0.5)
        rt = ControllerRuntime(RuntimeConfig(joint_names=JOINTS, act_dim=1, act_low=(-1.0,), act_high=(1.0,),
                                             guard=guard), make_observation_map("cartpole"), clock=lambda: 0.0)
        orch = Orchestrator(OrchestratorConfig(robot="cartpole", job_root=tmp_path / "jobs"), reg, rt, None, None,
                            clock=lambda: 0.0)
        assert orch.refresh_champion()
    policy = rt.slot.champion
    assert policy.genome_id == genome.id
    return policy


def test_tick_runs_the_weights_the_gate_evaluated(tmp_path, genome, decoder_calls):
    evaluated = Contender.from_genome(genome)
    assert evaluated.load_error is None and len(decoder_calls) == 1        # the gate: the one decoder
    ticking = tick_policy(tmp_path, genome)
    assert len(decoder_calls) == 2                                          # the tick: the same one
    assert ticking.spec == evaluated.spec
    assert ticking.weights.dtype == evaluated.weights.dtype == np.float32
    assert ticking.weights.tobytes() == evaluated.weights.tobytes()         # bit for bit
    gate_policy = CompiledPolicy(evaluated.id, evaluated.spec, evaluated.weights)
    obs = np.random.default_rng(0).normal(0.0, 0.5, (50, genome.policy_spec.obs_dim))
    commands = np.stack([ticking.act(o) for o in obs])
    assert commands.tobytes() == np.stack([gate_policy.act(o) for o in obs]).tobytes()
    assert np.ptp(commands) > 0.01                                          # a policy that does something


def test_the_one_decoder_is_the_numpy_head(genome):
    """Not a second copy that happens to agree: the gate's decoder *is* sim.srghn_decode's."""
    import safety.gate
    import safety.policy_cache
    assert safety.gate.decode_policy is srghn_decode.decode_policy
    assert safety.policy_cache.FallbackCache().decode is srghn_decode.decode_policy
