"""Generated programs over impl's whole public API (stress.explore's ``search_generated``).

Generation is a function of (seed, index); generated programs are well-formed (they pass
on real threads and, under every strategy and memory model, on the controlled platform
with the unmutated impl); a seeded bug (a catalogue mutant) is found, shrunk to a smaller
program, and the replay line its failure prints reproduces it from the line alone; a
campaign's ``generated`` step reports such a failure with the same line.  Every search is
bounded by work (programs x schedules); wall-time bounds are only safety nets.

The classes of behaviour the programs exercise on purpose each have a mutant of impl they
find: reference counting from several threads (a split increment or decrement, the
misuse check off by one, an unordered last unref: a race), read-only queries from other
threads (an unlocked ring read: a race; the queries of the correct impl race nowhere),
and the QEMU-named functions of ``impl.qemu`` (``aio_notify`` that does nothing).
"""

from __future__ import annotations

import gc
import re
import shlex
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
from click.testing import CliRunner

from aioctx_verify._campaign import plan_campaign, run_campaign
from aioctx_verify.cli import main
from aioctx_verify.impl import AioContext, ContextStatistics
from aioctx_verify.stress import InvalidScheduleError
from aioctx_verify.stress.controlled import find_races
from aioctx_verify.stress.explore import (
    Budget,
    GenBudget,
    GenFailure,
    GenProgram,
    OpKind,
    generate,
    generated_program,
    parse_gen_spec,
    replay_generated,
    run_real,
    search_generated,
)
from aioctx_verify.stress.explore import explore as explore_program
from aioctx_verify.stress.explore._gen_ops import (
    FACADE_KINDS,
    FOCUS_AREAS,
    GENERATOR_VERSION,
    QUERIES,
    Op,
    Query,
)
from aioctx_verify.stress.mutation import mutant_by_name
from aioctx_verify.stress.mutation._operators import GeneratedMutant, generate_mutants

#: A search that only the work bound ends (the time bound is a safety net).
UNBOUNDED = 1e9
MUTANTS = mutant_by_name()
#: The seeded bug the tests find: a P2 break every program that schedules a BH of an
#: IOThread's context can show (a mutant of the catalogue, not one the generator targets).
BUG = "schedule-takes-lock"
#: How it shows: a P2 monitor verdict, or LIVE when the lock's holder waits for the BH
#: (a thread-pool completion scheduled while its submitter polls holding the context).
BUG_PROPS = ("P2", "LIVE")
#: Another one for the campaign: a thread's one-shot into a context it does not run is
#: run inline (every program's scripts end with one into the main context).
CAMPAIGN_BUG = "current-ctx-misidentified"
LINE = re.compile(r"aioctx-verify replay (?:--mutant \S+ )?'gen:[^']*'")


@contextmanager
def applied(name: str) -> Iterator[None]:
    with MUTANTS[name].apply():
        yield


@pytest.fixture(autouse=True, scope="module")
def _collect_at_the_end() -> Iterator[None]:
    """Failures hold long traces: free them for the modules that run next in this worker
    (Hypothesis' first run in a thread walks the heap, and some later tests are timed)."""
    yield
    gc.collect()


def run_line(line: str) -> tuple[int, str]:
    argv = shlex.split(line)
    assert argv[:2] == ["aioctx-verify", "replay"], line
    r = CliRunner().invoke(main, argv[1:])
    assert "Traceback" not in r.output, r.output
    return r.exit_code, r.output


# -- generation -----------------------------------------------------------------------------
def test_generation_is_a_function_of_seed_and_index() -> None:
    for seed, index in [(0, 0), (3, 17), (-2, 5)]:
        a, b = generate(seed, index), generate(seed, index)
        assert a == b and a.listing() == b.listing()
    assert generate(0, 0) != generate(0, 1) and generate(0, 0) != generate(1, 0)


def test_small_scope_programs_stay_in_their_area() -> None:
    """A small-scope program is two threads and one IOThread, and every operation it makes
    is of its area (no fallback to the whole API when a draw finds its options off)."""
    seen: dict[str, int] = {}
    for i in range(300):
        prog = generate(11, i)
        area = prog.setup.focus
        if area is None:
            continue
        seen[area] = seen.get(area, 0) + 1
        assert prog.setup.iothreads == 1 and len(prog.scripts) == 2, prog.listing()
        stray = {op.kind for op in prog.ops()} - FOCUS_AREAS[area]
        assert not stray, (area, stray, prog.listing())
        if area == "timers":  # one clock, milliseconds: lateness beyond the oracle's slack
            io_timers = [t for t in prog.setup.timers if t.ctx == 0]
            assert len(io_timers) == 3 and len({t.clock for t in io_timers}) == 1
            assert {t.scale for t in io_timers} == {1_000_000}
    assert set(seen) == set(FOCUS_AREAS) and min(seen.values()) >= 10, seen


