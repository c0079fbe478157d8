"""Thread pool: blocking work on worker threads, completion as a BH in the submitting context.

Prior art: QEMU thread-pool.c of 2014-2015 (QEMU 2.1-2.4; shared/reference/qemu-semantics.md
section 9): c2e50e3d (completion delivered by a BH of the context), 3c80ca158c (the
completion BH re-schedules itself *before* each callback, so a callback that runs a nested
``aio_poll`` waiting for another finished request can complete it), and the 2014 async
cancel: a request still queued is taken off the queue and completes with ``-ECANCELED``;
one already running completes normally.  Either way its callback runs exactly once, in the
context's thread.

Differences: workers are created directly by ``submit`` (QEMU creates them from a BH so they
inherit the context thread's CPU affinity, which means nothing here); a ``func`` that raises
completes with ``-EIO`` and the exception kept on the request (QEMU functions return
``-errno``).

Witnesses for the structural oracle (``pool_violations`` in ``properties/_structure.py``).
The counters ``_cur_threads`` and ``_idle_threads`` drive the pool's decisions (spawn only
when nobody is idle; shutdown waits until no worker is counted), so a counter that drifts
from the real workers changes behaviour without any wrong result: too many workers, or a
shutdown that only ends at its deadline.  To let an oracle compare them with reality, the
pool keeps, next to them and never reading them itself:

* one :class:`WorkerRecord` per started worker: the :class:`~impl._platform.ThreadHandle`
  ``start_thread`` returned (is the thread alive?) and the phase the worker itself reports,
  under the mutex, as it goes (``starting`` until it first holds the mutex, then ``run``,
  ``wait`` from just before ``_idle_threads += 1`` to just after ``_idle_threads -= 1``
  around its ``cond.wait`` for work, and ``exited`` just before ``_cur_threads -= 1``);
* :attr:`ThreadPool.shutdown_end`: how :meth:`ThreadPool.shutdown` ended (before or at its
  deadline; workers still counted and functions still running then);
* :attr:`ThreadPool.late_starts`: requests that a worker found only when its idle wait ran
  out, after they had waited at least half the idle timeout (each request's
  ``queued_ns`` is taken at submit): a request queued while a worker idles must wake it.

Both are written by other statements than the counters (through methods, so that the
mutation operators, which reorder adjacent statements touching shared state, do not make
equivalent reorderings of bookkeeping the pool never reads), so one wrong statement cannot
move a counter and its witness together.  With the mutex held, ``_cur_threads`` equals the
records not ``exited`` (each of whose threads is alive) and ``_idle_threads`` equals those
in ``wait``, at every point, not only at rest.
PYTEST_DONT_REWRITE (why: impl/__init__.py)."""

from __future__ import annotations

import enum
import errno
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._errors import CallbackError, PoolShutdownError, callable_name, check_callable
from ._platform import Fence, Platform, ThreadHandle, TraceEvent

if TYPE_CHECKING:
    from ._context import AioContext

__all__ = ["ShutdownEnd", "ThreadPool", "ThreadPoolRequest", "WorkerRecord"]


class RequestState(enum.Enum):
    QUEUED = "queued"
    ACTIVE = "active"
    DONE = "done"


class ThreadPoolRequest:
    """The AIOCB of a submitted request."""

    __slots__ = (
        "arg",
        "cancelled",
        "cb",
        "completed",
        "exception",
        "func",
        "id",
        "opaque",
        "pool",
        "queued_ns",
        "ret",
        "state",
    )

    def __init__(
        self,
        pool: ThreadPool,
        func: Callable[[Any], int],
        arg: Any,
        cb: Callable[[Any, int], None] | None,
        opaque: Any,
    ) -> None:
        self.pool = pool
        self.func = func
        self.arg = arg
        self.cb = cb
        self.opaque = opaque
        self.state = RequestState.QUEUED
        self.ret = 0
        self.exception: BaseException | None = None
        self.cancelled = False
        self.completed = False
        self.queued_ns = 0  # oracle witness: when it was queued (monotonic, under the mutex)
        self.id = pool.ctx.platform.new_id()

    def __repr__(self) -> str:
        name = callable_name(self.func)
        return f"<ThreadPoolRequest {self.id} {name} {self.state.value} ret={self.ret}>"

    def cancel_async(self) -> None:
        """``bdrv_aio_cancel_async``: see :meth:`ThreadPool.cancel`."""
        self.pool.cancel(self)


