"""The mutant catalogue: every mutant is killed by a fixed, deterministic check, the same
check passes on the unmutated impl, and applying a mutant leaves no trace in impl.

Each regression case is one probe program (stress.mutation._probes) explored on the controlled
scheduler with a fixed strategy and seed and a fixed number of schedules: under the mutant
the exploration must fail, and fail through the expected property; on the correct impl the
very same exploration must pass.  Also here: ``aioctx-verify mutants --list``.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import aioctx_verify.impl._iothread
import aioctx_verify.impl.qemu
from aioctx_verify import impl
from aioctx_verify.cli import main
from aioctx_verify.impl import BH, AioContext, IOThread, RFifoLock
from aioctx_verify.impl._threadpool import ThreadPool
from aioctx_verify.stress.explore._explore import Budget, ExploreResult, explore
from aioctx_verify.stress.mutation._catalogue import (
    CATALOGUE,
    NO_MUTANT,
    Mutant,
    MutantError,
    mutant_by_name,
    rewrite,
)
from aioctx_verify.stress.mutation._matrix import _classify
from aioctx_verify.stress.mutation._probes import PROBES, probe_program

PROPERTIES = ("P1", "P2", "P3", "LIVE")

#: mutant -> (probe, strategy, seed, schedules, property of the kill).  ``schedules`` bounds
#: both runs: the mutant must fail within it, the unmutated impl must pass all of it.
KILLS: dict[str, tuple[str, str, int, int, str]] = {
    "dispatching-flag-shared": ("gsource_vcpu_chain", "pct", 2, 30, "LIVE"),
    "notify-clear-late": ("gsource_vcpu_chain", "pct", 0, 80, "LIVE"),
    "notified-bug1": ("bh_ping", "random", 2, 30, "LIVE"),
    "notified-bug2": ("bh_ping", "random", 0, 30, "LIVE"),
    "bh-ctx-uaf": ("bh_uaf", "dfs", 0, 30, "P2"),
    "bh-nonatomic-test-and-set": ("bh_data_tso", "random", 1, 100, "P2"),
    "bh-flag-cleared-after-callback": ("bh_resched_during_run", "dfs", 0, 30, "P2"),
    "notify-me-after-scan": ("bh_ping_tso", "pct", 0, 70, "LIVE"),
    "iothread-stop-flag": ("stop_busy", "pct", 0, 30, "LIVE"),
    "enable-external-no-kick": ("external_enable", "dfs", 0, 30, "LIVE"),
    "threadpool-nested-poll": ("threadpool_nested", "dfs", 0, 30, "LIVE"),
    "nested-bh-poll-free": ("delete_nested", "dfs", 0, 30, "P2"),
    "non-home-thread-poll": ("helper_poll", "dfs", 0, 30, "P3"),
    "current-ctx-misidentified": ("main_ctx_oneshot", "dfs", 0, 30, "P3"),
    "no-contention-callback": ("acquire_storm", "dfs", 0, 30, "LIVE"),
    "nonsticky-kick": ("kick_race", "dfs", 0, 30, "LIVE"),
    "lock-no-fifo": ("acquire_storm", "random", 0, 30, "P1"),
    "release-by-non-owner-accepted": ("non_owner_release", "dfs", 0, 30, "P1"),
    "schedule-takes-lock": ("bh_ping", "dfs", 0, 30, "P2"),
    "rerun-same-iteration": ("self_resched", "dfs", 0, 30, "P2"),
    "deleted-bh-runs": ("delete_nested", "dfs", 0, 30, "P2"),
    "nested-acquire-no-owner-check": ("acquire_storm", "dfs", 0, 30, "P1"),
    "recursive-release-drops-all": ("acquire_storm", "dfs", 0, 30, "P1"),
    "iothread-poll-without-acquire": ("acquire_storm", "dfs", 0, 30, "P3"),
    "poll-releases-lock": ("acquire_storm", "dfs", 0, 30, "P3"),
    "nested-fastpath-no-owner-check": ("fastpath_exclusion", "dfs", 0, 30, "P3"),
    "stop-the-world-skips-acquire": ("stop_world", "dfs", 0, 30, "P3"),
}

#: Everything a mutant may patch: its attributes are compared before and after.
PATCHABLE: tuple[object, ...] = (
    AioContext,
    BH,
    RFifoLock,
    IOThread,
    ThreadPool,
    impl,
    aioctx_verify.impl._iothread,
    aioctx_verify.impl.qemu,
)


def _explore(name: str, mutant: Mutant) -> tuple[ExploreResult, str | None]:
    probe, strategy, seed, schedules, _ = KILLS[name]
    program = probe_program(PROBES[probe])
    with mutant.apply():
        r = explore(
            program,
            strategy=strategy,
            budget=Budget(schedules, 60.0),
            seed=seed,
            do_shrink=False,
        )
        prop = None
        if r.failure is not None:
            prop, _via = _classify(PROBES[probe], r.failure)
    return r, prop


def _snapshot() -> dict[tuple[int, str], object]:
    snap: dict[tuple[int, str], object] = {}
    for i, owner in enumerate(PATCHABLE):
        for k, v in vars(owner).items():
            snap[(i, k)] = v
    return snap


def test_every_mutant_has_a_regression_case() -> None:
    assert set(KILLS) == {m.name for m in CATALOGUE}
    for name, (probe, _s, _seed, _n, prop) in KILLS.items():
        assert probe in mutant_by_name()[name].probes, (name, probe)
        assert prop in PROPERTIES


@pytest.mark.parametrize("mutant", CATALOGUE, ids=lambda m: m.name)
def test_mutant_is_killed(mutant: Mutant) -> None:
    r, prop = _explore(mutant.name, mutant)
    assert r.verdict == "fail", f"{mutant.name} survived {r.schedules} schedules: {r.reason}"
    assert r.failure is not None
    expected = KILLS[mutant.name][4]
    assert prop == expected, f"{mutant.name} killed through {prop}, not {expected}: " + (
        r.failure.message
    )


@pytest.mark.parametrize("mutant", CATALOGUE, ids=lambda m: m.name)
def test_same_check_passes_without_the_mutant(mutant: Mutant) -> None:
    r, _prop = _explore(mutant.name, NO_MUTANT)
    probe, _strategy, _seed, schedules, _ = KILLS[mutant.name]
    assert r.verdict == "pass", r.failure.report() if r.failure else r.reason
    # Every bounded schedule ran (DFS counts pruned ones), or DFS exhausted the program.
    assert r.schedules + r.pruned == schedules or r.exhausted, (probe, r.schedules, r.pruned)
    assert r.schedules >= 1


@pytest.mark.parametrize("mutant", CATALOGUE, ids=lambda m: m.name)
def test_apply_patches_and_leaves_no_trace(mutant: Mutant) -> None:
    before = _snapshot()
    with mutant.apply():
        during = _snapshot()
    after = _snapshot()
    changed = {k for k in before if during.get(k) is not before[k]}
    assert changed, f"{mutant.name} patched nothing"
    assert set(after) == set(before)
    assert all(after[k] is before[k] for k in before), [
        k for k in before if after[k] is not before[k]
    ]


def test_unapplied_on_error_and_reapplicable() -> None:
    m = mutant_by_name()["deleted-bh-runs"]
    before = _snapshot()
    with pytest.raises(ZeroDivisionError), m.apply():
        assert BH.__dict__["delete"] is not before[(PATCHABLE.index(BH), "delete")]
        _ = 1 // 0
    assert _snapshot() == before
    # A second application builds the patch again and still works.
    r, prop = _explore("deleted-bh-runs", m)
    assert r.verdict == "fail" and prop == "P2"
    assert _snapshot() == before


def test_mutants_do_not_nest_into_each_other() -> None:
    """Two mutants patching the same method: the inner one's exit restores the outer one's."""
    a = mutant_by_name()["bh-ctx-uaf"]
    b = mutant_by_name()["schedule-takes-lock"]
    orig = BH.__dict__["schedule"]
    with a.apply():
        patched_a = BH.__dict__["schedule"]
        with b.apply():
            assert BH.__dict__["schedule"] not in (orig, patched_a)
        assert BH.__dict__["schedule"] is patched_a
    assert BH.__dict__["schedule"] is orig


def test_rewritten_code_is_named_after_the_mutant() -> None:
    m = mutant_by_name()["deleted-bh-runs"]
    with m.apply():
        fn = BH.__dict__["delete"]
        assert isinstance(fn, types.FunctionType)
        assert "[deleted-bh-runs]" in fn.__code__.co_filename
        assert fn.__qualname__ == "BH.delete"


def test_rewrite_refuses_a_missing_or_ambiguous_anchor() -> None:
    with pytest.raises(MutantError, match="found it 0 times"):
        rewrite(BH.delete, [("no such text", "x")], mutant="t")
    with pytest.raises(MutantError, match="exactly once"):
        rewrite(AioContext._poll_locked, [("tr", "tr")], mutant="t")


def test_rewrite_uses_impl_source_as_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    """An edit of impl's file on disk after import (here: linecache shifted by a line) does
    not change what a mutant is built from."""
    import linecache

    path = BH.schedule.__code__.co_filename
    lines = linecache.getlines(path)
    assert lines
    monkeypatch.setitem(
        linecache.cache, path, (0, None, ["# inserted\n", *lines], path)
    )
    monkeypatch.setattr(linecache, "checkcache", lambda *a: None)
    fn = rewrite(BH.schedule, [("ctx.aio_notify()", "ctx.aio_notify()")], mutant="t")
    assert fn.__code__.co_code == BH.schedule.__code__.co_code


def test_rewrite_refuses_source_that_is_not_the_loaded_code(tmp_path: Path) -> None:
    import importlib.util

    mod_path = tmp_path / "mutant_victim.py"
    mod_path.write_text("def f(x):\n    return x + 1\n")
    spec = importlib.util.spec_from_file_location("mutant_victim", mod_path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["mutant_victim"] = mod
    try:
        spec.loader.exec_module(mod)
        mod_path.write_text("def f(x):\n    return x * 2\n")  # edited after the import
        with pytest.raises(MutantError, match="does not compile to the loaded function"):
            rewrite(mod.f, [("x", "x")], mutant="t")
    finally:
        del sys.modules["mutant_victim"]


def test_catalogue_is_described() -> None:
    names = [m.name for m in CATALOGUE]
    assert len(names) == len(set(names)) >= 25
    historical = [m for m in CATALOGUE if m.source == "historical"]
    assert len(historical) >= 12
    for m in CATALOGUE:
        assert re.fullmatch(r"[a-z0-9-]+", m.name)
        assert m.property in PROPERTIES, m
        assert m.description and len(m.description) > 20, m
        assert m.qemu_commit, m
        assert m.source in ("historical", "seed-rule", "added"), m
        assert m.probes and all(p in PROBES for p in m.probes), m
        if m.source == "historical":
            # Cites an upstream commit: a hash, or a dated title where no hash was found.
            assert re.search(r"\b[0-9a-f]{9,10}\b|\b20[12]\d\b", m.qemu_commit), m
        else:
            assert m.qemu_commit.startswith("seed-rule"), m
    props = {p: sum(1 for m in CATALOGUE if m.property == p) for p in PROPERTIES}
    assert all(props[p] >= 3 for p in ("P1", "P2", "P3")), props


def test_the_brief_historical_commits_are_all_there() -> None:
    commits = " ".join(m.qemu_commit for m in CATALOGUE)
    for h in (
        "0ceb849bd",
        "eabc977973",
        "21a03d17f2",
        "05e514b1d4",
        "924fe1293c",
        "5710a3e09f",
        "2362a28ea1",
        "3c80ca158c",
        "648fb0ea5e",
        "3c18a92dc4",
    ):
        assert h in commits, h
    assert "BUG1" in commits and "BUG2" in commits
    assert "aio_enable_external" in commits


def test_no_mutant_patches_nothing() -> None:
    before = _snapshot()
    with NO_MUTANT.apply():
        assert _snapshot() == before
    assert NO_MUTANT.name not in mutant_by_name()


@pytest.fixture
def runner() -> Iterator[CliRunner]:
    yield CliRunner()


def test_cli_list(runner: CliRunner) -> None:
    r = runner.invoke(main, ["mutants", "--list"])
    assert r.exit_code == 0, r.output
    for m in CATALOGUE:
        line = next(x for x in r.output.splitlines() if x.startswith(m.name + " "))
        assert m.qemu_commit in line and f" {m.property} " in line
        assert m.description in r.output
    assert f"{len(CATALOGUE)} mutants" in r.output
