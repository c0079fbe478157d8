"""The context lock: recursive, FIFO among waiters, with a contention callback.

Prior art: QEMU's ``RFifoLock`` (util/rfifolock.c, Stefan Hajnoczi, QEMU 2.0, 2014; see
shared/reference/qemu-semantics.md section 1).  Behaviour kept from it:

* A ticket lock: ``tail`` hands out tickets, ``head`` is the ticket entitled to the lock,
  so waiters are served strictly in arrival order.  A thread that releases and immediately
  re-acquires queues *behind* existing waiters: that is what lets an IOThread looping
  ``acquire; aio_poll(ctx, True); release`` hand the context to a waiting thread.
* Recursion by the owner (``nesting``) never waits and never calls the callback.
* The contention callback runs in the *waiting* thread, before the first wait and after
  every wake-up that did not grant the lock, with the internal mutex held; it must not touch
  this lock.  The AioContext's callback kicks the owner out of a blocking ``aio_poll``.

Differences, on purpose: a release by a thread that does not own the lock, or of a lock
nobody holds, raises (:class:`NotOwnerError` / :class:`LockNotHeldError`) and leaves the lock
exactly as it was, where QEMU aborts; and :meth:`RFifoLock.lock` takes an optional timeout
(a waiter that gives up leaves its ticket marked abandoned, skipped when ``head`` reaches it)
so tests can bound every wait.

The owner is an atomic cell (relaxed), written under the internal mutex when the lock is
granted and when its last level is released (back to None); the nesting depth is a plain
field that only the owner touches.  "Do I hold it?" is one relaxed load of the owner: the
only thread that ever stores ``me`` is ``me``, and its own later store of None is after it
in coherence order, so it reads ``me`` exactly while it holds the lock, on any memory model
and without a fence (taking the mutex there would be a full barrier on every
``aio_poll``, and would hide the missing barriers the weak-memory explorer looks for).
The nested fast path used to read owner and depth as two plain words outside the mutex,
which the controlled platform's race detector (:mod:`aioctx_verify.stress.controlled`)
reported: under weak memory a former owner could pair a new owner's depth with its own
stale id.  It also reported :meth:`RFifoLock.statistics` reading the depth in any thread
(under the mutex, which the owner's nested fast path does not take): so the depth a
snapshot reports is the *caller's own* (0 unless it holds the lock), which only the owner
can read exactly, and whether the lock is held comes from the owner, which every grant and
last release write under the mutex.
PYTEST_DONT_REWRITE (why: impl/__init__.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from ._errors import LockNotHeldError, NotOwnerError
from ._platform import AtomicCell, Ordering, Platform, ThreadId, TraceEvent

_RELAXED = Ordering.RELAXED

__all__ = ["LockStatistics", "RFifoLock"]


@dataclass(frozen=True, slots=True)
class LockStatistics:
    """A snapshot of the lock (for tests, monitors and reports).

    ``depth`` is the calling thread's own nesting depth: 0 unless it is the owner (the
    owner's nested acquires change the depth without the lock's mutex, so no other thread
    can read it without a data race).
    """

    owner: ThreadId | None
    depth: int
    waiters: int
    #: Tickets served so far (grants and abandoned waits): two snapshots with the same
    #: ``served`` saw no waiter move on in between.
    served: int = 0


class RFifoLock:
    """Recursive FIFO lock with a contention callback.

    Args:
        platform: the concurrency seam.
        contention_cb: called (in the waiting thread, internal mutex held) when a thread
            must wait; ``None`` for none.
        name: for error messages.
        trace_id: the context id reported in trace events.
    """

    __slots__ = (
        "_abandoned",
        "_cb",
        "_cond",
        "_head",
        "_me",
        "_mutex",
        "_nesting",
        "_owner_cell",
        "_platform",
        "_tail",
        "name",
        "trace_id",
    )

    def __init__(
        self,
        platform: Platform,
        contention_cb: Callable[[], None] | None = None,
        *,
        name: str = "lock",
        trace_id: int = 0,
    ) -> None:
        self._platform = platform
        self._mutex = platform.mutex(f"{name}.mutex")
        self._cond = platform.condition(self._mutex)
        self._head = 0  # ticket entitled to own the lock (guarded by _mutex)
        self._tail = 0  # next ticket to hand out (guarded by _mutex)
        self._abandoned: set[int] = set()  # tickets of waiters that timed out (_mutex)
        # The owner: stored (relaxed) under _mutex at a grant and at the last release; read
        # (relaxed) by anyone, see the module docstring.  The depth: the owner's only.
        self._owner_cell: AtomicCell[ThreadId | None] = platform.atomic(None, f"{name}.owner")
        self._nesting = 0
        self._cb = contention_cb
        self._me = platform.current_thread
        self.name = name
        self.trace_id = trace_id

    def __repr__(self) -> str:
        s = self.statistics()
        return f"<RFifoLock {self.name} owner={s.owner} depth={s.depth} waiters={s.waiters}>"

    # The owner as a property, for the cold paths (statistics, a refused release) and for
    # tools; lock, unlock and held_by_me load and store the cell themselves: the same one
    # relaxed access, without two extra Python calls per access.
    @property
    def _owner(self) -> ThreadId | None:
        return self._owner_cell.load(_RELAXED)

    @_owner.setter
    def _owner(self, me: ThreadId | None) -> None:
        self._owner_cell.store(me, _RELAXED)

    # -- queries ---------------------------------------------------------------------------
    def held_by_me(self) -> bool:
        """Whether the calling thread owns the lock (one relaxed load, no fence)."""
        return self._owner_cell.load(_RELAXED) == self._me()

    @property
    def depth(self) -> int:
        """The calling thread's nesting depth: 0 unless it owns the lock."""
        return self._nesting if self._owner_cell.load(_RELAXED) == self._me() else 0

    def statistics(self) -> LockStatistics:
        me = self._me()
        with self._mutex:
            # Under the mutex the owner is None exactly when the depth is 0: both change
            # together there (a grant, a last release); the depth is read by its owner only.
            owner = self._owner
            held = owner is not None
            return LockStatistics(
                owner=owner,
                depth=self._nesting if owner == me else 0,
                waiters=self._tail - self._head - (1 if held else 0) - len(self._abandoned),
                served=self._head,
            )

    # -- lock / unlock ---------------------------------------------------------------------
    def lock(self, timeout: float | None = None) -> bool:
        """Acquire (recursively).  Returns False only if ``timeout`` (seconds) ran out."""
        me = self._me()
        if self._owner_cell.load(_RELAXED) == me and self._nesting > 0:
            self._nesting += 1
            if self._platform.tracer is not None:
                self._trace("acquire", me, self._nesting)
            return True
        # The mutex is taken by hand, not by ``with``: on CPython 3.11 a ``with`` on a C
        # lock costs more than the lock itself, and an uncontended ``with ctx:`` takes this
        # mutex twice; ``try``/``finally`` costs nothing until something raises.
        mutex = self._mutex
        mutex.acquire()
        try:
            ticket = self._tail
            self._tail = ticket + 1
            if ticket != self._head and not self._wait_turn(me, ticket, timeout):
                return False
            self._owner_cell.store(me, _RELAXED)
            self._nesting = 1
            # Traced while the ticket mutex is held, so the trace orders this grant
            # before any later waiter's ``lock_wait`` (the P1 FIFO rule reads that order).
            if self._platform.tracer is not None:
                self._trace("acquire", me, 1)
        finally:
            mutex.release()
        return True

    def _wait_turn(self, me: ThreadId, ticket: int, timeout: float | None) -> bool:
        """Wait, ``_mutex`` held, until ``ticket`` is served (True) or ``timeout`` ran out
        (False, the ticket marked abandoned)."""
        self._trace("lock_wait", me, ticket)
        deadline = None
        if timeout is not None:
            deadline = self._platform.monotonic_ns() + int(timeout * 1e9)
        while ticket != self._head:
            if self._cb is not None:
                self._cb()
            if deadline is None:
                self._cond.wait()
                continue
            left = deadline - self._platform.monotonic_ns()
            if left <= 0 or not self._cond.wait(left / 1e9):
                if ticket == self._head:
                    break
                if self._platform.monotonic_ns() >= deadline:
                    self._abandoned.add(ticket)
                    self._trace("lock_abandon", me, ticket)
                    return False
        return True

    def unlock(self) -> None:
        """Release one level; the last release hands the lock to the next ticket."""
        me = self._me()
        if self._owner_cell.load(_RELAXED) != me:
            self._refuse(me)
        depth = self._nesting
        if self._platform.tracer is not None:
            self._trace("release", me, depth - 1)
        if depth > 1:
            self._nesting = depth - 1
            return
        mutex = self._mutex
        mutex.acquire()  # by hand, as in lock()
        try:
            self._nesting = 0
            self._owner_cell.store(None, _RELAXED)
            head = self._head + 1
            if self._abandoned:
                while head in self._abandoned:
                    self._abandoned.discard(head)
                    head += 1
            self._head = head
            if self._tail != head:  # somebody holds a ticket: wake the waiters
                self._cond.notify_all()
        finally:
            mutex.release()

    def _refuse(self, me: ThreadId) -> NoReturn:
        """Raise for a release by ``me``, which does not own the lock."""
        with self._mutex:
            owner = self._owner
        if owner is None:
            raise LockNotHeldError(
                f"cannot release {self.name}: it is not held by any thread; "
                "every release must match an earlier acquire"
            )
        raise NotOwnerError(
            f"cannot release {self.name} from thread {me}: it is owned by thread "
            f"{owner}; only the owner may release it"
        )

    def _trace(self, kind: str, me: ThreadId, obj: int) -> None:
        tr = self._platform.tracer
        if tr is not None:
            tr(TraceEvent(kind, me, self.trace_id, obj, self.name))
