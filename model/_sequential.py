"""The single-thread reference: one AioContext as one thread sees it, in plain Python.

Why it exists: the explicit-state model (:mod:`model._actions`) abstracts values away to stay
finite; a Hypothesis stateful test needs the opposite, a reference that computes the
*observable results* of any sequence of calls made by one thread: what ``aio_poll`` returns,
which callbacks run and in which order, what ``event_notifier_test_and_clear`` and
``timer_pending`` answer.  :class:`SequentialContext` is that reference, written from QEMU's
semantics (shared/reference/qemu-semantics.md) and checked in lockstep against impl by
tests/test_stateful_single.py.  Nothing here touches a thread, a file descriptor or a clock.

Semantics (section numbers of qemu-semantics.md):

* lock (1, 2): ``acquire`` nests, ``release`` of a context not held is refused.  One thread
  never contends, so the contention kick and the wake-up protocol are invisible: with
  ``notify_me == 0`` outside a blocking poll's poll phase every ``aio_notify`` is dropped
  (5.5, 5.6), and the context's own notifier never becomes ready.
* bottom halves (4): newest-created first (4.2); ``scheduled`` is cleared before the callback,
  so a BH rescheduled from its own callback runs in the next ``aio_poll``, and a BH that
  schedules an *older* BH gets it run in the same walk (4.8); BHs created during a walk are
  not visited; an idle BH's run is not progress (4.4, 4.7); ``qemu_bh_delete`` unschedules
  for good (4.6); a one-shot BH (4.9, QEMU 2.8) runs once.
* handlers (6): newest-registered first (6.3); the poll result is taken before the BHs run
  (3.4, 3.8), so a notifier set by a BH callback is dispatched in the next iteration, and a
  handler whose notifier a BH callback cleared still runs; removal while dispatching only
  marks (6.4), a node re-registered in place keeps its readiness, a node added during the
  walk is not visited; external handlers are neither polled nor dispatched while
  ``disable_external`` is in force (6.5).
* timers (7): the VIRTUAL clock only, frozen unless :meth:`advance` moves it; one clock
  reading per run, expiry order by (time, arming order), ``timer_mod`` in the past clamps
  to 0 (7.4, 7.6).
* ``aio_poll(blocking)`` (3.1, 3.4, 3.6): BHs, then handlers, then timers; progress = a
  non-idle BH, a handler or a timer ran.  A blocking poll with nothing ready and no
  deadline would sleep forever: refused with :class:`WouldBlockForever` rather than hang.
  A finite wait (an idle BH's 10 ms, a timer on the frozen clock) elapses with nothing new.

Where impl and QEMU 2.4 differ, this module follows QEMU 2.4 by default:

* ``qemu_bh_schedule`` of a BH already scheduled *idle* returns at once in QEMU 2.0-2.4
  without clearing ``idle`` (4.3, async.c [A21]/[A22]), so its run is still not progress;
  impl follows the 2016 form ([A16]: ``idle = 0`` always, then the exchange), where it is.
  ``SequentialContext(schedule_clears_idle=True)`` reproduces impl's choice.

Not modelled: nested ``aio_poll`` from a callback (refused), fd handlers other than event
notifiers, write callbacks, REALTIME / HOST clocks, callbacks that raise.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field

from ._state import ModelError

__all__ = ["IDLE_BH_TIMEOUT_NS", "SequentialContext", "SequentialUsageError", "WouldBlockForever"]

#: A scheduled idle BH bounds a blocking poll to 10 ms (aio_compute_timeout, 3.6).
IDLE_BH_TIMEOUT_NS = 10_000_000

Callback = Callable[[], object]


class SequentialUsageError(ModelError):
    """The caller broke an API rule that impl refuses (QEMU would assert or corrupt memory)."""


class WouldBlockForever(ModelError):
    """``aio_poll(blocking=True)`` with nothing ready and no deadline: it would never return."""


@dataclass(slots=True, eq=False)
class _BH:
    cb: Callback
    scheduled: bool = False
    idle: bool = False
    deleted: bool = False


@dataclass(slots=True, eq=False)
class _Handler:
    notifier: int
    cb: Callback
    external: bool
    deleted: bool = False
    revents: bool = False


@dataclass(slots=True, eq=False)
class _Timer:
    cb: Callback
    scale: int
    expire_ns: int = -1  # -1: not pending
    seq: int = 0


@dataclass
class SequentialContext:
    """One AioContext as seen from one thread (see the module docstring for the rules).

    Objects are named by small integers handed out by the ``*_new`` methods; callbacks
    take no argument (a closure knows what it belongs to).

    Args:
        clock_ns: the VIRTUAL clock's initial reading.
        schedule_clears_idle: ``False`` (QEMU 2.4): scheduling an idle-scheduled BH keeps
            it idle; ``True`` (impl, QEMU 2016+): it becomes a normal, progress-making run.
    """

    clock_ns: int = 0
    schedule_clears_idle: bool = False
    depth: int = 0
    _bhs: list[_BH] = field(default_factory=list, repr=False)
    _bh_order: list[int] = field(default_factory=list, repr=False)  # creation order
    _walking_bh: int = 0
    _notifiers: list[bool] = field(default_factory=list, repr=False)
    _handlers: list[_Handler] = field(default_factory=list, repr=False)  # registration order
    _walking_handlers: int = 0
    _external_disable_cnt: int = 0
    _timers: list[_Timer] = field(default_factory=list, repr=False)
    _active: list[int] = field(default_factory=list, repr=False)  # timer ids, sorted
    _timer_seq: int = 0
    _in_poll: bool = False

    # ------------------------------------------------------------------------------------
    # The lock
    # ------------------------------------------------------------------------------------
    def acquire(self) -> None:
        """``aio_context_acquire``: nests."""
        self.depth += 1

    def release(self) -> None:
        """``aio_context_release``; refused when the context is not held."""
        if self.depth == 0:
            raise SequentialUsageError("release of a context that is not held")
        self.depth -= 1

    # ------------------------------------------------------------------------------------
    # Bottom halves
    # ------------------------------------------------------------------------------------
    def bh_new(self, cb: Callback) -> int:
        """``aio_bh_new``: a new, unscheduled BH (the newest: visited first)."""
        self._bhs.append(_BH(cb))
        b = len(self._bhs) - 1
        self._bh_order.append(b)
        return b

    def bh_schedule_oneshot(self, cb: Callback) -> int:
        """``aio_bh_schedule_oneshot``: a BH created scheduled and deleted; runs once."""
        b = self.bh_new(cb)
        bh = self._bhs[b]
        bh.scheduled = True
        bh.deleted = True
        return b

    def _bh(self, b: int, what: str) -> _BH:
        bh = self._bhs[b]
        if bh.deleted:
            raise SequentialUsageError(f"{what} of BH {b} after qemu_bh_delete")
        return bh

    def schedule(self, b: int) -> None:
        """``qemu_bh_schedule``: coalesces with a pending schedule."""
        bh = self._bh(b, "qemu_bh_schedule")
        if bh.scheduled and not self.schedule_clears_idle:
            return  # QEMU 2.4: already scheduled, idle flag untouched
        bh.idle = False
        bh.scheduled = True

    def schedule_idle(self, b: int) -> None:
        """``qemu_bh_schedule_idle``: nothing if already scheduled; the run is not progress."""
        bh = self._bh(b, "qemu_bh_schedule_idle")
        if not bh.scheduled:
            bh.idle = True
            bh.scheduled = True

    def cancel(self, b: int) -> None:
        """``qemu_bh_cancel``."""
        self._bh(b, "qemu_bh_cancel").scheduled = False

    def delete(self, b: int) -> None:
        """``qemu_bh_delete``: unscheduled, never runs again, any later use is refused."""
        bh = self._bh(b, "qemu_bh_delete")
        bh.scheduled = False
        bh.deleted = True

    def is_scheduled(self, b: int) -> bool:
        return self._bhs[b].scheduled

    def is_deleted(self, b: int) -> bool:
        return self._bhs[b].deleted

    # ------------------------------------------------------------------------------------
    # Event notifiers and their handlers
    # ------------------------------------------------------------------------------------
    def notifier_new(self, active: bool = False) -> int:
        """``event_notifier_init(active)``."""
        self._notifiers.append(bool(active))
        return len(self._notifiers) - 1

    def notifier_set(self, n: int) -> None:
        """``event_notifier_set``: several sets before a clear coalesce."""
        self._notifiers[n] = True

    def notifier_test_and_clear(self, n: int) -> bool:
        """``event_notifier_test_and_clear``: whether it was set."""
        was = self._notifiers[n]
        self._notifiers[n] = False
        return was

    def notifier_is_set(self, n: int) -> bool:
        return self._notifiers[n]

    def _find(self, n: int) -> _Handler | None:
        for node in self._handlers:
            if not node.deleted and node.notifier == n:
                return node
        return None

    def set_event_notifier(self, n: int, cb: Callback | None, *, is_external: bool = False) -> None:
        """``aio_set_event_notifier``: register, update in place, or (``None``) remove."""
        node = self._find(n)
        if cb is None:
            if node is None:
                return
            if self._walking_handlers:
                node.deleted = True  # skipped by the walker, reclaimed after it
                node.revents = False
            else:
                self._handlers.remove(node)
            return
        if node is None:
            node = _Handler(n, cb, bool(is_external))
            self._handlers.append(node)
        node.cb = cb
        node.external = bool(is_external)

    def has_handler(self, n: int) -> bool:
        return self._find(n) is not None

    def disable_external(self) -> None:
        """``aio_disable_external``: nests."""
        self._external_disable_cnt += 1

    def enable_external(self) -> None:
        """``aio_enable_external``; refused without a matching disable (QEMU asserts)."""
        if self._external_disable_cnt == 0:
            raise SequentialUsageError("aio_enable_external without aio_disable_external")
        self._external_disable_cnt -= 1

    @property
    def external_disabled(self) -> bool:
        return self._external_disable_cnt > 0

    # ------------------------------------------------------------------------------------
    # Timers on the VIRTUAL clock
    # ------------------------------------------------------------------------------------
    def timer_new(self, cb: Callback, scale: int = 1) -> int:
        """``aio_timer_new(ctx, QEMU_CLOCK_VIRTUAL, scale, cb, opaque)``."""
        if scale <= 0:
            raise SequentialUsageError(f"timer scale must be positive, got {scale}")
        self._timers.append(_Timer(cb, scale))
        return len(self._timers) - 1

    def _key(self, k: int) -> tuple[int, int]:
        t = self._timers[k]
        return (t.expire_ns, t.seq)

    def timer_mod(self, k: int, expire: int) -> None:
        """``timer_mod``: (re-)arm for ``expire`` in the timer's scale; FIFO among equals."""
        self.timer_mod_ns(k, expire * self._timers[k].scale)

    def timer_mod_ns(self, k: int, expire_ns: int) -> None:
        t = self._timers[k]
        if t.expire_ns >= 0:
            self._active.remove(k)
        self._timer_seq += 1
        t.seq = self._timer_seq
        t.expire_ns = max(int(expire_ns), 0)
        keys = [self._key(j) for j in self._active]
        self._active.insert(bisect.bisect_right(keys, self._key(k)), k)

    def timer_del(self, k: int) -> None:
        """``timer_del``: disarm (no-op if not pending)."""
        t = self._timers[k]
        if t.expire_ns >= 0:
            self._active.remove(k)
            t.expire_ns = -1

    def timer_pending(self, k: int) -> bool:
        return self._timers[k].expire_ns >= 0

    def timer_expire_ns(self, k: int) -> int:
        return self._timers[k].expire_ns

    def advance(self, ns: int) -> None:
        """Move the (frozen) VIRTUAL clock forward."""
        if ns < 0:
            raise SequentialUsageError("the virtual clock only moves forward")
        self.clock_ns += ns

    def deadline_ns(self) -> int:
        """Nanoseconds to the first VIRTUAL expiry: -1 none, 0 expired."""
        if not self._active:
            return -1
        return max(0, self._timers[self._active[0]].expire_ns - self.clock_ns)

    # ------------------------------------------------------------------------------------
    # The loop
    # ------------------------------------------------------------------------------------
    def compute_timeout(self) -> int:
        """``aio_compute_timeout``: 0, 10 ms (idle BHs only), the timer deadline, or -1."""
        timeout = -1
        for bh in self._bhs:
            if bh.scheduled:
                if not bh.idle:
                    return 0
                timeout = IDLE_BH_TIMEOUT_NS
        deadline = self.deadline_ns()
        if deadline == 0:
            return 0
        if timeout < 0 or 0 <= deadline < timeout:
            return deadline
        return timeout

    def _ready(self) -> list[_Handler]:
        ext = self._external_disable_cnt > 0
        return [
            node
            for node in self._handlers
            if not node.deleted and not (ext and node.external) and self._notifiers[node.notifier]
        ]

    def ready_now(self) -> bool:
        """Whether ``aio_poll(True)`` would return without waiting."""
        return self.compute_timeout() == 0 or bool(self._ready())

    def would_block_forever(self) -> bool:
        return self.compute_timeout() < 0 and not self._ready()

    def aio_poll(self, blocking: bool) -> bool:
        """One iteration: BHs, then ready handlers, then expired timers; returns progress.

        Raises:
            WouldBlockForever: ``blocking`` with nothing ready and no deadline.
            SequentialUsageError: called from inside a callback (nesting is not modelled).
        """
        if self._in_poll:
            raise SequentialUsageError("nested aio_poll is not modelled by SequentialContext")
        if blocking and self.would_block_forever():
            raise WouldBlockForever("aio_poll(blocking=True) with nothing that could wake it")
        self._in_poll = True
        try:
            ready = self._ready()  # the poll: readiness is fixed before any callback runs
            for node in ready:
                node.revents = True
            progress = self._bh_poll()
            if ready:
                progress |= self._dispatch_handlers()
            progress |= self._run_timers()
            return progress
        finally:
            self._in_poll = False

    def _bh_poll(self) -> bool:
        progress = False
        self._walking_bh += 1
        try:
            order = self._bh_order
            for i in range(len(order) - 1, -1, -1):  # newest first; later ones not visited
                bh = self._bhs[order[i]]
                if not bh.scheduled:
                    continue
                bh.scheduled = False
                if not bh.idle:
                    progress = True
                bh.idle = False
                bh.cb()
        finally:
            self._walking_bh -= 1
            if self._walking_bh == 0:
                # Reclaim deleted BHs (a one-shot still waiting for its run stays).
                self._bh_order = [
                    b for b in self._bh_order
                    if not (self._bhs[b].deleted and not self._bhs[b].scheduled)
                ]
        return progress

    def _dispatch_handlers(self) -> bool:
        progress = False
        self._walking_handlers += 1
        try:
            ext = self._external_disable_cnt > 0  # read after the BHs ran
            handlers = self._handlers
            for i in range(len(handlers) - 1, -1, -1):  # newest first; added ones not visited
                node = handlers[i]
                revents, node.revents = node.revents, False
                if not revents or node.deleted or (ext and node.external):
                    continue
                progress = True
                node.cb()
        finally:
            self._walking_handlers -= 1
            if self._walking_handlers == 0:
                self._handlers = [n for n in self._handlers if not n.deleted]
        return progress

    def _run_timers(self) -> bool:
        if not self._active:
            return False
        now = self.clock_ns  # read once: a re-arm not after it runs again in this call
        progress = False
        while self._active:
            k = self._active[0]
            t = self._timers[k]
            if t.expire_ns > now:
                break
            self._active.pop(0)
            t.expire_ns = -1
            t.cb()
            progress = True
        return progress
