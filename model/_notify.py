"""QEMU's aio_notify protocols under weak memory: a tiny shared-memory language, its
operational semantics under ``sc``/``tso``/``pso``, and z3 bounded model checking of the
liveness properties QEMU's Spin models check.

Why it exists: QEMU keeps three Promela models of its wake-up protocol in ``docs/spin``
(``aio_notify.promela`` for ``notify_me``, eabc977973; ``aio_notify_bug.promela`` for the
placement of ``event_notifier_test_and_clear``, 21a03d17; ``aio_notify_accept.promela`` for
``ctx->notified``, 05e514b1).  Spin interleaves whole statements, i.e. it assumes sequential
consistency, yet the protocol's correctness hinges on ``smp_mb`` and on the full barrier of
``atomic_add``: exactly what SC cannot show.  This module re-encodes the three protocols (our
own encoding, written from the models' behaviour) as programs of a small language whose
semantics is parameterised by the memory model, so that each verdict can be given under SC
and under x86-TSO and SPARC PSO store buffers, and each barrier audited.

The language (one instruction = one atomic step of its thread):

* ``Load``/``Store`` plain accesses; a ``Store`` may read its own location first (a plain
  read-modify-write such as x86's non-locked ``add``): the read and the buffering of the new
  value are one step, the value reaches memory later;
* ``Atomic``: a locked read-modify-write/exchange/seq_cst store; it waits until the thread's
  buffers are empty and then reads and writes memory at once (x86 ``lock``/``xchg``; QEMU's
  atomics are full barriers).  System calls (``event_notifier_set``, ``..._test_and_clear``,
  ``ppoll``) are modelled the same way (``syscall=True``): the kernel entry orders them;
* ``Fence``: ``mb`` waits for empty buffers; ``wmb`` under ``pso`` puts later stores in a new
  epoch that may reach memory only after every earlier store has (SPARC ``#StoreStore``,
  which delays no load); ``rmb`` is a no-op in all three models (loads are in order);
* ``Await`` blocks until a condition holds (Promela's blocking guard), ``Branch``/``Goto``
  (several targets: a nondeterministic choice) and ``Assign`` on thread-local registers.

Memory models, as in the project's litmus reference (``tests/test_litmus.py``): ``sc`` writes
memory at once; ``tso`` has one FIFO store buffer per thread with store-to-load forwarding;
``pso`` one FIFO per thread and location.  Moving the oldest entry of a buffer to memory is a
step of its own (a *flush*).  Buffers are bounded: :data:`BUFFER_CAPACITY` entries per
buffer; a store to a full buffer waits until a flush makes room, so a state that only an
overflowing buffer could reach is not explored (every verdict states the bound).

Properties are Spin's never claims read as "no fair run stays in P forever": a violation is
a reachable cycle (a lasso) whose every state satisfies P and that is weakly fair (every
fairness unit either moves in the cycle or is disabled somewhere on it; a thread is a unit
when Spin ran with ``-f``; each thread's flushes are always a unit, so a buffered store is
eventually written), or a reachable state where nothing can move and P holds (Spin's
stuttering extension of a finite run).

Checking: :func:`check_protocol` unrolls the transition relation in z3 depth by depth and at
each depth asks for a lasso closing at that depth or a stuck state there, so the first
counterexample found is a shortest one.  z3's bounded search is only complete up to the
recurrence diameter, far beyond these depths, so completeness comes from
:func:`explore`, an explicit-state search of every reachable state (strongly connected
components under P, generalised Büchi fairness); the two must agree, and a z3
counterexample is replayed on the explicit semantics before it is reported.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import z3

from ._graph import cyclic_components

__all__ = [
    "BUFFER_CAPACITY",
    "MEMORY_MODELS",
    "PROPERTIES",
    "PROTOCOLS",
    "SPIN_MODELS",
    "TR",
    "Assign",
    "Atomic",
    "Await",
    "C",
    "R",
    "V",
    "Branch",
    "Explored",
    "Fence",
    "FenceAudit",
    "Goto",
    "Load",
    "NotifyError",
    "NotifyVerdict",
    "Program",
    "Store",
    "Thread",
    "audit_fences",
    "build",
    "check_program",
    "check_protocol",
    "explore",
    "final_outcomes",
    "replay",
]

MEMORY_MODELS: tuple[str, ...] = ("sc", "tso", "pso")
#: Entries per store buffer (tso: per thread; pso: per thread and location).
BUFFER_CAPACITY = 2
Verdict = Literal["proven", "bounded", "refuted"]


class NotifyError(ValueError):
    """A usage error: unknown protocol, property or memory model, or a malformed program."""


# ------------------------------------------------------------------------------------------
# Expressions: tuples, evaluated over ints or z3 bit-vectors alike
# ------------------------------------------------------------------------------------------
# ("c", n) constant; ("r", reg) own register; ("v", var) shared variable (a thread's own
# view in code, memory in a property); ("t", thread, reg) a thread's register (properties);
# ("op", a, b) with op in + - | & << == != < <= and or; ("not", a); ("ite", c, a, b).
Expr = tuple[Any, ...]


def C(n: int) -> Expr:
    """A constant."""
    return ("c", n)


def R(reg: str) -> Expr:
    """The executing thread's register."""
    return ("r", reg)


def V(var: str) -> Expr:
    """A shared variable: the thread's view (own buffer, else memory) or, in a property,
    memory."""
    return ("v", var)


def TR(thread: str, reg: str) -> Expr:
    """A register of a named thread, for properties (Spin's ghost globals)."""
    return ("t", thread, reg)


_BIN = ("+", "-", "|", "&", "<<", "==", "!=", "<", "<=", "and", "or")


def _ev(e: Expr, leaf: Callable[[Expr], Any], mask: int, sym: bool) -> Any:
    """Evaluate ``e``: ints (truth as 0/1, arithmetic modulo ``mask + 1``) or z3 terms
    (bit-vectors, truth as ``BoolRef``)."""
    k = e[0]
    if k in ("c", "r", "v", "t"):
        return leaf(e)
    if k == "not":
        a = _ev(e[1], leaf, mask, sym)
        return z3.Not(a) if sym else int(not a)
    if k == "ite":
        c, a, b = (_ev(x, leaf, mask, sym) for x in e[1:])
        return z3.If(c, a, b) if sym else (a if c else b)
    if k not in _BIN:
        raise NotifyError(f"unknown operator {k!r} in expression {e!r}")
    a, b = _ev(e[1], leaf, mask, sym), _ev(e[2], leaf, mask, sym)
    if sym:
        ops: dict[str, Callable[[Any, Any], Any]] = {
            "+": lambda x, y: x + y, "-": lambda x, y: x - y, "|": lambda x, y: x | y,
            "&": lambda x, y: x & y, "<<": lambda x, y: x << y, "==": lambda x, y: x == y,
            "!=": lambda x, y: x != y, "<": z3.ULT, "<=": z3.ULE, "and": z3.And, "or": z3.Or,
        }
        return ops[k](a, b)
    cops: dict[str, Callable[[int, int], int]] = {
        "+": lambda x, y: (x + y) & mask, "-": lambda x, y: (x - y) & mask,
        "|": lambda x, y: x | y, "&": lambda x, y: x & y, "<<": lambda x, y: (x << y) & mask,
        "==": lambda x, y: int(x == y), "!=": lambda x, y: int(x != y),
        "<": lambda x, y: int(x < y), "<=": lambda x, y: int(x <= y),
        "and": lambda x, y: int(bool(x) and bool(y)), "or": lambda x, y: int(bool(x) or bool(y)),
    }
    return cops[k](a, b)