def test_programs_cover_the_api_and_stay_in_shape() -> None:
    kinds: set[OpKind] = set()
    behaviors: set[str] = set()
    queries: set[int] = set()
    calls: set[tuple[OpKind, bool]] = set()
    transient = 0
    small: set[str | None] = set()
    for i in range(200):  # half are small-scope programs
        prog = generate(7, i)
        small.add(prog.setup.focus)
        assert 2 <= prog.threads <= 4 and prog.size >= 2
        assert [op.uid for op in prog.ops()] == list(range(prog.size))  # pre-order numbers
        kinds |= {op.kind for op in prog.ops()}
        behaviors |= {b.behavior for b in prog.setup.bhs}
        queries |= {op.b for op in prog.ops() if op.kind is OpKind.QUERY}
        calls |= {(op.kind, op.q) for op in prog.ops()}
        transient += prog.setup.x in prog.used().ctxs
    assert kinds == set(OpKind)
    assert small == {None, *FOCUS_AREAS}
    assert behaviors == {"plain", "resched", "chain", "nested", "notify", "timer", "toggle",
                         "selfdel"}
    assert queries == set(QUERIES)
    # Each kind that has a QEMU-named function is made both through it and through the
    # method, and says which; the others never claim to use impl.qemu.
    assert calls >= {(k, q) for k in FACADE_KINDS for q in (False, True)}
    assert not {k for k, q in calls if q} - FACADE_KINDS
    assert transient >= 10
    prog = next(p for p in map(lambda i: generate(7, i), range(100))
                if any(op.q for op in p.ops() if op.kind is OpKind.SCHED)
                and any(not op.q for op in p.ops() if op.kind is OpKind.SCHED))
    text = prog.listing()
    assert "qemu_bh_schedule(bh" in text and ".schedule()" in text


def _threads(prog: GenProgram) -> Iterator[tuple[int, Op, tuple[int, ...]]]:
    """Every kept operation with its thread and the contexts that thread holds there."""

    def walk(k: int, op: Op, held: tuple[int, ...]) -> Iterator[tuple[int, Op, tuple[int, ...]]]:
        yield k, op, held
        inner = held
        if op.kind is OpKind.LOCK:
            inner = (*held, op.a)
        elif op.kind is OpKind.STW:
            inner = (*held, *range(prog.setup.iothreads))
        for o in op.body:
            yield from walk(k, o, inner)

    for k, script in enumerate(prog.scripts):
        for op in script:
            yield from walk(k, op, ())


