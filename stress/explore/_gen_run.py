"""One run of a generated program: setup, scripts, main loop, teardown, oracles.

A program (:mod:`~aioctx_verify.stress.explore._gen_ops`) runs as thread 0: setup (the
main context, whose home is thread 0: the platform's main-loop context when thread 0 is
the platform's main thread; the transient context with a reference for each of its
users; IOThreads, BHs, timers, notifiers with their handlers, optionally a dataplane
device with its VM state), the other scripts start, thread 0 runs its own script and then
the main loop (``aio_poll(main, true)`` until every script announced its end with a
one-shot BH), joins the scripts, restores the clocks, the VM and the dataplane, waits
until every owed callback was served (the IOThreads' work on a condition every callback
signals, with two flushing one-shots per IOThread for their BHs; the main context's by
polling it), checks that idle IOThreads sleep, drops the transient context's references
its users did not drop (their drop was shrunk away), checks the references, removes the
handlers, frees timers and notifiers, joins the IOThreads (each join drops its context's
last reference), checks the oracles and drops the main context's reference.

Every operation and callback appends to one log (on the controlled platform only one
thread runs between two platform calls; on real threads a lock orders the appends), so
the oracles are statements about positions in it.  Each is exact for a well-formed
program (a violation is an impl bug):

* P2 *not-lost*: a BH whose latest finished schedule began after its last
  ``qemu_bh_cancel`` had returned (each cancel is followed by ``smp_mb``) and that is not
  deleted runs after that schedule began; *no-spurious-run*: a BH runs at most once per
  schedule, a timer fires at most once per ``timer_mod``; *deleted-never-runs* (a BH is
  deleted with its context held, so no walk is under way); each one-shot runs exactly
  once;
* P3 every callback runs in its context's own thread (its IOThread, thread 0 for the main
  context) or in a thread that holds the context, and never while another thread holds
  it (holders are marked between the return of the acquire and the call of the
  release); P1 two threads never hold one context at once;
* LIVE a timer armed at the end fires, a set notifier whose handler is registered at the
  end is handled, every thread-pool request completes exactly once (``-ECANCELED`` only
  when cancelled, and then its function never ran), every dataplane request completes
  exactly once, an idle IOThread sleeps, the program ends with every IOThread joined, a
  kick (``aio_notify`` after an idle schedule of a new BH) runs that BH.  On the controlled
  platform the waits are unbounded, so a lost wake-up is the scheduler's ``lost_wakeup``
  verdict; on real threads every wait is bounded;
* references: a context closes exactly when its last reference is dropped.  Not earlier
  (P3 ``closed-while-referenced``: a thread dropping a reference it holds finds the
  context open, and no use of a referenced context raises ``ContextClosedError``); not
  later (LIVE ``closed-at-last-unref``: the transient context once its users dropped their
  references, each IOThread's context once it is joined, the main context once teardown
  drops the program's reference; ``references-balanced``: before that, every context is
  back to the program's one reference).  An ``aio_context_unref`` of the only reference of
  a running IOThread's context is refused with ``ContextInUseError`` and keeps it (P3
  ``unref-in-use-refused``);
* queries: what a query returns agrees with what its caller knows (P1 ``query-lock``: the
  lock statistics name the caller as owner, at its own nesting depth, exactly when it
  holds the context; P3 ``query-state``: a holder sees the handlers the program registered
  and no poller, at least the references it holds, external handlers disabled inside its
  own ``aio_disable_external``, a dataplane ring no longer than the requests submitted,
  ``qemu_get_aio_context()`` is the main context; LIVE ``iothreads-live``: the IOThreads
  of the setup are live).  The race detector (the ``races`` checker) watches their reads.
"""

from __future__ import annotations

import contextlib
import errno
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from aioctx_verify import impl
from aioctx_verify.impl import (
    BH,
    SCALE_MS,
    AioContext,
    BHDeletedError,
    BlockRequest,
    CallbackError,
    ClockType,
    ContextClosedError,
    ContextInUseError,
    ContextNotHeldError,
    DataplaneDevice,
    EventNotifier,
    Fence,
    IOThread,
    LockNotHeldError,
    NotOwnerError,
    Platform,
    QEMUTimer,
    ThreadId,
    ThreadPool,
    ThreadPoolRequest,
    VMState,
    clocks_for,
    live_iothreads,
    main_context,
    qemu,
)
from aioctx_verify.vocab import PROPERTY_NAMES, PropertyName

from ..controlled import ControlledPlatform
from ._explore import Program
from ._gen_ops import GenProgram, Op, OpKind, Query
from ._publish import ExternalPublication, HandlerPublication, Publication

__all__ = ["MAX_STEPS", "Finding", "OracleFailure", "ProgramRun", "classify", "generated_program"]

#: Step budget of one controlled run (a generated program needs a few thousand).
MAX_STEPS = 80_000
#: Data sizes of dataplane requests (their ``ret``).
_DP_SIZES = (1, 2, 3, 4)
#: The idle check (controlled runs): thread 0 yields this often, and an idle IOThread may
#: iterate at most this many times meanwhile (a late kick or two; a spinning loop does more).
_IDLE_YIELDS = 200
_IDLE_ITERATIONS = 4
#: A kick waits at most this many yields for its context's loop to fall asleep.
_SLEEP_YIELDS = 40


class OracleFailure(AssertionError):
    """A program-level oracle failed; ``prop`` is the property it witnesses."""

    def __init__(self, prop: PropertyName | None, rule: str, message: str) -> None:
        super().__init__(f"{prop + ' ' if prop else ''}{rule}: {message}")
        self.prop = prop
        self.rule = rule


@dataclass(frozen=True, slots=True)
class Finding:
    prop: PropertyName | None
    rule: str
    message: str


def classify(e: BaseException | None) -> PropertyName | None:
    """The property an exception witnesses: its own ``prop`` (an oracle, a probe check), a
    monitor's violation, or an impl refusal that only a broken rule causes (the kill
    matrix's USAGE_ERRORS, which this room cannot import, and the refusals of a context
    whose references were miscounted: closed while a thread used it, or "in use" when a
    thread dropped a reference it had taken); a callback error is read through."""
    for _ in range(8):
        if e is None:
            return None
        prop = getattr(e, "prop", None)
        if prop in PROPERTY_NAMES:
            return prop  # type: ignore[no-any-return]
        for kind, p in (
            (ContextNotHeldError, "P3"),
            (NotOwnerError, "P1"),
            (LockNotHeldError, "P1"),
            (BHDeletedError, "P2"),
            (ContextClosedError, "P3"),
            (ContextInUseError, "P3"),
        ):
            if isinstance(e, kind):
                return p  # type: ignore[return-value]
        e = e.exception if isinstance(e, CallbackError) else None
    return None


# ------------------------------------------------------------------------------------------
# One run of a program
# ------------------------------------------------------------------------------------------
class RunGaveUp(Exception):
    """Real threads: a bounded wait of thread 0 ran out and the run gave up (what it saw is
    in :attr:`ProgramRun.findings` or :attr:`ProgramRun.unsure`)."""


