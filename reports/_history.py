"""The history of earlier runs, and the trends and regressions drawn from it.

File format (``schema/history-v1.json``): JSON Lines.  Line 1 is a header naming the
format and its version, ``{"format": "aioctx-verify/history", "version": 1, ...}``; every
further line is one run's :class:`HistoryEntry` (time, seed, budget, verdict per property
and checker, kill rate, throughput).  People can ``tail`` it; tools can stream it.

Appending is append-only in effect and atomic in fact: the file is read and every line
validated, then the old bytes plus the new line are written to a temporary file that
replaces the old one (:func:`aioctx_verify.files.atomic_write_text`), under an advisory lock
(``.NAME.lock`` beside it) so two jobs sharing a history do not lose each other's entry.
A file that is not ours, is of a newer version, or has a corrupt line raises
:class:`HistoryError` and is never written.  Appending a run that is already there (same
start time, campaign and seed: a re-render) changes nothing.

Regressions (compared within one campaign name, against the latest earlier *complete* run):
a (property, checker) that passed and now fails; a lower kill rate; throughput more than
``throughput_tolerance`` below the median of the last five runs (one noisy run is not a
regression).
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, cast

from aioctx_verify.files import atomic_write_text

from ._errors import HistoryError, ResultFormatError
from ._json import parse_json
from ._result import CampaignBudget, CampaignResult, VerdictValue
from ._schema import SchemaViolation, load_schema, validate

if sys.platform != "win32":
    import fcntl

__all__ = [
    "HISTORY_FORMAT",
    "HISTORY_VERSION",
    "History",
    "HistoryEntry",
    "Regression",
    "Trends",
    "append_history",
    "compute_trends",
    "history_lock",
    "read_history",
]

HISTORY_FORMAT = "aioctx-verify/history"
HISTORY_VERSION = 1
_SCHEMA_FILE = f"history-v{HISTORY_VERSION}.json"
_REMEDY = "it was left untouched: repair it or move it aside, or pass another --history"


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One run, summarised for trends."""

    started_at: str  # ISO 8601, as in the result
    campaign: str
    seed: int
    budget: CampaignBudget
    tool_version: str
    complete: bool
    seconds: float
    verdicts: tuple[tuple[str, str, VerdictValue], ...]  # (property, checker, verdict)
    mutants: int | None
    killed: int | None
    kill_rate: float | None
    throughput: float | None  # scheduling steps per second

    @classmethod
    def from_result(cls, r: CampaignResult) -> HistoryEntry:
        km = r.kill_matrix
        return cls(
            started_at=r.started_at.isoformat(),
            campaign=r.campaign,
            seed=r.seed,
            budget=r.budget,
            tool_version=r.tool_version,
            complete=r.complete,
            seconds=r.seconds,
            verdicts=tuple((v.property, v.checker, v.verdict) for v in r.verdicts),
            mutants=None if km is None else len(km.mutants),
            killed=None if km is None else km.killed,
            kill_rate=r.kill_rate,
            throughput=r.throughput,
        )

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.started_at, self.campaign, self.seed)

    def verdict(self, prop: str, checker: str) -> VerdictValue | None:
        for p, c, v in self.verdicts:
            if p == prop and c == checker:
                return v
        return None

    def to_dict(self) -> dict[str, object]:
        nested: dict[str, dict[str, str]] = {}
        for p, c, v in self.verdicts:
            nested.setdefault(p, {})[c] = v
        b = self.budget
        return {
            "started_at": self.started_at,
            "campaign": self.campaign,
            "seed": self.seed,
            "budget": {"label": b.label, "schedules": b.schedules, "seconds": b.seconds},
            "tool_version": self.tool_version,
            "complete": self.complete,
            "seconds": self.seconds,
            "verdicts": nested,
            "mutants": self.mutants,
            "killed": self.killed,
            "kill_rate": self.kill_rate,
            "throughput": self.throughput,
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> HistoryEntry:
        """Build from a dict already validated against the entry schema."""
        b = cast(dict[str, object], d["budget"])
        nested = cast(dict[str, dict[str, VerdictValue]], d["verdicts"])

        def opt_int(v: object) -> int | None:
            return None if v is None else int(cast(float, v))

        return cls(
            started_at=cast(str, d["started_at"]),
            campaign=cast(str, d["campaign"]),
            seed=int(cast(float, d["seed"])),
            budget=CampaignBudget(
                cast(str, b["label"]), opt_int(b["schedules"]), cast("float | None", b["seconds"])
            ),
            tool_version=cast(str, d["tool_version"]),
            complete=cast(bool, d["complete"]),
            seconds=cast(float, d["seconds"]),
            verdicts=tuple((p, c, v) for p, cs in nested.items() for c, v in cs.items()),
            mutants=opt_int(d["mutants"]),
            killed=opt_int(d["killed"]),
            kill_rate=cast("float | None", d["kill_rate"]),
            throughput=cast("float | None", d["throughput"]),
        )

    def to_line(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False, ensure_ascii=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class History:
    """A history file as read: its entries (file order) and its exact text."""

    path: Path
    entries: tuple[HistoryEntry, ...]
    text: str  # "" for a file that does not exist yet (or is empty)


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def _header_line() -> str:
    now = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    return json.dumps({"format": HISTORY_FORMAT, "version": HISTORY_VERSION, "created_at": now})


def _schema_part(name: str) -> dict[str, object]:
    schema = load_schema(_SCHEMA_FILE)
    return {"$defs": schema["$defs"], "$ref": f"#/$defs/{name}"}


def read_history(path: Path) -> History:
    """Read and validate a history file; a missing or empty file is an empty history.

    Raises:
        HistoryError: unreadable, not ours, a newer version, or a corrupt line.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return History(path, (), "")
    except OSError as e:
        raise HistoryError(
            f"cannot read history file {path} ({e.strerror}); pass another --history"
        ) from None
    if not raw:
        return History(path, (), "")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HistoryError(
            f"history file {path} is not UTF-8 text, so not ours; {_REMEDY}"
        ) from None
    lines = text.splitlines()
    try:
        header = parse_json(lines[0], source=f"line 1 of {path}", what="history")
    except ResultFormatError:
        header = None
    if not isinstance(header, dict) or header.get("format") != HISTORY_FORMAT:
        what = "a file of another tool"
        with contextlib.suppress(ResultFormatError):
            if isinstance(parse_json(text, source=str(path), what="history"), (dict, list)):
                what = "a JSON file of another tool"
        raise HistoryError(
            f"history file {path} is not an aioctx-verify history ({what}: its first line "
            f'is not the {{"format": "{HISTORY_FORMAT}"}} header); {_REMEDY}'
        )
    version = header.get("version")
    if version != HISTORY_VERSION or isinstance(version, bool):
        newer = isinstance(version, int) and not isinstance(version, bool) and version > 1
        why = "newer than this aioctx-verify reads" if newer else "not a version we know"
        raise HistoryError(
            f"history file {path} has version {json.dumps(version)}, {why} "
            f"(version {HISTORY_VERSION}); {_REMEDY}"
        )
    try:
        validate(header, _schema_part("header"), path="header")
    except SchemaViolation as e:
        raise HistoryError(f"history file {path} has a corrupt header ({e}); {_REMEDY}") from None
    entries: list[HistoryEntry] = []
    entry_schema = _schema_part("entry")
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            data = json.loads(line, parse_constant=_no_constant)
        except (ValueError, RecursionError) as e:
            why = f"column {e.colno}: {e.msg}" if isinstance(e, json.JSONDecodeError) else str(e)
            raise HistoryError(
                f"history file {path} is corrupt: line {n} is not valid JSON ({why}); {_REMEDY}"
            ) from None
        try:
            validate(data, entry_schema, path="entry")
        except SchemaViolation as e:
            raise HistoryError(
                f"history file {path} is corrupt: line {n}: {e}; {_REMEDY}"
            ) from None
        entries.append(HistoryEntry.from_dict(cast(dict[str, object], data)))
    return History(path, tuple(entries), text)


@contextlib.contextmanager
def history_lock(path: Path) -> Iterator[None]:
    """An advisory lock (``.NAME.lock`` beside ``path``) held while reading and appending."""
    if sys.platform == "win32":  # pragma: no cover - no advisory lock there
        yield
        return
    lock = path.parent / f".{path.name}.lock"
    try:
        f = open(lock, "a+b")  # noqa: SIM115 - held for the block
    except OSError:
        yield  # a read-only directory: appending will report the real problem
        return
    with f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def append_history(history: History, entry: HistoryEntry) -> bool:
    """Append ``entry`` to the file ``history`` was read from (call under :func:`history_lock`).

    Returns False (writing nothing) when the run is already there.  Raises OSError when the
    file cannot be written; the old file is then untouched.
    """
    if any(e.key == entry.key for e in history.entries):
        return False
    text = history.text or _header_line() + "\n"
    if not text.endswith("\n"):
        text += "\n"
    history.path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(history.path, text + entry.to_line() + "\n")
    return True


@dataclass(frozen=True, slots=True)
class Regression:
    """Something that got worse since the baseline run."""

    kind: Literal["verdict", "kill_rate", "throughput"]
    subject: str  # "P2 / pct", "kill rate", "throughput"
    message: str  # one sentence with both figures and the run compared against


@dataclass(frozen=True, slots=True)
class Trends:
    """Runs of the same campaign, oldest first, ending with the current one."""

    entries: tuple[HistoryEntry, ...]
    regressions: tuple[Regression, ...]
    source: str  # the history file, for display

    def is_regressed(self, kind: str, subject: str = "") -> bool:
        return any(
            r.kind == kind and (not subject or r.subject == subject) for r in self.regressions
        )


def compute_trends(
    history: tuple[HistoryEntry, ...],
    current: HistoryEntry,
    *,
    source: str,
    throughput_tolerance: float = 0.2,
    window: int = 5,
    keep: int = 30,
) -> Trends:
    """Trends of ``current``'s campaign and its regressions against the runs before it."""
    same = [e for e in history if e.campaign == current.campaign]
    keys = [e.key for e in same]
    previous = same[: keys.index(current.key)] if current.key in keys else same
    entries = (*previous[-(keep - 1) :], current) if keep > 1 else (current,)
    complete = [e for e in previous if e.complete]
    base = complete[-1] if complete else (previous[-1] if previous else None)
    found: list[Regression] = []
    if base is not None:
        for p, c, v in current.verdicts:
            if v == "fail" and base.verdict(p, c) == "pass":
                found.append(
                    Regression(
                        "verdict",
                        f"{p} / {c}",
                        f"{p} / {c} passed in the run of {base.started_at} and fails now",
                    )
                )
        if (
            current.kill_rate is not None
            and base.kill_rate is not None
            and current.kill_rate < base.kill_rate - 1e-9
        ):
            found.append(
                Regression(
                    "kill_rate",
                    "kill rate",
                    f"kill rate fell from {base.killed}/{base.mutants} ({base.kill_rate:.0%}) "
                    f"in the run of {base.started_at} to {current.killed}/{current.mutants} "
                    f"({current.kill_rate:.0%})",
                )
            )
    recent = [e.throughput for e in previous[-window:] if e.throughput is not None]
    if recent and current.throughput is not None:
        median = statistics.median(recent)
        if current.throughput < (1 - throughput_tolerance) * median:
            found.append(
                Regression(
                    "throughput",
                    "throughput",
                    f"throughput fell to {current.throughput:,.0f} steps/s, "
                    f"{1 - current.throughput / median:.0%} below the median of the last "
                    f"{len(recent)} run(s) ({median:,.0f} steps/s)",
                )
            )
    return Trends(tuple(entries), tuple(found), source)
