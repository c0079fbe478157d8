"""The symbolic model (z3) against the explicit one: same transitions, same properties.

:mod:`model._symbolic` is a second representation of :mod:`model._actions`; these tests
hold it to the first mechanically.  For each configuration below, the explicit model's
reachable states are enumerated breadth-first (up to :data:`MAX_STATES` per configuration:
a work bound, not a time bound) and for every one of them z3 evaluates the encoding at that
state:

* the templates whose guard is true are exactly the explicit model's enabled actions
  (no missing step, no extra step), and each one's successor, decoded, is the explicit
  successor;
* for a sample of states the *assembled* relation ``T(s, s')`` is checked with the solver
  as well: every explicit successor satisfies it, and no other state (or action) does;
* the z3 forms of P1, P2, P3 (``properties/_z3.py``) agree with ``model.invariants`` and
  LIVE's form (no deadlock) with "some action is enabled or the state is a proper end";
* encoding and decoding a state are inverse.

Every mutant flag of the model is exercised (each :data:`model.BUG_CONFIGS` entry with its
flag on, its shortest counterexample inside the checked states), and a deliberate drift of
one step, in either representation, fails the check.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pytest
import z3

from aioctx_verify.model import (
    BUG_CONFIGS,
    MODEL_BUGS,
    Encoding,
    ModelConfig,
    State,
    bug_config,
    check_bug,
    initial,
    invariants,
    successors,
)
from aioctx_verify.model import _actions as explicit_actions
from aioctx_verify.model import _symbolic as symbolic
from aioctx_verify.properties import PROPERTIES

C = ModelConfig

#: States checked per configuration at most (breadth-first order, so every state within
#: some depth): what keeps each test small.
MAX_STATES = 2_000
#: States per configuration whose successors are also checked with the solver.
SOLVER_SAMPLE = 6

#: Correct configurations: the smoke campaign's smallest, handlers and timers, idle BHs,
#: every callback kind, the GSource poller, and the IOThread's stop.
CORRECT: dict[str, ModelConfig] = {
    "io+client": C(threads=2, bhs=2, max_depth=2),
    "handlers+timers": C(
        threads=2, bhs=1, max_depth=1, ops=2, handlers=1, timers=2,
        client_ops=frozenset({"acquire", "release", "notifier_set", "timer_mod", "timer_del",
                              "schedule_idle"}),
    ),
    "callbacks": C(
        threads=2, bhs=3, max_depth=1, ops=2, bh_callbacks=("resched", "sched-other", "delete"),
        client_ops=frozenset({"acquire", "release", "schedule", "cancel", "poll"}),
    ),
    "gsource+io+client": C(
        roles=("gsource", "io", "client"), bhs=1, max_depth=1, ops=1,
        client_ops=frozenset({"schedule"}),
    ),
    "stop": C(threads=2, bhs=1, max_depth=1, ops=2,
              client_ops=frozenset({"schedule", "stop", "acquire", "release"})),
    "io+client+client": C(threads=3, bhs=1, max_depth=2, ops=1),
}

P_FORMS = {name: PROPERTIES[name].z3_formula for name in ("P1", "P2", "P3", "LIVE")}
P_MODEL = {"P1": invariants.p1, "P2": invariants.p2, "P3": invariants.p3}


def reachable(cfg: ModelConfig, limit: int = MAX_STATES) -> list[State]:
    """The explicit model's reachable states, breadth-first, at most ``limit``."""
    s0 = initial(cfg)
    seen = {s0: None}
    todo = deque([s0])
    while todo and len(seen) < limit:
        s = todo.popleft()
        for _, s2 in successors(s):
            if s2 not in seen:
                seen[s2] = None
                todo.append(s2)
                if len(seen) >= limit:
                    break
    return list(seen)


def _const(v: int | bool) -> Any:
    return z3.BoolVal(v) if isinstance(v, bool) else z3.BitVecVal(v, symbolic.WIDTH)


@dataclass
class Conformance:
    """What :func:`conformance` checked and every disagreement it found."""

    states: int = 0
    transitions: int = 0
    solver_checked: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.problems) < 20:
            self.problems.append(text)


def _key(a: explicit_actions.Action) -> tuple[int, str, int]:
    return (a.thread, a.step, a.arg)


