"""The model's transition relation: ``enabled_actions(state)`` and ``step(state, action)``.

Why it exists: this is the protocol, one atomic step at a time, written so that each step
can be checked against QEMU's code and impl's (:mod:`impl._context`, :mod:`impl._lock`) by
reading it.  An action is one shared-memory access (or one lock operation) of one thread;
purely thread-local work is folded into the neighbouring step.  Every action carries the
trace events impl emits at that point, so :func:`events_of` turns a model path into the
event stream the runtime monitors of :mod:`properties` consume.

Steps (label: what it does; the QEMU code it follows):

* lock (util/rfifolock.c, impl/_lock.py): ``acquire`` nests for the owner, takes the lock
  when it is free, else takes a ticket and runs the contention callback under the lock's
  internal mutex: ``qemu_bh_schedule(notify_dummy_bh)``, the sticky kick of QEMU 2.4;
  ``acquire.wait`` is granted when the previous owner handed the lock over;
  ``release`` hands the lock to the first waiter (FIFO).
* ``qemu_bh_schedule`` (async.c after 924fe1293c and the 2015 barrier fix): ``schedule``
  (trace begin, ``idle = 0``), ``schedule.xchg`` (exchange ``scheduled``; a 1 means coalesced),
  then ``aio_notify``: ``notify.read`` (read ``notify_me``; 0: nothing to wake),
  ``notify.event`` (set the EventNotifier), ``notify.notified`` (``notified = true``).
* ``aio_poll(ctx, blocking)`` (aio-posix.c, QEMU 2.4 order): ``poll`` (trace begin; blocking:
  ``notify_me += 2``), ``poll.scan`` (``aio_compute_timeout``), ``poll.wait`` (blocked until
  the timeout is not infinite, the event is set or a handler is ready), ``poll.dec``
  (``notify_me -= 2``), ``poll.accept`` / ``poll.clear`` (``aio_notify_accept``: exchange
  ``notified``, then clear the event), ``poll.bh`` (``aio_bh_poll``, one BH per step, newest
  first, claim by exchange then run the callback), ``poll.handlers``, ``poll.timers``,
  ``poll.end``.
* IOThread (iothread.c, acfb23ad3d loop form): ``acquire; aio_poll(true); release`` until its
  stop BH ran (2362a28ea1).  GSource main loop (async.c ``aio_ctx_prepare/check``, QEMU 2.4):
  ``gsource.prepare`` (``notify_me |= 1``), ``gsource.scan``, ``gsource.wait``,
  ``gsource.check`` (``notify_me &= ~1``), then ``acquire; aio_poll(false); release``.
* Clients: at ``op`` choose an operation (the choice and its first step are one action).

Mutants (``ModelConfig.bugs``) change single steps; each is marked ``# BUG <name>`` below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from aioctx_verify.vocab import ThreadId, TraceEvent

from ._state import CTX_ID, BHState, LockState, ModelConfig, ModelError, State, ThreadState

__all__ = [
    "Action",
    "enabled_actions",
    "describe",
    "events_of",
    "format_path",
    "replay",
    "step",
    "successors",
]

#: Placeholder object of a ``lock_wait`` event; :func:`events_of` numbers tickets in order.
TICKET = -1

Event = tuple[str, int, str]


@dataclass(frozen=True, slots=True)
class Action:
    """One atomic step of one thread.

    ``(thread, step, arg)`` identifies the transition from a given state; ``events`` are the
    trace events impl emits during it (kind, object, detail) and take no part in equality.
    """

    thread: int
    step: str
    arg: int = -1
    events: tuple[Event, ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        arg = "" if self.arg < 0 else str(self.arg)
        return f"t{self.thread} {self.step}({arg})"


_THREAD_FIELDS = (
    "pc", "arg", "stack", "depth", "budget", "in_poll", "blocking", "timeout", "ready", "runs",
    "saved", "sched_bh", "sched_lock",
)


class _T:
    """The acting thread's fields, mutable for the length of one step."""

    __slots__ = _THREAD_FIELDS

    pc: str
    arg: int
    stack: tuple[tuple[str, int], ...]
    depth: int
    budget: int
    in_poll: bool
    blocking: bool
    timeout: int
    ready: tuple[int, ...]
    runs: tuple[int, ...]
    saved: int
    sched_bh: int
    sched_lock: bool

    def __init__(self, th: ThreadState) -> None:
        self.pc = th.pc
        self.arg = th.arg
        self.stack = th.stack
        self.depth = th.depth
        self.budget = th.budget
        self.in_poll = th.in_poll
        self.blocking = th.blocking
        self.timeout = th.timeout
        self.ready = th.ready
        self.runs = th.runs
        self.saved = th.saved
        self.sched_bh = th.sched_bh
        self.sched_lock = th.sched_lock

    def freeze(self) -> ThreadState:
        return ThreadState(
            self.pc, self.arg, self.stack, self.depth, self.budget, self.in_poll, self.blocking,
            self.timeout, self.ready, self.runs, self.saved, self.sched_bh, self.sched_lock,
        )


