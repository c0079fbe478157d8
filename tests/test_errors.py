"""Every misuse raises a named exception whose message names the rule and the object.

Most cases go through :mod:`impl.qemu` (QEMU's C names); a few also through the Pythonic
API.  The second half checks that a raising user callback leaves the context consistent:
``aio_poll`` raises :class:`CallbackError` (original as ``__cause__``), the lock is not
leaked, the failing callback is not re-run and nothing else scheduled is lost.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aioctx_verify import impl
from aioctx_verify.impl import (
    AioContext,
    BHDeletedError,
    CallbackError,
    ContextClosedError,
    ContextInUseError,
    InvalidCallbackError,
    InvalidFdError,
    IOThread,
    IOThreadStateError,
    LockNotHeldError,
    NotifierClosedError,
    NotOwnerError,
    PoolShutdownError,
    RealPlatform,
    TimerFreedError,
    UsageError,
)
from aioctx_verify.impl import qemu as q
from tests.conftest import WAIT

# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def run_in_thread(fn: Callable[[], Any], timeout: float = WAIT) -> Any:
    """Run ``fn`` in a fresh thread; return its result or re-raise its exception."""
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            box["result"] = fn()
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=body, name="helper")
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "helper thread did not finish in time"
    if "error" in box:
        raise box["error"]
    return box.get("result")


def can_acquire_from_other_thread(ctx: AioContext) -> bool:
    """Whether a third thread can take (and give back) the context within WAIT."""

    def body() -> bool:
        if not ctx.acquire(WAIT):
            return False
        ctx.release()
        return True

    return bool(run_in_thread(body))


def barrier(ctx: AioContext) -> None:
    """Wait until ``ctx``'s IOThread has run one BH scheduled now."""
    done = threading.Event()
    ctx.bh_schedule_oneshot(lambda _: done.set())
    assert done.wait(WAIT), f"{ctx.name} did not run a BH within {WAIT} s"


@pytest.fixture
def ctx(platform: RealPlatform) -> Iterator[AioContext]:
    """A context whose home is the test's thread; closed at teardown if still open."""
    c = q.aio_context_new(platform)
    yield c
    if not c.closed:
        while c.held_by_me():
            c.release()
        q.aio_context_unref(c)


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    fds = [r, w]
    yield r, w
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def closed_fd() -> int:
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    return r


# ---------------------------------------------------------------------------------------
# the context lock
# ---------------------------------------------------------------------------------------


def test_release_by_non_owner_leaves_lock_intact(ctx: AioContext) -> None:
    q.aio_context_acquire(ctx)
    q.aio_context_acquire(ctx)
    me = threading.get_ident()
    before = ctx.statistics().lock
    assert before.owner == me and before.depth == 2

    with pytest.raises(NotOwnerError) as ei:
        run_in_thread(lambda: q.aio_context_release(ctx))
    msg = str(ei.value)
    assert ctx.name in msg
    assert str(me) in msg  # names the real owner
    assert "only the owner may release" in msg

    after = ctx.statistics().lock
    assert after.owner == me and after.depth == 2 and after.waiters == 0
    q.aio_context_release(ctx)
    q.aio_context_release(ctx)
    assert ctx.statistics().lock.depth == 0
    assert can_acquire_from_other_thread(ctx)


def test_release_by_non_owner_pythonic(ctx: AioContext) -> None:
    with ctx:
        with pytest.raises(NotOwnerError, match="only the owner may release"):
            run_in_thread(ctx.release)
        assert ctx.held_by_me()
        assert ctx.statistics().lock.depth == 1
    assert not ctx.held_by_me()
    assert can_acquire_from_other_thread(ctx)


def test_release_when_not_held(ctx: AioContext) -> None:
    with pytest.raises(LockNotHeldError) as ei:
        q.aio_context_release(ctx)
    msg = str(ei.value)
    assert ctx.name in msg and "not held" in msg and "acquire" in msg
    # A balanced pair followed by one release too many.
    q.aio_context_acquire(ctx)
    q.aio_context_release(ctx)
    with pytest.raises(LockNotHeldError):
        ctx.release()
    # The lock still works.
    assert ctx.statistics().lock.depth == 0
    with ctx:
        assert ctx.statistics().lock.depth == 1
    assert can_acquire_from_other_thread(ctx)


def test_release_when_not_held_from_other_thread(ctx: AioContext) -> None:
    with pytest.raises(LockNotHeldError, match=ctx.name):
        run_in_thread(ctx.release)


# ---------------------------------------------------------------------------------------
# aio_poll ownership (rule 2)
# ---------------------------------------------------------------------------------------


