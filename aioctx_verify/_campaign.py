"""Campaigns: every checker against every property, under a budget, into one result.

A campaign runs, in order, each *step* it was given a share of the budget for:

* ``model`` - exhaustive search of the correct model (P1, P2, P3, LIVE), states counted;
* ``random`` / ``pct`` / ``dfs`` / ``dpor`` - controlled exploration of the safe corpus (the
  real impl code on the controlled platform, monitors on), coverage counted, failures
  shrunk; ``dpor`` is dynamic partial-order reduction at preemption bound 2, which kills
  more of the mutant catalogue than DFS for the same schedules;
* ``generated`` - seeded generated programs over impl's whole public API (2-4 threads of
  BH, timer, handler, external, thread-pool, dataplane, IOThread and stop-the-world
  operations, well-formed by construction) under the same strategies, conflict-directed
  search too, and every memory model, monitors and program-level oracles on; a failure is
  shrunk to a minimal program and schedule with a ``gen:`` replay line.  Searching impl
  as it is, it gets the largest share of the exploration budget;
* ``races`` - the safe corpus and generated programs under every strategy with the race
  detector on: a plain field of impl shared between threads without ordering breaks the
  seam's rule (reported under P3: the accesses are not mutually excluded);
* ``hypothesis`` - impl against the single-thread reference in lockstep, then the
  multi-thread stateful search (Hypothesis draws scripts and interleavings);
* ``stress`` - the real-thread workloads with noise, graded jcstress-style (histograms);
* ``mutants`` - the kill matrix: every checker against every re-created QEMU bug.

Everything is deterministic given the seed except real-thread timing.  A step whose module
is missing is reported as *skipped*, never silently dropped.  Ctrl-C stops between (or
inside) steps and the result is marked incomplete; the reports are still written.
"""

from __future__ import annotations

import os
import platform as pyplatform
import socket
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypedDict

from aioctx_verify.engine import Engine, LocalEngine, Shard, ShardResult, run_shards
from aioctx_verify.reports import (
    BarrierRow,
    Benchmark,
    CampaignBudget,
    CampaignResult,
    Counterexample,
    Coverage,
    Grade,
    Histogram,
    KillCell,
    KillMatrix,
    Machine,
    Mutant,
    ProofRow,
    ThreadStack,
    TraceStep,
    Verdict,
    VerdictValue,
    tool_version,
)
from aioctx_verify.vocab import DEFAULT_STRATEGIES, PROPERTY_NAMES, PropertyName

if TYPE_CHECKING:
    from aioctx_verify.stress import Failure
    from aioctx_verify.stress.mutation import MatrixBudget

__all__ = ["BUDGETS", "CHECKERS", "PROPERTIES", "RUN_STRATEGIES", "STRATEGIES", "CampaignPlan",
           "plan_campaign", "run_campaign"]

PROPERTIES: tuple[PropertyName, ...] = PROPERTY_NAMES
#: Step names, in the order they run.
CHECKERS = (
    "model", "prove", "random", "pct", "dfs", "dpor", "generated", "races", "hypothesis",
    "stress",
    "mutants",
)

#: Seconds of the whole campaign, and schedules per safe program for the explorers.
BUDGETS: dict[str, tuple[float, int]] = {
    "smoke": (50.0, 40),
    "pr": (240.0, 300),
    "nightly": (3 * 3600.0, 20_000),
}
#: Share of the budget per step.  Of the searches of impl as it is, the generated programs
#: get the most; the kill matrix (the check of the checks, in pr and nightly) gets about
#: as much as all of them together.
_SHARE = {
    "model": 0.06, "prove": 0.08, "random": 0.06, "pct": 0.06, "dfs": 0.06, "dpor": 0.06,
    "generated": 0.30,
    "races": 0.06, "hypothesis": 0.08, "stress": 0.16, "mutants": 0.80,
}


#: The steps that explore the safe corpus, one per strategy (``dpor`` at bound 2: source
#: sets and sleep sets, sound for sc, tso and pso; a c11 program gets ``dfs`` there).
_CORPUS_STEPS = ("random", "pct", "dfs", "dpor")

#: Steps a budget leaves out unless they are asked for with ``checkers``.
_NOT_BY_DEFAULT: dict[str, tuple[str, ...]] = {"smoke": ("mutants",)}


class ModelSize(TypedDict, total=False):
    """The sizes of a model configuration a campaign searches (:class:`model.ModelConfig`
    keyword arguments)."""

    threads: int
    bhs: int
    max_depth: int
    ops: int
    handlers: int
    timers: int


#: Model configurations searched, smallest first; a budget searches as many as fit.
_MODEL_TIERS: dict[str, tuple[ModelSize, ...]] = {
    "smoke": (
        {"threads": 2, "bhs": 2, "max_depth": 2},
        {"threads": 2, "bhs": 3, "max_depth": 2},
        {"threads": 2, "bhs": 2, "max_depth": 2, "handlers": 1, "timers": 1},
        {"threads": 3, "bhs": 1, "max_depth": 2, "ops": 1},
    ),
    "pr": (
        {"threads": 2, "bhs": 2, "max_depth": 3, "ops": 3},
        {"threads": 3, "bhs": 2, "max_depth": 2, "ops": 1},
    ),
    "nightly": (
        {"threads": 3, "bhs": 2, "max_depth": 2},
        {"threads": 3, "bhs": 3, "max_depth": 3, "ops": 2},
    ),
}
#: Properties each step checks (a step never "passes" a property it cannot see).
_COVERS: dict[str, tuple[PropertyName, ...]] = {
    "model": PROPERTIES,
    "prove": ("P1", "P2", "P3", "LIVE"),  # z3: safety proofs, bounded liveness search
    "random": PROPERTIES,
    "pct": PROPERTIES,
    "dfs": PROPERTIES,
    "dpor": PROPERTIES,
    "races": ("P3",),
    "hypothesis": PROPERTIES,
    "stress": PROPERTIES,
}


#: The controlled scheduler's strategies (``--strategy``): random, PCT and DFS also explore
#: the corpus as steps of their own; all four explore the generated and races steps.
STRATEGIES: tuple[str, ...] = DEFAULT_STRATEGIES
#: Every strategy a campaign accepts: the defaults and DPOR (a corpus step of its own by
#: default; in the generated and races steps only when chosen).
RUN_STRATEGIES: tuple[str, ...] = (*STRATEGIES, "dpor")


