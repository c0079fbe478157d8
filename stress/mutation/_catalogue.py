"""Mutants: historical QEMU concurrency bugs (and seeded rule breaks) re-applied to impl.

Why it exists: a property check that kills no mutant is not yet a check (DESIGN.md section 5).
Each :class:`Mutant` re-introduces one bug from shared/reference/qemu-bugs.md (citing the
upstream commit) or breaks one rule of P1/P2/P3, for the length of one ``with
mutant.apply():`` block, and the kill matrix (:mod:`stress.mutation._matrix`) measures which checker
notices.  impl's source carries no ``if BUG:`` switch: ``apply()`` swaps class attributes with
:func:`unittest.mock.patch.object` and puts the originals back on exit.

Prior art: mutation testing (mutmut, PIT) applies one syntactic change per run; here the
change is semantic and chosen by hand, one per known bug.  Two ways to build a patched
method:

* *source edits* (:func:`rewrite`): the method's current source with a few exact text
  edits, compiled in its module's namespace.  An edit whose anchor is missing or ambiguous
  raises :class:`MutantError`, so a mutant cannot silently stop applying when impl changes.
  The compiled code keeps impl's line numbers and is named ``[<mutant>]<file>`` in traces.
* *replacements*: a small hand-written function, for methods of a few lines (``aio_notify``)
  or for behaviour impl never had (a barging lock, an inline "coroutine wake").

Each mutant also names the probe programs (:mod:`stress.mutation._probes`) that exercise the
code it changes, as mutation tools run only the tests that cover the mutated line.
"""

from __future__ import annotations
import __future__

import inspect
import linecache
import os
import sys
import textwrap
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from types import CodeType, FunctionType
from typing import Any
from unittest import mock

from aioctx_verify import impl
from aioctx_verify.impl import (
    BH,
    AioContext,
    AtomicCell,
    Fence,
    IOThread,
    Ordering,
    RFifoLock,
    TraceEvent,
)
from aioctx_verify.impl import _iothread as _iothread_mod
from aioctx_verify.impl import qemu as _qemu_mod
from aioctx_verify.impl._errors import AioCtxError
from aioctx_verify.impl._threadpool import ThreadPool
from aioctx_verify.vocab import PropertyName

from ._contract import PropertyFailure

__all__ = [
    "CATALOGUE",
    "NO_MUTANT",
    "Mutant",
    "MutantError",
    "UseAfterFree",
    "mutant_by_name",
    "poison",
    "rewrite",
]

_RELAXED = Ordering.RELAXED
_SEQ = Ordering.SEQ_CST


class MutantError(AioCtxError):
    """A mutant no longer applies to impl (an edit's anchor text is missing or ambiguous)."""


class UseAfterFree(PropertyFailure):
    """Raised by a poisoned ("freed") object when anything reads it (a P2 violation: a
    BH or context freed while a schedule or a walk still used it)."""

    def __init__(self, message: str) -> None:
        super().__init__("P2", message)


class _Freed:
    """A poison value: any attribute read raises :class:`UseAfterFree` naming ``what``."""

    __slots__ = ("_what",)

    def __init__(self, what: str) -> None:
        object.__setattr__(self, "_what", what)

    def __getattr__(self, name: str) -> Any:
        raise UseAfterFree(f"P2 use-after-free: {self._what} was read (.{name}) after it was freed")

    def __repr__(self) -> str:
        return f"<freed {self._what}>"


def poison(obj: object, attr: str, what: str) -> None:
    """Model ``free(obj)``: later reads of ``obj.attr`` raise :class:`UseAfterFree`."""
    setattr(obj, attr, _Freed(what))


# ----------------------------------------------------------------------------------------
# Building patched methods
# ----------------------------------------------------------------------------------------
Edit = tuple[str, str]


def _snapshot_sources() -> dict[str, list[str]]:
    """impl's source lines as loaded: taken when this module is imported (impl already is),
    so a later edit of impl's files on disk cannot shift what :func:`rewrite` reads."""
    snap: dict[str, list[str]] = {}
    for name, mod in list(sys.modules.items()):
        path = getattr(mod, "__file__", None)
        if (name == "impl" or name.startswith("impl.")) and path:
            lines = linecache.getlines(path)
            if lines:
                snap[path] = list(lines)
    return snap


_SOURCES = _snapshot_sources()


