"""Labelled drift scenarios for the drift-detection benchmark and for calibration recordings.

A scenario is a plant run by a fixed controller with realistic nominal variation and sensor noise
(sigma = 0.01 on every observation), plus the list of drifts to inject: abrupt ones (a DriftSpec
switched on at a known time) and a gradual actuator-wear ramp (the gain falls linearly by 40 % over
30 s). Drift names follow `sim.drift_spec.VARIANTS` where a variant exists; the variants are
mostly mild (the controllers shrug them off), so each plant also gets a few severe cases that do
cut task performance (a heavier cart, a weaker motor, a larger sensor bias, a heavier torso).

Controllers:

- cartpole: the plant's own LQR, tracking a sinusoidal cart setpoint (0.4 m, 4 s period).
- walker:   the plant's squat controller structure (`WalkerSquat`: LQR about the crouched stance
            with contacts + gravity feed-forward), squatting 0.05 rad with a 3 s period, but with
            the LQR's control weight R = 10 I instead of the plant's R = I (`walker_squat`). With
            R = I and sigma = 0.01 sensor noise the motors saturate on noise and the walker falls
            within minutes (at the default 0.3 rad squat within ~10-30 s even without noise); a
            robot that falls over in nominal operation cannot measure false-alarm rates. With
            R = 10 I the walker still falls now and then (measured: 1 fall in 4 simulated hours
            at 0.05 rad, 1 in 1.5 h at 0.1 rad, 2 of 3 seeds within 30 min at 0.3 rad), so the
            benchmark ends a nominal episode at a fall and reports falls apart.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import mujoco
import numpy as np

from sim.drift_spec import VARIANTS, DriftSpec, compose
from sim.plants import Plant, make_plant

OBS_NOISE = 0.01


@dataclass
class FilteredController:
    """Runs `inner` on an exponentially smoothed observation (f += alpha (obs - f))."""

    inner: Any
    alpha: float = 0.5
    _f: np.ndarray | None = field(default=None, init=False, repr=False)

    def reset(self) -> None:
        if hasattr(self.inner, "reset"):
            self.inner.reset()
        self._f = None

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        self._f = obs.copy() if self._f is None else self._f + self.alpha * (obs - self._f)
        return self.inner(self._f)


def walker_squat(plant: Plant, depth: float = 0.05, period: float = 3.0, r_scale: float = 10.0):
    """The plant's `WalkerSquat` with LQR gains computed for control weight R = r_scale I."""
    return plant.nominal_controller(depth, period, r_scale=r_scale)


@dataclass(frozen=True)
class DriftCase:
    """One labelled drift. ``kind`` is "abrupt" (switched on at onset) or "gradual" (the spec is
    reached linearly over ``ramp_s`` seconds and then held)."""

    name: str
    kind: str
    spec: DriftSpec
    ramp_s: float = 0.0

    def at(self, elapsed_s: float) -> DriftSpec:
        """The drift `elapsed_s` seconds after onset (without sensor noise)."""
        if self.kind != "gradual" or self.ramp_s <= 0 or elapsed_s >= self.ramp_s:
            return self.spec
        return interpolate(self.spec, max(0.0, elapsed_s) / self.ramp_s)


def interpolate(spec: DriftSpec, frac: float) -> DriftSpec:
    """A fraction of a drift: scale and gain tables move linearly from 1 to their value, biases
    from 0 (other fields are not interpolated and must be absent)."""
    if spec.gravity is not None or spec.obs_noise or spec.action_delay:
        raise ValueError("interpolate: only table fields (scales, gains, biases) can be ramped")
    out = {}
    for name in ("mass_scale", "friction_scale", "damping_scale", "actuator_gain"):
        out[name] = {k: 1.0 + (v - 1.0) * frac for k, v in getattr(spec, name)}
    out["obs_bias"] = {k: v * frac for k, v in spec.obs_bias}
    return DriftSpec(**out)