@dataclass(frozen=True)
class CampaignPlan:
    """What to run: budget label, total seconds, schedules per program, steps, properties."""

    label: str
    seconds: float
    schedules: int
    steps: tuple[str, ...]
    properties: tuple[PropertyName, ...]
    seed: int
    strategies: tuple[str, ...] = STRATEGIES
    jobs: int = 1
    #: Cut the sharded steps at their work (schedules, cells), the seconds being only a
    #: safety cap: the same seed gives the same report on any engine and number of workers.
    by_work: bool = False

    def model_configs(self) -> list[ModelSize]:
        """The model sizes this budget searches (bigger budgets add bigger sizes)."""
        order = ("smoke", "pr", "nightly")
        top = order.index(self.label) if self.label in order else (
            0 if self.seconds < 120 else 1 if self.seconds < 1800 else 2)
        return [c for tier in order[: top + 1] for c in _MODEL_TIERS[tier]]

    def share(self, step: str) -> float:
        total = sum(_SHARE[s] for s in self.steps) or 1.0
        return self.seconds * _SHARE[step] / total


def plan_campaign(
    budget: str | float = "smoke",
    *,
    seed: int = 0,
    checkers: tuple[str, ...] | None = None,
    properties: tuple[str, ...] | None = None,
    strategies: tuple[str, ...] | None = None,
    jobs: int | None = None,
    by_work: bool = False,
) -> CampaignPlan:
    """The steps, sizes and seconds of a campaign.

    Args:
        budget: ``smoke`` (under a minute), ``pr`` (under five), ``nightly`` (hours) or a
            number of seconds.
        seed: everything but real-thread timing is a function of it.
        checkers: steps to run (default: all of :data:`CHECKERS`).
        properties: properties to report (default: all of :data:`PROPERTIES`).
        strategies: which of random / pct / dfs / conflict / dpor the controlled explorer
            runs (random, pct, dfs and dpor are also corpus steps of their own; the generated
            and races steps run the chosen ones, by default all but dpor).
        jobs: the parallelism a budget in seconds is sized for (default: the CPU count,
            at most 4): the kill matrix's work per cell, the barrier audit's processes.
        by_work: cut every step but stress (real threads) at its work rather than its
            share of the seconds (the kill matrix always is; the model step's state bound
            is a function of its share either way).

    Raises:
        ValueError: an unknown budget, checker, property or strategy, or a bad number.
    """
    for what, given, known in (
        ("checker", checkers, CHECKERS),
        ("property", properties, PROPERTIES),
        ("strategy", strategies, RUN_STRATEGIES),
    ):
        bad = [g for g in (given or ()) if g not in known]
        if bad:
            raise ValueError(f"unknown {what} {', '.join(bad)}; choose from {', '.join(known)}")
    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    njobs = jobs if jobs is not None else max(1, min(4, os.cpu_count() or 1))
    if isinstance(budget, str) and budget not in BUDGETS:
        with suppress(ValueError):
            budget = float(budget.removesuffix("s"))
    if isinstance(budget, str):
        if budget not in BUDGETS:
            raise ValueError(
                f"unknown budget {budget!r}; use smoke, pr, nightly or a number of seconds"
            )
        seconds, schedules = BUDGETS[budget]
        label = budget
    else:
        if not budget > 0 or budget == float("inf"):
            raise ValueError(
                f"budget must be a positive, finite number of seconds, got {budget:g}"
            )
        seconds = float(budget)
        schedules = max(10, int(seconds * 2))
        label = f"{seconds:g}s"
    if checkers is None:
        # The main job searches impl as it is; the kill matrix (the check of the checks)
        # runs in pr and nightly and in `aioctx-verify mutants` / `mutate`, or on request.
        steps = tuple(c for c in CHECKERS if c not in _NOT_BY_DEFAULT.get(label, ()))
    else:
        steps = tuple(c for c in CHECKERS if c in checkers)
    strats = strategies or STRATEGIES
    # The corpus steps run the strategies chosen; DPOR's step runs unless strategies were
    # chosen without it (it is not a default strategy of the generated and races steps).
    corpus_strats = strategies or RUN_STRATEGIES
    steps = tuple(s for s in steps if s not in _CORPUS_STEPS or s in corpus_strats)
    if not steps:
        raise ValueError(
            "the chosen checkers and strategies leave nothing to run; "
            "pick a strategy among the chosen checkers"
        )
    props = tuple(_prop_of(p) for p in properties) if properties else PROPERTIES
    return CampaignPlan(label, seconds, schedules, steps, props, seed, tuple(strats), njobs,
                        by_work)


@dataclass
class _Acc:
    verdicts: dict[tuple[str, str], Verdict] = field(default_factory=dict)
    counterexamples: list[Counterexample] = field(default_factory=list)
    histograms: list[Histogram] = field(default_factory=list)
    kill_matrix: KillMatrix | None = None
    stacks: list[ThreadStack] = field(default_factory=list)
    schedules: int = 0
    traces: int = 0
    states: int | None = None
    max_preemptions: int = 0
    steps: int = 0
    explore_seconds: float = 0.0
    benchmarks: list[Benchmark] = field(default_factory=list)
    proofs: list[ProofRow] = field(default_factory=list)
    barriers: list[BarrierRow] = field(default_factory=list)
    #: Shards retried, cut off at their deadline or lost (:meth:`EngineRun.notes`).
    shard_notes: list[str] = field(default_factory=list)

    def verdict(self, plan: CampaignPlan, checker: str, failed: dict[PropertyName, str],
                runs: int, seconds: float, *, inconclusive: str = "", note: str = "") -> None:
        """``note``: the detail of a pass (what the step covered, when it is short of its
        work)."""
        for prop in plan.properties:
            if prop not in _COVERS.get(checker, PROPERTIES):
                continue
            v: VerdictValue
            if prop in failed:
                v, detail = "fail", failed[prop]
            elif inconclusive:
                v, detail = "inconclusive", inconclusive
            else:
                v, detail = "pass", note
            self.verdicts[(prop, checker)] = Verdict(
                property=prop, checker=checker, verdict=v, runs=runs,
                seconds=round(seconds, 3), detail=detail[:300],
            )

    def skipped(self, plan: CampaignPlan, checker: str, why: str) -> None:
        for prop in plan.properties:
            self.verdicts[(prop, checker)] = Verdict(
                property=prop, checker=checker, verdict="skipped", runs=0,
                seconds=0.0, detail=why,
            )


Progress = Callable[[str, float], None]  # (what, fraction of this step done)
Stop = Callable[[], bool]  # True once the user asked to stop (first Ctrl-C)


def _prop_of(prop: str | None) -> PropertyName:
    """``prop`` as a property name; LIVE for anything else (a hang, an unnamed failure)."""
    for p in PROPERTIES:
        if prop == p:
            return p
    return "LIVE"


#: A workload grade (stress.real's enum) as the report's word.
_GRADES: dict[str, Grade] = {
    "ACCEPTABLE": "ACCEPTABLE",
    "ACCEPTABLE_INTERESTING": "ACCEPTABLE_INTERESTING",
    "FORBIDDEN": "FORBIDDEN",
}


