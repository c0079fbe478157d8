"""Liveness: no lost wake-up, no starvation, no deadlock.

Statement.

1. *no deadlock*: the system never reaches a state where some thread has not ended and no
   thread can move (no runnable thread, no pending timer);
2. *no lost wake-up*: a thread asleep in a blocking ``aio_poll`` is woken when a BH of its
   context is scheduled, a watched fd / notifier becomes ready or a timer expires;
3. *no starvation*: every thread that waits for a context lock is eventually granted it
   (or gives up), since the lock is FIFO and the owner is kicked out of ``aio_poll``.

Liveness is a property of infinite paths; the forms here check its finite witnesses: the
controlled explorer reports (1) and (2) as ``deadlock`` / ``lost_wakeup`` verdicts (every
thread blocked, with their positions), :class:`LivenessMonitor` checks at the end of a
finished run that no lock wait was left unanswered, and, when the caller knows the trace
ends in a *terminal* state (nothing can move any more: a model dead end, a controlled run
where every thread is blocked), that no thread is asleep in a blocking ``aio_poll`` of a
context with a BH scheduled since it went to sleep (rule 2).  That last rule needs the
terminal guarantee: at the end of a real-thread run an IOThread may simply not have woken
yet.  The model search checks that every reachable state can still reach a final state
(:func:`model_invariant` over a path); a busy loop that never ends (BUG1 of
aio_notify_accept.promela) has no finite witness a monitor can see.

The same property for every other part of the loop (timers, fd / notifier handlers, the
thread pool, dataplane kicks, IOThread stop, stop-the-world) is stated, with its monitor,
in :mod:`aioctx_verify.properties._progress` (the loop oracles).
"""

from __future__ import annotations

from typing import Any

from aioctx_verify.vocab import PropertyName, TraceEvent

from ._monitor import Monitor

__all__ = ["LivenessMonitor", "model_invariant", "z3_formula"]

PROP: PropertyName = "LIVE"


class LivenessMonitor(Monitor):
    """End-of-run witness: every lock wait answered (granted or abandoned)."""

    prop = PROP
    batchable = True  # the event stream alone decides

    def __init__(self) -> None:
        super().__init__()
        self.waiting: dict[tuple[int, int], int] = {}  # (ctx, thread) -> ticket
        #: ctx -> threads inside a blocking aio_poll of it (nesting counted)
        self.sleeping: dict[int, dict[int, int]] = {}
        #: ctx -> BHs whose flag a schedule set and no run, cancel or delete has cleared
        self.due: dict[int, set[int]] = {}
        #: ctx -> BHs that became due while some thread was inside a blocking poll of ctx
        self.due_while_asleep: dict[int, set[int]] = {}
        self.begun: dict[tuple[int, int], int] = {}  # (thread, bh) -> index of its begin
        self.last_run: dict[int, int] = {}  # bh -> index of its last run/cancel/delete

    def on_event(self, ev: TraceEvent) -> None:
        kind = ev.kind
        key = (ev.ctx, int(ev.thread))
        if kind == "lock_wait":
            self.waiting[key] = ev.obj
        elif kind in ("lock_abandon",) or (kind == "acquire" and ev.obj == 1):
            self.waiting.pop(key, None)
        elif kind == "poll_begin":
            if ev.obj:
                th = self.sleeping.setdefault(ev.ctx, {})
                th[int(ev.thread)] = th.get(int(ev.thread), 0) + 1
                # Work already due when the poll began must be seen by this poll.
                self.due_while_asleep.setdefault(ev.ctx, set()).update(
                    self.due.get(ev.ctx, ())
                )
        elif kind == "poll_end":
            th = self.sleeping.get(ev.ctx, {})
            n = th.pop(int(ev.thread), 0)
            if n > 1:
                th[int(ev.thread)] = n - 1
        elif kind == "bh_schedule_begin":
            self.begun[(int(ev.thread), ev.obj)] = self._index
        elif kind == "bh_schedule_end" and ev.detail not in ("coalesced", "idle"):
            # (qemu_bh_schedule_idle promises no wake-up: the poll's 10 ms timeout runs it.)
            # A run that began after this schedule began may have consumed it (the end is
            # traced after the flag was set): then it is not known to be due.
            began = self.begun.pop((int(ev.thread), ev.obj), -1)
            if self.last_run.get(ev.obj, -2) > began:
                return
            self.due.setdefault(ev.ctx, set()).add(ev.obj)
            if self.sleeping.get(ev.ctx):
                self.due_while_asleep.setdefault(ev.ctx, set()).add(ev.obj)
        elif kind in ("bh_run_begin", "bh_cancel", "bh_delete"):
            self.last_run[ev.obj] = self._index
            self.due.get(ev.ctx, set()).discard(ev.obj)
            self.due_while_asleep.get(ev.ctx, set()).discard(ev.obj)

    def finish(self, *, terminal: bool = False) -> None:
        """End-of-run rules; ``terminal``: the trace ends where nothing can move any more."""
        if terminal:
            for ctx, threads in sorted(self.sleeping.items()):
                lost = sorted(self.due_while_asleep.get(ctx, set()) & self.due.get(ctx, set()))
                if threads and lost:
                    self.violate(
                        "no-lost-wakeup",
                        f"thread(s) {sorted(threads)} asleep for good in aio_poll of context "
                        f"{ctx} while BH(s) {lost} of it are scheduled (lost wake-up)",
                        at_end=True,
                    )
        for (ctx, t), ticket in sorted(self.waiting.items()):
            self.violate(
                "no-starvation",
                f"thread {t} waited for context {ctx} (ticket {ticket}) and was never granted it",
                at_end=True,
            )


def model_invariant(path: Any) -> bool:
    """Liveness on a model path: see :func:`aioctx_verify.model.invariants.live`."""
    from aioctx_verify.model import invariants

    return bool(invariants.live(path))


#: Slot for the z3 form of liveness (bounded: no reachable deadlock within k steps).
from ._z3 import live as z3_formula  # noqa: E402 - the z3 form: properties/_z3.py
