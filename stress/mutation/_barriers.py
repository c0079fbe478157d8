"""The barrier audit: for every fence and every non-relaxed ordering in impl, whether the
suite can show it is needed.

Why it exists: impl writes its memory-ordering points explicitly through the platform seam
(``p.fence(Fence.MB)``, ``cell.exchange(v, Ordering.SEQ_CST)``), each copied from QEMU or
argued in a comment.  A barrier nobody can show to be needed may be redundant (QEMU has
removed several), and one whose removal no check notices is a barrier the suite does not
verify.  So for each barrier site this module removes or weakens it (the mutation
operators ``fence-drop``, ``fence-weaken`` and ``order-relax`` of
:mod:`~aioctx_verify.stress.mutation._operators`, which enumerate the sites from impl's
source: a barrier added to impl is audited without editing this file) and runs a
preemption-bounded DFS over the programs that reach the site:

* ``necessary``: some run fails with the change and the *same* program passed the same
  search on the unmutated impl (the control).  The verdict names the memory model of the
  counterexample, every model in which that program fails, the property, and a replay line
  (``aioctx-verify replay --mutant <name> '<spec>'``) that reproduces it; the audit replays
  it through the same path before reporting.  A change that fails under ``sc`` too is not
  (only) a memory-ordering barrier: removing the call changed something else, and the
  verdict says so.
* ``not-needed-at-this-size``: every search under every model whose DFS is exhaustive
  (``sc``, ``tso``, ``pso``: a buffered store's flush is a scheduling choice) ran out of
  schedules within the preemption bound without a failure, on every program chosen.  That
  is a proof for those programs, that bound and those models, nothing more; ``c11`` is
  searched as well, for counterexamples only (the project does not claim its DFS
  exhaustive), and the verdict says what that search did.
* ``undecided``: the work budget ran out before some exhaustive search ended, runs hit the
  step budget, no program small enough reaches the site, or a control failed.  Never
  reported as not needed.

Programs are chosen by coverage: the safe corpus programs, the kill matrix's probe
programs and the first generated programs of a seed, each profiled by one seeded ``sc`` run
on the unmutated impl; a program qualifies when that run executes the site's lines, those
where some other thread accesses an atomic cell the site's function accesses (one of the
two writing: a conflict) first, smallest (fewest steps) first.  Budgets are work (programs,
runs, preemption bound), never seconds, so a verdict is the same on any machine and for any
number of worker processes.

Prior art: fence-insertion and fence-removal analyses for weak memory (Alglave, Kroening,
Nimal and Poetzl, "Don't sit on the fence", CAV 2014, which keeps only the fences some
cycle needs); QEMU's Spin models of aio_notify (docs/spin/aio_notify*.promela), which
verify that protocol's orderings one at a time.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import multiprocessing
import signal
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from aioctx_verify.engine import Engine, Shard, run_shards

# The stages live in sibling modules (budgets and results, sites and programs, searches);
# their public names, and the helpers tests use, are re-exported here.
from ._barrier_search import _control_task, _site_task, _SiteTask
from ._barrier_sites import (
    _PROFILES,
    _SIZES,
    _check_key,
    _pool,
    _profile,
    _reach,
    _site_lines,
    _size,
    barrier_sites,
    select_programs,
)
from ._barrier_sites import PROFILE_SEED as PROFILE_SEED
from ._barrier_sites import _change as _change
from ._barrier_sites import _kind as _kind
from ._barrier_types import (
    _STRENGTH,
    AUDIT_BUDGETS,
    BARRIER_OPERATORS,
    EXHAUSTIVE_MEMORIES,
    MEMORIES,
    AuditBudget,
    BarrierVerdict,
    Counterexample,
    SearchRecord,
    _resolve,
)
from ._barrier_types import Verdict as Verdict

__all__ = [
    "AUDIT_BUDGETS",
    "BARRIER_OPERATORS",
    "EXHAUSTIVE_MEMORIES",
    "MEMORIES",
    "AuditBudget",
    "BarrierVerdict",
    "Counterexample",
    "SearchRecord",
    "audit_barriers",
    "audit_summary",
    "barrier_sites",
    "format_audit",
    "select_programs",
]


# ----------------------------------------------------------------------------------------
# The audit
# ----------------------------------------------------------------------------------------
def _ignore_sigint() -> None:
    """Worker initializer: Ctrl-C is the parent's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _executor(jobs: int) -> Iterator[concurrent.futures.Executor | None]:
    if jobs <= 1:
        yield None
        return
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=jobs, mp_context=ctx, initializer=_ignore_sigint
    ) as pool:
        yield pool


