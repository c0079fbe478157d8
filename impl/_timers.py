"""Clocks and per-context timer lists.

Prior art: QEMU's QEMUTimerList / QEMUTimerListGroup (qemu-timer.c, 2013-2014, Alex Bligh's
"aio / timers" series; shared/reference/qemu-semantics.md section 7).  Behaviour kept:

* Three clocks, run in this order: REALTIME (monotonic), VIRTUAL (guest time: stops with
  the VM), HOST (wall clock, may jump).  Scales: SCALE_NS=1, SCALE_US=1e3, SCALE_MS=1e6.
* Each context owns one timer list per clock, sorted by expiry, FIFO among equal expiries.
  ``timer_mod`` re-inserts and, when the timer became the list head, notifies the context
  (``aio_notify``) so a blocked ``aio_poll`` recomputes its timeout.  ``timer_del`` does not
  notify.  All three are thread-safe (a per-list mutex).
* Expiry runs inside ``aio_poll`` (last step of dispatch); the clock is read once per list
  per run, so a callback that re-arms for a time not after that reading runs again in the
  same run, and one that re-arms later does not.
* ``qemu_clock_enable(clock, False)``: the list's deadline is "none" and nothing runs.

Our addition for deterministic tests: the VIRTUAL clock can be frozen (``stop``) and moved
forward by hand (``advance``), like trio's MockClock; both notify every context with a
VIRTUAL timer so the new deadline is seen at once.
PYTEST_DONT_REWRITE (why: impl/__init__.py)."""

from __future__ import annotations

import bisect
import enum
from collections.abc import Callable
from typing import Any

from ._errors import CallbackError, TimerFreedError, UsageError, callable_name, check_callable
from ._platform import AtomicCell, Ordering, Platform, TraceEvent, peek_per_platform, per_platform

_RELAXED = Ordering.RELAXED

__all__ = [
    "SCALE_MS",
    "SCALE_NS",
    "SCALE_US",
    "ClockType",
    "Clocks",
    "QEMUTimer",
    "TimerList",
    "TimerListGroup",
    "clocks_for",
    "peek_clocks",
]

SCALE_NS = 1
SCALE_US = 1_000
SCALE_MS = 1_000_000


class ClockType(enum.IntEnum):
    """QEMU's clock types, in the order timers are run."""

    REALTIME = 0
    VIRTUAL = 1
    HOST = 2


class Clocks:
    """The clocks of one platform (QEMU has one set per process)."""

    def __init__(self, platform: Platform) -> None:
        self._p = platform
        self._mutex = platform.mutex("clocks")
        self._virtual_offset = 0
        self._virtual_frozen: int | None = None
        # qemu_clock_enable writes these from any thread while pollers read them without a
        # lock: relaxed cells (QEMU's plain bool).  Enabling notifies every timer list
        # (aio_notify's full fence, paired with the poller's after notify_me), so a poller
        # about to sleep sees the clock enabled or is woken.
        self._enabled: dict[ClockType, AtomicCell[bool]] = {
            c: platform.atomic(True, f"clock.{c.name.lower()}.enabled") for c in ClockType
        }
        # The timer lists of the contexts not yet finalized (timerlistgroup_deinit removes a
        # context's lists).  Insertion-ordered and held strongly, so which lists a clock
        # change notifies, and in what order, is a function of the program alone (a weak
        # map would drop a dead context's lists whenever the garbage collector ran, and the
        # controlled scheduler could not replay the run step by step).
        self._lists: dict[int, TimerList] = {}
        self._next_list = 0

    def get_ns(self, clock: ClockType) -> int:
        if clock is ClockType.REALTIME:
            return self._p.monotonic_ns()
        if clock is ClockType.HOST:
            return self._p.wall_ns()
        if clock is ClockType.VIRTUAL:
            # Under the mutex the control functions write them with (QEMU reads the virtual
            # clock under timers_state.vm_clock_seqlock): a reader must not combine an
            # offset and a frozen value of two different states.
            with self._mutex:
                frozen = self._virtual_frozen
                if frozen is not None:
                    return frozen
                return self._p.monotonic_ns() + self._virtual_offset
        raise UsageError(f"unknown clock {clock!r}; use QEMU_CLOCK_REALTIME, _VIRTUAL or _HOST")

    # -- virtual clock control ----------------------------------------------------------------
    def stop_virtual(self) -> None:
        """Freeze virtual time (as when the VM stops)."""
        with self._mutex:
            if self._virtual_frozen is None:
                self._virtual_frozen = self._p.monotonic_ns() + self._virtual_offset

    def start_virtual(self) -> None:
        """Let virtual time run again from where it was frozen."""
        with self._mutex:
            frozen = self._virtual_frozen
            if frozen is not None:
                self._virtual_offset = frozen - self._p.monotonic_ns()
                self._virtual_frozen = None
        self._notify(ClockType.VIRTUAL)

    def advance_virtual(self, ns: int) -> None:
        """Move virtual time forward by ``ns`` (frozen or running)."""
        if ns < 0:
            raise UsageError(f"cannot move the virtual clock back by {-ns} ns; time only advances")
        with self._mutex:
            if self._virtual_frozen is not None:
                self._virtual_frozen += ns
            else:
                self._virtual_offset += ns
        self._notify(ClockType.VIRTUAL)

    def virtual_running(self) -> bool:
        with self._mutex:
            return self._virtual_frozen is None

    def enable(self, clock: ClockType, enabled: bool) -> None:
        """``qemu_clock_enable``: a disabled clock's timers neither run nor bound a poll."""
        self._enabled[ClockType(clock)].store(bool(enabled), _RELAXED)
        if enabled:
            self._notify(ClockType(clock))

    def enabled(self, clock: ClockType) -> bool:
        return self._enabled[ClockType(clock)].load(_RELAXED)

    def peek_ns(self, clock: ClockType | int, monotonic_ns: int, wall_ns: int) -> int | None:
        """What :meth:`get_ns` would read, given the platform's two clock readings, without
        asking the platform (no scheduling point on a controlled one: monitors call it from
        inside the scheduler); ``None`` while the clock is disabled."""
        c = ClockType(clock)
        cell = self._enabled[c]
        word = getattr(cell, "value", None)  # both platforms keep the word there: no operation
        if not (cell.load(_RELAXED) if word is None else word):
            return None
        if c is ClockType.REALTIME:
            return monotonic_ns
        if c is ClockType.HOST:
            return wall_ns
        frozen = self._virtual_frozen
        return frozen if frozen is not None else monotonic_ns + self._virtual_offset

    def _register(self, tl: TimerList) -> int:
        with self._mutex:
            self._next_list += 1
            self._lists[self._next_list] = tl
            return self._next_list

    def _unregister(self, key: int) -> None:
        with self._mutex:
            self._lists.pop(key, None)

    def _notify(self, clock: ClockType) -> None:
        with self._mutex:
            lists = [tl for tl in self._lists.values() if tl.clock is clock]
        for tl in lists:
            tl.notify()


