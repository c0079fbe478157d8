"""The structural oracle: representation invariants of a quiescent context.

Each rule is shown to hold on a correct context after real use, and to fail when the
structure it guards is broken (directly, then by a mechanically generated mutant met by
generated programs, bounded by programs, not time).  The thread pool's rules
(:func:`pool_violations`) also run on a pool whose context was closed, and each generated
mutant of the pool's bookkeeping that used to survive breaks one of them in a direct
controlled-platform scenario.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from aioctx_verify.impl import AioContext, ClockType, RealPlatform
from aioctx_verify.impl._threadpool import ShutdownEnd
from aioctx_verify.properties import (
    POOL_RULES,
    STRUCTURE_PROPERTY,
    STRUCTURE_RULES,
    pool_violations,
    structure_violations,
)
from tests.conftest import WAIT


def _used_context() -> AioContext:
    """A context that ran BHs (one deleted), a timer, a handler and its pool."""
    ctx = AioContext(RealPlatform(), name="ctx")
    ran: list[str] = []
    keep = ctx.bh_new(lambda _: ran.append("bh"))
    gone = ctx.bh_new(lambda _: ran.append("gone"))
    keep.schedule()
    gone.schedule()
    gone.delete()
    t = ctx.timer_new(ClockType.REALTIME, 1, lambda _: ran.append("timer"), None)
    t.mod(0)
    ctx.bh_schedule_oneshot(lambda _: ran.append("oneshot"))
    for _ in range(5):
        ctx.aio_poll(False)
    assert "bh" in ran and "oneshot" in ran and "gone" not in ran
    return ctx


def test_a_used_correct_context_keeps_every_invariant() -> None:
    ctx = _used_context()
    assert structure_violations(ctx) == []
    assert set(STRUCTURE_PROPERTY) == set(STRUCTURE_RULES)


def _rules(ctx: AioContext) -> set[str]:
    return {v.split(":")[0] for v in structure_violations(ctx)}


@pytest.mark.parametrize(
    ("rule", "breaker"),
    [
        ("walks-ended", lambda c: setattr(c, "_walking_bh", 1)),
        ("walks-ended", lambda c: setattr(c, "_walking_handlers", -1)),
        ("deletions-counted", lambda c: c._bh_deleted_cell.__setattr__("value", 2)),
        ("deleted-reclaimed", lambda c: setattr(c._bhs[0], "deleted", True)),
        ("lock-free", lambda c: setattr(c._lock, "_nesting", 1)),
        ("counters-sane", lambda c: c._external_disable_cnt.__setattr__("value", -1)),
        ("timers-sorted", lambda c: c.tlg.lists[0]._active.extend(
            [c.timer_new(ClockType.REALTIME, 1, print, None)])),
    ],
)
def test_each_rule_fails_when_its_structure_is_broken(rule: str, breaker: Any) -> None:
    ctx = _used_context()
    breaker(ctx)
    assert rule in _rules(ctx), structure_violations(ctx)


def test_generated_programs_catch_a_walk_counter_off_by_one() -> None:
    from aioctx_verify.stress.explore import GenBudget, search_generated
    from aioctx_verify.stress.mutation import generate_mutants, resolve_mutant

    (g,) = [g for g in generate_mutants(["off-by-one"])
            if g.before.strip() == "self._walking_bh += 1" and g.name.endswith(":minus1")]
    m = resolve_mutant(g.name)
    with m.apply():
        r = search_generated(0, GenBudget(programs=4, schedules=1, seconds=600.0),
                             do_shrink=False)
    assert r.verdict == "fail" and r.failure is not None, r.summary()
    assert r.failure.kind == "oracle" or "walks-ended" in r.failure.message, r.summary()
    assert "walks-ended" in r.failure.message or "deleted" in r.failure.message, r.summary()


# -- the thread pool: counters against the workers, shutdown by its deadline ----------------
def _pool_rules(pool: Any) -> set[str]:
    return {v.split(":")[0] for v in pool_violations(pool)}


def _poll_until(ctx: AioContext, pred: Any) -> None:
    """Blocking polls of ``ctx`` until ``pred()``; a REALTIME timer at the deadline bounds
    each one."""
    deadline = time.monotonic_ns() + int(WAIT * 1e9)
    wd = ctx.timer_new(ClockType.REALTIME, 1, lambda _: None, None)
    try:
        while not pred():
            assert time.monotonic_ns() < deadline, "condition not reached in time"
            wd.mod(deadline)
            ctx.aio_poll(True)
    finally:
        wd.free()


def test_pool_rules_are_structure_rules() -> None:
    assert set(POOL_RULES) <= set(STRUCTURE_RULES)
    assert all(STRUCTURE_PROPERTY[r] == "LIVE" for r in POOL_RULES)


def test_a_correct_pool_keeps_its_rules_while_working_and_after_close() -> None:
    """Real threads: the pool rules hold with the mutex held at any moment (a worker busy,
    one waiting, requests queued), not only at rest, and on the closed context's pool."""
    ctx = AioContext(RealPlatform(), name="ctx")
    pool = ctx.thread_pool()
    entered, release = threading.Event(), threading.Event()
    done: list[int] = []

    def gate(_: object) -> int:
        entered.set()
        assert release.wait(WAIT), "gate never opened"
        return 0

    try:
        pool.submit(gate, None, lambda _o, r: done.append(r))
        assert entered.wait(WAIT)
        for i in range(4):
            pool.submit(lambda x: int(x), i, lambda _o, r: done.append(r))
        assert pool_violations(pool) == []
    finally:
        release.set()
    _poll_until(ctx, lambda: len(done) == 5)
    assert pool_violations(pool) == [] and structure_violations(ctx) == []
    ctx.unref()
    assert ctx.closed
    assert pool_violations(pool) == []
    end = pool.shutdown_end
    assert end is not None and not end.timed_out and end.threads == 0 and end.running == 0


