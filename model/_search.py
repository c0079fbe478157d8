"""Exhaustive explicit-state search: breadth-first, states hashed, shortest counterexamples.

Why it exists: for small parameters the model's state space is a few thousand to a few
hundred thousand states, so every interleaving can be enumerated (as Spin does for QEMU's
docs/aio_notify*.promela models).  Breadth-first order makes the first violation found a
shortest one.  Safety properties (P1-P3) and deadlocks are checked as states are reached;
busy loops need the whole graph: afterwards every state is checked to still reach a rest
state (backward reachability from the rest states), and the shallowest one that cannot is
reported with its path.

:func:`check_bug` is what the kill matrix calls for a mutant: the bug's flag switched on in
the smallest configuration that exhibits it (:data:`BUG_CONFIGS`).
"""

from __future__ import annotations

import gc
import time
from collections import deque
from dataclasses import dataclass, replace

from ._actions import Action, format_path, replay, successors
from ._state import MODEL_BUGS, ModelConfig, ModelError, State, initial
from .invariants import is_rest, violated

__all__ = [
    "BUG_CONFIGS",
    "BUG_PROPERTY",
    "SearchResult",
    "bug_config",
    "check_bug",
    "search",
]

_CLIENT = frozenset({"acquire", "release", "schedule"})

#: For each mutant: the smallest configuration whose correct version is violation-free and
#: whose mutant is not (tests/test_model.py checks both).
BUG_CONFIGS: dict[str, ModelConfig] = {
    # An acquirer waits behind an IOThread asleep in aio_poll that nobody kicks.
    "no-contention-callback": ModelConfig(bhs=1, client_ops=_CLIENT),
    # The kick is a bare aio_notify, dropped when the IOThread is between polls.
    "nonsticky-kick": ModelConfig(bhs=1, client_ops=_CLIENT),
    # A new arrival takes the lock while a waiter's ticket is due.
    "lock-no-fifo": ModelConfig(bhs=1, client_ops=_CLIENT),
    "release-by-non-owner-accepted": ModelConfig(bhs=1, client_ops=_CLIENT | {"bad_release"}),
    "schedule-takes-lock": ModelConfig(bhs=1, client_ops=_CLIENT),
    "rerun-same-iteration": ModelConfig(bhs=1, client_ops=_CLIENT, bh_callbacks=("resched",)),
    "deleted-bh-runs": ModelConfig(bhs=1, ops=4, client_ops=_CLIENT | {"delete"}),
    # Two pollers: the GSource asleep without the context, the IOThread asleep holding it.
    "dispatching-flag-shared": ModelConfig(
        roles=("gsource", "io", "client"), bhs=1, max_depth=1, ops=1,
        client_ops=frozenset({"schedule"}),
    ),
    # A client's aio_poll eats the wake-up meant for the sleeping GSource: a BH callback
    # schedules a BH the walk has passed, after the walk but before the late clear.
    "notify-clear-late": ModelConfig(
        roles=("gsource", "client"), bhs=2, max_depth=1, ops=3,
        client_ops=frozenset({"acquire", "release", "schedule", "poll"}),
        bh_callbacks=("sched-other", "noop"),
    ),
    "notified-bug1": ModelConfig(bhs=1, ops=2, client_ops=frozenset({"schedule"})),
    # A schedule lands between a client poll's exchange of notified and its clear of the
    # event, leaving notified set and the event clear: the next notify skips the write.
    "notified-bug2": ModelConfig(
        roles=("gsource", "client", "client"), bhs=2, max_depth=1, ops=2,
        thread_ops=(
            frozenset(), frozenset({"acquire", "release", "poll"}), frozenset({"schedule"})
        ),
        bh_callbacks=("sched-other", "noop"),
    ),
    "bh-nonatomic-test-and-set": ModelConfig(bhs=1, client_ops=frozenset({"schedule"})),
    "non-home-thread-poll": ModelConfig(bhs=1, client_ops=_CLIENT | {"poll"}),
}

#: The property each mutant's shortest counterexample violates in the model.
BUG_PROPERTY: dict[str, str] = {
    "no-contention-callback": "LIVE",
    "nonsticky-kick": "LIVE",
    "lock-no-fifo": "P1",
    "release-by-non-owner-accepted": "P1",
    "schedule-takes-lock": "P2",
    "rerun-same-iteration": "P2",
    "deleted-bh-runs": "P2",
    "dispatching-flag-shared": "LIVE",
    "notify-clear-late": "LIVE",
    "notified-bug1": "LIVE",
    "notified-bug2": "LIVE",
    "bh-nonatomic-test-and-set": "P2",
    "non-home-thread-poll": "P3",
}


