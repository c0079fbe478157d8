"""The z3 liveness search (model/_z3_live.py): deadlocks and weakly fair lassos.

* a liveness mutant whose witness is a deadlock is refuted with a path exactly as long as
  the explicit breadth-first search's shortest path to a deadlock, which replays on the
  explicit model and ends where nothing can move and nothing is at rest;
* the correct protocol has cycles (the IOThread loops for ever), none of them weakly fair:
  the explicit oracle (Tarjan's components, each checked for weak fairness) finds no fair
  cycle and no deadlock, and the z3 search finds no witness within its depth;
* the explicit oracle tells a fair cycle from an unfair one (notified-bug1's busy loop is
  fair; the correct IOThread's idle loop is not), so it is no check that cannot fail;
* ``aioctx-verify prove`` reports LIVE, and a liveness mutant's deadlock is refuted there.

Every test is bounded by work (depths, configurations), not by time.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from aioctx_verify.cli import main
from aioctx_verify.model import Encoding, ModelConfig, bug_config, invariants, replay, successors
from aioctx_verify.model._z3_live import fair_cycle_states, lasso_search
from aioctx_verify.model._z3_prove import shortest_violation
from aioctx_verify.properties import PROPERTIES

LIVE = PROPERTIES["LIVE"].z3_formula
#: The smallest correct configuration: 185 states, its shortest cycle 26 steps.
TINY = ModelConfig(threads=2, bhs=1, max_depth=1, ops=1, client_ops=frozenset({"schedule"}))


def _deadlocked(state: object) -> bool:
    return not successors(state) and not invariants.is_rest(state, terminal=True)  # type: ignore[arg-type]


@pytest.mark.parametrize("flag", ["no-contention-callback", "nonsticky-kick"])
def test_a_deadlock_is_refuted_by_a_shortest_path(flag: str) -> None:
    cfg = bug_config(flag)
    witness, _ = lasso_search(Encoding(cfg), LIVE, 8)
    assert witness is not None and witness.kind == "deadlock"
    bfs = shortest_violation(cfg, lambda s: not _deadlocked(s))
    assert bfs is not None and len(witness.path) == len(bfs)
    states = replay(cfg, witness.path)
    assert list(states) == list(witness.states)
    assert _deadlocked(states[-1]) and not any(_deadlocked(s) for s in states[:-1])
    assert "deadlock" in witness.format(cfg)


def test_the_correct_protocol_has_cycles_but_no_fair_one() -> None:
    states, dead, fair = fair_cycle_states(TINY)
    assert (dead, fair) == (0, 0) and states == 185
    # It does have cycles: the explicit search finds every state able to repeat.
    from aioctx_verify.model._graph import cyclic_components

    init = replay(TINY, ())[0]
    index = {init: 0}
    order = [init]
    succ: list[list[int]] = []
    i = 0
    while i < len(order):
        out = []
        for _, s2 in successors(order[i]):
            if s2 not in index:
                index[s2] = len(order)
                order.append(s2)
            out.append(index[s2])
        succ.append(out)
        i += 1
    assert any(len(c) > 1 for c in cyclic_components(succ))
    witness, depth = lasso_search(Encoding(TINY), LIVE, 6)
    assert witness is None and depth == 6


def test_the_oracle_sees_the_fair_busy_loop_of_notified_bug1() -> None:
    states, dead, fair = fair_cycle_states(bug_config("notified-bug1"))
    assert fair > 0 and dead == 0 and states == 728


@pytest.mark.parametrize("flag", ["dispatching-flag-shared", "notify-clear-late"])
def test_the_oracle_sees_the_deadlocks_of_liveness_mutants(flag: str) -> None:
    _, dead, _ = fair_cycle_states(bug_config(flag))
    assert dead > 0


def test_prove_reports_live(tmp_path: Path) -> None:
    out = tmp_path / "prove.json"
    res = CliRunner().invoke(main, [
        "prove", "--config", "bug=no-contention-callback", "--live-depth", "6",
        "--json", str(out),
    ])
    assert res.exit_code == 0, res.output
    rows = {r["property"]: r for r in json.loads(out.read_text())["results"]}
    assert rows["LIVE"]["verdict"] == "refuted"
    assert rows["LIVE"]["counterexample_steps"] == 4
    assert rows["LIVE"]["witness"] == "deadlock"
    assert "(deadlock: no action is enabled" in res.output
    # Too shallow a search (and no explicit check) finds nothing: a liveness mutant not
    # refuted is not as expected.
    res = CliRunner().invoke(main, [
        "prove", "--config", "bug=no-contention-callback", "--live-depth", "3",
        "--live-states", "0", "--protocols", "none",
    ])
    assert res.exit_code == 1, res.output
    assert "LIVE     bounded" in res.output
    # The explicit check finds the deadlock beyond z3's depth, and it is the same one.
    res = CliRunner().invoke(main, [
        "prove", "--config", "bug=no-contention-callback", "--live-depth", "3",
        "--protocols", "none", "--json", str(out),
    ])
    assert res.exit_code == 0, res.output
    rows = {r["property"]: r for r in json.loads(out.read_text())["results"]}
    assert rows["LIVE"]["verdict"] == "refuted" and rows["LIVE"]["states"] > 0
    assert rows["LIVE"]["counterexample_steps"] == 4 and rows["LIVE"]["depth"] == 4


def test_the_prover_is_a_kill_matrix_column() -> None:
    from aioctx_verify.stress.mutation import CATALOGUE, NO_MUTANT, CellBudget, run_checker

    by_name = {m.name: m for m in CATALOGUE}
    budget = CellBudget(400, 600.0)  # bmc depth 20, lasso depth 4
    safety = run_checker("prove", by_name["lock-no-fifo"], 0, budget)
    assert safety.killed and safety.killed_by_property == "P1", safety
    assert safety.counterexample_steps == 6
    assert "aioctx-verify replay --mutant lock-no-fifo 'model:bug=lock-no-fifo'" in safety.detail
    live = run_checker("prove", by_name["no-contention-callback"], 0, budget)
    assert live.killed and live.killed_by_property == "LIVE", live
    assert live.counterexample_steps == 4
    control = run_checker("prove", NO_MUTANT, 0, budget)
    assert control.verdict == "survived", control
    from aioctx_verify.model import MODEL_BUGS

    outside = next(m for m in CATALOGUE if m.model_bug not in MODEL_BUGS)
    assert run_checker("prove", outside, 0, budget).verdict == "n/a"


# ------------------------------------------------------------------------------------------
# The exhaustive explicit check (explicit_liveness): proven, or a shortest witness at any
# depth, the same statement as the model search's (a rest state stays reachable)
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flag", [
    "no-contention-callback", "nonsticky-kick", "notified-bug1", "notify-clear-late",
    "lock-no-fifo", "schedule-takes-lock", "bh-nonatomic-test-and-set",
])
def test_the_explicit_check_agrees_with_the_model_search(flag: str) -> None:
    from aioctx_verify.model import BUG_CONFIGS, search
    from aioctx_verify.model._z3_live import explicit_liveness

    cfg = bug_config(flag)
    n, witness = explicit_liveness(cfg, 100_000)
    # The oracle: a forward search from every reachable state for a rest state.
    assert (witness is not None) == _live_violated(cfg)
    # The model search stops at safety violations (those states have no successors there),
    # so its verdict is compared for the liveness mutants only.
    found = search(cfg)
    assert n > 0
    if found.violation == "LIVE":
        assert witness is not None
        states = replay(cfg, witness.path)
        assert list(states) == list(witness.states)
        if witness.loop is None:
            assert _deadlocked(states[-1])
            bfs = shortest_violation(cfg, lambda s: not _deadlocked(s))
            assert bfs is not None and len(bfs) == len(witness.path)
        else:  # a busy loop: fair, and no rest state reachable from it
            assert states[witness.loop] == states[-1]
            assert not invariants.can_reach_rest(states[witness.loop])
    # The same configuration without the bug is proven.
    assert explicit_liveness(BUG_CONFIGS[flag], 100_000)[1] is None


def _live_violated(cfg: ModelConfig) -> bool:
    """Some reachable state cannot reach rest: a forward search from each reachable state
    (the model search may stop at a safety violation first), stopping at a rest state or
    at a state already known to reach one."""
    from collections import deque

    from aioctx_verify.model._z3_live import _state_graph

    states, succ, _ = _state_graph(cfg, 100_000)
    good: set[int] = set()
    for s in range(len(states)):
        seen, todo, found = {s}, deque([s]), False
        while todo and not found:
            v = todo.popleft()
            if v in good or (not succ[v] and invariants.is_rest(states[v], terminal=True)):
                found = True
            for w, _ in succ[v]:
                if w not in seen:
                    seen.add(w)
                    todo.append(w)
        if not found:
            return True
        good.add(s)
    return False


def test_a_fair_loop_that_can_still_rest_is_no_violation() -> None:
    """Two pollers of one context (a GSource and an IOThread) can kick each other for ever:
    a weakly fair run that never rests, though a rest state stays reachable from every
    state of it.  LIVE (a rest state stays reachable) holds; the plain fair-cycle search
    sees the loop, so the difference is real and the check can tell."""
    from aioctx_verify.model import BUG_CONFIGS
    from aioctx_verify.model._graph import shortest_witness
    from aioctx_verify.model._z3_live import _state_graph, explicit_liveness

    cfg = BUG_CONFIGS["dispatching-flag-shared"]  # the correct model at that size
    n, witness = explicit_liveness(cfg, 100_000)
    assert witness is None and n > 10_000
    assert fair_cycle_states(cfg, 100_000)[2] > 0
    states, succ, _ = _state_graph(cfg, 100_000)
    loop = shortest_witness(succ, cfg.threads, stuck=[False] * len(states))
    assert loop is not None and loop.loop is not None
    assert invariants.can_reach_rest(states[loop.nodes[loop.loop]])


def test_prove_proves_live_and_finds_deep_witnesses() -> None:
    """``prove`` with the explicit check: LIVE proven at a correct configuration, and a
    witness deeper than z3's search (notify-clear-late's deadlock, 17 steps) refuted."""
    from aioctx_verify.model import prove

    live = ("LIVE", LIVE, 4)
    r = prove(TINY, {}, liveness=live, live_states=10_000, strengthen=False).results[-1]
    assert (r.verdict, r.depth, r.states) == ("proven", 4, 185)
    assert prove(TINY, {}, liveness=live, strengthen=False).results[-1].verdict == "bounded"
    cfg = bug_config("notify-clear-late")
    r = prove(cfg, {}, liveness=live, live_states=100_000, strengthen=False).results[-1]
    bfs = shortest_violation(cfg, lambda s: not _deadlocked(s))
    assert r.verdict == "refuted" and bfs is not None and r.depth == len(bfs) > 4
    assert r.counterexample is not None and r.counterexample.kind == "deadlock"
