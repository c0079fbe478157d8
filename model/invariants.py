"""The properties as model invariants: ``p1``/``p2``/``p3`` over a state, ``live`` over a path.

Why it exists: each property of :mod:`properties` is stated once in its module docstring and
checked in three forms; this is the model form, the oracle the runtime monitors are tested
against (tests/test_model.py feeds :func:`model.events_of` of every searched path to the
monitors and compares verdicts step by step).  The state keeps the history each statement
needs (see :class:`model.BHState`, :class:`model.LockState`, :class:`model.ThreadState`).

* :func:`p1` (properties/_p1_nested_acquire.py): the lock's depth equals its owner's own
  nesting count and every other thread holds nothing (depth balance, owner unique, so a
  release by a non-owner that was accepted shows up as a mismatch); and the lock was never
  granted out of ticket order (FIFO).  "Never stuck behind a blocked poller" is liveness.
* :func:`p2` (properties/_p2_bh_scheduling.py): no lock was taken or waited for inside
  ``qemu_bh_schedule``; a schedule that took effect is not lost (``pending`` implies
  ``scheduled``); no run began without a pending schedule or after ``qemu_bh_delete``; no BH
  ran twice in one ``aio_poll`` iteration of one thread.
* :func:`p3` (properties/_p3_mutual_exclusion.py): at most one thread is inside
  ``aio_poll``, and it holds the context (so callbacks, which run inside it, run in the
  owner, and nobody else is granted the context meanwhile).
* :func:`live` (properties/_liveness.py): from the path's last state a *rest* state is still
  reachable: every client finished, every poller asleep with nothing due (or ended).  Its
  finite witnesses are a deadlock (no action enabled, not at rest: e.g. an acquirer stuck
  behind a poller that nobody kicks, or a poller asleep while a BH is scheduled and nothing
  can wake it) and a busy loop (the pollers can run forever without reaching rest, as with
  the event left set by docs/aio_notify_accept.promela's BUG1).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from ._actions import successors
from ._state import ModelError, State

__all__ = ["can_reach_rest", "is_rest", "live", "p1", "p2", "p3", "violated"]

#: States a forward search of :func:`live` may visit before giving up.
LIVE_BOUND = 500_000


def p1(state: State) -> bool:
    """P1 nested acquire correctness (FIFO, depth balance, owner unique)."""
    lock = state.lock
    if lock.barged:
        return False
    if lock.depth > 0 and lock.holder < 0:
        return False
    for t, th in enumerate(state.threads):
        if t == lock.holder and lock.depth > 0:
            if th.depth != lock.depth:
                return False
        elif th.depth != 0:
            return False
    return True


def p2(state: State) -> bool:
    """P2 lock-free BH scheduling (lock-free, not lost, no spurious run, once per iteration)."""
    for bh in state.bhs:
        if bh.bad_run or (bh.pending and not bh.scheduled):
            return False
    return all(not th.sched_lock and max(th.runs, default=0) <= 1 for th in state.threads)


def p3(state: State) -> bool:
    """P3 mutual exclusion: one thread inside aio_poll at most, and it owns the context."""
    inside = [t for t, th in enumerate(state.threads) if th.in_poll]
    if len(inside) > 1:
        return False
    lock = state.lock
    return all(lock.holder == t and lock.depth > 0 for t in inside)


def violated(state: State) -> str | None:
    """The first of ``"P1"``, ``"P2"``, ``"P3"`` that ``state`` violates, or None."""
    if not p1(state):
        return "P1"
    if not p2(state):
        return "P2"
    if not p3(state):
        return "P3"
    return None


def is_rest(state: State, *, terminal: bool | None = None) -> bool:
    """Whether ``state`` is a proper end: no action enabled, every client finished, every
    poller ended or asleep in its wait, and (while a poller is alive) nothing due: no
    non-idle BH scheduled, no timer due, no handler ready.
    """
    if terminal is None:
        terminal = not successors(state)
    if not terminal:
        return False
    cfg = state.config
    alive = False
    for role, th in zip(cfg.roles, state.threads, strict=True):
        if th.pc == "end":
            continue
        if role == "client" or th.pc not in ("poll.wait", "gsource.wait"):
            return False
        alive = True
    if not alive:
        return True
    # An idle BH is not due: qemu_bh_schedule_idle never notifies, so it waits for the next
    # wake-up (QEMU's documented best effort), which is no lost wake-up.
    return not (
        any(bh.alive and bh.scheduled and not bh.idle for bh in state.bhs)
        or any(state.armed)
        or any(state.ready)
    )


def can_reach_rest(state: State, max_states: int = LIVE_BOUND) -> bool:
    """Whether some path from ``state`` reaches a rest state (forward breadth-first search).

    Raises:
        ModelError: more than ``max_states`` states were needed to decide.
    """
    seen = {state}
    todo = deque([state])
    while todo:
        s = todo.popleft()
        nxt = successors(s)
        if not nxt and is_rest(s, terminal=True):
            return True
        for _, s2 in nxt:
            if s2 not in seen:
                if len(seen) >= max_states:
                    raise ModelError(f"live(): undecided after {max_states} states")
                seen.add(s2)
                todo.append(s2)
    return False


def live(path: Sequence[State]) -> bool:
    """Liveness on a path (a sequence of states): its last state can still reach rest."""
    if not path:
        raise ModelError("live() needs a non-empty path of states")
    return can_reach_rest(path[-1])
