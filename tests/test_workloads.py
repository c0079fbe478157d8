"""Real-thread stress workloads: no false alarm on impl, grading, watchdog, noise, kills.

Every run here is short (a few tenths of a second) and every wait is bounded; the tests
that make a trial hang give the watchdog a deadline well under a second.  Verdicts count
work (trials, outcomes), never wall time: where a run's length is set by ``max_trials``, its
``seconds`` is :data:`GUARD`, a hang guard a loaded runner never reaches.
"""

from __future__ import annotations

import inspect
import os
import select
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from aioctx_verify import impl
from aioctx_verify.impl import BH, IOThread, RealPlatform, RFifoLock, UsageError
from aioctx_verify.stress.mutation import CellBudget, GeneratedMutant, generate_mutants
from aioctx_verify.stress.mutation._catalogue import mutant_by_name, rewrite
from aioctx_verify.stress.real._runner import (
    TRIAL_WORK,
    NoiseConfig,
    NoisyPlatform,
    WorkloadResult,
    format_result,
    kill_checker,
    run_workload,
)
from aioctx_verify.stress.real._workloads import (
    WORKLOADS,
    Grade,
    Outcome,
    Params,
    Trial,
    Workload,
    _cas_verdict,
    _exchange_verdict,
    _fetch_add_verdict,
    _in_real_platform,
    _load_verdict,
    _token,
)
from tests.conftest import WAIT, late_starting_platform

A, INTERESTING, F = Grade.ACCEPTABLE, Grade.ACCEPTABLE_INTERESTING, Grade.FORBIDDEN
SMALL_THREADS, SMALL_ROUNDS = 2, 10
#: ``seconds`` for runs whose budget is ``max_trials`` (or one hung trial): a hang guard only.
GUARD = 60.0
#: :func:`kill_checker`'s budget.  It takes only seconds (no trial count) and stops at the
#: first kill, so a generous budget costs time only when a mutant survives.
KILL_SECONDS = 60.0
#: ``patience`` for runs on the real workloads.  Some outcomes are verdicts on time (an
#: acquire not granted within the patience is ``starved``, FORBIDDEN): on a loaded 2-core
#: runner 1 s gave 4 false ``starved`` in 30 acquire-storm trials of the correct impl, 2 s
#: none; 3 s leaves room.  A lost wake-up is still seen after ``patience / 2``.
PATIENCE = 3.0


def _explain(r: WorkloadResult) -> str:
    return "\n" + format_result(r) + "\n" + "\n".join(r.errors)


def _workload(run: object, *outcomes: Outcome, name: str = "test-only") -> Workload:
    return Workload(
        name=name,
        description="a workload that only the tests use",
        run=run,  # type: ignore[arg-type]
        outcomes=outcomes or (Outcome("ok", A, "fine"),),
        defaults=Params(threads=1, iothreads=1, rounds=1, seconds=0.1),
    )


# -- the correct impl: every workload passes, with and without noise ---------------------
def _acquire_traced_outside_the_lock_mutex() -> bool:
    """Whether impl's RFifoLock.lock emits its depth-1 ``acquire`` trace event after leaving
    its internal mutex.  Then a thread that takes the next ticket can trace its
    ``lock_wait`` before the grant is traced, and the P1 monitor reads that as a FIFO
    breach (reproduced on the unmutated impl; gone when the event is emitted under the
    mutex).  A known impl bug, reported for impl/_lock.py; while it is there, the
    false-alarm tests below tolerate exactly that violation and nothing else."""
    lines = textwrap.dedent(inspect.getsource(RFifoLock.lock)).splitlines()
    depth = {ln.strip(): len(ln) - len(ln.lstrip()) for ln in lines}
    with_indent = depth.get("with self._mutex:", 0)
    return any(
        len(ln) - len(ln.lstrip()) <= with_indent + 4
        for ln in lines
        if 'self._trace("acquire", me, 1)' in ln
    )


TRACE_SKEW = _acquire_traced_outside_the_lock_mutex()


def _is_known_skew(violation: str) -> bool:
    return TRACE_SKEW and ": P1 fifo: " in violation and "(ticket order broken)" in violation


@pytest.mark.parametrize(("noise", "seed"), [(False, 0), (True, 1), (True, 2), (True, 3)])
@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_workload_passes_on_impl(name: str, noise: bool, seed: int) -> None:
    r = run_workload(
        name, threads=SMALL_THREADS, rounds=SMALL_ROUNDS, seconds=0.25, seed=seed, noise=noise,
        patience=PATIENCE,
    )
    real = [v for v in r.violations if not _is_known_skew(v)]
    assert real == [] and r.errors == () and r.leftover_threads == (), _explain(r)
    assert r.stalls == () and r.stacks == {}, _explain(r)
    assert r.trials >= 1 and sum(r.histogram.values()) == r.trials
    assert all(g is not F for g in r.grades.values()), _explain(r)
    assert r.ops > 0 and r.ops_per_second > 0
    if not r.violations:
        assert r.verdict == "pass" and r.failure is None, _explain(r)


