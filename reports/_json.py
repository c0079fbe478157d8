"""The JSON rendering of :class:`CampaignResult`, and reading it back.

The document's shape is ``schema/result-v1.json`` (shipped in the package); reading checks
the ``format`` marker first (is this ours at all?), then ``schema_version`` (is it a version
this code reads?), then the whole schema, so each kind of bad input gets its own sentence.
Writing is strict JSON (no NaN), two-space indented, ASCII-only, ending with a newline.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import cast

from ._errors import InvalidResultError, ResultFormatError
from ._result import (
    FORMAT,
    SCHEMA_VERSION,
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
from ._schema import SchemaViolation, load_schema, validate

__all__ = [
    "SCHEMA_FILE",
    "parse_json",
    "result_from_dict",
    "result_from_json",
    "result_to_dict",
    "result_to_json",
]

SCHEMA_FILE = f"result-v{SCHEMA_VERSION}.json"

Json = dict[str, object]


def result_to_dict(r: CampaignResult) -> Json:
    b, m = r.budget, r.machine
    return {
        "format": FORMAT,
        "schema_version": r.schema_version,
        "tool_version": r.tool_version,
        "campaign": r.campaign,
        "budget": {"label": b.label, "schedules": b.schedules, "seconds": b.seconds},
        "seed": r.seed,
        "started_at": r.started_at.isoformat(),
        "seconds": r.seconds,
        "complete": r.complete,
        "machine": {
            "hostname": m.hostname,
            "system": m.system,
            "python": m.python,
            "cpu_count": m.cpu_count,
        },
        "verdicts": [
            {
                "property": v.property,
                "checker": v.checker,
                "verdict": v.verdict,
                "runs": v.runs,
                "seconds": v.seconds,
                "detail": v.detail,
            }
            for v in r.verdicts
        ],
        "counterexamples": [_cex(c) for c in r.counterexamples],
        "histograms": [
            {"workload": h.workload, "counts": dict(h.counts), "grades": dict(h.grades)}
            for h in r.histograms
        ],
        "kill_matrix": None if r.kill_matrix is None else _kill_matrix(r.kill_matrix),
        "coverage": None if r.coverage is None else _coverage(r.coverage),
        "benchmarks": [
            {
                "name": x.name,
                "ours": x.ours,
                "peer": x.peer,
                "ratio": x.ratio,
                "unit": x.unit,
                "target": x.target,
                "met": x.met,
            }
            for x in r.benchmarks
        ],
        "stacks": [{"thread": s.thread, "ident": s.ident, "stack": s.stack} for s in r.stacks],
        "proofs": [
            {
                "model": x.model,
                "memory": x.memory,
                "property": x.property,
                "verdict": x.verdict,
                "depth": x.depth,
                "seconds": x.seconds,
                "counterexample_steps": x.counterexample_steps,
                "detail": x.detail,
            }
            for x in r.proofs
        ],
        "barriers": [
            {"site": x.site, "change": x.change, "verdict": x.verdict, "memory": x.memory,
             "detail": x.detail}
            for x in r.barriers
        ],
        "shard_notes": list(r.shard_notes),
    }


def _cex(c: Counterexample) -> Json:
    return {
        "property": c.property,
        "checker": c.checker,
        "kind": c.kind,
        "message": c.message,
        "schedule": c.schedule,
        "seed": c.seed,
        "replay_command": c.replay_command,
        "steps": [
            {
                "index": s.index,
                "thread": s.thread,
                "thread_name": s.thread_name,
                "op": s.op,
                "obj": s.obj,
                "where": s.where,
            }
            for s in c.steps
        ],
        "failing_step": c.failing_step,
        "preemptions": c.preemptions,
    }


def _kill_matrix(k: KillMatrix) -> Json:
    return {
        "mutants": [
            {
                "name": m.name,
                "qemu_commit": m.qemu_commit,
                "property": m.property,
                "killed_by": list(m.killed_by),
                "seconds_to_kill": m.seconds_to_kill,
                "counterexample_steps": m.counterexample_steps,
                "cells": [
                    {
                        "checker": c.checker,
                        "killed": c.killed,
                        "seconds": c.seconds,
                        "steps": c.steps,
                    }
                    for c in m.cells
                ],
            }
            for m in k.mutants
        ],
        "false_alarms": k.false_alarms,
    }


def _coverage(c: Coverage) -> Json:
    return {
        "schedules": c.schedules,
        "distinct_traces": c.distinct_traces,
        "states": c.states,
        "max_preemptions": c.max_preemptions,
        "steps_per_second": c.steps_per_second,
        "schedules_per_second": c.schedules_per_second,
    }


def result_to_json(r: CampaignResult) -> str:
    return json.dumps(result_to_dict(r), indent=2, allow_nan=False, ensure_ascii=True) + "\n"


# -- reading --------------------------------------------------------------------------------


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def _strict_float(text: str) -> float:
    v = float(text)
    if v in (float("inf"), float("-inf")):
        raise ValueError(f"{text[:20]} is too large for a number")
    return v


def parse_json(text: str | bytes, *, source: str, what: str) -> object:
    """Strict JSON (no NaN/Infinity); any problem is a ResultFormatError naming ``source``."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ResultFormatError(
                f"{source} is not UTF-8 text (byte {e.start}); pass the {what} aioctx-verify wrote"
            ) from None
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_strict_float)
    except json.JSONDecodeError as e:
        raise ResultFormatError(
            f"{source} is not valid JSON (line {e.lineno} column {e.colno}: {e.msg}); "
            f"pass the {what} aioctx-verify wrote"
        ) from None
    except ValueError as e:
        raise ResultFormatError(f"{source} is not strict JSON ({e})") from None
    except RecursionError:
        raise ResultFormatError(f"{source} is nested too deeply to be a {what}") from None


