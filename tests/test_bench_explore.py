"""The explore benchmark's plumbing at tiny sizes: its rows, their ratio and met, strict JSON,
and a frontrun comparison that degrades (NaN peer, met False, a note) instead of crashing.

Nothing here asserts anything about speed: the figures of a tiny run are noise.  frontrun is
optional: the tests pass with it installed (the comparison runs) and without it.
"""

from __future__ import annotations

import functools
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from aioctx_verify.cli import main
from aioctx_verify.impl import live_iothreads
from aioctx_verify.stress import BENCHMARK_NAMES, BenchResult, Budget, Target, explore, write_json
from aioctx_verify.stress.bench import _explore as bx
from aioctx_verify.stress.bench._explore import (
    EXPLORE_BENCHMARK_NAMES,
    FRONTRUN_DRIVER,
    LOCKED_COUNTER,
    NOTIFY_ORDER,
    ExploreBench,
    ExploreSizes,
    frontrun_version,
    run_explore_benchmarks,
    run_frontrun,
)
from aioctx_verify.stress.controlled import DPORStrategy
from aioctx_verify.stress.explore import Program
from aioctx_verify.stress.explore._explore import replay

#: Spelled out independently of the module under test.
EXPECTED = [
    "explore_steps_per_s",
    "explore_schedules_per_s",
    "explore_overhead",
    "ttff_lost_update",
    "ttff_abba_deadlock",
    "ttff_notify_order",
    "ttff_dpor_lost_update",
    "ttff_dpor_abba_deadlock",
    "ttff_dpor_notify_order",
    *(f"dpor_{n}" for n in ("atomic_increment", "notify_no_fence_sc", "notify_fenced_tso",
                            "notify_fenced_pso", "mp_no_wmb_tso", "mp_wmb_pso",
                            "iothread_acquire", "bh_cross_thread", "bh_cross_thread_tso",
                            "timer_virtual_time")),
    "bound3_notify_rounds",
]
FRONTRUN_ROWS = {"explore_schedules_per_s", "ttff_lost_update", "ttff_abba_deadlock",
                 "ttff_notify_order", "ttff_dpor_lost_update", "ttff_dpor_abba_deadlock",
                 "ttff_dpor_notify_order", "bound3_notify_rounds"}  # fmt: skip
#: Rows whose target is absolute, on ``ours`` (in seconds).
ABSOLUTE_ROWS = {"bound3_notify_rounds"}
TARGET = re.compile(r"(<=|>=) (\d+(?:\.\d+)?)(?: (s|ms|us|ns))?")


def expected_met(r: BenchResult) -> bool:
    """``met`` recomputed from the figures: a ratio target, False on a NaN ratio; an
    absolute target (the bound-3 row, in seconds) on ``ours`` alone."""
    m = TARGET.fullmatch(str(r.target))
    assert m is not None, r.target
    if r.name in ABSOLUTE_ROWS:
        assert m[3] == "s" and r.unit == "s", r
        return r.ours <= float(m[2]) if m[1] == "<=" else r.ours >= float(m[2])
    assert m[3] is None, r.target  # every other explore target is on the ratio
    ratio, bound = r.ours / r.peer, float(m[2])
    if math.isnan(ratio):
        return False
    return ratio <= bound if m[1] == "<=" else ratio >= bound


def strict_json(text: str) -> Any:
    def refuse(const: str) -> None:
        raise ValueError(f"non-standard JSON constant {const}")

    return json.loads(text, parse_constant=refuse)


def tiny(**kw: Any) -> ExploreBench:
    return run_explore_benchmarks(quick=True, scale=0.01, reps=1, **kw)


@pytest.fixture
def no_frontrun(monkeypatch: pytest.MonkeyPatch) -> None:
    """frontrun made unimportable, and any attempt to start a child process an error."""
    monkeypatch.setitem(sys.modules, "frontrun", None)

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("a frontrun child was started although frontrun is missing")

    monkeypatch.setattr(bx.subprocess, "Popen", refuse)


@pytest.fixture(scope="module")
def bench() -> ExploreBench:
    return tiny()


def test_rows_in_order(bench: ExploreBench) -> None:
    assert [r.name for r in bench.results] == EXPECTED
    assert list(EXPLORE_BENCHMARK_NAMES) == EXPECTED
    assert not set(EXPECTED) & set(BENCHMARK_NAMES)


