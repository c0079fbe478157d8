"""The benchmark's plumbing, at tiny sizes: names, JSON shape, ratio and met, CLI errors.

Nothing here asserts anything about speed: the figures of a tiny run are noise.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from aioctx_verify.cli import main
from aioctx_verify.impl import live_iothreads
from aioctx_verify.stress import (
    BENCHMARK_NAMES,
    BenchError,
    BenchResult,
    Sizes,
    Target,
    run_benchmarks,
    write_json,
)
from aioctx_verify.stress.bench import _loop as bench_mod

#: The names the issue asks for, spelled out independently of the module under test.
EXPECTED_NAMES = [
    "bh_oneshot_1p", "bh_oneshot_2p", "bh_oneshot_4p",
    "bh_batch_1p", "bh_batch_2p", "bh_batch_4p",
    "bh_pingpong", "wake_latency_p50", "wake_latency_p99",
    "nested_acquire_depth1", "nested_acquire_depth3",
    "bare_oneshot_1p", "bare_pingpong", "bare_nested_acquire_depth1",
    "handoff_latency_p50", "handoff_latency_p99",
    "stop_world_1", "stop_world_4", "stop_world_16",
    "bh_memory",
]  # fmt: skip
JSON_KEYS = {"name", "ours", "peer", "ratio", "unit", "target", "met"}
TARGET = re.compile(r"(<=|>=) (\d+(?:\.\d+)?)(?: (s|ms|us|ns))?")
SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def expected_met(entry: dict[str, Any]) -> bool:
    """``met`` recomputed from the JSON entry alone."""
    m = TARGET.fullmatch(entry["target"])
    assert m is not None, f"unparsable target {entry['target']!r}"
    op, bound, unit = m[1], float(m[2]), m[3]
    if unit is None:
        value = entry["ratio"]
    else:  # an absolute goal on ours, e.g. "<= 1 ms" for a latency in us
        value = entry["ours"] * SECONDS[entry["unit"]] / SECONDS[unit]
    return bool(value <= bound if op == "<=" else value >= bound)


def bench_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("bench-")]


CPUS = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None


@pytest.fixture(scope="module")
def results() -> list[BenchResult]:
    return run_benchmarks(quick=True, scale=0.01)


def test_every_name_once_in_order(results: list[BenchResult]) -> None:
    assert [r.name for r in results] == EXPECTED_NAMES
    assert list(BENCHMARK_NAMES) == EXPECTED_NAMES


def test_results_are_frozen_slotted_and_consistent(results: list[BenchResult]) -> None:
    for r in results:
        assert not hasattr(r, "__dict__")
        with pytest.raises(dataclasses.FrozenInstanceError):
            r.ours = 0.0  # type: ignore[misc]
        assert r.ours > 0 and r.peer > 0, r
        assert r.ratio == r.ours / r.peer
        assert r.met == expected_met(r.to_json())
        assert r.peer_is


def test_json_shape(results: list[BenchResult], tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    write_json(results, out)
    data = json.loads(out.read_text(encoding="utf-8"))
    assert set(data) == {"benchmarks"}
    entries = data["benchmarks"]
    assert [e["name"] for e in entries] == EXPECTED_NAMES
    for e in entries:
        assert set(e) == JSON_KEYS
        assert isinstance(e["ours"], float) and isinstance(e["peer"], float)
        assert isinstance(e["ratio"], float) and isinstance(e["met"], bool)
        assert isinstance(e["unit"], str) and e["unit"]
        assert e["ratio"] == e["ours"] / e["peer"]
        assert e["met"] == expected_met(e)
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]  # no temporary left


def test_write_json_replaces_atomically(results: list[BenchResult], tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    out.write_text("old", encoding="utf-8")
    write_json(results[:1], out)
    assert [e["name"] for e in json.loads(out.read_text("utf-8"))["benchmarks"]] == [
        EXPECTED_NAMES[0]
    ]
    with pytest.raises(OSError):
        write_json(results, tmp_path / "missing" / "bench.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json"]


def test_no_thread_left_after_a_run(results: list[BenchResult]) -> None:
    assert results
    assert bench_threads() == []
    assert [it.name for it in live_iothreads() if it.name.startswith("bench-")] == []
    if CPUS is not None:
        assert os.sched_getaffinity(0) == CPUS  # unpinned again


def test_threads_are_joined_when_a_benchmark_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object) -> tuple[float, float]:
        raise BenchError("injected failure")

    monkeypatch.setattr(bench_mod, "_pingpong", broken)  # fails while threads are pinned
    with pytest.raises(BenchError, match="injected failure"):
        run_benchmarks(quick=True, scale=0.01, reps=1)
    assert bench_threads() == []
    if CPUS is not None:
        assert os.sched_getaffinity(0) == CPUS
    assert [it.name for it in live_iothreads() if it.name.startswith("bench-")] == []


@pytest.mark.parametrize(
    ("target", "ours", "peer", "unit", "met"),
    [
        (Target(">=", 5.0), 10.0, 2.0, "items/s", True),
        (Target(">=", 5.0), 9.0, 2.0, "items/s", False),
        (Target("<=", 3.0), 300.0, 100.0, "ns/op", True),
        (Target("<=", 1.0, "ms"), 999.0, 10.0, "us", True),  # absolute: ratio 99.9 is irrelevant
        (Target("<=", 1.0, "ms"), 1001.0, 5000.0, "us", False),
    ],
)
def test_met(target: Target, ours: float, peer: float, unit: str, met: bool) -> None:
    r = BenchResult("x", ours, peer, unit, target, "peer")
    assert r.met is met
    assert Target.parse(str(target)) == target


def test_target_text() -> None:
    assert str(Target(">=", 5.0)) == ">= 5.0"
    assert str(Target("<=", 1.0, "ms")) == "<= 1 ms"
    with pytest.raises(ValueError, match="not of the form"):
        Target.parse("at least 5")


def test_sizes() -> None:
    full, quick = Sizes.for_mode(quick=False), Sizes.for_mode(quick=True)
    assert full.items == 200_000 and full.reps == 5
    assert quick.items < full.items and quick.reps == 3
    assert Sizes.for_mode(quick=True, scale=1e-9).items >= 4  # a producer gets >= 1 item
    with pytest.raises(ValueError, match="scale"):
        Sizes.for_mode(quick=True, scale=0)
    with pytest.raises(ValueError, match="reps"):
        Sizes.for_mode(quick=True, reps=0)


# -- the command line ---------------------------------------------------------------------
def runner() -> CliRunner:
    try:  # click < 8.2 mixes stderr into output unless told not to
        return CliRunner(mix_stderr=False)
    except TypeError:
        return CliRunner()


def _file_in(tmp: Path) -> Path:
    f = tmp / "a-file"
    f.write_text("not a directory")
    return f


def test_cli_creates_a_missing_output_directory(tmp_path: Path) -> None:
    out = tmp_path / "reports" / "out" / "bench.json"
    result = runner().invoke(
        main, ["bench", "--quick", "--scale", "0.01", "--reps", "1", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.is_file()


def assert_one_line_error(result_stderr: str, *needles: str) -> None:
    lines = result_stderr.strip().splitlines()
    assert len(lines) == 1, result_stderr
    assert "Traceback" not in result_stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    ("make_path", "needle"),
    [
        (lambda tmp: _file_in(tmp) / "sub" / "out.json", "cannot create directory"),
        (lambda tmp: tmp, "is a directory"),
    ],
)
def test_cli_rejects_an_unwritable_json_path(
    tmp_path: Path, make_path: Callable[[Path], Path], needle: str
) -> None:
    path = make_path(tmp_path)
    result = runner().invoke(main, ["bench", "--quick", "--json", str(path)])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert_one_line_error(result.stderr, "error:", "--json", needle)
    assert bench_threads() == []  # refused before anything started


def test_cli_rejects_a_bad_flag() -> None:
    result = runner().invoke(main, ["bench", "--fast"])
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, "error:", "--fast")


def test_cli_bench_writes_table_and_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = runner().invoke(
        main, ["bench", "--quick", "--scale", "0.01", "--reps", "1", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    for name in EXPECTED_NAMES:
        assert re.search(rf"^{name}\s", result.stdout, re.MULTILINE), name
    entries = json.loads(out.read_text("utf-8"))["benchmarks"]
    assert [e["name"] for e in entries] == EXPECTED_NAMES
