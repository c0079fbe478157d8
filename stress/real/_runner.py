"""The stress runner: trials of a workload on real threads, noise, monitors, a watchdog.

Why it exists: a workload (:mod:`stress.real._workloads`) performs one trial; this module runs
trials for a time budget, grades their outcomes jcstress-style into a histogram, and turns
every way a trial can go wrong into a failed :class:`WorkloadResult` instead of a crash or a
hang.  Prior art: OpenJDK jcstress (histogram of graded outcomes), IBM ConTest's noise makers
(Edelstein et al., "Multithreaded Java program test generation", IBM Systems Journal 2002:
random yields and sleeps at shared-memory and synchronisation points), and pytest-timeout's
thread method (dump every thread's stack on a hang).

A trial runs in a *driver* thread of its own; the calling thread is the watchdog.  That is
on purpose: a watchdog running beside the trial could not get the caller back from a wait
inside impl that has no timeout (``DataplaneDevice.stop`` drains with a plain
``aio_poll(ctx, True)``), while a caller that only waits for the driver, with a deadline,
always returns.  On expiry the watchdog records every thread's stack, sets the trial's
``cancelled`` event (every wait of a workload is bounded and watches it), gives the driver a
grace period to join its IOThreads, and reports whatever threads are still running.

Lost wake-ups are told apart from plain hangs: while the workload runs, the watchdog samples
the trial's IOThreads every :data:`aioctx_verify.stress.real._workloads.STALL_SAMPLE` seconds with a
:class:`stress.real._workloads.StallWatch`; an IOThread asleep in an unbounded ``poll`` with work
pending for its context (a scheduled BH or contention kick, lock waiters, a stop request, an
expired timer, an unwatched ready fd), its notifier clear and no wake-up on its way, for
``stall_bound`` seconds, is a lost wake-up: outcome ``lost-wakeup:run``, property LIVE, every
thread's stack recorded, then the sleeper is kicked so the trial can end.  The teardown
(:meth:`aioctx_verify.stress.real._workloads.Trial.close`) does the same while joining IOThreads
(``lost-wakeup:teardown``): a rescue kick is only ever given after the failure is recorded.

Determinism: the seed fixes every random *choice* of a run (the workloads' plans, the noise
decisions' random streams, the switch interval of each trial).  It cannot fix the thread
interleaving, which the OS and the GIL decide; two runs with one seed make the same choices
and may still observe different outcomes.
"""

from __future__ import annotations

import math
import os
import random
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Generic, Literal, TypeVar

from aioctx_verify.impl import (
    AtomicCell,
    Fence,
    Ordering,
    Platform,
    RealPlatform,
    ThreadId,
    Tracer,
    UsageError,
)
from aioctx_verify.impl._platform import Condition, Mutex, Poller, RawNotifier, ThreadHandle
from aioctx_verify.properties import MonitorSet, monitoring
from aioctx_verify.vocab import PROPERTY_NAMES, PropertyName

from ..mutation import (
    WORK_UNIT_SECONDS,
    CellBudget,
    CheckOutcome,
    MutantLike,
    Via,
    as_property,
    property_of,
    stuck_evidence,
)
from ._workloads import (
    INCONCLUSIVE,
    STALL_SAMPLE,
    WORKLOADS,
    Grade,
    Params,
    Stall,
    StallWatch,
    Trial,
    TrialInconclusive,
    Workload,
    dump_stacks,
)

__all__ = [
    "NoiseConfig",
    "NoisyPlatform",
    "TrialFailure",
    "WorkloadResult",
    "dump_stacks",
    "format_result",
    "kill_checker",
    "run_workload",
]

T = TypeVar("T")
_SEQ = Ordering.SEQ_CST

#: At most this many violation / error strings are kept per run.
MAX_REPORTED = 20


