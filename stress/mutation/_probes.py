"""Probe programs for the kill matrix: small clients of impl that exercise one protocol each.

Every probe is written once against :class:`Env` and runs two ways:

* on the controlled platform (``Env(p)``, waits unbounded): a hang is the scheduler's
  deadlock / lost-wake-up verdict, with every thread's position;
* on real threads (``Env(p, limit=...)``): every wait is bounded, a wait that runs out is a
  ``LIVE`` failure, and a watchdog unsticks whatever the probe left behind.

A probe's own outcome checks raise :class:`ProbeFailure`, which carries the property it
checks (``P1``/``P2``/``P3``/``LIVE``), next to the runtime monitors that watch impl's
trace events.  On the unmutated impl every probe passes under every schedule: the
false-alarm pass of :mod:`aioctx_verify.stress.mutation._matrix` checks exactly that.

Prior art: jcstress's small actor tests with graded outcomes; QEMU's
tests/test-aio-multithread.c (cross-thread BH ping-pong) and test-rfifolock.c.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from aioctx_verify import impl
from aioctx_verify.impl import (
    AioContext,
    EventNotifier,
    Fence,
    IOThread,
    IOThreadStateError,
    NotOwnerError,
    Ordering,
    Platform,
)
from aioctx_verify.impl._platform import POLLIN, Poller, ThreadHandle
from aioctx_verify.vocab import PropertyName

from ..controlled import ControlledPlatform
from ..explore import Program
from ._catalogue import poison
from ._contract import Inconclusive, PropertyFailure
from ._evidence import stuck_evidence

__all__ = ["PROBES", "Env", "Latch", "Probe", "ProbeFailure", "probe_program"]

#: Idle check: the probe yields this often and an idle IOThread may iterate at most
#: ``_IDLE_ITERATIONS`` times meanwhile (a late wake-up or two; a spinning loop does more).
_IDLE_YIELDS = 200
_IDLE_ITERATIONS = 4


class ProbeFailure(PropertyFailure):
    """A probe's outcome check failed; ``prop`` is the property it checks (the message
    starts with it too, for people)."""

    def __init__(self, prop: PropertyName, message: str) -> None:
        super().__init__(prop, f"{prop} {message}")


class Env:
    """What a probe needs besides the platform: waits, threads, IOThreads, checks.

    Args:
        p: the platform (controlled or real).
        limit: ``None`` on the controlled platform (waits are unbounded; a hang is reported
            by the scheduler); on real threads, the bound of every wait in seconds.
        raised: where the first exception to leave a probe thread (the main one or one
            :meth:`spawn` started) is kept: on the controlled platform that exception is
            the run's failure, and the kill matrix reads its property off it.
    """

    def __init__(
        self, p: Platform, limit: float | None = None, raised: list[BaseException] | None = None
    ) -> None:
        self.p = p
        self.limit = limit
        self.raised = raised
        self.real = limit is not None
        self.aborted = False
        self.iothreads: list[IOThread] = []
        self.contexts: list[AioContext] = []
        self.threads: list[tuple[ThreadHandle, str]] = []
        self.errors: list[BaseException] = []
        self.watchdog_fired = False
        self._watchdog: threading.Timer | None = None

    # -- checks ----------------------------------------------------------------------------
    @staticmethod
    def check(ok: bool, prop: PropertyName, message: str) -> None:
        """Raise :class:`ProbeFailure` for ``prop`` unless ``ok``."""
        if not ok:
            raise ProbeFailure(prop, message)

    def _timeout(
        self, what: str, prop: PropertyName = "LIVE", kind: str = "lost wake-up"
    ) -> Exception:
        """A real-thread wait for ``what`` ran out: a LIVE :class:`ProbeFailure` if the
        system is seen stuck (:func:`stuck_evidence`), else :class:`Inconclusive` (the
        machine may just be slow; an expired wait alone proves nothing)."""
        evidence = None if self.aborted else stuck_evidence(self.iothreads, self.contexts)
        if evidence is not None:
            return ProbeFailure(prop, f"{kind}: {what} did not happen: {evidence}")
        return Inconclusive(
            f"{what} did not happen within {self.limit} s and nothing was seen stuck: "
            "inconclusive (machine too slow?)"
        )

    def keep(self, e: BaseException) -> None:
        """Keep ``e`` in :attr:`raised` if it is the first exception to leave a thread."""
        if self.raised is not None and not self.raised:
            self.raised.append(e)

    # -- threads ---------------------------------------------------------------------------
    def iothread(self, name: str) -> IOThread:
        it = IOThread(self.p, name=name)
        self.iothreads.append(it)
        self.contexts.append(it.ctx)
        self._watch(it.ctx)
        try:
            return it.start()
        except IOThreadStateError:
            if isinstance(self.p, ControlledPlatform):
                raise  # virtual time: the thread never announced itself
            # Real threads: a start that outlived its safety net proves nothing by itself.
            raise self._timeout(f"IOThread {name}'s start") from None

    def context(self, name: str) -> AioContext:
        """A context whose home is the calling thread."""
        ctx = AioContext(self.p, name=name)
        self.contexts.append(ctx)
        self._watch(ctx)
        return ctx

    def _watch(self, ctx: AioContext) -> None:
        """A controlled run's state oracle checks ``ctx`` while the probe runs."""
        watch = getattr(self.p, "watch_state", None)
        if watch is not None:
            watch(ctx)

    def spawn(self, fn: Callable[[], None], name: str) -> None:
        """Start a thread.  On real threads its exception is kept and re-raised by
        :meth:`join_all`; on the controlled platform it fails the run at once."""

        def target() -> None:
            try:
                fn()
            except BaseException as e:
                self.keep(e)
                if not self.real:
                    raise
                self.errors.append(e)

        self.threads.append((self.p.start_thread(target, name), name))

    def join_all(self) -> None:
        for handle, name in self.threads:
            handle.join(self.limit)
            if handle.is_alive():
                raise self._timeout(f"thread {name} finishing")
        self.threads = []
        if self.errors:
            raise self.errors[0]

    def stop(self, it: IOThread) -> None:
        """Join ``it`` (its stop BH must wake it) and raise what its callbacks raised."""
        try:
            it.join(self.limit)
        except TimeoutError:
            raise self._timeout(f"IOThread {it.name} stopping") from None
        it.check()

    # -- synchronisation -------------------------------------------------------------------
    def latch(self, count: int, what: str) -> Latch:
        return Latch(self, count, what)

    @contextmanager
    def acquire(self, ctx: AioContext) -> Iterator[AioContext]:
        """``aio_context_acquire`` / ``release`` (bounded on real threads)."""
        if not ctx.acquire(self.limit):
            raise self._timeout(f"the grant of {ctx.name}", "P1", "starvation")
        try:
            yield ctx
        except BaseException:
            # Keep the body's failure: a release error (the lock's state is what failed)
            # would otherwise replace it.
            with suppress(impl.AioCtxError):
                ctx.release()
            raise
        ctx.release()

    def poll(self, poller: Poller, what: str) -> None:
        """Block in ``poller`` until an fd is ready (a bounded wait on real threads)."""
        if self.limit is None:
            poller.poll(-1)
        elif not poller.poll(int(self.limit * 1e9)) and not self.aborted:
            raise self._timeout(what)

    def idle_check(self, its: list[IOThread]) -> None:
        """No permanent busy loop: with nothing to do, an IOThread must go to sleep."""
        before = [it.iterations for it in its]
        if self.real:
            time.sleep(0.05)
            allowed = 50
        else:
            for _ in range(_IDLE_YIELDS):
                self.p.yield_now()
            allowed = _IDLE_ITERATIONS
        for it, n in zip(its, before, strict=True):
            spins = it.iterations - n
            self.check(
                spins <= allowed,
                "LIVE", f"busy loop: idle IOThread {it.name} ran {spins} aio_poll iterations with "
                "nothing to do (its notifier stays set while `notified` is clear)",
            )

    # -- real threads: unstick what a failed run left behind -------------------------------
    def start_watchdog(self, seconds: float) -> None:
        """Real threads: after ``seconds``, abort the probe and kick every context it made
        (a wait nothing bounds, such as a blocking ``aio_poll``, then returns)."""
        timer = threading.Timer(seconds, self._fire)
        timer.daemon = True
        self._watchdog = timer
        timer.start()

    def _fire(self) -> None:
        self.watchdog_fired = True
        self._kick_all()

    def _kick_all(self) -> None:
        self.aborted = True
        for ctx in list(self.contexts):
            with suppress(impl.AioCtxError, OSError):
                if not ctx.closed:
                    ctx._raw_notifier.set()

    def close(self) -> None:
        """After a real-thread run (mutant removed): wake and stop everything, bounded."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._kick_all()
        for it in self.iothreads:
            if it._joined or it._thread is None:
                continue
            it._stopping = True
            with suppress(TimeoutError, impl.AioCtxError, OSError):
                it.ctx._raw_notifier.set()
                it.join(1.0)
        for handle, _ in self.threads:
            handle.join(0.2)


class Latch:
    """Count down to zero; :meth:`wait` blocks until then (bounded on real threads)."""

    def __init__(self, env: Env, count: int, what: str) -> None:
        self._env = env
        self._m = env.p.mutex(f"latch:{what}")
        self._c = env.p.condition(self._m)
        self.count = count
        self.what = what

    def count_down(self) -> None:
        with self._m:
            self.count -= 1
            if self.count <= 0:
                self._c.notify_all()

    def wait(self) -> None:
        env = self._env
        with self._m:
            if env.limit is None:
                while self.count > 0:
                    self._c.wait()
                return
            deadline = time.monotonic() + env.limit
            while self.count > 0 and not env.aborted:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise env._timeout(self.what)
                self._c.wait(left)


def _zero(_arg: object) -> int:
    return 0


# ----------------------------------------------------------------------------------------
# The probes
# ----------------------------------------------------------------------------------------
def bh_ping(env: Env) -> None:
    """Two BHs scheduled from another thread into a sleeping IOThread; then an idle check
    (no busy loop) and a stop (the stop BH must wake it)."""
    it = env.iothread("io")
    done = env.latch(2, "two BHs scheduled from another thread running in the IOThread")
    bh1 = it.ctx.bh_new(lambda _: done.count_down())
    bh2 = it.ctx.bh_new(lambda _: done.count_down())

    def producer() -> None:
        bh1.schedule()
        bh2.schedule()

    env.spawn(producer, "producer")
    done.wait()
    env.join_all()
    env.idle_check([it])
    env.stop(it)


def bh_wake(env: Env) -> None:
    """One BH scheduled from another thread into each of three sleeping IOThreads: each must
    wake and run it (the sleeper's ``notify_me`` and the waker's ``scheduled`` form a
    store-buffer pair: explored under TSO, each IOThread is one more chance per schedule)."""
    its = [env.iothread(f"io{i}") for i in range(3)]
    done = env.latch(len(its), "BHs scheduled from another thread running in their IOThreads")
    bhs = [it.ctx.bh_new(lambda _: done.count_down()) for it in its]

    def producer() -> None:
        for bh in bhs:
            bh.schedule()

    env.spawn(producer, "producer")
    done.wait()
    env.join_all()
    for it in its:
        env.stop(it)


def gsource_vcpu(env: Env) -> None:
    """QEMU 2.4's two waiters on one context (the setting of 0ceb849bd / 21a03d17f2).

    This thread is the main loop, driving the context as glib drove its GSource:
    ``aio_ctx_prepare`` (``notify_me |= 1``, full barrier, compute the timeout), ``g_poll``
    on the context's notifier *without* the context lock, ``aio_ctx_check`` (clear the bit,
    ``aio_notify_accept``), then dispatch under the lock.  A vCPU thread holds the context
    and waits for its request in ``aio_poll(ctx, true)``; a worker completes the vCPU's
    request and then schedules a BH for the main loop.  That BH must run: the worker waits
    for it before telling the main loop (through a notifier of its own) to quit.
    """
    _two_waiters(env, chain=False)


def gsource_vcpu_chain(env: Env) -> None:
    """As :func:`gsource_vcpu`, but the vCPU's completion callback itself schedules the main
    loop's BH, from inside the vCPU's ``aio_poll``: after its walk passed that BH and before
    the poll returns (the model's counterexample for 0ceb849bd and 21a03d17f2)."""
    _two_waiters(env, chain=True)


def _two_waiters(env: Env, *, chain: bool) -> None:
    p = env.p
    ctx = env.context("qemu_aio_context")
    runs = {"vcpu": 0, "main": 0}
    main_ran = env.latch(1, "the main loop's BH running")

    def vcpu_done(_: object) -> None:
        runs["vcpu"] += 1
        if chain:
            bh_main.schedule()

    def main_bh(_: object) -> None:
        runs["main"] += 1
        main_ran.count_down()

    bh_vcpu = ctx.bh_new(vcpu_done)
    bh_main = ctx.bh_new(main_bh)  # newer: walked before bh_vcpu
    quit_n = EventNotifier(p)
    stop = [False]

    def vcpu() -> None:
        with env.acquire(ctx):
            while not runs["vcpu"] and not env.aborted:
                ctx.aio_poll(True)

    def worker() -> None:
        bh_vcpu.schedule()
        if not chain:
            bh_main.schedule()
        main_ran.wait()
        stop[0] = True
        quit_n.set()

    env.spawn(vcpu, "vcpu")
    env.spawn(worker, "worker")
    poller = p.poller()
    poller.register(ctx.notifier.fd, POLLIN)
    poller.register(quit_n.fd, POLLIN)
    while not stop[0] and not env.aborted:
        ctx.notify_me.fetch_add(1)  # aio_ctx_prepare: atomic_or(&ctx->notify_me, 1)
        p.fence(Fence.MB)
        if ctx._compute_timeout() != 0:
            env.poll(poller, "the main loop's wake-up for its BH")
        ctx.notify_me.fetch_add(-1)  # aio_ctx_check: atomic_and(&ctx->notify_me, ~1)
        ctx.aio_notify_accept()
        with env.acquire(ctx):  # aio_ctx_dispatch
            ctx.aio_poll(False)
    env.join_all()
    poller.unregister(ctx.notifier.fd)
    poller.unregister(quit_n.fd)
    quit_n.cleanup()
    env.check(runs == {"vcpu": 1, "main": 1}, "P2", f"exactly-once: BH runs were {runs}")
    ctx.unref()


def bh_uaf(env: Env) -> None:
    """A BH whose callback frees it (deletes it and poisons ``bh.ctx``), scheduled from
    another thread while the IOThread is awake for an earlier BH."""
    it = env.iothread("io")
    done = env.latch(1, "a self-freeing BH running")
    victim = it.ctx.bh_new(lambda _: None)

    def free_self(_: object) -> None:
        victim.delete()
        poison(victim, "ctx", f"BH {victim.id} (freed by its own callback)")
        done.count_down()

    victim.cb = free_self
    busy = it.ctx.bh_new(lambda _: None)

    def producer() -> None:
        busy.schedule()
        victim.schedule()

    env.spawn(producer, "producer")
    done.wait()
    env.join_all()
    env.stop(it)


def bh_data(env: Env) -> None:
    """Data written before a schedule is seen by the run that schedule causes or joins."""
    p = env.p
    it = env.iothread("io")
    data = p.atomic(0, "data")
    seen: list[int] = []
    bh = it.ctx.bh_new(lambda _: seen.append(data.load(Ordering.RELAXED)))

    def producer() -> None:
        for i in (1, 2):
            data.store(i, Ordering.RELAXED)
            bh.schedule()

    env.spawn(producer, "producer")
    env.join_all()
    env.stop(it)
    env.check(
        bool(seen) and seen[-1] == 2,
        "P2", f"not-lost: the last run saw data {seen[-1] if seen else None} although data=2 "
        "was written before a schedule that coalesced into it",
    )


def bh_resched_during_run(env: Env) -> None:
    """A BH scheduled again while its callback runs must run again (P2 not-lost)."""
    it = env.iothread("io")
    runs = [0]
    started = env.latch(1, "the BH's first run starting")
    again = env.latch(1, "the producer rescheduling the running BH")

    def cb(_: object) -> None:
        runs[0] += 1
        if runs[0] == 1:
            started.count_down()
            again.wait()

    bh = it.ctx.bh_new(cb)

    def producer() -> None:
        bh.schedule()
        started.wait()
        bh.schedule()
        again.count_down()

    env.spawn(producer, "producer")
    env.join_all()
    env.stop(it)
    env.check(
        runs[0] == 2,
        "P2", f"not-lost: a BH scheduled again while its callback ran ran {runs[0]} time(s), not 2",
    )


def self_resched(env: Env) -> None:
    """A BH that reschedules itself runs again, once per iteration, until it stops."""
    it = env.iothread("io")
    done = env.latch(1, "a self-rescheduling BH's third run")
    runs = [0]

    def cb(_: object) -> None:
        runs[0] += 1
        if runs[0] < 3:
            bh.schedule()
        else:
            done.count_down()

    bh = it.ctx.bh_new(cb)
    bh.schedule()
    done.wait()
    env.stop(it)


def delete_nested(env: Env) -> None:
    """Deleted BHs (one scheduled first) never run, and a callback that deletes a BH and
    runs a nested ``aio_poll`` does not pull it from under the outer walk."""
    ctx = env.context("ctx")
    ran: list[str] = []
    gone = ctx.bh_new(lambda _: ran.append("gone"))
    gone.schedule()
    gone.delete()
    victim = ctx.bh_new(lambda _: ran.append("victim"))

    def nested(_: object) -> None:
        ran.append("nested")
        victim.delete()
        ctx.aio_poll(False)

    outer = ctx.bh_new(nested)  # newest: walked first
    victim.schedule()
    outer.schedule()
    ctx.aio_poll(False)
    env.check(ran == ["nested"], "P2", f"deleted-never-runs: the BHs that ran were {ran}")
    ctx.unref()


def acquire_storm(env: Env) -> None:
    """Two threads take an IOThread's context twice each, nested two deep, while the
    IOThread sleeps in ``aio_poll``; one-shot BHs scheduled under the lock run after it."""
    p = env.p
    it = env.iothread("io")
    ctx = it.ctx
    inside = [0]
    ticks = env.latch(4, "BHs scheduled under the context lock running after its release")

    def tick(_: object) -> None:
        ticks.count_down()
        env.check(inside[0] == 0, "P3", "a BH ran while another thread held the context")

    def client() -> None:
        for _ in range(2):
            with env.acquire(ctx):
                with env.acquire(ctx):
                    inside[0] += 1
                    env.check(inside[0] == 1, "P1", "two threads inside the context at once")
                    ctx.bh_schedule_oneshot(tick)
                    p.yield_now()
                    inside[0] -= 1
                env.check(
                    ctx.held_by_me(),
                    "P1", "depth counts balance: a nested release (depth 2 -> 1) gave the "
                    "context away",
                )

    env.spawn(client, "client-a")
    env.spawn(client, "client-b")
    env.join_all()
    ticks.wait()
    env.stop(it)


def kick_race(env: Env) -> None:
    """Acquire IOThread contexts while each IOThread is awake (a one-shot BH was just
    scheduled): an acquirer that arrives while the IOThread holds its context between two
    polls must still get it (the contention kick has to survive until the next poll)."""
    its = [env.iothread(f"io{i}") for i in range(3)]

    def client(ctx: AioContext) -> Callable[[], None]:
        def run() -> None:
            for _ in range(2):
                with env.acquire(ctx):
                    pass

        return run

    for it in its:
        it.ctx.bh_schedule_oneshot(_nothing)
    for it in its:
        env.spawn(client(it.ctx), f"client-{it.name}")
    env.join_all()
    for it in its:
        env.stop(it)


def _nothing(_: object) -> None:
    pass


def non_owner_release(env: Env) -> None:
    """A thread that does not hold a context tries to release it: refused."""
    ctx = env.context("ctx")
    held = env.latch(1, "the holder taking the context")
    go = env.latch(1, "the intruder's attempt")

    def holder() -> None:
        with env.acquire(ctx):
            held.count_down()
            go.wait()

    def intruder() -> None:
        held.wait()
        try:
            ctx.release()
        except NotOwnerError:
            pass
        else:
            raise ProbeFailure("P1", "release-by-owner: a release by a non-owner was accepted")
        finally:
            go.count_down()

    env.spawn(holder, "holder")
    env.spawn(intruder, "intruder")
    env.join_all()
    ctx.unref()


def stop_busy(env: Env) -> None:
    """Stop IOThreads while they are awake (a BH was just scheduled in each): the stop must
    wake each one wherever it is in its loop, and a BH scheduled before the stop must still
    run.  Three IOThreads: three chances per schedule to stop one inside its window."""
    its = [env.iothread(f"io{i}") for i in range(3)]
    ran = [0] * len(its)

    def cb(i: int) -> None:
        ran[i] += 1

    bhs = [it.ctx.bh_new(cb, i) for i, it in enumerate(its)]
    for bh in bhs:
        bh.schedule()
    for it in its:
        env.stop(it)
    env.check(
        ran == [1] * len(its),
        "P2", f"not-lost: BHs scheduled before IOThread.stop ran {ran} time(s), not once each",
    )


def stop_world(env: Env) -> None:
    """While the world is stopped no IOThread runs a callback; afterwards all of them run."""
    p = env.p
    its = [env.iothread(f"io{i}") for i in range(2)]
    stopped = [False]
    ran = env.latch(4, "every BH running once the world resumed")

    def cb(_: object) -> None:
        ran.count_down()
        env.check(not stopped[0], "P3", "a BH ran in an IOThread while the world was stopped")

    for it in its:
        it.ctx.bh_schedule_oneshot(cb)
    with impl.stop_the_world(its):
        stopped[0] = True
        for it in its:
            it.ctx.bh_schedule_oneshot(cb)
        for _ in range(3):
            p.yield_now()
        stopped[0] = False
    ran.wait()
    for it in its:
        env.stop(it)


def threadpool_nested(env: Env) -> None:
    """A completion callback waits in a nested ``aio_poll`` for another request."""
    it = env.iothread("io")
    ctx = it.ctx
    pool = ctx.thread_pool()
    done_b = [False]
    finished = env.latch(1, "a completion callback's nested wait for another request")

    def cb_b(_opaque: object, _ret: int) -> None:
        done_b[0] = True

    def cb_a(_opaque: object, _ret: int) -> None:
        while not done_b[0] and not env.aborted:
            ctx.aio_poll(True)
        finished.count_down()

    pool.submit(_zero, None, cb_a)
    pool.submit(_zero, None, cb_b)
    finished.wait()
    env.stop(it)


def external_enable(env: Env) -> None:
    """A guest kick that arrives while external handlers are disabled is handled once they
    are enabled again (aio_enable_external must wake the poller)."""
    p = env.p
    it = env.iothread("io")
    ctx = it.ctx
    n = EventNotifier(p)
    ran = env.latch(1, "an external handler running after aio_enable_external")

    def on_kick(notifier: EventNotifier) -> None:
        notifier.test_and_clear()
        ran.count_down()

    with env.acquire(ctx):
        ctx.set_event_notifier(n, on_kick, is_external=True)
        ctx.disable_external()
    p.yield_now()
    n.set()
    p.yield_now()
    ctx.enable_external()
    ran.wait()
    with env.acquire(ctx):
        ctx.set_event_notifier(n, None)
    n.cleanup()
    env.stop(it)


def helper_poll(env: Env) -> None:
    """A helper thread may not poll an IOThread's context unlocked (3c18a92dc4's fix:
    delegate); it polls it only while holding it."""
    it = env.iothread("io")
    ctx = it.ctx

    def helper() -> None:
        with suppress(NotOwnerError):
            ctx.aio_poll(False)
        with env.acquire(ctx):
            ctx.aio_poll(False)

    env.spawn(helper, "helper")
    env.join_all()
    env.stop(it)


def main_ctx_oneshot(env: Env) -> None:
    """A worker wakes the main loop with a one-shot BH; the main loop runs it."""
    ctx = env.context("main-loop")
    done = [False]

    def cb(_: object) -> None:
        done[0] = True

    env.spawn(lambda: ctx.bh_schedule_oneshot(cb), "worker")
    while not done[0] and not env.aborted:
        ctx.aio_poll(True)
    env.join_all()
    ctx.unref()


def fastpath_exclusion(env: Env) -> None:
    """Run untraced: ``with ctx:`` (and its nested fast path) excludes the IOThread's BHs
    and the other client."""
    p = env.p
    it = env.iothread("io")
    ctx = it.ctx
    inside = [0]
    ticks = [0]
    finished = env.latch(1, "a self-rescheduling BH's last run")

    def tick(_: object) -> None:
        ticks[0] += 1
        if ticks[0] < 6:
            ticker.schedule()
        else:
            finished.count_down()
        env.check(inside[0] == 0, "P3", "a BH ran while another thread was inside `with ctx`")

    ticker = ctx.bh_new(tick)
    ticker.schedule()

    def client() -> None:
        for _ in range(2):
            with ctx, ctx:
                inside[0] += 1
                env.check(inside[0] == 1, "P3", "two threads inside `with ctx` at once")
                p.yield_now()
                inside[0] -= 1

    env.spawn(client, "client-a")
    env.spawn(client, "client-b")
    env.join_all()
    finished.wait()
    env.stop(it)


@dataclass(frozen=True)
class Probe:
    """A probe: its body, the memory model it is explored under, and whether monitors run."""

    name: str
    body: Callable[[Env], None]
    memory: str = "sc"
    monitors: bool = True

    @property
    def description(self) -> str:
        doc = self.body.__doc__ or ""
        return " ".join(doc.split())


PROBES: dict[str, Probe] = {
    p.name: p
    for p in (
        Probe("bh_ping", bh_ping),
        Probe("bh_ping_tso", bh_ping, "tso"),
        Probe("bh_wake_tso", bh_wake, "tso"),
        Probe("gsource_vcpu", gsource_vcpu),
        Probe("gsource_vcpu_chain", gsource_vcpu_chain),
        Probe("bh_uaf", bh_uaf),
        # Monitors off: P2's no-spurious-run rule flags the correct impl here (a schedule that
        # begins before a run and flips the flag after it causes a legitimate second run;
        # the monitor forgets it at run_begin).  The probe's own check is this probe's P2.
        Probe("bh_data_tso", bh_data, "tso", monitors=False),
        # The same three where loads may read stale writes (c11): the reading side's
        # ordering (acquire claims, smp_rmb, the poller's smp_mb) becomes visible.
        Probe("bh_ping_c11", bh_ping, "c11"),
        Probe("bh_wake_c11", bh_wake, "c11"),
        Probe("bh_data_c11", bh_data, "c11", monitors=False),
        Probe("bh_resched_during_run", bh_resched_during_run),
        Probe("self_resched", self_resched),
        Probe("delete_nested", delete_nested),
        Probe("acquire_storm", acquire_storm),
        Probe("kick_race", kick_race),
        Probe("non_owner_release", non_owner_release),
        Probe("stop_busy", stop_busy),
        Probe("stop_world", stop_world),
        Probe("threadpool_nested", threadpool_nested),
        Probe("external_enable", external_enable),
        Probe("helper_poll", helper_poll),
        Probe("main_ctx_oneshot", main_ctx_oneshot),
        Probe("fastpath_exclusion", fastpath_exclusion, monitors=False),
    )
}


def probe_program(probe: Probe, raised: list[BaseException] | None = None) -> Program:
    """The probe as a controlled-platform :class:`Program` (unbounded waits).

    With ``raised``, each run first empties it, then keeps there the first exception that
    leaves a probe thread (see :class:`Env`).
    """

    def fn(p: ControlledPlatform) -> None:
        if raised is not None:
            raised.clear()
        env = Env(p, raised=raised)
        try:
            probe.body(env)
        except BaseException as e:
            env.keep(e)
            raise

    return Program(
        probe.name,
        fn,
        expected="safe",
        memory=probe.memory,
        description=probe.description,
        monitors=probe.monitors,
    )
