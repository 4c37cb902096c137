"""The robot-profile file format: pydantic models of its YAML, checked on their own (no model yet).

A profile is the one file that tells driftgate what a robot is (docs: /README "Bring your own robot",
design sketch ROBOT_PROFILE.md). This module checks its *shape* (types, ranges, one-of choices); names
are checked against the compiled MuJoCo model by `sim.profile.resolve`. Every error names the field
by its path in the file (``command.safe[1]``), because a user fixes a YAML file, not a traceback.

Names, by table:

- ROS names (``observe.joint_states.joints`` keys, ``safety.joint_bounds`` keys): what
  ``sensor_msgs/JointState.name`` carries on the robot.
- MuJoCo names (joint, body, site, geom): the model's own. Everywhere an *actuator* is named, an
  unnamed one (common in real MJCF files) is named by its transmission target: ``joint:NAME``,
  ``tendon:NAME``, ``site:NAME`` or ``body:NAME``; a named actuator may be named either way.
- Model paths are relative to the profile file, or ``PACKAGE:PATH`` inside an installed Python
  package (``dm_control:suite/cartpole.xml``, ``gymnasium:envs/mujoco/assets/ant.xml``).
"""
from __future__ import annotations

import math
import re
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

VERSION = 1
Finite = Annotated[float, Field(allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNeg = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1)]
ENTRY_POINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
QUANTITY = re.compile(r"^\s*(\w+)\s*\(\s*([^()]*?)\s*\)\s*$")
# quantity(name) -> what `name` is; see sim.profile.terms for their values
QUANTITIES = {"body_height": "body", "body_x": "body", "body_y": "body", "body_upright": "body",
              "joint_position": "joint", "joint_velocity": "joint", "control": "actuator"}


class Strict(BaseModel):
    """No unknown keys (a typo is an error, not a silently ignored setting), immutable."""
    model_config = ConfigDict(extra="forbid", frozen=True)


def _entry_point(v: Optional[str]) -> Optional[str]:
    if v is not None and not ENTRY_POINT.match(v):
        raise ValueError(f"{v!r} is not a 'package.module:function' entry point")
    return v


def _bounds(v):
    lo, hi = v
    if lo > hi:
        raise ValueError(f"lower bound {lo} > upper bound {hi}")
    return v


class UrdfActuator(Strict):
    """One actuator added to a URDF (URDF has no actuators; MuJoCo needs them)."""
    joint: Name
    kind: Literal["motor", "position", "velocity"] = "motor"
    name: Optional[Name] = None
    gear: Finite = 1.0
    ctrlrange: tuple[Finite, Finite] = (-1.0, 1.0)
    kp: Positive = 1.0            # position servo gain (kind: position)
    kv: Positive = 1.0            # velocity servo gain (kind: velocity)
    _b = field_validator("ctrlrange")(_bounds)


class ModelSource(Strict):
    """``{mjcf: PATH}`` or ``{urdf: PATH, actuators: [...]}``."""
    mjcf: Optional[Name] = None
    urdf: Optional[Name] = None
    actuators: Optional[list[UrdfActuator]] = None

    @model_validator(mode="after")
    def _one(self):
        if (self.mjcf is None) == (self.urdf is None):
            raise ValueError("give exactly one of mjcf or urdf")
        if self.mjcf is not None and self.actuators is not None:
            raise ValueError("actuators: only for a urdf model (an MJCF declares its own)")
        return self


class Control(Strict):
    rate_hz: Positive  # must be the model's 1/timestep divided by a whole number of sub-steps


class JointStates(Strict):
    """velocity: where the live nodes take joint velocities from (measured: JointState.velocity;
    differentiate: from successive positions, for drivers that publish none). The simulated
    `ProfilePlant` observes MuJoCo's velocities either way."""
    topic: Name = "joint_states"
    joints: dict[Name, Name] = Field(min_length=1)   # ROS JointState name -> MuJoCo joint, in obs order
    velocity: Literal["measured", "differentiate"] = "measured"
    # how a continuous joint's angle (a hinge with no range) enters the observation (sim.profile.angles):
    # raw: q; wrap: q in [-pi, pi); sincos: (sin q, cos q). Limited hinges and slides stay raw.
    angle: Literal["raw", "wrap", "sincos"] = "raw"


class Imu(Strict):
    """Orientation and angular velocity (in its own frame) of a body or a site, as sensor_msgs/Imu."""
    topic: Name = "imu"
    body: Optional[Name] = None
    site: Optional[Name] = None

    @model_validator(mode="after")
    def _one(self):
        if (self.body is None) == (self.site is None):
            raise ValueError("give exactly one of body or site")
        return self


class Odometry(Strict):
    """Position and world-frame linear velocity of a floating base (a body with a free joint)."""
    topic: Name = "odom"
    body: Name


class ExtraObservation(Strict):
    """Task signals a real robot receives on a topic of its own (a target, a goal): computed by an
    entry point ``f(frames) -> (B, len(names))``, see `sim.profile.terms.Frames`. Live, they arrive
    on `topic` as std_msgs/Float64MultiArray (len(names) values, in order), beside the joint states."""
    entry_point: Name
    names: list[Name] = Field(min_length=1)
    topic: Name = "task"
    _e = field_validator("entry_point")(_entry_point)


