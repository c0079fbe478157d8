"""The kill matrix: which checker kills which mutant, how fast, with what counterexample.

``kill_matrix(budget, seed, checkers)`` runs every checker against every mutant of
:data:`stress.mutation.CATALOGUE` (one ``with mutant.apply():`` per run) and, as a
control, every checker against the unmutated impl for a few seeds: any failure there is a *false
alarm*.  A mutant that no checker kills is a finding (a property nobody checks, or a checker
that cannot reach the bug); a check that kills nothing is not yet a check.

Checkers are functions ``(mutant, seed, budget) ->`` :class:`CheckOutcome` (the contract
of :mod:`aioctx_verify.stress.mutation._contract`, which every checker returns as is), where
``budget`` is a :class:`CellBudget`: *work* that each checker maps to its own unit, and a
seconds cap that only ends a run (``inconclusive``, never ``survived``) on a machine too
slow to do the work in time:

* ``model``: :func:`model.check_bug` on the model's counterpart of the mutant, when the model
  implements it (``model.MODEL_BUGS``); work -> states (:data:`MODEL_STATES_PER_WORK`);
* ``explore_random`` / ``explore_pct`` / ``explore_dfs`` / ``explore_dpor``: the controlled
  scheduler on the mutant's probe programs (:mod:`stress.mutation._probes`), monitors on,
  under the probe's memory model (TSO for the weak-memory mutants); work -> schedules, one
  per unit, shared among the probes (what a probe leaves, e.g. an exhausted DFS, goes to the
  next); failures are shrunk by :func:`aioctx_verify.stress.explore.shrink`, for
  :data:`SHRINK_REPLAYS` replays in a work-budgeted cell (the same counterexample on any
  machine), else under a wall-time bound (it sizes the counterexample, never the verdict);
  DPOR (bound 2) leaves out the c11 probes, whose read choices it does not model;
* ``stress_real``: the same probes on real threads (:class:`impl.RealPlatform`), every wait
  bounded, a small random switch interval as noise, alternately with the monitors attached
  and without them (untraced runs exercise the fast paths that tracing turns off); work ->
  runs (:data:`REAL_RUN_WORK` units each);
* anything registered with :func:`register_checker`.  On first use this module imports
  ``aioctx_verify.stress.stateful._multi`` (its ``checker`` becomes ``stateful_multi``) and
  ``stress.stateful._single`` (its ``checker`` becomes ``stateful_single``) when they exist,
  so those modules may also register more checkers themselves at import.  They map work to
  Hypothesis examples (``_multi.EXAMPLE_WORK`` units each) and to lockstep programs
  (``_single.PROGRAM_WORK`` units each).

Budgets (:data:`BUDGETS`) give every cell and every control run an amount of work, so a
verdict is the same on any machine: ``smoke`` (under two minutes at idle), ``pr`` (under
five minutes on two cores; every mutant must die), ``nightly`` (long, every probe for every
mutant), or a number of seconds for the whole matrix, turned into work through the fixed
nominal cost of a unit (:data:`~aioctx_verify.stress.mutation.WORK_UNIT_SECONDS`), not by
measuring this machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aioctx_verify.engine import (
    Engine,
    EngineRun,
    LocalEngine,
    Shard,
    ShardResult,
    make_engine,
    run_shards,
)
from aioctx_verify.impl import RealPlatform, TraceEvent
from aioctx_verify.vocab import PROPERTY_NAMES, PropertyName

from ..controlled import ControlledPlatform, ReplayStrategy, Schedule
from ..explore import Budget, Failure, Program, explore, replay_line, run_schedule, shrink
from ._catalogue import CATALOGUE, NO_MUTANT, Mutant
from ._contract import (
    WORK_UNIT_SECONDS,
    CellBudget,
    CheckOutcome,
    Inconclusive,
    Via,
    as_property,
    classify_exception,
)
from ._probes import PROBES, Env, Probe, probe_program

__all__ = [
    "BUDGETS",
    "PROPERTIES",
    "CheckOutcome",
    "Checker",
    "KillMatrix",
    "MatrixBudget",
    "available_checkers",
    "kill_matrix",
    "register_checker",
    "resolve_budget",
    "run_checker",
]

PROPERTIES: tuple[PropertyName, ...] = PROPERTY_NAMES
#: Real-thread runs: the bound of each wait, and of a whole probe run (watchdog).
REAL_WAIT = 2.0
REAL_RUN = 8.0
#: Switch intervals drawn per real-thread run (the GIL hands over this often).
_SWITCH = (1e-6, 5e-6, 2e-5, 1e-4, 5e-3)
#: Work units of one real-thread probe run (``stress_real``; about 20 ms at idle, averaged
#: over the probes: from 2 ms to 50 ms each).
REAL_RUN_WORK = 4
#: Model states searched per work unit (about 34,000 states a second at idle), and the
#: fewest a model search gets.
MODEL_STATES_PER_WORK = 150
MODEL_MIN_STATES = 20_000

Checker = Callable[[Mutant, int, CellBudget], CheckOutcome]
"""A checker: ``(mutant, seed, budget)`` -> :class:`CheckOutcome` (see :class:`CellBudget`)."""

_BUILTIN = ("model", "explore_random", "explore_pct", "explore_dfs", "explore_dpor",
            "stress_real")
_REGISTRY: dict[str, Checker] = {}
_LAZY = {
    "stateful_multi": "aioctx_verify.stress.stateful._multi",
    "stateful_single": "aioctx_verify.stress.stateful._single",
}
_lazy_done = False
#: Checkers registered while modules were imported: a worker process has them too.
_PORTABLE: set[str] = set()
_importing = True


def register_checker(name: str, fn: Checker, *, replace: bool = False) -> None:
    """Add a kill-matrix column.  Raises ValueError if ``name`` is taken (unless ``replace``).

    A checker registered while its module is imported (for example by ``stress.stateful._multi``
    at import) also runs in worker processes; one registered later runs in this process.
    """
    if not replace and name in _REGISTRY and _REGISTRY[name] is not fn:
        raise ValueError(f"a checker named {name!r} is already registered; pass replace=True")
    _REGISTRY[name] = fn
    if _importing:
        _PORTABLE.add(name)
    else:
        _PORTABLE.discard(name)


def _load_lazy() -> None:
    global _lazy_done, _importing
    if _lazy_done:
        return
    _lazy_done = True
    was, _importing = _importing, True
    try:
        for name, module in _LAZY.items():
            try:
                mod = importlib.import_module(module)
            except ImportError:
                continue
            fn = getattr(mod, "checker", None)
            if callable(fn) and name not in _REGISTRY:
                register_checker(name, fn)
    finally:
        _importing = was


def available_checkers() -> list[str]:
    """Every checker that can run here, built-in ones first."""
    _load_lazy()
    return [*_REGISTRY]


def _answer(result: object, name: str) -> CheckOutcome:
    if not isinstance(result, CheckOutcome):
        raise TypeError(
            f"checker {name} returned {type(result).__name__}; a checker must return a "
            "CheckOutcome (aioctx_verify.stress.mutation.CheckOutcome)"
        )
    return result


def run_checker(
    name: str, mutant: Mutant, seed: int, budget: float | CellBudget
) -> CheckOutcome:
    """Run one checker; a checker that raises is reported as an ``error`` cell.

    ``budget``: a :class:`CellBudget`, or a bare number of seconds (a time-budgeted run
    with no work budget, see :meth:`CellBudget.of`).
    """
    _load_lazy()
    return _call(name, _REGISTRY[name], mutant, seed, CellBudget.of(budget))


def _call(name: str, fn: Checker, mutant: Mutant, seed: int, budget: CellBudget) -> CheckOutcome:
    t0 = time.perf_counter()
    try:
        return _answer(fn(mutant, seed, budget), name)
    except Exception as e:  # a broken checker must not sink the matrix
        return CheckOutcome.error(
            time.perf_counter() - t0, f"checker error: {type(e).__name__}: {e}"
        )


def _probes_for(mutant: Mutant, scope: str = "targeted") -> list[Probe]:
    """The mutant's own probes (all of them for the unmutated impl or scope ``all``)."""
    if mutant is NO_MUTANT or scope == "all":
        first = [PROBES[n] for n in mutant.probes]
        return first + [p for p in PROBES.values() if p not in first]
    return [PROBES[n] for n in mutant.probes]


