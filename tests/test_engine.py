"""The shard engines (aioctx_verify.engine): the same merged results in this process and
on a Dask LocalCluster, a killed worker's shard retried and counted once, a hanging shard cut
off at its deadline, Ctrl-C, the missing Dask extra and the engine flags.

One two-worker LocalCluster serves the module (starting one costs seconds).  Shard
functions here travel to the workers by value (cloudpickle), since the workers cannot import
this test module.  Every wait is bounded; a shard that must hang waits on a file that the
test creates once it is done with the shard, so no worker stays busy after a test.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from aioctx_verify._engine_bench import CAMPAIGN_STEPS, strip_timing
from aioctx_verify.cli import main
from aioctx_verify.engine import (
    DASK_INSTALL,
    DaskEngine,
    Engine,
    EngineError,
    LocalEngine,
    Shard,
    ShardResult,
    make_engine,
    run_shards,
)
from aioctx_verify.stress.mutation._matrix import MatrixBudget, kill_matrix

cloudpickle = pytest.importorskip("cloudpickle")
cloudpickle.register_pickle_by_value(sys.modules[__name__])

#: The longest any shard here waits for a file (the tests end far sooner).
WAIT = 60.0


def _wait_for(*paths: Path, seconds: float = WAIT) -> bool:
    """Poll until one of ``paths`` exists (bounded)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if any(p.exists() for p in paths):
            return True
        time.sleep(0.01)
    return False


def _value(seed: int, i: int) -> dict[str, Any]:
    """A shard's value: a pure function of (seed, index)."""
    digest = hashlib.sha256(f"{seed}:{i}".encode()).hexdigest()[:16]
    return {"index": i, "digest": digest, "work": sum(range(i * 1000))}


def _gated(seed: int, i: int, gate: str | None) -> dict[str, Any]:
    """Shard 0 finishes only after the client has received shard 1's result (when
    ``gate`` is given: the client writes ``1.seen``), so results arrive out of order."""
    if gate is not None and i == 0:
        _wait_for(Path(gate) / "1.seen", seconds=30)
    return _value(seed, i)


def _killable(i: int, where: str) -> int:
    """Shard 0's first attempt publishes its pid and waits to be killed; a later attempt
    answers at once."""
    d = Path(where)
    if i == 0:
        with (d / "attempts").open("a") as f:
            f.write(f"{os.getpid()}\n")
        if len((d / "attempts").read_text().split()) == 1:
            tmp = d / "pid.tmp"
            tmp.write_text(str(os.getpid()))
            tmp.rename(d / "pid")
            _wait_for(d / "release")
    return i * 10


def _hangs(i: int, where: str) -> int:
    """Shard 1 hangs until the test releases it."""
    if i == 1:
        _wait_for(Path(where) / "release")
    return i


def _raises(i: int) -> int:
    if i == 2:
        raise ValueError("shard 2 refuses")
    return i


@pytest.fixture(scope="module")
def _cluster() -> Iterator[DaskEngine]:
    engine = DaskEngine(2)
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture
def dask2(_cluster: DaskEngine) -> DaskEngine:
    """The module's two-worker cluster, both workers up (a test before may have killed or
    restarted one: its nanny brings it back)."""
    _cluster.client.wait_for_workers(2, timeout=WAIT)
    return _cluster


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """A directory for the shards' files; released (hung shards end) after the test."""
    yield tmp_path
    (tmp_path / "release").write_text("")


def _values(results: list[ShardResult]) -> list[Any]:
    return [(r.index, r.status, r.value, r.attempts) for r in results]


# -- the same merged result ----------------------------------------------------------------
def test_local_engine_runs_every_shard_in_order() -> None:
    shards = [Shard("t", i, _value, (7, i)) for i in range(5)]
    run = run_shards(LocalEngine(), "t", shards)
    assert run.complete and not run.retried and run.notes() == []
    assert [r.value for r in run.ordered()] == [_value(7, i) for i in range(5)]
    assert all(r.worker.endswith(f":{os.getpid()}") for r in run.ordered())


