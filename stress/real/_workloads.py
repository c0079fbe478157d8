"""Real-thread stress workloads, each graded the jcstress way.

Why it exists: the controlled explorer proves what it can reach in small programs; these
workloads run impl for real, on many threads, with noise, for as long as the budget allows,
and check what the threads *observed*.  Prior art: OpenJDK jcstress (a test declares the
outcomes it may observe as ACCEPTABLE, ACCEPTABLE_INTERESTING or FORBIDDEN; anything not
declared is forbidden; the report is a histogram), QEMU's tests/test-aio-multithread.c
(cross-thread BH scheduling between IOThreads) and tests/test-rfifolock.c (acquire storms).

A :class:`Workload` is a name, a description, default parameters, the outcomes it declares
and a ``run`` function that performs one *trial* on a fresh :class:`Trial` (its own
platform, seeded RNG, IOThreads) and returns one outcome string such as ``"all-delivered"``
or ``"lost:3"``.  A declared pattern ending in ``*`` matches a family (``lost:*``).

Rules every workload follows (the runner relies on them):

* every wait is bounded (:meth:`Trial.wait`, ``acquire(timeout=...)``) and loops check
  :attr:`Trial.cancelled`, so a trial the watchdog gives up on can still end;
* IOThreads come from :meth:`Trial.iothread` and helper threads from :meth:`Trial.spawn`:
  :meth:`Trial.close` joins them all with timeouts, on failure too;
* random choices (which context, how deep, which operation) are drawn from
  :attr:`Trial.rng` in the trial's own thread before the helpers start, so a seed fixes
  them; thread timing itself is not deterministic and no seed can fix it;
* nothing sleeps to synchronise: threads wait on events, locks and file descriptors.
"""

from __future__ import annotations

import enum
import errno
import os
import random
import select
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from types import FrameType, MappingProxyType
from typing import Any

from aioctx_verify import impl
from aioctx_verify.impl import (
    AioCtxError,
    BlockRequest,
    ClockType,
    DataplaneDevice,
    IOThread,
    IOThreadStateError,
    Platform,
    QEMUTimer,
    ThreadPoolRequest,
    VMState,
)
from aioctx_verify.impl._platform import RawNotifier

from ..mutation import pending_work, slowness, stuck_evidence

__all__ = [
    "INCONCLUSIVE",
    "WORKLOADS",
    "Grade",
    "Outcome",
    "Params",
    "Stall",
    "StallWatch",
    "Trial",
    "TrialInconclusive",
    "Workload",
    "dump_stacks",
]

#: The outcome of a trial whose bounded wait ran out while nothing was seen stuck.
INCONCLUSIVE = "inconclusive"


class TrialInconclusive(Exception):
    """A trial cannot go on for a reason that is the machine's, not impl's (a thread the OS
    did not start in time); the runner grades the trial ``inconclusive``."""
#: Longest single slice of a bounded wait, so a cancelled trial ends promptly.
_SLICE = 0.02
#: How often the stall watch samples the IOThreads (seconds).
STALL_SAMPLE = 0.05


class Grade(str, enum.Enum):
    """jcstress's grades.  An outcome a workload did not declare is FORBIDDEN."""

    ACCEPTABLE = "ACCEPTABLE"
    ACCEPTABLE_INTERESTING = "ACCEPTABLE_INTERESTING"
    FORBIDDEN = "FORBIDDEN"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Outcome:
    """One declared outcome.

    Attributes:
        pattern: the outcome string, or a prefix ending in ``*`` (``"lost:*"``).
        grade: how a trial that observed it is graded.
        description: what the threads saw, for the report.
        prop: the property (``P1``/``P2``/``P3``/``LIVE``) a FORBIDDEN outcome witnesses.
    """

    pattern: str
    grade: Grade
    description: str
    prop: str | None = None

    def matches(self, outcome: str) -> bool:
        if self.pattern.endswith("*"):
            return outcome.startswith(self.pattern[:-1])
        return outcome == self.pattern


@dataclass(frozen=True, slots=True)
class Params:
    """The size of a run: helper threads, IOThreads, operations per thread, seconds."""

    threads: int
    iothreads: int
    rounds: int
    seconds: float

    def __post_init__(self) -> None:
        assert self.threads >= 1 and self.iothreads >= 1 and self.rounds >= 1, self
        assert self.seconds >= 0, self


@dataclass(frozen=True)
class Workload:
    """A named, parameterised stress workload with declared outcomes."""

    name: str
    description: str
    run: Callable[[Trial], str]
    outcomes: tuple[Outcome, ...]
    defaults: Params

    def declared(self, outcome: str) -> Outcome | None:
        """The first declared outcome matching ``outcome``, or None (then: FORBIDDEN)."""
        return next((o for o in self.outcomes if o.matches(outcome)), None)

    def grade(self, outcome: str) -> Grade:
        """The declared grade; ``inconclusive`` (no answer, see :meth:`Trial.expired`) is
        never FORBIDDEN, declared or not; any other undeclared outcome is."""
        d = self.declared(outcome)
        if d is None and outcome == INCONCLUSIVE:
            return Grade.ACCEPTABLE_INTERESTING
        return Grade.FORBIDDEN if d is None else d.grade


