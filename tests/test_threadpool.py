"""Thread pool: work on worker threads, completion in the submitting context's thread.

Covers QEMU thread-pool.c of 2014-2015 (shared/reference/qemu-semantics.md section 9):
completion BH (c2e50e3d), re-arm before each callback so a nested ``aio_poll`` completes
the others (3c80ca158c), asynchronous cancel (-ECANCELED for queued requests, no effect on
running or finished ones, callback exactly once), and shutdown when the context closes.
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aioctx_verify.impl import (
    AioContext,
    IOThread,
    PoolShutdownError,
    RealPlatform,
    ThreadPool,
    ThreadPoolRequest,
)
from aioctx_verify.impl import qemu as q
from aioctx_verify.impl._threadpool import RequestState, ShutdownEnd
from tests.conftest import WAIT

# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def poll_until(ctx: AioContext, pred: Callable[[], bool], timeout: float = WAIT) -> None:
    """Blocking ``aio_poll`` (by the caller, who may poll ``ctx``) until ``pred()``.

    A REALTIME timer armed at the deadline bounds every blocking wait.
    """
    deadline = time.monotonic_ns() + int(timeout * 1e9)
    wd = ctx.timer_new(q.QEMU_CLOCK_REALTIME, q.SCALE_NS, lambda _: None)
    try:
        while not pred():
            assert time.monotonic_ns() < deadline, "condition not reached in time"
            wd.mod_ns(deadline)
            ctx.aio_poll(True)
    finally:
        wd.free()


def settle(ctx: AioContext, max_iterations: int = 10) -> None:
    """Non-blocking polls until one makes no progress.  (The completion BH re-arms itself
    before each callback, so one extra, empty run of it is normal.)"""
    for _ in range(max_iterations):
        if not q.aio_poll(ctx, False):
            return
    raise AssertionError(f"{ctx.name} still makes progress after {max_iterations} polls")


def in_iothread(it: IOThread, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in ``it``'s thread (a one-shot BH) and return its result."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def bh(_: object) -> None:
        try:
            box["result"] = fn()
        except BaseException as e:
            box["error"] = e
        finally:
            done.set()

    it.ctx.bh_schedule_oneshot(bh)
    assert done.wait(WAIT), f"{it.name} did not run the BH in time"
    if "error" in box:
        raise box["error"]
    return box.get("result")


def barrier(it: IOThread) -> None:
    in_iothread(it, lambda: None)


class Gate:
    """Work that blocks a worker until opened: ``entered`` tells that a worker runs it."""

    def __init__(self, ret: int = 0) -> None:
        self.entered = threading.Event()
        self.open = threading.Event()
        self.ret = ret
        self.ran_in: list[int] = []

    def __call__(self, _arg: object) -> int:
        self.ran_in.append(threading.get_ident())
        self.entered.set()
        assert self.open.wait(WAIT), "gate never opened"
        return self.ret


class Completions:
    """Records each completion callback (opaque, ret, thread)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, int, int]] = []
        self.lock = threading.Lock()

    def __call__(self, opaque: Any, ret: int) -> None:
        with self.lock:
            self.calls.append((opaque, ret, threading.get_ident()))

    def count(self, opaque: Any) -> int:
        with self.lock:
            return sum(1 for o, _r, _t in self.calls if o is opaque)

    def rets(self, opaque: Any) -> list[int]:
        with self.lock:
            return [r for o, r, _t in self.calls if o is opaque]


@pytest.fixture
def ctx(platform: RealPlatform) -> Iterator[AioContext]:
    """A context whose home is the test's thread."""
    c = q.aio_context_new(platform)
    yield c
    if not c.closed:
        q.aio_context_unref(c)


@pytest.fixture
def iothread(platform: RealPlatform, iothreads: list[IOThread]) -> IOThread:
    it = q.iothread_new(platform)
    iothreads.append(it)
    return it


# ---------------------------------------------------------------------------------------
# where things run
# ---------------------------------------------------------------------------------------


def test_work_on_worker_completion_in_iothread(iothread: IOThread) -> None:
    it = iothread
    work_threads: list[int] = []
    done = threading.Event()
    comp = Completions()

    def work(arg: int) -> int:
        work_threads.append(threading.get_ident())
        return arg * 2

    def cb(opaque: Any, ret: int) -> None:
        comp(opaque, ret)
        done.set()

    def submit() -> ThreadPoolRequest:
        pool = q.aio_get_thread_pool(it.ctx)
        return q.thread_pool_submit_aio(pool, work, 21, cb, "req")

    req = in_iothread(it, submit)
    assert done.wait(WAIT)
    barrier(it)
    assert len(work_threads) == 1
    assert work_threads[0] not in (it.thread_id, threading.get_ident())
    assert comp.calls == [("req", 42, it.thread_id)]
    assert req.ret == 42 and req.completed and not req.cancelled
    assert req.exception is None
    assert it.errors == []