@pytest.mark.parametrize(
    ("name", "threads", "iothreads"),
    [("acquire-storm", 3, 1), ("bh-ping-pong", 3, 3), ("bh-fan-in", 1, 3),
     ("stop-the-world", 3, 1), ("dataplane", 1, 2), ("timer-churn", 1, 1),
     ("thread-pool", 2, 2), ("platform-primitives", 3, 1)],
)
def test_workloads_take_their_size_from_params(name: str, threads: int, iothreads: int) -> None:
    r = run_workload(
        name, threads=threads, iothreads=iothreads, rounds=5, max_trials=2, seed=4,
        seconds=GUARD, patience=PATIENCE,
    )
    assert (r.params.threads, r.params.iothreads, r.params.rounds) == (threads, iothreads, 5)
    real = [v for v in r.violations if not _is_known_skew(v)]
    assert real == [] and r.errors == () and r.stalls == (), _explain(r)
    assert all(g is not F for g in r.grades.values()), _explain(r)


def test_registry_declares_grades_and_forbidden_properties() -> None:
    assert set(WORKLOADS) == {
        "acquire-storm",
        "bh-ping-pong",
        "bh-fan-in",
        "stop-the-world",
        "dataplane",
        "timer-churn",
        "thread-pool",
        "platform-primitives",
    }
    for wl in WORKLOADS.values():
        grades = {o.grade for o in wl.outcomes}
        assert A in grades and F in grades, wl.name
        for o in wl.outcomes:
            if o.grade is F and o.pattern != "exception:*":
                assert o.prop in ("P1", "P2", "P3", "LIVE"), (wl.name, o)
        assert wl.declared("lost-wakeup:teardown") is not None
        assert wl.declared("hang") is not None and wl.grade("hang") is F
        assert wl.grade("lost:3") is F  # a declared family
        assert wl.declared("lost:3") is not None


# -- grading --------------------------------------------------------------------------------
def test_grade_of_declared_patterns_and_undeclared_outcomes() -> None:
    wl = WORKLOADS["bh-ping-pong"]
    assert wl.grade("all-delivered") is A
    assert wl.grade("all-delivered, never-slept") is INTERESTING
    assert wl.grade("spurious-run") is F
    assert wl.grade("something nobody declared") is F
    assert wl.declared("something nobody declared") is None
    assert Outcome("lost:*", F, "").matches("lost:12")
    assert not Outcome("lost", F, "").matches("lost:12")


def test_undeclared_outcome_fails_the_run() -> None:
    wl = _workload(lambda trial: "surprise")
    r = run_workload(wl, max_trials=3, seconds=GUARD)
    assert r.trials == 3
    assert dict(r.histogram) == {"surprise": 3}
    assert r.grades["surprise"] is F
    assert r.verdict == "fail"
    assert r.failure is not None and r.failure.kind == "forbidden"
    assert "undeclared" in r.failure.message and r.failure.trial == 0
    text = format_result(r)
    assert "surprise" in text and "FORBIDDEN" in text and "not declared" in text


def test_declared_forbidden_outcome_names_its_property() -> None:
    wl = _workload(
        lambda trial: "torn" if trial.index == 1 else "ok",
        Outcome("ok", A, "fine"),
        Outcome("torn", F, "a torn read", "P3"),
    )
    r = run_workload(wl, max_trials=3, seconds=GUARD)
    assert dict(r.histogram) == {"ok": 2, "torn": 1}
    assert r.verdict == "fail"
    assert r.failure is not None
    assert (r.failure.kind, r.failure.trial, r.failure.prop) == ("forbidden", 1, "P3")


def test_stop_on_failure_stops_at_the_first_failing_trial() -> None:
    wl = _workload(lambda trial: "ok" if trial.index < 2 else "bad")
    r = run_workload(wl, max_trials=10, seconds=GUARD, stop_on_failure=True)
    assert r.trials == 3 and dict(r.histogram) == {"ok": 2, "bad": 1}


def test_acceptable_interesting_passes_and_is_reported() -> None:
    wl = _workload(
        lambda trial: "rare" if trial.index % 2 else "ok",
        Outcome("ok", A, "fine"),
        Outcome("rare", INTERESTING, "allowed, worth a look"),
    )
    r = run_workload(wl, max_trials=4, seconds=GUARD)
    assert r.verdict == "pass"
    assert dict(r.grades) == {"ok": A, "rare": INTERESTING}
    assert "ACCEPTABLE_INTERESTING" in format_result(r)


