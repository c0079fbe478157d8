"""The z3 prover: bounded model checking, strengthening (Houdini), k-induction, the command.

* every mutant of the model that breaks a safety property is *refuted*, and the
  counterexample bounded model checking returns is exactly as long as the explicit
  breadth-first search's shortest path to a state violating that property; it replays on
  the explicit model and prints like the search's;
* properties a mutant leaves intact, and every property of the correct protocol, are
  *proven* (they are part of an inductive invariant);
* the strengthening is checked, not assumed: what Houdini keeps is inductive (checked here
  once more with a plain solver query), a statement that is not is dropped with its reason;
  without it, plain k-induction of P1 does not close (*bounded*);
* ``aioctx-verify prove`` prints the verdicts, writes the JSON and exits 0 / 1 / 2.

The configurations are the model's smallest; every test is bounded by work (depths,
configurations), not by time.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import z3
from click.testing import CliRunner

from aioctx_verify.cli import main
from aioctx_verify.model import (
    BUG_CONFIGS,
    BUG_PROPERTY,
    Encoding,
    Invariant,
    ModelConfig,
    bmc,
    bug_config,
    format_path,
    houdini,
    invariants,
    k_induction,
    prove,
    replay,
    shortest_violation,
)
from aioctx_verify.model._z3_invariants import candidate_invariants
from aioctx_verify.properties import PROPERTIES

PROPS = {p: PROPERTIES[p].z3_formula for p in ("P1", "P2", "P3")}
CHECK = {"P1": invariants.p1, "P2": invariants.p2, "P3": invariants.p3}
SMALL = ModelConfig(threads=2, bhs=1, max_depth=2,
                    client_ops=frozenset({"acquire", "release", "schedule"}))
#: Mutants whose model violation is a safety property (the others break LIVE).
SAFETY_BUGS = sorted(f for f in BUG_CONFIGS if BUG_PROPERTY[f] in PROPS)


@pytest.mark.parametrize("flag", SAFETY_BUGS)
def test_bmc_counterexamples_are_the_shortest_paths(flag: str) -> None:
    cfg = bug_config(flag)
    rep = prove(cfg, PROPS, depth=16)
    verdicts = {r.property: r for r in rep.results}
    assert verdicts[BUG_PROPERTY[flag]].verdict == "refuted", rep.summary()
    for r in rep.results:
        bfs = shortest_violation(cfg, CHECK[r.property])
        if r.verdict != "refuted":
            assert r.verdict == "proven" and bfs is None, rep.summary()
            continue
        cex = r.counterexample
        assert cex is not None and bfs is not None
        assert r.depth == len(cex.path) == len(bfs), (r.property, len(bfs))
        states = replay(cfg, cex.path)
        assert list(states) == list(cex.states)
        assert not CHECK[r.property](states[-1])
        assert all(CHECK[r.property](s) for s in states[:-1])
        assert cex.format(cfg) == format_path(cex.path, cfg)
        assert r.counterexample_steps == len(bfs)


@pytest.mark.parametrize("flag", ["", "no-contention-callback", "notified-bug1"])
def test_intact_properties_are_proven(flag: str) -> None:
    """The correct protocol, and a mutant that breaks only liveness: P1-P3 proven, every
    stated invariant kept for the correct one."""
    cfg = bug_config(flag) if flag else SMALL
    rep = prove(cfg, PROPS, depth=4)
    assert [(r.property, r.verdict, r.depth) for r in rep.results] == [
        ("P1", "proven", 1), ("P2", "proven", 1), ("P3", "proven", 1)
    ], rep.summary()
    if not flag:
        assert rep.strengthening.dropped == ()
        assert {"queue-shape", "kick-frame", "notify-me-count", "local(t0)"} <= set(
            rep.strengthening.names())


def test_what_houdini_keeps_is_inductive_and_the_rest_is_dropped() -> None:
    enc = Encoding(SMALL)
    never_notified = Invariant("never-notified", "notified stays false",
                               lambda e, s: z3.Not(s.notified))
    busy = Invariant("starts-busy", "the lock's mutex is held", lambda e, s: s.lock.busy >= 0)
    cands = [*candidate_invariants(enc), never_notified, busy]
    st = houdini(enc, cands)
    why = dict((i.name, w) for i, w in st.dropped)
    assert why == {"never-notified": why["never-notified"],
                   "starts-busy": "false in the initial state"}
    assert why["never-notified"].startswith("not preserved")
    # The kept conjunction is inductive: checked here with a plain incremental solver.
    s, s2 = enc.base, enc.state("n")
    solver = z3.Solver()
    solver.add(enc.relation(s, s2, enc.selector("x")))
    solver.add(*(i.formula(enc, s) for i in st.kept))
    assert solver.check(z3.Not(z3.And(*(i.formula(enc, s2) for i in st.kept)))) == z3.unsat


def test_induction_needs_the_strengthening() -> None:
    enc = Encoding(SMALL)
    assert not k_induction(enc, PROPS["P1"], 1)  # P1 alone is not inductive
    kept = houdini(enc, candidate_invariants(enc)).kept
    assert k_induction(enc, PROPS["P1"], 1, assume=kept)
    rep = prove(SMALL, {"P1": PROPS["P1"]}, depth=3, max_k=2, encoding=enc, strengthen=False)
    (r,) = rep.results
    assert (r.verdict, r.depth) == ("bounded", 3), rep.summary()


def test_bmc_reports_the_depth_it_reached() -> None:
    cfg = bug_config("lock-no-fifo")  # P1 breaks after 6 steps
    enc = Encoding(cfg)
    kept = houdini(enc, candidate_invariants(enc)).kept
    found, reached = bmc(enc, {"P1": PROPS["P1"]}, 5, assume=kept)
    assert (found, reached) == ({}, 5)
    found, reached = bmc(enc, {"P1": PROPS["P1"]}, 9, assume=kept)
    assert reached == 6 and len(found["P1"].path) == 6


# -- the command ---------------------------------------------------------------------------
def test_prove_command_writes_the_verdicts(tmp_path: Path) -> None:
    out = tmp_path / "prove.json"
    res = CliRunner().invoke(main, [
        "prove", "--config", "threads=2,bhs=1", "--config", "bug=schedule-takes-lock",
        "--depth", "4", "--live-depth", "2", "--protocols", "none", "--json", str(out),
    ])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    rows = {(r["model"], r["property"]): r for r in doc["results"]}
    keys = {"model", "memory", "property", "verdict", "depth", "seconds",
            "counterexample_steps", "witness", "states"}
    assert all(set(r) == keys and r["memory"] == "sc" for r in doc["results"])
    assert rows[("io+client/1bh/d2/ops2", "P1")]["verdict"] == "proven"
    live = rows[("io+client/1bh/d2/ops2", "LIVE")]
    # z3 found nothing within 2 steps; the explicit check covered every reachable state
    assert (live["verdict"], live["depth"], live["witness"]) == ("proven", 2, None)
    assert live["states"] > 1000
    bad = rows[("io+client/1bh/d2/ops2/schedule-takes-lock", "P2")]
    assert (bad["verdict"], bad["depth"], bad["counterexample_steps"]) == ("refuted", 2, 2)
    assert "shortest counterexample to P2" in res.output
    assert "t1 schedule(bh0)" in res.output and "queue-shape:" in res.output
    assert doc["invariants"]["io+client/1bh/d2/ops2"]["dropped"] == []


def test_prove_command_exits_1_when_a_verdict_is_unexpected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Pretend the mutant is the correct protocol: its refutation is then a real failure.
    from aioctx_verify import _prove_cmd

    monkeypatch.setattr(_prove_cmd.ProvedConfig, "as_expected",
                        property(lambda self: not any(
                            r["verdict"] == "refuted" for r in self.rows)))
    res = CliRunner().invoke(main, ["prove", "--config", "bug=non-home-thread-poll",
                                    "--depth", "2", "--live-depth", "0", "--protocols", "none"])
    assert res.exit_code == 1, res.output
    assert "0 of 1 configurations as expected" in res.output


@pytest.mark.parametrize("spec", ["bug=nope", "threads=x", "colour=2", "max_depth=0",
                                  "smokey"])
def test_prove_command_rejects_bad_configs_in_one_line(spec: str) -> None:
    res = CliRunner().invoke(main, ["prove", "--config", spec])
    assert res.exit_code == 2
    assert res.output.count("\n") <= 2 and "Traceback" not in res.output


def test_a_campaign_refutation_prints_a_model_replay_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refutation in the campaign's prove step names the model size it was found in, as a
    ``model:`` replay line (the explicit search of that size)."""
    import types

    import aioctx_verify._prove_cmd as prove_cmd
    from aioctx_verify._campaign import plan_campaign, run_campaign

    def refuted(spec: object, depth: int, jobs: int, live_depth: int, live_states: int
                ) -> object:
        return types.SimpleNamespace(
            model="m", rows=[], paths=[("P1", [(0, "io", "acquire()", "acquire:1")])]
        )

    monkeypatch.setattr(prove_cmd, "prove_one", refuted)
    r = run_campaign(plan_campaign("smoke", checkers=("prove",)))
    (cx, *_) = r.counterexamples
    size = plan_campaign("smoke").model_configs()[0]
    assert cx.replay_command == "aioctx-verify replay 'model:" + ",".join(
        f"{k}={v}" for k, v in size.items()
    ) + "'"


