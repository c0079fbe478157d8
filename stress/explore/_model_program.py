"""The program of a model path: a controlled-platform program on impl that mirrors a model
configuration and the client operations its path chose.

Why it exists: building the program (and rebuilding it from a ``model.<flag>.<threads>``
schedule's name) is independent of how the run is steered;
:mod:`~aioctx_verify.stress.explore._from_model` pairs it with the guided strategy
(:mod:`~aioctx_verify.stress.explore._model_guide`) to replay a counterexample.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING

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
    MODEL_BUGS,
    Action,
    ModelConfig,
    ModelError,
    bug_config,
    replay,
)

from ..controlled import ControlledPlatform, InvalidScheduleError, RunOutcome
from ._explore import Program

if TYPE_CHECKING:
    from ._model_guide import GuidedStrategy

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
    failed: list[str] | None = None,
) -> Program:
    """A controlled-platform program on impl mirroring ``config`` and ``path``.

    Thread 0 (main) makes an IOThread for the ``io`` role (its context is *the* context),
    or a context of its own when there is none, the user BHs with the model's callbacks,
    and one thread per ``client`` that performs its operations of ``path`` in order (an
    ``aio_poll`` or release the unmutated impl refuses is caught: the model's correct
    protocol never makes it), then releases what it still holds.  Main then joins the
    clients, checks that the IOThread, left with nothing to do, goes to sleep (the busy-loop
    check, LIVE: see :data:`IDLE_YIELDS`), and stops it.

    Args:
        config: the model configuration the path belongs to.
        path: the model actions (``model.check_bug(flag).path`` or a z3 path).
        flag: the bug flag, for the program's name only.
        guide: a :func:`guided_strategy` to feed impl's trace events to (None: plain run,
            e.g. a replay of the recorded schedule).
        failed: a list each run empties, then fills with the property of the program's own
            check that failed it (see :func:`outcome_prop`).

    Raises:
        NotMirroredError: a role or operation impl has no counterpart for.
        FromModelError: ``path`` does not replay in ``config``.
    """

    cfg = _check_config(config)
    ops = _client_ops(cfg, path)
    return _build(cfg, ops, _program_name(flag, cfg, ops), guide, failed)


def _oid(obj: object) -> int:
    """A controlled-platform object's id (-1 for an object without one)."""
    oid = getattr(obj, "oid", None)
    return oid if isinstance(oid, int) else -1


def _cells(ctx: AioContext, bhs: Sequence[BH], cfg: ModelConfig) -> dict[str, int]:
    """The platform objects the model's variables live in, by the names of
    :data:`~aioctx_verify.stress.explore._model_guide.STEP_ACCESS`: ``notify_me``,
    ``notified``, ``event`` (the context's EventNotifier), ``poller`` and ``bh<b>`` (model
    BH index ``b``'s ``scheduled`` flag; the dummy BH is index ``cfg.dummy``)."""
    cells = {
        "notify_me": _oid(ctx.notify_me),
        "notified": _oid(ctx.notified),
        "event": _oid(ctx._raw_notifier),
        "poller": _oid(ctx._poller),
    }
    for b, bh in enumerate(bhs):
        cells[f"bh{b}"] = _oid(bh.scheduled)
    cells[f"bh{cfg.dummy}"] = _oid(ctx.notify_dummy_bh.scheduled)
    return {k: v for k, v in cells.items() if v >= 0}


#: The busy-loop check (LIVE) after the clients ended: the main thread yields this many
#: times, and the IOThread, with nothing left to do, may run at most this many
#: iterations meanwhile (it finishes the work the path left, then sleeps).  A lasso of
#: the model that spins for ever (``notified-bug1``: the event stays set with
#: ``notified`` clear) shows here as one iteration per yield.
IDLE_YIELDS = 40
IDLE_ITERATIONS = 4


def _idle_check(p: ControlledPlatform, it: IOThread, failed: list[str] | None) -> None:
    """Raise a LIVE :class:`~aioctx_verify.stress.mutation.PropertyFailure` (recorded in
    ``failed``) when the idle IOThread ``it`` busy-loops."""
    before = it.iterations
    for _ in range(IDLE_YIELDS):
        p.yield_now()
    spins = it.iterations - before
    if spins > IDLE_ITERATIONS:
        from ..mutation import PropertyFailure

        if failed is not None:
            failed.append("LIVE")
        raise PropertyFailure(
            "LIVE",
            f"LIVE busy loop: idle IOThread {it.name} ran {spins} aio_poll iterations while "
            f"the main thread yielded {IDLE_YIELDS} times, with nothing to do",
        )


def _build(
    config: ModelConfig,
    ops: Ops,
    name: str,
    guide: GuidedStrategy | None,
    failed: list[str] | None = None,
) -> Program:
    """The program; ``failed`` receives the property of a check of its own that failed
    the run (the busy-loop check: LIVE), for :func:`outcome_prop`."""

    cfg = config

    def fn(p: ControlledPlatform) -> None:
        if failed is not None:
            failed.clear()
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
            guide.begin(dict(threads), ids, _cells(ctx, bhs, cfg), cfg.walk_order)
        for h in handles:
            h.join()
        if it is not None:
            _idle_check(p, it, failed)
            it.stop()
            it.join()
        else:
            ctx.unref()

    return Program(name, fn, expected="bug", description=f"model path mirrored on impl: {name}")


def model_program_by_name(name: str, failed: list[str] | None = None) -> Program | None:
    """The program a ``model.<flag>.<threads>`` schedule names, rebuilt from the flag's
    :data:`model.BUG_CONFIGS` configuration; None when ``name`` is no such program.
    ``failed`` as for :func:`program_for`.

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
    return _build(_check_config(config), tuple(ops), name, None, failed)


def outcome_prop(out: RunOutcome, failed: Sequence[str]) -> str | None:
    """The property a run of a model program broke: the monitors' (``out.prop``), LIVE for
    a deadlock or lost wake-up, the program's own check's when it raised (``failed``, as
    filled by the run), else None."""
    if out.verdict != "fail":
        return None
    if out.prop:
        return out.prop
    if out.kind in ("deadlock", "lost_wakeup"):
        return "LIVE"
    if out.kind == "exception" and failed:
        return failed[0]
    return None

