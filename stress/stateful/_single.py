"""Single-thread lockstep: impl against the reference (:class:`model.SequentialContext`).

A Hypothesis rule-based state machine (:class:`Lockstep`) drives one impl context (through
:mod:`impl.qemu` *and* the Pythonic API, chosen per step) and a :class:`SequentialContext`
with the same calls: acquire / release (nested, and a refused release), BHs (new, schedule,
schedule_idle, cancel, delete, one-shot, use after delete), event notifiers and their
handlers (external or not, registered and removed also from inside callbacks),
VIRTUAL-clock timers with the clock frozen and advanced by hand, aio_disable/enable_external,
and aio_poll (blocking only when the reference says it returns at once or within a bounded
timeout).  Callbacks carry small effect programs run on both sides.  After every step the
return values, the log of callbacks run (in order) and the observable state must be equal;
the property monitors listen throughout and must report nothing.

tests/test_stateful_single.py runs it as a test (``Lockstep.TestCase``).  The kill-matrix
hook :func:`checker` (registered by :mod:`stress.mutation._matrix` as ``stateful_single``) runs it
under a mutant: batches of seeded Hypothesis runs until a failure or the time budget, then
shrinking bounded in time (one :class:`~aioctx_verify.stress.explore.SeededSearch`), all on a
worker thread over a :class:`SingleThreadPlatform`.

Failures are classified: a monitor violation gives its property (``via="monitor"``); a
lockstep mismatch (:class:`LockstepMismatch`) names what differed and the property it bears
on (lock depth / ownership: P1; BH state, the callback log where a BH or one-shot entry
differs, and aio_poll's progress: P2; a blocking poll that would never return: LIVE; notifier,
handler, timer, clock and external-client state: unclassified); an exception impl raised
where the reference did not is classified by its type
(:func:`~aioctx_verify.stress.mutation.property_of`: a refused release P1, a context used
without holding it P3, a deleted or freed BH P2), else by the rule that raised it (lock
rules P1, BH rules P2).  No verdict depends on wall-clock time: a step that would block
forever (a poll without timeout and nothing ready, a held mutex, a condition wait nothing
can notify; the machine has one thread) fails LIVE at once (:class:`BlockedForever`), a step
that keeps polling fails LIVE after :data:`MAX_POLLS_PER_STEP` polls, and a search that
outlives its wall-clock bound ends ``inconclusive``, never as a failure.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec

from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from aioctx_verify.impl import (
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
from aioctx_verify.impl import qemu as q
from aioctx_verify.model import SequentialContext, SequentialUsageError
from aioctx_verify.model._sequential import IDLE_BH_TIMEOUT_NS
from aioctx_verify.properties import MonitorSet, monitoring
from aioctx_verify.vocab import PropertyName

from ..explore import SeededSearch, replay_line
from ..mutation import CellBudget, CheckOutcome, MutantLike, PropertyFailure, Via, property_of

if TYPE_CHECKING:
    from hypothesis import settings as Settings

__all__ = [
    "EFFECT_KINDS",
    "MAX_BHS",
    "MAX_NOTIFIERS",
    "MAX_TIMERS",
    "Effects",
    "Lockstep",
    "LockstepFailure",
    "LockstepMismatch",
    "MAX_POLLS_PER_STEP",
    "BlockedForever",
    "SearchResult",
    "SingleThreadPlatform",
    "checker",
    "effects",
    "search",
]

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



class LockstepMismatch(PropertyFailure):
    """impl and the reference disagreed; ``prop`` is the property it bears on (or None)."""


class BlockedForever(LockstepMismatch):
    """impl would block in a wait that nothing can end: the lockstep machine has one
    thread, so a held mutex, a condition wait without timeout or a poll without timeout
    and nothing ready can never be released, notified or woken (a LIVE failure, decided
    by the structure of the run and not by how long it took)."""

    def __init__(self, message: str) -> None:
        super().__init__("LIVE", message)


#: Polls one lockstep step may make before it counts as a livelock (a loop that keeps
#: polling without returning: progress measured in work, not seconds).  A correct step
#: makes a handful; aio_poll runs at most a few iterations per call.
MAX_POLLS_PER_STEP = 10_000


class _STMutex:
    """A mutex of :class:`SingleThreadPlatform`: a blocking acquire of a held one is a
    :class:`BlockedForever` (no other thread exists to release it)."""

    __slots__ = ("_lock", "_name")

    def __init__(self, name: str) -> None:
        self._lock = threading.Lock()
        self._name = name

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._lock.acquire(False):
            return True
        if not blocking or (timeout is not None and timeout >= 0):
            return False  # virtual time: the timeout passes at once, nothing can change
        raise BlockedForever(
            f"mutex {self._name or '?'} is held and acquired again without a timeout in the "
            "only thread there is: it would wait forever"
        )

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class _STCondition:
    """A condition of :class:`SingleThreadPlatform`: nothing else can notify it, so a
    wait with a timeout returns False at once (virtual time) and one without is a
    :class:`BlockedForever`."""

    __slots__ = ("_m",)

    def __init__(self, mutex: _STMutex) -> None:
        self._m = mutex

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is None:
            raise BlockedForever(
                "a condition wait without timeout in the only thread there is: nothing "
                "could ever notify it"
            )
        return False

    def notify(self, n: int = 1) -> None:
        pass

    def notify_all(self) -> None:
        pass

    def __enter__(self) -> bool:
        return self._m.acquire()

    def __exit__(self, *exc: object) -> None:
        self._m.release()


class _STPoller:
    """A poller of :class:`SingleThreadPlatform`: looks at the fds without sleeping.

    Nothing outside the one thread can make an fd ready, so sleeping for a finite timeout
    changes nothing but the wall clock: the poll returns what is ready now (virtual time
    jumps over the timeout).  An unbounded poll with nothing ready is a
    :class:`BlockedForever`; more than :data:`MAX_POLLS_PER_STEP` polls in one step a
    livelock (:attr:`counter` is reset by every step).
    """

    __slots__ = ("_counter", "_inner")

    def __init__(self, inner: Any, counter: list[int]) -> None:
        self._inner = inner
        self._counter = counter

    def register(self, fd: int, events: int) -> None:
        self._inner.register(fd, events)

    def unregister(self, fd: int) -> None:
        self._inner.unregister(fd)

    def poll(self, timeout_ns: int) -> Sequence[tuple[int, int]]:
        self._counter[0] += 1
        if self._counter[0] > MAX_POLLS_PER_STEP:
            raise LockstepMismatch(
                "LIVE",
                f"livelock: one step polled over {MAX_POLLS_PER_STEP} times without returning",
            )
        ready: Sequence[tuple[int, int]] = self._inner.poll(0)
        if ready or timeout_ns >= 0:
            return ready
        raise BlockedForever(
            "aio_poll would sleep with no timeout and nothing ready, in the only thread "
            "there is: nothing could ever wake it"
        )


class SingleThreadPlatform(RealPlatform):
    """:class:`~aioctx_verify.impl.RealPlatform` for a run with one thread and a frozen
    clock: every wait either ends at once (virtual time) or is a :class:`BlockedForever`.

    The lockstep machine runs on it, so whether a step blocks is decided by the state of
    the run, never by a wall-clock watchdog: the machine's verdicts do not depend on the
    machine's speed.  ``polls`` counts the polls of the running step.
    """

    def __init__(self) -> None:
        super().__init__()
        self.polls = [0]

    def mutex(self, name: str = "") -> _STMutex:
        return _STMutex(name)

    def condition(self, mutex: Any) -> _STCondition:
        if not isinstance(mutex, _STMutex):
            raise TypeError(
                f"SingleThreadPlatform.condition needs one of its own mutexes, not "
                f"{type(mutex).__name__}; create it with platform.mutex()"
            )
        return _STCondition(mutex)

    def poller(self) -> _STPoller:
        return _STPoller(super().poller(), self.polls)


@dataclass(frozen=True, slots=True)
class LockstepFailure:
    """The first failure of one lockstep run.

    Attributes:
        prop: ``P1``/``P2``/``P3``/``LIVE``, or None when the difference names none.
        via: ``monitor``, ``lockstep`` (a compared value differed, or a step would block
            forever), or ``exception`` (impl raised where the reference did not).
        message: what differed, after which rule.
        steps: rule steps run, the failing one included.
        program: the names of those rules, in order (then ``teardown`` when the failure
            came from the end-of-run checks).
    """

    prop: PropertyName | None
    via: Via
    message: str
    steps: int
    program: tuple[str, ...]


def _expect_raises(impl_exc: type[BaseException], call: Callable[[], object],
                   prop: PropertyName | None, what: str) -> None:
    """``call`` must raise ``impl_exc`` (the reference refused the same call)."""
    try:
        call()
    except impl_exc:
        return
    raise LockstepMismatch(
        prop, f"{what}: impl accepted it, the reference refused it ({impl_exc.__name__} expected)"
    )


def _same(prop: PropertyName | None, what: str, got: object, want: object) -> None:
    if got != want:
        raise LockstepMismatch(prop, f"{what}: impl {got!r} != reference {want!r}")


_P = ParamSpec("_P")


def _step(
    prop: PropertyName | None,
) -> Callable[
    [Callable[Concatenate[Lockstep, _P], None]], Callable[Concatenate[Lockstep, _P], None]
]:
    """Mark a rule body: counts the step (and resets its poll count) and records a
    failure, classified with ``prop`` unless the failure says better."""

    def deco(
        fn: Callable[Concatenate[Lockstep, _P], None],
    ) -> Callable[Concatenate[Lockstep, _P], None]:
        @functools.wraps(fn)
        def run(self: Lockstep, /, *args: _P.args, **kwargs: _P.kwargs) -> None:
            self.steps += 1
            self.program.append(fn.__name__)
            self.platform.polls[0] = 0
            try:
                fn(self, *args, **kwargs)
            except Exception as e:
                self._failed(e, prop)
                raise

        return run

    return deco


def _checked(fn: Callable[[Lockstep], None]) -> Callable[[Lockstep], None]:
    """Mark an invariant: records a failure (the mismatch names its own property)."""

    @functools.wraps(fn)
    def run(self: Lockstep) -> None:
        try:
            fn(self)
        except Exception as e:
            self._failed(e, None)
            raise

    return run


class Lockstep(RuleBasedStateMachine):
    """impl and :class:`SequentialContext` driven with the same calls, compared every step.

    Runs on a :class:`SingleThreadPlatform`: a step that would block forever fails LIVE
    (:class:`BlockedForever`) at once, a step that keeps polling fails LIVE after
    :data:`MAX_POLLS_PER_STEP` polls; no verdict depends on wall-clock time.

    Instance attributes read by :func:`search`:
        steps / program: rules run so far; failure: the first failure; sink: called with it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.steps = 0
        self.program: list[str] = []
        self.failure: LockstepFailure | None = None
        self.sink: Callable[[LockstepFailure], None] | None = None
        self.stack = ExitStack()
        self.platform = SingleThreadPlatform()
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
        self.timer_scales: list[int] = []
        self.log: list[tuple[Any, ...]] = []
        self.ref_log: list[tuple[Any, ...]] = []
        # One-shot BHs are named by a per-side counter: equal sequences of calls give
        # equal names, so the logs compare.
        self.impl_tag = 0
        self.ref_tag = 0

    # -- failures ------------------------------------------------------------------------------
    def _failed(self, exc: BaseException, prop: PropertyName | None) -> None:
        if self.failure is not None:
            return
        last = self.program[-1] if self.program else "start"
        where = f"after {self.steps} step(s), last {last}"
        if self.ms.violations:
            v = self.ms.violations[0]
            f = LockstepFailure(v.prop, "monitor", f"{v} ({where})", self.steps,
                                tuple(self.program))
        elif isinstance(exc, LockstepMismatch):
            f = LockstepFailure(exc.prop, "lockstep", f"{exc} ({where})", self.steps,
                                tuple(self.program))
        else:
            f = LockstepFailure(property_of(exc) or prop, "exception",
                                f"{type(exc).__name__}: {exc} ({where})", self.steps,
                                tuple(self.program))
        self.failure = f
        if self.sink is not None:
            self.sink(f)

    def teardown(self) -> None:
        self.program.append("teardown")  # named in a failure found from here on
        self.platform.polls[0] = 0
        try:
            try:
                self.stack.close()  # the monitors' end-of-run rules
                assert self.ms.violations == [], [str(v) for v in self.ms.violations]
            except Exception as e:
                self._failed(e, None)
                raise
        finally:
            # Bounded: a mutant may keep held_by_me() true however often it is released.
            for _ in range(1000):
                if not self.ctx.held_by_me():
                    break
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
    @_step("P1")
    def acquire(self, qemu: bool) -> None:
        if qemu:
            q.aio_context_acquire(self.ctx)
        else:
            got = self.ctx.acquire()
            if got is not True:
                raise LockstepMismatch("P1", f"AioContext.acquire() returned {got!r}, not True")
        self.ref.acquire()

    @precondition(lambda self: self.ref.depth > 0)
    @rule(qemu=st.booleans())
    @_step("P1")
    def release(self, qemu: bool) -> None:
        (q.aio_context_release if qemu else AioContext.release)(self.ctx)
        self.ref.release()

    @precondition(lambda self: self.ref.depth == 0)
    @rule()
    @_step("P1")
    def release_not_held_is_refused(self) -> None:
        _expect_raises(LockNotHeldError, lambda: q.aio_context_release(self.ctx), "P1",
                       "aio_context_release of a context not held")
        _expect_raises(SequentialUsageError, self.ref.release, None, "reference release")

    # -- bottom halves -------------------------------------------------------------------------
    @precondition(lambda self: len(self.bhs) < MAX_BHS)
    @rule(prog=effects, qemu=st.booleans())
    @_step("P2")
    def bh_new(self, prog: Effects, qemu: bool) -> None:
        i = len(self.bhs)
        cb = self._impl_bh(i, prog)
        bh = q.aio_bh_new(self.ctx, cb, None) if qemu else self.ctx.bh_new(cb)
        self.bhs.append(bh)
        self.ref_bhs.append(self.ref.bh_new(self._ref_bh(i, prog)))

    @precondition(lambda self: self.bhs)
    @rule(data=st.data(), op=st.sampled_from(["schedule", "schedule_idle", "cancel", "delete"]),
          qemu=st.booleans())
    @_step("P2")
    def bh_op(self, data: st.DataObject, op: str, qemu: bool) -> None:
        i = data.draw(st.integers(0, len(self.bhs) - 1), label="bh")
        bh, b = self.bhs[i], self.ref_bhs[i]
        ref_op = getattr(self.ref, op)
        call: Callable[[], None] = (
            (lambda: getattr(q, f"qemu_bh_{op}")(bh)) if qemu else getattr(bh, op)
        )
        if self.ref.is_deleted(b):
            _expect_raises(BHDeletedError, call, "P2", f"{op} of a deleted BH")
            _expect_raises(SequentialUsageError, lambda: ref_op(b), None, f"reference {op}")
            return
        call()
        ref_op(b)

    @precondition(lambda self: any(not bh.deleted for bh in self.bhs))
    @rule(data=st.data(), qemu=st.booleans())
    @_step("P2")
    def bh_idle_then_schedule(self, data: st.DataObject, qemu: bool) -> None:
        """The one sequence where impl and QEMU 2.4 differ (see aioctx_verify.model._sequential)."""
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
    @_step("P2")
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
    @_step(None)
    def notifier_new(self, active: bool) -> None:
        self.notifiers.append(q.event_notifier_init(active, self.platform))
        self.ref_notifiers.append(self.ref.notifier_new(active))

    @precondition(lambda self: self.notifiers)
    @rule(data=st.data(), qemu=st.booleans())
    @_step(None)
    def notifier_set(self, data: st.DataObject, qemu: bool) -> None:
        i = data.draw(st.integers(0, len(self.notifiers) - 1), label="notifier")
        if qemu:
            q.event_notifier_set(self.notifiers[i])
        else:
            self.notifiers[i].set()
        self.ref.notifier_set(self.ref_notifiers[i])

    @precondition(lambda self: self.notifiers)
    @rule(data=st.data(), qemu=st.booleans())
    @_step(None)
    def notifier_test_and_clear(self, data: st.DataObject, qemu: bool) -> None:
        i = data.draw(st.integers(0, len(self.notifiers) - 1), label="notifier")
        n = self.notifiers[i]
        got = q.event_notifier_test_and_clear(n) if qemu else n.test_and_clear()
        _same(None, f"event_notifier_test_and_clear(notifier {i})", got,
              self.ref.notifier_test_and_clear(self.ref_notifiers[i]))

    @precondition(lambda self: self.notifiers)
    @rule(data=st.data(), prog=effects, external=st.booleans(), qemu=st.booleans())
    @_step(None)
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
    @_step(None)
    def handler_remove(self, data: st.DataObject, qemu: bool) -> None:
        i = data.draw(st.integers(0, len(self.notifiers) - 1), label="notifier")
        if qemu:
            q.aio_set_event_notifier(self.ctx, self.notifiers[i], None)
        else:
            self.ctx.set_event_notifier(self.notifiers[i], None)
        self.ref.set_event_notifier(self.ref_notifiers[i], None)

    @rule(qemu=st.booleans())
    @_step(None)
    def disable_external(self, qemu: bool) -> None:
        (q.aio_disable_external if qemu else AioContext.disable_external)(self.ctx)
        self.ref.disable_external()

    @rule(qemu=st.booleans())
    @_step(None)
    def enable_external(self, qemu: bool) -> None:
        call = q.aio_enable_external if qemu else AioContext.enable_external
        if not self.ref.external_disabled:
            _expect_raises(UsageError, lambda: call(self.ctx), None,
                           "aio_enable_external while not disabled")
            _expect_raises(SequentialUsageError, self.ref.enable_external, None,
                           "reference enable_external")
            return
        call(self.ctx)
        self.ref.enable_external()

    # -- timers and the virtual clock ----------------------------------------------------------
    @precondition(lambda self: len(self.timers) < MAX_TIMERS)
    @rule(prog=effects, qemu=st.booleans(),
          scale=st.sampled_from([q.SCALE_NS, q.SCALE_NS, 2, 3, 7, 0, -1, -q.SCALE_MS]))
    @_step(None)
    def timer_new(self, prog: Effects, qemu: bool, scale: int) -> None:
        """A timer of any scale (any positive int is one: expiries are in its units); a
        scale of zero or below is refused by both, and leaves nothing behind."""
        k = len(self.timers)
        cb = self._impl_timer(k, prog)

        def make() -> QEMUTimer:
            if qemu:
                return q.aio_timer_new(self.ctx, q.QEMU_CLOCK_VIRTUAL, scale, cb, None)
            return self.ctx.timer_new(q.QEMU_CLOCK_VIRTUAL, scale, cb)

        if scale <= 0:
            _expect_raises(UsageError, make, None, f"aio_timer_new with scale {scale}")
            _expect_raises(SequentialUsageError,
                           lambda: self.ref.timer_new(self._ref_timer(k, prog), scale), None,
                           "reference timer_new")
            return
        self.timers.append(make())
        self.timer_scales.append(scale)
        self.ref_timers.append(self.ref.timer_new(self._ref_timer(k, prog), scale))

    @precondition(lambda self: self.timers)
    @rule(data=st.data(), delta=st.integers(-20, 60), qemu=st.booleans())
    @_step(None)
    def timer_mod(self, data: st.DataObject, delta: int, qemu: bool) -> None:
        k = data.draw(st.integers(0, len(self.timers) - 1), label="timer")
        expire = self.ref.clock_ns // self.timer_scales[k] + delta  # in the timer's units
        if qemu:
            q.timer_mod(self.timers[k], expire)
        else:
            self.timers[k].mod(expire)
        self.ref.timer_mod(self.ref_timers[k], expire)

    @precondition(lambda self: self.timers)
    @rule(data=st.data(), qemu=st.booleans())
    @_step(None)
    def timer_del(self, data: st.DataObject, qemu: bool) -> None:
        k = data.draw(st.integers(0, len(self.timers) - 1), label="timer")
        if qemu:
            q.timer_del(self.timers[k])
        else:
            self.timers[k].delete()
        self.ref.timer_del(self.ref_timers[k])

    @rule(ns=st.integers(0, 60), qemu=st.booleans())
    @_step(None)
    def advance_clock(self, ns: int, qemu: bool) -> None:
        if qemu:
            q.qemu_clock_advance_virtual(ns, self.platform)
        else:
            self.clocks.advance_virtual(ns)
        self.ref.advance(ns)

    # -- the loop ------------------------------------------------------------------------------
    @rule(qemu=st.booleans(), held=st.booleans())
    @_step("P2")
    def poll_nonblocking(self, qemu: bool, held: bool) -> None:
        if held:  # the Pythonic face: `with ctx:` around the iteration
            with self.ctx:
                got = self.ctx.aio_poll(False)
        else:
            got = q.aio_poll(self.ctx, False) if qemu else self.ctx.aio_poll(False)
        _same("P2", "aio_poll(false) progress", got, self.ref.aio_poll(False))

    @precondition(
        lambda self: not self.ref.would_block_forever()
        and self.ref.compute_timeout() <= IDLE_BH_TIMEOUT_NS
    )
    @rule(qemu=st.booleans())
    @_step("P2")
    def poll_blocking(self, qemu: bool) -> None:
        # The reference says this returns within 10 ms (of virtual time).  Should impl
        # disagree and sleep with no timeout, the platform sees that nothing could wake
        # it and the step fails LIVE (BlockedForever), in no time.
        try:
            got = q.aio_poll(self.ctx, True) if qemu else self.ctx.aio_poll(True)
        except BlockedForever as e:
            raise BlockedForever(
                f"aio_poll(true): {e} although the reference had work ready or due"
            ) from None
        _same("P2", "aio_poll(true) progress", got, self.ref.aio_poll(True))

    # -- after every step ----------------------------------------------------------------------
    @invariant()
    @_checked
    def same_callbacks_in_same_order(self) -> None:
        if self.log == self.ref_log:
            return
        k = next(
            (j for j, (a, b) in enumerate(zip(self.log, self.ref_log, strict=False)) if a != b),
            min(len(self.log), len(self.ref_log)),
        )
        first = [e[0] for e in (self.log[k:k + 1] + self.ref_log[k:k + 1])]
        prop: PropertyName | None = "P2" if {"bh", "oneshot"} & set(first) else None
        raise LockstepMismatch(
            prop,
            f"callback log differs at entry {k}: impl {self.log[k:k + 4]!r}... != "
            f"reference {self.ref_log[k:k + 4]!r}... (impl ran {len(self.log)}, "
            f"reference {len(self.ref_log)})",
        )

    @invariant()
    @_checked
    def same_observable_state(self) -> None:
        r = self.ref
        _same("P1", "lock depth", self.ctx.statistics().lock.depth, r.depth)
        _same("P1", "held_by_me()", self.ctx.held_by_me(), r.depth > 0)
        _same("P2", "BH deleted flags", [bh.deleted for bh in self.bhs],
              [r.is_deleted(b) for b in self.ref_bhs])
        _same("P2", "BH scheduled flags", [bh.is_scheduled for bh in self.bhs],
              [r.is_scheduled(b) for b in self.ref_bhs])
        _same(None, "timers pending", [t.pending() for t in self.timers],
              [r.timer_pending(k) for k in self.ref_timers])
        _same(None, "timer expiries", [t.expire_ns() for t in self.timers],
              [r.timer_expire_ns(k) for k in self.ref_timers])
        _same(None, "external disabled", self.ctx.external_disabled, r.external_disabled)
        _same(None, "virtual clock", q.qemu_clock_get_ns(q.QEMU_CLOCK_VIRTUAL, self.platform),
              r.clock_ns)
        _same(None, "handlers registered", self.ctx.statistics().handlers,
              sum(r.has_handler(n) for n in self.ref_notifiers))

    @invariant()
    @_checked
    def monitors_quiet(self) -> None:
        assert self.ms.violations == [], [str(v) for v in self.ms.violations]