# ----------------------------------------------------------------------------------------
# Classification: which property a failure witnesses, and what noticed it
# ----------------------------------------------------------------------------------------
def _replay(probe: Probe, failure: Failure) -> tuple[PropertyName | None, BaseException | None]:
    """Replay a failing schedule of ``probe`` with the monitors on (if the probe runs them):
    the first violation's property, and the exception that failed the run (if one did)."""
    from aioctx_verify.properties import MonitorSet

    raised: list[BaseException] = []
    program = probe_program(probe, raised)
    sched = Schedule.parse(failure.schedule)
    plat = ControlledPlatform(
        ReplayStrategy(sched.tokens),
        memory=sched.memory,
        max_steps=program.max_steps,
        drop_fences=program.drop_fences,
    )
    ms = MonitorSet() if program.monitors else None

    def tracer(ev: TraceEvent) -> None:
        # Once the run has failed (a hang found, threads being aborted), the unwinding
        # releases contexts from inside aio_poll: those events are not the program's.
        if ms is not None and not plat._aborting:
            ms(ev)

    # Traced only as explored: tracing turns impl's fast paths off (another schedule).
    plat.tracer = tracer if ms is not None else None
    out = plat.run(program.fn)
    plat.tracer = None
    violation = ms.violations[0].prop if ms is not None and ms.violations else None
    failed_by = raised[0] if raised and out.verdict == "fail" and out.kind == "exception" else None
    return violation, failed_by


def _classify(probe: Probe, failure: Failure) -> tuple[PropertyName | None, Via]:
    """The property a (shrunk) failure of ``probe`` witnesses, and what noticed it.

    A monitor violation of the run names its property; so does the first one seen when the
    schedule is replayed with the monitors on (a run may fail in other ways after it); a
    deadlock or lost wake-up is LIVE; an exception is classified by its type and data
    (:func:`~aioctx_verify.stress.mutation._contract.classify_exception`), taken from the
    replay.
    """
    if failure.kind == "property":
        return as_property(failure.prop), "monitor"
    violation, raised = _replay(probe, failure)
    if violation is not None:
        return violation, "monitor"
    if failure.kind in ("deadlock", "lost_wakeup"):
        return "LIVE", "scheduler"
    if raised is not None:
        return classify_exception(raised)
    return None, "exception"


# ----------------------------------------------------------------------------------------
# Built-in checkers
# ----------------------------------------------------------------------------------------
def _na(why: str) -> CheckOutcome:
    return CheckOutcome.not_applicable(why)


