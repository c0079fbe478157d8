"""Litmus tests: the controlled platform's memory models against an independent reference.

The standard shapes (SB, MP, LB, 2+2W, S, R, IRIW, WRC, CoRR, CoWW, CoWR, CoRW, and SB with
own reads) are written once in a tiny instruction language, then both

* compiled to a controlled-platform program (``platform.atomic`` cells, ``platform.fence``)
  that :func:`~aioctx_verify.stress.explore.explore` runs under every strategy, and
* run by :func:`allowed`, a brute-force operational model in this module that enumerates
  every interleaving of an abstract machine, sharing no code with the platform.

Exhaustive strategies (DFS with and without state pruning, DPOR unbounded and at the test's
bound) must produce *exactly* the outcomes the reference allows; sampling strategies
(random, PCT) a subset of them.

The reference machines:

* ``sc``: one memory; every instruction is atomic and fences are no-ops.
* ``tso``: x86-TSO as defined by Owens, Sarkar and Sewell, "A better x86 memory model:
  x86-TSO" (TPHOLs 2009): one FIFO store buffer per thread; a load takes the newest entry
  for its location in its own buffer, else memory; the oldest entry of any buffer may be
  written to memory at any time; ``mfence`` and ``lock``-prefixed instructions wait until
  their thread's buffer is empty, and a locked RMW then reads and writes memory at once.
* ``pso``: SPARC v9 Partial Store Order (The SPARC Architecture Manual, Version 9, the
  memory models chapter): one FIFO per thread *per location*, so stores to different
  locations may reach memory in either order; loads are performed in order and forward
  from the own buffers;
  ``membar #StoreStore`` (``smp_wmb``) holds every later store back until every earlier
  store has reached memory, and delays no load; ``membar #StoreLoad`` (in ``smp_mb``) waits
  for the buffers to be empty.

How each operation maps (C11 orderings as compiled for x86, Linux/QEMU barriers as
implemented on x86 and SPARC; the controlled platform's module docstring states the same
table):

===========================  =======  ==================================  ===================
operation                    sc       tso                                 pso
===========================  =======  ==================================  ===================
load relaxed/acquire/seq_cst atomic   plain load (``mov``)                plain load
store relaxed                atomic   buffered                            buffered
store release                atomic   buffered (the FIFO orders it)       #StoreStore, buffer
store seq_cst                atomic   wait for empty buffer, then write   the same
                                      memory (``xchg``)
exchange/cmpxchg/fetch_add   atomic   wait for empty buffer, atomic       the same (QEMU's
(any ordering)                        read-modify-write (``lock``)        RMWs: full barrier)
``smp_mb``                   no-op    wait for empty buffer (``mfence``)  the same
``smp_wmb``                  no-op    no-op (compiler barrier)            #StoreStore
``smp_rmb``                  no-op    no-op (loads are in order)          no-op
===========================  =======  ==================================  ===================

An outcome is the tuple of every register in order of appearance, then the final value of
the locations a test names.  Every location starts at 0.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import pytest

from aioctx_verify.impl import Fence, Ordering
from aioctx_verify.stress.controlled import (
    ControlledPlatform,
    DFSStrategy,
    DPORStrategy,
    RandomStrategy,
)
from aioctx_verify.stress.explore import Budget, ExploreResult, Program, explore

MODELS = ("sc", "tso", "pso")


# ------------------------------------------------------------------------------------------
# The instruction language
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Ld:
    """``reg = loc`` (load)."""

    loc: str
    reg: str
    order: str = "relaxed"


@dataclass(frozen=True, slots=True)
class St:
    """``loc = val`` (store)."""

    loc: str
    val: int
    order: str = "relaxed"


@dataclass(frozen=True, slots=True)
class Fn:
    """A barrier: ``mb``, ``wmb`` or ``rmb``."""

    kind: str


@dataclass(frozen=True, slots=True)
class Rmw:
    """``reg = loc; loc = f(reg)`` atomically: ``xchg`` (new ``a``), ``cas`` (if equal to
    ``a``, new ``b``), ``add`` (plus ``a``)."""

    op: str
    loc: str
    reg: str
    a: int
    b: int = 0
    order: str = "seq_cst"

    def new(self, old: int) -> int:
        if self.op == "xchg":
            return self.a
        if self.op == "cas":
            return self.b if old == self.a else old
        return old + self.a


Instr = Ld | St | Fn | Rmw


@dataclass(frozen=True)
class Litmus:
    """A litmus test: threads of instructions, and the locations whose final value counts."""

    name: str
    threads: tuple[tuple[Instr, ...], ...]
    final: tuple[str, ...] = ()
    #: DFS preemption bound that reaches every allowed outcome (a flush costs one, as does
    #: a switch away from a runnable thread); exhaustion at it must give the allowed set.
    bound: int = 2

    @property
    def regs(self) -> tuple[str, ...]:
        return tuple(i.reg for t in self.threads for i in t if isinstance(i, Ld | Rmw))

    @property
    def locs(self) -> tuple[str, ...]:
        return tuple(sorted({i.loc for t in self.threads for i in t if not isinstance(i, Fn)}))

    def show(self, outcome: tuple[int, ...]) -> str:
        names = self.regs + self.final
        return " ".join(f"{n}={v}" for n, v in zip(names, outcome, strict=True))


# ------------------------------------------------------------------------------------------
# The reference: brute-force enumeration of an abstract machine
# ------------------------------------------------------------------------------------------
# A machine state: (pcs, regs, memory, buffers, epochs), all immutable
#   pcs      the next instruction of each thread
#   regs     (name, value) pairs, sorted; memory likewise, by location
#   buffers  one per thread.  tso: one FIFO, a tuple of (location, value), oldest first.
#            pso: one FIFO per location, a sorted tuple of (location, fifo), each fifo a
#            tuple of (value, epoch), oldest first
#   epochs   pso: the epoch of each thread's next store (one more after each #StoreStore
#            that has a buffered store to hold back)
Pairs = tuple[tuple[str, int], ...]
MState = tuple[tuple[int, ...], Pairs, Pairs, tuple[Any, ...], tuple[int, ...]]
T = TypeVar("T")


def _set(pairs: Pairs, key: str, value: int) -> Pairs:
    d = dict(pairs)
    d[key] = value
    return tuple(sorted(d.items()))


def _put(t: tuple[T, ...], i: int, v: T) -> tuple[T, ...]:
    return (*t[:i], v, *t[i + 1 :])


class _Machine:
    """One model's rules over immutable states."""

    def __init__(self, model: str) -> None:
        self.model = model

    # -- buffers ---------------------------------------------------------------------------
    def forward(self, buf: Any, loc: str) -> int | None:
        """The newest value the own buffer holds for ``loc`` (store forwarding), if any."""
        if self.model == "tso":
            vals = [v for bl, v in buf if bl == loc]
            return vals[-1] if vals else None
        fifo = dict(buf).get(loc)
        return None if fifo is None else int(fifo[-1][0])

    def enqueue(self, buf: Any, loc: str, val: int, epoch: int) -> Any:
        if self.model == "tso":
            return (*buf, (loc, val))
        fifos = dict(buf)
        fifos[loc] = (*fifos.get(loc, ()), (val, epoch))
        return tuple(sorted(fifos.items()))

    def dequeues(self, buf: Any) -> Iterator[tuple[str, int, Any]]:
        """Every (location, value, rest of the buffer) that may reach memory next."""
        if not buf:
            return
        if self.model == "tso":
            loc, val = buf[0]
            yield loc, val, buf[1:]
            return
        fifos: dict[str, tuple[tuple[int, int], ...]] = dict(buf)
        oldest = min(fifo[0][1] for fifo in fifos.values())
        for loc, fifo in fifos.items():
            val, epoch = fifo[0]
            if epoch != oldest:
                continue  # behind a #StoreStore barrier that an older store still holds
            rest = dict(fifos)
            if len(fifo) > 1:
                rest[loc] = fifo[1:]
            else:
                del rest[loc]
            yield loc, val, tuple(sorted(rest.items()))

    # -- instructions ----------------------------------------------------------------------
    def execute(self, s: MState, tid: int, ins: Instr) -> MState | None:
        """The state after ``tid`` executes ``ins``, or None while ``ins`` must wait."""
        pcs, regs, mem, bufs, epochs = s
        buf = bufs[tid]
        pcs = _put(pcs, tid, pcs[tid] + 1)
        weak = self.model != "sc"
        if isinstance(ins, Ld):
            fwd = self.forward(buf, ins.loc) if weak else None
            val = dict(mem)[ins.loc] if fwd is None else fwd
            return pcs, _set(regs, ins.reg, val), mem, bufs, epochs
        if isinstance(ins, St):
            if not weak:
                return pcs, regs, _set(mem, ins.loc, ins.val), bufs, epochs
            if ins.order == "seq_cst":  # xchg: a locked instruction
                if buf:
                    return None
                return pcs, regs, _set(mem, ins.loc, ins.val), bufs, epochs
            if ins.order == "release" and self.model == "pso" and buf:
                epochs = _put(epochs, tid, epochs[tid] + 1)
            nbuf = self.enqueue(buf, ins.loc, ins.val, epochs[tid])
            return pcs, regs, mem, _put(bufs, tid, nbuf), epochs
        if isinstance(ins, Fn):
            if not weak or ins.kind == "rmb":
                return pcs, regs, mem, bufs, epochs
            if ins.kind == "mb":
                return None if buf else (pcs, regs, mem, bufs, epochs)
            if self.model == "pso" and buf:  # wmb
                epochs = _put(epochs, tid, epochs[tid] + 1)
            return pcs, regs, mem, bufs, epochs
        # Rmw: a locked instruction
        if weak and buf:
            return None
        old = dict(mem)[ins.loc]
        return pcs, _set(regs, ins.reg, old), _set(mem, ins.loc, ins.new(old)), bufs, epochs

    def successors(self, test: Litmus, s: MState) -> Iterator[MState]:
        pcs, regs, mem, bufs, epochs = s
        for tid, code in enumerate(test.threads):
            if pcs[tid] < len(code):
                nxt = self.execute(s, tid, code[pcs[tid]])
                if nxt is not None:
                    yield nxt
        for tid, buf in enumerate(bufs):
            for loc, val, rest in self.dequeues(buf):
                yield pcs, regs, _set(mem, loc, val), _put(bufs, tid, rest), epochs


