"""The strengthening invariants of the z3 proofs: stated here, checked by :mod:`model._z3_prove`.

Why it exists: a safety property such as P1 is true in every reachable state but is not
*inductive* on its own: from some unreachable state that satisfies it (a thread waiting
in ``acquire.wait`` that is in no queue, a stack whose frames return into the middle of
``aio_poll``) one step breaks it.  k-induction closes only when such states are excluded by
invariants that are themselves proven.  Each :class:`Invariant` below is a statement about
the protocol, written once, generic over the configuration; the prover keeps the largest
subset of them that holds initially and is preserved by every step (Houdini: drop what a
counterexample to induction falsifies, repeat), so a statement that a mutant breaks is
dropped for that mutant's configuration, never assumed.

Families:

* ``local(t)``: thread ``t``'s *local* state (every field of its :class:`~model.ThreadState`:
  program counter, stack, depth, budget, poll flags, run counts, ``sched_bh``...) is one of
  a finite set computed by z3 (:func:`local_states`): the least set closed under the
  thread's own steps with every shared variable and every other thread unconstrained
  (within the ranges of ``ranges``).  Other threads never write a thread's local fields,
  so the set is closed under their steps too.
* structure: ``ranges`` (shared integers within their types: lock holder, depth, queue,
  ``notify_me``), ``stack-room`` (no stack holds more than
  :data:`~model._symbolic.STACK_FREE` frames, so the encoding's fixed stacks are exact),
  ``notify-me-count`` (``notify_me`` is 2 per thread between a blocking ``aio_poll``'s
  increment and decrement, plus 1 for the GSource between prepare and check).
* lock (P1's and P3's support): ``depth-balance`` (P1 without its FIFO clause, which a
  barging mutant breaks while mutual exclusion still holds); the queue is a gap-free list
  of distinct threads, none of them the holder; a queued thread is waiting in
  ``acquire.wait`` or is the one running the contention callback, which is exactly the
  thread with a ``kick.done`` frame and is queued; a thread in ``acquire.wait`` is queued
  or has been handed the lock (holder at depth 0), and a holder at depth 0 is waiting;
  waiters imply a holder (FIFO hand-over).
* BHs (P2's support): ``pending`` equals ``scheduled``; a deleted BH is not scheduled; a BH
  some thread is inside ``qemu_bh_schedule`` of is not deleted; BHs other than the stop
  one-shot are in the list, the dummy BH is never deleted, ``stopping`` implies the stop
  BH was inserted.

With them P1, P2 and P3 are inductive (1-induction) at every configuration the campaign
proves; what each mutant's configuration drops is printed by ``aioctx-verify prove``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import z3

from ._state import ModelError
from ._symbolic import LABELS, STACK_CAP, STACK_FREE, WIDTH, Encoding, L, SymState, Value

__all__ = ["Invariant", "candidate_invariants", "local_states", "ranges"]

Term = Any  # z3 terms (z3 ships no type stubs)


@dataclass(frozen=True)
class Invariant:
    """A named statement over one state; ``formula(enc, s)`` is its z3 form."""

    name: str
    statement: str
    formula: Callable[[Encoding, SymState], Term]

    def __str__(self) -> str:
        return f"{self.name}: {self.statement}"


def _in_queue(s: SymState, t: int) -> Term:
    return z3.Or(*(q == t for q in s.lock.queue))


def _has_frame(s: SymState, t: int, label: str) -> Term:
    return z3.Or(*(f == L(label) for f, _ in s.threads[t].frames))


def ranges(enc: Encoding, s: SymState) -> Term:
    """Shared integers within their types."""
    cfg = enc.config
    n = cfg.threads
    depth = max(cfg.max_depth, 1) + 1
    parts = [
        s.lock.holder >= -1, s.lock.holder < n,
        s.lock.busy >= -1, s.lock.busy < n,
        s.lock.depth >= 0, s.lock.depth <= depth,
        s.notify_me >= 0, s.notify_me <= 2 * n + 1,
    ]
    parts += [z3.And(q >= -1, q < n) for q in s.lock.queue]
    for th in s.threads:
        parts += [th.saved >= 0, th.saved <= 2 * n + 1]
    return z3.And(*parts)


# ------------------------------------------------------------------------------------------
# Thread-local reachable states
# ------------------------------------------------------------------------------------------
def local_names(enc: Encoding, t: int) -> tuple[str, ...]:
    """The fields of thread ``t``'s local state."""
    return tuple(n for n in enc.names() if n.startswith(f"t{t}."))


