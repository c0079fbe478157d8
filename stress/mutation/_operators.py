"""Mechanical mutants of impl: concurrency mutation operators over impl's source, and the
campaign that scores the kill matrix's checkers against them (``aioctx-verify mutate``).

Why it exists: the kill matrix (:mod:`stress.mutation._matrix`) measures the suite against
its own hand-written catalogue, which was written knowing the checkers.  An honest mutation
score needs mutants nobody chose: every place in ``impl/*.py`` where one of the operators
below applies, each a :class:`GeneratedMutant` (a
:class:`~aioctx_verify.stress.mutation.MutantLike`) that every checker of the matrix runs.

Prior art: ConMAn, the concurrency mutation operators of Bradbury, Cordy and Dingel
("Mutation operators for concurrent Java (J2SE 5.0)", Mutation 2006): remove or shift a
synchronised block, remove a notify, modify a barrier, ...; recast here for impl's seam
(explicit fences and C11 orderings, QEMU's wake-up protocol) and for its small counters.

How a mutant is made and applied:

* Sites are found in the AST of each impl file; a site is turned into a *text* edit of the
  file that keeps every line where it was (a dropped statement becomes ``pass`` plus blank
  lines, a moved one is re-indented in place), so the mutated file differs from impl's
  exactly on the named lines and every other line number is unchanged.
* ``apply()`` parses the mutated file, compiles only the one function the edit falls in
  (against the module's own globals, so it sees impl's live state), and swaps it in for
  the ``with`` block with :func:`unittest.mock.patch.object` (class attribute, or module
  attribute and every alias of it in the package); the original comes back on exit.  Like
  :func:`~aioctx_verify.stress.mutation.rewrite`, a function is only mutated when impl's
  file on disk still compiles to the loaded code (same bytecode and line table): a mutant
  never patches in code built from other text than the code it replaces.
* Names are stable: ``operator:file:line:col:variant`` (``file`` as ``impl/_x.py``); the
  same impl gives the same names in the same order, and :func:`generated_mutant` rebuilds a
  mutant from its name.

The campaign (:func:`run_mutation`) picks, for each mutant, the probes whose run on the
unmutated impl executes a mutated line (line coverage, as mutation tools run only the tests
that cover the mutated line), runs a deterministic *sanity* program once (a mutant that
breaks it is "trivial": it still counts as killed only when a checker kills it), then the
checkers cheapest first until the first kill.  The score is killed / (run - equivalent),
equivalents being the reviewed list of :mod:`stress.mutation._equivalent`.
"""

from __future__ import annotations
import __future__

import ast
import dataclasses
import hashlib
import importlib
import itertools
import linecache
import math
import os
import re
import signal
import sys
import time
import types
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from greenlet import getcurrent

from aioctx_verify import impl
from aioctx_verify.impl import (
    SCALE_NS,
    AioContext,
    ClockType,
    EventNotifier,
    IOThread,
    Ordering,
    RealPlatform,
)
from aioctx_verify.impl._platform import ThreadHandle

from ..controlled import ControlledPlatform, RandomStrategy
from ..explore import Program, run_schedule
from ._catalogue import NO_MUTANT, Mutant, MutantError
from ._contract import CellBudget, CheckOutcome
from ._equivalent import EQUIVALENT
from ._matrix import (
    WEAK_MEMORY_OPERATORS,
    available_checkers,
    resolve_budget,
    run_checker,
)
from ._probes import PROBES, Env, probe_program

__all__ = [
    "CHECKER_ORDER",
    "MUTATE_LIMITS",
    "OPERATORS",
    "GeneratedMutant",
    "MutantRun",
    "MutationReport",
    "generate_mutants",
    "generated_mutant",
    "ordered_checkers",
    "generated_conflicts",
    "generated_coverage",
    "probe_coverage",
    "probe_limit",
    "probes_for",
    "run_mutation",
    "sample_mutants",
    "sanity_check",
    "stale_functions",
    "stop_on_sigint",
]

#: The operators, each with what it does to impl.
OPERATORS: dict[str, str] = {
    "fence-drop": "a barrier (smp_mb / smp_wmb / smp_rmb) is removed: the fence call becomes pass",
    "fence-weaken": "a full barrier smp_mb is weakened to smp_wmb or smp_rmb",
    "order-relax": "an atomic access's ordering (seq_cst, written or by default; acquire; "
    "release) becomes relaxed",
    "rmw-split": "an atomic read-modify-write (exchange, compare_exchange, fetch_add) becomes "
    "a load followed by a store",
    "swap-adjacent": "two adjacent simple statements that both touch shared state change "
    "places",
    "notify-drop": "a wake-up is dropped: aio_notify, the contention kick, a condition "
    "notify, an event / notifier set",
    "lock-move-out": "the first or the last statement of a `with <lock>:` block (or of the "
    "`try` of `x.acquire(); try: ... finally: x.release()`) moves out of the critical section",
    "acqrel-drop": "an acquire / release pair is dropped: a `with <lock>:` unwrapped, or an "
    "explicit acquire() ... release() pair removed",
    "off-by-one": "a counter's integer constant +1 / -1, or a comparison's boundary "
    "(< vs <=, > vs >=)",
}

#: Checkers cheapest first (a mutant stops at its first kill); a checker the registry has
#: and this list does not runs after the listed cheap ones and before ``stress_real``.
CHECKER_ORDER: tuple[str, ...] = (
    "model",
    "explore_random",
    "explore_pct",
    "explore_dfs",
    "stateful_single",
    "stateful_multi",
    "stress_real",
)

#: Default sample sizes of the budget presets (``None``: every mutant).
MUTATE_LIMITS: dict[str, int | None] = {"smoke": 60, "pr": 200, "nightly": None}

_ATOMIC = {"load": 0, "store": 1, "exchange": 1, "compare_exchange": 2, "fetch_add": 1}
_RMW = ("exchange", "compare_exchange", "fetch_add")
_NOTIFY = {"aio_notify", "notify", "notify_all", "set", "kick", "_notify_cb", "_cb"}
_SYNC = {
    *_ATOMIC,
    *_NOTIFY,
    "fence",
    "acquire",
    "release",
    "lock",
    "unlock",
    "wait",
    "schedule",
    "test_and_clear",
    "aio_notify_accept",
    "append",
    "remove",
    "pop",
    "popleft",
    "clear",
    "discard",
    "add",
    "insert",
}
_ACQUIRE = ("acquire", "lock")
_RELEASE = ("release", "unlock")
_BOUNDARY: dict[type[ast.cmpop], str] = {ast.Lt: "<=", ast.LtE: "<", ast.Gt: ">=", ast.GtE: ">"}
_SKIP_FUNCS = ("__repr__", "__str__")


# ----------------------------------------------------------------------------------------
# Helpers patched-in code calls (the load-then-store form of an RMW)
# ----------------------------------------------------------------------------------------
_SEQ = Ordering.SEQ_CST


def _split_exchange(cell: Any, value: Any, order: Ordering = _SEQ) -> Any:
    """``cell.exchange(value)`` as two accesses another thread can come between."""
    old = cell.load(order)
    cell.store(value, order)
    return old


def _split_compare_exchange(cell: Any, expected: Any, value: Any, order: Ordering = _SEQ) -> Any:
    """``cell.compare_exchange(expected, value)`` as a load, a test and a store."""
    old = cell.load(order)
    if old == expected:
        cell.store(value, order)
    return old


def _split_fetch_add(cell: Any, delta: int, order: Ordering = _SEQ) -> Any:
    """``cell.fetch_add(delta)`` as a load and a store of the sum."""
    old = cell.load(order)
    cell.store(old + delta, order)
    return old


_HELPERS: dict[str, Any] = {
    "_split_exchange": _split_exchange,
    "_split_compare_exchange": _split_compare_exchange,
    "_split_fetch_add": _split_fetch_add,
}


# ----------------------------------------------------------------------------------------
# impl's functions as mutation units
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _Unit:
    """One function of impl that mutants may replace."""

    file: str  # "impl/_context.py"
    path: str  # the file on disk
    module: types.ModuleType
    qualname: str
    owner: Any  # the module or the class holding it
    attr: str
    role: str  # function | staticmethod | classmethod | fget | fset | fdel
    node: ast.FunctionDef
    wrappers: tuple[Callable[[Any], Any], ...]  # decorators to re-apply, innermost first
    loaded: types.FunctionType
    future: bool
    imports: tuple[ast.stmt, ...]  # the module's import statements (not __future__)


@dataclass(frozen=True, eq=False)
class _Source:
    """One impl file as read for generation, with the units whose code matches it."""

    file: str
    path: str
    text: str
    lines: list[str]
    units: list[_Unit]
    stale: list[str]  # functions whose loaded code differs from the file (impl edited)


def _impl_dir() -> str:
    return os.path.dirname(os.path.abspath(impl.__file__ or ""))


def _impl_files() -> list[str]:
    return sorted(f for f in os.listdir(_impl_dir()) if f.endswith(".py"))


def _module_for(fname: str) -> types.ModuleType:
    name = impl.__name__ if fname == "__init__.py" else f"{impl.__name__}.{fname[:-3]}"
    return sys.modules.get(name) or importlib.import_module(name)


def _innermost(fn: Any) -> Any:
    for _ in range(8):
        inner = getattr(fn, "__wrapped__", None)
        if inner is None:
            break
        fn = inner
    return fn


def _uses_future_annotations(tree: ast.Module) -> bool:
    return any(
        isinstance(s, ast.ImportFrom)
        and s.module == "__future__"
        and any(a.name == "annotations" for a in s.names)
        for s in tree.body
    )