def test_unknown_workload_name() -> None:
    with pytest.raises(UsageError, match="unknown workload 'nope'"):
        run_workload("nope")


# -- the watchdog ---------------------------------------------------------------------------
def wait_for_godot(trial: Trial, godot: threading.Event) -> None:
    """Blocks on an event nobody sets (bounded only by the watchdog's cancel)."""
    trial.wait(godot, timeout=60)


def test_watchdog_ends_an_overdue_trial_inconclusive_with_the_blocked_stack() -> None:
    """A trial that outlives its deadline while nothing is seen stuck (no IOThread asleep
    with work due, no free lock with waiters) is not a hang: the machine may be slow.  The
    watchdog ends the run there, records every stack and calls the trial inconclusive."""
    godot = threading.Event()
    stuck = threading.Event()

    def run(trial: Trial) -> str:
        trial.spawn(lambda: stuck.wait(), "unbounded-helper")  # ignores cancel: a leftover
        wait_for_godot(trial, godot)
        return "ok"

    try:
        r = run_workload(_workload(run), seconds=GUARD, trial_timeout=0.4, patience=0.2)
    finally:
        stuck.set()
    # The watchdog ended the run at the overdue trial (the first), not the GUARD budget.
    assert r.trials == 1 and r.failure is None, r.failure
    assert dict(r.histogram) == {"inconclusive": 1} and r.inconclusive == 1
    assert r.grades["inconclusive"] is not F
    driver = r.stacks["stress.test-only.0"]
    assert "in wait_for_godot" in driver and "trial.wait(godot, timeout=60)" in driver
    assert any("stuck.wait" in s for s in r.stacks.values())
    assert [t for t in r.leftover_threads if "unbounded-helper" in t]
    assert "--- stack of stress.test-only.0 ---" in format_result(r)


def test_watchdog_returns_even_when_the_trial_never_ends() -> None:
    never = threading.Event()

    def run(trial: Trial) -> str:
        never.wait()  # no timeout, deaf to cancel: only the watchdog gets the caller back
        return "ok"

    try:
        r = run_workload(_workload(run), seconds=GUARD, trial_timeout=0.3, patience=0.1)
    finally:
        never.set()
    # Returning at all is the point (without the watchdog pytest-timeout ends the test);
    # the run gave up on its one trial rather than waiting for it.  Nothing was seen stuck
    # (no IOThread asleep with work due): inconclusive, not a hang.
    assert r.trials == 1 and dict(r.histogram) == {"inconclusive": 1}
    assert r.failure is None and r.verdict == "pass"
    assert "never.wait()" in r.stacks["stress.test-only.0"]
    assert "stress.test-only.0 (trial 0)" in r.leftover_threads


def test_watchdog_cancel_lets_iothreads_be_joined() -> None:
    godot = threading.Event()
    its: list[IOThread] = []

    def run(trial: Trial) -> str:
        its.append(trial.iothread("io"))
        wait_for_godot(trial, godot)
        return "ok"

    r = run_workload(_workload(run), seconds=GUARD, trial_timeout=0.3, patience=0.5)
    assert r.failure is None and dict(r.histogram) == {"inconclusive": 1}  # idle: not stuck
    assert r.leftover_threads == ()
    assert not its[0].running and its[0].ctx.closed


