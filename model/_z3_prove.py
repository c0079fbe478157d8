"""Proofs with z3 over the symbolic model: bounded model checking and k-induction.

Why it exists: the breadth-first search (:mod:`model._search`) visits every state of a small
configuration; this module proves the same safety properties by reasoning about the
transition relation of :mod:`model._symbolic`, and says for each property:

* ``refuted``: bounded model checking found a path from the initial state to a violation;
  it is the shortest one (every shorter depth was proven violation-free first), decoded
  into :class:`~model.Action` values and replayed on the explicit model (the states must
  agree, and the explicit invariant must fail at its end), so it prints with
  :func:`~model.format_path` like the search's counterexamples;
* ``proven``: the property holds in every reachable state, at every depth: it is part of an
  inductive invariant (1-induction), or k-induction closes relative to the proven
  strengthening invariants;
* ``bounded``: no violation within ``depth`` steps, and induction did not close.

The strengthening invariants are those of :mod:`model._z3_invariants`, with the properties
themselves as further candidates: the prover keeps the largest subset that holds in the
initial state and is preserved by every step (Houdini, Flanagan and Leino 2001: a
counterexample to induction falsifies some candidates in its successor state; drop them
and repeat).  What is kept is proven; what was dropped is reported with the reason.
Bounded model checking and k-induction assume the kept invariants at every state of their
unrollings (sound: they hold in every reachable state), which is what keeps them fast.

Properties are passed in as ``name -> formula(encoding, state)`` (the z3 forms live in
:mod:`properties`, which the model does not import).

What a verdict rests on: ``proven`` and ``bounded`` are facts about the symbolic relation,
which ``tests/test_symbolic.py`` holds to the explicit model state by state (same enabled
actions, same successors) on the reachable states of small configurations, every mutant
flag included; ``refuted`` never rests on the encoding alone, since its path is replayed on
the explicit model before it is reported.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import z3

from ._actions import Action, format_path, replay
from ._state import ModelConfig, ModelError, State, initial
from ._symbolic import WIDTH, Encoding, Selector, SymState
from ._z3_invariants import Invariant, candidate_invariants
from ._z3_live import LivenessWitness, explicit_liveness, lasso_search

__all__ = [
    "Formula",
    "ProofReport",
    "PropertyProof",
    "Strengthening",
    "bmc",
    "houdini",
    "k_induction",
    "prove",
    "shortest_violation",
]

Term = Any  # z3 terms (z3 ships no type stubs)
Formula = Callable[[Encoding, SymState], Term]
ProofVerdict = Literal["proven", "bounded", "refuted"]


@dataclass(frozen=True)
class Counterexample:
    """A shortest path to a violation: actions and the states along them."""

    path: tuple[Action, ...]
    states: tuple[State, ...]

    def format(self, config: ModelConfig) -> str:
        return format_path(self.path, config)


@dataclass(frozen=True)
class Strengthening:
    """The outcome of Houdini: what is proven inductive, and what was dropped and why."""

    kept: tuple[Invariant, ...]
    dropped: tuple[tuple[Invariant, str], ...]
    rounds: int
    seconds: float

    def names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.kept)

    def summary(self) -> str:
        lines = [f"strengthening invariants: {len(self.kept)} proven inductive "
                 f"({self.rounds} rounds, {self.seconds:.2f} s)"]
        lines += [f"  proven   {inv}" for inv in self.kept]
        lines += [f"  dropped  {inv.name}: {why}" for inv, why in self.dropped]
        return "\n".join(lines)


@dataclass(frozen=True)
class PropertyProof:
    """One property's verdict at one configuration.

    ``depth``: for ``refuted`` the counterexample's length, for ``proven`` the k of the
    induction that closed (1: the property is part of the inductive invariant), for
    ``bounded`` the depth bounded model checking reached without a violation; for LIVE, the
    depth z3's lasso search decided.  ``states``: LIVE's exhaustive explicit check, the
    reachable states it covered (None: not run, or over its state budget).
    """

    property: str
    verdict: ProofVerdict
    depth: int
    seconds: float
    counterexample: Counterexample | LivenessWitness | None = None
    states: int | None = None

    @builtins.property
    def counterexample_steps(self) -> int | None:
        return None if self.counterexample is None else len(self.counterexample.path)


@dataclass(frozen=True)
class ProofReport:
    """Everything :func:`prove` established for one configuration."""

    config: ModelConfig
    results: tuple[PropertyProof, ...]
    strengthening: Strengthening
    bmc_depth: int
    seconds: float
    notes: tuple[str, ...] = field(default=())

    def summary(self) -> str:
        lines = [f"{self.config.label()}: prove, bmc depth {self.bmc_depth}, "
                 f"{self.seconds:.2f} s"]
        for r in self.results:
            lines.append(f"  {r.property:<5} {r.verdict:<8} depth {r.depth:<3} "
                         f"{r.seconds:7.2f} s")
            if r.counterexample is not None:
                lines.append("    shortest counterexample "
                             f"({len(r.counterexample.path)} steps):")
                text = r.counterexample.format(self.config)
                lines += ["    " + line for line in text.splitlines()]
        return "\n".join(lines)


def _conj(enc: Encoding, s: SymState, invs: Sequence[Invariant]) -> Term:
    return z3.And(*(i.formula(enc, s) for i in invs)) if invs else z3.BoolVal(True)


def _solver() -> Any:
    # Everything is bit-vectors and Booleans: the finite-domain (SAT-based) solver.
    return z3.SolverFor("QF_FD")


def _one_shot() -> Any:
    """A non-incremental solver for one query: the next state's variables are eliminated
    (each is defined by an equation), then bit-blasted to SAT."""
    tactic = z3.Then("simplify", "propagate-values", "solve-eqs", "simplify", "bit-blast",
                     "sat")
    return tactic.solver()


# ------------------------------------------------------------------------------------------
# Houdini
# ------------------------------------------------------------------------------------------
def houdini(enc: Encoding, candidates: Sequence[Invariant]) -> Strengthening:
    """The largest subset of ``candidates`` that holds initially and is inductive."""
    t0 = time.perf_counter()
    dropped: list[tuple[Invariant, str]] = []
    base = enc.base
    at_init = z3.Model()
    for n, v in enc.values(initial(enc.config)).items():
        at_init.update_value(base[n], z3.BoolVal(v) if isinstance(v, bool)
                             else z3.BitVecVal(v, WIDTH))
    kept: list[Invariant] = []
    for inv in candidates:
        if z3.is_true(at_init.eval(inv.formula(enc, base), model_completion=True)):
            kept.append(inv)
        else:
            dropped.append((inv, "false in the initial state"))
    s2 = enc.state("h1")
    sel = enc.selector("h")
    step = enc.relation(base, s2, sel)
    before = {inv.name: inv.formula(enc, base) for inv in candidates}
    after = {inv.name: inv.formula(enc, s2) for inv in candidates}
    rounds = 0
    while kept:
        rounds += 1
        solver = _one_shot()
        solver.add(step, *(before[i.name] for i in kept))
        solver.add(z3.Or(*(z3.Not(after[i.name]) for i in kept)))
        res = solver.check()
        if res == z3.unknown:
            raise ModelError(f"houdini: z3 returned unknown ({solver.reason_unknown()})")
        if res == z3.unsat:
            break
        m = solver.model()
        tp = enc.fired(m, base, sel)
        falsified = [
            i for i in kept if not z3.is_true(m.eval(after[i.name], model_completion=True))
        ]
        for inv in falsified:
            dropped.append((inv, f"not preserved (a step of t{tp.thread} {tp.step} "
                                 "breaks it from a state satisfying the others)"))
        kept = [i for i in kept if i not in falsified]
    return Strengthening(tuple(kept), tuple(dropped), rounds, time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------
# Bounded model checking
# ------------------------------------------------------------------------------------------
def bmc(
    enc: Encoding,
    props: Mapping[str, Formula],
    depth: int,
    *,
    assume: Sequence[Invariant] = (),
    should_stop: Callable[[], bool] | None = None,
) -> tuple[dict[str, Counterexample], int]:
    """Is any property violated within ``depth`` steps from the initial state?

    Depth by depth, each open property is checked at the last state of the unrolling, so
    the counterexample found for a property is a shortest one.  Returns the
    counterexamples by property and the depth reached (every property without a
    counterexample holds in every state reachable in at most that many steps).
    """
    stop = should_stop or (lambda: False)
    states = [enc.state("b0")]
    sels: list[Selector] = []
    solver = _solver()
    solver.add(enc.initial(states[0]))
    solver.add(_conj(enc, states[0], assume))
    found: dict[str, Counterexample] = {}
    reached = 0
    for i in range(depth + 1):
        for name, p in props.items():
            if name in found:
                continue
            res = solver.check(z3.Not(p(enc, states[i])))
            if res == z3.sat:
                found[name] = _decode(enc, solver.model(), states, sels)
            elif res == z3.unknown:
                raise ModelError(f"bmc: z3 returned unknown ({solver.reason_unknown()})")
        reached = i
        if len(found) == len(props) or i == depth or stop():
            break
        nxt = enc.state(f"b{i + 1}")
        sel = enc.selector(f"b{i}")
        solver.add(enc.relation(states[i], nxt, sel))
        solver.add(_conj(enc, nxt, assume))
        states.append(nxt)
        sels.append(sel)
    return found, reached


def _decode(enc: Encoding, m: Any, states: Sequence[SymState], sels: Sequence[Any]
            ) -> Counterexample:
    """The model's path as explicit actions, checked by replaying it on the explicit model."""
    path: list[Action] = []
    decoded: list[State] = []
    for i, s in enumerate(states):
        vals = enc.read(m, s)
        decoded.append(enc.decode(vals))
        if i < len(sels):
            tp = enc.fired(m, s, sels[i])
            path.append(tp.action(int(vals[f"t{tp.thread}.arg"])))
    try:
        explicit = replay(enc.config, path)
    except ModelError as e:
        raise ModelError(f"the symbolic counterexample does not replay: {e}") from None
    if explicit != decoded:
        raise ModelError("the symbolic counterexample's states differ from the explicit "
                         "model's along the same actions (encoding drift)")
    # Replay once more to carry the trace events (replay's states hold none; actions do).
    from ._actions import successors

    steps: list[Action] = []
    for st, a in zip(explicit, path, strict=False):
        steps.append(next(b for b, _ in successors(st) if b == a))
    return Counterexample(tuple(steps), tuple(explicit))


