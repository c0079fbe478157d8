"""Runtime monitors: every rule fires on a trace that breaks it, and never on impl."""

from __future__ import annotations

import threading

import pytest

from aioctx_verify.impl import IOThread, RealPlatform, ThreadId, TraceEvent, stop_the_world
from aioctx_verify.impl import qemu as q
from aioctx_verify.properties import MonitorSet, PropertyViolation, monitoring
from tests.conftest import WAIT


def ev(kind: str, thread: int, ctx: int = 1, obj: int = 0, detail: str = "") -> TraceEvent:
    return TraceEvent(kind, ThreadId(thread), ctx, obj, detail)


def rules(events: list[TraceEvent], *, finish: bool = True) -> list[tuple[str, str]]:
    ms = MonitorSet().feed_all(events)
    if finish:
        ms.finish()
    return sorted({(v.prop, v.rule) for v in ms.violations})


# -- P1 ------------------------------------------------------------------------------------
def test_p1_clean_nested_trace() -> None:
    trace = [
        ev("acquire", 1, obj=1),
        ev("acquire", 1, obj=2),
        ev("release", 1, obj=1),
        ev("release", 1, obj=0),
        ev("acquire", 2, obj=1),
        ev("release", 2, obj=0),
    ]
    assert rules(trace) == []


def test_p1_two_owners() -> None:
    assert ("P1", "owner-unique") in rules([ev("acquire", 1, obj=1), ev("acquire", 2, obj=1)])


def test_p1_release_by_non_owner() -> None:
    got = rules([ev("acquire", 1, obj=1), ev("release", 2, obj=0)])
    assert ("P1", "release-by-owner") in got


def test_p1_release_when_free_and_bad_depth() -> None:
    assert ("P1", "depth-balance") in rules([ev("release", 1, obj=0)])
    assert ("P1", "depth-balance") in rules([ev("acquire", 1, obj=1), ev("acquire", 1, obj=3)])


def test_p1_fifo_barging() -> None:
    trace = [
        ev("acquire", 1, obj=1),
        ev("lock_wait", 2, obj=1),
        ev("lock_wait", 3, obj=2),
        ev("release", 1, obj=0),
        ev("acquire", 3, obj=1),
    ]
    assert ("P1", "fifo") in rules(trace, finish=False)
    # an abandoned ticket does not count
    trace[1:2] = [ev("lock_wait", 2, obj=1), ev("lock_abandon", 2, obj=1)]
    assert rules(trace) == []


# -- P2 ------------------------------------------------------------------------------------
def _poll(t: int, *body: TraceEvent) -> list[TraceEvent]:
    return [
        ev("acquire", t, obj=1),
        ev("poll_begin", t),
        *body,
        ev("poll_end", t),
        ev("release", t, obj=0),
    ]


def test_p2_clean() -> None:
    trace = [
        ev("bh_schedule_begin", 2, obj=7),
        ev("bh_schedule_end", 2, obj=7, detail="new"),
        *_poll(1, ev("bh_run_begin", 1, obj=7), ev("bh_run_end", 1, obj=7)),
    ]
    assert rules(trace) == []


def test_p2_schedule_takes_lock() -> None:
    trace = [
        ev("bh_schedule_begin", 2, obj=7),
        ev("acquire", 2, obj=1),
        ev("release", 2, obj=0),
        ev("bh_schedule_end", 2, obj=7, detail="new"),
    ]
    assert ("P2", "lock-free") in rules(trace)


def test_p2_spurious_run_and_rerun_in_iteration_and_deleted() -> None:
    assert ("P2", "no-spurious-run") in rules(_poll(1, ev("bh_run_begin", 1, obj=7)))
    twice = [
        ev("bh_schedule_begin", 1, obj=7),
        ev("bh_schedule_end", 1, obj=7),
        *_poll(
            1,
            ev("bh_run_begin", 1, obj=7),
            ev("bh_schedule_begin", 1, obj=7),
            ev("bh_schedule_end", 1, obj=7),
            ev("bh_run_begin", 1, obj=7),
        ),
    ]
    assert ("P2", "once-per-iteration") in rules(twice)
    deleted = [
        ev("bh_schedule_begin", 2, obj=7),
        ev("bh_schedule_end", 2, obj=7),
        ev("bh_delete", 2, obj=7),
        *_poll(1, ev("bh_run_begin", 1, obj=7)),
    ]
    assert ("P2", "deleted-never-runs") in rules(deleted)


def test_p2_lost_schedule_before_stop() -> None:
    trace = [
        ev("bh_schedule_begin", 2, obj=7),
        ev("bh_schedule_end", 2, obj=7),
        ev("bh_new", 3, obj=9, detail="oneshot"),
        ev("bh_schedule_begin", 3, obj=9),
        ev("bh_schedule_end", 3, obj=9),
        *_poll(1, ev("bh_run_begin", 1, obj=9), ev("bh_run_end", 1, obj=9)),
        ev("iothread_stop", 1),
    ]
    assert ("P2", "not-lost") in rules(trace)


