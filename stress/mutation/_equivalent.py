"""Generated mutants reviewed as *equivalent*: no execution the seam allows tells them apart
from impl, so no checker can ever kill them and they leave the score's denominator.

Each entry maps a stable mutant name (``operator:file:line:col:variant``, see
:mod:`aioctx_verify.stress.mutation._operators`) to one line saying why it is equivalent.
Add an entry only after reasoning it through against the platform contract
(:mod:`aioctx_verify.impl._platform`: C11 orderings, QEMU's barriers), not against what
our platforms happen to simulate: a relaxed load that only an ARM machine would expose is a
*survivor* (a gap of the checkers), not an equivalent mutant.  A name that no longer matches
a generated mutant (impl moved) is reported by ``aioctx-verify mutate`` and must be
re-reviewed, never carried over by line arithmetic.
"""

from __future__ import annotations

__all__ = ["EQUIVALENT"]

_HANDLER = (
    "two plain stores to a handler being set up, under the context lock: every reader is the "
    "lock holder, and debug_snapshot's racy read sees at most one of the two fields"
)
_POOL_LISTS = "both lists are only ever read and written with the pool mutex held"
_POOL_ORDER = (
    "ret is ordered before the completion BH's read by the pool mutex (worker writes ret, "
    "takes the mutex, sets DONE; the BH sees DONE under the mutex): the fence is redundant"
)
_NOTIFY_UNDER_LOCK = (
    "notify and the store are in one critical section and the waiter re-checks the field "
    "under the same mutex after its wait returns: no thread can see them in between"
)
_CANCEL = (
    "written under the pool mutex; state is read only under it, ret and cancelled only "
    "under it or after DONE was seen under it"
)

EQUIVALENT: dict[str, str] = {
    # AioContext: fields of one handler, set up while the context is held.
    "swap-adjacent:impl/_context.py:784:12:next": _HANDLER,
    "swap-adjacent:impl/_context.py:785:12:next": _HANDLER,
    "swap-adjacent:impl/_context.py:786:12:next": _HANDLER,
    "swap-adjacent:impl/_context.py:787:12:next": _HANDLER,
    "swap-adjacent:impl/_context.py:788:12:next": _HANDLER,
    "swap-adjacent:impl/_context.py:789:12:next": (
        "node.events and _poll_gen are read only by the context's holder (_update_poll_set, "
        "dispatch), which wrote them: program order, not interleaving, decides"
    ),
    "swap-adjacent:impl/_context.py:814:16:next": _HANDLER,
    "swap-adjacent:impl/_context.py:815:16:next": (
        "revents and _handlers_deleted are read only by the context's holder, which wrote them"
    ),
    "swap-adjacent:impl/_context.py:877:8:next": (
        "_poll_set_key is read only by the holder that writes it; debug_snapshot reads _polled "
        "alone"
    ),
    "off-by-one:impl/_context.py:790:30:plus1": (
        "_poll_gen is a generation compared for equality only; steps of 2 never repeat a value"
    ),
    "off-by-one:impl/_context.py:819:30:plus1": (
        "_poll_gen is a generation compared for equality only; steps of 2 never repeat a value"
    ),
    # IOThread start-up hand-shake.
    "swap-adjacent:impl/_iothread.py:149:12:next": _NOTIFY_UNDER_LOCK,
    # Thread pool.
    "swap-adjacent:impl/_threadpool.py:133:12:next": _POOL_LISTS,
    "swap-adjacent:impl/_threadpool.py:175:12:next": _NOTIFY_UNDER_LOCK,
    "swap-adjacent:impl/_threadpool.py:163:20:next": _POOL_ORDER,
    "fence-drop:impl/_threadpool.py:164:20:drop": _POOL_ORDER,
    "fence-drop:impl/_threadpool.py:212:12:drop": _POOL_ORDER,
    "swap-adjacent:impl/_threadpool.py:212:12:next": _POOL_ORDER,
    "swap-adjacent:impl/_threadpool.py:188:16:next": _CANCEL,
    "swap-adjacent:impl/_threadpool.py:189:16:next": _CANCEL,
    # Timers.
    "off-by-one:impl/_timers.py:140:31:plus1": (
        "_next_list only makes unique keys of a dictionary; steps of 2 are unique too"
    ),
    "off-by-one:impl/_timers.py:252:25:plus1": (
        "_seq only breaks ties of bisect_right on (expire, seq); any non-decreasing sequence "
        "inserts a timer after its equals, as 1-steps do"
    ),
    "off-by-one:impl/_timers.py:252:25:minus1": (
        "with every _seq 0, bisect_right on (expire, 0) still inserts a timer after all its "
        "equals: the same position as increasing sequence numbers give"
    ),
    "swap-adjacent:impl/_timers.py:253:12:next": (
        "_seq is read only under the list mutex that both stores hold; a racy expire_time "
        "reader sees the same sequence of values"
    ),
}