def _bh(bh: BHState, **kw: bool) -> BHState:
    """``dataclasses.replace`` for a BH, without its overhead (this is the hot path)."""
    return BHState(
        kw.get("scheduled", bh.scheduled),
        kw.get("idle", bh.idle),
        kw.get("deleted", bh.deleted),
        kw.get("alive", bh.alive),
        kw.get("pending", bh.pending),
        kw.get("bad_run", bh.bad_run),
        kw.get("cb_done", bh.cb_done),
    )


def _lock(lock: LockState, **kw: object) -> LockState:
    return LockState(
        kw.get("holder", lock.holder),  # type: ignore[arg-type]
        kw.get("depth", lock.depth),  # type: ignore[arg-type]
        kw.get("queue", lock.queue),  # type: ignore[arg-type]
        kw.get("busy", lock.busy),  # type: ignore[arg-type]
        kw.get("barged", lock.barged),  # type: ignore[arg-type]
    )


class _W:
    """A mutable working copy of a state for one step of thread ``t``; :meth:`freeze` ends it."""

    __slots__ = (
        "armed",
        "bhs",
        "cfg",
        "event",
        "events",
        "lock",
        "me",
        "notified",
        "notify_me",
        "ready",
        "stopping",
        "t",
        "threads",
    )

    def __init__(self, s: State, t: int) -> None:
        self.cfg: ModelConfig = s.config
        self.t = t
        self.threads: tuple[ThreadState, ...] = s.threads  # read-only: the others' view
        self.me = _T(s.threads[t])
        self.bhs: list[BHState] = list(s.bhs)
        self.lock: LockState = s.lock
        self.notify_me = s.notify_me
        self.notified = s.notified
        self.event = s.event
        self.ready: list[bool] = list(s.ready)
        self.armed: list[bool] = list(s.armed)
        self.stopping = s.stopping
        self.events: list[Event] = []

    def freeze(self) -> State:
        threads = list(self.threads)
        threads[self.t] = self.me.freeze()
        return State(
            self.cfg,
            tuple(threads),
            tuple(self.bhs),
            self.lock,
            self.notify_me,
            self.notified,
            self.event,
            tuple(self.ready),
            tuple(self.armed),
            self.stopping,
        )

    # -- the acting thread -------------------------------------------------------------------
    def upd(self, **kw: object) -> None:
        me = self.me
        for k, v in kw.items():
            setattr(me, k, v)

    def bug(self, name: str) -> bool:
        return name in self.cfg.bugs

    def emit(self, kind: str, obj: int = 0, detail: str = "") -> None:
        self.events.append((kind, obj, detail))

    def set_bh(self, b: int, **kw: bool) -> None:
        self.bhs[b] = _bh(self.bhs[b], **kw)

    # -- control flow ------------------------------------------------------------------------
    def goto(self, pc: str, arg: int = -1) -> None:
        self.me.pc = pc
        self.me.arg = arg

    def push(self, label: str, arg: int = -1) -> None:
        self.me.stack = (*self.me.stack, (label, arg))

    def ret(self) -> None:
        """Return to the top continuation frame, running epilogue frames inline."""
        while True:
            stack = self.me.stack
            if not stack:
                raise ModelError(f"thread {self.t} returned with an empty stack")
            (label, arg) = stack[-1]
            self.me.stack = stack[:-1]
            if label == "sched.end":  # qemu_bh_schedule's last trace point
                self.sched_end(arg, "new")
                continue
            if label == "kick.done":  # the contention callback returned; cond_wait drops
                self.lock = _lock(self.lock, busy=-1)  # the internal mutex
                self.goto("acquire.wait")
            elif label == "io.loop":  # iothread_run: while (!stopping) { ... }
                if self.stopping:
                    self.emit("iothread_stop", 1, "iothread")
                    self.goto("end")
                else:
                    self.upd(stack=_IO_FRAMES)
                    self.goto("acquire")
            elif label == "gsource.loop":
                self.goto("gsource.prepare")
            else:
                self.goto(label, arg)
            return

    def sched_end(self, b: int, detail: str) -> None:
        self.emit("bh_schedule_end", self.cfg.bh_id(b), detail)
        self.upd(sched_bh=-1)


