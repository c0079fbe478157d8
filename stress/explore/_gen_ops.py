"""Generated programs: the vocabulary, the seeded generator, and the program as a value.

A generated program is a handful of threads (2-4), each a short script of operations over
impl's whole public API, plus the objects they share (IOThreads, bottom halves, timers on
every clock, event notifiers with fd / notifier handlers, optionally a dataplane device).
:func:`generate` makes one from ``(seed, index)`` alone, deterministically; the runner is
:mod:`aioctx_verify.stress.explore._generated`.

Why a seeded generator rather than Hypothesis strategies: a failure must replay from one
printed line, and ``gen:seed=3,index=17,keep=0-4.9`` names a program in a few characters
(the generator is a pure function of seed and index, and shrinking only ever *drops*
operations, so the kept operation numbers name the shrunk program exactly); shrinking must
respect the threading rules (drop whole threads and operations, never produce misuse),
which a program-aware shrinker does by construction while Hypothesis would shrink a
choice sequence; the interleavings are the explorers' job (random, PCT, DFS, under sc /
tso / pso), not Hypothesis'.  The multi-thread stateful search
(:mod:`aioctx_verify.stress.stateful`) already lets Hypothesis draw scripts and
interleavings together; this generator is its complement over a wider API.

Well-formedness by construction (any failure is an impl bug, never a misuse):

* contexts are taken in one global order (IOThread contexts by index, then the main
  context), nesting (the same context again included) at most three deep, and every
  acquire is released by the structure itself (``L(c){...}``);
* nothing blocks while holding a context except a nested acquire in order and a blocking
  ``aio_poll`` of a held context waiting for its own thread-pool request (``Y``);
* stop-the-world, IOThread start/join, dataplane and VM-state changes happen with no
  context held; dataplane and VM-state changes come from one control thread (QEMU's main
  thread under the BQL);
* handlers are added and removed only with their context held (or from its callbacks);
  thread-pool requests are submitted and cancelled with their context held;
* a private BH is used by its owner thread only; ``qemu_bh_delete`` is its owner's last
  use of it and is made with its context held; a self-deleting BH is scheduled once;
* ``aio_disable_external`` / ``aio_enable_external`` are one balanced block;
* callbacks touch their own context only (schedule BHs of it, set its notifiers, arm its
  timers, add / remove its handlers, a nested non-blocking ``aio_poll``; a completion
  callback may drain its context, a nested blocking ``aio_poll`` until every request
  submitted to it before its own completed) and never take a lock, so no callback can
  deadlock against a script;
* only thread 0 (the main loop, home of the main context) polls the main context;
* every context a thread uses is referenced while it uses it: the IOThreads' contexts and
  the main context by the program until teardown; the *transient* context ``x`` (made with
  ``aio_context_new`` or ``AioContext()``, polled only by a holder waiting for its own
  request) by each of its users, one reference each, until that user's ``aio_context_unref``
  (its last use of ``x``; teardown drops the references of users whose drop was shrunk
  away), so the last user to drop closes it, in whichever thread that is.  ``x`` is a
  leaf of the lock order: it is acquired alone and nothing is acquired while it is held;
* ``aio_context_ref`` / ``aio_context_unref`` around a body of lock-free operations take an
  extra reference of a context the thread may use and drop it, in the same thread or
  handed over through a one-shot BH whose callback (in the loop of another context) drops
  it; no thread takes a reference of a *misuse target* (an IOThread's context whose only
  reference is its IOThread's), whose ``aio_context_unref`` must be refused with
  ``ContextInUseError`` while its IOThread runs;
* read-only queries (statistics, debug snapshot, external-disabled, BH state, repr, the
  dataplane ring, the thread pool and its repr, a timer's pending / expiry / repr, the main
  context, the live IOThreads) run from any thread on objects it may use, held or not
  (generator version 3: impl's lock statistics read the depth only for its owner, and the
  timer and pool queries take their mutex, so none of them is a data race any more); a
  private BH is queried by its owner only, and not if it deletes itself (its callback may
  do so meanwhile);
* a kick (``aio_notify`` after an idle schedule of a new BH, then waiting until that BH
  ran; optionally first waiting, a bounded number of yields, until the context's loop
  sleeps, which reads its debug snapshot) is made with no context held, to a context whose
  loop runs (an IOThread's; the main context from another thread than 0).

Each operation that has both a method and a QEMU-named function in :mod:`impl.qemu` draws
which one it calls (``Op.q``); the listing shows the call it makes (``qemu_bh_schedule(bh0)``
or ``bh0.schedule()``).
"""

from __future__ import annotations

import enum
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from aioctx_verify.impl import SCALE_MS, SCALE_NS, SCALE_US, ClockType

__all__ = [
    "FACADE_KINDS",
    "FOCUS_AREAS",
    "FOCUS_SHARE",
    "GENERATOR_VERSION",
    "QUERIES",
    "BHSpec",
    "GenProgram",
    "NotifierSpec",
    "Op",
    "OpKind",
    "Query",
    "Setup",
    "TimerSpec",
    "Used",
    "generate",
    "parse_keep",
]

#: The generator's version: part of every program name, so that a replay line printed by
#: another version is refused instead of replaying a different program (or the same program
#: with other scheduling points: 6 draws the programs of 5, but its external_disabled query
#: always reads the count, and c11 runs publish around every disable and enable).
GENERATOR_VERSION = 7
#: A program whose index is a multiple of this begins with a concurrent first use of the
#: main context (:attr:`GenProgram.first_use`).
FIRST_USE_EVERY = 4
#: Threads of a program (thread 0 included), drawn from this, and the deepest nesting.
THREADS = (2, 2, 3, 3, 4)
MAX_DEPTH = 3
#: Shared bottom halves per context.
BH_PER_CTX = 2


