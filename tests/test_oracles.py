"""The loop oracles (LIVE, :mod:`aioctx_verify.properties._progress`): each can fail, none
fires on the correct impl.

* Each oracle catches a small, deliberately broken variant of impl (patched for the test)
  under the controlled scheduler, through the explorers' default monitors, and the failing
  schedule replays to the same failure.  The programs never notice the fault themselves:
  they wait with bounded, timed waits and then go on, as a caller that tolerates a late
  answer would, so a lost wake-up would otherwise be a quiet delay.
* The correct impl reports nothing: the same programs and the explore corpus under random,
  PCT and DFS; the programs on real threads; and the existing real-thread tests of the
  thread pool, the dataplane and stop-the-world, rerun here with every monitor attached to
  their platform.
* The rules on hand-made traces (real-thread mode, no platform view).

Every bound is work (schedules, steps, rounds); nothing reads the wall clock.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any
from unittest import mock

import pytest

import tests.test_dataplane as _dp_tests
import tests.test_iothread as _it_tests
import tests.test_threadpool as _tp_tests
from aioctx_verify.impl import (
    BH,
    SCALE_MS,
    AioContext,
    BlockRequest,
    ClockType,
    DataplaneDevice,
    EventNotifier,
    IOThread,
    RealPlatform,
    ThreadId,
    ThreadPool,
    TraceEvent,
    stop_the_world,
)
from aioctx_verify.impl import _iothread as iothread_module
from aioctx_verify.impl._platform import POLLIN, Platform
from aioctx_verify.impl._threadpool import RequestState
from aioctx_verify.impl._timers import TimerList
from aioctx_verify.properties import (
    ORACLES,
    MonitorSet,
    ProgressMonitor,
    default_monitors,
    monitoring,
)
from aioctx_verify.stress.explore import CORPUS, Budget, Program, explore, replay

#: Timed waits a program makes before it gives up on an answer (quietly).
ROUNDS = 3
#: Plenty: schedules bound the work, this only keeps a stuck explorer from running forever.
NO_TIME_LIMIT = 3600.0
#: Schedules per strategy for the false-alarm runs of the programs below and of the corpus.
SCHEDULES = 150
CORPUS_SCHEDULES = 250


def _wait(m: Any, c: Any, done: Callable[[], bool]) -> None:
    """Wait on ``c`` until ``done()``, at most :data:`ROUNDS` one-second waits, then go on."""
    with m:
        for _ in range(ROUNDS):
            if done():
                return
            c.wait(1.0)


# ---------------------------------------------------------------------------------------
# Programs (thread 0 runs them on the controlled platform, or the caller on real threads)
# ---------------------------------------------------------------------------------------
def timer_program(p: Platform) -> None:
    """A REALTIME and a VIRTUAL timer in an IOThread; the program waits for both to fire."""
    it = IOThread(p, name="io").start()
    m = p.mutex("fired")
    c = p.condition(m)
    fired: list[str] = []

    def cb(name: str) -> None:
        with m:
            fired.append(name)
            c.notify_all()

    rt = it.ctx.timer_new(ClockType.REALTIME, SCALE_MS, cb, "realtime")
    vt = it.ctx.timer_new(ClockType.VIRTUAL, SCALE_MS, cb, "virtual")
    rt.mod(it.ctx.tlg.clocks.get_ns(ClockType.REALTIME) // SCALE_MS + 50)
    vt.mod(it.ctx.tlg.clocks.get_ns(ClockType.VIRTUAL) // SCALE_MS + 30)
    _wait(m, c, lambda: len(fired) == 2)
    rt.delete()
    vt.delete()
    it.join()


def handler_program(p: Platform) -> None:
    """An event notifier handler in an IOThread; another thread sets the notifier twice."""
    it = IOThread(p, name="io").start()
    n = EventNotifier(p)
    m = p.mutex("handled")
    c = p.condition(m)
    handled: list[int] = []

    def on_read(notifier: EventNotifier) -> None:
        notifier.test_and_clear()
        with m:
            handled.append(1)
            c.notify_all()

    with it.ctx:
        it.ctx.set_event_notifier(n, on_read)
    n.set()
    _wait(m, c, lambda: len(handled) >= 1)
    n.set()
    _wait(m, c, lambda: len(handled) >= 2)
    with it.ctx:
        it.ctx.set_event_notifier(n, None)
    n.cleanup()
    it.join()


def _times_ten(x: int) -> int:
    return x * 10


def pool_program(p: Platform) -> None:
    """Two thread-pool requests of an IOThread's context; the program waits for both."""
    it = IOThread(p, name="io").start()
    pool = it.ctx.thread_pool()
    m = p.mutex("completed")
    c = p.condition(m)
    results: list[tuple[int, int]] = []

    def done(opaque: int, ret: int) -> None:
        with m:
            results.append((opaque, ret))
            c.notify_all()

    pool.submit(_times_ten, 1, done, 1)
    pool.submit(_times_ten, 2, done, 2)
    _wait(m, c, lambda: len(results) >= 2)
    it.join()