def test_programs_keep_the_reference_and_query_rules() -> None:
    """The rules of _gen_ops' docstring that make references and queries well-formed."""
    unheld_nested = timer_queries = pool_reprs = 0
    for seed, i in [(s, i) for s in (0, 7) for i in range(80)]:
        prog = generate(seed, i)
        st = prog.setup
        ops = list(_threads(prog))
        x = st.x
        # No thread takes a reference of a misuse target.
        refd = {op.a for _, op, _ in ops if op.kind is OpKind.REF}
        assert not refd & {op.a for _, op, _ in ops if op.kind is OpKind.MISUSE}, prog.spec
        # Any thread reads any context's lock statistics, also of one that some thread
        # acquires nested (a snapshot reads the depth for its owner only: generator 3).
        nested = {op.a for _, op, held in ops if op.kind is OpKind.LOCK and op.a in held}
        for k, op, held in ops:
            if op.kind is OpKind.QUERY and op.b in (Query.STATS, Query.SNAPSHOT):
                unheld_nested += op.a not in held and op.a in nested
            timer_queries += op.kind is OpKind.QUERY and op.b == Query.TIMER
            pool_reprs += op.kind is OpKind.QUERY and op.b == Query.POOLREPR
            if op.kind is OpKind.QUERY and op.b == Query.BH and st.bhs[op.a].owner is not None:
                assert st.bhs[op.a].owner == k and st.bhs[op.a].behavior != "selfdel"
            if op.kind is OpKind.QUERY and op.b == Query.POOL:
                assert op.a in held, (prog.spec, op.uid)  # only a holder asks for the pool
            if op.kind is OpKind.KICKW:
                assert not held and op.a <= st.main and (op.a != st.main or k != 0)
            # x: a leaf of the lock order, used by its users only, up to their drop.
            if op.kind is OpKind.LOCK and op.a == x:
                assert not held and not any(o.kind is OpKind.LOCK for o in op.body)
            if op.kind is OpKind.LOCK and op.a != x:
                assert x not in held
        for k, script in enumerate(prog.scripts):
            uses = [(n, op) for n, top in enumerate(script) for op in top.walk()
                    if (op.kind is OpKind.UNREF)
                    or (op.a == x and op.kind is not OpKind.QUERY
                        and op.kind in (OpKind.LOCK, OpKind.REF, OpKind.EXT, OpKind.NOTIFY))
                    or (op.kind is OpKind.QUERY and op.b not in (Query.BH, Query.QUEUED,
                                                                 Query.MAIN, Query.LIVE,
                                                                 Query.TIMER)
                        and op.a == x)]
            if k not in st.xusers:
                assert not uses, (prog.spec, k)
                continue
            drops = [n for n, op in uses if op.kind is OpKind.UNREF]
            assert len(drops) == 1 and script[drops[0]].kind is OpKind.UNREF, (prog.spec, k)
            assert all(n < drops[0] for n, op in uses if op.kind is not OpKind.UNREF)
    # The queries once held back for races in impl are drawn now.
    assert unheld_nested and timer_queries and pool_reprs, (unheld_nested, timer_queries,
                                                            pool_reprs)


def test_dropped_operations_round_trip_through_the_spec() -> None:
    prog = generate(4, 2)
    cut = prog.without({op.uid for op in prog.scripts[-1]} | {0})
    assert cut.size < prog.size and cut.keep is not None
    back, sched = parse_gen_spec(f"{cut.spec};v1:{cut.name}:tso:0")
    assert back == cut and sched.memory == "tso"
    # Dropping a container drops its body: no kept operation is orphaned.
    kept = {op.uid for op in cut.ops()}
    assert kept == cut.keep


V = GENERATOR_VERSION


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("gen:seed=1", "malformed generated-program spec"),
        (f"gen:seed=1,index=2,keep=3-1;v1:gen{V}.s1.i2:sc:0", "bad range"),
        (f"gen:seed=1,index=2;v1:gen{V}.s1.i3:sc:0", f"the spec generates 'gen{V}.s1.i2'"),
        (f"gen:seed=1,index=2;v1:gen{V - 1}.s1.i2:sc:0", "this version of the generator"),
        (f"gen:seed=1,index=2;v1:gen{V}.s1.i2:arm:0", "bad memory model"),
    ],
)
def test_bad_gen_specs_exit_2_with_one_line(spec: str, needle: str) -> None:
    with pytest.raises(InvalidScheduleError):
        parse_gen_spec(spec)
    r = CliRunner().invoke(main, ["replay", spec])
    assert r.exit_code == 2 and needle in r.stderr, r.output
    assert len(r.stderr.strip().splitlines()) == 1


# -- the correct impl -----------------------------------------------------------------------
def test_generated_programs_run_on_real_threads_without_misuse() -> None:
    verdicts = []
    for i in range(5):
        rep = run_real(generate(11, i), wait=10.0)
        assert rep.verdict != "fail", rep.describe()
        verdicts.append(rep.verdict)
    # A run whose waits ran out with nothing seen stuck is inconclusive (a loaded machine),
    # never a failure; five in a row would mean the runner cannot finish a program.
    assert "pass" in verdicts, verdicts


@pytest.mark.parametrize("strategy", ["random", "pct", "dfs", "conflict"])
def test_the_correct_impl_passes_under_every_memory_model(strategy: str) -> None:
    budget = GenBudget(programs=6, schedules=2, seconds=UNBOUNDED)
    r = search_generated(21, budget, strategies=(strategy,), do_shrink=False)
    assert r.verdict == "pass", r.summary()
    assert r.programs == 6 and r.inconclusive_runs == 0
    from aioctx_verify.stress.explore import MEMORIES
    from aioctx_verify.stress.explore._generated import SMALL_SCHEDULES

    n = len(MEMORIES)  # sc, tso, pso, c11
    # work-bounded (DFS may exhaust a program); a small-scope program gets more schedules
    most = sum(n * 2 * (SMALL_SCHEDULES if generate(21, i).setup.focus else 1) for i in range(6))
    assert 6 * n <= r.runs <= most


