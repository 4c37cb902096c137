"""The one small interface every simulated robot offers, and the drift machinery they share.

A `Plant` owns a dm_control `Physics` (so domain code reads `physics.named.data.qpos['slider']`,
never a magic index) but steps it with raw `mujoco.mj_step`, the same call system identification
and population evaluation use: a trajectory from `act` and one replayed from `get_state` are then
the same function of the same numbers, bit for bit.

Why the stepping detail matters: dm_control's legacy step splits `mj_step` into `mj_step2/mj_step1`
so that derived quantities are fresh after a step. Mixing the two styles between the live plant and
the replay would give trajectories that differ in the last bits and make "deterministic replay"
untestable. Here a control tick is `mj_step(n_sub_steps)` followed by `mj_forward` (which writes
only derived quantities, not state), so observations and rewards read fresh kinematics.

The plant's state (`get_state`) is MuJoCo's integration state (time, qpos, qvel, act, warm start,
ctrl, applied forces: `mjSTATE_INTEGRATION`) followed by the actions still queued by an
`action_delay` drift. The warm start is included because with contacts the constraint solver's
result depends on it; leaving it out breaks exact replay for the walker.

Drift has three parts: model edits (delegated to `sim.drift_spec.apply_to_model`, restored exactly),
observation edits (bias, Gaussian noise from the plant's seeded generator) and the action delay.

Population evaluation uses the batched twin of `reset`/`act`, `PlantBatch`: B episodes of one plant,
each in its own `MjData` of the plant's (drifted) model, stepped with `mujoco.mj_step` in one tight
loop, with observation and reward computed for all B at once in numpy (`Plant.observe_batch`,
`Plant.reward_batch`, reading the stacked MjData arrays of a `DataBatch`). It reproduces `act` bit
for bit (tests/test_fast_eval.py compares the two); `act` stays the reference.
"""
from __future__ import annotations

from collections import deque
from typing import Callable, Sequence

import mujoco
import numpy as np

from sim.drift_spec import DriftSpec, NominalModel, apply_to_model, check_names, restore_model
from sim.plants.limits import HardLimits, joint_range_limits
from sim.plants.lqr import LinearFeedback

STATE_SPEC = mujoco.mjtState.mjSTATE_INTEGRATION
Controller = Callable[[np.ndarray], np.ndarray]


class DataBatch:
    """B `MjData` of one model, and stacked (B, ...) copies of the MjData arrays read in batch.

    `fields` names MjData attributes (`qpos`, `xmat`, `geom_xpos`, ..., and `time`); after every
    `step`/`refresh` each is available as an attribute of the batch, e.g. `batch.xmat` of shape
    (B, nbody, 9), row i being `datas[i].xmat`. Stacks are filled by one `np.concatenate` per field
    over views of each MjData's own memory (made once), not by Python-level copies per episode.

    `step` runs `mj_step` and then `mj_kinematics`, not `mj_forward` as `Plant.act` does: the batched
    observations and rewards read only positions, velocities, controls, time and kinematics (body
    and geom poses), and `mj_forward` writes no part of the state that `mj_step` reads (the warm start
    is saved by the integrator), so the trajectory is the same, bit for bit, at a fraction of the cost.
    """

    def __init__(self, model: mujoco.MjModel, size: int, fields: Sequence[str]) -> None:
        self.model = model
        self.datas = [mujoco.MjData(model) for _ in range(size)]
        self.fields = tuple(fields)
        self._ctrl = [d.ctrl for d in self.datas]
        self._gather = []
        for name in self.fields:
            if name == "time":
                continue
            views = [getattr(d, name)[None] for d in self.datas]
            stack = np.empty((size, *views[0].shape[1:]))
            setattr(self, name, stack)
            self._gather.append((views, stack))
        if "time" in self.fields:
            self.time = np.zeros(size)

    @property
    def size(self) -> int:
        return len(self.datas)

    def set_state(self, i: int, state: np.ndarray) -> None:
        """Episode i starts from an `mjSTATE_INTEGRATION` vector (call `refresh` after the last)."""
        data = self.datas[i]
        mujoco.mj_resetData(self.model, data)
        mujoco.mj_setState(self.model, data, state, STATE_SPEC)

    def step(self, ctrl: np.ndarray, n_sub_steps: int) -> None:
        """Row i of `ctrl` (B, nu) to MjData i, `n_sub_steps` physics steps, kinematics, gather."""
        model, step, kinematics = self.model, mujoco.mj_step, mujoco.mj_kinematics
        for data, data_ctrl, u in zip(self.datas, self._ctrl, ctrl):
            data_ctrl[:] = u
            step(model, data, n_sub_steps)
            kinematics(model, data)
        self.gather()

    def refresh(self) -> None:
        """Kinematics of the current states, then gather."""
        for data in self.datas:
            mujoco.mj_kinematics(self.model, data)
        self.gather()

    def gather(self) -> None:
        for views, stack in self._gather:
            np.concatenate(views, out=stack)
        if "time" in self.fields:
            self.time[:] = [d.time for d in self.datas]


