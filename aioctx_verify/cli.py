"""The ``aioctx-verify`` console script (click).

Why a custom group: a command-line mistake (an unknown flag, an unwritable ``--json`` path)
should cost the user one line on stderr and exit status 2, not click's usage block or a
traceback.  :class:`_OneLineErrors` runs click in non-standalone mode and prints every
:class:`click.ClickException` as ``<command>: error: <message>``.

Commands:
    bench: :func:`stress.run_benchmarks`, printed as a table; ``--json`` also writes
        ``{"benchmarks": [...]}`` atomically.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from stress import BenchError, format_table, run_benchmarks, write_json

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


def _unwritable(path: Path) -> str | None:
    """Why ``path`` cannot be written atomically (a temporary file beside it), or None."""
    parent = path.parent
    if path.is_dir():
        return f"{path} is a directory"
    if not parent.is_dir():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            return f"cannot write {path}: cannot create directory {parent} ({e.strerror})"
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".probe")
    except OSError as e:
        return f"cannot write {path}: cannot create files in {parent} ({e.strerror})"
    os.close(fd)
    os.unlink(probe)
    return None


def _check_json_path(
    _ctx: click.Context, _param: click.Parameter, value: Path | None
) -> Path | None:
    if value is not None:
        problem = _unwritable(value)
        if problem is not None:
            raise click.BadParameter(problem)
    return value


@click.group(cls=_OneLineErrors, invoke_without_command=True)
@click.pass_context
def main(ctx: click.Context) -> None:
    """Verification suite for QEMU's AioContext/IOThread threading model."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


@main.command()
@click.option("--quick", is_flag=True, help="CI sizes: fewer items and samples, 3 repetitions.")
@click.option(
    "--json", "json_path", type=click.Path(path_type=Path), callback=_check_json_path,
    help='Also write {"benchmarks": [...]} to this file (atomically).',
)
@click.option(
    "--scale", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
    help="Multiply every size (e.g. 0.1 for a smoke run).",
)
@click.option(
    "--reps", type=click.IntRange(min=1), help="Repetitions (default: 5, 3 with --quick)."
)
def bench(quick: bool, json_path: Path | None, scale: float, reps: int | None) -> None:
    """Benchmark impl's hot paths, each against its peer in the same run.

    Prints name, ours, peer, unit, ratio (ours / peer), target and whether it is met;
    every figure is the median of the repetitions.
    """
    mode = "quick" if quick else "full"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    header = f"aioctx-verify bench: {mode}, scale {scale:g}, load average {load} at start"
    click.echo(header, err=True)
    try:
        results = run_benchmarks(
            quick=quick, scale=scale, reps=reps,
            progress=lambda line: click.echo(f"bench: {line}", err=True),
        )
    except BenchError as e:
        raise click.ClickException(f"benchmark failed: {e}") from None
    click.echo(f"{header}; medians of the repetitions\n")
    click.echo(format_table(results))
    if json_path is not None:
        try:
            write_json(results, json_path)
        except OSError as e:
            raise _JsonWriteError(f"cannot write --json file {json_path}: {e.strerror}") from None
        click.echo(f"bench: wrote {json_path}", err=True)


if __name__ == "__main__":
    main()
