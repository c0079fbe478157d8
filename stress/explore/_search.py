"""One seeded, time-bounded Hypothesis search loop, shared by every Hypothesis search here.

Hypothesis runs a test for ``max_examples`` examples and shrinks what fails, with no notion
of wall time.  The suite's searches (the controlled explorer's ``hypothesis`` strategy and
both stateful machines) need more: a seed that fixes what is generated, a time budget for
finding, a second one for shrinking, the failures as values, and an end that is never
Hypothesis' own error report.  :class:`SeededSearch` is that loop:

* examples run in *chunks* of ``chunk``; chunk ``k`` is seeded ``seed * 1_000_003 + k``
  (no example database), so a search is a function of its seed;
* inside an example the caller asks :meth:`SeededSearch.allows`: until a failure is
  recorded, for ``seconds``; after it, for ``shrink_seconds`` more.  An example told no
  must not run (the caller returns, or rejects it);
* the caller records each failing run with :meth:`SeededSearch.record` and then raises, so
  Hypothesis shrinks it; the reported failure is the smallest recorded (by ``key``);
* once something was recorded or the budget ran out, whatever Hypothesis raises at the end
  of a chunk (the shrunk failure re-raised, or its complaint that examples skipped for
  want of time made its replays inconsistent) ends the search; before that, an exception
  is a bug and propagates.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from hypothesis import settings as Settings

__all__ = ["SearchAbandoned", "SeededSearch"]

F = TypeVar("F")


class SearchAbandoned(Exception):
    """Raised by :meth:`SeededSearch.allows` once the search was abandoned."""


class SeededSearch(Generic[F]):
    """A seeded, time-bounded Hypothesis search (see the module docstring).

    Args:
        seed: fixes every chunk's seed.
        seconds: wall time to look for a failure.
        shrink_seconds: wall time to shrink, from the first failure on.
        key: orders failures, smallest first (the reported one is the smallest).
        chunk: examples per chunk.
        max_examples: stop after this many examples (None: only time bounds it).
        shrink: let Hypothesis shrink (False: generation only).

    Attributes:
        examples: examples started (counted by :meth:`allows`).
        runs: examples that really ran (callers count them; cache hits do not).
        failures: every failure recorded, in order.
    """

    def __init__(
        self,
        *,
        seed: int,
        seconds: float,
        shrink_seconds: float,
        key: Callable[[F], Any],
        chunk: int = 40,
        max_examples: int | None = None,
        shrink: bool = True,
    ) -> None:
        self.seed = seed
        self.seconds = seconds
        self.shrink_seconds = shrink_seconds
        self.key = key
        self.chunk = max(1, chunk)
        self.max_examples = max_examples
        self.shrink = shrink
        self.t0 = time.perf_counter()
        self.deadline = self.t0 + seconds
        self.examples = 0
        self.runs = 0
        self.failures: list[F] = []
        self.found_at: float | None = None
        self.out_of_time = False
        self._abandoned = threading.Event()
        self._lock = threading.Lock()

    # -- inside an example -------------------------------------------------------------------
    def allows(self) -> bool:
        """Count an example; whether it may run now (False: out of time, do not run it).

        Raises:
            SearchAbandoned: :meth:`abandon` was called.
        """
        if self._abandoned.is_set():
            raise SearchAbandoned
        self.examples += 1
        now = time.perf_counter()
        if self.found_at is None:
            ok = now <= self.deadline
        else:
            ok = now <= self.found_at + self.shrink_seconds
        if not ok:
            self.out_of_time = True
        return ok

    def record(self, failure: F) -> None:
        """Keep a failing run (ignored once the search was abandoned)."""
        with self._lock:
            if self._abandoned.is_set():
                return
            self._add(failure)

    def abandon(self, failure: F | None = None) -> None:
        """End the search from another thread; ``failure`` is recorded if none was yet."""
        with self._lock:
            if failure is not None and not self.failures:
                self._add(failure)
            self._abandoned.set()

    def _add(self, failure: F) -> None:
        if self.found_at is None:
            self.found_at = time.perf_counter()
        self.failures.append(failure)

    # -- the loop ------------------------------------------------------------------------------
    def settings(self, max_examples: int, **overrides: Any) -> Settings:
        """The settings of one chunk: no database, no deadline, no health checks, quiet."""
        from hypothesis import HealthCheck, Phase, Verbosity, settings

        kw: dict[str, Any] = {
            "max_examples": max_examples,
            "database": None,
            "deadline": None,
            "derandomize": False,
            "suppress_health_check": list(HealthCheck),
            "phases": [Phase.generate, Phase.shrink] if self.shrink else [Phase.generate],
            "report_multiple_bugs": False,
            "print_blob": False,
            "verbosity": Verbosity.quiet,
        }
        kw.update(overrides)
        return settings(**kw)

    def run(self, chunk: Callable[[Settings, int], None], **overrides: Any) -> None:
        """Run chunks until a failure is recorded, ``max_examples`` ran, time is up or the
        search was abandoned.

        Args:
            chunk: runs one chunk of examples: ``chunk(settings, seed)`` applies both to its
                Hypothesis test (``@settings``, ``@seed``) and runs it.
            overrides: more settings for every chunk (e.g. ``stateful_step_count``).
        """
        chunk_no = 0
        while (
            not self.failures
            and time.perf_counter() < self.deadline
            and not self._abandoned.is_set()
        ):
            n = self.chunk
            if self.max_examples is not None:
                if self.examples >= self.max_examples:
                    break
                n = max(1, min(n, self.max_examples - self.examples))
            try:
                chunk(self.settings(n, **overrides), self.seed * 1_000_003 + chunk_no)
            except SearchAbandoned:
                return
            except Exception:
                if not self.failures and not self.out_of_time and not self._abandoned.is_set():
                    raise
            chunk_no += 1

    # -- results -------------------------------------------------------------------------------
    @property
    def found(self) -> F | None:
        """The smallest failure recorded (the first of equals), or None."""
        return min(self.failures, key=self.key) if self.failures else None

    @property
    def first(self) -> F | None:
        return self.failures[0] if self.failures else None

    @property
    def seconds_to_find(self) -> float | None:
        return None if self.found_at is None else self.found_at - self.t0

    @property
    def abandoned(self) -> bool:
        return self._abandoned.is_set()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0
