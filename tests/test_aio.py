"""Behaviour of one AioContext, ported from QEMU's tests/test-aio.c (2014) and extended.

Written from the behaviour described in shared/reference/qemu-semantics.md (section 10.2,
with the section 10.3 changes), not from QEMU's code.  Our engine uses the 2015 wake-up
protocol (``notify_me`` / ``notified`` / ``aio_notify_accept``) and the sticky contention
kick (``notify_dummy_bh``), so two 2014 scenarios are adapted:

* ``/aio/notify``: an ``aio_notify`` while nobody polls is dropped, so ``aio_poll(ctx, true)``
  after it would block forever.  We check that it is dropped, and that it does wake a
  poller that is blocked.
* ``/aio/acquire``: as in 2014, the contention kick wakes the owner's blocking poll, which
  returns false (the dummy BH is no progress).

Every scenario runs through both faces of the engine (``api`` fixture: ``impl.qemu``'s C
names and the Pythonic methods) and both OS notifiers (``platform`` fixture).  A blocking
``aio_poll`` is only ever called through :func:`blocking_poll`, whose watchdog turns a hang
into a failure after ``WAIT`` seconds.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest

from aioctx_verify.impl import (
    BH,
    SCALE_MS,
    SCALE_NS,
    AioContext,
    BHDeletedError,
    ClockType,
    EventNotifier,
    IOThread,
    NotOwnerError,
    QEMUTimer,
    RealPlatform,
    TraceEvent,
    UsageError,
    clocks_for,
)
from aioctx_verify.impl import qemu as q
from tests.conftest import WAIT

Callback = Callable[[Any], None]


# ------------------------------------------------------------------------------------------
# Two faces of one engine
# ------------------------------------------------------------------------------------------
class QemuAPI:
    """test-aio.c's own vocabulary: :mod:`aioctx_verify.impl.qemu`'s C names."""

    name = "qemu"

    def __init__(self, platform: RealPlatform) -> None:
        self.platform = platform
        self.notifiers: list[EventNotifier] = []

    def context_new(self) -> AioContext:
        return q.aio_context_new(self.platform)

    def context_free(self, ctx: AioContext) -> None:
        q.aio_context_unref(ctx)

    def acquire(self, ctx: AioContext) -> None:
        q.aio_context_acquire(ctx)

    def release(self, ctx: AioContext) -> None:
        q.aio_context_release(ctx)

    @contextmanager
    def held(self, ctx: AioContext) -> Iterator[None]:
        self.acquire(ctx)
        try:
            yield
        finally:
            self.release(ctx)

    def poll(self, ctx: AioContext, blocking: bool) -> bool:
        return q.aio_poll(ctx, blocking)

    def notify(self, ctx: AioContext) -> None:
        q.aio_notify(ctx)

    def bh_new(self, ctx: AioContext, cb: Callback, opaque: Any = None) -> BH:
        return q.aio_bh_new(ctx, cb, opaque)

    def bh_schedule(self, bh: BH) -> None:
        q.qemu_bh_schedule(bh)

    def bh_schedule_idle(self, bh: BH) -> None:
        q.qemu_bh_schedule_idle(bh)

    def bh_cancel(self, bh: BH) -> None:
        q.qemu_bh_cancel(bh)

    def bh_delete(self, bh: BH) -> None:
        q.qemu_bh_delete(bh)

    def bh_oneshot(self, ctx: AioContext, cb: Callback, opaque: Any = None) -> None:
        q.aio_bh_schedule_oneshot(ctx, cb, opaque)

    def notifier_new(self, active: bool = False) -> EventNotifier:
        n = q.event_notifier_init(active, self.platform)
        self.notifiers.append(n)
        return n

    def notifier_set(self, n: EventNotifier) -> None:
        q.event_notifier_set(n)

    def notifier_test_and_clear(self, n: EventNotifier) -> bool:
        return q.event_notifier_test_and_clear(n)

    def notifier_cleanup(self, n: EventNotifier) -> None:
        q.event_notifier_cleanup(n)

    def set_event_notifier(
        self,
        ctx: AioContext,
        n: EventNotifier,
        io_read: Callback | None,
        *,
        is_external: bool = False,
    ) -> None:
        q.aio_set_event_notifier(ctx, n, io_read, is_external=is_external)

    def set_fd_handler(
        self,
        ctx: AioContext,
        fd: int,
        io_read: Callback | None,
        io_write: Callback | None,
        opaque: Any = None,
    ) -> None:
        q.aio_set_fd_handler(ctx, fd, io_read, io_write, opaque)

    def disable_external(self, ctx: AioContext) -> None:
        q.aio_disable_external(ctx)

    def enable_external(self, ctx: AioContext) -> None:
        q.aio_enable_external(ctx)

    def timer_new(
        self, ctx: AioContext, clock: ClockType, scale: int, cb: Callback, opaque: Any = None
    ) -> QEMUTimer:
        return q.aio_timer_new(ctx, clock, scale, cb, opaque)

    def timer_mod(self, t: QEMUTimer, expire: int) -> None:
        q.timer_mod(t, expire)

    def timer_del(self, t: QEMUTimer) -> None:
        q.timer_del(t)

    def timer_pending(self, t: QEMUTimer) -> bool:
        return q.timer_pending(t)

    def timer_expire_ns(self, t: QEMUTimer) -> int:
        return q.timer_expire_time_ns(t)

    def clock_ns(self, clock: ClockType) -> int:
        return q.qemu_clock_get_ns(clock, self.platform)

    def clock_enable(self, clock: ClockType, enabled: bool) -> None:
        q.qemu_clock_enable(clock, enabled, self.platform)

    def stop_virtual(self) -> None:
        q.qemu_clock_stop_virtual(self.platform)

    def start_virtual(self) -> None:
        q.qemu_clock_start_virtual(self.platform)

    def advance_virtual(self, ns: int) -> None:
        q.qemu_clock_advance_virtual(ns, self.platform)

    def iothread_new(self) -> IOThread:
        return q.iothread_new(self.platform)


class PyAPI(QemuAPI):
    """The same operations through the Pythonic API (methods, ``with ctx:``)."""

    name = "py"

    def context_new(self) -> AioContext:
        return AioContext(self.platform)

    def context_free(self, ctx: AioContext) -> None:
        ctx.unref()

    def acquire(self, ctx: AioContext) -> None:
        ctx.acquire()

    def release(self, ctx: AioContext) -> None:
        ctx.release()

    def held(self, ctx: AioContext) -> AbstractContextManager[Any]:  # type: ignore[override]
        return ctx

    def poll(self, ctx: AioContext, blocking: bool) -> bool:
        return ctx.aio_poll(blocking)

    def notify(self, ctx: AioContext) -> None:
        ctx.aio_notify()

    def bh_new(self, ctx: AioContext, cb: Callback, opaque: Any = None) -> BH:
        return ctx.bh_new(cb, opaque)

    def bh_schedule(self, bh: BH) -> None:
        bh.schedule()

    def bh_schedule_idle(self, bh: BH) -> None:
        bh.schedule_idle()

    def bh_cancel(self, bh: BH) -> None:
        bh.cancel()

    def bh_delete(self, bh: BH) -> None:
        bh.delete()

    def bh_oneshot(self, ctx: AioContext, cb: Callback, opaque: Any = None) -> None:
        ctx.bh_schedule_oneshot(cb, opaque)

    def notifier_new(self, active: bool = False) -> EventNotifier:
        n = EventNotifier(self.platform, active=active)
        self.notifiers.append(n)
        return n

    def notifier_set(self, n: EventNotifier) -> None:
        n.set()

    def notifier_test_and_clear(self, n: EventNotifier) -> bool:
        return n.test_and_clear()

    def notifier_cleanup(self, n: EventNotifier) -> None:
        n.cleanup()

    def set_event_notifier(
        self,
        ctx: AioContext,
        n: EventNotifier,
        io_read: Callback | None,
        *,
        is_external: bool = False,
    ) -> None:
        ctx.set_event_notifier(n, io_read, is_external=is_external)

    def set_fd_handler(
        self,
        ctx: AioContext,
        fd: int,
        io_read: Callback | None,
        io_write: Callback | None,
        opaque: Any = None,
    ) -> None:
        ctx.set_fd_handler(fd, io_read, io_write, opaque)

    def disable_external(self, ctx: AioContext) -> None:
        ctx.disable_external()

    def enable_external(self, ctx: AioContext) -> None:
        ctx.enable_external()

    def timer_new(
        self, ctx: AioContext, clock: ClockType, scale: int, cb: Callback, opaque: Any = None
    ) -> QEMUTimer:
        return ctx.timer_new(clock, scale, cb, opaque)

    def timer_mod(self, t: QEMUTimer, expire: int) -> None:
        t.mod(expire)

    def timer_del(self, t: QEMUTimer) -> None:
        t.delete()

    def timer_pending(self, t: QEMUTimer) -> bool:
        return t.pending()

    def timer_expire_ns(self, t: QEMUTimer) -> int:
        return t.expire_ns()

    def clock_ns(self, clock: ClockType) -> int:
        return clocks_for(self.platform).get_ns(clock)

    def clock_enable(self, clock: ClockType, enabled: bool) -> None:
        clocks_for(self.platform).enable(clock, enabled)

    def stop_virtual(self) -> None:
        clocks_for(self.platform).stop_virtual()

    def start_virtual(self) -> None:
        clocks_for(self.platform).start_virtual()

    def advance_virtual(self, ns: int) -> None:
        clocks_for(self.platform).advance_virtual(ns)

    def iothread_new(self) -> IOThread:
        return IOThread(self.platform).start()


@pytest.fixture(params=["qemu", "py"])
def api(request: pytest.FixtureRequest, platform: RealPlatform) -> Iterator[QemuAPI]:
    a: QemuAPI = QemuAPI(platform) if request.param == "qemu" else PyAPI(platform)
    yield a
    for n in a.notifiers:
        if not n.closed:
            n.cleanup()


@pytest.fixture
def ctx(api: QemuAPI) -> Iterator[AioContext]:
    """A fresh context whose home is the test's thread (aio_context_new)."""
    c = api.context_new()
    yield c
    assert c.statistics().lock.depth == 0, "a test left the context acquired"
    api.context_free(c)
    assert c.closed


