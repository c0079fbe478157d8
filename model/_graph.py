"""Strongly connected components of an explicit state graph (Tarjan 1972, iterative).

Why it exists: the explicit oracles of liveness, the event-loop model's
(:func:`model._z3_live.fair_cycle_states`) and the aio_notify protocols'
(:func:`model._notify.explore`), both look for weakly fair cycles component by component;
one implementation serves both.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

__all__ = ["cyclic_components"]


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