def test_prove_checks_qemus_aio_notify_protocols_and_replays_on_impl(tmp_path: Path) -> None:
    out = tmp_path / "prove.json"
    res = CliRunner().invoke(main, [
        "prove", "--config", "bug=lock-no-fifo", "--live-depth", "0", "--protocols", "smoke",
        "--json", str(out),
    ])
    assert res.exit_code == 0, res.output
    rows = json.loads(out.read_text())["results"]
    notify = [r for r in rows if r.get("protocol") == "aio_notify_accept"]
    assert {(r["property"], r["memory"]) for r in notify} == {
        (p, m) for p in ("event_toggles", "req_cleared") for m in ("sc", "tso", "pso")
    }
    assert all(r["verdict"] == "proven" for r in notify)
    # The model's counterexample, guided through impl: the mutant fails the same way, the
    # correct impl does not, and the printed line replays it.
    line = next(x for x in res.output.splitlines() if x.startswith("on impl"))
    assert "reproduced: P1 on impl, correct impl clean" in line
    replay = line.split(" | ", 1)[1]
    assert replay.startswith("aioctx-verify replay --mutant lock-no-fifo 'v1:model.lock-no-fifo")
    spec = replay.split("'")[1]
    again = CliRunner().invoke(main, ["replay", "--mutant", "lock-no-fifo", spec])
    assert again.exit_code == 1 and "property: P1" in again.output, again.output


