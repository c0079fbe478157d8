"""A portfolio of strategies: random walk, PCT at depths 1-3, DFS and conflict-directed
search, sharing one budget by how fast each has been finding new behaviour.

No single strategy wins everywhere: a random walk finds shallow bugs in long runs, PCT
finds a bug of small depth whatever the run length, bounded DFS finds what needs few
preemptions in short runs and proves their absence, conflict-directed search brings a deep
write and an early read together.  Which one suits a program is not known in advance, so
the portfolio deals the runs of a budget in rounds, each member's share of a round
proportional to its recent rate of new distinct traces (the trace hash the explorer counts
for coverage: a member that keeps producing interleavings nobody has seen earns more
runs, one stuck on traces already seen earns fewer), with a floor of one run per member
per round so that none starves: a bug found late by a slow member is still found, at a
cost bounded by the number of members.  This is the bandit view of portfolio solvers
(SATzilla's schedules, and "multi-armed bandit fuzzing": AFLFast's power schedules,
EcoFuzz, Yue et al., USENIX Security 2020), with "new trace" as the reward.

Every choice is a function of the seed: the members are seeded from it, the allocation
depends only on which traces were new (not on time), and the order of a round's runs is
drawn from a generator seeded from it.  The schedules it produces replay with the ordinary
replay strategy, as every schedule does.
"""

from __future__ import annotations

import random
from collections import deque
from types import CodeType
from typing import Any

from ._platform import Decision
from ._strategies import (
    Conflicts,
    ConflictStrategy,
    DFSStrategy,
    PCTStrategy,
    RandomStrategy,
)

__all__ = ["PortfolioStrategy"]

#: A member's reward window: its last runs, whose fraction of new traces is its rate.
_WINDOW = 32
#: Runs per member per round (a round has ``ROUND * members`` runs).
ROUND = 4


class PortfolioStrategy:
    """Runs dealt in rounds to random, PCT at depths 1, 2 and 3 (change points at shared
    accesses, :class:`PCTStrategy` with ``points="shared"``), bounded DFS and
    conflict-directed search, each round by recent rate of new traces (see the module).

    A round has ``ROUND`` runs per live member: one each first (the floor), the rest in
    proportion to each member's rate, ``(new traces + 1) / (runs + 2)`` over its last
    ``_WINDOW`` runs (a run DFS prunes finds nothing new); the round's runs are then
    shuffled.  An exhausted DFS leaves the portfolio; when every member is exhausted the
    portfolio is.  PCT and conflict-directed search share what they learn about which
    objects are shared (:class:`Conflicts`), from every member's runs.

    ``runs`` counts each member's runs (by label), ``new`` the runs that found a new trace.
    """

    name = "portfolio"

    def __init__(self, seed: int = 0, *, bound: int = 2, learned: Conflicts | None = None
                 ) -> None:
        self.seed = seed
        self.learned = learned if learned is not None else Conflicts()
        self._conflict = ConflictStrategy(seed * 8 + 5, learned=self.learned)
        self.members: dict[str, Any] = {
            "random": RandomStrategy(seed * 8),
            "pct1": PCTStrategy(seed * 8 + 1, 1, points="shared", learned=self.learned),
            "pct2": PCTStrategy(seed * 8 + 2, 2, points="shared", learned=self.learned),
            "pct3": PCTStrategy(seed * 8 + 3, 3, points="shared", learned=self.learned),
            "dfs": DFSStrategy(bound),
            "conflict": self._conflict,
        }
        self.runs: dict[str, int] = dict.fromkeys(self.members, 0)
        self.new: dict[str, int] = dict.fromkeys(self.members, 0)
        self._recent: dict[str, deque[bool]] = {m: deque(maxlen=_WINDOW) for m in self.members}
        self._live = list(self.members)
        self._rng = random.Random(f"{seed}:portfolio")
        self._round: list[str] = []
        self._traces: set[int] = set()
        self.current: str | None = None  # the member running now
        self._strategy: Any = None
        self._hash = 0
        self._pruned = False

    @property
    def needs_fingerprint(self) -> bool:
        """DFS's runs need the state fingerprint (read by the platform at each run)."""
        return bool(getattr(self._strategy, "needs_fingerprint", False))

    def rates(self) -> dict[str, float]:
        """Each live member's recent rate of new traces (Laplace-smoothed)."""
        return {m: (sum(self._recent[m]) + 1) / (len(self._recent[m]) + 2) for m in self._live}

    def _deal(self) -> list[str]:
        """The next round: ``ROUND`` runs per live member, one each, the rest by rate."""
        rates = self.rates()
        total = sum(rates.values())
        extra = (ROUND - 1) * len(self._live)
        share = {m: extra * r / total for m, r in rates.items()}
        counts = {m: 1 + int(share[m]) for m in self._live}
        # Largest remainders take the runs left over (ties in member order).
        left = ROUND * len(self._live) - sum(counts.values())
        for m in sorted(self._live, key=lambda m: -(share[m] - int(share[m])))[:left]:
            counts[m] += 1
        order = [m for m in self._live for _ in range(counts[m])]
        self._rng.shuffle(order)
        return order

    def _finish(self) -> None:
        """Credit the run just ended to its member."""
        m = self.current
        if m is None:
            return
        fresh = not self._pruned and self._hash not in self._traces
        if not self._pruned:
            self._traces.add(self._hash)
        self._recent[m].append(fresh)
        self.new[m] += fresh
        self.current = None

    def next_run(self) -> bool:
        self._finish()
        while self._live:
            if not self._round:
                self._round = self._deal()
            m = self._round.pop()
            if m not in self._live:
                continue
            strat = self.members[m]
            if not strat.next_run():  # an exhausted DFS
                self._live.remove(m)
                self._round = [x for x in self._round if x != m]
                continue
            self.current = m
            self._strategy = strat
            self.runs[m] += 1
            self._hash = 0
            self._pruned = False
            return True
        return False

    def observe(self, thread: int, op: str, obj: int, code: CodeType | None, line: int) -> None:
        """Every operation: the run's trace hash (as the platform computes its own, so a
        trace is new here exactly when it is new to the explorer) and what is shared."""
        self._hash = hash((self._hash, thread, op, obj))
        self._conflict.observe(thread, op, obj, code, line)

    def choose(self, d: Decision) -> int:
        pick: int = self._strategy.choose(d)
        if pick < 0:
            self._pruned = True
        return pick