def test_aio_poll_of_iothread_context_from_main_thread(
    platform: RealPlatform, iothreads: list[IOThread]
) -> None:
    it = q.iothread_new(platform)
    iothreads.append(it)
    ctx = q.iothread_get_aio_context(it)
    assert not ctx.held_by_me()
    with pytest.raises(NotOwnerError) as ei:
        q.aio_poll(ctx, False)
    msg = str(ei.value)
    assert "aio_poll" in msg and ctx.name in msg
    assert "aio_context_acquire" in msg  # the remedy
    # Done properly it works, and the IOThread carries on afterwards.
    q.aio_context_acquire(ctx)
    try:
        q.aio_poll(ctx, False)
    finally:
        q.aio_context_release(ctx)
    barrier(ctx)
    assert it.errors == []


def test_aio_poll_from_helper_thread_on_context_of_creator(ctx: AioContext) -> None:
    with pytest.raises(NotOwnerError) as ei:
        run_in_thread(lambda: q.aio_poll(ctx, False))
    msg = str(ei.value)
    assert ctx.name in msg and "does not hold the context" in msg and "aio_context_acquire" in msg
    # Pythonic API, same rule.
    with pytest.raises(NotOwnerError):
        run_in_thread(lambda: ctx.aio_poll(False))

    ran: list[int] = []
    q.aio_bh_schedule_oneshot(ctx, lambda _: ran.append(threading.get_ident()), None)

    def acquired_poll() -> int:
        with ctx:
            q.aio_poll(ctx, False)
        return threading.get_ident()

    helper = run_in_thread(acquired_poll)
    assert ran == [helper]
    assert ctx.statistics().lock.depth == 0


def test_home_thread_may_poll_without_acquiring(ctx: AioContext) -> None:
    ran: list[int] = []
    bh = q.aio_bh_new(ctx, lambda _: ran.append(threading.get_ident()), None)
    q.qemu_bh_schedule(bh)
    assert not ctx.held_by_me()
    assert q.aio_poll(ctx, False) is True
    assert ran == [threading.get_ident()]
    # The implicit acquire was given back.
    assert ctx.statistics().lock.depth == 0
    assert can_acquire_from_other_thread(ctx)
    q.qemu_bh_delete(bh)


# ---------------------------------------------------------------------------------------
# bottom halves
# ---------------------------------------------------------------------------------------


def _bh_cb(_opaque: object) -> None:
    """A BH callback with a recognisable name."""


@pytest.mark.parametrize(
    ("op", "what"),
    [
        (q.qemu_bh_schedule, "qemu_bh_schedule"),
        (q.qemu_bh_schedule_idle, "qemu_bh_schedule_idle"),
        (q.qemu_bh_cancel, "qemu_bh_cancel"),
        (q.qemu_bh_delete, "qemu_bh_delete"),
    ],
)
def test_use_of_deleted_bh(ctx: AioContext, op: Callable[[impl.BH], None], what: str) -> None:
    bh = q.aio_bh_new(ctx, _bh_cb, None)
    q.qemu_bh_delete(bh)
    with pytest.raises(BHDeletedError) as ei:
        op(bh)
    msg = str(ei.value)
    assert what in msg
    assert f"BH {bh.id}" in msg and "_bh_cb" in msg
    assert "qemu_bh_delete" in msg and "aio_bh_new" in msg  # rule and remedy
    assert not bh.is_scheduled
    assert q.aio_poll(ctx, False) is False  # never runs


@pytest.mark.parametrize("op", ["schedule", "schedule_idle", "cancel", "delete"])
def test_use_of_deleted_bh_pythonic(ctx: AioContext, op: str) -> None:
    bh = ctx.bh_new(_bh_cb)
    bh.delete()
    with pytest.raises(BHDeletedError, match=f"BH {bh.id} "):
        getattr(bh, op)()


def test_bh_delete_twice(ctx: AioContext) -> None:
    bh = ctx.bh_new(_bh_cb)
    bh.schedule()
    bh.delete()
    with pytest.raises(BHDeletedError) as ei:
        bh.delete()
    assert "qemu_bh_delete" in str(ei.value) and str(bh.id) in str(ei.value)
    # The first delete unscheduled it; the context is fine.
    assert q.aio_poll(ctx, False) is False
    assert ctx.statistics().bhs == 0


# ---------------------------------------------------------------------------------------
# timers
# ---------------------------------------------------------------------------------------


def _timer_cb(_opaque: object) -> None:
    """A timer callback with a recognisable name."""


