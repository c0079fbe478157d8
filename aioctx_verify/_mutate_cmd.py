"""``aioctx-verify mutate``: an honest mutation score from mechanically generated mutants.

The kill matrix (``aioctx-verify mutants``) scores the checkers against a hand-written
catalogue of QEMU bugs; this command scores them against every mutant that concurrency
mutation operators make on impl's source (:mod:`aioctx_verify.stress.mutation._operators`):
each mutant is run through the kill matrix's checkers (the registry's, cheapest first,
stopping at the first kill), and the score is killed / (run - equivalent), with every
survivor listed.  A budget too small for every mutant runs a deterministic sample (by
``--seed``) and says which fraction.

Exit status: 0 when the campaign ran and no checker raised a false alarm on the unmutated
impl (survivors are findings, not failures); 1 for a false alarm; 2 for a usage error (an
unknown operator, checker, mutant or budget, an unwritable ``--json`` path), one line on
stderr; 130 when stopped by Ctrl-C (the first stops after the mutant under way and still
prints and writes the partial result, marked stopped).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from aioctx_verify._mutants_cmd import _check_names as _check
from aioctx_verify._mutants_cmd import _names
from aioctx_verify._paths import unwritable

__all__ = ["mutate_cmd"]


class _MutateJsonError(click.ClickException):
    exit_code = 2


def _list(operators: list[str] | None) -> None:
    from aioctx_verify.stress.mutation import OPERATORS, generate_mutants

    ms = generate_mutants(operators)
    for m in ms:
        click.echo(f"{m.name}  [{m.function}]  {m.before}  ->  {m.after}")
    click.echo("")
    for op in operators or list(OPERATORS):
        n = sum(1 for m in ms if m.operator == op)
        click.echo(f"{op:<14} {n:>4}  {OPERATORS[op]}")
    click.echo(f"{'total':<14} {len(ms):>4}")


@click.command(name="mutate")
@click.option(
    "--budget",
    default="smoke",
    show_default=True,
    metavar="smoke|pr|nightly|SECONDS",
    help="A preset (the kill matrix's per-cell work; samples 60 / 200 / all mutants), or a "
    "wall-time budget in seconds for the whole campaign.",
)
@click.option(
    "--operators",
    metavar="A,B",
    help="Comma-separated operators (default: every one; see --list).",
)
@click.option(
    "--checkers", metavar="A,B", help="Comma-separated checkers (default: the registry's)."
)
@click.option(
    "--mutants",
    "mutant_names",
    metavar="NAME,NAME",
    help="Exactly these generated mutants (operator:file:line:col:variant), no sampling.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling and checker seed.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help="Run at most N mutants (a deterministic sample by --seed; default: the budget's).",
)
@click.option("--all", "run_all", is_flag=True, help="Run every mutant (no sampling).")
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path),
    help="Also write the result as JSON to this file (atomically).",
)
@click.option(
    "--no-control",
    is_flag=True,
    help="Skip the false-alarm control runs on the unmutated impl.",
)
@click.option("--list", "list_only", is_flag=True, help="List the mutants and exit.")
def mutate_cmd(
    budget: str,
    operators: str | None,
    checkers: str | None,
    mutant_names: str | None,
    seed: int,
    limit: int | None,
    run_all: bool,
    json_path: Path | None,
    no_control: bool,
    list_only: bool,
) -> None:
    """Mutation score from generated concurrency mutants of impl (ConMAn-style operators).

    Prints the mutants per operator, the score killed / (run - equivalent) and every
    survivor with its source change.
    """
    from aioctx_verify.stress.mutation import OPERATORS, available_checkers

    ops = _names(operators)
    _check("operator", "--operators", ops, list(OPERATORS))
    if list_only:
        _list(ops)
        return
    from aioctx_verify.files import atomic_write_text
    from aioctx_verify.stress.mutation import (
        generate_mutants,
        resolve_budget,
        run_mutation,
        stop_on_sigint,
    )

    chosen_checkers = _names(checkers)
    _check("checker", "--checkers", chosen_checkers, available_checkers())
    names = _names(mutant_names)
    if names is not None:
        if not names:
            raise click.BadParameter("no mutant named", param_hint="--mutants")
        known = {m.name for m in generate_mutants()}
        bad = [n for n in names if n not in known]
        if bad:
            raise click.BadParameter(
                f"no such generated mutant(s) {', '.join(bad)}; see aioctx-verify mutate --list",
                param_hint="--mutants",
            )
    if run_all and limit is not None:
        raise click.BadParameter("give --limit or --all, not both", param_hint="--all")
    try:
        resolve_budget(budget)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--budget") from None
    if json_path is not None:
        problem = unwritable(json_path)
        if problem is not None:
            raise click.BadParameter(problem, param_hint="--json")
    click.echo(f"mutate: budget {budget}, seed {seed}", err=True)
    with stop_on_sigint() as stopped:
        try:
            report = run_mutation(
                budget,
                seed=seed,
                operators=None if names else ops,
                limit=None if run_all else (limit if limit is not None else -1),
                checkers=chosen_checkers,
                names=names,
                control=not no_control,
                progress=lambda line: click.echo(f"mutate: {line}", err=True),
                should_stop=stopped,
            )
        except ValueError as e:  # checked above; keep it one line anyway
            raise click.UsageError(str(e)) from None
        interrupted = stopped()
    click.echo(report.format())
    if json_path is not None:
        try:
            atomic_write_text(json_path, json.dumps(report.to_json(), indent=1) + "\n")
        except OSError as e:
            raise _MutateJsonError(
                f"cannot write --json file {json_path}: {e.strerror}"
            ) from None
        click.echo(f"mutate: wrote {json_path}", err=True)
    if interrupted:
        sys.exit(130)
    sys.exit(1 if report.false_alarms else 0)