def local_states(enc: Encoding, t: int, *, limit: int = 20_000) -> list[tuple[Value, ...]]:
    """Every local state thread ``t`` can reach by its own steps, whatever the shared
    variables and the other threads hold (within :func:`ranges`): a least fixpoint, each
    step's successors enumerated by z3.

    Raises:
        RuntimeError: more than ``limit`` local states.
        ModelError: a stack grew past :data:`~model._symbolic.STACK_FREE` frames (the
            encoding's stacks would be too small to be exact).
    """
    from ._state import initial

    names = local_names(enc, t)
    base = enc.base
    init = enc.values(initial(enc.config))
    start = tuple(init[n] for n in names)
    templates = [tp for tp in enc.templates if tp.thread == t]
    solver = z3.SolverFor("QF_FD")
    solver.add(ranges(enc, base))
    new = [[tp.updates.get(n, base[n]) for n in names] for tp in templates]
    seen = {start}
    todo = [start]
    idx = {n: i for i, n in enumerate(names)}
    pc_i, arg_i = idx[f"t{t}.pc"], idx[f"t{t}.arg"]
    room = idx[f"t{t}.f{STACK_FREE}.l"]
    def add(y: tuple[Value, ...]) -> None:
        if y[room] != 0:
            raise ModelError(f"thread {t}: a stack outgrew {STACK_FREE} frames; "
                             "raise STACK_FREE and STACK_CAP in model/_symbolic.py")
        if y not in seen:
            if len(seen) >= limit:
                raise RuntimeError(f"thread {t}: more than {limit} local states")
            seen.add(y)
            todo.append(y)

    while todo:
        x = todo.pop()
        part = z3.Model()  # the local state; shared variables left open
        for n, v in zip(names, x, strict=True):
            part.update_value(base[n], _const(v))
        for tp, nxt in zip(templates, new, strict=True):
            if tp.client:
                if x[pc_i] != L("op"):
                    continue
            elif x[pc_i] != L(tp.step) or x[arg_i] != tp.arg:
                continue
            # Fast path: the local successor does not depend on shared state.
            guard = part.eval(tp.guard)
            if z3.is_false(guard):
                continue
            ys = [part.eval(e) for e in nxt]
            if all(z3.is_true(v) or z3.is_false(v) or z3.is_bv_value(v) for v in ys):
                if z3.is_true(guard) or solver.check(guard) == z3.sat:
                    add(tuple(_value(v) for v in ys))
                continue
            # Otherwise enumerate the successors over every shared state.
            solver.push()
            solver.add(guard)
            while solver.check() == z3.sat:
                m = solver.model()
                y = tuple(_value(m.eval(e, model_completion=True)) for e in ys)
                add(y)
                solver.add(z3.Or(*(e != _const(v) for e, v in zip(ys, y, strict=True))))
            solver.pop()
    return sorted(seen, key=lambda v: tuple(int(a) for a in v))


def _const(v: Value) -> Term:
    return z3.BoolVal(v) if isinstance(v, bool) else z3.BitVecVal(v, WIDTH)


def _value(v: Term) -> Value:
    if z3.is_bool(v):
        return bool(z3.is_true(v))
    return int(v.as_signed_long())


