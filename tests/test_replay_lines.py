"""Every failure the suite prints replays from its printed line alone.

For each kind of failure (a corpus program, a kill-matrix probe under a mutant, a
multi-thread stateful scenario under a mutant, a single-thread lockstep search under a
mutant, a real-thread stress trial under a mutant, a probe on real threads under a mutant)
a failure is produced the normal way, its printed replay line is parsed with :mod:`shlex`
and run through the CLI: the replay must exit 1 and report the same property.  Then the
lines that ``aioctx-verify mutants --json`` and ``aioctx-verify run`` print are checked
the same way.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from aioctx_verify.cli import main
from aioctx_verify.reports import CampaignResult
from aioctx_verify.stress import Budget, corpus_by_name, explore
from aioctx_verify.stress.explore import replay_line
from aioctx_verify.stress.mutation import CellBudget, mutant_by_name, run_checker
from aioctx_verify.stress.real import kill_checker
from aioctx_verify.stress.stateful import multi_checker

#: One replay line, as printed (the spec is always single-quoted and holds no quote).
LINE = re.compile(r"aioctx-verify replay (?:--mutant \S+ )?'[^']*'")
MUTANTS = mutant_by_name()


def lines_in(text: str) -> list[str]:
    return LINE.findall(text)


def only_line(text: str) -> str:
    found = lines_in(text)
    assert len(found) == 1, text
    return found[0]


def run_line(line: str) -> tuple[int, str]:
    """Run a printed replay line through the CLI: its exit status and output."""
    argv = shlex.split(line)
    assert argv[:2] == ["aioctx-verify", "replay"], line
    r = CliRunner().invoke(main, argv[1:])
    assert "Traceback" not in r.output, r.output
    return r.exit_code, r.output


def prop_of(output: str) -> str | None:
    m = re.search(r"^property: (\S+)", output, re.M)
    return m.group(1) if m else None


def assert_reproduces(line: str, prop: str | None) -> str:
    code, out = run_line(line)
    assert code == 1, out
    assert prop_of(out) == (prop or "unclassified"), out
    return out


@contextmanager
def applied(name: str) -> Iterator[None]:
    with MUTANTS[name].apply():
        yield


# -- the one format -----------------------------------------------------------------------------
def test_replay_line_format() -> None:
    assert replay_line("v1:x:sc:0") == "aioctx-verify replay 'v1:x:sc:0'"
    assert replay_line("v1:x:sc:0", "none") == "aioctx-verify replay 'v1:x:sc:0'"
    assert replay_line("single:seed=3", "m") == "aioctx-verify replay --mutant m 'single:seed=3'"
    with pytest.raises(ValueError, match="quote or white space"):
        replay_line("v1:x:sc:0'; rm -rf /")


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("v1:no_such_program:sc:0", "unknown program 'no_such_program'"),
        ("single:seed=x", "malformed single-thread lockstep spec"),
        ("real:acquire-storm:seed=0", "lacks trial"),
        ("real:no-such-workload:seed=0:trial=0:threads=1:iothreads=1:rounds=1:seconds=0.1:"
         "noise=off:patience=1.0:timeout=1.0", "unknown workload"),
    ],
)
def test_bad_specs_exit_2_with_one_line(spec: str, needle: str) -> None:
    r = CliRunner().invoke(main, ["replay", spec])
    assert r.exit_code == 2 and needle in r.stderr, r.output
    assert len(r.stderr.strip().splitlines()) == 1


def test_an_unknown_mutant_exits_2() -> None:
    r = CliRunner().invoke(main, ["replay", "--mutant", "nope", "v1:bh_ping:sc:"])
    assert r.exit_code == 2 and "unknown mutant 'nope'" in r.stderr, r.output


# -- each kind of failure ------------------------------------------------------------------------
def test_a_corpus_failure_replays() -> None:
    r = explore(corpus_by_name()["lost_update"], strategy="dfs", budget=Budget(500, 20.0))
    assert r.failure is not None
    line = only_line(r.failure.report())
    assert "--mutant" not in line
    out = assert_reproduces(line, r.failure.prop or None)
    assert f"({r.failure.kind})" in out and r.failure.message.splitlines()[0] in out


def test_a_probe_failure_under_a_mutant_replays_with_its_mutant() -> None:
    out = run_checker("explore_dfs", MUTANTS["deleted-bh-runs"], 0, CellBudget(30, 600.0))
    assert out.killed, out.detail
    line = only_line(out.detail)
    assert line.startswith("aioctx-verify replay --mutant deleted-bh-runs '"), line
    assert_reproduces(line, out.killed_by_property)
    # The mutant is what fails it: the same schedule without it does not fail.
    code, text = run_line(line.replace("--mutant deleted-bh-runs ", ""))
    assert code != 1, text


def test_a_stateful_multi_failure_under_a_mutant_replays() -> None:
    m = MUTANTS["recursive-release-drops-all"]
    out = multi_checker(m, seed=0, seconds=120.0, max_examples=300)
    assert out.killed, out.detail
    line = only_line(out.detail)
    assert line.startswith(f"aioctx-verify replay --mutant {m.name} 'v1:sm"), line
    text = assert_reproduces(line, out.killed_by_property)
    assert "python3 -c" not in text and "._multi" not in out.detail


def test_a_single_thread_lockstep_failure_under_a_mutant_replays() -> None:
    # Budgeted by work (lockstep programs), not seconds: a loaded machine only takes longer.
    out = run_checker("stateful_single", MUTANTS["deleted-bh-runs"], 1, CellBudget(300, 600.0))
    assert out.killed, out.detail
    line = only_line(out.detail)
    assert line == "aioctx-verify replay --mutant deleted-bh-runs 'single:seed=1'"
    text = assert_reproduces(line, out.killed_by_property)
    assert f"via {out.via}" in text


def test_a_real_thread_stress_failure_under_a_mutant_replays() -> None:
    m = MUTANTS["recursive-release-drops-all"]
    out = kill_checker(m, seed=0, seconds=60.0, workloads=["acquire-storm"], patience=3.0)
    assert out.killed, out.detail
    line = only_line(out.detail)
    head = f"aioctx-verify replay --mutant {m.name} 'real:acquire-storm:seed="
    assert line.startswith(head), line
    text = assert_reproduces(line, out.killed_by_property)
    assert "real threads are not deterministic" in text


# -- what the commands print --------------------------------------------------------------------
def test_mutants_json_prints_only_replay_lines_that_reproduce(tmp_path: Path) -> None:
    path = tmp_path / "km.json"
    r = CliRunner().invoke(
        main,
        ["mutants", "--budget", "smoke", "--checkers", "explore_dfs,explore_random",
         "--mutants", "deleted-bh-runs,recursive-release-drops-all", "--jobs", "1",
         "--json", str(path)],
    )
    assert r.exit_code == 0, r.output
    data = json.loads(path.read_text())
    checked = 0
    for m in data["mutants"]:
        for name, cell in m["checkers"].items():
            found = lines_in(cell["detail"])
            if not cell["killed"]:
                assert found == [], (m["name"], name, cell["detail"])
                continue
            assert len(found) == 1, cell["detail"]
            assert f"--mutant {m['name']} " in found[0]
            assert_reproduces(found[0], cell["killed_by_property"])
            checked += 1
    assert checked >= 2
    assert not lines_in(json.dumps(data.get("false_alarm_runs", "")))


def test_run_prints_only_replay_lines_that_reproduce(tmp_path: Path) -> None:
    """A campaign checks impl as it is: with a mutant applied around it, every
    counterexample's line reproduces with that same mutant applied around the replay."""
    with applied("schedule-takes-lock"):
        r = CliRunner().invoke(
            main,
            ["run", "--checkers", "random,hypothesis", "--budget", "30", "--out", str(tmp_path),
             "--no-history", "-q"],
        )
        assert r.exit_code == 1, r.output
        result = CampaignResult.from_json((tmp_path / "report.json").read_bytes())
        lines = [c.replay_command for c in result.counterexamples if c.replay_command]
        assert lines and len(lines) == len(result.counterexamples)
        kinds = set()
        for c in result.counterexamples:
            assert c.replay_command is not None
            assert LINE.fullmatch(c.replay_command), c.replay_command
            kinds.add(c.replay_command.split("'")[1].split(":")[0])
            assert_reproduces(c.replay_command, c.property)
        assert "v1" in kinds and "single" in kinds