def allowed(test: Litmus, model: str) -> frozenset[tuple[int, ...]]:
    """Every outcome of ``test`` under ``model``: a search of all reachable machine states."""
    m = _Machine(model)
    n = len(test.threads)
    start: MState = (
        (0,) * n,
        tuple((r, 0) for r in sorted(test.regs)),
        tuple((loc, 0) for loc in test.locs),
        ((),) * n,
        (0,) * n,
    )
    seen = {start}
    todo = [start]
    out: set[tuple[int, ...]] = set()
    while todo:
        s = todo.pop()
        moves = list(m.successors(test, s))
        if not moves:
            pcs, regs, mem, bufs, _ = s
            done = all(pc == len(c) for pc, c in zip(pcs, test.threads, strict=True))
            assert done and not any(bufs), f"{test.name}/{model}: the reference machine is stuck"
            r, mm = dict(regs), dict(mem)
            out.add(tuple(r[x] for x in test.regs) + tuple(mm[x] for x in test.final))
        for nxt in moves:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return frozenset(out)


# ------------------------------------------------------------------------------------------
# The same test as a controlled-platform program
# ------------------------------------------------------------------------------------------
_ORDER = {o.value: o for o in Ordering}
_FENCE = {"mb": Fence.MB, "wmb": Fence.WMB, "rmb": Fence.RMB}


