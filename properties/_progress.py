"""LIVE, part 2: every part of the loop makes progress (the loop oracles).

:mod:`aioctx_verify.properties._liveness` states LIVE for the lock and the BH wake-up.
This module states it for every other thing a context promises to deliver, so that a lost
wake-up anywhere in the loop is a failure, not a quiet delay.  Same property (``LIVE``),
one rule id per part.

Statement.  For every context ``c``:

1. ``timer-runs``: a timer of ``c`` armed for deadline ``D`` on a clock that is enabled
   runs once its clock reads ``D``: an ``aio_poll(c)`` iteration that begins when the
   clock reads ``>= D`` runs it (unless it is re-armed or deleted meanwhile), and no
   poller of ``c`` sleeps while the clock passes ``D +`` :data:`TIMER_SLACK_NS`;
2. ``handler-dispatched``: an fd or event notifier that is ready (readable for a read
   handler, writable for a write handler) while its handler is registered in ``c`` (and,
   for an external handler, external handlers are enabled) is dispatched: by the iteration
   whose poll saw it ready, and no poller of ``c`` sleeps while it is ready;
3. ``request-completes``, ``request-once``, ``request-own-result``: every thread-pool
   request of ``c`` whose work finished (or that was cancelled while queued) completes,
   in ``c``'s next iteration, exactly once, with the return value its own work produced
   (``-ECANCELED`` if it was cancelled, and then its work never ran); a pool shut down
   (its context closed) drops what it holds;
4. ``kick-processed``: every guest kick of a started dataplane device served by ``c`` is
   processed (the device's handler takes the kicked request off the ring) in ``c``'s next
   iteration that may dispatch external handlers, unless the device is stopped first (its
   start re-kicks what is left on the ring, and that kick is an obligation too);
5. ``iothread-stops``: an IOThread asked to stop ends after at most one more iteration
   (the one that runs its stop BH) and never sleeps in ``aio_poll`` with its stop pending;
6. ``stw-resumes``: ``stop_the_world`` returns with every context it acquired released to
   the depth it had before, so every IOThread it paused can run again.

Each safety part (exactly once, own result, stop-the-world releases) is checked at the
event.  Each "eventually" part is decided without any wall clock, by:

* *progress*: an obligation of ``c`` due at event ``i`` is discharged by any iteration of
  ``c`` that begins after ``i`` and ends normally (in the correct impl the first such
  iteration discharges it); :data:`LOOP_BOUND` such iterations without its discharge are a
  violation.  An iteration that raised does not count; nor, for external handlers and
  dataplane kicks, one during which external handlers were (or may have been) disabled.
  This holds on real threads too: every due event is emitted after the effect that makes
  the obligation due, every discharge before or atomically with its effect.
* *virtual time* (controlled platform, with a :class:`PlatformView`): when every thread is
  blocked, i.e. just before the controlled platform advances virtual time or when no
  thread can move (:meth:`ProgressMonitor.quiescent`), a thread asleep in ``c``'s poll while
  an obligation of ``c`` is due, a ready fd of ``c`` is registered, or a timer of ``c`` is
  past its deadline is a lost wake-up: every such obligation was made due by a write that
  wakes the poller (``aio_notify``, a set notifier), and virtual time moves only when no
  thread can.
* *end of run* (:meth:`ProgressMonitor.finish` with ``terminal``: every thread ended or
  none can move): an IOThread asked to stop has stopped.

On real threads (no view) rules 1 and 2 and the virtual-time checks are off: they would
need a clock reading and an fd's readiness at the same instant as the loop's, which only
the controlled platform gives.  Forms: :class:`ProgressMonitor` (runtime); the model has
no timers, handlers, pool or dataplane (:func:`model_invariant` is LIVE's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aioctx_verify.vocab import PropertyName, TraceEvent

from ._monitor import Monitor

__all__ = [
    "LOOP_BOUND",
    "ORACLES",
    "TIMER_SLACK_NS",
    "PlatformView",
    "ProgressMonitor",
    "model_invariant",
    "z3_formula",
]

PROP: PropertyName = "LIVE"
#: Iterations of a context that begin after an obligation is due and end normally without
#: discharging it: at this many it is a violation (the correct impl needs one).
LOOP_BOUND = 2
#: How late (virtual ns) past its deadline a timer may still be waiting for a sleeping poller.
TIMER_SLACK_NS = 1_000_000
#: The oracles of this module, by the names :class:`ProgressMonitor` takes.
ORACLES = ("timers", "handlers", "pool", "dataplane", "iothread", "stw")


class PlatformView(Protocol):
    """What the time and readiness rules read from the platform, without side effects
    (no scheduling point: the controlled platform calls the monitors from its scheduler)."""

    def clock_ns(self, clock: int) -> int | None:
        """The reading of QEMU clock ``clock`` (0 REALTIME, 1 VIRTUAL, 2 HOST) now, as
        impl's timer lists would read it; ``None`` while that clock is disabled."""
        ...

    def fd_ready(self, fd: int, read: bool, write: bool) -> bool:
        """Whether ``fd`` is readable (``read``) or writable (``write``) now."""
        ...


