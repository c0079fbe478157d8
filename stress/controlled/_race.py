"""Data races on plain fields: a happens-before detector on the controlled platform.

Why it exists: the seam's rule (``shared/DESIGN.md`` section 2,
:mod:`aioctx_verify.impl._platform`) is that every shared word impl reads or writes without
a lock is an :class:`~impl.AtomicCell`.
A plain attribute shared that way is invisible to the controlled scheduler (it is no
scheduling point and has no store buffer), so neither the explorers nor the weak memory
models can find what goes wrong with it.  This module finds such attributes: two accesses
of one field from two threads, at least one a write, with no happens-before between them.

Prior art: vector clocks per thread (Lamport 1978, Mattern 1989) and FastTrack (Flanagan
and Freund, PLDI 2009): a field's shadow keeps the epoch of its last write and the epoch of
every thread's last read since (a read vector, no read-shared epoch compression); an access
conflicts when a recorded epoch is not covered by the accessing thread's clock, and an
access in the epoch its thread last recorded is skipped (FastTrack's same-epoch rules).
Fences follow ThreadSanitizer's C11 fence model (a release fence lends its clock to the
thread's later relaxed stores, an acquire fence takes the clocks its thread's earlier
relaxed loads read).  The detector adds no scheduling point: a run makes the same decisions
with it on or off, so schedule strings are shared with the explorers.

Races a schedule hid (suspects).  Happens-before is exact for the schedule run: two
accesses a mutex happened to order are no race there, although another schedule leaves
them unordered (a statement moved out of its lock races only when the other thread's
critical section comes between it and its thread's next release).  So a run also records
*suspects*: two threads' accesses to one field, one writing, that the run ordered only
through mutex edges (not by a thread start or join, a condition wake-up, a notifier, an
atomic or a fence: a clock without the mutex edges tells) and with no mutex in common
held at both (Eraser's lockset rule, Savage et al., TOCS 1997; impl's context lock
counts as held from its grant to its last release).  A suspect is a hypothesis, never a
report: :func:`find_races` reruns the schedule up to the earlier access and holds that
thread back while another can run (RaceFuzzer's confirmation, Sen, PLDI 2008); a race
that run shows is an ordinary one, with that run's schedule, so nothing is reported that
no run showed.

Use::

    from aioctx_verify.stress import CORPUS
    from aioctx_verify.stress.controlled import find_races, replay_races

    r = find_races(CORPUS[11], strategy="pct", schedules=200, seed=0)
    print(r.summary())                      # each race: field, both stacks, schedule
    det = replay_races(r.races[0].schedule, {CORPUS[11].name: CORPUS[11]})  # same race

Happens-before edges (each *release* also starts a new epoch of its thread):

==========================================  ============================================
release side                                acquire side
==========================================  ============================================
mutex release (also a condition wait's)     the next acquire of that mutex
``Condition.notify`` of a waiter            that waiter's wake-up
atomic store release / acq_rel / seq_cst    a load acquire / seq_cst that reads it
   (the value's clock travels with it       (relaxed load: joined at the thread's next
   through a store buffer, and becomes      acquire fence only)
   visible when it reaches memory)
relaxed store after a release fence         as above, with the fence's clock
RMW: continues the release sequence of      an RMW acquires by its own ordering
   the value it replaces, and releases
   by its own ordering
creation of an atomic cell (its initial     a load that reads the initial value
   value)
``smp_wmb`` = release fence,                ``smp_rmb`` = acquire fence,
``smp_mb`` = both                           ``smp_mb`` = both
thread start (parent, before the spawn)     the child's first step
thread exit                                 ``join`` that returns
notifier ``set``                            ``test_and_clear`` that found it set, a
                                            ``poll`` that reports it readable
==========================================  ============================================

Approximations, on purpose: fences are C11 fences (seq_cst fences add no edge beyond
acq_rel: C11 gives them none either); a cell's creation counts as a release by its creator,
because impl publishes fresh objects through lists the detector does not see, and a reader
that reads a cell's initial value must have been handed the object through such a
publication; clearing a notifier forgets the sets it consumed.  For the same reason, fields
written only in their object's own ``__init__`` are *final* (Java's final-field rule,
JSR-133 section 17.5; QEMU gets it from ``atomic_rcu_set`` / ``atomic_rcu_read`` on its BH
list): reading one is no race; a conflict with a constructor write is held back and
reported only if the field is written again later in the run.

What is recorded: attribute reads and writes of instances of impl's classes (and of any
class passed as ``track``), through data descriptors installed on those classes only while
a detector runs (nothing is installed otherwise, so the hooks cost nothing when it is off;
the platform's own hooks cost one ``is None`` test per operation).  Not recorded: accesses
that read a platform object (an atomic cell, a mutex, the platform...: the object's own
operations are the synchronisation) and accesses outside the run's threads.  A field that
holds a container (list, dict, set, deque) has a second shadow for its *contents*,
``Class.field[]``: an access through the field is a write of the contents when the code
mutates the container in place (``.append``, ``.pop``, ``x.f[k] = v``, ``del x.f[k]``...,
told from the accessing bytecode), else a read of them, so an item added to a shared
queue outside its lock is a race like any plain word.  Mutation through an alias
(``q = x.f; q.append(v)``) counts as a read: the detector may miss a race there, it never
invents one.  Containers impl reads lock-free by design (QEMU's RCU-style lists) are named
in :data:`LOCKFREE_READS` with the functions that may do so; their writes stay checked.

A race is reported with the field (``Class.attr``), both accesses with their thread and a
short stack, and the schedule string of the run: :func:`replay_races` reruns it with the
detector on and reports the same race.  A reviewed allow-list (:data:`BENIGN`) names the
races impl keeps on purpose, one line of reason each; they are reported apart.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from types import CodeType, FrameType, MethodType
from typing import TYPE_CHECKING

from aioctx_verify.impl import Fence, Ordering

from ._platform import _HERE as _PLATFORM_FILE
from ._platform import ControlledPlatform, _format_where
from ._race_hooks import _ACTIVE, _HOOKS, PLATFORM_TYPES, _get_ident, impl_classes
from ._race_hooks import __file__ as _HOOKS_FILE
from ._schedule import Schedule

if TYPE_CHECKING:
    from ._platform import _CThread

__all__ = ["BENIGN", "LOCKFREE_READS", "Access", "Benign", "Race", "RaceDetector"]

_ACQUIRING = frozenset({Ordering.ACQUIRE, Ordering.ACQ_REL, Ordering.SEQ_CST})
_RELEASING = frozenset({Ordering.RELEASE, Ordering.ACQ_REL, Ordering.SEQ_CST})
#: Frames of at most this many functions are kept per access.
STACK_DEPTH = 4
#: Frames of the detector itself, left out of the stacks.
_OWN_FILES = frozenset({os.path.abspath(__file__), os.path.abspath(_HOOKS_FILE)})

VC = list[int]


# ---------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Access:
    """One side of a race."""

    thread: int
    thread_name: str
    kind: str  # "read" | "write"
    stack: tuple[str, ...]  # "impl/_lock.py:115 (lock)", innermost first
    step: int  # the platform's step count when it happened

    @property
    def function(self) -> str:
        """The function of the innermost frame (what an allow-list entry names)."""
        top = self.stack[0] if self.stack else ""
        return top[top.rfind("(") + 1 : -1] if top.endswith(")") else ""

    def describe(self) -> str:
        return (
            f"{self.kind:<5} by thread {self.thread} ({self.thread_name}) at step {self.step}: "
            + " <- ".join(self.stack)
        )


@dataclass(frozen=True, slots=True)
class Race:
    """Two conflicting accesses of one field, from two threads, unordered by happens-before.

    ``first`` is the earlier of the two in the run; ``schedule`` replays the run
    (:func:`replay_races`); ``benign`` is the allow-list's reason when the race is allowed.
    """

    field: str  # "RFifoLock._nesting"
    first: Access
    second: Access
    schedule: str
    benign: str = ""

    @property
    def key(self) -> tuple[str, frozenset[tuple[str, str]]]:
        """Same field, same two code locations and kinds: the same race (for de-duplication)."""
        sides = {(a.kind, a.stack[0] if a.stack else "?") for a in (self.first, self.second)}
        return (self.field, frozenset(sides))

    @property
    def message(self) -> str:
        return (
            f"data race on {self.field}: {self.first.kind} by thread {self.first.thread} "
            f"({self.first.thread_name}) and {self.second.kind} by thread {self.second.thread} "
            f"({self.second.thread_name}) with no happens-before between them"
        )

    def report(self) -> str:
        lines = [self.message, f"  {self.first.describe()}", f"  {self.second.describe()}"]
        lines.append(f"  schedule: {self.schedule}")
        if self.benign:
            lines.append(f"  allowed: {self.benign}")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Benign:
    """An allow-list entry: races on ``field`` where one side runs in ``where`` (a function
    name; empty: anywhere) are impl's on purpose, for ``reason``."""

    field: str
    where: str
    reason: str

    def matches(self, race: Race) -> bool:
        if race.field != self.field:
            return False
        return not self.where or self.where in (race.first.function, race.second.function)