def test_completion_in_thread_that_polls_own_context(ctx: AioContext) -> None:
    pool = q.aio_get_thread_pool(ctx)
    comp = Completions()
    work_threads: list[int] = []

    def work(_: object) -> int:
        work_threads.append(threading.get_ident())
        return 5

    q.thread_pool_submit_aio(pool, work, None, comp, "r")
    poll_until(ctx, lambda: bool(comp.calls))
    assert comp.calls == [("r", 5, threading.get_ident())]
    assert work_threads and work_threads[0] != threading.get_ident()


def test_no_callback_still_completes(ctx: AioContext) -> None:
    pool = q.aio_get_thread_pool(ctx)
    req = q.thread_pool_submit_aio(pool, lambda _: 3, None, None, None)
    poll_until(ctx, lambda: req.completed)
    assert req.ret == 3
    assert pool.pending() == 0


def test_many_submissions_from_iothread_complete_exactly_once(iothread: IOThread) -> None:
    it = iothread
    n = 500
    counts = [0] * n
    rets: list[int | None] = [None] * n
    threads: set[int] = set()
    done = threading.Event()
    finished = [0]

    def work(i: int) -> int:
        return i + 1000

    def cb(i: int, ret: int) -> None:
        counts[i] += 1
        rets[i] = ret
        threads.add(threading.get_ident())
        finished[0] += 1
        if finished[0] == n:
            done.set()

    def submit_all() -> ThreadPool:
        pool = q.aio_get_thread_pool(it.ctx)
        for i in range(n):
            q.thread_pool_submit_aio(pool, work, i, cb, i)
        return pool

    pool = in_iothread(it, submit_all)
    assert done.wait(WAIT), f"only {finished[0]} of {n} completed"
    barrier(it)  # let any (wrong) duplicate completion show up
    assert counts == [1] * n
    assert rets == [i + 1000 for i in range(n)]
    assert threads == {it.thread_id}
    assert pool.pending() == 0
    assert pool.threads <= pool.max_threads
    assert it.errors == []


# ---------------------------------------------------------------------------------------
# cancellation
# ---------------------------------------------------------------------------------------


def test_cancel_queued_request(ctx: AioContext) -> None:
    pool = ThreadPool(ctx, max_threads=1)
    gate = Gate(ret=7)
    comp = Completions()
    victim_ran: list[int] = []
    try:
        blocker = q.thread_pool_submit_aio(pool, gate, None, comp, "blocker")
        assert gate.entered.wait(WAIT)  # the only worker is busy
        victim = q.thread_pool_submit_aio(
            pool, lambda _: victim_ran.append(1) or 0, None, comp, "victim"
        )
        assert victim.state is RequestState.QUEUED
        q.bdrv_aio_cancel_async(victim)
        q.bdrv_aio_cancel_async(victim)  # a second cancel changes nothing
        assert victim.cancelled
        # The cancelled request completes without waiting for the worker.
        poll_until(ctx, lambda: comp.count("victim") == 1)
        assert comp.rets("victim") == [-errno.ECANCELED]
        assert comp.count("blocker") == 0
        gate.open.set()
        poll_until(ctx, lambda: comp.count("blocker") == 1)
        assert comp.rets("blocker") == [7]
        settle(ctx)
        assert comp.count("victim") == 1
        assert victim_ran == []
        assert victim.ret == -errno.ECANCELED and victim.completed
        assert blocker.ret == 7 and not blocker.cancelled
        assert all(t == threading.get_ident() for _o, _r, t in comp.calls)
        assert pool.pending() == 0
    finally:
        gate.open.set()
        pool.shutdown()
    assert victim_ran == []


