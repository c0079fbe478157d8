"""The ``aioctx-verify`` console script (click).

Why a custom group: a command-line mistake (an unknown flag, an unwritable ``--json`` path)
should cost the user one line on stderr and exit status 2, not click's usage block or a
traceback.  :class:`_OneLineErrors` runs click in non-standalone mode and prints every
:class:`click.ClickException` as ``<command>: error: <message>``.

Commands:
    run: the main job, a verification campaign (:mod:`aioctx_verify._run_cmd`) that writes
        report.html, report.json and junit.xml.
    report: re-render the reports from a campaign's report.json.
    bench: :func:`stress.run_benchmarks`, printed as a table; ``--json`` also writes
        ``{"benchmarks": [...]}`` atomically.  ``--explore`` appends the controlled
        scheduler's rows (:mod:`aioctx_verify.stress.bench._explore`) and prints their notes.
    explore: every strategy on the built-in corpus of buggy and safe programs; exit 0 when
        every bug was found and no safe program failed, 1 otherwise.
    replay: one failure from the replay line a failing run printed
        (:mod:`aioctx_verify._replay_cmd`: schedules of corpus, probe and stateful
        programs, lockstep seeds, real-thread trials, optionally under ``--mutant``); exit 1
        when its failure reproduces, 0 when the run passes, 2 for a malformed or unknown
        spec or one that the run cannot follow.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from aioctx_verify._paths import check_json_path
from aioctx_verify.stress import (
    CORPUS,
    BenchError,
    Budget,
    ExploreResult,
    atomic_write_text,
    corpus_by_name,
    explore,
    format_table,
    run_benchmarks,
    write_json,
)
from aioctx_verify.stress.bench import run_explore_benchmarks
from aioctx_verify.vocab import STRATEGY_NAMES

__all__ = ["main"]


class _OneLineErrors(click.Group):
    """A group whose errors are one line on stderr: usage errors exit 2, others 1."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        kw = {"windows_expand_args": windows_expand_args, **extra}
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **kw)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **kw)
        except click.ClickException as e:
            where = prog_name or self.name or "aioctx-verify"
            if isinstance(e, click.UsageError) and e.ctx is not None:
                where = e.ctx.command_path
            message = " ".join(e.format_message().split())
            click.echo(f"{where}: error: {message}", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


class _JsonWriteError(click.ClickException):
    exit_code = 2


@click.group(name="aioctx-verify", cls=_OneLineErrors, invoke_without_command=True)
@click.pass_context
def main(ctx: click.Context) -> None:
    """Verification suite for QEMU's AioContext/IOThread threading model."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


@main.command()
@click.option("--quick", is_flag=True, help="CI sizes: fewer items and samples, 3 repetitions.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path),
    callback=check_json_path,
    help='Also write {"benchmarks": [...]} to this file (atomically).',
)
@click.option(
    "--scale",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Multiply every size (e.g. 0.1 for a smoke run).",
)
@click.option(
    "--reps", type=click.IntRange(min=1), help="Repetitions (default: 5, 3 with --quick)."
)
@click.option(
    "--explore",
    is_flag=True,
    help="Also measure the controlled scheduler (steps/s, schedules/s, overhead over the real "
    "platform, time to first failure against frontrun when it is installed); its rows follow.",
)
@click.option(
    "--engine",
    is_flag=True,
    help="Also time a campaign cut at its work in this process and on 1 and 2 local Dask "
    "workers (shards/s, speed-up, scheduling per shard; needs the dask extra).",
)
def bench(
    quick: bool, json_path: Path | None, scale: float, reps: int | None, explore: bool,
    engine: bool,
) -> None:
    """Benchmark impl's hot paths, each against its peer in the same run.

    Prints name, ours, peer, unit, ratio (ours / peer), target and whether it is met;
    every figure is the median of the repetitions.
    """
    if engine:
        try:
            import distributed  # noqa: F401 - only whether it is there
        except ImportError:
            raise click.UsageError(
                "--engine needs Dask: pip install 'aioctx-verify[dask]'"
            ) from None
    mode = "quick" if quick else "full"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    header = f"aioctx-verify bench: {mode}, scale {scale:g}, load average {load} at start"
    click.echo(header, err=True)
    try:
        results = run_benchmarks(
            quick=quick,
            scale=scale,
            reps=reps,
            progress=lambda line: click.echo(f"bench: {line}", err=True),
        )
        notes: list[str] = []
        if explore:
            extra = run_explore_benchmarks(
                quick=quick,
                scale=scale,
                reps=reps,
                progress=lambda line: click.echo(f"bench: {line}", err=True),
            )
            results = [*results, *extra.results]
            notes = extra.notes
    except BenchError as e:
        raise click.ClickException(f"benchmark failed: {e}") from None
    click.echo(f"{header}; medians of the repetitions\n")
    click.echo(format_table(results))
    if notes:
        click.echo("")
    for note in notes:
        click.echo(note)
    if engine:
        from aioctx_verify._engine_bench import campaign_table

        click.echo("")
        # A campaign of 30 s of nominal work (about a minute a run): smaller ones have
        # shards of a few ms, where the scheduling per shard is what is measured.
        if campaign_table(30.0, [1, 2], local=True, out=click.echo):
            raise click.ClickException("the engines gave different reports for one campaign")
    if json_path is not None:
        try:
            write_json(results, json_path)
        except OSError as e:
            raise _JsonWriteError(f"cannot write --json file {json_path}: {e.strerror}") from None
        click.echo(f"bench: wrote {json_path}", err=True)


STRATEGIES = (*STRATEGY_NAMES, "hypothesis")


def _csv(choices: tuple[str, ...]) -> Any:
    def convert(_ctx: click.Context, _param: click.Parameter, value: str) -> list[str]:
        items = [v.strip() for v in value.split(",") if v.strip()]
        bad = [v for v in items if v not in choices]
        if bad or not items:
            raise click.BadParameter(
                f"{', '.join(bad) or 'nothing'} is not one of {', '.join(choices)}"
                " (give a comma-separated list)"
            )
        return items

    return convert


@main.command(name="explore")
@click.option(
    "--strategy",
    "strategies",
    default="random,pct,dfs",
    show_default=True,
    callback=_csv(STRATEGIES),
    help="Comma-separated: random, pct, dfs, conflict, pct-auto (PCT with change points at "
    "shared accesses, depth 1-3 per run), portfolio (all of them, runs shared by how fast "
    "each finds new traces), hypothesis.",
)
@click.option(
    "--program",
    "programs",
    default=",".join(p.name for p in CORPUS),
    callback=_csv(tuple(p.name for p in CORPUS)),
    help="Comma-separated corpus programs.",
)
@click.option(
    "--schedules",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Schedules per program and strategy.",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=20.0,
    show_default=True,
    help="Wall-time budget per program and strategy.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--bound",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="DFS and DPOR preemption bound.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path),
    callback=check_json_path,
    help='Also write {"programs": [...]} to this file (atomically).',
)
@click.option("--verbose", "-v", is_flag=True, help="Print each failure's trace.")
def explore_cmd(
    strategies: list[str],
    programs: list[str],
    schedules: int,
    seconds: float,
    seed: int,
    bound: int,
    json_path: Path | None,
    verbose: bool,
) -> None:
    """Run the controlled scheduler on the built-in corpus of buggy and safe programs."""
    corpus = corpus_by_name()
    rows: list[dict[str, Any]] = []
    wrong = 0
    header = (
        f"{'program':<26} {'expected':<8} {'strategy':<10} {'memory':<6} {'verdict':<12} "
        f"{'schedules':>9} {'seconds':>8} {'preempt':>7}  schedule"
    )
    click.echo(header)
    for name in programs:
        prog = corpus[name]
        for strat in strategies:
            r: ExploreResult = explore(
                prog, strategy=strat, budget=Budget(schedules, seconds), seed=seed, bound=bound
            )
            pre = r.failure.preemptions if r.failure else r.max_preemptions
            sched = r.failure.schedule if r.failure else None
            ok = (r.verdict == "fail") if prog.expected == "bug" else (r.verdict == "pass")
            wrong += not ok
            rows.append(
                {
                    "name": prog.name,
                    "expected": prog.expected,
                    "strategy": r.strategy,
                    "memory": r.memory,
                    "verdict": r.verdict,
                    "schedules": r.schedules,
                    "seconds": round(r.seconds, 4),
                    "preemptions": pre,
                    "schedule": sched,
                    "distinct_traces": r.distinct_traces,
                    "steps_per_second": round(r.steps_per_second),
                    "as_expected": ok,
                }
            )
            mark = "" if ok else "  <-- unexpected"
            click.echo(
                f"{prog.name:<26} {prog.expected:<8} {r.strategy:<10} {r.memory:<6} "
                f"{r.verdict:<12} {r.schedules:>9} {r.seconds:>8.2f} {pre:>7}  {sched or '-'}{mark}"
            )
            if verbose and r.failure is not None:
                click.echo(r.failure.report())
    click.echo(f"\n{len(rows) - wrong} of {len(rows)} runs as expected")
    if json_path is not None:
        try:
            atomic_write_text(json_path, json.dumps({"programs": rows}, indent=2) + "\n")
        except OSError as e:
            raise _JsonWriteError(f"cannot write --json file {json_path}: {e.strerror}") from None
    sys.exit(1 if wrong else 0)


from aioctx_verify._report_cmd import report_cmd  # noqa: E402 - registered here, beside the other commands

main.add_command(report_cmd, name="report")

from aioctx_verify._run_cmd import run_cmd  # noqa: E402

main.add_command(run_cmd, name="run")

from aioctx_verify._mutants_cmd import mutants_cmd  # noqa: E402

main.add_command(mutants_cmd, name="mutants")

from aioctx_verify._replay_cmd import replay_cmd  # noqa: E402

main.add_command(replay_cmd, name="replay")

from aioctx_verify._mutate_cmd import mutate_cmd  # noqa: E402

main.add_command(mutate_cmd, name="mutate")

from aioctx_verify._prove_cmd import prove_cmd  # noqa: E402

main.add_command(prove_cmd, name="prove")


if __name__ == "__main__":
    main()