def _shape(code: CodeType) -> tuple[Any, ...]:
    """What a function compiles to, without positions, names of the file or docstring."""
    nested = tuple(_shape(c) for c in code.co_consts if isinstance(c, CodeType))
    return (code.co_code, code.co_names, code.co_varnames, code.co_argcount, nested)


def _compile(func: Callable[..., Any], src: str, first: int, filename: str,
             extra: dict[str, Any] | None) -> FunctionType:
    module = sys.modules[func.__module__]
    text = "\n" * (first - 1) + src
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    code = compile(text, filename, "exec", flags=__future__.annotations.compiler_flag)
    namespace = dict(vars(module))
    namespace.update(extra or {})
    local: dict[str, Any] = {}
    exec(code, namespace, local)
    fn = local[func.__name__]
    assert isinstance(fn, FunctionType)
    fn.__qualname__ = func.__qualname__
    return fn


def rewrite(
    func: Callable[..., Any],
    edits: list[Edit],
    *,
    mutant: str,
    extra: dict[str, Any] | None = None,
) -> FunctionType:
    """``func`` compiled from its source with each ``(old, new)`` edit applied once.

    The source is impl's as it was when impl was imported (a snapshot), and is checked to
    compile to ``func``'s own code before any edit: a mutant never patches in code built
    from other text than the code it replaces.

    Raises:
        MutantError: an ``old`` text occurs zero or several times in the source, or the
            source does not match the loaded function.
    """
    code = func.__code__
    path = code.co_filename
    lines = _SOURCES.get(path)
    if lines is None:
        linecache.checkcache(path)
        lines = _SOURCES.setdefault(path, list(linecache.getlines(path)))
    first = code.co_firstlineno
    src = textwrap.dedent("".join(inspect.getblock(lines[first - 1 :])))
    module = sys.modules[func.__module__]
    mod_path = module.__file__ or func.__module__
    base = os.path.basename(mod_path)
    same = _compile(func, src, first, os.path.join(os.path.dirname(mod_path), f"[=]{base}"), extra)
    if _shape(same.__code__) != _shape(code):
        raise MutantError(
            f"mutant {mutant}: the source of {func.__qualname__} in {path} does not compile to "
            "the loaded function (impl's file changed since it was imported?); re-run in a "
            "fresh process"
        )
    for old, new in edits:
        n = src.count(old)
        if n != 1:
            raise MutantError(
                f"mutant {mutant}: expected {old!r} exactly once in {func.__qualname__}, "
                f"found it {n} times; impl changed, update the mutant's edit"
            )
        src = src.replace(old, new)
    filename = os.path.join(os.path.dirname(mod_path), f"[{mutant}]{base}")
    return _compile(func, src, first, filename, extra)


Patch = tuple[object, str, Callable[[], object]]


@contextmanager
def _patched(patches: list[Patch]) -> Iterator[None]:
    """Swap every ``owner.name`` for ``make()`` for the block; the originals come back."""
    with ExitStack() as stack:
        for owner, name, make in patches:
            stack.enter_context(mock.patch.object(owner, name, make()))
        yield


def _orig(owner: type, name: str) -> Any:
    """The unpatched attribute as stored on the class (not a bound or inherited lookup)."""
    return owner.__dict__[name]


# ----------------------------------------------------------------------------------------
# Pieces that patched code calls
# ----------------------------------------------------------------------------------------
_dispatching_flags: weakref.WeakKeyDictionary[AioContext, AtomicCell[bool]] = (
    weakref.WeakKeyDictionary()
)


def _dispatching(ctx: AioContext) -> AtomicCell[bool]:
    """QEMU 2.1's ``ctx->dispatching``: one word per context, shared by all its pollers."""
    cell = _dispatching_flags.get(ctx)
    if cell is None:
        cell = _dispatching_flags.setdefault(ctx, ctx.platform.atomic(False, "ctx.dispatching"))
    return cell


def _trace_notify(ctx: AioContext) -> None:
    tr = ctx.platform.tracer
    if tr is not None:
        tr(TraceEvent("notify", ctx.platform.current_thread(), ctx.id, 1))


def _notify_dispatching(self: AioContext) -> None:
    """2014 ``aio_notify`` (0ceb849bd): skip the write while the flag says "dispatching"."""
    self.platform.fence(Fence.MB)
    if not _dispatching(self).load(_RELAXED):
        self._raw_notifier.set()
        self.notified.exchange(True, _SEQ)
        _trace_notify(self)