def test_a_real_thread_probe_failure_under_a_mutant_replays() -> None:
    m = MUTANTS["recursive-release-drops-all"]
    out = run_checker("stress_real", m, 0, 30.0)
    assert out.killed, out.detail
    line = only_line(out.detail)
    assert line.startswith(f"aioctx-verify replay --mutant {m.name} 'probe-real:"), line
    text = assert_reproduces(line, out.killed_by_property)
    assert "real threads are not deterministic" in text


# -- the model ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["nonsticky-kick", "dispatching-flag-shared"])
def test_a_model_kill_prints_a_line_that_reproduces(name: str) -> None:
    m = MUTANTS[name]
    out = run_checker("model", m, 0, 60.0)
    assert out.killed, out.detail
    line = only_line(out.detail)
    assert line == f"aioctx-verify replay --mutant {name} 'model:bug={m.model_bug}'"
    text = assert_reproduces(line, out.killed_by_property)
    assert "shortest path" in text


def test_the_campaign_model_sizes_replay_and_hold() -> None:
    from aioctx_verify._campaign import plan_campaign
    from aioctx_verify._replay_cmd import model_replay_spec

    for size in plan_campaign("smoke").model_configs():
        code, out = run_line(replay_line(model_replay_spec(dict(size))))
        assert code == 0 and "no violation" in out, out


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("model:bug=nope", "unknown bug 'nope'"),
        ("model:threads=2,colour=3", "unknown field(s) colour"),
        ("model:threads=two", "malformed model spec"),
        ("model:threads=2,bhs=0,max_depth=0", "max_depth >= 1"),
    ],
)
def test_a_bad_model_spec_is_one_clear_error(spec: str, problem: str) -> None:
    code, out = run_line(replay_line(spec))
    assert code == 2 and problem in out, out