def counterexample_of(
    failure: Failure, *, property: PropertyName, checker: str, seed: int | None
) -> Counterexample:
    """The report's record of an exploration's shrunk :class:`~aioctx_verify.stress.Failure`.

    The adapter lives here, on the side that has both, so that reports depend on no checker.
    The property is given by the caller (reports never parse exception text).
    """
    names = failure.thread_names
    steps = tuple(
        TraceStep(
            index=s.index,
            thread=s.thread,
            thread_name=names[s.thread] if s.thread < len(names) else f"thread {s.thread}",
            op=s.op,
            obj=s.obj,
            where=s.where,
        )
        for s in failure.trace
    )
    return Counterexample(
        property=property,
        checker=checker,
        kind=failure.kind,
        message=failure.message,
        schedule=failure.schedule,
        seed=seed,
        replay_command=failure.replay_command(),
        steps=steps,
        preemptions=failure.preemptions,
    )


# -- steps ---------------------------------------------------------------------------------
#: With ``by_work``, a sharded step's seconds are only a safety cap: this many times
#: its share, and at least :data:`_WORK_MIN_CAP` seconds.
_WORK_CAP_FACTOR = 10.0
_WORK_MIN_CAP = 60.0


def model_shard(size: ModelSize, max_states: int) -> Any:
    """One shard of the model step: the explicit search of one configuration, to at most
    ``max_states`` states (a pure function of its arguments)."""
    from aioctx_verify.model import ModelConfig, search

    return search(ModelConfig(**size), max_states=max_states)


def _cap(plan: CampaignPlan, seconds: float) -> float:
    """The seconds a shard whose part of its step's share is ``seconds`` may run: that part,
    or with ``by_work`` a safety cap over it (the work is the bound)."""
    return max(_WORK_MIN_CAP, seconds * _WORK_CAP_FACTOR) if plan.by_work else seconds


def _deadline(seconds: float, plan: CampaignPlan) -> float:
    """A shard's deadline: generous over its share (a safety net, not its budget)."""
    return 2 * _cap(plan, seconds) + 60.0


def _share_spent(plan: CampaignPlan, stop: Stop, t0: float, seconds: float) -> Stop:
    """The should-stop of a step's shards: the user's stop, or (unless the plan is cut at
    its work) the step's share of the seconds spent: no new shard starts after it."""
    if plan.by_work:
        return stop
    return lambda: stop() or time.perf_counter() - t0 > seconds


def _step_model(
    plan: CampaignPlan, acc: _Acc, seconds: float, progress: Progress, stop: Stop,
    engine: Engine | None = None,
) -> None:
    """Every model configuration of the budget, one shard each, to a state bound that is
    a function of the step's share alone (work, not time: the same on any engine)."""
    try:
        from aioctx_verify.model import ModelConfig
    except ImportError as e:
        acc.skipped(plan, "model", f"model package unavailable: {e}")
        return
    from aioctx_verify._replay_cmd import model_replay_spec
    from aioctx_verify.stress.explore import replay_line

    sizes = plan.model_configs()
    configs = [ModelConfig(**kw) for kw in sizes]
    cap = max(5_000, int(seconds * 8_000))
    t0 = time.perf_counter()
    shards = [Shard("model", i, model_shard, (size, cap), deadline=_deadline(seconds, plan),
                    label=str(configs[i])) for i, size in enumerate(sizes)]

    def heard(r: ShardResult, done: int, total: int) -> None:
        what = r.value.summary() if r.ok else f"{r.label}: shard {r.status}"
        progress(f"model {what}", done / total)

    run = run_shards(engine or LocalEngine(), "model", shards,
                     should_stop=_share_spent(plan, stop, t0, seconds), on_result=heard)
    acc.shard_notes.extend(run.notes())
    failed: dict[PropertyName, str] = {}
    states = 0
    incomplete = run.problem()
    for sr in run.answered():
        cfg = configs[sr.index]
        r = sr.value
        states += r.states
        if r.violation is not None:
            prop = _prop_of(r.violation)
            failed.setdefault(
                prop, f"{r.violation} violated in {cfg} after {len(r.path or ())} steps"
            )
            acc.counterexamples.append(Counterexample(
                property=prop, checker="model", kind="model",
                message=f"{r.violation} violated in {cfg} after {len(r.path or ())} steps",
                schedule=None, seed=None,
                replay_command=replay_line(model_replay_spec(sizes[sr.index])),
            ))
        elif not r.complete:
            incomplete = incomplete or f"{cfg}: state space not exhausted ({r.states} states)"
    if not run.complete and not incomplete:
        incomplete = f"budget spent after {run.ran} of {len(configs)} configurations"
    acc.states = states
    acc.verdict(plan, "model", failed, states, time.perf_counter() - t0, inconclusive=incomplete)
    if run.interrupted:
        raise KeyboardInterrupt


#: z3 proofs per budget: how many of the model step's configurations (None: all), the
#: bounded model checking depth for a property induction does not prove, the depth of z3's
#: search for liveness witnesses (deadlocks, weakly fair lassos that cannot rest), and the
#: state budget of the exhaustive explicit liveness check (work, not seconds).  The lasso
#: search is most of a configuration's time (P1-P3 take 4-9 s, the lasso search to depth 8
#: 35-68 s); where the explicit check covers the whole graph it decides LIVE and the lasso
#: search only cross-checks the encoding, so pr searches it to depth 4 and proves two
#: configurations within its share (about 19 s): at depth 8 it began one of four and was
#: inconclusive in every pr campaign.
_PROVE_SIZES: dict[str, tuple[int | None, int, int, int]] = {
    "smoke": (1, 10, 4, 50_000), "pr": (2, 20, 4, 200_000),
    "nightly": (None, 40, 16, 2_000_000),
}


#: QEMU's aio_notify protocols per campaign (``aioctx-verify prove --protocols``): smoke
#: checks today's protocol (aio_notify_accept) under sc, tso and pso, pr and nightly every
#: protocol QEMU shipped; the bug variants are the prover's self-test (tests, ``--protocols
#: all``), not the campaign's subject.
_PROVE_PROTOCOLS: dict[str, str] = {"smoke": "smoke", "pr": "fixed", "nightly": "fixed"}

#: The barrier audit's budget per campaign (None: no audit; ``aioctx-verify prove
#: --barriers`` runs it on demand): the ``default`` budget (preemption bound 2, minutes)
#: nightly; ``small`` (bound 1, about 15 s) decides too little to print in a pr report.
_PROVE_BARRIERS: dict[str, str | None] = {"smoke": None, "pr": None, "nightly": "default"}


def _proof_row(row: dict[str, Any]) -> ProofRow:
    """A row of ``aioctx-verify prove``'s JSON (model or protocol) as the report's row."""
    return ProofRow(
        model=row["model"], memory=row["memory"], property=row["property"],
        verdict=row["verdict"], depth=row["depth"], seconds=row["seconds"],
        counterexample_steps=row["counterexample_steps"], detail=_proof_detail(row),
    )