def test_queries_from_other_threads_race_nowhere_on_the_correct_impl() -> None:
    """Read-only queries run from any thread; with the race detector on, the correct impl
    shows no race (statistics and debug_snapshot read the BH list under its lock and the
    handlers through their published view); a statistics() that walks the BH list
    unlocked, as it once did, races with the BHs other threads add."""
    progs = [p for p in (generate(0, i) for i in range(40))
             if len({k for k, op, _ in _threads(p) if op.kind is OpKind.QUERY}) >= 2][:10]
    assert len(progs) == 10
    for prog in progs:
        r = find_races(generated_program(prog), strategy="random", schedules=3, seed=1)
        assert r.races == [], r.summary()

    real = AioContext.statistics

    def unlocked(self: AioContext) -> ContextStatistics:
        _ = [b.scheduled.load() for b in self._bhs]  # the old walk, without _bh_lock
        return real(self)

    with mock.patch.object(AioContext, "statistics", unlocked):
        fields: set[str] = set()
        for i in range(40):
            prog = generate(0, i)
            if not any(op.kind is OpKind.QUERY and op.b == Query.STATS for op in prog.ops()):
                continue
            fields |= {x.field for x in find_races(generated_program(prog), strategy="random",
                                                   schedules=3, seed=1).races}
            if fields:
                break
    assert fields & {"AioContext._bhs", "AioContext._bhs[]"}, fields


# -- the classes of behaviour each find their mutants -------------------------------------------
def _mutant(operator: str, function: str, variant: str, text: str = "") -> GeneratedMutant:
    """The generated mutant of ``function`` (found by its text, not its line number)."""
    found = [m for m in generate_mutants([operator]) if m.function == function
             and m.variant == variant and text in m.key]
    assert len(found) == 1, [m.name for m in found]
    return found[0]


def _indices(pred: Callable[[GenProgram], bool], n: int, seed: int = 0) -> list[int]:
    return [i for i in range(300) if pred(generate(seed, i))][:n]


def _shared_refs(p: GenProgram) -> bool:
    """Two threads take references of one context."""
    per = Counter(a for a, _ in {(op.a, k) for k, op, _ in _threads(p) if op.kind is OpKind.REF})
    return max(per.values(), default=0) >= 2


def _misuse(p: GenProgram) -> bool:
    return any(op.kind is OpKind.MISUSE or (op.kind is OpKind.ITER and op.b) for op in p.ops())


def _kick_via_qemu(p: GenProgram) -> bool:
    return any(op.kind is OpKind.KICKW and op.q for op in p.ops())


@pytest.mark.parametrize(
    ("mutant", "pred", "props"),
    [
        # A lost increment: a context closed under a thread that holds a reference.
        (("rmw-split", "AioContext.ref", "load-store"), _shared_refs, {"P3", "LIVE"}),
        # A lost decrement: a context never closed (or one closed too early).
        (("rmw-split", "AioContext.unref", "load-store"), _shared_refs, {"P3", "LIVE"}),
        # The misuse check off: the last reference of a running IOThread's context dropped.
        (("off-by-one", "AioContext.unref", "boundary"), _misuse, {"P3"}),
        # impl.qemu's aio_notify does nothing: a kick of a loop asleep is lost.
        (("notify-drop", "aio_notify", "aio_notify"), _kick_via_qemu, {"LIVE"}),
    ],
    ids=["ref-split", "unref-split", "unref-misuse-check", "qemu-aio_notify"],
)
def test_each_class_finds_its_mutant(
    mutant: tuple[str, str, str], pred: Callable[[GenProgram], bool], props: set[str]
) -> None:
    m = _mutant(*mutant)
    with m.apply():
        r = search_generated(0, GenBudget(programs=8, schedules=4, seconds=UNBOUNDED),
                             indices=_indices(pred, 8), do_shrink=False)
    assert r.verdict == "fail" and r.failure is not None, r.summary()
    assert r.failure.prop in props, r.failure.report()


def test_the_unmutated_impl_passes_those_programs() -> None:
    idx = sorted({*_indices(_shared_refs, 8), *_indices(_misuse, 8), *_indices(_kick_via_qemu, 8)})
    r = search_generated(0, GenBudget(programs=len(idx), schedules=2, seconds=UNBOUNDED),
                         indices=idx, do_shrink=False)
    assert r.verdict == "pass", r.summary()