_IO_FRAMES: tuple[tuple[str, int], ...] = (("io.loop", -1), ("release", -1), ("poll", 1))

Step = Callable[[_W], bool]


# ------------------------------------------------------------------------------------------
# The context lock (RFifoLock)
# ------------------------------------------------------------------------------------------
def _acquire(w: _W) -> bool:
    me, lock, t = w.me, w.lock, w.t
    if me.sched_bh >= 0:
        w.upd(sched_lock=True)  # P2 history: a lock operation inside qemu_bh_schedule
    if lock.depth > 0 and lock.holder == t:  # the owner nests without the internal mutex
        d = lock.depth + 1
        w.lock = _lock(lock, depth=d)
        w.upd(depth=me.depth + 1)
        w.emit("acquire", d)
        w.ret()
        return True
    if lock.busy != -1:
        return False  # another waiter holds the internal mutex (its contention callback)
    if lock.holder == -1 and (not lock.queue or w.bug("lock-no-fifo")):
        # BUG lock-no-fifo: a new arrival takes a free lock although others wait.
        w.lock = _lock(lock, holder=t, depth=1, barged=lock.barged or bool(lock.queue))
        w.upd(depth=me.depth + 1)
        w.emit("acquire", 1)
        w.ret()
        return True
    w.emit("lock_wait", TICKET)
    queue = (*lock.queue, t)
    if w.bug("no-contention-callback"):  # BUG: nobody kicks the owner
        w.lock = _lock(lock, queue=queue)
        w.goto("acquire.wait")
        return True
    w.lock = _lock(lock, queue=queue, busy=t)
    w.emit("contention_kick")
    w.push("kick.done")
    if w.bug("nonsticky-kick"):  # BUG: the 2014 kick, a bare aio_notify (dropped if idle)
        w.goto("notify.read")
    else:  # QEMU 2.4: qemu_bh_schedule(ctx->notify_dummy_bh)
        _schedule_begin(w, w.cfg.dummy, kick=True)
    return True


def _acquire_wait(w: _W) -> bool:
    lock, t = w.lock, w.t
    if lock.busy != -1:
        return False
    if w.bug("lock-no-fifo"):  # BUG: any waiter may take a free lock
        if lock.holder != -1:
            return False
        barged = lock.barged or lock.queue[0] != t
        queue = tuple(x for x in lock.queue if x != t)
    else:
        if lock.holder != t or lock.depth != 0:
            return False
        barged, queue = lock.barged, lock.queue
    w.lock = _lock(lock, holder=t, depth=1, queue=queue, barged=barged)
    w.upd(depth=w.me.depth + 1)
    w.emit("acquire", 1)
    w.ret()
    return True


def _handoff(w: _W, lock: LockState) -> LockState:
    """The last unlock: ``head += 1``, i.e. the first waiter now owns the lock."""
    if lock.queue and not w.bug("lock-no-fifo"):
        return _lock(lock, holder=lock.queue[0], queue=lock.queue[1:], depth=0)
    return _lock(lock, holder=-1, depth=0)


def _release(w: _W) -> bool:
    me, lock, t = w.me, w.lock, w.t
    if lock.holder != t or lock.depth == 0:
        # Only reachable after a mutant corrupted the lock: impl refuses (NotOwnerError).
        w.upd(depth=max(0, me.depth - 1))
        w.ret()
        return True
    if lock.depth > 1:
        w.lock = _lock(lock, depth=lock.depth - 1)
        w.upd(depth=me.depth - 1)
        w.emit("release", lock.depth - 1)
        w.ret()
        return True
    if lock.busy != -1:
        return False
    w.lock = _handoff(w, lock)
    w.upd(depth=me.depth - 1)
    w.emit("release", 0)
    w.ret()
    return True


