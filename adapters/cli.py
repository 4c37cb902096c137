"""The `driftgate` command line. Thin: parse, validate, call into sim/safety/controller, write files.

Bad input (unknown names, non-positive sizes, NaN fitness, a corrupt genome file) gives a one-line
error on stderr and a non-zero exit, and never leaves a partial output file: outputs are written
atomically, only after the work succeeded.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from adapters.cli_help import Backend, Method, Noise, SelectionFitness, Task, TieBreak

from adapters.cli_common import OneLineErrors, mount  # noqa: E402
from adapters.robot_option import resolve_robot, robot_label, robot_option, robot_profile  # noqa: E402

app = typer.Typer(add_completion=False, no_args_is_help=True, cls=OneLineErrors,
                  help="driftgate: keep robot controllers working when the robot drifts.")
err = Console(stderr=True, soft_wrap=True)   # never wrapped: one message, one line
out = Console()


from adapters.cli_common import fail  # noqa: E402  one line on stderr, exit 2 / 1


def _progress(total: int, quiet: bool) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                    console=err, disable=quiet, transient=False)


@app.command()
def evolve(
    task: Task = typer.Option("cartpole-switch", help="Switch benchmark (cartpole-drift: mass, gain, friction drifts)"),
    method: Method = typer.Option("srghn", help="evolution method; srghn (evolved, self-referential rate; the shipped default with --rate-floor 0.1, see README), fixed-rate (SR-GHN with a fixed rate), baselines and ablations"),
    generations: int = typer.Option(300, help="number of generations"),
    seed: int = typer.Option(0, help="run seed (same seed -> same result on 1 or N workers)"),
    cf: float = typer.Option(0.0, help="child-credit factor: parent score = (1-cf) own + cf mean(children)"),
    rate: float = typer.Option(0.2, help="mutation rate of fixed-rate / fixed-rate-std"),
    population: int = typer.Option(10, help="P: parents kept per generation"),
    children: int = typer.Option(2, help="C: children per parent (evaluations/gen = P(1+C))"),
    episodes: int = typer.Option(1, help="episodes per evaluation"),
    schedule: Optional[str] = typer.Option(None, help='switch windows in generations, e.g. "100-200"'),
    horizon: Optional[int] = typer.Option(None, help="episode length cap (task default when omitted)"),
    workers: int = typer.Option(1, help="evaluation worker processes"),
    noise: Noise = typer.Option("port", help="SR-GHN noise convention: port (sd=std), original (sd=std^2)"),
    tie_break: TieBreak = typer.Option("children", "--tie-break", help="SR-GHN selection ties go to: children | parents | random"),
    selection_fitness: SelectionFitness = typer.Option("last", "--selection-fitness",
                                          help="SR-GHN selects on: last (this generation) | mean (of the last "
                                               "--fitness-window evaluations)"),
    fitness_window: int = typer.Option(4, "--fitness-window", help="evaluations averaged by --selection-fitness mean"),
    meta_rate: float = typer.Option(0.0, "--meta-rate", help="SR-GHN: mutate the rate head by N(0, meta-rate) (0 = off)"),
    rate_floor: Optional[float] = typer.Option(None, "--rate-floor", help="SR-GHN: lowest evolved mutation rate (default: 0.1 for srghn, the shipped default; 0 otherwise)"),
    init_rate: Optional[float] = typer.Option(None, "--init-rate", help="SR-GHN: initial mean mutation rate r0"),
    sigma0: float = typer.Option(0.5, "--sigma0", help="CMA-ES initial step size"),
    openes_sigma: float = typer.Option(0.1, "--openes-sigma", help="OpenES noise std"),
    openes_lr: float = typer.Option(0.03, "--openes-lr", help="OpenES Adam step size"),
    json_out: Path = typer.Option(..., "--json-out", help="where to write the run record (JSON)"),
    save_best: Optional[Path] = typer.Option(None, "--save-best", help="write the best genome (.safetensors)"),
    init_genome: Optional[Path] = typer.Option(None, "--init-genome", help="seed the run from a saved genome"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Evolve controllers on a Switch benchmark and write a JSON record of the run."""
    from sim.atomicio import atomic_write_json
    from sim.genome import GenomeFileError, load_genome, save_genome
    from sim.runner import RunConfig, check_initial, run

    try:
        cfg = RunConfig(task=task, method=method, generations=generations, seed=seed, cf=cf, rate=rate,
                        population=population, children=children, episodes=episodes, schedule=schedule,
                        horizon=horizon, workers=workers, noise_convention=noise, tie_break=tie_break,
                        selection_fitness=selection_fitness, fitness_window=fitness_window, meta_rate=meta_rate,
                        rate_floor=rate_floor, init_rate=init_rate, sigma0=sigma0, openes_sigma=openes_sigma,
                        openes_lr=openes_lr)
        initial = load_genome(init_genome) if init_genome is not None else None
        if initial is not None:
            check_initial(cfg, initial)
    except (ValueError, TypeError, GenomeFileError) as e:
        fail(str(e))
    with _progress(generations, quiet) as progress:
        bar = progress.add_task(f"{method} on {task}", total=generations, status="")

        def on_generation(log) -> None:
            rate_txt = f" rate {log.rate_mean:.3f}" if log.rate_mean is not None else ""
            progress.update(bar, advance=1, status=f"best {log.best:8.1f}{rate_txt}{'  [switch on]' if log.switch_on else ''}")

        try:
            record, best = run(cfg, on_generation=on_generation, initial=initial)
        except ValueError as e:
            fail(str(e))
    atomic_write_json(json_out, record)
    if save_best is not None:
        save_genome(best, save_best)
    rec = record["recovery"]
    err.print(f"wrote {json_out} ({record['wall_s']:.1f} s, {record['ms_per_generation']:.1f} ms/gen); "
              f"recovery gens to 90%: {[r.get('gens_to_90') for r in rec]}")


