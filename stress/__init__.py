"""Stress and benchmark tooling around :mod:`impl`.

:func:`run_benchmarks` measures impl's hot paths, each against a peer (asyncio,
``threading.RLock``) in the same run; ``aioctx-verify bench`` is its command line.
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

__all__ = [
    "BENCHMARK_NAMES",
    "BenchError",
    "BenchResult",
    "Sizes",
    "Target",
    "format_table",
    "run_benchmarks",
    "write_json",
]