class OpKind(enum.Enum):
    """What a script can do; the value is the op's code in listings."""

    # lock-free: anywhere
    SCHED = "S"  # qemu_bh_schedule(shared bh a)
    IDLE = "I"  # qemu_bh_schedule_idle(shared bh a)
    CANCEL = "C"  # qemu_bh_cancel(shared bh a); smp_mb()
    ONESHOT = "O"  # aio_bh_schedule_oneshot(ctx a)
    NSET = "N"  # event_notifier_set(notifier a)
    TMOD = "T"  # timer_mod(timer a, now + b)
    TDEL = "D"  # timer_del(timer a)
    KICK = "K"  # dataplane guest request + kick
    PSCHED = "PS"  # qemu_bh_schedule(private bh a)
    PIDLE = "PI"  # qemu_bh_schedule_idle(private bh a)
    PCANCEL = "PC"  # qemu_bh_cancel(private bh a); smp_mb()
    VSTOP = "V-"  # qemu_clock_stop_virtual
    VSTART = "V+"  # qemu_clock_start_virtual
    VADV = "VA"  # qemu_clock_advance_virtual(b ms)
    CLOCK = "CE"  # qemu_clock_enable(clock a, b)
    EXT = "E"  # aio_disable_external(ctx a) { body } aio_enable_external(ctx a)
    NOTIFY = "AN"  # aio_notify(ctx a)
    MISUSE = "UX"  # aio_context_unref(misuse target a): ContextInUseError expected
    QUERY = "?"  # read-only query b (QUERIES) of object a
    REF = "RF"  # aio_context_ref(ctx a) { body } unref (b: 0 here, 1 + d: one-shot of ctx d)
    # with no context held
    LOCK = "L"  # aio_context_acquire(ctx a) { body } release (b: with / acquire / one_off)
    STW = "W"  # stop_the_world(every IOThread) { body }
    ITER = "IT"  # iothread_new; (b: refused unref of its context;) oneshot into it; join
    KICKW = "AK"  # (b: once ctx a's loop sleeps,) idle-schedule a new BH of ctx a,
    # aio_notify(ctx a), wait until it ran
    UNREF = "U"  # aio_context_unref(x): the thread's last use of the transient context
    DPSTOP = "DP-"  # dataplane stop (control thread)
    DPSTART = "DP+"  # dataplane start (control thread)
    VMSTOP = "VM-"  # VM stop: virtual clock frozen, dataplane stopped (control thread)
    VMSTART = "VM+"  # VM start (control thread)
    HPOLL = "P"  # thread 0: aio_poll(main, false) without acquiring (its home)
    # with context a held
    POLL = "Q"  # aio_poll(ctx a, false)
    HADD = "H+"  # add the handler of notifier a
    HDEL = "H-"  # remove the handler of notifier a
    SUBMIT = "R"  # thread_pool_submit_aio(ctx a); b: its completion drains earlier ones
    RCANCEL = "RX"  # bdrv_aio_cancel_async(this thread's last request on ctx a)
    SYNC = "Y"  # submit to ctx a's pool, aio_poll(ctx a, true) until it completes
    PDEL = "PD"  # qemu_bh_delete(private bh a)
    ACCEPT = "AA"  # aio_notify_accept(ctx a)
    SLEEP = "Z"  # the thread is busy elsewhere for b ms (time passes: timers come due)


class Query(enum.IntEnum):
    """What a :attr:`OpKind.QUERY` reads (its ``b``); ``a`` names the object."""

    STATS = 0  # ctx a: statistics()
    SNAPSHOT = 1  # ctx a: debug_snapshot()
    EXTERNAL = 2  # ctx a: external_disabled
    REPR = 3  # ctx a: repr()
    BH = 4  # bh a: is_scheduled, repr()
    QUEUED = 5  # the dataplane device: queued()
    POOL = 6  # held ctx a: aio_get_thread_pool(a).pending()
    MAIN = 7  # qemu_get_aio_context() / main_context()
    LIVE = 8  # live_iothreads()
    PENDING = 9  # ctx a: pending() of the pool a request was submitted to (if any yet)
    TIMER = 10  # timer a: timer_pending, timer_expire_time_ns, repr()
    POOLREPR = 11  # ctx a: repr() and threads of the pool a request was submitted to


#: Every query a program may make.
QUERIES = tuple(Query)


@dataclass(frozen=True, slots=True)
class Op:
    """One operation; ``uid`` numbers it in the generated program (pre-order); ``q``: it
    calls the QEMU-named function of :mod:`impl.qemu` rather than the method (for the
    kinds that have both)."""

    kind: OpKind
    a: int = 0
    b: int = 0
    body: tuple[Op, ...] = ()
    uid: int = 0
    q: bool = False

    def walk(self) -> Iterator[Op]:
        yield self
        for op in self.body:
            yield from op.walk()


@dataclass(frozen=True, slots=True)
class BHSpec:
    """A bottom half.  Shared BHs (``owner`` None) are used by any thread; a private one
    by its owner only.

    ``behavior``: ``plain``; ``resched`` (reschedules itself until it ran ``arg + 1``
    times); ``chain`` (schedules shared BH ``arg`` of its context, a newer one); ``nested``
    (a nested ``aio_poll(ctx, false)``); ``notify`` (sets notifier ``arg``); ``timer``
    (arms timer ``arg``); ``toggle`` (adds / removes the handler of notifier ``arg``);
    ``selfdel`` (private: deletes itself, scheduled once).
    """

    ctx: int
    behavior: str = "plain"
    arg: int = 0
    owner: int | None = None


@dataclass(frozen=True, slots=True)
class TimerSpec:
    """A timer of context ``ctx`` on ``clock`` in ``scale``; ``rearm``: its callback arms
    it once more."""

    ctx: int
    clock: ClockType
    scale: int
    rearm: bool = False


@dataclass(frozen=True, slots=True)
class NotifierSpec:
    """An event notifier whose read handler lives in context ``ctx``: registered with
    ``aio_set_event_notifier`` or (``fd``) ``aio_set_fd_handler`` on its fd; ``external``
    handlers are left out while external handlers are disabled; ``initially`` registered at
    setup; ``selfremove``: the handler removes itself when it runs."""

    ctx: int
    fd: bool = False
    external: bool = False
    initially: bool = True
    selfremove: bool = False


@dataclass(frozen=True)
class Setup:
    """The shared objects.  Contexts ``0 .. iothreads - 1`` are IOThreads', context
    ``iothreads`` is the main context (home: thread 0)."""

    iothreads: int
    bhs: tuple[BHSpec, ...]
    timers: tuple[TimerSpec, ...]
    notifiers: tuple[NotifierSpec, ...]
    dataplane: bool
    control: int  # the thread that stops / starts the dataplane and the VM
    #: Threads that hold a reference of the transient context ``x`` (none: no ``x``).
    xusers: tuple[int, ...] = ()
    #: ``x`` is made with ``aio_context_new`` (else with ``AioContext()``).
    x_new: bool = False
    #: Swarm testing: the operation kinds this program never draws (see :data:`SWARM`).
    off: frozenset[OpKind] = frozenset()
    #: A small-scope program's area of the API (see :data:`FOCUS_AREAS`), else None.
    focus: str | None = None

    @property
    def main(self) -> int:
        return self.iothreads

    @property
    def x(self) -> int:
        """The transient context's number (after the main context's)."""
        return self.iothreads + 1

    def ctx_name(self, c: int) -> str:
        if c == self.x:
            return "x"
        return "main" if c == self.main else f"io{c}"


@dataclass(frozen=True, slots=True)
class Used:
    """What a program's kept operations reach: contexts, BHs, timers, notifiers."""

    ctxs: frozenset[int]
    bhs: frozenset[int]
    timers: frozenset[int]
    notifiers: frozenset[int]


