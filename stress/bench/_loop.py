"""The benchmark: impl's hot paths, each measured against a peer in the same run.

Why it exists: impl's design rests on a few performance claims, and each one is only worth
stating against something a reader already knows.  The claims and their peers:

* **Cross-thread work delivery** into one IOThread from 1, 2 and 4 producer threads, against
  an asyncio loop running in its own thread, with three idioms: one one-shot BH per item vs
  ``call_soon_threadsafe`` per item (``bh_oneshot_*``: QEMU's ``notify_me`` protocol skips
  the wake-up write while the loop is busy, asyncio writes its self-pipe on every call); a
  per-producer queue whose producer wakes the consumer only when no drain is pending, with
  ``qemu_bh_schedule`` of the producer's own BH vs ``call_soon_threadsafe`` (``bh_batch_*``:
  the producers run the same code, only the wake-up differs); and a round trip, schedule
  then wait for the run (``bh_pingpong``).  No producer ever calls ``qemu_bh_schedule`` on a
  BH that is already scheduled in a loop: under the GIL that spin starves the IOThread and
  measures the switch interval, not impl.
* **Idle wake-up latency** of an IOThread blocked in ``aio_poll`` vs an idle asyncio loop
  blocked in ``epoll`` (``wake_latency_p50`` / ``_p99``).
* **Uncontended nested acquire/release** of a context through ``with ctx:`` vs
  ``threading.RLock`` nested to the same depth (``nested_acquire_depth1`` / ``3``).
* **Hand-off latency**: ``aio_context_acquire`` from another thread while the IOThread is
  blocked in ``aio_poll`` (the contention kick, then the FIFO hand-over).  The goal is
  absolute (p99 within 1 ms); the peer, for information, is the same hand-off of an idle
  asyncio loop (a ``call_soon_threadsafe`` callback that signals a ``threading.Event`` and
  parks the loop until released).
* **Stop-the-world** over 1, 4 and 16 IOThreads: the time to pause them, per IOThread, should
  stay flat; the peer of every ``stop_world_N`` is ``stop_world_1`` measured separately in
  the same repetitions (so ``stop_world_1``'s own ratio shows the run's noise).
* **Memory** per idle BH vs per asyncio ``Handle`` (``tracemalloc``).
* **The seam's cost** (``bare_*``): the one-shot, ping-pong and nested-acquire figures again,
  for a *bare loop* written straight on CPython and the OS, with no :class:`Platform`, no
  atomic cell objects and no tracing (:class:`_BareLoop`, :class:`_BareRLock`), against the
  same peers and with the same targets.  The bare loop keeps QEMU's ``notify_me`` protocol
  (a producer writes the eventfd only while the loop is about to sleep), but not the
  context lock, FIFO hand-over or contention kick; so each ``bare_*`` figure is the most its
  ``bh_*`` / ``nested_*`` figure could reach if the seam and those duties cost nothing.

Method: every figure is taken ours and peer back to back (their order alternates between
repetitions; latency samples alternate one by one), repeated, and the median of the
repetitions is reported; ``ratio`` is always ``ours / peer``.  The figures made of wake-ups
(ping-pong, latencies, stop-the-world) run with the waking thread pinned to one CPU and every
loop thread, ours and asyncio's, to another: left to the kernel, thread placement alone
moved a wake-up between ~5 us and ~40 us on the 2-core machine this was written on.
"Blocked in aio_poll" is observed, not assumed: before each latency sample the benchmark
waits until the thread's innermost Python frame is the poll call with a non-zero timeout
(``sys._current_frames``), for our IOThreads and for the asyncio loop alike.  Every wait
is bounded; every thread the run starts is joined, and the asyncio loop stopped and closed,
on error too.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import os
import re
import select
import selectors
import statistics
import sys
import threading
import time
import tracemalloc
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from itertools import repeat
from pathlib import Path
from types import CodeType, FrameType
from typing import Any, Literal

from aioctx_verify.files import atomic_write_text
from aioctx_verify.impl import AioContext, AioCtxError, IOThread, stop_the_world

__all__ = [
    "BENCHMARK_NAMES",
    "BenchError",
    "BenchResult",
    "Sizes",
    "Target",
    "format_table",
    "run_benchmarks",
    "write_json",
]

#: Upper bound, in seconds, of every single wait the benchmark makes.
WAIT = 30.0

PRODUCERS = (1, 2, 4)
STOP_WORLD_SIZES = (1, 4, 16)

BENCHMARK_NAMES: tuple[str, ...] = (
    *(f"bh_oneshot_{n}p" for n in PRODUCERS),
    *(f"bh_batch_{n}p" for n in PRODUCERS),
    "bh_pingpong",
    "wake_latency_p50",
    "wake_latency_p99",
    "nested_acquire_depth1",
    "nested_acquire_depth3",
    "bare_oneshot_1p",
    "bare_pingpong",
    "bare_nested_acquire_depth1",
    "handoff_latency_p50",
    "handoff_latency_p99",
    *(f"stop_world_{n}" for n in STOP_WORLD_SIZES),
    "bh_memory",
)

_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_TARGET_RE = re.compile(r"(<=|>=) (\d+(?:\.\d+)?)(?: (s|ms|us|ns))?")


class BenchError(AioCtxError):
    """A benchmark could not complete (a bounded wait ran out, or a callback raised)."""


# ---------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Target:
    """A goal: a bound on ``ratio`` (``unit`` None) or on ``ours`` itself, in ``unit``."""

    op: Literal["<=", ">="]
    bound: float
    unit: str | None = None

    def __str__(self) -> str:
        if self.unit is None:
            return f"{self.op} {self.bound:.1f}"
        return f"{self.op} {self.bound:g} {self.unit}"

    @classmethod
    def parse(cls, text: str) -> Target:
        """The inverse of ``str()``: ``">= 5.0"``, ``"<= 1 ms"``."""
        m = _TARGET_RE.fullmatch(text)
        if m is None:
            raise ValueError(f"target {text!r} is not of the form '<= 3.0' or '<= 1 ms'")
        op: Literal["<=", ">="] = "<=" if m[1] == "<=" else ">="
        return cls(op, float(m[2]), m[3])

    def holds(self, value: float) -> bool:
        return value <= self.bound if self.op == "<=" else value >= self.bound


@dataclass(frozen=True, slots=True)
class BenchResult:
    """One figure: ours against its peer, medians over the repetitions.

    Attributes:
        name: one of :data:`BENCHMARK_NAMES`.
        ours, peer: the two medians, both in ``unit``.
        unit: e.g. ``items/s``, ``us``, ``ns/op``.
        target: the goal; see :attr:`met`.
        peer_is: what the peer is, in words (printed under the table).
    """

    name: str
    ours: float
    peer: float
    unit: str
    target: Target
    peer_is: str

    @property
    def ratio(self) -> float:
        return self.ours / self.peer

    @property
    def met(self) -> bool:
        """Whether the target holds: on ``ratio``, or on ``ours`` for an absolute target."""
        t = self.target
        if t.unit is None:
            return t.holds(self.ratio)
        return t.holds(self.ours * _TIME_UNITS[self.unit] / _TIME_UNITS[t.unit])

    def to_json(self) -> dict[str, object]:
        # A figure that could not be measured (a missing optional peer) is NaN or infinite:
        # JSON null, so that the file stays strict JSON.
        return {
            "name": self.name,
            "ours": _finite_or_none(self.ours),
            "peer": _finite_or_none(self.peer),
            "ratio": _finite_or_none(self.ratio),
            "unit": self.unit,
            "target": str(self.target),
            "met": self.met,
        }


def _finite_or_none(v: float) -> float | None:
    return v if math.isfinite(v) else None


@dataclass(frozen=True, slots=True)
class _Spec:
    unit: str
    target: Target
    peer_is: str


def _specs() -> dict[str, _Spec]:
    oneshot = _Spec(
        "items/s", Target(">=", 5.0),
        "asyncio: loop.call_soon_threadsafe per item (loop running in its own thread)",
    )
    batch = _Spec(
        "items/s", Target(">=", 1.0),
        "asyncio: the same producers and queues, woken by call_soon_threadsafe instead of "
        "qemu_bh_schedule (only when no drain is pending)",
    )
    wake = "asyncio: call_soon_threadsafe into an idle loop blocked in epoll"
    nested = "threading.RLock nested to the same depth (op = the whole nest, in and out)"
    handoff = (
        "asyncio, for information: call_soon_threadsafe(park) on an idle loop; park signals a "
        "threading.Event and holds the loop until released (target is absolute, on ours)"
    )
    world = "stop_world_1 per-IOThread pause time, measured separately in the same reps"
    return {
        **{f"bh_oneshot_{n}p": oneshot for n in PRODUCERS},
        **{f"bh_batch_{n}p": batch for n in PRODUCERS},
        "bh_pingpong": _Spec(
            "round trips/s", Target(">=", 1.5),
            "asyncio: call_soon_threadsafe + threading.Event, same round trip",
        ),
        "wake_latency_p50": _Spec("us", Target("<=", 1.0), wake),
        # The tail of a wake-up on a 2-core machine is set by the OS and the GIL, for asyncio
        # as much as for us; the goal is only "the same order as asyncio".
        "wake_latency_p99": _Spec("us", Target("<=", 1.5), wake),
        "nested_acquire_depth1": _Spec("ns/op", Target("<=", 3.0), nested),
        "nested_acquire_depth3": _Spec("ns/op", Target("<=", 3.0), nested),
        # The bare loop (no seam): what the three rows above could reach; same targets.
        "bare_oneshot_1p": oneshot,
        "bare_pingpong": _Spec(
            "round trips/s", Target(">=", 1.5),
            "asyncio: call_soon_threadsafe + threading.Event, same round trip",
        ),
        "bare_nested_acquire_depth1": _Spec("ns/op", Target("<=", 3.0), nested),
        "handoff_latency_p50": _Spec("us", Target("<=", 1.0, "ms"), handoff),
        "handoff_latency_p99": _Spec("us", Target("<=", 1.0, "ms"), handoff),
        **{f"stop_world_{n}": _Spec("us/IOThread", Target("<=", 2.0), world)
           for n in STOP_WORLD_SIZES},
        # A BH is long-lived and reusable (made once, scheduled many times), a Handle is made
        # per call; and the seam makes a BH's two lock-free flags (scheduled, idle) atomic cell
        # objects of their own, where a Handle has one Context copy.  So parity is not the
        # goal: twice a Handle keeps a context with thousands of BHs within a few hundred KiB.
        "bh_memory": _Spec(
            "bytes/object", Target("<=", 2.0),
            "asyncio.Handle from loop.call_soon, kept alive (bytes per idle BH vs per Handle)",
        ),
    }


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much work each figure does; :meth:`for_mode` gives the full and quick sizes."""

    reps: int
    items: int  # cross-thread work items per throughput run, all producers together
    round_trips: int
    latency_samples: int  # per side, per rep (wake-up and hand-off)
    nested_ops: int
    stop_world_samples: int
    memory_objects: int

    @classmethod
    def for_mode(cls, *, quick: bool, scale: float = 1.0, reps: int | None = None) -> Sizes:
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        if reps is not None and reps < 1:
            raise ValueError(f"reps must be >= 1, got {reps}")

        def n(full: int, fast: int, floor: int) -> int:
            return max(floor, round((fast if quick else full) * scale))

        return cls(
            reps=reps if reps is not None else (3 if quick else 5),
            items=n(200_000, 20_000, 4 * max(PRODUCERS)),
            round_trips=n(20_000, 2_000, 4),
            latency_samples=n(2_000, 300, 4),
            nested_ops=n(300_000, 50_000, 10),
            stop_world_samples=n(200, 30, 2),
            memory_objects=n(20_000, 5_000, 10),
        )


