"""The language of :mod:`model._notify`: expressions (evaluated over ints or z3 bit-vectors
alike), instructions, threads and programs, and the labelled moves both engines step by.

Why it exists: it is the layer every other part of the aio_notify checker builds on (the
explicit search, the z3 unrolling, the protocols), so it imports none of them.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import z3

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

