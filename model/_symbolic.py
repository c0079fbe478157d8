"""The model as z3 terms: a symbolic state and the transition relation, for one configuration.

Why it exists: the explicit search (:mod:`model._search`) enumerates the states of a small
configuration; a prover (:mod:`model._z3_prove`: bounded model checking and k-induction)
needs the same protocol as a formula ``T(s, s')`` over state variables.  This module is that
second representation of :mod:`model._actions`, written step by step beside it, and held to
it mechanically: ``tests/test_symbolic.py`` enumerates the explicit model's reachable states
of small configurations and checks, with z3, that ``T`` allows exactly the explicit
successors of each (no missing step, no extra step).

Design.

* **State as variables.**  A :class:`~model.State` is flattened into named z3 constants
  (:class:`Encoding` lists them): per thread its program counter (an index into
  :data:`LABELS`), argument, a fixed-capacity stack of continuation frames (top at slot 0,
  empty slots ``(0, -1)``), nesting depth, budget, poll flags, ready handlers (one bool per
  handler), per-BH run counts, the saved ``notify_me``, ``sched_bh`` and ``sched_lock``; per
  BH its seven flags; the lock's holder, depth, FIFO queue (one slot per thread, ``-1``
  padding), internal-mutex holder and ``barged``; ``notify_me``, ``notified``, ``event``,
  per-handler readiness, per-timer ``armed`` and ``stopping``.  Integers are
  :data:`WIDTH`-bit bit-vectors and everything else Booleans, so every query is
  finite-domain (bit-blasted to SAT).  Every explicit state has exactly one assignment
  (:meth:`Encoding.values`), and :meth:`Encoding.decode` inverts it.
* **One template per action.**  The relation is a disjunction of *templates*, one per
  explicit action identity: ``(thread, step label, argument)`` for every label of the
  step table and every argument the label takes, and ``(thread, client operation,
  argument)`` for a client at ``op``.  A step's choice variables (:class:`Selector`) say
  which thread moves and, for a client at ``op``, which operation it starts; the thread's
  program counter and argument select its step template.  So a BMC model decodes into
  :class:`~model.Action` values that replay on the explicit model (``format_path`` prints
  them).
* **Symbolic execution of each step.**  Each template is produced by running a symbolic
  twin of the explicit step (the functions below mirror ``_actions.py`` one for one): a
  branch on state is a guarded region (:meth:`_Exec.when`), a write inside it becomes
  ``If(guard, new, old)``, a ``return False`` adds its guard to the template's *blocked*
  conditions.  The result is an enabling guard and, per field the step may change, its new
  value as a term over the old state.
* **Mutants.**  ``ModelConfig.bugs`` is static, so each ``# BUG`` branch of ``_actions.py``
  is a Python ``if`` here too: every flag is expressible.
* **Bounds.**  The stack has :data:`STACK_CAP` slots; reachable stacks hold at most 5
  frames and one step pushes at most 4, so the invariant "slot :data:`STACK_FREE` is
  empty" (``stack-room`` of :mod:`model._z3_invariants`, proven with the properties; the
  thread-local fixpoint there also refuses to grow a stack past it) guarantees that no
  push ever falls off the end: on such states the encoding is exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import z3

from ._actions import Action
from ._state import (
    BHState,
    LockState,
    ModelConfig,
    ModelError,
    State,
    ThreadState,
    initial,
)

__all__ = [
    "LABELS",
    "STACK_CAP",
    "STACK_FREE",
    "Encoding",
    "SymBH",
    "SymLock",
    "SymState",
    "SymThread",
    "Selector",
    "Template",
    "sym_label",
]

#: Every control label: index 0 is an empty stack slot; then the client and end labels, the
#: step labels of ``_actions._STEPS`` and the frame-only labels ``ret`` interprets.
LABELS: tuple[str, ...] = (
    "",
    "op",
    "end",
    "acquire",
    "acquire.wait",
    "release",
    "schedule",
    "schedule.xchg",
    "schedule.write",
    "notify.read",
    "notify.event",
    "notify.notified",
    "notify.notified1",
    "notify.event1",
    "poll",
    "poll.scan",
    "poll.wait",
    "poll.dec",
    "poll.accept",
    "poll.clear",
    "poll.bh",
    "poll.bh_clear",
    "poll.handlers",
    "poll.timers",
    "poll.end",
    "gsource.prepare",
    "gsource.scan",
    "gsource.wait",
    "gsource.check",
    "gsource.accept",
    "gsource.clear",
    "sched.end",
    "kick.done",
    "io.loop",
    "gsource.loop",
)
_LX = {name: i for i, name in enumerate(LABELS)}
#: Labels that only occur in stack frames (``ret`` runs them), never as a program counter.
_FRAME_ONLY = frozenset({"sched.end", "kick.done", "io.loop", "gsource.loop"})
#: Labels a thread executes as a step (the keys of ``_actions._STEPS``).
STEP_LABELS: tuple[str, ...] = tuple(
    x for x in LABELS if x and x not in _FRAME_ONLY and x not in ("op", "end")
)

#: Stack slots per thread, and the slot that must stay empty (so at most
#: ``STACK_FREE`` frames are held and a step's at most 4 pushes always fit).
STACK_CAP = 9
STACK_FREE = 5

#: Bits of every integer field (two's complement: values -1 .. 127), and of the selector.
WIDTH = 8
SEL_WIDTH = 16

#: ``sched.end`` frames ``ret`` may run inline before a real continuation (reachable: 1).
_RET_UNROLL = 3

Term = Any  # z3.ExprRef (z3 ships no type stubs)
Value = int | bool


def _bv(v: int) -> Term:
    return z3.BitVecVal(v, WIDTH)


def L(name: str) -> int:
    """The index of a control label."""
    return _LX[name]


#: The public name of :func:`L`: a program counter's value in the encoding.
sym_label = L


# ------------------------------------------------------------------------------------------
# Views of a symbolic state (read by the properties' z3 forms and the invariants)
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SymThread:
    """One thread's variables (see :class:`~model.ThreadState`).  ``frames[0]`` is the top
    of the stack; an empty slot has label 0."""

    pc: Term
    arg: Term
    frames: tuple[tuple[Term, Term], ...]
    depth: Term
    budget: Term
    in_poll: Term
    blocking: Term
    timeout: Term
    ready: tuple[Term, ...]
    runs: tuple[Term, ...]
    saved: Term
    sched_bh: Term
    sched_lock: Term


@dataclass(frozen=True)
class SymBH:
    """One BH's variables (see :class:`~model.BHState`)."""

    scheduled: Term
    idle: Term
    deleted: Term
    alive: Term
    pending: Term
    bad_run: Term
    cb_done: Term


