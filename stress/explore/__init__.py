"""Exploration of programs on the controlled platform: :func:`explore` under a strategy,
:func:`shrink` toward the fewest preemptions, :func:`replay` of a schedule string, and the
built-in corpus of buggy and safe programs.
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
from ._lines import REPLAY_PREFIX, replay_line
from ._search import SearchAbandoned, SeededSearch

__all__ = [
    "Budget",
    "CORPUS",
    "ExploreResult",
    "REPLAY_PREFIX",
    "Failure",
    "Program",
    "SearchAbandoned",
    "SeededSearch",
    "_failure",
    "corpus_by_name",
    "explore",
    "format_trace",
    "replay",
    "replay_line",
    "run_schedule",
    "shrink",
]
