"""The guided strategy: steers a controlled run of impl along a model path, matching the
trace events impl emits against those of the path's actions, and the platform operations
impl performs against the shared-memory access each model step stands for.

Why it exists: the steering is a scheduler strategy of its own, independent of the program
it steers (:mod:`~aioctx_verify.stress.explore._model_program` only feeds it impl's
events and the ids of the platform objects the model's variables live in), and it is where
the matching's approximations live.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import CodeType

from aioctx_verify.impl import TraceEvent
from aioctx_verify.model import Action

from ..controlled import Decision
from ._model_program import FromModelError

#: Event kinds the model emits: impl's other kinds (``poll_woke``, ``iothread_start``)
#: have no model step and are skipped when matching.
_MODEL_KINDS = frozenset({
    "acquire", "release", "lock_wait", "contention_kick", "poll_begin", "poll_wait",
    "poll_end", "notify", "notify_accept", "bh_schedule_begin", "bh_schedule_end",
    "bh_run_begin", "bh_run_end", "bh_cancel", "bh_delete", "bh_new",
})
#: Kinds whose object is compared as is (depths, blocking); BH kinds are compared after
#: mapping the model's BH id to impl's; other objects (tickets, timeouts) are not compared.
_EXACT_OBJ = frozenset({"acquire", "release", "poll_begin"})
_BH_KINDS = frozenset({
    "bh_schedule_begin", "bh_schedule_end", "bh_run_begin", "bh_run_end", "bh_cancel",
    "bh_delete",
})


# ------------------------------------------------------------------------------------------
# Model steps as platform operations
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Access:
    """The platform operation of impl that is a model step's one shared-memory access.

    Attributes:
        cell: the model variable, named as the program's ``cells`` name its platform
            object: ``notify_me``, ``notified``, ``event`` (the EventNotifier), ``poller``
            (the poll itself), or ``bh`` (the ``scheduled`` flag of the step's BH).
        ops: the platform operations that perform it (:class:`ControlledPlatform`'s
            operation names: ``load``, ``store``, ``exchange``, ``fetch_add``,
            ``notifier_set``, ``notifier_clear``, ``poll``).
        walk: the step's argument is a position in ``aio_bh_poll``'s walk, not a BH index.
        before: the step is the thread-local work *up to* the access, which is the next
            step's: it ends when its thread is about to perform it.
        arg: the access is the step's only with this argument (``poll``: blocking only).
    """

    cell: str
    ops: frozenset[str]
    walk: bool = False
    before: bool = False
    arg: int | None = None


def _acc(cell: str, *ops: str, walk: bool = False, before: bool = False,
         arg: int | None = None) -> Access:
    return Access(cell, frozenset(ops), walk, before, arg)


#: Model step name -> the platform operation impl performs for it (model/_actions.py's
#: steps against impl/_context.py: ``BH.schedule``, ``aio_notify``, ``aio_notify_accept``,
#: ``_poll_locked``, ``_bh_poll``).  A step in this table ends once its thread performed
#: that operation on that object *and* emitted the step's events, whichever comes first:
#:
#: ======================  ===================================  ===========================
#: model step              QEMU / impl access                   platform operation(s)
#: ======================  ===================================  ===========================
#: ``poll`` (blocking)     ``notify_me += 2`` (after the trace)  ``fetch_add`` notify_me
#: ``schedule.xchg``       ``xchg(&bh->scheduled, 1)``; the      ``exchange`` / ``load`` of
#:                         bh-nonatomic mutant's plain test      the BH's ``scheduled``
#: ``schedule.write``      the bh-nonatomic mutant's store       ``store`` of ``scheduled``
#: ``notify.read``         read ``notify_me``                    ``load`` notify_me
#: ``notify.event[1]``     ``event_notifier_set``                ``notifier_set``
#: ``notify.notified[1]``  ``notified = true``                   ``exchange`` notified
#: ``poll.scan``           ``aio_compute_timeout`` (every flag)  up to the ``poll``
#: ``poll.wait``           ``qemu_poll_ns``                      ``poll``
#: ``poll.dec``            ``notify_me -= 2``                    ``fetch_add`` notify_me
#: ``poll.accept``         ``xchg(&notified, false)``            ``exchange`` notified
#: ``poll.clear``          ``event_notifier_test_and_clear``     ``notifier_clear``
#: ``poll.bh``             claim the walked BH's flag            ``load`` / ``exchange``
#: ``poll.bh_clear``       the late clear (model mutant)         ``store`` / ``exchange``
#: ======================  ===================================  ===========================
#:
#: Other steps are a lock operation or a trace point, matched by their events (``acquire``,
#: ``release``, ``schedule``, ``poll.end``), or thread-local (``finish``): those without
#: events last until their thread blocks or emits its next event.  Operations that match
#: no expected access (a fence, the ``idle`` store, another BH's flag) are the step's own
#: thread-local work and do not end it.  When impl never performs the access (a mutant
#: that dropped it), the step ends at its thread's next event or when it blocks, as an
#: eventless step does.
STEP_ACCESS: Mapping[str, Access] = {
    "poll": _acc("notify_me", "fetch_add", arg=1),
    "schedule.xchg": _acc("bh", "exchange", "load"),
    "schedule.write": _acc("bh", "store", "exchange"),
    "notify.read": _acc("notify_me", "load"),
    "notify.event": _acc("event", "notifier_set"),
    "notify.event1": _acc("event", "notifier_set"),
    "notify.notified": _acc("notified", "exchange", "store"),
    "notify.notified1": _acc("notified", "exchange", "store"),
    "poll.scan": _acc("poller", "poll", before=True),
    "poll.wait": _acc("poller", "poll"),
    "poll.dec": _acc("notify_me", "fetch_add"),
    "poll.accept": _acc("notified", "exchange"),
    "poll.clear": _acc("event", "notifier_clear"),
    "poll.bh": _acc("bh", "load", "exchange", walk=True),
    "poll.bh_clear": _acc("bh", "store", "exchange", walk=True),
}


# ------------------------------------------------------------------------------------------
# The guided strategy
# ------------------------------------------------------------------------------------------
Event = tuple[str, int, str]


class GuidedStrategy:
    """Steers a controlled run along a model path, by trace events and platform operations.

    Before :meth:`begin` (the program's set-up) the main thread is preferred.  Then, for
    the next expected action, its thread is chosen whenever it can run, until impl emitted
    that action's events in order and, for a step of :data:`STEP_ACCESS`, performed its
    platform operation (seen through :meth:`observe`; a ``before`` step ends at a
    decision where its thread's pending operation is the access).  A step with neither
    lasts until its thread blocks or emits an event.  When the path's thread cannot run,
    the non-preempting option is taken (the guidance waits) while the step still has
    events to match; when impl's events differ from the path's (another thread's model
    event, or the wrong one), guidance stops and the run goes on without preemption.
    :attr:`matched` counts the actions completed; :attr:`divergence` says where and how
    the run left the path.
    """

    name = "guided"

    def __init__(self, path: Sequence[Action]) -> None:

        acts = [a for a in path if isinstance(a, Action)]
        if len(acts) != len(path):
            raise FromModelError("a model path is a sequence of model.Action; got something else")
        self.path = tuple(acts)
        self._expect: tuple[tuple[int, tuple[Event, ...]], ...] = tuple(
            (a.thread, tuple(e for e in a.events if e[0] in _MODEL_KINDS)) for a in acts
        )
        self._access: tuple[Access | None, ...] = tuple(
            self._access_of(a) for a in acts
        )
        self._oids: tuple[int, ...] = (-1,) * len(acts)
        self.matched = 0
        self.divergence = ""
        self._ev = 0
        self._did = False
        self._active = False
        self._threads: dict[int, int] = {}
        self._ids: dict[int, int] = {}

    @staticmethod
    def _access_of(a: Action) -> Access | None:
        acc = STEP_ACCESS.get(a.step)
        if acc is None or (acc.arg is not None and a.arg != acc.arg):
            return None
        return acc

    @property
    def complete(self) -> bool:
        """Every action of the path was matched."""
        return self.matched == len(self._expect)

    def next_run(self) -> bool:
        self.matched = 0
        self.divergence = ""
        self._ev = 0
        self._did = False
        self._active = False
        return True

    def begin(
        self,
        threads: dict[int, int],
        bh_ids: dict[int, int],
        cells: Mapping[str, int] | None = None,
        walk: Sequence[int] = (),
    ) -> None:
        """Set-up done: model thread -> platform thread, model BH id -> impl BH id, and
        the platform object ids of the model's variables (``notify_me``, ``notified``,
        ``event``, ``poller``, and ``bh<b>`` for model BH index ``b``'s ``scheduled``
        flag), with ``aio_bh_poll``'s walk order of model BH indices.  A step whose
        object is not in ``cells`` is matched by its events only."""
        self._threads = threads
        self._ids = bh_ids
        cells = cells or {}
        oids = []
        for a, acc in zip(self.path, self._access, strict=True):
            name = acc.cell if acc is not None else ""
            if name == "bh" and acc is not None:
                b = a.arg
                if acc.walk:
                    b = walk[b] if 0 <= b < len(walk) else -1
                name = f"bh{b}"
            oids.append(cells.get(name, -1))
        self._oids = tuple(oids)
        self._active = True

    def _guiding(self) -> bool:
        return self._active and not self.divergence and self.matched < len(self._expect)

    def _diverge(self, text: str) -> None:
        self.divergence = f"model step {self.matched}: {text}"

    def _advance(self) -> None:
        self.matched += 1
        self._ev = 0
        self._did = False

    def _step_access(self) -> Access | None:
        """The current step's access, None when it has none or its object is unknown."""
        acc = self._access[self.matched]
        return acc if acc is not None and self._oids[self.matched] >= 0 else None

    def _is_access(self, acc: Access, op: str, obj: int) -> bool:
        return op in acc.ops and obj == self._oids[self.matched]

    def _events_left(self) -> bool:
        return self._ev < len(self._expect[self.matched][1])

    def observe(self, thread: int, op: str, obj: int, code: CodeType | None, line: int) -> None:
        """Thread ``thread`` performs ``op`` on ``obj`` now (the platform calls this for
        every operation it grants, decisions or not)."""
        while self._guiding():
            t = self._expect[self.matched][0]
            acc = self._step_access()
            if acc is None or self._did or thread != self._threads.get(t, -1):
                return
            if not self._is_access(acc, op, obj):
                return
            if acc.before:  # the access is the next step's: this one is over
                if self._events_left():
                    return
                self._advance()
                continue
            self._did = True
            if not self._events_left():
                self._advance()
            return

    def saw(self, ev: TraceEvent) -> None:
        """impl emitted ``ev`` (called from the program's tracer, no scheduling point)."""
        if not self._guiding() or ev.kind not in _MODEL_KINDS:
            return
        while self._guiding():
            t, evs = self._expect[self.matched]
            want = self._threads.get(t)
            if want is None:
                self._diverge(f"model thread t{t} has no impl thread")
                return
            if not self._events_left():
                # A step with no event left to match (eventless, or waiting for its
                # access) ends at the next event: its thread moved on past it, or it
                # blocked and another thread moved without the scheduler consulting us.
                self._advance()
                continue
            if int(ev.thread) != want:
                self._diverge(
                    f"expected t{t} {self._describe()}, impl thread {int(ev.thread)} "
                    f"emitted {ev.kind}:{ev.obj}"
                )
                return
            kind, obj, detail = evs[self._ev]
            if not self._same(ev, kind, obj, detail):
                self._diverge(
                    f"expected t{t} {kind}:{obj}, impl emitted {ev.kind}:{ev.obj} {ev.detail}"
                )
                return
            self._ev += 1
            acc = self._step_access()
            # A ``before`` access is the next step's: the events end this one.
            if not self._events_left() and (acc is None or acc.before or self._did):
                self._advance()
            return

    def _describe(self) -> str:
        """The expected step and, when it has events, the next one's kind."""
        evs = self._expect[self.matched][1]
        step = self.path[self.matched].step
        return f"{step} {evs[self._ev][0]}" if self._ev < len(evs) else step

    def _same(self, ev: TraceEvent, kind: str, obj: int, detail: str) -> bool:
        if ev.kind != kind:
            return False
        if kind in _EXACT_OBJ:
            return int(ev.obj) == obj
        if kind in _BH_KINDS:
            if self._ids.get(obj, -1) != ev.obj:
                return False
            return kind != "bh_schedule_end" or ev.detail == detail
        return True

    def choose(self, d: Decision) -> int:
        runnable = {o.thread: i for i, o in enumerate(d.options) if o.kind == "run"}
        if not self._active:
            return runnable.get(0, d.default)  # set-up: the main thread
        while self._guiding():
            t = self._expect[self.matched][0]
            want = self._threads.get(t, -1)
            acc = self._step_access()
            if (acc is not None and acc.before and not self._events_left()
                    and d.pending_fn is not None and want in runnable
                    and self._is_access(acc, *d.pending_fn(want))):
                self._advance()  # its thread is about to perform the next step's access
                continue
            if want in runnable:
                return runnable[want]
            if self._events_left():
                return d.default  # the path's thread waits for another: no preemption
            self._advance()  # a step with no event left ends when its thread blocks
        return d.default


def guided_strategy(path: Sequence[Action]) -> GuidedStrategy:
    """A strategy that steers impl's threads through ``path``'s steps (see
    :class:`GuidedStrategy`); pass the same object to :func:`program_for` as ``guide``."""
    return GuidedStrategy(path)
