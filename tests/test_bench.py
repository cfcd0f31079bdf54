"""Optimizer benchmarking: the protocol, determinism, the course's order on moons, a user's own
optimizer from a file, failures recorded, the command line; and the speed benchmarks' own code
(batched training, the step profile, the kernel cases) at their smallest."""

import dataclasses
import json
import math
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import xdl
from xdl import cli
from xdl.config import TrainConfig
from xdl.bench import benchmark, markdown, profile, write
from xdl.bench.report import crashes, summary


def without_times(value):
    """``value`` less what differs between two runs of one benchmark: times, and the environment's date."""
    if isinstance(value, dict):
        return {k: without_times(v) for k, v in value.items() if "seconds" not in k and k != "environment"}
    if isinstance(value, list):
        return [without_times(v) for v in value]
    return value


@pytest.fixture
def quick_budget(monkeypatch):
    """``quick_budget(problem, steps)``: ``--quick`` trains benchmark ``problem`` for ``steps`` (epochs of a
    classification) in this test, for a test whose claim holds at any length (moons' 600 quick epochs, digits' 15
    were most of this file's time)."""
    from xdl.bench.problems import PROBLEMS

    def shorten(problem, steps):
        full, _ = PROBLEMS[problem].budget
        monkeypatch.setitem(PROBLEMS, problem, dataclasses.replace(PROBLEMS[problem], budget=(full, steps)))

    return shorten


def reached_the_target(results, problem):
    """Whether some search trial of ``problem`` reached its target: the runs were long enough that the steps to the
    target are compared too, not None against None."""
    return any(trial.get("steps_to_target") is not None
               for entry in results["problems"][problem].values() for trial in entry["search"])


def test_the_same_seed_gives_the_same_results_apart_from_times(quick_budget):
    quick_budget("moons", 60)
    a = benchmark(["quadratic", "moons"], ["sgd", "adam"], seeds=2, trials=3, quick=True)
    b = benchmark(["quadratic", "moons"], ["sgd", "adam"], seeds=2, trials=3, quick=True)
    assert json.dumps(without_times(a), sort_keys=True) == json.dumps(without_times(b), sort_keys=True)
    rates = [[s["lr"] for s in a["problems"]["moons"][name]["search"]] for name in ("sgd", "adam")]
    assert rates[0] == rates[1]  # every optimizer gets the same rates to try
    for entry in a["problems"]["moons"].values():
        assert len(entry["runs"]) == 2 and {r["seed"] for r in entry["runs"]} == {1, 2}
    assert reached_the_target(a, "moons") and reached_the_target(a, "quadratic")


def test_moons_at_the_courses_settings_shows_adam_ahead():
    """lr 7e-4, no tuning: Adam's train accuracy above momentum's and plain GD's by ≥ 0.04."""
    results = benchmark(["moons"], ["sgd", "momentum", "adam"], seeds=1, trials=1, quick=True, lr=7e-4)
    train = {name: e["runs"][0]["train_accuracy"] for name, e in results["problems"]["moons"].items()}
    assert train["adam"] >= max(train["sgd"], train["momentum"]) + 0.04


USER_OPTIMIZER = '''
import numpy as np
from xdl.optim import Optimizer


class SignSGD(Optimizer):
    """p ← p − lr·sign(g)"""

    def __init__(self, params=None, lr=0.01):
        super().__init__(params, lr=lr)

    def update(self, flat, state, h, step, steps_done=None):
        xp = flat.params[0].backend.xp
        flat.data -= h["lr"] * xp.sign(flat.grad)


class Broken(Optimizer):
    def __init__(self, params=None, lr=0.01):
        super().__init__(params, lr=lr)

    def update(self, flat, state, h, step, steps_done=None):
        raise RuntimeError("this update rule is broken")
'''


def test_a_users_optimizer_from_a_file_takes_part_and_a_crash_is_recorded(tmp_path, quick_budget):
    quick_budget("digits", 3)
    path = tmp_path / "my_rules.py"
    path.write_text(USER_OPTIMIZER)
    results = benchmark(["quadratic", "digits"], ["adam", f"{path}:SignSGD", f"{path}:Broken"], seeds=1, trials=2,
                        quick=True)
    assert "SignSGD" in results["problems"]["digits"] and "| digits | SignSGD |" in markdown(results)
    assert results["problems"]["digits"]["SignSGD"]["runs"][0]["status"] == "completed"
    crashed = results["problems"]["digits"]["Broken"]["search"]
    assert all(s["status"] == "crashed" and "this update rule is broken" in s["error"] for s in crashed)
    assert results["problems"]["digits"]["Broken"]["runs"] == []
    _, _, fractions = profile(results)
    assert set(fractions) == {"adam", "SignSGD", "Broken"}
    files = write(results, tmp_path)
    assert (tmp_path / "profile.png").is_file() and (tmp_path / "curves-digits.png").is_file()
    assert json.loads((tmp_path / "results.json").read_text())["problems"].keys() == {"quadratic", "digits"}
    assert len(files) == 5
    # written again over it, with one problem: no figure of the replaced results stays
    write(dict(results, problems={"quadratic": results["problems"]["quadratic"]}), tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["curves-quadratic.png", "profile.png"]
    (tmp_path / "curves-mine.png").write_bytes(b"a user's figure")  # no benchmark drew it: kept (was removed)
    write(dict(results, problems={"quadratic": results["problems"]["quadratic"]}), tmp_path)
    assert (tmp_path / "curves-mine.png").read_bytes() == b"a user's figure"
    assert crashes(results) == ["Broken on quadratic: 2 of 2 runs crashed; first: RuntimeError: this update rule is "
                                "broken", "Broken on digits: 2 of 2 runs crashed; first: RuntimeError: this update "
                                "rule is broken"]


def test_the_command_fails_naming_a_crashed_optimizer_and_still_writes_its_files(tmp_path, capsys):
    (tmp_path / "my_rules.py").write_text(USER_OPTIMIZER)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no plotting warnings for curves nobody drew
        assert cli.main(["bench", "optimizers", "--problem", "quadratic", "--seeds", "1", "--trials", "2",
                         "--optimizer", f"{tmp_path / 'my_rules.py'}:Broken", "--out", str(tmp_path / "b")]) == 1
    assert "xdl bench: Broken on quadratic: 2 of 2 runs crashed; first: RuntimeError: this update rule is broken" \
        in capsys.readouterr().err
    assert (tmp_path / "b" / "results.json").is_file() and (tmp_path / "b" / "curves-quadratic.png").is_file()


def test_a_directory_holding_results_no_benchmark_wrote_is_refused_before_any_work(tmp_path, capsys):
    """A user's results.json was replaced and their curves-*.png removed, without a word."""
    out = tmp_path / "proj"
    out.mkdir()
    (out / "results.json").write_text('{"my": "experiment"}')
    (out / "curves-lossplot.png").write_bytes(b"png")
    command = ["bench", "optimizers", "--problem", "quadratic", "--optimizer", "sgd", "--seeds", "1", "--trials", "1"]
    assert cli.main([*command, "--out", str(out)]) == 1
    assert f"--out {str(out)!r} holds results.json that no optimizer benchmark wrote" in capsys.readouterr().err
    assert (out / "results.json").read_text() == '{"my": "experiment"}' and (out / "curves-lossplot.png").exists()
    (out / "results.json").unlink()
    (out / "results.md").write_text("# my notes")
    assert cli.main([*command, "--out", str(out)]) == 1
    assert "holds results.md that no optimizer benchmark wrote" in capsys.readouterr().err
    with pytest.raises(FileExistsError, match="directory .* holds results.md that no optimizer benchmark wrote"):
        write({"problems": {}}, out)  # in Python too
    assert (out / "results.md").read_text() == "# my notes"


def test_an_out_that_is_a_file_is_named_as_one(tmp_path, capsys):
    """--out FILE said "holds  that no optimizer benchmark wrote": FILE/results.json could not be read."""
    (tmp_path / "notes.txt").write_text("mine")
    command = ["bench", "optimizers", "--problem", "quadratic", "--optimizer", "sgd", "--seeds", "1", "--trials", "1"]
    assert cli.main([*command, "--out", str(tmp_path / "notes.txt")]) == 1
    assert f"--out {str(tmp_path / 'notes.txt')!r} is a file, not a directory" in capsys.readouterr().err
    assert cli.main([*command, "--out", str(tmp_path / "notes.txt" / "b")]) == 1
    assert "cannot be created" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_two_optimizers_of_one_name_are_refused(tmp_path):
    for where in ("a", "b"):
        (tmp_path / where).mkdir()
        (tmp_path / where / "rules.py").write_text(USER_OPTIMIZER)
    with pytest.raises(ValueError, match=r"another optimizer in this benchmark is also named 'SignSGD'"):
        benchmark(["quadratic"], [f"{tmp_path / d / 'rules.py'}:SignSGD" for d in ("a", "b")], seeds=1, trials=1)
    (tmp_path / "named.py").write_text(USER_OPTIMIZER + "\n\nclass sgd(SignSGD):\n    pass\n")
    for order in ((f"{tmp_path / 'named.py'}:sgd", "sgd"), ("sgd", f"{tmp_path / 'named.py'}:sgd")):
        with pytest.raises(ValueError, match=r"also named 'sgd'"):  # the user's was replaced by the built-in's
            benchmark(["quadratic"], list(order), seeds=1, trials=1)


def test_a_search_ranks_ties_by_a_stated_rule_and_says_when_its_best_rate_is_at_an_edge():
    """Equal dev accuracies (100 examples move it by 0.01) were decided by the order the rates were
    drawn; now by the fewer steps to the target, then the smaller rate. A best rate that is the
    largest drawn is said: the range may end below the optimizer's best."""
    from xdl.bench.protocol import _ranking

    trials = [{"score": 0.96, "steps_to_target": 1240, "lr": 0.179}, {"score": 0.96, "steps_to_target": 500, "lr": 0.448},
              {"score": 0.95, "steps_to_target": 100, "lr": 0.9}, {"score": 0.96, "steps_to_target": 500, "lr": 0.3}]
    assert max(trials, key=_ranking)["lr"] == 0.3
    results = benchmark(["quadratic"], ["sgd"], seeds=1, trials=4, quick=True)
    entry = results["problems"]["quadratic"]["sgd"]
    rates = [t["lr"] for t in entry["search"]]
    assert entry["lr_at_edge"] == ("largest" if entry["lr"] == max(rates) else
                                   "smallest" if entry["lr"] == min(rates) else None)
    entry["lr_at_edge"] = "largest"
    assert "**the best rate is the largest or smallest drawn** for sgd on quadratic (largest)" in markdown(results)


def test_the_steps_to_target_count_every_seed_and_a_profile_only_problems_every_optimizer_ran():
    """A target one seed of three reached is not reached (the median over the seeds, a seed that
    never reached it counting as ∞); an interrupted benchmark's last problem, which some optimizers
    never ran, is left out of the profiles (they were scored as failing it)."""
    runs = [{"status": "completed", "steps_to_target": 40, "seconds_to_target": 0.1, "test_accuracy": 0.9,
             "train_accuracy": 1.0}, *[{"status": "completed", "steps_to_target": None, "seconds_to_target": None,
                                        "test_accuracy": 0.5, "train_accuracy": 0.6}] * 2]
    entry = {"search": [], "runs": runs, "lr": 0.1}
    results = {"problems": {"moons": {"sgd": entry, "adam": dict(entry, runs=runs[:1] * 3)},
                            "digits": {"sgd": dict(entry, runs=runs[:1] * 3)}}}
    rows = {(r["problem"], r["optimizer"]): r for r in summary(results)}
    assert rows["moons", "sgd"]["steps_to_target"] is None and rows["moons", "sgd"]["reached"] == "1/3"
    assert rows["moons", "adam"]["steps_to_target"] == 40
    problems, _, fractions = profile(results)
    assert problems == ["moons"] and fractions["adam"][0] == 1.0 and fractions["sgd"][-1] == 0.0


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"--problem 'mnist': unknown"):
        benchmark(["mnist"], ["adam"])
    with pytest.raises(ValueError, match=r"--optimizer 'no_such_rule': unknown"):
        benchmark(["quadratic"], ["no_such_rule"])
    with pytest.raises(ValueError, match=r"--optimizer 'nowhere.py:Rule': cannot load it"):
        benchmark(["quadratic"], ["nowhere.py:Rule"])
    with pytest.raises(ValueError, match=r"must be a subclass of xdl.optim.Optimizer"):
        benchmark(["quadratic"], ["json:dumps"])
    with pytest.raises(ValueError, match=r"--seeds must be an integer in \[1, 100,000\]"):
        benchmark(["quadratic"], ["adam"], seeds=0)
    with pytest.raises(ValueError, match=r"--seed 18446744073709551615 with --seeds 3: .* below 2\*\*64"):
        benchmark(["quadratic"], ["adam"], seed=2**64 - 1)  # (it failed after the search, at seed 2**64)
    with pytest.raises(TypeError, match=r"--problem: a list of names, got 'quadratic'"):
        benchmark("quadratic", ["adam"])  # a string was its letters: "--problem 'q': unknown"
    with pytest.raises(ValueError, match=r"--optimizer: no names given"):
        benchmark(["quadratic"], [])
    with pytest.raises(ValueError, match=r"quick must be True or False, got 'no'"):
        benchmark(["quadratic"], ["adam"], quick="no")