# ------------------------------------------------------------------------------------------
# Search: the kill-matrix hook
# ------------------------------------------------------------------------------------------
@dataclass(slots=True)
class SearchResult:
    """What :func:`search` found.

    Attributes:
        found: the smallest failure recorded (fewest steps), or None.
        first: the first failure recorded (before shrinking).
        runs: lockstep programs run (shrinking included).
        seconds_to_find: wall time until the first failure, or None.
        seconds: wall time of the whole search.
        inconclusive: the search did not end within its wall-clock bound (a very slow
            machine, or a step looping outside the platform); the worker thread was
            abandoned.  Not a failure: the search simply ended early.
        failures: every failure recorded, in order.
    """

    found: LockstepFailure | None = None
    first: LockstepFailure | None = None
    runs: int = 0
    seconds_to_find: float | None = None
    seconds: float = 0.0
    inconclusive: bool = False
    failures: list[LockstepFailure] = field(default_factory=list)
    #: The thread the programs ran on (still alive, busy in impl, if ``inconclusive``).
    worker: threading.Thread | None = None

    @property
    def killed(self) -> bool:
        return self.found is not None


def search(
    *,
    seconds: float = 10.0,
    seed: int = 0,
    shrink_seconds: float | None = None,
    step_count: int = 50,
    chunk: int = 25,
    max_examples: int | None = None,
    give_up_after: float | None = None,
) -> SearchResult:
    """Run :class:`Lockstep` programs until one fails, ``max_examples`` ran or ``seconds``
    pass, then shrink.

    Chunks of ``chunk`` Hypothesis examples, each chunk seeded from ``seed`` (so a search
    is reproducible; no example database), programs of up to ``step_count`` steps.  After
    the first failure Hypothesis shrinks for at most ``shrink_seconds`` (default
    ``max(1, seconds / 2)``); then every further candidate is rejected unrun, so Hypothesis
    ends quickly.  The reported failure is the smallest one recorded.

    Everything runs on a worker thread (the context's home thread) over a
    :class:`SingleThreadPlatform`, where a step that would block forever, or keeps polling,
    fails at once by the run's structure.  Wall-clock time only ends the search: should it
    still run ``give_up_after`` seconds (default ``seconds + shrink + 30``) after it started
    (a machine far too slow, or a step spinning outside the platform), the worker is
    abandoned and the result is ``inconclusive`` (failures recorded so far are kept).
    """
    from hypothesis import reject
    from hypothesis import seed as hseed
    from hypothesis.stateful import run_state_machine_as_test

    shrink_for = shrink_seconds if shrink_seconds is not None else max(1.0, seconds / 2)
    driver: SeededSearch[LockstepFailure] = SeededSearch(
        seed=seed, seconds=seconds, shrink_seconds=shrink_for, key=lambda f: f.steps,
        chunk=chunk, max_examples=max_examples,
    )
    errors: list[BaseException] = []

    def factory() -> Lockstep:
        if not driver.allows():
            reject()  # out of time: Hypothesis counts the example as invalid, unrun
        m = Lockstep()
        m.sink = driver.record
        driver.runs += 1
        return m

    def run_chunk(settings: Settings, chunk_seed: int) -> None:
        def make() -> Lockstep:
            return factory()

        hseed(chunk_seed)(make)
        # Through Any: hypothesis' annotation of this function differs between releases
        # (untyped in some, type[RuleBasedStateMachine] in others).
        run_machine: Any = run_state_machine_as_test
        run_machine(make, settings=settings)

    def work() -> None:
        try:
            driver.run(run_chunk, stateful_step_count=step_count)
        except BaseException as e:
            errors.append(e)

    done = threading.Event()

    def job() -> None:
        try:
            work()
        finally:
            done.set()

    runner = _SearchThread.submit(job)
    bound = give_up_after if give_up_after is not None else seconds + shrink_for + 30.0
    inconclusive = not done.wait(max(0.0, driver.t0 + bound - time.perf_counter()))
    if inconclusive:
        runner.retire()  # its thread ends once free; the next search gets a new one
        driver.abandon()
    if errors and not driver.failures:
        raise errors[0]
    return SearchResult(
        found=driver.found,
        first=driver.first,
        runs=driver.runs,
        seconds_to_find=driver.seconds_to_find,
        seconds=driver.elapsed(),
        inconclusive=inconclusive,
        failures=list(driver.failures),
        worker=runner.thread,
    )