@dataclass(slots=True)
class _Iter:
    """One ``aio_poll`` iteration in progress."""

    ctx: int
    thread: int
    begin: int  # event index of its poll_begin
    top: bool  # not nested in another aio_poll of the same thread
    ext_ok: bool  # external handlers enabled at its begin (conservative view)
    ext_epoch: int
    asleep: bool = False
    woke: int = -1
    timers_due: list[tuple[int, int]] = field(default_factory=list)  # (timer, armed at)
    fds_due: list[int] = field(default_factory=list)  # handlers ready when its poll woke


@dataclass(slots=True)
class _Obligation:
    rule: str
    ctx: int
    due: int  # event index at which it became due
    what: str
    external: bool = False
    strikes: int = 0


@dataclass(slots=True)
class _Timer:
    ctx: int
    clock: int
    expire: int
    armed: int  # event index of the timer_mod
    strikes: int = 0
    reported: bool = False


@dataclass(slots=True)
class _Handler:
    ctx: int
    fd: int
    read: bool
    write: bool
    external: bool
    strikes: int = 0
    reported: bool = False


@dataclass(slots=True)
class _Request:
    ctx: int
    ret: str | None = None  # the result its work produced (or -ECANCELED)
    cancelled: bool = False
    completions: int = 0


@dataclass(slots=True)
class _Device:
    ctx: int
    started: bool = False
    processed: int = 0  # requests taken off the ring so far (by sequence number)


@dataclass(slots=True)
class _IOThread:
    ctx: int
    thread: int | None = None
    requested: int = -1  # event index of the stop request
    stopping: bool = False  # its stop BH ran
    stopped: bool = False
    after: int = 0  # top-level iterations begun after the request that ended normally
    reported: bool = False


@dataclass(slots=True)
class _StopWorld:
    thread: int
    begin: int
    pausing: bool = True
    acquired: dict[int, int] = field(default_factory=dict)  # ctx -> its depth before


def _int(text: str, default: int = 0) -> int:
    try:
        return int(text)
    except ValueError:
        return default


