"""System identification by replay: make the simulator look like the drifted robot.

Given a telemetry window (measured joint states and the commands sent) and a plant, find the
DriftSpec parameters under which MuJoCo, started from the measured state at tick t and driven
open-loop by the recorded commands, reproduces the measured states at t+1..t+K. Why multi-step
and open-loop: a one-step error is dominated by sensor noise (the change in one tick is tiny next
to sigma), while a mass or gain error compounds over K ticks, so the K-step error separates the
two. Why replay and not a learned model: the candidate answer *is* a DriftSpec, so the adaptation
job can evolve on exactly the plant that explained the data.

Pieces (one module each):

- `sim.sysid_telemetry`: `Telemetry`, the window (measured qpos/qvel, the actions sent, control_dt,
  optional warm starts and breaks), and `record`, which produces one by running a plant with a
  controller plus a small probing signal, with Gaussian sensor noise.
- `sim.sysid_replay`: `Replay` replays every window in one `mujoco.rollout` call and returns
  residuals normalised per state dimension, after a start-state correction (sensor noise in the
  start state would otherwise bias the estimate).
- `sim.sysid_params`: the per-robot parameter sets (`PARAMETER_SETS`: what motion can tell apart)
  and `spec_from_params`, the mapping of an estimate onto a DriftSpec.
- here: `identify` minimises the mean squared residual over the parameter set with CMA-ES (pycma,
  seeded), within bounds: scales are searched in log space, actuator gains linearly over a range
  that includes negative values. The sign of each gain is chosen first by a cheap scan (every +/-
  combination when there are few signed gains, one at a time otherwise), because a reversed motor
  is a different basin, not a nearby point; for larger sets (the walker) a group scan then scales
  every parameter of one kind by a common factor (`_group_scan`), the start a whole-group drift
  (every motor weaker) needs on a rugged loss.

Ensemble (`SysIdResult.ensemble`): the estimate plus up to n - 1 other parameter vectors the search
evaluated whose loss is within `ensemble_tol` (25 %) of the estimate's, picked far apart and
re-checked on the final replay. Where the window cannot tell robots apart (the walker: a heavier
torso against weaker leg motors) the adaptation job evolves over all of them (`sim.adapt_job`), so
its candidate does not bet on the one that noise favoured. For a well-identified robot (the
cartpole) the members are near-identical and cost nothing extra: the job evolves on 1 + randomize
models either way. The tolerance is not a confidence level: the true parameters' loss was measured
at 0.3-1.3 x the estimate's on walker windows (the replay loss is biased by noise and contacts).

Prior (`prior_factor`, a profile's ``drift.prior``; the walker's 2): the loss times 1 + w sum z^2,
z each parameter's distance from nominal over its search range. It decides only where the window
does not: along the walker's torso-mass / leg-gain valley (within 10 % of the minimum from torso
x0.3 to x2 on a demo window) the data alone picked torso 0.30 x / gain 0.26, with the prior 1.04 x /
0.50 (truth 1.0 / 0.5). With one gain shared by every leg motor (``drift.tie_gains``) the walker's
set has three parameters (`sim.sysid_params`).

Uncertainty (`SysIdResult.std`), the larger of two estimates:

1. A Laplace approximation around the estimate. The data term is the cluster-robust sandwich
   information `H M^+ H`, with `H = J^T J` from a finite-difference Jacobian of the residuals and
   `M = sum_c s_c s_c^T` over clusters c of windows, `s_c = sum_{w in c} J_w^T r_w`. A cluster is
   all windows starting in one block of `horizon` ticks: residuals within a window are correlated
   (one start-state error runs through all K predictions) and overlapping windows share
   measurements. It is combined with a Gaussian prior whose std is a quarter of each parameter's
   search range, so a parameter the window says nothing about reports about that prior width.
2. A split check: CMA-ES refits, from the estimate, on the even and on the odd blocks of windows;
   half the distance between the two half-data estimates estimates the full-data std without
   trusting local curvature (which contacts make meaningless: the walker's loss is rugged).

Neither captures bias that noise leaves in the estimate; `benchmarks/sysid.py` measures errors.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, field

import cma
import numpy as np

from sim.drift_spec import DriftSpec
from sim.plants import make_plant
from sim.plants.base import Plant
from sim.sysid_params import (DEFAULT_HORIZON, DEFAULT_WINDOWS, PARAMETER_SETS, Param, default_prior, model_ref,
                              parameter_set, spec_from_params)
from sim.sysid_replay import Replay
from sim.sysid_telemetry import Telemetry, record  # noqa: F401 (record: re-exported)


@dataclass
class SysIdResult:
    """What system identification concluded, and how sure it is."""

    estimate: DriftSpec
    params: dict[str, float]
    std: dict[str, float]
    loss: float
    nominal_loss: float
    evaluations: int
    wall_s: float
    horizon: int = 0
    windows: int = 0
    stop: str = ""
    # parameter vectors that explain the window almost as well as the estimate (loss within
    # `ensemble_tol` of it), the estimate first: what the adaptation job evolves over (see below)
    ensemble: list[dict[str, float]] = field(default_factory=list)
    ensemble_losses: list[float] = field(default_factory=list)
    ensemble_tol: float = 0.0
    # weight of the pull toward nominal (`prior_factor`); `loss` and `ensemble_losses` include it
    prior: float = 0.0

    def ensemble_specs(self, known: DriftSpec | dict | None = None) -> list[DriftSpec]:
        """DriftSpecs of the ensemble (the estimate alone when there is none)."""
        if not self.ensemble:
            return [self.estimate]
        return [spec_from_params(p, DriftSpec.parse(known)) for p in self.ensemble]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["estimate"] = self.estimate.as_dict()
        out["estimate_hash"] = self.estimate.hash
        return out


def _sign_starts(params: tuple[Param, ...], loss_of) -> np.ndarray:
    """Start point in search space: nominal scales, gain signs chosen by the scan."""
    x0 = np.array([p.to_search(1.0) for p in params])
    signed = [i for i, p in enumerate(params) if p.signed]
    if len(signed) <= 3:  # every combination (at most 8 evaluations)
        best = min(itertools.product((1.0, -1.0), repeat=len(signed)),
                   key=lambda signs: loss_of(_put(x0, signed, signs)))
        return _put(x0, signed, best)
    f0 = loss_of(x0)
    for i in signed:  # one at a time
        flip = x0.copy()
        flip[i] = -1.0
        f = loss_of(flip)
        if f < f0:
            x0, f0 = flip, f
    return x0


GROUP_FACTORS = (0.3, 0.4, 0.5, 0.6, 0.75, 1.0, 1.3, 1.7, 2.2)


def _group_scan(params: tuple[Param, ...], x0: np.ndarray, f0: float, loss_of,
                sweeps: int = 2) -> tuple[np.ndarray, float]:
    """Coarse start: scale every parameter of one kind (all masses, all motor gains, ...) by a
    common factor from GROUP_FACTORS, one kind at a time, keeping the best; `sweeps` rounds.

    Why: a typical drift moves a whole group together (a sagging supply weakens every motor) and
    CMA-ES from nominal, on a rugged contact-rich loss (the walker), stalls in a basin on the way
    (measured: the true parameters' loss below the estimate's on 3 of 5 windows). A few dozen
    evaluations put the start in the right basin; groups with one member are scanned too."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(params):
        groups.setdefault(p.field, []).append(i)
    if len(params) < 4:                 # small sets (the cartpole): CMA-ES from nominal is enough
        return x0, f0
    lo, hi = np.array([p.search_bounds for p in params]).T
    for _ in range(sweeps):
        moved = False
        for idx in groups.values():
            base = x0.copy()
            for c in GROUP_FACTORS:
                x = base.copy()
                for i in idx:
                    p = params[i]
                    x[i] = p.to_search(p.from_search(base[i]) * c)
                x = np.clip(x, lo + 1e-9, hi - 1e-9)
                if np.array_equal(x, base):
                    continue
                f = loss_of(x)
                if f < f0:
                    x0, f0, moved = x, f, True
        if not moved:
            break
    return x0, f0