def test_an_iothread_the_os_starts_late_makes_the_trial_inconclusive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An IOThread whose thread has not run at all when its start's wait runs out is the
    machine's delay (nothing of impl has happened yet): the trial is inconclusive, not an
    exception; the thread, started afterwards, is still stopped and joined."""
    from aioctx_verify.stress.real import _runner

    late_starts, _late, gave_up = late_starting_platform(monkeypatch)
    monkeypatch.setattr(_runner, "RealPlatform", late_starts)
    its: list[IOThread] = []

    def run(trial: Trial) -> str:
        try:
            its.append(trial.iothread("late"))
        finally:
            its.extend(trial.iothreads)
        return "ok"

    r = run_workload(_workload(run), seconds=GUARD, max_trials=1, patience=0.05)
    assert r.failure is None and dict(r.histogram) == {"inconclusive": 1}, r.histogram
    assert r.verdict == "pass" and r.errors == ()
    assert gave_up.is_set() and its and not its[0].is_alive()


# -- exceptions -----------------------------------------------------------------------------
def test_exception_in_a_callback_is_reported() -> None:
    def run(trial: Trial) -> str:
        it = trial.iothread("io")

        def boom(_: object) -> None:
            raise ValueError("boom in a BH")

        it.ctx.bh_new(boom).schedule()
        ran = threading.Event()
        it.ctx.bh_schedule_oneshot(lambda _: ran.set())
        trial.wait(ran)
        return "ok"

    r = run_workload(_workload(run), max_trials=2, seconds=GUARD)
    assert r.trials == 2 and dict(r.histogram) == {"ok": 2}
    assert r.verdict == "fail"
    assert r.failure is not None and r.failure.kind == "exception"
    assert "boom in a BH" in r.errors[0] and "CallbackError" in r.errors[0]
    assert r.errors[0].startswith("trial 0: IOThread t0.io:")


def test_exception_in_the_workload_or_a_helper_is_reported() -> None:
    def run(trial: Trial) -> str:
        trial.spawn(lambda: 1 // 0, "divider")
        trial.join_spawned()
        raise RuntimeError("workload bug")

    r = run_workload(_workload(run), max_trials=1, seconds=GUARD)
    assert dict(r.histogram) == {"exception:RuntimeError": 1}
    assert r.verdict == "fail"
    assert any("ZeroDivisionError" in e and "divider" in e for e in r.errors)
    assert any("workload bug" in e for e in r.errors)


# -- noise and determinism ------------------------------------------------------------------
def test_switch_interval_is_varied_then_restored() -> None:
    seen: list[float] = []

    def run(trial: Trial) -> str:
        seen.append(sys.getswitchinterval())
        if trial.index == 2:
            raise RuntimeError("restored on failure too")
        return "ok"

    before = sys.getswitchinterval()
    cfg = NoiseConfig(switch_interval=(1e-4, 2e-4))
    r = run_workload(_workload(run), max_trials=3, seconds=GUARD, noise=cfg)
    assert sys.getswitchinterval() == before
    assert r.trials == 3 and len(seen) == 3
    assert all(1e-4 * 0.999 <= s <= 2e-4 * 1.001 for s in seen)
    r = run_workload(_workload(run), max_trials=2, seconds=GUARD, noise=False)
    assert seen[-2:] == [before, before] and sys.getswitchinterval() == before


def test_seed_fixes_every_choice() -> None:
    def run(trial: Trial) -> str:
        return f"{trial.rng.random():.6f}"

    def outcomes(seed: int) -> list[str]:
        r = run_workload(_workload(run), max_trials=4, seconds=GUARD, seed=seed)
        return sorted(r.histogram)

    assert outcomes(7) == outcomes(7)
    assert outcomes(7) != outcomes(8)


@contextmanager
def _counting_yields(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    calls = [0]
    real = os.sched_yield

    def counted() -> None:
        calls[0] += 1
        real()

    monkeypatch.setattr(os, "sched_yield", counted)
    yield calls


def test_noisy_platform_yields_at_seam_points(monkeypatch: pytest.MonkeyPatch) -> None:
    loud = NoisyPlatform(RealPlatform(), NoiseConfig(probability=1.0, yield_share=1.0), 0)
    quiet = NoisyPlatform(RealPlatform(), NoiseConfig(probability=0.0), 0)
    with _counting_yields(monkeypatch) as calls:
        cell = quiet.atomic(0, "x")
        cell.fetch_add(1)
        quiet.fence(impl.Fence.MB)
        assert calls[0] == 0
        cell = loud.atomic(0, "x")
        cell.store(1)
        assert cell.exchange(2) == 1 and cell.compare_exchange(2, 3) == 2
        assert cell.fetch_add(1) == 3 and cell.load() == 4
        loud.fence(impl.Fence.MB)
        m = loud.mutex()
        with m:
            pass
        n = loud.notifier()
        n.set()
        assert n.test_and_clear()
        n.close()
        assert calls[0] == 5 + 1 + 2 + 2


def test_impl_runs_on_the_noisy_platform() -> None:
    p = NoisyPlatform(RealPlatform(), NoiseConfig(probability=0.5), 3)
    ran = threading.Event()
    with IOThread(p, name="noisy") as it:
        with it.ctx:
            it.ctx.bh_new(lambda _: ran.set()).schedule()
        assert ran.wait(WAIT)


def test_noise_config_is_validated() -> None:
    with pytest.raises(UsageError, match="probability"):
        NoiseConfig(probability=1.5)
    with pytest.raises(UsageError, match="switch_interval"):
        NoiseConfig(switch_interval=(1e-3, 1e-4))
    with pytest.raises(UsageError, match="max_sleep"):
        NoiseConfig(max_sleep=-1)


# -- the grading bites: a broken impl is killed -----------------------------------------------
class _DropNotify:
    """A test-only mutant: ``qemu_bh_schedule`` publishes the flag (and traces as usual)
    but never calls ``aio_notify``."""

    name = "drop-bh-notify"

    @contextmanager
    def apply(self) -> Iterator[None]:
        original = BH.schedule
        BH.schedule = rewrite(  # type: ignore[method-assign]
            original, [("ctx.aio_notify()", "pass")], mutant=self.name
        )
        try:
            yield
        finally:
            BH.schedule = original  # type: ignore[method-assign]


class _Harmless:
    name = "harmless"

    @contextmanager
    def apply(self) -> Iterator[None]:
        yield


def test_watchdog_classifies_a_lost_wakeup_with_the_sleepers_stack() -> None:
    """A BH scheduled with no notify leaves its IOThread asleep: that is a graded lost
    wake-up (LIVE), found within the stall bound, with every thread's stack, not a hang."""
    with _DropNotify().apply():
        r = run_workload(
            "bh-ping-pong", seconds=GUARD, seed=0, patience=2.0, stall_bound=0.3, max_trials=20
        )
    assert r.verdict == "fail", _explain(r)
    assert r.failure is not None and r.failure.kind == "lost-wakeup", _explain(r)
    assert r.failure.prop == "LIVE" and r.failure.outcome == "lost-wakeup:run"
    assert r.grades["lost-wakeup:run"] is F and "lost-wakeup:run" in r.descriptions
    assert r.stalls and "bh:" in r.stalls[0] and "notifier clear" in r.stalls[0]
    sleepers = [s for n, s in r.stacks.items() if n.startswith(f"t{r.failure.trial}.io")]
    assert any("in poll" in s and "_poll_locked" in s for s in sleepers), _explain(r)
    # Found by the stall watch (stall_bound), not by the workload's own patience (that
    # would be a lost:N outcome) nor the watchdog (a hang); the run ended at that trial.
    assert r.trials == r.failure.trial + 1, _explain(r)
    assert "hang" not in r.histogram and not any(o.startswith("lost:") for o in r.histogram)
    assert BH.schedule.__name__ == "schedule"
    assert BH.schedule.__module__ == "aioctx_verify.impl._context"