def _show(e: Expr) -> str:
    k = e[0]
    if k == "c":
        return str(e[1])
    if k in ("r", "v"):
        return str(e[1])
    if k == "t":
        return f"{e[1]}.{e[2]}"
    if k == "not":
        return f"!({_show(e[1])})"
    if k == "ite":
        return f"({_show(e[1])} ? {_show(e[2])} : {_show(e[3])})"
    return f"{_show(e[1])} {k} {_show(e[2])}"


# ------------------------------------------------------------------------------------------
# Instructions and programs
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Load:
    """``reg = var``: a plain load (own buffer first, else memory)."""

    reg: str
    var: str


@dataclass(frozen=True, slots=True)
class Store:
    """``var = value``: a plain store, buffered under tso/pso.  ``value`` may read ``var``
    (a non-locked read-modify-write); ``reg`` receives the value read, if given."""

    var: str
    value: Expr
    reg: str | None = None
    label: str = ""


@dataclass(frozen=True, slots=True)
class Atomic:
    """A locked read-modify-write on memory after the own buffers drained: ``reg = var;
    var = value`` (``value`` may read ``var``).  ``syscall`` marks the kernel's eventfd
    operations, which the fence audit leaves alone."""

    var: str
    value: Expr
    reg: str | None = None
    label: str = ""
    syscall: bool = False


@dataclass(frozen=True, slots=True)
class Fence:
    """``smp_mb`` (``mb``), ``smp_wmb`` (``wmb``) or ``smp_rmb`` (``rmb``)."""

    kind: str
    label: str = ""


@dataclass(frozen=True, slots=True)
class Await:
    """Block until ``cond`` holds; ``syscall`` (``ppoll``) first waits for empty buffers."""

    cond: Expr
    syscall: bool = False


@dataclass(frozen=True, slots=True)
class Branch:
    """``if cond goto target`` (labels resolve to indices in :class:`Thread`)."""

    cond: Expr
    target: str | int


@dataclass(frozen=True, slots=True)
class Goto:
    """Jump to one of ``targets``: several targets are a nondeterministic choice."""

    targets: tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Assign:
    """``reg = value`` on the thread's own registers (no memory access)."""

    reg: str
    value: Expr


Instr = Load | Store | Atomic | Fence | Await | Branch | Goto | Assign


@dataclass(frozen=True)
class Thread:
    """A thread: straight-line code with labels (strings in ``code``) resolved to indices.

    ``pc == len(code)`` means the thread has ended.
    """

    name: str
    code: tuple[Instr, ...]
    regs: tuple[str, ...] = ()

    @staticmethod
    def assemble(name: str, items: Sequence[Instr | str], regs: Sequence[str] = ()) -> Thread:
        """Resolve string items as labels of the next instruction (``"end"`` is free)."""
        labels: dict[str, int] = {}
        code: list[Instr] = []
        for it in items:
            if isinstance(it, str):
                labels[it] = len(code)
            else:
                code.append(it)
        labels.setdefault("end", len(code))

        def res(t: str | int) -> int:
            if isinstance(t, int):
                return t
            if t not in labels:
                raise NotifyError(f"thread {name}: unknown label {t!r}")
            return labels[t]

        out: list[Instr] = []
        for ins in code:
            if isinstance(ins, Branch):
                ins = Branch(ins.cond, res(ins.target))
            elif isinstance(ins, Goto):
                ins = Goto(tuple(res(t) for t in ins.targets))
            out.append(ins)
        used = {r for i in out for r in _regs_written(i)}
        return Thread(name, tuple(out), tuple(dict.fromkeys([*regs, *sorted(used)])))


def _regs_written(ins: Instr) -> tuple[str, ...]:
    if isinstance(ins, Load | Assign):
        return (ins.reg,)
    if isinstance(ins, Store | Atomic) and ins.reg is not None:
        return (ins.reg,)
    return ()


@dataclass(frozen=True)
class Program:
    """Threads over shared variables (all starting at 0), values of ``width`` bits.

    ``goals`` are the never-claim conditions: a fair run that stays in one forever is a
    violation.  ``fair`` says whether threads are weakly fair (Spin's ``-f``).
    """

    name: str
    shared: tuple[str, ...]
    threads: tuple[Thread, ...]
    goals: tuple[Expr, ...] = ()
    fair: bool = True
    width: int = 4

    @builtins.property
    def has_wmb(self) -> bool:
        return any(isinstance(i, Fence) and i.kind == "wmb" for t in self.threads for i in t.code)

    def thread_index(self, name: str) -> int:
        for i, t in enumerate(self.threads):
            if t.name == name:
                return i
        raise NotifyError(f"program {self.name} has no thread {name!r}")


# ------------------------------------------------------------------------------------------
# Transitions: the same labelled list drives both engines
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Move:
    """One transition instance: ``kind`` is ``"ins"`` (thread ``tid`` executes code[pc],
    continuing at ``target``: a landing on a ``Goto`` is folded into the move, one move per
    destination, so jumps cost no step) or ``"flush"`` (thread ``tid`` writes its oldest
    buffered store of ``var`` (pso) or its oldest one (tso, ``var`` empty) to memory)."""

    kind: str
    tid: int
    pc: int = -1
    target: int = -1
    var: str = ""
    arm: int = -1  # the instruction's own successor before jumps through Gotos are folded


def _noop(ins: Instr | None, memory: str) -> bool:
    """Instructions that are no step at all under ``memory``: jumps, and barriers the
    model does not need (every barrier under sc, ``smp_rmb`` everywhere, ``smp_wmb`` under
    tso)."""
    if isinstance(ins, Goto):
        return True
    if isinstance(ins, Fence):
        return memory == "sc" or ins.kind == "rmb" or (ins.kind == "wmb" and memory == "tso")
    return False


def _landings(code: tuple[Instr, ...], pc: int, memory: str) -> list[int]:
    """Where control rests after arriving at ``pc``: through jumps and no-op barriers."""
    out: list[int] = []
    seen: set[int] = set()
    todo = [pc]
    while todo:
        q = todo.pop()
        if q in seen:
            continue
        seen.add(q)
        ins = code[q] if q < len(code) else None
        if isinstance(ins, Goto):
            todo.extend(int(t) for t in reversed(ins.targets))
        elif _noop(ins, memory):
            todo.append(q + 1)
        elif q not in out:
            out.append(q)
    if not out:
        raise NotifyError(f"a loop of jumps without instructions at {pc}")
    return out


def _moves(p: Program, memory: str) -> tuple[Move, ...]:
    out: list[Move] = []
    for tid, t in enumerate(p.threads):
        for pc, ins in enumerate(t.code):
            if isinstance(ins, Goto):
                arms = [int(x) for x in ins.targets]
            elif isinstance(ins, Branch):
                assert isinstance(ins.target, int)
                arms = [ins.target] + ([pc + 1] if ins.target != pc + 1 else [])
            else:
                arms = [pc + 1]
            for arm in arms:
                lands = _landings(t.code, arm, memory)
                out.extend(Move("ins", tid, pc, tg, arm=arm) for tg in lands)
        if memory == "tso":
            out.append(Move("flush", tid))
        elif memory == "pso":
            out.extend(Move("flush", tid, var=v) for v in p.shared)
    return tuple(out)


