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

from collections.abc import Sequence
from typing import Any, ClassVar

from aioctx_verify.vocab import PropertyName, TraceEvent

from ._monitor import Monitor, Violation

__all__ = ["POOL_RULES", "QUIESCENT_RULES", "STRUCTURE_PROPERTY", "STRUCTURE_RULES",
           "LOCK_RULES", "StateMonitor", "pool_violations", "quiescent_violations",
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
    "ring-kicked": "a started dataplane device with requests on its available ring has its "
    "host notifier set (each request was kicked after the last batch was taken, and only the "
    "handler, before it takes a batch, clears the notifier)",
}

#: The rules that hold whenever every thread of a run is blocked, not only at rest: each
#: guards state changed under a lock that no thread holds while it blocks (the BH list's,
#: a timer list's, the pool's, the ring's) or by atomic counters, so no blocked thread can
#: be half-way through a change.  The walk counters, the lock and the reclamation rules
#: are not among them: a thread may sleep inside a walk (a nested ``aio_poll`` of a
#: callback) or hold the context while it waits.
QUIESCENT_RULES: tuple[str, ...] = (
    "deletions-counted", "counters-sane", "timers-sorted", "pool-counts",
    "pool-workers-counted", "pool-idle-counted", "pool-wakeup", "ring-kicked",
)

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
    "pool-wakeup": "LIVE", "ring-kicked": "LIVE",
}


def _raw(cell: Any) -> Any:
    """An atomic cell's value without an operation (no scheduling point)."""
    return cell.value


def structure_violations(ctx: Any) -> list[str]:
    """Every representation invariant :data:`STRUCTURE_RULES` names that ``ctx`` (an
    :class:`~aioctx_verify.impl.AioContext` nobody is using right now) breaks, one line
    each, ``rule: what``."""
    return _context_violations(ctx, locked=True)


def _context_violations(ctx: Any, *, locked: bool) -> list[str]:
    """:func:`structure_violations`; ``locked``: read a timer list and the pool under
    their mutex (else raw: the caller guarantees that no thread can run)."""
    out: list[str] = []
    name = getattr(ctx, "name", "ctx")
    if ctx._walking_bh != 0 or ctx._walking_handlers != 0:
        out.append(f"walks-ended: {name}: BH walk counter {ctx._walking_bh}, handler walk "
                   f"counter {ctx._walking_handlers}, with no walk under way")
    listed_deleted, pending = _deletion_counts(ctx)
    out += _deletions(ctx, listed_deleted, pending)
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
    return out + _quiescent_context(ctx, locked=locked)


def _quiescent_context(ctx: Any, *, locked: bool) -> list[str]:
    """The context rules that hold whenever every thread is blocked (the
    :data:`QUIESCENT_RULES` of a context but ``deletions-counted``)."""
    out: list[str] = []
    name = getattr(ctx, "name", "ctx")
    ext, ref = _raw(ctx._external_disable_cnt), _raw(ctx._refcnt)
    if ext < 0 or ref < 0:
        out.append(f"counters-sane: {name}: external-disable count {ext}, references {ref}")
    for tl in ctx.tlg.lists:
        if locked:
            with tl._mutex:  # a clock's control may still notify the list
                out += _timer_list(name, tl)
        else:
            out += _timer_list(name, tl)
    pool = ctx._pool
    if pool is not None:
        lines = pool_violations(pool, locked=locked)
        out += lines if locked else [x for x in lines if x.split(":", 1)[0] in QUIESCENT_RULES]
    return out


def _deletion_counts(ctx: Any) -> tuple[int, int]:
    """(deleted BHs still listed, the pending-deletion count)."""
    return sum(1 for bh in ctx._bhs if bh.deleted), _raw(ctx._bh_deleted_cell)


def _deletions(ctx: Any, listed_deleted: int | None = None, pending: int = 0) -> list[str]:
    """``deletions-counted`` (guarded by the context's BH-list lock)."""
    if listed_deleted is None:
        listed_deleted, pending = _deletion_counts(ctx)
    if pending == listed_deleted:
        return []
    return [f"deletions-counted: {getattr(ctx, 'name', 'ctx')}: {pending} deletion(s) "
            f"pending for {listed_deleted} deleted BH(s) listed"]


def _timer_list(name: str, tl: Any) -> list[str]:
    """``timers-sorted`` for one timer list (guarded by its mutex)."""
    active = list(tl._active)
    keys = [(t.expire_time, t._seq) for t in active]
    if (any(k[0] < 0 for k in keys) or keys != sorted(keys)
            or len({id(t) for t in active}) != len(active)
            or any(t.timer_list is not tl for t in active)):
        return [f"timers-sorted: {name}: {tl.clock.name} list holds {[k[0] for k in keys]}"]
    return []


