"""The happens-before race detector of the controlled platform (plain fields, the seam's rule).

Every search here is bounded by schedules, never by time; DFS searches are exhaustive where
the test says "in no schedule".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from aioctx_verify.impl import (
    BH,
    AioContext,
    Fence,
    IOThread,
    Ordering,
    RFifoLock,
)
from aioctx_verify.impl._platform import POLLIN
from aioctx_verify.stress import CORPUS, Program, corpus_by_name
from aioctx_verify.stress.controlled import (
    BENIGN,
    ControlledPlatform,
    Race,
    RaceDetector,
    RaceResult,
    RandomStrategy,
    ReplayStrategy,
    Schedule,
    _race_hooks,
    find_races,
    impl_classes,
    replay_races,
)
from aioctx_verify.stress.explore._gen_ops import GENERATOR_VERSION

RELAXED, ACQUIRE, RELEASE = Ordering.RELAXED, Ordering.ACQUIRE, Ordering.RELEASE


class Box:
    """A plain object shared by the test programs' threads."""

    def __init__(self) -> None:
        self.value = 0
        self.data = 0


ProgramFn = Callable[[ControlledPlatform], None]


def _search(fn: ProgramFn, name: str, memory: str = "sc", **kw: Any) -> RaceResult:
    kw.setdefault("track", (Box,))
    return find_races(Program(name, fn, memory=memory), **kw)


def _exhaustive(fn: ProgramFn, name: str, memory: str = "sc") -> RaceResult:
    """Every schedule with up to 3 preemptions (buffer flushes included)."""
    r = _search(fn, name, strategy="dfs", bound=3, schedules=20_000, memory=memory)
    assert r.exhausted, r.summary()
    return r


def _fields(r: RaceResult) -> set[str]:
    return {race.field for race in r.races}


# -- a deliberate race, reported with both stacks and a schedule that replays it ------------
def racy(p: ControlledPlatform) -> None:
    box = Box()

    def writer() -> None:
        box.value = 1

    t = p.start_thread(writer, "writer")
    seen = box.value
    t.join()
    assert seen in (0, 1)


def test_a_plain_field_race_is_reported_with_both_stacks() -> None:
    r = _search(racy, "racy", schedules=20)
    assert r.verdict == "fail" and len(r.races) == 1, r.summary()
    race = r.races[0]
    assert race.field == "Box.value"
    kinds = {(a.kind, a.thread_name) for a in (race.first, race.second)}
    assert kinds == {("write", "writer"), ("read", "main")}
    where = {a.kind: a.stack[0] for a in (race.first, race.second)}
    assert where["write"].startswith("tests/test_races.py:") and where["write"].endswith(
        "(writer)"
    )
    assert where["read"].endswith("(racy)")
    text = race.report()
    assert "data race on Box.value" in text and race.schedule in text
    assert "write by thread 1 (writer)" in text and "read  by thread 0 (main)" in text


@pytest.mark.parametrize("strategy", ["random", "pct", "dfs"])
def test_the_schedule_of_a_race_replays_it(strategy: str) -> None:
    r = _search(racy, "racy", strategy=strategy, schedules=50)
    assert r.races, r.summary()
    prog = Program("racy", racy)
    for race in r.races:
        sched = Schedule.parse(race.schedule)
        assert sched.program == "racy" and sched.memory == "sc"
        det = replay_races(race.schedule, {"racy": prog}, track=(Box,))
        assert [x.key for x in det.races] == [race.key]
        again = det.races[0]
        assert (again.first, again.second) == (race.first, race.second)


def test_a_race_search_is_a_function_of_its_seed() -> None:
    a = _search(racy, "racy", strategy="pct", schedules=30, seed=4)
    b = _search(racy, "racy", strategy="pct", schedules=30, seed=4)
    assert [x.report() for x in a.races] == [x.report() for x in b.races]
    assert a.accesses == b.accesses


# -- synchronisation orders the accesses: nothing is reported, in any schedule ---------------
def locked(p: ControlledPlatform) -> None:
    box = Box()
    m = p.mutex("m")

    def writer() -> None:
        with m:
            box.value = 1

    t = p.start_thread(writer, "writer")
    with m:
        seen = box.value
    t.join()
    assert seen in (0, 1)


