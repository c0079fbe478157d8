"""reports/: the result object, its JSON (schema checked), JUnit XML, HTML, atomic writes,
the history with its regressions, and ``aioctx-verify report``."""

from __future__ import annotations

import copy
import dataclasses
import errno
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioctx_verify import reports
from aioctx_verify.cli import main
from aioctx_verify.reports import (
    PROPERTIES,
    SCHEMA_VERSION,
    CampaignBudget,
    CampaignResult,
    Counterexample,
    Coverage,
    Histogram,
    HistoryEntry,
    HistoryError,
    KillCell,
    KillMatrix,
    Machine,
    Mutant,
    ReportWriteError,
    ResultFormatError,
    TraceStep,
    Verdict,
    compute_trends,
    read_history,
    render_html,
    render_junit,
    sample_result,
    write_reports,
)
from aioctx_verify.reports._schema import SUPPORTED_KEYWORDS, SchemaViolation, load_schema, validate

ROOT = Path(__file__).resolve().parent.parent
DAY0 = datetime(2025, 11, 1, 2, 0, tzinfo=timezone.utc)


def day(n: int) -> datetime:
    return DAY0 + timedelta(days=n)


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file in ``directory`` (hidden ones too), name -> bytes."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def temp_files(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


# -- the result object and its JSON -------------------------------------------------------


@pytest.mark.parametrize("failing", [True, False])
def test_round_trip_result_json_result(failing: bool) -> None:
    r = sample_result(failing=failing)
    text = r.to_json()
    assert CampaignResult.from_json(text) == r
    assert CampaignResult.from_dict(json.loads(text)) == r
    assert json.loads(text) == r.to_dict()
    assert text.endswith("\n") and text.isascii()


def test_result_figures_and_summary() -> None:
    r = sample_result()
    assert not r.holds
    assert [(v.property, v.checker) for v in r.failed] == [("P2", "random"), ("P2", "pct")]
    assert r.summary() == "P2 fails (random, pct)"
    assert r.kill_rate == pytest.approx(4 / 5)
    assert r.throughput == 182_500.0
    assert r.checkers == ("monitor", "random", "pct", "dfs")
    ok = sample_result(failing=False)
    assert ok.holds
    assert ok.summary() == "all checked properties hold (LIVE inconclusive under some checker)"
    interrupted = dataclasses.replace(ok, complete=False)
    assert interrupted.summary().endswith("the campaign was interrupted, results are partial")


def test_constructor_rejects_bad_values_naming_the_field() -> None:
    with pytest.raises(reports.InvalidResultError, match=r"^Verdict.verdict must be one of"):
        Verdict("P1", "pct", "maybe", 1, 1.0)  # type: ignore[arg-type]
    with pytest.raises(reports.InvalidResultError, match=r"^Verdict.seconds must be a finite"):
        Verdict("P1", "pct", "pass", 1, float("nan"))
    with pytest.raises(reports.InvalidResultError, match="only 1 steps"):
        Counterexample("P1", "pct", "k", "m", None, None, None,
                       (TraceStep(0, 0, "main", "op", "obj", "f.py:1"),), failing_step=1)
    r = sample_result()
    with pytest.raises(reports.InvalidResultError, match="two verdicts for P1 / pct"):
        dataclasses.replace(r, verdicts=(*r.verdicts, Verdict("P1", "pct", "pass", 1, 1.0)))
    with pytest.raises(reports.InvalidResultError, match="timezone-aware"):
        dataclasses.replace(r, started_at=datetime(2025, 1, 1))


def test_counterexample_from_a_real_exploration_failure() -> None:
    from aioctx_verify._campaign import counterexample_of
    from aioctx_verify.stress import Budget, corpus_by_name, explore

    prog = corpus_by_name()["lost_update"]
    res = explore(prog, strategy="random", budget=Budget(schedules=300, seconds=20), seed=1)
    assert res.failure is not None
    c = counterexample_of(res.failure, property="P2", checker="random", seed=1)
    assert c.schedule == res.failure.schedule
    assert c.replay_command == f"aioctx-verify replay '{res.failure.schedule}'"
    assert len(c.steps) == len(res.failure.trace)
    assert {s.thread_name for s in c.steps} <= set(res.failure.thread_names)
    assert c.failing_position == len(c.steps) - 1


# -- the shipped schema -------------------------------------------------------------------


def _keywords(schema: object, out: set[str]) -> set[str]:
    if isinstance(schema, dict):
        for k, v in schema.items():
            if k in ("properties", "$defs"):
                for sub in v.values():
                    _keywords(sub, out)
            else:
                out.add(k)
                _keywords(v, out)
    elif isinstance(schema, list):
        for v in schema:
            _keywords(v, out)
    return out


@pytest.mark.parametrize("name", ["result-v1.json", "history-v1.json"])
def test_schema_is_shipped_and_uses_only_what_the_validator_supports(name: str) -> None:
    schema_dir = files("aioctx_verify.reports").joinpath("schema")
    text = schema_dir.joinpath(name).read_text(encoding="utf-8")
    schema = json.loads(text)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].startswith("urn:aioctx-verify:schema:")
    assert _keywords(schema, set()) <= SUPPORTED_KEYWORDS