def compile_test(
    test: Litmus, outcomes: set[tuple[int, ...]]
) -> Callable[[ControlledPlatform], None]:
    """``fn(platform)``: run the litmus threads, join them, add the outcome to ``outcomes``."""

    def program(p: ControlledPlatform) -> None:
        cells = {loc: p.atomic(0, loc) for loc in test.locs}
        regs: dict[str, int] = {}

        def body(code: tuple[Instr, ...]) -> Callable[[], None]:
            def run() -> None:
                for ins in code:
                    if isinstance(ins, Ld):
                        regs[ins.reg] = cells[ins.loc].load(_ORDER[ins.order])
                    elif isinstance(ins, St):
                        cells[ins.loc].store(ins.val, _ORDER[ins.order])
                    elif isinstance(ins, Fn):
                        p.fence(_FENCE[ins.kind])
                    elif ins.op == "xchg":
                        regs[ins.reg] = cells[ins.loc].exchange(ins.a, _ORDER[ins.order])
                    elif ins.op == "cas":
                        regs[ins.reg] = cells[ins.loc].compare_exchange(
                            ins.a, ins.b, _ORDER[ins.order]
                        )
                    else:
                        regs[ins.reg] = cells[ins.loc].fetch_add(ins.a, _ORDER[ins.order])

            return run

        # The main thread runs the last litmus thread itself: one thread fewer to interleave.
        *others, last = test.threads
        handles = [p.start_thread(body(code), f"P{i}") for i, code in enumerate(others)]
        body(last)()
        for h in handles:
            h.join()
        final = tuple(cells[loc].load() for loc in test.final)
        outcomes.add(tuple(regs[r] for r in test.regs) + final)

    return program