class Trial:
    """One trial's world, built by the runner and torn down by :meth:`close`.

    Attributes:
        platform: the platform every impl object of the trial is built on (maybe noisy).
        rng: seeded; draw every random choice from it in the trial's own thread.
        params: the run's parameters.
        index: the trial's number in the run.
        patience: seconds any single wait may last before it counts as lost.
        stall_bound: seconds an IOThread may sleep with work pending before it counts as a
            lost wake-up (default ``patience / 2``, so it is noticed before the workload's
            own waits give up).
        cancelled: set by the watchdog when it gives up on the trial.
        closing: set when :meth:`close` starts (the runner's stall watch stops then).
        ops: operations the trial performed (sections, hops, requests...), for ops/s.
        errors: what went wrong in helper threads, IOThread callbacks and clean-up.
        raised: ``(error, exception)`` for the errors an exception caused, in order (the
            exception's type says which property it witnesses, if any).
        stalls: lost wake-ups found while tearing down, with :attr:`stall_stacks`.
        unsure: bounded waits that ran out with nothing seen stuck (:meth:`expired`): the
            machine may just be slow, so the trial is ``inconclusive``, not a failure.
    """

    def __init__(
        self,
        platform: Platform,
        rng: random.Random,
        params: Params,
        *,
        index: int = 0,
        patience: float = 2.0,
        cancelled: threading.Event | None = None,
        stall_bound: float | None = None,
    ) -> None:
        self.platform = platform
        self.rng = rng
        self.params = params
        self.index = index
        self.patience = patience
        self.stall_bound = patience / 2 if stall_bound is None else stall_bound
        self.cancelled = cancelled if cancelled is not None else threading.Event()
        self.closing = False
        self.ops = 0
        self.errors: list[str] = []
        self.raised: list[tuple[str, BaseException]] = []
        self.stalls: list[Stall] = []
        self.stall_stacks: dict[str, str] = {}
        self.unsure: list[str] = []
        self.iothreads: list[IOThread] = []
        self.threads: list[threading.Thread] = []
        self._cleanups: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    # -- building ----------------------------------------------------------------------
    def iothread(self, name: str) -> IOThread:
        """A started IOThread of this trial (joined by :meth:`close`).

        Raises :class:`TrialInconclusive` if its thread has not run at all within
        :attr:`patience` (a slow machine: the OS did not schedule it; nothing in impl has
        happened yet that could be stuck)."""
        it = IOThread(self.platform, name=f"t{self.index}.{name}")
        self.iothreads.append(it)
        try:
            it.start(timeout=self.patience)
        except IOThreadStateError:
            if it.thread_id is not None:
                raise  # it ran, yet its start was not seen: impl's failure
            message = f"IOThread {it.name} did not start within {self.patience:g} s"
            with self._lock:
                self.unsure.append(f"{message} (machine too slow?)")
            raise TrialInconclusive(message) from None
        return it

    def spawn(self, target: Callable[[], object], name: str) -> threading.Thread:
        """Start a helper thread; an exception in it is recorded in :attr:`errors`."""

        def body() -> None:
            try:
                target()
            except BaseException as e:
                self.error(f"thread {name} raised {_describe(e)}", e)

        t = threading.Thread(target=body, name=f"t{self.index}.{name}", daemon=True)
        self.threads.append(t)
        t.start()
        return t

    def on_close(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` in :meth:`close` before the IOThreads are joined (last added first)."""
        self._cleanups.append(fn)

    def error(self, message: str, exc: BaseException | None = None) -> None:
        with self._lock:
            self.errors.append(message)
            if exc is not None:
                self.raised.append((message, exc))

    def reported_errors(self) -> list[str]:
        """A snapshot of :attr:`errors` (helper threads may still be adding to it)."""
        with self._lock:
            return list(self.errors)

    def reported_exceptions(self) -> list[tuple[str, BaseException]]:
        """A snapshot of :attr:`raised`."""
        with self._lock:
            return list(self.raised)

    # -- waiting -------------------------------------------------------------------------
    def wait(self, ev: threading.Event, timeout: float | None = None) -> bool:
        """Wait for ``ev`` at most ``timeout`` (default: :attr:`patience`) seconds, or until
        the trial is cancelled.  Returns whether ``ev`` is set."""
        deadline = time.monotonic() + (self.patience if timeout is None else timeout)
        while not ev.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or self.cancelled.is_set():
                return ev.is_set()
            ev.wait(min(left, _SLICE))
        return True

    def join_spawned(self, timeout: float | None = None) -> bool:
        """Join every helper thread within ``timeout`` (default: patience) in all."""
        deadline = time.monotonic() + (self.patience if timeout is None else timeout)
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)

    def expired(self, seen: _Observed, outcome: str) -> None:
        """A bounded wait ran out (``outcome``: ``starved``, ``lost:<n>``): a FORBIDDEN
        finding only with structural evidence that the trial is stuck
        (:func:`~aioctx_verify.stress.mutation.stuck_evidence` over its IOThreads: one
        asleep with work due, or a lock free with waiters queued, seen twice across a
        window scaled by the machine's speed); otherwise the trial is inconclusive."""
        if self.cancelled.is_set():
            return  # the runner ended the trial (a stall, or its deadline): not this wait
        evidence = stuck_evidence(self.iothreads, stop=self.cancelled)
        if evidence is not None:
            seen.forbid(outcome)
            self.error(f"{outcome}: {evidence}")
        else:
            with self._lock:
                self.unsure.append(f"{outcome}: a wait ran out and nothing was seen stuck")
            seen.forbid(INCONCLUSIVE)

    # -- tearing down ---------------------------------------------------------------------
    def close(self) -> None:
        """Clean-ups, then helper threads, then IOThreads: each bounded, on failure too.

        An IOThread that does not stop is watched: if it sleeps in ``aio_poll`` with its
        stop (or other work) pending and its notifier clear for :attr:`stall_bound`, that
        is a lost wake-up, recorded in :attr:`stalls` with every thread's stack, and only
        then is it kicked awake so the run can end.  A teardown never rescues silently.
        """
        self.closing = True
        while self._cleanups:
            fn = self._cleanups.pop()
            try:
                fn()
            except BaseException as e:
                self.error(f"clean-up {getattr(fn, '__name__', fn)!s} raised {_describe(e)}", e)
        if not self.join_spawned():
            alive = [t.name for t in self.threads if t.is_alive()]
            # Slow or stuck, the wall clock cannot tell: not a failure (they are leftovers).
            with self._lock:
                self.unsure.append(f"helper threads still running at teardown: {', '.join(alive)}")
        try:
            self._quiesce()
        except BaseException as e:  # a mutant may break one-shot BHs: still join below
            self.error(f"quiescing the IOThreads raised {_describe(e)}", e)
        for it in reversed(self.iothreads):
            self._join_iothread(it)
            for err in it.errors:
                self.error(f"IOThread {it.name}: {_describe(err)}", err)
            if it.error_count > len(it.errors):
                self.error(f"IOThread {it.name}: {it.error_count - len(it.errors)} more errors")

    def _quiesce(self) -> None:
        """Let every IOThread finish the callback it is in before any context is freed.

        A callback of one IOThread may still be inside ``qemu_bh_schedule`` of another
        IOThread's BH (its ``aio_notify`` half) after that BH has already run: freeing the
        target's context then is QEMU's use-after-free pattern (catalogue bug 14), here an
        EBADF on a closed notifier.  A one-shot BH run by each IOThread is a barrier: every
        callback that IOThread was in has returned.  The workload must have stopped making
        new cross-thread work before it returns.  A dead IOThread is skipped (its error is
        reported by :meth:`close`).
        """
        marks = []
        for it in self.iothreads:
            if it.running and not it.ctx.closed and it.is_alive():
                ev = threading.Event()
                it.ctx.bh_schedule_oneshot(_set_event, ev)
                marks.append(ev)
        for ev in marks:
            self.wait(ev)

    def _join_iothread(self, it: IOThread) -> None:
        """Join ``it`` while a :class:`StallWatch` looks for a lost stop wake-up.

        A slow but awake IOThread gets ``2 * patience``; a lost wake-up is recorded, then
        rescued once.  One that still runs after that is an error (and a leftover thread).
        """
        watch = StallWatch(self.stall_bound)
        deadline = time.monotonic() + 2 * self.patience
        rescued = False
        while True:
            try:
                it.join(timeout=STALL_SAMPLE)
                return
            except TimeoutError:
                pass
            except AioCtxError as e:
                self.error(f"joining IOThread {it.name} raised {_describe(e)}", e)
                return
            if not rescued:
                found = watch.sample([it], "teardown")
                if found:
                    self.stalls.extend(found)
                    self.stall_stacks.update(dump_stacks())
                    StallWatch.rescue(it)
                    rescued = True
                    deadline = max(deadline, time.monotonic() + self.patience)
            if time.monotonic() >= deadline:
                # Awake, no lost wake-up seen: slow or stuck in a callback, and the wall
                # clock cannot tell which.  Not a failure; the thread is a leftover.
                with self._lock:
                    self.unsure.append(
                        f"IOThread {it.name} did not stop within {2 * self.patience:.1f} s "
                        "(awake, not a lost wake-up)"
                    )
                return


def _describe(e: BaseException) -> str:
    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    return f"{type(e).__name__}: {e}\n{tb}"


def dump_stacks() -> dict[str, str]:
    """Every live thread's current stack, formatted, by thread name (sorted)."""
    frames = sys._current_frames()
    names = {t.ident: t.name for t in threading.enumerate()}
    out: dict[str, str] = {}
    for ident, frame in frames.items():
        name = names.get(ident, f"thread-{ident}")
        if name in out:
            name = f"{name} ({ident})"
        out[name] = "".join(traceback.format_stack(frame))
    return dict(sorted(out.items()))


# ------------------------------------------------------------------------------------------
# Lost wake-ups: an IOThread asleep while work waits for it
# ------------------------------------------------------------------------------------------
#: Functions that are part of handing work over to a context.  While any thread is inside
#: one, a wake-up may be on its way (the flag is published, the notifier not yet written),
#: so a sleeping IOThread is not yet a lost wake-up.  Mutants' replacements are matched by
#: the ``notify`` / ``kick`` / ``schedule`` in their names.
_WAKERS = frozenset(
    {
        "schedule",
        "schedule_idle",
        "bh_schedule_oneshot",
        "aio_notify",
        "_contention_cb",
        "mod_ns",
        "mod",
        "enable_external",
    }
)


def _is_waker(code: object) -> bool:
    name: str = getattr(code, "co_name", "")
    file: str = getattr(code, "co_filename", "")
    if "impl" not in file:
        return False
    if name == "stop":
        return "_iothread" in file  # IOThread.stop: the stop BH (VMState.stop drains: no)
    return name in _WAKERS or "notify" in name or "kick" in name or "schedule" in name


def _wakers_in_flight(frames: Mapping[int, FrameType], me: int) -> bool:
    for ident, frame in frames.items():
        if ident == me:
            continue
        f: FrameType | None = frame
        while f is not None:
            if _is_waker(f.f_code):
                return True
            f = f.f_back
    return False


@dataclass(frozen=True, slots=True)
class Stall:
    """A lost wake-up: an IOThread slept in an unbounded poll with work pending.

    Attributes:
        iothread: its name.
        pending: what waited (``bh:<name>``, ``contention-kick``, ``lock-waiters:<n>``,
            ``stop-requested``, ``timer-expired``, ``fd:<n>``).
        seconds: how long it was seen asleep with that work pending.
        where: ``run`` (during the workload) or ``teardown`` (while being stopped).
    """

    iothread: str
    pending: tuple[str, ...]
    seconds: float
    where: str

    def __str__(self) -> str:
        return (
            f"lost wake-up ({self.where}): IOThread {self.iothread} slept in aio_poll for "
            f"{self.seconds:.2f} s with {', '.join(self.pending)} pending and its notifier clear"
        )


class StallWatch:
    """Samples IOThreads; reports one that stays asleep with work pending for ``bound`` s.

    A sleep counts from the first sample that saw it; it is reset when the IOThread runs an
    iteration or nothing is pending any more, and is reported only at a sample where no
    thread is inside a hand-over function (a wake-up on its way).  Everything it checks is
    stable state (the context's :meth:`~aioctx_verify.impl.AioContext.debug_snapshot`: its
    poll state, flags and fds; the kernel's view of those fds), so a slow or starved machine
    delays a report but does not make one up.
    """

    def __init__(self, bound: float) -> None:
        self.bound = bound
        self._since: dict[int, tuple[float, int]] = {}

    def sample(self, iothreads: Sequence[IOThread], where: str) -> list[Stall]:
        frames = sys._current_frames()
        now = time.monotonic()
        inflight: bool | None = None
        out: list[Stall] = []
        for it in iothreads:
            key = id(it)
            pend = pending_work(it)
            if pend is None:
                self._since.pop(key, None)
                continue
            first = self._since.get(key)
            if first is None or first[1] != it.iterations:
                self._since[key] = (now, it.iterations)
                continue
            if now - first[0] < self.bound:
                continue
            if now - first[0] < self.bound * slowness():
                continue  # the machine is slower now than at start: a longer window
            if inflight is None:
                inflight = _wakers_in_flight(frames, threading.get_ident())
            if not inflight:
                out.append(Stall(it.name, pend, now - first[0], where))
        return out

    @staticmethod
    def rescue(it: IOThread) -> None:
        """Kick ``it`` awake through its notifier (a wake-up no protocol mutant can drop)."""
        with suppress(AioCtxError, OSError):
            it.ctx.notifier.set()


class _Observed:
    """What a trial's threads saw: forbidden findings (first seen first) and flags."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.forbidden: list[str] = []
        self.flags: set[str] = set()

    def forbid(self, what: str) -> None:
        with self._lock:
            if what not in self.forbidden:
                self.forbidden.append(what)

    def flag(self, what: str) -> None:
        with self._lock:
            self.flags.add(what)

    def outcome(self, base: str, flags: Sequence[str] = ()) -> str:
        """The first forbidden finding, else ``inconclusive`` if a wait ran out with nothing
        seen stuck, else ``base`` with the flags seen, in ``flags`` order."""
        real = [f for f in self.forbidden if f != INCONCLUSIVE]
        if real:
            return real[0]
        if self.forbidden:
            return INCONCLUSIVE
        return ", ".join([base, *(f for f in flags if f in self.flags)])


class _Counter:
    """A thread-safe counter that sets :attr:`reached` when it gets to ``target``."""

    def __init__(self, target: int) -> None:
        self._lock = threading.Lock()
        self.value = 0
        self.target = target
        self.reached = threading.Event()
        if target <= 0:
            self.reached.set()

    def add(self, n: int = 1) -> int:
        with self._lock:
            self.value += n
            v = self.value
        if v >= self.target:
            self.reached.set()
        return v


def _check_home(trial: Trial, it: IOThread, seen: _Observed) -> None:
    """A callback of ``it``'s context must run in ``it``'s thread."""
    if trial.platform.current_thread() != it.thread_id:
        seen.forbid("wrong-thread")


def _set_event(ev: threading.Event) -> None:
    ev.set()


def _forbidden_common(lost_prop: str = "P2") -> tuple[Outcome, ...]:
    F = Grade.FORBIDDEN
    return (
        Outcome(
            "lost:*",
            F,
            "work that was handed over never ran within the patience, and an IOThread was "
            "seen asleep with work due",
            lost_prop,
        ),
        Outcome("wrong-thread", F, "a callback ran outside its context's thread", "P3"),
        Outcome(
            "starved",
            F,
            "an acquire was not granted within the patience, and the trial was seen stuck "
            "(an IOThread asleep with lock waiters due, or a free lock with waiters queued)",
            "LIVE",
        ),
        Outcome(
            INCONCLUSIVE,
            Grade.ACCEPTABLE_INTERESTING,
            "a bounded wait ran out (or the trial outlived its deadline) but nothing was seen "
            "stuck: the machine was too slow to tell; not a failure",
        ),
        Outcome(
            "lost-wakeup:*",
            F,
            "an IOThread slept in aio_poll with work pending and its notifier clear "
            "(during the run, or while being stopped at teardown)",
            "LIVE",
        ),
        Outcome(
            "hang",
            F,
            "the trial did not end before the watchdog's deadline and was seen stuck",
            "LIVE",
        ),
        Outcome("exception:*", F, "the workload itself raised (see errors)"),
    )


# ------------------------------------------------------------------------------------------
# acquire-storm
# ------------------------------------------------------------------------------------------
def _acquire_storm(trial: Trial) -> str:
    """``threads`` acquirers, ``rounds`` sections each; a section takes a sorted subset of
    the IOThreads' contexts, each to a nesting depth of 1-3 (first level with a timeout,
    the rest through ``with ctx``), checks it is alone inside, and schedules a probe BH
    whose callback checks that no acquirer is inside while the IOThread iterates."""
    p = trial.params
    rng = trial.rng
    its = [trial.iothread(f"io{i}") for i in range(p.iothreads)]
    ctxs = [it.ctx for it in its]
    n = len(ctxs)
    seen = _Observed()
    inside: list[int | None] = [None] * n
    in_storm = [True]
    storm_runs = [0] * n  # probe runs while the storm was on, per context (its IOThread only)
    final = [threading.Event() for _ in range(n)]
    armed = [False] * n
    ops = [0]

    def probe(i: int) -> None:
        _check_home(trial, its[i], seen)
        if inside[i] is not None:
            seen.forbid("bh-in-section")
        if in_storm[0]:
            storm_runs[i] += 1
        if armed[i]:
            final[i].set()

    bhs = [ctx.bh_new(probe, i) for i, ctx in enumerate(ctxs)]
    plans = [
        [
            (
                sorted((i, rng.randint(1, 3)) for i in rng.sample(range(n), rng.randint(1, n))),
                rng.random() < 0.5,
            )
            for _ in range(p.rounds)
        ]
        for _ in range(p.threads)
    ]

    def acquirer(plan: list[tuple[list[tuple[int, int]], bool]]) -> None:
        me = trial.platform.current_thread()
        for section, schedule in plan:
            if trial.cancelled.is_set():
                return
            with ExitStack() as stack:
                entered: list[int] = []
                for i, depth in section:
                    if not ctxs[i].acquire(timeout=trial.patience):
                        trial.expired(seen, "starved")
                        return
                    stack.callback(ctxs[i].release)
                    for _ in range(depth - 1):
                        stack.enter_context(ctxs[i])
                    if inside[i] is not None:
                        seen.forbid("overlap")
                    inside[i] = me
                    entered.append(i)
                    stack.callback(inside.__setitem__, i, None)
                trial.platform.yield_now()
                if any(inside[i] != me for i in entered):
                    seen.forbid("overlap")
                if schedule:
                    bhs[entered[-1]].schedule()
            ops[0] += 1

    for k, plan in enumerate(plans):
        trial.spawn(partial(acquirer, plan), f"acquirer{k}")
    if not trial.join_spawned():
        trial.expired(seen, "starved")
    in_storm[0] = False
    for i in range(n):
        armed[i] = True
        bhs[i].schedule()
    lost = sum(1 for ev in final if not trial.wait(ev))
    if lost:
        trial.expired(seen, f"lost:{lost}")
    trial.ops += ops[0]
    if sum(storm_runs) == 0 and any(s for plan in plans for _, s in plan):
        seen.flag("probes-deferred")
    return seen.outcome("exclusive", ["probes-deferred"])


_A, _I, _F = Grade.ACCEPTABLE, Grade.ACCEPTABLE_INTERESTING, Grade.FORBIDDEN

ACQUIRE_STORM = Workload(
    name="acquire-storm",
    description=(
        "acquirers take random sorted subsets of the IOThreads' contexts with nesting 1-3 "
        "while the IOThreads poll; each section checks it is alone and schedules a probe BH"
    ),
    run=_acquire_storm,
    outcomes=(
        Outcome("exclusive", _A, "every section was alone; probes ran during the storm"),
        Outcome(
            "exclusive, probes-deferred",
            _I,
            "every section was alone; no probe ran until the acquirers were done",
        ),
        Outcome("overlap", _F, "two threads were inside one context at once", "P1"),
        Outcome("bh-in-section", _F, "a BH ran while an acquirer held its context", "P3"),
        *_forbidden_common(),
    ),
    defaults=Params(threads=4, iothreads=2, rounds=25, seconds=1.0),
)


# ------------------------------------------------------------------------------------------
# bh-ping-pong
# ------------------------------------------------------------------------------------------
def _bh_ping_pong(trial: Trial) -> str:
    """``threads`` tokens travel round a ring of ``iothreads`` IOThreads, ``rounds`` hops
    each; a hop is a BH of the next IOThread scheduled from the current one's callback."""
    p = trial.params
    its = [trial.iothread(f"io{i}") for i in range(p.iothreads)]
    n = len(its)
    seen = _Observed()
    hops = [0] * p.threads
    at = [k % n for k in range(p.threads)]  # where token k must be next
    finished = _Counter(p.threads)
    slept = [0] * p.threads  # hops whose target was (about to be) blocked in aio_poll

    def hop(arg: tuple[int, int]) -> None:
        k, j = arg
        _check_home(trial, its[j], seen)
        if at[k] != j:
            seen.forbid("spurious-run")
            return
        hops[k] += 1
        if hops[k] >= p.rounds:
            at[k] = -1
            finished.add()
            return
        nxt = (j + 1) % n
        at[k] = nxt
        if its[nxt].ctx.notify_me.load():
            slept[k] += 1
        bhs[k][nxt].schedule()

    bhs = [[it.ctx.bh_new(hop, (k, j)) for j, it in enumerate(its)] for k in range(p.threads)]
    for k in range(p.threads):
        bhs[k][k % n].schedule()
    if not trial.wait(finished.reached):
        trial.expired(seen, f"lost:{p.threads * p.rounds - sum(hops)}")
    trial.ops += sum(hops)
    if not sum(slept):
        seen.flag("never-slept")
    return seen.outcome("all-delivered", ["never-slept"])


BH_PING_PONG = Workload(
    name="bh-ping-pong",
    description=(
        "tokens hop round a ring of IOThreads; each hop schedules a BH of the next IOThread "
        "from the current one's callback"
    ),
    run=_bh_ping_pong,
    outcomes=(
        Outcome("all-delivered", _A, "every hop ran, in its IOThread; some woke a sleeper"),
        Outcome(
            "all-delivered, never-slept",
            _I,
            "every hop ran, and no hop found its target blocked in aio_poll (no wake-up)",
        ),
        Outcome("spurious-run", _F, "a hop BH ran without being scheduled", "P2"),
        *_forbidden_common(),
    ),
    defaults=Params(threads=2, iothreads=2, rounds=50, seconds=1.0),
)


# ------------------------------------------------------------------------------------------
# bh-fan-in
# ------------------------------------------------------------------------------------------
def _bh_fan_in(trial: Trial) -> str:
    """``threads`` plain threads and ``iothreads - 1`` IOThreads each post a sequence number
    and schedule one shared BH of the first IOThread, ``rounds`` times; its callback reads
    every producer's latest post."""
    p = trial.params
    its = [trial.iothread(f"io{i}") for i in range(p.iothreads)]
    target = its[0]
    producers = p.threads + len(its) - 1
    seen = _Observed()
    posted = [0] * producers
    got = [0] * producers
    runs = [0]
    schedules = [0] * producers
    done = threading.Event()

    def consume(_: object) -> None:
        _check_home(trial, target, seen)
        runs[0] += 1
        for k in range(producers):
            v = posted[k]
            if v < got[k]:
                seen.forbid("went-back")
            got[k] = v
        if all(v == p.rounds for v in got):
            done.set()

    bh = target.ctx.bh_new(consume)
    yields = [[trial.rng.random() < 0.2 for _ in range(p.rounds)] for _ in range(p.threads)]

    def producer(k: int) -> None:
        for r in range(1, p.rounds + 1):
            if trial.cancelled.is_set():
                return
            posted[k] = r
            bh.schedule()
            schedules[k] += 1
            if yields[k][r - 1]:
                trial.platform.yield_now()

    def io_producer(k: int) -> None:
        _check_home(trial, its[k - p.threads + 1], seen)
        posted[k] += 1
        bh.schedule()
        schedules[k] += 1
        if posted[k] < p.rounds and not trial.cancelled.is_set():
            io_bhs[k - p.threads].schedule()

    io_bhs = [it.ctx.bh_new(io_producer, p.threads + i) for i, it in enumerate(its[1:])]
    for k in range(p.threads):
        trial.spawn(partial(producer, k), f"producer{k}")
    for b in io_bhs:
        b.schedule()
    trial.join_spawned()
    if not trial.wait(done):
        trial.expired(seen, f"lost:{sum(1 for v in got if v != p.rounds)}")
    total = sum(schedules)
    trial.ops += total
    if runs[0] > total:
        seen.forbid("spurious-run")
    if runs[0] == total:
        seen.flag("no-coalescing")
    return seen.outcome("all-seen", ["no-coalescing"])


BH_FAN_IN = Workload(
    name="bh-fan-in",
    description=(
        "threads and IOThreads post sequence numbers and schedule one shared BH of an "
        "IOThread; its callback must end up seeing every producer's last post"
    ),
    run=_bh_fan_in,
    outcomes=(
        Outcome("all-seen", _A, "the BH saw every last post; some schedules coalesced"),
        Outcome(
            "all-seen, no-coalescing",
            _I,
            "the BH saw every last post and ran once per schedule (nothing coalesced)",
        ),
        Outcome("went-back", _F, "a run read an older post than an earlier run had", "P2"),
        Outcome("spurious-run", _F, "the BH ran more often than it was scheduled", "P2"),
        *_forbidden_common(),
    ),
    defaults=Params(threads=4, iothreads=2, rounds=50, seconds=1.0),
)


# ------------------------------------------------------------------------------------------
# stop-the-world
# ------------------------------------------------------------------------------------------
def _stop_the_world(trial: Trial) -> str:
    """IOThreads spin on a self-rescheduling BH; ``threads`` stoppers pause them all
    ``rounds`` times each: nothing may run while paused, everything must resume after."""
    p = trial.params
    its = [trial.iothread(f"io{i}") for i in range(p.iothreads)]
    seen = _Observed()
    counters = [0] * len(its)
    spinning = [True]
    lock = threading.Lock()
    state = {"inside": 0, "wanting": 0}
    met = [False]  # a stopper held the world while another one wanted it
    stops = [0]

    def spin(i: int) -> None:
        counters[i] += 1
        if spinning[0]:
            busy[i].schedule()
        # Busy like an IOThread doing I/O: it gives up the GIL each time, so the stoppers
        # are not starved by spinning threads that only the switch interval interrupts.
        trial.platform.yield_now()

    busy = [it.ctx.bh_new(spin, i) for i, it in enumerate(its)]
    plans = [[trial.rng.random() < 0.5 for _ in range(p.rounds)] for _ in range(p.threads)]

    def stopper(plan: list[bool]) -> None:
        for by_registry in plan:
            if trial.cancelled.is_set():
                return
            with lock:
                state["wanting"] += 1
            try:
                # Looked up on each call: a mutant may swap impl.stop_the_world.
                world = (
                    impl.stop_the_world(platform=trial.platform, timeout=trial.patience)
                    if by_registry
                    else impl.stop_the_world(its, timeout=trial.patience)
                )
                with world:
                    with lock:
                        state["inside"] += 1
                        if state["inside"] > 1:
                            seen.forbid("overlap")
                        if state["wanting"] > 1:
                            met[0] = True
                    before = list(counters)
                    for _ in range(3):
                        trial.platform.yield_now()
                    if counters != before:
                        seen.forbid("ran-while-paused")
                    with lock:
                        state["inside"] -= 1
            except TimeoutError:
                trial.expired(seen, "starved")
                return
            finally:
                with lock:
                    state["wanting"] -= 1
            stops[0] += 1
            resumed = [threading.Event() for _ in its]
            for it, ev in zip(its, resumed, strict=True):
                it.ctx.bh_schedule_oneshot(_set_event, ev)
            if not all(trial.wait(ev) for ev in resumed):
                trial.expired(seen, "not-resumed")  # a failure only with evidence of a stall
                return

    for b in busy:
        b.schedule()
    for k, plan in enumerate(plans):
        trial.spawn(partial(stopper, plan), f"stopper{k}")
    trial.join_spawned()
    spinning[0] = False
    trial.ops += stops[0]
    if not met[0]:
        seen.flag("stoppers-never-met")
    return seen.outcome("paused-all", ["stoppers-never-met"])


STOP_THE_WORLD = Workload(
    name="stop-the-world",
    description=(
        "IOThreads spin on self-rescheduling BHs while stoppers pause them all with "
        "stop_the_world (explicit list or the platform's registry) and check nothing runs"
    ),
    run=_stop_the_world,
    outcomes=(
        Outcome("paused-all", _A, "every pause held, every IOThread resumed, stoppers met"),
        Outcome(
            "paused-all, stoppers-never-met",
            _I,
            "as paused-all, but no stopper ever waited for another (no stopper contention)",
        ),
        Outcome("overlap", _F, "two stoppers held the world at once", "P1"),
        Outcome("ran-while-paused", _F, "an IOThread ran a BH while paused", "P3"),
        Outcome("not-resumed", _F, "an IOThread did not run a BH after the pause", "LIVE"),
        *_forbidden_common(),
    ),
    defaults=Params(threads=2, iothreads=3, rounds=8, seconds=1.0),
)


# ------------------------------------------------------------------------------------------
# dataplane
# ------------------------------------------------------------------------------------------
def _dataplane(trial: Trial) -> str:
    """One dataplane device per IOThread; ``threads`` guests submit ``rounds`` requests each
    while a migration thread stops and starts the VM; every request must complete once."""
    p = trial.params
    rng = trial.rng
    its = [trial.iothread(f"io{i}") for i in range(p.iothreads)]
    vm = VMState(trial.platform)
    devs = [DataplaneDevice(it, vm) for it in its]
    for d in devs:
        trial.on_close(d.close)
        d.start()
    seen = _Observed()
    plans = [[rng.randrange(len(devs)) for _ in range(p.rounds)] for _ in range(p.threads)]
    reqs = [
        BlockRequest(g * p.rounds + r, sector=r, data=bytes(1 + (g + r) % 7))
        for g in range(p.threads)
        for r in range(p.rounds)
    ]
    guests_done = threading.Event()
    migrator_id: list[int] = []

    def guest(g: int) -> None:
        for r, dev in enumerate(plans[g]):
            if trial.cancelled.is_set():
                return
            devs[dev].guest_submit(reqs[g * p.rounds + r])

    def migrator() -> None:
        migrator_id.append(trial.platform.current_thread())
        while not guests_done.is_set() and not trial.cancelled.is_set():
            vm.stop()
            if any(d.inflight for d in devs):
                seen.forbid("inflight-after-stop")
            before = [d.completed for d in devs]
            trial.platform.yield_now()
            if any(d.queued() for d in devs):
                seen.flag("held-while-stopped")
            if [d.completed for d in devs] != before:
                seen.forbid("completed-while-stopped")
            vm.start()
            trial.platform.yield_now()

    mig = trial.spawn(migrator, "migrator")
    guests = [trial.spawn(partial(guest, g), f"guest{g}") for g in range(p.threads)]
    deadline = time.monotonic() + trial.patience
    for t in guests:
        t.join(max(0.0, deadline - time.monotonic()))
    guests_done.set()
    mig.join(max(0.0, deadline - time.monotonic()))
    vm.start()
    collected = _collect(trial, devs, len(reqs))
    allowed = {it.thread_id for it in its} | set(migrator_id)
    lost = sum(1 for r in reqs if r.completions == 0)
    trial.ops += len(reqs) - lost
    if any(r.completions > 1 for r in reqs) or collected > len(reqs):
        seen.forbid("duplicated")
    if lost:
        trial.expired(seen, f"lost:{lost}")
    elif sum(d.completed for d in devs) != len(reqs) or any(d.inflight for d in devs):
        seen.forbid("miscounted")  # the devices' own counters against the requests
    for r in reqs:
        if r.completions and r.ret != len(r.data):
            seen.forbid("bad-ret")
        if any(t not in allowed for t in r.completed_in):
            seen.forbid("wrong-thread")
        if migrator_id and migrator_id[0] in r.completed_in:
            seen.flag("drained-by-stop")
    return seen.outcome("all-completed", ["drained-by-stop", "held-while-stopped"])


def _collect(trial: Trial, devs: list[DataplaneDevice], total: int) -> int:
    """The guest's interrupt handler: wait on the guest notifiers, take the used rings."""
    poller = select.poll()
    for d in devs:
        poller.register(d.guest_notifier.fd, select.POLLIN)
    got = 0
    deadline = time.monotonic() + trial.patience
    while True:
        got += sum(len(d.guest_collect()) for d in devs)
        left = deadline - time.monotonic()
        if got >= total or left <= 0 or trial.cancelled.is_set():
            return got
        poller.poll(max(1, int(min(left, _SLICE) * 1000)))


def _dataplane_outcomes() -> tuple[Outcome, ...]:
    base = "all-completed"
    drained = "some requests were completed by the draining vm_stop, not the IOThread"
    held = "requests waited on the ring while the VM was stopped"
    return (
        Outcome(base, _A, "every request completed exactly once"),
        Outcome(f"{base}, drained-by-stop", _I, f"as {base}; {drained}"),
        Outcome(f"{base}, held-while-stopped", _A, f"as {base}; {held}"),
        Outcome(f"{base}, drained-by-stop, held-while-stopped", _I, f"{drained}; {held}"),
        Outcome("duplicated", _F, "a request completed twice", "P2"),
        Outcome("bad-ret", _F, "a request completed with the wrong return value", "P2"),
        Outcome("inflight-after-stop", _F, "vm_stop returned with requests in flight", "P3"),
        Outcome("completed-while-stopped", _F, "a request completed while stopped", "P3"),
        Outcome("miscounted", _F, "the devices' completed / in-flight counters disagree "
                "with the requests completed", "P2"),
        *_forbidden_common(),
    )


DATAPLANE = Workload(
    name="dataplane",
    description=(
        "guests submit block requests to dataplane devices while a migration thread stops "
        "and starts the VM; every request must complete exactly once, never while stopped"
    ),
    run=_dataplane,
    outcomes=_dataplane_outcomes(),
    defaults=Params(threads=2, iothreads=1, rounds=40, seconds=1.0),
)


# ------------------------------------------------------------------------------------------
# timer-churn
# ------------------------------------------------------------------------------------------
class _TimerState:
    __slots__ = ("expire", "home", "lock", "state", "timer")

    def __init__(self, home: int) -> None:
        self.lock = threading.Lock()
        self.state = "idle"  # idle | armed | deleted | locked-del | final | fired-final
        self.expire = 0
        self.home = home
        self.timer: QEMUTimer | None = None


def _timer_churn(trial: Trial) -> str:
    """``threads`` churners arm and disarm timers of the IOThreads' contexts ``rounds`` times
    each: ``timer_mod`` and ``timer_del`` lock-free, or ``timer_del`` holding the context;
    then every timer is armed once more and must fire exactly once, never early."""
    p = trial.params
    rng = trial.rng
    its = [trial.iothread(f"io{i}") for i in range(p.iothreads)]
    clock = trial.platform.monotonic_ns
    seen = _Observed()
    states = [_TimerState(i % len(its)) for i in range(2 * len(its))]
    finals = _Counter(len(states))

    def fire(ts: _TimerState) -> None:
        _check_home(trial, its[ts.home], seen)
        with ts.lock:
            if ts.state == "locked-del":
                seen.forbid("fired-after-locked-del")
            elif ts.state == "deleted":
                seen.flag("fired-after-del")
            elif ts.state == "final":
                if clock() < ts.expire:
                    seen.forbid("fired-early")
                ts.state = "fired-final"
                finals.add()
            elif ts.state == "fired-final":
                seen.forbid("fired-twice")

    for ts in states:
        ts.timer = its[ts.home].ctx.timer_new(ClockType.REALTIME, 1, fire, ts)
    ops = ("mod", "mod", "del", "locked-del")
    plans = [
        [(rng.choice(ops), rng.choice(states), rng.randrange(2_000_000)) for _ in range(p.rounds)]
        for _ in range(p.threads)
    ]

    def churner(plan: list[tuple[str, _TimerState, int]]) -> None:
        for op, ts, delay in plan:
            if trial.cancelled.is_set():
                return
            t = ts.timer
            assert t is not None
            if op == "mod":
                with ts.lock:
                    ts.state = "armed"
                    t.mod_ns(clock() + delay)
            elif op == "del":
                with ts.lock:
                    t.delete()
                    ts.state = "deleted"
            else:
                ctx = its[ts.home].ctx
                if not ctx.acquire(timeout=trial.patience):
                    trial.expired(seen, "starved")
                    return
                try:
                    with ts.lock:
                        t.delete()
                        ts.state = "locked-del"
                finally:
                    ctx.release()

    for k, plan in enumerate(plans):
        trial.spawn(partial(churner, plan), f"churner{k}")
    trial.join_spawned()
    for ts in states:
        ctx = its[ts.home].ctx
        if not ctx.acquire(timeout=trial.patience):
            trial.expired(seen, "starved")
            break
        try:
            with ts.lock:
                ts.state = "final"
                ts.expire = clock() + rng.randrange(1_000_000)
                assert ts.timer is not None
                ts.timer.mod_ns(ts.expire)
        finally:
            ctx.release()
    trial.ops += p.threads * p.rounds + len(states)
    if not trial.wait(finals.reached):
        trial.expired(seen, f"lost:{len(states) - finals.value}")
    return seen.outcome("all-fired", ["fired-after-del"])


TIMER_CHURN = Workload(
    name="timer-churn",
    description=(
        "churners timer_mod / timer_del timers of IOThread contexts (lock-free or holding "
        "the context); then each timer is armed once more and must fire once, not early"
    ),
    run=_timer_churn,
    outcomes=(
        Outcome("all-fired", _A, "every final arm fired once, on time, in its IOThread"),
        Outcome(
            "all-fired, fired-after-del",
            _I,
            "as all-fired; a timer already taken off its list fired after a lock-free "
            "timer_del (the run had begun)",
        ),
        Outcome(
            "fired-after-locked-del",
            _F,
            "a timer fired after timer_del done while holding its context",
            "P3",
        ),
        Outcome("fired-early", _F, "a timer fired before its expiry time", "LIVE"),
        Outcome("fired-twice", _F, "a timer fired twice for one arm", "LIVE"),
        *_forbidden_common("LIVE"),
    ),
    defaults=Params(threads=3, iothreads=2, rounds=40, seconds=1.0),
)


# ------------------------------------------------------------------------------------------
# thread-pool
# ------------------------------------------------------------------------------------------
def _thread_pool(trial: Trial) -> str:
    """``threads`` submitters each submit ``rounds`` requests to the pools of the IOThreads'
    contexts (two workers each, so requests queue) holding the context, and cancel some
    earlier ones; every callback must run once, in its IOThread, with a coherent result."""
    p = trial.params
    rng = trial.rng
    its = [trial.iothread(f"io{i}") for i in range(p.iothreads)]
    pools = []
    for it in its:
        with it.ctx:
            pool = it.ctx.thread_pool()
            pool.max_threads = 2
            pools.append(pool)
    seen = _Observed()
    total = p.threads * p.rounds
    ran = [False] * total
    calls = [0] * total
    rets = [0] * total
    cancel_asked = [False] * total
    home = [0] * total
    handles: list[ThreadPoolRequest | None] = [None] * total
    done = _Counter(total)

    def work(rid: int) -> int:
        ran[rid] = True
        return rid

    def complete(rid: int, ret: int) -> None:
        _check_home(trial, its[home[rid]], seen)
        calls[rid] += 1
        rets[rid] = ret
        done.add()

    plans = [
        [
            (rng.randrange(len(its)), rng.randrange(r + 1) if rng.random() < 0.5 else None)
            for r in range(p.rounds)
        ]
        for _ in range(p.threads)
    ]

    def submitter(s: int) -> None:
        for r, (i, cancel) in enumerate(plans[s]):
            if trial.cancelled.is_set():
                return
            rid = s * p.rounds + r
            home[rid] = i
            ctx = its[i].ctx
            if not ctx.acquire(timeout=trial.patience):
                trial.expired(seen, "starved")
                return
            try:
                handles[rid] = pools[i].submit(work, rid, complete, rid)
            finally:
                ctx.release()
            if cancel is not None:
                cid = s * p.rounds + cancel
                req = handles[cid]
                assert req is not None
                cancel_asked[cid] = True
                cctx = its[home[cid]].ctx
                if not cctx.acquire(timeout=trial.patience):
                    trial.expired(seen, "starved")
                    return
                try:
                    req.cancel_async()
                finally:
                    cctx.release()

    for s in range(p.threads):
        trial.spawn(partial(submitter, s), f"submitter{s}")
    trial.join_spawned()
    submitted = sum(1 for h in handles if h is not None)
    trial.ops += submitted
    if not trial.wait(done.reached):
        trial.expired(seen, f"lost:{submitted - sum(1 for c in calls if c)}")
    cancelled = 0
    for rid in range(total):
        if handles[rid] is None:
            continue
        if calls[rid] > 1:
            seen.forbid("completed-twice")
        if not calls[rid]:
            continue
        if rets[rid] == -errno.ECANCELED:
            cancelled += 1
            if ran[rid]:
                seen.forbid("ran-and-cancelled")
            if not cancel_asked[rid]:
                seen.forbid("spurious-cancel")
        elif rets[rid] != rid or not ran[rid]:
            seen.forbid("bad-ret")
    if cancelled:
        seen.flag("some-cancelled")
    return seen.outcome("all-completed", ["some-cancelled"])


THREAD_POOL = Workload(
    name="thread-pool",
    description=(
        "submitters submit blocking work to IOThread contexts' thread pools and cancel "
        "earlier requests; each completion runs once, in its IOThread, coherent with cancel"
    ),
    run=_thread_pool,
    outcomes=(
        Outcome("all-completed", _A, "every request ran and completed once (cancels too late)"),
        Outcome(
            "all-completed, some-cancelled",
            _A,
            "every request completed once; some were cancelled while still queued",
        ),
        Outcome("completed-twice", _F, "a completion callback ran twice", "P2"),
        Outcome("ran-and-cancelled", _F, "a request ran yet completed as cancelled", "P2"),
        Outcome("spurious-cancel", _F, "a request nobody cancelled completed cancelled", "P2"),
        Outcome("bad-ret", _F, "a completion carried the wrong return value", "P2"),
        *_forbidden_common(),
    ),
    defaults=Params(threads=3, iothreads=1, rounds=30, seconds=1.0),
)


# ------------------------------------------------------------------------------------------
# platform-primitives
# ------------------------------------------------------------------------------------------
#: Switch intervals (seconds) a platform-primitives trial draws from and sets while its
#: threads run (never raising a smaller one the runner set).  The GIL then changes hands as
#: often as the OS lets a waiting thread run, so a switch sometimes lands inside a
#: primitive's few bytecodes (after the RMW lock's ``__exit__``, say).  It can only land
#: where the interpreter checks for one (a call, a jump back): between two plain
#: statements, never.
PRIMITIVE_SWITCH = (1e-6, 2e-6, 5e-6)
#: Chances (drawn per trial) that a primitive thread yields the GIL at each line it runs
#: inside the real platform's own code (``impl/_real.py``, traced with ``sys.settrace``):
#: preemption points between any two statements of a primitive, as a free-threaded
#: interpreter may preempt.  0 (one trial in five) leaves the trial to the switch interval
#: alone.  Measured with the defaults (4 threads, 300 operations each), 10-20 trials per
#: value, load 4-6 on two cores: the switch interval alone broke no trial of any RMW mutant
#: of ``impl/_real.py`` (the window is two bytecodes, among many other operations); 0.02
#: broke 9-10 of 10 of each, 0.05 19-20 of 20 of the three hardest (a store moved out of
#: the lock), 0.1 20 of 20 of the exchange one.
PREEMPT_CHANCES = (0.0, 0.02, 0.03, 0.05, 0.1)
#: Operations between two looks at the stop flags in a primitive thread's loop.
_STOP_EVERY = 64
#: Where the real platform's code is (impl/_real.py), and the files seen so far: whether
#: each is it (or a mutant of it).
_REAL_DIR, _REAL_BASE = os.path.split(
    os.path.abspath(impl.RealPlatform.__init__.__code__.co_filename)
)
_REAL_FILES: dict[str, bool] = {}


def _in_real_platform(filename: str) -> bool:
    """Whether ``filename`` is the real platform's module, or a mutant of it (compiled as
    ``<dir>/[<label>]_real.py``).  Asked at every call a traced thread makes: cached."""
    known = _REAL_FILES.get(filename)
    if known is None:
        d, base = os.path.split(os.path.abspath(filename))
        known = _REAL_FILES[filename] = d == _REAL_DIR and base.endswith(_REAL_BASE)
    return known


def _preempting_tracer(
    rand: Callable[[], float], chance: float, yield_now: Callable[[], None]
) -> Callable[[FrameType, str, object], Any]:
    """A ``sys.settrace`` function that, in frames of the real platform's code only, yields
    the GIL before a line with probability ``chance`` (``rand`` draws)."""

    def line(frame: FrameType, event: str, arg: object) -> Any:
        if event == "line" and rand() < chance:
            yield_now()
        return line

    def call(frame: FrameType, event: str, arg: object) -> Any:
        return line if _in_real_platform(frame.f_code.co_filename) else None

    return call


def _token(k: int, i: int, rounds: int) -> int:
    """The unique value thread ``k`` writes at its ``i``-th operation (0 is the initial)."""
    return 1 + k * rounds + i


def _chain(start: int, succ: Mapping[int, int]) -> tuple[dict[int, int], int] | None:
    """Follow ``succ`` from ``start``: each value's position on the chain, and its last
    value; None when the chain runs into a cycle."""
    pos = {start: 0}
    v = start
    while v in succ:
        v = succ[v]
        if v in pos:
            return None
        pos[v] = len(pos)
    return pos, v


def _exchange_verdict(
    initial: int, final: int, got: Sequence[Sequence[tuple[int, int]]]
) -> tuple[str | None, int]:
    """Grade an exchange history on one cell: ``got[k]`` is thread ``k``'s exchanges in
    program order, each ``(written, returned)``, every written value unique; ``final`` was
    loaded at the end.

    Linearizable exactly when every value written (and the initial one) is returned by one
    exchange or is the final value, and the exchanges chain (each one returned what the one
    before it wrote) from the initial value to the final one in each thread's program
    order.  Returns the forbidden outcome, or None, and how many times the chain passes
    from one thread's exchange to another's (the contention seen).
    """
    succ: dict[int, int] = {}
    owner = {initial: -1}
    for k, ops in enumerate(got):
        for new, old in ops:
            if old in succ:
                return "exchange-duplicated", 0
            succ[old] = new
            owner[new] = k
    if final in succ:
        return "exchange-duplicated", 0
    if any(v not in owner for v in succ) or final not in owner:
        return "exchange-lost", 0
    walked = _chain(initial, succ)
    if walked is None or walked[1] != final or len(walked[0]) != len(owner):
        return "exchange-reordered", 0
    pos = walked[0]
    for ops in got:
        if any(pos[a] >= pos[b] for (a, _), (b, _) in pairwise(ops)):
            return "exchange-reordered", 0
    order = [owner[v] for _, v in sorted((p, v) for v, p in pos.items() if v != initial)]
    return None, sum(1 for a, b in pairwise(order) if a != b)


def _fetch_add_verdict(
    initial: int, final: int, got: Sequence[Sequence[tuple[int, int]]]
) -> str | None:
    """Grade a fetch_add history on one cell (``got[k]``: thread ``k``'s adds in program
    order, each ``(delta, returned)``, every delta > 0): the returned values, sorted, must
    be the prefix sums of the adds in some order (no two equal, no gap), ending at
    ``final``, and each thread's must increase in its program order."""
    pairs = sorted((old, d) for ops in got for d, old in ops)
    if any(a[0] == b[0] for a, b in pairwise(pairs)):
        return "fetch-add-duplicated"
    cur = initial
    for old, d in pairs:
        if old != cur:
            return "fetch-add-lost"
        cur = old + d
    if final != cur:
        return "fetch-add-lost"
    for ops in got:
        if any(a >= b for (_, a), (_, b) in pairwise(ops)):
            return "fetch-add-reordered"
    return None


def _cas_verdict(
    initial: int, final: int, got: Sequence[Sequence[tuple[int, int, int]]]
) -> tuple[str | None, int]:
    """Grade a compare_exchange history on one cell (``got[k]``: thread ``k``'s CASes in
    program order, each ``(expected, new, returned)``, every ``new`` unique; a CAS succeeded
    when it returned ``expected``).

    The successful CASes must form one chain (each expected what the one before wrote)
    from the initial value to the final one, no two of them from the same value; every
    value a thread saw (an expected value it had loaded, what a CAS returned) must be on
    that chain; and what one thread saw must never go back along it.  Returns the forbidden
    outcome, or None, and the number of failed CASes (the contention seen).
    """
    succ: dict[int, int] = {}
    failed = 0
    for ops in got:
        for exp, new, ret in ops:
            if ret != exp:
                failed += 1
            elif exp in succ:
                return "cas-double-success", failed
            else:
                succ[exp] = new
    walked = _chain(initial, succ)
    if walked is None or walked[1] != final or len(walked[0]) != len(succ) + 1:
        return "cas-chain-broken", failed
    pos = walked[0]
    for ops in got:
        last = 0
        for exp, new, ret in ops:
            for v in (exp, ret, new) if ret == exp else (exp, ret):
                p = pos.get(v)
                if p is None or p < last:
                    return "cas-chain-broken", failed
                last = p
    return None, failed


def _load_verdict(got: Sequence[Sequence[tuple[bool, int]]], rounds: int) -> str | None:
    """Grade a store/load history on one cell: ``got[k]`` is thread ``k``'s accesses in
    program order, each ``(stored, value)``: a store of ``_token(k, i, rounds)`` (``i``
    rising in program order) or a load and what it returned.  Every load must return 0 (the
    initial value) or a value some thread stored, and no thread may see one writer's stores
    go back (coherence; its own store counts as seen)."""
    stored = {v for ops in got for s, v in ops if s}
    for ops in got:
        latest: dict[int, int] = {}
        for _, v in ops:
            if v == 0:
                if latest:
                    return "load-incoherent"
                continue
            if v not in stored:
                return "load-incoherent"
            w, i = divmod(v - 1, rounds)
            if i < latest.get(w, -1):
                return "load-incoherent"
            latest[w] = i
    return None


@contextmanager
def _small_switch_interval(value: float) -> Iterator[None]:
    """``sys.setswitchinterval`` at most ``value`` for the block; always restored."""
    old = sys.getswitchinterval()
    try:
        sys.setswitchinterval(min(value, old))
        yield
    finally:
        sys.setswitchinterval(old)


#: The operations of a primitive thread, and their weights in its random plan: the RMWs
#: (what the GIL alone does not make atomic) most often.
_EXCHANGE, _FETCH_ADD, _CAS, _STORE, _LOAD, _SECTION, _NOTIFY = range(7)
_OP_WEIGHTS = (3, 3, 3, 1, 1, 1, 1)


def _platform_primitives(trial: Trial) -> str:
    """``threads`` threads, released together, each run ``rounds`` operations drawn at
    random on the trial platform's primitives, with the GIL switch interval at a few
    microseconds and (in most trials) preemption points at the lines of the real platform's
    code: exchanges of unique values on one cell, fetch_adds on a second, a CAS loop on a
    third, stores and loads on a fourth, sections of one platform mutex, and sets of one
    event notifier (thread 0 clears it instead, checking no set was lost).  Each cell's
    history is then checked against its sequential specification; last, the trial's own
    thread checks a platform poller (a non-blocking poll returns at once, a blocking one
    only with an fd ready)."""
    p = trial.params
    rng = trial.rng
    n = p.threads
    rounds = p.rounds
    plat = trial.platform
    seen = _Observed()
    halt = threading.Event()
    cancelled = trial.cancelled

    def stopped() -> bool:
        return halt.is_set() or cancelled.is_set()

    # Every random choice, drawn here before any helper starts.
    switch = rng.choice(PRIMITIVE_SWITCH)
    chance = rng.choice(PREEMPT_CHANCES)
    plans = [rng.choices(range(len(_OP_WEIGHTS)), _OP_WEIGHTS, k=rounds) for _ in range(n)]
    deltas = [[rng.randint(1, 4) for _ in range(rounds)] for _ in range(n)]
    reloads = [[rng.random() < 0.25 for _ in range(rounds)] for _ in range(n)]
    pauses = [[rng.random() < 0.2 for _ in range(rounds)] for _ in range(n)]
    tries = [[rng.random() < 0.5 for _ in range(rounds)] for _ in range(n)]
    seeds = [rng.getrandbits(32) for _ in range(n)]
    pipe = rng.random() < 0.5

    xcell = plat.atomic(0, "pp.exchange")
    acell = plat.atomic(0, "pp.fetch_add")
    ccell = plat.atomic(0, "pp.cas")
    scell = plat.atomic(0, "pp.store")
    xgot: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    agot: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    cgot: list[list[tuple[int, int, int]]] = [[] for _ in range(n)]
    sgot: list[list[tuple[bool, int]]] = [[] for _ in range(n)]
    mutex = plat.mutex("pp.mutex")
    inside = [-1]  # the thread inside the mutex's section
    counter = [0]  # incremented only inside it
    sections = [0] * n
    notifier = impl.RealPlatform(use_eventfd=False).notifier() if pipe else plat.notifier()
    clearer = 0 if n > 1 else -1  # thread 0 clears (with one thread, only the final check)
    post = [0] * n  # the latest op index thread k published before a set()
    done = [0] * n  # ... and whose set() then returned
    acked = [0] * n  # the posts read after the latest test_and_clear that returned True

    def check_clear() -> None:
        # A set() that returned before a test_and_clear began must make it return True,
        # unless a clear that returned True came after that set (the posts read after it
        # then show the setter's publication).
        returned = list(done)
        if notifier.test_and_clear():
            acked[:] = post
        elif any(a < d for a, d in zip(acked, returned, strict=True)):
            seen.forbid("notifier-lost-set")

    def worker(k: int) -> None:
        plan, ds, again, pause, trying = plans[k], deltas[k], reloads[k], pauses[k], tries[k]
        xs, adds, cas, acc = xgot[k], agot[k], cgot[k], sgot[k]
        base = _token(k, 0, rounds)  # inline tokens: fewer calls beside the primitives'
        exp = ccell.load()
        for i, op in enumerate(plan):
            if not i % _STOP_EVERY and stopped():
                return
            if op == _EXCHANGE:
                xs.append((base + i, xcell.exchange(base + i)))
            elif op == _FETCH_ADD:
                adds.append((ds[i], acell.fetch_add(ds[i])))
            elif op == _CAS:
                if again[i]:
                    exp = ccell.load()
                ret = ccell.compare_exchange(exp, base + i)
                cas.append((exp, base + i, ret))
                exp = base + i if ret == exp else ret
            elif op == _STORE:
                scell.store(base + i)
                acc.append((True, base + i))
            elif op == _LOAD:
                acc.append((False, scell.load()))
            elif op == _SECTION:
                if not (trying[i] and mutex.acquire(False)) and not mutex.acquire(
                    True, trial.patience
                ):
                    trial.expired(seen, "starved")
                    return
                try:
                    if inside[0] != -1:
                        seen.forbid("mutex-overlap")
                    inside[0] = k
                    c = counter[0]
                    if pause[i]:
                        plat.yield_now()  # let the others try the mutex mid-section
                    counter[0] = c + 1  # a lost update if another thread got in
                    if inside[0] != k:
                        seen.forbid("mutex-overlap")
                    inside[0] = -1
                    sections[k] += 1
                finally:
                    mutex.release()
            elif k == clearer:
                check_clear()
            else:
                post[k] = i + 1
                notifier.set()
                done[k] = i + 1

    go = threading.Event()
    arrived = _Counter(n)

    def gated(k: int) -> None:
        # Woken one by one from ``go``, the first thread could be done before the last one
        # wakes: each spins until all have arrived, so they start together.  No sched_yield
        # in the spin: on a loaded machine it parks the thread behind other processes for a
        # whole time slice; a spinner holding the GIL is made to hand it over by the switch
        # interval.  Bounded by the patience and the stop flags.
        if not trial.wait(go):
            return
        arrived.add()
        deadline = time.monotonic() + trial.patience
        while not arrived.reached.is_set():
            if stopped() or time.monotonic() > deadline:
                return
        if not chance:
            worker(k)
            return
        old = sys.gettrace()
        sys.settrace(_preempting_tracer(random.Random(seeds[k]).random, chance, plat.yield_now))
        try:
            worker(k)
        finally:
            sys.settrace(old)

    try:
        with _small_switch_interval(switch):
            for k in range(n):
                trial.spawn(partial(gated, k), f"primitives{k}")
            go.set()
            finished = trial.join_spawned()
    finally:
        halt.set()
        if trial.join_spawned():
            check_clear()  # every set() has returned: the last clear must see them all
            notifier.close()
        # else a helper may still be inside set(): leave the fd open rather than race it.
    if not finished or cancelled.is_set():
        trial.expired(seen, "starved")
        return seen.outcome("linearizable")
    trial.ops += n * rounds
    xbad, switches = _exchange_verdict(0, xcell.load(), xgot)
    cbad, failed = _cas_verdict(0, ccell.load(), cgot)
    for bad in (
        xbad,
        _fetch_add_verdict(0, acell.load(), agot),
        cbad,
        _load_verdict(sgot, rounds),
        "mutex-lost-update" if counter[0] != sum(sections) else None,
    ):
        if bad is not None:
            seen.forbid(bad)
    if not seen.forbidden:
        _check_poller(trial, seen)
        trial.ops += 3
    if switches < sum(1 for ops in xgot if ops) and not failed:
        seen.flag("uncontended")
    return seen.outcome("linearizable", ["uncontended"])


def _in_poll(ident: int) -> bool:
    """Whether thread ``ident`` is inside the real platform's ``Poller.poll``."""
    f = sys._current_frames().get(ident)
    return f is not None and f.f_code.co_name == "poll" and _in_real_platform(f.f_code.co_filename)


#: Kernel functions a thread asleep in poll/ppoll/select sleeps in (``/proc/.../wchan``).
_POLL_WCHANS = ("poll_schedule_timeout", "do_sys_poll", "do_poll", "do_select", "ep_poll")
#: poll / ppoll syscall numbers (``/proc/.../syscall``) where ``wchan`` is hidden.
_POLL_SYSCALLS = {"x86_64": {"7", "271"}, "aarch64": {"73"}, "i686": {"168", "309"}}


def _asleep_in_poll(native_id: int) -> bool | None:
    """Whether the kernel has thread ``native_id`` (of this process) asleep inside a poll,
    from ``/proc``: state ``S`` and a poll function in ``wchan`` (or, where ``wchan`` is
    hidden, the poll syscall in ``syscall``).  None when the kernel does not say."""
    base = f"/proc/self/task/{native_id}"
    try:
        with open(f"{base}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None
    if state != "S":
        return False  # running, runnable or waiting on something that is not a poll
    try:
        with open(f"{base}/wchan") as f:
            wchan = f.read().strip()
    except OSError:
        wchan = ""
    if wchan and wchan != "0":
        return any(w in wchan for w in _POLL_WCHANS)
    calls = _POLL_SYSCALLS.get(os.uname().machine)
    try:
        with open(f"{base}/syscall") as f:
            nr = f.read().split(maxsplit=1)[0]
    except (OSError, IndexError):
        return None
    return None if calls is None else nr in calls


def _check_poller(trial: Trial, seen: _Observed) -> None:
    """The trial's own thread polls a platform poller whose one fd (a clear notifier)
    only a helper makes ready; the helper always does in the end, so no poll stays
    blocked.

    * ``poll(0)`` must return at once with nothing ready.  The helper waits for it to
      return; one that the kernel shows asleep in the poll at every sample of a whole
      window (scaled by the machine's slowness) is blocked: ``poll-zero-blocked``.
    * A set notifier must be in the next ``poll(0)``'s answer: ``poll-missed-ready``.
    * ``poll(-1)`` must block until an fd is ready: the helper sets the notifier once it
      has seen the poller inside the poll (twice, a GIL hand-over apart); an empty answer
      is ``poll-returned-empty``.
    """
    plat = trial.platform
    poller = plat.poller()
    n = plat.notifier()
    me = threading.get_ident()
    native = threading.get_native_id()
    try:
        poller.register(n.read_fd, select.POLLIN)
        for blocking in (False, True):
            returned = threading.Event()
            verdict: list[str] = []
            if blocking:
                waker = trial.spawn(partial(_wake_poller, trial, me, n, returned), "poll-waker")
            else:
                waker = trial.spawn(
                    partial(_rescue_poller, trial, me, native, n, returned, verdict),
                    "poll-rescuer",
                )
            try:
                ready = poller.poll(-1 if blocking else 0)
            finally:
                returned.set()
                waker.join(trial.patience)
            if verdict == [INCONCLUSIVE]:
                trial.expired(seen, "starved")
                return
            if verdict:
                seen.forbid(verdict[0])
                return
            if blocking and not ready:
                seen.forbid("poll-returned-empty")
                return
            n.test_and_clear()
            if not blocking:
                n.set()
                if n.read_fd not in {fd for fd, _ in poller.poll(0)}:
                    seen.forbid("poll-missed-ready")
                    return
                n.test_and_clear()
    finally:
        poller.unregister(n.read_fd)
        n.close()


def _rescue_poller(
    trial: Trial,
    ident: int,
    native_id: int,
    n: RawNotifier,
    returned: threading.Event,
    verdict: list[str],
) -> None:
    """Wait for thread ``ident``'s ``poll(0)`` to return.  One that the kernel shows asleep
    inside the poll (:func:`_asleep_in_poll`) at every sample of a whole window (scaled by
    the machine's slowness) is blocked: ``verdict`` gets ``poll-zero-blocked``.  A thread
    merely not scheduled (runnable, or waiting for the GIL once its poll returned) is not
    evidence; neither is a kernel that does not say.  If nothing is decided within a
    bound, ``verdict`` gets ``inconclusive``.  Then ``n`` is set so that the poll returns."""
    since: float | None = None
    window = 0.0
    deadline = time.monotonic() + 2 * trial.patience + 5.0  # beyond any window
    try:
        while not trial.wait(returned, _SLICE):
            now = time.monotonic()
            if trial.cancelled.is_set() or now > deadline:
                verdict.append(INCONCLUSIVE)
                return
            if not (_in_poll(ident) and _asleep_in_poll(native_id)):
                since = None
            elif since is None:
                since, window = now, min(5.0, trial.patience / 2 * slowness())
            elif now - since >= window and not returned.is_set():
                verdict.append("poll-zero-blocked")
                return
    finally:
        n.set()  # a no-op for a poll that returned; the way out for one that did not


def _wake_poller(trial: Trial, ident: int, n: RawNotifier, returned: threading.Event) -> None:
    """Set ``n`` once thread ``ident`` is seen inside its blocking poll twice in a row (a
    GIL hand-over apart: in the kernel, not just entering the method), or once its poll
    has returned; always set it in the end."""
    deadline = time.monotonic() + trial.patience
    streak = 0
    try:
        while not returned.is_set() and streak < 2:
            if trial.cancelled.is_set() or time.monotonic() > deadline:
                return
            streak = streak + 1 if _in_poll(ident) else 0
            trial.platform.yield_now()
    finally:
        n.set()


PLATFORM_PRIMITIVES = Workload(
    name="platform-primitives",
    description=(
        "threads hammer the real platform's primitives with a switch interval of a few "
        "microseconds: exchange, fetch_add, compare_exchange, store/load on one cell each, "
        "a mutex, an event notifier; each history must be linearizable"
    ),
    run=_platform_primitives,
    outcomes=(
        Outcome(
            "linearizable",
            _A,
            "every history matched its primitive's sequential specification, and threads "
            "interleaved inside it",
        ),
        Outcome(
            "linearizable, uncontended",
            _I,
            "every history was linearizable, but no exchange chain passed between threads "
            "more than it must and no CAS failed (the threads did not contend)",
        ),
        Outcome(
            "exchange-duplicated",
            _F,
            "two exchanges returned the same value (one read what another had already "
            "taken: the exchange is not atomic)",
            "P2",
        ),
        Outcome(
            "exchange-lost",
            _F,
            "a value an exchange wrote was never returned by another exchange nor left in "
            "the cell (overwritten between an exchange's read and its write)",
            "P2",
        ),
        Outcome(
            "exchange-reordered",
            _F,
            "the exchanges form no single chain in each thread's program order",
            "P2",
        ),
        Outcome("fetch-add-duplicated", _F, "two fetch_adds returned the same value", "P2"),
        Outcome(
            "fetch-add-lost",
            _F,
            "the values fetch_add returned are not the prefix sums of the adds, or the final "
            "sum is wrong (an add was lost)",
            "P2",
        ),
        Outcome(
            "fetch-add-reordered",
            _F,
            "one thread's fetch_adds returned values that do not increase",
            "P2",
        ),
        Outcome(
            "cas-double-success",
            _F,
            "two compare_exchanges succeeded from the same value",
            "P2",
        ),
        Outcome(
            "cas-chain-broken",
            _F,
            "the successful compare_exchanges do not chain from the initial value to the "
            "final one, or a thread saw a value off that chain or went back along it",
            "P2",
        ),
        Outcome(
            "load-incoherent",
            _F,
            "a load returned a value nobody stored, or a thread saw one writer's stores go "
            "back",
            "P2",
        ),
        Outcome("mutex-overlap", _F, "two threads were inside the platform mutex at once", "P1"),
        Outcome(
            "mutex-lost-update",
            _F,
            "a counter incremented only inside the mutex lost an increment",
            "P1",
        ),
        Outcome(
            "poll-zero-blocked",
            _F,
            "a non-blocking poll (timeout 0) stayed blocked with nothing ready",
            "LIVE",
        ),
        Outcome(
            "poll-returned-empty",
            _F,
            "a blocking poll (no timeout) returned with no fd ready (an idle loop spins)",
            "LIVE",
        ),
        Outcome(
            "poll-missed-ready",
            _F,
            "a poll did not report the fd of a notifier that was set",
            "LIVE",
        ),
        Outcome(
            "notifier-lost-set",
            _F,
            "test_and_clear returned False although a set() had returned since the last "
            "clear that returned True (a lost wake-up)",
            "LIVE",
        ),
        *_forbidden_common(),
    ),
    defaults=Params(threads=4, iothreads=1, rounds=300, seconds=1.0),
)


#: Every built-in workload, by name.
WORKLOADS: Mapping[str, Workload] = MappingProxyType(
    {
        w.name: w
        for w in (
            ACQUIRE_STORM,
            BH_PING_PONG,
            BH_FAN_IN,
            STOP_THE_WORLD,
            DATAPLANE,
            TIMER_CHURN,
            THREAD_POOL,
            PLATFORM_PRIMITIVES,
        )
    }
)
