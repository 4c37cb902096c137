"""Simulation side of driftgate: plants, benchmarks and evolution (never talks to the robot)."""
