"""The engine's benchmark: a fixed-work campaign on 1 and 2 local Dask workers.

Run it as ``python3 -m aioctx_verify._engine_bench [--schedules N] [--workers 1,2]``
(needs the dask extra).  The campaign is the corpus steps cut at their work: every safe
corpus program under random, PCT and DFS for ``--schedules`` schedules each, one shard per
(program, strategy).  For each worker count it prints the shards, the wall time of the
campaign (the cluster's start apart), shards per second, the speed-up over the first count,
and the scheduling overhead per shard: the engine's time for a shard (handed out to result
seen) minus the shard's own run time, as a median, against the median shard.  It also
checks that every worker count merged the same results.

Targets (the issue's): two workers at least 1.7 times one on two cores; overhead under 5 %
of a median shard.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from aioctx_verify.engine import DaskEngine, EngineRun, LocalEngine, Shard, run_shards

__all__ = ["bench_shards", "main"]


def bench_shards(schedules: int, seed: int = 0) -> list[Shard]:
    """The fixed work: the safe corpus under random, PCT and DFS, ``schedules`` each."""
    from aioctx_verify._campaign import explore_shard
    from aioctx_verify.stress import CORPUS

    safe = [p for p in CORPUS if p.expected == "safe"]
    pairs = [(s, p.name) for s in ("random", "pct", "dfs") for p in safe]
    return [
        Shard("bench", i, explore_shard, (name, strategy, schedules, 600.0, seed + i),
              label=f"{strategy} {name}")
        for i, (strategy, name) in enumerate(pairs)
    ]


def _summary(run: EngineRun) -> list[tuple[int, str, int, int]]:
    """What must not depend on the engine: per shard, its status and counts."""
    out: list[tuple[int, str, int, int]] = []
    for r in run.ordered():
        v: Any = r.value
        out.append((r.index, r.status, getattr(v, "schedules", -1),
                    getattr(v, "distinct_traces", -1)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m aioctx_verify._engine_bench",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--schedules", type=int, default=300)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--local", action="store_true", help="also time the in-process engine")
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.workers.split(",") if x.strip()]
    shards = bench_shards(args.schedules)
    print(f"engine bench: {len(shards)} shards (safe corpus x random, pct, dfs; "
          f"{args.schedules} schedules each)")
    rows: list[tuple[str, float, float, float, float, float]] = []
    ref: list[tuple[int, str, int, int]] | None = None
    same = True

    def measure(label: str, engine: Any, start: float) -> None:
        nonlocal ref, same
        t0 = time.perf_counter()
        run = run_shards(engine, "bench", shards)
        wall = time.perf_counter() - t0
        got = _summary(run)
        if ref is None:
            ref = got
        same = same and got == ref
        own = [r.seconds for r in run.ordered()]
        over = [max(0.0, r.wall - r.seconds) for r in run.ordered()]
        rows.append((label, start, wall, len(shards) / wall, statistics.median(own),
                     statistics.median(over)))

    if args.local:
        measure("local", LocalEngine(), 0.0)
    for n in counts:
        t0 = time.perf_counter()
        with DaskEngine(n) as engine:
            start = time.perf_counter() - t0
            measure(f"dask x{n}", engine, start)
    base = next((r[2] for r in rows if r[0] == f"dask x{counts[0]}"), rows[0][2])
    print(f"{'engine':<9} {'start s':>8} {'wall s':>8} {'shards/s':>9} {'speed-up':>9} "
          f"{'median shard s':>15} {'overhead/shard ms':>18} {'overhead %':>11}")
    for label, start, wall, rate, med, over in rows:
        print(f"{label:<9} {start:>8.2f} {wall:>8.2f} {rate:>9.2f} {base / wall:>8.2f}x "
              f"{med:>15.3f} {over * 1000:>18.1f} {100 * over / med if med else 0:>10.1f}%")
    print(f"same merged results on every engine: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
