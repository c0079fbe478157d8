"""The shortest liveness witness over an explicit graph (model/_graph.shortest_witness),
held to a brute-force oracle that enumerates every path up to a length, on random graphs."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from aioctx_verify.model._graph import Witness, shortest_witness

Graph = list[list[tuple[int, int]]]


def _fair(nodes: Sequence[int], units: Sequence[int], succ: Graph, n_units: int) -> bool:
    for u in range(n_units):
        if u in units:
            continue
        if all(any(uu == u for _, uu in succ[v]) for v in nodes):
            return False
    return True


def _brute(succ: Graph, n_units: int, stuck: Sequence[bool], keep: Sequence[bool],
           max_len: int) -> tuple[int, str] | None:
    """(length, kind) of a shortest witness of at most ``max_len`` edges, by enumeration."""
    frontier: list[tuple[list[int], list[int]]] = [([0], [])]
    for length in range(max_len + 1):
        kinds = set()
        for nodes, units in frontier:
            if stuck[nodes[-1]]:
                kinds.add("stuck")
            for lo in range(len(nodes) - 1):
                if nodes[lo] == nodes[-1] and all(keep[v] for v in nodes[lo:]) and _fair(
                        nodes[lo:-1], units[lo:], succ, n_units):
                    kinds.add("lasso")
        if kinds:
            return length, "stuck" if "stuck" in kinds else "lasso"
        frontier = [([*nodes, w], [*units, u]) for nodes, units in frontier
                    for w, u in succ[nodes[-1]]]
    return None


def _check(w: Witness, succ: Graph, n_units: int, stuck: Sequence[bool],
           keep: Sequence[bool]) -> None:
    assert w.nodes[0] == 0
    for i, e in enumerate(w.edges):
        assert succ[w.nodes[i]][e][0] == w.nodes[i + 1]
    if w.loop is None:
        assert stuck[w.nodes[-1]]
    else:
        assert w.nodes[w.loop] == w.nodes[-1] and len(w) > w.loop
        loop_nodes = w.nodes[w.loop:-1]
        assert all(keep[v] for v in loop_nodes)
        units = [succ[w.nodes[i]][w.edges[i]][1] for i in range(w.loop, len(w))]
        assert _fair(loop_nodes, units, succ, n_units)


@st.composite
def graphs(draw: st.DrawFn) -> tuple[Graph, int, list[bool], list[bool]]:
    n = draw(st.integers(1, 6))
    n_units = draw(st.integers(0, 3))
    succ = [draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(-1, n_units - 1)),
                          max_size=3)) for _ in range(n)]
    stuck = [not succ[v] and draw(st.booleans()) for v in range(n)]
    keep = [draw(st.booleans()) or draw(st.booleans()) for _ in range(n)]
    return succ, n_units, stuck, keep


@settings(max_examples=400, deadline=None)
@given(graphs())
def test_shortest_witness_matches_enumeration(g: tuple[Graph, int, list[bool], list[bool]]
                                              ) -> None:
    succ, n_units, stuck, keep = g
    # a shortest witness, when one exists, has a stem and a loop each within the node
    # count times the unit masks, so enumeration to that bound is exhaustive
    bound = len(succ) * (1 << n_units) * 2 + 1
    bound = min(bound, 9)
    expect = _brute(succ, n_units, stuck, keep, bound)
    got = shortest_witness(succ, n_units, stuck=stuck, keep=keep)
    if got is None:
        assert expect is None
        return
    _check(got, succ, n_units, stuck, keep)
    if expect is not None:
        assert (len(got), "stuck" if got.loop is None else "lasso") == expect
    else:
        assert len(got) > bound


def test_a_fair_loop_needs_every_unit() -> None:
    # Unit 1 is enabled at nodes 0 and 1, so the loop 0 -u0-> 1 -u0-> 0 is unfair and so is
    # 1's self-loop (unit 0 enabled there); 0 -u1-> 2 -u0-> 0 meets both units.
    succ: Graph = [[(1, 0), (2, 1)], [(0, 0), (1, 1)], [(0, 0)]]
    w = shortest_witness(succ, 2, stuck=[False] * 3)
    assert w is not None and w.loop == 0 and w.nodes == (0, 2, 0)
    # without node 2 in the loop, the shortest fair loop takes the self-loop once
    w = shortest_witness(succ, 2, stuck=[False] * 3, keep=[True, True, False])
    assert w is not None and w.loop == 0 and w.nodes == (0, 1, 1, 0)
    # a unit disabled at a node of the loop is discharged there: unit 1 only at node 0
    only0: Graph = [[(1, 0), (2, 1)], [(0, 0)], [(2, -1)]]
    w = shortest_witness(only0, 2, stuck=[False] * 3)
    assert w is not None and w.loop == 0 and w.nodes == (0, 1, 0)
    assert shortest_witness(only0, 2, stuck=[False] * 3, keep=[False, True, True]) is not None


def test_stuck_wins_ties_and_shorter_lasso_wins() -> None:
    succ: Graph = [[(0, -1), (1, -1)], []]
    w = shortest_witness(succ, 0, stuck=[False, True])
    assert w is not None and w.loop is None and w.nodes == (0, 1)  # a tie: the stuck path
    w = shortest_witness([[(0, -1), (2, -1)], [], [(1, -1)]], 0, stuck=[False, True, False])
    assert w is not None and w.loop == 0 and w.nodes == (0, 0)  # the self-loop is shorter
    w = shortest_witness([[(1, 0)], [(2, 0)], []], 1, stuck=[False, False, True])
    assert w is not None and w.loop is None and w.nodes == (0, 1, 2)
    assert shortest_witness([[(1, 0)], [(1, 0)]], 1, stuck=[False, False], keep=[True, False]
                            ) is None