def test_cli_bench_optimizers(tmp_path, capsys):
    out = tmp_path / "bench"
    assert cli.main(["bench", "optimizers", "--quick", "--problem", "quadratic", "rosenbrock", "--optimizer", "sgd",
                     "adam", "--seeds", "1", "--trials", "2", "--backend", "numpy", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| quadratic | adam |" in printed and "| rosenbrock | sgd |" in printed
    assert {p.name for p in out.iterdir()} >= {"results.json", "results.md", "profile.png", "curves-quadratic.png"}
    assert cli.main(["bench", "optimizers", "--problem", "mnist", "--out", str(out)]) == 1
    assert "--problem 'mnist': unknown" in capsys.readouterr().err


def test_a_batched_search_gives_the_records_of_one_run_at_a_time(quick_budget):
    """fit_many trains the trials at once; every record is the one-at-a-time run's, apart from times
    (and the test cost's last digits: it is summed in another order)."""
    quick_budget("digits", 5)
    one = benchmark(["digits"], ["adam", "momentum", "adamw"], seeds=1, trials=4, quick=True, batched=False)
    many = benchmark(["digits"], ["adam", "momentum", "adamw"], seeds=1, trials=4, quick=True, batched=True)
    assert reached_the_target(one, "digits")
    for name in ("adam", "momentum", "adamw"):  # adamw: decay on the weights only in both
        a, b = one["problems"]["digits"][name]["search"], many["problems"]["digits"][name]["search"]
        for x, y in zip(a, b):
            assert x.pop("test_cost") == pytest.approx(y.pop("test_cost"), rel=1e-6)
        assert without_times(a) == without_times(b)


def test_a_searchs_rate_is_scored_by_the_accuracy_it_settled_at_not_its_last_epoch():
    """On moons' 100 dev examples many rates ended at 0.96, and the tie went to the fewest steps: the
    largest rate, whose accuracy swung (rmsprop's seeds at it then sat at 0.5). A rate is scored
    by its mean over the last tenth of its epochs."""
    from xdl.bench.protocol import _ranking, settled_accuracy

    swinging = [0.5] * 90 + [0.96, 0.77, 0.96, 0.87, 0.96, 0.8, 0.96, 0.9, 0.85, 0.96]
    settled = [0.5] * 20 + [0.95] * 70 + [0.96] * 10
    assert settled_accuracy(swinging) == pytest.approx(np.mean(swinging[-10:]))
    assert settled_accuracy(swinging) < settled_accuracy(settled) == pytest.approx(0.96)
    assert settled_accuracy([0.7]) == 0.7 and settled_accuracy([0.1] * 11 + [0.9]) == pytest.approx(0.5)  # ⌈1.2⌉
    trials = [{"score": settled_accuracy(c), "steps_to_target": steps, "lr": lr}
              for c, steps, lr in ((swinging, 90, 0.448), (settled, 400, 0.0267))]
    assert max(trials, key=_ranking)["lr"] == 0.0267  # the last epochs alone: a tie, won by the swinging rate
    results = benchmark(["moons"], ["sgd"], seeds=1, trials=2, quick=True)
    for trial in results["problems"]["moons"]["sgd"]["search"]:
        assert trial["score"] == settled_accuracy(trial["curve"])


@pytest.mark.parametrize("flags, message", [
    (["--seeds", "0"], "--seeds must be an integer in [1, 100,000], got 0"),
    (["--trials", "0"], "--trials must be an integer in [1, 100,000], got 0"),
    (["--seeds", str(2**64)], "--seeds must be an integer in [1, 100,000], got 18446744073709551616"),
    (["--lr", "-1"], "--lr must be a number in float32's positive range [1.4e-45, 3.4e+38], got -1.0"),
    (["--lr", "nan"], "--lr must be a number in float32's positive range [1.4e-45, 3.4e+38], got nan"),
    (["--seed", "-1"], "--seed must be an integer ≥ 0, got -1"),
    (["--optimizer", "nowhere.py:Rule"], "--optimizer 'nowhere.py:Rule': cannot load it"),
])
def test_cli_bench_refuses_bad_options_by_flag_before_any_work(tmp_path, capsys, flags, message):
    """A 0 given is refused, not replaced by the default; nothing is run or written."""
    out = tmp_path / "bench"
    assert cli.main(["bench", "optimizers", "--quick", "--problem", "quadratic", "--optimizer", "sgd", *flags,
                     "--backend", "numpy", "--out", str(out)]) == 1
    printed = capsys.readouterr()
    assert message in printed.err and "bench optimizers: backend" not in printed.out
    assert not out.exists()


def test_bad_rates_and_seeds_are_named_in_python_too():
    with pytest.raises(ValueError, match=r"--lr must be a number in float32.s positive range .*, got -0.001"):
        benchmark(["quadratic"], ["adam"], lr=-1e-3)
    with pytest.raises(ValueError, match=r"--seed must be an integer ≥ 0, got -1"):
        benchmark(["quadratic"], ["adam"], seed=-1)


def test_the_batched_training_benchmark_runs_and_reports_each_k(capsys, monkeypatch, tmp_path):
    """benchmarks/batched.py (not collected by the suite) at its smallest: a table row per K."""
    import importlib.util
    path = Path(__file__).parents[1] / "benchmarks" / "batched.py"
    spec = importlib.util.spec_from_file_location("batched_benchmark", path)
    batched = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(batched)
    monkeypatch.setattr(batched, "keep_freed_memory", lambda: False)  # as conftest does for the xdl command
    assert batched.faster(3.0, 1.5, 1) == "2.0× faster" and batched.faster(1.0, 1.4, 1) == "1.4× slower"
    figures = tmp_path / "batched.json"
    batched.main(["--models", "1", "2", "--epochs", "1", "--sequential", "1", "--no-torch", "--json", str(figures)])
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line.startswith("| ") and line[2].isdigit()]
    assert [row.split(" | ")[0] for row in rows] == ["| 1", "| 2"]
    # one column per figure: "× one xdl model's rate" was "vs K sequential xdl" again (k·one / seconds both)
    header = next(line for line in lines if line.startswith("| K |"))
    assert header.split(" | ")[-2:] == ["model-epochs/s", "vs K sequential xdl |"]
    assert all(row.count(" | ") == header.count(" | ") for row in rows)
    assert all(("faster" in row) != ("slower" in row) for row in rows)
    written = json.loads(figures.read_text())
    assert written["epochs"] == 1 and written["one_xdl_seconds"] > 0 and written["one_torch_seconds"] is None
    assert [r["k"] for r in written["rows"]] == [1, 2] and written["complete"] is True
    assert all(r["seconds"] > r["setup_seconds"] >= 0 and r["training_seconds_per_epoch"] > 0 for r in written["rows"])


def test_the_batched_benchmark_on_a_gpu_leaves_out_a_pytorch_without_cuda(capsys, monkeypatch, tmp_path):
    """benchmarks/batched.py on a GPU backend beside a PyTorch that has no CUDA (a CPU wheel, a driver it
    cannot use) raised at its first ``.to("cuda")``, before any row: the run wrote no JSON, xdl's figures
    lost with PyTorch's. Now its columns are left out, as an absent PyTorch's, and xdl's rows are measured."""
    import types

    batched = load_benchmark_script("batched", monkeypatch)
    monkeypatch.setattr(batched, "keep_freed_memory", lambda: False)
    numpy_backend = xdl.backend.get_backend("numpy")

    class LooksLikeAGpu:  # the CPU backend, said to be a GPU: what decides the PyTorch peers' device
        device_type = "cuda"

        def __getattr__(self, name):
            return getattr(numpy_backend, name)

    monkeypatch.setattr(batched, "checked_backend", lambda parser: LooksLikeAGpu())
    without_cuda = types.ModuleType("torch")
    without_cuda.cuda = types.SimpleNamespace(is_available=lambda: False)
    without_cuda.Tensor = type("Tensor", (), {})  # (what scipy's array checks look up in a torch imported)
    without_cuda.as_tensor = lambda *args, **kwargs: pytest.fail("a PyTorch without CUDA was asked for CUDA")
    monkeypatch.setitem(sys.modules, "torch", without_cuda)
    figures = tmp_path / "batched.json"
    with xdl.use("numpy"):
        batched.main(["--models", "1", "--epochs", "1", "--sequential", "1", "--json", str(figures)])
    out = capsys.readouterr().out
    assert "(PyTorch not installed, or without CUDA here: its columns are left out)" in out
    written = json.loads(figures.read_text())
    assert written["complete"] is True and written["one_torch_seconds"] is None
    assert [r["k"] for r in written["rows"]] == [1]
    assert "torch_fused_graph_seconds" not in written["rows"][0]


def load_benchmark_script(name, monkeypatch):
    """A script of benchmarks/ (not a package) as a module, registered while the test runs."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", Path(__file__).parents[1] / "benchmarks" /
                                                  f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def refused_before_any_work(name, work, argv, monkeypatch, capsys):
    """benchmarks/``name``.py's ``main(argv)``, its ``work`` failing the test if it is reached: the
    exit status it stops with, and what it printed."""
    script = load_benchmark_script(name, monkeypatch)
    monkeypatch.setattr(script, work, lambda *args, **kwargs: pytest.fail("work started"))
    monkeypatch.setattr(script, "keep_freed_memory", lambda: False)
    with pytest.raises(SystemExit) as stopped:
        script.main(argv)
    return stopped.value.code, capsys.readouterr()


def test_the_acceptance_summary_judges_each_point_from_the_run_and_says_what_is_missing(tmp_path, capsys,
                                                                                       monkeypatch):
    """benchmarks/acceptance.py on made-up figures: each bound applied as the issues write it."""
    acceptance = load_benchmark_script("acceptance", monkeypatch)
    steps = []
    for case, xdl_eager, captured, torch_eager, graph in (
            ("B=128, 784→3×256→10", 2.0, 0.16, 2.1, 0.2), ("B=512, 784→4×1024→10", 3.0, 0.6, 2.2, 0.64),
            ("B=4096, 784→4×2048→10", 8.4, 7.9, 8.0, 7.8), ("B=4096, 784→4×2048→10 tf32", 2.8, 2.7, 2.3, 2.1)):
        steps += [{"case": case, "impl": impl, "seconds": t / 1e3} for impl, t in
                  (("xdl eager", xdl_eager), ("xdl captured", captured), ("torch eager", torch_eager),
                   ("torch graph", graph))]
    rows = [{"case": "batchnorm train fwd 65536x1024", "impl": impl, "seconds": t} for impl, t in
            (("xdl kernels", 1.0), ("xdl layer: bn(x)", 1.05))]
    on_gpu = {"backend": "cupy", "device": "NVIDIA H100 80GB HBM3"}
    report = {"environment": on_gpu, "steps": steps, "rows": rows,
              "main_job_seconds_per_epoch": {"cupy": 0.0028, "numpy": 0.0206}}
    batched = {"environment": on_gpu, "epochs": 30, "one_xdl_seconds": 0.09, "one_torch_seconds": 0.74,
               "rows": [{"k": 64, "seconds": 0.25, "training_seconds_per_epoch": 0.005,
                         "torch_fused_graph_seconds": 0.144}]}
    (tmp_path / "report.json").write_text(json.dumps(report))
    (tmp_path / "batched.json").write_text(json.dumps(batched))
    points = acceptance.main([str(tmp_path / "report.json"), str(tmp_path / "batched.json")])
    verdicts = {p.what: p.met for p in points}
    assert verdicts["captured step / torch's whole-step graph, B=128"] is True  # 0.8
    assert verdicts["captured step / torch's whole-step graph, B=512"] is False  # 0.94
    assert [verdicts[f"eager step / torch eager, B={b}"] for b in (128, 512, 4096)] == [True, False, False]
    assert verdicts["B=4096, xdl's faster step / torch eager"] is True  # captured 7.9 vs 8.0
    assert verdicts["B=4096 tf32, xdl's faster step / torch eager (allow_tf32)"] is False
    assert verdicts["main job per epoch on the GPU"] is True
    assert verdicts["main job, the CPU's epoch / the GPU's (faster on the GPU)"] is True
    assert verdicts["train fwd 65536x1024 through the public API / the kernels"] is True  # 1.05
    assert verdicts["train fwd+bwd 65536x1024 through the public API / the kernels"] is None  # not in the run
    assert verdicts["K = 64: the whole run's wall time over one model's"] is True  # 0.25/0.09 = 2.8 (23× the rate)
    assert verdicts["K = 64: times faster than 64 sequential PyTorch eager runs"] is True  # 64·0.74/0.25 = 189
    assert verdicts["K = 64 steady epoch, training only / the hand-fused PyTorch graph's epoch"] is False  # 5 vs 4.8
    out = capsys.readouterr().out
    assert "- [NOT met] issue 12: captured step / torch's whole-step graph, B=512: 0.937× (≤ 0.9×)" in out
    assert "- [no figure] issue 12: train fwd+bwd 65536x1024 through the public API / the kernels (≤ 1.1×)" in out
    points = acceptance.main([str(tmp_path / "missing.json"), str(tmp_path / "batched.json")])  # a failed step
    assert "missing.json" in capsys.readouterr().out and all(p.met is None for p in points if p.issue == 12)
    # a CPU run's figures judge no GPU point (a K = 64 rate on numpy read as "NOT met"); a partial run is named
    (tmp_path / "cpu.json").write_text(json.dumps(dict(batched, environment={"backend": "numpy", "device": "cpu"})))
    (tmp_path / "partial.json").write_text(json.dumps(dict(report, complete=False)))
    points = acceptance.main([str(tmp_path / "partial.json"), str(tmp_path / "cpu.json")])
    out = capsys.readouterr().out
    assert f"({tmp_path / 'cpu.json'}: measured on backend numpy (cpu), not on a GPU; its points have no figure)" in out
    assert "partial.json: its run stopped before its end" in out
    assert all(p.met is None for p in points if p.issue == 13) and any(p.met for p in points if p.issue == 12)
    script = Path(__file__).parents[1] / "benchmarks" / "acceptance.py"
    ran = subprocess.run([sys.executable, str(script), str(tmp_path / "report.json"), str(tmp_path / "batched.json")],
                         capture_output=True, text=True)
    assert ran.returncode == 1 and "[NOT met]" in ran.stdout  # was 0 whatever the verdicts


def test_the_acceptance_summary_holds_k_64_to_3_times_one_models_wall_time(tmp_path, monkeypatch):
    """Issue 13: K = 64 in ≤ 3× the wall time of one model (≥ 20× the model-epochs per second, which is
    that bound rounded down: 64/3 = 21.3×). Judged by the rate alone, a run at 3.1× one model's time
    (20.6× the rate) read "met"."""
    acceptance = load_benchmark_script("acceptance", monkeypatch)
    on_gpu = {"backend": "cupy", "device": "NVIDIA H100 80GB HBM3"}
    batched = {"environment": on_gpu, "epochs": 30, "one_xdl_seconds": 1.0, "one_torch_seconds": 10.0,
               "rows": [{"k": 64, "seconds": 3.1, "training_seconds_per_epoch": 0.09,
                         "torch_fused_graph_seconds": 3.0}]}
    report = {"environment": on_gpu, "steps": [], "rows": [], "main_job_seconds_per_epoch": {}}
    (tmp_path / "report.json").write_text(json.dumps(report))
    for seconds, met in ((3.1, False), (2.9, True)):
        batched["rows"][0]["seconds"] = seconds
        (tmp_path / "batched.json").write_text(json.dumps(batched))
        points = acceptance.main([str(tmp_path / "report.json"), str(tmp_path / "batched.json")])
        wall = [p for p in points if p.issue == 13 and "wall time" in p.what]
        assert [p.met for p in wall] == [met] and wall[0].figure == pytest.approx(seconds)


def test_the_acceptance_summary_takes_a_figure_at_its_bound_as_at_it(tmp_path, monkeypatch):
    """Times whose ratio is a point's bound exactly (as floats hold it: xdl's time = bound × the reference's)
    meet every ≤ and ≥ point and not the one > point. The division read 0.27 / 0.09 = 3.0000000000000004 >
    3: about one such run in ten was "NOT met" at 3×, 0.9× and 100×, the line printing "3× (≤ 3×)"; a figure
    just past a bound (0.9004) printed as the bound ("0.9× (≤ 0.9×)", NOT met) and now shows its digits."""
    acceptance = load_benchmark_script("acceptance", monkeypatch)
    on_gpu = {"backend": "cupy", "device": "NVIDIA H100 80GB HBM3"}
    rng = np.random.default_rng(0)
    for _ in range(40):
        torch_time = lambda: float(rng.uniform(1e-4, 1e-2))  # noqa: E731
        steps = []
        for batch, case in acceptance.STEP_CASES.items():
            for suffix in ("", " tf32") if batch == 4096 else ("",):
                graph, eager = torch_time(), torch_time()
                steps += [{"case": case + suffix, "impl": "torch graph", "seconds": graph},
                          {"case": case + suffix, "impl": "xdl captured", "seconds": 0.9 * graph},
                          {"case": case + suffix, "impl": "torch eager", "seconds": eager},
                          {"case": case + suffix, "impl": "xdl eager", "seconds": 1.0 * eager}]
        rows = []
        for case in acceptance.BN_CASES:
            kernels = torch_time()
            rows += [{"case": case, "impl": acceptance.KERNEL_IMPL, "seconds": kernels},
                     {"case": case, "impl": acceptance.LAYER_IMPL, "seconds": 1.1 * kernels}]
        report = {"environment": on_gpu, "steps": steps, "rows": rows,
                  "main_job_seconds_per_epoch": {"cupy": 10e-3, "numpy": 10e-3}}
        one, graph = torch_time() * 100, torch_time() * 30
        whole = 3.0 * one
        batched = {"environment": on_gpu, "epochs": 30, "one_xdl_seconds": one, "one_torch_seconds": 100.0 * whole / 64,
                   "rows": [{"k": 64, "seconds": whole, "training_seconds_per_epoch": graph / 30,
                             "torch_fused_graph_seconds": graph}]}
        (tmp_path / "report.json").write_text(json.dumps(report))
        (tmp_path / "batched.json").write_text(json.dumps(batched))
        points = acceptance.main([str(tmp_path / "report.json"), str(tmp_path / "batched.json")])
        assert len(points) == 14
        assert [p.what for p in points if not p.met] == ["main job, the CPU's epoch / the GPU's (faster on the GPU)"], \
            [p.line() for p in points]
    assert acceptance.Point(12, "x", 0.9004, "≤", 0.9).line() == "- [NOT met] issue 12: x: 0.9004× (≤ 0.9×)"
    assert acceptance.Point(13, "x", 0.27 / 0.09, "≤", 3.0).line() == "- [met] issue 13: x: 3× (≤ 3×)"
    assert acceptance.Point(12, "x", 1.0 + 1e-12, ">", 1.0).met is False
    assert acceptance.Point(12, "x", 1.001, ">", 1.0).met is True


def test_the_acceptance_summary_names_a_file_that_is_not_the_one_its_place_takes(tmp_path, capsys, monkeypatch):
    """The two files in the other order crashed with KeyError 'case', a JSON array with AttributeError:
    now one usage line names the file, what it should be and — given swapped — what it reads as."""
    acceptance = load_benchmark_script("acceptance", monkeypatch)
    on_gpu = {"backend": "cupy", "device": "NVIDIA H100 80GB HBM3"}
    report = {"environment": on_gpu, "steps": [{"case": "B=128, 784→3×256→10", "impl": "xdl eager", "seconds": 0.002}],
              "rows": [], "main_job_seconds_per_epoch": {"numpy": 0.02}}
    batched = {"environment": on_gpu, "epochs": 30, "one_xdl_seconds": 0.09, "one_torch_seconds": None,
               "rows": [{"k": 64, "seconds": 0.25}]}
    for name, figures in (("rq.json", report), ("b.json", batched), ("list.json", [1, 2]), ("other.json", {"foo": 1}),
                          ("text.json", "report"), ("k.json", dict(batched, rows=[{"k": "64", "seconds": 0.25}])),
                          ("zero.json", dict(batched, one_xdl_seconds=0))):
        (tmp_path / name).write_text(json.dumps(figures))
    for files, message in (
            (("b.json", "rq.json"), r"b.json is not a report.py JSON \(what benchmarks/report.py --json writes\): it "
                                    r"has no 'steps'; it reads as a batched.py JSON \(the two files given in the other "
                                    r"order\?\)"),
            (("rq.json", "list.json"), r"list.json is not a batched.py JSON .*: it holds an array, not an object"),
            (("text.json", "b.json"), r"text.json is not a report.py JSON .*: it holds a string, not an object"),
            (("other.json", "b.json"), r"other.json is not a report.py JSON .*: it has no 'environment', 'rows', "
                                       r"'steps'$"),  # (was read as a report with every figure missing)
            (("rq.json", "k.json"), r"k.json is not a batched.py JSON .*: its 'rows' are not rows of k and seconds$"),
            (("rq.json", "zero.json"), r"zero.json .*: its 'one_xdl_seconds' and 'one_torch_seconds' are not seconds")):
        with pytest.raises(SystemExit) as stopped:
            acceptance.main([str(tmp_path / f) for f in files])
        printed = capsys.readouterr()
        assert stopped.value.code == 2 and printed.out == ""
        assert re.search(": error: " + re.escape(str(tmp_path)) + "/" + message, printed.err, re.M), \
            printed.err
    points = acceptance.main([str(tmp_path / "rq.json"), str(tmp_path / "b.json")])  # in order, figures missing
    assert sum(p.figure is None for p in points) == len(points) - 1 and "[no figure]" in capsys.readouterr().out


@pytest.mark.parametrize("flags, message", [
    (["--json", "/nonexistent_d/x.json"], "--json '/nonexistent_d/x.json': directory '/nonexistent_d' does not exist"),
    (["--json", "."], "--json '.' is a directory; name a file"),
    (["--json", ""], "--json must name a file, got ''"),
])
def test_the_kernel_report_script_refuses_a_path_it_cannot_write_in_one_line(flags, message, monkeypatch, capsys):
    """benchmarks/report.py printed a traceback; now a usage error, as batched.py's, before any work."""
    code, printed = refused_before_any_work("report", "report", ["--quick", *flags], monkeypatch, capsys)
    assert code == 2 and f": error: {message}" in printed.err


@pytest.mark.parametrize("name, work", [("report", "report"), ("profile_step", "xdl_step"),
                                        ("batched", "digits_training_set")])
@pytest.mark.parametrize("backend, message", [("cupy", "backend 'cupy' is unavailable: "),
                                              ("jax", "XDL_BACKEND='jax' is not a backend; expected one of")])
def test_the_speed_scripts_refuse_a_backend_this_machine_lacks_in_one_line(name, work, backend, message, monkeypatch,
                                                                          capsys):
    """XDL_BACKEND=cupy without a GPU (or a name that is no backend): a usage error, not a traceback."""
    from conftest import cupy_available

    if backend == "cupy" and cupy_available():
        pytest.skip("a GPU is present: cupy works")
    monkeypatch.setattr(xdl.backend, "_current", None)  # as in a fresh process: XDL_BACKEND is read
    monkeypatch.setenv("XDL_BACKEND", backend)
    code, printed = refused_before_any_work(name, work, ["--quick"], monkeypatch, capsys)
    assert code == 2 and f": error: {message}" in printed.err


def test_the_step_profile_reports_host_and_wall_time_and_the_functions_behind_them(capsys, monkeypatch):
    """benchmarks/profile_step.py (not collected by the suite) on its small step."""
    import importlib.util
    path = Path(__file__).parents[1] / "benchmarks" / "profile_step.py"
    spec = importlib.util.spec_from_file_location("profile_step", path)
    profile_step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(profile_step)
    monkeypatch.setattr(profile_step, "keep_freed_memory", lambda: False)
    profile_step.main(["--quick", "--steps", "3", "--top", "5"])
    out = capsys.readouterr().out
    assert re.search(r"## B=32, 64→2×32→10: wall \d+ µs per step, host \d+ µs per step \(\d+% of wall\)", out), out
    assert "function calls" in out and "Ordered by: internal time" in out and "/xdl/" in out.replace("\\", "/")
    with pytest.raises(SystemExit):
        profile_step.main(["--steps", "0"])
    assert "--steps and --top must be ≥ 1, got 0 and 30" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--l2", "-1"], "--l2 must be a finite number ≥ 0, got -1.0"),
    (["--l1", "nan"], "--l1 must be a finite number ≥ 0, got nan"),
    (["--l2", "inf"], "--l2 must be a finite number ≥ 0, got inf"),
    (["--l1", "1e39"], "--l1 must be at most 3.4e+38, float32's largest number"),
])
def test_the_step_profile_refuses_a_bad_penalty_by_its_flag_before_any_work(flags, message, monkeypatch, capsys):
    """profile_step.py --l2 -1 printed its header, built the step, then raised a traceback naming "l2: lambd"."""
    code, printed = refused_before_any_work("profile_step", "xdl_step", ["--quick", *flags], monkeypatch, capsys)
    assert code == 2 and f": error: {message}" in printed.err and printed.out == ""


