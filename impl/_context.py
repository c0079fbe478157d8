"""AioContext: QEMU's event loop of BHs, fd / event-notifier handlers and timers.

Prior art: QEMU async.c and aio-posix.c of 2014-2015 (QEMU 2.0-2.4); the structure follows
QEMU 2.2 (prepare / poll / dispatch, ``aio_compute_timeout``), with:

* the 2014 locking: the caller of ``aio_poll`` holds the context (RFifoLock), a blocking poll
  keeps it, and contention kicks the poller (``aio_context_acquire`` of another thread);
* the 2015 wake-up protocol: ``notify_me`` counter (eabc977973), notifier cleared right after
  the poll (21a03d17f2), ``notified`` + ``aio_notify_accept`` (05e514b1d4), with the explicit
  full barrier after publishing ``notify_me`` that 5710a3e09f (2020) made explicit;
* the 2015 fix that makes the contention kick *sticky*: the lock's contention callback
  schedules ``notify_dummy_bh`` instead of calling ``aio_notify``, which is dropped while
  nobody is polling;
* the 2014-2016 BH barriers: ``bh.ctx`` read before ``scheduled`` is published (924fe1293c),
  atomic exchange of ``scheduled`` on both sides ("strengthen memory barriers for bottom half
  scheduling", 2015), and one-shot BHs created scheduled+deleted (QEMU 2.8, 2016).

Loop contract of one ``aio_poll(ctx, blocking)`` iteration:

1. (blocking only) ``notify_me += 2`` then a full fence: from here on a waker that changes
   anything this iteration will look at also sees ``notify_me != 0`` and writes the notifier.
2. Poll set = every live handler with events (external ones left out while external
   handlers are disabled); timeout = 0 unless blocking, else ``aio_compute_timeout``: 0 if a
   non-idle BH is scheduled or a timer expired, 10 ms if only idle BHs are, else the nearest
   timer, else forever.
3. ``poll``; (blocking) ``notify_me -= 2``; ``aio_notify_accept``; copy ``revents``.
4. Dispatch, always in this order: bottom halves (newest-created first), then fd / notifier
   handlers (newest-registered first), then expired timers (REALTIME, VIRTUAL, HOST).
5. Return "progress": a non-idle BH other than ``notify_dummy_bh`` ran, a handler other than
   the context's own notifier ran, or a timer ran.  A bare wake-up is never progress.

A BH rescheduled from its own callback runs in the next iteration, not in this one (its
flag is cleared before the callback and the walk has moved past it).  BHs and handlers
deleted while a walk is active are only marked, and reclaimed by the outermost walker.
PYTEST_DONT_REWRITE (why: impl/__init__.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._errors import (
    BHDeletedError,
    CallbackError,
    ContextClosedError,
    ContextInUseError,
    ContextNotHeldError,
    InvalidFdError,
    NotifierClosedError,
    UsageError,
    callable_name,
    check_callable,
)
from ._lock import LockStatistics, RFifoLock
from ._platform import (
    POLLERR,
    POLLHUP,
    POLLIN,
    POLLNVAL,
    POLLOUT,
    AtomicCell,
    Fence,
    Ordering,
    Platform,
    RawNotifier,
    ThreadId,
    TraceEvent,
)
from ._real import default_platform
from ._timers import ClockType, QEMUTimer, TimerListGroup, clocks_for

if TYPE_CHECKING:
    from ._iothread import IOThread
    from ._threadpool import ThreadPool

__all__ = ["BH", "AioContext", "AioHandler", "ContextStatistics", "DebugSnapshot", "EventNotifier"]

_RELAXED = Ordering.RELAXED
_ACQUIRE = Ordering.ACQUIRE
_RELEASE = Ordering.RELEASE
_SEQ = Ordering.SEQ_CST
_READ_EVENTS = POLLIN | POLLHUP | POLLERR
_WRITE_EVENTS = POLLOUT | POLLERR
#: An idle BH bounds a blocking poll to 10 ms (QEMU aio_compute_timeout).
IDLE_BH_TIMEOUT_NS = 10_000_000
#: ``AioContext._poll_wait_ns`` while no thread is inside the platform poll (poll timeouts
#: are >= -1, -1 meaning forever).
_NOT_POLLING = -2


def _noop(_opaque: object) -> None:
    """notify_dummy_bh's callback: the wake-up is the point, the run is not progress."""


class EventNotifier:
    """QEMU's EventNotifier: an eventfd (or pipe) that can be set from any thread.

    ``event_notifier_init(active)`` creates it already set when ``active``.  Setting twice
    before a ``test_and_clear`` coalesces.  After :meth:`cleanup` every use raises
    :class:`NotifierClosedError`.
    """

    __slots__ = ("_raw", "closed", "id")

    def __init__(self, platform: Platform | None = None, active: bool = False) -> None:
        p = platform or default_platform()
        self._raw: RawNotifier = p.notifier()
        self.closed = False
        self.id = p.new_id()
        if active:
            self._raw.set()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._raw.read_fd}"
        return f"<EventNotifier {self.id} {state}>"

    def _check(self, what: str) -> RawNotifier:
        if self.closed:
            raise NotifierClosedError(
                f"{what} on event notifier {self.id} after event_notifier_cleanup; "
                "create a new one with event_notifier_init"
            )
        return self._raw

    @property
    def fd(self) -> int:
        """The file descriptor that becomes readable when set."""
        return self._check("fd").read_fd

    def set(self) -> None:
        self._check("event_notifier_set").set()

    def test_and_clear(self) -> bool:
        return self._check("event_notifier_test_and_clear").test_and_clear()

    def cleanup(self) -> None:
        self._check("event_notifier_cleanup").close()
        self.closed = True