# ---------------------------------------------------------------------------------------
# Threads the run owns
# ---------------------------------------------------------------------------------------
def _code_of(func: object) -> CodeType:
    code = getattr(func, "__code__", None)
    if not isinstance(code, CodeType):
        raise BenchError(f"cannot locate the poll call of {func!r}: it has no Python code")
    return code


@dataclass(frozen=True, slots=True)
class _PollSite:
    """The Python function a thread sits in while it waits for events, and its timeout.

    A thread is *blocked in its poll* when its innermost Python frame is ``code`` with a
    non-zero ``timeout_local`` (None or negative: forever).  Read while we hold the GIL, that
    thread is inside the poll system call (or about to enter it), never running Python.
    """

    code: CodeType
    timeout_local: str

    def blocked(self, frames: dict[int, FrameType], ident: int | None) -> bool:
        frame = frames.get(ident) if ident is not None else None
        if frame is None or frame.f_code is not self.code:
            return False
        timeout = frame.f_locals.get(self.timeout_local)
        return timeout is None or timeout != 0


def _wait_until(cond: Callable[[], bool], what: str) -> None:
    """Bounded wait for ``cond``: yield the GIL to the thread we wait for, never sleep."""
    deadline = time.monotonic() + WAIT
    while not cond():
        if time.monotonic() > deadline:
            raise BenchError(f"{what} did not happen within {WAIT} s")
        os.sched_yield()


