"""Field hooks of the race detector: data descriptors that record attribute accesses.

A watched class gets one data descriptor per instance field (its ``__slots__``, dataclass
fields and the ``self.X = ...`` targets of its methods): a slot's descriptor wraps the
original member descriptor, a ``__dict__`` field's reads and writes the instance dict, so
the storage is unchanged.  Each access looks up the calling OS thread in :data:`_ACTIVE`
and, when it belongs to a detected run, reports itself to that run's recorder.

The descriptors are installed only while a detected run (or a race search) needs them,
reference counted, and removed after: with no detector running, impl's classes are exactly
as written and their accesses cost nothing extra.  Other threads of the process that use
impl meanwhile (not in :data:`_ACTIVE`) pay one dictionary lookup per access.
"""

from __future__ import annotations

import ast
import collections
import dataclasses
import dis
import enum
import functools
import inspect
import sys
import textwrap
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from types import CodeType
from typing import Any, Protocol

from greenlet import getcurrent

from ._platform import (
    ControlledPlatform,
    _CCell,
    _CCond,
    _CHandle,
    _CMutex,
    _CNotifier,
    _CPoller,
)

__all__ = ["Recorder", "impl_classes", "tracking"]

_MISSING: Any = object()
#: Values whose reads are not recorded: the platform's objects synchronise by themselves.
PLATFORM_TYPES: frozenset[type] = frozenset(
    {_CCell, _CMutex, _CCond, _CNotifier, _CPoller, _CHandle, ControlledPlatform}
)


#: Containers whose *contents* are watched too: an access to ``obj.field`` that holds one
#: also records an access to the pseudo-field ``Class.field[]`` (its items), a write when
#: the accessing code mutates it in place (see :func:`_mutates`), else a read.
CONTAINER_TYPES: frozenset[type] = frozenset(
    {list, dict, set, collections.deque, collections.OrderedDict}
)
#: Methods of the container types that change their contents.
MUTATORS: frozenset[str] = frozenset({
    "append", "appendleft", "extend", "extendleft", "insert", "remove", "pop", "popleft",
    "popitem", "clear", "add", "discard", "update", "setdefault", "sort", "reverse",
    "rotate", "__setitem__", "__delitem__", "__iadd__", "difference_update",
    "intersection_update", "symmetric_difference_update", "move_to_end",
})
_SUBSCR_WRITES = frozenset({"STORE_SUBSCR", "DELETE_SUBSCR"})
_JUMPS = frozenset(dis.hasjrel) | frozenset(dis.hasjabs)
#: Statement ends that may also occur inside a key expression (a call computing the key).
_EXPRESSION_OPS = frozenset({"CALL", "CALL_FUNCTION", "CALL_METHOD", "PRECALL"})
_STATEMENT_ENDS = frozenset(
    {"STORE_FAST", "STORE_ATTR", "STORE_NAME", "POP_TOP", "RETURN_VALUE", "CALL",
     "CALL_FUNCTION", "CALL_METHOD", "PRECALL", "GET_ITER", "FOR_ITER"}
)
#: Where a scan for the store fed by a container load gives up: a statement's end that
#: cannot be inside the key expression (a call can be: it may compute the key).
_SCAN_STOPS = _STATEMENT_ENDS - _EXPRESSION_OPS


@functools.lru_cache(maxsize=1024)
def _instructions(code: CodeType) -> tuple[dict[int, int], tuple[dis.Instruction, ...]]:
    instrs = tuple(dis.get_instructions(code))
    return {ins.offset: i for i, ins in enumerate(instrs)}, instrs


