"""A small, fully populated :class:`CampaignResult` for demos and for tests of the renderers.

Every section of the reports has content: a failing property with a shrunk three-thread
counterexample, graded histograms (one with a FORBIDDEN outcome), a kill matrix with a
surviving mutant, coverage, benchmarks and a watchdog stack dump.  The figures are made up;
the mutant names and QEMU commits are real (see the mutant catalogue).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from ._result import (
    BarrierRow,
    Benchmark,
    CampaignBudget,
    CampaignResult,
    Counterexample,
    Coverage,
    Histogram,
    KillCell,
    KillMatrix,
    Machine,
    Mutant,
    ProofRow,
    ThreadStack,
    TraceStep,
    Verdict,
)

__all__ = ["sample_result"]

_CHECKERS = ("monitor", "random", "pct", "dfs")


def _trace() -> tuple[TraceStep, ...]:
    rows = [
        (0, "main", "bh_new", "bh#1", "tests/bh_pingpong.py:21 (main)"),
        (0, "main", "thread_start", "io0", "impl/_iothread.py:88 (start)"),
        (1, "io0", "acquire", "ctx io0", "impl/_iothread.py:131 (_run)"),
        (1, "io0", "load", "ctx.notify_me", "impl/_context.py:402 (aio_poll)"),
        (0, "main", "store", "bh#1.scheduled", "impl/_context.py:188 (qemu_bh_schedule)"),
        (2, "worker-1", "load", "ctx.notify_me", "impl/_context.py:231 (aio_notify)"),
        (2, "worker-1", "skip", "event_notifier_set", "impl/_context.py:233 (aio_notify)"),
        (1, "io0", "store", "ctx.notify_me", "impl/_context.py:405 (aio_poll)"),
        (1, "io0", "wait", "ppoll(fds=1)", "impl/_context.py:431 (aio_poll)"),
    ]
    return tuple(TraceStep(i, t, n, op, obj, w) for i, (t, n, op, obj, w) in enumerate(rows))


def sample_result(*, failing: bool = True, started_at: datetime | None = None) -> CampaignResult:
    """A made-up campaign: with ``failing`` P2 fails under pct and random, else all hold."""
    start = started_at or datetime(2025, 11, 25, 2, 0, tzinfo=timezone.utc)
    verdicts: list[Verdict] = []
    for prop in ("P1", "P2", "P3", "LIVE"):
        for checker in _CHECKERS:
            if failing and prop == "P2" and checker in ("random", "pct"):
                verdicts.append(
                    Verdict(prop, checker, "fail", 412 if checker == "pct" else 988, 3.2,
                            "a BH scheduled before the poll's check did not run")
                )
            elif prop == "LIVE" and checker == "dfs":
                verdicts.append(
                    Verdict(prop, checker, "inconclusive", 1000, 30.0,
                            "every run hit the step budget")
                )
            elif prop == "P3" and checker == "monitor":
                verdicts.append(
                    Verdict(prop, checker, "skipped", 0, 0.0, "no P3 workload in this budget")
                )
            else:
                verdicts.append(Verdict(prop, checker, "pass", 1000, 12.5))
    cex: tuple[Counterexample, ...] = ()
    if failing:
        cex = (
            Counterexample(
                property="P2",
                checker="pct",
                kind="lost_wakeup",
                message="P2 schedule-not-lost: bh#1 was scheduled before io0's check "
                "and io0 went to sleep without running it",
                schedule="v1:bh_pingpong:sc:0*2,1*2,0,2*2,1*2",
                seed=1234,
                replay_command="aioctx-verify replay 'v1:bh_pingpong:sc:0*2,1*2,0,2*2,1*2'",
                steps=_trace(),
                failing_step=8,
                preemptions=2,
            ),
        )
    histograms = (
        Histogram(
            "bh_pingpong",
            {"ran once": 9_870, "coalesced": 121, "lost": 3 if failing else 0},
            {"ran once": "ACCEPTABLE", "coalesced": "ACCEPTABLE_INTERESTING"},
        ),
        Histogram(
            "acquire_storm",
            {"fifo": 4_990, "kicked poller": 10},
            {
                "fifo": "ACCEPTABLE",
                "kicked poller": "ACCEPTABLE_INTERESTING",
                "two owners": "FORBIDDEN",
            },
        ),
    )
    mutants = (
        Mutant("dispatching-flag-shared", "eabc977973", "LIVE", ("pct", "dfs"), 0.84, 17,
               (KillCell("monitor", False), KillCell("random", False),
                KillCell("pct", True, 0.84, 17), KillCell("dfs", True, 2.6, 15))),
        Mutant("notify-clear-late", "21a03d17f2", "LIVE", ("random", "pct", "dfs"), 0.12, 11,
               (KillCell("monitor", False), KillCell("random", True, 0.31, 12),
                KillCell("pct", True, 0.12, 11), KillCell("dfs", True, 0.4, 11))),
        Mutant("bh-ctx-uaf", "924fe1293c", "P2", ("monitor", "random", "pct", "dfs"), 0.02, 6,
               (KillCell("monitor", True, 0.02, 6), KillCell("random", True, 0.05, 6),
                KillCell("pct", True, 0.03, 6), KillCell("dfs", True, 0.09, 6))),
        Mutant("iothread-stop-flag", "2362a28ea1", "LIVE", (), None, None,
               (KillCell("monitor", False), KillCell("random", False),
                KillCell("pct", False), KillCell("dfs", False))),
        Mutant("non-home-thread-poll", "3c18a92dc4", "P3", ("monitor",), 0.07, None),
    )
    return CampaignResult(
        tool_version="0.1.0",
        campaign="default",
        budget=CampaignBudget("default", 1000, 600.0),
        seed=1234,
        started_at=start,
        seconds=timedelta(minutes=9, seconds=42).total_seconds(),
        complete=True,
        machine=Machine("ci-runner-3", "Linux-6.1.0-x86_64-with-glibc2.36", "CPython 3.11.7", 8),
        verdicts=tuple(verdicts),
        counterexamples=cex,
        histograms=histograms,
        kill_matrix=KillMatrix(mutants, false_alarms=0),
        coverage=Coverage(
            schedules=48_210,
            distinct_traces=31_877,
            states=None,
            max_preemptions=4,
            steps_per_second=182_500.0,
            schedules_per_second=84.3,
        ),
        benchmarks=(
            Benchmark("bh_schedule_cross_thread", 1.9, 5.6, 0.34, "us", "<= 1.0", True),
            Benchmark("controlled_steps", 182_500.0, None, None, "steps/s", ">= 50000 steps/s",
                      True),
        ),
        stacks=(
            ThreadStack("io0", 140_245_118_830_272,
                        '  File "impl/_iothread.py", line 131, in _run\n'
                        "    self.ctx.aio_poll(True)\n"
                        '  File "impl/_context.py", line 431, in aio_poll\n'
                        "    ready = self._plat.poll(fds, timeout)\n"),
        )
        if failing
        else (),
        proofs=(
            ProofRow("io+client/1bh/d1/ops2", "sc", "P1", "proven", 1, 2.4),
            ProofRow("io+client/1bh/d1/ops2", "sc", "LIVE", "bounded", 8, 9.1),
            ProofRow("io+client/1bh/d2/ops2/no-contention-callback", "sc", "LIVE", "refuted",
                     4, 3.2, 4, "deadlock"),
        ),
        barriers=(
            BarrierRow("_context.py:587 (aio_notify)", "fence MB: drop", "necessary", "c11",
                       "lost wake-up in 35 steps"),
            BarrierRow("_context.py:1003 (_poll_locked)", "fetch_add release: relax",
                       "not-needed-at-this-size", None, "sc, tso, pso exhausted"),
        ),
        shard_notes=(
            "shard mutants#41 (deleted-bh-runs x explore_pct) retried: 2 attempts, its "
            "result counted once",
        ),
    )
