"""QEMU's aio_notify protocols (docs/spin) under sc/tso/pso: verdicts, counterexamples,
the fence audit, and the memory models held to the litmus reference of test_litmus.py.

Spin's verdicts on the original models (spin 6.5.2, ``-a``, ``-a -f``) that the encoding must
reproduce: aio_notify holds, ``-DBUG`` fails; aio_notify_bug holds for both claims and its
``-DBUG`` (21a03d17) fails only the ``-DCHECK_REQ`` claim; aio_notify_accept holds for both,
``-DBUG1`` fails only the default claim, ``-DBUG2`` fails both.
"""

from __future__ import annotations

import pytest

from aioctx_verify.model import _notify as N
from tests.test_litmus import CASES, Fn, Ld, Litmus, Rmw, St, allowed

# (protocol, property) -> does Spin find a violation
SPIN = {
    ("aio_notify", "requests_served"): False,
    ("aio_notify/BUG", "requests_served"): True,
    ("aio_notify_bug", "event_toggles"): False,
    ("aio_notify_bug", "req_cleared"): False,
    ("aio_notify_bug/BUG", "event_toggles"): False,
    ("aio_notify_bug/BUG", "req_cleared"): True,
    ("aio_notify_accept", "event_toggles"): False,
    ("aio_notify_accept", "req_cleared"): False,
    ("aio_notify_accept/BUG1", "event_toggles"): True,
    ("aio_notify_accept/BUG1", "req_cleared"): False,
    ("aio_notify_accept/BUG2", "event_toggles"): True,
    ("aio_notify_accept/BUG2", "req_cleared"): True,
}


def test_every_spin_model_is_covered() -> None:
    assert set(SPIN) == set(N.SPIN_MODELS)


@pytest.mark.parametrize("memory", N.MEMORY_MODELS)
@pytest.mark.parametrize(("protocol", "prop"), sorted(SPIN))
def test_explicit_search_reproduces_spin_under_every_memory_model(
    protocol: str, prop: str, memory: str
) -> None:
    # The fixed protocols hold under sc, tso and pso; each planted bug is found under all
    # three (none of them needs weak memory), and only by the claim that Spin finds it with.
    ex = N.explore(N.build(protocol, prop), memory)
    assert ex.violated == SPIN[(protocol, prop)], (protocol, prop, memory, ex)
    assert ex.buffer_capacity == N.BUFFER_CAPACITY


@pytest.mark.parametrize("memory", N.MEMORY_MODELS)
def test_aio_notify_bug_shortest_counterexample_replays(memory: str) -> None:
    v = N.check_protocol("aio_notify/BUG", memory)
    assert v.verdict == "refuted" and v.z3_verdict == "refuted"
    assert v.counterexample_steps == len(v.moves) == v.depth
    # sc: the notifier posts, sees notify_me == 0 and skips the event; the waiter sleeps
    assert v.counterexample_steps == (3 if memory == "sc" else 5)
    p = N.build("aio_notify/BUG")
    N.replay(p, memory, v.moves)
    assert v.loop_start is None  # a stuck state: both threads wait forever
    assert "stuck" in v.counterexample and "waiter" in v.counterexample


def test_placement_bug_needs_check_req_and_its_lasso_replays() -> None:
    v = N.check_protocol("aio_notify_bug/BUG", "sc", "req_cleared")
    assert v.verdict == "refuted" and v.counterexample_steps == 15
    states = N.replay(N.build("aio_notify_bug/BUG", "req_cleared"), "sc", v.moves)
    if v.loop_start is not None:
        assert states[v.loop_start] == states[-1]


@pytest.mark.parametrize("memory", ["sc", "pso"])
def test_explicit_witness_is_a_fair_lasso_that_replays(memory: str) -> None:
    # BUG1: the event stays set forever (busy loop) once notified was accepted too early
    p = N.build("aio_notify_accept/BUG1", "event_toggles")
    ex = N.explore(p, memory)
    assert ex.violated and ex.goal == 1 and ex.loop_start is not None
    states = N.replay(p, memory, ex.witness)
    assert states[ex.loop_start] == states[-1]
    assert all(s[2][p.shared.index("event")] == 1 for s in states[ex.loop_start :])


