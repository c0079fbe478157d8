"""The engine's benchmark: a fixed-work campaign on 1 and 2 local Dask workers.

Run it as ``python3 -m aioctx_verify._engine_bench [--schedules N] [--workers 1,2]``
(needs the dask extra); ``--campaign SECONDS`` times a whole campaign instead: every step
whose work is not wall time (model, prove, random, pct, dfs, generated, races, hypothesis),
cut at its work (``--by-work``) for a budget of SECONDS, and checks that its report is the
same on every engine (timing fields aside).

Without it, the campaign is the corpus steps cut at their work: every safe corpus program
under random, PCT and DFS for ``--schedules`` schedules each, one shard per
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
from collections.abc import Callable, Generator, Sequence
from typing import Any

from aioctx_verify.engine import (
    DaskEngine,
    Engine,
    EngineRun,
    LocalEngine,
    Shard,
    ShardResult,
    run_shards,
)

__all__ = ["bench_campaign", "bench_shards", "campaign_table", "main", "strip_timing"]

#: The campaign steps whose work is not wall time (stress is; the kill matrix has its own
#: determinism test and dwarfs the rest).
CAMPAIGN_STEPS = ("model", "prove", "random", "pct", "dfs", "generated", "races", "hypothesis")
#: Report fields that measure time.
_TIMING = {"seconds", "started_at", "machine", "steps_per_second", "schedules_per_second"}


class _Recording(Engine):
    """An engine that runs shards on another and keeps every result (for the overhead)."""

    def __init__(self, inner: Engine) -> None:
        super().__init__()
        self.inner = inner
        self.name = inner.name
        self.workers = inner.workers
        self.results: list[ShardResult] = []

    def imap(
        self, shards: Sequence[Shard], should_stop: Callable[[], bool] | None = None
    ) -> Generator[ShardResult, None, None]:
        for r in self.inner.imap(shards, should_stop):
            self.results.append(r)
            yield r


def strip_timing(d: Any) -> Any:
    """A report's JSON without the fields that measure time (what must not depend on the
    engine is what is left)."""
    if isinstance(d, dict):
        return {k: strip_timing(v) for k, v in d.items() if k not in _TIMING}
    if isinstance(d, list):
        return [strip_timing(x) for x in d]
    return d


def bench_campaign(seconds: float, engine: Engine, seed: int = 0) -> tuple[Any, list[ShardResult]]:
    """A campaign of :data:`CAMPAIGN_STEPS` cut at its work on ``engine``: its report (timing
    fields stripped) and every shard's result."""
    from aioctx_verify._campaign import plan_campaign, run_campaign

    rec = _Recording(engine)
    plan = plan_campaign(seconds, seed=seed, checkers=CAMPAIGN_STEPS, by_work=True)
    report = run_campaign(plan, engine=rec).to_dict()
    return strip_timing(report), rec.results


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
    ap.add_argument("--campaign", type=float, metavar="SECONDS",
                    help="time a whole campaign of that budget, cut at its work")
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.workers.split(",") if x.strip()]
    if args.campaign is not None:
        return campaign_table(args.campaign, counts, args.local)
    shards = bench_shards(args.schedules)

    def corpus(engine: Engine) -> tuple[Any, list[ShardResult]]:
        run = run_shards(engine, "bench", shards)
        return _summary(run), run.ordered()

    return _table(f"engine bench: {len(shards)} shards (safe corpus x random, pct, dfs; "
                  f"{args.schedules} schedules each)", corpus, counts, args.local,
                  "same merged results on every engine")


#: The issue's targets: two workers at least this many times one; scheduling per shard
#: under this share of a median shard.
SPEEDUP_TARGET = 1.7
OVERHEAD_TARGET = 0.05


def campaign_table(seconds: float, counts: list[int], local: bool,
                   out: Callable[[str], None] = print) -> int:
    """Time a campaign of ``seconds`` cut at its work on each engine, print the table with
    the targets, and return 0 when every engine gave the same report (1 otherwise)."""
    return _table(f"engine bench: a campaign of {seconds:g} s cut at its work "
                  f"({', '.join(CAMPAIGN_STEPS)})",
                  lambda engine: bench_campaign(seconds, engine), counts, local,
                  "same report on every engine (timing aside)", out)


def _table(title: str, work: Callable[[Engine], tuple[Any, list[ShardResult]]],
           counts: list[int], local: bool, same_what: str,
           out: Callable[[str], None] = print) -> int:
    """Run ``work`` (what must not depend on the engine, and every shard's result) in this
    process (``local``) and on a LocalCluster of each of ``counts`` workers; print the
    table, whether ``work`` gave the same on every engine, and the targets; 0 when it did."""
    out(title)
    rows: list[tuple[str, float, float, int, float, float]] = []
    ref: Any = None
    same = True

    def measure(label: str, engine: Engine, start: float) -> None:
        nonlocal ref, same
        t0 = time.perf_counter()
        got, results = work(engine)
        wall = time.perf_counter() - t0
        if ref is None:
            ref = got
        same = same and got == ref
        own = [r.seconds for r in results]
        over = [max(0.0, r.wall - r.seconds) for r in results]
        rows.append((label, start, wall, len(results), statistics.median(own),
                     statistics.median(over)))

    if local:
        measure("local", LocalEngine(), 0.0)
    for n in counts:
        t0 = time.perf_counter()
        with DaskEngine(n) as engine:
            start = time.perf_counter() - t0
            measure(f"dask x{n}", engine, start)
    base = next((r[2] for r in rows if r[0] == f"dask x{counts[0]}"), rows[0][2])
    out(f"{'engine':<9} {'start s':>8} {'wall s':>8} {'shards':>7} {'shards/s':>9} "
        f"{'speed-up':>9} {'median shard s':>15} {'overhead/shard ms':>18} {'overhead %':>11}")
    for label, start, wall, n_shards, med, over in rows:
        out(f"{label:<9} {start:>8.2f} {wall:>8.2f} {n_shards:>7} {n_shards / wall:>9.2f} "
            f"{base / wall:>8.2f}x {med:>15.3f} {over * 1000:>18.1f} "
            f"{100 * over / med if med else 0:>10.1f}%")
    out(f"{same_what}: {'yes' if same else 'NO'}")
    by = {r[0]: r for r in rows}
    one, two = by.get("dask x1"), by.get("dask x2")
    if one is not None and two is not None:
        ratio = one[2] / two[2]
        out(f"two workers over one: {ratio:.2f}x (target >= {SPEEDUP_TARGET}: "
            f"{'met' if ratio >= SPEEDUP_TARGET else 'NOT met'})")
    for label, _start, _wall, _n, med, over in rows:
        if label.startswith("dask") and med:
            out(f"{label}: scheduling {100 * over / med:.1f}% of a median shard (target < "
                f"{100 * OVERHEAD_TARGET:.0f}%: "
                f"{'met' if over / med < OVERHEAD_TARGET else 'NOT met'})")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
