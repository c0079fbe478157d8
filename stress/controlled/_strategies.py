"""Scheduling strategies: random walk, PCT, bounded-preemption DFS, replay, Hypothesis.

Each one only answers "which option?" at a :class:`~stress.controlled._platform.Decision`; the
controlled platform does the rest (shuttle's split: tiny scheduler interface, one class per
strategy, replay is just another strategy).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._platform import Decision, _Failure

__all__ = [
    "DFSStrategy",
    "DataStrategy",
    "PCTStrategy",
    "PrefixStrategy",
    "RandomStrategy",
    "ReplayStrategy",
    "make_strategy",
]


def make_strategy(
    strategy: str | Any, seed: int, bound: int = 2, depth: int = 3, *,
    known: str = "random, pct or dfs",
) -> Any:
    """The strategy named ``strategy`` (random, pct, dfs), or ``strategy`` itself when it is
    already a strategy object.

    Raises:
        ValueError: an unknown name (``known`` lists the names the caller accepts).
    """
    if not isinstance(strategy, str):
        return strategy
    if strategy == "random":
        return RandomStrategy(seed)
    if strategy == "pct":
        return PCTStrategy(seed, depth=depth)
    if strategy == "dfs":
        return DFSStrategy(bound)
    raise ValueError(f"unknown strategy {strategy!r}; use {known}")


class RandomStrategy:
    """Uniform random choice at each decision; run ``i`` uses seed ``(seed, i)``."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._run = -1
        self._rng = random.Random(0)

    def next_run(self) -> bool:
        self._run += 1
        self._rng = random.Random(f"{self.seed}:{self._run}")
        return True

    def choose(self, d: Decision) -> int:
        return self._rng.randrange(len(d.options))


class PCTStrategy:
    """Probabilistic concurrency testing (Burckhardt et al., ASPLOS 2010), depth ``d``.

    Each schedulable entity (a thread, or a thread's store buffer under weak memory) gets a
    random priority above ``d`` when first seen; the highest-priority option always runs;
    at ``d - 1`` change points drawn uniformly from the first ``k`` decisions the current
    thread's priority drops below every initial one.  ``k`` starts at an estimate and then
    is the longest run seen.  A bug of depth ``d`` is found with probability >= 1/(n k^(d-1)).
    """

    name = "pct"

    def __init__(self, seed: int = 0, depth: int = 3, k: int = 10) -> None:
        self.seed = seed
        self.depth = depth
        self.k = k
        self._longest = 0
        self._run = -1
        self._rng = random.Random(0)
        self._prio: dict[tuple[str, int, int], int] = {}
        self._changes: dict[int, int] = {}
        self._seen = 0

    def next_run(self) -> bool:
        self._run += 1
        # k tracks the longest run seen (decisions), so change points land inside runs.
        self._longest = max(self._longest, self._seen)
        if self._longest:
            self.k = self._longest
        self._rng = random.Random(f"{self.seed}:{self._run}")
        self._prio = {}
        points = self._rng.sample(range(1, self.k + 1), min(self.depth - 1, self.k))
        self._changes = {p: self.depth - 1 - i for i, p in enumerate(sorted(points))}
        self._seen = 0
        return True

    def _priority(self, key: tuple[str, int, int]) -> int:
        p = self._prio.get(key)
        if p is None:
            p = self.depth + self._rng.randrange(1_000_000)
            self._prio[key] = p
        return p

    def choose(self, d: Decision) -> int:
        self._seen = d.index + 1
        low = self._changes.get(d.index + 1)
        if low is not None:
            self._prio[("run", d.current, 0)] = low
        keys = [(o.kind, o.thread, o.slot) for o in d.options]
        best = max(range(len(keys)), key=lambda i: (self._priority(keys[i]), -i))
        return best


@dataclass
class _Frame:
    n: int
    chosen: int
    todo: list[int]