def test_fixed_protocol_is_proven_and_z3_confirms() -> None:
    v = N.check_protocol("aio_notify_bug", "tso", "event_toggles", confirm_depth=4)
    assert v.verdict == "proven" and v.z3_verdict == "bounded" and v.depth == 4
    assert v.states and v.counterexample_steps is None


def test_z3_alone_gives_bounded_for_a_fixed_protocol() -> None:
    v = N.check_protocol("aio_notify", "sc", depth=4, complete=False)
    assert v.verdict == "bounded" and v.states is None


def test_replay_reports_the_first_disabled_step() -> None:
    p = N.build("aio_notify/BUG")
    with pytest.raises(N.NotifyError, match=r"step 1 .* is not enabled"):
        N.replay(p, "sc", [len(N._moves(p, "sc")) - 1])  # a notifier step from the waiter's pc


def test_fence_audit_finds_aio_notify_barrier_needed_only_under_weak_memory() -> None:
    audit = N.audit_fences(("aio_notify",), shortest=False)
    by_site = {a.site: a for a in audit}
    mb = by_site["aio_notify: smp_mb() before reading notify_me"]
    assert mb.necessary_under == ("tso", "pso")
    add = by_site["aio_poll: atomic_add(notify_me) before checking for work"]
    assert add.necessary_under == ("tso", "pso")
    # every weakening keeps the protocol correct under sc: SC needs no barrier at all
    assert all(dict((m, v) for m, v, _ in a.verdicts)["sc"] == "proven" for a in audit)


def test_fence_audit_counterexample_length() -> None:
    p = N.build("aio_notify")
    weakened = {site: q for _, _, site, _, q in N._weakened(p)}
    q = weakened["aio_notify: smp_mb() before reading notify_me"]
    v = N.check_program(q, "tso", confirm_depth=3)
    assert v.verdict == "refuted" and v.counterexample_steps is not None
    assert "flush" in v.counterexample  # the delayed store is what loses the wake-up


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: N.check_protocol("aio_notfy", "sc"), "unknown protocol 'aio_notfy'"),
        (lambda: N.check_protocol("aio_notify", "arm"), "unknown memory model 'arm'"),
        (lambda: N.build("aio_notify", "event_toggles"), "has no property 'event_toggles'"),
        (lambda: N.audit_fences(("aio_notify/BUG",)), "takes fixed protocols"),
    ],
)
def test_bad_input_is_a_clear_error(call: object, message: str) -> None:
    with pytest.raises(N.NotifyError, match=message):
        call()  # type: ignore[operator]


# ------------------------------------------------------------------------------------------
# Litmus agreement: the same tests, in this module's language, against allowed()
# ------------------------------------------------------------------------------------------
def _translate(test: Litmus) -> tuple[N.Program, list[N.Expr]]:
    threads = []
    owner: dict[str, str] = {}
    for i, code in enumerate(test.threads):
        name = f"P{i}"
        items: list[N.Instr | str] = []
        for ins in code:
            if isinstance(ins, Ld):
                items.append(N.Load(ins.reg, ins.loc))
                owner[ins.reg] = name
            elif isinstance(ins, St):
                if ins.order == "seq_cst":
                    items.append(N.Atomic(ins.loc, N.C(ins.val)))
                else:
                    if ins.order == "release":
                        items.append(N.Fence("wmb"))
                    items.append(N.Store(ins.loc, N.C(ins.val)))
            elif isinstance(ins, Fn):
                items.append(N.Fence(ins.kind))
            else:
                assert isinstance(ins, Rmw)
                new: N.Expr = {
                    "xchg": N.C(ins.a),
                    "cas": ("ite", ("==", N.V(ins.loc), N.C(ins.a)), N.C(ins.b), N.V(ins.loc)),
                    "add": ("+", N.V(ins.loc), N.C(ins.a)),
                }[ins.op]
                items.append(N.Atomic(ins.loc, new, reg=ins.reg))
                owner[ins.reg] = name
        threads.append(N.Thread.assemble(name, items))
    p = N.Program(test.name, test.locs, tuple(threads), width=3)
    observe = [N.TR(owner[r], r) for r in test.regs] + [N.V(x) for x in test.final]
    return p, observe


