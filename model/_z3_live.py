"""Liveness with z3: a bounded search for deadlocks and weakly fair lassos.

Why it exists: P1-P3 are state properties, which bounded model checking and k-induction
decide (:mod:`model._z3_prove`).  Liveness (no lost wake-up, no starvation of an acquirer,
no busy loop) is a property of infinite paths.  Its statement over the model, as an LTL
formula under weak fairness: *every weakly fair run ends in a rest state* (every client
finished, every poller asleep with nothing due, :func:`model.invariants.is_rest`).  Weak
fairness is per thread: a thread that is enabled from some point on takes a step again
(an IOThread may loop for ever while a client is blocked behind it, but not while the
client could move).

A violation has one of two finite shapes, each a path from the initial state:

* a **deadlock**: the path ends in a state where no action is enabled and that is no
  proper end (the single-state witness, the ``LIVE`` z3 form of
  :mod:`aioctx_verify.properties._z3`);
* a **lasso**: the path's last state equals an earlier one (state ``l``), and the loop
  from ``l`` back to it is weakly fair: every thread either moves in the loop or is
  disabled at some state of it.  Repeating the loop for ever is a fair run that never
  rests.  (Weak fairness is monotone in the loop's states and steps, so a loop that
  satisfies it at the end of a path is a real fair run; Biere, Artho and Schuppan 2002,
  "Liveness checking as safety checking", for the loop-back encoding.)

The search unrolls the transition relation depth by depth and asks, at each depth ``k``,
for a deadlock at state ``k`` and for a fair loop closing at state ``k``; the first
witness found is a shortest one (in steps).  It is decoded into explicit actions, replayed
on the explicit model, and checked there (no action enabled and not at rest; or the loop's
states equal and every thread moving or disabled in the loop) before it is reported: like
the refutations of :mod:`model._z3_prove`, it never rests on the encoding alone.

Verdicts: ``refuted`` (a witness), ``bounded`` (no deadlock and no fair lasso within the
depth).  A loop-free search cannot close: the correct model's IOThreads loop for ever, so
its paths are unbounded and a completeness threshold would be its recurrence diameter.
``tests/test_symbolic.py`` holds the lasso search to an explicit oracle
(:func:`fair_cycle_states`: Tarjan's strongly connected components, each checked for weak
fairness) on small configurations, correct and mutant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import z3

from ._actions import Action, format_path, replay, successors
from ._graph import cyclic_components, shortest_witness
from ._search import _cannot_rest
from ._state import ModelConfig, ModelError, State, initial
from ._symbolic import Encoding, Selector, SymState
from ._z3_invariants import Invariant

__all__ = ["LivenessWitness", "explicit_liveness", "fair_cycle_states", "lasso_search"]

Term = Any  # z3 terms (z3 ships no type stubs)
Formula = Callable[[Encoding, SymState], Term]


@dataclass(frozen=True)
class LivenessWitness:
    """A shortest witness that liveness fails: a path to a deadlock, or a lasso.

    ``loop`` is the index of the state the path's last state equals (the loop is
    ``path[loop:]``, repeated for ever), or None for a deadlock.
    """

    path: tuple[Action, ...]
    states: tuple[State, ...]
    loop: int | None

    @property
    def kind(self) -> str:
        return "deadlock" if self.loop is None else "lasso"

    def format(self, config: ModelConfig) -> str:
        text = format_path(self.path, config)
        if self.loop is None:
            return text + "\n(deadlock: no action is enabled and this is no proper end)"
        steps = len(self.path) - self.loop
        return (text + f"\n(lasso: the last {steps} step(s) return to the state after step "
                f"{self.loop} and repeat for ever; every thread moves in the loop or is "
                "disabled at some state of it, so the run is weakly fair and never rests)")


def _conj(enc: Encoding, s: SymState, invs: Sequence[Invariant]) -> Term:
    return z3.And(*(i.formula(enc, s) for i in invs)) if invs else z3.BoolVal(True)


def _same(enc: Encoding, a: SymState, b: SymState) -> Term:
    return z3.And(*(a.vals[n] == b.vals[n] for n in enc.names()))


def lasso_search(
    enc: Encoding,
    no_deadlock: Formula,
    depth: int,
    *,
    assume: Sequence[Invariant] = (),
    max_blocked: int = 20,
) -> tuple[LivenessWitness | None, int]:
    """A shortest deadlock or weakly fair lasso within ``depth`` steps, or None.

    ``no_deadlock`` is the single-state form of liveness (some action enabled, or a proper
    end).  ``assume``: invariants proven to hold in every reachable state (sound to assume
    at every state of the unrolling).  Returns the witness (replayed and checked on the
    explicit model) and the depth searched.

    One unrolling of ``depth`` steps, in which a state where nothing is enabled may halt
    (repeat itself), so that every path of at most ``depth`` steps extends to exactly
    ``depth``; "a witness within ``d`` steps" is then one query over it, asked first for
    ``depth`` (the common answer, no witness, costs one query, not one per depth) and,
    when there is one, again by bisection for the smallest ``d``.

    LIVE is "a rest state stays reachable", so a fair lasso is a witness only when its loop
    cannot reach rest (checked on the explicit model); other fair lassos are excluded and
    the search resumes (``max_blocked`` times at most; beyond, the depth returned is the
    last one fully decided).
    """
    from .invariants import can_reach_rest

    enabled = [enc.enabled(enc.base, t) for t in range(enc.config.threads)]
    none_enabled = z3.Not(enc.enabled(enc.base))
    n_threads = enc.config.threads
    states = [enc.state("l0")]
    sels: list[Selector] = []
    halts: list[Term] = []
    #: fair[i][t]: in step i, thread t moved or was disabled in state i
    fair: list[list[Term]] = []
    dead = [z3.Not(no_deadlock(enc, states[0]))]
    # loops[(lo, k)]: state k equals state lo, and the real steps between are weakly fair.
    loops: dict[tuple[int, int], Term] = {}
    solver = z3.SolverFor("QF_FD")
    solver.add(enc.initial(states[0]))
    solver.add(_conj(enc, states[0], assume))

    def extend(to: int) -> None:
        for k in range(len(sels), to):
            nxt = enc.state(f"l{k + 1}")
            sel = enc.selector(f"l{k}")
            halt = z3.Bool(f"l{k}.halt")
            solver.add(z3.If(
                halt,
                z3.And(enc.over(states[k], none_enabled), _same(enc, states[k], nxt)),
                enc.relation(states[k], nxt, sel),
            ))
            solver.add(_conj(enc, nxt, assume))
            fair.append([
                z3.Or(sel.who[t], z3.Not(enc.over(states[k], enabled[t])))
                for t in range(n_threads)
            ])
            states.append(nxt)
            sels.append(sel)
            halts.append(halt)
            dead.append(z3.Not(no_deadlock(enc, nxt)))
            for lo in range(k + 1):
                just = [z3.Or(*(fair[i][t] for i in range(lo, k + 1)))
                        for t in range(n_threads)]
                real = [z3.Not(halts[i]) for i in range(lo, k + 1)]
                loops[(lo, k + 1)] = z3.And(_same(enc, states[lo], nxt), *real, *just)

    #: loop entries excluded: states of a fair loop that can still reach rest
    banned: set[State] = set()

    def check(d: int) -> bool:
        """Is there a witness within ``d`` steps?"""
        extend(d)
        within = z3.Or(*dead[: d + 1], *(
            z3.And(t, *(z3.Not(enc.is_state(states[lo], b)) for b in banned))
            for (lo, k), t in loops.items() if k <= d
        ))
        res = solver.check(within)
        if res == z3.unknown:
            raise ModelError(f"lasso search: z3 returned unknown ({solver.reason_unknown()})")
        return bool(res == z3.sat)

    # Doubling, then bisection: a short witness costs short queries; no witness costs
    # about one query at the full depth.  A lasso whose loop can still reach a rest state is
    # a fair run that never rests but no LIVE violation (two pollers that keep kicking each
    # other): its loop states are excluded as loop entries and the search goes on at the
    # same depth, at most ``max_blocked`` times (then only the depths below are decided).
    lo_d, hi_d = 0, min(depth, 4)
    blocked = 0
    while True:
        while not check(hi_d):
            if hi_d == depth:
                return None, depth
            lo_d, hi_d = hi_d + 1, min(depth, 2 * hi_d)
        while lo_d < hi_d:  # a witness within hi_d steps, none within lo_d - 1
            mid = (lo_d + hi_d) // 2
            if check(mid):
                hi_d = mid
            else:
                lo_d = mid + 1
        if not check(hi_d):  # leave the model of the shortest depth in the solver
            raise ModelError("lasso search: the witness vanished on a repeated query")
        witness = _witness(enc, solver.model(), states, sels, dead, loops, hi_d, banned)
        if witness.loop is None or not can_reach_rest(witness.states[witness.loop]):
            return witness, hi_d
        blocked += 1
        if blocked > max_blocked:
            return None, hi_d - 1
        banned.update(witness.states[witness.loop:])
        lo_d = hi_d


def _witness(enc: Encoding, m: Any, states: Sequence[SymState], sels: Sequence[Selector],
             dead: Sequence[Term], loops: dict[tuple[int, int], Term], d: int,
             banned: set[State]) -> LivenessWitness:
    """The witness ``m`` satisfies, at depth ``d``: a deadlock, else a loop closing at
    ``d`` whose entry is not ``banned``."""
    def true(t: Term) -> bool:
        return bool(z3.is_true(m.eval(t, model_completion=True)))

    for i in range(d + 1):
        if true(dead[i]):
            return _decode(enc, m, states[: i + 1], sels[:i], None)
    lo = next(lo for (lo, k), t in loops.items() if k == d and true(t)
              and enc.decode(enc.read(m, states[lo])) not in banned)
    return _decode(enc, m, states[: d + 1], sels[:d], lo)


def _decode(enc: Encoding, m: Any, states: Sequence[SymState], sels: Sequence[Selector],
            loop: int | None) -> LivenessWitness:
    """The model's witness as explicit actions, replayed and checked on the explicit model."""
    from .invariants import is_rest

    k = len(sels)
    path: list[Action] = []
    for i in range(k):
        vals = enc.read(m, states[i])
        tp = enc.fired(m, states[i], sels[i])
        path.append(tp.action(int(vals[f"t{tp.thread}.arg"])))
    try:
        explicit = replay(enc.config, path)
    except ModelError as e:
        raise ModelError(f"the symbolic liveness witness does not replay: {e}") from None
    decoded = [enc.decode(enc.read(m, s)) for s in states[: k + 1]]
    if explicit != decoded:
        raise ModelError("the symbolic liveness witness's states differ from the explicit "
                         "model's along the same actions (encoding drift)")
    last = explicit[-1]
    if loop is None:
        if successors(last) or is_rest(last, terminal=True):
            raise ModelError("the symbolic deadlock is no deadlock of the explicit model")
    elif explicit[loop] != last or not _fair(explicit[loop:], path[loop:], enc.config):
        raise ModelError("the symbolic lasso is no weakly fair loop of the explicit model")
    steps: list[Action] = []
    for st, a in zip(explicit, path, strict=False):
        steps.append(next(b for b, _ in successors(st) if b == a))
    return LivenessWitness(tuple(steps), tuple(explicit), loop)