def pool_violations(pool: Any, *, locked: bool = True) -> list[str]:
    """Every rule of :data:`POOL_RULES` that ``pool`` (an
    :class:`~aioctx_verify.impl.ThreadPool`, its context open or closed) breaks, one line
    each, ``rule: what``.

    Everything is read under the pool's mutex, so it may be called while workers run (the
    counts are exact then too); a function that blocks a worker only keeps the shutdown
    rules quiet (it was running).  ``pool-shutdown-prompt`` assumes the shutdown's timeout
    is a safety net (the default 10 s), not a bound too short for woken idle workers to
    exit; a timeout of 0 (do not wait) is not judged.
    """
    name = getattr(pool.ctx, "name", "ctx")
    if locked:
        with pool._mutex:  # its idle workers outlive the loop's quiescence
            snap = _pool_snapshot(pool)
    else:
        snap = _pool_snapshot(pool)
    return _pool_rules(name, pool.max_threads, *snap)


def _pool_snapshot(pool: Any) -> tuple[Any, ...]:
    live = {id(r) for r in pool._live}
    bad_queue = any(id(r) not in live or r.state.name != "QUEUED" for r in pool._queue)
    records = [(w.phase, w.alive(), repr(w)) for w in pool._workers]
    return (pool._cur_threads, pool._idle_threads, bad_queue, len(pool._queue), records,
            pool.shutdown_end, pool.late_starts)


def _pool_rules(
    name: str, max_threads: int, cur: int, idle: int, bad_queue: bool, queued: int,
    records: list[tuple[str, bool, str]], end: Any, late: int,
) -> list[str]:
    out: list[str] = []
    if not (0 <= idle <= cur <= max_threads) or bad_queue:
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


def quiescent_violations(obj: Any) -> list[str]:
    """The rules of :data:`QUIESCENT_RULES` that ``obj`` breaks, one line each,
    ``rule: what``: ``obj`` is an open context (a closed one is judged at the end, by
    :func:`structure_violations` and :func:`pool_violations`) or a dataplane device.

    Call it only while every thread is blocked (a controlled platform's quiescent point):
    it reads impl's fields raw, taking no lock and adding no scheduling point."""
    if hasattr(obj, "host_notifier") and hasattr(obj, "_avail"):
        return _ring_violations(obj)
    if getattr(obj, "_closed", False):
        return []
    return _deletions(obj) + _quiescent_context(obj, locked=False)


def _ring_violations(dev: Any) -> list[str]:
    """``ring-kicked``: read from the ring and the notifier themselves, not from the trace
    events impl emits, so a handler that claims a batch it did not take is judged too."""
    if not dev.started or dev._transition:
        return []
    notifier = dev.host_notifier
    kicked = getattr(notifier._raw, "value", None)  # a controlled notifier's state
    if kicked is None or kicked or notifier.closed:
        return []
    n = len(dev._avail)
    if not n:
        return []
    return [f"ring-kicked: dataplane device {notifier.id}: {n} request(s) on its available "
            "ring and its host notifier clear: no handler run will take them until the guest "
            "kicks again"]


#: The rules checked at each release of the mutex that guards their state (see
#: :class:`StateMonitor`): a lock's invariant holds whenever the lock is free.
LOCK_RULES: tuple[str, ...] = (
    "deletions-counted", "timers-sorted", "pool-counts", "pool-workers-counted",
    "pool-idle-counted", "pool-wakeup",
)