def test_cancel_queued_request_in_iothread(iothread: IOThread) -> None:
    it = iothread
    pool = ThreadPool(it.ctx, max_threads=1)
    gate = Gate(ret=1)
    comp = Completions()
    victim_ran: list[int] = []
    both = threading.Event()

    def cb(opaque: Any, ret: int) -> None:
        comp(opaque, ret)
        if len(comp.calls) == 2:
            both.set()

    try:
        in_iothread(it, lambda: pool.submit(gate, None, cb, "blocker"))
        assert gate.entered.wait(WAIT)
        victim = in_iothread(
            it, lambda: pool.submit(lambda _: victim_ran.append(1) or 0, None, cb, "victim")
        )
        # Cancel from the main thread, holding the context (rule 2).
        with it.ctx.acquired(timeout=WAIT):
            q.bdrv_aio_cancel_async(victim)
        gate.open.set()
        assert both.wait(WAIT)
        barrier(it)
        assert comp.count("victim") == 1 and comp.count("blocker") == 1
        assert comp.rets("victim") == [-errno.ECANCELED]
        assert comp.rets("blocker") == [1]
        assert {t for _o, _r, t in comp.calls} == {it.thread_id}
        assert victim_ran == []
    finally:
        gate.open.set()
        pool.shutdown()
    assert it.errors == []


def test_cancel_running_request_completes_normally(ctx: AioContext) -> None:
    pool = ThreadPool(ctx, max_threads=1)
    gate = Gate(ret=99)
    comp = Completions()
    try:
        req = q.thread_pool_submit_aio(pool, gate, None, comp, "running")
        assert gate.entered.wait(WAIT)
        assert req.state is RequestState.ACTIVE
        q.bdrv_aio_cancel_async(req)
        assert not req.cancelled
        gate.open.set()
        poll_until(ctx, lambda: comp.count("running") == 1)
        settle(ctx)
        assert comp.rets("running") == [99]
        assert req.ret == 99 and not req.cancelled and req.completed
        assert len(gate.ran_in) == 1
    finally:
        gate.open.set()
        pool.shutdown()


def test_cancel_after_completion_has_no_effect(ctx: AioContext) -> None:
    pool = q.aio_get_thread_pool(ctx)
    comp = Completions()
    req = q.thread_pool_submit_aio(pool, lambda _: 11, None, comp, "done")
    poll_until(ctx, lambda: comp.count("done") == 1)
    q.bdrv_aio_cancel_async(req)
    assert not req.cancelled
    settle(ctx)
    assert comp.rets("done") == [11]
    assert req.ret == 11


def test_cancel_of_finished_but_undelivered_request(ctx: AioContext) -> None:
    """Done on the worker, callback not yet run (nobody polled): cancel has no effect."""
    pool = ThreadPool(ctx, max_threads=1)
    comp = Completions()
    marker = Gate()
    marker.open.set()
    try:
        req = q.thread_pool_submit_aio(pool, lambda _: 4, None, comp, "r")
        # The single worker takes requests in order: once it runs the marker, req is DONE.
        q.thread_pool_submit_aio(pool, marker, None, None, None)
        assert marker.entered.wait(WAIT)
        assert req.state is RequestState.DONE and not req.completed
        q.bdrv_aio_cancel_async(req)
        assert not req.cancelled
        poll_until(ctx, lambda: comp.count("r") == 1)
        settle(ctx)
        assert comp.rets("r") == [4]
    finally:
        pool.shutdown()


def test_cancel_storm_every_callback_exactly_once(iothread: IOThread) -> None:
    """Cancel every other request while 4 workers chew through them."""
    it = iothread
    n = 300
    pool = ThreadPool(it.ctx, max_threads=4)
    ran = [0] * n
    counts = [0] * n
    rets: list[int | None] = [None] * n
    finished = [0]
    done = threading.Event()
    ran_lock = threading.Lock()

    def work(i: int) -> int:
        with ran_lock:
            ran[i] += 1
        return i

    def cb(i: int, ret: int) -> None:
        counts[i] += 1
        rets[i] = ret
        finished[0] += 1
        if finished[0] == n:
            done.set()

    def submit_and_cancel() -> list[ThreadPoolRequest]:
        reqs = [pool.submit(work, i, cb, i) for i in range(n)]
        for r in reqs[::2]:
            r.cancel_async()
        return reqs

    try:
        reqs = in_iothread(it, submit_and_cancel)
        assert done.wait(WAIT), f"only {finished[0]} of {n} completed"
        barrier(it)
        assert counts == [1] * n
        for i, r in enumerate(reqs):
            if r.cancelled:
                assert i % 2 == 0
                assert rets[i] == -errno.ECANCELED and ran[i] == 0
            else:
                assert rets[i] == i and ran[i] == 1
        assert sum(ran) + sum(r.cancelled for r in reqs) == n
        assert pool.pending() == 0
    finally:
        pool.shutdown()
    assert it.errors == []


# ---------------------------------------------------------------------------------------
# failing work
# ---------------------------------------------------------------------------------------