def _check_memory(memory: str) -> None:
    if memory not in MEMORY_MODELS:
        raise NotifyError(f"unknown memory model {memory!r}: use one of {', '.join(MEMORY_MODELS)}")


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
    #: a violating run (move indices): a shortest path to the violation's first state, then
    #: a fair cycle back to it from ``loop_start`` (None: the run ends in a stuck state);
    #: a witness, not necessarily a shortest counterexample
    witness: tuple[int, ...] = ()
    loop_start: int | None = None


def explore(p: Program, memory: str, capacity: int = BUFFER_CAPACITY) -> Explored:
    """Search every reachable state of ``p`` under ``memory`` for a violation of its goals.

    A goal ``P`` is violated iff some reachable state where nothing can move satisfies P,
    or some strongly connected component of the P-states (reachable, with a cycle) meets
    every fairness unit (a move by it inside, or a state where it is disabled): weak
    fairness per unit is a generalised Büchi condition, so the whole component is a
    witness whenever any sub-cycle is.
    """
    t0 = time.perf_counter()
    x = _explicit(p, memory, capacity)
    init = x.initial()
    index = {init: 0}
    states = [init]
    parent: list[tuple[int, int]] = [(-1, -1)]
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
                parent.append((i, k))
            out.append((k, j))
        succ.append(out)
        ntr += len(out)
        i += 1
    units = _units(p, memory)

    def stem(j: int) -> list[int]:
        out: list[int] = []
        while j:
            j, k = parent[j]
            out.append(k)
        return out[::-1]

    for g, goal in enumerate(p.goals):
        ok = [x.ev(goal, s, None, mem_only=True) != 0 for s in states]
        stuck = [j for j in range(len(states)) if ok[j] and not succ[j]]
        if stuck:
            return Explored(len(states), ntr, True, g, time.perf_counter() - t0, capacity,
                            tuple(stem(stuck[0])))
        for comp in cyclic_components([[w for _, w in out] for out in succ], ok):
            if _fair_component(comp, succ, x, states, units):
                e = min(comp)  # states are numbered in breadth-first order
                cycle = _fair_cycle(e, set(comp), succ, x, units)
                path = stem(e)
                return Explored(len(states), ntr, True, g, time.perf_counter() - t0, capacity,
                                tuple(path + cycle), len(path))
    return Explored(len(states), ntr, False, None, time.perf_counter() - t0, capacity)


def _fair_cycle(e: int, comp: set[int], succ: list[list[tuple[int, int]]], x: _Explicit,
                units: list[tuple[str, int]]) -> list[int]:
    """Moves of a cycle from ``e`` back to ``e`` inside ``comp`` that meets every unit:
    breadth-first to the nearest place meeting each unit in turn, then back home."""

    def bfs(src: int, done: Callable[[int, int, int], bool]) -> tuple[list[int], int]:
        prev: dict[int, tuple[int, int]] = {src: (-1, -1)}
        todo = [src]
        for v in todo:
            for k, w in succ[v]:
                if w in comp and done(v, k, w):
                    path = [k]
                    while v != src:
                        v, k2 = prev[v]
                        path.append(k2)
                    return path[::-1], w
                if w in comp and w not in prev:
                    prev[w] = (v, k)
                    todo.append(w)
        raise AssertionError("a fair component without the expected path")

    moves: list[int] = []
    cur = e
    for u in units:
        def disabled_at(v: int, u: tuple[str, int] = u) -> bool:
            return all(_unit_of(x.moves[k]) != u for k, _ in succ[v])

        if disabled_at(cur):
            continue
        path, cur = bfs(cur, lambda v, k, w, u=u: _unit_of(x.moves[k]) == u  # type: ignore[misc]
                        or disabled_at(w))
        moves += path
    path, cur = bfs(cur, lambda v, k, w: w == e)
    return moves + path


def _units(p: Program, memory: str) -> list[tuple[str, int]]:
    """Fairness units: ("thread", tid) when threads are fair; ("flush", tid) under weak
    memory."""
    out = [("thread", t) for t in range(len(p.threads))] if p.fair else []
    if memory != "sc":
        out += [("flush", t) for t in range(len(p.threads))]
    return out


def _unit_of(m: Move) -> tuple[str, int]:
    return ("thread" if m.kind == "ins" else "flush", m.tid)


def _fair_component(comp: list[int], succ: list[list[tuple[int, int]]], x: _Explicit,
                    states: list[XState], units: list[tuple[str, int]]) -> bool:
    inside = set(comp)
    met: set[tuple[str, int]] = set()
    for j in comp:
        enabled = set()
        for k, n in succ[j]:
            u = _unit_of(x.moves[k])
            enabled.add(u)
            if n in inside:
                met.add(u)
        met.update(u for u in units if u not in enabled)
    return all(u in met for u in units)