def test_kill_checker_kills_a_lost_wakeup() -> None:
    out = kill_checker(
        _DropNotify(), seed=0, seconds=KILL_SECONDS, workloads=["bh-ping-pong"],
        patience=PATIENCE,
    )
    assert out.killed, out.detail
    # Real threads decide which check sees it first: usually the stall watch (a lost
    # wake-up, LIVE); on a loaded runner sometimes a monitor, when the stop BH's walk
    # finds the BH whose wake-up was dropped still scheduled (P2 not-lost).
    if out.via == "scheduler":
        assert out.killed_by_property == "LIVE" and "lost-wakeup" in out.detail, out.detail
        assert out.counterexample_steps is not None and out.counterexample_steps > 0
    else:
        assert out.via == "monitor", out.detail
        assert out.killed_by_property in ("LIVE", "P2"), out.detail
    assert "drop-bh-notify killed by bh-ping-pong" in out.detail


#: Catalogue mutants, the workload that kills each, and the property it is killed through.
KILLS = [
    ("iothread-stop-flag", "acquire-storm", "LIVE", "lost wake-up (teardown)"),
    ("nonsticky-kick", "acquire-storm", "LIVE", "lost wake-up (run)"),
    ("recursive-release-drops-all", "acquire-storm", "P1", "owner-unique"),
    ("rerun-same-iteration", "acquire-storm", "P2", "once-per-iteration"),
    ("iothread-poll-without-acquire", "acquire-storm", "P3", "poller-holds-context"),
]


@pytest.mark.parametrize(("mutant", "workload", "prop", "words"), KILLS)
def test_kill_checker_kills_catalogue_mutants(
    mutant: str, workload: str, prop: str, words: str
) -> None:
    m = mutant_by_name()[mutant]
    out = kill_checker(
        m, seed=0, seconds=KILL_SECONDS, workloads=[workload], patience=PATIENCE
    )
    assert out.killed, out.detail
    assert out.killed_by_property == prop, out.detail
    assert words in out.detail and f"killed by {workload} " in out.detail


def test_a_teardown_rescue_is_never_silent() -> None:
    """The iothread-stop-flag mutant (2362a28ea1) loses the stop wake-up when the IOThread
    is between polls; teardown must report that as a lost wake-up, not kick and move on."""
    m = mutant_by_name()["iothread-stop-flag"]
    with m.apply():
        # A run ends at its first lost wake-up.  Usually found within 10 trials (1-26 seen,
        # ~0.8 s a trial on a loaded runner); 100 trials miss it with odds near 1e-6, and
        # seconds is only a hang guard above what 100 loaded trials take.
        r = run_workload(
            "acquire-storm", seconds=100.0, max_trials=100, patience=PATIENCE, noise=True
        )
    # Graded by outcome, not by r.failure: that is the run's first failure, which on a
    # loaded runner could be an earlier trial's.
    assert r.histogram.get("lost-wakeup:teardown") == 1, _explain(r)
    assert r.grades["lost-wakeup:teardown"] is F and r.verdict == "fail", _explain(r)
    assert "stop-requested" in r.stalls[0], _explain(r)
    assert r.leftover_threads == (), _explain(r)  # rescued after it was recorded