def _fair(loop_states: Sequence[State], loop_path: Sequence[Action], config: ModelConfig
          ) -> bool:
    """Every thread moves in the loop or is disabled at one of its states."""
    moved = {a.thread for a in loop_path}
    for t in range(config.threads):
        if t in moved:
            continue
        if all(any(a.thread == t for a, _ in successors(s)) for s in loop_states[:-1]):
            return False
    return True


def _state_graph(config: ModelConfig, max_states: int
                 ) -> tuple[list[State], list[list[tuple[int, int]]], list[list[Action]]]:
    """The explicit model's reachable graph, breadth-first from the initial state:
    states, ``(target, thread)`` edges per state, and each edge's action.

    Raises:
        ModelError: more than ``max_states`` states.
    """
    init = initial(config)
    index = {init: 0}
    states = [init]
    succ: list[list[tuple[int, int]]] = []
    acts: list[list[Action]] = []
    i = 0
    while i < len(states):
        out = []
        labels = []
        for a, s2 in successors(states[i]):
            j = index.get(s2)
            if j is None:
                if len(states) >= max_states:
                    raise ModelError(f"the explicit state graph has more than {max_states} "
                                     "states")
                j = len(states)
                index[s2] = j
                states.append(s2)
            out.append((j, a.thread))
            labels.append(a)
        succ.append(out)
        acts.append(labels)
        i += 1
    return states, succ, acts