def test_the_same_accesses_under_a_mutex_are_no_race() -> None:
    assert _exhaustive(locked, "locked").races == []


def _flag_program(
    store: Ordering, load: Ordering, wmb: bool = False, rmb: bool = False
) -> ProgramFn:
    """Writer: data, then the flag; reader: the flag, then (if set) data."""

    def program(p: ControlledPlatform) -> None:
        box = Box()
        flag = p.atomic(0, "flag")
        got: list[int] = []

        def writer() -> None:
            box.data = 42
            if wmb:
                p.fence(Fence.WMB)
            flag.store(1, store)

        def reader() -> None:
            if flag.load(load):
                if rmb:
                    p.fence(Fence.RMB)
                got.append(box.data)

        a = p.start_thread(writer, "writer")
        b = p.start_thread(reader, "reader")
        a.join()
        b.join()
        assert got in ([], [42])

    return program


@pytest.mark.parametrize("memory", ["sc", "tso", "pso"])
def test_release_acquire_atomics_publish_a_plain_field(memory: str) -> None:
    assert _exhaustive(_flag_program(RELEASE, ACQUIRE), "mp_relacq", memory).races == []


@pytest.mark.parametrize("memory", ["sc", "tso", "pso"])
def test_a_relaxed_flag_publishing_a_plain_field_is_a_race(memory: str) -> None:
    r = _exhaustive(_flag_program(RELAXED, RELAXED), "mp_relaxed", memory)
    assert _fields(r) == {"Box.data"}, r.summary()
    (race,) = r.races
    assert {(a.kind, a.thread_name) for a in (race.first, race.second)} == {
        ("write", "writer"),
        ("read", "reader"),
    }


@pytest.mark.parametrize(
    ("store", "load", "wmb", "rmb", "racy"),
    [
        (RELAXED, RELAXED, True, True, False),  # smp_wmb / smp_rmb pair: ordered
        (RELAXED, RELAXED, True, False, True),  # no acquire side
        (RELAXED, RELAXED, False, True, True),  # no release side
        (RELEASE, RELAXED, False, True, False),  # release store + acquire fence
        (RELAXED, ACQUIRE, True, False, False),  # release fence + acquire load
    ],
)
def test_fences_order_relaxed_accesses_as_c11_fences(
    store: Ordering, load: Ordering, wmb: bool, rmb: bool, racy: bool
) -> None:
    r = _exhaustive(_flag_program(store, load, wmb, rmb), "mp_fences")
    assert _fields(r) == ({"Box.data"} if racy else set()), r.summary()


def _release_sequence(writer_order: Ordering) -> ProgramFn:
    def program(p: ControlledPlatform) -> None:
        box = Box()
        c = p.atomic(0, "c")

        def writer() -> None:
            box.data = 42
            c.store(1, writer_order)

        def middle() -> None:
            c.fetch_add(1, RELAXED)

        def reader() -> None:
            if c.load(ACQUIRE) == 2:
                assert box.data in (0, 42)

        ts = [p.start_thread(f, f.__name__) for f in (writer, middle, reader)]
        for t in ts:
            t.join()

    return program


def test_an_rmw_continues_the_release_sequence() -> None:
    assert _exhaustive(_release_sequence(RELEASE), "rs_release").races == []
    assert _fields(_exhaustive(_release_sequence(RELAXED), "rs_relaxed")) == {"Box.data"}


def start_join(p: ControlledPlatform) -> None:
    box = Box()
    box.value = 1  # before the start: ordered before everything the child does

    def child() -> None:
        assert box.value == 1
        box.data = 2

    t = p.start_thread(child, "child")
    t.join()
    assert box.data == 2  # after the join: ordered after everything the child did
    box.value = 3


def test_thread_start_and_join_order_accesses() -> None:
    assert _exhaustive(start_join, "start_join").races == []