@dataclass(frozen=True)
class DriftScenario:
    """A plant under its fixed nominal controller with sensor noise, and the labelled drifts to inject
    (the drift benchmark's unit; not the gate's `safety.suite.Scenario`)."""

    plant: str
    controller_kw: dict
    obs_filter: float | None       # FilteredController alpha; None: the controller sees raw obs
    drifts: tuple[DriftCase, ...]
    obs_noise: float = OBS_NOISE
    controller_factory: Any = None   # (plant, **controller_kw) -> controller; None: plant's own

    def make_plant(self, seed: int) -> Plant:
        return make_plant(self.plant, seed=seed, drift=self.noise_spec())

    def noise_spec(self, drift: DriftSpec | None = None) -> DriftSpec:
        return compose(drift, {"obs_noise": self.obs_noise}) if self.obs_noise else \
            DriftSpec.parse(drift)

    def make_controller(self, plant: Plant):
        make = self.controller_factory or (lambda p, **kw: p.nominal_controller(**kw))
        ctrl = make(plant, **self.controller_kw)
        if self.obs_filter is not None:
            ctrl = FilteredController(ctrl, self.obs_filter)
        ctrl.reset()
        return ctrl

    def drift(self, name: str) -> DriftCase:
        for d in self.drifts:
            if d.name == name:
                return d
        raise ValueError(f"unknown {self.plant} drift {name!r}; known: {[d.name for d in self.drifts]}")


def _v(plant: str, name: str) -> DriftSpec:
    return VARIANTS[plant][name]


WEAR = 0.6          # actuator gain at the end of the wear ramp (a 40 % loss)
RAMP_S = 30.0

SCENARIOS: dict[str, DriftScenario] = {
    "cartpole": DriftScenario(
        plant="cartpole", controller_kw={"amplitude": 0.4, "period": 4.0}, obs_filter=None,
        drifts=(
            DriftCase("payload", "abrupt", _v("cartpole", "payload")),            # pole mass x3
            DriftCase("heavy_cart_x5", "abrupt", DriftSpec(mass_scale={"cart": 5.0})),
            DriftCase("gain_loss", "abrupt", _v("cartpole", "gain_loss")),        # motor gain x0.5
            DriftCase("gain_loss_x0.2", "abrupt", DriftSpec(actuator_gain={"slide": 0.2})),
            DriftCase("reversed_motor", "abrupt", _v("cartpole", "reversed_motor")),
            DriftCase("joint_wear", "abrupt", _v("cartpole", "joint_wear")),      # slider damping
            DriftCase("low_friction", "abrupt", DriftSpec(friction_scale={"*": 0.3})),
            DriftCase("sensor_bias", "abrupt", _v("cartpole", "sensor_bias")),    # pole_sin +0.05
            DriftCase("sensor_bias_0.2", "abrupt", DriftSpec(obs_bias={"pole_sin": 0.2})),
            DriftCase("wear_ramp", "gradual", DriftSpec(actuator_gain={"slide": WEAR}), RAMP_S),
        )),
    "walker": DriftScenario(
        plant="walker", controller_kw={"depth": 0.05, "period": 3.0}, obs_filter=None,
        controller_factory=walker_squat,
        drifts=(
            DriftCase("payload", "abrupt", _v("walker", "payload")),              # torso mass x1.5
            DriftCase("payload_x3", "abrupt", DriftSpec(mass_scale={"torso": 3.0})),
            DriftCase("gain_loss", "abrupt", _v("walker", "gain_loss")),          # knees x0.5
            DriftCase("gain_loss_all_x0.5", "abrupt", DriftSpec(actuator_gain={"*": 0.5})),
            DriftCase("reversed_motor", "abrupt", _v("walker", "reversed_motor")),  # right hip
            DriftCase("joint_wear", "abrupt", _v("walker", "joint_wear")),        # knee damping x5
            DriftCase("low_friction", "abrupt", _v("walker", "low_friction")),    # friction x0.3
            DriftCase("sensor_bias", "abrupt", _v("walker", "sensor_bias")),      # height +0.05
            DriftCase("wear_ramp", "gradual", DriftSpec(actuator_gain={"*": WEAR}), RAMP_S),
        )),
}