@dataclass(frozen=True)
class SymLock:
    """The lock's variables (see :class:`~model.LockState`); ``queue`` has one slot per
    thread, ``-1`` past its end."""

    holder: Term
    depth: Term
    queue: tuple[Term, ...]
    busy: Term
    barged: Term


_BH_FIELDS = ("scheduled", "idle", "deleted", "alive", "pending", "bad_run", "cb_done")


class SymState:
    """A symbolic state: one z3 term per field name (see :meth:`Encoding.names`)."""

    __slots__ = ("bhs", "config", "lock", "threads", "vals")

    def __init__(self, config: ModelConfig, vals: Mapping[str, Term]) -> None:
        self.config = config
        self.vals: dict[str, Term] = dict(vals)
        v = self.vals
        self.threads = tuple(
            SymThread(
                pc=v[f"t{t}.pc"],
                arg=v[f"t{t}.arg"],
                frames=tuple(
                    (v[f"t{t}.f{j}.l"], v[f"t{t}.f{j}.a"]) for j in range(STACK_CAP)
                ),
                depth=v[f"t{t}.depth"],
                budget=v[f"t{t}.budget"],
                in_poll=v[f"t{t}.in_poll"],
                blocking=v[f"t{t}.blocking"],
                timeout=v[f"t{t}.timeout"],
                ready=tuple(v[f"t{t}.ready{h}"] for h in range(config.handlers)),
                runs=tuple(v[f"t{t}.runs{b}"] for b in range(config.n_bhs)),
                saved=v[f"t{t}.saved"],
                sched_bh=v[f"t{t}.sched_bh"],
                sched_lock=v[f"t{t}.sched_lock"],
            )
            for t in range(config.threads)
        )
        self.bhs = tuple(
            SymBH(*(v[f"bh{b}.{f}"] for f in _BH_FIELDS)) for b in range(config.n_bhs)
        )
        self.lock = SymLock(
            holder=v["lock.holder"],
            depth=v["lock.depth"],
            queue=tuple(v[f"lock.q{k}"] for k in range(config.threads)),
            busy=v["lock.busy"],
            barged=v["lock.barged"],
        )

    def __getitem__(self, name: str) -> Term:
        return self.vals[name]

    @property
    def notify_me(self) -> Term:
        return self.vals["notify_me"]

    @property
    def notified(self) -> Term:
        return self.vals["notified"]

    @property
    def event(self) -> Term:
        return self.vals["event"]

    @property
    def ready(self) -> tuple[Term, ...]:
        return tuple(self.vals[f"ready{h}"] for h in range(self.config.handlers))

    @property
    def armed(self) -> tuple[Term, ...]:
        return tuple(self.vals[f"armed{k}"] for k in range(self.config.timers))

    @property
    def stopping(self) -> Term:
        return self.vals["stopping"]


# ------------------------------------------------------------------------------------------
# Symbolic execution of one step
# ------------------------------------------------------------------------------------------
class _Exec:
    """A step of thread ``t`` run on symbolic values: guarded writes, blocked conditions."""

    def __init__(self, enc: Encoding, vals: Mapping[str, Term], t: int) -> None:
        self.enc = enc
        self.cfg = enc.config
        self.t = t
        self.v: dict[str, Term] = dict(vals)
        self.cond: Term = None  # None: unconditional
        self.blocked: list[Term] = []

    # -- guarded regions -------------------------------------------------------------------
    @contextmanager
    def when(self, c: Term) -> Iterator[None]:
        old = self.cond
        self.cond = c if old is None else z3.And(old, c)
        try:
            yield
        finally:
            self.cond = old

    def block(self) -> None:
        """The explicit step returns False (not enabled) on the current path."""
        self.blocked.append(z3.BoolVal(True) if self.cond is None else self.cond)

    def bug(self, name: str) -> bool:
        return name in self.cfg.bugs

    # -- fields ----------------------------------------------------------------------------
    def get(self, name: str) -> Term:
        return self.v[name]

    def set(self, name: str, value: Term) -> None:
        if isinstance(value, bool):
            value = z3.BoolVal(value)
        elif isinstance(value, int):
            value = z3.BitVecVal(value, WIDTH)
        self.v[name] = value if self.cond is None else z3.If(self.cond, value, self.v[name])

    def me(self, f: str) -> Term:
        return self.v[f"t{self.t}.{f}"]

    def set_me(self, f: str, value: Term) -> None:
        self.set(f"t{self.t}.{f}", value)

    def bh(self, b: int, f: str) -> Term:
        return self.v[f"bh{b}.{f}"]

    def set_bh(self, b: int, **kw: Term) -> None:
        for f, value in kw.items():
            self.set(f"bh{b}.{f}", value)

    # -- control flow ----------------------------------------------------------------------
    def goto(self, label: str | Term, arg: int | Term = -1) -> None:
        self.set_me("pc", L(label) if isinstance(label, str) else label)
        self.set_me("arg", arg)

    def push(self, label: str, arg: int = -1) -> None:
        t = self.t
        for j in range(STACK_CAP - 1, 0, -1):
            self.set(f"t{t}.f{j}.l", self.v[f"t{t}.f{j - 1}.l"])
            self.set(f"t{t}.f{j}.a", self.v[f"t{t}.f{j - 1}.a"])
        self.set(f"t{t}.f0.l", L(label))
        self.set(f"t{t}.f0.a", arg)

    def pop(self) -> None:
        t = self.t
        for j in range(STACK_CAP - 1):
            self.set(f"t{t}.f{j}.l", self.v[f"t{t}.f{j + 1}.l"])
            self.set(f"t{t}.f{j}.a", self.v[f"t{t}.f{j + 1}.a"])
        self.set(f"t{t}.f{STACK_CAP - 1}.l", 0)
        self.set(f"t{t}.f{STACK_CAP - 1}.a", -1)

    def set_stack(self, frames: Sequence[tuple[str, int]]) -> None:
        """Replace the whole stack; ``frames`` bottom first, as ``ThreadState.stack``."""
        top = list(reversed(frames))
        for j in range(STACK_CAP):
            label, arg = top[j] if j < len(top) else ("", -1)
            self.set(f"t{self.t}.f{j}.l", L(label))
            self.set(f"t{self.t}.f{j}.a", arg)

    def ret(self, level: int = 0) -> None:
        """``_W.ret``: pop the top frame and continue there (``sched.end`` runs inline)."""
        t = self.t
        label, arg = self.v[f"t{t}.f0.l"], self.v[f"t{t}.f0.a"]
        self.pop()
        with self.when(label == 0):
            self.block()  # returned with an empty stack (a ModelError in the explicit model)
        with self.when(label == L("sched.end")):
            self.set_me("sched_bh", -1)
            if level < _RET_UNROLL:
                self.ret(level + 1)
            else:
                self.block()
        with self.when(label == L("kick.done")):
            self.set("lock.busy", -1)
            self.goto("acquire.wait")
        with self.when(label == L("io.loop")):
            stopping = self.v["stopping"]
            with self.when(stopping):
                self.goto("end")
            with self.when(z3.Not(stopping)):
                self.set_stack(_IO_FRAMES)
                self.goto("acquire")
        with self.when(label == L("gsource.loop")):
            self.goto("gsource.prepare")
        special = [L(x) for x in ("", "sched.end", "kick.done", "io.loop", "gsource.loop")]
        with self.when(z3.And([label != x for x in special])):
            self.goto(label, arg)

    def sched_end(self) -> None:
        self.set_me("sched_bh", -1)

    # -- lock helpers ----------------------------------------------------------------------
    def queue(self) -> list[Term]:
        return [self.v[f"lock.q{k}"] for k in range(self.cfg.threads)]

    def set_queue(self, q: Sequence[Term]) -> None:
        for k, x in enumerate(q):
            self.set(f"lock.q{k}", x)

    def handoff(self) -> None:
        """``_handoff``: the first waiter owns the lock (FIFO), else it is free."""
        q = self.queue()
        nonempty = q[0] != -1
        if not self.bug("lock-no-fifo"):
            with self.when(nonempty):
                self.set("lock.holder", q[0])
                self.set_queue([*q[1:], z3.BitVecVal(-1, WIDTH)])
                self.set("lock.depth", 0)
            with self.when(z3.Not(nonempty)):
                self.set("lock.holder", -1)
                self.set("lock.depth", 0)
        else:
            self.set("lock.holder", -1)
            self.set("lock.depth", 0)