# ------------------------------------------------------------------------------------------
# The shapes
# ------------------------------------------------------------------------------------------
SHAPES: tuple[Litmus, ...] = (
    Litmus("SB", ((St("x", 1), Ld("y", "r0")), (St("y", 1), Ld("x", "r1")))),
    Litmus("MP", ((St("x", 1), St("y", 1)), (Ld("y", "r0"), Ld("x", "r1"))), bound=3),
    Litmus("LB", ((Ld("x", "r0"), St("y", 1)), (Ld("y", "r1"), St("x", 1)))),
    Litmus("2+2W", ((St("x", 1), St("y", 2)), (St("y", 1), St("x", 2))), ("x", "y")),
    Litmus("S", ((St("x", 2), St("y", 1)), (Ld("y", "r0"), St("x", 1))), ("x",), 3),
    Litmus("R", ((St("x", 1), St("y", 1)), (St("y", 2), Ld("x", "r0"))), ("y",)),
    Litmus(
        "IRIW",
        (
            (St("x", 1),),
            (St("y", 1),),
            (Ld("x", "r0"), Ld("y", "r1")),
            (Ld("y", "r2"), Ld("x", "r3")),
        ),
    ),
    Litmus(
        "WRC",
        ((St("x", 1),), (Ld("x", "r0"), St("y", 1)), (Ld("y", "r1"), Ld("x", "r2"))),
    ),
    Litmus("CoRR", ((St("x", 1),), (Ld("x", "r0"), Ld("x", "r1")))),
    Litmus("CoWW", ((St("x", 1), St("x", 2)), (Ld("x", "r0"), Ld("x", "r1"))), ("x",), 4),
    Litmus("CoWR", ((St("x", 1), Ld("x", "r0")), (St("x", 2),)), ("x",), 3),
    Litmus("CoRW", ((Ld("x", "r0"), St("x", 1)), (St("x", 2),)), ("x",)),
    Litmus(
        "SB+rfi",  # SB with own reads: each thread reads its own store back first
        (
            (St("x", 1), Ld("x", "r0"), Ld("y", "r1")),
            (St("y", 1), Ld("y", "r2"), Ld("x", "r3")),
        ),
    ),
)


def with_fence(test: Litmus, kind: str) -> Litmus:
    """``kind`` between every two consecutive instructions of every thread."""
    threads = tuple(
        tuple(itertools.chain.from_iterable((i, Fn(kind)) for i in t))[:-1] for t in test.threads
    )
    return replace(test, name=f"{test.name}+{kind}s", threads=threads)


def with_orders(test: Litmus, store: str, load: str, tag: str) -> Litmus:
    """Every store with ordering ``store``, every load with ``load``."""
    threads = tuple(
        tuple(
            replace(i, order=store)
            if isinstance(i, St)
            else replace(i, order=load)
            if isinstance(i, Ld)
            else i
            for i in t
        )
        for t in test.threads
    )
    return replace(test, name=f"{test.name}+{tag}", threads=threads)


