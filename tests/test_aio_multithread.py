"""Many threads, many IOThreads: ported from the behaviour of QEMU's
tests/test-aio-multithread.c (2017: /aio/multi/lifecycle, /aio/multi/schedule) and adapted
to the 2014-2015 threading model (RFifoLock context lock held by the IOThread while it
polls, hand-over by the contention kick).

Every wait is bounded; every IOThread is joined (the ``iothreads`` fixture joins the ones a
test leaves running).  Counting rules for cross-thread BH scheduling:

* one-shot BHs (``aio_bh_schedule_oneshot``) never coalesce: each scheduled item runs
  exactly once;
* a persistent BH coalesces: runs <= schedules, and at least one run starts after the last
  schedule (writes before ``qemu_bh_schedule`` are visible to that run).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest

from aioctx_verify.impl import BH, IOThread, RealPlatform, live_iothreads, stop_the_world
from aioctx_verify.impl import qemu as q
from tests.conftest import WAIT


class Worker:
    """A plain thread that keeps its exception for the test."""

    def __init__(self, body: Callable[[], None], name: str) -> None:
        self.error: BaseException | None = None
        self._body = body
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self._body()
        except BaseException as e:
            self.error = e

    def join(self, timeout: float = WAIT) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"{self.thread.name} did not finish in {timeout} s"
        if self.error is not None:
            raise self.error


def join_all(workers: list[Worker], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    for w in workers:
        w.join(max(0.0, deadline - time.monotonic()))


def wait_until(pred: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll ``pred`` (for states without an event of their own, e.g. 'blocked in aio_poll')."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting until {what}")
        tick.wait(0.0005)


def start_iothreads(platform: RealPlatform, iothreads: list[IOThread], n: int) -> list[IOThread]:
    its = []
    for i in range(n):
        it = IOThread(platform, name=f"io{i}").start()
        iothreads.append(it)
        its.append(it)
    return its


def join_iothreads(its: list[IOThread]) -> None:
    for it in its:
        it.join(WAIT)
        it.check()


# ------------------------------------------------------------------------------------------
# Cross-thread BH scheduling (/aio/multi/schedule)
# ------------------------------------------------------------------------------------------
N_IOTHREADS = 4
N_PRODUCERS = 4


def test_oneshots_from_many_producers_each_run_once_in_their_iothread(
    platform: RealPlatform, iothreads: list[IOThread]
) -> None:
    per_pair = 100
    its = start_iothreads(platform, iothreads, N_IOTHREADS)
    expected = N_PRODUCERS * N_IOTHREADS * per_pair
    ran: list[tuple[int, int, int, int]] = []  # (iothread, producer, seq, thread ident)
    guard = threading.Lock()
    all_ran = threading.Event()

    def make_cb(index: int) -> Callable[[tuple[int, int]], None]:
        def cb(item: tuple[int, int]) -> None:
            with guard:
                ran.append((index, item[0], item[1], threading.get_ident()))
                if len(ran) == expected:
                    all_ran.set()

        return cb

    cbs = [make_cb(i) for i in range(N_IOTHREADS)]
    start = threading.Barrier(N_PRODUCERS, timeout=WAIT)

    def producer(p: int) -> None:
        start.wait()
        for seq in range(per_pair):
            for i, it in enumerate(its):
                q.aio_bh_schedule_oneshot(it.ctx, cbs[i], (p, seq))

    workers = [Worker(lambda p=p: producer(p), f"producer{p}") for p in range(N_PRODUCERS)]
    join_all(workers)
    assert all_ran.wait(WAIT), f"only {len(ran)} of {expected} one-shot BHs ran"
    join_iothreads(its)
    assert len(ran) == expected
    keys = Counter((i, p, s) for i, p, s, _ in ran)
    assert len(keys) == expected and set(keys.values()) == {1}, "every one-shot ran exactly once"
    for i, _p, _s, ident in ran:
        assert ident == its[i].thread_id, "a BH ran outside its context's IOThread"


def test_persistent_bhs_coalesce_and_run_after_last_schedule(
    platform: RealPlatform, iothreads: list[IOThread]
) -> None:
    per_producer = 300
    its = start_iothreads(platform, iothreads, N_IOTHREADS)
    guard = threading.Lock()
    scheduled = [0] * N_IOTHREADS  # incremented *before* each qemu_bh_schedule
    runs = [0] * N_IOTHREADS
    wrong_thread: list[int] = []
    total = N_PRODUCERS * per_producer
    caught_up = [threading.Event() for _ in range(N_IOTHREADS)]

    def make_cb(i: int) -> Callable[[object], None]:
        def cb(_opaque: object) -> None:
            if threading.get_ident() != its[i].thread_id:
                wrong_thread.append(i)
            with guard:
                runs[i] += 1
                seen = scheduled[i]
            if seen == total:
                caught_up[i].set()

        return cb

    bhs: list[BH] = [it.ctx.bh_new(make_cb(i)) for i, it in enumerate(its)]
    start = threading.Barrier(N_PRODUCERS, timeout=WAIT)

    def producer() -> None:
        start.wait()
        for _ in range(per_producer):
            for i, bh in enumerate(bhs):
                with guard:
                    scheduled[i] += 1
                q.qemu_bh_schedule(bh)

    workers = [Worker(producer, f"producer{p}") for p in range(N_PRODUCERS)]
    join_all(workers)
    for i, ev in enumerate(caught_up):
        assert ev.wait(WAIT), f"no run of io{i}'s BH saw the last of its {total} schedules"
    join_iothreads(its)  # no run can happen any more: the counts are final
    for i in range(N_IOTHREADS):
        assert scheduled[i] == total
        assert 1 <= runs[i] <= total, f"io{i}: {runs[i]} runs for {total} schedules"
    assert wrong_thread == []


def test_bh_scheduled_from_iothread_into_another(
    platform: RealPlatform, iothreads: list[IOThread]
) -> None:
    """A ping-pong of BHs between two IOThreads: each hop runs in its target's thread."""
    a, b = start_iothreads(platform, iothreads, 2)
    hops: list[tuple[str, int]] = []
    done = threading.Event()
    bhs: dict[str, BH] = {}

    def hop(name: str) -> None:
        me = a if name == "a" else b
        hops.append((name, int(threading.get_ident() == me.thread_id)))
        if len(hops) >= 200:
            done.set()
            return
        bhs["b" if name == "a" else "a"].schedule()

    bhs["a"] = a.ctx.bh_new(hop, "a")
    bhs["b"] = b.ctx.bh_new(hop, "b")
    bhs["a"].schedule()
    assert done.wait(WAIT)
    join_iothreads([a, b])
    assert [h[0] for h in hops] == ["a", "b"] * 100
    assert all(ok for _, ok in hops)