def _explorer(strategy: str, scope: str = "targeted") -> Checker:
    def check(mutant: Mutant, seed: int, budget: float | CellBudget) -> CheckOutcome:
        cell = CellBudget.of(budget)
        probes = _probes_for(mutant, scope)
        if strategy == "dpor":  # DPOR's dependencies are sound for sc, tso and pso only
            probes = [p for p in probes if p.memory != "c11"]
        if not probes:
            return _na("no probe exercises this mutant")
        spent = 0.0
        tried: list[str] = []
        unfinished: list[str] = []
        # Work: schedules (one unit each), shared among the probes; a probe that needs
        # fewer (an exhausted DFS) leaves the rest to the next ones.
        left_work = cell.count(1)
        t0 = time.perf_counter()
        for i, probe in enumerate(probes):
            left = cell.seconds - (time.perf_counter() - t0)
            if left <= 0:
                unfinished.extend(p.name for p in probes[i:])
                break
            if left_work is None:  # time-budgeted: a share of the time left
                want, share = 10**9, left / (len(probes) - i)
            else:  # work-budgeted: a share of the schedules left, the cap for the rest
                want, share = max(1, left_work // (len(probes) - i)), left
            program = probe_program(probe)
            with mutant.apply():
                r = explore(
                    program,
                    strategy=strategy,
                    budget=Budget(want, share),
                    seed=seed,
                    do_shrink=False,
                )
                spent += r.seconds
                if r.verdict == "fail" and r.failure is not None:
                    f = _shrunk(program, r.failure, shrink_seconds(cell.nominal_seconds),
                                max_replays=SHRINK_REPLAYS if cell.work_bound else None)
                    prop, via = _classify(probe, f)
                    detail = (
                        f"{probe.name} [{r.memory}] after {r.schedules} schedule(s): {f.kind}: "
                        f"{_one_line(f.message)} | shrunk to {f.preemptions} preemption(s), "
                        f"{f.steps} step(s) | {f.replay_command(mutant.name)}"
                    )
                    return CheckOutcome.kill(spent, detail, prop, via, steps=f.steps)
            done = r.schedules + r.pruned
            tried.append(f"{probe.name}: {r.verdict} in {r.schedules} schedules")
            if left_work is not None:
                left_work = max(0, left_work - done)
                if not r.exhausted and done < want:
                    # The cap ran out, or the run could not go on (a nondeterministic
                    # program, a run outliving the platform's watchdog): work not done.
                    unfinished.append(f"{probe.name} ({done}/{want} schedules)")
        if cell.work_bound and unfinished:
            return CheckOutcome.inconclusive(
                spent,
                f"inconclusive: work not done within the {cell.seconds:g} s cap (machine "
                f"too slow?): {', '.join(unfinished)} unfinished | " + "; ".join(tried),
            )
        return CheckOutcome.survived(spent, "; ".join(tried))

    check.__name__ = f"explore_{strategy}"
    return check


def shrink_seconds(cell_seconds: float) -> float:
    """Wall time a kill may spend shrinking its counterexample (on top of the cell's), from
    the cell's nominal seconds (:attr:`CellBudget.nominal_seconds`): it sizes the reported
    counterexample, never the verdict."""
    return min(3.0, max(0.5, cell_seconds * 0.5))


#: Replays a work-budgeted cell's kill may spend shrinking its counterexample: the same
#: shrunk counterexample on any machine and engine (its wall-time bound is then only a cap,
#: :data:`SHRINK_CAP_FACTOR` times :func:`shrink_seconds`).
SHRINK_REPLAYS = 300
SHRINK_CAP_FACTOR = 10.0


def _shrunk(program: Program, failure: Failure, seconds: float, *,
            max_replays: int | None = None) -> Failure:
    """``failure`` shrunk by :func:`aioctx_verify.stress.explore.shrink` for at most
    ``seconds``, or (``max_replays`` given) for at most that many replays with ``seconds``
    times :data:`SHRINK_CAP_FACTOR` as a cap: its first two passes (shortest failing
    prefix, single preemptions dropped), without the bounded DFS, as a cell's kill should
    not wait for a search.

    A livelocking mutant makes every shrinking run one to the step budget, hence the wall
    time bound.  A failure that its schedule does not reproduce is reported unshrunk.
    """
    sched = Schedule.parse(failure.schedule)
    found = run_schedule(program, ReplayStrategy(sched.tokens), sched.memory)
    if found.verdict != "fail" or found.kind != failure.kind:
        return failure
    if max_replays is not None:
        return shrink(program, found, sched.memory, search_runs=0, max_replays=max_replays,
                      seconds=seconds * SHRINK_CAP_FACTOR)
    return shrink(program, found, sched.memory, search_runs=0, seconds=seconds)


def _one_line(text: str, limit: int = 300) -> str:
    s = " ".join(text.split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


@dataclass
class _RealResult:
    failed: bool
    detail: str = ""
    prop: PropertyName | None = None
    via: Via = "exception"
    #: A wall-clock bound ran out without structural evidence: no answer either way.
    inconclusive: bool = False


def _real_run(mutant: Mutant, probe: Probe, monitored: bool, rng: random.Random) -> _RealResult:
    """One probe run on real threads under ``mutant``; cleanup after the mutant is removed."""
    from aioctx_verify.properties import MonitorSet, monitoring

    p = RealPlatform(use_eventfd=rng.random() < 0.7)
    env = Env(p, limit=REAL_WAIT)
    error: BaseException | None = None
    ms: MonitorSet | None = None
    try:
        with mutant.apply():
            env.start_watchdog(REAL_RUN)
            with monitoring(p) if monitored else contextlib.nullcontext() as ms:
                try:
                    probe.body(env)
                except Exception as e:
                    error = e
    finally:
        env.close()
    violations = ms.violations if ms is not None else []
    if isinstance(error, Inconclusive) or env.watchdog_fired:
        # Cut short by a wall-clock bound: the end-of-run rules (a waiter never granted, a
        # poller asleep for good) would judge a run that did not end; only what the
        # monitors saw happen counts.
        violations = [v for v in violations if v.event_index >= 0]
    mode = "monitored" if monitored else "untraced"
    if violations:
        v = violations[0]
        return _RealResult(True, f"{probe.name} ({mode}): {_one_line(str(v))}", v.prop, "monitor")
    if isinstance(error, Inconclusive):
        return _RealResult(False, f"{probe.name} ({mode}): {_one_line(str(error))}",
                           inconclusive=True)
    if env.watchdog_fired:
        # The run outlived its wall-clock bound: evidence of a stuck system or nothing.
        return _RealResult(
            False,
            f"{probe.name} ({mode}): the run did not end within {REAL_RUN} s and nothing "
            "was seen stuck: inconclusive (machine too slow?)",
            inconclusive=True,
        )
    if error is not None:
        prop, via = classify_exception(error)
        msg = f"{type(error).__name__}: {error}"
        return _RealResult(True, f"{probe.name} ({mode}): {_one_line(msg)}", prop, via)
    return _RealResult(False)


#: impl files that only real threads run: the controlled platform replaces them, so no
#: explorer reaches their mutants.  stress_real gives a mutant of one (and the unmutated
#: impl, as the false-alarm control) :data:`CONFORMANCE_WORKLOAD` before the probes.
REAL_ONLY_FILES = frozenset({"impl/_real.py"})
#: The real platform's conformance workload (``aioctx_verify.stress.real.WORKLOADS``):
#: linearizability of the atomics' RMWs, mutex exclusion, no lost notifier set, the
#: poller's timeouts.
CONFORMANCE_WORKLOAD = "platform-primitives"


def _real_only(mutant: Mutant) -> bool:
    return mutant is NO_MUTANT or (mutant.site is not None and mutant.site[0] in REAL_ONLY_FILES)


def _conformance(mutant: Mutant, seed: int, cell: CellBudget) -> tuple[CheckOutcome, CellBudget]:
    """:data:`CONFORMANCE_WORKLOAD` on half of ``cell`` (its trials cost
    ``stress.real._runner.TRIAL_WORK`` units each), and the half that is left."""
    from ..real import kill_checker  # here, not at the top: stress.real imports this package

    work = None if cell.work is None else max(1, cell.work // 2)
    out = kill_checker(
        mutant, seed, CellBudget(work, cell.seconds / 2),
        workloads=[CONFORMANCE_WORKLOAD], patience=REAL_WAIT,
    )
    rest = CellBudget(
        None if cell.work is None or work is None else max(1, cell.work - work),
        max(1.0, cell.seconds - out.seconds),
    )
    return out, rest


def stress_real(
    mutant: Mutant, seed: int, budget: float | CellBudget, *, scope: str = "targeted"
) -> CheckOutcome:
    """Real threads: for a mutant of a real-only file (:data:`REAL_ONLY_FILES`) and the
    unmutated impl, :data:`CONFORMANCE_WORKLOAD` on half the budget first; then the mutant's
    probes in turn until a failure, the work is done (conclusive runs, :data:`REAL_RUN_WORK`
    units each: a run that ended inconclusive answered nothing and pays for nothing, so a
    slow machine cannot buy a "survived" with timeouts), or the seconds cap runs out (then,
    with a work budget, the outcome is ``inconclusive``)."""
    cell = CellBudget.of(budget)
    probes = _probes_for(mutant, scope)
    first: CheckOutcome | None = None
    if _real_only(mutant):
        first, cell = _conformance(mutant, seed, cell)
        if first.killed or not probes:
            return first
    if not probes:
        return _na("no probe exercises this mutant")
    rng = random.Random(f"{seed}:{mutant.name}")
    t0 = time.perf_counter()
    runs = 0
    work = 0  # units done: REAL_RUN_WORK a conclusive run
    unsure: list[str] = []
    old = sys.getswitchinterval()
    try:
        while time.perf_counter() - t0 < cell.seconds and (
            cell.work is None or work < cell.work
        ):
            probe = probes[runs % len(probes)]
            monitored = probe.monitors and (runs // len(probes)) % 2 == 0
            sys.setswitchinterval(rng.choice(_SWITCH))
            res = _real_run(mutant, probe, monitored, rng)
            runs += 1
            work += 0 if res.inconclusive else REAL_RUN_WORK
            if res.failed:
                elapsed = time.perf_counter() - t0
                line = replay_line(
                    f"probe-real:{probe.name}:monitored={int(monitored)}:"
                    f"switch={sys.getswitchinterval()!r}",
                    mutant.name,
                )
                return CheckOutcome.kill(
                    elapsed, f"run {runs}: {res.detail} | {line}", res.prop, res.via
                )
            if res.inconclusive:
                unsure.append(res.detail)
    finally:
        sys.setswitchinterval(old)
    elapsed = time.perf_counter() - t0
    if unsure and len(unsure) == runs:
        return CheckOutcome.inconclusive(
            elapsed, f"all {runs} real-thread runs inconclusive; first: {unsure[0]}"
        )
    note = f" ({len(unsure)} inconclusive: {unsure[0]})" if unsure else ""
    if first is not None and first.is_inconclusive:
        return CheckOutcome.inconclusive(
            elapsed, f"{first.detail}; then no failure in {runs} real-thread runs{note}"
        )
    if cell.work is not None and work < cell.work:
        return CheckOutcome.inconclusive(
            elapsed,
            f"inconclusive: {runs} real-thread runs, {work} of {cell.work} work units, within "
            f"the {cell.seconds:g} s cap (machine too slow?), no failure{note}",
        )
    return CheckOutcome.survived(elapsed, f"no failure in {runs} real-thread runs{note}")


def _stress_real_all(mutant: Mutant, seed: int, budget: CellBudget) -> CheckOutcome:
    return stress_real(mutant, seed, budget, scope="all")


def _model_checker(mutant: Mutant, seed: int, budget: float | CellBudget) -> CheckOutcome:
    """:func:`model.check_bug` on the mutant's model counterpart (correct configs for none).

    Work: states (:data:`MODEL_STATES_PER_WORK` per unit, at least
    :data:`MODEL_MIN_STATES`) per search.  A mutant's search is bounded by states alone;
    the control searches every bug's configuration, and one whose cap runs out first is
    ``inconclusive``.
    """
    cell = CellBudget.of(budget)
    try:
        from aioctx_verify import model
    except ImportError:
        return _na("model not installed")
    if cell.work is None:
        max_states = max(MODEL_MIN_STATES, int(cell.seconds * 12_000))
    else:
        max_states = max(MODEL_MIN_STATES, cell.work * MODEL_STATES_PER_WORK)
    t0 = time.perf_counter()
    if mutant is NO_MUTANT:
        # The control: every bug's configuration with no bug on must be violation-free.
        configs = model.BUG_CONFIGS
        rng = random.Random(seed)
        flags = sorted(configs)
        rng.shuffle(flags)
        checked = 0
        for flag in flags:
            if time.perf_counter() - t0 > cell.seconds:
                break
            cfg = dataclasses.replace(configs[flag], bugs=frozenset())
            r = model.search(cfg, max_states=max_states)
            checked += 1
            if r.violation is not None:
                return CheckOutcome.kill(
                    time.perf_counter() - t0,
                    f"model: {r.violation} in the correct model ({flag}'s configuration)",
                    as_property(r.violation),
                    "model",
                    steps=len(r.path),
                )
        if cell.work_bound and checked < len(flags):
            return CheckOutcome.inconclusive(
                time.perf_counter() - t0,
                f"model: inconclusive: {checked} of {len(flags)} correct configs searched "
                f"within the {cell.seconds:g} s cap (machine too slow?), all clean",
            )
        return CheckOutcome.survived(
            time.perf_counter() - t0, f"model: {checked} correct configs clean"
        )
    if mutant.model_bug is None or mutant.model_bug not in model.MODEL_BUGS:
        return _na(f"the model has no counterpart of {mutant.name}")
    r = model.check_bug(mutant.model_bug, max_states=max_states)
    elapsed = time.perf_counter() - t0
    if r.violation is None:
        bound = "" if r.complete else f" (stopped at {r.states} states)"
        return CheckOutcome.survived(elapsed, f"model: no violation{bound}")
    return CheckOutcome.kill(
        elapsed,
        f"model: {r.violation} after {len(r.path)} action(s), {r.states} states searched"
        f" | {replay_line(f'model:bug={mutant.model_bug}', mutant.name)}",
        as_property(r.violation),
        "model",
        steps=len(r.path),
    )


#: The prover's cell: work units per step of bounded model checking (which only runs for
#: the properties Houdini does not prove) and per step of the lasso search (the costly
#: part): a pr cell searches 25 and 5 steps, a control run or a nightly cell 30 and 8.
PROVE_WORK_PER_STEP = 20
PROVE_WORK_PER_LIVE_STEP = 100
#: States of the exhaustive explicit liveness check per work unit (a pr cell: 200,000,
#: the largest model mutant's graph has 178,000).
PROVE_STATES_PER_WORK = 400


def _prove_checker(mutant: Mutant, seed: int, budget: float | CellBudget) -> CheckOutcome:
    """The z3 prover (:func:`model.prove`: Houdini, bounded model checking, k-induction,
    and the search for deadlocks and weakly fair lassos) on the mutant's model
    counterpart in its smallest exhibiting configuration; the control proves a small
    correct configuration (two threads, one BH, nesting depth 1).  Any property refuted
    kills.

    Work: the depths (:data:`PROVE_WORK_PER_STEP`, :data:`PROVE_WORK_PER_LIVE_STEP` units
    per step).  The depths decide the verdict, never the machine's speed: a z3 query is
    not cut short, so the cell runs to its end (the cap does not apply).
    """
    cell = CellBudget.of(budget)
    try:
        from aioctx_verify import model
    except ImportError:
        return _na("the prover (z3-solver) is not installed")
    work = cell.work if cell.work is not None else _work(cell.seconds)
    depth = min(30, max(8, work // PROVE_WORK_PER_STEP))
    live_depth = min(8, max(4, work // PROVE_WORK_PER_LIVE_STEP))
    live_states = min(500_000, work * PROVE_STATES_PER_WORK)
    if mutant is NO_MUTANT:
        flag = None
    elif mutant.model_bug is None or mutant.model_bug not in model.MODEL_BUGS:
        return _na(f"the model has no counterpart of {mutant.name}")
    else:
        flag = mutant.model_bug
    t0 = time.perf_counter()
    prop, steps = _prove_cell(flag, depth, live_depth, live_states)
    elapsed = time.perf_counter() - t0
    spec = f"bug={flag}" if flag else "threads=2,bhs=1,max_depth=1"
    if prop is None:
        return CheckOutcome.survived(
            elapsed, f"prove: nothing refuted (bmc depth {depth}, lasso depth {live_depth}, "
            f"explicit liveness check to {live_states} states)"
        )
    return CheckOutcome.kill(
        elapsed,
        f"prove: {prop} refuted, shortest counterexample {steps} step(s)"
        f" | {replay_line(f'model:{spec}', mutant.name)}",
        as_property(prop),
        "model",
        steps=steps,
    )


@functools.lru_cache(maxsize=64)
def _prove_cell(flag: str | None, depth: int, live_depth: int, live_states: int
                ) -> tuple[str | None, int]:
    """The prover's answer for one model configuration (a pure function of its arguments,
    the seed plays no part: cached, so control runs over many seeds prove once): the
    refuted property with the shortest counterexample and its length, or (None, 0)."""
    from aioctx_verify import model
    from aioctx_verify.properties import PROPERTIES

    cfg = model.ModelConfig(threads=2, bhs=1, max_depth=1) if flag is None else (
        model.bug_config(flag))
    safety = {p: PROPERTIES[p].z3_formula for p in ("P1", "P2", "P3")}
    enc = model.Encoding(cfg)
    rep = model.prove(cfg, safety, depth=depth, encoding=enc)
    results = list(rep.results)
    if not any(r.verdict == "refuted" for r in results):
        # The liveness search only when no safety property fell, on the same encoding and
        # strengthening (Houdini is not run twice).
        live = model.prove(cfg, {}, depth=0, encoding=enc, strengthening=rep.strengthening,
                           liveness=("LIVE", PROPERTIES["LIVE"].z3_formula, live_depth),
                           live_states=live_states)
        results += live.results
    refuted = [r for r in results if r.verdict == "refuted"]
    if not refuted:
        return None, 0
    r = min(refuted, key=lambda x: x.depth)
    return r.property, r.depth


def _generated_checker(mutant: Mutant, seed: int, budget: float | CellBudget) -> CheckOutcome:
    """Generated programs over the whole API (:mod:`aioctx_verify.stress.explore`), not the
    mutant's probes: what a bug outside the catalogue meets; a generated mutant gets the
    programs whose run executes its lines first, and conflict-directed search steered to
    the objects its lines access.  Work: one unit per run, a program being explored for 24
    runs (2 schedules x 3 strategies x 4 memory models), a generated mutant's for
    :data:`CELL_RUNS_PER_PROGRAM` (48: 6 schedules x 2 strategies x 4 memory models, or 12 x
    2 x 2 for a change of ordering, under c11 and pso alone)."""
    from ..explore import MEMORIES, STRATEGIES, GenBudget, search_generated

    cell = CellBudget.of(budget)
    runs = cell.count(1)
    # A change of an ordering or an RMW shows only where loads may read stale writes or
    # stores reorder: its programs run under c11 and pso alone, with the schedules the
    # other models would have had (an oracle such as the publication check needs a stale
    # read the explorer has to choose).
    weak = mutant.name.split(":", 1)[0] in WEAK_MEMORY_OPERATORS
    memories = ("c11", "pso") if weak else MEMORIES
    # A generated mutant's changed lines steer the conflict-directed strategy (as a patch
    # under test would), which takes the random walk's and DFS's shares (a DFS of a few
    # schedules only varies a run's last decisions), and its first programs get more runs;
    # a catalogue mutant, with no site, keeps the unsteered strategies and 24 runs each.
    strategies = CELL_STRATEGIES if mutant.site is not None else tuple(
        s for s in STRATEGIES if s != "conflict")
    per_program = CELL_RUNS_PER_PROGRAM if mutant.site is not None else 24
    schedules = per_program // (len(strategies) * len(memories))
    programs = 10**6 if runs is None else max(1, runs // per_program)
    t0 = time.perf_counter()
    # A generated mutant gets the programs that execute its lines first (coverage).
    chosen = None if runs is None else _generated_for(mutant, seed, programs)
    with mutant.apply():
        r = search_generated(
            seed,
            GenBudget(programs=programs, schedules=schedules, seconds=cell.seconds,
                      shrink_seconds=shrink_seconds(cell.nominal_seconds)),
            strategies=strategies,
            memories=memories,
            indices=chosen,
            focus=mutant.site,
        )
    elapsed = time.perf_counter() - t0
    f = r.failure
    if f is not None:
        return CheckOutcome.kill(
            elapsed,
            f"generated program {f.program.spec if f.program else '?'} after {r.runs} run(s): "
            f"{f.kind}: {_one_line(f.message)} | {f.replay_command(mutant.name)}",
            as_property(f.prop) if f.prop else None,
            "generated",
            steps=f.steps,
        )
    if cell.work_bound and r.complete < programs:  # a program cut short is not done
        return CheckOutcome.inconclusive(
            elapsed,
            f"inconclusive: {r.complete}/{programs} generated programs explored within the "
            f"{cell.seconds:g} s cap (machine too slow?)",
        )
    return CheckOutcome.survived(elapsed, f"generated: {r.programs} programs, {r.runs} runs")


#: The strategies of a generated mutant's cell: conflict-directed search focused on its
#: lines (a run without a target is a random walk) and PCT.
CELL_STRATEGIES = ("conflict", "pct")

#: Runs per generated program in that cell (a catalogue mutant's programs get 24): the
#: programs are ranked by how many threads run the changed lines, so the first ones
#: deserve more schedules (measured on the pr sample: 48 kept every kill of 24 and added
#: one, half as many programs explored).
CELL_RUNS_PER_PROGRAM = 48

#: Operators (generated mutants' name prefix) whose change is of an ordering or an RMW.
WEAK_MEMORY_OPERATORS = frozenset({"fence-drop", "fence-weaken", "order-relax", "rmw-split"})

#: Generated programs of a seed whose coverage is known, to choose a mutant's from: one
#: traced run each, about 5 s for all of them, once per process.  Half of all programs are
#: small-scope ones of one area of the API, so a pool this size holds several programs
#: that bring two threads to the same site of every area (48 held too few: a lost update
#: in aio_disable_external needs two threads disabling one context, which the first 48
#: programs of seed 0 never do, and program 231 does).
GEN_POOL = 240


def _generated_for(mutant: Mutant, seed: int, n: int) -> list[int]:
    """The indices of ``n`` generated programs of ``seed`` for ``mutant`` (a generated
    mutant's site; a catalogue mutant, with none, gets the first ``n``).

    Among the first :data:`GEN_POOL` programs, those whose traced run executes the
    mutant's lines, ranked by how many *threads* execute them (a concurrency bug needs two
    threads at its site; one thread running a line often says nothing), then by how often.
    Three quarters of the places go by that rank; the rest to the other reaching programs
    in an order drawn from the seed (a rank is a heuristic: the program that shows a bug
    is not always the one that runs its line most); then unreached programs fill up."""
    if mutant.site is None:
        return list(range(n))
    from ._operators import generated_coverage, generated_threads

    file, lines = mutant.site
    ranked: list[tuple[int, int, int]] = []
    cov = generated_coverage(seed, range(GEN_POOL))
    for i, who in generated_threads(seed, range(GEN_POOL)).items():
        got = who.get(file, {})
        threads: set[int] = set()
        for k in lines:
            threads |= got.get(k, set())
        hits = sum(cov[i][file][k] for k in lines) if file in cov[i] else 0
        if threads:
            ranked.append((-len(threads), -hits, i))
    order = [i for _, _, i in sorted(ranked)]
    top = order[: max(1, (3 * n + 3) // 4)]
    rest = sorted(order[len(top):], key=lambda i: _digest(f"{seed}:{mutant.name}:{i}"))
    chosen = (top + rest)[:n]
    chosen += [i for i in range(GEN_POOL + n) if i not in chosen][: n - len(chosen)]
    return chosen


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


#: Work units of one race-detected schedule of a generated program (a probe's costs one):
#: about 8x longer, measured (0.04-0.08 s against 0.006-0.012 s per schedule).
GEN_RACE_COST = 8


#: Schedules each generated program gets in a generated mutant's race cell when its run
#: brings two threads to a field its changed lines access (see :func:`_race_programs`).
#: Measured on the pr sample's 69 lock mutants (the races column alone, pr budget, suspects
#: confirmed): 8 kills two more than 2 for every program (with or without confirmation);
#: without confirmation 8 kills one more and 4 one fewer; 12 trades one kill for another.
RACE_SCHEDULES_AT_CONFLICT = 8


def _race_programs(
    mutant: Mutant, seed: int, schedules: int, per_program: int
) -> list[tuple[int, int]]:
    """The generated programs of a race cell with the schedules each gets, ``schedules``
    in all.  A generated mutant's first go to the programs whose run has another thread
    access a field its lines access, one of the two writing (:func:`generated_conflicts`:
    only there can a lock it dropped or a statement it moved out show as a race), in the
    order of :func:`_generated_for`, :data:`RACE_SCHEDULES_AT_CONFLICT` each (a race
    between two given accesses needs the right order of the two, rarely the first
    schedule's); the rest, and a catalogue mutant's, ``per_program`` each in the order of
    :func:`_generated_for`."""
    n = max(1, schedules // per_program)
    if mutant.site is None:
        return [(i, per_program) for i in _generated_for(mutant, seed, n)]
    from ._operators import generated_conflicts

    file, lines = mutant.site
    ranked = _generated_for(mutant, seed, GEN_POOL)
    out: list[tuple[int, int]] = []
    left = schedules
    for i in ranked:
        if left < RACE_SCHEDULES_AT_CONFLICT:
            break
        if i < GEN_POOL and generated_conflicts(seed, i, file, lines):
            out.append((i, RACE_SCHEDULES_AT_CONFLICT))
            left -= RACE_SCHEDULES_AT_CONFLICT
    taken = {i for i, _ in out}
    for i in ranked:
        if left < per_program:
            break
        if i not in taken:
            out.append((i, per_program))
            left -= per_program
    return out


def _races_checker(mutant: Mutant, seed: int, budget: float | CellBudget) -> CheckOutcome:
    """The happens-before race detector over the mutant's probes, then over generated
    programs of ``seed`` (random schedules): a plain field of impl, or a container's
    contents, shared without a happens-before edge.  Work: one unit a probe schedule,
    :data:`GEN_RACE_COST` a generated program's; half of it goes to the probes when there
    are any, the rest to generated programs (2 schedules each), so a mutant no probe
    reaches still meets the whole API."""
    from ..controlled import find_races
    from ..explore import generate, generated_program

    cell = CellBudget.of(budget)
    # The detector follows sc / tso / pso runs; a c11 probe has an sc / tso twin.
    probes = [probe_program(p) for p in _probes_for(mutant, "targeted") if p.memory != "c11"]
    work = cell.count(1)
    per_gen = 2
    n_gen = (len(probes) + 1) * 4 if work is None else max(
        1, (work // 2 if probes else work) // (per_gen * GEN_RACE_COST))
    units: list[tuple[Any, int]] = []
    probe_work = None if work is None else (
        work - n_gen * per_gen * GEN_RACE_COST if probes else 0)
    for i, prog in enumerate(probes):
        want = 10**9 if probe_work is None else max(1, probe_work // (len(probes) - i))
        if probe_work is not None:
            probe_work -= want
        units.append((prog, want))
    units += [(generated_program(generate(seed, i)), want)
              for i, want in _race_programs(mutant, seed, n_gen * per_gen, per_gen)]
    # Each unit's share of what is left of the wall-time cap is its share of the work left
    # (a probe's hundreds of schedules must not get the time of a generated program's few).
    costs = [want * (1 if k < len(probes) else GEN_RACE_COST) for k, (_, want) in enumerate(units)]
    t0 = time.perf_counter()
    unfinished: list[str] = []
    total = 0
    for i, (prog, want) in enumerate(units):
        left = cell.seconds - (time.perf_counter() - t0)
        if left <= 0:
            unfinished.extend(p.name for p, _ in units[i:])
            break
        with mutant.apply():
            r = find_races(prog, strategy="random", schedules=want,
                           seconds=left if work is None else left * costs[i] / sum(costs[i:]),
                           seed=seed)
        total += r.schedules
        if r.races:
            race = r.races[0]
            return CheckOutcome.kill(
                time.perf_counter() - t0,
                f"{prog.name} after {r.schedules} schedule(s): data race: "
                f"{_one_line(race.message)} | {replay_line(f'race:{race.schedule}', mutant.name)}",
                "P3",
                "races",
            )
        if work is not None and r.schedules < want and not r.exhausted:
            unfinished.append(f"{prog.name} ({r.schedules}/{want} schedules)")
    elapsed = time.perf_counter() - t0
    if cell.work_bound and unfinished:
        return CheckOutcome.inconclusive(
            elapsed, f"inconclusive: work not done within the {cell.seconds:g} s cap: "
            f"{', '.join(unfinished[:4])}{' ...' if len(unfinished) > 4 else ''} unfinished",
        )
    return CheckOutcome.survived(elapsed, f"races: none in {total} schedules")


for _name, _fn in (
    ("model", _model_checker),
    ("prove", _prove_checker),
    ("explore_random", _explorer("random")),
    ("explore_pct", _explorer("pct")),
    ("explore_dfs", _explorer("dfs")),
    ("explore_dpor", _explorer("dpor")),
    ("stress_real", stress_real),
    ("generated", _generated_checker),
    ("races", _races_checker),
):
    register_checker(_name, _fn)
_importing = False

# Picklable handles for worker processes (by name, resolved in the child).
_NIGHTLY_VARIANTS: dict[str, Checker] = {
    "explore_random": _explorer("random", "all"),
    "explore_pct": _explorer("pct", "all"),
    "explore_dfs": _explorer("dfs", "all"),
    "explore_dpor": _explorer("dpor", "all"),
    "stress_real": _stress_real_all,
}


# ----------------------------------------------------------------------------------------
# Budgets and the matrix
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MatrixBudget:
    """How much work each cell and each control run of the false-alarm pass does.

    Work, not seconds, decides: a checker that finds nothing survives only once it did
    all of its work; the seconds are safety caps (see :class:`CellBudget`).

    Attributes:
        name: ``smoke`` / ``pr`` / ``nightly`` / ``<seconds>s``.
        cell_work: work units per (mutant, checker) cell.
        false_alarm_seeds: seeds of the false-alarm pass (each checker, unmutated impl).
        false_alarm_work: work units per (checker, seed) of that pass.
        scope: ``targeted`` (each mutant's own probes) or ``all`` (every probe).
        cell_seconds: a cell's safety cap (0, the default: :meth:`CellBudget.for_work`,
            ten times the work's nominal time, at least five seconds).
        false_alarm_seconds: a control run's safety cap (0: likewise).
    """

    name: str
    cell_work: int
    false_alarm_seeds: int
    false_alarm_work: int
    scope: str = "targeted"
    cell_seconds: float = 0.0
    false_alarm_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.cell_work < 1 or self.false_alarm_work < 1:
            raise ValueError(f"bad matrix budget {self.name!r}: work must be at least 1 unit")
        if self.false_alarm_seeds < 0:
            raise ValueError(f"bad matrix budget {self.name!r}: negative false-alarm seeds")
        if self.cell_seconds <= 0:
            object.__setattr__(self, "cell_seconds", CellBudget.for_work(self.cell_work).seconds)
        if self.false_alarm_seconds <= 0:
            object.__setattr__(
                self, "false_alarm_seconds", CellBudget.for_work(self.false_alarm_work).seconds
            )

    @property
    def cell(self) -> CellBudget:
        """The budget of one (mutant, checker) cell."""
        return CellBudget(self.cell_work, self.cell_seconds)

    @property
    def false_alarm(self) -> CellBudget:
        """The budget of one control run (checker, seed) on the unmutated impl."""
        return CellBudget(self.false_alarm_work, self.false_alarm_seconds)


#: The presets.  Work figures come from rates measured at idle on the reference machine
#: (2 cores): ``smoke`` runs the whole matrix (7 checkers, one job) in under two minutes,
#: ``pr`` in under five with two jobs.
BUDGETS: dict[str, MatrixBudget] = {
    "smoke": MatrixBudget("smoke", 120, 1, 400),
    "pr": MatrixBudget("pr", 500, 2, 1000),
    "nightly": MatrixBudget("nightly", 6000, 10, 12000, "all"),
}


def resolve_budget(
    budget: str | float | MatrixBudget,
    *,
    mutants: int = len(CATALOGUE),
    checkers: int = len(_BUILTIN),
    jobs: int = 1,
    false_alarm_seeds: int | None = None,
) -> MatrixBudget:
    """A preset by name, or a whole-matrix budget in seconds turned into work per cell.

    The seconds are split across the cells as before (most cells end early on a kill;
    about a third run their whole share), and each share becomes work through the fixed
    nominal cost of a unit, :data:`~aioctx_verify.stress.mutation.WORK_UNIT_SECONDS`
    (never through a measurement of this machine): the same number gives the same work,
    hence the same verdicts, on any machine; a slow one just takes longer.

    Raises:
        ValueError: an unknown name or a non-positive number of seconds.
    """
    if isinstance(budget, MatrixBudget):
        b = budget
    elif isinstance(budget, str) and budget in BUDGETS:
        b = BUDGETS[budget]
    else:
        try:
            total = float(budget)
        except ValueError:
            raise ValueError(
                f"unknown budget {budget!r}; use smoke, pr, nightly or a number of seconds"
            ) from None
        if not (total > 0 and math.isfinite(total)):
            raise ValueError(f"budget must be a positive number of seconds, got {budget!r}")
        seeds = false_alarm_seeds if false_alarm_seeds is not None else 1
        # Most cells end early on a kill; about a third run their whole share.
        spend = total * max(1, jobs) * 0.8
        fa = max(0.3, spend * 0.25 / max(1, checkers * seeds))
        cell = max(0.1, spend * 0.75 / max(1, mutants * checkers) * 2.0)
        b = MatrixBudget(f"{total:g}s", _work(cell), seeds, _work(fa))
    if false_alarm_seeds is not None:
        b = dataclasses.replace(b, false_alarm_seeds=false_alarm_seeds)
    return b


def _work(seconds: float) -> int:
    """Nominal ``seconds`` as work units (:data:`WORK_UNIT_SECONDS` each)."""
    return max(1, round(seconds / WORK_UNIT_SECONDS))


@dataclass
class KillMatrix:
    """The result: per-(mutant, checker) outcomes and the false-alarm pass."""

    budget: MatrixBudget
    seed: int
    checkers: tuple[str, ...]
    mutants: tuple[Mutant, ...]
    cells: dict[tuple[str, str], CheckOutcome] = field(default_factory=dict)
    false_alarm_runs: list[tuple[str, int, CheckOutcome]] = field(default_factory=list)
    seconds: float = 0.0
    stopped: bool = False  # should_stop() ended it early: some cells never ran
    interrupted: bool = False  # Ctrl-C cancelled the cells under way
    #: How the cells ran as shards (retries, cut-offs); None for a matrix built by hand.
    shards: EngineRun | None = None

    @property
    def false_alarms(self) -> int:
        return sum(1 for _, _, o in self.false_alarm_runs if o.killed)

    def killed_by(self, mutant: str) -> list[str]:
        return [c for c in self.checkers if self.cells.get((mutant, c), _MISSING).killed]

    def unkilled(self) -> list[str]:
        """Mutants that no checker killed although every cell that could answer did its
        whole work (survived): a finding.  See :meth:`undecided` for the others."""
        return [
            m.name for m in self.mutants
            if not self.killed_by(m.name) and not self._has_inconclusive(m.name)
        ]

    def undecided(self) -> list[str]:
        """Mutants that no checker killed but that some cell could not decide: its seconds
        cap ran out before its work was done (machine too slow).  Not survivors, not
        failures: the matrix cannot tell."""
        return [
            m.name for m in self.mutants
            if not self.killed_by(m.name) and self._has_inconclusive(m.name)
        ]

    def _has_inconclusive(self, mutant: str) -> bool:
        return any(
            self.cells.get((mutant, c), _MISSING).is_inconclusive for c in self.checkers
        )

    def errors(self) -> list[str]:
        """Cells (and control runs) whose checker raised instead of answering."""
        return [
            f"{m} x {c}: {o.detail}" for (m, c), o in self.cells.items() if o.verdict == "error"
        ] + [f"false-alarm {c} seed {s}: {o.detail}" for c, s, o in self.false_alarm_runs
             if o.verdict == "error"]

    def inconclusive(self) -> list[str]:
        """Cells (and control runs) that ended without an answer: a wall-clock bound ran
        out and nothing was seen stuck, or the seconds cap ran out before the work was done
        (machine too slow).  Neither a kill, nor a survival, nor a failure."""
        return [
            f"{m} x {c}" for (m, c), o in self.cells.items() if o.is_inconclusive
        ] + [f"false-alarm {c} seed {s}" for c, s, o in self.false_alarm_runs
             if o.is_inconclusive]

    @property
    def ok(self) -> bool:
        """No mutant survived and no false alarm (an undecided mutant is no failure)."""
        return not self.unkilled() and self.false_alarms == 0

    def properties_of(self, mutant: str) -> list[PropertyName]:
        """The properties whose violation killed ``mutant`` (any checker), in P1..LIVE order."""
        got = {
            self.cells[(mutant, c)].killed_by_property
            for c in self.killed_by(mutant)
        }
        return [p for p in PROPERTIES if p in got]

    def property_kills(self, *, via: Via | None = None) -> dict[PropertyName, list[str]]:
        """For each property, the mutants some checker killed through it (``via`` filters,
        e.g. ``monitor``)."""
        out: dict[PropertyName, list[str]] = {p: [] for p in PROPERTIES}
        for m in self.mutants:
            props = {
                o.killed_by_property
                for c in self.checkers
                if (o := self.cells.get((m.name, c), _MISSING)).killed
                and (via is None or o.via == via)
            }
            for p in PROPERTIES:
                if p in props:
                    out[p].append(m.name)
        return out

    def _best(self, mutant: str) -> tuple[float | None, int | None]:
        killers = [self.cells[(mutant, c)] for c in self.killed_by(mutant)]
        if not killers:
            return None, None
        secs = min(o.seconds for o in killers)
        steps = [o.counterexample_steps for o in killers if o.counterexample_steps is not None]
        return round(secs, 4), (min(steps) if steps else None)

    def to_json(self) -> dict[str, Any]:
        mutants = []
        for m in self.mutants:
            secs, steps = self._best(m.name)
            cells = {}
            for c in self.checkers:
                o = self.cells.get((m.name, c))
                if o is None:
                    continue
                cells[c] = {
                    "killed": o.killed,
                    "verdict": o.verdict,
                    "applicable": o.applicable,
                    "seconds": round(o.seconds, 4),
                    "counterexample_steps": o.counterexample_steps,
                    "killed_by_property": o.killed_by_property,
                    "via": o.via or "",
                    "detail": o.detail,
                }
            mutants.append(
                {
                    "name": m.name,
                    "qemu_commit": m.qemu_commit,
                    "property": m.property,
                    "killed_by": self.killed_by(m.name),
                    "seconds_to_kill": secs,
                    "counterexample_steps": steps,
                    "killed_by_property": self.properties_of(m.name),
                    "source": m.source,
                    "description": m.description,
                    "probes": list(m.probes),
                    "checkers": cells,
                    # The same cells as a list (the shape reports' KillCell reads).
                    "cells": [
                        {
                            "checker": c,
                            "killed": v["killed"],
                            "seconds": v["seconds"],
                            "steps": v["counterexample_steps"],
                        }
                        for c, v in cells.items()
                    ],
                }
            )
        return {
            "version": 1,
            "budget": self.budget.name,
            # What each cell and control run had to do (work units), and the safety caps
            # whose running out makes a run inconclusive.
            "cell_work": self.budget.cell_work,
            "cell_seconds_cap": self.budget.cell_seconds,
            "false_alarm_work": self.budget.false_alarm_work,
            "false_alarm_seconds_cap": self.budget.false_alarm_seconds,
            "seed": self.seed,
            "seconds": round(self.seconds, 2),
            "checkers": list(self.checkers),
            "mutants": mutants,
            "unkilled": self.unkilled(),
            "undecided": self.undecided(),
            "errors": self.errors(),
            "inconclusive": self.inconclusive(),
            "property_kills": self.property_kills(),
            "monitor_kills": self.property_kills(via="monitor"),
            "false_alarms": self.false_alarms,
            "false_alarm_runs": [
                {
                    "checker": c,
                    "seed": s,
                    "failed": o.killed,
                    "verdict": o.verdict,
                    "applicable": o.applicable,
                    "seconds": round(o.seconds, 4),
                    "detail": o.detail,
                }
                for c, s, o in self.false_alarm_runs
            ],
        }

    def format_table(self) -> str:
        """Mutant x checker: seconds to kill, ``-`` (survived: all the work done, nothing
        found), ``inc`` (inconclusive: the seconds cap ran out first) or ``n/a``; then a
        summary."""
        short = [c.removeprefix("explore_") for c in self.checkers]
        width = max(len(m.name) for m in self.mutants) if self.mutants else 6
        cols = [max(7, len(s)) for s in short]
        head = f"{'mutant':<{width}}  prop  " + "  ".join(
            f"{s:>{w}}" for s, w in zip(short, cols, strict=True)
        ) + "  killed by property"
        lines = [head, "-" * len(head)]
        for m in self.mutants:
            row = []
            for c, w in zip(self.checkers, cols, strict=True):
                o = self.cells.get((m.name, c))
                if o is not None and o.is_inconclusive:
                    txt = "inc"
                elif o is None or not o.applicable:
                    txt = "n/a"
                elif o.killed:
                    txt = f"{o.seconds:.2f}s"
                else:
                    txt = "-"
                row.append(f"{txt:>{w}}")
            props = ",".join(self.properties_of(m.name)) or (
                "UNDECIDED (inconclusive)" if self._has_inconclusive(m.name) else "NOT KILLED"
            )
            prop = m.property or "-"
            lines.append(f"{m.name:<{width}}  {prop:<4}  " + "  ".join(row) + f"  {props}")
        killed = len(self.mutants) - len(self.unkilled()) - len(self.undecided())
        lines.append("")
        undecided = f", {len(self.undecided())} undecided" if self.undecided() else ""
        lines.append(
            f"{killed}/{len(self.mutants)} mutants killed{undecided}; false alarms: "
            f"{self.false_alarms} "
            f"in {len(self.false_alarm_runs)} control run(s); {self.seconds:.1f} s "
            f"(budget {self.budget.name}: {self.budget.cell_work} work units a cell, "
            f"{self.budget.false_alarm_work} a control run; caps {self.budget.cell_seconds:g} s"
            f" / {self.budget.false_alarm_seconds:g} s)"
        )
        pk = self.property_kills()
        mk = self.property_kills(via="monitor")
        lines.append(
            "kills by property (any checker / by a runtime monitor): "
            + ", ".join(f"{p} {len(pk[p])}/{len(mk[p])}" for p in PROPERTIES)
        )
        if self.unkilled():
            lines.append("not killed: " + ", ".join(self.unkilled()))
        if self.undecided():
            lines.append("undecided (not killed, some cell inconclusive): "
                         + ", ".join(self.undecided()))
        if self.inconclusive():
            lines.append("inconclusive (machine too slow, not failures): "
                         + ", ".join(self.inconclusive()))
        for c, s, o in self.false_alarm_runs:
            if o.killed:
                lines.append(f"FALSE ALARM {c} seed {s}: {o.detail}")
        return "\n".join(lines)


_MISSING = CheckOutcome.not_applicable("")

Task = tuple[str, str, int, CellBudget]  # mutant name ("none" = unmutated), checker, seed, budget


def _mutant(name: str) -> Mutant:
    if name == NO_MUTANT.name:
        return NO_MUTANT
    for m in CATALOGUE:
        if m.name == name:
            return m
    raise KeyError(name)


def _checker_for(name: str, scope: str) -> Checker:
    if scope == "all" and name in _NIGHTLY_VARIANTS:
        return _NIGHTLY_VARIANTS[name]
    _load_lazy()
    return _REGISTRY[name]


def _run_task(task: Task, scope: str, fn: Checker | None = None) -> CheckOutcome:
    mutant_name, checker, seed, budget = task
    check = fn if fn is not None else _checker_for(checker, scope)
    return _call(checker, check, _mutant(mutant_name), seed, budget)


def cell_deadline(budget: CellBudget) -> float:
    """A cell's deadline as a shard: far past its seconds cap (which the checkers honour
    between runs), so only a cell that hangs is cut off."""
    return 2.0 * budget.seconds + 60.0


def _outcome_of(result: ShardResult) -> CheckOutcome:
    """A shard's result as a cell's outcome (a cut-off is inconclusive: its work was not
    done; a lost or failed shard an error)."""
    if result.ok:
        out = result.value
        if not isinstance(out, CheckOutcome):
            return CheckOutcome.error(result.seconds, f"checker error: got {out!r}")
        return out
    if result.status == "deadline":
        return CheckOutcome.inconclusive(result.wall, f"cut off: {result.error}")
    last = result.error.strip().splitlines()[-1] if result.error.strip() else result.status
    return CheckOutcome.error(result.seconds, f"checker error: worker failed: {last}")


def _run_cells(
    engine: Engine,
    tasks: list[Task],
    scope: str,
    *,
    progress_of: Callable[[Task, CheckOutcome, int, int], None],
    should_stop: Callable[[], bool] | None,
) -> EngineRun:
    """Every task as a shard (its index in ``tasks``), merged by index.  Checkers
    registered after import exist only in this process: their cells run here, on a
    :class:`LocalEngine`, the others on ``engine``."""
    here = [i for i, t in enumerate(tasks) if t[1] not in _PORTABLE]
    there = [i for i, t in enumerate(tasks) if t[1] in _PORTABLE]
    if isinstance(engine, LocalEngine):
        here, there = [], list(range(len(tasks)))
    total = len(tasks)
    done = [0]

    def shard(i: int, local: bool) -> Shard:
        t = tasks[i]
        args: tuple[Any, ...] = (t, scope, _checker_for(t[1], scope)) if local else (t, scope)
        return Shard("mutants", i, _run_task, args, deadline=cell_deadline(t[3]),
                     label=f"{t[0]} x {t[1]}")

    def heard(r: ShardResult, _d: int, _n: int) -> None:
        done[0] += 1
        progress_of(tasks[r.index], _outcome_of(r), done[0], total)

    merged = EngineRun("mutants", total)
    for eng, idx, local in ((LocalEngine(), here, True), (engine, there, False)):
        if not idx or merged.interrupted:
            continue
        if isinstance(eng, LocalEngine) and eng is not engine:
            eng.on_progress = engine.on_progress
        part = run_shards(eng, "mutants", [shard(i, local) for i in idx],
                          should_stop=should_stop, on_result=heard)
        merged.results.update(part.results)
        merged.seconds += part.seconds
        merged.stopped |= part.stopped
        merged.interrupted |= part.interrupted
    for i in range(total):  # never started (an interrupt before their part ran)
        if i not in merged.results:
            t = tasks[i]
            merged.results[i] = ShardResult("mutants", i, "cancelled", error="not started",
                                            attempts=0, label=f"{t[0]} x {t[1]}")
            merged.stopped = True
    return merged


def kill_matrix(
    budget: str | float | MatrixBudget = "pr",
    seed: int = 0,
    checkers: Sequence[str] | None = None,
    *,
    mutants: Sequence[str] | None = None,
    false_alarm_seeds: int | None = None,
    jobs: int = 1,
    progress: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    engine: Engine | None = None,
) -> KillMatrix:
    """Run every checker against every mutant, and against the unmutated impl.

    Every cell and control run is a shard (:mod:`aioctx_verify.engine`) of ``engine``:
    in this process by default, or on Dask workers; the results are merged in the order of
    the cells, so the matrix is the same whichever engine ran it.  ``should_stop`` is
    polled between cells: once it returns True no new cell starts (running ones finish
    within their budget) and the matrix returns what it has, with ``stopped`` set.  Dask
    workers ignore SIGINT, so a terminal's Ctrl-C reaches only the caller; a
    KeyboardInterrupt cancels the cells under way and the matrix returns what finished,
    with ``stopped`` and ``interrupted`` set.

    Args:
        budget: ``smoke``, ``pr``, ``nightly``, seconds for the whole matrix, or a
            :class:`MatrixBudget`.
        seed: base seed (false-alarm seeds are ``seed``, ``seed + 1``, ...).
        checkers: names (default: :func:`available_checkers`).
        mutants: names (default: the whole catalogue).
        false_alarm_seeds: overrides the budget's number of control seeds (0: none).
        jobs: the parallelism a budget in seconds is sized for; without ``engine``, more
            than one starts a local Dask cluster of that many workers for the matrix
            (1: in this process).
        progress: called with one line per finished cell (``[done/total] ...``).
        engine: where the cells run (default: see ``jobs``); the caller closes it.

    Raises:
        ValueError: an unknown budget, checker or mutant name.
        EngineUnavailable: ``jobs`` > 1 without an engine and without the Dask extra.
    """
    names = list(checkers) if checkers is not None else available_checkers()
    unknown = [c for c in names if c not in available_checkers()]
    if unknown:
        raise ValueError(
            f"unknown checker(s) {', '.join(unknown)}; known: {', '.join(available_checkers())}"
        )
    by_name = {m.name: m for m in CATALOGUE}
    chosen = list(mutants) if mutants is not None else list(by_name)
    bad = [m for m in chosen if m not in by_name]
    if bad:
        raise ValueError(f"unknown mutant(s) {', '.join(bad)}; see aioctx-verify mutants --list")
    b = resolve_budget(
        budget,
        mutants=len(chosen),
        checkers=len(names),
        jobs=jobs,
        false_alarm_seeds=false_alarm_seeds,
    )
    km = KillMatrix(b, seed, tuple(names), tuple(by_name[m] for m in chosen))
    control: list[Task] = [
        (NO_MUTANT.name, c, seed + i, b.false_alarm)
        for i in range(b.false_alarm_seeds)
        for c in names
    ]
    cells: list[Task] = [(m, c, seed, b.cell) for m in chosen for c in names]
    t0 = time.perf_counter()

    def record(task: Task, out: CheckOutcome, done: str) -> None:
        m, c, s, _ = task
        if m == NO_MUTANT.name:
            what = f"control seed {s}"
            verdict = (
                "FALSE ALARM" if out.killed
                else "inconclusive" if out.is_inconclusive
                else "n/a" if not out.applicable
                else "clean"
            )
        else:
            what = m
            verdict = (
                f"killed in {out.seconds:.2f}s ({out.killed_by_property or '?'}, {out.via})"
                if out.killed
                else "inconclusive" if out.is_inconclusive
                else ("n/a" if not out.applicable else "survived")
            )
        if progress is not None:
            progress(f"{done}{what} x {c}: {verdict}")

    tasks = control + cells
    _load_lazy()
    own: Engine | None = None
    if engine is None:
        engine = own = make_engine(jobs) if jobs > 1 else LocalEngine()
    try:
        run = _run_cells(engine, tasks, b.scope, progress_of=lambda t, out, d, n: record(
            t, out, f"[{d}/{n}] "), should_stop=should_stop)
    finally:
        if own is not None:
            own.close()
    km.shards = run
    for i, t in enumerate(tasks):
        r = run.results.get(i)
        if r is None or r.status == "cancelled":
            continue
        m, c, s, _ = t
        out = _outcome_of(r)
        if m == NO_MUTANT.name:
            km.false_alarm_runs.append((c, s, out))
        else:
            km.cells[(m, c)] = out
    km.stopped = run.stopped or run.interrupted or (should_stop is not None and should_stop())
    km.interrupted = run.interrupted
    km.false_alarm_runs.sort(key=lambda r: (r[1], names.index(r[0])))
    km.seconds = time.perf_counter() - t0
    return km
