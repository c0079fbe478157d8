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
finished run that no lock wait was left unanswered and no schedule was left pending in a
context whose IOThread stopped, and the model search checks that every reachable state
can still reach a final state (:func:`model_invariant` over a path).
"""

from __future__ import annotations

from typing import Any

from impl import TraceEvent

from ._monitor import Monitor

__all__ = ["LivenessMonitor", "model_invariant", "z3_formula"]

PROP = "LIVE"


class LivenessMonitor(Monitor):
    """End-of-run witness: every lock wait answered (granted or abandoned)."""

    prop = PROP

    def __init__(self) -> None:
        super().__init__()
        self.waiting: dict[tuple[int, int], int] = {}  # (ctx, thread) -> ticket

    def on_event(self, ev: TraceEvent) -> None:
        key = (ev.ctx, int(ev.thread))
        if ev.kind == "lock_wait":
            self.waiting[key] = ev.obj
        elif ev.kind in ("lock_abandon",) or (ev.kind == "acquire" and ev.obj == 1):
            self.waiting.pop(key, None)

    def finish(self) -> None:
        for (ctx, t), ticket in sorted(self.waiting.items()):
            self.violate(
                "no-starvation",
                f"thread {t} waited for context {ctx} (ticket {ticket}) and was never granted it",
                at_end=True,
            )


def model_invariant(path: Any) -> bool:
    """Liveness on a model path: see :func:`model.invariants.live`."""
    from model import invariants

    return bool(invariants.live(path))


#: Slot for the z3 form of liveness (bounded: no reachable deadlock within k steps).
z3_formula: Any = None