@pytest.mark.parametrize(
    ("mutant", "pred", "field"),
    [
        # The last unref no longer acquires the other users' releases: _finalize races with
        # what they did before dropping theirs.
        (("order-relax", "AioContext.unref", "relaxed-default", "fetch_add"),
         lambda p: len(p.setup.xusers) >= 2 and p.setup.x in p.used().ctxs, None),
        # DataplaneDevice.queued reads the ring without its lock.
        (("acqrel-drop", "DataplaneDevice.queued", "with"),
         lambda p: any(op.kind is OpKind.QUERY and op.b == Query.QUEUED for op in p.ops())
         and any(op.kind is OpKind.KICK for op in p.ops()), "DataplaneDevice._avail[]"),
    ],
    ids=["unordered-last-unref", "unlocked-queued"],
)
def test_the_race_detector_finds_the_unordered_mutants(
    mutant: tuple[str, str, str, str], pred: Callable[[GenProgram], bool], field: str | None
) -> None:
    m = _mutant(*mutant)
    fields: set[str] = set()
    with m.apply():
        for i in _indices(pred, 8):
            r = find_races(generated_program(generate(0, i)), strategy="random", schedules=4,
                           seed=i)
            fields |= {x.field for x in r.races}
            if fields:
                break
    assert fields, "no race"
    assert field is None or field in fields, fields


# -- a seeded bug ---------------------------------------------------------------------------
@pytest.fixture
def found() -> GenFailure:
    """schedule-takes-lock (qemu_bh_schedule takes the context lock) found from seed 0."""
    with applied(BUG):
        r = search_generated(0, GenBudget(programs=12, schedules=2, seconds=UNBOUNDED,
                                          shrink_seconds=20.0))
    assert r.verdict == "fail" and r.failure is not None, r.summary()
    return r.failure


def test_a_seeded_bug_is_found_and_its_line_reproduces_it(found: GenFailure) -> None:
    assert found.prop in BUG_PROPS, found.report()
    report = found.report()
    lines = LINE.findall(report)
    assert lines == [found.replay_command()]
    line = found.replay_command(BUG)
    assert line.startswith(f"aioctx-verify replay --mutant {BUG} 'gen:seed=0,index=")
    code, out = run_line(line)
    assert code == 1, out
    assert re.search(rf"^property: {found.prop}$", out, re.M), out
    assert found.program is not None and found.program.listing() in out
    # The mutant is what fails it: without it the run passes or cannot follow the schedule.
    code, out = run_line(line.replace(f"--mutant {BUG} ", ""))
    assert code != 1, out


def test_shrinking_reduces_the_program(found: GenFailure) -> None:
    assert found.program is not None
    assert found.program.size < found.original_size, found.report()
    assert found.program.threads <= found.original_threads
    with applied(BUG):
        again = replay_generated(found.spec)
    assert again.outcome.verdict == "fail" and again.prop == found.prop
    assert again.program == found.program


def test_the_campaign_step_prints_a_line_that_reproduces() -> None:
    """A campaign checks impl as it is: with a mutant applied around it, the step's
    counterexample replays with that mutant applied around the replay."""
    plan = plan_campaign(30, checkers=("generated",))
    with applied(CAMPAIGN_BUG):
        result = run_campaign(plan)
    fails = [v for v in result.verdicts if v.checker == "generated" and v.verdict == "fail"]
    assert fails, result.verdicts
    cx = [c for c in result.counterexamples if c.checker == "generated"]
    assert cx and cx[0].replay_command is not None
    assert cx[0].replay_command.startswith("aioctx-verify replay 'gen:seed=0,index=")
    with applied(CAMPAIGN_BUG):
        code, out = run_line(cx[0].replay_command)
    assert code == 1 and f"property: {cx[0].property}" in out, out


def test_a_real_run_given_no_time_is_inconclusive_not_a_failure() -> None:
    """Every wait bounded at 1 ms: the waits run out on the correct impl with nothing stuck,
    which is a slow machine's signature, so the run is inconclusive (never a LIVE failure,
    and no end-of-run monitor rule judges the run that did not end)."""
    for i in range(4):
        rep = run_real(generate(11, i), wait=0.001, watchdog=120.0)
        assert rep.verdict != "fail", rep.describe()
        assert not rep.watchdog_fired
    # the watchdog too (the waits generous, the whole run bounded at 1 ms): outliving it
    # with nothing stuck is inconclusive
    rep = run_real(generate(11, 0), wait=60.0, watchdog=0.001)
    assert rep.verdict == "inconclusive" and rep.watchdog_fired, rep.describe()