def _bad_release(w: _W) -> bool:
    """``aio_context_release`` by a thread that does not hold the context."""
    lock = w.lock
    if not w.bug("release-by-non-owner-accepted"):
        return True  # refused (NotOwnerError); nothing changes
    if lock.busy != -1:
        return False
    # BUG release-by-non-owner-accepted: the owner's nesting count is decremented.
    w.emit("release", lock.depth - 1)
    w.lock = _lock(lock, depth=lock.depth - 1) if lock.depth > 1 else _handoff(w, lock)
    return True


# ------------------------------------------------------------------------------------------
# Bottom halves
# ------------------------------------------------------------------------------------------
def _schedule_begin(w: _W, b: int, *, kick: bool = False) -> None:
    w.emit("bh_schedule_begin", w.cfg.bh_id(b))
    w.upd(sched_bh=b)
    w.set_bh(b, idle=False)
    if w.bug("schedule-takes-lock") and not kick:
        # BUG: qemu_bh_schedule brackets its work with aio_context_acquire/release.
        w.push("release")
        w.push("schedule.xchg", b)
        w.goto("acquire")
    else:
        w.goto("schedule.xchg", b)


def _schedule(w: _W) -> bool:
    _schedule_begin(w, w.me.arg)
    return True


def _schedule_xchg(w: _W) -> bool:
    b = w.me.arg
    old = w.bhs[b].scheduled
    if w.bug("bh-nonatomic-test-and-set"):  # BUG: test now, set in a later step
        if old:
            w.set_bh(b, pending=True)
            w.sched_end(b, "coalesced")
            w.ret()
        else:
            w.goto("schedule.write", b)
        return True
    w.set_bh(b, scheduled=True, pending=True)
    if old:
        w.sched_end(b, "coalesced")
        w.ret()
    else:
        w.push("sched.end", b)
        w.goto("notify.read")
    return True


def _schedule_write(w: _W) -> bool:
    b = w.me.arg
    w.set_bh(b, scheduled=True, pending=True)
    w.push("sched.end", b)
    w.goto("notify.read")
    return True


def _schedule_idle(w: _W, b: int) -> None:
    """``qemu_bh_schedule_idle``: one step (test, then set ``idle``, ``scheduled``); no notify."""
    w.emit("bh_schedule_begin", w.cfg.bh_id(b))
    if not w.bhs[b].scheduled:
        w.set_bh(b, idle=True, scheduled=True)
    w.set_bh(b, pending=True)
    w.emit("bh_schedule_end", w.cfg.bh_id(b), "idle")


def _delete(w: _W, b: int) -> None:
    """``qemu_bh_delete``: unschedule and mark deleted (reclaimed by the walker later)."""
    keep = w.bhs[b].scheduled and w.bug("deleted-bh-runs")  # BUG: the flag is left set
    w.set_bh(b, scheduled=keep, deleted=True, pending=False)
    w.emit("bh_delete", w.cfg.bh_id(b))


def _schedule_atomic(w: _W, b: int) -> None:
    """``qemu_bh_schedule`` as one step: used from inside a BH callback (already atomic)."""
    w.emit("bh_schedule_begin", w.cfg.bh_id(b))
    old = w.bhs[b].scheduled
    w.set_bh(b, idle=False, scheduled=True, pending=True)
    if old:
        w.emit("bh_schedule_end", w.cfg.bh_id(b), "coalesced")
        return
    if w.notify_me:
        if not (w.bug("notified-bug2") and w.notified):
            w.event = True
        w.notified = True
        w.emit("notify", 1)
    w.emit("bh_schedule_end", w.cfg.bh_id(b), "new")


# ------------------------------------------------------------------------------------------
# aio_notify
# ------------------------------------------------------------------------------------------
def _notify_read(w: _W) -> bool:
    if not w.notify_me:  # nobody is (about to be) blocked: the poller will see the change
        w.ret()
    elif w.bug("notified-bug1"):  # BUG1: publish notified before the event
        w.goto("notify.notified1")
    else:
        w.goto("notify.event")
    return True


def _notify_event(w: _W) -> bool:
    if not (w.bug("notified-bug2") and w.notified):  # BUG2: skip the write if notified
        w.event = True
    w.goto("notify.notified")
    return True


def _notify_notified(w: _W) -> bool:
    w.notified = True
    w.emit("notify", 1)
    w.ret()
    return True


def _notify_notified1(w: _W) -> bool:
    w.notified = True
    w.goto("notify.event1")
    return True