_OTHER_TESTS: tuple[Litmus, ...] = (
    # A release store orders the stores before it, not the loads after it: each thread's
    # first store may still be invisible to the other's load (a drain would forbid 0, 0).
    Litmus(
        "SB+rel-stores",
        (
            (St("x", 1), St("y", 1, "release"), Ld("z", "r0")),
            (St("z", 1), St("w", 1, "release"), Ld("x", "r1")),
        ),
    ),
    # x86 makes every locked RMW a full fence: as the stores of SB (xchg, cmpxchg) ...
    Litmus(
        "SB+xchgs",
        ((Rmw("xchg", "x", "r0", 1), Ld("y", "r1")), (Rmw("xchg", "y", "r2", 1), Ld("x", "r3"))),
    ),
    Litmus(
        "SB+xchgs+sc-loads",
        (
            (Rmw("xchg", "x", "r0", 1), Ld("y", "r1", "seq_cst")),
            (Rmw("xchg", "y", "r2", 1), Ld("x", "r3", "seq_cst")),
        ),
    ),
    Litmus(
        "SB+cmpxchgs",
        (
            (Rmw("cas", "x", "r0", 0, 1), Ld("y", "r1")),
            (Rmw("cas", "y", "r2", 0, 1), Ld("x", "r3")),
        ),
    ),
    # ... or on an unrelated location between the store and the load
    Litmus(
        "SB+fetch_adds",
        (
            (St("x", 1), Rmw("add", "z", "r0", 1, order="relaxed"), Ld("y", "r1")),
            (St("y", 1), Rmw("add", "z", "r2", 1, order="relaxed"), Ld("x", "r3")),
        ),
        ("z",),
    ),
    # atomicity: two increments never lose one
    Litmus("2xfetch_add", ((Rmw("add", "x", "r0", 1),), (Rmw("add", "x", "r1", 1),)), ("x",)),
    # a cmpxchg that fails still reads the latest value and orders like a fence
    Litmus(
        "MP+cas",
        ((St("x", 1), Rmw("cas", "y", "r0", 0, 1)), (Ld("y", "r1"), Ld("x", "r2"))),
    ),
)


def _cases() -> list[Litmus]:
    out: list[Litmus] = []
    for t in SHAPES:
        out.append(t)
        if t.name == "IRIW":
            # Four threads make each IRIW exploration cost seconds; the barrier and ordering
            # variants change nothing in these multi-copy-atomic models, so they are left out.
            continue
        out.extend(with_fence(t, k) for k in ("mb", "wmb", "rmb"))
        out.append(with_orders(t, "release", "acquire", "rel-acq"))
        out.append(with_orders(t, "seq_cst", "seq_cst", "sc"))
    out.extend(_OTHER_TESTS)
    return out


CASES = {t.name: t for t in _cases()}


def produced(
    test: Litmus, model: str, strategy: object, budget: Budget
) -> tuple[frozenset[tuple[int, ...]], ExploreResult]:
    """The outcomes ``explore`` reaches on ``test`` under ``model``, and its result."""
    outcomes: set[tuple[int, ...]] = set()
    prog = Program(test.name, compile_test(test, outcomes), memory=model, monitors=False)
    res = explore(prog, strategy=strategy, budget=budget, do_shrink=False)
    assert res.verdict == "pass", res.summary()
    return frozenset(outcomes), res


def _diff(test: Litmus, want: frozenset[tuple[int, ...]], got: frozenset[tuple[int, ...]]) -> str:
    missing = ", ".join(sorted(test.show(o) for o in want - got)) or "none"
    extra = ", ".join(sorted(test.show(o) for o in got - want)) or "none"
    return f"missing [{missing}], not allowed [{extra}]"