_T = TypeVar("_T")
_R = TypeVar("_R")


def _each(
    pool: concurrent.futures.Executor | Engine | None, fn: Callable[[_T], _R],
    items: Sequence[_T],
) -> Iterator[tuple[_T, _R]]:
    """``(item, fn(item))`` for every item: here in order, in ``pool`` as they end, or as
    shards of an engine (a campaign's: the results in item order)."""
    if pool is None:
        for item in items:
            yield item, fn(item)
        return
    if isinstance(pool, Engine):
        run = run_shards(pool, "barriers", [
            Shard("barriers", i, fn, (item,), label=str(item)[:60])
            for i, item in enumerate(items)
        ])
        if run.interrupted:
            raise KeyboardInterrupt
        for r in run.ordered():
            if not r.ok:
                raise RuntimeError(
                    f"barrier audit: shard {r.name} ({r.label}) {r.status}: {r.error}"
                )
            yield items[r.index], r.value
        return
    futures = {pool.submit(fn, item): item for item in items}
    for fut in concurrent.futures.as_completed(futures):
        yield futures[fut], fut.result()


def audit_barriers(
    budget: str | AuditBudget = "default",
    *,
    names: Sequence[str] | None = None,
    memories: Sequence[str] = MEMORIES,
    jobs: int = 1,
    progress: Callable[[str], None] | None = None,
    engine: Engine | None = None,
) -> list[BarrierVerdict]:
    """Audit every barrier change of impl (:func:`barrier_sites`), or the ``names`` ones.

    Each change gets its programs (:func:`select_programs`); every (program, model) pair
    is first searched on the unmutated impl (the control: a failure there is a false
    alarm, reported in every verdict that uses the program, which then is no evidence);
    then the change's searches run (see the module docstring).  The verdicts depend on
    impl, the budget and ``memories`` alone: not on ``jobs``, not on the machine's speed.

    Args:
        budget: a preset of :data:`AUDIT_BUDGETS` or an :class:`AuditBudget`.
        names: mutant names (:attr:`BarrierVerdict.mutant`) to audit (default: all).
        memories: the models searched, in search order (default :data:`MEMORIES`, weakest
            first); only those of :data:`EXHAUSTIVE_MEMORIES` can prove a barrier not
            needed.
        jobs: worker processes (1: everything in this process).  Profiling, controls and
            sites are spread over them; each result is computed whole by one process.
        progress: called with one line per phase, finished control and finished site.
        engine: run the profiles, controls and sites as shards on it (a campaign's
            engine: in this process, or on a Dask cluster); ``jobs`` is then unused.

    Raises:
        ValueError: an unknown budget, memory model, program key or mutant name.
    """
    b = _resolve(budget)
    mems = tuple(memories)
    unknown_mem = [mm for mm in mems if mm not in _STRENGTH]
    if unknown_mem or not mems:
        raise ValueError(
            f"unknown memory model(s) {', '.join(unknown_mem) or '(none given)'}; "
            f"use {', '.join(_STRENGTH)}"
        )
    sites = barrier_sites()
    if names is not None:
        by_name = {m.name: m for m in sites}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ValueError(f"no such barrier change(s): {', '.join(missing)}")
        sites = [by_name[n] for n in names]
    keys = _pool(b)
    for key in keys:
        _check_key(key)
    say = progress or (lambda _line: None)
    controls: dict[tuple[str, str], tuple[SearchRecord, str]] = {}
    verdicts: dict[str, BarrierVerdict] = {}
    with _executor(1 if engine is not None else jobs) as procs:
        pool: concurrent.futures.Executor | Engine | None = (
            engine if engine is not None else procs)
        say(f"{b.describe()}; profiling {len(keys)} program(s) on the unmutated impl")
        todo = [k for k in keys if k not in _PROFILES]
        _PROFILES.update(_each(pool, _profile, todo))
        small = sorted({
            k for m in sites for k in keys
            if _PROFILES[k].steps <= b.max_program_steps
            and _reach(_PROFILES[k], m.file, _site_lines(m))[0]
        })
        cap = b.max_program_runs
        sizing = functools.partial(_size, cap=cap)
        sized = list(_each(pool, sizing, [k for k in small if (k, cap) not in _SIZES]))
        _SIZES.update(((k, cap), n) for k, n in sized)
        chosen = {m.name: select_programs(m, b) for m in sites}
        pairs = sorted({(k, mm) for ks, _ in chosen.values() for k in ks for mm in mems})
        say(f"{len(sites)} barrier change(s); {len(pairs)} control search(es) first")
        for pair, got in _each(pool, functools.partial(_control_task, b), pairs):
            controls[pair] = got
            say(_control_line(got))
        tasks = [
            _SiteTask(
                m.name, ks, reaching, mems, b,
                tuple(controls[(k, mm)] for k in ks for mm in mems),
            )
            for m in sites
            for ks, reaching in [chosen[m.name]]
        ]
        for task, verdict in _each(pool, _site_task, tasks):
            verdicts[task.mutant] = verdict
            say(_site_line(verdict))
    return [verdicts[m.name] for m in sites]