def notified(p: ControlledPlatform) -> None:
    box = Box()
    n = p.notifier()

    def writer() -> None:
        box.value = 1
        n.set()

    t = p.start_thread(writer, "writer")
    poller = p.poller()
    poller.register(n.read_fd, POLLIN)
    poller.poll(-1)  # woken by the set: ordered after it
    assert box.value == 1
    assert n.test_and_clear()
    t.join()


def test_a_notifier_set_orders_what_its_poller_reads() -> None:
    assert _exhaustive(notified, "notified").races == []


# -- the lock's nested fast path ---------------------------------------------------------------
class TwoWordLock:
    """RFifoLock's nested fast path as it was: owner and depth in two plain fields, read
    outside the mutex by threads that may not hold the lock."""

    def __init__(self, p: ControlledPlatform) -> None:
        self._mutex = p.mutex("two-word")
        self._me = p.current_thread
        self._owner: int | None = None
        self._nesting = 0

    def lock(self) -> None:
        me = self._me()
        if self._nesting > 0 and self._owner == me:
            self._nesting += 1
            return
        self._mutex.acquire()
        self._owner = me
        self._nesting = 1

    def unlock(self) -> None:
        if self._nesting > 1:
            self._nesting -= 1
            return
        self._nesting = 0
        self._mutex.release()


def _nesters(make: str) -> ProgramFn:
    def program(p: ControlledPlatform) -> None:
        lock: TwoWordLock | RFifoLock = TwoWordLock(p) if make == "two-word" else RFifoLock(p)

        def nest() -> None:
            lock.lock()
            lock.lock()
            p.yield_now()  # a scheduling point while holding it
            lock.unlock()
            lock.unlock()

        ts = [p.start_thread(nest, f"t{i}") for i in range(2)]
        for t in ts:
            t.join()

    return program


def test_the_old_two_word_fast_path_is_a_race_and_rfifolock_is_not() -> None:
    old = _search(_nesters("two-word"), "two_word", strategy="dfs", schedules=500,
                  track=(TwoWordLock,))
    assert {"TwoWordLock._nesting", "TwoWordLock._owner"} <= _fields(old), old.summary()
    reads = {a.stack[0] for race in old.races for a in (race.first, race.second)
             if a.kind == "read"}
    assert any(w.endswith("(lock)") for w in reads), reads  # the fast path's own check
    assert _exhaustive(_nesters("rfifolock"), "rfifolock").races == []


def test_lock_statistics_beside_a_nesting_owner_is_no_race() -> None:
    """The owner's nested fast path changes the depth without the lock's mutex, so
    ``statistics()`` in another thread reports the owner (written under the mutex) and the
    caller's own depth, 0, without reading the owner's: no data race (reading it was one)."""

    def program(p: ControlledPlatform) -> None:
        lock = RFifoLock(p)
        seen: list[int] = []
        owners: list[object] = []
        nester: list[object] = []

        def nest() -> None:
            nester.append(p.current_thread())
            lock.lock()
            lock.lock()
            p.yield_now()
            lock.unlock()
            lock.unlock()

        t = p.start_thread(nest, "owner")
        for _ in range(2):
            s = lock.statistics()
            seen.append(s.depth)
            owners.append(s.owner)
        t.join()
        assert seen == [0, 0] and set(owners) <= {None, *nester}, (seen, owners)

    assert _exhaustive(program, "stats-beside-nesting").races == []
    assert _exhaustive(program, "stats-beside-nesting", memory="pso").races == []


def test_contexts_nested_across_threads_have_no_race() -> None:
    def program(p: ControlledPlatform) -> None:
        it = IOThread(p, name="io").start()
        ctx = it.ctx

        def user() -> None:
            with ctx, ctx:
                assert ctx.held_by_me()

        t = p.start_thread(user, "user")
        with ctx, ctx:
            assert ctx.held_by_me()
        t.join()
        it.join()

    for strategy in ("random", "pct"):
        r = _search(program, "nested_ctx", strategy=strategy, schedules=40)
        assert r.races == [], r.summary()