@pytest.fixture
def frozen_virtual(api: QemuAPI) -> Iterator[None]:
    """Freeze QEMU_CLOCK_VIRTUAL (moved by hand with advance_virtual); restore afterwards."""
    was_running = clocks_for(api.platform).virtual_running()
    api.stop_virtual()
    yield
    if was_running:
        api.start_virtual()


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------
def _noop(_opaque: object) -> None:
    pass


def blocking_poll(api: QemuAPI, ctx: AioContext) -> bool:
    """``aio_poll(ctx, true)`` that fails the test instead of hanging.

    If the poll has not returned after ``WAIT`` seconds a watchdog schedules a one-shot BH
    (lock-free, wakes the poller) and the test fails.
    """
    fired = threading.Event()

    def fire() -> None:
        fired.set()
        ctx.bh_schedule_oneshot(_noop)

    dog = threading.Timer(WAIT, fire)
    dog.daemon = True
    dog.start()
    try:
        result = api.poll(ctx, True)
    finally:
        dog.cancel()
        dog.join(WAIT)
    assert not fired.is_set(), (
        f"aio_poll({ctx.name}, true) did not return within {WAIT} s; the watchdog had to wake it"
    )
    return result


def wait_until(pred: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll ``pred`` until true; fail after ``timeout`` s.

    Only used to observe a state that has no event of its own (a thread blocked in
    ``aio_poll``, a queued lock waiter); correctness never depends on the polling interval.
    """
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting until {what}")
        tick.wait(0.0005)


def poller_blocked(ctx: AioContext) -> Callable[[], bool]:
    """True once some thread is inside the blocking part of aio_poll(ctx, true)."""
    return lambda: ctx.statistics().notify_me >= 2


def run_thread(
    target: Callable[[], None], name: str
) -> tuple[threading.Thread, list[BaseException]]:
    """Start a helper thread that records its exception for the test to re-raise."""
    errors: list[BaseException] = []

    def body() -> None:
        try:
            target()
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=body, name=name, daemon=True)
    t.start()
    return t, errors


def join_thread(t: threading.Thread, errors: list[BaseException]) -> None:
    t.join(WAIT)
    assert not t.is_alive(), f"helper thread {t.name} did not finish within {WAIT} s"
    if errors:
        raise errors[0]


def drain(api: QemuAPI, ctx: AioContext) -> None:
    """``while (aio_poll(ctx, false));`` with a bound."""
    for _ in range(1000):
        if not api.poll(ctx, False):
            return
    pytest.fail("aio_poll(ctx, false) kept making progress")


class BHData:
    """test-aio.c's BH helper data: ``n`` runs, reschedule while ``n < max``."""

    def __init__(self, api: QemuAPI, ctx: AioContext, max_: int = 0) -> None:
        self.api = api
        self.n = 0
        self.max = max_
        self.bh: BH | None = None
        self.ctx = ctx

    def test_cb(self, _opaque: object) -> None:
        self.n += 1
        if self.n < self.max:
            assert self.bh is not None
            self.api.bh_schedule(self.bh)

    def delete_cb(self, _opaque: object) -> None:
        """Reschedule while ``n < max``, then delete itself and forget the BH."""
        self.n += 1
        assert self.bh is not None
        if self.n < self.max:
            self.api.bh_schedule(self.bh)
        else:
            self.api.bh_delete(self.bh)
            self.bh = None


class EventData:
    """test-aio.c's EventNotifierTestData: an event handler that counts and decays."""

    def __init__(self, api: QemuAPI, active: int = 0, auto_set: bool = False) -> None:
        self.api = api
        self.e = api.notifier_new()
        self.n = 0
        self.active = active
        self.auto_set = auto_set

    def ready(self, notifier: EventNotifier) -> None:
        assert notifier is self.e, "the event-notifier handler gets its notifier as opaque"
        assert self.api.notifier_test_and_clear(notifier), "handler ran but notifier was not set"
        self.n += 1
        if self.active > 0:
            self.active -= 1
        if self.auto_set and self.active:
            self.api.notifier_set(notifier)


def wait_until_inactive(api: QemuAPI, ctx: AioContext, data: EventData) -> None:
    """Blocking polls until the handler has decayed; each poll must make progress."""
    for _ in range(1000):
        if not data.active:
            return
        assert blocking_poll(api, ctx), "an active set notifier must make the poll progress"
    pytest.fail("event handler never became inactive")


class TimerData:
    """test-aio.c's TimerTestData: count, re-arm at now + ``ns`` while ``n < max``."""

    def __init__(self, api: QemuAPI, ctx: AioContext, clock: ClockType, ns: int, max_: int) -> None:
        self.api = api
        self.clock = clock
        self.ns = ns
        self.max = max_
        self.n = 0
        self.timer = api.timer_new(ctx, clock, SCALE_NS, self.cb)

    def cb(self, _opaque: object) -> None:
        self.n += 1
        if self.n < self.max:
            self.api.timer_mod(self.timer, self.api.clock_ns(self.clock) + self.ns)


# ==========================================================================================
# aio_notify (2015 protocol; 2014 /aio/notify adapted)
# ==========================================================================================
def test_notify_while_nobody_polls_is_dropped(api: QemuAPI, ctx: AioContext) -> None:
    """No poller: aio_notify writes nothing; a blocking poll would need a scheduled BH."""
    assert not api.poll(ctx, False)
    api.notify(ctx)
    assert ctx.statistics().notify_me == 0
    assert not ctx.notified.load(), "a dropped notify must not set `notified`"
    assert not ctx.notifier.test_and_clear(), "a dropped notify must not write the notifier"
    assert not api.poll(ctx, False)
    assert not api.poll(ctx, False)
    # What does make a blocking poll return: a scheduled (non-idle) BH.
    data = BHData(api, ctx)
    data.bh = api.bh_new(ctx, data.test_cb)
    api.notify(ctx)
    api.bh_schedule(data.bh)
    assert blocking_poll(api, ctx)
    assert data.n == 1
    assert not api.poll(ctx, False)
    api.bh_delete(data.bh)


def test_notify_wakes_blocked_poller_without_progress(api: QemuAPI, ctx: AioContext) -> None:
    """aio_notify from another thread ends a blocking poll; a bare wake-up is no progress."""
    for _ in range(3):
        def kick() -> None:
            wait_until(poller_blocked(ctx), "the test thread blocks in aio_poll", WAIT / 2)
            api.notify(ctx)

        t, errors = run_thread(kick, "notifier")
        assert not blocking_poll(api, ctx), "a wake-up by aio_notify alone is not progress"
        join_thread(t, errors)
        # The poller may wake between the notifier write and `notified = true` (a benign
        # false positive): the next aio_notify_accept consumes it, without progress.
        assert not api.poll(ctx, False)
        assert not ctx.notified.load(), "aio_notify_accept left `notified` set"
        assert not ctx.notifier.test_and_clear(), "aio_notify_accept left the notifier set"
        assert ctx.statistics().notify_me == 0


# ==========================================================================================
# aio_context_acquire / contention kick (/aio/acquire)
# ==========================================================================================
@pytest.mark.parametrize("helper_first", [False, True], ids=["poll-then-contend", "sticky-kick"])
def test_acquire_contention_kicks_owner_poll(
    api: QemuAPI, ctx: AioContext, helper_first: bool
) -> None:
    """/aio/acquire: the owner's blocking poll is ended by a waiter, returns false.

    ``sticky-kick``: the waiter queues while the owner is *not* polling (so a bare
    aio_notify would be dropped); the kick survives as the scheduled dummy BH.
    """
    never = EventData(api)
    api.set_event_notifier(ctx, never.e, never.ready)  # must never run: the poll really blocks
    assert not api.poll(ctx, False)
    acquired = threading.Event()

    def helper() -> None:
        with api.held(ctx):
            acquired.set()

    api.acquire(ctx)
    try:
        t, errors = run_thread(helper, "acquirer")
        if helper_first:
            wait_until(lambda: ctx.statistics().lock.waiters == 1, "the helper queues for ctx")
            assert ctx.notify_dummy_bh.is_scheduled, "contention must leave a sticky kick"
        assert not blocking_poll(api, ctx), "the contention kick is not progress"
        assert not acquired.is_set(), "the helper got the context while the test thread held it"
        assert ctx.statistics().lock.owner == threading.get_ident()
    finally:
        api.release(ctx)
    join_thread(t, errors)
    assert acquired.is_set()
    assert never.n == 0
    api.set_event_notifier(ctx, never.e, None)
    assert not api.poll(ctx, False)


def test_aio_poll_from_foreign_thread_needs_the_context(api: QemuAPI, ctx: AioContext) -> None:
    """Rule 2: a thread that is not the context's home must acquire it to poll it."""
    data = BHData(api, ctx)
    data.bh = api.bh_new(ctx, data.test_cb)
    api.bh_schedule(data.bh)
    result: list[bool] = []

    def foreign() -> None:
        with pytest.raises(NotOwnerError):
            api.poll(ctx, False)
        with api.held(ctx):
            result.append(api.poll(ctx, False))

    t, errors = run_thread(foreign, "foreign")
    join_thread(t, errors)
    assert result == [True]
    assert data.n == 1
    api.bh_delete(data.bh)


# ==========================================================================================
# Bottom halves
# ==========================================================================================
def test_bh_schedule(api: QemuAPI, ctx: AioContext) -> None:
    """/aio/bh/schedule: scheduling does not run; a blocking poll runs it once."""
    data = BHData(api, ctx)
    data.bh = api.bh_new(ctx, data.test_cb)
    api.bh_schedule(data.bh)
    assert data.n == 0
    assert blocking_poll(api, ctx)
    assert data.n == 1
    assert not api.poll(ctx, False)
    assert data.n == 1
    api.bh_delete(data.bh)


def test_bh_schedule10(api: QemuAPI, ctx: AioContext) -> None:
    """/aio/bh/schedule10: a self-rescheduling BH runs exactly once per aio_poll."""
    data = BHData(api, ctx, 10)
    data.bh = api.bh_new(ctx, data.test_cb)
    api.bh_schedule(data.bh)
    assert data.n == 0
    assert api.poll(ctx, False)
    assert data.n == 1
    assert blocking_poll(api, ctx)
    assert data.n == 2
    polls = 2
    while data.n < 10:
        assert blocking_poll(api, ctx)
        polls += 1
        assert data.n == polls, "one run per aio_poll"
    assert not api.poll(ctx, False)
    assert data.n == 10
    api.bh_delete(data.bh)


def test_bh_schedule_coalesces(api: QemuAPI, ctx: AioContext) -> None:
    """Several schedules before the loop runs are one run."""
    data = BHData(api, ctx)
    data.bh = api.bh_new(ctx, data.test_cb)
    for _ in range(5):
        api.bh_schedule(data.bh)
    assert data.bh.is_scheduled
    assert api.poll(ctx, False)
    assert data.n == 1
    assert not api.poll(ctx, False)
    assert data.n == 1
    api.bh_delete(data.bh)


def test_bh_cancel(api: QemuAPI, ctx: AioContext) -> None:
    """/aio/bh/cancel."""
    data = BHData(api, ctx)
    data.bh = api.bh_new(ctx, data.test_cb)
    api.bh_schedule(data.bh)
    assert data.n == 0
    api.bh_cancel(data.bh)
    assert data.n == 0
    assert not api.poll(ctx, False)
    assert data.n == 0
    # A cancelled BH can be scheduled again.
    api.bh_schedule(data.bh)
    assert api.poll(ctx, False)
    assert data.n == 1
    api.bh_delete(data.bh)


def test_bh_delete(api: QemuAPI, ctx: AioContext) -> None:
    """/aio/bh/delete: a scheduled BH that is deleted never runs; it cannot be reused."""
    data = BHData(api, ctx)
    data.bh = api.bh_new(ctx, data.test_cb)
    api.bh_schedule(data.bh)
    assert data.n == 0
    api.bh_delete(data.bh)
    assert data.n == 0
    assert not api.poll(ctx, False)
    assert data.n == 0
    with pytest.raises(BHDeletedError):
        api.bh_schedule(data.bh)
    assert not api.poll(ctx, False)
    assert data.n == 0


def test_bh_callback_delete_one(api: QemuAPI, ctx: AioContext) -> None:
    """/aio/bh/callback-delete/one: a BH may delete itself from its callback."""

    class Opaque:
        pass

    data = BHData(api, ctx, 1)
    opaque = Opaque()
    ref = weakref.ref(opaque)
    data.bh = api.bh_new(ctx, data.delete_cb, opaque)
    del opaque
    api.bh_schedule(data.bh)
    assert data.n == 0
    assert blocking_poll(api, ctx)
    assert data.n == 1
    assert data.bh is None
    assert not api.poll(ctx, False)
    assert data.n == 1
    assert ctx.statistics().bhs == 0
    gc.collect()
    assert ref() is None, "the self-deleted BH was not reclaimed by the walker"


def test_bh_callback_delete_many(api: QemuAPI, ctx: AioContext) -> None:
    """/aio/bh/callback-delete/many: four self-deleting BHs (max 1, 3, 2, 4)."""
    datas = [BHData(api, ctx, m) for m in (1, 3, 2, 4)]
    for d in datas:
        d.bh = api.bh_new(ctx, d.delete_cb)
    for d in datas:
        api.bh_schedule(d.bh)  # type: ignore[arg-type]
    assert [d.n for d in datas] == [0, 0, 0, 0]
    assert api.poll(ctx, False)
    assert [d.n for d in datas] == [1, 1, 1, 1], "every scheduled BH runs once per poll"
    assert datas[0].bh is None
    polls = 0
    while any(d.bh is not None for d in datas):
        assert api.poll(ctx, False)
        polls += 1
        assert polls < 10
    assert [d.n for d in datas] == [1, 3, 2, 4]
    assert all(d.bh is None for d in datas)
    assert not api.poll(ctx, False)
    assert ctx.statistics().bhs == 0


def test_bh_flush(api: QemuAPI, ctx: AioContext) -> None:
    """/aio/bh/flush."""
    data = BHData(api, ctx)
    data.bh = api.bh_new(ctx, data.test_cb)
    api.bh_schedule(data.bh)
    assert data.n == 0
    assert blocking_poll(api, ctx)
    assert data.n == 1
    assert not api.poll(ctx, False)
    assert data.n == 1
    api.bh_delete(data.bh)


def test_bh_run_order_is_newest_created_first(api: QemuAPI, ctx: AioContext) -> None:
    """Within one aio_poll BHs run newest-created first, whatever the schedule order."""
    ran: list[str] = []
    bhs = {name: api.bh_new(ctx, ran.append, name) for name in ("a", "b", "c", "d")}
    for name in ("b", "d", "a", "c"):
        api.bh_schedule(bhs[name])
    assert api.poll(ctx, False)
    assert ran == ["d", "c", "b", "a"]
    for bh in bhs.values():
        api.bh_delete(bh)


def test_bh_scheduled_by_bh_later_in_walk_runs_in_same_poll(
    api: QemuAPI, ctx: AioContext
) -> None:
    """The walk is newest-first: the newer BH scheduling the older one gets it run now."""
    ran: list[str] = []
    older = api.bh_new(ctx, ran.append, "older")

    def newer_cb(_opaque: object) -> None:
        ran.append("newer")
        api.bh_schedule(older)

    newer = api.bh_new(ctx, newer_cb)
    api.bh_schedule(newer)
    assert api.poll(ctx, False)
    assert ran == ["newer", "older"]
    assert not api.poll(ctx, False)
    api.bh_delete(older)
    api.bh_delete(newer)


def test_bh_scheduled_by_bh_earlier_in_walk_runs_in_next_poll(
    api: QemuAPI, ctx: AioContext
) -> None:
    """The older BH scheduling the newer one (already passed by the walk): next poll."""
    ran: list[str] = []

    def older_cb(_opaque: object) -> None:
        ran.append("older")
        api.bh_schedule(newer)

    older = api.bh_new(ctx, older_cb)
    newer = api.bh_new(ctx, ran.append, "newer")
    api.bh_schedule(older)
    assert api.poll(ctx, False)
    assert ran == ["older"]
    assert newer.is_scheduled
    assert blocking_poll(api, ctx), "the pending BH makes the blocking poll's timeout 0"
    assert ran == ["older", "newer"]
    assert not api.poll(ctx, False)
    api.bh_delete(older)
    api.bh_delete(newer)


def test_bh_created_during_walk_runs_in_next_poll(api: QemuAPI, ctx: AioContext) -> None:
    """A BH created and scheduled from a BH callback is not visited by the current walk."""
    ran: list[str] = []
    made: list[BH] = []

    def maker(_opaque: object) -> None:
        ran.append("maker")
        bh = api.bh_new(ctx, ran.append, "made")
        made.append(bh)
        api.bh_schedule(bh)

    m = api.bh_new(ctx, maker)
    api.bh_schedule(m)
    assert api.poll(ctx, False)
    assert ran == ["maker"]
    assert api.poll(ctx, False)
    assert ran == ["maker", "made"]
    assert not api.poll(ctx, False)
    api.bh_delete(m)
    api.bh_delete(made[0])


def test_idle_bh_runs_but_is_not_progress(api: QemuAPI, ctx: AioContext) -> None:
    """qemu_bh_schedule_idle: picked up by the next iteration, its run is no progress."""
    data = BHData(api, ctx)
    data.bh = api.bh_new(ctx, data.test_cb)
    api.bh_schedule_idle(data.bh)
    assert data.bh.is_scheduled
    assert ctx.statistics().notify_me == 0
    assert not api.poll(ctx, False), "an idle BH's run is not progress"
    assert data.n == 1
    assert not data.bh.is_scheduled
    assert not api.poll(ctx, False)
    assert data.n == 1
    api.bh_delete(data.bh)


def test_idle_bh_bounds_blocking_poll(api: QemuAPI, ctx: AioContext) -> None:
    """Only an idle BH pending: the blocking poll sleeps at most 10 ms, then runs it.

    The bound is read from the poll's own ``poll_wait`` trace event (its timeout), not
    from a clock, so a loaded machine cannot fail the test; ``blocking_poll``'s watchdog
    only guards against a hang.
    """
    waits: list[int] = []

    def tracer(ev: TraceEvent) -> None:
        if ev.kind == "poll_wait" and ev.ctx == ctx.id:
            waits.append(ev.obj)

    data = BHData(api, ctx)
    data.bh = api.bh_new(ctx, data.test_cb)
    api.platform.tracer = tracer
    try:
        for i in range(1, 4):
            api.bh_schedule_idle(data.bh)
            assert not blocking_poll(api, ctx), "an idle BH's run is not progress"
            assert data.n == i, "the idle BH ran in the blocking poll"
            assert waits == [10_000_000] * i, "the poll did not wait with the idle BH's 10 ms"
    finally:
        api.platform.tracer = None
    api.bh_delete(data.bh)


def test_oneshot_runs_once_then_is_reclaimed(api: QemuAPI, ctx: AioContext) -> None:
    """aio_bh_schedule_oneshot: one run, then the BH (and its opaque) is freed."""

    class Opaque:
        pass

    ran: list[int] = []
    opaque = Opaque()
    ref = weakref.ref(opaque)
    api.bh_oneshot(ctx, lambda o: ran.append(id(o)), opaque)
    expected = id(opaque)
    del opaque
    assert ran == []
    assert ctx.statistics().scheduled_bhs == 1
    assert api.poll(ctx, False)
    assert ran == [expected]
    assert not api.poll(ctx, False)
    assert ran == [expected]
    assert ctx.statistics().scheduled_bhs == 0
    gc.collect()
    assert ref() is None, "the one-shot BH was not reclaimed after its run"


def test_oneshot_from_another_thread_wakes_blocked_poll(api: QemuAPI, ctx: AioContext) -> None:
    """A one-shot scheduled lock-free from another thread ends a blocking poll (progress)."""
    ran: list[int] = []

    def producer() -> None:
        wait_until(poller_blocked(ctx), "the test thread blocks in aio_poll", WAIT / 2)
        api.bh_oneshot(ctx, lambda _: ran.append(threading.get_ident()))

    t, errors = run_thread(producer, "producer")
    assert blocking_poll(api, ctx)
    join_thread(t, errors)
    assert ran == [threading.get_ident()], "the BH runs in the polling thread"


def test_nested_aio_poll_from_bh_callback(api: QemuAPI, ctx: AioContext) -> None:
    """A BH callback may run aio_poll itself, even after deleting its own BH."""
    ran: list[str] = []
    inner = api.bh_new(ctx, ran.append, "inner")
    outer_bh: list[BH] = []

    def outer(_opaque: object) -> None:
        ran.append("outer")
        api.bh_delete(outer_bh[0])  # reclaimed only by the outermost walker
        api.bh_schedule(inner)
        assert api.poll(ctx, False), "the nested poll runs the inner BH"
        assert ran == ["outer", "inner"]
        assert not api.poll(ctx, False)
        # A nested blocking poll too: the pending BH makes it return at once.
        api.bh_schedule(inner)
        assert blocking_poll(api, ctx)
        ran.append("outer-end")

    outer_bh.append(api.bh_new(ctx, outer))
    api.bh_schedule(outer_bh[0])
    assert api.poll(ctx, False)
    assert ran == ["outer", "inner", "inner", "outer-end"]
    assert not api.poll(ctx, False)
    assert ctx.statistics().bhs == 1  # only `inner` is left
    api.bh_delete(inner)


# ==========================================================================================
# Event notifiers and fd handlers
# ==========================================================================================
def test_event_add_remove(api: QemuAPI, ctx: AioContext) -> None:
    """/aio/event/add-remove."""
    data = EventData(api)
    api.set_event_notifier(ctx, data.e, data.ready)
    assert ctx.statistics().handlers == 1
    assert not api.poll(ctx, False)
    assert data.n == 0
    api.set_event_notifier(ctx, data.e, None)
    assert ctx.statistics().handlers == 0
    assert not api.poll(ctx, False)
    assert data.n == 0


def test_event_wait(api: QemuAPI, ctx: AioContext) -> None:
    """/aio/event/wait."""
    data = EventData(api, active=1)
    api.set_event_notifier(ctx, data.e, data.ready)
    assert not api.poll(ctx, False)
    assert data.n == 0
    assert data.active == 1
    api.notifier_set(data.e)
    assert api.poll(ctx, False)
    assert data.n == 1
    assert data.active == 0
    assert not api.poll(ctx, False)
    assert data.n == 1
    api.set_event_notifier(ctx, data.e, None)
    assert not api.poll(ctx, False)
    assert data.n == 1


def test_event_flush(api: QemuAPI, ctx: AioContext) -> None:
    """/aio/event/flush: a handler that re-sets its notifier keeps the loop busy."""
    data = EventData(api, active=10, auto_set=True)
    api.set_event_notifier(ctx, data.e, data.ready)
    assert not api.poll(ctx, False)
    assert data.n == 0
    assert data.active == 10
    api.notifier_set(data.e)
    assert api.poll(ctx, False)
    assert data.n == 1
    assert data.active == 9
    assert api.poll(ctx, False)
    wait_until_inactive(api, ctx, data)
    assert data.n == 10
    assert data.active == 0
    assert not api.poll(ctx, False)
    api.set_event_notifier(ctx, data.e, None)
    assert not api.poll(ctx, False)


def test_event_wait_no_flush_cb(api: QemuAPI, ctx: AioContext) -> None:
    """/aio/event/wait/no-flush-cb."""
    data = EventData(api)
    api.set_event_notifier(ctx, data.e, data.ready)
    assert not api.poll(ctx, False)
    assert data.n == 0
    # A set notifier whose handler is "inactive" still ends a blocking poll at once.
    api.notifier_set(data.e)
    assert blocking_poll(api, ctx)
    assert data.n == 1
    data.n = 0

    dummy = EventData(api, active=1)
    api.set_event_notifier(ctx, dummy.e, dummy.ready)
    for expected in (1, 2):
        api.notifier_set(data.e)
        assert api.poll(ctx, False)
        assert data.n == expected
        assert not api.poll(ctx, False)
        assert data.n == expected

    api.notifier_set(dummy.e)
    wait_until_inactive(api, ctx, dummy)
    assert data.n == 2
    assert dummy.n == 1
    assert dummy.active == 0

    api.set_event_notifier(ctx, dummy.e, None)
    api.set_event_notifier(ctx, data.e, None)
    assert not api.poll(ctx, False)
    assert data.n == 2
    assert dummy.n == 1


def _ordered_notifiers(
    api: QemuAPI, ctx: AioContext, names: list[str], ran: list[str]
) -> dict[str, EventNotifier]:
    notifiers: dict[str, EventNotifier] = {}
    for name in names:
        n = api.notifier_new()

        def cb(e: EventNotifier, name: str = name) -> None:
            assert api.notifier_test_and_clear(e)
            ran.append(name)

        api.set_event_notifier(ctx, n, cb)
        notifiers[name] = n
    return notifiers


def test_handler_dispatch_is_newest_registered_first(api: QemuAPI, ctx: AioContext) -> None:
    ran: list[str] = []
    ns = _ordered_notifiers(api, ctx, ["n1", "n2", "n3", "n4"], ran)
    for name in ("n2", "n4", "n1", "n3"):
        api.notifier_set(ns[name])
    assert api.poll(ctx, False)
    assert ran == ["n4", "n3", "n2", "n1"]
    for n in ns.values():
        api.set_event_notifier(ctx, n, None)


def test_reregistering_updates_handler_in_place(api: QemuAPI, ctx: AioContext) -> None:
    """Re-registering a notifier replaces its callback and keeps its dispatch position."""
    ran: list[str] = []
    ns = _ordered_notifiers(api, ctx, ["n1", "n2", "n3"], ran)

    def new_cb(e: EventNotifier) -> None:
        assert api.notifier_test_and_clear(e)
        ran.append("n1'")

    api.set_event_notifier(ctx, ns["n1"], new_cb)
    assert ctx.statistics().handlers == 3
    for n in ns.values():
        api.notifier_set(n)
    assert api.poll(ctx, False)
    assert ran == ["n3", "n2", "n1'"]
    for n in ns.values():
        api.set_event_notifier(ctx, n, None)
    assert ctx.statistics().handlers == 0


def test_handler_removes_itself_in_its_callback(api: QemuAPI, ctx: AioContext) -> None:
    ran: list[str] = []
    n = api.notifier_new()

    def once(e: EventNotifier) -> None:
        assert api.notifier_test_and_clear(e)
        ran.append("once")
        api.set_event_notifier(ctx, e, None)

    api.set_event_notifier(ctx, n, once)
    api.notifier_set(n)
    assert api.poll(ctx, False)
    assert ran == ["once"]
    assert ctx.statistics().handlers == 0
    api.notifier_set(n)
    assert not api.poll(ctx, False)
    assert ran == ["once"]


def test_handler_removed_by_another_handler(api: QemuAPI, ctx: AioContext) -> None:
    """A handler removed by one dispatched before it does not run, even if its fd is ready."""
    ran: list[str] = []
    older = api.notifier_new()
    newer = api.notifier_new()

    def older_cb(e: EventNotifier) -> None:
        assert api.notifier_test_and_clear(e)
        ran.append("older")

    def newer_cb(e: EventNotifier) -> None:
        assert api.notifier_test_and_clear(e)
        ran.append("newer")
        api.set_event_notifier(ctx, older, None)

    api.set_event_notifier(ctx, older, older_cb)
    api.set_event_notifier(ctx, newer, newer_cb)
    api.notifier_set(older)
    api.notifier_set(newer)
    assert api.poll(ctx, False)
    assert ran == ["newer"], "the removed handler must be skipped by the current walk"
    assert ctx.statistics().handlers == 1
    assert api.notifier_test_and_clear(older)
    api.notifier_set(older)
    assert not api.poll(ctx, False)
    assert ran == ["newer"]
    api.set_event_notifier(ctx, newer, None)


def test_handler_removing_an_already_dispatched_one(api: QemuAPI, ctx: AioContext) -> None:
    """The older handler removes the newer one, which already ran in this walk."""
    ran: list[str] = []
    older = api.notifier_new()
    newer = api.notifier_new()

    def older_cb(e: EventNotifier) -> None:
        assert api.notifier_test_and_clear(e)
        ran.append("older")
        api.set_event_notifier(ctx, newer, None)

    def newer_cb(e: EventNotifier) -> None:
        assert api.notifier_test_and_clear(e)
        ran.append("newer")

    api.set_event_notifier(ctx, older, older_cb)
    api.set_event_notifier(ctx, newer, newer_cb)
    api.notifier_set(older)
    api.notifier_set(newer)
    assert api.poll(ctx, False)
    assert ran == ["newer", "older"]
    api.notifier_set(newer)
    api.notifier_set(older)
    assert api.poll(ctx, False)
    assert ran == ["newer", "older", "older"]
    api.set_event_notifier(ctx, older, None)
    assert ctx.statistics().handlers == 0


def test_handler_reregistered_from_its_own_callback(api: QemuAPI, ctx: AioContext) -> None:
    """Remove + re-add inside the callback: a new node, used from the next poll on."""
    ran: list[str] = []
    n = api.notifier_new()

    def second(e: EventNotifier) -> None:
        assert api.notifier_test_and_clear(e)
        ran.append("second")

    def first(e: EventNotifier) -> None:
        assert api.notifier_test_and_clear(e)
        ran.append("first")
        api.set_event_notifier(ctx, e, None)
        api.set_event_notifier(ctx, e, second)
        api.notifier_set(e)

    api.set_event_notifier(ctx, n, first)
    api.notifier_set(n)
    assert api.poll(ctx, False)
    assert ran == ["first"], "a node added during the walk is not dispatched by it"
    assert ctx.statistics().handlers == 1
    assert api.poll(ctx, False)
    assert ran == ["first", "second"]
    assert not api.poll(ctx, False)
    api.set_event_notifier(ctx, n, None)
    assert ctx.statistics().handlers == 0


def test_handler_added_during_dispatch_runs_next_poll(api: QemuAPI, ctx: AioContext) -> None:
    ran: list[str] = []
    first = api.notifier_new()
    late = api.notifier_new(active=True)

    def late_cb(e: EventNotifier) -> None:
        assert api.notifier_test_and_clear(e)
        ran.append("late")

    def first_cb(e: EventNotifier) -> None:
        assert api.notifier_test_and_clear(e)
        ran.append("first")
        api.set_event_notifier(ctx, late, late_cb)

    api.set_event_notifier(ctx, first, first_cb)
    api.notifier_set(first)
    assert api.poll(ctx, False)
    assert ran == ["first"]
    assert api.poll(ctx, False)
    assert ran == ["first", "late"]
    assert not api.poll(ctx, False)
    api.set_event_notifier(ctx, first, None)
    api.set_event_notifier(ctx, late, None)


def test_fd_read_handler_gets_opaque_and_is_progress(api: QemuAPI, ctx: AioContext) -> None:
    r, w = os.pipe()
    got: list[tuple[object, bytes]] = []
    token = object()

    def on_read(opaque: object) -> None:
        got.append((opaque, os.read(r, 64)))

    try:
        api.set_fd_handler(ctx, r, on_read, None, token)
        assert not api.poll(ctx, False)
        os.write(w, b"x")
        assert api.poll(ctx, False)
        assert got == [(token, b"x")]
        assert not api.poll(ctx, False)
        api.set_fd_handler(ctx, r, None, None)
        os.write(w, b"y")
        assert not api.poll(ctx, False)
        assert len(got) == 1
    finally:
        api.set_fd_handler(ctx, r, None, None)
        os.close(r)
        os.close(w)


def test_fd_read_handler_runs_on_hangup(api: QemuAPI, ctx: AioContext) -> None:
    """io_read is called for POLLHUP too (the writer closed the pipe)."""
    r, w = os.pipe()
    eof: list[bytes] = []
    try:
        api.set_fd_handler(ctx, r, lambda _: eof.append(os.read(r, 64)), None)
        assert not api.poll(ctx, False)
        os.close(w)
        w = -1
        assert api.poll(ctx, False)
        assert eof == [b""]
    finally:
        api.set_fd_handler(ctx, r, None, None)
        os.close(r)
        if w >= 0:
            os.close(w)


def test_io_write_is_always_progress(api: QemuAPI, ctx: AioContext) -> None:
    """An always-writable fd with io_write: every poll dispatches it and makes progress."""
    r, w = os.pipe()
    calls: list[object] = []
    try:
        api.set_fd_handler(ctx, w, None, calls.append, "w")
        for i in range(1, 4):
            assert api.poll(ctx, False)
            assert calls == ["w"] * i
        api.set_fd_handler(ctx, w, None, None)
        assert not api.poll(ctx, False)
        assert len(calls) == 3
    finally:
        api.set_fd_handler(ctx, w, None, None)
        os.close(r)
        os.close(w)


def test_own_notifier_is_not_progress(api: QemuAPI, ctx: AioContext) -> None:
    """The context's own notifier, when readable, is dispatched without progress."""
    ctx.notifier.set()  # readable, but no `notified`: nobody accepts it, its handler runs
    assert not api.poll(ctx, False)
    assert not api.poll(ctx, False)
    assert ctx.notifier.test_and_clear(), "only aio_notify_accept clears the own notifier"
    ctx.notifier.set()
    ctx.notified.store(True)  # what aio_notify leaves for a poller
    assert not api.poll(ctx, False)
    assert not ctx.notified.load()
    assert not ctx.notifier.test_and_clear(), "aio_notify_accept cleared the notifier"


@pytest.mark.parametrize("depth", [1, 3])
def test_disable_external_nests(api: QemuAPI, ctx: AioContext, depth: int) -> None:
    """/aio/external-client: poll(false) is false while disabled k times, true after k enables."""
    data = EventData(api)
    api.set_event_notifier(ctx, data.e, data.ready, is_external=True)
    internal = EventData(api)
    api.set_event_notifier(ctx, internal.e, internal.ready)
    api.notifier_set(data.e)
    for _ in range(depth):
        api.disable_external(ctx)
    assert ctx.statistics().external_disable_cnt == depth
    for i in range(depth):
        assert not api.poll(ctx, False), f"external handler dispatched with {depth - i} disables"
        assert data.n == 0
        # Internal handlers keep working while external ones are disabled.
        api.notifier_set(internal.e)
        assert api.poll(ctx, False)
        assert internal.n == i + 1
        api.enable_external(ctx)
    assert api.poll(ctx, False)
    assert data.n == 1
    assert not api.poll(ctx, False)
    with pytest.raises(UsageError):
        api.enable_external(ctx)
    api.set_event_notifier(ctx, data.e, None)
    api.set_event_notifier(ctx, internal.e, None)


def test_enable_external_kicks_blocked_poller(api: QemuAPI, ctx: AioContext) -> None:
    """A poller asleep without the external fds rebuilds its set on the last enable."""
    data = EventData(api)
    api.set_event_notifier(ctx, data.e, data.ready, is_external=True)
    api.disable_external(ctx)
    api.notifier_set(data.e)

    def enabler() -> None:
        wait_until(poller_blocked(ctx), "the test thread blocks in aio_poll", WAIT / 2)
        api.enable_external(ctx)

    t, errors = run_thread(enabler, "enabler")
    progress = blocking_poll(api, ctx)
    join_thread(t, errors)
    if not progress:  # the wake-up iteration itself; the handler runs in the next one
        assert api.poll(ctx, False)
    assert data.n == 1
    api.set_event_notifier(ctx, data.e, None)


def test_external_disabled_during_blocking_poll_is_not_dispatched(
    api: QemuAPI, ctx: AioContext
) -> None:
    """Disabling external handlers while a poll sleeps with them in its set: even if their
    fd turns out ready, the dispatch skips them (QEMU's aio_node_check)."""
    data = EventData(api)
    api.set_event_notifier(ctx, data.e, data.ready, is_external=True)

    def drainer() -> None:
        wait_until(poller_blocked(ctx), "the test thread blocks in aio_poll", WAIT / 2)
        api.disable_external(ctx)
        api.notifier_set(data.e)
        api.notify(ctx)  # the poll set may or may not contain the external fd: wake anyway

    t, errors = run_thread(drainer, "drainer")
    assert not blocking_poll(api, ctx), "an external handler ran while external was disabled"
    join_thread(t, errors)
    assert data.n == 0
    assert not api.poll(ctx, False)
    assert data.n == 0
    api.enable_external(ctx)
    assert api.poll(ctx, False)
    assert data.n == 1
    api.set_event_notifier(ctx, data.e, None)


# ==========================================================================================
# Dispatch order within one iteration
# ==========================================================================================
@pytest.mark.usefixtures("frozen_virtual")
def test_iteration_runs_bhs_then_handlers_then_timers(api: QemuAPI, ctx: AioContext) -> None:
    ran: list[str] = []
    t = api.timer_new(ctx, ClockType.VIRTUAL, SCALE_NS, ran.append, "timer")
    n = api.notifier_new()

    def handler(e: EventNotifier) -> None:
        assert api.notifier_test_and_clear(e)
        ran.append("handler")

    api.set_event_notifier(ctx, n, handler)
    bh = api.bh_new(ctx, ran.append, "bh")
    api.timer_mod(t, api.clock_ns(ClockType.VIRTUAL))  # expired now
    api.notifier_set(n)
    api.bh_schedule(bh)
    assert api.poll(ctx, False)
    assert ran == ["bh", "handler", "timer"]
    assert not api.poll(ctx, False)
    api.set_event_notifier(ctx, n, None)
    api.bh_delete(bh)


@pytest.mark.usefixtures("frozen_virtual")
def test_timers_run_realtime_then_virtual_then_host(api: QemuAPI, ctx: AioContext) -> None:
    ran: list[str] = []
    timers = []
    for clock in (ClockType.HOST, ClockType.VIRTUAL, ClockType.REALTIME):
        t = api.timer_new(ctx, clock, SCALE_NS, ran.append, clock.name)
        api.timer_mod(t, api.clock_ns(clock))
        timers.append(t)
    assert api.poll(ctx, False)
    assert ran == ["REALTIME", "VIRTUAL", "HOST"]


# ==========================================================================================
# Timers
# ==========================================================================================
@pytest.mark.usefixtures("frozen_virtual")
def test_timer_schedule(api: QemuAPI, ctx: AioContext) -> None:
    """/aio/timer/schedule, with the VIRTUAL clock frozen and moved by hand."""
    period = 750 * SCALE_MS
    data = TimerData(api, ctx, ClockType.VIRTUAL, period, 2)
    api.timer_mod(data.timer, api.clock_ns(ClockType.VIRTUAL) + period)
    assert api.timer_pending(data.timer)
    # timer_mod's aio_notify was dropped (nobody polled): nothing to drain.
    assert not api.poll(ctx, False)
    assert data.n == 0
    api.advance_virtual(period - 1)
    assert not api.poll(ctx, False)
    api.advance_virtual(1)
    assert data.n == 0, "nothing runs outside aio_poll"
    assert api.poll(ctx, False), "a non-blocking poll runs an expired timer"
    assert data.n == 1
    assert api.timer_pending(data.timer), "the callback re-armed it"
    assert not api.poll(ctx, False)
    assert data.n == 1

    # A blocking poll sleeps until the (virtual) deadline; another thread moves the clock.
    def mover() -> None:
        wait_until(poller_blocked(ctx), "the test thread blocks in aio_poll", WAIT / 2)
        api.advance_virtual(period)

    t, errors = run_thread(mover, "clock-mover")
    assert blocking_poll(api, ctx)
    join_thread(t, errors)
    assert data.n == 2
    assert not api.timer_pending(data.timer)
    assert not api.poll(ctx, False)
    api.timer_del(data.timer)


@pytest.mark.usefixtures("frozen_virtual")
def test_timers_with_equal_deadline_run_in_arming_order(api: QemuAPI, ctx: AioContext) -> None:
    ran: list[int] = []
    timers = [api.timer_new(ctx, ClockType.VIRTUAL, SCALE_NS, ran.append, i) for i in range(5)]
    when = api.clock_ns(ClockType.VIRTUAL) + 1000
    for i in (2, 0, 4, 3, 1):
        api.timer_mod(timers[i], when)
    api.timer_mod(timers[0], when)  # re-arming for the same time moves it to the back
    api.advance_virtual(1000)
    assert api.poll(ctx, False)
    assert ran == [2, 4, 3, 1, 0]


@pytest.mark.usefixtures("frozen_virtual")
def test_timer_rearmed_in_callback(api: QemuAPI, ctx: AioContext) -> None:
    """Re-armed for a time not after the run's clock reading: runs again in the same poll;
    re-armed in the future: runs in a later poll."""
    now = api.clock_ns(ClockType.VIRTUAL)
    same = TimerData(api, ctx, ClockType.VIRTUAL, 0, 3)
    api.timer_mod(same.timer, now)
    assert api.poll(ctx, False)
    assert same.n == 3
    assert not api.timer_pending(same.timer)

    later = TimerData(api, ctx, ClockType.VIRTUAL, 1, 3)
    api.timer_mod(later.timer, now)
    assert api.poll(ctx, False)
    assert later.n == 1
    assert api.timer_pending(later.timer)
    assert api.timer_expire_ns(later.timer) == now + 1
    assert not api.poll(ctx, False)
    api.advance_virtual(1)
    assert api.poll(ctx, False)
    assert later.n == 2
    api.timer_del(later.timer)


@pytest.mark.usefixtures("frozen_virtual")
def test_timer_del(api: QemuAPI, ctx: AioContext) -> None:
    ran: list[str] = []
    t = api.timer_new(ctx, ClockType.VIRTUAL, SCALE_NS, ran.append, "t")
    api.timer_del(t)  # not pending: a no-op
    api.timer_mod(t, api.clock_ns(ClockType.VIRTUAL) + 10)
    assert api.timer_pending(t)
    api.timer_del(t)
    assert not api.timer_pending(t)
    assert api.timer_expire_ns(t) == -1
    api.advance_virtual(100)
    assert not api.poll(ctx, False)
    assert ran == []
    # A deleted timer stays usable.
    api.timer_mod(t, api.clock_ns(ClockType.VIRTUAL))
    assert api.poll(ctx, False)
    assert ran == ["t"]


@pytest.mark.usefixtures("frozen_virtual")
def test_timer_pending_and_scale(api: QemuAPI, ctx: AioContext) -> None:
    ran: list[str] = []
    t = api.timer_new(ctx, ClockType.VIRTUAL, SCALE_MS, ran.append, "ms")
    assert not api.timer_pending(t)
    now_ms = api.clock_ns(ClockType.VIRTUAL) // SCALE_MS
    api.timer_mod(t, now_ms + 5)
    assert api.timer_pending(t)
    assert api.timer_expire_ns(t) == (now_ms + 5) * SCALE_MS
    api.advance_virtual(4 * SCALE_MS)
    assert not api.poll(ctx, False)
    assert api.timer_pending(t)
    api.advance_virtual(SCALE_MS)
    assert api.poll(ctx, False)
    assert ran == ["ms"]
    assert not api.timer_pending(t)


@pytest.mark.usefixtures("frozen_virtual")
def test_disabled_clock_runs_no_timers(api: QemuAPI, ctx: AioContext) -> None:
    ran: list[str] = []
    t = api.timer_new(ctx, ClockType.VIRTUAL, SCALE_NS, ran.append, "t")
    api.timer_mod(t, api.clock_ns(ClockType.VIRTUAL))
    api.clock_enable(ClockType.VIRTUAL, False)
    try:
        assert not api.poll(ctx, False)
        assert ran == []
        assert api.timer_pending(t)
    finally:
        api.clock_enable(ClockType.VIRTUAL, True)
    assert api.poll(ctx, False)
    assert ran == ["t"]


@pytest.mark.usefixtures("frozen_virtual")
def test_timer_mod_from_other_thread_wakes_blocked_poll(api: QemuAPI, ctx: AioContext) -> None:
    """timer_mod making a timer the list head notifies a poller sleeping without timers."""
    ran: list[str] = []
    t = api.timer_new(ctx, ClockType.VIRTUAL, SCALE_NS, ran.append, "t")

    def arm() -> None:
        wait_until(poller_blocked(ctx), "the test thread blocks in aio_poll", WAIT / 2)
        api.timer_mod(t, api.clock_ns(ClockType.VIRTUAL))

    th, errors = run_thread(arm, "armer")
    assert blocking_poll(api, ctx)
    join_thread(th, errors)
    assert ran == ["t"]


def test_timer_mod_wakes_iothread(api: QemuAPI, iothreads: list[IOThread]) -> None:
    """An IOThread asleep on a far deadline runs a timer moved to now from another thread."""
    it = api.iothread_new()
    iothreads.append(it)
    fired = threading.Event()
    where: list[int] = []

    def cb(_opaque: object) -> None:
        where.append(threading.get_ident())
        fired.set()

    t = api.timer_new(it.ctx, ClockType.REALTIME, SCALE_NS, cb)
    api.timer_mod(t, api.clock_ns(ClockType.REALTIME) + 3600 * 10**9)  # an hour away
    for _ in range(3):
        fired.clear()
        wait_until(poller_blocked(it.ctx), "the IOThread blocks in aio_poll")
        api.timer_mod(t, api.clock_ns(ClockType.REALTIME))
        assert fired.wait(WAIT), "the IOThread did not run a timer moved to now"
        api.timer_mod(t, api.clock_ns(ClockType.REALTIME) + 3600 * 10**9)
    api.timer_del(t)
    assert where == [it.thread_id] * 3
    it.check()
