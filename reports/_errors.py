"""The reports' exceptions, named by whose mistake each one is.

Every message is one sentence that names the file or object, the rule broken, and the
remedy; the command line prints it as it is (``aioctx-verify report: error: <message>``).
"""

from __future__ import annotations

from pathlib import Path

from aioctx_verify.vocab import AioCtxError

__all__ = [
    "HistoryError",
    "InvalidResultError",
    "ReportError",
    "ReportWriteError",
    "ResultFormatError",
]


class ReportError(AioCtxError):
    """Root of the errors raised by :mod:`reports`."""


class InvalidResultError(ReportError, ValueError):
    """A result object was built with a value its field does not allow (the caller's bug)."""


class ResultFormatError(ReportError, ValueError):
    """A result document (JSON text or dict) is not a valid result of our schema version."""


class HistoryError(ReportError):
    """The history file is corrupt, foreign or of a newer version; it was left untouched.

    Attributes:
        written: the report files written before the history was found unreadable
            (``write_reports`` renders the reports first, so a bad history costs no result).
    """

    def __init__(self, message: str, written: tuple[Path, ...] = ()) -> None:
        super().__init__(message)
        self.written = written


class ReportWriteError(ReportError, OSError):
    """A report file could not be written; the previous file of that name is untouched."""