# ------------------------------------------------------------------------------------------
# Noise
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NoiseConfig:
    """How much noise to inject.

    Attributes:
        probability: chance that one seam operation (atomic op, fence, notifier set or
            clear, mutex or condition op) is preceded by noise.
        max_sleep: longest noise sleep, seconds (a sleep lasts ``uniform(0, max_sleep)``).
        yield_share: share of noise events that are ``os.sched_yield()`` instead of sleeps.
        switch_interval: ``(low, high)`` bounds of ``sys.setswitchinterval`` drawn
            log-uniformly per trial, or None to leave the interval alone.
    """

    probability: float = 0.05
    max_sleep: float = 100e-6
    yield_share: float = 0.5
    switch_interval: tuple[float, float] | None = (1e-6, 5e-3)

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0 or not 0.0 <= self.yield_share <= 1.0:
            raise UsageError(
                f"NoiseConfig probability and yield_share must be in [0, 1], got "
                f"{self.probability} and {self.yield_share}"
            )
        if self.max_sleep < 0:
            raise UsageError(f"NoiseConfig max_sleep must be >= 0, got {self.max_sleep}")
        si = self.switch_interval
        if si is not None and not 0 < si[0] <= si[1]:
            raise UsageError(f"NoiseConfig switch_interval must be 0 < low <= high, got {si}")

    def draw_switch_interval(self, rng: random.Random) -> float | None:
        si = self.switch_interval
        if si is None:
            return None
        return math.exp(rng.uniform(math.log(si[0]), math.log(si[1])))


class _Noise:
    """The noise maker shared by one platform's wrappers (one seeded stream)."""

    __slots__ = ("_max_sleep", "_p", "_rand", "_yield_p")

    def __init__(self, config: NoiseConfig, seed: int) -> None:
        self._rand = random.Random(seed).random  # one C call: safe from any thread
        self._p = config.probability
        self._yield_p = config.probability * config.yield_share
        self._max_sleep = config.max_sleep

    def __call__(self) -> None:
        r = self._rand()
        if r >= self._p:
            return
        if r < self._yield_p:
            os.sched_yield()
        else:
            time.sleep(self._rand() * self._max_sleep)


class _NoisyAtomic(Generic[T]):
    __slots__ = ("_cell", "_noise", "name")

    def __init__(self, cell: AtomicCell[T], noise: _Noise) -> None:
        self._cell = cell
        self._noise = noise
        self.name = cell.name

    def load(self, order: Ordering = _SEQ) -> T:
        self._noise()
        return self._cell.load(order)

    def store(self, value: T, order: Ordering = _SEQ) -> None:
        self._noise()
        self._cell.store(value, order)

    def exchange(self, value: T, order: Ordering = _SEQ) -> T:
        self._noise()
        return self._cell.exchange(value, order)

    def compare_exchange(self, expected: T, value: T, order: Ordering = _SEQ) -> T:
        self._noise()
        return self._cell.compare_exchange(expected, value, order)

    def fetch_add(self, delta: int, order: Ordering = _SEQ) -> T:
        self._noise()
        return self._cell.fetch_add(delta, order)


class _NoisyMutex:
    """Noise before taking and before giving back (so holders are sometimes slow)."""

    __slots__ = ("_noise", "raw")

    def __init__(self, raw: Mutex, noise: _Noise) -> None:
        self.raw = raw
        self._noise = noise

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self._noise()
        return self.raw.acquire(blocking, timeout)

    def release(self) -> None:
        self._noise()
        self.raw.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> None:
        self.release()


class _NoisyCondition:
    __slots__ = ("_mutex", "_noise", "_raw")

    def __init__(self, raw: Condition, mutex: Mutex, noise: _Noise) -> None:
        self._raw = raw
        self._mutex = mutex
        self._noise = noise

    def wait(self, timeout: float | None = None) -> bool:
        self._noise()
        return self._raw.wait(timeout)

    def notify(self, n: int = 1) -> None:
        self._noise()
        self._raw.notify(n)

    def notify_all(self) -> None:
        self._noise()
        self._raw.notify_all()

    def __enter__(self) -> bool:
        return self._mutex.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> None:
        self._mutex.__exit__(exc_type, exc, tb)


