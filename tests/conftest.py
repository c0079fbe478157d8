"""Shared fixtures.  Every wait in these tests is bounded; a hang is turned into a failure
by pytest-timeout (``timeout_method = thread`` dumps every thread's stack)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator

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


def late_starting_platform(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[type[RealPlatform], list[threading.Thread], threading.Event]:
    """A real platform whose threads the "OS" runs only after an IOThread's start has given
    up waiting for its thread (``IOThread._note_start_wait_ran_out``, patched for the test),
    the list its threads are put on (so the test can join them), and the event set when a
    start gave up."""
    gave_up = threading.Event()
    real_note = IOThread._note_start_wait_ran_out
    late: list[threading.Thread] = []

    def note(self: IOThread) -> None:
        real_note(self)
        gave_up.set()

    class LateStarts(RealPlatform):
        def start_thread(self, target: Callable[[], None], name: str) -> threading.Thread:
            def body() -> None:
                gave_up.wait(60)  # the OS runs it only once its start has given up
                target()

            t = super().start_thread(body, name)
            assert isinstance(t, threading.Thread)
            late.append(t)
            return t

    monkeypatch.setattr(IOThread, "_note_start_wait_ran_out", note)
    return LateStarts, late, gave_up


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


#: The profile the ``timeout`` in pyproject.toml is sized for (the ci profile's examples).
_BASE_EXAMPLES = 50


def _runs_the_profile(item: pytest.Item) -> bool:
    """Whether ``item`` runs as many examples as the Hypothesis profile says: a ``@given``
    test, or a stateful machine's TestCase (its class carries the settings)."""
    if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
        return True
    cls = getattr(item, "cls", None)
    return cls is not None and isinstance(getattr(cls, "settings", None), settings)


#: ``file::function`` of the tests marked ``slow`` (tests/slow-tests.txt; see its header).
SLOW_TESTS_FILE = os.path.join(os.path.dirname(__file__), "slow-tests.txt")


def slow_tests() -> frozenset[str]:
    """The ``file::function`` lines of :data:`SLOW_TESTS_FILE`, comments left out."""
    with open(SLOW_TESTS_FILE, encoding="utf-8") as f:
        lines = (line.split("#", 1)[0].strip() for line in f)
        return frozenset(line for line in lines if line)


def _mark_slow(items: list[pytest.Item]) -> None:
    """Mark ``slow`` every test listed in :data:`SLOW_TESTS_FILE` (all its parameters), so
    the quick tox environments can leave them out with ``-m "not slow"``."""
    slow = slow_tests()
    for item in items:
        path, _, name = item.nodeid.partition("::")
        key = f"{path.replace(os.sep, '/')}::{name.split('[', 1)[0]}"
        if key in slow:
            item.add_marker(pytest.mark.slow)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the slow tests, and scale the stuck-test bound of the tests that run the
    profile's examples.

    pytest-timeout's bound is no verdict, only the stop for a stuck test; it is sized for
    the ci profile.  The nightly profile runs 100 times the examples, and a test that does
    all of them takes longer than that bound without being stuck (the nightly job's first
    run lost its stateful tests that way: cut off mid-search, the worker killed).  So a
    test that runs the profile's examples and names no bound of its own gets the ini bound
    times (examples / 50).  (pytest's faulthandler dump is one ini value for the whole
    session: the nightly tox env turns it off; pytest-timeout dumps every stack itself.)
    """
    _mark_slow(items)
    profile = settings.default
    scale = max(1.0, (profile.max_examples if profile else 0) / _BASE_EXAMPLES)
    if scale == 1.0:
        return
    try:
        base = float(config.getini("timeout") or 0)
    except (ValueError, TypeError):  # pytest-timeout absent or a malformed ini value
        return
    if base <= 0:
        return
    for item in items:
        if item.get_closest_marker("timeout") is None and _runs_the_profile(item):
            item.add_marker(pytest.mark.timeout(base * scale))