@dataclass(frozen=True)
class GenProgram:
    """A generated program: ``generate(seed, index)`` with the operations in ``keep``.

    ``keep`` None: every operation.  Dropping an operation drops its body.
    """

    seed: int
    index: int
    setup: Setup
    scripts: tuple[tuple[Op, ...], ...] = field(repr=False)
    keep: frozenset[int] | None = None

    @property
    def name(self) -> str:
        """The program name of its schedule strings."""
        return f"gen{GENERATOR_VERSION}.s{self.seed}.i{self.index}"

    @property
    def spec(self) -> str:
        """``gen:seed=S,index=I[,keep=...]``: what names this program in a replay line."""
        head = f"gen:seed={self.seed},index={self.index}"
        if self.keep is not None:
            head += f",keep={_ranges(sorted(self.keep))}"
        return head

    def ops(self) -> Iterator[Op]:
        """Every kept operation, pre-order, thread by thread."""
        for s in self.scripts:
            for op in s:
                yield from op.walk()

    @property
    def size(self) -> int:
        return sum(1 for _ in self.ops())

    @property
    def threads(self) -> int:
        """Threads that run a script (thread 0 always runs: it is the main loop)."""
        return 1 + sum(1 for s in self.scripts[1:] if s)

    @property
    def first_use(self) -> bool:
        """Whether the run begins with a concurrent first use of the main context: thread
        0 and a helper thread both call ``qemu_get_aio_context`` on the fresh platform,
        which makes it once, and both must get that one (every fourth program, by index:
        the program's operations do not change)."""
        return self.index % FIRST_USE_EVERY == 0

    def without(self, uids: frozenset[int] | set[int]) -> GenProgram:
        """This program with the operations ``uids`` (and their bodies) dropped."""
        kept = frozenset(op.uid for op in self.ops()) - frozenset(uids)
        return self.restrict(kept)

    def restrict(self, keep: frozenset[int]) -> GenProgram:
        """Only the operations in ``keep`` (an operation whose container is dropped goes
        too)."""

        def cut(ops: tuple[Op, ...]) -> tuple[Op, ...]:
            return tuple(replace(op, body=cut(op.body)) for op in ops if op.uid in keep)

        scripts = tuple(cut(s) for s in self.scripts)
        kept = frozenset(op.uid for s in scripts for o in s for op in o.walk())
        return replace(self, scripts=scripts, keep=kept)

    def used(self) -> Used:
        """The objects the kept operations reach (directly, or through a BH's callback);
        the others are not created."""
        st = self.setup
        bhs: set[int] = set()
        timers: set[int] = set()
        notifiers: set[int] = set()
        ctxs = {st.main}
        for op in self.ops():
            k = op.kind
            if k in _BH_OPS:
                bhs.add(op.a)
            elif k in (OpKind.TMOD, OpKind.TDEL):
                timers.add(op.a)
            elif k in (OpKind.NSET, OpKind.HADD, OpKind.HDEL):
                notifiers.add(op.a)
            elif k in _CTX_OPS:
                ctxs.add(op.a)
                if k is OpKind.REF and op.b:
                    ctxs.add(op.b - 1)  # the context whose one-shot drops the reference
            elif k is OpKind.UNREF:
                ctxs.add(st.x)
            elif k is OpKind.QUERY:
                if op.b == Query.BH:
                    bhs.add(op.a)
                elif op.b == Query.TIMER:
                    timers.add(op.a)
                elif op.b in _CTX_QUERIES:
                    ctxs.add(op.a)
                elif op.b == Query.QUEUED and st.dataplane:
                    ctxs.add(0)
            elif k is OpKind.STW:
                ctxs.update(range(st.iothreads))
            elif k in _DP_OPS and st.dataplane:
                ctxs.add(0)
        todo = list(bhs)
        while todo:  # what the callbacks of the used BHs reach
            b = st.bhs[todo.pop()]
            if b.behavior == "chain" and b.arg not in bhs:
                bhs.add(b.arg)
                todo.append(b.arg)
            elif b.behavior in ("notify", "toggle"):
                notifiers.add(b.arg)
            elif b.behavior == "timer":
                timers.add(b.arg)
        ctxs |= {st.bhs[j].ctx for j in bhs}
        ctxs |= {st.timers[t].ctx for t in timers}
        ctxs |= {st.notifiers[n].ctx for n in notifiers}
        return Used(
            frozenset(ctxs), frozenset(bhs), frozenset(timers), frozenset(notifiers)
        )

    def uses_dataplane(self) -> bool:
        return self.setup.dataplane and any(
            op.kind in _DP_OPS or (op.kind is OpKind.QUERY and op.b == Query.QUEUED)
            for op in self.ops()
        )

    # -- text ------------------------------------------------------------------------------
    def listing(self) -> str:
        """The program, readable: objects, then one line per thread."""
        st = self.setup
        used = self.used()
        n, ops = self.threads, self.size
        lines = [f"program {self.spec} ({n} thread{'s' * (n != 1)}, {ops} op{'s' * (ops != 1)}):"]
        def ctx_note(c: int) -> str:
            if c == st.main:
                return "main (thread 0's)"
            if c == st.x:
                made = "aio_context_new" if st.x_new else "AioContext()"
                users = ", ".join(f"T{k}" for k in st.xusers)
                return f"x ({made} by T0; a reference each for {users})"
            return f"io{c} (IOThread)"

        ctxs = ", ".join(ctx_note(c) for c in sorted(used.ctxs))
        lines.append(f"  contexts: {ctxs}")
        objs = [f"bh{j}@{st.ctx_name(st.bhs[j].ctx)}{_bh_note(st.bhs[j])}"
                for j in sorted(used.bhs)]
        for j in sorted(used.timers):
            t = st.timers[j]
            objs.append(f"timer{j}@{st.ctx_name(t.ctx)}({t.clock.name},{_SCALES[t.scale]}"
                        f"{',rearm' if t.rearm else ''})")
        for j in sorted(used.notifiers):
            ns = st.notifiers[j]
            objs.append(f"notifier{j}@{st.ctx_name(ns.ctx)}({'fd' if ns.fd else 'en'}"
                        f"{',external' if ns.external else ''}"
                        f"{',registered' if ns.initially else ''}"
                        f"{',self-removing' if ns.selfremove else ''})")
        if self.uses_dataplane():
            objs.append(f"dataplane@io0 (control: T{st.control})")
        lines.append("  objects: " + (", ".join(objs) or "-"))
        for k, s in enumerate(self.scripts):
            if s or k == 0:
                lines.append(f"  T{k}: " + ("; ".join(_describe(op, st) for op in s) or "-"))
        if self.first_use:
            lines.insert(1, "  first: T0 and a helper thread both ask for the main context "
                            "(qemu_get_aio_context) on the fresh platform; both get one")
        lines.append(
            "  then: T0 runs the main loop until every thread is done; clocks, VM and "
            "dataplane restored; every owed callback served; IOThreads joined; oracles"
        )
        return "\n".join(lines)


_SCALES = {SCALE_NS: "ns", SCALE_US: "us", SCALE_MS: "ms"}
#: The operation kinds swarm testing may leave out of a program: all but a BH schedule (the
#: stand-in for "a lock-free op"), an acquire (for "a held section") and the transient
#: context's last unref (its users must drop it).
#: A tuple in definition order: drawing from a set would follow string hashes, which differ
#: from process to process, and the same seed would make another program elsewhere.
SWARM = tuple(k for k in OpKind if k not in (OpKind.SCHED, OpKind.LOCK, OpKind.UNREF))
_BH_OPS = frozenset({OpKind.SCHED, OpKind.IDLE, OpKind.CANCEL, OpKind.PSCHED, OpKind.PIDLE,
                     OpKind.PCANCEL, OpKind.PDEL})