class StateMonitor(Monitor):
    """The representation invariants while a controlled run goes on, on the contexts and
    devices a harness registered (the platform's ``watched``):

    * at each release of a mutex (an unlock, or a condition wait letting it go), the rules
      of :data:`LOCK_RULES` whose state that mutex guards: the BH-list lock's pending
      count, a timer list's order, the pool's counts.  A lock's invariant holds whenever
      the lock is free (Hoare's monitor invariant), so a write moved out of its critical
      section, or a critical section split in two, breaks it at the first release, in any
      schedule, not only where a second thread happens to interleave;
    * when an iteration of a context ends normally, ``deleted-reclaimed`` exactly: every
      BH deleted before it began and not scheduled is gone (its top-level walk reclaimed
      it; the end-of-run form of the rule can only check that a count is pending);
    * whenever every thread is blocked, :data:`QUIESCENT_RULES` (which adds the
      dataplane ring's kick): a count a race left wrong, or a ring left unkicked, is seen
      while the run goes on, not only if it is still wrong at the end (a later walk may
      mend the count, the end phase restarts the device).

    Each rule is reported once per object.  The checks read impl's fields raw and add no
    scheduling point."""

    prop: ClassVar[PropertyName] = "LIVE"  # each violation carries its rule's property

    def __init__(self, watched: Sequence[object]) -> None:
        super().__init__()
        self._watched = watched
        self._seen: set[tuple[str, int]] = set()
        # mutex id -> (mutex, what it guards: ("bh", ctx) / ("timers", ctx, list) /
        # ("pool", pool)); mutexes that guard nothing watched are remembered too (the
        # mutex objects are kept, so an id is never reused while mapped).
        self._guards: dict[int, tuple[object, tuple[Any, ...]]] = {}
        self._unguarded: dict[int, object] = {}
        self._contexts: dict[int, Any] = {}  # context id -> watched context
        self._deleted_at: dict[int, int] = {}  # BH id -> event index of its qemu_bh_delete
        self._polls: dict[tuple[int, int], list[int]] = {}  # (thread, ctx) -> begin indices

    def on_event(self, ev: TraceEvent) -> None:
        kind = ev.kind
        if kind == "bh_delete":
            self._deleted_at.setdefault(ev.obj, self._index)
        elif kind == "poll_begin":
            self._polls.setdefault((ev.thread, ev.ctx), []).append(self._index)
        elif kind == "poll_end":
            begins = self._polls.get((ev.thread, ev.ctx))
            if begins:
                begin = begins.pop()
                if ev.detail == "":  # the iteration ended normally
                    self._walk_ended(ev.ctx, begin)

    def _walk_ended(self, ctx_id: int, begin: int) -> None:
        """``deleted-reclaimed``, exactly: an iteration that began after a BH's
        ``qemu_bh_delete`` walked the BH list at top level and reclaimed it, so it is no
        longer listed when the iteration ends (unless scheduled again, which is misuse that
        P2's deleted-never-runs reports when it runs)."""
        ctx: Any = self._contexts.get(ctx_id)
        if ctx is None:
            self._map()  # a context registered since
            ctx = self._contexts.get(ctx_id)
        if ctx is None or ctx._walking_bh != 0:  # a nested iteration: the outer walk reclaims
            return
        stale = [bh.id for bh in ctx._bhs
                 if bh.deleted and not _raw(bh.scheduled)
                 and self._deleted_at.get(bh.id, begin) < begin]
        if stale:
            self._report(ctx, [
                f"deleted-reclaimed: {getattr(ctx, 'name', 'ctx')}: BH(s) {stale} deleted "
                f"before the iteration that began at event {begin} are still listed when it "
                "ended (its top-level BH walk did not reclaim them)"
            ], "when an iteration ended")

    def _report(self, obj: object, lines: list[str], when: str) -> None:
        for line in lines:
            rule, _, what = line.partition(": ")
            if (rule, id(obj)) in self._seen:
                continue
            self._seen.add((rule, id(obj)))
            self.violations.append(Violation(
                STRUCTURE_PROPERTY.get(rule, "LIVE"), rule, f"{when}: {what}",
                self._index, self._event,
            ))

    def quiescent(self) -> None:
        for obj in list(self._watched):
            self._report(obj, quiescent_violations(obj), "while every thread is blocked")

    def _map(self) -> None:
        for watched in list(self._watched):
            obj: Any = watched
            if not hasattr(obj, "_bh_lock"):
                continue
            self._contexts[obj.id] = obj
            self._guards[id(obj._bh_lock)] = (obj._bh_lock, ("bh", obj))
            for tl in obj.tlg.lists:
                self._guards[id(tl._mutex)] = (tl._mutex, ("timers", obj, tl))
            pool = obj._pool
            if pool is not None:
                self._guards[id(pool._mutex)] = (pool._mutex, ("pool", pool))

    def unlocked(self, mutex: object) -> None:
        """``mutex`` was just released (the platform's ``on_unlock``)."""
        key = id(mutex)
        got = self._guards.get(key)
        if got is None:
            if key in self._unguarded:
                return
            self._map()  # a context or pool registered or created since
            got = self._guards.get(key)
            if got is None:
                self._unguarded[key] = mutex
                return
        what = got[1]
        when = "when a thread released the lock that guards it"
        if what[0] == "bh":
            self._report(what[1], _deletions(what[1]), when)
        elif what[0] == "timers":
            self._report(what[2], _timer_list(getattr(what[1], "name", "ctx"), what[2]), when)
        else:
            pool = what[1]
            lines = _pool_rules(getattr(pool.ctx, "name", "ctx"), pool.max_threads,
                                *_pool_snapshot(pool))
            self._report(pool, [x for x in lines if x.split(":", 1)[0] in LOCK_RULES], when)
