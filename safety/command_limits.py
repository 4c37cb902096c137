"""What the gate will check on a candidate's commands, as data for the adaptation job.

Why here: the sandbox (sim/) must select on the gate's limits (a chattering candidate is refused at
the hurdle), but sim never imports safety; so whoever writes the job (the controller's orchestrator,
`driftgate adapt`, the benchmarks) asks this module and puts the answer in job.json
(`AdaptJob.gate_limits`). One source: the robot's own hard limits (`safety.constraints`) tightened
by the regression suite its profile ships (assets.suite), and the largest sensor noise that suite
applies (a scenario's drift or the top of a stress range: the jerk limit is checked under it).
It also carries what the gate draws robots and starts from, so the sandbox can evolve on the same
distribution (domain randomisation, `sim.stress`): every stress scenario's bounds (``stress``) and
every initial_offset probe's joint offsets (``start_offsets``). A built-in robot name (``walker``)
reads the suite its shipped profile names, as `driftgate gate` and the demo do.
"""
from __future__ import annotations

from pathlib import Path

from safety.constraints import default_limits


def _suite_scenarios(robot: str, suite: str | Path | None) -> tuple:
    """The scenarios of `suite`, else of the suite `robot`'s profile ships (assets.suite), else ()."""
    if suite is None:
        from sim.profile import ProfileError, builtin_profiles, find_profile, load_profile
        if not str(robot).endswith((".yaml", ".yml")) and str(robot) not in builtin_profiles():
            return ()
        try:
            suite = load_profile(find_profile(robot)).asset_path("suite")
        except ProfileError:
            return ()
    if suite is None or not Path(suite).exists():
        return ()
    from safety.suite import load_suite
    return tuple(load_suite(suite).scenarios)


def gate_command_limits(robot: str, suite: str | Path | None = None) -> dict:
    """``{"max_saturation", "max_jerk", "obs_noise"[, "stress", "start_offsets"]}`` the gate applies to
    `robot`: the tightest command limits over the suite's scenarios (the robot's defaults without a
    suite), the largest observation noise it puts on the robot (0 without a suite), the stress
    scenarios' ``{"relative", "bounds"}`` and the initial_offset probes' ``{joint: offset}`` (each
    key only when the suite has one)."""
    base = default_limits(robot)
    scenarios = _suite_scenarios(robot, suite)
    noise = 0.0
    for sc in scenarios:
        noise = max(noise, float(sc.drift.obs_noise))
        for field, bounds in (sc.stress.bounds if sc.stress else ()):
            if field == "obs_noise":
                noise = max(noise, float(bounds[1]))
    out = {"max_saturation": min((s.limits.max_saturation for s in scenarios), default=base.max_saturation),
           "max_jerk": min((s.limits.max_jerk for s in scenarios), default=base.max_jerk),
           "obs_noise": noise}
    stress = [{"relative": bool(sc.stress.relative), "bounds": sc.stress.to_dict()["bounds"]}
              for sc in scenarios if sc.stress is not None]
    offsets = [dict(sc.probe.joints) for sc in scenarios
               if sc.probe is not None and sc.probe.kind == "initial_offset" and sc.probe.joints]
    if stress:
        out["stress"] = stress
    if offsets:
        out["start_offsets"] = offsets
    return out
