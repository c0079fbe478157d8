"""One campaign result object, from which every report is rendered.

Why one object: the JSON file, the JUnit XML for CI and the HTML page must never disagree,
so all three are pure functions of :class:`CampaignResult`, and ``aioctx-verify report``
re-renders all three from the JSON alone.  Prior art: jcstress's result model (outcomes
graded ACCEPTABLE / ACCEPTABLE_INTERESTING / FORBIDDEN, an unlisted outcome is forbidden),
the mutation-testing kill matrix of PIT / mutmut, and frontrun's result record
(``property_holds``, explanation, ``num_explored``).

Every record is a frozen, slotted dataclass; field invariants sit next to the field and are
checked in ``__post_init__`` (a bad value raises :class:`InvalidResultError` naming the
field).  Sequences are tuples; the two outcome maps of :class:`Histogram` are plain dicts in
insertion order (the order the histogram is drawn in).
"""

from __future__ import annotations

import builtins
import os
import platform
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from aioctx_verify.vocab import PROPERTY_NAMES, PropertyName

from ._checks import fail as _fail
from ._checks import finite as _finite
from ._checks import nonneg_float as _nonneg_float
from ._checks import nonneg_int as _nonneg_int
from ._checks import one_of as _one_of
from ._checks import opt_int as _opt_int
from ._checks import short_repr as _r
from ._checks import string as _str
from ._checks import tuple_of as _tuple_of

__all__ = [
    "CHECKER_ORDER",
    "FORMAT",
    "GRADES",
    "PROPERTIES",
    "PROPERTY_TITLES",
    "SCHEMA_VERSION",
    "VERDICTS",
    "BarrierRow",
    "Benchmark",
    "ProofRow",
    "CampaignBudget",
    "CampaignResult",
    "Counterexample",
    "Coverage",
    "Grade",
    "Histogram",
    "KillCell",
    "KillMatrix",
    "Machine",
    "Mutant",
    "PropertyName",
    "ThreadStack",
    "TraceStep",
    "Verdict",
    "VerdictValue",
    "tool_version",
]

#: The version of the JSON schema this code writes and reads (``schema/result-v1.json``).
SCHEMA_VERSION = 1
#: The ``format`` field of every result document: tells ours from another tool's JSON.
FORMAT = "aioctx-verify/result"

VerdictValue = Literal["pass", "fail", "inconclusive", "skipped"]
Grade = Literal["ACCEPTABLE", "ACCEPTABLE_INTERESTING", "FORBIDDEN"]

#: The properties (:data:`aioctx_verify.vocab.PROPERTY_NAMES`), in the order reports list them.
PROPERTIES: tuple[PropertyName, ...] = PROPERTY_NAMES
VERDICTS: tuple[VerdictValue, ...] = get_args(VerdictValue)
GRADES: tuple[Grade, ...] = get_args(Grade)
PROPERTY_TITLES: Mapping[PropertyName, str] = {
    "P1": "nested acquire correctness",
    "P2": "lock-free BH scheduling",
    "P3": "mutual exclusion during event-loop iterations",
    "LIVE": "liveness (no lost wake-up, starvation or deadlock)",
}
#: Checkers listed in this order first (others follow alphabetically) in tables.
CHECKER_ORDER = ("monitor", "model", "z3", "random", "pct", "dfs", "dpor", "hypothesis", "stress")


