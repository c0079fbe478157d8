"""The kill-matrix checker ``stateful_single`` (aioctx_verify.stress.stateful._single.checker).

It must kill the mutants a single thread can see (lockstep mismatch, monitor violation or
impl exception, each with its property and a shrunk program), report nothing on the
unmutated impl, and decide liveness by the run's structure, not the wall clock: a poll that
would sleep forever is a LIVE failure at once; a search that outlives its wall-clock bound is
inconclusive, never a failure.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from unittest import mock

import pytest

from aioctx_verify.impl import AioContext
from aioctx_verify.stress.mutation import CellBudget, CheckOutcome
from aioctx_verify.stress.mutation._catalogue import NO_MUTANT, mutant_by_name
from aioctx_verify.stress.mutation._matrix import available_checkers, run_checker
from aioctx_verify.stress.stateful._single import PROGRAM_WORK, checker, search

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
    assert out.killed_by_property == prop, out.detail
    assert out.via == via, out.detail
    assert out.counterexample_steps is not None and 1 <= out.counterexample_steps <= 50
    assert "shrunk to" in out.detail and "program:" in out.detail


@pytest.mark.parametrize("seed", range(5))
def test_no_false_alarm_on_the_unmutated_impl(seed: int) -> None:
    # A work budget (programs), not seconds: a loaded runner once ran no program in 1.5 s
    # and the run was (rightly) inconclusive; the seconds are only a backstop.
    out = run_checker("stateful_single", NO_MUTANT, seed, CellBudget(PROGRAM_WORK * 20, 600.0))
    assert out.applicable and not out.killed, out.detail
    assert out.counterexample_steps is None and out.killed_by_property is None
    m = re.search(r"no failure in (\d+) lockstep programs", out.detail)
    assert m is not None and int(m.group(1)) >= 20, out.detail


def test_registered_in_the_kill_matrix_with_the_outcome_shape() -> None:
    assert "stateful_single" in available_checkers()
    out = checker(_MUTANTS["deleted-bh-runs"], 1, BUDGET)
    assert isinstance(out, CheckOutcome)  # the matrix's own type, read as it is
    assert out.killed and out.killed_by_property == "P2" and out.via == "lockstep"
    assert out.counterexample_steps is not None and 1 <= out.counterexample_steps <= 50


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
# Liveness by structure; wall-clock time only ends a search (inconclusive)
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Patch:
    """A throwaway mutant (a :class:`MutantLike`) around one mock.patch.object."""

    name: str
    replacement: Callable[..., object]
    attr: str = "aio_poll"

    def apply(self) -> contextlib.AbstractContextManager[object]:
        return mock.patch.object(AioContext, self.attr, self.replacement)


def test_a_poll_that_would_sleep_forever_is_a_live_failure_at_once() -> None:
    """The blocking poll ignores ready work and sleeps in the poller with no timeout: in
    the lockstep machine's single thread nothing could wake it, so the step fails LIVE
    (BlockedForever) without any wait, however slow the machine."""
    orig = AioContext.aio_poll

    def poll(self: AioContext, blocking: bool) -> bool:
        if blocking:
            self._poller.poll(-1)
        return orig(self, blocking)

    with _Patch("poll-sleeps", poll).apply():
        res = search(seconds=10.0, seed=0, shrink_seconds=0.5)
    assert res.found is not None and not res.inconclusive
    assert res.found.prop == "LIVE" and res.found.via == "lockstep", res.found
    assert "nothing could ever wake it" in res.found.message
    assert res.found.program[-1] == "poll_blocking"


def test_a_step_that_never_returns_ends_the_search_inconclusive() -> None:
    """The blocking poll waits on an event outside the platform (invisible to it): the
    search gives up at its wall-clock bound and says inconclusive, not a failure; the test
    then frees the abandoned worker."""
    never = threading.Event()
    orig = AioContext.aio_poll

    def poll(self: AioContext, blocking: bool) -> bool:
        if blocking:
            never.wait(WAIT)
        return orig(self, blocking)

    with _Patch("poll-hangs", poll).apply():
        res = search(seconds=3.0, seed=0, give_up_after=1.0)
    try:
        assert res.inconclusive and not res.killed, res
        assert res.worker is not None and res.worker.is_alive()
    finally:
        never.set()
        assert res.worker is not None
        res.worker.join(WAIT)
    assert not res.worker.is_alive()
