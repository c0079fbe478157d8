"""P1: nested acquire correctness.

Statement.  For every context ``c``, over any execution:

1. *depth balance*: each ``acquire`` by the owner raises c's depth by exactly one, each
   ``release`` lowers it by one, and it never goes below zero;
2. *owner unique*: while c's depth is > 0 exactly one thread (the owner) holds it, and only
   the owner acquires (nested) or releases it: a release by any other thread is refused;
3. *FIFO*: a thread that had to wait (``lock_wait`` with ticket t) is granted c before every
   thread that asked later (a later ticket, or an uncontended acquire after t was issued),
   unless it gave up (``lock_abandon``);
4. *no starvation behind a poller*: an acquirer is never stuck behind an owner blocked in
   ``aio_poll`` (checked as liveness: the explorer's deadlock / lost-wake-up verdict, and
   :mod:`aioctx_verify.properties._liveness` at the end of a run).

Forms: :class:`NestedAcquireMonitor` (runtime monitor over impl's trace events),
:func:`model_invariant` (model state -> bool, see :mod:`model`), :data:`z3_formula` (slot
for the z3 encoding, filled by the proofs milestone).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aioctx_verify.vocab import PropertyName, TraceEvent

from ._monitor import Monitor

__all__ = ["NestedAcquireMonitor", "model_invariant", "z3_formula"]

PROP: PropertyName = "P1"


@dataclass
class _LockState:
    owner: int | None = None
    depth: int = 0
    waiting: dict[int, int] = field(default_factory=dict)  # thread -> ticket


class NestedAcquireMonitor(Monitor):
    """Runtime form of P1 over ``acquire`` / ``release`` / ``lock_wait`` / ``lock_abandon``."""

    prop = PROP
    batchable = True  # the event stream alone decides

    def __init__(self) -> None:
        super().__init__()
        self.locks: dict[int, _LockState] = {}

    def on_event(self, ev: TraceEvent) -> None:
        kind = ev.kind
        if kind not in ("acquire", "release", "lock_wait", "lock_abandon"):
            return
        st = self.locks.setdefault(ev.ctx, _LockState())
        t = int(ev.thread)
        if kind == "lock_wait":
            st.waiting[t] = ev.obj
        elif kind == "lock_abandon":
            st.waiting.pop(t, None)
        elif kind == "acquire":
            if ev.obj == 1:
                if st.depth > 0:
                    self.violate(
                        "owner-unique",
                        f"thread {t} acquired context {ev.ctx} while thread {st.owner} "
                        f"holds it at depth {st.depth}",
                    )
                mine = st.waiting.pop(t, None)
                earlier = [w for w, k in st.waiting.items() if mine is None or k < mine]
                if earlier:
                    self.violate(
                        "fifo",
                        f"thread {t} was granted context {ev.ctx} before thread(s) "
                        f"{sorted(earlier)} that asked earlier (ticket order broken)",
                    )
                st.owner, st.depth = t, 1
            else:
                if st.owner != t or st.depth == 0:
                    self.violate(
                        "owner-unique",
                        f"thread {t} nested an acquire of context {ev.ctx} it does not hold "
                        f"(owner {st.owner}, depth {st.depth})",
                    )
                elif ev.obj != st.depth + 1:
                    self.violate(
                        "depth-balance",
                        f"nested acquire of context {ev.ctx} reported depth {ev.obj}, "
                        f"expected {st.depth + 1}",
                    )
                st.owner, st.depth = t, ev.obj
        else:  # release
            if st.depth == 0:
                self.violate(
                    "depth-balance", f"thread {t} released context {ev.ctx} that nobody holds"
                )
            elif st.owner != t:
                self.violate(
                    "release-by-owner",
                    f"thread {t} released context {ev.ctx} owned by thread {st.owner}",
                )
            elif ev.obj != st.depth - 1:
                self.violate(
                    "depth-balance",
                    f"release of context {ev.ctx} reported depth {ev.obj}, expected {st.depth - 1}",
                )
            st.depth = max(0, ev.obj)
            if st.depth == 0:
                st.owner = None

    def owner(self, ctx: int) -> int | None:
        st = self.locks.get(ctx)
        return st.owner if st is not None and st.depth > 0 else None


def model_invariant(state: Any) -> bool:
    """P1 on a model state: see :func:`model.invariants.p1` (the model is the oracle)."""
    from aioctx_verify.model import invariants

    return bool(invariants.p1(state))


#: Slot for the z3 form of P1 (a formula over the transition relation's variables).
from ._z3 import p1 as z3_formula  # noqa: E402 - the z3 form: properties/_z3.py