@pytest.mark.parametrize(
    ("what", "op"),
    [
        ("timer_mod", lambda t: q.timer_mod(t, 1)),
        ("timer_mod_ns", lambda t: q.timer_mod_ns(t, 1)),
        ("timer_del", q.timer_del),
        ("timer_free", q.timer_free),
    ],
)
def test_use_of_freed_timer(
    ctx: AioContext, what: str, op: Callable[[impl.QEMUTimer], None]
) -> None:
    t = q.aio_timer_new(ctx, q.QEMU_CLOCK_REALTIME, q.SCALE_MS, _timer_cb, None)
    q.timer_mod(t, q.qemu_clock_get_ms(q.QEMU_CLOCK_REALTIME, ctx.platform) + 60_000)
    q.timer_free(t)
    assert not q.timer_pending(t)
    with pytest.raises(TimerFreedError) as ei:
        op(t)
    msg = str(ei.value)
    assert msg.startswith(what + " ")
    assert f"timer {t.id}" in msg and "_timer_cb" in msg
    assert "timer_free" in msg and "aio_timer_new" in msg
    assert not q.timer_pending(t)


# ---------------------------------------------------------------------------------------
# callbacks that are not callable
# ---------------------------------------------------------------------------------------

NOT_CALLABLE: list[Any] = [42, "callback", None]
#: Registrations where None means "no callback" (removal, no completion callback).
NONE_ALLOWED = {
    "aio_set_fd_handler_read",
    "aio_set_fd_handler_write",
    "aio_set_event_notifier",
    "thread_pool_submit_aio_cb",
}
REGISTRATIONS = [
    "aio_bh_new",
    "aio_bh_schedule_oneshot",
    "aio_set_fd_handler_read",
    "aio_set_fd_handler_write",
    "aio_set_event_notifier",
    "aio_timer_new",
    "thread_pool_submit_aio_func",
    "thread_pool_submit_aio_cb",
    "ctx.bh_new",
    "ctx.timer_new",
]


@pytest.mark.parametrize(
    ("register", "bad"),
    [
        pytest.param(reg, bad, id=f"{reg}-{bad!r}")
        for reg in REGISTRATIONS
        for bad in NOT_CALLABLE
        if not (bad is None and reg in NONE_ALLOWED)
    ],
)
def test_non_callable_callback_refused(
    ctx: AioContext, pipe: tuple[int, int], register: str, bad: Any
) -> None:
    r, _w = pipe
    notifier = q.event_notifier_init(False, ctx.platform)
    pool = q.aio_get_thread_pool(ctx)
    before = ctx.statistics()
    try:
        calls: dict[str, Callable[[], Any]] = {
            "aio_bh_new": lambda: q.aio_bh_new(ctx, bad, None),
            "aio_bh_schedule_oneshot": lambda: q.aio_bh_schedule_oneshot(ctx, bad, None),
            "aio_set_fd_handler_read": lambda: q.aio_set_fd_handler(ctx, r, bad, None, None),
            "aio_set_fd_handler_write": lambda: q.aio_set_fd_handler(ctx, r, None, bad, None),
            "aio_set_event_notifier": lambda: q.aio_set_event_notifier(ctx, notifier, bad),
            "aio_timer_new": lambda: q.aio_timer_new(
                ctx, q.QEMU_CLOCK_REALTIME, q.SCALE_MS, bad, None
            ),
            "thread_pool_submit_aio_func": lambda: q.thread_pool_submit_aio(
                pool, bad, None, None, None
            ),
            "thread_pool_submit_aio_cb": lambda: q.thread_pool_submit_aio(
                pool, lambda _: 0, None, bad, None
            ),
            "ctx.bh_new": lambda: ctx.bh_new(bad),
            "ctx.timer_new": lambda: ctx.timer_new(impl.ClockType.VIRTUAL, impl.SCALE_NS, bad),
        }
        with pytest.raises(InvalidCallbackError) as ei:
            calls[register]()
        assert isinstance(ei.value, TypeError)
        msg = str(ei.value)
        assert "must be callable" in msg and repr(bad) in msg and "pass a function" in msg
        # Nothing was registered.
        after = ctx.statistics()
        assert after.bhs == before.bhs
        assert after.scheduled_bhs == before.scheduled_bhs == 0
        assert after.handlers == before.handlers == 0
        assert pool.pending() == 0
        assert q.aio_poll(ctx, False) is False
    finally:
        q.event_notifier_cleanup(notifier)


# ---------------------------------------------------------------------------------------
# file descriptors
# ---------------------------------------------------------------------------------------


def _read_cb(_opaque: object) -> None:
    """An fd read handler."""


