"""Conflict-directed search: each run brings two threads' accesses to one shared object
together (``ConflictStrategy``), in the corpus, in generated programs and in the kill
matrix's generated cell, where a mutant's lines steer it."""

from __future__ import annotations

import inspect

import pytest

from aioctx_verify.stress.controlled import (
    Conflicts,
    ConflictStrategy,
    RandomStrategy,
    make_strategy,
)
from aioctx_verify.stress.controlled._platform import ControlledPlatform
from aioctx_verify.stress.controlled._schedule import Schedule
from aioctx_verify.stress.explore._corpus import CORPUS, corpus_by_name
from aioctx_verify.stress.explore._explore import (
    Budget,
    Program,
    explore,
    replay,
    run_schedule,
)

DECOYS = 12


def _late_write(p: ControlledPlatform) -> None:
    """Thread 1 writes ``flag`` after 30 stores of its own; the main thread reads it first
    thing.  Reading the write is the 'bug': a random walk must run thread 1 31 times in a
    row to show it.  Both threads also touch ``DECOYS`` shared cells (conflicts too)."""
    flag = p.atomic(0, "flag")
    mine = p.atomic(0, "mine")
    decoys = [p.atomic(0, f"decoy{i}") for i in range(DECOYS)]

    def writer() -> None:
        for d in decoys:
            d.fetch_add(1)
        for _ in range(30):
            mine.store(1)
        flag.store(1)  # the focus line (FLAG_LINE)

    t = p.start_thread(writer, "writer")
    for d in decoys:
        d.fetch_add(1)
    if flag.load() == 1:
        raise AssertionError("read the late write")
    t.join()


def _flag_line() -> int:
    lines, first = inspect.getsourcelines(_late_write)
    return first + next(i for i, text in enumerate(lines) if "flag.store(1)" in text)


FLAG_LINE = _flag_line()
LATE = Program("late_write", _late_write, expected="bug")


def test_random_walk_does_not_reach_the_late_write() -> None:
    # The peer: the same budget of uniform random schedules never shows it (2^-31 a run).
    r = explore(LATE, strategy=RandomStrategy(0), budget=Budget(300), do_shrink=False)
    assert r.verdict == "pass" and r.schedules == 300


@pytest.mark.parametrize("seed", range(5))
def test_conflict_search_brings_the_late_write_before_the_read(seed: int) -> None:
    strat = ConflictStrategy(seed)
    r = explore(LATE, strategy=strat, budget=Budget(300), do_shrink=False)
    assert r.verdict == "fail", r.summary()
    assert r.failure is not None and "read the late write" in r.failure.message
    # every target is an object two threads touched, one writing: the flag and the decoys
    assert len(strat.conflicts()) == DECOYS + 1
    assert strat.hits >= 1
    # the printed schedule replays the failure under any strategy's absence
    back = replay(r.failure.schedule, {LATE.name: LATE})
    assert back.verdict == "fail" and "read the late write" in back.message


def test_a_focus_on_the_changed_line_steers_the_target() -> None:
    focus = ("tests/test_conflict.py", (FLAG_LINE,))
    counts = {}
    for name, f in (("unfocused", None), ("focused", focus)):
        total = 0
        for seed in range(5):
            r = explore(LATE, strategy=ConflictStrategy(seed, focus=f), budget=Budget(300),
                        do_shrink=False)
            assert r.verdict == "fail", (name, r.summary())
            total += r.schedules
        counts[name] = total
    # focused: the first targeted run picks the flag; unfocused: the 13 objects in turn
    assert counts["focused"] <= 5 * 4, counts
    assert counts["focused"] < counts["unfocused"], counts


def test_what_one_search_learned_steers_the_next_from_its_first_run() -> None:
    first = ConflictStrategy(0)
    assert first.next_run() and first.target is None  # nothing seen yet: a random walk
    run_schedule(LATE, first)
    second = ConflictStrategy(1, learned=first.learned)
    assert second.next_run() and second.target in first.conflicts()
    assert isinstance(second.learned, Conflicts) and second.learned is first.learned


def test_patience_ends_the_steering() -> None:
    # With no patience left a run is a random walk: it never shows the late write.
    r = explore(LATE, strategy=ConflictStrategy(0, patience=0), budget=Budget(100),
                do_shrink=False)
    assert r.verdict == "pass"


def test_make_strategy_knows_conflict() -> None:
    assert isinstance(make_strategy("conflict", 3), ConflictStrategy)
    with pytest.raises(ValueError, match="conflict"):
        make_strategy("nope", 0)


PROGRAMS = corpus_by_name()


@pytest.mark.parametrize("name", [p.name for p in CORPUS if p.expected == "bug"])
def test_conflict_search_finds_every_corpus_bug(name: str) -> None:
    prog = PROGRAMS[name]
    r = explore(prog, strategy="conflict", budget=Budget(3000, 120), do_shrink=False)
    assert r.verdict == "fail", r.summary()
    assert r.failure is not None
    back = replay(r.failure.schedule, PROGRAMS)
    assert back.verdict == "fail" and back.kind == r.failure.kind
    assert Schedule.parse(r.failure.schedule).program == name


@pytest.mark.parametrize("name", [p.name for p in CORPUS if p.expected == "safe"])
def test_conflict_search_passes_every_safe_corpus_program(name: str) -> None:
    r = explore(PROGRAMS[name], strategy="conflict", budget=Budget(60, 120), do_shrink=False)
    assert r.verdict == "pass", r.summary()


def test_the_campaign_runs_conflict_search_by_default() -> None:
    from aioctx_verify._campaign import STRATEGIES, plan_campaign

    assert "conflict" in STRATEGIES
    assert plan_campaign().strategies == STRATEGIES
    # conflict alone: the corpus steps of the other strategies leave; generated and races
    # (which run every chosen strategy) stay
    only = plan_campaign(strategies=("conflict",))
    assert {"generated", "races"} <= set(only.steps)
    assert not {"random", "pct", "dfs"} & set(only.steps)
    with pytest.raises(ValueError, match="conflict"):
        plan_campaign(strategies=("bogus",))
