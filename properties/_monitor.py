"""The shared machinery of runtime monitors: a violation record, the base class, and a
:class:`MonitorSet` that listens on a platform's trace hook.

A monitor consumes :class:`~aioctx_verify.vocab.TraceEvent` values in the order impl emits
them (one listener, serialised by a lock, so it is safe on real threads too) and *records*
violations rather than raising: an exception thrown from inside impl would be caught and
re-labelled by impl's own error handling.  Checkers read :attr:`MonitorSet.violations`
after (or during) a run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from aioctx_verify.vocab import AioCtxError, PropertyName, TraceEvent, Tracer, TraceSource

if TYPE_CHECKING:
    from ._progress import PlatformView

__all__ = [
    "Monitor",
    "MonitorSet",
    "PropertyViolation",
    "Violation",
    "default_monitors",
    "monitoring",
]


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: which property, what happened, at which event."""

    prop: PropertyName
    rule: str  # short id of the rule, e.g. "owner-unique"
    message: str
    event_index: int  # index in the monitored event stream (0-based); -1 at finish
    event: TraceEvent | None = None

    def __str__(self) -> str:
        where = f" at event {self.event_index}" if self.event_index >= 0 else " at the end"
        return f"{self.prop} {self.rule}: {self.message}{where}"


class PropertyViolation(AioCtxError):
    """Raised by :meth:`MonitorSet.check` when a monitor recorded a violation."""

    def __init__(self, violations: list[Violation]) -> None:
        super().__init__("; ".join(str(v) for v in violations[:3]))
        self.violations = violations


class Monitor:
    """Base class: set :attr:`prop` and override :meth:`on_event` (and :meth:`finish` for
    end-of-run rules)."""

    #: The property whose rules this monitor checks (every subclass sets it).
    prop: ClassVar[PropertyName]
    #: Its verdicts follow from the event stream alone (it reads no platform view and no
    #: impl state, and has no :meth:`quiescent` rule), so it may be fed the stream in a
    #: batch, later, with the same indices (:meth:`MonitorSet.feeder`).
    batchable: ClassVar[bool] = False

    def __init__(self) -> None:
        self.violations: list[Violation] = []
        self._index = -1
        self._event: TraceEvent | None = None

    def feed(self, index: int, ev: TraceEvent) -> None:
        self._index = index
        self._event = ev
        self.on_event(ev)

    def feed_batch(self, start: int, events: Sequence[TraceEvent]) -> None:
        """:meth:`feed` of each of ``events`` in order, the first with index ``start``."""
        on_event = self.on_event
        for index, ev in enumerate(events, start):
            self._index = index
            self._event = ev
            on_event(ev)

    def on_event(self, ev: TraceEvent) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def finish(self, *, terminal: bool = False) -> None:
        """End-of-run checks (all threads have ended, or with ``terminal`` none can move)."""

    def quiescent(self) -> None:
        """Every thread is blocked right now (only a controlled platform knows: it calls
        this before it advances virtual time, and when no thread can move at all): rules
        that need that guarantee (a poller asleep with work due) are checked here."""

    def violate(self, rule: str, message: str, *, at_end: bool = False) -> None:
        idx = -1 if at_end else self._index
        ev = None if at_end else self._event
        self.violations.append(Violation(self.prop, rule, message, idx, ev))


def default_monitors(
    view: PlatformView | None = None, watched: Sequence[object] | None = None
) -> list[Monitor]:
    """One fresh monitor per rule set: P1, P2, P3, liveness and the loop oracles (LIVE).

    ``view``: the platform's clocks and fd readiness (a controlled platform); without it
    the loop oracles check only what holds on real threads (see
    :mod:`aioctx_verify.properties._progress`).  ``watched``: the contexts and devices a
    harness registered with a controlled platform, whose representation invariants are
    checked whenever every thread is blocked
    (:class:`~aioctx_verify.properties.StateMonitor`).
    """
    from ._liveness import LivenessMonitor
    from ._p1_nested_acquire import NestedAcquireMonitor
    from ._p2_bh_scheduling import BHSchedulingMonitor
    from ._p3_mutual_exclusion import MutualExclusionMonitor
    from ._progress import ProgressMonitor
    from ._structure import StateMonitor

    return [
        NestedAcquireMonitor(),
        BHSchedulingMonitor(),
        MutualExclusionMonitor(),
        LivenessMonitor(),
        ProgressMonitor(view),
    ] + ([] if watched is None else [StateMonitor(watched)])


