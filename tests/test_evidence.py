"""stuck_evidence: the structural evidence that turns a real-thread wait that ran out into a
LIVE failure (else the run is inconclusive).  It must see a lost wake-up and a lock nobody
takes, and must not mistake an idle loop or a lock hand-off in progress for either."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from aioctx_verify.impl import IOThread, LockStatistics, RealPlatform
from aioctx_verify.impl._platform import Poller
from aioctx_verify.stress.mutation import stuck_evidence

pytestmark = pytest.mark.timeout(60)


class _SignallingPoller:
    """The real poller; sets ``asleep`` when a poll without a timeout begins."""

    def __init__(self, inner: Poller, asleep: threading.Event) -> None:
        self._inner = inner
        self._asleep = asleep

    def register(self, fd: int, events: int) -> None:
        self._inner.register(fd, events)

    def unregister(self, fd: int) -> None:
        self._inner.unregister(fd)

    def poll(self, timeout_ns: int) -> Sequence[tuple[int, int]]:
        if timeout_ns < 0:
            self._asleep.set()
        return self._inner.poll(timeout_ns)


class _SignallingPlatform(RealPlatform):
    def __init__(self) -> None:
        super().__init__()
        self.asleep = threading.Event()

    def poller(self) -> Poller:
        return _SignallingPoller(super().poller(), self.asleep)


@pytest.fixture
def sleeper() -> Iterator[tuple[_SignallingPlatform, IOThread]]:
    plat = _SignallingPlatform()
    it = IOThread(plat, name="sleeper")
    plat.asleep.clear()
    it.start()
    try:
        yield plat, it
    finally:
        it.ctx.aio_notify()
        it.stop()
        it.join(30.0)


def _asleep(plat: _SignallingPlatform, it: IOThread) -> None:
    """Until the IOThread is inside an unbounded poll (the poller's own signal)."""
    for _ in range(100):
        assert plat.asleep.wait(30.0), "the IOThread never went to sleep"
        plat.asleep.clear()  # before the check: a later sleep sets it again
        if it.ctx.debug_snapshot().asleep:
            return
    raise AssertionError("the IOThread never stayed asleep")


def test_an_idle_iothread_is_not_stuck(sleeper: tuple[_SignallingPlatform, IOThread]) -> None:
    plat, it = sleeper
    _asleep(plat, it)
    assert stuck_evidence([it], window=0.05) is None


def test_a_bh_flagged_behind_the_sleepers_back_is_evidence(
    sleeper: tuple[_SignallingPlatform, IOThread],
) -> None:
    plat, it = sleeper
    ran = threading.Event()
    bh = it.ctx.bh_new(lambda _o: ran.set())
    _asleep(plat, it)
    bh.scheduled.store(True)  # a schedule whose aio_notify was lost
    evidence = stuck_evidence([it], window=0.05)
    assert evidence is not None and "asleep in aio_poll" in evidence and "bh:" in evidence
    it.ctx.aio_notify()  # the rescue: the BH runs
    assert ran.wait(30.0)
    assert stuck_evidence([it], window=0.05) is None


@dataclass
class _Snap:
    lock: LockStatistics


class _FakeContext:
    """A context whose lock statistics follow a script, one entry per snapshot."""

    def __init__(self, *stats: LockStatistics) -> None:
        self.name = "fake"
        self._stats = list(stats)

    def debug_snapshot(self) -> _Snap:
        return _Snap(self._stats.pop(0) if len(self._stats) > 1 else self._stats[0])


def _stats(owner: int | None, waiters: int, served: int) -> LockStatistics:
    return LockStatistics(owner=owner, depth=0, waiters=waiters, served=served)


def _evidence(ctx: Any) -> str | None:
    return stuck_evidence([], [ctx], window=0.01)


def test_a_free_lock_whose_waiters_never_move_is_evidence() -> None:
    got = _evidence(_FakeContext(_stats(None, 2, 5), _stats(None, 2, 5)))
    assert got is not None and "lock free with 2 waiter(s) queued" in got


@pytest.mark.parametrize(
    "second",
    [
        _stats(7, 1, 6),  # the next waiter took it
        _stats(None, 2, 6),  # a grant and a release in between, a new waiter queued
        _stats(None, 1, 5),  # a waiter gave up (its wait was bounded)
    ],
    ids=["taken", "handed-on", "waiter-left"],
)
def test_a_lock_hand_off_in_progress_is_not_evidence(second: LockStatistics) -> None:
    assert _evidence(_FakeContext(_stats(None, 2, 5), second)) is None


def test_lock_statistics_count_the_tickets_served() -> None:
    from aioctx_verify.impl import RFifoLock

    lock = RFifoLock(RealPlatform(), name="served")
    assert lock.statistics().served == 0
    for _ in range(3):
        lock.lock()
        lock.lock()  # nested: no new ticket
        lock.unlock()
        lock.unlock()
    assert lock.statistics().served == 3