class ProgramRun:
    """Setup, scripts, main loop, teardown and oracles of one run (thread 0 calls
    :meth:`main`).  ``wait`` bounds every wait in seconds on real threads; ``None`` on the
    controlled platform, where a wait that can never end is the scheduler's verdict."""

    def __init__(
        self,
        p: Platform,
        prog: GenProgram,
        *,
        wait: float | None,
        raised: list[BaseException],
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        self.p = p
        self.prog = prog
        self.st = prog.setup
        self.wait = wait
        self.raised = raised
        # The log is appended from several threads: on the controlled platform only one
        # runs between two platform calls; on real threads a lock keeps counts exact.
        self._lock: AbstractContextManager[Any] = lock or contextlib.nullcontext()
        self.log: list[tuple[str, int]] = []
        self.last: dict[tuple[str, int], int] = {}
        self.count: dict[tuple[str, int], int] = {}
        self.findings: list[Finding] = []
        #: Real threads: bounded waits that ran out with nothing seen stuck (the run is
        #: then inconclusive: the machine may just be slow).
        self.unsure: list[str] = []
        self.m = p.mutex("gen.owed")
        self.cond = p.condition(self.m)
        self.waiting = False
        self.aborted = False
        #: Callbacks under way, and (once thread 0 tears down) whether they may still act
        #: on other objects: a late callback only logs its run.
        self.busy = 0
        self.closing = False
        self.ctxs: dict[int, AioContext] = {}
        self.its: dict[int, IOThread] = {}
        self.home: dict[int, ThreadId] = {}
        self.held: dict[int, list[ThreadId]] = {}
        self.inside: dict[int, list[ThreadId]] = {}  # threads polling ctx inside impl
        self.bhs: dict[int, BH] = {}
        self.done_begin: dict[int, int] = {}  # bh -> begin of the latest ended schedule
        self.timers: dict[int, QEMUTimer] = {}
        self.notifiers: dict[int, EventNotifier] = {}
        self.registered: dict[int, bool] = {}
        self.oneshot_ctx: list[int] = []
        self.req_ctx: list[int] = []
        self.req_drain: list[bool] = []
        self.req_obj: dict[int, ThreadPoolRequest] = {}
        self.req_ret: dict[int, int] = {}
        self.last_req: dict[tuple[ThreadId, int], int] = {}
        self.dev: DataplaneDevice | None = None
        self.vm: VMState | None = None
        self.dp_reqs: list[BlockRequest] = []
        self.x_tid: list[ThreadId | None] = []
        self.x_its: list[IOThread] = []
        self.done = 0
        self.t0 = p.current_thread()
        self.names: dict[ThreadId, str] = {self.t0: "T0"}
        self.kidx: dict[ThreadId, int] = {self.t0: 0}  # thread -> its script's number
        #: c11 runs: what scripts publish before a qemu_bh_schedule, and what runs read.
        self.pub: Publication | None = None
        self.ext_pub: ExternalPublication | None = None
        self.h_pub: HandlerPublication | None = None
        # References and disables a thread holds now (what its queries must see).
        self.myrefs: dict[tuple[ThreadId, int], int] = {}
        self.ext_depth: dict[tuple[ThreadId, int], int] = {}
        self.x_dropped: set[int] = set()  # users of x whose reference was dropped
        self.handover: dict[int, tuple[int, bool]] = {}  # oneshot -> (context, via qemu)
        self.kicks: list[int] = []  # kick -> its context
        self.kick_bh: dict[int, BH] = {}
        self.pools: dict[int, ThreadPool] = {}
        #: The main context is the platform's main-loop context (qemu_get_aio_context).
        self.main_is_platform = False

    # -- bookkeeping -----------------------------------------------------------------------
    def _log(self, ev: str, obj: int) -> int:
        with self._lock:
            i = len(self.log)
            self.log.append((ev, obj))
            key = (ev, obj)
            self.last[key] = i
            self.count[key] = self.count.get(key, 0) + 1
            return i

    def _last(self, ev: str, obj: int) -> int:
        return self.last.get((ev, obj), -1)

    def _n(self, ev: str, obj: int) -> int:
        return self.count.get((ev, obj), 0)

    def fail(self, prop: PropertyName | None, rule: str, message: str) -> None:
        self.findings.append(Finding(prop, rule, message))

    def ran_out(self, rule: str, message: str) -> None:
        """A bounded wait (real threads) ran out: a LIVE finding only with structural
        evidence that the run is stuck (an IOThread asleep with work due, a free lock with
        waiters queued: :func:`~aioctx_verify.stress.mutation.stuck_evidence`); else the run
        is inconclusive and gives up its other waits.  Call it without ``self.m`` held."""
        from aioctx_verify.stress.mutation import stuck_evidence

        evidence = stuck_evidence([*self.its.values(), *self.x_its], list(self.ctxs.values()))
        if evidence is not None:
            self.fail("LIVE", rule, f"{message}: {evidence}")
        else:
            self.unsure.append(f"{message} (nothing was seen stuck)")
            self.kick()

    def keep(self, e: BaseException) -> None:
        if not self.raised:
            self.raised.append(e)

    def _me(self) -> ThreadId:
        return self.p.current_thread()

    def _who(self, t: ThreadId | None) -> str:
        if t is None:
            return "nobody"
        for c, it in self.its.items():
            if it.thread_id == t:
                return f"io{c}"
        return self.names.get(t, f"thread {t}")

    def _wake(self) -> None:
        if self.waiting:
            with self.m:
                self.cond.notify_all()

    @contextlib.contextmanager
    def _callback(self) -> Iterator[None]:
        """Count a callback under way (thread 0 waits for none before it concludes) and
        wake thread 0 when it ends."""
        with self._lock:
            self.busy += 1
        try:
            yield
        finally:
            with self._lock:
                self.busy -= 1
            self._wake()

    @contextlib.contextmanager
    def _holding(self, cs: list[int]) -> Iterator[None]:
        """Mark the caller as the holder of ``cs`` (it has acquired them) for the block."""
        me = self._me()
        for c in cs:
            h = self.held.setdefault(c, [])
            if h and h[-1] != me:
                self.fail(
                    "P1", "owner-unique",
                    f"{self._who(me)} acquired {self.st.ctx_name(c)} while "
                    f"{self._who(h[-1])} still held it",
                )
            h.append(me)
        try:
            yield
        finally:
            for c in cs:
                h = self.held[c]
                if h and h[-1] == me:
                    h.pop()

    @contextlib.contextmanager
    def _inside(self, c: int) -> Iterator[None]:
        """The caller may run ``c``'s callbacks in the block (it polls ``c`` inside impl)."""
        lst = self.inside.setdefault(c, [])
        lst.append(self._me())
        try:
            yield
        finally:
            lst.remove(self._me())

    def _in_ctx(self, c: int, what: str) -> None:
        """P3: a callback of context ``c`` runs where it may."""
        me = self._me()
        h = self.held.get(c)
        name = self.st.ctx_name(c)
        if h and h[-1] != me:
            self.fail(
                "P3", "no-callback-while-held",
                f"{what} of {name} ran in {self._who(me)} while {self._who(h[-1])} held {name}",
            )
        elif me != self.home.get(c) and not h and me not in self.inside.get(c, ()):
            self.fail(
                "P3", "callback-in-its-context",
                f"{what} of {name} ran in {self._who(me)}, which neither runs {name}'s loop "
                f"nor holds it",
            )

    # -- objects ---------------------------------------------------------------------------
    def _schedule(self, j: int, idle: bool = False, q: bool | None = None) -> None:
        """Schedule BH ``j`` (``q``: through impl.qemu; None, from a callback: by parity)."""
        begin = self._log("bs", j)
        bh = self.bhs[j]
        k = None
        if self.pub is not None and not idle and q is not None:  # a script's schedule
            k = self.kidx.get(self._me())
            if k is not None:
                self.pub.before_schedule(j, k, begin)
        via = bool(j % 2) if q is None else q
        if idle:
            if via:
                qemu.qemu_bh_schedule_idle(bh)
            else:
                bh.schedule_idle()
        elif via:
            qemu.qemu_bh_schedule(bh)
        else:
            bh.schedule()
        if self.pub is not None and k is not None:
            self.pub.after_schedule(j, k, self._own_write(bh.scheduled))
        with self._lock:
            self.done_begin[j] = max(self.done_begin.get(j, -1), begin)

    def _cancel(self, j: int, q: bool = True) -> None:
        if q:
            qemu.qemu_bh_cancel(self.bhs[j])
        else:
            self.bhs[j].cancel()
        # Order the relaxed store before whatever follows (the monitor's rule too).
        self.p.fence(Fence.MB)
        self._log("cx", j)

    def _arm(self, t: int, d: int, q: bool = True) -> None:
        spec = self.st.timers[t]
        tm = self.timers[t]
        now = qemu.qemu_clock_get_ns(spec.clock, self.p)
        self._log("tb", t)
        if d % 2:
            if q:
                qemu.timer_mod_ns(tm, now + d * SCALE_MS)
            else:
                tm.mod_ns(now + d * SCALE_MS)
        elif q:
            qemu.timer_mod(tm, (now + d * SCALE_MS) // spec.scale)
        else:
            tm.mod((now + d * SCALE_MS) // spec.scale)
        self._log("tB", t)  # the mod's end (see _timer_armed)

    def _register(self, j: int, q: bool = True) -> None:
        spec = self.st.notifiers[j]
        ctx = self.ctxs[spec.ctx]
        n = self.notifiers[j]
        ext = spec.external
        if spec.fd:
            if q:
                qemu.aio_set_fd_handler(ctx, n.fd, self._fd_read, None, j, is_external=ext)
            else:
                ctx.set_fd_handler(n.fd, self._fd_read, None, j, is_external=ext)
        elif q:
            qemu.aio_set_event_notifier(ctx, n, self._en_handler(j), is_external=ext)
        else:
            ctx.set_event_notifier(n, self._en_handler(j), is_external=ext)
        self.registered[j] = True
        self._log("ha", j)

    def _unregister(self, j: int, q: bool = False) -> None:
        spec = self.st.notifiers[j]
        ctx = self.ctxs[spec.ctx]
        n = self.notifiers[j]
        if spec.fd:
            if q:
                qemu.aio_set_fd_handler(ctx, n.fd, None, None, None)
            else:
                ctx.set_fd_handler(n.fd, None, None)
        elif q:
            qemu.aio_set_event_notifier(ctx, n, None)
        else:
            ctx.set_event_notifier(n, None)
        self.registered[j] = False
        self._log("hd", j)

    def _submit(self, c: int, drain: bool = False, q: bool = True) -> int:
        with self._lock:
            rid = len(self.req_ctx)
            self.req_ctx.append(c)
            self.req_drain.append(drain)
        ctx = self.ctxs[c]
        pool = qemu.aio_get_thread_pool(ctx) if q else ctx.thread_pool()
        self.pools[c] = pool
        self._log("rs", rid)
        if q:
            req = qemu.thread_pool_submit_aio(pool, self._pool_fn, rid, self._pool_done, rid)
        else:
            req = pool.submit(self._pool_fn, rid, self._pool_done, rid)
        self.req_obj[rid] = req
        self.last_req[(self._me(), c)] = rid
        return rid

    def _new_oneshot(self, c: int) -> int:
        with self._lock:
            i = len(self.oneshot_ctx)
            self.oneshot_ctx.append(c)
        self._log("os", i)
        return i

    def _holds(self, c: int) -> int:
        """How deep the caller holds context ``c`` (0: it does not hold it)."""
        me = self._me()
        h = self.held.get(c, [])
        return len(h) if h and h[-1] == me else 0

    # -- references ------------------------------------------------------------------------
    def _unref(self, c: int, q: bool) -> None:
        ctx = self.ctxs[c]
        if q:
            qemu.aio_context_unref(ctx)
        else:
            ctx.unref()

    def _drop(self, c: int, q: bool, what: str) -> None:
        """Drop a reference (``what``) the caller holds of context ``c``: it must be open."""
        if self.ctxs[c].closed:
            raise OracleFailure(
                "P3", "closed-while-referenced",
                f"{self.st.ctx_name(c)} was closed while {what} was still held",
            )
        self._unref(c, q)

    def _min_refs(self, c: int) -> int:
        """References of context ``c`` that are certainly held while the caller runs."""
        me = self._me()
        n = self.myrefs.get((me, c), 0)
        if c != self.st.x:
            return n + 1  # the program's own
        k = self.kidx.get(me)
        return n + int(k in self.st.xusers and k not in self.x_dropped)

    def _refused_unref(self, ctx: AioContext, what: str, q: bool) -> None:
        """Misuse: drop the only reference of a running IOThread's context; refused."""
        try:
            if q:
                qemu.aio_context_unref(ctx)
            else:
                ctx.unref()
        except ContextInUseError:
            pass
        else:
            raise OracleFailure(
                "P3", "unref-in-use-refused",
                f"aio_context_unref of {what}, whose only reference is its running IOThread's, "
                f"did not raise ContextInUseError (the context is now "
                f"{'closed' if ctx.closed else 'open'})",
            )
        if ctx.closed:
            raise OracleFailure("P3", "unref-in-use-refused",
                                f"a refused aio_context_unref closed {what}")

    def _ref_op(self, op: Op) -> None:
        a, b, q = op.a, op.b, op.q
        me = self._me()
        ctx = self.ctxs[a]
        if ctx.closed:  # the caller holds a reference: it must be open
            raise OracleFailure("P3", "closed-while-referenced",
                                f"{self.st.ctx_name(a)} was closed while {self._who(me)} used it")
        if q:
            qemu.aio_context_ref(ctx)
        else:
            ctx.ref()
        key = (me, a)
        self.myrefs[key] = self.myrefs.get(key, 0) + 1
        self._script(op.body)
        self.myrefs[key] -= 1
        if not b:
            self._drop(a, q, f"a reference {self._who(me)} took")
            return
        d = b - 1  # handed over: a one-shot of context d drops it
        i = self._new_oneshot(d)
        self.handover[i] = (a, q)
        if q:
            qemu.aio_bh_schedule_oneshot(self.ctxs[d], self._handover_cb, i)
        else:
            self.ctxs[d].bh_schedule_oneshot(self._handover_cb, i)

    def _unref_x(self, q: bool) -> None:
        k = self.kidx[self._me()]
        with self._lock:
            self.x_dropped.add(k)
        self._drop(self.st.x, q, f"T{k}'s reference")

    # -- kicks -----------------------------------------------------------------------------
    def _kick(self, c: int, q: bool, asleep: bool) -> None:
        """Idle-schedule a new BH of ``c`` (no wake-up of its own), ``aio_notify(c)``, and
        wait until the BH ran: the notify is what wakes a loop asleep without a timeout
        (``asleep``: first wait, at most :data:`_SLEEP_YIELDS` yields, until it sleeps)."""
        ctx = self.ctxs[c]
        if asleep:
            for _ in range(_SLEEP_YIELDS):
                if ctx.debug_snapshot().asleep:
                    break
                self.p.yield_now()
        with self._lock:
            kid = len(self.kicks)
            self.kicks.append(c)
        bh = qemu.aio_bh_new(ctx, self._kick_cb, kid) if q else ctx.bh_new(self._kick_cb, kid)
        self.kick_bh[kid] = bh
        self._log("ws", kid)
        if q:
            qemu.qemu_bh_schedule_idle(bh)
            qemu.aio_notify(ctx)
        else:
            bh.schedule_idle()
            ctx.aio_notify()
        deadline = None if self.wait is None else time.monotonic() + self.wait
        with self.m:
            while not self.aborted and not self._n("wr", kid):
                if deadline is None:
                    self.cond.wait()
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(min(left, 0.05))
            else:
                return
        self.ran_out("kick-served",
                     f"the BH of kick{kid} ({self.st.ctx_name(c)}: idle schedule, then "
                     f"aio_notify) did not run within {self.wait} s")

    def _kick_cb(self, kid: int) -> None:
        with self._callback():
            self._in_ctx(self.kicks[kid], f"the BH of kick{kid}")
            qemu.qemu_bh_delete(self.kick_bh[kid])  # its last use, from its own callback
            self._log("wr", kid)
        with self.m:
            self.cond.notify_all()

    # -- queries ---------------------------------------------------------------------------
    def _query(self, op: Op) -> None:
        w, a, q = Query(op.b), op.a, op.q
        st = self.st
        me = self._me()
        who = self._who(me)
        if w is Query.BH:
            bh = self.bhs[a]
            sched = bh.is_scheduled
            self._flag_published(a, who)
            if not isinstance(sched, bool) or f"BH {bh.id} " not in repr(bh):
                self.fail("P2", "query-state", f"bh{a}: is_scheduled / repr malformed")
            return
        if w is Query.QUEUED:
            assert self.dev is not None
            n = self.dev.queued()
            if not 0 <= n <= len(self.dp_reqs):
                self.fail("P3", "query-state",
                          f"dataplane.queued() is {n} with {len(self.dp_reqs)} requests submitted")
            return
        if w is Query.MAIN:
            if self.main_is_platform:
                m = qemu.qemu_get_aio_context(self.p) if q else main_context(self.p)
                if m is not self.ctxs[st.main]:
                    self.fail("P3", "query-state",
                              f"qemu_get_aio_context() in {who} is {m.name}, not the main context")
            return
        if w is Query.TIMER:
            tm = self.timers[a]
            pending = qemu.timer_pending(tm) if q else tm.pending()
            expire = qemu.timer_expire_time_ns(tm) if q else tm.expire_ns()
            shown = f"QEMUTimer {tm.id} " in repr(tm)
            if not isinstance(pending, bool) or expire < -1 or not shown:
                self.fail("P3", "query-state",
                          f"timer{a} in {who}: pending() {pending!r}, expire_ns() {expire}, "
                          f"repr {tm!r}")
            return
        if w is Query.LIVE:
            live = live_iothreads(self.p)
            gone = [it.name for it in self.its.values() if it not in live]
            if gone:
                self.fail("LIVE", "iothreads-live",
                          f"live_iothreads() in {who} misses running IOThreads {gone}")
            return
        ctx = self.ctxs[a]
        name = st.ctx_name(a)
        depth = self._holds(a)
        if w is Query.EXTERNAL:
            disabled = ctx.external_disabled
            if self.ext_depth.get((me, a), 0) and not disabled:
                self.fail("P3", "query-state",
                          f"{name}.external_disabled is False inside {who}'s own "
                          "aio_disable_external")
            self._external_published(a, who)
            return
        if w in (Query.POOL, Query.PENDING):
            got: ThreadPool | None
            if w is Query.POOL:  # a holder asks for the pool (made on first use)
                assert depth, f"{who} asks {name} for its pool without holding it"
                pool = qemu.aio_get_thread_pool(ctx) if q else ctx.thread_pool()
                self.pools[a] = got = pool
            else:  # the pool a request was submitted to, if any yet
                got = self.pools.get(a)
            if got is not None and got.pending() < 0:
                self.fail("P3", "query-state", f"the pool of {name} has pending() < 0")
            return
        if w is Query.POOLREPR:
            got = self.pools.get(a)
            if got is not None and (ctx.name not in repr(got) or got.threads < 0):
                self.fail("P3", "query-state",
                          f"the pool of {name} in {who}: repr {got!r}, threads {got.threads}")
            return
        if w is Query.REPR:
            if ctx.name not in repr(ctx):
                self.fail("P3", "query-state", f"repr({name}) does not name it")
            return
        owner = None
        if w is Query.STATS:
            s = ctx.statistics()
            lock = s.lock
            if s.refcount < self._min_refs(a):
                self.fail("P3", "closed-while-referenced",
                          f"{name}.statistics() in {who} counts {s.refcount} references; "
                          f"{who} alone holds {self._min_refs(a)}")
            if s.external_disable_cnt < self.ext_depth.get((me, a), 0):
                self.fail("P3", "query-state",
                          f"{name}.statistics() in {who} counts {s.external_disable_cnt} "
                          "external disables, fewer than its own")
            if s.notify_me not in (0, 2):
                self.fail("P3", "query-state",
                          f"{name}.statistics().notify_me is {s.notify_me}: one blocking "
                          "poller at most adds 2")
            handlers = s.handlers
        else:
            snap = ctx.debug_snapshot()
            lock = snap.lock
            if snap.closed:
                self.fail("P3", "closed-while-referenced",
                          f"{name}.debug_snapshot() in {who}, which holds a reference, says "
                          "closed")
            if depth and snap.polling:
                self.fail("P3", "query-state",
                          f"{name}.debug_snapshot() in {who}, which holds it, shows a poller")
            handlers = len(snap.read_fds)
        owner, got_depth = lock.owner, lock.depth
        if lock.waiters < 0 or lock.served < 0 or lock.depth < 0:
            # Each field is read under the lock's mutex, where every ticket drawn is served,
            # abandoned, held or waiting: no count can go below zero however racy the call.
            self.fail("P1", "query-lock",
                      f"{name}'s lock statistics in {who}: waiters {lock.waiters}, "
                      f"served {lock.served}, depth {lock.depth} (a count below zero)")
        self._handlers_published(a, who, "statistics()" if w is Query.STATS
                                 else "debug_snapshot()")
        if depth and (owner != me or got_depth != depth):
            self.fail("P1", "query-lock",
                      f"{name}'s lock statistics in {who}, which holds it at depth {depth}: "
                      f"owner {self._who(owner)}, depth {got_depth}")
        elif not depth and owner == me:
            self.fail("P1", "query-lock",
                      f"{name}'s lock statistics in {who}, which does not hold it, name it owner")
        if depth and not (self.dev is not None and a in (0, st.main)):
            mine = sum(1 for j in self.notifiers
                       if st.notifiers[j].ctx == a and self.registered.get(j))
            if handlers != mine:
                self.fail("P3", "query-state",
                          f"{name} shows {handlers} handlers to {who}, which holds it; the "
                          f"program registered {mine}")

    # -- callbacks -------------------------------------------------------------------------
    def _bh_cb(self, j: int) -> None:
        with self._callback():
            self._bh_run(j)

    def _bh_run(self, j: int) -> None:
        spec = self.st.bhs[j]
        c = spec.ctx
        self._in_ctx(c, f"bh{j}")
        if self.pub is not None:
            self.pub.on_run(j)
        self._log("br", j)
        beh, arg = spec.behavior, spec.arg
        if beh == "selfdel":
            qemu.qemu_bh_delete(self.bhs[j])
            self._log("pd", j)
        elif self.closing:
            return
        elif beh == "resched" and self._n("br", j) <= arg:
            self._schedule(j)
        elif beh == "chain" and arg in self.bhs:
            self._schedule(arg)
        elif beh == "nested":
            self.ctxs[c].aio_poll(False)
        elif beh == "notify":
            self._log("nb", arg)
            qemu.event_notifier_set(self.notifiers[arg])
        elif beh == "timer":
            self._arm(arg, 1)
        elif beh == "toggle":
            if self.registered.get(arg):
                self._unregister(arg)
            else:
                self._register(arg)

    def _oneshot_cb(self, i: int) -> None:
        with self._callback():
            self._in_ctx(self.oneshot_ctx[i], f"oneshot{i}")
            self._log("or", i)

    def _handover_cb(self, i: int) -> None:
        """A one-shot that was handed a reference: it drops it (in its context's loop)."""
        with self._callback():
            c, q = self.handover[i]
            self._in_ctx(self.oneshot_ctx[i], f"oneshot{i}")
            self._log("or", i)
            self._drop(c, q, f"the reference handed to oneshot{i}")

    def _done_cb(self, _opaque: object) -> None:
        self._in_ctx(self.st.main, "a script's end signal")
        self.done += 1

    def _timer_cb(self, t: int) -> None:
        with self._callback():
            spec = self.st.timers[t]
            self._in_ctx(spec.ctx, f"timer{t}")
            self._log("tr", t)
            if spec.rearm and self._n("tr", t) == 1 and not self.closing:
                self._arm(t, 1)

    def _handler(self, j: int) -> None:
        with self._callback():
            spec = self.st.notifiers[j]
            self._in_ctx(spec.ctx, f"the handler of notifier{j}")
            qemu.event_notifier_test_and_clear(self.notifiers[j])
            self._log("hr", j)
            if spec.selfremove and not self.closing:
                self._unregister(j)

    def _fd_read(self, j: int) -> None:
        self._handler(j)

    def _en_handler(self, j: int) -> Callable[[EventNotifier], None]:
        def on_notifier(_n: EventNotifier) -> None:
            self._handler(j)

        return on_notifier

    def _pool_fn(self, rid: int) -> int:
        self._log("rf", rid)
        return rid + 1000

    def _pool_done(self, rid: int, ret: int) -> None:
        with self._callback():
            c = self.req_ctx[rid]
            self._in_ctx(c, f"the completion of request{rid}")
            self.req_ret[rid] = ret
            self._log("rc", rid)
            if self.req_drain[rid] and not self.closing:
                # bdrv_drain from a completion: a nested blocking aio_poll until every
                # request submitted to this context before this one has completed.
                earlier = [r for r in range(rid) if self.req_ctx[r] == c]
                ctx = self.ctxs[c]
                while not self.aborted and any(not self._n("rc", r) for r in earlier):
                    ctx.aio_poll(True)

    def _dp_backend(self, req: BlockRequest) -> int:
        return len(req.data)

    def _guest_irq(self, _n: EventNotifier) -> None:
        assert self.dev is not None
        with self._callback():
            self._in_ctx(self.st.main, "the guest's interrupt handler")
            for req in self.dev.guest_collect():
                self._log("kc", req.id)

    def _x_cb(self, x: int) -> None:
        me = self._me()
        if me != self.x_tid[x]:
            self.fail(
                "P3", "callback-in-its-context",
                f"the one-shot of started IOThread x{x} ran in {self._who(me)}",
            )
        self._log("xr", x)

    # -- setup -------------------------------------------------------------------------------
    def _first_use(self) -> AioContext:
        """Thread 0 and a helper ask for the main context at once, on a platform that has
        none yet: the registry makes one, under its mutex, and both get it."""
        p = self.p
        got: list[AioContext] = []
        helper = p.start_thread(lambda: got.append(qemu.qemu_get_aio_context(p)), "first-use")
        mine = main_context(p)
        helper.join()
        if got and got[0] is not mine:
            self.fail("P3", "query-state",
                      f"the first uses of the main context made two: {mine.name} (context "
                      f"{mine.id}) in T0 and context {got[0].id} in a thread asking at the "
                      "same time; qemu_get_aio_context must make one")
        return mine

    def _setup(self) -> None:
        p, st = self.p, self.st
        used = self.prog.used()
        if self.t0 == p.main_thread():  # the platform's main loop (qemu_get_aio_context)
            main = self._first_use() if self.prog.first_use else main_context(p)
            self.main_is_platform = True
        else:
            main = AioContext(p, name="main")
        self.ctxs[st.main] = main
        self.home[st.main] = self.t0
        if st.x in used.ctxs:  # the transient context: a reference for each user
            x = qemu.aio_context_new(p) if st.x_new else AioContext(p, name="x")
            for _ in st.xusers[1:]:
                if st.x_new:
                    qemu.aio_context_ref(x)
                else:
                    x.ref()
            self.ctxs[st.x] = x
            self.home[st.x] = self.t0
        for c in sorted(used.ctxs - {st.main, st.x}):
            it = IOThread(p, name=f"io{c}").start()
            assert it.thread_id is not None
            self.its[c] = it
            self.ctxs[c] = it.ctx
            self.home[c] = it.thread_id
        for j in sorted(used.bhs):
            c = st.bhs[j].ctx
            if c == st.main and self.main_is_platform and j % 2:
                self.bhs[j] = qemu.qemu_bh_new(self._bh_cb, j, p)  # the main loop's BH
            else:
                self.bhs[j] = qemu.aio_bh_new(self.ctxs[c], self._bh_cb, j)
        if getattr(getattr(p, "memory", None), "value", None) == "c11":
            shared = [j for j in self.bhs if st.bhs[j].owner is None]
            self.pub = Publication(p, shared, len(self.prog.scripts))
            if any(o.kind is OpKind.EXT for o in self.prog.ops()):
                self.ext_pub = ExternalPublication(p, sorted(self.ctxs),
                                                   len(self.prog.scripts))
            if any(o.kind in (OpKind.HADD, OpKind.HDEL) for o in self.prog.ops()):
                self.h_pub = HandlerPublication(p, sorted(self.ctxs), len(self.prog.scripts))
        for j in sorted(used.timers):
            t = st.timers[j]
            self.timers[j] = qemu.aio_timer_new(self.ctxs[t.ctx], t.clock, t.scale,
                                                self._timer_cb, j)
        for j in sorted(used.notifiers):
            n = st.notifiers[j]
            self.notifiers[j] = qemu.event_notifier_init(False, p)
            if n.initially:
                with self._acquired(n.ctx):
                    self._register(j)
        if self.prog.uses_dataplane():
            self.vm = VMState(p)
            self.dev = DataplaneDevice(self.its[0], self.vm, backend=self._dp_backend)
            self.dev.start()
            main.set_event_notifier(self.dev.guest_notifier, self._guest_irq)
        # The quiescent state oracle (a controlled run's monitors) checks these whenever
        # every thread is blocked.
        watch = getattr(p, "watch_state", None)
        if watch is not None:
            for ctx in self.ctxs.values():
                watch(ctx)
            if self.dev is not None:
                watch(self.dev)

    @contextlib.contextmanager
    def _acquired(self, c: int) -> Iterator[None]:
        """Thread 0 holds ``c`` for the block (the main context: its home, no acquire)."""
        if c == self.st.main:
            yield
            return
        ctx = self.ctxs[c]
        if not ctx.acquire(self.wait):
            what = f"thread 0 could not acquire {ctx.name} within {self.wait} s"
            self.ran_out("no-starvation", what)
            raise RunGaveUp(what)
        try:
            with self._holding([c]):
                yield
        finally:
            ctx.release()

    # -- scripts ---------------------------------------------------------------------------
    def _worker(self, k: int) -> Callable[[], None]:
        def run() -> None:
            self.names[self._me()] = f"T{k}"
            self.kidx[self._me()] = k
            main = self.ctxs[self.st.main]
            try:
                self._script(self.prog.scripts[k])
                qemu.aio_bh_schedule_oneshot(main, self._done_cb, None)
            except Exception as e:
                self.keep(e)
                if self.wait is None:
                    raise
                if isinstance(e, TimeoutError):  # one of the run's bounded waits ran out
                    self.ran_out("no-deadlock", f"T{k}: {e}")
                else:
                    self.fail(classify(e), "script-raised",
                              f"T{k} raised {type(e).__name__}: {e}")
                with contextlib.suppress(impl.AioCtxError):  # thread 0 still waits for it
                    qemu.aio_bh_schedule_oneshot(main, self._done_cb, None)

        return run

    def _script(self, ops: tuple[Op, ...]) -> None:
        for op in ops:
            self._do(op)

    def _do(self, op: Op) -> None:
        k, a, b, q = op.kind, op.a, op.b, op.q
        p = self.p
        if k in (OpKind.SCHED, OpKind.PSCHED):
            self._schedule(a, q=q)
        elif k in (OpKind.IDLE, OpKind.PIDLE):
            self._schedule(a, idle=True, q=q)
        elif k in (OpKind.CANCEL, OpKind.PCANCEL):
            self._cancel(a, q)
        elif k is OpKind.ONESHOT:
            i = self._new_oneshot(a)
            if q:
                qemu.aio_bh_schedule_oneshot(self.ctxs[a], self._oneshot_cb, i)
            else:
                self.ctxs[a].bh_schedule_oneshot(self._oneshot_cb, i)
        elif k is OpKind.NSET:
            self._log("nb", a)
            if q:
                qemu.event_notifier_set(self.notifiers[a])
            else:
                self.notifiers[a].set()
        elif k is OpKind.TMOD:
            self._arm(a, b, q)
        elif k is OpKind.TDEL:
            self._log("tD", a)  # the delete's start (see _timer_armed)
            if q:
                qemu.timer_del(self.timers[a])
            else:
                self.timers[a].delete()
            self._log("td", a)
        elif k is OpKind.KICK:
            assert self.dev is not None
            with self._lock:
                rid = len(self.dp_reqs)
                req = BlockRequest(rid, data=b"x" * _DP_SIZES[rid % len(_DP_SIZES)])
                self.dp_reqs.append(req)
            self._log("ks", rid)
            self.dev.guest_submit(req)
        elif k is OpKind.VSTOP:
            if q:
                qemu.qemu_clock_stop_virtual(p)
            else:
                clocks_for(p).stop_virtual()
        elif k is OpKind.VSTART:
            if q:
                qemu.qemu_clock_start_virtual(p)
            else:
                clocks_for(p).start_virtual()
        elif k is OpKind.SLEEP:
            # Busy elsewhere: a bounded wait nobody signals (virtual time on the controlled
            # platform, where it lets the clock move once every thread waits).
            m = p.mutex("busy")
            c = p.condition(m)
            with m:
                c.wait(b * SCALE_MS / 1e9)
        elif k is OpKind.VADV:
            if q:
                qemu.qemu_clock_advance_virtual(b * SCALE_MS, p)
            else:
                clocks_for(p).advance_virtual(b * SCALE_MS)
        elif k is OpKind.CLOCK:
            if q:
                qemu.qemu_clock_enable(ClockType(a), bool(b), p)
            else:
                clocks_for(p).enable(ClockType(a), bool(b))
        elif k is OpKind.EXT:
            self._external(op)
        elif k is OpKind.LOCK:
            self._locked(op)
        elif k is OpKind.STW:
            its = [self.its[c] for c in sorted(self.its)]
            stw = qemu.pause_all_iothreads if b else impl.stop_the_world
            with stw(its), self._holding(sorted(self.its)):
                self._script(op.body)
        elif k is OpKind.ITER:
            self._iothread_cycle(bool(b), q)
        elif k is OpKind.DPSTOP:
            assert self.dev is not None
            with self._inside(0):
                self.dev.stop()
        elif k is OpKind.DPSTART:
            assert self.dev is not None
            self.dev.start()
        elif k is OpKind.VMSTOP:
            assert self.vm is not None
            with self._inside(0):
                self.vm.stop()
        elif k is OpKind.VMSTART:
            assert self.vm is not None
            self.vm.start()
        elif k in (OpKind.HPOLL, OpKind.POLL):
            ctx = self.ctxs[self.st.main if k is OpKind.HPOLL else a]
            if q:
                qemu.aio_poll(ctx, False)
            else:
                ctx.aio_poll(False)
        elif k in (OpKind.HADD, OpKind.HDEL):
            hc = self.st.notifiers[a].ctx
            pub = self.h_pub
            who = self.kidx.get(self._me()) if pub is not None else None
            n = pub.before(hc, who) if pub is not None and who is not None else 0
            if k is OpKind.HADD:
                self._register(a, q)
            else:
                self._unregister(a, q)
            if pub is not None and who is not None:
                view = self.ctxs[hc]._handler_view
                pos = self._c11_position(view)
                writer = getattr(self.p, "c11_writer", None)
                own = (pos is not None and writer is not None
                       and writer(view, pos) == int(self._me()))
                pub.after(hc, who, n, pos, own)
        elif k is OpKind.SUBMIT:
            self._submit(a, bool(b), q)
        elif k is OpKind.RCANCEL:
            last = self.last_req.get((self._me(), a))
            if last is not None:
                if q:
                    qemu.bdrv_aio_cancel_async(self.req_obj[last])
                else:
                    self.req_obj[last].cancel_async()
                self._log("rx", last)
        elif k is OpKind.SYNC:
            rid = self._submit(a, q=q)
            ctx = self.ctxs[a]
            while not self._n("rc", rid) and not self.aborted:
                if q:
                    qemu.aio_poll(ctx, True)
                else:
                    ctx.aio_poll(True)
        elif k is OpKind.PDEL:
            if q:
                qemu.qemu_bh_delete(self.bhs[a])
            else:
                self.bhs[a].delete()
            self._log("pd", a)
        elif k is OpKind.REF:
            self._ref_op(op)
        elif k is OpKind.UNREF:
            self._unref_x(q)
        elif k is OpKind.MISUSE:
            self._refused_unref(self.ctxs[a], f"{self.st.ctx_name(a)}", q)
        elif k is OpKind.NOTIFY:
            if q:
                qemu.aio_notify(self.ctxs[a])
            else:
                self.ctxs[a].aio_notify()
        elif k is OpKind.KICKW:
            self._kick(a, q, bool(b))
        elif k is OpKind.ACCEPT:
            if q:
                qemu.aio_notify_accept(self.ctxs[a])
            else:
                self.ctxs[a].aio_notify_accept()
        elif k is OpKind.QUERY:
            self._query(op)
        else:  # pragma: no cover - every kind has a branch
            raise AssertionError(k)

    def _external(self, op: Op) -> None:
        ctx = self.ctxs[op.a]
        key = (self._me(), op.a)
        pub = self.ext_pub
        k = self.kidx.get(self._me()) if pub is not None else None
        n = 0
        if pub is not None and k is not None:
            n = pub.before(op.a, k)
        if op.q:
            qemu.aio_disable_external(ctx)
        else:
            ctx.disable_external()
        if pub is not None and k is not None:
            pub.after(op.a, k, n, self._c11_position(ctx._external_disable_cnt))
        self.ext_depth[key] = self.ext_depth.get(key, 0) + 1
        self._script(op.body)
        self.ext_depth[key] -= 1
        if pub is not None and k is not None:
            n = pub.before(op.a, k)
        if op.q:
            qemu.aio_enable_external(ctx)
        else:
            ctx.enable_external()
        if pub is not None and k is not None:
            pub.after(op.a, k, n, self._c11_position(ctx._external_disable_cnt))

    def _c11_position(self, cell: object) -> int | None:
        where = getattr(self.p, "c11_position", None)
        return None if where is None else where(cell)

    def _own_write(self, cell: object) -> int | None:
        """c11: the position of the calling thread's newest write of ``cell`` (None: it
        has none, or another model).  Not its view of the cell: a call that wrote it and
        then fenced (``aio_notify``'s ``smp_mb``) may have seen later writes of others, and
        a release sequence is headed by the thread's own write, not by one of those."""
        pos = self._c11_position(cell)
        writer = getattr(self.p, "c11_writer", None)
        if pos is None or writer is None:
            return None
        me = int(self._me())
        while pos >= 0 and writer(cell, pos) != me:
            pos -= 1
        return pos if pos >= 0 else None

    def _published(
        self, need: dict[int, int], visible: Callable[[int], int | None], prop: PropertyName,
        rule: str, text: Callable[[int, int, int], str],
    ) -> None:
        """c11 message passing (:mod:`._publish`): for each script ``k`` whose number ``n``
        the querying thread must be guaranteed to see (``need``), its view of ``k``'s cell
        (``visible(k)``) reaches ``n``; else ``prop``/``rule`` fails with ``text(k, n, got)``."""
        for k, n in sorted(need.items()):
            got = visible(k)
            if got is not None and got < n:
                self.fail(prop, rule, text(k, n, got))

    def _flag_published(self, j: int, who: str) -> None:
        """c11: right after ``is_scheduled``, the querying thread sees what each script
        published before a schedule it synchronised with (:class:`Publication`)."""
        pub = self.pub
        flag = self.bhs[j].scheduled
        pos = self._c11_position(flag)
        chain = getattr(self.p, "c11_rmw_chain", None)
        if pub is None or pos is None or chain is None:
            return
        self._published(
            pub.query_required(j, pos, lambda lo, hi: bool(chain(flag, lo, hi))),
            lambda k: pub.visible(j, k, self._c11_position), "P2", "schedule-publishes",
            lambda k, n, got: (
                f"{who} read bh{j}.is_scheduled from a write in the release sequence of "
                f"T{k}'s schedule #{n} of it, yet may still read {got} of what T{k} "
                "published before that schedule: the query does not synchronise with it"),
        )

    def _external_published(self, a: int, who: str) -> None:
        """c11: after an ``external_disabled`` query, the querying thread sees what every
        disable and enable it synchronised with published (:class:`ExternalPublication`)."""
        pub = self.ext_pub
        pos = self._c11_position(self.ctxs[a]._external_disable_cnt)
        if pub is None or pos is None:
            return
        self._published(
            pub.required(a, pos), lambda k: pub.visible(a, k, self._c11_position),
            "P3", "external-publishes",
            lambda k, n, got: (
                f"{who} read {self.st.ctx_name(a)}.external_disabled from a write that "
                f"follows T{k}'s disable / enable #{n} of it, yet may still read {got} "
                f"of what T{k} wrote before that call: the query does not synchronise "
                "with it"),
        )

    def _handlers_published(self, a: int, who: str, query: str) -> None:
        """c11: after ``statistics()`` or ``debug_snapshot()``, the querying thread sees what
        the script whose handler change stored the view it read published before that
        change (:class:`HandlerPublication`)."""
        pub = self.h_pub
        pos = self._c11_position(self.ctxs[a]._handler_view)
        if pub is None or pos is None:
            return
        self._published(
            pub.required(a, pos), lambda k: pub.visible(a, k, self._c11_position),
            "P3", "handlers-publish",
            lambda k, n, got: (
                f"{who}'s {self.st.ctx_name(a)}.{query} read the handler view T{k}'s "
                f"handler change #{n} stored, yet may still read {got} of what T{k} wrote "
                "before that change: the query does not synchronise with it"),
        )

    def _locked(self, op: Op) -> None:
        ctx = self.ctxs[op.a]
        if op.b == 0:
            with ctx, self._holding([op.a]):
                self._script(op.body)
        elif op.b == 1:
            if op.q:
                qemu.aio_context_acquire(ctx)
            else:
                ctx.acquire()
            try:
                with self._holding([op.a]):
                    self._script(op.body)
            finally:
                if op.q:
                    qemu.aio_context_release(ctx)
                else:
                    ctx.release()
        elif op.b in (3, 4):
            # A bounded acquire (virtual time on the controlled platform): one that gives
            # up skips its body and leaves its ticket behind, which the lock must skip.
            if not ctx.acquire(0.001 if op.b == 3 else 0.0):
                return
            try:
                with self._holding([op.a]):
                    self._script(op.body)
            finally:
                ctx.release()
        else:

            def body() -> None:
                with self._holding([op.a]):
                    self._script(op.body)

            impl.one_off(ctx, body)

    def _iothread_cycle(self, misuse: bool, q: bool) -> None:
        it = qemu.iothread_new(self.p) if q else IOThread(self.p).start()
        with self._lock:
            x = len(self.x_tid)
            self.x_tid.append(it.thread_id)
            self.x_its.append(it)
        self._log("xs", x)
        ctx = qemu.iothread_get_aio_context(it) if q else it.ctx
        watch = getattr(self.p, "watch_state", None)
        if watch is not None:
            watch(ctx)
        if misuse:
            self._refused_unref(ctx, f"the context of started IOThread x{x}", q)
        if q:
            qemu.aio_bh_schedule_oneshot(ctx, self._x_cb, x)
        else:
            ctx.bh_schedule_oneshot(self._x_cb, x)
        if q and self.wait is None:
            qemu.iothread_join(it)
        else:
            it.join(self.wait)
        if not ctx.closed:
            self.fail("LIVE", "closed-at-last-unref",
                      f"the context of started IOThread x{x} is still open after its join "
                      "dropped its last reference")

    # -- teardown --------------------------------------------------------------------------
    def kick(self) -> None:
        """Real threads: give up every wait (a watchdog ran out)."""
        self.aborted = True
        for ctx in list(self.ctxs.values()):
            with contextlib.suppress(impl.AioCtxError, OSError):
                if not ctx.closed:
                    ctx.notifier.set()
        with contextlib.suppress(RuntimeError), self.m:
            self.cond.notify_all()

    def release_all(self) -> None:
        """Real threads, after a run that gave up: stop whatever it left running."""
        for it in [*self.its.values(), *self.x_its]:
            if it.is_alive():
                it._stopping = True  # the run is over: no stop BH may get through any more
                with contextlib.suppress(impl.AioCtxError, OSError, TimeoutError):
                    it.ctx.notifier.set()
                    it.join(1.0)

    def main(self) -> None:
        p, st = self.p, self.st
        self._setup()
        handles = [
            (k, p.start_thread(self._worker(k), f"T{k}"))
            for k, s in enumerate(self.prog.scripts)
            if k and s
        ]
        self._script(self.prog.scripts[0])
        main = self.ctxs[st.main]
        while self.done < len(handles) and not self.aborted:
            main.aio_poll(True)
        for k, h in handles:
            h.join(self.wait)
            if h.is_alive():
                self.ran_out("no-deadlock", f"T{k} did not end within {self.wait} s")
                return
        self._timers_come_due()
        self._restore()
        self._quiesce_iothreads()
        self._quiesce_main()
        # From here on a late callback (a BH flagged but owed nothing) only logs its run.
        self.closing = True
        if not self._wait_io(lambda: not self.busy, "callbacks under way not ending"):
            return
        if self.wait is None:
            self._idle_check()
        self._drop_x()
        self._check_references()
        self._cleanup()
        self._join_iothreads()
        if self.aborted:
            return  # a wait ran out (real threads): the end-of-run oracles do not apply
        self._final_checks()
        main.unref()
        self._pool_checks()
        if not main.closed:
            self.fail("LIVE", "closed-at-last-unref",
                      "the main context is still open after its last reference was dropped")

    def _timers_come_due(self) -> None:
        """Before the end phase wakes anything (restoring the clocks notifies every
        context), time passes until the IOThreads' timers armed on running clocks have run:
        a loop asleep past a deadline is then seen by the timer oracle (LIVE timer-runs)
        instead of being woken by the clean-up.  Controlled platform only (virtual time:
        nothing else moves while thread 0 waits)."""
        if self.wait is not None:
            return
        clocks = clocks_for(self.p)
        st = self.st

        def due() -> bool:
            return any(
                st.timers[t].ctx != st.main and self._timer_owed(t)
                and clocks.enabled(st.timers[t].clock)
                and (st.timers[t].clock is not ClockType.VIRTUAL or clocks.virtual_running())
                for t in self.timers
            )

        self._wait_io(lambda: not due(), "IOThread timers on running clocks not run")

    def _restore(self) -> None:
        """Undo what the scripts left: the VM and the dataplane run, every clock runs."""
        if self.vm is not None and self.dev is not None:
            self.vm.start()
            self.dev.start()
        qemu.qemu_clock_start_virtual(self.p)
        for c in ClockType:
            qemu.qemu_clock_enable(c, True, self.p)

    def _owed(self, main: bool, bhs: bool = True) -> list[str]:
        """What the IOThreads (``main`` False) or the main loop still owe (``bhs``: BHs and
        one-shots included)."""
        st = self.st
        def mine(c: int) -> bool:
            return (c == st.main) == main

        out = []
        if bhs:
            out += [f"bh{j}" for j in self.bhs
                    if mine(st.bhs[j].ctx) and self._bh_owed(j)]
            out += [f"oneshot{i}" for i, c in enumerate(self.oneshot_ctx)
                    if mine(c) and not self._n("or", i)]
        out += [f"timer{t}" for t in self.timers if mine(st.timers[t].ctx) and self._timer_owed(t)]
        for j in self.notifiers:
            if mine(st.notifiers[j].ctx) and self.registered.get(j) and (
                self._last("nb", j) > self._last("hr", j)
            ):
                out.append(f"notifier{j}")
        out += [f"request{r}" for r, c in enumerate(self.req_ctx) if mine(c)
                and not self._n("rc", r)]
        if main:
            out += [f"dataplane request{r.id}" for r in self.dp_reqs if not self._n("kc", r.id)]
        return out

    def _timer_owed(self, t: int) -> bool:
        """Timer ``t`` must still run: armed by its last mod, and not run since it began."""
        return self._last("tr", t) < self._last("tb", t) and self._timer_armed(t)

    def _timer_armed(self, t: int) -> bool:
        """Whether timer ``t``'s last mod outlived its last delete.  A mod that began after
        the delete ended did; one that ended before the delete began did not; when the two
        overlapped (two threads), either order is correct and the timer itself says which
        one happened (a mod logged first could still land after the delete)."""
        tb, td = self._last("tb", t), self._last("td", t)
        if tb > td:
            return True
        if self._last("tB", t) < self._last("tD", t):
            return False
        return self.timers[t].pending()

    def _bh_owed(self, j: int) -> bool:
        """BH ``j`` must still run: its latest ended schedule began after its last cancel
        returned, it is not deleted, and it has not run since that schedule began."""
        begin = self.done_begin.get(j, -1)
        return (
            begin >= 0
            and begin > self._last("cx", j)
            and self._last("pd", j) < 0
            and self._last("br", j) < begin
        )

    def _wait_io(self, done: Callable[[], bool], what: str) -> bool:
        """Thread 0 waits (on the condition every callback signals) until ``done()``."""
        deadline = None if self.wait is None else time.monotonic() + self.wait
        with self.m:
            self.waiting = True
            try:
                while not self.aborted and not done():
                    if deadline is None:
                        self.cond.wait()
                        continue
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self.cond.wait(min(left, 0.05))
                else:
                    return not self.aborted
            finally:
                self.waiting = False
        self.ran_out("served", f"{what} within {self.wait} s")
        return False

    def _flushed(self, c: int, n: int) -> Callable[[], bool]:
        return lambda: self._n("fl", c) > n

    def _flush_cb(self, c: int) -> None:
        with self._callback():
            self._log("fl", c)

    def _quiesce_iothreads(self) -> None:
        """Until the IOThreads owe nothing: wait for their timers, handlers and requests,
        then flush each one twice with a one-shot BH (the second runs after the walk of the
        first, which ran every BH flagged before it: an idle schedule or one that coalesced
        with it promises no wake-up, the flush's notify is one).  A round in which nothing
        but the flushes ran leaves what is still owed to the final checks."""
        while not self.aborted:
            if not self._wait_io(lambda: not self.busy and not self._owed(False, bhs=False),
                                 "IOThread work (timers, handlers, requests) not served"):
                return
            before = len(self.log)
            for c, it in sorted(self.its.items()):
                for _ in range(2):
                    flushed = self._flushed(c, self._n("fl", c))
                    qemu.aio_bh_schedule_oneshot(it.ctx, self._flush_cb, c)
                    if not self._wait_io(flushed, f"a flush of io{c} not run"):
                        return
            if not self._wait_io(lambda: not self.busy, "callbacks under way not ending"):
                return
            if not self._owed(False):
                return
            if len(self.log) - before == 2 * len(self.its) and not self._owed(False, bhs=False):
                # Nothing ran but the flushes: the BHs still owed stay owed.  Not so a timer,
                # handler or request that became owed after the wait above was satisfied
                # (a BH still pending then armed it): it needs the wait again, with time.
                return

    def _quiesce_main(self) -> None:
        """Thread 0 polls the main context until it owes nothing; when only BHs are owed,
        without blocking, and two polls that run nothing leave them to the final checks."""
        main = self.ctxs[self.st.main]
        deadline = None if self.wait is None else time.monotonic() + self.wait
        idle = 0
        while not self.aborted:
            owed = self._owed(main=True)
            if not owed:
                return
            if deadline is not None and time.monotonic() > deadline:
                self.ran_out("served", f"not served within {self.wait} s: " + ", ".join(owed))
                return
            block = bool(self._owed(main=True, bhs=False))
            before = len(self.log)
            main.aio_poll(block)
            idle = 0 if block or len(self.log) > before else idle + 1
            if idle >= 2:
                return

    def _idle_check(self) -> None:
        """LIVE: an IOThread with nothing to do sleeps.  Thread 0 yields
        :data:`_IDLE_YIELDS` times (a controlled run: every other thread may move first);
        an idle loop may iterate a few times meanwhile (a late kick), a spinning one more."""
        before = {c: it.iterations for c, it in self.its.items()}
        for _ in range(_IDLE_YIELDS):
            self.p.yield_now()
        for c, it in sorted(self.its.items()):
            spins = it.iterations - before[c]
            if spins > _IDLE_ITERATIONS:
                self.fail("LIVE", "idle-sleeps",
                          f"idle IOThread io{c} ran {spins} aio_poll iterations with nothing "
                          f"to do while thread 0 yielded {_IDLE_YIELDS} times")

    def _cleanup(self) -> None:
        for j in list(self.notifiers):
            if self.registered.get(j):
                with self._acquired(self.st.notifiers[j].ctx):
                    self._unregister(j)
            qemu.event_notifier_cleanup(self.notifiers[j])
        if self.dev is not None:
            self.ctxs[self.st.main].set_event_notifier(self.dev.guest_notifier, None)
            with self._inside(0):
                self.dev.close()
        for tm in self.timers.values():
            qemu.timer_free(tm)

    def _drop_x(self) -> None:
        """Drop the references of the transient context's users that did not drop theirs
        (their drop was shrunk away); then it must be closed."""
        st = self.st
        x = self.ctxs.get(st.x)
        if x is None:
            return
        for k in st.xusers:
            if k not in self.x_dropped:
                self._drop(st.x, st.x_new, f"T{k}'s reference (dropped by teardown)")
        if not x.closed:
            self.fail("LIVE", "closed-at-last-unref",
                      f"x is still open ({x.statistics().refcount} references) after each of "
                      "its users dropped its reference")

    def _check_references(self) -> None:
        """Every context but x is back to the program's own reference."""
        st = self.st
        for c, ctx in sorted(self.ctxs.items()):
            if c == st.x:
                continue
            name = st.ctx_name(c)
            if ctx.closed:
                self.fail("P3", "closed-while-referenced",
                          f"{name} was closed while the program still held its reference")
                continue
            n = ctx.statistics().refcount
            if n != 1:
                self.fail("LIVE" if n > 1 else "P3", "references-balanced",
                          f"{name} has {n} references once every thread dropped those it "
                          "took (expected 1: the program's own)")

    def _join_iothreads(self) -> None:
        for c, it in sorted(self.its.items()):
            try:
                if self.wait is None:
                    qemu.iothread_join(it)
                else:
                    it.join(self.wait)
            except TimeoutError as e:
                self.ran_out("iothreads-joined", str(e))
                return
            if not it.ctx.closed:
                self.fail("LIVE", "closed-at-last-unref",
                          f"{self.st.ctx_name(c)} is still open after its IOThread's join "
                          "dropped its last reference")

    # -- oracles ---------------------------------------------------------------------------
    def _pool_checks(self) -> None:
        """Controlled runs, after teardown closed every context: each pool's shutdown and
        its counts against its workers (structure_violations skips closed contexts)."""
        if self.wait is not None:
            return
        from aioctx_verify.properties import STRUCTURE_PROPERTY, pool_violations

        for ctx in self.ctxs.values():
            pool = ctx._pool
            if pool is None or not ctx.closed:
                continue
            for v in pool_violations(pool):
                rule, _, what = v.partition(": ")
                self.fail(STRUCTURE_PROPERTY[rule], rule, what)

    def _publication_checks(self) -> None:
        """c11 runs: each BH's last run read what every script published before its last
        consumed qemu_bh_schedule of it (:mod:`._publish`)."""
        pub = self.pub
        if pub is None:
            return
        last_run = {j: self._last("br", j) for j in self.bhs}
        last_cancel = {j: max(self._last("cx", j), self._last("pd", j)) for j in self.bhs}
        # An RMW reads the newest write of the flag (a load might read a stale one); writing
        # True over True or False over False changes nothing.
        pending = {
            j: bool(bh.scheduled.compare_exchange(True, True)) for j, bh in self.bhs.items()
        }
        for j, k, n, got in pub.violations(last_run, last_cancel, pending):
            self.fail(
                "P2", "schedule-publishes",
                f"bh{j}'s last run read {got} from what T{k} published before its schedule "
                f"#{n} of it, which that run (or an earlier one) consumed: the schedule does "
                "not happen-before the callback it caused",
            )

    def _final_checks(self) -> None:
        st = self.st
        self._publication_checks()
        if self.wait is None:  # controlled: nothing runs now, the structures are at rest
            from aioctx_verify.properties import STRUCTURE_PROPERTY, structure_violations

            for ctx in self.ctxs.values():
                if ctx.closed:
                    continue
                for v in structure_violations(ctx):
                    rule, _, what = v.partition(": ")
                    self.fail(STRUCTURE_PROPERTY[rule], rule, what)
        for j in self.bhs:
            spec = st.bhs[j]
            runs, scheds = self._n("br", j), self._n("bs", j)
            if runs > scheds:
                self.fail("P2", "no-spurious-run", f"bh{j} ran {runs} times for {scheds} schedules")
            pd = self._last("pd", j)
            if pd >= 0 and spec.behavior != "selfdel" and self._last("br", j) > pd:
                self.fail("P2", "deleted-never-runs", f"bh{j} ran after qemu_bh_delete")
            if self._bh_owed(j):
                self.fail(
                    "P2", "not-lost",
                    f"bh{j} ({st.ctx_name(spec.ctx)}) was scheduled after its last cancel "
                    "and never ran afterwards, though its context's loop ran to the end",
                )
        for i, c in enumerate(self.oneshot_ctx):
            n = self._n("or", i)
            if n != 1:
                self.fail("P2", "oneshot-exactly-once",
                          f"oneshot{i} ({st.ctx_name(c)}) ran {n} times")
        for x in range(len(self.x_tid)):
            n = self._n("xr", x)
            if n != 1:
                self.fail("P2", "oneshot-exactly-once",
                          f"the one-shot of started IOThread x{x} ran {n} times")
        for t in self.timers:
            runs, mods = self._n("tr", t), self._n("tb", t)
            if runs > mods:
                self.fail("P2", "no-spurious-run", f"timer{t} fired {runs} times for {mods} mods")
        for name in self._owed(False, bhs=False) + self._owed(True, bhs=False):
            self.fail("LIVE", "served", f"{name} was owed a callback at the end")
        for rid, req in self.req_obj.items():
            done, ran = self._n("rc", rid), self._n("rf", rid)
            ret = self.req_ret.get(rid)
            if done != 1:
                self.fail("LIVE", "request-completes-once", f"request{rid} completed {done} times")
            elif req.cancelled:
                if ret != -errno.ECANCELED or ran:
                    self.fail("LIVE", "cancelled-request",
                              f"cancelled request{rid}: ret {ret}, its function ran {ran} times")
            elif ret != rid + 1000 or ran != 1:
                self.fail("LIVE", "request-result",
                          f"request{rid}: ret {ret}, its function ran {ran} times")
        for r in self.dp_reqs:
            if r.completions != 1 or self._n("kc", r.id) != 1 or r.ret != len(r.data):
                self.fail("LIVE", "dataplane-request-once",
                          f"dataplane request{r.id} completed {r.completions} times "
                          f"(collected {self._n('kc', r.id)}), ret {r.ret}")
        done = sum(r.completions for r in self.dp_reqs)
        if self.dev is not None and (self.dev.completed, self.dev.inflight) != (done, 0):
            # the device's own counters against the requests it completed
            self.fail("LIVE", "dataplane-request-once",
                      f"the device counts {self.dev.completed} completed and "
                      f"{self.dev.inflight} in flight; its requests were completed "
                      f"{done} times")
        for it in [*self.its.values(), *self.x_its]:
            for e in it.errors[:2]:
                self.fail(classify(e), "iothread-error",
                          f"{it.name} recorded {type(e).__name__}: {e}")
            if it.is_alive():
                self.fail("LIVE", "iothreads-joined", f"{it.name} is still running")
            if it.start_waited_out and self.wait is None:  # virtual time only: on real
                # threads a start that takes the whole safety net is a slow machine, not proof
                self.fail("LIVE", "iothread-start-prompt",
                          f"{it.name}'s start waited out its deadline though the thread was "
                          "running (its start was never announced: a missed wake-up)")
        left = live_iothreads(self.p)
        if left:
            self.fail("LIVE", "iothreads-joined",
                      "IOThreads not joined: " + ", ".join(i.name for i in left))

    def check(self) -> None:
        """Raise the first finding as an :class:`OracleFailure`."""
        if self.findings:
            f = self.findings[0]
            more = f" (+{len(self.findings) - 1} more)" if len(self.findings) > 1 else ""
            raise OracleFailure(f.prop, f.rule, f.message + more)


def generated_program(
    prog: GenProgram, memory: str = "sc", raised: list[BaseException] | None = None
) -> Program:
    """``prog`` as a controlled-platform :class:`Program` (monitors on).

    With ``raised``, each run first empties it, then keeps there the first exception that
    left a thread of the program (the run's failure when it failed by one).
    """
    holder: list[BaseException] = raised if raised is not None else []

    def fn(p: ControlledPlatform) -> None:
        holder.clear()
        run = ProgramRun(p, prog, wait=None, raised=holder)
        try:
            run.main()
            run.check()
        except Exception as e:
            run.keep(e)
            raise

    return Program(
        prog.name, fn, "safe", memory, description=prog.spec, max_steps=MAX_STEPS
    )
