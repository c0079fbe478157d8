"""One run of a generated program: setup, scripts, main loop, teardown, oracles.

A program (:mod:`~aioctx_verify.stress.explore._gen_ops`) runs as thread 0: setup (the
main context, whose home is thread 0, IOThreads, BHs, timers, notifiers with their
handlers, optionally a dataplane device with its VM state), the other scripts start,
thread 0 runs its own script and then the main loop (``aio_poll(main, true)`` until every
script announced its end with a one-shot BH), joins the scripts, restores the clocks, the
VM and the dataplane, waits until every owed callback was served (the IOThreads' work on
a condition every callback signals, with two flushing one-shots per IOThread for their
BHs; the main context's by polling it), checks that idle IOThreads sleep, removes the
handlers, frees timers and notifiers, joins the IOThreads and checks the oracles.

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
  exactly once, an idle IOThread sleeps, the program ends with every IOThread joined.  On
  the controlled platform the waits are unbounded, so a lost wake-up is the scheduler's
  ``lost_wakeup`` verdict; on real threads every wait is bounded.
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
    ThreadPoolRequest,
    VMState,
    live_iothreads,
    qemu,
)
from aioctx_verify.vocab import PROPERTY_NAMES, PropertyName

from ..controlled import ControlledPlatform
from ._explore import Program
from ._gen_ops import GenProgram, Op, OpKind

__all__ = ["MAX_STEPS", "Finding", "OracleFailure", "ProgramRun", "classify", "generated_program"]

#: Step budget of one controlled run (a generated program needs a few thousand).
MAX_STEPS = 80_000
#: Data sizes of dataplane requests (their ``ret``).
_DP_SIZES = (1, 2, 3, 4)
#: The idle check (controlled runs): thread 0 yields this often, and an idle IOThread may
#: iterate at most this many times meanwhile (a late kick or two; a spinning loop does more).
_IDLE_YIELDS = 200
_IDLE_ITERATIONS = 4


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
    matrix's USAGE_ERRORS, which this room cannot import); a callback error is read
    through."""
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
        ):
            if isinstance(e, kind):
                return p  # type: ignore[return-value]
        e = e.exception if isinstance(e, CallbackError) else None
    return None


