"""The race checker: a program run many times under a strategy with the detector on.

:func:`find_races` is to races what :func:`aioctx_verify.stress.explore.explore` is to
property failures: the same programs (anything with ``name``, ``fn``, ``memory``,
``max_steps`` and ``drop_fences``, such as ``stress.Program``), the same strategies and
schedule strings; :func:`replay_races` reruns one schedule with the detector on.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._platform import ControlledPlatform, Strategy
from ._race import BENIGN, Benign, Race, RaceDetector, _line
from ._race_hooks import impl_classes, tracking
from ._schedule import InvalidScheduleError, Schedule
from ._strategies import (
    PostponeStrategy,
    PrefixStrategy,
    ReplayStrategy,
    for_memory,
    make_strategy,
)

__all__ = [
    "FieldAccess",
    "RaceProgram",
    "RaceResult",
    "field_accesses",
    "find_races",
    "replay_races",
]


class RaceProgram(Protocol):
    """What a race search needs of a program (``stress.Program`` has it)."""

    @property
    def name(self) -> str: ...

    @property
    def fn(self) -> Callable[[ControlledPlatform], None]: ...

    @property
    def memory(self) -> str: ...

    @property
    def max_steps(self) -> int: ...

    @property
    def drop_fences(self) -> frozenset[str]: ...


@dataclass
class RaceResult:
    """What a race search found, and how much it ran."""

    program: str
    strategy: str
    memory: str
    races: list[Race] = field(default_factory=list)
    benign: list[Race] = field(default_factory=list)
    schedules: int = 0
    pruned: int = 0
    accesses: int = 0
    seconds: float = 0.0
    exhausted: bool = False
    #: Of :attr:`schedules`, the confirmation runs of suspects (see ``confirm``), and how
    #: many suspects a run of the strategy raised.
    confirmations: int = 0
    suspects: int = 0

    @property
    def verdict(self) -> str:
        return "fail" if self.races else "pass"

    @property
    def schedules_per_second(self) -> float:
        return self.schedules / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        s = (
            f"{self.program} [races {self.strategy}/{self.memory}]: {self.verdict}; "
            f"{len(self.races)} race(s), {len(self.benign)} allowed, {self.schedules} schedules "
            f"({self.pruned} pruned{', exhausted' if self.exhausted else ''}), "
            f"{self.accesses} field accesses, {self.schedules_per_second:,.1f} schedules/s"
        )
        return "\n".join([s, *(r.report() for r in self.races)])


#: One watched field access of a run: (field, thread, write, file, line), the file as the
#: code object names it, and the platform steps it happened at (its first 16).
FieldAccess = tuple[str, int, bool, str, int, tuple[int, ...]]


def field_accesses(
    program: RaceProgram, *, seed: int = 0, memory: str | None = None
) -> tuple[FieldAccess, ...]:
    """Every access to a watched field (impl's plain fields and containers' contents) in
    one seeded random run of ``program``, racing or not: which threads meet at which
    fields, from which lines and when.  A mutant that moves a line out of its lock races
    only where another thread accesses the fields that line accesses; this tells a checker
    which programs bring such a thread, and how close the two came (conflict coverage,
    after the interleaving coverage of Maple, Yu, Narayanasamy, Pereira and Pokam, OOPSLA
    2012)."""
    strat = make_strategy("random", seed)
    strat.next_run()
    with tracking(impl_classes()):
        det, _ = _run(program, strat, memory or program.memory, (), BENIGN, profile=True)
    assert det.profile is not None
    return tuple(sorted(
        (label, t, write, code.co_filename, _line(code, lasti), tuple(steps))
        for (label, t, write, (code, lasti)), steps in det.profile.items()
    ))


def _run(
    program: RaceProgram,
    strategy: Any,
    memory: str,
    track: tuple[type, ...],
    allow: tuple[Benign, ...],
    suspects: bool = False,
    profile: bool = False,
) -> tuple[RaceDetector, str]:
    det = RaceDetector(track, program=program.name, allow=allow)
    if suspects:
        det.suspects = []
    if profile:
        det.profile = {}
    plat = ControlledPlatform(
        strategy,
        memory=memory,
        max_steps=program.max_steps,
        drop_fences=program.drop_fences,
        races=det,
    )
    out = plat.run(program.fn)
    return det, out.verdict


def find_races(
    program: RaceProgram,
    *,
    strategy: str | Strategy = "random",
    schedules: int = 100,
    seconds: float | None = None,
    seed: int = 0,
    memory: str | None = None,
    bound: int = 2,
    depth: int = 3,
    track: Iterable[type] = (),
    allow: Iterable[Benign] = BENIGN,
    confirm: int = 2,
) -> RaceResult:
    """Run ``program`` up to ``schedules`` times under ``strategy`` with the detector on.

    Every distinct race (field, two code locations) is reported once, with the schedule of
    the first run that showed it; the result is a function of ``seed`` unless ``seconds``
    (a wall-time cap, for campaigns) cuts the search short.

    Besides the races a run shows, it raises *suspects*: two threads' accesses to one
    field, one writing, with no platform mutex held by both, that the run happened to
    order (see :attr:`RaceDetector.suspects`).  Up to ``confirm`` new suspects of each run
    (the two accesses closest in steps first) get a confirmation run, counted among the
    ``schedules``: the run is replayed to the earlier access and its thread held back
    while any other can run (:class:`PostponeStrategy`).  A race that run shows is an
    ordinary race, with the confirmation run's schedule; a suspect nothing confirms is
    never reported.  ``confirm=0`` turns this off; a DFS never confirms (its schedules
    are its exhaustive search).
    """
    mem = memory or program.memory
    if isinstance(strategy, str):
        strategy = for_memory(strategy, mem)
    strat = make_strategy(strategy, seed, bound, depth)
    res = RaceResult(program.name, getattr(strat, "name", str(strategy)), mem)
    tracked = tuple(track)
    rules = tuple(allow)
    seen: set[tuple[str, frozenset[tuple[str, str]]]] = set()
    t0 = time.perf_counter()
    predict = confirm > 0 and getattr(strat, "name", "") != "dfs"
    waiting: deque[tuple[tuple[str, ...], int]] = deque()
    tried: set[tuple[str, int, int]] = set()
    with tracking(impl_classes() + tracked):
        while res.schedules + res.pruned < schedules:
            if seconds is not None and time.perf_counter() - t0 > seconds:
                break
            if waiting:
                tokens, victim = waiting.popleft()
                post = PostponeStrategy(tokens, victim, seed)
                post.next_run()
                det, verdict = _run(program, post, mem, tracked, rules)
                res.confirmations += 1
            else:
                if not strat.next_run():
                    res.exhausted = True
                    break
                det, verdict = _run(program, strat, mem, tracked, rules, suspects=predict)
                new = sorted(
                    (s for s in det.suspects or () if (s[0], s[1], s[4]) not in tried),
                    key=lambda s: (s[5] - s[3], s[0], s[1], s[4]),
                )
                res.suspects += len(new)
                for label, u, before, _ustep, t, _step in new[:confirm]:
                    tried.add((label, u, t))
                    waiting.append((det.tokens[:before], u))
            res.accesses += det.accesses
            if verdict == "pruned":
                res.pruned += 1
            else:
                res.schedules += 1
            for race in det.races + det.benign:
                if race.key in seen:
                    continue
                seen.add(race.key)
                if verdict == "pruned":
                    # The run stopped at a decision; its prefix, completed without
                    # preemption, is a whole run that shows the same race.
                    race = _complete(program, race, mem, tracked, rules)
                (res.benign if race.benign else res.races).append(race)
    res.seconds = time.perf_counter() - t0
    return res


def _complete(
    program: RaceProgram,
    race: Race,
    memory: str,
    track: tuple[type, ...],
    allow: tuple[Benign, ...],
) -> Race:
    tokens = Schedule.parse(race.schedule).tokens
    det, _ = _run(program, PrefixStrategy(tokens), memory, track, allow)
    for r in det.races + det.benign:
        if r.key == race.key:
            return r
    return race


def replay_races(
    schedule: str | Schedule,
    programs: Mapping[str, RaceProgram],
    *,
    track: Iterable[type] = (),
    allow: Iterable[Benign] = BENIGN,
) -> RaceDetector:
    """Rerun one schedule exactly, detector on; its races are in the returned detector.

    Raises:
        InvalidScheduleError: a malformed schedule, or one naming no program of ``programs``.
    """
    sched = schedule if isinstance(schedule, Schedule) else Schedule.parse(schedule)
    program = programs.get(sched.program)
    if program is None:
        raise InvalidScheduleError(
            f"schedule names unknown program {sched.program!r}; "
            f"known: {', '.join(sorted(programs))}"
        )
    det, _ = _run(program, ReplayStrategy(sched.tokens), sched.memory, tuple(track), tuple(allow))
    return det