def test_invalid_fd_minus_one(ctx: AioContext) -> None:
    with pytest.raises(InvalidFdError) as ei:
        q.aio_set_fd_handler(ctx, -1, _read_cb, None, None)
    assert isinstance(ei.value, ValueError)
    msg = str(ei.value)
    assert "fd -1" in msg and ctx.name in msg and "not an open file descriptor" in msg
    assert ctx.statistics().handlers == 0


def test_invalid_fd_closed(ctx: AioContext) -> None:
    fd = closed_fd()
    with pytest.raises(InvalidFdError) as ei:
        q.aio_set_fd_handler(ctx, fd, _read_cb, None, None)
    msg = str(ei.value)
    assert f"fd {fd}" in msg and ctx.name in msg and "not an open file descriptor" in msg
    assert ctx.statistics().handlers == 0
    assert q.aio_poll(ctx, False) is False


@pytest.mark.parametrize("fd", ["3", 3.0, None, True], ids=repr)
def test_invalid_fd_not_an_int(ctx: AioContext, fd: Any) -> None:
    with pytest.raises(InvalidFdError) as ei:
        q.aio_set_fd_handler(ctx, fd, _read_cb, None, None)
    msg = str(ei.value)
    assert "must be an int" in msg and repr(fd) in msg
    assert ctx.statistics().handlers == 0


def test_fd_closed_while_registered(ctx: AioContext) -> None:
    r, w = os.pipe()
    try:
        got: list[int] = []
        q.aio_set_fd_handler(ctx, r, lambda _: got.append(1), None, None)
        assert q.aio_poll(ctx, False) is False  # registered and polled while open
        os.close(r)
        with pytest.raises(InvalidFdError) as ei:
            q.aio_poll(ctx, False)
        msg = str(ei.value)
        assert f"fd {r} " in msg and ctx.name in msg
        assert "no longer open" in msg and "aio_set_fd_handler" in msg  # rule and remedy
        assert got == []
        assert ctx.statistics().lock.depth == 0  # not leaked by the raise
        # Remove the handler as the message says: the context polls fine again.
        q.aio_set_fd_handler(ctx, r, None, None, None)
        assert ctx.statistics().handlers == 0
        assert q.aio_poll(ctx, False) is False
        ran: list[int] = []
        q.aio_bh_schedule_oneshot(ctx, lambda _: ran.append(1), None)
        assert q.aio_poll(ctx, True) is True
        assert ran == [1]
    finally:
        os.close(w)


# ---------------------------------------------------------------------------------------
# event notifiers
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("what", "op"),
    [
        ("event_notifier_set", q.event_notifier_set),
        ("event_notifier_test_and_clear", q.event_notifier_test_and_clear),
        ("event_notifier_cleanup", q.event_notifier_cleanup),
    ],
)
def test_use_of_cleaned_up_notifier(
    platform: RealPlatform, what: str, op: Callable[[impl.EventNotifier], Any]
) -> None:
    n = q.event_notifier_init(True, platform)
    q.event_notifier_cleanup(n)
    with pytest.raises(NotifierClosedError) as ei:
        op(n)
    msg = str(ei.value)
    assert msg.startswith(what + " ")
    assert f"event notifier {n.id}" in msg
    assert "event_notifier_cleanup" in msg and "event_notifier_init" in msg


def test_set_event_notifier_with_cleaned_up_notifier(ctx: AioContext) -> None:
    n = q.event_notifier_init(False, ctx.platform)
    q.event_notifier_cleanup(n)
    with pytest.raises(NotifierClosedError) as ei:
        q.aio_set_event_notifier(ctx, n, lambda _: None)
    msg = str(ei.value)
    assert "aio_set_event_notifier" in msg and f"event notifier {n.id}" in msg
    assert ctx.statistics().handlers == 0
    # Removing a handler for a gone notifier is harmless.
    q.aio_set_event_notifier(ctx, n, None)
    assert q.aio_poll(ctx, False) is False