def _proof_detail(row: dict[str, Any]) -> str:
    """LIVE's witness kind and the explicit search's coverage (LIVE, protocols)."""
    parts = [row["witness"]] if row.get("witness") else []
    if row.get("states") is not None:
        parts.append(f"explicit search over {row['states']} states")
    return "; ".join(parts)


def prove_shard(size: ModelSize, depth: int, live_depth: int, live_states: int) -> Any:
    """One shard of the prove step: P1, P2, P3 and LIVE at one model configuration."""
    from aioctx_verify._prove_cmd import ConfigSpec, prove_one

    spec = ConfigSpec(sizes=tuple(sorted((k, int(str(v))) for k, v in size.items())))
    return prove_one(spec, depth, 3, live_depth, live_states)


def protocol_shard(proto: str) -> Any:
    """One shard of the prove step: one of QEMU's aio_notify protocols under every
    memory model and property."""
    from aioctx_verify._prove_cmd import protocol_rows_of

    return protocol_rows_of(proto)


def _step_prove(
    plan: CampaignPlan, acc: _Acc, seconds: float, progress: Progress, stop: Stop,
    engine: Engine | None = None,
) -> None:
    """P1, P2, P3 proven with z3 over the model (``aioctx-verify prove``): Houdini over the
    stated strengthening invariants, BMC, k-induction; one shard per configuration, then
    one per aio_notify protocol, then (nightly) the barrier audit on the same engine."""
    try:
        from aioctx_verify._prove_cmd import protocol_names, protocols_as_expected
    except ImportError as e:  # z3-solver missing
        acc.skipped(plan, "prove", f"z3 prover unavailable: {e}")
        return
    from aioctx_verify._replay_cmd import model_replay_spec
    from aioctx_verify.stress.explore import replay_line

    eng = engine or LocalEngine()
    label = _tier(plan)
    count, depth, live_depth, live_states = _PROVE_SIZES[label]
    sizes = plan.model_configs()[:count]
    protos = protocol_names(_PROVE_PROTOCOLS[label])
    t0 = time.perf_counter()
    shards = [Shard("prove", i, prove_shard, (size, depth, live_depth, live_states),
                    deadline=_deadline(seconds, plan), label=str(size))
              for i, size in enumerate(sizes)]
    protocol_shards = [Shard("prove", len(sizes) + j, protocol_shard, (proto,),
                             deadline=_deadline(seconds, plan), label=proto)
                       for j, proto in enumerate(protos)]

    def heard(r: ShardResult, done: int, total: int) -> None:
        if not r.ok:
            what = f"{r.label}: shard {r.status}"
        elif r.index < len(sizes):
            verdicts = ", ".join(f"{x['property']} {x['verdict']}" for x in r.value.rows)
            what = f"{r.value.model}: {verdicts}"
        else:
            what = f"{r.label}: {len(r.value)} protocol verdicts"
        progress(f"prove {what}", done / total)

    # The share cuts the configurations (no new one starts once it is spent), never the
    # protocols, which take seconds: they run after the configurations, as a second batch.
    # Cut at its work, the step is one batch (its shards run side by side).
    if plan.by_work:
        shards, protocol_shards = shards + protocol_shards, []
    run = run_shards(eng, "prove", shards, should_stop=_share_spent(plan, stop, t0, seconds),
                     on_result=heard)
    if protocol_shards and not run.interrupted:
        more = run_shards(eng, "prove", protocol_shards, should_stop=stop, on_result=heard)
        run.results.update(more.results)
        run.total += more.total
        run.interrupted = more.interrupted
        run.stopped = run.stopped or more.stopped
    acc.shard_notes.extend(run.notes())
    failed: dict[PropertyName, str] = {}
    unsure = run.problem()
    rows: list[dict[str, Any]] = []
    ran = 0
    for sr in run.answered():
        if sr.index >= len(sizes):
            rows.extend(sr.value)
            continue
        ran += 1
        pc = sr.value
        size = sizes[sr.index]
        for row in pc.rows:
            acc.proofs.append(_proof_row(row))
            # The lasso search cannot close: LIVE bounded is its verdict when it finds
            # nothing and the graph is over the explicit check's budget, not a step left
            # undecided.
            if row["verdict"] == "bounded" and row["property"] != "LIVE" and not unsure:
                unsure = f"{pc.model}: {row['property']} holds to depth {row['depth']} only"
        for prop_name, path in pc.paths:
            prop = _prop_of(prop_name)
            msg = f"{prop_name} refuted in {pc.model} after {len(path)} steps"
            failed.setdefault(prop, msg)
            acc.counterexamples.append(Counterexample(
                property=prop, checker="prove", kind="model", message=msg,
                schedule=None, seed=None,
                # A refutation is confirmed on the explicit model before it is reported, so
                # the explicit search of the same size finds a violation again.
                replay_command=replay_line(model_replay_spec(size)),
                steps=tuple(
                    TraceStep(index=j, thread=t, thread_name=f"t{t} {role}", op=action,
                              obj=events, where="model")
                    for j, (t, role, action, events) in enumerate(path)
                ),
            ))
    if ran < len(sizes) and not unsure:
        unsure = f"budget spent after {ran} of {len(sizes)} configurations"
    for row in rows:
        acc.proofs.append(_proof_row(row))
    for proto in protocols_as_expected(rows):
        failed.setdefault("LIVE", f"QEMU's {proto} protocol refuted: "
                          + next(r["counterexample"][:200] for r in rows
                                 if r["protocol"] == proto and r["verdict"] == "refuted"))
    if run.interrupted:
        acc.verdict(plan, "prove", failed, ran, time.perf_counter() - t0,
                    inconclusive="stopped early")
        raise KeyboardInterrupt
    audit = _PROVE_BARRIERS.get(label)
    if audit is not None and not stop():
        from aioctx_verify._prove_cmd import barrier_rows

        progress(f"prove: barrier audit ({audit} budget)", 1.0)
        # On a cluster the audit's searches are shards of it; in this process they keep
        # the audit's own pool of ``jobs`` processes (the local engine runs one at a time).
        cluster = None if isinstance(eng, LocalEngine) else eng
        for row in barrier_rows(audit, plan.jobs, engine=cluster):
            acc.barriers.append(BarrierRow(**row))
    acc.verdict(plan, "prove", failed, ran, time.perf_counter() - t0,
                inconclusive=unsure)


def _program_ref(prog: Any) -> Any:
    """What a shard is given to name a corpus program: its name when the corpus has it
    (workers look it up), else the program itself (one a caller put in the corpus; it
    travels by value)."""
    from aioctx_verify.stress import corpus_by_name

    name: str = prog.name
    return name if corpus_by_name().get(name) is prog else prog


def _program_of(ref: Any) -> Any:
    """The program a :func:`_program_ref` names."""
    from aioctx_verify.stress import corpus_by_name

    return corpus_by_name()[ref] if isinstance(ref, str) else ref


