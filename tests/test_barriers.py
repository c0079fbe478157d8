"""The barrier audit (:mod:`aioctx_verify.stress.mutation._barriers`): every fence and
non-relaxed ordering of impl is enumerated from its source, a known-necessary fence gets a
replayable counterexample, a change that no search can break is reported not needed with
its exhausted searches, a budget too small says undecided, and the number of worker
processes changes nothing.

Every test is bounded by work (a program or two chosen by the test, a preemption bound,
runs per search), never by wall-clock time.
"""

from __future__ import annotations

import ast
import json
import shlex
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from aioctx_verify import impl
from aioctx_verify.cli import main
from aioctx_verify.impl import Ordering
from aioctx_verify.stress.mutation import stale_functions
from aioctx_verify.stress.mutation._barriers import (
    EXHAUSTIVE_MEMORIES,
    AuditBudget,
    BarrierVerdict,
    audit_barriers,
    audit_summary,
    barrier_sites,
    format_audit,
    select_programs,
)

#: aio_poll's full fence between publishing notify_me and checking for work (QEMU's
#: smp_mb in aio_poll, the partner of aio_notify's): dropped, an IOThread can sleep
#: through a contention kick under c11.
POLL_FENCE = "fence-drop:impl/_context.py:989:16:drop"
#: The poller's release decrement of notify_me after its poll: nobody acquires through
#: notify_me (a reviewed equivalent), so relaxing it can break nothing.
POLL_DECREMENT = "order-relax:impl/_context.py:1003:44:relaxed"

_ATOMIC = {"load": 0, "store": 1, "exchange": 1, "compare_exchange": 2, "fetch_add": 1}


def _one(budget: AuditBudget, name: str, memories: tuple[str, ...], jobs: int = 1
         ) -> BarrierVerdict:
    got = audit_barriers(budget, names=[name], memories=memories, jobs=jobs)
    assert len(got) == 1
    return got[0]


@pytest.fixture(scope="module", autouse=True)
def _fresh_impl() -> None:
    if stale_functions():
        pytest.skip(f"impl changed on disk since it was imported: {stale_functions()}")


# ----------------------------------------------------------------------------------------
# Enumeration
# ----------------------------------------------------------------------------------------
def _scan_impl() -> Counter[tuple[str, int, str]]:
    """Every barrier change a direct scan of impl's source expects: per ``p.fence(...)``
    call a drop (plus a weakening to wmb and one to rmb for a full fence), per atomic
    access whose ordering is not relaxed (written, or the seq_cst default) a relaxation;
    as (file, the call's first line, change)."""
    root = Path(impl.__file__).parent
    want: Counter[tuple[str, int, str]] = Counter()
    for path in sorted(root.glob("*.py")):
        module = __import__(f"{impl.__name__}.{path.stem}", fromlist=["_"])
        space = vars(module)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        file = f"impl/{path.name}"
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            meth = node.func.attr
            if meth == "fence":
                want[(file, node.lineno, "drop")] += 1
                arg = node.args[0] if node.args else None
                if isinstance(arg, ast.Attribute) and arg.attr == "MB":
                    want[(file, node.lineno, "weaken to wmb")] += 1
                    want[(file, node.lineno, "weaken to rmb")] += 1
            elif meth in _ATOMIC:
                index = _ATOMIC[meth]
                kw = [k.value for k in node.keywords if k.arg == "order"]
                order = kw[0] if kw else node.args[index] if len(node.args) > index else None
                if order is None:
                    if len(node.args) == index and not node.keywords:
                        want[(file, node.lineno, "relax")] += 1
                    continue
                value = None
                if isinstance(order, ast.Name):
                    value = space.get(order.id)
                elif isinstance(order, ast.Attribute) and isinstance(order.value, ast.Name):
                    value = getattr(space.get(order.value.id), order.attr, None)
                if isinstance(value, Ordering) and value is not Ordering.RELAXED:
                    want[(file, node.lineno, "relax")] += 1
    return want