class ProgressMonitor(Monitor):
    """Runtime form of the loop oracles (LIVE, part 2).

    Args:
        view: the platform's clocks and fd readiness (controlled platform); ``None`` on real
            threads, where the timer and handler rules and the virtual-time checks are off.
        oracles: which of :data:`ORACLES` to check (default: all).
        loop_bound: see :data:`LOOP_BOUND`.
    """

    prop = PROP

    def __init__(
        self,
        view: PlatformView | None = None,
        *,
        oracles: Iterable[str] = ORACLES,
        loop_bound: int = LOOP_BOUND,
    ) -> None:
        super().__init__()
        on = set(oracles)
        unknown = on - set(ORACLES)
        if unknown:
            raise ValueError(f"unknown oracle(s) {sorted(unknown)}; known: {', '.join(ORACLES)}")
        self.view = view
        self.oracles = frozenset(on)
        self.loop_bound = loop_bound
        # -- the loop as the trace shows it
        self._stacks: dict[int, list[_Iter]] = {}  # thread -> its aio_poll iterations
        self._asleep: dict[int, _Iter] = {}  # ctx -> the iteration asleep in its poll
        self._ext: dict[int, int] = {}  # ctx -> external-disable count (upper bound)
        self._ext_epoch: dict[int, int] = {}
        self._obligations: dict[int, dict[tuple[Any, ...], _Obligation]] = {}
        # -- per oracle
        self._timers: dict[int, _Timer] = {}
        self._ctx_timers: dict[int, set[int]] = {}
        self._handlers: dict[int, _Handler] = {}
        self._ctx_handlers: dict[int, set[int]] = {}
        self._dispatched: dict[int, int] = {}  # handler -> index of its last dispatch
        self._requests: dict[int, _Request] = {}
        self._devices: dict[int, _Device] = {}
        self._iothreads: dict[int, _IOThread] = {}
        self._iothread_of: dict[int, int] = {}  # thread -> IOThread id
        self._depth: dict[tuple[int, int], int] = {}  # (thread, ctx) -> lock depth
        self._stw: dict[int, list[_StopWorld]] = {}
        table: dict[str, Callable[[TraceEvent], None]] = {
            "poll_begin": self._poll_begin,
            "poll_wait": self._poll_wait,
            "poll_woke": self._poll_woke,
            "poll_end": self._poll_end,
            "external_disable": self._external_disable,
            "external_enable": self._external_enable,
        }
        if "timers" in on:
            table.update(
                timer_mod=self._timer_mod,
                timer_del=self._timer_gone,
                timer_run_begin=self._timer_gone,
            )
        if "handlers" in on:
            table.update(
                handler_set=self._handler_set,
                handler_remove=self._handler_remove,
                handler_run_begin=self._handler_run,
            )
        if "pool" in on:
            table.update(
                pool_done=self._pool_done,
                pool_cancel=self._pool_done,
                pool_complete=self._pool_complete,
                pool_shutdown=self._pool_shutdown,
            )
        if "dataplane" in on:
            table.update(
                dp_start=self._dp_start,
                dp_stop=self._dp_stop,
                dp_kick=self._dp_kick,
                dp_process=self._dp_process,
            )
        if "iothread" in on:
            table.update(
                iothread_start=self._it_start,
                iothread_stop_request=self._it_request,
                iothread_stopping=self._it_stopping,
                iothread_stop=self._it_stop,
            )
        if "stw" in on:
            table.update(
                acquire=self._lock_depth,
                release=self._lock_depth,
                stw_begin=self._stw_begin,
                stw_paused=self._stw_paused,
                stw_end=self._stw_end,
            )
        self._table = table

    def on_event(self, ev: TraceEvent) -> None:
        h = self._table.get(ev.kind)
        if h is not None:
            h(ev)

    # ------------------------------------------------------------------------------------
    # Obligations discharged by progress
    # ------------------------------------------------------------------------------------
    def _owe(self, key: tuple[Any, ...], ob: _Obligation) -> None:
        self._obligations.setdefault(ob.ctx, {}).setdefault(key, ob)

    def _discharge(self, ctx: int, key: tuple[Any, ...]) -> None:
        obs = self._obligations.get(ctx)
        if obs:
            obs.pop(key, None)

    def _strike(self, it: _Iter, ext_ok: bool) -> None:
        """An iteration of ``it.ctx`` ended normally: every obligation due before it began
        (and, if external, while it could dispatch external handlers) has one strike more."""
        obs = self._obligations.get(it.ctx)
        if not obs:
            return
        for key, ob in list(obs.items()):
            if ob.due >= it.begin or (ob.external and not ext_ok):
                continue
            ob.strikes += 1
            if ob.strikes >= self.loop_bound:
                del obs[key]
                self.violate(
                    ob.rule,
                    f"{ob.what} (due since event {ob.due}) was not delivered by {ob.strikes} "
                    f"aio_poll iteration(s) of context {ob.ctx} that began after it "
                    f"(the last one in thread {it.thread})",
                )

    # ------------------------------------------------------------------------------------
    # The loop
    # ------------------------------------------------------------------------------------
    def _current(self, ev: TraceEvent) -> _Iter | None:
        stack = self._stacks.get(int(ev.thread))
        if stack:
            for it in reversed(stack):
                if it.ctx == ev.ctx:
                    return it
        return None

    def _poll_begin(self, ev: TraceEvent) -> None:
        t = int(ev.thread)
        ctx = ev.ctx
        stack = self._stacks.setdefault(t, [])
        it = _Iter(
            ctx,
            t,
            self._index,
            not stack,
            self._ext.get(ctx, 0) == 0,
            self._ext_epoch.get(ctx, 0),
        )
        stack.append(it)
        if it.top and self._iothreads:
            self._it_iteration_begins(it)
        if self.view is not None and self._ctx_timers.get(ctx):
            self._timers_at_begin(it)

    def _poll_wait(self, ev: TraceEvent) -> None:
        it = self._current(ev)
        if it is not None:
            it.asleep = True
            self._asleep[ev.ctx] = it

    def _poll_woke(self, ev: TraceEvent) -> None:
        it = self._current(ev)
        if it is None:
            return
        if it.asleep:
            it.asleep = False
            if self._asleep.get(ev.ctx) is it:
                del self._asleep[ev.ctx]
        it.woke = self._index
        if self.view is not None and self._ctx_handlers.get(ev.ctx):
            self._handlers_at_woke(it)

    def _poll_end(self, ev: TraceEvent) -> None:
        stack = self._stacks.get(int(ev.thread))
        if not stack:
            return
        it = stack.pop()
        if it.ctx != ev.ctx:  # unbalanced trace (a checker's own events): resynchronise
            stack.append(it)
            it = next((x for x in reversed(stack) if x.ctx == ev.ctx), it)
            if it.ctx != ev.ctx:
                return
            stack.remove(it)
        if it.asleep and self._asleep.get(it.ctx) is it:
            del self._asleep[it.ctx]
        if ev.detail == "raised":
            return
        ext_ok = it.ext_ok and self._ext_epoch.get(it.ctx, 0) == it.ext_epoch
        self._strike(it, ext_ok)
        if it.timers_due:
            self._timers_at_end(it)
        if it.fds_due:
            self._handlers_at_end(it, ext_ok)
        if it.top and self._iothreads:
            self._it_iteration_ends(it)

    def _external_disable(self, ev: TraceEvent) -> None:
        self._ext[ev.ctx] = self._ext.get(ev.ctx, 0) + 1
        self._ext_epoch[ev.ctx] = self._ext_epoch.get(ev.ctx, 0) + 1

    def _external_enable(self, ev: TraceEvent) -> None:
        self._ext[ev.ctx] = max(0, self._ext.get(ev.ctx, 0) - 1)
        self._ext_epoch[ev.ctx] = self._ext_epoch.get(ev.ctx, 0) + 1

    # ------------------------------------------------------------------------------------
    # 1. timers
    # ------------------------------------------------------------------------------------
    def _timer_mod(self, ev: TraceEvent) -> None:
        clock, _, expire = ev.detail.partition(":")
        self._timers[ev.obj] = _Timer(ev.ctx, _int(clock), _int(expire), self._index)
        self._ctx_timers.setdefault(ev.ctx, set()).add(ev.obj)

    def _timer_gone(self, ev: TraceEvent) -> None:
        if self._timers.pop(ev.obj, None) is not None:
            self._ctx_timers.get(ev.ctx, set()).discard(ev.obj)

    def _timers_at_begin(self, it: _Iter) -> None:
        view = self.view
        assert view is not None
        for tid in self._ctx_timers.get(it.ctx, ()):
            tm = self._timers[tid]
            now = view.clock_ns(tm.clock)
            if now is not None and now >= tm.expire:
                it.timers_due.append((tid, tm.armed))

    def _timers_at_end(self, it: _Iter) -> None:
        view = self.view
        assert view is not None
        for tid, armed in it.timers_due:
            tm = self._timers.get(tid)
            if tm is None or tm.armed != armed or tm.reported:
                continue  # ran, re-armed or deleted
            if view.clock_ns(tm.clock) is None:
                continue  # its clock was disabled meanwhile
            tm.strikes += 1
            if tm.strikes >= self.loop_bound:
                tm.reported = True
                self.violate(
                    "timer-runs",
                    f"timer {tid} of context {tm.ctx} (clock {tm.clock}, deadline "
                    f"{tm.expire} ns, armed at event {tm.armed}) was expired when "
                    f"{tm.strikes} aio_poll iteration(s) began, and none ran it (the last "
                    f"one in thread {it.thread})",
                )

    # ------------------------------------------------------------------------------------
    # 2. fd and event-notifier handlers
    # ------------------------------------------------------------------------------------
    def _handler_set(self, ev: TraceEvent) -> None:
        f = dict(part.partition("=")[::2] for part in ev.detail.split())
        h = _Handler(
            ev.ctx,
            _int(f.get("fd", "-1"), -1),
            f.get("r") == "1",
            f.get("w") == "1",
            f.get("ext") == "1",
        )
        self._handlers[ev.obj] = h
        self._ctx_handlers.setdefault(ev.ctx, set()).add(ev.obj)

    def _handler_remove(self, ev: TraceEvent) -> None:
        if self._handlers.pop(ev.obj, None) is not None:
            self._ctx_handlers.get(ev.ctx, set()).discard(ev.obj)

    def _handler_run(self, ev: TraceEvent) -> None:
        self._dispatched[ev.obj] = self._index
        h = self._handlers.get(ev.obj)
        if h is not None:
            h.strikes = 0
            h.reported = False

    def _handler_may_run(self, h: _Handler, it: _Iter | None = None) -> bool:
        """Whether external handlers may be dispatched (during ``it``, or now)."""
        if not h.external:
            return True
        if it is None:
            return self._ext.get(h.ctx, 0) == 0
        return it.ext_ok and self._ext_epoch.get(h.ctx, 0) == it.ext_epoch

    def _handlers_at_woke(self, it: _Iter) -> None:
        view = self.view
        assert view is not None
        for hid in self._ctx_handlers.get(it.ctx, ()):
            h = self._handlers[hid]
            if self._handler_may_run(h, it) and view.fd_ready(h.fd, h.read, h.write):
                it.fds_due.append(hid)
            else:
                h.strikes = 0  # strikes count consecutive iterations it was ready in

    def _handlers_at_end(self, it: _Iter, ext_ok: bool) -> None:
        for hid in it.fds_due:
            h = self._handlers.get(hid)
            if h is None or (h.external and not ext_ok):
                continue  # removed, or external handlers were disabled meanwhile
            if self._dispatched.get(hid, -1) > it.woke:
                continue
            h.strikes += 1
            if h.strikes >= self.loop_bound and not h.reported:
                h.reported = True
                self.violate(
                    "handler-dispatched",
                    f"fd {h.fd} of context {h.ctx} was ready when the poll of "
                    f"{h.strikes} aio_poll iteration(s) returned, yet its handler {hid} "
                    f"(registered, {'external, ' if h.external else ''}enabled) was not "
                    f"dispatched (the last iteration in thread {it.thread})",
                )

    # ------------------------------------------------------------------------------------
    # 3. thread pool
    # ------------------------------------------------------------------------------------
    def _pool_done(self, ev: TraceEvent) -> None:
        r = self._requests.get(ev.obj)
        if r is None:
            r = self._requests[ev.obj] = _Request(ev.ctx)
        cancel = ev.kind == "pool_cancel"
        if r.ret is not None:
            if cancel:
                how = "was cancelled after its work had run"
            elif r.cancelled:
                how = "ran its work although it was cancelled (its result is -ECANCELED)"
            else:
                how = "finished its work twice"
            self.violate("request-own-result", f"thread-pool request {ev.obj} {how}")
            return
        r.ret = ev.detail
        r.cancelled = cancel
        what = "the cancellation" if cancel else "the completion"
        self._owe(
            ("pool", ev.obj),
            _Obligation(
                "request-completes",
                ev.ctx,
                self._index,
                f"{what} of thread-pool request {ev.obj} (result {ev.detail})",
            ),
        )

    def _pool_complete(self, ev: TraceEvent) -> None:
        r = self._requests.get(ev.obj)
        if r is None:
            return  # finished before the monitor listened: nothing known about it
        r.completions += 1
        self._discharge(r.ctx, ("pool", ev.obj))
        if r.completions > 1:
            self.violate(
                "request-once",
                f"thread-pool request {ev.obj} of context {ev.ctx} completed "
                f"{r.completions} times",
            )
        elif r.ret is None:
            self.violate(
                "request-own-result",
                f"thread-pool request {ev.obj} of context {ev.ctx} completed before its "
                "work finished (and it was not cancelled)",
            )
        elif ev.detail != r.ret:
            self.violate(
                "request-own-result",
                f"thread-pool request {ev.obj} of context {ev.ctx} completed with "
                f"{ev.detail}, but its own "
                + ("cancellation gave " if r.cancelled else "work returned ")
                + r.ret,
            )

    def _pool_shutdown(self, ev: TraceEvent) -> None:
        obs = self._obligations.get(ev.ctx)
        if obs:
            for key in [k for k in obs if k[0] == "pool"]:
                del obs[key]

    # ------------------------------------------------------------------------------------
    # 4. dataplane
    # ------------------------------------------------------------------------------------
    def _device(self, ev: TraceEvent) -> _Device:
        d = self._devices.get(ev.obj)
        if d is None:
            d = self._devices[ev.obj] = _Device(ev.ctx)
        d.ctx = ev.ctx
        return d

    def _owe_kick(self, d: _Device, dev: int, seq: int, what: str) -> None:
        if seq > d.processed:
            self._owe(
                ("dp", dev, seq),
                _Obligation("kick-processed", d.ctx, self._index, what, external=True),
            )

    def _dp_start(self, ev: TraceEvent) -> None:
        d = self._device(ev)
        d.started = True
        seq = _int(ev.detail)
        self._owe_kick(d, ev.obj, seq, f"the start kick of dataplane device {ev.obj} "
                       f"(requests up to #{seq} on its ring)")

    def _dp_stop(self, ev: TraceEvent) -> None:
        d = self._device(ev)
        d.started = False
        obs = self._obligations.get(d.ctx)
        if obs:
            for key in [k for k in obs if k[0] == "dp" and k[1] == ev.obj]:
                del obs[key]

    def _dp_kick(self, ev: TraceEvent) -> None:
        d = self._device(ev)
        if d.started:
            seq = _int(ev.detail)
            self._owe_kick(d, ev.obj, seq, f"guest kick #{seq} of dataplane device {ev.obj}")

    def _dp_process(self, ev: TraceEvent) -> None:
        d = self._device(ev)
        d.processed = max(d.processed, _int(ev.detail))
        obs = self._obligations.get(d.ctx)
        if obs:
            for key in [k for k in obs if k[0] == "dp" and k[1] == ev.obj]:
                if key[2] <= d.processed:
                    del obs[key]

    # ------------------------------------------------------------------------------------
    # 5. IOThread stop
    # ------------------------------------------------------------------------------------
    def _iothread(self, ev: TraceEvent) -> _IOThread:
        s = self._iothreads.get(ev.obj)
        if s is None:
            s = self._iothreads[ev.obj] = _IOThread(ev.ctx)
        return s

    def _it_start(self, ev: TraceEvent) -> None:
        s = self._iothread(ev)
        s.thread = int(ev.thread)
        self._iothread_of[int(ev.thread)] = ev.obj

    def _it_request(self, ev: TraceEvent) -> None:
        s = self._iothread(ev)
        if s.requested < 0:
            s.requested = self._index

    def _it_stopping(self, ev: TraceEvent) -> None:
        s = self._iothread(ev)
        s.stopping = True
        if s.requested < 0:  # its stop BH ran before the request was traced
            s.requested = self._index

    def _it_stop(self, ev: TraceEvent) -> None:
        self._iothread(ev).stopped = True
        self._iothread_of.pop(int(ev.thread), None)

    def _it_iteration_begins(self, it: _Iter) -> None:
        iid = self._iothread_of.get(it.thread)
        if iid is None:
            return
        s = self._iothreads[iid]
        if s.requested >= 0 and not s.stopped and not s.reported and s.after >= self.loop_bound:
            s.reported = True
            ran = "its stop BH ran" if s.stopping else "its stop BH never took effect"
            self.violate(
                "iothread-stops",
                f"IOThread {iid} (thread {it.thread}) was asked to stop at event "
                f"{s.requested}, ran {s.after} iteration(s) after that, and begins another "
                f"({ran})",
            )

    def _it_iteration_ends(self, it: _Iter) -> None:
        iid = self._iothread_of.get(it.thread)
        if iid is None:
            return
        s = self._iothreads[iid]
        if s.requested >= 0 and it.begin > s.requested:
            s.after += 1

    # ------------------------------------------------------------------------------------
    # 6. stop-the-world
    # ------------------------------------------------------------------------------------
    def _lock_depth(self, ev: TraceEvent) -> None:
        t = int(ev.thread)
        self._depth[(t, ev.ctx)] = ev.obj
        if ev.kind == "acquire":
            frames = self._stw.get(t)
            if frames and frames[-1].pausing and ev.ctx not in frames[-1].acquired:
                frames[-1].acquired[ev.ctx] = ev.obj - 1

    def _stw_begin(self, ev: TraceEvent) -> None:
        t = int(ev.thread)
        self._stw.setdefault(t, []).append(_StopWorld(t, self._index))

    def _stw_paused(self, ev: TraceEvent) -> None:
        frames = self._stw.get(int(ev.thread))
        if frames:
            frames[-1].pausing = False

    def _stw_end(self, ev: TraceEvent) -> None:
        t = int(ev.thread)
        frames = self._stw.get(t)
        if not frames:
            return
        frame = frames.pop()
        for ctx, before in frame.acquired.items():
            depth = self._depth.get((t, ctx), 0)
            if depth > before:
                self.violate(
                    "stw-resumes",
                    f"stop_the_world (begun at event {frame.begin} in thread {t}) returned "
                    f"still holding context {ctx} at depth {depth} (it held it at depth "
                    f"{before} before): that IOThread stays paused",
                )

    # ------------------------------------------------------------------------------------
    # Every thread blocked; end of run
    # ------------------------------------------------------------------------------------
    def quiescent(self) -> None:
        """Every thread is blocked: a poller asleep with something of its context due has
        lost a wake-up (see the module docstring, *virtual time*)."""
        if not self._asleep:
            return
        view = self.view
        now = None if view is None else view.clock_ns(0)
        when = "" if now is None else f" at virtual time {now} ns"
        for ctx, it in sorted(self._asleep.items()):
            asleep = f"thread {it.thread} sleeps in aio_poll of context {ctx}{when}"
            obs = self._obligations.get(ctx)
            if obs:
                for key, ob in list(obs.items()):
                    if ob.external and self._ext.get(ctx, 0):
                        continue
                    del obs[key]
                    self.violate(
                        ob.rule,
                        f"lost wake-up: {asleep} while every thread is blocked, though "
                        f"{ob.what} is due since event {ob.due}",
                    )
            for iid, s in sorted(self._iothreads.items()):
                if (
                    s.ctx == ctx
                    and s.requested >= 0
                    and not (s.stopping or s.stopped or s.reported)
                ):
                    s.reported = True
                    self.violate(
                        "iothread-stops",
                        f"lost wake-up: {asleep} while every thread is blocked, though "
                        f"IOThread {iid} was asked to stop at event {s.requested} and its "
                        "stop BH has not taken effect",
                    )
            if view is None:  # the timer and handler rules need the platform's view
                continue
            for tid in sorted(self._ctx_timers.get(ctx, ())):
                tm = self._timers[tid]
                reading = view.clock_ns(tm.clock)
                if tm.reported or reading is None or reading <= tm.expire + TIMER_SLACK_NS:
                    continue
                tm.reported = True
                self.violate(
                    "timer-runs",
                    f"lost wake-up: {asleep} past the deadline of its timer {tid} (clock "
                    f"{tm.clock} reads {reading} ns, deadline {tm.expire} ns, armed at event "
                    f"{tm.armed})",
                )
            for hid in sorted(self._ctx_handlers.get(ctx, ())):
                h = self._handlers[hid]
                if h.reported or not self._handler_may_run(h):
                    continue
                if view.fd_ready(h.fd, h.read, h.write):
                    h.reported = True
                    self.violate(
                        "handler-dispatched",
                        f"lost wake-up: {asleep} while every thread is blocked, though fd "
                        f"{h.fd} of its handler {hid} is ready",
                    )

    def finish(self, *, terminal: bool = False) -> None:
        if not terminal:
            return
        for iid, s in sorted(self._iothreads.items()):
            if s.requested >= 0 and not s.stopped and not s.reported:
                self.violate(
                    "iothread-stops",
                    f"IOThread {iid} was asked to stop at event {s.requested} and never "
                    "stopped",
                    at_end=True,
                )


def model_invariant(path: Any) -> bool:
    """The model has none of these parts; LIVE on a model path is :mod:`._liveness`'s."""
    from aioctx_verify.model import invariants

    return bool(invariants.live(path))


#: Slot for a z3 form (none: the model has no timers, handlers, pool or dataplane).
z3_formula: Any = None
