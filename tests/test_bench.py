"""Optimizer benchmarking: the protocol, determinism, the course's order on moons, a user's own
optimizer from a file, failures recorded, the command line; and the speed benchmarks' own code
(batched training, the step profile, the kernel cases) at their smallest."""

import json
import re
import warnings

import numpy as np
import pytest

import xdl
from xdl import cli
from xdl.config import TrainConfig
from xdl.bench import benchmark, markdown, profile, write
from xdl.bench.report import crashes


def without_times(value):
    if isinstance(value, dict):
        return {k: without_times(v) for k, v in value.items() if "seconds" not in k}
    if isinstance(value, list):
        return [without_times(v) for v in value]
    return value


def test_the_same_seed_gives_the_same_results_apart_from_times():
    a = benchmark(["quadratic", "moons"], ["sgd", "adam"], seeds=2, trials=3, quick=True)
    b = benchmark(["quadratic", "moons"], ["sgd", "adam"], seeds=2, trials=3, quick=True)
    assert json.dumps(without_times(a), sort_keys=True) == json.dumps(without_times(b), sort_keys=True)
    rates = [[s["lr"] for s in a["problems"]["moons"][name]["search"]] for name in ("sgd", "adam")]
    assert rates[0] == rates[1]  # every optimizer gets the same rates to try
    for entry in a["problems"]["moons"].values():
        assert len(entry["runs"]) == 2 and {r["seed"] for r in entry["runs"]} == {1, 2}


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


def test_a_users_optimizer_from_a_file_takes_part_and_a_crash_is_recorded(tmp_path):
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


def test_two_optimizers_of_one_name_are_refused(tmp_path):
    for where in ("a", "b"):
        (tmp_path / where).mkdir()
        (tmp_path / where / "rules.py").write_text(USER_OPTIMIZER)
    with pytest.raises(ValueError, match=r"another optimizer in this benchmark is also named 'SignSGD'"):
        benchmark(["quadratic"], [f"{tmp_path / d / 'rules.py'}:SignSGD" for d in ("a", "b")], seeds=1, trials=1)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"--problem 'mnist': unknown"):
        benchmark(["mnist"], ["adam"])
    with pytest.raises(ValueError, match=r"--optimizer 'adagrad': unknown"):
        benchmark(["quadratic"], ["adagrad"])
    with pytest.raises(ValueError, match=r"--optimizer 'nowhere.py:Rule': cannot load it"):
        benchmark(["quadratic"], ["nowhere.py:Rule"])
    with pytest.raises(ValueError, match=r"must be a subclass of xdl.optim.Optimizer"):
        benchmark(["quadratic"], ["json:dumps"])
    with pytest.raises(ValueError, match=r"--seeds must be a positive integer"):
        benchmark(["quadratic"], ["adam"], seeds=0)


