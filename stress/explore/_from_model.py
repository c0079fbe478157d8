"""Model counterexamples replayed on impl: the model's path becomes a controlled schedule.

Why it exists: a counterexample of the explicit model (:func:`model.check_bug`), of the z3
lasso search or of the protocol models is a claim about *QEMU's protocol*; it is only
evidence about *impl* once impl, with the matching catalogue mutant applied, shows the
same violation along the same interleaving, and the unmutated impl does not.  Every model
:class:`~aioctx_verify.model.Action` carries the trace events impl emits during that step,
so the path is also a script for the controlled scheduler: run the thread of the next
expected action until impl emits that action's next event (CHESS-style guided replay;
shuttle's replay reports the first divergence the same way).

Three pieces:

* :func:`program_for` builds a controlled-platform :class:`Program` that mirrors the
  model's configuration (an IOThread for the ``io`` role, one impl thread per ``client``
  that performs, in path order, the operations its client actions chose);
* :func:`guided_strategy` steers the scheduler along the path by events, falls back to
  the non-preempting choice when the path's thread cannot run or impl's events diverge,
  and records how far the guidance matched;
* :func:`replay_model_path` runs both (mutant applied, then the correct impl), and
  returns plain data with the schedule string and its replay line.

Matching is by event and by platform operation: a model step that is one shared-memory
access (``schedule.xchg``, ``notify.read``, ``poll.accept``...) ends when its impl thread
performed the matching operation of the controlled platform on the matching object
(:data:`~aioctx_verify.stress.explore._model_guide.STEP_ACCESS`), so guidance can stop a
thread between two eventless steps.  A step with neither events nor such an access
(``finish``) lasts until its thread blocks or emits its next event: an approximation,
reported as such through the matched count and the divergence text.  A model lasso (a busy
loop) shows on impl through the program's idle check once the clients ended (LIVE).  The
``gsource`` role (the main loop's GSource) has no impl class, so models that need it are
reported "not mirrored".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from aioctx_verify.model import (
    BUG_PROPERTY,
    MODEL_BUGS,
    Action,
    bug_config,
    check_bug,
)

from ..controlled import (
    InvalidScheduleError,
    ReplayStrategy,
    RunOutcome,
    Schedule,
)
from ._explore import run_schedule
from ._lines import replay_line

# The program and the guided strategy live in sibling modules; every name importers use is
# re-exported here.
from ._model_guide import GuidedStrategy, guided_strategy
from ._model_program import (
    FromModelError,
    NotMirroredError,
    _check_config,
    _client_ops,
    model_program_by_name,
    outcome_prop,
    program_for,
)

__all__ = [
    "FromModelError",
    "GuidedStrategy",
    "ModelReplay",
    "NotMirroredError",
    "RunReport",
    "guided_strategy",
    "model_program_by_name",
    "program_for",
    "replay_model_path",
    "replay_model_schedule",
]

# ------------------------------------------------------------------------------------------
# Replaying a model counterexample on impl
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RunReport:
    """One guided run: its verdict and property, and how far the path was matched."""

    verdict: str  # pass | fail | inconclusive
    kind: str
    prop: str | None
    message: str
    matched: int
    divergence: str


@dataclass(frozen=True, slots=True)
class ModelReplay:
    """A model counterexample replayed on impl.

    Attributes:
        flag: the model bug flag (and catalogue mutant).
        expected: the property the model path violates (:data:`model.BUG_PROPERTY`).
        verdict: ``reproduced`` (the mutant shows ``expected``, the correct impl is clean),
            ``not reproduced``, ``false alarm`` (the correct impl fails), ``replay
            diverged`` (the recorded schedule did not reproduce), or ``not mirrored``.
        reason: why, for every verdict but ``reproduced``; for ``reproduced`` with
            ``complete`` False, where the run left the path before the violation.
        path_length: actions in the model path.
        matched: actions the mutated run matched.
        complete: the mutated run matched every action (the violation appeared along the
            path itself, not after guidance gave up).
        mutated / correct: the two guided runs (None when not mirrored).
        schedule: the mutated run's schedule string ("" when not mirrored).
        replay: its replay line.
        replayed_prop: the property the schedule showed when rerun exactly.
    """

    flag: str
    expected: str
    verdict: str
    reason: str
    path_length: int
    matched: int
    complete: bool
    mutated: RunReport | None
    correct: RunReport | None
    schedule: str
    replay: str
    replayed_prop: str | None

    @property
    def ok(self) -> bool:
        return self.verdict == "reproduced"


def _report(out: RunOutcome, guide: GuidedStrategy | None, failed: Sequence[str]) -> RunReport:
    return RunReport(
        out.verdict, out.kind, outcome_prop(out, failed), out.message,
        guide.matched if guide is not None else 0, guide.divergence if guide is not None else "",
    )


def replay_model_schedule(schedule: str | Schedule, mutant: str | None = None) -> RunOutcome:
    """Rerun a ``model.*`` schedule exactly, under the catalogue mutant ``mutant``.

    Raises:
        InvalidScheduleError: a malformed string, or one that names no model program.
    """
    from ..mutation import resolve_mutant

    sched = schedule if isinstance(schedule, Schedule) else Schedule.parse(schedule)
    failed: list[str] = []
    program = model_program_by_name(sched.program, failed)
    if program is None:
        raise InvalidScheduleError(
            f"schedule names program {sched.program!r}, not a model.<flag>.<threads> program"
        )
    with resolve_mutant(mutant).apply():
        out = run_schedule(program, ReplayStrategy(sched.tokens), sched.memory)
    prop = outcome_prop(out, failed)
    # The program's own check (the busy loop) names its property as the monitors do.
    return out if prop is None or out.prop else dataclasses.replace(out, prop=prop)


def replay_model_path(flag: str, path: Sequence[Action] | None = None) -> ModelReplay:
    """Replay ``path`` (default: :func:`model.check_bug`'s shortest counterexample) on impl.

    The guided run with the catalogue mutant ``flag`` applied must show the property
    :data:`model.BUG_PROPERTY` names (LIVE: the scheduler's deadlock / lost wake-up or the
    liveness monitors); the guided run on the correct impl must pass; the mutated run's
    schedule, rerun exactly, must show the property again.

    Raises:
        FromModelError: ``flag`` is no model bug with a catalogue mutant, or ``path`` does
            not replay in the flag's configuration.
    """

    from ..mutation import mutant_by_name

    if flag not in MODEL_BUGS:
        raise FromModelError(f"unknown model bug {flag!r}; see model.MODEL_BUGS")
    mutant = mutant_by_name().get(flag)
    if mutant is None:
        raise FromModelError(f"model bug {flag!r} has no catalogue mutant to apply")
    config = bug_config(flag)
    if path is None:
        path = check_bug(flag).path
    expected = BUG_PROPERTY[flag]

    def skipped(reason: str) -> ModelReplay:
        return ModelReplay(flag, expected, "not mirrored", reason, len(path), 0, False,
                           None, None, "", "", None)

    try:
        _check_config(config)
        _client_ops(config, path)
    except NotMirroredError as e:
        return skipped(str(e))
    guide = guided_strategy(path)
    failed: list[str] = []
    program = program_for(config, path, flag=flag, guide=guide, failed=failed)
    with mutant.apply():
        guide.next_run()
        out = run_schedule(program, guide)
    mutated = _report(out, guide, failed)
    schedule = str(Schedule(program.name, program.memory, tuple(c.token for c in out.decisions)))
    cguide = guided_strategy(path)
    cfailed: list[str] = []
    cprogram = program_for(config, path, flag=flag, guide=cguide, failed=cfailed)
    cguide.next_run()
    correct = _report(run_schedule(cprogram, cguide), cguide, cfailed)
    rerun = replay_model_schedule(schedule, flag)
    replayed = _report(rerun, None, ()).prop
    if mutated.prop != expected:
        verdict = "not reproduced"
        reason = (f"the mutated run ended {mutated.verdict} {mutated.kind} "
                  f"({mutated.prop or 'no property'}), not {expected}; "
                  f"matched {mutated.matched}/{len(path)} {mutated.divergence}".rstrip())
    elif correct.verdict != "pass":
        verdict = "false alarm"
        reason = f"the correct impl ended {correct.verdict} {correct.kind}: {correct.message}"
    elif replayed != expected:
        verdict = "replay diverged"
        reason = f"the recorded schedule rerun showed {replayed}: {rerun.message}"
    else:
        verdict, reason = "reproduced", ""
        if mutated.matched < len(path):  # honest: the path was left before the violation
            reason = (f"the violation appeared after guidance stopped at {mutated.matched}/"
                      f"{len(path)}: {mutated.divergence}")
    return ModelReplay(
        flag, expected, verdict, reason, len(path), mutated.matched,
        mutated.matched == len(path), mutated, correct,
        schedule, replay_line(schedule, flag), replayed,
    )