def test_result_schema_version_matches_the_code() -> None:
    schema = load_schema("result-v1.json")
    assert f"result-v{SCHEMA_VERSION}.json" == reports.SCHEMA_FILE
    assert schema["properties"]["schema_version"] == {"const": SCHEMA_VERSION}
    assert schema["properties"]["format"]["const"] == reports.FORMAT
    optional = {"benchmarks", "stacks", "proofs", "barriers", "shard_notes"}
    assert set(schema["required"]) | optional == set(schema["properties"])
    # Every field the writer emits is in the schema, and every enum matches the code.
    assert set(sample_result().to_dict()) == set(schema["properties"])
    assert schema["$defs"]["property"]["enum"] == list(PROPERTIES)
    assert schema["$defs"]["verdict"]["properties"]["verdict"]["enum"] == list(reports.VERDICTS)


def test_schema_checked_by_jsonschema_when_installed() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    for name in ("result-v1.json", "history-v1.json"):
        jsonschema.Draft202012Validator.check_schema(load_schema(name))
    v = jsonschema.Draft202012Validator(load_schema("result-v1.json"))
    for failing in (True, False):
        v.validate(sample_result(failing=failing).to_dict())


GOLDEN_REJECTIONS = [
    (
        lambda d: d["budget"].pop("label"),
        'x.json does not match result schema v1: $.budget lacks the required field "label"',
    ),
    (
        lambda d: d.pop("verdicts"),
        'x.json does not match result schema v1: $ lacks the required field "verdicts"',
    ),
    (
        lambda d: d.update(schema_version=2),
        "x.json has schema version 2 (written by aioctx-verify 0.1.0) but aioctx-verify "
        f"{reports.tool_version()} reads version 1; re-render it with the aioctx-verify that "
        "wrote it",
    ),
    (
        lambda d: d["verdicts"][3].update(verdict="maybe"),
        "x.json does not match result schema v1: $.verdicts[3].verdict must be one of "
        '"pass", "fail", "inconclusive", "skipped", not "maybe"',
    ),
    (
        lambda d: d["coverage"].update(states=-1),
        "x.json does not match result schema v1: $.coverage.states must be >= 0, not -1",
    ),
    (
        lambda d: d.update(seed="1234"),
        "x.json does not match result schema v1: $.seed must be an integer, not a string",
    ),
    (
        lambda d: d["machine"].update(cpus=8),
        'x.json does not match result schema v1: $.machine has an unknown field "cpus" '
        "(allowed: hostname, system, python, cpu_count)",
    ),
    (
        lambda d: d.update(started_at="yesterday"),
        "x.json does not match result schema v1: $.started_at is not an ISO 8601 date-time: "
        "'yesterday'",
    ),
    (
        lambda d: d.pop("format"),
        'x.json is not an aioctx-verify result (it has no "format": "aioctx-verify/result" '
        "field); pass the report.json that aioctx-verify wrote",
    ),
]


@pytest.mark.parametrize(("mutate", "message"), GOLDEN_REJECTIONS)
def test_schema_rejects_with_one_clear_sentence(mutate: Any, message: str) -> None:
    doc = sample_result().to_dict()
    mutate(doc)
    with pytest.raises(ResultFormatError) as info:
        CampaignResult.from_json(json.dumps(doc), source="x.json")
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "x.json is not valid JSON (line 1 column 2: Expecting property name enclosed in "
              "double quotes); pass the report.json aioctx-verify wrote"),
        ('{"a": NaN}', "x.json is not strict JSON (NaN is not a JSON number)"),
        ("[" * 100_000, "x.json is nested too deeply to be a report.json"),
        (b"\xff\xfe",
         "x.json is not UTF-8 text (byte 0); pass the report.json aioctx-verify wrote"),
        ('{"benchmarks": []}', 'x.json is not an aioctx-verify result (it has no "format": '
                               '"aioctx-verify/result" field); pass the report.json that '
                               "aioctx-verify wrote"),
    ],
)
def test_not_json_or_not_ours(text: str | bytes, message: str) -> None:
    with pytest.raises(ResultFormatError) as info:
        CampaignResult.from_json(text, source="x.json")
    assert str(info.value) == message


# -- Hypothesis: random results round-trip and render; random JSON never escapes -----------

_text = st.text(max_size=12)
_nonneg = st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False)
_steps = st.lists(
    st.builds(
        TraceStep,
        index=st.integers(0, 10**6),
        thread=st.integers(0, 4),
        thread_name=_text,
        op=_text,
        obj=_text,
        where=_text,
    ),
    max_size=6,
).map(tuple)


def _cex(steps: tuple[TraceStep, ...]) -> st.SearchStrategy[Counterexample]:
    return st.builds(
        Counterexample,
        property=st.sampled_from(PROPERTIES),
        checker=_text,
        kind=_text,
        message=st.text(max_size=40),
        schedule=st.none() | _text,
        seed=st.none() | st.integers(),
        replay_command=st.none() | _text,
        steps=st.just(steps),
        failing_step=st.none() | (st.integers(0, len(steps) - 1) if steps else st.none()),
        preemptions=st.none() | st.integers(0, 100),
    )