def test_set_event_notifier_with_non_notifier(ctx: AioContext) -> None:
    with pytest.raises(UsageError, match="needs an EventNotifier"):
        q.aio_set_event_notifier(ctx, 3, lambda _: None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------
# context life cycle
# ---------------------------------------------------------------------------------------


def test_unref_of_context_in_use_by_iothread(
    platform: RealPlatform, iothreads: list[IOThread]
) -> None:
    it = q.iothread_new(platform)
    iothreads.append(it)
    ctx = q.iothread_get_aio_context(it)
    with pytest.raises(ContextInUseError) as ei:
        q.aio_context_unref(ctx)
    msg = str(ei.value)
    assert ctx.name in msg and it.name in msg and "iothread_join" in msg
    # The reference was kept and the IOThread keeps working.
    assert ctx.statistics().refcount == 1
    assert not ctx.closed
    ran: list[int] = []
    done = threading.Event()

    def cb(_: object) -> None:
        ran.append(threading.get_ident())
        done.set()

    q.aio_bh_schedule_oneshot(ctx, cb, None)
    assert done.wait(WAIT)
    assert ran == [it.thread_id]
    q.iothread_join(it)
    assert ctx.closed
    assert it.errors == []


def test_unref_of_iothread_context_with_extra_ref_is_fine(
    platform: RealPlatform, iothreads: list[IOThread]
) -> None:
    it = q.iothread_new(platform)
    iothreads.append(it)
    q.aio_context_ref(it.ctx)
    q.aio_context_unref(it.ctx)  # not the last one
    assert not it.ctx.closed
    barrier(it.ctx)


@pytest.mark.parametrize(
    ("what", "op"),
    [
        ("aio_poll", lambda c: q.aio_poll(c, False)),
        ("aio_context_acquire", q.aio_context_acquire),
        ("aio_context_ref", q.aio_context_ref),
        ("aio_context_unref", q.aio_context_unref),
        ("aio_bh_new", lambda c: q.aio_bh_new(c, _bh_cb, None)),
        ("aio_bh_schedule_oneshot", lambda c: q.aio_bh_schedule_oneshot(c, _bh_cb, None)),
        (
            "aio_timer_new",
            lambda c: q.aio_timer_new(c, q.QEMU_CLOCK_REALTIME, q.SCALE_MS, _timer_cb, None),
        ),
        ("aio_get_thread_pool", q.aio_get_thread_pool),
        (
            "aio_set_fd_handler",
            lambda c: q.aio_set_event_notifier(
                c, q.event_notifier_init(False, c.platform), lambda _: None
            ),
        ),
        ("aio_context_acquire", lambda c: c.__enter__()),
    ],
)
def test_use_of_closed_context(
    platform: RealPlatform, what: str, op: Callable[[AioContext], Any]
) -> None:
    ctx = q.aio_context_new(platform)
    q.aio_context_unref(ctx)
    assert ctx.closed
    with pytest.raises(ContextClosedError) as ei:
        op(ctx)
    msg = str(ei.value)
    assert msg.startswith(what + " ")
    assert ctx.name in msg
    assert "last reference" in msg and "aio_context_ref" in msg


def test_use_of_closed_context_from_other_thread(platform: RealPlatform) -> None:
    ctx = q.aio_context_new(platform)
    q.aio_context_unref(ctx)
    # Another thread gets the closed error too, not a NotOwnerError.
    with pytest.raises(ContextClosedError, match="aio_poll"):
        run_in_thread(lambda: q.aio_poll(ctx, False))


def test_submit_to_shut_down_pool(ctx: AioContext) -> None:
    pool = q.aio_get_thread_pool(ctx)
    pool.shutdown()

    def work(_: object) -> int:
        return 0

    with pytest.raises(PoolShutdownError) as ei:
        q.thread_pool_submit_aio(pool, work, None, None, None)
    msg = str(ei.value)
    assert "work" in msg and ctx.name in msg and "shut down" in msg
    assert pool.pending() == 0


def test_submit_to_pool_of_closed_context(platform: RealPlatform) -> None:
    ctx = q.aio_context_new(platform)
    pool = q.aio_get_thread_pool(ctx)
    q.aio_context_unref(ctx)
    with pytest.raises(PoolShutdownError, match=ctx.name):
        pool.submit(lambda _: 0)


# ---------------------------------------------------------------------------------------
# IOThread life cycle
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["join", "stop", "iothread_join"])
def test_join_or_stop_of_never_started_iothread(platform: RealPlatform, op: str) -> None:
    it = IOThread(platform, name="never-started")
    try:
        with pytest.raises(IOThreadStateError) as ei:
            if op == "iothread_join":
                q.iothread_join(it)
            else:
                getattr(it, op)()
        msg = str(ei.value)
        assert "never-started" in msg and "never started" in msg and "start()" in msg
        assert not it.running
    finally:
        it.ctx.unref()  # its context was never run: the last unref is allowed
    assert it.ctx.closed


def test_start_twice(platform: RealPlatform, iothreads: list[IOThread]) -> None:
    it = IOThread(platform, name="twice").start()
    iothreads.append(it)
    with pytest.raises(IOThreadStateError, match=r"twice.*already started"):
        it.start()
    barrier(it.ctx)


# ---------------------------------------------------------------------------------------
# external handlers
# ---------------------------------------------------------------------------------------