# ------------------------------------------------------------------------------------------
# k-induction
# ------------------------------------------------------------------------------------------
def k_induction(
    enc: Encoding,
    prop: Formula,
    k: int,
    *,
    assume: Sequence[Invariant] = (),
) -> bool:
    """The induction step at ``k``: from any ``k`` consecutive states that satisfy ``prop``
    (and ``assume``), every next state satisfies ``prop``.  With the base case (no
    violation within ``k - 1`` steps, :func:`bmc`) this proves ``prop`` at every depth.
    """
    states = [enc.state("k0")]
    solver = _solver()
    solver.add(_conj(enc, states[0], assume))
    for i in range(k):
        nxt = enc.state(f"k{i + 1}")
        solver.add(prop(enc, states[i]))
        solver.add(enc.relation(states[i], nxt, enc.selector(f"k{i}")))
        solver.add(_conj(enc, nxt, assume))
        states.append(nxt)
    res = solver.check(z3.Not(prop(enc, states[k])))
    if res == z3.unknown:
        raise ModelError(f"k-induction: z3 returned unknown ({solver.reason_unknown()})")
    return bool(res == z3.unsat)


# ------------------------------------------------------------------------------------------
# The verdicts
# ------------------------------------------------------------------------------------------
def prove(
    config: ModelConfig,
    props: Mapping[str, Formula],
    *,
    depth: int = 20,
    max_k: int = 3,
    encoding: Encoding | None = None,
    strengthen: bool = True,
    should_stop: Callable[[], bool] | None = None,
    liveness: tuple[str, Formula, int] | None = None,
    strengthening: Strengthening | None = None,
    live_states: int = 0,
) -> ProofReport:
    """Verdicts of ``props`` at ``config``: strengthening (Houdini over the stated
    invariants and the properties), bounded model checking to ``depth`` for the properties
    not proven, k-induction up to ``max_k`` for those that hold to the bound.

    ``strengthen=False`` leaves the stated invariants out (the properties alone are the
    candidates): what plain k-induction can do.

    ``liveness``: ``(name, no_deadlock, depth)``: also search for a deadlock or a weakly
    fair lasso within ``depth`` steps (:func:`model._z3_live.lasso_search`, assuming the
    proven strengthening invariants); its verdict is ``refuted`` (the shortest witness) or
    ``bounded`` (the search cannot close, see that module).  ``live_states`` (> 0): also
    the exhaustive explicit check (:func:`model._z3_live.explicit_liveness`) when the
    reachable graph has at most that many states, which decides: ``proven`` when it finds
    no witness, else ``refuted`` with its shortest witness.  The two searches must agree
    (the same shortest length, or a witness deeper than z3 searched): a disagreement is an
    encoding drift and raises :class:`ModelError`.

    ``strengthening``: the outcome of an earlier call's Houdini over the same
    ``encoding`` (what it kept is inductive, so it is reused, not computed again); a
    property proven there counts as proven here.
    """
    t0 = time.perf_counter()
    enc = encoding or Encoding(config)
    if enc.config != config or enc.config.bugs != config.bugs:
        raise ModelError("the encoding was built for another configuration")
    if strengthening is None:
        cands = candidate_invariants(enc) if strengthen else []
        as_inv = [Invariant(name, f"property {name}", p) for name, p in props.items()]
        strength = houdini(enc, [*cands, *as_inv])
    else:
        strength = strengthening
    kept = set(strength.names())
    results: dict[str, PropertyProof] = {}
    t_h = time.perf_counter() - t0
    for name in props:
        if name in kept:
            results[name] = PropertyProof(name, "proven", 1, round(t_h, 3))
    open_props = {n: p for n, p in props.items() if n not in results}
    reached = 0
    if open_props:
        t1 = time.perf_counter()
        found, reached = bmc(enc, open_props, depth, assume=strength.kept,
                             should_stop=should_stop)
        spent = time.perf_counter() - t1
        for name, cex in found.items():
            results[name] = PropertyProof(name, "refuted", len(cex.path),
                                          round(t_h + spent, 3), cex)
        for name, p in open_props.items():
            if name in found:
                continue
            t2 = time.perf_counter()
            verdict: ProofVerdict = "bounded"
            k_closed = reached
            for k in range(2, min(max_k, reached + 1) + 1):
                if k_induction(enc, p, k, assume=strength.kept):
                    verdict, k_closed = "proven", k
                    break
            results[name] = PropertyProof(
                name, verdict, k_closed,
                round(t_h + spent + time.perf_counter() - t2, 3),
            )
    order = list(props)
    if liveness is not None:
        name, no_deadlock, live_depth = liveness
        t3 = time.perf_counter()
        witness, searched = lasso_search(enc, no_deadlock, live_depth, assume=strength.kept)
        states: int | None = None
        if live_states > 0:
            try:
                states, explicit = explicit_liveness(config, live_states)
            except ModelError:
                states = None  # over the budget: z3's bounded answer stands
            else:
                _agree(witness, explicit, searched)
                witness = witness if witness is not None else explicit
        spent = round(t_h + time.perf_counter() - t3, 3)
        if witness is not None:
            results[name] = PropertyProof(name, "refuted", len(witness.path), spent, witness,
                                          states)
        else:
            results[name] = PropertyProof(name, "bounded" if states is None else "proven",
                                          searched, spent, None, states)
        order.append(name)
    return ProofReport(
        config=config,
        results=tuple(results[n] for n in order),
        strengthening=strength,
        bmc_depth=reached,
        seconds=time.perf_counter() - t0,
    )