def _call_line(file: str, line: int) -> int:
    """The first line of the innermost call spanning ``line`` of impl's ``file`` that is
    a fence or an atomic access (a site's line may be its ordering argument's)."""
    path = Path(impl.__file__).parent / file.removeprefix("impl/")
    best: ast.Call | None = None
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and (node.func.attr == "fence" or node.func.attr in _ATOMIC)
            and node.lineno <= line <= (node.end_lineno or node.lineno)
            and (best is None or node.lineno >= best.lineno)
        ):
            best = node
    assert best is not None, f"{file}:{line} is no fence or atomic access"
    return best.lineno


def test_enumeration_matches_a_scan_of_impl() -> None:
    """Every fence and every non-relaxed ordering of impl is a site, and nothing else is:
    the audit's list comes from impl's source (a barrier added to impl shows up here and
    in the audit without editing either)."""
    from aioctx_verify.stress.mutation._barriers import _change

    got = Counter(
        (m.file, _call_line(m.file, m.line), _change(m)) for m in barrier_sites()
    )
    want = _scan_impl()
    assert got == want, (
        f"missing from the audit: {sorted((want - got).elements())}; "
        f"not barriers: {sorted((got - want).elements())}"
    )
    assert sum(1 for k in want if k[2] == "drop") >= 4  # impl's fences are all there


def test_sites_say_what_the_barrier_is() -> None:
    from aioctx_verify.stress.mutation._barriers import _change, _kind

    by_name = {m.name: m for m in barrier_sites()}
    assert _kind(by_name[POLL_FENCE]) == "fence MB"
    assert _change(by_name[POLL_FENCE]) == "drop"
    assert _kind(by_name[POLL_DECREMENT]) == "fetch_add release"
    assert _change(by_name[POLL_DECREMENT]) == "relax"
    defaults = [m for m in by_name.values() if m.variant == "relaxed-default"]
    assert defaults and all(_kind(m).endswith("seq_cst (default)") for m in defaults)
    weakened = {_change(m) for m in by_name.values() if m.operator == "fence-weaken"}
    assert weakened == {"weaken to wmb", "weaken to rmb"}


def test_programs_are_chosen_by_coverage() -> None:
    """A site gets only programs whose run executes its lines; a program that never
    reaches it is never searched for it."""
    budget = AuditBudget(
        "t", max_programs=3,
        programs=("corpus:iothread_acquire", "probe:delete_nested", "probe:main_ctx_oneshot"),
    )
    by_name = {m.name: m for m in barrier_sites()}
    chosen, reaching = select_programs(by_name[POLL_FENCE], budget)
    # delete_nested polls without blocking: its run never reaches the blocking poll's fence.
    assert set(chosen) == {"corpus:iothread_acquire", "probe:main_ctx_oneshot"}
    assert reaching == 2
    ext, n = select_programs(by_name["order-relax:impl/_context.py:854:8:relaxed-default"],
                             budget)
    assert ext == () and n == 0  # none of them disables external handlers


# ----------------------------------------------------------------------------------------
# Verdicts
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def necessary() -> BarrierVerdict:
    budget = AuditBudget("t", bound=2, max_programs=1, max_runs=1500,
                         programs=("corpus:iothread_acquire",))
    return _one(budget, POLL_FENCE, ("c11", "sc"))


def test_a_necessary_fence_has_a_counterexample(necessary: BarrierVerdict) -> None:
    v = necessary
    assert v.verdict == "necessary", v.reason
    assert v.memory == "c11" and v.failing_memories == ("c11",)
    assert v.memory_ordering is True  # sc passes: a memory-ordering barrier
    c = v.counterexample
    assert c is not None and c.reproduced
    assert c.program == "corpus:iothread_acquire" and c.memory == "c11"
    assert c.kind == "lost_wakeup" and c.prop == "LIVE"
    assert c.steps > 0 and c.preemptions <= v.bound
    assert c.replay.startswith(f"aioctx-verify replay --mutant {POLL_FENCE} 'v1:")
    assert ":c11:" in c.replay
    # The same program passed the same searches on the unmutated impl.
    assert {(s.memory, s.verdict) for s in v.controls} == {("c11", "pass"), ("sc", "pass")}
    assert not v.false_alarms
    assert "c11" in format_audit([v]) and c.replay in format_audit([v])