class Observe(Strict):
    joint_states: JointStates
    imu: Optional[Imu] = None
    odometry: Optional[Odometry] = None
    extra: Optional[ExtraObservation] = None


class Command(Strict):
    """std_msgs/Float64MultiArray index i -> actuator ``actuators[i]``. interface: the forward command
    controller's (effort / velocity / position); `robot check` flags an actuator of another kind
    (a motor behind a position interface). Every actuator of the model is listed exactly once."""
    topic: Name = "forward_effort_controller/commands"
    interface: Literal["effort", "velocity", "position"] = "effort"
    actuators: list[Name] = Field(min_length=1)
    safe: Optional[list[Finite]] = None   # default: zero, or the middle of a ctrlrange excluding it


class Fall(Strict):
    """The robot has fallen when `body` is below `min_height` (m) or tilted past `max_tilt_deg`."""
    body: Name
    min_height: Optional[Finite] = None
    max_tilt_deg: Optional[Annotated[float, Field(gt=0, le=180)]] = None

    @model_validator(mode="after")
    def _some(self):
        if self.min_height is None and self.max_tilt_deg is None:
            raise ValueError("give min_height, max_tilt_deg or both")
        return self


class Safety(Strict):
    joint_bounds: Union[Literal["from_model"], dict[Name, tuple[Finite, Finite]]] = "from_model"
    fall: list[Fall] = []

    @field_validator("joint_bounds")
    @classmethod
    def _ordered(cls, v):
        if isinstance(v, dict):
            for k, b in v.items():
                if b[0] >= b[1]:
                    raise ValueError(f"{k}: lower bound {b[0]} >= upper bound {b[1]}")
        return v

    @field_validator("fall", mode="before")
    @classmethod
    def _listify(cls, v):
        return [v] if isinstance(v, dict) else v


class InitialState(Strict):
    """qpos = nominal (`keyframe`, else the model's qpos0, then `qpos` by MuJoCo joint name)
    + N(0, qpos_noise) on hinge/slide joints; qvel = N(0, qvel_noise) on every dof. Or an entry
    point ``f(model, data, rng) -> episode constants or None`` that sets data.qpos/qvel itself."""
    qpos_noise: NonNeg = 0.0
    qvel_noise: NonNeg = 0.0
    qpos: dict[Name, Finite] = {}
    keyframe: Optional[Name] = None
    entry_point: Optional[Name] = None
    _e = field_validator("entry_point")(_entry_point)

    @model_validator(mode="after")
    def _alone(self):
        if self.entry_point and (self.qpos or self.keyframe or self.qpos_noise or self.qvel_noise):
            raise ValueError("entry_point sets the whole initial state: drop qpos, keyframe and the noise")
        return self


