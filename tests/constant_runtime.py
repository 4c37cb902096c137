"""A controller runtime on a robot's live observation map whose champion acts 0.5 on every
actuator whatever it sees: for tests of what the runtime accepts, holds and refuses (stale or bad
inputs), not of what a policy does."""
import numpy as np

from controller.compiled_policy import CompiledPolicy
from controller.guards import GuardConfig
from controller.runtime import ControllerRuntime, RuntimeConfig
from sim.observation import make_observation_map
from sim.plants import make_plant
from sim.policy import PolicySpec


def constant_runtime(robot: str, clock):
    """(runtime, plant, joint names) for `robot` (a built-in name or a profile path)."""
    plant = make_plant(robot)
    names = tuple(plant.joint_names)
    spec = PolicySpec(obs_dim=plant.obs_dim, act_dim=plant.act_dim, hidden=(1,), discrete=False,
                      act_low=-1.0, act_high=1.0)
    weights = np.zeros(spec.num_params, dtype=np.float32)
    weights[-plant.act_dim:] = 0.5                     # acts 0.5 whatever it sees
    cfg = RuntimeConfig(joint_names=names, act_dim=plant.act_dim, act_low=tuple(plant.act_low),
                        act_high=tuple(plant.act_high), guard=GuardConfig.from_names(names, {}),
                        stale_timeout_s=0.1)
    rt = ControllerRuntime(cfg, make_observation_map(robot), clock=clock)
    rt.install(champion=CompiledPolicy("half", spec, weights))
    return rt, plant, names
