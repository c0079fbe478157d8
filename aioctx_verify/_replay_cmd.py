"""``aioctx-verify replay``: rerun any failure the suite printed, from its replay line.

Every failure prints one line (:func:`aioctx_verify.stress.explore.replay_line`)::

    aioctx-verify replay [--mutant NAME] 'SPEC'

``SPEC`` is a schedule string of a corpus program, of a kill-matrix probe program or of a
multi-thread stateful scenario (``v1:sm...``), all rerun exactly; a generated program and
its schedule (``gen:seed=<n>,index=<i>[,keep=<ops>];v1:gen...``: the program regenerated
from its seed and index, the operations shrinking dropped left out, the schedule rerun
exactly); ``single:seed=<n>``, the single-thread lockstep search rerun to its first
failure; or ``real:<workload>:...``, one real-thread stress trial's seeded configuration;
or ``probe-real:<probe>:...``, a probe run on real threads as the kill matrix's
``stress_real`` ran it.  The last two rerun until the
failure shows or a bounded number of attempts (real threads do not repeat an
interleaving).  ``--mutant`` applies that catalogue mutant for the run.

Output: what ran and its verdict, then ``property: <P1|P2|P3|LIVE|unclassified> via <what
noticed it>`` for a failure, then the failure's message and trace.  Exit status 1 when the
failure reproduces, 0 when the run passes, 2 for a malformed spec, an unknown program,
workload or mutant, or a run that cannot follow its schedule (or ended inconclusive).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping

import click

from aioctx_verify.impl import UsageError
from aioctx_verify.stress import (
    InvalidScheduleError,
    Schedule,
    corpus_by_name,
    format_trace,
)
from aioctx_verify.stress import replay as replay_schedule
from aioctx_verify.stress.mutation import Mutant, MutantLike

__all__ = ["replay_cmd"]

_SINGLE = re.compile(r"^single:seed=(-?\d+)$")
#: ``model:bug=<flag>`` (a model bug in its smallest configuration) or
#: ``model:<field>=<int>,...`` (a correct model configuration of the campaign).
_MODEL_BUG = re.compile(r"^model:bug=([a-z0-9-]+)$")
_MODEL_SIZE = re.compile(r"^model:((?:[a-z_]+=\d+)(?:,[a-z_]+=\d+)*)$")
_MODEL_FIELDS = ("threads", "bhs", "max_depth", "ops", "handlers", "timers")


class _ReplayError(click.ClickException):
    exit_code = 2


def _prop_line(prop: str | None, via: str | None) -> str:
    return f"property: {prop or 'unclassified'}" + (f" via {via}" if via else "")


@click.command(name="replay")
@click.option("--mutant", default=None, metavar="NAME",
              help="Apply this catalogue mutant for the run (as the failing run did).")
@click.option("--attempts", default=20, show_default=True, type=click.IntRange(1, 10_000),
              help="real: and probe-real: specs: reruns before giving up.")
@click.option("--seconds", default=120.0, show_default=True, type=click.FloatRange(0.1),
              help="Wall-time bound of a single:, real: or probe-real: replay.")
@click.argument("spec")
def replay_cmd(mutant: str | None, attempts: int, seconds: float, spec: str) -> None:
    """Rerun one failure from the replay line a failing run printed."""
    from aioctx_verify.stress.mutation import resolve_mutant

    spec = spec.strip()
    try:
        m = resolve_mutant(mutant)
    except InvalidScheduleError as e:
        raise _ReplayError(str(e)) from None
    if m.name != "none":
        click.echo(f"mutant: {m.name} (applied for the run)")
    if spec.startswith("single:"):
        sys.exit(_single(spec, m, seconds))
    if spec.startswith("gen:"):
        sys.exit(_generated(spec, m))
    if spec.startswith("model:"):
        sys.exit(_model(spec))
    if spec.startswith("protocol:"):
        sys.exit(_protocol(spec))
    if spec.startswith("race:"):
        sys.exit(_race(spec.removeprefix("race:"), m))
    if spec.startswith("real:"):
        sys.exit(_real(spec, m, attempts, seconds))
    if spec.startswith("probe-real:"):
        sys.exit(_probe_real(spec, m, attempts, seconds))
    try:
        parsed = Schedule.parse(spec)
    except InvalidScheduleError as e:
        raise _ReplayError(str(e)) from None
    corpus = corpus_by_name()
    if parsed.program in corpus:
        with m.apply():
            out = replay_schedule(parsed, corpus)
        prop, via = (out.prop or None), None
    elif parsed.program.startswith("sm"):
        sys.exit(_multi(parsed, m))
    elif parsed.program.startswith("model."):
        # A model counterexample mirrored on impl (stress/explore/_from_model.py).
        from aioctx_verify.stress.explore import replay_model_schedule

        try:
            out = replay_model_schedule(parsed, mutant)
        except InvalidScheduleError as e:
            raise _ReplayError(str(e)) from None
        prop, via = (out.prop or None), None
    else:
        from aioctx_verify.stress.mutation import PROBES, replay_probe

        if parsed.program not in PROBES:
            raise _ReplayError(
                f"schedule names unknown program {parsed.program!r}: not a corpus program, "
                "probe or stateful scenario; pass the spec exactly as the failing run printed it"
            )
        try:
            pr = replay_probe(parsed, m)
        except InvalidScheduleError as e:
            raise _ReplayError(str(e)) from None
        out, prop, via = pr.outcome, pr.prop, pr.via
    if out.verdict == "inconclusive":
        raise _ReplayError(f"cannot follow the schedule: {out.message}")
    click.echo(
        f"{parsed.program} [{parsed.memory}]: {out.verdict}"
        f"{' (' + out.kind + ')' if out.kind else ''}, {out.steps} steps, "
        f"{out.preemptions} preemption(s)"
    )
    if out.verdict == "fail":
        click.echo(_prop_line(prop or ("LIVE" if out.kind in ("deadlock", "lost_wakeup")
                                       else None), via))
        click.echo(out.message)
        click.echo(format_trace(out.trace, out.thread_names))
        sys.exit(1)
    sys.exit(0)


def _generated(spec: str, m: MutantLike) -> int:
    from aioctx_verify.stress.explore import replay_generated

    try:
        with m.apply():
            r = replay_generated(spec)
    except InvalidScheduleError as e:
        raise _ReplayError(str(e)) from None
    out = r.outcome
    if out.verdict == "inconclusive":
        raise _ReplayError(f"cannot follow the schedule: {out.message}")
    click.echo(r.program.listing())
    click.echo(
        f"{r.program.name} [{r.memory}]: {out.verdict}"
        f"{' (' + out.kind + ')' if out.kind else ''}, {out.steps} steps, "
        f"{out.preemptions} preemption(s)"
    )
    if out.verdict != "fail":
        return 0
    click.echo(_prop_line(r.prop, None))
    click.echo(out.message)
    click.echo(format_trace(out.trace, out.thread_names))
    return 1


def _multi(parsed: Schedule, m: MutantLike) -> int:
    from aioctx_verify.stress import stateful

    try:
        with m.apply():
            r = stateful.replay(parsed)
    except InvalidScheduleError as e:
        raise _ReplayError(str(e)) from None
    if r.verdict == "inconclusive":
        raise _ReplayError(f"cannot follow the schedule: {r.message}")
    click.echo(f"stateful scenario {parsed.program} [{parsed.memory}]: {r.verdict}")
    if r.failed:
        click.echo(_prop_line(r.prop, r.via))
    click.echo(r.report())
    return 1 if r.failed else 0


def _model(spec: str) -> int:
    """The model's breadth-first search is deterministic: rerunning it is the replay."""
    from aioctx_verify import model

    bug = _MODEL_BUG.match(spec)
    size = _MODEL_SIZE.match(spec)
    if bug is not None:
        flag = bug.group(1)
        if flag not in model.MODEL_BUGS:
            raise _ReplayError(
                f"model spec names unknown bug {flag!r}; "
                f"known: {', '.join(sorted(model.MODEL_BUGS))}"
            )
        config = model.bug_config(flag)
    elif size is not None:
        fields = dict(kv.split("=") for kv in size.group(1).split(","))
        unknown = sorted(set(fields) - set(_MODEL_FIELDS))
        if unknown:
            raise _ReplayError(
                f"model spec has unknown field(s) {', '.join(unknown)}; "
                f"fields: {', '.join(_MODEL_FIELDS)}"
            )
        try:
            config = model.ModelConfig(**{k: int(v) for k, v in fields.items()})  # type: ignore[arg-type]
        except model.ModelError as e:
            raise _ReplayError(f"model spec {spec!r}: {e}") from None
    else:
        raise _ReplayError(
            f"malformed model spec {spec[:60]!r}: expected model:bug=<flag> or "
            "model:threads=<n>,bhs=<n>,... as printed by a failing model search"
        )
    r = model.search(config, max_states=2_000_000)
    click.echo(f"model: {r.summary()}")  # with the shortest path when it found one
    if r.violation is None:
        return 0
    click.echo(_prop_line(r.violation, "model"))
    return 1