def test_func_that_raises_completes_with_eio(iothread: IOThread) -> None:
    it = iothread
    comp = Completions()
    done = threading.Event()
    boom = OSError(errno.ENOSPC, "no space")

    def bad(_: object) -> int:
        raise boom

    def cb(opaque: Any, ret: int) -> None:
        comp(opaque, ret)
        done.set()

    req = in_iothread(it, lambda: q.aio_get_thread_pool(it.ctx).submit(bad, None, cb, "bad"))
    assert done.wait(WAIT)
    assert comp.calls == [("bad", -errno.EIO, it.thread_id)]
    assert req.ret == -errno.EIO
    assert req.exception is boom
    assert it.errors == []  # a failing func is not a callback error


# ---------------------------------------------------------------------------------------
# nested aio_poll in a completion callback (QEMU 3c80ca158c)
# ---------------------------------------------------------------------------------------


def _nested_poll_scenario(ctx: AioContext, pool: ThreadPool) -> tuple[dict[str, Any], Gate]:
    """Submit r1, r2 and a marker to a 1-worker pool.  r1's callback loops a nested,
    bounded ``aio_poll(ctx, True)`` until r2's callback has run."""
    state: dict[str, Any] = {"order": [], "nested_ok": None, "threads": set()}
    marker = Gate()
    marker.open.set()

    def cb2(_opaque: object, ret: int) -> None:
        state["order"].append(("r2", ret))
        state["threads"].add(threading.get_ident())

    def cb1(_opaque: object, ret: int) -> None:
        state["order"].append(("r1", ret))
        state["threads"].add(threading.get_ident())
        deadline = time.monotonic_ns() + int(WAIT * 1e9)
        # The watchdog timer makes the nested blocking poll return at the deadline even if
        # nothing re-armed the completion BH (the pre-3c80ca158c deadlock).
        wd = ctx.timer_new(q.QEMU_CLOCK_REALTIME, q.SCALE_NS, lambda _: None)
        try:
            while not any(name == "r2" for name, _r in state["order"]):
                if time.monotonic_ns() >= deadline:
                    state["nested_ok"] = False
                    return
                wd.mod_ns(deadline)
                q.aio_poll(ctx, True)
            state["nested_ok"] = True
        finally:
            wd.free()

    q.thread_pool_submit_aio(pool, lambda _: 1, None, cb1, None)
    q.thread_pool_submit_aio(pool, lambda _: 2, None, cb2, None)
    q.thread_pool_submit_aio(pool, marker, None, None, None)
    return state, marker


def test_nested_aio_poll_completes_other_request(ctx: AioContext) -> None:
    pool = ThreadPool(ctx, max_threads=1)
    try:
        state, marker = _nested_poll_scenario(ctx, pool)
        # One worker, FIFO: when it runs the marker, r1 and r2 are both DONE, and nobody
        # has polled ctx, so both complete from the same run of the completion BH.
        assert marker.entered.wait(WAIT)
        poll_until(ctx, lambda: state["nested_ok"] is not None)
        assert state["nested_ok"] is True, "nested aio_poll never completed r2"
        assert state["order"] == [("r1", 1), ("r2", 2)]
        assert state["threads"] == {threading.get_ident()}
        poll_until(ctx, lambda: pool.pending() == 0)
        settle(ctx)
        assert state["order"] == [("r1", 1), ("r2", 2)]
    finally:
        pool.shutdown()


def test_nested_aio_poll_completes_other_request_in_iothread(iothread: IOThread) -> None:
    it = iothread
    pool = ThreadPool(it.ctx, max_threads=1)
    try:
        # Hold the context so the IOThread cannot run the completion BH before both are DONE.
        with it.ctx.acquired(timeout=WAIT):
            state, marker = _nested_poll_scenario(it.ctx, pool)
            assert marker.entered.wait(WAIT)
            assert state["order"] == []
        done = threading.Event()

        def check(_: object) -> None:
            if state["nested_ok"] is not None:
                done.set()
            else:
                it.ctx.bh_schedule_oneshot(check)

        # Re-check from the IOThread itself until the nested loop is over (bounded).
        it.ctx.bh_schedule_oneshot(check)
        assert done.wait(WAIT)
        assert state["nested_ok"] is True
        assert state["order"] == [("r1", 1), ("r2", 2)]
        assert state["threads"] == {it.thread_id}
    finally:
        pool.shutdown()
    assert it.errors == []


# ---------------------------------------------------------------------------------------
# shutdown
# ---------------------------------------------------------------------------------------


