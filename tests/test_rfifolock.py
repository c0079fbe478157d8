"""RFifoLock: recursive FIFO ticket lock with a contention callback.

Ported from the behaviour of QEMU's tests/test-rfifolock.c (2014; qemu-semantics.md 10.1:
/nesting and /callback) and extended to the properties of section 1: strict FIFO hand-over,
a re-acquiring owner queues behind waiters, the callback runs in the waiter on every
unsuccessful wake-up, plus our additions (timed acquire, statistics, recoverable misuse).

Determinism: a waiter is known to be queued when its contention callback has run (the
callback runs after the ticket is taken, before the first wait); the tests then also check
``statistics().waiters``.  Every wait is bounded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from aioctx_verify.impl import LockNotHeldError, NotOwnerError, RealPlatform, RFifoLock
from tests.conftest import WAIT

#: A timed acquire that is expected to give up waits this long.
SHORT = 0.05


class Waiters:
    """Contention callback that records who waited, and lets the test wait for it."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self._cond = threading.Condition()

    def __call__(self) -> None:
        # Runs in the waiting thread with the lock's internal mutex held: touch only our own
        # state, never the RFifoLock.
        with self._cond:
            self.calls.append(threading.get_ident())
            self._cond.notify_all()

    def count(self, ident: int) -> int:
        with self._cond:
            return self.calls.count(ident)

    def wait_for(self, ident: int, times: int = 1) -> None:
        with self._cond:
            ok = self._cond.wait_for(lambda: self.calls.count(ident) >= times, WAIT)
        assert ok, f"thread {ident} did not hit the contention callback {times}x in {WAIT} s"


class Worker:
    """A thread that runs ``body`` and keeps its exception for the test."""

    def __init__(self, body: Callable[[], None], name: str) -> None:
        self.error: BaseException | None = None
        self._body = body
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()
        assert self.thread.ident is not None
        self.ident: int = self.thread.ident

    def _run(self) -> None:
        try:
            self._body()
        except BaseException as e:
            self.error = e

    def join(self) -> None:
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), f"{self.thread.name} did not finish in {WAIT} s"
        if self.error is not None:
            raise self.error


@pytest.fixture
def platform() -> RealPlatform:  # the lock uses no notifier: one platform is enough
    return RealPlatform()


@pytest.fixture
def waiters() -> Waiters:
    return Waiters()


@pytest.fixture
def lock(platform: RealPlatform, waiters: Waiters) -> Iterator[RFifoLock]:
    lk = RFifoLock(platform, waiters, name="test-lock")
    yield lk
    assert lk.statistics().depth == 0, "a test left the lock held"


def locker(
    lk: RFifoLock,
    order: list[str],
    tag: str,
    hold: threading.Event | None = None,
    entered: threading.Event | None = None,
) -> Callable[[], None]:
    """Body of a thread that takes the lock once (bounded), records ``tag`` and releases
    (after ``hold`` is set, if given; ``entered`` is set once it owns the lock)."""

    def body() -> None:
        assert lk.lock(WAIT), f"{tag} was not granted the lock within {WAIT} s"
        try:
            order.append(tag)
            if entered is not None:
                entered.set()
            if hold is not None:
                assert hold.wait(WAIT)
        finally:
            lk.unlock()

    return body


# ------------------------------------------------------------------------------------------
# /nesting
# ------------------------------------------------------------------------------------------
def test_nesting_three_deep(platform: RealPlatform) -> None:
    """/nesting: no callback; lock 3x and unlock 3x from one thread without deadlock."""
    lk = RFifoLock(platform, None)
    me = threading.get_ident()
    for depth in (1, 2, 3):
        assert lk.lock(WAIT)
        s = lk.statistics()
        assert (s.owner, s.depth, s.waiters) == (me, depth, 0)
        assert lk.held_by_me()
    for depth in (2, 1, 0):
        lk.unlock()
        assert lk.depth == depth
    s = lk.statistics()
    assert (s.owner, s.depth, s.waiters) == (None, 0, 0)
    assert not lk.held_by_me()
    # Fully released: another thread gets it at once.
    other = Worker(locker(lk, [], "other"), "other")
    other.join()


def test_uncontended_and_nested_acquires_never_call_callback(
    lock: RFifoLock, waiters: Waiters
) -> None:
    for _ in range(3):
        lock.lock()
    for _ in range(3):
        lock.unlock()
    lock.lock()
    lock.unlock()
    assert waiters.calls == []


def test_nested_owner_keeps_lock_until_last_unlock(lock: RFifoLock, waiters: Waiters) -> None:
    order: list[str] = []
    lock.lock()
    lock.lock()
    w = Worker(locker(lock, order, "waiter"), "waiter")
    waiters.wait_for(w.ident)
    lock.unlock()
    s = lock.statistics()
    assert (s.owner, s.depth, s.waiters) == (threading.get_ident(), 1, 1)
    assert order == []
    lock.unlock()
    w.join()
    assert order == ["waiter"]