def test_the_pytest_benchmark_suites_time_every_case_and_implementation_of_the_report():
    """README: `pytest benchmarks --benchmark-enable` runs the same cases as report.py. The l2 penalty and the
    bce/mse cases were the report's only, and ReLU then dropout as two ops was never timed by the suites."""
    import ast
    import inspect

    from xdl.bench import kernels

    suites = load_benchmark_script("test_fused_ops", pytest.MonkeyPatch())
    used = {node.id for test in ast.parse(inspect.getsource(suites)).body if isinstance(test, ast.FunctionDef)
            for node in ast.walk(test) if isinstance(node, ast.Name)}  # (their bodies and marks, not the imports)
    makers = [name for name, fn in vars(kernels).items() if name.endswith("_case") and inspect.isfunction(fn)]
    assert [name for name in makers if name not in used] == []
    impls = {value for test in vars(suites).values() for mark in getattr(test, "pytestmark", ())
             if mark.name == "parametrize" and mark.args[0] == "impl" for value in mark.args[1]}
    backend = xdl.backend.get_backend("numpy")
    cases = [kernels.optimizer_case(backend, rule, 1000) for rule in kernels.OPT_BYTES]
    cases += [kernels.batchnorm_case(backend, mode, 64, 32) for mode in ("train fwd", "train fwd+bwd", "inference")]
    cases += [make(backend, 64, 32) for make in (kernels.dropout_case, kernels.relu_case, kernels.relu_dropout_case)]
    cases += [kernels.activation_case(backend, name, 64, 32) for name in kernels.ACTIVATIONS]
    cases += [kernels.penalty_case(backend, 1000)] + [kernels.loss_case(backend, name, 1000) for name in kernels.LOSSES]
    for case in cases:
        timed = {suites._impl_name(case, impl) for impl in impls}
        assert [impl for impl in case.impls if impl not in timed] == [], case.name


def test_the_kernels_table_writes_a_cpus_slow_rates_with_their_digits_not_as_0_gb_s():
    """On a CPU a naive case moves 0.3 GB/s against a copy's 11: the table read "0" GB/s beside "3%" of copy."""
    from xdl.bench.kernels import Row, format_table

    rows = [Row("adam 10M", "naive xp", 1.0, 330_000_000, 11.0), Row("adam 10M", "xdl", 0.0625, 280_000_000, 11.0),
            Row("adam 100M", "xdl", 0.001, 2_800_000_000, 11.0)]
    cells = [line.split(" | ")[3] for line in format_table(rows).splitlines()[2:]]
    assert cells == ["0.33", "4.48", "2800"]


def test_batch_norm_cases_time_the_public_api_beside_the_kernels():
    """Each batch-norm case runs the kernels directly and through `xdl.nn.BatchNorm` (``bn(x)``,
    ``bn(x).backward(dy)``); the report gives the public API's time over the kernels'."""
    from xdl.bench.kernels import LAYER_IMPL, api_overhead, batchnorm_case

    backend = xdl.backend.get_backend("numpy")
    rows = []
    for mode in ("train fwd", "train fwd+bwd", "inference"):
        case = batchnorm_case(backend, mode, 64, 32)
        assert list(case.impls)[:3] == ["xdl kernels", LAYER_IMPL, "naive xp"]
        rows += case.rows()
    line = api_overhead(rows)
    assert re.fullmatch(r"batch norm through the public API \(bn\(x\), bn\(x\)\.backward\(dy\)\) vs the kernels "
                        r"alone: train fwd 64x32 [\d.]+×, train fwd\+bwd 64x32 [\d.]+×, inference 64x32 [\d.]+×", line)
    assert api_overhead([]).endswith("no case")


def test_the_torch_reference_of_a_forward_backward_case_does_the_same_work_at_every_call():
    """A fwd+bwd case's PyTorch call hands ∂L/∂x back, as xdl's kernels do: with ``.backward()``
    every call after the first also added it into ``x.grad`` (one more pass over (n, c), 12
    B/element, timed as PyTorch's)."""
    pytest.importorskip("torch")
    from torch.utils._python_dispatch import TorchDispatchMode

    from xdl.bench.kernels import (activation_case, batchnorm_case, dropout_case, loss_case, relu_case,
                                   relu_dropout_case)

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.names = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.names.append(str(func))
            return func(*args, **(kwargs or {}))

    backend = xdl.backend.get_backend("numpy")
    for case in (relu_case(backend, 8, 4), dropout_case(backend, 8, 4), relu_dropout_case(backend, 8, 4),
                 batchnorm_case(backend, "train fwd+bwd", 8, 4),
                 *(activation_case(backend, name, 8, 4) for name in ("tanh", "sigmoid", "leaky_relu")),
                 *(loss_case(backend, name, 32) for name in ("bce", "mse"))):
        fn, _ = case.impls["torch"]
        calls = []
        for _ in range(3):
            with Ops() as ops:
                fn()
            calls.append(ops.names)
        assert calls[1] == calls[2] == calls[0] and not any("add_" in name for name in calls[2]), (case.name, calls)


def test_every_speed_script_runs_its_cases_at_their_smallest_on_each_backend(backend, capsys, monkeypatch):
    """What benchmarks/gpu_checks.sh runs on a lent GPU, each case at a small shape (timed once), so that a
    script's bug fails here and over the CuPy stand-in, not in the device's few minutes: the kernels' cases
    (the copy, each update rule, batch norm, dropout, ReLU, tanh, sigmoid, leaky ReLU, the L2 penalty, the losses), the
    train step eager and captured (tf32 too), the step profile, both batch-norm paths and one batched step against
    each model alone. Over the
    stand-in the step, the copy and batch norm's naive reference stopped on names it lacked (cupy.add,
    cupy.copyto, cupy.float32, ndarray.var), which CuPy has."""
    from xdl.bench import kernels, steps, timing

    def once(calls, min_time=0.2, repeat=7):  # each call timed once: the cases' work, not their figures
        return timing.time_calls(calls, min_time=1e-6, repeat=1)

    monkeypatch.setattr(kernels, "time_calls", once)
    monkeypatch.setattr(steps, "time_calls", once)
    copies = {}
    cases = [kernels.optimizer_case(backend, rule, 64) for rule in kernels.OPT_BYTES]
    cases += [kernels.optimizer_case(backend, "adam", shapes=[(4,), (4, 3)])]
    cases += [kernels.batchnorm_case(backend, mode, 16, 8) for mode in ("train fwd", "train fwd+bwd", "inference")]
    cases += [make(backend, 16, 8) for make in (kernels.dropout_case, kernels.relu_case, kernels.relu_dropout_case)]
    cases += [kernels.activation_case(backend, name, 16, 8) for name in kernels.ACTIVATIONS]
    cases += [kernels.penalty_case(backend, 300)]
    cases += [kernels.loss_case(backend, name, 300) for name in kernels.LOSSES]
    rows = kernels.against_copies(backend, [row for case in cases for row in case.rows()], copies)
    assert len(kernels.format_table(rows).splitlines()) == 2 + len(rows) and all(r.seconds > 0 for r in rows)
    assert all(r.copy_gbps > 0 for r in rows) and sorted(copies) == sorted({r.bytes for r in rows})
    step_rows = [row for case in steps.step_rows(backend, [(16, 8, 8, 1)]) for row in case]
    gpu = backend.device_type == "cuda"
    case = "B=16, 8→1×8→10"
    expected = [(case, "xdl eager")]
    if gpu:  # captured too, and the case again with TF32 products
        expected += [(case, "xdl captured"), (case + " tf32", "xdl eager"), (case + " tf32", "xdl captured")]
    assert [(r.case, r.impl) for r in step_rows if r.impl.startswith("xdl")] == expected
    load_benchmark_script("profile_step", monkeypatch).main(["--quick", "--steps", "2", "--top", "3"])
    assert "## B=32, 64→2×32→10: wall" in capsys.readouterr().out
    batched_vs_alone = load_benchmark_script("batched_vs_alone", monkeypatch)
    assert len(batched_vs_alone.main([])) == 7 + 2 * 8
    if gpu:
        bn_paths = load_benchmark_script("bn_paths", monkeypatch)
        monkeypatch.setattr(bn_paths, "SHAPES", [(16, 8), (300, 40)])
        monkeypatch.setattr(bn_paths, "time_calls", once)
        bn_paths.main([])
        assert re.search(r"^\| 300 × 40 \| [\d.]+ µs \| [\d.]+ µs \|", capsys.readouterr().out, re.M)


def test_the_batch_norm_paths_script_needs_a_gpu_and_says_so(capsys, monkeypatch):
    """benchmarks/bn_paths.py (not collected by the suite) compares CUDA kernels: on the CPU it
    says how to run it, before any work; --help says what it does (it took no arguments at all:
    --help, on a GPU, ran the whole benchmark)."""
    bn_paths = load_benchmark_script("bn_paths", monkeypatch)
    for argv, code in (([], 2), (["--bogus"], 2), (["--help"], 0)):
        with xdl.use("numpy"), pytest.raises(SystemExit) as stopped:
            bn_paths.main(argv)
        assert stopped.value.code == code
    printed = capsys.readouterr()
    assert "error: it compares CUDA kernels: run it with XDL_BACKEND=cupy on a GPU" in printed.err
    assert "unrecognized arguments: --bogus" in printed.err and "Which batch-norm training forward" in printed.out


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_on_the_cpu_one_batched_step_is_bitwise_each_models_step_alone(dtype, monkeypatch, capsys):
    """benchmarks/batched_vs_alone.py: every layer's output, gradient and updated parameter of K
    models batched equals the model's alone exactly on NumPy (the GPU run shows where cuBLAS and
    the kernels part from it); a model given other weights is seen to differ."""
    script = load_benchmark_script("batched_vs_alone", monkeypatch)
    with xdl.use("numpy"):
        rows = script.main(["--dtype", dtype])
    assert len(rows) == 7 + 2 * 8 and all(values == [0.0, 0.0, 0.0] for _, values in rows)
    assert "| output of layer 0 (Dense) | 0 | 0 | 0 |" in capsys.readouterr().out
    build, built = TrainConfig.build_model, []

    def another_first_weight(config, *args):  # model 1 alone (built first) starts from other weights
        model = build(config, *args)
        built.append(config.seed)
        if built.count(script.CONFIGS[1]["seed"]) == 1 and config.seed == script.CONFIGS[1]["seed"]:
            model.layers[0].weight.data[10] += 1e-3
        return model

    monkeypatch.setattr(TrainConfig, "build_model", another_first_weight)
    with xdl.use("numpy"):
        rows = script.first_step(dtype=np.dtype(dtype))
    assert all(values[0] == values[2] == 0 for _, values in rows)
    # (Adam's first step is lr·sign(g) to rounding: the updated values may agree again)
    assert all(values[1] > 0 for what, values in rows if not what.endswith("after the update"))


