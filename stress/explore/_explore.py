"""Schedule exploration: run a program many times under a strategy, shrink what fails.

``explore(program, strategy=..., budget=...)`` returns an :class:`ExploreResult` with the
verdict, the (shrunk) failure with its schedule string and per-thread trace, and coverage
figures.  ``replay(schedule)`` re-runs one schedule exactly.
"""

from __future__ import annotations

import dataclasses
import itertools
import select
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hypothesis import settings as Settings

    from aioctx_verify.properties import MonitorSet

from aioctx_verify.vocab import TraceEvent

from ..controlled import (
    STRATEGY_NAMES,
    ControlledPlatform,
    DataStrategy,
    DFSStrategy,
    InvalidScheduleError,
    PrefixStrategy,
    ReplayStrategy,
    RunOutcome,
    Schedule,
    Step,
    make_strategy,
    run_batch,
)
from ._lines import replay_line

__all__ = [
    "Budget",
    "ExploreResult",
    "Failure",
    "Program",
    "explore",
    "format_trace",
    "replay",
    "run_schedule",
    "shrink",
]

ProgramFn = Callable[[ControlledPlatform], None]


@dataclass(frozen=True)
class Program:
    """A program for the controlled platform: ``fn(platform)`` runs as thread 0."""

    name: str
    fn: ProgramFn
    expected: str = "safe"  # "bug" | "safe"
    memory: str = "sc"
    description: str = ""
    drop_fences: frozenset[str] = frozenset()
    max_steps: int = 20_000
    #: Run the runtime monitors on impl's trace events: P1, P2, P3, liveness and the loop
    #: oracles, these deciding in virtual time (see :func:`run_schedule`).
    monitors: bool = True


@dataclass(frozen=True, slots=True)
class Budget:
    """Stop after ``schedules`` runs or ``seconds`` of wall time, whichever first."""

    schedules: int = 1000
    seconds: float = 30.0
    max_steps: int | None = None


@dataclass(frozen=True)
class Failure:
    """A failing run, shrunk: everything needed to understand and reproduce it."""

    kind: str
    message: str
    schedule: str
    preemptions: int
    steps: int
    trace: tuple[Step, ...]
    thread_names: tuple[str, ...]
    positions: tuple[str, ...]
    original_preemptions: int
    original_steps: int
    prop: str = ""  # P1/P2/P3/LIVE when known (monitor violation, deadlock, lost wake-up)
    #: The preemption count is proven minimal: an exhaustive search of every bound below it
    #: found no failure of this kind (see :func:`shrink`).
    minimal: bool = False

    @property
    def shrink_summary(self) -> str:
        """``shrunk to P preemption(s), S step(s) (found with ...)``, and whether P is proven
        the fewest any failing schedule of this kind needs."""
        proof = ("; no schedule with fewer preemptions fails (searched exhaustively)"
                 if self.minimal else "")
        return (f"shrunk to {self.preemptions} preemption(s), {self.steps} step(s) "
                f"(found with {self.original_preemptions} / {self.original_steps}){proof}")

    def replay_command(self, mutant: str | None = None) -> str:
        """The replay line (``mutant``: the mutant applied when the failure was found)."""
        return replay_line(self.schedule, mutant)

    def report(self) -> str:
        lines = [
            f"{self.kind}: {self.message}",
            f"schedule: {self.schedule}",
            f"replay:   {self.replay_command()}",
            self.shrink_summary,
            format_trace(self.trace, self.thread_names),
        ]
        return "\n".join(lines)


@dataclass
class ExploreResult:
    """What an exploration found, and how much it covered."""

    program: str
    strategy: str
    memory: str
    verdict: str  # pass | fail | inconclusive
    reason: str = ""
    failure: Failure | None = None
    schedules: int = 0
    pruned: int = 0
    distinct_traces: int = 0
    max_preemptions: int = 0
    steps: int = 0
    seconds: float = 0.0
    exhausted: bool = False
    inconclusive_runs: int = 0
    _hashes: set[int] = field(default_factory=set, repr=False)

    @property
    def property_holds(self) -> bool:
        return self.verdict == "pass"

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds else 0.0

    @property
    def schedules_per_second(self) -> float:
        return self.schedules / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        s = (
            f"{self.program} [{self.strategy}/{self.memory}]: {self.verdict}"
            f"{' (' + self.reason + ')' if self.reason else ''}; {self.schedules} schedules"
            f" ({self.distinct_traces} distinct, {self.pruned} pruned), max preemptions "
            f"{self.max_preemptions}, {self.steps_per_second:,.0f} steps/s, "
            f"{self.schedules_per_second:,.1f} schedules/s, {self.seconds:.2f} s"
        )
        if self.failure is not None:
            s += "\n" + self.failure.report()
        return s


