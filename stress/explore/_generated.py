"""Generated programs over impl's whole public API: search, shrinking, replay, real threads.

:func:`search_generated` draws programs with :func:`~._gen_ops.generate` (seed, index)
and explores each under every strategy (random, PCT, DFS, conflict-directed) and memory
model (sc, tso, pso, c11) on the controlled platform, with every runtime monitor on (through
:func:`~._explore.run_schedule`, the corpus' own path, so monitors added to the default set
are picked up) and the program-level oracles of :mod:`~._gen_run`; it stops at the first
failure.  The failure is shrunk to a minimal program (:func:`shrink_program`: whole threads,
then chunks of operations, then single operations dropped, each candidate kept when it
still fails the same way under a lenient replay of the last failing schedule or a short
search), then to a minimal schedule (:func:`~._explore.shrink`), and printed with a replay
line that reruns it from the line alone::

    aioctx-verify replay [--mutant NAME] 'gen:seed=3,index=17,keep=0-4.9;v1:gen1.s3.i17:tso:...'

:func:`run_real` runs a program on real threads (every wait bounded), which shows that
generated programs are well-formed outside the controlled platform too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aioctx_verify.impl import RealPlatform
from aioctx_verify.vocab import PROPERTY_NAMES, PropertyName

from ..controlled import (
    DEFAULT_STRATEGIES,
    Conflicts,
    ConflictStrategy,
    InvalidScheduleError,
    PrefixStrategy,
    ReplayStrategy,
    RunOutcome,
    Schedule,
    for_memory,
)
from ._explore import (
    Budget,
    Failure,
    Program,
    _failure,
    explore,
    format_trace,
    run_schedule,
    shrink,
)
from ._gen_ops import GenProgram, generate, parse_keep
from ._gen_run import Finding, ProgramRun, RunGaveUp, classify, generated_program
from ._lines import replay_line

__all__ = [
    "GEN_BUDGETS",
    "MEMORIES",
    "STRATEGIES",
    "GenBudget",
    "GenFailure",
    "GenReplay",
    "program_by_name",
    "GenSearchResult",
    "RealRunReport",
    "finish_failure",
    "parse_gen_spec",
    "replay_generated",
    "run_real",
    "search_generated",
    "shrink_program",
]

#: Strategies and memory models every program is explored under.
STRATEGIES = DEFAULT_STRATEGIES  # any of STRATEGY_NAMES may be asked for
MEMORIES = ("sc", "tso", "pso", "c11")


@dataclass(frozen=True)
class GenFailure(Failure):
    """A failure of a generated program: the shrunk program, and the shrunk schedule."""

    program: GenProgram | None = None
    original_size: int = 0
    original_threads: int = 0
    strategy: str = ""
    memory: str = ""

    @property
    def spec(self) -> str:
        """``gen:...;v1:...``: the replay spec of this failure."""
        assert self.program is not None
        return f"{self.program.spec};{self.schedule}"

    def replay_command(self, mutant: str | None = None) -> str:
        return replay_line(self.spec, mutant)

    def report(self) -> str:
        assert self.program is not None
        return "\n".join([
            f"{self.kind}: {self.message}",
            f"property: {self.prop or 'unclassified'}",
            self.program.listing(),
            f"found by {self.strategy} under {self.memory}; program shrunk from "
            f"{self.original_size} ops / {self.original_threads} threads to "
            f"{self.program.size} ops / {self.program.threads} threads",
            f"schedule: {self.schedule}",
            f"replay:   {self.replay_command()}",
            self.shrink_summary,
            format_trace(self.trace, self.thread_names),
        ])


Key = tuple[str, str, str]


def _key(out: RunOutcome, raised: list[BaseException]) -> Key:
    """What a failure is, for "fails the same way": kind, property, and for an exception
    its type and oracle rule."""
    e = raised[0] if raised and out.kind == "exception" else None
    prop = out.prop or (classify(e) if e is not None else None) or ""
    what = "" if e is None else f"{type(e).__name__}:{getattr(e, 'rule', '')}"
    return (out.kind, prop, what)


def _reproduce(program: Program, schedule: str) -> RunOutcome:
    sched = Schedule.parse(schedule)
    return run_schedule(program, ReplayStrategy(sched.tokens), sched.memory)


def shrink_program(
    prog: GenProgram,
    found: RunOutcome,
    memory: str,
    *,
    strategy: str = "random",
    seed: int = 0,
    seconds: float = 20.0,
    search: int = 20,
) -> tuple[GenProgram, RunOutcome]:
    """Drop threads and operations while the program still fails the same way.

    A candidate is first run under a lenient replay of the last failing schedule
    (:class:`~aioctx_verify.stress.controlled.PrefixStrategy`), then, if that passes,
    explored for at most ``search`` schedules with the strategy that found the failure.
    Passes: each whole thread (the last first); then chunks of top-level operations,
    halving their size; then single operations, outermost first; repeated while one
    improves.  Bounded by ``seconds`` of wall time; the best program so far is returned,
    with the failing run that proves it.
    """
    holder: list[BaseException] = []
    key = _key(found, _first_raised(prog, memory, found))
    best, best_out = prog, found
    deadline = time.perf_counter() + seconds

    def test(cand: GenProgram) -> RunOutcome | None:
        if cand.size >= best.size or time.perf_counter() > deadline:
            return None
        program = generated_program(cand, memory, holder)
        out = run_schedule(program, PrefixStrategy([c.token for c in best_out.decisions]))
        if out.verdict == "fail" and _key(out, holder) == key:
            return out
        left = deadline - time.perf_counter()
        if left <= 0:
            return None
        r = explore(program, strategy=strategy, budget=Budget(search, left), memory=memory,
                    seed=seed, do_shrink=False)
        if r.failure is None:
            return None
        out = _reproduce(program, r.failure.schedule)
        return out if out.verdict == "fail" and _key(out, holder) == key else None

    def attempt(uids: set[int] | frozenset[int]) -> bool:
        nonlocal best, best_out
        if not uids:
            return False
        cand = best.without(uids)
        out = test(cand)
        if out is None:
            return False
        best, best_out = cand, out
        return True

    improved = True
    while improved and time.perf_counter() < deadline:
        improved = False
        for k in reversed(range(len(best.scripts))):
            improved |= attempt({op.uid for o in best.scripts[k] for op in o.walk()})
        tops = [op.uid for s in best.scripts for op in s]
        size = max(1, len(tops) // 2)
        while size >= 1 and time.perf_counter() < deadline:
            tops = [op.uid for s in best.scripts for op in s]
            i = 0
            while i < len(tops):
                if attempt(set(tops[i : i + size])):
                    improved = True
                    tops = [op.uid for s in best.scripts for op in s]
                    continue
                i += size
            if size == 1:
                break
            size //= 2
        for uid in [op.uid for op in best.ops()]:
            if uid in {op.uid for op in best.ops()}:
                improved |= attempt({uid})
    return best, best_out


def _first_raised(prog: GenProgram, memory: str, out: RunOutcome) -> list[BaseException]:
    """The exception that failed ``out`` (replayed), for its classification."""
    if out.kind != "exception":
        return []
    raised: list[BaseException] = []
    run_schedule(
        generated_program(prog, memory, raised),
        ReplayStrategy([c.token for c in out.decisions]),
        memory,
    )
    return raised


def finish_failure(
    prog: GenProgram,
    found: RunOutcome,
    memory: str,
    *,
    strategy: str,
    seed: int,
    shrink_seconds: float,
) -> GenFailure:
    """Shrink a failing run of ``prog``: the program, then the schedule."""
    small, out = shrink_program(
        prog, found, memory, strategy=strategy, seed=seed, seconds=shrink_seconds * 0.7
    )
    raised: list[BaseException] = []
    program = generated_program(small, memory, raised)
    f = shrink(program, out, memory, seconds=max(1.0, shrink_seconds * 0.3), search_runs=100)
    final = _reproduce(program, f.schedule)
    gf = _gen_failure(small, program, final, found, raised, origin=prog, strategy=strategy)
    return dataclasses.replace(gf, minimal=f.minimal)


def _gen_failure(
    prog: GenProgram,
    program: Program,
    out: RunOutcome,
    original: RunOutcome,
    raised: list[BaseException],
    *,
    origin: GenProgram,
    strategy: str,
) -> GenFailure:
    """The failure of ``out``, the run of ``program`` (``prog``, shrunk from ``origin``)
    that ``raised`` holds the exception of."""
    base = _failure(program, program.memory, out, original)
    fields = {fl.name: getattr(base, fl.name) for fl in dataclasses.fields(Failure)}
    fields["prop"] = out.prop or (classify(raised[0]) if raised else None) or ""
    return GenFailure(**fields, program=prog, original_size=origin.size,
                      original_threads=origin.threads, strategy=strategy,
                      memory=program.memory)


#: A small-scope program's runs are a few times shorter than a swarm program's: it gets this
#: many times the budget's schedules (a lost kick between two guest requests needed 6 to 80
#: random schedules of such a program, where the smoke budget gives each 2).
SMALL_SCHEDULES = 3


@dataclass(frozen=True, slots=True)
class GenBudget:
    """Work of a search: ``programs`` programs, each explored for ``schedules`` schedules
    under every strategy and memory model (or ``combos`` of those combinations, taken in
    turn, so that ``len(strategies) * len(memories) / combos`` consecutive programs cover
    them all; a small-scope program then runs under every strategy instead, each with the
    next memory model); ``seconds`` bounds the search in wall time (a safety net: the work bound is
    what a budget means), ``shrink_seconds`` a failure's shrinking."""

    programs: int = 20
    schedules: int = 2
    seconds: float = 120.0
    shrink_seconds: float = 20.0
    combos: int | None = None