def test_a_budget_of_combos_takes_the_combinations_in_turn() -> None:
    """``GenBudget.combos``: each swarm program runs ``combos`` of the strategy x memory
    combinations, the program of the next index the next ones, so four consecutive
    programs of four cover all sixteen (the smoke budget's trade: more programs in the same
    time).  Small-scope programs run under every strategy instead (tested apart)."""
    import sys

    from aioctx_verify.stress.explore import MEMORIES, STRATEGIES

    first = next(a for a in range(200)
                 if all(generate(21, a + d).setup.focus is None for d in range(4)))
    budget = GenBudget(programs=4, schedules=1, seconds=UNBOUNDED, combos=4)
    gen = sys.modules[search_generated.__module__]
    real_explore = gen.explore
    seen: list[tuple[str, str]] = []

    def spy(program: object, **kw: object) -> object:
        seen.append((str(getattr(kw["strategy"], "name", kw["strategy"])), str(kw["memory"])))
        return real_explore(program, **kw)

    with mock.patch.object(gen, "explore", spy):
        r = search_generated(21, budget, first=first, do_shrink=False)
    assert r.verdict == "pass" and r.programs == 4 and r.complete == 4
    assert len(seen) == 16
    assert set(seen) == {(s, m) for s in STRATEGIES for m in MEMORIES}


def test_a_seed_makes_the_same_programs_in_every_process() -> None:
    """Generation must not follow string hashes (randomized per process): the swarm's draw
    once iterated a set of enum members, and a ``gen:`` line printed by one process named
    another program in the next."""
    import hashlib
    import os
    import subprocess
    import sys

    code = (
        "import hashlib; from aioctx_verify.stress.explore import generate; "
        "print(hashlib.sha256(''.join(generate(7, i).listing() for i in range(20))"
        ".encode()).hexdigest())"
    )
    digests = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=120, check=True)
        digests.add(out.stdout.strip())
    here = hashlib.sha256(
        "".join(generate(7, i).listing() for i in range(20)).encode()
    ).hexdigest()
    assert digests == {here}


def test_time_passes_before_the_end_phase_wakes_the_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    """Restoring the clocks at the end notifies every context: a loop that slept through
    a timer's deadline would be woken there and the lost wake-up never seen.  So the end
    phase first lets virtual time pass until the IOThreads' timers on running clocks ran.
    Shown with a timer list whose ``mod`` never notifies: a small timers program fails with
    the step, and passes without it (and on the correct impl)."""
    from aioctx_verify.stress.explore import _gen_run
    from tests.test_oracles import timer_mod_without_kick

    prog = generate(0, 22)
    assert prog.setup.focus == "timers"

    def search() -> str:
        r = explore_program(generated_program(prog), strategy="pct",
                            budget=Budget(6, UNBOUNDED),
                            seed=0, do_shrink=False)
        return r.verdict

    assert search() == "pass"
    with timer_mod_without_kick():
        assert search() == "fail"
        monkeypatch.setattr(_gen_run.ProgramRun, "_timers_come_due", lambda self: None)
        assert search() == "pass"


def test_the_end_phase_waits_for_a_timer_a_late_bh_armed() -> None:
    """The end phase's flush round may end the wait for owed callbacks when nothing but
    its flushes ran; a timer armed by a BH still pending when the wait was satisfied is
    owed all the same and needs time to pass, not the verdict "owed at the end" (a false
    alarm on the correct impl, found at seed 7 of the smoke budget; this program hits it
    within 20 random schedules on the old end phase)."""
    from aioctx_verify.impl import ClockType
    from aioctx_verify.stress.explore._gen_ops import BHSpec, Setup, TimerSpec

    setup = Setup(iothreads=1, bhs=(BHSpec(0, "chain", 1), BHSpec(0, "timer", 0)),
                  timers=(TimerSpec(0, ClockType.REALTIME, 1_000_000),), notifiers=(),
                  dataplane=False, control=0)
    prog = GenProgram(99, 0, setup, ((Op(OpKind.SCHED, 0),), ()))
    r = explore_program(generated_program(prog), strategy="random", budget=Budget(60, UNBOUNDED),
                        seed=0, do_shrink=False)
    assert r.verdict == "pass" and r.schedules == 60, r.failure and r.failure.message