_SNAPSHOT = (
    "DebugSnapshot is racy by design (see its docstring): a stall watch reads it without the "
    "lock and trusts only a state it sees persist; impl itself never reads the field unlocked"
)

#: The reviewed allow-list: races impl keeps on purpose, one line of reason each.  Every
#: entry is hit by ``tests/test_races.py`` (a stale entry fails there).
BENIGN: tuple[Benign, ...] = (
    Benign(
        "IOThread.iterations",
        "_run",
        "a progress statistic for observers (probes, tests): only its IOThread writes it and "
        "impl never reads it; plain on purpose, like _poll_wait_ns (no scheduling point)",
    ),
    Benign("AioContext._poll_wait_ns", "debug_snapshot", _SNAPSHOT),
    Benign("AioContext._polled", "debug_snapshot", _SNAPSHOT),
)


#: Containers impl *reads* without a lock by design: their writers are serialised (a lock
#: or the owner thread) and a reader sees either the old or the new contents, each whole,
#: as RCU readers do.  Reads of their items are not recorded; writes still are, so two
#: writers with no happens-before between them are a race.  Every entry is hit by
#: ``tests/test_races.py`` (a stale entry fails there).
LOCKFREE_READS: dict[str, tuple[frozenset[str], str]] = {
    "AioContext._bhs[]": (
        frozenset({"_bh_poll", "_compute_timeout"}),
        "QEMU's BH list: aio_bh_new publishes a BH under bh_lock (atomic_rcu_set) and "
        "aio_bh_poll / aio_compute_timeout walk it without the lock (atomic_rcu_read); a "
        "Python list append is the same whole-or-nothing publication",
    ),
    "TimerList._active[]": (
        frozenset({"deadline_ns", "run_timers"}),
        "QEMU's timerlist_has_timers: an atomic read of the list head before taking the "
        "lock; a stale 'empty' is corrected by timer_mod's notify, a stale 'not empty' by "
        "the locked re-check",
    ),
}


