"""IOThread, the main-loop context, and stop-the-world.

Prior art: QEMU iothread.c (Stefan Hajnoczi, QEMU 2.0, 2014) and the 2015 loop form of
acfb23ad3d ("AioContext: do not rely on aio_poll(ctx, true) result to end a loop"): the
thread loops ``acquire; aio_poll(ctx, True); release`` until stopped, so every iteration
is a hand-over point where the FIFO context lock lets a waiting thread in.

Stopping follows the 2017 fix 2362a28ea1 ("iothread: fix iothread_stop() race condition"):
the ``stopping`` flag is set by a one-shot BH that runs *inside* the IOThread, so the wake-up
cannot be lost and the flag is written by the thread that reads it.  A bare flag plus
``aio_notify`` loses the wake-up under the 2015 notify_me protocol (the notify is dropped
when the IOThread is between polls).

Stop-the-world (migration hand-over) acquires every IOThread's context in turn and releases
them in reverse order.
PYTEST_DONT_REWRITE (why: impl/__init__.py)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from ._context import AioContext
from ._errors import AioCtxError, IOThreadStateError
from ._platform import Mutex, Platform, ThreadHandle, ThreadId, TraceEvent, per_platform
from ._real import default_platform

__all__ = ["IOThread", "live_iothreads", "main_context", "stop_the_world"]

#: At most this many errors are kept per IOThread (a closed fd fails every iteration).
MAX_RECORDED_ERRORS = 100


class _Registry:
    def __init__(self, platform: Platform) -> None:
        self.mutex: Mutex = platform.mutex("iothread-registry")
        self.live: list[IOThread] = []
        self.main: AioContext | None = None


def _registry(platform: Platform) -> _Registry:
    """The platform's IOThread registry (made on first use, kept on the platform)."""
    return per_platform(platform, "_aioctx_registry", lambda: _Registry(platform))


def main_context(platform: Platform | None = None) -> AioContext:
    """``qemu_get_aio_context``: the main loop's context; its home is the main thread.

    Safe from any thread (the platform's registry is read under its mutex); made on first
    use, and again after the previous one was closed (its last reference dropped)."""
    p = platform or default_platform()
    reg = _registry(p)
    with reg.mutex:
        if reg.main is None or reg.main.closed:
            reg.main = AioContext(p, name="main-loop", home=p.main_thread())
        return reg.main


def live_iothreads(platform: Platform | None = None) -> list[IOThread]:
    """IOThreads started and not yet joined, in creation order; safe from any thread."""
    reg = _registry(platform or default_platform())
    with reg.mutex:
        return list(reg.live)