def test_a_small_scope_program_runs_under_every_strategy(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``combos`` (the smoke budget), a swarm program runs under one strategy and a
    small-scope one, cheap, under each strategy, each with another memory model, and for
    ``SMALL_SCHEDULES`` times the budget's schedules."""
    from aioctx_verify.stress.explore import _generated

    seen: list[tuple[str, str]] = []
    asked: list[int] = []
    real = _generated.explore

    def spy(program: Any, **kw: Any) -> Any:
        seen.append((getattr(kw["strategy"], "name", kw["strategy"]), kw["memory"]))
        asked.append(kw["budget"].schedules)
        return real(program, **kw)

    monkeypatch.setattr(_generated, "explore", spy)
    small = next(i for i in range(50) if generate(0, i).setup.focus is not None)
    swarm = next(i for i in range(50) if generate(0, i).setup.focus is None)
    budget = GenBudget(programs=1, schedules=1, seconds=UNBOUNDED, combos=4)
    search_generated(0, budget, indices=[small], do_shrink=False)
    assert [s for s, _ in seen] == list(_generated.STRATEGIES) and len({m for _, m in seen}) == 4
    assert asked == [_generated.SMALL_SCHEDULES] * 4  # cheap runs: more schedules each
    seen.clear()
    asked.clear()
    search_generated(0, budget, indices=[swarm], do_shrink=False)
    assert len(seen) == 4 and len({s for s, _ in seen}) == 1 and asked == [1] * 4


def _relaxed_external() -> tuple[type, str, Any]:
    from aioctx_verify.impl import Ordering

    return AioContext, "external_disabled", property(
        lambda self: bool(self._external_disable_cnt.load(Ordering.RELAXED)))


def _relaxed_is_scheduled() -> tuple[type, str, Any]:
    from aioctx_verify.impl import BH, Ordering

    return BH, "is_scheduled", property(lambda self: bool(self.scheduled.load(Ordering.RELAXED)))


def _relaxed_handler_view() -> tuple[type, str, Any]:
    from aioctx_verify.impl import Ordering

    def publish(self: Any) -> None:
        view = tuple((n.fd, n.io_read is not None, n.is_external) for n in self._handlers
                     if not n.deleted and not n.is_ctx_notifier)
        self._handler_view.store(view, Ordering.RELAXED)

    return AioContext, "_publish_handlers", publish


@pytest.mark.parametrize(
    ("index", "kind", "query", "broken", "strategy", "schedules", "rule"),
    [
        # a thread that reads external_disabled from the write of another thread's disable
        # (or a later one: the count's writes are all seq_cst RMWs, one release sequence,
        # and the query is a seq_cst load) sees what that thread wrote before the disable
        (283, OpKind.EXT, Query.EXTERNAL, _relaxed_external, "random", 40,
         "P3 external-publishes"),
        # a thread that reads a BH's flag with is_scheduled from a write in the release
        # sequence of another thread's qemu_bh_schedule sees what it published before
        (1, None, Query.BH, _relaxed_is_scheduled, "random", 60, "P2 schedule-publishes"),
        # a thread whose statistics() read the handler view another thread's handler change
        # stored (a release store; the query's load acquires) sees what it wrote before
        (36, OpKind.HADD, Query.STATS, _relaxed_handler_view, "random", 120,
         "P3 handlers-publish"),
    ],
    ids=["external_disabled", "is_scheduled", "handler-view"],
)
def test_a_query_synchronises_with_the_publication_it_observes(
    index: int, kind: OpKind | None, query: Query, broken: Callable[[], tuple[type, str, Any]],
    strategy: str, schedules: int, rule: str,
) -> None:
    """c11 message passing through impl's seq_cst and acquire queries: the correct impl
    passes a search of a program where the query may follow another thread's publishing
    call; the same search with the query's load (or the publishing store) relaxed fails
    the publication check."""
    prog = generate(0, index)
    assert kind is None or any(o.kind is kind for o in prog.ops())
    assert any(o.kind is OpKind.QUERY and o.b == query for o in prog.ops())

    def search() -> Any:
        return explore_program(generated_program(prog, "c11"), strategy=strategy,
                               budget=Budget(schedules, UNBOUNDED), seed=0, do_shrink=False)

    r = search()
    assert r.verdict == "pass", r.failure and r.failure.message
    with mock.patch.object(*broken()):
        r = search()
    assert r.verdict == "fail" and r.failure is not None
    assert rule in r.failure.message, r.failure.message


def test_a_lock_snapshot_with_a_count_below_zero_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every statistics() / debug_snapshot() is checked for counts in their domain: a
    lock's waiters, served tickets and depth are never below zero, however racy the read
    (each is read under the lock's mutex).  A statistics() that reads the owner before it
    takes the mutex can count -1 waiters; here one that always does is caught, and the
    correct one passes."""
    from aioctx_verify.impl import RFifoLock
    from aioctx_verify.stress.explore._gen_ops import Query, Setup

    setup = Setup(iothreads=1, bhs=(), timers=(), notifiers=(), dataplane=False, control=0)
    prog = GenProgram(98, 0, setup, (
        (Op(OpKind.LOCK, 0, 0, (Op(OpKind.NOTIFY, 0),)),),
        (Op(OpKind.QUERY, 0, int(Query.STATS)), Op(OpKind.QUERY, 0, int(Query.SNAPSHOT))),
    ))

    def search() -> str:
        r = explore_program(generated_program(prog), strategy="random",
                            budget=Budget(8, UNBOUNDED), seed=0, do_shrink=False)
        assert r.verdict == "pass" or "below zero" in (r.failure.message if r.failure else "")
        return r.verdict

    assert search() == "pass"
    real = RFifoLock.statistics

    def off_by_one(self: RFifoLock) -> object:
        s = real(self)
        return type(s)(s.owner, s.depth, s.waiters - 1, s.served)

    monkeypatch.setattr(RFifoLock, "statistics", off_by_one)
    assert search() == "fail"


#: A schedule of program 234 under c11 where T0's qemu_bh_schedule of bh0 wrote the flag,
#: then fenced in aio_notify and so saw a later plain store of the flag by another thread
#: (a cancel); the oracle took that store for T0's own write and required a reader past
#: it to see T0's publication, a false alarm on the correct impl.
_I234 = (
    "1*6,0*3,1*7,0*4,2,0*2,2*3,0,2*2,0*2,2*2,0,2,0,2,0*2,2,0,2*5,0*2,2,0*4,2,0*4,2*2,0*4,"
    "4,2,0,3,2,0,2,0,2*2,3,0*2,3,0*3,2,4,2,0,3,2,3,0,3,4,3,0*2,3*2,0,1,0,2,4*2,2,1*2,2,1,"
    "0,4,1,0,1,2,0*3,3*2,R3.2,3*2,R3.1,3*12,0*25,1*21,2,R2.2,2*7,R2.2,2*7,R2.4,2*16,0*123"
    ",1*36,2*35,3*15,4*17,1*39,3*15,4*34,0*41,1*13,3*3,0*34,3*20,0*33,1*31,2*25,3*16,0*35"
    ",1*37,3*30,0*39,1*27,2*19,0*56,1*38,0*12,1*38,0*12,2*26,0*3,2*26,0*2,2*8,0*17,1*23,0"
    "*19"
)


def test_a_schedule_publication_is_headed_by_the_schedulers_own_write() -> None:
    spec = f"gen:seed=0,index=234;v1:gen{GENERATOR_VERSION}.s0.i234:c11:{_I234}"
    r = replay_generated(spec)
    assert r.outcome.verdict == "pass", r.outcome


def test_every_fourth_program_begins_with_a_concurrent_first_use_of_the_main_context() -> None:
    """Thread 0 and a helper ask for the main context at once on a fresh platform; the
    registry makes one.  Without its mutex (a generated mutant) both threads make one, and
    the program fails with the two names; the listing says what the program does first."""
    from aioctx_verify.stress.explore._gen_ops import FIRST_USE_EVERY
    from aioctx_verify.stress.mutation._operators import generated_mutant

    prog = generate(0, 4 * FIRST_USE_EVERY)
    assert prog.first_use and not generate(0, 4 * FIRST_USE_EVERY + 1).first_use
    assert "first: T0 and a helper thread both ask for the main context" in prog.listing()

    def search() -> Any:
        return explore_program(generated_program(prog), strategy="random",
                               budget=Budget(30, UNBOUNDED), seed=0, do_shrink=False)

    r = search()
    assert r.verdict == "pass", r.failure and r.failure.message
    with generated_mutant("acqrel-drop:impl/_iothread.py:53:4:with").apply():
        r = search()
    assert r.verdict == "fail" and r.failure is not None
    assert "the first uses of the main context made two" in r.failure.message