# ------------------------------------------------------------------------------------------
# The symbolic semantics (z3)
# ------------------------------------------------------------------------------------------
class _Sym:
    """State variables per step and the transition relation, as z3 bit-vector terms."""

    def __init__(self, p: Program, memory: str, capacity: int = BUFFER_CAPACITY) -> None:
        _check_memory(memory)
        self.p, self.memory, self.cap = p, memory, capacity
        self.w = p.width
        self.mask = (1 << p.width) - 1
        self.vi = {v: i for i, v in enumerate(p.shared)}
        self.ri = [{r: i for i, r in enumerate(t.regs)} for t in p.threads]
        self.moves = _moves(p, memory)
        self.selw = max(1, len(self.moves).bit_length())
        self.pcw = max(1, max(len(t.code) for t in p.threads).bit_length() + 1)
        self.vw = max(1, len(p.shared).bit_length())
        self.cw = max(2, capacity.bit_length() + 1)
        self.epochs = memory == "pso" and p.has_wmb
        self.ew = max(2, (capacity * len(p.shared) + 1).bit_length())

    # A state is a dict name -> z3 term
    def fresh(self, k: int) -> dict[str, Any]:
        p = self.p
        s: dict[str, Any] = {}
        for t, th in enumerate(p.threads):
            s[f"pc{t}"] = z3.BitVec(f"pc{t}@{k}", self.pcw)
            for r in th.regs:
                s[f"r{t}.{r}"] = z3.BitVec(f"r{t}.{r}@{k}", self.w)
            if self.memory == "tso":
                s[f"n{t}"] = z3.BitVec(f"n{t}@{k}", self.cw)
                for i in range(self.cap):
                    s[f"bv{t}.{i}"] = z3.BitVec(f"bv{t}.{i}@{k}", self.vw)
                    s[f"bx{t}.{i}"] = z3.BitVec(f"bx{t}.{i}@{k}", self.w)
            elif self.memory == "pso":
                if self.epochs:
                    s[f"ep{t}"] = z3.BitVec(f"ep{t}@{k}", self.ew)
                for v in p.shared:
                    s[f"n{t}.{v}"] = z3.BitVec(f"n{t}.{v}@{k}", self.cw)
                    for i in range(self.cap):
                        s[f"bx{t}.{v}.{i}"] = z3.BitVec(f"bx{t}.{v}.{i}@{k}", self.w)
                        if self.epochs:
                            s[f"be{t}.{v}.{i}"] = z3.BitVec(f"be{t}.{v}.{i}@{k}", self.ew)
        for v in p.shared:
            s[f"m.{v}"] = z3.BitVec(f"m.{v}@{k}", self.w)
        return s

    def init(self, s: Mapping[str, Any]) -> Any:
        return z3.And([x == 0 for x in s.values()])

    def bv(self, n: int, w: int) -> Any:
        return z3.BitVecVal(n, w)

    def view(self, s: Mapping[str, Any], t: int, var: str) -> Any:
        res = s[f"m.{var}"]
        if self.memory == "tso":
            for i in range(self.cap):
                hit = z3.And(z3.UGT(s[f"n{t}"], i), s[f"bv{t}.{i}"] == self.vi[var])
                res = z3.If(hit, s[f"bx{t}.{i}"], res)
        elif self.memory == "pso":
            for i in range(self.cap):
                res = z3.If(z3.UGT(s[f"n{t}.{var}"], i), s[f"bx{t}.{var}.{i}"], res)
        return res

    def ev(self, e: Expr, s: Mapping[str, Any], t: int | None) -> Any:
        def leaf(x: Expr) -> Any:
            if x[0] == "c":
                return self.bv(int(x[1]) & self.mask, self.w)
            if x[0] == "r":
                assert t is not None
                return s[f"r{t}.{x[1]}"]
            if x[0] == "t":
                return s[f"r{self.p.thread_index(x[1])}.{x[2]}"]
            return s[f"m.{x[1]}"] if t is None else self.view(s, t, x[1])

        return _ev(e, leaf, self.mask, True)

    def truth(self, e: Expr, s: Mapping[str, Any], t: int | None) -> Any:
        r = self.ev(e, s, t)
        return r if z3.is_bool(r) else r != 0

    def empty(self, s: Mapping[str, Any], t: int) -> Any:
        if self.memory == "tso":
            return s[f"n{t}"] == 0
        if self.memory == "pso":
            return z3.And([s[f"n{t}.{v}"] == 0 for v in self.p.shared])
        return z3.BoolVal(True)

    def effect(self, s: Mapping[str, Any], m: Move) -> tuple[Any, dict[str, Any]]:
        """(guard, updates) of move ``m`` in state ``s``."""
        t = m.tid
        weak = self.memory != "sc"
        if m.kind == "flush":
            return self._flush(s, m)
        ins = self.p.threads[t].code[m.pc]
        g = [s[f"pc{t}"] == m.pc]
        up: dict[str, Any] = {f"pc{t}": self.bv(m.target, self.pcw)}
        if isinstance(ins, Goto):
            pass
        elif isinstance(ins, Branch):
            c = self.truth(ins.cond, s, t)
            g.append(c if m.arm == ins.target else z3.Not(c))
        elif isinstance(ins, Assign):
            up[f"r{t}.{ins.reg}"] = self.ev(ins.value, s, t)
        elif isinstance(ins, Load):
            up[f"r{t}.{ins.reg}"] = self.view(s, t, ins.var)
        elif isinstance(ins, Await):
            if ins.syscall and weak:
                g.append(self.empty(s, t))
            g.append(self.truth(ins.cond, s, t))
        elif isinstance(ins, Fence):
            if weak and ins.kind == "mb":
                g.append(self.empty(s, t))
            elif self.epochs and ins.kind == "wmb":
                ep = s[f"ep{t}"]
                cur = [z3.And(z3.UGT(s[f"n{t}.{v}"], i), s[f"be{t}.{v}.{i}"] == ep)
                       for v in self.p.shared for i in range(self.cap)]
                up[f"ep{t}"] = z3.If(z3.Or(cur), ep + 1, ep)
        elif isinstance(ins, Atomic):
            if weak:
                g.append(self.empty(s, t))
            if ins.reg is not None:
                up[f"r{t}.{ins.reg}"] = s[f"m.{ins.var}"]
            up[f"m.{ins.var}"] = self.ev(ins.value, s, t)
        else:
            assert isinstance(ins, Store)
            val = self.ev(ins.value, s, t)
            if ins.reg is not None:
                up[f"r{t}.{ins.reg}"] = self.view(s, t, ins.var)
            if not weak:
                up[f"m.{ins.var}"] = val
            elif self.memory == "tso":
                n = s[f"n{t}"]
                g.append(z3.ULT(n, self.cap))
                for i in range(self.cap):
                    up[f"bv{t}.{i}"] = z3.If(n == i, self.bv(self.vi[ins.var], self.vw),
                                             s[f"bv{t}.{i}"])
                    up[f"bx{t}.{i}"] = z3.If(n == i, val, s[f"bx{t}.{i}"])
                up[f"n{t}"] = n + 1
            else:
                v = ins.var
                n = s[f"n{t}.{v}"]
                g.append(z3.ULT(n, self.cap))
                for i in range(self.cap):
                    up[f"bx{t}.{v}.{i}"] = z3.If(n == i, val, s[f"bx{t}.{v}.{i}"])
                    if self.epochs:
                        up[f"be{t}.{v}.{i}"] = z3.If(n == i, s[f"ep{t}"], s[f"be{t}.{v}.{i}"])
                up[f"n{t}.{v}"] = n + 1
        return z3.And(g), up

    def _flush(self, s: Mapping[str, Any], m: Move) -> tuple[Any, dict[str, Any]]:
        t = m.tid
        up: dict[str, Any] = {}
        cap = self.cap
        if self.memory == "tso":
            n = s[f"n{t}"]
            for v in self.p.shared:
                up[f"m.{v}"] = z3.If(s[f"bv{t}.0"] == self.vi[v], s[f"bx{t}.0"], s[f"m.{v}"])
            for i in range(cap):
                nxt = i + 1 < cap
                up[f"bv{t}.{i}"] = s[f"bv{t}.{i + 1}"] if nxt else self.bv(0, self.vw)
                up[f"bx{t}.{i}"] = s[f"bx{t}.{i + 1}"] if nxt else self.bv(0, self.w)
            up[f"n{t}"] = n - 1
            return z3.UGT(n, 0), up
        v = m.var
        n = s[f"n{t}.{v}"]
        g = [z3.UGT(n, 0)]
        up[f"m.{v}"] = s[f"bx{t}.{v}.0"]
        for i in range(cap):
            nxt = i + 1 < cap
            up[f"bx{t}.{v}.{i}"] = s[f"bx{t}.{v}.{i + 1}"] if nxt else self.bv(0, self.w)
        up[f"n{t}.{v}"] = n - 1
        if self.epochs:
            head = s[f"be{t}.{v}.0"]
            for w in self.p.shared:
                if w != v:
                    g.append(z3.Or(s[f"n{t}.{w}"] == 0, z3.ULE(head, s[f"be{t}.{w}.0"])))
            # epochs after the pop, then normalised (empty: epoch 0; no entry left at
            # epoch 0: everything one lower), as the explicit semantics does
            ne: dict[str, Any] = {}
            cnt: dict[str, Any] = {}
            for w in self.p.shared:
                cnt[w] = n - 1 if w == v else s[f"n{t}.{w}"]
                for i in range(cap):
                    if w == v:
                        ne[f"{w}.{i}"] = s[f"be{t}.{w}.{i + 1}"] if i + 1 < cap else \
                            self.bv(0, self.ew)
                    else:
                        ne[f"{w}.{i}"] = s[f"be{t}.{w}.{i}"]
            valid = {f"{w}.{i}": z3.UGT(cnt[w], i) for w in self.p.shared for i in range(cap)}
            any_left = z3.Or(list(valid.values()))
            none_zero = z3.And([z3.Implies(valid[key], ne[key] != 0) for key in ne])
            shift = z3.And(any_left, none_zero)
            for key, e in ne.items():
                up[f"be{t}.{key}"] = z3.If(shift, e - 1, e)
            ep = s[f"ep{t}"]
            up[f"ep{t}"] = z3.If(any_left, z3.If(shift, ep - 1, ep), self.bv(0, self.ew))
        return z3.And(g), up

    def effects(self, s: Mapping[str, Any]) -> list[tuple[Any, dict[str, Any]]]:
        """(guard, updates) of every move in state ``s``."""
        return [self.effect(s, m) for m in self.moves]

    def relation(self, s: Mapping[str, Any], eff: Sequence[tuple[Any, dict[str, Any]]],
                 s2: Mapping[str, Any], sel: Any) -> Any:
        """The constraint that ``s2`` follows ``s`` by the move ``sel`` (``eff``: the
        effects in ``s``).  Each state variable is one if-then-else chain over the moves that
        change it, so the relation stays linear in the number of moves."""
        chains: dict[str, Any] = dict(s)
        cons: list[Any] = [z3.ULT(sel, len(self.moves))]
        for k, (g, up) in enumerate(eff):
            cons.append(z3.Implies(sel == k, g))
            for name, val in up.items():
                chains[name] = z3.If(sel == k, val, chains[name])
        cons.extend(s2[name] == chains[name] for name in s)
        return z3.And(cons)