_CTX_OPS = frozenset({OpKind.ONESHOT, OpKind.LOCK, OpKind.EXT, OpKind.POLL, OpKind.SUBMIT,
                      OpKind.RCANCEL, OpKind.SYNC, OpKind.REF, OpKind.MISUSE, OpKind.NOTIFY,
                      OpKind.KICKW, OpKind.ACCEPT})
_CTX_QUERIES = frozenset({Query.STATS, Query.SNAPSHOT, Query.EXTERNAL, Query.REPR, Query.POOL,
                          Query.PENDING, Query.POOLREPR})
#: Kinds that call either a method or its QEMU-named function (``Op.q`` says which).
FACADE_KINDS = frozenset(OpKind) - {OpKind.KICK, OpKind.STW, OpKind.DPSTOP, OpKind.DPSTART,
                                    OpKind.VMSTOP, OpKind.VMSTART, OpKind.SLEEP}


def _has_facade(kind: OpKind, b: int) -> bool:
    """Whether an operation of ``kind`` (with ``b``) has both forms: a lock only in the
    acquire / release style, a query only asking for the pool, the main context or a
    timer's state."""
    if kind is OpKind.LOCK:
        return b == 1
    if kind is OpKind.QUERY:
        return b in (Query.POOL, Query.MAIN, Query.TIMER)
    return kind in FACADE_KINDS
#: Small-scope programs (Jackson's small-scope hypothesis; Andoni, Daniliuc, Khurshid and
#: Marinov, "Evaluating the small scope hypothesis", 2002): a share of the programs is two
#: threads, one IOThread and one to three operations per thread, drawn from one area of the
#: API only.  A bug that needs two operations of one area to meet with nothing else
#: happening (two timers of one sleeping loop armed against each other; a cancel and
#: nothing else to wake the loop) is buried under the incidental wake-ups of a large
#: program and stands out in a small one.  Each area lists every kind its programs may
#: draw; the rest are off (a BH schedule, the stand-in for "a lock-free operation" in a
#: draw of a held section or a top-level operation, stays allowed while any lock-free kind
#: of the area is).
FOCUS_AREAS: dict[str, frozenset[OpKind]] = {
    "timers": frozenset({OpKind.TMOD, OpKind.TDEL, OpKind.VSTOP, OpKind.VSTART, OpKind.VADV,
                         OpKind.CLOCK, OpKind.SLEEP}),
    "bhs": frozenset({OpKind.SCHED, OpKind.IDLE, OpKind.CANCEL, OpKind.ONESHOT,
                      OpKind.PSCHED, OpKind.PIDLE, OpKind.PCANCEL, OpKind.PDEL, OpKind.LOCK,
                      OpKind.KICKW}),
    "fds": frozenset({OpKind.NSET, OpKind.NOTIFY, OpKind.HADD, OpKind.HDEL, OpKind.EXT,
                      OpKind.ACCEPT, OpKind.LOCK, OpKind.POLL}),
    "pool": frozenset({OpKind.SUBMIT, OpKind.RCANCEL, OpKind.SYNC, OpKind.LOCK, OpKind.POLL}),
    "dataplane": frozenset({OpKind.KICK, OpKind.DPSTOP, OpKind.DPSTART, OpKind.VMSTOP,
                            OpKind.VMSTART, OpKind.VSTOP, OpKind.VSTART}),
    # (a BH schedule and a query: what a body of a held section or a reference uses)
    "life": frozenset({OpKind.LOCK, OpKind.STW, OpKind.ITER, OpKind.REF, OpKind.UNREF,
                       OpKind.MISUSE, OpKind.KICKW, OpKind.HPOLL, OpKind.POLL, OpKind.SCHED,
                       OpKind.QUERY}),
}
#: The share of programs drawn small-scope (the rest are swarm programs); small ones are cheap
#: (a few operations, short runs), so budgets count twice the programs they did before them.
FOCUS_SHARE = 1 / 2
#: What ``lockfree`` draws from (for "is any lock-free kind of the area allowed").
_LOCKFREE_KINDS = frozenset({OpKind.SCHED, OpKind.IDLE, OpKind.CANCEL, OpKind.ONESHOT,
                             OpKind.NSET, OpKind.TMOD, OpKind.TDEL, OpKind.VSTOP,
                             OpKind.VSTART, OpKind.VADV, OpKind.CLOCK, OpKind.QUERY,
                             OpKind.KICK, OpKind.PSCHED, OpKind.PIDLE, OpKind.PCANCEL,
                             OpKind.MISUSE, OpKind.REF, OpKind.SLEEP})
_DP_OPS = frozenset({OpKind.KICK, OpKind.DPSTOP, OpKind.DPSTART, OpKind.VMSTOP,
                     OpKind.VMSTART})


def _bh_note(b: BHSpec) -> str:
    bits = [] if b.owner is None else [f"private to T{b.owner}"]
    if b.behavior != "plain":
        bits.append(b.behavior + (f" {b.arg}" if b.behavior not in ("nested", "selfdel") else ""))
    return f"({', '.join(bits)})" if bits else ""


def _describe(op: Op, st: Setup) -> str:
    k, a, b, q = op.kind, op.a, op.b, op.q
    ctx = st.ctx_name
    inner = "; ".join(_describe(o, st) for o in op.body)
    if k is OpKind.CLOCK:
        clock, on = ClockType(a).name, bool(b)
        text = f"qemu_clock_enable({clock}, {on})" if q else f"clocks.enable({clock}, {on})"
    elif k is OpKind.EXT:
        text = (f"aio_disable_external({ctx(a)}) {{{inner}}} aio_enable_external" if q else
                f"{ctx(a)}.disable_external() {{{inner}}} enable_external()")
    elif k is OpKind.LOCK:
        style = _LOCK_STYLES[b]
        if b == 1:
            style = "aio_context_acquire" if q else f"{ctx(a)}.acquire"
            text = f"{style}({'' if not q else ctx(a)}) {{{inner}}}"
        elif b in (3, 4):
            timeout = "0.001" if b == 3 else "0"
            text = f"if {ctx(a)}.acquire(timeout={timeout}) {{{inner}}}"
        else:
            text = f"{style}({ctx(a)}) {{{inner}}}"
    elif k is OpKind.STW:
        text = f"{'pause_all_iothreads' if b else 'stop_the_world'} {{{inner}}}"
    elif k is OpKind.REF:
        ref, unref = (f"aio_context_ref({ctx(a)})", f"aio_context_unref({ctx(a)})") if q else (
            f"{ctx(a)}.ref()", f"{ctx(a)}.unref()")
        where = f" in a one-shot of {ctx(b - 1)}" if b else ""
        text = f"{ref} {{{inner}}} {unref}{where}"
    elif k is OpKind.QUERY:
        text = _query_text(op, st)
    elif k in (OpKind.HADD, OpKind.HDEL):
        spec = st.notifiers[a]
        cb = "handler" if k is OpKind.HADD else "None"
        if spec.fd:
            text = (f"aio_set_fd_handler({ctx(spec.ctx)}, notifier{a}.fd, {cb})" if q else
                    f"{ctx(spec.ctx)}.set_fd_handler(notifier{a}.fd, {cb})")
        else:
            text = (f"aio_set_event_notifier({ctx(spec.ctx)}, notifier{a}, {cb})" if q else
                    f"{ctx(spec.ctx)}.set_event_notifier(notifier{a}, {cb})")
    else:
        drain = ", completion drains earlier requests" if k is OpKind.SUBMIT and b else ""
        table = _TEXT if q or k not in _METHOD_TEXT else _METHOD_TEXT
        form = table[k]
        if k is OpKind.TMOD and b % 2:
            form = _TMOD_NS[q]
        elif k is OpKind.ITER and b:
            form = _ITER_MISUSE[q]
        elif k is OpKind.KICKW and b:
            form = "wait (bounded) until {ctx} sleeps (debug_snapshot().asleep); " + form
        text = form.format(a=a, b=b, ctx=ctx(a) if a <= st.x else a, drain=drain)
    return f"#{op.uid} {text}"