# ------------------------------------------------------------------------------------------
# /callback
# ------------------------------------------------------------------------------------------
def test_contention_callback_runs_in_waiter_while_owner_holds(platform: RealPlatform) -> None:
    """/callback: the waiter calls the callback (in its own thread) before it sleeps."""
    called = threading.Event()
    seen: list[tuple[int, object, int]] = []
    box: list[RFifoLock] = []

    def cb() -> None:  # the owner (a relaxed cell) and the waiter's own depth, 0
        seen.append((threading.get_ident(), box[0]._owner, box[0].depth))
        called.set()

    lk = RFifoLock(platform, cb)
    box.append(lk)
    done = threading.Event()

    def body() -> None:
        assert lk.lock(WAIT)
        done.set()
        lk.unlock()

    lk.lock()
    w = Worker(body, "waiter")
    assert called.wait(WAIT), "contention callback did not run while the owner held the lock"
    me = threading.get_ident()
    assert seen[0] == (w.ident, me, 0), "callback must run in the waiter, the owner holding"
    assert not done.is_set()
    assert lk.statistics().waiters == 1
    lk.unlock()
    w.join()
    assert done.is_set()
    assert lk.statistics().depth == 0


def test_callback_runs_again_after_wakeup_that_did_not_grant(
    lock: RFifoLock, waiters: Waiters
) -> None:
    """Every release wakes all waiters; one not yet entitled calls the callback again."""
    order: list[str] = []
    hold_first = threading.Event()
    first_in = threading.Event()
    lock.lock()
    first = Worker(locker(lock, order, "first", hold_first, first_in), "first")
    waiters.wait_for(first.ident)
    second = Worker(locker(lock, order, "second"), "second")
    waiters.wait_for(second.ident)
    assert lock.statistics().waiters == 2
    lock.unlock()  # grants `first`; wakes `second` too, which must wait on
    waiters.wait_for(second.ident, times=2)
    assert first_in.wait(WAIT)
    assert order == ["first"]
    assert waiters.count(first.ident) == 1
    hold_first.set()
    first.join()
    second.join()
    assert order == ["first", "second"]


# ------------------------------------------------------------------------------------------
# FIFO
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 6])
def test_waiters_are_granted_in_arrival_order(lock: RFifoLock, waiters: Waiters, n: int) -> None:
    order: list[str] = []
    lock.lock()
    workers = []
    for k in range(1, n + 1):
        w = Worker(locker(lock, order, f"w{k}"), f"w{k}")
        waiters.wait_for(w.ident)
        assert lock.statistics().waiters == k
        workers.append(w)
    lock.unlock()
    for w in workers:
        w.join()
    assert order == [f"w{k}" for k in range(1, n + 1)]
    s = lock.statistics()
    assert (s.owner, s.depth, s.waiters) == (None, 0, 0)


def test_release_and_reacquire_queues_behind_waiters(lock: RFifoLock, waiters: Waiters) -> None:
    """The owner cannot barge: after unlock, its lock() queues behind the waiter."""
    order: list[str] = []
    me = threading.get_ident()
    hold = threading.Event()
    lock.lock()
    w = Worker(locker(lock, order, "waiter", hold), "waiter")
    waiters.wait_for(w.ident)
    lock.unlock()
    # The waiter is entitled now and holds on until `hold`: the owner must wait its turn.
    assert not lock.lock(SHORT), "the releasing owner barged ahead of a queued waiter"
    assert waiters.count(me) >= 1, "the re-acquiring owner had to wait (callback ran)"
    hold.set()
    assert lock.lock(WAIT)
    order.append("owner")
    lock.unlock()
    w.join()
    assert order == ["waiter", "owner"]


def test_owner_reacquire_loop_hands_over_to_every_waiter(lock: RFifoLock, waiters: Waiters) -> None:
    """An owner looping release/acquire (like an IOThread) lets every queued waiter in."""
    order: list[str] = []
    lock.lock()
    workers = []
    for k in range(3):
        w = Worker(locker(lock, order, f"w{k}"), f"w{k}")
        waiters.wait_for(w.ident)
        workers.append(w)
    lock.unlock()
    assert lock.lock(WAIT)
    order.append("owner")
    lock.unlock()
    for w in workers:
        w.join()
    assert order == ["w0", "w1", "w2", "owner"]


# ------------------------------------------------------------------------------------------
# Timed acquire (our addition)
# ------------------------------------------------------------------------------------------
def test_timed_acquire_uncontended_and_nested(lock: RFifoLock) -> None:
    assert lock.lock(0)
    assert lock.lock(0)
    assert lock.depth == 2
    lock.unlock()
    lock.unlock()


def test_timed_acquire_gives_up_and_lock_stays_usable(lock: RFifoLock, waiters: Waiters) -> None:
    got: list[bool] = []
    lock.lock()
    w = Worker(lambda: got.append(lock.lock(SHORT)), "impatient")
    w.join()
    assert got == [False]
    s = lock.statistics()
    assert (s.owner, s.depth, s.waiters) == (threading.get_ident(), 1, 0)
    lock.unlock()
    s = lock.statistics()
    assert (s.owner, s.depth, s.waiters) == (None, 0, 0)
    # The abandoned ticket does not block anyone.
    order: list[str] = []
    Worker(locker(lock, order, "later"), "later").join()
    assert lock.lock(WAIT)
    lock.unlock()
    assert order == ["later"]


