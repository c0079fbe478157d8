"""Dynamic partial-order reduction: source sets with sleep sets, for ``sc``, ``tso`` and ``pso``.

:class:`DPORStrategy` explores one run per Mazurkiewicz class of complete runs: two runs are
equivalent when they consist of the same events and order every pair of *dependent* events
alike (Mazurkiewicz traces; Godefroid, "Partial-order methods for the verification of
concurrent systems", LNCS 1032, 1996).  The algorithm is source-DPOR with sleep sets (Abdulla,
Aronis, Jonsson and Sagonas, "Optimal dynamic partial order reduction", POPL 2014,
Algorithm 1); wakeup trees (their optimal variant) are not used, so a few runs may end
*sleep-set blocked* (pruned: an equivalent run was already explored), but no two complete
runs it explores are equivalent.

Processes and events (recorded by the platform, :class:`~._platform.Event`):

* each program thread is a process; a step is its pending operation plus its local code up
  to its next operation;
* under ``tso`` each thread's store buffer is a process of its own whose events are flushes
  of the oldest store; under ``pso`` each (thread, cell) buffer is one; a flush writes its
  cell in memory;
* virtual time jumping (only when every thread is blocked) is a ``clock`` event that
  depends on everything.

Two events of different processes are *dependent* when they access one object and at least
one writes it (two reads of one cell are independent, so reads-from is part of the
equivalence), when either is a ``glob`` event (a time jump, a yield), or when they are
``pso`` flushes of one thread in different store-store epochs.  The platform makes every
enabling or disabling relation a conflict on some object (pseudo-objects included):

==================================  ===================================================
step                                accesses
==================================  ===================================================
load of cell ``c`` by ``t``         reads ``c`` unless forwarded from ``t``'s buffer;
                                    reads ``buf(t, c)`` (tso/pso: a flush decides
                                    whether it is forwarded)
store (sc)                          writes ``c``
store (tso/pso)                     writes ``buf(t, c)`` (its flush comes after it); a
                                    pso release store writes ``bufall(t)``
drain (seq_cst store, RMW, fence,   writes ``bufall(t)`` (it disables every pending
lock, notifier, poll, join, exit)   flush of ``t``), every drained cell and its ``buf``
flush of ``t``'s store to ``c``     reads ``bufall(t)``, writes ``buf(t, c)`` and ``c``
RMW                                 writes ``c`` (a failed compare-exchange too)
lock / unlock / wait / resume       write the mutex (taken, released; a failed try-lock
                                    finds it held); wait and notify write the condition;
                                    a take records the mutex (``Event.take``)
notifier set / clear / close        write the notifier
poll, and its resumption            read (resumption: write) the poller and every
                                    registered notifier
blocked lock / join (disabled)      no step while another is possible (below)
spawn / exit / join                 spawn writes the thread table and ``thr(k)``, the
                                    child's first step reads ``thr(k)``, exit writes it,
                                    join reads it
clock read / timed resumption       reads ``time``; a time jump is a ``glob`` event
object creation, ``new_id``         write ``objs`` / ``ids`` (numbered in order)
trace event, state oracle           write ``mon`` (the monitors see execution order)
==================================  ===================================================

Disabled steps.  A thread whose pending step would block without effect (a blocking lock
of a mutex another thread holds, a join of a live thread, a woken or timed-out condition
wait whose mutex is held; for a lock or join only with its store buffer empty, since its
drain is an effect) is *disabled*: the platform leaves it out of :attr:`Event.enabled`
and of the node's enabled set (``EventLog.disabled``), and DPOR never chooses it while
another option exists; the platform's options stay the same (a schedule replays with any
strategy).  It is enabled once the operation can complete, and then its one step takes
the mutex or completes the join.  Why no run is lost: a blocked attempt changes nothing
but its thread's state (the controlled mutex is not FIFO: a release wakes no one in
particular, the blocked thread re-checks and takes it when chosen; a join or wait reads
nothing it would not read later), so a run with an attempt at a point where it blocks,
and the thread's resumption later, has the effect of the run without the attempt where
the thread's first step is the resumption (tests: the canonical form of unpruned DFS's
runs drops such attempts).  Costs agree too: the attempt is free for the thread that ran
last, and so is switching away after it; so a switch away from a disabled thread that ran
last costs nothing here (DPOR counts the preemptions itself; the platform's count in the
run's outcome may be higher by those switches).  Virtual time agrees: it jumps only when
no thread can run, and a disabled thread counts as runnable until every option would
block, when the steps happen as without events (a deadlock, threads blocked for good,
timed waits: the attempt parks with the same deadline, since no jump happened between).
Races: a take of mutex ``m`` races with the previous take of ``m`` by another process
unless its thread's previous step happens after that one; the reversal puts the take
before the earlier take (the release between them only enabled it, and what the step
accesses besides ``m``, e.g. the monitors' view, is reordered with everything after the
earlier take).  A race between a step that writes ``m`` while it is held (a release, a
failed try-lock) and a later take of ``m`` is left to that rule: the take cannot go first.
When a take disables a thread's pending lock, the disabling rule below adds that thread
before it too.

Exploration.  Every run replays a path of the exploration tree (one node per step, the
decisions the platform asks and the forced steps alike) to one pending branch, takes it, and
then continues with the non-preempting option that is not asleep.  After each run, races
are looked for among the new steps: ``e`` races with a later ``e'`` of another process when
they are dependent and no chain of happens-before goes from ``e`` to ``e'`` through other
steps.  For each race, with
``v`` the steps after ``e`` that do not happen after it followed by ``e'``, some initial of
``v`` (a process whose first step in ``v`` has no predecessor in ``v``) must be in the
backtrack set, or the sleep set, of the node before ``e``; if none is, one is added.  A race
whose reversal cannot be executed (an initial of ``v`` is not enabled before ``e``: ``e``
made ``e'`` possible, as an unlock its waiter's resumption) needs nothing.  The source-DPOR
paper assumes events are never disabled; here a blocked thread's resumption is disabled
until woken, and a drain removes pending flushes, so one more rule covers them (the classic
rule of Flanagan and Godefroid, "Dynamic partial-order reduction for model checking
software", POPL 2005): when a step disables another process's pending step, that process is
added to the backtrack set of the node before it (it could have gone first).  Sleep sets:
a node's sleep set holds the processes whose branches were started at an ancestor (or
earlier at the node) and that nothing since has depended on; they are not scheduled.

Order.  The pending branches are a worklist over the whole tree, not a stack: the next run
takes the branch that reverses the *earliest* race (the shallowest pending node), races on
program objects (cells, store buffers, locks, conditions, notifiers, pollers) and on the
monitors' view before races on bookkeeping alone (thread lifecycle, creation order, virtual
time, a ``glob`` step), and the extra branches of the bounded mode (below) after both.  A
depth-first search reverses the deepest race first, which on small buggy programs spends its
first runs reordering thread exits and joins at the end of the run.  The order changes what
is found first, never what is covered, because the correctness argument of Abdulla et al.
for their Algorithm 1 (an induction over the nodes) uses only facts that hold in any order
once the worklist is empty: (1) a node's sleep set is made when the node is, from its
parent's sleep set and the parent's branches *started* before the one leading to it (with
their steps, known since each started branch has run once); it is never changed after; a
depth-first search gives the same sets because there a branch is started only after its
elder siblings finished; (2) every run is analysed right after it ran, and what the analysis
asks of a node ("one of these initials is in the backtrack set or asleep there") is
monotone: the backtrack set only grows, the sleep set is fixed; (3) every branch added is
eventually taken or found asleep or unaffordable, exactly as a depth-first search would find
it when it backtracks there.  The induction's step at a node ``E`` looks at the branches of
``E`` in the order they were *started* and at the complete exploration of each one's
subtree; with a worklist each subtree is complete when the search ends, and the order of
starts at ``E`` is what (1) recorded.  So every Mazurkiewicz class (and under a bound, every
class that the bounded search covers, argued below per node, not per order) has a
representative once the worklist is empty: "exhausted" means exhausted in any order.  Ties
go to the branch queued first.  The tests check the classes and outcomes in a random order
and in the depth-first one too (:meth:`DPORStrategy.priority` is the hook).  The tree keeps
the nodes on the way to a pending branch (each points to its parent), not only one path.

Preemption bound.  ``bound=None`` (the default) is unbounded.  With a bound, naive DPOR is
unsound (a reversal may need a preemption the bound forbids where it is asked for, while a
schedule within the bound puts the switch elsewhere; Coons, Musuvathi and McKinley,
"Bounded partial-order reduction", OOPSLA 2013).  Following them, every process added to a
backtrack set is also added at the node where the current thread's run of steps began
(where switching costs no new preemption; every enabled process when it is not enabled
there), and at the node where the run of steps before the race point began (the thread
that the reversal would preempt); and when no initial is affordable at the race point, at
the latest earlier node where one is affordable and its process has not moved since (flushes
always cost a preemption, so the free switch points above may not afford them).  These are
extra branches only: they cost runs, never soundness.

Sleep sets under a bound.  A sleeper ``q`` at node ``n`` entered the sleep set at the node
``s`` (its *origin*) where its branch was explored, and every step ``r1 .. rk`` from ``s``
to ``n`` is independent of it.  Leaving ``q`` out at ``n`` is sound when every run
``A = path(n) q w`` within the bound has an equivalent run ``B = path(s) q r1 .. rk w``
within the bound too: ``B`` is covered by the exploration of ``q`` at ``s``.  Costs (the
platform's rule: a switch away from a runnable thread costs one, a flush always costs one,
continuing costs nothing): ``A``'s prefix cost is known exactly (the preemptions spent
before ``n`` plus ``q``'s cost there).  ``B``'s prefix is bounded above by ``q``'s cost at
``s`` plus, along ``r1 .. rk`` replayed after ``q``, one for every flush and every step of
a thread other than the one that ran last (it may be runnable).  Both prefixes end in the
same state (Mazurkiewicz: same events, dependent ones in the same order) but possibly with
a different thread having run last, and the platform charges a step of ``w`` only by that
thread and the state: ``w`` costs the same after both, except its first thread step, which
may cost one more after ``B`` when the last threads differ (each cost is 0 or 1).  So ``q``
is left out at ``n`` (it is in :attr:`_Node.asleep`) only when
``cost(B prefix) + [last threads differ] <= cost(A prefix)``; otherwise it is explored
like any awake process (it stays in the sleep set for deeper nodes, where the same test is
made against its origin).  Unbounded, every sleeper is left out.  What an exhausted bounded
search guarantees, and what the tests check against a DFS without pruning: it reaches
every outcome, every failure kind and monitor verdict, and every Mazurkiewicz class of a
run that :class:`~._strategies.DFSStrategy` at the same bound reaches.  ``classes`` then
counts complete runs, not classes.

``c11`` is refused: a load's choice of which write it reads is a decision of its own (token
``R<thread>.<write>``) that this event model does not make reversible; use ``dfs`` there.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ._platform import Decision, Event, _Failure

__all__ = ["DPORStrategy"]

Proc = tuple[Any, ...]

_CLOCK: Proc = ("clock",)


@dataclass(eq=False, slots=True)
class _Node:
    """One step of the current path: the state before it and the branches taken there."""

    enabled: tuple[Proc, ...]
    chosen: Proc
    preemptions: int = 0
    costs: dict[Proc, int] = field(default_factory=dict)
    sleep: dict[Proc, Event] = field(default_factory=dict)  # asleep at entry
    origin: dict[Proc, int] = field(default_factory=dict)  # sleep entry -> node it was done at
    asleep: frozenset[Proc] = frozenset()  # the enabled sleepers not scheduled here
    spent: int = 0  # preemptions before this step (forced and clock nodes too)
    cur: int = 0  # the thread that ran last before this step (the one deciding)
    done: dict[Proc, Event] = field(default_factory=dict)  # branches started, their steps
    backtrack: set[Proc] = field(default_factory=set)
    event: Event | None = None  # the chosen branch's step in the current run
    depth: int = 0  # index of this step in every run through it
    parent: _Node | None = None  # the node before it (None: the first step)
    via: Proc | None = None  # the parent's branch that leads here


def dependent(a: Event, b: Event) -> bool:
    """Whether two steps of different processes do not commute (see the module)."""
    if a.glob or b.glob:
        return True
    if a.epoch is not None and b.epoch is not None and a.epoch != b.epoch \
            and a.proc[1] == b.proc[1]:
        return True
    small, big = (a.acc, b.acc) if len(a.acc) <= len(b.acc) else (b.acc, a.acc)
    for key, w in small.items():
        other = big.get(key)
        if other is not None and (w or other):
            return True
    return False


_DATA_KEYS = frozenset({"buf", "bufall", "mon"})


def _rank(a: Event, b: Event) -> int:
    """0 when two dependent steps conflict on a program object (a memory cell, a lock, a
    condition, a notifier, a poller, a store buffer) or on the monitors' view, 1 when only
    on bookkeeping (thread lifecycle, creation order, virtual time, a ``glob`` step)."""
    if a.glob or b.glob:
        return 1
    for key, w in a.acc.items():
        other = b.acc.get(key)
        if other is not None and (w or other) and (
            not isinstance(key, tuple) or key[0] in _DATA_KEYS
        ):
            return 0
    if a.epoch is not None and b.epoch is not None:
        return 0
    return 1


def happens_before(evs: Sequence[Event]) -> tuple[list[int], list[list[int]]]:
    """(hb, preds): ``hb[j]`` the set (bitmask) of steps that happen before step ``j``, and
    ``preds[j]`` its immediate predecessors (its process's previous step, the last write of
    each object it accesses, and when it writes, the reads of it since; every process's
    last step for a ``glob`` step; the last ``glob`` step)."""
    n = len(evs)
    hb = [0] * n
    preds: list[list[int]] = [[] for _ in range(n)]
    last_of: dict[Proc, int] = {}
    last_w: dict[Any, int] = {}
    reads: dict[Any, list[int]] = {}
    flushes: dict[int, list[int]] = {}  # pso: thread -> its flush steps
    last_glob = -1
    for j, e in enumerate(evs):
        ps: set[int] = set()
        mine = last_of.get(e.proc)
        if mine is not None:
            ps.add(mine)
        if last_glob >= 0:
            ps.add(last_glob)
        if e.glob:
            ps.update(last_of.values())
        for key, w in e.acc.items():
            lw = last_w.get(key)
            if lw is not None:
                ps.add(lw)
            if w:
                ps.update(reads.get(key, ()))
        if e.epoch is not None:
            for k in flushes.get(e.proc[1], ()):
                if evs[k].epoch != e.epoch:
                    ps.add(k)
            flushes.setdefault(e.proc[1], []).append(j)
        h = 0
        for d in ps:
            h |= hb[d] | (1 << d)
        hb[j] = h
        preds[j] = sorted(ps)
        last_of[e.proc] = j
        if e.glob:
            last_glob = j
        for key, w in e.acc.items():
            if w:
                last_w[key] = j
                reads[key] = []
            else:
                reads.setdefault(key, []).append(j)
    return hb, preds


class DPORStrategy:
    """Source-DPOR with sleep sets (Abdulla et al., POPL 2014); see the module docstring.

    Same protocol as :class:`~._strategies.DFSStrategy`: ``next_run()`` (False once the
    reduced space is exhausted, and then :attr:`exhausted` is True), ``choose(d)``.

    Attributes:
        bound: preemption bound (None: unbounded).
        classes: complete runs explored that were not sleep-set blocked (unbounded: one per
            Mazurkiewicz class of complete runs).
        blocked: runs ended because every process they could run was asleep (pruned).
        exhausted: the whole reduced space was explored.
    """

    name = "dpor"
    needs_events = True

    def __init__(self, bound: int | None = None) -> None:
        if bound is not None and bound < 0:
            raise ValueError(f"DPOR preemption bound must be >= 0 or None, got {bound}")
        self.bound = bound
        self.classes = 0
        self.blocked = 0
        self.runs = 0
        self.exhausted = False
        self._nodes: list[_Node] = []
        self._started = False
        self._branch = 0  # first node whose step is new in this run
        self._blocked_run = False
        self._synced = 0  # events whose nodes exist in this run
        # the worklist: (priority, sequence, node, process), best first
        self._pending: list[tuple[tuple[int, ...], int, _Node, Proc]] = []
        self._seq = itertools.count()

    # -- platform hooks ------------------------------------------------------------------
    def events_begin(self, memory: str) -> None:
        if memory not in ("sc", "tso", "pso"):
            raise ValueError(
                f"strategy 'dpor' is sound for memory sc, tso and pso only, not {memory!r}: "
                "under c11 a load chooses which write it reads (decision R<thread>.<write>), "
                "a choice this partial-order reduction does not model; use strategy 'dfs' "
                "for c11"
            )

    def next_run(self) -> bool:
        if not self._started:
            self._started = True
            self._reset_run(0)
            return True
        pending = self._pending
        while pending:
            _, _, node, p = heapq.heappop(pending)
            if p in node.done or p in node.asleep or not self._affordable(node, p):
                continue
            path = [node]
            up = node
            while up.parent is not None:
                assert up.via is not None
                up.parent.chosen = up.via  # replay: each ancestor takes the way down
                up = up.parent
                path.append(up)
            path.reverse()
            node.chosen = p
            node.event = None
            self._nodes = path
            self._reset_run(node.depth)
            return True
        self._nodes = []
        self.exhausted = True
        return False

    def choose(self, d: Decision) -> int:
        if d.events is None or d.procs is None:
            raise RuntimeError("DPORStrategy needs a platform that records events")
        self._sync(d.events)
        k = len(d.events)
        procs = d.procs
        costs = dict(zip(procs, d.costs, strict=True))
        default = procs[d.default]
        off = getattr(d.events, "disabled", None)
        enabled = procs
        if off is not None:
            on = tuple(p for p in procs if not off(p))
            if on and len(on) < len(procs):
                enabled = on
                if default not in on and costs[default] == 0:
                    # the thread that ran last would block: the platform runs its attempt
                    # (free) and then switches freely; so switching away from it is free
                    costs = {p: 1 if p[0] == "b" else 0 for p in procs}
        node = self._node(k, enabled, default, d.preemptions, costs)
        if node is None:
            self._blocked_run = True
            return -1
        return d.procs.index(node.chosen)

    def forced(self, events: Sequence[Event], proc: Proc) -> bool:
        """The platform takes the only option ``proc``: False when it is asleep."""
        self._sync(events)
        node = self._node(len(events), (proc,), proc, -1, {proc: 0})
        if node is None:
            self._blocked_run = True
            return False
        return True

    def events_end(self, events: Sequence[Event], final: bool) -> None:
        self._sync(events)
        del self._nodes[len(events):]
        for node, ev in zip(self._nodes, events, strict=True):
            node.event = ev
            node.done[node.chosen] = ev
        self.runs += 1
        if self._blocked_run:
            self.blocked += 1
        else:
            self.classes += 1
        self._analyse(events, final)

    # -- the path ------------------------------------------------------------------------
    def _reset_run(self, branch: int) -> None:
        self._branch = branch
        self._blocked_run = False
        self._synced = 0

    def _affordable(self, node: _Node, p: Proc) -> bool:
        if self.bound is None or node.preemptions < 0:
            return True
        return node.preemptions + node.costs.get(p, 0) <= self.bound

    def _sync(self, events: Sequence[Event]) -> None:
        """Nodes for the steps the platform took without asking (time jumps)."""
        while self._synced < len(events):
            k = self._synced
            ev = events[k]
            if k >= len(self._nodes):
                if ev.proc != _CLOCK:
                    raise RuntimeError(f"DPOR: step {k} ({ev.proc}) has no node")
                self._new_node(k, (), _CLOCK, -1, {})
            self._nodes[k].event = ev
            self._synced += 1

    def _node(
        self, k: int, enabled: tuple[Proc, ...], default: Proc, pre: int, costs: dict[Proc, int]
    ) -> _Node | None:
        """Node ``k`` (replayed, or new with its first branch); None: all asleep."""
        if k < len(self._nodes):
            node = self._nodes[k]
            if node.enabled != enabled:
                raise _Failure(
                    "inconclusive", "nondeterminism",
                    f"step {k}: replayed prefix could run {list(enabled)}, the first visit "
                    f"{list(node.enabled)}: the program is not deterministic",
                )
            return node
        return self._new_node(k, enabled, default, pre, costs)

    def _new_node(
        self, k: int, enabled: tuple[Proc, ...], default: Proc, pre: int, costs: dict[Proc, int]
    ) -> _Node | None:
        sleep: dict[Proc, Event] = {}
        origin: dict[Proc, int] = {}
        spent = cur = 0
        if k:
            parent = self._nodes[k - 1]
            ev = parent.event
            assert ev is not None
            spent = parent.spent + parent.costs.get(parent.chosen, 0)
            cur = parent.chosen[1] if parent.chosen[0] == "t" else parent.cur
            for src, own in ((parent.sleep, False), (parent.done, True)):
                for q, qe in src.items():
                    if q != parent.chosen and q not in sleep and not dependent(qe, ev):
                        sleep[q] = qe
                        origin[q] = k - 1 if own else parent.origin[q]
        # the preemptions spent are counted here (pre -1: forced, nothing to bound): the
        # platform charges a switch away from a disabled thread, DPOR does not
        node = _Node(enabled, default, spent if pre >= 0 else -1, costs, sleep, origin,
                     spent=spent, cur=cur,
                     depth=k, parent=self._nodes[k - 1] if k else None,
                     via=self._nodes[k - 1].chosen if k else None)
        # pre -1: forced, nothing to bound
        node.asleep = frozenset(p for p in enabled if p in sleep and self._covered(k, node, p))
        awake = [p for p in enabled if p not in node.asleep and self._affordable(node, p)]
        if enabled and not awake:
            return None
        if awake and default not in awake:
            node.chosen = awake[0]
        node.backtrack.add(node.chosen)
        self._nodes.append(node)
        return node

    def _covered(self, k: int, node: _Node, q: Proc) -> bool:
        """Whether sleeper ``q`` may be left out at node ``k`` (see the module: with a
        bound, only when moving ``q`` back to where it was explored costs no more)."""
        if self.bound is None:
            return True
        o = node.origin[q]
        s = self._nodes[o]
        # A: this path, then q, then any w.  B: q at node o, then the same steps, then w.
        a = node.spent + node.costs.get(q, 0)
        b = s.spent + s.costs.get(q, 0)
        c = q[1] if q[0] == "t" else s.cur
        for m in range(o, k):
            r = self._nodes[m].chosen
            if r[0] == "t":
                if r[1] != c:
                    b += 1
                c = r[1]
            else:
                b += 1  # a flush (a time jump depends on q: it never gets here)
        end_a = q[1] if q[0] == "t" else node.cur
        if c != end_a:
            b += 1  # w's first switch may cost one more after B than after A
        return b <= a

    # -- races ---------------------------------------------------------------------------
    def _analyse(self, evs: Sequence[Event], final: bool) -> None:
        n = len(evs)
        if n == 0:
            return
        hb, preds = happens_before(evs)
        nodes = self._nodes
        last_take: dict[int, int] = {}
        for j in range(n):
            e = evs[j]
            m = e.take
            if j < self._branch:
                if m is not None:
                    last_take[m] = j
                continue
            ps = preds[j]
            reach = 0
            for dd in ps:
                reach |= hb[dd]
            for i in ps:
                if evs[i].proc == e.proc or (reach >> i) & 1:
                    continue
                if m is not None and evs[i].acc.get(m):
                    continue  # m was held before i: the lock order is the take race below
                self._race(evs, hb, i, j)
            if m is None:
                continue
            # Lock order: a take of m races with the previous take of m by another process
            # unless its thread's previous step happens after that one (the release between
            # them enabled this take; reversing puts this take before that one, and before
            # everything that happens after that one, whatever this step's own accesses
            # besides m depend on there).
            i = last_take.get(m, -1)
            last_take[m] = j
            if i < 0 or evs[i].proc == e.proc:
                continue
            mine = next((dd for dd in reversed(ps) if evs[dd].proc == e.proc), -1)
            if mine < 0 or not (hb[mine] >> i) & 1:
                self._race(evs, hb, i, j)
        # a step that disables another process's pending step: that one could go first
        for j in range(self._branch, n):
            after = nodes[j + 1].enabled if j + 1 < n else (() if final else None)
            if after is None:
                continue
            me = evs[j].proc
            for q in nodes[j].enabled:
                if q != me and q not in after:
                    self._want(j, (q,), 1)

    def _race(self, evs: Sequence[Event], hb: list[int], i: int, j: int) -> None:
        vmask = 1 << j
        v: list[int] = []
        for k in range(i + 1, j):
            if not (hb[k] >> i) & 1:
                v.append(k)
                vmask |= 1 << k
        v.append(j)
        initials: list[Proc] = []
        seen: set[Proc] = set()
        for k in v:
            p = evs[k].proc
            if p in seen:
                continue
            seen.add(p)
            if not hb[k] & vmask:
                initials.append(p)
        enabled = self._nodes[i].enabled
        if any(p not in enabled for p in initials):
            return  # the reversal cannot run: e made e' possible
        self._want(i, tuple(initials), _rank(evs[i], evs[j]))

    def _add(self, node: _Node, p: Proc, rank: int) -> None:
        """Branch ``p`` at ``node`` is to be explored (queued by :meth:`priority`)."""
        if p not in node.backtrack:
            node.backtrack.add(p)
            heapq.heappush(self._pending, (self.priority(rank, node.depth), next(self._seq),
                                           node, p))

    def priority(self, rank: int, depth: int) -> tuple[int, ...]:
        """Worklist order, smallest first (ties: queued first): ``rank`` 0 reverses a race on
        a program object or the monitors' view, 1 one on bookkeeping or a disabling step,
        2-3 the bounded mode's extra switch points; ``depth`` the node's step index.  Any
        order is sound (see the module); tests override this to check it."""
        return (rank, depth)

    def _want(self, i: int, initials: tuple[Proc, ...], rank: int) -> None:
        """Node ``i`` must explore one of ``initials`` (unless one is there or asleep)."""
        node = self._nodes[i]
        if not any(p in node.backtrack or p in node.asleep for p in initials):
            self._add(node, min(initials, key=lambda p: (node.costs.get(p, 0),
                                                         node.enabled.index(p))), rank)
        if self.bound is None:
            return
        # Bounded (Coons et al.): also where the current run of steps began, and where
        # the run of steps before node i began (the thread node i preempts).
        starts: list[int] = []
        for c in (i, i - 1):
            while c > 0 and self._nodes[c - 1].chosen == self._nodes[c].chosen:
                c -= 1
            if 0 <= c < i and c not in starts:
                starts.append(c)
        for c in starts:
            start = self._nodes[c]
            ok = [p for p in initials if p in start.enabled]
            if ok:
                if not any(p in start.backtrack for p in ok):
                    self._add(start, ok[0], rank + 2)
            else:
                for p in start.enabled:
                    self._add(start, p, rank + 2)
        # An initial too dear at node i: also at the latest node before it where one is
        # affordable and its process has not moved since (an earlier switch point).
        if any(self._affordable(node, p) for p in initials if p in node.enabled):
            return
        for c in range(i - 1, -1, -1):
            at = self._nodes[c]
            if at.chosen in initials:
                break
            ok = [p for p in initials if p in at.enabled and self._affordable(at, p)]
            if ok:
                if not any(p in at.backtrack for p in ok):
                    self._add(at, ok[0], rank + 2)
                break