#: Budgets of the campaign's ``generated`` step.
GEN_BUDGETS: dict[str, GenBudget] = {
    # smoke: more programs, each under one strategy and every memory model (in turn): an
    # operation mix the smoke run has not drawn is a bug it cannot find.
    "smoke": GenBudget(programs=120, schedules=2, seconds=30.0, shrink_seconds=10.0, combos=4),
    "pr": GenBudget(programs=120, schedules=3, seconds=120.0, shrink_seconds=20.0),
    "nightly": GenBudget(programs=5000, schedules=8, seconds=3 * 3600.0, shrink_seconds=60.0),
}


@dataclass
class GenSearchResult:
    """What a search ran and found."""

    seed: int
    verdict: str = "pass"  # pass | fail | inconclusive
    reason: str = ""
    programs: int = 0
    #: programs explored to the end of their budget under every strategy and memory model
    #: (a program cut short by the wall-time bound is counted in ``programs`` only)
    complete: int = 0
    runs: int = 0
    steps: int = 0
    seconds: float = 0.0
    inconclusive_runs: int = 0
    distinct_traces: int = 0
    max_preemptions: int = 0
    ops: int = 0
    failure: GenFailure | None = None
    found_at: tuple[int, str, str] | None = None  # program index, strategy, memory
    #: the distinct traces' hashes (for merging searches of disjoint program ranges)
    trace_hashes: frozenset[int] = field(default=frozenset(), repr=False, compare=False)

    @property
    def programs_per_second(self) -> float:
        return self.programs / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        s = (
            f"generated programs (seed {self.seed}): {self.verdict}"
            f"{' (' + self.reason + ')' if self.reason else ''}; {self.programs} programs "
            f"({self.ops} ops), {self.runs} runs, {self.steps:,} steps, "
            f"{self.programs_per_second:.1f} programs/s, {self.seconds:.1f} s"
        )
        if self.failure is not None:
            s += "\n" + self.failure.report()
        return s


