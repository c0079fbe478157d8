"""The barrier audit's searches: the preemption-bounded DFS of one program under one
memory model, the controls on the unmutated impl, and one site's verdict.

Why it exists: these are the units of work a worker process runs, each named by strings
(program keys, mutant names) so it pickles; the audit
(:mod:`~aioctx_verify.stress.mutation._barriers`) only schedules them and collects their
results.
"""

from __future__ import annotations

import contextlib
import math
from contextlib import AbstractContextManager
from dataclasses import dataclass

from ..controlled import (
    InvalidScheduleError,
    ReplayStrategy,
    RunOutcome,
    Schedule,
)
from ..explore import (
    Budget,
    Failure,
    corpus_by_name,
    explore,
    replay,
    replay_generated,
    replay_line,
    run_schedule,
    shrink,
)
from ._barrier_sites import _change, _kind, _program
from ._barrier_types import (
    _STRENGTH,
    EXHAUSTIVE_MEMORIES,
    AuditBudget,
    BarrierVerdict,
    Counterexample,
    SearchRecord,
    Verdict,
)
from ._equivalent import EQUIVALENT
from ._operators import GeneratedMutant, generated_mutant
from ._replay import replay_probe


# ----------------------------------------------------------------------------------------
# Searches (run in this process or a worker: everything is named by strings)
# ----------------------------------------------------------------------------------------
def _applied(m: GeneratedMutant | None) -> AbstractContextManager[object]:
    return m.apply() if m is not None else contextlib.nullcontext()


def _dfs(
    key: str, memory: str, b: AuditBudget, m: GeneratedMutant | None
) -> tuple[SearchRecord, Failure | None]:
    program = _program(key)
    with _applied(m):
        r = explore(
            program,
            strategy="dfs",
            bound=b.bound,
            memory=memory,
            budget=Budget(b.max_runs, math.inf),  # work alone ends it: no wall-clock cap
            do_shrink=False,
        )
    rec = SearchRecord(
        key, memory, r.verdict, r.schedules, r.pruned, r.exhausted, r.inconclusive_runs
    )
    return rec, r.failure if r.verdict == "fail" else None


def _spec(key: str, schedule: str) -> str:
    """The replay spec of a schedule of program ``key`` (a generated program's names it)."""
    if key.startswith("gen:"):
        _, seed, index = key.split(":")
        return f"gen:seed={seed},index={index};{schedule}"
    return schedule


def _replayed(key: str, spec: str) -> tuple[RunOutcome, str | None, str | None]:
    """Rerun ``spec`` as ``aioctx-verify replay`` does (the caller applies the mutant):
    the run, its property and what noticed it."""
    if key.startswith("gen:"):
        g = replay_generated(spec)
        return g.outcome, g.prop, None
    if key.startswith("probe:"):
        pr = replay_probe(spec)
        return pr.outcome, pr.prop, pr.via
    out = replay(Schedule.parse(spec), corpus_by_name())
    stuck = out.kind in ("deadlock", "lost_wakeup")
    prop = out.prop or ("LIVE" if stuck else None)
    via = "scheduler" if stuck else "monitor" if out.kind == "property" else None
    return out, prop, via


def _counterexample(
    key: str, memory: str, failure: Failure, found_after: int, b: AuditBudget,
    m: GeneratedMutant,
) -> Counterexample:
    """``failure`` shrunk (by work alone), replayed through the replay command's path."""
    program = _program(key)
    with m.apply():
        sched = Schedule.parse(failure.schedule)
        found = run_schedule(program, ReplayStrategy(sched.tokens), memory)
        best = failure
        if found.verdict == "fail" and found.kind == failure.kind and b.shrink_runs > 0:
            best = shrink(
                program, found, memory, max_replays=b.shrink_runs,
                search_runs=b.shrink_runs // 2, seconds=None,
            )
        spec = _spec(key, best.schedule)
        try:
            out, prop, via = _replayed(key, spec)
        except InvalidScheduleError as e:
            out, prop, via = None, None, None
            note = f"; replay refused the spec: {e}"
        else:
            note = ""
    reproduced = out is not None and out.verdict == "fail" and out.kind == best.kind
    return Counterexample(
        key,
        memory,
        best.kind,
        prop or (best.prop or None),
        via,
        " ".join(best.message.split())[:400] + note,
        best.steps,
        best.preemptions,
        found_after,
        replay_line(spec, m.name),
        reproduced,
    )


def _control_task(b: AuditBudget, pair: tuple[str, str]) -> tuple[SearchRecord, str]:
    """The search of program ``key`` under ``memory`` (``pair``) on the unmutated impl,
    and (when it failed, a false alarm) a line saying how, with its replay line."""
    key, memory = pair
    rec, failure = _dfs(key, memory, b, None)
    if failure is None:
        return rec, ""
    msg = " ".join(failure.message.split())[:300]
    return rec, (f"{key} [{memory}] fails on the unmutated impl: {failure.kind}: {msg} | "
                 f"{replay_line(_spec(key, failure.schedule))}")


@dataclass(frozen=True, slots=True)
class _SiteTask:
    mutant: str
    programs: tuple[str, ...]
    reaching: int
    memories: tuple[str, ...]
    budget: AuditBudget
    controls: tuple[tuple[SearchRecord, str], ...]