def test_enable_external_without_disable(ctx: AioContext) -> None:
    with pytest.raises(UsageError) as ei:
        q.aio_enable_external(ctx)
    msg = str(ei.value)
    assert "aio_enable_external" in msg and ctx.name in msg and "aio_disable_external" in msg
    assert ctx.statistics().external_disable_cnt == 0
    # A matched pair still works, and a second enable is refused again.
    q.aio_disable_external(ctx)
    assert ctx.external_disabled
    q.aio_enable_external(ctx)
    assert not ctx.external_disabled
    with pytest.raises(UsageError):
        ctx.enable_external()
    assert ctx.statistics().external_disable_cnt == 0


# ---------------------------------------------------------------------------------------
# callbacks that raise
# ---------------------------------------------------------------------------------------


class Boom(RuntimeError):
    pass


def poll_until(ctx: AioContext, pred: Callable[[], bool], timeout: float = WAIT) -> None:
    """Blocking ``aio_poll`` until ``pred()``; a REALTIME timer bounds each wait."""
    deadline = time.monotonic_ns() + int(timeout * 1e9)
    wd = ctx.timer_new(q.QEMU_CLOCK_REALTIME, q.SCALE_NS, lambda _: None)
    try:
        while not pred():
            assert time.monotonic_ns() < deadline, "condition not reached in time"
            wd.mod_ns(deadline)
            ctx.aio_poll(True)
    finally:
        wd.free()


@pytest.mark.parametrize("held", [False, True], ids=["home-implicit", "acquired"])
def test_raising_bh(ctx: AioContext, held: bool) -> None:
    runs: list[int] = []

    def failing_bh(_: object) -> None:
        runs.append(1)
        raise Boom("disk on fire")

    bh = q.aio_bh_new(ctx, failing_bh, None)
    if held:
        q.aio_context_acquire(ctx)
    depth = ctx.statistics().lock.depth
    q.qemu_bh_schedule(bh)
    with pytest.raises(CallbackError) as ei:
        q.aio_poll(ctx, True)
    e = ei.value
    assert isinstance(e.__cause__, Boom)
    assert e.exception is e.__cause__
    assert e.kind == "bh"
    assert "failing_bh" in e.callback
    msg = str(e)
    assert "failing_bh" in msg and "Boom" in msg and "disk on fire" in msg
    assert "can be polled again" in msg
    # Lock not leaked.
    st = ctx.statistics().lock
    assert st.depth == depth
    if held:
        assert st.owner == threading.get_ident()
        q.aio_context_release(ctx)
    assert ctx.statistics().lock.depth == 0
    assert can_acquire_from_other_thread(ctx)
    # Not re-run.
    assert not bh.is_scheduled
    assert q.aio_poll(ctx, False) is False
    assert runs == [1]
    q.qemu_bh_delete(bh)


@pytest.mark.parametrize("failing_is_newer", [False, True])
def test_raising_bh_does_not_lose_other_bh(ctx: AioContext, failing_is_newer: bool) -> None:
    """BHs run newest first: the other one runs either before the raise (same poll) or,
    left scheduled, in the next poll; either way exactly once."""
    other_runs: list[int] = []
    failing_runs: list[int] = []

    def failing_bh(_: object) -> None:
        failing_runs.append(1)
        raise Boom("bh")

    def other_bh(_: object) -> None:
        other_runs.append(1)

    if failing_is_newer:
        other = q.aio_bh_new(ctx, other_bh, None)
        failing = q.aio_bh_new(ctx, failing_bh, None)
    else:
        failing = q.aio_bh_new(ctx, failing_bh, None)
        other = q.aio_bh_new(ctx, other_bh, None)
    q.qemu_bh_schedule(failing)
    q.qemu_bh_schedule(other)
    with pytest.raises(CallbackError, match="failing_bh"):
        q.aio_poll(ctx, True)
    if failing_is_newer:
        assert other_runs == []
        assert other.is_scheduled  # still pending, not lost
    else:
        assert other_runs == [1]
    # The next poll(s) run what is left, and nothing twice.
    poll_until(ctx, lambda: bool(other_runs))
    assert q.aio_poll(ctx, False) is False
    assert other_runs == [1]
    assert failing_runs == [1]
    assert ctx.statistics().lock.depth == 0
    q.qemu_bh_delete(failing)
    q.qemu_bh_delete(other)