def _combos(strategies: tuple[str, ...], memories: tuple[str, ...]) -> list[tuple[str, str]]:
    """Every (strategy, memory) a search takes in turn (:func:`for_memory`: a c11 turn of
    DPOR goes to DFS, which says so in what it finds)."""
    return [(for_memory(s, m), m) for s in strategies for m in memories]


def search_generated(
    seed: int = 0,
    budget: GenBudget = GenBudget(),
    *,
    strategies: tuple[str, ...] = STRATEGIES,
    memories: tuple[str, ...] = MEMORIES,
    first: int = 0,
    do_shrink: bool = True,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[int, GenSearchResult], None] | None = None,
    indices: Sequence[int] | None = None,
    focus: tuple[str, tuple[int, ...]] | None = None,
) -> GenSearchResult:
    """Generate programs ``first, first + 1, ...`` of ``seed`` (or exactly ``indices``, in
    that order) and explore each under every strategy and memory model until a failure or
    the budget.  ``focus`` (an impl file as ``impl/_x.py`` and lines, as of a patch under
    test) steers the ``conflict`` strategy toward the objects those lines access.

    Deterministic given its arguments, except where the wall-time bound cuts it short.
    """
    res = GenSearchResult(seed)
    t0 = time.perf_counter()
    stop = should_stop or (lambda: False)
    combos = _combos(strategies, memories)
    hashes: set[int] = set()
    order = list(indices)[: budget.programs] if indices is not None else range(
        first, first + budget.programs)
    for i in order:
        if stop() or time.perf_counter() - t0 > budget.seconds:
            res.reason = res.reason or f"stopped after {res.programs} of {budget.programs} programs"
            break
        prog = generate(seed, i)
        res.programs += 1
        res.ops += prog.size
        whole = True  # every combination ran its schedules (or exhausted, or failed)
        learned = Conflicts()  # what conflict-directed search learns, across memory models
        mine = list(enumerate(combos))
        if budget.combos is not None and budget.combos < len(combos):
            k = max(1, budget.combos)
            if prog.setup.focus is not None and len(strategies) > 1:
                # A small-scope program is cheap and its bug is a matter of order more
                # than of memory: every strategy, each under the next memory model.
                per = len(memories)
                mine = [mine[s * per + (i + s) % per] for s in range(len(strategies))]
            else:
                mine = [mine[(i * k + t) % len(combos)] for t in range(k)]
        for j, (strategy, memory) in mine:
            left = budget.seconds - (time.perf_counter() - t0)
            if left <= 0:
                whole = False
                break
            raised: list[BaseException] = []
            program = generated_program(prog, memory, raised)
            run_seed = (seed * 1_000_003 + i) * 16 + j
            schedules = budget.schedules * (SMALL_SCHEDULES if prog.setup.focus else 1)
            strat: Any = (ConflictStrategy(run_seed, focus=focus, learned=learned)
                          if strategy == "conflict" else strategy)
            r = explore(program, strategy=strat, budget=Budget(schedules, left),
                        memory=memory, seed=run_seed, do_shrink=False)
            res.runs += r.schedules + r.pruned
            res.steps += r.steps
            res.inconclusive_runs += r.inconclusive_runs
            res.max_preemptions = max(res.max_preemptions, r.max_preemptions)
            hashes |= r._hashes
            if not (r.failure is not None or r.exhausted
                    or r.schedules + r.pruned >= schedules):
                whole = False  # the wall-time bound cut it short
            if r.verdict == "inconclusive" and r.reason and not res.reason:
                res.reason = f"{prog.spec} [{strategy}/{memory}]: {r.reason}"
            if r.failure is not None:
                found = _reproduce(program, r.failure.schedule)
                if found.verdict != "fail":  # pragma: no cover - the run is deterministic
                    res.verdict, res.reason = "inconclusive", f"{prog.spec}: failure did not replay"
                    break
                res.found_at = (i, strategy, memory)
                res.verdict = "fail"
                if do_shrink:
                    res.failure = finish_failure(prog, found, memory, strategy=strategy,
                                                 seed=run_seed,
                                                 shrink_seconds=budget.shrink_seconds)
                else:
                    res.failure = _gen_failure(prog, program, found, found, raised,
                                               origin=prog, strategy=strategy)
                break
        res.complete += whole
        if progress is not None:
            progress(i, res)
        if res.verdict == "fail":
            break
    res.seconds = time.perf_counter() - t0
    res.distinct_traces = len(hashes)
    res.trace_hashes = frozenset(hashes)
    if res.verdict == "pass" and res.runs and res.inconclusive_runs == res.runs:
        res.verdict, res.reason = "inconclusive", "every run hit the step budget"
    return res