def explore_shard(name: Any, strategy: str, schedules: int, seconds: float,
                  seed: int) -> Any:
    """One shard of a corpus step: corpus program ``name`` under ``strategy`` (a pure
    function of its arguments, but for a wall-time cut-off)."""
    from aioctx_verify.stress import Budget, explore
    from aioctx_verify.stress.controlled import for_memory

    prog = _program_of(name)
    r = explore(prog, strategy=for_memory(strategy, prog.memory),
                budget=Budget(schedules, seconds), seed=seed)
    r._hashes.clear()  # the trace hashes stay here: the count is in distinct_traces
    return r


def _step_explore(plan: CampaignPlan, acc: _Acc, strategy: str, seconds: float,
                  progress: Progress, stop: Stop, engine: Engine | None = None) -> None:
    """The safe corpus under ``strategy``: one shard per program, merged in corpus order."""
    from aioctx_verify.stress import CORPUS

    safe = [p for p in CORPUS if p.expected == "safe"]
    per = seconds / max(1, len(safe))
    cap = _cap(plan, per)
    shards = [
        Shard(strategy, i, explore_shard, (_program_ref(prog), strategy, plan.schedules, cap,
                                           plan.seed + i),
              deadline=2 * cap + 60.0, label=prog.name)
        for i, prog in enumerate(safe)
    ]
    t0 = time.perf_counter()

    def heard(r: ShardResult, done: int, total: int) -> None:
        progress(f"{strategy}: {r.label} [{done}/{total} shards]", done / total)

    run = run_shards(engine or LocalEngine(), strategy, shards, should_stop=stop,
                     on_result=heard)
    acc.shard_notes.extend(run.notes())
    failed: dict[PropertyName, str] = {}
    runs = 0
    inconclusive = ""
    for sr in run.ordered():
        prog = safe[sr.index]
        if sr.status == "cancelled":
            continue
        if not sr.ok:
            inconclusive = sr.problem
            continue
        r = sr.value
        runs += r.schedules
        acc.schedules += r.schedules
        acc.traces += r.distinct_traces
        acc.steps += r.steps
        acc.explore_seconds += r.seconds
        acc.max_preemptions = max(acc.max_preemptions, r.max_preemptions)
        if r.verdict == "inconclusive":
            inconclusive = f"{prog.name}: {r.reason}"
        if r.failure is not None:
            prop = _prop_of(r.failure.prop)
            failed.setdefault(prop, f"{prog.name}: {r.failure.kind}: {r.failure.message}")
            acc.counterexamples.append(counterexample_of(
                r.failure, property=prop, checker=strategy, seed=plan.seed + sr.index,
            ))
    if not run.complete:
        inconclusive = f"stopped after {run.ran} of {len(safe)} programs"
    acc.verdict(plan, strategy, failed, runs, time.perf_counter() - t0, inconclusive=inconclusive)
    if run.interrupted:  # Ctrl-C: what finished is recorded; the campaign stops here
        raise KeyboardInterrupt


def _tier(plan: CampaignPlan) -> str:
    """The budget tier (smoke, pr, nightly) of a plan, also of one given in seconds."""
    if plan.label in ("smoke", "pr", "nightly"):
        return plan.label
    return "smoke" if plan.seconds < 120 else "pr" if plan.seconds < 1800 else "nightly"


def generated_shard(seed: int, budget: Any, strategies: tuple[str, ...], first: int) -> Any:
    """One shard of the generated step: programs ``first .. first + budget.programs - 1``
    of ``seed``, its failure (the first) left unshrunk for :func:`generated_shrink_shard`."""
    from aioctx_verify.stress.explore import search_generated

    return search_generated(seed, budget, strategies=strategies, first=first, do_shrink=False)


def generated_shrink_shard(seed: int, failure: Any, strategies: tuple[str, ...],
                           shrink_seconds: float) -> Any:
    """The shrinking of the generated step's first failure, as a shard of its own."""
    from aioctx_verify.stress.explore import shrink_found

    return shrink_found(seed, failure, strategies=strategies, shrink_seconds=shrink_seconds)


#: Programs per shard of the generated step: at least this many, and at most
#: :data:`_GEN_SHARDS` shards.
_GEN_CHUNK = 10
_GEN_SHARDS = 200