class MonitorSet:
    """Several monitors fed from one platform's trace hook.

    Args:
        monitors: the monitors to feed (default: :func:`default_monitors`, without a
            platform view).
        keep_events: keep every event (for reports and the model agreement tests).
    """

    def __init__(
        self, monitors: Iterable[Monitor] | None = None, *, keep_events: bool = False
    ) -> None:
        if monitors is None:
            monitors = default_monitors()
        self.monitors = list(monitors)
        self.events: list[TraceEvent] | None = [] if keep_events else None
        self._lock = threading.Lock()
        self._count = 0
        self._finished = False
        # Events a feeder() has not given the batchable monitors yet (the last ones fed).
        self._pending: list[TraceEvent] = []
        self._batched: list[Monitor] = []

    def __call__(self, ev: TraceEvent) -> None:
        with self._lock:
            if self._pending:
                self._flush()
            i = self._count
            self._count += 1
            if self.events is not None:
                self.events.append(ev)
            for m in self.monitors:
                m.feed(i, ev)

    def feeder(self) -> Callable[[TraceEvent], None]:
        """What to call with each event instead of this set, for a producer that emits
        from one thread at a time (a controlled run: its carrier runs one program thread at
        a time); it takes no lock.  Monitors that read more than the event stream (a
        platform view, impl's state) get each event at once; the :attr:`Monitor.batchable`
        ones get the events later, in one batch, with the same indices, before anything
        reads a verdict (:meth:`finish`, :meth:`quiescent`, :attr:`violations`, another
        event through the set itself), so every verdict is the one feeding each event to
        every monitor at once gives."""
        live = [m.feed for m in self.monitors if not m.batchable]
        self._batched = [m for m in self.monitors if m.batchable]
        pending = self._pending
        events = self.events

        def feed(ev: TraceEvent) -> None:
            i = self._count
            self._count = i + 1
            if events is not None:
                events.append(ev)
            pending.append(ev)
            for f in live:
                f(i, ev)

        return feed

    def flush(self) -> None:
        """Give the batchable monitors the events a :meth:`feeder` kept for them."""
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        pending = self._pending
        if pending:
            start = self._count - len(pending)
            for m in self._batched:
                m.feed_batch(start, pending)
            pending.clear()

    def feed_all(self, events: Iterable[TraceEvent]) -> MonitorSet:
        for ev in events:
            self(ev)
        return self

    def finish(self, *, terminal: bool = False) -> list[Violation]:
        """Run every monitor's end-of-run rules once and return all violations.

        ``terminal``: the trace ends in a state where no thread can move any more (a model
        dead end, or a controlled run that ended with every thread blocked); rules that
        need that guarantee (a poller asleep for good with work due) run only then.
        """
        with self._lock:
            self._flush()
            if not self._finished:
                self._finished = True
                for m in self.monitors:
                    m.finish(terminal=terminal)
        return self.violations

    def quiescent(self) -> None:
        """Every thread is blocked right now: see :meth:`Monitor.quiescent`."""
        with self._lock:
            if not self._finished:
                for m in self.monitors:
                    m.quiescent()

    @property
    def events_seen(self) -> int:
        return self._count

    @property
    def violations(self) -> list[Violation]:
        if self._pending:
            self.flush()
        out: list[Violation] = []
        for m in self.monitors:
            out.extend(m.violations)
        return sorted(out, key=lambda v: (v.event_index < 0, v.event_index))

    def check(self) -> None:
        """Raise :class:`PropertyViolation` if any monitor recorded a violation."""
        v = self.violations
        if v:
            raise PropertyViolation(v)


@contextmanager
def monitoring(
    platform: TraceSource, monitors: MonitorSet | None = None
) -> Iterator[MonitorSet]:
    """Attach monitors to ``platform`` (any impl platform) for the block, chaining any tracer
    already there.

    At the end of the block the end-of-run rules are checked (:meth:`MonitorSet.finish`).
    """
    ms = monitors or MonitorSet()
    prev: Tracer | None = platform.tracer
    if prev is None:
        platform.tracer = ms
    else:

        def both(ev: TraceEvent) -> None:
            prev(ev)
            ms(ev)

        platform.tracer = both
    try:
        yield ms
    finally:
        platform.tracer = prev
        ms.finish()
