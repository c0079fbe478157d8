"""The hot paths (issue 13): what an uncontended ``with ctx:`` and a one-shot BH cost in
seam operations, and that the by-hand mutex handling of the lock and of the real
platform's read-modify-writes releases on every way out.

Counted, not timed: an uncontended outermost ``with ctx:`` makes, on the way in and on
the way out, two relaxed loads of the owner cell (the nested fast path's test, then the
lock's own), one relaxed store and one internal-mutex round, whatever platform runs it.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from aioctx_verify.impl import AioContext, RealPlatform
from aioctx_verify.impl._lock import RFifoLock
from aioctx_verify.impl._platform import Ordering


class _CountingCell:
    def __init__(self, inner: Any, seen: Counter[str]) -> None:
        self._inner = inner
        self._seen = seen
        self.name = inner.name

    def load(self, order: Ordering = Ordering.SEQ_CST) -> Any:
        self._seen[f"load {self.name}"] += 1
        return self._inner.load(order)

    def store(self, value: Any, order: Ordering = Ordering.SEQ_CST) -> None:
        self._seen[f"store {self.name}"] += 1
        self._inner.store(value, order)

    def exchange(self, value: Any, order: Ordering = Ordering.SEQ_CST) -> Any:
        self._seen[f"exchange {self.name}"] += 1
        return self._inner.exchange(value, order)

    def compare_exchange(
        self, expected: Any, value: Any, order: Ordering = Ordering.SEQ_CST
    ) -> Any:
        self._seen[f"cmpxchg {self.name}"] += 1
        return self._inner.compare_exchange(expected, value, order)

    def fetch_add(self, delta: int, order: Ordering = Ordering.SEQ_CST) -> Any:
        self._seen[f"fetch_add {self.name}"] += 1
        return self._inner.fetch_add(delta, order)


class _CountingMutex:
    def __init__(self, inner: Any, name: str, seen: Counter[str]) -> None:
        self._inner = inner
        self._name = name
        self._seen = seen

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self._seen[f"acquire {self._name}"] += 1
        return bool(self._inner.acquire(blocking, timeout))

    def release(self) -> None:
        self._inner.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class _CountingPlatform(RealPlatform):
    """The real platform, counting cell operations and mutex acquisitions."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter[str] = Counter()

    def atomic(self, initial: Any, name: str = "") -> Any:
        return _CountingCell(super().atomic(initial, name), self.seen)

    def mutex(self, name: str = "") -> Any:
        return _CountingMutex(threading.Lock(), name, self.seen)

    def condition(self, mutex: Any) -> Any:
        return threading.Condition(mutex)


@pytest.fixture
def counted() -> Iterator[tuple[_CountingPlatform, AioContext]]:
    p = _CountingPlatform()
    ctx = AioContext(p, name="hot")
    yield p, ctx
    ctx.unref()


def test_an_uncontended_with_ctx_is_three_owner_accesses_and_one_mutex_round_each_way(
    counted: tuple[_CountingPlatform, AioContext],
) -> None:
    p, ctx = counted
    p.seen.clear()
    with ctx:
        entered = dict(p.seen)
    left = p.seen - Counter(entered)
    owner = "hot.lock.owner"
    assert entered == {f"load {owner}": 2, f"store {owner}": 1, "acquire hot.lock.mutex": 1}
    assert dict(left) == {f"load {owner}": 2, f"store {owner}": 1, "acquire hot.lock.mutex": 1}


def test_a_nested_level_is_one_owner_load_and_no_mutex(
    counted: tuple[_CountingPlatform, AioContext],
) -> None:
    p, ctx = counted
    with ctx:
        p.seen.clear()
        with ctx:
            assert ctx._lock.depth == 2
        assert dict(p.seen) == {"load hot.lock.owner": 3}  # in, depth, out
        assert ctx.held_by_me()


