"""Replay of a probe program's failure under a mutant, classified as the kill matrix
classifies its failures (the property, and what noticed it).

Two kinds: a schedule string (``v1:<probe>:...``, the explorers' kills), rerun exactly on
the controlled platform; and a ``probe-real:<probe>:monitored=<0|1>:switch=<seconds>`` spec
(the ``stress_real`` checker's kills), rerun on real threads with the same monitors and
switch interval until it fails or a bounded number of attempts: real threads do not
repeat an interleaving.
"""

from __future__ import annotations

import random
import re
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from aioctx_verify.vocab import PropertyName

from ..controlled import InvalidScheduleError, ReplayStrategy, RunOutcome, Schedule
from ..explore import _failure, run_schedule
from ._catalogue import NO_MUTANT, Mutant, mutant_by_name
from ._contract import MutantLike, Via
from ._matrix import _classify, _real_run
from ._probes import PROBES, probe_program

__all__ = [
    "ProbeRealReplay",
    "ProbeReplay",
    "replay_probe",
    "replay_probe_real",
    "resolve_mutant",
]

_PROBE_REAL = re.compile(r"^probe-real:([A-Za-z0-9_.-]+):monitored=([01]):switch=([0-9.e+-]+)$")


@dataclass(frozen=True, slots=True)
class ProbeReplay:
    """A probe schedule rerun: the run, and (when it failed) its property and via."""

    probe: str
    outcome: RunOutcome
    prop: PropertyName | None
    via: Via | None


def resolve_mutant(name: str | None) -> Mutant:
    """The catalogue mutant called ``name`` (the unmutated impl for None or ``none``).

    Raises:
        InvalidScheduleError: no mutant has that name.
    """
    if name is None or name == NO_MUTANT.name:
        return NO_MUTANT
    found = mutant_by_name().get(name)
    if found is None and ":" in name:
        # A mechanically generated mutant (``operator:impl/file.py:line:col:variant``, as
        # ``aioctx-verify mutate`` prints it): its name rebuilds it.
        from ._operators import generated_mutant

        try:
            found = generated_mutant(name).as_mutant()
        except KeyError as e:
            raise InvalidScheduleError(
                f"unknown generated mutant: {e.args[0]}; pass a name that "
                "`aioctx-verify mutate` printed for this version of impl"
            ) from None
    if found is None:
        raise InvalidScheduleError(
            f"unknown mutant {name!r}; pass a name that `aioctx-verify mutants` lists"
        )
    return found


def replay_probe(schedule: str | Schedule, mutant: MutantLike | None = None) -> ProbeReplay:
    """Rerun one schedule of a probe program exactly, under ``mutant`` when given.

    Raises:
        InvalidScheduleError: a malformed string, or one that names no probe.
    """
    sched = schedule if isinstance(schedule, Schedule) else Schedule.parse(schedule)
    probe = PROBES.get(sched.program)
    if probe is None:
        raise InvalidScheduleError(
            f"schedule names unknown probe {sched.program!r}; known: {', '.join(sorted(PROBES))}"
        )
    program = probe_program(probe)
    ctx: AbstractContextManager[object] = mutant.apply() if mutant is not None else nullcontext()
    with ctx:
        out = run_schedule(program, ReplayStrategy(sched.tokens), sched.memory)
        prop: PropertyName | None = None
        via: Via | None = None
        if out.verdict == "fail":
            prop, via = _classify(probe, _failure(program, sched.memory, out, out))
    return ProbeReplay(probe.name, out, prop, via)


@dataclass(frozen=True, slots=True)
class ProbeRealReplay:
    """A ``probe-real:`` spec rerun: the first failing attempt's detail, property and via
    (``failed`` False when no attempt failed), and the attempts run."""

    probe: str
    failed: bool
    detail: str
    prop: PropertyName | None
    via: Via | None
    attempts: int


def replay_probe_real(
    spec: str, mutant: Mutant, *, attempts: int = 20, seconds: float = 60.0
) -> ProbeRealReplay:
    """Rerun a probe on real threads, as the ``stress_real`` checker ran it, under
    ``mutant`` (applied for each attempt) until it fails, ``attempts`` ran or ``seconds``
    passed.

    Raises:
        InvalidScheduleError: a malformed spec or an unknown probe.
    """
    m = _PROBE_REAL.match(spec.strip())
    if m is None:
        raise InvalidScheduleError(
            f"malformed real-thread probe spec {spec[:60]!r}: expected "
            "probe-real:<probe>:monitored=<0|1>:switch=<seconds>, as printed by a kill"
        )
    probe = PROBES.get(m.group(1))
    if probe is None:
        raise InvalidScheduleError(
            f"spec names unknown probe {m.group(1)!r}; known: {', '.join(sorted(PROBES))}"
        )
    try:
        switch = float(m.group(3))
    except ValueError:
        raise InvalidScheduleError(f"bad switch interval in spec {spec[:60]!r}") from None
    monitored = m.group(2) == "1"
    rng = random.Random(spec)
    start = time.monotonic()
    old = sys.getswitchinterval()
    runs = 0
    try:
        sys.setswitchinterval(switch)
        while runs < max(1, attempts):
            res = _real_run(mutant, probe, monitored, rng)
            runs += 1
            if res.failed:
                return ProbeRealReplay(probe.name, True, res.detail, res.prop, res.via, runs)
            if time.monotonic() - start >= seconds:
                break
    finally:
        sys.setswitchinterval(old)
    return ProbeRealReplay(probe.name, False, "", None, None, runs)