def _local(enc: Encoding, t: int, states: Sequence[tuple[Value, ...]]) -> Invariant:
    names = local_names(enc, t)
    controls = sorted({
        (LABELS[int(x[names.index(f"t{t}.pc")])], int(x[names.index(f"t{t}.arg")]))
        for x in states
    })
    role = enc.config.roles[t]

    def formula(e: Encoding, s: SymState) -> Term:
        vs = [s[n] for n in names]
        return z3.Or(*(
            z3.And(*(v == _const(c) for v, c in zip(vs, x, strict=True))) for x in states
        ))

    shown = ", ".join(f"{pc}({a})" if a >= 0 else pc for pc, a in controls[:6])
    more = f", ... ({len(controls)} in all)" if len(controls) > 6 else ""
    return Invariant(
        f"local(t{t})",
        f"thread {t} ({role}) is in one of its {len(states)} reachable local states "
        f"(computed by z3 with shared state free; at {shown}{more})",
        formula,
    )


# ------------------------------------------------------------------------------------------
# The stated invariants
# ------------------------------------------------------------------------------------------
def _queue_shape(enc: Encoding, s: SymState) -> Term:
    q = s.lock.queue
    gaps = [z3.Implies(q[k] == -1, q[k + 1] == -1) for k in range(len(q) - 1)]
    distinct = [
        z3.Implies(q[j] != -1, q[j] != q[k]) for k in range(len(q)) for j in range(k)
    ]
    return z3.And(*gaps, *distinct)


def _each_thread(f: Callable[[SymState, int], Term]) -> Callable[[Encoding, SymState], Term]:
    def formula(enc: Encoding, s: SymState) -> Term:
        return z3.And(*(f(s, t) for t in range(enc.config.threads)))

    return formula


def _each_bh(f: Callable[[Encoding, SymState, int], Term | None]
             ) -> Callable[[Encoding, SymState], Term]:
    def formula(enc: Encoding, s: SymState) -> Term:
        parts = [f(enc, s, b) for b in range(enc.config.n_bhs)]
        return z3.And(*(p for p in parts if p is not None))

    return formula


def _user_not_deleted_while_scheduling(enc: Encoding, s: SymState) -> Term:
    cfg = enc.config
    return z3.And(z3.BoolVal(True), *(
        z3.Implies(th.sched_bh == b, z3.Not(s.bhs[b].deleted))
        for th in s.threads for b in range(cfg.bhs)
    ))


def _list_shape(enc: Encoding, s: SymState) -> Term:
    cfg = enc.config
    parts = [s.bhs[b].alive for b in range(cfg.n_bhs) if b != cfg.stop_bh]
    parts.append(z3.Not(s.bhs[cfg.dummy].deleted))
    if cfg.stop_bh >= 0:
        stop = s.bhs[cfg.stop_bh]
        parts.append(z3.Implies(z3.Not(stop.alive), z3.And(
            stop.deleted, z3.Not(stop.scheduled), z3.Not(stop.pending), z3.Not(s.stopping))))
    else:
        parts.append(z3.Not(s.stopping))
    return z3.And(*parts)


def _balance(enc: Encoding, s: SymState) -> Term:
    lock = s.lock
    parts = [z3.Implies(lock.depth > 0, lock.holder >= 0)]
    for t, th in enumerate(s.threads):
        owner = z3.And(lock.holder == t, lock.depth > 0)
        parts.append(z3.If(owner, th.depth == lock.depth, th.depth == 0))
    return z3.And(*parts)


def _notify_count(enc: Encoding, s: SymState) -> Term:
    total = z3.BitVecVal(0, WIDTH)
    for role, th in zip(enc.config.roles, s.threads, strict=True):
        sleeping = z3.Or(*(th.pc == L(x) for x in ("poll.scan", "poll.wait", "poll.dec")))
        total = total + z3.If(sleeping, z3.BitVecVal(2, WIDTH),
                              z3.BitVecVal(0, WIDTH))
        if role == "gsource":
            prepared = z3.Or(*(th.pc == L(x)
                               for x in ("gsource.scan", "gsource.wait", "gsource.check")))
            total = total + z3.If(prepared, z3.BitVecVal(1, WIDTH),
                                  z3.BitVecVal(0, WIDTH))
    return s.notify_me == total