# ---------------------------------------------------------------------------------------
# The detector
# ---------------------------------------------------------------------------------------
_Stack = tuple[tuple[CodeType, int], ...]
_LastAccess = tuple[bool, frozenset[int], int, int, int]
#: The nesting depth of impl's context lock: written 1 on a grant, 0 on the last release
#: (see :meth:`RaceDetector._suspect`).
_CONTEXT_LOCK_DEPTH = "RFifoLock._nesting"
#: A conflict as recorded: field, earlier access (thread, kind, stack, step), later access.
_Conflict = tuple[str, int, str, _Stack, int, int, bool, _Stack, int]


class _Shadow:
    """A field's FastTrack state: the last write, and each thread's last read since.

    ``final``: every write so far ran in the object's own ``__init__``; conflicts with such
    a write wait in ``deferred`` until the field is written again (then they are races)."""

    __slots__ = (
        "deferred",
        "final",
        "reads",
        "w_clock",
        "w_ctor",
        "w_stack",
        "w_step",
        "w_thread",
    )

    def __init__(self) -> None:
        self.w_thread = -1
        self.w_clock = 0
        self.w_stack: _Stack = ()
        self.w_step = 0
        self.w_ctor = False
        self.final = True
        self.deferred: list[_Conflict] = []
        self.reads: dict[int, tuple[int, _Stack, int]] = {}


