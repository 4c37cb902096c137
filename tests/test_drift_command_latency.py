"""Late commands: a robot on ROS applies whatever command it holds at its tick, so under CPU load it
steps with an older command than the one the controller computed from the last state. The nominal
model's one-step residual with ``latency_ticks`` keeps the command that explains the step: late
commands leave no residual, a drift still does."""
from pathlib import Path

import numpy as np
import pytest

from controller.drift import DriftMonitor, load_config
from sim.drift_spec import DriftSpec
from sim.nominal_model import NominalPredictor, make_predictor
from sim.plants import make_plant

LATE = 2      # commands arrive 0..LATE ticks after the state they answer
ARM = str(Path(__file__).resolve().parents[1] / "launch" / "robots" / "manipulator.yaml")


def late_rollout(ticks, src, *, seed=0, drift=None, drift_at=None, late=LATE, plant=None, ctrl=None):
    """The nominal controller on cartpole, each command reaching the plant 0..late ticks late (the
    plant applies the newest command that has arrived: zero-order hold, as a robot does)."""
    rng = np.random.default_rng(seed)
    plant = plant or make_plant("cartpole", seed=3)
    ctrl = ctrl or plant.nominal_controller()
    ctrl.reset()
    obs = plant.observe()
    arrivals: list[tuple[int, int, np.ndarray]] = []      # (arrival tick, index, command)
    held, held_i = np.zeros(plant.act_dim), -1
    out, applied_late = [], 0
    for k in range(ticks):
        if drift is not None and k == drift_at:
            plant.apply_drift(drift)
        a = ctrl(obs)
        out.append((k, src.residuals(obs, a)))
        delay = late(k, rng) if callable(late) else int(rng.integers(0, late + 1))
        arrivals.append((k + delay, k, a))
        for t_arr, i, c in arrivals:
            if t_arr <= k and i > held_i:
                held, held_i = c, i
        arrivals = [x for x in arrivals if x[1] > held_i]
        applied_late += held_i != k
        obs, _ = plant.act(held)
    return out, applied_late


def peak(out, channel, after=0):
    return max(float(np.abs(r).max()) for k, res in out if k > after for ch, r in res if ch == channel)


def test_late_commands_leave_no_residual_when_the_predictor_allows_for_them():
    out, late = late_rollout(300, NominalPredictor("cartpole", latency_ticks=LATE))
    assert late > 100                               # most steps used an older command
    for ch in ("one_step", "kstep_0.10s", "kstep_0.25s"):
        assert peak(out, ch, after=30) < 1e-9, ch     # (the first window saw the zeros before any command)
    # the same telemetry read as if every command came in time: the late ones show as residuals
    naive, _ = late_rollout(300, NominalPredictor("cartpole"))
    assert peak(naive, "one_step", after=LATE) > 1e-3
    assert peak(naive, "kstep_0.25s", after=LATE) > 1e-3


def test_a_drift_still_shows_through_the_latency_allowance():
    spec = DriftSpec(actuator_gain={"slide": 0.5}, mass_scale={"pole_1": 3.0})
    src = NominalPredictor("cartpole", latency_ticks=LATE)
    out, _ = late_rollout(300, src, drift=spec, drift_at=150)
    before = max(float(np.abs(r).max()) for k, res in out if 30 < k < 150 for ch, r in res)
    assert before < 1e-9
    assert peak(out, "one_step", after=151) > 1e-4
    assert peak(out, "kstep_0.25s", after=151) > 1e-3
    assert src.latency_hist.sum() > 0 and src.latency_hist[1:].sum() > 0


def test_the_monitor_stays_quiet_on_late_commands_only_with_the_allowance():
    """The profile arm (gear 12 on a light arm: a command's tick-to-tick change moves the joint
    velocity far more than its 0.01 sensor noise) held by its champion, commands 0..2 ticks late in bursts (a loaded machine):
    the Page-Hinkley peak of the one-step statistic, normalised by a warm-up with its own late
    commands, is several times lower with the allowance (the residual is the sensor noise) than
    without (heavy-tailed bursts of command changes)."""
    from sim.drift_scenarios import scenario
    sc = scenario(ARM)

    def bursts(k, rng):     # a loaded machine: in time, except 0.3 s of late commands every 2 s
        return int(rng.integers(0, LATE + 1)) if k % 200 >= 170 else 0
    cfg0 = load_config(None)
    peaks = {}
    for L in (0, LATE):
        d = cfg0.to_dict()
        d["nominal_model"]["latency_ticks"] = L
        cfg = cfg0.replace(warmup_s=3.0, min_warmup_samples=20, calibration_file="",
                           nominal_model=d["nominal_model"])
        src = make_predictor(ARM, cfg)
        assert src.latency_ticks == L
        plant = sc.make_plant(1)
        mon = DriftMonitor(cfg, obs_dim=plant.obs_dim, act_dim=plant.act_dim, dt=src.dt, source=src,
                           calibrating=True)

        class Feed:     # the monitor as the caller of the residual source
            channels = src.channels
            k = 0

            @classmethod
            def residuals(cls, obs, a):
                cls.k += 1
                mon.update(cls.k * src.dt, obs, a, None)
                return []
        late_rollout(1500, Feed, plant=plant, ctrl=sc.make_controller(plant), late=bursts)
        assert mon.state == "monitoring"
        peaks[L] = mon.peaks()["ph:one_step"]
    assert peaks[LATE] < 0.3 * peaks[0], peaks


def test_latency_ticks_is_validated_and_snapshots_keep_the_command_history():
    with pytest.raises(ValueError, match="latency_ticks"):
        NominalPredictor("cartpole", latency_ticks=-1)
    with pytest.raises(ValueError, match="latency_ticks"):
        load_config(None).replace(nominal_model={"latency_ticks": 11})
    src = NominalPredictor("cartpole", latency_ticks=LATE)
    twin = NominalPredictor("cartpole", latency_ticks=LATE)
    plant = make_plant("cartpole", seed=1)
    obs = plant.observe()
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.uniform(-1, 1, 1)
        src.residuals(obs, a)
        obs, _ = plant.act(a)
    snap = src.snapshot()
    twin.restore(snap)
    a = rng.uniform(-1, 1, 1)
    for (c1, r1), (c2, r2) in zip(src.residuals(obs, a), twin.residuals(obs, a)):
        assert c1 == c2 and np.array_equal(r1, r2)
    src.resync()
    assert src._older == []      # a broken history keeps no command candidates
