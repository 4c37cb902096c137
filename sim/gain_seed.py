"""A seed for the adaptation population from the identified actuator gains: the champion with each
of its commands divided by its motor's identified gain, written into the champion's SR-GHN head.

Why: system identification says what each motor now does (the ant's front ankles: gain -1.4 and
-1.2, wired backwards). The champion's policy, with every command divided by that gain, asks the
drifted motor for the torque the nominal motor gave: the nominal closed loop, up to saturation and
to whatever else drifted. Evolution from the champion alone must walk every affected output from
"push" to "pull" (the ant's first jobs: 25 generations, 201 of the 271 needed, in 420 s on 2
loaded cores). It is the actuator-level cousin of `sim.model_seed` (an LQR on the identified model,
for plants with a linear design): one individual beside the champion, kept by selection only if it
scores, judged by the gate like any candidate, and adapting further like any SR-GHN.

Only where identification finds a motor reversed (a negative gain): that is the drift evolution
cannot walk, since every output it touches must change sign, through a zero where the robot holds
nothing. Weaker or stronger motors (the walker's default drift, every leg at half gain) are a step
in the gains that evolution takes itself and stays its job. When the seed is made, every changed
gain is divided out: its sign, and its magnitude when within a factor `MAX_FACTOR` of 1. Non-SR-GHN champions and divisions that do not fit the
genome's value range get no seed either (None).
"""
from __future__ import annotations

import numpy as np

from sim.drift_spec import DriftSpec
from sim.genome import Genome
from sim.model_seed import VALUE_LIMIT, write_policy_into_head

MIN_CHANGE = 0.05       # a gain within 5 % of nominal is left as it is (identification noise)
MAX_FACTOR = 2.0        # a magnitude outside [1/2, 2] is taken as unidentified (1): magnitudes are what
                        # identification sees least (the ant needs 0.6 of its motors' 150 Nm to stand, so a
                        # stance window fits ankle gains of 0.01-0.1 as well as 1.0; dividing by them, even
                        # clipped to x2, doubled the loop gain on the true robot: jerk 1.43 > 1), signs it
                        # sees well (a reversed ankle folds to its stop)


def command_gains(plant_name: str, drift: DriftSpec) -> np.ndarray:
    """(act_dim,) factor of each command's motor under `drift` relative to the nominal robot, in the
    command order (the transmission's gear: what `DriftSpec.actuator_gain` scales)."""
    from sim.plants import make_plant
    plant = make_plant(plant_name)
    acts = plant._command_actuators()
    nominal = plant.model.actuator_gear[acts, 0].copy()
    plant.apply_drift(drift)
    try:
        drifted = plant.model.actuator_gear[acts, 0].copy()
    finally:
        plant.clear_drift()
    return np.where(nominal != 0, drifted / np.where(nominal != 0, nominal, 1.0), 1.0)


def gain_seed(champion: Genome, plant_name: str, drift: DriftSpec) -> Genome | None:
    """The champion's SR-GHN whose policy is the champion's with command i divided by the identified
    gain g_i (last layer's row i and bias i), or None (see the module docstring)."""
    if champion.kind != "srghn" or not drift.actuator_gain:
        return None
    gains = command_gains(plant_name, drift)
    if not np.any(gains < 0):
        return None
    from sim.srghn_decode import genome_policy_weights
    spec = champion.policy_spec
    flat = genome_policy_weights(champion).astype(np.float64)
    tensors, off = [], 0
    for _, shape in spec.tensors:
        size = int(np.prod(shape))
        tensors.append(flat[off:off + size].reshape(shape).copy())
        off += size
    magnitude = np.abs(gains)
    magnitude = np.where((magnitude >= 1.0 / MAX_FACTOR) & (magnitude <= MAX_FACTOR), magnitude, 1.0)
    scale = np.where(np.abs(gains - 1.0) < MIN_CHANGE, 1.0, 1.0 / (np.sign(gains) * magnitude))
    tensors[-2] = tensors[-2] * scale[:, None]          # the output layer (act_dim, hidden[-1])
    tensors[-1] = tensors[-1] * scale                   # its bias
    if max(np.abs(t).max() for t in tensors) > VALUE_LIMIT:
        return None
    changed = {i: round(float(g), 3) for i, g in enumerate(gains) if abs(g - 1.0) >= MIN_CHANGE}
    return write_policy_into_head(champion, tensors, f"champion / identified command gains {changed}")
