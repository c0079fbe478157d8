"""Hypothesis stateful searches: the single-thread lockstep machine (impl against the
sequential reference) and the multi-thread search on the controlled platform.  Their
kill-matrix hooks return :class:`aioctx_verify.stress.mutation.CheckOutcome`.
"""

from ._multi import (
    EXAMPLE_WORK,
    MAX_THREADS,
    Op,
    OpKind,
    OutcomeFailure,
    PreemptionStrategy,
    RunReport,
    Scenario,
    ThreadOp,
    preemption_points,
    program_for,
    random_scenario,
    real_checker,
    replay,
    run_controlled,
    run_real,
    scenarios,
    thread_ops,
)
from ._multi import SearchResult as MultiSearchResult
from ._multi import checker as multi_checker
from ._multi import search as search_multi
from ._single import (
    EFFECT_KINDS,
    MAX_BHS,
    MAX_NOTIFIERS,
    MAX_TIMERS,
    PROGRAM_WORK,
    Effects,
    Lockstep,
    LockstepFailure,
    LockstepMismatch,
    effects,
)
from ._single import SearchResult as SingleSearchResult
from ._single import checker as single_checker
from ._single import search as search_single

__all__ = [
    "EFFECT_KINDS",
    "EXAMPLE_WORK",
    "Effects",
    "Lockstep",
    "LockstepFailure",
    "LockstepMismatch",
    "MAX_BHS",
    "MAX_NOTIFIERS",
    "MAX_THREADS",
    "MAX_TIMERS",
    "Op",
    "PROGRAM_WORK",
    "OpKind",
    "OutcomeFailure",
    "PreemptionStrategy",
    "RunReport",
    "Scenario",
    "MultiSearchResult",
    "SingleSearchResult",
    "ThreadOp",
    "multi_checker",
    "single_checker",
    "effects",
    "preemption_points",
    "program_for",
    "random_scenario",
    "real_checker",
    "replay",
    "run_controlled",
    "run_real",
    "scenarios",
    "search_multi",
    "search_single",
    "thread_ops",
]