class _LoopThread:
    """An asyncio loop running forever in its own thread (the peer of an IOThread)."""

    def __init__(self, name: str) -> None:
        self.selector = selectors.DefaultSelector()
        self.loop = asyncio.SelectorEventLoop(self.selector)
        self.errors: list[str] = []
        self.loop.set_exception_handler(self._record)
        self._started = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _record(self, _loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.errors.append(str(context.get("exception") or context.get("message")))

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._started.set)
        self.loop.run_forever()

    def __enter__(self) -> _LoopThread:
        try:
            self.thread.start()
            if not self._started.wait(WAIT):
                raise BenchError(f"asyncio loop {self.thread.name} did not start in {WAIT} s")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.thread.is_alive():
                self.loop.call_soon_threadsafe(self.loop.stop)
                self.thread.join(WAIT)
                if self.thread.is_alive():
                    raise BenchError(f"asyncio loop {self.thread.name} did not stop in {WAIT} s")
        finally:
            if not self.loop.is_running():
                self.loop.close()


class _Rig:
    """Every thread the run needs, started once: one IOThread and one asyncio loop for the
    delivery and latency figures, and the IOThreads that stop-the-world pauses."""

    def __init__(self, stack: ExitStack) -> None:
        self.io = stack.enter_context(IOThread(name="bench-io"))
        self.world = [
            stack.enter_context(IOThread(name=f"bench-world{i}"))
            for i in range(max(STOP_WORLD_SIZES))
        ]
        self.aio = stack.enter_context(_LoopThread("bench-asyncio"))
        self._io_site = _PollSite(_code_of(type(self.io.ctx.platform.poller()).poll), "timeout_ns")
        self._aio_site = _PollSite(_code_of(type(self.aio.selector).select), "timeout")

    @contextmanager
    def pinned(self) -> Iterator[str]:
        """This (waking) thread on one CPU and every loop thread on another, then restored.

        Wake-up figures are otherwise decided by where the kernel last left each thread: a
        wake-up on the waker's CPU and one that must bring an idle CPU back differ several
        times over, and unpinned runs handed that difference to ours or to asyncio at
        random.  Across CPUs is how IOThreads are deployed (pinned, woken from vCPUs).
        Yields a description of the placement.
        """
        if not hasattr(os, "sched_setaffinity"):
            yield "threads not pinned (no sched_setaffinity)"
            return
        original = os.sched_getaffinity(0)
        cpus = sorted(original)
        try:
            os.sched_setaffinity(0, original)  # allowed here at all? (containers may refuse)
        except OSError as e:
            yield f"threads not pinned ({e.strerror})"
            return
        if len(cpus) < 2:
            yield "threads not pinned (one CPU)"
            return
        self._pin_loops({cpus[1]})
        try:
            os.sched_setaffinity(0, {cpus[0]})
            yield f"waking thread on CPU {cpus[0]}, every loop thread on CPU {cpus[1]}"
        finally:
            os.sched_setaffinity(0, original)
            self._pin_loops(original)

    def _pin_loops(self, cpus: set[int]) -> None:
        """Each loop thread sets its own affinity, in a callback; wait for all of them."""
        done = [threading.Event() for _ in range(len(self.world) + 2)]
        for it, ev in zip((self.io, *self.world), done, strict=False):
            it.ctx.bh_schedule_oneshot(_set_affinity, (cpus, ev))
        self.aio.loop.call_soon_threadsafe(_set_affinity, (cpus, done[-1]))
        if not all(ev.wait(WAIT) for ev in done):
            raise BenchError(f"the loop threads did not move to CPUs {sorted(cpus)} in {WAIT} s")

    def wait_io_idle(self, its: Sequence[IOThread]) -> None:
        def idle() -> bool:
            frames = sys._current_frames()
            return all(self._io_site.blocked(frames, it.thread_id) for it in its)

        _wait_until(idle, f"{len(its)} IOThread(s) blocking in aio_poll")

    def wait_aio_idle(self) -> None:
        site, ident = self._aio_site, self.aio.thread.ident
        _wait_until(lambda: site.blocked(sys._current_frames(), ident), "asyncio loop idling")

    def check(self) -> None:
        """Raise the first error a callback raised in any of the run's loops."""
        for it in (self.io, *self.world):
            if it.errors:
                first = it.errors[0]
                raise BenchError(f"a callback failed in {it.name}: {first}") from first
        if self.aio.errors:
            raise BenchError(f"a callback failed in the asyncio loop: {self.aio.errors[0]}")