# ------------------------------------------------------------------------------------------
# Bounded model checking
# ------------------------------------------------------------------------------------------
class _Collect:
    """The unrolling's constraints, kept to hand to a fresh bit-blasting solver per depth:
    z3's non-incremental QF_BV tactic (bit-blast, then SAT) is many times faster here than
    its incremental core with assumptions."""

    def __init__(self) -> None:
        self.facts: list[Any] = []

    def add(self, *fs: Any) -> None:
        self.facts.extend(fs)


@dataclass(frozen=True)
class _Cex:
    moves: tuple[int, ...]
    loop_start: int | None  # index into states where the cycle starts; None: stuck state
    goal: int


def _bmc(p: Program, memory: str, depth: int, capacity: int, deadline: float | None
         ) -> tuple[_Cex | None, int]:
    """Shortest lasso or stuck state of ``p`` within ``depth`` moves; returns (the
    counterexample or None, the depth checked to).

    One incremental unrolling; the violation's shape is chosen by free Booleans: ``en_i``
    (it ends at state i), ``st_l`` (its cycle starts at state l), ``stuck`` (a stuck state
    instead of a cycle) and one goal.  ``L`` is a copy of the cycle's start state, so closing
    the cycle costs one equality per position, and ``before_i``/``after_i``/``fair_u_i``
    are chains (a start at or before i, an end after i, unit u met at i or later), so each
    depth adds constraints of constant size.  Depth k is asked with the assumptions
    ``en_k`` and nothing after k: the first satisfiable k is the shortest violation.
    """
    sym = _Sym(p, memory, capacity)
    solver = _Collect()
    units = _units(p, memory)
    unit_moves = {u: [k for k, m in enumerate(sym.moves) if _unit_of(m) == u] for u in units}
    ngoals = len(p.goals)
    if ngoals == 0:
        return None, depth
    gsel = [z3.Bool(f"goal{g}") for g in range(ngoals)]
    solver.add(z3.Or(gsel))
    for a in range(ngoals):
        for b in range(a + 1, ngoals):
            solver.add(z3.Not(z3.And(gsel[a], gsel[b])))
    stuck = z3.Bool("stuck")
    loop = sym.fresh(-1)
    states = [sym.fresh(0)]
    solver.add(sym.init(states[0]))
    sels: list[Any] = []
    en: list[Any] = []
    st: list[Any] = []
    before: list[Any] = []
    after: list[Any] = []
    fair: list[dict[tuple[str, int], Any]] = []
    effs: list[list[tuple[Any, dict[str, Any]]]] = []
    goal_at: list[list[Any]] = []

    def position(k: int) -> None:
        s = states[k]
        effs.append(sym.effects(s))
        goal_at.append([sym.truth(g, s, None) for g in p.goals])
        en.append(z3.Bool(f"en{k}"))
        st.append(z3.Bool(f"st{k}"))
        after.append(z3.Bool(f"after{k}"))
        fair.append({u: z3.Bool(f"fair{u[0]}{u[1]}@{k}") for u in units})
        b = z3.Bool(f"before{k}")
        solver.add(b == (z3.Or(st[k], before[k - 1]) if k else st[k]))
        before.append(b)
        if k:
            solver.add(after[k - 1] == z3.Or(en[k], after[k]))
        eq = z3.And([loop[n] == s[n] for n in s])
        solver.add(z3.Implies(st[k], z3.And(z3.Not(stuck), after[k], eq)))
        any_move = z3.Or([g for g, _ in effs[k]])
        pick = z3.Or([z3.And(gsel[g], goal_at[k][g]) for g in range(ngoals)])
        solver.add(z3.Implies(en[k], z3.If(stuck, z3.And(z3.Not(any_move), pick),
                                           z3.And(eq, before[k - 1] if k else False))))
        inloop = z3.And(b, after[k])
        for g in range(ngoals):
            solver.add(z3.Implies(z3.And(inloop, gsel[g]), goal_at[k][g]))

    position(0)
    for u in units:
        solver.add(z3.Implies(z3.Not(stuck), fair[0][u]))
    for k in range(depth + 1):
        if deadline is not None and time.perf_counter() > deadline:
            return None, k - 1
        assume = [en[k], z3.Not(after[k]), *(z3.Not(fair[k][u]) for u in units)]
        one = z3.SolverFor("QF_BV")
        one.add(*solver.facts, *assume)
        if one.check() == z3.sat:
            model = one.model()
            mv = tuple(model.eval(sels[j], model_completion=True).as_long() for j in range(k))
            ls = None
            if not z3.is_true(model.eval(stuck, model_completion=True)):
                ls = next(j for j in range(k) if z3.is_true(model.eval(st[j],
                                                                     model_completion=True)))
            g = next(i for i in range(ngoals) if z3.is_true(model.eval(gsel[i],
                                                                       model_completion=True)))
            return _Cex(mv, ls, g), k
        if k == depth:
            break
        sel = z3.BitVec(f"sel@{k}", sym.selw)
        nxt = sym.fresh(k + 1)
        solver.add(sym.relation(states[k], effs[k], nxt, sel))
        inloop = z3.And(before[k], after[k])
        sels.append(sel)
        states.append(nxt)
        position(k + 1)
        for u in units:
            moved = z3.Or([sel == mk for mk in unit_moves[u]])
            dis = z3.Not(z3.Or([effs[k][mk][0] for mk in unit_moves[u]]))
            solver.add(fair[k][u] == z3.Or(z3.And(inloop, z3.Or(moved, dis)), fair[k + 1][u]))
    return None, depth


# ------------------------------------------------------------------------------------------
# Counterexamples: replay and text
# ------------------------------------------------------------------------------------------
def replay(p: Program, memory: str, moves: Sequence[int], capacity: int = BUFFER_CAPACITY
           ) -> list[XState]:
    """The explicit states along ``moves`` (indices into the program's move list) from the
    initial state; raises :class:`NotifyError` at the first move that is not enabled."""
    x = _explicit(p, memory, capacity)
    s = x.initial()
    out = [s]
    for i, k in enumerate(moves):
        n = x.step(s, x.moves[k])
        if n is None:
            what = _describe(p, x.moves[k])
            raise NotifyError(f"replay of {p.name}/{memory}: step {i + 1} ({what}) is not "
                              "enabled")
        out.append(n)
        s = n
    return out