@app.command()
def demo(
    plant: str = robot_option(help="robot: a built-in name, a shipped profile's name or a profile YAML; its "
                              "profile gives the champion, regression suite, calibration and default drift "
                              "(--plant is the same option)"),
    drift: Optional[str] = typer.Option(None, help="DriftSpec JSON injected on the robot (default: the profile's "
                                        "drift.default)"),
    seed: int = typer.Option(0, help="the simulated robot's episode seed"),
    out_dir: Path = typer.Option(Path("runs/demo"), "--out", help="run directory (a previous demo run there "
                                 "is replaced; any other non-empty directory is refused)"),
    drift_at_s: Optional[float] = typer.Option(None, "--drift-at-s", help="inject the drift at this time "
                                               "(default: 10 s after the drift monitor is armed)"),
    max_s: Optional[float] = typer.Option(None, "--max-s", help="stop after this many seconds whatever happened "
                                          "(default: long enough for the robot's whole story)"),
    params: Optional[Path] = typer.Option(None, "--params", help="parameter YAML of both nodes (default: "
                                          "launch/demo.yaml)"),
    champion: Optional[Path] = typer.Option(None, help="nominal champion genome (default: the profile's "
                                            "assets.champion)"),
    suite: Optional[Path] = typer.Option(None, help="regression suite YAML (default: the profile's assets.suite)"),
    set_: list[str] = typer.Option([], "--set", help="controller parameter key=value (YAML value); repeatable"),
    sim_set: list[str] = typer.Option([], "--sim-set", help="simulated robot parameter key=value; repeatable"),
    attempts: int = typer.Option(2, help="stop after this many adaptation attempts ended without a promotion"),
    settle_s: float = typer.Option(10.0, "--settle-s", help="default injection: this long after the drift "
                                   "monitor is armed"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no live display"),
    namespace: str = typer.Option("", help="ROS namespace of the demo's nodes (all their topics move with it)"),
) -> None:
    """The whole story over real ROS 2: a simulated robot and the controller node, a drift injected
    once the drift monitor is armed, then detection, sandboxed adaptation, gate, shadow, canary,
    promotion and watch; the recording (MCAP bag), the decisions and the report land in --out."""
    from adapters.cli_node import parse_sets
    from adapters.demo import DemoError, DemoOptions, run_demo
    from adapters.demo_display import summary_table

    try:
        spec = json.loads(drift) if drift else None
        opts = DemoOptions(plant=plant, drift=spec, seed=seed, out=out_dir, drift_at_s=drift_at_s, max_s=max_s,
                           params=params, champion=champion, suite=suite, controller=parse_sets(set_),
                           sim=parse_sets(sim_set), attempts=attempts, settle_s=settle_s, namespace=namespace)
        err.print(f"[bold]driftgate demo[/]: {plant}, drift {drift or 'default'}, run directory {out_dir} "
                  "(Ctrl-C stops early; the report is still written)")
        result = run_demo(opts, console=err, live=not quiet)
    except json.JSONDecodeError as e:
        fail(f"--drift: not valid JSON ({e})")
    except (DemoError, typer.BadParameter) as e:
        fail(str(e), getattr(e, "code", 2))
    rep = result.report
    out.print(summary_table(rep, result))
    out.print(f"report: {out_dir}/report.json, {out_dir}/summary.md, {out_dir}/timeline.png; "
              f"bag: {out_dir}/bag; decisions: {out_dir}/decisions.jsonl")
    if result.interrupted:           # Ctrl-C before the story ended: the report is partial
        err.print(f"driftgate demo: interrupted before the story ended ({result.stop_reason})")
        raise typer.Exit(130)


@app.command("switch-demo")
def switch_demo(
    out_dir: Path = typer.Option(Path("runs/switch-demo"), "--out", help="output directory"),
    generations: int = typer.Option(150, help="generations of the CartPole-Switch run"),
    schedule: str = typer.Option("50-100", help="generations with inverted actions"),
    seed: int = typer.Option(0),
    workers: int = typer.Option(1),
    method: str = typer.Option("srghn", help="srghn (shipped default: evolved rate, floor 0.1) | fixed-rate | ..."),
) -> None:
    """A short CartPole-Switch adaptation: watch SR-GHN lose and regain control when actions invert."""
    from adapters.plots import plot_adaptation
    from sim.atomicio import atomic_write_json
    from sim.genome import save_genome
    from sim.runner import RunConfig, run

    err.print(f"[bold]driftgate switch-demo[/]: SR-GHN ({method}) on CartPole-Switch, actions inverted in "
              f"generations {schedule}")
    try:
        cfg = RunConfig(task="cartpole-switch", method=method, generations=generations, seed=seed,
                        schedule=schedule, workers=workers)
    except ValueError as e:
        fail(str(e))
    with _progress(generations, False) as progress:
        bar = progress.add_task("evolving", total=generations, status="")

        def on_generation(log) -> None:
            progress.update(bar, advance=1, status=f"best {log.best:6.1f}  rate {log.rate_mean or 0:.3f}"
                                                   f"{'  [actions inverted]' if log.switch_on else ''}")
        record, best = run(cfg, on_generation=on_generation)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "evolve.json", record)
    save_genome(best, out_dir / "champion.safetensors")
    png = plot_adaptation([record], out_dir / "adaptation.png", title=f"CartPole-Switch, SR-GHN {method} (switch-demo)")
    table = Table(title="recovery after each switch (generations to reach X% of the pre-switch best)")
    for col in ("switch at gen", "pre-switch best", "drop", "to 50%", "to 90%", "to 100%"):
        table.add_column(col, justify="right")
    for r in record["recovery"]:
        table.add_row(*[str(r.get(k)) if not isinstance(r.get(k), float) else f"{r[k]:.1f}"
                        for k in ("switch_gen", "pre_best", "drop", "gens_to_50", "gens_to_90", "gens_to_100")])
    out.print(table)
    out.print(f"{record['ms_per_generation']:.1f} ms per generation; wrote {out_dir}/evolve.json, "
              f"{png}, {out_dir}/champion.safetensors")