STATED: tuple[Invariant, ...] = (
    Invariant("ranges", "shared integers within their types (holder, busy, queue slots "
              "-1..threads-1; depth 0..max_depth+1; notify_me 0..2*threads+1)", ranges),
    Invariant("stack-room", f"every stack holds at most {STACK_FREE} frames (slot "
              f"{STACK_FREE} of {STACK_CAP} is empty: a step's at most 4 pushes always fit)",
              _each_thread(lambda s, t: s.threads[t].frames[STACK_FREE][0] == 0)),
    Invariant("depth-balance", "a positive lock depth has a holder, whose own nesting count "
              "equals it; every other thread holds nothing (P1 without FIFO)", _balance),
    Invariant("queue-shape", "the lock's queue is a gap-free list of distinct threads",
              _queue_shape),
    Invariant("holder-not-queued", "the lock's holder is not in its queue",
              _each_thread(lambda s, t: z3.Implies(s.lock.holder == t,
                                                   z3.Not(_in_queue(s, t))))),
    Invariant("queued-waits", "a queued thread waits in acquire.wait or is running the "
              "contention callback (it holds the lock's internal mutex)",
              _each_thread(lambda s, t: z3.Implies(
                  _in_queue(s, t),
                  z3.Or(s.threads[t].pc == L("acquire.wait"), s.lock.busy == t)))),
    Invariant("kick-frame", "exactly the thread holding the internal mutex has a kick.done "
              "frame (is inside the contention callback)",
              _each_thread(lambda s, t: _has_frame(s, t, "kick.done") == (s.lock.busy == t))),
    Invariant("kick-is-queued", "the thread holding the internal mutex is queued",
              _each_thread(lambda s, t: z3.Implies(s.lock.busy == t, _in_queue(s, t)))),
    Invariant("waiting-is-queued", "a thread in acquire.wait is queued or has been handed "
              "the lock (holder at depth 0)",
              _each_thread(lambda s, t: z3.Implies(
                  s.threads[t].pc == L("acquire.wait"),
                  z3.Or(_in_queue(s, t), z3.And(s.lock.holder == t, s.lock.depth == 0))))),
    Invariant("handed-over-waits", "a holder at depth 0 (handed the lock) is in acquire.wait",
              _each_thread(lambda s, t: z3.Implies(
                  z3.And(s.lock.holder == t, s.lock.depth == 0),
                  s.threads[t].pc == L("acquire.wait")))),
    Invariant("waiters-have-holder", "while threads wait, the lock has a holder (FIFO "
              "hand-over: it is never free with a queue)",
              lambda enc, s: z3.Implies(s.lock.queue[0] != -1, s.lock.holder != -1)),
    Invariant("notify-me-count", "notify_me counts the pollers about to sleep: 2 per thread "
              "between a blocking aio_poll's increment and decrement, 1 for the GSource "
              "between prepare and check", _notify_count),
    Invariant("pending-is-scheduled", "every BH's pending history bit equals its scheduled "
              "flag", _each_bh(lambda enc, s, b: s.bhs[b].pending == s.bhs[b].scheduled)),
    Invariant("deleted-not-scheduled", "a deleted BH (not the stop one-shot) is not scheduled",
              _each_bh(lambda enc, s, b: None if b == enc.config.stop_bh else z3.Implies(
                  s.bhs[b].deleted, z3.Not(s.bhs[b].scheduled)))),
    Invariant("scheduling-not-deleted", "a user BH that a thread is inside qemu_bh_schedule "
              "of is not deleted", _user_not_deleted_while_scheduling),
    Invariant("list-shape", "user and dummy BHs are in the list, the dummy is never deleted, "
              "the stop one-shot is deleted and idle until inserted, stopping implies it was",
              _list_shape),
)


def candidate_invariants(enc: Encoding) -> list[Invariant]:
    """The stated invariants plus ``local(t)`` for each thread (computed now)."""
    out = list(STATED)
    for t in range(enc.config.threads):
        out.append(_local(enc, t, local_states(enc, t)))
    return out
