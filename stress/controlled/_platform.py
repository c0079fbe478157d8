"""The controlled platform: the same impl code, with every interleaving decision owned by a
deterministic scheduler, virtual time, and optional weak memory.

Prior art: loom and shuttle (Rust) route every operation of their mock primitives through
one runtime that runs exactly one thread at a time; CHESS (Musuvathi et al., OSDI 2008)
bounds preemptions; PCT (Burckhardt et al., ASPLOS 2010) picks by random priorities with
change points; trio's MockClock jumps virtual time when every task is blocked.

How a run works:

* Each program thread is a greenlet, and a whole run executes on one OS thread (a pooled
  *carrier*), so a switch is a greenlet switch (well under a microsecond), not an OS context
  switch; every :class:`~impl.Platform` operation is a scheduling point where the strategy
  picks who runs next.  The caller of :meth:`ControlledPlatform.run` waits for the carrier
  with a real-time bound, so a program that blocks outside the platform (a real lock, a
  real sleep) is abandoned and reported, never waited on forever.
* Blocking operations (mutex, condition, poll, join) park the thread with a readiness
  predicate.  When nothing is runnable, virtual time jumps to the earliest deadline; when no
  deadline exists either, the run fails as a *deadlock* (or a *lost wake-up* when a thread is
  asleep in ``poll`` waiting for a wake-up that never comes), with every thread's position.
* Weak memory (``tso``, ``pso``): each thread has a store buffer; its own loads see it first
  (store forwarding).  ``tso`` is x86-TSO (Owens, Sarkar, Sewell, TPHOLs 2009): one FIFO
  buffer per thread.  ``pso`` is SPARC v9 PSO: in effect one FIFO per thread *per cell*, so
  buffered stores to different cells may become visible out of order.  Flushing one
  buffered store (the oldest one, or under ``pso`` the oldest one of a cell) is a
  scheduling choice like running a thread.  What each operation means:

  ==========================  =============================  ==============================
  operation                   ``tso``                        ``pso``
  ==========================  =============================  ==============================
  load, any ordering          plain load (loads are never reordered in either model)
  store relaxed               buffered                       buffered
  store release / acq_rel     buffered (FIFO orders it)      store-store barrier, buffered
  store seq_cst               buffered, then drained (x86 ``xchg`` / ``mov; mfence``)
  exchange / cmpxchg /        drain, then atomic on memory (x86 ``lock``-prefixed: a full
  fetch_add, any ordering     fence; QEMU's RMW atomics are full barriers on every host)
  ``smp_mb``                  drain (``mfence`` / ``membar #StoreLoad``)
  ``smp_wmb``                 no-op                          store-store barrier
  ``smp_rmb``                 no-op                          no-op
  ==========================  =============================  ==============================

  A store-store barrier (``membar #StoreStore``) drains nothing: it only forbids a store
  issued after it to reach memory before every store issued before it; loads after it may
  still overtake the earlier stores (so ``x=1; wmb; r0=y || y=1; wmb; r1=x`` still allows
  ``r0 = r1 = 0``).  Every lock / notifier / poll / thread operation also drains.
* Weak memory ``c11`` (release/acquire with relaxed atomics; views after Kang, Hur, Lahav,
  Vafeiadis and Dreyer, "A promising semantics for relaxed-memory concurrency", POPL 2017,
  without promises): every cell keeps its writes in execution order (the modification
  order), each with a *message view* (cell -> newest write index it carries); every thread
  has a view.  A load may read any write of the cell not older than its thread's view of
  it (a seq_cst load not older than the cell's newest seq_cst write); reading an older one
  than the newest is a decision of its own (token ``R<thread>.<write>``, costing one
  preemption).  Acquire / seq_cst loads join the message's view into the thread's, relaxed
  loads keep it for the next acquire fence; release / seq_cst stores carry the thread's
  view, relaxed stores the view of its last release fence.  ``smp_rmb`` is an acquire
  fence, ``smp_wmb`` a release fence, ``smp_mb`` an SC fence: acquire, then join and
  extend one global view.  Every lock / notifier / poll / thread operation is an SC fence
  too (and a blocked thread fences again when it resumes), like the drains above.  RMWs
  read the newest write and have exactly their ordering: a seq_cst RMW is acquire and
  release and joins the seq_cst order (a seq_cst load reads no older write than it), not a
  full fence.  That is C11's RMW and what GCC's ``__atomic`` builtins give QEMU on AArch64
  (``ldaxr``/``stlxr``: a later relaxed load may pass the store), which is why QEMU writes
  ``smp_mb`` after an ``atomic_xchg`` where it needs one (``aio_notify``).  Not modelled:
  store-store reordering (pso's) and load buffering (RC11 forbids it).  The race detector follows
  ``sc`` / ``tso`` / ``pso`` runs only.
* Pruning: DFS caches states by a trace-equivalence fingerprint (per-object access chains
  plus each thread's own chain).  Writes to memory (a flush, a drain) are events on their
  cell's chain, so the fingerprint also fixes which write each load read from; under
  ``c11`` the write a load read is an event on its cell's chain, and SC fences are events
  on one chain of their own (their order decides the global view).
* Events (for dynamic partial-order reduction, :mod:`._dpor`): a strategy with a true
  ``needs_events`` gets, for every step of a run, an :class:`Event`: the *process* that
  moved (a thread ``("t", i)``; a store buffer ``("b", i)`` under ``tso``, one per cell
  ``("b", i, cell)`` under ``pso``; virtual time ``("clock",)``), the processes that could
  have moved instead, and the objects the step read and wrote (memory cells, locks,
  conditions, notifiers, pollers, and pseudo-objects for store buffers, thread lifecycles,
  object creation and virtual time).  Other strategies pay one ``is None`` test per hook.
* Ids are small integers in creation order and nothing depends on thread idents, hash seeds
  or dict order, so a schedule (the list of choices) reproduces a run exactly.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import os
import select
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from greenlet import getcurrent, greenlet

from aioctx_verify.impl._platform import (
    POLLIN,
    POLLNVAL,
    Condition,
    Fence,
    Mutex,
    Ordering,
    Poller,
    RawNotifier,
    ThreadHandle,
    ThreadId,
    Tracer,
)

if TYPE_CHECKING:
    from ._race import RaceDetector

__all__ = [
    "Abort",
    "Choice",
    "ControlledPlatform",
    "Decision",
    "Event",
    "EventLog",
    "RunOutcome",
    "Step",
    "Strategy",
    "TraceLog",
    "run_batch",
]

T = TypeVar("T")

#: Fake file descriptors of controlled notifiers start here (far above real fds).
FAKE_FD_BASE = 1 << 24
#: Wall-clock time of virtual time 0 (2015-07-22, the day aio_notify_accept landed).
EPOCH_NS = 1_437_523_200 * 10**9
_HERE = os.path.abspath(__file__)


_ACQUIRING = frozenset({Ordering.ACQUIRE, Ordering.ACQ_REL, Ordering.SEQ_CST})
_RELEASING = frozenset({Ordering.RELEASE, Ordering.ACQ_REL, Ordering.SEQ_CST})


def _join(into: dict[int, int], other: dict[int, int]) -> None:
    """c11 views: ``into`` becomes the pointwise maximum of both."""
    for k, v in other.items():
        if into.get(k, -1) < v:
            into[k] = v


class Abort(BaseException):
    """Unwinds program threads when a run ends early (failure, budget, pruning).

    A BaseException so that impl's ``except Exception`` never swallows it.
    """


class Memory(enum.Enum):
    SC = "sc"
    TSO = "tso"
    PSO = "pso"
    C11 = "c11"


# The members as module globals: the hot paths compare against these (a global is cheaper
# to read than an enum class attribute).
_SC, _TSO, _PSO, _C11 = Memory.SC, Memory.TSO, Memory.PSO, Memory.C11


@dataclass(frozen=True, slots=True)
class Choice:
    """One alternative at a scheduling decision: run a thread, or flush a buffered store."""

    kind: str  # "run" | "flush" | "read"
    thread: int
    slot: int = 0  # pso: which cell of the thread's buffer (by first buffered); c11 read: ts

    @property
    def token(self) -> str:
        if self.kind == "run":
            return str(self.thread)
        if self.kind == "read":
            return f"R{self.thread}.{self.slot}"
        return f"F{self.thread}" if self.slot == 0 else f"F{self.thread}.{self.slot}"


@dataclass(frozen=True, slots=True)
class Decision:
    """What a strategy sees at a point with more than one option."""

    index: int  # decision number in this run (0-based)
    step: int  # step number in this run
    current: int  # thread that reached the point
    options: tuple[Choice, ...]
    default: int  # index of the non-preempting option
    costs: tuple[int, ...]  # preemptions each option costs (0 or 1)
    preemptions: int  # preemptions so far in this run
    fingerprint_fn: Callable[[], int]  # computed on demand: only DFS caching needs it
    yielding: bool = False  # ``current`` yields: its own option is left out
    #: thread index -> (operation, object id) it performs when chosen (only
    #: conflict-directed search reads it)
    pending_fn: Callable[[int], tuple[str, int]] | None = None
    #: Only for a strategy with ``needs_events`` (DPOR): the events of the run so far (the
    #: platform's live list: read it during :meth:`Strategy.choose` only) and the process
    #: of each option (:attr:`Event.proc`).
    events: Sequence[Event] | None = None
    procs: tuple[tuple[Any, ...], ...] | None = None

    @property
    def fingerprint(self) -> int:
        """Trace-equivalence fingerprint of the state (for DFS state caching).

        It does not say which thread decides: from the same state, the same choices cost
        the same preemptions plus at most one (the first switch) whoever decides.
        """
        return self.fingerprint_fn()


class Strategy(Protocol):
    """Picks an option at each decision.  One file per strategy in ``_strategies``."""

    name: str

    def choose(self, d: Decision) -> int:
        """Index into ``d.options``; -1 prunes the rest of this run (already explored)."""
        ...


@dataclass(frozen=True, slots=True)
class CodeRef:
    """What a trace keeps of a code object once it leaves its process (a shard's failure
    travels pickled): its file, function and first line.  Pickling a code object itself
    would rename its file (cloudpickle writes ``<dynamic-code>``)."""

    co_filename: str
    co_name: str
    co_firstlineno: int


@dataclass(frozen=True, slots=True)
class Step:
    """One scheduling point of a run, for traces."""

    index: int
    thread: int
    op: str
    obj: str
    #: code object of the first frame outside this module (a :class:`CodeRef` once the
    #: step has been pickled)
    code: CodeType | CodeRef | None
    line: int

    @property
    def where(self) -> str:
        """``file:line (function)`` of the code that called the platform."""
        return _format_where(self.code, self.line)

    def __reduce__(self) -> tuple[Any, ...]:
        code = self.code
        if isinstance(code, CodeType):
            code = CodeRef(code.co_filename, code.co_name, code.co_firstlineno)
        return (Step, (self.index, self.thread, self.op, self.obj, code, self.line))


class Event:
    """One step of a run as dynamic partial-order reduction sees it (recorded only for a
    strategy with ``needs_events``).

    ``proc`` is the process that moved: ``("t", i)`` thread ``i`` (its pending operation,
    then its local code up to its next operation), ``("b", i)`` a flush of thread ``i``'s
    store buffer (tso), ``("b", i, cell)`` a flush of its buffer for one cell (pso),
    ``("clock",)`` virtual time jumping while every thread is blocked.  ``enabled`` is
    every process that could have moved at this point (the options; empty for the clock).
    ``acc`` maps each object the step touched to True when it wrote it (a read otherwise);
    ``glob`` marks a step that depends on every other (time jumps, a yield); ``epoch`` is a
    pso flush's store-store barrier epoch (flushes of one thread in different epochs are
    ordered).  ``enabled`` leaves out a thread whose pending operation would block
    without effect (:meth:`ControlledPlatform._ev_disabled`) unless every option would.
    ``take`` is the mutex (id) the step acquired; ``parked`` what the step left its thread
    waiting on (its ``waiting`` text) when it blocked, else None."""

    __slots__ = ("acc", "enabled", "epoch", "glob", "parked", "proc", "take")

    def __init__(
        self, proc: tuple[Any, ...], enabled: tuple[tuple[Any, ...], ...], glob: bool = False
    ) -> None:
        self.proc = proc
        self.enabled = enabled
        self.acc: dict[Any, bool] = {}
        self.glob = glob
        self.epoch: int | None = None
        self.take: int | None = None
        self.parked: str | None = None

    def read(self, key: Any) -> None:
        if key not in self.acc:
            self.acc[key] = False

    def write(self, key: Any) -> None:
        self.acc[key] = True

    def __repr__(self) -> str:
        acc = ",".join(f"{'W' if w else 'R'}{k}" for k, w in self.acc.items())
        return f"<event {self.proc} {'glob ' if self.glob else ''}{acc}>"


class EventLog(list[Event]):
    """The events of a run so far (``Decision.events``), and ``disabled(proc)``: whether
    that option's step would block without effect (see :class:`Event`)."""

    __slots__ = ("disabled",)

    def __init__(self, disabled: Callable[[tuple[Any, ...]], bool]) -> None:
        super().__init__()
        self.disabled = disabled