def _notify_event1(w: _W) -> bool:
    w.event = True
    w.emit("notify", 1)
    w.ret()
    return True


# ------------------------------------------------------------------------------------------
# aio_poll
# ------------------------------------------------------------------------------------------
def _timeout(w: _W) -> int:
    """``aio_compute_timeout``: 0 (a non-idle BH or a due timer), 1 (idle BHs only), 2 (none)."""
    timeout = 2
    for bh in w.bhs:
        if bh.alive and bh.scheduled:
            if not bh.idle:
                return 0
            timeout = 1
    return 0 if any(w.armed) else timeout


def _can_wake(w: _W) -> bool:
    return w.me.timeout != 2 or w.event or any(w.ready)


def _ready_now(w: _W) -> tuple[int, ...]:
    return tuple(h for h, r in enumerate(w.ready) if r)


def _poll(w: _W) -> bool:
    blocking = w.me.arg == 1
    w.emit("poll_begin", int(blocking))
    w.upd(in_poll=True, blocking=blocking, runs=(0,) * w.cfg.n_bhs, timeout=0)
    if blocking:
        if w.bug("dispatching-flag-shared"):  # BUG: one shared bool, saved and restored
            w.upd(saved=w.notify_me)
            w.notify_me = 1
        else:
            w.notify_me += 2
        w.goto("poll.scan")
    else:
        w.upd(ready=_ready_now(w))  # poll with timeout 0
        _after_wait(w)
    return True


def _poll_scan(w: _W) -> bool:
    timeout = _timeout(w)
    w.upd(timeout=timeout)
    if timeout:
        w.emit("poll_wait", timeout)
    w.goto("poll.wait")
    return True


def _poll_wait(w: _W) -> bool:
    if not _can_wake(w):
        return False
    w.upd(ready=_ready_now(w))
    w.goto("poll.dec")
    return True


def _poll_dec(w: _W) -> bool:
    if w.bug("dispatching-flag-shared"):
        w.notify_me = w.me.saved
    else:
        w.notify_me -= 2
    _after_wait(w)
    return True


def _after_wait(w: _W) -> None:
    if w.bug("notify-clear-late"):  # BUG (21a03d17f2): clear the notifier after dispatch
        _walk_start(w)
    else:
        w.goto("poll.accept")


def _poll_accept(w: _W) -> bool:
    old = w.notified
    w.notified = False
    if old:
        w.goto("poll.clear")
    else:
        _after_accept(w)
    return True


def _poll_clear(w: _W) -> bool:
    w.event = False
    w.emit("notify_accept")
    _after_accept(w)
    return True


def _after_accept(w: _W) -> None:
    if w.bug("notify-clear-late"):
        w.goto("poll.end")
    else:
        _walk_start(w)


def _walk_start(w: _W) -> None:
    stop = w.cfg.stop_bh
    # The walk starts at the list head as it is now: a stop BH inserted later is not seen.
    w.goto("poll.bh", 1 if stop >= 0 and not w.bhs[stop].alive else 0)


def _walk_next(w: _W, pos: int) -> None:
    if pos + 1 < len(w.cfg.walk_order):
        w.goto("poll.bh", pos + 1)
    elif w.cfg.handlers:
        w.goto("poll.handlers")
    elif w.cfg.timers:
        w.goto("poll.timers")
    else:
        _after_dispatch(w)


def _after_dispatch(w: _W) -> None:
    w.goto("poll.accept" if w.bug("notify-clear-late") else "poll.end")


def _poll_bh(w: _W) -> bool:
    pos = w.me.arg
    b = w.cfg.walk_order[pos]
    bh = w.bhs[b]
    if not (bh.alive and bh.scheduled):
        _walk_next(w, pos)
        return True
    if b < w.cfg.bhs and w.cfg.bh_callbacks[b] == "delete" and not bh.cb_done and any(
        th.sched_bh == b for i, th in enumerate(w.threads) if i != w.t
    ):
        return False  # deleting a BH another thread is scheduling is a use-after-free
    if w.bug("bh-nonatomic-test-and-set"):  # BUG: run first, clear the flag afterwards
        _run(w, b)
        w.goto("poll.bh_clear", pos)
        return True
    w.set_bh(b, scheduled=False)
    _run(w, b)
    if w.bug("rerun-same-iteration") and w.bhs[b].scheduled:  # BUG: visit it again
        w.goto("poll.bh", pos)
    else:
        _walk_next(w, pos)
    return True


