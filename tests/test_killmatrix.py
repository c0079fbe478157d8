"""The kill matrix (stress.mutation._matrix) and the ``aioctx-verify mutants`` command.

Small runs only: a few mutants, the fast explorers or stand-in checkers, small work budgets.
The full ``pr`` matrix is measured by ``aioctx-verify mutants --budget pr``.

Cells are budgeted by work, so no assertion here reads a clock: a slow machine is played by
a clock that jumps ahead after every controlled run (:func:`slow_machine`), never by
sleeping, and a seconds cap that runs out must give ``inconclusive``, never ``survived``.
"""

from __future__ import annotations

import json
import re
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from aioctx_verify.cli import main
from aioctx_verify.impl import (
    AioContext,
    CallbackError,
    ContextNotHeldError,
    LockNotHeldError,
    NotOwnerError,
    RealPlatform,
)
from aioctx_verify.stress.controlled import ControlledPlatform
from aioctx_verify.stress.explore._explore import replay
from aioctx_verify.stress.mutation import (
    WORK_UNIT_SECONDS,
    CellBudget,
    CheckOutcome,
    ProbeFailure,
    UseAfterFree,
    classify_exception,
    property_of,
)
from aioctx_verify.stress.mutation import _matrix as kmod
from aioctx_verify.stress.mutation._catalogue import NO_MUTANT, Mutant, mutant_by_name
from aioctx_verify.stress.mutation._matrix import (
    BUDGETS,
    KillMatrix,
    MatrixBudget,
    available_checkers,
    kill_matrix,
    register_checker,
    resolve_budget,
    run_checker,
)
from aioctx_verify.stress.mutation._probes import PROBES, probe_program
from aioctx_verify.stress.real import kill_checker
from aioctx_verify.stress.real._runner import TRIAL_WORK
from aioctx_verify.stress.stateful._single import PROGRAM_WORK

#: 300 schedules a cell, 80 a control run (4 for each of the 20 probes).
SMALL = MatrixBudget("test", 300, 1, 80)
#: (mutant, seed, budget) of every call of the ``t_record`` stand-in.
RECORDED: list[tuple[str, int, CellBudget]] = []
FEW = ["deleted-bh-runs", "non-home-thread-poll", "recursive-release-drops-all"]


@pytest.fixture(scope="module")
def small() -> KillMatrix:
    return kill_matrix(SMALL, seed=0, checkers=["explore_dfs", "explore_random"], mutants=FEW)


def test_small_matrix_kills_and_raises_no_false_alarm(small: KillMatrix) -> None:
    assert small.unkilled() == []
    assert small.errors() == []
    assert small.false_alarms == 0
    assert small.ok
    # One control run per (seed, checker), each one actually ran and passed.
    assert [(c, s) for c, s, _ in small.false_alarm_runs] == [
        ("explore_dfs", 0),
        ("explore_random", 0),
    ]
    assert all(o.applicable and not o.killed for _, _, o in small.false_alarm_runs)
    assert small.properties_of("deleted-bh-runs") == ["P2"]
    assert small.properties_of("non-home-thread-poll") == ["P3"]
    assert small.properties_of("recursive-release-drops-all") == ["P1"]
    pk = small.property_kills()
    assert pk["P1"] == ["recursive-release-drops-all"] and pk["LIVE"] == []


def test_small_matrix_json_shape(small: KillMatrix) -> None:
    data = json.loads(json.dumps(small.to_json()))
    assert data["false_alarms"] == 0
    assert data["budget"] == "test" and data["seed"] == 0
    assert data["checkers"] == ["explore_dfs", "explore_random"]
    assert data["unkilled"] == [] and data["errors"] == []
    assert [m["name"] for m in data["mutants"]] == FEW
    for m in data["mutants"]:
        spec = mutant_by_name()[m["name"]]
        assert m["qemu_commit"] == spec.qemu_commit
        assert m["property"] == spec.property
        assert m["killed_by"] == ["explore_dfs", "explore_random"]
        assert isinstance(m["seconds_to_kill"], float) and m["seconds_to_kill"] >= 0
        assert isinstance(m["counterexample_steps"], int) and m["counterexample_steps"] > 0
        assert set(m["checkers"]) == {"explore_dfs", "explore_random"}
        for cell in m["cells"]:
            assert set(cell) == {"checker", "killed", "seconds", "steps"}
            assert cell["killed"] is True
    assert len(data["false_alarm_runs"]) == 2
    assert data["cell_work"] == 300 and data["false_alarm_work"] == 80
    assert data["cell_seconds_cap"] == SMALL.cell_seconds > 0
    assert data["false_alarm_seconds_cap"] == SMALL.false_alarm_seconds > 0
    assert data["undecided"] == [] and data["inconclusive"] == []