def _control_line(c: tuple[SearchRecord, str]) -> str:
    rec, alarm = c
    return f"control {rec.describe()}" + (f" FALSE ALARM: {alarm}" if alarm else "")


def _site_line(v: BarrierVerdict) -> str:
    return f"{v.site} {v.change} ({v.kind}): {v.verdict}"


# ----------------------------------------------------------------------------------------
# Reporting
# ----------------------------------------------------------------------------------------
def audit_summary(verdicts: Sequence[BarrierVerdict]) -> dict[str, int]:
    """Counts: changes audited, per verdict, necessary ones that fail under ``sc`` too
    (not memory-ordering barriers), counterexamples whose replay did not reproduce, and
    false alarms (failed controls, counted once per program and model)."""
    alarms = {a for v in verdicts for a in v.false_alarms}
    return {
        "changes": len(verdicts),
        "sites": len({v.site for v in verdicts}),
        "necessary": sum(v.verdict == "necessary" for v in verdicts),
        "not-needed-at-this-size": sum(v.verdict == "not-needed-at-this-size" for v in verdicts),
        "undecided": sum(v.verdict == "undecided" for v in verdicts),
        "not-memory-ordering": sum(v.memory_ordering is False for v in verdicts),
        "not-reproduced": sum(
            v.counterexample is not None and not v.counterexample.reproduced for v in verdicts
        ),
        "false-alarms": len(alarms),
    }


def format_audit(verdicts: Sequence[BarrierVerdict]) -> str:
    """A text table, one row per change in file and line order, under each row its
    evidence (the counterexample, why, and its replay line; or the searches' figures),
    then the summary."""
    head = (f"{'site':<24} {'function':<28} {'barrier':<32} {'change':<13} {'verdict':<23} "
            f"{'fails under':<12} prop")
    lines = [head, "-" * len(head)]
    for v in sorted(verdicts, key=lambda v: (v.file, v.line)):
        fails = ",".join(v.failing_memories) or "-"
        prop = (v.counterexample.prop or "?") if v.counterexample is not None else "-"
        lines.append(
            f"{v.site:<24} {v.function[:28]:<28} {v.kind[:32]:<32} {v.change:<13} "
            f"{v.verdict:<23} {fails:<12} {prop}"
        )
        c = v.counterexample
        if c is not None:
            lines.append(
                f"    {c.program} [{c.memory}]: {c.kind}, {c.steps} steps, {c.preemptions} "
                f"preemption(s), found after {c.found_after} runs"
                + ("" if c.reproduced else ", NOT REPRODUCED by its replay line")
            )
            lines.append(f"    {v.reason}")
            lines.append(f"    {c.replay}")
        else:
            lines.append(
                f"    {v.reason}; bound {v.bound}, {len(v.programs)} program(s) "
                f"({', '.join(v.programs) or 'none'}; {v.reaching} reach the site), "
                f"{v.schedules} schedules + {v.pruned} pruned"
            )
        for a in v.false_alarms:
            lines.append(f"    FALSE ALARM: {a}")
    s = audit_summary(verdicts)
    lines.append("")
    lines.append(
        f"{s['changes']} change(s) at {s['sites']} site(s): {s['necessary']} necessary "
        f"({s['not-memory-ordering']} failing under sc too), {s['not-needed-at-this-size']} "
        f"not needed at this size, {s['undecided']} undecided; false alarms: "
        f"{s['false-alarms']}; counterexamples not reproduced: {s['not-reproduced']}"
    )
    return "\n".join(lines)
