"""The symbolic semantics of :mod:`model._notify`'s language as z3 bit-vector terms:
bounded model checking for the shortest lasso or stuck state (:func:`_bmc`), and the final
outcomes of loop-free programs (:func:`final_outcomes`, for the litmus tests).

Why it exists: it is the second, independent engine; its transition relation is built from
the same move list as :mod:`model._notify_explicit`'s semantics, and the two must agree.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import z3

from ._notify_explicit import _unit_of, _units
from ._notify_lang import (
    BUFFER_CAPACITY,
    Assign,
    Atomic,
    Await,
    Branch,
    Expr,
    Fence,
    Goto,
    Load,
    Move,
    NotifyError,
    Program,
    Store,
    _check_memory,
    _ev,
    _moves,
    _noop,
)


# ------------------------------------------------------------------------------------------
# The symbolic semantics (z3)
# ------------------------------------------------------------------------------------------
class _Sym:
    """State variables per step and the transition relation, as z3 bit-vector terms."""

    def __init__(self, p: Program, memory: str, capacity: int = BUFFER_CAPACITY) -> None:
        _check_memory(memory)
        self.p, self.memory, self.cap = p, memory, capacity
        self.w = p.width
        self.mask = (1 << p.width) - 1
        self.vi = {v: i for i, v in enumerate(p.shared)}
        self.ri = [{r: i for i, r in enumerate(t.regs)} for t in p.threads]
        self.moves = _moves(p, memory)
        self.selw = max(1, len(self.moves).bit_length())
        self.pcw = max(1, max(len(t.code) for t in p.threads).bit_length() + 1)
        self.vw = max(1, len(p.shared).bit_length())
        self.cw = max(2, capacity.bit_length() + 1)
        self.epochs = memory == "pso" and p.has_wmb
        self.ew = max(2, (capacity * len(p.shared) + 1).bit_length())

    # A state is a dict name -> z3 term
    def fresh(self, k: int) -> dict[str, Any]:
        p = self.p
        s: dict[str, Any] = {}
        for t, th in enumerate(p.threads):
            s[f"pc{t}"] = z3.BitVec(f"pc{t}@{k}", self.pcw)
            for r in th.regs:
                s[f"r{t}.{r}"] = z3.BitVec(f"r{t}.{r}@{k}", self.w)
            if self.memory == "tso":
                s[f"n{t}"] = z3.BitVec(f"n{t}@{k}", self.cw)
                for i in range(self.cap):
                    s[f"bv{t}.{i}"] = z3.BitVec(f"bv{t}.{i}@{k}", self.vw)
                    s[f"bx{t}.{i}"] = z3.BitVec(f"bx{t}.{i}@{k}", self.w)
            elif self.memory == "pso":
                if self.epochs:
                    s[f"ep{t}"] = z3.BitVec(f"ep{t}@{k}", self.ew)
                for v in p.shared:
                    s[f"n{t}.{v}"] = z3.BitVec(f"n{t}.{v}@{k}", self.cw)
                    for i in range(self.cap):
                        s[f"bx{t}.{v}.{i}"] = z3.BitVec(f"bx{t}.{v}.{i}@{k}", self.w)
                        if self.epochs:
                            s[f"be{t}.{v}.{i}"] = z3.BitVec(f"be{t}.{v}.{i}@{k}", self.ew)
        for v in p.shared:
            s[f"m.{v}"] = z3.BitVec(f"m.{v}@{k}", self.w)
        return s

    def init(self, s: Mapping[str, Any]) -> Any:
        return z3.And([x == 0 for x in s.values()])

    def bv(self, n: int, w: int) -> Any:
        return z3.BitVecVal(n, w)

    def view(self, s: Mapping[str, Any], t: int, var: str) -> Any:
        res = s[f"m.{var}"]
        if self.memory == "tso":
            for i in range(self.cap):
                hit = z3.And(z3.UGT(s[f"n{t}"], i), s[f"bv{t}.{i}"] == self.vi[var])
                res = z3.If(hit, s[f"bx{t}.{i}"], res)
        elif self.memory == "pso":
            for i in range(self.cap):
                res = z3.If(z3.UGT(s[f"n{t}.{var}"], i), s[f"bx{t}.{var}.{i}"], res)
        return res

    def ev(self, e: Expr, s: Mapping[str, Any], t: int | None) -> Any:
        def leaf(x: Expr) -> Any:
            if x[0] == "c":
                return self.bv(int(x[1]) & self.mask, self.w)
            if x[0] == "r":
                assert t is not None
                return s[f"r{t}.{x[1]}"]
            if x[0] == "t":
                return s[f"r{self.p.thread_index(x[1])}.{x[2]}"]
            return s[f"m.{x[1]}"] if t is None else self.view(s, t, x[1])

        return _ev(e, leaf, self.mask, True)

    def truth(self, e: Expr, s: Mapping[str, Any], t: int | None) -> Any:
        r = self.ev(e, s, t)
        return r if z3.is_bool(r) else r != 0

    def empty(self, s: Mapping[str, Any], t: int) -> Any:
        if self.memory == "tso":
            return s[f"n{t}"] == 0
        if self.memory == "pso":
            return z3.And([s[f"n{t}.{v}"] == 0 for v in self.p.shared])
        return z3.BoolVal(True)

    def effect(self, s: Mapping[str, Any], m: Move) -> tuple[Any, dict[str, Any]]:
        """(guard, updates) of move ``m`` in state ``s``."""
        t = m.tid
        weak = self.memory != "sc"
        if m.kind == "flush":
            return self._flush(s, m)
        ins = self.p.threads[t].code[m.pc]
        g = [s[f"pc{t}"] == m.pc]
        up: dict[str, Any] = {f"pc{t}": self.bv(m.target, self.pcw)}
        if isinstance(ins, Goto):
            pass
        elif isinstance(ins, Branch):
            c = self.truth(ins.cond, s, t)
            g.append(c if m.arm == ins.target else z3.Not(c))
        elif isinstance(ins, Assign):
            up[f"r{t}.{ins.reg}"] = self.ev(ins.value, s, t)
        elif isinstance(ins, Load):
            up[f"r{t}.{ins.reg}"] = self.view(s, t, ins.var)
        elif isinstance(ins, Await):
            if ins.syscall and weak:
                g.append(self.empty(s, t))
            g.append(self.truth(ins.cond, s, t))
        elif isinstance(ins, Fence):
            if weak and ins.kind == "mb":
                g.append(self.empty(s, t))
            elif self.epochs and ins.kind == "wmb":
                ep = s[f"ep{t}"]
                cur = [z3.And(z3.UGT(s[f"n{t}.{v}"], i), s[f"be{t}.{v}.{i}"] == ep)
                       for v in self.p.shared for i in range(self.cap)]
                up[f"ep{t}"] = z3.If(z3.Or(cur), ep + 1, ep)
        elif isinstance(ins, Atomic):
            if weak:
                g.append(self.empty(s, t))
            if ins.reg is not None:
                up[f"r{t}.{ins.reg}"] = s[f"m.{ins.var}"]
            up[f"m.{ins.var}"] = self.ev(ins.value, s, t)
        else:
            assert isinstance(ins, Store)
            val = self.ev(ins.value, s, t)
            if ins.reg is not None:
                up[f"r{t}.{ins.reg}"] = self.view(s, t, ins.var)
            if not weak:
                up[f"m.{ins.var}"] = val
            elif self.memory == "tso":
                n = s[f"n{t}"]
                g.append(z3.ULT(n, self.cap))
                for i in range(self.cap):
                    up[f"bv{t}.{i}"] = z3.If(n == i, self.bv(self.vi[ins.var], self.vw),
                                             s[f"bv{t}.{i}"])
                    up[f"bx{t}.{i}"] = z3.If(n == i, val, s[f"bx{t}.{i}"])
                up[f"n{t}"] = n + 1
            else:
                v = ins.var
                n = s[f"n{t}.{v}"]
                g.append(z3.ULT(n, self.cap))
                for i in range(self.cap):
                    up[f"bx{t}.{v}.{i}"] = z3.If(n == i, val, s[f"bx{t}.{v}.{i}"])
                    if self.epochs:
                        up[f"be{t}.{v}.{i}"] = z3.If(n == i, s[f"ep{t}"], s[f"be{t}.{v}.{i}"])
                up[f"n{t}.{v}"] = n + 1
        return z3.And(g), up

    def _flush(self, s: Mapping[str, Any], m: Move) -> tuple[Any, dict[str, Any]]:
        t = m.tid
        up: dict[str, Any] = {}
        cap = self.cap
        if self.memory == "tso":
            n = s[f"n{t}"]
            for v in self.p.shared:
                up[f"m.{v}"] = z3.If(s[f"bv{t}.0"] == self.vi[v], s[f"bx{t}.0"], s[f"m.{v}"])
            for i in range(cap):
                nxt = i + 1 < cap
                up[f"bv{t}.{i}"] = s[f"bv{t}.{i + 1}"] if nxt else self.bv(0, self.vw)
                up[f"bx{t}.{i}"] = s[f"bx{t}.{i + 1}"] if nxt else self.bv(0, self.w)
            up[f"n{t}"] = n - 1
            return z3.UGT(n, 0), up
        v = m.var
        n = s[f"n{t}.{v}"]
        g = [z3.UGT(n, 0)]
        up[f"m.{v}"] = s[f"bx{t}.{v}.0"]
        for i in range(cap):
            nxt = i + 1 < cap
            up[f"bx{t}.{v}.{i}"] = s[f"bx{t}.{v}.{i + 1}"] if nxt else self.bv(0, self.w)
        up[f"n{t}.{v}"] = n - 1
        if self.epochs:
            head = s[f"be{t}.{v}.0"]
            for w in self.p.shared:
                if w != v:
                    g.append(z3.Or(s[f"n{t}.{w}"] == 0, z3.ULE(head, s[f"be{t}.{w}.0"])))
            # epochs after the pop, then normalised (empty: epoch 0; no entry left at
            # epoch 0: everything one lower), as the explicit semantics does
            ne: dict[str, Any] = {}
            cnt: dict[str, Any] = {}
            for w in self.p.shared:
                cnt[w] = n - 1 if w == v else s[f"n{t}.{w}"]
                for i in range(cap):
                    if w == v:
                        ne[f"{w}.{i}"] = s[f"be{t}.{w}.{i + 1}"] if i + 1 < cap else \
                            self.bv(0, self.ew)
                    else:
                        ne[f"{w}.{i}"] = s[f"be{t}.{w}.{i}"]
            valid = {f"{w}.{i}": z3.UGT(cnt[w], i) for w in self.p.shared for i in range(cap)}
            any_left = z3.Or(list(valid.values()))
            none_zero = z3.And([z3.Implies(valid[key], ne[key] != 0) for key in ne])
            shift = z3.And(any_left, none_zero)
            for key, e in ne.items():
                up[f"be{t}.{key}"] = z3.If(shift, e - 1, e)
            ep = s[f"ep{t}"]
            up[f"ep{t}"] = z3.If(any_left, z3.If(shift, ep - 1, ep), self.bv(0, self.ew))
        return z3.And(g), up

    def effects(self, s: Mapping[str, Any]) -> list[tuple[Any, dict[str, Any]]]:
        """(guard, updates) of every move in state ``s``."""
        return [self.effect(s, m) for m in self.moves]

    def relation(self, s: Mapping[str, Any], eff: Sequence[tuple[Any, dict[str, Any]]],
                 s2: Mapping[str, Any], sel: Any) -> Any:
        """The constraint that ``s2`` follows ``s`` by the move ``sel`` (``eff``: the
        effects in ``s``).  Each state variable is one if-then-else chain over the moves that
        change it, so the relation stays linear in the number of moves."""
        chains: dict[str, Any] = dict(s)
        cons: list[Any] = [z3.ULT(sel, len(self.moves))]
        for k, (g, up) in enumerate(eff):
            cons.append(z3.Implies(sel == k, g))
            for name, val in up.items():
                chains[name] = z3.If(sel == k, val, chains[name])
        cons.extend(s2[name] == chains[name] for name in s)
        return z3.And(cons)


# ------------------------------------------------------------------------------------------
# Bounded model checking
# ------------------------------------------------------------------------------------------
class _Collect:
    """The unrolling's constraints, kept to hand to a fresh bit-blasting solver per depth:
    z3's non-incremental QF_BV tactic (bit-blast, then SAT) is many times faster here than
    its incremental core with assumptions."""

    def __init__(self) -> None:
        self.facts: list[Any] = []

    def add(self, *fs: Any) -> None:
        self.facts.extend(fs)


@dataclass(frozen=True)
class _Cex:
    moves: tuple[int, ...]
    loop_start: int | None  # index into states where the cycle starts; None: stuck state
    goal: int


def _bmc(p: Program, memory: str, depth: int, capacity: int, deadline: float | None
         ) -> tuple[_Cex | None, int]:
    """Shortest lasso or stuck state of ``p`` within ``depth`` moves; returns (the
    counterexample or None, the depth checked to).

    One incremental unrolling; the violation's shape is chosen by free Booleans: ``en_i``
    (it ends at state i), ``st_l`` (its cycle starts at state l), ``stuck`` (a stuck state
    instead of a cycle) and one goal.  ``L`` is a copy of the cycle's start state, so closing
    the cycle costs one equality per position, and ``before_i``/``after_i``/``fair_u_i``
    are chains (a start at or before i, an end after i, unit u met at i or later), so each
    depth adds constraints of constant size.  Depth k is asked with the assumptions
    ``en_k`` and nothing after k: the first satisfiable k is the shortest violation.
    """
    sym = _Sym(p, memory, capacity)
    solver = _Collect()
    units = _units(p, memory)
    unit_moves = {u: [k for k, m in enumerate(sym.moves) if _unit_of(m) == u] for u in units}
    ngoals = len(p.goals)
    if ngoals == 0:
        return None, depth
    gsel = [z3.Bool(f"goal{g}") for g in range(ngoals)]
    solver.add(z3.Or(gsel))
    for a in range(ngoals):
        for b in range(a + 1, ngoals):
            solver.add(z3.Not(z3.And(gsel[a], gsel[b])))
    stuck = z3.Bool("stuck")
    loop = sym.fresh(-1)
    states = [sym.fresh(0)]
    solver.add(sym.init(states[0]))
    sels: list[Any] = []
    en: list[Any] = []
    st: list[Any] = []
    before: list[Any] = []
    after: list[Any] = []
    fair: list[dict[tuple[str, int], Any]] = []
    effs: list[list[tuple[Any, dict[str, Any]]]] = []
    goal_at: list[list[Any]] = []

    def position(k: int) -> None:
        s = states[k]
        effs.append(sym.effects(s))
        goal_at.append([sym.truth(g, s, None) for g in p.goals])
        en.append(z3.Bool(f"en{k}"))
        st.append(z3.Bool(f"st{k}"))
        after.append(z3.Bool(f"after{k}"))
        fair.append({u: z3.Bool(f"fair{u[0]}{u[1]}@{k}") for u in units})
        b = z3.Bool(f"before{k}")
        solver.add(b == (z3.Or(st[k], before[k - 1]) if k else st[k]))
        before.append(b)
        if k:
            solver.add(after[k - 1] == z3.Or(en[k], after[k]))
        eq = z3.And([loop[n] == s[n] for n in s])
        solver.add(z3.Implies(st[k], z3.And(z3.Not(stuck), after[k], eq)))
        any_move = z3.Or([g for g, _ in effs[k]])
        pick = z3.Or([z3.And(gsel[g], goal_at[k][g]) for g in range(ngoals)])
        solver.add(z3.Implies(en[k], z3.If(stuck, z3.And(z3.Not(any_move), pick),
                                           z3.And(eq, before[k - 1] if k else False))))
        inloop = z3.And(b, after[k])
        for g in range(ngoals):
            solver.add(z3.Implies(z3.And(inloop, gsel[g]), goal_at[k][g]))

    position(0)
    for u in units:
        solver.add(z3.Implies(z3.Not(stuck), fair[0][u]))
    for k in range(depth + 1):
        if deadline is not None and time.perf_counter() > deadline:
            return None, k - 1
        assume = [en[k], z3.Not(after[k]), *(z3.Not(fair[k][u]) for u in units)]
        one = z3.SolverFor("QF_BV")
        one.add(*solver.facts, *assume)
        if one.check() == z3.sat:
            model = one.model()
            mv = tuple(model.eval(sels[j], model_completion=True).as_long() for j in range(k))
            ls = None
            if not z3.is_true(model.eval(stuck, model_completion=True)):
                ls = next(j for j in range(k) if z3.is_true(model.eval(st[j],
                                                                     model_completion=True)))
            g = next(i for i in range(ngoals) if z3.is_true(model.eval(gsel[i],
                                                                       model_completion=True)))
            return _Cex(mv, ls, g), k
        if k == depth:
            break
        sel = z3.BitVec(f"sel@{k}", sym.selw)
        nxt = sym.fresh(k + 1)
        solver.add(sym.relation(states[k], effs[k], nxt, sel))
        inloop = z3.And(before[k], after[k])
        sels.append(sel)
        states.append(nxt)
        position(k + 1)
        for u in units:
            moved = z3.Or([sel == mk for mk in unit_moves[u]])
            dis = z3.Not(z3.Or([effs[k][mk][0] for mk in unit_moves[u]]))
            solver.add(fair[k][u] == z3.Or(z3.And(inloop, z3.Or(moved, dis)), fair[k + 1][u]))
    return None, depth



# ------------------------------------------------------------------------------------------
# Final outcomes of loop-free programs
# ------------------------------------------------------------------------------------------
def final_outcomes(p: Program, memory: str, observe: Sequence[Expr],
                   capacity: int = BUFFER_CAPACITY) -> frozenset[tuple[int, ...]]:
    """Every value of ``observe`` (expressions over thread registers and memory) in a final
    state (every thread ended, every buffer empty) of the loop-free program ``p``, by z3:
    such a state is exactly as many moves away as there are instructions that are steps
    under ``memory`` plus, under weak memory, one flush per plain store."""
    if any(isinstance(i, Branch | Goto) for t in p.threads for i in t.code):
        raise NotifyError(f"final_outcomes takes loop-free programs; {p.name} jumps")
    depth = sum(int(not _noop(i, memory)) + int(memory != "sc" and isinstance(i, Store))
                for t in p.threads for i in t.code)
    # a thread starting on a no-op executes it as one step (it lands past the whole chain)
    depth += sum(1 for t in p.threads if t.code and _noop(t.code[0], memory))
    sym = _Sym(p, memory, capacity)
    solver = z3.SolverFor("QF_BV")
    s = sym.fresh(0)
    solver.add(sym.init(s))
    for k in range(depth):
        n = sym.fresh(k + 1)
        solver.add(sym.relation(s, sym.effects(s), n, z3.BitVec(f"sel@{k}", sym.selw)))
        s = n
    for t, th in enumerate(p.threads):
        solver.add(s[f"pc{t}"] == len(th.code), sym.empty(s, t))
    terms = [sym.ev(e, s, None) for e in observe]
    out: set[tuple[int, ...]] = set()
    while solver.check() == z3.sat:
        m = solver.model()
        vals = tuple(m.eval(x, model_completion=True).as_long() for x in terms)
        out.add(vals)
        solver.add(z3.Or([x != v for x, v in zip(terms, vals, strict=True)]))
    return frozenset(out)
