"""The z3 form of each property: a formula over one symbolic model state.

Why it exists: each property is stated once (in its module's docstring) and checked in
three forms; this is the third, beside the runtime monitor and the model invariant
(:mod:`aioctx_verify.model.invariants`), clause for clause the same statement over the
variables of :class:`aioctx_verify.model.SymState`.  ``tests/test_symbolic.py`` checks that
each formula agrees with the model invariant on every state the explicit search reaches;
the prover (:func:`aioctx_verify.model.prove`, ``aioctx-verify prove``) takes them as its
proof obligations.

Each form is a :class:`Z3Form`: called as ``form(encoding, state)`` it returns a z3 Boolean
term.  ``LIVE``'s form is the one finite, single-state witness of liveness: *no deadlock*
(some action is enabled, or the state is a proper end).  Busy loops and lost wake-ups need
paths (a lasso search), which a state formula cannot see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import z3

from aioctx_verify.model import Encoding, SymState, sym_label

__all__ = ["Z3Form", "live", "p1", "p2", "p3"]

Term = Any  # z3 terms (z3 ships no type stubs)


@dataclass(frozen=True)
class Z3Form:
    """A property's z3 form: ``form(enc, s)`` is the property over state ``s`` of ``enc``."""

    prop: str
    statement: str

    def __call__(self, enc: Encoding, s: SymState) -> Term:
        return _FORMS[self.prop](enc, s)


def _p1(enc: Encoding, s: SymState) -> Term:
    """P1 (model.invariants.p1): never granted out of ticket order; a positive depth has an
    owner; the owner's own count equals the lock's depth, every other thread holds nothing."""
    lock = s.lock
    parts = [z3.Not(lock.barged), z3.Implies(lock.depth > 0, lock.holder >= 0)]
    for t, th in enumerate(s.threads):
        owner = z3.And(lock.holder == t, lock.depth > 0)
        parts.append(z3.If(owner, th.depth == lock.depth, th.depth == 0))
    return z3.And(*parts)


def _p2(enc: Encoding, s: SymState) -> Term:
    """P2 (model.invariants.p2): no bad run (without a pending schedule, or after delete);
    no schedule lost (pending implies scheduled); no lock inside qemu_bh_schedule; no BH run
    twice in one aio_poll iteration of one thread."""
    parts = [
        z3.Not(z3.Or(bh.bad_run, z3.And(bh.pending, z3.Not(bh.scheduled)))) for bh in s.bhs
    ]
    for th in s.threads:
        parts.append(z3.Not(th.sched_lock))
        parts += [r <= 1 for r in th.runs]
    return z3.And(*parts)


def _p3(enc: Encoding, s: SymState) -> Term:
    """P3 (model.invariants.p3): at most one thread inside aio_poll, and it owns the
    context (holder with a positive depth)."""
    lock = s.lock
    inside = [th.in_poll for th in s.threads]
    owns = [
        z3.Implies(th.in_poll, z3.And(lock.holder == t, lock.depth > 0))
        for t, th in enumerate(s.threads)
    ]
    return z3.And(z3.AtMost(*inside, 1), *owns)


def _live(enc: Encoding, s: SymState) -> Term:
    """LIVE, its single-state witness (model.invariants.is_rest on a terminal state): some
    action is enabled, or every client has ended and every poller has ended or sleeps in
    its wait with nothing due (no non-idle BH scheduled, no timer armed, no handler ready)."""
    cfg = enc.config
    alive = []
    rest = []
    for role, th in zip(cfg.roles, s.threads, strict=True):
        ended = th.pc == sym_label("end")
        if role == "client":
            rest.append(ended)
        else:
            asleep = z3.Or(th.pc == sym_label("poll.wait"), th.pc == sym_label("gsource.wait"))
            rest.append(z3.Or(ended, asleep))
            alive.append(z3.Not(ended))
    due = z3.Or(
        *(z3.And(bh.alive, bh.scheduled, z3.Not(bh.idle)) for bh in s.bhs),
        *s.armed,
        *s.ready,
    )
    proper = z3.And(*rest, z3.Implies(z3.Or(*alive, z3.BoolVal(False)), z3.Not(due)))
    return z3.Or(enc.enabled(s), proper)


_FORMS = {"P1": _p1, "P2": _p2, "P3": _p3, "LIVE": _live}

p1 = Z3Form("P1", "nested acquire correctness (FIFO, depth balance, owner unique)")
p2 = Z3Form("P2", "lock-free BH scheduling (lock-free, not lost, no spurious run, once per "
                  "iteration)")
p3 = Z3Form("P3", "mutual exclusion: one thread inside aio_poll at most, owning the context")
live = Z3Form("LIVE", "no deadlock: an action is enabled or the state is a proper end")