def dataplane_program(
    device: type[DataplaneDevice], *, watch: bool = False
) -> Callable[[Platform], None]:
    """``watch``: register the context and the device with the controlled platform's state
    oracle (``watch_state``)."""

    def program(p: Platform) -> None:
        """A guest thread kicks a started device twice; the program collects completions
        from the guest notifier (timed polls), then stops the device."""
        it = IOThread(p, name="io").start()
        dev = device(it)
        dev.start()
        if watch:
            register = getattr(p, "watch_state", None)
            assert register is not None, "a watched program runs on the controlled platform"
            register(it.ctx)
            register(dev)
        reqs = [BlockRequest(i, data=b"x" * i) for i in (1, 2)]

        def guest() -> None:
            for r in reqs:
                dev.guest_submit(r)

        g = p.start_thread(guest, "guest")
        irq = p.poller()
        irq.register(dev.guest_notifier.fd, POLLIN)
        got: list[BlockRequest] = []
        for _ in range(ROUNDS):
            got += dev.guest_collect()
            if len(got) == len(reqs):
                break
            irq.poll(1_000_000_000)
        g.join()
        dev.close()
        it.join()

    return program


def stop_program(iothread: type[IOThread], *, busy: bool) -> Callable[[Platform], None]:
    def program(p: Platform) -> None:
        """Stop an IOThread (``busy``: while a self-rescheduling BH keeps it iterating); a
        join that times out forces the stop, as a caller that gives up would."""
        it = iothread(p, name="io").start()
        if busy:
            ticks = [0]

            def tick(_: object) -> None:
                ticks[0] += 1
                if ticks[0] < 8:
                    bh.schedule()

            bh = it.ctx.bh_new(tick)
            bh.schedule()
        try:
            it.join(1.0)
        except TimeoutError:
            it._stopping = True
            it.ctx.notify_dummy_bh.schedule()
            it.join()

    return program


def stw_program(p: Platform) -> None:
    """Stop the world around two busy IOThreads; a context still held afterwards is
    released by the program itself before it joins the IOThreads."""
    its = [IOThread(p, name=f"io{i}").start() for i in range(2)]
    for it in its:
        it.ctx.bh_schedule_oneshot(lambda _: None)
    with stop_the_world(its):
        pass
    for it in its:
        if it.ctx.held_by_me():
            it.ctx.release()
        it.join()


def _program(name: str, fn: Callable[[Platform], None]) -> Program:
    return Program(f"oracle_{name}", fn, "safe", "sc", fn.__doc__ or name, max_steps=6000)


PROGRAMS: dict[str, Program] = {
    p.name: p
    for p in (
        _program("timers", timer_program),
        _program("handlers", handler_program),
        _program("pool", pool_program),
        _program("dataplane", dataplane_program(DataplaneDevice)),
        _program("stop", stop_program(IOThread, busy=False)),
        _program("stop_busy", stop_program(IOThread, busy=True)),
        _program("stw", stw_program),
    )
}


# ---------------------------------------------------------------------------------------
# Broken variants (each patches impl for the block)
# ---------------------------------------------------------------------------------------
@contextmanager
def _patched(owner: object, name: str, value: object) -> Iterator[None]:
    with mock.patch.object(owner, name, value):
        yield


def timers_never_run() -> AbstractContextManager[None]:
    """A timer list that never runs an expired timer (the loop spins on its deadline)."""

    def run_timers(self: TimerList) -> bool:
        return False

    return _patched(TimerList, "run_timers", run_timers)


def timer_mod_without_kick() -> AbstractContextManager[None]:
    """``timer_mod`` that never notifies: a poller asleep with no deadline sleeps on."""
    mod = TimerList.mod

    def silent_mod(self: TimerList, t: Any, expire_ns: int) -> None:
        kick = self._notify_cb
        self._notify_cb = lambda: None
        try:
            mod(self, t, expire_ns)
        finally:
            self._notify_cb = kick

    return _patched(TimerList, "mod", silent_mod)