def test_dask_merges_by_index_whatever_the_completion_order(
    dask2: DaskEngine, tmp_path: Path
) -> None:
    local = run_shards(LocalEngine(), "t", [Shard("t", i, _gated, (3, i, None))
                                            for i in range(6)])
    seen: list[int] = []

    def heard(r: ShardResult, _done: int, _total: int) -> None:
        seen.append(r.index)
        if r.index == 1:
            (tmp_path / "1.seen").write_text("")

    remote = run_shards(
        dask2, "t", [Shard("t", i, _gated, (3, i, str(tmp_path))) for i in range(6)],
        on_result=heard,
    )
    assert seen.index(1) < seen.index(0), seen  # shard 0 waited for shard 1's result
    assert _values(remote.ordered()) == _values(local.ordered())
    assert remote.complete and remote.notes() == []
    assert all(not r.worker.endswith(f":{os.getpid()}") for r in remote.ordered())


def test_an_exception_is_a_value_on_both_engines(dask2: DaskEngine) -> None:
    shards = [Shard("t", i, _raises, (i,)) for i in range(4)]
    for engine in (LocalEngine(), dask2):
        run = run_shards(engine, "t", shards)
        assert [r.status for r in run.ordered()] == ["ok", "ok", "error", "ok"]
        assert "ValueError: shard 2 refuses" in run.results[2].error
        assert run.notes() == ["shard t#2 raised: ValueError: shard 2 refuses"]


def _unpicklable(i: int) -> Any:
    return threading.Lock() if i == 1 else i


def test_a_value_that_does_not_pickle_is_the_shards_error(dask2: DaskEngine) -> None:
    """On a cluster a value travels back pickled: one that cannot is that shard's error,
    named, and the other shards' values come back."""
    run = run_shards(dask2, "t", [Shard("t", i, _unpicklable, (i,)) for i in range(3)])
    assert [r.status for r in run.ordered()] == ["ok", "error", "ok"]
    assert "t#1: its value (lock) does not pickle" in run.results[1].error
    assert "a shard must return plain data" in run.results[1].error


def test_the_kill_matrix_is_the_same_on_every_engine(dask2: DaskEngine) -> None:
    """Cells are work-budgeted: their verdicts, counterexample sizes and details do not
    depend on the engine or the number of workers (timings aside).  The seconds caps are
    wide, so that a loaded test machine does the same work, and an explorer's kill shrinks
    for a fixed number of replays (SHRINK_REPLAYS), its wall-time bound being only a cap."""
    budget = MatrixBudget("t", 40, 1, 20, "targeted", 60.0, 60.0)
    args: dict[str, Any] = {
        "checkers": ["model", "explore_random", "explore_pct", "explore_dfs"],
        "mutants": ["deleted-bh-runs", "non-home-thread-poll", "recursive-release-drops-all"],
    }

    def strip(d: Any) -> Any:
        if isinstance(d, dict):
            return {k: strip(v) for k, v in d.items() if k not in ("seconds", "seconds_to_kill")}
        if isinstance(d, list):
            return [strip(x) for x in d]
        return d

    local = kill_matrix(budget, 0, engine=LocalEngine(), **args)
    two = kill_matrix(budget, 0, engine=dask2, **args)
    with DaskEngine(1) as one_engine:
        one = kill_matrix(budget, 0, engine=one_engine, **args)
    assert local.errors() == [] and local.false_alarms == 0
    assert strip(two.to_json()) == strip(local.to_json())
    assert strip(one.to_json()) == strip(local.to_json())
    assert two.shards is not None and two.shards.complete and two.shards.notes() == []


# -- faults --------------------------------------------------------------------------------
def test_a_killed_worker_has_its_shard_retried_and_counted_once(
    dask2: DaskEngine, scratch: Path
) -> None:
    killed: list[int] = []

    def killer() -> None:
        if _wait_for(scratch / "pid", seconds=WAIT):
            pid = int((scratch / "pid").read_text())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    shards = [Shard("t", i, _killable, (i, str(scratch))) for i in range(4)]
    run = run_shards(dask2, "t", shards)
    t.join(timeout=WAIT)
    assert killed, "the shard never published its worker's pid"
    assert [r.value for r in run.ordered()] == [0, 10, 20, 30]  # once each
    r0 = run.results[0]
    assert r0.ok and r0.retried and r0.attempts == 2, r0
    assert [r.index for r in run.retried] == [0]
    pids = [int(p) for p in (scratch / "attempts").read_text().split()]
    assert len(pids) == 2 and pids[0] == killed[0] and pids[1] != killed[0]
    assert run.notes() == ["shard t#0 retried: 2 attempts, its result counted once"]


