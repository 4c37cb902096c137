"""A first champion for an empty registry: the robot's nominal controller written as a policy genome.

Why: the controller node needs a champion before anything can adapt, and the registry only crowns
one through a forced (audited) promotion. Any robot can be bootstrapped from a champion file (an
evolved or distilled genome); a robot whose nominal controller is linear state feedback
u = -K obs[columns] (`Plant.nominal_feedback`, e.g. an LQR designed on the model) can also be
bootstrapped from that controller alone: an MLP with one tanh layer whose input weights are small
(`eps`) is linear to within O(eps^2) near the operating point, so W1 = eps * selection,
W2 = -K / eps reproduces it. The result is an ordinary `kind="policy"` genome that the gate, the
registry and the numpy runtime treat like any evolved one. Nothing here knows a robot: the plant
says what its nominal controller is.
"""
from __future__ import annotations

import numpy as np

from sim.genome import Genome
from sim.policy import PolicySpec


def feedback_policy_genome(K: np.ndarray, columns, obs_dim: int, *, act_low: float = -1.0,
                           act_high: float = 1.0, eps: float = 0.05, sign: float = 1.0,
                           source: str = "nominal linear feedback") -> Genome:
    """u = -sign * K obs[columns] (clipped to [act_low, act_high]) as a one-hidden-layer tanh MLP genome."""
    columns = tuple(int(c) for c in columns)
    K = np.asarray(K, dtype=np.float64)
    act_dim = K.size // len(columns)
    K = K.reshape(act_dim, len(columns))
    spec = PolicySpec(obs_dim=int(obs_dim), act_dim=act_dim, hidden=(len(columns),), discrete=False,
                      act_low=float(act_low), act_high=float(act_high))
    W1 = np.zeros((len(columns), int(obs_dim)))
    for row, col in enumerate(columns):
        W1[row, col] = eps
    W2 = -sign * K / eps
    vec = np.concatenate([W1.ravel(), np.zeros(len(columns)), W2.ravel(), np.zeros(act_dim)]).astype(np.float32)
    return Genome(vector=vec, policy_spec=spec, kind="policy", fitness={"source": source, "eps": eps, "sign": sign})


def nominal_policy_genome(plant_name: str | None = None, eps: float = 0.05, sign: float = 1.0) -> Genome:
    """The robot's nominal controller as a `kind="policy"` genome, when it is linear state feedback
    (`Plant.nominal_feedback`); `plant_name` None: the default robot (`sim.plants.DEFAULT_PLANT`).
    `sign=-1` gives the controller for motors wired backwards (what adaptation should find after an
    actuator_gain of -1). ValueError for a robot without one."""
    from sim.plants import DEFAULT_PLANT, make_plant  # MuJoCo: only when a genome is made
    plant_name = DEFAULT_PLANT if plant_name is None else plant_name
    plant = make_plant(plant_name)
    feedback = plant.nominal_feedback()
    if feedback is None:
        raise ValueError(f"robot {plant_name!r} has no linear nominal controller to bootstrap from "
                         "(Plant.nominal_feedback); register an evolved or distilled champion instead")
    low, high = plant.act_low, plant.act_high
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.ptp(low) == 0 and np.ptp(high) == 0):
        raise ValueError(f"robot {plant_name!r}: a bootstrap policy needs one finite action range for every "
                         f"actuator, got {low.tolist()} .. {high.tolist()}; register a champion instead")
    return feedback_policy_genome(feedback.K, feedback.columns, plant.obs_dim, act_low=float(low[0]),
                                  act_high=float(high[0]), eps=eps, sign=sign, source=feedback.source)


lqr_policy_genome = nominal_policy_genome   # its older name (the built-in nominal controllers are LQRs)


def bootstrap_registry(root, genome: Genome | None = None, *, plant: str | None = None,
                       actor: str = "driftgate-bootstrap") -> str:
    """Create (or open) a registry; if it has no champion, add `genome` (default: the robot's nominal
    controller, `nominal_policy_genome`; `plant` None: the default robot), promote it by force and mark it stable (each step one
    audited transaction). Returns the champion id."""
    from safety.registry import Registry
    with Registry(root, create=True, actor=actor) as reg:
        cur = reg.champion_id()
        if cur is not None:
            return cur
        genome = genome if genome is not None else nominal_policy_genome(plant)
        gid = reg.add(genome, reason="bootstrap champion")
        reg.promote(gid, force=True, reason="bootstrap: first champion of an empty registry")
        reg.mark_stable(gid, reason="bootstrap: the nominal controller is the known-good baseline")
        return gid