def interrupt_the_fourth_run(monkeypatch) -> list:
    """Ctrl-C at the fourth `protocol.run` from now; the list of calls (set it to count from elsewhere)."""
    from xdl.bench import protocol

    run, calls = protocol.run, []

    def interrupted_at_the_fourth(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return run(*args, **kwargs)

    monkeypatch.setattr(protocol, "run", interrupted_at_the_fourth)
    return calls


def test_ctrl_c_during_the_benchmark_writes_the_pairs_it_finished(tmp_path, capsys, monkeypatch):
    """Interrupted in its second optimizer, `xdl bench optimizers` writes the first one's results
    (marked interrupted) and exits 130; interrupted before any pair finished, it writes nothing."""
    calls = interrupt_the_fourth_run(monkeypatch)  # sgd: 2 trials + 1 seed; then adam's first trial
    command = ["bench", "optimizers", "--problem", "quadratic", "--optimizer", "sgd", "adam", "--seeds", "1",
               "--trials", "2"]
    assert cli.main([*command, "--out", str(tmp_path / "b")]) == 130
    assert "the 1 (problem, optimizer) pair that finished is written" in capsys.readouterr().err
    written = json.loads((tmp_path / "b" / "results.json").read_text())
    assert written["interrupted"] is True and list(written["problems"]["quadratic"]) == ["sgd"]
    assert "**Interrupted**: the benchmark was stopped after 1 of 2 (problem, optimizer) pairs" in \
        (tmp_path / "b" / "results.md").read_text()  # the Markdown says it too, not only the JSON
    assert cli.main([*command, "--out", str(tmp_path / "b")]) == 1  # its pair would be lost: no resume
    assert "--out '" in (err := capsys.readouterr().err) and "holds an interrupted benchmark (1 pair measured" in err
    assert list(json.loads((tmp_path / "b" / "results.json").read_text())["problems"]["quadratic"]) == ["sgd"]
    calls[:] = [1, 1, 1]  # the next call is the fourth: before any pair finished
    assert cli.main([*command, "--out", str(tmp_path / "c")]) == 130
    assert "what it was doing is not saved" in capsys.readouterr().err and not (tmp_path / "c" / "results.json").exists()
    assert cli.main([*command, "--lr", "0.1", "--out", str(tmp_path / "d")]) == 1  # --trials with --lr: refused
    assert "--trials is the budget of the learning-rate search, which --lr skips" in capsys.readouterr().err
    assert cli.main(["bench", "optimizers", "--quick", "--lr", "0.1", "--batched", "--out", str(tmp_path / "e")]) == 1
    assert "--batched trains a learning-rate search's trials at once, which --lr skips" in capsys.readouterr().err
    check_options = []  # --no-batched agrees with --lr (it was refused as --batched): past the flags' checks
    monkeypatch.setattr(xdl.bench, "check_options", lambda *args: check_options.append(args) or 1 / 0)
    with pytest.raises(ZeroDivisionError):
        cli.main(["bench", "optimizers", "--quick", "--lr", "0.1", "--no-batched", "--out", str(tmp_path / "f")])
    assert check_options


def test_ctrl_c_on_a_second_benchmark_keeps_the_finished_one_in_its_out(tmp_path, capsys, monkeypatch):
    """Run twice into one --out (the default's), the second interrupted: its finished pairs were written
    over the finished benchmark there, which was lost, and the directory marked interrupted refused
    every later run. A finished benchmark is replaced by a finished one only; the partial one is printed."""
    out = tmp_path / "b"
    command = ["bench", "optimizers", "--problem", "quadratic", "--seeds", "1", "--trials", "2", "--out", str(out)]
    assert cli.main([*command, "--optimizer", "adam"]) == 0
    finished = {p.name: p.read_bytes() for p in out.iterdir()}
    interrupt_the_fourth_run(monkeypatch)  # sgd: 2 trials + 1 seed; then momentum's first trial
    capsys.readouterr()
    assert cli.main([*command, "--optimizer", "sgd", "momentum"]) == 130
    printed = capsys.readouterr()
    assert f"the finished benchmark in --out {str(out)!r} is kept, and the 1 (problem, optimizer) pair that " \
           "finished here is printed above, not written" in printed.err and "| sgd" in printed.out
    assert {p.name: p.read_bytes() for p in out.iterdir()} == finished
    assert cli.main([*command, "--optimizer", "adam"]) == 0  # not refused as an interrupted benchmark's


# -- what the results say, and how they count ---------------------------------------------------
def test_results_say_what_produced_them_in_the_json_and_the_markdown(tmp_path):
    """Backend, device, CPU, versions and date; the lr range, each problem's budget and target; the
    same record (one function) atop results.md."""
    from xdl.bench.environment import headline

    results = benchmark(["quadratic", "circles"], ["adam"], seeds=1, trials=2, quick=True)
    write(results, tmp_path)
    written = json.loads((tmp_path / "results.json").read_text())
    env = written["environment"]
    assert env["backend"] == "numpy" and env["device"] == "cpu" and env["cpu"] and env["cpu_count"] >= 1
    assert env["xdl"] == xdl.__version__ and env["numpy"] == np.__version__ and "cupy" in env and "torch" in env
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", env["date"])
    assert written["lr_range"] == [1e-4, 1.0] and written["planned"] == {"problems": ["quadratic", "circles"],
                                                                         "optimizers": ["adam"]}
    assert written["budgets"]["quadratic"] == {"kind": "function", "budget": 300, "unit": "steps", "batch_size": None,
                                               "target": 1e-4, "target_of": "f(x) ≤ target"}
    assert written["budgets"]["circles"]["unit"] == "epochs" and written["budgets"]["circles"]["budget"] == 100
    md = (tmp_path / "results.md").read_text()
    assert md.startswith("# xdl bench optimizers\n") and headline(env) in md
    assert "quadratic 300 steps, f(x) ≤ 0.0001; circles 100 epochs of batch 64, dev accuracy ≥ 0.95" in md
    assert "log-uniform random search over [0.0001, 1], the same 2 rates for every optimizer" in md
    assert md.index("- seconds to target:") < md.index("| problem |")


def test_the_kernels_json_says_what_produced_it_and_checks_its_path_first(tmp_path, monkeypatch, capsys):
    """`xdl bench kernels --json`: backend, --quick, the environment (CPU model) in the file; a path
    it cannot write is refused naming --json before any case runs."""
    from xdl.bench import kernels

    def no_work(*args, **kwargs):
        raise AssertionError("work started")

    monkeypatch.setattr(kernels, "copy_bandwidth", no_work)
    missing, directory = tmp_path / "no_such_dir" / "k.json", tmp_path
    assert cli.main(["bench", "kernels", "--quick", "--backend", "numpy", "--json", str(missing)]) == 1
    assert f"--json '{missing}': directory '{missing.parent}' does not exist" in capsys.readouterr().err
    assert cli.main(["bench", "kernels", "--quick", "--backend", "numpy", "--json", str(directory)]) == 1
    assert f"--json '{directory}' is a directory; name a file" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="json_path"):  # in Python, the argument is named
        kernels.report(True, missing)

    # the cases cut to one tiny one: what the JSON holds, not what it measures
    tiny = kernels.Row("device copy", "xp.copyto", 1e-3, 10**6)
    monkeypatch.setattr(kernels, "copy_bandwidth", lambda backend, nbytes: tiny)
    monkeypatch.setattr(kernels, "optimizer_case", lambda backend, rule, n=None, shapes=None: kernels.Case("c", 1))
    for name in ("batchnorm_case", "dropout_case", "relu_case", "relu_dropout_case", "activation_case", "loss_case",
                 "penalty_case"):
        monkeypatch.setattr(kernels, name, lambda backend, *args: kernels.Case("c", 1))
    monkeypatch.setattr(kernels, "step_rows", lambda backend, shapes: iter([]))
    monkeypatch.setattr(kernels, "main_job_seconds_per_epoch", lambda name: 0.01)
    path = tmp_path / "k.json"
    assert cli.main(["bench", "kernels", "--quick", "--backend", "numpy", "--json", str(path)]) == 0
    written = json.loads(path.read_text())
    assert written["backend"] == "numpy" and written["quick"] is True and written["device"] == "cpu"
    assert written["environment"]["cpu"] and written["environment"]["backend"] == "numpy"
    assert written["complete"] is True  # (False in the files written after each case before the last)
    assert re.search(r"^# xdl benchmark report \(--quick\) — .* backend numpy \(float32 products\) on cpu; "
                     r"CPU .+ × \d+", capsys.readouterr().out, re.M)


def test_the_kernels_table_names_xdls_update_by_what_it_is_on_the_backend():
    """One launch over the flat buffer on a GPU; on NumPy a chunked loop, and said so."""
    from types import SimpleNamespace

    from xdl.bench.kernels import fused_update_label, optimizer_case

    case = optimizer_case(xdl.backend.get_backend("numpy"), "sgd", 1000, with_naive=False)
    assert list(case.impls)[0] == "xdl (NumPy, chunked loop)"
    assert fused_update_label(SimpleNamespace(device_type="cuda")) == "xdl fused (1 launch)"


def test_steps_are_a_first_class_measure_and_the_seconds_leave_evaluation_out(tmp_path):
    """A steps profile beside the seconds one; a model's seconds are its steps' (the evaluation
    passes are timed apart); the output says what the seconds include."""
    results = benchmark(["quadratic", "circles"], ["sgd", "adam"], seeds=2, trials=1, quick=True, lr=0.05)
    run = results["problems"]["circles"]["adam"]["runs"][0]
    assert run["evaluation_seconds"] > 0 and run["steps_to_target"] % 10 == 0  # 10 steps an epoch, counted at its end
    problems, taus, by_steps = profile(results)
    assert problems == ["quadratic", "circles"] and set(by_steps) == {"sgd", "adam"}
    assert set(profile(results, "seconds")[2]) == {"sgd", "adam"}
    with pytest.raises(ValueError, match="by must be one of steps, seconds, got 'time'"):
        profile(results, "time")
    md = markdown(results)
    assert "| steps to target | s to target |" in md
    assert "a model's mini-batch steps only, the evaluation of train and dev after each epoch left out" in md
    assert "one sample per run" in md


def test_a_function_runs_seeds_start_from_drawn_points_and_are_recorded():
    """Seeds are replicates: each function run starts near the standard start, drawn from its seed;
    every record has its seed."""
    from xdl.bench.problems import START_NOISE, function_start

    results = benchmark(["quadratic"], ["adam"], seeds=3, trials=1, quick=True, lr=0.01)
    runs = results["problems"]["quadratic"]["adam"]["runs"]
    assert [r["seed"] for r in runs] == [1, 2, 3] and len({r["final_cost"] for r in runs}) == 3
    assert len({r["curve"][0] for r in runs}) == 3  # f(x₀): three starts
    start = function_start("quadratic", 2)
    assert 0 < np.abs(start - 1).max() < 6 * START_NOISE
    assert "drawn from the run's seed" in markdown(results)


def test_a_benchmark_called_from_python_leaves_the_callers_generators_alone():
    """Each run draws as after xdl.seed(its seed), in its thread only (`thread_seed`, as fit_many
    builds its models): after xdl.seed(123) and a benchmark, the caller's stream goes on where it
    was — a run's xdl.seed(seed) had reseeded it (and every device generator) for the caller."""
    xdl.seed(123)
    expected = xdl.backend.host_rng().random()
    xdl.seed(123)
    benchmark(["quadratic"], ["sgd"], seeds=1, trials=1, quick=True, lr=0.1)
    assert xdl.backend.host_rng().random() == expected


def test_the_timed_seeds_follow_an_untimed_run_where_the_search_ran_none_alone(monkeypatch):
    """With --lr (or a batched search) the first seed paid the process's first calls: 30–70% slower
    here, which ranked two optimizers by their order. Where the search ran them alone, no extra run."""
    from xdl.bench import protocol

    seeds_run, run = [], protocol.run
    monkeypatch.setattr(protocol, "run", lambda *args: seeds_run.append(args[3]) or run(*args))
    benchmark(["quadratic"], ["adam", "sgd"], seeds=2, trials=2, quick=True, lr=0.01)
    assert seeds_run == [0, 1, 2] * 2  # the untimed one at the search's seed, then the seeds' 1, 2
    seeds_run.clear()
    benchmark(["quadratic"], ["adam"], seeds=2, trials=2, quick=True)
    assert seeds_run == [0, 0, 1, 2]  # the two search trials, then the seeds


def test_a_run_far_above_its_start_is_diverged_and_counted(monkeypatch):
    """f at 1e4 × f(x₀) is divergence, not a "completed" run ending at 1e243; a model's train cost
    is held to 1e4 × ln C, in one run and in a batched search alike."""
    results = benchmark(["quadratic"], ["sgd"], seeds=2, trials=1, quick=True, lr=0.05)  # lr·λ_max = 5: unstable
    runs = results["problems"]["quadratic"]["sgd"]["runs"]
    assert all(r["status"] == "diverged" and re.search(r"f became \S+ at step \d+, above 1e4 × f\(x₀\) = ", r["error"])
               and max(r["curve"][:-1]) <= 1e4 * r["curve"][0] < r["curve"][-1] for r in runs)
    row = summary(results)[0]
    assert row["diverged"] == 2 and row["mean"] is None and "| 2 / 0 |" in markdown(results)

    monkeypatch.setattr(xdl.train.divergence, "DIVERGENCE_FACTOR", 1e-3)  # any model's cost is "far above" ln C now,
    rule = xdl.train.divergence.diverged_cost                              # and above its start

    def above_the_limit(value, limit, start, where):
        return rule(value, limit, None, where)

    monkeypatch.setattr(xdl.train.trainer, "diverged_cost", above_the_limit)
    monkeypatch.setattr(xdl.train.many, "diverged_cost", above_the_limit)
    for batched in (False, True):  # (the Trainer's rule, and fit_many's per model: the bench's verdict)
        with warnings.catch_warnings(record=True) as said:  # (its start is far above 1e-3 × ln C too: said so)
            warnings.simplefilter("always")
            entry = benchmark(["circles"], ["adam"], seeds=1, trials=2, quick=True, batched=batched)
        assert all(str(w.message).startswith("the run started at a cost of ") for w in said), said
        entry = entry["problems"]["circles"]["adam"]
        assert [s["status"] for s in entry["search"]] == ["diverged", "diverged"] and entry["runs"] == []
        assert re.search(r"the train cost became \S+ at the end of epoch 1, above 1e-03 × ln C \(where a classifier starts\) = 0.000693",
                         entry["search"][0]["error"])


def test_the_spread_is_the_sample_sd_over_the_seeds_and_says_so():
    from xdl.bench.report import summary

    def entry(values):
        return {"lr": 0.1, "search": [], "runs": [{"status": "completed", "final_cost": v, "steps_to_target": None,
                                                   "seconds_to_target": None} for v in values]}

    results = {"seeds": 3, "problems": {"quadratic": {"a": entry([1.0, 2.0, 3.0]), "b": entry([2.0])}}}
    rows = summary(results)
    assert rows[0]["sd"] == pytest.approx(1.0) and rows[0]["n"] == 3  # ddof 0 would be 0.816
    assert rows[1]["sd"] is None and rows[1]["n"] == 1
    md = markdown(results)
    assert "| final (mean ± sd over 3 seeds) |" in md
    assert "| final cost 2 ± 1 |" in md and "| final cost 2 (n = 1) |" in md


def test_adamw_decays_weights_only_and_the_results_say_what_each_optimizer_decayed():
    """The bench's AdamW: 0.01 on weights, none on biases and batch norm's γ and β, none on a
    function's x (no weights: the minimum stays where the target is measured)."""
    from xdl.bench import OPTIMIZERS
    from xdl.bench.protocol import optimizer_record

    model = xdl.nn.mlp(4, [8], 3, batch_norm=True)
    groups = optimizer_record(OPTIMIZERS["adamw"](model, 0.01))["groups"]
    assert [(g["parameters"], g["weight_decay"]) for g in groups] == [("weights", 0.01), ("others", 0.0)]
    assert groups[1]["tensors"] == len(model.parameters()) - groups[0]["tensors"] > 0
    x = xdl.tensor(np.ones(3), requires_grad=True)
    assert [(g["parameters"], g["weight_decay"]) for g in optimizer_record(OPTIMIZERS["adamw"]([x], 0.01))["groups"]] \
        == [("others", 0.0)]
    results = benchmark(["quadratic", "circles"], ["adam", "adamw"], seeds=1, trials=1, quick=True, lr=0.01)
    built = results["problems"]["circles"]["adamw"]["optimizer"]
    assert built["class"] == "AdamW" and built["decoupled_decay"] is True
    assert results["problems"]["quadratic"]["adamw"]["optimizer"]["groups"][0]["weight_decay"] == 0.0
    assert "- weight decay: adamw 0.01 on weights (decoupled); adam: none — biases, batch norm's γ and β and a " \
           "function's x (not weights) are not decayed" in markdown(results)