def _notify_bug1(self: AioContext) -> None:
    """aio_notify_accept.promela -DBUG1: ``notified`` published before the event is set."""
    self.platform.fence(Fence.MB)
    if self.notify_me.load(_RELAXED):
        self.notified.exchange(True, _SEQ)
        self._raw_notifier.set()
        _trace_notify(self)


def _notify_bug2(self: AioContext) -> None:
    """aio_notify_accept.promela -DBUG2: no event write when ``notified`` is already set."""
    self.platform.fence(Fence.MB)
    if self.notify_me.load(_RELAXED):
        if not self.notified.load(_SEQ):
            self._raw_notifier.set()
        self.notified.exchange(True, _SEQ)
        _trace_notify(self)


#: The flag is set after the wait, just before the notifier is accepted.
_DISPATCHING_EDIT: list[tuple[str, str]] = [
    (
        "accepted = self.aio_notify_accept()",
        "_dispatching(self).store(True, _RELAXED); accepted = self.aio_notify_accept()",
    )
]


def _make_dispatching_poll() -> Callable[[AioContext, bool], bool]:
    """``_poll_locked`` wrapped in the flag's save / set / restore.  When the iteration's
    body is a method of its own (``_poll_body``), that one carries the edit and is patched
    separately; otherwise ``_poll_locked`` itself is rewritten here."""
    if _POLL == "_poll_locked":
        inner: Callable[[AioContext, bool], bool] = rewrite(
            AioContext._poll_locked,
            _DISPATCHING_EDIT,
            mutant="dispatching-flag-shared",
            extra={"_dispatching": _dispatching},
        )
    else:
        inner = _orig(AioContext, "_poll_locked")

    def _poll_locked(self: AioContext, blocking: bool) -> bool:
        # aio_set_dispatching(ctx, !blocking) on entry, the saved value back on exit.
        flag = _dispatching(self)
        was = flag.load(_RELAXED)
        flag.store(not blocking, _RELAXED)
        if blocking:
            self.platform.fence(Fence.MB)
        try:
            result: bool = inner(self, blocking)
            return result
        finally:
            flag.store(was, _RELAXED)

    return _poll_locked


def _store_after_mb(bh: BH, ctx: AioContext) -> bool:
    """2014 ``qemu_bh_schedule`` after its early return: idle = 0; smp_mb(); scheduled = 1."""
    bh.idle.store(False, _RELAXED)
    ctx.platform.fence(Fence.MB)
    bh.scheduled.store(True, _RELAXED)
    return True


def _racy_load(ctx: AioContext) -> None:
    """Make the re-read of ``bh->ctx`` a point where the scheduler may switch threads.

    In C the load of ``bh->ctx`` after the store to ``scheduled`` is a plain shared-memory
    read racing with ``free(bh)`` in the owner thread.  In Python a plain attribute read is
    no scheduling point of the controlled platform, so without this the window of
    924fe1293c would be closed by construction; a yield here is exactly "the thread can be
    preempted between the two accesses" (on real threads: it releases the GIL)."""
    ctx.platform.yield_now()


def _take_context(ctx: AioContext, bh: BH) -> None:
    """``qemu_bh_schedule`` that takes (and drops) the context lock, blocking on its owner."""
    if not bh.dummy:
        ctx.acquire()
        ctx.release()


def _reclaim_and_free(ctx: AioContext) -> None:
    """Reclaim deleted BHs now, in whatever walk this is, and "free" them (poison)."""
    freed: list[BH] = []
    with ctx._bh_lock:
        keep: list[BH] = []
        pending = 0
        for bh in ctx._bhs:
            if bh.deleted:
                if not bh.scheduled.load(_RELAXED):
                    freed.append(bh)
                    continue
                pending += 1
            keep.append(bh)
        ctx._bhs = keep
        ctx._bh_deleted = pending
    for bh in freed:
        what = f"BH {bh.id} (reclaimed by a nested aio_bh_poll)"
        poison(bh, "scheduled", what)
        poison(bh, "ctx", what)


def _poll_unlocked(ctx: AioContext, timeout: int) -> Any:
    """Release the context around a blocking wait (the 2016 design) and take it back."""
    lock = ctx._lock
    if timeout == 0 or not lock.held_by_me():
        return ctx._poller.poll(timeout)
    depth = lock.depth
    for _ in range(depth):
        lock.unlock()
    try:
        return ctx._poller.poll(timeout)
    finally:
        for _ in range(depth):
            lock.lock()