_verdict = st.builds(
    Verdict,
    property=st.sampled_from(PROPERTIES),
    checker=st.sampled_from(["monitor", "random", "pct", "dfs", "x<y>&\"z\""]) | _text,
    verdict=st.sampled_from(reports.VERDICTS),
    runs=st.integers(0, 10**9),
    seconds=_nonneg,
    detail=st.text(max_size=30),
)
_mutant = st.builds(
    Mutant,
    name=_text,
    qemu_commit=_text,
    property=st.sampled_from(PROPERTIES),
    killed_by=st.lists(_text, max_size=3).map(tuple),
    seconds_to_kill=st.none() | _nonneg,
    counterexample_steps=st.none() | st.integers(0, 10**6),
    cells=st.lists(
        st.builds(KillCell, checker=_text, killed=st.booleans(),
                  seconds=st.none() | _nonneg, steps=st.none() | st.integers(0, 10**6)),
        max_size=3,
    ).map(tuple),
)
results = st.builds(
    CampaignResult,
    tool_version=_text,
    campaign=_text,
    budget=st.builds(CampaignBudget, label=_text, schedules=st.none() | st.integers(0, 10**9),
                     seconds=st.none() | _nonneg),
    seed=st.integers(),
    started_at=st.datetimes(
        timezones=st.integers(-12, 14).map(lambda h: timezone(timedelta(hours=h)))
    ),
    seconds=_nonneg,
    complete=st.booleans(),
    machine=st.builds(Machine, hostname=_text, system=_text, python=_text,
                      cpu_count=st.integers(0, 4096)),
    verdicts=st.lists(_verdict, max_size=8, unique_by=lambda v: (v.property, v.checker)).map(
        tuple
    ),
    counterexamples=st.lists(_steps.flatmap(_cex), max_size=2).map(tuple),
    histograms=st.lists(
        st.builds(
            Histogram,
            workload=_text,
            counts=st.dictionaries(_text, st.integers(0, 10**9), max_size=4),
            grades=st.dictionaries(_text, st.sampled_from(reports.GRADES), max_size=4),
        ),
        max_size=2,
    ).map(tuple),
    kill_matrix=st.none() | st.builds(
        KillMatrix, mutants=st.lists(_mutant, max_size=3).map(tuple),
        false_alarms=st.integers(0, 100)
    ),
    coverage=st.none() | st.builds(
        Coverage,
        schedules=st.integers(0, 10**9),
        distinct_traces=st.integers(0, 10**9),
        states=st.none() | st.integers(0, 10**9),
        max_preemptions=st.integers(0, 100),
        steps_per_second=_nonneg,
        schedules_per_second=_nonneg,
    ),
    benchmarks=st.lists(
        st.builds(
            reports.Benchmark,
            name=_text,
            ours=st.none() | st.floats(allow_nan=False, allow_infinity=False),
            peer=st.none() | st.floats(allow_nan=False, allow_infinity=False),
            ratio=st.none() | st.floats(allow_nan=False, allow_infinity=False),
            unit=_text,
            target=_text,
            met=st.booleans(),
        ),
        max_size=2,
    ).map(tuple),
    stacks=st.lists(
        st.builds(reports.ThreadStack, thread=_text, ident=st.none() | st.integers(),
                  stack=st.text(max_size=60)),
        max_size=2,
    ).map(tuple),
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(results)
def test_any_result_round_trips_and_renders(r: CampaignResult) -> None:
    text = r.to_json()
    assert CampaignResult.from_json(text) == r
    root = ET.fromstring(render_junit(r).encode("utf-8"))
    cases = root.findall(".//testcase")
    mutants = len(r.kill_matrix.mutants) if r.kill_matrix else 0
    assert len(cases) == len(r.verdicts) + mutants
    entry = HistoryEntry.from_result(r)
    trends = compute_trends((dataclasses.replace(entry, started_at="earlier"),), entry, source="h")
    for page in (render_html(r), render_html(r, trends, history_error="<bad>")):
        assert not re.search(r"https?://", page)
        assert "<script" not in page and "<bad>" not in page


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda kids: st.lists(kids, max_size=4)
    | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=20,
)


@given(_json_values)
def test_from_json_of_random_json_raises_only_the_named_error(value: object) -> None:
    for doc in (value, {"format": reports.FORMAT, "schema_version": 1, "x": value}):
        try:
            CampaignResult.from_json(json.dumps(doc), source="fuzz.json")
        except ResultFormatError as e:
            assert "\n" not in str(e) and str(e).startswith("fuzz.json ")


def _paths(doc: object, prefix: tuple[object, ...] = ()) -> Iterator[tuple[object, ...]]:
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, (*prefix, i))


_SAMPLE_DOC = sample_result().to_dict()
_SAMPLE_PATHS = [p for p in _paths(_SAMPLE_DOC) if p]


