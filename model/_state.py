"""The model's state: a frozen, hashable snapshot of one AioContext and the threads using it.

Why it exists: the explicit-state search (:mod:`model._search`) enumerates every state the
protocol can reach for small parameters, so a state must be a *value*: frozen slotted
dataclasses and tuples only, equal iff the protocol is in the same situation.  Everything the
properties need about the past (a per-BH "scheduled since its last run" bit, per-thread run
counts of the current ``aio_poll`` iteration, "the lock was granted out of ticket order") is
kept here as explicit *history* fields, next to the protocol fields they talk about.

What is modelled (QEMU 2.0-2.4, shared/reference/qemu-semantics.md):

* the context lock (RFifoLock, util/rfifolock.c): holder, nesting depth, FIFO queue of
  waiting threads, and the internal mutex held while a waiter runs the contention callback;
* bottom halves: ``scheduled`` / ``idle`` / ``deleted`` (async.c), the context's
  ``notify_dummy_bh`` (the sticky contention kick, QEMU 2.4) and, optionally, the one-shot BH
  that stops the IOThread (2362a28ea1);
* the 2015 wake-up protocol: ``notify_me`` counter (eabc977973), ``notified`` and the event
  notifier with ``aio_notify_accept`` (05e514b1d4, docs/aio_notify_accept.promela);
* fd / event-notifier handlers and timers at an abstract level: a handler is "ready" or not;
  a timer is "armed" (abstract time: an armed timer has expired and is due) or not;
* threads: an IOThread (``acquire; aio_poll(blocking); release`` until stopped), optionally a
  main-loop GSource poller (prepare/poll/check outside the lock, dispatch under it: the second
  poller that the 2014-2015 wake-up bugs need), and clients doing bounded sequences of
  operations.  A thread's control is a program counter (a step label) plus a stack of
  continuation frames, so protocol routines (acquire, qemu_bh_schedule, aio_notify, aio_poll)
  are written once and called from every role.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "BH_CALLBACKS",
    "CLIENT_OPS",
    "CTX_ID",
    "MODEL_BUGS",
    "ROLES",
    "BHState",
    "LockState",
    "ModelConfig",
    "ModelError",
    "State",
    "ThreadState",
    "initial",
]

#: The mutants the model can express (named as in shared/reference/qemu-bugs.md and the
#: kill matrix).  See :mod:`aioctx_verify.model._actions` for where each one changes a step.
MODEL_BUGS: frozenset[str] = frozenset(
    {
        "no-contention-callback",
        "nonsticky-kick",
        "lock-no-fifo",
        "release-by-non-owner-accepted",
        "schedule-takes-lock",
        "rerun-same-iteration",
        "deleted-bh-runs",
        "dispatching-flag-shared",
        "notify-clear-late",
        "notified-bug1",
        "notified-bug2",
        "bh-nonatomic-test-and-set",
        "non-home-thread-poll",
    }
)

#: Thread roles.  ``io``: an IOThread loop; ``gsource``: a main-loop poller that sleeps
#: without the context and dispatches under it; ``client``: bounded operations.
ROLES = ("io", "gsource", "client")

#: What a client may do (each costs one unit of its budget, except ``release``).
CLIENT_OPS: frozenset[str] = frozenset(
    {
        "acquire",  # aio_context_acquire (nests up to max_depth)
        "release",  # aio_context_release
        "schedule",  # qemu_bh_schedule(b), lock-free, from any thread
        "schedule_idle",  # qemu_bh_schedule_idle(b)
        "cancel",  # qemu_bh_cancel(b), holding the context
        "delete",  # qemu_bh_delete(b), holding the context
        "poll",  # aio_poll(ctx, false), holding the context
        "notifier_set",  # event_notifier_set of a registered handler's notifier
        "timer_mod",  # timer_mod of a context timer (to "now": it is due at once)
        "timer_del",  # timer_del
        "bad_release",  # aio_context_release without holding it (misuse: refused)
        "stop",  # iothread_stop: schedule the one-shot stop BH (once)
    }
)

#: What a user BH's callback does when it runs (its one-time effect happens on the first
#: run only, so the state space stays finite): nothing, reschedule itself, schedule the next
#: BH, or delete itself.
BH_CALLBACKS = ("noop", "resched", "sched-other", "delete")

#: The context id used in trace events (model traces have one context).
CTX_ID = 1

DEFAULT_OPS: frozenset[str] = frozenset({"acquire", "release", "schedule", "cancel", "delete"})


class ModelError(Exception):
    """A model was asked something it cannot answer (bad configuration, unknown action)."""


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """The parameters of one model instance.

    Attributes:
        threads: number of threads (``len(roles)``).
        bhs: number of user bottom halves (the context's dummy BH is extra).
        max_depth: how deep a client may nest ``aio_context_acquire``.
        ops: each client's budget of operations.
        roles: one role per thread (default: one IOThread, then clients).
        client_ops: the operations clients may choose from (see :data:`CLIENT_OPS`).
        thread_ops: optional per-thread override of ``client_ops`` (one set per thread; the
            sets of non-client threads are ignored), to keep a search small.
        bh_callbacks: per user BH, what its callback does (see :data:`BH_CALLBACKS`).
        handlers: number of event-notifier handlers registered in the context.
        timers: number of timers of the context.
        bugs: mutants switched on (subset of :data:`MODEL_BUGS`).
    """

    threads: int = 2
    bhs: int = 2
    max_depth: int = 2
    ops: int = 2
    roles: tuple[str, ...] = ()
    client_ops: frozenset[str] = DEFAULT_OPS
    thread_ops: tuple[frozenset[str], ...] = ()
    bh_callbacks: tuple[str, ...] = ()
    handlers: int = 0
    timers: int = 0
    bugs: frozenset[str] = frozenset()
    _stop: int = field(init=False, repr=False, compare=False)
    _walk: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        roles = self.roles or ("io",) + ("client",) * (self.threads - 1)
        object.__setattr__(self, "roles", tuple(roles))
        object.__setattr__(self, "threads", len(self.roles))
        cbs = self.bh_callbacks or ("noop",) * self.bhs
        object.__setattr__(self, "bh_callbacks", tuple(cbs))
        object.__setattr__(self, "client_ops", frozenset(self.client_ops))
        object.__setattr__(self, "thread_ops", tuple(frozenset(o) for o in self.thread_ops))
        if self.thread_ops and len(self.thread_ops) != len(self.roles):
            raise ModelError("thread_ops needs one set of operations per thread")
        object.__setattr__(self, "bugs", frozenset(self.bugs))
        bad = [r for r in self.roles if r not in ROLES]
        if bad:
            raise ModelError(f"unknown role(s) {bad}; use {ROLES}")
        if self.roles.count("io") > 1 or self.roles.count("gsource") > 1:
            raise ModelError("a model has at most one io and one gsource thread")
        if len(self.bh_callbacks) != self.bhs or not set(self.bh_callbacks) <= set(BH_CALLBACKS):
            raise ModelError(f"bh_callbacks needs one of {BH_CALLBACKS} per BH ({self.bhs})")
        every = self.client_ops.union(*self.thread_ops)
        if not every <= CLIENT_OPS:
            raise ModelError(f"unknown client op(s) {sorted(every - CLIENT_OPS)}")
        if not self.bugs <= MODEL_BUGS:
            raise ModelError(f"unknown bug flag(s) {sorted(self.bugs - MODEL_BUGS)}")
        if "stop" in every and "io" not in self.roles:
            raise ModelError("the stop op stops the IOThread: add an io thread")
        if self.bhs < 0 or self.max_depth < 1 or self.ops < 0:
            raise ModelError("bhs >= 0, max_depth >= 1 and ops >= 0 are required")
        stop = self.bhs + 1 if "stop" in every else -1
        object.__setattr__(self, "_stop", stop)
        # aio_bh_poll visits newest-created first (QEMU pushes at the list head): the dummy
        # BH is created with the context, so it is the oldest; the stop one-shot the newest.
        walk = (*range(self.bhs - 1, -1, -1), self.bhs)
        object.__setattr__(self, "_walk", ((stop, *walk) if stop >= 0 else walk))

    def ops_of(self, t: int) -> frozenset[str]:
        """The operations client thread ``t`` may choose from."""
        return self.thread_ops[t] if self.thread_ops else self.client_ops

    # -- BH numbering: user BHs 0..bhs-1, then the dummy (kick) BH, then the stop one-shot --
    @property
    def dummy(self) -> int:
        """Index of the context's ``notify_dummy_bh``."""
        return self.bhs

    @property
    def stop_bh(self) -> int:
        """Index of the one-shot BH that stops the IOThread (-1 without the stop op)."""
        return self._stop

    @property
    def n_bhs(self) -> int:
        return self.bhs + (2 if self._stop >= 0 else 1)

    @property
    def walk_order(self) -> tuple[int, ...]:
        """``aio_bh_poll``'s visiting order of BH indices: newest-created first."""
        return self._walk

    def bh_id(self, b: int) -> int:
        """The BH's id in trace events (user BH ``b`` is ``b + 1``; dummy 100; stop 200)."""
        if b == self.dummy:
            return 100
        if b == self.stop_bh:
            return 200
        return b + 1

    def label(self) -> str:
        """A short human-readable name, e.g. ``io+client+client/2bh/d2/ops2``."""
        extra = [f"{self.handlers}h"] if self.handlers else []
        extra += [f"{self.timers}t"] if self.timers else []
        extra += sorted(self.bugs)
        return "/".join(
            ["+".join(self.roles), f"{self.bhs}bh", f"d{self.max_depth}", f"ops{self.ops}",
             *extra]
        )


@dataclass(frozen=True, slots=True)
class BHState:
    """One bottom half.

    Protocol fields are QEMU's; history fields exist for the P2 invariant:

    * ``pending``: a schedule took effect (its flag exchange, or its test that found the
      flag already set) since this BH's last run began, and was not withdrawn by a cancel or
      delete.  P2 "not lost": ``pending`` implies ``scheduled``.
    * ``bad_run``: a run began while nothing was pending, or after ``qemu_bh_delete``
      (one-shots excepted).  P2 "no spurious run" / "deleted never runs".
    """

    scheduled: bool = False
    idle: bool = False
    deleted: bool = False
    alive: bool = True  # in the context's BH list (the stop one-shot appears when scheduled)
    pending: bool = False
    bad_run: bool = False
    cb_done: bool = False  # the callback's one-time effect has happened
    _h: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        h = (self.scheduled, self.idle, self.deleted, self.alive, self.pending, self.bad_run,
             self.cb_done)
        object.__setattr__(self, "_h", hash(h))

    def __hash__(self) -> int:
        return self._h


@dataclass(frozen=True, slots=True)
class LockState:
    """The context's RFifoLock.

    ``holder`` is the owner, or the waiter the lock was handed to at the last release (which
    owns it from the moment it wakes); ``depth`` is the nesting count (0 while handed over);
    ``queue`` the other waiters in ticket order.  ``busy`` is the thread holding the lock's
    internal mutex while it runs the contention callback (-1: nobody), which keeps other
    threads out of lock and final unlock meanwhile.  ``barged`` (history): the lock was
    granted to a thread while an earlier ticket was still waiting (P1 FIFO).
    """

    holder: int = -1
    depth: int = 0
    queue: tuple[int, ...] = ()
    busy: int = -1
    barged: bool = False
    _h: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        h = (self.holder, self.depth, self.queue, self.busy, self.barged)
        object.__setattr__(self, "_h", hash(h))

    def __hash__(self) -> int:
        return self._h


@dataclass(frozen=True, slots=True)
class ThreadState:
    """One thread: where it is, what it holds, and the history P2 needs.

    Attributes:
        pc: the next step's label (see :mod:`model._actions`); ``"end"`` when finished.
        arg: the step's argument (BH index being scheduled, walk position, ...).
        stack: continuation frames ``(label, arg)``; the top is the last element.
        depth: how many times this thread holds the context (its own view).
        budget: client operations left.
        in_poll: between ``poll_begin`` and ``poll_end`` (P3).
        blocking: the current ``aio_poll`` is blocking.
        timeout: the poll's computed timeout: 0 zero, 1 finite (idle BH), 2 infinite.
        ready: handlers whose fds the poll returned as ready (dispatched later).
        runs: per BH, runs in this thread's current aio_poll iteration (saturates at 2; P2).
        saved: the value ``dispatching-flag-shared`` restores on exit.
        sched_bh: the BH this thread is inside ``qemu_bh_schedule`` of (-1: none).
        sched_lock: history: took or waited for a lock inside ``qemu_bh_schedule`` (P2).
    """

    pc: str
    arg: int = -1
    stack: tuple[tuple[str, int], ...] = ()
    depth: int = 0
    budget: int = 0
    in_poll: bool = False
    blocking: bool = False
    timeout: int = 0
    ready: tuple[int, ...] = ()
    runs: tuple[int, ...] = ()
    saved: int = 0
    sched_bh: int = -1
    sched_lock: bool = False
    _h: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        h = (self.pc, self.arg, self.stack, self.depth, self.budget, self.in_poll, self.blocking,
             self.timeout, self.ready, self.runs, self.saved, self.sched_bh, self.sched_lock)
        object.__setattr__(self, "_h", hash(h))

    def __hash__(self) -> int:
        return self._h


@dataclass(frozen=True, slots=True)
class State:
    """A global state.  ``config`` is carried along but is not part of equality or hashing.

    Attributes:
        threads: per thread.
        bhs: per BH index (see :attr:`ModelConfig.walk_order` for the numbering).
        lock: the context lock.
        notify_me: the 2015 counter (+2 per blocking aio_poll in its poll phase, bit 0 for
            the GSource between prepare and check); 0/1 under ``dispatching-flag-shared``.
        notified: ``ctx->notified``.
        event: the context's EventNotifier is set.
        ready: per handler, its notifier is set (the fd is readable).
        armed: per timer, it is armed and due.
        stopping: the IOThread's stop BH has run.
    """

    config: ModelConfig = field(compare=False, repr=False)
    threads: tuple[ThreadState, ...]
    bhs: tuple[BHState, ...]
    lock: LockState = LockState()
    notify_me: int = 0
    notified: bool = False
    event: bool = False
    ready: tuple[bool, ...] = ()
    armed: tuple[bool, ...] = ()
    stopping: bool = False
    _h: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        h = (self.threads, self.bhs, self.lock, self.notify_me, self.notified, self.event,
             self.ready, self.armed, self.stopping)
        object.__setattr__(self, "_h", hash(h))

    def __hash__(self) -> int:
        return self._h


def _start(role: str, cfg: ModelConfig) -> ThreadState:
    runs = (0,) * cfg.n_bhs
    if role == "io":
        # acquire; aio_poll(ctx, true); release; loop (frames popped last-in first-out)
        return ThreadState("acquire", stack=(("io.loop", -1), ("release", -1), ("poll", 1)),
                           runs=runs)
    if role == "gsource":
        return ThreadState("gsource.prepare", runs=runs)
    return ThreadState("op", budget=cfg.ops, runs=runs)


def initial(config: ModelConfig | None = None) -> State:
    """The initial state: context created, user BHs created (not scheduled), nothing held."""
    cfg = config or ModelConfig()
    bhs = [BHState() for _ in range(cfg.n_bhs)]
    if cfg.stop_bh >= 0:
        bhs[cfg.stop_bh] = BHState(alive=False, deleted=True)
    return State(
        config=cfg,
        threads=tuple(_start(r, cfg) for r in cfg.roles),
        bhs=tuple(bhs),
        ready=(False,) * cfg.handlers,
        armed=(False,) * cfg.timers,
    )
