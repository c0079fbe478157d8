"""AioContext.debug_snapshot: what the real-thread stall detector reads instead of impl's
private fields (poll state, notifier and handler fds, scheduled BHs, lock, timers)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence

import pytest

from aioctx_verify.impl import (
    SCALE_MS,
    AioContext,
    ClockType,
    DebugSnapshot,
    IOThread,
    RealPlatform,
)
from aioctx_verify.impl._platform import Poller


class _HookedPoller:
    """The real poller, calling ``hook(timeout_ns)`` inside every poll."""

    def __init__(self, inner: Poller, hook: Callable[[int], None]) -> None:
        self._inner = inner
        self._hook = hook

    def register(self, fd: int, events: int) -> None:
        self._inner.register(fd, events)

    def unregister(self, fd: int) -> None:
        self._inner.unregister(fd)

    def poll(self, timeout_ns: int) -> Sequence[tuple[int, int]]:
        self._hook(timeout_ns)
        return self._inner.poll(timeout_ns)


class _HookedPlatform(RealPlatform):
    """Records the owning context's snapshot from inside each poll (one thread, no races)."""

    def __init__(self) -> None:
        super().__init__()
        self.ctx: AioContext | None = None
        self.inside: list[tuple[int, DebugSnapshot]] = []

    def poller(self) -> Poller:
        return _HookedPoller(super().poller(), self._hook)

    def _hook(self, timeout_ns: int) -> None:
        assert self.ctx is not None
        self.inside.append((timeout_ns, self.ctx.debug_snapshot()))


@pytest.fixture
def hooked() -> Iterator[tuple[_HookedPlatform, AioContext]]:
    plat = _HookedPlatform()
    ctx = AioContext(plat, name="snap")
    plat.ctx = ctx
    yield plat, ctx
    if not ctx.closed:
        ctx.unref()


def test_poll_state_inside_and_outside_the_poll(hooked: tuple[_HookedPlatform, AioContext]) -> None:
    plat, ctx = hooked
    idle = ctx.debug_snapshot()
    assert (idle.polling, idle.poll_timeout_ns, idle.asleep) == (False, None, False)
    ctx.aio_poll(False)  # a non-blocking poll: timeout 0
    ctx.notifier.set()  # so that the unbounded poll below returns at once
    ctx.aio_poll(True)
    timer = ctx.timer_new(ClockType.REALTIME, SCALE_MS, lambda _: None)
    timer.mod_ns(ctx.platform.monotonic_ns() + 60_000_000_000)
    ctx.notifier.set()
    ctx.aio_poll(True)  # bounded by the timer
    got = [(t, s.polling, s.poll_timeout_ns, s.asleep) for t, s in plat.inside]
    assert got[:2] == [(0, True, 0, False), (-1, True, None, True)]
    (t, polling, snap_timeout, asleep) = got[2]
    assert polling and not asleep and snap_timeout == t and 0 < t <= 60_000_000_000
    me = ctx.platform.current_thread()
    assert all(s.lock.owner == me and s.lock.depth == 1 for _, s in plat.inside)
    after = ctx.debug_snapshot()
    assert (after.polling, after.poll_timeout_ns) == (False, None)
    assert after.lock.owner is None and 0 < after.timer_deadline_ns <= 60_000_000_000
    timer.free()


def test_fds_bhs_and_external_handlers(hooked: tuple[_HookedPlatform, AioContext]) -> None:
    plat, ctx = hooked
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    try:
        ctx.set_fd_handler(r1, lambda _: None, None)
        ctx.set_fd_handler(r2, lambda _: None, None, is_external=True)
        ctx.set_fd_handler(w1, None, lambda _: None)  # write-only: not a read handler

        def later(_: object) -> None:
            pass

        ctx.bh_new(lambda _: None)  # never scheduled
        ctx.bh_new(later).schedule()
        ctx.notify_dummy_bh.schedule()
        ctx.disable_external()
        snap = ctx.debug_snapshot()
        assert snap.read_fds == (r1, r2) and snap.external_fds == {r2}
        assert snap.kick_scheduled and len(snap.scheduled_bhs) == 1
        assert snap.scheduled_bhs[0].endswith("later")
        assert snap.external_disable_cnt == 1 and snap.timer_deadline_ns == -1
        assert snap.notifier_fd == ctx.notifier.fd and snap.notifier_fd not in snap.read_fds
        ctx.aio_poll(False)
        # The poll set left the external handler out while external handlers are disabled.
        polled = plat.inside[-1][1].polled_fds
        assert r1 in polled and r2 not in polled and ctx.notifier.fd in polled
        ran = ctx.debug_snapshot()
        assert not ran.kick_scheduled and ran.scheduled_bhs == ()
        ctx.enable_external()
        for fd in (r1, r2, w1):
            ctx.set_fd_handler(fd, None, None)
        assert ctx.debug_snapshot().read_fds == ()
    finally:
        for fd in (r1, w1, r2, w2):
            os.close(fd)


def test_snapshot_of_a_closed_context_is_safe_and_empty() -> None:
    ctx = AioContext(RealPlatform())
    r, w = os.pipe()
    try:
        ctx.set_fd_handler(r, lambda _: None, None)
        ctx.set_fd_handler(r, None, None)
        ctx.unref()
        snap = ctx.debug_snapshot()
        assert snap.closed and snap.read_fds == () and snap.polled_fds == frozenset()
        assert not snap.polling
        with pytest.raises(dataclasses.FrozenInstanceError):
            snap.closed = False  # type: ignore[misc]
    finally:
        os.close(r)
        os.close(w)


def test_iothread_is_alive_and_stopping() -> None:
    it = IOThread(RealPlatform(), name="snap-io")
    assert not it.is_alive() and not it.stopping
    with it:
        assert it.is_alive() and not it.stopping
    # join ran the stop BH (which sets the flag) and waited for the thread to end.
    assert it.stopping and not it.is_alive()
