"""The kill matrix (stress.mutation._matrix) and the ``aioctx-verify mutants`` command.

Small runs only: a few mutants, the fast explorers or stand-in checkers, budgets of a
second or two.  The full ``pr`` matrix is measured by ``aioctx-verify mutants --budget pr``.
"""

from __future__ import annotations

import json
import re
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path

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
from aioctx_verify.stress.explore._explore import replay
from aioctx_verify.stress.mutation import (
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
)
from aioctx_verify.stress.mutation._probes import PROBES, probe_program

SMALL = MatrixBudget("test", 1.5, 1, 0.4)
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
        assert isinstance(m["seconds_to_kill"], float) and 0 <= m["seconds_to_kill"] < 5
        assert isinstance(m["counterexample_steps"], int) and m["counterexample_steps"] > 0
        assert set(m["checkers"]) == {"explore_dfs", "explore_random"}
        for cell in m["cells"]:
            assert set(cell) == {"checker", "killed", "seconds", "steps"}
            assert cell["killed"] is True
    assert len(data["false_alarm_runs"]) == 2


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
    assert 0 < a.cell_seconds < b.cell_seconds and a.cell_seconds < c.cell_seconds
    assert a.false_alarm_seconds > 0 and a.false_alarm_seeds == 1


@pytest.fixture
def stand_ins() -> Iterator[list[str]]:
    """Checkers registered for one test: one kills every mutant (and never the control)
    without naming a property, one always fails (false alarm), one never kills, one
    raises, one answers with something that is not a CheckOutcome."""

    def kills(mutant: Mutant, seed: int, seconds: float) -> CheckOutcome:
        if mutant is NO_MUTANT:
            return CheckOutcome.survived(0.01, "nothing")
        return CheckOutcome.kill(0.01, "P3 stand-in saw it", None, "probe check", steps=3)

    def alarms(mutant: Mutant, seed: int, seconds: float) -> CheckOutcome:
        return CheckOutcome.kill(0.01, "LIVE stand-in always fails", "LIVE", "scheduler", steps=1)

    def never(mutant: Mutant, seed: int, seconds: float) -> CheckOutcome:
        return CheckOutcome.survived(0.01, "nothing")

    def broken(mutant: Mutant, seed: int, seconds: float) -> CheckOutcome:
        raise RuntimeError("checker bug")

    def shapeless(mutant: Mutant, seed: int, seconds: float) -> CheckOutcome:
        # A look-alike with the old fields: the matrix no longer reads answers by duck typing.
        return types.SimpleNamespace(  # type: ignore[return-value]
            killed=True, seconds=0.01, counterexample_steps=1, detail="P1 x",
            killed_by_property="P1",
        )

    names = {
        "t_kills": kills,
        "t_alarms": alarms,
        "t_never": never,
        "t_broken": broken,
        "t_shapeless": shapeless,
    }
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
    km = kill_matrix(SMALL, seed=7, checkers=stand_ins, mutants=FEW[:2])
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
