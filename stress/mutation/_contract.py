"""The checker contract: what every kill-matrix checker is given and what it returns.

A *checker* is a function ``(mutant, seed, budget) -> CheckOutcome``: it runs under
``with mutant.apply():`` and says whether something failed, through which property, and
what noticed it.  The model, the controlled explorers, the real-thread runs, the stateful
searches and the real-thread stress runner all return the one :class:`CheckOutcome`; the
kill matrix reads it as it is.

The budget is a :class:`CellBudget`: an amount of *work* (the checker maps it to its own
unit: schedules, Hypothesis examples, trials, runs, model states) and a wall-clock
``seconds`` cap that is only a safety net.  A run that finds a failure is a kill whenever it
finds it; a run that finds none *survived* only if it did all of its work; when the cap
runs out first the outcome is ``inconclusive`` (the machine was too slow to tell), never a
pass and never a failure.  So no verdict depends on the machine's speed.

Failures carry their property as data, set where the violation is detected:

* a runtime monitor records a :class:`~aioctx_verify.properties.Violation` (its ``prop``);
* a check of our own raises a :class:`PropertyFailure` (a probe's outcome check, a lockstep
  mismatch, a read of freed memory) with its ``prop``;
* impl refuses a call it would only refuse when a rule broke: the exception's *type* says
  which rule (:data:`USAGE_ERRORS`), a :class:`~aioctx_verify.impl.CallbackError` is read
  through to the exception it wraps.

Nothing here parses message text.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal, Protocol

from aioctx_verify.impl import (
    BHDeletedError,
    CallbackError,
    ContextNotHeldError,
    LockNotHeldError,
    NotOwnerError,
)
from aioctx_verify.properties import PropertyViolation
from aioctx_verify.vocab import PROPERTY_NAMES, PropertyName

__all__ = [
    "USAGE_ERRORS",
    "WORK_UNIT_SECONDS",
    "CellBudget",
    "CheckOutcome",
    "Inconclusive",
    "MutantLike",
    "PropertyFailure",
    "Verdict",
    "Via",
    "as_property",
    "classify_exception",
    "property_of",
]

#: How one checker run against one mutant (or the unmutated impl) ended: ``killed`` (it
#: reported a failure), ``survived`` (it ran and found nothing), ``n/a`` (nothing to run
#: for this mutant), ``error`` (the checker itself raised; not evidence either way),
#: ``inconclusive`` (a wall-clock bound ran out without structural evidence of a failure,
#: or the cell's seconds cap ran out before its work was done: the machine was too slow to
#: tell; never a failure, never a pass).  ``survived`` means the whole work was done.
Verdict = Literal["killed", "survived", "n/a", "error", "inconclusive"]

#: What noticed a failure: a runtime ``monitor``; a ``probe check`` (an outcome check of
#: a probe, a stateful oracle, a FORBIDDEN outcome, a read of freed memory); the
#: ``scheduler`` (deadlock, lost wake-up, a stall seen on real threads); a ``watchdog`` (a
#: run that did not end); an ``impl error`` (impl refused a call it only refuses when a
#: rule broke); any other ``exception``; the ``model``; a ``lockstep`` mismatch against the
#: sequential reference.
Via = Literal[
    "monitor",
    "probe check",
    "scheduler",
    "watchdog",
    "impl error",
    "exception",
    "model",
    "lockstep",
    "generated",
    "races",
]


#: Nominal wall time of one work unit at idle on the reference machine (2 cores, CPython
#: 3.11): about one controlled schedule of a probe.  It only turns seconds into work (a
#: numeric ``--budget SECONDS``) and sizes wall-clock bounds that decide no verdict (how long
#: a kill may shrink its counterexample, the default safety cap); whether a cell survived
#: never depends on it.
WORK_UNIT_SECONDS = 0.005


@dataclass(frozen=True, slots=True)
class CellBudget:
    """What one checker run (a kill-matrix cell or a control run) may spend.

    Attributes:
        work: work units (see :data:`WORK_UNIT_SECONDS`); each checker maps them to its
            own unit with :meth:`count` (the explorers: one schedule per unit; the others
            document their cost in units).  None: no work budget, only ``seconds`` (a
            time-budgeted run, what a caller passing a bare number of seconds gets: it
            survives when its time is up).
        seconds: with ``work``, a safety cap: a run whose cap runs out before its work is
            done is ``inconclusive``, never ``survived``; without ``work``, the budget.
    """

    work: int | None
    seconds: float

    def __post_init__(self) -> None:
        if self.work is not None and self.work < 1:
            raise ValueError(f"a cell's work must be at least 1 unit, got {self.work}")
        if not (self.seconds > 0 and math.isfinite(self.seconds)):
            raise ValueError(f"a cell's seconds must be positive and finite, got {self.seconds}")

    @classmethod
    def of(cls, budget: float | CellBudget) -> CellBudget:
        """``budget`` as a :class:`CellBudget` (a bare number: seconds, no work budget)."""
        return budget if isinstance(budget, CellBudget) else cls(None, float(budget))

    @classmethod
    def for_work(cls, work: int, *, cap_factor: float = 10.0, min_cap: float = 5.0) -> CellBudget:
        """``work`` units with the default safety cap: ``cap_factor`` times their nominal
        time (:data:`WORK_UNIT_SECONDS`), at least ``min_cap`` seconds."""
        return cls(work, max(min_cap, cap_factor * work * WORK_UNIT_SECONDS))

    @property
    def work_bound(self) -> bool:
        """The run is budgeted by work (its seconds are only a cap)."""
        return self.work is not None

    @property
    def nominal_seconds(self) -> float:
        """About how long the work takes at idle (the seconds when there is no work
        budget): for bounds that decide no verdict, such as shrinking a kill's
        counterexample."""
        return self.seconds if self.work is None else self.work * WORK_UNIT_SECONDS

    def count(self, cost: float) -> int | None:
        """How many items costing ``cost`` work units each the work pays for (at least
        one); None without a work budget."""
        if self.work is None:
            return None
        return max(1, int(self.work / cost))


class MutantLike(Protocol):
    """What a checker needs of a mutant (:class:`~aioctx_verify.stress.mutation.Mutant`
    is one; a test may pass any object with these two members)."""

    @property
    def name(self) -> str: ...

    def apply(self) -> AbstractContextManager[object]: ...


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """One checker against one mutant (or against the unmutated impl).

    Build one with :meth:`kill`, :meth:`survived`, :meth:`not_applicable`,
    :meth:`inconclusive` or :meth:`error`.

    Attributes:
        verdict: see :data:`Verdict`.
        seconds: wall time until the failure was found (the budget spent if none).
        detail: one line: what failed, where, and how to replay it (or what ran).
        killed_by_property: the property of the first violation; None when nothing failed
            or the failure names no property.
        via: what noticed the failure (None when nothing failed).
        counterexample_steps: size of the (shrunk) counterexample: scheduling steps for the
            explorers, actions for the model, ops or rule steps for the stateful checkers,
            trace events for real-thread stress; None if none.
        schedule: a schedule string that replays the failure on the controlled platform,
            when the checker has one.
    """

    verdict: Verdict
    seconds: float
    detail: str
    killed_by_property: PropertyName | None = None
    via: Via | None = None
    counterexample_steps: int | None = None
    schedule: str | None = None

    def __post_init__(self) -> None:
        if self.verdict != "killed" and (
            self.killed_by_property is not None or self.via is not None
        ):
            raise ValueError(
                f"a {self.verdict} CheckOutcome names a property or a via; only a kill does"
            )
        if self.verdict == "killed" and self.via is None:
            raise ValueError("a killed CheckOutcome must say what noticed the failure (via)")

    @property
    def killed(self) -> bool:
        """The checker reported a failure (on the unmutated impl: a false alarm)."""
        return self.verdict == "killed"

    @property
    def is_inconclusive(self) -> bool:
        """A bound ran out without evidence either way (e.g. the machine was too slow)."""
        return self.verdict == "inconclusive"

    @property
    def applicable(self) -> bool:
        """The checker ran and answered (neither ``n/a`` nor ``error``)."""
        return self.verdict in ("killed", "survived")

    @classmethod
    def kill(
        cls,
        seconds: float,
        detail: str,
        prop: PropertyName | None,
        via: Via,
        *,
        steps: int | None = None,
        schedule: str | None = None,
    ) -> CheckOutcome:
        return cls("killed", seconds, detail, prop, via, steps, schedule)

    @classmethod
    def survived(cls, seconds: float, detail: str) -> CheckOutcome:
        return cls("survived", seconds, detail)

    @classmethod
    def not_applicable(cls, detail: str, seconds: float = 0.0) -> CheckOutcome:
        return cls("n/a", seconds, detail)

    @classmethod
    def inconclusive(cls, seconds: float, detail: str) -> CheckOutcome:
        return cls("inconclusive", seconds, detail)

    @classmethod
    def error(cls, seconds: float, detail: str) -> CheckOutcome:
        return cls("error", seconds, detail)


class Inconclusive(Exception):
    """A wall-clock bound ran out on real threads without structural evidence of a failure.

    Raised by a real-thread check instead of a LIVE failure when the system was not seen
    stuck (no poller asleep with work due, no free lock with queued waiters): the machine
    may just have been slow.  Checkers turn it into :meth:`CheckOutcome.inconclusive`.
    """


class PropertyFailure(AssertionError):
    """A failure detected by a check of our own, which knows the property it witnesses.

    Args:
        prop: the property, or None when the check bears on none of them.
        message: one sentence: what was observed.
    """

    def __init__(self, prop: PropertyName | None, message: str) -> None:
        super().__init__(message)
        self.prop = prop


#: impl errors that a client using the API correctly only gets when a rule broke, most
#: specific first: a context used by a thread that does not hold it (P3: only the holder or
#: the home thread runs its loop); a release refused by the lock (P1: depth counts and
#: the owner); a deleted BH used again (P2).
USAGE_ERRORS: tuple[tuple[type[BaseException], PropertyName], ...] = (
    (ContextNotHeldError, "P3"),
    (NotOwnerError, "P1"),
    (LockNotHeldError, "P1"),
    (BHDeletedError, "P2"),
)


def classify_exception(exc: BaseException) -> tuple[PropertyName | None, Via]:
    """The property an exception witnesses and what kind of check raised it.

    A :class:`~aioctx_verify.impl.CallbackError` is classified by the exception it wraps.
    """
    e: BaseException | None = exc
    for _ in range(8):  # a callback error wraps one exception; nesting is shallow
        if e is None:
            break
        if isinstance(e, PropertyFailure):
            return e.prop, "probe check"
        if isinstance(e, PropertyViolation):
            return (e.violations[0].prop if e.violations else None), "monitor"
        for kind, prop in USAGE_ERRORS:
            if isinstance(e, kind):
                return prop, "impl error"
        e = e.exception if isinstance(e, CallbackError) else None
    return None, "exception"


def property_of(exc: BaseException) -> PropertyName | None:
    """The property an exception witnesses (see :func:`classify_exception`), or None."""
    return classify_exception(exc)[0]


def as_property(name: str | None) -> PropertyName | None:
    """``name`` as a :data:`~aioctx_verify.vocab.PropertyName` when it is one (a value from
    a source typed ``str``, e.g. the model's violation), else None."""
    for p in PROPERTY_NAMES:
        if name == p:
            return p
    return None
