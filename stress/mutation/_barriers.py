"""The barrier audit: for every fence and every non-relaxed ordering in impl, whether the
suite can show it is needed.

Why it exists: impl writes its memory-ordering points explicitly through the platform seam
(``p.fence(Fence.MB)``, ``cell.exchange(v, Ordering.SEQ_CST)``), each copied from QEMU or
argued in a comment.  A barrier nobody can show to be needed may be redundant (QEMU has
removed several), and one whose removal no check notices is a barrier the suite does not
verify.  So for each barrier site this module removes or weakens it (the mutation
operators ``fence-drop``, ``fence-weaken`` and ``order-relax`` of
:mod:`~aioctx_verify.stress.mutation._operators`, which enumerate the sites from impl's
source: a barrier added to impl is audited without editing this file) and runs a
preemption-bounded DFS over the programs that reach the site:

* ``necessary``: some run fails with the change and the *same* program passed the same
  search on the unmutated impl (the control).  The verdict names the memory model of the
  counterexample, every model in which that program fails, the property, and a replay line
  (``aioctx-verify replay --mutant <name> '<spec>'``) that reproduces it; the audit replays
  it through the same path before reporting.  A change that fails under ``sc`` too is not
  (only) a memory-ordering barrier: removing the call changed something else, and the
  verdict says so.
* ``not-needed-at-this-size``: every search under every model whose DFS is exhaustive
  (``sc``, ``tso``, ``pso``: a buffered store's flush is a scheduling choice) ran out of
  schedules within the preemption bound without a failure, on every program chosen.  That
  is a proof for those programs, that bound and those models, nothing more; ``c11`` is
  searched as well, for counterexamples only (the project does not claim its DFS
  exhaustive), and the verdict says what that search did.
* ``undecided``: the work budget ran out before some exhaustive search ended, runs hit the
  step budget, no program small enough reaches the site, or a control failed.  Never
  reported as not needed.

Programs are chosen by coverage: the safe corpus programs, the kill matrix's probe
programs and the first generated programs of a seed, each profiled by one seeded ``sc`` run
on the unmutated impl; a program qualifies when that run executes the site's lines, those
where some other thread accesses an atomic cell the site's function accesses (one of the
two writing: a conflict) first, smallest (fewest steps) first.  Budgets are work (programs,
runs, preemption bound), never seconds, so a verdict is the same on any machine and for any
number of worker processes.

Prior art: fence-insertion and fence-removal analyses for weak memory (Alglave, Kroening,
Nimal and Poetzl, "Don't sit on the fence", CAV 2014, which keeps only the fences some
cycle needs); QEMU's Spin models of aio_notify (docs/spin/aio_notify*.promela), which
verify that protocol's orderings one at a time.
"""

from __future__ import annotations

import ast
import concurrent.futures
import contextlib
import dataclasses
import functools
import importlib
import math
import multiprocessing
import os
import re
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from aioctx_verify import impl
from aioctx_verify.impl import Ordering

from ..controlled import (
    InvalidScheduleError,
    RandomStrategy,
    ReplayStrategy,
    RunOutcome,
    Schedule,
)
from ..explore import (
    CORPUS,
    Budget,
    Failure,
    Program,
    corpus_by_name,
    explore,
    generate,
    generated_program,
    replay,
    replay_generated,
    replay_line,
    run_schedule,
    shrink,
)
from ._equivalent import EQUIVALENT
from ._operators import GeneratedMutant, generate_mutants, generated_mutant
from ._probes import PROBES, probe_program
from ._replay import replay_probe

__all__ = [
    "AUDIT_BUDGETS",
    "BARRIER_OPERATORS",
    "EXHAUSTIVE_MEMORIES",
    "MEMORIES",
    "AuditBudget",
    "BarrierVerdict",
    "Counterexample",
    "SearchRecord",
    "audit_barriers",
    "audit_summary",
    "barrier_sites",
    "format_audit",
    "select_programs",
]

#: The mutation operators whose mutants are the barrier changes audited.
BARRIER_OPERATORS: tuple[str, ...] = ("fence-drop", "fence-weaken", "order-relax")
#: Memory models whose preemption-bounded DFS is exhaustive (every state within the bound
#: is reached, buffered stores' flushes included): an exhausted search there is a proof.
EXHAUSTIVE_MEMORIES: tuple[str, ...] = ("sc", "tso", "pso")
#: The models searched by default, weakest first (the order of the search: a barrier's
#: failure shows first where memory is weakest; the other models then run on the failing
#: program to say which of them fail too).
MEMORIES: tuple[str, ...] = ("c11", "pso", "tso", "sc")
#: Strongest first: the counterexample reported is the one of the strongest failing model.
_STRENGTH: tuple[str, ...] = ("sc", "tso", "pso", "c11")

Verdict = Literal["necessary", "not-needed-at-this-size", "undecided"]

#: Atomic methods with the position of their ``order`` argument; the controlled platform's
#: step names of cell accesses, and those that write.
_ATOMIC_METHODS = {"load": 0, "store": 1, "exchange": 1, "compare_exchange": 2, "fetch_add": 1}
_CELL_OPS = frozenset({"load", "store", "exchange", "cmpxchg", "fetch_add"})
_WRITE_OPS = frozenset({"store", "exchange", "cmpxchg", "fetch_add"})
#: The seed of the profiling run that decides which programs reach a site.
PROFILE_SEED = 0