_IO_FRAMES: tuple[tuple[str, int], ...] = (("io.loop", -1), ("release", -1), ("poll", 1))
_G_FRAMES: tuple[tuple[str, int], ...] = (("gsource.loop", -1), ("release", -1), ("poll", 0))


def _any(xs: Sequence[Term]) -> Term:
    return z3.Or(*xs) if xs else z3.BoolVal(False)


# ------------------------------------------------------------------------------------------
# The steps, one for one with model/_actions.py
# ------------------------------------------------------------------------------------------
def _acquire(x: _Exec) -> None:
    t = x.t
    holder, depth, busy = x.get("lock.holder"), x.get("lock.depth"), x.get("lock.busy")
    x.set_me("sched_lock", z3.Or(x.me("sched_lock"), x.me("sched_bh") >= 0))
    nest = z3.And(depth > 0, holder == t)
    with x.when(nest):
        x.set("lock.depth", depth + 1)
        x.set_me("depth", x.me("depth") + 1)
        x.ret()
    with x.when(z3.Not(nest)):
        with x.when(busy != -1):
            x.block()
        with x.when(busy == -1):
            q = x.queue()
            empty = q[0] == -1
            take = z3.And(holder == -1, z3.BoolVal(True) if x.bug("lock-no-fifo") else empty)
            with x.when(take):
                x.set("lock.holder", t)
                x.set("lock.depth", 1)
                x.set("lock.barged", z3.Or(x.get("lock.barged"), z3.Not(empty)))
                x.set_me("depth", x.me("depth") + 1)
                x.ret()
            with x.when(z3.Not(take)):
                # queue = (*queue, t): the first free slot
                x.set_queue([
                    z3.If(z3.And(q[k] == -1, z3.BoolVal(True) if k == 0 else q[k - 1] != -1),
                          z3.BitVecVal(t, WIDTH), q[k])
                    for k in range(len(q))
                ])
                if x.bug("no-contention-callback"):
                    x.goto("acquire.wait")
                else:
                    x.set("lock.busy", t)
                    x.push("kick.done")
                    if x.bug("nonsticky-kick"):
                        x.goto("notify.read")
                    else:
                        _schedule_begin(x, x.cfg.dummy, kick=True)


def _acquire_wait(x: _Exec) -> None:
    t = x.t
    holder, depth, busy = x.get("lock.holder"), x.get("lock.depth"), x.get("lock.busy")
    with x.when(busy != -1):
        x.block()
    with x.when(busy == -1):
        if x.bug("lock-no-fifo"):
            with x.when(holder != -1):
                x.block()
            q = x.queue()
            x.set("lock.barged", z3.Or(x.get("lock.barged"), q[0] != t))
            # queue without t (entries are distinct)
            seen = [z3.Or(*(q[j] == t for j in range(k + 1))) for k in range(len(q))]
            nxt = [*q[1:], z3.BitVecVal(-1, WIDTH)]
            x.set_queue([z3.If(seen[k], nxt[k], q[k]) for k in range(len(q))])
        else:
            with x.when(z3.Or(holder != t, depth != 0)):
                x.block()
        x.set("lock.holder", t)
        x.set("lock.depth", 1)
        x.set_me("depth", x.me("depth") + 1)
        x.ret()


def _release(x: _Exec) -> None:
    t = x.t
    holder, depth, busy = x.get("lock.holder"), x.get("lock.depth"), x.get("lock.busy")
    mine = x.me("depth")
    foreign = z3.Or(holder != t, depth == 0)
    with x.when(foreign):
        x.set_me("depth", z3.If(mine > 1, mine - 1, _bv(0)))
        x.ret()
    with x.when(z3.Not(foreign)):
        with x.when(depth > 1):
            x.set("lock.depth", depth - 1)
            x.set_me("depth", mine - 1)
            x.ret()
        with x.when(depth <= 1):
            with x.when(busy != -1):
                x.block()
            with x.when(busy == -1):
                x.handoff()
                x.set_me("depth", mine - 1)
                x.ret()


