"""Shared fixtures.  Every wait in these tests is bounded; a hang is turned into a failure
by pytest-timeout (``timeout_method = thread`` dumps every thread's stack)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from aioctx_verify.impl import IOThread, RealPlatform, live_iothreads

# Hypothesis profiles, chosen by HYPOTHESIS_PROFILE; default ``ci`` when the CI variable is
# set (CI services set it), else ``dev``.  ``ci`` is reproducible (derandomize, no example
# database) and prints the blob to paste into @reproduce_failure; ``dev`` keeps its example
# database in .hypothesis/ (git-ignored); ``nightly`` searches long.
settings.register_profile(
    "ci", max_examples=50, derandomize=True, database=None, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.register_profile(
    "nightly", max_examples=5000, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)

#: Upper bound for any single wait in a test (seconds); generous for loaded CI machines.
WAIT = 10.0


@pytest.fixture(params=["eventfd", "pipe"])
def platform(request: pytest.FixtureRequest) -> RealPlatform:
    """A real platform, once with eventfd notifiers and once with the pipe fallback."""
    return RealPlatform(use_eventfd=request.param == "eventfd")


@pytest.fixture
def iothreads(platform: RealPlatform) -> Iterator[list[IOThread]]:
    """A list to put started IOThreads in; all are joined (bounded) at teardown."""
    started: list[IOThread] = []
    yield started
    for it in started:
        if it._thread is not None and not it._joined:
            it.join(timeout=WAIT)
    assert not [t for t in live_iothreads(platform) if t in started]