# ----------------------------------------------------------------------------------------
# Budgets
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AuditBudget:
    """How much work the audit does per site: all of it counted in programs and runs.

    Attributes:
        name: the preset's name (or ``custom``).
        bound: the DFS's preemption bound (a flush of a buffered store and a stale read
            count one preemption each, like a switch away from a runnable thread).
        max_programs: programs searched per site (the first ones by coverage rank).
        max_runs: runs per search of one program under one model (the DFS's schedules
            plus the runs it pruned, as :func:`~aioctx_verify.stress.explore.explore`
            counts them); a search that needs more ends unexhausted.
        max_program_steps: a program whose profiling run took more steps is not searched
            (a bounded DFS of a long program exhausts only far beyond any budget here).
        max_program_runs: nor is one whose exhaustive bound-1 ``sc`` DFS needs more runs
            than this (its size, see :func:`select_programs`: many threads that can
            interleave make a bound-2 search explode however short the program).
        shrink_runs: runs a counterexample's shrinking may spend (half of them at most on
            its iterative-deepening DFS); it sizes the counterexample, never the verdict.
        gen_seed: the seed of the generated programs considered.
        gen_pool: how many generated programs of that seed are considered.
        programs: when given, these program keys (``corpus:<name>``, ``probe:<name>``,
            ``gen:<seed>:<index>``) are the pool instead (each still searched only for the
            sites it reaches).
    """

    name: str = "custom"
    bound: int = 2
    max_programs: int = 3
    max_runs: int = 2000
    max_program_steps: int = 400
    max_program_runs: int = 300
    shrink_runs: int = 200
    gen_seed: int = 0
    gen_pool: int = 240
    programs: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.bound < 0 or self.max_programs < 1 or self.max_runs < 1:
            raise ValueError(
                f"bad audit budget {self.name!r}: the bound must be at least 0, programs "
                "and runs at least 1"
            )

    def describe(self) -> str:
        return (
            f"budget {self.name}: preemption bound {self.bound}, at most "
            f"{self.max_programs} program(s) per site of at most {self.max_program_steps} "
            f"steps and a bound-1 DFS of {self.max_program_runs} runs, {self.max_runs} runs "
            "per search"
        )


#: The presets: ``default`` audits every site in a few minutes on two cores (two jobs);
#: ``small`` is for tests (one program, bound 1).
AUDIT_BUDGETS: dict[str, AuditBudget] = {
    "default": AuditBudget("default"),
    "small": AuditBudget(
        "small", bound=1, max_programs=1, max_runs=300, max_program_steps=200,
        max_program_runs=100, shrink_runs=60, gen_pool=0,
    ),
}


def _resolve(budget: str | AuditBudget) -> AuditBudget:
    if isinstance(budget, AuditBudget):
        return budget
    found = AUDIT_BUDGETS.get(budget)
    if found is None:
        raise ValueError(
            f"unknown audit budget {budget!r}; use {', '.join(AUDIT_BUDGETS)} or an AuditBudget"
        )
    return found


# ----------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SearchRecord:
    """One preemption-bounded DFS of one program under one memory model.

    Attributes:
        program: the program's key (``corpus:<name>``, ``probe:<name>``,
            ``gen:<seed>:<index>``).
        verdict: ``pass``, ``fail`` or ``inconclusive`` (as the explorer says).
        schedules: complete runs; ``pruned``: runs the DFS cut at a state already explored.
        exhausted: the DFS ran out of schedules within the bound.
        inconclusive_runs: runs that ended without a verdict (the step budget): the states
            past their end were not explored.
    """

    program: str
    memory: str
    verdict: str
    schedules: int
    pruned: int
    exhausted: bool
    inconclusive_runs: int

    @property
    def proof(self) -> bool:
        """Every state within the bound was reached and none failed (meaningful only under
        :data:`EXHAUSTIVE_MEMORIES`)."""
        return self.verdict == "pass" and self.exhausted and not self.inconclusive_runs

    @property
    def runs(self) -> int:
        return self.schedules + self.pruned

    def describe(self) -> str:
        end = "exhausted" if self.exhausted else "NOT exhausted"
        cut = f", {self.inconclusive_runs} run(s) cut by the step budget" if (
            self.inconclusive_runs) else ""
        return (f"{self.program} [{self.memory}]: {self.verdict}, {self.schedules} schedules "
                f"+ {self.pruned} pruned, {end}{cut}")


@dataclass(frozen=True, slots=True)
class Counterexample:
    """A failing run of a program under the changed barrier, shrunk and replayed.

    Attributes:
        program, memory: where it fails.
        kind: the run's failure kind (``lost_wakeup``, ``property``, ``exception``, ...).
        prop: the property it violates (P1/P2/P3/LIVE), None when unclassified.
        via: what noticed it, when the replay path says (probes).
        message: the failure's message, on one line.
        steps, preemptions: of the shrunk schedule.
        found_after: runs of the search before it (pruned ones included).
        replay: the replay line (``aioctx-verify replay --mutant <name> '<spec>'``).
        reproduced: replaying the line's spec under the mutant failed the same way.
    """

    program: str
    memory: str
    kind: str
    prop: str | None
    via: str | None
    message: str
    steps: int
    preemptions: int
    found_after: int
    replay: str
    reproduced: bool