def _bad_release(x: _Exec) -> None:
    if not x.bug("release-by-non-owner-accepted"):
        return
    depth, busy = x.get("lock.depth"), x.get("lock.busy")
    with x.when(busy != -1):
        x.block()
    with x.when(busy == -1):
        with x.when(depth > 1):
            x.set("lock.depth", depth - 1)
        with x.when(depth <= 1):
            x.handoff()


def _schedule_begin(x: _Exec, b: int, *, kick: bool = False) -> None:
    x.set_me("sched_bh", b)
    x.set_bh(b, idle=False)
    if x.bug("schedule-takes-lock") and not kick:
        x.push("release")
        x.push("schedule.xchg", b)
        x.goto("acquire")
    else:
        x.goto("schedule.xchg", b)


def _schedule(x: _Exec, b: int) -> None:
    _schedule_begin(x, b)


def _schedule_xchg(x: _Exec, b: int) -> None:
    old = x.bh(b, "scheduled")
    if x.bug("bh-nonatomic-test-and-set"):
        with x.when(old):
            x.set_bh(b, pending=True)
            x.sched_end()
            x.ret()
        with x.when(z3.Not(old)):
            x.goto("schedule.write", b)
        return
    x.set_bh(b, scheduled=True, pending=True)
    with x.when(old):
        x.sched_end()
        x.ret()
    with x.when(z3.Not(old)):
        x.push("sched.end", b)
        x.goto("notify.read")


def _schedule_write(x: _Exec, b: int) -> None:
    x.set_bh(b, scheduled=True, pending=True)
    x.push("sched.end", b)
    x.goto("notify.read")


def _schedule_idle(x: _Exec, b: int) -> None:
    with x.when(z3.Not(x.bh(b, "scheduled"))):
        x.set_bh(b, idle=True, scheduled=True)
    x.set_bh(b, pending=True)


def _delete(x: _Exec, b: int) -> None:
    keep = z3.And(x.bh(b, "scheduled"), z3.BoolVal(x.bug("deleted-bh-runs")))
    x.set_bh(b, scheduled=keep, deleted=True, pending=False)


def _schedule_atomic(x: _Exec, b: int) -> None:
    old = x.bh(b, "scheduled")
    x.set_bh(b, idle=False, scheduled=True, pending=True)
    with x.when(z3.And(z3.Not(old), x.get("notify_me") != 0)):
        if x.bug("notified-bug2"):
            with x.when(z3.Not(x.get("notified"))):
                x.set("event", True)
        else:
            x.set("event", True)
        x.set("notified", True)


def _notify_read(x: _Exec) -> None:
    with x.when(x.get("notify_me") == 0):
        x.ret()
    with x.when(x.get("notify_me") != 0):
        x.goto("notify.notified1" if x.bug("notified-bug1") else "notify.event")


def _notify_event(x: _Exec) -> None:
    if x.bug("notified-bug2"):
        with x.when(z3.Not(x.get("notified"))):
            x.set("event", True)
    else:
        x.set("event", True)
    x.goto("notify.notified")


def _notify_notified(x: _Exec) -> None:
    x.set("notified", True)
    x.ret()


def _notify_notified1(x: _Exec) -> None:
    x.set("notified", True)
    x.goto("notify.event1")


def _notify_event1(x: _Exec) -> None:
    x.set("event", True)
    x.ret()


def _timeout(x: _Exec) -> Term:
    """``aio_compute_timeout``: 0 (a non-idle BH or a due timer), 1 (idle BHs only), 2."""
    n = x.cfg.n_bhs
    live = [z3.And(x.bh(b, "alive"), x.bh(b, "scheduled")) for b in range(n)]
    eager = _any([z3.And(live[b], z3.Not(x.bh(b, "idle"))) for b in range(n)])
    armed = _any([x.get(f"armed{k}") for k in range(x.cfg.timers)])
    return z3.If(z3.Or(eager, armed), _bv(0), z3.If(_any(live), _bv(1), _bv(2)))


def _can_wake(x: _Exec) -> Term:
    ready = [x.get(f"ready{h}") for h in range(x.cfg.handlers)]
    return z3.Or(x.me("timeout") != 2, x.get("event"), *ready)


def _set_ready_now(x: _Exec) -> None:
    for h in range(x.cfg.handlers):
        x.set_me(f"ready{h}", x.get(f"ready{h}"))


def _poll(x: _Exec, blocking: bool) -> None:
    x.set_me("in_poll", True)
    x.set_me("blocking", blocking)
    for b in range(x.cfg.n_bhs):
        x.set_me(f"runs{b}", 0)
    x.set_me("timeout", 0)
    if blocking:
        if x.bug("dispatching-flag-shared"):
            x.set_me("saved", x.get("notify_me"))
            x.set("notify_me", 1)
        else:
            x.set("notify_me", x.get("notify_me") + 2)
        x.goto("poll.scan")
    else:
        _set_ready_now(x)
        _after_wait(x)


def _poll_scan(x: _Exec) -> None:
    x.set_me("timeout", _timeout(x))
    x.goto("poll.wait")


def _poll_wait(x: _Exec) -> None:
    can = _can_wake(x)
    with x.when(z3.Not(can)):
        x.block()
    _set_ready_now(x)
    x.goto("poll.dec")


def _poll_dec(x: _Exec) -> None:
    if x.bug("dispatching-flag-shared"):
        x.set("notify_me", x.me("saved"))
    else:
        x.set("notify_me", x.get("notify_me") - 2)
    _after_wait(x)


def _after_wait(x: _Exec) -> None:
    if x.bug("notify-clear-late"):
        _walk_start(x)
    else:
        x.goto("poll.accept")


def _poll_accept(x: _Exec) -> None:
    old = x.get("notified")
    x.set("notified", False)
    with x.when(old):
        x.goto("poll.clear")
    with x.when(z3.Not(old)):
        _after_accept(x)


def _poll_clear(x: _Exec) -> None:
    x.set("event", False)
    _after_accept(x)


def _after_accept(x: _Exec) -> None:
    if x.bug("notify-clear-late"):
        x.goto("poll.end")
    else:
        _walk_start(x)