def _adapt_progress(progress: Progress, max_generations: int):
    """A sandbox progress callback: one bar for system identification, one for the generations."""
    bars: dict[str, int] = {}

    def on(msg: dict) -> None:
        stage = msg.get("stage")
        if stage == "sysid":
            bars["sysid"] = progress.add_task("system identification", total=1, status=f"{msg.get('ticks', '?')} ticks")
        elif stage == "sysid done" and "sysid" in bars:
            progress.update(bars["sysid"], completed=1, status=f"{msg.get('wall_s', 0):.1f} s")
        elif stage in ("generation", "confirm"):
            if "gen" not in bars:
                bars["gen"] = progress.add_task("evolving", total=max_generations, status="")
            best = msg.get("best", msg.get("score"))
            status = f"best {best:.3g}" if isinstance(best, (int, float)) else ""
            progress.update(bars["gen"], completed=min(max_generations, int(msg.get("gen", 0)) + 1), status=status)
    return on


@app.command()
def adapt(
    plant: str = robot_option(),
    drift: Optional[str] = typer.Option(None, help="the simulated robot's true drift (DriftSpec JSON, e.g. "
                                        '{"mass_scale": {"BODY": 3.0}, "actuator_gain": {"ACTUATOR": -1.0}}; '
                                        "default: the robot profile's drift.default)"),
    budget_s: float = typer.Option(120.0, "--budget-s", help="wall-clock budget of the evolution"),
    seed: int = typer.Option(0),
    out: Path = typer.Option(..., "--out", help="output directory (job/, result.json, candidate.safetensors)"),
    champion: Optional[Path] = typer.Option(None, help="champion genome to adapt (default: the shipped one)"),
    telemetry: Optional[Path] = typer.Option(None, help="telemetry window .npz (qpos, qvel, actions, control_dt "
                                             "[, breaks])"),
    workers: int = typer.Option(1), backend: Backend = typer.Option("local", help="evaluation backend"),
    ray_address: Optional[str] = typer.Option(None, help="Ray cluster: host:port of a head, ray://host:10001 "
                                              "(default: RAY_ADDRESS, else a Ray head started for this job)"),
    max_generations: int = typer.Option(300), horizon: int = typer.Option(300),
    min_generations: int = typer.Option(0, "--min-generations", help="evolve at least this many generations, then "
                                        "pick the winner among the confirmed elites (seeds included) on the "
                                        "confirmation metric; 0 = stop on the first confirmed target"),
    population: int = typer.Option(10, help="P: parents kept per generation"),
    children: int = typer.Option(2, help="C: children per parent"),
    sysid_budget_s: float = typer.Option(20.0, "--sysid-budget-s"),
    sysid_max_evals: int = typer.Option(1500, "--sysid-max-evals", help="system identification evaluations "
                                        "(with count budgets binding, a seed fixes the candidate)"),
    wall_limit_s: float = typer.Option(0.0, "--wall-limit-s", help="sandbox kill limit (default: budget + 120 s)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Identify the drifted robot by replay, evolve a candidate in the sandbox, write result.json."""
    import numpy as np

    from safety.command_limits import gate_command_limits
    from sim.adapt_job import AdaptJob, nominal_champion
    from sim.genome import GenomeFileError, load_genome
    from sim.sandbox import SandboxLimits, copy_result, run_sandbox, write_job
    from sim.sysid import Telemetry

    import math
    for opt, v in (("--budget-s", budget_s), ("--sysid-budget-s", sysid_budget_s)):
        if not (math.isfinite(v) and v > 0):
            fail(f"{opt}: must be a finite number of seconds > 0, got {v}")
    if not (math.isfinite(wall_limit_s) and wall_limit_s >= 0):
        fail(f"--wall-limit-s: must be a finite number of seconds >= 0, got {wall_limit_s}")
    try:
        plant = resolve_robot(plant)
    except ValueError as e:
        fail(str(e))
    if drift is None:
        spec = robot_profile(plant).default_drift
        if spec is None:
            fail(f"--drift: robot {robot_label(plant)!r} has no default drift (its profile's drift.default); give one")
        drift = json.dumps(spec)
    try:
        spec = json.loads(drift) if drift else None
    except json.JSONDecodeError as e:
        fail(f"--drift: not valid JSON ({e})")
    try:
        from sim.drift_spec import DriftSpec
        DriftSpec.parse(spec)
    except ValueError as e:
        fail(f"--drift: {e}")
    try:
        job = AdaptJob(robot=plant, drift=spec, seed=seed, budget_s=budget_s, workers=workers, backend=backend,
                       ray_address=ray_address, max_generations=max_generations, horizon=horizon,
                       population=population, children=children, sysid_budget_s=sysid_budget_s,
                       sysid_max_evals=sysid_max_evals, min_generations=min_generations,
                       gate_limits=gate_command_limits(plant))
        seeds = [load_genome(champion) if champion else nominal_champion(plant)]
        window = None
        if telemetry is not None:
            with np.load(telemetry, allow_pickle=False) as z:
                window = Telemetry(z["qpos"], z["qvel"], z["actions"], float(z["control_dt"]),
                                   breaks=z["breaks"].astype(np.int64) if "breaks" in z.files else None)
    except (ValueError, KeyError, OSError, GenomeFileError) as e:
        fail(f"{type(e).__name__}: {e}" if not isinstance(e, ValueError) else str(e))
    if (out / "result.json").exists():
        fail(f"{out} already holds a result; choose a new --out")
    job_dir = out / "job"
    import shutil
    if job_dir.exists():
        shutil.rmtree(job_dir)
    write_job(job_dir, job, seeds, window)
    limits = SandboxLimits(wall_s=wall_limit_s or budget_s + sysid_budget_s + 120.0)
    err.print(f"[bold]adapting[/] {robot_label(plant)} under {drift} in the sandbox (budget {budget_s:g} s) ...")
    with _progress(max_generations, quiet) as progress:
        on_progress = _adapt_progress(progress, max_generations)
        outcome = run_sandbox(job_dir, limits, on_progress=on_progress)
    copy_result(outcome, out)
    if outcome.status != "ok":
        fail(f"sandbox {outcome.status}: {outcome.reason} (see {job_dir}/sandbox.log)", code=1)
    r = outcome.result
    err.print(f"sysid: {r['sysid']['params']} (error {r['sysid']['error']})")
    err.print(f"return on the drifted plant: champion {r['return_before']:.1f} -> candidate {r['return_after']:.1f} "
              f"(champion nominal {r['nominal_return']:.1f}); {len(r['generations'])} generations, {r['wall_s']:.1f} s")
    out_console = Console()
    out_console.print(str(out / "result.json"))


@app.command("train-nominal")
def train_nominal_cmd(
    plant: str = robot_option(), generations: int = typer.Option(60), seed: int = typer.Option(0),
    horizon: int = typer.Option(300), workers: int = typer.Option(1),
    backend: Backend = typer.Option("local", help="evaluation backend: local worker processes or a Ray cluster"),
    ray_address: Optional[str] = typer.Option(None, help="Ray cluster: host:port of a head, ray://host:10001 "
                                              "(default: RAY_ADDRESS, else a local Ray of --workers CPUs)"),
    start: str = typer.Option("auto", help="auto: the plant's model seed (its nominal LQR imitated into the SR-GHN "
                              "head) where it has one, else scratch | model | scratch (a random SR-GHN)"),
    out: Optional[Path] = typer.Option(None, help="default in a source checkout: sim/assets/champions/"
                                       "<plant>.safetensors (an installed package is never written to)"),
    dagger: int = typer.Option(0, help="rounds of DAgger for the model seed: the imitation drives, the nominal "
                               "controller labels the states it reaches, refit; the best round on validation "
                               "episodes is the seed (0: imitate the controller's own rollouts only)"),
) -> None:
    """Make a nominal champion for a plant: model seed (or random) + SR-GHN evolution (what `adapt` and
    the demo start from)."""
    from sim.adapt_job import ASSETS
    from sim.champion import train_nominal
    from sim.genome import save_genome

    try:
        plant = resolve_robot(plant)
    except ValueError as e:
        fail(str(e))
    if out is None and plant.endswith((".yaml", ".yml")):
        out = robot_profile(plant).asset_path("champion")
        if out is None:
            fail(f"--out is required: profile {plant} names no assets.champion")
    if out is None and not (ASSETS.parents[2] / "setup.py").is_file():
        fail("--out is required outside a source checkout: the installed package's champions are not rewritten")

    with _progress(generations, False) as progress:
        bar = progress.add_task(f"nominal champion for {robot_label(plant)}", total=generations, status="")
        try:
            genome = train_nominal(plant, generations, seed, horizon, workers=workers, start=start,
                                   backend=backend, address=ray_address or None, dagger=dagger,
                                   on_generation=lambda log: progress.update(bar, advance=1, status=f"best {log.best:7.1f}"),
                                   on_stage=lambda s: progress.update(bar, status=s))
        except ValueError as e:
            fail(str(e))
    path = save_genome(genome, out or ASSETS / f"{plant}.safetensors")
    f = genome.fitness
    err.print(f"wrote {path} (id {genome.id}, {f['source']}, winner {f['winner']}, lineage depth "
              f"{f['lineage_depth']}; return {f['nominal_return']:.1f} on {f['validation']['episodes']} validation "
              f"episodes; {f['wall_s']:.0f} s)")


mount(app, "adapters.cli_gate", "adapters.cli_registry", "adapters.cli_node", "adapters.cli_replay",
      "adapters.cli_drift", "adapters.cli_robot", "adapters.cli_champion", "adapters.cli_suite", "adapters.cli_settings")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
