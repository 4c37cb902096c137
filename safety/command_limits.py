"""What the gate will check on a candidate's commands, as data for the adaptation job.

Why here: the sandbox (sim/) must select on the gate's limits (a chattering candidate is refused at
the hurdle), but sim never imports safety; so whoever writes the job (the controller's orchestrator,
`driftgate adapt`, the benchmarks) asks this module and puts the answer in job.json
(`AdaptJob.gate_limits`). One source: the robot's own hard limits (`safety.constraints`) tightened
by the regression suite its profile ships (assets.suite), and the largest sensor noise that suite
applies (a scenario's drift or the top of a stress range: the jerk limit is checked under it).
"""
from __future__ import annotations

from pathlib import Path

from safety.constraints import default_limits


def _suite_scenarios(robot: str, suite: str | Path | None) -> tuple:
    """The scenarios of `suite`, else of the suite `robot`'s profile ships (assets.suite), else ()."""
    if suite is None:
        if not str(robot).endswith((".yaml", ".yml")):
            return ()
        from sim.profile import load_profile
        suite = load_profile(robot).asset_path("suite")
    if suite is None or not Path(suite).exists():
        return ()
    from safety.suite import load_suite
    return tuple(load_suite(suite).scenarios)


def gate_command_limits(robot: str, suite: str | Path | None = None) -> dict:
    """``{"max_saturation", "max_jerk", "obs_noise"}`` the gate applies to `robot`: the tightest
    command limits over the suite's scenarios (the robot's defaults without a suite) and the largest
    observation noise it puts on the robot (0 without a suite)."""
    base = default_limits(robot)
    scenarios = _suite_scenarios(robot, suite)
    noise = 0.0
    for sc in scenarios:
        noise = max(noise, float(sc.drift.obs_noise))
        for field, bounds in (sc.stress.bounds if sc.stress else ()):
            if field == "obs_noise":
                noise = max(noise, float(bounds[1]))
    return {"max_saturation": min((s.limits.max_saturation for s in scenarios), default=base.max_saturation),
            "max_jerk": min((s.limits.max_jerk for s in scenarios), default=base.max_jerk),
            "obs_noise": noise}