# -- threads that die -------------------------------------------------------------------------
class _Fatal(BaseException):
    """Not an Exception: impl does not wrap it, so it ends the IOThread that runs it."""


def test_an_iothread_that_dies_is_reported_and_nothing_hangs() -> None:
    def run(trial: Trial) -> str:
        it = trial.iothread("io")

        def fatal(_: object) -> None:
            raise _Fatal("the IOThread dies here")

        # The one-shot is listed after the fatal BH, so it runs first in the walk that
        # meets both (newest first) or in an earlier one: the trial's outcome is always
        # "ok", whenever the IOThread happens to wake, and its failure is the death alone.
        bh = it.ctx.bh_new(fatal)
        ran = threading.Event()
        it.ctx.bh_schedule_oneshot(lambda _: ran.set())
        bh.schedule()
        return "ok" if trial.wait(ran, timeout=10.0) else "lost:1"

    wl = _workload(run, Outcome("ok", A, "fine"), Outcome("lost:*", F, "work lost", "P2"))
    r = run_workload(wl, max_trials=1, seconds=GUARD, patience=0.5)
    assert r.verdict == "fail" and r.trials == 1, _explain(r)
    # Nothing hung: the failure is the dead thread's exception, not the watchdog's hang.
    assert r.failure is not None and r.failure.kind == "exception", _explain(r)
    assert "hang" not in r.histogram, _explain(r)
    assert any("the IOThread dies here" in e and "_Fatal" in e for e in r.errors), _explain(r)
    assert r.leftover_threads == () and r.stalls == ()


def test_kill_checker_lets_a_harmless_mutant_survive() -> None:
    out = kill_checker(_Harmless(), seed=0, seconds=0.6, workloads=["bh-fan-in"], noise=False)
    assert not out.killed and out.killed_by_property is None
    assert out.counterexample_steps is None
    assert "harmless survived" in out.detail


# -- platform-primitives: the real platform's own primitives ------------------------------------
#: Trials of platform-primitives on the correct impl, with and without noise.  Each trial
#: runs 4 threads x 300 random operations on the primitives, then the poller checks (about
#: 20-40 ms a trial on a loaded two-core runner).
PRIMITIVE_TRIALS = 40
#: The most trials a mutant of impl/_real.py may take to be killed by platform-primitives.
#: Measured (load 4-6 on two cores), trial of the first kill: the exchange store moved out of
#: its lock (lock-move-out:impl/_real.py:62:12:last) 1-3 over 40 seeds (run_workload, noise
#: off) and 1-3 over 10 seeds (kill_checker, noise on); each of the 9 RMW mutants of
#: _RealAtomic 1-3 over 20 seeds, noise off and on; the 3 poll mutants 1 over 5 seeds.  A
#: trial misses an RMW mutant when its drawn preemption chance is 0 (one in five) and rarely
#: otherwise (1 trial in 10 at the lowest chance, 0.02): 15 misses in a row have odds below
#: 0.3 ** 15 = 1.4e-8.
KILL_TRIALS = 15
_PRIMITIVE_OUTCOMES = {"linearizable", "linearizable, uncontended"}


def _real_mutants(function: str = "") -> list[GeneratedMutant]:
    """The generated mutants of impl/_real.py (of one function, if named)."""
    return [
        m for m in generate_mutants()
        if m.file == "impl/_real.py" and (not function or m.function == function)
    ]


def _exchange_store_moved_out() -> GeneratedMutant:
    (m,) = [
        m for m in _real_mutants("_RealAtomic.exchange")
        if m.operator == "lock-move-out" and m.variant == "last"
    ]
    return m


@pytest.mark.parametrize("noise", [False, True])
def test_platform_primitives_passes_on_impl(noise: bool) -> None:
    switch = sys.getswitchinterval()
    trace = sys.gettrace()
    r = run_workload(
        "platform-primitives", max_trials=PRIMITIVE_TRIALS, seconds=GUARD, seed=11,
        noise=noise, patience=PATIENCE,
    )
    assert r.trials == PRIMITIVE_TRIALS, _explain(r)
    assert r.verdict == "pass" and r.failure is None, _explain(r)
    assert r.errors == () and r.violations == () and r.leftover_threads == (), _explain(r)
    # inconclusive (a wait ran out on a starved runner) is no failure, but nothing else is
    assert set(r.histogram) <= _PRIMITIVE_OUTCOMES | {"inconclusive"}, _explain(r)
    assert r.inconclusive < PRIMITIVE_TRIALS, _explain(r)
    assert r.ops >= (PRIMITIVE_TRIALS - r.inconclusive) * 4 * 300
    assert sys.getswitchinterval() == switch and sys.gettrace() is trace