def _barging_lock(self: RFifoLock, timeout: float | None = None) -> bool:
    """A recursive lock without tickets: a free lock goes to whoever asks first."""
    me = self._me()
    if self._nesting > 0 and self._owner == me:
        self._nesting += 1
        if self._platform.tracer is not None:
            self._trace("acquire", me, self._nesting)
        return True
    p = self._platform
    with self._mutex:
        if self._nesting > 0:
            ticket = self._tail
            self._tail += 1
            self._trace("lock_wait", me, ticket)
            deadline = None if timeout is None else p.monotonic_ns() + int(timeout * 1e9)
            while self._nesting > 0:
                if self._cb is not None:
                    self._cb()
                if deadline is None:
                    self._cond.wait()
                    continue
                left = deadline - p.monotonic_ns()
                if left <= 0:
                    self._trace("lock_abandon", me, ticket)
                    return False
                self._cond.wait(left / 1e9)
        self._owner = me
        self._nesting = 1
        if p.tracer is not None:  # under the mutex, as RFifoLock.lock traces its grants
            self._trace("acquire", me, 1)
    return True


def _make_barging_unlock() -> Callable[[RFifoLock], None]:
    refuse = _orig(RFifoLock, "unlock")  # the real lock's refusals (not held, not owner)

    def unlock(self: RFifoLock) -> None:
        me = self._me()
        depth = self._nesting
        if depth == 0 or self._owner != me:
            refuse(self)
            return
        if self._platform.tracer is not None:
            self._trace("release", me, depth - 1)
        if depth > 1:
            self._nesting = depth - 1
            return
        with self._mutex:
            self._nesting = 0
            self._owner = None
            self._cond.notify_all()

    return unlock


def _kick_nonsticky(self: AioContext) -> None:
    """The 2014 contention callback: a bare ``aio_notify``, dropped between polls."""
    tr = self.platform.tracer
    if tr is not None:
        tr(TraceEvent("contention_kick", self.platform.current_thread(), self.id))
    self.aio_notify()


def _kick_none(self: AioContext) -> None:
    """No contention callback at all: nothing wakes a poller that holds the context."""


def _make_enter_any_thread() -> Callable[[AioContext, str], bool]:
    enter = _orig(AioContext, "_enter")

    def _enter(self: AioContext, what: str) -> bool:
        """``in_aio_context_home_thread`` true for any thread: it polls without the lock."""
        try:
            implicit: bool = enter(self, what)
            return implicit
        except impl.NotOwnerError:
            return False

    return _enter


def _make_oneshot_inline() -> Callable[..., None]:
    schedule = _orig(AioContext, "bh_schedule_oneshot")

    def bh_schedule_oneshot(
        self: AioContext, cb: Callable[[Any], None], opaque: Any = None
    ) -> None:
        """``aio_co_wake`` of 5f50be9b58: a thread with no context of its own is taken to be
        running in this one, acquires it and runs the callback inline, outside aio_poll."""
        p = self.platform
        me = p.current_thread()
        if self._iothread is not None or me == self._home:
            schedule(self, cb, opaque)
            return
        bh = BH(self, cb, opaque, oneshot=True)
        tr = p.tracer
        if tr is not None:
            tr(TraceEvent("bh_new", me, self.id, bh.id, "oneshot"))
            tr(TraceEvent("bh_schedule_begin", me, self.id, bh.id))
            tr(TraceEvent("bh_schedule_end", me, self.id, bh.id, "new"))
        with self:
            if tr is not None:
                tr(TraceEvent("bh_run_begin", me, self.id, bh.id, bh.name))
            cb(opaque)
            if tr is not None:
                tr(TraceEvent("bh_run_end", me, self.id, bh.id, bh.name))

    return bh_schedule_oneshot


def _make_rerun_bh_poll() -> Callable[[AioContext], bool]:
    walk = _orig(AioContext, "_bh_poll")

    def _bh_poll(self: AioContext) -> bool:
        # Walk again while the last walk ran something: a BH rescheduled by its own
        # callback runs again in this same iteration.
        progress: bool = walk(self)
        again = progress
        passes = 0
        while again and passes < 8:
            again = walk(self)
            passes += 1
        return progress

    return _bh_poll


def _make_stop_flag() -> Callable[[IOThread], None]:
    return rewrite(
        IOThread.stop,
        [
            (
                "self.ctx.bh_schedule_oneshot(self._set_stopping)",
                "self._stopping = True; self.ctx.aio_notify()",
            )
        ],
        mutant="iothread-stop-flag",
    )