def _walk_start(x: _Exec) -> None:
    stop = x.cfg.stop_bh
    if stop >= 0:
        x.goto("poll.bh", z3.If(x.bh(stop, "alive"), _bv(0), _bv(1)))
    else:
        x.goto("poll.bh", 0)


def _walk_next(x: _Exec, pos: int) -> None:
    cfg = x.cfg
    if pos + 1 < len(cfg.walk_order):
        x.goto("poll.bh", pos + 1)
    elif cfg.handlers:
        x.goto("poll.handlers")
    elif cfg.timers:
        x.goto("poll.timers")
    else:
        _after_dispatch(x)


def _after_dispatch(x: _Exec) -> None:
    x.goto("poll.accept" if x.bug("notify-clear-late") else "poll.end")


def _poll_bh(x: _Exec, pos: int) -> None:
    cfg = x.cfg
    b = cfg.walk_order[pos]
    due = z3.And(x.bh(b, "alive"), x.bh(b, "scheduled"))
    with x.when(z3.Not(due)):
        _walk_next(x, pos)
    with x.when(due):
        if b < cfg.bhs and cfg.bh_callbacks[b] == "delete":
            others = [x.get(f"t{u}.sched_bh") == b for u in range(cfg.threads) if u != x.t]
            with x.when(z3.And(z3.Not(x.bh(b, "cb_done")), _any(others))):
                x.block()
        if x.bug("bh-nonatomic-test-and-set"):
            _run(x, b)
            x.goto("poll.bh_clear", pos)
            return
        x.set_bh(b, scheduled=False)
        _run(x, b)
        if x.bug("rerun-same-iteration"):
            again = x.bh(b, "scheduled")
            with x.when(again):
                x.goto("poll.bh", pos)
            with x.when(z3.Not(again)):
                _walk_next(x, pos)
        else:
            _walk_next(x, pos)


def _poll_bh_clear(x: _Exec, pos: int) -> None:
    x.set_bh(x.cfg.walk_order[pos], scheduled=False)
    _walk_next(x, pos)


def _run(x: _Exec, b: int) -> None:
    cfg = x.cfg
    deleted = x.bh(b, "deleted") if b != cfg.stop_bh else z3.BoolVal(False)
    bad = z3.Or(x.bh(b, "bad_run"), z3.Not(x.bh(b, "pending")), deleted)
    runs = x.me(f"runs{b}")
    x.set_me(f"runs{b}", z3.If(runs >= 1, _bv(2), runs + 1))
    cb_done = x.bh(b, "cb_done")
    x.set_bh(b, pending=False, idle=False, bad_run=bad)
    if b == cfg.stop_bh:
        x.set("stopping", True)
    elif b < cfg.bhs and cfg.bh_callbacks[b] != "noop":
        with x.when(z3.Not(cb_done)):
            x.set_bh(b, cb_done=True)
            cb = cfg.bh_callbacks[b]
            if cb == "resched":
                _schedule_atomic(x, b)
            elif cb == "sched-other":
                other = (b + 1) % cfg.bhs
                with x.when(z3.Not(x.bh(other, "deleted"))):
                    _schedule_atomic(x, other)
            elif cb == "delete":
                _delete(x, b)


def _poll_handlers(x: _Exec) -> None:
    for h in range(x.cfg.handlers):
        with x.when(x.me(f"ready{h}")):
            x.set(f"ready{h}", False)
        x.set_me(f"ready{h}", False)
    if x.cfg.timers:
        x.goto("poll.timers")
    else:
        _after_dispatch(x)


def _poll_timers(x: _Exec) -> None:
    for k in range(x.cfg.timers):
        x.set(f"armed{k}", False)
    _after_dispatch(x)


def _poll_end(x: _Exec) -> None:
    x.set_me("in_poll", False)
    x.ret()


def _g_prepare(x: _Exec) -> None:
    nm = x.get("notify_me")
    if x.bug("dispatching-flag-shared"):
        x.set_me("saved", nm)
        x.set("notify_me", 1)
    else:
        x.set("notify_me", nm | 1)
    x.goto("gsource.scan")


def _g_scan(x: _Exec) -> None:
    x.set_me("timeout", _timeout(x))
    x.goto("gsource.wait")


def _g_wait(x: _Exec) -> None:
    with x.when(z3.Not(_can_wake(x))):
        x.block()
    x.goto("gsource.check")


def _g_check(x: _Exec) -> None:
    nm = x.get("notify_me")
    if x.bug("dispatching-flag-shared"):
        x.set("notify_me", x.me("saved"))
    else:
        x.set("notify_me", nm & ~1)
    x.goto("gsource.accept")


def _g_accept(x: _Exec) -> None:
    old = x.get("notified")
    x.set("notified", False)
    with x.when(old):
        x.goto("gsource.clear")
    with x.when(z3.Not(old)):
        _g_dispatch(x)


def _g_clear(x: _Exec) -> None:
    x.set("event", False)
    _g_dispatch(x)


def _g_dispatch(x: _Exec) -> None:
    cfg = x.cfg
    due = _any(
        [z3.And(x.bh(b, "alive"), x.bh(b, "scheduled")) for b in range(cfg.n_bhs)]
        + [x.get(f"ready{h}") for h in range(cfg.handlers)]
        + [x.get(f"armed{k}") for k in range(cfg.timers)]
    )
    with x.when(due):
        x.set_stack(_G_FRAMES)
        x.goto("acquire")
    with x.when(z3.Not(due)):
        x.goto("gsource.prepare")