class _Held:
    """A stateless controller with the `reset` the scenarios call."""

    def __init__(self, act) -> None:
        self._act = act

    def reset(self) -> None:
        pass

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self._act(obs)


def profile_scenario(plant: str, champion=None) -> DriftScenario:
    """A robot profile's scenario, built from data: its champion drives it (a profile names no other
    controller; `champion` is a Genome, default the profile's assets.champion), with the standard
    sensor noise. Drifts: the profile's ``drift.default`` (abrupt, when it names one) and a 40 % wear
    ramp of every actuator (gradual)."""
    from sim.adapt_job import nominal_champion
    from sim.distill import policy_controller
    from sim.profile import load_profile
    from sim.profile import find_profile
    genome = champion if champion is not None else nominal_champion(plant)
    make = policy_controller(genome)
    default = load_profile(find_profile(plant)).doc.drift.default   # a built-in's: its shipped profile
    drifts = [DriftCase("wear_ramp", "gradual", DriftSpec(actuator_gain={"*": WEAR}), RAMP_S)]
    if default:
        drifts.insert(0, DriftCase("default", "abrupt", DriftSpec.parse(default)))
    return DriftScenario(plant=plant, controller_kw={}, obs_filter=None, drifts=tuple(drifts),
                         controller_factory=lambda p: _Held(make()))


def has_scenario(plant: str) -> bool:
    """A built-in scenario, or a robot profile whose champion exists (it is the controller); a
    built-in without a scenario of its own (the reacher) counts as its shipped profile."""
    if plant in SCENARIOS:
        return True
    from sim.plants import is_profile
    from sim.profile import builtin_profiles, find_profile, load_profile
    if not is_profile(plant) and plant not in builtin_profiles():
        return False
    try:
        path = load_profile(find_profile(plant)).asset_path("champion")
    except (OSError, ValueError):
        return False
    return path is not None and path.exists()


def scenario(plant: str, champion=None) -> DriftScenario:
    """The plant's scenario (a robot profile's from `profile_scenario`, with `champion` if given)."""
    if plant in SCENARIOS:
        return SCENARIOS[plant]
    from sim.plants import is_profile
    if is_profile(plant) or has_scenario(plant):
        return profile_scenario(plant, champion)
    raise ValueError(f"no drift scenario for plant {plant!r}; known: {sorted(SCENARIOS)} or a robot profile "
                     "with a champion")


def step_fast(plant: Plant, action: np.ndarray) -> np.ndarray:
    """`plant.act(action)[0]` without computing the reward (dm_control's reward costs more than
    the physics). Only for plants without an action delay; the observation (noise included) is
    identical to what `act` returns."""
    if plant.drift.action_delay:
        raise ValueError("step_fast: not for plants with an action delay")
    action = np.clip(action, plant.act_low, plant.act_high)
    plant.data.ctrl[:] = action if plant.ctrl_order is None else action[plant.ctrl_order]   # as Plant.act
    mujoco.mj_step(plant.model, plant.data, plant.n_sub_steps)
    mujoco.mj_forward(plant.model, plant.data)
    return plant.observe()


def record_nominal(plant_name: str, seconds: float, seed: int = 0, with_reward: bool = True,
                   champion=None):
    """Simulate `seconds` of nominal telemetry for a scenario's plant and controller (a robot
    profile's: `champion`, default its assets.champion).

    Returns (t, obs, action, reward) arrays, the format `TelemetryWindow` holds (reward NaN when
    `with_reward` is False).
    """
    sc = scenario(plant_name, champion)
    plant = sc.make_plant(seed)
    ctrl = sc.make_controller(plant)
    n = int(math.ceil(seconds / plant.control_dt))
    t = np.empty(n)
    obs_a = np.empty((n, plant.obs_dim))
    act_a = np.empty((n, plant.act_dim))
    rew = np.full(n, np.nan)
    obs, r = plant.observe(), math.nan
    for i in range(n):
        a = ctrl(obs)
        t[i], obs_a[i], act_a[i], rew[i] = plant.time, obs, a, r
        if with_reward:
            obs, r = plant.act(a)
        else:
            obs = step_fast(plant, a)
    return t, obs_a, act_a, rew
