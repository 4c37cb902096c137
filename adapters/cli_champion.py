"""`driftgate champion distill`: a champion on day one, from a recording of the robot's own controller.

    driftgate champion distill BAG --robot PLANT_OR_PROFILE --out FILE [--refine-generations N]

Reads the incumbent's joint states and commands from a rosbag2 MCAP bag (`adapters.demonstration`),
fits the policy by regression and writes it into an SR-GHN's deterministic head (`sim.distill`),
checks the genome through the registry's own verification (a throw-away registry adds and reads it
back), then writes FILE (safetensors, atomic) and FILE's report next to it (`.json`, same stem).
Prints the held-out fit error and the closed-loop return against the incumbent's.

Bad input (no command topic, the wrong robot for the bag, an empty bag, too few ticks, an existing
--out) is one line on stderr naming the option, exit status 2, and nothing is written.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from adapters.cli_common import fail as _fail   # one line on stderr, exit 2 / 1

EXIT_BAD_INPUT = 2
app = typer.Typer(name="champion", no_args_is_help=True, add_completion=False,
                  help="champions: distil one from a recording of the robot's existing controller")
out_console = Console()
err_console = Console(stderr=True)


def _ints(text: str, option: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        vals = ()
    if not vals or any(v < 1 for v in vals):
        _fail(f"{option}: expected comma-separated positive integers, got {text!r}")
    return vals


def report_path(out: Path) -> Path:
    """Where the report of a distilled genome goes: next to it, same stem, `.json`."""
    return out.with_suffix(".json")


def verify_through_registry(path: Path) -> str:
    """Add the genome file to a throw-away registry and read it back verified (sha256 + content id);
    returns its id. Whatever the registry refuses is refused here."""
    from safety.registry import Registry
    with tempfile.TemporaryDirectory(prefix="driftgate-distill-") as tmp:
        reg = Registry(Path(tmp) / "registry", create=True, actor="distill")
        try:
            gid = reg.add(path, reason="distillation check")
            reg.get(gid)
        finally:
            reg.close()
    return gid


@app.command("distill")
def distill_cmd(
    bag: Path = typer.Argument(..., help="rosbag2 bag directory: joint states in, the incumbent's commands out"),
    robot: str = typer.Option(..., "--robot", help="a built-in plant name, a shipped profile's name "
                       "(launch/robots/) or a robot profile YAML"),
    out: Path = typer.Option(..., "--out", help="genome file to write (.safetensors); the report goes next to it "
                             "(.json)"),
    joint_state_topic: Optional[str] = typer.Option(None, "--joint-state-topic", help="JointState topic (default: "
                                                    "the bag's own, /joint_states, or the only one)"),
    command_topic: Optional[str] = typer.Option(None, "--command-topic", help="Float64MultiArray command topic "
                                                "(default: the bag's own, the effort controller's, or the only one)"),
    joint_names: Optional[str] = typer.Option(None, "--joint-names", help="robot joint names in the plant's joint "
                                              "order, comma-separated (default: the bag's, else the plant's)"),
    hidden: str = typer.Option("32,32", "--hidden", help="hidden layer widths of the policy"),
    seed: int = typer.Option(0, "--seed", help="seed of the split, the fit, the base SR-GHN and refinement"),
    refine_generations: int = typer.Option(0, "--refine-generations", help="SR-GHN evolution generations on the "
                                           "plant's objective after the fit (0: none)"),
    episodes: int = typer.Option(20, "--episodes", help="closed-loop evaluation episodes"),
    horizon: int = typer.Option(300, "--horizon", help="closed-loop episode length in control ticks"),
    incumbent: str = typer.Option("auto", "--incumbent", help="compare with: nominal (the plant's nominal "
                                  "controller re-simulated) | recorded (the bag's rewards) | none | auto"),
    base: Optional[Path] = typer.Option(None, "--base", help="SR-GHN genome whose self graph and stochastic head "
                                        "to keep (default: a fresh one, seeded)"),
    min_ticks: int = typer.Option(200, "--min-ticks", help="refuse recordings with fewer paired ticks"),
    workers: int = typer.Option(1, "--workers", help="evaluation workers for --refine-generations"),
    force: bool = typer.Option(False, "--force", help="replace an existing --out"),
) -> None:
    """Distil the robot's existing controller (a recording of it) into an SR-GHN champion."""
    from adapters.demonstration import read_demonstration
    from adapters.robot_option import resolve_robot
    from sim.atomicio import atomic_write_json
    from sim.distill import DistillConfig, DistillError, distill
    from sim.genome import GenomeFileError, load_genome, save_genome

    hidden_t = _ints(hidden, "--hidden")
    if out.exists() and not force:
        _fail(f"--out: {out} exists; pass --force to replace it")
    if out.suffix != ".safetensors":
        _fail(f"--out: {out} should end in .safetensors")
    try:
        cfg = DistillConfig(hidden=hidden_t, seed=seed, refine_generations=refine_generations, episodes=episodes,
                            horizon=horizon, min_ticks=min_ticks, workers=workers)
        base_genome = None
        if base is not None:
            try:
                base_genome = load_genome(base)
            except GenomeFileError as e:
                raise DistillError("--base", str(e)) from None
        names = [n.strip() for n in joint_names.split(",") if n.strip()] if joint_names else None
        try:    # a built-in name, a shipped profile's name or a profile YAML, as every --robot
            robot = resolve_robot(robot)
        except ValueError as e:
            raise DistillError("--robot", str(e).removeprefix("--robot: ")) from None
        demo = read_demonstration(bag, robot, joint_state_topic=joint_state_topic, command_topic=command_topic,
                                  joint_names=names)
        result = distill(demo, robot, cfg, base=base_genome, incumbent=incumbent,
                         progress=lambda s: err_console.print(f"  {s}"))
    except DistillError as e:
        _fail(str(e))
    genome, report = result.genome, result.report
    with tempfile.TemporaryDirectory(prefix="driftgate-distill-") as tmp:
        staged = save_genome(genome, Path(tmp) / "genome.safetensors")
        gid = verify_through_registry(staged)
    if gid != genome.id:
        _fail(f"the registry read back genome {gid}, not {genome.id}", code=1)
    report["out"] = str(out)
    report["registry_check"] = "ok"
    save_genome(genome, out)
    atomic_write_json(report_path(out), report)
    out_console.print(summary_table(report))
    out_console.print(f"wrote {out} (genome {genome.id}) and {report_path(out)}")


