"""The explicit operational semantics of :mod:`model._notify`'s language over concrete
states, and :func:`explore`, the search of every reachable state that makes a verdict complete.

Why it exists: the explicit search is the checker's ground truth; kept apart from the z3
encoding, it can be read (and trusted) on its own, and counterexamples are replayed on it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ._graph import Witness, shortest_witness
from ._notify_lang import (
    BUFFER_CAPACITY,
    Assign,
    Atomic,
    Await,
    Branch,
    Expr,
    Fence,
    Goto,
    Load,
    Move,
    NotifyError,
    Program,
    Store,
    _check_memory,
    _ev,
    _moves,
)

# ------------------------------------------------------------------------------------------
# The explicit semantics
# ------------------------------------------------------------------------------------------
# State: (pcs, regs per thread, memory, buffers per thread, epochs per thread)
#   tso buffer: tuple of (var index, value), oldest first
#   pso buffer: tuple per var of tuple of (value, epoch), oldest first
XState = tuple[tuple[int, ...], tuple[tuple[int, ...], ...], tuple[int, ...], tuple[Any, ...],
               tuple[int, ...]]


class _Explicit:
    """The operational semantics over concrete states."""

    def __init__(self, p: Program, memory: str, capacity: int = BUFFER_CAPACITY) -> None:
        _check_memory(memory)
        self.p, self.memory, self.cap = p, memory, capacity
        self.mask = (1 << p.width) - 1
        self.vi = {v: i for i, v in enumerate(p.shared)}
        self.ri = [{r: i for i, r in enumerate(t.regs)} for t in p.threads]
        self.moves = _moves(p, memory)

    def initial(self) -> XState:
        n, nv = len(self.p.threads), len(self.p.shared)
        bufs: tuple[Any, ...] = ((),) * n if self.memory != "pso" else (((),) * nv,) * n
        return ((0,) * n, tuple((0,) * len(t.regs) for t in self.p.threads), (0,) * nv, bufs,
                (0,) * n)

    def view(self, s: XState, tid: int, var: str) -> int:
        i = self.vi[var]
        buf = s[3][tid]
        if self.memory == "tso":
            for bv, val in reversed(buf):
                if bv == i:
                    return int(val)
        elif self.memory == "pso" and buf[i]:
            return int(buf[i][-1][0])
        return s[2][i]

    def ev(self, e: Expr, s: XState, tid: int | None, mem_only: bool = False) -> int:
        def leaf(x: Expr) -> int:
            if x[0] == "c":
                return int(x[1]) & self.mask
            if x[0] == "r":
                assert tid is not None
                return s[1][tid][self.ri[tid][x[1]]]
            if x[0] == "t":
                t = self.p.thread_index(x[1])
                return s[1][t][self.ri[t][x[2]]]
            if mem_only or tid is None:
                return s[2][self.vi[x[1]]]
            return self.view(s, tid, x[1])

        return int(_ev(e, leaf, self.mask, False))

    def empty(self, s: XState, tid: int) -> bool:
        b = s[3][tid]
        return not b if self.memory != "pso" else not any(b)

    def step(self, s: XState, m: Move) -> XState | None:
        """The successor of ``s`` by ``m``, or None when ``m`` is not enabled."""
        pcs, regs, mem, bufs, eps = s
        tid = m.tid
        weak = self.memory != "sc"
        if m.kind == "flush":
            b = bufs[tid]
            if self.memory == "tso":
                if not b:
                    return None
                (vi, val), rest = b[0], b[1:]
                nmem = _put(mem, vi, val)
                return pcs, regs, nmem, _put(bufs, tid, rest), eps
            i = self.vi[m.var]
            if not b[i]:
                return None
            heads = [f[0][1] for f in b if f]
            if b[i][0][1] != min(heads):
                return None
            val = b[i][0][0]
            nb = _put(b, i, b[i][1:])
            ep = eps[tid]
            entries = [e for f in nb for e in f]
            if not entries:
                ep = 0
            elif min(e[1] for e in entries) > 0:
                nb = tuple(tuple((v, e - 1) for v, e in f) for f in nb)
                ep -= 1
            return pcs, regs, _put(mem, i, val), _put(bufs, tid, nb), _put(eps, tid, ep)
        t = self.p.threads[tid]
        if pcs[tid] != m.pc:
            return None
        ins = t.code[m.pc]
        npcs = _put(pcs, tid, m.target)
        if isinstance(ins, Goto):
            return npcs, regs, mem, bufs, eps
        if isinstance(ins, Branch):
            c = self.ev(ins.cond, s, tid) != 0
            want = ins.target if c else m.pc + 1
            return (npcs, regs, mem, bufs, eps) if want == m.arm else None
        if isinstance(ins, Assign):
            return npcs, self._set_reg(regs, tid, ins.reg, self.ev(ins.value, s, tid)), mem, \
                bufs, eps
        if isinstance(ins, Load):
            val = self.view(s, tid, ins.var)
            return npcs, self._set_reg(regs, tid, ins.reg, val), mem, bufs, eps
        if isinstance(ins, Await):
            if ins.syscall and weak and not self.empty(s, tid):
                return None
            return (npcs, regs, mem, bufs, eps) if self.ev(ins.cond, s, tid) else None
        if isinstance(ins, Fence):
            if not weak or ins.kind == "rmb":
                return npcs, regs, mem, bufs, eps
            if ins.kind == "mb":
                return (npcs, regs, mem, bufs, eps) if self.empty(s, tid) else None
            if self.memory == "pso" and any(e[1] == eps[tid] for f in bufs[tid] for e in f):
                eps = _put(eps, tid, eps[tid] + 1)
            return npcs, regs, mem, bufs, eps
        if isinstance(ins, Atomic):
            if weak and not self.empty(s, tid):
                return None
            i = self.vi[ins.var]
            old = mem[i]
            val = self.ev(ins.value, s, tid)
            nregs = regs if ins.reg is None else self._set_reg(regs, tid, ins.reg, old)
            return npcs, nregs, _put(mem, i, val), bufs, eps
        assert isinstance(ins, Store)
        i = self.vi[ins.var]
        old = self.view(s, tid, ins.var)
        val = self.ev(ins.value, s, tid)
        nregs = regs if ins.reg is None else self._set_reg(regs, tid, ins.reg, old)
        if not weak:
            return npcs, nregs, _put(mem, i, val), bufs, eps
        b = bufs[tid]
        if self.memory == "tso":
            if len(b) >= self.cap:
                return None
            return npcs, nregs, mem, _put(bufs, tid, (*b, (i, val))), eps
        if len(b[i]) >= self.cap:
            return None
        nb = _put(b, i, (*b[i], (val, eps[tid])))
        return npcs, nregs, mem, _put(bufs, tid, nb), eps

    def _set_reg(self, regs: tuple[tuple[int, ...], ...], tid: int, reg: str, val: int
                 ) -> tuple[tuple[int, ...], ...]:
        return _put(regs, tid, _put(regs[tid], self.ri[tid][reg], val & self.mask))

    def successors(self, s: XState) -> Iterator[tuple[int, XState]]:
        for k, m in enumerate(self.moves):
            n = self.step(s, m)
            if n is not None:
                yield k, n


def _put(t: tuple[Any, ...], i: int, v: Any) -> tuple[Any, ...]:
    return (*t[:i], v, *t[i + 1 :])


def _explicit(p: Program, memory: str, capacity: int = BUFFER_CAPACITY) -> _Explicit:
    return _Explicit(p, memory, capacity)


@dataclass(frozen=True)
class Explored:
    """The explicit-state search's answer: reachable states, and whether a violation (fair
    P-cycle or stuck P-state) exists; ``buffer_capacity`` is the bound it assumed."""

    states: int
    transitions: int
    violated: bool
    goal: int | None
    seconds: float
    buffer_capacity: int
    #: a shortest violating run (move indices, fewest moves over every goal): a path to a
    #: stuck state, or a lasso whose fair cycle starts at ``loop_start``
    witness: tuple[int, ...] = ()
    loop_start: int | None = None


def explore(p: Program, memory: str, capacity: int = BUFFER_CAPACITY) -> Explored:
    """Search every reachable state of ``p`` under ``memory`` for a violation of its goals.

    A goal ``P`` is violated iff some reachable state where nothing can move satisfies P,
    or some cycle of P-states meets every fairness unit (a move by it inside, or a state
    where it is disabled): weak fairness per unit is a generalised Büchi condition.  The
    witness is a shortest one over all goals (:func:`model._graph.shortest_witness`: a
    breadth-first search over (state, units met) from each loop entry in a fair strongly
    connected component, exhaustive), so it is as short as any bounded model checker's.
    """
    t0 = time.perf_counter()
    x = _explicit(p, memory, capacity)
    init = x.initial()
    index = {init: 0}
    states = [init]
    succ: list[list[tuple[int, int]]] = []
    i = 0
    ntr = 0
    while i < len(states):
        s = states[i]
        out: list[tuple[int, int]] = []
        for k, n in x.successors(s):
            j = index.get(n)
            if j is None:
                j = index[n] = len(states)
                states.append(n)
            out.append((k, j))
        succ.append(out)
        ntr += len(out)
        i += 1
    units = _units(p, memory)
    unit_index = {u: n for n, u in enumerate(units)}
    graph = [[(w, unit_index.get(_unit_of(x.moves[k]), -1)) for k, w in out] for out in succ]
    best: tuple[int, int, Witness] | None = None
    for g, goal in enumerate(p.goals):
        ok = [x.ev(goal, s, None, mem_only=True) != 0 for s in states]
        stuck = [ok[j] and not succ[j] for j in range(len(states))]
        w = shortest_witness(graph, len(units), stuck=stuck, keep=ok)
        if w is not None and (best is None or len(w) < best[0]):
            best = (len(w), g, w)
    if best is None:
        return Explored(len(states), ntr, False, None, time.perf_counter() - t0, capacity)
    _, g, w = best
    moves = tuple(succ[v][e][0] for v, e in zip(w.nodes, w.edges, strict=False))
    return Explored(len(states), ntr, True, g, time.perf_counter() - t0, capacity, moves,
                    w.loop)


def _units(p: Program, memory: str) -> list[tuple[str, int]]:
    """Fairness units: ("thread", tid) when threads are fair; ("flush", tid) under weak
    memory."""
    out = [("thread", t) for t in range(len(p.threads))] if p.fair else []
    if memory != "sc":
        out += [("flush", t) for t in range(len(p.threads))]
    return out


def _unit_of(m: Move) -> tuple[str, int]:
    return ("thread" if m.kind == "ins" else "flush", m.tid)


def violated_goal(p: Program, memory: str, moves: Sequence[int], loop_start: int | None,
                  capacity: int = BUFFER_CAPACITY) -> int | None:
    """The goal a replayed run violates, or None: with ``loop_start`` None, the run ends in
    a state where nothing can move and the goal holds; else the state after ``loop_start``
    moves recurs at the end, the goal holds at every state of the loop, and every fairness
    unit moves in the loop or is disabled at one of its states.  Raises
    :class:`NotifyError` at a move that is not enabled."""
    x = _explicit(p, memory, capacity)
    states = [x.initial()]
    for i, k in enumerate(moves):
        if not 0 <= k < len(x.moves):
            raise NotifyError(f"move {i + 1}: no move {k} in {p.name} under {memory}")
        n = x.step(states[-1], x.moves[k])
        if n is None:
            raise NotifyError(f"move {i + 1} of the run is not enabled")
        states.append(n)
    if loop_start is None:
        if any(True for _ in x.successors(states[-1])):
            return None
        return next((g for g, goal in enumerate(p.goals)
                     if x.ev(goal, states[-1], None, mem_only=True) != 0), None)
    if not 0 <= loop_start < len(moves) or states[loop_start] != states[-1]:
        return None
    loop = states[loop_start:-1]
    met = {_unit_of(x.moves[k]) for k in moves[loop_start:]}
    for s in loop:
        enabled = {_unit_of(x.moves[k]) for k, _ in x.successors(s)}
        met.update(u for u in _units(p, memory) if u not in enabled)
    if not all(u in met for u in _units(p, memory)):
        return None
    return next((g for g, goal in enumerate(p.goals)
                 if all(x.ev(goal, s, None, mem_only=True) != 0 for s in loop)), None)