def _describe(p: Program, m: Move) -> str:
    t = p.threads[m.tid]
    if m.kind == "flush":
        return f"{t.name:<16} flush {m.var or 'oldest store'} to memory"
    ins = t.code[m.pc]
    if isinstance(ins, Goto):
        txt = "start"
    elif isinstance(ins, Branch):
        txt = f"if {_show(ins.cond)}: " + ("taken" if m.arm == ins.target else "not taken")
    elif isinstance(ins, Assign):
        txt = f"{ins.reg} = {_show(ins.value)}"
    elif isinstance(ins, Load):
        txt = f"{ins.reg} = {ins.var}"
    elif isinstance(ins, Await):
        txt = f"wait until {_show(ins.cond)}" + (" (syscall)" if ins.syscall else "")
    elif isinstance(ins, Fence):
        txt = f"smp_{ins.kind}()"
    elif isinstance(ins, Atomic):
        lhs = f"{ins.reg} = xchg " if ins.reg else ""
        txt = f"{lhs}{ins.var} = {_show(ins.value)} ({'syscall' if ins.syscall else 'atomic'})"
    else:
        lhs = f"{ins.reg} = " if ins.reg else ""
        txt = f"{lhs}{ins.var} = {_show(ins.value)} (plain)"
    return f"{t.name:<16} {txt}"


def _state_text(p: Program, memory: str, s: XState) -> str:
    mem = " ".join(f"{v}={s[2][i]}" for i, v in enumerate(p.shared))
    parts = [mem]
    if memory != "sc":
        for t, th in enumerate(p.threads):
            b = s[3][t]
            if memory == "tso" and b:
                parts.append(f"{th.name}.buf=[" + ", ".join(f"{p.shared[v]}={x}" for v, x in b)
                             + "]")
            elif memory == "pso" and any(b):
                parts.append(f"{th.name}.buf=[" + ", ".join(
                    f"{p.shared[i]}={x}" for i, f in enumerate(b) for x, _ in f) + "]")
    return " ".join(parts)


def _cex_text(p: Program, memory: str, cex: _Cex, capacity: int) -> str:
    states = replay(p, memory, cex.moves, capacity)
    x = _explicit(p, memory, capacity)
    lines = []
    for i, k in enumerate(cex.moves):
        if cex.loop_start == i:
            lines.append("  -- cycle: the steps below repeat forever --")
        lines.append(f"  {i + 1:>3}. {_describe(p, x.moves[k]):<64} | "
                     f"{_state_text(p, memory, states[i + 1])}")
    goal = _show(p.goals[cex.goal])
    if cex.loop_start is None:
        lines.append(f"  -- stuck: no thread can move and {goal} holds forever --")
    else:
        lines.append(f"  -- back to the state after step {cex.loop_start}; {goal} holds "
                     "throughout --")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# Results and the public entry points
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NotifyVerdict:
    """One verdict for (protocol, memory model, property).

    ``verdict``: ``refuted`` (z3 found a shortest counterexample, replayed on the explicit
    semantics), ``proven`` (z3 found none within ``depth`` moves and the explicit search of
    all ``states`` reachable states confirms none exists; complete for buffers of
    ``buffer_capacity`` entries), ``bounded`` (none within ``depth``; no complete search ran
    or it was cut off).  ``z3_verdict`` is z3's own word (``refuted`` or ``bounded``).
    """

    protocol: str
    memory: str
    property: str
    verdict: Verdict
    depth: int
    seconds: float
    counterexample_steps: int | None
    counterexample: str
    z3_verdict: str
    z3_seconds: float
    states: int | None
    buffer_capacity: int
    moves: tuple[int, ...] = ()
    loop_start: int | None = None
    weak_only: bool | None = None
    notes: tuple[str, ...] = field(default=())

    @builtins.property
    def model(self) -> str:
        return f"{self.protocol}[{self.property}]"


def check_program(p: Program, memory: str, *, protocol: str = "", prop: str = "",
                  depth: int = 40, confirm_depth: int = 6, capacity: int = BUFFER_CAPACITY,
                  complete: bool = True, z3_budget: float | None = 20.0) -> NotifyVerdict:
    """Check ``p``'s goals under ``memory``.

    With ``complete`` (the default): the explicit search decides; then z3 either finds the
    shortest counterexample (depth by depth up to ``depth``; it is replayed on the explicit
    semantics) or, when the property holds, confirms that none exists within
    ``confirm_depth`` moves.  Without ``complete``: z3 alone, to ``depth``, giving
    ``refuted`` or ``bounded``.  A disagreement raises :class:`AssertionError`.
    ``z3_budget`` (seconds) stops z3's deepening, and ``depth`` bounds it: a violation the
    explicit search found beyond either stays ``refuted`` with the explicit search's witness
    (replayable, not proven shortest), and the note says how deep z3 proved that none is
    shorter.  Without ``z3_budget`` (as the campaign and ``prove`` call it) the verdict and
    the counterexample depend on ``depth`` alone, never on the machine's speed.
    """
    _check_memory(memory)
    t0 = time.perf_counter()
    ex = explore(p, memory, capacity) if complete else None
    z0 = time.perf_counter()
    bound = depth if ex is None or ex.violated else confirm_depth
    deadline = None if z3_budget is None else z0 + z3_budget
    cex, reached = _bmc(p, memory, bound, capacity, deadline)
    tz = time.perf_counter() - z0
    name = protocol or p.name
    states = None if ex is None else ex.states
    if cex is not None:
        if ex is not None and not ex.violated:
            raise AssertionError(f"{p.name}/{memory}: z3 finds a counterexample that the "
                                 "explicit search does not")
        text = _cex_text(p, memory, cex, capacity)
        return NotifyVerdict(name, memory, prop, "refuted", reached,
                             time.perf_counter() - t0, len(cex.moves), text, "refuted", tz,
                             states, capacity, cex.moves, cex.loop_start)
    if ex is not None and ex.violated:
        if reached == bound and len(ex.witness) <= reached:
            raise AssertionError(f"{p.name}/{memory}: the explicit search finds a violation "
                                 f"of {len(ex.witness)} moves that z3 does not find within "
                                 f"{reached} moves (encoding drift)")
        why = (f"z3 stopped by its {z3_budget} s budget" if reached < bound
               else f"z3 searched to its depth of {bound} moves")
        note = (f"{why}: no counterexample of at most {reached} moves; the one shown is the "
                f"explicit search's witness ({len(ex.witness)} moves, not proven shortest)")
        assert ex.goal is not None
        wit = _Cex(ex.witness, ex.loop_start, ex.goal)
        return NotifyVerdict(name, memory, prop, "refuted", reached,
                             time.perf_counter() - t0, len(ex.witness),
                             _cex_text(p, memory, wit, capacity), "bounded", tz, states,
                             capacity, ex.witness, ex.loop_start, notes=(note,))
    verdict: Verdict = "bounded" if ex is None else "proven"
    return NotifyVerdict(name, memory, prop, verdict, reached, time.perf_counter() - t0, None,
                         "", "bounded", tz, states, capacity)