@dataclass(frozen=True, slots=True)
class BarrierVerdict:
    """The audit of one change of one barrier site (see the module docstring).

    Attributes:
        mutant: the generated mutant's name (what ``--mutant`` takes).
        file, line, function, source: where the barrier is, and its line(s) of source.
        kind: ``fence MB`` / ``fence WMB`` / ``fence RMB``, or the atomic operation and its
            ordering (``exchange seq_cst``, ``fetch_add seq_cst (default)``).
        change: ``drop``, ``weaken to wmb``, ``weaken to rmb`` or ``relax``.
        verdict: ``necessary``, ``not-needed-at-this-size`` or ``undecided``.
        reason: one sentence saying why.
        memory: the counterexample's memory model (necessary only).
        failing_memories: every model searched on the counterexample's program that fails
            (strongest first); ``sc`` among them: not a memory-ordering barrier.
        memory_ordering: False when the change fails under ``sc`` too; None when nothing
            failed.
        counterexample: the failing run (necessary only).
        programs: the programs searched, in order; ``reaching``: how many programs of the
            pool execute the site's lines at all.
        bound: the preemption bound of every search.
        schedules, pruned: runs spent in all (the counterexample's program included).
        memories_exhausted: the models of :data:`EXHAUSTIVE_MEMORIES` under which every
            program's search was exhausted without a failure.
        memories_searched: every model searched.
        searches: every search of the mutated impl, in order.
        controls: the searches of the same programs on the unmutated impl.
        false_alarms: controls that failed (the unmutated impl or the checks are wrong):
            those programs are no evidence here, and the audit as a whole is in error.
        review: the reviewed reason from the equivalents list, if the mutant is on it.
    """

    mutant: str
    file: str
    line: int
    function: str
    source: str
    kind: str
    change: str
    verdict: Verdict
    reason: str
    memory: str | None
    failing_memories: tuple[str, ...]
    memory_ordering: bool | None
    counterexample: Counterexample | None
    programs: tuple[str, ...]
    reaching: int
    bound: int
    schedules: int
    pruned: int
    memories_exhausted: tuple[str, ...]
    memories_searched: tuple[str, ...]
    searches: tuple[SearchRecord, ...]
    controls: tuple[SearchRecord, ...]
    false_alarms: tuple[str, ...]
    review: str | None

    @property
    def site(self) -> str:
        return f"{self.file}:{self.line}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict of every field (nested records as dicts)."""
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------
# Sites
# ----------------------------------------------------------------------------------------
def barrier_sites() -> list[GeneratedMutant]:
    """Every barrier change on the current impl: one mutant per fence dropped, per full
    fence weakened (to wmb and to rmb) and per non-relaxed ordering relaxed, in
    generation order (file, function, operator)."""
    return generate_mutants(BARRIER_OPERATORS)


_CHANGE = {
    ("fence-drop", "drop"): "drop",
    ("fence-weaken", "wmb"): "weaken to wmb",
    ("fence-weaken", "rmb"): "weaken to rmb",
}


def _change(m: GeneratedMutant) -> str:
    return _CHANGE.get((m.operator, m.variant), "relax")


_TREES: dict[str, tuple[ast.Module, dict[str, Any]]] = {}


def _tree(file: str) -> tuple[ast.Module, dict[str, Any]]:
    """impl file ``file``'s AST (as it is on disk) and its module's namespace."""
    got = _TREES.get(file)
    if got is None:
        stem = os.path.basename(file)[:-3]
        module = importlib.import_module(f"{impl.__name__}.{stem}")
        with open(os.path.join(_impl_dir(), os.path.basename(file)), encoding="utf-8") as f:
            got = _TREES[file] = (ast.parse(f.read()), vars(module))
    return got


def _ordering_name(node: ast.expr, space: dict[str, Any]) -> str:
    value: Any = None
    if isinstance(node, ast.Name):
        value = space.get(node.id)
    elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        value = getattr(space.get(node.value.id), node.attr, None)
    return value.value if isinstance(value, Ordering) else ast.unparse(node)


def _kind(m: GeneratedMutant) -> str:
    """What the barrier is: the fence, or the atomic operation and its ordering."""
    tree, space = _tree(m.file)
    at = (m.line, m.col)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        meth = node.func.attr
        args = [*node.args, *(k.value for k in node.keywords)]
        if (node.lineno, node.col_offset) != at and all(
            (a.lineno, a.col_offset) != at for a in args
        ):
            continue
        if meth == "fence" and node.args:
            arg = node.args[0]
            return f"fence {arg.attr if isinstance(arg, ast.Attribute) else ast.unparse(arg)}"
        if meth in _ATOMIC_METHODS:
            index = _ATOMIC_METHODS[meth]
            kw = [k.value for k in node.keywords if k.arg == "order"]
            order = kw[0] if kw else node.args[index] if len(node.args) > index else None
            name = "seq_cst (default)" if order is None else _ordering_name(order, space)
            return f"{meth} {name}"
    return m.operator