def _set_affinity(arg: tuple[set[int], threading.Event]) -> None:
    cpus, done = arg
    os.sched_setaffinity(0, cpus)  # 0: the calling thread
    done.set()


# ---------------------------------------------------------------------------------------
# Cross-thread delivery
# ---------------------------------------------------------------------------------------
class _Sink:
    """Counts delivered items; touched only by the consuming loop's thread."""

    __slots__ = ("count", "done", "t0", "t1", "total")

    def __init__(self, total: int) -> None:
        self.total = total
        self.count = 0
        self.t0 = 0
        self.t1 = 0
        self.done = threading.Event()

    def start(self) -> None:
        self.t0 = time.perf_counter_ns()

    def add(self, n: int) -> None:
        self.count += n
        if self.count >= self.total and not self.done.is_set():
            self.t1 = time.perf_counter_ns()
            self.done.set()


def _deliver_one(sink: _Sink) -> None:
    sink.add(1)


class _Queue:
    """One producer's queue; ``pending``: a drain is scheduled and has not started yet."""

    __slots__ = ("items", "pending", "sink")

    def __init__(self, sink: _Sink) -> None:
        self.items: deque[int] = deque()
        self.pending = False
        self.sink = sink


def _drain_pending(q: _Queue) -> None:
    # Cleared before the queue is read: an append this drain misses finds it False and
    # wakes the consumer again, so no item is left behind.
    q.pending = False
    pop = q.items.popleft
    n = len(q.items)
    for _ in repeat(None, n):
        pop()
    q.sink.add(n)