def format_trace(trace: tuple[Step, ...] | list[Step], names: tuple[str, ...] = ()) -> str:
    """``Thread k | file:line (function) | operation`` per step, the frontrun-style listing."""
    width = max((len(s.where) for s in trace), default=10)
    out = []
    for s in trace:
        who = f"Thread {s.thread}"
        if s.thread < len(names):
            who += f" ({names[s.thread]})"
        out.append(f"{s.index:5d}  {who:<22} | {s.where:<{width}} | {s.op} {s.obj}")
    return "\n".join(out)


_READ = select.POLLIN | select.POLLHUP | select.POLLERR
_WRITE = select.POLLOUT | select.POLLERR


class _ControlledView:
    """A controlled platform's clocks and fd readiness, as the loop oracles read them
    (:class:`aioctx_verify.properties.PlatformView`): plain reads of the scheduler's state,
    no scheduling point, so that the monitors can call it from inside the scheduler."""

    def __init__(self, plat: ControlledPlatform) -> None:
        self._p = plat
        # Wall-clock time of virtual time 0 (the platform's HOST clock); None: unknown.
        epoch = getattr(sys.modules.get(ControlledPlatform.__module__), "EPOCH_NS", None)
        self._epoch: int | None = epoch if isinstance(epoch, int) else None

    def clock_ns(self, clock: int) -> int | None:
        from aioctx_verify.impl._timers import peek_clocks

        now: int = self._p._now
        clocks = peek_clocks(self._p)
        if clock == 2 and self._epoch is None:
            return None
        wall = now + (self._epoch or 0)
        if clocks is None:  # no timer list was ever made: every clock is enabled
            return now if clock == 0 else wall if clock == 2 else now
        return clocks.peek_ns(clock, now, wall)

    def fd_ready(self, fd: int, read: bool, write: bool) -> bool:
        n = self._p._fds.get(fd)
        if n is not None:  # a controlled notifier: readable when set, never writable
            return read and bool(n.value)
        want = (_READ if read else 0) | (_WRITE if write else 0)
        if not want:
            return False
        rp = select.poll()
        rp.register(fd, want)
        got = dict(rp.poll(0)).get(fd, 0)
        return not got & select.POLLNVAL and bool(got & want)


class _ObservedPlatform(ControlledPlatform):
    """A controlled platform that tells the monitors when every thread is blocked: each
    time virtual time advances (it does only then) and, after the run, when it ended with
    no thread able to move."""

    on_quiescent: Callable[[], None] | None = None
    _vnow: int = 0

    @property
    def _now(self) -> int:
        return self._vnow

    @_now.setter
    def _now(self, value: int) -> None:
        advanced = value > self._vnow
        self._vnow = value
        hook = self.on_quiescent
        if advanced and hook is not None and not self._aborting:
            hook()


#: Run endings where no thread can move any more.
_STUCK = ("deadlock", "lost_wakeup")


def run_schedule(
    program: Program, strategy: Any, memory: str | None = None, max_steps: int | None = None
) -> RunOutcome:
    """One run of ``program`` under ``strategy``, with the runtime monitors on (unless the
    program turns them off).

    The monitors (:func:`aioctx_verify.properties.default_monitors`) get a view of the
    platform's clocks and fd readiness, and are told whenever every thread is blocked, so
    the loop oracles decide in virtual time.  Events emitted while a failed run unwinds
    are not the program's and are not fed.  Verdict: a monitor violation fails a run that
    passed (its end-of-run rules run with ``terminal``: every thread ended) or that ran
    out of steps (a loop that spins without progress); a deadlock or lost wake-up keeps
    its kind, with what the monitors saw added to its message.  The first violation of a
    safety property (P1, P2, P3) is reported before a liveness one (often its consequence).
    """
    mem = memory or program.memory
    steps = max_steps or program.max_steps
    if not program.monitors:
        return ControlledPlatform(
            strategy, memory=mem, max_steps=steps, drop_fences=program.drop_fences
        ).run(program.fn)
    from aioctx_verify.properties import MonitorSet, StateMonitor, default_monitors

    plat = _ObservedPlatform(strategy, memory=mem, max_steps=steps, drop_fences=program.drop_fences)
    ms = MonitorSet(default_monitors(_ControlledView(plat), plat.watched))
    # One program thread runs at a time: no lock, and the monitors that judge the event
    # stream alone get it in one batch when the verdicts are read (MonitorSet.feeder).
    feed = ms.feeder()

    def tracer(ev: TraceEvent) -> None:
        if not plat._aborting:
            feed(ev)

    plat.tracer = tracer
    plat.on_quiescent = ms.quiescent
    state = next((m for m in ms.monitors if isinstance(m, StateMonitor)), None)
    plat.on_unlock = None if state is None else state.unlocked
    try:
        out = plat.run(program.fn)
    finally:
        plat.tracer = None
        plat.on_quiescent = None
        plat.on_unlock = None
    return _judge(out, ms)