def conformance(cfg: ModelConfig, states: list[State] | None = None,
                solver_sample: int = SOLVER_SAMPLE) -> Conformance:
    """Hold the encoding of ``cfg`` to the explicit model on ``states`` (default: the
    reachable ones, see :func:`reachable`)."""
    enc = Encoding(cfg)
    base = enc.base
    names = enc.names()
    out = Conformance()
    guards = z3.Sum([z3.If(tp.guard, z3.IntVal(1 << tp.index), z3.IntVal(0))
                     for tp in enc.templates])
    forms = {p: f(enc, base) for p, f in P_FORMS.items()}
    consts: dict[tuple[type, int], Any] = {}
    by_key = {(tp.client, tp.thread, tp.step, tp.arg): tp for tp in enc.templates}
    for st in states if states is not None else reachable(cfg):
        out.states += 1
        vals = enc.values(st)
        if enc.decode(vals) != st:
            out.problem(f"decode(values(s)) != s for {st}")
        m = z3.Model()
        for n in names:
            v = vals[n]
            c = consts.get((type(v), int(v)))
            if c is None:
                c = consts[(type(v), int(v))] = _const(v)
            m.update_value(base[n], c)
        expected = {_key(a): s2 for a, s2 in successors(st)}
        bits = m.eval(guards).as_long()
        got: dict[tuple[int, str, int], State] = {}
        for tp in enc.templates:
            if not bits >> tp.index & 1:
                continue
            nxt = dict(vals)
            for n, term in tp.updates.items():
                v = m.eval(term, model_completion=True)
                nxt[n] = z3.is_true(v) if isinstance(vals[n], bool) else v.as_signed_long()
            got[_key(tp.action(int(vals[f"t{tp.thread}.arg"])))] = enc.decode(nxt)
        out.transitions += len(got)
        for k in expected.keys() - got.keys():
            out.problem(f"missing step {k} from {st}")
        for k in got.keys() - expected.keys():
            out.problem(f"extra step {k} from {st}")
        for k in expected.keys() & got.keys():
            if expected[k] != got[k]:
                out.problem(f"step {k} from {st}: explicit {expected[k]}, symbolic {got[k]}")
        for p, form in forms.items():
            z = z3.is_true(m.eval(form, model_completion=True))
            if p == "LIVE":
                want = bool(expected) or invariants.is_rest(st, terminal=True)
            else:
                want = P_MODEL[p](st)
            if z != want:
                out.problem(f"{p}: z3 form says {z}, model invariant {want} at {st}")
    if solver_sample:
        sample = (states if states is not None else reachable(cfg))
        step = max(1, len(sample) // solver_sample)
        for st in sample[::step][:solver_sample]:
            out.solver_checked += 1
            _solver_check(enc, st, by_key, out)
    return out


def _solver_check(enc: Encoding, st: State, by_key: dict[tuple[bool, int, str, int], Any],
                  out: Conformance) -> None:
    """The assembled relation at ``st``, decided by the solver: each explicit successor
    satisfies it with its own action's template, and nothing else does."""
    s2 = enc.state("next")
    sel = enc.selector("sel")
    solver = z3.SolverFor("QF_FD")
    solver.add(enc.relation(enc.base, s2, sel), enc.is_state(enc.base, st))
    allowed = []
    for a, e in successors(st):
        # An operation a client starts at ``op`` and a step may share a name and argument
        # (``release``, ``acquire``): the thread's pc tells which it is.
        tp = by_key.get((st.threads[a.thread].pc == "op", *_key(a)))
        if tp is None:
            out.problem(f"no template for explicit action {a}")
            continue
        fires = enc.fire(tp, sel)
        allowed.append(z3.And(fires, enc.is_state(s2, e)))
        if solver.check(fires, enc.is_state(s2, e)) != z3.sat:
            out.problem(f"T does not allow explicit step {a} from {st}")
    if solver.check(z3.Not(z3.Or(*allowed))) != z3.unsat:
        m = solver.model()
        out.problem(f"T allows an extra step from {st}: {enc.fired(m, enc.base, sel)}")


# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CORRECT))
def test_the_relation_and_properties_agree_on_correct_models(name: str) -> None:
    r = conformance(CORRECT[name])
    assert r.problems == []
    assert r.states > 50 and r.transitions >= r.states - 1 and r.solver_checked > 0


@pytest.mark.parametrize("flag", sorted(BUG_CONFIGS))
def test_every_mutant_flag_is_expressible(flag: str) -> None:
    """Each bug flag's configuration, flag on: the same transitions, including the ones on
    its shortest counterexample (the violating state is among those checked)."""
    cfg = bug_config(flag)
    states = reachable(cfg)
    found = check_bug(flag)
    assert found.violation is not None and found.trace
    last = found.trace[-1]
    if last not in set(states):
        states.append(last)
    r = conformance(cfg, states)
    assert r.problems == []
    assert r.states >= len(found.trace)


def test_the_encoding_covers_every_step_label_and_bug_flag() -> None:
    # A step added to _actions.py must be added to the encoding (and its arguments).
    assert set(explicit_actions._STEPS) == set(symbolic.STEP_LABELS) == set(symbolic._STEPS)
    assert set(BUG_CONFIGS) == MODEL_BUGS


def _forgetful_clear(w: Any) -> bool:
    """``poll.clear`` that forgets to clear the event (the drift both tests inject)."""
    explicit_actions._after_accept(w)
    return True


def test_a_drift_in_the_explicit_model_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(explicit_actions._STEPS, "poll.clear", _forgetful_clear)
    r = conformance(CORRECT["io+client"], solver_sample=2)
    assert r.problems and any("'poll.clear'" in p for p in r.problems), r.problems[:3]


def test_a_drift_in_the_encoding_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    def clear_nothing(x: Any) -> None:
        symbolic._after_accept(x)

    monkeypatch.setitem(symbolic._STEPS, "poll.clear", clear_nothing)
    r = conformance(CORRECT["io+client"], solver_sample=2)
    assert r.problems and any("'poll.clear'" in p for p in r.problems), r.problems[:3]


def test_a_missing_client_operation_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    real = symbolic._client_templates

    def without_cancel(cfg: ModelConfig, t: int) -> Any:
        return [c for c in real(cfg, t) if c[0] != "cancel"]

    monkeypatch.setattr(symbolic, "_client_templates", without_cancel)
    r = conformance(CORRECT["io+client"], solver_sample=0)
    assert any(p.startswith("missing step (1, 'cancel'") for p in r.problems), r.problems[:3]


def test_states_round_trip_through_the_solver() -> None:
    """A model of ``is_state(s, st)`` decodes back to ``st`` (the solver side of values)."""
    cfg = CORRECT["callbacks"]
    enc = Encoding(cfg)
    s = enc.state("x")
    for st in reachable(cfg, 300)[::37]:
        solver = z3.SolverFor("QF_FD")
        solver.add(enc.is_state(s, st))
        assert solver.check() == z3.sat
        assert enc.decode(enc.read(solver.model(), s)) == st


def test_the_property_forms_are_the_slots_of_the_properties() -> None:
    for name in ("P1", "P2", "P3", "LIVE"):
        form = PROPERTIES[name].z3_formula
        assert form is not None and form.prop == name
