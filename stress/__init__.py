"""Stress, exploration and benchmark tooling around :mod:`impl`.

* :func:`explore` runs a :class:`Program` on the controlled platform under a strategy
  (random, PCT, bounded-preemption DFS, Hypothesis) and returns an :class:`ExploreResult`;
  :func:`replay` re-runs one schedule string exactly; :data:`CORPUS` is the built-in set of
  buggy and safe programs.
* :func:`run_benchmarks` measures impl's hot paths, each against a peer in the same run.
"""

from ._bench import (
    BENCHMARK_NAMES,
    BenchError,
    BenchResult,
    Sizes,
    Target,
    format_table,
    run_benchmarks,
    write_json,
)
from ._controlled import Abort, Choice, ControlledPlatform, Decision, RunOutcome, Step, Strategy
from ._corpus import CORPUS, corpus_by_name
from ._explore import (
    Budget,
    ExploreResult,
    Failure,
    Program,
    explore,
    format_trace,
    replay,
    run_schedule,
    shrink,
)
from ._io import atomic_write_text
from ._schedule import InvalidScheduleError, Schedule
from ._strategies import (
    DataStrategy,
    DFSStrategy,
    PCTStrategy,
    PrefixStrategy,
    RandomStrategy,
    ReplayStrategy,
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