class DFSStrategy:
    """Exhaustive depth-first search of schedules with at most ``bound`` preemptions.

    With ``prune`` (default), a decision point is not explored again (the run stops there
    and counts as pruned) when its state was already explored with no more budget left:

    * the same state (:attr:`Decision.fingerprint`: two interleavings that order every
      pair of accesses to the same object alike, memory writes of buffered stores
      included, lead to the same state) decided by the same thread in the same way
      (yielding or not) with no more preemptions spent; or
    * the same state decided by any thread, not yielding, with at least one preemption
      fewer: the choices available here are available there, each costing at most one
      more preemption (only the first switch can differ).

    Both rules keep the search exhaustive: with or without pruning, an exhausted DFS has
    reached every state reachable within ``bound`` preemptions (a flush of a buffered
    store counts as one preemption, like a switch away from a runnable thread).
    """

    name = "dfs"
    needs_fingerprint = True

    def __init__(self, bound: int = 2, *, prune: bool = True) -> None:
        self.bound = bound
        self.prune = prune
        self._stack: list[_Frame] = []
        self._pos = 0
        self._started = False
        self._seen: dict[tuple[int, int, bool], int] = {}
        self._seen_any: dict[int, int] = {}
        self.exhausted = False

    def next_run(self) -> bool:
        if not self._started:
            self._started = True
            self._pos = 0
            return True
        while self._stack and not self._stack[-1].todo:
            self._stack.pop()
        if not self._stack:
            self.exhausted = True
            return False
        top = self._stack[-1]
        top.chosen = top.todo.pop(0)
        self._pos = 0
        return True

    def choose(self, d: Decision) -> int:
        pos = self._pos
        self._pos += 1
        if pos < len(self._stack):
            frame = self._stack[pos]
            if frame.n != len(d.options):
                raise _Failure(
                    "inconclusive",
                    "nondeterminism",
                    f"decision {pos}: replayed prefix saw {len(d.options)} options, "
                    f"the first visit saw {frame.n}: the program is not deterministic",
                )
            return frame.chosen
        if self.prune:
            fp = d.fingerprint
            key = (fp, d.current, d.yielding)
            here = d.preemptions
            prev = self._seen.get(key)
            if prev is not None and prev <= here:
                return -1
            prev_any = self._seen_any.get(fp)
            if prev_any is not None and prev_any + 1 <= here:
                return -1
            self._seen[key] = here
            if not d.yielding and (prev_any is None or here < prev_any):
                self._seen_any[fp] = here
        todo = [
            i
            for i in range(len(d.options))
            if i != d.default and d.preemptions + d.costs[i] <= self.bound
        ]
        self._stack.append(_Frame(len(d.options), d.default, todo))
        return d.default


class ReplayStrategy:
    """Follows a recorded token list; the first divergence fails the run as inconclusive."""

    name = "replay"

    def __init__(self, tokens: tuple[str, ...] | list[str]) -> None:
        self.tokens = tuple(tokens)
        self._pos = 0

    def next_run(self) -> bool:
        self._pos = 0
        return True

    def choose(self, d: Decision) -> int:
        pos = self._pos
        self._pos += 1
        avail = [o.token for o in d.options]
        if pos >= len(self.tokens):
            raise _Failure(
                "inconclusive",
                "divergence",
                f"decision {pos} (step {d.step}): the schedule has ended, but the run "
                f"needs a choice among [{', '.join(avail)}]",
            )
        want = self.tokens[pos]
        if want not in avail:
            raise _Failure(
                "inconclusive",
                "divergence",
                f"decision {pos} (step {d.step}): expected {_describe(want)}, "
                f"the options were [{', '.join(avail)}]",
            )
        return avail.index(want)


class PrefixStrategy:
    """Replays a prefix leniently (a missing token falls back to the default), then always
    takes the default: the probe used by shrinking."""

    name = "prefix"

    def __init__(self, tokens: tuple[str, ...] | list[str]) -> None:
        self.tokens = tuple(tokens)
        self._pos = 0

    def next_run(self) -> bool:
        self._pos = 0
        return True

    def choose(self, d: Decision) -> int:
        pos = self._pos
        self._pos += 1
        if pos < len(self.tokens):
            avail = [o.token for o in d.options]
            if self.tokens[pos] in avail:
                return avail.index(self.tokens[pos])
        return d.default


class DataStrategy:
    """Decisions drawn from a function (Hypothesis data): ``draw(n)`` in ``[0, n)``, offset
    so that 0 means "no preemption", which is what Hypothesis shrinks toward."""

    name = "hypothesis"

    def __init__(self, draw: Callable[[int], int]) -> None:
        self._draw = draw

    def next_run(self) -> bool:
        return True

    def choose(self, d: Decision) -> int:
        v = self._draw(len(d.options))
        return (d.default + v) % len(d.options)


def _describe(token: str) -> str:
    if token.startswith("R"):
        t, _, ts = token[1:].partition(".")
        return f"thread {t}'s load reading write {ts} of its cell"
    if token.startswith("F"):
        return f"a flush of thread {token[1:]}'s store buffer"
    return f"thread {token}"