#: What a run records of a step while it runs (:class:`Step` without its index): thread,
#: operation, object label, code object and line of the caller.
_Rec = tuple[int, str, str, CodeType | None, int]


class TraceLog:
    """A run's steps, kept as the plain records the platform appends while it runs and made
    :class:`Step` objects only when first read (most runs pass and nobody reads their
    trace).  Compares, hashes and pickles as its steps."""

    __slots__ = ("_raw", "_steps")

    def __init__(self, raw: Sequence[_Rec] = (), steps: tuple[Step, ...] | None = None) -> None:
        self._raw: Sequence[_Rec] | None = raw
        self._steps = steps

    def steps(self) -> tuple[Step, ...]:
        s = self._steps
        if s is None:
            raw = self._raw or ()
            s = self._steps = tuple(
                Step(i, t, op, obj, code, line)
                for i, (t, op, obj, code, line) in enumerate(raw, 1)
            )
            self._raw = None
        return s

    def __len__(self) -> int:
        s = self._steps
        if s is not None:
            return len(s)
        return len(self._raw or ())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TraceLog):
            return NotImplemented
        return self.steps() == other.steps()

    def __hash__(self) -> int:
        return hash(self.steps())

    def __repr__(self) -> str:
        return repr(self.steps())

    def __reduce__(self) -> tuple[Any, ...]:
        return (TraceLog, ((), self.steps()))


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How one run ended."""

    verdict: str  # pass | fail | inconclusive | pruned
    kind: str  # "" | exception | deadlock | lost_wakeup | property | step_budget | divergence ...
    message: str
    decisions: tuple[Choice, ...]
    steps: int
    preemptions: int
    log: TraceLog  # the trace (:attr:`trace`), its Step objects made when first read
    trace_hash: int
    thread_names: tuple[str, ...]
    positions: tuple[str, ...]  # each thread's last position (for deadlocks)
    prop: str = ""  # the property that broke: P1/P2/P3 (monitor), LIVE (deadlock, lost wake-up)

    @property
    def trace(self) -> tuple[Step, ...]:
        """Every scheduling point of the run, in order."""
        return self.log.steps()


class _Failure(Exception):
    def __init__(self, verdict: str, kind: str, message: str) -> None:
        super().__init__(message)
        self.verdict = verdict
        self.kind = kind
        self.message = message


class _State(enum.Enum):
    NEW = "new"
    RUNNABLE = "runnable"
    BLOCKED = "blocked"
    DONE = "done"


_NEW, _RUNNABLE, _BLOCKED, _DONE = _State.NEW, _State.RUNNABLE, _State.BLOCKED, _State.DONE


class _CThread:
    __slots__ = (
        "acq_pend",
        "barriers",
        "blocker",
        "buffer",
        "code",
        "deadline",
        "ended",
        "g",
        "gate",
        "idx",
        "line",
        "name",
        "parent",
        "pending",
        "priming",
        "rel_view",
        "run_choice",
        "state",
        "target",
        "tid",
        "view",
        "waiting",
        "yielding",
    )

    def __init__(self, idx: int, name: str, target: Callable[[], None]) -> None:
        self.idx = idx
        self.name = name
        self.target = target
        # The greenlet the thread runs in, made on the carrier when the thread first runs.
        self.g: greenlet | None = None
        self.state = _NEW
        self.blocker: Callable[[], bool] | None = None
        self.deadline: int | None = None
        self.waiting = ""
        # Buffered stores, oldest first: (cell, value, store-store barriers issued before it).
        self.buffer: list[tuple[_CCell[Any], Any, int]] = []
        self.barriers = 0
        self.ended = _Flag()
        self.run_choice = _run_choice(idx)
        self.tid = ThreadId(idx)
        self.code: CodeType | None = None
        self.line = 0
        self.pending: tuple[str, int] = ("start", 0)
        self.yielding = False
        self.priming = False
        # Only with events: True while the pending operation (or a woken wait's
        # reacquisition) would block without effect (see ControlledPlatform._ev_disabled).
        self.gate: Callable[[], bool] | None = None
        self.parent: _CThread | None = None
        # c11: the newest write of each cell (oid -> timestamp) this thread must read at
        # least; the views of messages its relaxed loads read (taken at an acquire fence);
        # its view at its last release fence (lent to its later relaxed stores).
        self.view: dict[int, int] = {}
        self.acq_pend: dict[int, int] = {}
        self.rel_view: dict[int, int] = {}

    def store_barrier(self) -> None:
        """A store-store barrier: stores issued from now on stay behind every buffered one."""
        if self.buffer and self.buffer[-1][2] == self.barriers:
            self.barriers += 1


@functools.cache
def _run_choice(idx: int) -> Choice:
    """The option "run thread ``idx``" (immutable: one object per index, for every run)."""
    return Choice("run", idx)


def _pso_ready(buffer: list[tuple[_CCell[Any], Any, int]]) -> list[int]:
    """The slots (cells, numbered by first appearance) whose oldest buffered store may reach
    memory now under pso: those not behind a store-store barrier still holding a store."""
    if not buffer:
        return []
    low = buffer[0][2]
    seen: list[int] = []
    ready: list[int] = []
    for cell, _, barriers in buffer:
        if cell.oid not in seen:
            seen.append(cell.oid)
            if barriers == low:
                ready.append(len(seen) - 1)
    return ready


class _Flag:
    """A one-shot event on a plain lock (cheaper than threading.Event); set is idempotent."""

    __slots__ = ("_lock", "_set")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._set = False

    def set(self) -> None:
        if not self._set:
            self._set = True
            with contextlib.suppress(RuntimeError):
                self._lock.release()

    def wait(self, timeout: float) -> bool:
        if self._set:
            return True
        if self._lock.acquire(timeout=timeout):
            self._lock.release()
            return True
        return self._set


class _Carrier:
    """A reusable OS thread that runs one run (all its greenlets) at a time.

    Starting an OS thread costs about as much as a whole small run, so threads are kept in
    a pool across runs.  A carrier goes back to the pool only when its job has returned: a
    run abandoned while its program blocks outside the platform keeps its carrier.
    """

    _pool: ClassVar[list[_Carrier]] = []
    _pool_lock: ClassVar[threading.Lock] = threading.Lock()
    MAX_IDLE: ClassVar[int] = 64

    IDLE_NAME: ClassVar[str] = "ctl-idle"

    def __init__(self) -> None:
        self._go = threading.Lock()
        self._go.acquire()
        self._job: Callable[[], None] | None = None
        self._done: _Flag | None = None
        self._name = self.IDLE_NAME
        self._thread = threading.Thread(target=self._loop, name=self.IDLE_NAME, daemon=True)
        self._thread.start()

    @classmethod
    def take(cls) -> _Carrier:
        with cls._pool_lock:
            if cls._pool:
                return cls._pool.pop()
        return cls()

    def run(self, job: Callable[[], None], name: str, done: _Flag) -> None:
        """Run ``job`` on this carrier, then set ``done``: the carrier's last act before
        it idles, so the waiting caller does not wake to find it still holding the GIL."""
        self._job = job
        self._done = done
        self._thread.name = name
        self._go.release()

    def _loop(self) -> None:
        while True:
            self._go.acquire()
            job, self._job = self._job, None
            done, self._done = self._done, None
            try:
                if job is not None:
                    job()
            finally:
                job = None  # idle, it must not keep its last run (and that run's platform)
                self._thread.name = self.IDLE_NAME
                with self._pool_lock:
                    leave = len(self._pool) >= self.MAX_IDLE
                    if not leave:
                        self._pool.append(self)
                if done is not None:
                    done.set()
                    done = None
            if leave:
                return


class _Abandoned(BaseException):
    """Unwinds a batch (:func:`run_batch`) its caller gave up on, in the carrier, touching
    nothing on the way (the caller has accounted for the run that was stuck)."""


class _Session:
    """A batch of runs on one carrier (:func:`run_batch`): the run in progress, its
    real-time deadline, and whether the caller gave up on the batch."""

    __slots__ = ("abandoned", "current", "deadline", "fired", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.current: ControlledPlatform | None = None
        self.deadline = 0.0  # time.monotonic() by which the current run must end
        self.fired = False  # the watchdog fired on the current run
        self.abandoned = False


#: The batch session of the carrier thread running one (see run_batch).
_batch = threading.local()


def run_batch(job: Callable[[], None], on_stuck: Callable[[RunOutcome], object]) -> None:
    """``job()``, run on a carrier thread; every :meth:`ControlledPlatform.run` it makes
    runs there inline, so a batch of runs costs one thread round trip instead of one per
    run (on a loaded machine a round trip can cost as much as a whole small run).

    The watchdog stays per run: a run that has not ended ``real_timeout`` seconds after it
    began is failed and aborted as :meth:`ControlledPlatform.run` does; if its carrier is
    still inside it 5 s later (a thread blocked outside the platform), the batch is
    abandoned: the carrier is left to it (should it ever come back it unwinds the job
    without touching anything) and ``on_stuck`` is called in this thread with the outcome
    :meth:`ControlledPlatform.run` would have returned.  An exception of ``job`` is
    raised here.
    """
    session = _Session()
    error: list[BaseException] = []

    def body() -> None:
        _batch.session = session
        try:
            job()
        except _Abandoned:
            pass
        except BaseException as e:  # raised again in the caller's thread
            error.append(e)
        finally:
            _batch.session = None

    done = _Flag()
    _Carrier.take().run(body, "ctl-run", done)
    stuck: ControlledPlatform | None = None
    try:
        while True:
            with session.lock:
                plat = session.current
                wait = 1.0 if plat is None else max(0.0, session.deadline - time.monotonic())
            if done.wait(wait):
                break
            with session.lock:
                if plat is None or session.current is not plat:
                    continue  # the run ended meanwhile
                if time.monotonic() < session.deadline:
                    continue
                if not session.fired:
                    session.fired = True
                    session.deadline = time.monotonic() + 5.0
                    plat._watchdog()
                    continue
                session.abandoned = True  # still inside the run 5 s after its abort
                stuck = plat
            break
    except BaseException:
        with session.lock:  # interrupted: the carrier stops at the end of its run
            session.abandoned = True
            plat = session.current
        if plat is not None:
            plat._abort_all()
        raise
    if stuck is not None:
        on_stuck(stuck._outcome())
        return
    if error:
        raise error[0]


class ControlledPlatform:
    """A :class:`~impl.Platform` whose every operation is a scheduling point.

    Create one per run; :meth:`run` executes ``program(platform)`` as thread 0.
    """

    def __init__(
        self,
        strategy: Strategy,
        *,
        memory: str = "sc",
        max_steps: int = 20_000,
        drop_fences: frozenset[str] = frozenset(),
        races: RaceDetector | None = None,
    ) -> None:
        self.tracer: Tracer | None = None
        self._cancelled = False  # see cancel()
        self._real_timeout = 60.0  # of the run in progress in a batch (run_batch)
        # The happens-before race detector (stress.controlled._race); every hook below is
        # one ``is None`` test when it is off.
        self._race = races
        self.memory = Memory(memory)
        if races is not None and self.memory is _C11:
            raise ValueError(
                "the race detector follows sc / tso / pso runs only (its clocks assume a load "
                "reads the newest write); run it with memory sc, tso or pso"
            )
        self._strategy = strategy
        # A strategy that learns from every operation run (conflict-directed search) has
        # an ``observe(thread, op, obj, code, line)``.
        self._observe: Callable[[int, str, int, CodeType | None, int], None] | None = getattr(
            strategy, "observe", None)
        # A strategy whose pick depends only on the number of options and the default one
        # (random) has a ``choose_index(n, default)``: asked without a Decision object
        # where only threads are options (see _schedule).
        self._choose_index: Callable[[int, int], int] | None = getattr(
            strategy, "choose_index", None)
        self._max_steps = max_steps
        self._drop_fences = drop_fences
        self._threads: list[_CThread] = []
        self._by_g: dict[greenlet, _CThread] = {}
        # The carrier's own greenlet: it starts the run, and every program greenlet ends into
        # it (their parent); a thread that ends names the next one to run in _handoff.
        self._hub: greenlet | None = None
        self._handoff: _CThread | None = None
        self._carrier_ident = 0
        self._now = 0
        self._ids = 0
        self._objs = 0
        self._steps = 0
        self._trace: list[_Rec] = []  # the steps as records (TraceLog)
        self._decisions: list[Choice] = []
        self._preemptions = 0
        self._failure: _Failure | None = None
        self._aborting = False
        self._finished = _Flag()
        self._fds: dict[int, _CNotifier] = {}
        self._next_fd = FAKE_FD_BASE
        self._chains: dict[int, int] = {}
        self._sc_view: dict[int, int] = {}  # c11: the view every SC fence joins and extends
        # Per-object access chains feed the DFS state fingerprint; other strategies skip them.
        self._track_chains = bool(getattr(strategy, "needs_fingerprint", False))
        # Events for partial-order reduction (Event); None unless the strategy needs them.
        self._ev: list[Event] | None = None
        self._cur: Event | None = None  # the event being executed (accesses go there)
        self._ev_started: set[int] = set()
        if getattr(strategy, "needs_events", False):
            self._ev = EventLog(self._ev_disabled)
            begin = getattr(strategy, "events_begin", None)
            if begin is not None:
                begin(self.memory.value)  # may refuse the memory model (ValueError)
        self._trace_hash = 0
        #: Objects whose representation invariants the state oracle checks whenever every
        #: thread is blocked (:meth:`watch_state`).
        self.watched: list[object] = []
        #: Called with a mutex each time a thread releases it (an unlock, or a condition
        #: wait letting it go), at that instant; the state oracle checks the invariants the
        #: mutex guards.  Not called while a failed run unwinds.
        self.on_unlock: Callable[[object], None] | None = None

    def c11_position(self, cell: object) -> int | None:
        """Under ``c11``, the index in ``cell``'s modification order of the newest write the
        calling thread has seen of it: right after a load, the write that load read; right
        after the thread's own write or RMW, that write.  None under other models (or for
        a cell this platform did not make).  Reads nothing shared, adds no scheduling
        point: what an oracle needs to tell which write a query observed."""
        if self.memory is not _C11 or not isinstance(cell, _CCell):
            return None
        return self._me().view.get(cell.oid, 0)

    def c11_rmw_chain(self, cell: object, first: int, last: int) -> bool:
        """Under ``c11``, whether every write of ``cell`` after position ``first`` up to
        ``last`` was an RMW's: then a release write at ``first`` heads a release sequence
        that reaches ``last``, and an acquire reading ``last`` synchronises with it."""
        if self.memory is not _C11 or not isinstance(cell, _CCell):
            return False
        return all(cell.rmw[first + 1:last + 1])

    def c11_writer(self, cell: object, position: int) -> int | None:
        """Under ``c11``, the index of the thread whose write is at ``position`` of
        ``cell``'s modification order (None: the cell's initial value, another model, or a
        cell this platform did not make)."""
        if self.memory is not _C11 or not isinstance(cell, _CCell):
            return None
        if not 0 <= position < len(cell.writers):
            return None
        who = cell.writers[position]
        return None if who < 0 else who

    def watch_state(self, obj: object) -> None:
        """Have ``obj`` (an impl context or dataplane device of this run) checked by the
        quiescent state oracle (:func:`aioctx_verify.properties.quiescent_violations`) each
        time every thread is blocked, when the run is monitored; a harness registers what
        it creates.  Reads no state here and adds no scheduling point."""
        self.watched.append(obj)

    # ------------------------------------------------------------------------------------
    # Running
    # ------------------------------------------------------------------------------------
    def run(
        self, program: Callable[[ControlledPlatform], None], *, real_timeout: float = 60.0
    ) -> RunOutcome:
        race = self._race
        if race is not None:
            race.begin(self)
        inner_tracer = self.tracer
        if self._ev is not None and inner_tracer is not None:
            # The monitors see trace events in execution order: steps that emit one are
            # ordered like writes of one shared object, so DPOR keeps every order of them.
            def tracer(ev: Any, inner: Tracer = inner_tracer) -> None:
                cur = self._cur
                if cur is not None:
                    cur.write(("mon",))
                inner(ev)

            self.tracer = tracer
        try:
            main = self._new_thread(lambda: program(self), "main")
            main.state = _RUNNABLE
            session: _Session | None = getattr(_batch, "session", None)
            if session is not None and session.current is None:
                self._run_inline(session, real_timeout)
            else:
                _Carrier.take().run(self._hub_main, "ctl-run", self._finished)
                if not self._finished.wait(real_timeout):
                    self._watchdog(real_timeout)
                    self._finished.wait(5.0)
            for t in self._threads:
                # cancel(): a thread blocked outside the platform may never end
                t.ended.wait(0.0 if self._cancelled else 5.0)
        finally:
            if race is not None:
                race.end()
            if self._ev is not None:
                self.tracer = inner_tracer
        return self._outcome()

    def _run_inline(self, session: _Session, real_timeout: float) -> None:
        """The hub in this thread, a carrier running a batch (:func:`run_batch`, whose
        caller keeps the watchdog)."""
        with session.lock:
            session.current = self
            session.fired = False
            session.deadline = time.monotonic() + real_timeout
            self._real_timeout = real_timeout
        try:
            self._hub_main()
        finally:
            with session.lock:
                session.current = None
                abandoned = session.abandoned
            self._finished.set()
        if abandoned:
            raise _Abandoned

    def _watchdog(self, real_timeout: float | None = None) -> None:
        """The run has not ended within ``real_timeout`` s of real time: it fails, and its
        threads are aborted at their next scheduling point."""
        limit = self._real_timeout if real_timeout is None else real_timeout
        self._fail("inconclusive", "watchdog", f"run did not end within {limit} s of real time")
        self._abort_all()

    def _outcome(self) -> RunOutcome:
        """How the run ended, from the platform's state (once it has ended, or been given
        up on)."""
        f = self._failure
        if self._ev is not None:
            end = getattr(self._strategy, "events_end", None)
            if end is not None:
                # No process can move after a run that ended by itself or got stuck.
                final = f is None or f.kind in ("deadlock", "lost_wakeup")
                end(self._ev, final)
        verdict, kind, message = ("pass", "", "") if f is None else (f.verdict, f.kind, f.message)
        prop = "LIVE" if kind in ("deadlock", "lost_wakeup") else ""
        return RunOutcome(
            verdict=verdict,
            kind=kind,
            message=message,
            decisions=tuple(self._decisions),
            steps=self._steps,
            preemptions=self._preemptions,
            log=TraceLog(tuple(self._trace)),
            trace_hash=self._trace_hash,
            thread_names=tuple(t.name for t in self._threads),
            positions=tuple(
                f"{_format_where(t.code, t.line)} [{t.state.value}"
                f"{': ' + t.waiting if t.state is _BLOCKED else ''}]"
                for t in self._threads
            ),
            prop=prop,
        )

    def thread_positions(self) -> list[str]:
        """``Thread k (name) | file:line (function) [state]`` for every thread of the run,
        now (callable from any thread: a snapshot for a report, not a synchronised read)."""
        frames = sys._current_frames()
        now: dict[int, str] = {}
        for t in list(self._threads):
            g = t.g
            if g is None or g.dead or t.state is _DONE:
                continue
            # a suspended greenlet keeps its frame; the running one is the carrier's
            f = g.gr_frame if g.gr_frame is not None else frames.get(self._carrier_ident)
            # the innermost frame outside the platform and the threading module: where a
            # thread blocked outside the platform actually is
            while f is not None and f.f_code.co_filename in (_HERE, threading.__file__):
                f = f.f_back
            if f is not None:
                now[t.idx] = f" now at {_format_where(f.f_code, f.f_lineno)}"
        return [
            f"Thread {t.idx} ({t.name}) | {_format_where(t.code, t.line)} [{t.state.value}"
            f"{': ' + t.waiting if t.state is _BLOCKED else ''}]{now.get(t.idx, '')}"
            for t in list(self._threads)
        ]

    def cancel(self, kind: str, message: str) -> None:
        """End the run from outside it (another thread): it fails with ``kind`` and
        ``message``, every controlled thread is aborted at its next scheduling point, and
        :meth:`run` returns without waiting for a thread blocked outside the platform."""
        self._cancelled = True
        self._fail("fail", kind, message)
        self._abort_all()
        self._finished.set()

    def _new_thread(self, target: Callable[[], None], name: str) -> _CThread:
        t = _CThread(len(self._threads), name, target)
        self._threads.append(t)
        return t

    def _hub_main(self) -> None:
        """The carrier's job: run the program's greenlets until every thread has ended.

        Threads switch to each other directly; the hub regains control only when a
        greenlet ends, and then runs the thread the ending one chose (or, once the run is
        aborting, every thread not yet ended, each of which unwinds at once).
        """
        self._hub = getcurrent()
        self._carrier_ident = threading.get_ident()
        try:
            nxt: _CThread | None = self._threads[0]
            while nxt is not None:
                try:
                    self._switch(nxt)
                except BaseException as e:  # a bug of the platform itself, not the program's
                    self._fail("fail", "exception", f"controlled platform: {e!r}")
                    self._abort_all()
                nxt, self._handoff = self._handoff, None
                if nxt is None and self._aborting:
                    nxt = next((t for t in self._threads if t.state is not _DONE), None)
        finally:
            self._hub = None

    def _switch(self, to: _CThread) -> None:
        """Run ``to`` now; returns when the calling greenlet is switched back to."""
        g = to.g
        if g is None:
            g = to.g = greenlet(functools.partial(self._thread_body, to), self._hub)
        g.switch()

    def _thread_body(self, t: _CThread) -> None:
        try:
            self._thread_main(t)
        finally:
            t.ended.set()

    def _thread_main(self, t: _CThread) -> None:
        self._by_g[getcurrent()] = t
        if self._race is not None:
            self._race.bind(t)
        if self._aborting:
            self._thread_done(t)
            return
        try:
            t.target()
            # Exit is a scheduling point of its own: until it, the thread's buffered stores
            # may stay invisible (a join then synchronises with the exit).
            self._point(t, "exit", -1000 - t.idx, f"thread {t.idx}")
        except Abort:
            pass
        except BaseException as e:
            if not self._aborting:
                where = _exc_where(e)
                self._fail(
                    "fail",
                    "exception",
                    f"thread {t.idx} ({t.name}) raised {type(e).__name__}: {e} at {where}",
                )
                self._abort_all()
        self._thread_done(t)

    def _thread_done(self, t: _CThread) -> None:
        self._drain(t)
        if self._cur is not None:
            self._cur.write(("thr", t.idx))  # joiners read it
        if self._race is not None:
            self._race.unbind()
        t.state = _DONE
        # The hub signals the caller once every greenlet has ended (its ``ended`` set too).
        if self._aborting or all(x.state is _DONE for x in self._threads):
            return
        with contextlib.suppress(Abort):
            self._schedule(t)

    def _fail(self, verdict: str, kind: str, message: str) -> None:
        if self._failure is None:
            self._failure = _Failure(verdict, kind, message)

    def _abort_all(self) -> None:
        if self._race is not None:
            self._race.stop()
        self._aborting = True
        self._cur = None  # what threads do while unwinding is no step of the run

    # ------------------------------------------------------------------------------------
    # Scheduling
    # ------------------------------------------------------------------------------------
    def _me(self) -> _CThread:
        try:
            return self._by_g[getcurrent()]
        except KeyError:
            raise RuntimeError(
                "a controlled-platform operation ran outside the program's threads; "
                "create every thread with platform.start_thread"
            ) from None

    def _point(self, me: _CThread, op: str, obj: int, label: str = "") -> None:
        # The hot path of every run: one call per step, kept free of allocations beyond
        # the trace record (see _schedule).
        if self._aborting:
            raise Abort
        steps = self._steps = self._steps + 1
        if steps > self._max_steps:
            self._fail("inconclusive", "step_budget", f"step budget of {self._max_steps} reached")
            self._abort_all()
            raise Abort
        # The innermost frame outside this module: the code that called the seam.  Our
        # caller is always in this module: start at its caller (sys._getframe(2) makes
        # no frame object for the frames it skips, f_back would).
        f: FrameType | None
        try:
            f = sys._getframe(2)
        except ValueError:  # pragma: no cover - the greenlet's stack is never that short
            f = sys._getframe(1)
        while f is not None and f.f_code.co_filename == _HERE:
            f = f.f_back
        if f is not None:
            me.code = f.f_code
            me.line = f.f_lineno
        me.pending = (op, obj)
        if me.priming:
            # A new thread runs to its first operation and parks there without a decision,
            # so that choosing a thread always means "it performs its pending operation".
            me.priming = False
            parent = me.parent
            assert parent is not None
            self._switch(parent)
            if self._aborting:
                raise Abort
        else:
            self._schedule(me)
        # Granted: the operation executes now, so this is its place in the trace.
        self._record(me, op, obj, label or f"#{obj}")

    def _record(self, me: _CThread, op: str, obj: int, label: str) -> None:
        """A step granted to ``me``: its place in the trace (a scheduling point, or a
        blocked thread resuming), its trace hash and, for DFS, the access chains."""
        idx = me.idx
        self._trace.append((idx, op, label, me.code, me.line))
        self._trace_hash = hash((self._trace_hash, idx, op, obj))
        if self._observe is not None:
            self._observe(idx, op, obj, me.code, me.line)
        if self._track_chains:
            chains = self._chains
            chains[obj] = hash((chains.get(obj, 0), idx, op))
            tkey = -1 - idx
            chains[tkey] = hash((chains.get(tkey, 0), op, obj))

    def _touch(self, t: _CThread, op: str, obj: int) -> None:
        """An effect on ``obj`` that is not a scheduling point of its own (a buffered store
        reaching memory, a blocked thread taking a lock): it goes on ``obj``'s chain only."""
        if self._track_chains:
            chains = self._chains
            chains[obj] = hash((chains.get(obj, 0), t.idx, op))

    def _pending_of(self, idx: int) -> tuple[str, int]:
        """What thread ``idx`` does when next chosen: its operation and the object's id."""
        return self._threads[idx].pending

    def _fingerprint(self) -> int:
        """The DFS state key.

        Two runs with equal keys are trace-equivalent: every object saw the same sequence
        of accesses (the writes of buffered stores to memory included, so every load read
        from the same write) and every thread issued the same operations; the threads
        being deterministic, they are in the same state.  Store buffers (with their
        pending store-store barriers) and virtual time are part of the key as well.
        """
        states = tuple((t.state.value, t.pending, t.waiting) for t in self._threads)
        buffers = tuple(
            tuple((c.oid, repr(v), b - t.barriers) for c, v, b in t.buffer) for t in self._threads
        )
        return hash((tuple(sorted(self._chains.items())), states, buffers, self._now))

    def _flushes(self) -> list[Choice]:
        """The store-buffer flushes that may happen now, in thread order (under ``tso`` the
        oldest store of each buffer, under ``pso`` each cell's oldest store not held back
        by a store-store barrier)."""
        out: list[Choice] = []
        tso = self.memory is _TSO
        for t in self._threads:
            if not t.buffer:
                continue
            if tso:
                out.append(Choice("flush", t.idx))
            else:
                out.extend(Choice("flush", t.idx, s) for s in _pso_ready(t.buffer))
        return out

    def _schedule(self, me: _CThread) -> None:
        """Called by the running thread at a point; returns when ``me`` may run again.

        The options are the threads that can move, in thread order (runnable, or blocked
        on a predicate that holds now), then the store-buffer flushes (:meth:`_flushes`).
        The common case (no buffered store, no events for partial-order reduction) takes
        the fast path: the options are the threads' own :class:`Choice` objects, a single
        one is taken without a decision, and a strategy with a ``choose_index`` (its pick
        depends on the number of options and the default only) is asked without building
        a :class:`Decision`.  Both paths make the same choices and record the same
        decisions and preemptions.
        """
        threads = self._threads
        runnable = _RUNNABLE
        blocked = _BLOCKED
        weak = self.memory is not _SC
        while True:
            if self._aborting:
                raise Abort
            run: list[_CThread] = []
            default = -1
            buffered = False
            for t in threads:
                st = t.state
                if st is runnable or (st is blocked and t.blocker is not None and t.blocker()):
                    if t is me:
                        default = len(run)
                    run.append(t)
                if weak and t.buffer:
                    buffered = True
            nrun = len(run)
            yielded = False
            if me.yielding and default >= 0 and nrun > 1:
                # Fairness: a thread that yields (impl's poller after a spurious wake-up:
                # the waker is between writing the notifier and publishing `notified`) lets
                # another thread move first, as a real CPU would.  Without it an unfair
                # strategy such as PCT spins the poller until the step budget.
                del run[default]
                default = -1
                nrun -= 1
                yielded = True
            if not nrun:
                timed = [
                    t.deadline
                    for t in threads
                    if t.state is blocked and t.deadline is not None
                ]
                if timed:
                    if self._ev is not None:
                        self._cur = Event(("clock",), (), glob=True)
                        self._ev.append(self._cur)
                        self._cur.write(("time",))
                    self._now = max(self._now, min(timed))
                    continue
                self._deadlock()
                raise Abort
            if buffered or self._ev is not None:
                options = [t.run_choice for t in run]
                if buffered:
                    options.extend(self._flushes())
                if len(options) == 1:
                    pick = 0
                else:
                    # Running another thread preempts a runnable ``me``; a flush always
                    # counts.
                    if default >= 0:
                        costs = [1] * len(options)
                        costs[default] = 0
                    else:
                        default = 0
                        costs = [0] * nrun + [1] * (len(options) - nrun)
                    pick = self._decide(me, options, default, tuple(costs), yielded)
                if self._ev is not None:
                    self._ev_pick(options, pick, len(options) == 1)
                choice = options[pick]
                if choice.kind == "flush":
                    self._flush(self._threads[choice.thread], choice.slot)
                    continue
                nxt = self._threads[choice.thread]
            elif nrun == 1:
                nxt = run[0]
            else:
                quick = self._choose_index
                if quick is None:
                    if default >= 0:
                        rcosts = [1] * nrun
                        rcosts[default] = 0
                        pick = self._decide(
                            me, [t.run_choice for t in run], default, tuple(rcosts), yielded
                        )
                    else:
                        pick = self._decide(
                            me, [t.run_choice for t in run], 0, (0,) * nrun, yielded
                        )
                else:
                    pick = self._quick_decide(quick, run, default)
                nxt = run[pick]
            me.yielding = False
            if nxt is me:
                me.state = runnable
                return
            nxt.state = runnable
            if me.state is _DONE:
                self._handoff = nxt  # the hub runs it once this greenlet has ended
                return
            self._switch(nxt)
            if self._aborting:
                raise Abort
            # Woken: we were chosen; a blocked thread re-checks its predicate itself.
            return

    def _quick_decide(
        self, quick: Callable[[int, int], int], run: list[_CThread], default: int
    ) -> int:
        """:meth:`_decide` for a strategy's ``choose_index`` among threads only (no
        Decision object): the same pick, decision record and preemption count."""
        try:
            pick = quick(len(run), default if default >= 0 else 0)
        except _Failure as f:
            self._fail(f.verdict, f.kind, f.message)
            self._abort_all()
            raise Abort from None
        if pick < 0:
            self._fail("pruned", "pruned", "state already explored")
            self._abort_all()
            raise Abort
        self._decisions.append(run[pick].run_choice)
        if default >= 0 and pick != default:
            self._preemptions += 1
        return pick

    def _deadlock(self) -> None:
        blocked = [t for t in self._threads if t.state is _BLOCKED]
        lost = any(t.waiting.startswith("poll") for t in blocked)
        lines = "; ".join(
            f"thread {t.idx} ({t.name}) waits on {t.waiting} at {_format_where(t.code, t.line)}"
            for t in blocked
        )
        kind = "lost_wakeup" if lost else "deadlock"
        what = (
            "lost wake-up: a thread sleeps in poll and nothing will wake it"
            if lost
            else "deadlock: every thread is blocked and no timer is pending"
        )
        self._fail("fail", kind, f"{what}; {lines}")
        self._abort_all()

    def _block(
        self, me: _CThread, waiting: str, ready: Callable[[], bool], deadline: int | None,
        on: tuple[Any, ...] = (),
    ) -> bool:
        """Park until ``ready()`` (True) or virtual ``deadline`` passes (False).  ``on``: the
        objects ``ready`` reads (a resumption writes them, for DPOR's events)."""
        while not ready():
            if deadline is not None and self._now >= deadline:
                return False
            me.state = _BLOCKED
            me.waiting = waiting
            me.deadline = deadline
            if self._cur is not None:
                self._cur.parked = waiting  # this step left its thread waiting
            if deadline is None:
                me.blocker = ready
            else:
                me.blocker = lambda: ready() or self._now >= deadline
            try:
                self._schedule(me)
            finally:
                me.blocker = None
                me.deadline = None
                if me.state is _BLOCKED:
                    me.state = _RUNNABLE
            # Chosen while blocked: resuming is an event of its own (the lock is taken, the
            # wait returns), so schedules that differ only here have different traces.
            self._record(me, "resume", -5000 - me.idx, waiting)
            cur = self._cur
            if cur is not None:
                for key in on:
                    cur.write(key)
                if deadline is not None:
                    cur.read(("time",))
            if self.memory is _C11:
                self._sc_fence(me)  # what woke it (an unlock, a set, an exit) is seen
        return True

    # ------------------------------------------------------------------------------------
    # Memory model
    # ------------------------------------------------------------------------------------
    def _drain(self, t: _CThread) -> None:
        """Every buffered store of ``t`` reaches memory, in order (a full fence); under
        c11, an SC fence."""
        if self.memory is _C11:
            self._sc_fence(t)
            return
        if not t.buffer and self._cur is None:
            return  # nothing to flush, no event to record
        race = self._race
        cur = self._cur
        if cur is not None and self.memory is not _SC:
            cur.write(("bufall", t.idx))  # it disables every pending flush of t
        for cell, v, _ in t.buffer:
            cell.value = v
            if race is not None:
                race.flushed(t.idx, cell.oid)
            self._touch(t, "flush", cell.oid)
            if cur is not None:
                cur.write(cell.oid)
                cur.write(("buf", t.idx, cell.oid))
        t.buffer.clear()

    def _sc_fence(self, t: _CThread) -> None:
        """c11: an SC fence (``smp_mb``, and every lock / notifier / poll / thread operation):
        acquire what the thread's relaxed loads read, then join the global SC view and
        publish into it, and lend the result to the thread's later relaxed stores."""
        _join(t.view, t.acq_pend)
        _join(t.view, self._sc_view)
        self._sc_view = dict(t.view)
        t.rel_view = self._sc_view
        self._touch(t, "sc_fence", -998)

    def _read_from(self, me: _CThread, cell: _CCell[Any], order: Ordering) -> Any:
        """c11: the write a load of ``cell`` reads (a decision when older writes are still
        visible to ``me``); joins the message's view as the ordering says."""
        hist = cell.hist
        lo = me.view.get(cell.oid, 0)
        if order is Ordering.SEQ_CST and cell.sc_ts > lo:
            lo = cell.sc_ts
        ts = len(hist) - 1
        if lo < ts:
            # The newest write is the default and costs nothing; every stale read costs one
            # preemption, so DFS bounds stale reads like switches.
            options = [Choice("read", me.idx, k) for k in range(lo, ts + 1)]
            costs = (1,) * (ts - lo) + (0,)
            ts = lo + self._decide(me, options, len(options) - 1, costs)
        self._touch(me, f"rf{ts}", cell.oid)
        value, msg = hist[ts]
        if me.view.get(cell.oid, 0) < ts:
            me.view[cell.oid] = ts
        _join(me.view if order in _ACQUIRING else me.acq_pend, msg)
        return value

    def _write(self, me: _CThread, cell: _CCell[Any], value: Any, order: Ordering,
               base: dict[int, int] | None = None) -> None:
        """c11: append a write of ``value`` to ``cell``'s history, with its message view."""
        ts = len(cell.hist)
        me.view[cell.oid] = ts
        msg = dict(me.view if order in _RELEASING else me.rel_view)
        if base:
            _join(msg, base)  # an RMW continues the release sequence it extends
        msg[cell.oid] = ts
        cell.hist.append((value, msg))
        cell.rmw.append(base is not None)
        cell.writers.append(me.idx)
        if order is Ordering.SEQ_CST:
            cell.sc_ts = ts
        cell.value = value

    def _decide(
        self,
        me: _CThread,
        options: list[Choice],
        default: int,
        costs: tuple[int, ...],
        yielding: bool = False,
    ) -> int:
        """Ask the strategy to pick one of ``options`` (each costing ``costs`` preemptions)
        and record the choice; a strategy failure or a pruned state ends the run."""
        d = Decision(
            index=len(self._decisions),
            step=self._steps,
            current=me.idx,
            options=tuple(options),
            default=default,
            costs=costs,
            preemptions=self._preemptions,
            fingerprint_fn=self._fingerprint,
            yielding=yielding,
            pending_fn=self._pending_of,
            events=self._ev,
            procs=None if self._ev is None else tuple(self._proc_key(o) for o in options),
        )
        try:
            pick = self._strategy.choose(d)
        except _Failure as f:
            self._fail(f.verdict, f.kind, f.message)
            self._abort_all()
            raise Abort from None
        if pick < 0:
            self._fail("pruned", "pruned", "state already explored")
            self._abort_all()
            raise Abort
        self._decisions.append(options[pick])
        self._preemptions += costs[pick]
        return pick

    def _flush(self, t: _CThread, slot: int) -> None:
        """One buffered store of ``t`` reaches memory: the oldest (tso), or the oldest one
        to the ``slot``-th cell of the buffer in order of first appearance (pso)."""
        i = 0
        if self.memory is _PSO and slot:
            seen: list[int] = []
            for j, (cell, _, _) in enumerate(t.buffer):
                if cell.oid not in seen:
                    seen.append(cell.oid)
                    if len(seen) == slot + 1:
                        i = j
                        break
        cell, v, barriers = t.buffer[i]
        if barriers != t.buffer[0][2]:
            raise RuntimeError(
                f"flush of {cell._label()} from thread {t.idx} would overtake a store-store "
                "barrier; offer only the slots _pso_ready returns"
            )
        del t.buffer[i]
        cell.value = v
        if self._race is not None:
            self._race.flushed(t.idx, cell.oid)
        self._touch(t, "flush", cell.oid)
        cur = self._cur
        if cur is not None:
            cur.read(("bufall", t.idx))
            cur.write(("buf", t.idx, cell.oid))
            cur.write(cell.oid)
            if self.memory is _PSO:
                cur.epoch = barriers

    def _obj(self) -> int:
        if self._cur is not None:
            self._cur.write(("objs",))  # ids in creation order: creations are ordered
        self._objs += 1
        return self._objs

    # ------------------------------------------------------------------------------------
    # Events for partial-order reduction (only with a strategy that ``needs_events``)
    # ------------------------------------------------------------------------------------
    def _proc_key(self, c: Choice) -> tuple[Any, ...]:
        """The process an option moves (see :class:`Event`)."""
        if c.kind == "run":
            return ("t", c.thread)
        if self.memory is Memory.PSO:
            return ("b", c.thread, self._slot_cell(self._threads[c.thread], c.slot))
        return ("b", c.thread)

    @staticmethod
    def _slot_cell(t: _CThread, slot: int) -> int:
        seen: list[int] = []
        for cell, _, _ in t.buffer:
            if cell.oid not in seen:
                seen.append(cell.oid)
                if len(seen) == slot + 1:
                    return cell.oid
        raise RuntimeError(f"thread {t.idx} has no buffered cell in slot {slot}")

    def _ev_pick(self, options: list[Choice], pick: int, forced: bool) -> None:
        """A step starts: record its event (a forced step may be refused by the strategy:
        DPOR's sleep set, and then the run ends as pruned)."""
        assert self._ev is not None
        procs = tuple(self._proc_key(o) for o in options)
        proc = procs[pick]
        if forced:
            allow = getattr(self._strategy, "forced", None)
            try:
                ok = allow is None or allow(self._ev, proc)
            except _Failure as f:
                self._fail(f.verdict, f.kind, f.message)
                self._abort_all()
                raise Abort from None
            if not ok:
                self._fail("pruned", "pruned", "sleep set: an equivalent run was explored")
                self._abort_all()
                raise Abort
        ev = Event(proc, self._ev_enabled(procs))
        c = options[pick]
        if c.kind == "run":
            t = self._threads[c.thread]
            if t.pending[0] == "yield":
                ev.glob = True  # enabled again by whatever ran since it yielded
            if c.thread not in self._ev_started:
                self._ev_started.add(c.thread)
                ev.read(("thr", c.thread))  # after the spawn that made it
        self._ev.append(ev)
        self._cur = ev

    def _ev_disabled(self, proc: tuple[Any, ...]) -> bool:
        """Whether option ``proc``'s step would block and change nothing but its thread's
        state: a blocking lock of a mutex another thread holds, a join of a live thread (no
        zero timeout, the store buffer empty: a drain is an effect), or a woken wait's
        reacquisition of a held mutex.  Such a thread is disabled for DPOR (left out of
        :attr:`Event.enabled`) until the operation can complete."""
        if proc[0] != "t":
            return False
        gate = self._threads[proc[1]].gate
        return gate is not None and gate()

    def _ev_enabled(self, procs: tuple[tuple[Any, ...], ...]) -> tuple[tuple[Any, ...], ...]:
        """The options not disabled (:meth:`_ev_disabled`); all of them when every one is
        (a deadlock, or threads blocked for good: the step happens as without events)."""
        on = tuple(q for q in procs if not self._ev_disabled(q))
        return on or procs

    # ------------------------------------------------------------------------------------
    # Platform API
    # ------------------------------------------------------------------------------------
    def new_id(self) -> int:
        if self._cur is not None:
            self._cur.write(("ids",))
        self._ids += 1
        return self._ids

    def start_thread(self, target: Callable[[], None], name: str) -> ThreadHandle:
        me = self._me()
        # The new thread's index is taken *after* the scheduling point: another thread may
        # start one meanwhile.  Spawns share one object (the thread table), so DFS orders
        # concurrent spawns like any other pair of dependent operations.
        self._point(me, "spawn", -999, f"thread {len(self._threads)} ({name})")
        idx = len(self._threads)
        if self._cur is not None:
            self._cur.write(("spawn",))  # the thread table: spawns are ordered
            self._cur.write(("thr", idx))
        self._drain(me)
        if self._race is not None:
            self._race.spawn(me.idx, idx)
        t = self._new_thread(target, name)
        if self.memory is _C11:
            t.view = dict(me.view)
            t.rel_view = dict(me.view)
        t.priming = True
        t.parent = me
        t.state = _RUNNABLE
        self._switch(t)  # the child runs to its first operation, then hands back
        if self._aborting:
            raise Abort
        return _CHandle(self, t)

    def published(self, state: object, made: bool) -> None:
        """impl's per-platform state (:func:`~aioctx_verify.impl._platform.per_platform`)
        was ``made`` and published by the calling thread, or found: for the race detector
        a release by its maker and an acquire by each finder (the dictionary publishes it
        whole, like an RCU pointer).  No scheduling point."""
        if self._race is not None and not self._aborting:
            self._race.published(self._me().idx, id(state), made)

    def current_thread(self) -> ThreadId:
        return self._me().tid

    def main_thread(self) -> ThreadId:
        return ThreadId(0)

    def yield_now(self) -> None:
        me = self._me()
        me.yielding = True
        self._point(me, "yield", -2000 - me.idx, "yield")

    def mutex(self, name: str = "") -> Mutex:
        return _CMutex(self, name)

    def condition(self, mutex: Mutex) -> Condition:
        assert isinstance(mutex, _CMutex)
        return _CCond(self, mutex)

    def atomic(self, initial: T, name: str = "") -> _CCell[T]:
        cell = _CCell(self, initial, name)
        if self._race is not None:
            t = self._by_g.get(getcurrent())
            if t is not None:
                self._race.cell_created(t.idx, cell.oid)
        return cell

    def fence(self, kind: Fence) -> None:
        me = self._me()
        if self._drop_fences and _caller_function() in self._drop_fences:
            return
        self._point(me, f"fence {kind.value}", 0, kind.value)
        if self._race is not None:
            self._race.fenced(me.idx, kind)
        if self.memory is _C11:
            if kind is Fence.MB:
                self._sc_fence(me)
            elif kind is Fence.WMB:
                me.rel_view = dict(me.view)
            else:
                _join(me.view, me.acq_pend)
            self._touch(me, "fence", -998)
        elif kind is Fence.MB:
            self._drain(me)
        elif kind is Fence.WMB and self.memory is _PSO:
            if self._cur is not None:
                self._cur.write(("bufall", me.idx))  # whether it takes effect: buffer empty?
            me.store_barrier()

    def notifier(self) -> RawNotifier:
        n = _CNotifier(self, self._next_fd)
        self._fds[self._next_fd] = n
        self._next_fd += 1
        return n

    def poller(self) -> Poller:
        return _CPoller(self)

    def fd_is_open(self, fd: int) -> bool:
        if fd >= FAKE_FD_BASE:
            if self._cur is not None:
                self._cur.read(("objs",))
            return fd in self._fds and not self._fds[fd].closed
        try:
            os.fstat(fd)
        except OSError:
            return False
        return True

    def monotonic_ns(self) -> int:
        me = self._me()
        self._point(me, "clock", 0, "clock")
        if self._cur is not None:
            self._cur.read(("time",))
        return self._now

    def wall_ns(self) -> int:
        me = self._me()
        self._point(me, "clock", 0, "clock")
        if self._cur is not None:
            self._cur.read(("time",))
        return EPOCH_NS + self._now