def test_an_optimizer_or_problem_named_twice_is_refused_and_a_given_lr_is_said_to_skip_the_search(tmp_path, capsys):
    out = tmp_path / "b"
    for flags, message in ((["--optimizer", "sgd", "sgd"], "--optimizer 'sgd' is given twice; name each once"),
                           (["--problem", "quadratic", "quadratic"], "--problem 'quadratic' is given twice")):
        command = ["bench", "optimizers", "--problem", "quadratic", "--optimizer", "sgd", *flags]
        assert cli.main([*command, "--out", str(out)]) == 1
        assert message in capsys.readouterr().err and not out.exists()
    assert cli.main(["bench", "optimizers", "--quick", "--problem", "quadratic", "--optimizer", "sgd", "--seeds", "1",
                     "--lr", "0.01", "--backend", "numpy", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 optimizer × 1 problem, no lr search (every optimizer at --lr 0.01), 1 seed" in printed
    assert "lr trials" not in printed and "- learning rate: no search: every optimizer at lr 0.01" in printed
    assert json.loads((out / "results.json").read_text())["trials"] is None


@pytest.mark.parametrize("flags, message", [
    (["--models", "1", "0"], "--models must be a positive integer, got 0"),
    (["--sequential", "0"], "--sequential must be a positive integer, got 0"),
    (["--epochs", "0"], "--epochs must be a positive integer, got 0"),
    (["--json", "/nonexistent_d/b.json"], "--json '/nonexistent_d/b.json': directory '/nonexistent_d' does not exist"),
    (["--json", "."], "--json '.' is a directory"),
])
def test_the_batched_benchmark_refuses_bad_arguments_before_any_work(flags, message, monkeypatch, capsys):
    batched = load_benchmark_script("batched", monkeypatch)

    def no_work(*args, **kwargs):
        raise AssertionError("work started")

    monkeypatch.setattr(batched, "digits_training_set", no_work)
    monkeypatch.setattr(batched, "xdl_batched", no_work)
    with pytest.raises(SystemExit) as stopped:
        batched.main(["--no-torch", *flags])
    assert stopped.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("name, work", [("batched", "digits_training_set"), ("batched_vs_alone", "first_step")])
def test_the_digits_scripts_name_a_missing_scikit_learn_in_one_line_before_any_work(name, work, monkeypatch, capsys):
    """benchmarks/batched.py and batched_vs_alone.py train on the digits: without scikit-learn they started, then
    stopped in a traceback from inside the data set's loader."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda module, *a: None if module == "sklearn" else
                        real(module, *a))
    script = load_benchmark_script(name, monkeypatch)
    monkeypatch.setattr(script, work, lambda *args, **kwargs: pytest.fail("work started"))
    monkeypatch.setattr(script, "keep_freed_memory", lambda: False, raising=False)  # (batched.py's: this process's)
    with xdl.use("numpy"), pytest.raises(SystemExit) as stopped:
        script.main(["--no-torch"] if name == "batched" else [])
    printed = capsys.readouterr()
    assert stopped.value.code == 2 and printed.out == ""
    assert ": error: the digits dataset needs scikit-learn: pip install 'xdl[data]'" in printed.err


def test_a_problem_whose_data_needs_a_missing_package_is_named_before_any_work(monkeypatch, tmp_path, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    assert cli.main(["bench", "optimizers", "--quick", "--out", str(tmp_path / "b")]) == 1  # its problems: digits too
    err = capsys.readouterr().err  # (named as a problem: no --problem was given)
    assert "error: problem digits: the digits dataset needs scikit-learn: pip install 'xdl[data]' (or run the " \
           "others: --problem quadratic rosenbrock moons)" in err
    assert not (tmp_path / "b").exists()


def test_a_benchmark_whose_files_cannot_be_written_still_prints_its_results(tmp_path, capsys, monkeypatch):
    """A full disk at results.json lost the whole benchmark (no resume), its table unprinted; and a
    write failing after results.json left the old figures beside a results.json that disowned them."""
    import xdl.files

    replace = xdl.files.os.replace

    def full_at(name):
        def failing(source, target, *args, **kwargs):
            if str(target).endswith(name):
                raise OSError(28, "No space left on device", str(target))
            return replace(source, target, *args, **kwargs)
        return failing

    command = ["bench", "optimizers", "--problem", "quadratic", "--optimizer", "sgd", "--seeds", "1", "--trials", "1",
               "--out", str(tmp_path / "b")]
    monkeypatch.setattr(xdl.files.os, "replace", full_at("results.json"))
    assert cli.main(command) == 1
    printed = capsys.readouterr()
    assert "| quadratic | sgd |" in printed.out and "No space left on device" in printed.err
    monkeypatch.setattr(xdl.files.os, "replace", replace)
    results = benchmark(["quadratic"], ["sgd"], seeds=1, trials=1, quick=True)
    write(results, tmp_path / "c")
    monkeypatch.setattr(xdl.files.os, "replace", full_at("results.md"))
    with pytest.raises(OSError):
        write(dict(results, quick=False), tmp_path / "c")
    assert json.loads((tmp_path / "c" / "results.json").read_text())["quick"] is True  # the earlier one, whole


def test_bench_optimizers_by_default_runs_every_rule_of_the_table(tmp_path, monkeypatch, capsys):
    """--help says "default: all" and ARCHITECTURE.md's optimizer recipe says an `OPTIMIZERS` entry
    puts a rule in `xdl bench optimizers`: the default was a list of its own, which a rule added to
    the table was not in."""
    import xdl.bench
    from xdl.bench import protocol

    asked = []

    def stop(problems, optimizers, *args, **kwargs):  # the options are checked before any work
        asked.append(list(optimizers))
        raise ValueError("stopped here")

    monkeypatch.setitem(protocol.OPTIMIZERS, "adagrad_of_ones_own", protocol.OPTIMIZERS["sgd"])
    monkeypatch.setattr(xdl.bench, "check_options", stop)
    cli.main(["bench", "optimizers", "--out", str(tmp_path / "b")])
    assert asked == [list(protocol.OPTIMIZERS)] and "adagrad_of_ones_own" in asked[0]


def test_numpy_numbers_as_options_are_written_and_a_result_json_cannot_hold_replaces_no_file(tmp_path):
    """np.int64 seeds passed the checks, then failed results.md's plural after every run; an np.float32
    lr failed results.json's dump after results.md and the figures had replaced the earlier ones (the
    directory's table then disagreed with its JSON)."""
    results = benchmark(["quadratic"], ["sgd"], seeds=np.int64(2), trials=np.int64(1), seed=np.int64(0), quick=True)
    assert type(results["seeds"]) is int and type(results["trials"]) is int and type(results["seed"]) is int
    write(results, tmp_path)
    assert json.loads((tmp_path / "results.json").read_text())["seeds"] == 2
    assert type(benchmark(["quadratic"], ["sgd"], seeds=1, quick=True, lr=np.float32(0.01))["lr"]) is float
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(TypeError, match="not JSON serializable"):
        write(dict(results, note=object()), tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_users_rule_named_as_an_xdl_rule_is_searched_as_itself_when_batched(tmp_path):
    """A batched search chose by the name: a user's class named "sgd" had its rates tried by xdl's SGD."""
    (tmp_path / "named.py").write_text(USER_OPTIMIZER + "\n\nclass sgd(SignSGD):\n    pass\n")
    rule = f"{tmp_path / 'named.py'}:sgd"
    alone, batched = (benchmark(["digits"], [rule], seeds=1, trials=2, quick=True, batched=b) for b in (False, True))
    scores = [[s["score"] for s in r["problems"]["digits"]["sgd"]["search"]] for r in (alone, batched)]
    assert scores[0] == scores[1]


def test_a_rule_file_edited_in_one_session_is_read_again(tmp_path):
    """A notebook's second benchmark of an edited file ran the first version (the load was cached by
    the spec): a file is loaded again once its modification time or size changed."""
    import os

    from xdl.bench import load_optimizer

    path = tmp_path / "mine.py"
    path.write_text(USER_OPTIMIZER)
    first = load_optimizer(f"{path}:SignSGD")
    assert load_optimizer(f"{path}:SignSGD") is first  # unchanged: run once, however often it is checked
    path.write_text(USER_OPTIMIZER.replace("xp.sign(flat.grad)", "flat.grad"))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    x = xdl.Parameter(np.array([3.0]))
    opt = load_optimizer(f"{path}:SignSGD")([x], 0.5)
    (x * x).sum().backward()
    opt.step()
    assert x.numpy()[0] == pytest.approx(3.0 - 0.5 * 6.0)  # the edited rule, p ← p − lr·g, not lr·sign(g)


def test_progress_that_is_not_a_function_is_refused_before_any_run():
    with pytest.raises(TypeError, match=r"^progress: expected a function taking each line of progress, or None, got 5$"):
        benchmark(["quadratic"], ["sgd"], seeds=1, trials=1, progress=5)


def test_a_class_given_as_an_optimizer_is_named():
    """benchmark(..., [MyRule]) said "argument of type 'type' is not iterable"."""
    Mine = type("Mine", (xdl.optim.SGD,), {"__module__": "__main__"})
    with pytest.raises(TypeError, match=r"--optimizer: a name .* or 'module:Name', got .*'__main__:Mine'"):
        benchmark(["quadratic"], [Mine], seeds=1, trials=1)


def test_a_rule_file_starting_with_a_tilde_says_the_path_meant():
    """--optimizer=~/rules.py:SignSGD: the shell leaves a '~' after '=', and the file was "no such
    file '~/rules.py'" alone, where --config and --space name the path meant (`xdl.files.home_meant`)."""
    import os

    from xdl.bench import load_optimizer

    home = os.path.expanduser("~/no-such-xdl-rules.py")
    with pytest.raises(ValueError, match=rf"no such file '~/no-such-xdl-rules.py'; '~' is not expanded here: did you "
                                         rf"mean {re.escape(repr(home))}\?"):
        load_optimizer("~/no-such-xdl-rules.py:SignSGD")


def test_equal_search_scores_from_other_accuracies_tie_and_go_by_the_stated_rule():
    """A mean of 0.93 and 0.96 is 0.9450000000000001, of 0.94 and 0.95 0.945: the float noise, not the
    fewer steps, chose between two rates that settled alike (circles, rmsprop: 0.9724999999999999 beside
    0.9725000000000001)."""
    from xdl.bench.protocol import _ranking, settled_accuracy

    head = [0.5] * 18
    trials = [{"score": settled_accuracy(head + [0.93, 0.96]), "steps_to_target": 300, "lr": 0.001},
              {"score": settled_accuracy(head + [0.94, 0.95]), "steps_to_target": 200, "lr": 0.01}]
    assert trials[0]["score"] == trials[1]["score"] == 0.945
    assert max(trials, key=_ranking)["lr"] == 0.01  # the fewer steps to the target


def test_a_write_that_fails_at_the_figures_leaves_no_table_beside_other_results(tmp_path, capsys, monkeypatch):
    """results.md was written before the figures: a plot failing (or Ctrl-C while they were drawn) left
    this benchmark's table beside the earlier results.json, and in a new --out a results.md alone, for
    which the next benchmark there was refused as results no benchmark wrote."""
    import xdl.bench.report

    def failing(results, directory):
        raise OSError(28, "No space left on device")

    command = ["bench", "optimizers", "--problem", "quadratic", "--optimizer", "sgd", "--seeds", "1", "--trials", "1",
               "--quick", "--out", str(tmp_path / "b")]
    with monkeypatch.context() as patched:
        patched.setattr(xdl.bench.report, "_figures", failing)
        assert cli.main(command) == 1
    assert not (tmp_path / "b" / "results.md").exists()
    assert cli.main(command) == 0  # not refused
    results = benchmark(["quadratic"], ["sgd"], seeds=1, trials=1, quick=True)
    write(results, tmp_path / "c")
    before = (tmp_path / "c" / "results.md").read_text()
    monkeypatch.setattr(xdl.bench.report, "_figures", failing)
    with pytest.raises(OSError):
        write(dict(results, quick=False), tmp_path / "c")
    assert (tmp_path / "c" / "results.md").read_text() == before


def test_seeds_of_one_accuracy_have_no_spread_and_a_median_below_1000_steps_is_written_in_full():
    """NumPy's sd of three seeds at 0.97 was 1.4e-16 (the table said "0.97 ± 1.4e-16"); a median of 999
    and 1000 steps was written "1e+03"."""
    run = {"status": "completed", "test_accuracy": 0.97, "train_accuracy": 1.0, "seconds_to_target": 1.0}
    runs = [dict(run, seed=1, steps_to_target=999), dict(run, seed=2, steps_to_target=1000)]
    results = {"seeds": 3, "problems": {"moons": {"adam": {"search": [], "lr": 0.01, "runs": [
        *runs, dict(run, seed=3, steps_to_target=999)]}}, "digits": {"adam": {"search": [], "lr": 0.01, "runs": runs}}}}
    rows = summary(results)
    assert rows[0]["sd"] == 0.0 and rows[1]["steps_to_target"] == 999.5
    table = markdown(results)
    assert "0.97 ± 0 |" in table and "| 1,000 |" in table and "e+03" not in table


def test_a_function_whose_runs_all_diverged_is_drawn_as_f_per_step(tmp_path, monkeypatch):
    """Its runs hold their curves but no final_cost, by which the kind was told: f(x) was drawn as
    "dev accuracy" per "epoch" from 1, on a linear scale."""
    pytest.importorskip("matplotlib")
    import xdl.plots

    results = benchmark(["quadratic"], ["sgd"], seeds=1, quick=True, lr=1.0)
    assert {r["status"] for r in results["problems"]["quadratic"]["sgd"]["runs"]} == {"diverged"}
    figures = []
    monkeypatch.setattr(xdl.plots, "save_figure", lambda fig, path: figures.append(fig) or Path(path))
    write(results, tmp_path)
    ax = figures[0].axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_yscale()) == ("step", "f(x)", "log")
    curve = results["problems"]["quadratic"]["sgd"]["runs"][0]["curve"]
    assert list(ax.lines[0].get_xdata()) == list(range(len(curve))) and list(ax.lines[0].get_ydata()) == curve


def test_a_run_under_a_callers_no_grad_is_the_run_outside_it(tmp_path):
    """A benchmark called in a notebook's ``with xdl.no_grad():``: a function's runs recorded no graph and
    each was "crashed" at its first backward; and a rule with no update of its own passed the check of its
    class (the probe's backward failed first, and was taken for the rule's failure) — once, for good: the
    check is cached per file."""
    from xdl.bench.protocol import builders, run
    from xdl.bench.problems import PROBLEMS
    outside = run(PROBLEMS["quadratic"], builders(["sgd"])["sgd"], 0.01, 0, True)
    with xdl.no_grad():
        inside = run(PROBLEMS["quadratic"], builders(["sgd"])["sgd"], 0.01, 0, True)
        assert not xdl.is_grad_enabled()
    assert inside["status"] == "completed" and without_times(inside) == without_times(outside)
    (tmp_path / "rules.py").write_text("import xdl\nclass Lazy(xdl.optim.Optimizer):\n    pass\n")
    with xdl.no_grad(), pytest.raises(ValueError, match="Lazy has no update of its own"):
        builders([f"{tmp_path / 'rules.py'}:Lazy"])


def test_a_benchmark_without_figures_says_why_matplotlib_did_not_import(tmp_path, capsys, monkeypatch):
    """A matplotlib installed but failing to import (built for NumPy 1) was told "plots need
    matplotlib: pip install 'xdl[plot]'", whatever the reason."""
    from xdl import plots

    def broken():
        raise ImportError("plots need matplotlib, which is installed but failed to import: numpy.core.multiarray "
                          "failed to import")

    monkeypatch.setattr(plots, "matplotlib", broken)
    assert cli.main(["bench", "optimizers", "--problem", "quadratic", "--optimizer", "sgd", "--lr", "0.01",
                     "--seeds", "1", "--out", str(tmp_path / "b")]) == 0
    assert "note: no curves or profile figures: plots need matplotlib, which is installed but failed to import: " \
           "numpy.core.multiarray failed to import\n" in capsys.readouterr().err


def test_a_stale_figure_that_cannot_be_removed_is_named_and_the_results_kept(tmp_path, monkeypatch):
    """The earlier benchmark's figures this one did not draw are removed after results.json is
    replaced: a removal that failed (a viewer holding the file) raised, and the benchmark's error
    said nothing of the figure left for good (the new results.json no longer names it). It is named
    now, with the results all written; one raised before results.json lost the results."""
    import xdl.bench.report
    from xdl.files import atomic_write

    def figures(results, directory):  # (the files a drawing writes, without matplotlib's seconds)
        names = [f"curves-{p}.png" for p in results["problems"]] + ["profile.png"]
        return [atomic_write(directory / name, lambda f: f.write(b"png")) for name in names]

    monkeypatch.setattr(xdl.bench.report, "_figures", figures)
    one = benchmark(["quadratic"], ["sgd"], seeds=1, quick=True, lr=1e-3)
    write(dict(one, problems={**one["problems"], "rosenbrock": one["problems"]["quadratic"]}), tmp_path)
    real_unlink = Path.unlink

    def failing(self, missing_ok=False):
        if self.name == "curves-rosenbrock.png":
            raise PermissionError(13, "Permission denied", str(self))
        return real_unlink(self, missing_ok=missing_ok)

    with monkeypatch.context() as patched:
        patched.setattr(Path, "unlink", failing)
        with pytest.warns(UserWarning, match=r"curves-rosenbrock.png' is the earlier benchmark's figure, of results "
                                             r"this directory no longer holds, and could not be removed \(Permission "
                                             r"denied\): remove it by hand"):
            write(one, tmp_path)
    assert json.loads((tmp_path / "results.json").read_text())["problems"].keys() == {"quadratic"}
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["curves-quadratic.png", "curves-rosenbrock.png",
                                                              "profile.png"]


def kernel_report_with_fake_timer(monkeypatch, tmp_path, capsys):
    """`kernels.report` (--quick) on numpy with every case a stand-in of a byte count drawn from a few sizes, each
    implementation "taking" 40 µs and a copy of n bytes n/1e9 + 10 µs (slower per byte the smaller it is, as a
    launch-bound copy): (the JSON it wrote, what it printed, the sizes the copies were asked for)."""
    from itertools import count

    from xdl.bench import kernels

    sizes, asked = [8_000, 20_000, 8_000, 16_000, 28_000], []
    made = count()

    def fake_copy(backend, nbytes):
        asked.append(nbytes)
        return kernels.Row("device copy", "xp.copyto", nbytes / 1e9 + 1e-5, 2 * nbytes)

    def case(*args, **kwargs):
        i = next(made)
        return kernels.Case(f"case {i}", sizes[i % len(sizes)], {"xdl kernels": (None, None), "naive xp": (None, None)})

    monkeypatch.setattr(kernels, "copy_bandwidth", fake_copy)
    monkeypatch.setattr(kernels, "time_calls", lambda calls: {name: 4e-5 for name in calls})
    for name in ("optimizer_case", "batchnorm_case", "dropout_case", "relu_case", "relu_dropout_case",
                 "activation_case", "loss_case", "penalty_case"):
        monkeypatch.setattr(kernels, name, case)
    monkeypatch.setattr(kernels, "step_rows", lambda backend, shapes: iter([]))
    monkeypatch.setattr(kernels, "main_job_seconds_per_epoch", lambda name: 0.01)
    path = tmp_path / "k.json"
    with xdl.use("numpy"):
        kernels.report(True, path)
    return json.loads(path.read_text()), capsys.readouterr().out, asked


def test_each_cases_percent_of_copy_is_against_a_copy_of_its_own_bytes_measured_once_per_size(monkeypatch, tmp_path,
                                                                                            capsys):
    """"% of copy" was against one 256 MB copy (main memory's speed), while a case that fits in the cache ran at
    the cache's: 229% of copy for the L2 penalty at 1M on this CPU. Each case is now against a copy moving its own
    byte count (half read, half written), one per distinct size; the big copy stays in the header and the JSON."""
    figures, out, asked = kernel_report_with_fake_timer(monkeypatch, tmp_path, capsys)
    assert asked == [1 << 28, 4_000, 10_000, 8_000, 14_000]  # the big copy, then each size's once, half of it copied
    big = 2 * (1 << 28) / ((1 << 28) / 1e9 + 1e-5) / 1e9
    assert figures["copy_gbps"] == pytest.approx(big) and f"measured copy bandwidth: {big:.0f} GB/s" in out
    table = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[4] for line in out.splitlines()
             if re.match(r"\| case \d+ \| naive xp", line)}
    assert "| % of same-size copy |" in out and len(figures["rows"]) == 2 * len(table) > 10
    for row in figures["rows"]:
        copy_gbps = row["bytes"] / (row["bytes"] / 2 / 1e9 + 1e-5) / 1e9  # the fake copy of half the case's bytes
        assert row["copy_gbps"] == pytest.approx(copy_gbps), row
        assert table[row["case"]] == f"{100 * row['gbps'] / copy_gbps:.0f}%"
    assert set(table.values()) == {"35%", "50%", "45%", "60%"}  # (b/2e9 + 1e-5) / 4e-5 of each size b


def test_a_same_size_copy_moves_the_cases_bytes_and_a_row_without_one_shows_no_share(monkeypatch):
    from xdl.bench import kernels

    monkeypatch.setattr(kernels, "time_call", lambda fn, synchronize: (fn(), synchronize(), 0.5)[2])
    backend = xdl.backend.get_backend("numpy")
    for nbytes in (8, 16 * 1024, 28 * 1000, 20 * (1 << 20), 3):
        (row,) = kernels.against_copies(backend, [kernels.Row("c", "xdl", 1.0, nbytes)], copies := {})
        moved = copies[nbytes].bytes
        assert moved == max(8, nbytes // 8 * 8) and row.copy_gbps == moved / 0.5 / 1e9, nbytes
        assert row.percent_of_copy == pytest.approx(100 * (nbytes / 1e9) / (moved / 0.5 / 1e9))
    assert kernels.Row("c", "xdl", 1.0, 8).percent_of_copy is None
    assert kernels.format_table([kernels.Row("c", "xdl", 1.0, 8)]).splitlines()[2].split(" | ")[4] == ""


@pytest.mark.parametrize("shape", [(128, 784, 256, 3), (512, 784, 1024, 4), (7, 5, 3, 1)])
def test_the_steps_matrix_product_flops_are_the_formulas_and_the_products_a_step_runs(shape, monkeypatch):
    """Each Dense's forward, ∂L/∂W and ∂L/∂x products, 2·B·in·out each, but the first Dense's ∂L/∂x (its input needs
    no gradient); the same as the products an eager step on numpy calls."""
    from xdl.bench import steps

    batch, features, width, layers = shape
    dense = [(features, width)] + [(width, width)] * (layers - 1) + [(width, 10)]
    formula = 6 * batch * sum(i * o for i, o in dense) - 2 * batch * features * width
    assert steps.step_flops(*shape) == formula
    backend = xdl.backend.get_backend("numpy")
    step = steps.xdl_step(backend, *shape, captured=False)
    step()
    products = []
    matmul = type(backend.ops).matmul

    def counted(ops, a, b, out=None, accumulate=False):
        products.append(2 * a.shape[0] * a.shape[1] * b.shape[1])
        return matmul(ops, a, b, out, accumulate)

    monkeypatch.setattr(type(backend.ops), "matmul", counted)
    step()
    assert sum(products) == formula and len(products) == 3 * len(dense) - 1


def test_the_step_table_gives_each_steps_share_of_a_plain_matmuls_rate(monkeypatch):
    """"% of matmul": the step's FLOPs per second over a product of its largest shape's, timed in the same rounds."""
    from xdl.bench import steps

    shape = (16, 8, 12, 2)
    timed = {}

    def fake_timer(calls):
        timed.update(calls)
        return {name: 2e-3 if name == steps.MATMUL else 4e-3 for name in calls}

    monkeypatch.setattr(steps, "time_calls", fake_timer)
    (rows,) = steps.step_rows(xdl.backend.get_backend("numpy"), [shape])
    matmul = 2 * 16 * 12 * 12  # the Dense 12 → 12 has the most weights
    assert list(timed) == ["xdl eager", *(["torch eager"] if "torch eager" in timed else []), steps.MATMUL]
    assert all(r.flops == steps.step_flops(*shape) and r.matmul_flops_per_s == matmul / 2e-3 for r in rows)
    share = 100 * steps.step_flops(*shape) / 4e-3 / (matmul / 2e-3)
    table = steps.format_step_table(rows)
    assert "| % of matmul |" in table and f"| 4.000 ms | {share:.0f}% |" in table
    assert "|  |" in steps.format_step_table([steps.StepRow("B=8", "xdl eager", 1e-3)]).splitlines()[2]


@pytest.mark.parametrize("backend_name", ["cupy", "jax"])
def test_the_benchmark_suites_without_their_backend_stop_once_in_one_line(backend_name):
    """XDL_BACKEND=cupy without a GPU: each case of benchmarks/test_fused_ops.py erred with its own BackendError
    traceback. The session now stops at its first case with the reason, a usage error (exit status 4)."""
    from conftest import cupy_available

    if backend_name == "cupy" and cupy_available():
        pytest.skip("a GPU is present: cupy works")
    root = Path(__file__).parents[1]
    env = {**os.environ, "XDL_BACKEND": backend_name, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-m", "pytest", "benchmarks/test_fused_ops.py", "-q", "-p",
                           "no:cacheprovider"], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    reason = "backend 'cupy' is unavailable: " if backend_name == "cupy" else "XDL_BACKEND='jax' is not a backend"
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert done.stdout.count(reason) == 1 and "Traceback" not in done.stdout and " error" not in done.stdout, \
        done.stdout


class FakeDevice:
    """A device on a fake clock for `xdl.bench.timing`: a call of an implementation queues its work (its host side
    takes no time) and ``synchronize`` waits for the queue, the clock advancing by the queued seconds — so a time
    read without a synchronization before it misses the work. ``costs[name]``: the seconds of that implementation's
    calls in turn (the last one repeated); ``log`` what ran, in order."""

    def __init__(self, costs):
        self.now, self.queued, self.costs, self.log = 0.0, 0.0, {n: list(c) for n, c in costs.items()}, []

    def call(self, name):
        def fn():
            costs = self.costs[name]
            self.queued += costs.pop(0) if len(costs) > 1 else costs[0]
            self.log.append(name)
        return fn

    def synchronize(self):
        self.now, self.queued = self.now + self.queued, 0.0

    def perf_counter(self):
        return self.now


def test_the_timer_takes_the_median_batch_of_back_to_back_calls_each_between_synchronizations(monkeypatch):
    """`time_calls` on a fake clock (no measured time): a warm-up call, one call timed to size the batches to
    min_time / repeat, then ``repeat`` rounds, each implementation's batch in turn, each batch's seconds per call
    taken between two synchronizations; the figure is the median batch."""
    from types import SimpleNamespace

    from xdl.bench import timing

    ms = 2.0 ** -10  # (binary fractions: the fake clock's sums are exact)
    rounds = [1, 5, 2, 9, 3, 8, 6]  # ms per call, batch by batch: median 5 (min 1, mean 4.86, first six's 4)
    # the first call (compilation) takes 1 s, the sizing call 1 ms: batches of min_time / repeat / 1 ms = 8 calls
    costs = {"a": [1.0, ms] + [c * ms for c in rounds for _ in range(8)],
             "b": [1.0, 2 * ms] + [2 * c * ms for c in rounds for _ in range(4)]}  # 2 ms: batches of 4
    device = FakeDevice(costs)
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=device.perf_counter))
    calls = {name: (device.call(name), device.synchronize) for name in costs}
    assert timing.time_calls(calls, min_time=7 * 8 * ms, repeat=7) == {"a": 5 * ms, "b": 10 * ms}
    assert device.log == ["a"] * 2 + ["b"] * 2 + (["a"] * 8 + ["b"] * 4) * 7  # sized, then the rounds in turn
    device = FakeDevice({"a": costs["a"]})
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=device.perf_counter))
    assert timing.time_call(device.call("a"), device.synchronize, min_time=7 * 8 * ms, repeat=7) == 5 * ms
    assert device.log == ["a"] * (2 + 8 * 7)


