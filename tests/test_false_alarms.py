"""No false alarm: every kill-matrix checker passes the correct impl, seed after seed.

A check that fires on correct code is as worthless as one that never fires.  CI runs a few
seeds of every checker; the nightly tox env runs 1,000 (``AIOCTX_FALSE_ALARM_SEEDS=1000``).
Each run is the checker's control run: the unmutated impl on every probe the checker has.
"""

from __future__ import annotations

import os
import time

import pytest

from aioctx_verify.stress.mutation._catalogue import NO_MUTANT
from aioctx_verify.stress.mutation._matrix import available_checkers, run_checker

SEEDS = int(os.environ.get("AIOCTX_FALSE_ALARM_SEEDS", "3"))
SECONDS = float(os.environ.get("AIOCTX_FALSE_ALARM_SECONDS", "0.4"))
#: Seeds start here, so CI and nightly do not keep re-running the same few.
FIRST = int(os.environ.get("AIOCTX_FALSE_ALARM_FIRST_SEED", "0"))
#: A checker run may overshoot its budget (setup, one last schedule, a watchdog bound).
_BOUND = max(120.0, SEEDS * (max(SECONDS, 1.5) * 4 + 3) + 60)


def _seconds(checker: str) -> float:
    """The stateful checkers start Hypothesis first (a loaded CI runner took over 0.4 s
    before the first lockstep program), so they get at least 1.5 s per seed."""
    return max(SECONDS, 1.5) if checker.startswith("stateful") else SECONDS


@pytest.mark.timeout(_BOUND)
@pytest.mark.parametrize("checker", available_checkers())
def test_no_false_alarm_on_the_correct_impl(checker: str) -> None:
    t0 = time.perf_counter()
    runs = 0
    for seed in range(FIRST, FIRST + SEEDS):
        out = run_checker(checker, NO_MUTANT, seed, _seconds(checker))
        assert out.verdict != "error", f"{checker} seed {seed}: the checker broke: {out.detail}"
        assert not out.killed, f"FALSE ALARM: {checker} seed {seed}: {out.detail}"
        runs += out.applicable
    # A checker with nothing to run on the correct impl would pass vacuously: it must run.
    assert runs == SEEDS, f"{checker}: {SEEDS - runs} of {SEEDS} control runs were not applicable"
    print(f"{checker}: {SEEDS} seeds clean in {time.perf_counter() - t0:.1f}s")