class _CHandle:
    def __init__(self, p: ControlledPlatform, t: _CThread) -> None:
        self._p = p
        self._t = t
        self.name = t.name

    def join(self, timeout: float | None = None) -> None:
        p = self._p
        me = p._me()
        if p._ev is not None and (timeout is None or int(timeout * 1e9) > 0):
            t = self._t
            me.gate = lambda: t.state is not _State.DONE and not me.buffer
        p._point(me, "join", -1000 - self._t.idx, f"thread {self._t.idx}")
        me.gate = None
        p._drain(me)
        key = ("thr", self._t.idx)
        if p._cur is not None:
            p._cur.read(key)
        deadline = None if timeout is None else p._now + int(timeout * 1e9)
        done = p._block(
            me, f"join thread {self._t.idx}", lambda: self._t.state is _DONE, deadline,
            (key,),
        )
        if done and p._race is not None:
            p._race.joined(me.idx, self._t.idx)

    def is_alive(self) -> bool:
        return self._t.state is not _DONE


class _CCell(Generic[T]):
    __slots__ = ("_p", "hist", "lbl", "name", "oid", "rmw", "sc_ts", "value", "writers")

    def __init__(self, p: ControlledPlatform, value: T, name: str) -> None:
        self._p = p
        self.value: Any = value
        self.name = name or "cell"
        self.oid = p._obj()
        self.lbl = f"{self.name}#{self.oid}"  # every access's trace label
        # c11: every write (value, message view), oldest first; the newest SC write's index.
        # The initial value's message carries its creator's view (a fresh cell reaches
        # other threads through a publication the platform does not see).
        self.hist: list[tuple[Any, dict[int, int]]] = []
        self.rmw: list[bool] = []  # c11: whether each write of hist was an RMW's
        self.writers: list[int] = []  # c11: the thread that made each write (-1: creation)
        self.sc_ts = 0
        if p.memory is _C11:
            t = p._by_g.get(getcurrent())
            self.hist.append((value, dict(t.view) if t is not None else {}))
            self.rmw.append(False)
            self.writers.append(-1)

    def __repr__(self) -> str:
        return f"<cell {self.name}={self.value!r}>"

    def _label(self) -> str:
        return self.lbl

    def load(self, order: Ordering = Ordering.SEQ_CST) -> Any:
        p = self._p
        me = p._me()
        p._point(me, "load", self.oid, self.lbl)
        if p.memory is _C11:
            return p._read_from(me, self, order)
        cur = p._cur
        if cur is not None:
            if p.memory is not _SC:
                cur.read(("buf", me.idx, self.oid))  # forwarded or not: own flushes decide
            if not any(cell is self for cell, _, _ in me.buffer):
                cur.read(self.oid)
        if me.buffer:
            for cell, v, _ in reversed(me.buffer):
                if cell is self:
                    return v  # its own store: no synchronisation
        if p._race is not None:
            p._race.loaded(me.idx, self.oid, order)
        return self.value

    def store(self, value: Any, order: Ordering = Ordering.SEQ_CST) -> None:
        p = self._p
        me = p._me()
        p._point(me, "store", self.oid, self.lbl)
        mem = p.memory
        if p._race is not None:
            p._race.stored(me.idx, self.oid, order, mem in (_TSO, _PSO))
        if mem is _C11:
            p._write(me, self, value, order)
            return
        cur = p._cur
        if mem is _SC:
            if cur is not None:
                cur.write(self.oid)
            self.value = value
            return
        if mem is _PSO and order in (Ordering.RELEASE, Ordering.ACQ_REL):
            # Release = store-store barrier, then the store: it cannot become visible before
            # the stores issued before it, but it does not wait for them (no drain).
            if cur is not None:
                cur.write(("bufall", me.idx))
            me.store_barrier()
        if cur is not None:
            cur.write(("buf", me.idx, self.oid))  # its flush comes after it
        me.buffer.append((self, value, me.barriers))
        if order is Ordering.SEQ_CST:
            p._drain(me)

    def _rmw(self, op: str, order: Ordering, cas: bool = False, expected: Any = None) -> Any:
        p = self._p
        me = p._me()
        p._point(me, op, self.oid, self.lbl)
        if p.memory is _C11:
            # Reads the newest write (RMW atomicity), with exactly its ordering: seq_cst is
            # acquire + release + the seq_cst order (the write sets the cell's sc_ts), not
            # a fence (C11; GCC's __atomic builtins on AArch64).
            me.view[self.oid] = len(self.hist) - 1
            p._touch(me, f"rf{me.view[self.oid]}", self.oid)
            _join(me.view if order in _ACQUIRING else me.acq_pend, self.hist[-1][1])
            return self.value
        p._drain(me)
        if p._cur is not None:
            p._cur.write(self.oid)  # a failed compare-exchange too (conservative)
        old = self.value
        if p._race is not None:  # a failed compare-exchange writes nothing
            p._race.rmw(me.idx, self.oid, order, not cas or old == expected)
        return old

    def _rmw_write(self, value: Any, order: Ordering) -> None:
        p = self._p
        if p.memory is _C11:
            me = p._me()
            p._write(me, self, value, order, base=self.hist[-1][1])
            return
        self.value = value

    def exchange(self, value: Any, order: Ordering = Ordering.SEQ_CST) -> Any:
        old = self._rmw("exchange", order)
        self._rmw_write(value, order)
        return old

    def compare_exchange(
        self, expected: Any, value: Any, order: Ordering = Ordering.SEQ_CST
    ) -> Any:
        old = self._rmw("cmpxchg", order, True, expected)
        if old == expected:
            self._rmw_write(value, order)
        return old

    def fetch_add(self, delta: int, order: Ordering = Ordering.SEQ_CST) -> Any:
        old = self._rmw("fetch_add", order)
        self._rmw_write(old + delta, order)
        return old