def _poll_bh_clear(w: _W) -> bool:
    pos = w.me.arg
    w.set_bh(w.cfg.walk_order[pos], scheduled=False)
    _walk_next(w, pos)
    return True


def _run(w: _W, b: int) -> None:
    """Run BH ``b``'s callback (its flag already claimed) and record P2 history."""
    cfg, bh = w.cfg, w.bhs[b]
    bad = bh.bad_run or not bh.pending or (bh.deleted and b != cfg.stop_bh)
    runs = list(w.me.runs)
    runs[b] = min(2, runs[b] + 1)
    w.upd(runs=tuple(runs))
    w.set_bh(b, pending=False, idle=False, bad_run=bad)
    w.emit("bh_run_begin", cfg.bh_id(b))
    if b == cfg.stop_bh:
        w.stopping = True  # iothread_stop's BH: the loop ends after this iteration
    elif b < cfg.bhs and not bh.cb_done and cfg.bh_callbacks[b] != "noop":
        w.set_bh(b, cb_done=True)
        cb = cfg.bh_callbacks[b]
        if cb == "resched":
            _schedule_atomic(w, b)
        elif cb == "sched-other":
            other = (b + 1) % cfg.bhs
            if not w.bhs[other].deleted:
                _schedule_atomic(w, other)
        elif cb == "delete":
            _delete(w, b)
    w.emit("bh_run_end", cfg.bh_id(b))


def _poll_handlers(w: _W) -> bool:
    for h in sorted(w.me.ready, reverse=True):  # newest-registered first
        w.emit("handler_run_begin", 300 + h, "fd_read")
        w.ready[h] = False  # the handler's event_notifier_test_and_clear
        w.emit("handler_run_end", 300 + h, "fd_read")
    w.upd(ready=())
    if w.cfg.timers:
        w.goto("poll.timers")
    else:
        _after_dispatch(w)
    return True


def _poll_timers(w: _W) -> bool:
    for k, armed in enumerate(w.armed):
        if armed:
            w.armed[k] = False
            w.emit("timer_run_begin", 400 + k)
            w.emit("timer_run_end", 400 + k)
    _after_dispatch(w)
    return True


def _poll_end(w: _W) -> bool:
    w.emit("poll_end")
    w.upd(in_poll=False)
    w.ret()
    return True


# ------------------------------------------------------------------------------------------
# GSource main loop (prepare / poll / check outside the lock, dispatch under it)
# ------------------------------------------------------------------------------------------
def _g_prepare(w: _W) -> bool:
    if w.bug("dispatching-flag-shared"):
        w.upd(saved=w.notify_me)
        w.notify_me = 1
    else:
        w.notify_me |= 1
    w.goto("gsource.scan")
    return True


def _g_scan(w: _W) -> bool:
    w.upd(timeout=_timeout(w))
    w.goto("gsource.wait")
    return True


def _g_wait(w: _W) -> bool:
    if not _can_wake(w):
        return False
    w.goto("gsource.check")
    return True


def _g_check(w: _W) -> bool:
    if w.bug("dispatching-flag-shared"):
        w.notify_me = w.me.saved
    else:
        w.notify_me &= ~1
    w.goto("gsource.accept")
    return True


def _g_accept(w: _W) -> bool:
    old = w.notified
    w.notified = False
    if old:
        w.goto("gsource.clear")
    else:
        _g_dispatch(w)
    return True


def _g_clear(w: _W) -> bool:
    w.event = False
    w.emit("notify_accept")
    _g_dispatch(w)
    return True


def _g_dispatch(w: _W) -> None:
    """``aio_ctx_check`` said ready: dispatch under the context, else back to prepare.

    (The check's read of the BH flags, timers and handlers is folded into the step that
    ends the accept: a change after it is seen by the next prepare.)
    """
    if any(bh.alive and bh.scheduled for bh in w.bhs) or any(w.ready) or any(w.armed):
        w.me.stack = (("gsource.loop", -1), ("release", -1), ("poll", 0))
        w.goto("acquire")
    else:
        w.goto("gsource.prepare")


