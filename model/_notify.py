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

Where the parts live: the language and its moves in :mod:`model._notify_lang`, the explicit
semantics and :func:`explore` in :mod:`model._notify_explicit`, the z3 semantics, bounded
model checking and :func:`final_outcomes` in :mod:`model._notify_z3`, the protocols and
:func:`build` in :mod:`model._notify_protocols`.  This module keeps the verdicts, their
counterexample texts and the fence audit, and re-exports the rest: ``model._notify`` stays
the one import path.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from ._notify_explicit import Explored, _explicit, _put, explore, violated_goal
from ._notify_explicit import XState as XState
from ._notify_lang import (
    BUFFER_CAPACITY,
    MEMORY_MODELS,
    TR,
    Assign,
    Atomic,
    Await,
    Branch,
    C,
    Fence,
    Goto,
    Load,
    NotifyError,
    Program,
    R,
    Store,
    Thread,
    V,
    _check_memory,
    _show,
)
from ._notify_lang import Expr as Expr
from ._notify_lang import Instr as Instr
from ._notify_lang import Move as Move
from ._notify_lang import Verdict as Verdict
from ._notify_lang import _moves as _moves
from ._notify_protocols import PROPERTIES, PROTOCOLS, SPIN_MODELS, _family, build
from ._notify_z3 import _bmc as _bmc
from ._notify_z3 import _Cex, final_outcomes

__all__ = [
    "replay_line",
    "replay_protocol",
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

    ``verdict``: ``refuted`` (a shortest counterexample: the explicit search's over all
    ``states`` reachable states, or z3's when z3 alone ran), ``proven`` (the explicit search
    of all ``states`` reachable states finds none; complete for buffers of
    ``buffer_capacity`` entries), ``bounded`` (z3 alone found none within ``depth``).
    ``depth``: how deep z3 searched; ``z3_verdict`` is z3's own word (``refuted`` or
    ``bounded``), which must agree with the explicit search to that depth.
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
                  complete: bool = True, z3_budget: float | None = None) -> NotifyVerdict:
    """Check ``p``'s goals under ``memory``.

    With ``complete`` (the default) the explicit search decides, over every reachable
    state: ``proven``, or ``refuted`` with a shortest counterexample.  z3 then checks it
    independently up to ``confirm_depth`` moves: it must find a counterexample of the same
    length when the shortest is that short, and none otherwise.  Without ``complete``: z3
    alone, depth by depth to ``depth``, giving ``refuted`` (its shortest, replayed on the
    explicit semantics) or ``bounded``.  A disagreement raises :class:`AssertionError`.
    ``z3_budget`` (seconds, default none) also stops z3's deepening; the verdict of a
    complete check never depends on it.
    """
    _check_memory(memory)
    t0 = time.perf_counter()
    ex = explore(p, memory, capacity) if complete else None
    z0 = time.perf_counter()
    if ex is None:
        bound = depth
    elif ex.violated:
        bound = min(confirm_depth, len(ex.witness))
    else:
        bound = confirm_depth
    deadline = None if z3_budget is None else z0 + z3_budget
    cex, reached = _bmc(p, memory, bound, capacity, deadline)
    tz = time.perf_counter() - z0
    name = protocol or p.name
    if ex is None:
        if cex is None:
            return NotifyVerdict(name, memory, prop, "bounded", reached,
                                 time.perf_counter() - t0, None, "", "bounded", tz, None,
                                 capacity)
        return NotifyVerdict(name, memory, prop, "refuted", reached,
                             time.perf_counter() - t0, len(cex.moves),
                             _cex_text(p, memory, cex, capacity), "refuted", tz, None,
                             capacity, cex.moves, cex.loop_start)
    if not ex.violated:
        if cex is not None:
            raise AssertionError(f"{p.name}/{memory}: z3 finds a counterexample that the "
                                 "explicit search does not")
        return NotifyVerdict(name, memory, prop, "proven", reached, time.perf_counter() - t0,
                             None, "", "bounded", tz, ex.states, capacity)
    shortest = len(ex.witness)
    complete_z3 = reached == bound
    if (cex is None and complete_z3 and shortest <= bound) or (
            cex is not None and len(cex.moves) != shortest):
        found = "none" if cex is None else f"one of {len(cex.moves)} moves"
        raise AssertionError(f"{p.name}/{memory}: the explicit search's shortest "
                             f"counterexample has {shortest} moves, z3 finds {found} within "
                             f"{reached} moves (encoding drift)")
    assert ex.goal is not None
    wit = _Cex(ex.witness, ex.loop_start, ex.goal)
    note = (f"shortest of every reachable state's runs ({ex.states} states); z3 finds the "
            f"same length" if cex is not None else
            f"shortest of every reachable state's runs ({ex.states} states); z3 confirms "
            f"none within {reached} moves")
    return NotifyVerdict(name, memory, prop, "refuted", reached, time.perf_counter() - t0,
                         shortest, _cex_text(p, memory, wit, capacity),
                         "refuted" if cex is not None else "bounded", tz, ex.states,
                         capacity, ex.witness, ex.loop_start, notes=(note,))



def check_protocol(protocol: str, memory: str, prop: str | None = None, *, depth: int = 40,
                   confirm_depth: int = 6, capacity: int = BUFFER_CAPACITY,
                   complete: bool = True, z3_budget: float | None = None) -> NotifyVerdict:
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


# ------------------------------------------------------------------------------------------
# Replay lines of protocol counterexamples
# ------------------------------------------------------------------------------------------
def replay_line(v: NotifyVerdict) -> str:
    """The ``aioctx-verify replay`` line of a refuted verdict's counterexample:
    ``protocol:<protocol>:<memory>:<property>:<move>,<move>,...[@<loop start>]``."""
    loop = "" if v.loop_start is None else f"@{v.loop_start}"
    moves = ",".join(str(k) for k in v.moves)
    return f"aioctx-verify replay 'protocol:{v.protocol}:{v.memory}:{v.property}:{moves}{loop}'"


def replay_protocol(spec: str) -> tuple[bool, str]:
    """Replay a ``protocol:`` spec: (the run violates the property, its text).

    Raises:
        NotifyError: a malformed spec, an unknown protocol, memory model or property, or a
            move that is not enabled.
    """
    body = spec.removeprefix("protocol:")
    parts = body.split(":")
    if len(parts) != 4:
        raise NotifyError(f"malformed protocol spec {spec[:80]!r}: expected protocol:<protocol>:"
                          "<memory>:<property>:<moves>[@<loop start>] as prove printed it")
    protocol, memory, prop, run = parts
    _check_memory(memory)
    p = build(protocol, prop)
    text, _, loop_text = run.partition("@")
    try:
        moves = tuple(int(k) for k in text.split(",")) if text else ()
        loop = int(loop_text) if loop_text else None
    except ValueError:
        raise NotifyError(f"malformed moves {run[:80]!r}: comma-separated integers, then "
                          "optionally @<loop start>") from None
    goal = violated_goal(p, memory, moves, loop)
    if goal is None:
        return False, f"{protocol} under {memory}: the run of {len(moves)} moves violates no goal"
    return True, _cex_text(p, memory, _Cex(moves, loop, goal), BUFFER_CAPACITY)

