"""QEMU's C names over the same objects as the Pythonic API.

Each function keeps QEMU's name and argument order so a QEMU developer can map every call
to its C counterpart by grep; they are thin wrappers around :mod:`impl`'s classes.  Use
``aio_context_new(platform)`` to run on another platform than the real one.
PYTEST_DONT_REWRITE (why: impl/__init__.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._context import BH, AioContext, EventNotifier
from ._dataplane import DataplaneDevice, VMState, one_off
from ._iothread import IOThread, main_context, stop_the_world
from ._platform import Platform
from ._real import default_platform
from ._threadpool import ThreadPool, ThreadPoolRequest
from ._timers import SCALE_MS, SCALE_NS, SCALE_US, ClockType, QEMUTimer, clocks_for

__all__ = [
    "QEMU_CLOCK_HOST",
    "QEMU_CLOCK_REALTIME",
    "QEMU_CLOCK_VIRTUAL",
    "SCALE_MS",
    "SCALE_NS",
    "SCALE_US",
    "DataplaneDevice",
    "VMState",
    "aio_bh_new",
    "aio_bh_schedule_oneshot",
    "aio_context_acquire",
    "aio_context_new",
    "aio_context_ref",
    "aio_context_release",
    "aio_context_unref",
    "aio_disable_external",
    "aio_enable_external",
    "aio_get_thread_pool",
    "aio_notify",
    "aio_notify_accept",
    "aio_poll",
    "aio_set_event_notifier",
    "aio_set_fd_handler",
    "aio_timer_new",
    "bdrv_aio_cancel_async",
    "event_notifier_cleanup",
    "event_notifier_init",
    "event_notifier_set",
    "event_notifier_test_and_clear",
    "iothread_get_aio_context",
    "iothread_join",
    "iothread_new",
    "one_off",
    "pause_all_iothreads",
    "qemu_bh_cancel",
    "qemu_bh_delete",
    "qemu_bh_new",
    "qemu_bh_schedule",
    "qemu_bh_schedule_idle",
    "qemu_clock_advance_virtual",
    "qemu_clock_enable",
    "qemu_clock_get_ms",
    "qemu_clock_get_ns",
    "qemu_clock_start_virtual",
    "qemu_clock_stop_virtual",
    "qemu_get_aio_context",
    "thread_pool_submit_aio",
    "timer_del",
    "timer_expire_time_ns",
    "timer_free",
    "timer_mod",
    "timer_mod_ns",
    "timer_pending",
]

QEMU_CLOCK_REALTIME = ClockType.REALTIME
QEMU_CLOCK_VIRTUAL = ClockType.VIRTUAL
QEMU_CLOCK_HOST = ClockType.HOST


# -- contexts ------------------------------------------------------------------------------
def aio_context_new(platform: Platform | None = None) -> AioContext:
    """A new context whose home is the calling thread."""
    return AioContext(platform)


def aio_context_ref(ctx: AioContext) -> None:
    ctx.ref()


def aio_context_unref(ctx: AioContext) -> None:
    ctx.unref()


def aio_context_acquire(ctx: AioContext) -> None:
    ctx.acquire()


def aio_context_release(ctx: AioContext) -> None:
    ctx.release()


def aio_poll(ctx: AioContext, blocking: bool) -> bool:
    return ctx.aio_poll(blocking)


def aio_notify(ctx: AioContext) -> None:
    ctx.aio_notify()


def aio_notify_accept(ctx: AioContext) -> None:
    ctx.aio_notify_accept()


# -- bottom halves -------------------------------------------------------------------------
def aio_bh_new(ctx: AioContext, cb: Callable[[Any], None], opaque: Any) -> BH:
    return ctx.bh_new(cb, opaque)


def qemu_bh_new(cb: Callable[[Any], None], opaque: Any, platform: Platform | None = None) -> BH:
    """A BH of the main-loop context (of ``platform``, default: the real one)."""
    return main_context(platform).bh_new(cb, opaque)


def qemu_bh_schedule(bh: BH) -> None:
    bh.schedule()


def qemu_bh_schedule_idle(bh: BH) -> None:
    bh.schedule_idle()


def qemu_bh_cancel(bh: BH) -> None:
    bh.cancel()


def qemu_bh_delete(bh: BH) -> None:
    bh.delete()


def aio_bh_schedule_oneshot(ctx: AioContext, cb: Callable[[Any], None], opaque: Any) -> None:
    ctx.bh_schedule_oneshot(cb, opaque)


# -- event notifiers and fd handlers -------------------------------------------------------
def event_notifier_init(active: bool, platform: Platform | None = None) -> EventNotifier:
    return EventNotifier(platform, active=bool(active))


def event_notifier_set(n: EventNotifier) -> None:
    n.set()


def event_notifier_test_and_clear(n: EventNotifier) -> bool:
    return n.test_and_clear()


def event_notifier_cleanup(n: EventNotifier) -> None:
    n.cleanup()


def aio_set_event_notifier(
    ctx: AioContext,
    n: EventNotifier,
    io_read: Callable[[EventNotifier], None] | None,
    *,
    is_external: bool = False,
) -> None:
    ctx.set_event_notifier(n, io_read, is_external=is_external)


def aio_set_fd_handler(
    ctx: AioContext,
    fd: int,
    io_read: Callable[[Any], None] | None,
    io_write: Callable[[Any], None] | None,
    opaque: Any,
    *,
    is_external: bool = False,
) -> None:
    ctx.set_fd_handler(fd, io_read, io_write, opaque, is_external=is_external)


def aio_disable_external(ctx: AioContext) -> None:
    ctx.disable_external()


def aio_enable_external(ctx: AioContext) -> None:
    ctx.enable_external()


# -- timers and clocks ---------------------------------------------------------------------
def aio_timer_new(
    ctx: AioContext, clock: ClockType | int, scale: int, cb: Callable[[Any], None], opaque: Any
) -> QEMUTimer:
    return ctx.timer_new(clock, scale, cb, opaque)


def timer_mod(timer: QEMUTimer, expire: int) -> None:
    timer.mod(expire)


def timer_mod_ns(timer: QEMUTimer, expire_ns: int) -> None:
    timer.mod_ns(expire_ns)


def timer_del(timer: QEMUTimer) -> None:
    timer.delete()


def timer_free(timer: QEMUTimer) -> None:
    timer.free()


def timer_pending(timer: QEMUTimer) -> bool:
    return timer.pending()


def timer_expire_time_ns(timer: QEMUTimer) -> int:
    return timer.expire_ns()


def qemu_clock_get_ns(clock: ClockType | int, platform: Platform | None = None) -> int:
    return clocks_for(platform or default_platform()).get_ns(ClockType(clock))


def qemu_clock_get_ms(clock: ClockType | int, platform: Platform | None = None) -> int:
    return qemu_clock_get_ns(clock, platform) // SCALE_MS


def qemu_clock_enable(
    clock: ClockType | int, enabled: bool, platform: Platform | None = None
) -> None:
    clocks_for(platform or default_platform()).enable(ClockType(clock), enabled)


def qemu_clock_stop_virtual(platform: Platform | None = None) -> None:
    clocks_for(platform or default_platform()).stop_virtual()


def qemu_clock_start_virtual(platform: Platform | None = None) -> None:
    clocks_for(platform or default_platform()).start_virtual()


def qemu_clock_advance_virtual(ns: int, platform: Platform | None = None) -> None:
    clocks_for(platform or default_platform()).advance_virtual(ns)


# -- IOThreads and the main loop -----------------------------------------------------------
def iothread_new(platform: Platform | None = None) -> IOThread:
    """Create and start an IOThread (``-object iothread``)."""
    return IOThread(platform).start()


def iothread_get_aio_context(iothread: IOThread) -> AioContext:
    return iothread.ctx


def iothread_join(iothread: IOThread) -> None:
    iothread.join()


def qemu_get_aio_context(platform: Platform | None = None) -> AioContext:
    """The main-loop context (of ``platform``, default: the real one); safe from any
    thread (see :func:`main_context`)."""
    return main_context(platform)


pause_all_iothreads = stop_the_world


# -- thread pool ---------------------------------------------------------------------------
def aio_get_thread_pool(ctx: AioContext) -> ThreadPool:
    return ctx.thread_pool()


def thread_pool_submit_aio(
    pool: ThreadPool,
    func: Callable[[Any], int],
    arg: Any,
    cb: Callable[[Any, int], None] | None,
    opaque: Any,
) -> ThreadPoolRequest:
    return pool.submit(func, arg, cb, opaque)


def bdrv_aio_cancel_async(acb: ThreadPoolRequest) -> None:
    acb.cancel_async()