def _impl_dir() -> str:
    return os.path.dirname(os.path.abspath(impl.__file__ or ""))


def _site_lines(m: GeneratedMutant) -> frozenset[int]:
    return frozenset({*m.cover, *m.changed_lines, m.line})


# ----------------------------------------------------------------------------------------
# Programs: the pool, their profiles, the choice per site
# ----------------------------------------------------------------------------------------
def _pool(budget: AuditBudget) -> list[str]:
    """The candidate programs' keys: the safe corpus programs and the probes, one per
    body (the memory model is the search's, so ``bh_ping_tso`` is ``bh_ping``), then
    generated ones (or the budget's own ``programs``)."""
    if budget.programs is not None:
        return list(budget.programs)
    bodies: set[Callable[..., None]] = set()
    keys: list[str] = []
    for p in CORPUS:
        if p.expected == "safe" and p.fn not in bodies:
            bodies.add(p.fn)
            keys.append(f"corpus:{p.name}")
    for name, probe in PROBES.items():
        if probe.body not in bodies:
            bodies.add(probe.body)
            keys.append(f"probe:{name}")
    keys += [f"gen:{budget.gen_seed}:{i}" for i in range(budget.gen_pool)]
    return keys


def _program(key: str) -> Program:
    """The program a key names (a new object each call: generated programs hold state)."""
    kind, _, rest = key.partition(":")
    if kind == "corpus":
        return corpus_by_name()[rest]
    if kind == "probe":
        return probe_program(PROBES[rest])
    if kind == "gen":
        seed, index = rest.split(":")
        return generated_program(generate(int(seed), int(index)))
    raise ValueError(f"not a program key: {key!r} (corpus:<name>, probe:<name>, gen:<s>:<i>)")


def _check_key(key: str) -> None:
    """Raise ValueError unless ``key`` names a program."""
    kind, _, rest = key.partition(":")
    ok = (
        (kind == "corpus" and rest in corpus_by_name())
        or (kind == "probe" and rest in PROBES)
        or (kind == "gen" and re.fullmatch(r"-?\d+:\d+", rest) is not None)
    )
    if not ok:
        raise ValueError(
            f"unknown program {key!r}: use corpus:<name>, probe:<name> or gen:<seed>:<index>"
        )


@dataclass(frozen=True, slots=True)
class _Profile:
    """One seeded ``sc`` run of a program on the unmutated impl: its length, and every
    step as (thread, op, object, file, line, function) with the file as ``impl/x.py`` for
    impl's code (else ``""``) and the function as (file, first line, name)."""

    steps: int
    trace: tuple[tuple[int, str, str, str, int, tuple[str, int, str]], ...]


_PROFILES: dict[str, _Profile] = {}
_SIZES: dict[tuple[str, int], int] = {}


def _profile(key: str) -> _Profile:
    got = _PROFILES.get(key)
    if got is not None:
        return got
    base = _impl_dir() + os.sep
    strategy = RandomStrategy(PROFILE_SEED)
    strategy.next_run()
    out = run_schedule(_program(key), strategy, "sc")
    trace = []
    for s in out.trace:
        path = s.code.co_filename if s.code is not None else ""
        file = f"impl/{path[len(base):]}" if path.startswith(base) else ""
        func = (path, s.code.co_firstlineno, s.code.co_name) if s.code is not None else ("", 0, "")
        trace.append((s.thread, s.op, s.obj, file, s.line, func))
    got = _PROFILES[key] = _Profile(out.steps, tuple(trace))
    return got


def _size(key: str, cap: int) -> int:
    """A program's size: the runs of an exhaustive preemption-bound-1 ``sc`` DFS of it
    (what a bounded search's cost grows with: threads that can interleave, not raw
    length), ``cap + 1`` when it needs more than ``cap``; cached per process."""
    got = _SIZES.get((key, cap))
    if got is None:
        r = explore(_program(key), strategy="dfs", bound=1, memory="sc",
                    budget=Budget(cap, math.inf), do_shrink=False)
        got = _SIZES[(key, cap)] = r.schedules + r.pruned if r.exhausted else cap + 1
    return got


#: Operations that end a thread's window around a site: blocking, lock, notifier, poll
#: and thread operations (full fences in every model), unlike cell accesses, fences, yields
#: and clock reads.
def _breaks(op: str) -> bool:
    return op not in _CELL_OPS and not op.startswith("fence") and op not in ("yield", "clock")