def _protocol(spec: str) -> int:
    """A counterexample of one of QEMU's aio_notify protocols (``aioctx-verify prove``),
    replayed on the explicit semantics: 1 when it still violates the property."""
    from aioctx_verify.model._notify import NotifyError, replay_protocol

    try:
        bad, text = replay_protocol(spec)
    except NotifyError as e:
        raise _ReplayError(str(e)) from None
    click.echo(text)
    return 1 if bad else 0


def _race(schedule: str, m: MutantLike) -> int:
    """A data race: the schedule rerun exactly with the happens-before detector on."""
    from aioctx_verify.stress.controlled import replay_races

    try:
        parsed = Schedule.parse(schedule)
    except InvalidScheduleError as e:
        raise _ReplayError(str(e)) from None
    programs = dict(corpus_by_name())
    if parsed.program not in programs:
        from aioctx_verify.stress.explore import program_by_name
        from aioctx_verify.stress.mutation import PROBES, probe_program

        programs.update((name, probe_program(p)) for name, p in PROBES.items())
        try:
            generated = program_by_name(parsed.program, parsed.memory)
        except InvalidScheduleError as e:
            raise _ReplayError(str(e)) from None
        if generated is not None:
            programs[parsed.program] = generated
    try:
        with m.apply():
            det = replay_races(parsed, programs)
    except InvalidScheduleError as e:
        raise _ReplayError(str(e)) from None
    click.echo(
        f"{parsed.program} [{parsed.memory}] with the race detector: {len(det.races)} race(s), "
        f"{len(det.benign)} allowed, {det.accesses} plain-field accesses"
    )
    if not det.races:
        return 0
    click.echo(_prop_line("P3", "races"))
    for race in det.races:
        click.echo(race.report())
    return 1


