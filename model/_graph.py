"""Strongly connected components of an explicit state graph (Tarjan 1972, iterative).

Why it exists: the explicit oracles of liveness, the event-loop model's
(:func:`model._z3_live.fair_cycle_states`) and the aio_notify protocols'
(:func:`model._notify.explore`), both look for weakly fair cycles component by component;
one implementation serves both.  :func:`shortest_witness` then finds a *shortest*
violation of liveness over such a graph (a path to a stuck state, or a weakly fair lasso),
exhaustively, so that an explicit refutation is as short as a bounded model checker's and
an explicit "no witness" is a proof at that configuration.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

__all__ = ["Witness", "cyclic_components", "shortest_witness"]


def cyclic_components(
    succ: Sequence[Sequence[int]], keep: Sequence[bool] | None = None
) -> Iterator[list[int]]:
    """The strongly connected components that contain a cycle (more than one node, or a
    node with an edge to itself) of the graph ``succ`` (node -> successor nodes),
    restricted to the nodes ``keep`` marks (all when None), in Tarjan's order."""
    n = len(succ)
    index = [-1] * n
    low = [0] * n
    on = [False] * n
    stack: list[int] = []
    counter = 0
    for root in range(n):
        if (keep is not None and not keep[root]) or index[root] >= 0:
            continue
        work: list[tuple[int, int]] = [(root, 0)]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on[root] = True
        while work:
            v, ei = work[-1]
            edges = succ[v]
            if ei < len(edges):
                work[-1] = (v, ei + 1)
                w = edges[ei]
                if keep is not None and not keep[w]:
                    continue
                if index[w] < 0:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on[w] = True
                    work.append((w, 0))
                elif on[w]:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                u = work[-1][0]
                low[u] = min(low[u], low[v])
            if low[v] == index[v]:
                comp: list[int] = []
                while True:
                    w = stack.pop()
                    on[w] = False
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1 or v in succ[v]:
                    yield comp


@dataclass(frozen=True)
class Witness:
    """A path of the graph from the initial node: ``nodes[i + 1]`` is the target of edge
    ``edges[i]`` (an index into ``succ[nodes[i]]``).  ``loop``: None when the path ends in a
    stuck node; else ``nodes[-1] == nodes[loop]`` and ``edges[loop:]`` repeat for ever."""

    nodes: tuple[int, ...]
    edges: tuple[int, ...]
    loop: int | None

    def __len__(self) -> int:
        return len(self.edges)


def shortest_witness(
    succ: Sequence[Sequence[tuple[int, int]]],
    n_units: int,
    *,
    stuck: Sequence[bool],
    keep: Sequence[bool] | None = None,
    init: int = 0,
) -> Witness | None:
    """A shortest (fewest edges) path from ``init`` to a ``stuck`` node, or weakly fair
    lasso, of the graph ``succ`` (node -> ``(target, unit)`` edges), or None when there is
    neither.

    Fairness is weak, per unit ``0 .. n_units - 1`` (a unit outside that range, e.g. -1, is
    no fairness obligation): a loop is fair when every unit moves on one of its edges or is
    disabled (labels no edge) at one of its nodes.  The loop's nodes must all be ``keep``
    nodes (all nodes when None); the stem is free.  Ties go to the stuck path.

    Exact and exhaustive: the nearest stuck node by breadth-first search; for lassos, every
    node of a fair strongly connected component (only those carry fair cycles) is a loop
    entry ``l`` in order of its distance ``d(l)``, and a breadth-first search over (node,
    units met) inside ``l``'s component gives the shortest fair cycle through ``l``;
    ``d(l)`` + that cycle is minimised, each search cut off at the best length so far.
    """
    n = len(succ)
    full = (1 << n_units) - 1

    def unit_bit(u: int) -> int:
        return (1 << u) if 0 <= u < n_units else 0

    parent: list[tuple[int, int]] = [(-1, -1)] * n
    dist = [-1] * n
    dist[init] = 0
    order = [init]
    for v in order:  # breadth-first from init; ``order`` grows as it goes
        for e, (w, _) in enumerate(succ[v]):
            if dist[w] < 0:
                dist[w] = dist[v] + 1
                parent[w] = (v, e)
                order.append(w)

    def stem(v: int) -> tuple[list[int], list[int]]:
        nodes, edges = [v], []
        while v != init:
            v, e = parent[v]
            nodes.append(v)
            edges.append(e)
        return nodes[::-1], edges[::-1]

    best: Witness | None = None
    dead = next((v for v in order if stuck[v]), None)
    if dead is not None:
        nodes, edges = stem(dead)
        best = Witness(tuple(nodes), tuple(edges), None)

    disabled = [0] * n
    for v in order:
        on = 0
        for _, u in succ[v]:
            on |= unit_bit(u)
        disabled[v] = full & ~on
    entries: list[tuple[int, int, frozenset[int]]] = []
    reach = [d >= 0 and (keep is None or keep[v]) for v, d in enumerate(dist)]
    for comp in cyclic_components([[w for w, _ in out] for out in succ], reach):
        members = frozenset(comp)
        met = 0
        for v in comp:
            met |= disabled[v]
            for w, u in succ[v]:
                if w in members:
                    met |= unit_bit(u)
        if met == full:
            entries += [(dist[v], v, members) for v in comp]
    entries.sort(key=lambda t: (t[0], t[1]))
    for d, loop_entry, members in entries:
        limit = len(best) - d - 1 if best is not None else n * (full + 1)
        if limit < 1:
            break
        cycle = _fair_cycle(succ, loop_entry, members, disabled, unit_bit, full, limit)
        if cycle is not None:
            nodes, edges = stem(loop_entry)
            best = Witness(tuple(nodes + cycle[0][1:]), tuple(edges + cycle[1]), len(edges))
    return best


def _fair_cycle(succ: Sequence[Sequence[tuple[int, int]]], start: int,
                members: frozenset[int], disabled: Sequence[int],
                unit_bit: Callable[[int], int], full: int, limit: int
                ) -> tuple[list[int], list[int]] | None:
    """The shortest cycle from ``start`` back to it inside ``members`` that meets every unit,
    of at most ``limit`` edges: breadth-first over (node, units met)."""
    first = (start, disabled[start])
    prev: dict[tuple[int, int], tuple[tuple[int, int], int]] = {}
    seen = {first}
    todo = deque([(first, 0)])
    while todo:
        (v, mask), depth = todo.popleft()
        if depth >= limit:
            break
        for e, (w, u) in enumerate(succ[v]):
            if w not in members:
                continue
            nxt = (w, mask | unit_bit(u) | disabled[w])
            if w == start and nxt[1] == full:
                nodes, edges = [w, v], [e]
                cur = (v, mask)
                while cur != first:
                    cur, e2 = prev[cur]
                    nodes.append(cur[0])
                    edges.append(e2)
                return nodes[::-1], edges[::-1]
            if nxt in seen:
                continue
            prev[nxt] = ((v, mask), e)
            seen.add(nxt)
            todo.append((nxt, depth + 1))
    return None
