"""The state oracle while a controlled run goes on
(:class:`aioctx_verify.properties.StateMonitor`): each lock's invariants at each of its
releases, the quiescent rules (and a dataplane ring's kick) whenever every thread is
blocked.

* Each rule can fail: a write moved out of the BH-list lock's critical section, a pool
  count updated after its mutex is let go, a timer list left unsorted, a BH walk that
  never reclaims (seen when an iteration ends), and a dataplane handler that claims more
  than it took (the trace-based kick oracle believes the claim; the ring does not).
* None fires on the correct impl: the same programs under random, PCT and DFS.

Every bound is work (schedules); nothing reads the wall clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any
from unittest import mock

import pytest

from aioctx_verify.impl import (
    BH,
    SCALE_MS,
    AioContext,
    ClockType,
    DataplaneDevice,
    EventNotifier,
    IOThread,
    ThreadPool,
    TraceEvent,
)
from aioctx_verify.impl._platform import Platform
from aioctx_verify.impl._timers import TimerList
from aioctx_verify.properties import (
    LOCK_RULES,
    QUIESCENT_RULES,
    STRUCTURE_RULES,
    StateMonitor,
    default_monitors,
    quiescent_violations,
)
from aioctx_verify.stress.explore import Budget, Program, explore, replay
from tests.test_oracles import dataplane_program

NO_TIME_LIMIT = 3600.0
SCHEDULES = 120


def _watch(p: Platform, *objs: object) -> None:
    """Register ``objs`` with the state oracle (a controlled platform has ``watch_state``)."""
    watch = getattr(p, "watch_state", None)
    assert watch is not None, "these programs run on the controlled platform"
    for obj in objs:
        watch(obj)


def _noop(_: object) -> None:
    return None


def _times_ten(x: int) -> int:
    return x * 10


def bh_program(p: Platform) -> None:
    """Another thread schedules one-shot BHs of an IOThread's context and deletes a BH
    (holding the context), while the IOThread runs and reclaims them."""
    it = IOThread(p, name="io").start()
    _watch(p, it.ctx)
    bh = it.ctx.bh_new(_noop)

    def other() -> None:
        it.ctx.bh_schedule_oneshot(_noop)
        bh.schedule()
        with it.ctx:  # a BH is deleted in its context (holding it, from another thread)
            bh.delete()
        it.ctx.bh_schedule_oneshot(_noop)

    t = p.start_thread(other, "other")
    t.join()
    it.join()


def pool_program(p: Platform) -> None:
    """Two requests on an IOThread's pool; the program waits (bounded) for both."""
    it = IOThread(p, name="io").start()
    _watch(p, it.ctx)
    pool = it.ctx.thread_pool()
    m = p.mutex("completed")
    c = p.condition(m)
    results: list[int] = []

    def done(_opaque: object, ret: int) -> None:
        with m:
            results.append(ret)
            c.notify_all()

    pool.submit(_times_ten, 1, done)
    pool.submit(_times_ten, 2, done)
    with m:
        for _ in range(3):
            if len(results) == 2:
                break
            c.wait(1.0)
    it.join()