def _reach(profile: _Profile, file: str, lines: frozenset[int]) -> tuple[bool, int]:
    """Whether the profiling run executes one of ``lines`` of ``file``, and how many
    orderings the site sits in the middle of.

    Around each execution of the site, its thread's *window*: the atomic cells it accesses
    since its last blocking, lock, notifier, poll or thread operation (before) and until
    its next one (after), the site's own cell in both.  An ordering is another thread that
    accesses a cell of the before part and another cell of the after part, each written by
    one of the two: the store-buffering and message-passing shapes a barrier there orders
    (the weak-memory counterpart of a data race's conflict).  Counted as distinct (thread,
    cell, cell) triples.
    """
    trace = profile.trace
    at = [i for i, s in enumerate(trace) if s[3] == file and s[4] in lines]
    if not at:
        return False, 0
    by_thread: dict[int, dict[str, bool]] = {}
    for t, op, obj, *_ in trace:
        if op in _CELL_OPS:
            cells = by_thread.setdefault(t, {})
            cells[obj] = cells.get(obj, False) or op in _WRITE_OPS
    shapes: set[tuple[int, str, str]] = set()
    for i in at:
        me = trace[i][0]
        own = {trace[i][2]: trace[i][1] in _WRITE_OPS} if trace[i][1] in _CELL_OPS else {}
        before, after = dict(own), dict(own)
        for rng, side in ((range(i - 1, -1, -1), before), (range(i + 1, len(trace)), after)):
            for j in rng:
                t, op, obj, *_ = trace[j]
                if t != me:
                    continue
                if _breaks(op):
                    break
                if op in _CELL_OPS:
                    side[obj] = side.get(obj, False) or op in _WRITE_OPS
        for u, theirs in by_thread.items():
            if u == me:
                continue
            for c1, w1 in before.items():
                for c2, w2 in after.items():
                    if c1 != c2 and c1 in theirs and c2 in theirs and (
                        w1 or theirs[c1]) and (w2 or theirs[c2]):
                        shapes.add((u, c1, c2))
    return True, len(shapes)


def select_programs(
    mutant: GeneratedMutant, budget: str | AuditBudget = "default"
) -> tuple[tuple[str, ...], int]:
    """The programs to search for ``mutant``'s site, and how many programs of the pool
    reach it at all.

    A program qualifies when its profiling run (one seeded ``sc`` run on the unmutated
    impl, cached per process) executes one of the site's lines and took at most
    ``max_program_steps`` steps and whose size (the runs of an exhaustive bound-1 ``sc``
    DFS) is at most ``max_program_runs``; those with a conflict at the site come first,
    then the smallest, then the shortest, then in pool order; the first ``max_programs``
    are taken.  A conflict is an ordering the site
    sits in the middle of (see :func:`_reach`).
    """
    b = _resolve(budget)
    lines = _site_lines(mutant)
    ranked: list[tuple[bool, int, int, int, str]] = []
    reaching = 0
    for i, key in enumerate(_pool(b)):
        prof = _profile(key)
        hit, conflicts = _reach(prof, mutant.file, lines)
        if not hit:
            continue
        reaching += 1
        if prof.steps > b.max_program_steps:
            continue
        size = _size(key, b.max_program_runs)
        if size <= b.max_program_runs:
            ranked.append((conflicts == 0, size, prof.steps, i, key))
    ranked.sort()
    return tuple(r[-1] for r in ranked[: b.max_programs]), reaching


# ----------------------------------------------------------------------------------------
# Searches (run in this process or a worker: everything is named by strings)
# ----------------------------------------------------------------------------------------
def _applied(m: GeneratedMutant | None) -> AbstractContextManager[object]:
    return m.apply() if m is not None else contextlib.nullcontext()


def _dfs(
    key: str, memory: str, b: AuditBudget, m: GeneratedMutant | None
) -> tuple[SearchRecord, Failure | None]:
    program = _program(key)
    with _applied(m):
        r = explore(
            program,
            strategy="dfs",
            bound=b.bound,
            memory=memory,
            budget=Budget(b.max_runs, math.inf),  # work alone ends it: no wall-clock cap
            do_shrink=False,
        )
    rec = SearchRecord(
        key, memory, r.verdict, r.schedules, r.pruned, r.exhausted, r.inconclusive_runs
    )
    return rec, r.failure if r.verdict == "fail" else None


def _spec(key: str, schedule: str) -> str:
    """The replay spec of a schedule of program ``key`` (a generated program's names it)."""
    if key.startswith("gen:"):
        _, seed, index = key.split(":")
        return f"gen:seed={seed},index={index};{schedule}"
    return schedule


def _replayed(key: str, spec: str) -> tuple[RunOutcome, str | None, str | None]:
    """Rerun ``spec`` as ``aioctx-verify replay`` does (the caller applies the mutant):
    the run, its property and what noticed it."""
    if key.startswith("gen:"):
        g = replay_generated(spec)
        return g.outcome, g.prop, None
    if key.startswith("probe:"):
        pr = replay_probe(spec)
        return pr.outcome, pr.prop, pr.via
    out = replay(Schedule.parse(spec), corpus_by_name())
    stuck = out.kind in ("deadlock", "lost_wakeup")
    prop = out.prop or ("LIVE" if stuck else None)
    via = "scheduler" if stuck else "monitor" if out.kind == "property" else None
    return out, prop, via