def _mutated(doc: dict[str, Any], path: tuple[object, ...], action: str, value: object) -> Any:
    out = copy.deepcopy(doc)
    parent: Any = out
    for k in path[:-1]:
        parent = parent[k]
    last: Any = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "add" and isinstance(parent[last], dict):
        parent[last]["unexpected"] = value
    else:
        parent[last] = value
    return out


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(_SAMPLE_PATHS),
    st.sampled_from(["delete", "replace", "add"]),
    _json_values,
)
def test_from_json_of_mutated_results_never_escapes_and_agrees_with_jsonschema(
    path: tuple[object, ...], action: str, value: object
) -> None:
    doc = _mutated(_SAMPLE_DOC, path, action, value)
    text = json.dumps(doc)
    try:
        r = CampaignResult.from_json(text, source="fuzz.json")
    except ResultFormatError as e:
        assert "\n" not in str(e) and str(e).startswith("fuzz.json ")
    else:
        assert CampaignResult.from_json(r.to_json()) == r
    try:
        import jsonschema
    except ImportError:
        return
    ours_ok = True
    try:
        validate(doc, load_schema("result-v1.json"))
    except SchemaViolation:
        ours_ok = False
    theirs_ok = jsonschema.Draft202012Validator(load_schema("result-v1.json")).is_valid(doc)
    assert ours_ok == theirs_ok, (path, action, value)


# -- JUnit XML ----------------------------------------------------------------------------


def test_junit_one_case_per_property_checker_and_per_mutant() -> None:
    r = sample_result()
    root = ET.fromstring(render_junit(r).encode("utf-8"))
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"properties", "mutants"}
    props, muts = suites["properties"], suites["mutants"]
    assert len(props.findall("testcase")) == 16 == int(props.get("tests", ""))
    assert len(muts.findall("testcase")) == 5
    assert root.get("tests") == "21"
    assert root.get("failures") == "3"  # P2/random, P2/pct, iothread-stop-flag survived
    assert props.get("failures") == "2" and props.get("skipped") == "2"

    case = props.find("testcase[@name='P2 [pct]']")
    assert case is not None and case.get("classname") == "aioctx_verify.P2"
    values = {p.get("name"): p.get("value") for p in case.iterfind("properties/property")}
    assert values["schedule"] == "v1:bh_pingpong:sc:0*2,1*2,0,2*2,1*2"
    assert values["seed"] == "1234"
    assert values["replay"] == "aioctx-verify replay 'v1:bh_pingpong:sc:0*2,1*2,0,2*2,1*2'"
    failure = case.find("failure")
    assert failure is not None and failure.get("type") == "lost_wakeup"
    assert "P2 schedule-not-lost" in (failure.get("message") or "")
    assert ">>    8  Thread 1 (io0)" in (failure.text or "")
    assert "replay: aioctx-verify replay" in (case.findtext("system-out") or "")

    # fail without a counterexample still fails, inconclusive and skipped are <skipped>
    random_case = props.find("testcase[@name='P2 [random]']")
    assert random_case is not None and random_case.find("failure") is not None
    live = props.find("testcase[@name='LIVE [dfs]']")
    assert live is not None
    skipped = live.find("skipped")
    assert skipped is not None
    assert skipped.get("message") == "inconclusive: every run hit the step budget"

    survivor = muts.find("testcase[@name='iothread-stop-flag']")
    assert survivor is not None and survivor.find("failure") is not None
    mvalues = {p.get("name"): p.get("value") for p in survivor.iterfind("properties/property")}
    assert mvalues["qemu_commit"] == "2362a28ea1" and mvalues["seed"] == "1234"
    killed = muts.find("testcase[@name='bh-ctx-uaf']")
    assert killed is not None and killed.find("failure") is None


def test_junit_survives_control_characters_and_markup() -> None:
    r = sample_result()
    nasty = "a\x00b\x1b[31m</failure><x>&amp;\ud800"
    c = dataclasses.replace(r.counterexamples[0], message=nasty)
    root = ET.fromstring(render_junit(dataclasses.replace(r, counterexamples=(c,))))
    case = root.find(".//testcase[@name='P2 [pct]']")
    assert case is not None
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("message") == "a\\x00b\\x1b[31m</failure><x>&amp;\\xd800"


# -- HTML -----------------------------------------------------------------------------------


def test_html_has_the_key_elements() -> None:
    page = render_html(sample_result())
    assert page.startswith("<!DOCTYPE html>")
    assert '<header class="banner fail" id="summary"><h1>\u2717 P2 fails</h1>' in page
    for section in ("verdicts", "counterexamples", "histograms", "kill-matrix", "proofs",
                    "coverage", "trends", "benchmarks", "stacks"):
        assert f'<section id="{section}"' in page, section
    # the prover's verdicts and the barrier audit
    assert '<td>LIVE</td><td class="k-no">refuted</td>' in page and "deadlock" in page
    assert '<h3 id="barriers">Barrier audit</h3>' in page
    assert '<td class="k-yes">necessary</td><td>c11</td>' in page
    # swimlanes: a grid with one column per thread (plus the step column), the broken step
    assert "grid-template-columns:3.5em repeat(3, minmax(15em, 1fr))" in page
    assert page.count('class="head"') == 4
    assert '<div class="step broke" style="grid-row:10;grid-column:3">' in page
    assert "\u2717 P2 broke here" in page
    assert ('<code class="cmd">aioctx-verify replay &#x27;v1:bh_pingpong:sc:0*2,1*2,0,2*2,1*2'
            "&#x27;</code>") in page
    assert page.count('<svg class="bars"') == 2
    assert "iothread-stop-flag" in page and '<td class="k-no">survived</td>' in page
    assert "Kill rate 4/5 (80%)" in page