def _query_text(op: Op, st: Setup) -> str:
    a, q = op.a, op.q
    c = st.ctx_name(a)
    w = Query(op.b)
    if w is Query.STATS:
        return f"{c}.statistics()"
    if w is Query.SNAPSHOT:
        return f"{c}.debug_snapshot()"
    if w is Query.EXTERNAL:
        return f"{c}.external_disabled"
    if w is Query.REPR:
        return f"repr({c})"
    if w is Query.BH:
        return f"bh{a}.is_scheduled, repr(bh{a})"
    if w is Query.QUEUED:
        return "dataplane.queued()"
    if w is Query.POOL:
        return f"{'aio_get_thread_pool(' + c + ')' if q else c + '.thread_pool()'}.pending()"
    if w is Query.PENDING:
        return f"pending() of the pool last submitted to on {c}"
    if w is Query.MAIN:
        return f"{'qemu_get_aio_context()' if q else 'main_context()'} is main"
    if w is Query.TIMER:
        if q:
            return f"timer_pending(timer{a}), timer_expire_time_ns(timer{a}), repr(timer{a})"
        return f"timer{a}.pending(), timer{a}.expire_ns(), repr(timer{a})"
    if w is Query.POOLREPR:
        return f"repr() and threads of the pool last submitted to on {c}"
    return "live_iothreads() has every IOThread"


#: What an operation calls through :mod:`impl.qemu` (``q``), or the one thing it does.
_TEXT: dict[OpKind, str] = {
    OpKind.SCHED: "qemu_bh_schedule(bh{a})",
    OpKind.PSCHED: "qemu_bh_schedule(bh{a})",
    OpKind.IDLE: "qemu_bh_schedule_idle(bh{a})",
    OpKind.PIDLE: "qemu_bh_schedule_idle(bh{a})",
    OpKind.CANCEL: "qemu_bh_cancel(bh{a})",
    OpKind.PCANCEL: "qemu_bh_cancel(bh{a})",
    OpKind.ONESHOT: "aio_bh_schedule_oneshot({ctx})",
    OpKind.NSET: "event_notifier_set(notifier{a})",
    OpKind.TMOD: "timer_mod(timer{a}, now+{b})",
    OpKind.TDEL: "timer_del(timer{a})",
    OpKind.KICK: "guest request + kick",
    OpKind.VSTOP: "qemu_clock_stop_virtual()",
    OpKind.VSTART: "qemu_clock_start_virtual()",
    OpKind.VADV: "qemu_clock_advance_virtual({b} ms)",
    OpKind.ITER: "iothread_new; aio_bh_schedule_oneshot; iothread_join",
    OpKind.DPSTOP: "dataplane stop",
    OpKind.DPSTART: "dataplane start",
    OpKind.VMSTOP: "vm stop",
    OpKind.VMSTART: "vm start",
    OpKind.HPOLL: "aio_poll(main, false)",
    OpKind.POLL: "aio_poll({ctx}, false)",
    OpKind.SUBMIT: "thread_pool_submit_aio({ctx}{drain})",
    OpKind.RCANCEL: "bdrv_aio_cancel_async(last request on {ctx})",
    OpKind.SYNC: "submit to {ctx}, aio_poll({ctx}, true) until done",
    OpKind.PDEL: "qemu_bh_delete(bh{a})",
    OpKind.NOTIFY: "aio_notify({ctx})",
    OpKind.KICKW: "aio_bh_new({ctx}); qemu_bh_schedule_idle; aio_notify({ctx}); wait for it",
    OpKind.ACCEPT: "aio_notify_accept({ctx})",
    OpKind.SLEEP: "busy elsewhere for {b} ms",
    OpKind.MISUSE: "aio_context_unref({ctx}) refused (its IOThread runs)",
    OpKind.UNREF: "aio_context_unref(x)",
}
#: The same through the methods (``q`` False).
_METHOD_TEXT: dict[OpKind, str] = {
    OpKind.SCHED: "bh{a}.schedule()",
    OpKind.PSCHED: "bh{a}.schedule()",
    OpKind.IDLE: "bh{a}.schedule_idle()",
    OpKind.PIDLE: "bh{a}.schedule_idle()",
    OpKind.CANCEL: "bh{a}.cancel()",
    OpKind.PCANCEL: "bh{a}.cancel()",
    OpKind.ONESHOT: "{ctx}.bh_schedule_oneshot()",
    OpKind.NSET: "notifier{a}.set()",
    OpKind.TMOD: "timer{a}.mod(now+{b})",
    OpKind.TDEL: "timer{a}.delete()",
    OpKind.VSTOP: "clocks.stop_virtual()",
    OpKind.VSTART: "clocks.start_virtual()",
    OpKind.VADV: "clocks.advance_virtual({b} ms)",
    OpKind.ITER: "IOThread().start(); .ctx.bh_schedule_oneshot(); .join()",
    OpKind.HPOLL: "main.aio_poll(false)",
    OpKind.POLL: "{ctx}.aio_poll(false)",
    OpKind.SUBMIT: "{ctx}.thread_pool().submit(){drain}",
    OpKind.RCANCEL: "(last request on {ctx}).cancel_async()",
    OpKind.SYNC: "submit to {ctx}, {ctx}.aio_poll(true) until done",
    OpKind.PDEL: "bh{a}.delete()",
    OpKind.NOTIFY: "{ctx}.aio_notify()",
    OpKind.KICKW: "{ctx}.bh_new(); .schedule_idle(); {ctx}.aio_notify(); wait for it",
    OpKind.ACCEPT: "{ctx}.aio_notify_accept()",
    OpKind.SLEEP: "busy elsewhere for {b} ms",
    OpKind.MISUSE: "{ctx}.unref() refused (its IOThread runs)",
    OpKind.UNREF: "x.unref()",
}
_TMOD_NS = {True: "timer_mod_ns(timer{a}, now+{b} ms)", False: "timer{a}.mod_ns(now+{b} ms)"}
_ITER_MISUSE = {
    True: "iothread_new; aio_context_unref(its context) refused; aio_bh_schedule_oneshot; "
          "iothread_join",
    False: "IOThread().start(); .ctx.unref() refused; .ctx.bh_schedule_oneshot(); .join()",
}