# -- the allow-list ----------------------------------------------------------------------------
def observe(p: ControlledPlatform) -> None:
    """A stall watch's reads: an IOThread's statistics and its context's debug snapshot."""
    it = IOThread(p, name="io").start()
    for _ in range(3):
        it.ctx.bh_schedule_oneshot(lambda _: None)  # one iteration's worth of work
        p.yield_now()
        assert it.iterations >= 0
        it.ctx.debug_snapshot()
    it.join()


def test_every_allow_list_entry_is_hit_and_reported_apart() -> None:
    r = find_races(Program("observe", observe), strategy="random", schedules=60, seed=1)
    assert r.races == [], r.summary()
    hit = {e for e in BENIGN for b in r.benign if e.matches(b)}
    assert hit == set(BENIGN), [e.field for e in BENIGN if e not in hit]
    assert all(b.benign for b in r.benign)
    strict = find_races(Program("observe", observe), strategy="random", schedules=60, seed=1,
                        allow=())
    assert {x.key for x in strict.races} == {x.key for x in r.benign}


# -- the corpus on the correct impl ------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["random", "pct", "dfs"])
def test_the_safe_corpus_has_no_race(strategy: str) -> None:
    for i, prog in enumerate(p for p in CORPUS if p.expected == "safe"):
        r = find_races(prog, strategy=strategy, schedules=12, seed=i)
        assert r.verdict == "pass", r.summary()
        assert r.schedules + r.pruned == 12 or r.exhausted


# -- off means off ---------------------------------------------------------------------------
def test_the_detector_changes_no_schedule() -> None:
    """With the detector on, a run makes the same scheduling decisions and steps."""
    prog = corpus_by_name()["bh_cross_thread"]
    for seed in range(3):
        plain = ControlledPlatform(RandomStrategy(seed)).run(prog.fn)
        assert plain.verdict == "pass"
        tokens = tuple(c.token for c in plain.decisions)
        det = RaceDetector(program=prog.name)
        seen = ControlledPlatform(ReplayStrategy(tokens), races=det).run(prog.fn)
        assert seen.verdict == "pass" and seen.trace_hash == plain.trace_hash
        assert det.accesses > 0


def test_no_hook_stays_installed_after_a_search() -> None:
    def hooks() -> list[str]:
        return [
            f"{cls.__qualname__}.{name}"
            for cls in impl_classes()
            for name, v in vars(cls).items()
            if type(v).__name__ in ("_SlotField", "_DictField")
        ]

    assert hooks() == []
    r = find_races(corpus_by_name()["iothread_acquire"], schedules=3)
    assert r.accesses > 0
    assert hooks() == [] and _race_hooks._ACTIVE == {}
    assert type(vars(BH)["cb"]).__name__ == "member_descriptor"
    assert "_bhs" not in vars(AioContext)
    assert ControlledPlatform(RandomStrategy(0))._race is None


def test_races_are_values() -> None:
    r = _search(racy, "racy", schedules=5)
    race = r.races[0]
    assert isinstance(race, Race) and race == Race(race.field, race.first, race.second,
                                                   race.schedule)
    with pytest.raises(AttributeError):
        race.field = "x"  # type: ignore[misc]


# -- the campaign step ---------------------------------------------------------------------------
def peeker(p: ControlledPlatform) -> None:
    """Reads a field of an IOThread's context that the IOThread writes, without the context."""
    it = IOThread(p, name="io").start()
    assert it.ctx._walking_handlers >= 0  # the loop is inside aio_poll: a race
    it.join()


