"""Structural oracle: the representation invariants of a quiescent event loop.

The runtime monitors judge what impl *does* (its trace events); this oracle judges what it
*leaves behind*.  A counter off by one (a walk counter that never returns to zero, a
pending-deletion count that forgets a BH) changes no event until much later, if ever: the
deleted BH is simply never reclaimed, the handler list grows, a timer sits in a list it
left.  Checked where nothing runs in the context (no walk, no poll, no lock holder), the
invariants below hold in every correct state, so a violation is a bug however it was
reached.  Prior art: representation invariants ("repOk", Liskov and Guttag; the Korat
and TestEra checkers) evaluated at quiescent points.

Used by the generated programs at their end (every IOThread joined, the main loop idle),
and by anyone who can stop a context: :func:`structure_violations` reads impl's private
fields directly, so call it only on a quiescent context; the two structures that other
threads may still touch then (a timer list, which a clock's control notifies, and the
thread pool, whose idle workers outlive the loop) are read under their own mutex.

The thread pool's rules are :func:`pool_violations`, which :func:`structure_violations`
applies to a live context's pool and which also takes the pool of a context already
closed (its shutdown is then judged too).  They compare the pool's counters with its
workers as they report themselves (``impl/_threadpool.py``, "Witnesses"): each worker's
:class:`~aioctx_verify.impl._threadpool.WorkerRecord` (its thread handle and the phase it
reports under the pool mutex) and the pool's ``shutdown_end``.  Those hold with the pool
mutex held at any moment, not only at rest, including the two transient states: a worker
started and not yet in its loop (counted, not idle: phase ``starting``) and one that left
its loop (no longer counted, its thread possibly still alive: phase ``exited``).
"""

from __future__ import annotations

from typing import Any

from aioctx_verify.vocab import PropertyName

__all__ = ["POOL_RULES", "STRUCTURE_PROPERTY", "STRUCTURE_RULES", "pool_violations",
           "structure_violations"]

#: The invariants, by rule name (each violation message starts with its rule).
STRUCTURE_RULES: dict[str, str] = {
    "walks-ended": "no BH or handler walk is under way: both walk counters are 0",
    "deletions-counted": "the pending-deletion count equals the deleted BHs still listed "
    "(a deleted BH the count forgets is never reclaimed)",
    "deleted-reclaimed": "no deleted, unscheduled BH is listed once a walk ended after its "
    "deletion (checked as: with no deletion pending, no deleted BH is listed)",
    "handlers-clean": "no handler marked deleted is listed when no removal is pending",
    "lock-free": "the context lock is not held: depth 0, no owner, no waiter",
    "counters-sane": "the external-disable count and the reference count are not negative",
    "timers-sorted": "each timer list holds armed timers only (expiry >= 0), once each, "
    "sorted by (expiry, arming order), all of its own clock",
    "pool-counts": "the thread pool's idle threads are at most its threads, both at least "
    "0 and at most its maximum; every queued request is live and queued",
    "pool-workers-counted": "the thread pool's thread count equals its workers started and "
    "not yet gone out of their loop, and each of those has a live thread",
    "pool-idle-counted": "the thread pool's idle count equals its workers waiting for work "
    "on the pool condition (a waiting worker is counted idle, a busy one is not)",
    "pool-shutdown-prompt": "a pool shutdown never waits until its deadline while no request "
    "is running (no function can keep a worker; only a stuck count, a stuck loop or a "
    "missed wake-up can)",
    "pool-shutdown-drained": "a pool shutdown that ended before its deadline left no worker "
    "counted",
    "pool-wakeup": "a request queued while a worker idles wakes it: no request waits until "
    "an idle worker's wait runs out (half its idle timeout or more)",
}

#: The rules :func:`pool_violations` checks (a subset of :data:`STRUCTURE_RULES`).
POOL_RULES: tuple[str, ...] = (
    "pool-counts", "pool-workers-counted", "pool-idle-counted", "pool-shutdown-prompt",
    "pool-shutdown-drained", "pool-wakeup",
)


#: The property each rule belongs to: the lock's to nested acquire (P1), the BH list's to
#: BH scheduling (P2), the rest to liveness (a leak or a stuck counter starves the loop).
STRUCTURE_PROPERTY: dict[str, PropertyName] = {
    "walks-ended": "LIVE", "deletions-counted": "P2", "deleted-reclaimed": "P2",
    "handlers-clean": "LIVE", "lock-free": "P1", "counters-sane": "LIVE",
    "timers-sorted": "LIVE", "pool-counts": "LIVE", "pool-workers-counted": "LIVE",
    "pool-idle-counted": "LIVE", "pool-shutdown-prompt": "LIVE", "pool-shutdown-drained": "LIVE",
    "pool-wakeup": "LIVE",
}


def _raw(cell: Any) -> Any:
    """An atomic cell's value without an operation (no scheduling point)."""
    return cell.value