def test_cli_bench_optimizers(tmp_path, capsys):
    out = tmp_path / "bench"
    assert cli.main(["bench", "optimizers", "--quick", "--problem", "quadratic", "rosenbrock", "--optimizer", "sgd",
                     "adam", "--seeds", "1", "--trials", "2", "--backend", "numpy", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| quadratic | adam |" in printed and "| rosenbrock | sgd |" in printed
    assert {p.name for p in out.iterdir()} >= {"results.json", "results.md", "profile.png", "curves-quadratic.png"}
    assert cli.main(["bench", "optimizers", "--problem", "mnist", "--out", str(out)]) == 1
    assert "--problem 'mnist': unknown" in capsys.readouterr().err


def test_a_batched_search_gives_the_records_of_one_run_at_a_time():
    """fit_many trains the trials at once; every record is the one-at-a-time run's, apart from times
    (and the test cost's last digits: it is summed in another order)."""
    one = benchmark(["digits"], ["adam", "momentum"], seeds=1, trials=4, quick=True, batched=False)
    many = benchmark(["digits"], ["adam", "momentum"], seeds=1, trials=4, quick=True, batched=True)
    for name in ("adam", "momentum"):
        a, b = one["problems"]["digits"][name]["search"], many["problems"]["digits"][name]["search"]
        for x, y in zip(a, b):
            assert x.pop("test_cost") == pytest.approx(y.pop("test_cost"), rel=1e-6)
        assert without_times(a) == without_times(b)


@pytest.mark.parametrize("flags, message", [
    (["--seeds", "0"], "--seeds must be a positive integer, got 0"),
    (["--trials", "0"], "--trials must be a positive integer, got 0"),
    (["--lr", "-1"], "--lr must be a finite number > 0, got -1.0"),
    (["--lr", "nan"], "--lr must be a finite number > 0, got nan"),
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
    with pytest.raises(ValueError, match=r"--lr must be a finite number > 0, got -0.001"):
        benchmark(["quadratic"], ["adam"], lr=-1e-3)
    with pytest.raises(ValueError, match=r"--seed must be an integer ≥ 0, got -1"):
        benchmark(["quadratic"], ["adam"], seed=-1)


def test_the_batched_training_benchmark_runs_and_reports_each_k(capsys, monkeypatch, tmp_path):
    """benchmarks/batched.py (not collected by the suite) at its smallest: a table row per K."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "batched.py"
    spec = importlib.util.spec_from_file_location("batched_benchmark", path)
    batched = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(batched)
    monkeypatch.setattr(batched, "keep_freed_memory", lambda: False)  # as conftest does for the xdl command
    assert batched.faster(3.0, 1.5, 1) == "2.0× faster" and batched.faster(1.0, 1.4, 1) == "1.4× slower"
    figures = tmp_path / "batched.json"
    batched.main(["--models", "1", "2", "--epochs", "1", "--sequential", "1", "--no-torch", "--json", str(figures)])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split(" | ")[0] for row in rows] == ["| 1", "| 2"]
    assert all(("faster" in row) != ("slower" in row) for row in rows)
    written = json.loads(figures.read_text())
    assert written["epochs"] == 1 and written["one_xdl_seconds"] > 0 and written["one_torch_seconds"] is None
    assert [r["k"] for r in written["rows"]] == [1, 2]
    assert all(r["seconds"] > r["setup_seconds"] >= 0 and r["training_seconds_per_epoch"] > 0 for r in written["rows"])


def load_benchmark_script(name, monkeypatch):
    """A script of benchmarks/ (not a package) as a module, registered while the test runs."""
    import importlib.util
    import sys
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", Path(__file__).parents[1] / "benchmarks" /
                                                  f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


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
    report = {"steps": steps, "rows": rows, "main_job_seconds_per_epoch": {"cupy": 0.0028, "numpy": 0.0206}}
    batched = {"epochs": 30, "one_xdl_seconds": 0.09, "one_torch_seconds": 0.74,
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
    assert verdicts["K = 64: model-epochs per second over one model's, whole runs"] is True  # 64·0.09/0.25 = 23
    assert verdicts["K = 64: times faster than 64 sequential PyTorch eager runs"] is True  # 64·0.74/0.25 = 189
    assert verdicts["K = 64 steady epoch, training only / the hand-fused PyTorch graph's epoch"] is False  # 5 vs 4.8
    out = capsys.readouterr().out
    assert "- [NOT met] issue 12: captured step / torch's whole-step graph, B=512: 0.937× (≤ 0.9×)" in out
    assert "- [no figure] issue 12: train fwd+bwd 65536x1024 through the public API / the kernels (≤ 1.1×)" in out
    points = acceptance.main([str(tmp_path / "missing.json"), str(tmp_path / "batched.json")])  # a failed step
    assert "missing.json" in capsys.readouterr().out and all(p.met is None for p in points if p.issue == 12)


def test_the_step_profile_reports_host_and_wall_time_and_the_functions_behind_them(capsys, monkeypatch):
    """benchmarks/profile_step.py (not collected by the suite) on its small step."""
    import importlib.util
    from pathlib import Path

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


def test_the_batch_norm_paths_script_needs_a_gpu_and_says_so():
    """benchmarks/bn_paths.py (not collected by the suite) compares CUDA kernels: on the CPU it
    says how to run it, before any work."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "bn_paths.py"
    spec = importlib.util.spec_from_file_location("bn_paths", path)
    bn_paths = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bn_paths)
    with xdl.use("numpy"), pytest.raises(SystemExit, match="run it with XDL_BACKEND=cupy on a GPU"):
        bn_paths.main()


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


def test_ctrl_c_during_the_benchmark_writes_the_pairs_it_finished(tmp_path, capsys, monkeypatch):
    """Interrupted in its second optimizer, `xdl bench optimizers` writes the first one's results
    (marked interrupted) and exits 130; interrupted before any pair finished, it writes nothing."""
    from xdl.bench import protocol

    run, calls = protocol.run, []

    def interrupted_at_the_fourth(*args, **kwargs):  # sgd: 2 trials + 1 seed; then adam's first trial
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return run(*args, **kwargs)

    monkeypatch.setattr(protocol, "run", interrupted_at_the_fourth)
    command = ["bench", "optimizers", "--problem", "quadratic", "--optimizer", "sgd", "adam", "--seeds", "1",
               "--trials", "2"]
    assert cli.main([*command, "--out", str(tmp_path / "b")]) == 130
    assert "the 1 (problem, optimizer) pair finished are written" in capsys.readouterr().err
    written = json.loads((tmp_path / "b" / "results.json").read_text())
    assert written["interrupted"] is True and list(written["problems"]["quadratic"]) == ["sgd"]
    calls[:] = [1, 1, 1]  # the next call is the fourth: before any pair finished
    assert cli.main([*command, "--out", str(tmp_path / "c")]) == 130
    assert "what it was doing is not saved" in capsys.readouterr().err and not (tmp_path / "c" / "results.json").exists()
    assert cli.main([*command, "--lr", "0.1", "--out", str(tmp_path / "d")]) == 1  # --trials with --lr: refused
    assert "--trials is the budget of the learning-rate search, which --lr skips" in capsys.readouterr().err