def tool_version() -> str:
    """The installed aioctx-verify version (``0+unknown`` when run from a bare checkout)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aioctx-verify")
    except PackageNotFoundError:
        return "0+unknown"


@dataclass(frozen=True, slots=True)
class CampaignBudget:
    """What the campaign was allowed to spend."""

    label: str  # e.g. "default", "quick", "nightly"
    schedules: int | None = None  # schedules per (property, checker); None: unbounded
    seconds: float | None = None  # wall-time budget of the whole campaign; None: unbounded

    def __post_init__(self) -> None:
        _str("CampaignBudget", "label", self.label)
        _nonneg_int("CampaignBudget", "schedules", self.schedules, optional=True)
        _nonneg_float("CampaignBudget", "seconds", self.seconds, optional=True)

    def __str__(self) -> str:
        parts = [self.label]
        if self.schedules is not None:
            parts.append(f"{self.schedules:,} schedules")
        if self.seconds is not None:
            parts.append(f"{self.seconds:g} s")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Machine:
    """Where the campaign ran."""

    hostname: str
    system: str  # platform.platform()
    python: str  # implementation and version, e.g. "CPython 3.11.7"
    cpu_count: int

    def __post_init__(self) -> None:
        for name in ("hostname", "system", "python"):
            _str("Machine", name, getattr(self, name))
        _nonneg_int("Machine", "cpu_count", self.cpu_count)

    @classmethod
    def current(cls) -> Machine:
        return cls(
            hostname=socket.gethostname(),
            system=platform.platform(),
            python=f"{platform.python_implementation()} {platform.python_version()}",
            cpu_count=os.cpu_count() or 1,
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one checker concluded about one property."""

    property: PropertyName
    checker: str  # "monitor", "random", "pct", "dfs", "hypothesis", "model", "z3", "stress"
    verdict: VerdictValue
    runs: int  # schedules, stress iterations or model states the checker spent
    seconds: float
    detail: str = ""  # one line: why inconclusive or skipped, what failed

    def __post_init__(self) -> None:
        _one_of("Verdict", "property", self.property, PROPERTIES)
        _str("Verdict", "checker", self.checker)
        _one_of("Verdict", "verdict", self.verdict, VERDICTS)
        _nonneg_int("Verdict", "runs", self.runs)
        _nonneg_float("Verdict", "seconds", self.seconds)
        _str("Verdict", "detail", self.detail)


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One scheduling point of a counterexample (see :class:`stress.Step`)."""

    index: int  # position in the run (steps are listed in this order)
    thread: int  # creation order, 0 = the program's main thread
    thread_name: str
    op: str
    obj: str
    where: str  # file:line (function) of the first frame outside the scheduler

    def __post_init__(self) -> None:
        _nonneg_int("TraceStep", "index", self.index)
        _nonneg_int("TraceStep", "thread", self.thread)
        for name in ("thread_name", "op", "obj", "where"):
            _str("TraceStep", name, getattr(self, name))


@dataclass(frozen=True, slots=True)
class Counterexample:
    """A failing run, with what is needed to see it and reproduce it."""

    property: PropertyName  # the property that broke
    checker: str
    kind: str  # "property", "deadlock", "lost_wakeup", "exception", "forbidden_outcome", ...
    message: str
    schedule: str | None  # the schedule string; None for a real-thread stress failure
    seed: int | None
    replay_command: str | None
    steps: tuple[TraceStep, ...] = ()
    failing_step: int | None = None  # position in ``steps`` where it broke; None: the last
    preemptions: int | None = None

    def __post_init__(self) -> None:
        _one_of("Counterexample", "property", self.property, PROPERTIES)
        for name in ("checker", "kind", "message"):
            _str("Counterexample", name, getattr(self, name))
        _str("Counterexample", "schedule", self.schedule, optional=True)
        _str("Counterexample", "replay_command", self.replay_command, optional=True)
        _opt_int("Counterexample", "seed", self.seed)
        _tuple_of("Counterexample", "steps", self.steps, TraceStep)
        _nonneg_int("Counterexample", "preemptions", self.preemptions, optional=True)
        if self.failing_step is not None:
            _nonneg_int("Counterexample", "failing_step", self.failing_step)
            if self.failing_step >= len(self.steps):
                raise _fail(
                    "Counterexample",
                    "failing_step",
                    f"is {self.failing_step} but there are only {len(self.steps)} steps",
                )

    @builtins.property
    def failing_position(self) -> int | None:
        """Position in :attr:`steps` of the step where the property broke."""
        if self.failing_step is not None:
            return self.failing_step
        return len(self.steps) - 1 if self.steps else None

    @builtins.property
    def threads(self) -> tuple[tuple[int, str], ...]:
        """(thread, name) of every thread that appears in the trace, by thread number."""
        names: dict[int, str] = {}
        for s in self.steps:
            names.setdefault(s.thread, s.thread_name)
        return tuple(sorted(names.items()))


@dataclass(frozen=True, slots=True)
class Histogram:
    """Outcomes of one real-thread stress workload, graded jcstress-style.

    An observed outcome that ``grades`` does not list is FORBIDDEN; a graded outcome that was
    never observed is drawn with count 0 (an ACCEPTABLE_INTERESTING one never seen is worth
    knowing).
    """

    workload: str
    counts: Mapping[str, int]  # outcome -> times observed (>= 0)
    grades: Mapping[str, Grade]  # outcome -> grade

    def __post_init__(self) -> None:
        _str("Histogram", "workload", self.workload)
        for k, v in self.counts.items():
            _str("Histogram", "counts key", k)
            _nonneg_int("Histogram", f"counts[{_r(k)}]", v)
        for k, g in self.grades.items():
            _str("Histogram", "grades key", k)
            _one_of("Histogram", f"grades[{_r(k)}]", g, GRADES)

    def grade(self, outcome: str) -> Grade:
        return self.grades.get(outcome, "FORBIDDEN")

    @builtins.property
    def outcomes(self) -> tuple[tuple[str, int, Grade], ...]:
        """(outcome, count, grade) in drawing order: graded outcomes first, then the rest."""
        order = list(self.grades) + [o for o in self.counts if o not in self.grades]
        return tuple((o, self.counts.get(o, 0), self.grade(o)) for o in order)

    @builtins.property
    def forbidden(self) -> int:
        """How many runs ended in a FORBIDDEN outcome."""
        return sum(n for o, n, g in self.outcomes if g == "FORBIDDEN")


@dataclass(frozen=True, slots=True)
class KillCell:
    """Whether one checker killed one mutant, and how fast."""

    checker: str
    killed: bool
    seconds: float | None = None  # time to the first failure
    steps: int | None = None  # length of the (shrunk) counterexample

    def __post_init__(self) -> None:
        _str("KillCell", "checker", self.checker)
        if not isinstance(self.killed, bool):
            raise _fail("KillCell", "killed", f"must be a bool, not {_r(self.killed)}")
        _nonneg_float("KillCell", "seconds", self.seconds, optional=True)
        _nonneg_int("KillCell", "steps", self.steps, optional=True)


@dataclass(frozen=True, slots=True)
class Mutant:
    """One seeded historical QEMU bug and what it took to detect it."""

    name: str
    qemu_commit: str  # the upstream fix (or the commit that introduced the bug)
    property: PropertyName  # the property it should break
    killed_by: tuple[str, ...]  # checkers that found it
    seconds_to_kill: float | None  # fastest kill; None when it survived
    counterexample_steps: int | None
    cells: tuple[KillCell, ...] = ()  # per-checker detail when the runner recorded it

    def __post_init__(self) -> None:
        _str("Mutant", "name", self.name)
        _str("Mutant", "qemu_commit", self.qemu_commit)
        _one_of("Mutant", "property", self.property, PROPERTIES)
        _tuple_of("Mutant", "killed_by", self.killed_by, str)
        _nonneg_float("Mutant", "seconds_to_kill", self.seconds_to_kill, optional=True)
        _nonneg_int("Mutant", "counterexample_steps", self.counterexample_steps, optional=True)
        _tuple_of("Mutant", "cells", self.cells, KillCell)

    @builtins.property
    def killed(self) -> bool:
        return bool(self.killed_by)

    def cell(self, checker: str) -> KillCell | None:
        """The cell for ``checker``: recorded, else derived from ``killed_by`` (None: not run)."""
        for c in self.cells:
            if c.checker == checker:
                return c
        if self.cells:
            return None
        if checker in self.killed_by:
            first = self.killed_by[0] == checker
            return KillCell(
                checker,
                True,
                self.seconds_to_kill if first else None,
                self.counterexample_steps if first else None,
            )
        return KillCell(checker, False)


@dataclass(frozen=True, slots=True)
class KillMatrix:
    """Which checker kills which mutant; ``false_alarms`` counts safe programs that failed."""

    mutants: tuple[Mutant, ...]
    false_alarms: int = 0

    def __post_init__(self) -> None:
        _tuple_of("KillMatrix", "mutants", self.mutants, Mutant)
        _nonneg_int("KillMatrix", "false_alarms", self.false_alarms)

    @builtins.property
    def checkers(self) -> tuple[str, ...]:
        """Every checker that appears in a cell or a ``killed_by`` list, in table order."""
        seen: set[str] = set()
        for m in self.mutants:
            seen.update(m.killed_by)
            seen.update(c.checker for c in m.cells)
        return order_checkers(seen)

    @builtins.property
    def killed(self) -> int:
        return sum(m.killed for m in self.mutants)

    @builtins.property
    def kill_rate(self) -> float | None:
        return self.killed / len(self.mutants) if self.mutants else None


@dataclass(frozen=True, slots=True)
class Coverage:
    """How much of the schedule space the campaign covered."""

    schedules: int
    distinct_traces: int
    states: int | None  # model states explored; None when no model checker ran
    max_preemptions: int
    steps_per_second: float
    schedules_per_second: float

    def __post_init__(self) -> None:
        _nonneg_int("Coverage", "schedules", self.schedules)
        _nonneg_int("Coverage", "distinct_traces", self.distinct_traces)
        _nonneg_int("Coverage", "states", self.states, optional=True)
        _nonneg_int("Coverage", "max_preemptions", self.max_preemptions)
        _nonneg_float("Coverage", "steps_per_second", self.steps_per_second)
        _nonneg_float("Coverage", "schedules_per_second", self.schedules_per_second)


@dataclass(frozen=True, slots=True)
class Benchmark:
    """One benchmark figure against its peer (see :class:`stress.BenchResult`)."""

    name: str
    ours: float | None  # None: could not be measured
    peer: float | None
    ratio: float | None
    unit: str
    target: str  # e.g. "<= 3.0" or "<= 1 ms"
    met: bool

    def __post_init__(self) -> None:
        for name in ("name", "unit", "target"):
            _str("Benchmark", name, getattr(self, name))
        for name in ("ours", "peer", "ratio"):
            _finite("Benchmark", name, getattr(self, name))
        if not isinstance(self.met, bool):
            raise _fail("Benchmark", "met", f"must be a bool, not {_r(self.met)}")


#: A proof verdict (see :func:`aioctx_verify.model.prove`).
PROOF_VERDICTS = ("proven", "bounded", "refuted")
#: A barrier audit verdict (see :mod:`aioctx_verify.stress.mutation._barriers`).
BARRIER_VERDICTS = ("necessary", "not-needed-at-this-size", "undecided")


@dataclass(frozen=True, slots=True)
class ProofRow:
    """One z3 verdict: a property of a model (the event-loop model at a configuration, or
    one of QEMU's aio_notify protocols) under a memory model."""

    model: str
    memory: str  # "sc", "tso", "pso"
    property: str
    verdict: str  # one of PROOF_VERDICTS
    depth: int  # cex length (refuted), k (proven), depth reached (bounded)
    seconds: float
    counterexample_steps: int | None = None
    detail: str = ""  # e.g. "lasso from step 3", "deadlock"

    def __post_init__(self) -> None:
        for name in ("model", "memory", "property", "detail"):
            _str("ProofRow", name, getattr(self, name))
        if self.verdict not in PROOF_VERDICTS:
            raise _fail("ProofRow", "verdict", f"must be one of {PROOF_VERDICTS}, not "
                                               f"{_r(self.verdict)}")
        _nonneg_int("ProofRow", "depth", self.depth)
        _nonneg_float("ProofRow", "seconds", self.seconds)
        _nonneg_int("ProofRow", "counterexample_steps", self.counterexample_steps,
                    optional=True)


@dataclass(frozen=True, slots=True)
class BarrierRow:
    """One barrier of impl's lock-free paths with one change (drop, weaken, relax): is it
    necessary (the changed impl fails, under ``memory``), or not at the audited size?"""

    site: str  # file:line (function)
    change: str
    verdict: str  # one of BARRIER_VERDICTS
    memory: str | None  # the memory model of the counterexample (necessary)
    detail: str  # the counterexample's property and replay line, or the search's size

    def __post_init__(self) -> None:
        for name in ("site", "change", "detail"):
            _str("BarrierRow", name, getattr(self, name))
        if self.verdict not in BARRIER_VERDICTS:
            raise _fail("BarrierRow", "verdict", f"must be one of {BARRIER_VERDICTS}, not "
                                                 f"{_r(self.verdict)}")
        if self.memory is not None:
            _str("BarrierRow", "memory", self.memory)


@dataclass(frozen=True, slots=True)
class ThreadStack:
    """One thread's stack as a watchdog dumped it when a run hung."""

    thread: str  # the thread's name
    ident: int | None
    stack: str  # the formatted frames, innermost last

    def __post_init__(self) -> None:
        _str("ThreadStack", "thread", self.thread)
        _opt_int("ThreadStack", "ident", self.ident)
        _str("ThreadStack", "stack", self.stack)


def order_checkers(names: Iterable[str]) -> tuple[str, ...]:
    """Known checkers in :data:`CHECKER_ORDER`, then the others alphabetically."""
    names = set(names)
    known = [c for c in CHECKER_ORDER if c in names]
    return (*known, *sorted(set(names) - set(known)))


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignResult:
    """Everything one verification campaign found; every report is rendered from this.

    Invariants: ``started_at`` is timezone-aware; at most one verdict per
    (property, checker).  ``complete`` is False when the campaign was interrupted, and then
    its verdicts cover only what ran.  Fields are keyword-only.
    """

    schema_version: int = SCHEMA_VERSION
    tool_version: str
    campaign: str
    budget: CampaignBudget
    seed: int
    started_at: datetime
    seconds: float
    complete: bool
    machine: Machine
    verdicts: tuple[Verdict, ...]
    counterexamples: tuple[Counterexample, ...] = ()
    histograms: tuple[Histogram, ...] = ()
    kill_matrix: KillMatrix | None = None
    coverage: Coverage | None = None
    benchmarks: tuple[Benchmark, ...] = ()
    stacks: tuple[ThreadStack, ...] = ()
    proofs: tuple[ProofRow, ...] = ()
    barriers: tuple[BarrierRow, ...] = ()
    #: Shards that did not simply run once and answer: retried after a worker died (their
    #: result counted once), cut off at their deadline, lost (``EngineRun.notes``).
    shard_notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        cls = "CampaignResult"
        if self.schema_version != SCHEMA_VERSION:
            want = f"must be {SCHEMA_VERSION}, not {_r(self.schema_version)}"
            raise _fail(cls, "schema_version", want)
        _str(cls, "tool_version", self.tool_version)
        _str(cls, "campaign", self.campaign)
        if not isinstance(self.budget, CampaignBudget):
            raise _fail(cls, "budget", "must be a CampaignBudget")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise _fail(cls, "seed", f"must be an int, not {_r(self.seed)}")
        if not isinstance(self.started_at, datetime) or self.started_at.utcoffset() is None:
            raise _fail(cls, "started_at", "must be a timezone-aware datetime")
        _nonneg_float(cls, "seconds", self.seconds)
        if not isinstance(self.complete, bool):
            raise _fail(cls, "complete", f"must be a bool, not {_r(self.complete)}")
        if not isinstance(self.machine, Machine):
            raise _fail(cls, "machine", "must be a Machine")
        _tuple_of(cls, "verdicts", self.verdicts, Verdict)
        _tuple_of(cls, "counterexamples", self.counterexamples, Counterexample)
        _tuple_of(cls, "histograms", self.histograms, Histogram)
        if self.kill_matrix is not None and not isinstance(self.kill_matrix, KillMatrix):
            raise _fail(cls, "kill_matrix", "must be a KillMatrix or None")
        if self.coverage is not None and not isinstance(self.coverage, Coverage):
            raise _fail(cls, "coverage", "must be a Coverage or None")
        _tuple_of(cls, "benchmarks", self.benchmarks, Benchmark)
        _tuple_of(cls, "proofs", self.proofs, ProofRow)
        _tuple_of(cls, "barriers", self.barriers, BarrierRow)
        _tuple_of(cls, "stacks", self.stacks, ThreadStack)
        _tuple_of(cls, "shard_notes", self.shard_notes, str)
        seen: set[tuple[str, str]] = set()
        for v in self.verdicts:
            key = (v.property, v.checker)
            if key in seen:
                raise _fail(cls, "verdicts", f"has two verdicts for {v.property} / {v.checker}")
            seen.add(key)

    # -- derived figures -------------------------------------------------------------------

    @builtins.property
    def holds(self) -> bool:
        """True when no verdict is ``fail`` (the campaign found no counterexample)."""
        return not any(v.verdict == "fail" for v in self.verdicts)

    @builtins.property
    def failed(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.verdict == "fail")

    @builtins.property
    def checkers(self) -> tuple[str, ...]:
        return order_checkers({v.checker for v in self.verdicts})

    def verdict(self, prop: str, checker: str) -> Verdict | None:
        for v in self.verdicts:
            if v.property == prop and v.checker == checker:
                return v
        return None

    @builtins.property
    def kill_rate(self) -> float | None:
        return self.kill_matrix.kill_rate if self.kill_matrix is not None else None

    @builtins.property
    def throughput(self) -> float | None:
        """Scheduling steps per second over the campaign (the trend figure)."""
        return self.coverage.steps_per_second if self.coverage is not None else None

    def summary(self) -> str:
        """One line: what holds, what failed, whether the run was complete."""
        if self.failed:
            by_prop: dict[str, list[str]] = {}
            for v in self.failed:
                by_prop.setdefault(v.property, []).append(v.checker)
            text = "; ".join(f"{p} fails ({', '.join(cs)})" for p, cs in by_prop.items())
        elif not self.verdicts:
            text = "no property was checked"
        else:
            inconclusive = sorted(
                {v.property for v in self.verdicts if v.verdict == "inconclusive"}
            )
            text = "all checked properties hold"
            if inconclusive:
                text += f" ({', '.join(inconclusive)} inconclusive under some checker)"
        if not self.complete:
            text += "; the campaign was interrupted, results are partial"
        return text

    # -- JSON -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, object]:
        """The JSON document as Python values (see ``schema/result-v1.json``)."""
        from ._json import result_to_dict

        return result_to_dict(self)

    def to_json(self) -> str:
        """The JSON document text (strict JSON, indented, ends with a newline)."""
        from ._json import result_to_json

        return result_to_json(self)

    @classmethod
    def from_dict(cls, data: object, *, source: str = "result") -> CampaignResult:
        """Validate ``data`` against the shipped schema and build the result.

        Raises:
            ResultFormatError: one sentence naming ``source``, the JSON path and the rule.
        """
        from ._json import result_from_dict

        return result_from_dict(data, source=source)

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str = "result") -> CampaignResult:
        """Parse and validate a JSON document (see :meth:`from_dict`)."""
        from ._json import result_from_json

        return result_from_json(text, source=source)
