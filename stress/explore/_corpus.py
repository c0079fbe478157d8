"""The built-in corpus: small buggy and safe programs every strategy is measured on.

Buggy programs must be found (a miss is a weakness of the explorer); safe programs must never
fail (a failure is a false alarm).  Programs over ``impl`` run the real AioContext /
IOThread code on the controlled platform; the others are litmus tests of the memory model.
"""

from __future__ import annotations

from ..controlled import ControlledPlatform
from ._explore import Program

__all__ = ["CORPUS", "corpus_by_name"]


def _lost_update(p: ControlledPlatform) -> None:
    x = p.atomic(0, "x")

    def inc() -> None:
        v = x.load()
        x.store(v + 1)

    ts = [p.start_thread(inc, f"inc{i}") for i in range(2)]
    for t in ts:
        t.join()
    assert x.load() == 2, f"lost update: x == {x.load()} after two increments"


def _atomic_increment(p: ControlledPlatform) -> None:
    x = p.atomic(0, "x")
    ts = [p.start_thread(lambda: x.fetch_add(1), f"inc{i}") for i in range(2)]
    for t in ts:
        t.join()
    assert x.load() == 2


def _notify_protocol(fenced: bool):  # type: ignore[no-untyped-def]
    """The aio_notify handshake reduced to Dekker's store-buffer test: the sleeper publishes
    ``notify_me`` then checks for work; the waker publishes work then checks ``notify_me``.
    Without the full fences both can read the old value: work pending, nobody woken."""
    from aioctx_verify.impl import Fence, Ordering

    def program(p: ControlledPlatform) -> None:
        notify_me = p.atomic(0, "notify_me")
        work = p.atomic(0, "work")
        seen: dict[str, int] = {}

        def sleeper() -> None:
            notify_me.store(1, Ordering.RELAXED)
            if fenced:
                p.fence(Fence.MB)
            seen["work"] = work.load(Ordering.RELAXED)

        def waker() -> None:
            work.store(1, Ordering.RELAXED)
            if fenced:
                p.fence(Fence.MB)
            seen["notify_me"] = notify_me.load(Ordering.RELAXED)

        a = p.start_thread(sleeper, "sleeper")
        b = p.start_thread(waker, "waker")
        a.join()
        b.join()
        assert seen["work"] == 1 or seen["notify_me"] == 1, (
            "lost wake-up: the sleeper saw no work and the waker saw nobody to wake"
        )

    return program


def _message_passing(barrier: bool):  # type: ignore[no-untyped-def]
    """Writer: data, then flag; reader: flag, then data.  Needs a write barrier under pso."""
    from aioctx_verify.impl import Fence, Ordering

    def program(p: ControlledPlatform) -> None:
        data = p.atomic(0, "data")
        flag = p.atomic(0, "flag")
        got: list[int] = []

        def writer() -> None:
            data.store(42, Ordering.RELAXED)
            if barrier:
                p.fence(Fence.WMB)
            flag.store(1, Ordering.RELAXED)

        def reader() -> None:
            if flag.load(Ordering.RELAXED):
                p.fence(Fence.RMB)
                got.append(data.load(Ordering.RELAXED))

        a = p.start_thread(writer, "writer")
        b = p.start_thread(reader, "reader")
        a.join()
        b.join()
        assert got in ([], [42]), f"reader saw flag set but data == {got[0]}"

    return program


def _abba(p: ControlledPlatform) -> None:
    a = p.mutex("A")
    b = p.mutex("B")

    def one() -> None:
        with a, b:
            pass

    def two() -> None:
        with b, a:
            pass

    t1 = p.start_thread(one, "ab")
    t2 = p.start_thread(two, "ba")
    t1.join()
    t2.join()


def _iothread_acquire(kick: bool):  # type: ignore[no-untyped-def]
    """An IOThread blocked in aio_poll and a thread acquiring its context."""

    def program(p: ControlledPlatform) -> None:
        from aioctx_verify.impl import IOThread

        it = IOThread(p, name="io")
        if not kick:
            it.ctx._lock._cb = None  # the contention callback removed
        it.start()
        with it.ctx:
            pass
        it.join()
        assert not it.errors, it.errors

    return program


def _bh_cross_thread(p: ControlledPlatform) -> None:
    """A producer schedules a BH into an IOThread and waits (condition) until it ran."""
    from aioctx_verify.impl import IOThread

    it = IOThread(p, name="io").start()
    m = p.mutex("done")
    c = p.condition(m)
    ran: list[int] = []

    def cb(_: object) -> None:
        with m:
            ran.append(p.current_thread())
            c.notify_all()

    bh = it.ctx.bh_new(cb)

    def producer() -> None:
        bh.schedule()
        with m:
            while not ran:
                c.wait()

    t = p.start_thread(producer, "producer")
    t.join()
    it.join()
    assert ran and ran[0] == it.thread_id, f"BH ran in {ran}, not in the IOThread"