def test_table_names_every_mutant_and_the_summary(small: KillMatrix) -> None:
    table = small.format_table()
    for name in FEW:
        assert re.search(rf"^{re.escape(name)}\s", table, re.M)
    assert "3/3 mutants killed; false alarms: 0 in 2 control run(s)" in table
    assert "P1 1/" in table and "P2 1/" in table and "P3 1/" in table


def test_a_kill_replays(small: KillMatrix) -> None:
    """The schedule a cell reports reproduces the failure under the mutant, not without."""
    cell = small.cells[("deleted-bh-runs", "explore_random")]
    m = re.search(r"aioctx-verify replay --mutant deleted-bh-runs '([^']+)'", cell.detail)
    assert m, cell.detail
    programs = {p.name: probe_program(p) for p in PROBES.values()}
    with mutant_by_name()["deleted-bh-runs"].apply():
        assert replay(m.group(1), programs).verdict == "fail"
    assert replay(m.group(1), programs).verdict != "fail"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"checkers": ["explore_dfs", "nope"]}, "unknown checker(s) nope; known: model"),
        ({"mutants": ["deleted-bh-runs", "nope"]}, "unknown mutant(s) nope"),
        ({"budget": "weekly"}, "unknown budget 'weekly'; use smoke, pr, nightly"),
        ({"budget": -3}, "budget must be a positive number of seconds"),
        ({"budget": "0"}, "budget must be a positive number of seconds"),
        ({"budget": "nan"}, "budget must be a positive number of seconds"),
        ({"budget": float("inf")}, "budget must be a positive number of seconds"),
    ],
)
def test_bad_names_raise_value_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        kill_matrix(**kwargs)  # type: ignore[arg-type]


def test_resolve_budget() -> None:
    assert resolve_budget("pr") is BUDGETS["pr"]
    assert resolve_budget(SMALL) is SMALL
    assert resolve_budget("pr", false_alarm_seeds=0).false_alarm_seeds == 0
    a = resolve_budget(60, mutants=27, checkers=6, jobs=1)
    b = resolve_budget(60, mutants=27, checkers=6, jobs=2)
    c = resolve_budget("120", mutants=27, checkers=6, jobs=1)
    assert a.name == "60s" and c.name == "120s"
    assert 0 < a.cell_work < b.cell_work and a.cell_work < c.cell_work
    assert a.false_alarm_work > 0 and a.false_alarm_seeds == 1
    # Seconds become work through the fixed nominal cost of a unit, never a measurement of
    # this machine: 60 s, one job, 27 x 6 cells -> 48 s to spend, three quarters of it over
    # the cells with a factor 2 (0.444 s a cell), a quarter over the 6 control runs (2 s).
    assert WORK_UNIT_SECONDS == 0.005
    assert (a.cell_work, a.false_alarm_work) == (89, 400)
    assert resolve_budget(60, mutants=27, checkers=6, jobs=1) == a
    # The caps are safety nets, well above the work's nominal time.
    assert a.cell_seconds >= 10 * a.cell_work * WORK_UNIT_SECONDS
    assert a.false_alarm_seconds >= 10 * a.false_alarm_work * WORK_UNIT_SECONDS


def test_presets_are_work_budgets() -> None:
    for name, b in BUDGETS.items():
        assert b.name == name
        assert isinstance(b.cell_work, int) and b.cell_work >= 1, b
        assert isinstance(b.false_alarm_work, int) and b.false_alarm_work >= 1, b
        assert b.cell == CellBudget(b.cell_work, b.cell_seconds)
        assert b.false_alarm == CellBudget(b.false_alarm_work, b.false_alarm_seconds)
        assert b.cell_seconds >= 10 * b.cell_work * WORK_UNIT_SECONDS
    assert BUDGETS["smoke"].cell_work < BUDGETS["pr"].cell_work < BUDGETS["nightly"].cell_work
    explicit = MatrixBudget("x", 10, 1, 20, cell_seconds=3.0, false_alarm_seconds=4.0)
    assert (explicit.cell, explicit.false_alarm) == (CellBudget(10, 3.0), CellBudget(20, 4.0))
    with pytest.raises(ValueError, match="work must be at least 1"):
        MatrixBudget("x", 0, 1, 20)