@functools.lru_cache(maxsize=8192)
def _mutates_at(code: CodeType, lasti: int) -> bool:
    """Whether the attribute load at ``lasti`` in ``code`` feeds an in-place mutation of
    the container it loads: ``x.F.append(...)`` (any of :data:`MUTATORS`), ``x.F[k] = v``,
    ``del x.F[k]``, ``x.F[k] += v``.  Anything else (iteration, ``len``, ``in``, a
    subscript read, passing it on) reads the contents.  Read from the bytecode, so aliasing
    (``q = x.F; q.append(...)``) counts as a read: the detector under-reports, never
    over-reports."""
    index, instrs = _instructions(code)
    i = index.get(lasti)
    if i is None:
        return False
    nxt = instrs[i + 1] if i + 1 < len(instrs) else None
    if nxt is None:
        return False
    if nxt.opname in ("LOAD_METHOD", "LOAD_ATTR") and nxt.argval in MUTATORS:
        return True
    # x.F[k] = v / del x.F[k], whatever the key expression (a call too: F[Kind(c)] = v):
    # follow the stack after the container until the store finds the key right above it.
    depth = 0  # values above the container
    for ins in instrs[i + 1 : i + 40]:
        if ins.opname in _SUBSCR_WRITES and depth == 1:
            return True
        if ins.opcode in _JUMPS or ins.opname in _SCAN_STOPS:
            break
        try:
            depth += dis.stack_effect(
                ins.opcode, ins.arg if ins.opcode >= dis.HAVE_ARGUMENT else None, jump=False
            )
        except (ValueError, TypeError):
            break
        if depth < 0:  # the container itself was consumed: not a subscript store
            break
    # x.F[k] += v: the container and key are duplicated, read, and stored back.
    window = instrs[i + 1 : i + 40]
    for ins in window:
        if ins.opcode in _JUMPS or ins.opname in _SCAN_STOPS:
            break
        if ins.opname in ("DUP_TOP_TWO", "COPY"):
            return any(k.opname in _SUBSCR_WRITES for k in window)
    return False


def _mutates(depth: int) -> bool:
    f = sys._getframe(depth + 1)
    return _mutates_at(f.f_code, f.f_lasti)


class _Content:
    """The value recorded for a container-contents access (never a platform object)."""

    __slots__ = ()


_CONTENT = _Content()


class Recorder(Protocol):
    """What a hooked access reports to (the race detector)."""

    def _access(self, t: int, obj: object, label: str, write: bool, value: object) -> None: ...


#: greenlet -> (detector, controlled thread index), for the threads of running detectors
#: (each controlled thread is a greenlet; on a plain OS thread ``getcurrent`` is that
#: thread's main greenlet, never a key).  Read by every hooked access; written when a
#: detected run's thread starts/ends.
_ACTIVE: dict[object, tuple[Recorder, int]] = {}
_get_ident = getcurrent


class _SlotField:
    """Wraps a ``__slots__`` member descriptor: the same storage, accesses recorded."""

    __slots__ = ("label", "orig")

    def __init__(self, orig: Any, label: str) -> None:
        self.orig = orig
        self.label = label

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        if obj is None:
            return self
        v = self.orig.__get__(obj, owner)
        a = _ACTIVE.get(_get_ident())
        if a is not None and type(v) not in PLATFORM_TYPES:
            a[0]._access(a[1], obj, self.label, False, v)
            if type(v) in CONTAINER_TYPES:
                a[0]._access(a[1], obj, self.label + "[]", _mutates(1), _CONTENT)
        return v

    def __set__(self, obj: object, value: Any) -> None:
        self.orig.__set__(obj, value)
        a = _ACTIVE.get(_get_ident())
        if a is not None:
            a[0]._access(a[1], obj, self.label, True, value)

    def __delete__(self, obj: object) -> None:
        self.orig.__delete__(obj)


class _DictField:
    """A data descriptor over the instance ``__dict__`` entry of the same name."""

    __slots__ = ("default", "label", "name")

    def __init__(self, name: str, default: Any, label: str) -> None:
        self.name = name
        self.default = default
        self.label = label

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        if obj is None:
            return self if self.default is _MISSING else self.default
        try:
            v = obj.__dict__[self.name]
        except KeyError:
            if self.default is _MISSING:
                raise AttributeError(
                    f"{type(obj).__name__!r} object has no attribute {self.name!r}"
                ) from None
            v = self.default
        a = _ACTIVE.get(_get_ident())
        if a is not None and type(v) not in PLATFORM_TYPES:
            a[0]._access(a[1], obj, self.label, False, v)
            if type(v) in CONTAINER_TYPES:
                a[0]._access(a[1], obj, self.label + "[]", _mutates(1), _CONTENT)
        return v

    def __set__(self, obj: object, value: Any) -> None:
        obj.__dict__[self.name] = value
        a = _ACTIVE.get(_get_ident())
        if a is not None:
            a[0]._access(a[1], obj, self.label, True, value)

    def __delete__(self, obj: object) -> None:
        try:
            del obj.__dict__[self.name]
        except KeyError:
            raise AttributeError(self.name) from None