def _site_task(task: _SiteTask) -> BarrierVerdict:
    """Search one barrier change's programs (models weakest first, programs in rank
    order) until the first failure; on a failure, the other models on that program."""
    m = generated_mutant(task.mutant)
    b = task.budget
    bad = {(c.program, c.memory): line for c, line in task.controls if line}
    searches: list[SearchRecord] = []
    found: tuple[str, str, Failure, int] | None = None
    for memory in task.memories:
        for key in task.programs:
            if (key, memory) in bad:
                continue
            rec, failure = _dfs(key, memory, b, m)
            searches.append(rec)
            if failure is not None:
                found = (key, memory, failure, rec.runs)
                break
        if found is not None:
            break
    failing: dict[str, tuple[Failure, int]] = {}
    if found is not None:
        key = found[0]
        failing[found[1]] = (found[2], found[3])
        done = {(s.program, s.memory) for s in searches}
        for memory in task.memories:
            if (key, memory) in done or (key, memory) in bad:
                continue
            rec, failure = _dfs(key, memory, b, m)
            searches.append(rec)
            if failure is not None:
                failing[memory] = (failure, rec.runs)
    return _verdict(m, task, searches, failing, found[0] if found else None, bad)


def _verdict(
    m: GeneratedMutant,
    task: _SiteTask,
    searches: list[SearchRecord],
    failing: dict[str, tuple[Failure, int]],
    cex_program: str | None,
    bad: dict[tuple[str, str], str],
) -> BarrierVerdict:
    b = task.budget
    used = set(task.programs)
    controls = tuple(c for c, _ in task.controls if c.program in used)
    alarms = tuple(line for (p, _mem), line in bad.items() if p in used)
    order = [mem for mem in _STRENGTH if mem in failing]
    cex: Counterexample | None = None
    memory: str | None = None
    exhausted = tuple(
        mem for mem in EXHAUSTIVE_MEMORIES
        if mem in task.memories and task.programs
        and all(
            any(s.program == p and s.memory == mem and s.proof for s in searches)
            for p in task.programs
        )
    )
    others = [mem for mem in task.memories if mem not in EXHAUSTIVE_MEMORIES]
    verdict: Verdict
    if order and cex_program is not None:
        memory = order[0]
        failure, after = failing[memory]
        cex = _counterexample(cex_program, memory, failure, after, b, m)
        verdict = "necessary"
        what = f"fails under {', '.join(order)}" + (
            " (sc too: not (only) a memory-ordering barrier, the call is needed for "
            "something else)" if "sc" in failing else "")
        held = [s for s in searches if s.program == cex_program and s.memory not in failing]
        if held:
            what += "; passes under " + ", ".join(
                f"{s.memory} ({'exhausted' if s.exhausted else f'{s.runs} runs'})"
                for s in sorted(held, key=lambda s: _STRENGTH.index(s.memory))
            )
        ctl = next((c for c in controls if c.program == cex_program and c.memory == memory),
                   None)
        reason = f"{cex_program} {what}; the unmutated impl passes the same {memory} search" + (
            "" if ctl is None or ctl.exhausted
            else f" as far as it went ({ctl.runs} runs, not exhausted: weaker evidence)")
        if not cex.reproduced:
            reason += "; WARNING: the replay line did not reproduce the failure"
    elif not task.programs:
        verdict = "undecided"
        reason = (
            f"no program small enough reaches the site ({task.reaching} larger one(s) do: "
            f"more than {b.max_program_steps} steps or a bound-1 DFS of more than "
            f"{b.max_program_runs} runs)" if task.reaching
            else "no program of the pool executes the site's lines"
        )
    elif alarms:
        verdict = "undecided"
        reason = f"{len(alarms)} control search(es) failed on the unmutated impl (false alarm)"
    elif len(exhausted) == len([mm for mm in EXHAUSTIVE_MEMORIES if mm in task.memories]) \
            and exhausted:
        verdict = "not-needed-at-this-size"
        c11 = [s for s in searches if s.memory in others]
        tail = ""
        if c11:
            runs = sum(s.runs for s in c11)
            ended = all(s.exhausted for s in c11)
            tail = (f"; {', '.join(others)}: no failure in {runs} runs "
                    f"({'DFS ran out of schedules' if ended else 'budget ran out'}; "
                    "not claimed exhaustive)")
        reason = (f"every search under {', '.join(exhausted)} exhausted at bound {b.bound} "
                  f"on {len(task.programs)} program(s), no failure{tail}")
    else:
        verdict = "undecided"
        open_ = [s for s in searches if s.memory in EXHAUSTIVE_MEMORIES and not s.proof]
        if not any(mem in EXHAUSTIVE_MEMORIES for mem in task.memories):
            reason = "no memory model with an exhaustive DFS was searched"
        else:
            reason = "work budget ran out before exhaustion: " + "; ".join(
                f"{s.program} [{s.memory}] {s.runs} runs"
                + (f", {s.inconclusive_runs} cut by the step budget"
                   if s.inconclusive_runs else "")
                for s in open_[:3]
            ) + (" ..." if len(open_) > 3 else "")
    return BarrierVerdict(
        mutant=m.name,
        file=m.file,
        line=m.line,
        function=m.function,
        source=m.before,
        kind=_kind(m),
        change=_change(m),
        verdict=verdict,
        reason=reason,
        memory=memory,
        failing_memories=tuple(order),
        memory_ordering=None if not order else "sc" not in failing,
        counterexample=cex,
        programs=task.programs,
        reaching=task.reaching,
        bound=b.bound,
        schedules=sum(s.schedules for s in searches),
        pruned=sum(s.pruned for s in searches),
        memories_exhausted=exhausted,
        memories_searched=tuple(mem for mem in _STRENGTH if mem in task.memories),
        searches=tuple(searches),
        controls=controls,
        false_alarms=alarms,
        review=EQUIVALENT.get(m.key),
    )