def prior_factor(params: tuple[Param, ...], u, weight: float) -> float:
    """1 + weight * sum_i z_i^2, z_i = parameter i's distance from nominal in search space over its
    search range (log space for scales): the factor on the replay loss that makes the search prefer,
    among parameter vectors that explain the window about equally well, the one that changed least.

    Why multiplicative: it is scale-free (replay losses range from 0.04 to 5 between windows), and it
    only decides where the data does not: along a well-determined direction the loss rises by many
    times what the prior can pay, along a flat one (the walker's torso mass against its motor gains,
    both explain a stance that sags: measured valley within 10 % of the minimum from torso x0.3 to
    x2) it picks the robot nearest the nominal one, where noise and contacts would pick an end.
    A parameter's range is its prior width: a wide range makes a change cheap."""
    if not weight:
        return 1.0
    z = [(float(x) - p.to_search(1.0)) / (p.search_bounds[1] - p.search_bounds[0]) for p, x in zip(params, u)]
    return 1.0 + float(weight) * float(np.sum(np.square(z)))


def _put(x: np.ndarray, idx: list[int], values) -> np.ndarray:
    y = x.copy()
    y[idx] = values
    return y


def identify(plant: Plant, tel: Telemetry, params: tuple[Param, ...] | None = None, *,
             known: DriftSpec | dict | None = None, horizon: int | None = None, stride: int = 1,
             max_windows: int | None = None, smooth_window: int = 0, max_evals: int = 1500,
             max_seconds: float = 60.0, seed: int = 0, sigma0: float = 0.25,
             group_scan: bool = True, ensemble: int = 4, ensemble_tol: float = 0.25,
             prior: float | None = None) -> SysIdResult:
    """Estimate drift parameters of `plant` from `tel` by multi-step replay + CMA-ES.

    `plant` says which robot; the replay runs on a fresh nominal copy (its current drift is
    ignored), so estimates are always relative to the nominal model. `params` defaults to the
    plant's PARAMETER_SETS entry; `known` is drift taken as given (its `action_delay` shifts the
    replayed commands). Budget: `max_evals` loss evaluations (a start-
    state linearisation counts as 2 * (nq + nv)), split 55 % first CMA-ES pass, 25 % second pass,
    20 % split check; the curvature step adds 2 * len(params) + 1. `max_seconds` stops the search
    early (the result is then the best point so far, `stop == "max_seconds"`). `prior`: the weight
    of the pull toward the nominal robot (`prior_factor`); None takes the plant's default
    (`sim.sysid_params.default_prior`: the profile's ``drift.prior``, else 0).
    """
    t0 = time.perf_counter()
    params = tuple(params if params is not None else parameter_set(plant))
    prior = float(default_prior(plant) if prior is None else prior)
    known = DriftSpec.parse(known)
    horizon = horizon or DEFAULT_HORIZON.get(plant.name, 10)
    max_windows = max_windows or DEFAULT_WINDOWS.get(plant.name, 60)
    tel.validate(plant, horizon + known.action_delay)
    sim = make_plant(model_ref(plant))
    replay = Replay.build(sim, tel, horizon, stride, smooth_window, known.action_delay, max_windows)
    evals = 0

    def natural(u) -> dict[str, float]:
        return {p.name: p.from_search(x) for p, x in zip(params, u)}

    history: list[tuple[np.ndarray, float]] = []   # every full-window evaluation: ensemble candidates

    def loss_of(u) -> float:
        nonlocal evals
        evals += 1
        f = replay.loss(spec_from_params(natural(u), known)) * prior_factor(params, u, prior)
        history.append((np.array(u, dtype=float), f))
        return f

    # pass 1: start-state correction linearised at the known drift; pass 2: at the estimate
    evals += replay.refine(known)
    nominal_loss = replay.loss(known)    # data only: the prior costs nothing at nominal
    evals += 1
    x = _sign_starts(params, loss_of)
    if group_scan:
        x, _ = _group_scan(params, x, loss_of(x), loss_of)
    lo, hi = np.array([p.search_bounds for p in params]).T
    deadline = t0 + max_seconds
    x, f, stop = _cma(loss_of, x, sigma0, lo, hi, int(0.55 * max_evals) - evals, seed, deadline)
    if stop != "max_seconds":
        evals += replay.refine(spec_from_params(natural(x), known))
        x, f, stop = _cma(loss_of, x, sigma0 / 4, lo, hi, int(0.8 * max_evals) - evals, seed + 1,
                          deadline)
    estimate_params = natural(x)
    members, member_losses = [], []
    if ensemble > 1:                     # at most 2 * ensemble evaluations, also past max_seconds
        members, member_losses = _ensemble(history, x, f, params, loss_of, ensemble, ensemble_tol)
    std = _laplace_std(replay, params, estimate_params, known)
    evals += 2 * len(params) + 1
    # split check: refit on the even and on the odd blocks of windows; half the distance between
    # the two half-data estimates is a direct, model-free estimate of the full-data std
    block = (replay.starts // replay.horizon) % 2
    spare = max_evals + 2 * len(params) + 1 - evals
    if stop != "max_seconds" and spare >= 4 and min(np.bincount(block, minlength=2)) >= 2:
        halves = []
        for b in (0, 1):
            part = replay.subset(block == b)

            def part_loss(u, part=part) -> float:
                nonlocal evals
                evals += 1
                return part.loss(spec_from_params(natural(u), known)) * prior_factor(params, u, prior)
            budget = (spare // 2) if b == 0 else spare - spare // 2
            halves.append(natural(_cma(part_loss, x, sigma0 / 4, lo, hi, budget, seed + 2 + b,
                                       deadline)[0]))
        for p in params:
            std[p.name] = max(std[p.name], abs(halves[0][p.name] - halves[1][p.name]) / 2)
    return SysIdResult(estimate=spec_from_params(estimate_params, known), params=estimate_params,
                       std=std, loss=float(f), nominal_loss=nominal_loss, evaluations=evals,
                       wall_s=time.perf_counter() - t0, horizon=horizon,
                       windows=int(replay.starts.size), stop=stop,
                       ensemble=[natural(u) for u in members] or [dict(estimate_params)],
                       ensemble_losses=member_losses or [float(f)], ensemble_tol=float(ensemble_tol),
                       prior=prior)


def _ensemble(history: list[tuple[np.ndarray, float]], x: np.ndarray, f: float,
              params: tuple[Param, ...], loss_of, n: int, tol: float) -> tuple[list, list]:
    """Up to `n` parameter vectors (the estimate first) whose loss is within `tol` (relative) of
    the estimate's: from every point the search evaluated, the farthest from those already taken
    (distance in search space, each axis over its search range), re-evaluated on the final replay
    (the start-state correction changed between passes) and kept only if still within `tol`.

    Why: from stance telemetry identification trades a heavier torso against weaker motors (the
    walker); the loss is nearly flat along that direction and noise picks the minimum. A policy
    evolved on the single minimum falls on the true robot when noise picked wrong; one evolved
    over every model the window cannot rule out does not have to. Costs at most 2n evaluations."""
    lo, hi = np.array([p.search_bounds for p in params]).T
    width = np.maximum(hi - lo, 1e-9)
    limit = (1 + tol) * f
    # a motor reversed against the estimate is a different basin (the sign scan chose it), and a gain
    # near 0 a dead motor: neither is "the same robot, less sure"
    signed = np.array([p.signed for p in params])
    floor = 0.2 * np.abs(x)

    def same_robot(u: np.ndarray) -> bool:
        return bool(np.all(~signed | ((np.sign(u) == np.sign(x)) & (np.abs(u) >= floor))))
    pool = [u for u, g in history if np.isfinite(g) and g <= limit and same_robot(u)]
    members, losses = [np.array(x, dtype=float)], [float(f)]
    if not pool:
        return members, losses
    pool_arr = np.array(pool)
    dist = np.linalg.norm((pool_arr - x) / width, axis=1)
    tried = 0
    while len(members) < n and tried < 2 * n:
        k = int(np.argmax(dist))
        if dist[k] <= 1e-3:                            # nothing left that differs from what we have
            break
        tried += 1
        u = pool_arr[k]
        dist = np.minimum(dist, np.linalg.norm((pool_arr - u) / width, axis=1))
        g = loss_of(u)
        if np.isfinite(g) and g <= limit:
            members.append(np.array(u, dtype=float))
            losses.append(float(g))
    return members, losses


def _cma(loss_of, x0: np.ndarray, sigma0: float, lo: np.ndarray, hi: np.ndarray, budget: int,
         seed: int, deadline: float) -> tuple[np.ndarray, float, str]:
    """Bounded, seeded CMA-ES from x0 using at most `budget` evaluations (x0 included); returns
    the best point seen, its loss, and why it stopped."""
    x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)
    if budget < 1:
        return x0, loss_of(x0), "max_evals"
    best_x, best_f, used = x0, loss_of(x0), 1
    opts = {"seed": seed + 1, "verbose": -9, "bounds": [list(lo), list(hi)],
            "CMA_stds": list((hi - lo) / 4), "tolfun": 1e-10, "tolx": 1e-7}
    es = cma.CMAEvolutionStrategy(x0, sigma0, opts)
    while not es.stop():
        if time.perf_counter() > deadline:
            return best_x, best_f, "max_seconds"
        if used + es.popsize > budget:
            return best_x, best_f, "max_evals"
        X = es.ask()
        F = [loss_of(x) for x in X]
        used += len(X)
        es.tell(X, F)
        i = int(np.argmin(F))
        if F[i] < best_f:
            best_x, best_f = np.array(X[i]), F[i]
    return best_x, best_f, ",".join(es.stop())


def _laplace_std(replay: Replay, params: tuple[Param, ...], est: dict[str, float],
                 known: DriftSpec) -> dict[str, float]:
    """Per-parameter std from the cluster-robust information plus a wide prior (see module doc)."""
    theta = np.array([est[p.name] for p in params])
    r0 = replay.residuals(spec_from_params(est, known))
    W = r0.shape[0]
    J = np.empty((W, r0[0].size, theta.size))
    for i, p in enumerate(params):
        h = 1e-4 * max(abs(theta[i]), 1e-2)
        up, dn = theta.copy(), theta.copy()
        # a step stays a valid value (a gain estimated at the 1e-3 floor must not step to 0.000999)
        up[i], dn[i] = p.from_search(p.to_search(theta[i] + h)), p.from_search(p.to_search(theta[i] - h))
        rp = replay.residuals(spec_from_params(dict(zip(est, up)), known)).reshape(W, -1)
        rm = replay.residuals(spec_from_params(dict(zip(est, dn)), known)).reshape(W, -1)
        J[:, :, i] = (rp - rm) / (up[i] - dn[i])
    r = r0.reshape(W, -1)
    H = np.einsum("wni,wnj->ij", J, J)
    g = np.einsum("wni,wn->wi", J, r)              # per-window score
    # Overlapping windows share measurements, so they are not independent clusters: sum the
    # scores over blocks of `horizon` ticks first (windows in one block overlap each other).
    block = replay.starts // replay.horizon
    G = np.zeros((int(block.max()) + 1, theta.size))
    np.add.at(G, block, g)
    M = G.T @ G
    info = H @ np.linalg.pinv(M, rcond=1e-12) @ H
    prior_std = np.array([(p.hi - p.lo) / 4 for p in params])
    cov = np.linalg.pinv(info + np.diag(1 / prior_std ** 2))
    std = np.sqrt(np.clip(np.diag(cov), 0, None))
    return {p.name: float(s) for p, s in zip(params, std)}


__all__ = ["DEFAULT_HORIZON", "DEFAULT_WINDOWS", "PARAMETER_SETS", "Param", "Replay", "SysIdResult", "Telemetry",
           "identify", "record", "spec_from_params"]
