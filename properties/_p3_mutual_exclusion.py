"""P3: mutual exclusion during event-loop iterations.

Statement.  For every context ``c``:

1. *single poller*: at most one thread is inside ``aio_poll(c)`` at any time (the same
   thread may nest ``aio_poll`` from a callback);
2. *poller holds c*: a thread inside ``aio_poll(c)`` holds c's lock (P1's owner): checked
   when it enters, and again at any release that drops c's depth to zero while a thread is
   still inside ``aio_poll(c)`` (e.g. a release accepted from a non-owner);
3. *callbacks inside the iteration*: every callback of c (BH, fd / notifier handler, timer)
   runs in the thread that is inside ``aio_poll(c)``, hence in c's owner thread;
4. *no acquirer inside an iteration*: no other thread is granted c while a thread is inside
   ``aio_poll(c)``.

Forms: :class:`MutualExclusionMonitor`, :func:`model_invariant`, :data:`z3_formula`.
"""

from __future__ import annotations

from typing import Any

from aioctx_verify.vocab import PropertyName, TraceEvent

from ._monitor import Monitor
from ._p1_nested_acquire import NestedAcquireMonitor

__all__ = ["MutualExclusionMonitor", "model_invariant", "z3_formula"]

PROP: PropertyName = "P3"
_CALLBACKS = ("bh_run_begin", "handler_run_begin", "timer_run_begin")


class MutualExclusionMonitor(Monitor):
    """Runtime form of P3 (keeps its own lock-owner view, fed the same events)."""

    prop = PROP
    batchable = True  # the event stream alone decides

    def __init__(self) -> None:
        super().__init__()
        self._locks = NestedAcquireMonitor()
        self.inside: dict[int, tuple[int, int]] = {}  # ctx -> (thread, nesting)

    def on_event(self, ev: TraceEvent) -> None:
        self._locks.feed(self._index, ev)
        kind = ev.kind
        t = int(ev.thread)
        ctx = ev.ctx
        if kind == "poll_begin":
            cur = self.inside.get(ctx)
            if cur is not None and cur[0] != t:
                self.violate(
                    "single-poller",
                    f"thread {t} entered aio_poll of context {ctx} while thread {cur[0]} is in it",
                )
            owner = self._locks.owner(ctx)
            if owner != t:
                self.violate(
                    "poller-holds-context",
                    f"thread {t} entered aio_poll of context {ctx} without holding it "
                    f"(owner: {owner})",
                )
            n = cur[1] + 1 if cur is not None and cur[0] == t else 1
            self.inside[ctx] = (t, n)
        elif kind == "poll_end":
            cur = self.inside.get(ctx)
            if cur is not None and cur[0] == t:
                if cur[1] <= 1:
                    del self.inside[ctx]
                else:
                    self.inside[ctx] = (t, cur[1] - 1)
        elif kind in _CALLBACKS:
            cur = self.inside.get(ctx)
            if cur is None or cur[0] != t:
                who = "nobody" if cur is None else f"thread {cur[0]}"
                self.violate(
                    "callback-in-iteration",
                    f"{kind.removesuffix('_begin')} of context {ctx} in thread {t}, but "
                    f"{who} is inside its aio_poll",
                )
        elif kind == "release" and ev.obj == 0:
            cur = self.inside.get(ctx)
            if cur is not None:
                self.violate(
                    "poller-holds-context",
                    f"thread {t} released context {ctx} to depth 0 while thread {cur[0]} is "
                    "inside its aio_poll",
                )
        elif kind == "acquire" and ev.obj == 1:
            cur = self.inside.get(ctx)
            if cur is not None and cur[0] != t:
                self.violate(
                    "no-acquire-during-iteration",
                    f"thread {t} was granted context {ctx} while thread {cur[0]} is inside "
                    "its aio_poll",
                )


def model_invariant(state: Any) -> bool:
    """P3 on a model state: see :func:`aioctx_verify.model.invariants.p3`."""
    from aioctx_verify.model import invariants

    return bool(invariants.p3(state))


#: Slot for the z3 form of P3.
from ._z3 import p3 as z3_formula  # noqa: E402 - the z3 form: properties/_z3.py