def _closed_pool() -> Any:
    ctx = AioContext(RealPlatform(), name="ctx")
    pool = ctx.thread_pool()
    done: list[int] = []
    pool.submit(lambda _: 0, None, lambda _o, r: done.append(r))
    _poll_until(ctx, lambda: bool(done))
    ctx.unref()
    assert pool_violations(pool) == []
    return pool


def _ended_record(pool: Any) -> Any:
    (w,) = pool._workers
    assert w.phase == "exited"
    assert w.handle is not None
    w.handle.join(WAIT)  # the worker left its loop; its thread ends at once
    assert not w.alive()
    return w


def _counted_dead_worker(pool: Any) -> None:
    """A worker counted and in its loop by its record, whose thread has ended."""
    pool._cur_threads = 1
    _ended_record(pool).mark("run")


def _busy_worker_counted_idle(pool: Any) -> None:
    _counted_dead_worker(pool)
    pool._idle_threads = 1


@pytest.mark.parametrize(
    ("rule", "breaker"),
    [
        ("pool-workers-counted", lambda p: setattr(p, "_cur_threads", 1)),
        ("pool-workers-counted", _counted_dead_worker),
        ("pool-idle-counted", _busy_worker_counted_idle),
        ("pool-shutdown-prompt",
         lambda p: setattr(p, "shutdown_end", ShutdownEnd(10.0, True, 0, 0))),
        ("pool-shutdown-drained",
         lambda p: setattr(p, "shutdown_end", ShutdownEnd(10.0, False, 1, 0))),
        ("pool-wakeup", lambda p: setattr(p, "late_starts", 1)),
        # Its workers left without a word: a wait ran to the deadline, then none was left.
        ("pool-shutdown-prompt",
         lambda p: setattr(p, "shutdown_end", ShutdownEnd(10.0, False, 0, 0, True))),
    ],
)
def test_each_pool_rule_fails_when_its_structure_is_broken(rule: str, breaker: Any) -> None:
    pool = _closed_pool()
    breaker(pool)
    assert rule in _pool_rules(pool), pool_violations(pool)


