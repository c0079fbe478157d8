"""Publication oracle: a BH's callback sees what its schedulers wrote before scheduling it.

Rule 3 of the threading model lets any thread hand work to another context by writing the
work's inputs and calling ``qemu_bh_schedule``; the callback that the schedule causes (or
coalesces into) must see those inputs.  impl owes it through the ``scheduled`` flag: a
schedule's exchange releases, the poller's claiming exchange acquires, and every write to
the flag in between is an RMW that continues the release sequence (C11 7.17.3).  A bug that
breaks the chain (a schedule that stores instead of exchanging, a claim that loads then
stores, a relaxed ordering) changes no value the monitors see: only the callback's view of
the scheduler's *other* data goes stale, and only a memory model with stale reads shows it.

So, on the controlled platform under ``c11``, each script thread writes a per-(BH, thread)
relaxed atomic cell (a sequence number, its ``n``-th schedule of that BH) right before each
``qemu_bh_schedule`` it calls, and each run of the BH reads every such cell, relaxed.  A
relaxed load may read a stale write unless happens-before makes the newer one visible, so a
broken chain lets the explorer pick the stale value.  At the end of the program (every
thread joined or idle), for each BH, each script thread's *last* schedule of it that was
consumed by a run (the BH ran after that schedule began, nothing cancelled or deleted it
since, and its flag is clear at the end, so no later claim is pending) happens-before the
BH's last run, directly or through earlier runs of the same context (serialised by its
lock): the last run must have read that schedule's number or a later one.

The same holds for a thread that observes the flag with ``is_scheduled`` (a seq_cst load):
having read it from a write that a script's schedule's exchange heads the release sequence
of (only RMWs since: a BH run's claim, another schedule; a cancel's or delete's plain store
ends it), it must be guaranteed to see what that script published before the schedule.
That is checked on the querying thread's view right after the query (no load needed).

The same for ``external_disabled`` (:class:`ExternalPublication`: the count's seq_cst RMWs)
and for ``statistics()`` / ``debug_snapshot()`` (:class:`HandlerPublication`: the handler
view's release stores and the queries' acquire loads).

Prior art: the message-passing (MP) litmus shape, and the bh_data probe that checks it on
one producer; this oracle checks it for every shared BH of a generated program.
``qemu_bh_schedule_idle`` is left out: when it finds the BH already scheduled it returns
without writing the flag (no release of its own, as QEMU's), so it promises its caller's
inputs to no particular run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aioctx_verify.impl import Ordering

__all__ = ["ExternalPublication", "HandlerPublication", "Publication"]

_RELAXED = Ordering.RELAXED


class _Cells:
    """Per-(key, script) relaxed cells a script writes its ``n``-th number to before its
    ``n``-th publishing call (the cell's ``n``-th write is its number ``n``)."""

    cells: dict[tuple[int, int], Any]

    def visible(self, key: int, k: int, position: Callable[[Any], int | None]) -> int | None:
        """The newest number of script ``k``'s cell for ``key`` that the calling thread is
        guaranteed to read (``position``: the platform's ``c11_position``): any older one
        is still readable by a relaxed load when this is below what is required."""
        cell = self.cells.get((key, k))
        return None if cell is None else position(cell)


class _ContextCells(_Cells):
    """Cells per (context, script), for a publication a script makes before its calls on a
    context; the script's ``n``-th such call publishes ``n``."""

    def __init__(self, p: Any, ctxs: Iterable[int], scripts: int, label: str) -> None:
        self.cells = {
            (c, k): p.atomic(0, f"pub.{label}{c}.T{k}") for c in ctxs for k in range(scripts)
        }
        self._n: dict[tuple[int, int], int] = {}

    def before(self, c: int, k: int) -> int:
        """Script ``k`` is about to make such a call on context ``c``: publish its number."""
        n = self._n.get((c, k), 0) + 1
        self._n[(c, k)] = n
        self.cells[(c, k)].store(n, _RELAXED)
        return n


class Publication(_Cells):
    """The cells, the numbers written and the values each BH's latest run read.

    Args:
        p: the platform (its ``atomic`` makes the cells; created by thread 0 before any
            script starts, so their creation is ordered before every use).
        bhs: the shared BHs' indices.
        scripts: how many script threads there are.
    """

    def __init__(self, p: Any, bhs: Iterable[int], scripts: int) -> None:
        self.cells = {
            (j, k): p.atomic(0, f"pub.bh{j}.T{k}") for j in bhs for k in range(scripts)
        }
        #: (bh, script) -> the number its last schedule published, and that schedule's
        #: log index (when it began).
        self.last: dict[tuple[int, int], tuple[int, int]] = {}
        #: bh -> script -> the number the BH's latest run read.
        self.seen: dict[int, dict[int, int]] = {}
        #: bh -> (position of a script's schedule's write of the flag, script, number).
        self.flag_writes: dict[int, list[tuple[int, int, int]]] = {}

    def before_schedule(self, j: int, k: int, begin: int) -> None:
        """Script ``k`` is about to ``qemu_bh_schedule`` BH ``j`` (log index ``begin``)."""
        cell = self.cells.get((j, k))
        if cell is None:
            return
        n = self.last.get((j, k), (0, -1))[0] + 1
        cell.store(n, _RELAXED)
        self.last[(j, k)] = (n, begin)

    def after_schedule(self, j: int, k: int, position: int | None) -> None:
        """Script ``k``'s schedule of BH ``j`` wrote the flag at ``position`` (c11)."""
        last = self.last.get((j, k))
        if position is not None and last is not None:
            self.flag_writes.setdefault(j, []).append((position, k, last[0]))

    def query_required(
        self, j: int, position: int, chain: Callable[[int, int], bool]
    ) -> dict[int, int]:
        """Script -> the least number a thread that read BH ``j``'s flag from the write at
        ``position`` with ``is_scheduled`` (a seq_cst load) must be guaranteed to see:
        every script schedule whose exchange (a release RMW) heads a release sequence
        reaching that write (``chain(first, last)``: every write after ``first`` up to
        ``last`` is an RMW; a cancel's or delete's plain store ends the sequence)."""
        need: dict[int, int] = {}
        for pos, k, n in self.flag_writes.get(j, ()):
            if pos <= position and n > need.get(k, 0) and chain(pos, position):
                need[k] = n
        return need

    def on_run(self, j: int) -> None:
        """A run of BH ``j`` starts its callback: read every script's cell for it."""
        self.seen[j] = {
            k: cell.load(_RELAXED) for (b, k), cell in self.cells.items() if b == j
        }

    def violations(
        self,
        last_run: Mapping[int, int],
        last_cancel: Mapping[int, int],
        pending: Mapping[int, bool],
    ) -> list[tuple[int, int, int, int]]:
        """``(bh, script, published, read)`` for every consumed schedule whose number the
        BH's last run did not read (see the module docstring).

        Args:
            last_run: bh -> log index of its last run (absent: never ran).
            last_cancel: bh -> log index of its last cancel or delete (absent: none).
            pending: bh -> its flag is set at the end (a claim is still to come).
        """
        out: list[tuple[int, int, int, int]] = []
        for (j, k), (n, begin) in sorted(self.last.items()):
            if pending.get(j, False) or j not in self.seen:
                continue
            if last_run.get(j, -1) < begin or last_cancel.get(j, -1) > begin:
                continue
            got = self.seen[j].get(k, 0)
            if got < n:
                out.append((j, k, n, got))
        return out


class ExternalPublication(_ContextCells):
    """The same message-passing check through ``aio_disable_external`` /
    ``aio_enable_external`` and ``external_disabled``.

    The external-disable count is written only by seq_cst RMWs (a disable's fetch_add, an
    enable's compare-exchange), so every write to it continues the release sequence of every
    earlier one, and ``external_disabled``, a seq_cst load, acquires: a thread that reads
    the count from the write at position ``i`` of its modification order has synchronised
    with every disable and enable at ``i`` or before, and sees what each of their threads
    wrote before it.  So under ``c11`` each script thread writes a per-(context, thread)
    relaxed cell (its ``n``-th disable or enable of that context) right before each disable
    and enable, the position of the write that RMW made is recorded
    (``ControlledPlatform.c11_position``), and after every ``external_disabled`` query the
    querying thread must be guaranteed to see, in each cell of that context, at least the
    number published before every disable and enable at or before the position it read:
    its view of the cell (the newest write it can no longer read past) must reach that
    number.  A relaxed RMW or a relaxed query load breaks the chain, and a stale number is
    then readable; the check needs no load, so one run that reaches the query decides it
    (the explorer need not also pick the stale read).

    Args:
        p: the platform (thread 0 makes the cells before any script starts).
        ctxs: the contexts' indices.
        scripts: how many script threads there are.
    """

    def __init__(self, p: Any, ctxs: Iterable[int], scripts: int) -> None:
        super().__init__(p, ctxs, scripts, "ext")
        #: ctx -> (position of the RMW's write, script, number published before it).
        self.done: dict[int, list[tuple[int, int, int]]] = {}

    def after(self, c: int, k: int, n: int, position: int | None) -> None:
        """That disable or enable wrote the count at ``position`` (None: not ``c11``)."""
        if position is not None:
            self.done.setdefault(c, []).append((position, k, n))

    def required(self, c: int, position: int) -> dict[int, int]:
        """Script -> the least number a reader of the count's write at ``position`` must
        see in that script's cell."""
        need: dict[int, int] = {}
        for pos, k, n in self.done.get(c, ()):
            if pos <= position and n > need.get(k, 0):
                need[k] = n
        return need


class HandlerPublication(_ContextCells):
    """The same check through a context's published handler view: ``statistics()`` and
    ``debug_snapshot()`` read it with one acquire load, and every handler change stores it
    with a release store, under the context (``_publish_handlers``).  Those are plain
    stores, not RMWs, so a reader synchronises with exactly the change whose store it read
    (a later store of another thread continues no release sequence): a thread that read the
    view a script's ``aio_set_fd_handler`` / ``aio_set_event_notifier`` stored must be
    guaranteed to see what that script wrote before the call.  A relaxed store or a relaxed
    query load breaks it.  A call that stored nothing (removing a handler that is not
    there) records nothing: the caller says whether the position it sees is its own write.

    Args:
        p: the platform (thread 0 makes the cells before any script starts).
        ctxs: the contexts' indices.
        scripts: how many script threads there are.
    """

    def __init__(self, p: Any, ctxs: Iterable[int], scripts: int) -> None:
        super().__init__(p, ctxs, scripts, "handlers")
        #: ctx -> position of a script's store of the view -> (script, number before it).
        self.stores: dict[int, dict[int, tuple[int, int]]] = {}

    def after(self, c: int, k: int, n: int, position: int | None, own: bool) -> None:
        """That change left the script's view of the handler view at ``position``; ``own``:
        the write there is the script's (a change that stored nothing leaves it at an
        earlier write, possibly an earlier one of its own, which must not be claimed)."""
        if position is None or not own:
            return
        mine = self.stores.setdefault(c, {})
        if position not in mine:
            mine[position] = (k, n)

    def required(self, c: int, position: int) -> dict[int, int]:
        """Script -> the least number a reader of the view's write at ``position`` must see."""
        got = self.stores.get(c, {}).get(position)
        return {} if got is None else {got[0]: got[1]}