class _CMutex:
    def __init__(self, p: ControlledPlatform, name: str) -> None:
        self._p = p
        self.name = name or "mutex"
        self.oid = p._obj()
        self.owner: _CThread | None = None
        self.lbl = f"{self.name}#{self.oid}"

    def _label(self) -> str:
        return self.lbl

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        p = self._p
        me = p._me()
        if p._ev is not None and blocking and (
            timeout is None or timeout < 0 or int(timeout * 1e9) > 0
        ):
            me.gate = lambda: self.owner is not None and self.owner is not me and not me.buffer
        p._point(me, "lock", self.oid, self.lbl)
        me.gate = None
        p._drain(me)
        return self._take(me, blocking, timeout)

    def _take(self, me: _CThread, blocking: bool = True, timeout: float = -1) -> bool:
        p = self._p
        if p._cur is not None:
            p._cur.write(self.oid)  # taken, or found held (every lock step is ordered)
        if self.owner is None:
            self.owner = me
            if p._race is not None:
                p._race.mutex_acquired(me.idx, self.oid)
            p._touch(me, "take", self.oid)
            if p._cur is not None:
                p._cur.take = self.oid
            return True
        if self.owner is me:
            raise RuntimeError(
                f"thread {me.idx} re-locked non-recursive {self._label()} (self-deadlock)"
            )
        if not blocking:
            return False
        deadline = None if timeout is None or timeout < 0 else p._now + int(timeout * 1e9)
        ok = p._block(
            me,
            f"lock {self._label()} (held by thread {self.owner.idx})",
            lambda: self.owner is None,
            deadline,
            (self.oid,),
        )
        if ok:
            self.owner = me
            if p._race is not None:
                p._race.mutex_acquired(me.idx, self.oid)
            p._touch(me, "take", self.oid)
            if p._cur is not None:
                p._cur.take = self.oid
        return ok

    def release(self) -> None:
        p = self._p
        me = p._me()
        if self.owner is not me:
            raise RuntimeError(f"thread {me.idx} released {self._label()} that it does not hold")
        p._point(me, "unlock", self.oid, self.lbl)
        p._drain(me)
        if p._race is not None:
            p._race.mutex_released(me.idx, self.oid)
        self.owner = None
        cur = p._cur
        if cur is not None:
            cur.write(self.oid)
        hook = p.on_unlock
        if hook is not None and not p._aborting:
            if cur is not None:
                cur.write(("mon",))  # the state oracle checks what the mutex guards
            hook(self)

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class _CCond:
    def __init__(self, p: ControlledPlatform, mutex: _CMutex) -> None:
        self._p = p
        self._mutex = mutex
        self.oid = p._obj()
        self._waiters: list[list[bool]] = []
        self.lbl = f"cond#{self.oid}"  # every access's trace label

    def _label(self) -> str:
        return self.lbl

    def wait(self, timeout: float | None = None) -> bool:
        p = self._p
        me = p._me()
        m = self._mutex
        if m.owner is not me:
            raise RuntimeError(
                f"thread {me.idx} waited on {self._label()} without holding its mutex"
            )
        p._point(me, "wait", self.oid, self.lbl)
        p._drain(me)
        slot = [False]
        self._waiters.append(slot)
        if p._race is not None:
            p._race.mutex_released(me.idx, m.oid)
        m.owner = None
        p._touch(me, "unlock", m.oid)
        cur = p._cur
        if cur is not None:
            cur.write(self.oid)
            cur.write(m.oid)
        hook = p.on_unlock
        if hook is not None and not p._aborting:
            if cur is not None:
                cur.write(("mon",))
            hook(m)
        deadline = None if timeout is None else p._now + max(0, int(timeout * 1e9))
        if p._ev is not None:
            # woken (or timed out), its resumption reacquires m: disabled while m is held
            me.gate = lambda: m.owner is not None
        try:
            ok = p._block(
                me, f"wait {self._label()}", lambda: slot[0], deadline, (self.oid,)
            )
            if slot[0] and p._race is not None:
                p._race.woken(me.idx, slot)
        finally:
            if not slot[0] and slot in self._waiters:
                self._waiters.remove(slot)
            if not p._aborting:
                m._take(me)
            me.gate = None
        return ok

    def notify(self, n: int = 1) -> None:
        p = self._p
        me = p._me()
        if self._mutex.owner is not me:  # as threading.Condition, the real platform's
            raise RuntimeError(
                f"thread {me.idx} notified {self._label()} without holding its mutex"
            )
        p._point(me, "notify", self.oid, self.lbl)
        if p._cur is not None:
            p._cur.write(self.oid)
        if p._race is not None:
            p._race.signalled(me.idx, self._waiters[:n])
        for slot in self._waiters[:n]:
            slot[0] = True
        del self._waiters[:n]

    def notify_all(self) -> None:
        self.notify(len(self._waiters) or 1)

    def __enter__(self) -> bool:
        return self._mutex.acquire()

    def __exit__(self, *exc: object) -> None:
        self._mutex.release()


