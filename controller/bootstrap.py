"""A first champion for an empty registry: the plant's nominal LQR written as a policy genome.

Why: the controller node needs a champion before anything can adapt, and the registry only crowns
one through a forced (audited) promotion. The cartpole's nominal controller is linear state feedback
u = -K x on x = (cart, angle, cart velocity, angular velocity); an MLP with one tanh layer whose
input weights are small (`eps`) is linear to within O(eps^2) over the balancing range, so
W1 = eps * selection, W2 = -K / eps reproduces it, and sin(angle) stands in for the angle near
upright. The result is an ordinary `kind="policy"` genome that the gate, the registry and the numpy
runtime treat like any evolved one.
"""
from __future__ import annotations

import numpy as np

from sim.genome import Genome
from sim.policy import PolicySpec


def lqr_policy_genome(plant_name: str = "cartpole", eps: float = 0.05, sign: float = 1.0) -> Genome:
    """The nominal LQR as a `kind="policy"` genome (cartpole only). `sign=-1` gives the controller for
    a motor wired backwards (what adaptation should find after `actuator_gain: {slide: -1}`)."""
    if plant_name != "cartpole":
        raise ValueError(f"no linear bootstrap controller for plant {plant_name!r} (cartpole only); "
                         "register an evolved champion instead")
    from sim.plants import make_plant
    plant = make_plant("cartpole")
    K = np.asarray(plant.nominal_controller().K, dtype=np.float64).reshape(-1)   # (cart, angle, v, w)
    spec = PolicySpec(obs_dim=5, act_dim=1, hidden=(4,), discrete=False, act_low=-1.0, act_high=1.0)
    W1 = np.zeros((4, 5))
    for row, col in enumerate((0, 2, 3, 4)):   # cart, sin(angle), cart velocity, angular velocity
        W1[row, col] = eps
    W2 = (-sign * K / eps).reshape(1, 4)
    vec = np.concatenate([W1.ravel(), np.zeros(4), W2.ravel(), np.zeros(1)]).astype(np.float32)
    return Genome(vector=vec, policy_spec=spec, kind="policy", fitness={"source": "nominal LQR", "eps": eps,
                                                                          "sign": sign})


def bootstrap_registry(root, genome: Genome | None = None, *, plant: str = "cartpole",
                       actor: str = "driftgate-bootstrap") -> str:
    """Create (or open) a registry; if it has no champion, add `genome` (default: the LQR), promote it
    by force and mark it stable (each step one audited transaction). Returns the champion id."""
    from safety.registry import Registry
    with Registry(root, create=True, actor=actor) as reg:
        cur = reg.champion_id()
        if cur is not None:
            return cur
        genome = genome if genome is not None else lqr_policy_genome(plant)
        gid = reg.add(genome, reason="bootstrap champion")
        reg.promote(gid, force=True, reason="bootstrap: first champion of an empty registry")
        reg.mark_stable(gid, reason="bootstrap: the nominal controller is the known-good baseline")
        return gid