def dispatch_skips_handlers() -> AbstractContextManager[None]:
    """The dispatcher drops the readiness of every handler but the context's own."""
    dispatch = AioContext._dispatch_handlers

    def skipping(self: AioContext) -> bool:
        for node in self._handlers:
            if not node.is_ctx_notifier:
                node.revents = 0
        result: bool = dispatch(self)
        return result

    return _patched(AioContext, "_dispatch_handlers", skipping)


def poll_set_forgets_handlers() -> AbstractContextManager[None]:
    """The poll set holds only the context's own notifier: a ready fd never wakes it."""
    update = AioContext._update_poll_set

    def forgetful(self: AioContext) -> None:
        update(self)
        own = self._raw_notifier.read_fd
        for fd in [fd for fd in self._polled if fd != own]:
            self._poller.unregister(fd)
            del self._polled[fd]

    return _patched(AioContext, "_update_poll_set", forgetful)


def pool_drops_completion_bh() -> AbstractContextManager[None]:
    """Scheduling a thread pool's completion BH does nothing."""
    schedule = BH.schedule

    def dropping(self: BH) -> None:
        if getattr(self.cb, "__func__", None) is ThreadPool._completion_bh:
            return
        schedule(self)

    return _patched(BH, "schedule", dropping)


def pool_wrong_result() -> AbstractContextManager[None]:
    """The completion BH delivers 0 instead of the request's own return value."""
    complete = ThreadPool._completion_bh

    def wrong(self: ThreadPool, opaque: object) -> None:
        with self._mutex:
            for r in self._live:
                if r.state is RequestState.DONE:
                    r.ret = 0
        complete(self, opaque)

    return _patched(ThreadPool, "_completion_bh", wrong)


def pool_completes_twice() -> AbstractContextManager[None]:
    """The completion BH puts each request it completed back once, so it completes again."""
    complete = ThreadPool._completion_bh
    put_back: weakref.WeakKeyDictionary[ThreadPool, set[int]] = weakref.WeakKeyDictionary()

    def twice(self: ThreadPool, opaque: object) -> None:
        with self._mutex:
            done = [r for r in self._live if r.state is RequestState.DONE]
        complete(self, opaque)
        again = put_back.setdefault(self, set())
        back = [r for r in done if r.id not in again]
        if back:
            again.update(r.id for r in back)
            with self._mutex:
                self._live.extend(back)
            self.completion_bh.schedule()

    return _patched(ThreadPool, "_completion_bh", twice)


class DeafDevice(DataplaneDevice):
    """A dataplane device whose handler clears the kick and ignores it."""

    def _handle_notify(self, n: EventNotifier) -> None:
        n.test_and_clear()


class DeafIOThread(IOThread):
    """An IOThread whose stop BH does nothing: it ignores stop."""

    def _set_stopping(self, _opaque: object) -> None:
        pass


def stw_forgets_one() -> AbstractContextManager[None]:
    """stop_the_world's resume loop skips the first context it paused."""
    return mock.patch.object(
        iothread_module, "reversed", lambda held: list(held)[::-1][:-1], create=True
    )


def _nothing() -> AbstractContextManager[None]:
    """The fault is in the program's own subclass: nothing to patch."""
    return nullcontext()


#: oracle rule -> (program, broken variant, strategy, seed): each run must fail on that rule.
BROKEN: dict[str, tuple[Program, Callable[[], AbstractContextManager[None]], str, int]] = {
    "timer never run (spins)": (PROGRAMS["oracle_timers"], timers_never_run, "random", 0),
    "timer_mod without kick (sleeps)": (
        PROGRAMS["oracle_timers"], timer_mod_without_kick, "random", 0,
    ),
    "handler skipped (spins)": (PROGRAMS["oracle_handlers"], dispatch_skips_handlers, "pct", 0),
    "handler fd not polled (sleeps)": (
        PROGRAMS["oracle_handlers"], poll_set_forgets_handlers, "random", 0,
    ),
    "pool drops completion BH": (PROGRAMS["oracle_pool"], pool_drops_completion_bh, "dfs", 0),
    "pool wrong result": (PROGRAMS["oracle_pool"], pool_wrong_result, "random", 0),
    "pool completes twice": (PROGRAMS["oracle_pool"], pool_completes_twice, "random", 0),
    "dataplane ignores kick": (
        _program("dataplane_deaf", dataplane_program(DeafDevice)), _nothing, "random", 0,
    ),
    "iothread ignores stop (sleeps)": (
        _program("stop_deaf", stop_program(DeafIOThread, busy=False)), _nothing, "random", 0,
    ),
    "iothread ignores stop (iterates)": (
        _program("stop_busy_deaf", stop_program(DeafIOThread, busy=True)), _nothing, "pct", 0,
    ),
    "stop-the-world forgets one": (PROGRAMS["oracle_stw"], stw_forgets_one, "dfs", 0),
}