def shrink_found(
    seed: int,
    failure: GenFailure,
    *,
    strategies: tuple[str, ...] = STRATEGIES,
    memories: tuple[str, ...] = MEMORIES,
    shrink_seconds: float = 20.0,
) -> GenFailure:
    """The shrunk form of a failure that :func:`search_generated` found with
    ``do_shrink=False`` (same ``seed``, ``strategies`` and ``memories``): what it would have
    reported with shrinking on.  Deterministic but for the wall-time bound of shrinking."""
    if failure.program is None or failure.program.seed != seed:
        raise ValueError("shrink_found: the failure is not of a program of this seed")
    i = failure.program.index
    prog = generate(seed, i)
    combos = _combos(strategies, memories)
    j = combos.index((failure.strategy, failure.memory))
    raised: list[BaseException] = []
    program = generated_program(prog, failure.memory, raised)
    found = _reproduce(program, failure.schedule)
    return finish_failure(prog, found, failure.memory, strategy=failure.strategy,
                          seed=(seed * 1_000_003 + i) * 16 + j, shrink_seconds=shrink_seconds)


# ------------------------------------------------------------------------------------------
# Replay from a printed line
# ------------------------------------------------------------------------------------------
_SPEC = re.compile(r"^gen:seed=(-?\d+),index=(\d+)(?:,keep=([0-9.\-]*))?;(.+)$")
_NAME = re.compile(r"^gen(\d+)\.s(-?\d+)\.i(\d+)$")