def structure_violations(ctx: Any) -> list[str]:
    """Every representation invariant :data:`STRUCTURE_RULES` names that ``ctx`` (an
    :class:`~aioctx_verify.impl.AioContext` nobody is using right now) breaks, one line
    each, ``rule: what``."""
    out: list[str] = []
    name = getattr(ctx, "name", "ctx")
    if ctx._walking_bh != 0 or ctx._walking_handlers != 0:
        out.append(f"walks-ended: {name}: BH walk counter {ctx._walking_bh}, handler walk "
                   f"counter {ctx._walking_handlers}, with no walk under way")
    bhs = list(ctx._bhs)
    listed_deleted = sum(1 for bh in bhs if bh.deleted)
    pending = _raw(ctx._bh_deleted_cell)
    if pending != listed_deleted:
        out.append(f"deletions-counted: {name}: {pending} deletion(s) pending for "
                   f"{listed_deleted} deleted BH(s) listed")
    if pending == 0 and listed_deleted:
        out.append(f"deleted-reclaimed: {name}: {listed_deleted} deleted BH(s) listed with "
                   "no deletion pending")
    if not ctx._handlers_deleted and any(h.deleted for h in ctx._handlers):
        out.append(f"handlers-clean: {name}: a handler marked deleted is listed with no "
                   "removal pending")
    lock = ctx._lock
    owner = _raw(lock._owner_cell)
    waiting = lock._tail - lock._head - len(lock._abandoned)
    if lock._nesting != 0 or owner is not None or waiting > 0:
        out.append(f"lock-free: {name}: depth {lock._nesting}, owner {owner}, "
                   f"{waiting} waiter(s)")
    ext, ref = _raw(ctx._external_disable_cnt), _raw(ctx._refcnt)
    if ext < 0 or ref < 0:
        out.append(f"counters-sane: {name}: external-disable count {ext}, references {ref}")
    for tl in ctx.tlg.lists:
        with tl._mutex:  # a clock's control may still notify the list
            active = list(tl._active)
        keys = [(t.expire_time, t._seq) for t in active]
        if (any(k[0] < 0 for k in keys) or keys != sorted(keys)
                or len({id(t) for t in active}) != len(active)
                or any(t.timer_list is not tl for t in active)):
            out.append(f"timers-sorted: {name}: {tl.clock.name} list holds "
                       f"{[k[0] for k in keys]}")
    pool = ctx._pool
    if pool is not None:
        out += pool_violations(pool)
    return out


def pool_violations(pool: Any) -> list[str]:
    """Every rule of :data:`POOL_RULES` that ``pool`` (an
    :class:`~aioctx_verify.impl.ThreadPool`, its context open or closed) breaks, one line
    each, ``rule: what``.

    Everything is read under the pool's mutex, so it may be called while workers run (the
    counts are exact then too); a function that blocks a worker only keeps the shutdown
    rules quiet (it was running).  ``pool-shutdown-prompt`` assumes the shutdown's timeout
    is a safety net (the default 10 s), not a bound too short for woken idle workers to
    exit; a timeout of 0 (do not wait) is not judged.
    """
    out: list[str] = []
    name = getattr(pool.ctx, "name", "ctx")
    with pool._mutex:  # its idle workers outlive the loop's quiescence
        cur, idle = pool._cur_threads, pool._idle_threads
        live = {id(r) for r in pool._live}
        bad_queue = any(id(r) not in live or r.state.name != "QUEUED" for r in pool._queue)
        queued = len(pool._queue)
        records = [(w.phase, w.alive(), repr(w)) for w in pool._workers]
        end = pool.shutdown_end
        late = pool.late_starts
    if not (0 <= idle <= cur <= pool.max_threads) or bad_queue:
        out.append(f"pool-counts: {name}: {cur} thread(s), {idle} idle, {queued} queued")
    counted = [(phase, alive, what) for phase, alive, what in records if phase != "exited"]
    dead = [what for _phase, alive, what in counted if not alive]
    if cur != len(counted) or dead:
        phases = ", ".join(f"{n} {ph}" for ph in ("starting", "run", "wait")
                           if (n := sum(1 for c in counted if c[0] == ph)))
        out.append(f"pool-workers-counted: {name}: {cur} thread(s) counted for "
                   f"{len(counted)} worker(s) started and not gone ({phases or 'none'})"
                   + (f"; thread ended: {', '.join(dead)}" if dead else ""))
    waiting = sum(1 for phase, _alive, _what in counted if phase == "wait")
    if idle != waiting:
        out.append(f"pool-idle-counted: {name}: {idle} idle counted for {waiting} worker(s) "
                   "waiting for work")
    if late:
        out.append(f"pool-wakeup: {name}: {late} request(s) waited for an idle worker's "
                   "wait to run out (half its idle timeout or more) instead of waking it")
    if end is not None:
        if end.timed_out and end.running == 0 and end.timeout > 0:
            out.append(f"pool-shutdown-prompt: {name}: the shutdown waited out its "
                       f"{end.timeout:g} s deadline with no request running "
                       f"({end.threads} thread(s) still counted)")
        elif end.idle_expiry and end.timeout > 0:
            out.append(f"pool-shutdown-prompt: {name}: the shutdown's wait ran out at its "
                       f"{end.timeout:g} s deadline with no request running (its workers "
                       "were gone by then, unannounced: a missed wake-up)")
        if not end.timed_out and end.threads != 0:
            out.append(f"pool-shutdown-drained: {name}: the shutdown returned before its "
                       f"deadline with {end.threads} thread(s) still counted")
    return out