# ------------------------------------------------------------------------------------------
# IOThread life cycle (/aio/multi/lifecycle)
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("face", ["qemu", "py"])
def test_iothread_lifecycle_sequential(platform: RealPlatform, face: str) -> None:
    for _ in range(50):
        it = q.iothread_new(platform) if face == "qemu" else IOThread(platform).start()
        try:
            ctx = q.iothread_get_aio_context(it) if face == "qemu" else it.ctx
            ran = threading.Event()
            ctx.bh_schedule_oneshot(lambda _, ran=ran: ran.set())
            assert ran.wait(WAIT)
        finally:
            if face == "qemu":
                q.iothread_join(it)
            else:
                it.join(WAIT)
        assert not it.running
        assert ctx.closed, "iothread_join drops the context's last reference"
        it.check()
    assert live_iothreads(platform) == []


def test_iothread_lifecycle_concurrent(platform: RealPlatform) -> None:
    """8 threads create, use and join IOThreads at the same time; 8 are alive together."""
    n_threads = 8
    rounds = 5
    together = threading.Barrier(n_threads, timeout=WAIT)
    alive_at_barrier: list[int] = []

    def body(k: int) -> None:
        for r in range(rounds):
            it = IOThread(platform, name=f"lc{k}.{r}").start()
            try:
                ran = threading.Event()
                it.ctx.bh_schedule_oneshot(lambda _, ran=ran: ran.set())
                assert ran.wait(WAIT)
                if r == 0:
                    # Every thread has its first IOThread running before any joins it.
                    if together.wait() == 0:
                        alive_at_barrier.append(len(live_iothreads(platform)))
                    together.wait()
            finally:
                it.join(WAIT)
            assert it.ctx.closed
            it.check()

    workers = [Worker(lambda k=k: body(k), f"lifecycle{k}") for k in range(n_threads)]
    join_all(workers, 3 * WAIT)
    assert alive_at_barrier == [n_threads]
    assert live_iothreads(platform) == []


