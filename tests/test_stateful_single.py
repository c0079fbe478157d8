"""impl against the single-thread reference (:class:`model.SequentialContext`), in lockstep.

First, the reference alone on QEMU's own tests/test-aio.c scenarios (shared/reference/
qemu-semantics.md 10.2) and on the one point where impl and QEMU 2.4 differ.  Then a
Hypothesis rule-based state machine drives one impl context (through :mod:`impl.qemu` *and*
the Pythonic API, chosen per step) and a :class:`SequentialContext` with the same calls:
acquire / release (nested, and a refused release), BHs (new, schedule, schedule_idle,
cancel, delete, one-shot, use after delete), event notifiers and their handlers (external or
not, registered and removed also from inside callbacks), VIRTUAL-clock timers with the
clock frozen and advanced by hand, aio_disable/enable_external, and aio_poll (blocking only
when the reference says it returns at once or within a bounded timeout).  Callbacks carry
small effect programs run on both sides.  After every step the return values, the log of
callbacks run (in order) and the observable state must be equal; the property monitors
listen throughout and must report nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from impl import (
    BH,
    AioContext,
    BHDeletedError,
    EventNotifier,
    LockNotHeldError,
    QEMUTimer,
    RealPlatform,
    UsageError,
    clocks_for,
)
from impl import qemu as q
from model import SequentialContext, SequentialUsageError, WouldBlockForever
from model._sequential import IDLE_BH_TIMEOUT_NS
from properties import MonitorSet, monitoring


# ------------------------------------------------------------------------------------------
# The reference on QEMU's test-aio.c scenarios
# ------------------------------------------------------------------------------------------
def test_reference_bh_schedule_and_schedule10() -> None:
    s = SequentialContext()
    n = [0]

    def resched() -> None:
        n[0] += 1
        if n[0] < 10:
            s.schedule(b)

    b = s.bh_new(resched)
    s.schedule(b)
    assert n == [0]  # not synchronous
    assert s.aio_poll(False) is True and n == [1]
    assert s.aio_poll(True) is True and n == [2]  # rescheduled: once per iteration
    while n[0] < 10:
        assert s.aio_poll(True)
    assert s.aio_poll(False) is False and n == [10]
    with pytest.raises(WouldBlockForever):
        s.aio_poll(True)  # nothing could wake it: refused, never a hang


def test_reference_cancel_delete_and_use_after_delete() -> None:
    s = SequentialContext()
    ran: list[int] = []
    b = s.bh_new(lambda: ran.append(1))
    s.schedule(b)
    s.cancel(b)
    assert s.aio_poll(False) is False and ran == []
    s.schedule(b)
    s.delete(b)
    assert s.aio_poll(False) is False and ran == []
    for use in (s.schedule, s.schedule_idle, s.cancel, s.delete):
        with pytest.raises(SequentialUsageError):
            use(b)


def test_reference_order_newest_first_and_same_walk_rules() -> None:
    s = SequentialContext()
    log: list[str] = []
    old = s.bh_new(lambda: log.append("old"))

    def mid_cb() -> None:
        log.append("mid")
        s.schedule(old)
        s.schedule(new)

    mid = s.bh_new(mid_cb)
    new = s.bh_new(lambda: log.append("new"))
    s.schedule(mid)
    assert s.aio_poll(False) and log == ["mid", "old"]  # older: same walk; newer: next one
    assert s.aio_poll(False) and log == ["mid", "old", "new"]
    assert not s.aio_poll(False)


def test_reference_idle_bh_is_not_progress_and_qemu24_schedule_keeps_idle() -> None:
    ran: list[bool] = []
    for clears in (False, True):
        s = SequentialContext(schedule_clears_idle=clears)
        b = s.bh_new(lambda: ran.append(True))
        s.schedule_idle(b)
        assert s.compute_timeout() == IDLE_BH_TIMEOUT_NS
        s.schedule(b)  # QEMU 2.4: returns at once, still idle; impl: a normal schedule
        assert s.aio_poll(False) is clears
    assert ran == [True, True]


def test_impl_clears_idle_on_schedule_unlike_qemu_2_4() -> None:
    """The documented difference, shown on impl: the run after schedule_idle+schedule is
    progress in impl (2016 async.c), not in QEMU 2.4 (SequentialContext's default)."""
    ctx = AioContext(RealPlatform())
    try:
        bh = ctx.bh_new(lambda _: None)
        bh.schedule_idle()
        bh.schedule()
        assert ctx.aio_poll(False) is True
    finally:
        ctx.unref()


def test_reference_event_wait_flush_and_external() -> None:
    s = SequentialContext()
    n = s.notifier_new()
    hits: list[bool] = []
    s.set_event_notifier(n, lambda: hits.append(s.notifier_test_and_clear(n)), is_external=True)
    assert s.aio_poll(False) is False
    s.notifier_set(n)
    s.disable_external()
    s.disable_external()
    assert s.aio_poll(False) is False and hits == []  # /aio/external-client
    assert s.would_block_forever()
    s.enable_external()
    assert s.aio_poll(False) is False
    s.enable_external()
    assert s.ready_now() and s.aio_poll(True) is True and hits == [True]
    with pytest.raises(SequentialUsageError):
        s.enable_external()
    s.set_event_notifier(n, None)
    s.notifier_set(n)
    assert s.aio_poll(False) is False and hits == [True]


def test_reference_poll_result_fixed_before_bhs_run() -> None:
    s = SequentialContext()
    a, b = s.notifier_new(), s.notifier_new()
    log: list[str] = []
    s.set_event_notifier(a, lambda: log.append(f"a{s.notifier_test_and_clear(a)}"))
    s.set_event_notifier(b, lambda: log.append(f"b{s.notifier_test_and_clear(b)}"))

    def bh_cb() -> None:
        log.append("bh")
        s.notifier_set(b)
        s.notifier_test_and_clear(a)

    bh = s.bh_new(bh_cb)
    s.notifier_set(a)
    s.schedule(bh)
    assert s.aio_poll(False)
    # a was ready at the poll, so it runs although the BH cleared it; b was set too late.
    assert log == ["bh", "aFalse"]
    assert s.aio_poll(False) and log == ["bh", "aFalse", "bTrue"]


def test_reference_timers_on_a_frozen_clock() -> None:
    s = SequentialContext(clock_ns=1000)
    log: list[str] = []
    t1 = s.timer_new(lambda: log.append("t1"))
    t2 = s.timer_new(lambda: log.append("t2"))
    s.timer_mod(t2, 1500)
    s.timer_mod(t1, 1500)  # same expiry, armed later: runs after t2
    assert s.compute_timeout() == 500 and not s.ready_now() and not s.would_block_forever()
    assert s.aio_poll(False) is False and log == []  # the clock is frozen: nothing is due
    s.advance(500)
    assert s.ready_now() and s.aio_poll(True) is True and log == ["t2", "t1"]
    assert not s.timer_pending(t1) and s.timer_expire_ns(t1) == -1
    calls = [0]

    def rearm() -> None:
        calls[0] += 1
        log.append("t3")
        if calls[0] == 1:
            s.timer_mod(t3, s.clock_ns)  # not after this run's clock reading: runs again now
        elif calls[0] == 2:
            s.timer_mod(t3, s.clock_ns + 1)  # later: waits for the clock

    t3 = s.timer_new(rearm)
    s.timer_mod(t3, -5)
    assert s.timer_expire_ns(t3) == 0  # clamped: already expired
    log.clear()
    assert s.aio_poll(False) is True and log == ["t3", "t3"]
    assert s.timer_pending(t3) and s.compute_timeout() == 1
    s.timer_del(t3)
    assert not s.timer_pending(t3) and s.would_block_forever()


# ------------------------------------------------------------------------------------------
# Lockstep: impl and the reference
# ------------------------------------------------------------------------------------------
MAX_BHS = 6
MAX_NOTIFIERS = 3
MAX_TIMERS = 3

# An effect a callback runs on both sides: (kind, index).  Indices beyond what exists, or
# naming a deleted BH, make the effect a no-op on both sides alike.
EFFECT_KINDS = (
    "noop", "resched", "sched", "idle", "cancel", "delete", "set", "clear",
    "add_handler", "remove_handler", "timer", "oneshot", "disable_ext", "enable_ext",
)
effects = st.lists(
    st.tuples(st.sampled_from(EFFECT_KINDS), st.integers(0, MAX_BHS - 1)), max_size=2
).map(tuple)
Effects = tuple[tuple[str, int], ...]


class Lockstep(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.stack = ExitStack()
        self.platform = RealPlatform()
        self.clocks = clocks_for(self.platform)
        q.qemu_clock_stop_virtual(self.platform)
        self.ms: MonitorSet = self.stack.enter_context(monitoring(self.platform))
        self.ctx: AioContext = q.aio_context_new(self.platform)
        now = q.qemu_clock_get_ns(q.QEMU_CLOCK_VIRTUAL, self.platform)
        self.ref = SequentialContext(clock_ns=now, schedule_clears_idle=True)
        # Parallel objects: index i names impl's i-th and the reference's i-th.
        self.bhs: list[BH] = []
        self.ref_bhs: list[int] = []
        self.notifiers: list[EventNotifier] = []
        self.ref_notifiers: list[int] = []
        self.timers: list[QEMUTimer] = []
        self.ref_timers: list[int] = []
        self.log: list[tuple[Any, ...]] = []
        self.ref_log: list[tuple[Any, ...]] = []
        # One-shot BHs are named by a per-side counter: equal sequences of calls give
        # equal names, so the logs compare.
        self.impl_tag = 0
        self.ref_tag = 0

    def teardown(self) -> None:
        try:
            self.stack.close()  # the monitors' end-of-run rules
            assert self.ms.violations == [], [str(v) for v in self.ms.violations]
        finally:
            while self.ctx.held_by_me():
                self.ctx.release()
            for n in self.notifiers:
                if self.ctx.closed or n.closed:
                    continue
                self.ctx.set_event_notifier(n, None)
                n.cleanup()
            self.ctx.unref()

    # -- effects, run from callbacks on each side ---------------------------------------------
    def _impl_effects(self, prog: Effects, me: int) -> None:
        for kind, i in prog:
            if kind == "resched":
                i = me
            if kind in ("resched", "sched", "idle", "cancel", "delete"):
                if not 0 <= i < len(self.bhs) or self.bhs[i].deleted:
                    continue
                bh = self.bhs[i]
                {"resched": bh.schedule, "sched": bh.schedule, "idle": bh.schedule_idle,
                 "cancel": bh.cancel, "delete": bh.delete}[kind]()
            elif kind in ("set", "clear", "add_handler", "remove_handler"):
                if i >= len(self.notifiers):
                    continue
                n = self.notifiers[i]
                if kind == "set":
                    n.set()
                elif kind == "clear":
                    self.log.append(("clear", i, n.test_and_clear()))
                elif kind == "add_handler":
                    self.ctx.set_event_notifier(n, self._impl_handler(i, ()))
                else:
                    self.ctx.set_event_notifier(n, None)
            elif kind == "timer" and i < len(self.timers):
                now = q.qemu_clock_get_ns(q.QEMU_CLOCK_VIRTUAL, self.platform)
                self.timers[i].mod_ns(now + 1 + i)  # in the future: no endless re-run
            elif kind == "oneshot":
                self.impl_tag += 1
                self.ctx.bh_schedule_oneshot(self._impl_oneshot(self.impl_tag, ()))
            elif kind == "disable_ext":
                self.ctx.disable_external()
            elif kind == "enable_ext" and self.ctx.external_disabled:
                self.ctx.enable_external()

    def _ref_effects(self, prog: Effects, me: int) -> None:
        r = self.ref
        for kind, i in prog:
            if kind == "resched":
                i = me
            if kind in ("resched", "sched", "idle", "cancel", "delete"):
                if not 0 <= i < len(self.ref_bhs) or r.is_deleted(self.ref_bhs[i]):
                    continue
                b = self.ref_bhs[i]
                {"resched": r.schedule, "sched": r.schedule, "idle": r.schedule_idle,
                 "cancel": r.cancel, "delete": r.delete}[kind](b)
            elif kind in ("set", "clear", "add_handler", "remove_handler"):
                if i >= len(self.ref_notifiers):
                    continue
                n = self.ref_notifiers[i]
                if kind == "set":
                    r.notifier_set(n)
                elif kind == "clear":
                    self.ref_log.append(("clear", i, r.notifier_test_and_clear(n)))
                elif kind == "add_handler":
                    r.set_event_notifier(n, self._ref_handler(i, ()))
                else:
                    r.set_event_notifier(n, None)
            elif kind == "timer" and i < len(self.ref_timers):
                r.timer_mod_ns(self.ref_timers[i], r.clock_ns + 1 + i)
            elif kind == "oneshot":
                self.ref_tag += 1
                r.bh_schedule_oneshot(self._ref_oneshot(self.ref_tag, ()))
            elif kind == "disable_ext":
                r.disable_external()
            elif kind == "enable_ext" and r.external_disabled:
                r.enable_external()

    def _impl_bh(self, i: int, prog: Effects) -> Callable[[Any], None]:
        def cb(_opaque: Any) -> None:
            self.log.append(("bh", i))
            self._impl_effects(prog, i)

        return cb

    def _ref_bh(self, i: int, prog: Effects) -> Callable[[], None]:
        def cb() -> None:
            self.ref_log.append(("bh", i))
            self._ref_effects(prog, i)

        return cb

    def _impl_oneshot(self, tag: int, prog: Effects) -> Callable[[Any], None]:
        def cb(_opaque: Any) -> None:
            self.log.append(("oneshot", tag))
            self._impl_effects(prog, -1)

        return cb

    def _ref_oneshot(self, tag: int, prog: Effects) -> Callable[[], None]:
        def cb() -> None:
            self.ref_log.append(("oneshot", tag))
            self._ref_effects(prog, -1)

        return cb

    def _impl_handler(self, n: int, prog: Effects) -> Callable[[EventNotifier], None]:
        def cb(notifier: EventNotifier) -> None:
            self.log.append(("handler", n, notifier.test_and_clear()))
            self._impl_effects(prog, -1)

        return cb

    def _ref_handler(self, n: int, prog: Effects) -> Callable[[], None]:
        def cb() -> None:
            self.ref_log.append(("handler", n, self.ref.notifier_test_and_clear(n)))
            self._ref_effects(prog, -1)

        return cb

    def _impl_timer(self, k: int, prog: Effects) -> Callable[[Any], None]:
        def cb(_opaque: Any) -> None:
            self.log.append(("timer", k))
            self._impl_effects(prog, -1)

        return cb

    def _ref_timer(self, k: int, prog: Effects) -> Callable[[], None]:
        def cb() -> None:
            self.ref_log.append(("timer", k))
            self._ref_effects(prog, -1)

        return cb

    # -- the lock ------------------------------------------------------------------------------
    @rule(qemu=st.booleans())
    def acquire(self, qemu: bool) -> None:
        if qemu:
            q.aio_context_acquire(self.ctx)
        else:
            assert self.ctx.acquire() is True
        self.ref.acquire()

    @precondition(lambda self: self.ref.depth > 0)
    @rule(qemu=st.booleans())
    def release(self, qemu: bool) -> None:
        (q.aio_context_release if qemu else AioContext.release)(self.ctx)
        self.ref.release()

    @precondition(lambda self: self.ref.depth == 0)
    @rule()
    def release_not_held_is_refused(self) -> None:
        with pytest.raises(LockNotHeldError):
            q.aio_context_release(self.ctx)
        with pytest.raises(SequentialUsageError):
            self.ref.release()

    # -- bottom halves -------------------------------------------------------------------------
    @precondition(lambda self: len(self.bhs) < MAX_BHS)
    @rule(prog=effects, qemu=st.booleans())
    def bh_new(self, prog: Effects, qemu: bool) -> None:
        i = len(self.bhs)
        cb = self._impl_bh(i, prog)
        bh = q.aio_bh_new(self.ctx, cb, None) if qemu else self.ctx.bh_new(cb)
        self.bhs.append(bh)
        self.ref_bhs.append(self.ref.bh_new(self._ref_bh(i, prog)))

    @precondition(lambda self: self.bhs)
    @rule(data=st.data(), op=st.sampled_from(["schedule", "schedule_idle", "cancel", "delete"]),
          qemu=st.booleans())
    def bh_op(self, data: st.DataObject, op: str, qemu: bool) -> None:
        i = data.draw(st.integers(0, len(self.bhs) - 1), label="bh")
        bh, b = self.bhs[i], self.ref_bhs[i]
        ref_op = getattr(self.ref, op)
        call: Callable[[], None] = (
            (lambda: getattr(q, f"qemu_bh_{op}")(bh)) if qemu else getattr(bh, op)
        )
        if self.ref.is_deleted(b):
            with pytest.raises(BHDeletedError):
                call()
            with pytest.raises(SequentialUsageError):
                ref_op(b)
            return
        call()
        ref_op(b)

    @precondition(lambda self: any(not bh.deleted for bh in self.bhs))
    @rule(data=st.data(), qemu=st.booleans())
    def bh_idle_then_schedule(self, data: st.DataObject, qemu: bool) -> None:
        """The one sequence where impl and QEMU 2.4 differ (see model._sequential)."""
        live = [i for i, bh in enumerate(self.bhs) if not bh.deleted]
        i = data.draw(st.sampled_from(live), label="bh")
        if qemu:
            q.qemu_bh_schedule_idle(self.bhs[i])
            q.qemu_bh_schedule(self.bhs[i])
        else:
            self.bhs[i].schedule_idle()
            self.bhs[i].schedule()
        self.ref.schedule_idle(self.ref_bhs[i])
        self.ref.schedule(self.ref_bhs[i])

    @rule(prog=effects, qemu=st.booleans())
    def oneshot(self, prog: Effects, qemu: bool) -> None:
        self.impl_tag += 1
        self.ref_tag += 1
        cb = self._impl_oneshot(self.impl_tag, prog)
        ref_cb = self._ref_oneshot(self.ref_tag, prog)
        if qemu:
            q.aio_bh_schedule_oneshot(self.ctx, cb, None)
        else:
            self.ctx.bh_schedule_oneshot(cb)
        self.ref.bh_schedule_oneshot(ref_cb)

    # -- notifiers and handlers ----------------------------------------------------------------
    @precondition(lambda self: len(self.notifiers) < MAX_NOTIFIERS)
    @rule(active=st.booleans())
    def notifier_new(self, active: bool) -> None:
        self.notifiers.append(q.event_notifier_init(active, self.platform))
        self.ref_notifiers.append(self.ref.notifier_new(active))

    @precondition(lambda self: self.notifiers)
    @rule(data=st.data(), qemu=st.booleans())
    def notifier_set(self, data: st.DataObject, qemu: bool) -> None:
        i = data.draw(st.integers(0, len(self.notifiers) - 1), label="notifier")
        if qemu:
            q.event_notifier_set(self.notifiers[i])
        else:
            self.notifiers[i].set()
        self.ref.notifier_set(self.ref_notifiers[i])

    @precondition(lambda self: self.notifiers)
    @rule(data=st.data(), qemu=st.booleans())
    def notifier_test_and_clear(self, data: st.DataObject, qemu: bool) -> None:
        i = data.draw(st.integers(0, len(self.notifiers) - 1), label="notifier")
        n = self.notifiers[i]
        got = q.event_notifier_test_and_clear(n) if qemu else n.test_and_clear()
        assert got == self.ref.notifier_test_and_clear(self.ref_notifiers[i])

    @precondition(lambda self: self.notifiers)
    @rule(data=st.data(), prog=effects, external=st.booleans(), qemu=st.booleans())
    def handler_add(self, data: st.DataObject, prog: Effects, external: bool, qemu: bool) -> None:
        i = data.draw(st.integers(0, len(self.notifiers) - 1), label="notifier")
        cb = self._impl_handler(i, prog)
        if qemu:
            q.aio_set_event_notifier(self.ctx, self.notifiers[i], cb, is_external=external)
        else:
            self.ctx.set_event_notifier(self.notifiers[i], cb, is_external=external)
        self.ref.set_event_notifier(
            self.ref_notifiers[i], self._ref_handler(i, prog), is_external=external
        )

    @precondition(lambda self: self.notifiers)
    @rule(data=st.data(), qemu=st.booleans())
    def handler_remove(self, data: st.DataObject, qemu: bool) -> None:
        i = data.draw(st.integers(0, len(self.notifiers) - 1), label="notifier")
        if qemu:
            q.aio_set_event_notifier(self.ctx, self.notifiers[i], None)
        else:
            self.ctx.set_event_notifier(self.notifiers[i], None)
        self.ref.set_event_notifier(self.ref_notifiers[i], None)

    @rule(qemu=st.booleans())
    def disable_external(self, qemu: bool) -> None:
        (q.aio_disable_external if qemu else AioContext.disable_external)(self.ctx)
        self.ref.disable_external()

    @rule(qemu=st.booleans())
    def enable_external(self, qemu: bool) -> None:
        call = q.aio_enable_external if qemu else AioContext.enable_external
        if not self.ref.external_disabled:
            with pytest.raises(UsageError):
                call(self.ctx)
            with pytest.raises(SequentialUsageError):
                self.ref.enable_external()
            return
        call(self.ctx)
        self.ref.enable_external()

    # -- timers and the virtual clock ----------------------------------------------------------
    @precondition(lambda self: len(self.timers) < MAX_TIMERS)
    @rule(prog=effects, qemu=st.booleans())
    def timer_new(self, prog: Effects, qemu: bool) -> None:
        k = len(self.timers)
        cb = self._impl_timer(k, prog)
        if qemu:
            t = q.aio_timer_new(self.ctx, q.QEMU_CLOCK_VIRTUAL, q.SCALE_NS, cb, None)
        else:
            t = self.ctx.timer_new(q.QEMU_CLOCK_VIRTUAL, q.SCALE_NS, cb)
        self.timers.append(t)
        self.ref_timers.append(self.ref.timer_new(self._ref_timer(k, prog)))

    @precondition(lambda self: self.timers)
    @rule(data=st.data(), delta=st.integers(-20, 60), qemu=st.booleans())
    def timer_mod(self, data: st.DataObject, delta: int, qemu: bool) -> None:
        k = data.draw(st.integers(0, len(self.timers) - 1), label="timer")
        expire = self.ref.clock_ns + delta
        if qemu:
            q.timer_mod(self.timers[k], expire)
        else:
            self.timers[k].mod(expire)
        self.ref.timer_mod(self.ref_timers[k], expire)

    @precondition(lambda self: self.timers)
    @rule(data=st.data(), qemu=st.booleans())
    def timer_del(self, data: st.DataObject, qemu: bool) -> None:
        k = data.draw(st.integers(0, len(self.timers) - 1), label="timer")
        if qemu:
            q.timer_del(self.timers[k])
        else:
            self.timers[k].delete()
        self.ref.timer_del(self.ref_timers[k])

    @rule(ns=st.integers(0, 60), qemu=st.booleans())
    def advance_clock(self, ns: int, qemu: bool) -> None:
        if qemu:
            q.qemu_clock_advance_virtual(ns, self.platform)
        else:
            self.clocks.advance_virtual(ns)
        self.ref.advance(ns)

    # -- the loop ------------------------------------------------------------------------------
    @rule(qemu=st.booleans(), held=st.booleans())
    def poll_nonblocking(self, qemu: bool, held: bool) -> None:
        if held:  # the Pythonic face: `with ctx:` around the iteration
            with self.ctx:
                got = self.ctx.aio_poll(False)
        else:
            got = q.aio_poll(self.ctx, False) if qemu else self.ctx.aio_poll(False)
        assert got == self.ref.aio_poll(False)

    @precondition(
        lambda self: not self.ref.would_block_forever()
        and self.ref.compute_timeout() <= IDLE_BH_TIMEOUT_NS
    )
    @rule(qemu=st.booleans())
    def poll_blocking(self, qemu: bool) -> None:
        # The reference says this returns within 10 ms.  Should impl disagree and sleep,
        # a watchdog wakes it (aio_notify) after a bound and the test fails instead of hanging.
        hung = threading.Event()

        def kick() -> None:
            hung.set()
            self.ctx.aio_notify()

        watchdog = threading.Timer(5.0, kick)
        watchdog.start()
        try:
            got = q.aio_poll(self.ctx, True) if qemu else self.ctx.aio_poll(True)
        finally:
            watchdog.cancel()
        assert not hung.is_set(), "impl blocked although the reference had work ready"
        assert got == self.ref.aio_poll(True)

    # -- after every step ----------------------------------------------------------------------
    @invariant()
    def same_callbacks_in_same_order(self) -> None:
        assert self.log == self.ref_log

    @invariant()
    def same_observable_state(self) -> None:
        r = self.ref
        assert self.ctx.statistics().lock.depth == r.depth
        assert self.ctx.held_by_me() == (r.depth > 0)
        assert [bh.deleted for bh in self.bhs] == [r.is_deleted(b) for b in self.ref_bhs]
        assert [bh.is_scheduled for bh in self.bhs] == [r.is_scheduled(b) for b in self.ref_bhs]
        assert [t.pending() for t in self.timers] == [r.timer_pending(k) for k in self.ref_timers]
        assert [t.expire_ns() for t in self.timers] == [
            r.timer_expire_ns(k) for k in self.ref_timers
        ]
        assert self.ctx.external_disabled == r.external_disabled
        assert q.qemu_clock_get_ns(q.QEMU_CLOCK_VIRTUAL, self.platform) == r.clock_ns
        handlers = self.ctx.statistics().handlers
        assert handlers == sum(r.has_handler(n) for n in self.ref_notifiers)

    @invariant()
    def monitors_quiet(self) -> None:
        assert self.ms.violations == [], [str(v) for v in self.ms.violations]


# The profile (tests/conftest.py) with at least 200 programs of up to 80 steps: each is a
# few milliseconds, so the ci profile stays well under 20 s.
_profile = settings.default
assert _profile is not None
Lockstep.TestCase.settings = settings(
    _profile,
    max_examples=max(_profile.max_examples, 200),
    stateful_step_count=80,
)
TestLockstep = Lockstep.TestCase