def summary_table(report: dict) -> Table:
    """The fit error per command channel and the closed-loop returns, one table."""
    fe, cl = report["fit_error"], report["closed_loop"]
    t = Table(title=f"distilled champion for {report['plant']} ({report['ticks']} ticks, "
                    f"{report['split']['test']} held out)")
    t.add_column("measure")
    t.add_column("value", justify="right")
    for i, (r, rel) in enumerate(zip(fe["rmse"], fe["relative"])):
        t.add_row(f"held-out RMSE, command {i}", f"{r:.4f}" + (f" ({rel:.1%} of its spread)" if rel is not None
                                                                else ""))
    h = cl["horizon"]
    t.add_row(f"distilled return ({len(cl['seeds'])} episodes x {h} ticks)",
              f"{cl['distilled']['mean']:.1f} (median {cl['distilled']['median']:.1f})")
    inc = cl.get("incumbent")
    if inc:
        t.add_row("incumbent return", f"{inc['mean']:.1f}")
        t.add_row("  incumbent measured as", escape(inc["how"]))
        if cl.get("ratio") is not None:
            t.add_row("distilled / incumbent", f"{cl['ratio']:.3f}")
    if cl.get("refined"):
        t.add_row(f"refined return ({report['refined']['generations']} generations)", f"{cl['refined']['mean']:.1f}")
        if cl.get("refined_ratio") is not None:
            t.add_row("refined / incumbent", f"{cl['refined_ratio']:.3f}")
    if cl.get("recorded_reward_per_tick") is not None:
        t.add_row("reward per tick: recorded / distilled",
                  f"{cl['recorded_reward_per_tick']:.3f} / {cl['distilled_reward_per_tick']:.3f}")
    return t