class BH:
    """A bottom half: a callback that any thread can schedule, run by its context's loop.

    Fields shared without a lock are atomic cells: ``scheduled`` and ``idle``.  ``deleted``
    is written once, by ``delete`` under the context's ``_bh_lock`` (or by the constructor
    of a one-shot), and read under that lock by the reclaiming loop and by
    :meth:`AioContext.statistics`, or by the BH's only user.
    """

    __slots__ = ("cb", "ctx", "deleted", "dummy", "id", "idle", "opaque", "scheduled")

    def __init__(
        self,
        ctx: AioContext,
        cb: Callable[[Any], None],
        opaque: Any,
        *,
        oneshot: bool = False,
        dummy: bool = False,
    ) -> None:
        p = ctx._p
        self.ctx = ctx
        self.cb = cb
        self.opaque = opaque
        self.id = p.new_id()
        self.scheduled = p.atomic(oneshot, "bh.scheduled")
        self.idle = p.atomic(False, "bh.idle")
        self.deleted = oneshot
        self.dummy = dummy

    def __repr__(self) -> str:
        flags = [
            f
            for f, on in (
                ("scheduled", self.scheduled.load(_RELAXED)),
                ("idle", self.idle.load(_RELAXED)),
                ("deleted", self.deleted),
            )
            if on
        ]
        return f"<BH {self.id} {self.name} {' '.join(flags) or 'idle-state'}>"

    @property
    def name(self) -> str:
        """The callback's name (computed on demand: most BHs never need it)."""
        return callable_name(self.cb)

    def _check(self, what: str) -> None:
        if self.deleted:
            raise BHDeletedError(
                f"{what} of BH {self.id} ({self.name}) after qemu_bh_delete; "
                "a deleted BH cannot be used again, create a new one with aio_bh_new"
            )

    def schedule(self) -> None:
        """``qemu_bh_schedule``: lock-free, never blocks, coalesces, wakes the loop.

        Safe from any thread.  Ordering (2014-2016 fixes): read ``ctx`` *before* the flag is
        published, because once it is the owner may run and free the BH (924fe1293c); the
        exchange is seq_cst so the caller's writes are visible to the callback, and
        ``aio_notify`` runs only when this call flipped the flag (one wake-up per run).
        """
        if self.deleted:
            self._check("qemu_bh_schedule")
        ctx = self.ctx
        tr = ctx._p.tracer
        if tr is not None:
            tr(TraceEvent("bh_schedule_begin", ctx._p.current_thread(), ctx.id, self.id))
        self.idle.store(False, _RELAXED)
        if not self.scheduled.exchange(True, _SEQ):
            ctx.aio_notify()
            if tr is not None:
                tr(TraceEvent("bh_schedule_end", ctx._p.current_thread(), ctx.id, self.id, "new"))
        elif tr is not None:
            me = ctx._p.current_thread()
            tr(TraceEvent("bh_schedule_end", me, ctx.id, self.id, "coalesced"))

    def schedule_idle(self) -> None:
        """``qemu_bh_schedule_idle``: run at the next iteration, at most 10 ms from now.

        No wake-up; the run does not count as progress.  Does nothing if already scheduled.
        """
        self._check("qemu_bh_schedule_idle")
        ctx = self.ctx
        tr = ctx._p.tracer
        if tr is not None:
            tr(TraceEvent("bh_schedule_begin", ctx._p.current_thread(), ctx.id, self.id))
        if not self.scheduled.load(_SEQ):
            self.idle.store(True, _RELAXED)
            ctx._p.fence(Fence.WMB)  # idle (and the callback's inputs) before scheduled
            # QEMU 2.4 stores 1 here; an exchange is no weaker (its result is unused).
            self.scheduled.exchange(True, _RELEASE)
        if tr is not None:
            tr(TraceEvent("bh_schedule_end", ctx._p.current_thread(), ctx.id, self.id, "idle"))

    def cancel(self) -> None:
        """``qemu_bh_cancel``: unschedule (a run already under way is not stopped)."""
        self._check("qemu_bh_cancel")
        self.scheduled.store(False, _RELAXED)
        tr = self.ctx._p.tracer
        if tr is not None:
            tr(TraceEvent("bh_cancel", self.ctx._p.current_thread(), self.ctx.id, self.id))

    def delete(self) -> None:
        """``qemu_bh_delete``: unschedule and retire; reclaimed by the loop later.

        Safe from inside the BH's own callback and while the BH list is being walked.
        """
        self._check("qemu_bh_delete")
        self.scheduled.store(False, _RELAXED)
        ctx = self.ctx
        with ctx._bh_lock:  # statistics() reads the flag under it, from any thread
            self.deleted = True
            ctx._bh_deleted += 1
        tr = ctx._p.tracer
        if tr is not None:
            tr(TraceEvent("bh_delete", ctx._p.current_thread(), ctx.id, self.id))

    @property
    def is_scheduled(self) -> bool:
        """The ``scheduled`` flag (one seq_cst load): safe from any thread."""
        return bool(self.scheduled.load(_SEQ))