class _NoisyNotifier:
    __slots__ = ("_noise", "_raw", "read_fd", "write_fd")

    def __init__(self, raw: RawNotifier, noise: _Noise) -> None:
        self._raw = raw
        self._noise = noise
        self.read_fd = raw.read_fd
        self.write_fd = raw.write_fd

    def set(self) -> None:
        self._noise()
        self._raw.set()

    def test_and_clear(self) -> bool:
        self._noise()
        return self._raw.test_and_clear()

    def close(self) -> None:
        self._raw.close()


class NoisyPlatform:
    """A :class:`impl.RealPlatform` whose seam operations sometimes yield or sleep first.

    Noise goes before atomic operations, fences, notifier set / test-and-clear, mutex
    acquire / release and condition wait / notify, with the probability and sleep bound of
    ``config``, drawn from one stream seeded by ``seed``.  Everything else is the inner
    platform's.  Trace events go to this platform's own :attr:`tracer`.
    """

    def __init__(self, inner: RealPlatform, config: NoiseConfig, seed: int) -> None:
        self.tracer: Tracer | None = None
        self.inner = inner
        self.config = config
        self._noise = _Noise(config, seed)

    def __repr__(self) -> str:
        c = self.config
        return f"<NoisyPlatform p={c.probability} max_sleep={c.max_sleep} over {self.inner!r}>"

    def new_id(self) -> int:
        return self.inner.new_id()

    def start_thread(self, target: Callable[[], None], name: str) -> ThreadHandle:
        self._noise()
        return self.inner.start_thread(target, name)

    def current_thread(self) -> ThreadId:
        return self.inner.current_thread()

    def main_thread(self) -> ThreadId:
        return self.inner.main_thread()

    def yield_now(self) -> None:
        self.inner.yield_now()

    def mutex(self, name: str = "") -> Mutex:
        return _NoisyMutex(self.inner.mutex(name), self._noise)

    def condition(self, mutex: Mutex) -> Condition:
        raw = mutex.raw if isinstance(mutex, _NoisyMutex) else mutex
        return _NoisyCondition(self.inner.condition(raw), mutex, self._noise)

    def atomic(self, initial: T, name: str = "") -> AtomicCell[T]:
        return _NoisyAtomic(self.inner.atomic(initial, name), self._noise)

    def fence(self, kind: Fence) -> None:
        self._noise()
        self.inner.fence(kind)

    def notifier(self) -> RawNotifier:
        return _NoisyNotifier(self.inner.notifier(), self._noise)

    def poller(self) -> Poller:
        return self.inner.poller()

    def fd_is_open(self, fd: int) -> bool:
        return self.inner.fd_is_open(fd)

    def monotonic_ns(self) -> int:
        return self.inner.monotonic_ns()

    def wall_ns(self) -> int:
        return self.inner.wall_ns()


@contextmanager
def _switch_interval(value: float | None) -> Iterator[None]:
    """Set ``sys.setswitchinterval`` for the block; always restore it."""
    old = sys.getswitchinterval()
    try:
        if value is not None:
            sys.setswitchinterval(value)
        yield
    finally:
        sys.setswitchinterval(old)


# ------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------
FailureKind = Literal["hang", "lost-wakeup", "violation", "exception", "forbidden"]


@dataclass(frozen=True, slots=True)
class TrialFailure:
    """The first trial of a run that failed, and why.

    Attributes:
        kind: ``hang`` (the watchdog's deadline passed), ``lost-wakeup`` (an IOThread slept
            in ``aio_poll`` with work pending, during the run or its teardown),
            ``violation`` (a property monitor fired), ``exception`` (a thread, callback or
            the workload raised) or ``forbidden``.
        trial: the trial's index; ``outcome``: its outcome string.
        message: one line saying what went wrong.
        events: trace events the monitors saw in that trial (None with monitors off).
        prop: the property the failure witnesses, when one is known.
    """

    kind: FailureKind
    trial: int
    outcome: str
    message: str
    events: int | None
    prop: PropertyName | None