def _module_imports(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The import statements of a module's top level (also under ``if`` / ``try``)."""
    for s in body:
        if isinstance(s, ast.Import) or (
            isinstance(s, ast.ImportFrom) and s.module != "__future__"
        ):
            yield s
        elif isinstance(s, (ast.If, ast.Try)):
            yield from _module_imports([*s.body, *s.orelse])


def _resolve_unit(
    file: str,
    path: str,
    module: types.ModuleType,
    owner: Any,
    qual_prefix: str,
    node: ast.FunctionDef,
    future: bool,
    imports: tuple[ast.stmt, ...],
) -> _Unit | None:
    """The loaded function ``node`` defines, and how it sits on ``owner``; None when its
    decorators are ones this module cannot re-apply."""
    space = vars(owner)
    entry = space.get(node.name)
    role = "function"
    wrappers: list[Callable[[Any], Any]] = []
    fn: Any = entry
    for deco in reversed(node.decorator_list):  # innermost first
        if isinstance(deco, ast.Name) and deco.id in ("property", "staticmethod", "classmethod"):
            if role != "function" or wrappers:
                return None
            role = {"property": "fget"}.get(deco.id, deco.id)
        elif (
            isinstance(deco, ast.Attribute)
            and deco.attr in ("setter", "deleter")
            and isinstance(deco.value, ast.Name)
            and deco.value.id == node.name
        ):
            if role != "function" or wrappers:
                return None
            role = "fset" if deco.attr == "setter" else "fdel"
        elif isinstance(deco, ast.Name) and callable(vars(module).get(deco.id)):
            if role != "function":
                return None
            wrappers.append(vars(module)[deco.id])
        else:
            return None
    if role in ("fget", "fset", "fdel"):
        if not isinstance(entry, property):
            return None
        fn = getattr(entry, role)
    elif role in ("staticmethod", "classmethod"):
        if not isinstance(entry, (staticmethod, classmethod)):
            return None
        fn = entry.__func__
    fn = _innermost(fn)
    if not isinstance(fn, types.FunctionType):
        return None
    return _Unit(
        file,
        path,
        module,
        f"{qual_prefix}{node.name}",
        owner,
        node.name,
        role,
        node,
        tuple(wrappers),
        fn,
        future,
        imports,
    )


def _code_shape(code: types.CodeType) -> tuple[Any, ...]:
    """What a function compiles to, line table included (positions within lines not)."""
    nested = tuple(_code_shape(c) for c in code.co_consts if isinstance(c, types.CodeType))
    return (
        code.co_code,
        code.co_names,
        code.co_varnames,
        code.co_argcount,
        code.co_firstlineno,
        tuple(code.co_lines()),
        nested,
    )


_SOURCES: dict[str, _Source] = {}


def _source(fname: str) -> _Source:
    """impl's file ``fname`` and its mutation units (cached per process: impl is imported
    once, and a unit is kept only if the file still compiles to the loaded code)."""
    cached = _SOURCES.get(fname)
    if cached is not None:
        return cached
    path = os.path.join(_impl_dir(), fname)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    tree = ast.parse(text, path)
    module = _module_for(fname)
    future = _uses_future_annotations(tree)
    imports = tuple(_module_imports(tree.body))
    file = f"impl/{fname}"
    units: list[_Unit] = []
    stale: list[str] = []
    candidates: list[tuple[Any, str, ast.FunctionDef]] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            candidates.append((module, "", node))
        elif isinstance(node, ast.ClassDef):
            cls = vars(module).get(node.name)
            if not isinstance(cls, type):
                continue
            for sub in node.body:
                if isinstance(sub, ast.FunctionDef):
                    candidates.append((cls, f"{node.name}.", sub))
    for owner, prefix, node in candidates:
        if node.name in _SKIP_FUNCS:
            continue
        unit = _resolve_unit(file, path, module, owner, prefix, node, future, imports)
        if unit is None:
            continue
        try:
            same = _compile_unit(unit, node, os.path.join(_impl_dir(), f"[=]{fname}"), {})
        except (SyntaxError, ValueError, TypeError):
            stale.append(unit.qualname)
            continue
        if _code_shape(same.__code__) != _code_shape(unit.loaded.__code__):
            stale.append(unit.qualname)
            continue
        units.append(unit)
    src = _Source(file, path, text, text.splitlines(keepends=True), units, stale)
    _SOURCES[fname] = src
    return src


def _compile_unit(
    unit: _Unit, node: ast.FunctionDef, filename: str, extra: dict[str, Any]
) -> types.FunctionType:
    """``node`` (a def of ``unit``, possibly from a mutated file) compiled against the
    module's own globals; ``extra`` names are bound as closure variables."""
    fdef = ast.FunctionDef(
        **{f: getattr(node, f) for f in node._fields if f != "decorator_list"},
        decorator_list=[],
    )
    ast.copy_location(fdef, node)
    fdef.end_lineno, fdef.end_col_offset = node.end_lineno, node.end_col_offset
    if node.decorator_list:  # a decorated def's code starts at its first decorator
        fdef.lineno = node.decorator_list[0].lineno
    free = list(extra)
    if "__class__" in unit.loaded.__code__.co_freevars:
        free.append("__class__")
        extra = {**extra, "__class__": unit.owner}
    body: list[ast.stmt]
    if free:
        factory = ast.parse(
            f"def _mutant_factory({', '.join(free)}):\n    return {node.name}\n"
        ).body[0]
        assert isinstance(factory, ast.FunctionDef)
        factory.body.insert(0, fdef)
        body = [factory]
    else:
        body = [fdef]
    # The module's imports, never run, so that names bound by an import compile as they
    # do in the module (CPython calls an imported module's function without LOAD_METHOD).
    imports: list[ast.stmt] = list(unit.imports)
    if imports:
        body = [ast.If(test=ast.Constant(value=False), body=imports, orelse=[]), *body]
    mod = ast.Module(body=body, type_ignores=[])
    ast.fix_missing_locations(mod)
    flags = __future__.annotations.compiler_flag if unit.future else 0
    code = compile(mod, filename, "exec", flags=flags, dont_inherit=True)
    local: dict[str, Any] = {}
    exec(code, vars(unit.module), local)
    fn = local["_mutant_factory"](*(extra[n] for n in free)) if free else local[node.name]
    if not isinstance(fn, types.FunctionType):
        raise TypeError(f"compiling {unit.qualname} gave {type(fn).__name__}")
    fn.__qualname__ = unit.loaded.__qualname__
    return fn


# ----------------------------------------------------------------------------------------
# Text edits that keep every line where it was
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Edit:
    """Replace the text from (line, col) to (end_line, end_col) (1-based lines, character
    columns) by ``text``, which has exactly as many line breaks as the replaced text."""

    line: int
    col: int
    end_line: int
    end_col: int
    text: str


def _char_col(lines: list[str], line: int, byte_col: int) -> int:
    return len(lines[line - 1].encode("utf-8")[:byte_col].decode("utf-8", "replace"))


def _apply_edits(lines: list[str], edits: Sequence[_Edit]) -> list[str]:
    """``lines`` (with line ends) with ``edits`` applied; the line count never changes."""
    out = list(lines)
    for e in sorted(edits, key=lambda e: (e.line, e.col), reverse=True):
        head = out[e.line - 1][: e.col]
        tail = out[e.end_line - 1][e.end_col :]
        new = (head + e.text + tail).splitlines(keepends=True)
        if len(new) != e.end_line - e.line + 1:
            raise MutantError(f"internal: an edit changed the line count at line {e.line}")
        out[e.line - 1 : e.end_line] = new
    return out


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _dedent_lines(lines: list[str], by: int) -> list[str]:
    return [ln[by:] if ln[:by].strip() == "" and len(ln) > by else ln for ln in lines]


# ----------------------------------------------------------------------------------------
# Sites
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Site:
    operator: str
    variant: str
    line: int
    col: int
    edits: tuple[_Edit, ...]
    span: tuple[int, ...]  # lines the mutant may change
    cover: tuple[int, ...]  # lines whose execution exercises it
    extra: tuple[str, ...] = ()  # helpers the mutated code calls


class _Finder:
    """Walks one unit and yields the sites of every operator."""

    def __init__(self, src: _Source, unit: _Unit) -> None:
        self.src = src
        self.unit = unit
        self.lines = src.lines
        self.space = vars(unit.module)
        self.relaxed = self._relaxed_name()

    # -- text -------------------------------------------------------------------------------
    def seg(self, node: ast.AST) -> str:
        text = ast.get_source_segment(self.src.text, node)
        return text if text is not None else ast.unparse(node)

    def node_edit(self, node: ast.expr, text: str) -> _Edit:
        """Replace expression ``node`` by ``text`` (parenthesised and padded if it spanned
        several lines)."""
        line, end = node.lineno, node.end_lineno or node.lineno
        col = _char_col(self.lines, line, node.col_offset)
        end_col = _char_col(self.lines, end, node.end_col_offset or 0)
        text = " ".join(t.strip() for t in text.splitlines()) if "\n" in text else text
        if end > line:
            text = f"({text}" + "\n" * (end - line) + ")"
        return _Edit(line, col, end, end_col, text)

    def whole_lines(self, stmt: ast.stmt) -> tuple[int, int] | None:
        """The line range of ``stmt`` if it has its lines to itself (nothing but a comment
        after it, nothing before it on its first line)."""
        first, last = stmt.lineno, stmt.end_lineno or stmt.lineno
        head = self.lines[first - 1][: _char_col(self.lines, first, stmt.col_offset)]
        tail = self.lines[last - 1][_char_col(self.lines, last, stmt.end_col_offset or 0) :]
        if head.strip() or (tail.strip() and not tail.strip().startswith("#")):
            return None
        return first, last

    def replace_lines(self, first: int, last: int, new: list[str]) -> _Edit:
        old_last = self.lines[last - 1]
        end_col = len(old_last.rstrip("\r\n"))
        text = "".join(new)
        if text.endswith("\n"):
            text = text[:-1]
        return _Edit(first, 0, last, end_col, text)

    def drop_edit(self, stmt: ast.stmt) -> _Edit | None:
        rng = self.whole_lines(stmt)
        if rng is None:
            return None
        first, last = rng
        pad = " " * _indent(self.lines[first - 1])
        return self.replace_lines(first, last, [f"{pad}pass\n"] + ["\n"] * (last - first))

    # -- walking ----------------------------------------------------------------------------
    def walk(self) -> Iterator[tuple[ast.AST, ast.stmt]]:
        """Every node of the unit's body with its innermost enclosing statement; not
        inside messages (f-strings, raise, assert) or the docstring."""
        body = self.unit.node.body
        start = 1 if body and _is_docstring(body[0]) else 0

        def rec(node: ast.AST, stmt: ast.stmt) -> Iterator[tuple[ast.AST, ast.stmt]]:
            if isinstance(node, (ast.JoinedStr, ast.Raise, ast.Assert)):
                return
            here = node if isinstance(node, ast.stmt) else stmt
            yield node, here
            for child in ast.iter_child_nodes(node):
                yield from rec(child, here)

        for s in body[start:]:
            yield from rec(s, s)

    def blocks(self) -> Iterator[list[ast.stmt]]:
        """Every statement list in the unit (bodies, else branches, handlers, finally)."""
        for node, _ in self.walk():
            for name in ("body", "orelse", "finalbody"):
                value = getattr(node, name, None)
                if (
                    isinstance(value, list)
                    and value
                    and isinstance(value[0], ast.stmt)
                    and node is not self.unit.node
                ):
                    yield value
        body = self.unit.node.body
        yield body[1:] if body and _is_docstring(body[0]) else body

    def site(
        self,
        op: str,
        variant: str,
        at: ast.AST,
        edits: Iterable[_Edit | None],
        cover: Iterable[int],
        extra: tuple[str, ...] = (),
    ) -> _Site | None:
        got = list(edits)
        if any(e is None for e in got) or not got:
            return None
        es = tuple(e for e in got if e is not None)
        span = tuple(sorted({n for e in es for n in range(e.line, e.end_line + 1)}))
        line, col = getattr(at, "lineno", 0), getattr(at, "col_offset", 0)
        return _Site(op, variant, line, col, es, span, tuple(sorted({*cover, line})), extra)

    # -- operators --------------------------------------------------------------------------
    def fences(self) -> Iterator[_Site | None]:
        for node, stmt in self.walk():
            if not (isinstance(node, ast.Call) and _method(node) == "fence"):
                continue
            if isinstance(stmt, ast.Expr) and stmt.value is node:
                yield self.site("fence-drop", "drop", node, [self.drop_edit(stmt)], [stmt.lineno])
            kind = node.args[0] if node.args else None
            if isinstance(kind, ast.Attribute) and kind.attr == "MB":
                for weaker in ("WMB", "RMB"):
                    edit = self.node_edit(kind, f"{self.seg(kind.value)}.{weaker}")
                    yield self.site(
                        "fence-weaken", weaker.lower(), kind, [edit], [stmt.lineno]
                    )

    def _relaxed_name(self) -> str:
        for name, value in self.space.items():
            if value is Ordering.RELAXED and name.isidentifier():
                return name
        if self.space.get("Ordering") is Ordering:
            return "Ordering.RELAXED"
        return ""

    def _ordering(self, node: ast.expr) -> Ordering | None:
        if isinstance(node, ast.Name):
            v = self.space.get(node.id)
            return v if isinstance(v, Ordering) else None
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and self.space.get(node.value.id) is Ordering
        ):
            return getattr(Ordering, node.attr, None)
        return None

    def orders(self) -> Iterator[_Site | None]:
        if not self.relaxed:
            return
        for node, stmt in self.walk():
            meth = _method(node) if isinstance(node, ast.Call) else None
            if meth not in _ATOMIC or not isinstance(node, ast.Call):
                continue
            index = _ATOMIC[meth]
            kw = [k for k in node.keywords if k.arg == "order"]
            if any(isinstance(a, ast.Starred) for a in node.args) or any(
                k.arg is None for k in node.keywords
            ):
                continue
            arg: ast.expr | None = (
                kw[0].value if kw else node.args[index] if len(node.args) > index else None
            )
            if arg is not None:
                order = self._ordering(arg)
                if order is None or order is Ordering.RELAXED:
                    continue
                yield self.site(
                    "order-relax",
                    "relaxed",
                    arg,
                    [self.node_edit(arg, self.relaxed)],
                    [stmt.lineno],
                )
            elif len(node.args) == index and not node.keywords:
                # The default ordering, seq_cst: write the relaxed one in before the ')'.
                end = node.end_lineno or node.lineno
                end_col = _char_col(self.lines, end, node.end_col_offset or 0) - 1
                if self.lines[end - 1][end_col : end_col + 1] != ")":
                    continue
                text = f", {self.relaxed}" if index else self.relaxed
                edit = _Edit(end, end_col, end, end_col, text)
                yield self.site("order-relax", "relaxed-default", node, [edit], [stmt.lineno])

    def rmws(self) -> Iterator[_Site | None]:
        for node, stmt in self.walk():
            meth = _method(node) if isinstance(node, ast.Call) else None
            if meth not in _RMW or not isinstance(node, ast.Call):
                continue
            assert isinstance(node.func, ast.Attribute)
            if any(isinstance(a, ast.Starred) for a in node.args) or any(
                k.arg is None for k in node.keywords
            ):
                continue
            args = [self.seg(node.func.value), *(self.seg(a) for a in node.args)]
            args += [f"{k.arg}={self.seg(k.value)}" for k in node.keywords]
            text = f"_split_{meth}({', '.join(args)})"
            yield self.site(
                "rmw-split",
                "load-store",
                node,
                [self.node_edit(node, text)],
                [stmt.lineno],
                (f"_split_{meth}",),
            )

    def notifies(self) -> Iterator[_Site | None]:
        for node, stmt in self.walk():
            if not (isinstance(stmt, ast.Expr) and stmt.value is node):
                continue
            if not isinstance(node, ast.Call):
                continue
            meth = _method(node)
            if meth is None:
                continue
            assert isinstance(node.func, ast.Attribute)
            if meth == "schedule" and "dummy" in self.seg(node.func.value):
                variant = "kick"
            elif meth in _NOTIFY:
                variant = "kick" if meth == "_cb" else meth.lstrip("_")
            else:
                continue
            yield self.site("notify-drop", variant, stmt, [self.drop_edit(stmt)], [stmt.lineno])

    def swaps(self) -> Iterator[_Site | None]:
        constructing = self.unit.attr == "__init__"
        for block in self.blocks():
            for a, b in itertools.pairwise(block):
                if not (_simple(a) and _simple(b)):
                    continue
                if not (_shared(a, constructing) and _shared(b, constructing)):
                    continue
                if _depends(a, b) or ast.dump(a) == ast.dump(b):
                    continue
                ra, rb = self.whole_lines(a), self.whole_lines(b)
                if ra is None or rb is None:
                    continue
                la = self.lines[ra[0] - 1 : ra[1]]
                lb = self.lines[rb[0] - 1 : rb[1]]
                between = self.lines[ra[1] : rb[0] - 1]
                edit = self.replace_lines(ra[0], rb[1], [*lb, *between, *la])
                yield self.site("swap-adjacent", "next", a, [edit], [a.lineno, b.lineno])

    def _lock_with(self, node: ast.AST) -> ast.With | None:
        if not isinstance(node, ast.With) or len(node.items) != 1:
            return None
        item = node.items[0]
        if item.optional_vars is not None:
            return None
        if not isinstance(item.context_expr, (ast.Name, ast.Attribute)):
            return None
        return node

    def locks(self) -> Iterator[_Site | None]:
        for node, _ in self.walk():
            w = self._lock_with(node)
            if w is None:
                continue
            rng = self.whole_lines(w)
            if rng is None or any(self.whole_lines(s) is None for s in w.body):
                continue
            first_body = w.body[0]
            by = _indent(self.lines[first_body.lineno - 1]) - _indent(self.lines[w.lineno - 1])
            if by <= 0:
                continue
            header = self.lines[w.lineno - 1 : first_body.lineno - 1]
            # acqrel-drop (with): the header becomes blank lines, the body moves out.
            body = _dedent_lines(self.lines[first_body.lineno - 1 : rng[1]], by)
            unwrap = self.replace_lines(w.lineno, rng[1], ["\n"] * len(header) + body)
            # Its lines: the header and every line of the body (which now runs unlocked:
            # what it accesses is where it can race).
            yield self.site("acqrel-drop", "with", w, [unwrap],
                            range(w.lineno, rng[1] + 1))
            if len(w.body) < 2:
                continue
            yield self._move_first(w, w.body, by)
            # lock-move-out (last): the last statement runs after the lock is released (the
            # mutant is named after that statement, the first line it changes).
            s = w.body[-1]
            s_first, s_last = s.lineno, s.end_lineno or s.lineno
            if s_last != rng[1] or not _touches_shared(s):
                continue
            moved = _dedent_lines(self.lines[s_first - 1 : s_last], by)
            edit = self.replace_lines(s_first, s_last, moved)
            yield self.site("lock-move-out", "last", s, [edit], range(s_first, s_last + 1))

    def _move_first(self, start: ast.stmt, body: list[ast.stmt], by: int) -> _Site | None:
        """lock-move-out (first): the first statement of a critical section that begins at
        ``start`` (a ``with`` or an acquire), its ``body`` indented by ``by``, runs before
        the lock is taken.  A statement that touches only local names (``keep = []``)
        moves no access to shared state: no concurrency mutant, so none is made."""
        s = body[0]
        s_first, s_last = s.lineno, s.end_lineno or s.lineno
        if not _touches_shared(s):
            return None
        header = self.lines[start.lineno - 1 : s_first - 1]
        moved = _dedent_lines(self.lines[s_first - 1 : s_last], by)
        edit = self.replace_lines(start.lineno, s_last, [*moved, *header])
        return self.site("lock-move-out", "first", start, [edit], range(s_first, s_last + 1))

    def _acquire_try(self) -> Iterator[tuple[ast.Expr, ast.Try]]:
        """``x.acquire()`` followed at once by ``try: ... finally: x.release()`` (the same
        receiver, no handler, no else): a critical section written without ``with``."""
        for stmts in self.blocks():
            for a, b in itertools.pairwise(stmts):
                if not (isinstance(a, ast.Expr) and _method(a.value) in _ACQUIRE):
                    continue
                if not isinstance(b, ast.Try) or b.handlers or b.orelse or len(b.finalbody) != 1:
                    continue
                rel = b.finalbody[0]
                if not (isinstance(rel, ast.Expr) and _method(rel.value) in _RELEASE):
                    continue
                assert isinstance(a.value, ast.Call) and isinstance(rel.value, ast.Call)
                assert isinstance(a.value.func, ast.Attribute)
                assert isinstance(rel.value.func, ast.Attribute)
                if ast.dump(a.value.func.value) == ast.dump(rel.value.func.value):
                    yield a, b

    def locks_by_hand(self) -> Iterator[_Site | None]:
        """lock-move-out for a critical section taken by hand (``_acquire_try``): the first
        statement of the ``try`` runs before the acquire, or its last one after the
        release, as for a ``with`` block."""
        for acq, tr in self._acquire_try():
            if len(tr.body) < 2 or self.whole_lines(acq) is None:
                continue
            fin = self.whole_lines(tr.finalbody[0])
            if fin is None or any(self.whole_lines(x) is None for x in tr.body):
                continue
            first_body = tr.body[0]
            by = _indent(self.lines[first_body.lineno - 1]) - _indent(self.lines[acq.lineno - 1])
            if by <= 0:
                continue
            yield self._move_first(acq, tr.body, by)
            # (last): the statement moves after the release
            s = tr.body[-1]
            s_first, s_last = s.lineno, s.end_lineno or s.lineno
            if not _touches_shared(s):
                continue
            moved = _dedent_lines(self.lines[s_first - 1 : s_last], by)
            tail = self.lines[s_last : fin[1]]  # the finally header and the release
            edit = self.replace_lines(s_first, fin[1], [*tail, *moved])
            yield self.site("lock-move-out", "last", s, [edit], range(s_first, s_last + 1))

    def pairs(self) -> Iterator[_Site | None]:
        """Explicit ``x.acquire() ... x.release()`` statements, matched per receiver in
        source order (each release closes the latest open acquire of its receiver)."""
        calls: list[tuple[ast.Expr, str, bool]] = []
        for node, _ in self.walk():
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
                meth = _method(node.value)
                if meth in _ACQUIRE or meth in _RELEASE:
                    assert isinstance(node.value.func, ast.Attribute)
                    recv = ast.dump(node.value.func.value)
                    calls.append((node, recv, meth in _ACQUIRE))
        calls.sort(key=lambda c: (c[0].lineno, c[0].col_offset))
        open_: dict[str, list[ast.Expr]] = {}
        for stmt, recv, is_acq in calls:
            if is_acq:
                open_.setdefault(recv, []).append(stmt)
            elif open_.get(recv):
                acq = open_[recv].pop()
                yield self.site(
                    "acqrel-drop",
                    "pair",
                    acq,
                    [self.drop_edit(acq), self.drop_edit(stmt)],
                    [acq.lineno, stmt.lineno],
                )

    def counters(self) -> Iterator[_Site | None]:
        for node, stmt in self.walk():
            if isinstance(node, ast.Compare) and len(node.ops) == 1:
                op = type(node.ops[0])
                if op in _BOUNDARY:
                    left, right = node.left, node.comparators[0]
                    line, end = left.end_lineno or left.lineno, right.lineno
                    col = _char_col(self.lines, line, left.end_col_offset or 0)
                    end_col = _char_col(self.lines, end, right.col_offset)
                    region = "".join(self.lines[line - 1 : end])[
                        col : len("".join(self.lines[line - 1 : end - 1])) + end_col
                    ]
                    new = re.sub(r"<=|>=|<|>", _BOUNDARY[op], region, count=1)
                    if new != region:
                        edit = _Edit(line, col, end, end_col, new)
                        yield self.site("off-by-one", "boundary", node, [edit], [stmt.lineno])
            for const, value in self._counter_constants(node):
                for variant, delta in (("plus1", 1), ("minus1", -1)):
                    edit = self.node_edit(const, str(value + delta))
                    yield self.site("off-by-one", variant, const, [edit], [stmt.lineno])

    @staticmethod
    def _counter_constants(node: ast.AST) -> Iterator[tuple[ast.expr, int]]:
        """Integer constants that count: ``x += c``, ``a + c``, ``fetch_add(c)``, and the
        bound a counter is compared with."""
        cands: list[ast.expr] = []
        if isinstance(node, ast.AugAssign) and isinstance(node.op, (ast.Add, ast.Sub)):
            cands.append(node.value)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
            cands += [node.left, node.right]
        elif isinstance(node, ast.Call) and _method(node) == "fetch_add" and node.args:
            cands.append(node.args[0])
        elif isinstance(node, ast.Compare) and len(node.ops) == 1:
            cands += [node.left, *node.comparators]
        for c in cands:
            v = _int_value(c)
            if v is not None:
                yield c, v

    def all_sites(self) -> Iterator[_Site]:
        for gen in (
            self.fences(),
            self.orders(),
            self.rmws(),
            self.swaps(),
            self.notifies(),
            self.locks(),
            self.locks_by_hand(),
            self.pairs(),
            self.counters(),
        ):
            for s in gen:
                if s is not None:
                    yield s