def _cancel_then_schedule(*, cancel_closed_first: bool) -> list[TraceEvent]:
    """Thread 4 cancels BH 7; thread 2 schedules it; the stop one-shot 9 then runs alone.
    The cancelling thread's next traced event (which closes the cancel) comes before or
    after the schedule's begin."""
    closer = [ev("acquire", 4, obj=1), ev("release", 4, obj=0)]
    schedule = [ev("bh_schedule_begin", 2, obj=7), ev("bh_schedule_end", 2, obj=7)]
    return [
        ev("bh_cancel", 4, obj=7),
        *(closer + schedule if cancel_closed_first else schedule + closer),
        ev("bh_new", 3, obj=9, detail="oneshot"),
        ev("bh_schedule_begin", 3, obj=9),
        ev("bh_schedule_end", 3, obj=9),
        *_poll(1, ev("bh_run_begin", 1, obj=9), ev("bh_run_end", 1, obj=9)),
        ev("iothread_stop", 1),
    ]


def test_p2_an_open_cancel_may_withdraw_a_later_schedule() -> None:
    # The cancel's relaxed store may land after a schedule that began while it was open
    # (before the cancelling thread's next traced event): that BH need not run.
    assert rules(_cancel_then_schedule(cancel_closed_first=False)) == []
    # Once the cancelling thread has moved on, a new schedule must run before the stop.
    assert ("P2", "not-lost") in rules(_cancel_then_schedule(cancel_closed_first=True))


# -- P3 ------------------------------------------------------------------------------------
def test_p3_poll_without_lock_and_second_poller() -> None:
    assert ("P3", "poller-holds-context") in rules([ev("poll_begin", 1), ev("poll_end", 1)])
    trace = [ev("acquire", 1, obj=1), ev("poll_begin", 1), ev("poll_begin", 2), ev("poll_end", 2)]
    assert ("P3", "single-poller") in rules(trace, finish=False)


def test_p3_callback_outside_iteration_and_acquire_during_iteration() -> None:
    assert ("P3", "callback-in-iteration") in rules([ev("timer_run_begin", 2)])
    trace = [ev("acquire", 1, obj=1), ev("poll_begin", 1), ev("acquire", 2, obj=1)]
    got = rules(trace, finish=False)
    assert ("P3", "no-acquire-during-iteration") in got and ("P1", "owner-unique") in got


# -- liveness ------------------------------------------------------------------------------
def test_liveness_unanswered_wait() -> None:
    trace = [ev("acquire", 1, obj=1), ev("lock_wait", 2, obj=1)]
    assert rules(trace) == [("LIVE", "no-starvation")]


def test_check_raises_property_violation() -> None:
    ms = MonitorSet().feed_all([ev("release", 1, obj=0)])
    with pytest.raises(PropertyViolation, match="P1 depth-balance"):
        ms.check()


# -- the real impl raises no false alarm ---------------------------------------------------
def test_no_false_alarm_on_a_busy_real_run() -> None:
    p = RealPlatform()
    with monitoring(p, MonitorSet(keep_events=True)) as m:
        its = [IOThread(p).start() for _ in range(3)]
        done = threading.Event()
        count = [0]
        lock = threading.Lock()

        def cb(_: object) -> None:
            with lock:
                count[0] += 1
                if count[0] == 300:
                    done.set()

        def producer(it: IOThread) -> None:
            for _ in range(100):
                it.ctx.bh_schedule_oneshot(cb)

        ts = [threading.Thread(target=producer, args=(it,)) for it in its]
        for t in ts:
            t.start()
        for i in range(30):
            with its[i % 3].ctx, its[i % 3].ctx:
                pass
            with stop_the_world(its):
                pass
        for t in ts:
            t.join(WAIT)
        assert done.wait(WAIT)
        for it in its:
            it.join()
    assert m.events_seen > 1000
    assert m.violations == []
    kinds = {e.kind for e in m.events or []}
    assert {
        "acquire",
        "release",
        "poll_begin",
        "bh_run_begin",
        "bh_schedule_end",
        "lock_wait",
        "iothread_stop",
    } <= kinds


def test_monitoring_a_main_context_single_thread() -> None:
    p = RealPlatform()
    with monitoring(p) as m:
        ctx = q.aio_context_new(p)
        ran: list[int] = []
        bh = q.aio_bh_new(ctx, lambda _: ran.append(1), None)
        q.qemu_bh_schedule(bh)
        q.qemu_bh_schedule(bh)
        assert q.aio_poll(ctx, False)
        q.qemu_bh_delete(bh)
        assert not q.aio_poll(ctx, False)
    assert ran == [1]
    assert m.violations == []