def test_a_hanging_shard_is_cut_off_at_its_deadline(dask2: DaskEngine, scratch: Path) -> None:
    shards = [Shard("t", i, _hangs, (i, str(scratch)), deadline=3.0 if i == 1 else None)
              for i in range(3)]
    t0 = time.monotonic()
    run = run_shards(dask2, "t", shards)
    assert time.monotonic() - t0 < WAIT / 2
    assert [r.status for r in run.ordered()] == ["ok", "deadline", "ok"]
    assert "deadline" in run.results[1].error and run.results[1].value is None
    assert run.notes()[0].startswith("shard t#1 cut off at its deadline")
    # The worker that ran it was restarted: the cluster answers again.
    again = run_shards(dask2, "t", [Shard("t", i, _value, (1, i)) for i in range(2)])
    assert again.complete


def test_the_local_engine_cuts_off_a_hanging_shard_too(scratch: Path) -> None:
    shards = [Shard("t", i, _hangs, (i, str(scratch)), deadline=0.5) for i in range(3)]
    t0 = time.monotonic()
    run = run_shards(LocalEngine(), "t", shards)
    assert time.monotonic() - t0 < WAIT / 2
    assert [r.status for r in run.ordered()] == ["ok", "deadline", "ok"]


@pytest.mark.parametrize("which", ["local", "dask"])
def test_ctrl_c_cancels_what_is_outstanding_and_keeps_what_finished(
    which: str, dask2: DaskEngine, scratch: Path
) -> None:
    engine: Engine = LocalEngine() if which == "local" else dask2

    def interrupt(r: ShardResult, _d: int, _n: int) -> None:
        raise KeyboardInterrupt

    shards = [Shard("t", i, _hangs, (i, str(scratch))) for i in (0, 1, 3, 4)]
    run = run_shards(engine, "t", shards, on_result=interrupt)
    assert run.interrupted and not run.complete
    finished = [r for r in run.ordered() if r.status == "ok"]
    assert len(finished) == 1 and finished[0].index in (0, 3, 4)
    assert all(r.status == "cancelled" for r in run.ordered() if r not in finished)
    assert sorted(run.results) == [0, 1, 3, 4]


def test_should_stop_starts_no_new_shard() -> None:
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 2

    run = run_shards(LocalEngine(), "t", [Shard("t", i, _value, (0, i)) for i in range(5)],
                     should_stop=stop)
    assert [r.status for r in run.ordered()] == ["ok", "ok"] + ["cancelled"] * 3
    assert run.stopped and not run.complete and not run.interrupted


def test_repeated_indexes_are_refused() -> None:
    with pytest.raises(ValueError, match="shard indexes repeat"):
        run_shards(LocalEngine(), "t", [Shard("t", 0, _value, (0, 0))] * 2)


# -- engine choice and flags ---------------------------------------------------------------
def test_make_engine_defaults_to_this_process(tmp_path: Path) -> None:
    assert isinstance(make_engine(), LocalEngine)
    with pytest.raises(EngineError, match="pick one"):
        make_engine(2, "tcp://127.0.0.1:1")
    with pytest.raises(EngineError, match="no such scheduler file"):
        make_engine(scheduler=str(tmp_path / "nope.json"))


def _one_line(r: Result, needle: str) -> None:
    assert r.exit_code == 2, (r.exit_code, r.output)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr


@pytest.mark.parametrize("cmd", ["run", "mutants"])
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--workers", "0"], "Invalid value for '--workers'"),
        (["--workers", "x"], "Invalid value for '--workers'"),
        (["--workers", "1.5"], "Invalid value for '--workers'"),
        (["--scheduler", "/nonexistent/scheduler.json"], "no such file"),
        (["--scheduler", "."], "a directory"),
        (["--scheduler", " "], "give tcp://HOST:PORT or a scheduler file"),
        (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "pick one"),
        (["--jobs", "2", "--workers", "3"], "older name of --workers"),
    ],
)
def test_bad_engine_flags_exit_2_on_one_line(
    cmd: str, args: list[str], needle: str, tmp_path: Path
) -> None:
    extra = ["--out", str(tmp_path / "out"), "--no-history"] if cmd == "run" else []
    r = CliRunner().invoke(main, [cmd, *extra, *args])
    _one_line(r, needle)
    assert r.stderr.startswith(f"aioctx-verify {cmd}: error: ")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--workers", "2", "--no-history"],
        ["run", "--scheduler", "tcp://127.0.0.1:1", "--no-history"],
        ["mutants", "--workers", "2", "--mutants", "deleted-bh-runs"],
        ["mutants", "--jobs", "2", "--mutants", "deleted-bh-runs"],
        ["bench", "--engine", "--quick"],
    ],
)
def test_the_missing_dask_extra_exits_2_naming_it(args: list[str], tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['distributed'] = None; sys.modules['dask'] = None\n"
        "from aioctx_verify.cli import main\n"
        f"main({[*args, '--out', str(tmp_path / 'out')] if args[0] == 'run' else args!r}, "
        "prog_name='aioctx-verify')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert DASK_INSTALL in lines[0] and lines[0].startswith(f"aioctx-verify {args[0]}: error:")
    assert not (tmp_path / "out").exists()


def test_an_unreachable_scheduler_is_an_engine_error() -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(EngineError, match="cannot reach the Dask scheduler"):
        DaskEngine(address=f"tcp://127.0.0.1:{port}", connect_timeout=2)


# -- a campaign's sharded steps --------------------------------------------------------------
#: Every step of a campaign whose work is not wall time: all but real-thread stress (its
#: trials are timing) and the kill matrix (its own test above).
_WORK_STEPS = CAMPAIGN_STEPS
#: Of those, the steps that run impl (the model and the proofs do not).
_IMPL_STEPS = ("random", "generated", "races", "hypothesis")


def _differ(a: Any, b: Any, where: str = "report") -> list[str]:
    """Where two reports differ (paths and the two values, shortened)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str)
                for d in _differ(a.get(k), b.get(k), f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in _differ(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {str(a)[:200]} != {str(b)[:200]}"]


@pytest.fixture
def fewer_programs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The smoke tier's generated step at 30 programs (the client cuts the shards, so
    the workers need no patch)."""
    import dataclasses

    from aioctx_verify.stress.explore import GEN_BUDGETS

    monkeypatch.setitem(GEN_BUDGETS, "smoke",
                        dataclasses.replace(GEN_BUDGETS["smoke"], programs=30))


def _campaign(engine: Engine, strategies: tuple[str, ...] = ("random", "dfs"),
              checkers: tuple[str, ...] = _WORK_STEPS) -> Any:
    from aioctx_verify._campaign import plan_campaign, run_campaign

    plan = plan_campaign(10, checkers=checkers, strategies=strategies, by_work=True)
    return strip_timing(run_campaign(plan, engine=engine).to_dict())


def _sharded_steps(engine: Engine) -> set[str]:
    """The steps whose shards ``engine`` ran (its ``on_progress`` hears every shard)."""
    heard: set[str] = set()
    engine.on_progress = lambda step, done, total, eta: heard.add(step)
    return heard


@pytest.mark.timeout(600)  # a hang guard: the test's bounds are its work
@pytest.mark.usefixtures("fewer_programs")
def test_a_campaign_by_work_is_the_same_on_every_engine(dask2: DaskEngine) -> None:
    """Every step but stress cut at its work, each one sharded: verdicts, counterexamples,
    proofs, coverage counts and the rest of report.json are identical in this process and on
    two workers (timing fields aside)."""
    local_engine = LocalEngine()
    ran_here = _sharded_steps(local_engine)
    local = _campaign(local_engine)
    ran_there = _sharded_steps(dask2)
    try:
        two = _campaign(dask2)
    finally:
        dask2.on_progress = None
    assert two == local, _differ(local, two)[:5]
    assert local["complete"] and local["coverage"]["schedules"] > 0
    assert {v["checker"] for v in local["verdicts"]} == {
        "model", "prove", "random", "dfs", "generated", "races", "hypothesis"}
    assert local["proofs"] and local["coverage"]["states"] > 0
    # every step ran as shards, on both engines
    assert ran_here == ran_there == {"model", "prove", "random", "dfs", "generated", "races",
                                     "hypothesis"}


class _MutatedWorkers:
    """A Dask worker plugin that applies a catalogue mutant in every worker (and takes it
    back on teardown), as the campaign's process applies it with ``Mutant.apply()``."""

    name = "aioctx-test-mutant"

    def __init__(self, mutant: str) -> None:
        self.mutant = mutant
        self._applied: Any = None

    def setup(self, worker: Any) -> None:
        from aioctx_verify.stress.mutation import CATALOGUE

        self._applied = next(m for m in CATALOGUE if m.name == self.mutant).apply()
        self._applied.__enter__()

    def teardown(self, worker: Any) -> None:
        if self._applied is not None:
            self._applied.__exit__(None, None, None)


@pytest.mark.timeout(900)  # a hang guard: the test's bounds are its work
def test_a_campaign_is_the_same_on_one_two_and_four_workers() -> None:
    """With a mutant that the generated programs catch: the same report (counterexamples,
    shrunk, included) in this process and on LocalClusters of two and four workers whose
    processes apply the mutant too."""
    from distributed.diagnostics.plugin import WorkerPlugin

    from aioctx_verify.stress.mutation import CATALOGUE

    plugin_class = type("MutatedWorkers", (_MutatedWorkers, WorkerPlugin), {})
    mutant = next(m for m in CATALOGUE if m.name == "deleted-bh-runs")
    with mutant.apply():
        local = _campaign(LocalEngine(), ("random",), _IMPL_STEPS)
    # generated catches it at program 90 of seed 0; whether the Hypothesis search does
    # depends on Hypothesis's version (its counterexamples, when there are any, are compared)
    assert any(c["checker"] == "generated" for c in local["counterexamples"])
    for n in (2, 4):
        with DaskEngine(n) as engine:
            engine.client.register_plugin(plugin_class("deleted-bh-runs"))
            there = _campaign(engine, ("random",), _IMPL_STEPS)
            assert there == local, (n, _differ(local, there)[:5])


def _a_failure_trace() -> Any:
    """A controlled run's trace (its steps hold code objects) made on a worker."""
    from aioctx_verify.impl import _iothread
    from aioctx_verify.stress.controlled._platform import Step

    return Step(1, 0, "lock", "iothread-registry#3", _iothread.main_context.__code__, 53)


def test_a_trace_from_a_worker_keeps_its_file_names(dask2: DaskEngine) -> None:
    """A counterexample's steps name impl's file and line also when the failure was found
    on a worker (a pickled code object would read ``<dynamic-code>``)."""
    local = run_shards(LocalEngine(), "t", [Shard("t", 0, _a_failure_trace)])
    there = run_shards(dask2, "t", [Shard("t", 0, _a_failure_trace)])
    assert local.results[0].value.where == "impl/_iothread.py:53 (main_context)"
    assert there.results[0].value.where == local.results[0].value.where


def test_stress_runs_one_shard_per_workload() -> None:
    """Real-thread stress is sharded too (one workload a shard); its trials are timing, so
    only its shape is compared: every workload reported, once."""
    from aioctx_verify._campaign import plan_campaign, run_campaign
    from aioctx_verify.stress.real import WORKLOADS

    engine = LocalEngine()
    heard: list[tuple[str, int, int]] = []
    engine.on_progress = lambda step, done, total, eta: heard.append((step, done, total))
    result = run_campaign(plan_campaign(3, checkers=("stress",)), engine=engine)
    names = [n for n in WORKLOADS if not n.startswith("test")]
    assert [h.workload for h in result.histograms] == names
    assert heard[-1] == ("stress", len(names), len(names))
    assert all(v.runs > 0 for v in result.verdicts)