@pytest.mark.parametrize("single, size", [(0.5, 1), (1e-7, 1000), (2.0 ** -9, 4)])
def test_a_timers_batches_hold_1_to_1000_calls(single, size, monkeypatch):
    """A call slower than a batch's share of min_time is timed alone; one too fast to see is batched 1000 at most."""
    from types import SimpleNamespace

    from xdl.bench import timing

    device = FakeDevice({"a": [1.0, single]})
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=device.perf_counter))
    assert timing.time_call(device.call("a"), device.synchronize, min_time=7 * 2.0 ** -7, repeat=7) == \
        pytest.approx(single)
    assert len(device.log) == 2 + 7 * size


def test_faster_says_how_many_times_and_which_way():
    from xdl.bench.timing import faster

    assert [faster(2.0, 1.0), faster(1.0, 2.0), faster(3.0, 3.0), faster(1.0, 1.25, 1)] == \
        ["2.00× faster", "2.00× slower", "1.00× faster", "1.2× slower"]


def ops_recorder(monkeypatch, backend):
    """A list that receives each op the backend's ops make at the top level (not the ops they call in turn) as
    (name, its int, float and str arguments, a one-element integer array's value) while the test runs."""
    ops_type, made = type(backend.ops), [[]]

    def plain(value):
        return int(value[0]) if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind == "i" else value

    def recorded(name, op):
        def call(ops, *args, **kwargs):
            if made[-1] is not None:
                made[-1].append((name, *(plain(a) for a in args if isinstance(a, (int, float, str, np.ndarray))
                                         and not (isinstance(a, np.ndarray) and plain(a) is a))))
            outer, made[-1] = made[-1], None
            try:
                return op(ops, *args, **kwargs)
            finally:
                made[-1] = outer
        return call

    for name, op in vars(ops_type).items():
        if callable(op) and not name.startswith("_"):
            monkeypatch.setattr(ops_type, name, recorded(name, op))
    return made[0]


def kernel_cases(backend):
    """Every case of the kernels' report at a small shape (n = 1000, 64 × 32), as the report builds them."""
    from xdl.bench import kernels

    cases = [kernels.optimizer_case(backend, rule, 1000) for rule in kernels.OPT_BYTES]
    cases += [kernels.optimizer_case(backend, "adam", shapes=kernels.MLP_SHAPES)]
    cases += [kernels.batchnorm_case(backend, mode, 64, 32) for mode in ("train fwd", "train fwd+bwd", "inference")]
    cases += [make(backend, 64, 32) for make in (kernels.dropout_case, kernels.relu_case, kernels.relu_dropout_case)]
    cases += [kernels.activation_case(backend, name, 64, 32) for name in kernels.ACTIVATIONS]
    return cases + [kernels.penalty_case(backend, 1000)] + [kernels.loss_case(backend, name, 1000)
                                                             for name in kernels.LOSSES]


def test_each_kernel_case_counts_the_bytes_its_op_must_move():
    """The bytes of each case counted by hand (4-byte floats, each array read or written once): Adam p, g, m, v read
    and p, m, v written = 7 × 4 = 28 B per parameter, SGD p, g read and p written 12, momentum and RMSprop 20 (one
    state); the MLP's 44 tensors hold 784 + 784 (γ, β), 784·1024 + 1024, then 9 × (1024 + 1024 + 1024² + 1024),
    then 1024 + 1024 + 1024·10 + 10 parameters; batch norm forward x → y 8 B/element, forward + backward 20,
    dropout 16, ReLU, ReLU + dropout and each activation 20, the L2 penalty 16 per weight, the losses 20."""
    from xdl.bench import kernels

    mlp = 2 * 784 + 784 * 1024 + 1024 + 9 * (3 * 1024 + 1024 * 1024) + 2 * 1024 + 1024 * 10 + 10
    assert len(kernels.MLP_SHAPES) == 44 and sum(int(np.prod(s)) for s in kernels.MLP_SHAPES) == mlp
    elements = 64 * 32
    expected = {"adam 1K (1K params)": 28_000, "adamw 1K (1K params)": 28_000, "sgd 1K (1K params)": 12_000,
                "momentum 1K (1K params)": 20_000, "rmsprop 1K (1K params)": 20_000,
                f"adam MLP 44 tensors ({mlp / 1e6:g}M params)": 28 * mlp,
                "batchnorm train fwd 64x32": 8 * elements, "batchnorm train fwd+bwd 64x32": 20 * elements,
                "batchnorm inference 64x32": 8 * elements, "dropout fwd+bwd 64x32": 16 * elements,
                "relu fwd+bwd 64x32": 20 * elements, "relu+dropout fwd+bwd 64x32": 20 * elements,
                "tanh fwd+bwd 64x32": 20 * elements, "sigmoid fwd+bwd 64x32": 20 * elements,
                "leaky_relu fwd+bwd 64x32": 20 * elements, "l2 penalty fwd+bwd 1K": 16_000,
                "bce fwd+bwd 1K": 20_000, "mse fwd+bwd 1K": 20_000}
    assert {case.name: case.bytes for case in kernel_cases(xdl.backend.get_backend("numpy"))} == expected


def test_each_kernel_case_times_its_ops_forward_and_backward_and_synchronizes(monkeypatch):
    """What each implementation of a case runs, one call recorded op by op (the backend's ops a call makes itself,
    not those they call in turn): xdl's forward and backward kernels (a case that left its backward out timed half
    the bytes it counts), the layer through autodiff, the update rule named with its settings; each with the
    backend's synchronization."""
    backend = xdl.backend.get_backend("numpy")
    made = ops_recorder(monkeypatch, backend)
    layer_calls, forward = [], xdl.nn.BatchNorm.forward
    monkeypatch.setattr(xdl.nn.BatchNorm, "forward", lambda layer, x: layer_calls.append(1) or forward(layer, x))
    adam = ("adam_update", 1e-3, 0.9, 0.999, 1e-8, 10)
    kernels_of = {"adam": [adam], "adamw": [(*adam, 0.01, True)], "sgd": [("sgd_update", 1e-3, 0.0)],
                  "momentum": [("momentum_update", 1e-3, 0.9)], "rmsprop": [("rmsprop_update", 1e-3, 0.9, 1e-8)],
                  "batchnorm train fwd": [("batchnorm_train_forward", 0.9, 1e-5)],
                  "batchnorm train fwd+bwd": [("batchnorm_train_forward", 0.9, 1e-5), ("batchnorm_backward",)],
                  "batchnorm inference": [("batchnorm_inference", 1e-5)],
                  "dropout": [("dropout_forward", 0.3, 0, 1, 2), ("dropout_backward", 0.3, 0, 1, 2)],
                  "relu": [("relu_forward",), ("relu_backward",)],
                  "relu+dropout": [("relu_dropout_forward", 0.3, 0, 1, 2), ("relu_dropout_backward", 0.3, 0, 1, 2)],
                  "tanh": [("tanh_forward",), ("tanh_backward",)],
                  "sigmoid": [("sigmoid_forward",), ("sigmoid_backward",)],
                  "leaky_relu": [("leaky_relu_forward", 0.01), ("leaky_relu_backward", 0.01)],
                  "l2 penalty": [("penalty_forward", "l2", 0.01), ("penalty_backward", 0.01, "l2")],
                  "bce": [("binary_cross_entropy_forward",), ("binary_cross_entropy_backward",)],
                  "mse": [("squared_error_forward",), ("squared_error_backward",)]}
    for case in kernel_cases(backend):
        kind = next(k for k in sorted(kernels_of, key=len, reverse=True) if case.name.startswith(k + " "))
        assert "naive xp" in case.impls, case.name
        for impl, (fn, synchronize) in case.impls.items():
            made.clear()
            layer_calls.clear()
            fn()
            ran = list(made)
            assert synchronize == backend.synchronize and len(layer_calls) == (impl == "xdl layer: bn(x)"), \
                (case.name, impl)
            if impl == "naive xp":
                assert ran == [], case.name
            elif impl == "xdl relu, dropout":
                assert ran == [("relu_forward",), ("dropout_forward", 0.3, 0, 1, 2), ("dropout_backward", 0.3, 0, 1, 2),
                               ("relu_backward",)]
            elif impl == "xdl layer: bn(x)":  # the layer in the case's mode: the same kernels through autodiff
                assert [op[0] for op in ran] == [op[0] for op in kernels_of[kind]], case.name
            else:
                assert ran == kernels_of[kind], (case.name, impl, ran)


