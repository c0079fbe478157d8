"""Benchmarks: impl's hot paths and the explorers' speed, each figure a ratio against a
peer measured in the same run.
"""

from ._explore import (
    EXPLORE_BENCHMARK_NAMES,
    FRONTRUN_DRIVER,
    LOCKED_COUNTER,
    NOTIFY_ORDER,
    TTFF_PROGRAMS,
    ExploreBench,
    ExploreSizes,
    FrontrunReport,
    frontrun_version,
    run_explore_benchmarks,
    run_frontrun,
)
from ._loop import (
    BENCHMARK_NAMES,
    BenchError,
    BenchResult,
    Sizes,
    Target,
    format_table,
    run_benchmarks,
    write_json,
)

__all__ = [
    "BENCHMARK_NAMES",
    "BenchError",
    "BenchResult",
    "EXPLORE_BENCHMARK_NAMES",
    "ExploreBench",
    "ExploreSizes",
    "FRONTRUN_DRIVER",
    "FrontrunReport",
    "LOCKED_COUNTER",
    "NOTIFY_ORDER",
    "Sizes",
    "TTFF_PROGRAMS",
    "Target",
    "format_table",
    "frontrun_version",
    "run_benchmarks",
    "run_explore_benchmarks",
    "run_frontrun",
    "write_json",
]