def test_primitive_verdicts_accept_linearizable_histories() -> None:
    t = _token
    # Exchanges: 0 -> t(1,0) -> t(0,0) -> t(0,1) -> t(1,1) (final), each thread in order.
    xs = [
        [(t(0, 0, 9), t(1, 0, 9)), (t(0, 1, 9), t(0, 0, 9))],
        [(t(1, 0, 9), 0), (t(1, 1, 9), t(0, 1, 9))],
    ]
    assert _exchange_verdict(0, t(1, 1, 9), xs) == (None, 2)
    # fetch_add: prefix sums 0, 2, 3, 6 of adds 2, 1, 3, 1 in some interleaving.
    assert _fetch_add_verdict(0, 7, [[(2, 0), (3, 3)], [(1, 2), (1, 6)]]) is None
    # CAS: 0 -> 5 (thread 0) -> 7 (thread 1, after one failure that saw 5).
    cas = [[(0, 5, 0)], [(0, 6, 5), (5, 7, 5)]]
    assert _cas_verdict(0, 7, cas) == (None, 1)
    # Loads: thread 1 sees writer 0's stores in order; thread 0 sees its own store.
    acc = [[(True, t(0, 1, 9)), (False, t(0, 1, 9)), (True, t(0, 3, 9))],
           [(False, 0), (False, t(0, 1, 9)), (False, t(0, 3, 9))]]
    assert _load_verdict(acc, 9) is None


def test_primitive_verdicts_name_each_break() -> None:
    t = _token
    # Two exchanges read 0 (one's read and write were split by the other's).
    assert _exchange_verdict(0, t(1, 0, 9), [[(t(0, 0, 9), 0)], [(t(1, 0, 9), 0)]])[0] == (
        "exchange-duplicated"
    )
    # A written value vanished: nobody returned t(0, 0) and it is not the final value.
    lost = [[(t(0, 0, 9), 0)], [(t(1, 0, 9), 77)]]
    assert _exchange_verdict(0, t(1, 0, 9), lost)[0] == "exchange-lost"
    # A cycle: each exchange returned what the other wrote.
    cyc = [[(t(0, 0, 9), t(1, 0, 9))], [(t(1, 0, 9), t(0, 0, 9))]]
    assert _exchange_verdict(0, 0, cyc)[0] == "exchange-reordered"
    # Thread 0's second exchange comes before its first on the chain.
    back = [[(t(0, 0, 9), t(0, 1, 9)), (t(0, 1, 9), 0)]]
    assert _exchange_verdict(0, t(0, 0, 9), back)[0] == "exchange-reordered"
    assert _fetch_add_verdict(0, 3, [[(2, 0)], [(1, 0)]]) == "fetch-add-duplicated"
    assert _fetch_add_verdict(0, 2, [[(2, 0)], [(1, 2)]]) == "fetch-add-lost"  # final sum
    assert _fetch_add_verdict(0, 3, [[(1, 2), (2, 0)]]) == "fetch-add-reordered"
    assert _cas_verdict(0, 6, [[(0, 5, 0)], [(0, 6, 0)]])[0] == "cas-double-success"
    # A failed CAS's value got into the cell (final 6 is on no chain).
    assert _cas_verdict(0, 6, [[(0, 5, 0)], [(1, 6, 5)]])[0] == "cas-chain-broken"
    # Thread 1 saw 7 (a failed CAS returned it), then loaded 0 again: back along the chain.
    assert _cas_verdict(0, 7, [[(0, 5, 0), (5, 7, 5)], [(5, 8, 7), (0, 9, 7)]])[0] == (
        "cas-chain-broken"
    )
    # A CAS returned a value nobody wrote.
    assert _cas_verdict(0, 5, [[(0, 5, 0)], [(0, 6, 99)]])[0] == "cas-chain-broken"
    assert _load_verdict([[(False, 12345)]], 9) == "load-incoherent"  # nobody stored it
    went_back = [[(True, t(0, 0, 9)), (True, t(0, 1, 9))], [(False, t(0, 1, 9)),
                                                           (False, t(0, 0, 9))]]
    assert _load_verdict(went_back, 9) == "load-incoherent"
    assert _load_verdict([[(True, t(0, 0, 9)), (False, 0)]], 9) == "load-incoherent"


