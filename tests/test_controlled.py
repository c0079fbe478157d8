"""The controlled scheduler: exhaustiveness, finding bugs, weak memory, shrinking, replay."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from aioctx_verify.stress.controlled._platform import ControlledPlatform
from aioctx_verify.stress.controlled._schedule import (
    InvalidScheduleError,
    Schedule,
    decode_tokens,
    encode_tokens,
)
from aioctx_verify.stress.controlled._strategies import (
    DataStrategy,
    DFSStrategy,
    PCTStrategy,
    RandomStrategy,
    ReplayStrategy,
)
from aioctx_verify.stress.explore._corpus import CORPUS, corpus_by_name
from aioctx_verify.stress.explore._explore import Budget, Program, explore, replay, run_schedule

PROGRAMS = corpus_by_name()


# -- (a) exhaustive DFS enumerates exactly the hand-computed interleavings -----------------
def _two_threads(p: ControlledPlatform) -> None:
    a = p.atomic(0, "a")
    b = p.atomic(0, "b")

    def worker() -> None:
        b.store(1)
        b.store(2)

    t = p.start_thread(worker, "w")
    a.store(1)
    a.store(2)
    t.join()


def test_dfs_enumerates_exactly_the_interleavings() -> None:
    # After the spawn, main runs (a1, a2, join) and the worker (b1, b2, exit): every
    # interleaving of the two sequences is one schedule, C(6, 3) = 20, each exactly once.
    prog = Program("two_threads", _two_threads)
    dfs = DFSStrategy(bound=100, prune=False)
    seen: list[tuple[tuple[int, str, str], ...]] = []
    while dfs.next_run():
        out = run_schedule(prog, dfs)
        assert out.verdict == "pass"
        seen.append(tuple((s.thread, s.op, s.obj) for s in out.trace[1:]))
    hand = set()
    main_ops = [(0, "store", "a#1"), (0, "store", "a#1"), (0, "join", "thread 1")]
    worker_ops = [(1, "store", "b#2"), (1, "store", "b#2"), (1, "exit", "thread 1")]
    for pos in itertools.combinations(range(6), 3):
        m, w = iter(main_ops), iter(worker_ops)
        hand.add(tuple(next(m) if i in pos else next(w) for i in range(6)))
    got = {s[:6] for s in seen}
    assert len(hand) == 20
    assert got == hand
    assert len(seen) == len(set(seen)) == 20


def test_dfs_with_pruning_finds_the_same_verdicts_with_fewer_runs() -> None:
    prog = PROGRAMS["lost_update"]
    full = explore(prog, strategy=DFSStrategy(2, prune=False), budget=Budget(5000), do_shrink=False)
    pruned = explore(
        prog, strategy=DFSStrategy(2, prune=True), budget=Budget(5000), do_shrink=False
    )
    assert full.verdict == pruned.verdict == "fail"
    safe_full = explore(
        PROGRAMS["atomic_increment"], strategy=DFSStrategy(2, prune=False), budget=Budget(5000)
    )
    safe_pruned = explore(
        PROGRAMS["atomic_increment"], strategy=DFSStrategy(2), budget=Budget(5000)
    )
    assert safe_full.exhausted and safe_pruned.exhausted
    assert safe_full.verdict == safe_pruned.verdict == "pass"
    assert safe_pruned.schedules < safe_full.schedules


# -- (b) lost update: found by every strategy, shrunk to one preemption --------------------
@pytest.mark.parametrize("strategy", ["random", "pct", "dfs", "hypothesis"])
def test_lost_update_found_and_shrunk_to_one_preemption(strategy: str) -> None:
    r = explore(PROGRAMS["lost_update"], strategy=strategy, budget=Budget(2000, 60))
    assert r.verdict == "fail"
    assert r.failure is not None
    assert r.failure.kind == "exception"
    assert "lost update" in r.failure.message
    assert r.failure.preemptions == 1
    assert r.failure.schedule.startswith("v1:lost_update:sc:")
    assert "Thread 1 (inc0)" in r.failure.report()


# -- (b2) shrinking reaches the proven minimum of preemptions ------------------------------
def _noisy_notify(p: ControlledPlatform) -> None:
    """The notify handshake with the waker's steps swapped, padded with work on a third
    cell by all three threads: random schedules fail with dozens of preemptions, while one
    suffices (the waker reads notify_me before the sleeper publishes it)."""
    notify_me = p.atomic(0, "notify_me")
    work = p.atomic(0, "work")
    noise = p.atomic(0, "noise")
    slept: list[bool] = []
    kicked: list[bool] = []

    def pad(n: int) -> None:
        for _ in range(n):
            noise.fetch_add(1)

    def sleeper() -> None:
        pad(5)
        notify_me.store(1)
        pad(5)
        if not work.load():
            slept.append(True)

    def waker() -> None:
        pad(5)
        if notify_me.load():
            kicked.append(True)
        pad(5)
        work.store(1)

    ts = [p.start_thread(sleeper, "sleeper"), p.start_thread(waker, "waker"),
          p.start_thread(lambda: pad(30), "busy")]
    for t in ts:
        t.join()
    assert not (slept and not kicked), "lost wake-up: the sleeper slept and nobody kicked it"


NOISY_NOTIFY = Program("noisy_notify", _noisy_notify, "bug", "sc", "padded notify order")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shrink_reaches_the_proven_minimum_of_preemptions(seed: int) -> None:
    r = explore(NOISY_NOTIFY, strategy="random", budget=Budget(2000, 3600), seed=seed)
    assert r.failure is not None, r.summary()
    f = r.failure
    assert f.original_preemptions > 5  # random search fails with many
    assert (f.preemptions, f.minimal) == (1, True), f.report()
    assert "no schedule with fewer preemptions fails (searched exhaustively)" in f.report()
    again = replay(f.schedule, {"noisy_notify": NOISY_NOTIFY})
    assert (again.verdict, again.message, again.preemptions) == ("fail", f.message, 1)


def test_shrink_claims_no_minimum_it_did_not_search() -> None:
    from aioctx_verify.stress.explore._explore import shrink

    r = explore(NOISY_NOTIFY, strategy="random", budget=Budget(2000, 3600), seed=0,
                do_shrink=False)
    assert r.failure is not None
    found = run_schedule(NOISY_NOTIFY, ReplayStrategy(Schedule.parse(r.failure.schedule).tokens),
                         "sc")
    f = shrink(NOISY_NOTIFY, found, "sc", search_runs=0)
    assert f.preemptions >= 1 and not f.minimal, f.report()


# -- (c) a notify handshake with its fence removed: tso/pso find it, sc cannot ----------
@pytest.mark.parametrize("memory", ["tso", "pso"])
@pytest.mark.parametrize("strategy", ["random", "pct", "dfs"])
def test_missing_fence_found_under_weak_memory(memory: str, strategy: str) -> None:
    r = explore(PROGRAMS[f"notify_no_fence_{memory}"], strategy=strategy, budget=Budget(3000, 60))
    assert r.verdict == "fail", r.summary()
    assert r.failure is not None and "lost wake-up" in r.failure.message
    # the schedule replays to the same failure under the same memory model
    assert Schedule.parse(r.failure.schedule).memory == memory


def test_missing_fence_is_correct_under_sc_exhaustively() -> None:
    r = explore(
        PROGRAMS["notify_no_fence_sc"],
        strategy=DFSStrategy(10, prune=False),
        budget=Budget(20000, 120),
    )
    assert r.exhausted and r.verdict == "pass", r.summary()


@pytest.mark.parametrize("memory", ["sc", "tso", "pso"])
def test_fenced_handshake_is_correct_exhaustively(memory: str) -> None:
    prog = PROGRAMS["notify_fenced_tso"]
    r = explore(prog, strategy=DFSStrategy(10), memory=memory, budget=Budget(50000, 120))
    assert r.exhausted and r.verdict == "pass", r.summary()


def test_message_passing_needs_wmb_only_under_pso() -> None:
    assert explore(PROGRAMS["mp_no_wmb_pso"], strategy="dfs", budget=Budget(3000)).verdict == "fail"
    for name in ("mp_no_wmb_tso", "mp_wmb_pso"):
        r = explore(PROGRAMS[name], strategy=DFSStrategy(10), budget=Budget(50000, 120))
        assert r.exhausted and r.verdict == "pass", r.summary()


# -- (d) IOThread blocked in aio_poll + an acquirer ---------------------------------------
def test_acquire_never_deadlocks_on_the_correct_impl() -> None:
    r = explore(PROGRAMS["iothread_acquire"], strategy=DFSStrategy(2), budget=Budget(100000, 120))
    assert r.verdict == "pass", r.summary()
    assert r.exhausted, "the bounded DFS must complete"
    assert r.max_preemptions == 2


def test_acquire_deadlocks_without_the_contention_callback() -> None:
    r = explore(PROGRAMS["iothread_acquire_no_kick"], strategy="dfs", budget=Budget(1000))
    assert r.verdict == "fail"
    assert r.failure is not None
    assert r.failure.kind == "lost_wakeup"
    assert "waits on poll" in r.failure.message and "_lock.py" in r.failure.message


# -- (e) replay reproduces every failure, and record -> replay gives the same trace --------
@pytest.mark.parametrize("name", [p.name for p in CORPUS if p.expected == "bug"])
def test_replay_reproduces_each_failure_100_times(name: str) -> None:
    prog = PROGRAMS[name]
    r = explore(prog, strategy="dfs", budget=Budget(3000, 60))
    assert r.failure is not None, r.summary()
    first = replay(r.failure.schedule, PROGRAMS)
    assert first.verdict == "fail" and first.kind == r.failure.kind
    for _ in range(99):
        again = replay(r.failure.schedule, PROGRAMS)
        assert (again.verdict, again.kind, again.trace) == (first.verdict, first.kind, first.trace)


@pytest.mark.parametrize("strategy", ["random", "pct", "dfs"])
@pytest.mark.parametrize("name", ["bh_cross_thread", "stop_the_world", "notify_fenced_pso"])
def test_record_replay_round_trip_on_every_strategy(strategy: str, name: str) -> None:
    prog = PROGRAMS[name]
    strat = {"random": RandomStrategy(7), "pct": PCTStrategy(7), "dfs": DFSStrategy(2)}[strategy]
    for _ in range(5):
        assert strat.next_run()
        out = run_schedule(prog, strat)
        sched = Schedule(prog.name, prog.memory, tuple(c.token for c in out.decisions))
        back = replay(str(sched), PROGRAMS)
        assert back.trace == out.trace
        assert back.verdict == out.verdict


@pytest.mark.parametrize("name", ["bh_cross_thread", "notify_fenced_pso"])
def test_record_replay_round_trip_with_drawn_decisions(name: str) -> None:
    # The Hypothesis strategy's decisions are integers drawn up front: any list will do.
    prog = PROGRAMS[name]
    for seed in range(5):
        draws = iter([(seed * 7 + i * 3) % 5 for i in range(400)])
        out = run_schedule(prog, DataStrategy(lambda n, d=draws: next(d, 0) % n))
        sched = Schedule(prog.name, prog.memory, tuple(c.token for c in out.decisions))
        back = replay(str(sched), PROGRAMS)
        assert back.trace == out.trace and back.verdict == out.verdict


def test_golden_schedule_is_stable() -> None:
    # The same text must reproduce the same run on every Python version CI runs.
    out = replay("v1:lost_update:sc:0*2,1,2*3", PROGRAMS)
    assert (out.verdict, out.kind, out.steps, out.preemptions) == ("fail", "exception", 12, 1)
    assert [(s.thread, s.op) for s in out.trace] == [
        (0, "spawn"),
        (0, "spawn"),
        (0, "join"),
        (1, "load"),
        (2, "load"),
        (2, "store"),
        (2, "exit"),
        (1, "store"),
        (1, "exit"),
        (0, "resume"),
        (0, "join"),
        (0, "load"),
        (0, "load"),  # the assertion message reads x again
    ]


def test_same_seed_same_runs() -> None:
    prog = PROGRAMS["bh_cross_thread"]
    a = explore(prog, strategy="random", seed=3, budget=Budget(20))
    b = explore(prog, strategy="random", seed=3, budget=Budget(20))
    assert a._hashes == b._hashes and a.steps == b.steps


# -- schedule strings --------------------------------------------------------------------
def test_schedule_string_round_trip() -> None:
    toks = ["0", "0", "1", "F1", "F1.2", "2", "2", "2"]
    assert encode_tokens(toks) == "0*2,1,F1,F1.2,2*3"
    assert decode_tokens(encode_tokens(toks)) == toks
    s = Schedule.parse("v1:lost_update:sc:0*2,1*2,2*3")
    assert str(s) == "v1:lost_update:sc:0*2,1*2,2*3"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "v1:x",
        "v2:lost_update:sc:0",
        "v1:lost update:sc:0",
        "v1:lost_update:arm:0",
        "v1:lost_update:sc:0,x",
        "v1:lost_update:sc:0*0",
        "v1:lost_update:sc:F",
        "v1:lost_update:sc:1*a",
    ],
)
def test_malformed_schedule_strings_are_refused(bad: str) -> None:
    with pytest.raises(InvalidScheduleError):
        Schedule.parse(bad)


def test_unknown_program_is_refused() -> None:
    with pytest.raises(InvalidScheduleError, match="unknown program 'nope'"):
        replay("v1:nope:sc:0", PROGRAMS)


def test_replay_names_the_first_divergence() -> None:
    out = run_schedule(PROGRAMS["lost_update"], ReplayStrategy(("0", "0", "7")))
    assert out.verdict == "inconclusive" and out.kind == "divergence"
    assert "decision 2" in out.message and "expected thread 7" in out.message
    assert "options were [" in out.message


def test_step_budget_is_inconclusive() -> None:
    def spin(p: ControlledPlatform) -> None:
        x = p.atomic(0, "x")
        while True:
            x.load()

    r = explore(Program("spin", spin, max_steps=500), strategy="random", budget=Budget(3))
    assert r.verdict == "inconclusive"
    assert "step budget" in r.reason


def test_deadlock_reports_every_thread_position() -> None:
    r = explore(PROGRAMS["abba_deadlock"], strategy="dfs", budget=Budget(1000))
    assert r.failure is not None and r.failure.kind == "deadlock"
    msg = r.failure.message
    assert "thread 1 (ab) waits on lock" in msg and "thread 2 (ba) waits on lock" in msg
    assert r.failure.preemptions == 1


@pytest.mark.parametrize("prog", [p for p in CORPUS if p.expected == "safe"], ids=lambda p: p.name)
def test_safe_corpus_raises_no_false_alarm(prog: Program) -> None:
    for strategy in ("random", "pct"):
        r = explore(prog, strategy=strategy, budget=Budget(60, 30))
        assert r.verdict == "pass", r.summary()


# -- pruning is sound: pruned DFS reaches every outcome unpruned DFS reaches --------------
def _outcomes(prog: Program, dfs: DFSStrategy, cap: int) -> tuple[set[object], bool]:
    """Run ``dfs`` on ``prog`` for at most ``cap`` complete runs; return the set of outcomes
    and whether the search was exhausted.

    An outcome is what a run makes observable: its verdict and failure kind, each thread's
    sequence of operations (operation and object, in the thread's own order), and the final
    value of every atomic cell the program created.  Two runs that end in the same state
    give the same outcome, so a sound pruning loses none of them.
    """
    box: list[list[object]] = []

    def fn(p: ControlledPlatform) -> None:
        cells: list[object] = []
        box.append(cells)
        make = p.atomic

        def atomic(initial: object, name: str = "") -> object:
            c = make(initial, name)
            cells.append(c)
            return c

        p.atomic = atomic  # type: ignore[method-assign,assignment]
        prog.fn(p)

    wrapped = dataclasses.replace(prog, fn=fn)
    seen: set[object] = set()
    runs = 0
    while runs < cap and dfs.next_run():
        out = run_schedule(wrapped, dfs)
        if out.verdict == "pruned":
            continue
        runs += 1
        per_thread = tuple(
            tuple((s.op, s.obj) for s in out.trace if s.thread == t)
            for t in range(len(out.thread_names))
        )
        memory = tuple((c.name, repr(c.value)) for c in box[-1])  # type: ignore[attr-defined]
        seen.add((out.verdict, out.kind, per_thread, memory))
    return seen, dfs.exhausted


# Unpruned DFS at bound 2 exhausts these quickly; the others get a schedule cap for the
# unpruned search (then the check is "every outcome of the first `cap` unpruned runs is
# reached by the exhaustive pruned search"), and stop_the_world (thousands of schedules
# even pruned at bound 2) is compared at bound 1.
_SAFE_CAP = {"bh_cross_thread": 200, "bh_cross_thread_tso": 200, "stop_the_world": 150}


@pytest.mark.parametrize("prog", [p for p in CORPUS if p.expected == "safe"], ids=lambda p: p.name)
def test_pruned_dfs_reaches_every_outcome_of_unpruned_dfs(prog: Program) -> None:
    bound = 1 if prog.name == "stop_the_world" else 2
    cap = _SAFE_CAP.get(prog.name, 100_000)
    pruned, pruned_done = _outcomes(prog, DFSStrategy(bound), 100_000)
    full, full_done = _outcomes(prog, DFSStrategy(bound, prune=False), cap)
    assert pruned_done, f"{prog.name}: the pruned DFS did not finish"
    missing = full - pruned
    assert not missing, (
        f"{prog.name}: pruning lost {len(missing)} outcome(s), e.g. {min(map(str, missing))}"
    )
    if full_done:
        assert pruned == full, f"{prog.name}: pruned DFS produced outcomes unpruned DFS did not"
    else:
        assert prog.name in _SAFE_CAP, f"{prog.name}: the unpruned DFS needs a schedule cap"


def test_a_finished_run_frees_its_platform() -> None:
    """impl's per-platform state (clocks, the IOThread registry) lives on the platform,
    so a run's platform, and the trace it holds, is freed once the run is over: a module-level
    weak dictionary of it kept every platform alive (a 1,000-seed nightly run grew past
    20 GB and was killed)."""
    import gc
    import weakref

    from aioctx_verify.impl import AioContext, IOThread, qemu
    from aioctx_verify.impl._timers import ClockType

    def program(p: ControlledPlatform) -> None:
        ctx = AioContext(p, name="c")
        t = qemu.aio_timer_new(ctx, ClockType.VIRTUAL, 1, lambda _o: None, None)
        qemu.timer_mod_ns(t, 1)
        it = IOThread(p, name="io").start()
        it.join(10.0)
        qemu.timer_free(t)
        ctx.unref()

    plat = ControlledPlatform(RandomStrategy(0))
    out = plat.run(program)
    assert out.verdict == "pass", out.message
    gone = weakref.ref(plat)
    del plat, out
    gc.collect()
    assert gone() is None, [type(r).__name__ for r in gc.get_referrers(gone())]


def test_a_clock_change_notifies_the_same_contexts_whatever_the_collector_did() -> None:
    """A finalized context's timer lists leave its clocks at once (timerlistgroup_deinit),
    not whenever the garbage collector frees the context: which contexts a clock change
    notifies (each a scheduling point) must not depend on the collector, or a schedule
    found in one process does not replay in another."""
    import gc

    from aioctx_verify.impl import AioContext, ClockType, clocks_for

    def program(p: ControlledPlatform) -> None:
        clocks = clocks_for(p)
        keep, drop = AioContext(p, name="keep"), AioContext(p, name="drop")
        before = len(clocks._lists)
        gc.disable()
        try:
            drop.unref()  # finalized; still in a reference cycle until a collection
            after_unref = len(clocks._lists)
            gc.collect()
            assert len(clocks._lists) == after_unref == before - len(ClockType)
        finally:
            gc.enable()
        clocks.enable(ClockType.VIRTUAL, False)
        clocks.enable(ClockType.VIRTUAL, True)  # notifies "keep" only
        keep.unref()
        assert not clocks._lists

    out = run_schedule(Program("clock_lists", program), RandomStrategy(0), "sc")
    assert out.verdict == "pass", out.message


def test_notify_without_the_mutex_raises_as_on_real_threads() -> None:
    """The seam's contract: a condition is notified with its mutex held.  The real platform
    (threading.Condition) raises RuntimeError otherwise, and so does a controlled run, so
    that a notify moved out of its critical section fails under either."""
    from aioctx_verify.impl import RealPlatform

    real = RealPlatform()
    rc = real.condition(real.mutex("m"))
    with pytest.raises(RuntimeError):
        rc.notify()

    def program(p: ControlledPlatform) -> None:
        c = p.condition(p.mutex("m"))
        c.notify_all()

    out = run_schedule(Program("notify_unlocked", program), RandomStrategy(0), "sc")
    assert out.verdict == "fail" and "without holding its mutex" in out.message, out.message


def _nested_with_contender(p: ControlledPlatform) -> None:
    """The owner nests ``with ctx:`` (the untraced fast path) while another thread
    acquires: the contender is not granted the context while the owner is nested."""
    from aioctx_verify.impl import AioContext

    ctx = AioContext(p, name="nest")
    inside = p.atomic(0, "inside")

    def contender() -> None:
        with ctx:
            assert inside.load() == 0, "granted while the owner was still nested"

    with ctx:
        t = p.start_thread(contender, "contender")
        with ctx:
            inside.store(1)
            with ctx:
                assert ctx._lock.depth == 3
            inside.store(0)
        assert ctx._lock.depth == 1
    t.join()
    ctx.unref()


@pytest.mark.parametrize("memory", ["sc", "tso", "c11"])
def test_nested_fast_path_under_contention_every_interleaving(memory: str) -> None:
    prog = Program("nested_with_contender", _nested_with_contender, memory=memory)
    r = explore(prog, strategy=DFSStrategy(2), budget=Budget(400, 60), do_shrink=False)
    assert r.verdict == "pass", r