def test_a_shutdown_that_gives_up_on_a_running_function_is_not_flagged() -> None:
    pool = _closed_pool()
    pool.shutdown_end = ShutdownEnd(10.0, True, 1, 1)  # a func still held its worker
    assert pool_violations(pool) == []
    pool.shutdown_end = ShutdownEnd(0.0, True, 1, 0)  # shutdown(timeout=0): do not wait
    assert pool_violations(pool) == []


# The generated mutants of the pool's bookkeeping that no oracle used to notice, by what
# they change (stable across edits of impl/_threadpool.py, unlike their names).
_POOL_MUTANTS = {
    "cur-plus1": ("off-by-one", "ThreadPool.submit", "self._cur_threads += 1",
                  "self._cur_threads += 2"),
    "shutdown-boundary": ("off-by-one", "ThreadPool.shutdown", "while self._cur_threads > 0:",
                          "while self._cur_threads >= 0:"),
    "wait-before-idle": ("swap-adjacent", "ThreadPool._worker",
                         "self._idle_threads += 1; woke = self._cond.wait(self.idle_timeout)",
                         "woke = self._cond.wait(self.idle_timeout); self._idle_threads += 1"),
    "exit-unannounced": ("notify-drop", "ThreadPool._worker", "self._cond.notify_all()",
                         "pass"),
    "submit-unannounced": ("notify-drop", "ThreadPool.submit", "self._cond.notify()", "pass"),
}


def _pool_mutant(which: str) -> Any:
    from aioctx_verify.stress.mutation import generate_mutants

    op, fn, before, after = _POOL_MUTANTS[which]
    (m,) = [m for m in generate_mutants([op]) if m.file.endswith("_threadpool.py")
            and m.function == fn and m.before == before and m.after == after]
    return m


def _pool_program(p: Any, seen: list[str], ends: list[Any]) -> None:
    """Submit, complete, submit again, complete, close the context: the pool rules are
    checked after each completion and on the closed context's pool."""
    ctx = AioContext(p, name="ctx")
    pool = ctx.thread_pool()
    done: list[int] = []
    for n in (1, 2):
        pool.submit(lambda x: int(x), n, lambda _o, r: done.append(r))
        while len(done) < n:
            ctx.aio_poll(True)
        seen += pool_violations(pool)
    ctx.unref()
    seen += pool_violations(pool)
    ends.append(pool.shutdown_end)


def _run_pool_program(seed: int) -> tuple[set[str], list[Any]]:
    from aioctx_verify.stress.controlled import ControlledPlatform, RandomStrategy

    seen: list[str] = []
    ends: list[Any] = []
    out = ControlledPlatform(RandomStrategy(seed)).run(lambda p: _pool_program(p, seen, ends))
    assert out.verdict == "pass", out.message
    return {v.split(":")[0] for v in seen}, ends


@pytest.mark.parametrize("seed", [0, 1])
def test_the_pool_program_keeps_every_pool_rule_on_the_correct_impl(seed: int) -> None:
    rules, ends = _run_pool_program(seed)
    assert rules == set()
    (end,) = ends
    assert end is not None and not end.timed_out and end.threads == 0


def _busy_pool_program(p: Any, seen: list[str]) -> None:
    """Five submits (a completion awaited after every second), workers that idle out at
    once, and a checker thread applying the pool rules between any two steps meanwhile:
    workers starting, running, waiting, exiting."""
    ctx = AioContext(p, name="ctx")
    pool = ctx.thread_pool()
    pool.idle_timeout = 0.001
    done: list[int] = []
    stop: list[bool] = []

    def checker() -> None:
        for _ in range(60):
            seen.extend(pool_violations(pool))
            if stop:
                return
            p.yield_now()

    h = p.start_thread(checker, "checker")
    for n in range(1, 6):
        pool.submit(lambda x: int(x), n, lambda _o, r: done.append(r))
        while n % 2 == 0 and len(done) < n:
            ctx.aio_poll(True)
    while len(done) < 5:
        ctx.aio_poll(True)
    ctx.unref()
    stop.append(True)
    h.join(WAIT)
    seen.extend(pool_violations(pool))