def fair_cycle_states(config: ModelConfig, max_states: int = 500_000
                      ) -> tuple[int, int, int]:
    """The explicit oracle: (reachable states, deadlock states, states in weakly fair
    strongly connected components), by Tarjan's algorithm over the whole state graph.

    A strongly connected component holds a weakly fair cycle iff the cycle through all its
    states and edges is fair (fairness is monotone in both), so each component is checked
    once: every thread moves on one of its edges or is disabled at one of its states.

    Raises:
        ModelError: more than ``max_states`` states.
    """
    from .invariants import is_rest

    states, succ, _ = _state_graph(config, max_states)
    dead = sum(1 for j, s in enumerate(states) if not succ[j] and not is_rest(s, terminal=True))
    fair = 0
    for comp in cyclic_components([[j for j, _ in out] for out in succ]):
        members = set(comp)
        moved = {t for v in comp for (w, t) in succ[v] if w in members}
        if all(
            t in moved or any(all(tt != t for _, tt in succ[v]) for v in comp)
            for t in range(config.threads)
        ):
            fair += len(comp)
    return len(states), dead, fair


def explicit_liveness(config: ModelConfig, max_states: int
                      ) -> tuple[int, LivenessWitness | None]:
    """The exhaustive explicit check of liveness: (reachable states, a shortest witness, or
    None).  None is a proof at ``config`` that LIVE holds in every reachable state.

    A state is *hopeless* when no rest state is reachable from it (backward reachability
    from the rest states).  LIVE fails iff a hopeless state is reachable, and then a
    shortest witness is a path to a deadlock or a weakly fair lasso whose loop stays in
    hopeless states (the hopeless states are closed under successors, so a bottom component
    of them is a deadlock or carries a fair cycle): :func:`model._graph.shortest_witness`
    over every reachable state.

    Raises:
        ModelError: more than ``max_states`` states (the check is then left undone).
    """
    from .invariants import is_rest

    states, succ, acts = _state_graph(config, max_states)
    n = len(states)
    rest = [not succ[j] and is_rest(s, terminal=True) for j, s in enumerate(states)]
    hopeless = [False] * n
    for j in _cannot_rest([[t for t, _ in out] for out in succ],
                          [j for j in range(n) if rest[j]], n):
        hopeless[j] = True
    stuck = [not succ[j] and not rest[j] for j in range(n)]
    found = shortest_witness(succ, config.threads, stuck=stuck, keep=hopeless)
    if found is None:
        return n, None
    path = tuple(acts[v][e] for v, e in zip(found.nodes, found.edges, strict=False))
    return n, LivenessWitness(path, tuple(states[v] for v in found.nodes), found.loop)