def test_the_replay_line_reproduces_the_failure(necessary: BarrierVerdict) -> None:
    assert necessary.counterexample is not None
    argv = shlex.split(necessary.counterexample.replay)
    assert argv[:2] == ["aioctx-verify", "replay"]
    result = CliRunner().invoke(main, argv[1:])
    assert result.exit_code == 1, result.output  # 1: the failure reproduces
    assert "fail (lost_wakeup)" in result.output
    assert "property: LIVE" in result.output
    # Without the mutant the run cannot even follow the schedule (the fence is a
    # scheduling point): the failure is the mutant's.
    bare = CliRunner().invoke(main, ["replay", argv[-1]])
    assert bare.exit_code != 1, bare.output


def test_a_change_nothing_breaks_is_not_needed_with_its_searches() -> None:
    budget = AuditBudget("t", bound=2, max_programs=1, programs=("probe:main_ctx_oneshot",))
    v = _one(budget, POLL_DECREMENT, ("c11", "pso", "tso", "sc"))
    assert v.verdict == "not-needed-at-this-size", v.reason
    assert v.memories_exhausted == EXHAUSTIVE_MEMORIES
    assert v.memories_searched == ("sc", "tso", "pso", "c11")
    assert v.programs == ("probe:main_ctx_oneshot",) and v.bound == 2
    assert v.counterexample is None and v.memory is None and not v.failing_memories
    proofs = [s for s in v.searches if s.memory in EXHAUSTIVE_MEMORIES]
    assert len(proofs) == 3 and all(s.exhausted and s.proof for s in proofs)
    assert v.schedules == sum(s.schedules for s in v.searches) > 0
    assert "c11" in v.reason and "not claimed exhaustive" in v.reason
    assert v.review is not None  # it is a reviewed equivalent, and the audit agrees
    row = format_audit([v])
    assert "not-needed-at-this-size" in row and "main_ctx_oneshot" in row


def test_a_budget_too_small_is_undecided_never_not_needed() -> None:
    budget = AuditBudget("t", bound=2, max_programs=1, max_runs=5,
                         programs=("probe:main_ctx_oneshot",))
    v = _one(budget, POLL_DECREMENT, ("pso", "sc"))
    assert v.verdict == "undecided"
    assert "work budget ran out before exhaustion" in v.reason
    assert v.memories_exhausted == ()
    assert all(not s.exhausted for s in v.searches)
    s = audit_summary([v])
    assert s["undecided"] == 1 and s["not-needed-at-this-size"] == 0


def test_no_program_reaching_the_site_is_undecided() -> None:
    budget = AuditBudget("t", programs=("probe:main_ctx_oneshot",))
    v = _one(budget, "order-relax:impl/_context.py:854:8:relaxed-default", ("sc",))
    assert v.verdict == "undecided" and v.programs == () and v.schedules == 0
    assert "executes the site" in v.reason


def test_results_do_not_depend_on_jobs() -> None:
    budget = AuditBudget("t", bound=1, max_programs=2, max_runs=400,
                         programs=("probe:main_ctx_oneshot", "probe:non_owner_release"))
    names = [POLL_DECREMENT, "order-relax:impl/_context.py:502:37:relaxed"]
    one = audit_barriers(budget, names=names, memories=("c11", "tso"), jobs=1)
    two = audit_barriers(budget, names=names, memories=("c11", "tso"), jobs=2)
    assert [v.to_json() for v in one] == [v.to_json() for v in two]
    text = json.dumps([v.to_json() for v in one])  # JSON-able as it is
    assert json.loads(text)[0]["mutant"] == POLL_DECREMENT


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown memory model"):
        audit_barriers("small", memories=("arm",))
    with pytest.raises(ValueError, match="no such barrier change"):
        audit_barriers("small", names=["fence-drop:impl/_context.py:1:1:drop"])
    with pytest.raises(ValueError, match="unknown program"):
        audit_barriers(AuditBudget("t", programs=("corpus:nope",)), names=[POLL_FENCE])
    with pytest.raises(ValueError, match="unknown audit budget"):
        audit_barriers("huge")
    with pytest.raises(ValueError, match="bad audit budget"):
        AuditBudget("t", max_runs=0)