_LOCK_STYLES = ("with", "acquire", "one_off", "acquire_1ms", "try_acquire")
#: LOCK styles drawn: ``with``, acquire / release, ``one_off``, an acquire bounded by 1 ms
#: (virtual on the controlled platform: a waiter that gives up leaves its ticket behind),
#: a try-acquire (timeout 0).
LOCK_STYLE_COUNT = len(_LOCK_STYLES)


def _ranges(nums: list[int]) -> str:
    out: list[str] = []
    i = 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        out.append(str(nums[i]) if i == j else f"{nums[i]}-{nums[j]}")
        i = j + 1
    return ".".join(out)


_KEEP = re.compile(r"^(?:\d+(?:-\d+)?(?:\.\d+(?:-\d+)?)*)?$")


def parse_keep(text: str) -> frozenset[int]:
    """The operation numbers of a ``keep=`` field (``0-4.9.12-13``).

    Raises:
        ValueError: malformed text.
    """
    if not _KEEP.match(text):
        raise ValueError(f"bad keep list {text!r}: expected numbers and ranges like 0-4.9.12")
    out: set[int] = set()
    for part in filter(None, text.split(".")):
        lo, _, hi = part.partition("-")
        a, b = int(lo), int(hi or lo)
        if b < a or b - a > 100_000:
            raise ValueError(f"bad range {part!r} in keep list {text!r}")
        out.update(range(a, b + 1))
    return frozenset(out)