def _step_generated(
    plan: CampaignPlan, acc: _Acc, seconds: float, progress: Progress, stop: Stop,
    engine: Engine | None = None,
) -> None:
    """Generated programs (:func:`aioctx_verify.stress.explore.search_generated`) of the
    plan's seed under its strategies and every memory model, for the budget's number of
    programs or ``seconds``, whichever ends first.

    Shards are consecutive ranges of programs, each with its part of the seconds.  Once a
    shard finds a failure no new shard starts, and the step counts the shards up to the
    first failing one only: every shard before it was started (shards start in order), so
    the count and the failure are the same on any engine.  That failure is then shrunk in
    a shard of its own."""
    import dataclasses

    from aioctx_verify.stress.explore import GEN_BUDGETS, GenSearchResult

    eng = engine or LocalEngine()
    base = GEN_BUDGETS[_tier(plan)]
    total = base.programs
    chunk = max(_GEN_CHUNK, -(-total // _GEN_SHARDS))
    starts = list(range(0, total, chunk))
    shrink_seconds = (base.shrink_seconds * _WORK_CAP_FACTOR if plan.by_work
                      else min(base.shrink_seconds, max(2.0, seconds / 2)))
    shards = []
    for k, first in enumerate(starts):
        n = min(chunk, total - first)
        mine = seconds * n / total  # the shard's part of the share
        part = dataclasses.replace(base, programs=n, seconds=_cap(plan, mine))
        shards.append(Shard("generated", k, generated_shard,
                            (plan.seed, part, plan.strategies, first),
                            deadline=2 * part.seconds + 60.0,
                            label=f"programs {first}-{first + n - 1}"))
    t0 = time.perf_counter()
    failing: list[int] = []

    def heard(r: ShardResult, done: int, total_shards: int) -> None:
        if r.ok and r.value.verdict == "fail":
            failing.append(r.index)
        what = (f"{r.label}: {r.value.programs} programs, {r.value.runs} runs" if r.ok
                else f"{r.label}: shard {r.status}")
        progress(f"generated: {what}", done / total_shards)

    run = run_shards(eng, "generated", shards, on_result=heard,
                     should_stop=lambda: stop() or bool(failing))
    acc.shard_notes.extend(run.notes())
    last = min(failing) if failing else len(shards) - 1
    r = GenSearchResult(plan.seed)
    hashes: set[int] = set()
    unsure = run.problem(upto=last)
    for sr in run.answered(upto=last):
        v: GenSearchResult = sr.value
        for name in ("programs", "complete", "runs", "steps", "seconds", "inconclusive_runs",
                     "ops"):
            setattr(r, name, getattr(r, name) + getattr(v, name))
        r.max_preemptions = max(r.max_preemptions, v.max_preemptions)
        hashes |= v.trace_hashes
        if v.verdict == "inconclusive" and not unsure and v.failure is None:
            unsure = f"{sr.label}: {v.reason}"
        if v.verdict == "fail" and r.failure is None:
            r.verdict, r.failure, r.found_at = "fail", v.failure, v.found_at
    r.distinct_traces = len(hashes)
    if r.failure is not None and not run.interrupted:
        shrunk = run_shards(eng, "generated", [Shard(
            "generated", len(shards), generated_shrink_shard,
            (plan.seed, r.failure, plan.strategies, shrink_seconds),
            deadline=2 * shrink_seconds + 60.0, label="shrinking its failure",
        )], should_stop=stop)
        acc.shard_notes.extend(shrunk.notes())
        done = shrunk.ordered()[0]
        if done.ok:
            r.failure = done.value
    acc.schedules += r.runs
    acc.traces += r.distinct_traces
    acc.steps += r.steps
    acc.explore_seconds += r.seconds
    acc.max_preemptions = max(acc.max_preemptions, r.max_preemptions)
    failed: dict[PropertyName, str] = {}
    if r.failure is not None:
        prop = _prop_of(r.failure.prop)
        failed[prop] = f"{r.failure.spec.split(';')[0]}: {r.failure.kind}: {r.failure.message}"
        acc.counterexamples.append(counterexample_of(
            r.failure, property=prop, checker="generated", seed=plan.seed,
        ))
    elif stop() or run.interrupted:
        unsure = "stopped early"
    # A pass says how much of its work the step explored when its time share ran out first
    # (a loaded machine explores fewer programs: the pass covers less).
    short = "" if r.complete >= total else (
        f"explored {r.complete} of {total} programs whole within its {seconds:.0f} s share")
    acc.verdict(plan, "generated", failed, r.runs, time.perf_counter() - t0,
                inconclusive=unsure, note=short)
    if run.interrupted:
        raise KeyboardInterrupt


#: Generated programs the races step searches after the corpus, by budget tier.
RACE_PROGRAMS = {"smoke": 8, "pr": 40, "nightly": 400}


def races_shard(program: Any, strategy: str, schedules: int, seconds: float,
                seed: int) -> Any:
    """One shard of the races step: corpus program ``program`` (see :func:`_program_ref`),
    or generated program ``(seed, index)``, under ``strategy`` with the race detector on."""
    from aioctx_verify.stress.controlled import find_races
    from aioctx_verify.stress.explore import generate, generated_program

    prog: Any = (generated_program(generate(*program)) if isinstance(program, tuple)
                 else _program_of(program))
    return find_races(prog, strategy=strategy, schedules=schedules, seconds=seconds, seed=seed)


def _step_races(
    plan: CampaignPlan, acc: _Acc, seconds: float, progress: Progress, stop: Stop,
    engine: Engine | None = None,
) -> None:
    """Every safe corpus program under each chosen strategy with the race detector on, one
    shard per program and strategy.

    A race is a P3 failure (two threads touch one field of impl with no happens-before: the
    accesses are not mutually excluded); the counterexample holds both accesses and the
    schedule, which :func:`aioctx_verify.stress.controlled.replay_races` reruns.
    """
    from aioctx_verify.stress import CORPUS
    from aioctx_verify.stress.explore import replay_line

    names: list[Any] = [_program_ref(p) for p in CORPUS if p.expected == "safe"]
    # Then generated programs of the plan's seed: the whole API, dataplane and thread pool
    # included, where the corpus has a handful of fixed shapes.
    n_gen = RACE_PROGRAMS[_tier(plan)]
    n_corpus = len(names)
    names += [(plan.seed, i) for i in range(n_gen)]
    units = [(s, i, prog) for s in plan.strategies for i, prog in enumerate(names)]
    per = seconds / max(1, len(units))
    cap = _cap(plan, per)
    shards = [
        # A generated program is a few times longer than a corpus one: fewer schedules each.
        Shard("races", k, races_shard,
              (prog, strategy, plan.schedules if i < n_corpus else max(2, plan.schedules // 4),
               cap, plan.seed + i),
              deadline=2 * cap + 60.0,
              label=f"{strategy}: " + (f"gen s{prog[0]} i{prog[1]}" if isinstance(prog, tuple)
                                       else getattr(prog, "name", prog)))
        for k, (strategy, i, prog) in enumerate(units)
    ]
    t0 = time.perf_counter()

    def heard(r: ShardResult, done: int, total: int) -> None:
        progress(f"races ({r.label})", done / total)

    run = run_shards(engine or LocalEngine(), "races", shards, should_stop=stop,
                     on_result=heard)
    acc.shard_notes.extend(run.notes())
    failed: dict[PropertyName, str] = {}
    runs = 0
    unsure = run.problem()
    for sr in run.answered():
        r = sr.value
        seed = shards[sr.index].args[-1]
        runs += r.schedules
        for race in r.races:
            failed.setdefault("P3", f"{r.program}: {race.message}")
            steps = tuple(
                TraceStep(index=a.step, thread=a.thread, thread_name=a.thread_name,
                          op=a.kind, obj=race.field, where=" <- ".join(a.stack))
                for a in (race.first, race.second)
            )
            acc.counterexamples.append(Counterexample(
                property="P3", checker="races", kind="data_race",
                message=race.report()[:2000],
                schedule=race.schedule, seed=seed,
                replay_command=replay_line(f"race:{race.schedule}"),
                steps=steps, failing_step=1,
            ))
    if not run.complete:
        unsure = unsure or f"stopped after {run.ran} of {len(units)} programs"
    acc.verdict(plan, "races", failed, runs, time.perf_counter() - t0, inconclusive=unsure)
    if run.interrupted:
        raise KeyboardInterrupt


def hypothesis_shard(kind: str, seconds: float, seed: int, max_examples: int | None) -> Any:
    """One shard of the hypothesis step: the single-thread lockstep search (``kind``
    ``single``) or the multi-thread one (``multi``, under sc and tso) with ``seed``, for
    ``max_examples`` programs (None: ``seconds``)."""
    import dataclasses

    from aioctx_verify.stress import stateful

    if kind == "single":
        r = stateful.search_single(seconds=seconds, seed=seed, max_examples=max_examples)
        return dataclasses.replace(r, worker=None)  # a thread does not travel
    return stateful.search_multi(seconds=seconds, seed=seed, max_examples=max_examples,
                                 memories=("sc", "tso"))


#: Shards of the hypothesis step per budget tier: (single-thread lockstep searches,
#: multi-thread searches), each with a seed of its own (the plan's seed, plus 1, ...).
_HYPOTHESIS_SHARDS: dict[str, tuple[int, int]] = {
    "smoke": (1, 2), "pr": (1, 2), "nightly": (4, 8),
}


def _step_hypothesis(
    plan: CampaignPlan, acc: _Acc, seconds: float, progress: Progress, stop: Stop,
    engine: Engine | None = None,
) -> None:
    """Both Hypothesis stateful searches: impl against the single-thread reference in
    lockstep (a third of the share), then multi-thread scripts with Hypothesis choosing the
    interleaving on the controlled scheduler (the rest); each cut into searches of seeds of
    their own, one shard each.  By work, a search runs for the examples its share pays for
    at the nominal cost of one (:data:`~aioctx_verify.stress.mutation.WORK_UNIT_SECONDS`)."""
    from aioctx_verify.stress.explore import replay_line
    from aioctx_verify.stress.mutation import WORK_UNIT_SECONDS
    from aioctx_verify.stress.stateful import EXAMPLE_WORK, PROGRAM_WORK

    n_single, n_multi = _HYPOTHESIS_SHARDS[_tier(plan)]
    kinds = [("single", k, seconds / 3 / n_single, PROGRAM_WORK) for k in range(n_single)]
    kinds += [("multi", k, seconds * 2 / 3 / n_multi, EXAMPLE_WORK) for k in range(n_multi)]
    shards = []
    for i, (kind, k, share, cost) in enumerate(kinds):
        examples = max(1, int(share / (cost * WORK_UNIT_SECONDS))) if plan.by_work else None
        cap = _cap(plan, share)
        shards.append(Shard("hypothesis", i, hypothesis_shard,
                            (kind, cap, plan.seed + k, examples),
                            # shrinking and the give-up bound come on top of the seconds
                            deadline=3 * cap + 90.0, label=f"{kind} seed {plan.seed + k}"))
    t0 = time.perf_counter()

    def heard(r: ShardResult, done: int, total: int) -> None:
        what = f"{r.value.runs} runs" if r.ok else f"shard {r.status}"
        progress(f"hypothesis: {r.label}, {what}", done / total)

    run = run_shards(engine or LocalEngine(), "hypothesis", shards, should_stop=stop,
                     on_result=heard)
    acc.shard_notes.extend(run.notes())
    failed: dict[PropertyName, str] = {}
    runs = 0
    unsure = run.problem()
    for sr in run.answered():
        kind, _k, _share, _cost = kinds[sr.index]
        seed = shards[sr.index].args[2]
        res = sr.value
        runs += res.runs
        if kind == "single":
            if res.inconclusive:
                unsure = unsure or ("single-thread lockstep: the search outlived its bound "
                                    "(machine too slow)")
            f1 = res.found
            if f1 is not None:
                prop = _prop_of(f1.prop or "P2")
                msg = (f"single-thread lockstep ({f1.via}): {f1.message} "
                       f"[{f1.steps} steps: {', '.join(f1.program)}]")
                failed.setdefault(prop, msg)
                acc.counterexamples.append(Counterexample(
                    property=prop, checker="hypothesis", kind="stateful",
                    message=msg[:2000], schedule=None, seed=seed,
                    replay_command=replay_line(f"single:seed={seed}"),
                ))
            continue
        found = res.found
        if found is not None:
            prop = _prop_of(found.prop)
            msg = f"multi-thread stateful: {found.message}"
            failed.setdefault(prop, msg)
            acc.counterexamples.append(Counterexample(
                property=prop, checker="hypothesis", kind=found.kind or "stateful",
                message=msg[:2000], schedule=found.schedule, seed=seed,
                replay_command=found.replay_command() or None,
            ))
    if not run.complete:
        unsure = unsure or "stopped early"
    acc.verdict(plan, "hypothesis", failed, runs, time.perf_counter() - t0,
                inconclusive=unsure)
    if run.interrupted:
        raise KeyboardInterrupt


def stress_shard(name: str, seconds: float, seed: int) -> Any:
    """One shard of the stress step: real-thread workload ``name`` for ``seconds``."""
    import dataclasses
    import types

    from aioctx_verify.stress.real import run_workload

    r = run_workload(name, seconds=seconds, seed=seed, noise=True)
    # Its read-only mappings as dicts: a shard's value travels back pickled.
    plain: dict[str, Any] = {
        f.name: dict(getattr(r, f.name)) for f in dataclasses.fields(r)
        if isinstance(getattr(r, f.name), types.MappingProxyType)
    }
    return dataclasses.replace(r, **plain)


def _step_stress(
    plan: CampaignPlan, acc: _Acc, seconds: float, progress: Progress, stop: Stop,
    engine: Engine | None = None,
) -> None:
    """Every real-thread workload, one shard each for its part of the share (time is what
    real-thread stress is made of: its trials are not the same from run to run)."""
    try:
        from aioctx_verify.stress.real import WORKLOADS, result_replay_line
    except ImportError as e:
        acc.skipped(plan, "stress", f"stress workloads unavailable: {e}")
        return
    names = [n for n in WORKLOADS if not n.startswith("test")]
    per = seconds / max(1, len(names))
    shards = [Shard("stress", i, stress_shard, (name, per, plan.seed + i),
                    deadline=4 * per + 120.0, label=name)
              for i, name in enumerate(names)]
    t0 = time.perf_counter()

    def heard(r: ShardResult, done: int, total: int) -> None:
        progress(f"stress: {r.label}" + ("" if r.ok else f" (shard {r.status})"), done / total)

    run = run_shards(engine or LocalEngine(), "stress", shards, should_stop=stop,
                     on_result=heard)
    acc.shard_notes.extend(run.notes())
    failed: dict[PropertyName, str] = {}
    trials = 0
    unsure = 0
    stopped = run.problem()
    for sr in run.answered():
        name = names[sr.index]
        r = sr.value
        trials += r.trials
        unsure += r.inconclusive
        acc.histograms.append(Histogram(
            workload=name, counts=dict(r.histogram),
            grades={k: _GRADES[v.value] for k, v in r.grades.items()},
        ))
        for thread, stack in r.stacks.items():
            acc.stacks.append(ThreadStack(thread=thread, ident=None, stack=stack))
        if r.verdict == "fail":
            text = "; ".join([*r.violations, *r.errors]) or "forbidden outcome"
            props = list(r.violated)
            for prop in props or ["LIVE"]:
                failed.setdefault(prop, f"{name}: {text}")
            acc.counterexamples.append(Counterexample(
                property=props[0] if props else "LIVE", checker="stress",
                kind="hang" if r.stacks else ("property" if props else "forbidden_outcome"),
                message=f"{name}: {text}"[:2000], schedule=None, seed=shards[sr.index].args[2],
                replay_command=result_replay_line(r),
            ))
    if not run.complete:
        stopped = stopped or f"stopped after {run.ran} of {len(names)} workloads"
    if not stopped and trials and unsure == trials:
        stopped = f"all {trials} trials inconclusive (waits ran out, nothing seen stuck)"
    acc.verdict(plan, "stress", failed, trials, time.perf_counter() - t0, inconclusive=stopped)
    if run.interrupted:
        raise KeyboardInterrupt


#: Checkers of the kill matrix per budget: smoke keeps the fast, deterministic ones.
_MUTANT_CHECKERS: dict[str, tuple[str, ...] | None] = {
    "smoke": ("model", "explore_random", "explore_pct", "explore_dfs", "explore_dpor"),
    "pr": None,
    "nightly": None,
}


#: Checkers a campaign's kill matrix leaves out: the pr campaign's prove step already runs
#: the prover, whose column (about 130 s of z3 and explicit search, never cut short) added
#: about a minute to the pr campaign on two cores; nightly and ``aioctx-verify mutants``
#: keep it.
_MUTANT_CHECKERS_SKIPPED: dict[str, tuple[str, ...]] = {"pr": ("prove",)}


#: The smoke campaign's kill matrix, in work units (each checker maps them to its own unit,
#: so the verdicts do not depend on the machine's speed): per cell 200 (the explorers'
#: schedules: enough for PCT to reach the TSO-only lost wake-up of notify-me-after-scan, ~55
#: schedules of its first probe), one control seed of 300 per checker.  About 30 s on two
#: cores at idle (two jobs).
_SMOKE_MUTANTS_WORK = (200, 1, 300)


def _step_mutants(
    plan: CampaignPlan, acc: _Acc, seconds: float, progress: Progress, stop: Stop,
    engine: Engine | None = None,
) -> None:
    try:
        from aioctx_verify.stress.mutation import (
            CATALOGUE,
            MatrixBudget,
            available_checkers,
            kill_matrix,
        )
    except ImportError:
        return
    wanted = _MUTANT_CHECKERS.get(plan.label)
    skipped = _MUTANT_CHECKERS_SKIPPED.get(plan.label, ())
    names = [c for c in available_checkers()
             if (wanted is None or c in wanted) and c not in skipped]
    done = [0]
    total = max(1, len(CATALOGUE) * len(names))

    def line(text: str) -> None:
        done[0] += 1
        progress(f"mutants: {text}", min(1.0, done[0] / total))

    budget: str | float | MatrixBudget = seconds
    if plan.label == "smoke":
        budget = MatrixBudget("smoke", *_SMOKE_MUTANTS_WORK)
    elif plan.label in ("pr", "nightly"):
        budget = plan.label
    km = kill_matrix(
        budget, seed=plan.seed, checkers=names, jobs=plan.jobs, progress=line, should_stop=stop,
        engine=engine or LocalEngine(),
    )
    data = km.to_json()
    mutants = []
    for m in data["mutants"]:
        cells = tuple(
            KillCell(
                checker=name,
                killed=bool(c.get("killed")),
                seconds=c.get("seconds") if c.get("killed") else None,
                steps=c.get("counterexample_steps") if c.get("killed") else None,
            )
            for name, c in dict(m.get("checkers", {})).items()
            if isinstance(c, dict) and c.get("applicable", True)
        )
        mutants.append(Mutant(
            name=m["name"], qemu_commit=m["qemu_commit"] or "-",
            property=_prop_of(m["property"]),
            killed_by=tuple(m["killed_by"]), seconds_to_kill=m["seconds_to_kill"],
            counterexample_steps=m["counterexample_steps"], cells=cells,
        ))
    acc.kill_matrix = KillMatrix(mutants=tuple(mutants), false_alarms=int(data["false_alarms"]))
    if km.shards is not None:
        acc.shard_notes.extend(km.shards.notes())
    if km.interrupted:  # Ctrl-C: what finished is recorded; the campaign stops here
        raise KeyboardInterrupt


# -- the campaign ------------------------------------------------------------------------------
def _machine() -> Machine:
    return Machine(
        hostname=socket.gethostname(), system=pyplatform.platform(),
        python=f"{pyplatform.python_implementation()} {pyplatform.python_version()}",
        cpu_count=os.cpu_count() or 1,
    )


def run_campaign(
    plan: CampaignPlan,
    *,
    progress: Callable[[str, str, float], None] | None = None,
    should_stop: Stop | None = None,
    engine: Engine | None = None,
) -> CampaignResult:
    """Run ``plan`` and return its result.

    ``engine`` runs the sharded steps (default: :class:`LocalEngine`, in this process);
    the result does not depend on which engine ran them, real-thread timing aside.

    ``progress(step, what, fraction_of_step)`` is called as work finishes.  The campaign
    ends early, with ``complete=False``, when ``should_stop()`` turns true (checked between
    programs, workloads, model sizes and steps) or on a KeyboardInterrupt inside a step.
    """
    stop: Stop = should_stop or (lambda: False)
    acc = _Acc()
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    complete = True
    report = progress or (lambda step, what, frac: None)
    for step in plan.steps:
        if stop():
            complete = False
            break
        share = plan.share(step)

        def p(what: str, frac: float, _step: str = step) -> None:
            report(_step, what, frac)

        report(step, "starting", 0.0)
        try:
            if step == "model":
                _step_model(plan, acc, share, p, stop, engine)
            elif step == "prove":
                _step_prove(plan, acc, share, p, stop, engine)
            elif step in _CORPUS_STEPS:
                _step_explore(plan, acc, step, share, p, stop, engine)
            elif step == "generated":
                _step_generated(plan, acc, share, p, stop, engine)
            elif step == "races":
                _step_races(plan, acc, share, p, stop, engine)
            elif step == "hypothesis":
                _step_hypothesis(plan, acc, share, p, stop, engine)
            elif step == "stress":
                _step_stress(plan, acc, share, p, stop, engine)
            elif step == "mutants":
                _step_mutants(plan, acc, share, p, stop, engine)
        except KeyboardInterrupt:
            complete = False
            break
        report(step, "done", 1.0)
    if stop():
        complete = False
    coverage = None
    if acc.schedules or acc.states is not None:
        secs = acc.explore_seconds or 1e-9
        coverage = Coverage(
            schedules=acc.schedules, distinct_traces=acc.traces, states=acc.states,
            max_preemptions=acc.max_preemptions,
            steps_per_second=round(acc.steps / secs, 1) if acc.schedules else 0.0,
            schedules_per_second=round(acc.schedules / secs, 2) if acc.schedules else 0.0,
        )
    return CampaignResult(
        tool_version=tool_version(),
        campaign=plan.label if plan.label in BUDGETS else "custom",
        budget=CampaignBudget(label=plan.label, schedules=plan.schedules, seconds=plan.seconds),
        seed=plan.seed,
        started_at=started,
        seconds=round(time.perf_counter() - t0, 3),
        complete=complete,
        machine=_machine(),
        verdicts=tuple(acc.verdicts.values()),
        counterexamples=tuple(acc.counterexamples),
        histograms=tuple(acc.histograms),
        kill_matrix=acc.kill_matrix,
        coverage=coverage,
        benchmarks=tuple(acc.benchmarks),
        stacks=tuple(acc.stacks),
        proofs=tuple(acc.proofs),
        barriers=tuple(acc.barriers),
        shard_notes=tuple(acc.shard_notes),
    )


