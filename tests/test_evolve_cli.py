"""`driftgate evolve`: the record it writes, determinism across workers, and refusal of bad input."""
import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from adapters.cli import app
from sim.genome import Genome, load_genome, save_genome
from sim.policy import PolicySpec
from sim.runner import RunConfig, run

runner = CliRunner()


def evolve(tmp_path, *args):
    out = tmp_path / "run.json"
    result = runner.invoke(app, ["evolve", "-q", "--json-out", str(out), *args])
    return result, out


@pytest.mark.parametrize("method", ["srghn", "cmaes", "cmaes-restart", "openes", "fixed-rate", "frozen-head"])
def test_every_method_writes_the_documented_record(tmp_path, method):
    result, out = evolve(tmp_path, "--method", method, "--generations", "6", "--schedule", "2-4",
                         "--seed", "3", "--rate", "0.3", "--cf", "0.5")
    assert result.exit_code == 0, result.output
    rec = json.loads(out.read_text())
    for key in ("task", "method", "config", "seed", "generations", "evaluations", "wall_s", "recovery"):
        assert key in rec
    assert rec["method"] == method and rec["seed"] == 3 and rec["task"] == "cartpole-switch"
    assert rec["config"]["cf"] == 0.5 and rec["config"]["rate"] == 0.3
    assert rec["config"]["schedule"] == "2-4"
    assert [g["gen"] for g in rec["generations"]] == list(range(6))
    assert [g["switch_on"] for g in rec["generations"]] == [False, False, True, True, False, False]
    assert rec["evaluations"] == 6 * 30
    has_rate = method in ("srghn", "fixed-rate", "frozen-head")
    assert all((g["rate_mean"] is not None) == has_rate for g in rec["generations"])
    if method == "fixed-rate":
        assert all(g["rate_mean"] == pytest.approx(0.3) for g in rec["generations"])
    assert [r["switch_gen"] for r in rec["recovery"]] == [2, 4]
    for r in rec["recovery"]:
        assert {"gens_to_50", "gens_to_90", "gens_to_100", "drop", "area"} <= set(r)


def test_same_seed_gives_identical_results_on_one_or_two_workers():
    one, _ = run(RunConfig(generations=4, seed=11, workers=1, schedule="2-"))
    two, _ = run(RunConfig(generations=4, seed=11, workers=2, schedule="2-"))
    strip = lambda rec: [{k: v for k, v in g.items()} for g in rec["generations"]]  # noqa: E731
    assert strip(one) == strip(two)
    assert one["best_genome_id"] == two["best_genome_id"]
    other, _ = run(RunConfig(generations=4, seed=12, workers=1, schedule="2-"))
    assert strip(other) != strip(one)


def test_save_best_and_seed_a_new_run_from_it(tmp_path):
    best = tmp_path / "best.safetensors"
    result, _ = evolve(tmp_path, "--generations", "3", "--save-best", str(best))
    assert result.exit_code == 0, result.output
    g = load_genome(best)
    assert g.kind == "srghn" and g.policy_spec == PolicySpec(4, 2, (32,))
    result, out = evolve(tmp_path, "--generations", "2", "--init-genome", str(best))
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["seed_genome_id"] == g.id


@pytest.mark.parametrize("args,message", [
    (["--task", "walker-switch"], "'walker-switch' is not one of"),
    (["--method", "ppo"], "'ppo' is not one of"),
    (["--generations", "0"], "generations"),
    (["--population", "-1"], "population"),
    (["--cf", "2"], "cf"),
])
def test_bad_arguments_fail_clearly_without_output(tmp_path, args, message):
    result, out = evolve(tmp_path, *args)
    assert result.exit_code != 0
    assert message in " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output.lower()).split())
    assert not out.exists()


def test_wrong_genome_is_refused_with_the_reason(tmp_path):
    wrong = save_genome(Genome(vector=np.zeros(10, np.float32), policy_spec=PolicySpec(4, 2, (32,)), kind="srghn"),
                        tmp_path / "wrong.safetensors")
    result, out = evolve(tmp_path, "--generations", "2", "--init-genome", str(wrong))
    assert result.exit_code != 0 and "needs" in result.output and not out.exists()
    raw = bytearray(wrong.read_bytes())
    raw[-1] ^= 0x55
    (tmp_path / "tampered.safetensors").write_bytes(bytes(raw))
    result, out = evolve(tmp_path, "--generations", "2", "--init-genome", str(tmp_path / "tampered.safetensors"))
    assert result.exit_code != 0 and "hash" in result.output and not out.exists()


def test_nan_fitness_is_refused():
    from sim.evaluate import Evaluator

    class Bad:
        name = "nan-env"

        def evaluate(self, w, s, g):
            f = np.ones(len(w))
            f[1] = np.nan
            return f

    with pytest.raises(ValueError, match="nan-env.*non-finite"):
        Evaluator(Bad())(np.zeros((3, 5), np.float32), np.arange(3), 0)