def _join(into: VC, other: VC | None) -> None:
    if not other:
        return
    if len(into) < len(other):
        into.extend([0] * (len(other) - len(into)))
    for i, v in enumerate(other):
        if v > into[i]:
            into[i] = v


def _covers(clock: VC, thread: int, epoch: int) -> bool:
    return epoch <= (clock[thread] if thread < len(clock) else 0)


def _stack(skip: int) -> _Stack:
    """The accessing code's innermost frames, as (code, instruction offset): the line is
    looked up only when a race is reported (``f_lineno`` costs a line-table walk)."""
    f: FrameType | None = sys._getframe(skip)
    out: list[tuple[CodeType, int]] = []
    while f is not None and len(out) < STACK_DEPTH:
        code = f.f_code
        name = code.co_filename
        if name == _PLATFORM_FILE or name.endswith("threading.py"):
            break
        if name not in _OWN_FILES:
            out.append((code, f.f_lasti))
        f = f.f_back
    return tuple(out)


@functools.lru_cache(maxsize=4096)
def _line(code: CodeType, lasti: int) -> int:
    line = code.co_firstlineno
    for start, end, n in code.co_lines():
        if start <= lasti < end:
            return n if n is not None else line
        if n is not None:
            line = n
    return line


class RaceDetector:
    """Happens-before race detection for one controlled run.

    Pass it to :class:`ControlledPlatform` (``races=``); after :meth:`ControlledPlatform.run`
    :attr:`races` holds what it found (allowed ones in :attr:`benign`).

    Args:
        track: classes whose instances' fields are watched, besides impl's.
        impl: watch :func:`impl_classes` too (default).
        program: the program name in the schedule strings of the reports.
        allow: the allow-list (default :data:`BENIGN`).
    """

    def __init__(
        self,
        track: Iterable[type] = (),
        *,
        impl: bool = True,
        program: str = "program",
        allow: Iterable[Benign] = BENIGN,
    ) -> None:
        self.classes: tuple[type, ...] = (impl_classes() if impl else ()) + tuple(track)
        self.program = program
        self.allow = tuple(allow)
        self.races: list[Race] = []
        self.benign: list[Race] = []
        self.accesses = 0
        #: The :data:`LOCKFREE_READS` entries whose reads this run skipped.
        self.lockfree_reads: set[str] = set()
        #: When a dict: every field access of the run, racing or not, as (field, thread,
        #: write, (code, instruction offset) of the innermost watched frame) -> the platform
        #: steps it happened at (the first 16), for
        #: :func:`~aioctx_verify.stress.controlled.field_accesses` (where two threads meet).
        self.profile: dict[tuple[str, int, bool, tuple[CodeType, int]], list[int]] | None = None
        #: When a list: *suspects*, pairs of accesses to one field by two threads, one
        #: writing, that this run ordered by happens-before although the two threads held
        #: no platform mutex in common (Eraser's lockset condition, Savage et al., TOCS
        #: 1997): only the order this schedule happened to take protects them.  Each is
        #: (field, earlier thread, decisions made before its access, its step, later
        #: thread, its step); :func:`find_races` reruns the schedule to the earlier access
        #: and postpones that thread (RaceFuzzer's confirmation, Sen, PLDI 2008), so a
        #: suspect is reported only when a real run shows the race.
        self.suspects: list[tuple[str, int, int, int, int, int]] | None = None
        #: The decision tokens of the run (set when it ends).
        self.tokens: tuple[str, ...] = ()
        self._held: dict[int, set[int]] = {}  # thread -> platform mutexes it holds
        # thread -> its clock without the mutex edges (the other edges: thread start and
        # join, condition wake-ups, atomics, fences, notifiers), kept for suspects only
        self._hard: dict[int, VC] = {}
        # (object id, field) -> thread -> its last access: (write, locks held, decisions
        # made before it, step, epoch)
        self._last: dict[tuple[int, str], dict[int, _LastAccess]] = {}
        self._suspected: set[tuple[str, int, int]] = set()
        self.active = False
        self._p: ControlledPlatform | None = None
        self._C: list[VC] = [[1]]
        self._sync: dict[int, VC | None] = {}  # mutex / cell / notifier oid -> clock
        self._slots: dict[int, VC] = {}  # id(condition waiter slot) -> notifier's clock
        self._pub: dict[int, VC] = {}  # id(per-platform state) -> its maker's clock
        self._f_rel: dict[int, VC] = {}  # thread -> clock of its last release fence
        self._f_acq: dict[int, VC] = {}  # thread -> clocks its relaxed loads read
        self._pending: dict[tuple[int, int], deque[VC | None]] = {}  # buffered store clocks
        self._shadow: dict[tuple[int, str], _Shadow] = {}
        self._keep: dict[int, object] = {}  # watched objects stay alive (ids stay unique)
        self._raw: list[tuple[str, Access, Access]] = []
        self._seen: set[tuple[str, frozenset[tuple[str, str]]]] = set()
        self._idents: list[object] = []

    # -- life cycle (called by the platform) -------------------------------------------------
    def begin(self, platform: ControlledPlatform) -> None:
        if self._p is not None:
            raise RuntimeError("a RaceDetector watches one run; make a new one for each run")
        self._p = platform
        _HOOKS.add(self.classes)
        self.active = True

    def end(self) -> None:
        """The run is over: unbind its threads, remove the hooks, write the reports."""
        self.active = False
        for ident in self._idents:
            if _ACTIVE.get(ident, (None, 0))[0] is self:
                del _ACTIVE[ident]
        self._idents.clear()
        _HOOKS.remove(self.classes)
        p = self._p
        assert p is not None
        self.tokens = tuple(c.token for c in p._decisions)
        sched = str(Schedule(self.program, p.memory.value, self.tokens))
        for label, a, b in self._raw:
            race = Race(label, a, b, sched)
            why = next((e.reason for e in self.allow if e.matches(race)), "")
            if why:
                self.benign.append(dataclasses.replace(race, benign=why))
            else:
                self.races.append(race)
        self._raw.clear()

    def stop(self) -> None:
        """The run is being aborted: threads unwind concurrently, nothing is recorded."""
        self.active = False

    def bind(self, t: _CThread) -> None:
        """``t`` runs on the calling OS thread from now on."""
        ident = _get_ident()
        _ACTIVE[ident] = (self, t.idx)
        self._idents.append(ident)
        while len(self._C) <= t.idx:
            self._C.append([])

    def unbind(self) -> None:
        ident = _get_ident()
        if _ACTIVE.get(ident, (None, 0))[0] is self:
            del _ACTIVE[ident]

    # -- happens-before edges ----------------------------------------------------------------
    def _clock(self, t: int) -> VC:
        c = self._C[t]
        if len(c) <= t:
            c.extend([0] * (t + 1 - len(c)))
        return c

    def _release(self, t: int) -> VC:
        """A copy of ``t``'s clock for a release; ``t`` enters a new epoch."""
        c = self._clock(t)
        snap = c.copy()
        c[t] += 1
        return snap

    def spawn(self, parent: int, child: int) -> None:
        while len(self._C) <= child:
            self._C.append([])
        c = self._release(parent)
        if len(c) <= child:
            c.extend([0] * (child + 1 - len(c)))
        c[child] = max(c[child], 1)
        self._C[child] = c
        if self.suspects is not None:
            self._hard[child] = c.copy()

    def joined(self, me: int, child: int) -> None:
        _join(self._clock(me), self._C[child])
        self._hard_join(me, self._C[child])

    def published(self, me: int, key: int, made: bool) -> None:
        """Per-platform state ``key`` made and published by ``me`` (a release), or found
        by ``me`` (an acquire of its publication)."""
        if made:
            self._pub[key] = self._release(me)
            return
        src = self._pub.get(key)
        _join(self._clock(me), src)
        self._hard_join(me, src)

    def _hard_join(self, me: int, other: VC | None) -> None:
        """The edge also orders by more than a mutex (see :meth:`_suspect`)."""
        if self.suspects is not None and other is not None:
            _join(self._hard.setdefault(me, []), other)

    def mutex_acquired(self, me: int, oid: int) -> None:
        _join(self._clock(me), self._sync.get(oid))
        self._held.setdefault(me, set()).add(oid)

    def mutex_released(self, me: int, oid: int) -> None:
        self._sync[oid] = self._release(me)
        self._held.get(me, set()).discard(oid)

    def signalled(self, me: int, slots: list[list[bool]]) -> None:
        if slots:
            snap = self._release(me)
            for s in slots:
                self._slots[id(s)] = snap

    def woken(self, me: int, slot: list[bool]) -> None:
        src = self._slots.pop(id(slot), None)
        _join(self._clock(me), src)
        self._hard_join(me, src)

    def cell_created(self, me: int, oid: int) -> None:
        self._sync[oid] = self._release(me)

    def stored(self, me: int, oid: int, order: Ordering, buffered: bool) -> None:
        """A store issued: its clock goes to memory now, or when the buffered store does."""
        if order in _RELEASING:
            clock: VC | None = self._release(me)
        else:
            rel = self._f_rel.get(me)
            clock = None if rel is None else rel.copy()
        if buffered:
            self._pending.setdefault((me, oid), deque()).append(clock)
        else:
            self._sync[oid] = clock

    def flushed(self, t: int, oid: int) -> None:
        """``t``'s oldest buffered store to cell ``oid`` reached memory."""
        q = self._pending.get((t, oid))
        if q:
            self._sync[oid] = q.popleft()

    def loaded(self, me: int, oid: int, order: Ordering) -> None:
        """A load that read memory (not its own store buffer)."""
        src = self._sync.get(oid)
        if src is None:
            return
        if order in _ACQUIRING:
            _join(self._clock(me), src)
            self._hard_join(me, src)
        else:
            _join(self._f_acq.setdefault(me, []), src)

    def rmw(self, me: int, oid: int, order: Ordering, wrote: bool) -> None:
        old = self._sync.get(oid)
        if order in _ACQUIRING:
            _join(self._clock(me), old)
            self._hard_join(me, old)
        else:
            _join(self._f_acq.setdefault(me, []), old)
        if not wrote:
            return
        new: VC = [] if old is None else old.copy()
        if order in _RELEASING:
            _join(new, self._release(me))
        else:
            _join(new, self._f_rel.get(me))
        self._sync[oid] = new

    def fenced(self, me: int, kind: Fence) -> None:
        if kind is not Fence.WMB:  # acquire half (smp_rmb, smp_mb)
            _join(self._clock(me), self._f_acq.get(me))
            self._hard_join(me, self._f_acq.get(me))
        if kind is not Fence.RMB:  # release half (smp_wmb, smp_mb)
            self._f_rel[me] = self._release(me)

    def notifier_set(self, me: int, oid: int) -> None:
        snap = self._release(me)
        cur = self._sync.get(oid)
        if cur is None:
            self._sync[oid] = snap
        else:
            _join(cur, snap)

    def notifier_read(self, me: int, oid: int, clear: bool) -> None:
        _join(self._clock(me), self._sync.get(oid))
        self._hard_join(me, self._sync.get(oid))
        if clear:
            self._sync[oid] = None

    # -- plain fields ------------------------------------------------------------------------
    def _access(self, t: int, obj: object, label: str, write: bool, value: object) -> None:
        if not self.active:
            return
        if not write and label in LOCKFREE_READS:
            where = sys._getframe(2).f_code.co_name
            if where in LOCKFREE_READS[label][0]:
                self.lockfree_reads.add(f"{label} in {where}")
                return
        if type(value) is MethodType and type(value.__self__) in PLATFORM_TYPES:
            return  # a bound method of the platform (``self._me = p.current_thread``)
        self.accesses += 1
        if self.profile is not None:
            top = _stack(3)
            if top:
                steps = self.profile.setdefault((label, t, write, top[0]), [])
                if len(steps) < 16:
                    steps.append(0 if self._p is None else self._p._steps)
        key = (id(obj), label)
        sh = self._shadow.get(key)
        clock = self._clock(t)
        now = clock[t]
        if self.suspects is not None:
            self._suspect(key, t, write, clock, obj, value)
        if sh is None:
            sh = self._shadow[key] = _Shadow()
            self._keep[id(obj)] = obj
        elif write:
            if sh.w_thread == t and sh.w_clock == now and not sh.reads and not sh.final:
                return  # FastTrack: a write in the epoch of this thread's last write
        else:
            last = sh.reads.get(t)
            if last is not None and last[0] == now:
                return  # FastTrack: a read in the epoch of this thread's last read
        p = self._p
        step = 0 if p is None else p._steps
        stack = _stack(3)
        wt = sh.w_thread
        if wt >= 0 and wt != t and not _covers(clock, wt, sh.w_clock):
            c = (label, wt, "write", sh.w_stack, sh.w_step, t, write, stack, step)
            if sh.w_ctor and sh.final:
                sh.deferred.append(c)
            else:
                self._found(c)
        if not write:
            sh.reads[t] = (now, stack, step)
            return
        for u, (epoch, rstack, rstep) in sh.reads.items():
            if u != t and not _covers(clock, u, epoch):
                self._found((label, u, "read", rstack, rstep, t, write, stack, step))
        ctor = _in_constructor(obj)
        if not ctor and sh.final:
            sh.final = False
            for c in sh.deferred:
                self._found(c)
            sh.deferred.clear()
        sh.reads = {}
        sh.w_thread = t
        sh.w_clock = now
        sh.w_stack = stack
        sh.w_step = step
        sh.w_ctor = ctor

    def _suspect(
        self, key: tuple[int, str], t: int, write: bool, clock: VC, obj: object, value: object
    ) -> None:
        """Record a suspect (see :attr:`suspects`) where this access meets another
        thread's last access of the field."""
        p = self._p
        assert p is not None and self.suspects is not None
        if key[1] == _CONTEXT_LOCK_DEPTH and write:
            # impl's context lock (RFifoLock): its owner sets the depth to 1 on a grant
            # and to 0 on its last release; held, it protects like a mutex.
            rf = self._held.setdefault(t, set())
            if isinstance(value, int) and value > 0:
                rf.add(-1 - id(obj))
            else:
                rf.discard(-1 - id(obj))
        held = self._held.get(t)
        locks = frozenset(held) if held else frozenset()
        last = self._last.setdefault(key, {})
        label = key[1]
        for u, (uw, ulocks, uk, ustep, uepoch) in last.items():
            if (
                u != t
                and (uw or write)
                and not (ulocks & locks)
                and _covers(clock, u, uepoch)  # unordered ones are races already
                and not _covers(self._hard.get(t, []), u, uepoch)  # a mutex alone orders
                and (label, u, t) not in self._suspected
                and len(self.suspects) < 64
            ):
                self._suspected.add((label, u, t))
                self.suspects.append((label, u, uk, ustep, t, p._steps))
        if write and _in_constructor(obj):
            return  # a constructor's write is published with its object
        last[t] = (write, locks, len(p._decisions), p._steps, clock[t])

    def _found(self, c: _Conflict) -> None:
        label, u, ukind, ustack, ustep, t, write, stack, step = c
        a = Access(u, self._name(u), ukind, _format(ustack), ustep)
        b = Access(t, self._name(t), "write" if write else "read", _format(stack), step)
        race = Race(label, a, b, "")
        if race.key in self._seen:
            return
        self._seen.add(race.key)
        self._raw.append((label, a, b))

    def _name(self, t: int) -> str:
        p = self._p
        if p is not None and t < len(p._threads):
            return p._threads[t].name
        return f"thread {t}"


def _in_constructor(obj: object) -> bool:
    """Whether the write being recorded runs in ``obj``'s own ``__init__`` (frames: this
    function, ``_access``, the descriptor's ``__set__``, the writer)."""
    f = sys._getframe(3)
    code = f.f_code
    if code.co_name != "__init__" or not code.co_argcount:
        return False
    return f.f_locals.get(code.co_varnames[0]) is obj


def _format(stack: _Stack) -> tuple[str, ...]:
    return tuple(_format_where(code, _line(code, lasti)) for code, lasti in stack) or ("?",)