class _CNotifier:
    def __init__(self, p: ControlledPlatform, fd: int) -> None:
        self._p = p
        self.read_fd = fd
        self.write_fd = fd
        self.value = False
        self.closed = False
        self.oid = p._obj()
        self.lbl = f"notifier#{self.oid}"  # every access's trace label

    def set(self) -> None:
        p = self._p
        me = p._me()
        p._point(me, "notifier_set", self.oid, self.lbl)
        p._drain(me)
        if p._cur is not None:
            p._cur.write(self.oid)
        if p._race is not None:
            p._race.notifier_set(me.idx, self.oid)
        self.value = True

    def test_and_clear(self) -> bool:
        p = self._p
        me = p._me()
        p._point(me, "notifier_clear", self.oid, self.lbl)
        p._drain(me)
        if p._cur is not None:
            p._cur.write(self.oid)
        v = self.value
        if v and p._race is not None:
            p._race.notifier_read(me.idx, self.oid, clear=True)
        self.value = False
        return v

    def close(self) -> None:
        cur = self._p._cur
        if cur is not None:
            cur.write(self.oid)
            cur.write(("objs",))
        self.closed = True
        self._p._fds.pop(self.read_fd, None)


class _CPoller:
    def __init__(self, p: ControlledPlatform) -> None:
        self._p = p
        self.oid = p._obj()
        self._fds: dict[int, int] = {}
        # the trace labels of a blocking and a non-blocking poll
        self._lbl_block = f"poll#{self.oid}(block)"
        self._lbl_nonblock = f"poll#{self.oid}(nonblock)"

    def register(self, fd: int, events: int) -> None:
        if self._p._cur is not None:
            self._p._cur.write(self.oid)
        self._fds[fd] = events

    def unregister(self, fd: int) -> None:
        if self._p._cur is not None:
            self._p._cur.write(self.oid)
        self._fds.pop(fd, None)

    def _keys(self) -> tuple[Any, ...]:
        """What a poll reads: this poller's registrations and every registered notifier."""
        fds = self._p._fds
        return (self.oid, ("objs",), *(fds[fd].oid for fd in self._fds if fd in fds))

    def _ready(self) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        real: list[tuple[int, int]] = []
        for fd, ev in self._fds.items():
            if fd >= FAKE_FD_BASE:
                n = self._p._fds.get(fd)
                if n is None:
                    out.append((fd, POLLNVAL))
                elif n.value and ev & POLLIN:
                    out.append((fd, POLLIN))
            else:
                real.append((fd, ev))
        if real:
            rp = select.poll()
            for fd, ev in real:
                rp.register(fd, ev)
            out.extend(rp.poll(0))
        return out

    def _any_ready(self) -> bool:
        """``bool(self._ready())`` without building the list (a blocked poll's predicate,
        evaluated at every scheduling point while it sleeps)."""
        fds = self._p._fds
        real = False
        for fd, ev in self._fds.items():
            if fd >= FAKE_FD_BASE:
                n = fds.get(fd)
                if n is None or (n.value and ev & POLLIN):
                    return True
            else:
                real = True
        return real and bool(self._ready())

    def poll(self, timeout_ns: int) -> Sequence[tuple[int, int]]:
        p = self._p
        me = p._me()
        p._point(me, "poll", self.oid, self._lbl_block if timeout_ns else self._lbl_nonblock)
        p._drain(me)
        cur = p._cur
        if cur is not None:
            for key in self._keys():
                cur.read(key)
        ready = self._peek(me)
        if ready or timeout_ns == 0:
            return ready
        deadline = None if timeout_ns < 0 else p._now + timeout_ns
        what = "poll (no timeout)" if deadline is None else f"poll (until t={deadline} ns)"
        p._block(me, what, self._any_ready, deadline,
                 self._keys() if cur is not None else ())
        return self._peek(me)

    def _peek(self, me: _CThread) -> list[tuple[int, int]]:
        """:meth:`_ready`, as a read of every registered notifier (for DFS fingerprints)."""
        p = self._p
        if p._track_chains:
            for fd in self._fds:
                n = p._fds.get(fd)
                if n is not None:
                    p._touch(me, "peek", n.oid)
        ready = self._ready()
        if ready and p._race is not None:
            for fd, _ in ready:
                n = p._fds.get(fd)
                if n is not None and n.value:
                    p._race.notifier_read(me.idx, n.oid, clear=False)
        return ready


def _outside_frame() -> FrameType | None:
    """The innermost frame that is not in this module (the code that called the seam)."""
    f: FrameType | None = sys._getframe(2)
    while f is not None and f.f_code.co_filename == _HERE:
        f = f.f_back
    return f


def _format_where(code: CodeType | CodeRef | None, line: int) -> str:
    if code is None:
        return "(not started)"
    return f"{_short(code.co_filename)}:{line} ({code.co_name})"


def _caller_function() -> str:
    f = _outside_frame()
    return "" if f is None else f.f_code.co_name


def _exc_where(e: BaseException) -> str:
    tb = e.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is None:
        return "?"
    return f"{_short(last.tb_frame.f_code.co_filename)}:{last.tb_lineno}"


@functools.lru_cache(maxsize=512)
def _short(path: str) -> str:
    parts = path.replace("\\", "/").split("/")
    return "/".join(parts[-2:])