# ------------------------------------------------------------------------------------------
# Acquiring an IOThread's context from other threads
# ------------------------------------------------------------------------------------------
class Exclusion:
    """Counts threads inside the context; must never exceed one."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self.inside = 0
        self.max_inside = 0
        self.entries = 0

    def enter(self) -> None:
        with self._guard:
            self.inside += 1
            self.entries += 1
            self.max_inside = max(self.max_inside, self.inside)

    def leave(self) -> None:
        with self._guard:
            self.inside -= 1


def test_many_threads_acquire_iothread_context(
    platform: RealPlatform, iothreads: list[IOThread]
) -> None:
    (it,) = start_iothreads(platform, iothreads, 1)
    ctx = it.ctx
    ex = Exclusion()
    stop = threading.Event()
    bh_runs = [0]
    not_held_in_bh: list[int] = []
    n_acquirers = 4
    iterations = 50

    def busy(_opaque: object) -> None:
        # Runs inside the IOThread's aio_poll, i.e. with the context held.
        if not ctx.held_by_me():
            not_held_in_bh.append(1)
        ex.enter()
        bh_runs[0] += 1
        os.sched_yield()
        ex.leave()
        if not stop.is_set():
            bh.schedule()

    bh = ctx.bh_new(busy)
    bh.schedule()

    def acquirer() -> None:
        for i in range(iterations):
            with ctx.acquired(timeout=WAIT), ctx:  # nested: depth 2
                assert ctx.statistics().lock.depth == 2
                ex.enter()
                os.sched_yield()
                ex.leave()
                bh.schedule()  # lock-free
                if i % 5 == 0:
                    # A holder may run the loop itself: the BH then runs here, still alone.
                    ctx.aio_poll(False)

    workers = [Worker(acquirer, f"acquirer{k}") for k in range(n_acquirers)]
    join_all(workers, 3 * WAIT)
    stop.set()
    join_iothreads([it])
    assert ex.max_inside == 1, "two threads were inside the context at once"
    assert not_held_in_bh == []
    assert bh_runs[0] >= 1
    assert ex.entries == bh_runs[0] + n_acquirers * iterations


def test_acquire_hands_off_from_iothread_blocked_in_poll(
    platform: RealPlatform, iothreads: list[IOThread]
) -> None:
    """The IOThread sleeps in aio_poll with the context held; acquire() still gets it."""
    (it,) = start_iothreads(platform, iothreads, 1)
    ctx = it.ctx
    me = threading.get_ident()
    for _ in range(20):
        wait_until(lambda: ctx.statistics().notify_me >= 2, "the IOThread blocks in aio_poll")
        # WAIT is a hang guard: without the kick the IOThread sleeps in aio_poll forever.
        assert ctx.acquire(WAIT), "contention did not kick the IOThread out of aio_poll"
        try:
            with ctx:
                s = ctx.statistics().lock
                assert (s.owner, s.depth) == (me, 2)
            ran = threading.Event()
            ctx.bh_schedule_oneshot(lambda _, ran=ran: ran.set())
            assert not ran.is_set(), "a BH of the context ran while another thread held it"
        finally:
            ctx.release()
        assert ran.wait(WAIT), "the IOThread did not resume after the context was released"
    join_iothreads([it])


def test_stop_the_world_pauses_every_iothread(
    platform: RealPlatform, iothreads: list[IOThread]
) -> None:
    its = start_iothreads(platform, iothreads, 4)
    paused = threading.Event()
    violations: list[str] = []
    runs = [0] * len(its)
    stop = threading.Event()
    bhs: list[BH] = []

    def make_cb(i: int) -> Callable[[object], None]:
        def cb(_opaque: object) -> None:
            if paused.is_set():
                violations.append(its[i].name)
            runs[i] += 1
            if not stop.is_set():
                bhs[i].schedule()

        return cb

    for i, it in enumerate(its):
        bhs.append(it.ctx.bh_new(make_cb(i)))
        bhs[i].schedule()
    for _ in range(5):
        with stop_the_world(its, timeout=WAIT) as held:
            assert len(held) == len(its)
            paused.set()
            assert all(c.held_by_me() for c in held)
            for _ in range(100):  # give a (wrongly) running IOThread a chance to show up
                os.sched_yield()
            paused.clear()
    stop.set()
    join_iothreads(its)
    assert violations == []
    assert all(r >= 1 for r in runs)