def test_html_is_offline_and_escaped() -> None:
    r = sample_result()
    evil = '<script>alert("x")</script> & <img src=https://example.com/x.png>'
    steps = tuple(dataclasses.replace(s, thread_name=evil) for s in r.counterexamples[0].steps)
    c = dataclasses.replace(r.counterexamples[0], message=evil, steps=steps)
    page = render_html(dataclasses.replace(r, counterexamples=(c,), campaign=evil))
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    # no network: no element loads or links anything outside the page ...
    tags = _tags(page)
    assert {t for t, _ in tags} <= SAFE_TAGS, {t for t, _ in tags} - SAFE_TAGS
    links = [v for _, attrs in tags for k, v in attrs if k in ("src", "href", "action")]
    assert links and all(v.startswith("#") for v in links), links
    # ... no CSS fetches anything, and the page forbids fetching anyway
    assert "url(" not in page and "@import" not in page
    assert "default-src 'none'" in page
    clean = render_html(sample_result())
    assert "http://" not in clean and "https://" not in clean


SAFE_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "p", "b",
    "a", "dl", "div", "dt", "dd", "nav", "main", "section", "table", "thead", "tbody", "tfoot",
    "tr", "th", "td", "small", "br", "article", "code", "span", "figure", "figcaption", "i",
    "svg", "g", "text", "rect", "line", "polyline", "circle", "ul", "li", "details",
    "summary", "pre", "footer",
}


def _tags(page: str) -> list[tuple[str, list[tuple[str, str]]]]:
    from html.parser import HTMLParser

    found: list[tuple[str, list[tuple[str, str]]]] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append((tag, [(k, v or "") for k, v in attrs]))

    Collect().feed(page)
    return found


def test_html_passing_and_interrupted_banners() -> None:
    ok = sample_result(failing=False)
    page = render_html(ok)
    assert '<header class="banner warn" id="summary"><h1>\u2713 All properties hold</h1>' in page
    assert "inconclusive: LIVE / dfs" in page
    assert 'id="counterexamples"' not in page
    strict_ok = dataclasses.replace(
        ok, verdicts=tuple(v for v in ok.verdicts if v.verdict == "pass")
    )
    assert '<header class="banner pass"' in render_html(strict_ok)
    cut = render_html(dataclasses.replace(strict_ok, complete=False))
    assert '<header class="banner warn"' in cut and "The campaign was interrupted" in cut


# -- atomic writes --------------------------------------------------------------------------


def test_write_reports_writes_three_files(tmp_path: Path) -> None:
    paths = write_reports(sample_result(), tmp_path / "out")
    assert [p.name for p in paths] == ["report.json", "junit.xml", "report.html"]
    assert CampaignResult.from_json(paths.json.read_bytes()) == sample_result()
    ET.parse(paths.junit)
    assert paths.html.read_text(encoding="utf-8").endswith("</html>\n")
    assert paths.history is None and not paths.appended
    mode = paths.html.stat().st_mode & 0o777
    assert mode & 0o044 == 0o044 & ~_umask(), oct(mode)  # not mkstemp's 0600


def _umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


@pytest.mark.parametrize("where", ["replace", "fsync"])
def test_a_failed_write_leaves_the_previous_reports_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    out = tmp_path / "out"
    history = tmp_path / "history.jsonl"
    write_reports(sample_result(failing=False), out, history)
    before, hist_before = snapshot(out), history.read_bytes()

    def disk_full(*_args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, where, disk_full)
    with pytest.raises(ReportWriteError) as info:
        write_reports(sample_result(started_at=day(3)), out, history)
    monkeypatch.undo()
    assert str(info.value) == (
        f"cannot write {out / 'report.json'} (No space left on device); the previous "
        "report.json is untouched"
    )
    assert snapshot(out) == before
    assert temp_files(out) == [] and temp_files(tmp_path) == []
    assert history.read_bytes() == hist_before


def test_a_failed_history_append_leaves_history_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = tmp_path / "history.jsonl"
    write_reports(sample_result(failing=False), tmp_path / "out", history)
    hist_before = history.read_bytes()
    real_replace = os.replace

    def replace(src: str, dst: str | Path) -> None:
        if Path(dst) == history:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(ReportWriteError, match="cannot append to history file"):
        write_reports(sample_result(started_at=day(3)), tmp_path / "out", history)
    assert history.read_bytes() == hist_before
    assert temp_files(tmp_path) == []


