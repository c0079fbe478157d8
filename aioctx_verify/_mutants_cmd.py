"""``aioctx-verify mutants``: the kill matrix (:func:`stress.mutation._matrix.kill_matrix`).

Runs every checker against every mutant of the catalogue (historical QEMU bugs and seeded
rule breaks, :mod:`stress.mutation._catalogue`) and against the unmutated impl (the
false-alarm pass), and prints the matrix as a table.

Every cell is budgeted by *work* (schedules, Hypothesis examples, real-thread runs, model
states: each checker maps the cell's work units to its own), so the verdicts are the same on
a fast machine and on a loaded one; the seconds are only a safety cap.  A cell whose cap
runs out before its work is done is *inconclusive* (``inc`` in the table, ``"verdict":
"inconclusive"`` in the JSON): neither a kill nor a survival, and not a failure.

Cells run as shards (:mod:`aioctx_verify.engine`): in this process by default, on a local
Dask cluster with ``--workers N`` (or ``--jobs N``, N > 1), on an existing one with
``--scheduler``; the matrix is the same whichever ran it.

Exit status: 0 when no chosen mutant survived (each was killed by some checker, or is
*undecided*: not killed, and some cell's cap ran out before its work was done) and the
unmutated impl raised no false alarm; 1 otherwise; 2 for a usage error (an unknown budget,
checker or mutant name, an unwritable ``--json`` path), reported as one line on stderr.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from aioctx_verify._engine_cli import engine_options, open_engine
from aioctx_verify._paths import unwritable

__all__ = ["mutants_cmd"]


class _MutantsJsonError(click.ClickException):
    exit_code = 2


def _names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _check_names(
    what: str, param: str, chosen: list[str] | None, known: list[str]
) -> list[str] | None:
    if chosen is None:
        return None
    if not chosen:
        raise click.BadParameter(f"no {what} named; known: {', '.join(known)}", param_hint=param)
    bad = [n for n in chosen if n not in known]
    if bad:
        raise click.BadParameter(
            f"unknown {what}(s) {', '.join(bad)}; known: {', '.join(known)}", param_hint=param
        )
    return chosen


def _list_catalogue() -> None:
    from aioctx_verify.stress.mutation import CATALOGUE

    width = max(len(m.name) for m in CATALOGUE)
    click.echo(f"{'mutant':<{width}}  prop  source      commit / description")
    for m in CATALOGUE:
        click.echo(f"{m.name:<{width}}  {m.property or '-':<4}  {m.source:<10}  {m.qemu_commit}")
        click.echo(f"{'':<{width + 20}}{m.description}")
    click.echo(f"\n{len(CATALOGUE)} mutants")


@click.command(name="mutants")
@click.option(
    "--budget",
    default="pr",
    show_default=True,
    metavar="smoke|pr|nightly|SECONDS",
    help=(
        "A preset (work per cell: smoke 120 units, pr 500, nightly 6000), or seconds for "
        "the whole matrix, turned into work per cell at a fixed nominal 5 ms a unit."
    ),
)
@click.option("--seed", type=int, default=0, show_default=True, help="Base seed.")
@click.option(
    "--checkers", metavar="A,B", help="Comma-separated checker names (default: every one)."
)
@click.option(
    "--mutants",
    "mutant_names",
    metavar="A,B",
    help="Comma-separated mutant names (default: the whole catalogue; see --list).",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="The parallelism a budget in seconds is sized for; more than 1 also runs the "
    "cells on that many local Dask workers (--workers N).",
)
@engine_options
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path),
    help="Also write the matrix as JSON to this file (atomically).",
)
@click.option("--list", "list_only", is_flag=True, help="Print the catalogue and exit.")
def mutants_cmd(
    budget: str,
    seed: int,
    checkers: str | None,
    mutant_names: str | None,
    jobs: int,
    workers: int | None,
    scheduler: str | None,
    json_path: Path | None,
    list_only: bool,
) -> None:
    """Kill matrix: which checker kills which mutant (re-created QEMU bug), how fast.

    Prints mutant x checker (seconds to kill, '-' survived, 'inc' inconclusive: the
    cell's seconds cap ran out before its work was done, 'n/a' nothing to run), the
    properties through which each mutant died, and the false alarms of the control runs.
    """
    if list_only:
        _list_catalogue()
        return
    from aioctx_verify.files import atomic_write_text
    from aioctx_verify.stress.mutation import (
        CATALOGUE,
        available_checkers,
        kill_matrix,
        resolve_budget,
    )

    chosen_checkers = _check_names("checker", "--checkers", _names(checkers), available_checkers())
    chosen_mutants = _check_names(
        "mutant", "--mutants", _names(mutant_names), [m.name for m in CATALOGUE]
    )
    try:
        resolved = resolve_budget(
            budget,
            mutants=len(chosen_mutants) if chosen_mutants is not None else len(CATALOGUE),
            checkers=(
                len(chosen_checkers) if chosen_checkers is not None
                else len(available_checkers())
            ),
            jobs=jobs,
        )
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--budget") from None
    if json_path is not None:
        problem = unwritable(json_path)
        if problem is not None:
            raise click.BadParameter(problem, param_hint="--json")
    t0 = time.perf_counter()

    def say(text: str) -> None:
        click.echo(text, err=True)

    engine = open_engine(workers, scheduler, jobs=jobs, say=say)
    say(
        f"mutants: budget {budget} ({resolved.cell_work} work units a cell, cap "
        f"{resolved.cell_seconds:g} s), seed {seed}, cells on {engine.describe()}"
    )
    try:
        km = kill_matrix(
            resolved,
            seed,
            chosen_checkers,
            mutants=chosen_mutants,
            jobs=jobs,
            progress=lambda line: say(f"mutants: {line}"),
            engine=engine,
        )
    except ValueError as e:  # names and budget were checked above; keep it one line anyway
        raise click.UsageError(str(e)) from None
    finally:
        engine.close()
    click.echo(km.format_table())
    if km.shards is not None:
        for note in km.shards.notes():
            say(f"mutants: {note}")
    for err in km.errors():
        click.echo(f"checker error: {err}", err=True)
    if json_path is not None:
        try:
            atomic_write_text(json_path, json.dumps(km.to_json(), indent=1) + "\n")
        except OSError as e:
            raise _MutantsJsonError(
                f"cannot write --json file {json_path}: {e.strerror}"
            ) from None
        click.echo(f"mutants: wrote {json_path}", err=True)
    click.echo(f"mutants: {time.perf_counter() - t0:.1f} s wall", err=True)
    sys.exit(0 if km.ok else 1)
