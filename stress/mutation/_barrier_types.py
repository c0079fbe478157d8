"""The barrier audit's budgets, results and constants: what a search is given and what it
returns.

Why it exists: the site selection, the searches and the audit's entry points
(:mod:`~aioctx_verify.stress.mutation._barriers`) all speak in these types, so they live in
a module of their own that imports none of the three.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

#: The mutation operators whose mutants are the barrier changes audited.
BARRIER_OPERATORS: tuple[str, ...] = ("fence-drop", "fence-weaken", "order-relax")
#: Memory models whose preemption-bounded DFS is exhaustive (every state within the bound
#: is reached, buffered stores' flushes included): an exhausted search there is a proof.
EXHAUSTIVE_MEMORIES: tuple[str, ...] = ("sc", "tso", "pso")
#: The models searched by default, weakest first (the order of the search: a barrier's
#: failure shows first where memory is weakest; the other models then run on the failing
#: program to say which of them fail too).
MEMORIES: tuple[str, ...] = ("c11", "pso", "tso", "sc")
#: Strongest first: the counterexample reported is the one of the strongest failing model.
_STRENGTH: tuple[str, ...] = ("sc", "tso", "pso", "c11")

Verdict = Literal["necessary", "not-needed-at-this-size", "undecided"]


# ----------------------------------------------------------------------------------------
# Budgets
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AuditBudget:
    """How much work the audit does per site: all of it counted in programs and runs.

    Attributes:
        name: the preset's name (or ``custom``).
        bound: the DFS's preemption bound (a flush of a buffered store and a stale read
            count one preemption each, like a switch away from a runnable thread).
        max_programs: programs searched per site (the first ones by coverage rank).
        max_runs: runs per search of one program under one model (the DFS's schedules
            plus the runs it pruned, as :func:`~aioctx_verify.stress.explore.explore`
            counts them); a search that needs more ends unexhausted.
        max_program_steps: a program whose profiling run took more steps is not searched
            (a bounded DFS of a long program exhausts only far beyond any budget here).
        max_program_runs: nor is one whose exhaustive bound-1 ``sc`` DFS needs more runs
            than this (its size, see :func:`select_programs`: many threads that can
            interleave make a bound-2 search explode however short the program).
        shrink_runs: runs a counterexample's shrinking may spend (half of them at most on
            its iterative-deepening DFS); it sizes the counterexample, never the verdict.
        gen_seed: the seed of the generated programs considered.
        gen_pool: how many generated programs of that seed are considered.
        programs: when given, these program keys (``corpus:<name>``, ``probe:<name>``,
            ``gen:<seed>:<index>``) are the pool instead (each still searched only for the
            sites it reaches).
    """

    name: str = "custom"
    bound: int = 2
    max_programs: int = 3
    max_runs: int = 2000
    max_program_steps: int = 400
    max_program_runs: int = 300
    shrink_runs: int = 200
    gen_seed: int = 0
    gen_pool: int = 240
    programs: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.bound < 0 or self.max_programs < 1 or self.max_runs < 1:
            raise ValueError(
                f"bad audit budget {self.name!r}: the bound must be at least 0, programs "
                "and runs at least 1"
            )

    def describe(self) -> str:
        return (
            f"budget {self.name}: preemption bound {self.bound}, at most "
            f"{self.max_programs} program(s) per site of at most {self.max_program_steps} "
            f"steps and a bound-1 DFS of {self.max_program_runs} runs, {self.max_runs} runs "
            "per search"
        )


#: The presets: ``default`` audits every site in a few minutes on two cores (two jobs);
#: ``small`` is for tests (one program, bound 1).
AUDIT_BUDGETS: dict[str, AuditBudget] = {
    "default": AuditBudget("default"),
    "small": AuditBudget(
        "small", bound=1, max_programs=1, max_runs=300, max_program_steps=200,
        max_program_runs=100, shrink_runs=60, gen_pool=0,
    ),
}


def _resolve(budget: str | AuditBudget) -> AuditBudget:
    if isinstance(budget, AuditBudget):
        return budget
    found = AUDIT_BUDGETS.get(budget)
    if found is None:
        raise ValueError(
            f"unknown audit budget {budget!r}; use {', '.join(AUDIT_BUDGETS)} or an AuditBudget"
        )
    return found


# ----------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SearchRecord:
    """One preemption-bounded DFS of one program under one memory model.

    Attributes:
        program: the program's key (``corpus:<name>``, ``probe:<name>``,
            ``gen:<seed>:<index>``).
        verdict: ``pass``, ``fail`` or ``inconclusive`` (as the explorer says).
        schedules: complete runs; ``pruned``: runs the DFS cut at a state already explored.
        exhausted: the DFS ran out of schedules within the bound.
        inconclusive_runs: runs that ended without a verdict (the step budget): the states
            past their end were not explored.
    """

    program: str
    memory: str
    verdict: str
    schedules: int
    pruned: int
    exhausted: bool
    inconclusive_runs: int

    @property
    def proof(self) -> bool:
        """Every state within the bound was reached and none failed (meaningful only under
        :data:`EXHAUSTIVE_MEMORIES`)."""
        return self.verdict == "pass" and self.exhausted and not self.inconclusive_runs

    @property
    def runs(self) -> int:
        return self.schedules + self.pruned

    def describe(self) -> str:
        end = "exhausted" if self.exhausted else "NOT exhausted"
        cut = f", {self.inconclusive_runs} run(s) cut by the step budget" if (
            self.inconclusive_runs) else ""
        return (f"{self.program} [{self.memory}]: {self.verdict}, {self.schedules} schedules "
                f"+ {self.pruned} pruned, {end}{cut}")


@dataclass(frozen=True, slots=True)
class Counterexample:
    """A failing run of a program under the changed barrier, shrunk and replayed.

    Attributes:
        program, memory: where it fails.
        kind: the run's failure kind (``lost_wakeup``, ``property``, ``exception``, ...).
        prop: the property it violates (P1/P2/P3/LIVE), None when unclassified.
        via: what noticed it, when the replay path says (probes).
        message: the failure's message, on one line.
        steps, preemptions: of the shrunk schedule.
        found_after: runs of the search before it (pruned ones included).
        replay: the replay line (``aioctx-verify replay --mutant <name> '<spec>'``).
        reproduced: replaying the line's spec under the mutant failed the same way.
    """

    program: str
    memory: str
    kind: str
    prop: str | None
    via: str | None
    message: str
    steps: int
    preemptions: int
    found_after: int
    replay: str
    reproduced: bool


@dataclass(frozen=True, slots=True)
class BarrierVerdict:
    """The audit of one change of one barrier site (see the module docstring).

    Attributes:
        mutant: the generated mutant's name (what ``--mutant`` takes).
        file, line, function, source: where the barrier is, and its line(s) of source.
        kind: ``fence MB`` / ``fence WMB`` / ``fence RMB``, or the atomic operation and its
            ordering (``exchange seq_cst``, ``fetch_add seq_cst (default)``).
        change: ``drop``, ``weaken to wmb``, ``weaken to rmb`` or ``relax``.
        verdict: ``necessary``, ``not-needed-at-this-size`` or ``undecided``.
        reason: one sentence saying why.
        memory: the counterexample's memory model (necessary only).
        failing_memories: every model searched on the counterexample's program that fails
            (strongest first); ``sc`` among them: not a memory-ordering barrier.
        memory_ordering: False when the change fails under ``sc`` too; None when nothing
            failed.
        counterexample: the failing run (necessary only).
        programs: the programs searched, in order; ``reaching``: how many programs of the
            pool execute the site's lines at all.
        bound: the preemption bound of every search.
        schedules, pruned: runs spent in all (the counterexample's program included).
        memories_exhausted: the models of :data:`EXHAUSTIVE_MEMORIES` under which every
            program's search was exhausted without a failure.
        memories_searched: every model searched.
        searches: every search of the mutated impl, in order.
        controls: the searches of the same programs on the unmutated impl.
        false_alarms: controls that failed (the unmutated impl or the checks are wrong):
            those programs are no evidence here, and the audit as a whole is in error.
        review: the reviewed reason from the equivalents list, if the mutant is on it.
    """

    mutant: str
    file: str
    line: int
    function: str
    source: str
    kind: str
    change: str
    verdict: Verdict
    reason: str
    memory: str | None
    failing_memories: tuple[str, ...]
    memory_ordering: bool | None
    counterexample: Counterexample | None
    programs: tuple[str, ...]
    reaching: int
    bound: int
    schedules: int
    pruned: int
    memories_exhausted: tuple[str, ...]
    memories_searched: tuple[str, ...]
    searches: tuple[SearchRecord, ...]
    controls: tuple[SearchRecord, ...]
    false_alarms: tuple[str, ...]
    review: str | None

    @property
    def site(self) -> str:
        return f"{self.file}:{self.line}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict of every field (nested records as dicts)."""
        return dataclasses.asdict(self)