def _is_docstring(s: ast.stmt) -> bool:
    return (
        isinstance(s, ast.Expr)
        and isinstance(s.value, ast.Constant)
        and isinstance(s.value.value, str)
    )


def _method(call: ast.AST) -> str | None:
    if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _int_value(node: ast.expr) -> int | None:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and type(node.operand.value) is int
    ):
        return -node.operand.value
    return None


def _simple(s: ast.stmt) -> bool:
    if isinstance(s, ast.Expr):
        return not _is_docstring(s)
    return isinstance(s, (ast.Assign, ast.AugAssign)) or (
        isinstance(s, ast.AnnAssign) and s.value is not None
    )


def _shared(s: ast.stmt, constructing: bool) -> bool:
    """Whether ``s`` touches shared state: a synchronising or container call, or a store
    into an attribute or an item (not into ``self`` while ``__init__`` builds it: an object
    nobody else can see yet is not shared)."""
    for n in ast.walk(s):
        if isinstance(n, ast.Call) and _method(n) in _SYNC:
            return True
        if (
            isinstance(n, (ast.Attribute, ast.Subscript))
            and isinstance(n.ctx, ast.Store)
            and not (constructing and _path(n).startswith("self."))
        ):
            return True
    return False


def _path(n: ast.expr) -> str:
    """``a.b.c`` for an attribute chain on a name (``a.b[]`` for an item), else ``""``."""
    if isinstance(n, ast.Name):
        return n.id
    if isinstance(n, ast.Attribute):
        base = _path(n.value)
        return f"{base}.{n.attr}" if base else ""
    if isinstance(n, ast.Subscript):
        base = _path(n.value)
        return f"{base}[]" if base else ""
    return ""


