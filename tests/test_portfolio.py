"""The portfolio strategy and PCT with change points at shared accesses: determinism, every
member runs, a depth-2 bug found within a schedule budget, replay of what they find, and
the one registry of strategy names."""

from __future__ import annotations

import pytest

from aioctx_verify.stress.controlled import ControlledPlatform, PCTStrategy
from aioctx_verify.stress.controlled._portfolio import PortfolioStrategy
from aioctx_verify.stress.controlled._strategies import (
    DEFAULT_STRATEGIES,
    STRATEGY_NAMES,
    make_strategy,
)
from aioctx_verify.stress.explore import Budget, Program, explore, replay, run_schedule


def _handoff(p: ControlledPlatform) -> None:
    """A depth-2 lost wake-up among three threads: a client looks for the sleeping
    worker before publishing its request; held there while the worker goes back to sleep,
    it kicks nobody.  Each thread does private work first (no shared object), so a change
    point at a private step is wasted."""
    m = p.mutex("m")
    wake = p.condition(m)
    queued = p.atomic(0, "queued")
    idle = p.atomic(0, "idle")

    def worker() -> None:
        scratch = p.atomic(0, "scratch")
        for v in range(6):
            scratch.store(v)
        handled = 0
        while handled < 2:
            with m:
                idle.store(1)
                if queued.load() == handled:
                    wake.wait()
                idle.store(0)
                handled = queued.load()

    def client(i: int) -> None:
        own = p.atomic(0, f"own{i}")
        for v in range(6):
            own.store(v)
        sleeping = idle.load()
        queued.fetch_add(1)
        if sleeping:
            with m:
                wake.notify()

    ts = [p.start_thread(worker, "worker")]
    ts += [p.start_thread(lambda i=i: client(i), f"client{i}") for i in range(2)]
    for t in ts:
        t.join()


HANDOFF = Program("handoff_wakeup", _handoff, "bug", "sc", "depth-2 lost wake-up")


def _tokens(strategy: object, runs: int) -> list[tuple[str, ...]]:
    out = []
    for _ in range(runs):
        assert strategy.next_run()  # type: ignore[attr-defined]
        o = run_schedule(HANDOFF, strategy)
        out.append(tuple(c.token for c in o.decisions))
    return out


@pytest.mark.parametrize("make", [
    lambda: PortfolioStrategy(3),
    lambda: PCTStrategy(3, None, points="shared"),
], ids=["portfolio", "pct-auto"])
def test_same_seed_same_schedules(make: object) -> None:
    a = _tokens(make(), 40)  # type: ignore[operator]
    b = _tokens(make(), 40)  # type: ignore[operator]
    assert a == b
    assert len(set(a)) > 1


def test_every_member_gets_runs_and_the_floor_holds() -> None:
    strat = PortfolioStrategy(0)
    n = 4 * len(strat.members) * 3  # three rounds
    _tokens(strat, n)
    assert set(strat.runs) == {"random", "pct1", "pct2", "pct3", "dfs", "conflict"}
    assert all(r >= 3 for r in strat.runs.values()), strat.runs
    assert sum(strat.runs.values()) == n
    assert all(0 <= strat.new[m] <= strat.runs[m] for m in strat.runs)


def test_an_exhausted_dfs_leaves_the_portfolio() -> None:
    prog = Program("tiny", lambda p: p.atomic(0, "x").store(1), "safe", "sc")
    r = explore(prog, strategy="portfolio", budget=Budget(60, 30))
    assert r.verdict == "pass" and r.schedules + r.pruned == 60


def test_auto_depth_spans_one_to_three() -> None:
    strat = PCTStrategy(1, None, points="shared")
    _tokens(strat, 60)
    assert set(strat.depths) == {1, 2, 3}
    assert strat.k < 40  # shared-access points only, far fewer than the run's decisions


def test_classic_pct_is_unchanged_by_the_new_options() -> None:
    assert _tokens(PCTStrategy(5, 3), 10) == _tokens(make_strategy("pct", 5), 10)
    assert PCTStrategy(5).observe is None  # classic PCT learns nothing, costs nothing


@pytest.mark.parametrize("strategy", ["portfolio", "pct-auto"])
@pytest.mark.parametrize("seed", range(3))
def test_finds_a_depth_two_bug_and_its_line_replays(strategy: str, seed: int) -> None:
    r = explore(HANDOFF, strategy=strategy, budget=Budget(1500, 600.0), seed=seed,
                do_shrink=False)
    assert r.verdict == "fail" and r.failure is not None, r.summary()
    assert r.failure.kind in ("deadlock", "lost_wakeup")
    out = replay(r.failure.schedule, {HANDOFF.name: HANDOFF})
    assert out.verdict == "fail" and out.kind == r.failure.kind
    assert r.failure.replay_command().startswith("aioctx-verify replay 'v1:handoff_wakeup:sc:")


def test_one_registry_of_names() -> None:
    from aioctx_verify import _campaign, cli, pytest_plugin
    from aioctx_verify.stress.explore import _generated

    assert {"portfolio", "pct-auto"} <= set(STRATEGY_NAMES)
    assert set(DEFAULT_STRATEGIES) <= set(STRATEGY_NAMES)
    assert (*STRATEGY_NAMES, "hypothesis") == cli.STRATEGIES
    assert pytest_plugin._STRATEGIES == STRATEGY_NAMES
    assert _generated.STRATEGIES == DEFAULT_STRATEGIES == _campaign.STRATEGIES
    for name in STRATEGY_NAMES:
        assert make_strategy(name, 0).name == name
    with pytest.raises(ValueError, match="portfolio"):
        make_strategy("nope", 0)
