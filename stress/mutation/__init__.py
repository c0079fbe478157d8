"""Mutation testing: the catalogue of re-created historical QEMU concurrency bugs (each
applied to impl for one run by a checked source rewrite), the probe programs that exercise
them, the kill matrix of every checker against every mutant, and the checker contract
(:class:`CheckOutcome`, :class:`MutantLike`, failures that carry their property).
"""

from ._catalogue import (
    CATALOGUE,
    NO_MUTANT,
    Mutant,
    MutantError,
    UseAfterFree,
    mutant_by_name,
    poison,
    rewrite,
)
from ._contract import (
    USAGE_ERRORS,
    WORK_UNIT_SECONDS,
    CellBudget,
    CheckOutcome,
    Inconclusive,
    MutantLike,
    PropertyFailure,
    Verdict,
    Via,
    as_property,
    classify_exception,
    property_of,
)
from ._evidence import pending_work, slowness, stuck_evidence
from ._matrix import (
    BUDGETS,
    PROPERTIES,
    Checker,
    KillMatrix,
    MatrixBudget,
    available_checkers,
    kill_matrix,
    register_checker,
    resolve_budget,
    run_checker,
)
from ._probes import (
    PROBES,
    Env,
    Latch,
    Probe,
    ProbeFailure,
    probe_program,
)
from ._replay import (
    ProbeRealReplay,
    ProbeReplay,
    replay_probe,
    replay_probe_real,
    resolve_mutant,
)

__all__ = [
    "ProbeRealReplay",
    "ProbeReplay",
    "replay_probe_real",
    "replay_probe",
    "resolve_mutant",
    "BUDGETS",
    "CATALOGUE",
    "CellBudget",
    "CheckOutcome",
    "Checker",
    "Env",
    "Inconclusive",
    "KillMatrix",
    "Latch",
    "MatrixBudget",
    "Mutant",
    "MutantError",
    "MutantLike",
    "NO_MUTANT",
    "PROBES",
    "PROPERTIES",
    "Probe",
    "ProbeFailure",
    "PropertyFailure",
    "USAGE_ERRORS",
    "UseAfterFree",
    "WORK_UNIT_SECONDS",
    "Verdict",
    "Via",
    "as_property",
    "available_checkers",
    "classify_exception",
    "kill_matrix",
    "mutant_by_name",
    "pending_work",
    "poison",
    "probe_program",
    "property_of",
    "register_checker",
    "resolve_budget",
    "rewrite",
    "run_checker",
    "slowness",
    "stuck_evidence",
]

# -- generated mutants: concurrency mutation operators over impl (aioctx-verify mutate) -----
from ._equivalent import EQUIVALENT
from ._operators import (
    CHECKER_ORDER,
    MUTATE_LIMITS,
    OPERATORS,
    GeneratedMutant,
    MutantRun,
    MutationReport,
    generate_mutants,
    generated_mutant,
    ordered_checkers,
    probe_coverage,
    probe_limit,
    probes_for,
    run_mutation,
    sample_mutants,
    sanity_check,
    stale_equivalents,
    stale_functions,
    stop_on_sigint,
)

__all__ += [
    "CHECKER_ORDER",
    "EQUIVALENT",
    "MUTATE_LIMITS",
    "OPERATORS",
    "GeneratedMutant",
    "MutantRun",
    "MutationReport",
    "generate_mutants",
    "generated_mutant",
    "ordered_checkers",
    "probe_coverage",
    "probe_limit",
    "probes_for",
    "run_mutation",
    "sample_mutants",
    "sanity_check",
    "stale_equivalents",
    "stale_functions",
    "stop_on_sigint",
]

from ._barriers import (  # noqa: E402 - the barrier audit builds on the operators above
    AUDIT_BUDGETS,
    AuditBudget,
    BarrierVerdict,
    audit_barriers,
    audit_summary,
    format_audit,
)

__all__ += [
    "AUDIT_BUDGETS",
    "AuditBudget",
    "BarrierVerdict",
    "audit_barriers",
    "audit_summary",
    "format_audit",
]