def test_pool_shutdown_on_context_close(platform: RealPlatform) -> None:
    ctx = q.aio_context_new(platform)
    pool = q.aio_get_thread_pool(ctx)
    assert q.aio_get_thread_pool(ctx) is pool  # one pool per context
    comp = Completions()
    q.thread_pool_submit_aio(pool, lambda _: 0, None, comp, "r")
    poll_until(ctx, lambda: comp.count("r") == 1)
    assert pool.threads >= 1  # an idle worker lingers
    q.aio_context_unref(ctx)
    assert ctx.closed
    assert pool.threads == 0  # workers were told to exit and waited for
    assert pool.shutdown_end == ShutdownEnd(10.0, False, 0, 0)  # not by its deadline
    assert pool.completion_bh.deleted
    with pytest.raises(PoolShutdownError, match=ctx.name):
        q.thread_pool_submit_aio(pool, lambda _: 0, None, None, None)


def test_pool_shutdown_when_iothread_joined(platform: RealPlatform) -> None:
    it = q.iothread_new(platform)
    try:
        comp = Completions()
        done = threading.Event()

        def cb(opaque: Any, ret: int) -> None:
            comp(opaque, ret)
            done.set()

        pool = it.ctx.thread_pool()
        in_iothread(it, lambda: pool.submit(lambda _: 1, None, cb, "r"))
        assert done.wait(WAIT)
    finally:
        q.iothread_join(it)
    assert it.ctx.closed
    assert pool.threads == 0
    with pytest.raises(PoolShutdownError):
        pool.submit(lambda _: 0)


def test_shutdown_is_idempotent_and_drops_queued(ctx: AioContext) -> None:
    pool = ThreadPool(ctx, max_threads=1)
    gate = Gate()
    comp = Completions()
    queued_ran: list[int] = []
    try:
        q.thread_pool_submit_aio(pool, gate, None, comp, "running")
        assert gate.entered.wait(WAIT)
        q.thread_pool_submit_aio(pool, lambda _: queued_ran.append(1) or 0, None, comp, "queued")
        # Don't wait for the busy worker: it exits when its func returns.
        pool.shutdown(timeout=0)
        # It gave up at once: the running func keeps the one worker counted.
        assert pool.shutdown_end == ShutdownEnd(0, True, 1, 1)
        pool.shutdown()  # idempotent, returns at once
        assert pool.shutdown_end == ShutdownEnd(0, True, 1, 1)
    finally:
        gate.open.set()
    with pool._cond:  # each exiting worker notifies the condition
        assert pool._cond.wait_for(lambda: pool._cur_threads == 0, WAIT)
    assert queued_ran == []
    settle(ctx)
    assert comp.calls == []  # dropped uncompleted, as thread_pool_free does
    with pytest.raises(PoolShutdownError):
        pool.submit(lambda _: 0)


# ---------------------------------------------------------------------------------------
# the witnesses the structural oracle checks the counters against
# ---------------------------------------------------------------------------------------


def _phases(pool: ThreadPool) -> tuple[int, int, list[tuple[str, bool]]]:
    with pool._mutex:
        return (pool._cur_threads, pool._idle_threads,
                [(w.phase, w.alive()) for w in pool._workers])


def test_worker_records_follow_their_workers(ctx: AioContext) -> None:
    pool = q.aio_get_thread_pool(ctx)
    gate = Gate(ret=7)
    comp = Completions()
    try:
        q.thread_pool_submit_aio(pool, gate, None, comp, "r")
        assert gate.entered.wait(WAIT)
        assert _phases(pool) == (1, 0, [("run", True)])  # busy: counted, not idle
    finally:
        gate.open.set()
    poll_until(ctx, lambda: comp.count("r") == 1)
    # The completion BH takes the mutex only once the worker released it in its wait.
    assert _phases(pool) == (1, 1, [("wait", True)])
    q.thread_pool_submit_aio(pool, lambda _: 1, None, comp, "again")
    poll_until(ctx, lambda: comp.count("again") == 1)
    assert _phases(pool) == (1, 1, [("wait", True)])  # the idle worker took it
    q.aio_context_unref(ctx)
    cur, idle, records = _phases(pool)
    assert (cur, idle) == (0, 0) and [ph for ph, _alive in records] == ["exited"]
    assert pool.shutdown_end == ShutdownEnd(10.0, False, 0, 0)
    handle = pool._workers[0].handle
    assert handle is not None
    handle.join(WAIT)
    assert not handle.is_alive()
