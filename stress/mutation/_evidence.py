"""Structural evidence that real threads are stuck, and how slow the machine is right now.

On real threads wall-clock time is all there is to notice that something never happens, but
an expired wait is not evidence: the machine may just be slow (loaded, few cores, a long
GIL switch interval).  A real-thread check that runs out of patience therefore asks
:func:`stuck_evidence` before it reports a LIVE failure: an IOThread asleep in an unbounded
poll with its notifier clear and work due (a lost wake-up), or a context's lock free with
waiters queued (a lost hand-over), seen twice across a window scaled by
:func:`slowness`.  Without such evidence the check is *inconclusive*
(:class:`~aioctx_verify.stress.mutation.Inconclusive`), never a property failure.

Everything read is stable state (:meth:`~aioctx_verify.impl.AioContext.debug_snapshot`, the
lock's statistics, the kernel's view of fds), so a slow machine delays evidence but cannot
make it up.
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Iterable, Sequence

from aioctx_verify.impl import AioContext, AioCtxError, IOThread

__all__ = ["pending_work", "slowness", "stuck_evidence"]

#: A fixed amount of pure-Python work; its duration at import is the machine's baseline.
_WORK = 20_000


def _work_seconds() -> float:
    t0 = time.perf_counter()
    x = 0
    for i in range(_WORK):
        x ^= i
    return max(1e-6, time.perf_counter() - t0)


_BASELINE = min(_work_seconds() for _ in range(3))


def slowness() -> float:
    """How much slower than at import this thread gets a fixed amount of work done now
    (1.0: as fast; clamped to 1-100).  Scales the windows of :func:`stuck_evidence`."""
    return min(100.0, max(1.0, _work_seconds() / _BASELINE))


def _readable(fds: Sequence[int]) -> set[int]:
    """Which of ``fds`` are readable right now (a closed fd counts as not readable)."""
    if not fds:
        return set()
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    try:
        return {fd for fd, ev in poller.poll(0) if ev & select.POLLIN}
    except (OSError, ValueError):
        return set()


def pending_work(it: IOThread) -> tuple[str, ...] | None:
    """What waits for ``it`` while its thread sleeps in an unbounded poll with its context's
    notifier clear, or None (running, sleeping with a timeout, nothing pending, or the kernel
    has already woken it).

    Pending work: a scheduled BH (the contention kick is the dummy BH), lock waiters queued
    behind the sleeper, a stop request, an expired timer, or a ready fd of an enabled handler
    that the poll set does not watch.  Everything comes from the context's
    :meth:`~aioctx_verify.impl.AioContext.debug_snapshot` and the kernel's view of its fds.
    """
    tid = it.thread_id
    if tid is None:
        return None
    snap = it.ctx.debug_snapshot()
    if snap.closed or not snap.asleep:
        return None
    ready = _readable([snap.notifier_fd, *snap.read_fds])
    if snap.notifier_fd in ready:
        return None  # the kernel has woken it: slow, not lost
    pending: list[str] = []
    if snap.kick_scheduled:
        pending.append("contention-kick")
    pending.extend(f"bh:{name}" for name in snap.scheduled_bhs)
    st = snap.lock
    if st.waiters and st.owner == tid:
        pending.append(f"lock-waiters:{st.waiters}")
    if it.stopping:
        pending.append("stop-requested")
    if snap.timer_deadline_ns == 0:
        pending.append("timer-expired")
    ext_off = snap.external_disable_cnt > 0
    for fd in snap.read_fds:
        if fd in ready and not (ext_off and fd in snap.external_fds) and fd not in snap.polled_fds:
            pending.append(f"fd:{fd}")
    return tuple(pending) or None


def _sample(its: Sequence[IOThread], ctxs: Sequence[AioContext]) -> dict[str, object]:
    """What looks stuck now, keyed by a description, with what must not change meanwhile."""
    seen: dict[str, object] = {}
    for it in its:
        try:
            pend = pending_work(it)
        except (AioCtxError, OSError):
            continue
        if pend is not None:
            seen[f"IOThread {it.name} asleep in aio_poll with {', '.join(pend)} pending and "
                 "its notifier clear"] = it.iterations
    for ctx in ctxs:
        try:
            st = ctx.debug_snapshot().lock
        except (AioCtxError, OSError):
            continue
        if st.owner is None and st.waiters > 0:
            # What must not change: the queue, and the tickets served (a grant in between,
            # even with a new waiter queued behind it, is progress).
            seen[f"context {ctx.name}'s lock free with {st.waiters} waiter(s) queued"] = (
                st.waiters,
                st.served,
            )
    return seen


def stuck_evidence(
    iothreads: Iterable[IOThread],
    contexts: Iterable[AioContext] = (),
    *,
    window: float = 0.5,
    stop: threading.Event | None = None,
) -> str | None:
    """Structural evidence that the system is stuck, or None (the machine may be slow).

    Samples ``iothreads`` (an unbounded sleep with work due, see :func:`pending_work`) and
    the locks of ``contexts`` (free, waiters queued) twice, ``window * slowness()`` seconds
    apart (at most 5 s); evidence is what both samples show unchanged (the IOThread ran no
    iteration in between).  ``iothreads``' own contexts are checked too.

    Returns:
        One sentence naming what was stuck, or None.
    """
    its = list(iothreads)
    ctxs = list({id(c): c for c in [*contexts, *(it.ctx for it in its)]}.values())
    first = _sample(its, ctxs)
    if not first:
        return None
    wait = min(5.0, window * slowness())
    if stop is not None:
        stop.wait(wait)
    else:
        threading.Event().wait(wait)
    second = _sample(its, ctxs)
    both = [k for k, v in first.items() if second.get(k) == v]
    if not both:
        return None
    return "; ".join(both) + f" (seen twice, {wait:.2f} s apart)"