def _judge(out: RunOutcome, ms: MonitorSet) -> RunOutcome:
    """The run's outcome with what the monitors saw (see :func:`run_schedule`)."""
    if out.verdict == "pruned":
        return out
    if out.verdict == "pass":
        ms.finish(terminal=True)  # every thread ended: nothing can move any more
    elif out.kind in _STUCK:
        ms.quiescent()  # no thread can move: a poller asleep with work due lost it
    v = ms.violations
    if not v:
        return out
    first = next((x for x in v if x.prop != "LIVE"), v[0])
    more = f" (+{len(v) - 1} more)" if len(v) > 1 else ""
    if out.verdict == "pass" or (out.verdict == "inconclusive" and out.kind == "step_budget"):
        return dataclasses.replace(
            out, verdict="fail", kind="property", message=f"{first}{more}", prop=first.prop
        )
    if out.verdict == "fail" and out.kind != "property":
        return dataclasses.replace(out, message=f"{out.message}; monitors: {first}{more}")
    return out


def _schedule_str(program: Program, memory: str, out: RunOutcome) -> str:
    return str(Schedule(program.name, memory, tuple(c.token for c in out.decisions)))


def explore(
    program: Program,
    *,
    strategy: str | Any = "random",
    budget: Budget = Budget(),
    memory: str | None = None,
    seed: int = 0,
    bound: int = 2,
    depth: int = 3,
    do_shrink: bool = True,
) -> ExploreResult:
    """Run ``program`` under ``strategy`` until a failure, exhaustion or the budget."""
    mem = memory or program.memory
    if strategy == "hypothesis":
        return _explore_hypothesis(program, budget, mem, seed, do_shrink)
    strat = make_strategy(strategy, seed, bound, depth, known=_KNOWN)
    res = ExploreResult(program.name, getattr(strat, "name", str(strategy)), mem, "pass")
    t0 = time.perf_counter()
    found: RunOutcome | None = None

    def account(out: RunOutcome) -> bool:
        """Count one run; True: the exploration ends with it."""
        nonlocal found
        res.steps += out.steps
        if out.verdict == "pruned":
            res.pruned += 1
            return False
        res.schedules += 1
        res._hashes.add(out.trace_hash)
        res.max_preemptions = max(res.max_preemptions, out.preemptions)
        if out.verdict == "fail":
            found = out
            return True
        if out.verdict == "inconclusive":
            res.inconclusive_runs += 1
            if out.kind in ("nondeterminism", "watchdog"):
                res.verdict = "inconclusive"
                res.reason = out.message
                return True
        return False

    def loop() -> None:
        while res.schedules + res.pruned < budget.schedules:
            if time.perf_counter() - t0 > budget.seconds:
                break
            if not strat.next_run():
                res.exhausted = True
                break
            if account(run_schedule(program, strat, mem, budget.max_steps)):
                break

    # The runs follow each other on one carrier thread (one round trip for them all; the
    # watchdog stays per run, and a run stuck outside the platform is counted here).
    run_batch(loop, account)
    res.seconds = time.perf_counter() - t0
    res.distinct_traces = len(res._hashes)
    if found is not None:
        res.verdict = "fail"
        res.failure = (
            shrink(program, found, mem, seconds=max(5.0, budget.seconds))
            if do_shrink
            else _failure(program, mem, found, found)
        )
    elif res.verdict == "pass" and res.inconclusive_runs and res.inconclusive_runs == res.schedules:
        res.verdict = "inconclusive"
        res.reason = "every run hit the step budget"
    return res


