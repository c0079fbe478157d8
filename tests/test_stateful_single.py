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
listen throughout and must report nothing.  The machine is :class:`stress.stateful._single.
Lockstep`; tests/test_stateful_single_checker.py covers its kill-matrix checker.
"""

from __future__ import annotations

import pytest
from hypothesis import settings

from aioctx_verify.impl import AioContext, RealPlatform
from aioctx_verify.model import SequentialContext, SequentialUsageError, WouldBlockForever
from aioctx_verify.model._sequential import IDLE_BH_TIMEOUT_NS
from aioctx_verify.stress.stateful._single import Lockstep


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
# Lockstep: impl and the reference (the machine lives in stress.stateful._single, where the
# kill matrix's ``stateful_single`` checker runs it under mutants)
# ------------------------------------------------------------------------------------------
class LockstepUnderTest(Lockstep):
    """The library machine, with the test's own settings (the library class is untouched)."""


# The profile (tests/conftest.py) with at least 200 programs of up to 80 steps: each is a
# few milliseconds, so the ci profile stays well under 20 s.
_profile = settings.default
assert _profile is not None
LockstepUnderTest.TestCase.settings = settings(
    _profile,
    max_examples=max(_profile.max_examples, 200),
    stateful_step_count=80,
)
TestLockstep = LockstepUnderTest.TestCase
