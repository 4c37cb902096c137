"""How the shipped manipulator champion was made: a champion on day one, distilled from the arm's incumbent.

The user's incumbent is a joint PD controller about the holding pose with gravity compensation on
the nominal model (`sim.incumbent.GravityPD`, gains below). This script

1. records `--seconds` of the nominal arm driven by it to a rosbag2 MCAP bag, as the robot would
   publish it (`adapters.recording.simulate_bag`: joint states with sigma 0.01 sensor noise, the
   commands, the rewards), with a white excitation signal of std `--excitation` added to the
   commands (the probing signal of an identification run: it spreads the recording around the pose;
   being independent of the state, regression averages it out);
2. runs `driftgate champion distill BAG --robot ROBOT --out FILE` on it, the user's own command.

    python benchmarks/make_arm_champion.py [--robot manipulator] [--out FILE]   # default: the profile's champion
    python benchmarks/make_arm_champion.py --smoke [--out DIR]   # 5 s recording, 2 episodes, into DIR or a temp dir

The champion's return on 20 held-out episodes, beside the incumbent's: benchmarks/champions.py.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "disable")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# the incumbent's gains per arm (command units per rad, per rad/s): 1.5 x gear is 18 N m/rad at the
# manipulator's root joint, a closed loop of about 4 Hz with the arm stretched out
INCUMBENTS = {"manipulator": {"kp": 1.5, "kd": 0.1}}


def incumbent(robot: str, plant_ref: str, excitation: float = 0.0, seed: int = 0):
    """The arm's incumbent controller (fresh), on the plant `plant_ref` names."""
    from sim.incumbent import gravity_pd
    gains = INCUMBENTS[robot]
    return gravity_pd(plant_ref, gains["kp"], gains["kd"], excitation=excitation, seed=seed)


def driftgate_exe() -> str:
    exe = Path(sys.executable).with_name("driftgate")
    return str(exe) if exe.exists() else "driftgate"


def main(argv=None) -> int:
    from adapters.recording import simulate_bag
    from sim.profile import find_profile, load_profile

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--robot", default="manipulator", choices=sorted(INCUMBENTS))
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--excitation", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=1, help="recording seed (sensor noise, excitation)")
    ap.add_argument("--out", type=Path, default=None, help="champion file (default: the profile's assets.champion)")
    ap.add_argument("--smoke", action="store_true", help="5 s recording, 2 episodes of 50 ticks; --out is a "
                    "directory (default: a temp dir)")
    args = ap.parse_args(argv)
    profile_path = find_profile(args.robot)
    out = args.out or load_profile(profile_path).asset_path("champion")
    extra = []
    if args.smoke:       # --out is then a directory (the smoke protocol), never the shipped champion
        args.seconds = 5.0
        folder = args.out or Path(tempfile.mkdtemp(prefix="driftgate-smoke-"))
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / f"{args.robot}.safetensors"
        extra = ["--episodes", "2", "--horizon", "50"]
    with tempfile.TemporaryDirectory(prefix="driftgate-incumbent-") as work:
        bag = simulate_bag(Path(work) / f"{args.robot}-incumbent", plant=str(profile_path), seconds=args.seconds,
                           seed=args.seed,
                           controller=incumbent(args.robot, str(profile_path), args.excitation, args.seed))
        cmd = [driftgate_exe(), "champion", "distill", str(bag), "--robot", args.robot, "--out", str(out),
               "--force", *extra]
        print("$", " ".join(cmd), flush=True)
        return subprocess.run(cmd, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main())