def test_with_ctx_goes_through_the_lock_methods(monkeypatch: pytest.MonkeyPatch) -> None:
    """An outermost ``with ctx:`` is RFifoLock.lock and unlock themselves (a nested one,
    untraced, takes the fast path), so a mutant or a probe that patches them sees it."""
    calls: list[str] = []
    lock, unlock = RFifoLock.lock, RFifoLock.unlock

    def counting_lock(self: RFifoLock, timeout: float | None = None) -> bool:
        calls.append("lock")
        return bool(lock(self, timeout))

    def counting_unlock(self: RFifoLock) -> None:
        calls.append("unlock")
        unlock(self)

    monkeypatch.setattr(RFifoLock, "lock", counting_lock)
    monkeypatch.setattr(RFifoLock, "unlock", counting_unlock)
    ctx = AioContext(name="through")
    try:
        with ctx, ctx:
            pass
    finally:
        ctx.unref()
    assert calls == ["lock", "unlock"]


@contextlib.contextmanager
def _held_elsewhere(lock: RFifoLock) -> Iterator[None]:
    """``lock`` held by another thread for the duration of the block (every wait bounded)."""
    got, go = threading.Event(), threading.Event()

    def owner() -> None:
        lock.lock()
        got.set()
        go.wait(30)
        lock.unlock()

    t = threading.Thread(target=owner)
    t.start()
    try:
        assert got.wait(30)
        yield
    finally:
        go.set()
        t.join(30)


def test_a_raising_contention_callback_leaves_the_mutex_free() -> None:
    p = RealPlatform()
    calls = [0]

    def cb() -> None:
        calls[0] += 1
        raise RuntimeError("kick failed")

    lock = RFifoLock(p, cb, name="raising")
    with _held_elsewhere(lock), pytest.raises(RuntimeError, match="kick failed"):
        lock.lock(timeout=30)
    assert calls[0] == 1
    # The internal mutex is free again: statistics take it.  The waiter's ticket is
    # still queued (it neither got the lock nor was abandoned), as before the split.
    assert lock._mutex.acquire(blocking=False)
    lock._mutex.release()


def test_a_timed_out_acquire_releases_the_mutex() -> None:
    p = RealPlatform()
    lock = RFifoLock(p, name="timed")
    with _held_elsewhere(lock):
        assert lock.lock(timeout=0.01) is False
        assert lock._mutex.acquire(blocking=False)
        lock._mutex.release()
    assert lock.lock(timeout=30)  # the abandoned ticket is skipped
    lock.unlock()


class _RaisingEq:
    def __eq__(self, other: object) -> bool:
        raise ValueError("no comparison")

    __hash__ = object.__hash__


def test_real_rmws_release_their_lock_when_a_comparison_raises() -> None:
    p = RealPlatform()
    cell = p.atomic(_RaisingEq(), "c")
    with pytest.raises(ValueError, match="no comparison"):
        cell.compare_exchange(1, 2)
    # The platform-wide RMW lock is free: the next RMWs go through.
    other = p.atomic(0, "n")
    assert other.fetch_add(1) == 0
    assert other.exchange(5) == 1
    assert other.compare_exchange(5, 6) == 5 and other.load() == 6


def test_real_new_id_is_a_fresh_increasing_integer() -> None:
    p = RealPlatform()
    ids = [p.new_id() for _ in range(5)]
    assert ids == sorted(set(ids)) and all(isinstance(i, int) for i in ids)
    assert RealPlatform.new_id(p) > ids[-1]  # the documented method draws from the same count


def test_a_oneshot_schedule_makes_its_cells_and_counts_one_deleted_bh(
    counted: tuple[_CountingPlatform, AioContext],
) -> None:
    p, ctx = counted
    before = ctx._bh_deleted
    p.seen.clear()
    ctx.bh_schedule_oneshot(lambda _: None)
    seen = dict(p.seen)
    assert ctx._bh_deleted == before + 1
    assert seen["acquire hot.bh_lock"] == 1
    assert seen["load ctx.bh_deleted"] == 1 and seen["store ctx.bh_deleted"] == 1
    assert ctx.aio_poll(False) is True
    assert ctx._bh_deleted == 0