def test_cell_budget() -> None:
    b = CellBudget(120, 6.0)
    assert b.work_bound and b.nominal_seconds == pytest.approx(0.6)
    assert (b.count(1), b.count(3), b.count(1000)) == (120, 40, 1)
    legacy = CellBudget.of(0.4)  # a bare number of seconds: time-budgeted, no work
    assert legacy == CellBudget(None, 0.4) and not legacy.work_bound
    assert legacy.count(1) is None and legacy.nominal_seconds == 0.4
    assert CellBudget.of(b) is b
    assert CellBudget.for_work(10) == CellBudget(10, 5.0)
    assert CellBudget.for_work(1000).seconds == pytest.approx(50.0)
    with pytest.raises(ValueError, match="at least 1 unit"):
        CellBudget(0, 1.0)
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="positive and finite"):
            CellBudget(10, bad)


@pytest.fixture
def stand_ins() -> Iterator[list[str]]:
    """Checkers registered for one test: one kills every mutant (and never the control)
    without naming a property, one always fails (false alarm), one never kills, one
    raises, one answers with something that is not a CheckOutcome, one is always
    inconclusive (its cap ran out), one records the budgets it was handed."""

    def kills(mutant: Mutant, seed: int, budget: CellBudget) -> CheckOutcome:
        if mutant is NO_MUTANT:
            return CheckOutcome.survived(0.01, "nothing")
        return CheckOutcome.kill(0.01, "P3 stand-in saw it", None, "probe check", steps=3)

    def alarms(mutant: Mutant, seed: int, budget: CellBudget) -> CheckOutcome:
        return CheckOutcome.kill(0.01, "LIVE stand-in always fails", "LIVE", "scheduler", steps=1)

    def never(mutant: Mutant, seed: int, budget: CellBudget) -> CheckOutcome:
        return CheckOutcome.survived(0.01, "nothing")

    def broken(mutant: Mutant, seed: int, budget: CellBudget) -> CheckOutcome:
        raise RuntimeError("checker bug")

    def shapeless(mutant: Mutant, seed: int, budget: CellBudget) -> CheckOutcome:
        # A look-alike with the old fields: the matrix no longer reads answers by duck typing.
        return types.SimpleNamespace(  # type: ignore[return-value]
            killed=True, seconds=0.01, counterexample_steps=1, detail="P1 x",
            killed_by_property="P1",
        )

    def unsure(mutant: Mutant, seed: int, budget: CellBudget) -> CheckOutcome:
        return CheckOutcome.inconclusive(0.01, "cap ran out before the work was done")

    def record(mutant: Mutant, seed: int, budget: CellBudget) -> CheckOutcome:
        RECORDED.append((mutant.name, seed, budget))
        return CheckOutcome.survived(0.01, "nothing")

    names = {
        "t_kills": kills,
        "t_alarms": alarms,
        "t_never": never,
        "t_broken": broken,
        "t_shapeless": shapeless,
        "t_unsure": unsure,
        "t_record": record,
    }
    RECORDED.clear()
    for name, fn in names.items():
        register_checker(name, fn)
    try:
        yield list(names)
    finally:
        for name in names:
            kmod._REGISTRY.pop(name, None)
            kmod._PORTABLE.discard(name)


def test_register_checker_refuses_a_taken_name(stand_ins: list[str]) -> None:
    assert set(stand_ins) <= set(available_checkers())
    with pytest.raises(ValueError, match="already registered"):
        register_checker("t_kills", lambda m, s, t: None)
    register_checker("t_kills", kmod._REGISTRY["t_never"], replace=True)
    assert kmod._REGISTRY["t_kills"] is kmod._REGISTRY["t_never"]


