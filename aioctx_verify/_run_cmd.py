"""``aioctx-verify run``: the main job, a verification campaign that writes the reports.

With no arguments it runs the ``smoke`` campaign (under a minute on two cores) and writes
``reports/out/report.html``, ``report.json`` and ``junit.xml``, appending the run to
``reports/out/history.jsonl`` so the page can draw trends.

Exit status:
    0: every checked property held and the correct impl raised no false alarm;
    1: a property failed (a counterexample is in the report) or a check raised a false
       alarm on the correct impl;
    2: usage or input error (bad flag, unreadable or foreign history, unwritable output),
       one line on stderr naming the problem and the fix, nothing overwritten;
    130: stopped by Ctrl-C (the reports are written and marked incomplete).

Ctrl-C once: the campaign stops after the unit of work under way (one program, workload,
model size or mutant cell) and writes its reports.  Ctrl-C twice: stops at once (the
reports are still written, from what finished; shards outstanding on Dask are cancelled).

Engines (:mod:`aioctx_verify.engine`): by default every shard runs in this process;
``--workers N`` starts a local Dask cluster of N worker processes (its dashboard address is
printed), ``--scheduler tcp://HOST:PORT`` or ``--scheduler FILE`` uses an existing one.
Both need the dask extra (``pip install 'aioctx-verify[dask]'``); without it they exit 2.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import click

from aioctx_verify._campaign import (
    BUDGETS,
    CHECKERS,
    PROPERTIES,
    RUN_STRATEGIES,
    CampaignPlan,
    plan_campaign,
    run_campaign,
)
from aioctx_verify._engine_cli import engine_options, open_engine, shard_progress
from aioctx_verify.reports import (
    CampaignResult,
    HistoryError,
    ReportWriteError,
    read_history,
    write_reports,
)

__all__ = ["EXIT_INTERRUPTED", "run_cmd"]

EXIT_INTERRUPTED = 130
_STRATEGIES = RUN_STRATEGIES


class _InputError(click.ClickException):
    exit_code = 2


def _csv(choices: tuple[str, ...], what: str) -> Callable[..., tuple[str, ...] | None]:
    def convert(
        _ctx: click.Context, _param: click.Parameter, value: str | None
    ) -> tuple[str, ...] | None:
        if value is None:
            return None
        items = [v.strip() for v in value.split(",") if v.strip()]
        if not items:
            raise click.BadParameter(f"give at least one {what}: {', '.join(choices)}")
        bad = [v for v in items if v not in choices]
        if bad:
            raise click.BadParameter(
                f"unknown {what} {', '.join(repr(b) for b in bad)}; "
                f"choose from {', '.join(choices)} (comma-separated)"
            )
        return tuple(dict.fromkeys(items))

    return convert


def _budget(_ctx: click.Context, _param: click.Parameter, value: str) -> str | float:
    if value in BUDGETS:
        return value
    try:
        secs = float(value.removesuffix("s"))
    except ValueError:
        secs = float("nan")
    if not (secs > 0 and secs != float("inf")):
        raise click.BadParameter(
            f"{value!r} is not a budget; use smoke, pr, nightly or a positive number of "
            "seconds (e.g. 90 or 90s)"
        )
    return secs


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise _InputError(f"--out {out} is a file, not a directory; pass a directory")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise _InputError(f"--out {out}: {probe} is a file; pass a directory")
    import os

    if not os.access(probe, os.W_OK | os.X_OK):
        raise _InputError(f"--out {out}: {probe} is not writable; pass a writable directory")


def _check_history(path: Path) -> None:
    """Read the history before spending the budget: a bad one is a usage error."""
    if path.exists() and path.is_dir():
        raise _InputError(f"--history {path} is a directory; pass a JSON Lines file")
    try:
        read_history(path)
    except HistoryError as e:
        raise _InputError(
            f"{e} (nothing was run; fix or move the file, or pass --no-history)"
        ) from None


class _StopFlag:
    """First SIGINT: ask the campaign to stop at the next unit; second: interrupt now."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self.requested = False
        self._echo = echo

    def __call__(self) -> bool:
        return self.requested

    def handler(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self._echo(
            "run: stopping after the work under way; the reports will be marked incomplete "
            "(Ctrl-C again to stop at once)"
        )


@contextmanager
def _sigint(flag: _StopFlag) -> Iterator[None]:
    try:
        old = signal.signal(signal.SIGINT, flag.handler)
    except ValueError:  # not the main thread (e.g. an embedding test runner)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


ProgressFn = Callable[[str, str, float], None]


@contextmanager
def _progress(plan: CampaignPlan, quiet: bool) -> Iterator[ProgressFn]:
    """Progress on stderr with an ETA: a rich bar on a terminal, plain lines otherwise."""
    order = list(plan.steps)
    before = {s: sum(plan.share(x) for x in order[: order.index(s)]) for s in order}
    t0 = time.monotonic()
    if quiet:
        yield lambda step, what, frac: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    if not console.is_terminal:
        last = [""]

        def plain(step: str, what: str, frac: float) -> None:
            if what not in ("starting", "done") or f"{step}:{what}" == last[0]:
                return
            last[0] = f"{step}:{what}"
            # ETA: the budget of the steps still to run (steps often end early, so this
            # is an upper bound rather than an extrapolation).
            done = before[step] + plan.share(step) * frac
            spent = time.monotonic() - t0
            eta = max(0.0, plan.seconds - done)
            click.echo(
                f"[{spent:6.1f}s] {step}: {what}  (ETA <= {eta:.0f}s; budget {plan.seconds:g}s)",
                err=True,
            )

        yield plain
        return
    columns: list[Any] = [
        TextColumn("[bold]{task.fields[step]:<10}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.description}"),
    ]
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("", total=plan.seconds, step="")

        def live(step: str, what: str, frac: float) -> None:
            done = before[step] + plan.share(step) * max(0.0, min(1.0, frac))
            bar.update(task, completed=done, step=step, description=what[:60])

        yield live
        bar.update(task, completed=plan.seconds)


def _exit_status(result: CampaignResult) -> int:
    failed = any(v.verdict == "fail" for v in result.verdicts)
    false_alarms = result.kill_matrix.false_alarms if result.kill_matrix is not None else 0
    if failed or false_alarms:
        return 1
    return 0 if result.complete else EXIT_INTERRUPTED


@click.command(name="run")
@click.option(
    "--budget",
    default="smoke",
    show_default=True,
    callback=_budget,
    help="smoke (<1 min), pr (~7 min on 2 cores), nightly (hours) or seconds for the "
    "whole campaign.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Campaign seed.")
@click.option(
    "--properties",
    callback=_csv(PROPERTIES, "property"),
    help=f"Comma-separated subset of {','.join(PROPERTIES)} (default: all).",
)
@click.option(
    "--checkers",
    callback=_csv(CHECKERS, "checker"),
    help=f"Comma-separated subset of {','.join(CHECKERS)} (default: all).",
)
@click.option(
    "--strategy",
    "strategies",
    callback=_csv(_STRATEGIES, "strategy"),
    help="Controlled-scheduler strategies, comma-separated subset of "
    f"{','.join(RUN_STRATEGIES)} (random, pct, dfs and dpor also explore the corpus; the "
    "chosen ones explore generated programs, by default all but dpor).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("reports/out"),
    show_default=True,
    help="Directory for report.html, report.json and junit.xml.",
)
@click.option(
    "--history",
    type=click.Path(path_type=Path),
    help="History file (JSON Lines) for trends; default OUT/history.jsonl.",
)
@click.option("--no-history", is_flag=True, help="Neither read nor append a history.")
@click.option(
    "--jobs",
    type=click.IntRange(min=1, max=64),
    help="The parallelism a budget in seconds is sized for (default: CPUs, at most 4); "
    "more than 1 also runs the shards on that many local Dask workers (--workers N).",
)
@engine_options
@click.option(
    "--by-work",
    is_flag=True,
    help="Cut every step but stress at its work (states, schedules, programs, examples) "
    "rather than its share of the seconds, which become a safety cap per shard: the same "
    "seed gives the same report with any --workers, real-thread stress aside (the kill "
    "matrix is always cut at its work).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def run_cmd(
    budget: str | float,
    seed: int,
    properties: tuple[str, ...] | None,
    checkers: tuple[str, ...] | None,
    strategies: tuple[str, ...] | None,
    out_dir: Path,
    history: Path | None,
    no_history: bool,
    jobs: int | None,
    workers: int | None,
    scheduler: str | None,
    by_work: bool,
    quiet: bool,
) -> int:
    """Run a verification campaign and write report.html, report.json and junit.xml."""
    if no_history and history is not None:
        raise click.UsageError("--history and --no-history contradict each other; pick one")
    try:
        plan = plan_campaign(
            budget,
            seed=seed,
            checkers=checkers,
            properties=properties,
            strategies=strategies,
            jobs=jobs,
            by_work=by_work,
        )
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    _check_out_dir(out_dir)
    hist = None if no_history else (history or out_dir / "history.jsonl")
    if hist is not None:
        _check_history(hist)

    def say(text: str) -> None:
        click.echo(text, err=True)

    flag = _StopFlag(say)
    engine = open_engine(workers, scheduler, jobs=jobs, say=None if quiet else say)
    if not quiet:
        say(
            f"run: {plan.label} campaign, seed {plan.seed}, steps {', '.join(plan.steps)}; "
            f"reports in {out_dir}; shards on {engine.describe()}"
        )
        engine.on_progress = shard_progress(say)
    try:
        with _sigint(flag), _progress(plan, quiet) as progress:
            result = run_campaign(plan, progress=progress, should_stop=flag, engine=engine)
    finally:
        engine.close()
    try:
        paths = write_reports(result, out_dir, hist)
    except HistoryError as e:  # raced with another writer: reports are written
        raise _InputError(f"{e} (the reports in {out_dir} were written without trends)") from None
    except ReportWriteError as e:
        raise _InputError(str(e)) from None
    status = _exit_status(result)
    click.echo(f"run: {result.summary()} ({result.seconds:.1f}s)")
    km = result.kill_matrix
    if km is not None:
        survived = [m.name for m in km.mutants if not m.killed]
        click.echo(
            f"run: mutants killed {km.killed}/{len(km.mutants)}, false alarms {km.false_alarms}"
            + (f"; survived: {', '.join(survived)}" if survived else "")
        )
    for v in result.verdicts:
        if v.verdict == "fail":
            click.echo(f"run: FAIL {v.property} under {v.checker}: {v.detail}")
    if paths.trends is not None:
        for g in paths.trends.regressions:
            click.echo(f"run: regression: {g.message}")
    if not result.complete:
        click.echo("run: the campaign was stopped early; the report is marked incomplete")
    click.echo(f"run: wrote {', '.join(str(p) for p in paths)}")
    return status
