"""How the shipped ant champion was made: a joint PD to a raised stance (the ant's "existing
controller": ankles to 58 deg, hips straight, 3 per rad and 0.3 per rad/s, clipped to the motors'
range) recorded on simulated episodes with command noise, distilled into an SR-GHN's deterministic
head (`sim.distill`: the regression `driftgate champion distill` runs on a recorded bag), then
SR-GHN evolution from it on the profile's objective; the champion is whichever of the two returns
more on the validation episodes (seeds 50000..; `sim.champion`'s rule). Why not `train-nominal`
from a random SR-GHN: 400 generations (24 min) gave 288 / 300 in simulation but a stance that rests
its hips on their stops at the top of the height band and reads the absolute odometry position; on
the live ROS robot (two demos) it wandered 0.55 m during the rise and then stood 14 mm too high
(0.80 per tick). The PD stance holds mid-range joints and ignores where the robot stands.

    python benchmarks/make_ant_champion.py [--generations 20] [--out FILE]
    python benchmarks/make_ant_champion.py --smoke [--out DIR]   # tiny, into DIR or a temporary directory
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.champion import VALIDATION_EPISODES, VALIDATION_SEED, validation_return  # noqa: E402
from sim.distill import (DistillConfig, base_srghn, fit_error, fit_policy, refine, split_ticks,  # noqa: E402
                         to_genome)
from sim.drift_spec import DriftSpec  # noqa: E402
from sim.genome import Genome, save_genome  # noqa: E402
from sim.plant_task import plant_policy_spec  # noqa: E402
from sim.plants import make_plant  # noqa: E402
from sim.srghn_decode import genome_policy_weights  # noqa: E402

ANT = str(ROOT / "launch" / "robots" / "ant.yaml")
STANCE = np.radians(58.0) * np.array([0, 1, 0, -1, 0, -1, 0, 1])


def stance(obs: np.ndarray) -> np.ndarray:
    """The joint PD (joint positions then velocities lead the ant's observation)."""
    return np.clip(3.0 * (STANCE - obs[:8]) - 0.3 * obs[8:16], -1.0, 1.0)


def record(episodes: int, horizon: int, seed: int, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(observations, PD commands); the applied command carries N(0, noise) so the data shows recoveries.
    Observations with the sensor noise the robot has (sigma 0.01 on every channel)."""
    plant = make_plant(ANT, seed=seed, drift=DriftSpec(obs_noise=0.01))
    rng = np.random.default_rng([seed, 17])
    obs_rows, cmd_rows = [], []
    for e in range(episodes):
        obs = plant.reset(seed * 1000 + e)
        for _ in range(horizon):
            u = stance(obs)
            obs_rows.append(obs.copy())
            cmd_rows.append(u)
            obs, _ = plant.act(np.clip(u + noise * rng.standard_normal(8), -1, 1))
    return np.array(obs_rows), np.array(cmd_rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generations", type=int, default=20)
    ap.add_argument("--episodes", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None,
                    help="champion file (default: sim/assets/champions/ant.safetensors); with --smoke a directory")
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    if args.smoke:       # --out is then a directory (the smoke protocol), never the shipped champion
        args.generations, args.episodes = 1, 2
        args.out = (args.out or Path(tempfile.mkdtemp(prefix="driftgate-smoke-"))) / "ant.safetensors"
    elif args.out is None:
        args.out = ROOT / "sim" / "assets" / "champions" / "ant.safetensors"
    t0 = time.perf_counter()
    spec = plant_policy_spec(ANT, (32, 32))
    obs, cmd = record(args.episodes, 300, args.seed)
    cfg = DistillConfig(seed=args.seed)
    train, val, test = split_ticks(len(obs), cfg.block_ticks, cfg.val_fraction, cfg.test_fraction, args.seed)
    fit = fit_policy(spec, obs, cmd, train, val, cfg)
    seed_genome = to_genome(base_srghn(spec, args.seed), fit.tensors, "model seed: the ant's stance PD, distilled")
    err = fit_error(spec, genome_policy_weights(seed_genome), obs[test], cmd[test])
    print(f"distilled: {len(obs)} ticks, test rmse {np.round(err['rmse'], 4).tolist()}", flush=True)
    scored = [(seed_genome, validation_return(ANT, seed_genome, 300), "seed")]
    best_per_generation = []
    if args.generations:
        evolved, best_per_generation = refine(seed_genome, ANT, args.generations, args.seed, 300)
        scored.insert(0, (evolved, validation_return(ANT, evolved, 300), "evolved"))
    best, val_return, who = max(scored, key=lambda t: t[1])
    fitness = {"nominal_return": val_return, "horizon": 300,
               "source": f"the ant's stance PD distilled into the SR-GHN head + {args.generations} generations "
                         "of SR-GHN evolution (benchmarks/make_ant_champion.py)",
               "winner": who, "lineage_depth": 0,
               "validation": {"episodes": VALIDATION_EPISODES, "first_seed": VALIDATION_SEED,
                              **{name: r for _, r, name in scored}},
               "model_seed": {"ticks": int(len(obs)), "fit_rmse_test": err["rmse"], "fit_rounds": fit.rounds},
               "best_per_generation": [float(b) for b in best_per_generation],
               "wall_s": time.perf_counter() - t0}
    g = Genome(vector=best.vector, policy_spec=spec, kind="srghn", model=seed_genome.model,
               generation=args.generations if who == "evolved" else 0, drift_hash=DriftSpec().hash, fitness=fitness)
    path = save_genome(g, args.out)
    print(f"wrote {path} (id {g.id}): winner {who}, validation {val_return:.1f} "
          f"({', '.join(f'{n} {r:.1f}' for _, r, n in scored)}), {fitness['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