def test_a_real_file_size_limit_fails_cleanly_through_the_cli(tmp_path: Path) -> None:
    """No monkeypatching: the kernel refuses the write (RLIMIT_FSIZE, EFBIG) half-way."""
    resource = pytest.importorskip("resource")
    out = tmp_path / "out"
    write_reports(sample_result(failing=False), out)
    before = snapshot(out)
    big = sample_result()
    steps = tuple(
        TraceStep(i, i % 3, f"t{i % 3}", "load", f"cell{i}", f"impl/_context.py:{i} (f)")
        for i in range(3000)
    )
    big = dataclasses.replace(
        big, counterexamples=(dataclasses.replace(big.counterexamples[0], steps=steps,
                                                  failing_step=None),)
    )
    src = tmp_path / "big.json"
    src.write_text(big.to_json())
    limit = 64 * 1024
    assert len(src.read_bytes()) > 4 * limit

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(
        [sys.executable, "-m", "aioctx_verify.cli", "report", str(src), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit_file_size,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        cwd=ROOT,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        f"aioctx-verify: error: cannot write {out / 'report.json'} (File too large); the "
        "previous report.json is untouched\n"
    )
    assert snapshot(out) == before
    assert temp_files(out) == []


_KILL_CHILD = textwrap.dedent(
    """
    import dataclasses, sys
    from pathlib import Path
    from aioctx_verify.reports import TraceStep, sample_result, write_reports
    base = sample_result()
    steps = tuple(TraceStep(i, i % 3, "t", "load", "x" * 40, "f.py:1") for i in range(4000))
    cex = dataclasses.replace(base.counterexamples[0], steps=steps, failing_step=None)
    versions = [dataclasses.replace(base, campaign=f"v{i}", counterexamples=(cex,))
                for i in range(2)]
    out, history = Path(sys.argv[1]), Path(sys.argv[2])
    print("ready", flush=True)
    n = 0
    while True:
        r = dataclasses.replace(versions[n % 2], seed=n)
        write_reports(r, out, history)
        n += 1
    """
)


def test_kill_9_at_any_moment_leaves_whole_reports(tmp_path: Path) -> None:
    out, history = tmp_path / "out", tmp_path / "history.jsonl"
    for attempt, delay in enumerate((0.15, 0.3, 0.45, 0.6, 0.75)):
        child = subprocess.Popen(
            [sys.executable, "-c", _KILL_CHILD, str(out), str(history)],
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        try:
            assert child.stdout is not None and child.stdout.readline() == b"ready\n"
            time.sleep(delay)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
        if not (out / "report.html").exists():
            continue
        r = CampaignResult.from_json((out / "report.json").read_bytes())
        assert r.campaign in ("v0", "v1")
        root = ET.parse(out / "junit.xml").getroot()
        assert root.get("name") in ("aioctx-verify: v0", "aioctx-verify: v1")
        page = (out / "report.html").read_text(encoding="utf-8")
        assert page.endswith("</html>\n"), attempt
        entries = read_history(history).entries  # whole and valid after every kill
        assert len({e.key for e in entries}) == len(entries)
    # What a kill can leave is at most one stray temporary file per target, never a
    # damaged report; the next write is unaffected by them.
    for name in temp_files(out):
        assert re.fullmatch(r"\.(report\.json|junit\.xml|report\.html)\..+\.tmp", name)
    assert (out / "report.json").exists(), "the writer never completed a report in 0.75 s"


# -- history, trends and regressions ---------------------------------------------------------


def test_history_appends_and_a_rerender_appends_nothing(tmp_path: Path) -> None:
    history = tmp_path / "sub" / "history.jsonl"
    p1 = write_reports(sample_result(failing=False, started_at=day(0)), tmp_path / "o", history)
    p2 = write_reports(sample_result(failing=False, started_at=day(1)), tmp_path / "o", history)
    assert p1.appended and p2.appended
    lines = history.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["format"] == "aioctx-verify/history" and header["version"] == 1
    assert len(lines) == 3
    first = history.read_bytes()
    p3 = write_reports(sample_result(failing=False, started_at=day(1)), tmp_path / "o", history)
    assert not p3.appended and history.read_bytes() == first
    entries = read_history(history).entries
    assert [e.started_at for e in entries] == [day(0).isoformat(), day(1).isoformat()]
    assert entries[1] == HistoryEntry.from_result(sample_result(failing=False, started_at=day(1)))
    assert entries[1].verdict("LIVE", "dfs") == "inconclusive"
    assert entries[1].kill_rate == pytest.approx(0.8) and entries[1].throughput == 182_500.0


def test_an_empty_history_file_is_a_new_history(tmp_path: Path) -> None:
    history = tmp_path / "h.jsonl"
    history.touch()
    assert write_reports(sample_result(), tmp_path / "o", history).appended
    assert len(read_history(history).entries) == 1


CORRUPT = [
    (b"\x00\x01garbage\xff", "is not UTF-8 text, so not ours"),
    (b"this is not json\n", "is not an aioctx-verify history (a file of another tool: its "
                            'first line is not the {"format": "aioctx-verify/history"} header)'),
    (json.dumps({"benchmarks": [{"name": "x"}]}, indent=2).encode(),
     "is not an aioctx-verify history (a JSON file of another tool: its first line is not "
     'the {"format": "aioctx-verify/history"} header)'),
    (b'{"format": "aioctx-verify/history", "version": 7}\n',
     "has version 7, newer than this aioctx-verify reads (version 1)"),
    (b'{"format": "aioctx-verify/history", "version": 1}\n{"started_at": 3}\n',
     'is corrupt: line 2: entry lacks the required field "campaign"'),
    (b'{"format": "aioctx-verify/history", "version": 1}\n{"started_at": \n',
     "is corrupt: line 2 is not valid JSON (column 16: Expecting value)"),
]


@pytest.mark.parametrize(("content", "problem"), CORRUPT)
def test_a_corrupt_or_foreign_history_is_reported_and_never_overwritten(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    history = tmp_path / "history.jsonl"
    history.write_bytes(content)
    out = tmp_path / "out"
    with pytest.raises(HistoryError) as info:
        write_reports(sample_result(), out, history)
    assert str(info.value) == (
        f"history file {history} {problem}; it was left untouched: repair it or move it "
        "aside, or pass another --history"
    )
    assert history.read_bytes() == content
    # the run's reports are not lost to a bad history
    assert info.value.written == tuple(out / n for n in ("report.json", "junit.xml",
                                                         "report.html"))
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "History not read: history file" in page
    assert CampaignResult.from_json((out / "report.json").read_bytes()) == sample_result()


def _entry(n: int, *, failing: bool = False, kill: int = 4, throughput: float = 180_000.0,
           campaign: str = "default", complete: bool = True) -> HistoryEntry:
    r = sample_result(failing=failing, started_at=day(n))
    km = r.kill_matrix
    assert km is not None and r.coverage is not None
    mutants = tuple(
        dataclasses.replace(m, killed_by=("dfs",) if i < kill else (), cells=())
        for i, m in enumerate(km.mutants)
    )
    r = dataclasses.replace(
        r,
        campaign=campaign,
        complete=complete,
        kill_matrix=dataclasses.replace(km, mutants=mutants),
        coverage=dataclasses.replace(r.coverage, steps_per_second=throughput),
    )
    return HistoryEntry.from_result(r)


def test_regression_a_property_that_passed_and_now_fails() -> None:
    t = compute_trends((_entry(0), _entry(1)), _entry(2, failing=True), source="h")
    assert [(g.kind, g.subject) for g in t.regressions] == [
        ("verdict", "P2 / random"),
        ("verdict", "P2 / pct"),
    ]
    assert t.regressions[1].message == (
        f"P2 / pct passed in the run of {day(1).isoformat()} and fails now"
    )
    assert [e.started_at for e in t.entries] == [day(i).isoformat() for i in range(3)]
    # still failing is not a new regression; an interrupted run is no baseline
    assert not compute_trends((_entry(1, failing=True),), _entry(2, failing=True),
                              source="h").regressions
    base = compute_trends((_entry(0, failing=True), _entry(1, complete=False)),
                          _entry(2, failing=True), source="h")
    assert not base.regressions


def test_regression_kill_rate_and_throughput_down() -> None:
    prev = tuple(_entry(i, throughput=180_000 + 1000 * i) for i in range(5))
    t = compute_trends(prev, _entry(5, kill=3, throughput=120_000), source="h")
    assert [g.kind for g in t.regressions] == ["kill_rate", "throughput"]
    assert t.regressions[0].message == (
        f"kill rate fell from 4/5 (80%) in the run of {day(4).isoformat()} to 3/5 (60%)"
    )
    assert t.regressions[1].message == (
        "throughput fell to 120,000 steps/s, 34% below the median of the last 5 run(s) "
        "(182,000 steps/s)"
    )
    # noise within the tolerance, a better kill rate, or another campaign: no regression
    assert not compute_trends(prev, _entry(5, kill=5, throughput=160_000), source="h").regressions
    other = compute_trends(prev, _entry(5, kill=0, throughput=1.0, campaign="nightly"),
                           source="h")
    assert not other.regressions and len(other.entries) == 1


def test_rerendering_an_old_result_compares_with_the_runs_before_it() -> None:
    hist = (_entry(0), _entry(1, failing=True), _entry(2))
    t = compute_trends(hist, _entry(1, failing=True), source="h")
    assert [e.started_at for e in t.entries] == [day(0).isoformat(), day(1).isoformat()]
    assert [g.subject for g in t.regressions] == ["P2 / random", "P2 / pct"]


def test_regressions_are_flagged_in_the_page(tmp_path: Path) -> None:
    history = tmp_path / "h.jsonl"
    write_reports(sample_result(failing=False, started_at=day(0)), tmp_path / "o", history)
    paths = write_reports(sample_result(failing=True, started_at=day(1)), tmp_path / "o", history)
    page = paths.html.read_text(encoding="utf-8")
    assert '<section id="regressions" class="regressions">' in page
    assert f"<li>P2 / pct passed in the run of {day(0).isoformat()} and fails now</li>" in page
    assert page.count("REGRESSION: passed, now fails") == 2
    assert page.count('<svg class="strip"') == 16 and page.count('<svg class="spark"') == 2
    assert "2 regression(s)" in page


def test_concurrent_writers_lose_no_history_entry(tmp_path: Path) -> None:
    history = tmp_path / "h.jsonl"
    errors: list[BaseException] = []

    def job(i: int) -> None:
        try:
            write_reports(sample_result(started_at=day(i)), tmp_path / f"o{i}", history)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=job, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert len(read_history(history).entries) == 8


# -- aioctx-verify report ----------------------------------------------------------------------


def _runner() -> CliRunner:
    try:  # click < 8.2 mixes stderr into output unless told not to
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:
        return CliRunner()


def report(*args: str) -> tuple[int, str, str]:
    r = _runner().invoke(main, ["report", *args])
    return r.exit_code, r.stdout, r.stderr


def test_report_rerenders_from_json(tmp_path: Path) -> None:
    src = tmp_path / "run" / "report.json"
    src.parent.mkdir()
    src.write_text(sample_result().to_json())
    history = tmp_path / "h.jsonl"
    code, out, err = report(str(src), "--out", str(tmp_path / "html"), "--history", str(history))
    assert code == 0, err
    assert out.splitlines() == [
        "report: default: P2 fails (random, pct)",
        f"report: wrote {tmp_path / 'html' / 'report.json'}, {tmp_path / 'html' / 'junit.xml'}, "
        f"{tmp_path / 'html' / 'report.html'}",
        f"report: appended this run to history {history}",
    ]
    assert CampaignResult.from_json((tmp_path / "html" / "report.json").read_text()) == (
        sample_result()
    )
    code, out, _ = report(str(src), "--history", str(history))  # default --out: beside it
    assert code == 0 and f"report: this run was already in history {history}" in out
    assert (src.parent / "report.html").exists()
    assert src.read_text() == sample_result().to_json()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: None, "cannot read {src} (no such file); pass the report.json that a "
                         "campaign wrote"),
        (lambda d: (d / "r.json").mkdir(), "cannot read {src} (it is a directory); pass the "
                                           "report.json that a campaign wrote"),
        (lambda d: (d / "r.json").write_text("{oops"), "{src} is not valid JSON (line 1 column "
         "2: Expecting property name enclosed in double quotes); pass the report.json "
         "aioctx-verify wrote"),
        (lambda d: (d / "r.json").write_text(
            sample_result().to_json().replace('"schema_version": 1', '"schema_version": 9')),
         "{src} has schema version 9 (written by aioctx-verify 0.1.0) but aioctx-verify "
         f"{reports.tool_version()} reads version 1; re-render it with the aioctx-verify "
         "that wrote it"),
    ],
)
def test_report_input_errors_are_one_line_exit_2(
    tmp_path: Path, setup: Any, message: str
) -> None:
    setup(tmp_path)
    src = tmp_path / "r.json"
    code, out, err = report(str(src), "--out", str(tmp_path / "o"))
    assert code == 2
    assert err == f"aioctx-verify: error: {message.format(src=src)}\n"
    assert out == "" and not (tmp_path / "o").exists()


