"""Mutation testing: the catalogue of re-created historical QEMU concurrency bugs (each
applied to impl for one run by a checked source rewrite), the probe programs that exercise
them, and the kill matrix of every checker against every mutant.
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
from ._matrix import (
    BUDGETS,
    Checker,
    CheckOutcome,
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

__all__ = [
    "BUDGETS",
    "CATALOGUE",
    "CheckOutcome",
    "Checker",
    "Env",
    "KillMatrix",
    "Latch",
    "MatrixBudget",
    "Mutant",
    "MutantError",
    "NO_MUTANT",
    "PROBES",
    "Probe",
    "ProbeFailure",
    "UseAfterFree",
    "available_checkers",
    "kill_matrix",
    "mutant_by_name",
    "poison",
    "probe_program",
    "register_checker",
    "resolve_budget",
    "rewrite",
    "run_checker",
]
