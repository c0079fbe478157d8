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
* only thread 0 (the main loop, home of the main context) polls the main context.
"""

from __future__ import annotations

import enum
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from aioctx_verify.impl import SCALE_MS, SCALE_NS, SCALE_US, ClockType

__all__ = [
    "GENERATOR_VERSION",
    "BHSpec",
    "GenProgram",
    "NotifierSpec",
    "Op",
    "OpKind",
    "Setup",
    "TimerSpec",
    "Used",
    "generate",
    "parse_keep",
]

#: The generator's version: part of every program name, so that a replay line printed by
#: another version is refused instead of replaying a different program.
GENERATOR_VERSION = 1
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
    # with no context held
    LOCK = "L"  # aio_context_acquire(ctx a) { body } release (b: with / acquire / one_off)
    STW = "W"  # stop_the_world(every IOThread) { body }
    ITER = "IT"  # iothread_new; oneshot into it; iothread_join
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


@dataclass(frozen=True, slots=True)
class Op:
    """One operation; ``uid`` numbers it in the generated program (pre-order)."""

    kind: OpKind
    a: int = 0
    b: int = 0
    body: tuple[Op, ...] = ()
    uid: int = 0

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

    @property
    def main(self) -> int:
        return self.iothreads

    def ctx_name(self, c: int) -> str:
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
        return self.setup.dataplane and any(op.kind in _DP_OPS for op in self.ops())

    # -- text ------------------------------------------------------------------------------
    def listing(self) -> str:
        """The program, readable: objects, then one line per thread."""
        st = self.setup
        used = self.used()
        n, ops = self.threads, self.size
        lines = [f"program {self.spec} ({n} thread{'s' * (n != 1)}, {ops} op{'s' * (ops != 1)}):"]
        ctxs = ", ".join(
            "main (thread 0's)" if c == st.main else f"io{c} (IOThread)"
            for c in sorted(used.ctxs)
        )
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
        lines.append(
            "  then: T0 runs the main loop until every thread is done; clocks, VM and "
            "dataplane restored; every owed callback served; IOThreads joined; oracles"
        )
        return "\n".join(lines)


_SCALES = {SCALE_NS: "ns", SCALE_US: "us", SCALE_MS: "ms"}
_BH_OPS = frozenset({OpKind.SCHED, OpKind.IDLE, OpKind.CANCEL, OpKind.PSCHED, OpKind.PIDLE,
                     OpKind.PCANCEL, OpKind.PDEL})
_CTX_OPS = frozenset({OpKind.ONESHOT, OpKind.LOCK, OpKind.EXT, OpKind.POLL, OpKind.SUBMIT,
                      OpKind.RCANCEL, OpKind.SYNC})
_DP_OPS = frozenset({OpKind.KICK, OpKind.DPSTOP, OpKind.DPSTART, OpKind.VMSTOP,
                     OpKind.VMSTART})


def _bh_note(b: BHSpec) -> str:
    bits = [] if b.owner is None else [f"private to T{b.owner}"]
    if b.behavior != "plain":
        bits.append(b.behavior + (f" {b.arg}" if b.behavior not in ("nested", "selfdel") else ""))
    return f"({', '.join(bits)})" if bits else ""


def _describe(op: Op, st: Setup) -> str:
    k, a, b = op.kind, op.a, op.b
    ctx = st.ctx_name
    inner = "; ".join(_describe(o, st) for o in op.body)
    if k in (OpKind.SCHED, OpKind.PSCHED):
        text = f"qemu_bh_schedule(bh{a})"
    elif k in (OpKind.IDLE, OpKind.PIDLE):
        text = f"qemu_bh_schedule_idle(bh{a})"
    elif k in (OpKind.CANCEL, OpKind.PCANCEL):
        text = f"qemu_bh_cancel(bh{a})"
    elif k is OpKind.CLOCK:
        text = f"qemu_clock_enable({ClockType(a).name}, {bool(b)})"
    elif k is OpKind.EXT:
        text = f"aio_disable_external({ctx(a)}) {{{inner}}} aio_enable_external"
    elif k is OpKind.LOCK:
        text = f"{_LOCK_STYLES[b]}({ctx(a)}) {{{inner}}}"
    elif k is OpKind.STW:
        text = f"{'pause_all_iothreads' if b else 'stop_the_world'} {{{inner}}}"
    else:
        drain = ", completion drains earlier requests" if k is OpKind.SUBMIT and b else ""
        text = _TEXT[k].format(a=a, b=b, ctx=ctx(a) if a <= st.main else a, drain=drain)
    return f"#{op.uid} {text}"


_TEXT: dict[OpKind, str] = {
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
    OpKind.HADD: "add handler(notifier{a})",
    OpKind.HDEL: "remove handler(notifier{a})",
    OpKind.SUBMIT: "thread_pool_submit_aio({ctx}{drain})",
    OpKind.RCANCEL: "bdrv_aio_cancel_async(last request on {ctx})",
    OpKind.SYNC: "submit to {ctx}, aio_poll({ctx}, true) until done",
    OpKind.PDEL: "qemu_bh_delete(bh{a})",
}

_LOCK_STYLES = ("with", "acquire", "one_off")


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
        self.n_threads = r.choice(THREADS)
        self.n_io = r.choice((1, 2, 2))
        self.main = self.n_io
        n_ctx = self.n_io + 1
        # Objects: shared BHs (BH_PER_CTX per context), timers, notifiers, private BHs.
        self.timers = [
            TimerSpec(
                c,
                r.choice(tuple(ClockType)),
                r.choice((SCALE_NS, SCALE_US, SCALE_MS, SCALE_MS)),
                r.random() < 0.3,
            )
            for c in range(n_ctx)
            for _ in range(r.choice((1, 2)))
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
        self.dataplane = r.random() < 0.4
        self.control = r.randrange(self.n_threads)
        # Generation state: private BHs deleted or (self-deleting) scheduled already.
        self.spent: set[int] = set()

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
        return Op(kind, a, b, body, 0)

    # -- scripts -----------------------------------------------------------------------------
    def script(self, t: int) -> tuple[Op, ...]:
        n = self.rng.randint(2, 5)
        return tuple(self.top(t) for _ in range(n))

    def lockfree(self, t: int) -> Op:
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
            (3, OpKind.TMOD),
            (1, OpKind.TDEL),
            (1, OpKind.VSTOP),
            (1, OpKind.VSTART),
            (1, OpKind.VADV),
            (1, OpKind.CLOCK),
        ]
        if self.dataplane:
            opts.append((2, OpKind.KICK))
        if mine:
            opts += [(3, OpKind.PSCHED), (1, OpKind.PIDLE), (1, OpKind.PCANCEL)]
        kind = _pick(r, opts)
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
            return self._op(kind, r.randrange(len(self.timers)), r.randint(0, 3))
        if kind is OpKind.TDEL:
            return self._op(kind, r.randrange(len(self.timers)))
        if kind is OpKind.VADV:
            return self._op(kind, 0, r.randint(1, 3))
        if kind is OpKind.CLOCK:
            return self._op(kind, r.randrange(3), r.randrange(2))
        return self._op(kind)

    def lockfree_body(self, t: int) -> tuple[Op, ...]:
        return tuple(self.lockfree(t) for _ in range(self.rng.randint(1, 3)))

    def top(self, t: int) -> Op:
        r = self.rng
        opts: list[tuple[int, OpKind]] = [
            (10, OpKind.SCHED),  # stands for "a lock-free op"
            (9, OpKind.LOCK),
            (2, OpKind.STW),
            (2, OpKind.EXT),
            (1, OpKind.ITER),
        ]
        if t == 0:
            opts.append((2, OpKind.HPOLL))
        if self.dataplane and t == self.control:
            opts += [(2, OpKind.DPSTOP), (2, OpKind.DPSTART), (1, OpKind.VMSTOP),
                     (1, OpKind.VMSTART)]
        kind = _pick(r, opts)
        if kind is OpKind.SCHED:
            return self.lockfree(t)
        if kind is OpKind.LOCK:
            c = r.randrange(self.main + 1)
            return self._op(kind, c, r.randrange(3), self.held_body(t, [c], 1))
        if kind is OpKind.STW:
            body = tuple(
                self._op(OpKind.POLL, r.randrange(self.n_io)) if r.random() < 0.3
                else self.lockfree(t)
                for _ in range(r.randint(1, 3))
            )
            return self._op(kind, 0, r.randrange(2), body)
        if kind is OpKind.EXT:
            return self._op(kind, r.randrange(self.main + 1), 0, self.lockfree_body(t))
        return self._op(kind)

    def held_body(self, t: int, held: list[int], depth: int) -> tuple[Op, ...]:
        r = self.rng
        out: list[Op] = []
        for _ in range(r.randint(1, 3)):
            c = r.choice(held)
            mine_n = [i for i, n in enumerate(self.notifiers) if n.ctx in held]
            polls = [x for x in held if x != self.main or t == 0]
            deletable = [
                j for j in range(self.n_shared, len(self.bhs))
                if self.bhs[j].owner == t and self.bhs[j].ctx in held
                and self.bhs[j].behavior == "plain" and j not in self.spent
            ]
            opts: list[tuple[int, OpKind]] = [
                (6, OpKind.SCHED),  # a lock-free op
                (3, OpKind.HADD),
                (2, OpKind.HDEL),
                (3, OpKind.SUBMIT),
                (1, OpKind.RCANCEL),
                (1, OpKind.EXT),
            ]
            if polls:
                opts += [(3, OpKind.POLL), (1, OpKind.SYNC)]
            if deletable:
                opts.append((2, OpKind.PDEL))
            if depth < MAX_DEPTH:
                opts.append((3, OpKind.LOCK))
            kind = _pick(r, opts)
            if kind is OpKind.SCHED:
                out.append(self.lockfree(t))
            elif kind in (OpKind.HADD, OpKind.HDEL):
                out.append(self._op(kind, r.choice(mine_n)) if mine_n else self.lockfree(t))
            elif kind is OpKind.SUBMIT:
                out.append(self._op(kind, c, int(r.random() < 0.3)))
            elif kind is OpKind.RCANCEL:
                out.append(self._op(kind, c))
            elif kind in (OpKind.POLL, OpKind.SYNC):
                out.append(self._op(kind, r.choice(polls)))
            elif kind is OpKind.PDEL:
                j = r.choice(deletable)
                self.spent.add(j)
                out.append(self._op(kind, j))
            elif kind is OpKind.EXT:
                out.append(self._op(kind, r.choice(held), 0, self.lockfree_body(t)))
            else:
                c2 = r.randrange(max(held), self.main + 1)  # in order (or again)
                out.append(
                    self._op(kind, c2, r.randrange(3), self.held_body(t, [*held, c2], depth + 1))
                )
        return tuple(out)


def _pick(r: random.Random, opts: list[tuple[int, OpKind]]) -> OpKind:
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
    )
    return GenProgram(seed, index, setup, _number(scripts))