# ------------------------------------------------------------------------------------------
# The reference against the literature
# ------------------------------------------------------------------------------------------
# (test, outcome, models that allow it): the classic verdicts (the x86-TSO paper's litmus
# tests, SPARC v9 PSO, the C11-to-x86 mappings), so the reference is checked on its own.
CLASSICS: tuple[tuple[str, tuple[int, ...], tuple[str, ...]], ...] = (
    ("SB", (0, 0), ("tso", "pso")),
    ("SB+mbs", (0, 0), ()),
    ("SB+wmbs", (0, 0), ("tso", "pso")),
    ("SB+rmbs", (0, 0), ("tso", "pso")),
    ("SB+rel-acq", (0, 0), ("tso", "pso")),
    ("SB+sc", (0, 0), ()),
    ("SB+xchgs", (0, 0, 0, 0), ()),
    ("SB+cmpxchgs", (0, 0, 0, 0), ()),
    ("SB+fetch_adds", (0, 0, 1, 0, 2), ()),
    ("SB+fetch_adds", (1, 0, 0, 0, 2), ()),
    ("SB+rfi", (1, 0, 1, 0), ("tso", "pso")),
    ("SB+rel-stores", (0, 0), ("tso", "pso")),
    ("MP", (1, 0), ("pso",)),
    ("MP+wmbs", (1, 0), ()),
    ("MP+rmbs", (1, 0), ("pso",)),
    ("MP+rel-acq", (1, 0), ()),
    ("MP+cas", (0, 1, 0), ()),
    ("LB", (1, 1), ()),
    ("2+2W", (1, 1), ("pso",)),
    ("2+2W+wmbs", (1, 1), ()),
    ("2+2W+rel-acq", (1, 1), ()),
    ("S", (1, 2), ("pso",)),
    ("S+wmbs", (1, 2), ()),
    ("R", (0, 2), ("tso", "pso")),
    ("R+mbs", (0, 2), ()),
    ("R+sc", (0, 2), ()),
    ("IRIW", (1, 0, 1, 0), ()),
    ("WRC", (1, 1, 0), ()),
    ("CoRR", (1, 0), ()),
    ("CoWW", (2, 1, 2), ()),
    ("CoWW", (0, 0, 1), ()),
    ("CoWR", (0, 2), ()),
    ("CoWR", (2, 1), ()),
    ("CoRW", (2, 2), ()),
    ("2xfetch_add", (0, 0, 2), ()),
    ("2xfetch_add", (0, 1, 1), ()),
)


@pytest.mark.parametrize(("name", "outcome", "where"), CLASSICS, ids=lambda v: str(v))
def test_reference_gives_the_classic_verdicts(
    name: str, outcome: tuple[int, ...], where: tuple[str, ...]
) -> None:
    test = CASES[name]
    for model in MODELS:
        ok = outcome in allowed(test, model)
        assert ok == (model in where), (
            f"{name} under {model}: the reference {'allows' if ok else 'forbids'} "
            f"{test.show(outcome)}, the literature says the opposite"
        )


def test_reference_models_nest() -> None:
    # Every sc outcome is a tso outcome (flush at once), every tso one a pso one (flush in
    # order); and each weaker model adds something on the shapes that tell them apart.
    for test in CASES.values():
        assert allowed(test, "sc") <= allowed(test, "tso") <= allowed(test, "pso"), test.name
    assert allowed(CASES["SB"], "sc") < allowed(CASES["SB"], "tso")
    assert allowed(CASES["MP"], "tso") < allowed(CASES["MP"], "pso")


# ------------------------------------------------------------------------------------------
# The platform against the reference
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("name", list(CASES))
def test_exhaustive_dfs_produces_exactly_the_allowed_outcomes(name: str, model: str) -> None:
    test = CASES[name]
    want = allowed(test, model)
    for prune in (True, False):
        got, res = produced(test, model, DFSStrategy(test.bound, prune=prune), Budget(100_000, 60))
        assert res.exhausted, f"{name}/{model} prune={prune}: {res.summary()}"
        assert got == want, f"{name}/{model} DFS prune={prune}: {_diff(test, want, got)}"


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("name", list(CASES))
def test_exhaustive_dpor_produces_exactly_the_allowed_outcomes(name: str, model: str) -> None:
    test = CASES[name]
    want = allowed(test, model)
    for bound in (None, test.bound):
        strat = DPORStrategy(bound)
        got, res = produced(test, model, strat, Budget(100_000, 10**6))
        assert res.exhausted and strat.exhausted, f"{name}/{model} bound={bound}: {res.summary()}"
        assert got == want, f"{name}/{model} DPOR bound={bound}: {_diff(test, want, got)}"
        assert strat.classes + strat.blocked == res.schedules + res.pruned


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("strategy", ["random", "pct"])
@pytest.mark.parametrize("name", [t.name for t in SHAPES + _OTHER_TESTS])
def test_sampling_strategies_produce_only_allowed_outcomes(
    name: str, strategy: str, model: str
) -> None:
    test = CASES[name]
    want = allowed(test, model)
    got, res = produced(test, model, strategy, Budget(25, 30))
    assert res.schedules == 25
    assert got and got <= want, f"{name}/{model} {strategy}: {_diff(test, want, got)}"