def test_raising_bh_in_nested_aio_poll_is_reported_once(ctx: AioContext) -> None:
    """A BH whose nested aio_poll raises: the outer aio_poll reports the *inner* callback
    (the one that really raised), with the original exception as ``__cause__``."""
    inner_runs: list[int] = []

    def inner_failing(_: object) -> None:
        inner_runs.append(1)
        raise Boom("inner")

    def outer(_: object) -> None:
        q.aio_bh_schedule_oneshot(ctx, inner_failing, None)
        q.aio_poll(ctx, True)

    q.aio_bh_schedule_oneshot(ctx, outer, None)
    with pytest.raises(CallbackError) as ei:
        q.aio_poll(ctx, True)
    e = ei.value
    assert e.kind == "bh"
    assert "inner_failing" in e.callback
    assert isinstance(e.__cause__, Boom)
    assert str(e).count("can be polled again") == 1
    assert inner_runs == [1]
    assert ctx.statistics().lock.depth == 0
    assert q.aio_poll(ctx, False) is False


def test_raising_oneshot_bh_is_not_rerun(ctx: AioContext) -> None:
    runs: list[int] = []

    def failing_oneshot(_: object) -> None:
        runs.append(1)
        raise Boom("oneshot")

    q.aio_bh_schedule_oneshot(ctx, failing_oneshot, None)
    with pytest.raises(CallbackError, match="failing_oneshot"):
        q.aio_poll(ctx, True)
    assert q.aio_poll(ctx, False) is False
    assert runs == [1]
    assert ctx.statistics().bhs == 0


def test_raising_fd_handler(ctx: AioContext) -> None:
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    try:
        other_runs: list[int] = []
        failing_runs: list[int] = []

        def other_read(_: object) -> None:
            os.read(r1, 64)
            other_runs.append(1)

        def failing_read(_: object) -> None:
            os.read(r2, 64)  # consumed: it has no reason to run again
            failing_runs.append(1)
            raise Boom("fd")

        # Handlers dispatch newest-registered first: the failing one runs first.
        q.aio_set_fd_handler(ctx, r1, other_read, None, None)
        q.aio_set_fd_handler(ctx, r2, failing_read, None, None)
        os.write(w1, b"x")
        os.write(w2, b"x")
        with pytest.raises(CallbackError) as ei:
            q.aio_poll(ctx, True)
        e = ei.value
        assert e.kind == "fd_read" and "failing_read" in e.callback
        assert isinstance(e.__cause__, Boom)
        assert "failing_read" in str(e)
        assert ctx.statistics().lock.depth == 0
        assert can_acquire_from_other_thread(ctx)
        poll_until(ctx, lambda: bool(other_runs))
        assert q.aio_poll(ctx, False) is False
        assert other_runs == [1]
        assert failing_runs == [1]
        q.aio_set_fd_handler(ctx, r1, None, None, None)
        q.aio_set_fd_handler(ctx, r2, None, None, None)
    finally:
        for fd in (r1, w1, r2, w2):
            os.close(fd)


def test_raising_fd_write_handler(ctx: AioContext, pipe: tuple[int, int]) -> None:
    _r, w = pipe

    def failing_write(_: object) -> None:
        q.aio_set_fd_handler(ctx, w, None, None, None)  # one-shot: unregister, then fail
        raise Boom("write")

    q.aio_set_fd_handler(ctx, w, None, failing_write, None)
    with pytest.raises(CallbackError) as ei:
        q.aio_poll(ctx, True)
    assert ei.value.kind == "fd_write" and "failing_write" in str(ei.value)
    assert ctx.statistics().handlers == 0
    assert ctx.statistics().lock.depth == 0
    assert q.aio_poll(ctx, False) is False


def test_raising_timer_callback(ctx: AioContext) -> None:
    other_runs: list[int] = []
    failing_runs: list[int] = []

    def failing_timer(_: object) -> None:
        failing_runs.append(1)
        raise Boom("timer")

    def other_timer(_: object) -> None:
        other_runs.append(1)

    # Same expiry: FIFO among equals, so the failing one runs first and the other is left.
    t1 = q.aio_timer_new(ctx, q.QEMU_CLOCK_REALTIME, q.SCALE_NS, failing_timer, None)
    t2 = q.aio_timer_new(ctx, q.QEMU_CLOCK_REALTIME, q.SCALE_NS, other_timer, None)
    q.timer_mod_ns(t1, 1)
    q.timer_mod_ns(t2, 1)
    with pytest.raises(CallbackError) as ei:
        q.aio_poll(ctx, True)
    e = ei.value
    assert e.kind == "timer" and "failing_timer" in e.callback
    assert isinstance(e.__cause__, Boom)
    assert ctx.statistics().lock.depth == 0
    assert can_acquire_from_other_thread(ctx)
    assert not q.timer_pending(t1)  # not re-run
    assert q.timer_pending(t2) or other_runs == [1]
    poll_until(ctx, lambda: bool(other_runs))
    assert q.aio_poll(ctx, False) is False
    assert failing_runs == [1] and other_runs == [1]
    q.timer_free(t1)
    q.timer_free(t2)