def timer_program(p: Platform) -> None:
    """Two threads arm and delete timers of an IOThread's context."""
    it = IOThread(p, name="io").start()
    _watch(p, it.ctx)
    clocks = it.ctx.tlg.clocks
    a = it.ctx.timer_new(ClockType.REALTIME, SCALE_MS, _noop, None)
    b = it.ctx.timer_new(ClockType.REALTIME, SCALE_MS, _noop, None)

    def other() -> None:
        b.mod(clocks.get_ns(ClockType.REALTIME) // SCALE_MS + 2)
        a.delete()

    t = p.start_thread(other, "other")
    a.mod(clocks.get_ns(ClockType.REALTIME) // SCALE_MS + 1)
    t.join()
    a.delete()
    b.delete()
    it.join()


def _program(name: str, fn: Callable[[Platform], None]) -> Program:
    return Program(f"state_{name}", fn, "safe", "sc", fn.__doc__ or name, max_steps=8000)


PROGRAMS: dict[str, Program] = {
    p.name: p
    for p in (
        _program("bh", bh_program),
        _program("pool", pool_program),
        _program("timers", timer_program),
        _program("dataplane", dataplane_program(DataplaneDevice, watch=True)),
    )
}


# ---------------------------------------------------------------------------------------
# Broken variants
# ---------------------------------------------------------------------------------------
@contextmanager
def _patched(owner: object, name: str, value: object) -> Iterator[None]:
    with mock.patch.object(owner, name, value):
        yield


def oneshot_count_outside_lock() -> AbstractContextManager[None]:
    """``bh_schedule_oneshot`` counts the new (deleted) BH after letting the list lock go."""

    def oneshot(self: AioContext, cb: Callable[[Any], None], opaque: Any = None) -> None:
        bh = BH(self, cb, opaque, oneshot=True)
        with self._bh_lock:
            self._bhs.append(bh)
        self._bh_deleted += 1
        self.aio_notify()

    return _patched(AioContext, "bh_schedule_oneshot", oneshot)


def pool_idle_count_outside_lock() -> AbstractContextManager[None]:
    """A submit that spawns a worker counts the thread only after releasing the pool mutex
    (a critical section split in two)."""
    spawn = ThreadPool._spawn

    def late(self: ThreadPool) -> None:
        self._cur_threads -= 1
        spawn(self)
        self._mutex.release()
        self._cur_threads += 1
        self._mutex.acquire()

    return _patched(ThreadPool, "_spawn", late)


def timer_insert_unsorted() -> AbstractContextManager[None]:
    """``timer_mod`` appends instead of inserting in deadline order."""

    def mod(self: TimerList, t: Any, expire_ns: int) -> None:
        with self._mutex:
            if t.expire_time >= 0:
                self._active.remove(t)
            self._seq += 1
            t._seq = self._seq
            t.expire_time = expire_ns
            self._active.append(t)
        self._notify_cb()

    return _patched(TimerList, "mod", mod)


def walk_never_reclaims() -> AbstractContextManager[None]:
    """The end of a top-level BH walk never reclaims deleted BHs (a leak: the pending
    count stays right, so only the exact rule at an iteration's end sees it)."""

    def keep(self: AioContext) -> None:
        return None

    return _patched(AioContext, "_reclaim_bhs", keep)


class OnePerKickDevice(DataplaneDevice):
    """A handler that takes one request per notification, yet traces (claims) that it
    took every request submitted so far: two kicks that coalesce into one notification
    strand the second request, and the trace-based kick oracle believes the claim."""

    def _handle_notify(self, n: EventNotifier) -> None:
        n.test_and_clear()
        with self._vq:
            batch = [self._avail.popleft()] if self._avail else []
            tr = self._p.tracer
            if tr is not None:
                me = self._p.current_thread()
                tr(TraceEvent("dp_process", me, self.ctx.id, self.host_notifier.id,
                              str(self._submitted)))
        pool = self.ctx.thread_pool()
        for req in batch:
            self.inflight += 1
            pool.submit(self.backend, req, self._complete, req)


def _nothing() -> AbstractContextManager[None]:
    return nullcontext()


#: name -> (program, broken variant, strategy, the rule it must break, the words of the
#: message that say when it was seen).
BROKEN: dict[str, tuple[Program, Callable[[], AbstractContextManager[None]], str, str, str]] = {
    "oneshot count outside the lock": (
        PROGRAMS["state_bh"], oneshot_count_outside_lock, "random", "deletions-counted",
        "when a thread released the lock",
    ),
    "pool count after the unlock": (
        PROGRAMS["state_pool"], pool_idle_count_outside_lock, "random", "pool-workers-counted",
        "when a thread released the lock",
    ),
    "timer list unsorted": (
        PROGRAMS["state_timers"], timer_insert_unsorted, "pct", "timers-sorted",
        "when a thread released the lock",
    ),
    "walk never reclaims": (
        PROGRAMS["state_bh"], walk_never_reclaims, "random", "deleted-reclaimed",
        "when an iteration ended",
    ),
    "handler takes one request per kick": (
        _program("dataplane_one_per_kick", dataplane_program(OnePerKickDevice, watch=True)),
        _nothing, "random", "ring-kicked", "while every thread is blocked",
    ),
}


@pytest.mark.parametrize("variant", sorted(BROKEN))
def test_broken_variant_is_caught_with_a_replayable_schedule(variant: str) -> None:
    program, broken, strategy, rule, when = BROKEN[variant]
    with broken():
        r = explore(program, strategy=strategy, budget=Budget(SCHEDULES, NO_TIME_LIMIT),
                    seed=0, do_shrink=False)
        assert r.verdict == "fail" and r.failure is not None, r.summary()
        f = r.failure
        assert f.kind == "property", f.report()
        assert f" {rule}: {when}" in f.message, f.message
        again = replay(f.schedule, {program.name: program})
    assert (again.verdict, again.kind, again.message) == ("fail", "property", f.message)


def test_the_ring_sees_what_the_trace_based_kick_oracle_believes() -> None:
    """Without the device registered, the one-request-per-kick handler passes every
    schedule that the registered run fails: its trace claims every kick processed."""
    program, _broken, strategy, _rule, _when = BROKEN["handler takes one request per kick"]
    blind = Program("state_dataplane_unwatched", dataplane_program(OnePerKickDevice), "safe",
                    "sc", "unwatched", max_steps=program.max_steps)
    r = explore(blind, strategy=strategy, budget=Budget(SCHEDULES, NO_TIME_LIMIT), seed=0,
                do_shrink=False)
    assert r.verdict == "pass", r.summary()


@pytest.mark.parametrize("strategy", ["random", "pct", "dfs", "conflict"])
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_correct_impl_passes(name: str, strategy: str) -> None:
    r = explore(PROGRAMS[name], strategy=strategy, budget=Budget(SCHEDULES, NO_TIME_LIMIT),
                seed=5)
    assert r.verdict == "pass", r.summary()


def test_the_rules_are_structure_rules() -> None:
    assert set(LOCK_RULES) <= set(QUIESCENT_RULES) <= set(STRUCTURE_RULES)


def test_default_monitors_add_the_state_oracle_only_with_a_watch_list() -> None:
    assert not any(isinstance(m, StateMonitor) for m in default_monitors())
    assert any(isinstance(m, StateMonitor) for m in default_monitors(None, []))


def test_a_closed_context_is_left_to_the_end_checks() -> None:
    class Closed:
        _closed = True

    assert quiescent_violations(Closed()) == []