#: The names :func:`explore` takes, for its error message.
_KNOWN = ", ".join((*STRATEGY_NAMES, "hypothesis"))


def _failure(
    program: Program, memory: str, out: RunOutcome, original: RunOutcome, minimal: bool = False
) -> Failure:
    return Failure(
        kind=out.kind,
        message=out.message,
        schedule=_schedule_str(program, memory, out),
        preemptions=out.preemptions,
        steps=out.steps,
        trace=out.trace,
        thread_names=out.thread_names,
        positions=out.positions,
        original_preemptions=original.preemptions,
        original_steps=original.steps,
        prop=out.prop,
        minimal=minimal,
    )


def shrink(
    program: Program,
    found: RunOutcome,
    memory: str,
    *,
    max_replays: int = 3000,
    search_runs: int = 1500,
    seconds: float | None = None,
) -> Failure:
    """Reduce a failing schedule toward the fewest preemptions, then the fewest steps.

    Probes replay a candidate token list leniently (a token that no longer fits falls back
    to the non-preempting choice) and keep it when the run still fails the same way; the
    kept run's own decisions become the new schedule, so the result replays exactly.  The
    passes: (1) the shortest failing prefix (the rest runs without preemption), (2) single
    preemptions dropped, (3) the fewest preemptions by iterative deepening: a
    preemption-bounded DFS at bound 0, 1, ... below the best count so far, each run to
    exhaustion, until one finds a failure of the same kind (whose count is then the
    minimum: every smaller bound was exhausted without one) or every bound below the best
    is exhausted (the best is the minimum); the passes are repeated while something
    improves.  When the DFS's exhaustiveness holds (memory ``sc``, ``tso`` or ``pso``) and
    the search ran to its end, the failure says it is minimal.  ``search_runs`` bounds the
    DFS runs in all (0 skips pass 3).

    Bounded in work and, optionally, in time: at most ``max_replays`` runs in all (every
    candidate and every run of the DFS counts one), and none starts after ``seconds`` (a
    livelocking program makes every run one to the step budget).  The best schedule found
    so far is kept, and it replays exactly.
    """
    best = found
    replays = 0
    deadline = None if seconds is None else time.perf_counter() + seconds
    searched = 0  # DFS runs spent
    exhausted_below = 0  # every bound below this was searched to exhaustion, no failure
    minimal = False

    def budget_left() -> bool:
        return replays < max_replays and (deadline is None or time.perf_counter() <= deadline)

    def same_failure(out: RunOutcome) -> bool:
        return out.verdict == "fail" and out.kind == found.kind

    def probe(tokens: list[str]) -> RunOutcome | None:
        nonlocal replays
        if not budget_left():
            return None
        replays += 1
        out = run_schedule(program, PrefixStrategy(tokens), memory)
        return out if same_failure(out) else None

    def better(out: RunOutcome) -> bool:
        return (out.preemptions, out.steps) < (best.preemptions, best.steps)

    def deepen() -> RunOutcome | None:
        """Pass 3: bounds from ``exhausted_below`` up to the best count minus one."""
        nonlocal replays, searched, exhausted_below, minimal
        while exhausted_below < best.preemptions:
            dfs = DFSStrategy(exhausted_below)
            while True:
                if searched >= search_runs or not budget_left():
                    return None
                if not dfs.next_run():
                    break
                searched += 1
                replays += 1
                out = run_schedule(program, dfs, memory)
                if same_failure(out):
                    minimal = dfs_sound and out.preemptions == exhausted_below
                    return out
            exhausted_below += 1  # this bound holds no failure of the kind
        minimal = dfs_sound
        return None

    dfs_sound = memory in ("sc", "tso", "pso")
    improved = True
    while improved and budget_left():
        improved = False
        tokens = [c.token for c in best.decisions]
        # 1. shortest prefix that still fails (the rest runs without preemption)
        lo, hi = 0, len(tokens)
        while lo < hi and budget_left():
            mid = (lo + hi) // 2
            out = probe(tokens[:mid])
            if out is None:
                lo = mid + 1
                continue
            hi = mid
            if better(out):
                best, improved = out, True
        # 2. drop single preemptions
        tokens = [c.token for c in best.decisions]
        i = 0
        while i < len(tokens) and budget_left():
            out = probe(tokens[:i] + tokens[i + 1 :])
            if out is not None and better(out):
                best, improved = out, True
                tokens = [c.token for c in best.decisions]
                continue
            i += 1
        # 2b. drop two decisions at once (a switch away and the switch back often only go
        # together), when single drops found nothing
        if not improved:
            tokens = [c.token for c in best.decisions]
            # switch points: a decision unlike the one before it, a flush or a stale read
            cut = [i for i, t in enumerate(tokens)
                   if i and (t != tokens[i - 1] or not t[0].isdigit())]
            pairs: list[tuple[int, int]] = (
                list(itertools.combinations(cut, 2)) if len(cut) <= 16
                else list(itertools.pairwise(cut))
            )
            for a, b in pairs:
                if not budget_left():
                    break
                out = probe([t for i, t in enumerate(tokens) if i not in (a, b)])
                if out is not None and better(out):
                    best, improved = out, True
                    break
        # 3. the fewest preemptions, by iterative deepening below the best count
        if not minimal and best.preemptions > exhausted_below and budget_left():
            out = deepen()
            if out is not None and better(out):
                best, improved = out, True
    proven = best.preemptions == 0 or (minimal and best.preemptions == exhausted_below)
    return _failure(program, memory, best, found, proven)