class _SearchThread:
    """The long-lived thread that runs every search's Hypothesis loop in this process.

    Why not a fresh thread per search: on a thread's first run Hypothesis creates its
    per-thread PRNG and registers it with ``gc.collect()`` and ``gc.get_referrers()``
    (``hypothesis.internal.entropy.register_random``), a scan of the whole heap.  In a
    kill-matrix worker whose heap earlier cells had grown (model states, explorer traces)
    that took the whole budget of a cell, which then ran no program at all.  A search
    that does not end in time retires its thread (it ends once freed); the next search
    starts a new one.
    """

    _lock = threading.Lock()
    _current: _SearchThread | None = None

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.retired = False
        self.thread = threading.Thread(target=self._loop, name="stateful-single", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.retired:
            job = self.jobs.get()
            job()

    @classmethod
    def submit(cls, job: Callable[[], None]) -> _SearchThread:
        with cls._lock:
            cur = cls._current
            if cur is None or cur.retired or not cur.thread.is_alive():
                cur = cls._current = cls()
        cur.jobs.put(job)
        return cur

    def retire(self) -> None:
        self.retired = True
        with _SearchThread._lock:
            if _SearchThread._current is self:
                _SearchThread._current = None


#: Work units (:class:`~aioctx_verify.stress.mutation.CellBudget`) of one lockstep program
#: (about 15 ms at idle).
PROGRAM_WORK = 3


def checker(
    mutant: MutantLike,
    seed: int,
    seconds: float | CellBudget,
    *,
    max_examples: int | None = None,
) -> CheckOutcome:
    """Kill-matrix hook ``stateful_single``: the lockstep search under ``mutant.apply()``
    until a failure, ``max_examples`` lockstep programs (a work budget, the same on any
    machine) or ``seconds`` (then at most ``max(1, seconds / 2)`` of shrinking).

    ``seconds`` may be a :class:`~aioctx_verify.stress.mutation.CellBudget`: its work is
    ``max_examples`` (:data:`PROGRAM_WORK` units each), its seconds a safety cap.  With a
    work budget, a search that found nothing survives only if it ran every program; when
    the time ran out first it is ``inconclusive``.
    """
    cell = CellBudget.of(seconds)
    if max_examples is None:
        max_examples = cell.count(PROGRAM_WORK)
    with mutant.apply():
        res = search(
            seconds=cell.seconds,
            seed=seed,
            max_examples=max_examples,
            shrink_seconds=max(1.0, cell.nominal_seconds / 2),
        )
    if res.found is None and res.runs == 0:
        # Nothing ran before the bound: no evidence either way (a loaded machine, or a
        # long-lived kill-matrix worker process slow to start Hypothesis): inconclusive.
        return CheckOutcome.inconclusive(
            res.seconds,
            f"stateful-single: inconclusive: no lockstep program ended within "
            f"{res.seconds:.1f} s (machine too slow?)",
        )
    if res.found is None and res.inconclusive:
        return CheckOutcome.inconclusive(
            res.seconds,
            f"stateful-single: inconclusive: machine too slow: the search did not end in "
            f"{res.seconds:.1f} s ({res.runs} lockstep programs, none failed)",
        )
    if res.found is None and max_examples is not None and res.runs < max_examples:
        return CheckOutcome.inconclusive(
            res.seconds,
            f"stateful-single: inconclusive: {res.runs} of {max_examples} lockstep programs "
            f"within {cell.seconds:g} s (machine too slow?), none failed",
        )
    if res.found is None:
        return CheckOutcome.survived(
            res.seconds,
            f"stateful-single: no failure in {res.runs} lockstep programs ({res.seconds:.1f} s)",
        )
    f = res.found
    first = res.first
    prop = f.prop
    detail = (
        f"stateful-single: {prop or 'unclassified'} via {f.via}: {f.message} | shrunk to "
        f"{f.steps} step(s)"
        + (f" (found with {first.steps})" if first is not None else "")
        + f"; {res.runs} programs | seed {seed} | program: {', '.join(f.program)}"
        + f" | {replay_line(f'single:seed={seed}', mutant.name)}"
    )
    return CheckOutcome.kill(
        res.seconds_to_find or res.seconds, detail, prop, f.via, steps=f.steps
    )