LITMUS = [
    *(n for n in CASES if "+" not in n and n != "IRIW"),
    "SB+mbs", "SB+wmbs", "SB+rel-stores", "SB+rfi", "MP+wmbs", "MP+rel-acq", "2+2W+wmbs",
    "S+wmbs", "R+mbs", "SB+xchgs", "SB+cmpxchgs", "SB+fetch_adds", "2xfetch_add", "MP+cas",
]


@pytest.mark.parametrize("memory", N.MEMORY_MODELS)
@pytest.mark.parametrize("name", LITMUS)
def test_z3_outcomes_equal_the_litmus_reference(name: str, memory: str) -> None:
    test = CASES[name]
    p, observe = _translate(test)
    assert N.final_outcomes(p, memory, observe) == allowed(test, memory)


def test_the_explicit_counterexample_is_shortest_at_any_depth() -> None:
    """The explicit search's counterexample is a shortest one however deep it lies (a
    breadth-first search over states and fairness units), the same on every run: z3 finds
    none a move shorter, and a z3 depth bound changes nothing but the note."""
    from aioctx_verify.model._notify import check_protocol

    a = check_protocol("aio_notify_bug/BUG", "sc", "req_cleared", confirm_depth=6)
    b = check_protocol("aio_notify_bug/BUG", "sc", "req_cleared", confirm_depth=2)
    assert a.verdict == b.verdict == "refuted" and a.z3_verdict == "bounded"
    assert a.moves == b.moves and a.counterexample_steps == len(a.moves) == 15
    assert "z3 confirms none within 6 moves" in a.notes[0]
    p = N.build("aio_notify_bug/BUG", "req_cleared")
    cex, reached = N._bmc(p, "sc", 14, N.BUFFER_CAPACITY, None)
    assert cex is None and reached == 14
    # where the shortest is within z3's depth, z3 finds one of the same length
    c = check_protocol("aio_notify/BUG", "tso", confirm_depth=6)
    assert c.z3_verdict == "refuted" and c.counterexample_steps == 5


def test_a_protocol_counterexample_prints_a_replay_line_that_reproduces() -> None:
    """Every failure printed has a line that replays it: a refuted protocol's line replays
    on the explicit semantics (exit 1, the same text), a run cut before its violation
    violates nothing (exit 0), and a malformed line is a usage error (exit 2)."""
    from click.testing import CliRunner

    from aioctx_verify.cli import main

    for proto, mem, prop in (("aio_notify/BUG", "tso", None),
                             ("aio_notify_accept/BUG1", "sc", "event_toggles")):
        v = N.check_protocol(proto, mem, prop)
        line = N.replay_line(v)
        assert line.startswith("aioctx-verify replay 'protocol:"), line
        spec = line.split("'")[1]
        res = CliRunner().invoke(main, ["replay", spec])
        assert res.exit_code == 1, res.output
        assert res.output.strip() == v.counterexample.strip()
        cut = spec.split(":")
        cut[-1] = ",".join(cut[-1].partition("@")[0].split(",")[:-1])
        res = CliRunner().invoke(main, ["replay", ":".join(cut)])
        assert res.exit_code == 0 and "violates no goal" in res.output, res.output
    for bad in ("protocol:aio_notify/BUG:tso:requests_served", "protocol:nope:sc:x:1",
                "protocol:aio_notify/BUG:arm:requests_served:1",
                "protocol:aio_notify/BUG:sc:requests_served:1,x"):
        res = CliRunner().invoke(main, ["replay", bad])
        assert res.exit_code == 2 and "Traceback" not in res.output, (bad, res.output)
