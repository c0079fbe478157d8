"""``aioctx-verify report RESULT.json``: re-render the three reports from a result's JSON.

Exit status: 0 when the reports were rendered (whatever the verdicts), 2 for a usage or
input error: an unreadable file, invalid JSON, a schema or version mismatch, a corrupt or
foreign history, an unwritable output.  Each error is one line naming the problem and the
fix; nothing already written is lost (every file is replaced atomically, and a bad history
file is never touched).
"""

from __future__ import annotations

from pathlib import Path

import click

from aioctx_verify.reports import (
    CampaignResult,
    HistoryError,
    ReportWriteError,
    ResultFormatError,
    write_reports,
)

__all__ = ["report_cmd"]


class _ReportError(click.ClickException):
    exit_code = 2


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        why = "no such file"
    except IsADirectoryError:
        why = "it is a directory"
    except OSError as e:
        why = e.strerror or str(e)
    raise _ReportError(
        f"cannot read {path} ({why}); pass the report.json that a campaign wrote"
    )


@click.command(name="report")
@click.argument("result_json", metavar="RESULT.json", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    help="Directory for report.json, junit.xml and report.html (default: RESULT.json's).",
)
@click.option(
    "--history",
    type=click.Path(path_type=Path),
    help="History file (JSON Lines) to draw trends from and append this run to "
    "(a run already there is not added twice).",
)
def report_cmd(result_json: Path, out_dir: Path | None, history: Path | None) -> None:
    """Re-render report.json, junit.xml and report.html from a campaign's RESULT.json."""
    try:
        result = CampaignResult.from_json(_read(result_json), source=str(result_json))
    except ResultFormatError as e:
        raise _ReportError(str(e)) from None
    out = out_dir if out_dir is not None else result_json.parent
    try:
        paths = write_reports(result, out, history)
    except HistoryError as e:
        raise _ReportError(f"{e} (the reports in {out} were written without trends)") from None
    except ReportWriteError as e:
        raise _ReportError(str(e)) from None
    click.echo(f"report: {result.campaign}: {result.summary()}")
    click.echo(f"report: wrote {', '.join(str(p) for p in paths)}")
    if paths.history is not None:
        done = "appended this run to" if paths.appended else "this run was already in"
        click.echo(f"report: {done} history {paths.history}")
    if paths.trends is not None:
        for g in paths.trends.regressions:
            click.echo(f"report: regression: {g.message}")