# ------------------------------------------------------------------------------------------
# Regressions of the two reported defects
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("SB", "tso"),
        ("SB", "pso"),
        ("MP", "pso"),
        ("2+2W", "pso"),
        ("S", "pso"),
        ("R", "tso"),
        ("R", "pso"),
        ("CoWW", "tso"),
        ("CoWW", "pso"),
        ("SB+rfi", "tso"),
    ],
)
def test_pruned_dfs_is_exhaustive_under_weak_memory(name: str, model: str) -> None:
    # Defect 1: the pruning key ignored when buffered stores reached memory, so a pruned DFS
    # reported "exhausted" without the weak outcome (SB under tso: never r0 = r1 = 1).
    test = CASES[name]
    want = allowed(test, model)
    strategy = "dfs" if test.bound == 2 else DFSStrategy(test.bound)
    got, res = produced(test, model, strategy, Budget(100_000, 60))
    assert res.exhausted and res.pruned > 0, res.summary()
    assert got == want, f"{name}/{model}: {_diff(test, want, got)}"


@pytest.mark.parametrize("name", ["SB+wmbs", "SB+rel-stores", "R+wmbs"])
@pytest.mark.parametrize("model", ["tso", "pso"])
def test_store_store_barrier_does_not_delay_later_loads(name: str, model: str) -> None:
    # Defect 2: under pso smp_wmb and a release store drained the whole buffer, forbidding
    # the store-buffering outcome that only a full barrier forbids.
    test = CASES[name]
    got, _ = produced(test, model, "dfs", Budget(100_000, 60))
    weak = (0, 0) if name.startswith("SB") else (0, 2)
    assert weak in got, f"{name}/{model}: {test.show(weak)} never produced"


@pytest.mark.parametrize("name", ["MP+wmbs", "MP+rel-acq", "2+2W+wmbs", "S+rel-acq"])
def test_store_store_barrier_still_orders_stores_under_pso(name: str) -> None:
    test = CASES[name]
    want = allowed(test, "pso")
    got, res = produced(test, "pso", DFSStrategy(test.bound, prune=False), Budget(100_000, 60))
    assert res.exhausted and got == want, _diff(test, want, got)


# ------------------------------------------------------------------------------------------
# c11: loads may read stale writes (view-based release/acquire; Kang et al., "A promising
# semantics for relaxed-memory concurrency", POPL 2017, without promises; SC fences through
# one global view; seq_cst RMWs are C11's: acquire + release + the seq_cst order, no fence)
# ------------------------------------------------------------------------------------------
# (test, outcome, allowed under c11): the C11 / RC11 verdicts (Lahav et al., "Repairing
# sequential consistency in C/C++11", PLDI 2017), where RC11 forbids load buffering.
C11_CLASSICS: tuple[tuple[str, tuple[int, ...], bool], ...] = (
    ("SB", (0, 0), True),
    ("SB+mbs", (0, 0), False),
    ("SB+rel-acq", (0, 0), True),
    ("SB+sc", (0, 0), False),
    # seq_cst RMWs, relaxed loads: a load may pass the RMW's store (C11; AArch64's
    # ldaxr/stlxr); with seq_cst loads it may not.
    ("SB+xchgs", (0, 0, 0, 0), True),
    ("SB+xchgs+sc-loads", (0, 0, 0, 0), False),
    ("MP", (1, 0), True),
    ("MP+wmbs", (1, 0), True),  # the reader's loads are not ordered: pso forbids this
    ("MP+rmbs", (1, 0), True),
    ("MP+mbs", (1, 0), False),
    ("MP+rel-acq", (1, 0), False),
    ("MP+cas", (0, 1, 0), True),  # relaxed reader loads: pso forbids this
    ("LB", (1, 1), False),
    ("IRIW", (1, 0, 1, 0), True),  # not multi-copy atomic: pso forbids this
    ("WRC", (1, 1, 0), True),
    ("CoRR", (1, 0), False),
    ("CoWW", (2, 1, 2), False),
    ("CoWR", (0, 2), False),
    ("CoWR", (2, 1), False),
    ("CoRW", (2, 2), False),
    ("2xfetch_add", (0, 0, 2), False),
)


