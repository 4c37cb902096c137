"""What system identification searches, and how its answer becomes a DriftSpec.

Parameter sets leave out what motion cannot tell apart: scaling every mass, every motor gain and
every damping by the same factor leaves the motion unchanged (only gravity and any mass held fixed
break the tie), so the cartpole set has the pole mass and the motor gain but not the cart mass.
Scales are searched in log space, actuator gains linearly over a range that includes negative
values (a reversed motor). `DEFAULT_HORIZON` / `DEFAULT_WINDOWS`: the replay's prediction horizon
and window count per robot (`sim.sysid_replay`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.drift_spec import DriftSpec, compose


@dataclass(frozen=True)
class Param:
    """One identified quantity: a DriftSpec table entry and its search range (natural units)."""

    field: str
    key: str
    lo: float
    hi: float

    @property
    def name(self) -> str:
        return f"{self.field}.{self.key}"

    @property
    def signed(self) -> bool:
        return self.lo < 0 < self.hi

    @property
    def log(self) -> bool:
        return not self.signed

    def to_search(self, x: float) -> float:
        return float(np.log(x)) if self.log else float(x)

    def from_search(self, u: float) -> float:
        if self.log:
            return float(np.exp(u))
        return float(u) if abs(u) >= 1e-3 else float(np.copysign(1e-3, u))  # gain 0 is invalid

    @property
    def search_bounds(self) -> tuple[float, float]:
        return self.to_search(self.lo), self.to_search(self.hi)


PARAMETER_SETS: dict[str, tuple[Param, ...]] = {
    "cartpole": (
        Param("mass_scale", "pole_1", 0.2, 5.0),
        Param("actuator_gain", "slide", -3.0, 3.0),
        Param("damping_scale", "slider", 0.1, 1e4),
    ),
    # one gain shared by every leg motor (a sagging supply, a driver's current limit), the torso mass and
    # one damping factor, with a pull toward nominal (DEFAULT_PRIOR): from post-alarm stance telemetry a
    # heavier torso and weaker motors explain the window about equally well, and six free gains plus
    # friction and knee damping gave estimates 0.04-0.76 per motor, torso 1.2-2.9 x where the truth was
    # 0.5 and 1.0 x (benchmarks/results/adapt.md, walker). Matches launch/robots/walker.yaml's drift block.
    "walker": (
        Param("mass_scale", "torso", 0.5, 4.0),
        Param("actuator_gain", "*", -1.5, 1.5),
        Param("damping_scale", "*", 0.2, 5.0),
    ),
    "reacher": (
        Param("mass_scale", "hand", 0.2, 5.0),
        Param("actuator_gain", "shoulder", -3.0, 3.0),
        Param("actuator_gain", "wrist", -3.0, 3.0),
        Param("damping_scale", "shoulder", 0.1, 20.0),
        Param("damping_scale", "wrist", 0.1, 20.0),
    ),
}
# prediction horizon (ticks) and number of windows per plant: about 0.15-0.4 s ahead, short enough
# that the open-loop replay of a closed-loop-stabilised robot does not diverge from start noise
DEFAULT_HORIZON = {"cartpole": 25, "walker": 16, "reacher": 15}
DEFAULT_WINDOWS = {"cartpole": 60, "walker": 24, "reacher": 60,
                   # a shipped profile robot: 1 ms physics steps make each replayed tick 10 mj_steps, and
                   # the payload shows in half the windows as clearly (tests/test_arm_robot.py)
                   "manipulator": 30}


def parameter_set(plant) -> tuple[Param, ...]:
    """What identification searches for `plant`: its PARAMETER_SETS entry, else (a robot profile) the
    profile's ``drift:`` block, which names what may drift and within which bounds. A named entry is
    one parameter; ``all`` is one factor on every object (``*``) for masses, damping and friction (a
    payload spread over the robot, a lubricant, a floor), but one gain per actuator (a motor fails,
    or is wired backwards, on its own) unless ``drift.tie_gains`` makes it one gain shared by all (a
    sagging supply). ValueError when neither exists."""
    if plant.name in PARAMETER_SETS:
        return PARAMETER_SETS[plant.name]
    profile = getattr(plant, "profile", None)
    if profile is None:
        raise ValueError(f"no system-identification parameter set for plant {plant.name!r}; "
                         f"known: {sorted(PARAMETER_SETS)} or a robot profile")
    from sim.profile.model_names import lookup_actuator
    drift, model, out = profile.doc.drift, plant.model, []
    for table in ("mass_scale", "damping_scale", "friction_scale"):
        for key, (lo, hi) in getattr(drift, table).items():
            out.append(Param(table, "*" if key == "all" else key, float(lo), float(hi)))
    for key, (lo, hi) in drift.actuator_gain.items():
        if key == "all" and drift.tie_gains:       # one gain shared by every actuator ("*" in a DriftSpec)
            out.append(Param("actuator_gain", "*", float(lo), float(hi)))
            continue
        ids = list(profile.actuators) if key == "all" else [lookup_actuator(model, key)]
        for i in ids:
            name = model.actuator(int(i)).name
            if not name:
                raise ValueError(f"{profile.name}: drift.actuator_gain.{key}: actuator {int(i)} has no name a "
                                 "DriftSpec can use (several actuators share its target: name them in the model)")
            out.append(Param("actuator_gain", name, float(lo), float(hi)))
    if not out:
        raise ValueError(f"{profile.name}: the profile's drift block names nothing to identify")
    return tuple(out)


# weight of the pull toward the nominal robot (sim.sysid.prior_factor) per built-in; a profile robot
# sets its own (drift.prior). 0: the data alone decides.
DEFAULT_PRIOR: dict[str, float] = {"walker": 2.0}


def default_prior(plant) -> float:
    """The prior weight identification uses for `plant` (DEFAULT_PRIOR, else its profile's drift.prior)."""
    if plant.name in DEFAULT_PRIOR:
        return DEFAULT_PRIOR[plant.name]
    profile = getattr(plant, "profile", None)
    return float(getattr(profile.doc.drift, "prior", 0.0) or 0.0) if profile is not None else 0.0


def model_ref(plant) -> str:
    """What `sim.plants.make_plant` takes to build `plant` again: a built-in name, or its profile's path."""
    profile = getattr(plant, "profile", None)
    return str(profile.path) if profile is not None and profile.path is not None else plant.name


def spec_from_params(params: dict[str, float], known: DriftSpec | None = None) -> DriftSpec:
    """DriftSpec for {"mass_scale.pole_1": 3.0, ...} stacked on top of `known` drift."""
    tables: dict[str, dict[str, float]] = {}
    for name, x in params.items():
        fld, key = name.split(".", 1)
        tables.setdefault(fld, {})[key] = float(x)
    return compose(known, DriftSpec(**tables))


__all__ = ["DEFAULT_HORIZON", "DEFAULT_PRIOR", "DEFAULT_WINDOWS", "PARAMETER_SETS", "Param", "default_prior", "model_ref", "parameter_set", "spec_from_params"]
