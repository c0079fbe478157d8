"""Model counterexamples replayed on impl: the model's path becomes a controlled schedule.

Why it exists: a counterexample of the explicit model (:func:`model.check_bug`), of the z3
lasso search or of the protocol models is a claim about *QEMU's protocol*; it is only
evidence about *impl* once impl, with the matching catalogue mutant applied, shows the
same violation along the same interleaving, and the unmutated impl does not.  Every model
:class:`~aioctx_verify.model.Action` carries the trace events impl emits during that step,
so the path is also a script for the controlled scheduler: run the thread of the next
expected action until impl emits that action's next event (CHESS-style guided replay;
shuttle's replay reports the first divergence the same way).

Three pieces:

* :func:`program_for` builds a controlled-platform :class:`Program` that mirrors the
  model's configuration (an IOThread for the ``io`` role, one impl thread per ``client``
  that performs, in path order, the operations its client actions chose);
* :func:`guided_strategy` steers the scheduler along the path by events, falls back to
  the non-preempting choice when the path's thread cannot run or impl's events diverge,
  and records how far the guidance matched;
* :func:`replay_model_path` runs both (mutant applied, then the correct impl), and
  returns plain data with the schedule string and its replay line.

Matching is by event, so a model step that emits nothing (``notify.read``) is taken to
last until its thread blocks or emits its next event: an approximation, reported as such
through the matched count and the divergence text.  The ``gsource`` role (the main loop's
GSource) has no impl class, so models that need it are reported "not mirrored".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass

from aioctx_verify.impl import (
    BH,
    AioContext,
    AioCtxError,
    IOThread,
    NotOwnerError,
    ThreadHandle,
    TraceEvent,
)
from aioctx_verify.model import (
    BUG_PROPERTY,
    MODEL_BUGS,
    Action,
    ModelConfig,
    ModelError,
    bug_config,
    check_bug,
    replay,
)

from ..controlled import (
    ControlledPlatform,
    Decision,
    InvalidScheduleError,
    ReplayStrategy,
    RunOutcome,
    Schedule,
)
from ._explore import Program, run_schedule
from ._lines import replay_line

__all__ = [
    "FromModelError",
    "GuidedStrategy",
    "ModelReplay",
    "NotMirroredError",
    "RunReport",
    "guided_strategy",
    "model_program_by_name",
    "program_for",
    "replay_model_path",
    "replay_model_schedule",
]

#: The operations a client thread can mirror on impl, with their one-letter name tokens
#: (operations on a BH carry its index: ``s0`` is ``schedule(bh0)``).
_OP_TOKENS = {
    "acquire": "a",
    "release": "r",
    "poll": "p",
    "bad_release": "x",
    "schedule": "s",
    "schedule_idle": "i",
    "cancel": "c",
    "delete": "d",
}
_TOKEN_OPS = {v: k for k, v in _OP_TOKENS.items()}
#: Per model thread, its client operations (name, BH index or -1), in path order.
Ops = tuple[tuple[tuple[str, int], ...], ...]
_BH_OPS = frozenset({"schedule", "schedule_idle", "cancel", "delete"})
_OP_RE = re.compile(r"[arpx]|[sicd]\d+")
_NAME_RE = re.compile(r"^model\.([a-z0-9-]+)\.([A-Za-z0-9.-]+)$")

#: Event kinds the model emits: impl's other kinds (``poll_woke``, ``iothread_start``)
#: have no model step and are skipped when matching.
_MODEL_KINDS = frozenset({
    "acquire", "release", "lock_wait", "contention_kick", "poll_begin", "poll_wait",
    "poll_end", "notify", "notify_accept", "bh_schedule_begin", "bh_schedule_end",
    "bh_run_begin", "bh_run_end", "bh_cancel", "bh_delete", "bh_new",
})
#: Kinds whose object is compared as is (depths, blocking); BH kinds are compared after
#: mapping the model's BH id to impl's; other objects (tickets, timeouts) are not compared.
_EXACT_OBJ = frozenset({"acquire", "release", "poll_begin"})
_BH_KINDS = frozenset({
    "bh_schedule_begin", "bh_schedule_end", "bh_run_begin", "bh_run_end", "bh_cancel",
    "bh_delete",
})


class FromModelError(AioCtxError, ValueError):
    """A model path or flag that cannot be turned into an impl program (the caller's
    mistake: an unknown flag, a path the configuration does not allow)."""


class NotMirroredError(FromModelError):
    """The model uses a role or operation impl has no counterpart for."""


# ------------------------------------------------------------------------------------------
# The program
# ------------------------------------------------------------------------------------------
def _client_ops(config: ModelConfig, path: Sequence[Action]) -> Ops:
    """Per model thread, the operations its client actions chose, in path order.

    An action is an operation choice when its thread stood at ``op`` before it (a step
    named ``acquire`` is also the IOThread's, or a mutated schedule's, internal step)."""
    acts = [a for a in path if isinstance(a, Action)]
    if len(acts) != len(path):
        raise FromModelError("a model path is a sequence of model.Action; got something else")
    try:
        states = replay(config, acts)
    except ModelError as e:
        raise FromModelError(f"the path does not replay in its configuration: {e}") from None
    ops: list[list[tuple[str, int]]] = [[] for _ in config.roles]
    for a, s in zip(acts, states, strict=False):
        if s.threads[a.thread].pc != "op" or a.step == "finish":
            continue
        if a.step not in _OP_TOKENS:
            raise NotMirroredError(
                f"client operation {a.step!r} (t{a.thread}) has no impl mirror here; "
                f"mirrored: {', '.join(sorted(_OP_TOKENS))}"
            )
        ops[a.thread].append((a.step, a.arg))
    return tuple(tuple(o) for o in ops)


def _check_config(config: object) -> ModelConfig:
    """``config`` if impl can mirror it (raises :class:`NotMirroredError` otherwise)."""
    if not isinstance(config, ModelConfig):
        raise FromModelError(f"expected a model.ModelConfig, got {type(config).__name__}")
    if "gsource" in config.roles:
        raise NotMirroredError(
            "role 'gsource' (the main loop's GSource: prepare/poll/check outside the lock) "
            "has no impl class to mirror it; only 'io' and 'client' roles are mirrored"
        )
    if config.handlers or config.timers:
        raise NotMirroredError(
            "model handlers and timers are not mirrored on impl; use a configuration "
            "without them"
        )
    return config


def _program_name(flag: str, config: ModelConfig, ops: Ops) -> str:
    parts = []
    for role, mine in zip(config.roles, ops, strict=True):
        if role == "io":
            parts.append("io")
        else:
            text = "".join(
                _OP_TOKENS[k] + (str(b) if k in _BH_OPS else "") for k, b in mine
            )
            parts.append(text or "-")
    return f"model.{flag}.{'.'.join(parts)}"


def program_for(
    config: object,
    path: Sequence[Action],
    *,
    flag: str = "custom",
    guide: GuidedStrategy | None = None,
) -> Program:
    """A controlled-platform program on impl mirroring ``config`` and ``path``.

    Thread 0 (main) makes an IOThread for the ``io`` role (its context is *the* context),
    or a context of its own when there is none, the user BHs with the model's callbacks,
    and one thread per ``client`` that performs its operations of ``path`` in order (an
    ``aio_poll`` or release the unmutated impl refuses is caught: the model's correct
    protocol never makes it), then releases what it still holds.  Main then joins the
    clients and stops the IOThread.

    Args:
        config: the model configuration the path belongs to.
        path: the model actions (``model.check_bug(flag).path`` or a z3 path).
        flag: the bug flag, for the program's name only.
        guide: a :func:`guided_strategy` to feed impl's trace events to (None: plain run,
            e.g. a replay of the recorded schedule).

    Raises:
        NotMirroredError: a role or operation impl has no counterpart for.
        FromModelError: ``path`` does not replay in ``config``.
    """

    cfg = _check_config(config)
    ops = _client_ops(cfg, path)
    return _build(cfg, ops, _program_name(flag, cfg, ops), guide)


def _build(
    config: ModelConfig,
    ops: Ops,
    name: str,
    guide: GuidedStrategy | None,
) -> Program:

    cfg = config

    def fn(p: ControlledPlatform) -> None:
        if guide is not None:
            inner = p.tracer

            def tracer(ev: TraceEvent) -> None:
                guide.saw(ev)
                if inner is not None:
                    inner(ev)

            p.tracer = tracer
        it: IOThread | None = None
        if "io" in cfg.roles:
            it = IOThread(p, name="io").start()
            ctx = it.ctx
        else:
            ctx = AioContext(p, name="ctx")
        p.watch_state(ctx)
        done: set[int] = set()
        bhs: list[BH] = []

        def callback(b: int) -> Callable[[object], None]:
            kind = cfg.bh_callbacks[b]

            def cb(_: object) -> None:
                if kind == "noop" or b in done:
                    return
                done.add(b)  # the model's one-time effect: first run only
                if kind == "resched":
                    bhs[b].schedule()
                elif kind == "sched-other":
                    other = bhs[(b + 1) % cfg.bhs]
                    if not other.deleted:
                        other.schedule()
                elif kind == "delete":
                    bhs[b].delete()

            return cb

        for b in range(cfg.bhs):
            bhs.append(ctx.bh_new(callback(b)))
        threads: dict[int, int] = {}
        if it is not None and it.thread_id is not None:
            threads[cfg.roles.index("io")] = int(it.thread_id)
        # A client's first operation is this load: a new thread runs to its first
        # scheduling point when spawned, so without it the first operation's trace
        # events would be emitted during set-up, before the guidance begins.
        gate = p.atomic(0, "model.gate")
        handles: list[ThreadHandle] = []
        for t, role in enumerate(cfg.roles):
            if role != "client":
                continue

            def body(t: int = t) -> None:
                threads[t] = int(p.current_thread())
                gate.load()
                depth = 0
                for kind, b in ops[t]:
                    if kind == "acquire":
                        ctx.acquire()
                        depth += 1
                    elif kind == "release":
                        ctx.release()
                        depth -= 1
                    elif kind == "schedule":
                        bhs[b].schedule()
                    elif kind == "schedule_idle":
                        bhs[b].schedule_idle()
                    elif kind == "cancel":
                        bhs[b].cancel()
                    elif kind == "delete":
                        bhs[b].delete()
                    elif kind == "poll":
                        with suppress(NotOwnerError):  # refused: not held, not its home
                            ctx.aio_poll(False)
                    elif kind == "bad_release":
                        with suppress(NotOwnerError):  # refused: nothing changes
                            ctx.release()
                while depth > 0:
                    ctx.release()
                    depth -= 1

            handles.append(p.start_thread(body, f"t{t}"))
        if guide is not None:
            ids = {cfg.bh_id(b): bhs[b].id for b in range(cfg.bhs)}
            ids[cfg.bh_id(cfg.dummy)] = ctx.notify_dummy_bh.id
            guide.begin(dict(threads), ids)
        for h in handles:
            h.join()
        if it is not None:
            it.stop()
            it.join()
        else:
            ctx.unref()

    return Program(name, fn, expected="bug", description=f"model path mirrored on impl: {name}")


def model_program_by_name(name: str) -> Program | None:
    """The program a ``model.<flag>.<threads>`` schedule names, rebuilt from the flag's
    :data:`model.BUG_CONFIGS` configuration; None when ``name`` is no such program.

    Raises:
        InvalidScheduleError: the name looks like one but cannot be rebuilt.
    """

    m = _NAME_RE.match(name)
    if m is None:
        return None
    flag, body = m.group(1), m.group(2)
    if flag not in MODEL_BUGS:
        raise InvalidScheduleError(f"program {name!r} names unknown model bug {flag!r}")
    config = bug_config(flag)
    parts = body.split(".")
    if len(parts) != len(config.roles):
        raise InvalidScheduleError(
            f"program {name!r} has {len(parts)} thread(s); {flag}'s model has {len(config.roles)}"
        )
    ops: list[tuple[tuple[str, int], ...]] = []
    for role, text in zip(config.roles, parts, strict=True):
        if role != "client":
            ops.append(())
            continue
        toks = _OP_RE.findall("" if text == "-" else text)
        if "".join(toks) != ("" if text == "-" else text):
            raise InvalidScheduleError(f"bad client operations {text!r} in program {name!r}")
        ops.append(tuple((_TOKEN_OPS[k[0]], int(k[1:]) if k[1:] else -1) for k in toks))
    return _build(_check_config(config), tuple(ops), name, None)


# ------------------------------------------------------------------------------------------
# The guided strategy
# ------------------------------------------------------------------------------------------
Event = tuple[str, int, str]


class GuidedStrategy:
    """Steers a controlled run along a model path, by trace events.

    Before :meth:`begin` (the program's set-up) the main thread is preferred.  Then, for
    the next expected action, its thread is chosen whenever it can run, until impl emitted
    that action's events in order (an action without events lasts until its thread blocks
    or emits an event).  When the path's thread cannot run, the non-preempting option is
    taken (the guidance waits); when impl's events differ from the path's (another thread's
    model event, or the wrong one), guidance stops and the run goes on without
    preemption.  :attr:`matched` counts the actions completed; :attr:`divergence` says
    where and how the run left the path.
    """

    name = "guided"

    def __init__(self, path: Sequence[Action]) -> None:

        acts = [a for a in path if isinstance(a, Action)]
        if len(acts) != len(path):
            raise FromModelError("a model path is a sequence of model.Action; got something else")
        self.path = tuple(acts)
        self._expect: tuple[tuple[int, tuple[Event, ...]], ...] = tuple(
            (a.thread, tuple(e for e in a.events if e[0] in _MODEL_KINDS)) for a in acts
        )
        self.matched = 0
        self.divergence = ""
        self._ev = 0
        self._active = False
        self._threads: dict[int, int] = {}
        self._ids: dict[int, int] = {}

    @property
    def complete(self) -> bool:
        """Every action of the path was matched."""
        return self.matched == len(self._expect)

    def next_run(self) -> bool:
        self.matched = 0
        self.divergence = ""
        self._ev = 0
        self._active = False
        return True

    def begin(self, threads: dict[int, int], bh_ids: dict[int, int]) -> None:
        """Set-up done: model thread -> platform thread, model BH id -> impl BH id."""
        self._threads = threads
        self._ids = bh_ids
        self._active = True

    def _guiding(self) -> bool:
        return self._active and not self.divergence and self.matched < len(self._expect)

    def _diverge(self, text: str) -> None:
        self.divergence = f"model step {self.matched}: {text}"

    def _advance(self) -> None:
        self.matched += 1
        self._ev = 0

    def saw(self, ev: TraceEvent) -> None:
        """impl emitted ``ev`` (called from the program's tracer, no scheduling point)."""
        if not self._guiding() or ev.kind not in _MODEL_KINDS:
            return
        while self._guiding():
            t, evs = self._expect[self.matched]
            want = self._threads.get(t)
            if want is None:
                self._diverge(f"model thread t{t} has no impl thread")
                return
            if int(ev.thread) != want and not evs:
                # An eventless step ended: another thread moved without the scheduler
                # consulting us (the step's thread blocked, leaving one option).
                self._advance()
                continue
            if int(ev.thread) != want:
                self._diverge(
                    f"expected t{t} {self._describe()}, impl thread {int(ev.thread)} "
                    f"emitted {ev.kind}:{ev.obj}"
                )
                return
            if not evs:  # an eventless step ends at its thread's next event
                self._advance()
                continue
            kind, obj, detail = evs[self._ev]
            if not self._same(ev, kind, obj, detail):
                self._diverge(
                    f"expected t{t} {kind}:{obj}, impl emitted {ev.kind}:{ev.obj} {ev.detail}"
                )
                return
            self._ev += 1
            if self._ev == len(evs):
                self._advance()
            return

    def _describe(self) -> str:
        """The expected step and, when it has events, the next one's kind."""
        evs = self._expect[self.matched][1]
        step = self.path[self.matched].step
        return f"{step} {evs[self._ev][0]}" if evs else step

    def _same(self, ev: TraceEvent, kind: str, obj: int, detail: str) -> bool:
        if ev.kind != kind:
            return False
        if kind in _EXACT_OBJ:
            return int(ev.obj) == obj
        if kind in _BH_KINDS:
            if self._ids.get(obj, -1) != ev.obj:
                return False
            return kind != "bh_schedule_end" or ev.detail == detail
        return True

    def choose(self, d: Decision) -> int:
        runnable = {o.thread: i for i, o in enumerate(d.options) if o.kind == "run"}
        if not self._active:
            return runnable.get(0, d.default)  # set-up: the main thread
        while self._guiding():
            t, evs = self._expect[self.matched]
            want = self._threads.get(t, -1)
            if want in runnable:
                return runnable[want]
            if evs:
                return d.default  # the path's thread waits for another: no preemption
            self._advance()  # an eventless step ends when its thread blocks
        return d.default


def guided_strategy(path: Sequence[Action]) -> GuidedStrategy:
    """A strategy that steers impl's threads through ``path``'s steps (see
    :class:`GuidedStrategy`); pass the same object to :func:`program_for` as ``guide``."""
    return GuidedStrategy(path)


# ------------------------------------------------------------------------------------------
# Replaying a model counterexample on impl
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RunReport:
    """One guided run: its verdict and property, and how far the path was matched."""

    verdict: str  # pass | fail | inconclusive
    kind: str
    prop: str | None
    message: str
    matched: int
    divergence: str


@dataclass(frozen=True, slots=True)
class ModelReplay:
    """A model counterexample replayed on impl.

    Attributes:
        flag: the model bug flag (and catalogue mutant).
        expected: the property the model path violates (:data:`model.BUG_PROPERTY`).
        verdict: ``reproduced`` (the mutant shows ``expected``, the correct impl is clean),
            ``not reproduced``, ``false alarm`` (the correct impl fails), ``replay
            diverged`` (the recorded schedule did not reproduce), or ``not mirrored``.
        reason: why, for every verdict but ``reproduced``; for ``reproduced`` with
            ``complete`` False, where the run left the path before the violation.
        path_length: actions in the model path.
        matched: actions the mutated run matched.
        complete: the mutated run matched every action (the violation appeared along the
            path itself, not after guidance gave up).
        mutated / correct: the two guided runs (None when not mirrored).
        schedule: the mutated run's schedule string ("" when not mirrored).
        replay: its replay line.
        replayed_prop: the property the schedule showed when rerun exactly.
    """

    flag: str
    expected: str
    verdict: str
    reason: str
    path_length: int
    matched: int
    complete: bool
    mutated: RunReport | None
    correct: RunReport | None
    schedule: str
    replay: str
    replayed_prop: str | None

    @property
    def ok(self) -> bool:
        return self.verdict == "reproduced"


def _report(out: RunOutcome, guide: GuidedStrategy | None) -> RunReport:
    prop = out.prop or ("LIVE" if out.kind in ("deadlock", "lost_wakeup") else None)
    return RunReport(
        out.verdict, out.kind, prop if out.verdict == "fail" else None, out.message,
        guide.matched if guide is not None else 0, guide.divergence if guide is not None else "",
    )


def replay_model_schedule(schedule: str | Schedule, mutant: str | None = None) -> RunOutcome:
    """Rerun a ``model.*`` schedule exactly, under the catalogue mutant ``mutant``.

    Raises:
        InvalidScheduleError: a malformed string, or one that names no model program.
    """
    from ..mutation import resolve_mutant

    sched = schedule if isinstance(schedule, Schedule) else Schedule.parse(schedule)
    program = model_program_by_name(sched.program)
    if program is None:
        raise InvalidScheduleError(
            f"schedule names program {sched.program!r}, not a model.<flag>.<threads> program"
        )
    with resolve_mutant(mutant).apply():
        return run_schedule(program, ReplayStrategy(sched.tokens), sched.memory)


def replay_model_path(flag: str, path: Sequence[Action] | None = None) -> ModelReplay:
    """Replay ``path`` (default: :func:`model.check_bug`'s shortest counterexample) on impl.

    The guided run with the catalogue mutant ``flag`` applied must show the property
    :data:`model.BUG_PROPERTY` names (LIVE: the scheduler's deadlock / lost wake-up or the
    liveness monitors); the guided run on the correct impl must pass; the mutated run's
    schedule, rerun exactly, must show the property again.

    Raises:
        FromModelError: ``flag`` is no model bug with a catalogue mutant, or ``path`` does
            not replay in the flag's configuration.
    """

    from ..mutation import mutant_by_name

    if flag not in MODEL_BUGS:
        raise FromModelError(f"unknown model bug {flag!r}; see model.MODEL_BUGS")
    mutant = mutant_by_name().get(flag)
    if mutant is None:
        raise FromModelError(f"model bug {flag!r} has no catalogue mutant to apply")
    config = bug_config(flag)
    if path is None:
        path = check_bug(flag).path
    expected = BUG_PROPERTY[flag]

    def skipped(reason: str) -> ModelReplay:
        return ModelReplay(flag, expected, "not mirrored", reason, len(path), 0, False,
                           None, None, "", "", None)

    try:
        _check_config(config)
        _client_ops(config, path)
    except NotMirroredError as e:
        return skipped(str(e))
    guide = guided_strategy(path)
    program = program_for(config, path, flag=flag, guide=guide)
    with mutant.apply():
        guide.next_run()
        out = run_schedule(program, guide)
    mutated = _report(out, guide)
    schedule = str(Schedule(program.name, program.memory, tuple(c.token for c in out.decisions)))
    cguide = guided_strategy(path)
    cprogram = program_for(config, path, flag=flag, guide=cguide)
    cguide.next_run()
    correct = _report(run_schedule(cprogram, cguide), cguide)
    rerun = replay_model_schedule(schedule, flag)
    replayed = _report(rerun, None).prop
    if mutated.prop != expected:
        verdict = "not reproduced"
        reason = (f"the mutated run ended {mutated.verdict} {mutated.kind} "
                  f"({mutated.prop or 'no property'}), not {expected}; "
                  f"matched {mutated.matched}/{len(path)} {mutated.divergence}".rstrip())
    elif correct.verdict != "pass":
        verdict = "false alarm"
        reason = f"the correct impl ended {correct.verdict} {correct.kind}: {correct.message}"
    elif replayed != expected:
        verdict = "replay diverged"
        reason = f"the recorded schedule rerun showed {replayed}: {rerun.message}"
    else:
        verdict, reason = "reproduced", ""
        if mutated.matched < len(path):  # honest: the path was left before the violation
            reason = (f"the violation appeared after guidance stopped at {mutated.matched}/"
                      f"{len(path)}: {mutated.divergence}")
    return ModelReplay(
        flag, expected, verdict, reason, len(path), mutated.matched,
        mutated.matched == len(path), mutated, correct,
        schedule, replay_line(schedule, flag), replayed,
    )
