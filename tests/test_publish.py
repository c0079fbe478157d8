"""The publication oracle (aioctx_verify.stress.explore._publish): a BH's last run must read
what each script published before its last consumed ``qemu_bh_schedule`` of it."""

from __future__ import annotations

from aioctx_verify.impl import Ordering
from aioctx_verify.stress.controlled import ControlledPlatform, RandomStrategy
from aioctx_verify.stress.explore._publish import Publication


def _pub() -> tuple[Publication, dict[str, object]]:
    box: dict[str, object] = {}

    def prog(p: ControlledPlatform) -> None:
        box["pub"] = Publication(p, [0, 1], 2)

    ControlledPlatform(RandomStrategy(0)).run(prog)
    pub = box.pop("pub")
    assert isinstance(pub, Publication)
    return pub, box


def _fake(pub: Publication, published: dict[tuple[int, int], tuple[int, int]],
          seen: dict[int, dict[int, int]]) -> Publication:
    pub.last = dict(published)
    pub.seen = {j: dict(v) for j, v in seen.items()}
    return pub


def test_a_stale_read_of_a_consumed_schedule_is_reported() -> None:
    pub, _ = _pub()
    _fake(pub, {(0, 1): (2, 10)}, {0: {0: 0, 1: 1}})
    assert pub.violations({0: 12}, {}, {0: False}) == [(0, 1, 2, 1)]
    # The number itself, or a later one, is what the run must read.
    _fake(pub, {(0, 1): (2, 10)}, {0: {0: 0, 1: 2}})
    assert pub.violations({0: 12}, {}, {0: False}) == []


def test_schedules_not_consumed_by_the_last_run_promise_nothing() -> None:
    pub, _ = _pub()
    _fake(pub, {(0, 1): (2, 10)}, {0: {1: 1}})
    assert pub.violations({0: 9}, {}, {0: False}) == []  # no run since it began
    assert pub.violations({0: 12}, {0: 11}, {0: False}) == []  # cancelled since
    assert pub.violations({0: 12}, {}, {0: True}) == []  # a claim is still pending
    assert pub.violations({}, {}, {}) == []  # never ran


def test_the_cells_are_relaxed_atomics_the_schedulers_number() -> None:
    def prog(p: ControlledPlatform) -> None:
        pub = Publication(p, [3], 2)
        pub.before_schedule(3, 1, 5)
        pub.before_schedule(3, 1, 8)
        pub.before_schedule(7, 0, 9)  # not a shared BH of the program: ignored
        assert pub.last == {(3, 1): (2, 8)}
        assert pub.cells[(3, 1)].load(Ordering.SEQ_CST) == 2
        pub.on_run(3)
        assert pub.seen == {3: {0: 0, 1: 2}}

    out = ControlledPlatform(RandomStrategy(0), memory="c11").run(prog)
    assert out.verdict == "pass", out.message