@dataclass(frozen=True)
class SearchResult:
    """What a search found.

    Attributes:
        config: the model searched.
        violation: ``"P1"`` / ``"P2"`` / ``"P3"`` / ``"LIVE"``, or None.
        path: the shortest path of actions from the initial state to the violation.
        trace: the states along ``path`` (first = initial).
        states: distinct states reached.
        transitions: transitions followed.
        seconds: wall time.
        complete: the whole reachable state space was explored (no bound hit, no early stop).
        depth: the largest breadth-first depth reached.
        rest_states: reachable states that are proper ends (see :func:`model.invariants.is_rest`).
    """

    config: ModelConfig
    violation: str | None
    path: tuple[Action, ...]
    trace: tuple[State, ...]
    states: int
    transitions: int
    seconds: float
    complete: bool
    depth: int
    rest_states: int

    @property
    def ok(self) -> bool:
        """No violation and the whole state space was explored."""
        return self.violation is None and self.complete

    def summary(self) -> str:
        head = (
            f"{self.config.label()}: {self.violation or 'no violation'}"
            f"{'' if self.complete else ' (incomplete)'}; {self.states} states, "
            f"{self.transitions} transitions, depth {self.depth}, {self.seconds:.2f} s"
        )
        if self.violation is None:
            return head
        return (
            f"{head}\nshortest path to {self.violation} ({len(self.path)} steps):\n"
            + format_path(self.path, self.config)
        )


def search(
    config: ModelConfig,
    *,
    max_states: int = 1_000_000,
    max_depth: int | None = None,
    stop_at_first: bool = True,
    liveness: bool = True,
) -> SearchResult:
    """Breadth-first search of ``config``'s state space.

    Args:
        config: the model.
        max_states: give up (``complete=False``) after this many distinct states.
        max_depth: do not expand states at this breadth-first depth (``complete=False`` if
            that cut anything): "no violation within ``max_depth`` steps".
        stop_at_first: stop at the first safety violation or deadlock; otherwise explore
            everything and report the shallowest violation of any kind.
        liveness: after a complete search without a violation, check that every state can
            still reach a rest state (busy loops).
    """
    # The graph is millions of small immutable objects and no cycles: the cyclic collector
    # would re-traverse it again and again (several times slower) for nothing to free.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _search(config, max_states, max_depth, stop_at_first, liveness)
    finally:
        if was_enabled:
            gc.enable()


def _search(
    config: ModelConfig,
    max_states: int,
    max_depth: int | None,
    stop_at_first: bool,
    liveness: bool,
) -> SearchResult:
    t0 = time.perf_counter()
    init = initial(config)
    index: dict[State, int] = {init: 0}
    states: list[State] = [init]
    parent: list[int] = [-1]
    via: list[Action | None] = [None]
    depth: list[int] = [0]
    succ: list[list[int]] = []
    rest: list[int] = []
    found: tuple[int, str] | None = None
    transitions = 0
    complete = True
    todo = deque([0])
    while todo:
        i = todo.popleft()
        s = states[i]
        bad = violated(s)
        nxt = successors(s)
        if bad is None and not nxt:
            if is_rest(s, terminal=True):
                rest.append(i)
            else:
                bad = "LIVE"  # deadlock: nothing can move and this is no proper end
        if bad is not None and (found is None or depth[i] < depth[found[0]]):
            found = (i, bad)
            if stop_at_first:
                complete = False
                break
        if max_depth is not None and depth[i] >= max_depth:
            if nxt:
                complete = False
            succ.append([])
            continue
        children = []
        for a, s2 in nxt:
            transitions += 1
            j = index.get(s2)
            if j is None:
                j = len(states)
                index[s2] = j
                states.append(s2)
                parent.append(i)
                via.append(a)
                depth.append(depth[i] + 1)
                todo.append(j)
            children.append(j)
        succ.append(children)
        if len(states) > max_states:
            complete = False
            break
    if complete and liveness and (found is None or not stop_at_first):
        # Busy loops: states from which no rest state can be reached (needs the whole graph).
        stuck = _cannot_rest(succ, rest, len(states))
        if stuck:
            k = min(stuck, key=lambda j: depth[j])
            if found is None or depth[k] < depth[found[0]]:
                found = (k, "LIVE")
    path: list[Action] = []
    if found is not None:
        j = found[0]
        while parent[j] >= 0:
            came_by = via[j]
            assert came_by is not None
            path.append(came_by)
            j = parent[j]
        path.reverse()
    return SearchResult(
        config=config,
        violation=None if found is None else found[1],
        path=tuple(path),
        trace=tuple(replay(config, path)) if found is not None else (),
        states=len(states),
        transitions=transitions,
        seconds=time.perf_counter() - t0,
        complete=complete,
        depth=max(depth),
        rest_states=len(rest),
    )


def _cannot_rest(succ: list[list[int]], rest: list[int], n: int) -> list[int]:
    """States (indices) from which no rest state is reachable."""
    preds: list[list[int]] = [[] for _ in range(n)]
    for i, children in enumerate(succ):
        for j in children:
            preds[j].append(i)
    ok = [False] * n
    todo = deque(rest)
    for r in rest:
        ok[r] = True
    while todo:
        j = todo.popleft()
        for i in preds[j]:
            if not ok[i]:
                ok[i] = True
                todo.append(i)
    return [i for i in range(n) if not ok[i]]


def bug_config(flag: str) -> ModelConfig:
    """The configuration :func:`check_bug` searches for ``flag``, with the flag on."""
    if flag not in MODEL_BUGS:
        raise ModelError(f"the model does not implement bug {flag!r}; see MODEL_BUGS")
    return replace(BUG_CONFIGS[flag], bugs=frozenset({flag}))


def check_bug(flag: str, max_states: int = 500_000) -> SearchResult:
    """Search the mutant ``flag`` in its smallest exhibiting configuration.

    The result's ``violation`` names the property broken (None: the model did not find the
    bug within ``max_states``), ``path`` is a shortest counterexample.
    """
    return search(bug_config(flag), max_states=max_states)