class Plant:
    """A dm_control robot behind reset / observe / act / reward / get_state / set_state.

    Subclasses set the class attributes and implement `_make_physics`, `_observe`, `reward`,
    `_initialize_episode` and `nominal_controller`, in the style of a dm_control suite domain.
    """

    name: str = ""
    obs_names: tuple[str, ...] = ()
    n_sub_steps: int = 1
    # actions are in command order; MuJoCo's ctrl[k] = action[ctrl_order[k]] (None: the same order)
    ctrl_order: np.ndarray | None = None

    def __init__(self, seed: int = 0, drift: DriftSpec | dict | str | None = None) -> None:
        self.physics = self._make_physics()
        self.model: mujoco.MjModel = self.physics.model.ptr
        self.data: mujoco.MjData = self.physics.data.ptr
        self._scratch = mujoco.MjData(self.model)
        self._nominal = NominalModel.snapshot(self.model)
        self._touched: tuple[str, ...] = ()
        self.drift = DriftSpec()
        self._bias = np.zeros(self.obs_dim)
        self._queue: deque[np.ndarray] = deque()
        self.rng = np.random.default_rng(seed)
        self.mj_state_size = mujoco.mj_stateSize(self.model, STATE_SPEC)
        self.apply_drift(drift)
        self.reset(seed)

    # -- subclass hooks --------------------------------------------------------------------------
    def _make_physics(self):
        raise NotImplementedError

    def _initialize_episode(self, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def _observe(self) -> np.ndarray:
        raise NotImplementedError

    def reward(self) -> float:
        raise NotImplementedError

    def fallen_batch(self, obs: np.ndarray) -> np.ndarray:
        """(n,) bool: observations (n, obs_dim) of a robot that has left the region where its task
        can still be done (an episode that an operator would have to stop). Default: never."""
        return np.zeros(len(obs), dtype=bool)

    def nominal_controller(self) -> Controller:
        raise NotImplementedError

    def nominal_feedback(self) -> LinearFeedback | None:
        """The nominal controller as linear state feedback on the observation, when it is one (a first
        champion for an empty registry, `controller.bootstrap`); None when it is not."""
        return None

    def hard_limits(self) -> HardLimits:
        """The robot's hard limits (see `HardLimits`). Default: every limited joint of
        `joint_names` within the model's range plus `JOINT_TOL` (hinge) / `SLIDE_TOL` (slide), no falls."""
        names = self.joint_names
        return HardLimits(state=joint_range_limits(self.model, names, [self.model.joint(n).id for n in names]))

    @classmethod
    def analytic_observation(cls):
        """A closed-form `sim.observation.ObservationMap` (joint states -> observation) when the plant has
        one; None: the runtime measures the observation by forward kinematics of the model."""
        return None

    # a moving task target that a gate probe may displace (`move_target`); most robots have none
    moves_target: bool = False

    def move_target(self, phase: float) -> None:
        """Advance the task target by `phase` (a gate's target_jump probe); only when `moves_target`."""
        raise ValueError(f"{self.name}: this robot has no moving target")

    # -- batched twins of the hooks (population evaluation, `PlantBatch`) --------------------------
    batch_fields: tuple[str, ...] = ("qpos", "qvel")  # the MjData arrays they read, see DataBatch

    def episode_constants(self) -> np.ndarray:
        """Numbers drawn by `_initialize_episode` that `_observe`/`reward` read besides the MjData
        (reacher: its target circle). Read right after `reset`; none by default."""
        return np.zeros(0)

    def observe_batch(self, batch: DataBatch, constants: np.ndarray) -> np.ndarray:
        """`_observe()` of every episode of `batch`, (B, obs_dim), bit for bit; `constants` (B, k)
        stacks the episodes' `episode_constants()`."""
        raise NotImplementedError

    def reward_batch(self, batch: DataBatch, constants: np.ndarray) -> np.ndarray:
        """`reward()` of every episode of `batch`, (B,), bit for bit."""
        raise NotImplementedError

    # -- sizes and names -------------------------------------------------------------------------
    @property
    def control_dt(self) -> float:
        return float(self.model.opt.timestep) * self.n_sub_steps

    @property
    def obs_dim(self) -> int:
        return len(self.obs_names)

    @property
    def act_dim(self) -> int:
        return int(self.model.nu)

    @property
    def act_low(self) -> np.ndarray:
        return self.model.actuator_ctrlrange[:, 0].copy()

    @property
    def act_high(self) -> np.ndarray:
        return self.model.actuator_ctrlrange[:, 1].copy()

    @property
    def joint_names(self) -> list[str]:
        """Joint names as a ROS `sensor_msgs/JointState` carries them (MJCF joint order)."""
        return [self.model.joint(i).name for i in range(self.model.njnt)]

    @property
    def actuator_names(self) -> list[str]:
        return [self.model.actuator(i).name for i in range(self.model.nu)]

    def command_joints(self) -> list[int]:
        """For each command (action index): the index in `joint_names` of the joint its actuator
        drives, -1 when it drives none of them (a tendon, a site, an unobserved joint). What a
        JointState's effort field pairs with (ros2_control reports a joint's applied effort there)."""
        m = self.model
        observed = {int(j): i for i, j in enumerate(self._observed_joint_ids())}
        return [observed.get(int(m.actuator_trnid[a, 0]), -1)
                if int(m.actuator_trntype[a]) == int(mujoco.mjtTrn.mjTRN_JOINT) else -1
                for a in self._command_actuators()]

    def _command_actuators(self) -> list[int]:
        """MuJoCo actuator of each command (Plant.act: ctrl[k] = action[ctrl_order[k]])."""
        return list(range(self.act_dim)) if self.ctrl_order is None else [int(a) for a in np.argsort(self.ctrl_order)]

    def _observed_joint_ids(self) -> list[int]:
        """MuJoCo joint id of each of `joint_names`."""
        return list(range(self.model.njnt))

    # -- episode ---------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start an episode; the same seed gives the same initial state and the same obs noise."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        mujoco.mj_resetData(self.model, self.data)
        self._initialize_episode(self.rng)
        mujoco.mj_forward(self.model, self.data)
        self._reset_queue()
        return self.observe()

    def observe(self) -> np.ndarray:
        obs = np.asarray(self._observe(), dtype=np.float64) + self._bias
        if self.drift.obs_noise:
            obs = obs + self.drift.obs_noise * self.rng.standard_normal(obs.shape)
        return obs

    def act(self, action) -> tuple[np.ndarray, float]:
        """One control tick: clip, delay (drift), step the physics, observe, reward."""
        action = np.asarray(action, dtype=np.float64).reshape(self.act_dim)
        if not np.all(np.isfinite(action)):
            # MuJoCo would quietly reset the simulation on a NaN; a controller bug must be loud
            raise ValueError(f"{self.name}: non-finite action {action}")
        action = np.clip(action, self.act_low, self.act_high)
        if self.drift.action_delay:
            self._queue.append(action)
            action = self._queue.popleft()
        self.data.ctrl[:] = action if self.ctrl_order is None else action[self.ctrl_order]
        mujoco.mj_step(self.model, self.data, self.n_sub_steps)
        mujoco.mj_forward(self.model, self.data)
        return self.observe(), self.reward()

    @property
    def time(self) -> float:
        return float(self.data.time)

    # -- state -----------------------------------------------------------------------------------
    def get_state(self) -> np.ndarray:
        """MuJoCo integration state + queued (delayed) actions, as one float64 vector."""
        state = np.empty(self.mj_state_size)
        mujoco.mj_getState(self.model, self.data, state, STATE_SPEC)
        return np.concatenate([state, *self._queue]) if self._queue else state

    def set_state(self, state) -> None:
        """Restore a `get_state` vector exactly (same plant, same action_delay)."""
        state = np.asarray(state, dtype=np.float64).reshape(-1)
        want = self.mj_state_size + self.drift.action_delay * self.act_dim
        if state.size != want:
            raise ValueError(f"{self.name}: state has {state.size} values, expected {want} "
                             f"({self.mj_state_size} MuJoCo + {self.drift.action_delay} queued "
                             f"actions x {self.act_dim})")
        mujoco.mj_setState(self.model, self.data, state[:self.mj_state_size], STATE_SPEC)
        queued = state[self.mj_state_size:].reshape(-1, self.act_dim)
        self._queue = deque(np.array(a) for a in queued)
        mujoco.mj_forward(self.model, self.data)

    def set_qpos_qvel(self, qpos, qvel) -> None:
        """Put the robot in a measured configuration (what telemetry carries) and run forward."""
        self.data.qpos[:] = qpos
        self.data.qvel[:] = qvel
        mujoco.mj_forward(self.model, self.data)

    @property
    def joint_qpos_adr(self) -> np.ndarray:
        """qpos address of each joint of `joint_names` (what `joint_positions` reads)."""
        return np.array([self.model.jnt_qposadr[i] for i in range(self.model.njnt)], dtype=int)

    @property
    def joint_dof_adr(self) -> np.ndarray:
        """qvel address of each joint of `joint_names` (what `joint_velocities` reads)."""
        return np.array([self.model.jnt_dofadr[i] for i in range(self.model.njnt)], dtype=int)

    def joint_positions(self) -> np.ndarray:
        return np.array([self.data.qpos[self.model.jnt_qposadr[i]] for i in range(self.model.njnt)])

    def joint_velocities(self) -> np.ndarray:
        return np.array([self.data.qvel[self.model.jnt_dofadr[i]] for i in range(self.model.njnt)])

    # -- drift -----------------------------------------------------------------------------------
    def apply_drift(self, spec: DriftSpec | dict | str | None) -> DriftSpec:
        """Replace the current drift with `spec` (validated against this model first)."""
        spec = DriftSpec.parse(spec)
        check_names(self.model, spec)  # both raise before anything changes
        bias = self._resolve_bias(spec)
        restore_model(self.model, self._nominal, self._touched)
        self._touched = apply_to_model(self.model, self._nominal, spec, self._scratch)
        self.drift, self._bias = spec, bias
        self._reset_queue()
        mujoco.mj_forward(self.model, self.data)
        return spec

    def clear_drift(self) -> None:
        """Back to the nominal robot, bit for bit."""
        restore_model(self.model, self._nominal, self._touched)
        self._touched = ()
        self.drift, self._bias = DriftSpec(), np.zeros(self.obs_dim)
        self._reset_queue()
        mujoco.mj_forward(self.model, self.data)

    def _resolve_bias(self, spec: DriftSpec) -> np.ndarray:
        bias = np.zeros(self.obs_dim)
        for key, x in spec.obs_bias:
            if key in self.obs_names:
                bias[self.obs_names.index(key)] += x
            elif key.isdigit() and int(key) < self.obs_dim:
                bias[int(key)] += x
            else:
                raise ValueError(f"DriftSpec.obs_bias: unknown observation {key!r} for plant "
                                 f"{self.name!r}; known: {list(self.obs_names)} or an index "
                                 f"0..{self.obs_dim - 1}")
        return bias

    def _reset_queue(self) -> None:
        self._queue = deque(np.zeros(self.act_dim) for _ in range(self.drift.action_delay))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(drift={self.drift.to_json()})"


class PlantBatch:
    """`size` episodes of one plant stepped together: the batched twin of `Plant.reset`/`Plant.act`.

    Each episode has its own MjData (all share the plant's model, so its drift), its own seeded
    generator for observation noise and its own queue of delayed actions. Rows never mix: an
    episode's trajectory does not depend on which other episodes share the batch.

    `reset(seeds)` runs `Plant.reset` itself for each seed, so the initial state, the episode's
    constants, the first observation and its noise draw are the reference's own, then copies the
    integration state into that episode's MjData and keeps the episode's generator. `act(actions)`
    reproduces `Plant.act` (float64, finite or ValueError, clip to the actuator ranges, delay, step,
    observe, reward) on all episodes at once. Apply the drift to `plant` before `reset`.
    """

    def __init__(self, plant: Plant, size: int, extra_fields: Sequence[str] = ()) -> None:
        self.plant = plant
        # extra_fields: MjData arrays a score other than the plant's reward reads (PlantTask.objective)
        fields = tuple(plant.batch_fields) + tuple(sorted(set(extra_fields) - set(plant.batch_fields)))
        self.data = DataBatch(plant.model, size, fields)
        self.constants = np.zeros((size, 0))
        self._rngs: list[np.random.Generator | None] = [None] * size
        self._noise = np.empty((0, size, plant.obs_dim))   # (ticks, B, obs_dim) standard normals
        self._noise_tick = 0
        self._queue = np.empty((0, size, plant.act_dim))   # (action_delay, B, act_dim), a ring
        self._head = 0
        self._act_low, self._act_high = plant.act_low, plant.act_high

    noise_block = 64  # ticks of noise drawn at once per episode (a generator's stream is the same)

    @property
    def size(self) -> int:
        return self.data.size

    def reset(self, seeds: Sequence[int], start: Callable[[Plant], np.ndarray] | None = None) -> np.ndarray:
        """Start one episode per seed (as `Plant.reset(seed)`); returns the (B, obs_dim) observations.
        `start(plant)`, when given, runs right after each reset and returns the observation to use
        (a displaced start: `sim.stress.offset_start`), exactly as the reference path calls it."""
        plant = self.plant
        if len(seeds) != self.size:
            raise ValueError(f"PlantBatch.reset: {len(seeds)} seeds for {self.size} episodes")
        obs = np.empty((self.size, plant.obs_dim))
        state = np.empty(plant.mj_state_size)
        constants = []
        for i, seed in enumerate(seeds):
            obs[i] = plant.reset(int(seed))
            if start is not None:
                obs[i] = start(plant)
            self._rngs[i] = plant.rng  # the next reset makes the plant a new generator
            constants.append(plant.episode_constants())
            mujoco.mj_getState(plant.model, plant.data, state, STATE_SPEC)
            self.data.set_state(i, state)
        self.data.refresh()
        self.constants = np.array(constants, dtype=np.float64).reshape(self.size, -1)
        self._queue = np.zeros((plant.drift.action_delay, self.size, plant.act_dim))
        self._head = 0
        self._act_low, self._act_high = plant.act_low, plant.act_high  # no DriftSpec edits ctrlrange
        self._noise = np.empty((0, self.size, plant.obs_dim))
        self._noise_tick = 0
        return obs

    def act(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One control tick of every episode: (B, act_dim) actions -> (B, obs_dim) obs, (B,) rewards."""
        plant = self.plant
        actions = np.asarray(actions, dtype=np.float64).reshape(self.size, plant.act_dim)
        if not np.isfinite(actions).all():
            bad = int(np.argmin(np.isfinite(actions).all(axis=1)))
            raise ValueError(f"{plant.name}: non-finite action {actions[bad]}")
        ctrl = np.clip(actions, self._act_low, self._act_high)
        if len(self._queue):
            ctrl, self._queue[self._head] = self._queue[self._head].copy(), ctrl
            self._head = (self._head + 1) % len(self._queue)
        if plant.ctrl_order is not None:
            ctrl = ctrl[:, plant.ctrl_order]
        self.data.step(ctrl, plant.n_sub_steps)
        return self.observe(), plant.reward_batch(self.data, self.constants)

    def observe(self) -> np.ndarray:
        """`Plant.observe` for every episode: the batched observation plus the drift's bias and noise."""
        plant = self.plant
        obs = plant.observe_batch(self.data, self.constants) + plant._bias
        if plant.drift.obs_noise:
            obs = obs + plant.drift.obs_noise * self._next_noise()
        return obs

    def _next_noise(self) -> np.ndarray:
        if self._noise_tick == len(self._noise):
            shape = (self.noise_block, self.plant.obs_dim)
            self._noise = np.stack([rng.standard_normal(shape) for rng in self._rngs], axis=1)
            self._noise_tick = 0
        self._noise_tick += 1
        return self._noise[self._noise_tick - 1]
