"""The structural oracle: representation invariants of a quiescent context.

Each rule is shown to hold on a correct context after real use, and to fail when the
structure it guards is broken (directly, then by a mechanically generated mutant met by
generated programs, bounded by programs, not time).
"""

from __future__ import annotations

from typing import Any

import pytest

from aioctx_verify.impl import AioContext, ClockType, RealPlatform
from aioctx_verify.properties import STRUCTURE_PROPERTY, STRUCTURE_RULES, structure_violations


def _used_context() -> AioContext:
    """A context that ran BHs (one deleted), a timer, a handler and its pool."""
    ctx = AioContext(RealPlatform(), name="ctx")
    ran: list[str] = []
    keep = ctx.bh_new(lambda _: ran.append("bh"))
    gone = ctx.bh_new(lambda _: ran.append("gone"))
    keep.schedule()
    gone.schedule()
    gone.delete()
    t = ctx.timer_new(ClockType.REALTIME, 1, lambda _: ran.append("timer"), None)
    t.mod(0)
    ctx.bh_schedule_oneshot(lambda _: ran.append("oneshot"))
    for _ in range(5):
        ctx.aio_poll(False)
    assert "bh" in ran and "oneshot" in ran and "gone" not in ran
    return ctx


def test_a_used_correct_context_keeps_every_invariant() -> None:
    ctx = _used_context()
    assert structure_violations(ctx) == []
    assert set(STRUCTURE_PROPERTY) == set(STRUCTURE_RULES)


def _rules(ctx: AioContext) -> set[str]:
    return {v.split(":")[0] for v in structure_violations(ctx)}


@pytest.mark.parametrize(
    ("rule", "breaker"),
    [
        ("walks-ended", lambda c: setattr(c, "_walking_bh", 1)),
        ("walks-ended", lambda c: setattr(c, "_walking_handlers", -1)),
        ("deletions-counted", lambda c: c._bh_deleted_cell.__setattr__("value", 2)),
        ("deleted-reclaimed", lambda c: setattr(c._bhs[0], "deleted", True)),
        ("lock-free", lambda c: setattr(c._lock, "_nesting", 1)),
        ("counters-sane", lambda c: c._external_disable_cnt.__setattr__("value", -1)),
        ("timers-sorted", lambda c: c.tlg.lists[0]._active.extend(
            [c.timer_new(ClockType.REALTIME, 1, print, None)])),
    ],
)
def test_each_rule_fails_when_its_structure_is_broken(rule: str, breaker: Any) -> None:
    ctx = _used_context()
    breaker(ctx)
    assert rule in _rules(ctx), structure_violations(ctx)


def test_generated_programs_catch_a_walk_counter_off_by_one() -> None:
    from aioctx_verify.stress.explore import GenBudget, search_generated
    from aioctx_verify.stress.mutation import generate_mutants, resolve_mutant

    (g,) = [g for g in generate_mutants(["off-by-one"])
            if g.before.strip() == "self._walking_bh += 1" and g.name.endswith(":minus1")]
    m = resolve_mutant(g.name)
    with m.apply():
        r = search_generated(0, GenBudget(programs=4, schedules=1, seconds=600.0),
                             do_shrink=False)
    assert r.verdict == "fail" and r.failure is not None, r.summary()
    assert r.failure.kind == "oracle" or "walks-ended" in r.failure.message, r.summary()
    assert "walks-ended" in r.failure.message or "deleted" in r.failure.message, r.summary()