def test_stand_in_checkers(stand_ins: list[str]) -> None:
    km = kill_matrix(SMALL, seed=7, checkers=stand_ins[:5], mutants=FEW[:2])
    cell = km.cells[("deleted-bh-runs", "t_kills")]
    # A checker that names no property kills through none: nothing reads it off the text.
    assert cell.killed and cell.killed_by_property is None and cell.via == "probe check"
    assert km.properties_of("deleted-bh-runs") == ["LIVE"]  # t_alarms named LIVE
    assert km.killed_by("deleted-bh-runs") == ["t_kills", "t_alarms"]
    broken = km.cells[("deleted-bh-runs", "t_broken")]
    assert not broken.killed and broken.verdict == "error" and not broken.applicable
    assert "RuntimeError: checker bug" in broken.detail
    shapeless = km.cells[("deleted-bh-runs", "t_shapeless")]
    assert shapeless.verdict == "error", shapeless
    assert "returned SimpleNamespace; a checker must return a CheckOutcome" in shapeless.detail
    assert len(km.errors()) == 6  # two cells and one control run of each broken checker
    assert km.false_alarms == 1 and not km.ok
    assert "FALSE ALARM t_alarms seed 7" in km.format_table()
    assert km.to_json()["false_alarms"] == 1


def test_the_matrix_hands_every_cell_its_work(stand_ins: list[str]) -> None:
    b = MatrixBudget("t", 7, 2, 11, cell_seconds=3.0, false_alarm_seconds=4.0)
    km = kill_matrix(b, seed=5, checkers=["t_record"], mutants=FEW[:2])
    assert sorted(RECORDED, key=lambda r: (r[0], r[1])) == [
        (FEW[0], 5, CellBudget(7, 3.0)),
        (FEW[1], 5, CellBudget(7, 3.0)),
        ("none", 5, CellBudget(11, 4.0)),
        ("none", 6, CellBudget(11, 4.0)),
    ]
    assert km.unkilled() == FEW[:2]  # survived: the stand-in says its work was done


def test_an_inconclusive_cell_is_neither_a_kill_nor_a_survival(stand_ins: list[str]) -> None:
    km = kill_matrix(SMALL, seed=0, checkers=["t_never", "t_unsure"], mutants=FEW[:1])
    cell = km.cells[(FEW[0], "t_unsure")]
    assert cell.is_inconclusive and not cell.killed and not cell.applicable
    # Not killed, but not a survivor either: undecided, and no failure of the matrix.
    assert km.unkilled() == [] and km.undecided() == [FEW[0]]
    assert km.false_alarms == 0 and km.ok
    assert km.inconclusive() == [f"{FEW[0]} x t_unsure", "false-alarm t_unsure seed 0"]
    table = km.format_table()
    assert re.search(rf"^{re.escape(FEW[0])}\s.*\s-\s+inc\s+UNDECIDED", table, re.M), table
    assert "0/1 mutants killed, 1 undecided; false alarms: 0" in table
    data = km.to_json()
    assert data["undecided"] == [FEW[0]] and data["unkilled"] == []
    assert data["mutants"][0]["checkers"]["t_unsure"]["verdict"] == "inconclusive"
    assert [r["verdict"] for r in data["false_alarm_runs"]] == ["survived", "inconclusive"]
    # The same mutant with only surviving cells is a finding.
    only = kill_matrix(SMALL, seed=0, checkers=["t_never"], mutants=FEW[:1])
    assert only.unkilled() == [FEW[0]] and only.undecided() == [] and not only.ok


def test_the_worker_pool_hands_cells_their_work() -> None:
    """Two jobs: the cells run in worker processes, with the budget's work.  Three schedules
    over the two probes of notify-me-after-scan (which random search needs far more to
    kill): one for the first, the two left for the second."""
    b = MatrixBudget("t", 3, 1, 20)
    km = kill_matrix(
        b, seed=0, checkers=["explore_random", "explore_dfs"],
        mutants=["notify-me-after-scan"], jobs=2,
    )
    cell = km.cells[("notify-me-after-scan", "explore_random")]
    assert cell.verdict == "survived", cell
    assert cell.detail == "bh_wake_tso: pass in 1 schedules; bh_ping_tso: pass in 2 schedules"
    assert km.false_alarms == 0 and km.errors() == []
    assert all(o.verdict == "survived" for _, _, o in km.false_alarm_runs)