@pytest.mark.parametrize("rule", ["adam", "adamw", "sgd", "momentum", "rmsprop"])
def test_the_naive_update_a_case_times_is_the_same_rule_as_xdls(rule):
    """"vs naive xp" compares like with like: the naive expressions step the parameters as xdl's update does."""
    from xdl.bench import kernels

    backend = xdl.backend.get_backend("numpy")
    rng = np.random.default_rng(0)
    p, g = rng.standard_normal(50).astype(np.float32), rng.standard_normal(50).astype(np.float32)
    state = [np.abs(rng.standard_normal(50)).astype(np.float32) for _ in range(2)]
    copies = [p.copy(), [s.copy() for s in state]]
    kernels._flat_update(backend, rule, p, g, state)()
    kernels._naive_update(np, rule, copies[0], g, copies[1])()
    np.testing.assert_allclose(copies[0], p, rtol=1e-6, atol=1e-7)  # (AdamW's decay moves p by 1e-5 × p)


def test_the_naive_reference_of_an_activation_or_loss_case_computes_its_gradient():
    """The naive forward + backward of each activation and loss gives xdl's kernels' ∂L/∂x (and cost)."""
    from xdl.bench import kernels

    backend = xdl.backend.get_backend("numpy")
    for case in [kernels.relu_case(backend, 8, 4), *(kernels.activation_case(backend, name, 8, 4)
                                                    for name in kernels.ACTIVATIONS),
                 *(kernels.loss_case(backend, name, 30) for name in kernels.LOSSES)]:
        ours, naive = case.impls["xdl kernels"][0](), case.impls["naive xp"][0]()
        if case.name.startswith(("bce", "mse")):
            np.testing.assert_allclose(np.ravel(naive[0]), np.ravel(ours[0]), rtol=1e-5, err_msg=case.name)
            ours, naive = ours[1], naive[1]
        else:
            naive = naive[1]
        np.testing.assert_allclose(naive, ours, rtol=1e-5, atol=1e-7, err_msg=case.name)


def test_a_device_copy_copies_its_bytes_between_synchronizations(monkeypatch):
    """The copy that sets "% of same-size copy": one ``xp.copyto`` of float32 into another array per call, timed with
    the backend's synchronization, counted read + written."""
    from xdl.bench import kernels

    backend = xdl.backend.get_backend("numpy")
    timed, copied = [], []
    real_copyto = np.copyto
    monkeypatch.setattr(kernels, "time_call", lambda fn, synchronize: (timed.append(synchronize), fn(), 0.25)[2])
    monkeypatch.setattr(np, "copyto", lambda dst, src: (copied.append((dst.nbytes, src.nbytes, dst is src)),
                                                         real_copyto(dst, src)))
    row = kernels.copy_bandwidth(backend, 4000)
    assert timed == [backend.synchronize] and copied == [(4000, 4000, False)]
    assert (row.bytes, row.seconds, row.gbps) == (8000, 0.25, 8000 / 0.25 / 1e9)


@pytest.mark.parametrize("penalties", [{}, {"l2": 0.01, "l1": 0.02}])
def test_the_timed_train_step_runs_the_model_and_update_it_describes(penalties, monkeypatch):
    """One eager step of (Dense → BatchNorm → ReLU → Dropout 0.2) × 2 → Dense, softmax cross-entropy, Adam, as
    the step table says: each layer's batch norm and ReLU + dropout forward and backward, one Adam update, each
    penalty's node at λ/B; the next step draws its dropout masks from the next key (the step counter advances)."""
    from collections import Counter

    from xdl.bench import steps

    backend = xdl.backend.get_backend("numpy")
    step = steps.xdl_step(backend, 16, 8, 12, 2, captured=False, **penalties)
    step()
    made = ops_recorder(monkeypatch, backend)
    step()
    first, made[:] = list(made), []
    step()
    names = Counter(op[0] for op in first)
    expected = {"matmul": 8, "batchnorm_train_forward": 2, "relu_dropout_forward": 2, "batchnorm_backward": 2,
                "relu_dropout_backward": 2, "softmax_cross_entropy_forward": 1, "softmax_cross_entropy_backward": 1,
                "sum_rows": 1, "adam_update": 1}
    for kind, lambd in penalties.items():
        expected |= {"penalty_forward": len(penalties), "penalty_backward": len(penalties)}
        assert ("penalty_forward", kind, lambd / 16) in first and ("penalty_backward", lambd / 16, kind) in first
    assert names == expected
    dropout = [op for op in first if op[0] == "relu_dropout_forward"]
    assert all(op[1] == 0.2 for op in dropout)
    later = [op for op in made if op[0] == "relu_dropout_forward"]
    assert [op[-1] for op in later] == [op[-1] + 1 for op in dropout]  # the counter: the key's last part


def test_the_plain_product_a_step_is_held_to_multiplies_its_largest_dense(monkeypatch):
    """`matmul_call`: (B, in)·(in, out) of the Dense with the most weights (12 → 20 of 12 → 1×20 → 10, not the
    widest input, 20 → 10), 2·B·in·out FLOPs; the step table times it in the same rounds as the steps, each with
    the backend's synchronization."""
    from xdl.bench import steps

    backend = xdl.backend.get_backend("numpy")
    call, flops = steps.matmul_call(backend, 16, 12, 20, 1)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((16, 12)).astype(np.float32), rng.standard_normal((12, 20)).astype(np.float32)
    np.testing.assert_allclose(call(), a @ b, rtol=1e-5, atol=1e-5)
    assert flops == 2 * 16 * 12 * 20
    timed = {}
    monkeypatch.setattr(steps, "time_calls", lambda calls: timed.update(calls) or {name: 1e-3 for name in calls})
    list(steps.step_rows(backend, [(16, 12, 20, 1)]))
    assert [synchronize for _, synchronize in timed.values()] == [backend.synchronize] * len(timed)
    np.testing.assert_allclose(timed[steps.MATMUL][0](), a @ b, rtol=1e-5, atol=1e-5)


def test_the_step_tables_ratios_are_each_steps_time_over_torchs():
    """"× torch eager's time" and "× torch graph's time": the row's seconds over each reference's (below 1: faster
    than PyTorch), left empty in the reference's own row."""
    from xdl.bench.steps import StepRow, format_step_table

    rows = [StepRow("B=8", "xdl eager", 3e-3), StepRow("B=8", "xdl captured", 5e-4),
            StepRow("B=8", "torch eager", 2e-3), StepRow("B=8", "torch graph", 1e-3)]
    cells = [[cell.strip() for cell in line.split("|")[5:7]] for line in format_step_table(rows).splitlines()[2:]]
    assert cells == [["1.50×", "3.00×"], ["0.25×", "0.50×"], ["", "2.00×"], ["0.50×", ""]]


def test_the_kernels_table_gives_each_rows_time_rate_and_ratios_to_naive_and_torch():
    """From known times and bytes: the time in ms from 1 ms on (µs below), GB/s = bytes / seconds / 1e9 (whole
    from 100 on, 3 digits below), "vs naive xp" as faster or slower, "vs torch" as the row's time over torch's
    (whatever torch ran: "torch foreach" too); the public API's batch norm over its kernels'."""
    from xdl.bench.kernels import LAYER_IMPL, Row, api_overhead, format_table

    rows = [Row("adam 1M", "xdl", 5e-4, 75_000_000), Row("adam 1M", "naive xp", 2e-3, 25_000_000),
            Row("adam 1M", "torch foreach", 1e-3, 28_000_000)]
    cells = [[cell.strip() for cell in line.split("|")[2:8]] for line in format_table(rows).splitlines()[2:]]
    assert cells == [["xdl", "500.0 µs", "150", "", "4.00× faster", "0.50× torch's time"],
                     ["naive xp", "2.000 ms", "12.5", "", "", "2.00× torch's time"],
                     ["torch foreach", "1.000 ms", "28", "", "2.00× faster", ""]]
    rows = [Row("batchnorm train fwd 8x4", "xdl kernels", 2e-3, 1), Row("batchnorm train fwd 8x4", LAYER_IMPL, 3e-3, 1),
            Row("batchnorm train fwd 8x4", "naive xp", 1e-3, 1)]
    assert api_overhead(rows).endswith(": train fwd 8x4 1.50×")
    assert xdl.bench.kernels.loss_case(xdl.backend.get_backend("numpy"), "mse", 1_000_000).name == "mse fwd+bwd 1M"


@pytest.mark.parametrize("quick", [True, False])
def test_the_kernels_report_runs_each_case_it_lists_and_says_when_its_figures_are_complete(quick, monkeypatch,
                                                                                            capsys):
    """`kernels.report`'s cases (each a stand-in): quick leaves out the 100M-parameter update, the 65536×1024 cases
    and the B=4096 step, and nothing else; the JSON written after each case says complete only in the last."""
    import io

    from xdl.bench import kernels, steps

    made, shapes, completes = [], [], []

    def recorder(name):
        def case(backend, *args, **kwargs):
            made.append((name, *args, *(v for v in kwargs.values() if v is not None)))
            return kernels.Case(f"case {len(made)}", 8, {"xdl kernels": (None, None)})
        return case

    for name in ("optimizer_case", "batchnorm_case", "dropout_case", "relu_case", "relu_dropout_case",
                 "activation_case", "loss_case", "penalty_case"):
        monkeypatch.setattr(kernels, name, recorder(name))
    monkeypatch.setattr(kernels, "copy_bandwidth", lambda backend, nbytes: kernels.Row("copy", "c", 1.0, 2 * nbytes))
    monkeypatch.setattr(kernels, "time_calls", lambda calls: {name: 1e-3 for name in calls})
    monkeypatch.setattr(kernels, "step_rows", lambda backend, cases: shapes.append(cases) or iter([]))
    monkeypatch.setattr(kernels, "main_job_seconds_per_epoch", lambda name: 0.01)

    def written(path, write, binary):
        text = io.StringIO()
        write(text)
        completes.append(json.loads(text.getvalue())["complete"])

    monkeypatch.setattr(kernels, "atomic_write", written)
    with xdl.use("numpy"):
        kernels.report(quick, "k.json")
    sizes = [(1024, 1024), (8192, 4096)] + ([] if quick else [(65536, 1024)])
    expected = [("optimizer_case", "adam", n) for n in [1_000_000, 10_000_000] + ([] if quick else [100_000_000])]
    expected += [("optimizer_case", "adam", kernels.MLP_SHAPES)]
    expected += [("optimizer_case", rule, 10_000_000) for rule in ("adamw", "sgd", "momentum", "rmsprop")]
    expected += [("batchnorm_case", mode, *size) for mode in ("train fwd", "train fwd+bwd", "inference")
                 for size in sizes]
    expected += [(name, *size) for name in ("dropout_case", "relu_case", "relu_dropout_case") for size in sizes]
    expected += [("activation_case", name, *size) for name in ("tanh", "sigmoid", "leaky_relu") for size in sizes]
    expected += [("penalty_case", n) for n in (1_000_000, 10_000_000)]
    expected += [("loss_case", name, n) for name in ("bce", "mse") for n in (1 << 20, 1 << 24)]
    assert made == expected
    assert shapes == [steps.STEP_SHAPES[:2] if quick else steps.STEP_SHAPES]
    assert completes == [False] * len(expected) + [True]  # after each case, then the main job (on a CPU)
    assert "(PyTorch not installed here, or not on this device: the vs torch column is empty)" in \
        capsys.readouterr().out


def test_a_summary_row_counts_by_hand_what_the_seeds_and_search_gave():
    """One (problem, optimizer) of five seeds — accuracies 0.91, 0.8 and 0.4 after 100, 300 and 200 steps (1, 3
    and 8 s), one diverged, one crashed — beside a search of two crashed runs, one diverged, one completed: the mean
    and sample sd of the three completed, the median steps and seconds over all five (the two that did not complete
    as ∞), 3/5 reached, diverged and crashed counted over search and seeds; the table writes each in its column."""
    def completed(accuracy, steps, seconds):
        return {"status": "completed", "test_accuracy": accuracy, "train_accuracy": 1.0, "steps_to_target": steps,
                "seconds_to_target": seconds}

    runs = [completed(0.91, 100, 1.0), completed(0.8, 300, 3.0), completed(0.4, 200, 8.0),
            {"status": "diverged", "error": "cost nan"}, {"status": "crashed", "error": "E3"}]
    search = [{"status": "crashed", "error": "E1"}, {"status": "crashed", "error": "E2"},
              {"status": "diverged", "error": "cost inf"}, completed(0.5, None, None)]
    results = {"seeds": 5, "problems": {"moons": {"adam": {"search": search, "runs": runs, "lr": 0.0123}}}}
    (row,) = summary(results)
    assert row | {"mean": pytest.approx(0.70333333), "sd": pytest.approx(0.26839026)} == {
        "problem": "moons", "optimizer": "adam", "lr": 0.0123, "metric": "test_accuracy", "n": 3, "mean": 0.70333333,
        "sd": 0.26839026, "train_accuracy": 1.0, "reached": "3/5", "steps_to_target": 300.0, "seconds_to_target": 8.0,
        "diverged": 2, "crashed": 3}
    assert markdown(results).endswith("| moons | adam | 0.0123 | test accuracy 0.7033 ± 0.27 (n = 3) | 1 | 3/5 | 300 "
                                      "| 8 | 2 / 3 |")
    assert crashes(results) == ["adam on moons: 3 of 9 runs crashed; first: E1"]
    two = {"search": [], "lr": 0.1, "runs": [completed(0.9, 10, 1.0), completed(0.7, 10, 1.0)]}
    assert summary({"problems": {"moons": {"sgd": two}}})[0]["sd"] == pytest.approx(0.2 / 2 ** 0.5)  # |a − b| / √2


def test_a_performance_profile_is_the_share_of_problems_within_tau_of_the_best():
    """Steps by hand — p1: a 100, b 200; p2: a 300, b 100; p3: a on target at its start (0 steps), b never — give
    ratios to the best a (1, 3, 1), b (2, 1, ∞): at τ each optimizer's share of the problems whose ratio is
    ≤ τ, τ from 1 to 1.1 × the largest finite ratio. Seconds are profiled from their own column."""
    def entry(steps, seconds):
        return {"search": [], "lr": 0.1, "runs": [{"status": "completed", "final_cost": 0.0, "steps_to_target": steps,
                                                  "seconds_to_target": seconds}]}

    results = {"problems": {"p1": {"a": entry(100, 2.0), "b": entry(200, 1.0)},
                            "p2": {"a": entry(300, 1.0), "b": entry(100, 1.0)},
                            "p3": {"a": entry(0, 0.0), "b": entry(None, None)}}}
    problems, taus, fractions = profile(results)
    assert problems == ["p1", "p2", "p3"] and len(taus) == 200
    assert taus[0] == 1.0 and taus[-1] == pytest.approx(3.3)
    at = {tau: int(np.searchsorted(taus, tau)) for tau in (1.0, 2.0, 3.0)}
    assert [fractions["a"][at[tau]] for tau in at] == pytest.approx([2 / 3, 2 / 3, 1.0])
    assert [fractions["b"][at[tau]] for tau in at] == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    _, taus, fractions = profile(results, by="seconds")  # ratios a (2, 1, 1), b (1, 1, ∞)
    assert taus[-1] == pytest.approx(2.2) and fractions["a"][0] == pytest.approx(2 / 3)
    assert fractions["b"][0] == pytest.approx(2 / 3) and fractions["b"][-1] == pytest.approx(2 / 3)