def final_outcomes(p: Program, memory: str, observe: Sequence[Expr],
                   capacity: int = BUFFER_CAPACITY) -> frozenset[tuple[int, ...]]:
    """Every value of ``observe`` (expressions over thread registers and memory) in a final
    state (every thread ended, every buffer empty) of the loop-free program ``p``, by z3:
    such a state is exactly as many moves away as there are instructions that are steps
    under ``memory`` plus, under weak memory, one flush per plain store."""
    if any(isinstance(i, Branch | Goto) for t in p.threads for i in t.code):
        raise NotifyError(f"final_outcomes takes loop-free programs; {p.name} jumps")
    depth = sum(int(not _noop(i, memory)) + int(memory != "sc" and isinstance(i, Store))
                for t in p.threads for i in t.code)
    # a thread starting on a no-op executes it as one step (it lands past the whole chain)
    depth += sum(1 for t in p.threads if t.code and _noop(t.code[0], memory))
    sym = _Sym(p, memory, capacity)
    solver = z3.SolverFor("QF_BV")
    s = sym.fresh(0)
    solver.add(sym.init(s))
    for k in range(depth):
        n = sym.fresh(k + 1)
        solver.add(sym.relation(s, sym.effects(s), n, z3.BitVec(f"sel@{k}", sym.selw)))
        s = n
    for t, th in enumerate(p.threads):
        solver.add(s[f"pc{t}"] == len(th.code), sym.empty(s, t))
    terms = [sym.ev(e, s, None) for e in observe]
    out: set[tuple[int, ...]] = set()
    while solver.check() == z3.sat:
        m = solver.model()
        vals = tuple(m.eval(x, model_completion=True).as_long() for x in terms)
        out.add(vals)
        solver.add(z3.Or([x != v for x, v in zip(terms, vals, strict=True)]))
    return frozenset(out)


# ------------------------------------------------------------------------------------------
# The protocols (our encoding of QEMU's docs/spin models)
# ------------------------------------------------------------------------------------------
def _inc(var: str, d: int, label: str) -> Atomic:
    return Atomic(var, ("+" if d > 0 else "-", V(var), C(1)), label=label)


def _aio_notify(bug: bool, requests: int = 4) -> Program:
    """notify_me (eabc977973): the waiter counts itself in ``notify_me`` (``atomic_add``, a
    full barrier), looks for requests and otherwise sleeps on the event; the notifier posts
    request bit ``1 << i`` (plain store), ``smp_mb()``, and sets the event only when
    ``notify_me`` is non-zero, then waits for the request to be served (synchronous) or not.
    BUG drops the waiter's look at the requests: it always sleeps.  Goal: ``done`` (the bits
    the waiter served) never reaches all of them."""
    final = (1 << requests) - 1
    w: list[Instr | str] = [
        "loop",
        _inc("notify_me", 1, "aio_poll: atomic_add(notify_me) before checking for work"),
    ]
    if not bug:
        w.append(Branch(("!=", V("req"), C(0)), "served"))
    w += [
        Await(("!=", V("event"), C(0)), syscall=True),
        Atomic("event", C(0), syscall=True),
        "served",
        _inc("notify_me", -1, "aio_poll: atomic_sub(notify_me) after waking"),
        Atomic("req", C(0), reg="fetch", label="aio_bh_poll: xchg(req, 0)"),
        Assign("done", ("|", R("done"), R("fetch"))),
        Goto(("loop",)),
    ]
    n: list[Instr | str] = []
    for i in range(requests):
        n += [
            Store("req", ("|", V("req"), C(1 << i))),
            Fence("mb", "aio_notify: smp_mb() before reading notify_me"),
            Branch(("==", V("notify_me"), C(0)), f"skip{i}"),
            Atomic("event", C(1), syscall=True),
            f"skip{i}",
            Goto((f"sync{i}", f"next{i}")),
            f"sync{i}",
            Await(("==", V("req"), C(0))),
            f"next{i}",
        ]
    return Program(
        "aio_notify" + ("/BUG" if bug else ""),
        ("notify_me", "event", "req"),
        (Thread.assemble("waiter", w, ("done", "fetch")), Thread.assemble("notifier", n)),
        goals=(("!=", TR("waiter", "done"), C(final)),),
        fair=False,
        width=max(2, requests),
    )


def _poller(name: str, temporary: bool, clear: list[Instr | str]) -> Thread:
    items: list[Instr | str] = ["loop"]
    if temporary:
        items.append(Goto(("body", "end")))
    items += [
        "body",
        _inc("notify_me", 1, "aio_poll: atomic_add(notify_me) before checking for work"),
        Branch(("!=", V("req"), C(0)), "after"),
        Await(("!=", V("event"), C(0)), syscall=True),
        "after",
        _inc("notify_me", -1, "aio_poll: atomic_sub(notify_me) after waking"),
        *clear,
        Goto(("loop",)),
    ]
    return Thread.assemble(name, items)


def _notifier(check_req: bool, notify: list[Instr | str]) -> Thread:
    items: list[Instr | str] = [
        "loop", Goto(("post", "quit")),
        "post",
        Store("req", C(1)),
        Fence("mb", "aio_notify: smp_mb() before reading notify_me"),
    ]
    if check_req:
        items.append(Branch(("==", V("notify_me"), C(0)), "loop"))
    items += [*notify, Goto(("loop",)), "quit", Assign("done", C(1))]
    return Thread.assemble("notifier", items)


def _goals(check_req: bool) -> tuple[Expr, ...]:
    if check_req:
        return (("!=", V("req"), C(0)),)
    return (("and", ("==", V("event"), C(0)), ("==", TR("notifier", "done"), C(0))),
            ("!=", V("event"), C(0)))


def _aio_notify_bug(bug: bool, check_req: bool) -> Program:
    """The placement of ``event_notifier_test_and_clear`` (21a03d17): two pollers (one may
    leave) and a notifier posting ``req`` and setting the event.  Fixed: a poller clears the
    event, then the request; BUG: the request first, so a poller can swallow the event set
    for a later request that another poller sleeps on."""
    ev = Atomic("event", C(0), syscall=True)
    rq = Store("req", C(0))
    clear: list[Instr | str] = [rq, ev] if bug else [ev, rq]
    return Program(
        "aio_notify_bug" + ("/BUG" if bug else ""),
        ("notify_me", "event", "req"),
        (_notifier(check_req, [Atomic("event", C(1), syscall=True)]),
         _poller("waiter", False, clear), _poller("temporary_waiter", True, clear)),
        goals=_goals(check_req),
        width=2,
    )


def _aio_notify_accept(bug: int, check_req: bool) -> Program:
    """``ctx->notified`` and ``aio_notify_accept`` (05e514b1): the notifier sets the event,
    then ``notified`` (``atomic_mb_set``); a poller ``xchg``es ``notified`` to 0 and clears
    the event only if it was set.  BUG1 sets ``notified`` before the event; BUG2 skips the
    event write when ``notified`` is already set."""
    set_ev = Atomic("event", C(1), syscall=True)
    set_nf = Atomic("notified", C(1), label="aio_notify: atomic_mb_set(notified, true)")
    if bug == 1:
        notify: list[Instr | str] = [set_nf, set_ev]
    elif bug == 2:
        notify = [Branch(("!=", V("notified"), C(0)), "noset"), set_ev, "noset", set_nf]
    else:
        notify = [set_ev, set_nf]
    clear: list[Instr | str] = [
        Atomic("notified", C(0), reg="old", label="aio_notify_accept: xchg(notified, false)"),
        Branch(("==", R("old"), C(0)), "keep"),
        Atomic("event", C(0), syscall=True),
        "keep",
        Store("req", C(0)),
    ]
    return Program(
        "aio_notify_accept" + (f"/BUG{bug}" if bug else ""),
        ("notify_me", "notified", "event", "req"),
        (_notifier(check_req, notify), _poller("waiter", False, clear),
         _poller("temporary_waiter", True, clear)),
        goals=_goals(check_req),
        width=2,
    )


