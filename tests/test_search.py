"""The shared search machinery: :class:`SeededSearch` (every Hypothesis search of the suite)
and :func:`shrink`'s bounds (explore and the kill matrix use the one shrinker)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import seed as hseed
from hypothesis import settings as Settings
from hypothesis import strategies as st

from aioctx_verify.stress.controlled import RandomStrategy, RunOutcome
from aioctx_verify.stress.explore import (
    Budget,
    SearchAbandoned,
    SeededSearch,
    corpus_by_name,
    explore,
    shrink,
)
from aioctx_verify.stress.explore import _explore as explore_mod

PROGRAMS = corpus_by_name()


def _drawn(search: SeededSearch[int], fail_at: int | None) -> list[int]:
    """Run ``search`` over integers; ``fail_at``: a drawn value that fails the test."""
    seen: list[int] = []

    def chunk(settings: Settings, chunk_seed: int) -> None:
        @hseed(chunk_seed)
        @settings
        @given(st.integers(0, 10**6))
        def test(x: int) -> None:
            if not search.allows():
                return
            search.runs += 1
            seen.append(x)
            if fail_at is not None and x >= fail_at:
                search.record(x)
                raise AssertionError(x)

        test()

    search.run(chunk)
    return seen


def test_a_search_is_a_function_of_its_seed() -> None:
    runs = [
        _drawn(SeededSearch(seed=5, seconds=30, shrink_seconds=5, key=int, chunk=10,
                            max_examples=30), None)
        for _ in range(2)
    ]
    assert runs[0] == runs[1] and len(runs[0]) == 30
    other = _drawn(SeededSearch(seed=6, seconds=30, shrink_seconds=5, key=int, chunk=10,
                                max_examples=30), None)
    assert other != runs[0]


def test_a_failure_is_recorded_shrunk_and_ends_the_search() -> None:
    s: SeededSearch[int] = SeededSearch(seed=0, seconds=30, shrink_seconds=5, key=int)
    _drawn(s, 1000)
    assert s.first is not None and s.found is not None
    assert s.found == min(s.failures) and s.found <= s.first
    assert s.found == 1000  # Hypothesis shrank it to the boundary
    assert s.seconds_to_find is not None and s.seconds_to_find < 30


def test_time_bounds_the_search_and_skipped_examples_do_not_run() -> None:
    s: SeededSearch[int] = SeededSearch(seed=0, seconds=0.0, shrink_seconds=0, key=int)
    t0 = time.perf_counter()
    seen = _drawn(s, None)
    assert time.perf_counter() - t0 < 10
    assert seen == [] and s.runs == 0 and s.out_of_time is False  # no chunk started at all
    # No example bound: only time ends it (checked between chunks and in every example).
    s = SeededSearch(seed=0, seconds=0.3, shrink_seconds=0, key=int, chunk=50)
    t0 = time.perf_counter()
    seen = _drawn(s, None)
    assert time.perf_counter() - t0 < 10
    assert 0 < len(seen) == s.runs <= s.examples


def test_an_error_before_any_failure_is_a_bug_and_propagates() -> None:
    s: SeededSearch[int] = SeededSearch(seed=0, seconds=30, shrink_seconds=5, key=int)

    def chunk(settings: Settings, chunk_seed: int) -> None:
        raise KeyError("a bug in the test body")

    with pytest.raises(KeyError, match="a bug"):
        s.run(chunk)


def test_an_abandoned_search_stops_and_keeps_the_given_failure() -> None:
    s: SeededSearch[int] = SeededSearch(seed=0, seconds=30, shrink_seconds=5, key=int)
    s.abandon(7)
    with pytest.raises(SearchAbandoned):
        s.allows()
    s.record(3)  # ignored: the search ended
    assert s.failures == [7] and s.abandoned
    s.run(lambda settings, seed: pytest.fail("no chunk runs once abandoned"))


def test_explore_hypothesis_keeps_to_its_time_budget() -> None:
    """The hypothesis strategy used to ignore ``Budget.seconds``."""
    t0 = time.perf_counter()
    r = explore(PROGRAMS["atomic_increment"], strategy="hypothesis", budget=Budget(10**6, 0.5))
    assert time.perf_counter() - t0 < 10
    assert r.verdict == "pass" and 0 < r.schedules < 10**6


def _failing_run() -> RunOutcome:
    program = PROGRAMS["lost_update"]
    strat = RandomStrategy(0)
    for _ in range(500):
        strat.next_run()
        out = explore_mod.run_schedule(program, strat)
        if out.verdict == "fail" and out.preemptions > 1:
            return out
    raise AssertionError("lost_update did not fail with two preemptions in 500 runs")


@pytest.mark.parametrize("max_replays", [0, 1, 5])
def test_shrink_is_bounded_in_replays(max_replays: int, monkeypatch: pytest.MonkeyPatch) -> None:
    found = _failing_run()
    calls = [0]
    real = explore_mod.run_schedule

    def counting(*args: object, **kwargs: object) -> RunOutcome:
        calls[0] += 1
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(explore_mod, "run_schedule", counting)
    f = shrink(PROGRAMS["lost_update"], found, "sc", max_replays=max_replays)
    assert calls[0] <= max_replays
    assert f.preemptions <= found.preemptions and f.kind == found.kind


def test_shrink_unbounded_reaches_one_preemption_and_a_time_bound_stops_it() -> None:
    found = _failing_run()
    assert shrink(PROGRAMS["lost_update"], found, "sc").preemptions == 1
    t0 = time.perf_counter()
    f = shrink(PROGRAMS["lost_update"], found, "sc", seconds=0.0)
    assert time.perf_counter() - t0 < 5
    assert (f.preemptions, f.steps) == (found.preemptions, found.steps)  # nothing ran
