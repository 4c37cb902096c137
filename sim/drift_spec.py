"""DriftSpec: what changed about the robot, as a frozen, canonical, hashable value.

A DriftSpec names model edits by the MuJoCo model's own names (`{"mass_scale": {"pole_1": 3.0}}`),
never by array index, so the same JSON means the same thing to the plant, to system identification,
to the genome metadata and to a person reading an audit log. Its hash is the sha256 of its canonical
JSON (sorted keys, no whitespace, identity entries dropped), so two specs that describe the same
robot have the same hash and fitnesses measured under different robots are never mixed.

Fields (all optional; the empty spec is the nominal robot):

- ``mass_scale``     body -> factor > 0; body mass *and* inertia are scaled (a uniform payload).
- ``friction_scale`` geom -> factor > 0 on all three friction coefficients.
- ``actuator_gain``  actuator -> non-zero factor on the actuator's gear (transmission); negative
                     is a motor wired backwards. Scaling gear keeps the actuator consistent for
                     every actuator type (force, length and moment all go through it).
- ``damping_scale``  joint -> factor > 0 on the joint's dof damping.
- ``gravity``        a factor on the nominal gravity vector, or an absolute 3-vector.
- ``obs_bias``       observation name or index (as a string) -> additive bias.
- ``obs_noise``      std of Gaussian noise added to every observation (>= 0).
- ``action_delay``   whole control ticks between a command and its effect (0..MAX_ACTION_DELAY).

Physical plausibility bounds (`BOUNDS`; a value outside is refused with the field and the bounds,
because a simulator fed 1e9 g or a 1e-9 mass produces numbers, not a robot):

- ``mass_scale``     [1e-2, 1e2]      a hundredth to a hundred times the nominal mass
- ``friction_scale`` [1e-3, 1e3]
- ``actuator_gain``  |g| in [1e-3, 1e2]   (either sign)
- ``damping_scale``  [1e-3, 1e5]      (worn joints: system identification searches up to 1e4)
- ``gravity``        scale in [1e-2, 1e1]; a 3-vector of norm <= 1e1 x 9.81 m/s^2 (any direction)
- ``obs_bias``       |b| <= 1e3
- ``obs_noise``      [0, 1e2]
- ``action_delay``   [0, MAX_ACTION_DELAY] ticks

``"*"`` (every object) is accepted in the four model tables and stacks multiplicatively with a
named entry (``{"*": 0.5, "left_foot": 0.5}`` makes the left foot 0.25).

Names are checked against a model only when the spec is applied (`apply_to_model`), because a spec
is plain data that may be parsed long before a plant exists. Applying and removing is exact: the
nominal values of every field a spec can touch, including those MuJoCo derives from masses
(`mj_setConst`), are kept and copied back bit for bit.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import mujoco
import numpy as np

from sim.atomicio import canonical_json

SCALE_FIELDS = ("mass_scale", "friction_scale", "damping_scale")
TABLE_FIELDS = SCALE_FIELDS + ("actuator_gain", "obs_bias")
FIELDS = TABLE_FIELDS + ("gravity", "obs_noise", "action_delay")
MAX_ACTION_DELAY = 100
WILDCARD = "*"
# (low, high) of each value's magnitude (see the module docstring); composed specs obey them too.
BOUNDS: dict[str, tuple[float, float]] = {
    "mass_scale": (1e-2, 1e2),
    "friction_scale": (1e-3, 1e3),
    "actuator_gain": (1e-3, 1e2),
    "damping_scale": (1e-3, 1e5),
    "gravity": (1e-2, 1e1),
    "obs_bias": (0.0, 1e3),
    "obs_noise": (0.0, 1e2),
}
NOMINAL_GRAVITY = 9.81

# Fields mj_setConst recomputes from masses/gears. Kept with the nominal copy so that removing a
# spec restores them exactly instead of recomputing them (recomputing is not guaranteed bit-exact).
SETCONST_FIELDS = (
    "body_subtreemass", "body_invweight0", "dof_invweight0", "tendon_invweight0", "dof_M0",
    "actuator_acc0", "actuator_length0", "tendon_length0", "cam_pos0", "cam_poscom0", "cam_mat0",
    "light_pos0", "light_poscom0", "light_dir0", "flex_interp",
)
EDIT_FIELDS = ("body_mass", "body_inertia", "geom_friction", "actuator_gear", "dof_damping")
Pairs = tuple[tuple[str, float], ...]


def _finite(x: Any, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise ValueError(f"DriftSpec.{where}: expected a number, got {x!r}")
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"DriftSpec.{where}: value must be finite, got {x!r}")
    return x


def _table(name: str, value: Any) -> Pairs:
    """Validate one per-name table and return it as sorted pairs without identity entries."""
    if isinstance(value, tuple):
        value = dict(value)
    if not isinstance(value, Mapping):
        raise ValueError(f"DriftSpec.{name}: expected an object of name -> number, got {value!r}")
    identity = 0.0 if name == "obs_bias" else 1.0
    out = {}
    for key, raw in value.items():
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool) and name == "obs_bias":
            key = str(int(key))
        if not isinstance(key, str) or not key:
            raise ValueError(f"DriftSpec.{name}: keys must be non-empty names, got {key!r}")
        x = _finite(raw, f"{name}[{key!r}]")
        if name in SCALE_FIELDS and x <= 0:
            raise ValueError(f"DriftSpec.{name}[{key!r}]: scale must be > 0, got {x!r}")
        if name == "actuator_gain" and x == 0:
            raise ValueError(f"DriftSpec.actuator_gain[{key!r}]: gain must be non-zero "
                             f"(negative = inverted wiring), got 0")
        lo, hi = BOUNDS[name]
        if not lo <= abs(x) <= hi:
            what = "|value|" if name in ("actuator_gain", "obs_bias") else "value"
            raise ValueError(f"DriftSpec.{name}[{key!r}]: {x!r} is not physically plausible; "
                             f"{what} must be in [{lo:g}, {hi:g}]")
        if x != identity:
            out[key] = x
    return tuple(sorted(out.items()))


def _gravity(value: Any) -> float | tuple[float, float, float] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple, np.ndarray)):
        if len(value) != 3:
            raise ValueError(f"DriftSpec.gravity: expected a scale or a 3-vector, got {value!r}")
        g = tuple(_finite(v, f"gravity[{i}]") for i, v in enumerate(value))
        limit = BOUNDS["gravity"][1] * NOMINAL_GRAVITY
        if math.sqrt(sum(v * v for v in g)) > limit:
            raise ValueError(f"DriftSpec.gravity: {list(g)} is not physically plausible; its norm must be "
                             f"<= {limit:g} m/s^2")
        return g
    x = _finite(value, "gravity")
    if x <= 0:
        raise ValueError(f"DriftSpec.gravity: scale must be > 0 (use a 3-vector to point it "
                         f"elsewhere), got {x!r}")
    lo, hi = BOUNDS["gravity"]
    if not lo <= x <= hi:
        raise ValueError(f"DriftSpec.gravity: scale {x!r} is not physically plausible; must be in [{lo:g}, {hi:g}]")
    return None if x == 1.0 else x


@dataclass(frozen=True)
class DriftSpec:
    """A plant variant. Tables are stored as sorted ``(name, value)`` pairs; pass dicts freely.

    Construct with keyword arguments (``DriftSpec(mass_scale={"pole_1": 3.0})``) or from JSON with
    `parse`. Construction validates values; `apply_to_model` validates names.
    """

    mass_scale: Pairs = ()
    friction_scale: Pairs = ()
    actuator_gain: Pairs = ()
    damping_scale: Pairs = ()
    obs_bias: Pairs = ()
    gravity: float | tuple[float, float, float] | None = None
    obs_noise: float = 0.0
    action_delay: int = 0
    _json: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in TABLE_FIELDS:
            object.__setattr__(self, name, _table(name, getattr(self, name)))
        object.__setattr__(self, "gravity", _gravity(self.gravity))
        noise = _finite(self.obs_noise, "obs_noise")
        if not 0 <= noise <= BOUNDS["obs_noise"][1]:
            raise ValueError(f"DriftSpec.obs_noise: std must be in [0, {BOUNDS['obs_noise'][1]:g}], got {noise!r}")
        object.__setattr__(self, "obs_noise", noise)
        delay = self.action_delay
        if isinstance(delay, float) and delay.is_integer():
            delay = int(delay)
        if isinstance(delay, bool) or not isinstance(delay, (int, np.integer)) \
                or not 0 <= delay <= MAX_ACTION_DELAY:
            raise ValueError(f"DriftSpec.action_delay: expected an integer number of ticks in "
                             f"[0, {MAX_ACTION_DELAY}], got {self.action_delay!r}")
        object.__setattr__(self, "action_delay", int(delay))
        object.__setattr__(self, "_json", canonical_json(self.as_dict()))

    # -- canonical form -------------------------------------------------------------------------
    def as_dict(self) -> dict:
        """The canonical dict: only fields that differ from nominal."""
        out: dict[str, Any] = {name: dict(getattr(self, name))
                               for name in TABLE_FIELDS if getattr(self, name)}
        if self.gravity is not None:
            out["gravity"] = list(self.gravity) if isinstance(self.gravity, tuple) else self.gravity
        if self.obs_noise:
            out["obs_noise"] = self.obs_noise
        if self.action_delay:
            out["action_delay"] = self.action_delay
        return out

    def to_json(self) -> str:
        return self._json

    @property
    def hash(self) -> str:
        return hashlib.sha256(self._json.encode()).hexdigest()

    @property
    def is_nominal(self) -> bool:
        return self._json == "{}"

    @classmethod
    def from_json(cls, text: str) -> "DriftSpec":
        return cls.parse(text)

    @classmethod
    def parse(cls, value: "str | Mapping | DriftSpec | None") -> "DriftSpec":
        """A DriftSpec from JSON text, a dict, None (nominal) or a DriftSpec (returned as is)."""
        if value is None:
            return cls()
        if isinstance(value, DriftSpec):
            return value
        if isinstance(value, (str, bytes)):
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f"DriftSpec: not valid JSON ({exc})") from None
        if not isinstance(value, Mapping):
            raise ValueError(f"DriftSpec: expected a JSON object, got {type(value).__name__}")
        unknown = sorted(set(value) - set(FIELDS))
        if unknown:
            raise ValueError(f"DriftSpec: unknown field(s) {unknown}; known fields: {list(FIELDS)}")
        return cls(**dict(value))

    def value(self, field_name: str, key: str, default: float | None = None) -> float | None:
        """The value of one table entry (identity when absent, unless `default` is given)."""
        table = dict(getattr(self, field_name))
        if key in table:
            return table[key]
        if default is not None:
            return default
        return 0.0 if field_name == "obs_bias" else 1.0

    def __str__(self) -> str:
        return self._json


def compose(*specs: "DriftSpec | Mapping | str | None") -> DriftSpec:
    """Stack variants left to right: scales and gains multiply, other fields are overridden by the
    later spec where it sets them (bias per key, noise, delay, absolute gravity)."""
    out: dict[str, Any] = {}
    for spec in map(DriftSpec.parse, specs):
        for name in ("mass_scale", "friction_scale", "damping_scale", "actuator_gain"):
            table = dict(out.get(name, {}))
            for key, x in getattr(spec, name):
                table[key] = table.get(key, 1.0) * x
            out[name] = table
        out["obs_bias"] = {**dict(out.get("obs_bias", {})), **dict(spec.obs_bias)}
        if spec.gravity is not None:
            prev = out.get("gravity")
            if isinstance(spec.gravity, tuple) or prev is None:
                out["gravity"] = spec.gravity
            elif isinstance(prev, tuple):
                out["gravity"] = tuple(g * spec.gravity for g in prev)
            else:
                out["gravity"] = prev * spec.gravity
        if spec.obs_noise:
            out["obs_noise"] = spec.obs_noise
        if spec.action_delay:
            out["action_delay"] = spec.action_delay
    return DriftSpec(**out)


# -- applying to a MuJoCo model ------------------------------------------------------------------

@dataclass(frozen=True)
class NominalModel:
    """Copies of every MjModel field a DriftSpec can change (directly or through mj_setConst)."""

    arrays: dict[str, np.ndarray]
    gravity: np.ndarray

    @classmethod
    def snapshot(cls, model: mujoco.MjModel) -> "NominalModel":
        names = [n for n in EDIT_FIELDS + SETCONST_FIELDS if hasattr(model, n)]
        return cls({n: np.array(getattr(model, n), copy=True) for n in names},
                   np.array(model.opt.gravity, copy=True))


_OBJ = {"mass_scale": (mujoco.mjtObj.mjOBJ_BODY, "body", "nbody"),
        "friction_scale": (mujoco.mjtObj.mjOBJ_GEOM, "geom", "ngeom"),
        "actuator_gain": (mujoco.mjtObj.mjOBJ_ACTUATOR, "actuator", "nu"),
        "damping_scale": (mujoco.mjtObj.mjOBJ_JOINT, "joint", "njnt")}


def model_names(model: mujoco.MjModel, field_name: str) -> list[str]:
    """The names a table field may use for this model (in id order)."""
    obj, _, count = _OBJ[field_name]
    return [mujoco.mj_id2name(model, obj, i) or "" for i in range(getattr(model, count))]


def factors(model: mujoco.MjModel, spec: DriftSpec, field_name: str) -> np.ndarray:
    """Per-object multiplicative factors for one table field; unknown names raise ValueError."""
    obj, kind, count = _OBJ[field_name]
    out = np.ones(getattr(model, count))
    for key, x in getattr(spec, field_name):
        if key == WILDCARD:
            lo = 1 if field_name == "mass_scale" else 0  # the world body has no mass to scale
            out[lo:] *= x
            continue
        i = mujoco.mj_name2id(model, obj, key)
        if i < 0:
            known = [n for n in model_names(model, field_name) if n]
            raise ValueError(f"DriftSpec.{field_name}: unknown {kind} {key!r} for this model; "
                             f"known: {known}")
        out[i] *= x
    return out


def check_names(model: mujoco.MjModel, spec: DriftSpec) -> None:
    """Raise ValueError naming the field and the key if `spec` names something `model` lacks."""
    for name in _OBJ:
        factors(model, spec, name)


def apply_to_model(model: mujoco.MjModel, nominal: NominalModel, spec: DriftSpec,
                   scratch: mujoco.MjData | None = None) -> tuple[str, ...]:
    """Write `spec` onto `model`, starting from the nominal values. Returns the fields touched.

    Every edit is computed from `nominal`, never from the current model, so applying a spec twice
    or applying a different one without clearing gives the same model as applying it once.
    """
    touched: list[str] = []
    # validate every name before touching anything: a bad spec leaves the model as it was
    f = {name: factors(model, spec, name) for name in _OBJ}
    if spec.mass_scale:
        model.body_mass[:] = nominal.arrays["body_mass"] * f["mass_scale"]
        model.body_inertia[:] = nominal.arrays["body_inertia"] * f["mass_scale"][:, None]
        touched += ["body_mass", "body_inertia"]
    if spec.friction_scale:
        model.geom_friction[:] = nominal.arrays["geom_friction"] * f["friction_scale"][:, None]
        touched.append("geom_friction")
    if spec.actuator_gain:
        model.actuator_gear[:] = nominal.arrays["actuator_gear"] * f["actuator_gain"][:, None]
        touched.append("actuator_gear")
    if spec.damping_scale:
        per_dof = np.ones(model.nv)
        for j, x in enumerate(f["damping_scale"]):
            width = {mujoco.mjtJoint.mjJNT_FREE: 6, mujoco.mjtJoint.mjJNT_BALL: 3}.get(
                int(model.jnt_type[j]), 1)
            per_dof[model.jnt_dofadr[j]:model.jnt_dofadr[j] + width] *= x
        model.dof_damping[:] = nominal.arrays["dof_damping"] * per_dof
        touched.append("dof_damping")
    if spec.gravity is not None:
        g = spec.gravity
        model.opt.gravity[:] = np.asarray(g) if isinstance(g, tuple) else nominal.gravity * g
        touched.append("opt.gravity")
    if spec.mass_scale or spec.actuator_gain:
        # Derived constants (subtree masses, inverse weights used by the constraint solver,
        # actuator_acc0): the drifted model must equal a model compiled with these values.
        mujoco.mj_setConst(model, scratch if scratch is not None else mujoco.MjData(model))
        touched += [n for n in SETCONST_FIELDS if n in nominal.arrays]
    return tuple(touched)


def restore_model(model: mujoco.MjModel, nominal: NominalModel, touched: tuple[str, ...]) -> None:
    """Copy the nominal values back into every touched field (bit-exact)."""
    for name in touched:
        if name == "opt.gravity":
            model.opt.gravity[:] = nominal.gravity
        else:
            getattr(model, name)[...] = nominal.arrays[name]


# -- named variants ------------------------------------------------------------------------------

VARIANTS: dict[str, dict[str, DriftSpec]] = {
    "cartpole": {
        "payload": DriftSpec(mass_scale={"pole_1": 3.0}),
        "gain_loss": DriftSpec(actuator_gain={"slide": 0.5}),
        "reversed_motor": DriftSpec(actuator_gain={"slide": -1.0}),
        "joint_wear": DriftSpec(damping_scale={"slider": 1000.0}),
        "sensor_bias": DriftSpec(obs_bias={"pole_sin": 0.05}),
        "sensor_noise": DriftSpec(obs_noise=0.01),
        "action_delay": DriftSpec(action_delay=2),
    },
    "walker": {
        "payload": DriftSpec(mass_scale={"torso": 1.5}),
        "gain_loss": DriftSpec(actuator_gain={"right_knee": 0.5, "left_knee": 0.5}),
        "reversed_motor": DriftSpec(actuator_gain={"right_hip": -1.0}),
        "low_friction": DriftSpec(friction_scale={"*": 0.3}),
        "joint_wear": DriftSpec(damping_scale={"right_knee": 5.0, "left_knee": 5.0}),
        "sensor_bias": DriftSpec(obs_bias={"height": 0.05}),
    },
    "reacher": {
        "payload": DriftSpec(mass_scale={"hand": 3.0}),
        "gain_loss": DriftSpec(actuator_gain={"shoulder": 0.5}),
        "reversed_motor": DriftSpec(actuator_gain={"wrist": -1.0}),
        "joint_wear": DriftSpec(damping_scale={"shoulder": 5.0, "wrist": 5.0}),
        "sensor_bias": DriftSpec(obs_bias={"wrist.position": 0.1}),
    },
}
# The headline scenario: a heavier pole on a cart whose motor was wired backwards.
VARIANTS["cartpole"]["payload_reversed"] = compose(VARIANTS["cartpole"]["payload"],
                                                   VARIANTS["cartpole"]["reversed_motor"])


def variant(plant: str, *names: str) -> DriftSpec:
    """Compose named variants of one plant: ``variant("cartpole", "payload", "reversed_motor")``."""
    if plant not in VARIANTS:
        raise ValueError(f"no drift variants for plant {plant!r}; known plants: {sorted(VARIANTS)}")
    unknown = [n for n in names if n not in VARIANTS[plant]]
    if unknown:
        raise ValueError(f"unknown {plant} variant(s) {unknown}; known: {sorted(VARIANTS[plant])}")
    return compose(*(VARIANTS[plant][n] for n in names))
