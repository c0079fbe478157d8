"""``aioctx-verify run``: the main job writes three reports; bad input exits 2 and loses nothing.

Covers: a real (small) campaign on the correct impl (exit 0, three valid files, history
appended); the same campaign with a re-created QEMU bug patched in (exit 1, the
counterexample with its replay command in the report); Hypothesis-fuzzed bad flags and
history files (exit 2, one line, no traceback, nothing written or overwritten); a full disk
on report write (exit 2, the previous report byte-identical); Ctrl-C in a real process
(exit 130, reports written and marked incomplete).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioctx_verify._campaign import CHECKERS, plan_campaign, run_campaign
from aioctx_verify._run_cmd import EXIT_INTERRUPTED
from aioctx_verify.cli import main
from aioctx_verify.reports import CampaignResult
from aioctx_verify.stress.mutation._catalogue import CATALOGUE

ROOT = Path(__file__).resolve().parent.parent
FILES = ("report.json", "junit.xml", "report.html")


def _run(args: list[str]) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, ["run", *args])
    return res.exit_code, res.stdout, res.stderr


def _snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    out = tmp_path_factory.mktemp("run")
    code, stdout, stderr = _run(
        ["--checkers", "model,random", "--budget", "4", "--seed", "3", "--out", str(out), "-q"]
    )
    assert "Traceback" not in stdout + stderr
    return out, code, stdout


def test_a_small_campaign_on_the_correct_impl_passes_and_writes_three_reports(
    first_run: tuple[Path, int, str],
) -> None:
    out, code, stdout = first_run
    assert code == 0, stdout
    for name in FILES:
        assert (out / name).stat().st_size > 0
    result = CampaignResult.from_json((out / "report.json").read_bytes())
    assert result.seed == 3 and result.complete
    checkers = {v.checker for v in result.verdicts}
    assert checkers == {"model", "random"}
    assert {v.property for v in result.verdicts} == {"P1", "P2", "P3", "LIVE"}
    assert not any(v.verdict == "fail" for v in result.verdicts)
    assert result.coverage is not None and result.coverage.schedules > 0
    assert result.coverage.states is not None and result.coverage.states > 1000
    junit = (out / "junit.xml").read_text()
    assert junit.count("<testcase") == 8
    assert "report.html" in stdout and "all checked properties hold" in stdout
    history = (out / "history.jsonl").read_text().splitlines()
    assert len(history) == 2  # header + this run


def test_properties_subset_reports_only_those(tmp_path: Path) -> None:
    code, stdout, _ = _run(
        ["--checkers", "random", "--properties", "P2,P3", "--budget", "2",
         "--out", str(tmp_path), "--no-history", "-q"]
    )
    assert code == 0, stdout
    result = CampaignResult.from_json((tmp_path / "report.json").read_bytes())
    assert {v.property for v in result.verdicts} == {"P2", "P3"}
    assert not (tmp_path / "history.jsonl").exists()


def test_a_seeded_qemu_bug_fails_the_campaign_with_a_replayable_counterexample(
    tmp_path: Path,
) -> None:
    mutant = next(m for m in CATALOGUE if m.name == "schedule-takes-lock")
    with mutant.apply():
        code, stdout, _ = _run(
            ["--checkers", "random", "--budget", "3", "--out", str(tmp_path), "-q"]
        )
    assert code == 1, stdout
    assert "FAIL P2 under random" in stdout
    result = CampaignResult.from_json((tmp_path / "report.json").read_bytes())
    assert any(v.property == "P2" and v.verdict == "fail" for v in result.verdicts)
    cx = [c for c in result.counterexamples if c.property == "P2"]
    assert cx and cx[0].replay_command and cx[0].replay_command.startswith("aioctx-verify replay")
    html = (tmp_path / "report.html").read_text()
    assert cx[0].replay_command.split("'")[1] in html


def test_campaign_plan_is_deterministic_and_rejects_nonsense() -> None:
    a = plan_campaign("smoke", seed=5)
    assert a == plan_campaign("smoke", seed=5)
    # smoke searches impl as it is; the kill matrix runs in pr and nightly, or when asked
    assert a.steps == tuple(c for c in CHECKERS if c != "mutants")
    assert "mutants" in plan_campaign("pr").steps
    assert plan_campaign("smoke", checkers=("mutants",)).steps == ("mutants",)
    assert plan_campaign("90s").seconds == 90.0
    assert len(plan_campaign("pr").model_configs()) > len(a.model_configs())
    for bad, msg in [
        ("soon", "unknown budget"),
        (-1.0, "positive"),
        (float("inf"), "finite"),
    ]:
        with pytest.raises(ValueError, match=msg):
            plan_campaign(bad)
    with pytest.raises(ValueError, match="unknown checker"):
        plan_campaign(checkers=("modle",))
    with pytest.raises(ValueError, match="nothing to run"):
        plan_campaign(checkers=("random",), strategies=("pct",))


def test_the_dpor_step_runs_by_default_and_follows_the_chosen_strategies() -> None:
    assert "dpor" in plan_campaign("smoke").steps
    assert "dpor" not in plan_campaign("smoke", strategies=("random", "dfs")).steps
    only = plan_campaign("smoke", strategies=("dpor",))
    assert "dpor" in only.steps and not {"random", "pct", "dfs"} & set(only.steps)


def test_the_dpor_step_alone_catches_a_seeded_qemu_bug(tmp_path: Path) -> None:
    """The step explores the safe corpus under the mutant and fails with a replay line."""
    mutant = next(m for m in CATALOGUE if m.name == "schedule-takes-lock")
    with mutant.apply():
        r = run_campaign(plan_campaign("smoke", checkers=("dpor",), by_work=True))
    assert [v.checker for v in r.verdicts] and {v.checker for v in r.verdicts} == {"dpor"}
    assert any(v.verdict == "fail" for v in r.verdicts), r.verdicts
    cx = [c for c in r.counterexamples if c.checker == "dpor"]
    assert cx and cx[0].replay_command and cx[0].replay_command.startswith("aioctx-verify replay")


def test_dpor_as_the_only_strategy_explores_generated_programs_under_c11_too() -> None:
    """DPOR does not model c11: a generated program's c11 turn goes to DFS, not a crash
    (it raised ValueError before)."""
    from aioctx_verify.stress.explore import search_generated
    from aioctx_verify.stress.explore._generated import GenBudget

    r = search_generated(0, GenBudget(programs=4, schedules=1, seconds=600),
                         strategies=("dpor",), do_shrink=False)
    assert r.failure is None and r.programs == 4, r


def test_a_generated_step_cut_by_its_time_share_says_how_much_it_explored() -> None:
    # Two seconds cannot hold the smoke tier's 120 programs (each runs several schedules
    # under four strategy / memory combinations): the pass names what it covered.
    r = run_campaign(plan_campaign(2, checkers=("generated",)))
    gen = [v for v in r.verdicts if v.checker == "generated"]
    assert gen and {v.verdict for v in gen} == {"pass"}, gen
    assert all(v.detail.startswith("explored ") and " of 120 programs" in v.detail
               for v in gen), gen


def test_should_stop_ends_the_campaign_early_and_marks_it_incomplete() -> None:
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 2

    r = run_campaign(plan_campaign(30, checkers=("random", "pct", "dfs")), should_stop=stop)
    assert not r.complete
    assert "interrupted" in r.summary()
    # Stopped at the third check: only the first program of the first step ran.
    assert {v.checker for v in r.verdicts} == {"random"}, r.verdicts
    assert all("stopped after 1 of" in v.detail for v in r.verdicts), r.verdicts


# -- bad input: fuzzed flags and files ------------------------------------------------------
_BAD_ARGS = st.one_of(
    st.tuples(st.just("--budget"), st.text(min_size=1, max_size=8).filter(
        lambda s: s not in ("smoke", "pr", "nightly") and not _positive_seconds(s)
    )),
    st.tuples(st.just("--checkers"), st.text(min_size=1, max_size=12).filter(
        lambda s: any(x.strip() not in
                      CHECKERS
                      for x in s.split(","))
    )),
    st.tuples(st.just("--properties"), st.text(min_size=1, max_size=6).filter(
        lambda s: any(x.strip() not in ("P1", "P2", "P3", "LIVE") for x in s.split(","))
    )),
    st.tuples(st.just("--strategy"), st.sampled_from(["bfs", "", ",", "random,foo"])),
    st.tuples(st.just("--seed"), st.text(min_size=1, max_size=5).filter(lambda s: not _is_int(s))),
    st.tuples(st.just("--jobs"), st.sampled_from(["0", "-3", "x", "1.5", "999"])),
    st.tuples(st.sampled_from(["--bogus", "--budge", "-x", "--out"]), st.just("")),
)


def _is_int(s: str) -> bool:
    try:
        int(s)
    except ValueError:
        return False
    return True


def _positive_seconds(s: str) -> bool:
    try:
        v = float(s.removesuffix("s"))
    except ValueError:
        return False
    return 0 < v < float("inf")


@pytest.fixture(scope="module")
def sentinel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("sentinel")
    for name in FILES:
        (d / name).write_text(f"previous {name}\n")
    return d


_FIXTURE_OK = [HealthCheck.function_scoped_fixture]


@settings(max_examples=60, deadline=None, suppress_health_check=_FIXTURE_OK)
@given(bad=_BAD_ARGS)
def test_fuzzed_bad_flags_exit_2_with_one_line_and_touch_nothing(
    bad: tuple[str, str], sentinel_dir: Path
) -> None:
    before = _snapshot(sentinel_dir)
    args = ["--out", str(sentinel_dir), "--checkers", "model", "--budget", "1"]
    args += [bad[0]] if bad[0] in ("--bogus", "--budge", "-x") else list(bad)
    if bad[0] == "--out":
        args = ["--checkers", "model", "--out"]  # a flag missing its value
    code, stdout, stderr = _run(args)
    assert code == 2, (args, stdout, stderr)
    assert "Traceback" not in stdout + stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "error:" in lines[0], stderr
    assert _snapshot(sentinel_dir) == before


@settings(max_examples=40, deadline=None, suppress_health_check=_FIXTURE_OK)
@given(content=st.binary(min_size=1, max_size=200))
def test_fuzzed_history_files_exit_2_before_running_and_stay_untouched(
    content: bytes, tmp_path: Path
) -> None:
    hist = tmp_path / "h.jsonl"
    hist.write_bytes(content)
    out = tmp_path / "out"
    code, stdout, stderr = _run(["--history", str(hist), "--out", str(out), "--checkers", "dfs"])
    assert code == 2, (content, stdout, stderr)
    assert "Traceback" not in stdout + stderr
    assert "history" in stderr and "nothing was run" in stderr
    assert hist.read_bytes() == content
    assert not out.exists()


def test_out_that_is_a_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("keep")
    code, _, stderr = _run(["--out", str(f), "--checkers", "model"])
    assert code == 2 and "is a file" in stderr
    assert f.read_text() == "keep"


def test_a_full_disk_on_report_write_keeps_the_previous_report(
    first_run: tuple[Path, int, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    src, _, _ = first_run
    for name in FILES:
        (out / name).write_bytes((src / name).read_bytes())
    before = _snapshot(out)

    from aioctx_verify.reports import _write as w
    real = w.atomic_write_text

    def full_disk(path: Path, text: str) -> None:
        if path.name == "junit.xml":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, text)

    monkeypatch.setattr(w, "atomic_write_text", full_disk)
    code, stdout, stderr = _run(
        ["--checkers", "dfs", "--budget", "1", "--out", str(out), "--no-history", "-q"]
    )
    assert code == 2, stdout + stderr
    assert "No space left on device" in stderr and "junit.xml is untouched" in stderr
    assert (out / "junit.xml").read_bytes() == before["junit.xml"]
    # report.json was written before the failure and is whole (a new, valid result)
    CampaignResult.from_json((out / "report.json").read_bytes())
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.timeout(120)
def test_ctrl_c_in_a_real_process_writes_an_incomplete_report(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "aioctx_verify.cli", "run", "--checkers", "stress",
         "--budget", "70", "--out", str(tmp_path), "--no-history"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen += line
        if "stress: starting" in line or not line:
            break
    assert "stress: starting" in seen, seen
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, out + err
    assert "stopping after the work under way" in err
    assert "Traceback" not in out + err
    result = json.loads((tmp_path / "report.json").read_text())
    # The work under way (at most the first workload) finished, not the whole budget.
    assert len(result["histograms"]) <= 1, result["histograms"]
    assert result["complete"] is False
    assert "incomplete" in out
    assert "interrupted" in (tmp_path / "report.html").read_text().lower()