def test_the_campaign_step_reports_a_race_as_a_p3_counterexample(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import aioctx_verify.stress as stress
    from aioctx_verify._campaign import plan_campaign, run_campaign
    from aioctx_verify.reports import CampaignResult

    monkeypatch.setattr(stress, "CORPUS", (Program("peeker", peeker),))
    r = run_campaign(plan_campaign(60, checkers=("races",), strategies=("dfs",)))
    (v,) = r.verdicts
    assert (v.property, v.checker, v.verdict) == ("P3", "races", "fail"), v
    assert r.counterexamples and {c.kind for c in r.counterexamples} == {"data_race"}
    cx = r.counterexamples[0]
    assert "AioContext._walking_handlers" in cx.message
    assert cx.schedule is not None and cx.schedule.startswith("v1:peeker:sc:")
    assert [s.op for s in cx.steps] == ["write", "read"]
    assert cx.steps[1].where.endswith("(peeker)")
    assert CampaignResult.from_json(r.to_json()).counterexamples == r.counterexamples
    det = replay_races(cx.schedule, {"peeker": Program("peeker", peeker)})
    assert [x.field for x in det.races] == ["AioContext._walking_handlers"]


def test_the_campaign_prints_a_race_replay_line_that_reproduces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import re
    import shlex

    from click.testing import CliRunner

    import aioctx_verify._replay_cmd as replay_cmd
    import aioctx_verify.stress as stress
    from aioctx_verify._campaign import plan_campaign, run_campaign
    from aioctx_verify.cli import main

    programs = {"peeker": Program("peeker", peeker)}
    monkeypatch.setattr(stress, "CORPUS", tuple(programs.values()))
    monkeypatch.setattr(replay_cmd, "corpus_by_name", lambda: programs)
    r = run_campaign(plan_campaign(60, checkers=("races",), strategies=("random",)))
    cx = r.counterexamples[0]
    assert cx.replay_command == f"aioctx-verify replay 'race:{cx.schedule}'"
    out = CliRunner().invoke(main, shlex.split(cx.replay_command)[1:])
    assert out.exit_code == 1, out.output
    assert re.search(r"^property: P3 via races$", out.output, re.M), out.output
    assert "AioContext._walking_handlers" in out.output
    bad = CliRunner().invoke(main, ["replay", "race:v1:nope:sc:0"])
    assert bad.exit_code == 2 and "unknown program 'nope'" in bad.output, bad.output


# -- containers: their contents are shared words too ------------------------------------------
class Bag:
    """A plain object whose list and dict are shared by the test programs' threads."""

    def __init__(self, p: ControlledPlatform) -> None:
        self.items: list[int] = []
        self.index: dict[int, int] = {}
        self.lock = p.mutex("bag")


def _bag_program(locked: bool, op: str) -> ProgramFn:
    def fn(p: ControlledPlatform) -> None:
        bag = Bag(p)

        def add(v: int) -> None:
            if locked:
                with bag.lock:
                    bag.items.append(v)
                    bag.index[v] = v
            else:
                bag.items.append(v)
                bag.index[v] = v

        t = p.start_thread(lambda: add(1), "adder")
        if op == "write":
            add(2)
        elif op == "iterate":
            with bag.lock:
                _ = [x for x in bag.items]
        elif op == "alias":
            items = bag.items  # an alias's mutation is not seen: under-report, never over
            with bag.lock:
                items.append(3)
        t.join()
        assert sorted(bag.items)[-1] in (1, 2, 3)

    return fn


@pytest.mark.parametrize("op", ["write", "iterate"])
def test_a_container_changed_without_a_lock_is_a_race_on_its_contents(op: str) -> None:
    r = _search(_bag_program(False, op), f"bag_{op}", strategy="dfs", bound=3,
                schedules=20_000, track=(Bag,))
    assert r.exhausted
    assert "Bag.items[]" in _fields(r), r.summary()
    if op == "write":
        assert "Bag.index[]" in _fields(r), r.summary()
    kinds = {a.kind for race in r.races if race.field == "Bag.items[]"
             for a in (race.first, race.second)}
    assert "write" in kinds


@pytest.mark.parametrize("op", ["write", "iterate"])
def test_the_same_container_under_its_lock_is_no_race(op: str) -> None:
    r = _search(_bag_program(True, op), f"bag_locked_{op}", strategy="dfs", bound=3,
                schedules=20_000, track=(Bag,))
    assert r.exhausted and r.races == [], r.summary()
    assert r.accesses > 0


def test_mutations_are_told_from_reads_by_the_bytecode() -> None:
    from aioctx_verify.stress.controlled._race_hooks import _mutates_at

    seen: dict[str, bool] = {}

    class Probe:
        def __get__(self, obj: Any, owner: Any = None) -> list[int]:
            import sys

            f = sys._getframe(1)
            seen[f.f_code.co_name] = _mutates_at(f.f_code, f.f_lasti)
            return obj.__dict__["xs"]

        def __set__(self, obj: Any, v: Any) -> None:
            obj.__dict__["xs"] = v

    class C:
        xs = Probe()

        def __init__(self) -> None:
            self.xs = [1, 2, 3]

        def append(self) -> None:
            self.xs.append(4)

        def setitem(self) -> None:
            self.xs[0] = 5

        def delitem(self) -> None:
            del self.xs[0]

        def augitem(self) -> None:
            self.xs[0] += 1

        def pop(self) -> int:
            return self.xs.pop()

        def iterate(self) -> int:
            return sum(x for x in self.xs)

        def length(self) -> int:
            return len(self.xs)

        def contains(self) -> bool:
            return 1 in self.xs

        def getitem(self) -> int:
            return self.xs[0]

        def setitem_call_key(self, k: int) -> None:  # Clocks.enable's shape: F[Kind(c)] = v
            self.xs[int(str(k))] = 6

        def delitem_expr_key(self, k: int) -> None:
            del self.xs[k * 2 - k]

        def getitem_call_key(self, k: int) -> int:
            return self.xs[int(str(k))]

        def store_elsewhere(self, d: dict[int, int]) -> None:  # the container is the key
            d[len(self.xs)] = 1

        def augitem_call_key(self, k: int) -> None:
            self.xs[int(str(k))] += 1

        def setitem_cond_key(self, k: int) -> None:  # a jump in the key: under-reported
            self.xs[0 if k else 1] = 2

    for name in ("append", "setitem", "delitem", "augitem", "pop", "iterate", "length",
                 "contains", "getitem"):
        c = C()
        getattr(c, name)()
    for name in ("setitem_call_key", "delitem_expr_key", "getitem_call_key",
                 "augitem_call_key", "setitem_cond_key"):
        getattr(C(), name)(0)
    C().store_elsewhere({})
    assert seen == {"append": True, "setitem": True, "delitem": True, "augitem": True,
                    "pop": True, "iterate": False, "length": False, "contains": False,
                    "getitem": False, "setitem_call_key": True, "delitem_expr_key": True,
                    "getitem_call_key": False, "store_elsewhere": False,
                    "augitem_call_key": True, "setitem_cond_key": False}


def test_every_lockfree_read_entry_is_hit_and_only_in_its_functions() -> None:
    from aioctx_verify.stress.controlled._race import LOCKFREE_READS
    from aioctx_verify.stress.explore import generate, generated_program

    det_hits: set[str] = set()
    for prog in [corpus_by_name()["bh_cross_thread"],
                 *(generated_program(generate(0, i)) for i in range(12))]:
        for seed in range(2):
            plain = ControlledPlatform(RandomStrategy(seed)).run(prog.fn)
            det = RaceDetector(program=prog.name)
            tokens = tuple(c.token for c in plain.decisions)
            ControlledPlatform(ReplayStrategy(tokens), races=det).run(prog.fn)
            assert det.races == [], det.races[0].report()
            det_hits |= det.lockfree_reads
    for label, (functions, reason) in LOCKFREE_READS.items():
        assert reason
        hit = {h.split(" in ")[1] for h in det_hits if h.startswith(label + " ")}
        assert hit and hit <= functions, (label, hit)


# -- thread indices: two threads starting threads at once ------------------------------------
def spawners(p: ControlledPlatform) -> None:
    """Two threads each start a child after writing a field only that child reads."""
    boxes = [Box(), Box()]

    def spawner(k: int) -> None:
        boxes[k].data = k + 1

        def child() -> None:
            assert boxes[k].data == k + 1

        p.start_thread(child, f"child{k}").join()

    ts = [p.start_thread(lambda k=k: spawner(k), f"spawner{k}") for k in range(2)]
    for t in ts:
        t.join()


def test_each_child_is_ordered_after_its_own_parent_when_spawns_race() -> None:
    r = _exhaustive(spawners, "spawners")
    assert r.races == [], r.races[0].report()
    assert r.schedules > 10


def test_a_generated_programs_race_replays_from_its_line() -> None:
    import shlex

    from click.testing import CliRunner

    from aioctx_verify.cli import main
    from aioctx_verify.stress.explore import generate, generated_program
    from aioctx_verify.stress.mutation import resolve_mutant

    m = resolve_mutant("acqrel-drop:impl/_dataplane.py:130:8:with")
    with m.apply():
        for i in range(40):
            prog = generate(0, i)
            if not prog.uses_dataplane():
                continue
            r = find_races(generated_program(prog), strategy="random", schedules=4, seed=i)
            if r.races:
                break
    assert r.races, "no generated dataplane program showed the unlocked queue"
    race = r.races[0]
    assert race.field == "DataplaneDevice._avail[]"
    assert race.schedule.startswith(f"v1:gen{GENERATOR_VERSION}.s0.")
    line = f"aioctx-verify replay --mutant {m.name} 'race:{race.schedule}'"
    out = CliRunner().invoke(main, shlex.split(line)[1:])
    assert out.exit_code == 1 and "DataplaneDevice._avail[]" in out.output, out.output
    clean = CliRunner().invoke(main, ["replay", f"race:{race.schedule}"])
    assert clean.exit_code == 0, clean.output
    old = CliRunner().invoke(main, ["replay", "race:v1:gen0.s0.i1:sc:0"])
    assert old.exit_code == 2 and "generator version 0" in old.output, old.output


# -- suspects: an order only a mutex gave, confirmed by postponing a thread ------------------
def hidden(p: ControlledPlatform) -> None:
    """main reads a field outside the mutex the writer writes it under, then takes the
    mutex; the writer gets there only after a dozen steps of its own.  A schedule shows the
    race only if the writer overtakes main's one step: about 2^-13 for a random walk."""
    box = Box()
    m = p.mutex("m")
    steps = p.atomic(0, "steps")

    def writer() -> None:
        for i in range(12):
            steps.store(i, RELAXED)
        with m:
            box.value = 1

    t = p.start_thread(writer, "writer")
    seen = box.value  # unlocked: the bug
    with m:
        pass
    t.join()
    assert seen in (0, 1)


@pytest.mark.parametrize("seed", range(5))
def test_a_race_only_a_mutex_order_hid_is_confirmed_and_replays(seed: int) -> None:
    blind = _search(hidden, "hidden", schedules=3, seed=seed, confirm=0)
    assert blind.races == [] and blind.suspects == 0, blind.summary()
    r = _search(hidden, "hidden", schedules=3, seed=seed)
    assert _fields(r) == {"Box.value"}, r.summary()
    assert r.suspects >= 1 and r.confirmations >= 1
    race = r.races[0]
    det = replay_races(race.schedule, {"hidden": Program("hidden", hidden)}, track=(Box,))
    assert [x.key for x in det.races] == [race.key]


@pytest.mark.parametrize("fn", [locked, start_join, notified])
def test_orders_a_confirmation_cannot_undo_raise_no_suspect_and_no_race(
    fn: ProgramFn,
) -> None:
    """A common mutex, a thread start or join, a notifier: no suspect, so no schedule is
    spent confirming, and a confirmation could not report a race that is not one."""
    r = _search(fn, fn.__name__, strategy="random", schedules=40, seed=3)
    assert r.races == [] and r.suspects == 0 and r.confirmations == 0, r.summary()


def test_field_accesses_name_the_threads_lines_and_steps_of_each_field() -> None:
    from aioctx_verify.stress.controlled import field_accesses

    prog = corpus_by_name()["iothread_acquire"]
    acc = field_accesses(prog, seed=0)
    assert acc == field_accesses(prog, seed=0)  # a function of the seed
    nesting = {(t, w) for label, t, w, *_ in acc if label == "RFifoLock._nesting"}
    assert {t for t, _ in nesting} >= {0, 1} and any(w for _, w in nesting), sorted(nesting)
    lock_py = RFifoLock.lock.__code__.co_filename
    assert any(f == lock_py and label == "RFifoLock._nesting" for label, _t, _w, f, *_ in acc)
    assert all(line > 0 and steps for *_, line, steps in acc)