@pytest.mark.parametrize("seed", range(6))
def test_the_pool_rules_hold_at_every_moment_of_a_busy_correct_pool(seed: int) -> None:
    from aioctx_verify.stress.controlled import ControlledPlatform, PCTStrategy, RandomStrategy

    seen: list[str] = []
    strategy = RandomStrategy(seed) if seed % 2 else PCTStrategy(seed, 3)
    out = ControlledPlatform(strategy).run(lambda p: _busy_pool_program(p, seen))
    assert out.verdict == "pass", out.message
    assert seen == []


@pytest.mark.parametrize(
    ("which", "rule"),
    [
        ("cur-plus1", "pool-workers-counted"),  # 2 counted for 1 worker
        ("cur-plus1", "pool-shutdown-prompt"),  # the count never reaches 0
        ("shutdown-boundary", "pool-shutdown-prompt"),  # the loop ends only at its deadline
        ("wait-before-idle", "pool-idle-counted"),  # a waiting worker is not counted idle
        # The shutdown sleeps to its deadline though its worker is gone (count 0 by then).
        ("exit-unannounced", "pool-shutdown-prompt"),
        # The second request waits for the idle worker's 10 s wait to run out.
        ("submit-unannounced", "pool-wakeup"),
    ],
)
def test_each_pool_bookkeeping_mutant_breaks_its_rule(which: str, rule: str) -> None:
    m = _pool_mutant(which)
    with m.apply():
        rules, _ends = _run_pool_program(0)
    assert rule in rules, (m.name, rules)


def test_a_shutdown_that_waits_out_a_blocked_function_is_not_flagged() -> None:
    """Controlled platform: a function blocked until after the shutdown's deadline keeps
    its worker; the shutdown gives up at its deadline and the rules accept it."""
    from aioctx_verify.stress.controlled import ControlledPlatform, RandomStrategy

    seen: list[str] = []
    ends: list[Any] = []

    def program(p: Any) -> None:
        ctx = AioContext(p, name="ctx")
        pool = ctx.thread_pool()
        m = p.mutex("gate")
        c = p.condition(m)
        state = {"entered": False, "open": False}

        def blocked(_: object) -> int:
            with m:
                state["entered"] = True
                c.notify_all()
                while not state["open"]:
                    c.wait()
            return 0

        pool.submit(blocked)
        with m:
            while not state["entered"]:
                c.wait()
        ctx.unref()  # shutdown waits out its 10 s deadline (virtual time jumps)
        ends.append(pool.shutdown_end)
        seen.extend(pool_violations(pool))
        with m:
            state["open"] = True
            c.notify_all()
        seen.extend(pool_violations(pool))

    out = ControlledPlatform(RandomStrategy(0)).run(program)
    assert out.verdict == "pass", out.message
    (end,) = ends
    assert end is not None and end.timed_out and end.running == 1, end
    assert seen == []


@pytest.mark.parametrize("which", ["cur-plus1", "wait-before-idle"])
def test_generated_programs_catch_pool_counter_mutants(which: str) -> None:
    """Through the structural check the generated programs already make on their live
    contexts (the main context's pool)."""
    from aioctx_verify.stress.explore import GenBudget, search_generated

    m = _pool_mutant(which)
    with m.apply():
        r = search_generated(0, GenBudget(programs=24, schedules=1, seconds=600.0),
                             strategies=("random",), memories=("sc",), do_shrink=False)
    assert r.verdict == "fail" and r.failure is not None, r.summary()
    assert "pool-" in r.failure.message, r.summary()