def _agree(z3_witness: LivenessWitness | None, explicit: LivenessWitness | None,
           searched: int) -> None:
    """z3's lasso search (to ``searched`` steps) and the explicit check find shortest
    witnesses of one statement, so they agree on the length, or the explicit one lies
    deeper than z3 searched."""
    if z3_witness is None:
        if explicit is not None and len(explicit.path) <= searched:
            raise ModelError(f"LIVE: the explicit check finds a {explicit.kind} of "
                             f"{len(explicit.path)} steps that z3 does not find within "
                             f"{searched} (encoding drift)")
        return
    if explicit is None or len(explicit.path) != len(z3_witness.path):
        found = "none" if explicit is None else f"{len(explicit.path)} steps"
        raise ModelError(f"LIVE: z3's shortest witness has {len(z3_witness.path)} steps, the "
                         f"explicit check's {found} (encoding drift)")


def shortest_violation(config: ModelConfig, check: Callable[[State], bool],
                       max_states: int = 1_000_000) -> tuple[Action, ...] | None:
    """The explicit model's shortest path to a state where ``check`` fails (breadth-first),
    for comparing with :func:`bmc`'s counterexample lengths."""
    from collections import deque

    from ._actions import successors

    init = initial(config)
    parent: dict[State, tuple[State, Action] | None] = {init: None}
    todo = deque([init])
    while todo:
        s = todo.popleft()
        if not check(s):
            path: list[Action] = []
            cur = s
            while (link := parent[cur]) is not None:
                cur, a = link
                path.append(a)
            return tuple(reversed(path))
        for a, s2 in successors(s):
            if s2 not in parent:
                if len(parent) >= max_states:
                    raise ModelError(f"more than {max_states} states")
                parent[s2] = (s, a)
                todo.append(s2)
    return None