def test_abandoned_ticket_between_waiters_is_skipped(lock: RFifoLock, waiters: Waiters) -> None:
    """Tickets: owner, B (waits), A (gives up), C (waits): B then C are granted."""
    order: list[str] = []
    got: list[bool] = []
    lock.lock()
    b = Worker(locker(lock, order, "B"), "B")
    waiters.wait_for(b.ident)
    a = Worker(lambda: got.append(lock.lock(SHORT)), "A")
    a.join()
    assert got == [False]
    c = Worker(locker(lock, order, "C"), "C")
    waiters.wait_for(c.ident)
    assert lock.statistics().waiters == 2, "an abandoned ticket is not a waiter"
    lock.unlock()
    b.join()
    c.join()
    assert order == ["B", "C"]
    s = lock.statistics()
    assert (s.owner, s.depth, s.waiters) == (None, 0, 0)


def test_timed_acquire_succeeds_when_released_in_time(lock: RFifoLock, waiters: Waiters) -> None:
    got: list[bool] = []

    def body() -> None:
        ok = lock.lock(WAIT)
        got.append(ok)
        if ok:
            lock.unlock()

    lock.lock()
    w = Worker(body, "patient")
    waiters.wait_for(w.ident)
    lock.unlock()
    w.join()
    assert got == [True]


# ------------------------------------------------------------------------------------------
# Statistics and misuse (raise instead of QEMU's abort; the lock is left as it was)
# ------------------------------------------------------------------------------------------
def test_statistics_track_owner_depth_waiters(lock: RFifoLock, waiters: Waiters) -> None:
    s = lock.statistics()
    assert (s.owner, s.depth, s.waiters) == (None, 0, 0)
    me = threading.get_ident()
    lock.lock()
    lock.lock()
    hold = threading.Event()
    entered = threading.Event()
    w1 = Worker(locker(lock, [], "w1", hold, entered), "w1")
    waiters.wait_for(w1.ident)
    w2 = Worker(locker(lock, [], "w2"), "w2")
    waiters.wait_for(w2.ident)
    s = lock.statistics()
    assert (s.owner, s.depth, s.waiters) == (me, 2, 2)
    lock.unlock()
    lock.unlock()
    assert entered.wait(WAIT)
    s = lock.statistics()  # the depth is the caller's own: w1 holds it
    assert (s.owner, s.depth, s.waiters) == (w1.ident, 0, 1)
    hold.set()
    w1.join()
    w2.join()
    s = lock.statistics()
    assert (s.owner, s.depth, s.waiters) == (None, 0, 0)


def test_unlock_of_free_lock_raises(lock: RFifoLock) -> None:
    with pytest.raises(LockNotHeldError):
        lock.unlock()
    assert lock.lock(0)
    lock.unlock()
    with pytest.raises(LockNotHeldError):
        lock.unlock()


def test_unlock_by_non_owner_raises_and_leaves_lock_intact(lock: RFifoLock) -> None:
    lock.lock()
    errors: list[BaseException] = []

    def intruder() -> None:
        try:
            lock.unlock()
        except NotOwnerError as e:
            errors.append(e)

    Worker(intruder, "intruder").join()
    assert len(errors) == 1
    s = lock.statistics()
    assert (s.owner, s.depth) == (threading.get_ident(), 1)
    lock.unlock()


def test_mutual_exclusion_under_contention(lock: RFifoLock) -> None:
    inside = 0
    max_inside = 0
    count = 0
    guard = threading.Lock()

    def body() -> None:
        nonlocal inside, max_inside, count
        for _ in range(300):
            assert lock.lock(WAIT)
            try:
                assert lock.lock(0)  # nested
                with guard:
                    inside += 1
                    max_inside = max(max_inside, inside)
                count += 1
                with guard:
                    inside -= 1
                lock.unlock()
            finally:
                lock.unlock()

    workers = [Worker(body, f"m{i}") for i in range(4)]
    for w in workers:
        w.join()
    assert max_inside == 1
    assert count == 1200


def test_contention_while_nested_waits_for_the_last_release(
    lock: RFifoLock, waiters: Waiters
) -> None:
    """Another thread's acquire while the owner is nested: it queues and kicks (callback)
    once, is granted only at the outermost release, and the owner's nested acquires and
    releases meanwhile take no mutex and run no callback of their own."""
    me = threading.get_ident()
    order: list[str] = []
    lock.lock()
    lock.lock()
    w = Worker(locker(lock, order, "waiter"), "waiter")
    waiters.wait_for(w.ident)
    for _ in range(3):  # nest deeper and back while the waiter waits
        assert lock.lock(SHORT)
        lock.unlock()
    assert lock.depth == 2 and lock.statistics().waiters == 1 and order == []
    assert waiters.count(me) == 0
    lock.unlock()
    assert lock.held_by_me() and order == []
    lock.unlock()
    w.join()
    assert order == ["waiter"] and not lock.held_by_me()