class IOThread:
    """A thread running one AioContext's event loop.

    Args:
        platform: the concurrency seam.
        name: thread and context name.

    Errors raised by callbacks inside the thread do not kill it: they are kept, in order,
    in :attr:`errors` (at most :data:`MAX_RECORDED_ERRORS`; :attr:`error_count` counts all).
    """

    def __init__(self, platform: Platform | None = None, *, name: str = "") -> None:
        p = platform or default_platform()
        self._p = p
        self.id = p.new_id()
        self.name = name or f"iothread-{self.id}"
        self.ctx = AioContext(p, name=f"{self.name}.ctx", home=ThreadId(-1))
        self.ctx._iothread = self
        self._thread: ThreadHandle | None = None
        self._init_mutex = p.mutex(f"{self.name}.init")
        self._init_cond = p.condition(self._init_mutex)
        self.thread_id: ThreadId | None = None
        self._running = False
        self._stopping = False  # written only by the IOThread itself (stop BH)
        self._stop_requested = False
        self._joined = False
        self.errors: list[BaseException] = []
        self.error_count = 0
        self.iterations = 0
        #: Oracle witness (never read by impl): start()'s wait for the thread ran out at its
        #: deadline though the thread was running by then (its announcement was missed).
        self.start_waited_out = False

    def __repr__(self) -> str:
        state = "running" if self._running else ("joined" if self._joined else "new")
        return f"<IOThread {self.name} {state}>"

    def __enter__(self) -> IOThread:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.join()

    @property
    def running(self) -> bool:
        return self._running

    @property
    def stopping(self) -> bool:
        """The loop was told to end (its stop BH ran): it ends after the current iteration."""
        return self._stopping

    def is_alive(self) -> bool:
        """Its thread was started and has not ended (``running`` stays true until ``join``,
        also for a thread that died of an impl bug)."""
        th = self._thread
        return th is not None and th.is_alive()

    def start(self, timeout: float = 10.0) -> IOThread:
        """Start the thread and wait until it runs its loop (``iothread_new``)."""
        if self._thread is not None:
            raise IOThreadStateError(f"IOThread {self.name} was already started; create a new one")
        self._running = True
        reg = _registry(self._p)
        with reg.mutex:
            reg.live.append(self)
        self._thread = self._p.start_thread(self._run, self.name)
        with self._init_mutex:
            if self.thread_id is None and not self._init_cond.wait(timeout):
                self._note_start_wait_ran_out()
            if self.thread_id is None:
                raise IOThreadStateError(f"IOThread {self.name} did not start within {timeout} s")
        return self

    def _note_start_wait_ran_out(self) -> None:
        """Witness (init mutex held): the wait ran out; was the thread running anyway?"""
        self.start_waited_out = self.thread_id is not None

    def _run(self) -> None:
        p = self._p
        me = p.current_thread()
        ctx = self.ctx
        ctx._home = me
        with self._init_mutex:
            self.thread_id = me
            self._init_cond.notify_all()
        tr = p.tracer
        if tr is not None:
            tr(TraceEvent("iothread_start", me, ctx.id, self.id, self.name))
        try:
            while not self._stopping:
                ctx.acquire()
                try:
                    ctx.aio_poll(True)
                    self.iterations += 1
                except AioCtxError as e:
                    self._record(e)
                finally:
                    ctx.release()
        except BaseException as e:  # an impl bug: keep it for the joiner, end the thread
            self._record(e)
        finally:
            tr = p.tracer
            if tr is not None:
                tr(TraceEvent("iothread_stop", me, ctx.id, self.id, self.name))

    def _record(self, e: BaseException) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_RECORDED_ERRORS:
            self.errors.append(e)

    def _set_stopping(self, _opaque: object) -> None:
        self._stopping = True
        tr = self._p.tracer
        if tr is not None:
            me = self._p.current_thread()
            tr(TraceEvent("iothread_stopping", me, self.ctx.id, self.id, self.name))

    def stop(self) -> None:
        """Ask the loop to end after its current iteration (lock-free, never blocks)."""
        if self._thread is None:
            raise IOThreadStateError(
                f"cannot stop IOThread {self.name}: it was never started; call start() first"
            )
        if self._stop_requested or self._joined:
            return
        self._stop_requested = True
        self.ctx.bh_schedule_oneshot(self._set_stopping)
        tr = self._p.tracer
        if tr is not None:  # after the stop BH is scheduled: the thread must now end
            me = self._p.current_thread()
            tr(TraceEvent("iothread_stop_request", me, self.ctx.id, self.id, self.name))

    def join(self, timeout: float | None = 30.0) -> None:
        """Stop, wait for the thread (``iothread_join``) and drop its context reference.

        Raises:
            IOThreadStateError: never started.
            TimeoutError: the thread did not end within ``timeout`` seconds (it is stuck in a
                callback, or holds no stop BH because another thread holds its context).
        """
        if self._thread is None:
            raise IOThreadStateError(
                f"cannot join IOThread {self.name}: it was never started; call start() first"
            )
        if self._joined:
            return
        if self.ctx.held_by_me():
            raise IOThreadStateError(
                f"cannot join IOThread {self.name} while holding its context: it could "
                "never run its stop BH; release the context first"
            )
        self.stop()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"IOThread {self.name} did not stop within {timeout} s")
        self._running = False
        self._joined = True
        reg = _registry(self._p)
        with reg.mutex:
            if self in reg.live:
                reg.live.remove(self)
        self.ctx.unref()

    def check(self) -> None:
        """Raise the first error a callback raised in this thread, if any."""
        if self.errors:
            raise self.errors[0]


@contextmanager
def stop_the_world(
    iothreads: Iterable[IOThread] | None = None,
    *,
    platform: Platform | None = None,
    timeout: float | None = None,
) -> Iterator[list[AioContext]]:
    """Pause IOThreads by acquiring each one's context in turn; resume in reverse.

    With no argument, every live IOThread of the platform.  Each acquire kicks the IOThread
    out of its blocking ``aio_poll`` (contention callback), and the FIFO lock hands the
    context over at the end of that iteration.

    Raises:
        TimeoutError: a context was not granted within ``timeout`` seconds (those already
            acquired are released first).
    """
    its = list(iothreads) if iothreads is not None else live_iothreads(platform)
    held: list[AioContext] = []
    # Traced on the platform of the IOThreads (none: nothing is paused, nothing to trace).
    p = its[0].ctx.platform if its else None
    tr = p.tracer if p is not None else None
    if tr is not None and p is not None:
        tr(TraceEvent("stw_begin", p.current_thread(), 0, len(its)))
    try:
        for it in its:
            if not it.ctx.acquire(timeout):
                raise TimeoutError(f"stop-the-world: {it.name} not paused within {timeout} s")
            held.append(it.ctx)
        if tr is not None and p is not None:
            tr(TraceEvent("stw_paused", p.current_thread(), 0, len(held)))
        yield list(held)
    finally:
        for ctx in reversed(held):
            ctx.release()
        if tr is not None and p is not None:  # every context it acquired is released
            tr(TraceEvent("stw_end", p.current_thread(), 0, len(held)))
