"""The barrier audit's sites and programs: every barrier change of impl, what it is, and
the programs (by coverage) that reach it.

Why it exists: choosing what to search (parsing impl's source for each site, profiling
the program pool once per process, ranking the programs that reach a site) is a stage of
its own that the searches (:mod:`~aioctx_verify.stress.mutation._barrier_search`) only
consume as program keys.
"""

from __future__ import annotations

import ast
import importlib
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aioctx_verify import impl
from aioctx_verify.impl import Ordering

from ..controlled import RandomStrategy
from ..explore import (
    CORPUS,
    Budget,
    Program,
    corpus_by_name,
    explore,
    generate,
    generated_program,
    run_schedule,
)
from ._barrier_types import BARRIER_OPERATORS, AuditBudget, _resolve
from ._operators import GeneratedMutant, generate_mutants
from ._probes import PROBES, probe_program

#: Atomic methods with the position of their ``order`` argument; the controlled platform's
#: step names of cell accesses, and those that write.
_ATOMIC_METHODS = {"load": 0, "store": 1, "exchange": 1, "compare_exchange": 2, "fetch_add": 1}
_CELL_OPS = frozenset({"load", "store", "exchange", "cmpxchg", "fetch_add"})
_WRITE_OPS = frozenset({"store", "exchange", "cmpxchg", "fetch_add"})
#: The seed of the profiling run that decides which programs reach a site.
PROFILE_SEED = 0


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