@pytest.mark.parametrize(("flag", "verdict"), [
    ("dispatching-flag-shared", "not mirrored"),  # a GSource: impl has no counterpart
    ("bh-nonatomic-test-and-set", "not reproduced"),  # the model's path leaves impl
])
def test_a_counterexample_impl_cannot_replay_prints_the_models_replay_line(
    flag: str, verdict: str
) -> None:
    from aioctx_verify._prove_cmd import _on_impl

    got, text = _on_impl(flag, None)
    assert got == verdict, text
    why, line = text.rsplit(" | ", 1)
    assert why and line == f"aioctx-verify replay 'model:bug={flag}'"
    again = CliRunner().invoke(main, ["replay", line.split("'")[1]])
    assert again.exit_code == 1, again.output
    assert "property: " in again.output and "via model" in again.output, again.output


def test_a_protocol_off_spins_verdict_fails_the_command() -> None:
    from aioctx_verify._prove_cmd import protocols_as_expected

    row = {"protocol": "aio_notify", "verdict": "refuted"}
    assert protocols_as_expected([row]) == ["aio_notify"]
    assert protocols_as_expected([{**row, "protocol": "aio_notify/BUG"}]) == []
    assert protocols_as_expected([{"protocol": "aio_notify/BUG", "verdict": "proven"}]) == [
        "aio_notify/BUG"
    ]
