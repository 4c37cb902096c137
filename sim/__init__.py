"""Simulation side of driftgate: plants, benchmarks and evolution (never talks to the robot)."""
import sim.envs  # noqa: F401  (registers driftgate/CartPoleSwitch-v0 and driftgate/LunarLanderSwitch-v0)