#: label -> (symbolic step, whether it takes the thread's argument).
_STEPS: dict[str, Callable[..., None]] = {
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


def _arg_domain(label: str, cfg: ModelConfig) -> tuple[int, ...]:
    """The arguments a thread at ``label`` may carry (each gets its own template)."""
    if label == "poll":
        return (0, 1)
    if label in ("schedule", "schedule.xchg", "schedule.write"):
        return tuple(range(cfg.n_bhs))
    if label in ("poll.bh", "poll.bh_clear"):
        return tuple(range(len(cfg.walk_order)))
    return (-1,)


def _step_body(label: str, arg: int) -> Callable[[_Exec], None]:
    fn = _STEPS[label]
    if label == "poll":
        return lambda x: fn(x, arg == 1)
    if label in ("schedule", "schedule.xchg", "schedule.write", "poll.bh", "poll.bh_clear"):
        return lambda x: fn(x, arg)
    return fn


# ------------------------------------------------------------------------------------------
# Client operations (``_client_choices``): guard and first step of each
# ------------------------------------------------------------------------------------------
Offered = Callable[[SymState], Term]
Body = Callable[[_Exec], None]


def _client_templates(cfg: ModelConfig, t: int) -> list[tuple[str, int, Offered, Body]]:
    """Every operation client ``t`` may ever choose (``_client_choices``): (name, arg, when
    it is offered, its first step)."""
    ops = cfg.ops_of(t)
    out: list[tuple[str, int, Offered, Body]] = []

    def budget_ok(s: SymState) -> Term:
        return s.threads[t].budget > 0

    def held(s: SymState) -> Term:
        return s.threads[t].depth > 0

    def unheld(s: SymState) -> Term:
        return s.threads[t].depth == 0

    def can_acquire(s: SymState) -> Term:
        return z3.And(budget_ok(s), s.threads[t].depth < cfg.max_depth)

    def call(first: Body) -> Body:
        def run(x: _Exec) -> None:
            x.push("op")
            first(x)

        return run

    def finish(x: _Exec) -> None:
        x.goto("end")

    out.append(("finish", -1, unheld, finish))
    if "release" in ops:
        out.append(("release", -1, held, call(_release)))
    if "acquire" in ops:
        out.append(("acquire", -1, can_acquire, call(_acquire)))
    for b in range(cfg.bhs):

        def alive(s: SymState, b: int = b) -> Term:
            return z3.And(budget_ok(s), z3.Not(s.bhs[b].deleted))

        def alive_held(s: SymState, b: int = b) -> Term:
            return z3.And(alive(s, b), held(s))

        def deletable(s: SymState, b: int = b) -> Term:
            return z3.And(alive(s, b), held(s), *(th.sched_bh != b for th in s.threads))

        def schedule(x: _Exec, b: int = b) -> None:
            _schedule_begin(x, b)

        def schedule_idle(x: _Exec, b: int = b) -> None:
            _schedule_idle(x, b)

        def cancel(x: _Exec, b: int = b) -> None:
            x.set_bh(b, scheduled=False, pending=False)

        def delete(x: _Exec, b: int = b) -> None:
            _delete(x, b)

        if "schedule" in ops:
            out.append(("schedule", b, alive, call(schedule)))
        if "schedule_idle" in ops:
            out.append(("schedule_idle", b, alive, schedule_idle))
        if "cancel" in ops:
            out.append(("cancel", b, alive_held, cancel))
        if "delete" in ops:
            out.append(("delete", b, deletable, delete))
    if "poll" in ops:

        def may_poll(s: SymState) -> Term:
            # BUG non-home-thread-poll: a thread that does not hold the context polls.
            if "non-home-thread-poll" in cfg.bugs:
                return budget_ok(s)
            return z3.And(budget_ok(s), held(s))

        def poll(x: _Exec) -> None:
            _poll(x, False)

        out.append(("poll", -1, may_poll, call(poll)))
    for h in range(cfg.handlers if "notifier_set" in ops else 0):

        def unset(s: SymState, h: int = h) -> Term:
            return z3.And(budget_ok(s), z3.Not(s.ready[h]))

        def notifier_set(x: _Exec, h: int = h) -> None:
            x.set(f"ready{h}", True)

        out.append(("notifier_set", h, unset, notifier_set))
    for k in range(cfg.timers if "timer_mod" in ops else 0):

        def timer_mod(x: _Exec, k: int = k) -> None:
            _timer_mod(x, k)

        out.append(("timer_mod", k, budget_ok, call(timer_mod)))
    for k in range(cfg.timers if "timer_del" in ops else 0):

        def armed(s: SymState, k: int = k) -> Term:
            return z3.And(budget_ok(s), s.armed[k])

        def timer_del(x: _Exec, k: int = k) -> None:
            x.set(f"armed{k}", False)

        out.append(("timer_del", k, armed, timer_del))
    if "bad_release" in ops:

        def foreign(s: SymState) -> Term:
            return z3.And(budget_ok(s), s.threads[t].depth == 0, s.lock.depth > 0,
                          s.lock.holder != t)

        out.append(("bad_release", -1, foreign, _bad_release))
    if "stop" in ops and cfg.stop_bh >= 0:

        def not_stopping(s: SymState) -> Term:
            return z3.And(budget_ok(s), z3.Not(s.bhs[cfg.stop_bh].alive))

        out.append(("stop", -1, not_stopping, call(_stop)))
    return out


def _timer_mod(x: _Exec, k: int) -> None:
    head = z3.Not(_any([x.get(f"armed{i}") for i in range(x.cfg.timers) if i != k]))
    x.set(f"armed{k}", True)
    with x.when(head):
        x.goto("notify.read")
    with x.when(z3.Not(head)):
        x.ret()


def _stop(x: _Exec) -> None:
    b = x.cfg.stop_bh
    x.set_bh(b, alive=True, scheduled=True, deleted=True, pending=True)
    x.set_me("sched_bh", b)
    x.push("sched.end", b)
    x.goto("notify.read")


# ------------------------------------------------------------------------------------------
# The encoding of one configuration
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Selector:
    """The choice variables of one step: ``who[t]`` (thread ``t`` moves) and, per client
    template, ``choice[index]`` (the client at ``op`` starts that operation)."""

    who: tuple[Term, ...]
    choice: Mapping[int, Term]

    def terms(self) -> tuple[Term, ...]:
        return (*self.who, *self.choice.values())


@dataclass(frozen=True)
class Template:
    """One action identity and its symbolic step.

    ``guard`` (over the template's base state) enables it; ``updates`` maps each field the
    step may change to its new value; every other field keeps its value.
    """

    index: int
    thread: int
    step: str  # a step label, or a client operation name when ``client`` is true
    arg: int
    client: bool
    at: Term  # the thread is at this step (pc and arg), or a client at ``op`` may choose it
    guard: Term  # ``at`` and the step is enabled (no ``return False`` taken)
    updates: Mapping[str, Term]

    def action(self, state_arg: int) -> Action:
        """The explicit action (a step's action carries the thread's argument)."""
        return Action(self.thread, self.step, self.arg if self.client else state_arg)


class Encoding:
    """The symbolic model of ``config``: variables, templates, relation, (de)coding.

    ``base`` is the symbolic state the templates are written over; :meth:`relation` renames
    it onto any pair of states.
    """

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self._sorts = self._layout()
        self.base = self.state("s")
        self.templates: tuple[Template, ...] = tuple(self._templates())

    # -- layout ----------------------------------------------------------------------------
    def _layout(self) -> dict[str, str]:
        cfg = self.config
        sorts: dict[str, str] = {}
        for t in range(cfg.threads):
            sorts[f"t{t}.pc"] = "int"
            sorts[f"t{t}.arg"] = "int"
            for j in range(STACK_CAP):
                sorts[f"t{t}.f{j}.l"] = "int"
                sorts[f"t{t}.f{j}.a"] = "int"
            for f in ("depth", "budget"):
                sorts[f"t{t}.{f}"] = "int"
            for f in ("in_poll", "blocking"):
                sorts[f"t{t}.{f}"] = "bool"
            sorts[f"t{t}.timeout"] = "int"
            for h in range(cfg.handlers):
                sorts[f"t{t}.ready{h}"] = "bool"
            for b in range(cfg.n_bhs):
                sorts[f"t{t}.runs{b}"] = "int"
            sorts[f"t{t}.saved"] = "int"
            sorts[f"t{t}.sched_bh"] = "int"
            sorts[f"t{t}.sched_lock"] = "bool"
        for b in range(cfg.n_bhs):
            for f in _BH_FIELDS:
                sorts[f"bh{b}.{f}"] = "bool"
        for f in ("holder", "depth"):
            sorts[f"lock.{f}"] = "int"
        for k in range(cfg.threads):
            sorts[f"lock.q{k}"] = "int"
        sorts["lock.busy"] = "int"
        sorts["lock.barged"] = "bool"
        sorts["notify_me"] = "int"
        sorts["notified"] = "bool"
        sorts["event"] = "bool"
        for h in range(cfg.handlers):
            sorts[f"ready{h}"] = "bool"
        for k in range(cfg.timers):
            sorts[f"armed{k}"] = "bool"
        sorts["stopping"] = "bool"
        return sorts

    def names(self) -> tuple[str, ...]:
        """The state's field names, in a fixed order."""
        return tuple(self._sorts)

    def state(self, prefix: str) -> SymState:
        """A fresh symbolic state: one z3 constant ``<prefix>.<field>`` per field."""
        vals = {
            n: z3.BitVec(f"{prefix}.{n}", WIDTH) if sort == "int" else z3.Bool(f"{prefix}.{n}")
            for n, sort in self._sorts.items()
        }
        return SymState(self.config, vals)

    def selector(self, prefix: str) -> Selector:
        """Fresh choice variables of one step: which thread moves, and which operation a
        client at ``op`` starts (a step template is determined by the thread's ``pc``)."""
        cfg = self.config
        who = tuple(z3.Bool(f"{prefix}.who{t}") for t in range(cfg.threads))
        choice = {
            tp.index: z3.Bool(f"{prefix}.op{tp.index}") for tp in self.templates if tp.client
        }
        return Selector(who, choice)

    def fire(self, tp: Template, sel: Selector) -> Term:
        """Template ``tp`` fires under ``sel`` (a term over :attr:`base` and ``sel``)."""
        if tp.client:
            return z3.And(sel.who[tp.thread], tp.at, sel.choice[tp.index])
        return z3.And(sel.who[tp.thread], tp.at)

    def fired(self, model: Any, s: SymState, sel: Selector) -> Template:
        """The template a model of :meth:`relation` fired from ``s``: the moving thread's
        operation choice at ``op``, else its step at its ``pc`` and ``arg``."""

        def ev(term: Term) -> Term:
            return model.eval(term, model_completion=True)

        for t, who in enumerate(sel.who):
            if not z3.is_true(ev(who)):
                continue
            th = s.threads[t]
            pc, arg = ev(th.pc).as_signed_long(), ev(th.arg).as_signed_long()
            for tp in self.templates:
                if tp.thread != t:
                    continue
                if tp.client and pc == L("op") and z3.is_true(ev(sel.choice[tp.index])):
                    return tp
                if not tp.client and pc == L(tp.step) and arg == tp.arg:
                    return tp
        raise ModelError("no template fired in this model")

    # -- templates -------------------------------------------------------------------------
    def _run(self, t: int, body: Callable[[_Exec], None]) -> tuple[Term, dict[str, Term]]:
        x = _Exec(self, self.base.vals, t)
        body(x)
        guard = z3.Not(z3.Or(*x.blocked)) if x.blocked else z3.BoolVal(True)
        updates = {n: v for n, v in x.v.items() if not v.eq(self.base.vals[n])}
        return guard, updates

    def _templates(self) -> Iterator[Template]:
        cfg, s = self.config, self.base
        i = 0
        for t, role in enumerate(cfg.roles):
            me = s.threads[t]
            for label in STEP_LABELS:
                for arg in _arg_domain(label, cfg):
                    guard, upd = self._run(t, _step_body(label, arg))
                    at = z3.And(me.pc == L(label), me.arg == arg)
                    yield Template(i, t, label, arg, False, at, z3.simplify(z3.And(at, guard)),
                                   upd)
                    i += 1
            if role != "client":
                continue
            for name, arg, offered, first in _client_templates(cfg, t):

                def body(x: _Exec, first: Callable[[_Exec], None] = first,
                         name: str = name) -> None:
                    if name not in ("finish", "release"):
                        x.set_me("budget", x.me("budget") - 1)
                    first(x)

                guard, upd = self._run(t, body)
                at = z3.And(me.pc == L("op"), offered(s))
                yield Template(i, t, name, arg, True, at, z3.simplify(z3.And(at, guard)), upd)
                i += 1

    # -- the relation ----------------------------------------------------------------------
    def _rename(self, src: SymState) -> list[tuple[Term, Term]]:
        return [(self.base.vals[n], src.vals[n]) for n in self._sorts]

    def relation(self, s: SymState, s2: SymState, sel: Selector) -> Term:
        """``T(s, s2)`` under the choices ``sel``: exactly one thread moves, by the one
        template its control state (and, at ``op``, its operation choice) selects; that
        template is enabled in ``s`` and ``s2`` is its successor."""
        base = self.base.vals
        fires = [self.fire(tp, sel) for tp in self.templates]
        parts = [z3.Or(*sel.who), z3.AtMost(*sel.who, 1), z3.Or(*fires)]
        for t in range(self.config.threads):
            mine = [sel.choice[tp.index] for tp in self.templates
                    if tp.client and tp.thread == t]
            if mine:
                me = self.base.threads[t]
                parts.append(z3.AtMost(*mine, 1))
                parts.append(z3.Implies(z3.And(sel.who[t], me.pc == L("op")), z3.Or(*mine)))
        parts += [z3.Implies(f, tp.guard) for f, tp in zip(fires, self.templates, strict=True)]
        for n in self._sorts:
            value = base[n]
            for f, tp in zip(reversed(fires), reversed(self.templates), strict=True):
                if n in tp.updates:
                    value = z3.If(f, tp.updates[n], value)
            parts.append(s2.vals[n] == value)
        body = z3.And(*parts)
        if s is self.base:
            return body
        return z3.substitute(body, *self._rename(s))

    def enabled(self, s: SymState, thread: int | None = None) -> Term:
        """Some action (of ``thread``, when given) is enabled in ``s``."""
        guards = [tp.guard for tp in self.templates if thread is None or tp.thread == thread]
        body = z3.Or(*guards) if guards else z3.BoolVal(False)
        return body if s is self.base else z3.substitute(body, *self._rename(s))

    def over(self, s: SymState, term: Term) -> Term:
        """``term`` (written over :attr:`base`) renamed onto ``s``."""
        return term if s is self.base else z3.substitute(term, *self._rename(s))

    # -- concrete states -------------------------------------------------------------------
    def values(self, state: State) -> dict[str, Value]:
        """The one assignment of the variables that encodes ``state``."""
        cfg = self.config
        out: dict[str, Value] = {}
        for t, th in enumerate(state.threads):
            out[f"t{t}.pc"] = L(th.pc)
            out[f"t{t}.arg"] = th.arg
            top = list(reversed(th.stack))
            if len(top) > STACK_CAP:
                raise ModelError(f"a stack of {len(top)} frames exceeds {STACK_CAP}")
            for j in range(STACK_CAP):
                label, arg = top[j] if j < len(top) else ("", -1)
                out[f"t{t}.f{j}.l"] = L(label)
                out[f"t{t}.f{j}.a"] = arg
            out[f"t{t}.depth"] = th.depth
            out[f"t{t}.budget"] = th.budget
            out[f"t{t}.in_poll"] = th.in_poll
            out[f"t{t}.blocking"] = th.blocking
            out[f"t{t}.timeout"] = th.timeout
            for h in range(cfg.handlers):
                out[f"t{t}.ready{h}"] = h in th.ready
            for b in range(cfg.n_bhs):
                out[f"t{t}.runs{b}"] = th.runs[b]
            out[f"t{t}.saved"] = th.saved
            out[f"t{t}.sched_bh"] = th.sched_bh
            out[f"t{t}.sched_lock"] = th.sched_lock
        for b, bh in enumerate(state.bhs):
            for f in _BH_FIELDS:
                out[f"bh{b}.{f}"] = getattr(bh, f)
        lock = state.lock
        out["lock.holder"] = lock.holder
        out["lock.depth"] = lock.depth
        for k in range(cfg.threads):
            out[f"lock.q{k}"] = lock.queue[k] if k < len(lock.queue) else -1
        out["lock.busy"] = lock.busy
        out["lock.barged"] = lock.barged
        out["notify_me"] = state.notify_me
        out["notified"] = state.notified
        out["event"] = state.event
        for h in range(cfg.handlers):
            out[f"ready{h}"] = state.ready[h]
        for k in range(cfg.timers):
            out[f"armed{k}"] = state.armed[k]
        out["stopping"] = state.stopping
        return out

    def is_state(self, s: SymState, state: State) -> Term:
        """``s`` equals the concrete ``state``."""
        vals = self.values(state)
        return z3.And(*(s.vals[n] == vals[n] for n in self._sorts))

    def initial(self, s: SymState) -> Term:
        """``s`` is the configuration's initial state."""
        return self.is_state(s, initial(self.config))

    def read(self, model: Any, s: SymState) -> dict[str, Value]:
        """The values ``model`` gives the variables of ``s``."""
        out: dict[str, Value] = {}
        for n, sort in self._sorts.items():
            v = model.eval(s.vals[n], model_completion=True)
            out[n] = bool(z3.is_true(v)) if sort == "bool" else int(v.as_signed_long())
        return out

    def decode(self, vals: Mapping[str, Value]) -> State:
        """The explicit state an assignment encodes (the inverse of :meth:`values`)."""
        cfg = self.config

        def i(n: str) -> int:
            return int(vals[n])

        def bo(n: str) -> bool:
            return bool(vals[n])

        threads = []
        for t in range(cfg.threads):
            frames = []
            for j in range(STACK_CAP):
                label = i(f"t{t}.f{j}.l")
                if label == 0:
                    break
                frames.append((LABELS[label], i(f"t{t}.f{j}.a")))
            threads.append(ThreadState(
                LABELS[i(f"t{t}.pc")],
                i(f"t{t}.arg"),
                tuple(reversed(frames)),
                i(f"t{t}.depth"),
                i(f"t{t}.budget"),
                bo(f"t{t}.in_poll"),
                bo(f"t{t}.blocking"),
                i(f"t{t}.timeout"),
                tuple(h for h in range(cfg.handlers) if bo(f"t{t}.ready{h}")),
                tuple(i(f"t{t}.runs{b}") for b in range(cfg.n_bhs)),
                i(f"t{t}.saved"),
                i(f"t{t}.sched_bh"),
                bo(f"t{t}.sched_lock"),
            ))
        bhs = tuple(
            BHState(*(bo(f"bh{b}.{f}") for f in _BH_FIELDS)) for b in range(cfg.n_bhs)
        )
        queue = tuple(
            q for q in (i(f"lock.q{k}") for k in range(cfg.threads)) if q != -1
        )
        lock = LockState(i("lock.holder"), i("lock.depth"), queue, i("lock.busy"),
                         bo("lock.barged"))
        return State(
            cfg, tuple(threads), bhs, lock, i("notify_me"), bo("notified"), bo("event"),
            tuple(bo(f"ready{h}") for h in range(cfg.handlers)),
            tuple(bo(f"armed{k}") for k in range(cfg.timers)),
            bo("stopping"),
        )