#: Protocol variants; ``/BUG`` (aio_notify), ``aio_notify_bug/BUG`` (21a03d17) and
#: ``aio_notify_accept/BUG1``, ``/BUG2`` are the planted bugs of QEMU's models.
PROTOCOLS: tuple[str, ...] = (
    "aio_notify", "aio_notify/BUG", "aio_notify_bug", "aio_notify_bug/BUG",
    "aio_notify_accept", "aio_notify_accept/BUG1", "aio_notify_accept/BUG2",
)
#: Properties per protocol family: Spin's default never claim, and ``req_cleared``
#: (``-DCHECK_REQ``: "req is eventually false", with the ``notify_me`` optimisation on).
PROPERTIES: dict[str, tuple[str, ...]] = {
    "aio_notify": ("requests_served",),
    "aio_notify_bug": ("event_toggles", "req_cleared"),
    "aio_notify_accept": ("event_toggles", "req_cleared"),
}

#: (protocol, property) -> (promela file, spin -D defines, pan flags, Spin's expected verdict)
SPIN_MODELS: dict[tuple[str, str], tuple[str, tuple[str, ...], tuple[str, ...], str]] = {
    ("aio_notify", "requests_served"): ("aio_notify.promela", (), ("-a",), "holds"),
    ("aio_notify/BUG", "requests_served"): ("aio_notify.promela", ("BUG",), ("-a",), "refuted"),
}
for _f, _vs in (("aio_notify_bug", ("", "BUG")), ("aio_notify_accept", ("", "BUG1", "BUG2"))):
    for _v in _vs:
        for _prop in ("event_toggles", "req_cleared"):
            _d = tuple(x for x in (_v, "CHECK_REQ" if _prop == "req_cleared" else "") if x)
            SPIN_MODELS[(_f + (f"/{_v}" if _v else ""), _prop)] = (
                f"{_f}.promela", _d, ("-a", "-f"), "")


def _family(protocol: str) -> str:
    return protocol.split("/")[0]


def build(protocol: str, prop: str | None = None) -> Program:
    """The program for ``protocol`` checked for ``prop`` (default: Spin's default claim)."""
    if protocol not in PROTOCOLS:
        raise NotifyError(f"unknown protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
    fam = _family(protocol)
    props = PROPERTIES[fam]
    prop = prop or props[0]
    if prop not in props:
        raise NotifyError(f"protocol {protocol} has no property {prop!r}: use one of "
                          f"{', '.join(props)}")
    variant = protocol.partition("/")[2]
    if fam == "aio_notify":
        return _aio_notify(variant == "BUG")
    if fam == "aio_notify_bug":
        return _aio_notify_bug(variant == "BUG", prop == "req_cleared")
    return _aio_notify_accept(int(variant[3:]) if variant else 0, prop == "req_cleared")


def check_protocol(protocol: str, memory: str, prop: str | None = None, *, depth: int = 40,
                   confirm_depth: int = 6, capacity: int = BUFFER_CAPACITY,
                   complete: bool = True, z3_budget: float | None = 20.0) -> NotifyVerdict:
    """Verdict for ``protocol`` under ``memory`` (``sc``, ``tso``, ``pso``) for ``prop``."""
    _check_memory(memory)
    p = build(protocol, prop)
    prop = prop or PROPERTIES[_family(protocol)][0]
    return check_program(p, memory, protocol=protocol, prop=prop, depth=depth,
                         confirm_depth=confirm_depth, capacity=capacity, complete=complete,
                         z3_budget=z3_budget)


# ------------------------------------------------------------------------------------------
# The fence audit
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FenceAudit:
    """One ordered access of a fixed protocol (one QEMU source line: every copy of it in
    every thread and unrolled iteration), weakened: a fence removed, or a locked operation
    made plain (read and buffered write in one step); per memory model, the verdict and the
    counterexample length (None when it still holds or was not searched)."""

    protocol: str
    property: str
    threads: tuple[str, ...]
    copies: int
    site: str
    change: str
    verdicts: tuple[tuple[str, str, int | None], ...]

    @builtins.property
    def necessary_under(self) -> tuple[str, ...]:
        return tuple(m for m, v, _ in self.verdicts if v == "refuted")


def _weakened(p: Program) -> Iterator[tuple[tuple[str, ...], int, str, str, Program]]:
    """Per site (an instruction's label, else its text): the program with every copy of it
    weakened."""
    sites: dict[str, list[tuple[int, int]]] = {}
    for t, th in enumerate(p.threads):
        for pc, ins in enumerate(th.code):
            if isinstance(ins, Fence):
                sites.setdefault(ins.label or f"smp_{ins.kind}()", []).append((t, pc))
            elif isinstance(ins, Atomic) and not ins.syscall:
                sites.setdefault(ins.label or f"atomic {ins.var}", []).append((t, pc))
    for site, where in sites.items():
        threads = list(p.threads)
        change = ""
        for t, pc in where:
            ins = threads[t].code[pc]
            if isinstance(ins, Fence):
                new: Instr = Goto((pc + 1,))
                change = f"smp_{ins.kind}() removed"
            else:
                assert isinstance(ins, Atomic)
                new = Store(ins.var, ins.value, ins.reg)
                change = "locked operation made a plain read-modify-write"
            threads[t] = replace(threads[t], code=_put(threads[t].code, pc, new))
        names = tuple(dict.fromkeys(p.threads[t].name for t, _ in where))
        yield names, len(where), site, change, replace(p, threads=tuple(threads))


def audit_fences(protocols: Iterable[str] = ("aio_notify", "aio_notify_bug", "aio_notify_accept"),
                 memories: Iterable[str] = MEMORY_MODELS, *, depth: int = 40,
                 confirm_depth: int = 4, capacity: int = BUFFER_CAPACITY, shortest: bool = True
                 ) -> list[FenceAudit]:
    """For each fence and locked operation of each fixed protocol (every property), weaken
    it and check again under each memory model.  ``shortest=False`` skips z3 (the explicit
    verdict alone; no counterexample length), which is much faster."""
    out: list[FenceAudit] = []
    mems = tuple(memories)
    for proto in protocols:
        if "/" in proto:
            raise NotifyError(f"the fence audit takes fixed protocols, not {proto!r}")
        for prop in PROPERTIES[_family(proto)]:
            for names, copies, site, change, q in _weakened(build(proto, prop)):
                vs: list[tuple[str, str, int | None]] = []
                for mem in mems:
                    if not shortest:
                        e = explore(q, mem, capacity)
                        vs.append((mem, "refuted" if e.violated else "proven", None))
                        continue
                    v = check_program(q, mem, protocol=proto, prop=prop, depth=depth,
                                      confirm_depth=confirm_depth, capacity=capacity)
                    vs.append((mem, v.verdict, v.counterexample_steps))
                out.append(FenceAudit(proto, prop, names, copies, site, change, tuple(vs)))
    return out