class WorkerRecord:
    """Oracle witness: one started worker, its thread and the phase it reports.

    ``phase`` is ``starting`` (set by the spawner), then what the worker itself reports with
    the pool mutex held: ``run`` (in its loop), ``wait`` (inside its ``cond.wait`` for work,
    counted idle), ``exited`` (no longer counted; its thread may still be alive for a
    moment).  The pool never reads it.
    """

    __slots__ = ("handle", "phase")

    def __init__(self) -> None:
        self.handle: ThreadHandle | None = None
        self.phase = "starting"

    def __repr__(self) -> str:
        name = "?" if self.handle is None else self.handle.name
        return f"<WorkerRecord {name} {self.phase}>"

    def start(self, p: Platform, target: Callable[[], None], name: str) -> None:
        self.handle = p.start_thread(target, name)

    def mark(self, phase: str) -> None:
        self.phase = phase

    def alive(self) -> bool:
        """Whether the worker's thread exists (has not ended) now."""
        return self.handle is None or self.handle.is_alive()


@dataclass(frozen=True, slots=True)
class ShutdownEnd:
    """Oracle witness: how :meth:`ThreadPool.shutdown` ended (recorded under the mutex)."""

    timeout: float
    #: it gave up at its deadline (else: no worker was counted any more)
    timed_out: bool
    #: ``_cur_threads`` then
    threads: int
    #: requests ACTIVE then (a ``func`` running on a worker)
    running: int
    #: a wait of the shutdown ran out at its deadline while no request was ACTIVE (no
    #: ``func`` could keep a worker: only a missed wake-up can make it wait that long)
    idle_expiry: bool = False