@contextmanager
def _stw_no_acquire(
    iothreads: Any = None, *, platform: Any = None, timeout: float | None = None
) -> Iterator[list[AioContext]]:
    """Stop-the-world that kicks every IOThread and assumes it paused, acquiring nothing."""
    its = list(iothreads) if iothreads is not None else impl.live_iothreads(platform)
    for it in its:
        it.ctx.notify_dummy_bh.schedule()
    yield [it.ctx for it in its]


# ----------------------------------------------------------------------------------------
# The catalogue
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mutant:
    """One bug, applied to impl for the length of ``with mutant.apply():``.

    Attributes:
        name: short id (also the model's bug flag, see :attr:`model_bug`).
        qemu_commit: the upstream commit(s) that introduced or fixed it, or ``seed-rule``.
        property: the property it breaks (None for :data:`NO_MUTANT`).
        description: one line: what the mutant changes.
        apply: a context manager factory that patches impl and restores it on exit.
        model_bug: the flag :func:`model.check_bug` takes for the model's counterpart.
        probes: names of the probe programs that exercise the changed code.
        source: ``historical`` (qemu-bugs.md), ``seed-rule`` (the brief) or ``added``.
        site: a generated mutant's impl file and the lines that exercise it (checkers
            that draw programs pick those that execute them); None for the catalogue's.
    """

    name: str
    qemu_commit: str
    property: PropertyName | None
    description: str
    apply: Callable[[], AbstractContextManager[None]]
    model_bug: str | None = None
    probes: tuple[str, ...] = ()
    source: str = "historical"
    site: tuple[str, tuple[int, ...]] | None = None

    def __repr__(self) -> str:
        return f"<Mutant {self.name} ({self.qemu_commit}, {self.property})>"


def _m(
    name: str,
    commit: str,
    prop: PropertyName,
    description: str,
    patches: Callable[[], list[Patch]],
    probes: tuple[str, ...],
    source: str = "historical",
    *,
    in_model: bool = True,
) -> Mutant:
    """A catalogue mutant; its model counterpart is the model's flag of the same name
    unless ``in_model`` is False (the model's flag of that name changes more)."""
    def apply() -> AbstractContextManager[None]:
        return _patched(patches())

    return Mutant(name, commit, prop, description, apply, name if in_model else None, probes,
                  source)


def _edit(
    owner: type, meth: str, mutant: str, edits: list[Edit], extra: dict[str, Any] | None = None
) -> Patch:
    return (owner, meth, lambda: rewrite(_orig(owner, meth), edits, mutant=mutant, extra=extra))


def _swap(owner: object, name: str, value: object) -> Patch:
    return (owner, name, lambda: value)


_CTX = AioContext
#: The method holding one loop iteration's body (impl may split it out of _poll_locked).
_POLL = "_poll_body" if "_poll_body" in AioContext.__dict__ else "_poll_locked"

