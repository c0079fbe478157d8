"""The words every layer shares: trace events, thread ids, property names, strategy names,
the root error.

Why a module of its own: impl emits trace events, the model emits the same events along a
path, the properties' monitors consume them, and the reports name the properties they
broke.  With the vocabulary here (and nothing else), model, properties and reports depend
on this leaf module instead of on impl, and impl on nothing but it.  It imports nothing of
the project (enforced by ``tests/test_layers.py``); :mod:`aioctx_verify.impl` re-exports
everything its public API always offered (``impl.TraceEvent is vocab.TraceEvent``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NewType, Protocol, get_args

__all__ = [
    "DEFAULT_STRATEGIES",
    "PROPERTY_NAMES",
    "STRATEGY_NAMES",
    "AioCtxError",
    "PropertyName",
    "ThreadId",
    "TraceEvent",
    "TraceSource",
    "Tracer",
]

#: Identity of a thread as the platform sees it (``threading.get_ident`` on the real one,
#: a small stable integer on a controlled one).
ThreadId = NewType("ThreadId", int)

#: The properties the suite checks: P1 nested acquire, P2 lock-free BH scheduling, P3 mutual
#: exclusion during event-loop iterations, LIVE no lost wake-up, starvation or deadlock, and
#: progress of every part of the loop (timers, handlers, thread pool, dataplane, IOThread
#: stop, stop-the-world).
PropertyName = Literal["P1", "P2", "P3", "LIVE"]
#: Every :data:`PropertyName`, in the order reports list them.
PROPERTY_NAMES: tuple[PropertyName, ...] = get_args(PropertyName)

#: Every scheduling strategy of the controlled scheduler by name
#: (``stress.controlled.make_strategy`` builds each): the CLI's ``explore --strategy``, the
#: pytest plugin's marker, generated programs and the campaign take their names from here,
#: a leaf module, so that naming them (the plugin, at every pytest start) imports no
#: scheduler.
STRATEGY_NAMES: tuple[str, ...] = (
    "random", "pct", "dfs", "conflict", "pct-auto", "portfolio", "dpor",
)
#: The strategies a search runs when it is given none (every generated program, a campaign).
DEFAULT_STRATEGIES: tuple[str, ...] = ("random", "pct", "dfs", "conflict")


class AioCtxError(Exception):
    """Root of every exception this project raises on purpose."""


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One step of the protocol, as seen by monitors.

    Attributes:
        kind: what happened: ``acquire`` (obj = depth after), ``release`` (obj = depth
            after), ``lock_wait`` (obj = ticket), ``lock_abandon`` (obj = ticket),
            ``contention_kick``, ``poll_begin`` (obj = blocking), ``poll_wait`` (obj =
            timeout ns, only when the poll may sleep), ``poll_woke`` (the platform poll
            returned; obj = ready fds), ``poll_end`` (detail = ``raised`` when the iteration
            did not reach its end), ``bh_new``, ``bh_schedule_begin``, ``bh_schedule_end``
            (detail = new / coalesced / idle), ``bh_run_begin``, ``bh_run_end``,
            ``bh_cancel``, ``bh_delete``, ``notify``, ``notify_accept``,
            ``handler_set`` (obj = handler, detail = ``fd=N r=0|1 w=0|1 ext=0|1``),
            ``handler_remove``, ``external_disable``, ``external_enable`` (obj = count
            after), ``handler_run_begin``, ``handler_run_end``, ``timer_mod`` (detail =
            ``clock:expire_ns``), ``timer_del``, ``timer_run_begin``, ``timer_run_end``,
            ``pool_done`` / ``pool_cancel`` / ``pool_complete`` (obj = request, detail = its
            return value), ``pool_shutdown``, ``dp_start``, ``dp_stop``, ``dp_kick``,
            ``dp_process`` (obj = device, detail = requests put on its ring so far),
            ``iothread_start``, ``iothread_stop_request``, ``iothread_stopping`` (its stop
            BH ran), ``iothread_stop``, ``stw_begin``, ``stw_paused``, ``stw_end``.
            Checkers may add kinds of their own to the same stream (monitors ignore kinds
            they do not know).
        thread: the platform thread that did it.
        ctx: the AioContext's id (0 when not applicable).
        obj: the BH / handler / timer id, or another integer payload (lock depth, progress).
        detail: free text (callback name, ``blocking``) for human-readable traces.
    """

    kind: str
    thread: ThreadId
    ctx: int = 0
    obj: int = 0
    detail: str = ""


#: A trace listener: called once per event, in the order the events are emitted.
Tracer = Callable[[TraceEvent], None]


class TraceSource(Protocol):
    """Anything that emits trace events to its :attr:`tracer` (every impl platform does)."""

    #: The listener; ``None`` when nobody listens.
    tracer: Tracer | None
