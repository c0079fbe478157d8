"""The kill-matrix checker ``stateful_single`` (aioctx_verify.stress.stateful._single.checker).

It must kill the mutants a single thread can see (lockstep mismatch, monitor violation or
impl exception, each with its property and a shrunk program), report nothing on the
unmutated impl, and turn a hang into a LIVE failure instead of hanging the matrix.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from unittest import mock

import pytest

from aioctx_verify.impl import AioContext
from aioctx_verify.stress.mutation import CheckOutcome
from aioctx_verify.stress.mutation._catalogue import NO_MUTANT, mutant_by_name
from aioctx_verify.stress.mutation._matrix import available_checkers, run_checker
from aioctx_verify.stress.stateful._single import checker, search

#: Budget per search: every mutant below dies well inside it (about 0.2-1 s unloaded).
BUDGET = 2.5
#: The kill tests end at the first failure, so headroom costs nothing when the machine is
#: fast; a loaded CI runner (xdist on 2 cores) ran 32 programs in 2.5 s, too few for
#: deleted-bh-runs.  Programs are seeded per batch, so a kill needs a fixed number of them.
KILL_BUDGET = 10.0
_MUTANTS = mutant_by_name()
#: Bound on any wait for a leaked worker thread.
WAIT = 10.0


@pytest.mark.parametrize(
    ("name", "prop", "via"),
    [
        ("rerun-same-iteration", "P2", "lockstep"),  # a rescheduled BH runs twice per walk
        ("deleted-bh-runs", "P2", "lockstep"),  # a deleted BH stays scheduled
        ("bh-flag-cleared-after-callback", "P2", "lockstep"),  # a self-reschedule is lost
        ("recursive-release-drops-all", "P1", "lockstep"),  # depth 0 after a nested release
        ("schedule-takes-lock", "P2", "monitor"),  # qemu_bh_schedule is no longer lock-free
        ("nested-bh-poll-free", "P2", "exception"),  # use after free in the outer walk
        ("poll-releases-lock", "P3", "monitor"),  # the poller drops the context in its wait
    ],
)
def test_kills_single_thread_visible_mutants(name: str, prop: str, via: str) -> None:
    out = run_checker("stateful_single", _MUTANTS[name], 0, KILL_BUDGET)
    assert out.applicable and out.killed, out.detail
    assert out.seconds <= KILL_BUDGET + 0.5, out.detail
    assert out.killed_by_property == prop, out.detail
    assert out.via == via, out.detail
    assert out.counterexample_steps is not None and 1 <= out.counterexample_steps <= 50
    assert "shrunk to" in out.detail and "program:" in out.detail


@pytest.mark.parametrize("seed", range(5))
def test_no_false_alarm_on_the_unmutated_impl(seed: int) -> None:
    out = run_checker("stateful_single", NO_MUTANT, seed, 1.5)
    assert out.applicable and not out.killed, out.detail
    assert out.counterexample_steps is None and out.killed_by_property is None
    assert "no failure in" in out.detail


def test_registered_in_the_kill_matrix_with_the_outcome_shape() -> None:
    assert "stateful_single" in available_checkers()
    out = checker(_MUTANTS["deleted-bh-runs"], 1, BUDGET)
    assert isinstance(out, CheckOutcome)  # the matrix's own type, read as it is
    assert out.killed and out.killed_by_property == "P2" and out.via == "lockstep"
    assert out.counterexample_steps is not None and out.seconds <= BUDGET + 0.5


def test_search_is_seeded_and_shrinks() -> None:
    """Generation depends only on the seed: the first failing program is the same twice;
    the reported one is the smallest recorded and no larger than the first."""
    firsts = []
    for _ in range(2):
        with _MUTANTS["deleted-bh-runs"].apply():
            res = search(seconds=10.0, seed=3, shrink_seconds=0.5)
        assert res.found is not None and res.first is not None
        assert res.found.steps <= res.first.steps
        assert res.found.steps == min(f.steps for f in res.failures)
        firsts.append(res.first.program)
    assert firsts[0] == firsts[1]


# ------------------------------------------------------------------------------------------
# Hangs are bounded
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Patch:
    """A throwaway mutant (a :class:`MutantLike`) around one mock.patch.object."""

    name: str
    replacement: Callable[..., object]
    attr: str = "aio_poll"

    def apply(self) -> contextlib.AbstractContextManager[object]:
        return mock.patch.object(AioContext, self.attr, self.replacement)


def _blocking_poll(wake: threading.Event) -> Callable[[AioContext, bool], bool]:
    """aio_poll whose blocking form ignores ready work and waits for ``wake`` (set after
    it started; bounded) instead of polling."""
    orig = AioContext.aio_poll

    def poll(self: AioContext, blocking: bool) -> bool:
        if blocking:
            wake.clear()
            wake.wait(WAIT)
            return False
        return orig(self, blocking)

    return poll


def test_a_poll_that_sleeps_until_notified_is_a_live_failure() -> None:
    """The blocking poll ignores ready work and waits for an aio_notify: the step's own
    watchdog (hang_after) wakes it and the step fails LIVE."""
    woke = threading.Event()
    orig_notify = AioContext.aio_notify

    def notify(self: AioContext) -> None:
        woke.set()
        orig_notify(self)

    poll = _blocking_poll(woke)
    with _Patch("poll-sleeps", notify, "aio_notify").apply(), _Patch("poll-sleeps", poll).apply():
        res = search(seconds=3.0, seed=0, hang_after=0.2, shrink_seconds=0.5)
    assert res.found is not None and not res.hung
    assert res.found.prop == "LIVE" and res.found.via == "lockstep", res.found
    assert "blocked over" in res.found.message
    assert res.found.program[-1] == "poll_blocking"


def test_a_step_that_never_returns_is_reported_not_waited_for() -> None:
    """The blocking poll ignores aio_notify too: the search abandons the worker after
    step_limit and reports a hang (LIVE, via watchdog); the test then frees the worker."""
    never = threading.Event()
    with _Patch("poll-hangs", _blocking_poll(never)).apply():
        res = search(seconds=3.0, seed=0, hang_after=0.2, step_limit=0.6)
    try:
        assert res.killed and res.hung
        assert res.found is not None
        assert res.found.prop == "LIVE" and res.found.via == "watchdog"
        assert res.found.program[-1] == "poll_blocking"
        assert "did not return" in res.found.message
        assert res.seconds < 3.0 + 0.6 + 2.0
    finally:
        never.set()
        assert res.worker is not None
        res.worker.join(WAIT)
    assert not res.worker.is_alive()
