"""``aioctx-verify explore`` and ``aioctx-verify replay``: output, JSON and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from aioctx_verify.cli import main


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_explore_writes_the_json_shape(tmp_path: Path) -> None:
    out = tmp_path / "x" / "explore.json"
    code, stdout, _ = run(
        "explore",
        "--program",
        "lost_update,atomic_increment",
        "--strategy",
        "random,dfs",
        "--schedules",
        "50",
        "--json",
        str(out),
    )
    assert code == 0, stdout
    data = json.loads(out.read_text())
    rows = data["programs"]
    assert [(r["name"], r["strategy"]) for r in rows] == [
        ("lost_update", "random"),
        ("lost_update", "dfs"),
        ("atomic_increment", "random"),
        ("atomic_increment", "dfs"),
    ]
    for r in rows:
        assert {
            "name",
            "expected",
            "strategy",
            "memory",
            "verdict",
            "schedules",
            "seconds",
            "preemptions",
            "schedule",
        } <= set(r)
    bug = rows[0]
    assert bug["expected"] == "bug" and bug["verdict"] == "fail"
    assert bug["preemptions"] == 1 and bug["schedule"].startswith("v1:lost_update:sc:")
    safe = rows[2]
    assert safe["verdict"] == "pass" and safe["schedule"] is None and safe["schedules"] == 50
    assert "4 of 4 runs as expected" in stdout


def test_explore_exits_1_when_a_bug_is_missed() -> None:
    # one schedule of DFS runs the default (non-preempting) order, which passes
    code, stdout, _ = run(
        "explore", "--program", "lost_update", "--strategy", "dfs", "--schedules", "1"
    )
    assert code == 1
    assert "unexpected" in stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["explore", "--strategy", "nope"], "--strategy"),
        (["explore", "--program", "nope"], "--program"),
        (["explore", "--schedules", "0"], "--schedules"),
    ],
)
def test_explore_bad_flags_exit_2_in_one_line(args: list[str], needle: str) -> None:
    code, _, stderr = run(*args)
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1 and needle in stderr
    assert "Traceback" not in stderr


def test_replay_exit_codes() -> None:
    code, stdout, _ = run("replay", "v1:lost_update:sc:0*2,1,2*3")
    assert code == 1
    assert "AssertionError: lost update" in stdout and "Thread 1 (inc0)" in stdout
    code, stdout, _ = run("replay", "v1:atomic_increment:sc:0*2,1,2*3")
    assert code == 0 and "pass" in stdout


@pytest.mark.parametrize(
    ("schedule", "needle"),
    [
        ("garbage", "malformed schedule string"),
        ("v9:lost_update:sc:0", "version 'v9'"),
        ("v1:nope:sc:0", "unknown program 'nope'"),
        ("v1:lost_update:sc:0*12", "expected thread 0, the options were [1, 2]"),
    ],
)
def test_replay_bad_or_divergent_schedule_exits_2(schedule: str, needle: str) -> None:
    code, _, stderr = run("replay", schedule)
    assert code == 2
    assert needle in stderr and "Traceback" not in stderr
