"""Exploration of programs on the controlled platform: :func:`explore` under a strategy,
:func:`shrink` toward the fewest preemptions, :func:`replay` of a schedule string, and the
built-in corpus of buggy and safe programs; :func:`search_generated` over seeded generated
programs that use impl's whole public API (:func:`generate`), shrunk to a minimal program and
schedule, replayed from a ``gen:`` spec (:func:`replay_generated`).
"""

from ._corpus import (
    CORPUS,
    corpus_by_name,
)
from ._explore import (
    Budget,
    ExploreResult,
    Failure,
    Program,
    _failure,
    explore,
    format_trace,
    replay,
    run_schedule,
    shrink,
)
from ._from_model import (
    FromModelError,
    ModelReplay,
    NotMirroredError,
    guided_strategy,
    program_for,
    replay_model_path,
    replay_model_schedule,
)
from ._gen_ops import GenProgram, OpKind, generate
from ._gen_run import OracleFailure, generated_program
from ._generated import (
    GEN_BUDGETS,
    MEMORIES,
    STRATEGIES,
    GenBudget,
    GenFailure,
    GenReplay,
    GenSearchResult,
    RealRunReport,
    parse_gen_spec,
    program_by_name,
    replay_generated,
    run_real,
    search_generated,
    shrink_found,
    shrink_program,
)
from ._lines import REPLAY_PREFIX, replay_line
from ._search import SearchAbandoned, SeededSearch

__all__ = [
    "Budget",
    "CORPUS",
    "ExploreResult",
    "GEN_BUDGETS",
    "MEMORIES",
    "STRATEGIES",
    "FromModelError",
    "GenBudget",
    "GenFailure",
    "GenProgram",
    "GenReplay",
    "GenSearchResult",
    "ModelReplay",
    "NotMirroredError",
    "OpKind",
    "OracleFailure",
    "RealRunReport",
    "REPLAY_PREFIX",
    "Failure",
    "Program",
    "SearchAbandoned",
    "SeededSearch",
    "_failure",
    "corpus_by_name",
    "explore",
    "format_trace",
    "generate",
    "guided_strategy",
    "program_for",
    "replay_model_path",
    "replay_model_schedule",
    "generated_program",
    "parse_gen_spec",
    "program_by_name",
    "replay",
    "replay_generated",
    "replay_line",
    "run_real",
    "run_schedule",
    "search_generated",
    "shrink_found",
    "shrink",
    "shrink_program",
]