def _counterexample(
    key: str, memory: str, failure: Failure, found_after: int, b: AuditBudget,
    m: GeneratedMutant,
) -> Counterexample:
    """``failure`` shrunk (by work alone), replayed through the replay command's path."""
    program = _program(key)
    with m.apply():
        sched = Schedule.parse(failure.schedule)
        found = run_schedule(program, ReplayStrategy(sched.tokens), memory)
        best = failure
        if found.verdict == "fail" and found.kind == failure.kind and b.shrink_runs > 0:
            best = shrink(
                program, found, memory, max_replays=b.shrink_runs,
                search_runs=b.shrink_runs // 2, seconds=None,
            )
        spec = _spec(key, best.schedule)
        try:
            out, prop, via = _replayed(key, spec)
        except InvalidScheduleError as e:
            out, prop, via = None, None, None
            note = f"; replay refused the spec: {e}"
        else:
            note = ""
    reproduced = out is not None and out.verdict == "fail" and out.kind == best.kind
    return Counterexample(
        key,
        memory,
        best.kind,
        prop or (best.prop or None),
        via,
        " ".join(best.message.split())[:400] + note,
        best.steps,
        best.preemptions,
        found_after,
        replay_line(spec, m.name),
        reproduced,
    )


def _control_task(b: AuditBudget, pair: tuple[str, str]) -> tuple[SearchRecord, str]:
    """The search of program ``key`` under ``memory`` (``pair``) on the unmutated impl,
    and (when it failed, a false alarm) a line saying how, with its replay line."""
    key, memory = pair
    rec, failure = _dfs(key, memory, b, None)
    if failure is None:
        return rec, ""
    msg = " ".join(failure.message.split())[:300]
    return rec, (f"{key} [{memory}] fails on the unmutated impl: {failure.kind}: {msg} | "
                 f"{replay_line(_spec(key, failure.schedule))}")


@dataclass(frozen=True, slots=True)
class _SiteTask:
    mutant: str
    programs: tuple[str, ...]
    reaching: int
    memories: tuple[str, ...]
    budget: AuditBudget
    controls: tuple[tuple[SearchRecord, str], ...]


def _site_task(task: _SiteTask) -> BarrierVerdict:
    """Search one barrier change's programs (models weakest first, programs in rank
    order) until the first failure; on a failure, the other models on that program."""
    m = generated_mutant(task.mutant)
    b = task.budget
    bad = {(c.program, c.memory): line for c, line in task.controls if line}
    searches: list[SearchRecord] = []
    found: tuple[str, str, Failure, int] | None = None
    for memory in task.memories:
        for key in task.programs:
            if (key, memory) in bad:
                continue
            rec, failure = _dfs(key, memory, b, m)
            searches.append(rec)
            if failure is not None:
                found = (key, memory, failure, rec.runs)
                break
        if found is not None:
            break
    failing: dict[str, tuple[Failure, int]] = {}
    if found is not None:
        key = found[0]
        failing[found[1]] = (found[2], found[3])
        done = {(s.program, s.memory) for s in searches}
        for memory in task.memories:
            if (key, memory) in done or (key, memory) in bad:
                continue
            rec, failure = _dfs(key, memory, b, m)
            searches.append(rec)
            if failure is not None:
                failing[memory] = (failure, rec.runs)
    return _verdict(m, task, searches, failing, found[0] if found else None, bad)


def _verdict(
    m: GeneratedMutant,
    task: _SiteTask,
    searches: list[SearchRecord],
    failing: dict[str, tuple[Failure, int]],
    cex_program: str | None,
    bad: dict[tuple[str, str], str],
) -> BarrierVerdict:
    b = task.budget
    used = set(task.programs)
    controls = tuple(c for c, _ in task.controls if c.program in used)
    alarms = tuple(line for (p, _mem), line in bad.items() if p in used)
    order = [mem for mem in _STRENGTH if mem in failing]
    cex: Counterexample | None = None
    memory: str | None = None
    exhausted = tuple(
        mem for mem in EXHAUSTIVE_MEMORIES
        if mem in task.memories and task.programs
        and all(
            any(s.program == p and s.memory == mem and s.proof for s in searches)
            for p in task.programs
        )
    )
    others = [mem for mem in task.memories if mem not in EXHAUSTIVE_MEMORIES]
    verdict: Verdict
    if order and cex_program is not None:
        memory = order[0]
        failure, after = failing[memory]
        cex = _counterexample(cex_program, memory, failure, after, b, m)
        verdict = "necessary"
        what = f"fails under {', '.join(order)}" + (
            " (sc too: not (only) a memory-ordering barrier, the call is needed for "
            "something else)" if "sc" in failing else "")
        held = [s for s in searches if s.program == cex_program and s.memory not in failing]
        if held:
            what += "; passes under " + ", ".join(
                f"{s.memory} ({'exhausted' if s.exhausted else f'{s.runs} runs'})"
                for s in sorted(held, key=lambda s: _STRENGTH.index(s.memory))
            )
        ctl = next((c for c in controls if c.program == cex_program and c.memory == memory),
                   None)
        reason = f"{cex_program} {what}; the unmutated impl passes the same {memory} search" + (
            "" if ctl is None or ctl.exhausted
            else f" as far as it went ({ctl.runs} runs, not exhausted: weaker evidence)")
        if not cex.reproduced:
            reason += "; WARNING: the replay line did not reproduce the failure"
    elif not task.programs:
        verdict = "undecided"
        reason = (
            f"no program small enough reaches the site ({task.reaching} larger one(s) do: "
            f"more than {b.max_program_steps} steps or a bound-1 DFS of more than "
            f"{b.max_program_runs} runs)" if task.reaching
            else "no program of the pool executes the site's lines"
        )
    elif alarms:
        verdict = "undecided"
        reason = f"{len(alarms)} control search(es) failed on the unmutated impl (false alarm)"
    elif len(exhausted) == len([mm for mm in EXHAUSTIVE_MEMORIES if mm in task.memories]) \
            and exhausted:
        verdict = "not-needed-at-this-size"
        c11 = [s for s in searches if s.memory in others]
        tail = ""
        if c11:
            runs = sum(s.runs for s in c11)
            ended = all(s.exhausted for s in c11)
            tail = (f"; {', '.join(others)}: no failure in {runs} runs "
                    f"({'DFS ran out of schedules' if ended else 'budget ran out'}; "
                    "not claimed exhaustive)")
        reason = (f"every search under {', '.join(exhausted)} exhausted at bound {b.bound} "
                  f"on {len(task.programs)} program(s), no failure{tail}")
    else:
        verdict = "undecided"
        open_ = [s for s in searches if s.memory in EXHAUSTIVE_MEMORIES and not s.proof]
        if not any(mem in EXHAUSTIVE_MEMORIES for mem in task.memories):
            reason = "no memory model with an exhaustive DFS was searched"
        else:
            reason = "work budget ran out before exhaustion: " + "; ".join(
                f"{s.program} [{s.memory}] {s.runs} runs"
                + (f", {s.inconclusive_runs} cut by the step budget"
                   if s.inconclusive_runs else "")
                for s in open_[:3]
            ) + (" ..." if len(open_) > 3 else "")
    return BarrierVerdict(
        mutant=m.name,
        file=m.file,
        line=m.line,
        function=m.function,
        source=m.before,
        kind=_kind(m),
        change=_change(m),
        verdict=verdict,
        reason=reason,
        memory=memory,
        failing_memories=tuple(order),
        memory_ordering=None if not order else "sc" not in failing,
        counterexample=cex,
        programs=task.programs,
        reaching=task.reaching,
        bound=b.bound,
        schedules=sum(s.schedules for s in searches),
        pruned=sum(s.pruned for s in searches),
        memories_exhausted=exhausted,
        memories_searched=tuple(mem for mem in _STRENGTH if mem in task.memories),
        searches=tuple(searches),
        controls=controls,
        false_alarms=alarms,
        review=EQUIVALENT.get(m.key),
    )