def _accesses(s: ast.stmt) -> tuple[set[str], set[str]]:
    """The names and attribute paths ``s`` stores and loads."""
    stored: set[str] = set()
    loaded: set[str] = set()
    for n in ast.walk(s):
        if isinstance(n, (ast.Name, ast.Attribute, ast.Subscript)):
            p = _path(n)
            if p:
                (stored if isinstance(n.ctx, ast.Store) else loaded).add(p)
    if isinstance(s, ast.AugAssign):
        p = _path(s.target)
        if p:
            loaded.add(p)
    return stored, loaded


def _touches_shared(s: ast.stmt) -> bool:
    """Whether ``s`` may access state other threads see: an attribute, or a call (which
    may do anything); a statement over local names only cannot."""
    return any(isinstance(n, (ast.Attribute, ast.Call)) for n in ast.walk(s))


def _overlap(xs: set[str], ys: set[str]) -> bool:
    return any(x == y or y.startswith((x + ".", x + "[")) for x in xs for y in ys)


def _depends(a: ast.stmt, b: ast.stmt) -> bool:
    """A data dependence in program order (one stores a name or an attribute path the
    other reads or stores): a swap there changes what one thread computes, a sequential
    change, not a reordering of accesses."""
    sa, la = _accesses(a)
    sb, lb = _accesses(b)
    return _overlap(sa, sb | lb) or _overlap(sb, la)