def model_replay_spec(size: Mapping[str, object]) -> str:
    """The ``model:`` replay spec of one campaign model configuration."""
    return "model:" + ",".join(f"{k}={size[k]}" for k in _MODEL_FIELDS if k in size)


def _single(spec: str, m: MutantLike, seconds: float) -> int:
    from aioctx_verify.stress import stateful

    match = _SINGLE.match(spec)
    if match is None:
        raise _ReplayError(
            f"malformed single-thread lockstep spec {spec[:60]!r}: expected single:seed=<n>, "
            "as printed by a failing lockstep search"
        )
    seed = int(match.group(1))
    with m.apply():
        res = stateful.search_single(seconds=seconds, seed=seed, shrink_seconds=2.0)
    f = res.found
    click.echo(
        f"single-thread lockstep, seed {seed} (the seeded search rerun to its first failure, "
        f"then shrunk for at most 2 s): {'fail' if f else 'pass'} after {res.runs} program(s)"
    )
    if f is None:
        if res.inconclusive:
            raise _ReplayError(
                f"single-thread lockstep replay of seed {seed} did not end in {seconds} s; "
                "rerun it on a less loaded machine or with a larger --seconds"
            )
        return 0
    click.echo(_prop_line(f.prop, f.via))
    click.echo(f.message)
    click.echo(f"{f.steps} step(s): {', '.join(f.program)}")
    return 1


def _real(spec: str, m: MutantLike, attempts: int, seconds: float) -> int:
    from aioctx_verify.stress.real import replay_trial

    try:
        with m.apply():
            r = replay_trial(spec, attempts=attempts, seconds=seconds)
    except UsageError as e:
        raise _ReplayError(str(e)) from None
    f = r.failure
    click.echo(
        f"real-thread trial {r.spec.workload} seed {r.spec.seed} trial {r.spec.trial}: "
        f"{'fail' if f else 'pass'} after {r.attempts} attempt(s) (real threads are not "
        "deterministic: the replay reruns the same seeded trial configuration, "
        f"up to {attempts} time(s))"
    )
    if f is None:
        click.echo(f"outcomes: {', '.join(r.outcomes)}")
        return 0
    click.echo(_prop_line(f.prop, r.via))
    click.echo(f"outcome {f.outcome}: {f.message}")
    return 1


def _probe_real(spec: str, m: Mutant, attempts: int, seconds: float) -> int:
    from aioctx_verify.stress.mutation import replay_probe_real

    try:
        r = replay_probe_real(spec, m, attempts=attempts, seconds=seconds)
    except InvalidScheduleError as e:
        raise _ReplayError(str(e)) from None
    click.echo(
        f"real-thread probe {r.probe}: {'fail' if r.failed else 'pass'} after {r.attempts} "
        "attempt(s) (real threads are not deterministic: the replay reruns the probe with "
        f"the same monitors and switch interval, up to {attempts} time(s))"
    )
    if not r.failed:
        return 0
    click.echo(_prop_line(r.prop, r.via))
    click.echo(r.detail)
    return 1
