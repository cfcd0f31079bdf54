"""Optimizer benchmarking: fixed problems, the same learning-rate search budget for every optimizer,
several seeds, steps and seconds to a target, tables and performance profiles (`xdl bench
optimizers`)."""

from xdl.bench.problems import PROBLEMS, QUICK, Problem
from xdl.bench.protocol import OPTIMIZERS, benchmark, benchmark_steps, check_options, load_optimizer
from xdl.bench.report import markdown, profile, summary, write

__all__ = ["OPTIMIZERS", "PROBLEMS", "Problem", "QUICK", "benchmark", "benchmark_steps", "check_options",
           "load_optimizer", "markdown", "profile", "summary", "write"]