@dataclass(frozen=True, slots=True)
class WorkloadResult:
    """Everything a run of one workload found.

    ``verdict`` is ``fail`` when any trial had a FORBIDDEN or undeclared outcome, a monitor
    violation, an exception in any thread, a lost wake-up, or hung; ``stacks`` (thread name
    -> formatted stack) is filled when the watchdog fired or a lost wake-up was found;
    ``stalls`` says which IOThread slept with what pending; ``ops`` counts the operations
    (sections, hops, requests...) of every trial; ``violated`` names the properties the
    monitors' violations broke (in P1, P2, P3, LIVE order).
    """

    name: str
    params: Params
    seed: int
    noise: NoiseConfig | None
    trials: int
    histogram: Mapping[str, int]
    grades: Mapping[str, Grade]
    verdict: Literal["pass", "fail"]
    violations: tuple[str, ...]
    errors: tuple[str, ...]
    stacks: Mapping[str, str]
    leftover_threads: tuple[str, ...]
    seconds: float
    failure: TrialFailure | None = None
    descriptions: Mapping[str, str] = field(default_factory=dict)
    ops: int = 0
    stalls: tuple[str, ...] = ()
    violated: tuple[PropertyName, ...] = ()
    #: Trials whose bounded waits ran out with nothing seen stuck (outcome
    #: ``inconclusive``): the machine was too slow to tell; not failures.
    inconclusive: int = 0
    patience: float = 2.0
    trial_timeout: float = 10.0

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @property
    def trials_per_second(self) -> float:
        return self.trials / self.seconds if self.seconds > 0 else 0.0

    @property
    def ops_per_second(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0


def format_result(r: WorkloadResult, mutant: str | None = None) -> str:
    """The jcstress-style report of a run: header, histogram, then what went wrong (with
    the replay line of the first failing trial; ``mutant``: the one applied for the run)."""
    noise = "off" if r.noise is None else f"p={r.noise.probability}"
    p = r.params
    lines = [
        f"{r.name}: {r.verdict.upper()}  {r.trials} trials in {r.seconds:.2f} s "
        f"({r.trials_per_second:.0f}/s, {r.ops_per_second:.0f} ops/s)  seed={r.seed} "
        f"noise={noise} threads={p.threads} iothreads={p.iothreads} rounds={p.rounds}",
    ]
    width = max([len(o) for o in r.histogram] + [7])
    lines.append(f"  {'outcome':<{width}}  {'count':>7}  {'grade':<22}  description")
    for outcome, count in sorted(r.histogram.items(), key=lambda kv: (-kv[1], kv[0])):
        grade = r.grades[outcome]
        desc = r.descriptions.get(outcome, "not declared by the workload")
        lines.append(f"  {outcome:<{width}}  {count:>7}  {grade.value:<22}  {desc}")
    if r.failure is not None:
        f = r.failure
        lines.append(f"first failure: trial {f.trial} ({f.kind}): {f.message}")
        from ._replay import result_replay_line

        line = result_replay_line(r, mutant=mutant)
        lines.append(f"replay (reruns the seeded trial; real threads): {line}")
    lines.extend(f"stall: {v}" for v in r.stalls)
    lines.extend(f"violation: {v}" for v in r.violations)
    lines.extend(f"error: {e.splitlines()[0]}" for e in r.errors)
    if r.leftover_threads:
        lines.append(f"threads still running: {', '.join(r.leftover_threads)}")
    for name, stack in r.stacks.items():
        lines.append(f"--- stack of {name} ---")
        lines.append(stack.rstrip())
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# The runner
# ------------------------------------------------------------------------------------------
@dataclass
class _TrialRecord:
    outcome: str = "no-outcome"
    hung: bool = False
    errors: list[str] = field(default_factory=list)
    raised: list[tuple[str, BaseException]] = field(default_factory=list)  # (error, cause)
    violations: list[tuple[PropertyName, str]] = field(default_factory=list)  # (prop, text)
    stalls: list[Stall] = field(default_factory=list)
    #: Bounds that ran out with nothing seen stuck (the trial is inconclusive).
    unsure: list[str] = field(default_factory=list)
    #: What showed the trial stuck when the watchdog fired (with ``hung``).
    evidence: str = ""
    #: The watchdog fired with nothing seen stuck (the trial is inconclusive).
    overdue: bool = False
    events: int | None = None
    ops: int = 0
    stacks: dict[str, str] = field(default_factory=dict)
    leftovers: list[threading.Thread] = field(default_factory=list)


def _resolve(workload: str | Workload) -> Workload:
    if isinstance(workload, Workload):
        return workload
    try:
        return WORKLOADS[workload]
    except KeyError:
        raise UsageError(
            f"unknown workload {workload!r}; choose one of {', '.join(sorted(WORKLOADS))}"
        ) from None


def _run_trial(
    wl: Workload,
    params: Params,
    *,
    seed: int,
    index: int,
    noise: NoiseConfig | None,
    monitors: bool,
    deadline: float,
    patience: float,
    grace: float,
    stall_bound: float,
) -> _TrialRecord:
    rng = random.Random(f"{wl.name}/{seed}/{index}")
    real = RealPlatform()
    platform: Platform = real
    switch = None
    if noise is not None:
        platform = NoisyPlatform(real, noise, rng.getrandbits(64))
        switch = noise.draw_switch_interval(rng)
    trial = Trial(
        platform,
        random.Random(rng.getrandbits(64)),
        params,
        index=index,
        patience=patience,
        stall_bound=stall_bound,
    )
    rec = _TrialRecord()
    done = threading.Event()

    def drive() -> None:
        try:
            rec.outcome = wl.run(trial)
        except TrialInconclusive:
            pass  # the trial recorded why (its unsure list): graded inconclusive below
        except BaseException as e:
            rec.outcome = f"exception:{type(e).__name__}"
            trial.error(
                f"workload {wl.name} raised "
                + "".join(traceback.format_exception(type(e), e, e.__traceback__)),
                e,
            )
        finally:
            try:
                trial.close()
            except BaseException as e:  # pragma: no cover - close() catches its own
                trial.error(f"tearing the trial down raised {type(e).__name__}: {e}")
            finally:
                done.set()

    before = set(threading.enumerate())
    watch: AbstractContextManager[MonitorSet | None] = (
        monitoring(platform) if monitors else nullcontext()
    )
    stalls = StallWatch(stall_bound)
    with _switch_interval(switch), watch as ms:
        driver = threading.Thread(target=drive, name=f"stress.{wl.name}.{index}", daemon=True)
        driver.start()
        # The watchdog: a deadline for the whole trial, and a stall watch over its
        # IOThreads while the workload runs (close() watches its own joins).
        while not done.wait(min(STALL_SAMPLE, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                # Outliving the deadline proves nothing by itself: a hang only when the
                # trial is seen stuck, else the machine was too slow (inconclusive).
                evidence = stuck_evidence(trial.iothreads)
                rec.stacks = dump_stacks()
                if evidence is not None:
                    rec.hung = True
                    rec.evidence = evidence
                else:
                    rec.overdue = True
                    rec.unsure.append("the trial outlived its deadline; nothing was seen stuck")
                trial.cancelled.set()
                done.wait(grace)
                break
            if trial.closing or rec.stalls:
                continue
            its = list(trial.iothreads)
            found = stalls.sample(its, "run")
            if found:
                # Record first (stacks show the sleepers), then end the trial: cancel its
                # waits and kick the sleepers so that it can be torn down.
                rec.stalls = found
                rec.stacks = dump_stacks()
                trial.cancelled.set()
                stalled = {s.iothread for s in found}
                for it in its:
                    if it.name in stalled:
                        StallWatch.rescue(it)
        end = time.monotonic() + (grace if rec.hung else patience)
        # Threads of the trial that are just returning (pool workers after shutdown).
        for t in set(threading.enumerate()) - before:
            t.join(max(0.0, end - time.monotonic()))
        rec.leftovers = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    rec.errors = trial.reported_errors()
    rec.raised = trial.reported_exceptions()
    rec.ops = trial.ops
    if trial.stalls:
        rec.stalls.extend(trial.stalls)
        for name, stack in trial.stall_stacks.items():
            rec.stacks.setdefault(name, stack)
    rec.unsure.extend(trial.unsure)
    if ms is not None:
        rec.events = ms.events_seen
        seen = ms.violations
        if rec.unsure and not (rec.hung or rec.stalls):
            # Cut short by a wall-clock bound (a wait ran out, the deadline passed) with
            # nothing seen stuck: the end-of-run rules (a waiter never granted, an IOThread
            # never stopped) would judge a run that did not end; only what the monitors saw
            # happen counts.
            seen = [v for v in seen if v.event_index >= 0]
        rec.violations = [(v.prop, str(v)) for v in seen]
    if rec.hung:
        rec.outcome = "hang"
    elif rec.stalls:
        rec.outcome = f"lost-wakeup:{rec.stalls[0].where}"
    elif rec.unsure and (
        rec.outcome == "no-outcome" or wl.grade(rec.outcome) is not Grade.FORBIDDEN
    ):
        rec.outcome = INCONCLUSIVE
    return rec


def run_workload(
    workload: str | Workload,
    *,
    threads: int | None = None,
    iothreads: int | None = None,
    rounds: int | None = None,
    seconds: float | None = None,
    seed: int = 0,
    noise: bool | NoiseConfig = False,
    monitors: bool = True,
    trial_timeout: float = 10.0,
    patience: float = 2.0,
    max_trials: int | None = None,
    stop_on_failure: bool = False,
    stall_bound: float | None = None,
) -> WorkloadResult:
    """Run trials of a workload for ``seconds`` (at least one) and grade them.

    Args:
        workload: a name from :data:`WORKLOADS`, or a :class:`Workload`.
        threads, iothreads, rounds, seconds: override the workload's defaults.
        seed: fixes every random choice (not the thread interleaving).
        noise: ``True`` for the default :class:`NoiseConfig`, or a config.
        monitors: attach the P1/P2/P3/liveness monitors to every trial.
        trial_timeout: the watchdog's deadline for one trial, seconds.
        patience: the longest a workload waits for any one thing before it reports it lost.
        max_trials: stop after this many trials even if time is left.
        stop_on_failure: stop at the first failing trial.
        stall_bound: how long an IOThread may sleep in ``aio_poll`` with work pending
            (and its notifier clear, no wake-up on its way) before that is a lost wake-up;
            default ``patience / 2``.

    The whole run ends within about ``seconds + trial_timeout + patience``: no trial starts
    after ``seconds``, and the watchdog gives up on a trial at ``trial_timeout``.  A lost
    wake-up ends its trial once seen for ``stall_bound``.
    """
    wl = _resolve(workload)
    d = wl.defaults
    params = Params(
        threads=d.threads if threads is None else threads,
        iothreads=d.iothreads if iothreads is None else iothreads,
        rounds=d.rounds if rounds is None else rounds,
        seconds=d.seconds if seconds is None else seconds,
    )
    cfg = NoiseConfig() if noise is True else (noise or None)
    grace = min(patience * 2, trial_timeout)
    bound = patience / 2 if stall_bound is None else stall_bound
    hist: Counter[str] = Counter()
    stall_texts: list[str] = []
    ops = 0
    violations: list[str] = []
    violated: set[PropertyName] = set()
    errors: list[str] = []
    leftovers: list[str] = []
    stacks: dict[str, str] = {}
    failure: TrialFailure | None = None
    start = time.monotonic()
    run_deadline = start + params.seconds + trial_timeout
    trials = 0
    while True:
        t0 = time.monotonic()
        rec = _run_trial(
            wl,
            params,
            seed=seed,
            index=trials,
            noise=cfg,
            monitors=monitors,
            deadline=min(t0 + trial_timeout, run_deadline),
            patience=patience,
            grace=grace,
            stall_bound=bound,
        )
        hist[rec.outcome] += 1
        ops += rec.ops
        stall_texts.extend(f"trial {trials}: {st}" for st in rec.stalls)
        violations.extend(f"trial {trials}: {text}" for _, text in rec.violations)
        violated.update(prop for prop, _ in rec.violations)
        errors.extend(f"trial {trials}: {e}" for e in rec.errors)
        leftovers.extend(f"{t.name} (trial {trials})" for t in rec.leftovers)
        stacks.update(rec.stacks)
        if failure is None:
            failure = _failure(wl, trials, rec)
        trials += 1
        if rec.hung or rec.overdue or rec.stalls or (stop_on_failure and failure is not None):
            break
        if max_trials is not None and trials >= max_trials:
            break
        if time.monotonic() - start >= params.seconds:
            break
    grades = {o: wl.grade(o) for o in hist}
    failed = failure is not None or any(g is Grade.FORBIDDEN for g in grades.values())
    descriptions = {}
    for o in hist:
        dcl = wl.declared(o)
        if dcl is not None:
            descriptions[o] = dcl.description
    return WorkloadResult(
        name=wl.name,
        params=params,
        seed=seed,
        noise=cfg,
        trials=trials,
        histogram=MappingProxyType(dict(hist)),
        grades=MappingProxyType(grades),
        verdict="fail" if failed else "pass",
        violations=tuple(violations[:MAX_REPORTED]),
        errors=tuple(errors[:MAX_REPORTED]),
        stacks=MappingProxyType(stacks),
        leftover_threads=tuple(leftovers),
        seconds=time.monotonic() - start,
        failure=failure,
        descriptions=MappingProxyType(descriptions),
        ops=ops,
        stalls=tuple(stall_texts[:MAX_REPORTED]),
        violated=tuple(p for p in PROPERTY_NAMES if p in violated),
        patience=patience,
        trial_timeout=trial_timeout,
        inconclusive=hist.get(INCONCLUSIVE, 0),
    )


def _failure(wl: Workload, index: int, rec: _TrialRecord) -> TrialFailure | None:
    """Why a trial failed, or None.

    In order: a monitor violation (the most precise witness), a lost wake-up, a hang, an
    exception that witnesses a property by its type (a read of freed memory, a refused
    release: :func:`~aioctx_verify.stress.mutation.property_of`), a FORBIDDEN outcome, any
    other exception.
    """
    declared = wl.declared(rec.outcome)
    outcome_prop = as_property(declared.prop) if declared is not None else None

    def make(kind: FailureKind, message: str, prop: PropertyName | None) -> TrialFailure:
        return TrialFailure(kind, index, rec.outcome, message, rec.events, prop)

    if rec.violations:
        prop, text = rec.violations[0]
        return make("violation", text, prop)
    if rec.stalls:
        return make("lost-wakeup", str(rec.stalls[0]), "LIVE")
    if rec.hung:
        return make("hang", f"the watchdog fired and the trial was stuck: {rec.evidence}", "LIVE")
    for err, exc in rec.raised:
        witnessed = property_of(exc)
        if witnessed is not None:
            return make("exception", err.splitlines()[0], witnessed)
    if wl.grade(rec.outcome) is Grade.FORBIDDEN:
        why = "a FORBIDDEN" if declared is not None else "an undeclared (so FORBIDDEN)"
        return make("forbidden", f"{why} outcome: {rec.outcome}", outcome_prop)
    if rec.errors:
        return make("exception", rec.errors[0].splitlines()[0], None)
    return None


# ------------------------------------------------------------------------------------------
# Kill checking
# ------------------------------------------------------------------------------------------
#: What noticed a trial's failure, in the kill matrix's words.
_VIA: Mapping[FailureKind, Via] = {
    "violation": "monitor",
    "lost-wakeup": "scheduler",
    "hang": "scheduler",
    "forbidden": "probe check",
    "exception": "exception",
}


#: Work units (:class:`~aioctx_verify.stress.mutation.CellBudget`) of one trial of
#: :func:`kill_checker` (about 20 ms at idle, averaged over the workloads).
TRIAL_WORK = 4


def kill_checker(
    mutant: MutantLike,
    seed: int = 0,
    seconds: float | CellBudget = 10.0,
    *,
    workloads: Iterable[str] | None = None,
    noise: bool | NoiseConfig = True,
    slice_seconds: float = 0.5,
    trial_timeout: float = 5.0,
    patience: float = 2.0,
    max_trials: int | None = None,
) -> CheckOutcome:
    """Run the workloads round-robin (``slice_seconds`` each, new seed per round) under
    ``with mutant.apply():`` until one fails, ``seconds`` are spent or ``max_trials``
    trials ran (a work budget: with it, whether a mutant dies does not depend on how fast
    the machine runs trials).

    ``seconds`` may be a :class:`~aioctx_verify.stress.mutation.CellBudget`: its work is
    ``max_trials`` (:data:`TRIAL_WORK` units each), its seconds a safety cap.  With a work
    budget, fewer trials than asked for (the time ran out) is ``inconclusive``, never
    ``survived``.

    A trial whose wait ran out with nothing seen stuck is inconclusive, not a failure; when
    every trial was, the outcome is ``inconclusive`` (machine too slow), else ``survived``.

    A kill's ``detail`` names the mutant, the workload (``<mutant> killed by <workload>``),
    the seed, the trial and the reason; ``counterexample_steps`` is the number of trace
    events the monitors saw in the failing trial (stress has no schedule to count), None
    with monitors off; the property is the monitor's, else the one a FORBIDDEN outcome
    witnesses, LIVE for a hang or a lost wake-up.
    """
    cell = CellBudget.of(seconds)
    seconds = cell.seconds
    if max_trials is None:
        max_trials = cell.count(TRIAL_WORK)
    # With a trial budget the slices are trials too (``slice_seconds`` at the nominal cost
    # of a trial), so which workloads run does not depend on the machine's speed either.
    slice_trials = (
        None
        if max_trials is None
        else max(1, round(slice_seconds / (TRIAL_WORK * WORK_UNIT_SECONDS)))
    )
    names: Sequence[str] = list(workloads) if workloads is not None else list(WORKLOADS)
    for n in names:
        _resolve(n)
    start = time.monotonic()
    trials = 0
    unsure = 0
    rnd = 0

    def more() -> bool:
        return max_trials is None or trials < max_trials

    with mutant.apply():
        while time.monotonic() - start < seconds and more():
            for n in names:
                left = seconds - (time.monotonic() - start)
                if left <= 0 or not more():
                    break
                r = run_workload(
                    n,
                    max_trials=(
                        None
                        if max_trials is None or slice_trials is None
                        else min(slice_trials, max_trials - trials)
                    ),
                    seconds=min(slice_seconds, left) if slice_trials is None else left,
                    seed=seed + rnd,
                    noise=noise,
                    trial_timeout=trial_timeout,
                    patience=patience,
                    stop_on_failure=True,
                )
                trials += r.trials
                unsure += r.inconclusive
                f = r.failure
                if f is None and r.verdict == "fail":  # pragma: no cover - defensive
                    f = TrialFailure("forbidden", r.trials - 1, "?", "failed", None, None)
                if f is not None:
                    from ._replay import result_replay_line

                    return CheckOutcome.kill(
                        time.monotonic() - start,
                        f"{mutant.name} killed by {n} (seed {seed + rnd}, trial {f.trial}, "
                        f"{f.kind}): {f.message} | {result_replay_line(r, f, mutant.name)}",
                        f.prop,
                        _VIA[f.kind],
                        steps=f.events,
                    )
            rnd += 1
    elapsed = time.monotonic() - start
    if trials and unsure == trials:
        return CheckOutcome.inconclusive(
            elapsed,
            f"{mutant.name}: all {trials} trials inconclusive (waits ran out, nothing was "
            "seen stuck: machine too slow)",
        )
    note = f", {unsure} inconclusive" if unsure else ""
    if max_trials is not None and trials < max_trials:
        return CheckOutcome.inconclusive(
            elapsed,
            f"{mutant.name}: inconclusive: {trials} of {max_trials} trials within "
            f"{seconds:g} s (machine too slow?){note}, no failure",
        )
    return CheckOutcome.survived(
        elapsed,
        f"{mutant.name} survived {trials} trials of {len(names)} workloads{note} "
        f"in {elapsed:.1f} s",
    )