def program_by_name(name: str, memory: str = "sc") -> Program | None:
    """The whole (unshrunk) generated program a schedule names (``gen1.s3.i17``), as a
    controlled-platform program; ``None`` when ``name`` is no generated program's.

    Raises:
        InvalidScheduleError: a generated program of another generator version.
    """
    from ._gen_ops import GENERATOR_VERSION

    m = _NAME.match(name)
    if m is None:
        return None
    if int(m.group(1)) != GENERATOR_VERSION:
        raise InvalidScheduleError(
            f"program {name!r} was generated by generator version {m.group(1)}; this version "
            f"is {GENERATOR_VERSION}: rerun the search that printed it with this version"
        )
    return generated_program(generate(int(m.group(2)), int(m.group(3))), memory)


def parse_gen_spec(spec: str) -> tuple[GenProgram, Schedule]:
    """The program and schedule a ``gen:`` replay spec names.

    Raises:
        InvalidScheduleError: a malformed spec, or a schedule of another program.
    """
    m = _SPEC.match(spec.strip())
    if m is None:
        raise InvalidScheduleError(
            f"malformed generated-program spec {spec[:60]!r}: expected "
            "gen:seed=<n>,index=<i>[,keep=<ops>];v1:<program>:<memory>:<tokens>, as printed "
            "by a failing run"
        )
    prog = generate(int(m.group(1)), int(m.group(2)))
    if m.group(3) is not None:
        try:
            prog = prog.restrict(parse_keep(m.group(3)))
        except ValueError as e:
            raise InvalidScheduleError(str(e)) from None
    sched = Schedule.parse(m.group(4))
    if sched.program != prog.name:
        raise InvalidScheduleError(
            f"the schedule names program {sched.program!r} but the spec generates "
            f"{prog.name!r}; pass the line exactly as the failing run printed it (by this "
            "version of the generator)"
        )
    return prog, sched


@dataclass(frozen=True)
class GenReplay:
    """One replayed run of a generated program."""

    program: GenProgram
    memory: str
    outcome: RunOutcome
    prop: PropertyName | None


