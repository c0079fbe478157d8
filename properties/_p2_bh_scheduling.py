"""P2: lock-free BH scheduling.

Statement.  For every bottom half ``b`` of context ``c``:

1. *never blocks, never locks*: between a thread's ``bh_schedule_begin`` and
   ``bh_schedule_end`` for b, that thread neither acquires nor waits for any context;
2. *not lost*: a schedule of b that completed before c's IOThread began to stop is followed
   by a run of b before the IOThread ends (the stop BH's walk visits every older BH), unless
   a ``qemu_bh_cancel(b)`` withdrew it.  A cancel is a relaxed store: under a weak memory
   model it may become visible only after a schedule that began after the cancel's trace
   event, and then rightly undo it.  So a cancel counts as *open* from its event until the
   cancelling thread's next traced event, and it withdraws b's last schedule if that one
   began while the cancel was open or before (on real threads the store is visible at
   the cancel's event already; a controlled program that cancels must order the store
   before its next traced step, e.g. with a fence, as the stateful scripts do);
3. *no spurious run*: every run of b is paid for by a schedule that set b's ``scheduled``
   flag (a schedule that ended "new" or "idle"); coalesced schedules run once, a BH is never
   run twice for one schedule.  Counted as runs <= flips + schedules still in flight,
   because on real threads a trace event is emitted just after, not atomically with, the
   flag exchange it reports: the poller may claim b, a second schedule set the flag again
   and be traced, and only then the poller's ``bh_run_begin`` appear.  Counting is exact
   whatever the interleaving of emissions (each real run follows its own flag flip, whose
   scheduler has either traced its end or is still in flight);
4. *once per iteration*: within one ``aio_poll`` iteration (one nesting level of one
   thread) b runs at most once: a BH rescheduled from its own callback runs in the next
   iteration;
5. *deleted never runs*: no run of b starts after ``qemu_bh_delete(b)``.

(That b runs in its context's thread, i.e. in the thread that holds c and is inside
``aio_poll(c)``, is rule 3 of P3.)

Forms: :class:`BHSchedulingMonitor`, :func:`model_invariant`, :data:`z3_formula`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aioctx_verify.vocab import PropertyName, TraceEvent

from ._monitor import Monitor

__all__ = ["BHSchedulingMonitor", "model_invariant", "z3_formula"]

PROP: PropertyName = "P2"
_LOCKING = ("acquire", "lock_wait")


@dataclass
class _BHState:
    ctx: int
    pending: int = 0  # schedules begun since the last run (or cancel)
    flips: int = 0  # schedules that ended having set the flag ("new"/"idle"), one-shots
    runs: int = 0
    in_flight: int = 0  # schedules begun, not yet ended
    last_sched_begin: int = -1  # event index of the last schedule's begin
    last_sched_end: int = -1  # event index of the last completed new/idle schedule
    cancel_closed: float = -1  # where the last cancel stopped being open (inf: still open)
    last_run: int = -1
    deleted: bool = False
    oneshot: bool = False


class BHSchedulingMonitor(Monitor):
    """Runtime form of P2."""

    prop = PROP
    batchable = True  # the event stream alone decides

    def __init__(self) -> None:
        super().__init__()
        self.bhs: dict[int, _BHState] = {}
        self.scheduling: dict[int, int] = {}  # thread -> bh being scheduled
        self.iterations: dict[int, list[set[int]]] = {}  # thread -> stack of per-poll sets
        self.stop_at: dict[int, int] = {}  # ctx -> event index of its stop BH's schedule
        self.stop_bh: dict[int, int] = {}
        self._open_cancels: dict[int, list[int]] = {}  # thread -> BHs it cancelled last

    def _bh(self, ev: TraceEvent) -> _BHState:
        st = self.bhs.get(ev.obj)
        if st is None:
            st = self.bhs[ev.obj] = _BHState(ev.ctx)
        return st

    def on_event(self, ev: TraceEvent) -> None:
        kind = ev.kind
        t = int(ev.thread)
        if self._open_cancels:
            for bh in self._open_cancels.pop(t, ()):
                self.bhs[bh].cancel_closed = self._index  # closed by the thread's next event
        if kind in _LOCKING and t in self.scheduling:
            self.violate(
                "lock-free",
                f"thread {t} took a context lock ({kind} on context {ev.ctx}) inside "
                f"qemu_bh_schedule of BH {self.scheduling[t]}",
            )
        elif kind == "bh_new":
            st = self._bh(ev)
            st.oneshot = ev.detail == "oneshot"
        elif kind == "bh_schedule_begin":
            st = self._bh(ev)
            if st.deleted:
                self.violate("deleted-never-runs", f"BH {ev.obj} scheduled after its deletion")
            st.pending += 1
            st.in_flight += 1
            st.last_sched_begin = self._index
            self.scheduling[t] = ev.obj
        elif kind == "bh_schedule_end":
            self.scheduling.pop(t, None)
            st = self._bh(ev)
            st.in_flight = max(0, st.in_flight - 1)
            if ev.detail != "coalesced":
                st.flips += 1
            st.last_sched_end = self._index
        elif kind == "bh_cancel":
            # A cancelled schedule need not run (not-lost); it stays a credit for
            # no-spurious-run, since cancel's store and its trace are not one step either.
            st = self._bh(ev)
            st.pending = 0
            st.cancel_closed = float("inf")
            self._open_cancels.setdefault(t, []).append(ev.obj)
        elif kind == "bh_delete":
            self._bh(ev).deleted = True
        elif kind == "poll_begin":
            self.iterations.setdefault(t, []).append(set())
        elif kind == "poll_end":
            stack = self.iterations.get(t)
            if stack:
                stack.pop()
        elif kind == "bh_run_begin":
            st = self._bh(ev)
            if st.deleted:
                self.violate("deleted-never-runs", f"BH {ev.obj} ran after qemu_bh_delete")
            st.runs += 1
            if st.runs > st.flips + st.in_flight:
                self.violate(
                    "no-spurious-run",
                    f"BH {ev.obj} ran in thread {t} {st.runs} times for {st.flips} "
                    "schedules that set its flag",
                )
            st.pending = 0
            st.last_run = self._index
            stack = self.iterations.get(t)
            if stack:
                if ev.obj in stack[-1]:
                    self.violate(
                        "once-per-iteration",
                        f"BH {ev.obj} ran twice in one aio_poll iteration of thread {t}",
                    )
                stack[-1].add(ev.obj)
        elif kind == "iothread_stop":
            self._check_not_lost(ev.ctx)

    def note_stop_bh(self, ctx: int, bh: int) -> None:
        """Tell the monitor which BH stops ``ctx``'s IOThread (older schedules must run)."""
        self.stop_bh[ctx] = bh

    def _check_not_lost(self, ctx: int) -> None:
        # Every BH of ctx whose schedule completed before the last scheduling of any
        # one-shot that ran last in this context (the stop BH) must have run after it.
        runs = [
            (st.last_run, bh)
            for bh, st in self.bhs.items()
            if st.ctx == ctx and st.oneshot and st.last_run >= 0
        ]
        if not runs:
            return
        stop_run, stop_bh = max(runs)
        stop = self.bhs[stop_bh]
        # The IOThread began to stop when its stop BH ran, which may be before the thread
        # that scheduled it traces that schedule's end: a schedule that ends after the
        # stop BH ran need not run (the stop BH's walk may be past it).
        cutoff = min(stop.last_sched_end, stop_run)
        for bh, st in self.bhs.items():
            if st.ctx != ctx or bh == stop_bh or st.deleted or st.pending == 0:
                continue
            if st.cancel_closed > st.last_sched_begin:
                continue  # withdrawn by a cancel that was still open when it began
            if 0 <= st.last_sched_end < cutoff:
                self.violate(
                    "not-lost",
                    f"BH {bh} of context {ctx} was scheduled before its IOThread's stop BH "
                    f"{stop_bh} yet never ran before the IOThread ended",
                )


def model_invariant(state: Any) -> bool:
    """P2 on a model state: see :func:`aioctx_verify.model.invariants.p2`."""
    from aioctx_verify.model import invariants

    return bool(invariants.p2(state))


#: Slot for the z3 form of P2.
from ._z3 import p2 as z3_formula  # noqa: E402 - the z3 form: properties/_z3.py