def test_report_with_a_corrupt_history_exits_2_and_keeps_it(tmp_path: Path) -> None:
    src = tmp_path / "r.json"
    src.write_text(sample_result().to_json())
    history = tmp_path / "h.jsonl"
    history.write_text('{"some": "other tool"}\n')
    code, _, err = report(str(src), "--out", str(tmp_path / "o"), "--history", str(history))
    assert code == 2
    assert err == (
        f"aioctx-verify: error: history file {history} is not an aioctx-verify history (a JSON "
        'file of another tool: its first line is not the {"format": "aioctx-verify/history"} '
        "header); it was left untouched: repair it or move it aside, or pass another --history "
        f"(the reports in {tmp_path / 'o'} were written without trends)\n"
    )
    assert history.read_text() == '{"some": "other tool"}\n'


def test_report_into_an_unusable_directory_exits_2(tmp_path: Path) -> None:
    src = tmp_path / "r.json"
    src.write_text(sample_result().to_json())
    (tmp_path / "file").write_text("x")
    code, _, err = report(str(src), "--out", str(tmp_path / "file"))
    assert code == 2
    assert err == (
        f"aioctx-verify: error: cannot create report directory {tmp_path / 'file'} (File "
        "exists); pass another --out\n"
    )


def test_report_as_a_real_process(tmp_path: Path) -> None:
    src = tmp_path / "r.json"
    src.write_text(sample_result().to_json())
    proc = subprocess.run(
        [sys.executable, "-m", "aioctx_verify.cli", "report", str(src)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("report: default: P2 fails (random, pct)\n")
    bad = subprocess.run(
        [sys.executable, "-m", "aioctx_verify.cli", "report", str(tmp_path / "nope.json")],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len(bad.stderr.splitlines()) == 1