# ----------------------------------------------------------------------------------------
# The audit
# ----------------------------------------------------------------------------------------
def _ignore_sigint() -> None:
    """Worker initializer: Ctrl-C is the parent's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _executor(jobs: int) -> Iterator[concurrent.futures.Executor | None]:
    if jobs <= 1:
        yield None
        return
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=jobs, mp_context=ctx, initializer=_ignore_sigint
    ) as pool:
        yield pool


_T = TypeVar("_T")
_R = TypeVar("_R")


def _each(
    pool: concurrent.futures.Executor | None, fn: Callable[[_T], _R], items: Sequence[_T]
) -> Iterator[tuple[_T, _R]]:
    """``(item, fn(item))`` for every item: here in order, or in ``pool`` as they end."""
    if pool is None:
        for item in items:
            yield item, fn(item)
        return
    futures = {pool.submit(fn, item): item for item in items}
    for fut in concurrent.futures.as_completed(futures):
        yield futures[fut], fut.result()


def audit_barriers(
    budget: str | AuditBudget = "default",
    *,
    names: Sequence[str] | None = None,
    memories: Sequence[str] = MEMORIES,
    jobs: int = 1,
    progress: Callable[[str], None] | None = None,
) -> list[BarrierVerdict]:
    """Audit every barrier change of impl (:func:`barrier_sites`), or the ``names`` ones.

    Each change gets its programs (:func:`select_programs`); every (program, model) pair
    is first searched on the unmutated impl (the control: a failure there is a false
    alarm, reported in every verdict that uses the program, which then is no evidence);
    then the change's searches run (see the module docstring).  The verdicts depend on
    impl, the budget and ``memories`` alone: not on ``jobs``, not on the machine's speed.

    Args:
        budget: a preset of :data:`AUDIT_BUDGETS` or an :class:`AuditBudget`.
        names: mutant names (:attr:`BarrierVerdict.mutant`) to audit (default: all).
        memories: the models searched, in search order (default :data:`MEMORIES`, weakest
            first); only those of :data:`EXHAUSTIVE_MEMORIES` can prove a barrier not
            needed.
        jobs: worker processes (1: everything in this process).  Profiling, controls and
            sites are spread over them; each result is computed whole by one process.
        progress: called with one line per phase, finished control and finished site.

    Raises:
        ValueError: an unknown budget, memory model, program key or mutant name.
    """
    b = _resolve(budget)
    mems = tuple(memories)
    unknown_mem = [mm for mm in mems if mm not in _STRENGTH]
    if unknown_mem or not mems:
        raise ValueError(
            f"unknown memory model(s) {', '.join(unknown_mem) or '(none given)'}; "
            f"use {', '.join(_STRENGTH)}"
        )
    sites = barrier_sites()
    if names is not None:
        by_name = {m.name: m for m in sites}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ValueError(f"no such barrier change(s): {', '.join(missing)}")
        sites = [by_name[n] for n in names]
    keys = _pool(b)
    for key in keys:
        _check_key(key)
    say = progress or (lambda _line: None)
    controls: dict[tuple[str, str], tuple[SearchRecord, str]] = {}
    verdicts: dict[str, BarrierVerdict] = {}
    with _executor(jobs) as pool:
        say(f"{b.describe()}; profiling {len(keys)} program(s) on the unmutated impl")
        todo = [k for k in keys if k not in _PROFILES]
        _PROFILES.update(_each(pool, _profile, todo))
        small = sorted({
            k for m in sites for k in keys
            if _PROFILES[k].steps <= b.max_program_steps
            and _reach(_PROFILES[k], m.file, _site_lines(m))[0]
        })
        cap = b.max_program_runs
        sizing = functools.partial(_size, cap=cap)
        sized = list(_each(pool, sizing, [k for k in small if (k, cap) not in _SIZES]))
        _SIZES.update(((k, cap), n) for k, n in sized)
        chosen = {m.name: select_programs(m, b) for m in sites}
        pairs = sorted({(k, mm) for ks, _ in chosen.values() for k in ks for mm in mems})
        say(f"{len(sites)} barrier change(s); {len(pairs)} control search(es) first")
        for pair, got in _each(pool, functools.partial(_control_task, b), pairs):
            controls[pair] = got
            say(_control_line(got))
        tasks = [
            _SiteTask(
                m.name, ks, reaching, mems, b,
                tuple(controls[(k, mm)] for k in ks for mm in mems),
            )
            for m in sites
            for ks, reaching in [chosen[m.name]]
        ]
        for task, verdict in _each(pool, _site_task, tasks):
            verdicts[task.mutant] = verdict
            say(_site_line(verdict))
    return [verdicts[m.name] for m in sites]


def _control_line(c: tuple[SearchRecord, str]) -> str:
    rec, alarm = c
    return f"control {rec.describe()}" + (f" FALSE ALARM: {alarm}" if alarm else "")


def _site_line(v: BarrierVerdict) -> str:
    return f"{v.site} {v.change} ({v.kind}): {v.verdict}"


# ----------------------------------------------------------------------------------------
# Reporting
# ----------------------------------------------------------------------------------------
def audit_summary(verdicts: Sequence[BarrierVerdict]) -> dict[str, int]:
    """Counts: changes audited, per verdict, necessary ones that fail under ``sc`` too
    (not memory-ordering barriers), counterexamples whose replay did not reproduce, and
    false alarms (failed controls, counted once per program and model)."""
    alarms = {a for v in verdicts for a in v.false_alarms}
    return {
        "changes": len(verdicts),
        "sites": len({v.site for v in verdicts}),
        "necessary": sum(v.verdict == "necessary" for v in verdicts),
        "not-needed-at-this-size": sum(v.verdict == "not-needed-at-this-size" for v in verdicts),
        "undecided": sum(v.verdict == "undecided" for v in verdicts),
        "not-memory-ordering": sum(v.memory_ordering is False for v in verdicts),
        "not-reproduced": sum(
            v.counterexample is not None and not v.counterexample.reproduced for v in verdicts
        ),
        "false-alarms": len(alarms),
    }


def format_audit(verdicts: Sequence[BarrierVerdict]) -> str:
    """A text table, one row per change in file and line order, under each row its
    evidence (the counterexample, why, and its replay line; or the searches' figures),
    then the summary."""
    head = (f"{'site':<24} {'function':<28} {'barrier':<32} {'change':<13} {'verdict':<23} "
            f"{'fails under':<12} prop")
    lines = [head, "-" * len(head)]
    for v in sorted(verdicts, key=lambda v: (v.file, v.line)):
        fails = ",".join(v.failing_memories) or "-"
        prop = (v.counterexample.prop or "?") if v.counterexample is not None else "-"
        lines.append(
            f"{v.site:<24} {v.function[:28]:<28} {v.kind[:32]:<32} {v.change:<13} "
            f"{v.verdict:<23} {fails:<12} {prop}"
        )
        c = v.counterexample
        if c is not None:
            lines.append(
                f"    {c.program} [{c.memory}]: {c.kind}, {c.steps} steps, {c.preemptions} "
                f"preemption(s), found after {c.found_after} runs"
                + ("" if c.reproduced else ", NOT REPRODUCED by its replay line")
            )
            lines.append(f"    {v.reason}")
            lines.append(f"    {c.replay}")
        else:
            lines.append(
                f"    {v.reason}; bound {v.bound}, {len(v.programs)} program(s) "
                f"({', '.join(v.programs) or 'none'}; {v.reaching} reach the site), "
                f"{v.schedules} schedules + {v.pruned} pruned"
            )
        for a in v.false_alarms:
            lines.append(f"    FALSE ALARM: {a}")
    s = audit_summary(verdicts)
    lines.append("")
    lines.append(
        f"{s['changes']} change(s) at {s['sites']} site(s): {s['necessary']} necessary "
        f"({s['not-memory-ordering']} failing under sc too), {s['not-needed-at-this-size']} "
        f"not needed at this size, {s['undecided']} undecided; false alarms: "
        f"{s['false-alarms']}; counterexamples not reproduced: {s['not-reproduced']}"
    )
    return "\n".join(lines)
