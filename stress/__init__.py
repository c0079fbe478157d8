"""Stress, exploration and benchmark tooling around :mod:`aioctx_verify.impl`, in rooms:

* :mod:`~aioctx_verify.stress.controlled`: the controlled platform, schedules, strategies;
* :mod:`~aioctx_verify.stress.explore`: explore, shrink, replay, the corpus;
* :mod:`~aioctx_verify.stress.mutation`: the mutant catalogue, probes, the kill matrix;
* :mod:`~aioctx_verify.stress.stateful`: the Hypothesis stateful searches;
* :mod:`~aioctx_verify.stress.real`: real-thread workloads, noise, stall watch, runner;
* :mod:`~aioctx_verify.stress.bench`: the benchmarks.

This module re-exports the names most users need:

* :func:`explore` runs a :class:`Program` on the controlled platform under a strategy
  (random, PCT, bounded-preemption DFS, Hypothesis) and returns an :class:`ExploreResult`;
  :func:`replay` re-runs one schedule string exactly; :data:`CORPUS` is the built-in set of
  buggy and safe programs.
* :func:`run_benchmarks` measures impl's hot paths, each against a peer in the same run.
"""

from aioctx_verify.files import atomic_write_text

from .bench import (
    BENCHMARK_NAMES,
    BenchError,
    BenchResult,
    Sizes,
    Target,
    format_table,
    run_benchmarks,
    write_json,
)
from .controlled import (
    Abort,
    Choice,
    ControlledPlatform,
    DataStrategy,
    Decision,
    DFSStrategy,
    InvalidScheduleError,
    PCTStrategy,
    PrefixStrategy,
    RandomStrategy,
    ReplayStrategy,
    RunOutcome,
    Schedule,
    Step,
    Strategy,
)
from .explore import (
    CORPUS,
    Budget,
    ExploreResult,
    Failure,
    Program,
    corpus_by_name,
    explore,
    format_trace,
    replay,
    run_schedule,
    shrink,
)

__all__ = [
    "BENCHMARK_NAMES",
    "CORPUS",
    "Abort",
    "BenchError",
    "BenchResult",
    "Budget",
    "Choice",
    "ControlledPlatform",
    "DFSStrategy",
    "DataStrategy",
    "Decision",
    "ExploreResult",
    "Failure",
    "InvalidScheduleError",
    "PCTStrategy",
    "PrefixStrategy",
    "Program",
    "RandomStrategy",
    "ReplayStrategy",
    "RunOutcome",
    "Schedule",
    "Sizes",
    "Step",
    "Strategy",
    "Target",
    "atomic_write_text",
    "corpus_by_name",
    "explore",
    "format_table",
    "format_trace",
    "replay",
    "run_benchmarks",
    "run_schedule",
    "shrink",
    "write_json",
]