def _stop_world(p: ControlledPlatform) -> None:
    from aioctx_verify.impl import IOThread, stop_the_world

    its = [IOThread(p, name=f"io{i}").start() for i in range(2)]
    inside = p.atomic(0, "inside")
    hits: list[int] = []

    def cb(_: object) -> None:
        hits.append(inside.load())

    for it in its:
        it.ctx.bh_schedule_oneshot(cb)
    with stop_the_world(its):
        inside.store(1)
        for it in its:
            it.ctx.bh_schedule_oneshot(cb)
        inside.store(0)
    for it in its:
        it.join()
    assert hits.count(1) == 0, "a BH ran while the world was stopped"
    assert len(hits) == 4, f"{4 - len(hits)} BH(s) lost"


def _timer_virtual_time(p: ControlledPlatform) -> None:
    """A 50 ms REALTIME timer in an IOThread: virtual time jumps, nothing really sleeps."""
    from aioctx_verify.impl import SCALE_MS, ClockType, IOThread

    it = IOThread(p, name="io").start()
    m = p.mutex("fired")
    c = p.condition(m)
    fired: list[int] = []

    def cb(_: object) -> None:
        with m:
            fired.append(p.monotonic_ns())
            c.notify_all()

    t = it.ctx.timer_new(ClockType.REALTIME, SCALE_MS, cb)
    start = p.monotonic_ns()
    t.mod(start // SCALE_MS + 50)
    with m:
        while not fired:
            c.wait(1.0)
    it.join()
    assert fired and fired[0] - start >= 50 * SCALE_MS


CORPUS: tuple[Program, ...] = (
    Program("lost_update", _lost_update, "bug", "sc", "two threads increment with load+store"),
    Program("atomic_increment", _atomic_increment, "safe", "sc", "two threads fetch_add"),
    Program(
        "notify_no_fence_tso",
        _notify_protocol(False),
        "bug",
        "tso",
        "aio_notify handshake without its full fences, under TSO",
    ),
    Program(
        "notify_no_fence_pso",
        _notify_protocol(False),
        "bug",
        "pso",
        "aio_notify handshake without its full fences, under PSO",
    ),
    Program(
        "notify_no_fence_sc",
        _notify_protocol(False),
        "safe",
        "sc",
        "the same handshake without fences is correct under SC",
    ),
    Program(
        "notify_fenced_tso",
        _notify_protocol(True),
        "safe",
        "tso",
        "aio_notify handshake with its fences, under TSO",
    ),
    Program(
        "notify_fenced_pso",
        _notify_protocol(True),
        "safe",
        "pso",
        "aio_notify handshake with its fences, under PSO",
    ),
    Program(
        "mp_no_wmb_pso",
        _message_passing(False),
        "bug",
        "pso",
        "message passing without a write barrier, under PSO",
    ),
    Program(
        "mp_no_wmb_tso",
        _message_passing(False),
        "safe",
        "tso",
        "message passing needs no write barrier under TSO",
    ),
    Program(
        "mp_wmb_pso",
        _message_passing(True),
        "safe",
        "pso",
        "message passing with smp_wmb/smp_rmb, under PSO",
    ),
    Program("abba_deadlock", _abba, "bug", "sc", "two locks taken in opposite orders"),
    Program(
        "iothread_acquire",
        _iothread_acquire(True),
        "safe",
        "sc",
        "impl: acquire an IOThread's context while it is blocked in aio_poll",
    ),
    Program(
        "iothread_acquire_no_kick",
        _iothread_acquire(False),
        "bug",
        "sc",
        "impl: the same with the lock's contention callback removed",
    ),
    Program(
        "bh_cross_thread",
        _bh_cross_thread,
        "safe",
        "sc",
        "impl: a BH scheduled from another thread runs in the IOThread",
    ),
    Program("bh_cross_thread_tso", _bh_cross_thread, "safe", "tso", "impl: the same under TSO"),
    Program(
        "stop_the_world",
        _stop_world,
        "safe",
        "sc",
        "impl: no BH runs while every IOThread's context is held",
    ),
    Program(
        "timer_virtual_time",
        _timer_virtual_time,
        "safe",
        "sc",
        "impl: a REALTIME timer fires after virtual time jumps",
    ),
)


def corpus_by_name() -> dict[str, Program]:
    return {p.name: p for p in CORPUS}