def test_raising_completion_callback(ctx: AioContext) -> None:
    pool = q.aio_get_thread_pool(ctx)
    cb_runs: dict[str, int] = {"failing": 0, "other": 0}

    def failing_completion(_opaque: object, ret: int) -> None:
        cb_runs["failing"] += 1
        raise Boom(f"completion ret={ret}")

    def other_completion(_opaque: object, ret: int) -> None:
        assert ret == 2
        cb_runs["other"] += 1

    r1 = q.thread_pool_submit_aio(pool, lambda _: 1, None, failing_completion, None)
    r2 = q.thread_pool_submit_aio(pool, lambda _: 2, None, other_completion, None)
    errors: list[CallbackError] = []
    deadline = time.monotonic() + WAIT
    wd = ctx.timer_new(q.QEMU_CLOCK_REALTIME, q.SCALE_NS, lambda _: None)
    try:
        while not (r1.completed and r2.completed and cb_runs["other"]):
            assert time.monotonic() < deadline, "completions not delivered in time"
            wd.mod_ns(time.monotonic_ns() + 50_000_000)
            try:
                q.aio_poll(ctx, True)
            except CallbackError as e:
                errors.append(e)
    finally:
        wd.free()
    assert len(errors) == 1
    e = errors[0]
    assert e.kind == "completion" and "failing_completion" in e.callback
    assert isinstance(e.__cause__, Boom) and "ret=1" in str(e)
    assert str(e).count("can be polled again") == 1  # wrapped once, not twice
    assert cb_runs == {"failing": 1, "other": 1}
    # Settle: the completion BH re-arms itself before each callback, so one more (empty)
    # run of it may still be due; it must not deliver anything twice.
    for _ in range(10):
        if not q.aio_poll(ctx, False):
            break
    assert q.aio_poll(ctx, False) is False
    assert cb_runs == {"failing": 1, "other": 1}
    assert pool.pending() == 0
    assert ctx.statistics().lock.depth == 0
    assert can_acquire_from_other_thread(ctx)


def test_raising_callback_inside_iothread_is_recorded(
    platform: RealPlatform, iothreads: list[IOThread]
) -> None:
    it = q.iothread_new(platform)
    iothreads.append(it)
    ctx = it.ctx
    started = threading.Event()

    def failing_in_iothread(_: object) -> None:
        started.set()
        raise Boom("in iothread")

    q.aio_bh_schedule_oneshot(ctx, failing_in_iothread, None)
    assert started.wait(WAIT)
    # A later BH still runs, in the IOThread (after the error was recorded: later iteration).
    ran_in: list[int] = []
    done = threading.Event()

    def later(_: object) -> None:
        ran_in.append(threading.get_ident())
        done.set()

    q.aio_bh_schedule_oneshot(ctx, later, None)
    assert done.wait(WAIT)
    assert ran_in == [it.thread_id]
    assert it.running
    assert it.error_count == 1
    assert len(it.errors) == 1
    err = it.errors[0]
    assert isinstance(err, CallbackError)
    assert isinstance(err.__cause__, Boom) and "failing_in_iothread" in str(err)
    with pytest.raises(CallbackError, match="failing_in_iothread"):
        it.check()
    # The IOThread's lock was released at the end of the failing iteration.
    with ctx.acquired(timeout=WAIT):
        assert ctx.statistics().lock.depth == 1
    q.iothread_join(it)
    assert it.error_count == 1


def test_iothread_check_without_errors(platform: RealPlatform, iothreads: list[IOThread]) -> None:
    it = q.iothread_new(platform)
    iothreads.append(it)
    barrier(it.ctx)
    it.check()  # no error: returns
    assert it.errors == [] and it.error_count == 0


def test_one_root_error_shared_by_every_layer() -> None:
    """The root lives in the vocabulary; impl, properties and reports all derive from it."""
    from aioctx_verify import properties, reports, vocab

    assert impl.AioCtxError is vocab.AioCtxError
    assert (impl.TraceEvent, impl.ThreadId, impl.Tracer) == (
        vocab.TraceEvent,
        vocab.ThreadId,
        vocab.Tracer,
    )
    for err in (UsageError, CallbackError, properties.PropertyViolation, reports.ReportError):
        assert issubclass(err, vocab.AioCtxError), err
