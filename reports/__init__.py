"""Reports: one campaign result object, three renderings, and a history with trends.

* :class:`CampaignResult` holds everything a campaign found (verdicts per property and
  checker, counterexamples with their traces, stress histograms, the mutant kill matrix,
  coverage, benchmarks, watchdog stacks); ``to_json`` / ``from_json`` write and read it,
  validated against the JSON schema shipped as ``reports/schema/result-v1.json``.
* :func:`write_reports` writes ``report.json``, ``junit.xml`` and one self-contained,
  offline ``report.html`` atomically, and appends the run to a history file (JSON Lines)
  whose trends and regressions the page draws.
* ``aioctx-verify report RESULT.json`` re-renders all three from the JSON.
"""

from ._errors import (
    HistoryError,
    InvalidResultError,
    ReportError,
    ReportWriteError,
    ResultFormatError,
)
from ._history import (
    HISTORY_FORMAT,
    HISTORY_VERSION,
    History,
    HistoryEntry,
    Regression,
    Trends,
    append_history,
    compute_trends,
    history_lock,
    read_history,
)
from ._html import render_html
from ._json import SCHEMA_FILE
from ._junit import render_junit
from ._result import (
    FORMAT,
    GRADES,
    PROPERTIES,
    PROPERTY_TITLES,
    SCHEMA_VERSION,
    VERDICTS,
    BarrierRow,
    Benchmark,
    CampaignBudget,
    CampaignResult,
    Counterexample,
    Coverage,
    Grade,
    Histogram,
    KillCell,
    KillMatrix,
    Machine,
    Mutant,
    ProofRow,
    PropertyName,
    ThreadStack,
    TraceStep,
    Verdict,
    VerdictValue,
    tool_version,
)
from ._sample import sample_result
from ._schema import load_schema
from ._write import HTML_NAME, JSON_NAME, JUNIT_NAME, ReportPaths, write_reports

__all__ = [
    "FORMAT",
    "GRADES",
    "HISTORY_FORMAT",
    "HISTORY_VERSION",
    "HTML_NAME",
    "JSON_NAME",
    "JUNIT_NAME",
    "PROPERTIES",
    "PROPERTY_TITLES",
    "SCHEMA_FILE",
    "SCHEMA_VERSION",
    "VERDICTS",
    "BarrierRow",
    "Benchmark",
    "CampaignBudget",
    "CampaignResult",
    "Counterexample",
    "Coverage",
    "Grade",
    "Histogram",
    "History",
    "HistoryEntry",
    "HistoryError",
    "InvalidResultError",
    "KillCell",
    "KillMatrix",
    "Machine",
    "Mutant",
    "ProofRow",
    "PropertyName",
    "Regression",
    "ReportError",
    "ReportPaths",
    "ReportWriteError",
    "ResultFormatError",
    "ThreadStack",
    "TraceStep",
    "Trends",
    "Verdict",
    "VerdictValue",
    "append_history",
    "compute_trends",
    "history_lock",
    "load_schema",
    "read_history",
    "render_html",
    "render_junit",
    "sample_result",
    "tool_version",
    "write_reports",
]