class AioHandler:
    """A registered fd (or event notifier) with its read/write callbacks."""

    __slots__ = (
        "deleted",
        "events",
        "fd",
        "id",
        "io_read",
        "io_write",
        "is_ctx_notifier",
        "is_external",
        "notifier",
        "opaque",
        "revents",
    )

    def __init__(self, fd: int, hid: int) -> None:
        self.fd = fd
        self.id = hid
        self.io_read: Callable[[Any], None] | None = None
        self.io_write: Callable[[Any], None] | None = None
        self.opaque: Any = None
        self.is_external = False
        self.is_ctx_notifier = False
        self.notifier: EventNotifier | None = None
        self.deleted = False
        self.events = 0
        self.revents = 0

    def __repr__(self) -> str:
        return (
            f"<AioHandler fd={self.fd} events={self.events:#x}{' deleted' if self.deleted else ''}>"
        )


@dataclass(frozen=True, slots=True)
class ContextStatistics:
    """A snapshot of a context, for tests and reports (:meth:`AioContext.statistics`).

    Each field is exact when it was read; fields are read one after the other, so a thread
    that neither holds the context nor quiesced it gets values from different moments."""

    name: str
    refcount: int
    lock: LockStatistics
    bhs: int
    scheduled_bhs: int
    handlers: int
    notify_me: int
    external_disable_cnt: int


@dataclass(frozen=True, slots=True)
class DebugSnapshot:
    """A context as an outside observer (a stall detector) sees it, read without its lock.

    Racy by design: every field is read once, not in one atomic step with the others, while
    other threads keep running the context; trust only a state seen to persist.  Reading
    one costs no system call and changes nothing.

    Attributes:
        name: the context's name.
        closed: its last reference was dropped (the handler fields are then empty).
        polling: a thread is inside the platform ``poll`` of :meth:`AioContext.aio_poll`
            (from just before the call until it returns).
        poll_timeout_ns: that poll's timeout in ns; ``None`` when it sleeps until woken,
            and when nobody is polling.
        notifier_fd: the fd that becomes readable when the context's own notifier is set
            (``aio_notify`` writes it).
        read_fds: fds of the live handlers that have a read callback, in registration order
            (the context's own notifier left out).
        external_fds: those of :attr:`read_fds` whose handler is external.
        polled_fds: the fds in the poll set of the current (or the last) poll.
        kick_scheduled: the contention kick (``notify_dummy_bh``) is scheduled.
        scheduled_bhs: names of the other BHs whose ``scheduled`` flag is set, oldest first.
        timer_deadline_ns: ns until the first timer expires: -1 none, 0 expired.
        lock: the context lock's owner, depth and waiters.
        external_disable_cnt: ``aio_disable_external`` nesting.
    """

    name: str
    closed: bool
    polling: bool
    poll_timeout_ns: int | None
    notifier_fd: int
    read_fds: tuple[int, ...]
    external_fds: frozenset[int]
    polled_fds: frozenset[int]
    kick_scheduled: bool
    scheduled_bhs: tuple[str, ...]
    timer_deadline_ns: int
    lock: LockStatistics
    external_disable_cnt: int

    @property
    def asleep(self) -> bool:
        """Inside a poll without a timeout: only a notifier or a handler's fd wakes it."""
        return self.polling and self.poll_timeout_ns is None