def _mb_both(test: Litmus) -> Litmus:
    return with_fence(test, "mb")


@pytest.mark.parametrize(("name", "outcome", "allowed_c11"), C11_CLASSICS,
                         ids=lambda v: str(v))
def test_c11_gives_the_classic_verdicts(
    name: str, outcome: tuple[int, ...], allowed_c11: bool
) -> None:
    test = CASES.get(name) or _mb_both(CASES[name.removesuffix("+mbs")])
    got, res = produced(test, "c11", DFSStrategy(test.bound + 2), Budget(200_000, 120))
    assert res.exhausted, res.summary()
    assert (outcome in got) == allowed_c11, (
        f"{name} under c11: {'reached' if outcome in got else 'never reached'} "
        f"{test.show(outcome)}; all: {sorted(got)}"
    )


@pytest.mark.parametrize("name", [t.name for t in SHAPES if t.name != "IRIW"])
def test_c11_allows_everything_tso_does_and_mbs_restore_sc(name: str) -> None:
    """c11's modification order is the order stores execute in (as tso's): it adds stale
    reads, not store-store reordering, which stays pso's (2+2W, S)."""
    test = CASES[name]
    got, res = produced(test, "c11", DFSStrategy(test.bound + 2), Budget(200_000, 120))
    assert res.exhausted, res.summary()
    want = allowed(test, "tso")
    assert want <= got, f"{name}: c11 misses tso outcomes: {_diff(test, want, got)}"
    fenced = with_fence(test, "mb")
    got_mb, res_mb = produced(fenced, "c11", DFSStrategy(test.bound + 2), Budget(200_000, 120))
    assert res_mb.exhausted, res_mb.summary()
    want_sc = allowed(fenced, "sc")
    assert got_mb == want_sc, f"{fenced.name}: {_diff(fenced, want_sc, got_mb)}"


def test_a_c11_stale_read_replays_from_its_schedule() -> None:
    from aioctx_verify.stress.controlled import ReplayStrategy, Schedule

    test = CASES["MP+wmbs"]
    seen: set[tuple[int, ...]] = set()
    prog = Program(test.name, compile_test(test, seen), memory="c11", monitors=False)
    for seed in range(200):
        seen.clear()
        strat = RandomStrategy(seed)
        strat.next_run()
        out = ControlledPlatform(strat, memory="c11").run(prog.fn)
        if (1, 0) in seen:
            break
    assert (1, 0) in seen
    tokens = tuple(c.token for c in out.decisions)
    assert any(t.startswith("R") for t in tokens)
    sched = Schedule.parse(f"v1:MP_wmbs:c11:{','.join(tokens)}")
    seen.clear()
    again = ControlledPlatform(ReplayStrategy(sched.tokens), memory="c11").run(prog.fn)
    assert again.verdict == "pass" and seen == {(1, 0)}


def test_c11_shows_a_missing_poller_fence_that_tso_and_pso_cannot() -> None:
    """impl's poller publishes notify_me with a relaxed RMW and then ``smp_mb``: without
    the fence, its reading of the BH flags may be stale under c11 (a lost wake-up), while
    under tso / pso the RMW alone drains the buffer and hides the bug."""
    from aioctx_verify.stress.mutation import PROBES, generate_mutants, probe_program

    (g,) = [g for g in generate_mutants(["fence-drop"])
            if g.function.endswith("_poll_locked") and "Fence.MB" in g.before]
    with g.as_mutant().apply():
        weak = explore(probe_program(PROBES["bh_wake_c11"]), strategy="random",
                       budget=Budget(300, 600), seed=0, do_shrink=False)
        assert weak.failure is not None, weak.summary()
        for memory in ("tso", "pso"):
            r = explore(probe_program(PROBES["bh_wake_tso"]), strategy="random",
                        budget=Budget(300, 600), seed=0, memory=memory, do_shrink=False)
            assert r.verdict == "pass" and r.schedules == 300, r.summary()
    assert weak.failure.schedule.startswith("v1:bh_wake_c11:c11:")
    assert ",R" in weak.failure.schedule or ":R" in weak.failure.schedule