_STEPS: dict[str, Step] = {
    "acquire": _acquire,
    "acquire.wait": _acquire_wait,
    "release": _release,
    "schedule": _schedule,
    "schedule.xchg": _schedule_xchg,
    "schedule.write": _schedule_write,
    "notify.read": _notify_read,
    "notify.event": _notify_event,
    "notify.notified": _notify_notified,
    "notify.notified1": _notify_notified1,
    "notify.event1": _notify_event1,
    "poll": _poll,
    "poll.scan": _poll_scan,
    "poll.wait": _poll_wait,
    "poll.dec": _poll_dec,
    "poll.accept": _poll_accept,
    "poll.clear": _poll_clear,
    "poll.bh": _poll_bh,
    "poll.bh_clear": _poll_bh_clear,
    "poll.handlers": _poll_handlers,
    "poll.timers": _poll_timers,
    "poll.end": _poll_end,
    "gsource.prepare": _g_prepare,
    "gsource.scan": _g_scan,
    "gsource.wait": _g_wait,
    "gsource.check": _g_check,
    "gsource.accept": _g_accept,
    "gsource.clear": _g_clear,
}


# ------------------------------------------------------------------------------------------
# Client operations
# ------------------------------------------------------------------------------------------
def _client_choices(s: State, t: int) -> Iterable[tuple[str, int, Callable[[_W], bool]]]:
    """Every operation client ``t`` may start now: (name, argument, first step)."""
    cfg, me = s.config, s.threads[t]
    ops = cfg.ops_of(t)
    lock = s.lock
    if me.depth == 0:
        yield "finish", -1, _finish
    if me.depth > 0 and "release" in ops:
        yield "release", -1, _call(_release)
    if me.budget <= 0:
        return
    if "acquire" in ops and me.depth < cfg.max_depth:
        yield "acquire", -1, _call(_acquire)
    held = me.depth > 0
    for b in range(cfg.bhs):
        bh = s.bhs[b]
        if bh.deleted:
            continue
        if "schedule" in ops:
            yield "schedule", b, _call(_schedule_entry(b))
        if "schedule_idle" in ops:
            yield "schedule_idle", b, _simple(_schedule_idle, b)
        if held and "cancel" in ops:
            yield "cancel", b, _simple(_cancel, b)
        if held and "delete" in ops and not any(th.sched_bh == b for th in s.threads):
            yield "delete", b, _simple(_delete, b)
    if "poll" in ops and (held or "non-home-thread-poll" in cfg.bugs):
        # BUG non-home-thread-poll: a thread that does not hold the context runs aio_poll.
        yield "poll", -1, _call(_poll_entry)
    if "notifier_set" in ops:
        for h in range(cfg.handlers):
            if not s.ready[h]:
                yield "notifier_set", h, _simple(_notifier_set, h)
    if "timer_mod" in ops:
        for k in range(cfg.timers):
            yield "timer_mod", k, _call(_timer_mod_entry(k))
    if "timer_del" in ops:
        for k in range(cfg.timers):
            if s.armed[k]:
                yield "timer_del", k, _simple(_timer_del, k)
    if "bad_release" in ops and me.depth == 0 and lock.depth > 0 and lock.holder != t:
        yield "bad_release", -1, _bad_release
    if "stop" in ops and cfg.stop_bh >= 0 and not s.bhs[cfg.stop_bh].alive:
        yield "stop", -1, _call(_stop_entry)


def _finish(w: _W) -> bool:
    w.goto("end")
    return True


def _call(first: Step) -> Step:
    """An operation that runs routine steps: return to ``op`` when it is done."""

    def run(w: _W) -> bool:
        w.push("op")
        return first(w)

    return run


def _simple(effect: Callable[[_W, int], object], arg: int) -> Step:
    """A one-step operation: ``effect(w, arg)``, then back to ``op``."""

    def run(w: _W) -> bool:
        effect(w, arg)
        return True

    return run


def _notifier_set(w: _W, h: int) -> None:
    """``event_notifier_set`` of handler ``h``'s notifier: its fd becomes readable."""
    w.ready[h] = True


def _timer_del(w: _W, k: int) -> None:
    """``timer_del``: disarm timer ``k`` (no notify)."""
    w.armed[k] = False


def _schedule_entry(b: int) -> Step:
    def run(w: _W) -> bool:
        _schedule_begin(w, b)
        return True

    return run


def _cancel(w: _W, b: int) -> None:
    w.set_bh(b, scheduled=False, pending=False)
    w.emit("bh_cancel", w.cfg.bh_id(b))


def _poll_entry(w: _W) -> bool:
    w.upd(arg=0)
    return _poll(w)