def _assigned_fields(cls: type) -> list[str]:
    """``self.X`` assignment targets in the methods of ``cls`` (from its source)."""
    try:
        src = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return []
    names: list[str] = []

    def target(node: ast.AST) -> None:
        if isinstance(node, (ast.Tuple, ast.List)):
            for elt in node.elts:
                target(elt)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
            and node.attr not in names
        ):
            names.append(node.attr)

    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Assign):
            for t in node.targets:
                target(t)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            target(node.target)
    return names


@functools.lru_cache(maxsize=256)
def _fields_of(cls: type) -> tuple[str, ...]:
    """The instance fields of ``cls``: its slots, dataclass fields and assigned attributes,
    minus names the class defines as methods or properties."""
    names: list[str] = []
    slots = cls.__dict__.get("__slots__", ())
    for n in (slots,) if isinstance(slots, str) else slots:
        if n not in ("__weakref__", "__dict__"):
            names.append(n)
    if dataclasses.is_dataclass(cls):
        names.extend(f.name for f in dataclasses.fields(cls) if f.name not in names)
    names.extend(n for n in _assigned_fields(cls) if n not in names)
    out = []
    for n in names:
        attr = cls.__dict__.get(n, _MISSING)
        if attr is _MISSING or type(attr).__name__ == "member_descriptor":
            out.append(n)
        elif not callable(attr) and not hasattr(attr, "__get__"):
            out.append(n)  # a class-level default value
    return tuple(out)


@functools.cache
def impl_classes() -> tuple[type, ...]:
    """Every class of :mod:`aioctx_verify.impl` with mutable instances: the AioContext, its
    BHs, handlers and notifiers, the lock, IOThreads, clocks and timers, the thread pool
    and its requests, the dataplane device (enums, exceptions, protocols, frozen value
    records and the real platform's classes left out)."""
    from aioctx_verify.impl import _context, _dataplane, _iothread, _lock, _threadpool, _timers

    out: list[type] = []
    for mod in (_lock, _context, _timers, _iothread, _threadpool, _dataplane):
        for _, cls in inspect.getmembers(mod, inspect.isclass):
            if cls.__module__ != mod.__name__ or cls in out:
                continue
            if issubclass(cls, (enum.Enum, BaseException)) or getattr(cls, "_is_protocol", False):
                continue
            params = getattr(cls, "__dataclass_params__", None)
            if params is not None and params.frozen:
                continue
            out.append(cls)
    return tuple(out)


class _Hooks:
    """Installs and removes the field descriptors; reference counted, so nested and
    concurrent detected runs share one installation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[type, int] = {}
        self._saved: dict[type, list[tuple[str, Any]]] = {}

    def add(self, classes: Iterable[type]) -> None:
        with self._lock:
            for cls in classes:
                n = self._users.get(cls, 0)
                self._users[cls] = n + 1
                if n == 0:
                    self._install(cls)

    def remove(self, classes: Iterable[type]) -> None:
        with self._lock:
            for cls in classes:
                n = self._users[cls] - 1
                if n:
                    self._users[cls] = n
                    continue
                del self._users[cls]
                for name, orig in reversed(self._saved.pop(cls)):
                    if orig is _MISSING:
                        delattr(cls, name)
                    else:
                        setattr(cls, name, orig)

    def _install(self, cls: type) -> None:
        saved: list[tuple[str, Any]] = []
        for name in _fields_of(cls):
            orig = cls.__dict__.get(name, _MISSING)
            label = f"{cls.__qualname__}.{name}"
            desc: object
            if orig is not _MISSING and type(orig).__name__ == "member_descriptor":
                desc = _SlotField(orig, label)
            else:
                desc = _DictField(name, orig, label)
            saved.append((name, orig))
            setattr(cls, name, desc)
        self._saved[cls] = saved


_HOOKS = _Hooks()


@contextmanager
def tracking(classes: Iterable[type]) -> Iterator[None]:
    """Keep the field hooks of ``classes`` installed for the block (many runs share them)."""
    cls = tuple(classes)
    _HOOKS.add(cls)
    try:
        yield
    finally:
        _HOOKS.remove(cls)