# ------------------------------------------------------------------------------------------
# The generator
# ------------------------------------------------------------------------------------------
class _Gen:
    """Draws one program; all randomness from one ``random.Random``."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.uid = 0
        r = rng
        areas = tuple(FOCUS_AREAS)  # definition order (see SWARM)
        self.focus = r.choice(areas) if r.random() < FOCUS_SHARE else None
        small = self.focus is not None
        self.n_threads = 2 if small else r.choice(THREADS)
        self.n_io = 1 if small else r.choice((1, 2, 2))
        self.main = self.n_io
        self.x = self.n_io + 1
        n_ctx = self.n_io + 1
        # Objects: shared BHs (BH_PER_CTX per context), timers, notifiers, private BHs.
        # A timers program arms three timers of its IOThread's loop on one clock (one timer
        # list: their order, the head, the deadline the loop sleeps to) against each other,
        # in milliseconds: a timer late by less than the oracle's slack (TIMER_SLACK_NS, one
        # millisecond: the poll timeout's rounding) is not a failure, so deadlines drawn in
        # ns or us apart cannot show a lost wake-up.
        timing = self.focus == "timers"
        one_clock = r.choice(tuple(ClockType))
        self.timers = [
            TimerSpec(
                c,
                one_clock if timing and c == 0 else r.choice(tuple(ClockType)),
                SCALE_MS if timing else r.choice((SCALE_NS, SCALE_US, SCALE_MS, SCALE_MS)),
                r.random() < 0.3,
            )
            for c in range(n_ctx)
            for _ in range((3 if c == 0 else 1) if timing else r.choice((1, 2)))
        ]
        self.notifiers = [
            NotifierSpec(
                c,
                fd=r.random() < 0.5,
                external=r.random() < 0.4,
                initially=r.random() < 0.7,
                selfremove=r.random() < 0.2,
            )
            for c in range(n_ctx)
            for _ in range(r.choice((1, 2)))
        ]
        bhs: list[BHSpec] = []
        for c in range(n_ctx):
            first = len(bhs)
            for i in range(BH_PER_CTX):
                bhs.append(self._behavior(c, first + i, first + BH_PER_CTX))
        self.n_shared = len(bhs)
        for t in range(self.n_threads):
            for _ in range(r.choice((0, 1, 1))):
                c = r.randrange(n_ctx)
                selfdel = r.random() < 0.35
                bhs.append(BHSpec(c, "selfdel" if selfdel else "plain", 0, t))
        self.bhs = bhs
        self.dataplane = self.focus == "dataplane" or (not small and r.random() < 0.4)
        self.control = r.randrange(self.n_threads)
        # References: IOThread contexts that threads take references of; the others are
        # misuse targets (their only reference is their IOThread's).
        self.refd = [c for c in range(self.n_io) if r.random() < 0.6]
        self.misuse = [c for c in range(self.n_io) if c not in self.refd]
        # The transient context and its users.
        users: list[int] = []
        if self.focus in (None, "life") and r.random() < 0.4:
            users = sorted(r.sample(range(self.n_threads),
                                    min(self.n_threads, r.choice((1, 2, 2, 3)))))
        self.xusers = tuple(users)
        self.x_new = r.random() < 0.5
        # The context most references are taken of (references taken at once are what a
        # miscounted reference count shows on).
        self.hot = (self.x if len(users) > 1 and r.random() < 0.5
                    else r.choice([*self.refd, self.main]))
        # Every thread starts by taking a reference of it (threads start together).
        self.storm = not small and r.random() < 0.3
        # Generation state: private BHs deleted or (self-deleting) scheduled already; the
        # users of x that still hold their reference.
        self.spent: set[int] = set()
        self.x_live: set[int] = set(users)
        self.ref_depth = 0  # references taken around the operation being drawn
        # Swarm testing (Groce, Zhang, Eide, Chen, Regehr, ISSTA 2012): each program leaves
        # out a random half of the optional operation kinds, so that the ones it keeps
        # meet each other far more often than in a program that draws from every kind
        # (two timers of one context armed against each other, a cancel racing a worker, a
        # kick racing the dataplane handler).  A draw whose every option is off falls back
        # to all of them.
        self.off: frozenset[OpKind] = frozenset(k for k in SWARM if r.random() < 0.5)
        # What a lock-free draw leaves out (the BH schedule is a real one there).
        self.lf_off: frozenset[OpKind] = self.off
        if self.focus is not None:
            area = FOCUS_AREAS[self.focus]
            off = frozenset(k for k in (*SWARM, OpKind.LOCK, OpKind.SCHED) if k not in area)
            self.lf_off = off
            if area & _LOCKFREE_KINDS:
                off -= {OpKind.SCHED}  # the stand-in for a lock-free operation
            self.off = off

    def _behavior(self, c: int, j: int, end: int) -> BHSpec:
        r = self.rng
        mine_n = [i for i, n in enumerate(self.notifiers) if n.ctx == c]
        mine_t = [i for i, t in enumerate(self.timers) if t.ctx == c]
        choices: list[tuple[str, int]] = [("plain", 0)] * 4 + [
            ("resched", r.choice((1, 2))),
            ("nested", 0),
            ("notify", r.choice(mine_n)),
            ("timer", r.choice(mine_t)),
            ("toggle", r.choice(mine_n)),
        ]
        if j + 1 < end:
            choices.append(("chain", r.randrange(j + 1, end)))
        behavior, arg = r.choice(choices)
        return BHSpec(c, behavior, arg)

    def _op(self, kind: OpKind, a: int = 0, b: int = 0, body: tuple[Op, ...] = ()) -> Op:
        """An operation; one that can call impl.qemu or the method draws which."""
        q = _has_facade(kind, b) and self.rng.random() < 0.5
        return Op(kind, a, b, body, 0, q)

    def _usable(self, t: int) -> list[int]:
        """The contexts thread ``t`` holds a reference of now (program order)."""
        return list(range(self.main + 1)) + ([self.x] if t in self.x_live else [])

    # -- scripts -----------------------------------------------------------------------------
    def script(self, t: int) -> tuple[Op, ...]:
        n = self.rng.randint(1, 3) if self.focus is not None else self.rng.randint(2, 5)
        if self.focus == "timers":
            n += 1  # timers meet in pairs: one to arm, one to arm against it
        ops = [self.ref(t, (), hot=True)] if self.storm else []
        if ops and ops[0].a == self.x and self.rng.random() < 0.5:
            # x's users drop it at once: the last of them closes it, in its own thread.
            self.x_live.discard(t)
            ops.append(self._op(OpKind.UNREF))
        ops += [self.top(t) for _ in range(n)]
        if t in self.x_live:  # its last use of x is behind it
            self.x_live.discard(t)
            ops.append(self._op(OpKind.UNREF))
        return tuple(ops)

    def lockfree(self, t: int, held: tuple[int, ...] = ()) -> Op:
        r = self.rng
        mine = [
            j for j in range(self.n_shared, len(self.bhs))
            if self.bhs[j].owner == t and j not in self.spent
        ]
        opts: list[tuple[int, OpKind]] = [
            (6, OpKind.SCHED),
            (2, OpKind.IDLE),
            (2, OpKind.CANCEL),
            (3, OpKind.ONESHOT),
            (3, OpKind.NSET),
            (8 if self.focus == "timers" else 3, OpKind.TMOD),  # timers: mostly arming
            (1, OpKind.TDEL),
            (1, OpKind.VSTOP),
            (1, OpKind.VSTART),
            (1, OpKind.VADV),
            (1, OpKind.CLOCK),
            (4, OpKind.QUERY),
        ]
        if self.dataplane:
            opts.append((2, OpKind.KICK))
        if mine:
            opts += [(3, OpKind.PSCHED), (1, OpKind.PIDLE), (1, OpKind.PCANCEL)]
        if self.misuse:
            opts.append((1, OpKind.MISUSE))
        if self.ref_depth < 2:
            opts.append((2, OpKind.REF))
        if not held:  # time passes with no context held (its loop runs meanwhile)
            opts.append((3 if self.focus == "timers" else 1, OpKind.SLEEP))
        kind = _pick(r, opts, self.lf_off)
        if kind in (OpKind.SCHED, OpKind.IDLE, OpKind.CANCEL):
            return self._op(kind, r.randrange(self.n_shared))
        if kind in (OpKind.PSCHED, OpKind.PIDLE, OpKind.PCANCEL):
            j = r.choice(mine)
            if self.bhs[j].behavior == "selfdel":
                self.spent.add(j)  # scheduled once, used no more
                return self._op(OpKind.PSCHED, j)
            return self._op(kind, j)
        if kind is OpKind.ONESHOT:
            return self._op(kind, r.randrange(self.main + 1))
        if kind is OpKind.NSET:
            return self._op(kind, r.randrange(len(self.notifiers)))
        if kind is OpKind.TMOD:
            far = 6 if self.focus == "timers" else 3
            return self._op(kind, r.randrange(len(self.timers)), r.randint(0, far))
        if kind is OpKind.TDEL:
            return self._op(kind, r.randrange(len(self.timers)))
        if kind is OpKind.VADV:
            return self._op(kind, 0, r.randint(1, 3))
        if kind is OpKind.SLEEP:
            return self._op(kind, 0, r.randint(1, 6))
        if kind is OpKind.CLOCK:
            return self._op(kind, r.randrange(3), r.randrange(2))
        if kind is OpKind.QUERY:
            return self.query(t, held)
        if kind is OpKind.MISUSE:
            return self._op(kind, r.choice(self.misuse))
        if kind is OpKind.REF:
            return self.ref(t, held)
        return self._op(kind)

    def query(self, t: int, held: tuple[int, ...], c: int | None = None) -> Op:
        """A read-only query by thread ``t`` holding ``held`` (of context ``c`` if given)."""
        r = self.rng
        usable = self._usable(t) if c is None else [c]
        w = r.choice(QUERIES)
        if w is Query.TIMER:
            return self._op(OpKind.QUERY, r.randrange(len(self.timers)), int(w))
        if w is Query.QUEUED and not self.dataplane:
            w = Query.PENDING
        if w is Query.POOL:  # only a holder may ask a context for its pool
            mine = [x for x in usable if x in held]
            if not mine:
                return self._op(OpKind.QUERY, r.choice(usable), int(Query.PENDING))
            return self._op(OpKind.QUERY, r.choice(mine), int(w))
        if w is Query.BH:  # shared BHs are never deleted; a self-deleting one, any time
            own = [j for j in range(self.n_shared, len(self.bhs))
                   if self.bhs[j].owner == t and self.bhs[j].behavior != "selfdel"]
            return self._op(OpKind.QUERY, r.choice(list(range(self.n_shared)) + own), int(w))
        if w in _CTX_QUERIES:
            return self._op(OpKind.QUERY, r.choice(usable), int(w))
        return self._op(OpKind.QUERY, 0, int(w))

    def lockfree_body(self, t: int, held: tuple[int, ...] = ()) -> tuple[Op, ...]:
        return tuple(self.lockfree(t, held) for _ in range(self.rng.randint(1, 3)))

    def ref(self, t: int, held: tuple[int, ...], hot: bool = False) -> Op:
        """Take a reference of a context ``t`` may use (``hot``: the hot one if it may),
        run lock-free operations (a query of that context among them), drop it here or in
        a one-shot of a loop context."""
        r = self.rng
        can = [x for x in self._usable(t) if x == self.x or x not in self.misuse]
        c = self.hot if self.hot in can and (hot or r.random() < 0.7) else r.choice(can)
        self.ref_depth += 1
        body = list(self.lockfree_body(t, held))
        self.ref_depth -= 1
        if r.random() < 0.5:
            body.insert(r.randint(0, len(body)), self.query(t, held, c))
        handover = 0 if r.random() < 0.6 else 1 + r.randrange(self.main + 1)
        return self._op(OpKind.REF, c, handover, tuple(body))

    def top(self, t: int) -> Op:
        r = self.rng
        opts: list[tuple[int, OpKind]] = [
            (10, OpKind.SCHED),  # stands for "a lock-free op"
            (9, OpKind.LOCK),
            (2, OpKind.STW),
            (2, OpKind.EXT),
            (1, OpKind.ITER),
            (4, OpKind.REF),
            (2, OpKind.KICKW),
            (1, OpKind.NOTIFY),
        ]
        if t == 0:
            opts.append((2, OpKind.HPOLL))
        if self.dataplane and t == self.control:
            opts += [(2, OpKind.DPSTOP), (2, OpKind.DPSTART), (2, OpKind.VMSTOP),
                     (2, OpKind.VMSTART)]
        if t in self.x_live:
            opts += [(4, OpKind.UNREF), (5, OpKind.SYNC)]  # SYNC: stands for "use x"
        kind = _pick(r, opts, self.off)
        if kind is OpKind.SCHED:
            return self.lockfree(t)
        if kind is OpKind.LOCK:
            c = r.randrange(self.main + 1)
            return self._op(kind, c, r.randrange(LOCK_STYLE_COUNT), self.held_body(t, [c], 1))
        if kind is OpKind.STW:
            held = tuple(range(self.n_io))
            body = tuple(
                self._op(OpKind.POLL, r.randrange(self.n_io)) if r.random() < 0.3
                else self.lockfree(t, held)
                for _ in range(r.randint(1, 3))
            )
            return self._op(kind, 0, r.randrange(2), body)
        if kind is OpKind.EXT:
            c = r.choice(self._usable(t))
            return self._op(kind, c, 0, self.lockfree_body(t))
        if kind is OpKind.ITER:
            return self._op(kind, 0, int(r.random() < 0.5))
        if kind is OpKind.REF:
            return self.ref(t, ())
        if kind is OpKind.KICKW:
            loops = [c for c in range(self.main + 1) if c != self.main or t != 0]
            c = r.choice(loops)
            # Waiting until the loop sleeps reads its debug snapshot (lock statistics).
            return self._op(kind, c, int(r.random() < 0.7))
        if kind is OpKind.NOTIFY:
            return self._op(kind, r.choice(self._usable(t)))
        if kind is OpKind.UNREF:
            self.x_live.discard(t)
            return self._op(kind)
        if kind is OpKind.SYNC:
            return self.use_x(t)
        return self._op(kind)

    def use_x(self, t: int) -> Op:
        """Thread ``t`` holds the transient context (alone: a leaf of the lock order) and
        uses it: requests to its pool it polls for, polls, queries, accepts."""
        r = self.rng
        x = self.x
        body: list[Op] = []
        for _ in range(r.randint(1, 3)):
            kind = _pick(r, [(3, OpKind.SYNC), (2, OpKind.POLL), (2, OpKind.QUERY),
                             (1, OpKind.ACCEPT), (2, OpKind.SCHED)], self.off)
            if kind is OpKind.QUERY:
                body.append(self.query(t, (x,), x))
            elif kind is OpKind.SCHED:
                body.append(self.lockfree(t, (x,)))
            else:
                body.append(self._op(kind, x))
        return self._op(OpKind.LOCK, x, r.randrange(LOCK_STYLE_COUNT), tuple(body))

    def held_body(self, t: int, held: list[int], depth: int) -> tuple[Op, ...]:
        r = self.rng
        out: list[Op] = []
        hold = tuple(held)
        for _ in range(r.randint(1, 3)):
            c = r.choice(held)
            mine_n = [i for i, n in enumerate(self.notifiers) if n.ctx in held]
            polls = [x for x in held if x != self.main or t == 0]
            deletable = [
                j for j in range(self.n_shared, len(self.bhs))
                if self.bhs[j].owner == t and self.bhs[j].ctx in held
                and self.bhs[j].behavior == "plain" and j not in self.spent
            ]
            # Nested acquires, in order (the same context again, or a later one).
            top = max(held)
            nest = list(range(top, self.main + 1))
            opts: list[tuple[int, OpKind]] = [
                (6, OpKind.SCHED),  # a lock-free op
                (3, OpKind.HADD),
                (2, OpKind.HDEL),
                (3, OpKind.SUBMIT),
                (1, OpKind.RCANCEL),
                (1, OpKind.EXT),
                (1, OpKind.ACCEPT),
                (1, OpKind.REF),
            ]
            if polls:
                opts += [(3, OpKind.POLL), (1, OpKind.SYNC)]
            if deletable:
                opts.append((2, OpKind.PDEL))
            if depth < (MAX_DEPTH if self.focus in (None, "life") else 1) and nest:
                opts.append((3, OpKind.LOCK))
            kind = _pick(r, opts, self.off)
            if kind is OpKind.SCHED:
                out.append(self.lockfree(t, hold))
            elif kind in (OpKind.HADD, OpKind.HDEL):
                out.append(self._op(kind, r.choice(mine_n)) if mine_n
                           else self.lockfree(t, hold))
            elif kind is OpKind.SUBMIT:
                out.append(self._op(kind, c, int(r.random() < 0.3)))
            elif kind in (OpKind.RCANCEL, OpKind.ACCEPT):
                out.append(self._op(kind, c))
            elif kind in (OpKind.POLL, OpKind.SYNC):
                out.append(self._op(kind, r.choice(polls)))
            elif kind is OpKind.PDEL:
                j = r.choice(deletable)
                self.spent.add(j)
                out.append(self._op(kind, j))
            elif kind is OpKind.EXT:
                out.append(self._op(kind, r.choice(held), 0, self.lockfree_body(t, hold)))
            elif kind is OpKind.REF:
                out.append(self.ref(t, hold))
            else:
                c2 = r.choice(nest)
                out.append(
                    self._op(kind, c2, r.randrange(LOCK_STYLE_COUNT),
                             self.held_body(t, [*held, c2], depth + 1))
                )
        return tuple(out)


def _pick(
    r: random.Random, opts: list[tuple[int, OpKind]], off: frozenset[OpKind] = frozenset()
) -> OpKind:
    kept = [(w, k) for w, k in opts if k not in off]
    opts = kept or opts
    total = sum(w for w, _ in opts)
    x = r.randrange(total)
    for w, k in opts:
        if x < w:
            return k
        x -= w
    raise AssertionError("unreachable")


def _number(scripts: list[tuple[Op, ...]]) -> tuple[tuple[Op, ...], ...]:
    n = 0

    def num(op: Op) -> Op:
        nonlocal n
        uid = n
        n += 1
        return replace(op, uid=uid, body=tuple(num(o) for o in op.body))

    return tuple(tuple(num(op) for op in s) for s in scripts)


def generate(seed: int, index: int) -> GenProgram:
    """Program ``index`` of the sequence of ``seed`` (a pure function of both)."""
    g = _Gen(random.Random(f"aioctx-verify.gen:{seed}:{index}"))
    scripts = [g.script(t) for t in range(g.n_threads)]
    setup = Setup(
        iothreads=g.n_io,
        bhs=tuple(g.bhs),
        timers=tuple(g.timers),
        notifiers=tuple(g.notifiers),
        dataplane=g.dataplane,
        control=g.control,
        xusers=g.xusers,
        x_new=g.x_new,
        off=g.off,
        focus=g.focus,
    )
    return GenProgram(seed, index, setup, _number(scripts))