#: The rule each broken variant must break.
RULE: dict[str, str] = {
    "timer never run (spins)": "timer-runs",
    "timer_mod without kick (sleeps)": "timer-runs",
    "handler skipped (spins)": "handler-dispatched",
    "handler fd not polled (sleeps)": "handler-dispatched",
    "pool drops completion BH": "request-completes",
    "pool wrong result": "request-own-result",
    "pool completes twice": "request-once",
    "dataplane ignores kick": "kick-processed",
    "iothread ignores stop (sleeps)": "iothread-stops",
    "iothread ignores stop (iterates)": "iothread-stops",
    "stop-the-world forgets one": "stw-resumes",
}


# ---------------------------------------------------------------------------------------
# Each oracle can fail
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", sorted(BROKEN))
def test_broken_variant_is_caught_with_a_replayable_schedule(variant: str) -> None:
    program, broken, strategy, seed = BROKEN[variant]
    with broken():
        r = explore(
            program,
            strategy=strategy,
            budget=Budget(60, NO_TIME_LIMIT),
            seed=seed,
            do_shrink=False,
        )
        assert r.verdict == "fail" and r.failure is not None, r.summary()
        f = r.failure
        assert (f.kind, f.prop) == ("property", "LIVE"), f.report()
        assert f"LIVE {RULE[variant]}:" in f.message, f.message
        again = replay(f.schedule, {program.name: program})
    assert (again.verdict, again.kind, again.prop, again.message) == (
        "fail",
        "property",
        "LIVE",
        f.message,
    )


def test_every_oracle_has_a_broken_variant() -> None:
    rules = {
        "timers": {"timer-runs"},
        "handlers": {"handler-dispatched"},
        "pool": {"request-completes", "request-once", "request-own-result"},
        "dataplane": {"kick-processed"},
        "iothread": {"iothread-stops"},
        "stw": {"stw-resumes"},
    }
    assert set(rules) == set(ORACLES)
    assert set().union(*rules.values()) == set(RULE.values())


# ---------------------------------------------------------------------------------------
# The correct impl: no false alarm
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["random", "pct", "dfs", "conflict"])
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_correct_impl_programs_pass(name: str, strategy: str) -> None:
    r = explore(
        PROGRAMS[name], strategy=strategy, budget=Budget(SCHEDULES, NO_TIME_LIMIT), seed=11
    )
    assert r.verdict == "pass", r.summary()
    assert r.schedules >= 1


@pytest.mark.parametrize("strategy", ["random", "pct", "dfs", "conflict"])
def test_correct_impl_corpus_passes(strategy: str) -> None:
    safe = [p for p in CORPUS if p.expected == "safe" and p.monitors]
    assert any(p.name == "timer_virtual_time" for p in safe)
    for program in safe:
        r = explore(
            program, strategy=strategy, budget=Budget(CORPUS_SCHEDULES, NO_TIME_LIMIT), seed=5
        )
        assert r.verdict == "pass", r.summary()


def test_the_oracles_also_run_on_the_corpus_bugs() -> None:
    """A corpus bug found by the scheduler keeps its verdict (the oracles add, never hide)."""
    bug = next(p for p in CORPUS if p.name == "iothread_acquire_no_kick")
    r = explore(bug, strategy="dfs", budget=Budget(50, NO_TIME_LIMIT), do_shrink=False)
    assert r.verdict == "fail" and r.failure is not None
    assert r.failure.prop == "LIVE"


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_correct_impl_programs_on_real_threads(name: str) -> None:
    p = RealPlatform()
    with monitoring(p) as ms:
        PROGRAMS[name].fn(p)  # type: ignore[arg-type]
    assert ms.violations == []
    assert ms.events_seen > 10