def replay_generated(spec: str) -> GenReplay:
    """Rerun a ``gen:`` spec exactly (apply a mutant around the call to replay under it).

    Raises:
        InvalidScheduleError: see :func:`parse_gen_spec`.
    """
    prog, sched = parse_gen_spec(spec)
    raised: list[BaseException] = []
    program = generated_program(prog, sched.memory, raised)
    out = run_schedule(program, ReplayStrategy(sched.tokens), sched.memory)
    prop: PropertyName | None = None
    if out.verdict == "fail":
        p = out.prop or (classify(raised[0]) if raised else None)
        prop = p if p in PROPERTY_NAMES else None
        if prop is None and out.kind in ("deadlock", "lost_wakeup"):
            prop = "LIVE"
    return GenReplay(prog, sched.memory, out, prop)


# ------------------------------------------------------------------------------------------
# Real threads
# ------------------------------------------------------------------------------------------
@dataclass
class RealRunReport:
    """A run on real threads: oracle findings, monitor violations, the first exception, and
    the waits that ran out with nothing seen stuck (``unsure``: the run is inconclusive)."""

    program: GenProgram
    findings: list[Finding] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    error: BaseException | None = None
    watchdog_fired: bool = False
    unsure: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """``fail``: a finding, a violation or an exception; ``inconclusive``: a wall-clock
        bound ran out with nothing seen stuck (the machine may be slow); else ``pass``."""
        if self.findings or self.violations or self.error is not None:
            return "fail"
        return "inconclusive" if self.unsure or self.watchdog_fired else "pass"

    @property
    def ok(self) -> bool:
        return self.verdict == "pass"

    def describe(self) -> str:
        bits = [f"{f.prop or ''} {f.rule}: {f.message}" for f in self.findings]
        bits += self.violations
        if self.error is not None:
            bits.append(f"{type(self.error).__name__}: {self.error}")
        bits += [f"inconclusive: {u}" for u in self.unsure]
        if self.watchdog_fired:
            bits.append("watchdog fired")
        return f"{self.program.spec}: " + ("; ".join(bits) or "ok")


def run_real(
    prog: GenProgram, *, wait: float = 10.0, monitors: bool = True, watchdog: float | None = None
) -> RealRunReport:
    """One run of ``prog`` on real threads (the calling thread is thread 0), every wait
    bounded by ``wait`` seconds and the whole run by a watchdog (``watchdog`` seconds,
    default ``4 * wait``).

    A bound that runs out is a LIVE finding only with structural evidence that the run is
    stuck (:func:`~aioctx_verify.stress.mutation.stuck_evidence`); without it the run is
    ``inconclusive`` and only what the monitors saw happen counts (their end-of-run rules
    would judge a run that did not end).
    """
    from aioctx_verify.properties import MonitorSet, monitoring
    from aioctx_verify.stress.mutation import stuck_evidence

    p = RealPlatform()
    rep = RealRunReport(prog)
    raised: list[BaseException] = []
    run = ProgramRun(p, prog, wait=wait, raised=raised, lock=threading.Lock())

    limit = wait * 4 if watchdog is None else watchdog

    def fire() -> None:
        evidence = stuck_evidence([*run.its.values(), *run.x_its], list(run.ctxs.values()))
        if evidence is not None:
            run.fail("LIVE", "no-deadlock", f"the run did not end within {limit} s: {evidence}")
        else:
            rep.watchdog_fired = True
        run.kick()

    dog = threading.Timer(limit, fire)
    dog.daemon = True
    dog.start()
    ms: MonitorSet | None = None
    try:
        with monitoring(p) if monitors else contextlib.nullcontext() as ms:
            try:
                run.main()
            except RunGaveUp:
                pass  # a bounded wait ran out: its finding or its "unsure" is recorded
            except TimeoutError as e:  # one of the run's bounded waits (a join) ran out
                run.ran_out("no-deadlock", f"T0: {e}")
            except Exception as e:
                rep.error = e
    finally:
        dog.cancel()
        dog.join()
        run.release_all()
    rep.findings = list(run.findings)
    rep.unsure = list(run.unsure)
    if ms is not None:
        seen = ms.violations
        if rep.unsure or rep.watchdog_fired:
            seen = [v for v in seen if v.event_index >= 0]
        rep.violations = [str(v) for v in seen]
    return rep