# ----------------------------------------------------------------------------------------
# Generated mutants
# ----------------------------------------------------------------------------------------
class GeneratedMutant:
    """One mechanical mutant of impl (a :class:`~aioctx_verify.stress.mutation.MutantLike`).

    Attributes:
        name: ``operator:file:line:col:variant``, stable while impl's file is unchanged
            (what ``--mutants`` and replay lines take).
        key: ``operator:file:function:variant: before -> after`` (plus `` #n`` for the
            n-th identical edit in one function): stable while the function's changed
            statement is unchanged, wherever it moves in the file.  Reviews
            (:data:`~._equivalent.EQUIVALENT`) are keyed by it.
        operator, file, line, col, variant: the parts of the name.
        function: the qualified name of the function it changes.
        before, after: the changed lines of impl's file, before and after (one line each,
            statements joined by ``;``).
        changed_lines: the file's lines that differ.
        cover: lines whose execution exercises the mutant (probe selection).
    """

    __slots__ = (
        "_compiled",
        "_site",
        "_src",
        "_unit",
        "after",
        "before",
        "changed_lines",
        "col",
        "cover",
        "file",
        "function",
        "key",
        "line",
        "name",
        "operator",
        "variant",
    )

    def __init__(self, src: _Source, unit: _Unit, site: _Site, name: str) -> None:
        self._src = src
        self._unit = unit
        self._site = site
        self._compiled: Any = None
        self.name = name
        self.operator = site.operator
        self.file = src.file
        self.line = site.line
        self.col = site.col
        self.variant = site.variant
        self.function = unit.qualname
        self.cover = site.cover
        new = self.mutated_lines()
        self.changed_lines = tuple(
            i + 1 for i, (a, b) in enumerate(zip(src.lines, new, strict=True)) if a != b
        )
        old_text = [src.lines[i - 1] for i in self.changed_lines]
        new_text = [new[i - 1] for i in self.changed_lines]
        # A statement moved out of a block changes only its indentation: show it then.
        show = _shown if [t.strip() for t in old_text] == [t.strip() for t in new_text] else (
            lambda t: t.strip()
        )
        self.before = "; ".join(show(t) for t in old_text if t.strip())
        self.after = "; ".join(show(t) for t in new_text if t.strip()) or "(nothing)"
        self.key = (
            f"{self.operator}:{self.file}:{self.function}:{self.variant}: "
            f"{_squash(self.before)} -> {_squash(self.after)}"
        )

    def __repr__(self) -> str:
        return f"<GeneratedMutant {self.name}>"

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def description(self) -> str:
        return f"{OPERATORS[self.operator]}: {self.where} `{self.before}` -> `{self.after}`"

    def mutated_lines(self) -> list[str]:
        """impl's file with this mutant's edit (same number of lines)."""
        return _apply_edits(self._src.lines, self._site.edits)

    def mutated_source(self) -> str:
        return "".join(self.mutated_lines())

    def original_source(self) -> str:
        return self._src.text

    def _build(self) -> Any:
        """The replacement object (function, or the property / static / class method
        holding it), compiled once."""
        if self._compiled is not None:
            return self._compiled
        unit = self._unit
        text = self.mutated_source()
        base = os.path.basename(self._src.path)
        label = f"{self.operator}@{self.line}:{self.col}:{self.variant}"
        filename = os.path.join(os.path.dirname(self._src.path), f"[{label}]{base}")
        try:
            tree = ast.parse(text, filename)
        except SyntaxError as e:
            raise MutantError(f"mutant {self.name} does not parse: {e}") from None
        node = _find_def(tree, unit)
        if node is None:
            raise MutantError(f"mutant {self.name}: {unit.qualname} not found after the edit")
        linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
        fn = _compile_unit(unit, node, filename, {n: _HELPERS[n] for n in self._site.extra})
        obj: Any = fn
        for wrap in unit.wrappers:
            obj = wrap(obj)
        if unit.role in ("fget", "fset", "fdel"):
            orig = vars(unit.owner)[unit.attr]
            assert isinstance(orig, property)
            parts = {"fget": orig.fget, "fset": orig.fset, "fdel": orig.fdel, unit.role: obj}
            obj = property(parts["fget"], parts["fset"], parts["fdel"], orig.__doc__)
        elif unit.role == "staticmethod":
            obj = staticmethod(obj)
        elif unit.role == "classmethod":
            obj = classmethod(obj)
        self._compiled = obj
        return obj

    def _targets(self) -> list[tuple[Any, str]]:
        """Where the function lives: its class, or its module and every module of the
        package that imported it by name."""
        unit = self._unit
        if isinstance(unit.owner, type):
            return [(unit.owner, unit.attr)]
        orig = vars(unit.owner)[unit.attr]
        out: list[tuple[Any, str]] = [(unit.owner, unit.attr)]
        prefix = impl.__name__.split(".")[0] + "."
        for modname, mod in list(sys.modules.items()):
            if mod is unit.owner or not modname.startswith(prefix) or mod is None:
                continue
            for k, v in list(vars(mod).items()):
                if v is orig:
                    out.append((mod, k))
        return out

    @contextmanager
    def _patched(self) -> Iterator[None]:
        obj = self._build()
        with ExitStack() as stack:
            for owner, attr in self._targets():
                stack.enter_context(mock.patch.object(owner, attr, obj))
            yield

    def apply(self) -> AbstractContextManager[None]:
        """Patch the mutant into impl for the length of a ``with`` block.

        Raises:
            MutantError: the mutated file does not parse or the function is gone.
        """
        return self._patched()

    def as_mutant(self, probes: Sequence[str] = ()) -> Mutant:
        """The same mutant as a catalogue :class:`Mutant` with ``probes`` (what the kill
        matrix's checkers take)."""
        return Mutant(
            self.name,
            "generated",
            None,
            self.description,
            self.apply,
            None,
            tuple(probes),
            "generated",
            (self.file, tuple(self.cover)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "key": self.key,
            "operator": self.operator,
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "variant": self.variant,
            "function": self.function,
            "before": self.before,
            "after": self.after,
        }


def _squash(text: str) -> str:
    """``text`` with every run of whitespace one space (a key survives re-indentation of
    the lines around it, not a change of the statement)."""
    return " ".join(text.split())


def _shown(line: str) -> str:
    """A line with its indentation made visible (``[8] x = 1``)."""
    return f"[{_indent(line)}] {line.strip()}"


def _find_def(tree: ast.Module, unit: _Unit) -> ast.FunctionDef | None:
    """The def of ``unit`` in a (mutated) file, by class, name and line."""
    scope: list[ast.stmt] = tree.body
    if isinstance(unit.owner, type):
        cls = next(
            (
                n
                for n in tree.body
                if isinstance(n, ast.ClassDef) and n.name == unit.qualname.split(".")[0]
            ),
            None,
        )
        if cls is None:
            return None
        scope = cls.body
    for n in scope:
        if isinstance(n, ast.FunctionDef) and n.name == unit.attr and n.lineno == unit.node.lineno:
            return n
    return None


def _mutants_of(fname: str, operators: set[str] | None) -> list[GeneratedMutant]:
    src = _source(fname)
    out: list[GeneratedMutant] = []
    seen: set[str] = set()
    keys: dict[str, int] = {}
    for unit in src.units:
        for site in _Finder(src, unit).all_sites():
            if operators is not None and site.operator not in operators:
                continue
            name = f"{site.operator}:{src.file}:{site.line}:{site.col}:{site.variant}"
            if name in seen:
                continue  # the same edit reached twice (a node in two walks)
            seen.add(name)
            m = GeneratedMutant(src, unit, site, name)
            n = keys.get(m.key, 0) + 1
            keys[m.key] = n
            if n > 1:  # the same edit of the same statement twice in one function
                m.key = f"{m.key} #{n}"
            out.append(m)
    return out


def generate_mutants(operators: Iterable[str] | None = None) -> list[GeneratedMutant]:
    """Every mutant the operators make on impl's files, in a stable order (file, then
    function, then operator).

    Raises:
        ValueError: an unknown operator.
    """
    ops = None if operators is None else set(operators)
    if ops is not None and ops - set(OPERATORS):
        raise ValueError(
            f"unknown operator(s) {', '.join(sorted(ops - set(OPERATORS)))}; "
            f"known: {', '.join(OPERATORS)}"
        )
    out: list[GeneratedMutant] = []
    for fname in _impl_files():
        out += _mutants_of(fname, ops)
    return out


def stale_equivalents() -> list[str]:
    """Reviewed equivalent keys that no generated mutant has now: the reviewed statement
    changed (or its function was renamed), so the review must be redone."""
    current = {m.key for m in generate_mutants()}
    return sorted(k for k in EQUIVALENT if k not in current)


def stale_functions() -> list[str]:
    """impl functions skipped because the file on disk no longer compiles to the loaded
    code (impl was edited since it was imported: re-run in a fresh process)."""
    return [f"{_source(f).file}:{q}" for f in _impl_files() for q in _source(f).stale]


def generated_mutant(name: str) -> GeneratedMutant:
    """The mutant a name stands for (``operator:file:line:col:variant``).

    Raises:
        KeyError: no such mutant on the current impl (malformed, or impl changed).
    """
    parts = name.split(":")
    if len(parts) != 5 or parts[0] not in OPERATORS or not parts[1].startswith("impl/"):
        raise KeyError(
            f"{name!r} is not a generated mutant name (operator:impl/file.py:line:col:variant)"
        )
    fname = parts[1].removeprefix("impl/")
    if fname not in _impl_files():
        raise KeyError(f"{name!r}: impl has no file {parts[1]}")
    for m in _mutants_of(fname, {parts[0]}):
        if m.name == name:
            return m
    raise KeyError(f"{name!r}: no such mutant on the current impl (did impl change?)")


# ----------------------------------------------------------------------------------------
# Coverage: which probes execute which impl lines
# ----------------------------------------------------------------------------------------
Hits = dict[str, Counter[int]]  # impl file ("impl/_x.py") -> line -> times executed
#: A probe chosen for a mutant gets at least this many work units of an explorer's cell
#: (about that many schedules): the more probes, the fewer schedules each.
PROBE_WORK = 30
#: Operators whose change only shows under weak memory: c11, then TSO/PSO probes go first
#: (with rmw-split, :data:`~._matrix.WEAK_MEMORY_OPERATORS`: the generated column's list).
_MEMORY_OPS = ("fence-drop", "fence-weaken", "order-relax")
#: Operators whose change shows under every model but may need c11's: a split RMW loses
#: atomicity (any interleaving shows it) and its ordering (the load and the store are
#: separate messages: a coalesced writer's data may not travel with the value read), so
#: c11 probes go first, then the rest alike.
_ATOMICITY_OPS = tuple(sorted(WEAK_MEMORY_OPERATORS - set(_MEMORY_OPS)))


def _tracer(
    files: dict[str, str],
    hits: Hits,
    who: dict[str, dict[int, set[int]]] | None = None,
) -> Callable[[Any, str, Any], Any]:
    """A ``sys.settrace`` function counting the lines of ``files`` executed into ``hits``
    and, with ``who``, which threads (numbered by first appearance) executed each."""
    # Controlled threads are greenlets sharing one OS thread: a thread is its greenlet
    # (on a plain OS thread, that thread's main greenlet).
    idents: dict[object, int] = {}

    def note(fname: str, line: int) -> None:
        hits[fname][line] += 1
        if who is not None:
            me = idents.setdefault(getcurrent(), len(idents))
            who[fname].setdefault(line, set()).add(me)

    def local(frame: Any, event: str, _arg: Any) -> Any:
        if event == "line":
            note(files[frame.f_code.co_filename], frame.f_lineno)
        return local

    def glob(frame: Any, _event: str, _arg: Any) -> Any:
        if frame.f_code.co_filename in files:
            note(files[frame.f_code.co_filename], frame.f_lineno)
            return local
        return None

    return glob


def _traced(fn: Callable[[], None], trace: Callable[[Any, str, Any], Any]) -> Callable[[], None]:
    def run() -> None:
        old = sys.gettrace()
        sys.settrace(trace)
        try:
            fn()
        finally:
            sys.settrace(old)

    return run


def _ignore(_ev: Any) -> None:
    """A tracer that drops every event (coverage runs take the traced branches)."""


class _TracedControlled(ControlledPlatform):
    trace: Callable[[Any, str, Any], Any] | None = None

    def start_thread(self, target: Callable[[], None], name: str) -> ThreadHandle:
        t = self.trace
        return super().start_thread(target if t is None else _traced(target, t), name)


class _TracedReal(RealPlatform):
    trace: Callable[[Any, str, Any], Any] | None = None

    def start_thread(self, target: Callable[[], None], name: str) -> ThreadHandle:
        t = self.trace
        return super().start_thread(target if t is None else _traced(target, t), name)


_COVERAGE: dict[str, Hits] = {}


def probe_coverage(
    probes: Iterable[str] | None = None, *, schedules: int = 3, real: bool = True
) -> dict[str, Hits]:
    """For each probe, the impl lines its runs on the unmutated impl execute: ``schedules``
    seeded random schedules on the controlled platform, plus (``real``) one run on real
    threads (which alone reaches the real platform's code).  Cached per process."""
    names = list(PROBES) if probes is None else list(probes)
    files = {
        os.path.join(_impl_dir(), f): f"impl/{f}" for f in _impl_files()
    }
    for name in names:
        if name in _COVERAGE:
            continue
        probe = PROBES[name]
        hits: Hits = {f: Counter() for f in files.values()}
        trace = _tracer(files, hits)
        _traced_runs(probe_program(probe), RandomStrategy(0), schedules, trace)
        if real:
            _real_coverage_run(name, trace)
        _COVERAGE[name] = hits
    return {n: _COVERAGE[n] for n in names}


_GEN_COVERAGE: dict[tuple[int, int], Hits] = {}
#: Per generated program: impl file -> line -> the threads (by order of first hit) that
#: executed it.
_GEN_THREADS: dict[tuple[int, int], dict[str, dict[int, set[int]]]] = {}


def generated_coverage(seed: int, indices: Iterable[int]) -> dict[int, Hits]:
    """For each generated program ``(seed, i)``, the impl lines one seeded sc run of it on
    the unmutated impl executes (cached per process): what lets a checker give a mutant
    the generated programs that reach it, as :func:`probes_for` does with probes."""
    wanted = list(indices)
    _gen_traced(seed, wanted)
    return {i: _GEN_COVERAGE[(seed, i)] for i in wanted}


def generated_threads(
    seed: int, indices: Iterable[int]
) -> dict[int, dict[str, dict[int, set[int]]]]:
    """For each generated program ``(seed, i)``: impl file -> line -> the threads of its
    traced run (numbered by first appearance) that executed the line."""
    wanted = list(indices)
    _gen_traced(seed, wanted)
    return {i: _GEN_THREADS[(seed, i)] for i in wanted}


_Field = tuple[str, int, bool, str, int]
#: Per generated program: the watched-field accesses of one race-detected run, impl's only
#: (field, thread, write, "impl/file.py", line); see :func:`generated_conflicts`.
_GEN_FIELDS: dict[tuple[int, int], frozenset[_Field]] = {}


def generated_conflicts(seed: int, index: int, file: str, lines: Iterable[int]) -> int:
    """Where generated program ``(seed, index)`` can race at ``lines`` of ``file``
    (``impl/x.py``): the number of impl fields (plain fields, containers' contents) it
    accesses there in one thread while another thread accesses them too, one of the two
    writing (the places where a change of those lines, a statement moved out of its lock
    or a lock dropped, can race).  From one seeded race-detected run of the unmutated
    impl, cached per process."""
    from ..controlled import field_accesses
    from ..explore import generate, generated_program

    key = (seed, index)
    got = _GEN_FIELDS.get(key)
    if got is None:
        base = _impl_dir() + os.sep
        got = _GEN_FIELDS[key] = frozenset(
            (label, t, w, f"impl/{path[len(base):]}", line)
            for label, t, w, path, line, _steps in field_accesses(
                generated_program(generate(seed, index)), seed=index)
            if path.startswith(base)
        )
    at = set(lines)
    by_field: dict[str, set[tuple[int, bool]]] = {}
    for label, t, w, _f, _line in got:
        by_field.setdefault(label, set()).add((t, w))
    mine: dict[str, set[tuple[int, bool]]] = {}
    for label, t, w, f, line in got:
        if f == file and line in at:
            mine.setdefault(label, set()).add((t, w))
    return sum(
        any(u != t and (w or w2) for t, w in here for u, w2 in by_field[label])
        for label, here in mine.items()
    )


def _gen_traced(seed: int, indices: Iterable[int]) -> None:
    from ..explore import generate, generated_program

    files = {os.path.join(_impl_dir(), f): f"impl/{f}" for f in _impl_files()}
    for i in indices:
        key = (seed, i)
        if key in _GEN_COVERAGE:
            continue
        hits: Hits = {f: Counter() for f in files.values()}
        who: dict[str, dict[int, set[int]]] = {f: {} for f in files.values()}
        trace = _tracer(files, hits, who)
        _traced_runs(generated_program(generate(seed, i)), RandomStrategy(i), 1, trace)
        _GEN_COVERAGE[key] = hits
        _GEN_THREADS[key] = who


def _traced_runs(
    program: Program, strategy: RandomStrategy, runs: int, trace: Callable[[Any, str, Any], Any]
) -> None:
    """``runs`` seeded runs of ``program`` on the controlled platform, every thread traced."""
    for _ in range(runs):
        strategy.next_run()
        plat = _TracedControlled(strategy, memory=program.memory, max_steps=program.max_steps)
        plat.trace = trace
        if program.monitors:  # the checkers' runs trace: so impl's traced branches run here
            plat.tracer = _ignore
        plat.run(_traced_program(program.fn, trace))


def _traced_program(
    fn: Callable[[ControlledPlatform], None], trace: Callable[[Any, str, Any], Any]
) -> Callable[[ControlledPlatform], None]:
    def run(p: ControlledPlatform) -> None:
        _traced(lambda: fn(p), trace)()

    return run


def _real_coverage_run(name: str, trace: Callable[[Any, str, Any], Any]) -> None:
    probe = PROBES[name]
    p = _TracedReal()
    p.trace = trace
    env = Env(p, limit=2.0)
    old = sys.gettrace()
    try:
        env.start_watchdog(8.0)
        sys.settrace(trace)
        try:
            probe.body(env)
        except Exception:
            pass  # coverage only: whatever ran counts
        finally:
            sys.settrace(old)
    finally:
        env.close()


def probes_for(
    mutant: GeneratedMutant, coverage: dict[str, Hits], limit: int | None = None
) -> tuple[str, ...]:
    """The probes whose runs execute one of the mutant's lines, at most ``limit``: for a
    fence or an ordering the weak-memory probes first, c11 ones before tso / pso ones
    (under SC the change is invisible, under tso / pso a load-side one too),
    (a split RMW: the c11 probes first, then the others alike), then the probes that execute
    the lines most often, then in PROBES order."""
    ranked: list[tuple[int, int, int, str]] = []
    weakness = {"c11": 0, "pso": 1, "tso": 1, "sc": 2}  # c11: loads reorder too
    for i, name in enumerate(PROBES):
        lines = coverage.get(name, {}).get(mutant.file)
        hits = sum(lines[n] for n in mutant.cover) if lines else 0
        if hits:
            memory = PROBES[name].memory
            rank = (
                weakness[memory] if mutant.operator in _MEMORY_OPS
                else int(memory != "c11") if mutant.operator in _ATOMICITY_OPS
                else 0
            )
            ranked.append((rank, -hits, i, name))
    names = [r[-1] for r in sorted(ranked)]
    return tuple(names if limit is None else names[:limit])


def probe_limit(cell: CellBudget) -> int | None:
    """How many probes a mutant gets under ``cell`` (None: all of them)."""
    return None if cell.work is None else max(1, cell.work // PROBE_WORK)


# ----------------------------------------------------------------------------------------
# The sanity run: does the mutated impl still do the basics, once, deterministically?
# ----------------------------------------------------------------------------------------
def _sanity_program(p: ControlledPlatform) -> None:
    ran: list[str] = []
    ctx = AioContext(p, name="sanity")
    bh = ctx.bh_new(lambda _: ran.append("bh"))
    bh.schedule()
    bh.schedule()
    for _ in range(4):
        if not ctx.aio_poll(False):
            break
    assert ran == ["bh"], f"a BH scheduled twice ran {ran.count('bh')} time(s)"
    with ctx, ctx:
        pass
    ctx.acquire()
    ctx.release()
    timer = ctx.timer_new(ClockType.REALTIME, SCALE_NS, lambda _: ran.append("timer"))
    timer.mod_ns(p.monotonic_ns())
    n = EventNotifier(p)

    def on_notifier(e: EventNotifier) -> None:
        e.test_and_clear()
        ran.append("notifier")

    ctx.set_event_notifier(n, on_notifier)
    n.set()
    for _ in range(4):
        ctx.aio_poll(False)
    assert "timer" in ran and "notifier" in ran, f"an expired timer or a set notifier: {ran}"
    ctx.set_event_notifier(n, None)
    pool = ctx.thread_pool()
    pool.submit(lambda a: int(a), 7, lambda _o, ret: ran.append(f"pool{ret}"))
    for _ in range(50):
        if "pool7" in ran:
            break
        ctx.aio_poll(True)
    assert "pool7" in ran, "a thread-pool request did not complete"
    it = IOThread(p, name="sanity-io")
    it.start()
    it.ctx.bh_schedule_oneshot(lambda _: ran.append("io"))
    with it.ctx:
        pass
    it.join()
    assert "io" in ran, "a one-shot BH in an IOThread did not run before its join"
    ctx.unref()


def sanity_check(mutant: GeneratedMutant | None = None) -> str | None:
    """Run the sanity program once (one seeded schedule, no monitors) under ``mutant``:
    None when it passes, else one line saying how it broke."""
    program = Program("mutate-sanity", _sanity_program, monitors=False, max_steps=20_000)
    strategy = RandomStrategy(0)
    strategy.next_run()
    try:
        with mutant.apply() if mutant is not None else _nothing():
            out = run_schedule(program, strategy)
    except MutantError as e:
        return f"does not build: {e}"
    if out.verdict == "pass":
        return None
    msg = " ".join(out.message.split())
    return f"{out.verdict} ({out.kind}): {msg[:200]}"


@contextmanager
def _nothing() -> Iterator[None]:
    yield


# ----------------------------------------------------------------------------------------
# The campaign
# ----------------------------------------------------------------------------------------
def _digest(seed: int, name: str) -> str:
    return hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()


def sample_mutants(
    mutants: Sequence[GeneratedMutant], limit: int | None, seed: int
) -> list[GeneratedMutant]:
    """At most ``limit`` of ``mutants``, chosen deterministically by ``seed``: each
    operator's mutants in a seeded hash order, taken round-robin across operators (so
    every operator is represented), returned in generation order."""
    if limit is None or limit >= len(mutants):
        return list(mutants)
    by_op: dict[str, list[GeneratedMutant]] = {}
    for m in mutants:
        by_op.setdefault(m.operator, []).append(m)
    queues = [sorted(ms, key=lambda m: _digest(seed, m.name)) for ms in by_op.values()]
    chosen: set[str] = set()
    while len(chosen) < limit:
        for q in queues:
            if q and len(chosen) < limit:
                chosen.add(q.pop(0).name)
    return [m for m in mutants if m.name in chosen]


def ordered_checkers(names: Iterable[str] | None = None) -> list[str]:
    """The registry's checkers (or ``names``), cheapest first (see :data:`CHECKER_ORDER`)."""
    have = list(names) if names is not None else available_checkers()
    known = [c for c in CHECKER_ORDER if c in have and c != "stress_real"]
    new = [c for c in have if c not in CHECKER_ORDER]
    last = ["stress_real"] if "stress_real" in have else []
    return known + new + last


@dataclass
class MutantRun:
    """One generated mutant through the campaign.

    Attributes:
        status: ``killed``, ``survived`` (no checker killed it) or ``equivalent`` (on the
            reviewed list and not killed).
        killed_by: the checker that killed it.
        outcomes: each checker that ran, in order, with its outcome.
        probes: the probes chosen for it by coverage.
        sanity: None when the sanity run passed; else how it broke (a "trivial" mutant).
        equivalent: the reviewed reason, when it is on the list.
    """

    mutant: GeneratedMutant
    status: str
    killed_by: str | None
    outcomes: list[tuple[str, CheckOutcome]]
    probes: tuple[str, ...]
    sanity: str | None
    equivalent: str | None
    seconds: float

    @property
    def trivial(self) -> bool:
        return self.sanity is not None

    @property
    def kill(self) -> CheckOutcome | None:
        for c, o in self.outcomes:
            if c == self.killed_by:
                return o
        return None

    def note(self) -> str:
        """Why a survivor survived, in a few words."""
        bits: list[str] = []
        if not self.probes:
            bits.append("no probe executes this line")
        verdicts: dict[str, list[str]] = {}
        for c, o in self.outcomes:
            verdicts.setdefault(o.verdict, []).append(c.removeprefix("explore_"))
        for v in ("inconclusive", "error"):
            if v in verdicts:
                bits.append(f"{v}: {','.join(verdicts[v])}")
        if "survived" not in verdicts:
            bits.append("no checker ran it to the end")
        if self.sanity is not None:
            bits.append(f"breaks the sanity run ({self.sanity[:80]})")
        return "; ".join(bits)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.mutant.to_json(),
            "status": self.status,
            "killed_by": self.killed_by,
            "killed_by_property": (k.killed_by_property if (k := self.kill) else None),
            "via": (k.via if (k := self.kill) else None),
            "trivial": self.trivial,
            "sanity": self.sanity,
            "equivalent": self.equivalent,
            "probes": list(self.probes),
            "seconds": round(self.seconds, 3),
            "checkers": [
                {
                    "checker": c,
                    "verdict": o.verdict,
                    "seconds": round(o.seconds, 4),
                    "detail": o.detail,
                }
                for c, o in self.outcomes
            ],
            "note": "" if self.status == "killed" else self.note(),
        }


@dataclass
class MutationReport:
    """The result of :func:`run_mutation`."""

    budget: str
    seed: int
    checkers: list[str]
    operators: list[str]
    generated: dict[str, int]  # per operator
    sampled: list[GeneratedMutant]
    runs: list[MutantRun] = field(default_factory=list)
    control: list[tuple[str, CheckOutcome]] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    stale_equivalents: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stopped: bool = False
    limit: int | None = None

    @property
    def total(self) -> int:
        return sum(self.generated.values())

    @property
    def killed(self) -> list[MutantRun]:
        return [r for r in self.runs if r.status == "killed"]

    @property
    def survivors(self) -> list[MutantRun]:
        return [r for r in self.runs if r.status == "survived"]

    @property
    def equivalents(self) -> list[MutantRun]:
        return [r for r in self.runs if r.status == "equivalent"]

    @property
    def trivially_killed(self) -> list[MutantRun]:
        return [r for r in self.killed if r.trivial]

    @property
    def wrong_equivalents(self) -> list[MutantRun]:
        """Mutants on the equivalent list that a checker killed (the entry is wrong)."""
        return [r for r in self.killed if r.equivalent is not None]

    @property
    def false_alarms(self) -> list[tuple[str, CheckOutcome]]:
        return [(c, o) for c, o in self.control if o.killed]

    @property
    def score(self) -> float | None:
        """killed / (run - equivalent); None when nothing counts."""
        denom = len(self.runs) - len(self.equivalents)
        return len(self.killed) / denom if denom else None

    def per_operator(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for op in self.operators:
            rs = [r for r in self.runs if r.mutant.operator == op]
            out[op] = {
                "generated": self.generated.get(op, 0),
                "sampled": sum(1 for m in self.sampled if m.operator == op),
                "run": len(rs),
                "killed": sum(1 for r in rs if r.status == "killed"),
                "survived": sum(1 for r in rs if r.status == "survived"),
                "equivalent": sum(1 for r in rs if r.status == "equivalent"),
                "trivially_killed": sum(1 for r in rs if r.status == "killed" and r.trivial),
            }
        return out

    def to_json(self) -> dict[str, Any]:
        score = self.score
        return {
            "version": 1,
            "budget": self.budget,
            "seed": self.seed,
            "checkers": self.checkers,
            "operators": self.operators,
            "limit": self.limit,
            "total_mutants": self.total,
            "sampled": len(self.sampled),
            "sampled_fraction": round(len(self.sampled) / self.total, 4) if self.total else 0.0,
            "run": len(self.runs),
            "killed": len(self.killed),
            "survived": len(self.survivors),
            "equivalent": len(self.equivalents),
            "trivially_killed": len(self.trivially_killed),
            "score": None if score is None else round(score, 4),
            "stopped": self.stopped,
            "seconds": round(self.seconds, 2),
            "per_operator": self.per_operator(),
            "survivors": [r.to_json() for r in self.survivors],
            "trivially_killed_mutants": [r.mutant.name for r in self.trivially_killed],
            "equivalent_mutants": {r.mutant.name: r.equivalent for r in self.equivalents},
            "wrong_equivalents": [r.mutant.name for r in self.wrong_equivalents],
            "stale_equivalents": self.stale_equivalents,
            "stale_functions": self.stale,
            "false_alarms": len(self.false_alarms),
            "control_runs": [
                {"checker": c, "verdict": o.verdict, "seconds": round(o.seconds, 4),
                 "detail": o.detail}
                for c, o in self.control
            ],
            "mutants": [r.to_json() for r in self.runs],
        }

    def format(self) -> str:
        lines: list[str] = []
        frac = len(self.sampled) / self.total if self.total else 0.0
        lines.append(
            f"{self.total} mutants generated; {len(self.sampled)} sampled ({frac:.1%}, seed "
            f"{self.seed}); {len(self.runs)} run; budget {self.budget}; {self.seconds:.0f} s"
        )
        head = (
            f"{'operator':<14} {'generated':>9} {'sampled':>7} {'run':>4} {'killed':>6} "
            f"{'survived':>8} {'equiv':>5} {'trivial':>7}"
        )
        lines += ["", head, "-" * len(head)]
        for op, s in self.per_operator().items():
            lines.append(
                f"{op:<14} {s['generated']:>9} {s['sampled']:>7} {s['run']:>4} "
                f"{s['killed']:>6} {s['survived']:>8} {s['equivalent']:>5} "
                f"{s['trivially_killed']:>7}"
            )
        score = self.score
        denom = len(self.runs) - len(self.equivalents)
        lines.append("")
        lines.append(
            f"mutation score: {len(self.killed)} killed / ({len(self.runs)} run - "
            f"{len(self.equivalents)} equivalent) = "
            + ("n/a" if score is None else f"{score:.1%}")
            + f" ({denom} counted; {len(self.trivially_killed)} of the kills trivial: the "
            "mutant also broke the sanity run)"
        )
        by: dict[str, int] = {}
        for r in self.killed:
            by[r.killed_by or "?"] = by.get(r.killed_by or "?", 0) + 1
        if by:
            lines.append(
                "first kills by checker: " + ", ".join(f"{c} {n}" for c, n in by.items())
            )
        if self.stopped:
            lines.append("STOPPED early: the mutants not run are not counted")
        if self.survivors:
            lines.append("")
            lines.append(f"survivors ({len(self.survivors)}):")
            for r in self.survivors:
                m = r.mutant
                lines.append(f"  {m.name}  [{m.function}]")
                lines.append(f"      - {_clip(m.before)}")
                lines.append(f"      + {_clip(m.after)}")
                lines.append(f"      ({r.note()})")
        if self.trivially_killed:
            lines.append("")
            lines.append(
                "trivially killed (broke the sanity run, then killed by a checker): "
                + ", ".join(r.mutant.name for r in self.trivially_killed)
            )
        for r in self.equivalents:
            lines.append(f"equivalent: {r.mutant.name}: {r.equivalent}")
        for r in self.wrong_equivalents:
            lines.append(f"ON THE EQUIVALENT LIST BUT KILLED: {r.mutant.name}")
        for name in self.stale_equivalents:
            lines.append(
                "stale equivalent review (no mutant has this key now: the statement "
                f"changed; re-review it): {name}"
            )
        if self.stale:
            lines.append(
                "impl changed since import, not mutated (re-run in a fresh process): "
                + ", ".join(self.stale)
            )
        for c, o in self.false_alarms:
            lines.append(f"FALSE ALARM {c} on the unmutated impl: {o.detail}")
        return "\n".join(lines)


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_mutation(
    budget: str | float = "smoke",
    *,
    seed: int = 0,
    operators: Iterable[str] | None = None,
    limit: int | None = -1,
    checkers: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    control: bool = True,
    progress: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> MutationReport:
    """Generate impl's mutants, sample them, and run the checkers against each.

    Args:
        budget: ``smoke`` / ``pr`` / ``nightly`` (the kill matrix's per-cell work, and a
            default sample, :data:`MUTATE_LIMITS`) or a number of seconds: with a ``limit``
            (or ``names``) the seconds are split into work per cell as the kill matrix
            does; without, they choose how many mutants run at smoke's work per cell.  Both
            go through the work's nominal time, never a measurement of this machine.
        seed: sampling seed and checker seed.
        operators: the operators (default: all).
        limit: at most this many mutants (-1: the budget's default, :data:`MUTATE_LIMITS`;
            None: all).
        checkers: checker names (default: the registry's, cheapest first).
        names: exactly these mutants (by name; no sampling).
        control: first run every checker once on the unmutated impl (a kill there is a
            false alarm, which makes the kills worthless).
        progress: called with one line per mutant.
        should_stop: polled between mutants; True ends the campaign (``stopped``).

    Raises:
        ValueError: an unknown budget, operator, checker or mutant name.
    """
    t0 = time.perf_counter()
    say = progress or (lambda _line: None)
    ops = list(OPERATORS) if operators is None else list(operators)
    every = generate_mutants(ops)
    generated: dict[str, int] = {op: 0 for op in ops}
    for m in every:
        generated[m.operator] += 1
    order = ordered_checkers(checkers)
    if checkers is not None:
        unknown = [c for c in checkers if c not in available_checkers()]
        if unknown:
            raise ValueError(
                f"unknown checker(s) {', '.join(unknown)}; known: "
                f"{', '.join(available_checkers())}"
            )
    preset = isinstance(budget, str) and budget in MUTATE_LIMITS
    seconds = 0.0
    if not preset:
        try:
            seconds = float(budget)
        except ValueError:
            raise ValueError(
                f"unknown budget {budget!r}; use smoke, pr, nightly or a number of seconds"
            ) from None
        if not (seconds > 0 and math.isfinite(seconds)):
            raise ValueError(f"budget must be a positive number of seconds, got {budget!r}")
    by_default = names is None and limit == -1
    if names is not None:
        by_name = {m.name: m for m in every}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ValueError(f"no such generated mutant(s): {', '.join(missing)}")
        sampled = [by_name[n] for n in names]
    else:
        if limit == -1:
            if preset:
                limit = MUTATE_LIMITS[str(budget)]
            else:
                # The seconds choose how many mutants run, each at smoke's work per cell,
                # through the work's nominal time: the same number gives the same sample and
                # the same verdicts on any machine (a slow one takes longer).
                per_mutant = len(order) * resolve_budget("smoke").cell.nominal_seconds
                limit = max(1, int(seconds / max(per_mutant, 1e-9)))
        sampled = sample_mutants(every, limit, seed)
    if preset:
        mb = resolve_budget(str(budget))
    elif by_default:
        mb = dataclasses.replace(resolve_budget("smoke"), name=f"{seconds:g}s")
    else:  # the mutants are given: the seconds become work per cell, as in the matrix
        mb = resolve_budget(seconds, mutants=max(1, len(sampled)), checkers=len(order))
    report = MutationReport(
        mb.name, seed, order, ops, generated, sampled, limit=limit, stale=stale_functions()
    )
    report.stale_equivalents = stale_equivalents()
    stop = should_stop or (lambda: False)
    if control:
        for c in order:
            if stop():
                break
            out = run_checker(c, NO_MUTANT, seed, mb.false_alarm)
            report.control.append((c, out))
            say(f"control {c}: {'FALSE ALARM' if out.killed else out.verdict}")
    say("coverage of the probes on the unmutated impl ...")
    coverage = probe_coverage()
    cell: CellBudget = mb.cell
    for i, m in enumerate(sampled):
        if stop():
            report.stopped = True
            break
        run = _run_one(m, order, seed, cell, coverage)
        report.runs.append(run)
        done = i + 1
        elapsed = time.perf_counter() - t0
        eta = elapsed / done * (len(sampled) - done)
        what = (
            f"killed by {run.killed_by} in {run.kill.seconds:.2f}s"
            if run.kill is not None
            else run.status
        )
        say(f"[{done}/{len(sampled)}] {m.name}: {what} (ETA {eta:.0f} s)")
    report.seconds = time.perf_counter() - t0
    return report


def _run_one(
    m: GeneratedMutant,
    order: Sequence[str],
    seed: int,
    cell: CellBudget,
    coverage: dict[str, Hits],
) -> MutantRun:
    t0 = time.perf_counter()
    probes = probes_for(m, coverage, probe_limit(cell))
    sanity = sanity_check(m)
    mutant = m.as_mutant(probes)
    outcomes: list[tuple[str, CheckOutcome]] = []
    killed_by: str | None = None
    for c in order:
        out = run_checker(c, mutant, seed, cell)
        outcomes.append((c, out))
        if out.killed:
            killed_by = c
            break
    reason = EQUIVALENT.get(m.key)
    status = "killed" if killed_by else "equivalent" if reason is not None else "survived"
    return MutantRun(
        m, status, killed_by, outcomes, probes, sanity, reason, time.perf_counter() - t0
    )


@contextmanager
def stop_on_sigint() -> Iterator[Callable[[], bool]]:
    """While the block runs, the first Ctrl-C only sets a flag (returned as a poll
    function): the campaign stops after the mutant under way; a second one interrupts."""
    hit: list[bool] = []

    def handler(_sig: int, _frame: Any) -> None:
        if hit:
            raise KeyboardInterrupt
        hit.append(True)

    try:
        old = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: no handler, nothing to stop
        yield lambda: False
        return
    try:
        yield lambda: bool(hit)
    finally:
        signal.signal(signal.SIGINT, old)
