"""Model counterexamples replayed on impl (stress/explore/_from_model.py).

For each model bug whose shortest counterexample impl can mirror, the guided run with the
catalogue mutant shows the property the model path violates, matching every step of the
path; the same guidance on the correct impl passes; the recorded schedule reruns exactly
and shows the property again.  Models that need the GSource role are reported "not
mirrored", never faked.  Each run is a few hundred scheduling steps: the whole file is fast.
"""

from __future__ import annotations

import pytest

from aioctx_verify import model
from aioctx_verify.stress.controlled import InvalidScheduleError, Schedule
from aioctx_verify.stress.explore import REPLAY_PREFIX
from aioctx_verify.stress.explore._from_model import (
    FromModelError,
    NotMirroredError,
    guided_strategy,
    model_program_by_name,
    program_for,
    replay_model_path,
    replay_model_schedule,
)

#: Flags whose shortest model counterexample impl reproduces along the whole path
#: (notified-bug1 and rerun-same-iteration only since guidance follows eventless steps by
#: their platform operation: their paths stop a thread between two such steps).
MIRRORED = (
    "schedule-takes-lock",
    "non-home-thread-poll",
    "release-by-non-owner-accepted",
    "no-contention-callback",
    "nonsticky-kick",
    "lock-no-fifo",
    "notified-bug1",
    "rerun-same-iteration",
)


@pytest.mark.parametrize("flag", MIRRORED)
def test_mutant_shows_the_model_violation_and_correct_impl_is_clean(flag: str) -> None:
    r = replay_model_path(flag)
    assert r.verdict == "reproduced", r.reason
    assert r.mutated is not None and r.correct is not None
    assert r.mutated.prop == model.BUG_PROPERTY[flag]
    assert r.complete and r.matched == r.path_length, r.mutated.divergence
    assert r.correct.verdict == "pass", r.correct.message
    assert r.replayed_prop == r.expected
    assert r.replay == f"{REPLAY_PREFIX} --mutant {flag} '{r.schedule}'"


@pytest.mark.parametrize("flag", ["lock-no-fifo", "nonsticky-kick", "notified-bug1"])
def test_schedule_replays_exactly(flag: str) -> None:
    r = replay_model_path(flag)
    sched = Schedule.parse(r.schedule)
    assert sched.program.startswith(f"model.{flag}.")
    mutated = replay_model_schedule(r.schedule, flag)
    assert mutated.verdict == "fail"
    assert (mutated.prop or "LIVE") == model.BUG_PROPERTY[flag]
    # The same schedule on the correct impl is either clean or cannot be followed (its
    # threads take other branches); it never shows a violation.
    correct = replay_model_schedule(r.schedule, None)
    assert correct.verdict in ("pass", "inconclusive"), correct.message


def test_eventless_steps_are_followed_by_platform_operation() -> None:
    # notified-bug1: the client stops after reading notify_me (notify.read) and after
    # publishing notified (notify.notified1), both eventless, while the IOThread decrements
    # notify_me and accepts; the event is then set with notified clear, and the idle
    # IOThread spins (LIVE, from the program's busy-loop check, not a deadlock).
    r = replay_model_path("notified-bug1")
    assert r.verdict == "reproduced" and r.complete, r.reason
    assert r.mutated is not None and r.mutated.kind == "exception"
    assert "busy loop" in r.mutated.message
    assert r.correct is not None and r.correct.verdict == "pass", r.correct.message
    assert "--mutant notified-bug1 'v1:model.notified-bug1." in r.replay


def test_lasso_witness_is_followed_to_its_loop() -> None:
    from aioctx_verify.model._z3_live import explicit_liveness

    _, witness = explicit_liveness(model.bug_config("notified-bug1"), 100_000)
    assert witness is not None
    r = replay_model_path("notified-bug1", witness.path)
    assert r.verdict == "reproduced", r.reason
    assert r.complete and r.matched == len(witness.path), r.mutated
    assert r.replayed_prop == "LIVE"


def test_bh_nonatomic_path_is_followed_past_its_eventless_steps() -> None:
    # The client is stopped between schedule.xchg (the plain test) and schedule.write (the
    # store), both eventless, and the IOThread runs bh0 in between.  The model mutant also
    # clears the flag after the callback (poll.bh_clear); the catalogue mutant changes
    # qemu_bh_schedule only, so impl's aio_bh_poll has claimed the flag before the run and
    # the second schedule is "new", not "coalesced": the path leaves impl at that step
    # (12), and neither run fails.
    r = replay_model_path("bh-nonatomic-test-and-set")
    assert r.matched >= 12, r.reason
    assert r.verdict == "not reproduced"
    assert "bh_schedule_end" in r.reason
    assert r.correct is not None and r.correct.verdict == "pass", r.correct.message


def test_guided_runs_are_deterministic() -> None:
    assert replay_model_path("lock-no-fifo").schedule == replay_model_path("lock-no-fifo").schedule


def test_gsource_models_are_reported_not_mirrored() -> None:
    r = replay_model_path("dispatching-flag-shared")
    assert r.verdict == "not mirrored"
    assert "gsource" in r.reason
    assert r.mutated is None and r.schedule == ""


def test_bad_input() -> None:
    with pytest.raises(FromModelError, match="unknown model bug"):
        replay_model_path("no-such-bug")
    cfg = model.bug_config("dispatching-flag-shared")
    with pytest.raises(NotMirroredError, match="gsource"):
        program_for(cfg, model.check_bug("dispatching-flag-shared").path)
    path = model.check_bug("lock-no-fifo").path
    with pytest.raises(FromModelError, match="does not replay"):
        program_for(model.bug_config("lock-no-fifo"), path[1:])
    with pytest.raises(FromModelError, match=r"model\.Action"):
        guided_strategy(["t0 acquire"])  # type: ignore[list-item]
    with pytest.raises(FromModelError, match="ModelConfig"):
        program_for("lock-no-fifo", path)
    assert model_program_by_name("lost_update") is None
    with pytest.raises(InvalidScheduleError, match="unknown model bug"):
        model_program_by_name("model.no-such-bug.io.a")
    with pytest.raises(InvalidScheduleError, match="thread"):
        model_program_by_name("model.lock-no-fifo.io")
    with pytest.raises(InvalidScheduleError, match="bad client operations"):
        model_program_by_name("model.lock-no-fifo.io.zz")
    with pytest.raises(InvalidScheduleError, match="not a model"):
        replay_model_schedule("v1:lost_update:sc:0")