def _deliver(producers: Sequence[Callable[[], None]], sink: _Sink, what: str) -> float:
    """Run the producers in their own threads, released together; return items/s."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(producers), action=sink.start, timeout=WAIT)

    def body(produce: Callable[[], None]) -> None:
        try:
            barrier.wait()
            produce()
        except BaseException as e:
            errors.append(e)
            barrier.abort()
            sink.done.set()

    threads = [
        threading.Thread(target=body, args=(p,), name=f"bench-producer{i}", daemon=True)
        for i, p in enumerate(producers)
    ]
    try:
        for t in threads:
            t.start()
        finished = sink.done.wait(WAIT)
    finally:
        for t in threads:
            if t.ident is not None:  # started
                t.join(WAIT)
    if errors:
        raise BenchError(f"{what}: a producer failed: {errors[0]!r}") from errors[0]
    if not finished or any(t.is_alive() for t in threads):
        raise BenchError(f"{what}: {sink.count} of {sink.total} items delivered in {WAIT} s")
    return sink.total / ((sink.t1 - sink.t0) / 1e9)


def _pair(
    ours: Callable[[], float], peer: Callable[[], float], ours_first: bool
) -> tuple[float, float]:
    """Run both measurements back to back, in the order given; return (ours, peer)."""
    if ours_first:
        o = ours()
        return o, peer()
    p = peer()
    return ours(), p


def _oneshot(rig: _Rig, nprod: int, items: int, ours_first: bool) -> tuple[float, float]:
    per = items // nprod
    ctx, loop = rig.io.ctx, rig.aio.loop

    def ours() -> float:
        sink = _Sink(per * nprod)

        def produce() -> None:
            schedule = ctx.bh_schedule_oneshot  # aio_bh_schedule_oneshot
            for _ in repeat(None, per):
                schedule(_deliver_one, sink)

        return _deliver([produce] * nprod, sink, f"bh_oneshot_{nprod}p (ours)")

    def peer() -> float:
        sink = _Sink(per * nprod)

        def produce() -> None:
            call = loop.call_soon_threadsafe
            for _ in repeat(None, per):
                call(_deliver_one, sink)

        return _deliver([produce] * nprod, sink, f"bh_oneshot_{nprod}p (asyncio)")

    return _pair(ours, peer, ours_first)


def _batch_producer(q: _Queue, per: int, wake: Callable[[], object]) -> Callable[[], None]:
    """The producer of both sides: append, and wake the consumer only when no drain is
    pending (the race-free form of "the queue was empty"); only ``wake`` differs."""

    def produce() -> None:
        append = q.items.append
        for i in range(per):
            append(i)
            if not q.pending:
                q.pending = True
                wake()

    return produce


def _batch(rig: _Rig, nprod: int, items: int, ours_first: bool) -> tuple[float, float]:
    per = items // nprod
    ctx, loop = rig.io.ctx, rig.aio.loop

    def ours() -> float:
        sink = _Sink(per * nprod)
        queues = [_Queue(sink) for _ in range(nprod)]
        bhs = [ctx.bh_new(_drain_pending, q) for q in queues]  # one BH per producer
        try:
            return _deliver(
                [_batch_producer(q, per, bh.schedule) for q, bh in zip(queues, bhs, strict=True)],
                sink, f"bh_batch_{nprod}p (ours)",
            )
        finally:
            with ctx.acquired(timeout=WAIT):
                for bh in bhs:
                    bh.delete()

    def peer() -> float:
        sink = _Sink(per * nprod)
        queues = [_Queue(sink) for _ in range(nprod)]
        return _deliver(
            [_batch_producer(q, per, partial(loop.call_soon_threadsafe, _drain_pending, q))
             for q in queues],
            sink, f"bh_batch_{nprod}p (asyncio)",
        )

    return _pair(ours, peer, ours_first)


def _set_event(ev: threading.Event) -> None:
    ev.set()


def _round_trips(
    kick: Callable[[], object], ev: threading.Event, rounds: int, what: str
) -> float:
    """Round trips per second: ``kick`` then wait for the far side to set ``ev``."""
    t0 = time.perf_counter_ns()
    for _ in repeat(None, rounds):
        ev.clear()
        kick()
        if not ev.wait(WAIT):
            raise BenchError(f"{what}: no reply within {WAIT} s")
    return rounds / ((time.perf_counter_ns() - t0) / 1e9)


def _pingpong(rig: _Rig, rounds: int, ours_first: bool) -> tuple[float, float]:
    ctx, loop = rig.io.ctx, rig.aio.loop

    def ours() -> float:
        ev = threading.Event()
        bh = ctx.bh_new(_set_event, ev)
        try:
            return _round_trips(bh.schedule, ev, rounds, "bh_pingpong (ours)")
        finally:
            with ctx.acquired(timeout=WAIT):
                bh.delete()

    def peer() -> float:
        ev = threading.Event()
        return _round_trips(partial(loop.call_soon_threadsafe, _set_event, ev), ev, rounds,
                            "bh_pingpong (asyncio)")

    return _pair(ours, peer, ours_first)


# ---------------------------------------------------------------------------------------
# Latencies
# ---------------------------------------------------------------------------------------
class _Stamp:
    """Written by the woken loop: when the callback ran."""

    __slots__ = ("ran", "t")

    def __init__(self) -> None:
        self.t = 0
        self.ran = threading.Event()


def _stamp(s: _Stamp) -> None:
    s.t = time.perf_counter_ns()
    s.ran.set()


def _percentiles(samples: list[int], *qs: float) -> list[float]:
    """Nearest-rank percentiles, in microseconds."""
    xs = sorted(samples)
    return [xs[max(0, math.ceil(q * len(xs)) - 1)] / 1e3 for q in qs]


def _wake_latency(rig: _Rig, samples: int, ours_first: bool) -> list[tuple[float, float]]:
    """[(ours, peer) p50, (ours, peer) p99] in microseconds."""
    ctx, loop = rig.io.ctx, rig.aio.loop
    ours_s, peer_s = _Stamp(), _Stamp()
    bh = ctx.bh_new(_stamp, ours_s)

    def ours() -> int:
        rig.wait_io_idle([rig.io])
        ours_s.ran.clear()
        t0 = time.perf_counter_ns()
        bh.schedule()
        if not ours_s.ran.wait(WAIT):
            raise BenchError(f"wake_latency (ours): the BH did not run within {WAIT} s")
        return ours_s.t - t0

    def peer() -> int:
        rig.wait_aio_idle()
        peer_s.ran.clear()
        t0 = time.perf_counter_ns()
        loop.call_soon_threadsafe(_stamp, peer_s)
        if not peer_s.ran.wait(WAIT):
            raise BenchError(f"wake_latency (asyncio): the callback did not run within {WAIT} s")
        return peer_s.t - t0

    try:
        return _latency_pairs(ours, peer, samples, ours_first)
    finally:
        with ctx.acquired(timeout=WAIT):
            bh.delete()


def _latency_pairs(
    ours: Callable[[], int], peer: Callable[[], int], samples: int, ours_first: bool
) -> list[tuple[float, float]]:
    o: list[int] = []
    p: list[int] = []
    for i in range(samples):
        if (i % 2 == 0) == ours_first:
            o.append(ours())
            p.append(peer())
        else:
            p.append(peer())
            o.append(ours())
    return list(zip(_percentiles(o, 0.5, 0.99), _percentiles(p, 0.5, 0.99), strict=True))


class _Gate:
    __slots__ = ("granted", "resume")

    def __init__(self) -> None:
        self.granted = threading.Event()
        self.resume = threading.Event()


def _park(gate: _Gate) -> None:
    """The asyncio hand-off: the loop is ours (paused) until ``resume``."""
    gate.granted.set()
    if not gate.resume.wait(WAIT):
        raise BenchError(f"handoff (asyncio): the loop was not resumed within {WAIT} s")


def _handoff(rig: _Rig, samples: int, ours_first: bool) -> list[tuple[float, float]]:
    """[(ours, peer) p50, (ours, peer) p99] in microseconds."""
    ctx, loop = rig.io.ctx, rig.aio.loop

    def ours() -> int:
        rig.wait_io_idle([rig.io])
        t0 = time.perf_counter_ns()
        if not ctx.acquire(WAIT):
            raise BenchError(f"handoff (ours): {ctx.name} not granted within {WAIT} s")
        t1 = time.perf_counter_ns()
        ctx.release()
        return t1 - t0

    def peer() -> int:
        rig.wait_aio_idle()
        gate = _Gate()
        t0 = time.perf_counter_ns()
        loop.call_soon_threadsafe(_park, gate)
        try:
            if not gate.granted.wait(WAIT):
                raise BenchError(f"handoff (asyncio): the loop did not park within {WAIT} s")
            return time.perf_counter_ns() - t0
        finally:
            gate.resume.set()

    return _latency_pairs(ours, peer, samples, ours_first)


# ---------------------------------------------------------------------------------------
# The bare loop: the same paths without the seam
# ---------------------------------------------------------------------------------------
class _BareLoop:
    """A one-shot-BH loop written straight on CPython and the OS: a deque of callbacks, an
    eventfd (a pipe where there is none) and QEMU's ``notify_me`` handshake, no seam.

    Under the GIL every statement here is sequentially consistent, so the handshake is the
    store-buffering pattern made safe: the loop sets ``notify_me`` and then looks at the
    queue, a producer appends and then looks at ``notify_me``; at least one of them sees
    the other's write, so an item is never left behind with the loop asleep.  The poll's
    timeout only bounds a stop that goes wrong; no figure depends on it.
    """

    def __init__(self) -> None:
        self.items: deque[tuple[Callable[[Any], object], Any]] = deque()
        self.notify_me = False
        self.stopping = False
        self.errors: list[BaseException] = []
        if hasattr(os, "eventfd"):
            self._rfd = self._wfd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        else:  # pragma: no cover - macOS
            self._rfd, self._wfd = os.pipe()
            os.set_blocking(self._rfd, False)
        self.thread = threading.Thread(target=self._run, name="bench-bare", daemon=True)

    def schedule(self, fn: Callable[[Any], object], arg: Any) -> None:
        """A one-shot BH: queue the call, and wake the loop only if it may sleep."""
        self.items.append((fn, arg))
        if self.notify_me:
            os.write(self._wfd, b"\x01\0\0\0\0\0\0\0")

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._rfd, select.POLLIN)
        items, popleft = self.items, self.items.popleft
        try:
            while not self.stopping:
                self.notify_me = True
                if not items and poller.poll(int(WAIT * 1000)):
                    with suppress(BlockingIOError):
                        os.read(self._rfd, 8)
                self.notify_me = False
                while items:
                    fn, arg = popleft()
                    fn(arg)
        except BaseException as e:
            self.errors.append(e)

    def __enter__(self) -> _BareLoop:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stopping = True
            os.write(self._wfd, b"\x01\0\0\0\0\0\0\0")
            self.thread.join(WAIT)
            if self.thread.is_alive():
                raise BenchError(f"the bare loop did not stop within {WAIT} s")
            if self.errors:
                raise BenchError(f"a callback failed in the bare loop: {self.errors[0]!r}")
        finally:
            os.close(self._rfd)
            if self._wfd != self._rfd:
                os.close(self._wfd)


class _BareRLock:
    """A reentrant lock in plain Python: an owner check for nesting, a ``threading.Lock``
    for the outermost acquire.  No FIFO queue, no contention callback, no seam."""

    __slots__ = ("_depth", "_lock", "_owner")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._depth = 0

    def __enter__(self) -> None:
        me = threading.get_ident()
        if self._owner == me:
            self._depth += 1
            return
        self._lock.acquire()
        self._owner = me
        self._depth = 1

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if not self._depth:
            self._owner = None
            self._lock.release()


def _bare_oneshot(rig: _Rig, items: int, ours_first: bool) -> tuple[float, float]:
    """``bh_oneshot_1p`` with the bare loop as ours."""
    loop = rig.aio.loop

    def ours() -> float:
        sink = _Sink(items)

        def produce() -> None:
            schedule = bare.schedule
            for _ in repeat(None, items):
                schedule(_deliver_one, sink)

        with _BareLoop() as bare:
            return _deliver([produce], sink, "bare_oneshot_1p (bare loop)")

    def peer() -> float:
        sink = _Sink(items)

        def produce() -> None:
            call = loop.call_soon_threadsafe
            for _ in repeat(None, items):
                call(_deliver_one, sink)

        return _deliver([produce], sink, "bare_oneshot_1p (asyncio)")

    return _pair(ours, peer, ours_first)


def _bare_pingpong(rig: _Rig, rounds: int, ours_first: bool) -> tuple[float, float]:
    """``bh_pingpong`` with the bare loop as ours.  Both sides run unpinned (the bare
    loop's thread is started for the figure), so compare it with its own peer only."""
    loop = rig.aio.loop

    def ours() -> float:
        ev = threading.Event()
        with _BareLoop() as bare:
            return _round_trips(partial(bare.schedule, _set_event, ev), ev, rounds,
                                "bare_pingpong (bare loop)")

    def peer() -> float:
        ev = threading.Event()
        return _round_trips(partial(loop.call_soon_threadsafe, _set_event, ev), ev, rounds,
                            "bare_pingpong (asyncio)")

    return _pair(ours, peer, ours_first)


# ---------------------------------------------------------------------------------------
# Nested acquire, stop-the-world, memory
# ---------------------------------------------------------------------------------------
def _nest1(lock: AbstractContextManager[object], n: int) -> int:
    t0 = time.perf_counter_ns()
    for _ in repeat(None, n):
        with lock:
            pass
    return time.perf_counter_ns() - t0


def _nest3(lock: AbstractContextManager[object], n: int) -> int:
    t0 = time.perf_counter_ns()
    for _ in repeat(None, n):
        with lock, lock, lock:
            pass
    return time.perf_counter_ns() - t0


def _nested(depth: int, ops: int, ours_first: bool) -> tuple[float, float]:
    """ns per op, op = ``depth`` nested acquires and their releases, nobody contending."""
    nest = _nest1 if depth == 1 else _nest3
    ctx = AioContext(name="bench-nested")  # home: this thread; no IOThread runs it
    rlock = threading.RLock()
    try:
        return _pair(
            lambda: nest(ctx, ops) / ops, lambda: nest(rlock, ops) / ops, ours_first
        )
    finally:
        ctx.unref()


def _bare_nested(ops: int, ours_first: bool) -> tuple[float, float]:
    """``nested_acquire_depth1`` with :class:`_BareRLock` as ours."""
    bare, rlock = _BareRLock(), threading.RLock()
    return _pair(lambda: _nest1(bare, ops) / ops, lambda: _nest1(rlock, ops) / ops, ours_first)


def _stop_world(rig: _Rig, samples: int) -> dict[int, tuple[float, float]]:
    """{N: (per-IOThread pause time for N, for 1)} in microseconds.

    One sample is the time from entering ``stop_the_world`` until every context is held,
    all N IOThreads having been blocked in ``aio_poll`` before.  The baseline (N = 1) is
    sampled next to every N, so each figure has its own peer from the same moments.
    """

    def pause(its: list[IOThread]) -> float:
        rig.wait_io_idle(its)
        t0 = time.perf_counter_ns()
        with stop_the_world(its, timeout=WAIT):
            t1 = time.perf_counter_ns()
        return (t1 - t0) / 1e3 / len(its)

    got: dict[int, tuple[list[float], list[float]]] = {n: ([], []) for n in STOP_WORLD_SIZES}
    for i in range(samples):
        for n, (ours, base) in got.items():
            its = rig.world[:n]
            if i % 2 == 0:
                ours.append(pause(its))
                base.append(pause(rig.world[:1]))
            else:
                base.append(pause(rig.world[:1]))
                ours.append(pause(its))
    return {n: (statistics.median(o), statistics.median(b)) for n, (o, b) in got.items()}


def _noop(_opaque: object = None) -> None:
    pass


def _bytes_per_object(make: Callable[[], object], count: int) -> float:
    keep: list[object] = [None] * count  # allocated before the baseline: not counted
    gc.collect()
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(count):
            keep[i] = make()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        if started:
            tracemalloc.stop()
    return (after - before) / count


def _memory(count: int, ours_first: bool) -> tuple[float, float]:
    """Bytes per idle BH (object, its cells, its slot in the context's list) vs per Handle
    (object, its context copy, its slot in the loop's ready queue)."""
    ctx = AioContext(name="bench-memory")
    loop = asyncio.new_event_loop()  # never run: the handles stay queued
    try:
        return _pair(
            lambda: _bytes_per_object(lambda: ctx.bh_new(_noop), count),
            lambda: _bytes_per_object(lambda: loop.call_soon(_noop), count),
            ours_first,
        )
    finally:
        loop.close()
        ctx.unref()


# ---------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------
@contextmanager
def _rig() -> Iterator[_Rig]:
    with ExitStack() as stack:
        rig = _Rig(stack)
        yield rig
        rig.check()


def run_benchmarks(
    *,
    quick: bool = False,
    scale: float = 1.0,
    reps: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[BenchResult]:
    """Measure every figure of :data:`BENCHMARK_NAMES`, in that order.

    Args:
        quick: the CI sizes (fewer items and samples, 3 repetitions instead of 5).
        scale: multiply every size (tests use 0.01); each has a small floor.
        reps: override the number of repetitions.
        progress: called with a short line as each repetition starts, and once with where
            the wake-up figures' threads were pinned.

    Raises:
        BenchError: a bounded wait ran out or a callback raised; every thread started is
            joined (and every asyncio loop closed) before it propagates.
    """
    sizes = Sizes.for_mode(quick=quick, scale=scale, reps=reps)
    raw: dict[str, list[tuple[float, float]]] = {name: [] for name in BENCHMARK_NAMES}
    with _rig() as rig:
        for rep in range(sizes.reps):
            if progress is not None:
                progress(f"repetition {rep + 1}/{sizes.reps}")
            first = rep % 2 == 0
            for n in PRODUCERS:
                raw[f"bh_oneshot_{n}p"].append(_oneshot(rig, n, sizes.items, first))
            for n in PRODUCERS:
                raw[f"bh_batch_{n}p"].append(_batch(rig, n, sizes.items, first))
            with rig.pinned() as placement:
                if progress is not None and rep == 0:
                    progress(f"wake-up figures (pingpong, latencies, stop-world): {placement}")
                raw["bh_pingpong"].append(_pingpong(rig, sizes.round_trips, first))
                p50, p99 = _wake_latency(rig, sizes.latency_samples, first)
                raw["wake_latency_p50"].append(p50)
                raw["wake_latency_p99"].append(p99)
                p50, p99 = _handoff(rig, sizes.latency_samples, first)
                raw["handoff_latency_p50"].append(p50)
                raw["handoff_latency_p99"].append(p99)
                for n, pair in _stop_world(rig, sizes.stop_world_samples).items():
                    raw[f"stop_world_{n}"].append(pair)
            for depth in (1, 3):
                raw[f"nested_acquire_depth{depth}"].append(
                    _nested(depth, sizes.nested_ops, first)
                )
            raw["bare_oneshot_1p"].append(_bare_oneshot(rig, sizes.items, first))
            raw["bare_pingpong"].append(_bare_pingpong(rig, sizes.round_trips, first))
            raw["bare_nested_acquire_depth1"].append(_bare_nested(sizes.nested_ops, first))
            raw["bh_memory"].append(_memory(sizes.memory_objects, first))
            rig.check()
    specs = _specs()
    results = []
    for name, pairs in raw.items():
        spec = specs[name]
        ours = statistics.median(o for o, _ in pairs)
        peer = statistics.median(p for _, p in pairs)
        if not peer > 0:
            raise BenchError(f"{name}: the peer measured {peer} {spec.unit}; no ratio")
        results.append(BenchResult(name, ours, peer, spec.unit, spec.target, spec.peer_is))
    return results


# ---------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------
def _num(v: float) -> str:
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def format_table(results: Sequence[BenchResult]) -> str:
    """The figures as a fixed-width table, then what each peer is."""
    head = ("name", "ours", "peer", "unit", "ratio", "target", "met")
    rows = [
        (r.name, _num(r.ours), _num(r.peer), r.unit, f"{r.ratio:.2f}", str(r.target),
         "yes" if r.met else "NO")
        for r in results
    ]
    widths = [max(len(row[i]) for row in (head, *rows)) for i in range(len(head))]
    right = {1, 2, 4}

    def line(row: Sequence[str]) -> str:
        cells = (c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        return "  ".join(cells).rstrip()

    out = [line(head), line(["-" * w for w in widths]), *map(line, rows), "", "peers:"]
    seen: dict[str, list[str]] = {}
    for r in results:
        seen.setdefault(r.peer_is, []).append(r.name)
    for peer_is, names in seen.items():
        out.append(f"  {', '.join(names)}: {peer_is}")
    out.append("ratio = ours / peer; met = target holds (on ours where the target has a unit)")
    out.append(
        "bh_pingpong, latencies and stop_world run pinned where the machine allows: the waking "
        "thread on one CPU, every loop thread (ours and asyncio's) on another"
    )
    return "\n".join(out)


def write_json(results: Sequence[BenchResult], path: Path) -> None:
    """Write ``{"benchmarks": [...]}`` atomically (see :func:`files.atomic_write_text`).
    Raises OSError (and leaves ``path`` untouched) when that fails."""
    data = json.dumps({"benchmarks": [r.to_json() for r in results]}, indent=2) + "\n"
    atomic_write_text(path, data)
