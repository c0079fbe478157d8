"""Writing the three reports (and appending to the history) in one call.

Order: the history is read first (under its lock), so trends can be drawn; then
``report.json``, ``junit.xml`` and ``report.html`` are each replaced atomically; the
history is appended last, so it never records a run whose reports were not written.  A
corrupt history does not cost the run its reports: they are written (the page says the
history could not be read) and then :class:`HistoryError` is raised, with the history file
untouched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aioctx_verify.files import atomic_write_text

from ._errors import HistoryError, ReportWriteError
from ._history import (
    HistoryEntry,
    Trends,
    append_history,
    compute_trends,
    history_lock,
    read_history,
)
from ._html import render_html
from ._junit import render_junit
from ._result import CampaignResult

__all__ = ["JSON_NAME", "HTML_NAME", "JUNIT_NAME", "ReportPaths", "write_reports"]

JSON_NAME = "report.json"
JUNIT_NAME = "junit.xml"
HTML_NAME = "report.html"


@dataclass(frozen=True, slots=True)
class ReportPaths:
    """Where the reports went; ``history`` is None without a history file, and
    ``appended`` says whether this call added the run to it (False for a re-render)."""

    json: Path
    junit: Path
    html: Path
    history: Path | None = None
    appended: bool = False
    trends: Trends | None = None

    def __iter__(self) -> Iterator[Path]:
        yield from (self.json, self.junit, self.html)


def _write(path: Path, text: str) -> None:
    try:
        atomic_write_text(path, text)
    except OSError as e:
        reason = e.strerror or str(e)
        raise ReportWriteError(
            f"cannot write {path} ({reason}); the previous {path.name} is untouched"
        ) from None


def write_reports(
    result: CampaignResult,
    out_dir: Path | str,
    history_path: Path | str | None = None,
    *,
    throughput_tolerance: float = 0.2,
) -> ReportPaths:
    """Write ``report.json``, ``junit.xml`` and ``report.html`` into ``out_dir`` atomically
    and append the run to ``history_path`` (JSON Lines) when given.

    Raises:
        ReportWriteError: a file could not be written (that file is unchanged; files
            written before it are complete).
        HistoryError: the history is corrupt, foreign or newer; the reports were written
            (see ``HistoryError.written``) and the history file was not touched.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReportWriteError(
            f"cannot create report directory {out} ({e.strerror}); pass another --out"
        ) from None
    paths = ReportPaths(out / JSON_NAME, out / JUNIT_NAME, out / HTML_NAME)
    hist = Path(history_path) if history_path is not None else None
    lock = history_lock(hist) if hist is not None else contextlib.nullcontext()
    with lock:
        trends: Trends | None = None
        problem: HistoryError | None = None
        entry = HistoryEntry.from_result(result)
        history = None
        if hist is not None:
            try:
                history = read_history(hist)
            except HistoryError as e:
                problem = e
            else:
                trends = compute_trends(
                    history.entries,
                    entry,
                    source=str(hist),
                    throughput_tolerance=throughput_tolerance,
                )
        _write(paths.json, result.to_json())
        _write(paths.junit, render_junit(result))
        _write(
            paths.html,
            render_html(result, trends, history_error=None if problem is None else str(problem)),
        )
        if problem is not None:
            raise HistoryError(str(problem), written=tuple(paths))
        appended = False
        if history is not None:
            try:
                appended = append_history(history, entry)
            except OSError as e:
                raise ReportWriteError(
                    f"cannot append to history file {history.path} ({e.strerror}); "
                    "the history is untouched and the reports were written"
                ) from None
    return ReportPaths(paths.json, paths.junit, paths.html, hist, appended, trends)