def test_preemption_points_reach_a_mutant_of_the_real_platform() -> None:
    """The workload traces (and preempts) the real platform's code, and a mutant of it: the
    generated mutant's function is compiled under a label-prefixed name of impl/_real.py."""
    cls = type(RealPlatform().atomic(0))
    assert _in_real_platform(cls.exchange.__code__.co_filename)
    with _exchange_store_moved_out().apply():
        patched = cls.exchange.__code__.co_filename
        assert patched != inspect.getsourcefile(RealPlatform) and _in_real_platform(patched)
    assert not _in_real_platform(BH.schedule.__code__.co_filename)
    assert not _in_real_platform(__file__)


def test_platform_primitives_kills_the_exchange_store_moved_out_of_its_lock() -> None:
    """``self.value = value`` moved out of ``with lock:`` in ``_RealAtomic.exchange``: no
    other checker reaches it (the controlled platform never runs impl/_real.py)."""
    m = _exchange_store_moved_out()
    assert m.name == "lock-move-out:impl/_real.py:62:12:last"  # the brief's survivor
    with m.apply():
        r = run_workload(
            "platform-primitives", max_trials=KILL_TRIALS, seconds=GUARD, seed=0,
            stop_on_failure=True, patience=PATIENCE,
        )
    assert r.failure is not None and r.failure.kind == "forbidden", _explain(r)
    assert r.failure.outcome.startswith("exchange-") and r.failure.prop == "P2", _explain(r)
    # The same through the kill checker, with noise, on a work budget (trials, not seconds).
    out = kill_checker(
        m, seed=0, seconds=CellBudget(TRIAL_WORK * KILL_TRIALS, GUARD),
        workloads=["platform-primitives"], patience=PATIENCE,
    )
    assert out.killed and out.killed_by_property == "P2", out.detail
    assert f"{m.name} killed by platform-primitives " in out.detail and "exchange-" in out.detail


#: What platform-primitives reports for a mutant of each function of impl/_real.py it kills.
_KILLED_AS = {
    "_RealAtomic.exchange": "exchange-",
    "_RealAtomic.compare_exchange": "cas-",
    "_RealAtomic.fetch_add": "fetch-add-",
    "_RealPoller.poll": "poll-",
}


@pytest.mark.parametrize(
    "mutant", [m for m in _real_mutants() if m.function in _KILLED_AS], ids=lambda m: m.name
)
def test_platform_primitives_kills_the_real_platforms_mutants(mutant: GeneratedMutant) -> None:
    """Every mutant of the atomics' RMWs and of the poller's timeout: an RMW whose read and
    write another thread can come between, a ``poll(0)`` that blocks, a ``poll(-1)`` that
    does not.  (``default_platform``'s race is only on a process's first call: not here.)"""
    with mutant.apply():
        r = run_workload(
            "platform-primitives", max_trials=KILL_TRIALS, seconds=GUARD, seed=1,
            stop_on_failure=True, patience=2.0,
        )
    assert r.failure is not None and r.failure.kind == "forbidden", _explain(r)
    assert r.failure.outcome.startswith(_KILLED_AS[mutant.function]), _explain(r)


def test_the_kernel_says_which_thread_sleeps_in_a_poll() -> None:
    """poll-zero-blocked's evidence: /proc shows a thread asleep inside a poll, and not one
    that runs or waits on a lock (a thread waiting for the GIL after its poll returned)."""
    from aioctx_verify.stress.real._workloads import _asleep_in_poll

    assert _asleep_in_poll(threading.get_native_id()) is False  # running
    r, w = os.pipe()
    poller = select.poll()
    poller.register(r, select.POLLIN)
    ids: dict[str, int] = {}
    started = threading.Barrier(3, timeout=30)
    gate = threading.Event()

    def in_poll() -> None:
        ids["poll"] = threading.get_native_id()
        started.wait()
        poller.poll(60_000)

    def on_lock() -> None:
        ids["lock"] = threading.get_native_id()
        started.wait()
        gate.wait(60)

    threads = [threading.Thread(target=f, daemon=True) for f in (in_poll, on_lock)]
    for t in threads:
        t.start()
    try:
        started.wait()
        seen = {"poll": False, "lock": False}
        for _ in range(10_000):  # work-bounded: until the kernel has both asleep
            seen = {k: _asleep_in_poll(v) is True for k, v in ids.items()}
            if seen["poll"]:
                break
            os.sched_yield()
        assert seen == {"poll": True, "lock": False}, seen
    finally:
        os.write(w, b"x")
        gate.set()
        for t in threads:
            t.join(30)
        os.close(r)
        os.close(w)
