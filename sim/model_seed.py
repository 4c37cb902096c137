"""A model-based seed for the adaptation population: linear state feedback designed on the
*identified* model, written into the deterministic head of the champion's SR-GHN.

Why: evolution from the champion alone must walk from "push left" to "push right" when the motor
is wired backwards, and from one set of balance gains to another when the pole gets three times
heavier; on 2 cores that walk took longer than the demo's time-to-adapt budget (60 s). System
identification has already told us what the robot now is, so a classical design on that model is
a far better starting individual. It enters the population beside the champion and its
ancestors and is one individual like the others: (mu + lambda) truncation keeps it only if it
scores, the gate judges it like any candidate, and its self graph, stochastic head and basis are
the champion's, so it goes on adapting like any SR-GHN.

How the writing works (the shipped nominal champion was made the same way,
benchmarks/make_cartpole_champion.py): the policy graph's message passing is switched off (zero
messages, GRU update gate held at 1) so each policy tensor's embedding stays what it is; policy
tensor j gets the one-hot embedding e_j and the head's column j holds that tensor's values. The
MLP then computes u = -K x through its tanh layers in their linear range (small input scale a1).

Plants without a linear design (`Plant.model_lqr` missing) get no seed: the function returns None.
"""
from __future__ import annotations

import numpy as np

from sim.drift_spec import DriftSpec
from sim.genome import Genome
from sim.srghn_layout import srghn_layout

VALUE_LIMIT = 20.0          # SR-GHN's genome clamp (SRGHN.md): every written value must fit


def linear_policy_tensors(K: np.ndarray, obs_columns: tuple[int, ...], obs_dim: int,
                          hidden: tuple[int, ...], a1: float = 0.5, copies: int = 1) -> list[np.ndarray]:
    """MLP tensors [W1, b1, W2, b2, ..., Wout, bout] computing u ~= -K x[obs_columns] for small x.

    Each state feeds `copies` tanh units per hidden layer (gain a1 in the first, 1 after); the
    output layer undoes the gain and sums the copies (more copies, smaller output weights: large
    gains still fit the genome clamp). Needs every hidden width >= copies * len(obs_columns)."""
    K = np.atleast_2d(np.asarray(K, dtype=np.float64))
    n = len(obs_columns)
    if K.shape[1] != n:
        raise ValueError(f"K has {K.shape[1]} columns for {n} observed states")
    if any(h < n * copies for h in hidden):
        raise ValueError(f"hidden widths {hidden} are narrower than {copies} x {n} states")
    tensors, width_in = [], obs_dim
    for layer, width in enumerate(hidden):
        W, b = np.zeros((width, width_in)), np.zeros(width)
        for i in range(n):
            for c in range(copies):
                unit = i * copies + c
                W[unit, obs_columns[i] if layer == 0 else unit] = a1 if layer == 0 else 1.0
        tensors += [W, b]
        width_in = width
    Wout = np.zeros((K.shape[0], width_in))
    Wout[:, :n * copies] = np.repeat(-K / (a1 * copies), copies, axis=1)
    return tensors + [Wout, np.zeros(K.shape[0])]


def write_policy_into_head(genome: Genome, tensors: list[np.ndarray], note: str) -> Genome:
    """A copy of SR-GHN `genome` whose deterministic head writes exactly `tensors`."""
    spec, model = genome.policy_spec, dict(genome.model or {})
    d = int(model.get("embed_dim", 32))
    L = srghn_layout(spec, model)
    shapes = [s for _, s in spec.tensors]
    if [t.shape for t in tensors] != [tuple(s) for s in shapes]:
        raise ValueError(f"tensors {[t.shape for t in tensors]} do not match the policy {shapes}")
    if len(tensors) > d:
        raise ValueError(f"{len(tensors)} policy tensors need embed_dim >= {len(tensors)}, got {d}")
    vec = genome.vector.astype(np.float32).copy()

    def put(name: str, arr) -> None:
        off, shape = L[name]
        vec[off:off + int(np.prod(shape))] = np.asarray(arr, np.float32).reshape(-1)

    for nm in ("msg.weight", "msg.bias", "gru.weight_ih", "gru.weight_hh", "gru.bias_ih"):
        put(f"gnn_policy.{nm}", np.zeros(L[f"gnn_policy.{nm}"][1]))
    bias_hh = np.zeros(3 * d)
    bias_hh[d:2 * d] = VALUE_LIMIT                 # update gate sigmoid(20) ~ 1: embeddings kept
    put("gnn_policy.gru.bias_hh", bias_hh)
    head = np.zeros(L["det_head.weight"][1])
    for j, T in enumerate(tensors):
        head[:T.size, j] = T.reshape(-1)
    if np.abs(head).max() > VALUE_LIMIT:
        raise ValueError(f"a policy value {np.abs(head).max():.1f} exceeds the genome clamp {VALUE_LIMIT}")
    put("embed_policy", np.eye(len(tensors), d))
    put("det_head.weight", head)
    put("det_head.bias", np.zeros(L["det_head.bias"][1]))
    return Genome(vector=vec, policy_spec=spec, kind="srghn", model=model, parent_id=genome.id,
                  generation=genome.generation, drift_hash=genome.drift_hash, fitness={"source": note})


def model_seed(champion: Genome, plant_name: str, drift: DriftSpec) -> Genome | None:
    """The champion's SR-GHN with an LQR designed on `plant_name` + `drift` in its head, or None
    when the plant has no linear design or the design does not fit the genome's value range."""
    from sim.plants import make_plant
    plant = make_plant(plant_name, drift=drift)
    design = getattr(plant, "model_lqr", None)
    if design is None or champion.kind != "srghn":
        return None
    K, columns = design()
    spec = champion.policy_spec
    most = min(spec.hidden) // len(columns)
    for copies in [c for c in (1, 2, 4, 8, 16) if c <= most]:   # more copies if the output weights grow
        tensors = linear_policy_tensors(K, columns, spec.obs_dim, spec.hidden, copies=copies)
        if max(np.abs(t).max() for t in tensors) <= VALUE_LIMIT:
            return write_policy_into_head(champion, tensors, f"LQR on the identified model {drift.as_dict()}")
    return None