_CLOCKS = "_aioctx_clocks"


def clocks_for(platform: Platform) -> Clocks:
    """The clock set of ``platform`` (created on first use, kept on the platform)."""
    return per_platform(platform, _CLOCKS, lambda: Clocks(platform))


def peek_clocks(platform: object) -> Clocks | None:
    """The clock set of ``platform`` if one was made (never creates one: an observer must
    not allocate platform objects)."""
    got = peek_per_platform(platform, _CLOCKS)
    return got if isinstance(got, Clocks) else None


class QEMUTimer:
    """A timer bound to one context's list for one clock (``aio_timer_new``)."""

    __slots__ = ("_seq", "cb", "expire_time", "freed", "id", "opaque", "scale", "timer_list")

    def __init__(
        self, timer_list: TimerList, scale: int, cb: Callable[[Any], None], opaque: Any
    ) -> None:
        check_callable(cb, "timer callback")
        if not isinstance(scale, int) or scale <= 0:
            raise UsageError(f"timer scale must be a positive int (SCALE_NS/US/MS), got {scale!r}")
        self.timer_list = timer_list
        self.scale = scale
        self.cb = cb
        self.opaque = opaque
        self.expire_time = -1  # ns; -1 = not pending
        self.freed = False
        self._seq = 0
        self.id = timer_list.platform.new_id()

    def __repr__(self) -> str:
        return f"<QEMUTimer {self.id} {callable_name(self.cb)} expire={self.expire_ns()}>"

    def _check(self, what: str) -> None:
        if self.freed:
            raise TimerFreedError(
                f"{what} on timer {self.id} ({callable_name(self.cb)}) after timer_free; "
                "create a new timer with aio_timer_new"
            )

    def mod(self, expire: int) -> None:
        """Arm for ``expire`` (in the timer's scale) on its clock."""
        self._check("timer_mod")
        self.timer_list.mod(self, max(int(expire) * self.scale, 0))

    def mod_ns(self, expire_ns: int) -> None:
        self._check("timer_mod_ns")
        self.timer_list.mod(self, max(int(expire_ns), 0))

    def delete(self) -> None:
        """Disarm (``timer_del``); the timer stays usable."""
        self._check("timer_del")
        self.timer_list.remove(self)

    def pending(self) -> bool:
        """``timer_pending``: armed and not yet run or deleted (any thread)."""
        return self.expire_ns() >= 0

    def expire_ns(self) -> int:
        """``timer_expire_time_ns``: the deadline in ns, -1 when not pending (any thread).

        Read under the timer list's mutex, which timer_mod / timer_del (any thread) and
        the list's run write it under: QEMU reads it unlocked (a benign race in C); here
        that would be a data race on a plain field, which the race detector reports.
        """
        with self.timer_list._mutex:
            return self.expire_time

    def free(self) -> None:
        """Disarm and retire (``timer_free``); any later use raises."""
        self._check("timer_free")
        self.timer_list.remove(self)
        self.freed = True