def result_from_json(text: str | bytes, *, source: str = "result") -> CampaignResult:
    return result_from_dict(parse_json(text, source=source, what="report.json"), source=source)


def result_from_dict(data: object, *, source: str = "result") -> CampaignResult:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ResultFormatError(
            f'{source} is not an aioctx-verify result (it has no "format": "{FORMAT}" field); '
            "pass the report.json that aioctx-verify wrote"
        )
    version = data.get("schema_version")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        wrote = data.get("tool_version")
        by = f" (written by aioctx-verify {wrote})" if isinstance(wrote, str) else ""
        raise ResultFormatError(
            f"{source} has schema version {json.dumps(version)}{by} but aioctx-verify "
            f"{tool_version()} reads version {SCHEMA_VERSION}; re-render it with the "
            "aioctx-verify that wrote it"
        )
    try:
        validate(data, load_schema(SCHEMA_FILE))
        return _build(data)
    except SchemaViolation as e:
        raise ResultFormatError(
            f"{source} does not match result schema v{SCHEMA_VERSION}: {e}"
        ) from None
    except InvalidResultError as e:
        raise ResultFormatError(
            f"{source} does not match result schema v{SCHEMA_VERSION}: {e}"
        ) from None


def _parse_time(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise SchemaViolation("$.started_at", f"is not an ISO 8601 date-time: {text!r}") from None
    if t.utcoffset() is None:
        raise SchemaViolation("$.started_at", f"has no UTC offset: {text!r}")
    return t


# The schema has been checked before these run, so the casts below are facts.


def _int(v: object) -> int:
    return int(cast(float, v))


def _opt_int(v: object) -> int | None:
    return None if v is None else int(cast(float, v))


def _opt_num(v: object) -> float | None:
    return None if v is None else cast(float, v)


def _s(d: Json, k: str) -> str:
    return cast(str, d[k])


def _o(d: Json, k: str) -> Json:
    return cast(Json, d[k])


def _a(d: Json, k: str) -> list[Json]:
    return cast(list[Json], d.get(k, []))


def _build(d: Json) -> CampaignResult:
    b, m = _o(d, "budget"), _o(d, "machine")
    km = cast("Json | None", d["kill_matrix"])
    cov = cast("Json | None", d["coverage"])
    return CampaignResult(
        schema_version=_int(d["schema_version"]),
        tool_version=_s(d, "tool_version"),
        campaign=_s(d, "campaign"),
        budget=CampaignBudget(_s(b, "label"), _opt_int(b["schedules"]), _opt_num(b["seconds"])),
        seed=_int(d["seed"]),
        started_at=_parse_time(_s(d, "started_at")),
        seconds=cast(float, d["seconds"]),
        complete=cast(bool, d["complete"]),
        machine=Machine(
            _s(m, "hostname"), _s(m, "system"), _s(m, "python"), _int(m["cpu_count"])
        ),
        verdicts=tuple(
            Verdict(
                cast(PropertyName, v["property"]),
                _s(v, "checker"),
                cast(VerdictValue, v["verdict"]),
                _int(v["runs"]),
                cast(float, v["seconds"]),
                _s(v, "detail"),
            )
            for v in _a(d, "verdicts")
        ),
        counterexamples=tuple(_build_cex(c) for c in _a(d, "counterexamples")),
        histograms=tuple(
            Histogram(
                _s(h, "workload"),
                {k: _int(n) for k, n in _o(h, "counts").items()},
                cast(Mapping[str, Grade], _o(h, "grades")),
            )
            for h in _a(d, "histograms")
        ),
        kill_matrix=None if km is None else _build_kill_matrix(km),
        coverage=None
        if cov is None
        else Coverage(
            _int(cov["schedules"]),
            _int(cov["distinct_traces"]),
            _opt_int(cov["states"]),
            _int(cov["max_preemptions"]),
            cast(float, cov["steps_per_second"]),
            cast(float, cov["schedules_per_second"]),
        ),
        benchmarks=tuple(
            Benchmark(
                _s(x, "name"),
                _opt_num(x["ours"]),
                _opt_num(x["peer"]),
                _opt_num(x["ratio"]),
                _s(x, "unit"),
                _s(x, "target"),
                cast(bool, x["met"]),
            )
            for x in _a(d, "benchmarks")
        ),
        stacks=tuple(
            ThreadStack(_s(s, "thread"), _opt_int(s["ident"]), _s(s, "stack"))
            for s in _a(d, "stacks")
        ),
        proofs=tuple(
            ProofRow(
                _s(x, "model"), _s(x, "memory"), _s(x, "property"), _s(x, "verdict"),
                _int(x["depth"]), cast(float, x["seconds"]),
                _opt_int(x["counterexample_steps"]), _s(x, "detail"),
            )
            for x in _a(d, "proofs")
        ),
        barriers=tuple(
            BarrierRow(
                _s(x, "site"), _s(x, "change"), _s(x, "verdict"),
                None if x["memory"] is None else _s(x, "memory"), _s(x, "detail"),
            )
            for x in _a(d, "barriers")
        ),
        shard_notes=tuple(cast(list[str], d.get("shard_notes", []))),
    )


def _build_cex(c: Json) -> Counterexample:
    return Counterexample(
        property=cast(PropertyName, c["property"]),
        checker=_s(c, "checker"),
        kind=_s(c, "kind"),
        message=_s(c, "message"),
        schedule=cast("str | None", c["schedule"]),
        seed=_opt_int(c["seed"]),
        replay_command=cast("str | None", c["replay_command"]),
        steps=tuple(
            TraceStep(
                _int(s["index"]),
                _int(s["thread"]),
                _s(s, "thread_name"),
                _s(s, "op"),
                _s(s, "obj"),
                _s(s, "where"),
            )
            for s in _a(c, "steps")
        ),
        failing_step=_opt_int(c["failing_step"]),
        preemptions=_opt_int(c["preemptions"]),
    )


def _build_kill_matrix(k: Json) -> KillMatrix:
    return KillMatrix(
        mutants=tuple(
            Mutant(
                name=_s(m, "name"),
                qemu_commit=_s(m, "qemu_commit"),
                property=cast(PropertyName, m["property"]),
                killed_by=tuple(cast(list[str], m["killed_by"])),
                seconds_to_kill=_opt_num(m["seconds_to_kill"]),
                counterexample_steps=_opt_int(m["counterexample_steps"]),
                cells=tuple(
                    KillCell(
                        _s(c, "checker"),
                        cast(bool, c["killed"]),
                        _opt_num(c["seconds"]),
                        _opt_int(c["steps"]),
                    )
                    for c in _a(m, "cells")
                ),
            )
            for m in _a(k, "mutants")
        ),
        false_alarms=_int(k["false_alarms"]),
    )