def test_an_interrupted_benchmarks_header_counts_the_pairs_it_ran_of_those_planned():
    """The interruption's pairs done of those planned (2 of 2 × 3), and --quick beside the budgets."""
    results = {"interrupted": True,
               "planned": {"problems": ["moons", "digits"], "optimizers": ["sgd", "adam", "rmsprop"]},
               "quick": True, "budgets": {"moons": {"budget": 60, "unit": "epochs", "batch_size": 32, "target": 0.9,
                                                    "target_of": "dev accuracy ≥ target"}},
               "problems": {"moons": {"sgd": {"search": [], "runs": [], "lr": None},
                                      "adam": {"search": [], "runs": [], "lr": None}}}}
    lines = "\n".join(xdl.bench.report.header(results))
    assert "stopped after 2 of 6 (problem, optimizer) pairs" in lines
    assert "- budgets and targets (--quick): moons 60 epochs of batch 32, dev accuracy ≥ 0.9" in lines
    assert " (--quick)" not in "\n".join(xdl.bench.report.header(results | {"quick": False}))


def test_a_function_runs_record_is_its_curve_read_by_hand_on_a_fake_clock(quick_budget, monkeypatch):
    """A function run (quadratic, SGD): f after 0 … budget updates, the steps to the target the first of them at or
    below it, the final cost and the score (−f) its last; on a clock that ticks once per read, the seconds to the
    target and the run's seconds count the reads between its start, the target and its end."""
    from types import SimpleNamespace

    from xdl.bench import OPTIMIZERS, protocol
    from xdl.bench.problems import PROBLEMS

    quick_budget("quadratic", 40)
    ticks = iter(range(100, 1000))
    monkeypatch.setattr(protocol, "time", SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    problem = dataclasses.replace(PROBLEMS["quadratic"], target=1.0)
    record = protocol.run(problem, OPTIMIZERS["sgd"], 0.01, 1, quick=True)
    curve = record["curve"]
    reached = next(step for step, f in enumerate(curve) if f <= 1.0)
    assert len(curve) == 41 and 0 < reached < 40 and record["status"] == "completed"
    assert (record["steps_to_target"], record["final_cost"], record["score"]) == (reached, curve[-1], -curve[-1])
    assert (record["seconds_to_target"], record["seconds"]) == (1.0, 2.0)  # read at the start, the target, the end


def test_a_searchs_score_averages_the_last_tenth_of_its_epochs_at_least_one():
    from xdl.bench.protocol import settled_accuracy

    assert settled_accuracy([0.0] * 22 + [0.3, 0.6, 0.9]) == 0.6  # 25 epochs: the last ⌈2.5⌉ = 3
    assert settled_accuracy([0.1, 0.2, 0.5]) == 0.5 and settled_accuracy([0.7]) == 0.7


def test_the_batched_benchmarks_row_is_its_figures_per_epoch_and_against_k_models_alone(capsys, monkeypatch,
                                                                                         tmp_path):
    """benchmarks/batched.py's table and JSON from stand-in runs of known seconds (2 epochs; one model alone 3 s,
    then 2 s: the faster is kept; K models batched K s, steady K/10 s per epoch, 0.05 s setup, K·0.08 s per
    epoch without the train set's evaluation): ms per epoch, model-epochs per second and K models alone over the
    batch; the JSON says complete after the last K only. A steady epoch is the median after the first."""
    import io
    from types import SimpleNamespace

    batched = load_benchmark_script("batched", monkeypatch)
    monkeypatch.setattr(batched, "keep_freed_memory", lambda: False)
    monkeypatch.setattr(batched, "digits_training_set", lambda: (np.zeros((10, 64), np.float32), np.zeros(10, int)))
    alone = iter([(3.0, 0.4), (2.0, 0.5)])
    monkeypatch.setattr(batched, "xdl_one", lambda X, y, epochs: next(alone))
    monkeypatch.setattr(batched, "xdl_batched", lambda k, X, y, epochs, eval_train=True:
                        (1.0 * k, (0.1 if eval_train else 0.08) * k, 0.05))
    completes = []

    def written(path, write, binary):
        text = io.StringIO()
        write(text)
        completes.append(json.loads(text.getvalue()))

    monkeypatch.setattr(batched, "atomic_write", written)
    batched.main(["--models", "1", "4", "--epochs", "2", "--sequential", "2", "--no-torch", "--json",
                  str(tmp_path / "b.json")])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 4 |")]
    assert rows == ["| 4 | 2000.0 | 50 | 400.0 | 320.0 | 2 | 2.0× faster |"]  # 4 × 2 s alone over 4 s
    assert [figures["complete"] for figures in completes] == [False, True] and completes[-1]["one_xdl_seconds"] == 2.0
    assert completes[-1]["rows"][-1] == {"k": 4, "seconds": 4.0, "setup_seconds": 0.05,
                                         "steady_seconds_per_epoch": pytest.approx(0.4),
                                         "training_seconds_per_epoch": pytest.approx(0.32)}
    history = SimpleNamespace(records=[{"seconds": s} for s in (5.0, 1.0, 3.0, 2.0)])
    assert batched.steady_epoch(history) == 2.0
    assert batched.steady_epoch(SimpleNamespace(records=[{"seconds": 5.0}])) == 5.0


def test_the_step_profile_takes_the_median_host_and_wall_time_and_says_each_per_step(capsys, monkeypatch):
    """benchmarks/profile_step.py on a fake clock: the host time (a call with the device idle before it) and the
    wall time (back to back, after as many calls fill the queue) are each the median of their calls; the line
    gives both in µs and the host's share of the wall; 10 calls warm up before any is timed; the profile is by
    own time."""
    from types import SimpleNamespace

    profile_step = load_benchmark_script("profile_step", monkeypatch)
    costs, now, synchronized = iter([1, 9, 2] + [100] * 3 + [5, 7, 6]), [0.0], []

    def step():
        now[0] += next(costs)

    monkeypatch.setattr(profile_step, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    assert profile_step.host_and_wall(step, lambda: synchronized.append(now[0]), 3) == (2, 6)
    assert synchronized[:3] == [0, 1, 10]  # before each host call
    calls = []
    monkeypatch.setattr(profile_step, "keep_freed_memory", lambda: False)
    monkeypatch.setattr(profile_step, "xdl_step", lambda *args, **kwargs: lambda: calls.append(len(calls)))
    monkeypatch.setattr(profile_step, "host_and_wall", lambda step, synchronize, steps: (2e-4, 4e-4))
    profile_step.main(["--quick", "--steps", "2", "--top", "3"])
    out = capsys.readouterr().out
    assert ": wall 400 µs per step, host 200 µs per step (50% of wall)" in out
    assert len(calls) == 10 + 2 and "Ordered by: internal time" in out


def test_the_seeds_train_at_the_search_trial_that_ranks_best(quick_budget):
    """The rate the seeds train at is the search's best by its stated rule — the highest score, then the fewer steps
    to the target, then the smaller rate — read here from the search's own records."""
    quick_budget("quadratic", 30)
    results = benchmark(["quadratic"], ["sgd"], seeds=1, trials=5, quick=True)
    entry = results["problems"]["quadratic"]["sgd"]
    ranked = sorted((t for t in entry["search"] if t["status"] == "completed"),
                    key=lambda t: (-t["score"], math.inf if t["steps_to_target"] is None else t["steps_to_target"],
                                   t["lr"]))
    assert len({t["score"] for t in ranked}) > 1 and entry["lr"] == ranked[0]["lr"]
    assert [run["lr"] for run in entry["runs"]] == [ranked[0]["lr"]]


def tiny_classification(batch_norm=False, target=0.9, epochs=3):
    """A 2-class problem of 130 training examples (129 with batch norm: its last batch of 1 is merged) in batches
    of 64, and its data splits: (problem, data)."""
    from xdl.bench.problems import Problem

    rng = np.random.default_rng(0)
    n = 129 if batch_norm else 130
    X = rng.normal(size=(n + 40, 2)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    details = {"hidden": [4], "activation": "relu", "outputs": 2, **({"batch_norm": True} if batch_norm else {})}
    problem = Problem("tiny", "classification", target=target, budget=(epochs, epochs), batch_size=64,
                      details=details)
    return problem, (X[:n], y[:n], X[n:n + 20], y[n:n + 20], X[n + 20:], y[n + 20:])


def test_a_classification_runs_record_is_its_history_read_by_hand(monkeypatch):
    """130 examples in batches of 64 are 3 steps an epoch; the dev accuracy reaches the target 0.9 at epoch 2 (equal
    to it: reached), so 2 · 3 = 6 steps, and the seconds of the first two epochs' steps, 0.5 + 0.25; the
    evaluation is each epoch's seconds less its steps', 3 · 1 − 0.875."""
    from xdl.bench import protocol
    from xdl.train.history import History

    accuracies, step_seconds = [0.5, 0.9, 0.95], [0.5, 0.25, 0.125]

    class ScriptedTrainer(protocol.Trainer):  # the run's own model and batches; the epochs' figures as given
        def fit(self, X, y, dev=None):
            return History([{"epoch": i + 1, "train_accuracy": 0.8, "dev_accuracy": a, "seconds": 1.0,
                             "step_seconds": s} for i, (a, s) in enumerate(zip(accuracies, step_seconds))])

    monkeypatch.setattr(protocol, "Trainer", ScriptedTrainer)
    problem, data = tiny_classification()
    record = protocol.run(problem, protocol.OPTIMIZERS["sgd"], 0.1, 0, True, data)
    assert record["status"] == "completed", record.get("error")
    assert (record["steps_to_target"], record["seconds_to_target"], record["seconds"]) == (6, 0.75, 0.875)
    assert record["evaluation_seconds"] == 2.125 and record["score"] == 0.95 and record["curve"] == accuracies
    assert (record["train_accuracy"], record["dev_accuracy"]) == (0.8, 0.95)


def test_a_batched_searchs_steps_to_target_count_batch_norms_merged_batch_and_its_seconds_the_whole_batch(
        monkeypatch):
    """129 examples in batches of 64 with batch norm are 2 steps an epoch (the last batch of 1 merged into the one
    before it); a target of 0 is reached after the first epoch: 2 steps. The batch's seconds are the clock's
    difference around `fit_many` (a fake clock: 10 s, then 12.5 s)."""
    from types import SimpleNamespace

    from xdl.bench import protocol

    clock = iter([10.0, 12.5])
    monkeypatch.setattr(protocol, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    problem, data = tiny_classification(batch_norm=True, target=0.0, epochs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the merged batch is warned of)
        records = protocol.batched_runs(problem, "sgd", [0.1, 0.01], 0, True, data)
    assert [r["status"] for r in records] == ["completed", "completed"]
    assert [(r["steps_to_target"], r["batch_seconds"]) for r in records] == [(2, 2.5), (2, 2.5)]


@pytest.mark.parametrize("best, edge", [("largest", "largest"), ("smallest", "smallest"), ("middle", None)])
def test_a_best_rate_at_an_end_of_the_drawn_rates_is_named_by_that_end(best, edge, monkeypatch):
    """Runs stand in with a score that ranks the largest, the smallest or a middle rate of the 4 drawn first."""
    from xdl.bench import protocol

    rates = sorted((10.0 ** np.random.default_rng(0).uniform(-4, 0, 4)).tolist())
    score = {"largest": lambda lr: lr, "smallest": lambda lr: -lr, "middle": lambda lr: -abs(lr - rates[1])}[best]
    monkeypatch.setattr(protocol, "run", lambda problem, build, lr, seed, quick, data=None: {
        "lr": lr, "seed": seed, "status": "completed", "score": score(lr), "steps_to_target": None})
    entry = benchmark(["quadratic"], ["sgd"], seeds=1, trials=4)["problems"]["quadratic"]["sgd"]
    assert sorted(t["lr"] for t in entry["search"]) == rates
    assert entry["lr"] == {"largest": rates[-1], "smallest": rates[0], "middle": rates[1]}[best]
    assert entry["lr_at_edge"] == edge


def test_the_last_runs_seed_may_be_2_to_the_64_less_1_not_more():
    """The runs are seeded seed + 1 … seed + seeds, each below 2**64."""
    from xdl.bench.protocol import check_options

    assert set(check_options(["quadratic"], ["sgd"], seeds=3, seed=2**64 - 4)) == {"sgd"}
    with pytest.raises(ValueError, match=r"--seed 18446744073709551613 with --seeds 3: .* below 2\*\*64"):
        check_options(["quadratic"], ["sgd"], seeds=3, seed=2**64 - 3)


def test_a_search_on_the_cpu_trains_its_trials_one_at_a_time_unless_told():
    with xdl.use("numpy"):
        assert benchmark(["quadratic"], ["sgd"], seeds=1, lr=0.01)["batched"] is False


@pytest.mark.parametrize("value, text", [(99.7, "99.7"), (99.94, "99.9"), (123.4, "123"), (999.4, "999"),
                                         (999.5, "1,000"), (1733.0, "1,733"), (0.0123, "0.0123"), (40, "40")])
def test_a_table_figure_has_3_significant_digits_and_a_thousand_or_more_is_written_in_full(value, text):
    from xdl.bench.report import _g

    assert _g(value) == text


def test_a_benchmark_written_without_matplotlib_removes_the_earlier_profile(tmp_path, monkeypatch):
    """The earlier benchmark's profile.png described its results; without matplotlib none is drawn again."""
    import xdl.bench.report

    one = benchmark(["quadratic"], ["sgd"], seeds=1, quick=True, lr=1e-3)
    monkeypatch.setattr(xdl.bench.report, "_figures", lambda results, directory: [])  # (as when the import fails)
    write(one, tmp_path)
    (tmp_path / "profile.png").write_bytes(b"png")  # the earlier benchmark's, drawn with matplotlib
    write(one, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json", "results.md"]


def test_the_main_jobs_seconds_per_epoch_are_the_mean_over_all_its_epochs(monkeypatch):
    """Epochs of 3, 1, 1 and 1.5 s (the first with its compilation): (3 + 1 + 1 + 1.5) / 4 = 1.625 s."""
    from xdl.bench.steps import main_job_seconds_per_epoch
    from xdl.train.history import History

    class Timed:
        def fit(self, X, y, dev=None):
            return History([{"epoch": i + 1, "seconds": s} for i, s in enumerate((3.0, 1.0, 1.0, 1.5))])

    monkeypatch.setattr(TrainConfig, "build_trainer", lambda config, model: Timed())
    assert main_job_seconds_per_epoch("numpy") == 1.625


def test_the_batched_benchmarks_setup_is_its_seconds_less_its_epochs(monkeypatch):
    """A fake clock of 100 s, then 105 s around `fit_many`, whose first model's epochs took 2, 1 and 1 s: the setup
    is 5 − 4 = 1 s, the steady epoch the median after the first, 1 s."""
    from types import SimpleNamespace

    from xdl.train.history import History

    batched = load_benchmark_script("batched", monkeypatch)
    clock = iter([100.0, 105.0])
    monkeypatch.setattr(batched, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    history = History([{"epoch": i + 1, "seconds": s, "train_cost": 0.1} for i, s in enumerate((2.0, 1.0, 1.0))])
    result = SimpleNamespace(status="completed", history=history, model=object())
    monkeypatch.setattr(batched, "fit_many", lambda configs, X, y, seed, eval_train: [result] * len(configs))
    assert batched.xdl_batched(2, None, None, 3) == (5.0, 1.0, 1.0)


def test_batched_vs_alones_difference_is_relative_to_the_alone_models_norm(monkeypatch):
    """‖(3, 4) − (6, 8)‖ / ‖(6, 8)‖ = 5 / 10; against zeros, the largest absolute difference."""
    script = load_benchmark_script("batched_vs_alone", monkeypatch)
    assert script.relative(np.array([3.0, 4.0]), np.array([6.0, 8.0])) == 0.5
    assert script.relative(np.array([3.0, -4.0]), np.zeros(2)) == 4.0 and script.relative(np.zeros(0), np.zeros(0)) == 0


def test_the_profile_figure_names_each_panels_measure(tmp_path, monkeypatch):
    """The left panel is of the steps to the target, the right one of the seconds (one sample per run)."""
    pytest.importorskip("matplotlib")
    import xdl.plots

    figures = []
    monkeypatch.setattr(xdl.plots, "save_figure", lambda fig, path: figures.append(fig) or Path(path))
    write(benchmark(["quadratic"], ["sgd"], seeds=1, quick=True, lr=1e-3), tmp_path)
    steps, seconds = figures[-1].axes
    assert (steps.get_title(), steps.get_xlabel()) == ("performance profile: steps to target",
                                                       "τ (factor of the best median steps to target)")
    assert (seconds.get_title(), seconds.get_xlabel()) == ("performance profile: seconds to target (one sample per "
                                                           "run)", "τ (factor of the best median seconds to target)")
