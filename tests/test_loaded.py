"""No verdict depends on the machine's speed: the false-alarm control runs under load.

Every kill-matrix checker runs its control run on the correct impl while one CPU burner per
core (a Python busy-loop subprocess) competes for the CPUs and the test process's GIL switch
interval is raised to 50 ms, so every thread waits long for its turn.  A slow step, a slow
trial, a slow wake-up must never be reported as a hang, a lost wake-up or starvation: 0 false
alarms.  Runs that end ``inconclusive`` (a wall-clock bound ran out, nothing was seen stuck)
are allowed; they are counted and printed.

Only ``tox -e loaded`` runs this (marker ``loaded``, and ``AIOCTX_LOADED=1``, so a plain
``pytest tests/`` skips it); ``AIOCTX_FALSE_ALARM_SEEDS`` seeds per checker (default 20; the
nightly job runs 1,000).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from aioctx_verify.stress.mutation._matrix import available_checkers

from .test_false_alarms import FIRST, control_runs, seconds_for

pytestmark = [
    pytest.mark.loaded,
    pytest.mark.skipif(
        os.environ.get("AIOCTX_LOADED") != "1",
        reason="burns every core for minutes: run it with tox -e loaded (AIOCTX_LOADED=1)",
    ),
]

SEEDS = int(os.environ.get("AIOCTX_FALSE_ALARM_SEEDS", "20"))
SECONDS = float(os.environ.get("AIOCTX_FALSE_ALARM_SECONDS", "0.4"))
#: The switch interval the test process runs with (CPython's default is 5 ms).
SWITCH = 0.05
#: Every burner is killed after this long even if teardown never ran (a bounded child).
BURN_LIMIT = 6 * 3600
_BOUND = max(600.0, SEEDS * (max(SECONDS, 1.5) * 12 + 15) + 300)

_BURN = (
    f"import time\nend = time.monotonic() + {BURN_LIMIT}\n"
    "while time.monotonic() < end:\n    pass\n"
)


@pytest.fixture(scope="module")
def burners() -> Iterator[list[subprocess.Popen[bytes]]]:
    """One busy-loop Python subprocess per core (at least two), killed at teardown."""
    n = max(2, os.cpu_count() or 2)
    procs = [subprocess.Popen([sys.executable, "-c", _BURN]) for _ in range(n)]
    try:
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(timeout=30)


@pytest.fixture
def slow_switch() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


@pytest.mark.timeout(_BOUND)
@pytest.mark.parametrize("checker", available_checkers())
def test_no_false_alarm_beside_cpu_burners(
    checker: str, burners: list[subprocess.Popen[bytes]], slow_switch: None
) -> None:
    assert all(p.poll() is None for p in burners), "a CPU burner died: the load is gone"
    t0 = time.perf_counter()
    answered, unsure = control_runs(
        checker, range(FIRST, FIRST + SEEDS), seconds_for(checker, SECONDS)
    )
    assert answered + unsure == SEEDS, (
        f"{checker}: {SEEDS - answered - unsure} of {SEEDS} control runs were not applicable"
    )
    assert answered >= 1, f"{checker}: no control run answered under load ({unsure} inconclusive)"
    print(f"{checker}: {SEEDS} seeds under load, 0 false alarms, {unsure} inconclusive, "
          f"{time.perf_counter() - t0:.1f}s")