# The existing real-thread tests of the pool, the dataplane and stop-the-world, rerun with
# every monitor (real-thread mode) attached to their platform: the fixture below replaces
# conftest's ``platform`` for the tests collected in this module; their other fixtures come
# with them.  Its teardown runs after every IOThread was joined (the ``iothreads`` fixture).
@pytest.fixture(params=["eventfd", "pipe"])
def platform(request: pytest.FixtureRequest) -> Iterator[RealPlatform]:
    p = RealPlatform(use_eventfd=request.param == "eventfd")
    ms = MonitorSet()
    p.tracer = ms
    yield p
    p.tracer = None
    ms.finish()
    assert ms.violations == [], "\n".join(str(v) for v in ms.violations)


ctx = _tp_tests.ctx
iothread = _dp_tests.iothread  # test_threadpool's is the same: a started IOThread
vm = _dp_tests.vm
device = _dp_tests.device
for _prefix, _module, _which in (
    ("pool", _tp_tests, ""),
    ("dataplane", _dp_tests, ""),
    ("iothread", _it_tests, "stop_the_world"),
):
    for _name in dir(_module):
        if _name.startswith("test_") and _which in _name:
            globals()[f"test_monitored_{_prefix}_{_name[5:]}"] = getattr(_module, _name)


# ---------------------------------------------------------------------------------------
# The rules on hand-made traces (no platform view: the real-thread mode)
# ---------------------------------------------------------------------------------------
def ev(kind: str, thread: int, ctx: int = 1, obj: int = 0, detail: str = "") -> TraceEvent:
    return TraceEvent(kind, ThreadId(thread), ctx, obj, detail)


def _iteration(t: int, ctx: int = 1, *body: TraceEvent, raised: bool = False) -> list[TraceEvent]:
    """One aio_poll iteration of thread ``t`` (``raised``: it did not reach its end)."""
    end = ev("poll_end", t, ctx, 0, "raised" if raised else "")
    return [ev("poll_begin", t, ctx, 1), *body, end]


def rules(events: list[TraceEvent], *, terminal: bool = False, view: Any = None) -> list[str]:
    ms = MonitorSet([ProgressMonitor(view)]).feed_all(events)
    ms.finish(terminal=terminal)
    return sorted(v.rule for v in ms.violations)


def test_default_monitors_include_the_oracles() -> None:
    assert any(isinstance(m, ProgressMonitor) for m in default_monitors())
    assert any(isinstance(m, ProgressMonitor) for m in MonitorSet().monitors)
    with pytest.raises(ValueError, match="unknown oracle"):
        ProgressMonitor(oracles=["timers", "nope"])


def test_request_rules() -> None:
    done = [ev("pool_done", 9, obj=5, detail="10")]
    ok = [*done, *_iteration(2, 1, ev("pool_complete", 2, obj=5, detail="10"))]
    assert rules(ok) == []
    assert rules([*ok, ev("pool_complete", 2, obj=5, detail="10")]) == ["request-once"]
    assert rules([*done, ev("pool_complete", 2, obj=5, detail="0")]) == ["request-own-result"]
    # Two iterations that began after the work finished and did not complete it.
    assert rules([*done, *_iteration(2), *_iteration(2)]) == ["request-completes"]
    # An iteration that began before, one that raised: no strike; a shutdown drops it.
    early = [ev("poll_begin", 2, 1, 1), *done, ev("poll_end", 2, 1)]
    assert rules([*early, *_iteration(2, raised=True), *_iteration(2)]) == []
    assert rules([*done, ev("pool_shutdown", 3), *_iteration(2), *_iteration(2)]) == []
    cancelled = [ev("pool_cancel", 3, obj=6, detail="-125")]
    assert rules([*cancelled, ev("pool_complete", 2, obj=6, detail="-125")]) == []
    assert rules([*cancelled, ev("pool_done", 4, obj=6, detail="0")]) == ["request-own-result"]