class ThreadPool:
    """One per AioContext (``aio_get_thread_pool``).

    Args:
        ctx: the context whose thread runs completions.
        max_threads: QEMU's default is 64.
        idle_timeout: seconds an idle worker waits before it exits (QEMU: 10).
    """

    def __init__(
        self, ctx: AioContext, *, max_threads: int = 64, idle_timeout: float = 10.0
    ) -> None:
        p = ctx.platform
        self._p = p
        self.ctx = ctx
        self.max_threads = max_threads
        self.idle_timeout = idle_timeout
        self._mutex = p.mutex("threadpool")
        self._cond = p.condition(self._mutex)  # request arrival, stop, worker exit
        self._queue: deque[ThreadPoolRequest] = deque()
        self._live: list[ThreadPoolRequest] = []  # every request not yet completed (QEMU's head)
        self._cur_threads = 0
        self._idle_threads = 0
        self._stopping = False
        # Oracle witnesses (module docstring): never read by the pool itself.
        self._workers: list[WorkerRecord] = []
        self.shutdown_end: ShutdownEnd | None = None
        self.late_starts = 0
        self.completion_bh = ctx.bh_new(self._completion_bh)

    def __repr__(self) -> str:
        with self._mutex:  # submit and the workers change both under it
            threads, queued = self._cur_threads, len(self._queue)
        return f"<ThreadPool {self.ctx.name} threads={threads} queued={queued}>"

    def submit(
        self,
        func: Callable[[Any], int],
        arg: Any = None,
        cb: Callable[[Any, int], None] | None = None,
        opaque: Any = None,
    ) -> ThreadPoolRequest:
        """``thread_pool_submit_aio``: run ``func(arg)`` on a worker, then ``cb(opaque, ret)``."""
        check_callable(func, "thread pool function")
        check_callable(cb, "completion callback", optional=True)
        req = ThreadPoolRequest(self, func, arg, cb, opaque)
        with self._mutex:
            if self._stopping:
                raise PoolShutdownError(
                    f"cannot submit {callable_name(func)} to the thread pool of {self.ctx.name}: "
                    "the pool was shut down (its context was closed); submit to a live "
                    "context's pool (aio_get_thread_pool)"
                )
            self._live.append(req)
            self._queue.append(req)
            self._note_queued(req)
            if self._idle_threads == 0 and self._cur_threads < self.max_threads:
                self._cur_threads += 1
                self._spawn()
            self._cond.notify()
        return req

    def _spawn(self) -> None:
        """Start a worker (mutex held) and keep its :class:`WorkerRecord`; records of
        workers gone for good are dropped here."""
        w = WorkerRecord()
        w.start(self._p, lambda: self._worker(w), f"{self.ctx.name}.worker")
        self._workers = [x for x in self._workers if x.phase != "exited" or x.alive()]
        self._workers.append(w)

    def _worker(self, w: WorkerRecord) -> None:
        p = self._p
        mutex = self._mutex
        mutex.acquire()
        try:
            w.mark("run")
            while not self._stopping:
                if not self._queue:
                    w.mark("wait")
                    self._idle_threads += 1
                    woke = self._cond.wait(self.idle_timeout)
                    self._idle_threads -= 1
                    w.mark("run")
                    self._note_idle_end(woke)
                    if not woke and not self._queue:
                        break  # idle too long
                    continue
                req = self._queue.popleft()
                req.state = RequestState.ACTIVE
                mutex.release()
                try:
                    try:
                        ret = int(req.func(req.arg))
                    except Exception as e:
                        req.exception = e
                        ret = -errno.EIO
                    req.ret = ret
                    p.fence(Fence.WMB)  # ret before state, paired with the BH's RMB
                finally:
                    mutex.acquire()
                req.state = RequestState.DONE
                if not self._stopping:
                    self.completion_bh.schedule()
                    tr = p.tracer
                    if tr is not None:  # under the mutex: before any completion of req
                        me = p.current_thread()
                        tr(TraceEvent("pool_done", me, self.ctx.id, req.id, str(ret)))
        finally:
            w.mark("exited")
            self._cur_threads -= 1
            self._cond.notify_all()
            mutex.release()

    def cancel(self, req: ThreadPoolRequest) -> None:
        """Cancel asynchronously: a queued request completes with ``-ECANCELED`` and never
        runs; a running or finished one is not affected.  The callback runs exactly once."""
        with self._mutex:
            if req.state is RequestState.QUEUED and not req.cancelled:
                try:
                    self._queue.remove(req)
                except ValueError:
                    return
                req.cancelled = True
                req.ret = -errno.ECANCELED
                req.state = RequestState.DONE
                if not self.completion_bh.deleted:
                    self.completion_bh.schedule()
                    tr = self._p.tracer
                    if tr is not None:
                        me = self._p.current_thread()
                        tr(TraceEvent("pool_cancel", me, self.ctx.id, req.id, str(req.ret)))

    def _completion_bh(self, _opaque: object) -> None:
        while True:
            with self._mutex:
                req = next((r for r in self._live if r.state is RequestState.DONE), None)
                if req is None:
                    return
                self._live.remove(req)
            req.completed = True
            tr = self._p.tracer
            if tr is not None:
                me = self._p.current_thread()
                tr(TraceEvent("pool_complete", me, self.ctx.id, req.id, str(req.ret)))
            if req.cb is None:
                continue
            self._p.fence(Fence.RMB)
            # 3c80ca158c: re-arm first, so a nested aio_poll in the callback completes the rest.
            self.completion_bh.schedule()
            try:
                req.cb(req.opaque, req.ret)
            except CallbackError:
                raise  # already names the callback that failed
            except Exception as e:
                raise CallbackError("completion", callable_name(req.cb), e) from e

    @property
    def threads(self) -> int:
        """Worker threads started and not yet exited (any thread)."""
        with self._mutex:
            return self._cur_threads

    def pending(self) -> int:
        """Requests submitted and not yet completed."""
        with self._mutex:
            return len(self._live)

    def shutdown(self, timeout: float = 10.0) -> None:
        """``thread_pool_free``: stop the workers; queued requests are dropped uncompleted."""
        with self._mutex:
            if self._stopping:
                return
            self._stopping = True
            self._queue.clear()
            tr = self._p.tracer
            if tr is not None:  # what is queued or done now is dropped, never completed
                tr(TraceEvent("pool_shutdown", self._p.current_thread(), self.ctx.id))
            self._cond.notify_all()
            deadline = self._p.monotonic_ns() + int(timeout * 1e9)
            idle_expiry = False
            while self._cur_threads > 0:
                left = deadline - self._p.monotonic_ns()
                if left <= 0:
                    self._shutdown_ended(timeout, timed_out=True, idle_expiry=idle_expiry)
                    break  # a func is still running; its worker exits when it returns
                if not self._cond.wait(left / 1e9) and not self._running():
                    idle_expiry = True
            else:
                self._shutdown_ended(timeout, timed_out=False, idle_expiry=idle_expiry)
        if not self.completion_bh.deleted:
            self.completion_bh.delete()

    def _note_queued(self, req: ThreadPoolRequest) -> None:
        """Witness (mutex held): when ``req`` was queued."""
        req.queued_ns = self._p.monotonic_ns()

    def _note_idle_end(self, woke: bool) -> None:
        """Witness (mutex held): an idle wait that ran out with a request queued, which has
        waited half the idle timeout or more, is a late start (its wake-up was missed: the
        queue was empty when the wait began, so the request came while the worker idled)."""
        if woke or not self._queue:
            return
        waited = self._p.monotonic_ns() - self._queue[0].queued_ns
        if 2 * waited >= int(self.idle_timeout * 1e9):
            self.late_starts += 1

    def _running(self) -> int:
        """Requests whose ``func`` runs on a worker now (mutex held)."""
        return sum(1 for r in self._live if r.state is RequestState.ACTIVE)

    def _shutdown_ended(self, timeout: float, *, timed_out: bool, idle_expiry: bool) -> None:
        """Record :attr:`shutdown_end` (mutex held)."""
        self.shutdown_end = ShutdownEnd(
            timeout, timed_out, self._cur_threads, self._running(), idle_expiry
        )