class Term(Strict):
    """One objective term in [0, 1]; exactly one of tolerance / upright / effort.

    tolerance: ``dm_control.utils.rewards.tolerance(QUANTITY, bounds, margin, sigmoid,
    value_at_margin)`` with QUANTITY one of ``body_height(B)``, ``body_x(B)``, ``body_y(B)``,
    ``body_upright(B)``, ``joint_position(J)``, ``joint_velocity(J)``, ``control(A)``.
    upright: ``(1 + cos(tilt of body)) / 2``. effort: mean over actuators (``all`` or a list) of
    tolerance(ctrl / ctrl limit, margin 1, quadratic, value 0 at the margin): 1 at rest, 0 at full.
    """
    tolerance: Optional[Name] = None
    upright: Optional[Name] = None
    effort: Optional[Union[Literal["all"], list[Name]]] = None
    bounds: tuple[float, float] = (0.0, 0.0)
    margin: NonNeg = 0.0
    sigmoid: Literal["gaussian", "quadratic"] = "gaussian"
    value_at_margin: Annotated[float, Field(ge=0, lt=1)] = 0.1
    weight: Positive = 1.0

    @model_validator(mode="after")
    def _one(self):
        given = [k for k in ("tolerance", "upright", "effort") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of tolerance, upright, effort (got {given or 'none'})")
        if self.bounds[0] > self.bounds[1] or any(math.isnan(b) for b in self.bounds):
            raise ValueError(f"bounds: lower {self.bounds[0]} > upper {self.bounds[1]}")
        if self.sigmoid == "gaussian" and self.margin > 0 and self.value_at_margin == 0:
            raise ValueError("value_at_margin: must be > 0 for the gaussian sigmoid")
        if self.tolerance is not None:
            m = QUANTITY.match(self.tolerance)
            if not m or m.group(1) not in QUANTITIES or not m.group(2):
                raise ValueError(f"tolerance: {self.tolerance!r} is not a quantity; known: "
                                 f"{', '.join(f'{q}(NAME)' for q in QUANTITIES)}")
        return self


class Objective(Strict):
    """model_reference (default): reproduce the nominal behaviour; terms: declarative; entry_point:
    ``f(frames) -> (B,)`` rewards (see `sim.profile.terms.Frames`)."""
    kind: Literal["model_reference", "terms", "entry_point"] = "model_reference"
    track: list[Literal["joint_positions", "joint_velocities", "base_orientation"]] = ["joint_positions"]
    # model_reference: what to reproduce. nominal_closed_loop: what the champion (assets.champion) does
    # on the nominal model from the same initial state (the nominal pose while there is no champion);
    # initial_pose: hold the nominal pose still. reference_ticks: how long the reference runs (then holds).
    reference: Literal["nominal_closed_loop", "initial_pose"] = "nominal_closed_loop"
    reference_ticks: Annotated[int, Field(ge=1, le=100_000)] = 1000
    terms: list[Term] = []
    combine: Literal["weighted_mean", "product"] = "weighted_mean"
    entry_point: Optional[Name] = None
    _e = field_validator("entry_point")(_entry_point)

    @model_validator(mode="after")
    def _consistent(self):
        if self.kind == "terms" and not self.terms:
            raise ValueError("terms: kind 'terms' needs at least one term")
        if self.kind == "entry_point" and not self.entry_point:
            raise ValueError("entry_point: kind 'entry_point' needs a 'module:function'")
        if self.kind != "terms" and self.terms:
            raise ValueError(f"terms: only with kind 'terms' (kind is {self.kind!r})")
        if self.kind != "entry_point" and self.entry_point:
            raise ValueError(f"entry_point: only with kind 'entry_point' (kind is {self.kind!r})")
        return self


Range = tuple[Finite, Finite]


class Drift(Strict):
    """What system identification may estimate, each with [low, high] bounds, by model name (or
    ``all``). actuator_gain may be negative (a motor wired backwards)."""
    mass_scale: dict[Name, Range] = {}
    actuator_gain: dict[Name, Range] = {}
    damping_scale: dict[Name, Range] = {}
    friction_scale: dict[Name, Range] = {}
    obs_bias: dict[Name, Range] = {}
    action_delay_ticks: tuple[Annotated[int, Field(ge=0, le=100)], Annotated[int, Field(ge=0, le=100)]] = (0, 0)
    # actuator_gain.all as ONE gain shared by every actuator (a sagging supply, a driver's current
    # limit) instead of one per actuator: one well-conditioned parameter where six trade off (sim.sysid_params)
    tie_gains: bool = False
    # pull toward the nominal robot in system identification (sim.sysid.prior_factor): among parameter
    # vectors that explain the telemetry about equally well, the one that changed least; 0 = data alone
    prior: Annotated[float, Field(ge=0, le=100)] = 0.0
    # the drift `driftgate demo` and the adaptation benchmark inject when none is given: a DriftSpec
    # mapping (mass_scale, actuator_gain, ... by model name) that the shipped champion fails on
    default: Optional[dict] = None

    @model_validator(mode="after")
    def _ranges(self):
        for table in ("mass_scale", "actuator_gain", "damping_scale", "friction_scale", "obs_bias"):
            for k, (lo, hi) in getattr(self, table).items():
                if lo > hi:
                    raise ValueError(f"{table}.{k}: lower bound {lo} > upper bound {hi}")
                if table.endswith("_scale") and lo <= 0:
                    raise ValueError(f"{table}.{k}: a scale must be > 0, got lower bound {lo}")
        if self.action_delay_ticks[0] > self.action_delay_ticks[1]:
            raise ValueError(f"action_delay_ticks: {self.action_delay_ticks[0]} > {self.action_delay_ticks[1]}")
        return self


class Assets(Strict):
    """Where this robot's driftgate files live, relative to the profile (created when missing)."""
    champion: Optional[Name] = None
    suite: Optional[Name] = None
    calibration: Optional[Name] = None


class ProfileDoc(Strict):
    version: Literal[1] = VERSION
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][\w.-]*$")]
    model: ModelSource
    control: Control
    observe: Observe
    command: Command
    safety: Safety = Safety()
    initial_state: InitialState = InitialState()
    objective: Objective = Objective()
    # what an adaptation job's evolution climbs (the sandbox's fitness), when the objective above
    # saturates for a good controller (the cartpole's balance reward sits at ~1 per tick for the LQR
    # model seed, so no individual can beat it); the gate and the job's stop rule and selection keep
    # judging on `objective` (the suite's metric). None: evolve on `objective`. kind terms / entry_point.
    adapt_objective: Optional[Objective] = None
    drift: Drift = Drift()
    assets: Assets = Assets()

    @model_validator(mode="after")
    def _adapt_objective(self):
        if self.adapt_objective is not None and self.adapt_objective.kind == "model_reference":
            raise ValueError("adapt_objective.kind: 'terms' or 'entry_point' (a job's objective names what to "
                             "improve; model_reference only reproduces the nominal robot)")
        return self


def field_path(loc) -> str:
    """pydantic's error location as the user reads the YAML: ``command.safe[1]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith(("literal[", "dict[", "tuple[")):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"