def test_kick_rules_wait_while_external_handlers_are_disabled() -> None:
    start = [ev("dp_start", 1, obj=7, detail="0"), ev("dp_kick", 4, obj=7, detail="1")]
    assert rules([*start, *_iteration(2), *_iteration(2)]) == ["kick-processed"]
    disabled = [*start, ev("external_disable", 3), *_iteration(2), *_iteration(2)]
    assert rules(disabled) == []
    assert rules([*disabled, ev("external_enable", 3), *_iteration(2), *_iteration(2)]) == [
        "kick-processed"
    ]
    # Processed (even before the kick was traced), or the device stopped: nothing owed.
    processed = [ev("dp_start", 1, obj=7, detail="0"), ev("dp_process", 2, obj=7, detail="1")]
    assert rules([*processed, ev("dp_kick", 4, obj=7, detail="1"), *_iteration(2) * 2]) == []
    assert rules([*start, ev("dp_stop", 1, obj=7), *_iteration(2), *_iteration(2)]) == []


def test_stop_rules() -> None:
    started = [ev("iothread_start", 2, 1, 8)]
    req = ev("iothread_stop_request", 1, 1, 8)
    ok = [*started, req, *_iteration(2, 1, ev("iothread_stopping", 2, 1, 8)),
          ev("iothread_stop", 2, 1, 8)]  # fmt: skip
    assert rules(ok, terminal=True) == []
    looping = [*started, req, *_iteration(2), *_iteration(2), ev("poll_begin", 2, 1, 1)]
    assert rules(looping) == ["iothread-stops"]
    assert rules([*started, req], terminal=True) == ["iothread-stops"]
    assert rules([*started, req]) == []  # real threads: no end-of-run verdict
    # Asleep with the stop pending when every thread is blocked: a lost wake-up.
    asleep = [*started, ev("poll_begin", 2, 1, 1), ev("poll_wait", 2, 1, -1), req]
    ms = MonitorSet([ProgressMonitor()]).feed_all(asleep)
    ms.quiescent()
    assert [v.rule for v in ms.violations] == ["iothread-stops"]


def test_stop_the_world_rule() -> None:
    stw = [ev("stw_begin", 1, 0, 2), ev("acquire", 1, 3, 1), ev("acquire", 1, 4, 1),
           ev("stw_paused", 1, 0, 2)]  # fmt: skip
    resumed = [ev("release", 1, 4, 0), ev("release", 1, 3, 0), ev("stw_end", 1, 0, 2)]
    assert rules([*stw, *resumed]) == []
    assert rules([*stw, ev("release", 1, 4, 0), ev("stw_end", 1, 0, 2)]) == ["stw-resumes"]
    # A context the caller already held stays held at its own depth.
    held = [ev("acquire", 1, 3, 1), ev("stw_begin", 1, 0, 1), ev("acquire", 1, 3, 2),
            ev("stw_paused", 1, 0, 1), ev("release", 1, 3, 1), ev("stw_end", 1, 0, 1)]  # fmt: skip
    assert rules(held) == []


class _View:
    """A fixed platform view: clock readings and ready fds."""

    def __init__(self, now: int, ready: set[int]) -> None:
        self.now = now
        self.ready = ready

    def clock_ns(self, clock: int) -> int | None:
        return self.now

    def fd_ready(self, fd: int, read: bool, write: bool) -> bool:
        return fd in self.ready


def test_timer_and_handler_rules_need_a_view() -> None:
    armed = [ev("timer_mod", 9, 1, 4, "0:100")]
    spin = [*armed, *_iteration(2), *_iteration(2)]
    assert rules(spin) == []  # real threads: no clock reading to compare
    assert rules(spin, view=_View(50, set())) == []  # not expired yet
    assert rules(spin, view=_View(100, set())) == ["timer-runs"]
    ran = [*armed, *_iteration(2, 1, ev("timer_run_begin", 2, 1, 4))]
    assert rules([*ran, *_iteration(2)], view=_View(100, set())) == []
    registered = [ev("handler_set", 9, 1, 6, "fd=12 r=1 w=0 ext=0")]

    def woke(*body: TraceEvent) -> list[TraceEvent]:
        return [ev("poll_begin", 2, 1, 1), ev("poll_woke", 2, 1, 1), *body, ev("poll_end", 2, 1)]

    assert rules([*registered, *woke(), *woke()], view=_View(0, {12})) == [
        "handler-dispatched"
    ]
    dispatched = woke(ev("handler_run_begin", 2, 1, 6))
    assert rules([*registered, *dispatched, *dispatched], view=_View(0, {12})) == []
    assert rules([*registered, *woke(), *woke()], view=_View(0, set())) == []
    removed = [*registered, ev("handler_remove", 9, 1, 6)]
    assert rules([*removed, *woke(), *woke()], view=_View(0, {12})) == []