# ------------------------------------------------------------------------------------------
# One run of a program
# ------------------------------------------------------------------------------------------
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
    def _schedule(self, j: int, idle: bool = False) -> None:
        begin = self._log("bs", j)
        bh = self.bhs[j]
        if idle:
            qemu.qemu_bh_schedule_idle(bh)
        elif j % 2:
            qemu.qemu_bh_schedule(bh)
        else:
            bh.schedule()
        with self._lock:
            self.done_begin[j] = max(self.done_begin.get(j, -1), begin)

    def _cancel(self, j: int) -> None:
        qemu.qemu_bh_cancel(self.bhs[j])
        # Order the relaxed store before whatever follows (the monitor's rule too).
        self.p.fence(Fence.MB)
        self._log("cx", j)

    def _arm(self, t: int, d: int) -> None:
        spec = self.st.timers[t]
        tm = self.timers[t]
        now = qemu.qemu_clock_get_ns(spec.clock, self.p)
        self._log("tb", t)
        if d % 2:
            qemu.timer_mod_ns(tm, now + d * SCALE_MS)
        else:
            qemu.timer_mod(tm, (now + d * SCALE_MS) // spec.scale)

    def _register(self, j: int) -> None:
        spec = self.st.notifiers[j]
        ctx = self.ctxs[spec.ctx]
        n = self.notifiers[j]
        if spec.fd:
            qemu.aio_set_fd_handler(ctx, n.fd, self._fd_read, None, j, is_external=spec.external)
        else:
            qemu.aio_set_event_notifier(ctx, n, self._en_handler(j), is_external=spec.external)
        self.registered[j] = True
        self._log("ha", j)

    def _unregister(self, j: int) -> None:
        spec = self.st.notifiers[j]
        ctx = self.ctxs[spec.ctx]
        n = self.notifiers[j]
        if spec.fd:
            ctx.set_fd_handler(n.fd, None, None)
        else:
            ctx.set_event_notifier(n, None)
        self.registered[j] = False
        self._log("hd", j)

    def _submit(self, c: int, drain: bool = False) -> int:
        with self._lock:
            rid = len(self.req_ctx)
            self.req_ctx.append(c)
            self.req_drain.append(drain)
        pool = qemu.aio_get_thread_pool(self.ctxs[c])
        self._log("rs", rid)
        req = qemu.thread_pool_submit_aio(pool, self._pool_fn, rid, self._pool_done, rid)
        self.req_obj[rid] = req
        self.last_req[(self._me(), c)] = rid
        return rid

    # -- callbacks -------------------------------------------------------------------------
    def _bh_cb(self, j: int) -> None:
        with self._callback():
            self._bh_run(j)

    def _bh_run(self, j: int) -> None:
        spec = self.st.bhs[j]
        c = spec.ctx
        self._in_ctx(c, f"bh{j}")
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
    def _setup(self) -> None:
        p, st = self.p, self.st
        used = self.prog.used()
        main = AioContext(p, name="main")
        self.ctxs[st.main] = main
        self.home[st.main] = self.t0
        for c in sorted(used.ctxs - {st.main}):
            it = IOThread(p, name=f"io{c}").start()
            assert it.thread_id is not None
            self.its[c] = it
            self.ctxs[c] = it.ctx
            self.home[c] = it.thread_id
        for j in sorted(used.bhs):
            self.bhs[j] = qemu.aio_bh_new(self.ctxs[st.bhs[j].ctx], self._bh_cb, j)
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

    @contextlib.contextmanager
    def _acquired(self, c: int) -> Iterator[None]:
        """Thread 0 holds ``c`` for the block (the main context: its home, no acquire)."""
        if c == self.st.main:
            yield
            return
        ctx = self.ctxs[c]
        if not ctx.acquire(self.wait):
            raise TimeoutError(f"thread 0 could not acquire {ctx.name} within {self.wait} s")
        try:
            with self._holding([c]):
                yield
        finally:
            ctx.release()

    # -- scripts ---------------------------------------------------------------------------
    def _worker(self, k: int) -> Callable[[], None]:
        def run() -> None:
            self.names[self._me()] = f"T{k}"
            try:
                self._script(self.prog.scripts[k])
            except Exception as e:
                self.keep(e)
                if self.wait is None:
                    raise
                self.fail(classify(e), "script-raised", f"T{k} raised {type(e).__name__}: {e}")
            qemu.aio_bh_schedule_oneshot(self.ctxs[self.st.main], self._done_cb, None)

        return run

    def _script(self, ops: tuple[Op, ...]) -> None:
        for op in ops:
            self._do(op)

    def _do(self, op: Op) -> None:
        k, a, b = op.kind, op.a, op.b
        p = self.p
        if k in (OpKind.SCHED, OpKind.PSCHED):
            self._schedule(a)
        elif k in (OpKind.IDLE, OpKind.PIDLE):
            self._schedule(a, idle=True)
        elif k in (OpKind.CANCEL, OpKind.PCANCEL):
            self._cancel(a)
        elif k is OpKind.ONESHOT:
            with self._lock:
                i = len(self.oneshot_ctx)
                self.oneshot_ctx.append(a)
            self._log("os", i)
            if i % 2:
                qemu.aio_bh_schedule_oneshot(self.ctxs[a], self._oneshot_cb, i)
            else:
                self.ctxs[a].bh_schedule_oneshot(self._oneshot_cb, i)
        elif k is OpKind.NSET:
            self._log("nb", a)
            self.notifiers[a].set()
        elif k is OpKind.TMOD:
            self._arm(a, b)
        elif k is OpKind.TDEL:
            qemu.timer_del(self.timers[a])
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
            qemu.qemu_clock_stop_virtual(p)
        elif k is OpKind.VSTART:
            qemu.qemu_clock_start_virtual(p)
        elif k is OpKind.VADV:
            qemu.qemu_clock_advance_virtual(b * SCALE_MS, p)
        elif k is OpKind.CLOCK:
            qemu.qemu_clock_enable(ClockType(a), bool(b), p)
        elif k is OpKind.EXT:
            ctx = self.ctxs[a]
            qemu.aio_disable_external(ctx)
            self._script(op.body)
            ctx.enable_external()
        elif k is OpKind.LOCK:
            self._locked(op)
        elif k is OpKind.STW:
            its = [self.its[c] for c in sorted(self.its)]
            stw = qemu.pause_all_iothreads if b else impl.stop_the_world
            with stw(its), self._holding(sorted(self.its)):
                self._script(op.body)
        elif k is OpKind.ITER:
            self._iothread_cycle()
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
        elif k is OpKind.HPOLL:
            qemu.aio_poll(self.ctxs[self.st.main], False)
        elif k is OpKind.POLL:
            self.ctxs[a].aio_poll(False)
        elif k is OpKind.HADD:
            self._register(a)
        elif k is OpKind.HDEL:
            self._unregister(a)
        elif k is OpKind.SUBMIT:
            self._submit(a, bool(b))
        elif k is OpKind.RCANCEL:
            last = self.last_req.get((self._me(), a))
            if last is not None:
                qemu.bdrv_aio_cancel_async(self.req_obj[last])
                self._log("rx", last)
        elif k is OpKind.SYNC:
            rid = self._submit(a)
            ctx = self.ctxs[a]
            while not self._n("rc", rid) and not self.aborted:
                ctx.aio_poll(True)
        elif k is OpKind.PDEL:
            self.bhs[a].delete()
            self._log("pd", a)
        else:  # pragma: no cover - every kind has a branch
            raise AssertionError(k)

    def _locked(self, op: Op) -> None:
        ctx = self.ctxs[op.a]
        if op.b == 0:
            with ctx, self._holding([op.a]):
                self._script(op.body)
        elif op.b == 1:
            qemu.aio_context_acquire(ctx)
            try:
                with self._holding([op.a]):
                    self._script(op.body)
            finally:
                qemu.aio_context_release(ctx)
        else:

            def body() -> None:
                with self._holding([op.a]):
                    self._script(op.body)

            impl.one_off(ctx, body)

    def _iothread_cycle(self) -> None:
        it = qemu.iothread_new(self.p)
        with self._lock:
            x = len(self.x_tid)
            self.x_tid.append(it.thread_id)
            self.x_its.append(it)
        self._log("xs", x)
        qemu.aio_bh_schedule_oneshot(qemu.iothread_get_aio_context(it), self._x_cb, x)
        it.join(self.wait)

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
                self.fail("LIVE", "no-deadlock", f"T{k} did not end within {self.wait} s")
                return
        self._restore()
        self._quiesce_iothreads()
        self._quiesce_main()
        # From here on a late callback (a BH flagged but owed nothing) only logs its run.
        self.closing = True
        if not self._wait_io(lambda: not self.busy, "callbacks under way not ending"):
            return
        if self.wait is None:
            self._idle_check()
        self._cleanup()
        self._join_iothreads()
        self._final_checks()
        main.unref()

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
        for t in self.timers:
            if mine(st.timers[t].ctx) and self._last("tb", t) > self._last("td", t) and (
                self._last("tr", t) < self._last("tb", t)
            ):
                out.append(f"timer{t}")
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
                        self.fail("LIVE", "served", f"{what} within {self.wait} s")
                        return False
                    self.cond.wait(min(left, 0.05))
            finally:
                self.waiting = False
        return not self.aborted

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
            if len(self.log) - before == 2 * len(self.its):
                return  # nothing ran but the flushes: what is owed stays owed

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
                self.fail("LIVE", "served", f"not served within {self.wait} s: "
                          + ", ".join(owed))
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

    def _join_iothreads(self) -> None:
        for _c, it in sorted(self.its.items()):
            try:
                if self.wait is None:
                    qemu.iothread_join(it)
                else:
                    it.join(self.wait)
            except TimeoutError as e:
                self.fail("LIVE", "iothreads-joined", str(e))

    # -- oracles ---------------------------------------------------------------------------
    def _final_checks(self) -> None:
        st = self.st
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
        for it in [*self.its.values(), *self.x_its]:
            for e in it.errors[:2]:
                self.fail(classify(e), "iothread-error",
                          f"{it.name} recorded {type(e).__name__}: {e}")
            if it.is_alive():
                self.fail("LIVE", "iothreads-joined", f"{it.name} is still running")
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