def test_rows_are_consistent(bench: ExploreBench) -> None:
    compared = bench.frontrun is not None
    for r in bench.results:
        assert r.unit and r.peer_is
        if r.name in ABSOLUTE_ROWS:  # inf: not exhausted within a tiny run's cap
            assert r.ours > 0 and not math.isnan(r.ours), r
        else:
            assert math.isfinite(r.ours) and r.ours > 0, r
        if r.name in FRONTRUN_ROWS and not compared:
            assert math.isnan(r.peer), r
            assert "NOT MEASURED" in r.peer_is
        else:
            assert r.peer > 0, r
        assert r.met == expected_met(r), r
    assert bench.notes


def test_json_is_strict(bench: ExploreBench, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    write_json(bench.results, out)
    entries = strict_json(out.read_text("utf-8"))["benchmarks"]
    assert [e["name"] for e in entries] == EXPECTED
    for e, r in zip(entries, bench.results, strict=True):
        assert set(e) == {"name", "ours", "peer", "ratio", "unit", "target", "met"}
        assert e["met"] is r.met
        for key in ("ours", "peer", "ratio"):
            v = getattr(r, key)
            assert e[key] == (v if math.isfinite(v) else None)


def test_no_thread_or_iothread_left(bench: ExploreBench) -> None:
    import threading

    assert bench.results
    busy = [t.name for t in threading.enumerate() if t.name.startswith("ctl-")]
    assert [n for n in busy if n != "ctl-idle"] == []  # pooled idle carriers may stay
    assert live_iothreads() == []


def test_degrades_without_frontrun(no_frontrun: None) -> None:
    assert frontrun_version() is None
    got = tiny()
    assert got.frontrun is None
    assert [r.name for r in got.results] == EXPECTED
    for r in got.results:
        if r.name in FRONTRUN_ROWS:
            assert math.isnan(r.peer) and math.isnan(r.ratio)
            assert r.met is (expected_met(r) if r.name in ABSOLUTE_ROWS else False)
            assert "not installed" in r.peer_is
            assert r.to_json()["peer"] is None and r.to_json()["ratio"] is None
        else:  # the real-platform rows do not need frontrun
            assert r.peer > 0 and r.met == expected_met(r)
    assert any("not installed" in n for n in got.notes)


def _fake_frontrun(monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    monkeypatch.setattr(bx, "frontrun_version", lambda: "0.0-test")
    monkeypatch.setattr(
        bx, "_frontrun_command", lambda _driver, _spec: [sys.executable, "-c", code]
    )


def test_degrades_when_the_frontrun_child_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_frontrun(monkeypatch, "import sys; sys.stderr.write('boom\\n'); sys.exit(3)")
    got = tiny()
    assert got.frontrun is None
    ttff = [r for r in got.results if r.name in FRONTRUN_ROWS]
    assert ttff and all(math.isnan(r.peer) and not r.met for r in ttff)
    assert any("status 3" in n and "boom" in n for n in got.notes), got.notes


@pytest.mark.parametrize(
    ("code", "needle"),
    [
        ("print('AIOCTX-FRONTRUN-RESULT not json')", "unreadable"),
        ("print('nothing marked')", "status 0"),
        ("import sys; sys.exit(1)", "status 1"),
    ],
)
def test_run_frontrun_reports_bad_children(
    monkeypatch: pytest.MonkeyPatch, code: str, needle: str
) -> None:
    _fake_frontrun(monkeypatch, code)
    rep = run_frontrun({}, timeout=30)
    assert rep.error is not None and needle in rep.error, rep.error


def test_run_frontrun_kills_a_child_that_overruns(monkeypatch: pytest.MonkeyPatch) -> None:
    # The child outlives pytest-timeout: run_frontrun returns only if it killed (and reaped)
    # it, so returning at all is the verdict; no clock is read.
    _fake_frontrun(monkeypatch, "import time; time.sleep(600)")
    rep = run_frontrun({}, timeout=0.5)
    assert rep.error is not None and "did not finish" in rep.error


def test_driver_source_compiles() -> None:
    compile(FRONTRUN_DRIVER, "aioctx_frontrun_driver.py", "exec")


def test_unexpected_driver_figures_degrade(monkeypatch: pytest.MonkeyPatch) -> None:
    payload = json.dumps({"version": "x", "ttff": {}, "throughput": None})
    _fake_frontrun(monkeypatch, f"print('AIOCTX-FRONTRUN-RESULT ' + {payload!r})")
    got = tiny()
    assert got.frontrun is None
    assert any("unexpected frontrun driver output" in n for n in got.notes), got.notes


def test_a_bad_throughput_figure_only_drops_its_row(monkeypatch: pytest.MonkeyPatch) -> None:
    one = [{"seconds": 0.002, "found": True, "holds": False, "explored": 2}]
    ttff = {p: {"dpor": one, "random": one} for p in bx.TTFF_PROGRAMS}
    payload = json.dumps({"version": "x", "ttff": ttff, "throughput": None})
    _fake_frontrun(monkeypatch, f"print('AIOCTX-FRONTRUN-RESULT ' + {payload!r})")
    got = tiny()
    rows = {r.name: r for r in got.results}
    assert math.isnan(rows["explore_schedules_per_s"].peer)
    assert not rows["explore_schedules_per_s"].met
    for name in bx.TTFF_PROGRAMS:
        r = rows[f"ttff_{name}"]
        assert r.peer == pytest.approx(2.0) and r.met == expected_met(r)
    assert any("explore_schedules_per_s has no peer" in n for n in got.notes), got.notes


def test_our_comparison_programs() -> None:
    bug = explore(NOTIFY_ORDER, strategy="dfs", budget=Budget(500, 30), do_shrink=False)
    assert bug.verdict == "fail" and bug.failure is not None
    assert "lost wake-up" in bug.failure.message
    safe = explore(LOCKED_COUNTER, strategy="dfs", budget=Budget(500, 30))
    assert safe.verdict == "pass" and safe.exhausted


def test_the_bound3_program_is_safe_and_its_swapped_variant_is_not() -> None:
    """notify_rounds exhausts at bound 1 without a failure; with a waker's look and count
    swapped, DPOR finds the lost wake-up and the replay line reproduces it."""
    safe = explore(bx.NOTIFY_ROUNDS, strategy=DPORStrategy(1), budget=Budget(20_000, 600),
                   do_shrink=False)
    assert safe.verdict == "pass" and safe.exhausted, safe.reason
    swapped = Program("notify_rounds_swapped",
                      functools.partial(bx._notify_rounds, look_first=True), "bug", "sc", "")
    bug = explore(swapped, strategy=DPORStrategy(2), budget=Budget(20_000, 600))
    assert bug.verdict == "fail" and bug.failure is not None
    assert "lost wake-up" in bug.failure.message
    assert replay(bug.failure.schedule, {swapped.name: swapped}).verdict == "fail"


def test_counting_platform_counts_a_plain_run() -> None:
    ops = bx._real_ops(bx.corpus_by_name()[bx.THROUGHPUT_PROGRAM], 1)
    assert ops > 10
    assert live_iothreads() == []


def test_dpor_rows_count_schedules_to_exhaust(bench: ExploreBench) -> None:
    rows = {r.name: r for r in bench.results if r.name.startswith("dpor_")}
    assert rows and all(r.unit == "schedules" and str(r.target) == "<= 0.2"
                        for r in rows.values())
    for r in rows.values():  # DPOR never needs more runs than every schedule of the bound
        assert r.ours.is_integer() and r.peer.is_integer() and 0 < r.ours <= r.peer, r
    assert any(n.startswith("  atomic_increment: ") for n in bench.notes)
    assert "dpor" in bx.STRATEGY_TTFF


def test_sizes() -> None:
    full, quick = ExploreSizes.for_mode(quick=False), ExploreSizes.for_mode(quick=True)
    assert full.reps == 5 and quick.reps == 3
    assert quick.schedules < full.schedules and quick.seeds < full.seeds
    assert ExploreSizes.for_mode(quick=True, scale=1e-9).seeds >= 1
    with pytest.raises(ValueError, match="scale"):
        ExploreSizes.for_mode(quick=True, scale=0)
    with pytest.raises(ValueError, match="reps"):
        ExploreSizes.for_mode(quick=True, reps=0)


def test_json_of_a_missing_peer_is_null() -> None:
    r = BenchResult("x", 2.0, math.nan, "ms", Target("<=", 1.0), "peer")
    assert r.met is False
    assert r.to_json()["peer"] is None and r.to_json()["ratio"] is None
    assert r.to_json()["ours"] == 2.0


def runner() -> CliRunner:
    try:  # click < 8.2 mixes stderr into output unless told not to
        return CliRunner(mix_stderr=False)
    except TypeError:
        return CliRunner()


def test_cli_appends_the_explore_rows(no_frontrun: None, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = runner().invoke(
        main, ["bench", "--quick", "--scale", "0.01", "--reps", "1", "--explore", "--json",
               str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    names = [e["name"] for e in strict_json(out.read_text("utf-8"))["benchmarks"]]
    assert names == [*BENCHMARK_NAMES, *EXPECTED]
    for name in EXPECTED:
        assert re.search(rf"^{name}\s", result.stdout, re.MULTILINE), name
    assert "not installed" in result.stdout