class AioContext:
    """An event loop of bottom halves, fd / event-notifier handlers and timers.

    Threading rules (QEMU docs/multiple-iothreads.txt, 2014):

    1. Callbacks of this context may use it freely.
    2. Any other thread brackets its use with :meth:`acquire` / :meth:`release` (or
       ``with ctx:``); these nest.  While one thread holds the context no other thread
       runs an iteration in it.  The context's *home* thread (its IOThread, or for a
       context made with :func:`aio_context_new` the thread that made it) may call
       :meth:`aio_poll` and the handler setters without holding it: they acquire it for the
       duration of the call (as QEMU 2.4's ``aio_poll`` does).
    3. :meth:`BH.schedule` needs no lock from any thread.

    Args:
        platform: the concurrency seam (default: the real platform).
        name: for messages and traces.
        home: the home thread (default: the calling thread).
    """

    def __init__(
        self,
        platform: Platform | None = None,
        *,
        name: str = "",
        home: ThreadId | None = None,
    ) -> None:
        p = platform or default_platform()
        self._p = p
        self.id = p.new_id()
        self.name = name or f"AioContext-{self.id}"
        self._refcnt = p.atomic(1, "ctx.refcnt")
        self._closed = False
        self._home: ThreadId | None = home if home is not None else p.current_thread()
        self._iothread: IOThread | None = None
        self._lock = RFifoLock(p, self._contention_cb, name=f"{self.name}.lock", trace_id=self.id)
        # Bottom halves: appended (newest last), walked newest-first.  _bh_lock guards
        # adders against the reclaiming walker; walkers read the list without it.
        self._bh_lock = p.mutex(f"{self.name}.bh_lock")
        self._bhs: list[BH] = []
        self._walking_bh = 0
        # BHs marked deleted and not yet reclaimed: written under _bh_lock, read without it
        # by the outermost walker (see _bh_deleted), hence an atomic cell.
        self._bh_deleted_cell = p.atomic(0, "ctx.bh_deleted")
        # Handlers: same list discipline; only the lock holder touches them.
        self._handlers: list[AioHandler] = []
        self._walking_handlers = 0
        self._handlers_deleted = False
        # What observers in other threads see of the handlers (statistics, debug_snapshot):
        # an immutable (fd, has a read callback, external) per live handler, the context's
        # own notifier left out, republished (release) by the holder after every change;
        # RCU-style, so that readers neither take the context lock nor walk the list.
        self._handler_view: AtomicCell[tuple[tuple[int, bool, bool], ...]] = p.atomic(
            (), "ctx.handler_view"
        )
        self._poller = p.poller()
        self._polled: dict[int, int] = {}
        self._poll_gen = 0
        self._poll_set_key: tuple[int, bool] = (-1, False)
        # The timeout of the poll a thread is in, or _NOT_POLLING: for debug_snapshot only.
        # impl never reads it, so it is no shared word of the protocol (a plain attribute,
        # not an atomic cell: no scheduling point on a controlled platform).
        self._poll_wait_ns = _NOT_POLLING
        self._external_disable_cnt = p.atomic(0, "ctx.external_disable_cnt")
        # The 2015 wake-up protocol.
        self.notify_me = p.atomic(0, "ctx.notify_me")
        self.notified = p.atomic(False, "ctx.notified")
        self.notifier = EventNotifier(p)
        self._raw_notifier = self.notifier._raw
        self._add_handler(
            self.notifier.fd, _noop, None, self.notifier, False, notifier=self.notifier, own=True
        )
        self.notify_dummy_bh = BH(self, _noop, None, dummy=True)
        self._bhs.append(self.notify_dummy_bh)
        self.tlg = TimerListGroup(clocks_for(p), self.aio_notify, self.id)
        self._pool: ThreadPool | None = None

    def __repr__(self) -> str:
        return f"<AioContext {self.name} refs={self._refcnt.load(_RELAXED)} {self._lock!r}>"

    @property
    def platform(self) -> Platform:
        return self._p

    @property
    def _bh_deleted(self) -> int:
        """BHs marked deleted and not yet reclaimed.  Writers hold ``_bh_lock``; the outermost
        ``aio_bh_poll`` reads it without the lock to skip an empty reclaim (a stale 0 only
        defers the reclaim to the next walk), so it is a (relaxed) atomic word."""
        return self._bh_deleted_cell.load(_RELAXED)

    @_bh_deleted.setter
    def _bh_deleted(self, n: int) -> None:
        self._bh_deleted_cell.store(n, _RELAXED)

    # ------------------------------------------------------------------------------------
    # Life cycle
    # ------------------------------------------------------------------------------------
    def _check_open(self, what: str) -> None:
        if self._closed:
            raise ContextClosedError(
                f"{what} on {self.name} after its last reference was dropped; "
                "keep a reference (aio_context_ref) while you use it"
            )

    def ref(self) -> None:
        self._check_open("aio_context_ref")
        self._refcnt.fetch_add(1)

    def unref(self) -> None:
        """Drop a reference; the last one closes the context.

        Raises :class:`ContextInUseError` (and keeps the reference) when that would close a
        context an IOThread still runs.
        """
        self._check_open("aio_context_unref")
        it = self._iothread
        if it is not None and it._running and self._refcnt.load() <= 1:
            raise ContextInUseError(
                f"cannot drop the last reference of {self.name}: IOThread {it.name} still "
                "runs it; call iothread_join first"
            )
        if self._refcnt.fetch_add(-1) == 1:
            self._finalize()

    def _finalize(self) -> None:
        pool = self._pool
        if pool is not None:
            pool.shutdown()
        self._closed = True
        for node in self._handlers:
            if node.fd in self._polled:
                self._poller.unregister(node.fd)
        self._handlers = []
        self._handler_view.store((), _RELEASE)
        self._polled = {}
        self.tlg.close()
        self.notifier.cleanup()

    @property
    def closed(self) -> bool:
        return self._closed

    # ------------------------------------------------------------------------------------
    # Locking (rule 2)
    # ------------------------------------------------------------------------------------
    def acquire(self, timeout: float | None = None) -> bool:
        """``aio_context_acquire``: recursive, FIFO; kicks a poller that holds it."""
        if self._closed:
            self._check_open("aio_context_acquire")
        return self._lock.lock(timeout)

    def release(self) -> None:
        """``aio_context_release``: raises if the caller does not hold the context."""
        self._lock.unlock()

    def __enter__(self) -> AioContext:
        # Nested fast path: one relaxed load of the owner (the cell, not the two calls of
        # RFifoLock._owner) says whether this thread holds the lock; only then the depth.
        mine = (lock := self._lock)._owner_cell.load(_RELAXED) == lock._me()
        if mine and lock._nesting > 0 and self._p.tracer is None:
            lock._nesting += 1
            return self
        if self._closed:
            self._check_open("aio_context_acquire")
        lock.lock()
        return self

    def __exit__(self, *exc: object) -> None:
        mine = (lock := self._lock)._owner_cell.load(_RELAXED) == lock._me()
        if mine and lock._nesting > 1 and self._p.tracer is None:
            lock._nesting -= 1
            return
        lock.unlock()

    def held_by_me(self) -> bool:
        return self._lock.held_by_me()

    def _contention_cb(self) -> None:
        # Sticky kick (QEMU 2.4, notify_dummy_bh): a bare aio_notify is dropped when the
        # owner is between polls (notify_me == 0), a scheduled BH makes its next
        # aio_compute_timeout return 0.
        tr = self._p.tracer
        if tr is not None:
            tr(TraceEvent("contention_kick", self._p.current_thread(), self.id))
        self.notify_dummy_bh.schedule()

    def _enter(self, what: str) -> bool:
        """Check rule 2 for ``what``; return True if the home thread was let in implicitly."""
        lock = self._lock
        me = self._p.current_thread()
        if lock.held_by_me():
            return False
        if me == self._home:
            if self._closed:
                self._check_open(what)
            lock.lock()
            return True
        self._check_open(what)
        owner = lock.statistics().owner
        held = f"it is held by thread {owner}" if owner is not None else "it is not held"
        raise ContextNotHeldError(
            f"{what} on {self.name} from thread {me}, which does not hold the context "
            f"({held}); wrap the call in aio_context_acquire/aio_context_release"
        )

    # ------------------------------------------------------------------------------------
    # aio_notify protocol (QEMU 2.4)
    # ------------------------------------------------------------------------------------
    def aio_notify(self) -> None:
        """Wake a poller of this context, if one is (about to be) blocked.

        Full fence, then read ``notify_me``: a caller's earlier writes (a BH flag, a timer)
        are ordered before the read, pairing with the poller's fence after it publishes
        ``notify_me``.  If nobody polls, nothing is written: the poller will see the change
        when it computes its timeout.  The notifier is written *before* ``notified`` is set
        (05e514b1d4: the other order is the model's BUG1).
        """
        p = self._p
        p.fence(Fence.MB)
        if self.notify_me.load(_RELAXED):
            self._raw_notifier.set()
            # An RMW (QEMU's atomic_mb_set is an xchg on x86): it must not land inside
            # aio_notify_accept's exchange.
            self.notified.exchange(True, _SEQ)
            tr = p.tracer
            if tr is not None:
                tr(TraceEvent("notify", p.current_thread(), self.id, 1))

    def aio_notify_accept(self) -> bool:
        """Consume a wake-up: only the thread that flips ``notified`` clears the notifier.

        Returns whether there was one to consume.
        """
        if self.notified.exchange(False, _SEQ):
            self._raw_notifier.test_and_clear()
            tr = self._p.tracer
            if tr is not None:
                tr(TraceEvent("notify_accept", self._p.current_thread(), self.id))
            return True
        return False

    # ------------------------------------------------------------------------------------
    # Bottom halves
    # ------------------------------------------------------------------------------------
    def bh_new(self, cb: Callable[[Any], None], opaque: Any = None) -> BH:
        """``aio_bh_new``: safe from any thread (the list has its own lock)."""
        check_callable(cb, "BH callback")
        self._check_open("aio_bh_new")
        bh = BH(self, cb, opaque)
        with self._bh_lock:
            self._bhs.append(bh)
        tr = self._p.tracer
        if tr is not None:
            tr(TraceEvent("bh_new", self._p.current_thread(), self.id, bh.id, bh.name))
        return bh

    def bh_schedule_oneshot(self, cb: Callable[[Any], None], opaque: Any = None) -> None:
        """``aio_bh_schedule_oneshot``: run ``cb(opaque)`` once in this context, from any thread."""
        check_callable(cb, "BH callback")
        if self._closed:
            self._check_open("aio_bh_schedule_oneshot")
        bh = BH(self, cb, opaque, oneshot=True)
        tr = self._p.tracer
        if tr is not None:
            me = self._p.current_thread()
            tr(TraceEvent("bh_new", me, self.id, bh.id, "oneshot"))
            tr(TraceEvent("bh_schedule_begin", me, self.id, bh.id))
        with self._bh_lock:
            self._bhs.append(bh)
            self._bh_deleted_cell.store(self._bh_deleted_cell.load(_RELAXED) + 1, _RELAXED)
        self.aio_notify()
        if tr is not None:
            tr(TraceEvent("bh_schedule_end", self._p.current_thread(), self.id, bh.id, "new"))

    def _bh_poll(self) -> bool:
        """Run every scheduled BH once, newest first.  Not re-entrant across threads."""
        progress = False
        self._walking_bh += 1
        p = self._p
        tr = p.tracer
        try:
            for bh in reversed(self._bhs):
                sched = bh.scheduled
                # Cheap relaxed test first; the exchange is the authoritative claim.
                if not sched.load(_RELAXED) or not sched.exchange(False, _SEQ):
                    continue
                if not bh.idle.load(_RELAXED) and not bh.dummy:
                    progress = True
                bh.idle.store(False, _RELAXED)
                if tr is not None:
                    tr(TraceEvent("bh_run_begin", p.current_thread(), self.id, bh.id, bh.name))
                try:
                    bh.cb(bh.opaque)
                except CallbackError:
                    raise  # already names the callback that failed
                except Exception as e:
                    raise CallbackError("bh", bh.name, e) from e
                if tr is not None:
                    tr(TraceEvent("bh_run_end", p.current_thread(), self.id, bh.id, bh.name))
        finally:
            self._walking_bh -= 1
            if self._walking_bh == 0 and self._bh_deleted:
                self._reclaim_bhs()
        return progress

    def _reclaim_bhs(self) -> None:
        with self._bh_lock:
            keep = []
            pending = 0
            for bh in self._bhs:
                if bh.deleted:
                    if not bh.scheduled.load(_RELAXED):
                        continue
                    pending += 1
                keep.append(bh)
            self._bhs = keep
            self._bh_deleted = pending

    def _compute_timeout(self) -> int:
        """``aio_compute_timeout``: 0, 10 ms (idle BHs), the nearest timer, or -1."""
        timeout = -1
        for bh in self._bhs:
            if bh.scheduled.load(_RELAXED):
                if not bh.idle.load(_RELAXED):
                    return 0
                timeout = IDLE_BH_TIMEOUT_NS
        deadline = self.tlg.deadline_ns()
        if deadline == 0:
            return 0
        if timeout < 0 or (0 <= deadline < timeout):
            return deadline
        return timeout

    # ------------------------------------------------------------------------------------
    # fd handlers and event notifiers
    # ------------------------------------------------------------------------------------
    def set_fd_handler(
        self,
        fd: int,
        io_read: Callable[[Any], None] | None,
        io_write: Callable[[Any], None] | None,
        opaque: Any = None,
        *,
        is_external: bool = False,
    ) -> None:
        """``aio_set_fd_handler``: register, update or (both callbacks None) remove.

        Safe to call from inside any callback of this context, including the handler's own.
        """
        check_callable(io_read, "io_read", optional=True)
        check_callable(io_write, "io_write", optional=True)
        if not isinstance(fd, int) or isinstance(fd, bool):
            raise InvalidFdError(
                f"cannot register fd {fd!r} in {self.name}: fd must be an int file descriptor, "
                f"got {type(fd).__name__}; pass the integer from os.open/socket.fileno()"
            )
        if io_read is None and io_write is None:
            self._remove_handler(fd, "aio_set_fd_handler")
            return
        if fd < 0 or not self._p.fd_is_open(fd):
            raise InvalidFdError(
                f"cannot register fd {fd} in {self.name}: it is not an open file descriptor"
            )
        self._add_handler(fd, io_read, io_write, opaque, is_external)

    def set_event_notifier(
        self,
        notifier: EventNotifier,
        io_read: Callable[[EventNotifier], None] | None,
        *,
        is_external: bool = False,
    ) -> None:
        """``aio_set_event_notifier``: ``io_read(notifier)`` when set; None removes.

        The handler clears the notifier itself (``event_notifier_test_and_clear``).
        """
        if not isinstance(notifier, EventNotifier):
            raise UsageError(
                f"aio_set_event_notifier needs an EventNotifier, got {type(notifier).__name__}; "
                "create one with event_notifier_init"
            )
        check_callable(io_read, "io_read", optional=True)
        if io_read is None:
            if notifier.closed:
                # Removing a handler whose notifier is gone is fine; find it by identity.
                self._remove_handler(None, "aio_set_event_notifier", notifier=notifier)
            else:
                self._remove_handler(notifier.fd, "aio_set_event_notifier")
            return
        fd = notifier._check("aio_set_event_notifier").read_fd
        self._add_handler(fd, io_read, None, notifier, is_external, notifier=notifier)

    def _find(self, fd: int | None, notifier: EventNotifier | None = None) -> AioHandler | None:
        for node in self._handlers:
            if node.deleted:
                continue
            if notifier is not None and node.notifier is notifier:
                return node
            if fd is not None and node.fd == fd:
                return node
        return None

    def _add_handler(
        self,
        fd: int,
        io_read: Callable[[Any], None] | None,
        io_write: Callable[[Any], None] | None,
        opaque: Any,
        is_external: bool,
        *,
        notifier: EventNotifier | None = None,
        own: bool = False,
    ) -> None:
        implicit = False if own else self._enter("aio_set_fd_handler")
        try:
            node = self._find(fd)
            if node is None:
                node = AioHandler(fd, self._p.new_id())
                node.is_ctx_notifier = own
                self._handlers.append(node)
            elif node.is_ctx_notifier:
                raise UsageError(
                    f"fd {fd} is {self.name}'s own notifier; it cannot be given another handler"
                )
            node.io_read = io_read
            node.io_write = io_write
            node.opaque = opaque
            node.notifier = notifier
            node.is_external = bool(is_external)
            node.events = (_READ_EVENTS if io_read else 0) | (_WRITE_EVENTS if io_write else 0)
            self._poll_gen += 1
            if not own:
                self._publish_handlers()
            tr = self._p.tracer
            if tr is not None and not own:
                ext = int(node.is_external)
                r, w = int(io_read is not None), int(io_write is not None)
                what = f"fd={fd} r={r} w={w} ext={ext}"
                tr(TraceEvent("handler_set", self._p.current_thread(), self.id, node.id, what))
        finally:
            if implicit:
                self._lock.unlock()
        if not own:
            self.aio_notify()

    def _remove_handler(
        self, fd: int | None, what: str, *, notifier: EventNotifier | None = None
    ) -> None:
        implicit = self._enter(what)
        try:
            node = self._find(fd, notifier)
            if node is None:
                return
            if node.is_ctx_notifier:
                raise UsageError(f"fd {fd} is {self.name}'s own notifier; it cannot be removed")
            if self._walking_handlers:
                node.deleted = True
                node.revents = 0
                self._handlers_deleted = True
            else:
                self._handlers.remove(node)
            self._poll_gen += 1
            self._publish_handlers()
            tr = self._p.tracer
            if tr is not None:
                tr(TraceEvent("handler_remove", self._p.current_thread(), self.id, node.id))
        finally:
            if implicit:
                self._lock.unlock()
        self.aio_notify()

    def _publish_handlers(self) -> None:
        """Publish the live handlers for observers (the caller holds the context)."""
        view = tuple(
            (n.fd, n.io_read is not None, n.is_external)
            for n in self._handlers
            if not n.deleted and not n.is_ctx_notifier
        )
        self._handler_view.store(view, _RELEASE)

    def disable_external(self) -> None:
        """``aio_disable_external``: stop polling and dispatching external handlers (nests)."""
        tr = self._p.tracer
        if tr is not None:  # before the change: a monitor's "disabled" covers the real one
            tr(TraceEvent("external_disable", self._p.current_thread(), self.id))
        self._external_disable_cnt.fetch_add(1)

    def enable_external(self) -> None:
        """``aio_enable_external``: undo one disable; the last one kicks the poller.

        The kick is the 2017 fix ("aio: add missing aio_notify() to aio_enable_external()"):
        a poller asleep with external fds left out of its set must rebuild it.
        """
        cnt = self._external_disable_cnt
        while True:
            old = cnt.load()
            if old <= 0:
                raise UsageError(
                    f"aio_enable_external on {self.name} without a matching aio_disable_external"
                )
            if cnt.compare_exchange(old, old - 1) == old:
                break
        if old == 1:
            self.aio_notify()
        tr = self._p.tracer
        if tr is not None:  # after the change (and the kick): see disable_external
            tr(TraceEvent("external_enable", self._p.current_thread(), self.id, old - 1))

    @property
    def external_disabled(self) -> bool:
        """``aio_external_disabled``: external handlers are off now (one seq_cst load:
        safe from any thread)."""
        return bool(self._external_disable_cnt.load())

    def _update_poll_set(self) -> None:
        ext = self._external_disable_cnt.load(_RELAXED) > 0
        key = (self._poll_gen, ext)
        if key == self._poll_set_key:
            return
        want: dict[int, int] = {}
        for node in self._handlers:
            if node.deleted or not node.events or (ext and node.is_external):
                continue
            want[node.fd] = want.get(node.fd, 0) | node.events
        poller = self._poller
        for fd in self._polled:
            if fd not in want:
                poller.unregister(fd)
        for fd, ev in want.items():
            if self._polled.get(fd) != ev:
                poller.register(fd, ev)
        self._polled = want
        self._poll_set_key = key

    def _dispatch_handlers(self) -> bool:
        progress = False
        self._walking_handlers += 1
        p = self._p
        tr = p.tracer
        try:
            ext = self._external_disable_cnt.load(_RELAXED) > 0
            for node in reversed(self._handlers):
                revents = node.revents & node.events
                node.revents = 0
                if not revents or node.deleted or (ext and node.is_external):
                    continue
                io_read = node.io_read
                if revents & _READ_EVENTS and io_read is not None:
                    if not node.is_ctx_notifier:
                        progress = True
                    self._call_handler(io_read, node, "fd_read", tr)
                io_write = node.io_write
                if not node.deleted and revents & _WRITE_EVENTS and io_write is not None:
                    progress = True
                    self._call_handler(io_write, node, "fd_write", tr)
        finally:
            self._walking_handlers -= 1
            if self._walking_handlers == 0 and self._handlers_deleted:
                self._handlers = [n for n in self._handlers if not n.deleted]
                self._handlers_deleted = False
        return progress

    def _call_handler(
        self, cb: Callable[[Any], None], node: AioHandler, kind: str, tr: Any
    ) -> None:
        if tr is not None:
            tr(TraceEvent("handler_run_begin", self._p.current_thread(), self.id, node.id, kind))
        try:
            cb(node.opaque)
        except CallbackError:
            raise  # already names the callback that failed
        except Exception as e:
            raise CallbackError(kind, callable_name(cb), e) from e
        if tr is not None:
            tr(TraceEvent("handler_run_end", self._p.current_thread(), self.id, node.id, kind))

    # ------------------------------------------------------------------------------------
    # Timers
    # ------------------------------------------------------------------------------------
    def timer_new(
        self, clock: ClockType | int, scale: int, cb: Callable[[Any], None], opaque: Any = None
    ) -> QEMUTimer:
        """``aio_timer_new``: a timer on ``clock`` whose expiry runs in this context."""
        self._check_open("aio_timer_new")
        return self.tlg.new_timer(clock, scale, cb, opaque)

    # ------------------------------------------------------------------------------------
    # The loop
    # ------------------------------------------------------------------------------------
    def aio_poll(self, blocking: bool) -> bool:
        """Run one iteration; see the module docstring for the contract.

        Raises:
            ContextNotHeldError: the caller neither holds the context nor is its home thread.
            CallbackError: a callback raised (the context stays consistent).
            InvalidFdError: a registered fd was closed behind the context's back.
        """
        implicit = self._enter("aio_poll")
        try:
            return self._poll_locked(bool(blocking))
        finally:
            if implicit:
                self._lock.unlock()

    def _poll_locked(self, blocking: bool) -> bool:
        p = self._p
        tr = p.tracer
        if tr is not None:
            tr(TraceEvent("poll_begin", p.current_thread(), self.id, int(blocking)))
        # poll_end closes every poll_begin, also when the iteration raises (a callback's
        # error, a closed fd, a thread unwound at the end of a controlled run), so monitors
        # never see the context released "inside" a poll that had in fact ended; its detail
        # is "raised" then (the iteration did not reach its end).
        ended = "raised"
        try:
            notify_me = self.notify_me
            if blocking:
                notify_me.fetch_add(2, _RELAXED)
                # Order the notify_me store before reading BH flags and timers (5710a3e09f);
                # pairs with the fence at the top of aio_notify.
                p.fence(Fence.MB)
            self._walking_handlers += 1
            try:
                self._update_poll_set()
                timeout = self._compute_timeout() if blocking else 0
                if tr is not None and timeout != 0:
                    tr(TraceEvent("poll_wait", p.current_thread(), self.id, timeout))
                self._poll_wait_ns = timeout
                ready = self._poller.poll(timeout)
                if tr is not None:
                    tr(TraceEvent("poll_woke", p.current_thread(), self.id, len(ready)))
            finally:
                self._poll_wait_ns = _NOT_POLLING
                if blocking:
                    notify_me.fetch_add(-2, _RELEASE)
                self._walking_handlers -= 1
            accepted = self.aio_notify_accept()
            bad: list[int] = []
            if ready:
                got = dict(ready)
                if not accepted and self._raw_notifier.read_fd in got:
                    # A waker is between writing the notifier and publishing `notified` (the
                    # 2015 order, 05e514b1d4).  Polling again would return at once and spin until
                    # it finishes; under the GIL that is a whole switch interval.  Let it run.
                    p.yield_now()
                for node in self._handlers:
                    rev = got.get(node.fd, 0)
                    node.revents = rev
                    if rev & POLLNVAL and not node.deleted:
                        bad.append(node.fd)
            if bad:
                for node in self._handlers:
                    node.revents = 0
                raise InvalidFdError(
                    f"fd {bad[0]} registered in {self.name} is no longer open; remove its handler "
                    "(aio_set_fd_handler with both callbacks None) before closing it"
                )
            progress = self._bh_poll()
            if self._handlers and ready:
                progress |= self._dispatch_handlers()
            progress |= self.tlg.run_timers()
            ended = ""
            return progress
        finally:
            if tr is not None:
                tr(TraceEvent("poll_end", p.current_thread(), self.id, 0, ended))

    # ------------------------------------------------------------------------------------
    # Thread pool and introspection
    # ------------------------------------------------------------------------------------
    def thread_pool(self) -> ThreadPool:
        """``aio_get_thread_pool``: this context's pool, created on first use."""
        self._check_open("aio_get_thread_pool")
        if self._pool is None:
            from ._threadpool import ThreadPool

            self._pool = ThreadPool(self)
        return self._pool

    def statistics(self) -> ContextStatistics:
        """A snapshot for tests and reports; safe from any thread, held or not.

        Reads the BH list under ``_bh_lock`` (as its adders and the reclaiming loop write
        it), the handlers through their published view (acquire: the tuple's contents were
        written before it was published), the lock under its mutex and the counters as
        relaxed atomics: no plain word shared without its lock.  Each counter is a value it
        had recently, in its own modification order (so never older than the caller's own
        last change of it); nothing is read *through* a counter, so an acquire or a seq_cst
        load would order nothing a reader of the snapshot could use, and the fields are not
        one atomic snapshot in any case.
        """
        with self._bh_lock:
            bhs = [b for b in self._bhs if not b.dummy]
            live = sum(1 for b in bhs if not b.deleted)
        return ContextStatistics(
            name=self.name,
            refcount=self._refcnt.load(_RELAXED),
            lock=self._lock.statistics(),
            bhs=live,
            scheduled_bhs=sum(1 for b in bhs if b.scheduled.load(_RELAXED)),
            handlers=len(self._handler_view.load(_ACQUIRE)),
            notify_me=self.notify_me.load(_RELAXED),
            external_disable_cnt=self._external_disable_cnt.load(_RELAXED),
        )

    def debug_snapshot(self) -> DebugSnapshot:
        """What a stall detector needs to judge this context from another thread.

        Safe from any thread, without the context lock, at any time (also after the
        context was closed); see :class:`DebugSnapshot` for what a racy read means.  The
        BH list is copied under ``_bh_lock`` (a leaf lock, held only briefly by BH adders
        and the reclaiming loop, never while blocking) and the handlers come from the view
        the holder publishes; only ``_poll_wait_ns``, ``_polled`` and ``_closed`` are read
        plain, on purpose (fields for observers, which impl never reads unlocked).
        """
        wait = self._poll_wait_ns
        handlers = [h for h in self._handler_view.load(_ACQUIRE) if h[1]]
        kick = False
        scheduled: list[str] = []
        with self._bh_lock:
            bhs = list(self._bhs)
        for bh in bhs:
            if bh.scheduled.load(_RELAXED):
                if bh.dummy:
                    kick = True
                else:
                    scheduled.append(bh.name)
        return DebugSnapshot(
            name=self.name,
            closed=self._closed,
            polling=wait != _NOT_POLLING,
            poll_timeout_ns=wait if wait >= 0 else None,
            notifier_fd=self._raw_notifier.read_fd,
            read_fds=tuple(fd for fd, _, _ in handlers),
            external_fds=frozenset(fd for fd, _, ext in handlers if ext),
            polled_fds=frozenset(self._polled),
            kick_scheduled=kick,
            scheduled_bhs=tuple(scheduled),
            timer_deadline_ns=self.tlg.deadline_ns(),
            lock=self._lock.statistics(),
            external_disable_cnt=self._external_disable_cnt.load(_RELAXED),
        )

    @contextmanager
    def acquired(self, timeout: float | None = None) -> Iterator[AioContext]:
        """``with ctx.acquired(timeout=1.0):`` raises TimeoutError if not granted in time."""
        if not self.acquire(timeout):
            raise TimeoutError(f"could not acquire {self.name} within {timeout} s")
        try:
            yield self
        finally:
            self.release()