def _key(t: QEMUTimer) -> tuple[int, int]:
    return (t.expire_time, t._seq)


class TimerList:
    """Active timers of one clock in one context, sorted by (expiry, arming order)."""

    def __init__(
        self, clocks: Clocks, clock: ClockType, notify: Callable[[], None], ctx_id: int
    ) -> None:
        self.platform = clocks._p
        self.clocks = clocks
        self.clock = clock
        self._notify_cb = notify
        self._ctx_id = ctx_id
        self._mutex = clocks._p.mutex(f"timerlist.{clock.name}")
        self._active: list[QEMUTimer] = []
        self._seq = 0
        self._key = clocks._register(self)

    def notify(self) -> None:
        self._notify_cb()

    def mod(self, t: QEMUTimer, expire_ns: int) -> None:
        with self._mutex:
            active = self._active
            if t.expire_time >= 0:
                active.remove(t)
            self._seq += 1
            t._seq = self._seq
            t.expire_time = expire_ns
            i = bisect.bisect_right(active, (expire_ns, t._seq), key=_key)
            active.insert(i, t)
            became_head = i == 0
            tr = self.platform.tracer
            if tr is not None:  # under the list's mutex: no run can be traced before it
                me = self.platform.current_thread()
                what = f"{self.clock.value}:{expire_ns}"
                tr(TraceEvent("timer_mod", me, self._ctx_id, t.id, what))
        if became_head:
            self._notify_cb()

    def remove(self, t: QEMUTimer) -> None:
        with self._mutex:
            if t.expire_time >= 0:
                self._active.remove(t)
                t.expire_time = -1
                tr = self.platform.tracer
                if tr is not None:
                    me = self.platform.current_thread()
                    tr(TraceEvent("timer_del", me, self._ctx_id, t.id))

    def deadline_ns(self) -> int:
        """Nanoseconds until the first expiry: -1 none (or clock disabled), 0 expired."""
        if not self._active:  # QEMU's unlocked timerlist_has_timers() pre-check
            return -1
        if not self.clocks._enabled[self.clock].load(_RELAXED):
            return -1
        # The head's expiry under the list's mutex, as QEMU's timerlist_deadline_ns reads it:
        # timer_mod / timer_del in another thread write it under the mutex.
        with self._mutex:
            active = self._active
            if not active:
                return -1
            head = active[0].expire_time
        return max(0, head - self.clocks.get_ns(self.clock))

    def run_timers(self) -> bool:
        """Run every timer expired at one clock reading; True if any ran."""
        if not self._active or not self.clocks._enabled[self.clock].load(_RELAXED):
            return False
        now = self.clocks.get_ns(self.clock)
        progress = False
        tr_platform = self.platform
        while True:
            with self._mutex:
                active = self._active
                if not active or active[0].expire_time > now:
                    break
                t = active.pop(0)
                t.expire_time = -1
                cb, opaque = t.cb, t.opaque
            tr = tr_platform.tracer
            if tr is not None:
                me = tr_platform.current_thread()
                tr(TraceEvent("timer_run_begin", me, self._ctx_id, t.id, callable_name(cb)))
            try:
                cb(opaque)
            except CallbackError:
                raise  # already names the callback that failed
            except Exception as e:
                raise CallbackError("timer", callable_name(cb), e) from e
            if tr is not None:
                tr(TraceEvent("timer_run_end", tr_platform.current_thread(), self._ctx_id, t.id))
            progress = True
        return progress


class TimerListGroup:
    """One timer list per clock, for one context."""

    def __init__(self, clocks: Clocks, notify: Callable[[], None], ctx_id: int) -> None:
        self.clocks = clocks
        self.lists = tuple(TimerList(clocks, c, notify, ctx_id) for c in ClockType)

    def close(self) -> None:
        """``timerlistgroup_deinit``: a clock change no longer notifies this context."""
        for tl in self.lists:
            self.clocks._unregister(tl._key)

    def deadline_ns(self) -> int:
        best = -1
        for tl in self.lists:
            d = tl.deadline_ns()
            if d == 0:
                return 0
            if d > 0 and (best < 0 or d < best):
                best = d
        return best

    def run_timers(self) -> bool:
        progress = False
        for tl in self.lists:
            if tl.run_timers():
                progress = True
        return progress

    def new_timer(
        self, clock: ClockType | int, scale: int, cb: Callable[[Any], None], opaque: Any
    ) -> QEMUTimer:
        try:
            c = ClockType(clock)
        except ValueError:
            raise UsageError(
                f"unknown clock {clock!r}; use QEMU_CLOCK_REALTIME, _VIRTUAL or _HOST"
            ) from None
        return QEMUTimer(self.lists[c], scale, cb, opaque)
