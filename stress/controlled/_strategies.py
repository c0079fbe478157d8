"""Scheduling strategies: random walk, PCT, bounded-preemption DFS, replay, Hypothesis (and,
in :mod:`._portfolio`, a portfolio of them).

Each one only answers "which option?" at a :class:`~stress.controlled._platform.Decision`; the
controlled platform does the rest (shuttle's split: tiny scheduler interface, one class per
strategy, replay is just another strategy).
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import CodeType
from typing import Any

from aioctx_verify.vocab import DEFAULT_STRATEGIES, STRATEGY_NAMES

from ._platform import Decision, _Failure

__all__ = [
    "DEFAULT_STRATEGIES",
    "STRATEGY_NAMES",
    "ConflictStrategy",
    "Conflicts",
    "DFSStrategy",
    "DataStrategy",
    "PCTStrategy",
    "PostponeStrategy",
    "PrefixStrategy",
    "RandomStrategy",
    "ReplayStrategy",
    "for_memory",
    "make_strategy",
]




def for_memory(strategy: str, memory: str) -> str:
    """The strategy a search that asked for ``strategy`` runs under ``memory``: DPOR does
    not model c11's read choices, so a campaign's c11 turn of ``dpor`` goes to ``dfs``
    (``explore --strategy dpor`` on c11 is refused instead, with that advice)."""
    return "dfs" if strategy == "dpor" and memory == "c11" else strategy


def make_strategy(
    strategy: str | Any, seed: int, bound: int = 2, depth: int = 3, *,
    known: str = ", ".join(STRATEGY_NAMES),
) -> Any:
    """The strategy named ``strategy`` (one of :data:`STRATEGY_NAMES`), or ``strategy``
    itself when it is already a strategy object.  ``bound`` is DFS's preemption bound (and
    the portfolio's DFS member's, and DPOR's: :class:`~._dpor.DPORStrategy` itself is
    unbounded by default), ``depth`` PCT's; ``pct-auto`` draws its depth per run.

    Raises:
        ValueError: an unknown name (``known`` lists the names the caller accepts).
    """
    if not isinstance(strategy, str):
        return strategy
    if strategy == "random":
        return RandomStrategy(seed)
    if strategy == "pct":
        return PCTStrategy(seed, depth=depth)
    if strategy == "pct-auto":
        return PCTStrategy(seed, depth=None, points="shared")
    if strategy == "dfs":
        return DFSStrategy(bound)
    if strategy == "dpor":
        from ._dpor import DPORStrategy

        return DPORStrategy(bound)
    if strategy == "conflict":
        return ConflictStrategy(seed)
    if strategy == "portfolio":
        from ._portfolio import PortfolioStrategy

        return PortfolioStrategy(seed, bound=bound)
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

    @property
    def choose_index(self) -> Callable[[int, int], int] | None:
        """:meth:`choose` as a function of the number of options and the default one: the
        platform's fast path asks it without building a Decision (None for a subclass
        that decides otherwise)."""
        return self._choose_index if type(self).choose is RandomStrategy.choose else None

    def _choose_index(self, n: int, default: int) -> int:
        return self._rng.randrange(n)


class PCTStrategy:
    """Probabilistic concurrency testing (Burckhardt et al., ASPLOS 2010), depth ``d``.

    Each schedulable entity (a thread, or a thread's store buffer under weak memory) gets a
    random priority above ``d`` when first seen; the highest-priority option always runs;
    at ``d - 1`` change points drawn uniformly from the first ``k`` change-point candidates
    the current thread's priority drops below every initial one.  ``k`` starts at an
    estimate and then is the largest number of candidates a run has had.  A bug of depth
    ``d`` is found with probability >= 1/(n k^(d-1)).

    ``points`` says which decisions are candidates:

    * ``"all"`` (classic PCT): every decision, so ``k`` is the run's length in decisions;
    * ``"shared"``: only decisions where the current thread is about to access an object
      that earlier runs saw two threads access, one of them writing (what
      :class:`ConflictStrategy` learns, :class:`Conflicts`), and c11 read choices.  Lowering
      a thread's priority just before a thread-local operation has the effect of lowering it
      before its next shared one (the local operation commutes with every other thread's),
      so these are the only places a change point can matter and ``k`` counts real
      interleaving points, not steps (the same reduction as preempting only at
      synchronisation points, CHESS, Musuvathi and Qadeer, PLDI 2007).  Until a run has
      seen a shared object every decision is a candidate.

    ``depth=None`` draws the depth of each run from 1..``max_depth`` with weight
    ``k^((d-1)/2)`` (at least 10% each): PCT needs about ``n k^(d-1)`` runs for a bug of
    depth ``d``, and these weights minimise the expected runs over a bug depth unknown and
    uniform on 1..``max_depth`` (weight ∝ the square root of each depth's cost), so depth
    follows the measured run length: short runs go deep, long runs keep the shallow depths.
    Run ``i`` uses seed ``(seed, i)``; with a fixed depth and ``points="all"`` the schedules
    are the same as they have always been.
    """

    name = "pct"

    def __init__(
        self,
        seed: int = 0,
        depth: int | None = 3,
        k: int = 10,
        *,
        points: str = "all",
        max_depth: int = 3,
        learned: Conflicts | None = None,
    ) -> None:
        if points not in ("all", "shared"):
            raise ValueError(f"PCT points must be 'all' or 'shared', got {points!r}")
        if (depth is not None and depth < 1) or max_depth < 1:
            raise ValueError(f"PCT depth must be at least 1, got {depth or max_depth}")
        self.seed = seed
        self.auto_depth = depth is None
        self.max_depth = max_depth
        self.depth = max_depth if depth is None else depth
        self.k = k
        self.points = points
        if points == "shared" or depth is None:
            self.name = "pct-auto"
        self.learned = learned if learned is not None else Conflicts()
        self._longest = 0
        self._recent: list[int] = []  # candidates of the last runs ("shared": k follows them)
        self._run = -1
        self._rng = random.Random(0)
        self._prio: dict[tuple[str, int, int], int] = {}
        self._changes: dict[int, int] = {}
        self._seen = 0
        self._shared: frozenset[int] = frozenset()
        self.depths: Counter[int] = Counter()  # runs per depth (auto depth)
        # The platform calls ``observe`` at every operation when there is one: only the
        # "shared" points learn from operations (classic PCT costs nothing more).
        self.observe: Callable[[int, str, int, CodeType | None, int], None] | None = (
            self._observe if points == "shared" else None)

    def _observe(self, thread: int, op: str, obj: int, code: CodeType | None, line: int) -> None:
        """Learn which objects two threads access, one writing."""
        _note_access(self.learned, thread, op, obj)

    def next_run(self) -> bool:
        self._run += 1
        if self.points == "all":
            # k tracks the longest run seen (decisions), so change points land inside runs.
            self._longest = max(self._longest, self._seen)
            if self._longest:
                self.k = self._longest
        elif self._run:
            # Candidates grow as objects are learned shared: k follows the recent runs.
            self._recent.append(self._seen)
            del self._recent[:-_PCT_WINDOW]
            self.k = max(1, max(self._recent))
            c = self.learned
            self._shared = frozenset(
                o for o, ts in c.threads.items() if len(ts) > 1 and o in c.written)
        self._rng = random.Random(f"{self.seed}:{self._run}")
        if self.auto_depth:
            self.depth = _draw_depth(self._rng, self.k, self.max_depth)
            self.depths[self.depth] += 1
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

    def _candidate(self, d: Decision) -> bool:
        """Whether ``d`` counts toward k (``points="shared"``: see the class docstring)."""
        if not self._shared or d.options[0].kind == "read":
            return True
        pending = d.pending_fn
        if pending is None:
            return True
        return pending(d.current)[1] in self._shared

    def choose(self, d: Decision) -> int:
        if self.points == "all":
            self._seen = d.index + 1
        elif self._candidate(d):
            self._seen += 1
        else:
            return self._best(d)
        low = self._changes.get(self._seen)
        if low is not None:
            self._prio[("run", d.current, 0)] = low
        return self._best(d)

    def _best(self, d: Decision) -> int:
        keys = [(o.kind, o.thread, o.slot) for o in d.options]
        return max(range(len(keys)), key=lambda i: (self._priority(keys[i]), -i))


#: Runs whose candidate counts set ``k`` of PCT with ``points="shared"``.
_PCT_WINDOW = 32


def _draw_depth(rng: random.Random, k: int, max_depth: int) -> int:
    """A depth in 1..``max_depth`` with weight ``k^((d-1)/2)``, each at least 10%."""
    w = [float(k) ** ((d - 1) / 2) for d in range(1, max_depth + 1)]
    total = sum(w)
    w = [max(0.1, x / total) for x in w]
    return rng.choices(range(1, max_depth + 1), weights=w)[0]


def _note_access(c: Conflicts, thread: int, op: str, obj: int) -> None:
    """Record that ``thread`` ran ``op`` on ``obj`` (objects <= 0 are no shared object)."""
    if obj <= 0:  # fences, the clock, thread starts and ends: no shared object
        return
    ts = c.threads.get(obj)
    if ts is None:
        c.threads[obj] = {thread}
    elif thread not in ts:
        ts.add(thread)
    if op != "load":
        c.written.add(obj)


def _impl_file(filename: str) -> str:
    """``impl/_context.py`` for any path of that file, a mutated copy's included (a mutant's
    code is compiled under ``impl/[operator@line:col:variant]_context.py``)."""
    base = os.path.basename(filename)
    if base.startswith("["):
        base = base[base.find("]") + 1:]
    return f"{os.path.basename(os.path.dirname(filename))}/{base}"


@dataclass
class Conflicts:
    """What conflict-directed search learned of a program: shared by the searches of one
    program under several memory models (the objects a program makes before its threads
    start get the same ids in every run), so only the first run of the first is blind."""

    threads: dict[int, set[int]] = field(default_factory=dict)  # object -> threads
    written: set[int] = field(default_factory=set)  # objects some thread wrote
    focused: set[int] = field(default_factory=set)  # objects accessed from a focus line
    targeted: Counter[int] = field(default_factory=Counter)  # object -> runs it was target


class ConflictStrategy:
    """Conflict-directed random search: each run brings two threads' accesses to one shared
    object together, in a random order (race-directed random testing: RaceFuzzer, Sen,
    PLDI 2008; CTrigger and Maple steer toward an interleaving the same way).

    A random walk rarely puts a write of one thread right before another thread's access to
    the same object when either sits many operations into its thread: a lost update, a
    stale read through a broken release/acquire pair or a check-then-act needs exactly
    that.  So every run picks a *target*, an object that earlier runs saw accessed by two
    threads, one of them writing (an atomic cell's store or RMW, a lock, a notifier; loads
    only read), least-targeted first so that a budget covers the objects in turn.  A thread
    about to access the target is postponed while another thread can run (another thread,
    not a store-buffer flush); once two threads are about to access it, one of them, drawn
    at random, goes first.  A run steers a random number of such meetings (one with
    probability 1/2, two with 1/4, ...: the write that matters may be a thread's second
    access), then goes on unsteered (postponing every later access of the target would keep
    a reader from overtaking a buffered store's flush).  Every
    other choice is uniform, as in :class:`RandomStrategy`, and a run that has postponed
    for ``patience`` decisions goes on unsteered (a thread spinning on the postponed one
    must not starve).

    ``focus`` (an impl file as ``impl/_x.py`` and lines) prefers objects accessed from those
    lines (±2), as when a patch is under test; any conflicting object otherwise.  Run
    ``i`` uses seed ``(seed, i)``; the first run, with nothing seen yet, is a random walk
    (``learned``: what searches of the same program found before, :class:`Conflicts`).
    """

    name = "conflict"

    def __init__(
        self,
        seed: int = 0,
        focus: tuple[str, tuple[int, ...]] | None = None,
        patience: int = 5000,
        learned: Conflicts | None = None,
    ) -> None:
        self.seed = seed
        self.patience = patience
        self._focus = focus
        self._focus_lines = (
            frozenset(k for n in focus[1] for k in range(n - 2, n + 3)) if focus else frozenset()
        )
        self._run = -1
        self._rng = random.Random(0)
        seen = learned if learned is not None else Conflicts()
        self.learned = seen
        self._threads = seen.threads
        self._written = seen.written
        self._focused = seen.focused
        self._targeted = seen.targeted
        self.target: int | None = None
        self._postponed = 0
        self.hits = 0  # meetings steered: two threads about to access the target
        self._meetings = 0

    def conflicts(self) -> list[int]:
        """Objects seen accessed by two threads, one writing (the candidate targets)."""
        return sorted(o for o, ts in self._threads.items() if len(ts) > 1 and o in self._written)

    def observe(self, thread: int, op: str, obj: int, code: CodeType | None, line: int) -> None:
        """The platform ran ``op`` on ``obj`` in ``thread``, called from ``code`` at ``line``."""
        if obj <= 0:  # fences, the clock, thread starts and ends: no shared object
            return
        _note_access(self.learned, thread, op, obj)
        if (code is not None and line in self._focus_lines and self._focus is not None
                and _impl_file(code.co_filename) == self._focus[0]):
            self._focused.add(obj)

    def next_run(self) -> bool:
        self._run += 1
        self._rng = random.Random(f"{self.seed}:{self._run}")
        found = self.conflicts()
        near = [o for o in found if o in self._focused]
        pool = near or found
        self.target = None
        if pool:
            least = min(self._targeted[o] for o in pool)
            self.target = self._rng.choice([o for o in pool if self._targeted[o] == least])
            self._targeted[self.target] += 1
        self._postponed = 0
        # Meetings to steer this run: 1 with probability 1/2, 2 with 1/4, ... (at most 8): a
        # write that matters may be a thread's second access of the target, not its first.
        self._meetings = 1
        while self._meetings < 8 and self._rng.random() < 0.5:
            self._meetings += 1
        return True

    def choose(self, d: Decision) -> int:
        rng = self._rng
        n = len(d.options)
        target = self.target
        pending = d.pending_fn
        if (target is None or pending is None or not self._meetings
                or self._postponed >= self.patience):
            return rng.randrange(n)
        at: list[int] = []
        writes = False
        for i, o in enumerate(d.options):
            if o.kind == "run":
                op, obj = pending(o.thread)
                if obj == target:
                    at.append(i)
                    writes = writes or op != "load"
        if not at:
            return rng.randrange(n)
        if len(at) > 1 and writes:
            self._meetings -= 1
            self.hits += 1
            return rng.choice(at)
        # Postponed: another thread moves (a buffered store reaching memory is no thread's
        # progress, and flushing early would hide every store-buffer bug of the target).
        others = [i for i, o in enumerate(d.options) if o.kind == "run" and i not in at]
        if not others:
            return rng.randrange(n)
        self._postponed += 1
        return rng.choice(others)


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
        got = self._replay(d)
        return d.default if got is None else got

    def _replay(self, d: Decision) -> int | None:
        """The prefix's choice at ``d`` (its default where the token is missing), or None
        past the prefix."""
        pos = self._pos
        self._pos += 1
        if pos >= len(self.tokens):
            return None
        avail = [o.token for o in d.options]
        return avail.index(self.tokens[pos]) if self.tokens[pos] in avail else d.default


class PostponeStrategy(PrefixStrategy):
    """Replays a prefix leniently, then keeps one thread (``victim``) waiting while any
    other thread can run, for at most ``patience`` decisions, choosing among the others at
    random; then a random walk.  The confirmation run of a race suspect: replayed to just
    after one thread's access, that thread is held back so the other thread's access comes
    before whatever synchronisation ordered the two in the suspect's run (RaceFuzzer's
    postponement, Sen, PLDI 2008)."""

    name = "postpone"

    def __init__(
        self, tokens: Sequence[str], victim: int, seed: int = 0, patience: int = 5000
    ) -> None:
        super().__init__(tuple(tokens))
        self.victim = victim
        self.seed = seed
        self.patience = patience
        self._left = patience
        self._rng = random.Random(0)

    def next_run(self) -> bool:
        self._left = self.patience
        self._rng = random.Random(f"{self.seed}:postpone:{self.victim}:{len(self.tokens)}")
        return super().next_run()

    def choose(self, d: Decision) -> int:
        got = self._replay(d)
        if got is not None:
            return got
        if self._left > 0:
            others = [i for i, o in enumerate(d.options)
                      if o.kind == "run" and o.thread != self.victim]
            if others:
                self._left -= 1
                return self._rng.choice(others)
        return self._rng.randrange(len(d.options))


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

    @property
    def choose_index(self) -> Callable[[int, int], int] | None:
        """:meth:`choose` as a function of the number of options and the default one (see
        :attr:`RandomStrategy.choose_index`)."""
        return self._choose_index if type(self).choose is DataStrategy.choose else None

    def _choose_index(self, n: int, default: int) -> int:
        return (default + self._draw(n)) % n


def _describe(token: str) -> str:
    if token.startswith("R"):
        t, _, ts = token[1:].partition(".")
        return f"thread {t}'s load reading write {ts} of its cell"
    if token.startswith("F"):
        return f"a flush of thread {token[1:]}'s store buffer"
    return f"thread {token}"