CATALOGUE: tuple[Mutant, ...] = (
    # -- historical (shared/reference/qemu-bugs.md) -------------------------------------
    _m(
        "dispatching-flag-shared",
        "0ceb849bd / eabc977973",
        "LIVE",
        "one ctx->dispatching flag that every aio_poll sets and restores replaces notify_me; "
        "aio_notify skips the write while it is set",
        lambda: [
            _swap(_CTX, "aio_notify", _notify_dispatching),
            *(
                []
                if _POLL == "_poll_locked"
                else [
                    _edit(
                        _CTX,
                        _POLL,
                        "dispatching-flag-shared",
                        _DISPATCHING_EDIT,
                        {"_dispatching": _dispatching},
                    )
                ]
            ),
            (_CTX, "_poll_locked", _make_dispatching_poll),
        ],
        ("gsource_vcpu_chain", "gsource_vcpu"),
    ),
    _m(
        "notify-clear-late",
        "21a03d17f2",
        "LIVE",
        "aio_poll clears the notifier (aio_notify_accept) after dispatching BHs, handlers and "
        "timers instead of right after the wait",
        lambda: [
            _edit(
                _CTX,
                _POLL,
                "notify-clear-late",
                [
                    ("accepted = self.aio_notify_accept()", "accepted = False"),
                    (
                        "progress |= self.tlg.run_timers()",
                        "progress |= self.tlg.run_timers(); self.aio_notify_accept()",
                    ),
                ],
            )
        ],
        ("gsource_vcpu_chain", "gsource_vcpu"),
    ),
    _m(
        "notified-bug1",
        "05e514b1d4 (aio_notify_accept.promela -DBUG1)",
        "LIVE",
        "aio_notify publishes notified before writing the event: the event can stay set "
        "with notified clear, and the loop spins",
        lambda: [_swap(_CTX, "aio_notify", _notify_bug1)],
        ("bh_ping",),
    ),
    _m(
        "notified-bug2",
        "05e514b1d4 (aio_notify_accept.promela -DBUG2)",
        "LIVE",
        "aio_notify skips the event write when notified is already set: notified can stay "
        "set with a clear event, and every later wake-up is skipped",
        lambda: [_swap(_CTX, "aio_notify", _notify_bug2)],
        ("bh_ping",),
    ),
    _m(
        "bh-ctx-uaf",
        "924fe1293c",
        "P2",
        "qemu_bh_schedule reads bh->ctx after publishing scheduled, when the callback may "
        "already have freed the BH",
        lambda: [
            _edit(
                BH,
                "schedule",
                "bh-ctx-uaf",
                [("ctx.aio_notify()", "_racy_load(ctx); self.ctx.aio_notify()")],
                {"_racy_load": _racy_load},
            )
        ],
        ("bh_uaf",),
    ),
    _m(
        "bh-nonatomic-test-and-set",
        "2015 'aio: strengthen memory barriers for bottom half scheduling' (hash e8d3b1a25f "
        "recalled, unverified)",
        "P2",
        "qemu_bh_schedule tests scheduled with a plain load and returns early without a "
        "barrier (then smp_mb; store), instead of one atomic exchange",
        lambda: [
            _edit(
                BH,
                "schedule",
                "bh-nonatomic-test-and-set",
                [
                    (
                        "self.idle.store(False, _RELAXED)\n"
                        "    if not self.scheduled.exchange(True, _SEQ):",
                        "if not self.scheduled.load(_RELAXED) and _store_after_mb(self, ctx):",
                    )
                ],
                {"_store_after_mb": _store_after_mb},
            )
        ],
        ("bh_data_tso",),
        # The model's flag of this name also runs the callback before clearing the flag
        # (with one client, a lost schedule needs both changes), which this mutant does not
        # do: the model's counterexample is no counterexample of this mutant, so the model
        # and prove columns do not claim it.
        in_model=False,
    ),
    _m(
        "bh-flag-cleared-after-callback",
        "2015 'aio: strengthen memory barriers for bottom half scheduling' (hash e8d3b1a25f "
        "recalled, unverified)",
        "P2",
        "aio_bh_poll tests scheduled, runs the callback, and only then clears the flag: a "
        "schedule made while the callback runs is swallowed",
        lambda: [
            _edit(
                _CTX,
                "_bh_poll",
                "bh-flag-cleared-after-callback",
                [
                    (
                        "if not sched.load(_RELAXED) or not sched.exchange(False, _SEQ):",
                        "if not sched.load(_SEQ):",
                    ),
                    (
                        "bh.cb(bh.opaque)",
                        "bh.cb(bh.opaque); sched.store(False, _RELAXED)",
                    ),
                ],
            )
        ],
        ("bh_resched_during_run", "self_resched"),
    ),
    _m(
        "notify-me-after-scan",
        "5710a3e09f",
        "LIVE",
        "aio_poll publishes notify_me with a relaxed store and no full fence before scanning "
        "BHs and timers (visible under TSO: store-buffer / Dekker)",
        lambda: [
            _edit(
                _CTX,
                _POLL,
                "notify-me-after-scan",
                [
                    (
                        "notify_me.fetch_add(2, _RELAXED)",
                        "notify_me.store(notify_me.load(_RELAXED) + 2, _RELAXED)",
                    ),
                    ("p.fence(Fence.MB)", "pass"),
                ],
            )
        ],
        ("bh_wake_tso", "bh_ping_tso"),
    ),
    _m(
        "iothread-stop-flag",
        "2362a28ea1",
        "LIVE",
        "IOThread.stop sets a stopping flag and calls a bare aio_notify instead of scheduling "
        "a stop BH in the IOThread",
        lambda: [(IOThread, "stop", _make_stop_flag)],
        ("stop_busy", "bh_ping"),
    ),
    _m(
        "enable-external-no-kick",
        "2017 (aio: add missing aio_notify() to aio_enable_external())",
        "LIVE",
        "aio_enable_external drops its aio_notify, so a poller asleep without the external "
        "fds never re-arms them",
        lambda: [
            _edit(
                _CTX, "enable_external", "enable-external-no-kick", [("self.aio_notify()", "pass")]
            )
        ],
        ("external_enable",),
    ),
    _m(
        "threadpool-nested-poll",
        "3c80ca158c",
        "LIVE",
        "the thread pool's completion BH no longer re-arms itself before each callback, so a "
        "callback waiting in a nested aio_poll for another request hangs",
        lambda: [
            _edit(
                ThreadPool,
                "_completion_bh",
                "threadpool-nested-poll",
                [("self.completion_bh.schedule()", "pass")],
            )
        ],
        ("threadpool_nested",),
    ),
    _m(
        "nested-bh-poll-free",
        "648fb0ea5e",
        "P2",
        "deleted BHs are reclaimed (freed) at the end of every aio_bh_poll, nested ones too, "
        "while an outer walk still points at them",
        lambda: [
            _edit(
                _CTX,
                "_bh_poll",
                "nested-bh-poll-free",
                [
                    ("if self._walking_bh == 0 and self._bh_deleted:", "if self._bh_deleted:"),
                    ("self._reclaim_bhs()", "_reclaim_and_free(self)"),
                ],
                {"_reclaim_and_free": _reclaim_and_free},
            )
        ],
        ("delete_nested",),
    ),
    _m(
        "non-home-thread-poll",
        "3c18a92dc4",
        "P3",
        "a thread that neither holds nor owns the context is treated as its home thread and "
        "polls it without the lock",
        lambda: [(_CTX, "_enter", _make_enter_any_thread)],
        ("helper_poll",),
    ),
    _m(
        "current-ctx-misidentified",
        "5f50be9b58",
        "P3",
        "a thread without its own context counts as running in the target context: its "
        "one-shot wake-up runs the callback inline instead of in the context's aio_poll",
        lambda: [(_CTX, "bh_schedule_oneshot", _make_oneshot_inline)],
        ("main_ctx_oneshot",),
    ),
    # -- seed rules (the brief) ------------------------------------------------------------
    _m(
        "no-contention-callback",
        "seed-rule (RFifoLock contention callback, 2014)",
        "P1",
        "the context lock calls no contention callback: an acquirer waits behind an IOThread "
        "blocked in aio_poll with nothing to wake it",
        lambda: [_swap(_CTX, "_contention_cb", _kick_none)],
        ("acquire_storm",),
        "seed-rule",
    ),
    _m(
        "nonsticky-kick",
        "seed-rule (QEMU 2.4 notify_dummy_bh)",
        "LIVE",
        "the contention callback is a bare aio_notify, dropped when the owner is between "
        "polls (notify_me == 0)",
        lambda: [_swap(_CTX, "_contention_cb", _kick_nonsticky)],
        ("kick_race", "acquire_storm"),
        "seed-rule",
    ),
    _m(
        "lock-no-fifo",
        "seed-rule (RFifoLock tickets)",
        "P1",
        "the context lock barges: a free lock goes to whoever asks first, so a releasing "
        "IOThread re-takes it before the waiter",
        lambda: [
            _swap(RFifoLock, "lock", _barging_lock),
            (RFifoLock, "unlock", _make_barging_unlock),
        ],
        ("acquire_storm",),
        "seed-rule",
    ),
    _m(
        "release-by-non-owner-accepted",
        "seed-rule (rfifolock_unlock owner assertion)",
        "P1",
        "RFifoLock.unlock no longer checks the owner: another thread's release is accepted",
        lambda: [
            _edit(
                RFifoLock,
                "unlock",
                "release-by-non-owner-accepted",
                [("if self._owner_cell.load(_RELAXED) != me:", "if False:")],
            )
        ],
        ("non_owner_release",),
        "seed-rule",
    ),
    _m(
        "schedule-takes-lock",
        "seed-rule (qemu_bh_schedule is lock-free)",
        "P2",
        "qemu_bh_schedule takes the context lock, so it blocks while another thread holds it",
        lambda: [
            _edit(
                BH,
                "schedule",
                "schedule-takes-lock",
                [
                    (
                        "self.idle.store(False, _RELAXED)",
                        "_take_context(ctx, self); self.idle.store(False, _RELAXED)",
                    )
                ],
                {"_take_context": _take_context},
            )
        ],
        ("bh_ping",),
        "seed-rule",
    ),
    _m(
        "rerun-same-iteration",
        "seed-rule (aio_bh_poll walks once)",
        "P2",
        "aio_bh_poll walks the list again while BHs ran, so a BH rescheduled by its own "
        "callback runs again in the same iteration",
        lambda: [(_CTX, "_bh_poll", _make_rerun_bh_poll)],
        ("self_resched",),
        "seed-rule",
    ),
    _m(
        "deleted-bh-runs",
        "seed-rule (qemu_bh_delete unschedules)",
        "P2",
        "qemu_bh_delete marks the BH deleted but leaves it scheduled, so it still runs",
        lambda: [
            _edit(
                BH, "delete", "deleted-bh-runs", [("self.scheduled.store(False, _RELAXED)", "pass")]
            )
        ],
        ("delete_nested",),
        "seed-rule",
    ),
    # -- added so that each of P1/P2/P3's monitors kills at least three --------------------
    _m(
        "nested-acquire-no-owner-check",
        "seed-rule (rfifolock_lock: nest only if the caller is the owner)",
        "P1",
        "RFifoLock.lock nests whenever the lock is held, without checking that the caller "
        "owns it",
        lambda: [
            _edit(
                RFifoLock,
                "lock",
                "nested-acquire-no-owner-check",
                [
                    (
                        "if self._owner_cell.load(_RELAXED) == me and self._nesting > 0:",
                        "if self._nesting > 0:",
                    )
                ],
            )
        ],
        ("acquire_storm",),
        "added",
    ),
    _m(
        "recursive-release-drops-all",
        "seed-rule (rfifolock_unlock: only the outermost release hands over; cf. b660a84bbb)",
        "P1",
        "a nested release hands the lock over as if it were the outermost one (depth counts "
        "no longer balance)",
        lambda: [
            _edit(
                RFifoLock,
                "unlock",
                "recursive-release-drops-all",
                [("if depth > 1:", "if False:")],
            )
        ],
        ("acquire_storm",),
        "added",
    ),
    _m(
        "iothread-poll-without-acquire",
        "seed-rule (iothread_run acquires around aio_poll)",
        "P3",
        "the IOThread loop runs its aio_poll iterations without acquiring its context",
        lambda: [
            _edit(
                IOThread,
                "_run",
                "iothread-poll-without-acquire",
                [
                    ("ctx.acquire()", "pass"),
                    ("ctx.aio_poll(True)", "ctx._poll_locked(True)"),
                    ("ctx.release()", "pass"),
                ],
            )
        ],
        ("acquire_storm",),
        "added",
    ),
    _m(
        "poll-releases-lock",
        "seed-rule (2014: a blocking aio_poll keeps the context)",
        "P3",
        "a blocking aio_poll releases the context around its wait (the 2016 design) under "
        "the 2014 rule that it keeps it",
        lambda: [
            _edit(
                _CTX,
                _POLL,
                "poll-releases-lock",
                [("ready = self._poller.poll(timeout)", "ready = _poll_unlocked(self, timeout)")],
                {"_poll_unlocked": _poll_unlocked},
            )
        ],
        ("acquire_storm",),
        "added",
    ),
    _m(
        "nested-fastpath-no-owner-check",
        "seed-rule (owner check of the nested fast path)",
        "P3",
        "`with ctx:`'s untraced nested fast path nests whenever the lock is held, without "
        "checking the owner (only visible with tracing off)",
        lambda: [
            _edit(
                _CTX,
                "__enter__",
                "nested-fastpath-no-owner-check",
                [("mine and lock._nesting > 0", "lock._nesting > 0")],
            ),
            _edit(
                _CTX,
                "__exit__",
                "nested-fastpath-no-owner-check",
                [("mine and lock._nesting > 1", "lock._nesting > 1")],
            ),
        ],
        ("fastpath_exclusion",),
        "added",
    ),
    _m(
        "stop-the-world-skips-acquire",
        "seed-rule (stop-the-world acquires every context)",
        "P3",
        "stop_the_world kicks every IOThread and assumes it paused, without acquiring its "
        "context",
        lambda: [
            _swap(_iothread_mod, "stop_the_world", _stw_no_acquire),
            _swap(impl, "stop_the_world", _stw_no_acquire),
            _swap(_qemu_mod, "pause_all_iothreads", _stw_no_acquire),
        ],
        ("stop_world",),
        "added",
    ),
)

#: The unmutated impl, for false-alarm runs.
NO_MUTANT = Mutant(
    "none", "-", None, "the unmutated impl", lambda: _patched([]), None, (), "control"
)


def mutant_by_name() -> dict[str, Mutant]:
    return {m.name: m for m in CATALOGUE}