def replay(schedule: str | Schedule, programs: dict[str, Program]) -> RunOutcome:
    """Run one schedule exactly.  Raises InvalidScheduleError for a bad string or program."""
    sched = schedule if isinstance(schedule, Schedule) else Schedule.parse(schedule)
    program = programs.get(sched.program)
    if program is None:
        raise InvalidScheduleError(
            f"schedule names unknown program {sched.program!r}; "
            f"known: {', '.join(sorted(programs))}"
        )
    return run_schedule(program, ReplayStrategy(sched.tokens), sched.memory)


#: Examples per Hypothesis chunk: once time is up, at most this many more are drawn (unrun).
_HYPOTHESIS_CHUNK = 100


def _explore_hypothesis(
    program: Program, budget: Budget, memory: str, seed: int, do_shrink: bool
) -> ExploreResult:
    """Decisions drawn from Hypothesis data, so Hypothesis itself shrinks failing schedules.

    One :class:`~aioctx_verify.stress.explore._search.SeededSearch`: at most
    ``budget.schedules`` examples in chunks of :data:`_HYPOTHESIS_CHUNK` (time is checked
    between chunks and before each run), for at most ``budget.seconds``, then shrinking for
    at most ``max(5, budget.seconds)``; the failure reported is the recorded one with the
    fewest preemptions, then steps.
    """
    from hypothesis import given
    from hypothesis import seed as hseed
    from hypothesis import strategies as st

    from ._search import SeededSearch

    res = ExploreResult(program.name, "hypothesis", memory, "pass")
    search: SeededSearch[RunOutcome] = SeededSearch(
        seed=seed,
        seconds=budget.seconds,
        shrink_seconds=max(5.0, budget.seconds),
        key=lambda out: (out.preemptions, out.steps),
        chunk=_HYPOTHESIS_CHUNK,
        max_examples=budget.schedules,
        shrink=do_shrink,
    )

    class _Found(Exception):
        pass

    def body(choices: list[int]) -> None:
        if not search.allows():
            return  # out of time: the rest of the chunk ends at once
        # Drawn up front: Hypothesis data may only be drawn from the test's own thread.
        it = iter(choices)
        strat = DataStrategy(lambda n: next(it, 0) % n)
        out = run_schedule(program, strat, memory, budget.max_steps)
        search.runs += 1
        res.schedules += 1
        res.steps += out.steps
        res._hashes.add(out.trace_hash)
        res.max_preemptions = max(res.max_preemptions, out.preemptions)
        if out.verdict == "fail":
            search.record(out)
            raise _Found(out.kind)

    def chunk(settings: Settings, chunk_seed: int) -> None:
        @hseed(chunk_seed)
        @settings
        @given(st.lists(st.integers(0, 15), max_size=400))
        def probe(choices: list[int]) -> None:
            body(choices)

        probe()

    search.run(chunk)
    res.seconds = search.elapsed()
    res.distinct_traces = len(res._hashes)
    final = search.found
    first = search.first
    if final is not None and first is not None:
        res.verdict = "fail"
        res.failure = _failure(program, memory, final, first)
    return res