# -- work, not seconds: a slow machine changes no verdict ------------------------------------
@pytest.fixture
def slow_machine(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Play a slow machine without sleeping: once ``set_lag(s)`` was called, every run on
    the controlled platform moves this process's ``time.perf_counter`` ``s`` seconds ahead,
    as if each schedule (or stateful example) took that much longer."""
    skew = [0.0]
    lag = [0.0]
    real_clock = time.perf_counter
    real_run = ControlledPlatform.run

    def clock() -> float:
        return real_clock() + skew[0]

    def run(self: ControlledPlatform, *args: Any, **kwargs: Any) -> Any:
        try:
            return real_run(self, *args, **kwargs)
        finally:
            skew[0] += lag[0]

    monkeypatch.setattr(time, "perf_counter", clock)
    monkeypatch.setattr(ControlledPlatform, "run", run)

    def set_lag(seconds: float) -> None:
        lag[0] = seconds

    return set_lag


#: A smoke cell: 120 work units; the cap is only a hang guard here (pytest-timeout is the
#: test's bound), so the work decides.
CELL = CellBudget(120, 600.0)
_TIMINGS = re.compile(r"\d+\.\d+ ?s\b")


@pytest.mark.parametrize(
    ("mutant", "checker", "verdict"),
    [
        # The regression of issue 16: a TSO-only lost wake-up (under load, a time budget ran
        # too few schedules or examples for it).
        ("notify-me-after-scan", "explore_pct", "killed"),
        ("iothread-stop-flag", "stateful_multi", "killed"),
        # Kills that take PCT tens of schedules: seconds would decide them, work does not.
        ("nonsticky-kick", "explore_pct", "killed"),
        ("bh-nonatomic-test-and-set", "explore_pct", "killed"),
        # Random search needs more than 120 schedules for this one: survived, all work done.
        ("bh-nonatomic-test-and-set", "explore_random", "survived"),
    ],
)
def test_work_budgeted_cell_has_the_same_verdict_on_a_slow_machine(
    slow_machine: Callable[[float], None], mutant: str, checker: str, verdict: str
) -> None:
    m = mutant_by_name()[mutant]
    fast = run_checker(checker, m, 0, CELL)
    slow_machine(0.05)  # 10 times the nominal 5 ms of a unit: 120 schedules "take" 6 s
    slow = run_checker(checker, m, 0, CELL)
    assert fast.verdict == slow.verdict == verdict, (fast, slow)
    assert fast.killed_by_property == slow.killed_by_property
    if verdict == "survived":  # the same work, hence the same report
        assert _TIMINGS.sub("", fast.detail) == _TIMINGS.sub("", slow.detail)
    elif checker.startswith("explore"):  # found by the same schedule
        found = re.compile(r"after \d+ schedule\(s\)")
        assert found.findall(fast.detail) == found.findall(slow.detail) != []


def test_a_time_budget_would_lose_the_kill_on_the_slow_machine(
    slow_machine: Callable[[float], None],
) -> None:
    """What issue 16 saw: the same slow machine and the same cell budgeted by 0.6 s of wall
    time (a bare number) runs too few schedules and reports the mutant survived."""
    slow_machine(0.05)
    out = run_checker("explore_pct", mutant_by_name()["bh-nonatomic-test-and-set"], 0, 0.6)
    assert out.verdict == "survived", out


@pytest.mark.parametrize(
    ("mutant", "checker"),
    [
        ("notify-me-after-scan", "explore_random"),
        ("notify-me-after-scan", "explore_dfs"),
        ("notified-bug2", "stateful_multi"),
        ("none", "model"),
        ("none", "explore_pct"),
        ("none", "stateful_multi"),
        ("none", "stress_real"),
    ],
)
def test_a_cap_that_runs_out_before_the_work_is_inconclusive_never_survived(
    slow_machine: Callable[[float], None], mutant: str, checker: str
) -> None:
    slow_machine(0.05)
    m = NO_MUTANT if mutant == "none" else mutant_by_name()[mutant]
    out = run_checker(checker, m, 0, CellBudget(400, 0.01))
    assert out.verdict == "inconclusive", out
    assert not out.killed and not out.applicable


def test_a_matrix_whose_caps_run_out_reports_inconclusive_cells(
    slow_machine: Callable[[float], None],
) -> None:
    slow_machine(0.05)
    b = MatrixBudget("tiny", 120, 1, 120, cell_seconds=0.01, false_alarm_seconds=0.01)
    km = kill_matrix(
        b, checkers=["explore_random", "explore_dfs"], mutants=["notify-me-after-scan"]
    )
    assert km.undecided() == ["notify-me-after-scan"] and km.unkilled() == []
    assert km.false_alarms == 0 and km.ok
    assert all(o.is_inconclusive for o in km.cells.values())
    assert all(o.is_inconclusive for _, _, o in km.false_alarm_runs)
    data = km.to_json()
    cells = data["mutants"][0]["checkers"]
    assert {c["verdict"] for c in cells.values()} == {"inconclusive"}
    assert not any(c["killed"] for c in cells.values())
    assert "UNDECIDED (inconclusive)" in km.format_table()


def test_each_checker_maps_work_to_its_own_unit() -> None:
    """Work decides how much each checker does: lockstep programs, stateful examples
    (cached repeats do not run), real-thread trials (schedules: see the worker-pool test)."""
    single = run_checker("stateful_single", NO_MUTANT, 0, CellBudget(PROGRAM_WORK * 5, 600.0))
    assert single.verdict == "survived", single
    # Five examples; Hypothesis may also start a program it then drops (an overrun of its
    # data buffer is no example), which the count includes.
    ran = int(re.search(r"no failure in (\d+) lockstep programs", single.detail).group(1))  # type: ignore[union-attr]
    assert 5 <= ran <= 7, single.detail
    multi = run_checker("stateful_multi", NO_MUTANT, 0, CellBudget(12, 600.0))
    assert multi.verdict == "survived", multi
    runs = int(re.search(r"no failure in (\d+) runs", multi.detail).group(1))  # type: ignore[union-attr]
    assert 1 <= runs <= 12
    trials = kill_checker(
        NO_MUTANT, 0, CellBudget(TRIAL_WORK * 3, 600.0), workloads=["bh-fan-in"], noise=False
    )
    assert not trials.killed, trials
    if trials.verdict == "survived":
        assert "survived 3 trials" in trials.detail, trials.detail


# -- the contract ----------------------------------------------------------------------------
def test_check_outcome_says_what_it_means() -> None:
    kill = CheckOutcome.kill(0.5, "x", "P2", "monitor", steps=4, schedule="v1:p:sc:")
    assert kill.killed and kill.applicable and kill.verdict == "killed"
    survived = CheckOutcome.survived(1.0, "nothing")
    assert not survived.killed and survived.applicable and survived.via is None
    na = CheckOutcome.not_applicable("no probe")
    assert not na.killed and not na.applicable
    with pytest.raises(ValueError, match="must say what noticed"):
        CheckOutcome("killed", 0.1, "x", "P1")
    with pytest.raises(ValueError, match="only a kill does"):
        CheckOutcome("survived", 0.1, "x", "P1")


def _raised(fn: Callable[[], object]) -> BaseException:
    try:
        fn()
    except BaseException as e:
        return e
    raise AssertionError("nothing raised")


def test_failures_carry_their_property_by_type_not_by_wording() -> None:
    """impl's refusals map by exception type (the lock's P1, the context's P3); our own
    checks carry the property as data; a message that merely mentions one counts for none."""
    p = RealPlatform()
    ctx = AioContext(p, name="c")
    lock_refusal = _raised(ctx.release)  # nobody holds it
    assert isinstance(lock_refusal, LockNotHeldError)
    assert classify_exception(lock_refusal) == ("P1", "impl error")
    box: list[BaseException] = []
    other = threading.Thread(target=lambda: box.append(_raised(lambda: ctx.aio_poll(False))))
    other.start()
    other.join(10.0)
    assert isinstance(box[0], ContextNotHeldError) and isinstance(box[0], NotOwnerError)
    assert classify_exception(box[0]) == ("P3", "impl error")
    assert classify_exception(UseAfterFree("freed BH read")) == ("P2", "probe check")
    assert classify_exception(ProbeFailure("LIVE", "busy loop")) == ("LIVE", "probe check")
    wrapped = CallbackError("bh", "cb", ProbeFailure("P3", "a BH ran while held"))
    assert classify_exception(wrapped) == ("P3", "probe check")
    assert property_of(RuntimeError("P1 release-by-owner: says P1, is not one")) is None
    assert classify_exception(RuntimeError("x")) == (None, "exception")
    ctx.unref()


# -- the command ---------------------------------------------------------------------------
def _one_line_error(r: object, needle: str) -> None:
    err = r.stderr  # type: ignore[attr-defined]
    assert r.exit_code == 2, (r.exit_code, r.output)  # type: ignore[attr-defined]
    assert needle in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_cli_kills_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "km.json"
    r = CliRunner().invoke(
        main,
        [
            "mutants",
            "--budget", "3",
            "--seed", "1",
            "--checkers", "explore_dfs",
            "--mutants", "deleted-bh-runs,non-home-thread-poll",
            "--json", str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "2/2 mutants killed; false alarms: 0" in r.stdout
    assert re.search(r"^deleted-bh-runs\s+P2\s+\d+\.\d\ds\s+P2$", r.stdout, re.M), r.stdout
    data = json.loads(out.read_text())
    assert data["seed"] == 1 and data["budget"] == "3s" and data["false_alarms"] == 0
    assert [m["name"] for m in data["mutants"]] == ["deleted-bh-runs", "non-home-thread-poll"]
    for m in data["mutants"]:
        assert {"name", "qemu_commit", "property", "killed_by", "seconds_to_kill",
                "counterexample_steps"} <= set(m)
        assert m["killed_by"] == ["explore_dfs"]
    assert not list(out.parent.glob(".km.json.*"))  # no temporary file left beside it


def test_cli_exit_1_when_a_mutant_survives(stand_ins: list[str], tmp_path: Path) -> None:
    out = tmp_path / "km.json"
    out.write_text("old")
    r = CliRunner().invoke(
        main, ["mutants", "--budget", "1", "--checkers", "t_never",
               "--mutants", "deleted-bh-runs", "--json", str(out)],
    )
    assert r.exit_code == 1, r.output
    assert "NOT KILLED" in r.stdout and "not killed: deleted-bh-runs" in r.stdout
    assert json.loads(out.read_text())["unkilled"] == ["deleted-bh-runs"]


def test_cli_exit_1_on_a_false_alarm(stand_ins: list[str]) -> None:
    r = CliRunner().invoke(
        main, ["mutants", "--budget", "1", "--checkers", "t_alarms",
               "--mutants", "deleted-bh-runs"],
    )
    assert r.exit_code == 1, r.output
    assert "false alarms: 1" in r.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--budget", "weekly"], "Invalid value for --budget: unknown budget 'weekly'"),
        (["--budget", "-1"], "Invalid value for --budget: budget must be a positive"),
        (["--checkers", "explore_dfs,bogus"], "Invalid value for --checkers: unknown checker"),
        (["--checkers", ","], "Invalid value for --checkers: no checker named"),
        (["--mutants", "bogus"], "Invalid value for --mutants: unknown mutant(s) bogus"),
        (["--jobs", "0"], "Invalid value for '--jobs'"),
        (["--seed", "x"], "Invalid value for '--seed'"),
        (["--frobnicate"], "No such option"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(args: list[str], needle: str) -> None:
    r = CliRunner().invoke(main, ["mutants", *args])
    _one_line_error(r, needle)
    assert r.stderr.startswith("aioctx-verify mutants: error: ")


def test_cli_unwritable_json_is_exit_2(tmp_path: Path) -> None:
    r = CliRunner().invoke(
        main, ["mutants", "--mutants", "deleted-bh-runs", "--json", str(tmp_path)]
    )
    _one_line_error(r, f"Invalid value for --json: {tmp_path} is a directory")


def test_stress_real_gives_real_only_mutants_the_conformance_workload() -> None:
    """No explorer runs impl/_real.py (the controlled platform replaces it): stress_real
    gives its mutants the platform-primitives workload first, and the control run on the
    unmutated impl runs it too (a false alarm there would show)."""
    from aioctx_verify.stress.mutation import generate_mutants

    (g,) = [m for m in generate_mutants() if m.operator == "lock-move-out"
            and m.file == "impl/_real.py" and m.function == "_RealAtomic.exchange"
            and m.variant == "last"]
    out = run_checker("stress_real", g.as_mutant(), 0, CellBudget(120, 600.0))
    assert out.killed, out.detail
    assert "platform-primitives" in out.detail and "exchange" in out.detail
    control = run_checker("stress_real", NO_MUTANT, 0, CellBudget(120, 600.0))
    assert not control.killed, control.detail