def _timer_mod_entry(k: int) -> Step:
    def run(w: _W) -> bool:
        # Due timers share one expiry, so k becomes the list head iff no other is armed;
        # then timerlist_notify -> aio_notify.
        head = not any(a for i, a in enumerate(w.armed) if i != k)
        w.armed[k] = True
        if head:
            w.goto("notify.read")
        else:
            w.ret()
        return True

    return run


def _stop_entry(w: _W) -> bool:
    """``iothread_stop``: ``aio_bh_schedule_oneshot(ctx, set_stopping)`` (2362a28ea1)."""
    b = w.cfg.stop_bh
    w.emit("bh_new", w.cfg.bh_id(b), "oneshot")
    w.emit("bh_schedule_begin", w.cfg.bh_id(b))
    w.set_bh(b, alive=True, scheduled=True, deleted=True, pending=True)
    w.upd(sched_bh=b)
    w.push("sched.end", b)
    w.goto("notify.read")
    return True


# ------------------------------------------------------------------------------------------
# The transition relation
# ------------------------------------------------------------------------------------------
def successors(s: State) -> list[tuple[Action, State]]:
    """Every enabled action with the state it leads to, in a fixed order."""
    out: list[tuple[Action, State]] = []
    for t, th in enumerate(s.threads):
        pc = th.pc
        if pc == "end":
            continue
        if pc == "op":
            for name, arg, first in _client_choices(s, t):
                w = _W(s, t)
                if name not in ("finish", "release"):
                    w.upd(budget=th.budget - 1)
                if first(w):
                    out.append((Action(t, name, arg, tuple(w.events)), w.freeze()))
            continue
        w = _W(s, t)
        if _STEPS[pc](w):
            out.append((Action(t, pc, th.arg, tuple(w.events)), w.freeze()))
    return out


def enabled_actions(state: State) -> list[Action]:
    """The actions enabled in ``state``."""
    return [a for a, _ in successors(state)]


def step(state: State, action: Action) -> State:
    """The state ``action`` leads to from ``state``.

    Raises:
        ModelError: the action is not enabled in ``state``.
    """
    for a, s2 in successors(state):
        if a == action:
            return s2
    raise ModelError(f"action {action} is not enabled in this state")


def replay(config: ModelConfig, path: Iterable[Action]) -> list[State]:
    """The states along ``path`` from :func:`~model.initial` (first = initial state)."""
    from ._state import initial

    states = [initial(config)]
    for a in path:
        states.append(step(states[-1], a))
    return states


def events_of(path: Iterable[Action]) -> list[TraceEvent]:
    """The trace events impl would emit along ``path``, in order (tickets numbered)."""
    out: list[TraceEvent] = []
    ticket = 0
    for a in path:
        for kind, obj, detail in a.events:
            if kind == "lock_wait":
                obj, ticket = ticket, ticket + 1
            out.append(TraceEvent(kind, ThreadId(a.thread), CTX_ID, obj, detail))
    return out


_BH_STEPS = frozenset(
    {"schedule", "schedule.xchg", "schedule.write", "schedule_idle", "cancel", "delete"}
)


def describe(action: Action, config: ModelConfig | None = None) -> str:
    """``t1 schedule(bh0)``: the action with BH indices and walk positions named."""
    arg = ""
    if action.arg >= 0:
        arg = str(action.arg)
        if config is not None:
            b = -1
            if action.step in _BH_STEPS:
                b = action.arg
            elif action.step in ("poll.bh", "poll.bh_clear"):
                b = config.walk_order[action.arg]
            elif action.step == "poll":
                arg = "blocking" if action.arg else "nonblocking"
            if b >= 0:
                arg = "dummy" if b == config.dummy else "stop" if b == config.stop_bh else f"bh{b}"
    return f"t{action.thread} {action.step}({arg})"


def format_path(path: Sequence[Action], config: ModelConfig | None = None) -> str:
    """One numbered line per action with its role and trace events::

        3  client   t1 schedule(bh0)          bh_schedule_begin:1
    """
    lines = []
    for i, a in enumerate(path):
        role = config.roles[a.thread] if config is not None else ""
        evs = " ".join(f"{k}:{o}" if k != "lock_wait" else k for k, o, _ in a.events)
        lines.append(f"{i:4d}  {role:<8} {describe(a, config):<28}{evs}".rstrip())
    return "\n".join(lines)
